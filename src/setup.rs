//! Bringing a server into keygate's care: `keygate setup <url>` finds
//! what it can (a built-in preset, the server's metadata, a dynamically
//! registered client), writes the `keygate.<url>.*` settings and logs in;
//! `keygate logout --forget-client` undoes the registration.
//!
//! Nothing is written until setup knows it can finish; where it cannot,
//! the report says what a person must create where, and which `git config`
//! lines to run. A secret never goes to `~/.gitconfig` (0644): a client
//! secret from registration stays in the token store.

use std::process::{Command, Stdio};

use serde::Serialize;
use url::Url;

use crate::config::{self, ConfigError, GitConfig, Provider};
use crate::gitconfig::split_key;
use crate::http::{HttpClient, HttpError};
use crate::oauth::discovery::{self, DiscoveryError, Metadata};
use crate::oauth::register::{self, Forgotten, RegisterError};
use crate::secret::Secret;
use crate::session::{Interaction, Session, SessionError};
use crate::store::{self, StoreError, TokenStore};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
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
    /// `done`, `dry-run` (nothing written) or `incomplete` (a person must
    /// do what `next_steps` says).
    pub status: &'static str,
    /// Where the endpoints come from: `preset`, `configured`, `discovery`
    /// or `none`.
    pub endpoints: &'static str,
    pub issuer: Option<String>,
    /// `configured`, `stored` (registered earlier), `registered`,
    /// `would-register` (dry run) or `missing`.
    pub client: &'static str,
    pub settings: Vec<Setting>,
    /// Keygate as git's credential helper: `present`, `added`, `would-add`,
    /// or `missing` (when setup stopped short).
    pub helper: &'static str,
    pub logged_in: bool,
    pub next_steps: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// `present` (nothing to do), `written` or `would-write`.
    pub state: &'static str,
}

impl Report {
    pub fn is_complete(&self) -> bool {
        self.status != "incomplete"
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let mut out = format!("keygate setup for {}\n", self.server);
        let endpoints = match (self.endpoints, &self.issuer) {
            ("discovery", Some(issuer)) => format!("discovered from the metadata of {issuer}"),
            ("preset", _) => "built into keygate".to_owned(),
            ("configured", _) => "already configured".to_owned(),
            _ => "not found".to_owned(),
        };
        out += &format!("  endpoints: {endpoints}\n");
        let client = match self.client {
            "configured" => "configured",
            "stored" => "registered earlier, kept in the token store",
            "registered" => "registered at the server just now, kept in the token store",
            "would-register" => "would be registered at the server",
            _ => "none yet",
        };
        out += &format!("  client: {client}\n");
        for setting in &self.settings {
            let state = match setting.state {
                "present" => "already set",
                "written" => "written",
                _ => "would write",
            };
            out += &format!(
                "  git config --global {} {}   ({state})\n",
                setting.key,
                shell_quote(&setting.value)
            );
        }
        let helper = match self.helper {
            "present" => "already keygate",
            "added" => "added keygate",
            "would-add" => "would add keygate",
            _ => "not keygate yet",
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
        out
    }
}

/// Quotes a config value for a shell line when it needs it.
fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

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
    let mut report = set_up(config, request, interaction)?;
    if report.status == "incomplete" && report.helper == "missing" {
        report
            .next_steps
            .push("git config --global --add credential.helper keygate".to_owned());
    }
    Ok(report)
}

fn set_up<'a>(
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
        status: if request.dry_run { "dry-run" } else { "done" },
        endpoints: "none",
        issuer: None,
        client: "missing",
        settings: Vec::new(),
        helper: if helper_is_keygate(config, url) {
            "present"
        } else {
            "missing"
        },
        logged_in: false,
        next_steps: Vec::new(),
    };
    let store = store::open(config::store_choice(config)?)?;

    // What the settings should be, before anything is written.
    let mut wanted: Vec<(&'static str, String)> = Vec::new();
    let no_issuer =
        request.issuer.is_none() && existing.as_ref().is_none_or(|p| p.issuer.is_none());
    let preset = config::has_preset(url) && no_issuer;
    let configured_endpoints =
        preset || (no_issuer && existing.as_ref().is_some_and(|p| p.token_url.is_some()));
    if configured_endpoints {
        report.endpoints = if preset { "preset" } else { "configured" };
        match &existing {
            Some(provider) if !provider.client_id.is_empty() => report.client = "configured",
            _ => {
                incomplete_without_client(&mut report, url, &server);
                return Ok(report);
            }
        }
    } else {
        let Some((issuer, metadata)) = discover(config, request, existing.as_ref(), &origin)?
        else {
            report.status = "incomplete";
            report.next_steps.push(format!(
                "{server} publishes no OAuth server metadata; if its OAuth server lives elsewhere, run `keygate setup {} --issuer <issuer URL>`",
                url
            ));
            report.next_steps.push(
                "or register an OAuth application there (a public/native client with redirect URI http://127.0.0.1/callback) and run:"
                    .to_owned(),
            );
            for key in [
                "clientId <id>",
                "authUrl <authorization endpoint>",
                "tokenUrl <token endpoint>",
            ] {
                report
                    .next_steps
                    .push(format!("git config --global keygate.{server}.{key}"));
            }
            return Ok(report);
        };
        report.endpoints = "discovery";
        report.issuer = Some(issuer.clone());
        wanted.push(("issuer", issuer.clone()));
        // The provider as it will be once the issuer is set.
        let mut provider = match &existing {
            Some(p) => p.clone(),
            None => Provider::resolve(&with_entry(config, &server, "issuer", &issuer), url)?
                .ok_or_else(|| SetupError::NotApplied {
                    server: server.clone(),
                })?,
        };
        provider.issuer = Some(issuer.clone());
        if !provider.client_id.is_empty() {
            report.client = "configured";
        } else if register::load(&provider, store.as_ref())?.is_some() {
            report.client = "stored";
        } else if metadata.registration_endpoint.is_none() {
            report.status = "incomplete";
            report.next_steps.push(format!(
                "{issuer} offers no dynamic client registration: register an OAuth application there (a public/native client with redirect URI http://127.0.0.1/callback), then run:"
            ));
            for (key, value) in &wanted {
                report.next_steps.push(format!(
                    "git config --global keygate.{server}.{key} {}",
                    shell_quote(value)
                ));
            }
            report.next_steps.push(format!(
                "git config --global keygate.{server}.clientId <id>"
            ));
            return Ok(report);
        } else if request.dry_run {
            report.client = "would-register";
        } else {
            let registered = block_on(async {
                let http = http_for(config, &provider)?;
                Ok::<_, SetupError>(
                    register::register(
                        &provider,
                        &metadata,
                        store.as_ref(),
                        &http,
                        request.registration_token.as_ref(),
                    )
                    .await,
                )
            })??;
            match registered {
                Ok(_) => report.client = "registered",
                Err(
                    error @ (RegisterError::NeedsToken { .. }
                    | RegisterError::TokenRefused { .. }
                    | RegisterError::Refused { .. }),
                ) => {
                    report.status = "incomplete";
                    report
                        .next_steps
                        .push(format!("registration failed: {error}"));
                    report.next_steps.push(format!(
                        "or register an OAuth application at {issuer} by hand (a public/native client with redirect URI http://127.0.0.1/callback) and run:"
                    ));
                    report.next_steps.push(format!(
                        "git config --global keygate.{server}.issuer {}",
                        shell_quote(&issuer)
                    ));
                    report.next_steps.push(format!(
                        "git config --global keygate.{server}.clientId <id>"
                    ));
                    return Ok(report);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    // Write what is missing, then make sure git asks keygate.
    let current = config.for_url("keygate", url);
    for (key, value) in wanted {
        let full_key = format!("keygate.{server}.{key}");
        let present = current.get(&key.to_ascii_lowercase()) == Some(&value);
        let state = if present {
            "present"
        } else if request.dry_run {
            "would-write"
        } else {
            git_config_global(&[&full_key, &value])?;
            "written"
        };
        report.settings.push(Setting {
            key: full_key,
            value,
            state,
        });
    }
    if report.helper == "missing" {
        report.helper = if request.dry_run {
            "would-add"
        } else {
            git_config_global(&["--add", "credential.helper", "keygate"])?;
            "added"
        };
    }
    if request.dry_run {
        return Ok(report);
    }

    // A token now, through the settings just written.
    let config = GitConfig::load().map_err(ConfigError::from)?;
    let provider = Provider::resolve(&config, url)?.ok_or(SetupError::NotApplied { server })?;
    let store = store::open(config::store_choice(&config)?)?;
    let username = percent_encoding::percent_decode_str(url.username())
        .decode_utf8_lossy()
        .into_owned();
    let session = Session::new(
        &provider,
        Some(username.as_str()).filter(|u| !u.is_empty()),
        store.as_ref(),
        config::oauth_ca_files(&config, &provider),
        move || shorten(interaction()),
    );
    session.fresh_token()?;
    report.logged_in = true;
    Ok(report)
}

/// An interaction lives as long as the browser it names; a session built
/// here needs one no longer than its own provider.
fn shorten<'s, 'a: 's>(interaction: Interaction<'a>) -> Interaction<'s> {
    interaction
}

/// Instructions for a host keygate knows the endpoints of, but which
/// needs an application made by hand.
fn incomplete_without_client(report: &mut Report, url: &Url, server: &str) {
    report.status = "incomplete";
    let host = url.host_str().unwrap_or_default();
    report.next_steps.push(match app_page(host) {
        Some(page) => page.to_owned(),
        None => format!(
            "register an OAuth application at {server} (a public/native client with redirect URI http://127.0.0.1/callback)"
        ),
    });
    report.next_steps.push(format!(
        "git config --global keygate.{server}.clientId <client id>"
    ));
    report.next_steps.push(format!(
        "a client secret, if the server insists on one, never in ~/.gitconfig: put `[keygate \"{server}\"] clientSecret = <secret>` in a file only you can read (chmod 600) and `git config --global --add include.path <that file>`"
    ));
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
        .or_else(|| existing.and_then(|p| p.issuer.clone()));
    let candidate = given
        .clone()
        .unwrap_or_else(|| origin.as_str().trim_end_matches('/').to_owned());
    let ca_files = config::ca_files_for(config, &Url::parse(&candidate).unwrap_or(origin.clone()));
    let timeout = existing.map_or(DISCOVERY_TIMEOUT, |p| p.http_timeout);
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
        provider.http_timeout,
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

/// Deletes the client keygate registered for `provider`: at the server
/// (RFC 7592) where it offers that, and in `store`.
pub fn forget_client(
    config: &GitConfig,
    provider: &Provider,
    store: &dyn TokenStore,
) -> Result<Forgotten, SetupError> {
    if register::load(provider, store)?.is_none() {
        return Ok(Forgotten::NothingStored);
    }
    block_on(async {
        let http = http_for(config, provider)?;
        Ok(register::forget(provider, store, &http).await?)
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            shell_quote("https://a.example:8443/x"),
            "https://a.example:8443/x"
        );
        assert_eq!(shell_quote("read write"), "'read write'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
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
