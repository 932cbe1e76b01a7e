//! The authorization-code grant with PKCE (S256) and state, through a
//! loopback redirect or a private-use URI scheme handed over by
//! `keygate callback`.

use std::io::Write;
use std::path::{Path, PathBuf};

use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};

use super::handoff::Waiting;
use super::loopback::{Audience, DEFAULT_REDIRECT, Loopback, escape_html};
use super::{OAuthError, TokenSet, classify, endpoint, send, token_client};
use crate::config::{Provider, Redirect};
use crate::http::HttpClient;
use crate::store::AccountKey;

/// How to show the authorization URL to a person.
pub trait Browser {
    /// Opens `url`; failing to is not fatal, since the URL is also printed.
    ///
    /// # Security
    /// The code flow passes a `file://` URL of a private page here, never
    /// the authorization URL itself: a launcher's argv is readable by
    /// every local user, and that URL carries the state.
    fn open(&self, url: &url::Url);
}

/// The command that starts this account's login again.
pub fn login_command(key: &AccountKey) -> String {
    format!("keygate login {}", key.login_url())
}

/// Runs the whole code flow: listen, send the person to the authorization
/// endpoint, take the one redirect, redeem the code with the verifier.
///
/// `runtime_dir` is keygate's private directory for short-lived files:
/// scheme redirects are handed over there (see [`super::handoff`]), and
/// the page that sends the browser on is written there.
pub async fn authorize(
    provider: &Provider,
    http: &HttpClient,
    browser: &dyn Browser,
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
    crate::text::notice_lines(&[
        &format!("to authorize {server}, open this URL in a browser:"),
        "",
        &format!("  {url}"),
        "",
    ]);
    // Kept until the login ends, then deleted.
    let launch = match LaunchPage::write(&runtime_dir.join("pages"), &url) {
        Ok(launch) => {
            browser.open(&launch.url);
            Some(launch)
        }
        Err(error) => {
            crate::text::notice(&format!(
                "cannot write the page that opens the browser ({error}); open the URL above yourself"
            ));
            None
        }
    };

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
    let outcome = match receiver {
        Receiver::Loopback(loopback) => {
            let audience = Audience {
                server,
                account: Some(account.account.as_str()).filter(|a| !a.is_empty()),
                retry: &retry,
            };
            loopback
                .wait(
                    &expected_state,
                    provider.policy.login_timeout,
                    &audience,
                    redeem,
                )
                .await
        }
        Receiver::Scheme(waiting, _) => match waiting.wait(provider.policy.login_timeout).await {
            Ok(code) => redeem(code).await,
            Err(error) => Err(error),
        },
    };
    drop(launch);
    outcome
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
