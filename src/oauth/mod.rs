//! OAuth 2.0 grants keygate runs against a provider: authorization code
//! with PKCE (through a loopback redirect), refresh, client credentials.
//! Each returns a [`TokenSet`]; nothing here touches the store.

mod code;
mod device;
pub mod discovery;
pub mod handoff;
mod loopback;
pub mod register;

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RefreshToken,
    RequestTokenError, RevocationUrl, Scope, StandardErrorResponse, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use url::Url;

use crate::config::{ClientAuth, Provider};
use crate::http::{HttpClient, HttpError, check_endpoint};
use crate::secret::Secret;

pub use code::{Browser, authorize};
pub use device::authorize_device;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(
        "no {what} is configured for {server}; set `git config --global keygate.{server}.{key} <url>`"
    )]
    MissingEndpoint {
        what: &'static str,
        key: &'static str,
        server: String,
    },
    #[error(
        "no client id is configured for {server}; set `git config --global keygate.{server}.clientId <id>` (or KEYGATE_CLIENT_ID)"
    )]
    MissingClientId { server: String },
    #[error("the token endpoint rejected the request: {code}{}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        code: String,
        description: Option<String>,
    },
    #[error("the token endpoint at {host} answered HTTP {status} with no usable body")]
    ServerStatus { host: String, status: u16 },
    #[error("the token endpoint sent a response keygate cannot read: {0}")]
    BadResponse(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Discovery(Box<discovery::DiscoveryError>),
    #[error(transparent)]
    Registration(Box<register::RegisterError>),
    #[error("authorization was denied in the browser: {code}{}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        code: String,
        description: Option<String>,
    },
    #[error(
        "a redirect with the wrong state arrived, so this login may be under attack and was stopped; run `keygate login <url>` to start again"
    )]
    StateMismatch,
    #[error("no authorization arrived within {0:?}; run `keygate login <url>` to try again")]
    Timeout(Duration),
    #[error("invalid redirect URL {url:?}: {reason}")]
    BadRedirect { url: String, reason: &'static str },
    #[error("cannot listen for the redirect on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

impl OAuthError {
    /// Whether the server said the grant (refresh token) itself is dead,
    /// as opposed to a passing failure worth retrying later.
    pub fn is_grant_rejected(&self) -> bool {
        matches!(self, OAuthError::Rejected { code, .. } if code == "invalid_grant" || code == "invalid_token" || code == "unauthorized_client")
    }
}

/// Tokens as a grant returned them.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<Secret>,
    pub scopes: Option<Vec<String>>,
}

impl From<BasicTokenResponse> for TokenSet {
    fn from(response: BasicTokenResponse) -> Self {
        Self {
            access_token: Secret::new(response.access_token().secret().clone()),
            token_type: response.token_type().as_ref().to_owned(),
            expires_in: response.expires_in(),
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            scopes: response
                .scopes()
                .map(|s| s.iter().map(|scope| scope.to_string()).collect()),
        }
    }
}

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn endpoint(
    url: Option<&Url>,
    provider: &Provider,
    what: &'static str,
    key: &'static str,
) -> Result<Url, OAuthError> {
    let url = url.ok_or_else(|| OAuthError::MissingEndpoint {
        what,
        key,
        server: provider.server.as_str().trim_end_matches('/').to_owned(),
    })?;
    check_endpoint(url)?;
    Ok(url.clone())
}

fn token_client(provider: &Provider) -> Result<TokenClient, OAuthError> {
    if provider.client_id.is_empty() {
        return Err(OAuthError::MissingClientId {
            server: provider.server.as_str().trim_end_matches('/').to_owned(),
        });
    }
    let token_url = endpoint(
        provider.token_url.as_ref(),
        provider,
        "token endpoint",
        "tokenUrl",
    )?;
    let mut client = BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(token_url));
    if let Some(secret) = &provider.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    if provider.client_auth == ClientAuth::Post {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    Ok(client)
}

/// Sends one OAuth request. A non-2xx answer that is not an RFC 6749
/// JSON error becomes an error naming the status, so a 500 page reads as
/// "HTTP 500", not as a JSON parse failure.
async fn send(
    http: &HttpClient,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpOrStatus> {
    let host = request.uri().host().unwrap_or_default().to_owned();
    let response = http.send(request).await?;
    let status = response.status();
    if !status.is_success()
        && serde_json::from_slice::<serde_json::Value>(response.body())
            .map(|v| v.get("error").is_none())
            .unwrap_or(true)
    {
        return Err(HttpOrStatus::Status {
            host,
            status: status.as_u16(),
        });
    }
    Ok(response)
}

#[derive(Debug, thiserror::Error)]
enum HttpOrStatus {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("HTTP {status} from {host}")]
    Status { host: String, status: u16 },
}

fn classify<T>(error: RequestTokenError<HttpOrStatus, StandardErrorResponse<T>>) -> OAuthError
where
    T: oauth2::ErrorResponseType + AsRef<str> + std::fmt::Display + Send + Sync + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => OAuthError::Rejected {
            code: response.error().as_ref().to_owned(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(HttpOrStatus::Http(e)) => OAuthError::Http(e),
        RequestTokenError::Request(HttpOrStatus::Status { host, status }) => {
            OAuthError::ServerStatus { host, status }
        }
        // The body is deliberately dropped: it may hold a token.
        RequestTokenError::Parse(e, _body) => {
            OAuthError::BadResponse(format!("invalid JSON at {}", e.path()))
        }
        RequestTokenError::Other(message) => OAuthError::BadResponse(message),
    }
}

/// Redeems a refresh token. On success the server may have rotated it:
/// the caller must save the returned one before anything else.
pub async fn refresh(
    provider: &Provider,
    http: &HttpClient,
    refresh_token: &Secret,
) -> Result<TokenSet, OAuthError> {
    let client = token_client(provider)?;
    let refresh_token = RefreshToken::new(refresh_token.expose().to_owned());
    tracing::debug!(server = %provider.server, "refreshing access token");
    client
        .exchange_refresh_token(&refresh_token)
        .request_async(&|request| send(http, request))
        .await
        .map(TokenSet::from)
        .map_err(classify)
}

/// The client-credentials grant (RFC 6749 §4.4), for CI and scripts.
pub async fn client_credentials(
    provider: &Provider,
    http: &HttpClient,
) -> Result<TokenSet, OAuthError> {
    let client = token_client(provider)?;
    let mut request = client.exchange_client_credentials();
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    request
        .request_async(&|request| send(http, request))
        .await
        .map(TokenSet::from)
        .map_err(classify)
}

/// Revokes the refresh token, then the access token (RFC 7009), at the
/// provider's revocation endpoint. Returns whether there was one to ask.
pub async fn revoke(
    provider: &Provider,
    http: &HttpClient,
    refresh_token: Option<&Secret>,
    access_token: Option<&Secret>,
) -> Result<bool, OAuthError> {
    let Some(revoke_url) = provider.revoke_url.as_ref() else {
        return Ok(false);
    };
    check_endpoint(revoke_url)?;
    let client =
        token_client(provider)?.set_revocation_url(RevocationUrl::from_url(revoke_url.clone()));
    // The refresh token first: revoking it usually takes the access tokens
    // of the grant with it, and it is the one worth stealing.
    let tokens = [
        refresh_token.map(|t| {
            StandardRevocableToken::RefreshToken(RefreshToken::new(t.expose().to_owned()))
        }),
        access_token
            .map(|t| StandardRevocableToken::AccessToken(AccessToken::new(t.expose().to_owned()))),
    ];
    for token in tokens.into_iter().flatten() {
        let request = client
            .revoke_token(token)
            .map_err(|e| OAuthError::BadResponse(format!("cannot revoke: {e}")))?;
        request
            .request_async(&|request| send(http, request))
            .await
            .map_err(classify)?;
    }
    Ok(true)
}
