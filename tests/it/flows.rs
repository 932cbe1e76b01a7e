//! Every way to authorize, end to end against oidc-provider and real git:
//! custom-scheme redirect handed over by `keygate callback`, the device
//! grant, CI without a person, client credentials, tokens from the
//! environment, and revocation on logout.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, Options, Record, World, ok, support, text};

const SCHEME_REDIRECT: &str = "com.example.keygate:/callback";

fn scheme_world() -> World {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tredirect = scheme\n\tredirectUrl = {SCHEME_REDIRECT}\n",
        world.git_url
    ));
    world
}

#[test]
fn scheme_redirect_is_handed_to_the_waiting_clone() {
    let world = scheme_world();
    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    assert_eq!(world.token_requests("authorization_code"), 1);
    let resume = world
        .events()
        .into_iter()
        .rfind(|e| e["endpoint"] == "authorization_resume")
        .unwrap();
    assert_eq!(
        resume["redirect"], SCHEME_REDIRECT,
        "the server redirected to the scheme"
    );
    let launch = &world.browser_launches()[0];
    assert!(
        launch["url"]
            .as_str()
            .unwrap()
            .contains("redirect_uri=com.example.keygate")
    );
}

/// Waits until a login has registered its hand-off socket and sent the
/// person to the browser.
fn wait_for_login(world: &World) {
    let dir = world.home.join(".local/share/keygate/run/callbacks");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some())
        || world.browser_launches().is_empty()
    {
        assert!(Instant::now() < deadline, "no login started waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn forged_or_orphan_callbacks_are_refused_and_the_real_one_still_works() {
    let mut world = scheme_world();
    let callback = |world: &World, url: &str| world.keygate(&["callback", url]);

    let orphan = callback(
        &world,
        &format!("{SCHEME_REDIRECT}?code=abc&state=nobody-waits"),
    );
    assert!(!orphan.status.success());
    assert!(
        text(&orphan.stderr).contains("no keygate login is waiting"),
        "{}",
        text(&orphan.stderr)
    );

    // The browser only records the authorization URL; the test plays the
    // person later.
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "hang");
    let login = world
        .command(common::KEYGATE)
        .args(["login", &world.repo_url()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let login = common::Guard::new(login);
    wait_for_login(&world);

    let forged = callback(
        &world,
        &format!("{SCHEME_REDIRECT}?code=stolen&state=forged-state"),
    );
    assert!(!forged.status.success());
    let said = text(&forged.stderr);
    assert!(said.contains("state"), "{said}");
    assert_eq!(world.token_requests("authorization_code"), 0);

    let launches = world.browser_launches();
    let auth_url = launches[0]["url"].as_str().unwrap().to_owned();
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "approve");
    let person = world
        .command(support("browser.py"))
        .arg(&auth_url)
        .output()
        .unwrap();
    ok(&person);
    ok(&login.wait_with_output());
    assert_eq!(world.token_requests("authorization_code"), 1);
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

fn device_world() -> World {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tredirect = device\n\tdeviceUrl = {}\n",
        world.git_url,
        world.oidc["device_authorization_endpoint"]
            .as_str()
            .unwrap()
    ));
    world
}

/// A `keygate login` running the device grant.
struct DeviceLogin {
    child: std::process::Child,
    user_code: String,
    complete_url: String,
    rest_of_stderr: std::thread::JoinHandle<String>,
}

impl DeviceLogin {
    /// Waits for the login to end: its status and what it said after the code.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        (status, self.rest_of_stderr.join().unwrap())
    }
}

/// Starts `keygate login` and reads the user code and the verification
/// URL (the complete one) it prints.
fn start_device_login(world: &World) -> DeviceLogin {
    let mut child = world
        .command(common::KEYGATE)
        .args(["login", &world.repo_url()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut user_code = None;
    let mut complete = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(code) = line.strip_prefix("keygate: and enter the code ") {
            user_code = Some(code.to_owned());
        }
        if let Some(url) = line.strip_prefix("keygate: or open ") {
            complete = Some(url.to_owned());
            break;
        }
    }
    let rest_of_stderr =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    DeviceLogin {
        child,
        user_code: user_code.expect("a user code"),
        complete_url: complete.expect("verification_uri_complete"),
        rest_of_stderr,
    }
}

#[test]
fn device_grant_prints_the_code_and_polls_until_approved() {
    let world = device_world();
    let login = start_device_login(&world);
    assert!(
        login.complete_url.contains("user_code="),
        "{}",
        login.complete_url
    );
    // The person approves on another device, through the real pages.
    let person = world
        .command(support("browser.py"))
        .arg(&login.complete_url)
        .output()
        .unwrap();
    ok(&person);
    let (status, said) = login.finish();
    assert!(status.success(), "{said}");
    assert!(qr_lines(&said).is_empty(), "a QR code in a pipe: {said}");
    assert!(
        world.browser_launches().len() == 1,
        "only the person's browser ran"
    );
    let polls = world
        .events()
        .iter()
        .filter(|e| e["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code")
        .count();
    assert!(polls >= 1);
    assert!(world.stored_account()["refresh_token"].is_string());
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

/// Plays the person who approves `user_code` at the test server's device
/// page.
fn approve_device(world: &World, user_code: &str) {
    let approve = std::process::Command::new("curl")
        .args(["-sS", "-f", "-o", "/dev/null", "--cacert"])
        .arg(world.ca())
        .args(["-d", &format!("user_code={user_code}")])
        .arg(world.oidc["test_approve_device"].as_str().unwrap())
        .status()
        .unwrap();
    assert!(
        approve.success(),
        "the test server did not approve {user_code}"
    );
}

#[test]
fn device_grant_stops_on_access_denied() {
    let world = device_world();
    let login = start_device_login(&world);
    let user_code = login.user_code.clone();
    let status = std::process::Command::new("curl")
        .args(["-sS", "-f", "--cacert"])
        .arg(world.ca())
        .args(["-d", &format!("user_code={user_code}")])
        .arg(
            world.oidc["test_approve_device"]
                .as_str()
                .unwrap()
                .replace("approve", "deny"),
        )
        .status()
        .unwrap();
    assert!(status.success());
    let (status, said) = login.finish();
    assert!(!status.success());
    assert!(said.contains("denied"), "{said}");
}

/// `keygate login` with the device grant under `script`, a pseudo-terminal
/// as over SSH, `COLUMNS` wide: approves the code it shows and returns
/// everything the terminal showed.
fn device_login_on_a_terminal(world: &World, columns: &str) -> String {
    let mut child = world
        .command("script")
        .args([
            "-qefc",
            &format!("{} login {}", common::KEYGATE, world.repo_url()),
            "/dev/null",
        ])
        .env("COLUMNS", columns)
        .env_remove("GIT_TERMINAL_PROMPT")
        // Held open: at the end of its input `script` would hang up.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut shown = Vec::new();
    let mut user_code = None;
    for line in lines.by_ref().map_while(Result::ok) {
        let line = line.trim_end_matches('\r').to_owned();
        user_code = line
            .strip_prefix("keygate: and enter the code ")
            .map(str::to_owned);
        shown.push(line);
        if user_code.is_some() {
            break;
        }
    }
    let user_code = user_code.unwrap_or_else(|| panic!("no user code: {}", shown.join("\n")));
    approve_device(world, &user_code);
    shown.extend(
        lines
            .map_while(Result::ok)
            .map(|l| l.trim_end_matches('\r').to_owned()),
    );
    let status = child.wait().unwrap();
    let shown = shown.join("\n");
    assert!(status.success(), "{shown}");
    assert!(shown.contains("logged in"), "{shown}");
    shown
}

/// The lines of a half-block drawing in what a terminal showed.
pub(crate) fn qr_lines(shown: &str) -> Vec<&str> {
    shown
        .lines()
        .filter(|l| l.contains(['█', '▀', '▄']) && l.chars().all(|c| "█▀▄ ".contains(c)))
        .collect()
}

/// What zbar reads in a half-block drawing shown on a dark terminal.
pub(crate) fn decode_qr(drawing: &[&str]) -> String {
    use std::io::Write;
    // Debian's python3-zbar is a module of Debian's Python, which a
    // python3 earlier on PATH (pyenv, a venv) would not see.
    let mut decoder = std::process::Command::new("/usr/bin/python3")
        .arg(support("qr_decode.py"))
        .arg("dark")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = decoder.stdin.take().unwrap();
    input
        .write_all(format!("{}\n", drawing.join("\n")).as_bytes())
        .unwrap();
    drop(input);
    let output = decoder.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "zbar (python3-zbar) read no QR code: {}\n{}",
        text(&output.stderr),
        drawing.join("\n")
    );
    text(&output.stdout).trim_end().to_owned()
}

#[test]
fn device_grant_on_a_terminal_draws_a_qr_code_of_the_url() {
    let world = device_world();
    let shown = device_login_on_a_terminal(&world, "120");
    let complete = shown
        .lines()
        .find_map(|l| l.strip_prefix("keygate: or open "))
        .unwrap_or_else(|| panic!("verification_uri_complete: {shown}"));
    assert!(complete.contains("user_code="), "{complete}");
    let drawing = qr_lines(&shown);
    assert!(!drawing.is_empty(), "no QR code: {shown}");
    eprintln!("the terminal showed:\n{shown}");
    assert_eq!(decode_qr(&drawing), complete);
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

#[test]
fn no_qr_code_when_turned_off_too_narrow_or_under_ci() {
    let world = device_world();
    let narrow = device_login_on_a_terminal(&world, "20");
    assert!(narrow.contains("keygate: or open "), "{narrow}");
    assert!(qr_lines(&narrow).is_empty(), "{narrow}");

    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tredirect = device\n\tdeviceUrl = {}\n\tqr = false\n",
        world.git_url,
        world.oidc["device_authorization_endpoint"]
            .as_str()
            .unwrap()
    ));
    let off = device_login_on_a_terminal(&world, "120");
    assert!(off.contains("keygate: or open "), "{off}");
    assert!(qr_lines(&off).is_empty(), "{off}");

    // Under CI no one is asked at all, so there is no code to draw either.
    let output = world
        .command("script")
        .args([
            "-qefc",
            &format!("{} login {}", common::KEYGATE, world.repo_url()),
            "/dev/null",
        ])
        .env("CI", "1")
        .env("COLUMNS", "120")
        .env_remove("GIT_TERMINAL_PROMPT")
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    let shown = text(&output.stdout);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("CI is set"), "{shown}");
    assert!(qr_lines(&shown).is_empty(), "{shown}");
}

#[test]
fn ci_with_only_a_public_client_fails_at_once_without_a_browser() {
    let mut world = World::start(Options::default());
    world.set_env("CI", "1");
    let started = Instant::now();
    let output = world.git(&["ls-remote", &world.repo_url()]);
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("keygate: no token for"), "{stderr}");
    assert!(stderr.contains("CI is set"), "{stderr}");
    assert!(
        stderr.contains("keygate login"),
        "says what to do: {stderr}"
    );
    assert!(world.browser_launches().is_empty());
    assert_eq!(world.authorization_requests(), 0);

    // Git's own switch does the same.
    world.env.clear();
    world.set_env("KEYGATE_INTERACTIVE", "never");
    let output = world.git(&["ls-remote", &world.repo_url()]);
    assert!(!output.status.success());
    assert!(world.browser_launches().is_empty());
    world.env.clear();
    let output = world.git(&[
        "-c",
        "credential.interactive=false",
        "ls-remote",
        &world.repo_url(),
    ]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("credential.interactive"));
    assert!(world.browser_launches().is_empty());
}

#[test]
fn client_secret_in_the_form_body_when_configured() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tclientId = keygate-ci-post\n\tclientSecret = ci-secret-do-not-leak\n\
         \tclientAuth = post\n\tauthUrl =\n",
        world.git_url
    ));
    // An empty authUrl and a secret: the grant is inferred.
    let mut command = world.command("git");
    command
        .args(["clone", "-q", &world.repo_url(), "repo"])
        .env("CI", "1");
    ok(&command.output().unwrap());
    assert_eq!(world.token_requests("client_credentials"), 1);
    assert_eq!(world.authorization_requests(), 0);
}

#[test]
fn a_new_grant_never_inherits_a_dead_refresh_token() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tclientId = keygate-ci-post\n\tclientSecret = ci-secret-do-not-leak\n\
         \tclientAuth = post\n\tgrant = client_credentials\n",
        world.git_url
    ));
    world.seed_token_file(
        Record::new(world.git_url.trim_end_matches('/'), "long-expired")
            .refresh_token("dead-refresh-token")
            .scopes(&[])
            .grant("client_credentials"),
    );
    let mut command = world.command("git");
    command
        .args(["clone", "-q", &world.repo_url(), "repo"])
        .env("CI", "1");
    ok(&command.output().unwrap());
    // The server rejected the dead refresh token; the client-credentials
    // token that replaced it comes without one, and none is made up.
    assert_eq!(world.token_requests("refresh_token"), 1);
    assert_eq!(world.token_requests("client_credentials"), 1);
    assert!(world.stored_account()["refresh_token"].is_null());
}

#[test]
fn tokens_never_go_to_another_client_of_the_same_host() {
    let world = World::start(Options::default());
    // Two sections of one host, two clients: a person's code-grant login
    // under /team-a, a CI client under /team-b.
    world.write_gitconfig(&format!(
        "[keygate \"{git}/team-b\"]\n\tclientId = keygate-ci-post\n\tclientSecret = ci-secret-do-not-leak\n\
         \tclientAuth = post\n\tgrant = client_credentials\n",
        git = world.git_url
    ));
    ok(&world.keygate(&["login", &format!("{}/team-a/repo.git", world.git_url)]));
    world.expire_stored_token();
    let mut command = world.command(common::KEYGATE);
    command
        .args(["token", &format!("{}/team-b/repo.git", world.git_url)])
        .env("CI", "1");
    ok(&command.output().unwrap());
    // The person's refresh token was not offered to the CI client.
    assert_eq!(world.token_requests("refresh_token"), 0);
    assert_eq!(world.token_requests("client_credentials"), 1);
}

#[test]
fn token_from_the_environment_is_served_and_never_stored() {
    let mut world = World::start(Options::default());
    let minted = std::process::Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(world.ca())
        .args([
            "-u",
            "keygate-ci:ci-secret-do-not-leak",
            "-d",
            "grant_type=client_credentials",
        ])
        .arg(world.oidc["token_endpoint"].as_str().unwrap())
        .output()
        .unwrap();
    ok(&minted);
    let minted: serde_json::Value = serde_json::from_slice(&minted.stdout).unwrap();
    let token = minted["access_token"].as_str().unwrap().to_owned();
    std::fs::write(
        world.gitconfig_path(),
        format!(
            "[credential]\n\thelper = keygate\n[keygate \"{}\"]\n\ttokenEnv = CI_JOB_TOKEN\n\tusername = gitlab-ci-token\n",
            world.git_url
        ),
    )
    .unwrap();
    world.set_env("CI", "true");
    world.set_env("CI_JOB_TOKEN", &token);
    ok(&world.git(&["clone", "-q", &world.repo_url(), "repo"]));
    let fill = world.credential_fill();
    ok(&fill);
    assert_eq!(
        common::credential_field(&fill, "username").as_deref(),
        Some("gitlab-ci-token")
    );
    assert_eq!(
        common::credential_field(&fill, "password").as_deref(),
        Some(token.as_str())
    );
    let printed = world.keygate(&["token", &world.repo_url()]);
    ok(&printed);
    assert_eq!(text(&printed.stdout).trim(), token);
    assert!(
        !world.home.join(".local/share/keygate/tokens.json").exists(),
        "never stored"
    );
    let requests = common::read_jsonl(&world.certs.join("git-requests.jsonl"));
    assert!(
        requests
            .iter()
            .any(|r| r["user"] == "gitlab-ci-token" && r["status"] == 200)
    );
}

#[test]
fn composer_auth_for_a_host() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    let output = world.keygate(&["env", "composer", &world.repo_url()]);
    ok(&output);
    let auth: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let host = world.git_url.trim_start_matches("https://");
    let token = world.stored_account()["access_token"].clone();
    assert_eq!(auth["http-basic"][host]["password"], token);
    assert_eq!(auth["http-basic"][host]["username"], "oauth2");
}

#[test]
fn logout_revokes_at_the_server_then_forgets() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\trevokeUrl = {}\n",
        world.git_url,
        world.oidc["revocation_endpoint"].as_str().unwrap()
    ));
    ok(&world.keygate(&["login", &world.repo_url()]));
    let kept = world.token_file();

    let logout = world.keygate(&["logout", &world.repo_url()]);
    ok(&logout);
    assert!(
        text(&logout.stderr).contains("revoked"),
        "{}",
        text(&logout.stderr)
    );
    let revocations: Vec<_> = world
        .events()
        .into_iter()
        .filter(|e| e["endpoint"] == "revocation")
        .collect();
    assert_eq!(
        revocations.len(),
        2,
        "refresh token, then access token: {revocations:?}"
    );
    assert_eq!(revocations[0]["token_type_hint"], "refresh_token");
    assert!(revocations.iter().all(|e| e["status"] == 200));
    assert!(!text(&world.keygate(&["status"]).stdout).contains(&world.git_url));

    // The server now rejects the old refresh token.
    world.seed_token_file(kept["accounts"][0].clone());
    world.expire_stored_token();
    let mut command = world.command(common::KEYGATE);
    command.args(["token", &world.repo_url()]).env("CI", "1");
    let output = command.output().unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("invalid_grant"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn logout_without_a_revocation_endpoint_still_forgets() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    let logout = world.keygate(&["logout", &world.repo_url()]);
    ok(&logout);
    assert!(text(&logout.stderr).contains("no revocation endpoint"));
    let status = world.keygate(&["status", "--json"]);
    assert_eq!(text(&status.stdout).trim(), "[]");
}

#[test]
fn on_a_terminal_without_a_display_the_device_grant_is_chosen() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tdeviceUrl = {}\n",
        world.git_url,
        world.oidc["device_authorization_endpoint"]
            .as_str()
            .unwrap()
    ));
    // `script` gives keygate a terminal, as over SSH; no $BROWSER, no display.
    let mut child = world
        .command("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("{} login {}", common::KEYGATE, world.repo_url()),
            "/dev/null",
        ])
        .env_remove("BROWSER")
        .env_remove("GIT_TERMINAL_PROMPT")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let user_code = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.trim_end()
                .strip_prefix("keygate: and enter the code ")
                .map(str::to_owned)
        })
        .expect("the device grant's user code on the terminal");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    approve_device(&world, &user_code);
    let status = child.wait().unwrap();
    let rest = drain.join().unwrap().join("\n");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("logged in"), "{rest}");
    assert_eq!(
        world.authorization_requests(),
        0,
        "no browser flow was started"
    );
    assert!(world.browser_launches().is_empty());
}

#[test]
fn with_no_browser_display_or_terminal_nobody_is_waited_for() {
    let world = World::start(Options::default());
    let started = Instant::now();
    // setsid: no controlling terminal, as under a service manager.
    let output = world
        .command("setsid")
        .args(["-w", "git", "ls-remote", &world.repo_url()])
        .env_remove("BROWSER")
        .env_remove("GIT_TERMINAL_PROMPT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no browser, display or terminal"),
        "{stderr}"
    );
    assert_eq!(world.authorization_requests(), 0);
}

#[test]
fn git_terminal_prompt_0_rules_out_the_device_grant_on_a_terminal() {
    let world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[credential]\n\thelper = {}\n[keygate \"{}\"]\n\tdeviceUrl = {}\n",
        common::KEYGATE,
        world.git_url,
        world.oidc["device_authorization_endpoint"]
            .as_str()
            .unwrap()
    ));
    // A terminal (script), no display, no $BROWSER: without the variable
    // this is where the device grant would start and wait for a person.
    let output = world
        .command("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("git ls-remote {}", world.repo_url()),
            "/dev/null",
        ])
        .env_remove("BROWSER")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output.stdout);
    assert!(said.contains("GIT_TERMINAL_PROMPT=0"), "{said}");
    assert_eq!(world.device_requests(), 0);
    assert_eq!(world.authorization_requests(), 0);
}

#[test]
fn login_under_ci_with_the_code_grant_fails_at_once() {
    let world = World::start(Options::default());
    let mut command = world.command(common::KEYGATE);
    command.args(["login", &world.repo_url()]).env("CI", "true");
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("CI is set"), "{stderr}");
    assert!(world.browser_launches().is_empty());
    assert_eq!(world.authorization_requests(), 0);
}

#[test]
fn logout_forgets_even_after_the_host_config_is_gone() {
    let world = World::start(Options::default());
    ok(&world.keygate(&["login", &world.repo_url()]));
    std::fs::write(world.gitconfig_path(), "").unwrap();
    let logout = world.keygate(&["logout", &world.repo_url()]);
    ok(&logout);
    assert!(
        text(&logout.stderr).contains("forgot the tokens"),
        "{}",
        text(&logout.stderr)
    );
    assert_eq!(
        text(&world.keygate(&["status", "--json"]).stdout).trim(),
        "[]"
    );
}
