//! Docker's face: the verbs of `docker-credential-keygate` (get, store,
//! erase, list, version), which Docker, podman, skopeo, buildah and crane
//! run for the registries whose `credHelpers` entry names keygate, and
//! `keygate setup docker <registry>`, which writes that entry.
//!
//! A registry is a host like any other: `keygate.<url>.*` settings (or
//! `tokensFrom`, to share a forge's login), the same session, stores and
//! interaction rules as git's `get`, and one refresh for every caller.

pub mod auth_files;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::Serialize;

use super::{CommandError, Outcome, Reach};
use crate::config::{self, GitConfig, Key, Provider};
use crate::docker_credential::{
    self as protocol, DockerProtocolError, IDENTITY_TOKEN_USER, NOT_FOUND, StoreRequest, Verb,
};
use crate::session::quick::{self, Decision};
use crate::session::{Lookup, Session, present};
use crate::store;
use crate::text::escape_line;
pub(crate) use auth_files::HELPER;
use auth_files::{AuthFileError, Edit, Reader};

/// The program's name: what clients run for `credHelpers` value `keygate`.
pub const PROGRAM: &str = "docker-credential-keygate";

/// How a verb ended, short of an error.
enum Reply {
    Done,
    /// keygate has nothing for this registry: the client goes on without.
    NotFound,
}

/// One verb of Docker's protocol on `input` and `output`. Failures are
/// answered the helpers' way, on `output` with [`Outcome::Failed`]:
/// clients read stdout and show it in their own error. Notices for the
/// person (a `store` keygate does not keep, a logout) go to `notices`,
/// which clients pass through to the terminal.
pub fn credential(
    verb: Verb,
    config: &GitConfig,
    reach: Reach<'_>,
    input: impl Read,
    mut output: impl Write,
    notices: impl Write,
) -> Result<Outcome, CommandError> {
    let reply = match verb {
        Verb::Version => {
            writeln!(output, "{PROGRAM} (keygate) {}", env!("CARGO_PKG_VERSION"))?;
            return Ok(Outcome::Done);
        }
        Verb::Help => {
            writeln!(output, "{}", protocol::usage(PROGRAM))?;
            return Ok(Outcome::Done);
        }
        Verb::Get => get(config, reach, input, &mut output),
        Verb::Store => store(config, input, notices),
        Verb::Erase => erase(config, input, notices),
        Verb::List => list(config, &mut output),
    };
    match reply {
        Ok(Reply::Done) => Ok(Outcome::Done),
        Ok(Reply::NotFound) => {
            protocol::write_failure(NOT_FOUND, &mut output)?;
            Ok(Outcome::Failed)
        }
        Err(error) => {
            let line = escape_line(&format!("keygate: {error}"));
            protocol::write_failure(&line, &mut output)?;
            Ok(Outcome::Failed)
        }
    }
}

/// `get`: a fresh token for the registry, from the same session git's
/// `get` uses.
fn get(
    config: &GitConfig,
    reach: Reach<'_>,
    input: impl Read,
    output: impl Write,
) -> Result<Reply, CommandError> {
    let server_url = protocol::server_url(&protocol::read_request(input)?)?;
    let url = protocol::registry_url(&server_url)?;
    let account = match quick::route_url(config, &url, None)? {
        Decision::NotOurs => return Ok(Reply::NotFound),
        Decision::Fresh(fresh) => {
            return answer(&server_url, &fresh.provider, &fresh.record, output);
        }
        Decision::NeedsSession(account) => *account,
    };
    let store = store::open_for(config)?;
    let session = Session::for_account(config, &account, store.as_ref(), move || {
        reach.for_git(config)
    });
    let record = session.fresh_token(Lookup::Cached)?;
    answer(&server_url, &account.provider, &record, output)
}

fn answer(
    server_url: &str,
    provider: &Provider,
    record: &store::TokenRecord,
    output: impl Write,
) -> Result<Reply, CommandError> {
    let credentials = present::docker_credentials(server_url, provider, record)
        .ok_or(CommandError::NoAccessToken)?;
    // Docker's clients read this user name as "the secret is a refresh
    // token for the registry's own OAuth endpoint": never send it.
    if credentials.username == IDENTITY_TOKEN_USER {
        return Err(CommandError::Unconfigured(format!(
            "{} is {IDENTITY_TOKEN_USER}, which Docker's clients take for a registry refresh token; set the user name the registry wants with the token (oauth2, x-access-token)",
            Key::Username.full_name()
        )));
    }
    credentials.write(output)?;
    Ok(Reply::Done)
}

/// What [`serve_quickly`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Quick {
    /// The client has its credentials.
    Served,
    /// keygate has nothing for the registry, and said so ([`NOT_FOUND`]):
    /// exit status 1.
    NotFound,
    /// Only the whole of keygate can answer.
    NeedsKeygate,
}

/// `get` as the front program answers it (see
/// `src/bin/git-credential-keygate.rs`): a fresh token from the file store
/// or the kernel cache, or nothing for a registry keygate does not handle.
/// Anything else, errors included, is keygate's to answer.
pub fn serve_quickly(request: &[u8], mut output: impl Write) -> Result<Quick, CommandError> {
    let Ok(server_url) = protocol::server_url(request) else {
        return Ok(Quick::NeedsKeygate);
    };
    let Ok(url) = protocol::registry_url(&server_url) else {
        return Ok(Quick::NeedsKeygate);
    };
    let Ok(config) = GitConfig::load() else {
        return Ok(Quick::NeedsKeygate);
    };
    match quick::answer_url(&config, &url, None) {
        Ok(Decision::NotOurs) => {
            protocol::write_failure(NOT_FOUND, &mut output)?;
            Ok(Quick::NotFound)
        }
        Ok(Decision::Fresh(fresh)) => {
            match present::docker_credentials(&server_url, &fresh.provider, &fresh.record) {
                Some(credentials) if credentials.username != IDENTITY_TOKEN_USER => {
                    credentials.write(output)?;
                    Ok(Quick::Served)
                }
                _ => Ok(Quick::NeedsKeygate),
            }
        }
        Ok(Decision::NeedsSession(_)) | Err(_) => Ok(Quick::NeedsKeygate),
    }
}

/// `store`, which `docker login` and `podman login` run after a login:
/// keygate keeps no passwords. For a registry it serves, the login is
/// accepted (the client reports success and keygate's tokens go on being
/// used) and a pasted password is said to be dropped; for any other, it
/// is refused, so the person does not believe a password was kept.
fn store(
    config: &GitConfig,
    input: impl Read,
    mut notices: impl Write,
) -> Result<Reply, CommandError> {
    let request = StoreRequest::parse(&protocol::read_request(input)?)?;
    let url = protocol::registry_url(&request.server_url)?;
    let host = protocol::registry_host(&url);
    let Some(provider) = Provider::resolve(config, &url)? else {
        return Err(CommandError::Unconfigured(format!(
            "keygate keeps no passwords, and has no configuration for {host}; \
             set it up for keygate's own tokens (`keygate setup docker {host}`) \
             or take {host} out of credHelpers to keep a password for it"
        )));
    };
    // `docker login` re-stores what keygate's own `get` answered.
    let key = crate::session::account_key(&provider, None);
    let ours = store::open_for(config)?
        .load(&key)?
        .and_then(|record| record.access_token)
        .is_some_and(|token| token == request.secret);
    if !ours {
        writeln!(
            notices,
            "keygate: the password for {host} was not kept: keygate answers for {host} with its own OAuth tokens (`keygate login {}` to log in again)",
            key.login_url()
        )?;
    }
    Ok(Reply::Done)
}

/// `erase` (`docker logout`, `podman logout`): keygate's logout for the
/// account the registry uses, which a registry sharing a forge's login
/// (`tokensFrom`) shares with git.
fn erase(config: &GitConfig, input: impl Read, notices: impl Write) -> Result<Reply, CommandError> {
    let server_url = protocol::server_url(&protocol::read_request(input)?)?;
    let url = protocol::registry_url(&server_url)?;
    if Provider::resolve(config, &url)?.is_none() {
        return Ok(Reply::NotFound);
    }
    super::account::logout(config, url.as_str(), notices)?;
    Ok(Reply::Done)
}

/// `list`: the registries whose `credHelpers` entry is keygate and that
/// keygate holds a login for, with the user name it answers. Never git
/// hosts: clients that list (Docker's `credsStore`) would send every
/// listed login along with a build.
fn list(config: &GitConfig, output: impl Write) -> Result<Reply, CommandError> {
    let mut registries = Vec::new();
    for file in auth_files::runtime()
        .into_iter()
        .chain(auth_files::lasting().unwrap_or_default())
    {
        if let Ok(document) = auth_files::read(&file.path) {
            registries.extend(auth_files::keygate_registries(&document));
        }
    }
    let store = store::open_for(config)?;
    let mut entries = BTreeMap::new();
    for registry in registries {
        let Ok(url) = protocol::registry_url(&registry) else {
            continue;
        };
        let Some(provider) = Provider::resolve(config, &url)? else {
            continue;
        };
        let key = crate::session::account_key(&provider, None);
        if store.load(&key)?.is_some() {
            entries.insert(registry, provider.wire_username(None));
        }
    }
    protocol::write_list(&entries, output)?;
    Ok(Reply::Done)
}

/// `keygate setup docker` as typed; the field comments are its `--help`.
#[derive(clap::Args)]
pub struct SetupArgs {
    /// The registry: its host (registry.gitlab.com, ghcr.io, 127.0.0.1:5000) or URL
    pub registry: String,
    /// Show what would be written; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// What `keygate setup docker` did.
#[derive(Debug, Serialize)]
pub struct SetupReport {
    /// The `credHelpers` key: the registry's host (and port).
    pub registry: String,
    pub files: Vec<AuthFileReport>,
    /// keygate's settings for the registry, when it has some.
    pub configured: Option<Configured>,
    pub next_steps: Vec<String>,
}

/// One auth file a client reads, and what setup did to it.
#[derive(Debug, Serialize)]
pub struct AuthFileReport {
    pub path: std::path::PathBuf,
    /// Who reads it: `Docker`, or `podman, skopeo, buildah`.
    pub readers: &'static str,
    /// `unchanged` (already keygate), `set`, or `would-set` (`--dry-run`).
    pub state: &'static str,
    /// The helper the entry named before, when another.
    pub was: Option<String>,
    /// A password saved for the registry (`auths`), unused once
    /// `credHelpers` names keygate.
    pub saved_login: bool,
}

/// How keygate serves the registry.
#[derive(Debug, Serialize)]
pub struct Configured {
    pub server: String,
    /// The forge whose login it shares (`tokensFrom`), if any.
    pub login_of: Option<String>,
    /// The user name clients are given with the token.
    pub username: String,
}

/// `keygate setup docker <registry>`: points the registry's `credHelpers`
/// entry at keygate in Docker's config and the containers auth file
/// (every other entry kept), then says what is left: keygate's settings
/// for the registry, the program on PATH, a saved login that would be
/// used first.
pub fn setup(
    config: &GitConfig,
    args: SetupArgs,
    output: impl Write,
) -> Result<Outcome, CommandError> {
    let url = protocol::registry_url(&args.registry)?;
    let host = protocol::registry_host(&url);
    let server = config::origin_of(&url);
    let server = server.as_str().trim_end_matches('/');
    let mut report = SetupReport {
        registry: host.clone(),
        files: Vec::new(),
        configured: None,
        next_steps: Vec::new(),
    };

    for file in auth_files::lasting()? {
        let readers = match file.reader {
            Reader::Docker => "Docker",
            Reader::Containers => "podman, skopeo, buildah",
        };
        let set = if args.dry_run { "would-set" } else { "set" };
        let (state, was) = match auth_files::point_at_keygate(&file.path, &host, args.dry_run)? {
            Edit::Unchanged => ("unchanged", None),
            Edit::Added => (set, None),
            Edit::Replaced(before) => (set, Some(before)),
        };
        let document = auth_files::read(&file.path).unwrap_or_default();
        report.files.push(AuthFileReport {
            saved_login: auth_files::has_saved_login(&document, &host),
            path: file.path,
            readers,
            state,
            was,
        });
    }
    if let Some(file) = auth_files::runtime()
        && auth_files::read(&file.path).is_ok_and(|d| auth_files::has_saved_login(&d, &host))
    {
        report.next_steps.push(format!(
            "podman, skopeo and buildah use the login saved in {} before keygate: run `podman logout {host}`",
            file.path.display()
        ));
    }

    match Provider::resolve(config, &url) {
        Ok(Some(provider)) => {
            let shared = provider.server.as_str().trim_end_matches('/');
            report.configured = Some(Configured {
                server: server.to_owned(),
                login_of: (shared != server).then(|| shared.to_owned()),
                username: provider.wire_username(None),
            });
        }
        Ok(None) => report.next_steps.push(format!(
            "configure keygate for {server}: to share a forge's login, `{}` (and add the registry's scopes to the forge's `scopes`); else its own client, `{}` and `{}`; see docs/containers.md",
            config::set_key_command(server, Key::TokensFrom, "https://forge.example.com"),
            config::set_key_command(server, Key::ClientId, "<id>"),
            config::set_key_command(server, Key::Issuer, "<issuer URL>"),
        )),
        Err(error) => report
            .next_steps
            .push(format!("fix keygate's settings for {server}: {error}")),
    }
    if !on_path(PROGRAM) {
        report.next_steps.push(format!(
            "put {PROGRAM} on PATH: install.sh installs it beside keygate"
        ));
    }
    super::print_setup_report(
        output,
        args.json,
        &report,
        || report_text(&report),
        &report.next_steps,
    )
}

/// The report as lines for a person. What came from the files (another
/// helper's name) or the configuration cannot drive the terminal.
fn report_text(report: &SetupReport) -> String {
    let host = &report.registry;
    let mut out = String::new();
    for file in &report.files {
        let path = format!("{} ({})", file.path.display(), file.readers);
        out += &match (file.state, &file.was) {
            ("unchanged", _) => format!("unchanged: {path}: credHelpers[{host}] is keygate\n"),
            (state, was) => {
                let would = if state == "would-set" { "would " } else { "" };
                let was = was
                    .as_ref()
                    .map(|before| format!(" (was {})", escape_line(before)))
                    .unwrap_or_default();
                format!("{would}set: {path}: credHelpers[{host}] = keygate{was}\n")
            }
        };
        if file.saved_login {
            out += &format!(
                "note: {path} still holds a saved password for {host} (auths), unused now that credHelpers names keygate; delete that entry to be rid of it\n"
            );
        }
    }
    if let Some(configured) = &report.configured {
        let login = configured
            .login_of
            .as_ref()
            .map(|shared| format!(", sharing the login of {shared}"))
            .unwrap_or_default();
        out += &escape_line(&format!(
            "keygate: configured for {}{login}; clients get user name {}",
            configured.server, configured.username
        ));
        out.push('\n');
    }
    for step in &report.next_steps {
        out += &format!("left to you: {}\n", escape_line(step));
    }
    out
}

/// The `credHelpers` entries for `host` in the files clients read, each
/// with its file: for `keygate doctor`.
pub(crate) fn helper_entries(host: &str) -> Vec<(std::path::PathBuf, String)> {
    auth_files::runtime()
        .into_iter()
        .chain(auth_files::lasting().unwrap_or_default())
        .filter_map(|file| {
            let document = auth_files::read(&file.path).ok()?;
            let helper = document.get("credHelpers")?.get(host)?.as_str()?.to_owned();
            Some((file.path, helper))
        })
        .collect()
}

/// Whether a program of that name is on PATH, as clients look it up.
pub(crate) fn on_path(program: &str) -> bool {
    let name = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(&name).is_file()))
}

impl From<AuthFileError> for CommandError {
    fn from(error: AuthFileError) -> Self {
        CommandError::AuthFile(error)
    }
}

impl From<DockerProtocolError> for CommandError {
    fn from(error: DockerProtocolError) -> Self {
        CommandError::DockerProtocol(error)
    }
}
