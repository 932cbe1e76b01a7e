//! Files and directories only their owner can touch, checked, not assumed.
//!
//! Another local user must not be able to see, plant or swap anything
//! keygate keeps. A directory is keygate's to use only when it is the
//! user's, 0700, and every directory above it is out of other users'
//! reach: owned by root or the user and writable by no one else, or
//! sticky (like `/tmp`), where only the owner of an entry may rename or
//! remove it, so the entry below must be the user's (or root's). Symbolic
//! links on the way are followed only where they sit in such directories,
//! and their targets are walked the same way. Then nothing above or in
//! the directory can change under keygate, so using its path afterwards
//! is as safe as holding a descriptor.
//!
//! Files are opened without following a symbolic link, and checked
//! through the open descriptor (`fstat`) before a byte is read: a regular
//! file of the user's, readable by no one else, of a bounded size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// Why keygate refuses a directory or file.
#[derive(Debug, thiserror::Error)]
pub enum Unsafe {
    #[error(
        "{0} belongs to another user (uid {1}); keygate keeps secrets only in directories of your own: remove it, or point XDG_RUNTIME_DIR/XDG_DATA_HOME at a directory only you can write"
    )]
    Foreign(PathBuf, u32),
    #[error(
        "{0} can be changed by other users (mode {1:04o}), so they could swap what keygate keeps below it: run `chmod go-w {0}`, or point XDG_RUNTIME_DIR/XDG_DATA_HOME at a directory only you can write"
    )]
    Writable(PathBuf, u32),
    #[error("{0} is not a directory; move it aside")]
    NotDirectory(PathBuf),
    #[error("{0} has too many symbolic links on the way")]
    Links(PathBuf),
    // The file errors below come wrapped in a message that names the file.
    #[error("it is a symbolic link, which keygate does not follow there; move it aside")]
    Symlink(PathBuf),
    #[error("it is {1}, not a regular file; move it aside")]
    NotRegular(PathBuf, &'static str),
    #[error("it belongs to another user (uid {1}); move it aside")]
    ForeignFile(PathBuf, u32),
    #[error(
        "it can be read by other users (mode {1:04o}); check who may have read it, then run `chmod 600 {0}`"
    )]
    Exposed(PathBuf, u32),
    #[error("it is larger than {1} MiB, too large to be keygate's; move it aside")]
    TooLarge(PathBuf, u64),
}

impl From<Unsafe> for io::Error {
    fn from(problem: Unsafe) -> Self {
        let kind = match problem {
            Unsafe::NotDirectory(_) => ErrorKind::NotADirectory,
            Unsafe::TooLarge(..) => ErrorKind::FileTooLarge,
            Unsafe::NotRegular(..) => ErrorKind::InvalidInput,
            _ => ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, problem)
    }
}

/// Creates `dir` (and what is missing above it) with mode 0700, or reuses
/// it when it is the user's; refuses one another user owns or can swap.
/// An existing directory of the user's that is looser than 0700 is
/// tightened: everything below it is checked in turn when used.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    platform::walk(dir, true)
}

/// Creates `dir` and what is missing above it as another program would
/// for its own config (`~/.docker`, `~/.config/containers`): new
/// directories are 0700, existing ones and their ancestors are left as
/// they are, since they are that program's, not keygate's.
pub(crate) fn create_dirs_owner_only(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Like [`create_private_dir`] for a directory that must already exist:
/// `NotFound` when it does not.
pub(crate) fn check_private_dir(dir: &Path) -> io::Result<()> {
    platform::walk(dir, false)
}

/// Opens (creating with mode 0600) a file only its owner can read, in a
/// directory [`create_private_dir`] accepted: never through a symbolic
/// link, never another user's file, tightened to 0600 if it is looser.
pub(crate) fn open_private(path: &Path, truncate_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    if truncate_new {
        options.truncate(true);
    }
    let file = platform::open(&mut options, path)?;
    platform::own_regular_file(&file, path, Check::Tighten)?;
    Ok(file)
}

/// A new file at `path`, mode 0600, created exclusively: whatever sits at
/// the name (a planted symbolic link, say) makes the creation fail, it is
/// never written through. The directory is the caller's to have checked.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    platform::open(&mut options, path)
}

/// A new file, mode 0600, beside `path` under a name no one can guess,
/// created exclusively: whatever sits at the name (a planted symbolic
/// link, say) makes the creation fail, it is never written through.
pub(crate) fn create_temp_beside(path: &Path) -> io::Result<(File, PathBuf)> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut last_error = None;
    for _ in 0..4 {
        let temp = path.with_file_name(format!(".{name}.{}.tmp", random_hex()?));
        match create_new_private(&temp) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| ErrorKind::AlreadyExists.into()))
}

/// The whole content of a private file, at most `limit` bytes; `NotFound`
/// when there is none. Refuses a symbolic link, anything but a regular
/// file (a FIFO would block the read forever), another user's file and
/// one others can read.
pub(crate) fn read_private(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_checked(path, limit, true)
}

/// Like [`read_private`] for a file that holds no secret: any mode.
pub(crate) fn read_own(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_checked(path, limit, false)
}

fn read_checked(path: &Path, limit: u64, secret: bool) -> io::Result<Vec<u8>> {
    let mut options = OpenOptions::new();
    options.read(true);
    let file = platform::open(&mut options, path)?;
    let length = platform::own_regular_file(&file, path, Check::Read { secret })?;
    let too_large = || Unsafe::TooLarge(path.to_owned(), limit >> 20);
    if length > limit {
        return Err(too_large().into());
    }
    let mut bytes = Vec::new();
    // The file may grow between the fstat and the read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large().into());
    }
    Ok(bytes)
}

/// What a file's mode must be.
#[derive(Clone, Copy)]
enum Check {
    /// Reading: a secret must be the owner's alone; other files any mode
    /// (modes are Unix's: Windows leaves it to the profile's ACL).
    Read {
        #[cfg_attr(not(unix), allow(dead_code))]
        secret: bool,
    },
    /// Writing: made the owner's alone.
    Tighten,
}

/// Replaces `path` whole with `bytes`, readable by its owner only: a temp
/// file beside it, synced, renamed over it. A crash or a full disk leaves
/// the previous content.
pub(crate) fn write_private_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (mut file, temp) = create_temp_beside(path)?;
    let mut write = || -> std::io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_parent(path);
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })
}

/// Writes `path` with `bytes` only if it does not exist yet, whole or not
/// at all: the content appears in one step (a hard link), so a reader
/// never sees it half written, and of racing writers exactly one wins;
/// the others get `AlreadyExists`.
pub(crate) fn publish_once(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let (mut file, temp) = create_temp_beside(path)?;
    let mut publish = || -> std::io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::hard_link(&temp, path)?;
        sync_parent(path);
        Ok(())
    };
    let outcome = publish();
    let _ = fs::remove_file(&temp);
    outcome
}

/// A rename or link is durable only once its directory is synced.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

fn random_hex() -> io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| io::Error::other("the system has no random numbers"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
mod platform {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::fs::{self, File, OpenOptions};
    use std::io::{self, ErrorKind};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::{Component, Path, PathBuf};

    use super::{Check, Unsafe};

    /// Linux's own limit on links followed while resolving one path.
    const MAX_LINKS: usize = 40;
    const STICKY: u32 = 0o1000;

    use super::super::effective_uid as me;

    /// Opens without following a final symbolic link and without
    /// blocking on a FIFO; the caller checks what it got.
    pub fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
        options
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        options.open(path).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Unsafe::Symlink(path.to_owned()).into()
            } else {
                e
            }
        })
    }

    /// Checks through the descriptor that `file` is a regular file of the
    /// user's, readable by no one else (`tighten`: made so); its length.
    pub fn own_regular_file(file: &File, path: &Path, check: Check) -> io::Result<u64> {
        let meta = file.metadata()?;
        let kind = meta.file_type();
        if !kind.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(Unsafe::NotRegular(path.to_owned(), what).into());
        }
        if meta.uid() != me() {
            return Err(Unsafe::ForeignFile(path.to_owned(), meta.uid()).into());
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            match check {
                Check::Read { secret: true } => {
                    return Err(Unsafe::Exposed(path.to_owned(), mode).into());
                }
                Check::Read { secret: false } => {}
                Check::Tighten => file.set_permissions(fs::Permissions::from_mode(0o600))?,
            }
        }
        Ok(meta.len())
    }

    /// What a checked directory lets the next component be.
    #[derive(Clone, Copy)]
    enum Trust {
        /// Only root and the user can change it.
        Full,
        /// Sticky and writable by others: only an entry of root's or the
        /// user's cannot be swapped.
        Sticky,
    }

    /// Walks `dir` from `/`, component by component, with `lstat`: every
    /// directory must be trusted, symbolic links are resolved by hand,
    /// missing ones are created 0700 when `create`.
    pub fn walk(dir: &Path, create: bool) -> io::Result<()> {
        let me = me();
        let absolute = std::path::absolute(dir)?;
        let mut pending: VecDeque<OsString> = VecDeque::new();
        push_components(&mut pending, &absolute);
        let mut resolved = PathBuf::from("/");
        // The trust of each directory in `resolved`, root first.
        let mut trust = vec![check_ancestor(
            &resolved,
            &fs::symlink_metadata(&resolved)?,
            me,
        )?];
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                if resolved.pop() && trust.len() > 1 {
                    trust.pop();
                }
                continue;
            }
            let next = resolved.join(&name);
            let parent = *trust.last().unwrap_or(&Trust::Full);
            let meta = match fs::symlink_metadata(&next) {
                Err(e) if e.kind() == ErrorKind::NotFound && create => {
                    match fs::DirBuilder::new().mode(0o700).create(&next) {
                        Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e),
                        _ => fs::symlink_metadata(&next)?,
                    }
                }
                other => other?,
            };
            if meta.file_type().is_symlink() {
                // In a sticky directory, a link someone else made is theirs
                // to point anywhere.
                if matches!(parent, Trust::Sticky) && meta.uid() != me && meta.uid() != 0 {
                    return Err(Unsafe::Foreign(next, meta.uid()).into());
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Unsafe::Links(absolute).into());
                }
                let target = fs::read_link(&next)?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                    trust.truncate(1);
                }
                let mut front = VecDeque::new();
                push_components(&mut front, &target);
                front.extend(pending);
                pending = front;
                continue;
            }
            if !meta.is_dir() {
                return Err(Unsafe::NotDirectory(next).into());
            }
            // The last one is checked as the user's own below (a `..` may
            // yet make an ancestor the last one).
            if !pending.is_empty() {
                trust.push(check_ancestor(&next, &meta, me)?);
            }
            resolved = next;
        }
        check_own(&resolved, &fs::symlink_metadata(&resolved)?, me)
    }

    fn push_components(into: &mut VecDeque<OsString>, path: &Path) {
        for component in path.components() {
            match component {
                Component::Normal(name) => into.push_back(name.to_owned()),
                Component::ParentDir => into.push_back("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    }

    /// A directory above keygate's: root's or the user's, and writable by
    /// no one else unless sticky. (Below a sticky directory, that makes
    /// the entry one no one else can swap.)
    fn check_ancestor(path: &Path, meta: &fs::Metadata, me: u32) -> io::Result<Trust> {
        let owner = meta.uid();
        if owner != me && owner != 0 {
            return Err(Unsafe::Foreign(path.to_owned(), owner).into());
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 == 0 {
            Ok(Trust::Full)
        } else if mode & STICKY != 0 {
            Ok(Trust::Sticky)
        } else {
            Err(Unsafe::Writable(path.to_owned(), mode).into())
        }
    }

    /// The directory itself: the user's, tightened to 0700.
    fn check_own(path: &Path, meta: &fs::Metadata, me: u32) -> io::Result<()> {
        if meta.uid() != me {
            return Err(Unsafe::Foreign(path.to_owned(), meta.uid()).into());
        }
        if meta.mode() & 0o7777 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod platform {
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    use super::{Check, Unsafe};

    // Windows: a directory under the user's profile inherits an ACL that
    // admits only the user, SYSTEM and administrators.
    pub fn walk(dir: &Path, create: bool) -> io::Result<()> {
        if create {
            fs::create_dir_all(dir)
        } else if fs::metadata(dir)?.is_dir() {
            Ok(())
        } else {
            Err(Unsafe::NotDirectory(dir.to_owned()).into())
        }
    }

    pub fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
        options.open(path)
    }

    pub fn own_regular_file(file: &File, path: &Path, _check: Check) -> io::Result<u64> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Unsafe::NotRegular(path.to_owned(), "not a file").into());
        }
        Ok(meta.len())
    }
}

#[cfg(test)]
mod atomic_tests {
    use std::fs;

    use super::*;

    #[test]
    fn publish_once_lets_exactly_one_writer_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        publish_once(dir.path(), &path, b"file").unwrap();
        let err = publish_once(dir.path(), &path, b"keychain").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"file");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refusal(error: io::Error) -> String {
        assert!(
            error.get_ref().is_some_and(|inner| inner.is::<Unsafe>()),
            "not a refusal: {error:?}"
        );
        error.to_string()
    }

    #[test]
    fn creates_missing_directories_0700_and_tightens_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/keygate");
        create_private_dir(&deep).unwrap();
        for path in [dir.path().join("a"), dir.path().join("a/b"), deep.clone()] {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
        }
        chmod(&deep, 0o755);
        create_private_dir(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
        check_private_dir(&deep).unwrap();
        let missing = check_private_dir(&dir.path().join("a/none")).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
    }

    /// Without the sticky bit, anyone who can write a directory can
    /// rename what is in it, ours included, and put their own there.
    #[test]
    fn a_world_writable_parent_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o777);
        let said = refusal(create_private_dir(&shared.join("keygate/callbacks")).unwrap_err());
        assert!(said.contains(&shared.display().to_string()), "{said}");
        assert!(said.contains("0777"), "{said}");
        assert!(!shared.join("keygate").exists(), "nothing created below it");
        chmod(&shared, 0o1777);
        create_private_dir(&shared.join("keygate/callbacks")).unwrap();
        // Group-writable is as bad as world-writable.
        chmod(&shared.join("keygate"), 0o770);
        refusal(check_private_dir(&shared.join("keygate/callbacks")).unwrap_err());
    }

    #[test]
    fn links_are_followed_only_through_trusted_directories() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        symlink(&real, dir.path().join("link")).unwrap();
        create_private_dir(&dir.path().join("link/keygate")).unwrap();
        assert!(real.join("keygate").is_dir());

        // A link into a directory others can write leads nowhere safe.
        let shared = dir.path().join("shared");
        fs::create_dir_all(shared.join("keygate")).unwrap();
        chmod(&shared, 0o777);
        symlink(shared.join("keygate"), dir.path().join("data")).unwrap();
        let said = refusal(check_private_dir(&dir.path().join("data")).unwrap_err());
        assert!(said.contains(&shared.display().to_string()), "{said}");

        fs::write(dir.path().join("file"), b"").unwrap();
        let error = create_private_dir(&dir.path().join("file")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotADirectory);
    }

    #[test]
    fn the_temp_file_never_follows_what_sits_at_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let (_, first) = create_temp_beside(&path).unwrap();
        let (_, second) = create_temp_beside(&path).unwrap();
        assert_ne!(first, second, "names are not predictable");
        assert_eq!(mode(&first), 0o600);
        // Whatever is planted at the name, the creation fails rather than
        // write through it.
        let target = dir.path().join("stolen");
        fs::write(&target, b"").unwrap();
        let planted = dir.path().join(".tokens.json.planted.tmp");
        symlink(&target, &planted).unwrap();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let error = platform::open(&mut options, &planted).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn reads_only_a_private_regular_file_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc");
        let (mut file, temp) = create_temp_beside(&path).unwrap();
        std::io::Write::write_all(&mut file, b"content").unwrap();
        fs::rename(&temp, &path).unwrap();
        assert_eq!(read_private(&path, 7).unwrap(), b"content");
        assert_eq!(
            read_private(&path, 6).unwrap_err().kind(),
            ErrorKind::FileTooLarge
        );

        chmod(&path, 0o644);
        let said = refusal(read_private(&path, 1024).unwrap_err());
        assert!(said.contains("chmod 600"), "{said}");
        // Opened for writing (locks, temp files), its own file is tightened.
        open_private(&path, false).unwrap();
        assert_eq!(mode(&path), 0o600);

        let link = dir.path().join("link");
        symlink(&path, &link).unwrap();
        let said = refusal(read_private(&link, 1024).unwrap_err());
        assert!(said.contains("symbolic link"), "{said}");
        refusal(open_private(&link, false).unwrap_err());

        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // Opening does not wait for a writer; the check says what it is.
        let said = refusal(read_private(&fifo, 1024).unwrap_err());
        assert!(said.contains("a FIFO"), "{said}");
    }
}
