//! The token store as configured, and what it holds for the URL's
//! account: read without choosing, filling or changing anything.

use url::Url;

use super::Check;
use crate::commands::{status, url_username};
use crate::config::{self, GitConfig, Provider, StoreKind};
use crate::store::{self, AccountKey, unix_now};

/// The store as configured, opened only when opening it changes nothing:
/// `auto` remembers its first choice on disk, so an `auto` not yet chosen
/// is reported, not chosen.
pub(super) fn check(config: &GitConfig, url: Option<&Url>, provider: Option<&Provider>) -> Check {
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
    let username = url_username(url);
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
                status::describe_expiry(&record)
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
