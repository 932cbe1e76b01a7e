//! `keygate doctor [URL]`: why git would still ask for a password. Each
//! check is a small function returning a [`Check`] with a verdict and,
//! when something is wrong, the fix. It changes nothing (no store is
//! chosen, no token refreshed, no config written), prints no secret (only
//! whether a token or password is there), and bounds every network call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use url::Url;

mod packages;

use super::{CommandError, Outcome};
use crate::config::{self, GitConfig, Provider, StoreKind};
use crate::gitconfig::split_key;
use crate::http::{self, HttpClient};
use crate::oauth::discovery;
use crate::store::{self, AccountKey, unix_now};
use crate::text;

/// Each server check gives up after this: doctor answers in bounded time
/// even when a server swallows the connection.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew past which fresh tokens look expired or not yet valid; a
/// minute is well inside any refresh margin yet above network jitter.
const MAX_SKEW_SECONDS: i64 = 60;
/// What a program doctor runs (`git --exec-path`, the helper's
/// `--version`) gets before doctor stops waiting and kills it.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One line of the diagnosis.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check for `raw_url` (or those that need no URL), writes
/// them as lines or `--json`, and returns [`Outcome::Unwell`] when one
/// failed so the exit code says so.
pub fn doctor(
    config: &GitConfig,
    raw_url: Option<&str>,
    json: bool,
    mut output: impl Write,
) -> Result<Outcome, CommandError> {
    let url = raw_url.map(super::parse_url).transpose()?;
    let checks = run_checks(config, url.as_ref());
    if json {
        serde_json::to_writer_pretty(&mut output, &checks)?;
        writeln!(output)?;
    } else {
        for check in &checks {
            let mark = match check.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            // Details hold hosts, paths and server text: nothing of them
            // may drive the terminal.
            writeln!(
                output,
                "{mark}  {}: {}",
                check.name,
                text::escape(&check.detail)
            )?;
            if let Some(fix) = &check.fix {
                writeln!(output, "      fix: {}", text::escape(fix))?;
            }
        }
    }
    if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Ok(Outcome::Unwell)
    } else {
        Ok(Outcome::Done)
    }
}

fn run_checks(config: &GitConfig, url: Option<&Url>) -> Vec<Check> {
    let mut checks = helper_chain(config, url);
    checks.push(helper_program(config, url));
    let provider = match url {
        Some(url) => {
            let (check, provider) = configuration(config, url);
            checks.push(check);
            provider
        }
        None => None,
    };
    checks.push(token_store(config, url, provider.as_ref()));
    if let Some(url) = url {
        checks.extend(servers(config, url, provider.as_ref()));
        checks.extend(packages::checks(config, url));
    }
    checks.extend(proxy());
    checks
}

/// One helper git will run, in order.
struct Helper {
    /// As configured: `keygate`, `store --file x`, `/abs/path`, `!sh`.
    value: String,
}

impl Helper {
    fn first_word(&self) -> &str {
        self.value.split_whitespace().next().unwrap_or_default()
    }

    fn is_keygate(&self) -> bool {
        let word = self.first_word();
        word == "keygate"
            || Path::new(word)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("git-credential-keygate"))
    }
}

/// The helpers git runs for `url`, in config order: `credential.helper`
/// and every matching `credential.<url>.helper`; an empty value clears
/// the list so far, as git does.
fn helpers_for(config: &GitConfig, url: Option<&Url>) -> Vec<Helper> {
    let mut helpers = Vec::new();
    for (key, value) in &config.entries {
        let Some((section, subsection, variable)) = split_key(key) else {
            continue;
        };
        if !section.eq_ignore_ascii_case("credential") || !variable.eq_ignore_ascii_case("helper") {
            continue;
        }
        let applies = match (subsection, url) {
            (None, _) => true,
            (Some(pattern), Some(url)) => config::url_matches(pattern, url),
            (Some(_), None) => false,
        };
        if !applies {
            continue;
        }
        if value.is_empty() {
            helpers.clear();
        } else {
            helpers.push(Helper {
                value: value.clone(),
            });
        }
    }
    helpers
}

fn helper_chain(config: &GitConfig, url: Option<&Url>) -> Vec<Check> {
    const NAME: &str = "helper chain";
    let helpers = helpers_for(config, url);
    let listed = helpers
        .iter()
        .map(|h| h.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut checks = Vec::new();
    let Some(position) = helpers.iter().position(Helper::is_keygate) else {
        checks.push(Check::fail(
            NAME,
            if helpers.is_empty() {
                "git runs no credential helper".to_owned()
            } else {
                format!("keygate is not among git's helpers ({listed})")
            },
            "git config --global --add credential.helper keygate",
        ));
        return checks;
    };
    if position == 0 {
        checks.push(Check::ok(
            NAME,
            format!("git asks keygate first ({listed})"),
        ));
    }
    for helper in &helpers[..position] {
        checks.push(helper_before(helper, url));
    }
    if let Some(url) = url {
        checks.extend(credential_settings(config, url));
    }
    checks
}

/// A helper git asks before keygate: if it answers, keygate is never asked.
fn helper_before(helper: &Helper, url: Option<&Url>) -> Check {
    const NAME: &str = "helper before keygate";
    let reset = "list keygate first: `git config --global credential.helper ''` then \
                 `git config --global --add credential.helper keygate` (re-add others after it)";
    match helper.first_word() {
        "store" => {
            let files = store_files(&helper.value);
            let holding: Vec<&PathBuf> = match url {
                Some(url) => files
                    .iter()
                    .filter(|f| store_file_has(f, url).unwrap_or(false))
                    .collect(),
                None => Vec::new(),
            };
            match (holding.first(), url) {
                (Some(file), Some(url)) => Check::fail(
                    NAME,
                    format!(
                        "`store` comes before keygate and {} holds a password for {}: git sends it and never asks keygate",
                        file.display(),
                        url.host_str().unwrap_or_default()
                    ),
                    format!(
                        "remove the {} line from {} (it holds an old password), or {reset}",
                        url.host_str().unwrap_or_default(),
                        file.display()
                    ),
                ),
                _ => Check::warn(
                    NAME,
                    "`store` comes before keygate: a password saved there would answer first",
                    reset,
                ),
            }
        }
        "cache" => Check::warn(
            NAME,
            "`cache` comes before keygate: a password it still holds answers first",
            format!("`git credential-cache exit` forgets them; or {reset}"),
        ),
        _ => Check::warn(
            NAME,
            format!(
                "`{}` comes before keygate and answers first when it has a credential",
                helper.value
            ),
            reset,
        ),
    }
}

/// The files `git credential-store` reads: `--file` or its two defaults.
fn store_files(value: &str) -> Vec<PathBuf> {
    let words: Vec<&str> = value.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        if let Some(path) = word.strip_prefix("--file=") {
            return vec![expand_home(path)];
        }
        if *word == "--file"
            && let Some(path) = words.get(i + 1)
        {
            return vec![expand_home(path)];
        }
    }
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".git-credentials"));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(xdg) = xdg {
        files.push(xdg.join("git/credentials"));
    }
    files
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Whether a credential-store file has a line for `url`'s host. Only the
/// scheme, host and port are compared; the line itself (a password) is
/// never kept or shown.
fn store_file_has(file: &Path, url: &Url) -> std::io::Result<bool> {
    let contents = match std::fs::read_to_string(file) {
        Ok(contents) => contents,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(contents.lines().any(|line| {
        Url::parse(line.trim()).is_ok_and(|stored| {
            stored.scheme() == url.scheme()
                && stored.host_str() == url.host_str()
                && stored.port_or_known_default() == url.port_or_known_default()
                && stored.password().is_some()
        })
    }))
}

/// `credential.useHttpPath` and `credential.<url>.username` as they apply.
fn credential_settings(config: &GitConfig, url: &Url) -> Vec<Check> {
    let values = config.for_url("credential", url);
    let mut checks = Vec::new();
    let use_path = values
        .get("usehttppath")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"));
    checks.push(Check::ok(
        "credential.useHttpPath",
        if use_path {
            "true: git sends the repository path, so a path-scoped keygate section can match"
        } else {
            "false: git sends only the host, so keygate sections are matched by host"
        },
    ));
    if let (Some(configured), Some(in_url)) = (values.get("username"), super::url_username(url))
        && *configured != in_url
    {
        checks.push(Check::warn(
            "credential.username",
            format!(
                "credential.username is {configured:?} but the URL names {in_url:?}: git sends the URL's, \
                 and keygate keeps the tokens of each user name apart"
            ),
            "use one user name in both, or none in the URL",
        ));
    }
    checks
}

/// The `git-credential-keygate` git will run and the keygate beside it.
fn helper_program(config: &GitConfig, url: Option<&Url>) -> Check {
    const NAME: &str = "helper program";
    let helpers = helpers_for(config, url);
    let configured = helpers.iter().find(|h| h.is_keygate());
    let word = configured.map_or("keygate", Helper::first_word);
    let program = if Path::new(word).is_absolute() {
        Some(PathBuf::from(word))
    } else {
        find_git_helper("git-credential-keygate")
    };
    let Some(program) = program.filter(|p| p.is_file()) else {
        return Check::fail(
            NAME,
            "git finds no git-credential-keygate (neither in `git --exec-path` nor on PATH)",
            "put the directory holding git-credential-keygate and keygate on PATH, or reinstall",
        );
    };
    let beside = program.with_file_name(format!("keygate{}", std::env::consts::EXE_SUFFIX));
    if !beside.is_file() {
        return Check::fail(
            NAME,
            format!(
                "{} has no keygate beside it ({})",
                program.display(),
                beside.display()
            ),
            "install keygate and git-credential-keygate into the same directory",
        );
    }
    let ours = env!("CARGO_PKG_VERSION");
    // `git-credential-keygate --version` runs the keygate beside it, which
    // is what git ends up talking to.
    match program_version(&program) {
        Some(theirs) if theirs == ours => Check::ok(
            NAME,
            format!("git runs {} (keygate {theirs})", program.display()),
        ),
        Some(theirs) => Check::warn(
            NAME,
            format!(
                "git runs {} with keygate {theirs}, this keygate is {ours}",
                program.display()
            ),
            "reinstall so that one version is on PATH",
        ),
        None => Check::fail(
            NAME,
            format!(
                "{} does not run, or did not answer --version within {}s",
                program.display(),
                PROGRAM_TIMEOUT.as_secs()
            ),
            "reinstall keygate",
        ),
    }
}

/// Where git finds `git-<name>`: its exec path first, then PATH.
fn find_git_helper(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let exec_path = stdout_within(Command::new("git").arg("--exec-path"), PROGRAM_TIMEOUT)
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out).trim()));
    let path = std::env::var_os("PATH").unwrap_or_default();
    exec_path
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.is_file())
}

fn program_version(program: &Path) -> Option<String> {
    let output = stdout_within(Command::new(program).arg("--version"), PROGRAM_TIMEOUT)?;
    let line = String::from_utf8_lossy(&output);
    line.split_whitespace().nth(1).map(str::to_owned)
}

/// `command`'s stdout once it has exited, or `None` when it cannot start
/// or is still running after `limit` (then it is killed): a helper that
/// hangs must not hang doctor.
fn stdout_within(command: &mut Command, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let (sender, receiver) = std::sync::mpsc::channel();
    // A thread of its own: a program that fills the pipe would otherwise
    // wait for us while we wait for it.
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    // A process it left behind may still hold the pipe open.
    receiver
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Which `keygate.<url>` section (or preset) applies to `url`.
fn configuration(config: &GitConfig, url: &Url) -> (Check, Option<Provider>) {
    const NAME: &str = "configuration";
    match Provider::resolve(config, url) {
        Ok(Some(provider)) => {
            let section = config::winning_subsection(config, "keygate", url);
            let mut detail = match (&section, config::has_preset(url)) {
                (Some(section), true) => {
                    format!("keygate.{section} over the preset for {}", host(url))
                }
                (Some(section), false) => format!("keygate.{section}"),
                (None, _) => format!("the preset for {}", host(url)),
            };
            detail.push_str(&format!(", grant {}", provider.policy.grant.name()));
            if !provider.client.client_id.is_empty() {
                detail.push_str(&format!(
                    ", client id from {}",
                    provider.client.client_id_source.describe()
                ));
            } else if provider.endpoints.issuer.is_some() {
                detail.push_str(
                    ", no client id configured: keygate registers one at the issuer (RFC 7591) and keeps it in the token store",
                );
            }
            match crate::oauth::federation::source_here(&provider) {
                Some(Ok(source)) => detail.push_str(&format!(", CI id token from {source}")),
                Some(Err(why)) => {
                    return (
                        Check::fail(
                            NAME,
                            format!("{detail}: {why}"),
                            config::set_key_command(
                                &origin_text(url),
                                config::Key::IdToken,
                                "env:<NAME>",
                            ),
                        ),
                        Some(provider),
                    );
                }
                None => {}
            }
            // A token exchange needs no client (RFC 8693 §2.1).
            if provider.client.client_id.is_empty()
                && provider.policy.token_env.is_none()
                && provider.endpoints.issuer.is_none()
                && !provider.policy.grant.presents_id_token()
            {
                let server = origin_text(url);
                return (
                    Check::fail(
                        NAME,
                        format!("{detail}: no client id"),
                        config::set_key_command(&server, config::Key::ClientId, "<id>"),
                    ),
                    Some(provider),
                );
            }
            (Check::ok(NAME, detail), Some(provider))
        }
        Ok(None) => (
            Check::fail(
                NAME,
                format!(
                    "no keygate.<url> section or preset applies to {}: keygate passes and git asks for a password",
                    origin_text(url)
                ),
                config::unconfigured_message(url),
            ),
            None,
        ),
        Err(error) => (
            Check::fail(NAME, error.to_string(), "fix the value it names"),
            None,
        ),
    }
}

/// The store as configured, opened only when opening it changes nothing:
/// `auto` remembers its first choice on disk, so an `auto` not yet chosen
/// is reported, not chosen.
fn token_store(config: &GitConfig, url: Option<&Url>, provider: Option<&Provider>) -> Check {
    const NAME: &str = "token store";
    let choice = match config::store_choice(config) {
        Ok(choice) => choice,
        Err(error) => return Check::fail(NAME, error.to_string(), "fix the value it names"),
    };
    if choice.kind == StoreKind::Auto {
        let chosen = store::data_dir().is_ok_and(|dir| dir.join("store").exists());
        if !chosen {
            return Check::ok(
                NAME,
                "auto, not chosen yet: the first login picks the keychain or the file",
            );
        }
    }
    // Without the kernel cache: a keychain read would fill it, and doctor
    // changes nothing. Whether it is configured is still reported.
    let store = match store::open(config::StoreChoice {
        kernel_cache: false,
        ..choice
    }) {
        Ok(store) => store,
        Err(error) => {
            return Check::fail(
                NAME,
                format!("cannot open the store: {error}"),
                "unlock the keychain, or set `git config --global keygate.store file`",
            );
        }
    };
    // The kernel cache fronts only the keychain.
    let cache = match (store.kind(), choice.kernel_cache) {
        ("file", _) => "no kernel cache",
        (_, true) => "kernel cache on",
        (_, false) => "kernel cache off",
    };
    let (Some(url), Some(provider)) = (url, provider) else {
        return Check::ok(NAME, format!("{} store, {cache}", store.kind()));
    };
    let username = super::url_username(url);
    let key = AccountKey::new(&provider.server, username.as_deref());
    let login = format!("keygate login {}", key.login_url());
    match store.load(&key) {
        Err(store::StoreError::KeychainLocked(reason)) => Check::fail(
            NAME,
            format!(
                "{} store: locked ({reason}): git gets no token for {} until it is unlocked",
                store.kind(),
                key.label()
            ),
            "unlock the keyring (log in to the desktop session, or unlock \"Login\" in your \
             keyring manager), or set `git config --global keygate.store file`",
        ),
        Err(error) => Check::fail(
            NAME,
            format!(
                "{} store: cannot read {}: {error}",
                store.kind(),
                key.label()
            ),
            "unlock the keychain, or set `git config --global keygate.store file`",
        ),
        Ok(None) => Check::warn(
            NAME,
            format!(
                "{} store, {cache}: no tokens for {} yet",
                store.kind(),
                key.label()
            ),
            login,
        ),
        Ok(Some(record)) => {
            let refresh = if record.refresh_token_rejected.is_some() {
                "refresh token rejected"
            } else if record.refresh_token.is_some() {
                "refresh token present"
            } else {
                "no refresh token"
            };
            let detail = format!(
                "{} store, {cache}: {}: {}, {refresh}",
                store.kind(),
                key.label(),
                super::status::describe_expiry(&record)
            );
            let usable = record.still_valid(unix_now())
                || (record.refresh_token.is_some() && record.refresh_token_rejected.is_none());
            if usable {
                Check::ok(NAME, detail)
            } else {
                Check::warn(NAME, detail, login)
            }
        }
    }
}

/// The git server and the OAuth token endpoint (or issuer): each reached
/// once, its clock compared with ours.
fn servers(config: &GitConfig, url: &Url, provider: Option<&Provider>) -> Vec<Check> {
    let mut targets = vec![("git server", config::origin_of(url))];
    if let Some(provider) = provider {
        let oauth = provider.endpoints.token_url.clone().or_else(|| {
            provider
                .endpoints
                .issuer
                .as_deref()
                .and_then(|i| Url::parse(i).ok())
        });
        if let Some(oauth) = oauth
            && config::origin_of(&oauth) != targets[0].1
        {
            targets.push(("oauth server", oauth));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return vec![Check::fail(
                "server",
                format!("cannot start the network checks: {error}"),
                "try again",
            )];
        }
    };
    let mut checks: Vec<Check> = targets
        .into_iter()
        .map(|(name, target)| runtime.block_on(server(config, name, &target)))
        .collect();
    if let Some(provider) = provider
        && let Some(issuer) = provider.endpoints.issuer.as_deref()
    {
        checks.push(runtime.block_on(issuer_metadata(config, provider, issuer)));
    }
    checks
}

/// The issuer's metadata, fetched as a login would (RFC 8414, then OpenID
/// Connect) and checked the same way, but never written to the metadata
/// cache: doctor changes nothing. Whether it names what this
/// configuration leaves to it: the token endpoint, and a registration
/// endpoint when no client id is configured.
async fn issuer_metadata(config: &GitConfig, provider: &Provider, issuer: &str) -> Check {
    const NAME: &str = "issuer metadata";
    let ca_files = Url::parse(issuer)
        .map(|url| config::ca_files_for(config, &url))
        .unwrap_or_default();
    let client = match HttpClient::new(&ca_files, NETWORK_TIMEOUT) {
        Ok(client) => client,
        Err(error) => return Check::fail(NAME, error.to_string(), "fix http.sslCAInfo"),
    };
    // Two locations may be tried: the whole check gets one timeout.
    let fetched = tokio::time::timeout(NETWORK_TIMEOUT, discovery::fetch(&client, issuer)).await;
    let metadata = match fetched {
        Ok(Ok(metadata)) => metadata,
        Ok(Err(error)) => {
            return Check::fail(
                NAME,
                error.to_string(),
                "check keygate.<url>.issuer: the https:// URL the server names as its issuer",
            );
        }
        Err(_) => {
            return Check::fail(
                NAME,
                format!(
                    "{issuer} did not answer within {}s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                "check the network, the proxy and keygate.<url>.issuer",
            );
        }
    };
    if provider.endpoints.token_url.is_none() && metadata.token_endpoint.is_none() {
        return Check::fail(
            NAME,
            format!("{issuer} names no token endpoint, and none is configured"),
            config::set_key_command(
                &origin_text(&provider.server),
                config::Key::TokenUrl,
                "<url>",
            ),
        );
    }
    if provider.client.client_id.is_empty()
        && provider.policy.token_env.is_none()
        && metadata.registration_endpoint.is_none()
    {
        return Check::fail(
            NAME,
            format!("{issuer} offers no client registration, and no client id is configured"),
            config::set_key_command(
                &origin_text(&provider.server),
                config::Key::ClientId,
                "<id>",
            ),
        );
    }
    let mut named = Vec::new();
    if metadata.token_endpoint.is_some() {
        named.push("token");
    }
    if metadata.authorization_endpoint.is_some() {
        named.push("authorization");
    }
    if metadata.device_authorization_endpoint.is_some() {
        named.push("device");
    }
    if metadata.registration_endpoint.is_some() {
        named.push("registration");
    }
    Check::ok(
        NAME,
        format!(
            "{issuer} publishes its metadata, issuer matching; endpoints: {}",
            named.join(", ")
        ),
    )
}

async fn server(config: &GitConfig, name: &'static str, target: &Url) -> Check {
    if let Err(error) = http::check_endpoint(target) {
        return Check::fail(name, error.to_string(), "use an https:// URL");
    }
    let ca_files = config::ca_files_for(config, target);
    let trust = match ca_files.first() {
        Some(file) => format!("trusting the system roots and {}", file.display()),
        None => "trusting the system roots".to_owned(),
    };
    let client = match HttpClient::new(&ca_files, NETWORK_TIMEOUT) {
        Ok(client) => client,
        Err(error) => return Check::fail(name, error.to_string(), "fix http.sslCAInfo"),
    };
    let request = match ::http::Request::get(target.as_str()).body(Vec::new()) {
        Ok(request) => request,
        Err(error) => return Check::fail(name, error.to_string(), "check the URL"),
    };
    let response = match client.send(request).await {
        Ok(response) => response,
        Err(error) => {
            return Check::fail(
                name,
                format!("{} unreachable ({trust}): {error}", origin_text(target)),
                "check the network, the proxy and http.sslCAInfo; git cannot reach it either",
            );
        }
    };
    let reached = format!(
        "{} answered {} ({trust})",
        origin_text(target),
        response.status().as_u16()
    );
    let date = response
        .headers()
        .get(::http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let Some(date) = date else {
        return Check::ok(name, format!("{reached}; no Date header to compare clocks"));
    };
    let theirs = i64::try_from(date.as_secs()).unwrap_or(i64::MAX);
    let ours = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    let skew = ours.saturating_sub(theirs);
    if skew.abs() > MAX_SKEW_SECONDS {
        let direction = if skew > 0 { "ahead of" } else { "behind" };
        Check::fail(
            name,
            format!(
                "{reached}; this clock is {}s {direction} the server's: fresh tokens look expired or not yet valid",
                skew.abs()
            ),
            "set the clock right (enable NTP: `timedatectl set-ntp true`)",
        )
    } else {
        Check::ok(
            name,
            format!("{reached}; clocks agree within {}s", skew.abs()),
        )
    }
}

/// The proxy, if one is running: its URL file, its CA bundle, and whether
/// `HTTPS_PROXY` in this shell points at it. The URL file holds the
/// proxy's password: only its host and port are ever shown.
fn proxy() -> Option<Check> {
    const NAME: &str = "proxy";
    let dir = store::data_dir().ok()?.join("proxy");
    let url_file = dir.join("url");
    let raw = std::fs::read_to_string(&url_file).ok()?;
    let Ok(proxy_url) = Url::parse(raw.trim()) else {
        return Some(Check::warn(
            NAME,
            format!("{} holds no URL", url_file.display()),
            "start the proxy again: `keygate proxy`",
        ));
    };
    let address = format!(
        "{}:{}",
        proxy_url.host_str().unwrap_or_default(),
        proxy_url.port_or_known_default().unwrap_or_default()
    );
    let env_proxy = ["HTTPS_PROXY", "https_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .and_then(|v| Url::parse(&v).ok());
    let points_here = env_proxy.as_ref().is_some_and(|p| {
        p.host_str() == proxy_url.host_str()
            && p.port_or_known_default() == proxy_url.port_or_known_default()
    });
    // The URL file outlives the proxy: a connection says whether it runs.
    let running = std::net::ToSocketAddrs::to_socket_addrs(&address.as_str())
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
    let export = format!("export HTTPS_PROXY=\"$(cat {})\"", url_file.display());
    if !running {
        return Some(if points_here {
            Check::fail(
                NAME,
                format!("HTTPS_PROXY points at the proxy on {address}, which is not running"),
                "start it (`keygate proxy`) or `unset HTTPS_PROXY https_proxy`",
            )
        } else {
            Check::ok(NAME, "not running")
        });
    }
    let bundle = dir.join("ca-bundle.pem");
    if !bundle.is_file() {
        return Some(Check::warn(
            NAME,
            format!("running on {address}, but {} is missing", bundle.display()),
            "restart it: `keygate proxy` writes the bundle",
        ));
    }
    Some(match env_proxy {
        _ if points_here => Check::ok(
            NAME,
            format!(
                "running on {address}, HTTPS_PROXY points at it, CA bundle {}",
                bundle.display()
            ),
        ),
        Some(other) => Check::warn(
            NAME,
            format!(
                "running on {address}, but HTTPS_PROXY points at {}:{}",
                other.host_str().unwrap_or_default(),
                other.port_or_known_default().unwrap_or_default()
            ),
            export,
        ),
        None => Check::warn(
            NAME,
            format!("running on {address}, but HTTPS_PROXY in this shell is unset"),
            export,
        ),
    })
}

fn host(url: &Url) -> &str {
    url.host_str().unwrap_or_default()
}

fn origin_text(url: &Url) -> String {
    config::origin_of(url)
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> GitConfig {
        GitConfig {
            entries: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn helpers_are_listed_in_order_and_reset_by_an_empty_value() {
        let url = Url::parse("https://git.example.com/org/repo.git").unwrap();
        let config = config(&[
            ("credential.helper", "cache"),
            ("credential.helper", ""),
            ("credential.helper", "store --file=/tmp/x"),
            ("credential.https://other.example.com.helper", "manager"),
            ("credential.https://git.example.com.helper", "keygate"),
        ]);
        let helpers: Vec<String> = helpers_for(&config, Some(&url))
            .into_iter()
            .map(|h| h.value)
            .collect();
        assert_eq!(helpers, ["store --file=/tmp/x", "keygate"]);
        assert_eq!(
            store_files("store --file=/tmp/x"),
            [PathBuf::from("/tmp/x")]
        );
        assert_eq!(
            store_files("store --file /tmp/y"),
            [PathBuf::from("/tmp/y")]
        );
    }

    #[test]
    fn keygate_is_recognised_by_name_or_path() {
        for value in [
            "keygate",
            "/usr/local/bin/git-credential-keygate",
            "keygate --x",
        ] {
            assert!(
                Helper {
                    value: value.into()
                }
                .is_keygate(),
                "{value}"
            );
        }
        for value in ["store", "manager", "!f() { keygate; }; f"] {
            assert!(
                !Helper {
                    value: value.into()
                }
                .is_keygate(),
                "{value}"
            );
        }
    }

    #[test]
    fn a_store_file_matches_by_host_and_keeps_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(&file, "https://alice:old-pass@git.example.com\n").unwrap();
        let here = Url::parse("https://git.example.com/org/repo.git").unwrap();
        let there = Url::parse("https://other.example.com/x.git").unwrap();
        assert!(store_file_has(&file, &here).unwrap());
        assert!(!store_file_has(&file, &there).unwrap());
        assert!(!store_file_has(&dir.path().join("none"), &here).unwrap());
    }
}
