//! Where secrets may and may not go: with the keychain store no token byte
//! lands in a file; at trace level no token, refresh token, code, verifier
//! or client secret reaches the logs, nor the argv or environment of the
//! processes keygate starts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{FakeTokenServer, Options, World, ok, response, text};

fn keychain_record(world: &World) -> serde_json::Value {
    let label = world.git_url.clone();
    let output = world
        .command("secret-tool")
        .args(["lookup", "service", "keygate", "username", &label])
        .output()
        .expect("secret-tool (install libsecret-tools)");
    ok(&output);
    serde_json::from_slice(&output.stdout).expect("the keychain entry is a JSON record")
}

#[test]
fn keychain_store_keeps_every_token_byte_out_of_files() {
    let mut world = World::start(Options::default());
    world.start_keyring();
    world.set_env("KEYGATE_STORE", "keychain");

    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    let record = keychain_record(&world);
    let access = record["access_token"].as_str().unwrap().to_owned();
    let refresh = record["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.len() > 16 && refresh.len() > 16);

    // A second operation is served from the keychain, without the server.
    let token_requests = |w: &World| {
        w.events()
            .iter()
            .filter(|e| e["endpoint"] == "token")
            .count()
    };
    let before = token_requests(&world);
    ok(&world.git(&[
        "-C",
        world.dir.path().join("repo").to_str().unwrap(),
        "fetch",
        "-q",
    ]));
    assert_eq!(token_requests(&world), before, "no token request");

    world.set_env("KEYGATE_STORE", "file");
    assert!(!world.home.join(".local/share/keygate/tokens.json").exists());
    world.set_env("KEYGATE_STORE", "keychain");
    let status = world.keygate(&["status", "--json"]);
    ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["store"], "keychain");

    let files = world.files_under_home();
    assert!(
        !files.is_empty(),
        "gnome-keyring and git wrote files under HOME"
    );
    for (path, bytes) in &files {
        let content = String::from_utf8_lossy(bytes);
        assert!(
            !content.contains(&access),
            "access token in {}",
            path.display()
        );
        assert!(
            !content.contains(&refresh),
            "refresh token in {}",
            path.display()
        );
    }
}

#[test]
fn four_kilobyte_tokens_are_saved_to_and_read_from_the_keychain() {
    let access = "a".repeat(4096);
    let refresh = "r".repeat(4096);
    let body = format!(
        "{{\"access_token\":\"{access}\",\"token_type\":\"Bearer\",\"expires_in\":7200,\"refresh_token\":\"{refresh}\"}}"
    );
    let server = FakeTokenServer::start(
        response("200 OK", "application/json", &body),
        Duration::ZERO,
    );
    let mut world = World::offline();
    world.start_keyring();
    world.set_env("KEYGATE_STORE", "keychain");
    world.set_env("KEYGATE_CLIENT_SECRET", "big-secret");
    let host = "https://big.example.test";
    std::fs::write(
        world.gitconfig_path(),
        format!("[keygate \"{host}\"]\n\tclientId = big\n\tgrant = client_credentials\n\ttokenUrl = {}\n", server.url),
    )
    .unwrap();
    for _ in 0..2 {
        let output = world.keygate(&["token", &format!("{host}/repo.git")]);
        ok(&output);
        assert_eq!(text(&output.stdout).trim(), access);
    }
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "the second came from the keychain"
    );
    let status = world.keygate(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["store"], "keychain");
    assert_eq!(status[0]["refresh_token_present"], true);
    for (path, bytes) in world.files_under_home() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&access[..64]),
            "{}",
            path.display()
        );
    }
}

/// Every secret value that passed through a test, gathered from the store
/// and the scripted browser.
fn assert_absent(haystack: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        assert!(
            !haystack.contains(secret.as_str()),
            "a secret reached {what}"
        );
    }
}

#[test]
fn trace_logs_and_child_processes_never_see_a_secret() {
    let mut world = World::start(Options::default());
    world.set_env("KEYGATE_LOG", "trace");

    let login = world.keygate(&["login", &world.repo_url()]);
    ok(&login);
    let first = world.stored_account();
    world.expire_stored_token();
    let fill = world.credential_fill();
    ok(&fill);
    let second = world.stored_account();
    let token = world.keygate(&["token", &world.repo_url()]);
    ok(&token);

    let mut secrets = Vec::new();
    for account in [&first, &second] {
        for key in ["access_token", "refresh_token"] {
            secrets.push(account[key].as_str().unwrap().to_owned());
        }
    }
    let logs = format!(
        "{}{}{}",
        text(&login.stderr),
        text(&fill.stderr),
        text(&token.stderr)
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was on: {logs}"
    );
    assert_absent(&logs, &secrets, "the trace log");
    // The authorization code and PKCE verifier travel only in the redirect
    // and the token request body: neither parameter appears in the logs.
    assert!(!logs.contains("code_verifier"), "PKCE verifier logged");
    for (index, _) in logs.match_indices("code=") {
        let before = &logs[..index];
        assert!(
            before.ends_with("_"),
            "an authorization code was logged near {index}"
        );
    }

    // The browser got the authorization URL and an environment without
    // any token in it.
    let launches = world.browser_launches();
    assert_eq!(launches.len(), 1);
    let launch = serde_json::to_string(&launches[0]).unwrap();
    assert_absent(&launch, &secrets, "the browser's argv or environment");
    assert!(
        launches[0]["url"]
            .as_str()
            .unwrap()
            .contains("code_challenge_method=S256")
    );
}

#[test]
fn client_secret_from_the_environment_is_not_inherited_or_logged() {
    let mut world = World::start(Options::default());
    world.set_env("KEYGATE_LOG", "trace");
    world.set_env("KEYGATE_CLIENT_SECRET", "leak-canary-client-secret");
    // What the front program hands keygate of cargo's conversation (a
    // `cargo login` token, say) is taken out at the same moment.
    world.set_env("KEYGATE_CARGO_READ", "leak-canary-cargo-read");
    // keygate-test is a public client with the code grant: the
    // environment's secret is for client credentials and stays unused.
    let login = world.keygate(&["login", &world.repo_url()]);
    ok(&login);
    let launches = world.browser_launches();
    assert_eq!(launches.len(), 1);
    let launch = serde_json::to_string(&launches[0]).unwrap();
    assert!(
        !launch.contains("leak-canary-client-secret"),
        "the browser inherited the secret"
    );
    assert!(
        !launch.contains("leak-canary-cargo-read"),
        "the browser inherited what cargo sent"
    );
    assert!(
        !text(&login.stderr).contains("leak-canary-client-secret"),
        "secret logged"
    );
}

#[test]
fn client_credentials_in_ci_clone_and_push_without_any_authorization_request() {
    let mut world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tclientId = keygate-ci\n\tgrant = client_credentials\n",
        world.git_url
    ));
    world.set_env("CI", "true");
    world.set_env("KEYGATE_LOG", "trace");
    world.set_env("KEYGATE_CLIENT_SECRET", "ci-secret-do-not-leak");
    let clone = world.git(&["clone", "-q", &world.repo_url(), "repo"]);
    ok(&clone);
    let repo = world.dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    ok(&world.git(&["-C", repo, "commit", "-q", "--allow-empty", "-m", "from CI"]));
    let push = world.git(&["-C", repo, "push", "-q", "origin", "main"]);
    ok(&push);
    assert_eq!(world.authorization_requests(), 0);
    assert_eq!(
        world.token_requests("client_credentials"),
        1,
        "cached after the first"
    );
    assert!(world.browser_launches().is_empty());
    for output in [&clone, &push] {
        assert!(!text(&output.stderr).contains("ci-secret-do-not-leak"));
    }
    let account = world.stored_account();
    assert_eq!(account["grant"], "client_credentials");
    assert!(!text(&clone.stderr).contains(account["access_token"].as_str().unwrap()));
}

#[test]
fn a_token_typed_into_a_url_is_not_echoed_in_errors() {
    let world = World::offline();
    for url in [
        "https://me:typed-token-canary@unconfigured.example.test/repo.git",
        "https://me:typed-token-canary@[not a host/",
    ] {
        for command in ["token", "login", "logout"] {
            // logout of an unconfigured host succeeds: nothing was kept.
            let output = world.keygate(&[command, url]);
            let stderr = text(&output.stderr);
            assert!(!stderr.is_empty());
            assert!(!stderr.contains("typed-token-canary"), "{stderr}");
        }
    }
}
