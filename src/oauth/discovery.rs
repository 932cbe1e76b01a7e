//! Server metadata discovery (RFC 8414, OpenID Connect Discovery): an
//! issuer publishes its endpoints, so `keygate.<url>.issuer` can replace
//! the endpoint keys.
//!
//! The metadata is fetched right before keygate first needs the network
//! and cached for a day in the data directory; a fresh token is served
//! without reading it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::metadata::Metadata;
use crate::http::{HttpClient, HttpError, check_endpoint, is_loopback};
use crate::store::{self, unix_now};

/// How long cached metadata is believed.
const MAX_AGE_SECS: u64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid issuer {0:?}: give the https:// URL the server names as its issuer")]
    BadIssuer(String),
    #[error(
        "{issuer} publishes no OAuth server metadata (tried {tried}); configure its endpoints by hand (see `keygate setup --help`)"
    )]
    NotFound { issuer: String, tried: String },
    #[error("the metadata at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the metadata at {url} is not OAuth server metadata JSON ({reason})")]
    NotJson { url: String, reason: String },
    #[error(
        "the metadata at {url} names the issuer {found:?}, not {expected:?}: refused, as another server may be answering for it; check keygate.<url>.issuer"
    )]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error(
        "{issuer} does not offer PKCE with S256 (code_challenge_methods_supported), which keygate requires"
    )]
    NoS256 { issuer: String },
    #[error(
        "the metadata of {issuer} names a {field} {} that is not an https URL (plain http only on loopback, for an issuer on loopback): refused; check keygate.<url>.issuer, or configure the endpoint by hand",
        crate::text::escape(&format!("{value:?}"))
    )]
    InsecureEndpoint {
        issuer: String,
        field: &'static str,
        value: String,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Where the metadata of `issuer` may be: RFC 8414 §3.1 inserts the
/// well-known segment between host and path; OpenID Connect appends it.
pub fn well_known_urls(issuer: &Url) -> [Url; 2] {
    let path = issuer.path().trim_end_matches('/');
    let at = |new_path: String| {
        let mut url = issuer.clone();
        url.set_path(&new_path);
        url.set_query(None);
        url.set_fragment(None);
        url
    };
    [
        at(format!("/.well-known/oauth-authorization-server{path}")),
        at(format!("{path}/.well-known/openid-configuration")),
    ]
}

fn parse_issuer(issuer: &str) -> Result<Url, DiscoveryError> {
    let url = Url::parse(issuer).map_err(|_| DiscoveryError::BadIssuer(issuer.to_owned()))?;
    check_endpoint(&url)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(DiscoveryError::BadIssuer(issuer.to_owned()));
    }
    Ok(url)
}

/// Fetches the metadata of `issuer` from the server, RFC 8414's location
/// first, and checks it.
pub async fn fetch(http: &HttpClient, issuer: &str) -> Result<Metadata, DiscoveryError> {
    let issuer_url = parse_issuer(issuer)?;
    let mut tried = Vec::new();
    for url in well_known_urls(&issuer_url) {
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError::Transport {
                host: url.host_str().unwrap_or_default().to_owned(),
                reason: e.to_string(),
            })?;
        let response = http.send(request).await?;
        let status = response.status();
        // Not there (404, or a server that answers 400/405 for unknown
        // paths): the other location may be.
        if status.is_client_error() {
            tried.push(url.to_string());
            continue;
        }
        if !status.is_success() {
            return Err(DiscoveryError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let metadata: Metadata =
            serde_json::from_slice(response.body()).map_err(|e| DiscoveryError::NotJson {
                url: url.to_string(),
                reason: store::describe_json_error(&e),
            })?;
        check(&metadata, issuer, url.as_str())?;
        return Ok(metadata);
    }
    Err(DiscoveryError::NotFound {
        issuer: issuer.to_owned(),
        tried: tried.join(", "),
    })
}

/// RFC 8414 §3.3: the issuer must be exactly the one asked for, or a
/// server could pass off another's endpoints (mix-up). PKCE S256 must be
/// on offer when the server lists its methods, and every endpoint must be
/// https; plain http on loopback only when the issuer is on loopback too.
///
/// # Security
///
/// A remote server naming `http://127.0.0.1:…` endpoints would have
/// keygate post client secrets, codes and tokens to whatever listens on
/// the user's own machine, which often trusts loopback callers.
pub fn check(metadata: &Metadata, issuer: &str, url: &str) -> Result<(), DiscoveryError> {
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_owned(),
            expected: issuer.to_owned(),
            found: metadata.issuer.clone(),
        });
    }
    if let Some(methods) = &metadata.code_challenge_methods_supported
        && !methods.iter().any(|m| m == "S256")
    {
        return Err(DiscoveryError::NoS256 {
            issuer: issuer.to_owned(),
        });
    }
    let issuer_is_local = Url::parse(issuer).is_ok_and(|u| is_loopback(&u));
    for (field, value) in metadata.endpoints() {
        let Some(value) = value else { continue };
        let secure = Url::parse(value).is_ok_and(|u| {
            u.scheme() == "https" || (issuer_is_local && check_endpoint(&u).is_ok())
        });
        if !secure {
            return Err(DiscoveryError::InsecureEndpoint {
                issuer: issuer.to_owned(),
                field,
                value: value.to_owned(),
            });
        }
    }
    Ok(())
}

/// What the cache file holds.
#[derive(Serialize, Deserialize)]
struct Cached {
    fetched_at: u64,
    metadata: Metadata,
}

fn cache_path(issuer: &str) -> Option<PathBuf> {
    let digest = Sha256::digest(issuer.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Some(
        store::data_dir()
            .ok()?
            .join("metadata")
            .join(format!("{name}.json")),
    )
}

/// The cached metadata of `issuer` while it is younger than a day; any
/// trouble reading it just means fetching again.
fn read_cache(issuer: &str) -> Option<Metadata> {
    let path = cache_path(issuer)?;
    let bytes = std::fs::read(&path).ok()?;
    let cached: Cached = serde_json::from_slice(&bytes).ok()?;
    let age = unix_now().checked_sub(cached.fetched_at)?;
    if age > MAX_AGE_SECS {
        return None;
    }
    check(&cached.metadata, issuer, &path.display().to_string()).ok()?;
    Some(cached.metadata)
}

fn write_cache(issuer: &str, metadata: &Metadata) {
    let Some(path) = cache_path(issuer) else {
        return;
    };
    let cached = Cached {
        fetched_at: unix_now(),
        metadata: metadata.clone(),
    };
    let written = serde_json::to_vec_pretty(&cached)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            if let Some(dir) = path.parent() {
                crate::sys::create_private_dir(dir)?;
            }
            crate::sys::write_private_atomically(&path, &json)
        });
    if let Err(error) = written {
        tracing::debug!(path = %path.display(), %error, "cannot cache the server metadata");
    }
}

/// The metadata of `issuer`: cached, else fetched (and cached).
pub async fn metadata(http: &HttpClient, issuer: &str) -> Result<Metadata, DiscoveryError> {
    if let Some(metadata) = read_cache(issuer) {
        return Ok(metadata);
    }
    tracing::debug!(issuer, "fetching the server metadata");
    let metadata = fetch(http, issuer).await?;
    write_cache(issuer, &metadata);
    Ok(metadata)
}

/// Drops the cached metadata of `issuer`, so the next use fetches it anew.
pub fn forget(issuer: &str) {
    if let Some(path) = cache_path(issuer) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(json: serde_json::Value) -> Metadata {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn well_known_locations_follow_rfc8414_and_oidc() {
        let urls =
            |issuer: &str| well_known_urls(&Url::parse(issuer).unwrap()).map(|u| u.to_string());
        assert_eq!(
            urls("https://auth.example.com"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://auth.example.com/realms/dev/"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/realms/dev",
                "https://auth.example.com/realms/dev/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let m = metadata(serde_json::json!({"issuer": "https://a.example/"}));
        assert!(check(&m, "https://a.example/", "u").is_ok());
        let err = check(&m, "https://a.example", "u").unwrap_err();
        assert!(
            matches!(err, DiscoveryError::IssuerMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn s256_required_when_methods_are_listed() {
        let plain = metadata(serde_json::json!({
            "issuer": "https://a.example",
            "code_challenge_methods_supported": ["plain"],
        }));
        assert!(matches!(
            check(&plain, "https://a.example", "u"),
            Err(DiscoveryError::NoS256 { .. })
        ));
        let unlisted = metadata(serde_json::json!({"issuer": "https://a.example"}));
        assert!(check(&unlisted, "https://a.example", "u").is_ok());
    }

    #[test]
    fn endpoints_off_loopback_must_be_https() {
        for (field, value) in [
            ("token_endpoint", "http://a.example/token"),
            ("registration_endpoint", "not a url"),
        ] {
            let m = metadata(serde_json::json!({"issuer": "https://a.example", field: value}));
            let err = check(&m, "https://a.example", "u").unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        let local = metadata(serde_json::json!({
            "issuer": "http://127.0.0.1:9",
            "token_endpoint": "http://127.0.0.1:9/token",
        }));
        assert!(check(&local, "http://127.0.0.1:9", "u").is_ok());
    }

    /// A remote server could otherwise have keygate post a client secret,
    /// a code or a token to whatever listens on the user's loopback.
    #[test]
    fn a_remote_issuer_may_not_name_plain_http_loopback_endpoints() {
        for (field, value) in [
            ("token_endpoint", "http://127.0.0.1:9/token"),
            ("revocation_endpoint", "http://[::1]:9/revoke"),
            ("device_authorization_endpoint", "http://localhost:9/device"),
            ("authorization_endpoint", "http://127.0.0.2/auth"),
            ("registration_endpoint", "http://127.0.0.1/reg"),
        ] {
            let m = metadata(serde_json::json!({"issuer": "https://a.example", field: value}));
            let err = check(&m, "https://a.example", "u").unwrap_err();
            assert!(
                matches!(err, DiscoveryError::InsecureEndpoint { field: f, .. } if f == field),
                "{err}"
            );
        }
        // An issuer on loopback is a development server: its endpoints may be
        // plain http on loopback, whatever its own scheme.
        for issuer in ["https://127.0.0.1:8443", "http://localhost:8080"] {
            let local = metadata(serde_json::json!({
                "issuer": issuer,
                "token_endpoint": "http://127.0.0.1:9/token",
            }));
            assert!(check(&local, issuer, "u").is_ok(), "{issuer}");
        }
        // Remote https endpoints stay fine, loopback or not.
        let remote = metadata(serde_json::json!({
            "issuer": "https://a.example",
            "token_endpoint": "https://b.example/token",
        }));
        assert!(check(&remote, "https://a.example", "u").is_ok());
    }
}
