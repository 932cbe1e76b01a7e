//! The `git-credential-keygate` git finds and the keygate beside it,
//! asked for their version; every program doctor runs for this is given
//! a bounded time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use url::Url;

use super::Check;
use super::helper_chain::{Helper, helpers_for};
use crate::config::GitConfig;

/// What a program doctor runs (`git --exec-path`, the helper's
/// `--version`) gets before doctor stops waiting and kills it.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(5);

/// The `git-credential-keygate` git will run and the keygate beside it.
pub(super) fn check(config: &GitConfig, url: Option<&Url>) -> Check {
    const NAME: &str = "helper program";
    let helpers = helpers_for(config, url);
    let configured = helpers.iter().find(|h| h.is_keygate());
    let word = configured.map_or("keygate", Helper::first_word);
    let program = if Path::new(word).is_absolute() {
        Some(PathBuf::from(word))
    } else {
        find_git_helper("git-credential-keygate")
    };
    let Some(program) = program.filter(|p| p.is_file()) else {
        return Check::fail(
            NAME,
            "git finds no git-credential-keygate (neither in `git --exec-path` nor on PATH)",
            "put the directory holding git-credential-keygate and keygate on PATH, or reinstall",
        );
    };
    let beside = program.with_file_name(format!("keygate{}", std::env::consts::EXE_SUFFIX));
    if !beside.is_file() {
        return Check::fail(
            NAME,
            format!(
                "{} has no keygate beside it ({})",
                program.display(),
                beside.display()
            ),
            "install keygate and git-credential-keygate into the same directory",
        );
    }
    let ours = env!("CARGO_PKG_VERSION");
    // `git-credential-keygate --version` runs the keygate beside it, which
    // is what git ends up talking to.
    match program_version(&program) {
        Some(theirs) if theirs == ours => Check::ok(
            NAME,
            format!("git runs {} (keygate {theirs})", program.display()),
        ),
        Some(theirs) => Check::warn(
            NAME,
            format!(
                "git runs {} with keygate {theirs}, this keygate is {ours}",
                program.display()
            ),
            "reinstall so that one version is on PATH",
        ),
        None => Check::fail(
            NAME,
            format!(
                "{} does not run, or did not answer --version within {}s",
                program.display(),
                PROGRAM_TIMEOUT.as_secs()
            ),
            "reinstall keygate",
        ),
    }
}

/// Where git finds `git-<name>`: its exec path first, then PATH.
fn find_git_helper(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let exec_path = stdout_within(Command::new("git").arg("--exec-path"), PROGRAM_TIMEOUT)
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out).trim()));
    let path = std::env::var_os("PATH").unwrap_or_default();
    exec_path
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.is_file())
}

fn program_version(program: &Path) -> Option<String> {
    let output = stdout_within(Command::new(program).arg("--version"), PROGRAM_TIMEOUT)?;
    let line = String::from_utf8_lossy(&output);
    line.split_whitespace().nth(1).map(str::to_owned)
}

/// `command`'s stdout once it has exited, or `None` when it cannot start
/// or is still running after `limit` (then it is killed): a helper that
/// hangs must not hang doctor.
fn stdout_within(command: &mut Command, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let (sender, receiver) = std::sync::mpsc::channel();
    // A thread of its own: a program that fills the pipe would otherwise
    // wait for us while we wait for it.
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    // A process it left behind may still hold the pipe open.
    receiver
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}
