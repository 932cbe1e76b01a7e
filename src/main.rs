//! keygate's command line: parse, dispatch, print the one error line,
//! choose the exit code. The work lives in the library.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;

use keygate::config::{self, GitConfig, Provider};
use keygate::helper::{self, Context, Operation};
use keygate::oauth::Browser;
use keygate::session::{self, Interaction, Revocation, Session};
use keygate::store::{self, AccountKey, TokenRecord, TokenStore, unix_now};

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "OAuth 2.0 tokens for HTTPS git, kept fresh in the OS keychain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// git credential protocol: answer a request on stdin
    Get,
    /// git credential protocol: accepted and ignored (keygate keeps its own tokens)
    Store,
    /// git credential protocol: forget the access token git says was rejected
    Erase,
    /// Authorize now, in the browser
    Login { url: String },
    /// Forget the tokens kept for a URL
    Logout {
        url: String,
        /// Also delete the client keygate registered at the server
        #[arg(long)]
        forget_client: bool,
    },
    /// List the accounts keygate holds tokens for (never a secret)
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print a fresh access token for a URL on stdout
    Token { url: String },
    /// From nothing to a working clone: find the server's OAuth settings
    /// (preset, RFC 8414/OIDC discovery, RFC 7591 registration), write them
    /// to the global git config, make keygate git's helper, log in.
    /// Exit code 3: a step is left to you (printed)
    Setup {
        url: String,
        /// The OAuth server's issuer URL, when it does not live at the URL's origin
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
        /// Show what would be written; write, register and log in nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Read an initial access token, for a registration endpoint that wants one, from stdin (`-`)
        #[arg(long, value_name = "-")]
        registration_token: Option<String>,
    },
    /// Print environment settings for a tool, e.g. `keygate env composer <url>`
    Env {
        #[arg(value_enum)]
        tool: Tool,
        url: String,
    },
    /// Hand a custom-scheme redirect to the login waiting for it (run by the OS)
    Callback { url: String },
    /// Print a completion script for a shell (install.sh installs bash's and fish's)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run a local HTTPS proxy that adds fresh tokens for configured hosts
    Proxy {
        /// Where to listen; port 0 (the default) takes a free one, and tools
        /// read the URL from the proxy's 0600 `url` file. A fixed port can be
        /// taken by another local user while the proxy is down.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Listen on a non-loopback address (the proxy password is still required)
        #[arg(long)]
        danger_allow_non_loopback: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Tool {
    /// a COMPOSER_AUTH value (JSON)
    Composer,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread is started.
    unsafe { config::take_secret_from_env() };
    init_logging();
    let command = protocol_verb().unwrap_or_else(|| Cli::parse().command);
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The one line a person reads: whatever part of it came from
            // outside (a certificate name, a path) cannot drive the terminal.
            eprintln!(
                "keygate: {}",
                keygate::text::escape_line(&error.to_string())
            );
            ExitCode::FAILURE
        }
    }
}

/// `keygate get` (or store, erase) as git runs it, before every HTTPS
/// operation: recognised without building clap's whole command tree,
/// which is a tenth of a cached `get`'s instructions. Anything else,
/// `--help` included, goes through clap.
fn protocol_verb() -> Option<Command> {
    let mut args = std::env::args_os().skip(1);
    let verb = args.next()?;
    if args.next().is_some() {
        return None;
    }
    match verb.to_str()? {
        "get" => Some(Command::Get),
        "store" => Some(Command::Store),
        "erase" => Some(Command::Erase),
        _ => None,
    }
}

fn init_logging() {
    let Some(filter) = std::env::var("KEYGATE_LOG").ok().filter(|v| !v.is_empty()) else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(true)
        .init();
}

type AnyError = Box<dyn std::error::Error>;

fn run(command: Command) -> Result<(), AnyError> {
    // These need no git config, and may run where git is not set up.
    let config = match command {
        Command::Callback { .. } | Command::Completions { .. } => GitConfig::default(),
        _ => GitConfig::load()?,
    };
    match command {
        Command::Get => credential(Operation::Get, &config),
        Command::Store => credential(Operation::Store, &config),
        Command::Erase => credential(Operation::Erase, &config),
        Command::Login { url } => login(&config, &url),
        Command::Logout { url, forget_client } => {
            logout(&config, &url)?;
            if forget_client {
                forget_client_of(&config, &url)?;
            }
            Ok(())
        }
        Command::Status { json } => status(&config, json),
        Command::Token { url } => token(&config, &url),
        Command::Setup {
            url,
            issuer,
            dry_run,
            json,
            registration_token,
        } => setup(
            &config,
            keygate::setup::Request {
                url: parse_url(&url)?,
                issuer,
                dry_run,
                registration_token: registration_token_from(registration_token)?,
            },
            json,
        ),
        Command::Env {
            tool: Tool::Composer,
            url,
        } => composer_env(&config, &url),
        Command::Callback { url } => callback(&url),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "keygate", &mut script);
            io::stdout().lock().write_all(&script)?;
            Ok(())
        }
        Command::Proxy {
            listen,
            danger_allow_non_loopback,
        } => Ok(keygate::proxy::run(
            keygate::proxy::Options {
                listen,
                danger_allow_non_loopback,
            },
            &config,
        )?),
    }
}

fn credential(operation: Operation, config: &GitConfig) -> Result<(), AnyError> {
    let browser = SystemBrowser;
    let context = Context {
        config,
        interaction: Box::new(|| interaction(config, &browser)),
    };
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    helper::serve(operation, stdin, stdout, context)?;
    Ok(())
}

/// Opens URLs with `$BROWSER` or the OS default, through the webbrowser
/// crate; the URL is printed on stderr either way. The login hands it the
/// `file://` URL of a private page, never the authorization URL: the
/// launcher's argv is readable by every local user. `$BROWSER`, xdg-open,
/// macOS `open` and Windows' file associations all take a file URL.
struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &url::Url) {
        if let Err(error) = webbrowser::open(url.as_str()) {
            eprintln!("keygate: could not open a browser ({error}); open the URL above yourself");
        }
    }
}

/// Whether keygate may ask a person, and how it can reach one.
fn interaction<'a>(config: &GitConfig, browser: &'a dyn Browser) -> Interaction<'a> {
    if let Some(reason) = environment_forbids_interaction() {
        return Interaction::Forbidden(reason.to_owned());
    }
    if config::git_forbids_interaction(config) {
        return Interaction::Forbidden("git's credential.interactive forbids interaction".into());
    }
    reach_a_person(browser).unwrap_or_else(|| Interaction::Forbidden(no_person_reason().into()))
}

/// What the person or the environment said: no interaction at all, not
/// even for an explicit `keygate login`.
fn environment_forbids_interaction() -> Option<&'static str> {
    if std::env::var("KEYGATE_INTERACTIVE").is_ok_and(|v| v == "never") {
        Some("KEYGATE_INTERACTIVE=never forbids interaction")
    } else if is_set("CI") {
        Some("CI is set, so no browser is opened")
    } else {
        None
    }
}

fn no_person_reason() -> &'static str {
    if terminal_prompts_forbidden() {
        "there is no browser or display, and GIT_TERMINAL_PROMPT=0 rules out the terminal"
    } else {
        "there is no browser, display or terminal to reach a person"
    }
}

/// git's own switch for terminal prompts. IDEs set it and still expect
/// the browser login, so it rules out only the terminal.
fn terminal_prompts_forbidden() -> bool {
    std::env::var_os("GIT_TERMINAL_PROMPT").is_some_and(|v| v == "0")
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// A browser when one can be opened here; else the terminal (device grant);
/// else nothing. Over SSH a display may be forwarded, but the browser
/// would open on the wrong machine unless `$BROWSER` says otherwise.
fn reach_a_person(browser: &dyn Browser) -> Option<Interaction<'_>> {
    let over_ssh = is_set("SSH_CONNECTION") || is_set("SSH_TTY");
    let has_display = if cfg!(all(unix, not(target_os = "macos"))) {
        is_set("DISPLAY") || is_set("WAYLAND_DISPLAY")
    } else {
        true
    };
    if is_set("BROWSER") || (has_display && !over_ssh) {
        Some(Interaction::Browser(browser))
    } else if !terminal_prompts_forbidden()
        && std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/tty")
            .is_ok()
    {
        Some(Interaction::Terminal(browser))
    } else {
        None
    }
}

/// The user name in a URL as git would send it in `username=`: decoded
/// (`alice%40corp.com` is `alice@corp.com`), so `keygate login` and git's
/// `get` name the same account.
fn url_username(url: &url::Url) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
    Some(decoded.into_owned()).filter(|u| !u.is_empty())
}

/// A URL from the command line. Not echoed back when it does not parse:
/// `https://user:TOKEN@host` typed by hand would land in an error line.
fn parse_url(raw_url: &str) -> Result<url::Url, AnyError> {
    Ok(url::Url::parse(raw_url).map_err(|e| {
        format!("invalid URL ({e}); give one like https://git.example.com/org/repo.git")
    })?)
}

fn provider_for(config: &GitConfig, raw_url: &str) -> Result<(Provider, url::Url), AnyError> {
    let url = parse_url(raw_url)?;
    let provider =
        Provider::resolve(config, &url)?.ok_or_else(|| config::unconfigured_message(&url))?;
    Ok((provider, url))
}

fn login(config: &GitConfig, raw_url: &str) -> Result<(), AnyError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let store = store::open(config::store_choice(config)?)?;
    let browser = SystemBrowser;
    // Asked for by a person, so git's credential.interactive (about git's
    // own prompts) does not apply; with no browser and no terminal the URL
    // is still printed to open by hand.
    let interaction = match environment_forbids_interaction() {
        Some(reason) => Interaction::Forbidden(reason.into()),
        None => reach_a_person(&browser).unwrap_or(Interaction::Browser(&browser)),
    };
    let session = session(config, &provider, &url, store.as_ref(), interaction);
    let record = session.login()?;
    eprintln!(
        "keygate: logged in to {} ({}), tokens kept in the {} store",
        session.key.label(),
        describe_expiry(&record),
        store.kind()
    );
    Ok(())
}

fn logout(config: &GitConfig, raw_url: &str) -> Result<(), AnyError> {
    let url = parse_url(raw_url)?;
    let store = store::open(config::store_choice(config)?)?;
    let Some(provider) = Provider::resolve(config, &url)? else {
        // Configuration gone: still forget what is stored (nothing to revoke with).
        let user = url_username(&url);
        let key = AccountKey::new(&config::origin_of(&url), user.as_deref());
        let said = if store.delete(&key)? {
            "forgot the tokens"
        } else {
            "no tokens were kept"
        };
        eprintln!("keygate: {said} for {}", key.label());
        return Ok(());
    };
    let forbidden = Interaction::Forbidden("logging out".into());
    let session = session(config, &provider, &url, store.as_ref(), forbidden);
    let label = session.key.label();
    match session.logout()? {
        (_, false) => eprintln!("keygate: no tokens were kept for {label}"),
        (Revocation::Revoked, true) => {
            eprintln!("keygate: revoked the tokens for {label} at the server and forgot them")
        }
        (Revocation::NotAttempted, true) => eprintln!(
            "keygate: forgot the tokens for {label} (the server has no revocation endpoint configured)"
        ),
        (Revocation::Failed(error), true) => eprintln!(
            "keygate: forgot the tokens for {label}, but the server did not revoke them: {error}"
        ),
    }
    Ok(())
}

/// The exit code of a `keygate setup` that left a step to the person.
const SETUP_INCOMPLETE: i32 = 3;

fn setup(config: &GitConfig, request: keygate::setup::Request, json: bool) -> Result<(), AnyError> {
    let browser = SystemBrowser;
    // Asked for by a person, as `keygate login` is.
    let interaction = match environment_forbids_interaction() {
        Some(reason) => Interaction::Forbidden(reason.into()),
        None => reach_a_person(&browser).unwrap_or(Interaction::Browser(&browser)),
    };
    let report = keygate::setup::run(config, &request, move || interaction)?;
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(report.to_text().as_bytes())?;
    }
    stdout.flush()?;
    if !report.is_complete() {
        std::process::exit(SETUP_INCOMPLETE);
    }
    Ok(())
}

/// `--registration-token -`: the token is read from stdin, never taken from
/// argv, where every local user can read it (`ps`, /proc/PID/cmdline).
fn registration_token_from(
    raw: Option<String>,
) -> Result<Option<keygate::secret::Secret>, AnyError> {
    match raw.as_deref() {
        None => Ok(None),
        Some("-") => {
            let mut line = String::new();
            io::stdin().read_line(&mut line)?;
            let token = line.trim();
            if token.is_empty() {
                return Err("no registration token on stdin".into());
            }
            Ok(Some(keygate::secret::Secret::new(token)))
        }
        // A usage error (exit 2) that never repeats the value it refuses.
        Some(_) => {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::InvalidValue,
                    "--registration-token takes `-` and reads the token from stdin: \
                     other local users can read a command line; run \
                     `keygate setup <url> --registration-token -` and type or pipe the token in",
                )
                .exit()
        }
    }
}

/// `logout --forget-client`: the dynamically registered client goes too.
fn forget_client_of(config: &GitConfig, raw_url: &str) -> Result<(), AnyError> {
    use keygate::oauth::register::Forgotten;
    let (provider, _) = provider_for(config, raw_url)?;
    let store = store::open(config::store_choice(config)?)?;
    let server = provider.server.as_str().trim_end_matches('/');
    match keygate::setup::forget_client(config, &provider, store.as_ref())? {
        Forgotten::NothingStored => {
            eprintln!("keygate: no registered client was kept for {server}")
        }
        Forgotten::Deleted => {
            eprintln!("keygate: deleted the client registered at the server for {server}")
        }
        Forgotten::KeptAtServer => eprintln!(
            "keygate: forgot the client registered for {server} (the server offers no way to delete it)"
        ),
        Forgotten::Failed(error) => eprintln!(
            "{}",
            keygate::text::escape_line(&format!(
                "keygate: forgot the client registered for {server}, but the server did not delete it: {error}"
            ))
        ),
        Forgotten::NotSent(error) => eprintln!(
            "{}",
            keygate::text::escape_line(&format!(
                "keygate: forgot the client registered for {server} here, but did not ask the server to delete it: {error}"
            ))
        ),
    }
    Ok(())
}

fn token(config: &GitConfig, raw_url: &str) -> Result<(), AnyError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let record = fresh_record(config, &provider, &url)?;
    let token = record
        .access_token
        .as_ref()
        .ok_or("the server returned no access token")?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", token.expose())?;
    Ok(())
}

/// A fresh token for `url`: from the environment when configured so,
/// else from the store, refreshing or authorizing first if needed.
fn fresh_record(
    config: &GitConfig,
    provider: &Provider,
    url: &url::Url,
) -> Result<TokenRecord, AnyError> {
    if let Some(record) = session::token_from_env(provider) {
        return Ok(record);
    }
    let store = store::open(config::store_choice(config)?)?;
    let browser = SystemBrowser;
    let interaction = interaction(config, &browser);
    Ok(session(config, provider, url, store.as_ref(), interaction).fresh_token()?)
}

fn composer_env(config: &GitConfig, raw_url: &str) -> Result<(), AnyError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let record = fresh_record(config, &provider, &url)?;
    let token = record
        .access_token
        .as_ref()
        .ok_or("the server returned no access token")?;
    let username = provider.wire_username(url_username(&url).as_deref());
    let auth = keygate::composer::auth_json(&provider, &username, token.expose());
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{auth}")?;
    Ok(())
}

fn callback(url: &str) -> Result<(), AnyError> {
    let dir = store::runtime_dir()?.join("callbacks");
    keygate::oauth::handoff::deliver(&dir, url)?;
    eprintln!("keygate: authorization handed to the waiting login");
    Ok(())
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

#[derive(Serialize)]
struct AccountStatus<'a> {
    server: &'a str,
    account: &'a str,
    store: &'a str,
    grant: &'a str,
    token_type: &'a str,
    access_token_present: bool,
    expires_at: Option<u64>,
    expires_in_seconds: Option<i64>,
    refresh_token_present: bool,
    /// When the refresh token itself dies, where the server said.
    refresh_token_expires_at: Option<u64>,
    /// The server's error code when it refused the refresh token.
    refresh_token_rejected: Option<&'a str>,
    scopes: &'a [String],
}

fn status(config: &GitConfig, json: bool) -> Result<(), AnyError> {
    let store = store::open(config::store_choice(config)?)?;
    let mut records = store.list()?;
    records.sort_by(|a, b| (&a.server, &a.account).cmp(&(&b.server, &b.account)));
    let now = unix_now();
    let accounts: Vec<AccountStatus<'_>> = records
        .iter()
        .map(|r| AccountStatus {
            server: &r.server,
            account: &r.account,
            store: store.kind(),
            grant: &r.grant,
            token_type: &r.token_type,
            access_token_present: r.access_token.is_some(),
            expires_at: r.expires_at,
            expires_in_seconds: r.expires_at.map(|at| seconds_left(at, now)),
            refresh_token_present: r.refresh_token.is_some(),
            refresh_token_expires_at: r.refresh_token_expires_at,
            refresh_token_rejected: r.refresh_token_rejected.as_deref(),
            scopes: &r.scopes,
        })
        .collect();
    let mut stdout = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &accounts)?;
        writeln!(stdout)?;
        return Ok(());
    }
    if accounts.is_empty() {
        writeln!(stdout, "no accounts ({} store)", store.kind())?;
    }
    for (account, record) in accounts.iter().zip(&records) {
        let who = if account.account.is_empty() {
            "(default)"
        } else {
            account.account
        };
        writeln!(
            stdout,
            "{}  {}  store={}  grant={}  {}  refresh token: {}",
            account.server,
            who,
            account.store,
            account.grant,
            describe_expiry(record),
            describe_refresh_token(record),
        )?;
    }
    Ok(())
}

fn describe_refresh_token(record: &TokenRecord) -> String {
    if record.refresh_token.is_none() {
        return "no".to_owned();
    }
    if let Some(code) = &record.refresh_token_rejected {
        return format!(
            "rejected ({}), run `keygate login`",
            keygate::text::escape(code)
        );
    }
    match record.refresh_token_expires_at {
        None => "yes".to_owned(),
        Some(at) => {
            let left = seconds_left(at, unix_now());
            let date = session::utc_date(at);
            if left <= 0 {
                format!("expired {date}, run `keygate login`")
            } else {
                format!("yes, expires in {} ({date})", human(left))
            }
        }
    }
}

fn describe_expiry(record: &TokenRecord) -> String {
    if record.access_token.is_none() {
        return "access token dropped".to_owned();
    }
    match record.expires_at {
        None => "access token does not expire".to_owned(),
        Some(at) => {
            let left = seconds_left(at, unix_now());
            if left <= 0 {
                format!("access token expired {} ago", human(-left))
            } else {
                format!("access token expires in {}", human(left))
            }
        }
    }
}

/// Negative once past; a stored instant is not trusted to fit an i64.
fn seconds_left(at: u64, now: u64) -> i64 {
    let signed = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    signed(at).saturating_sub(signed(now))
}

fn human(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 3 * 86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}
