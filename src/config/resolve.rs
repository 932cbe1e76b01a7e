//! keygate's settings: git config, read once, matched against a URL the
//! way git matches `http.<url>.*`, with built-in presets underneath.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::gitconfig::split_key;
use crate::secret::Secret;

use super::baked;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Git(#[from] crate::gitconfig::GitConfigError),
    #[error("invalid value {value:?} for {key}: {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
}

pub use crate::gitconfig::GitConfig;

/// Declares [`Key`] and its documentation in one place: a key cannot be
/// read (reads take a `Key`) without a line in keygate-config(5), which is
/// rendered from [`Key::ALL`].
macro_rules! keys {
    ($($variant:ident: $scope:ident $name:literal, default $default:literal, $meaning:literal;)*) => {
        /// Every git config key keygate reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Key {
            $($variant,)*
        }

        impl Key {
            /// Every key, in the order the manual lists them.
            pub const ALL: &[Key] = &[$(Key::$variant,)*];

            /// The variable as documented (`clientId`); git compares it
            /// without regard to case.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Key::$variant => $name,)*
                }
            }

            /// Whether it is `keygate.<url>.NAME` (matched against the URL)
            /// or plain `keygate.NAME`.
            pub const fn per_url(self) -> bool {
                match self {
                    $(Key::$variant => matches!(KeyScope::$scope, KeyScope::Url),)*
                }
            }

            /// The value in force when the key is unset, in words; empty
            /// when there is none.
            pub const fn default(self) -> &'static str {
                match self {
                    $(Key::$variant => $default,)*
                }
            }

            /// What it means, in a sentence or two of plain text.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Key::$variant => $meaning,)*
                }
            }
        }
    };
}

enum KeyScope {
    Url,
    Global,
}

keys! {
    Issuer: Url "issuer", default "",
        "Issuer URL (https; http only on loopback). Endpoints not set by their own keys come from its RFC 8414 or OpenID Connect metadata, whose issuer must match exactly; the metadata is cached a day.";
    ClientId: Url "clientId", default "env KEYGATE_CLIENT_ID, else one baked into the build by its packager",
        "OAuth client id. Unset with an issuer whose metadata has a registration endpoint: keygate registers a client (RFC 7591) and keeps it in the token store.";
    ClientSecret: Url "clientSecret", default "env KEYGATE_CLIENT_SECRET (client-credentials grant only), else the one baked in with the client id",
        "Client secret, for confidential and CI clients.";
    AuthUrl: Url "authUrl", default "the preset's, else the issuer's metadata",
        "Authorization endpoint.";
    TokenUrl: Url "tokenUrl", default "the preset's, else the issuer's metadata",
        "Token endpoint.";
    DeviceUrl: Url "deviceUrl", default "the preset's, else the issuer's metadata",
        "Device authorization endpoint (RFC 8628).";
    RevokeUrl: Url "revokeUrl", default "the preset's, else the issuer's metadata",
        "Revocation endpoint (RFC 7009), used by keygate logout.";
    Scopes: Url "scopes", default "the preset's, else none",
        "Space-separated scopes to ask for.";
    Redirect: Url "redirect", default "loopback; on a terminal where no browser opens, device when a device endpoint is known, else paste",
        "How the authorization comes back: loopback, scheme, device, or paste (keygate prints the authorization URL and asks on the terminal for the address the browser ends on; the loopback listener keeps waiting, so an SSH port forward finishes the login without pasting).";
    Grant: Url "grant", default "client_credentials when there is a secret (or a client assertion) and no authorization endpoint, else code",
        "The OAuth grant: code, client_credentials, token_exchange (RFC 8693) or jwt_bearer (RFC 7523), the last two presenting the CI job's id token (see idToken).";
    AuthType: Url "authType", default "basic",
        "How git sends the token: basic (user name and the token as password) or bearer (an Authorization: Bearer header, git 2.46 or later).";
    RedirectUrl: Url "redirectUrl", default "http://127.0.0.1/callback",
        "Redirect URI. Without a port a free ephemeral one is taken and the path kept; with redirect = scheme, a private-use URI such as com.example.keygate:/callback.";
    Username: Url "username", default "the preset's, else the one git asks for, else oauth2",
        "User name handed to git (and to Docker's clients) with the token.";
    TokensFrom: Url "tokensFrom", default "",
        "Another URL whose login this host shares: its client, endpoints, scopes and tokens, so one login and one refresh serve both (a container registry and its forge: https://gitlab.com for registry.gitlab.com). The forge's token is then sent to this host. Only this host's username and authType still apply.";
    RefreshMargin: Url "refreshMargin", default "300",
        "Seconds: a token counts as stale when less than the smaller of this and a quarter of its lifetime is left.";
    LoginTimeout: Url "loginTimeout", default "300",
        "Seconds to wait for the browser's redirect (or the address pasted on the terminal).";
    Timeout: Url "timeout", default "30",
        "Seconds for each request to the OAuth server.";
    ClientAuth: Url "clientAuth", default "basic, or the preset's",
        "How a client secret is sent: basic (HTTP Basic) or post (in the form body).";
    ClientAssertion: Url "clientAssertion", default "",
        "id_token: the client authenticates with the CI job's id token (RFC 7523 client assertion, as an Entra federated credential takes it) instead of a client secret.";
    IdToken: Url "idToken", default "auto",
        "Where the CI job's OpenID Connect id token comes from, for grant = token_exchange or jwt_bearer and clientAssertion = id_token: auto (detect GitHub or Forgejo Actions, Bitbucket Pipelines, CircleCI, Buildkite, or KEYGATE_ID_TOKEN), github, buildkite, env:NAME or file:PATH (an absolute path, read afresh each time). Fetched anew for each exchange, never stored.";
    IdTokenAudience: Url "idTokenAudience", default "the origin of the issuer, else of the token endpoint",
        "The audience asked of a CI that lets the job choose it (GitHub and Forgejo Actions, Buildkite): what the server's trust policy expects in the id token's aud.";
    Audience: Url "audience", default "",
        "The audience parameter of a token exchange (RFC 8693): the service the new token is for.";
    Resource: Url "resource", default "",
        "The resource parameter (RFC 8707) sent with a token exchange, jwt_bearer or client-assertion request.";
    SubjectTokenType: Url "subjectTokenType", default "urn:ietf:params:oauth:token-type:id_token",
        "The subject_token_type of a token exchange; some servers want urn:ietf:params:oauth:token-type:jwt.";
    TokenEnv: Url "tokenEnv", default "",
        "Name of an environment variable holding a ready token (such as CI_JOB_TOKEN): served as is, never stored.";
    Qr: Url "qr", default "true",
        "Whether the device grant also draws its verification URL (and the paste prompt its authorization URL) as a QR code, for a phone to scan. Only on a terminal wide enough, never when CI is set.";
    Store: Global "store", default "auto",
        "Where tokens are kept: auto, keychain or file. The environment variable KEYGATE_STORE overrides it.";
    KernelCache: Global "kernelCache", default "true",
        "Whether fresh access tokens are cached in the kernel's per-user keyring in front of the Secret Service (Linux). KEYGATE_KERNEL_CACHE=on or off overrides it.";
}

impl Key {
    /// The key as a person writes it: `keygate.<url>.clientId`,
    /// `keygate.store`.
    pub fn full_name(self) -> String {
        if self.per_url() {
            format!("keygate.<url>.{}", self.name())
        } else {
            format!("keygate.{}", self.name())
        }
    }
}

/// URL-matched reading, the way `git config --get-urlmatch` works.
impl GitConfig {
    /// Every variable of `section` that applies to `url`, each taken from
    /// the most specific matching `section.<url>.variable`, as
    /// `git config --get-urlmatch section url` would list them.
    pub fn for_url(&self, section: &str, url: &Url) -> HashMap<String, String> {
        let mut best: HashMap<String, (Specificity, String)> = HashMap::new();
        for (key, value) in &self.entries {
            let Some((s, subsection, variable)) = split_key(key) else {
                continue;
            };
            if !s.eq_ignore_ascii_case(section) {
                continue;
            }
            let specificity = match subsection {
                None => Specificity::default(),
                Some(pattern) => match match_url(pattern, url) {
                    Some(specificity) => specificity,
                    None => continue,
                },
            };
            let variable = variable.to_ascii_lowercase();
            match best.get(&variable) {
                Some((current, _)) if *current > specificity => {}
                _ => {
                    best.insert(variable, (specificity, value.clone()));
                }
            }
        }
        best.into_iter().map(|(k, (_, v))| (k, v)).collect()
    }

    /// Whether any `keygate.<url>.*` section could apply to this origin.
    fn has_section_for(&self, url: &Url) -> bool {
        self.entries.iter().any(|(key, _)| {
            split_key(key).is_some_and(|(s, sub, _)| {
                s.eq_ignore_ascii_case("keygate")
                    && sub.is_some_and(|pattern| match_url(pattern, url).is_some())
            })
        })
    }
}

/// Whether a config URL (`credential.<pattern>.*`) applies to `url`, as
/// git's urlmatch decides: `keygate doctor` lists the helpers git runs.
pub(crate) fn url_matches(pattern: &str, url: &Url) -> bool {
    match_url(pattern, url).is_some()
}

/// The subsection of the `section.<pattern>` whose keys win for `url` (the
/// most specific; the later one on a tie), for `keygate doctor` to name.
pub(crate) fn winning_subsection(config: &GitConfig, section: &str, url: &Url) -> Option<String> {
    let mut best: Option<(Specificity, &str)> = None;
    for (key, _) in &config.entries {
        let Some((s, Some(pattern), _)) = split_key(key) else {
            continue;
        };
        if !s.eq_ignore_ascii_case(section) {
            continue;
        }
        if let Some(specificity) = match_url(pattern, url)
            && best.is_none_or(|(current, _)| specificity >= current)
        {
            best = Some((specificity, pattern));
        }
    }
    best.map(|(_, pattern)| pattern.to_owned())
}

/// Ordered as git's urlmatch ranks candidates: host match, then path
/// length, then whether a user name matched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Specificity {
    host_exact: bool,
    host_len: usize,
    path_len: usize,
    user_matched: bool,
}

/// Matches a config URL (`https://*.example.com:8443/org`) against a
/// request URL: scheme and port must agree, host exactly or by `*` per
/// label, path as a prefix at a `/` boundary, user only if given.
pub(super) fn match_url(pattern: &str, url: &Url) -> Option<Specificity> {
    let pattern = Url::parse(pattern).ok()?;
    if pattern.scheme() != url.scheme() {
        return None;
    }
    if pattern.port_or_known_default() != url.port_or_known_default() {
        return None;
    }
    let user_matched = if pattern.username().is_empty() {
        false
    } else if pattern.username() == url.username() {
        true
    } else {
        return None;
    };
    let pattern_host = pattern.host_str()?;
    let host = url.host_str()?;
    let host_exact = pattern_host.eq_ignore_ascii_case(host);
    if !host_exact {
        let pattern_labels: Vec<&str> = pattern_host.split('.').collect();
        let labels: Vec<&str> = host.split('.').collect();
        if pattern_labels.len() != labels.len()
            || !pattern_labels
                .iter()
                .zip(&labels)
                .all(|(p, l)| *p == "*" || p.eq_ignore_ascii_case(l))
        {
            return None;
        }
    }
    let pattern_path = pattern.path().trim_end_matches('/');
    let path = url.path();
    let path_matches = pattern_path.is_empty()
        || path == pattern_path
        || path
            .strip_prefix(pattern_path)
            .is_some_and(|rest| rest.starts_with('/'));
    if !path_matches {
        return None;
    }
    Some(Specificity {
        host_exact,
        host_len: pattern_host.len(),
        path_len: pattern_path.len(),
        user_matched,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    Loopback,
    Scheme,
    Device,
    /// Loopback, with the address the browser ends on also taken from the
    /// terminal: for a browser on another machine.
    Paste,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Code,
    ClientCredentials,
    /// RFC 8693: the CI job's id token is the subject token.
    TokenExchange,
    /// RFC 7523 §2.1: the CI job's id token is the authorization grant.
    JwtBearer,
}

impl Grant {
    /// As `keygate.<url>.grant` spells it, and records and reports name it.
    pub const fn name(self) -> &'static str {
        match self {
            Grant::Code => "code",
            Grant::ClientCredentials => "client_credentials",
            Grant::TokenExchange => "token_exchange",
            Grant::JwtBearer => "jwt_bearer",
        }
    }

    /// Whether the grant itself presents the CI job's id token.
    pub const fn presents_id_token(self) -> bool {
        matches!(self, Grant::TokenExchange | Grant::JwtBearer)
    }
}

/// RFC 8693's token type for an OpenID Connect id token, the default
/// `subject_token_type`.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// Where the CI job's id token comes from (`keygate.<url>.idToken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenSource {
    /// Whichever CI the environment shows.
    Auto,
    /// GitHub Actions (and Forgejo Actions, which copies its interface).
    Github,
    /// `buildkite-agent oidc request-token`.
    Buildkite,
    /// A variable the CI fills.
    Env(String),
    /// A file, read afresh on each use (a projected service-account token).
    File(PathBuf),
}

/// The CI identity a grant or the client's authentication presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiIdentity {
    pub source: IdTokenSource,
    /// `idTokenAudience`, for CIs that let the job choose it.
    pub audience: Option<String>,
    /// `clientAssertion = id_token`: the id token authenticates the
    /// client (RFC 7523 §2.2) rather than being the grant.
    pub client_assertion: bool,
}

/// What a token exchange (RFC 8693) asks for besides the subject token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub audience: Option<String>,
    pub resource: Option<String>,
    /// `None`: [`ID_TOKEN_TYPE`].
    pub subject_token_type: Option<String>,
}

/// How the token goes to the server: `Authorization: Basic user:token`
/// works everywhere git does; `Bearer` needs git ≥ 2.46 and a server that
/// takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Basic,
    Bearer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Auto,
    Keychain,
    File,
}

/// Where tokens are kept: `keygate.store` (or `KEYGATE_STORE`), and
/// whether fresh access tokens may also be cached in the kernel's
/// per-user keyring in front of the keychain (`keygate.kernelCache`, or
/// `KEYGATE_KERNEL_CACHE`; on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreChoice {
    pub kind: StoreKind,
    pub kernel_cache: bool,
}

/// Everything keygate knows about one OAuth server, for one origin.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The origin the accounts belong to: `https://host[:port]`.
    pub server: Url,
    /// Where the OAuth server is.
    pub endpoints: Endpoints,
    /// Who keygate is to the OAuth server.
    pub client: Client,
    /// How keygate gets, keeps and hands out tokens.
    pub policy: Policy,
}

/// Where the OAuth server is: configured, from a preset, or (for those
/// left out) from the issuer's metadata.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub auth_url: Option<Url>,
    pub token_url: Option<Url>,
    pub device_url: Option<Url>,
    pub revoke_url: Option<Url>,
    /// `keygate.<url>.issuer`: endpoints not configured come from its
    /// RFC 8414 / OIDC metadata, fetched only when the network is needed.
    /// Kept as written: the metadata must name exactly this issuer.
    pub issuer: Option<String>,
}

/// The OAuth client keygate is: what its app registration holds and
/// what it asks the server for.
#[derive(Debug, Clone)]
pub struct Client {
    /// Empty when only `tokenEnv` is configured.
    pub client_id: String,
    /// Where `client_id` came from, for `keygate status` and `doctor`.
    pub client_id_source: ClientIdSource,
    pub client_secret: Option<Secret>,
    /// How a confidential client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// `None` when not configured: keygate then picks loopback, or the
    /// device grant on a machine without a display.
    pub redirect: Option<Redirect>,
    pub redirect_url: Option<String>,
    pub scopes: Vec<String>,
    /// The CI job's id token, when the grant or the client's
    /// authentication presents one; `None` otherwise.
    pub ci_identity: Option<CiIdentity>,
    pub exchange: Exchange,
}

/// How keygate gets a token, when it renews it, how long it waits, and
/// how it hands the token to git.
#[derive(Debug, Clone)]
pub struct Policy {
    pub grant: Grant,
    pub refresh_margin: Duration,
    pub auth_scheme: AuthScheme,
    /// The user name handed to git with the token.
    pub username: Option<String>,
    pub login_timeout: Duration,
    /// `loginTimeout` when the user set it: a device login then stops
    /// there, else when its code expires.
    pub explicit_login_timeout: Option<Duration>,
    /// Bound on each request to the OAuth server.
    pub http_timeout: Duration,
    /// An environment variable that holds a ready token (CI systems that
    /// mint their own): used as is, never stored.
    pub token_env: Option<String>,
    /// `qr`: whether the device grant may draw its URL as a QR code.
    pub qr: bool,
}

/// Where a client id came from: the person's git config wins over the
/// environment, which wins over what the packager baked in; a client
/// keygate registered at an issuer (RFC 7591) is kept in the token store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIdSource {
    Config,
    Environment,
    BakedIn,
    Registered,
    /// None yet: only `tokenEnv`, or an issuer keygate will register at.
    Unset,
}

impl ClientIdSource {
    /// In words, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            ClientIdSource::Config => "git config",
            ClientIdSource::Environment => "KEYGATE_CLIENT_ID",
            ClientIdSource::BakedIn => "baked into this build by its packager",
            ClientIdSource::Registered => "registered at the issuer, kept in the token store",
            ClientIdSource::Unset => "none",
        }
    }

    /// In one word, as `--json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ClientIdSource::Config => "config",
            ClientIdSource::Environment => "environment",
            ClientIdSource::BakedIn => "baked-in",
            ClientIdSource::Registered => "registered",
            ClientIdSource::Unset => "unset",
        }
    }
}

/// RFC 6749 §2.3.1: HTTP Basic is the one servers must support; some
/// want the secret in the form body instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

struct Preset {
    host: &'static str,
    auth_url: &'static str,
    token_url: &'static str,
    device_url: Option<&'static str>,
    revoke_url: Option<&'static str>,
    scopes: &'static str,
    username: &'static str,
    /// A redirect the provider's app registration must name exactly.
    redirect_url: Option<&'static str>,
    client_auth: ClientAuth,
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
const PRESETS: &[Preset] = &[
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

/// The command that sets `keygate.<server>.<key>` to what a person fills in
/// for `blank`, quoted for the shell: `server` comes from a URL, whose host
/// may hold `$(…)`.
pub fn set_key_command(server: &str, key: Key, blank: &str) -> String {
    crate::text::git_config_command(&[
        format!("keygate.{server}.{}", key.name()).as_str().into(),
        crate::text::Word::Blank(blank),
    ])
}

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

/// The origin (`scheme://host[:port]`) of a URL, which accounts are kept under.
pub fn origin_of(url: &Url) -> Url {
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    // Cannot fail for http(s) URLs, the only ones resolved here.
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    origin
}

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

/// Whether keygate has built-in endpoints for `url`'s host.
pub fn has_preset(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    url.scheme() == "https" && url.port().is_none() && PRESETS.iter().any(|p| p.host == host)
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

/// The user name keygate answers when neither config nor preset names one
/// (GitLab's choice, accepted by most servers that take a token as
/// password).
const FALLBACK_USERNAME: &str = "oauth2";

impl Provider {
    /// The user name that goes with the token: the server's fixed one
    /// (`x-token-auth`), else the one asked for, else a common default.
    pub fn wire_username(&self, requested: Option<&str>) -> String {
        self.policy
            .username
            .as_deref()
            .or(requested.filter(|u| !u.is_empty()))
            .unwrap_or(FALLBACK_USERNAME)
            .to_owned()
    }
}

/// CA files for the OAuth endpoints: `http.<url>.sslCAInfo` matched
/// against the token endpoint, as git would for a request there.
pub fn oauth_ca_files(config: &GitConfig, provider: &Provider) -> Vec<PathBuf> {
    let issuer = provider
        .endpoints
        .issuer
        .as_deref()
        .and_then(|i| Url::parse(i).ok());
    let target = provider
        .endpoints
        .token_url
        .as_ref()
        .or(issuer.as_ref())
        .unwrap_or(&provider.server);
    ca_files_for(config, target)
}

/// The CA files git is told to trust for `url` (`http.<url>.sslCAInfo`).
pub fn ca_files_for(config: &GitConfig, url: &Url) -> Vec<PathBuf> {
    config
        .for_url("http", url)
        .remove("sslcainfo")
        .map(PathBuf::from)
        .into_iter()
        .collect()
}

/// `keygate.store`, overridden by `KEYGATE_STORE`.
pub fn store_choice(config: &GitConfig) -> Result<StoreChoice, ConfigError> {
    let from_env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let store = from_env("KEYGATE_STORE");
    let kind = match store
        .as_deref()
        .or(config.plain("keygate", Key::Store.name()))
    {
        None | Some("auto") => StoreKind::Auto,
        Some("keychain") => StoreKind::Keychain,
        Some("file") => StoreKind::File,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: Key::Store.full_name(),
                value: other.to_owned(),
                expected: "auto, keychain or file",
            });
        }
    };
    let cache = from_env("KEYGATE_KERNEL_CACHE");
    let kernel_cache = match cache.as_deref() {
        Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
            key: "KEYGATE_KERNEL_CACHE".to_owned(),
            value: value.to_owned(),
            expected: "on or off",
        })?,
        None => match config.plain("keygate", Key::KernelCache.name()) {
            Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
                key: Key::KernelCache.full_name(),
                value: value.to_owned(),
                expected: "true or false",
            })?,
            None => true,
        },
    };
    Ok(StoreChoice { kind, kernel_cache })
}

/// A boolean as git spells them.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

/// git's `credential.interactive` (2.46+): `false` or `never` forbid
/// asking a person.
pub fn git_forbids_interaction(config: &GitConfig) -> bool {
    config.plain("credential", "interactive").is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "off" | "0" | "never"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_sharing_a_login_resolves_to_that_login_with_its_own_user_name() {
        let config = GitConfig::parse_z(
            b"keygate.https://git.example.com.clientid\nforge-app\0\
              keygate.https://git.example.com.tokenurl\nhttps://git.example.com/token\0\
              keygate.https://registry.example.com.tokensfrom\nhttps://git.example.com\0\
              keygate.https://registry.example.com.username\nregistry-user\0\
              keygate.https://loop.example.com.tokensfrom\nhttps://registry.example.com\0\
              keygate.https://nowhere.example.com.tokensfrom\nhttps://unknown.example.com\0",
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
        // One step only, and to a URL keygate knows.
        for refused in ["https://loop.example.com", "https://nowhere.example.com"] {
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

    /// keygate-config(5) is rendered from `Key`, so it documents every key
    /// read only if every read goes through `Key`. The compiler holds
    /// `Provider::resolve` and `store_choice` to that (their lookups take a
    /// `Key`); this holds the rest of the source to it: no `keygate.*`
    /// variable is read by a string of its own.
    #[test]
    fn keygate_keys_are_read_only_through_key() {
        fn sources(dir: &std::path::Path, files: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, files);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        assert!(files.len() > 10, "found the sources");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Tests may read whatever they like.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // One spelling of the path on every platform (Windows under Wine too).
            let name = file
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string()
                .replace('\\', "/");
            assert!(
                !code.contains(r#"plain("keygate", ""#),
                "{name}: reads a keygate key by name; add it to `Key` and read it through that"
            );
            let url_reads = code.matches(r#"for_url("keygate""#).count();
            let allowed = match name.as_str() {
                // Provider::resolve, whose lookup takes a `Key`.
                "src/config/resolve.rs" => 1,
                // setup compares what it is about to write (`Key`s) with
                // what is there.
                "src/commands/setup.rs" => 1,
                _ => 0,
            };
            assert_eq!(
                url_reads, allowed,
                "{name}: reads keygate.<url>.* outside `Key`"
            );
            if name == "src/config/resolve.rs" {
                assert!(!code.contains(r#"get(""#), "{name}: a lookup by string");
            }
        }
    }

    #[test]
    fn key_table_defaults_are_the_code_defaults() {
        let secs = |d: Duration| d.as_secs().to_string();
        assert_eq!(Key::RefreshMargin.default(), secs(DEFAULT_REFRESH_MARGIN));
        assert_eq!(Key::LoginTimeout.default(), secs(DEFAULT_LOGIN_TIMEOUT));
        assert_eq!(Key::Timeout.default(), secs(DEFAULT_HTTP_TIMEOUT));
        // What `store_choice` answers with nothing configured.
        let choice = store_choice(&GitConfig::default());
        if std::env::var_os("KEYGATE_STORE").is_none()
            && std::env::var_os("KEYGATE_KERNEL_CACHE").is_none()
        {
            let choice = choice.unwrap();
            assert_eq!(Key::Store.default(), "auto");
            assert_eq!(choice.kind, StoreKind::Auto);
            assert_eq!(Key::KernelCache.default(), choice.kernel_cache.to_string());
        }
    }

    #[test]
    fn key_names_are_unique_and_every_one_has_a_meaning() {
        for (i, key) in Key::ALL.iter().enumerate() {
            assert!(!key.meaning().is_empty(), "{key:?}");
            assert!(
                Key::ALL[..i]
                    .iter()
                    .all(|other| !other.name().eq_ignore_ascii_case(key.name())),
                "{key:?} twice"
            );
        }
        assert_eq!(Key::Store.full_name(), "keygate.store");
        assert_eq!(Key::ClientId.full_name(), "keygate.<url>.clientId");
    }

    fn config(pairs: &[(&str, &str)]) -> GitConfig {
        let mut raw = Vec::new();
        for (k, v) in pairs {
            raw.extend_from_slice(format!("{k}\n{v}\0").as_bytes());
        }
        GitConfig::parse_z(&raw)
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses_git_config_z_output() {
        let c = GitConfig::parse_z(b"keygate.store\nfile\0credential.interactive\0");
        assert_eq!(c.plain("keygate", "store"), Some("file"));
        assert_eq!(c.plain("credential", "interactive"), Some("true"));
    }

    #[test]
    fn longer_path_wins_and_port_must_match() {
        let c = config(&[
            ("keygate.https://git.example.com/org.clientid", "org"),
            ("keygate.https://git.example.com.clientid", "host"),
            ("keygate.https://git.example.com:8443.clientid", "port"),
        ]);
        let get = |u: &str| c.for_url("keygate", &url(u)).remove("clientid");
        assert_eq!(
            get("https://git.example.com/org/repo.git").as_deref(),
            Some("org")
        );
        assert_eq!(
            get("https://git.example.com/other").as_deref(),
            Some("host")
        );
        assert_eq!(
            get("https://git.example.com:8443/org").as_deref(),
            Some("port")
        );
        assert_eq!(
            get("https://git.example.com/organisation").as_deref(),
            Some("host")
        );
        assert_eq!(get("http://git.example.com/org").as_deref(), None);
    }

    #[test]
    fn wildcard_host_and_user_match() {
        let c = config(&[
            ("keygate.https://*.example.com.clientid", "wild"),
            ("keygate.https://alice@git.example.com.clientid", "alice"),
        ]);
        let get = |u: &str| c.for_url("keygate", &url(u)).remove("clientid");
        assert_eq!(get("https://git.example.com/").as_deref(), Some("wild"));
        assert_eq!(
            get("https://alice@git.example.com/").as_deref(),
            Some("alice")
        );
        assert_eq!(get("https://a.b.example.com/").as_deref(), None);
    }

    #[test]
    fn later_entry_wins_on_equal_specificity() {
        let c = config(&[
            ("keygate.https://h.example.clientid", "first"),
            ("keygate.https://h.example.clientid", "second"),
        ]);
        let got = c
            .for_url("keygate", &url("https://h.example/"))
            .remove("clientid");
        assert_eq!(got.as_deref(), Some("second"));
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
        for (raw, source) in [
            ("github", IdTokenSource::Github),
            ("buildkite", IdTokenSource::Buildkite),
            ("env:GITLAB_OIDC", IdTokenSource::Env("GITLAB_OIDC".into())),
            (
                "file:/var/run/secrets/tokens/ci",
                IdTokenSource::File("/var/run/secrets/tokens/ci".into()),
            ),
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

    #[test]
    fn interactive_false_or_never() {
        assert!(git_forbids_interaction(&config(&[(
            "credential.interactive",
            "never"
        )])));
        assert!(git_forbids_interaction(&config(&[(
            "credential.interactive",
            "false"
        )])));
        assert!(!git_forbids_interaction(&config(&[(
            "credential.interactive",
            "true"
        )])));
    }
}
