//! A URL to open on another device (the device grant's verification URL,
//! the paste mode's authorization URL) as a QR code drawn in the terminal,
//! so a person can scan it with a phone instead of typing it there.
//!
//! Two module rows go in one line of text, with Unicode half blocks. The
//! terminal's colours are unknown, so the code assumes the common dark
//! background: light modules (and the quiet zone around the code) are
//! drawn in the foreground colour as blocks, dark modules are left blank.
//! On a light terminal the code comes out inverted, which most phone
//! scanners also read; drawing dark modules as blocks instead would fail
//! on the dark terminals people reach over SSH, where the device grant is
//! used.

use qrcode::{Color, EcLevel, QrCode};

/// ISO/IEC 18004 asks for 4 modules of quiet zone; phone scanners read
/// with 2, and the drawing stays 2 lines shorter.
const QUIET_ZONE: usize = 2;

/// What decides whether the code is drawn. [`Screen::of_this_process`]
/// reads the real ones; tests write their own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Screen {
    /// `keygate.<url>.qr` is not false.
    pub wanted: bool,
    /// The prompt goes to a terminal (stderr or `/dev/tty`): a QR code in
    /// a log file is noise.
    pub terminal: bool,
    /// The terminal's width: a code wrapped onto the next line no longer
    /// scans.
    pub columns: usize,
    /// `CI` is set: no one with a phone is watching the job's output.
    pub ci: bool,
}

impl Screen {
    /// This process's screen: the prompt goes to a terminal when
    /// `terminal`; its width from `COLUMNS` (someone exported it on
    /// purpose: shells keep it unexported), else the terminal, else 80.
    pub fn of_this_process(wanted: bool, terminal: bool) -> Self {
        Self {
            wanted,
            terminal,
            columns: super::waiting::columns(),
            ci: std::env::var_os("CI").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// The drawing of the first of `urls` that may be encoded and fits the
/// screen (the complete URL first, then the short one: a phone is no help
/// with a code too wide to draw), lines ending in `\n`; `None` when the
/// screen is not one for a QR code or no URL qualifies.
pub(super) fn drawing<'a>(
    screen: &Screen,
    urls: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    if !screen.wanted || !screen.terminal || screen.ci {
        return None;
    }
    urls.into_iter()
        .filter(|url| scannable(url))
        .filter_map(|url| QrCode::with_error_correction_level(url, EcLevel::L).ok())
        .find(|code| code.width() + 2 * QUIET_ZONE <= screen.columns)
        .map(|code| draw(&code))
}

/// Whether `raw` may go into the code as the server sent it: an https URL
/// (http on loopback) of visible ASCII only. A phone opens what it scans
/// without showing the escaped text keygate printed, so anything else (a
/// `javascript:` URL, plain http to another host, invisible or
/// look-alike characters) is not encoded at all.
fn scannable(raw: &str) -> bool {
    raw.chars().all(|c| c.is_ascii_graphic())
        && url::Url::parse(raw).is_ok_and(|url| crate::http::check_endpoint(&url).is_ok())
}

/// `code` with its quiet zone, two module rows a line: `█` both light,
/// `▀` top light, `▄` bottom light, space both dark.
fn draw(code: &QrCode) -> String {
    let width = code.width();
    let colors = code.to_colors();
    let side = width + 2 * QUIET_ZONE;
    let in_code = |v: usize| (QUIET_ZONE..QUIET_ZONE + width).contains(&v);
    let light = |x: usize, y: usize| {
        if y >= side {
            // Below an odd number of rows: the terminal's own background.
            false
        } else if !(in_code(x) && in_code(y)) {
            true
        } else {
            colors.get((y - QUIET_ZONE) * width + (x - QUIET_ZONE)) == Some(&Color::Light)
        }
    };
    let mut out = String::with_capacity(side.div_ceil(2) * (side * 3 + 1));
    for y in (0..side).step_by(2) {
        for x in 0..side {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://idp.example/device?user_code=WDJB-MJHT";

    fn screen() -> Screen {
        Screen {
            wanted: true,
            terminal: true,
            columns: 120,
            ci: false,
        }
    }

    /// The module rows a drawing stands for, light as `true`, quiet zone
    /// included: the inverse of [`draw`].
    fn rows_of(drawing: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in drawing.lines() {
            let (top, bottom): (Vec<bool>, Vec<bool>) = line
                .chars()
                .map(|c| match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("{other:?} in the drawing"),
                })
                .unzip();
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn the_drawing_is_the_code_with_a_light_quiet_zone_two_rows_a_line() {
        let code = QrCode::with_error_correction_level(URL, EcLevel::L).unwrap();
        let width = code.width();
        let side = width + 2 * QUIET_ZONE;
        let drawn = draw(&code);

        // QR codes have an odd side: the last line has only a top half.
        assert_eq!(side % 2, 1);
        assert_eq!(drawn.lines().count(), side.div_ceil(2));
        assert!(drawn.lines().all(|l| l.chars().count() == side), "{drawn}");
        assert!(drawn.ends_with('\n'));
        let last = drawn.lines().last().unwrap();
        assert!(last.chars().all(|c| c == '▀'), "{last:?}");

        let rows = rows_of(&drawn);
        assert!(rows[side].iter().all(|&light| !light), "past the bottom");
        for (y, row) in rows[..side].iter().enumerate() {
            for (x, &light) in row.iter().enumerate() {
                let quiet = !(QUIET_ZONE..QUIET_ZONE + width).contains(&x)
                    || !(QUIET_ZONE..QUIET_ZONE + width).contains(&y);
                let expected = quiet || code[(x - QUIET_ZONE, y - QUIET_ZONE)] == Color::Light;
                assert_eq!(light, expected, "module ({x}, {y})\n{drawn}");
            }
        }
        // The finder pattern's dark corner is blank, inside a block border.
        assert!(drawn.lines().nth(1).unwrap().starts_with("██ "), "{drawn}");
    }

    #[test]
    fn drawn_only_when_wanted_on_a_wide_enough_terminal_outside_ci() {
        let side = QrCode::with_error_correction_level(URL, EcLevel::L)
            .unwrap()
            .width()
            + 2 * QUIET_ZONE;
        assert!(drawing(&screen(), [URL]).is_some());
        let exactly = Screen {
            columns: side,
            ..screen()
        };
        assert!(drawing(&exactly, [URL]).is_some());
        for (why, hidden) in [
            (
                "keygate.qr = false",
                Screen {
                    wanted: false,
                    ..screen()
                },
            ),
            (
                "not a terminal",
                Screen {
                    terminal: false,
                    ..screen()
                },
            ),
            (
                "CI",
                Screen {
                    ci: true,
                    ..screen()
                },
            ),
            (
                "too narrow",
                Screen {
                    columns: side - 1,
                    ..screen()
                },
            ),
        ] {
            assert_eq!(drawing(&hidden, [URL]), None, "{why}");
        }
    }

    #[test]
    fn only_https_or_loopback_urls_of_visible_ascii_are_encoded() {
        for url in [
            URL,
            "http://127.0.0.1:8080/device",
            "http://localhost/device",
        ] {
            assert!(scannable(url), "{url}");
        }
        for not_one in [
            "http://idp.example/device",
            "javascript:alert(1)",
            "WDJB-MJHT",
            "",
            "https://idp.example/ device",
            "https://idp.example/\ndevice",
            "https://github.com\u{200b}.evil.example/login/device",
            "https://ıdp.example/device",
        ] {
            assert!(!scannable(not_one), "{not_one:?}");
            assert_eq!(drawing(&screen(), [not_one]), None, "{not_one:?}");
        }
    }

    #[test]
    fn the_short_url_is_drawn_when_the_complete_one_is_refused_or_too_wide() {
        let short = "https://idp.example/device";
        let code = |url: &str| draw(&QrCode::with_error_correction_level(url, EcLevel::L).unwrap());
        assert_eq!(
            drawing(&screen(), ["http://idp.example/device?user_code=X", short]),
            Some(code(short))
        );
        let long = format!("{short}?user_code={}", "W".repeat(200));
        let narrow = Screen {
            columns: code(short).lines().next().unwrap().chars().count(),
            ..screen()
        };
        assert!(code(&long).lines().count() > narrow.columns / 2);
        assert_eq!(drawing(&narrow, [long.as_str(), short]), Some(code(short)));
    }
}
