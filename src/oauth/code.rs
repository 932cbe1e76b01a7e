//! The authorization-code grant with PKCE (S256) and state, through a
//! loopback redirect (or the address the browser ended on, pasted on the
//! terminal) or a private-use URI scheme handed over by `keygate callback`.

use std::io::Write;
use std::path::{Path, PathBuf};

use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};

use super::handoff::Waiting;
use super::loopback::{Alongside, Audience, DEFAULT_REDIRECT, Loopback, escape_html};
use super::{OAuthError, TokenSet, classify, endpoint, paste, qr, send, token_client, waiting};
use crate::config::{Provider, Redirect};
use crate::http::HttpClient;
use crate::store::AccountKey;

/// How to show the authorization URL to a person.
pub trait Browser {
    /// Opens `url`; failing to is not fatal, since the URL is also printed.
    /// The error says why, in words for the person.
    ///
    /// # Security
    /// The code flow passes a `file://` URL of a private page here, never
    /// the authorization URL itself: a launcher's argv is readable by
    /// every local user, and that URL carries the state.
    fn open(&self, url: &url::Url) -> Result<(), String>;
}

/// How the authorization URL reaches the person, and the redirect back.
#[derive(Clone, Copy)]
pub enum Handover<'a> {
    /// Open `browser` here; `paste` says when the terminal is asked too.
    Browser {
        browser: &'a dyn Browser,
        paste: PasteWhen,
    },
    /// No browser here: print the URL (and its QR code) to open on any
    /// device, and ask on the terminal for the address the browser ends
    /// on, while the listener waits too.
    Paste,
}

/// When a login that opens a browser also asks on the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasteWhen {
    /// Nobody may be asked on the terminal.
    Never,
    /// When the browser cannot be opened.
    IfNotOpened,
    /// From the start: the browser opens elsewhere and its redirect may
    /// not reach this machine's loopback (WSL's NAT network).
    Alongside,
}

/// The command that starts this account's login again.
pub fn login_command(key: &AccountKey) -> String {
    format!("keygate login {}", key.login_url())
}

/// Runs the whole code flow: listen, send the person to the authorization
/// endpoint, take the one redirect (or the address pasted on the
/// terminal), redeem the code with the verifier.
///
/// `runtime_dir` is keygate's private directory for short-lived files:
/// scheme redirects are handed over there (see [`super::handoff`]), and
/// the page that sends the browser on is written there.
pub async fn authorize(
    provider: &Provider,
    http: &HttpClient,
    handover: Handover<'_>,
    account: &AccountKey,
    runtime_dir: &Path,
) -> Result<TokenSet, OAuthError> {
    let handoff_dir = runtime_dir.join("callbacks");
    let handoff_dir = handoff_dir.as_path();
    let auth_url = endpoint(
        provider.endpoints.auth_url.as_ref(),
        provider,
        "authorization endpoint",
        crate::config::Key::AuthUrl,
    )?;
    let state = CsrfToken::new_random();
    let receiver = match provider.client.redirect {
        Some(Redirect::Scheme) => {
            let redirect_url = provider.client.redirect_url.as_deref().ok_or(OAuthError::BadRedirect {
                url: String::new(),
                reason: "redirect = scheme needs keygate.<url>.redirectUrl, e.g. com.example.keygate:/callback",
            })?;
            let redirect_uri =
                url::Url::parse(redirect_url).map_err(|_| OAuthError::BadRedirect {
                    url: redirect_url.to_owned(),
                    reason: "not a URI",
                })?;
            if matches!(redirect_uri.scheme(), "http" | "https") {
                return Err(OAuthError::BadRedirect {
                    url: redirect_url.to_owned(),
                    reason: "a scheme redirect needs a private-use scheme such as com.example.keygate:",
                });
            }
            Receiver::Scheme(
                Waiting::register(handoff_dir, state.secret())?,
                redirect_uri,
            )
        }
        _ => Receiver::Loopback(
            Loopback::bind(
                provider
                    .client
                    .redirect_url
                    .as_deref()
                    .unwrap_or(DEFAULT_REDIRECT),
            )
            .await?,
        ),
    };
    let client = token_client(provider)?
        .set_auth_uri(AuthUrl::from_url(auth_url))
        .set_redirect_uri(RedirectUrl::from_url(receiver.redirect_uri().clone()));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let expected_state = state.secret().clone();
    let mut request = client
        .authorize_url(move || state)
        .set_pkce_challenge(challenge);
    for scope in &provider.client.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, _) = request.url();

    let server = provider.server.as_str().trim_end_matches('/');
    // A scheme redirect goes to this machine's OS: nothing to paste.
    let can_paste = matches!(receiver, Receiver::Loopback(_));
    let mut paste = can_paste
        && matches!(
            handover,
            Handover::Paste
                | Handover::Browser {
                    paste: PasteWhen::Alongside,
                    ..
                }
        );
    let mut launch = None;
    match handover {
        Handover::Browser {
            browser,
            paste: when,
        } => {
            crate::text::notice_lines(&[
                &format!("to authorize {server}, open this URL in a browser:"),
                "",
                &format!("  {url}"),
                "",
            ]);
            // Kept until the login ends, then deleted.
            let opened = LaunchPage::write(&runtime_dir.join("pages"), &url)
                .map_err(|error| format!("cannot write the page that opens it: {error}"))
                .and_then(|page| {
                    let opened = browser.open(&page.url);
                    launch = Some(page);
                    opened
                });
            if let Err(error) = opened {
                if can_paste && when == PasteWhen::IfNotOpened {
                    crate::text::notice(&format!("could not open a browser ({error})"));
                    paste = true;
                } else {
                    crate::text::notice(&format!(
                        "could not open a browser ({error}); open the URL above yourself"
                    ));
                }
            }
        }
        Handover::Paste => {}
    }
    if paste {
        show_for_another_device(provider, server, &url, receiver.redirect_uri(), &handover);
    }

    let redeem = async |code: crate::secret::Secret| {
        tracing::debug!(server = %provider.server, "authorization code received; redeeming it");
        client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(verifier)
            .request_async(&|request| send(http, request))
            .await
            .map(TokenSet::from)
            .map_err(|error| OAuthError::Exchange(Box::new(classify(error))))
    };
    let retry = login_command(account);
    let timeout = provider.policy.login_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let outcome = match receiver {
        Receiver::Loopback(loopback) => {
            let audience = Audience {
                server,
                account: Some(account.account.as_str()).filter(|a| !a.is_empty()),
                retry: &retry,
            };
            let redirect_uri = loopback.redirect_uri().clone();
            let alongside: Alongside<'_> = if paste {
                let state = expected_state.clone();
                Box::pin(async move { paste::ask(&redirect_uri, &state, deadline).await })
            } else {
                let what = format!(
                    "the browser's redirect to 127.0.0.1:{}",
                    redirect_uri.port().unwrap_or(80)
                );
                Box::pin(async move { match waiting::status(&what, deadline).await {} })
            };
            loopback
                .wait(&expected_state, timeout, &audience, alongside, redeem)
                .await
        }
        Receiver::Scheme(waiting, _) => {
            let code = tokio::select! {
                code = waiting.wait(timeout) => code,
                never = waiting::status("the browser to hand keygate the redirect", deadline) => match never {},
            };
            match code {
                Ok(code) => redeem(code).await,
                Err(error) => Err(error),
            }
        }
    };
    drop(launch);
    outcome
}

/// The authorization URL as a QR code too, and how to bring the redirect
/// back: paste it, or forward the port over SSH.
fn show_for_another_device(
    provider: &Provider,
    server: &str,
    url: &url::Url,
    redirect_uri: &url::Url,
    handover: &Handover<'_>,
) {
    let mut message = String::new();
    if matches!(handover, Handover::Paste) {
        message.push_str(&crate::text::notice_text(&[
            &format!("to authorize {server}, open this URL in a browser on any device:"),
            "",
            &format!("  {url}"),
            "",
        ]));
    }
    let port = redirect_uri.port().unwrap_or(80);
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let ssh = paste::ssh_forward(
        port,
        std::env::var("SSH_CONNECTION").ok().as_deref(),
        user.as_deref(),
    );
    let fixed = provider
        .client
        .redirect_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.port().is_some());
    let fix_port = (!fixed).then(|| {
        let key = format!(
            "keygate.{server}.{}",
            crate::config::Key::RedirectUrl.name()
        );
        crate::text::git_config_command(&[key.as_str().into(), redirect_uri.as_str().into()])
    });
    // WSL's Windows browser opened: it is on this screen, not a phone's.
    let browser_here = matches!(
        handover,
        Handover::Browser {
            paste: PasteWhen::Alongside,
            ..
        }
    );
    let lines = paste::instructions(
        redirect_uri,
        ssh.as_deref(),
        fix_port.as_deref(),
        browser_here,
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let instructions = crate::text::notice_text(&lines);
    waiting::show(&message, |terminal| {
        let screen = qr::Screen::of_this_process(provider.policy.qr && !browser_here, terminal);
        qr::drawing(&screen, [url.as_str()])
    });
    waiting::show(&instructions, |_| None);
}

/// A page in keygate's private directory that sends the browser on to the
/// authorization URL, so that URL (and its state) stays out of the
/// launcher's argv. Deleted on drop.
struct LaunchPage {
    path: PathBuf,
    url: url::Url,
}

impl LaunchPage {
    fn write(dir: &Path, target: &url::Url) -> std::io::Result<Self> {
        crate::sys::create_private_dir(dir)?;
        let name = CsrfToken::new_random();
        let path = dir.join(format!("login-{}.html", name.secret()));
        let url = url::Url::from_file_path(&path).map_err(|()| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an absolute path")
        })?;
        let mut file = crate::sys::create_new_private(&path)?;
        let page = Self { path, url };
        let target = escape_html(target.as_str());
        write!(
            file,
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <meta http-equiv=\"refresh\" content=\"0;url={target}\">\
             <title>keygate: sign in</title></head>\
             <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\">\
             <p>Taking you to the sign-in page&hellip; If nothing happens, \
             <a href=\"{target}\">continue here</a>.</p></body></html>"
        )?;
        file.sync_all()?;
        Ok(page)
    }
}

impl Drop for LaunchPage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the redirect comes back.
enum Receiver {
    Loopback(Loopback),
    Scheme(Waiting, url::Url),
}

impl Receiver {
    fn redirect_uri(&self) -> &url::Url {
        match self {
            Receiver::Loopback(loopback) => loopback.redirect_uri(),
            Receiver::Scheme(_, uri) => uri,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_page_is_private_leads_on_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let pages = dir.path().join("pages");
        let target =
            url::Url::parse("https://auth.example.com/authorize?state=s%3C1&x=\"y\"").unwrap();
        let page = LaunchPage::write(&pages, &target).unwrap();
        assert_eq!(page.url.scheme(), "file");
        let path = page.url.to_file_path().unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.contains(&format!("0;url={}", escape_html(target.as_str()))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&pages), 0o700);
        }
        drop(page);
        assert!(!path.exists());
    }

    #[test]
    fn the_login_command_names_the_account() {
        let server = url::Url::parse("https://git.example.com").unwrap();
        assert_eq!(
            login_command(&AccountKey::new(&server, None)),
            "keygate login https://git.example.com"
        );
        assert_eq!(
            login_command(&AccountKey::new(&server, Some("alice@corp"))),
            "keygate login https://alice%40corp@git.example.com"
        );
    }
}
