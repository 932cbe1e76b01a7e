//! The user's keyring under the load keygate puts on it: gnome-keyring on
//! a private D-Bus must survive thousands of `git credential fill`s, in a
//! row and 32 at a time, and rounds of fills that force refreshes against
//! the real oidc-provider, with the kernel cache in front of it and
//! without. And the kernel cache itself: what it holds, for whom, how
//! long, and that nothing keygate replaced is ever served from it.

// Linux only: gnome-keyring on a private D-Bus, and the kernel's keyring.
#![cfg(target_os = "linux")]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use common::{Options, QuickPathAlone, World, credential_field, ok, text};

const SEQUENTIAL: usize = 1000;
const PARALLEL: usize = 1000;
const AT_A_TIME: usize = 32;
/// Rounds of: reject the token, then fills in parallel that must all
/// bring the one refreshed token.
const REFRESH_ROUNDS: usize = 40;
const FILLS_PER_ROUND: usize = 8;

/// A logged-in account whose tokens live in gnome-keyring.
fn keyring_world(cache: bool) -> World {
    let mut world = World::start(Options::default());
    world.start_keyring();
    world.set_env("KEYGATE_STORE", "keychain");
    if !cache {
        world.set_env("KEYGATE_KERNEL_CACHE", "off");
    }
    ok(&world.keygate(&["login", &world.repo_url()]));
    world
}

/// `git credential fill`: its whole answer and the password in it.
fn fill(world: &World) -> (String, String) {
    let output = world.credential_fill();
    ok(&output);
    let password = credential_field(&output, "password").unwrap_or_default();
    (text(&output.stdout), password)
}

/// Tells keygate, as git does after a 401, that this answer was rejected.
fn reject(world: &World, answer: &str) {
    ok(&world.credential("reject", &format!("{answer}\n")));
}

fn assert_keyring_alive(world: &World, after: &str) {
    assert!(
        world.secret_service_owned(),
        "gnome-keyring no longer owns org.freedesktop.secrets after {after}"
    );
}

/// Runs `count` fills, `at_a_time` at once, and returns the passwords.
fn fill_in_parallel(world: &World, count: usize, at_a_time: usize) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let passwords = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..at_a_time {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < count {
                    let (_, password) = fill(world);
                    passwords.lock().unwrap().push(password);
                }
            });
        }
    });
    passwords.into_inner().unwrap()
}

fn hammer(cache: bool) {
    let world = keyring_world(cache);
    let (answer, token) = fill(&world);
    assert!(token.len() > 16, "the first fill brought no token");

    for i in 0..SEQUENTIAL {
        let (_, password) = fill(&world);
        assert!(
            password == token,
            "sequential fill {i} brought another token or none"
        );
    }
    assert_keyring_alive(&world, &format!("{SEQUENTIAL} sequential fills"));

    let passwords = fill_in_parallel(&world, PARALLEL, AT_A_TIME);
    assert_eq!(passwords.len(), PARALLEL);
    let wrong = passwords.iter().filter(|p| **p != token).count();
    assert_eq!(wrong, 0, "parallel fills that did not bring the token");
    assert_keyring_alive(&world, &format!("{PARALLEL} parallel fills"));

    // Each round: the token is rejected, so every fill of the round finds
    // no fresh token; exactly one refreshes (under the lock), all bring
    // the new token, and none brings the rejected one from any cache.
    let refreshes = world.token_requests("refresh_token");
    let (mut answer, mut current) = (answer, token);
    for round in 0..REFRESH_ROUNDS {
        reject(&world, &answer);
        let passwords = fill_in_parallel(&world, FILLS_PER_ROUND, FILLS_PER_ROUND);
        let new = passwords[0].clone();
        assert!(
            new.len() > 16 && new != current,
            "round {round}: no new token after the old one was rejected"
        );
        assert!(
            passwords.iter().all(|p| *p == new),
            "round {round}: the fills did not all bring the one new token"
        );
        (answer, current) = fill(&world);
        assert!(
            current == new,
            "round {round}: a later fill brought another token"
        );
    }
    assert_eq!(
        world.token_requests("refresh_token") - refreshes,
        REFRESH_ROUNDS,
        "one refresh per round"
    );
    assert_keyring_alive(
        &world,
        &format!(
            "{} fills that forced refreshes",
            REFRESH_ROUNDS * FILLS_PER_ROUND
        ),
    );
    // Leaves nothing in this user's kernel keyring.
    ok(&world.keygate(&["logout", &world.repo_url()]));
}

#[test]
fn keyring_survives_thousands_of_fills_with_the_kernel_cache() {
    hammer(true);
}

#[test]
fn keyring_survives_thousands_of_fills_without_the_kernel_cache() {
    hammer(false);
}

/// The description keygate gives the account's key in `@u`.
fn cache_description(world: &World) -> String {
    let mut digest = Sha256::new();
    digest.update(b"keygate kernel cache v1\0");
    digest.update(world.dbus_address.as_deref().unwrap().as_bytes());
    digest.update(b"\0");
    digest.update(world.git_url.as_bytes());
    let hex: String = digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("keygate:{hex}")
}

/// The account's line in `/proc/keys`, if the key is there and usable.
fn proc_keys_line(description: &str) -> Option<String> {
    let keys = std::fs::read_to_string("/proc/keys").expect("/proc/keys (kernel key retention)");
    keys.lines()
        .find(|line| line.contains(&format!(" {description}:")))
        .map(str::to_owned)
        // Invalidated keys linger until the garbage collector runs.
        .filter(|line| !line.split_whitespace().nth(1).unwrap_or("").contains('i'))
}

fn cached_payload(description: &str) -> Option<String> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let ring = KeyRing::from_special_id(KeyRingIdentifier::User, false).ok()?;
    let key = ring.search(description).ok()?;
    key.read_to_vec()
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn keychain_refresh_token(world: &World) -> String {
    let output = world
        .command("secret-tool")
        .args(["lookup", "service", "keygate", "username", &world.git_url])
        .output()
        .expect("secret-tool (install libsecret-tools)");
    ok(&output);
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    record["refresh_token"].as_str().unwrap().to_owned()
}

#[test]
fn the_quick_path_answers_from_the_kernel_cache_and_leaves_the_keychain_to_keygate() {
    let mut world = keyring_world(true);
    let quick = QuickPathAlone::new(&world);
    let request = format!(
        "protocol=https\nhost={}\n\n",
        world.git_url.trim_start_matches("https://")
    );

    // The login cached the token, and so does every fill: the quick path
    // answers alone, as keygate would.
    let (_, token) = fill(&world);
    let mut command = world.command(common::KEYGATE);
    command.arg("get");
    let by_keygate = common::run_with_input(command, request.as_bytes());
    let answered = quick.run(&world, &["get"], &request);
    ok(&answered);
    assert!(text(&answered.stdout).contains(&token));
    assert_eq!(answered.stdout, by_keygate.stdout);
    assert!(quick.keygate_calls().is_empty());

    // With the cache off, the keychain's answer is keygate's to give.
    world.set_env("KEYGATE_KERNEL_CACHE", "off");
    ok(&quick.run(&world, &["get"], &request));
    assert_eq!(quick.keygate_calls(), vec![format!("get\n{request}")]);
}

#[test]
fn kernel_cache_holds_only_a_fresh_access_token_and_never_one_keygate_replaced() {
    let world = keyring_world(true);
    let description = cache_description(&world);
    let (answer, token) = fill(&world);

    // The access token, not the refresh token; this user only; a timeout.
    let payload = cached_payload(&description).expect("the fill cached the token in @u");
    let refresh = keychain_refresh_token(&world);
    assert!(
        payload.contains(&token),
        "the cached record has the access token"
    );
    assert!(
        !payload.contains(&refresh),
        "a refresh token in the kernel cache"
    );
    let line = proc_keys_line(&description).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // id flags usage timeout perm uid gid type description
    assert_ne!(fields[3], "perm", "the key has a timeout: {line}");
    assert!(
        fields[3].ends_with('m') || fields[3].ends_with('s'),
        "at most the token's fresh life (10 minutes here): {line}"
    );
    assert_eq!(
        &fields[4][4..],
        "0000",
        "neither group nor others may touch the key: {line}"
    );
    assert_eq!(&fields[4][..4], "2f2f", "possessor and owner only: {line}");

    // Rejected: the cached copy goes with it, the next fill refreshes.
    reject(&world, &answer);
    assert!(
        proc_keys_line(&description).is_none(),
        "the rejected token is still cached"
    );
    let (answer, refreshed) = fill(&world);
    assert!(refreshed.len() > 16 && refreshed != token);
    assert!(cached_payload(&description).unwrap().contains(&refreshed));

    // Off: nothing is read nor filled, but a refresh still drops the key.
    let mut world = world;
    world.set_env("KEYGATE_KERNEL_CACHE", "off");
    reject(&world, &answer);
    assert!(proc_keys_line(&description).is_none());
    let (_, third) = fill(&world);
    assert!(third.len() > 16 && third != refreshed);
    assert!(
        proc_keys_line(&description).is_none(),
        "KEYGATE_KERNEL_CACHE=off filled the cache"
    );

    // Logout drops it too.
    world.set_env("KEYGATE_KERNEL_CACHE", "on");
    let (_, fourth) = fill(&world);
    assert!(fourth == third);
    assert!(proc_keys_line(&description).is_some());
    ok(&world.keygate(&["logout", &world.repo_url()]));
    assert!(
        proc_keys_line(&description).is_none(),
        "logout left the token cached"
    );
}
