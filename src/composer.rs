//! `COMPOSER_AUTH` for a host: the JSON Composer reads from that variable
//! or `auth.json`, in the form Composer expects for that host.

use serde_json::{Value, json};

use crate::config::{AuthScheme, Provider};

/// Composer's key for a host: its name, with the port when not the default.
fn composer_host(provider: &Provider) -> String {
    let host = provider.server.host_str().unwrap_or_default();
    match provider.server.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// github.com and gitlab.com have Composer's own OAuth entries; other hosts
/// get `bearer` or `http-basic` the way git is given the token.
pub fn auth_json(provider: &Provider, username: &str, token: &str) -> Value {
    let host = composer_host(provider);
    match host.as_str() {
        "github.com" => json!({ "github-oauth": { host: token } }),
        "gitlab.com" => json!({ "gitlab-oauth": { host: token } }),
        _ if provider.auth_scheme == AuthScheme::Bearer => json!({ "bearer": { host: token } }),
        _ => json!({ "http-basic": { host: { "username": username, "password": token } } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GitConfig;

    fn provider(url: &str, extra: &str) -> Provider {
        let raw = format!("keygate.{url}.clientid\nx\0{extra}");
        let config = GitConfig::parse_z(raw.as_bytes());
        Provider::resolve(&config, &url::Url::parse(url).unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn per_host_forms() {
        let github = provider("https://github.com", "");
        assert_eq!(
            auth_json(&github, "u", "t"),
            json!({"github-oauth": {"github.com": "t"}})
        );
        let bitbucket = provider("https://bitbucket.org", "");
        assert_eq!(
            auth_json(&bitbucket, "x-token-auth", "t"),
            json!({"http-basic": {"bitbucket.org": {"username": "x-token-auth", "password": "t"}}})
        );
        let bearer = provider(
            "https://git.example.com:8443",
            "keygate.https://git.example.com:8443.authtype\nbearer\0",
        );
        assert_eq!(
            auth_json(&bearer, "u", "t"),
            json!({"bearer": {"git.example.com:8443": "t"}})
        );
    }
}
