//! Faults a real OAuth server cannot be made to produce on demand: an
//! in-tree fake token endpoint answers 500, hangs, sends garbage or
//! rejects the grant. Each must give one clear error and keep the stored
//! refresh token.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::{self, FakeTokenServer, Record, World, response, text};

const SERVER: &str = common::OFFLINE_SERVER;

fn world_with(token_url: &str) -> World {
    World::offline_with_stale_account("fault-test", token_url)
}

fn run_token(world: &World) -> std::process::Output {
    let mut command = world.command(common::KEYGATE);
    command
        .args(["token", &format!("{SERVER}/org/repo.git")])
        .env("CI", "1");
    command.output().unwrap()
}

#[track_caller]
fn assert_failed_and_kept(world: &World, output: &std::process::Output, expected: &str) {
    assert!(!output.status.success(), "must fail");
    assert!(output.stdout.is_empty(), "no token printed");
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("keygate: "), "{stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in {stderr}"
    );
    assert!(!stderr.contains("refresh-token-to-keep"));
    let account = world.stored_account();
    assert_eq!(
        account["refresh_token"], "refresh-token-to-keep",
        "refresh token kept"
    );
}

fn http_500() -> String {
    response(
        "500 Internal Server Error",
        "text/html",
        "<h1>it broke</h1>",
    )
}

fn bad_json() -> String {
    response(
        "200 OK",
        "application/json",
        "{\"access_token\": \"half-a-t",
    )
}

fn invalid_grant() -> String {
    response(
        "400 Bad Request",
        "application/json",
        "{\"error\":\"invalid_grant\",\"error_description\":\"grant is revoked.\"}",
    )
}

#[test]
fn token_endpoint_500_keeps_the_refresh_token() {
    let server = FakeTokenServer::start(http_500(), Duration::ZERO);
    let world = world_with(&server.url);
    let output = run_token(&world);
    assert_failed_and_kept(&world, &output, "HTTP 500");
    assert!(text(&output.stderr).contains("refresh token is kept"));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn token_endpoint_timeout_keeps_the_refresh_token() {
    let server = FakeTokenServer::start(http_500(), Duration::from_secs(30));
    let world = world_with(&server.url);
    let started = Instant::now();
    let output = run_token(&world);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by keygate.<url>.timeout"
    );
    assert_failed_and_kept(&world, &output, "timed out");
}

#[test]
fn invalid_json_keeps_the_refresh_token_and_shows_no_body() {
    let server = FakeTokenServer::start(bad_json(), Duration::ZERO);
    let world = world_with(&server.url);
    let output = run_token(&world);
    assert_failed_and_kept(&world, &output, "cannot read");
    assert!(
        !text(&output.stderr).contains("half-a-t"),
        "the body may hold a token"
    );
}

#[test]
fn invalid_grant_without_a_person_keeps_the_refresh_token() {
    let server = FakeTokenServer::start(invalid_grant(), Duration::ZERO);
    let world = world_with(&server.url);
    let output = run_token(&world);
    assert_failed_and_kept(&world, &output, "invalid_grant");
    assert!(text(&output.stderr).contains("keygate login"));
}

#[test]
fn plain_http_token_endpoint_off_loopback_is_refused() {
    let world = world_with("http://auth.example.test/token");
    let output = run_token(&world);
    assert_failed_and_kept(&world, &output, "refusing plain http://");
}

#[test]
fn corrupt_token_file_is_reported_and_left_alone() {
    let server = FakeTokenServer::start(http_500(), Duration::ZERO);
    let world = world_with(&server.url);
    let path = world.home.join(".local/share/keygate/tokens.json");
    std::fs::write(&path, b"{\"version\":1,\"accounts\":[{\"truncated").unwrap();
    let output = run_token(&world);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not valid keygate JSON"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"{\"version\":1,\"accounts\":[{\"truncated"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    // `status` on the same file fails the same clear way, without a crash.
    let status = world.keygate(&["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(text(&status.stderr).contains("not valid keygate JSON"));
}

#[test]
fn a_failed_refresh_serves_a_token_that_still_works() {
    let server = FakeTokenServer::start(http_500(), Duration::ZERO);
    let world = world_with(&server.url);
    let now = common::now();
    // Stale (inside the 5-minute margin) but valid for another minute.
    world.seed_token_file(
        Record::new(SERVER, "still-valid-access-token")
            .times(now - 7140, now + 60)
            .refresh_token("refresh-token-to-keep"),
    );
    let output = run_token(&world);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout).trim(), "still-valid-access-token");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(stderr.contains("using the current token"), "{stderr}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    // git too takes it: the expiry it is told is the token's real one,
    // not the stale instant (already past, so git would drop it).
    let mut git = world.command("git");
    git.args(["-c", &format!("credential.helper={}", common::KEYGATE)])
        .args(["credential", "fill"])
        .env("CI", "1");
    let filled = common::run_with_input(git, format!("url={SERVER}/org/repo.git\n\n").as_bytes());
    let answer = text(&filled.stdout);
    assert!(filled.status.success(), "{}", text(&filled.stderr));
    assert!(
        answer.contains("password=still-valid-access-token"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("password_expiry_utc={}", now + 60)),
        "{answer}"
    );
    assert_eq!(
        world.stored_account()["refresh_token"],
        "refresh-token-to-keep"
    );
}

#[test]
fn without_a_person_a_lock_held_by_a_login_is_not_waited_for_forever() {
    use sha2::{Digest, Sha256};
    let server = FakeTokenServer::start(http_500(), Duration::ZERO);
    let world = world_with(&server.url);
    // What a `keygate login` waiting for its browser holds.
    let digest = Sha256::digest(SERVER.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let locks = world.home.join(".local/share/keygate/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let held = std::fs::File::create(locks.join(format!("{name}.lock"))).unwrap();
    held.lock().unwrap();
    let output = run_token(&world);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("another keygate process"), "{stderr}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    drop(held);
    // Once it is released, the same command gets through to the server.
    let output = run_token(&world);
    assert!(text(&output.stderr).contains("HTTP 500"));
}
