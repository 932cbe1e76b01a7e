//! The scheme hand-off's channel: a per-user local channel from
//! `keygate callback` to the login waiting for it, named after the flow
//! (its state), so a callback reaches only the flow it belongs to:
//!
//! - Unix: a socket in a 0700 directory of this user, which another user
//!   cannot even connect to;
//! - Windows: a named pipe whose first instance the login creates, open
//!   to this user's SID alone and to local clients only, whose name hashes
//!   this user's runtime directory together with the flow's name.
//!
//! [`Listener::accept`] gives a stream that is `AsyncRead + AsyncWrite`
//! on every platform; [`connect`] a blocking `Read + Write` one.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub(crate) use platform::{Listener, connect};

/// Where the channel `name` listens: a socket under `dir` on Unix, a
/// pipe whose name hashes `dir` and `name` on Windows (pipes live in one
/// machine-wide namespace, so the per-user directory goes into the name).
pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    if cfg!(windows) {
        hasher.update(dir.as_os_str().as_encoded_bytes());
        hasher.update([0]);
    }
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    if cfg!(windows) {
        PathBuf::from(format!(r"\\.\pipe\keygate-callback-{name}"))
    } else {
        dir.join(format!("{name}.sock"))
    }
}

/// Checks, before a client trusts a socket in `dir`, that no other user
/// can swap it (a socket of theirs would receive what is sent); `NotFound`
/// when there is no such directory. Windows pipes live in no directory.
pub(crate) fn check_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        super::check_private_dir(dir)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
mod platform {
    use std::io;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};

    use std::time::Duration;

    /// How long `keygate callback` waits for the login to answer.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

    pub struct Listener {
        inner: tokio::net::UnixListener,
        path: PathBuf,
    }

    impl Listener {
        pub fn bind(dir: &Path, path: &Path) -> io::Result<Self> {
            crate::sys::create_private_dir(dir)?;
            // A socket left by a crashed login with this same state.
            let _ = std::fs::remove_file(path);
            Ok(Self {
                inner: tokio::net::UnixListener::bind(path)?,
                path: path.to_owned(),
            })
        }

        pub async fn accept(&mut self) -> io::Result<tokio::net::UnixStream> {
            Ok(self.inner.accept().await?.0)
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// NotFound when no login listens, including a socket file left by
    /// one that died.
    pub fn connect(path: &Path) -> io::Result<UnixStream> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => io::Error::from(io::ErrorKind::NotFound),
            _ => e,
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(stream)
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::AsRawHandle;
    use std::path::{Path, PathBuf};
    use std::ptr::null_mut;
    use std::time::{Duration, Instant};

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use windows_sys::Win32::Foundation::{ERROR_PIPE_BUSY, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};
    use windows_sys::Win32::System::Pipes::{PeekNamedPipe, WaitNamedPipeW};

    /// How long `keygate callback` waits for a free pipe instance, and
    /// then for the login to answer.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

    /// Every instance of the pipe admits this user alone.
    struct OwnerOnly {
        descriptor: PSECURITY_DESCRIPTOR,
    }

    // SAFETY: the descriptor is never written after it is made, and freed
    // once, on drop.
    unsafe impl Send for OwnerOnly {}
    // SAFETY: as above: shared use only reads it.
    unsafe impl Sync for OwnerOnly {}

    impl OwnerOnly {
        fn new() -> io::Result<Self> {
            let sid = crate::sys::windows::CurrentUser::get()?.sid_string()?;
            // A protected DACL with one entry: full access for this user.
            // Nobody else (not even Everyone's default read) may connect.
            let sddl: Vec<u16> = format!("D:P(A;;GA;;;{sid})")
                .encode_utf16()
                .chain(Some(0))
                .collect();
            let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
            // SAFETY: a NUL-terminated string in; `descriptor` receives a
            // LocalAlloc'd descriptor, freed on drop.
            let ok = unsafe {
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    sddl.as_ptr(),
                    SDDL_REVISION_1,
                    &mut descriptor,
                    null_mut(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { descriptor })
        }

        fn create(&self, path: &Path, first: bool) -> io::Result<NamedPipeServer> {
            let mut attributes = SECURITY_ATTRIBUTES {
                nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: self.descriptor,
                bInheritHandle: 0,
            };
            // first_pipe_instance: fail rather than share a name someone
            // else created first; remote clients: never over the network.
            // SAFETY: `attributes` and the descriptor it points to outlive
            // the call, which copies them.
            unsafe {
                ServerOptions::new()
                    .first_pipe_instance(first)
                    .reject_remote_clients(true)
                    .create_with_security_attributes_raw(path, (&raw mut attributes).cast())
            }
        }
    }

    impl Drop for OwnerOnly {
        fn drop(&mut self) {
            // SAFETY: allocated by ConvertStringSecurityDescriptor..., freed once.
            unsafe { LocalFree(self.descriptor) };
        }
    }

    pub struct Listener {
        server: NamedPipeServer,
        path: PathBuf,
        access: OwnerOnly,
    }

    impl Listener {
        pub fn bind(_dir: &Path, path: &Path) -> io::Result<Self> {
            let access = OwnerOnly::new()?;
            Ok(Self {
                server: access.create(path, true)?,
                path: path.to_owned(),
                access,
            })
        }

        pub async fn accept(&mut self) -> io::Result<NamedPipeServer> {
            let connected = self.server.connect().await;
            // The next instance exists before this one is handed out, so
            // a probe or a stray client never leaves the name gone.
            let next = self.access.create(&self.path, false)?;
            let this = std::mem::replace(&mut self.server, next);
            connected.map(|()| this)
        }
    }

    /// NotFound when no login listens. Between a client taking the one
    /// listening instance and the login making the next, the pipe is busy
    /// (ERROR_PIPE_BUSY): wait for the next instance rather than fail.
    pub fn connect(path: &Path) -> io::Result<Pipe> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let name: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        loop {
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => {
                    return Ok(Pipe {
                        file,
                        reply_by: None,
                    });
                }
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e);
                    }
                    let wait = left.min(Duration::from_secs(1)).as_millis() as u32;
                    // SAFETY: a NUL-terminated pipe name in.
                    if unsafe { WaitNamedPipeW(name.as_ptr(), wait) } == 0 {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The client end, whose reads give up once the login has not
    /// answered for [`REPLY_TIMEOUT`] (a synchronous pipe has no read
    /// timeout of its own).
    pub struct Pipe {
        file: File,
        reply_by: Option<Instant>,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.file.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.file.flush()
        }
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let deadline = *self
                .reply_by
                .get_or_insert_with(|| Instant::now() + REPLY_TIMEOUT);
            loop {
                let mut available = 0u32;
                // SAFETY: a live pipe handle; only the count is asked for.
                let ok = unsafe {
                    PeekNamedPipe(
                        self.file.as_raw_handle(),
                        null_mut(),
                        0,
                        null_mut(),
                        &mut available,
                        null_mut(),
                    )
                };
                // Data, or a pipe the login closed: the read says which.
                if ok == 0 || available > 0 {
                    return self.file.read(buf);
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the waiting login did not answer",
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
