//! `git-credential-keygate`: the program git runs before every HTTPS
//! operation (`credential.helper=keygate`, or its absolute path).
//!
//! It links only the cached-token path, so it starts like a small
//! program: starting keygate itself, with its TLS, HTTP, D-Bus and async
//! code, costs more than answering does (relocating the static binary
//! alone is half of a cached `get`'s instructions). What it cannot answer
//! from the file store or the kernel cache, it hands to the `keygate`
//! beside it, with the same arguments, environment and terminal.
//!
//! It has two more faces: Docker's `get` (as `docker-credential-keygate`)
//! and cargo's credential provider (`--cargo-plugin`, as
//! `cargo-credential-keygate`), which cargo starts for nearly every
//! registry request when tokens are short-lived.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

use keygate::cargo_credential;
use keygate::commands::cargo;
use keygate::commands::docker::{self, PROGRAM as DOCKER_PROGRAM};
use keygate::config::GitConfig;
use keygate::docker_credential::{self, Verb};
use keygate::helper::{self, Operation, Quick};

// git reads the answer on stdout.
#[allow(clippy::disallowed_methods)]
fn main() -> ExitCode {
    if run_as(DOCKER_PROGRAM) {
        return docker_get();
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == cargo::PLUGIN_FLAG)
    {
        return cargo_provider();
    }
    let front = Operation::for_front(std::env::args_os().skip(1), |name| std::env::var_os(name));
    let Some(operation) = front else {
        return keygate(None);
    };
    let mut request = Vec::new();
    if read_request(&mut request).is_err() {
        return keygate(Some(&request));
    }
    match helper::serve_quickly(operation, &request, io::stdout().lock()) {
        Ok(Quick::Served) => ExitCode::SUCCESS,
        Ok(Quick::NeedsKeygate) => keygate(Some(&request)),
        Err(error) => {
            eprintln!(
                "keygate: {}",
                keygate::text::escape_line(&error.to_string())
            );
            ExitCode::FAILURE
        }
    }
}

/// Whether this program was started under `name` (a link or copy named
/// `docker-credential-keygate`).
fn run_as(name: &str) -> bool {
    std::env::args_os().next().is_some_and(|arg0| {
        Path::new(&arg0)
            .file_stem()
            .is_some_and(|stem| stem == name)
    })
}

/// Docker's `get` for a fresh cached token, or "not found" for a registry
/// keygate does not handle; every other verb, and whatever this cannot
/// answer, goes to keygate under Docker's name.
#[allow(clippy::disallowed_methods)]
fn docker_get() -> ExitCode {
    let get = Verb::from_args(std::env::args_os().skip(1)) == Some(Verb::Get)
        && helper::front_may_answer(|name| std::env::var_os(name));
    if !get {
        return keygate(None);
    }
    let Ok(request) = docker_credential::read_request(io::stdin().lock()) else {
        return keygate(Some(&[]));
    };
    match docker::serve_quickly(&request, io::stdout().lock()) {
        Ok(docker::Quick::Served) => ExitCode::SUCCESS,
        Ok(docker::Quick::NotFound) => ExitCode::FAILURE,
        Ok(docker::Quick::NeedsKeygate) => keygate(Some(&request)),
        Err(error) => {
            // The answer could not be written: nobody is left to read another.
            eprintln!(
                "keygate: {}",
                keygate::text::escape_line(&error.to_string())
            );
            ExitCode::FAILURE
        }
    }
}

/// What the front reads of one cargo request before it hands the
/// conversation over unanswered: cargo's requests are a few hundred bytes,
/// and what was read travels in keygate's environment.
const CARGO_LINE_LIMIT: usize = 32 * 1024;

/// cargo's credential-provider protocol: the hello, then each request
/// answered here while it is a `get` with a fresh cached token or one for
/// a registry keygate does not handle. At the first other request the rest
/// of the conversation is keygate's, told that the hello was said and
/// given what was read of the request (see [`hand_cargo_over`]).
#[allow(clippy::disallowed_methods)]
fn cargo_provider() -> ExitCode {
    // cargo gives no second argument: anything more is keygate's to judge.
    let plain = std::env::args_os().nth(2).is_none();
    if !plain || !helper::front_may_answer(|name| std::env::var_os(name)) {
        return keygate(None);
    }
    let mut output = io::stdout().lock();
    if let Err(error) = cargo_credential::write_hello(&mut output) {
        return cannot_answer(&error.to_string());
    }
    let mut stdin = io::stdin().lock();
    let mut read = Vec::new();
    let mut config = None;
    loop {
        let Some(end) = read_cargo_line(&mut stdin, &mut read) else {
            return hand_cargo_over(&read);
        };
        if end == 0 {
            return ExitCode::SUCCESS;
        }
        let Ok(line) = std::str::from_utf8(&read[..end]) else {
            return hand_cargo_over(&read);
        };
        if line.trim().is_empty() {
            read.drain(..end);
            continue;
        }
        if config.is_none() {
            config = GitConfig::load().ok();
        }
        let Some(config) = &config else {
            return hand_cargo_over(&read);
        };
        match cargo::serve_quickly(config, line, &mut output) {
            Ok(cargo::Quick::Served) => {
                read.drain(..end);
            }
            Ok(cargo::Quick::NeedsKeygate) => return hand_cargo_over(&read),
            Err(error) => return cannot_answer(&error.to_string()),
        }
    }
}

/// Reads into `read` until it holds a whole line, and says where that
/// line ends: 0 once cargo closed its end with nothing left, the end of
/// the input for a last line without a newline. `None` for what the front
/// leaves to keygate: a line longer than [`CARGO_LINE_LIMIT`] or a failed
/// read. Whatever cargo sent after the line stays in `read`.
fn read_cargo_line(stdin: &mut impl Read, read: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0; 8 * 1024];
    loop {
        if let Some(newline) = read.iter().position(|&byte| byte == b'\n') {
            return Some(newline + 1);
        }
        if read.len() >= CARGO_LINE_LIMIT {
            return None;
        }
        match stdin.read(&mut chunk) {
            Ok(0) => return Some(read.len()),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// keygate in our place for the rest of cargo's conversation: `keygate
/// --cargo-plugin --hello-sent`, with what the front `read` of stdin in
/// its environment and the rest of stdin its own, so later requests reach
/// it too. What cannot be an environment variable (a NUL byte, text that
/// is not UTF-8: no request cargo sends) is its stdin instead, and the
/// conversation ends after it.
fn hand_cargo_over(read: &[u8]) -> ExitCode {
    let Some((mut command, program)) = keygate_command() else {
        return ExitCode::FAILURE;
    };
    command.arg(cargo::HELLO_SENT_FLAG);
    match std::str::from_utf8(read) {
        Ok(text) if !text.contains('\0') => {
            command.env(cargo::HANDED_OVER_ENV, text);
            run_in_our_place(command, &program)
        }
        _ => {
            command.env_remove(cargo::HANDED_OVER_ENV);
            hand_over(command, &program, read)
        }
    }
}

/// The answer could not be written: nobody is left to read another.
fn cannot_answer(error: &str) -> ExitCode {
    eprintln!("keygate: {}", keygate::text::escape_line(error));
    ExitCode::FAILURE
}

/// git's request: its lines up to the blank line that ends it, or to the
/// end of the input.
fn read_request(into: &mut Vec<u8>) -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    loop {
        let start = into.len();
        if stdin.read_until(b'\n', into)? == 0 || into[start..] == *b"\n" {
            return Ok(());
        }
    }
}

/// Runs the `keygate` beside this program as if git had run it: same
/// arguments, environment, stdout, stderr and terminal. `request`, what
/// was already read of stdin, is its stdin; without one it takes ours.
fn keygate(request: Option<&[u8]>) -> ExitCode {
    let Some((command, program)) = keygate_command() else {
        return ExitCode::FAILURE;
    };
    match request {
        None => run_in_our_place(command, &program),
        Some(request) => hand_over(command, &program, request),
    }
}

/// The `keygate` beside this program with our arguments, or `None` once
/// the reason it cannot be found is said.
fn keygate_command() -> Option<(Command, PathBuf)> {
    let program = match keygate_beside_us() {
        Ok(program) => program,
        Err(error) => {
            eprintln!(
                "keygate: cannot find where git-credential-keygate is installed ({error}); reinstall keygate"
            );
            return None;
        }
    };
    let mut command = Command::new(&program);
    command.args(std::env::args_os().skip(1));
    // keygate speaks Docker's protocol when started under its name.
    #[cfg(unix)]
    if run_as(DOCKER_PROGRAM) {
        std::os::unix::process::CommandExt::arg0(&mut command, DOCKER_PROGRAM);
    }
    Some((command, program))
}

/// keygate in our place, with `request` as all of its stdin.
#[cfg(unix)]
fn hand_over(mut command: Command, program: &Path, request: &[u8]) -> ExitCode {
    // A pipe takes this much without a reader even when the user's pipe
    // quota is spent, so the write cannot block with nobody to read.
    const ALWAYS_FITS: usize = 4096;
    if request.len() <= ALWAYS_FITS
        && let Ok((reader, mut writer)) = io::pipe()
        && writer.write_all(request).is_ok()
    {
        drop(writer);
        command.stdin(reader);
        return run_in_our_place(command, program);
    }
    wait_for(command, program, request)
}

#[cfg(not(unix))]
fn hand_over(command: Command, program: &Path, request: &[u8]) -> ExitCode {
    wait_for(command, program, request)
}

/// keygate as our child, fed `request`: for what does not fit a pipe, and
/// where a process cannot replace itself.
fn wait_for(mut command: Command, program: &Path, request: &[u8]) -> ExitCode {
    command.stdin(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return cannot_run(program, &error),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // keygate stops reading at a malformed line and says why; the
        // rest of the request has nowhere to go then.
        let _ = stdin.write_all(request);
    }
    match child.wait() {
        Ok(status) => exit_code(status),
        Err(error) => cannot_run(program, &error),
    }
}

fn keygate_beside_us() -> io::Result<PathBuf> {
    let name: OsString = format!("keygate{}", std::env::consts::EXE_SUFFIX).into();
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// No middle process on Unix: keygate replaces this one.
#[cfg(unix)]
fn run_in_our_place(mut command: Command, program: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    cannot_run(program, &error)
}

#[cfg(not(unix))]
fn run_in_our_place(mut command: Command, program: &Path) -> ExitCode {
    match command.status() {
        Ok(status) => exit_code(status),
        Err(error) => cannot_run(program, &error),
    }
}

fn cannot_run(program: &Path, error: &io::Error) -> ExitCode {
    eprintln!(
        "keygate: cannot run {} ({error}); git-credential-keygate needs keygate installed beside it: reinstall keygate",
        keygate::text::escape_line(&program.display().to_string())
    );
    ExitCode::FAILURE
}

/// keygate's own exit status; a signal that ended it as the shell reports
/// one (128 + its number).
fn exit_code(status: ExitStatus) -> ExitCode {
    #[cfg(unix)]
    let by_signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let by_signal: Option<i32> = None;
    match (status.code(), by_signal) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}
