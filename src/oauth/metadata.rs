//! What an authorization server says about itself (RFC 8414 metadata),
//! as discovery fetches it and registration reads it; neither needs the
//! other to know its shape.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Provider;

/// The parts of an authorization server's metadata keygate uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Every endpoint it names, with its metadata field name.
    pub(super) fn endpoints(&self) -> [(&'static str, Option<&str>); 5] {
        [
            (
                "authorization_endpoint",
                self.authorization_endpoint.as_deref(),
            ),
            ("token_endpoint", self.token_endpoint.as_deref()),
            (
                "device_authorization_endpoint",
                self.device_authorization_endpoint.as_deref(),
            ),
            ("revocation_endpoint", self.revocation_endpoint.as_deref()),
            (
                "registration_endpoint",
                self.registration_endpoint.as_deref(),
            ),
        ]
    }

    /// Whether the server says it accepts `grant_type`; a server that
    /// lists nothing is taken at its endpoints' word.
    pub fn supports_grant(&self, grant_type: &str) -> bool {
        self.grant_types_supported
            .as_ref()
            .is_none_or(|grants| grants.iter().any(|g| g == grant_type))
    }

    pub fn registration_url(&self) -> Option<Url> {
        parsed(self.registration_endpoint.as_deref())
    }
}

fn parsed(value: Option<&str>) -> Option<Url> {
    value.and_then(|v| Url::parse(v).ok())
}

/// `provider` with the endpoints it does not configure taken from
/// `metadata`: explicit keys (and presets) win.
pub fn apply(provider: &Provider, metadata: &Metadata) -> Provider {
    let mut completed = provider.clone();
    let fill = |own: &mut Option<Url>, found: &Option<String>| {
        if own.is_none() {
            *own = parsed(found.as_deref());
        }
    };
    fill(
        &mut completed.endpoints.auth_url,
        &metadata.authorization_endpoint,
    );
    fill(&mut completed.endpoints.token_url, &metadata.token_endpoint);
    fill(
        &mut completed.endpoints.device_url,
        &metadata.device_authorization_endpoint,
    );
    fill(
        &mut completed.endpoints.revoke_url,
        &metadata.revocation_endpoint,
    );
    completed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_endpoints_win() {
        let raw = "keygate.https://g.example.issuer\nhttps://a.example\0\
                   keygate.https://g.example.tokenurl\nhttps://mine.example/token\0";
        let config = crate::config::GitConfig::parse_z(raw.as_bytes());
        let provider = Provider::resolve(&config, &Url::parse("https://g.example/").unwrap())
            .unwrap()
            .unwrap();
        let m: Metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://a.example",
            "authorization_endpoint": "https://a.example/auth",
            "token_endpoint": "https://a.example/token",
        }))
        .unwrap();
        let completed = apply(&provider, &m);
        assert_eq!(
            completed.endpoints.token_url.unwrap().as_str(),
            "https://mine.example/token"
        );
        assert_eq!(
            completed.endpoints.auth_url.unwrap().as_str(),
            "https://a.example/auth"
        );
    }
}
