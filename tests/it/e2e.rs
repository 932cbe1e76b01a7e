//! End to end: the built keygate binary under real git, against the real
//! oidc-provider OAuth server and a git smart-HTTP server that accepts only
//! valid tokens.

use std::time::{Duration, Instant};

use crate::common::{self, Options, World, credential_field, ok, text};

fn clone(world: &World, dest: &str) -> std::process::Output {
    world.git(&["clone", "-q", &world.repo_url(), dest])
}

#[test]
fn first_clone_logs_in_once_then_uses_the_cache_and_push_works() {
    let world = World::start(Options::default());

    ok(&clone(&world, "first"));
    assert_eq!(world.browser_launches().len(), 1, "one browser login");
    assert_eq!(world.authorization_requests(), 1);
    assert_eq!(world.token_requests("authorization_code"), 1);
    let account = world.stored_account();
    assert!(
        account["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let tokens_after_login = world
        .events()
        .iter()
        .filter(|e| e["endpoint"] == "token")
        .count();

    ok(&clone(&world, "second"));
    assert_eq!(world.browser_launches().len(), 1, "no second browser login");
    let tokens_now = world
        .events()
        .iter()
        .filter(|e| e["endpoint"] == "token")
        .count();
    assert_eq!(
        tokens_now, tokens_after_login,
        "no token request for a cached token"
    );

    let repo = world.dir.path().join("second");
    std::fs::write(repo.join("change.txt"), "pushed through keygate\n").unwrap();
    let repo_arg = repo.to_str().unwrap();
    ok(&world.git(&["-C", repo_arg, "add", "change.txt"]));
    ok(&world.git(&["-C", repo_arg, "commit", "-q", "-m", "change"]));
    ok(&world.git(&["-C", repo_arg, "push", "-q", "origin", "main"]));
    ok(&world.git(&[
        "-C",
        world.dir.path().join("first").to_str().unwrap(),
        "pull",
        "-q",
    ]));
    assert!(world.dir.path().join("first/change.txt").exists());
    assert_eq!(world.browser_launches().len(), 1);
}

#[test]
fn expired_token_is_refreshed_silently_once_and_rotation_is_saved() {
    // A 4-second token goes stale a second before it expires.
    let world = World::start(Options {
        access_token_ttl: 4,
    });
    ok(&clone(&world, "repo"));
    let first_refresh_token = world.stored_account()["refresh_token"].clone();

    std::thread::sleep(Duration::from_secs(4));
    let repo = world.dir.path().join("repo");
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    assert_eq!(
        world.token_requests("refresh_token"),
        1,
        "exactly one refresh"
    );
    assert_eq!(world.browser_launches().len(), 1, "no new login");
    let second_refresh_token = world.stored_account()["refresh_token"].clone();
    assert_ne!(
        first_refresh_token, second_refresh_token,
        "the rotated refresh token was saved"
    );

    // The rotated token must work: the server revokes the whole grant if
    // keygate ever sends a used one.
    world.expire_stored_token();
    ok(&world.git(&["-C", repo.to_str().unwrap(), "fetch", "-q"]));
    assert_eq!(world.token_requests("refresh_token"), 2);
    let refreshes_ok = world
        .events()
        .iter()
        .filter(|e| e["grant_type"] == "refresh_token" && e["status"] == 200)
        .count();
    assert_eq!(refreshes_ok, 2);
}

#[test]
fn sixty_four_concurrent_fills_at_expiry_cause_one_refresh() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    world.expire_stored_token();

    let passwords = world.parallel_passwords(64);
    assert_eq!(
        world.token_requests("refresh_token"),
        1,
        "exactly one refresh request"
    );
    assert!(
        passwords.iter().all(|p| *p == passwords[0]),
        "all got the same token"
    );
    let stored = world.stored_account()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(passwords[0], stored);
    // And that token is accepted by the git server.
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

#[test]
fn revoked_refresh_token_fails_fast_without_a_person_and_logs_in_again_with_one() {
    let mut world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    world.post_admin("/__test/revoke-all");
    world.expire_stored_token();
    let refresh_token = world.stored_account()["refresh_token"].clone();

    world.set_env("CI", "1");
    let started = Instant::now();
    let output = world.git(&["ls-remote", &world.repo_url()]);
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(20), "nothing hangs");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("keygate: the refresh token for"),
        "{stderr}"
    );
    assert!(
        stderr.contains("keygate login"),
        "says what to do: {stderr}"
    );
    assert_eq!(world.browser_launches().len(), 1, "no browser in CI");
    assert_eq!(
        world.stored_account()["refresh_token"],
        refresh_token,
        "record untouched"
    );

    world.env.clear();
    ok(&world.git(&["ls-remote", &world.repo_url()]));
    assert_eq!(world.browser_launches().len(), 2, "a new browser login");
    assert_ne!(world.stored_account()["refresh_token"], refresh_token);
}

#[test]
fn erase_drops_only_our_access_token_and_keeps_the_refresh_token() {
    let world = World::start(Options::default());
    let first = world.credential_fill();
    ok(&first);
    let token = credential_field(&first, "password").unwrap();
    let username = credential_field(&first, "username").unwrap();
    let host = world.git_url.trim_start_matches("https://").to_owned();

    // Someone else's password: nothing changes.
    let other = format!("protocol=https\nhost={host}\nusername={username}\npassword=not-ours\n\n");
    ok(&world.credential("reject", &other));
    assert_eq!(
        world.stored_account()["access_token"].as_str(),
        Some(token.as_str())
    );

    let ours = format!("protocol=https\nhost={host}\nusername={username}\npassword={token}\n\n");
    ok(&world.credential("reject", &ours));
    let account = world.stored_account();
    assert!(account["access_token"].is_null(), "access token dropped");
    assert!(
        account["refresh_token"].as_str().is_some(),
        "refresh token kept"
    );

    let again = world.credential_fill();
    ok(&again);
    assert_eq!(
        world.token_requests("refresh_token"),
        1,
        "next get refreshes"
    );
    assert_ne!(credential_field(&again, "password").unwrap(), token);
    assert_eq!(world.browser_launches().len(), 1);
}

#[test]
fn get_for_an_unconfigured_host_prints_nothing() {
    let world = World::start(Options::default());
    let output = keygate_get(&world, b"protocol=https\nhost=unrelated.example.org\n\n");
    ok(&output);
    assert!(output.stdout.is_empty());
    assert!(output.stderr.is_empty());
    assert!(world.browser_launches().is_empty());
}

fn keygate_get(world: &World, input: &[u8]) -> std::process::Output {
    let mut command = world.command(common::KEYGATE);
    command.arg("get");
    common::run_with_input(command, input)
}

#[test]
fn malformed_requests_are_refused_with_one_line_and_no_credential() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    let host = world.git_url.trim_start_matches("https://").to_owned();
    for bad in [
        format!("protocol=https\nhost={host}\ngarbage\n\n"),
        format!("protocol=https\nhost={host}\r\n\n"),
        format!("protocol=https\nhost={host}\npath=a\0b\n\n"),
    ] {
        let output = keygate_get(&world, bad.as_bytes());
        assert!(!output.status.success(), "{bad:?} accepted");
        assert!(
            output.stdout.is_empty(),
            "no credential printed for {bad:?}"
        );
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("keygate: malformed"), "{stderr}");
    }
}

#[test]
fn denied_consent_ends_the_login_and_a_forged_state_is_ignored() {
    let mut world = World::start(Options::default());
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "deny");
    let output = world.keygate(&["login", &world.repo_url()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(
        stderr.contains(&format!("run `keygate login {}`", world.git_url)),
        "names the real URL: {stderr}"
    );

    // A redirect with the wrong state does not end the login: it waits
    // for the real one until it times out.
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tloginTimeout = 4\n",
        world.git_url
    ));
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "forge-state");
    let output = world.keygate(&["login", &world.repo_url()]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("ignored a redirect with a wrong"),
        "{stderr}"
    );
    assert!(stderr.contains("no authorization arrived"), "{stderr}");
    assert_eq!(
        world.token_requests("authorization_code"),
        0,
        "no code was redeemed"
    );
    assert!(!world.home.join(".local/share/keygate/tokens.json").exists());
}

#[test]
fn login_times_out_cleanly_when_no_redirect_arrives() {
    let mut world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tloginTimeout = 2\n",
        world.git_url
    ));
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "hang");
    let started = Instant::now();
    let output = world.keygate(&["login", &world.repo_url()]);
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(15));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no authorization arrived"), "{stderr}");
    assert!(
        stderr.contains(world.oidc["authorization_endpoint"].as_str().unwrap()),
        "URL printed: {stderr}"
    );
}

#[test]
fn bearer_auth_when_git_announces_authtype() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tauthType = bearer\n",
        world.git_url
    ));
    ok(&world.git(&["ls-remote", &world.repo_url()]));
    let requests = common::read_jsonl(&world.certs.join("git-requests.jsonl"));
    assert!(
        requests
            .iter()
            .any(|r| r["auth"] == "bearer" && r["status"] == 200),
        "{requests:?}"
    );
    assert!(!requests.iter().any(|r| r["auth"] == "basic"));
}

#[test]
fn status_lists_accounts_without_secrets_and_token_prints_a_fresh_one() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    let account = world.stored_account();
    let access = account["access_token"].as_str().unwrap().to_owned();
    let refresh = account["refresh_token"].as_str().unwrap().to_owned();

    let output = world.keygate(&["status", "--json"]);
    ok(&output);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status[0]["server"], world.git_url.as_str());
    assert_eq!(status[0]["store"], "file");
    assert_eq!(status[0]["refresh_token_present"], true);
    assert!(status[0]["expires_in_seconds"].as_i64().unwrap() > 0);
    assert_eq!(status[0]["client_id_from"], "config");
    let human = world.keygate(&["status"]);
    ok(&human);
    assert!(
        text(&human.stdout).contains("client id: config"),
        "{}",
        text(&human.stdout)
    );
    for out in [&output, &human] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(&access) && !all.contains(&refresh));
    }

    let token = world.keygate(&["token", &world.repo_url()]);
    ok(&token);
    assert_eq!(text(&token.stdout).trim(), access);

    world.expire_stored_token();
    let token = world.keygate(&["token", &world.repo_url()]);
    ok(&token);
    assert_ne!(text(&token.stdout).trim(), access, "refreshed first");
    assert_eq!(world.token_requests("refresh_token"), 1);

    ok(&world.keygate(&["logout", &world.repo_url()]));
    let output = world.keygate(&["status", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn a_user_name_in_the_url_selects_the_account() {
    let mut world = World::start(Options::default());
    let url_for = |user: &str| {
        world
            .repo_url()
            .replacen("https://", &format!("https://{user}@"), 1)
    };
    let (alice_url, bob_url) = (url_for("alice"), url_for("bob"));
    world.set_env("KEYGATE_TEST_BROWSER_USER", "alice");
    ok(&world.keygate(&["login", &alice_url]));
    world.set_env("KEYGATE_TEST_BROWSER_USER", "bob");
    ok(&world.git(&["clone", "-q", &bob_url, "bob-repo"]));
    assert_eq!(world.browser_launches().len(), 2);

    let status = world.keygate(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let accounts: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["alice", "bob"]);
    let file = world.token_file();
    let tokens: Vec<&str> = file["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["access_token"].as_str().unwrap())
        .collect();
    assert_ne!(tokens[0], tokens[1], "separate logins, separate tokens");

    // Each account answers with its own token, from the cache.
    ok(&world.git(&["clone", "-q", &alice_url, "alice-repo"]));
    assert_eq!(world.browser_launches().len(), 2);
    let requests = common::read_jsonl(&world.certs.join("git-requests.jsonl"));
    let users: std::collections::BTreeSet<&str> = requests
        .iter()
        .filter(|r| r["status"] == 200)
        .filter_map(|r| r["user"].as_str())
        .collect();
    assert!(
        users.contains("alice") && users.contains("bob"),
        "{users:?}"
    );
}

#[test]
fn an_encoded_user_name_names_the_same_account_for_login_and_git() {
    let world = World::start(Options::default());
    let url = world
        .repo_url()
        .replacen("https://", "https://alice%40corp.example@", 1);
    ok(&world.keygate(&["login", &url]));
    let status = world.keygate(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status[0]["account"], "alice@corp.example");
    // git sends the user name decoded; it must find that login's token.
    let mut fill = world.command("git");
    fill.args(["credential", "fill"]).env("CI", "1");
    let filled = common::run_with_input(fill, format!("url={url}\n\n").as_bytes());
    assert!(filled.status.success(), "{}", text(&filled.stderr));
    let stored = world.stored_account();
    let token = stored["access_token"].as_str().unwrap();
    assert!(text(&filled.stdout).contains(&format!("password={token}")));
    assert_eq!(world.authorization_requests(), 1, "no second login");
}

#[test]
fn trusts_git_ssl_cainfo_without_ssl_cert_file() {
    let mut world = World::start(Options::default());
    // Only http.sslCAInfo (in the test gitconfig) names the test CA.
    world.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    world.set_env("SSL_CERT_DIR", "/nonexistent");
    ok(&world.keygate(&["login", &world.repo_url()]));
    assert_eq!(world.token_requests("authorization_code"), 1);
}

#[test]
fn auto_store_without_a_keychain_uses_the_file_and_remembers_nothing() {
    let mut world = World::start(Options::default());
    world.set_env("KEYGATE_STORE", "auto");
    // No session bus here, as over SSH or under cron.
    let login = world.keygate(&["login", &world.repo_url()]);
    ok(&login);
    let stderr = text(&login.stderr);
    assert_eq!(
        stderr.matches("keychain unavailable").count(),
        1,
        "{stderr}"
    );
    assert!(world.stored_account()["refresh_token"].is_string());
    // Nothing remembered: a desktop session may still choose the keychain.
    let data = world.home.join(".local/share/keygate");
    assert!(!data.join("store").exists());
    // A keychain chosen elsewhere does not exist in this session either.
    std::fs::write(data.join("store"), "keychain\n").unwrap();
    let status = world.keygate(&["status"]);
    ok(&status);
    assert!(text(&status.stdout).contains("store=file"));
    assert!(text(&status.stderr).contains("no D-Bus session bus"));
}

#[test]
fn auto_store_remembers_the_keychain_where_there_is_one() {
    let mut world = World::start(Options::default());
    world.start_keyring();
    world.set_env("KEYGATE_STORE", "auto");
    let login = world.keygate(&["login", &world.repo_url()]);
    ok(&login);
    assert_eq!(
        text(&login.stderr).matches("keychain unavailable").count(),
        0
    );
    let data = world.home.join(".local/share/keygate");
    assert_eq!(
        std::fs::read_to_string(data.join("store")).unwrap(),
        "keychain"
    );
    let status = world.keygate(&["status"]);
    assert!(
        text(&status.stdout).contains("store=keychain"),
        "{}",
        text(&status.stdout)
    );
    // Every later process follows what is remembered, quietly.
    std::fs::write(data.join("store"), "file\n").unwrap();
    let status = world.keygate(&["status"]);
    ok(&status);
    assert_eq!(text(&status.stdout).trim(), "no accounts (file store)");
    assert_eq!(text(&status.stderr), "");
}

#[test]
fn install_script_is_idempotent_and_registers_the_helper() {
    let world = World::offline();
    let prefix = world.dir.path().join("prefix");
    let install = |world: &World| {
        world
            .command(common::support("../../install.sh"))
            .arg("--prefix")
            .arg(&prefix)
            .args(["--scheme", "com.example.keygate"])
            .env("KEYGATE_BIN", common::KEYGATE)
            .output()
            .unwrap()
    };
    // An earlier install registered keygate itself; the quick path
    // takes that entry's place.
    let old_entry = prefix.join("bin/keygate");
    ok(&world.git(&[
        "config",
        "--global",
        "credential.helper",
        old_entry.to_str().unwrap(),
    ]));
    let first = install(&world);
    ok(&first);
    let said = text(&first.stdout);
    assert!(
        said.contains("installed:") && said.contains("registered:"),
        "{said}"
    );
    // git-credential-keygate is its own small program, and git runs it.
    let front = prefix.join("bin/git-credential-keygate");
    assert!(!front.symlink_metadata().unwrap().is_symlink());
    let helpers = world.git(&["config", "--global", "--get-all", "credential.helper"]);
    assert_eq!(text(&helpers.stdout).trim(), front.to_str().unwrap());
    let second = install(&world);
    ok(&second);
    let said = text(&second.stdout);
    assert!(
        !said.contains("installed:") && !said.contains("registered:"),
        "{said}"
    );
    // Docker's helper: a link to the front program, which answers under
    // Docker's name.
    let docker = prefix.join("bin/docker-credential-keygate");
    assert_eq!(
        std::fs::read_link(&docker).unwrap(),
        std::path::Path::new("git-credential-keygate")
    );
    // cargo's conventional provider: the front program too, which answers
    // cargo's `get` for a cached token.
    let cargo = prefix.join("bin/cargo-credential-keygate");
    assert_eq!(
        std::fs::read_link(&cargo).unwrap(),
        std::path::Path::new("git-credential-keygate")
    );
    // Seven programs and settings, four completions, and the manual pages.
    let pages = ["man1", "man5"]
        .iter()
        .map(|s| {
            std::fs::read_dir(prefix.join("share/man").join(s))
                .unwrap()
                .count()
        })
        .sum::<usize>();
    assert!(pages > 10, "{pages} pages");
    assert_eq!(said.matches("unchanged:").count(), 11 + pages, "{said}");

    // Completions where bash-completion and fish find them, for the real CLI.
    let bash = prefix.join("share/bash-completion/completions/keygate");
    let bash = std::fs::read_to_string(bash).unwrap();
    assert!(bash.contains("login") && bash.contains("proxy"), "{bash}");
    let fish = prefix.join("share/fish/vendor_completions.d/keygate.fish");
    assert!(
        std::fs::read_to_string(fish)
            .unwrap()
            .contains("complete -c keygate")
    );
    let zsh = prefix.join("share/zsh/site-functions/_keygate");
    assert!(
        std::fs::read_to_string(zsh)
            .unwrap()
            .starts_with("#compdef keygate")
    );
    let powershell = prefix.join("share/powershell/keygate.ps1");
    assert!(
        std::fs::read_to_string(powershell)
            .unwrap()
            .contains("Register-ArgumentCompleter")
    );

    // `man keygate` finds the pages through PATH alone, as man-db does on
    // Debian for ~/.local/bin and ~/.local/share/man.
    for (args, page) in [
        (&["-w", "keygate"][..], "share/man/man1/keygate.1.gz"),
        (
            &["-w", "5", "keygate-config"][..],
            "share/man/man5/keygate-config.5.gz",
        ),
    ] {
        let found = world
            .command("man")
            .args(args)
            .env_remove("MANPATH")
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", prefix.join("bin").display()),
            )
            .output()
            .unwrap();
        ok(&found);
        assert_eq!(
            text(&found.stdout).trim(),
            prefix.join(page).to_str().unwrap()
        );
    }

    // The desktop hands com.example.keygate: redirects to keygate callback.
    let mimeapps = std::fs::read_to_string(world.home.join(".config/mimeapps.list")).unwrap();
    assert!(mimeapps.contains("x-scheme-handler/com.example.keygate=keygate-callback.desktop"));
    let desktop = world
        .home
        .join(".local/share/applications/keygate-callback.desktop");
    let desktop = std::fs::read_to_string(desktop).unwrap();
    assert!(desktop.contains(&format!(
        "Exec={}/bin/keygate callback %u",
        prefix.display()
    )));

    let helpers = world.git(&["config", "--global", "--get-all", "credential.helper"]);
    assert_eq!(text(&helpers.stdout).lines().count(), 1);
    // Anything but a quick get or store is keygate's, run in its place.
    let version = world
        .command(prefix.join("bin/git-credential-keygate"))
        .arg("--version")
        .output()
        .unwrap();
    ok(&version);
    assert_eq!(version.stdout, world.keygate(&["--version"]).stdout);
}

/// keygate reads git's config itself; these are the sources git has
/// beyond the global file: `git -c`, the repository's config, includes.
#[test]
fn config_from_git_c_the_repository_and_includes_is_honoured() {
    let world = World::start(Options::default());
    let requests = |scheme: &str| {
        common::read_jsonl(&world.certs.join("git-requests.jsonl"))
            .iter()
            .filter(|r| r["auth"] == scheme && r["status"] == 200)
            .count()
    };
    let bearer = format!("keygate.{}.authType=bearer", world.git_url);

    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    assert_eq!(requests("bearer"), 0);

    ok(&world.git(&["-c", &bearer, "ls-remote", &world.repo_url()]));
    let after_c = requests("bearer");
    assert!(after_c > 0, "git -c reached keygate");

    let repo = world.dir.path().join("repo");
    let repo = repo.to_str().unwrap();
    let (key, value) = bearer.split_once('=').unwrap();
    ok(&world.git(&["-C", repo, "config", key, value]));
    ok(&world.git(&["-C", repo, "fetch", "-q"]));
    let after_local = requests("bearer");
    assert!(
        after_local > after_c,
        "the repository's config reached keygate"
    );

    ok(&world.git(&["-C", repo, "config", "--unset", key]));
    let included = world.dir.path().join("included.gitconfig");
    std::fs::write(
        &included,
        format!("[keygate \"{}\"]\n\tauthType = bearer\n", world.git_url),
    )
    .unwrap();
    world.write_gitconfig(&format!("[include]\n\tpath = {}\n", included.display()));
    ok(&world.git(&["-C", repo, "fetch", "-q"]));
    assert!(
        requests("bearer") > after_local,
        "an included file reached keygate"
    );
}
