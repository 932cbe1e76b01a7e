//! What keygate asks of the terminal it writes prompts to: its width, and
//! the controlling terminal itself (`/dev/tty`), read key by key for the
//! paste prompt while keygate also waits for other things.

use std::io;

/// The width in columns of the terminal on stderr, or else of the
/// controlling terminal (`/dev/tty`: git may have redirected stderr);
/// `None` where neither says (not a terminal, a pseudo-terminal nobody
/// sized, or a platform without the call).
pub fn terminal_columns() -> Option<u16> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        columns_of(libc::STDERR_FILENO).or_else(|| {
            let tty = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .ok()?;
            columns_of(tty.as_raw_fd())
        })
    }
    #[cfg(not(unix))]
    None
}

#[cfg(unix)]
fn columns_of(fd: std::os::fd::RawFd) -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `winsize` through a pointer to an
    // initialised one that outlives the call; on a descriptor that is not
    // a terminal it fails and writes nothing.
    let answered = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    // A pseudo-terminal no one sized reports 0 columns.
    (answered && size.ws_col > 0).then_some(size.ws_col)
}

/// The controlling terminal, opened anew (so its non-blocking mode is this
/// open file's alone, never git's stdin), with keystrokes delivered one
/// by one and not echoed: the paste prompt draws its own line, so it can
/// show a countdown beside what is typed and take the line away whole.
/// Ctrl-C still raises SIGINT. The terminal's settings are restored, and
/// anything typed but not read is discarded, when this is dropped.
pub struct Keys {
    #[cfg(unix)]
    fd: tokio::io::unix::AsyncFd<std::fs::File>,
    #[cfg(unix)]
    saved: libc::termios,
}

impl Keys {
    /// Opens `/dev/tty` for key-by-key reading. Needs a tokio runtime.
    pub fn open() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open("/dev/tty")?;
            let raw = file.as_raw_fd();
            // SAFETY: a zeroed termios is a valid value to be overwritten,
            // and tcgetattr writes through a pointer that outlives the call.
            let mut saved: libc::termios = unsafe { std::mem::zeroed() };
            if unsafe { libc::tcgetattr(raw, &mut saved) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut keys = saved;
            keys.c_lflag &= !(libc::ICANON | libc::ECHO);
            keys.c_cc[libc::VMIN] = 1;
            keys.c_cc[libc::VTIME] = 0;
            // SAFETY: as above, on a valid descriptor of ours.
            if unsafe { libc::tcsetattr(raw, libc::TCSANOW, &keys) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // From here on, Drop restores the settings.
            let restore = |error| {
                // SAFETY: as above.
                unsafe { libc::tcsetattr(raw, libc::TCSANOW, &saved) };
                error
            };
            // SAFETY: the File owns its descriptor and the AsyncFd owns the
            // File: the descriptor stays open, the same, for its lifetime.
            let fd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    file,
                    tokio::io::Interest::READABLE,
                )
            }
            .map_err(|error| restore(error.into_parts().1))?;
            Ok(Self { fd, saved })
        }
        #[cfg(not(unix))]
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reading the terminal key by key is not supported on this platform",
        ))
    }

    /// The next keystrokes (a paste arrives as many); empty at the end of
    /// the terminal's input (it hung up).
    pub async fn read(&self) -> io::Result<Vec<u8>> {
        #[cfg(unix)]
        {
            use std::io::Read;
            loop {
                let mut ready = self.fd.readable().await?;
                let mut buffer = [0u8; 1024];
                match ready.try_io(|fd| fd.get_ref().read(&mut buffer)) {
                    Ok(Ok(n)) => return Ok(buffer[..n].to_vec()),
                    Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(Err(error)) => return Err(error),
                    Err(_would_block) => continue,
                }
            }
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }

    /// Writes to the terminal; a write that fails is dropped (the prompt
    /// is drawn again on the next key or tick).
    pub fn write(&self, text: &str) {
        #[cfg(unix)]
        {
            use std::io::Write;
            let mut file = self.fd.get_ref();
            let mut rest = text.as_bytes();
            // Non-blocking: a full terminal buffer is waited out briefly.
            let mut spins = 0;
            while !rest.is_empty() && spins < 100 {
                match file.write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        spins += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
            let _ = file.flush();
        }
        #[cfg(not(unix))]
        let _ = text;
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let raw = self.fd.get_ref().as_raw_fd();
            // SAFETY: restores the settings read in `open` on the same
            // descriptor; tcflush drops typed input nobody will read, which
            // would otherwise reach the shell after keygate exits.
            unsafe {
                libc::tcflush(raw, libc::TCIFLUSH);
                libc::tcsetattr(raw, libc::TCSANOW, &self.saved);
            }
        }
    }
}
