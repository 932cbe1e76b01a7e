//! The forges whose endpoints keygate knows without configuration: what
//! each documents, and where a person registers the OAuth app it needs.

use url::Url;

use super::{ClientAuth, Key, origin_of, set_key_command};

pub(super) struct Preset {
    pub(super) host: &'static str,
    pub(super) auth_url: &'static str,
    pub(super) token_url: &'static str,
    pub(super) device_url: Option<&'static str>,
    pub(super) revoke_url: Option<&'static str>,
    pub(super) scopes: &'static str,
    pub(super) username: &'static str,
    /// A redirect the provider's app registration must name exactly.
    pub(super) redirect_url: Option<&'static str>,
    pub(super) client_auth: ClientAuth,
    /// Where a person registers the OAuth app keygate needs a client id of.
    register_at: &'static str,
}

/// What each forge documents, and keygate relies on:
///
/// - Bitbucket Cloud: consumers are confidential (key and secret, the
///   secret sent by HTTP Basic), and a `redirect_uri` must start with the
///   consumer's one callback URL, so an ephemeral loopback port never
///   matches: the preset uses a fixed port to register as the callback
///   (<https://support.atlassian.com/bitbucket-cloud/docs/use-oauth-on-bitbucket-cloud/>,
///   <https://developer.atlassian.com/cloud/bitbucket/oauth-2/>). Tokens go
///   to git as `x-token-auth`; no device grant, no revocation endpoint.
/// - GitHub: the client secret goes in the form body; it is needed for
///   the code exchange and for refreshing browser-flow tokens, not for
///   the device flow, which must be enabled in the app's settings; a
///   loopback callback `http://127.0.0.1/callback` accepts any port
///   (<https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>,
///   <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens>).
///   The git user name for app tokens is `x-access-token`.
/// - GitLab: a non-confidential application with PKCE; the device grant
///   since GitLab 17.1; `/oauth/revoke`; git user name `oauth2`
///   (<https://docs.gitlab.com/api/oauth2/>).
pub(super) const PRESETS: &[Preset] = &[
    Preset {
        host: "bitbucket.org",
        auth_url: "https://bitbucket.org/site/oauth2/authorize",
        token_url: "https://bitbucket.org/site/oauth2/access_token",
        device_url: None,
        revoke_url: None,
        scopes: "repository repository:write",
        username: "x-token-auth",
        redirect_url: Some(BITBUCKET_REDIRECT),
        client_auth: ClientAuth::Basic,
        register_at: "create an OAuth consumer (Bitbucket workspace settings → OAuth consumers) with the callback URL http://127.0.0.1:7771/callback and set its key and secret",
    },
    Preset {
        host: "github.com",
        auth_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        device_url: Some("https://github.com/login/device/code"),
        revoke_url: None,
        scopes: "repo",
        username: "x-access-token",
        redirect_url: None,
        client_auth: ClientAuth::Post,
        register_at: "register an OAuth app or GitHub App at https://github.com/settings/developers with the callback URL http://127.0.0.1/callback (tick \"Enable Device Flow\" for SSH sessions) and set its client id and secret",
    },
    Preset {
        host: "gitlab.com",
        auth_url: "https://gitlab.com/oauth/authorize",
        token_url: "https://gitlab.com/oauth/token",
        device_url: Some("https://gitlab.com/oauth/authorize_device"),
        revoke_url: Some("https://gitlab.com/oauth/revoke"),
        scopes: "read_repository write_repository",
        username: "oauth2",
        redirect_url: None,
        client_auth: ClientAuth::Basic,
        register_at: "create a non-confidential application at https://gitlab.com/-/user_settings/applications with the redirect URI http://127.0.0.1/callback and the scopes read_repository write_repository",
    },
];

/// Bitbucket's registered callback: a fixed loopback port, because
/// Bitbucket matches a `redirect_uri` by prefix, port included.
pub const BITBUCKET_REDIRECT: &str = "http://127.0.0.1:7771/callback";

/// Where to register the OAuth app for a preset host (`https://github.com`),
/// for errors that find no client id.
pub fn registration_hint(server: &str) -> Option<&'static str> {
    let url = Url::parse(server).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    PRESETS
        .iter()
        .find(|p| url.scheme() == "https" && p.host == host && url.port().is_none())
        .map(|p| p.register_at)
}

/// The error line for a URL keygate has no client for: where to register
/// one when it is a preset host, and which key to set.
pub fn unconfigured_message(url: &Url) -> String {
    let origin = origin_of(url);
    let server = origin.as_str().trim_end_matches('/');
    match registration_hint(server) {
        Some(hint) => format!(
            "keygate has no client id for {server}; {hint}, then `{}`",
            set_key_command(server, Key::ClientId, "<id>")
        ),
        None => format!(
            "keygate has no configuration for {server}; set at least `{}`",
            set_key_command(server, Key::ClientId, "<id>")
        ),
    }
}

/// Whether keygate has built-in endpoints for `url`'s host.
pub fn has_preset(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    url.scheme() == "https" && url.port().is_none() && PRESETS.iter().any(|p| p.host == host)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::testing::{config, url};
    use crate::config::{Grant, Provider};

    #[test]
    fn preset_fills_endpoints_and_username() {
        let c = config(&[("keygate.https://bitbucket.org.clientid", "abc")]);
        let p = Provider::resolve(&c, &url("https://bitbucket.org/team/repo.git"))
            .unwrap()
            .unwrap();
        assert_eq!(p.policy.username.as_deref(), Some("x-token-auth"));
        assert_eq!(p.server.as_str(), "https://bitbucket.org/");
        assert!(
            p.endpoints
                .token_url
                .unwrap()
                .as_str()
                .contains("access_token")
        );
        assert_eq!(p.policy.grant, Grant::Code);
    }

    #[test]
    fn presets_follow_each_forge() {
        let resolve = |host: &str| {
            let c = config(&[(&format!("keygate.https://{host}.clientid") as &str, "id")]);
            Provider::resolve(&c, &url(&format!("https://{host}/o/r.git")))
                .unwrap()
                .unwrap()
        };
        let bitbucket = resolve("bitbucket.org");
        assert_eq!(
            bitbucket.client.redirect_url.as_deref(),
            Some(BITBUCKET_REDIRECT)
        );
        assert_eq!(bitbucket.client.client_auth, ClientAuth::Basic);
        assert!(bitbucket.endpoints.device_url.is_none());
        let github = resolve("github.com");
        assert_eq!(github.client.client_auth, ClientAuth::Post);
        assert_eq!(github.policy.username.as_deref(), Some("x-access-token"));
        assert!(github.client.redirect_url.is_none(), "any loopback port");
        assert!(github.endpoints.device_url.is_some());
        let gitlab = resolve("gitlab.com");
        assert_eq!(gitlab.policy.username.as_deref(), Some("oauth2"));
        assert!(gitlab.endpoints.revoke_url.is_some() && gitlab.endpoints.device_url.is_some());
        assert_eq!(gitlab.policy.explicit_login_timeout, None);

        // Config still wins over the preset.
        let c = config(&[
            ("keygate.https://bitbucket.org.clientid", "id"),
            (
                "keygate.https://bitbucket.org.redirecturl",
                "http://127.0.0.1:9999/cb",
            ),
            ("keygate.https://bitbucket.org.logintimeout", "60"),
        ]);
        let p = Provider::resolve(&c, &url("https://bitbucket.org/"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.client.redirect_url.as_deref(),
            Some("http://127.0.0.1:9999/cb")
        );
        assert_eq!(
            p.policy.explicit_login_timeout,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn a_preset_host_without_a_client_id_says_where_to_register() {
        let said = unconfigured_message(&url("https://github.com/org/repo.git"));
        assert!(
            said.contains("https://github.com/settings/developers"),
            "{said}"
        );
        assert!(
            said.contains("keygate.https://github.com.clientId"),
            "{said}"
        );
        let said = unconfigured_message(&url("https://bitbucket.org/team/repo.git"));
        assert!(said.contains("http://127.0.0.1:7771/callback"), "{said}");
        let said = unconfigured_message(&url("https://git.example.com/r.git"));
        assert!(
            said.contains("no configuration for https://git.example.com"),
            "{said}"
        );
        assert!(registration_hint("https://gitlab.com").is_some());
        assert!(registration_hint("https://gitlab.com:8443").is_none());
    }
}
