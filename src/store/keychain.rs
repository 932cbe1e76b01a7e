//! The OS keychain through the keyring crate family: Secret Service on
//! Linux (pure-Rust zbus, no libdbus), Keychain on macOS, Credential
//! Manager on Windows. One entry per account under service `keygate`,
//! holding the record as JSON, so no token byte is written to a file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::{AccountKey, StoreError, TokenRecord, TokenStore};

const SERVICE: &str = "keygate";

pub struct KeychainStore {
    store: Arc<CredentialStore>,
}

impl KeychainStore {
    pub fn open() -> Result<Self, StoreError> {
        Ok(Self {
            store: platform_store()?,
        })
    }

    /// Opens the keychain, giving up after `bound`: a session bus with no
    /// Secret Service behind it can otherwise stall for D-Bus's 25-second
    /// activation timeout on every git command.
    pub fn open_within(bound: Duration) -> Result<Self, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(Self::open());
        });
        receiver
            .recv_timeout(bound)
            .unwrap_or_else(|_| Err(StoreError::KeychainUnreachable("no answer in time".into())))
    }

    fn entry(&self, key: &AccountKey) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.store, SERVICE, &key.label()).map_err(describe)
    }
}

impl TokenStore for KeychainStore {
    fn kind(&self) -> &'static str {
        "keychain"
    }

    fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        match self.entry(key)?.get_secret() {
            Ok(bytes) => parse(&bytes).map(Some),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(describe(e)),
        }
    }

    fn save(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)
            .map_err(|e| StoreError::Keychain(format!("cannot encode the record: {e}")))?;
        // Secret Service replaces the item in one call: the old record
        // stays until the new one is in.
        self.entry(&record.key())?
            .set_secret(&json)
            .map_err(describe)
    }

    fn delete(&self, key: &AccountKey) -> Result<bool, StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(e) => Err(describe(e)),
        }
    }

    fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let spec = HashMap::from([("service", SERVICE)]);
        let entries = Entry::search_in_store(&self.store, &spec).map_err(describe)?;
        let mut records = Vec::new();
        for entry in entries {
            match entry.get_secret() {
                Ok(bytes) => records.push(parse(&bytes)?),
                Err(KeyringError::NoEntry) => {}
                Err(e) => return Err(describe(e)),
            }
        }
        Ok(records)
    }
}

fn parse(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Keychain(format!("a keygate entry is not valid JSON ({e})")))
}

/// Turns a keyring error into ours without its payload: some variants
/// carry the stored bytes, which are secrets.
fn describe(error: KeyringError) -> StoreError {
    match error {
        KeyringError::NoStorageAccess(e) => StoreError::KeychainLocked(e.to_string()),
        KeyringError::PlatformFailure(e) => StoreError::KeychainUnreachable(e.to_string()),
        KeyringError::NoDefaultStore => {
            StoreError::KeychainUnreachable("no keychain on this system".into())
        }
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => {
            StoreError::Keychain("a keygate entry has an unreadable format".into())
        }
        KeyringError::TooLong(what, limit) => StoreError::Keychain(format!(
            "{what} is longer than the keychain allows ({limit})"
        )),
        KeyringError::Ambiguous(_) => {
            StoreError::Keychain("more than one keychain entry matches this account".into())
        }
        KeyringError::NoEntry => StoreError::Keychain("no entry".into()),
        other => StoreError::Keychain(format!("{other:?}").chars().take(200).collect()),
    }
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    // Without a session bus there is no Secret Service: say so at once
    // instead of letting zbus guess an address.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
        return Err(StoreError::KeychainUnreachable(
            "no D-Bus session bus".into(),
        ));
    }
    let store = zbus_secret_service_keyring_store::Store::new().map_err(describe)?;
    Ok(store)
}

#[cfg(target_os = "macos")]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store = apple_native_keyring_store::keychain::Store::new().map_err(describe)?;
    Ok(store)
}

#[cfg(windows)]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    let store = windows_native_keyring_store::Store::new().map_err(describe)?;
    Ok(store)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_store() -> Result<Arc<CredentialStore>, StoreError> {
    Err(StoreError::KeychainUnreachable(
        "no supported keychain on this platform".into(),
    ))
}
