//! OAuth 2.0 grants keygate runs against a provider: authorization code
//! with PKCE (through a loopback redirect), refresh, client credentials.
//! Each returns a [`TokenSet`]; nothing here touches the store.
//!
//! Forges bend RFC 6749 in ways every grant must survive, so every
//! request goes through [`send`], which reads an answer by its content:
//! GitHub sends token-endpoint errors with HTTP 200
//! (<https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#error-codes-for-the-device-flow>,
//! <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors>),
//! which oauth2 5.0 would read as a token (oauth2-rs issue 218).

pub mod ci_identity;
mod client_assertion;
mod code;
mod device;
pub mod discovery;
pub mod federation;
pub mod handoff;
mod jwt_bearer;
mod loopback;
pub mod metadata;
mod paste;
mod qr;
pub mod register;
mod token_exchange;
mod waiting;

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, Client, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    ExtraTokenFields, RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardErrorResponse,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ClientAuth, Provider};
use crate::http::{HttpClient, HttpError, check_endpoint};
use crate::secret::Secret;
use crate::store::TokenStore;
use crate::text::escape;

pub use code::{Browser, Handover, PasteWhen, authorize, login_command};
pub use device::authorize_device;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(
        "no {what} is configured for {server}; set `{}`",
        crate::config::set_key_command(server, *key, "<url>")
    )]
    MissingEndpoint {
        what: &'static str,
        key: crate::config::Key,
        server: String,
    },
    #[error(
        "no client id is configured for {server}; {}set `{}` (or KEYGATE_CLIENT_ID)",
        crate::config::registration_hint(server).map(|h| format!("{h}, then ")).unwrap_or_default(),
        crate::config::set_key_command(server, crate::config::Key::ClientId, "<id>")
    )]
    MissingClientId { server: String },
    #[error(
        "the token endpoint rejected the request: {}{}",
        escape(code),
        described(description)
    )]
    Rejected {
        code: String,
        description: Option<String>,
    },
    #[error("the token endpoint at {host} answered HTTP {status} with no usable body")]
    ServerStatus { host: String, status: u16 },
    #[error("the token endpoint sent a response keygate cannot read: {}", escape(.0))]
    BadResponse(String),
    #[error("{}", escape(&.0.to_string()))]
    Http(#[from] HttpError),
    #[error(transparent)]
    Discovery(Box<discovery::DiscoveryError>),
    #[error(transparent)]
    Registration(Box<register::RegisterError>),
    /// A grant that presents the CI job's id token failed.
    #[error(transparent)]
    Federation(Box<federation::FederationError>),
    #[error(
        "authorization was denied in the browser: {}{}",
        escape(code),
        described(description)
    )]
    Denied {
        code: String,
        description: Option<String>,
    },
    /// What to run next is said by the caller, who knows the account.
    #[error(
        "the device login stopped: {}{}; {}",
        escape(code),
        described(description),
        device_advice(code)
    )]
    DeviceStopped {
        code: String,
        description: Option<String>,
    },
    #[error(
        "a redirect with the wrong state arrived, so this login may be under attack and was stopped"
    )]
    StateMismatch,
    #[error(
        "{0} pasted addresses did not carry this login's state, so this login may be under attack and was stopped"
    )]
    PastedWrongState(usize),
    #[error("no authorization arrived within {}", waiting::long_duration(*.0))]
    Timeout(Duration),
    /// Ctrl-C (SIGINT) or SIGTERM while the login waited for a person.
    #[error("the login was cancelled; nothing was stored")]
    Cancelled,
    #[error("the redirect from the authorization server carried no authorization code")]
    MissingCode,
    /// The person authorized, but redeeming the code failed.
    #[error("the authorization could not be redeemed: {0}")]
    Exchange(Box<OAuthError>),
    #[error("invalid redirect URL {url:?}: {reason}")]
    BadRedirect { url: String, reason: &'static str },
    #[error("cannot listen for the redirect on {addr}: {}", listen_advice(source))]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

fn described(description: &Option<String>) -> String {
    description
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!(" ({})", escape(d)))
        .unwrap_or_default()
}

/// What to do after a device grant the server ended, by GitHub's codes
/// (<https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#error-codes-for-the-device-flow>)
/// and RFC 8628 §3.5's.
fn device_advice(code: &str) -> &'static str {
    match code {
        "expired_token" => "the code expired before it was entered",
        "incorrect_device_code" => "the server does not know this device code",
        "device_flow_disabled" => {
            "the device flow is switched off for this app; enable it in the app's settings (GitHub: \"Enable Device Flow\"), or set keygate.<url>.redirect = loopback"
        }
        _ => "the server ended it",
    }
}

/// A fixed redirect port (Bitbucket's registered callback) can be taken.
fn listen_advice(source: &std::io::Error) -> String {
    if source.kind() == std::io::ErrorKind::AddrInUse {
        "the port is taken by another program; the redirect URL registered with the provider fixes this port, so stop that program, or register another callback URL and set keygate.<url>.redirectUrl to it".to_owned()
    } else {
        source.to_string()
    }
}

/// Error codes that say "not now" rather than "never": the grant may
/// still be good. `server_error` is an authorization-endpoint code
/// (RFC 6749 §4.1.2.1) a token endpoint has no business sending, but
/// when one does it is about the server, not the grant.
const PASSING_ERRORS: &[&str] = &[
    "temporarily_unavailable",
    "slow_down",
    "server_error",
    "authorization_pending",
];

impl OAuthError {
    /// Whether the server said the grant (refresh token) itself is dead,
    /// as opposed to a passing failure worth retrying later: any OAuth
    /// error from the token endpoint but the passing ones. Forges have
    /// their own words for it (GitHub's `bad_refresh_token`), and an
    /// error the server names is never fixed by asking again.
    pub fn is_grant_rejected(&self) -> bool {
        match self {
            OAuthError::Rejected { code, .. } => !PASSING_ERRORS.contains(&code.as_str()),
            OAuthError::Federation(error) => error
                .code()
                .is_some_and(|code| !PASSING_ERRORS.contains(&code)),
            _ => false,
        }
    }

    /// The server's error code, when the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            OAuthError::Rejected { code, .. }
            | OAuthError::Denied { code, .. }
            | OAuthError::DeviceStopped { code, .. } => Some(code),
            OAuthError::Federation(error) => error.code(),
            _ => None,
        }
    }

    /// Whether a failed request suggests the endpoint has moved since the
    /// issuer's metadata was cached: gone (404) or nobody listening.
    pub fn suggests_moved(&self) -> bool {
        match self {
            OAuthError::ServerStatus { status, .. } => *status == 404,
            OAuthError::Http(HttpError::Transport { reason, .. }) => {
                reason.starts_with("could not connect")
            }
            _ => false,
        }
    }

    /// Whether this ended a login a person took part in (denied, timed
    /// out, a redirect or exchange that failed), as opposed to one that
    /// could not start: then git should stop rather than prompt.
    pub fn ended_a_login(&self) -> bool {
        matches!(
            self,
            OAuthError::Denied { .. }
                | OAuthError::StateMismatch
                | OAuthError::PastedWrongState(_)
                | OAuthError::Timeout(_)
                | OAuthError::Cancelled
                | OAuthError::MissingCode
                | OAuthError::Exchange(_)
                | OAuthError::DeviceStopped { .. }
        )
    }
}

/// A transport failure is [`OAuthError::Http`] whichever request met it,
/// so no caller looks for it in two places.
impl From<discovery::DiscoveryError> for OAuthError {
    fn from(error: discovery::DiscoveryError) -> Self {
        match error {
            discovery::DiscoveryError::Http(error) => OAuthError::Http(error),
            error => OAuthError::Discovery(Box::new(error)),
        }
    }
}

/// As for discovery; a store failure stays inside, for
/// [`crate::session::SessionError`] to take out.
impl From<register::RegisterError> for OAuthError {
    fn from(error: register::RegisterError) -> Self {
        match error {
            register::RegisterError::Http(error) => OAuthError::Http(error),
            error => OAuthError::Registration(Box::new(error)),
        }
    }
}

/// `provider` ready for the network: with an issuer, the endpoints it
/// does not configure come from the issuer's metadata, and without a
/// client id it uses the client registered there, registering one first
/// if `may_register` (not to revoke tokens on the way out). Here, above
/// both, so that discovery and registration need not know each other.
pub async fn complete(
    provider: &Provider,
    store: &dyn TokenStore,
    http: &HttpClient,
    may_register: bool,
) -> Result<Provider, OAuthError> {
    let Some(issuer) = provider.endpoints.issuer.as_deref() else {
        return Ok(provider.clone());
    };
    let metadata = discovery::metadata(http, issuer).await?;
    let mut completed = metadata::apply(provider, &metadata);
    if may_register {
        register::ensure_client(&mut completed, &metadata, store, http, None).await?;
    } else if completed.client.client_id.is_empty()
        && let Some(client) = register::load(&completed, store)?
    {
        register::apply(&mut completed, &client);
    }
    Ok(completed)
}

/// Tokens as a grant returned them.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<Secret>,
    /// How long the refresh token itself lives (GitHub: about six months).
    pub refresh_token_expires_in: Option<Duration>,
    pub scopes: Option<Vec<String>>,
}

/// Members of a token response beyond RFC 6749's that forges send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ForgeFields {
    /// GitHub: seconds until the refresh token dies
    /// (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens>).
    /// Read leniently: a malformed one is ignored, never fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_expires_in: Option<serde_json::Value>,
    /// Bitbucket names the granted scopes `scopes`, not `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<serde_json::Value>,
}

impl ExtraTokenFields for ForgeFields {}

type ForgeTokenResponse = StandardTokenResponse<ForgeFields, BasicTokenType>;

/// Splits a scope string the way forges write it: RFC 6749 says spaces,
/// GitHub's OAuth apps send `repo,gist` and GitHub Apps send `""`.
pub fn split_scopes(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let secs = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    Some(Duration::from_secs(secs))
}

impl From<ForgeTokenResponse> for TokenSet {
    fn from(response: ForgeTokenResponse) -> Self {
        let extra = response.extra_fields();
        let scopes = match response.scopes() {
            Some(scopes) => Some(scopes.iter().flat_map(|s| split_scopes(s)).collect()),
            None => extra
                .scopes
                .as_ref()
                .and_then(|v| v.as_str())
                .map(split_scopes),
        };
        Self {
            access_token: Secret::new(response.access_token().secret().clone()),
            token_type: response.token_type().as_ref().to_owned(),
            expires_in: response.expires_in(),
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            refresh_token_expires_in: extra.refresh_token_expires_in.as_ref().and_then(seconds),
            scopes,
        }
    }
}

type TokenClient = Client<
    BasicErrorResponse,
    ForgeTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn endpoint(
    url: Option<&Url>,
    provider: &Provider,
    what: &'static str,
    key: crate::config::Key,
) -> Result<Url, OAuthError> {
    let url = url.ok_or_else(|| OAuthError::MissingEndpoint {
        what,
        key,
        server: provider.server.as_str().trim_end_matches('/').to_owned(),
    })?;
    check_endpoint(url)?;
    Ok(url.clone())
}

fn check_client_id(provider: &Provider) -> Result<(), OAuthError> {
    if provider.client.client_id.is_empty() {
        return Err(OAuthError::MissingClientId {
            server: provider.server.as_str().trim_end_matches('/').to_owned(),
        });
    }
    Ok(())
}

fn token_endpoint(provider: &Provider) -> Result<Url, OAuthError> {
    endpoint(
        provider.endpoints.token_url.as_ref(),
        provider,
        "token endpoint",
        crate::config::Key::TokenUrl,
    )
}

fn token_client(provider: &Provider) -> Result<TokenClient, OAuthError> {
    check_client_id(provider)?;
    let token_url = token_endpoint(provider)?;
    let mut client = Client::new(ClientId::new(provider.client.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(token_url));
    if let Some(secret) = &provider.client.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    if provider.client.client_auth == ClientAuth::Post {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    Ok(client)
}

/// A form POST to the token endpoint with the client's credentials the
/// way oauth2 sends them (RFC 6749 §2.3.1: Basic with each part
/// form-encoded, or in the body), for the requests keygate builds itself.
fn token_request(
    provider: &Provider,
    params: &[(&str, &str)],
) -> Result<oauth2::HttpRequest, OAuthError> {
    check_client_id(provider)?;
    form_request(provider, params, None)
}

/// RFC 7523 §2.2's `client_assertion_type` for a JWT.
const JWT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// [`token_request`] for a client that may be none at all (a token
/// exchange needs none, RFC 8693 §2.1), or that authenticates with
/// `assertion` (RFC 7523 §2.2) instead of a secret.
fn form_request(
    provider: &Provider,
    params: &[(&str, &str)],
    assertion: Option<&Secret>,
) -> Result<oauth2::HttpRequest, OAuthError> {
    use base64::Engine;
    let token_url = token_endpoint(provider)?;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(params);
    let mut builder = http::Request::post(token_url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
    let client_id = provider.client.client_id.as_str();
    match (
        assertion,
        &provider.client.client_secret,
        provider.client.client_auth,
    ) {
        (Some(assertion), _, _) => {
            check_client_id(provider)?;
            form.append_pair("client_id", client_id);
            form.append_pair("client_assertion_type", JWT_ASSERTION_TYPE);
            form.append_pair("client_assertion", assertion.expose());
        }
        (None, Some(secret), ClientAuth::Basic) => {
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                encode(&provider.client.client_id),
                encode(secret.expose())
            );
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            builder = builder.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        (None, Some(secret), ClientAuth::Post) => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose());
        }
        (None, None, _) if client_id.is_empty() => {}
        (None, None, _) => {
            form.append_pair("client_id", client_id);
        }
    }
    builder
        .body(form.finish().into_bytes())
        .map_err(|e| OAuthError::BadResponse(format!("cannot build the request: {e}")))
}

/// Whether a body is an RFC 6749 §5.2 error: a JSON object with an
/// `error` member.
fn error_body(body: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) if map.contains_key("error") => Some(map),
        _ => None,
    }
}

/// Sends one OAuth request and sorts the answer by what it says, not
/// only by its status:
///
/// - an `error` member makes it an OAuth error whatever the status, so
///   GitHub's HTTP-200 errors reach oauth2 as the errors they are;
/// - a 5xx, or a non-2xx that is not an OAuth error, becomes an error
///   naming the status (a 500 page reads as "HTTP 500", not as a JSON
///   parse failure; a 503 is a passing failure whatever its body says).
async fn send(
    http: &HttpClient,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpOrStatus> {
    let host = request.uri().host().unwrap_or_default().to_owned();
    let mut response = http.send(request).await?;
    let status = response.status();
    if status.is_server_error() {
        return Err(HttpOrStatus::Status {
            host,
            status: status.as_u16(),
        });
    }
    if error_body(response.body()).is_some() {
        if status.is_success() {
            *response.status_mut() = http::StatusCode::BAD_REQUEST;
        }
        return Ok(response);
    }
    if !status.is_success() {
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

impl From<HttpOrStatus> for OAuthError {
    fn from(error: HttpOrStatus) -> Self {
        match error {
            HttpOrStatus::Http(e) => OAuthError::Http(e),
            HttpOrStatus::Status { host, status } => OAuthError::ServerStatus { host, status },
        }
    }
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
        RequestTokenError::Request(e) => e.into(),
        RequestTokenError::Parse(e, body) => {
            OAuthError::BadResponse(unreadable(&body, e.inner(), &e.path().to_string()))
        }
        RequestTokenError::Other(message) => OAuthError::BadResponse(message),
    }
}

/// What is wrong with a body that is neither a token nor an error, in
/// words that never quote it: it may hold a token. serde's own message
/// quotes the offending value; only its "missing field" form is safe.
fn unreadable(body: &[u8], error: &serde_json::Error, path: &str) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Err(_) => "the body is not JSON".to_owned(),
        Ok(value) if !value.is_object() => "the body is not a JSON object".to_owned(),
        Ok(_) => {
            let message = error.to_string();
            match message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                Some(field) => format!("missing {field}"),
                None if path.is_empty() || path == "." => "a member of the wrong kind".to_owned(),
                None => format!("{path} is of the wrong kind"),
            }
        }
    }
}

/// Reads a token-endpoint answer keygate sent itself (the device poll):
/// an RFC 6749 error (with RFC 8628's `interval` when it carries one), or
/// a token.
fn read_token_answer(response: &oauth2::HttpResponse) -> Result<TokenSet, Answered> {
    if let Some(error) = error_body(response.body()) {
        let text = |key: &str| error.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        return Err(Answered::Error {
            code: text("error").unwrap_or_else(|| "(not a string)".to_owned()),
            description: text("error_description"),
            interval: error.get("interval").and_then(seconds),
        });
    }
    serde_json::from_slice::<ForgeTokenResponse>(response.body())
        .map(TokenSet::from)
        .map_err(|e| Answered::Unreadable(unreadable(response.body(), &e, "")))
}

/// What a token endpoint said instead of a token.
enum Answered {
    Error {
        code: String,
        description: Option<String>,
        interval: Option<Duration>,
    },
    Unreadable(String),
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
    for scope in &provider.client.scopes {
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
    let Some(revoke_url) = provider.endpoints.revoke_url.as_ref() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(split_scopes("repo,gist"), ["repo", "gist"]);
        assert_eq!(
            split_scopes("read_repository write_repository"),
            ["read_repository", "write_repository"]
        );
        assert_eq!(split_scopes(", repo ,, gist "), ["repo", "gist"]);
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn a_forge_token_response_is_read_in_full() {
        let body = br#"{"access_token":"ghu_x","expires_in":28800,"refresh_token":"ghr_y",
            "refresh_token_expires_in":15811200,"scope":"","token_type":"bearer"}"#;
        let tokens = TokenSet::from(serde_json::from_slice::<ForgeTokenResponse>(body).unwrap());
        assert_eq!(
            tokens.refresh_token_expires_in,
            Some(Duration::from_secs(15_811_200))
        );
        assert_eq!(tokens.scopes, Some(vec![]));
        let bitbucket =
            br#"{"access_token":"a","token_type":"bearer","scopes":"repository:write repository"}"#;
        let tokens =
            TokenSet::from(serde_json::from_slice::<ForgeTokenResponse>(bitbucket).unwrap());
        assert_eq!(
            tokens.scopes,
            Some(vec!["repository:write".into(), "repository".into()])
        );
        assert_eq!(tokens.refresh_token_expires_in, None);
    }

    #[test]
    fn an_unreadable_body_is_named_without_quoting_it() {
        let body = br#"{"token":"secret-looking-value","token_type":"bearer"}"#;
        let error = serde_json::from_slice::<ForgeTokenResponse>(body).unwrap_err();
        assert_eq!(unreadable(body, &error, ""), "missing access_token");
        let body = br#"{"access_token":["secret-looking-value"],"token_type":"bearer"}"#;
        let error = serde_json::from_slice::<ForgeTokenResponse>(body).unwrap_err();
        let said = unreadable(body, &error, "access_token");
        assert!(!said.contains("secret-looking"), "{said}");
        let error = serde_json::from_slice::<ForgeTokenResponse>(b"access_token=x").unwrap_err();
        assert_eq!(
            unreadable(b"access_token=x", &error, ""),
            "the body is not JSON"
        );
    }

    #[test]
    fn every_named_error_but_the_passing_ones_kills_the_grant() {
        let rejected = |code: &str| OAuthError::Rejected {
            code: code.into(),
            description: None,
        };
        for dead in [
            "invalid_grant",
            "bad_refresh_token",
            "invalid_client",
            "unauthorized_client",
            "incorrect_client_credentials",
        ] {
            assert!(rejected(dead).is_grant_rejected(), "{dead}");
        }
        for passing in ["temporarily_unavailable", "slow_down"] {
            assert!(!rejected(passing).is_grant_rejected(), "{passing}");
        }
        let status = OAuthError::ServerStatus {
            host: "h".into(),
            status: 503,
        };
        assert!(!status.is_grant_rejected());
        assert!(!OAuthError::BadResponse("missing access_token".into()).is_grant_rejected());
    }

    #[test]
    fn server_words_are_escaped_in_errors() {
        let error = OAuthError::Rejected {
            code: "bad\u{1b}]0;owned\u{7}".into(),
            description: Some("see \u{1b}[2J here".into()),
        };
        let shown = error.to_string();
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
        assert!(shown.contains("\\u{1b}]0;owned\\u{7}"), "{shown}");
    }
}
