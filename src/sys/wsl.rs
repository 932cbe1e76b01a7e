//! Windows Subsystem for Linux: whether keygate runs under it, and how to
//! show a file of this Linux system in the Windows default browser.
//!
//! Only a file's path ever reaches a Windows program's command line, never
//! a URL: Windows' own process list, like Linux's argv, is readable by
//! other programs, and the login's URL carries its state.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether this is a Linux running under WSL: the kernel says so in its
/// release string (`…-microsoft-standard-WSL2`, `…-Microsoft` on WSL 1),
/// or WSL's variables are in the environment (`WSL_DISTRO_NAME`, set in
/// every WSL session, `WSL_INTEROP`, WSL 2's interop socket).
pub fn is_wsl() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    set("WSL_DISTRO_NAME")
        || set("WSL_INTEROP")
        || std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .is_ok_and(|release| names_wsl_kernel(&release))
}

fn names_wsl_kernel(release: &str) -> bool {
    let release = release.to_ascii_lowercase();
    release.contains("microsoft") || release.contains("wsl")
}

/// Opens the file at `path` with Windows' default program for it (the
/// default browser for a `.html` page): `wslview` (wslu) when installed,
/// else `cmd.exe /c start`, else `explorer.exe`, each found on `PATH`
/// (WSL appends Windows' `PATH` to it). The path goes through
/// `wslpath -w` first (`\\wsl.localhost\Distro\…`). Returns the program
/// that took it.
pub fn open_on_windows(path: &Path) -> io::Result<&'static str> {
    let windows_path = windows_path(path)?;
    let mut failures = Vec::new();
    if launched(Command::new("wslview").arg(&windows_path), &mut failures) {
        return Ok("wslview");
    }
    // cmd.exe parses its command line itself: `&`, `|`, `<`, `>`, `(`,
    // `)` and `^` in a path are escaped with `^`; a path that needs
    // quoting (spaces, `%`, `!`, quotes) goes to explorer.exe instead.
    if let Some(escaped) = cmd_escaped(&windows_path)
        && launched(
            Command::new("cmd.exe").args(["/d", "/c", "start", &escaped]),
            &mut failures,
        )
    {
        return Ok("cmd.exe");
    }
    // explorer.exe takes the path as one argument and runs no shell; it
    // exits 1 even when it opened the file, so only starting counts.
    match spawned(Command::new("explorer.exe").arg(&windows_path)) {
        Ok(()) => Ok("explorer.exe"),
        Err(error) => {
            failures.push(format!("explorer.exe: {error}"));
            Err(io::Error::other(failures.join("; ")))
        }
    }
}

/// `path` as Windows names it, from `wslpath -w`.
fn windows_path(path: &Path) -> io::Result<String> {
    let output = Command::new("wslpath")
        .arg("-w")
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|error| io::Error::new(error.kind(), format!("wslpath: {error}")))?;
    let text = String::from_utf8(output.stdout).unwrap_or_default();
    let windows = text.trim_end_matches(['\r', '\n']);
    if !output.status.success() || windows.is_empty() || windows.contains(['\r', '\n']) {
        return Err(io::Error::other("wslpath -w gave no Windows path"));
    }
    Ok(windows.to_owned())
}

/// Runs a launcher to its end: it hands the file to Windows and exits.
fn launched(command: &mut Command, failures: &mut Vec<String>) -> bool {
    let name = program_name(command);
    match command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => true,
        Ok(status) => {
            failures.push(format!("{name}: {status}"));
            false
        }
        Err(error) => {
            failures.push(format!("{name}: {error}"));
            false
        }
    }
}

fn spawned(command: &mut Command) -> io::Result<()> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Reaped on a thread of its own: its exit code means nothing.
    std::thread::spawn(move || child.wait());
    Ok(())
}

fn program_name(command: &Command) -> String {
    Path::new(command.get_program())
        .file_name()
        .unwrap_or(OsStr::new("?"))
        .to_string_lossy()
        .into_owned()
}

/// `path` as one word of a `cmd.exe /c` command line, its metacharacters
/// escaped with `^`; `None` when it would need quotes, inside which `^`
/// escapes nothing (and `%` and `!` cannot be escaped at all).
fn cmd_escaped(path: &str) -> Option<String> {
    if path.is_empty()
        || path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '%' | '!'))
    {
        return None;
    }
    let mut escaped = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if matches!(c, '^' | '&' | '|' | '<' | '>' | '(' | ')') {
            escaped.push('^');
        }
        escaped.push(c);
    }
    Some(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_release_names_wsl() {
        assert!(names_wsl_kernel("5.15.167.4-microsoft-standard-WSL2\n"));
        assert!(names_wsl_kernel("4.4.0-19041-Microsoft"));
        assert!(!names_wsl_kernel("6.1.0-28-amd64"));
    }

    #[test]
    fn cmd_metacharacters_are_escaped_and_quoting_is_refused() {
        assert_eq!(
            cmd_escaped(r"\\wsl.localhost\Debian\home\a&b\x(1).html").as_deref(),
            Some(r"\\wsl.localhost\Debian\home\a^&b\x^(1^).html")
        );
        assert_eq!(cmd_escaped("a^|<>").as_deref(), Some("a^^^|^<^>"));
        for needs_quotes in [r"C:\Users\A B\x.html", "a%PATH%b", "a!b", "a\"b", ""] {
            assert_eq!(cmd_escaped(needs_quotes), None, "{needs_quotes:?}");
        }
    }
}
