//! What a person sees while a login waits for them: what keygate waits
//! for, how long it will wait and how to cancel; on a terminal, a line
//! redrawn in place with a spinner and the time left, elsewhere (a log, a
//! CI job's output) one plain line.

use std::convert::Infallible;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

use crate::text::{CLEAR_LINE, escape_line};

/// How often the live line is redrawn.
const TICK: Duration = Duration::from_millis(250);
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Shows `message` on stderr, and on the terminal too when stderr is not
/// one (git may have redirected it), so a person at the keyboard sees it.
/// `qr_code` is asked, with whether there is a terminal, for a drawing
/// that then follows the message on the terminal only, never in a log.
pub(super) fn show(message: &str, qr_code: impl FnOnce(bool) -> Option<String>) {
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let tty = if stderr_is_terminal { None } else { open_tty() };
    let on_terminal = match qr_code(stderr_is_terminal || tty.is_some()) {
        Some(drawing) => format!("{message}{drawing}"),
        None => message.to_owned(),
    };
    let mut stderr = std::io::stderr().lock();
    match tty {
        Some(mut tty) => {
            let _ = stderr.write_all(message.as_bytes());
            let _ = tty.write_all(on_terminal.as_bytes());
        }
        None if stderr_is_terminal => {
            let _ = stderr.write_all(on_terminal.as_bytes());
        }
        None => {
            let _ = stderr.write_all(message.as_bytes());
        }
    }
}

fn open_tty() -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/tty")
        .ok()
}

/// Says that keygate waits for `what` (`the browser's redirect`) until
/// `deadline`, and how to cancel; never completes, so it runs beside the
/// wait (`select!`) and stops when dropped, taking its line with it.
pub(super) async fn status(what: &str, deadline: Instant) -> Infallible {
    let Some(mut line) = LiveLine::open() else {
        let left = deadline.saturating_duration_since(Instant::now());
        // The milliseconds already spent do not make 5 minutes 4:59.
        let left = Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        crate::text::notice(&format!(
            "waiting up to {} for {what}; press Ctrl-C to cancel",
            long_duration(left)
        ));
        return std::future::pending().await;
    };
    let mut frame = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        line.draw(&format!(
            "keygate: {} waiting for {what} ({} left, Ctrl-C to cancel)",
            SPINNER[frame % SPINNER.len()],
            clock(left)
        ));
        frame += 1;
        tokio::time::sleep(TICK).await;
    }
}

/// A line on the terminal redrawn in place; erased when dropped.
struct LiveLine {
    /// The controlling terminal when stderr is not one.
    tty: Option<std::fs::File>,
    columns: usize,
}

impl LiveLine {
    fn open() -> Option<Self> {
        let tty = if std::io::stderr().is_terminal() {
            crate::text::set_live_line(true);
            None
        } else {
            Some(open_tty()?)
        };
        Some(Self {
            tty,
            columns: columns(),
        })
    }

    fn draw(&mut self, text: &str) {
        let text = fit(&escape_line(text), self.columns);
        self.write(&format!("{CLEAR_LINE}{text}"));
    }

    fn write(&mut self, text: &str) {
        match &mut self.tty {
            Some(tty) => {
                let _ = tty.write_all(text.as_bytes());
            }
            None => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        self.write(CLEAR_LINE);
        if self.tty.is_none() {
            crate::text::set_live_line(false);
        }
    }
}

/// Assumed when neither the terminal nor `COLUMNS` says.
const DEFAULT_COLUMNS: usize = 80;

/// The terminal's width: `COLUMNS` when exported (someone did it on
/// purpose: shells keep it unexported), else what the terminal says, else
/// 80.
pub(super) fn columns() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| crate::sys::terminal_columns().map(usize::from))
        .unwrap_or(DEFAULT_COLUMNS)
}

/// `text` cut to one line short of `columns` characters: a line that
/// wraps cannot be redrawn in place.
pub(super) fn fit(text: &str, columns: usize) -> String {
    let room = columns.saturating_sub(1).max(10);
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(room - 1).collect();
    cut.push('…');
    cut
}

/// `4:59`, `1:02:03`: the time left on a countdown.
pub(super) fn clock(left: Duration) -> String {
    let secs = left.as_secs();
    match secs / 3600 {
        0 => format!("{}:{:02}", secs / 60, secs % 60),
        hours => format!("{hours}:{:02}:{:02}", (secs / 60) % 60, secs % 60),
    }
}

/// `5 minutes`, `90 seconds`, `1 minute 30 seconds`: a wait in words.
pub(super) fn long_duration(span: Duration) -> String {
    let secs = span.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (secs / 60, secs % 60) {
        (0, s) => plural(s, "second"),
        (m, 0) => plural(m, "minute"),
        (m, s) => format!("{} {}", plural(m, "minute"), plural(s, "second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_and_durations_read_as_people_write_them() {
        assert_eq!(clock(Duration::from_secs(299)), "4:59");
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
        assert_eq!(long_duration(Duration::from_secs(300)), "5 minutes");
        assert_eq!(long_duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(long_duration(Duration::from_secs(45)), "45 seconds");
        assert_eq!(
            long_duration(Duration::from_secs(90)),
            "1 minute 30 seconds"
        );
    }

    #[test]
    fn a_live_line_never_wraps() {
        assert_eq!(fit("short", 80), "short");
        let cut = fit(&"x".repeat(100), 40);
        assert_eq!(cut.chars().count(), 39);
        assert!(cut.ends_with('…'));
    }
}
