//! `git-credential-keygate`: the program git runs before every HTTPS
//! operation (`credential.helper=keygate`, or its absolute path).
//!
//! It links only the cached-token path, so it starts like a small
//! program: starting keygate itself, with its TLS, HTTP, D-Bus and async
//! code, costs more than answering does (relocating the static binary
//! alone is half of a cached `get`'s instructions). What it cannot answer
//! from the file store or the kernel cache, it hands to the `keygate`
//! beside it, with the same arguments, environment and terminal.

use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

use keygate::commands::docker::{self, PROGRAM as DOCKER_PROGRAM};
use keygate::docker_credential::{self, Verb};
use keygate::helper::{self, Operation, Quick};

// git reads the answer on stdout.
#[allow(clippy::disallowed_methods)]
fn main() -> ExitCode {
    if run_as(DOCKER_PROGRAM) {
        return docker_get();
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
    let program = match keygate_beside_us() {
        Ok(program) => program,
        Err(error) => {
            eprintln!(
                "keygate: cannot find where git-credential-keygate is installed ({error}); reinstall keygate"
            );
            return ExitCode::FAILURE;
        }
    };
    let mut command = Command::new(&program);
    command.args(std::env::args_os().skip(1));
    // keygate speaks Docker's protocol when started under its name.
    #[cfg(unix)]
    if run_as(DOCKER_PROGRAM) {
        std::os::unix::process::CommandExt::arg0(&mut command, DOCKER_PROGRAM);
    }
    match request {
        None => run_in_our_place(command, &program),
        Some(request) => hand_over(command, &program, request),
    }
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
