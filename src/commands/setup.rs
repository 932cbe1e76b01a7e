//! Bringing a server into keygate's care: `keygate setup <url>` finds
//! what it can (a built-in preset, the server's metadata, a dynamically
//! registered client), writes the `keygate.<url>.*` settings and logs in;
//! `keygate logout --forget-client` undoes the registration
//! ([`crate::session::Session::forget_client`]).
//!
//! Nothing is written until setup knows it can finish; where it cannot,
//! the report says what a person must create where, and which `git config`
//! lines to run. A secret never goes to `~/.gitconfig` (0644): a client
//! secret from registration stays in the token store.
//!
//! The flow is this command's alone, so it lives with the command rather
//! than below `commands`. `keygate setup docker` and `setup cargo` are
//! their tools' own (`docker.rs`, `cargo.rs`), dispatched from here.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use serde::Serialize;
use url::Url;

use super::{CommandError, Outcome, Reach, parse_url, url_username};
use crate::config::{self, ConfigError, GitConfig, Grant, IdTokenSource, Key, Provider};
use crate::gitconfig::split_key;
use crate::http::{HttpClient, HttpError};
use crate::oauth::OAuthError;
use crate::oauth::discovery::{self, DiscoveryError};
use crate::oauth::metadata::Metadata;
use crate::oauth::register::{self, RegisterError};
use crate::oauth::{ci_identity, federation};
use crate::secret::Secret;
use crate::session::{Interaction, Lookup, Session, SessionError};
use crate::store::{self, StoreError};
use crate::text::{Word, escape_line, git_config_command, shell_command};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Discovery(DiscoveryError),
    #[error(transparent)]
    Register(RegisterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the final login met, but for the kinds above.
    #[error(transparent)]
    Session(SessionError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{url} is not an https:// URL (http only on loopback)")]
    NotHttps { url: String },
    #[error("`git config --global {key}` failed: {reason}")]
    GitConfig { key: String, reason: String },
    #[error(
        "after setup, keygate still has no configuration for {server}; check `git config --global --get-regexp '^keygate'`"
    )]
    NotApplied { server: String },
}

// Each kind of failure reaches the person as one variant, whichever step
// met it: a discovery failure in the final login is `Discovery`, as in
// discovery, not `Session(OAuth(Discovery))`.

impl From<DiscoveryError> for SetupError {
    fn from(error: DiscoveryError) -> Self {
        match error {
            DiscoveryError::Http(error) => SetupError::Http(error),
            error => SetupError::Discovery(error),
        }
    }
}

impl From<RegisterError> for SetupError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Http(error) => SetupError::Http(error),
            RegisterError::Store(error) => SetupError::Store(error),
            error => SetupError::Register(error),
        }
    }
}

impl From<SessionError> for SetupError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(error) => SetupError::Store(error),
            SessionError::OAuth(OAuthError::Http(error)) => SetupError::Http(error),
            SessionError::OAuth(OAuthError::Discovery(error)) => (*error).into(),
            SessionError::OAuth(OAuthError::Registration(error)) => (*error).into(),
            error => SetupError::Session(error),
        }
    }
}

/// `keygate setup` as typed on the command line; the field comments are
/// its `--help`. A registration token other than `-` is refused (see
/// [`registration_token_from`]).
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
pub struct Args {
    #[arg(required = true)]
    pub url: Option<String>,
    /// The OAuth server's issuer URL, when it does not live at the URL's origin
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Show what would be written; write, register and log in nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Read an initial access token, for a registration endpoint that wants one, from stdin (`-`)
    #[arg(long, value_name = "-")]
    pub registration_token: Option<String>,
    #[command(subcommand)]
    pub tool: Option<Tool>,
}

/// Another program's set-up, instead of a URL's.
#[derive(clap::Subcommand)]
pub enum Tool {
    /// Make keygate the credential helper of Docker, podman, skopeo and
    /// buildah for a registry (credHelpers). Exit code 3: a step is left
    /// to you (printed)
    Docker(super::docker::SetupArgs),
    /// Make keygate cargo's credential provider for a registry (in cargo's config.toml)
    Cargo(super::cargo::SetupArgs),
}

/// `keygate setup`: runs it and prints the report on `output`. Reads the
/// registration token, when asked to, from `input`.
pub fn setup(
    config: &GitConfig,
    args: Args,
    reach: Reach<'_>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<Outcome, CommandError> {
    let url = match (args.tool, args.url) {
        (Some(Tool::Docker(docker)), _) => return super::docker::setup(config, docker, output),
        (Some(Tool::Cargo(cargo)), _) => return super::cargo::setup(config, cargo, output),
        (None, Some(url)) => url,
        // clap requires one or the other.
        (None, None) => return Err(CommandError::InvalidUrl(url::ParseError::EmptyHost)),
    };
    let request = Request {
        url: parse_url(&url)?,
        issuer: args.issuer,
        dry_run: args.dry_run,
        registration_token: registration_token_from(args.registration_token.as_deref(), input)?,
    };
    // Asked for by a person, as `keygate login` is.
    let interaction = reach.for_person();
    let report = run(config, &request, move || interaction)?;
    if args.json {
        serde_json::to_writer_pretty(&mut output, &report)?;
        writeln!(output)?;
    } else {
        output.write_all(report.to_text().as_bytes())?;
    }
    output.flush()?;
    Ok(if report.is_complete() {
        Outcome::Done
    } else {
        Outcome::StepsLeft
    })
}

/// `--registration-token -`: the token is read from `input`, never taken
/// from argv, where every local user can read it (`ps`, /proc/PID/cmdline).
fn registration_token_from(
    raw: Option<&str>,
    mut input: impl BufRead,
) -> Result<Option<Secret>, CommandError> {
    match raw {
        None => Ok(None),
        Some("-") => {
            let mut line = String::new();
            input.read_line(&mut line)?;
            let token = line.trim();
            if token.is_empty() {
                return Err(CommandError::NoRegistrationToken);
            }
            Ok(Some(Secret::new(token)))
        }
        Some(_) => Err(CommandError::RegistrationTokenInArgv),
    }
}

/// What `keygate setup` was asked to do.
pub struct Request {
    pub url: Url,
    pub issuer: Option<String>,
    pub dry_run: bool,
    pub registration_token: Option<Secret>,
}

/// What `keygate setup` found and did; printed as text or `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub server: String,
    pub status: Status,
    pub endpoints: Endpoints,
    pub issuer: Option<String>,
    pub client: Client,
    pub settings: Vec<Setting>,
    /// keygate as git's credential helper.
    pub helper: Helper,
    pub logged_in: bool,
    /// What a person must do, when `status` is `incomplete`.
    pub next_steps: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Done,
    /// `--dry-run`: nothing written, registered or logged in.
    DryRun,
    /// A step is left to a person: see `next_steps`.
    Incomplete,
}

/// Where the endpoints come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoints {
    Preset,
    Configured,
    Discovery,
    None,
}

/// Where the client id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    Configured,
    /// Registered by an earlier run, kept in the token store.
    Stored,
    Registered,
    WouldRegister,
    /// A token exchange in CI: the job's id token is the credential.
    NotNeeded,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Helper {
    Present,
    Added,
    WouldAdd,
    Missing,
}

#[derive(Debug, Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub state: SettingState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingState {
    /// Already set to this value: left alone.
    Present,
    Written,
    WouldWrite,
}

impl Report {
    pub fn is_complete(&self) -> bool {
        self.status != Status::Incomplete
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let mut out = format!("keygate setup for {}\n", self.server);
        let endpoints = match (self.endpoints, &self.issuer) {
            (Endpoints::Discovery, Some(issuer)) => {
                format!("discovered from the metadata of {issuer}")
            }
            (Endpoints::Preset, _) => "built into keygate".to_owned(),
            (Endpoints::Configured, _) => "already configured".to_owned(),
            _ => "not found".to_owned(),
        };
        out += &format!("  endpoints: {endpoints}\n");
        let client = match self.client {
            Client::Configured => "configured",
            Client::Stored => "registered earlier, kept in the token store",
            Client::Registered => "registered at the server just now, kept in the token store",
            Client::WouldRegister => "would be registered at the server",
            Client::NotNeeded => "none needed: the CI job's id token is exchanged",
            Client::Missing => "none yet",
        };
        out += &format!("  client: {client}\n");
        for setting in &self.settings {
            let state = match setting.state {
                SettingState::Present => "already set",
                SettingState::Written => "written",
                SettingState::WouldWrite => "would write",
            };
            out += &format!(
                "  {}   ({state})\n",
                git_config_command(&[setting.key.as_str().into(), setting.value.as_str().into()])
            );
        }
        let helper = match self.helper {
            Helper::Present => "already keygate",
            Helper::Added => "added keygate",
            Helper::WouldAdd => "would add keygate",
            Helper::Missing => "not keygate yet",
        };
        out += &format!("  credential helper: {helper}\n");
        if self.logged_in {
            out += "  logged in: yes\n";
        }
        if !self.next_steps.is_empty() {
            out += "to finish, do this:\n";
            for step in &self.next_steps {
                out += &format!("  {step}\n");
            }
        }
        // The issuer and a registration's refusal are a server's words.
        out.lines().map(|line| escape_line(line) + "\n").collect()
    }

    /// Stops short: a person must do `steps`.
    fn incomplete(mut self, steps: impl IntoIterator<Item = String>) -> Self {
        self.status = Status::Incomplete;
        self.next_steps.extend(steps);
        if self.helper == Helper::Missing {
            self.next_steps.push(git_config_command(&[
                "--add".into(),
                "credential.helper".into(),
                helper_to_register().as_str().into(),
            ]));
        }
        self
    }
}

/// What to register by hand where a server cannot register keygate.
const NATIVE_APP: &str = "a public/native client with redirect URI http://127.0.0.1/callback";

/// Where a person creates an OAuth application on the forges keygate has
/// presets for: none of them registers clients on the fly.
fn app_page(host: &str) -> Option<&'static str> {
    match host {
        "github.com" => Some(
            "create an OAuth app at https://github.com/settings/applications/new (Authorization callback URL http://127.0.0.1/callback, tick \"Enable Device Flow\")",
        ),
        "bitbucket.org" => Some(
            "create an OAuth consumer in your workspace settings at https://bitbucket.org/<workspace>/workspace/settings/api (Callback URL http://127.0.0.1/callback, permission Repositories: Write)",
        ),
        "gitlab.com" => Some(
            "create an application at https://gitlab.com/-/user_settings/applications (Redirect URI http://127.0.0.1/callback, not confidential, scopes read_repository and write_repository)",
        ),
        _ => None,
    }
}

fn block_on<T>(work: impl Future<Output = T>) -> Result<T, SetupError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    Ok(runtime.block_on(work))
}

/// Runs `keygate setup`. `interaction` is used only for the final login.
pub fn run<'a>(
    config: &GitConfig,
    request: &Request,
    interaction: impl FnOnce() -> Interaction<'a> + 'a,
) -> Result<Report, SetupError> {
    let url = &request.url;
    if crate::http::check_endpoint(url).is_err() {
        return Err(SetupError::NotHttps {
            url: config::origin_of(url).to_string(),
        });
    }
    let origin = config::origin_of(url);
    let server = origin.as_str().trim_end_matches('/').to_owned();
    let existing = Provider::resolve(config, url)?;
    let mut report = Report {
        server: server.clone(),
        status: if request.dry_run {
            Status::DryRun
        } else {
            Status::Done
        },
        endpoints: Endpoints::None,
        issuer: None,
        client: Client::Missing,
        settings: Vec::new(),
        helper: if helper_is_keygate(config, url) {
            Helper::Present
        } else {
            Helper::Missing
        },
        logged_in: false,
        next_steps: Vec::new(),
    };

    // What the settings should be, before anything is written.
    let no_issuer = request.issuer.is_none()
        && existing
            .as_ref()
            .is_none_or(|p| p.endpoints.issuer.is_none());
    let preset = config::has_preset(url) && no_issuer;
    let wanted = if preset
        || (no_issuer
            && existing
                .as_ref()
                .is_some_and(|p| p.endpoints.token_url.is_some()))
    {
        report.endpoints = if preset {
            Endpoints::Preset
        } else {
            Endpoints::Configured
        };
        if existing
            .as_ref()
            .is_none_or(|p| p.client.client_id.is_empty())
        {
            let steps = make_app_by_hand(url, &server);
            return Ok(report.incomplete(steps));
        }
        report.client = Client::Configured;
        Vec::new()
    } else {
        let Some((issuer, metadata)) = discover(config, request, existing.as_ref(), &origin)?
        else {
            let mut steps = vec![
                format!(
                    "{server} publishes no OAuth server metadata; if its OAuth server lives elsewhere, run `{}`",
                    shell_command(&[
                        "keygate".into(),
                        "setup".into(),
                        url.as_str().into(),
                        "--issuer".into(),
                        Word::Blank("<issuer URL>"),
                    ])
                ),
                format!("or register an OAuth application there ({NATIVE_APP}) and run:"),
            ];
            for (key, blank) in [
                (Key::ClientId, "<id>"),
                (Key::AuthUrl, "<authorization endpoint>"),
                (Key::TokenUrl, "<token endpoint>"),
            ] {
                steps.push(config::set_key_command(&server, key, blank));
            }
            return Ok(report.incomplete(steps));
        };
        report.endpoints = Endpoints::Discovery;
        report.issuer = Some(issuer.clone());
        // The provider as it will be once the issuer is set.
        let mut provider = match &existing {
            Some(p) => p.clone(),
            None => Provider::resolve(
                &with_entry(config, &server, Key::Issuer.name(), &issuer),
                url,
            )?
            .ok_or_else(|| SetupError::NotApplied {
                server: server.clone(),
            })?,
        };
        provider.endpoints.issuer = Some(issuer.clone());
        let ci_grant = ci_grant(existing.as_ref(), &metadata);
        let needs_no_client = ci_grant.is_some_and(|g| g == Grant::TokenExchange)
            && provider.client.client_id.is_empty();
        let obtained = if needs_no_client {
            Ok(Client::NotNeeded)
        } else {
            obtain_client(config, request, &provider, &metadata)?
        };
        match obtained {
            Ok(client) => report.client = client,
            Err(reason) => {
                let steps = [
                    reason,
                    format!(
                        "instead, register an OAuth application at {issuer} by hand ({NATIVE_APP}), then run:"
                    ),
                    git_config_command(&[
                        format!("keygate.{server}.issuer").as_str().into(),
                        issuer.as_str().into(),
                    ]),
                    config::set_key_command(&server, Key::ClientId, "<id>"),
                ];
                return Ok(report.incomplete(steps));
            }
        }
        let mut wanted = vec![(Key::Issuer, issuer)];
        if let Some(grant) = ci_grant {
            wanted.push((Key::Grant, grant.name().to_owned()));
        }
        wanted
    };

    write_settings(config, request, &mut report, wanted)?;
    if request.dry_run {
        return Ok(report);
    }

    // A token now, through the settings just written.
    let config = GitConfig::load().map_err(ConfigError::from)?;
    let provider = Provider::resolve(&config, url)?.ok_or(SetupError::NotApplied { server })?;
    let store = store::open_for(&config)?;
    let username = url_username(url);
    let session = Session::new(
        &provider,
        username.as_deref(),
        store.as_ref(),
        config::oauth_ca_files(&config, &provider),
        move || shorten(interaction()),
    );
    session.fresh_token(Lookup::Whole)?;
    report.logged_in = true;
    Ok(report)
}

/// The client `provider` will use: configured, registered earlier, or
/// registered now. `Err(reason)` when the server cannot register keygate
/// and a person must create one.
fn obtain_client(
    config: &GitConfig,
    request: &Request,
    provider: &Provider,
    metadata: &Metadata,
) -> Result<Result<Client, String>, SetupError> {
    let store = store::open_for(config)?;
    if !provider.client.client_id.is_empty() {
        return Ok(Ok(Client::Configured));
    }
    if register::load(provider, store.as_ref())?.is_some() {
        return Ok(Ok(Client::Stored));
    }
    if metadata.registration_endpoint.is_none() {
        return Ok(Err(format!(
            "{} offers no dynamic client registration",
            metadata.issuer
        )));
    }
    if request.dry_run {
        return Ok(Ok(Client::WouldRegister));
    }
    let registered = block_on(async {
        let http = http_for(config, provider)?;
        Ok::<_, SetupError>(
            register::register(
                provider,
                metadata,
                store.as_ref(),
                &http,
                request.registration_token.as_ref(),
            )
            .await,
        )
    })??;
    match registered {
        Ok(_) => Ok(Ok(Client::Registered)),
        // The server said no: a person can still make a client.
        Err(
            error @ (RegisterError::NeedsToken { .. }
            | RegisterError::TokenRefused { .. }
            | RegisterError::Refused { .. }),
        ) => Ok(Err(format!("registration failed: {error}"))),
        Err(error) => Err(error.into()),
    }
}

/// In a CI job that can get an id token, the grant that trades it, when
/// the server lists one (RFC 8693's before RFC 7523's) and none is
/// configured yet. A server that lists no grants is not guessed at: an
/// exchange it refuses would fail every job.
fn ci_grant(existing: Option<&Provider>, metadata: &Metadata) -> Option<Grant> {
    if existing.is_some_and(|p| p.policy.grant != Grant::Code) {
        return None;
    }
    let found = ci_identity::find(&IdTokenSource::Auto, &ci_identity::process_env).ok()?;
    let listed = metadata
        .grant_types_supported
        .as_deref()
        .unwrap_or_default();
    let grant = [Grant::TokenExchange, Grant::JwtBearer]
        .into_iter()
        .find(|g| listed.iter().any(|l| l == federation::grant_type(*g)))?;
    tracing::info!(source = %found.describe(), grant = grant.name(), "a CI id token is at hand and the server takes it");
    Some(grant)
}

/// Writes the `keygate.<server>.*` settings not already in place, and
/// makes keygate git's helper.
fn write_settings(
    config: &GitConfig,
    request: &Request,
    report: &mut Report,
    wanted: Vec<(Key, String)>,
) -> Result<(), SetupError> {
    let current = config.for_url("keygate", &request.url);
    for (key, value) in wanted {
        let full_key = format!("keygate.{}.{}", report.server, key.name());
        let state = if current.get(&key.name().to_ascii_lowercase()) == Some(&value) {
            SettingState::Present
        } else if request.dry_run {
            SettingState::WouldWrite
        } else {
            git_config_global(&[&full_key, &value])?;
            SettingState::Written
        };
        report.settings.push(Setting {
            key: full_key,
            value,
            state,
        });
    }
    if report.helper == Helper::Missing {
        report.helper = if request.dry_run {
            Helper::WouldAdd
        } else {
            git_config_global(&["--add", "credential.helper", &helper_to_register()])?;
            Helper::Added
        };
    }
    Ok(())
}

/// An interaction lives as long as the browser it names; a session built
/// here needs one no longer than its own provider.
fn shorten<'s, 'a: 's>(interaction: Interaction<'a>) -> Interaction<'s> {
    interaction
}

/// Instructions for a host keygate knows the endpoints of, but which
/// needs an application made by hand.
fn make_app_by_hand(url: &Url, server: &str) -> Vec<String> {
    let host = url.host_str().unwrap_or_default();
    vec![
        match app_page(host) {
            Some(page) => page.to_owned(),
            None => format!("register an OAuth application at {server} ({NATIVE_APP})"),
        },
        config::set_key_command(server, Key::ClientId, "<client id>"),
        format!(
            "a client secret, if the server insists on one, never in ~/.gitconfig: put `[keygate \"{}\"] clientSecret = <secret>` in a file only you can read (chmod 600) and `{}`",
            server.replace('\\', "\\\\").replace('"', "\\\""),
            git_config_command(&[
                "--add".into(),
                "include.path".into(),
                Word::Blank("<that file>")
            ])
        ),
    ]
}

/// keygate's default bound on a request to an OAuth server, for a server
/// with no `keygate.<url>.timeout` yet.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The issuer to use and its metadata, or `None` when the server's origin
/// publishes none. An issuer given or configured must answer.
fn discover(
    config: &GitConfig,
    request: &Request,
    existing: Option<&Provider>,
    origin: &Url,
) -> Result<Option<(String, Metadata)>, SetupError> {
    let given = request
        .issuer
        .clone()
        .or_else(|| existing.and_then(|p| p.endpoints.issuer.clone()));
    let candidate = given
        .clone()
        .unwrap_or_else(|| origin.as_str().trim_end_matches('/').to_owned());
    let ca_files = config::ca_files_for(config, &Url::parse(&candidate).unwrap_or(origin.clone()));
    let timeout = existing.map_or(DISCOVERY_TIMEOUT, |p| p.policy.http_timeout);
    let http = HttpClient::new(&ca_files, timeout)?;
    let found = block_on(async {
        match discovery::fetch(&http, &candidate).await {
            // `https://host` and `https://host/` are one issuer to a
            // person; the metadata's own spelling is the one kept.
            Err(DiscoveryError::IssuerMismatch { found, .. })
                if found.trim_end_matches('/') == candidate.trim_end_matches('/') =>
            {
                discovery::fetch(&http, &found).await.map(|m| (found, m))
            }
            other => other.map(|m| (candidate.clone(), m)),
        }
    })?;
    match found {
        Ok(found) => Ok(Some(found)),
        Err(DiscoveryError::NotFound { .. }) if given.is_none() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn http_for(config: &GitConfig, provider: &Provider) -> Result<HttpClient, SetupError> {
    Ok(HttpClient::new(
        &config::oauth_ca_files(config, provider),
        provider.policy.http_timeout,
    )?)
}

/// `config` with one more `keygate.<server>.<key>` entry.
fn with_entry(config: &GitConfig, server: &str, key: &str, value: &str) -> GitConfig {
    let mut config = config.clone();
    config.entries.push((
        format!("keygate.{server}.{}", key.to_ascii_lowercase()),
        value.to_owned(),
    ));
    config
}

/// Whether git already asks keygate for `url`.
/// What `credential.helper` is set to: where install.sh put the front
/// program (a real file, on Linux) beside keygate, its absolute path, which
/// saves git a process on every HTTPS operation; else the bare name, which
/// git finds on PATH. git runs an absolute path through the shell, so a
/// path with characters the shell would read is left for the bare name.
fn helper_to_register() -> String {
    if crate::sys::INSTALLS_FRONT_PROGRAM
        && let Ok(keygate) = std::env::current_exe()
    {
        let front = keygate.with_file_name("git-credential-keygate");
        let installed = front
            .symlink_metadata()
            .is_ok_and(|meta| meta.file_type().is_file());
        if let Some(path) = front.to_str()
            && installed
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c))
        {
            return path.to_owned();
        }
    }
    "keygate".to_owned()
}

fn helper_is_keygate(config: &GitConfig, url: &Url) -> bool {
    config.entries.iter().any(|(key, value)| {
        let Some((section, sub, variable)) = split_key(key) else {
            return false;
        };
        let applies = sub.is_none_or(|pattern| {
            Url::parse(pattern).is_ok_and(|p| p.host_str() == url.host_str())
        });
        let program = value.trim().trim_start_matches('!');
        let program = program.split_whitespace().next().unwrap_or_default();
        let name = std::path::Path::new(program)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        section.eq_ignore_ascii_case("credential")
            && variable.eq_ignore_ascii_case("helper")
            && applies
            && matches!(name, "keygate" | "git-credential-keygate")
    })
}

fn git_config_global(args: &[&str]) -> Result<(), SetupError> {
    let key = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .copied()
        .unwrap_or_default()
        .to_owned();
    let output = Command::new("git")
        .args(["config", "--global"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SetupError::GitConfig {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(SetupError::GitConfig {
            key,
            reason: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: a failure met in the final login was wrapped twice
    /// (`Session(OAuth(Discovery))`), once when met in discovery.
    #[test]
    fn each_failure_reaches_the_person_one_way() {
        let bad_issuer = || DiscoveryError::BadIssuer("x".into());
        let via_login = |error: OAuthError| SetupError::from(SessionError::from(error));
        let direct = SetupError::from(bad_issuer());
        let late = via_login(bad_issuer().into());
        assert!(matches!(direct, SetupError::Discovery(_)), "{direct:?}");
        assert!(matches!(late, SetupError::Discovery(_)), "{late:?}");
        assert_eq!(direct.to_string(), late.to_string());

        let unavailable = || RegisterError::Unavailable {
            server: "https://g.example".into(),
        };
        assert!(matches!(
            SetupError::from(unavailable()),
            SetupError::Register(_)
        ));
        assert!(matches!(
            via_login(unavailable().into()),
            SetupError::Register(_)
        ));

        let unreadable = || RegisterError::Store(StoreError::NoDataDir);
        assert!(matches!(
            SessionError::from(OAuthError::from(unreadable())),
            SessionError::Store(_)
        ));
        assert!(matches!(
            SetupError::from(unreadable()),
            SetupError::Store(_)
        ));
        assert!(matches!(
            via_login(unreadable().into()),
            SetupError::Store(_)
        ));
    }

    #[test]
    fn finds_keygate_among_the_helpers() {
        let config = |raw: &str| GitConfig::parse_z(raw.as_bytes());
        let url = Url::parse("https://git.example.com/r.git").unwrap();
        assert!(helper_is_keygate(
            &config("credential.helper\nkeygate\0"),
            &url
        ));
        assert!(helper_is_keygate(
            &config("credential.https://git.example.com.helper\n/usr/bin/git-credential-keygate\0"),
            &url
        ));
        assert!(!helper_is_keygate(
            &config("credential.helper\nstore\0"),
            &url
        ));
        assert!(!helper_is_keygate(
            &config("credential.https://other.example.helper\nkeygate\0"),
            &url
        ));
    }
}
