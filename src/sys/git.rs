//! Where the platform's git keeps its configuration: the home directory
//! and the system file move with the platform (Git for Windows keeps its
//! own beside `git.exe`), and keygate must read the files git reads.

#[cfg(not(windows))]
use std::path::Path;
use std::path::PathBuf;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The home directory git reads `~/.gitconfig` from.
#[cfg(not(windows))]
pub(crate) fn home_dir() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// Git for Windows reads `HOME`, and where that is unset (PowerShell,
/// cmd) sets it from `USERPROFILE`, else `HOMEDRIVE` + `HOMEPATH`.
#[cfg(windows)]
pub(crate) fn home_dir() -> Option<PathBuf> {
    env("HOME")
        .or_else(|| env("USERPROFILE"))
        .or_else(|| Some(env("HOMEDRIVE")? + &env("HOMEPATH")?))
        .map(PathBuf::from)
}

/// Git for Windows' system file: `etc\gitconfig` in the installation
/// that holds the first `git.exe` on PATH, whether PATH names its `cmd`
/// or `bin` directory or the `mingw64\bin` one inside it (or, for
/// MSYS2's git, `usr\bin`).
#[cfg(windows)]
pub(crate) fn system_files() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|path| windows_system_file(&path))
        .into_iter()
        .collect()
}

#[cfg(windows)]
fn windows_system_file(path: &std::ffi::OsStr) -> Option<PathBuf> {
    let git = std::env::split_paths(path)
        .map(|dir| dir.join("git.exe"))
        .find(|candidate| candidate.is_file())?;
    let dir = git.parent()?;
    let parent = dir.parent()?;
    let is_msys_prefix = parent.file_name().is_some_and(|name| {
        let name = name.to_string_lossy().to_ascii_lowercase();
        ["mingw64", "mingw32", "clangarm64", "ucrt64", "usr"].contains(&name.as_str())
    });
    let root = if is_msys_prefix && dir.ends_with("bin") {
        parent.parent()?
    } else {
        parent
    };
    Some(root.join("etc").join("gitconfig"))
}

/// The system file of the git that runs keygate: `/etc/gitconfig` for a
/// distribution's git, `PREFIX/etc/gitconfig` for one built under another
/// prefix (found from the first `git` on PATH).
#[cfg(not(windows))]
pub(crate) fn system_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("/etc/gitconfig")];
    let git = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("git"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(prefix) = git.as_deref().and_then(Path::parent).and_then(Path::parent)
        && prefix != Path::new("/usr")
        && prefix != Path::new("/")
    {
        files = vec![prefix.join("etc/gitconfig")];
    }
    files
}

#[cfg(all(test, windows))]
mod tests {
    use super::*;

    #[test]
    fn git_for_windows_system_file_is_found_from_git_exe_on_path() {
        let root = tempfile::tempdir().unwrap();
        let git = root.path().join("Git");
        for dir in ["cmd", "bin", "mingw64/bin", "etc"] {
            std::fs::create_dir_all(git.join(dir)).unwrap();
        }
        let expected = git.join("etc").join("gitconfig");
        // A directory named git is not git.exe.
        std::fs::create_dir_all(root.path().join("other/git")).unwrap();
        for dir in ["cmd", "bin", "mingw64/bin"] {
            std::fs::write(git.join(dir).join("git.exe"), b"").unwrap();
            let path = std::env::join_paths([root.path().join("other"), git.join(dir)]).unwrap();
            assert_eq!(windows_system_file(&path), Some(expected.clone()), "{dir}");
        }
        let nowhere = std::env::join_paths([root.path().join("other")]).unwrap();
        assert_eq!(windows_system_file(&nowhere), None);
    }
}
