//! macOS Keychain and Windows Credential Manager through the keyring
//! crates' native stores.

use std::collections::HashMap;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::Backend;
use crate::store::StoreError;

pub struct NativeBackend {
    store: Arc<CredentialStore>,
}

impl NativeBackend {
    pub fn open() -> Result<Self, StoreError> {
        #[cfg(target_os = "macos")]
        let store = apple_native_keyring_store::keychain::Store::new().map_err(describe)?;
        #[cfg(windows)]
        let store = windows_native_keyring_store::Store::new().map_err(describe)?;
        Ok(Self { store })
    }

    fn entry(&self, service: &str, label: &str) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.store, service, label).map_err(describe)
    }
}

impl Backend for NativeBackend {
    fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry(service, label)?.get_secret() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(describe(e)),
        }
    }

    fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError> {
        self.entry(service, label)?
            .set_secret(secret)
            .map_err(describe)
    }

    fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError> {
        match self.entry(service, label)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(e) => Err(describe(e)),
        }
    }

    fn max_secret_len(&self) -> usize {
        // Credential Manager's CRED_MAX_CREDENTIAL_BLOB_SIZE; the macOS
        // Keychain has no such small bound.
        if cfg!(windows) { 2560 } else { usize::MAX }
    }

    fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        // Credential Manager searches by a regular expression over target
        // names, which that store forms as `<label>.<service>`; keygate's
        // service names hold no regex metacharacters.
        #[cfg(windows)]
        let pattern = format!(r"^.*\.{service}$");
        #[cfg(windows)]
        let spec = HashMap::from([("pattern", pattern.as_str())]);
        #[cfg(not(windows))]
        let spec = HashMap::from([("service", service)]);
        let entries = Entry::search_in_store(&self.store, &spec).map_err(describe)?;
        let mut secrets = Vec::new();
        for entry in entries {
            match entry.get_secret() {
                Ok(bytes) => secrets.push(bytes),
                Err(KeyringError::NoEntry) => {}
                Err(e) => return Err(describe(e)),
            }
        }
        Ok(secrets)
    }
}

/// Turns a keyring error into ours without its payload: some variants
/// carry the stored bytes, which are secrets.
fn describe(error: KeyringError) -> StoreError {
    match error {
        KeyringError::NoStorageAccess(e) => StoreError::KeychainLocked(e.to_string()),
        KeyringError::PlatformFailure(e) => StoreError::KeychainUnreachable(e.to_string()),
        KeyringError::NoDefaultStore => StoreError::NoKeychain("no keychain on this system".into()),
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => {
            StoreError::Keychain("a keygate entry has an unreadable format".into())
        }
        KeyringError::TooLong(what, limit) => StoreError::Keychain(format!(
            "{what} is longer than the keychain allows ({limit})"
        )),
        KeyringError::Ambiguous(_) => {
            StoreError::Keychain("more than one keychain entry matches this account".into())
        }
        other => StoreError::Keychain(format!("{other:?}").chars().take(200).collect()),
    }
}
