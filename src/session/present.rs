//! How a token is presented to a client: git's answer to `get`, cargo's
//! and Docker's, the proxy's `Authorization` header, Composer's auth
//! JSON. Whether the token goes as a bearer token or as a password, and
//! with which user name, is decided once, in [`Scheme::for_client`].

use base64::Engine;
use serde_json::{Value, json};

use crate::cargo_credential;
use crate::config::{AuthScheme, Provider};
use crate::credential::Credential;
use crate::docker_credential::Credentials as DockerCredentials;
use crate::secret::Secret;
use crate::store::{TokenRecord, unix_now};

/// How the server is to be given the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic <username:token>`: the token as a password.
    Basic { username: String },
}

impl Scheme {
    /// The scheme `provider` asks for (`keygate.<url>.authtype`), where
    /// the client can send a bearer token as such (`takes_bearer`: git
    /// announces `authtype` from 2.46 on), else Basic with the server's
    /// fixed user name, the one the client asked with (`requested`), or
    /// a common default.
    pub fn for_client(provider: &Provider, requested: Option<&str>, takes_bearer: bool) -> Self {
        if provider.policy.auth_scheme == AuthScheme::Bearer && takes_bearer {
            Scheme::Bearer
        } else {
            Scheme::Basic {
                username: provider.wire_username(requested),
            }
        }
    }
}

/// git's answer to `request` with `record`'s access token.
pub fn git_answer(request: &Credential, provider: &Provider, record: &TokenRecord) -> Credential {
    let mut reply = Credential::default();
    let token = record.access_token.clone();
    reply.password_expiry_utc = expiry(provider, record).map(|t| t.to_string());
    let scheme = Scheme::for_client(
        provider,
        request.username.as_deref(),
        request.announces("authtype"),
    );
    match scheme {
        Scheme::Bearer => {
            reply.capability.push("authtype".to_owned());
            reply.authtype = Some("Bearer".to_owned());
            reply.credential = token;
            // keygate keeps the token; other helpers must not store a copy.
            reply.ephemeral = Some("1".to_owned());
        }
        Scheme::Basic { username } => {
            reply.username = Some(username);
            reply.password = token;
        }
    }
    reply
}

/// The expiry a client is told `record`'s token has: the instant it turns
/// stale, so every caller asks again in time and all of them at the same
/// moment (one refresh); a stale token served because a refresh failed
/// gets its real expiry instead, as clients drop a credential whose expiry
/// has passed. `None`: it does not expire.
fn expiry(provider: &Provider, record: &TokenRecord) -> Option<u64> {
    let now = unix_now();
    record
        .stale_at(provider.policy.refresh_margin)
        .filter(|&stale_at| stale_at > now)
        .or(record.expires_at)
}

/// cargo's answer to `get` with `record`'s access token: the whole
/// `Authorization` value (cargo adds no scheme), kept by cargo until the
/// instant git is told too, for every operation. `None` without a token.
pub fn cargo_answer(provider: &Provider, record: &TokenRecord) -> Option<cargo_credential::Answer> {
    let token = record.access_token.as_ref()?;
    let cache = match expiry(provider, record) {
        Some(expiration) => cargo_credential::Cache::Expires { expiration },
        None => cargo_credential::Cache::Session,
    };
    Some(cargo_credential::Answer::Get {
        token: authorization(provider, token),
        cache,
        operation_independent: true,
    })
}

/// The answer to Docker's `get` with `record`'s access token, for the
/// registry the client named (`server_url`, echoed as the helpers echo
/// it): always user name and password, since a registry's token server
/// takes HTTP Basic; the user name the server wants (`oauth2`,
/// `x-access-token`) or the common default. `None` without an access
/// token.
pub fn docker_credentials(
    server_url: &str,
    provider: &Provider,
    record: &TokenRecord,
) -> Option<DockerCredentials> {
    Some(DockerCredentials {
        server_url: server_url.to_owned(),
        username: provider.wire_username(None),
        secret: record.access_token.clone()?,
    })
}

/// The `Authorization` value the proxy sends `provider`'s server with
/// `token`: the proxy speaks HTTP itself, so a bearer token goes as one
/// whenever the provider wants it, and Basic carries no requested name.
pub fn authorization(provider: &Provider, token: &Secret) -> Secret {
    Secret::new(match Scheme::for_client(provider, None, true) {
        Scheme::Bearer => format!("Bearer {}", token.expose()),
        Scheme::Basic { username } => {
            let pair = format!("{username}:{}", token.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
    })
}

/// `COMPOSER_AUTH` for `provider`'s host: the JSON Composer reads from
/// that variable or `auth.json`. github.com and gitlab.com have Composer's
/// own OAuth entries; other hosts get `bearer` or `http-basic` the way
/// git is given the token. `requested`: the user name the URL named.
pub fn composer_auth(provider: &Provider, requested: Option<&str>, token: &Secret) -> Value {
    let host = composer_host(provider);
    let token = token.expose();
    match host.as_str() {
        "github.com" => json!({ "github-oauth": { host: token } }),
        "gitlab.com" => json!({ "gitlab-oauth": { host: token } }),
        _ => match Scheme::for_client(provider, requested, true) {
            Scheme::Bearer => json!({ "bearer": { host: token } }),
            Scheme::Basic { username } => {
                json!({ "http-basic": { host: { "username": username, "password": token } } })
            }
        },
    }
}

/// Composer's key for a host: its name, with the port when not the default.
fn composer_host(provider: &Provider) -> String {
    let host = provider.server.host_str().unwrap_or_default();
    match provider.server.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
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

    const BEARER_HOST: &str = "https://git.example.com:8443";

    fn bearer() -> Provider {
        provider(
            BEARER_HOST,
            &format!("keygate.{BEARER_HOST}.authtype\nbearer\0"),
        )
    }

    fn request(lines: &str) -> Credential {
        Credential::read(lines.as_bytes()).unwrap()
    }

    fn token() -> Secret {
        Secret::new("t")
    }

    /// A 2-hour token obtained now.
    fn record() -> TokenRecord {
        let now = unix_now();
        TokenRecord {
            obtained_at: now,
            expires_at: Some(now + 7200),
            ..crate::store::test_record(BEARER_HOST, "t")
        }
    }

    #[test]
    fn bearer_only_where_the_provider_wants_it_and_the_client_takes_it() {
        assert_eq!(Scheme::for_client(&bearer(), None, true), Scheme::Bearer);
        assert_eq!(
            Scheme::for_client(&bearer(), Some("alice"), false),
            Scheme::Basic {
                username: "alice".into()
            }
        );
        let basic = provider("https://git.example.com", "");
        assert_eq!(
            Scheme::for_client(&basic, None, true),
            Scheme::Basic {
                username: "oauth2".into()
            }
        );
    }

    #[test]
    fn user_names_come_from_presets_then_config_then_the_request() {
        let bitbucket = provider("https://bitbucket.org", "");
        assert_eq!(
            Scheme::for_client(&bitbucket, Some("alice"), false),
            Scheme::Basic {
                username: "x-token-auth".into()
            }
        );
        let configured = provider(
            "https://git.example.com",
            "keygate.https://git.example.com.username\nci-bot\0",
        );
        assert_eq!(
            Scheme::for_client(&configured, Some("alice"), false),
            Scheme::Basic {
                username: "ci-bot".into()
            }
        );
    }

    #[test]
    fn git_gets_a_password_unless_it_announces_authtype() {
        let basic = git_answer(
            &request("protocol=https\nhost=git.example.com\nusername=alice\n"),
            &bearer(),
            &record(),
        );
        assert_eq!(basic.username.as_deref(), Some("alice"));
        assert_eq!(basic.password, Some(token()));
        assert_eq!((basic.authtype, basic.credential), (None, None));
        assert!(basic.capability.is_empty() && basic.ephemeral.is_none());

        let announced = git_answer(
            &request("capability[]=authtype\nprotocol=https\nhost=git.example.com\n"),
            &bearer(),
            &record(),
        );
        assert_eq!(announced.authtype.as_deref(), Some("Bearer"));
        assert_eq!(announced.credential, Some(token()));
        assert_eq!(announced.capability, vec!["authtype".to_owned()]);
        assert_eq!(announced.ephemeral.as_deref(), Some("1"));
        assert_eq!((announced.username, announced.password), (None, None));
    }

    #[test]
    fn git_is_told_when_the_token_turns_stale_or_else_when_it_expires() {
        let fresh = record();
        let answer = git_answer(&request("protocol=https\n"), &bearer(), &fresh);
        // A 5-minute margin on a 2-hour token.
        let stale_at = fresh.expires_at.unwrap() - 300;
        assert_eq!(answer.password_expiry_utc, Some(stale_at.to_string()));

        // Served stale because a refresh failed: its real expiry.
        let now = unix_now();
        let stale = TokenRecord {
            obtained_at: now - 7100,
            expires_at: Some(now + 100),
            ..record()
        };
        let answer = git_answer(&request("protocol=https\n"), &bearer(), &stale);
        assert_eq!(answer.password_expiry_utc, Some((now + 100).to_string()));

        let forever = TokenRecord {
            expires_at: None,
            ..record()
        };
        let answer = git_answer(&request("protocol=https\n"), &bearer(), &forever);
        assert_eq!(answer.password_expiry_utc, None);
    }

    #[test]
    fn the_proxy_sends_bearer_or_basic_with_the_fixed_user_name() {
        assert_eq!(authorization(&bearer(), &token()).expose(), "Bearer t");
        let bitbucket = provider("https://bitbucket.org", "");
        let basic = authorization(&bitbucket, &token());
        let encoded = base64::engine::general_purpose::STANDARD.encode("x-token-auth:t");
        assert_eq!(basic.expose(), format!("Basic {encoded}"));
    }

    #[test]
    fn composer_gets_its_per_host_forms() {
        let github = provider("https://github.com", "");
        assert_eq!(
            composer_auth(&github, Some("u"), &token()),
            json!({"github-oauth": {"github.com": "t"}})
        );
        let bitbucket = provider("https://bitbucket.org", "");
        assert_eq!(
            composer_auth(&bitbucket, None, &token()),
            json!({"http-basic": {"bitbucket.org": {"username": "x-token-auth", "password": "t"}}})
        );
        let plain = provider("https://git.example.com", "");
        assert_eq!(
            composer_auth(&plain, Some("alice"), &token()),
            json!({"http-basic": {"git.example.com": {"username": "alice", "password": "t"}}})
        );
        assert_eq!(
            composer_auth(&bearer(), Some("u"), &token()),
            json!({"bearer": {"git.example.com:8443": "t"}})
        );
    }
}
