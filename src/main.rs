//! keygate's command line: parse, dispatch, print the one error line,
//! choose the exit code. The work lives in the library.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use keygate::commands::{
    self, CommandError, Outcome, Reach, account, cargo, doctor, man, setup, status,
};
use keygate::config::{self, GitConfig};
use keygate::docker_credential::Verb;
use keygate::helper::Operation;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "OAuth 2.0 tokens for HTTPS git, kept fresh in the OS keychain",
    after_help = "Documentation: `man keygate-<command>`, `man 5 keygate-config` (every config key),\n\
                  README.md and the pages in docs/ (the source tree; /usr/share/doc/keygate\n\
                  in the Debian package): configuration, forges, login, ssh-and-wsl, ci,\n\
                  ci-identity, proxy, containers, cargo, troubleshooting.\n\
                  Git still asks for a password? `keygate doctor <url>`."
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
    /// Say why git would still ask for a password: helper chain, config,
    /// store, server, clock. Changes nothing, prints no secret. Exit code
    /// 1: a check failed
    #[command(after_help = "Each check and what its verdict means: docs/troubleshooting.md")]
    Doctor {
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a fresh access token for a URL on stdout
    Token { url: String },
    /// From nothing to a working clone: find the server's OAuth settings
    /// (preset, RFC 8414/OIDC discovery, RFC 7591 registration), write them
    /// to the global git config, make keygate git's helper, log in.
    /// Exit code 3: a step is left to you (printed)
    #[command(
        after_help = "Every key: `man 5 keygate-config` and docs/configuration.md; \
                      what to create on GitHub, GitLab and Bitbucket: docs/forges.md; \
                      registries: docs/containers.md, docs/cargo.md"
    )]
    Setup(setup::Args),
    /// Print environment settings for a tool, e.g. `keygate env composer <url>`
    Env {
        #[arg(value_enum)]
        tool: Tool,
        url: String,
    },
    /// Hand a custom-scheme redirect to the login waiting for it (run by the OS)
    Callback { url: String },
    /// Print a completion script for a shell (install.sh installs them for bash, zsh, fish and PowerShell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run a local HTTPS proxy that adds fresh tokens for configured hosts
    #[command(
        after_help = "Pointing Composer, curl, npm, pip and git at it, and running it \
                      in the background: docs/proxy.md"
    )]
    Proxy(keygate::proxy::Options),
    /// Write the manual pages into a directory (install.sh runs it)
    #[command(hide = true)]
    Man { dir: std::path::PathBuf },
    /// cargo's credential provider: `keygate --cargo-plugin`, as cargo runs it
    #[command(skip)]
    CargoPlugin(cargo::Start),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Tool {
    /// a COMPOSER_AUTH value (JSON)
    Composer,
}

fn main() -> ExitCode {
    // First thing in main, before any thread is started.
    let [client_secret, cargo_read] =
        keygate::sys::take_env_vars([config::CLIENT_SECRET_ENV, cargo::HANDED_OVER_ENV]);
    config::keep_secret_from_env(client_secret);
    commands::init_logging();
    if let Some(face) = docker_face() {
        return exit_code(&face);
    }
    let command = protocol_verb(cargo_read).unwrap_or_else(|| Cli::parse().command);
    let result = run(command);
    if let Err(error) = &result {
        report(error);
    }
    exit_code(&result)
}

/// The one place exit codes are chosen. git and scripts read them: 1 for
/// a failure (or a `keygate doctor` that found one), 2 for a usage error
/// (as clap's own), 3 for a `keygate setup` that left a step to the
/// person, 130 for a login the person cancelled with Ctrl-C.
fn exit_code(result: &Result<Outcome, CommandError>) -> ExitCode {
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::StepsLeft) => ExitCode::from(3),
        Ok(Outcome::Unwell | Outcome::Failed) => ExitCode::FAILURE,
        Err(error) if error.is_usage() => ExitCode::from(2),
        Err(error) if error.is_cancelled() => ExitCode::from(130),
        Err(_) => ExitCode::FAILURE,
    }
}

/// Prints the error, once. A usage error reads as clap's own.
fn report(error: &CommandError) {
    if error.is_usage() {
        let usage = Cli::command().error(clap::error::ErrorKind::InvalidValue, error);
        // Nothing is left to tell should stderr be gone.
        let _ = usage.print();
        return;
    }
    // The one line a person reads: whatever part of it came from
    // outside (a certificate name, a path) cannot drive the terminal.
    eprintln!(
        "keygate: {}",
        keygate::text::escape_line(&error.to_string())
    );
}

/// `keygate get` (or store, erase) as git runs it, before every HTTPS
/// operation: recognised without building clap's whole command tree,
/// which is a tenth of a cached `get`'s instructions. And `keygate
/// --cargo-plugin`, as cargo runs a credential provider (the arguments
/// configured after the program come inside its request), under any name;
/// with `--hello-sent` as the front program hands a conversation over,
/// `cargo_read` being what it read of it.
fn protocol_verb(cargo_read: Option<String>) -> Option<Command> {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|arg| arg == cargo::PLUGIN_FLAG) {
        let start = match args.next() {
            Some(arg) if arg == cargo::HELLO_SENT_FLAG => cargo::Start::HandedOver {
                read: cargo_read.unwrap_or_default().into_bytes(),
            },
            _ => cargo::Start::Hello,
        };
        return Some(Command::CargoPlugin(start));
    }
    Operation::from_args(std::env::args_os().skip(1)).map(|operation| match operation {
        Operation::Get => Command::Get,
        Operation::Store => Command::Store,
        Operation::Erase => Command::Erase,
    })
}

/// Run as `docker-credential-keygate VERB` (a link to keygate, or the
/// front program handing over): Docker's credential-helper protocol,
/// which has no clap command line.
#[allow(clippy::disallowed_methods)]
fn docker_face() -> Option<Result<Outcome, CommandError>> {
    let program = std::env::args_os().next()?;
    let name = std::path::Path::new(&program).file_stem()?;
    if name != commands::docker::PROGRAM {
        return None;
    }
    let Some(verb) = Verb::from_args(std::env::args_os().skip(1)) else {
        // The helpers' usage, on stdout, and exit status 1.
        let usage = keygate::docker_credential::usage(commands::docker::PROGRAM);
        let _ = writeln!(io::stdout().lock(), "{usage}");
        return Some(Ok(Outcome::Failed));
    };
    let result = GitConfig::load()
        .map_err(CommandError::from)
        .and_then(|config| {
            commands::docker::credential(
                verb,
                &config,
                Reach::system(),
                io::stdin().lock(),
                io::stdout().lock(),
                io::stderr(),
            )
        });
    Some(result.or_else(|error| {
        // The helpers answer every failure on stdout.
        let line = keygate::text::escape_line(&format!("keygate: {error}"));
        let _ = writeln!(io::stdout().lock(), "{line}");
        Ok(Outcome::Failed)
    }))
}

// Hands stdout to the commands whose output is the point.
#[allow(clippy::disallowed_methods)]
fn run(command: Command) -> Result<Outcome, CommandError> {
    // These need no git config, and may run where git is not set up.
    let config = match command {
        Command::Callback { .. } | Command::Completions { .. } | Command::Man { .. } => {
            GitConfig::default()
        }
        _ => GitConfig::load()?,
    };
    let reach = Reach::system();
    // Taken only by the command that writes or reads: the proxy writes its
    // URL from another thread.
    let (stdin, stdout, stderr) = (|| io::stdin().lock(), || io::stdout().lock(), io::stderr);
    match command {
        Command::Get => account::credential(Operation::Get, &config, reach, stdin(), stdout())?,
        Command::Store => account::credential(Operation::Store, &config, reach, stdin(), stdout())?,
        Command::Erase => account::credential(Operation::Erase, &config, reach, stdin(), stdout())?,
        Command::Login { url } => account::login(&config, &url, reach, stderr())?,
        Command::Logout { url, forget_client } => {
            account::logout(&config, &url, stderr())?;
            if forget_client {
                account::forget_client(&config, &url, stderr())?;
            }
        }
        Command::Status { json } => status::status(&config, json, stdout())?,
        Command::Doctor { url, json } => {
            return doctor::doctor(&config, url.as_deref(), json, stdout());
        }
        Command::Token { url } => account::token(&config, &url, reach, stdout())?,
        Command::Setup(args) => return setup::setup(&config, args, reach, stdin(), stdout()),
        Command::Env {
            tool: Tool::Composer,
            url,
        } => account::env_composer(&config, &url, reach, stdout())?,
        Command::Callback { url } => account::callback(&url, stderr())?,
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "keygate", &mut script);
            stdout().write_all(&script)?;
        }
        Command::Proxy(options) => keygate::proxy::run(options, &config)?,
        Command::Man { dir } => man::write_pages(Cli::command(), &dir, stdout())?,
        Command::CargoPlugin(start) => cargo::provider(&config, reach, start, stdin(), stdout())?,
    }
    Ok(Outcome::Done)
}
