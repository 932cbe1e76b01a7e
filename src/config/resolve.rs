//! A URL's settings resolved into a [`Provider`]: git config first, then
//! the environment, then the client the packager baked in, with the forge
//! presets underneath.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use super::global::parse_bool;
use super::presets::PRESETS;
use super::{
    AuthScheme, CiIdentity, Client, ClientAuth, ClientIdSource, ConfigError, Endpoints, Exchange,
    GitConfig, Grant, IdTokenSource, Key, Policy, Provider, Redirect, baked, origin_of,
};
use crate::gitconfig::split_key;
use crate::secret::Secret;

static ENV_CLIENT_SECRET: OnceLock<Option<Secret>> = OnceLock::new();

/// Where a client secret may come from instead of the git config.
pub const CLIENT_SECRET_ENV: &str = "KEYGATE_CLIENT_SECRET";

/// Keeps `KEYGATE_CLIENT_SECRET`'s value, taken out of the process
/// environment first thing in `main` (see [`crate::sys::take_env_vars`]),
/// so no process keygate starts (git, a browser) inherits it.
pub fn keep_secret_from_env(value: Option<String>) {
    let _ = ENV_CLIENT_SECRET.set(value.map(Secret::new));
}

fn env_client_secret() -> Option<Secret> {
    match ENV_CLIENT_SECRET.get() {
        Some(taken) => taken.clone(),
        None => std::env::var(CLIENT_SECRET_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new),
    }
}

const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Provider {
    /// The provider for `url`, or `None` when keygate has neither config
    /// nor a usable preset for it: git should then try its next helper.
    pub fn resolve(config: &GitConfig, url: &Url) -> Result<Option<Self>, ConfigError> {
        Self::resolve_at(config, url, true, baked::for_url(url))
    }

    /// [`Provider::resolve`] with `baked` as the client the build carries
    /// for `url`; `follow` says whether a `tokensFrom` may be followed
    /// (once: the URL it names must have a login of its own).
    fn resolve_at(
        config: &GitConfig,
        url: &Url,
        follow: bool,
        baked: Option<&baked::Baked>,
    ) -> Result<Option<Self>, ConfigError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Ok(None);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let preset = PRESETS
            .iter()
            .find(|p| url.scheme() == "https" && p.host == host && url.port().is_none());
        if preset.is_none() && !config.has_section_for(url) {
            return Ok(None);
        }
        let values = config.for_url("keygate", url);
        // `values` holds git's lower-cased variable names.
        let get = |key: Key| {
            values
                .iter()
                .find(|(variable, _)| variable.eq_ignore_ascii_case(key.name()))
                .map(|(_, value)| value.as_str())
                .filter(|v| !v.is_empty())
        };

        if let Some(source) = get(Key::TokensFrom) {
            if !follow {
                return Err(invalid(Key::TokensFrom, source, SHARED_LOGIN));
            }
            return resolve_shared(config, source, get(Key::Username), get(Key::AuthType));
        }
        let (client_id, client_id_source) = match get(Key::ClientId) {
            Some(id) => (Some(id.to_owned()), ClientIdSource::Config),
            None => match std::env::var("KEYGATE_CLIENT_ID")
                .ok()
                .filter(|v| !v.is_empty())
            {
                Some(id) => (Some(id), ClientIdSource::Environment),
                None => (
                    baked.map(|b| b.client_id.to_owned()),
                    ClientIdSource::BakedIn,
                ),
            },
        };
        let client_id_source = match client_id {
            Some(_) => client_id_source,
            None => ClientIdSource::Unset,
        };
        let token_env = get(Key::TokenEnv).map(str::to_owned);
        let issuer = get(Key::Issuer).map(parse_issuer).transpose()?;
        // A token exchange needs no client at all (RFC 8693 §2.1).
        let id_token_grant =
            get(Key::Grant).is_some_and(|g| g == "token_exchange" || g == "jwt_bearer");
        // An issuer without a client id: keygate registers one (RFC 7591).
        if client_id.is_none() && token_env.is_none() && issuer.is_none() && !id_token_grant {
            tracing::debug!(%url, "no clientId, issuer or tokenEnv configured; not handling this host");
            return Ok(None);
        }
        let client_id = client_id.unwrap_or_default();
        let configured_secret = get(Key::ClientSecret).map(Secret::new);

        let url_value =
            |key: Key, preset_value: Option<&'static str>| match get(key).or(preset_value) {
                Some(raw) => parse_endpoint(key, raw).map(Some),
                None => Ok(None),
            };
        let auth_url = url_value(Key::AuthUrl, preset.map(|p| p.auth_url))?;
        let token_url = url_value(Key::TokenUrl, preset.map(|p| p.token_url))?;
        let device_url = url_value(Key::DeviceUrl, preset.and_then(|p| p.device_url))?;
        let revoke_url = url_value(Key::RevokeUrl, preset.and_then(|p| p.revoke_url))?;

        let scopes = get(Key::Scopes)
            .or(preset.map(|p| p.scopes))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let redirect = match get(Key::Redirect) {
            None => None,
            Some("loopback") => Some(Redirect::Loopback),
            Some("scheme") => Some(Redirect::Scheme),
            Some("device") => Some(Redirect::Device),
            Some("paste") => Some(Redirect::Paste),
            Some(other) => {
                return Err(invalid(
                    Key::Redirect,
                    other,
                    "loopback, scheme, device or paste",
                ));
            }
        };
        let env_secret = env_client_secret();
        let client_assertion = match get(Key::ClientAssertion) {
            None => false,
            Some("id_token") => true,
            Some(other) => return Err(invalid(Key::ClientAssertion, other, "id_token")),
        };
        let grant = match get(Key::Grant) {
            Some("code") => Grant::Code,
            Some("client_credentials") => Grant::ClientCredentials,
            Some("token_exchange") => Grant::TokenExchange,
            Some("jwt_bearer") => Grant::JwtBearer,
            None if client_assertion
                || ((configured_secret.is_some() || env_secret.is_some())
                    && auth_url.is_none()) =>
            {
                Grant::ClientCredentials
            }
            None => Grant::Code,
            Some(other) => {
                return Err(invalid(
                    Key::Grant,
                    other,
                    "code, client_credentials, token_exchange or jwt_bearer",
                ));
            }
        };
        if client_assertion && grant == Grant::Code {
            return Err(invalid(
                Key::ClientAssertion,
                "id_token",
                "unset with grant = code: a CI id token authenticates client_credentials, token_exchange or jwt_bearer",
            ));
        }
        if client_assertion && configured_secret.is_some() {
            return Err(invalid(
                Key::ClientAssertion,
                "id_token",
                "unset while clientSecret is set: the client authenticates with one or the other",
            ));
        }
        // The environment's secret is for CI's confidential clients: a
        // developer who exports it must not send it to every code-grant
        // host, presets included; a client asserting its CI identity
        // sends no secret at all. A baked secret goes only with its own
        // baked client id.
        let baked_secret = baked
            .filter(|_| client_id_source == ClientIdSource::BakedIn && !client_assertion)
            .and_then(|b| b.client_secret)
            .map(Secret::new);
        let client_secret = configured_secret
            .or_else(|| env_secret.filter(|_| grant != Grant::Code && !client_assertion))
            .or(baked_secret);
        let ci_identity = if grant.presents_id_token() || client_assertion {
            let source = match get(Key::IdToken) {
                None => IdTokenSource::Auto,
                Some(raw) => parse_id_token_source(raw)?,
            };
            Some(CiIdentity {
                source,
                audience: get(Key::IdTokenAudience).map(str::to_owned),
                client_assertion,
            })
        } else {
            None
        };
        let exchange = Exchange {
            audience: get(Key::Audience).map(str::to_owned),
            resource: get(Key::Resource).map(str::to_owned),
            subject_token_type: get(Key::SubjectTokenType).map(str::to_owned),
        };
        let auth_scheme = match get(Key::AuthType).map(str::to_ascii_lowercase).as_deref() {
            None | Some("basic") => AuthScheme::Basic,
            Some("bearer") => AuthScheme::Bearer,
            Some(other) => return Err(invalid(Key::AuthType, other, "basic or bearer")),
        };
        let seconds = |key: Key, default: Duration| match get(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| invalid(key, raw, "a whole number of seconds")),
        };

        // In the order they were always evaluated: the first invalid
        // value is the one reported.
        let redirect_url = get(Key::RedirectUrl)
            .map(str::to_owned)
            .or_else(|| preset.and_then(|p| p.redirect_url).map(str::to_owned));
        let username = get(Key::Username)
            .map(str::to_owned)
            .or(preset.map(|p| p.username.to_owned()));
        let refresh_margin = seconds(Key::RefreshMargin, DEFAULT_REFRESH_MARGIN)?;
        let login_timeout = seconds(Key::LoginTimeout, DEFAULT_LOGIN_TIMEOUT)?;
        let explicit_login_timeout = match get(Key::LoginTimeout) {
            Some(_) => Some(seconds(Key::LoginTimeout, DEFAULT_LOGIN_TIMEOUT)?),
            None => None,
        };
        let http_timeout = seconds(Key::Timeout, DEFAULT_HTTP_TIMEOUT)?;
        let client_auth = match get(Key::ClientAuth).map(str::to_ascii_lowercase).as_deref() {
            None => preset.map_or(ClientAuth::Basic, |p| p.client_auth),
            Some("basic") => ClientAuth::Basic,
            Some("post") => ClientAuth::Post,
            Some(other) => return Err(invalid(Key::ClientAuth, other, "basic or post")),
        };
        let qr = match get(Key::Qr) {
            Some(value) => {
                parse_bool(value).ok_or_else(|| invalid(Key::Qr, value, "true or false"))?
            }
            None => true,
        };

        Ok(Some(Self {
            server: origin_of(url),
            endpoints: Endpoints {
                auth_url,
                token_url,
                device_url,
                revoke_url,
                issuer,
            },
            client: Client {
                client_id,
                client_id_source,
                client_secret,
                client_auth,
                redirect,
                redirect_url,
                scopes,
                ci_identity,
                exchange,
            },
            policy: Policy {
                grant,
                refresh_margin,
                auth_scheme,
                username,
                login_timeout,
                explicit_login_timeout,
                http_timeout,
                token_env,
                qr,
            },
        }))
    }
}

/// What a `tokensFrom` must name.
const SHARED_LOGIN: &str =
    "an https:// URL keygate has a login of its own for (not another tokensFrom)";
const SHARED_LOGIN_NO_USER: &str =
    "the forge's URL without a user name: a shared login is the forge's default account";

/// The provider of the URL a host's `tokensFrom` names, handing out its
/// tokens under this host's own `username` and `authType` when set. One
/// step only: the URL named must have a login of its own.
fn resolve_shared(
    config: &GitConfig,
    source: &str,
    username: Option<&str>,
    auth_type: Option<&str>,
) -> Result<Option<Provider>, ConfigError> {
    let refused = || invalid(Key::TokensFrom, source, SHARED_LOGIN);
    let url = Url::parse(source).map_err(|_| refused())?;
    if crate::http::check_endpoint(&url).is_err() {
        return Err(refused());
    }
    // The account comes from the asking host's request, never from here:
    // `https://alice@forge` would silently hand out the default account's
    // tokens, so it is refused rather than half obeyed.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(Key::TokensFrom, source, SHARED_LOGIN_NO_USER));
    }
    let Some(mut provider) = Provider::resolve_at(config, &url, false, baked::for_url(&url))?
    else {
        return Err(refused());
    };
    if let Some(username) = username {
        provider.policy.username = Some(username.to_owned());
    }
    match auth_type.map(str::to_ascii_lowercase).as_deref() {
        None => {}
        Some("basic") => provider.policy.auth_scheme = AuthScheme::Basic,
        Some("bearer") => provider.policy.auth_scheme = AuthScheme::Bearer,
        Some(other) => return Err(invalid(Key::AuthType, other, "basic or bearer")),
    }
    Ok(Some(provider))
}

fn invalid(key: Key, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key: key.full_name(),
        value: value.to_owned(),
        expected,
    }
}

fn parse_endpoint(key: Key, raw: &str) -> Result<Url, ConfigError> {
    Url::parse(raw).map_err(|_| invalid(key, raw, "an absolute https:// URL"))
}

/// `auto`, `github`, `buildkite`, `env:NAME` or `file:PATH`.
fn parse_id_token_source(raw: &str) -> Result<IdTokenSource, ConfigError> {
    let expected = "auto, github, buildkite, env:NAME or file:PATH (an absolute path)";
    let source = match raw {
        "auto" => IdTokenSource::Auto,
        "github" => IdTokenSource::Github,
        "buildkite" => IdTokenSource::Buildkite,
        _ => match raw.split_once(':') {
            Some(("env", name))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                IdTokenSource::Env(name.to_owned())
            }
            // Absolute only: a relative one would be read from wherever
            // the caller runs (for git, the repository's working tree).
            Some(("file", path)) if Path::new(path).is_absolute() => {
                IdTokenSource::File(PathBuf::from(path))
            }
            _ => return Err(invalid(Key::IdToken, raw, expected)),
        },
    };
    Ok(source)
}

fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let expected = "an https:// URL (http only on loopback) without query or fragment";
    match Url::parse(raw) {
        Ok(url)
            if crate::http::check_endpoint(&url).is_ok()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Ok(raw.to_owned())
        }
        _ => Err(invalid(Key::Issuer, raw, expected)),
    }
}

/// A provider for every https origin keygate can serve: those with a
/// `keygate.<url>` section (resolved for that URL), and the preset hosts
/// once they have a client id. Wildcard hosts name no origin of their own.
pub fn configured_providers(config: &GitConfig) -> Vec<Provider> {
    let mut providers: Vec<Provider> = Vec::new();
    let configured = config.entries.iter().filter_map(|(key, _)| {
        let (section, subsection, _) = split_key(key)?;
        if !section.eq_ignore_ascii_case("keygate") {
            return None;
        }
        Url::parse(subsection?).ok()
    });
    let presets = PRESETS
        .iter()
        .filter_map(|p| Url::parse(&format!("https://{}/", p.host)).ok());
    for url in configured.chain(presets) {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() != "https" || host.contains('*') {
            continue;
        }
        if providers.iter().any(|p| p.server == origin_of(&url)) {
            continue;
        }
        // A host that shares another's login (tokensFrom) resolves to
        // that one's provider: listed once.
        if let Ok(Some(provider)) = Provider::resolve(config, &url)
            && !providers.iter().any(|p| p.server == provider.server)
        {
            providers.push(provider);
        }
    }
    providers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{config, url};

    #[test]
    fn a_host_sharing_a_login_resolves_to_that_login_with_its_own_user_name() {
        let config = GitConfig::parse_z(
            b"keygate.https://git.example.com.clientid\nforge-app\0\
              keygate.https://git.example.com.tokenurl\nhttps://git.example.com/token\0\
              keygate.https://registry.example.com.tokensfrom\nhttps://git.example.com\0\
              keygate.https://registry.example.com.username\nregistry-user\0\
              keygate.https://loop.example.com.tokensfrom\nhttps://registry.example.com\0\
              keygate.https://nowhere.example.com.tokensfrom\nhttps://unknown.example.com\0\
              keygate.https://someone.example.com.tokensfrom\nhttps://alice@git.example.com\0",
        );
        let resolve = |url: &str| Provider::resolve(&config, &Url::parse(url).unwrap());
        let shared = resolve("https://registry.example.com/v2/")
            .unwrap()
            .unwrap();
        assert_eq!(shared.server.as_str(), "https://git.example.com/");
        assert_eq!(shared.client.client_id, "forge-app");
        assert_eq!(shared.wire_username(None), "registry-user");
        let forge = resolve("https://git.example.com").unwrap().unwrap();
        assert_eq!(
            forge.wire_username(None),
            "oauth2",
            "the forge keeps its own"
        );
        // One step only, to a URL keygate knows, and without naming an
        // account it would not serve.
        for refused in [
            "https://loop.example.com",
            "https://nowhere.example.com",
            "https://someone.example.com",
        ] {
            assert!(
                matches!(resolve(refused), Err(ConfigError::Invalid { .. })),
                "{refused}"
            );
        }
        let listed = configured_providers(&config);
        let forge_entries = listed
            .iter()
            .filter(|p| p.server.as_str() == "https://git.example.com/")
            .count();
        assert_eq!(forge_entries, 1, "a shared login is listed once");
    }

    #[test]
    fn key_table_defaults_are_the_code_defaults() {
        let secs = |d: Duration| d.as_secs().to_string();
        assert_eq!(Key::RefreshMargin.default(), secs(DEFAULT_REFRESH_MARGIN));
        assert_eq!(Key::LoginTimeout.default(), secs(DEFAULT_LOGIN_TIMEOUT));
        assert_eq!(Key::Timeout.default(), secs(DEFAULT_HTTP_TIMEOUT));
    }

    #[test]
    fn unconfigured_host_is_not_handled() {
        let c = config(&[("keygate.https://h.example.clientid", "x")]);
        assert!(
            Provider::resolve(&c, &url("https://other.example/"))
                .unwrap()
                .is_none()
        );
    }

    const BAKED_GITHUB: baked::Baked = baked::Baked {
        url: "https://github.com",
        client_id: "Ov23-baked",
        client_secret: Some("baked-public-secret"),
    };

    #[test]
    fn a_baked_client_serves_a_preset_host_with_no_config() {
        let github = url("https://github.com/org/repo.git");
        assert!(
            Provider::resolve_at(&config(&[]), &github, true, None)
                .unwrap()
                .is_none()
        );
        let p = Provider::resolve_at(&config(&[]), &github, true, Some(&BAKED_GITHUB))
            .unwrap()
            .unwrap();
        assert_eq!(p.client.client_id, "Ov23-baked");
        assert_eq!(p.client.client_id_source, ClientIdSource::BakedIn);
        assert_eq!(
            p.client.client_secret.as_ref().map(Secret::expose),
            Some("baked-public-secret")
        );
        assert_eq!(p.client.client_auth, ClientAuth::Post);
        assert_eq!(p.policy.grant, Grant::Code);
    }

    #[test]
    fn config_overrides_a_baked_client_and_never_pairs_with_its_secret() {
        let github = url("https://github.com/org/repo.git");
        let c = config(&[("keygate.https://github.com.clientid", "mine")]);
        let p = Provider::resolve_at(&c, &github, true, Some(&BAKED_GITHUB))
            .unwrap()
            .unwrap();
        assert_eq!(p.client.client_id, "mine");
        assert_eq!(p.client.client_id_source, ClientIdSource::Config);
        // The baked secret belongs to the baked app, not to this one.
        assert!(p.client.client_secret.is_none());
        let c = config(&[
            ("keygate.https://github.com.clientid", "mine"),
            ("keygate.https://github.com.clientsecret", "my-secret"),
        ]);
        let p = Provider::resolve_at(&c, &github, true, Some(&BAKED_GITHUB))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.client.client_secret.as_ref().map(Secret::expose),
            Some("my-secret")
        );
    }

    #[test]
    fn a_baked_client_alone_does_not_make_keygate_handle_a_host() {
        let baked = baked::Baked {
            url: "https://git.example.com",
            client_id: "company-app",
            client_secret: Some("s"),
        };
        let repo = url("https://git.example.com/team/repo.git");
        // No preset, no section: no endpoints to use the client with.
        assert!(
            Provider::resolve_at(&config(&[]), &repo, true, Some(&baked))
                .unwrap()
                .is_none()
        );
        // With an issuer only, the baked id is used and its secret does not
        // turn the code grant into client credentials.
        let c = config(&[(
            "keygate.https://git.example.com.issuer",
            "https://sso.example.com",
        )]);
        let p = Provider::resolve_at(&c, &repo, true, Some(&baked))
            .unwrap()
            .unwrap();
        assert_eq!(p.client.client_id, "company-app");
        assert_eq!(p.client.client_id_source, ClientIdSource::BakedIn);
        assert_eq!(p.policy.grant, Grant::Code);
    }

    #[test]
    fn grant_is_inferred_from_secret_without_auth_endpoint() {
        let c = config(&[
            ("keygate.https://ci.example.clientid", "ci"),
            ("keygate.https://ci.example.clientsecret", "s"),
            (
                "keygate.https://ci.example.tokenurl",
                "https://ci.example/token",
            ),
        ]);
        let p = Provider::resolve(&c, &url("https://ci.example/"))
            .unwrap()
            .unwrap();
        assert_eq!(p.policy.grant, Grant::ClientCredentials);
    }

    #[test]
    fn ci_identity_keys_are_read_for_the_grants_that_present_an_id_token() {
        let resolve = |pairs: &[(&str, &str)]| {
            let mut all = vec![("keygate.https://ci.example.tokenurl", "https://a.example/t")];
            all.extend_from_slice(pairs);
            Provider::resolve(&config(&all), &url("https://ci.example/"))
        };
        // No client id needed for a token exchange.
        let p = resolve(&[("keygate.https://ci.example.grant", "token_exchange")])
            .unwrap()
            .unwrap();
        let identity = p.client.ci_identity.unwrap();
        assert_eq!(identity.source, IdTokenSource::Auto);
        assert!(!identity.client_assertion);
        // Absolute as the platform spells it: `/var/…` names no drive on
        // Windows, so it would depend on the current one.
        let absolute = if cfg!(windows) {
            r"C:\ci\tokens\ci"
        } else {
            "/var/run/secrets/tokens/ci"
        };
        let file = format!("file:{absolute}");
        for (raw, source) in [
            ("github", IdTokenSource::Github),
            ("buildkite", IdTokenSource::Buildkite),
            ("env:GITLAB_OIDC", IdTokenSource::Env("GITLAB_OIDC".into())),
            (file.as_str(), IdTokenSource::File(absolute.into())),
        ] {
            let p = resolve(&[
                ("keygate.https://ci.example.grant", "jwt_bearer"),
                ("keygate.https://ci.example.idtoken", raw),
                ("keygate.https://ci.example.idtokenaudience", "aud-1"),
            ])
            .unwrap()
            .unwrap();
            let identity = p.client.ci_identity.unwrap();
            assert_eq!(identity.source, source, "{raw}");
            assert_eq!(identity.audience.as_deref(), Some("aud-1"));
        }
        // A relative path would be read from wherever the caller runs:
        // for git, the repository's working tree, which is not the job's.
        for bad in [
            "env:",
            "env:A-B",
            "file:",
            "file:token",
            "file:./ci/token",
            "gitlab",
            "env",
        ] {
            let error = resolve(&[
                ("keygate.https://ci.example.grant", "token_exchange"),
                ("keygate.https://ci.example.idtoken", bad),
            ])
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("idToken") && error.contains("env:NAME"),
                "{error}"
            );
        }
        // The code grant reads none of them.
        let p = resolve(&[
            ("keygate.https://ci.example.clientid", "x"),
            ("keygate.https://ci.example.idtoken", "github"),
        ])
        .unwrap()
        .unwrap();
        assert!(p.client.ci_identity.is_none());
    }

    #[test]
    fn a_client_assertion_means_client_credentials_without_a_secret() {
        let resolve = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                ("keygate.https://ci.example.clientid", "app"),
                ("keygate.https://ci.example.clientassertion", "id_token"),
            ];
            all.extend_from_slice(pairs);
            Provider::resolve(&config(&all), &url("https://ci.example/"))
        };
        let p = resolve(&[]).unwrap().unwrap();
        assert_eq!(p.policy.grant, Grant::ClientCredentials);
        assert!(p.client.ci_identity.unwrap().client_assertion);
        assert!(p.client.client_secret.is_none());
        let with_secret = resolve(&[("keygate.https://ci.example.clientsecret", "s")]);
        assert!(
            with_secret
                .unwrap_err()
                .to_string()
                .contains("clientSecret")
        );
        let with_code = resolve(&[("keygate.https://ci.example.grant", "code")]);
        assert!(with_code.unwrap_err().to_string().contains("grant = code"));
        let odd = Provider::resolve(
            &config(&[
                ("keygate.https://ci.example.clientid", "app"),
                ("keygate.https://ci.example.clientassertion", "secret"),
            ]),
            &url("https://ci.example/"),
        );
        assert!(odd.unwrap_err().to_string().contains("id_token"));
    }

    #[test]
    fn rejects_bad_values_with_the_key_name() {
        let c = config(&[
            ("keygate.https://h.example.clientid", "x"),
            ("keygate.https://h.example.refreshmargin", "soon"),
        ]);
        let err = Provider::resolve(&c, &url("https://h.example/")).unwrap_err();
        assert!(
            err.to_string().contains("refreshMargin") || err.to_string().contains("refreshmargin")
        );
    }

    #[test]
    fn the_device_qr_code_is_on_unless_a_url_turns_it_off() {
        let c = config(&[
            ("keygate.https://h.example.clientid", "x"),
            ("keygate.https://h.example/quiet.qr", "off"),
            ("keygate.https://h.example/odd.qr", "maybe"),
        ]);
        let qr = |u: &str| Provider::resolve(&c, &url(u)).map(|p| p.unwrap().policy.qr);
        assert!(qr("https://h.example/repo").unwrap());
        assert!(!qr("https://h.example/quiet/repo").unwrap());
        let err = qr("https://h.example/odd/repo").unwrap_err().to_string();
        assert!(
            err.contains("keygate.<url>.qr") && err.contains("maybe"),
            "{err}"
        );
    }

    #[test]
    fn configured_origins_are_https_hosts_with_a_client() {
        let c = config(&[
            ("keygate.https://git.example.com:8443/org.clientid", "a"),
            ("keygate.https://*.example.net.clientid", "w"),
            ("keygate.http://plain.example.com.clientid", "p"),
            ("keygate.https://github.com.clientid", "g"),
        ]);
        let origins: Vec<String> = configured_providers(&c)
            .iter()
            .map(|p| p.server.to_string())
            .collect();
        assert_eq!(
            origins,
            ["https://git.example.com:8443/", "https://github.com/"]
        );
    }

    #[test]
    fn an_issuer_without_client_id_is_handled_and_checked() {
        let c = config(&[(
            "keygate.https://git.example.com.issuer",
            "https://auth.example.com/realm",
        )]);
        let p = Provider::resolve(&c, &url("https://git.example.com/r.git"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.endpoints.issuer.as_deref(),
            Some("https://auth.example.com/realm")
        );
        assert!(p.client.client_id.is_empty() && p.endpoints.token_url.is_none());
        for bad in [
            "http://auth.example.com",
            "not a url",
            "https://a.example/?x=1",
        ] {
            let c = config(&[("keygate.https://git.example.com.issuer", bad)]);
            let err = Provider::resolve(&c, &url("https://git.example.com/")).unwrap_err();
            assert!(err.to_string().contains("issuer"), "{err}");
        }
        let c = config(&[(
            "keygate.https://git.example.com.issuer",
            "http://127.0.0.1:8080",
        )]);
        assert!(Provider::resolve(&c, &url("https://git.example.com/")).is_ok());
    }
}
