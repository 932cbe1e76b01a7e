//! What keygate knows about one OAuth server once a URL's settings are
//! resolved: the [`Provider`] and the types its parts are made of.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

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
