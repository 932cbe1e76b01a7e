//! The user's keyring under the load keygate puts on it: gnome-keyring on
//! a private D-Bus must survive thousands of `git credential fill`s, in a
//! row and 32 at a time, and rounds of fills that force refreshes against
//! the real oidc-provider, with the kernel cache in front of it and
//! without. And the kernel cache itself: what it holds, for whom, how
//! long, and that nothing keygate replaced is ever served from it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use crate::common::{self, LocalUser, Options, QuickPathAlone, World, credential_field, ok, text};

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

/// One of keygate's keys in this user's keyring, as `/proc/keys` and a
/// read by its owner show it.
#[derive(Debug)]
struct CachedKey {
    id: i32,
    description: String,
    timeout: String,
    perm: String,
    uid: u32,
    /// `None` when even its owner may not read it.
    payload: Option<String>,
}

/// keygate's keys (whatever their version) linked in this UID's `@u`:
/// its own, and any another user planted there. (`/proc/keys` also lists
/// keys already unlinked, until the garbage collector runs.)
fn keygate_keys() -> Vec<CachedKey> {
    use linux_keyutils::{Key, KeySerialId};
    let user_keyring = Key::from_id(KeySerialId::new(-4));
    let mut ids = vec![0u8; 65536];
    let len = user_keyring.read(&mut ids).expect("read @u");
    let linked: Vec<i32> = ids[..len]
        .chunks_exact(4)
        .map(|id| i32::from_ne_bytes(id.try_into().unwrap()))
        .collect();
    let keys = std::fs::read_to_string("/proc/keys").expect("/proc/keys (kernel key retention)");
    keys.lines()
        .filter_map(|line| {
            // id flags usage timeout perm uid gid type description: summary
            let fields: Vec<&str> = line.split_whitespace().collect();
            let description = fields.get(8)?.strip_suffix(':')?;
            let id = i32::from_str_radix(fields[0], 16).ok()?;
            if fields[7] != "user" || !description.starts_with("keygate:") || !linked.contains(&id)
            {
                return None;
            }
            let payload = Key::from_id(KeySerialId::new(id))
                .read_to_vec()
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
            Some(CachedKey {
                id,
                description: description.to_owned(),
                timeout: fields[3].to_owned(),
                perm: fields[4].to_owned(),
                uid: fields[5].parse().ok()?,
                payload,
            })
        })
        .collect()
}

/// The keys that hold this world's account.
fn cached_for(world: &World) -> Vec<CachedKey> {
    let account = format!("\"server\":\"{}\"", world.git_url);
    keygate_keys()
        .into_iter()
        .filter(|key| key.payload.as_deref().is_some_and(|p| p.contains(&account)))
        .collect()
}

/// The one key that holds this world's account.
#[track_caller]
fn the_cached_key(world: &World) -> CachedKey {
    let mut keys = cached_for(world);
    assert_eq!(keys.len(), 1, "one cached key for the account: {keys:?}");
    keys.remove(0)
}

/// Keeps the test that locks the keychain, which drops every key keygate
/// cached for this user, apart from the tests that look for their key.
/// A failed test must not fail the others: poisoning is ignored. The
/// keychain tests of other modules (`e2e`, `secrets`) never look in the
/// kernel cache: a sweep only sends their next `get` to the keychain.
static CACHE_SWEEPS: RwLock<()> = RwLock::new(());

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
    let _apart = CACHE_SWEEPS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
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
    let _apart = CACHE_SWEEPS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world = keyring_world(true);
    let (answer, token) = fill(&world);

    // The access token, not the refresh token; this user only; a timeout.
    let key = the_cached_key(&world);
    let payload = key.payload.as_deref().unwrap();
    let refresh = keychain_refresh_token(&world);
    assert!(
        payload.contains(&token),
        "the cached record has the access token"
    );
    assert!(
        !payload.contains(&refresh),
        "a refresh token in the kernel cache"
    );
    assert_ne!(key.timeout, "perm", "the key has a timeout: {key:?}");
    assert!(
        key.timeout.ends_with('m') || key.timeout.ends_with('s'),
        "at most the token's fresh life (10 minutes here): {key:?}"
    );
    // Owner: view, read, write, search, setattr. Possessor, group,
    // others: nothing (issue 18: possession crosses users).
    assert_eq!(key.perm, "002f0000", "owner only: {key:?}");
    assert_eq!(key.uid, 0);

    // Rejected: the cached copy goes with it, the next fill refreshes.
    reject(&world, &answer);
    assert!(
        cached_for(&world).is_empty(),
        "the rejected token is still cached"
    );
    let (answer, refreshed) = fill(&world);
    assert!(refreshed.len() > 16 && refreshed != token);
    assert!(the_cached_key(&world).payload.unwrap().contains(&refreshed));

    // Off: nothing is read nor filled, but a refresh still drops the key.
    let mut world = world;
    world.set_env("KEYGATE_KERNEL_CACHE", "off");
    reject(&world, &answer);
    assert!(cached_for(&world).is_empty());
    let (_, third) = fill(&world);
    assert!(third.len() > 16 && third != refreshed);
    assert!(
        cached_for(&world).is_empty(),
        "KEYGATE_KERNEL_CACHE=off filled the cache"
    );

    // Logout drops it too.
    world.set_env("KEYGATE_KERNEL_CACHE", "on");
    let (_, fourth) = fill(&world);
    assert!(fourth == third);
    the_cached_key(&world);
    ok(&world.keygate(&["logout", &world.repo_url()]));
    assert!(
        cached_for(&world).is_empty(),
        "logout left the token cached"
    );
}

#[test]
fn git_config_turns_the_kernel_cache_off() {
    let world = keyring_world(true);
    world.write_gitconfig("[keygate]\n\tkernelCache = false\n");
    let (answer, token) = fill(&world);
    reject(&world, &answer);
    let (_, refreshed) = fill(&world);
    assert!(refreshed.len() > 16 && refreshed != token);
    assert!(
        cached_for(&world).is_empty(),
        "keygate.kernelCache=false filled the cache"
    );
    // The variable wins over the file, either way.
    let mut world = world;
    world.set_env("KEYGATE_KERNEL_CACHE", "on");
    fill(&world);
    the_cached_key(&world);
    ok(&world.keygate(&["logout", &world.repo_url()]));
}

/// Issue 18, item 1: another user whose processes possess this user's
/// `@u` (through a shared session keyring) read the cached token with
/// `keyctl pipe`, replaced it with `keyctl update`, and the victim's next
/// `get` served the planted token.
#[test]
fn another_user_sharing_the_session_keyring_can_neither_read_nor_replace_the_cached_token() {
    let _apart = CACHE_SWEEPS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world = keyring_world(true);
    let (_, token) = fill(&world);
    let ours = the_cached_key(&world);
    let planted = ours
        .payload
        .as_deref()
        .unwrap()
        .replace(&token, "planted-by-another-user");
    let planted_file = world.dir.path().join("planted.json");
    std::fs::write(&planted_file, &planted).unwrap();
    // The attacker must be able to read what it plants.
    let world_readable = |path: &std::path::Path, mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    world_readable(world.dir.path(), 0o755);
    world_readable(&planted_file, 0o644);

    let attacker = LocalUser::create("kgkc");
    let description = &ours.description;
    let read = attacker.su_sharing_session_keyring(&format!(
        "id=$(keyctl search @s user {description}) || exit 0; keyctl pipe $id; echo; keyctl show @s"
    ));
    assert!(
        !text(&read.stdout).contains(&token),
        "another user read the cached token: {}",
        text(&read.stdout)
    );
    let update = attacker.su_sharing_session_keyring(&format!(
        "keyctl pupdate {} < {}",
        ours.id,
        planted_file.display()
    ));
    assert!(
        !update.status.success(),
        "another user rewrote the cached token"
    );
    assert_eq!(the_cached_key(&world).payload, ours.payload);

    // It can still unlink our key from the user keyring it possesses and
    // link one of its own under the same name: that key is not served.
    let plant = attacker.su_sharing_session_keyring(&format!(
        "ring=$(keyctl search @s keyring _uid.0) && keyctl unlink {id} $ring; \
         new=$(keyctl padd user {description} $ring < {file}) && keyctl setperm $new 0x3f3f3f3f && echo planted",
        id = ours.id,
        file = planted_file.display()
    ));
    assert!(
        text(&plant.stdout).contains("planted"),
        "the attack set-up failed: {}",
        text(&plant.stderr)
    );
    let (_, served) = fill(&world);
    assert_eq!(served, token, "the planted token was served");
    let key = the_cached_key(&world);
    assert_eq!((key.uid, key.perm.as_str()), (0, "002f0000"), "{key:?}");
    ok(&world.keygate(&["logout", &world.repo_url()]));
}

/// Issue 18, item 2: where the session keyring is not linked to `@u`
/// (`keyctl new_session`, systemd services), the key was left with the
/// kernel's default mask and no timeout, survived `logout`, and a later
/// `get` from an ordinary session served the logged-out token.
#[test]
fn a_private_session_keyring_leaves_no_token_behind_after_logout() {
    let _apart = CACHE_SWEEPS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world = keyring_world(true);
    let in_private_session = |args: &[&str], input: &str| {
        let mut command = world.command("keyctl");
        command.args(["session", "-"]).args(args);
        common::run_with_input(command, input.as_bytes())
    };
    let fill_request = format!("url={}\n\n", world.repo_url());
    let (answer, token) = fill(&world);
    ok(&in_private_session(
        &["git", "credential", "reject"],
        &format!("{answer}\n"),
    ));
    assert!(cached_for(&world).is_empty());

    let refilled = in_private_session(&["git", "credential", "fill"], &fill_request);
    ok(&refilled);
    let logged_out = credential_field(&refilled, "password").unwrap();
    assert!(logged_out.len() > 16 && logged_out != token);
    let key = the_cached_key(&world);
    assert_eq!(
        key.perm, "002f0000",
        "sealed from a private session too: {key:?}"
    );
    assert_ne!(key.timeout, "perm", "with a timeout: {key:?}");

    ok(&in_private_session(
        &[common::KEYGATE, "logout", &world.repo_url()],
        "",
    ));
    assert!(
        cached_for(&world).is_empty(),
        "logout left the token cached"
    );
    let after = world.credential_fill();
    assert_ne!(
        credential_field(&after, "password").as_deref(),
        Some(logged_out.as_str()),
        "an ordinary session was served the logged-out token"
    );
    ok(&world.keygate(&["logout", &world.repo_url()]));
}

/// Issue 18, item 3: a process naming the same bus without `,guid=…`
/// filled a second key, which `logout` did not drop.
#[test]
fn logout_drops_the_token_cached_under_every_spelling_of_the_bus_address() {
    let _apart = CACHE_SWEEPS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut world = keyring_world(true);
    let address = world.dbus_address.clone().unwrap();
    let (_, token) = fill(&world);
    let without_guid = address
        .split(',')
        .filter(|part| !part.starts_with("guid="))
        .collect::<Vec<_>>()
        .join(",");
    assert_ne!(without_guid, address, "dbus-daemon printed a guid");
    world.set_env("DBUS_SESSION_BUS_ADDRESS", &without_guid);
    let (_, same) = fill(&world);
    assert_eq!(same, token);
    assert_eq!(cached_for(&world).len(), 2, "one key per spelling");

    world.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
    ok(&world.keygate(&["logout", &world.repo_url()]));
    assert!(cached_for(&world).is_empty(), "a spelling kept the token");
    world.set_env("DBUS_SESSION_BUS_ADDRESS", &without_guid);
    let after = world.credential_fill();
    assert_ne!(
        credential_field(&after, "password").as_deref(),
        Some(token.as_str()),
        "the logged-out token was served under the other spelling"
    );
    ok(&world.keygate(&["logout", &world.repo_url()]));
}

/// Issue 18, item 4b: after the collection was locked, `get` kept serving
/// the cached token. Once any keygate process finds the keychain locked,
/// the cache is dropped, and nothing is cached while it stays locked.
#[test]
fn a_locked_keychain_drops_the_cache_when_keygate_finds_it_locked() {
    let _alone = CACHE_SWEEPS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world = keyring_world(true);
    let (_, token) = fill(&world);
    the_cached_key(&world);

    world.lock_keychain();
    let status = world.keygate(&["status"]);
    assert!(
        text(&status.stderr).contains("locked") || text(&status.stdout).contains("locked"),
        "status did not find the keychain locked: {}{}",
        text(&status.stdout),
        text(&status.stderr)
    );
    assert!(cached_for(&world).is_empty(), "the cache outlived the lock");
    let after = world.credential_fill();
    assert_ne!(
        credential_field(&after, "password").as_deref(),
        Some(token.as_str()),
        "a token the locked keychain withholds was served"
    );
    assert!(cached_for(&world).is_empty(), "filled while locked");
}

/// `keygate doctor` on a locked keychain: the token store check fails and
/// says to unlock it. Finding it locked drops the kernel cache, as any
/// keygate's read does: apart from the tests that look for their key.
#[test]
fn doctor_says_the_keychain_is_locked() {
    let _alone = CACHE_SWEEPS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let world = keyring_world(true);
    let (_, token) = fill(&world);
    let healthy = world.keygate(&["doctor", &world.repo_url()]);
    let out = text(&healthy.stdout);
    assert!(healthy.status.success(), "{out}");
    let store_line = out.lines().find(|l| l.contains("token store:")).unwrap();
    assert!(
        store_line.starts_with("ok  ") && store_line.contains("keychain store, kernel cache on"),
        "{out}"
    );

    world.lock_keychain();
    let locked = world.keygate(&["doctor", &world.repo_url()]);
    let out = text(&locked.stdout);
    assert_eq!(locked.status.code(), Some(1), "{out}");
    let store_line = out.lines().find(|l| l.contains("token store:")).unwrap();
    assert!(
        store_line.starts_with("FAIL") && store_line.contains("locked"),
        "{out}"
    );
    assert!(out.contains("fix: unlock the keyring"), "{out}");
    let all = format!("{out}{}", text(&locked.stderr));
    assert!(!all.contains(&token), "{all}");
    assert!(cached_for(&world).is_empty(), "the cache outlived the lock");
}
