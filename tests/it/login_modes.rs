//! Logging in from where people work (issue 21): over SSH with no device
//! grant (the paste prompt, racing the listener), without a terminal,
//! under WSL (a stand-in interop that plays Windows' browser), and
//! Ctrl-C during every wait. Real git under a pseudo-terminal (`script`),
//! the real OAuth server, a person played by `browser.py` on "another
//! device" (`report` mode: it prints the address its redirect ends on).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, World, ok, support, text};
use crate::flows::{decode_qr, qr_lines};

/// How long a test waits for the terminal to show something before it
/// fails, naming what it waited for (a bound, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(90);

/// A command on a pseudo-terminal, as a person runs it: what the terminal
/// shows is collected as it comes, and keys are typed into it.
struct Terminal {
    child: Child,
    keys: ChildStdin,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// `command` (a shell line) under `script`, in `world`'s environment
    /// as an SSH session has it: no display, no `$BROWSER`, a terminal
    /// git may prompt on, 120 columns; then `env` on top.
    fn start(world: &World, command: &str, env: &[(&str, &str)]) -> Self {
        let mut script = world.command("script");
        script
            .args(["-qefc", command, "/dev/null"])
            .env_remove("BROWSER")
            .env_remove("GIT_TERMINAL_PROMPT")
            .env("COLUMNS", "120")
            .env("USER", "alice")
            .env("SSH_CONNECTION", "203.0.113.9 52100 198.51.100.7 22")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            if value.is_empty() {
                script.env_remove(key);
            } else {
                script.env(key, value);
            }
        }
        let mut child = script.spawn().expect("script (bsdutils)");
        let keys = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = output.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        Self { child, keys, shown }
    }

    /// Everything written to the terminal so far, escape sequences and all.
    fn raw(&self) -> String {
        text(&self.shown.lock().unwrap())
    }

    /// The screen as a person sees it now.
    fn screen(&self) -> String {
        rendered(&self.raw())
    }

    /// Waits until the screen shows `needle`; returns the screen.
    #[track_caller]
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) without showing {needle:?}:\n{screen}");
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {needle:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.keys.write_all(keys).unwrap();
        self.keys.flush().unwrap();
    }

    /// Waits for the command to end: its status and the final screen.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader has the last output once the pty is gone.
        std::thread::sleep(Duration::from_millis(200));
        (status, self.screen())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a terminal shows for `raw` output: `\r` returns to the line's
/// start, `ESC [ 2 K` erases the line, other escape sequences draw
/// nothing; trailing blanks dropped. The screenshot of a test.
fn rendered(raw: &str) -> String {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if lines.len() <= row {
                    lines.push(Vec::new());
                }
            }
            '\u{8}' => col = col.saturating_sub(1),
            '\u{1b}' => {
                let mut sequence = String::new();
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        sequence.push(c);
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                    if sequence == "2K" {
                        lines[row].clear();
                    }
                } else {
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => {
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    lines
        .iter()
        .map(|l| l.iter().collect::<String>().trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A world whose server offers no device grant (as Bitbucket, Gitea and
/// many company servers), with a login timeout long enough for a person.
fn world() -> World {
    let world = World::start(common::Options::default());
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tloginTimeout = 240\n",
        world.git_url
    ));
    world
}

fn clone_command(world: &World, dir: &str) -> String {
    format!("git clone -q {} {dir}", world.repo_url())
}

/// The authorization URL the screen tells the person to open.
#[track_caller]
fn authorization_url(screen: &str) -> String {
    screen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://") && l.contains("code_challenge="))
        .unwrap_or_else(|| panic!("no authorization URL on the screen:\n{screen}"))
        .to_owned()
}

/// The port of the loopback redirect the screen names.
#[track_caller]
fn redirect_port(screen: &str) -> u16 {
    let start = screen
        .find("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("no redirect address on the screen:\n{screen}"));
    let rest = &screen[start + "http://127.0.0.1:".len()..];
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

/// The person on another device: signs in at `url` and reads the address
/// the browser ends on (which loads nothing there).
fn sign_in_elsewhere(world: &World, url: &str) -> String {
    let output = world
        .command(support("browser.py"))
        .arg(url)
        .env("KEYGATE_TEST_BROWSER_MODE", "report")
        .output()
        .unwrap();
    ok(&output);
    let address = text(&output.stdout).trim().to_owned();
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    address
}

fn with_state(address: &str, state: &str) -> String {
    let mut url = url::Url::parse(address).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { state.into() } else { v.into() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn nothing_stored(world: &World) -> bool {
    let path = world.home.join(".local/share/keygate/tokens.json");
    !path.exists()
        || world.token_file()["accounts"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// Processes of this world still running: every command it starts has
/// its HOME in the environment (the servers do not).
fn processes_left(world: &World) -> Vec<String> {
    let marker = format!("HOME={}\0", world.home.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name();
            let Some(pid) = pid
                .to_str()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if String::from_utf8_lossy(&environ).contains(&marker) {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                left.push(format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                ));
            }
        }
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[track_caller]
fn assert_logged_in_and_cloned(world: &World, dir: &str) {
    assert!(world.dir.path().join(dir).join(".git").exists());
    assert_eq!(world.token_requests("authorization_code"), 1);
    assert!(world.stored_account()["refresh_token"].is_string());
}

#[test]
fn over_ssh_without_a_device_grant_the_pasted_address_logs_in() {
    let world = world();
    let mut terminal = Terminal::start(&world, &clone_command(&world, "pasted"), &[]);
    let screen = terminal.wait_for("paste the address");
    let url = authorization_url(&screen);
    let port = redirect_port(&screen);
    assert!(
        screen.contains(&format!(
            "ssh -N -L {port}:127.0.0.1:{port} alice@198.51.100.7"
        )),
        "{screen}"
    );
    // The port was free, not fixed: how to fix it for a lasting forward.
    assert!(
        screen.contains(&format!("redirectUrl http://127.0.0.1:{port}/callback")),
        "{screen}"
    );
    let drawing = qr_lines(&screen);
    assert!(!drawing.is_empty(), "no QR code:\n{screen}");
    assert_eq!(decode_qr(&drawing), url);

    let address = sign_in_elsewhere(&world, &url);
    terminal.type_keys(format!("{address}\r").as_bytes());
    let (status, screen) = terminal.finish();
    eprintln!("the terminal showed:\n{screen}");
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains("keygate: got the address; finishing the login"),
        "{screen}"
    );
    assert!(!screen.contains("Username for"), "git prompted:\n{screen}");
    assert_logged_in_and_cloned(&world, "pasted");
    // Neither the code nor the state was echoed back.
    let code = url::Url::parse(&address)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert!(
        !terminal_text_after_prompt(&screen).contains(&code),
        "{screen}"
    );
    assert!(
        world
            .browser_launches()
            .iter()
            .all(|l| l["mode"] == "report")
    );
}

/// What the screen shows from the paste prompt on (the instructions
/// before it hold the authorization URL, with its state).
fn terminal_text_after_prompt(screen: &str) -> &str {
    screen
        .find("keygate: paste the address")
        .or_else(|| screen.find("keygate: got the address"))
        .map_or(screen, |at| &screen[at..])
}

#[test]
fn a_forged_state_is_refused_and_asked_again_then_the_right_address_logs_in() {
    let world = world();
    let mut terminal = Terminal::start(&world, &clone_command(&world, "second-try"), &[]);
    let screen = terminal.wait_for("paste the address");
    let address = sign_in_elsewhere(&world, &authorization_url(&screen));
    terminal.type_keys(format!("{}\r", with_state(&address, "forged-state")).as_bytes());
    let refused = terminal.wait_for("(2 tries left)");
    eprintln!("after a forged state, the terminal showed:\n{refused}");
    terminal.type_keys(format!("{address}\r").as_bytes());
    let (status, screen) = terminal.finish();
    eprintln!("the terminal showed:\n{screen}");
    assert!(status.success(), "{screen}");
    assert!(
        screen.contains("that address does not carry this login's state"),
        "{screen}"
    );
    assert_logged_in_and_cloned(&world, "second-try");
}

#[test]
fn three_forged_states_stop_the_login_and_git_quits() {
    let world = world();
    let mut terminal = Terminal::start(&world, &clone_command(&world, "forged"), &[]);
    let screen = terminal.wait_for("paste the address");
    let address = sign_in_elsewhere(&world, &authorization_url(&screen));
    for (attempt, left) in ["(2 tries left)", "(1 try left)", "told us to quit"]
        .iter()
        .enumerate()
    {
        let forged = with_state(&address, &format!("forged-{attempt}"));
        terminal.type_keys(format!("{forged}\r").as_bytes());
        terminal.wait_for(left);
    }
    let (status, screen) = terminal.finish();
    eprintln!("the terminal showed:\n{screen}");
    assert!(!status.success(), "{screen}");
    assert!(
        screen.contains("3 pasted addresses did not carry"),
        "{screen}"
    );
    assert!(!screen.contains("Username for"), "git prompted:\n{screen}");
    assert!(nothing_stored(&world));
    assert_eq!(world.token_requests("authorization_code"), 0);
}

#[test]
fn the_listener_wins_the_race_and_the_prompt_goes_away() {
    let world = world();
    let mut terminal = Terminal::start(&world, &clone_command(&world, "forwarded"), &[]);
    let screen = terminal.wait_for("paste the address");
    // A port forward brings the browser's redirect to the listener.
    let person = world
        .command(support("browser.py"))
        .arg(authorization_url(&screen))
        .output()
        .unwrap();
    ok(&person);
    let (status, screen) = terminal.finish();
    eprintln!("the terminal showed:\n{screen}");
    assert!(status.success(), "{screen}");
    assert!(
        !screen.contains("paste the address"),
        "the prompt stayed:\n{screen}"
    );
    assert!(!screen.contains("got the address"), "{screen}");
    assert_logged_in_and_cloned(&world, "forwarded");
}

#[test]
fn without_a_terminal_nothing_is_asked_and_the_error_says_what_to_run() {
    let world = world();
    let login = format!("run `keygate login {}` in a terminal first", world.git_url);

    // git run by a service: no terminal at all, over SSH.
    let output = world
        .command("setsid")
        .args(["-w", "git", "ls-remote", &world.repo_url()])
        .env_remove("BROWSER")
        .env_remove("GIT_TERMINAL_PROMPT")
        .env("SSH_CONNECTION", "203.0.113.9 52100 198.51.100.7 22")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output.stderr);
    eprintln!("git without a terminal said:\n{said}");
    assert!(said.contains("no browser, display or terminal"), "{said}");
    assert!(said.contains(&login), "{said}");

    // A terminal git may not prompt on, and redirect = paste.
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tredirect = paste\n",
        world.git_url
    ));
    let terminal = Terminal::start(
        &world,
        &format!("git ls-remote {}", world.repo_url()),
        &[
            ("GIT_TERMINAL_PROMPT", "0"),
            ("BROWSER", support("browser.py").to_str().unwrap()),
        ],
    );
    let (status, screen) = terminal.finish();
    eprintln!("the terminal showed:\n{screen}");
    assert!(!status.success(), "{screen}");
    assert!(
        screen.contains("redirect = paste needs a terminal to paste into, but GIT_TERMINAL_PROMPT=0 rules out the terminal"),
        "{screen}"
    );
    assert!(screen.contains(&login), "{screen}");
    assert!(!screen.contains("paste the address"), "{screen}");
    assert_eq!(world.authorization_requests(), 0);
    assert!(world.browser_launches().is_empty());
}

#[test]
fn redirect_paste_asks_on_the_terminal_even_with_a_browser_at_hand() {
    let world = world();
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tredirect = paste\n\tloginTimeout = 240\n",
        world.git_url
    ));
    let mut terminal = Terminal::start(
        &world,
        &clone_command(&world, "configured"),
        &[
            ("BROWSER", support("browser.py").to_str().unwrap()),
            ("SSH_CONNECTION", ""),
        ],
    );
    let screen = terminal.wait_for("paste the address");
    assert!(!screen.contains("ssh -N -L"), "not over SSH:\n{screen}");
    let address = sign_in_elsewhere(&world, &authorization_url(&screen));
    terminal.type_keys(format!("{address}\r").as_bytes());
    let (status, screen) = terminal.finish();
    assert!(status.success(), "{screen}");
    assert_logged_in_and_cloned(&world, "configured");
    assert!(
        world
            .browser_launches()
            .iter()
            .all(|l| l["mode"] == "report"),
        "keygate opened a browser"
    );
}

// ---- Ctrl-C ---------------------------------------------------------------

/// The request git sends for the test repository.
fn git_request(world: &World) -> String {
    let url = url::Url::parse(&world.repo_url()).unwrap();
    format!(
        "protocol=https\nhost={}:{}\npath={}\n\n",
        url.host_str().unwrap(),
        url.port().unwrap(),
        url.path().trim_start_matches('/')
    )
}

/// Presses Ctrl-C while the terminal shows `waiting` (SIGINT to the
/// terminal's foreground process group, as the keyboard sends it), once
/// under real git and once with the helper as git runs it, its answer
/// captured: nothing stored, `quit=1` for git, no process left. Returns
/// the screen while it waited, and after.
fn ctrl_c_during(world: &World, waiting: &str, env: &[(&str, &str)]) -> (String, String) {
    // Real git: it stops without asking for a password.
    let mut terminal = Terminal::start(world, &clone_command(world, "cancelled"), env);
    let while_waiting = terminal.wait_for(waiting);
    terminal.type_keys(b"\x03");
    let (status, screen) = terminal.finish();
    eprintln!("git on the terminal, after Ctrl-C:\n{screen}");
    assert!(!status.success(), "{screen}");
    assert!(!screen.contains("Username for"), "git prompted:\n{screen}");
    assert!(nothing_stored(world), "{screen}");
    assert_eq!(processes_left(world), Vec::<String>::new(), "{screen}");
    assert!(!world.dir.path().join("cancelled").exists());

    // The helper as git runs it, git's side played by the shell.
    let request = world.dir.path().join("request");
    let answer = world.dir.path().join("answer");
    std::fs::write(&request, git_request(world)).unwrap();
    let helper = format!(
        "git-credential-keygate get < {} > {}",
        request.display(),
        answer.display()
    );
    let mut terminal = Terminal::start(world, &helper, env);
    let shown = terminal.wait_for(waiting);
    // The spinner and countdown move: the next frame differs.
    let frame = terminal.raw().len();
    let deadline = Instant::now() + PATIENCE;
    while terminal.raw().len() == frame {
        assert!(
            Instant::now() < deadline,
            "the wait line never moved:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = shown
        .find("http://127.0.0.1:")
        .map(|_| redirect_port(&shown));
    terminal.type_keys(b"\x03");
    let (status, screen) = terminal.finish();
    assert_eq!(status.code(), Some(130), "{screen}");
    assert!(
        screen.contains(
            "keygate: the login was cancelled; nothing was stored; to try again, run `keygate login"
        ),
        "{screen}"
    );
    assert_eq!(std::fs::read_to_string(&answer).unwrap(), "quit=1\n");
    assert!(nothing_stored(world), "{screen}");
    assert_eq!(processes_left(world), Vec::<String>::new(), "{screen}");
    if let Some(port) = port {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the listener on {port} is still open"
        );
    }
    let launch_pages = world.home.join(".local/share/keygate/run/pages");
    let left: Vec<PathBuf> = std::fs::read_dir(&launch_pages)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "launch pages left: {left:?}");
    (while_waiting, screen)
}

#[test]
fn ctrl_c_at_the_paste_prompt_cancels_cleanly() {
    let world = world();
    let (waiting, screen) = ctrl_c_during(&world, "paste the address", &[]);
    eprintln!("the terminal showed:\n{waiting}\n---- then, after Ctrl-C:\n{screen}");
    assert!(waiting.contains("left, Ctrl-C to cancel):"), "{waiting}");
    assert_eq!(world.token_requests("authorization_code"), 0);
}

#[test]
fn ctrl_c_while_the_browser_is_out_cancels_cleanly() {
    let world = world();
    let browser = support("browser.py");
    let (waiting, screen) = ctrl_c_during(
        &world,
        "waiting for the browser's redirect",
        &[
            ("BROWSER", browser.to_str().unwrap()),
            ("KEYGATE_TEST_BROWSER_MODE", "hang"),
            ("SSH_CONNECTION", ""),
        ],
    );
    eprintln!("the terminal showed:\n{waiting}\n---- then, after Ctrl-C:\n{screen}");
    assert!(waiting.contains("left, Ctrl-C to cancel)"), "{waiting}");
}

#[test]
fn ctrl_c_while_the_device_code_is_polled_cancels_cleanly() {
    let world = world();
    world.write_gitconfig(&format!(
        "[keygate \"{}\"]\n\tdeviceUrl = {}\n",
        world.git_url,
        world.oidc["device_authorization_endpoint"]
            .as_str()
            .unwrap()
    ));
    let (waiting, screen) = ctrl_c_during(&world, "waiting for you to enter the code", &[]);
    eprintln!("the terminal showed:\n{waiting}\n---- then, after Ctrl-C:\n{screen}");
    assert!(waiting.contains("left, Ctrl-C to cancel)"), "{waiting}");
    assert_eq!(world.device_requests(), 2);
}

#[test]
fn without_a_terminal_a_wait_is_said_in_one_plain_line() {
    let world = world();
    // No terminal anywhere: stderr is a pipe, and no /dev/tty (setsid).
    let mut child = world
        .command("setsid")
        .args(["-w", common::KEYGATE, "login", &world.repo_url()])
        .env("KEYGATE_TEST_BROWSER_MODE", "hang")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut said = Vec::new();
    while !text(&said).contains("press Ctrl-C to cancel") {
        assert!(Instant::now() < deadline, "{}", text(&said));
        let mut buffer = [0u8; 1024];
        let n = stderr.read(&mut buffer).unwrap();
        assert!(n > 0, "{}", text(&said));
        said.extend_from_slice(&buffer[..n]);
    }
    // SIGTERM, as a service manager stops it.
    ok(&Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .output()
        .unwrap());
    let status = child.wait().unwrap();
    let mut rest = Vec::new();
    let _ = stderr.read_to_end(&mut rest);
    said.extend_from_slice(&rest);
    let said = text(&said);
    eprintln!("keygate login, stderr a pipe, said:\n{said}");
    assert!(
        said.contains("keygate: waiting up to 4 minutes for the browser's redirect to 127.0.0.1:"),
        "{said}"
    );
    assert!(
        !said.contains('\u{1b}'),
        "escape sequences in a log: {said:?}"
    );
    assert!(!said.contains('\r'), "{said:?}");
    assert!(said.contains("the login was cancelled"), "{said}");
    assert_eq!(status.code(), Some(130));
    assert!(nothing_stored(&world));
}

// ---- WSL ------------------------------------------------------------------

/// Stand-ins for WSL's interop in `dir`: `wslpath -w` maps a Linux path
/// to `\\wsl.localhost\Debian\…`; `wslview` (when `with_wslview`) and
/// `cmd.exe` play Windows' browser: they map the path back, and
/// `browser.py` follows the launch page from there to the authorization
/// URL and signs in, in the background (a launcher hands the file over
/// and returns). `explorer.exe` fails. Each records its arguments, one
/// JSON line a call, in `interop.jsonl`.
fn stand_in_interop(dir: &Path, with_wslview: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let common = format!(
        r#"#!/usr/bin/env python3
import json, os, subprocess, sys
PREFIX = "\\\\wsl.localhost\\Debian"
with open({log:?}, "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
def play(windows_path):
    assert windows_path.startswith(PREFIX), windows_path
    linux = windows_path[len(PREFIX):].replace("\\", "/")
    subprocess.Popen([{browser:?}, "file://" + linux], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"#,
        log = dir.join("interop.jsonl").display().to_string(),
        browser = support("browser.py").display().to_string(),
    );
    let mut programs = vec![
        (
            "wslpath",
            "if sys.argv[1:2] != ['-w']: sys.exit(1)\nprint(PREFIX + sys.argv[2].replace('/', '\\\\'))\n",
        ),
        (
            "cmd.exe",
            "if sys.argv[1:4] != ['/d', '/c', 'start']: sys.exit(1)\n\
             import re\nplay(re.sub(r'\\^(.)', r'\\1', sys.argv[4]))\n",
        ),
        ("explorer.exe", "sys.exit(1)\n"),
    ];
    if with_wslview {
        programs.push(("wslview", "play(sys.argv[1])\n"));
    }
    for (name, body) in programs {
        write_program(&dir.join(name), &format!("{common}{body}"));
    }
}

fn write_program(path: &Path, body: &str) {
    // Written by a child process, as common's stand-ins are: a write
    // handle of ours inherited by a child another test forks meanwhile
    // would make running it fail with "text file busy".
    let mut write = Command::new("sh");
    write.args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"]);
    write.arg(path);
    ok(&common::run_with_input(write, body.as_bytes()));
}

/// `clone` under WSL (WSL's variables, no display, no `$BROWSER`, not
/// over SSH) with the stand-in interop first on PATH.
fn clone_under_wsl(world: &World, interop: &Path, dir: &str) -> (ExitStatus, String, String) {
    let path = format!(
        "{}:{}:{}",
        interop.display(),
        world.bin.display(),
        std::env::var("PATH").unwrap()
    );
    let terminal = Terminal::start(
        world,
        &clone_command(world, dir),
        &[
            ("WSL_DISTRO_NAME", "Debian"),
            ("WSL_INTEROP", "/run/WSL/1_interop"),
            ("SSH_CONNECTION", ""),
            ("PATH", &path),
        ],
    );
    let (status, screen) = terminal.finish();
    let log = std::fs::read_to_string(interop.join("interop.jsonl")).unwrap_or_default();
    (status, screen, log)
}

/// Neither the authorization URL nor its state was in any argv: the
/// interop stand-ins' and the browser's.
#[track_caller]
fn assert_no_url_in_argv(world: &World, interop_log: &str) {
    let launches = world.browser_launches();
    assert_eq!(launches.len(), 1, "{launches:?}");
    let authorization = launches[0]["url"].as_str().unwrap();
    let state = url::Url::parse(authorization)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let browser_argv = launches[0]["argv"].to_string();
    for argv in [interop_log, browser_argv.as_str()] {
        assert!(!argv.contains(&state), "the state in an argv: {argv}");
        assert!(
            !argv.contains("code_challenge"),
            "the URL in an argv: {argv}"
        );
    }
}

#[test]
fn under_wsl_wslview_opens_the_launch_page_in_windows() {
    let world = world();
    let interop = world.dir.path().join("interop");
    stand_in_interop(&interop, true);
    let (status, screen, log) = clone_under_wsl(&world, &interop, "wsl");
    eprintln!("the terminal showed:\n{screen}\nthe interop was asked:\n{log}");
    assert!(status.success(), "{screen}");
    assert_logged_in_and_cloned(&world, "wsl");
    let calls = common::read_jsonl(&interop.join("interop.jsonl"));
    assert_eq!(calls.len(), 2, "{log}");
    assert_eq!(calls[0][0], "wslpath", "{log}");
    assert_eq!(calls[0][1], "-w", "{log}");
    assert!(calls[0][2].as_str().unwrap().ends_with(".html"), "{log}");
    assert_eq!(calls[1][0], "wslview", "{log}");
    let opened = calls[1][1].as_str().unwrap();
    assert!(opened.starts_with("\\\\wsl.localhost\\Debian\\"), "{log}");
    assert!(opened.ends_with(".html"), "{log}");
    assert_no_url_in_argv(&world, &log);
    // The listener won; the paste prompt, shown in case WSL's network
    // kept the redirect away, went away.
    assert!(
        screen.contains("(WSL's network can keep it from keygate)"),
        "{screen}"
    );
    assert!(!screen.contains("paste the address"), "{screen}");
    // The browser is on this screen: no QR code for a phone.
    assert!(qr_lines(&screen).is_empty(), "{screen}");
}

#[test]
fn under_wsl_without_wslview_cmd_exe_start_opens_it() {
    let world = world();
    let interop = world.dir.path().join("interop");
    stand_in_interop(&interop, false);
    let (status, screen, log) = clone_under_wsl(&world, &interop, "wsl-cmd");
    eprintln!("the terminal showed:\n{screen}\nthe interop was asked:\n{log}");
    assert!(status.success(), "{screen}");
    assert_logged_in_and_cloned(&world, "wsl-cmd");
    let calls = common::read_jsonl(&interop.join("interop.jsonl"));
    let names: Vec<&str> = calls.iter().map(|c| c[0].as_str().unwrap()).collect();
    assert_eq!(names, ["wslpath", "cmd.exe"], "{log}");
    assert_eq!(
        calls[1].as_array().unwrap()[1..4],
        ["/d", "/c", "start"],
        "{log}"
    );
    assert!(
        calls[1][4]
            .as_str()
            .unwrap()
            .starts_with("\\\\wsl.localhost\\Debian\\"),
        "{log}"
    );
    assert_no_url_in_argv(&world, &log);
}
