//! The platform: files and directories only the user can touch, who the
//! user is and what they own, who is at the other end of a loopback
//! connection ([`peer`]), the scheme hand-off's local channel
//! (`channel`), where the platform's git keeps its configuration
//! (`git`), what a long-running process asks of the OS, the terminal
//! (its width; its keys, one by one, for the paste prompt), WSL (`wsl`:
//! detecting it, opening the Windows browser), and Windows' security API.
//!
//! Platform `cfg`s and `unsafe` live here (and in the keychain backends),
//! so the rest of keygate reads the same on every platform: each function
//! has one signature everywhere, and where a platform has nothing to offer
//! it gets a stub that says so. Nothing here imports keygate code above it.

pub(crate) mod channel;
pub(crate) mod git;
pub mod peer;
mod private;
mod process;
mod terminal;
#[cfg(windows)]
pub(crate) mod windows;
pub mod wsl;

use std::path::{Path, PathBuf};

pub use private::Unsafe;
pub(crate) use private::{
    check_private_dir, create_dirs_owner_only, create_new_private, create_private_dir,
    open_private, publish_once, read_own, read_private, write_private_atomically,
};
pub use process::{raise_open_file_limit, take_env_vars, terminated, termination};
pub use terminal::{Keys, terminal_columns};

/// Whether install.sh installs `git-credential-keygate` as a program of
/// its own (Linux, where the kernel cache in front of the keychain makes
/// its quick path pay off) rather than as a link to keygate.
pub const INSTALLS_FRONT_PROGRAM: bool = cfg!(target_os = "linux");

/// Whether a browser opened here would show on a screen: on Linux and
/// the BSDs only with an X11 or Wayland display; macOS and Windows always
/// have one.
pub fn has_display() -> bool {
    let is_set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if cfg!(all(unix, not(target_os = "macos"))) {
        is_set("DISPLAY") || is_set("WAYLAND_DISPLAY")
    } else {
        true
    }
}

/// keygate's private directory: `$XDG_DATA_HOME/keygate`, on Windows
/// `%LOCALAPPDATA%\keygate`, else `~/.local/share/keygate`; `None` when
/// neither XDG_DATA_HOME nor HOME (nor LOCALAPPDATA) is set.
pub fn data_dir() -> Option<PathBuf> {
    let env_dir = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = env_dir("XDG_DATA_HOME")
        // Git for Windows sets HOME too, but LOCALAPPDATA is where
        // Windows keeps per-user, per-machine data.
        .or_else(|| cfg!(windows).then(|| env_dir("LOCALAPPDATA")).flatten())
        .or_else(|| env_dir("HOME").map(|home| home.join(".local/share")))?;
    Some(base.join("keygate"))
}

/// Where short-lived sockets go: `$XDG_RUNTIME_DIR/keygate` (a per-user
/// 0700 tmpfs), else `run/` in the data directory. Like every directory
/// keygate uses, checked when created or used ([`create_private_dir`]): a
/// shared or world-writable `XDG_RUNTIME_DIR` is refused there.
pub fn runtime_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("keygate")),
        None => Some(data_dir()?.join("run")),
    }
}

/// The effective UID: who owns what this process creates, and whom the
/// kernel names as the owner of its sockets and keys.
#[cfg(unix)]
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Whether this process's user owns the file, directory or symbolic link
/// (not followed) at `path`: its UID on Unix, its SID as Git for Windows
/// compares them on Windows. Any failure counts as "not mine".
pub fn owned_by_me(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == effective_uid())
    }
    #[cfg(windows)]
    {
        windows::CurrentUser::get().is_ok_and(|me| me.owns(path))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        false
    }
}

/// The file system `path` is on (its device number), for git's rule that
/// repository discovery stops at a file-system boundary; `None` where the
/// platform has no such number, so every path counts as on one.
pub fn device(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
