//! Who may be asked what: the interaction policy. Whether keygate may ask
//! a person to authorize, and whether through a browser or the terminal,
//! decided from [`Facts`] about the environment, so that each rule is
//! tested here without touching the machine's.

use std::ffi::OsStr;

use super::Interaction;
use crate::config::{self, GitConfig};
use crate::oauth::Browser;

/// What the policy looks at. [`Facts::from_env`] reads the real ones;
/// tests write their own.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// `KEYGATE_INTERACTIVE=never`: the person's own "never ask me".
    pub interactive_never: bool,
    /// `CI` is set (to anything but the empty string).
    pub ci: bool,
    /// `$BROWSER` names a program that opens a browser: the person named
    /// a way to open URLs here. `echo`, `true` and the like, set to keep
    /// tools from opening one, do not count ([`names_a_browser`]).
    pub browser_set: bool,
    /// Under WSL: the Windows default browser can be opened from here.
    pub wsl: bool,
    /// A display to open a browser on. Only X11 and Wayland systems can
    /// lack one; macOS and Windows always have one.
    pub display: bool,
    /// `SSH_CONNECTION` or `SSH_TTY` is set: a forwarded display would
    /// open the browser on the wrong machine.
    pub over_ssh: bool,
    /// `GIT_TERMINAL_PROMPT=0`, git's own switch for terminal prompts.
    pub terminal_prompts_forbidden: bool,
    /// Whether a terminal can be written to; asked only when no browser
    /// will do, or when a browser login starts (the paste prompt is its
    /// fallback), as opening `/dev/tty` is the one probe that costs.
    pub terminal: fn() -> bool,
}

impl Facts {
    /// The facts of this process: its environment and terminal.
    pub fn from_env() -> Self {
        let has_display = crate::sys::has_display();
        Self {
            interactive_never: says_never(std::env::var("KEYGATE_INTERACTIVE").ok().as_deref()),
            ci: is_set("CI"),
            browser_set: names_a_browser(std::env::var("BROWSER").ok().as_deref()),
            wsl: crate::sys::wsl::is_wsl(),
            display: has_display,
            over_ssh: is_set("SSH_CONNECTION") || is_set("SSH_TTY"),
            terminal_prompts_forbidden: says_0(std::env::var_os("GIT_TERMINAL_PROMPT").as_deref()),
            terminal: terminal_is_writable,
        }
    }
}

/// `KEYGATE_INTERACTIVE` has one word, `never`; anything else leaves the
/// other rules in charge.
fn says_never(keygate_interactive: Option<&str>) -> bool {
    keygate_interactive == Some("never")
}

/// git reads `GIT_TERMINAL_PROMPT` as forbidding only when it is `0`.
fn says_0(git_terminal_prompt: Option<&OsStr>) -> bool {
    git_terminal_prompt.is_some_and(|v| v == "0")
}

/// Whether a `$BROWSER` value names something that opens a browser: set,
/// and its first command (`:` separates alternatives) not one of those
/// people set to print or swallow the URL instead (`BROWSER=echo`).
fn names_a_browser(browser: Option<&str>) -> bool {
    const OPENS_NONE: &[&str] = &["echo", "true", "false", ":", "none", "printf", "cat"];
    let Some(first) = browser.and_then(|b| b.split(':').find(|c| !c.trim().is_empty())) else {
        return false;
    };
    let program = first.split_whitespace().next().unwrap_or("");
    let name = program.rsplit('/').next().unwrap_or(program);
    !OPENS_NONE.contains(&name)
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn terminal_is_writable() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// For a token git (or a tool) asked for: `get`, `keygate token`,
/// `keygate env`. git's `credential.interactive` applies, and with no
/// browser and no terminal nobody is asked.
pub fn for_git<'a>(facts: &Facts, config: &GitConfig, browser: &'a dyn Browser) -> Interaction<'a> {
    if let Some(reason) = environment_forbids(facts) {
        return Interaction::Forbidden(reason.to_owned());
    }
    if config::git_forbids_interaction(config) {
        return Interaction::Forbidden("git's credential.interactive forbids interaction".into());
    }
    reach_a_person(facts, browser)
        .unwrap_or_else(|| Interaction::Forbidden(no_person_reason(facts).into()))
}

/// For a login a person asked for (`keygate login`, `keygate setup`):
/// git's credential.interactive (about git's own prompts) does not apply,
/// and with no browser and no terminal the URL is still printed to open
/// by hand.
pub fn for_person<'a>(facts: &Facts, browser: &'a dyn Browser) -> Interaction<'a> {
    match environment_forbids(facts) {
        Some(reason) => Interaction::Forbidden(reason.into()),
        None => reach_a_person(facts, browser).unwrap_or(Interaction::Browser {
            browser,
            terminal: TerminalRule::of(facts),
            redirect_uncertain: false,
        }),
    }
}

/// What the person or the environment said: no interaction at all, not
/// even for an explicit `keygate login`.
fn environment_forbids(facts: &Facts) -> Option<&'static str> {
    if facts.interactive_never {
        Some("KEYGATE_INTERACTIVE=never forbids interaction")
    } else if facts.ci {
        Some("CI is set, so no browser is opened")
    } else {
        None
    }
}

fn no_person_reason(facts: &Facts) -> &'static str {
    if facts.terminal_prompts_forbidden {
        "there is no browser or display, and GIT_TERMINAL_PROMPT=0 rules out the terminal"
    } else {
        "there is no browser, display or terminal to reach a person"
    }
}

/// A browser when one can be opened here (on the display, or Windows'
/// under WSL); else the terminal (device grant, or the paste prompt); else
/// nothing. IDEs set `GIT_TERMINAL_PROMPT=0` and still expect the browser
/// login, so it rules out only the terminal.
fn reach_a_person<'a>(facts: &Facts, browser: &'a dyn Browser) -> Option<Interaction<'a>> {
    let terminal = TerminalRule::of(facts);
    if facts.browser_set || ((facts.display || facts.wsl) && !facts.over_ssh) {
        Some(Interaction::Browser {
            browser,
            terminal,
            // Windows' browser reaches WSL 2's loopback only through its
            // localhost forwarding, which a NAT setup may have turned off.
            redirect_uncertain: facts.wsl && !facts.browser_set,
        })
    } else if terminal.allows().is_ok() {
        Some(Interaction::Terminal(browser))
    } else {
        None
    }
}

/// Whether the terminal may be asked (the paste prompt), probed only when
/// first needed: a browser login that goes well never asks.
#[derive(Debug, Clone, Copy)]
pub struct TerminalRule {
    prompts_forbidden: bool,
    probe: fn() -> bool,
}

impl TerminalRule {
    fn of(facts: &Facts) -> Self {
        Self {
            prompts_forbidden: facts.terminal_prompts_forbidden,
            probe: facts.terminal,
        }
    }

    /// Nobody is asked on the terminal.
    pub fn never() -> Self {
        Self {
            prompts_forbidden: true,
            probe: || false,
        }
    }

    /// `Ok` when the terminal may be asked; else why not, in words that
    /// follow "but": `GIT_TERMINAL_PROMPT=0 rules out the terminal`.
    pub fn allows(&self) -> Result<(), &'static str> {
        if self.prompts_forbidden {
            Err("GIT_TERMINAL_PROMPT=0 rules out the terminal")
        } else if (self.probe)() {
            Ok(())
        } else {
            Err("there is no terminal")
        }
    }
}

/// Opens URLs with `$BROWSER` or the OS default, through the webbrowser
/// crate; under WSL without `$BROWSER`, the Windows default browser
/// ([`crate::sys::wsl::open_on_windows`]). The URL is printed on stderr
/// either way. The login hands it the `file://` URL of a private page,
/// never the authorization URL: the launcher's argv is readable by every
/// local user. `$BROWSER`, xdg-open, macOS `open` and Windows' file
/// associations all take a file URL; WSL's launchers take the page's
/// Windows path.
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &url::Url) -> Result<(), String> {
        if !is_set("BROWSER") && crate::sys::wsl::is_wsl() {
            let path = url
                .to_file_path()
                .map_err(|()| "only a local page is opened in Windows' browser".to_owned())?;
            return crate::sys::wsl::open_on_windows(&path)
                .map(|launcher| tracing::debug!(launcher, "opened the launch page in Windows"))
                .map_err(|error| format!("Windows' browser: {error}"));
        }
        webbrowser::open(url.as_str()).map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoBrowser;

    impl Browser for NoBrowser {
        fn open(&self, _: &url::Url) -> Result<(), String> {
            Ok(())
        }
    }

    /// A desktop session: a display, no SSH, nothing forbidding.
    fn desktop() -> Facts {
        Facts {
            interactive_never: false,
            ci: false,
            browser_set: false,
            wsl: false,
            display: true,
            over_ssh: false,
            terminal_prompts_forbidden: false,
            terminal: || true,
        }
    }

    /// No display, no `$BROWSER`: only a terminal, if there is one.
    fn headless() -> Facts {
        Facts {
            display: false,
            ..desktop()
        }
    }

    fn config(entries: &[(&str, &str)]) -> GitConfig {
        let mut raw = Vec::new();
        for (k, v) in entries {
            raw.extend_from_slice(format!("{k}\n{v}\0").as_bytes());
        }
        GitConfig::parse_z(&raw)
    }

    /// The interaction's kind and, when forbidden, why.
    fn described(interaction: Interaction<'_>) -> String {
        match interaction {
            Interaction::Browser {
                redirect_uncertain: true,
                ..
            } => "browser, paste alongside".to_owned(),
            Interaction::Browser { .. } => "browser".to_owned(),
            Interaction::Terminal(_) => "terminal".to_owned(),
            Interaction::Forbidden(reason) => format!("forbidden: {reason}"),
        }
    }

    fn for_git_with(facts: Facts) -> String {
        described(for_git(&facts, &config(&[]), &NoBrowser))
    }

    fn for_person_with(facts: Facts) -> String {
        described(for_person(&facts, &NoBrowser))
    }

    #[test]
    fn a_desktop_gets_the_browser() {
        assert_eq!(for_git_with(desktop()), "browser");
        assert_eq!(for_person_with(desktop()), "browser");
    }

    #[test]
    fn ci_forbids_even_an_explicit_login() {
        let ci = Facts {
            ci: true,
            ..desktop()
        };
        let said = "forbidden: CI is set, so no browser is opened";
        assert_eq!(for_git_with(ci), said);
        assert_eq!(for_person_with(ci), said);
    }

    #[test]
    fn keygate_interactive_never_forbids_even_an_explicit_login() {
        let never = Facts {
            interactive_never: true,
            ci: true,
            ..desktop()
        };
        // The person's own word is the reason given, before CI's.
        let said = "forbidden: KEYGATE_INTERACTIVE=never forbids interaction";
        assert_eq!(for_git_with(never), said);
        assert_eq!(for_person_with(never), said);
    }

    #[test]
    fn only_never_is_a_word_of_keygate_interactive() {
        assert!(says_never(Some("never")));
        for other in [None, Some(""), Some("always"), Some("Never"), Some("0")] {
            assert!(!says_never(other), "{other:?}");
        }
    }

    #[test]
    fn only_0_forbids_terminal_prompts() {
        assert!(says_0(Some(OsStr::new("0"))));
        for other in [None, Some(""), Some("1"), Some("false")] {
            assert!(!says_0(other.map(OsStr::new)), "{other:?}");
        }
    }

    #[test]
    fn credential_interactive_false_forbids_only_gits_requests() {
        for value in ["false", "never", "0", "No"] {
            let config = config(&[("credential.interactive", value)]);
            assert_eq!(
                described(for_git(&desktop(), &config, &NoBrowser)),
                "forbidden: git's credential.interactive forbids interaction",
                "{value}"
            );
        }
        assert_eq!(
            described(for_git(
                &desktop(),
                &config(&[("credential.interactive", "true")]),
                &NoBrowser
            )),
            "browser"
        );
        // A person who typed `keygate login` asked to be asked.
        assert_eq!(for_person_with(desktop()), "browser");
    }

    #[test]
    fn git_terminal_prompt_0_rules_out_only_the_terminal() {
        let ide = Facts {
            terminal_prompts_forbidden: true,
            ..desktop()
        };
        assert_eq!(for_git_with(ide), "browser");
        let headless_ide = Facts {
            terminal_prompts_forbidden: true,
            ..headless()
        };
        assert_eq!(
            for_git_with(headless_ide),
            "forbidden: there is no browser or display, and GIT_TERMINAL_PROMPT=0 rules out the terminal"
        );
        // Asked for by a person, the URL is still shown to open by hand.
        assert_eq!(for_person_with(headless_ide), "browser");
    }

    #[test]
    fn no_display_takes_the_terminal() {
        assert_eq!(for_git_with(headless()), "terminal");
        assert_eq!(for_person_with(headless()), "terminal");
    }

    #[test]
    fn no_display_and_no_terminal_reaches_nobody() {
        let nothing = Facts {
            terminal: || false,
            ..headless()
        };
        assert_eq!(
            for_git_with(nothing),
            "forbidden: there is no browser, display or terminal to reach a person"
        );
        assert_eq!(for_person_with(nothing), "browser");
    }

    #[test]
    fn over_ssh_the_display_is_not_ours() {
        let ssh = Facts {
            over_ssh: true,
            ..desktop()
        };
        assert_eq!(for_git_with(ssh), "terminal");
        let ssh_without_terminal = Facts {
            terminal: || false,
            ..ssh
        };
        assert_eq!(
            for_git_with(ssh_without_terminal),
            "forbidden: there is no browser, display or terminal to reach a person"
        );
    }

    #[test]
    fn browser_variable_wins_over_ssh_and_no_display() {
        let named = Facts {
            browser_set: true,
            over_ssh: true,
            display: false,
            terminal_prompts_forbidden: true,
            ..desktop()
        };
        assert_eq!(for_git_with(named), "browser");
    }

    #[test]
    fn a_browser_variable_that_prints_or_swallows_the_url_opens_none() {
        for opens in [
            "firefox",
            "/usr/bin/chromium --incognito",
            "/opt/vscode/bin/helpers/browser.sh",
            ":xdg-open",
        ] {
            assert!(names_a_browser(Some(opens)), "{opens}");
        }
        for opens_none in [
            None,
            Some(""),
            Some("echo"),
            Some("/bin/true"),
            Some("false"),
            Some("printf %s\\n"),
            Some("none"),
        ] {
            assert!(!names_a_browser(opens_none), "{opens_none:?}");
        }
    }

    #[test]
    fn under_wsl_windows_opens_the_browser_and_the_terminal_is_asked_alongside() {
        let wsl = Facts {
            wsl: true,
            display: false,
            ..desktop()
        };
        assert_eq!(for_git_with(wsl), "browser, paste alongside");
        // Named by the person: their browser, trusted like anywhere else.
        let named = Facts {
            browser_set: true,
            ..wsl
        };
        assert_eq!(for_git_with(named), "browser");
        // Windows' browser is not in front of someone who came over SSH.
        let ssh = Facts {
            over_ssh: true,
            ..wsl
        };
        assert_eq!(for_git_with(ssh), "terminal");
    }

    #[test]
    fn the_terminal_rule_says_why_not() {
        let rule = TerminalRule::of(&Facts {
            terminal_prompts_forbidden: true,
            ..desktop()
        });
        assert_eq!(
            rule.allows(),
            Err("GIT_TERMINAL_PROMPT=0 rules out the terminal")
        );
        let rule = TerminalRule::of(&Facts {
            terminal: || false,
            ..desktop()
        });
        assert_eq!(rule.allows(), Err("there is no terminal"));
        assert_eq!(TerminalRule::of(&desktop()).allows(), Ok(()));
    }

    #[test]
    fn the_terminal_is_probed_only_when_no_browser_will_do() {
        let probe_panics = Facts {
            terminal: || panic!("probed the terminal"),
            ..desktop()
        };
        assert_eq!(for_git_with(probe_panics), "browser");
        let forbidden = Facts {
            terminal_prompts_forbidden: true,
            display: false,
            ..probe_panics
        };
        assert!(for_git_with(forbidden).starts_with("forbidden"));
    }
}
