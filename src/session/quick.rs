//! `get`'s quick decision, made one way for both of its entrances: the
//! front program git runs (`git-credential-keygate`, which links nothing
//! else of keygate's and hands what it cannot answer to keygate) and
//! keygate's own `get`, whose session starts from what was decided here.
//!
//! Nothing here takes a lock, touches the network or opens the keychain:
//! those are the session's, and only a [`Decision::NeedsSession`] gets one.

use crate::config::{ConfigError, GitConfig, Provider};
use crate::credential::Credential;
use crate::store::{AccountKey, QuickSource, TokenRecord};

/// What `get` does with a request before any store is opened.
#[derive(Debug)]
pub enum Decision {
    /// A host keygate does not handle, or a request naming none: nothing
    /// to answer, so git asks its next helper.
    NotOurs,
    /// A token git may have at once: from the environment (CI) or a
    /// fresh stored record.
    Fresh(Box<Fresh>),
    /// Only a session can answer: a refresh, a login, or a store the
    /// quick look does not reach.
    NeedsSession(Box<Account>),
}

/// A token git may have at once, and the provider it is for.
#[derive(Debug)]
pub struct Fresh {
    pub provider: Provider,
    pub record: TokenRecord,
}

/// The account a request selects at its provider: derived once, here,
/// and what a session for `get` starts from.
#[derive(Debug)]
pub struct Account {
    pub provider: Provider,
    pub key: AccountKey,
}

impl Account {
    /// The account `username` (git's `username=`) selects at `provider`:
    /// see [`super::account_key`].
    pub fn new(provider: Provider, username: Option<&str>) -> Self {
        Self {
            key: super::account_key(&provider, username),
            provider,
        }
    }

    /// `record`, if `get` may hand it to git without a lock or the
    /// network: the one test of a stored token, whichever entrance asks.
    pub fn servable(&self, record: TokenRecord) -> Option<TokenRecord> {
        super::servable(&self.provider, &self.key, record)
    }
}

/// The account `request` is about, or `None` for a host keygate does not
/// handle (or a request naming none).
///
/// # Errors
///
/// The configuration for the request's host does not hold together.
pub fn account(config: &GitConfig, request: &Credential) -> Result<Option<Account>, ConfigError> {
    let Some(url) = request.target_url() else {
        return Ok(None);
    };
    let account = Provider::resolve(config, &url)?
        .map(|provider| Account::new(provider, request.username.as_deref()));
    Ok(account)
}

/// Where `get` for `request` goes: to no one, straight back to git with a
/// token from the environment, or to its account's tokens.
///
/// # Errors
///
/// As [`account`].
pub fn route(config: &GitConfig, request: &Credential) -> Result<Decision, ConfigError> {
    let Some(account) = account(config, request)? else {
        return Ok(Decision::NotOurs);
    };
    route_account(account)
}

/// [`route`] for a client that names a URL and a user name rather than
/// sending git's request: Docker's `get`.
///
/// # Errors
///
/// As [`account`].
pub fn route_url(
    config: &GitConfig,
    url: &url::Url,
    username: Option<&str>,
) -> Result<Decision, ConfigError> {
    match Provider::resolve(config, url)? {
        Some(provider) => route_account(Account::new(provider, username)),
        None => Ok(Decision::NotOurs),
    }
}

fn route_account(account: Account) -> Result<Decision, ConfigError> {
    if let Some(record) = super::token_from_env(&account.provider) {
        return Ok(Decision::Fresh(Box::new(Fresh {
            provider: account.provider,
            record,
        })));
    }
    Ok(Decision::NeedsSession(Box::new(account)))
}

/// `get` as the front program answers it: [`route`], then a look at the
/// file store or the kernel cache for a servable token; never the
/// keychain itself. A store that cannot be read here is left to the
/// session, which reports what is wrong with it.
///
/// # Errors
///
/// As [`route`].
pub fn answer(config: &GitConfig, request: &Credential) -> Result<Decision, ConfigError> {
    look_in_quick_store(config, route(config, request)?)
}

/// [`answer`] for a client that names a URL: see [`route_url`].
///
/// # Errors
///
/// As [`route`].
pub fn answer_url(
    config: &GitConfig,
    url: &url::Url,
    username: Option<&str>,
) -> Result<Decision, ConfigError> {
    look_in_quick_store(config, route_url(config, url, username)?)
}

fn look_in_quick_store(config: &GitConfig, decision: Decision) -> Result<Decision, ConfigError> {
    let account = match decision {
        Decision::NeedsSession(account) => account,
        decided => return Ok(decided),
    };
    let fresh = crate::config::store_choice(config)
        .ok()
        .and_then(|choice| QuickSource::for_choice(choice).ok().flatten())
        .and_then(|source| source.load(&account.key).ok().flatten())
        .and_then(|record| account.servable(record));
    Ok(match fresh {
        Some(record) => Decision::Fresh(Box::new(Fresh {
            provider: account.provider,
            record,
        })),
        None => Decision::NeedsSession(account),
    })
}
