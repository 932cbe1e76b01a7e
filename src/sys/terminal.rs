//! What keygate asks of the terminal it writes prompts to.

/// The width in columns of the terminal on stderr, or else of the
/// controlling terminal (`/dev/tty`: git may have redirected stderr);
/// `None` where neither says (not a terminal, a pseudo-terminal nobody
/// sized, or a platform without the call).
pub fn terminal_columns() -> Option<u16> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let columns_of = |fd: std::os::fd::RawFd| {
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes a `winsize` through a pointer to an
            // initialised one that outlives the call; on a descriptor that
            // is not a terminal it fails and writes nothing.
            let answered = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
            // A pseudo-terminal no one sized reports 0 columns.
            (answered && size.ws_col > 0).then_some(size.ws_col)
        };
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
