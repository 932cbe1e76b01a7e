//! Dynamic client registration (RFC 7591): with an issuer and no client id
//! configured, keygate registers itself as a native public client and
//! keeps what the server returned in the token store, beside the tokens;
//! RFC 7592 deletes the registration again.

use serde::{Deserialize, Serialize};
use url::Url;

use super::loopback::DEFAULT_REDIRECT;
use super::metadata::Metadata;
use crate::config::{ClientAuth, ClientIdSource, Provider};
use crate::http::{HttpClient, HttpError, check_endpoint};
use crate::secret::Secret;
use crate::store::{StoreError, TokenStore};
use crate::text::{escape, shell_command};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "no client id is configured for {server} and its issuer offers no dynamic registration; create an OAuth application there (a public/native client with redirect URI {DEFAULT_REDIRECT}) and run `{}`",
        crate::config::set_key_command(server, crate::config::Key::ClientId, "<id>")
    )]
    Unavailable { server: String },
    #[error(
        "the registration endpoint at {host} answered HTTP {status}: it wants an initial access token; get one from the server's administrators and run `keygate setup <url> --registration-token -` (token on stdin), or set keygate.<url>.clientId to an application created by hand"
    )]
    NeedsToken { host: String, status: u16 },
    #[error(
        "the registration endpoint at {host} refused the initial access token (HTTP {status}); check it, or set keygate.<url>.clientId to an application created by hand"
    )]
    TokenRefused { host: String, status: u16 },
    #[error("the registration endpoint at {host} refused to register keygate: {code:?}{}", description.as_ref().map(|d| format!(" ({d:?})")).unwrap_or_default())]
    Refused {
        host: String,
        code: String,
        description: Option<String>,
    },
    #[error("the registration endpoint at {host} answered HTTP {status}")]
    Status { host: String, status: u16 },
    #[error(
        "the registration endpoint at {host} answered without a client_id: nothing was registered"
    )]
    NoClientId { host: String },
    #[error("the registration endpoint at {host} sent a response keygate cannot read ({reason})")]
    BadResponse { host: String, reason: String },
    #[error(
        "the client registration stored for {server} is damaged; run `{}`",
        shell_command(&["keygate".into(), "logout".into(), server.as_str().into(), "--forget-client".into()])
    )]
    Damaged { server: String },
    #[error(
        "the registration_client_uri {} is not an https URL on the origin of the registration endpoint{}: refused, as it could aim keygate's requests at another service; ask the server's administrators, or set keygate.<url>.clientId to an application created by hand",
        escape(&format!("{value:?}")),
        endpoint.as_ref().map(|e| format!(" ({})", escape(e))).unwrap_or_default()
    )]
    UnsafeClientUri {
        value: String,
        endpoint: Option<String>,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a registration gave keygate, kept in the store as one secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
}

/// What the server answers; every field checked before it is kept.
#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: Option<String>,
    client_secret: Option<Secret>,
    token_endpoint_auth_method: Option<String>,
    registration_access_token: Option<Secret>,
    registration_client_uri: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// Where a provider's registered client is kept: one per server and
/// issuer, as a secret of the token store.
fn secret_name(provider: &Provider) -> String {
    format!(
        "registered-client {} {}",
        server_of(provider),
        provider.endpoints.issuer.as_deref().unwrap_or_default()
    )
}

fn server_of(provider: &Provider) -> String {
    provider.server.as_str().trim_end_matches('/').to_owned()
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_owned()
}

/// The client registered earlier for `provider`, if any. An empty value
/// is one a keygate without `delete_secret` left when it forgot the client.
pub fn load(
    provider: &Provider,
    store: &dyn TokenStore,
) -> Result<Option<RegisteredClient>, RegisterError> {
    let Some(stored) = store.load_secret(&secret_name(provider))? else {
        return Ok(None);
    };
    if stored.expose().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(stored.expose())
        .map(Some)
        .map_err(|_| RegisterError::Damaged {
            server: server_of(provider),
        })
}

fn save(
    provider: &Provider,
    store: &dyn TokenStore,
    client: &RegisteredClient,
) -> Result<(), RegisterError> {
    let json = serde_json::to_string(client).map_err(|e| RegisterError::BadResponse {
        host: String::new(),
        reason: e.to_string(),
    })?;
    store.save_secret(&secret_name(provider), &Secret::new(json))?;
    Ok(())
}

/// `provider` using `client`.
pub fn apply(provider: &mut Provider, client: &RegisteredClient) {
    provider.client.client_id = client.client_id.clone();
    provider.client.client_id_source = ClientIdSource::Registered;
    if let Some(secret) = &client.client_secret {
        provider.client.client_secret = Some(secret.clone());
        provider.client.client_auth = match client.token_endpoint_auth_method.as_deref() {
            Some("client_secret_post") => ClientAuth::Post,
            _ => ClientAuth::Basic,
        };
    }
}

/// The redirect URIs and grant types keygate will use with `provider`.
fn client_metadata(provider: &Provider, metadata: &Metadata) -> serde_json::Value {
    // RFC 8252 §7.3: a loopback redirect; the server ignores its port.
    let mut redirect_uris = vec![DEFAULT_REDIRECT.to_owned()];
    if let Some(configured) = &provider.client.redirect_url
        && !redirect_uris.contains(configured)
    {
        redirect_uris.push(configured.clone());
    }
    let mut grant_types = vec!["authorization_code", "refresh_token"];
    if metadata.device_authorization_endpoint.is_some() && metadata.supports_grant(DEVICE_GRANT) {
        grant_types.push(DEVICE_GRANT);
    }
    serde_json::json!({
        "client_name": "keygate",
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "redirect_uris": redirect_uris,
        "grant_types": grant_types,
        "response_types": ["code"],
    })
}

/// Registers keygate at the issuer's registration endpoint and keeps the
/// client in `store`. `initial_token` is the initial access token some
/// servers require (RFC 7591 §3).
pub async fn register(
    provider: &Provider,
    metadata: &Metadata,
    store: &dyn TokenStore,
    http: &HttpClient,
    initial_token: Option<&Secret>,
) -> Result<RegisteredClient, RegisterError> {
    let endpoint = metadata
        .registration_url()
        .ok_or_else(|| RegisterError::Unavailable {
            server: server_of(provider),
        })?;
    check_endpoint(&endpoint)?;
    let host = host_of(&endpoint);
    let body = serde_json::to_vec(&client_metadata(provider, metadata)).map_err(|e| {
        RegisterError::BadResponse {
            host: host.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut request = http::Request::post(endpoint.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    if let Some(token) = initial_token {
        request = request.header(http::header::AUTHORIZATION, bearer(token, &host)?);
    }
    let request = request.body(body).map_err(|e| RegisterError::BadResponse {
        host: host.clone(),
        reason: e.to_string(),
    })?;
    tracing::debug!(%endpoint, "registering keygate as a client");
    let response = http.send(request).await?;
    let status = response.status().as_u16();
    match status {
        200 | 201 => {}
        401 | 403 if initial_token.is_some() => {
            return Err(RegisterError::TokenRefused { host, status });
        }
        401 | 403 => return Err(RegisterError::NeedsToken { host, status }),
        _ => {
            return Err(
                match serde_json::from_slice::<ErrorResponse>(response.body()) {
                    Ok(error) => RegisterError::Refused {
                        host,
                        code: error.error,
                        description: error.error_description,
                    },
                    Err(_) => RegisterError::Status { host, status },
                },
            );
        }
    }
    let answer: RegistrationResponse =
        serde_json::from_slice(response.body()).map_err(|e| RegisterError::BadResponse {
            host: host.clone(),
            reason: crate::store::describe_json_error(&e),
        })?;
    let client_id = answer
        .client_id
        .filter(|id| !id.is_empty())
        .ok_or(RegisterError::NoClientId { host })?;
    // Checked before anything is kept: a client whose management URI points
    // elsewhere would have `--forget-client` send the server's bearer there.
    if let Some(uri) = &answer.registration_client_uri {
        check_client_uri(uri, Some(&endpoint))?;
    }
    let client = RegisteredClient {
        client_id,
        client_secret: answer.client_secret.filter(|s| !s.expose().is_empty()),
        token_endpoint_auth_method: answer.token_endpoint_auth_method,
        registration_access_token: answer.registration_access_token,
        registration_client_uri: answer.registration_client_uri,
    };
    save(provider, store, &client)?;
    Ok(client)
}

/// Where `provider`'s client id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    Configured,
    /// Registered before, kept in the store.
    Stored,
    /// Registered just now.
    Registered,
}

/// Gives `provider` a client id: its own, the one registered earlier, or a
/// new registration.
pub async fn ensure_client(
    provider: &mut Provider,
    metadata: &Metadata,
    store: &dyn TokenStore,
    http: &HttpClient,
    initial_token: Option<&Secret>,
) -> Result<ClientSource, RegisterError> {
    if !provider.client.client_id.is_empty() {
        return Ok(ClientSource::Configured);
    }
    if let Some(client) = load(provider, store)? {
        apply(provider, &client);
        return Ok(ClientSource::Stored);
    }
    let client = register(provider, metadata, store, http, initial_token).await?;
    apply(provider, &client);
    Ok(ClientSource::Registered)
}

/// `uri`, a registration's `registration_client_uri`, when it is safe to
/// send the registration access token to: on the origin (scheme, host,
/// port) of `endpoint`, the registration endpoint the client was
/// registered at, and https there (plain http only where the endpoint
/// itself is on loopback, which discovery allows only for an issuer on
/// loopback). Without `endpoint` to compare with, nothing is safe.
///
/// # Security
///
/// The URI is the server's word, and the request to it carries a bearer
/// the server chose: pointed at `http://127.0.0.1:…`, it would reach a
/// service on the user's machine that trusts loopback callers.
pub fn check_client_uri(uri: &str, endpoint: Option<&Url>) -> Result<Url, RegisterError> {
    let unsafe_uri = || RegisterError::UnsafeClientUri {
        value: uri.to_owned(),
        endpoint: endpoint.map(|e| e.origin().ascii_serialization()),
    };
    let endpoint = endpoint.ok_or_else(unsafe_uri)?;
    let url = Url::parse(uri).map_err(|_| unsafe_uri())?;
    if check_endpoint(&url).is_err()
        || check_endpoint(endpoint).is_err()
        || url.origin() != endpoint.origin()
    {
        return Err(unsafe_uri());
    }
    Ok(url)
}

/// What forgetting a registered client did.
#[derive(Debug)]
pub enum Forgotten {
    /// No client was registered for this server.
    NothingStored,
    /// Deleted at the server (RFC 7592) and here.
    Deleted,
    /// The server offers no way to delete it: only forgotten here.
    KeptAtServer,
    /// The server refused or failed; forgotten here anyway.
    Failed(RegisterError),
    /// Where the server said to delete it is not safe to send its token
    /// to (kept by an older keygate, or the endpoint moved): not asked,
    /// forgotten here anyway.
    NotSent(RegisterError),
}

/// Deletes the client registered for `provider`, at the server where it
/// offers RFC 7592 management, then from the store. `registration_endpoint`
/// is where the issuer registers clients now: the client's management URI
/// must be on its origin.
pub async fn forget(
    provider: &Provider,
    store: &dyn TokenStore,
    http: &HttpClient,
    registration_endpoint: Option<&Url>,
) -> Result<Forgotten, RegisterError> {
    let Some(client) = load(provider, store)? else {
        return Ok(Forgotten::NothingStored);
    };
    let outcome = match (
        &client.registration_client_uri,
        &client.registration_access_token,
    ) {
        (Some(uri), Some(token)) => match check_client_uri(uri, registration_endpoint) {
            Ok(url) => match delete_at_server(&url, token, http).await {
                Ok(()) => Forgotten::Deleted,
                Err(error) => Forgotten::Failed(error),
            },
            Err(error) => Forgotten::NotSent(error),
        },
        _ => Forgotten::KeptAtServer,
    };
    store.delete_secret(&secret_name(provider))?;
    Ok(outcome)
}

async fn delete_at_server(
    url: &Url,
    token: &Secret,
    http: &HttpClient,
) -> Result<(), RegisterError> {
    let host = host_of(url);
    let request = http::Request::delete(url.as_str())
        .header(http::header::AUTHORIZATION, bearer(token, &host)?)
        .body(Vec::new())
        .map_err(|e| RegisterError::BadResponse {
            host: host.clone(),
            reason: e.to_string(),
        })?;
    let status = http.send(request).await?.status().as_u16();
    match status {
        200..=299 => Ok(()),
        _ => Err(RegisterError::Status { host, status }),
    }
}

/// An `Authorization: Bearer` value, marked sensitive so no HTTP layer's
/// logging shows it.
fn bearer(token: &Secret, host: &str) -> Result<http::HeaderValue, RegisterError> {
    let mut value =
        http::HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
            RegisterError::BadResponse {
                host: host.to_owned(),
                reason: "the token holds characters an HTTP header cannot carry".to_owned(),
            }
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--forget-client` deletes the stored client (RFC 7592 at the
    /// server, then the store entry itself), and the empty value an older
    /// keygate left in its place still reads as no client.
    #[test]
    fn a_forgotten_client_is_deleted_and_an_old_empty_value_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::FileStore::new(dir.path().to_owned());
        let config = crate::config::GitConfig::parse_z(
            b"keygate.https://g.example.issuer\nhttps://a.example\0",
        );
        let provider = Provider::resolve(&config, &Url::parse("https://g.example/").unwrap())
            .unwrap()
            .unwrap();
        let client = RegisteredClient {
            client_id: "registered-1".into(),
            client_secret: None,
            token_endpoint_auth_method: None,
            registration_access_token: Some(Secret::new("rat")),
            registration_client_uri: Some("https://a.example/reg/registered-1".into()),
        };
        save(&provider, &store, &client).unwrap();
        assert_eq!(
            load(&provider, &store).unwrap().unwrap().client_id,
            "registered-1"
        );

        let server = crate::http::canned::Canned::new();
        server.answer(204, &[], "");
        let endpoint = Url::parse("https://a.example/reg").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let forget =
            || runtime.block_on(forget(&provider, &store, &server.client(), Some(&endpoint)));
        assert!(matches!(forget().unwrap(), Forgotten::Deleted));
        let sent = server.take_sent();
        let [delete] = sent.as_slice() else {
            panic!("{} requests", sent.len())
        };
        assert_eq!(delete.method(), http::Method::DELETE);
        assert_eq!(delete.uri(), "https://a.example/reg/registered-1");
        assert_eq!(delete.headers()["authorization"], "Bearer rat");
        assert_eq!(store.load_secret(&secret_name(&provider)).unwrap(), None);
        assert!(load(&provider, &store).unwrap().is_none());

        store
            .save_secret(&secret_name(&provider), &Secret::new(""))
            .unwrap();
        assert!(load(&provider, &store).unwrap().is_none());
        assert!(matches!(forget().unwrap(), Forgotten::NothingStored));
        assert!(server.take_sent().is_empty());
    }

    /// A registration answer could otherwise aim the bearer DELETE of
    /// `--forget-client` at any service, on the user's loopback included.
    #[test]
    fn the_client_uri_must_be_on_the_registration_endpoints_origin() {
        let endpoint = Url::parse("https://auth.example.com/reg").unwrap();
        let check = |uri: &str| check_client_uri(uri, Some(&endpoint));
        assert!(check("https://auth.example.com/reg/abc").is_ok());
        assert!(check("https://auth.example.com:443/reg/abc?x=1").is_ok());
        for hostile in [
            "http://127.0.0.1:8080/customers-index",
            "http://auth.example.com/reg/abc",
            "https://auth.example.com:8443/reg/abc",
            "https://other.example.com/reg/abc",
            "https://127.0.0.1/reg/abc",
            "not a url",
            "https://evil.example/\u{1b}]0;title\u{7}",
        ] {
            let err = check(hostile).unwrap_err();
            let said = err.to_string();
            assert!(said.contains("registration_client_uri"), "{said}");
            assert!(!said.chars().any(char::is_control), "{said}");
            assert!(said.starts_with(char::is_lowercase), "{said}");
        }
        // Without the endpoint to compare with, nothing is sent anywhere.
        assert!(check_client_uri("https://auth.example.com/reg/abc", None).is_err());
        // A development server on loopback keeps its own plain http origin.
        let local = Url::parse("http://127.0.0.1:9000/reg").unwrap();
        assert!(check_client_uri("http://127.0.0.1:9000/reg/abc", Some(&local)).is_ok());
        assert!(check_client_uri("http://127.0.0.1:9001/reg/abc", Some(&local)).is_err());
    }

    #[test]
    fn asks_for_a_native_public_client_with_the_grants_it_uses() {
        let config = crate::config::GitConfig::parse_z(
            b"keygate.https://g.example.issuer\nhttps://a.example\0",
        );
        let provider = Provider::resolve(&config, &Url::parse("https://g.example/").unwrap())
            .unwrap()
            .unwrap();
        let metadata: Metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://a.example",
            "device_authorization_endpoint": "https://a.example/device",
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
        }))
        .unwrap();
        let body = client_metadata(&provider, &metadata);
        assert_eq!(body["application_type"], "native");
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(body["client_name"], "keygate");
        assert_eq!(body["redirect_uris"], serde_json::json!([DEFAULT_REDIRECT]));
        assert_eq!(
            body["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token", DEVICE_GRANT])
        );
    }
}
