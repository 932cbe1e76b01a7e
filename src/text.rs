//! Text that came from a server or a redirect, made safe to show on a
//! terminal or a page: an OAuth server's `error_description`, a device
//! grant's `user_code` and `verification_uri` are the server's words, and a
//! hostile server could put escape sequences in them (set the window title,
//! write the clipboard with OSC 52, move the cursor).
//!
//! What keygate tells a person in the middle of a flow goes through
//! [`notice`], so it reaches stderr in one voice and escaped.

/// A server's sentence is a line or two; a megabyte of it would flood the
/// terminal, so longer text is cut (on a character boundary).
const MAX_CHARS: usize = 512;

/// `text` with every control character (C0, DEL, C1), every Unicode
/// bidirectional override and every invisible character (zero-width,
/// format, line separators) written as a visible `\u{..}` escape, cut to
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

/// `line` with control, bidi and invisible characters escaped as in
/// [`escape`], whatever its length: for keygate's own messages, whose
/// parts (a TLS error naming a certificate, a path) may still carry text
/// no one escaped, while the advice at their end must not be cut off.
pub fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    line.chars().for_each(|c| push_visible(&mut out, c));
    out
}

/// Tells the person something in the middle of a flow, in keygate's one
/// voice: on stderr (stdout may carry git's protocol), after `keygate: `,
/// escaped as [`escape_line`] escapes, since its parts (a server's error,
/// a path) may carry text no one escaped. The flow goes on: a notice that
/// cannot be written is dropped, never an error of the flow's.
pub fn notice(message: &str) {
    notice_lines(&[message]);
}

/// A notice whose lines keygate lays out itself (a URL set apart to copy):
/// each line escaped on its own, `keygate: ` before the first.
pub fn notice_lines(lines: &[&str]) {
    use std::io::Write;
    let mut text = notice_text(lines);
    // A live line (a spinner, the paste prompt) is redrawn on the next
    // tick below the notice; written after it, the notice would be torn.
    if LIVE_LINE.load(std::sync::atomic::Ordering::Relaxed) {
        text.insert_str(0, CLEAR_LINE);
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Back to the start of the line and erase it: a live line goes away.
pub const CLEAR_LINE: &str = "\r\x1b[2K";

static LIVE_LINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says whether a line redrawn in place is on the terminal stderr shows,
/// so that [`notice`] erases it before it writes.
pub fn set_live_line(shown: bool) {
    LIVE_LINE.store(shown, std::sync::atomic::Ordering::Relaxed);
}

/// The text [`notice_lines`] writes, for a caller that writes it elsewhere
/// too (the terminal, when stderr is not one).
pub fn notice_text(lines: &[&str]) -> String {
    let mut text = String::from("keygate: ");
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.push_str(&escape_line(line));
    }
    text.push('\n');
    text
}

fn push_visible(out: &mut String, c: char) {
    if c.is_control() || is_bidi_control(c) || is_invisible(c) {
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

/// Characters that draw nothing, or break a line where the terminal shows
/// none: `WDJB\u{200b}-MJHT` looks like the code `WDJB-MJHT`, and a host
/// name with a zero-width space in it looks like another host.
///
/// The set is every format character (general category Cf, Unicode 16), every
/// default-ignorable code point (what Unicode says a renderer shows as
/// nothing: fillers, variation selectors, tags), and the line and paragraph
/// separators. A few Cf characters do draw something (the Arabic number
/// signs), but they also reshape the digits after them, so they go too. The
/// price is that an emoji joined by U+200D or styled by U+FE0F in a
/// server's message shows its escapes: text a person must compare by eye
/// matters more than pictures.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{34f}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// One word of a command keygate tells a person to run: a value taken as
/// it is, or a blank the person fills in (`<id>`), shown as it is.
#[derive(Debug, Clone, Copy)]
pub enum Word<'a> {
    Literal(&'a str),
    Blank(&'a str),
}

impl<'a> From<&'a str> for Word<'a> {
    fn from(literal: &'a str) -> Self {
        Word::Literal(literal)
    }
}

/// `words` as one line a POSIX shell reads back as exactly those words.
///
/// # Security
///
/// The words hold URLs, and a URL's host may hold `$(…)`, backticks, `;`
/// or braces (`%24` in a URL is `$`): a person pastes the line into a
/// shell, so every word that is not plain safe characters is single-quoted.
/// A blank stays bare: pasted unfilled, `<id>` is a syntax error, which
/// runs nothing. The line is still the caller's to pass through [`escape`]
/// or [`escape_line`] on its way to a terminal.
pub fn shell_command(words: &[Word<'_>]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|word| match word {
            Word::Literal(literal) => shell_word(literal),
            Word::Blank(blank) => (*blank).to_owned(),
        })
        .collect();
    quoted.join(" ")
}

/// `git config --global` with `args`, as [`shell_command`] writes it.
pub fn git_config_command(args: &[Word<'_>]) -> String {
    let mut words = vec![Word::Literal("git"), "config".into(), "--global".into()];
    words.extend_from_slice(args);
    shell_command(&words)
}

/// `word` as the shell reads it back: as it is when every character is one
/// no shell treats specially anywhere in a word, else in single quotes,
/// inside which only `'` itself is special (written `'\''`).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_speaks_in_one_voice_and_escapes_each_line() {
        assert_eq!(
            notice_text(&["keychain unavailable (\u{1b}]0;x\u{7}); keeping tokens in /t"]),
            "keygate: keychain unavailable (\\u{1b}]0;x\\u{7}); keeping tokens in /t\n"
        );
        // keygate's own layout stays; a newline inside a line does not.
        assert_eq!(
            notice_text(&["open this:", "", "  https://a.example/\nfake", ""]),
            "keygate: open this:\n\n  https://a.example/\\u{a}fake\n\n"
        );
    }

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

    /// Characters that draw nothing (or break a line where none shows) let a
    /// device code or a URL pass for another one.
    #[test]
    fn invisible_characters_are_made_visible() {
        for c in [
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{180e}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{2028}',
            '\u{2029}',
            '\u{2060}',
            '\u{2064}',
            '\u{206f}',
            '\u{3164}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{fff9}',
            '\u{1d173}',
            '\u{e0001}',
            '\u{e0041}',
        ] {
            let shown = escape(&format!("WDJB{c}MJHT"));
            assert_eq!(shown, format!("WDJB\\u{{{:x}}}MJHT", u32::from(c)));
            assert_eq!(
                escape_line(&c.to_string()),
                format!("\\u{{{:x}}}", u32::from(c))
            );
        }
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

    /// What `sh` makes of `line` after `printf %s`: the words it read,
    /// one per line. Unix only: the advice is for a POSIX shell, and
    /// Windows (Wine in CI) has no `sh` to ask.
    #[cfg(unix)]
    fn words_read_by_sh(line: &str) -> String {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {line}"))
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(output.status.success(), "sh failed on {line}");
        String::from_utf8(output.stdout).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn hostile_words_survive_the_shell_as_they_are() {
        let hostile = [
            "https://git$({touch,pwned})x.example.org",
            "https://a`touch pwned`.example",
            "https://a;touch pwned;.example",
            "https://it's.example/'\\''",
            "keygate.https://x$(id)y.example.clientId",
            "{a,b}",
            "~root",
            "#comment",
            "a*?[b]",
            "!!",
            "$HOME",
            "\\",
            "line\nbreak",
            "\"double\"",
            "é ü",
            "",
        ];
        for word in hostile {
            assert_eq!(
                words_read_by_sh(&shell_word(word)),
                format!("{word}\n"),
                "{word}"
            );
        }
        let line = shell_command(&[Word::Literal(hostile[0]), Word::Literal(hostile[1])]);
        assert_eq!(
            words_read_by_sh(&line),
            format!("{}\n{}\n", hostile[0], hostile[1])
        );
    }

    #[test]
    fn plain_words_stay_bare_and_blanks_stay_blank() {
        assert_eq!(
            git_config_command(&[
                "keygate.https://a.example:8443.clientId".into(),
                Word::Blank("<id>")
            ]),
            "git config --global keygate.https://a.example:8443.clientId <id>"
        );
        assert_eq!(shell_word("read write"), "'read write'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[cfg(unix)]
        #[test]
        fn any_word_survives_the_shell(word in "[^\u{0}]{0,24}") {
            proptest::prop_assert_eq!(words_read_by_sh(&shell_word(&word)), format!("{word}\n"));
        }
    }
}
