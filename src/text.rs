//! Text that came from a server or a redirect, made safe to show on a
//! terminal or a page: an OAuth server's `error_description`, a device
//! grant's `user_code` and `verification_uri` are the server's words, and a
//! hostile server could put escape sequences in them (set the window title,
//! write the clipboard with OSC 52, move the cursor).

/// A server's sentence is a line or two; a megabyte of it would flood the
/// terminal, so longer text is cut (on a character boundary).
const MAX_CHARS: usize = 512;

/// `text` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional override written as a visible `\u{..}` escape, cut to
/// [`MAX_CHARS`] characters. Printable text, non-ASCII letters included,
/// passes unchanged.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_CHARS {
            out.push('…');
            break;
        }
        push_visible(&mut out, c);
    }
    out
}

/// `line` with control characters and bidi overrides escaped as in
/// [`escape`], whatever its length: for keygate's own messages, whose
/// parts (a TLS error naming a certificate, a path) may still carry text
/// no one escaped, while the advice at their end must not be cut off.
pub fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    line.chars().for_each(|c| push_visible(&mut out, c));
    out
}

fn push_visible(out: &mut String, c: char) {
    if c.is_control() || is_bidi_control(c) {
        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
    } else {
        out.push(c);
    }
}

/// Characters that reorder what follows them on screen ("Trojan Source",
/// CVE-2021-42574): a message could be made to read as something else.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_made_visible() {
        let osc52 = "\u{1b}]52;c;aGVsbG8=\u{7}WDJB-MJHT";
        let shown = escape(osc52);
        assert_eq!(shown, "\\u{1b}]52;c;aGVsbG8=\\u{7}WDJB-MJHT");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(
            escape("a\r\nb\u{9b}c\u{7f}"),
            "a\\u{d}\\u{a}b\\u{9b}c\\u{7f}"
        );
        assert_eq!(escape("abc\u{202e}def"), "abc\\u{202e}def");
    }

    #[test]
    fn printable_text_passes_unchanged() {
        let plain = "Der Code ist abgelaufen: échec (認可) https://github.com/login/device";
        assert_eq!(escape(plain), plain);
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(10_000);
        let shown = escape(&long);
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn a_whole_line_is_escaped_but_never_cut() {
        let line = format!(
            "{} \u{1b}[2J; run `keygate login x`",
            "a".repeat(2 * MAX_CHARS)
        );
        let shown = escape_line(&line);
        assert!(shown.ends_with("\\u{1b}[2J; run `keygate login x`"));
        assert!(!shown.chars().any(char::is_control));
    }
}
