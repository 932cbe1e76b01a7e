//! The authorization-code grant with PKCE (S256) and state, through a
//! loopback redirect.

use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};

use super::loopback::{DEFAULT_REDIRECT, Loopback};
use super::{OAuthError, TokenSet, classify, endpoint, send, token_client};
use crate::config::Provider;
use crate::http::HttpClient;

/// How to show the authorization URL to a person.
pub trait Browser {
    /// Opens `url`; failing to is not fatal, since the URL is also printed.
    fn open(&self, url: &url::Url);
}

/// Runs the whole code flow: listen, send the person to the authorization
/// endpoint, take the one redirect, redeem the code with the verifier.
pub async fn authorize(
    provider: &Provider,
    http: &HttpClient,
    browser: &dyn Browser,
) -> Result<TokenSet, OAuthError> {
    let auth_url = endpoint(
        provider.auth_url.as_ref(),
        provider,
        "authorization endpoint",
        "authUrl",
    )?;
    let loopback =
        Loopback::bind(provider.redirect_url.as_deref().unwrap_or(DEFAULT_REDIRECT)).await?;
    let client = token_client(provider)?
        .set_auth_uri(AuthUrl::from_url(auth_url))
        .set_redirect_uri(RedirectUrl::from_url(loopback.redirect_uri().clone()));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state) = request.url();

    eprintln!(
        "keygate: to authorize {}, open this URL in a browser:\n\n  {url}\n",
        provider.server.as_str().trim_end_matches('/')
    );
    browser.open(&url);

    let code = loopback
        .wait(state.secret(), provider.login_timeout)
        .await?;
    tracing::debug!(server = %provider.server, "authorization code received; redeeming it");
    client
        .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
        .set_pkce_verifier(verifier)
        .request_async(&|request| send(http, request))
        .await
        .map(TokenSet::from)
        .map_err(classify)
}
