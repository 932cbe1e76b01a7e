//! The authorization-code grant with PKCE (S256) and state, through a
//! loopback redirect or a private-use URI scheme handed over by
//! `keygate callback`.

use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};

use std::path::Path;

use super::handoff::Waiting;
use super::loopback::{DEFAULT_REDIRECT, Loopback};
use super::{OAuthError, TokenSet, classify, endpoint, send, token_client};
use crate::config::{Provider, Redirect};
use crate::http::HttpClient;

/// How to show the authorization URL to a person.
pub trait Browser {
    /// Opens `url`; failing to is not fatal, since the URL is also printed.
    fn open(&self, url: &url::Url);
}

/// Runs the whole code flow: listen, send the person to the authorization
/// endpoint, take the one redirect, redeem the code with the verifier.
///
/// `handoff_dir` is where scheme redirects are handed over
/// (see [`super::handoff`]).
pub async fn authorize(
    provider: &Provider,
    http: &HttpClient,
    browser: &dyn Browser,
    handoff_dir: &Path,
) -> Result<TokenSet, OAuthError> {
    let auth_url = endpoint(
        provider.auth_url.as_ref(),
        provider,
        "authorization endpoint",
        "authUrl",
    )?;
    let state = CsrfToken::new_random();
    let receiver = match provider.redirect {
        Some(Redirect::Scheme) => {
            let redirect_url = provider.redirect_url.as_deref().ok_or(OAuthError::BadRedirect {
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
            Loopback::bind(provider.redirect_url.as_deref().unwrap_or(DEFAULT_REDIRECT)).await?,
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
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, _) = request.url();

    eprintln!(
        "keygate: to authorize {}, open this URL in a browser:\n\n  {url}\n",
        provider.server.as_str().trim_end_matches('/')
    );
    browser.open(&url);

    let code = match receiver {
        Receiver::Loopback(loopback) => {
            loopback
                .wait(&expected_state, provider.login_timeout)
                .await?
        }
        Receiver::Scheme(waiting, _) => waiting.wait(provider.login_timeout).await?,
    };
    tracing::debug!(server = %provider.server, "authorization code received; redeeming it");
    client
        .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
        .set_pkce_verifier(verifier)
        .request_async(&|request| send(http, request))
        .await
        .map(TokenSet::from)
        .map_err(classify)
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
