//! `git-credential-keygate`, the small program git runs: what it answers
//! alone (a fresh token in the file store, a token from the environment, a
//! host keygate does not handle, `store`), byte for byte as keygate would,
//! and what it hands to the `keygate` beside it, with the request, the
//! arguments and the exit status intact. Through real git, every other
//! test file runs it too: `credential.helper=keygate` is this program.

use crate::common::{self, QuickPathAlone, Record, World, ok, text};

const SERVER: &str = "https://git.example.test";
const REQUEST: &str = "protocol=https\nhost=git.example.test\npath=org/repo.git\n\n";

/// A configured server and one stored token, valid for `lifetime` seconds
/// from now (negative: expired).
fn world_with_token(lifetime: i64) -> World {
    let world = World::offline();
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[keygate \"{SERVER}\"]\n\tclientId = quick-test\n\tauthUrl = {SERVER}/auth\n\ttokenUrl = https://127.0.0.1:1/token\n"
        ),
    )
    .unwrap();
    let expires_at = common::now().saturating_add_signed(lifetime);
    world.seed_token_file(
        Record::new(SERVER, "stored-access-token")
            .times(expires_at.saturating_sub(3600), expires_at)
            .refresh_token("stored-refresh-token"),
    );
    world
}

fn keygate_get(world: &World, input: &str) -> std::process::Output {
    let mut command = world.command(common::KEYGATE);
    command.arg("get");
    common::run_with_input(command, input.as_bytes())
}

#[test]
fn a_fresh_token_is_answered_alone_exactly_as_keygate_answers_it() {
    let world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);
    for request in [
        REQUEST,
        // git 2.46+ announces that it takes a bearer token as such.
        "capability[]=authtype\nprotocol=https\nhost=git.example.test\n\n",
    ] {
        let answered = quick.run(&world, &["get"], request);
        ok(&answered);
        assert!(text(&answered.stdout).contains("stored-access-token"));
        assert_eq!(answered.stdout, keygate_get(&world, request).stdout);
    }
    assert_eq!(quick.keygate_calls(), Vec::<String>::new());
}

#[test]
fn other_hosts_store_and_environment_tokens_need_no_keygate() {
    let mut world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);

    let other = quick.run(&world, &["get"], "protocol=https\nhost=elsewhere.test\n\n");
    ok(&other);
    assert!(other.stdout.is_empty());

    let stored = quick.run(
        &world,
        &["store"],
        "protocol=https\nhost=git.example.test\nusername=oauth2\npassword=stored-access-token\n\n",
    );
    ok(&stored);
    assert!(stored.stdout.is_empty());

    // CI: a token minted by the job, never stored.
    let ci = "https://ci.example.test";
    let config = std::fs::read_to_string(world.gitconfig_path()).unwrap();
    std::fs::write(
        world.gitconfig_path(),
        format!("{config}[keygate \"{ci}\"]\n\ttokenEnv = JOB_TOKEN\n\tusername = ci-token\n"),
    )
    .unwrap();
    world.set_env("JOB_TOKEN", "job-token-value");
    let request = "protocol=https\nhost=ci.example.test\n\n";
    let from_env = quick.run(&world, &["get"], request);
    ok(&from_env);
    assert!(text(&from_env.stdout).contains("password=job-token-value"));
    assert_eq!(from_env.stdout, keygate_get(&world, request).stdout);

    assert_eq!(quick.keygate_calls(), Vec::<String>::new());
}

#[test]
fn a_stale_token_goes_to_keygate_with_the_request_and_its_answer_comes_back() {
    let world = world_with_token(-60);
    let quick = QuickPathAlone::new(&world);
    let answered = quick.run(&world, &["get"], REQUEST);
    ok(&answered);
    assert_eq!(text(&answered.stdout), "password=from-keygate\n");

    // Larger than a pipe is sure to hold: keygate runs as a child instead
    // of in the front's place, and its status still comes back.
    let long = format!(
        "protocol=https\nhost=git.example.test\npath={}\n\n",
        "a/".repeat(4000)
    );
    let mut command = quick.command(&world, &["get"]);
    command.env("FAKE_KEYGATE_EXIT", "4");
    let failed = common::run_with_input(command, long.as_bytes());
    assert_eq!(failed.status.code(), Some(4));

    assert_eq!(
        quick.keygate_calls(),
        vec![format!("get\n{REQUEST}"), format!("get\n{long}")]
    );
}

#[test]
fn erase_other_commands_and_logging_go_to_keygate_and_its_status_comes_back() {
    let mut world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);
    let erase = "protocol=https\nhost=git.example.test\npassword=stored-access-token\n\n";

    let mut command = quick.command(&world, &["erase"]);
    command.env("FAKE_KEYGATE_EXIT", "3");
    let erased = common::run_with_input(command, erase.as_bytes());
    assert_eq!(erased.status.code(), Some(3));

    // Not the protocol: keygate runs in its place, stdin untouched.
    let login = quick.run(&world, &["login", SERVER], "");
    ok(&login);
    assert_eq!(text(&login.stdout), "password=from-keygate\n");

    // A malformed request is keygate's to explain.
    ok(&quick.run(&world, &["get"], "no equals sign\n\n"));

    // Logging is keygate's: even a fresh token goes there.
    world.set_env("KEYGATE_LOG", "debug");
    ok(&quick.run(&world, &["get"], REQUEST));

    assert_eq!(
        quick.keygate_calls(),
        vec![
            format!("erase\n{erase}"),
            format!("login {SERVER}\n"),
            "get\nno equals sign\n\n".to_owned(),
            format!("get\n{REQUEST}"),
        ]
    );
}

#[test]
fn without_keygate_beside_it_the_error_says_what_to_do() {
    let world = world_with_token(-60);
    let quick = QuickPathAlone::new(&world);
    std::fs::remove_file(quick.dir.join("keygate")).unwrap();
    let output = quick.run(&world, &["get"], REQUEST);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let said = text(&output.stderr);
    assert!(said.starts_with("keygate: cannot run "), "{said}");
    assert!(said.contains("reinstall keygate"), "{said}");
    assert!(!said.contains("stored-"), "{said}");
}

#[test]
fn through_real_git_a_stale_token_reaches_real_keygate() {
    // The refresh fails (nothing listens at the token URL): only keygate
    // itself knows to say so and what to run.
    let world = world_with_token(-60);
    let mut command = world.command("git");
    command
        .args(["-c", "credential.helper=keygate", "credential", "fill"])
        .env("CI", "1");
    let fill = common::run_with_input(command, format!("url={SERVER}/org/repo.git\n\n").as_bytes());
    assert!(!fill.status.success());
    let said = text(&fill.stderr);
    assert!(said.contains("keygate: "), "{said}");
    assert!(said.contains("the stored refresh token is kept"), "{said}");
}

/// cargo's request for `index` (a sparse index URL), as one line.
fn cargo_request(index: &str, rest: &str) -> String {
    format!(
        "{{\"v\":1,\"registry\":{{\"index-url\":\"{index}\",\"name\":\"kg\"}},{rest},\"args\":[\"cargo\"]}}\n"
    )
}

const CARGO_HELLO: &str = "{\"v\":[1]}\n";

fn cargo_read(index: &str) -> String {
    cargo_request(index, r#""kind":"get","operation":"read""#)
}

fn keygate_cargo(world: &World, input: &str) -> std::process::Output {
    let mut command = world.command(common::KEYGATE);
    command.arg("--cargo-plugin");
    common::run_with_input(command, input.as_bytes())
}

#[test]
fn cargo_gets_a_fresh_token_and_url_not_supported_alone_exactly_as_keygate_answers() {
    let world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);
    // One conversation: a read, a registry keygate does not serve, a
    // blank line, a publish.
    let input = [
        cargo_read(&format!("sparse+{SERVER}/api/cargo/")),
        cargo_read("sparse+https://elsewhere.test/index/"),
        "\n".to_owned(),
        cargo_request(
            &format!("sparse+{SERVER}/api/cargo/"),
            r#""kind":"get","operation":"publish","name":"a","vers":"1.0.0","cksum":"ab""#,
        ),
    ]
    .concat();
    let answered = quick.run(&world, &["--cargo-plugin"], &input);
    ok(&answered);
    let out = text(&answered.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], CARGO_HELLO.trim_end());
    assert!(lines[1].contains("\"token\":\"Basic "), "{out}");
    assert!(lines[1].contains("\"cache\":\"expires\""), "{out}");
    assert_eq!(lines[2], r#"{"Err":{"kind":"url-not-supported"}}"#);
    assert_eq!(lines[3], lines[1]);
    assert_eq!(answered.stdout, keygate_cargo(&world, &input).stdout);
    assert_eq!(text(&answered.stderr), "");
    assert_eq!(quick.keygate_calls(), Vec::<String>::new());
}

#[test]
fn what_the_front_cannot_answer_cargo_goes_to_keygate_after_the_one_hello() {
    let world = world_with_token(-60);
    let quick = QuickPathAlone::new(&world);
    let stale = cargo_read(&format!("sparse+{SERVER}/api/cargo/"));
    let logout = cargo_request(&format!("sparse+{SERVER}/api/cargo/"), r#""kind":"logout""#);
    let input = [
        cargo_read("sparse+https://elsewhere.test/index/"),
        stale.clone(),
        logout.clone(),
    ]
    .concat();
    let answered = quick.run(&world, &["--cargo-plugin"], &input);
    ok(&answered);
    // The front's hello and answer, then keygate's: no second hello.
    assert_eq!(
        text(&answered.stdout),
        format!(
            "{CARGO_HELLO}{{\"Err\":{{\"kind\":\"url-not-supported\"}}}}\npassword=from-keygate\n"
        )
    );
    // keygate is told the hello was said, and gets the rest of the
    // conversation from the request the front could not answer on.
    assert_eq!(
        quick.keygate_calls(),
        vec![format!("--cargo-plugin --hello-sent\n{stale}{logout}")]
    );
}

#[test]
fn cargo_input_that_cannot_travel_in_the_environment_is_keygates_stdin() {
    let world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);
    let garbage = "{\"v\":1,\0}\n";
    let answered = quick.run(&world, &["--cargo-plugin"], garbage);
    ok(&answered);
    assert_eq!(
        text(&answered.stdout),
        format!("{CARGO_HELLO}password=from-keygate\n")
    );
    assert_eq!(
        quick.keygate_calls(),
        vec![format!("--cargo-plugin --hello-sent\n{garbage}")]
    );
}

#[test]
fn cargo_with_logging_or_other_arguments_is_keygates_from_the_start() {
    let mut world = world_with_token(3600);
    let quick = QuickPathAlone::new(&world);
    let read = cargo_read(&format!("sparse+{SERVER}/api/cargo/"));
    let odd = quick.run(&world, &["--cargo-plugin", "extra"], &read);
    ok(&odd);
    world.set_env("KEYGATE_LOG", "debug");
    let logged = quick.run(&world, &["--cargo-plugin"], &read);
    ok(&logged);
    // keygate says the hello itself: the front said nothing.
    assert_eq!(text(&logged.stdout), "password=from-keygate\n");
    assert_eq!(
        quick.keygate_calls(),
        vec![
            format!("--cargo-plugin extra\n{read}"),
            format!("--cargo-plugin\n{read}")
        ]
    );
}
