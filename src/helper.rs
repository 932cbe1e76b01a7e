//! Being a git credential helper: `get`, `store`, `erase` on one request,
//! with the I/O passed in so the whole exchange is testable in-process.

use std::ffi::OsString;
use std::io::{BufRead, Write};

use crate::config::{self, GitConfig};
use crate::credential::{Credential, ProtocolError};
use crate::session::present;
use crate::session::quick::{self, Decision};
use crate::session::{Interaction, Lookup, Session, SessionError};
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    Store,
    Erase,
}

impl Operation {
    /// The operation of a command line that is one protocol verb and
    /// nothing else (`keygate get`, as git runs it), recognised without a
    /// command-line parser: git runs one before every HTTPS operation.
    /// Anything else, `--help` included, is not one.
    pub fn from_args(mut args: impl Iterator<Item = OsString>) -> Option<Self> {
        let verb = args.next()?;
        if args.next().is_some() {
            return None;
        }
        match verb.to_str()? {
            "get" => Some(Operation::Get),
            "store" => Some(Operation::Store),
            "erase" => Some(Operation::Erase),
            _ => None,
        }
    }

    /// The operation `git-credential-keygate` may try to answer itself
    /// ([`serve_quickly`]): `get` or `store`, when nothing in the
    /// environment (`var`) asks for what only keygate does: logging, and
    /// a client secret, which keygate takes out of the environment before
    /// it starts any `git config`.
    pub fn for_front(
        args: impl Iterator<Item = OsString>,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Option<Self> {
        let operation = Self::from_args(args).filter(|op| *op != Operation::Erase)?;
        front_may_answer(var).then_some(operation)
    }
}

/// Whether the front program may answer at all: not when the environment
/// (`var`) asks for what only keygate does: logging, and a client secret,
/// which keygate takes out of the environment before it starts any
/// `git config`. Docker's face asks too.
pub fn front_may_answer(var: impl Fn(&str) -> Option<OsString>) -> bool {
    let set = |name| var(name).is_some_and(|value: OsString| !value.is_empty());
    !(set("KEYGATE_LOG") || set("KEYGATE_CLIENT_SECRET"))
}

/// Everything a helper call needs besides the request.
pub struct Context<'a> {
    pub config: &'a GitConfig,
    /// Decided only when a token must be obtained: the unhandled-host and
    /// cached-token paths should not pay for probing the terminal.
    pub interaction: Box<dyn FnOnce() -> Interaction<'a> + 'a>,
}

pub fn serve(
    operation: Operation,
    input: impl BufRead,
    output: impl Write,
    context: Context<'_>,
) -> Result<(), HelperError> {
    let request = Credential::read(input)?;
    let account = match operation {
        // keygate keeps its own tokens; what git hands back is ours anyway.
        Operation::Store => return Ok(()),
        Operation::Get => match quick::route(context.config, &request)? {
            Decision::NotOurs => return Ok(()),
            Decision::Fresh(fresh) => {
                let reply = present::git_answer(&request, &fresh.provider, &fresh.record);
                return Ok(reply.write(output)?);
            }
            Decision::NeedsSession(account) => *account,
        },
        Operation::Erase => match quick::account(context.config, &request)? {
            Some(account) => account,
            None => return Ok(()),
        },
    };
    let store = store::open_for(context.config)?;
    let session = Session::for_account(context.config, &account, store.as_ref(), move || {
        (context.interaction)()
    });
    match operation {
        Operation::Get => match session.fresh_token(Lookup::Cached) {
            Ok(record) => {
                present::git_answer(&request, &account.provider, &record).write(output)?
            }
            // The person saw the login fail; git's own prompt would ask
            // them for a password keygate never wants. Where nobody was
            // asked, git goes on to the next helper as usual.
            Err(error) if error.asked_a_person() => {
                let quit = Credential {
                    quit: Some("1".to_owned()),
                    ..Credential::default()
                };
                quit.write(output)?;
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        },
        Operation::Erase => {
            let password = request.password.as_ref().or(request.credential.as_ref());
            if let Some(password) = password
                && session.drop_access_token(password)?
            {
                tracing::debug!(account = %session.key.label(), "dropped the access token git rejected");
            }
        }
        Operation::Store => {}
    }
    Ok(())
}

/// What [`serve_quickly`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Quick {
    /// git has its answer (which may be none: a host keygate does not handle).
    Served,
    /// Only the whole of keygate can answer.
    NeedsKeygate,
}

/// `get` and `store` as `git-credential-keygate` runs them, before anything
/// else of keygate is loaded: `store` is acknowledged, and `get` answered
/// when [`quick::answer`] can. The rest (a refresh, a login, the keychain,
/// `erase`) needs keygate, and so does any error, so that errors are
/// reported one way. Writing the answer is the only failure reported here.
pub fn serve_quickly(
    operation: Operation,
    request: &[u8],
    output: impl Write,
) -> Result<Quick, HelperError> {
    let Ok(request) = Credential::read(request) else {
        return Ok(Quick::NeedsKeygate);
    };
    match operation {
        Operation::Store => return Ok(Quick::Served),
        Operation::Erase => return Ok(Quick::NeedsKeygate),
        Operation::Get => {}
    }
    let Ok(config) = GitConfig::load() else {
        return Ok(Quick::NeedsKeygate);
    };
    match quick::answer(&config, &request) {
        Ok(Decision::NotOurs) => Ok(Quick::Served),
        Ok(Decision::Fresh(fresh)) => {
            present::git_answer(&request, &fresh.provider, &fresh.record).write(output)?;
            Ok(Quick::Served)
        }
        Ok(Decision::NeedsSession(_)) | Err(_) => Ok(Quick::NeedsKeygate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> impl Iterator<Item = OsString> {
        words
            .iter()
            .map(OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn no_var(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn a_protocol_verb_is_the_only_argument() {
        assert_eq!(Operation::from_args(args(&["get"])), Some(Operation::Get));
        assert_eq!(
            Operation::from_args(args(&["erase"])),
            Some(Operation::Erase)
        );
        assert_eq!(Operation::from_args(args(&["get", "--help"])), None);
        assert_eq!(Operation::from_args(args(&["login"])), None);
        assert_eq!(Operation::from_args(args(&[])), None);
    }

    #[test]
    fn the_front_answers_get_and_store_unless_the_environment_needs_keygate() {
        let front = |words: &[&str], var: &dyn Fn(&str) -> Option<OsString>| {
            Operation::for_front(args(words), var)
        };
        assert_eq!(front(&["get"], &no_var), Some(Operation::Get));
        assert_eq!(front(&["store"], &no_var), Some(Operation::Store));
        assert_eq!(front(&["erase"], &no_var), None);
        for name in ["KEYGATE_LOG", "KEYGATE_CLIENT_SECRET"] {
            let set = |asked: &str| (asked == name).then(|| OsString::from("x"));
            assert_eq!(front(&["get"], &set), None, "{name}");
            let empty = |asked: &str| (asked == name).then(OsString::new);
            assert_eq!(front(&["get"], &empty), Some(Operation::Get), "{name}");
        }
    }
}
