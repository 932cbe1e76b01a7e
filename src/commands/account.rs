//! One account's tokens: git's `get`/`store`/`erase`, `login`, `logout`
//! (and `--forget-client`), `token`, `env`, and `callback`, which hands a
//! login its redirect.

use std::io::{BufRead, Write};

use super::{CommandError, Reach, parse_url, provider_for, session, url_username};
use crate::config::{self, GitConfig, Provider};
use crate::helper::{self, Context, Operation};
use crate::oauth::register::Forgotten;
use crate::secret::Secret;
use crate::session::{self, Interaction, Revocation, Session};
use crate::store::{self, AccountKey, TokenRecord, TokenStore};
use crate::text::escape_line;

/// git's credential protocol on `input` and `output`.
pub fn credential(
    operation: Operation,
    config: &GitConfig,
    reach: Reach<'_>,
    input: impl BufRead,
    output: impl Write,
) -> Result<(), CommandError> {
    let context = Context {
        config,
        interaction: Box::new(move || reach.for_git(config)),
    };
    helper::serve(operation, input, output, context)?;
    Ok(())
}

/// `keygate login <url>`: authorize now, whatever is stored.
pub fn login(
    config: &GitConfig,
    raw_url: &str,
    reach: Reach<'_>,
    notices: impl Write,
) -> Result<(), CommandError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let store = store::open_for(config)?;
    let session = session(config, &provider, &url, store.as_ref(), reach.for_person());
    let record = session.login()?;
    say_logged_in(notices, &session, &record, store.as_ref())
}

/// The one line a login ends with: whose tokens, how long they last,
/// where they are kept.
pub(super) fn say_logged_in(
    mut notices: impl Write,
    session: &Session<'_>,
    record: &TokenRecord,
    store: &dyn TokenStore,
) -> Result<(), CommandError> {
    writeln!(
        notices,
        "keygate: logged in to {} ({}), tokens kept in the {} store",
        session.key.label(),
        super::status::describe_expiry(record),
        store.kind()
    )?;
    Ok(())
}

/// `keygate logout <url>`: revoke where the server can, and forget.
pub fn logout(
    config: &GitConfig,
    raw_url: &str,
    mut notices: impl Write,
) -> Result<(), CommandError> {
    let url = parse_url(raw_url)?;
    let store = store::open_for(config)?;
    let Some(provider) = Provider::resolve(config, &url)? else {
        // Configuration gone: still forget what is stored (nothing to revoke with).
        let user = url_username(&url);
        let key = AccountKey::new(&config::origin_of(&url), user.as_deref());
        let said = if store.delete(&key)? {
            "forgot the tokens"
        } else {
            "no tokens were kept"
        };
        writeln!(notices, "keygate: {said} for {}", key.label())?;
        return Ok(());
    };
    let forbidden = Interaction::Forbidden("logging out".into());
    let session = session(config, &provider, &url, store.as_ref(), forbidden);
    let label = session.key.label();
    match session.logout()? {
        (_, false) => writeln!(notices, "keygate: no tokens were kept for {label}")?,
        (Revocation::Revoked, true) => writeln!(
            notices,
            "keygate: revoked the tokens for {label} at the server and forgot them"
        )?,
        (Revocation::NotAttempted, true) => writeln!(
            notices,
            "keygate: forgot the tokens for {label} (the server has no revocation endpoint configured)"
        )?,
        (Revocation::Failed(error), true) => writeln!(
            notices,
            "keygate: forgot the tokens for {label}, but the server did not revoke them: {error}"
        )?,
    }
    Ok(())
}

/// `logout --forget-client`: the dynamically registered client goes too.
pub fn forget_client(
    config: &GitConfig,
    raw_url: &str,
    mut notices: impl Write,
) -> Result<(), CommandError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let store = store::open_for(config)?;
    let server = provider.server.as_str().trim_end_matches('/');
    let forbidden = Interaction::Forbidden("forgetting a client".into());
    let session = session(config, &provider, &url, store.as_ref(), forbidden);
    match session.forget_client()? {
        Forgotten::NothingStored => writeln!(
            notices,
            "keygate: no registered client was kept for {server}"
        )?,
        Forgotten::Deleted => writeln!(
            notices,
            "keygate: deleted the client registered at the server for {server}"
        )?,
        Forgotten::KeptAtServer => writeln!(
            notices,
            "keygate: forgot the client registered for {server} (the server offers no way to delete it)"
        )?,
        // The server's words, and the reason: neither may drive the terminal.
        Forgotten::Failed(error) => writeln!(
            notices,
            "{}",
            escape_line(&format!(
                "keygate: forgot the client registered for {server}, but the server did not delete it: {error}"
            ))
        )?,
        Forgotten::NotSent(error) => writeln!(
            notices,
            "{}",
            escape_line(&format!(
                "keygate: forgot the client registered for {server} here, but did not ask the server to delete it: {error}"
            ))
        )?,
    }
    Ok(())
}

/// `keygate token <url>`: a fresh access token, on a line of its own.
pub fn token(
    config: &GitConfig,
    raw_url: &str,
    reach: Reach<'_>,
    mut output: impl Write,
) -> Result<(), CommandError> {
    let (_, _, token) = fresh_access_token(config, raw_url, reach)?;
    writeln!(output, "{}", token.expose())?;
    Ok(())
}

/// `keygate env composer <url>`: a `COMPOSER_AUTH` value (JSON).
pub fn env_composer(
    config: &GitConfig,
    raw_url: &str,
    reach: Reach<'_>,
    mut output: impl Write,
) -> Result<(), CommandError> {
    let (provider, url, token) = fresh_access_token(config, raw_url, reach)?;
    let auth = session::present::composer_auth(&provider, url_username(&url).as_deref(), &token);
    writeln!(output, "{auth}")?;
    Ok(())
}

/// What `token` and `env` hand out: a fresh access token for the account
/// `raw_url` names, with the provider and URL that chose it.
fn fresh_access_token(
    config: &GitConfig,
    raw_url: &str,
    reach: Reach<'_>,
) -> Result<(Provider, url::Url, Secret), CommandError> {
    let (provider, url) = provider_for(config, raw_url)?;
    let record = fresh_record(config, &provider, &url, reach)?;
    let token = record.access_token.ok_or(CommandError::NoAccessToken)?;
    Ok((provider, url, token))
}

/// `keygate callback <url>`: hands a custom-scheme redirect to the login
/// waiting for it.
pub fn callback(url: &str, mut notices: impl Write) -> Result<(), CommandError> {
    let dir = store::runtime_dir()?.join("callbacks");
    crate::oauth::handoff::deliver(&dir, url)?;
    writeln!(
        notices,
        "keygate: authorization handed to the waiting login"
    )?;
    Ok(())
}

/// A fresh token for `url`: from the environment when configured so,
/// else from the store, refreshing or authorizing first if needed.
fn fresh_record(
    config: &GitConfig,
    provider: &Provider,
    url: &url::Url,
    reach: Reach<'_>,
) -> Result<TokenRecord, CommandError> {
    if let Some(record) = session::token_from_env(provider) {
        return Ok(record);
    }
    let store = store::open_for(config)?;
    let interaction = reach.for_git(config);
    Ok(session(config, provider, url, store.as_ref(), interaction)
        .fresh_token(session::Lookup::Whole)?)
}
