//! The forges as their documentation says they behave, not as RFC 6749
//! says they should: tests/support/forge_server.py speaks GitHub's,
//! Bitbucket's or GitLab's dialect (errors with HTTP 200, their own error
//! codes, `slow_down` with a new interval, confidential consumers and the
//! callback-prefix rule), and real git clones, fetches and pushes through
//! `credential.helper=keygate` against a git server that accepts only the
//! forge's live tokens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::{self, Guard, KEYGATE, Record, World, ok, read_jsonl, support, text};

const CLIENT_ID: &str = "forge-client";
const CLIENT_SECRET: &str = "forge-secret-do-not-leak";

/// A forge-like OAuth server, a git server trusting its tokens, and a
/// world configured for them. Servers stop before the world's files go.
struct Forge {
    _servers: Vec<Guard>,
    world: World,
    info: Value,
    git_url: String,
}

/// Starts `command` and reads the JSON line it prints once listening.
fn start_server(mut command: Command, log: std::path::PathBuf) -> (Guard, Value) {
    command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .stdin(Stdio::null());
    let mut child = command.spawn().expect("start a test server");
    let stdout = child.stdout.take().unwrap();
    let guard = Guard::new(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let info = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("no JSON line from the server ({e}): {line:?}"));
    (guard, info)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Forge {
    fn start(dialect: &str, secret: Option<&str>, callback: &str, args: &[&str]) -> Forge {
        let world = World::offline();
        let mut forge = Command::new("python3");
        forge
            .arg(support("forge_server.py"))
            .arg("--dir")
            .arg(&world.certs)
            .args([
                "--dialect",
                dialect,
                "--client-id",
                CLIENT_ID,
                "--callback",
                callback,
            ])
            .args(args);
        if let Some(secret) = secret {
            forge.args(["--client-secret", secret]);
        }
        let (forge_guard, info) = start_server(forge, world.dir.path().join("forge.log"));

        let repos = world.dir.path().join("repos");
        let status = Command::new(support("make_repo.sh"))
            .arg(&repos)
            .arg("demo")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "make_repo.sh");
        let mut git = Command::new("python3");
        git.arg(support("git_server.py"))
            .arg("--root")
            .arg(&repos)
            .arg("--dir")
            .arg(&world.certs)
            .arg("--introspect")
            .arg(info["introspection_endpoint"].as_str().unwrap());
        let (git_guard, git_info) = start_server(git, world.dir.path().join("git-server.log"));
        let git_url = git_info["url"].as_str().unwrap().to_owned();
        Forge {
            // The git server first: it asks the forge about every token.
            _servers: vec![git_guard, forge_guard],
            world,
            info,
            git_url,
        }
    }

    fn endpoint(&self, name: &str) -> &str {
        self.info[name].as_str().unwrap()
    }

    fn repo_url(&self) -> String {
        format!("{}/demo.git", self.git_url)
    }

    /// keygate configured for the git server with this forge's endpoints,
    /// plus `extra` lines in the `keygate.<url>` section.
    fn configure(&self, extra: &str) {
        let config = format!(
            "[user]\n\tname = Test\n\temail = test@example.com\n\
             [init]\n\tdefaultBranch = main\n\
             [credential]\n\thelper = keygate\n\
             [keygate \"{git}\"]\n\tclientId = {CLIENT_ID}\n\tauthUrl = {auth}\n\ttokenUrl = {token}\n{extra}\
             [http]\n\tsslCAInfo = {ca}\n",
            git = self.git_url,
            auth = self.endpoint("authorization_endpoint"),
            token = self.endpoint("token_endpoint"),
            ca = self.world.ca().display(),
        );
        std::fs::write(self.world.gitconfig_path(), config).unwrap();
    }

    /// Steers the forge (see forge_server.py's settings).
    fn set(&self, settings: Value) {
        let status = Command::new("curl")
            .args(["-sS", "-f", "-o", "/dev/null", "--cacert"])
            .arg(self.world.ca())
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(settings.to_string())
            .arg(format!("{}/__test/set", self.endpoint("url")))
            .status()
            .unwrap();
        assert!(status.success(), "POST /__test/set");
    }

    fn admin(&self, path: &str) {
        let status = Command::new("curl")
            .args(["-sS", "-f", "-o", "/dev/null", "-X", "POST", "--cacert"])
            .arg(self.world.ca())
            .arg(format!("{}{path}", self.endpoint("url")))
            .status()
            .unwrap();
        assert!(status.success(), "POST {path}");
    }

    /// The person on another device enters the code and approves (or denies).
    fn answer_device(&self, user_code: &str, action: &str) {
        let status = Command::new("curl")
            .args(["-sS", "-f", "-o", "/dev/null", "--cacert"])
            .arg(self.world.ca())
            .args(["--data-urlencode", &format!("user_code={user_code}")])
            .args(["-d", &format!("action={action}")])
            .arg(self.endpoint("verification_uri"))
            .status()
            .unwrap();
        assert!(status.success(), "the person's {action}");
    }

    fn events(&self) -> Vec<Value> {
        read_jsonl(&self.world.certs.join("forge-events.jsonl"))
    }

    fn token_requests(&self, grant_type: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["endpoint"] == "token" && e["grant_type"] == grant_type)
            .count()
    }

    fn git(&self, args: &[&str]) -> Output {
        self.world.git(args)
    }

    /// `git` as CI runs it: nobody to ask.
    fn git_ci(&self, args: &[&str]) -> Output {
        self.world
            .command("git")
            .args(args)
            .env("CI", "1")
            .output()
            .unwrap()
    }

    fn keygate(&self, args: &[&str]) -> Output {
        self.world.keygate(args)
    }

    fn status_json(&self) -> Value {
        let output = self.keygate(&["status", "--json"]);
        ok(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// A GitHub-like forge, keygate configured as the README's GitHub recipe
/// says (secret in the form body), plus `extra`.
fn github_with(extra: &str) -> Forge {
    let forge = Forge::start(
        "github",
        Some(CLIENT_SECRET),
        "http://127.0.0.1/callback",
        // A short-lived code, so a keygate that polls wrongly fails in
        // two minutes rather than GitHub's fifteen.
        &["--interval", "1", "--device-expires-in", "120"],
    );
    forge.configure(&format!(
        "\tclientSecret = {CLIENT_SECRET}\n\tclientAuth = post\n\tusername = x-access-token\n\
         \tdeviceUrl = {}\n\tscopes = repo gist\n{extra}",
        forge.endpoint("device_authorization_endpoint")
    ));
    forge
}

fn github() -> Forge {
    github_with("")
}

/// Forced to the device grant, as on an SSH session.
fn github_device() -> Forge {
    github_with("\tredirect = device\n")
}

/// A `keygate login` running the device grant, read up to its code.
struct DeviceLogin {
    child: std::process::Child,
    said: String,
    user_code: String,
    rest: std::thread::JoinHandle<String>,
}

impl DeviceLogin {
    fn start(forge: &Forge, extra_env: &[(&str, &str)]) -> DeviceLogin {
        let mut command = forge.world.command(KEYGATE);
        command
            .args(["login", &forge.repo_url()])
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let mut user_code = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if let Some(code) = line.strip_prefix("keygate: and enter the code ") {
                user_code = Some(code.to_owned());
                break;
            }
        }
        let rest =
            std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        DeviceLogin {
            child,
            user_code: user_code.unwrap_or_else(|| panic!("no user code in: {said}")),
            said,
            rest,
        }
    }

    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        (status, self.rest.join().unwrap())
    }
}

#[test]
fn github_device_flow_survives_http_200_errors_and_honours_slow_down() {
    let forge = github_device();
    // GitHub: a poll sooner than the interval gets slow_down, which adds
    // 5 s and carries the new interval. Here the first poll gets one, with
    // a step of 7 s: keygate must wait what the body says, not 5 s more.
    forge.set(json!({"slow_down_first": true, "slow_down_step": 7}));
    let login = DeviceLogin::start(&forge, &[]);
    assert!(login.said.contains("/login/device"), "{}", login.said);
    forge.answer_device(&login.user_code, "approve");
    let (status, rest) = login.finish();
    assert!(status.success(), "{rest}");

    let polls: Vec<Value> = forge
        .events()
        .into_iter()
        .filter(|e| e["endpoint"] == "device_poll")
        .collect();
    let slow_downs = polls.iter().filter(|e| e["verdict"] == "slow_down").count();
    assert_eq!(slow_downs, 1, "only the scripted slow_down: {polls:?}");
    assert!(polls.iter().all(|e| e["early"] == false), "{polls:?}");
    assert_eq!(polls.last().unwrap()["verdict"], "approved");

    // GitHub's comma-separated scope, and its refresh-token lifetime.
    let status = forge.status_json();
    let account = &status[0];
    assert_eq!(account["scopes"], json!(["repo", "gist"]), "{status}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let refresh_ends = account["refresh_token_expires_at"].as_u64().unwrap();
    assert!(refresh_ends > now + 15_000_000, "{status}");
    let listing = text(&forge.keygate(&["status"]).stdout);
    assert!(listing.contains("expires in"), "{listing}");

    // The token works with real git, and the push goes through.
    ok(&forge.git(&["clone", "-q", &forge.repo_url(), "work"]));
    let work = forge.world.dir.path().join("work");
    std::fs::write(work.join("new.txt"), "pushed through keygate\n").unwrap();
    let in_work = |args: &[&str]| {
        forge
            .world
            .command("git")
            .current_dir(&work)
            .args(args)
            .output()
            .unwrap()
    };
    ok(&in_work(&["add", "new.txt"]));
    ok(&in_work(&["commit", "-q", "-m", "forge push"]));
    ok(&in_work(&["push", "-q", "origin", "main"]));
}

#[test]
fn github_browser_login_needs_the_secret_and_a_dead_refresh_token_is_not_sent_again() {
    let forge = github();
    // Without the secret GitHub refuses the code exchange, with HTTP 200:
    // the user reads GitHub's own words, not a JSON parse error.
    forge.configure(&format!(
        "\tclientAuth = post\n\tusername = x-access-token\n\tdeviceUrl = {}\n",
        forge.endpoint("device_authorization_endpoint")
    ));
    let refused = forge.git(&["ls-remote", &forge.repo_url()]);
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(said.contains("incorrect_client_credentials"), "{said}");
    assert!(!said.contains("cannot read"), "{said}");

    // With it, a person in the browser logs in, and git clones.
    let forge_config = format!(
        "\tclientSecret = {CLIENT_SECRET}\n\tclientAuth = post\n\tusername = x-access-token\n"
    );
    forge.configure(&forge_config);
    ok(&forge.git(&["clone", "-q", &forge.repo_url(), "work"]));
    assert_eq!(forge.token_requests("authorization_code"), 2);
    // No scopes asked for: GitHub answers `"scope": ""`, which is no scope.
    let stored = forge.world.stored_account();
    assert_eq!(stored["scopes"], json!([]), "{stored}");

    // A passing failure (503) keeps the refresh token, unmarked.
    forge.world.expire_stored_token();
    forge.set(json!({"token_status": 503}));
    let failed = forge.git_ci(&["ls-remote", &forge.repo_url()]);
    assert!(!failed.status.success());
    let said = text(&failed.stderr);
    assert!(said.contains("HTTP 503"), "{said}");
    let stored = forge.world.stored_account();
    assert!(stored["refresh_token"].is_string());
    assert!(stored.get("refresh_token_rejected").is_none(), "{stored}");
    forge.set(json!({"token_status": 0}));

    // The grant dies at GitHub: it answers bad_refresh_token, with HTTP 200.
    forge.admin("/__test/revoke-all");
    let refreshes_before = forge.token_requests("refresh_token");
    let failed = forge.git_ci(&["ls-remote", &forge.repo_url()]);
    assert!(!failed.status.success());
    let said = text(&failed.stderr);
    assert!(said.contains("bad_refresh_token"), "{said}");
    assert!(
        said.contains(&format!("run `keygate login {}`", forge.git_url)),
        "{said}"
    );
    let keygate_lines: Vec<&str> = said.lines().filter(|l| l.starts_with("keygate:")).collect();
    assert_eq!(keygate_lines.len(), 1, "one line: {said}");
    assert_eq!(forge.token_requests("refresh_token"), refreshes_before + 1);

    // Every later git command knows it is dead and does not send it again.
    let again = forge.git_ci(&["ls-remote", &forge.repo_url()]);
    assert!(!again.status.success());
    let said = text(&again.stderr);
    assert!(
        said.contains("refused earlier (bad_refresh_token)"),
        "{said}"
    );
    assert!(said.contains("keygate login"), "{said}");
    assert_eq!(forge.token_requests("refresh_token"), refreshes_before + 1);
    let listing = text(&forge.keygate(&["status"]).stdout);
    assert!(
        listing.contains("rejected (bad_refresh_token)"),
        "{listing}"
    );
    assert!(!listing.contains("ref_"), "no token in status");

    // With a person there, the next git command logs in again in the browser.
    let codes_before = forge.token_requests("authorization_code");
    ok(&forge.git(&["-C", "work", "fetch", "-q"]));
    assert_eq!(forge.token_requests("authorization_code"), codes_before + 1);
    assert_eq!(forge.token_requests("refresh_token"), refreshes_before + 1);
    let stored = forge.world.stored_account();
    assert!(stored.get("refresh_token_rejected").is_none(), "{stored}");

    // A dead grant found while a person is there goes straight to a login.
    forge.admin("/__test/revoke-all");
    forge.world.expire_stored_token();
    ok(&forge.git(&["ls-remote", &forge.repo_url()]));
    assert_eq!(forge.token_requests("authorization_code"), codes_before + 2);
    assert_eq!(forge.token_requests("refresh_token"), refreshes_before + 2);
}

#[test]
fn github_refresh_rotates_and_a_body_that_is_neither_token_nor_error_is_named() {
    let forge = github();
    ok(&forge.git(&["clone", "-q", &forge.repo_url(), "work"]));
    let first = forge.world.stored_account();

    // A refresh: GitHub sends a new refresh token (the old one dies) and
    // a new six-month lifetime.
    forge.world.expire_stored_token();
    ok(&forge.git_ci(&["ls-remote", &forge.repo_url()]));
    let second = forge.world.stored_account();
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    assert!(second["refresh_token_expires_at"].is_u64());
    assert_eq!(forge.token_requests("refresh_token"), 1);

    // A 200 answer with neither a token nor an error: named, never quoted.
    forge.set(
        json!({"token_body": "{\"token\": \"looks-like-a-secret\", \"token_type\": \"bearer\"}"}),
    );
    forge.world.expire_stored_token();
    let output = forge
        .world
        .command(KEYGATE)
        .args(["token", &forge.repo_url()])
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(said.contains("missing access_token"), "{said}");
    assert!(!said.contains("looks-like-a-secret"), "{said}");
    let kept = forge.world.stored_account();
    assert_eq!(kept["refresh_token"], second["refresh_token"]);
    assert!(kept.get("refresh_token_rejected").is_none(), "{kept}");
}

#[test]
fn github_device_flow_disabled_in_the_app_settings_is_said_plainly() {
    let forge = github_device();
    forge.set(json!({"device_disabled": true}));
    let output = forge.keygate(&["login", &forge.repo_url()]);
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(said.contains("device_flow_disabled"), "{said}");
    assert!(said.contains("enable it in the app's settings"), "{said}");
}

#[test]
fn device_flow_stops_on_incorrect_device_code() {
    let forge = github_device();
    let login = DeviceLogin::start(&forge, &[]);
    forge.admin("/__test/forget-device-codes");
    let (status, rest) = login.finish();
    assert!(!status.success());
    assert!(rest.contains("incorrect_device_code"), "{rest}");
    assert!(rest.contains("keygate login"), "{rest}");
}

#[test]
fn device_flow_polls_until_the_code_expires_without_an_explicit_login_timeout() {
    // The code lives 3 s; loginTimeout is not set (its default, 300 s,
    // is for the browser): keygate stops when the code has expired.
    let forge = Forge::start(
        "github",
        Some(CLIENT_SECRET),
        "http://127.0.0.1/callback",
        &["--interval", "1", "--device-expires-in", "3"],
    );
    forge.configure(&format!(
        "\tclientSecret = {CLIENT_SECRET}\n\tclientAuth = post\n\tredirect = device\n\tdeviceUrl = {}\n",
        forge.endpoint("device_authorization_endpoint")
    ));
    let login = DeviceLogin::start(&forge, &[]);
    let (status, rest) = login.finish();
    assert!(!status.success());
    assert!(
        rest.contains("no authorization arrived") || rest.contains("expired_token"),
        "{rest}"
    );
    let polls = forge
        .events()
        .iter()
        .filter(|e| e["endpoint"] == "device_poll")
        .count();
    assert!(polls >= 1, "it polled while the code lived");
}

#[test]
fn escape_sequences_from_the_server_reach_the_terminal_escaped() {
    let forge = github_device();
    // OSC 52 (write the clipboard) in the user code, a screen clear in
    // the error description.
    let hostile_code = "\u{1b}]52;c;SGVsbG8=\u{7}WDJB-MJHT";
    forge.set(json!({
        "user_code": hostile_code,
        "deny_description": "denied \u{1b}[2J\u{1b}]0;pwned\u{7} by the user",
    }));
    let login = DeviceLogin::start(&forge, &[]);
    assert_eq!(login.user_code, "\\u{1b}]52;c;SGVsbG8=\\u{7}WDJB-MJHT");
    assert!(!login.said.contains('\u{1b}'), "{:?}", login.said);
    forge.answer_device(hostile_code, "deny");
    let (status, rest) = login.finish();
    assert!(!status.success());
    assert!(rest.contains("denied"), "{rest}");
    assert!(rest.contains("\\u{1b}[2J"), "{rest:?}");
    assert!(
        !rest.contains('\u{1b}') && !rest.contains('\u{7}'),
        "{rest:?}"
    );
}

fn bitbucket(callback_port: u16) -> Forge {
    let callback = format!("http://127.0.0.1:{callback_port}/callback");
    let forge = Forge::start("bitbucket", Some(CLIENT_SECRET), &callback, &[]);
    forge.configure(&format!(
        "\tclientSecret = {CLIENT_SECRET}\n\tredirectUrl = {callback}\n\tusername = x-token-auth\n\
         \tscopes = repository repository:write\n"
    ));
    forge
}

#[test]
fn bitbucket_confidential_consumer_on_a_fixed_callback_port_clones_and_refreshes() {
    let forge = bitbucket(free_port());
    ok(&forge.git(&["clone", "-q", &forge.repo_url(), "work"]));
    let events = forge.events();
    let authorize = events
        .iter()
        .find(|e| e["endpoint"] == "authorize")
        .unwrap();
    assert_eq!(authorize["redirect_ok"], true, "{authorize}");
    let exchange = events
        .iter()
        .find(|e| e["grant_type"] == "authorization_code")
        .unwrap();
    assert_eq!(exchange["client_auth"], "basic", "{exchange}");
    assert_eq!(exchange["outcome"], "token", "{exchange}");
    let first = forge.world.stored_account();
    // Bitbucket names the granted scopes `scopes`.
    assert_eq!(first["scopes"], json!(["repository", "repository:write"]));

    // Refresh: key and secret by Basic, and Bitbucket's refresh token stays.
    forge.world.expire_stored_token();
    ok(&forge.git_ci(&["-C", "work", "fetch", "-q"]));
    let second = forge.world.stored_account();
    assert_eq!(first["refresh_token"], second["refresh_token"]);
    assert_ne!(first["access_token"], second["access_token"]);

    // A revoked consumer grant: invalid_grant, HTTP 400, dead.
    forge.admin("/__test/revoke-all");
    forge.world.expire_stored_token();
    let failed = forge.git_ci(&["ls-remote", &forge.repo_url()]);
    assert!(!failed.status.success());
    let said = text(&failed.stderr);
    assert!(said.contains("invalid_grant"), "{said}");
    assert!(said.contains("keygate login"), "{said}");
}

#[test]
fn bitbucket_refuses_an_ephemeral_port_so_the_login_never_gets_its_redirect() {
    // The consumer's callback names a port; keygate's default redirect
    // (no port: an ephemeral one) does not start with it.
    let forge = bitbucket(free_port());
    forge.configure(&format!(
        "\tclientSecret = {CLIENT_SECRET}\n\tusername = x-token-auth\n\tloginTimeout = 5\n"
    ));
    let output = forge.keygate(&["login", &forge.repo_url()]);
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(said.contains("no authorization arrived"), "{said}");
    let authorize = forge
        .events()
        .into_iter()
        .find(|e| e["endpoint"] == "authorize")
        .unwrap();
    assert_eq!(authorize["redirect_ok"], false, "{authorize}");
}

#[test]
fn bitbucket_callback_port_taken_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let forge = bitbucket(taken.local_addr().unwrap().port());
    let output = forge.keygate(&["login", &forge.repo_url()]);
    assert!(!output.status.success());
    let said = text(&output.stderr);
    assert!(
        said.contains("the port is taken by another program"),
        "{said}"
    );
    assert!(said.contains("redirectUrl"), "{said}");
    assert!(forge.events().is_empty(), "nothing was asked of the forge");
    drop(taken);
}

#[test]
fn gitlab_public_client_device_flow_then_rotating_refresh_and_revocation() {
    let forge = Forge::start(
        "gitlab",
        None,
        "http://127.0.0.1/callback",
        &["--interval", "1"],
    );
    forge.configure(&format!(
        "\tredirect = device\n\tdeviceUrl = {}\n\trevokeUrl = {}\n\tusername = oauth2\n\
         \tscopes = read_repository write_repository\n",
        forge.endpoint("device_authorization_endpoint"),
        forge.endpoint("revocation_endpoint"),
    ));
    let login = DeviceLogin::start(&forge, &[]);
    forge.answer_device(&login.user_code, "approve");
    let (status, rest) = login.finish();
    assert!(status.success(), "{rest}");
    let first = forge.world.stored_account();
    assert_eq!(
        first["scopes"],
        json!(["read_repository", "write_repository"])
    );
    ok(&forge.git_ci(&["ls-remote", &forge.repo_url()]));

    forge.world.expire_stored_token();
    ok(&forge.git_ci(&["ls-remote", &forge.repo_url()]));
    let second = forge.world.stored_account();
    assert_ne!(first["refresh_token"], second["refresh_token"], "rotated");

    ok(&forge.keygate(&["logout", &forge.repo_url()]));
    assert!(forge.events().iter().any(|e| e["endpoint"] == "revoke"));
    let failed = forge.git_ci(&["ls-remote", &forge.repo_url()]);
    assert!(!failed.status.success());
}

#[test]
fn no_secret_or_token_reaches_the_forge_logs_or_keygate_output() {
    let forge = github();
    let clone = forge.git(&["clone", "-q", &forge.repo_url(), "work"]);
    ok(&clone);
    let stored = forge.world.stored_account();
    let access = stored["access_token"].as_str().unwrap().to_owned();
    let refresh = stored["refresh_token"].as_str().unwrap().to_owned();
    let events = std::fs::read_to_string(forge.world.certs.join("forge-events.jsonl")).unwrap();
    let outputs = format!("{}{}", text(&clone.stdout), text(&clone.stderr));
    for secret in [access.as_str(), refresh.as_str(), CLIENT_SECRET] {
        assert!(!events.contains(secret));
        assert!(!outputs.contains(secret));
    }
}

#[test]
fn the_last_week_of_a_refresh_token_is_announced_once_a_day() {
    let world = World::offline();
    let server = "https://git.example.test";
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[keygate \"{server}\"]\n\tclientId = c\n\tauthUrl = https://auth.example.test/a\n\
             \ttokenUrl = https://auth.example.test/t\n"
        ),
    )
    .unwrap();
    let now = common::now();
    let seed = |refresh_ends: u64| {
        world.seed_token_file(
            Record::new(server, "fresh-access-token")
                .times(now, now + 7200)
                .refresh_token("refresh-token")
                .refresh_token_expires_at(refresh_ends)
                .scopes(&[]),
        )
    };
    let get = || {
        let mut command = world.command(KEYGATE);
        command.arg("get");
        common::run_with_input(command, b"protocol=https\nhost=git.example.test\n\n")
    };

    // Weeks left: nothing said, nothing written.
    seed(now + 30 * 86_400);
    let quiet = get();
    ok(&quiet);
    assert!(text(&quiet.stdout).contains("password=fresh-access-token"));
    assert_eq!(text(&quiet.stderr), "");
    assert!(!world.home.join(".local/share/keygate/notices").exists());

    // Three days (and an hour, so seconds passing cannot make it two) left:
    // one line, once.
    let ends = now + 3 * 86_400 + 3600;
    seed(ends);
    let first = get();
    ok(&first);
    let said = text(&first.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("in 3 days"), "{said}");
    assert!(said.contains(&format!("keygate login {server}")), "{said}");
    assert!(text(&first.stdout).contains("password=fresh-access-token"));
    let second = get();
    ok(&second);
    assert_eq!(text(&second.stderr), "", "at most once a day");

    let listing = text(&world.keygate(&["status"]).stdout);
    assert!(listing.contains("expires in 3d"), "{listing}");
    let status: Value =
        serde_json::from_slice(&world.keygate(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status[0]["refresh_token_expires_at"], ends);
}
