//! Being a git credential helper: `get`, `store`, `erase` on one request,
//! with the I/O passed in so the whole exchange is testable in-process.

use std::io::{BufRead, Write};

use crate::config::{self, AuthScheme, GitConfig, Provider};
use crate::credential::{Credential, ProtocolError};
use crate::session::{self, Interaction, Session, SessionError};
use crate::store::{self, StoreError, TokenRecord};

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
    if operation == Operation::Store {
        // keygate keeps its own tokens; what git hands back is ours anyway.
        return Ok(());
    }
    let Some(url) = request.target_url() else {
        return Ok(());
    };
    let Some(provider) = Provider::resolve(context.config, &url)? else {
        return Ok(());
    };
    if operation == Operation::Get
        && let Some(record) = session::token_from_env(&provider)
    {
        answer(&request, &provider, &record).write(output)?;
        return Ok(());
    }
    let mut store = store::open(config::store_choice(context.config)?)?;
    if operation == Operation::Get {
        store.serve_fresh_tokens_from_cache();
    }
    let session = Session::new(
        &provider,
        request.username.as_deref(),
        store.as_ref(),
        config::oauth_ca_files(context.config, &provider),
        move || (context.interaction)(),
    );
    match operation {
        Operation::Get => match session.fresh_token() {
            Ok(record) => answer(&request, &provider, &record).write(output)?,
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

fn answer(request: &Credential, provider: &Provider, record: &TokenRecord) -> Credential {
    let mut reply = Credential::default();
    let token = record.access_token.clone();
    // The instant it turns stale, so git asks again in time; a stale token
    // served because a refresh failed gets its real expiry instead, as
    // git drops a credential whose expiry has passed.
    let now = store::unix_now();
    reply.password_expiry_utc = record
        .stale_at(provider.refresh_margin)
        .filter(|&stale_at| stale_at > now)
        .or(record.expires_at)
        .map(|t| t.to_string());
    if provider.auth_scheme == AuthScheme::Bearer && request.announces("authtype") {
        reply.capability.push("authtype".to_owned());
        reply.authtype = Some("Bearer".to_owned());
        reply.credential = token;
        // keygate keeps the token; other helpers must not store a copy.
        reply.ephemeral = Some("1".to_owned());
    } else {
        reply.username = Some(provider.wire_username(request.username.as_deref()));
        reply.password = token;
    }
    reply
}
