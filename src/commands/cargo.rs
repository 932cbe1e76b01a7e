//! keygate as cargo's credential provider (`keygate --cargo-plugin`, as
//! cargo runs it), and `keygate setup cargo <index-url>`, which makes it
//! one for a registry in cargo's configuration.
//!
//! A registry is served when keygate has a `keygate.<url>` section (or a
//! preset) for its index URL without `sparse+`: the token is the one git
//! gets for that origin, from the same session (one refresh for every
//! caller), presented as the proxy presents it (`keygate.<url>.authType`).

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use url::Url;

use super::{CommandError, Outcome, Reach, account, url_username};
use crate::cargo_credential::{self, Action, Answer, Refusal, Request};
use crate::config::{self, GitConfig, Provider};
use crate::session::quick::{self, Account, Decision};
use crate::session::{self, Lookup, Session, present};
use crate::store;
use crate::text::shell_command;

/// The one argument cargo gives a credential provider; what was configured
/// after the program comes in the request's `args`.
pub const PLUGIN_FLAG: &str = "--cargo-plugin";

/// The word `credential-provider` names keygate's provider with, after
/// the program: `["/abs/path/keygate", "cargo"]`.
pub const PROVIDER_ARG: &str = "cargo";

/// The second argument with which the front program hands a conversation
/// over (`keygate --cargo-plugin --hello-sent`): it has said hello
/// already, and cargo would take a second hello for a broken answer.
/// cargo itself never gives a second argument.
pub const HELLO_SENT_FLAG: &str = "--hello-sent";

/// What the front program read of cargo's input before handing over:
/// keygate reads it before the rest of its stdin, so the conversation goes
/// on where the front left it. keygate takes it out of its environment
/// first thing (see [`crate::sys::take_env_vars`]).
pub const HANDED_OVER_ENV: &str = "KEYGATE_CARGO_READ";

/// Where `keygate --cargo-plugin` starts the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// From the beginning: keygate says hello (as cargo runs it).
    Hello,
    /// Where the front program left it: after its hello, with `read`
    /// (the start of the request it could not answer) read from stdin.
    HandedOver { read: Vec<u8> },
}

/// `keygate --cargo-plugin`: says hello, then answers each request on
/// `input` until cargo closes it. An error goes back to cargo as an
/// answer, after which keygate still exits 0, as cargo expects.
pub fn provider(
    config: &GitConfig,
    reach: Reach<'_>,
    start: Start,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<(), CommandError> {
    let read = match start {
        Start::Hello => {
            cargo_credential::write_hello(&mut output)?;
            Vec::new()
        }
        Start::HandedOver { read } => read,
    };
    let mut input = io::Cursor::new(read).chain(input);
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let answer = match Request::read(&line) {
            Ok(request) => answer(config, reach, &request),
            Err(error) => Err(Refusal::other(&error.to_string())),
        };
        cargo_credential::write_answer(&mut output, &answer)?;
    }
}

/// What [`serve_quickly`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Quick {
    /// cargo has its answer: a fresh token, or `url-not-supported`.
    Served,
    /// Only the whole of keygate can answer.
    NeedsKeygate,
}

/// One request as the front program answers it (see
/// `src/bin/git-credential-keygate.rs`): a `get` with a fresh token from
/// the file store or the kernel cache, or `url-not-supported` for a
/// registry keygate does not handle, both as keygate answers them.
/// Anything else, errors included, is keygate's to answer.
///
/// # Errors
///
/// The answer could not be written.
pub fn serve_quickly(
    config: &GitConfig,
    line: &str,
    output: impl Write,
) -> Result<Quick, CommandError> {
    let Ok(request) = Request::read(line) else {
        return Ok(Quick::NeedsKeygate);
    };
    let Some(url) = servable_url(&request) else {
        cargo_credential::write_answer(output, &Err(Refusal::UrlNotSupported))?;
        return Ok(Quick::Served);
    };
    let username = url_username(&url);
    let get = matches!(request.action, Action::Get(_)) && check_args(&request.args).is_ok();
    // Only a `get` may look at the stores; any request learns here whether
    // the registry is keygate's at all.
    let decision = if get {
        quick::answer_url(config, &url, username.as_deref())
    } else {
        quick::route_url(config, &url, username.as_deref())
    };
    let answer = match decision {
        Ok(Decision::NotOurs) => Err(Refusal::UrlNotSupported),
        Ok(Decision::Fresh(fresh)) if get => {
            match present::cargo_answer(&fresh.provider, &fresh.record) {
                Some(answer) => Ok(answer),
                None => return Ok(Quick::NeedsKeygate),
            }
        }
        _ => return Ok(Quick::NeedsKeygate),
    };
    cargo_credential::write_answer(output, &answer)?;
    Ok(Quick::Served)
}

/// The answer to one request.
fn answer(config: &GitConfig, reach: Reach<'_>, request: &Request) -> Result<Answer, Refusal> {
    let Some(url) = servable_url(request) else {
        return Err(Refusal::UrlNotSupported);
    };
    let provider = match Provider::resolve(config, &url) {
        Ok(Some(provider)) => provider,
        Ok(None) => return Err(Refusal::UrlNotSupported),
        Err(error) => return Err(Refusal::other(&error.to_string())),
    };
    check_args(&request.args)?;
    let failed = |error: CommandError| Refusal::other(&error.to_string());
    match &request.action {
        Action::Get(operation) => {
            tracing::debug!(
                operation = operation.name(),
                server = %provider.server,
                "cargo asked for a token"
            );
            let record = fresh_record(config, provider.clone(), &url, reach).map_err(failed)?;
            present::cargo_answer(&provider, &record)
                .ok_or_else(|| failed(CommandError::NoAccessToken))
        }
        Action::Login(options) => {
            if options.token.is_some() {
                return Err(Refusal::other(&format!(
                    "keygate gets tokens for {} by OAuth and keeps none given to it; run `cargo login` for this registry without a token, or `{}`",
                    config::origin_of(&url).as_str().trim_end_matches('/'),
                    session::login_command(url.as_str())
                )));
            }
            login(config, provider, &url, reach).map_err(failed)?;
            Ok(Answer::Login)
        }
        Action::Logout => {
            account::logout(config, url.as_str(), io::stderr()).map_err(failed)?;
            Ok(Answer::Logout)
        }
        Action::Unknown => Err(Refusal::OperationNotSupported),
    }
}

/// `cargo login`: a login unless the account has one that works. cargo
/// asks for a `read` token before it sends `login` (to find the
/// registry's API), and that already logged in where nothing was kept: a
/// forced login would send the person to the browser twice. To log in as
/// someone else, `cargo logout` first.
fn login(
    config: &GitConfig,
    provider: Provider,
    url: &Url,
    reach: Reach<'_>,
) -> Result<(), CommandError> {
    let account = Account::new(provider, url_username(url).as_deref());
    let store = store::open_for(config)?;
    let session =
        Session::for_account(config, &account, store.as_ref(), move || reach.for_person());
    let record = session.fresh_token(Lookup::Whole)?;
    account::say_logged_in(io::stderr(), &session, &record, store.as_ref())
}

/// The URL keygate's configuration is matched against for `request`, or
/// `None` when keygate answers `url-not-supported` whatever it holds: the
/// one rule for keygate and the small program alike.
///
/// cargo names every registry of its configuration; an index a manifest
/// names by URL (`registry-index`, in anyone's git or path dependency)
/// comes without a name. Its config.json, which may be anybody's file on
/// the forge's origin, tells cargo where else to send the token (`dl`,
/// `api`): only the person's own registries get one.
fn servable_url(request: &Request) -> Option<Url> {
    request.registry.name.as_ref()?;
    registry_url(&request.registry.index_url)
}

/// The index URL without cargo's `sparse+`. `None` for anything but
/// http(s).
fn registry_url(index_url: &str) -> Option<Url> {
    let plain = index_url.strip_prefix("sparse+").unwrap_or(index_url);
    Url::parse(plain)
        .ok()
        .filter(|url| matches!(url.scheme(), "https" | "http"))
}

/// `credential-provider = ["/abs/path/keygate", "cargo"]` is the only
/// configuration keygate takes: any other argument is a mistake to say
/// rather than ignore.
fn check_args(args: &[String]) -> Result<(), Refusal> {
    let rest = match args.split_first() {
        Some((first, rest)) if first == PROVIDER_ARG => rest,
        _ => args,
    };
    if rest.is_empty() {
        return Ok(());
    }
    Err(Refusal::other(&format!(
        "keygate takes no arguments from cargo (got {rest:?}); configure `credential-provider = [\"/path/to/keygate\", \"cargo\"]`"
    )))
}

/// A fresh token for the account the index URL names: the session git's
/// `get` uses, with git's rules for who may be asked.
fn fresh_record(
    config: &GitConfig,
    provider: Provider,
    url: &Url,
    reach: Reach<'_>,
) -> Result<store::TokenRecord, CommandError> {
    if let Some(record) = session::token_from_env(&provider) {
        return Ok(record);
    }
    let account = Account::new(provider, url_username(url).as_deref());
    let store = store::open_for(config)?;
    let session = Session::for_account(config, &account, store.as_ref(), move || {
        reach.for_git(config)
    });
    Ok(session.fresh_token(Lookup::Cached)?)
}

/// `keygate setup cargo` as typed; the field comments are its `--help`.
#[derive(clap::Args)]
pub struct SetupArgs {
    /// The registry's index URL, as cargo names it: sparse+https://host/path/
    pub index_url: String,
    /// The registry's name in cargo's configuration (default: its host, with dashes)
    #[arg(long)]
    pub name: Option<String>,
    /// Show what would be written; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CargoSetupError {
    #[error(
        "{index:?} is not a registry index URL; give one like sparse+https://registry.example.com/index/"
    )]
    NotAnIndex { index: String },
    #[error(
        "{name:?} cannot name a cargo registry: use letters, digits, `-` and `_`, starting with a letter"
    )]
    BadName { name: String },
    #[error("cannot find cargo's home: set CARGO_HOME or HOME")]
    NoCargoHome,
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not TOML cargo can read ({reason}); fix it, then run this again", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error(
        "{} already names registry {name:?} with index {existing:?}; choose another with --name",
        path.display()
    )]
    OtherIndex {
        path: PathBuf,
        name: String,
        existing: String,
    },
    #[error("{} holds `{key}` as something other than a table; fix it, then run this again", path.display())]
    NotATable { path: PathBuf, key: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot tell where keygate is installed: {0}")]
    NoExe(io::Error),
}

/// What `keygate setup cargo` did.
#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub registry: String,
    pub index: String,
    pub config_file: PathBuf,
    /// `written`, `present` (already so), `would-write` (`--dry-run`), or
    /// `not-written` (a step is left).
    pub state: &'static str,
    /// The lines that make keygate the registry's provider.
    pub entry: String,
    pub next_steps: Vec<String>,
}

/// `keygate setup cargo <index-url>`: writes `[registries.NAME]` with the
/// index and keygate as its credential provider into cargo's
/// `config.toml`, keeping everything else in it. Nothing is written while
/// keygate has no configuration for the registry's server: cargo would
/// then find no provider for it.
pub fn setup(
    config: &GitConfig,
    args: SetupArgs,
    output: impl Write,
) -> Result<Outcome, CommandError> {
    let index = args.index_url.trim().to_owned();
    let url = registry_url(&index).ok_or_else(|| CargoSetupError::NotAnIndex {
        index: index.clone(),
    })?;
    let name = match args.name {
        Some(name) => name,
        None => default_name(&url),
    };
    if !valid_name(&name) {
        return Err(CargoSetupError::BadName { name }.into());
    }
    let program = provider_program(&std::env::current_exe().map_err(CargoSetupError::NoExe)?);
    let program = program.to_string_lossy().into_owned();
    let path = config_path(&cargo_home()?);
    let configured = Provider::resolve(config, &url)?.is_some();
    let mut report = SetupReport {
        registry: name.clone(),
        index: index.clone(),
        config_file: path.clone(),
        state: "not-written",
        entry: entry_text(&name, &index, &program),
        next_steps: Vec::new(),
    };
    if configured {
        let current = read_config(&path)?;
        let updated = with_registry(&current, &path, &name, &index, &program)?;
        report.state = if updated == current {
            "present"
        } else if args.dry_run {
            "would-write"
        } else {
            write_config(&path, &updated)?;
            "written"
        };
    } else {
        let origin = config::origin_of(&url);
        let server = origin.as_str().trim_end_matches('/');
        report.next_steps.push(format!(
            "keygate has no configuration for {server}: run `{}`, then this again",
            shell_command(&["keygate".into(), "setup".into(), server.into()])
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

fn report_text(report: &SetupReport) -> String {
    let file = report.config_file.display();
    let mut out = format!(
        "keygate setup cargo for registry {} ({})\n",
        report.registry, report.index
    );
    out += &match report.state {
        "written" => format!("  written to {file}:\n"),
        "present" => format!("  already in {file}:\n"),
        "would-write" => format!("  would write to {file}:\n"),
        _ => format!("  not written to {file} yet:\n"),
    };
    for line in report.entry.lines() {
        out += &format!("    {line}\n");
    }
    if report.next_steps.is_empty() {
        out += &format!(
            "  depend on its crates with `registry = \"{}\"`; cargo asks keygate for every token\n",
            report.registry
        );
    } else {
        out += "to finish, do this:\n";
        for step in &report.next_steps {
            out += &format!("  {step}\n");
        }
    }
    out.lines()
        .map(|line| crate::text::escape_line(line) + "\n")
        .collect()
}

/// cargo-credential-keygate's name, beside keygate where install.sh links it.
const CONVENTIONAL_PROGRAM: &str = "cargo-credential-keygate";

/// The program cargo is told to run: the `cargo-credential-keygate`
/// beside keygate (`exe`) where there is one, since install.sh points it
/// at the front program, which answers a cached token without starting
/// keygate; else keygate itself. The link's own path, so that a later
/// install.sh choosing another target needs no new setup.
fn provider_program(exe: &Path) -> PathBuf {
    let name = format!("{CONVENTIONAL_PROGRAM}{}", std::env::consts::EXE_SUFFIX);
    let beside = exe.with_file_name(name);
    if beside.is_file() {
        beside
    } else {
        exe.to_owned()
    }
}

/// Whether cargo running `program` runs keygate: keygate, its front
/// program, or cargo's conventional name for it.
pub(crate) fn names_keygate(program: &str) -> bool {
    Path::new(program)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .is_some_and(|stem| {
            ["keygate", CONVENTIONAL_PROGRAM, "git-credential-keygate"].contains(&stem)
        })
}

/// cargo's user configuration as `keygate doctor` reads it.
pub(crate) struct CargoConfig {
    pub file: PathBuf,
    pub registries: Vec<ConfiguredRegistry>,
    /// `[registry] global-credential-providers` lists keygate.
    pub global_names_keygate: bool,
}

/// A `[registries.NAME]` table.
pub(crate) struct ConfiguredRegistry {
    pub name: String,
    pub index: String,
    /// The index URL keygate's configuration is matched against.
    pub url: Option<Url>,
    /// The program of its `credential-provider`, when it has one.
    pub program: Option<String>,
}

/// The registries in cargo's own configuration file (`$CARGO_HOME`'s; a
/// project's `.cargo/config.toml` may add more), or `None` when there is
/// none cargo could read.
pub(crate) fn configured_registries() -> Option<CargoConfig> {
    use toml_edit::{DocumentMut, Item, Value};

    let file = config_path(&cargo_home().ok()?);
    let document: DocumentMut = read_config(&file).ok()?.parse().ok()?;
    // `"path args"` or `["path", "args"]`: the program is the first word.
    let program = |item: &Item| match item.as_value()? {
        Value::String(line) => line.value().split(' ').next().map(str::to_owned),
        Value::Array(words) => words.get(0)?.as_str().map(str::to_owned),
        _ => None,
    };
    let registries = document
        .get("registries")
        .and_then(Item::as_table_like)
        .map(|table| {
            table
                .iter()
                .filter_map(|(name, entry)| {
                    let entry = entry.as_table_like()?;
                    let index = entry.get("index")?.as_str()?.to_owned();
                    Some(ConfiguredRegistry {
                        name: name.to_owned(),
                        url: registry_url(&index),
                        index,
                        program: entry.get("credential-provider").and_then(program),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let global_names_keygate = document
        .get("registry")
        .and_then(|registry| registry.get("global-credential-providers"))
        .and_then(Item::as_array)
        .is_some_and(|providers| {
            providers.iter().any(|provider| {
                provider
                    .as_str()
                    .and_then(|line| line.split(' ').next())
                    .is_some_and(names_keygate)
            })
        });
    Some(CargoConfig {
        file,
        registries,
        global_names_keygate,
    })
}

/// `git.example.com` → `git-example-com`: cargo names registries with
/// letters, digits, `-` and `_`.
fn default_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or("registry");
    let name: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name
    } else {
        format!("r-{name}")
    }
}

/// cargo's rule for registry names (those of crates): ASCII letters,
/// digits, `-` and `_`, not starting with a digit or `-`.
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `$CARGO_HOME`, else `~/.cargo`, as cargo finds it.
fn cargo_home() -> Result<PathBuf, CargoSetupError> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    std::env::home_dir()
        .map(|home| home.join(".cargo"))
        .ok_or(CargoSetupError::NoCargoHome)
}

/// `config.toml` in cargo's home, or the older `config` where only that
/// exists (cargo reads `config` first when both do).
fn config_path(home: &Path) -> PathBuf {
    let legacy = home.join("config");
    if legacy.is_file() {
        legacy
    } else {
        home.join("config.toml")
    }
}

/// A config file cargo would read is at most this big.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_config(path: &Path) -> Result<String, CargoSetupError> {
    let read = |source| CargoSetupError::Read {
        path: path.to_owned(),
        source,
    };
    // A config kept elsewhere and linked here (dotfiles) is edited where
    // it lives; the link stays.
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => return Err(read(error)),
    };
    let bytes = crate::sys::read_own(&real, MAX_CONFIG_BYTES).map_err(read)?;
    String::from_utf8(bytes).map_err(|_| CargoSetupError::Parse {
        path: path.to_owned(),
        reason: "not UTF-8".into(),
    })
}

fn write_config(path: &Path, text: &str) -> Result<(), CargoSetupError> {
    let write = |source| CargoSetupError::Write {
        path: path.to_owned(),
        source,
    };
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    if let Some(dir) = real.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    crate::sys::write_private_atomically(&real, text.as_bytes()).map_err(write)
}

/// `config` with `[registries.NAME]` holding `index` and keygate as its
/// credential provider; comments, order and every other setting kept.
fn with_registry(
    config: &str,
    path: &Path,
    name: &str,
    index: &str,
    program: &str,
) -> Result<String, CargoSetupError> {
    use toml_edit::{Array, DocumentMut, Item, Table, value};

    let mut document: DocumentMut =
        config
            .parse()
            .map_err(|e: toml_edit::TomlError| CargoSetupError::Parse {
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })?;
    let not_a_table = |key: &str| CargoSetupError::NotATable {
        path: path.to_owned(),
        key: key.to_owned(),
    };
    let registries = document
        .entry("registries")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_like_mut()
        .ok_or_else(|| not_a_table("registries"))?;
    let registry = registries
        .entry(name)
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(&format!("registries.{name}")))?;
    match registry.get("index").and_then(Item::as_str) {
        Some(existing) if existing == index => {}
        Some(existing) => {
            return Err(CargoSetupError::OtherIndex {
                path: path.to_owned(),
                name: name.to_owned(),
                existing: existing.to_owned(),
            });
        }
        None => {
            registry.insert("index", value(index));
        }
    }
    let wanted: Array = [program, PROVIDER_ARG].into_iter().collect();
    let present = registry
        .get("credential-provider")
        .and_then(Item::as_array)
        .is_some_and(|array| {
            array
                .iter()
                .map(|v| v.as_str())
                .eq(wanted.iter().map(|v| v.as_str()))
        });
    if !present {
        registry.insert("credential-provider", value(wanted));
    }
    Ok(document.to_string())
}

/// The lines `[registries.NAME]` gets, as a person would write them.
fn entry_text(name: &str, index: &str, program: &str) -> String {
    with_registry("", Path::new("config.toml"), name, index, program).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(config: &str) -> String {
        with_registry(
            config,
            Path::new("config.toml"),
            "kg",
            "sparse+https://r.example/index/",
            "/opt/keygate",
        )
        .unwrap()
    }

    #[test]
    fn the_index_url_without_sparse_is_what_config_matches() {
        assert_eq!(
            registry_url("sparse+https://r.example:8443/api/cargo/")
                .unwrap()
                .as_str(),
            "https://r.example:8443/api/cargo/"
        );
        assert_eq!(
            registry_url("https://r.example/index.git")
                .unwrap()
                .as_str(),
            "https://r.example/index.git"
        );
        assert!(registry_url("sparse+file:///tmp/index").is_none());
        assert!(registry_url("ssh://git@r.example/index.git").is_none());
        assert!(registry_url("not a url").is_none());
    }

    #[test]
    fn only_the_configured_word_is_taken_as_an_argument() {
        assert!(check_args(&[]).is_ok());
        assert!(check_args(&["cargo".into()]).is_ok());
        assert!(check_args(&["cargo".into(), "--x".into()]).is_err());
        assert!(check_args(&["--x".into()]).is_err());
    }

    #[test]
    fn an_empty_config_gets_the_registry() {
        assert_eq!(
            with(""),
            "[registries.kg]\nindex = \"sparse+https://r.example/index/\"\ncredential-provider = [\"/opt/keygate\", \"cargo\"]\n"
        );
    }

    #[test]
    fn everything_else_is_kept_and_a_second_run_changes_nothing() {
        let config = "# mine\n[build]\njobs = 2 # two cores\n\n[registries.other]\nindex = \"sparse+https://o.example/\"\n\n[net]\nretry = 3\n";
        let once = with(config);
        assert!(once.starts_with(
            "# mine\n[build]\njobs = 2 # two cores\n\n[registries.other]\nindex = \"sparse+https://o.example/\"\n"
        ));
        assert!(once.contains("[net]\nretry = 3\n"), "{once}");
        assert!(once.contains("[registries.kg]\nindex = \"sparse+https://r.example/index/\"\ncredential-provider = [\"/opt/keygate\", \"cargo\"]\n"), "{once}");
        assert_eq!(with(&once), once);
    }

    #[test]
    fn an_existing_entry_gets_keygate_as_its_provider() {
        let config = "[registries.kg]\nindex = \"sparse+https://r.example/index/\" # ours\ncredential-provider = \"cargo:token\"\n";
        assert_eq!(
            with(config),
            "[registries.kg]\nindex = \"sparse+https://r.example/index/\" # ours\ncredential-provider = [\"/opt/keygate\", \"cargo\"]\n"
        );
        let inline = "registries = { kg = { index = \"sparse+https://r.example/index/\" } }\n";
        let updated = with(inline);
        let parsed: toml_edit::DocumentMut = updated.parse().unwrap();
        assert_eq!(
            parsed["registries"]["kg"]["credential-provider"][0].as_str(),
            Some("/opt/keygate")
        );
    }

    #[test]
    fn another_index_under_the_name_is_refused() {
        let config = "[registries.kg]\nindex = \"sparse+https://elsewhere.example/\"\n";
        let error = with_registry(
            config,
            Path::new("config.toml"),
            "kg",
            "sparse+https://r.example/index/",
            "/opt/keygate",
        )
        .unwrap_err();
        assert!(
            matches!(error, CargoSetupError::OtherIndex { .. }),
            "{error}"
        );
        let broken = with_registry(
            "registries = 3\n",
            Path::new("config.toml"),
            "kg",
            "sparse+https://r.example/index/",
            "/opt/keygate",
        );
        assert!(matches!(broken, Err(CargoSetupError::NotATable { .. })));
        let garbage = with_registry(
            "[registries\n",
            Path::new("config.toml"),
            "kg",
            "sparse+https://r.example/index/",
            "/opt/keygate",
        );
        assert!(matches!(garbage, Err(CargoSetupError::Parse { .. })));
    }

    #[test]
    fn cargo_runs_the_conventional_program_beside_keygate_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("keygate");
        assert_eq!(provider_program(&exe), exe);
        let conventional = exe.with_file_name(format!(
            "{CONVENTIONAL_PROGRAM}{}",
            std::env::consts::EXE_SUFFIX
        ));
        std::fs::write(&conventional, "").unwrap();
        assert_eq!(provider_program(&exe), conventional);
    }

    #[test]
    fn keygate_is_recognised_under_each_of_its_names() {
        assert!(names_keygate("/home/you/.local/bin/keygate"));
        assert!(names_keygate("cargo-credential-keygate"));
        assert!(names_keygate("/opt/bin/git-credential-keygate"));
        assert!(names_keygate("C:/keygate/keygate.exe"));
        assert!(!names_keygate("cargo:token"));
        assert!(!names_keygate("/usr/bin/cargo-credential-libsecret"));
    }

    #[test]
    fn names_follow_cargos_rule() {
        assert_eq!(
            default_name(&Url::parse("https://git.example.com/x").unwrap()),
            "git-example-com"
        );
        assert_eq!(
            default_name(&Url::parse("https://127.0.0.1:8443/x").unwrap()),
            "r-127-0-0-1"
        );
        assert!(valid_name("kg_2-x"));
        assert!(!valid_name("2kg"));
        assert!(!valid_name("k g"));
        assert!(!valid_name(""));
    }
}
