//! The paste prompt: for a browser on another machine (a laptop in front
//! of an SSH session, a phone), whose redirect to `127.0.0.1` lands
//! nowhere. The person copies the address the browser ended on and pastes
//! it on keygate's terminal; it counts only with this login's state,
//! checked as the loopback listener checks it.
//!
//! The prompt is one line drawn by keygate itself (the terminal reads key
//! by key, without echo): it shows the time left beside what is typed,
//! and goes away whole when the listener wins the race.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use super::OAuthError;
use super::loopback::parse_redirect;
use super::waiting::{clock, fit};
use crate::secret::Secret;
use crate::sys::Keys;
use crate::text::{CLEAR_LINE, escape, escape_line};

/// Addresses with a wrong or missing state a person may paste before the
/// login stops: a typo or an old tab, not an attack, the first times.
pub(super) const TRIES: usize = 3;
/// Longer than any redirect a browser shows; the rest is not kept.
const MAX_LINE: usize = 16 * 1024;
const TICK: Duration = Duration::from_secs(1);

/// The lines that tell the person what to do, for the redirect
/// `redirect_uri` (port included). `ssh` is the forward to suggest, when
/// keygate runs in an SSH session; `fix_port` the setting that keeps the
/// port from one login to the next, when it is not fixed yet.
/// `browser_here`: a browser was opened on this machine's behalf (WSL's
/// Windows browser), whose redirect usually arrives by itself.
pub(super) fn instructions(
    redirect_uri: &Url,
    ssh: Option<&str>,
    fix_port: Option<&str>,
    browser_here: bool,
) -> Vec<String> {
    let mut start = redirect_uri.clone();
    start.set_query(Some("code="));
    let mut lines = if browser_here {
        vec![
            "if, after you sign in, the browser cannot load an address that starts with".to_owned(),
            format!("  {start}…"),
            "(WSL's network can keep it from keygate), copy that address from the address bar and paste it here.".to_owned(),
        ]
    } else {
        vec![
            "after you sign in, the browser goes to an address that starts with".to_owned(),
            format!("  {start}…"),
            "and does not load there. Copy that address from the address bar and paste it here."
                .to_owned(),
        ]
    };
    if let Some(ssh) = ssh {
        lines.push(
            "Or, instead of pasting, forward the port: on the computer with the browser, run"
                .to_owned(),
        );
        lines.push(format!("  {ssh}"));
        lines.push("before you sign in (or type ~C in your SSH session to add it).".to_owned());
        if let Some(fix) = fix_port {
            lines.push("The port changes with each login; to set the forward up once:".to_owned());
            lines.push(format!("  {fix}"));
        }
    }
    lines
}

/// The `ssh -L` command that forwards `port` on the person's computer to
/// this machine's loopback, from `SSH_CONNECTION` (`client-ip client-port
/// server-ip server-port`) and the user name; `None` outside SSH.
pub(super) fn ssh_forward(
    port: u16,
    ssh_connection: Option<&str>,
    user: Option<&str>,
) -> Option<String> {
    let words: Vec<&str> = ssh_connection?.split_whitespace().collect();
    let [_, _, host, server_port] = words.as_slice() else {
        return None;
    };
    // ssh splits `user@host` at the last `@`: an IPv6 address goes bare.
    let host = host.parse::<std::net::IpAddr>().ok()?.to_string();
    let mut command = vec![
        "ssh".to_owned(),
        "-N".to_owned(),
        "-L".to_owned(),
        format!("{port}:127.0.0.1:{port}"),
    ];
    if *server_port != "22" && server_port.parse::<u16>().is_ok() {
        command.push("-p".to_owned());
        command.push((*server_port).to_owned());
    }
    command.push(match user.filter(|u| !u.is_empty()) {
        Some(user) => format!("{user}@{host}"),
        None => host,
    });
    let words: Vec<crate::text::Word<'_>> = command.iter().map(|w| w.as_str().into()).collect();
    Some(crate::text::shell_command(&words))
}

/// Asks on the terminal for the address the browser ended on, until one
/// carries this login's state, the person has pasted [`TRIES`] that do
/// not, or `deadline`. Returns the authorization code, or the error that
/// ends the login (wrong state too often, denied, no code). Where the
/// terminal cannot be read, it says so and never completes: the listener
/// may still get the redirect.
///
/// # Cancel safety
/// Dropping it (the listener won, Ctrl-C) takes the prompt line away and
/// gives the terminal back as it was, typed input discarded.
pub(super) async fn ask(
    redirect_uri: &Url,
    state: &str,
    deadline: Instant,
) -> Result<Secret, OAuthError> {
    let keys = match Keys::open() {
        Ok(keys) => keys,
        Err(error) => {
            crate::text::notice(&format!(
                "cannot read the terminal ({error}); waiting for the redirect only"
            ));
            return std::future::pending().await;
        }
    };
    let prompt = Prompt::new(&keys);
    let mut typed: Vec<u8> = Vec::new();
    let mut refused = 0;
    let mut escape_sequence = false;
    loop {
        prompt.draw(&typed, deadline);
        let bytes = tokio::select! {
            read = keys.read() => match read {
                Ok(bytes) if !bytes.is_empty() => bytes,
                _ => {
                    prompt.clear();
                    crate::text::notice("the terminal went away; waiting for the redirect only");
                    drop(prompt);
                    drop(keys);
                    return std::future::pending().await;
                }
            },
            () = tokio::time::sleep(TICK) => continue,
        };
        for byte in bytes {
            if escape_sequence {
                // Arrow keys and the like: ESC [ … final byte.
                escape_sequence = byte == b'[' || !(0x40..=0x7e).contains(&byte);
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    let line = String::from_utf8_lossy(&typed).trim().to_owned();
                    typed.clear();
                    if line.is_empty() {
                        continue;
                    }
                    match code_from(&line, redirect_uri, state) {
                        Ok(code) => {
                            prompt.say("got the address; finishing the login");
                            return Ok(code);
                        }
                        Err(Refusal::Ends(error)) => {
                            prompt.clear();
                            return Err(error);
                        }
                        Err(Refusal::AskAgain(why)) => {
                            refused += 1;
                            if refused == TRIES {
                                prompt.clear();
                                return Err(OAuthError::PastedWrongState(TRIES));
                            }
                            let left = TRIES - refused;
                            prompt.say(&format!(
                                "{why}; paste the address from this login's tab ({left} {} left)",
                                if left == 1 { "try" } else { "tries" }
                            ));
                        }
                    }
                }
                // Backspace and DEL
                0x08 | 0x7f => {
                    // A whole character, not a byte of one.
                    while let Some(last) = typed.pop() {
                        if last & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                // Ctrl-U: the whole line.
                0x15 => typed.clear(),
                0x1b => escape_sequence = true,
                byte if byte >= 0x20 && typed.len() < MAX_LINE => typed.push(byte),
                _ => {}
            }
        }
    }
}

/// Why a pasted address did not end the wait.
#[derive(Debug)]
enum Refusal {
    /// Not this login's (wrong or missing state), or not an address: ask again.
    AskAgain(String),
    /// This login's, and it ends it: denied, or no code.
    Ends(OAuthError),
}

/// The code in a pasted address: the redirect URI's path, and this login's
/// state, as the listener requires; a bare query (`code=…&state=…`) is
/// taken too. Nothing pasted is ever shown back: it may hold a code.
fn code_from(pasted: &str, redirect_uri: &Url, state: &str) -> Result<Secret, Refusal> {
    let query = if pasted.contains("://") {
        let Ok(url) = Url::parse(pasted) else {
            return Err(Refusal::AskAgain("that is not an address".into()));
        };
        if url.path() != redirect_uri.path() {
            return Err(Refusal::AskAgain(format!(
                "that address is not the redirect (its path is not {})",
                escape(redirect_uri.path())
            )));
        }
        url.query().unwrap_or("").to_owned()
    } else {
        pasted.trim_start_matches('?').to_owned()
    };
    match parse_redirect(&query, state) {
        Ok(code) => Ok(code),
        Err(OAuthError::StateMismatch) => Err(Refusal::AskAgain(
            "that address does not carry this login's state (an older login's, or forged)".into(),
        )),
        Err(error) => Err(Refusal::Ends(error)),
    }
}

/// The prompt's line on the terminal.
struct Prompt<'a> {
    keys: &'a Keys,
    /// Whether stderr shows on the same screen: notices then erase the
    /// prompt before they write, and it is drawn again after them.
    marks_live_line: bool,
}

impl<'a> Prompt<'a> {
    fn new(keys: &'a Keys) -> Self {
        use std::io::IsTerminal;
        let marks_live_line = std::io::stderr().is_terminal();
        if marks_live_line {
            crate::text::set_live_line(true);
        }
        Self {
            keys,
            marks_live_line,
        }
    }

    fn draw(&self, typed: &[u8], deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let prompt = format!(
            "keygate: paste the address ({} left, Ctrl-C to cancel): ",
            clock(left)
        );
        let columns = super::waiting::columns();
        let room = columns
            .saturating_sub(1)
            .saturating_sub(prompt.chars().count());
        let shown = escape_line(&String::from_utf8_lossy(typed));
        let count = shown.chars().count();
        // The end of what is typed, where the cursor is.
        let tail: String = if count <= room {
            shown
        } else {
            let mut tail: String = "…".into();
            tail.extend(shown.chars().skip(count - room.saturating_sub(1)));
            tail
        };
        self.keys.write(&format!(
            "{CLEAR_LINE}{}",
            fit(&format!("{prompt}{tail}"), columns)
        ));
    }

    /// Replaces the prompt line with `message`, kept on the screen.
    fn say(&self, message: &str) {
        self.keys.write(&format!(
            "{CLEAR_LINE}keygate: {}\r\n",
            escape_line(message)
        ));
    }

    fn clear(&self) {
        self.keys.write(CLEAR_LINE);
    }
}

impl Drop for Prompt<'_> {
    fn drop(&mut self) {
        self.clear();
        if self.marks_live_line {
            crate::text::set_live_line(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect() -> Url {
        Url::parse("http://127.0.0.1:41234/callback").unwrap()
    }

    #[test]
    fn the_address_with_this_logins_state_gives_its_code() {
        let code = code_from(
            "http://127.0.0.1:41234/callback?code=c1&state=s1&iss=https%3A%2F%2Fidp",
            &redirect(),
            "s1",
        )
        .unwrap();
        assert_eq!(code.expose(), "c1");
        // The query alone, as some copy it.
        assert_eq!(
            code_from("?code=c2&state=s1", &redirect(), "s1")
                .unwrap()
                .expose(),
            "c2"
        );
    }

    #[test]
    fn a_wrong_or_missing_state_or_another_path_asks_again_without_echoing() {
        for pasted in [
            "http://127.0.0.1:41234/callback?code=secret-code&state=s2",
            "http://127.0.0.1:41234/callback?code=secret-code",
            "http://127.0.0.1:41234/other?code=secret-code&state=s1",
            "https://idp.example/authorize?code=secret-code&state=s1",
            "http://[bad",
            "error=access_denied&state=forged",
        ] {
            match code_from(pasted, &redirect(), "s1") {
                Err(Refusal::AskAgain(why)) => {
                    assert!(!why.contains("secret-code"), "{why}")
                }
                other => panic!("{pasted}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_denial_or_a_missing_code_with_the_right_state_ends_the_login() {
        assert!(matches!(
            code_from(
                "http://127.0.0.1:41234/callback?error=access_denied&state=s1",
                &redirect(),
                "s1"
            ),
            Err(Refusal::Ends(OAuthError::Denied { .. }))
        ));
        assert!(matches!(
            code_from("state=s1", &redirect(), "s1"),
            Err(Refusal::Ends(OAuthError::MissingCode))
        ));
    }

    #[test]
    fn the_ssh_forward_names_this_machine_as_the_client_reached_it() {
        assert_eq!(
            ssh_forward(
                41234,
                Some("203.0.113.9 52100 198.51.100.7 22"),
                Some("alice")
            )
            .as_deref(),
            Some("ssh -N -L 41234:127.0.0.1:41234 alice@198.51.100.7")
        );
        assert_eq!(
            ssh_forward(8765, Some("::1 52100 2001:db8::7 2222"), None).as_deref(),
            Some("ssh -N -L 8765:127.0.0.1:8765 -p 2222 2001:db8::7")
        );
        assert_eq!(ssh_forward(8765, None, Some("alice")), None);
        assert_eq!(ssh_forward(8765, Some("garbage"), Some("alice")), None);
        // A user name is quoted for the shell it is pasted into.
        assert_eq!(
            ssh_forward(1, Some("a 1 10.0.0.1 22"), Some("x$(id)")).as_deref(),
            Some("ssh -N -L 1:127.0.0.1:1 'x$(id)@10.0.0.1'")
        );
    }

    #[test]
    fn instructions_show_where_the_browser_ends_and_the_forward() {
        let lines = instructions(
            &redirect(),
            Some("ssh -N -L 41234:127.0.0.1:41234 alice@198.51.100.7"),
            Some("git config --global keygate.https://g.example.redirectUrl http://127.0.0.1:41234/callback"),
            false,
        )
        .join("\n");
        assert!(
            lines.contains("  http://127.0.0.1:41234/callback?code=…"),
            "{lines}"
        );
        assert!(lines.contains("ssh -N -L 41234"), "{lines}");
        assert!(lines.contains("redirectUrl"), "{lines}");
        let without_ssh = instructions(&redirect(), None, None, false).join("\n");
        assert!(!without_ssh.contains("ssh"), "{without_ssh}");
        let wsl = instructions(&redirect(), None, None, true).join("\n");
        assert!(
            wsl.starts_with("if, after you sign in, the browser cannot load"),
            "{wsl}"
        );
    }
}
