//! The browser login as a person sees it: Debian's Chromium, headless,
//! trusting the test CA through an NSS database, signs in on
//! oidc-provider's pages and follows the redirect to keygate's listener.
//! Also the listener's defences: stray and forged requests, other users,
//! idle connections, and the state kept out of every command line.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Guard, LocalUser, Options, World, ok, support, text};

/// Where screenshots of keygate's pages are kept after the run.
fn shots_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser-shots")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A world whose `$BROWSER` is real Chromium, with the test CA in the NSS
/// database of its private HOME.
fn chromium_world(test: &str) -> (World, PathBuf) {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: apt-get install chromium (test.sh does)"
    );
    assert!(
        support("browser/node_modules/playwright-core").exists(),
        "playwright-core is missing: run ./test.sh (npm ci in tests/support/browser)"
    );
    let mut world = World::start(Options::default());
    let home = world.dir.path().join("chromium-home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-t",
            "C,,",
            "-n",
            "keygate-test-ca",
            "-i",
            world.ca().to_str().unwrap(),
        ],
    ] {
        let output = Command::new("certutil")
            .args(&args)
            .output()
            .expect("certutil (apt-get install libnss3-tools)");
        ok(&output);
    }
    // Chromium's start on a busy machine must not time the login out.
    world.write_gitconfig(&patient(&world, ""));
    let shots = shots_dir(test);
    world.set_env("BROWSER", support("browser/chromium.mjs").to_str().unwrap());
    world.set_env("KEYGATE_TEST_CHROMIUM_HOME", home.to_str().unwrap());
    world.set_env("KEYGATE_TEST_SHOTS", shots.to_str().unwrap());
    // Playwright must never fetch a browser of its own.
    world.set_env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    (world, shots)
}

/// keygate settings for the test server with a generous login timeout,
/// plus `extra` lines for the same section.
fn patient(world: &World, extra: &str) -> String {
    format!(
        "[keygate \"{}\"]\n\tloginTimeout = 180\n{extra}",
        world.git_url
    )
}

/// The driver's record of its run, once it has written it (it outlives
/// keygate: it screenshots after the page arrived).
fn chromium_record(world: &World, runs: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let launches = world.browser_launches();
        if launches.len() >= runs {
            let record = launches[runs - 1].clone();
            assert!(record["error"].is_null(), "chromium.mjs failed: {record}");
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "chromium.mjs wrote no record ({} so far)",
            launches.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn screenshot(shots: &Path) -> PathBuf {
    let shot = std::fs::read_dir(shots)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap_or_else(|| panic!("no screenshot in {}", shots.display()));
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    shot
}

fn query_param(url: &str, key: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {key} in the authorization URL"))
}

/// Asserts keygate's page shows nothing secret.
#[track_caller]
fn assert_page_keeps_secrets(world: &World, record: &Value) {
    let page = format!("{} {}", record["title"], record["text"]);
    let state = query_param(record["url"].as_str().unwrap(), "state");
    assert!(!page.contains(&state), "the page shows the state: {page}");
    assert!(!page.contains("code="), "{page}");
    if let Ok(file) = std::fs::read(world.home.join(".local/share/keygate/tokens.json")) {
        let file: Value = serde_json::from_slice(&file).unwrap();
        for account in file["accounts"].as_array().unwrap() {
            for key in ["access_token", "refresh_token"] {
                if let Some(token) = account[key].as_str() {
                    assert!(!page.contains(token), "the page shows a token");
                }
            }
        }
    }
}

#[test]
fn chromium_first_clone_logs_in_once_and_the_second_is_silent() {
    let (world, shots) = chromium_world("success");
    let clone = world.git(&["clone", "-q", &world.repo_url(), "first"]);
    ok(&clone);
    let record = chromium_record(&world, 1);
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(record["title"], "keygate: Signed in", "{record}");
    let said = record["text"].as_str().unwrap();
    assert!(said.contains(&world.git_url), "names the server: {said}");
    assert_page_keeps_secrets(&world, &record);
    let shot = screenshot(&shots);
    eprintln!("success page: {}", shot.display());
    assert_eq!(world.token_requests("authorization_code"), 1);

    let again = world.git(&["clone", "-q", &world.repo_url(), "second"]);
    ok(&again);
    assert_eq!(world.browser_launches().len(), 1, "no second login");
    assert_eq!(world.authorization_requests(), 1);
    assert!(
        text(&again.stderr).is_empty(),
        "silent: {}",
        text(&again.stderr)
    );
}

/// Runs `git clone` on a pseudo-terminal, as a person would, so git would
/// prompt for a user name if keygate let it.
fn clone_on_a_terminal(world: &World, dir: &str) -> Output {
    let git = format!("git clone -q {} {dir}", world.repo_url());
    let mut command = world.command("script");
    command
        .args(["-qefc", &git, "/dev/null"])
        // A person at a terminal: git may prompt.
        .env_remove("GIT_TERMINAL_PROMPT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("script (bsdutils)");
    // If git prompts anyway, it gets a line rather than waiting forever.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        let _ = stdin.write_all(b"\n\n");
    });
    let output = child.wait_with_output().unwrap();
    drop(feeder);
    output
}

#[track_caller]
fn assert_git_quit_without_prompting(output: &Output) {
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(!output.status.success(), "{said}");
    assert!(!said.contains("Username for"), "git prompted: {said}");
    assert!(said.contains("told us to quit"), "{said}");
}

#[test]
fn chromium_deny_stops_git_with_quit_and_no_prompt() {
    let (mut world, shots) = chromium_world("deny");
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "deny");
    let output = clone_on_a_terminal(&world, "denied");
    assert_git_quit_without_prompting(&output);
    let said = text(&output.stdout);
    assert!(said.contains("denied"), "{said}");
    assert!(
        said.contains(&format!("run `keygate login {}`", world.git_url)),
        "{said}"
    );
    let record = chromium_record(&world, 1);
    assert_eq!(record["title"], "keygate: Sign-in cancelled", "{record}");
    assert_eq!(record["status"], 400);
    assert!(
        record["text"]
            .as_str()
            .unwrap()
            .contains("End-User aborted interaction")
    );
    eprintln!("git on a terminal said:\n{}", text(&output.stdout));
    assert_page_keeps_secrets(&world, &record);
    eprintln!("deny page: {}", screenshot(&shots).display());
    assert_eq!(world.token_requests("authorization_code"), 0);
}

#[test]
fn chromium_failed_exchange_shows_a_failure_page_and_git_quits() {
    let (world, shots) = chromium_world("failure");
    // keygate-test is a public client: oidc-provider refuses a client
    // secret for it at the token endpoint, after the person authorized.
    world.write_gitconfig(&patient(
        &world,
        "\tclientSecret = not-this-clients-secret\n",
    ));
    let output = clone_on_a_terminal(&world, "failed");
    assert_git_quit_without_prompting(&output);
    let record = chromium_record(&world, 1);
    assert_eq!(record["title"], "keygate: Sign-in failed", "{record}");
    assert_eq!(record["status"], 400);
    let said = record["text"].as_str().unwrap();
    assert!(said.contains("could not finish signing in"), "{said}");
    assert!(said.contains("keygate login"), "says what next: {said}");
    assert_page_keeps_secrets(&world, &record);
    eprintln!("failure page: {}", screenshot(&shots).display());
    assert_eq!(world.token_requests("authorization_code"), 1);
    assert!(!world.home.join(".local/share/keygate/tokens.json").exists());
}

#[test]
fn chromium_login_survives_stray_head_options_and_wrong_state_requests() {
    let (mut world, _shots) = chromium_world("stray");
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "stray");
    let clone = world.git(&["clone", "-q", &world.repo_url(), "repo"]);
    ok(&clone);
    let record = chromium_record(&world, 1);
    assert_eq!(record["title"], "keygate: Signed in", "{record}");
    let statuses: Vec<_> = record["strays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["method"].as_str().unwrap().to_owned(),
                s["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("HEAD".to_owned(), Value::from(405)),
            ("OPTIONS".to_owned(), Value::from(405)),
            ("GET".to_owned(), Value::from(400)),
            ("GET".to_owned(), Value::from(400)),
            ("GET".to_owned(), Value::from(404)),
        ]
    );
    let stderr = text(&clone.stderr);
    for what in [
        "ignored a request with method HEAD",
        "ignored a request with method OPTIONS",
        "ignored a redirect with a wrong or missing state",
        "ignored a request for another path",
    ] {
        assert!(stderr.contains(what), "{what}: {stderr}");
    }
    // Only the browser's code was redeemed.
    assert_eq!(world.token_requests("authorization_code"), 1);
}

/// A login started with the scripted browser in `hang` mode: it records
/// the launch and visits nothing, so the test plays the person.
struct WaitingLogin {
    login: Guard,
    auth_url: String,
}

impl WaitingLogin {
    fn start(world: &mut World) -> Self {
        Self::start_with_descriptors(world, None)
    }

    /// `descriptors`: keygate's limit on open files (a desktop's usual
    /// 1024, say), so a flood of connections meets the limit it would.
    fn start_with_descriptors(world: &mut World, descriptors: Option<u32>) -> Self {
        world.write_gitconfig(&patient(world, ""));
        world.set_env("KEYGATE_TEST_BROWSER_MODE", "hang");
        let limit = descriptors.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        let mut command = world.command("bash");
        command
            .arg("-c")
            .arg(r#"[ "$0" = unlimited ] || ulimit -n "$0"; exec "$@""#)
            .arg(limit)
            .args([common::KEYGATE, "login", &world.repo_url()]);
        let login = command.stderr(Stdio::piped()).spawn().unwrap();
        let login = Guard::new(login);
        let deadline = Instant::now() + Duration::from_secs(30);
        while world.browser_launches().is_empty() {
            assert!(Instant::now() < deadline, "the login opened no browser");
            std::thread::sleep(Duration::from_millis(50));
        }
        world.set_env("KEYGATE_TEST_BROWSER_MODE", "approve");
        let auth_url = world.browser_launches()[0]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        Self { login, auth_url }
    }

    fn redirect_uri(&self) -> String {
        query_param(&self.auth_url, "redirect_uri")
    }

    fn state(&self) -> String {
        query_param(&self.auth_url, "state")
    }

    /// The person signs in now; returns what `keygate login` printed.
    fn finish(self, world: &World) -> String {
        let person = world
            .command(support("browser.py"))
            .arg(&self.auth_url)
            .output()
            .unwrap();
        ok(&person);
        let output = self.login.wait_with_output();
        ok(&output);
        text(&output.stderr)
    }
}

#[test]
fn another_users_forged_redirect_is_refused_and_the_login_keeps_waiting() {
    let mut world = World::start(Options::default());
    let attacker = LocalUser::create("kgbr");
    let login = WaitingLogin::start(&mut world);
    // The attacker somehow has the right state, and a code of their own.
    let forged = format!(
        "{}?code=attackers-code&state={}",
        login.redirect_uri(),
        login.state()
    );
    let output = Command::new("runuser")
        .args(["-u", &attacker.name, "--", "curl", "-s", "-o", "/dev/null"])
        .args(["-w", "%{http_code}", "--max-time", "30", &forged])
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .unwrap();
    assert_eq!(text(&output.stdout), "403", "{}", text(&output.stderr));
    // Nor is anything else served to that user.
    let probe = format!("{}?state=x", login.redirect_uri());
    let output = Command::new("runuser")
        .args(["-u", &attacker.name, "--", "curl", "-s", "-o", "/dev/null"])
        .args([
            "-w",
            "%{http_code}",
            "-X",
            "OPTIONS",
            "--max-time",
            "30",
            &probe,
        ])
        .output()
        .unwrap();
    assert_eq!(text(&output.stdout), "403", "{}", text(&output.stderr));
    let said = login.finish(&world);
    assert!(
        said.contains("ignored a request from another user's process"),
        "{said}"
    );
    assert_eq!(world.token_requests("authorization_code"), 1);
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

/// Issue 18: a connection whose process has closed it lingers as a
/// TIME_WAIT entry that the kernel lists with UID 0 (and, for a closer
/// that sent its FIN first, in state FIN_WAIT2): a login run as root took
/// another user's request for its own once the sender had gone.
#[test]
fn another_users_forged_redirect_sent_and_closed_is_refused() {
    let mut world = World::start(Options::default());
    let attacker = LocalUser::create("kgbr");
    let login = WaitingLogin::start(&mut world);
    let redirect = url::Url::parse(&login.redirect_uri()).unwrap();
    let request = format!(
        "GET {}?code=attackers-code&state={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        redirect.path(),
        login.state()
    );
    // The listener reads the request only after its sender has gone:
    // forced here by stopping keygate; an attacker wins the same race by
    // trying again.
    let keygate = i32::try_from(login.login.id()).unwrap();
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(keygate, libc::SIGSTOP) }, 0);
    let sent = Command::new("runuser")
        .args(["-u", &attacker.name, "--", "bash", "-c"])
        .arg(r#"exec 3<>"/dev/tcp/127.0.0.1/$0" && printf %s "$1" >&3"#)
        .arg(redirect.port().unwrap().to_string())
        .arg(&request)
        .output()
        .unwrap();
    // The closer's FIN is acknowledged by the kernel, not by keygate.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(keygate, libc::SIGCONT) }, 0);
    ok(&sent);
    let said = login.finish(&world);
    assert!(
        said.contains("ignored a request whose sender is unknown"),
        "{said}"
    );
    assert_eq!(world.token_requests("authorization_code"), 1);
    ok(&world.git(&["ls-remote", &world.repo_url()]));
}

#[test]
fn idle_connections_to_the_listener_do_not_block_the_redirect() {
    let mut world = World::start(Options::default());
    let login = WaitingLogin::start_with_descriptors(&mut world, Some(1024));
    let port = url::Url::parse(&login.redirect_uri())
        .unwrap()
        .port()
        .unwrap();
    // 1,100 connections that never send a byte, held open from another
    // process (which raises its own descriptor limit to hold them).
    let holder = r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(1100):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
    except OSError as e:
        print("connect failed: %s" % e, file=sys.stderr)
        break
    held.append(s)
print(len(held), flush=True)
sys.stdin.read()
"#;
    let mut holder = Command::new("python3")
        .args(["-c", holder, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "1100", "all 1,100 connections opened");
    let holder = Guard::new(holder);
    let said = login.finish(&world);
    assert!(said.contains("logged in"), "{said}");
    drop(holder);
    assert_eq!(world.token_requests("authorization_code"), 1);
}

/// Every process's command line, as any local user can read it.
fn command_lines() -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            lines.insert(String::from_utf8_lossy(&bytes).replace('\0', " "));
        }
    }
    lines
}

#[test]
fn the_state_never_appears_in_a_command_line() {
    let mut world = World::start(Options::default());
    // The browser records every command line while it runs, then signs in.
    let seen_by_browser = world.dir.path().join("cmdlines.txt");
    world.set_env(
        "BROWSER",
        support("browser/scan-cmdlines.sh").to_str().unwrap(),
    );
    world.set_env("KEYGATE_TEST_CMDLINES", seen_by_browser.to_str().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                seen.extend(command_lines());
            }
            seen
        })
    };
    let clone = world.git(&["clone", "-q", &world.repo_url(), "repo"]);
    stop.store(true, Ordering::Relaxed);
    let mut seen = scanner.join().unwrap();
    ok(&clone);
    let launches = world.browser_launches();
    assert_eq!(launches.len(), 1);
    let argv = launches[0]["argv"].to_string();
    assert!(argv.contains("file://"), "a launch page: {argv}");
    let auth_url = launches[0]["url"].as_str().unwrap();
    let state = query_param(auth_url, "state");
    let challenge = query_param(auth_url, "code_challenge");
    let by_browser = std::fs::read_to_string(&seen_by_browser).unwrap();
    assert!(
        by_browser.contains("scan-cmdlines.sh file://"),
        "{by_browser}"
    );
    seen.extend(by_browser.lines().map(str::to_owned));
    for line in &seen {
        assert!(!line.contains(&state), "the state is in argv: {line}");
        assert!(
            !line.contains(&challenge),
            "the challenge is in argv: {line}"
        );
    }
    // The launch page is gone with the login.
    let pages = world.home.join(".local/share/keygate/run/pages");
    let left: Vec<_> = std::fs::read_dir(&pages).unwrap().flatten().collect();
    assert!(left.is_empty(), "launch pages left behind: {left:?}");
}

#[test]
fn without_a_person_get_fails_without_quit_so_other_helpers_may_answer() {
    let mut world = World::start(Options::default());
    world.set_env("CI", "1");
    let mut command = world.command(common::KEYGATE);
    command.arg("get");
    let host = world.git_url.trim_start_matches("https://").to_owned();
    let output = common::run_with_input(
        command,
        format!("protocol=https\nhost={host}\n\n").as_bytes(),
    );
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn the_desktops_default_browser_takes_the_file_url() {
    let mut world = World::start(Options::default());
    // No $BROWSER: keygate (the webbrowser crate) asks xdg-settings for the
    // desktop's default browser and runs its entry with the file:// URL.
    let applications = world.home.join(".local/share/applications");
    std::fs::create_dir_all(&applications).unwrap();
    std::fs::write(
        applications.join("keygate-test-browser.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=test browser\nTerminal=false\n\
             Exec={} %u\nMimeType=text/html;x-scheme-handler/http;x-scheme-handler/https;\n",
            support("browser.py").display()
        ),
    )
    .unwrap();
    let config = world.home.join(".config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("mimeapps.list"),
        "[Default Applications]\nx-scheme-handler/http=keygate-test-browser.desktop\n\
         x-scheme-handler/https=keygate-test-browser.desktop\ntext/html=keygate-test-browser.desktop\n",
    )
    .unwrap();
    world.set_env("DISPLAY", ":99");
    let mut command = world.command(common::KEYGATE);
    command
        .env_remove("BROWSER")
        .args(["login", &world.repo_url()]);
    let output = command.output().unwrap();
    ok(&output);
    let launches = world.browser_launches();
    assert_eq!(launches.len(), 1);
    assert!(
        launches[0]["argv"][1]
            .as_str()
            .unwrap()
            .starts_with("file:///"),
        "{}",
        launches[0]["argv"]
    );
    assert_eq!(world.token_requests("authorization_code"), 1);
}

#[test]
fn a_login_that_times_out_stops_git_without_a_prompt() {
    let mut world = World::start(Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tloginTimeout = 3\n",
        world.git_url
    ));
    // The person never finishes signing in.
    world.set_env("KEYGATE_TEST_BROWSER_MODE", "hang");
    let output = clone_on_a_terminal(&world, "repo");
    assert_git_quit_without_prompting(&output);
    let said = text(&output.stdout);
    assert!(said.contains("no authorization arrived"), "{said}");
    assert!(
        said.contains(&format!("run `keygate login {}`", world.git_url)),
        "{said}"
    );
}
