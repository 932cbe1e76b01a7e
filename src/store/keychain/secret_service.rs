//! Secret Service (gnome-keyring, KeePassXC, KWallet) over D-Bus, in pure
//! Rust through the `secret-service` crate of the keyring family.
//!
//! The session is opened with plain transport encoding, not the
//! Diffie-Hellman one: the session bus is private to this user, and any
//! process able to watch it can just as well ask the Secret Service for the
//! item, so the key exchange protects nothing here — while costing about
//! 5 ms on both ends, on every git operation.
//!
//! Items carry the attributes `service=keygate` and `username=<account>`,
//! the ones the keyring crates use, so `secret-tool lookup service keygate
//! username <account>` finds them.

use std::collections::HashMap;

use secret_service::blocking::{Item, SecretService};
use secret_service::{EncryptionType, Error};

use super::Backend;
use crate::store::StoreError;

const CONTENT_TYPE: &str = "application/json";

pub struct SecretServiceBackend {
    service: SecretService<'static>,
}

impl SecretServiceBackend {
    pub fn connect() -> Result<Self, StoreError> {
        // Without a session bus there is no Secret Service: say so at once
        // instead of letting zbus guess an address.
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
            return Err(StoreError::NoKeychain("no D-Bus session bus".into()));
        }
        let service = SecretService::connect(EncryptionType::Plain).map_err(describe)?;
        Ok(Self { service })
    }

    /// Unlocked items matching `attributes`; a match that is locked is an
    /// error, since unlocking may need a person.
    fn find(&self, attributes: HashMap<&str, &str>) -> Result<Vec<Item<'_>>, StoreError> {
        let found = self.service.search_items(attributes).map_err(describe)?;
        if found.unlocked.is_empty() && !found.locked.is_empty() {
            return Err(StoreError::KeychainLocked(
                "the keyring holding keygate's entries is locked".into(),
            ));
        }
        Ok(found.unlocked)
    }
}

impl Backend for SecretServiceBackend {
    fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let items = self.find(HashMap::from([("service", service), ("username", label)]))?;
        match items.first() {
            Some(item) => item.get_secret().map(Some).map_err(describe),
            None => Ok(None),
        }
    }

    fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError> {
        let collection = self.service.get_default_collection().map_err(describe)?;
        if collection.is_locked().map_err(describe)? {
            return Err(StoreError::KeychainLocked(
                "the default keyring is locked".into(),
            ));
        }
        collection
            .create_item(
                &format!("{service}: {label}"),
                HashMap::from([("service", service), ("username", label)]),
                secret,
                true,
                CONTENT_TYPE,
            )
            .map_err(describe)?;
        Ok(())
    }

    fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError> {
        let items = self.find(HashMap::from([("service", service), ("username", label)]))?;
        for item in &items {
            item.delete().map_err(describe)?;
        }
        Ok(!items.is_empty())
    }

    fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.find(HashMap::from([("service", service)]))?
            .iter()
            .map(|item| item.get_secret().map_err(describe))
            .collect()
    }
}

/// Our error for theirs; none of their variants carries secret bytes.
fn describe(error: Error) -> StoreError {
    match error {
        Error::Locked | Error::Prompt | Error::PromptDisconnected => {
            StoreError::KeychainLocked(error.to_string())
        }
        Error::Unavailable | Error::Zbus(_) | Error::ZbusFdo(_) => {
            StoreError::KeychainUnreachable(error.to_string())
        }
        other => StoreError::Keychain(other.to_string()),
    }
}
