//! keygate's commands, one file per group: what `main` dispatches to.
//! Each takes what it needs (the git config, how to reach a person, the
//! writers whose output is the point) and returns a typed result, so main
//! only parses, prints the error once and chooses the exit code.
//!
//! Commands open their store with [`crate::store::open_for`]: it lives in
//! the store so that the helper and setup below commands share it too.

pub mod account;
pub mod cargo;
pub mod docker;
pub mod doctor;
pub mod man;
pub mod setup;
pub mod status;

use std::io::IsTerminal;

use crate::config::{self, ConfigError, GitConfig, Provider};
use crate::gitconfig::GitConfigError;
use crate::helper::HelperError;
use crate::oauth::Browser;
use crate::oauth::handoff::HandoffError;
use crate::proxy::ProxyError;
use crate::session::interaction::{self, Facts};
use crate::session::{Interaction, Session, SessionError};
use crate::store::{StoreError, TokenStore};

/// How a command that finished went, beyond success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `keygate setup` left a step to the person, and printed it.
    StepsLeft,
    /// `keygate doctor` found something that fails, and printed it.
    Unwell,
    /// The command answered its failure in its protocol's own words
    /// (Docker's credential helpers: a line on stdout, exit status 1).
    Failed,
}

/// Prints a `setup` report (of another tool's set-up) on `output`, as
/// JSON for scripts or as `text` for a person; [`Outcome::StepsLeft`]
/// when `next_steps` names any.
fn print_setup_report(
    mut output: impl std::io::Write,
    json: bool,
    report: &impl serde::Serialize,
    text: impl FnOnce() -> String,
    next_steps: &[String],
) -> Result<Outcome, CommandError> {
    if json {
        serde_json::to_writer_pretty(&mut output, report)?;
        writeln!(output)?;
    } else {
        output.write_all(text().as_bytes())?;
    }
    output.flush()?;
    Ok(if next_steps.is_empty() {
        Outcome::Done
    } else {
        Outcome::StepsLeft
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not echoed back: `https://user:TOKEN@host` typed by hand would land
    /// in an error line.
    #[error("invalid URL ({0}); give one like https://git.example.com/org/repo.git")]
    InvalidUrl(url::ParseError),
    /// No configuration for the URL; what to configure, in words.
    #[error("{0}")]
    Unconfigured(String),
    #[error("the server returned no access token")]
    NoAccessToken,
    #[error("no registration token on stdin")]
    NoRegistrationToken,
    /// A usage error, never repeating the value it refuses.
    #[error(
        "--registration-token takes `-` and reads the token from stdin: \
         other local users can read a command line; run \
         `keygate setup <url> --registration-token -` and type or pipe the token in"
    )]
    RegistrationTokenInArgv,
    #[error(transparent)]
    GitConfig(#[from] GitConfigError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Helper(#[from] HelperError),
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    #[error(transparent)]
    CargoProtocol(#[from] crate::cargo_credential::CargoProtocolError),
    #[error(transparent)]
    CargoSetup(#[from] cargo::CargoSetupError),
    #[error(transparent)]
    Handoff(#[from] HandoffError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    DockerProtocol(crate::docker_credential::DockerProtocolError),
    #[error(transparent)]
    AuthFile(docker::auth_files::AuthFileError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot write {}: {source}", path.display())]
    WritePage {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl CommandError {
    /// Whether the command line itself was wrong (clap's exit code 2),
    /// rather than what it asked for failing.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::RegistrationTokenInArgv)
    }

    /// Whether the person cancelled (Ctrl-C) a login that waited for them:
    /// the shell's convention is exit code 130, as if SIGINT had ended it.
    pub fn is_cancelled(&self) -> bool {
        let session = match self {
            Self::Session(error) | Self::Setup(setup::SetupError::Session(error)) => error,
            Self::Helper(HelperError::Session(error)) => error,
            _ => return false,
        };
        session.is_cancelled()
    }
}

/// Logs to stderr when `KEYGATE_LOG` asks for it (an `EnvFilter`
/// directive; one that does not parse means `info`). Off otherwise, so
/// git's own output is never mixed with keygate's.
pub fn init_logging() {
    let Some(filter) = std::env::var("KEYGATE_LOG").ok().filter(|v| !v.is_empty()) else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .init();
}

/// How a command reaches a person, should it need one.
#[derive(Clone, Copy)]
pub struct Reach<'a> {
    /// Read when first needed: the unhandled-host and cached-token paths
    /// should not pay for it.
    pub facts: fn() -> Facts,
    pub browser: &'a dyn Browser,
}

impl<'a> Reach<'a> {
    /// This process's environment and the system's browser.
    pub fn system() -> Self {
        Self {
            facts: Facts::from_env,
            browser: &interaction::SystemBrowser,
        }
    }

    /// For a token git or a tool asked for: see [`interaction::for_git`].
    pub fn for_git(&self, config: &GitConfig) -> Interaction<'a> {
        interaction::for_git(&(self.facts)(), config, self.browser)
    }

    /// For a login a person asked for: see [`interaction::for_person`].
    pub fn for_person(&self) -> Interaction<'a> {
        interaction::for_person(&(self.facts)(), self.browser)
    }
}

/// The user name in a URL as git would send it in `username=`: decoded
/// (`alice%40corp.com` is `alice@corp.com`), so `keygate login` and git's
/// `get` name the same account.
pub(crate) fn url_username(url: &url::Url) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
    Some(decoded.into_owned()).filter(|u| !u.is_empty())
}

/// A URL from the command line.
pub(crate) fn parse_url(raw_url: &str) -> Result<url::Url, CommandError> {
    url::Url::parse(raw_url).map_err(CommandError::InvalidUrl)
}

fn provider_for(config: &GitConfig, raw_url: &str) -> Result<(Provider, url::Url), CommandError> {
    let url = parse_url(raw_url)?;
    let provider = Provider::resolve(config, &url)?
        .ok_or_else(|| CommandError::Unconfigured(config::unconfigured_message(&url)))?;
    Ok((provider, url))
}

/// The session for the account `url` names at `provider`.
fn session<'a>(
    config: &GitConfig,
    provider: &'a Provider,
    url: &url::Url,
    store: &'a dyn TokenStore,
    interaction: Interaction<'a>,
) -> Session<'a> {
    let ca_files = config::oauth_ca_files(config, provider);
    let username = url_username(url);
    Session::new(provider, username.as_deref(), store, ca_files, move || {
        interaction
    })
}
