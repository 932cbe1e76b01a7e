//! The OS keychain: Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows. One entry per account under service `keygate`,
//! holding the record as JSON, so no token byte is written to a file.

#[cfg(any(target_os = "macos", windows))]
mod native;
#[cfg(target_os = "linux")]
mod secret_service;

use std::time::Duration;

use super::{AccountKey, StoreError, TokenRecord, TokenStore};
use crate::secret::Secret;

/// Token records, one entry per account.
const TOKENS: &str = "keygate";
/// keygate's own secrets, apart so listing accounts never meets them.
const OWN_SECRETS: &str = "keygate-secrets";

/// What each platform's keychain provides: secrets by service and label.
trait Backend: Send {
    fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the entry in one step: the old value stays until the new
    /// one is in.
    fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError>;
    fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError>;
}

pub struct KeychainStore {
    backend: Box<dyn Backend>,
}

impl KeychainStore {
    pub fn open() -> Result<Self, StoreError> {
        Ok(Self {
            backend: platform_backend()?,
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
}

impl TokenStore for KeychainStore {
    fn kind(&self) -> &'static str {
        "keychain"
    }

    fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        self.backend
            .get(TOKENS, &key.label())?
            .map(|bytes| parse(&bytes))
            .transpose()
    }

    fn save(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)
            .map_err(|e| StoreError::Keychain(format!("cannot encode the record: {e}")))?;
        self.backend.set(TOKENS, &record.key().label(), &json)
    }

    fn delete(&self, key: &AccountKey) -> Result<bool, StoreError> {
        self.backend.delete(TOKENS, &key.label())
    }

    fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.backend
            .all(TOKENS)?
            .iter()
            .map(|bytes| parse(bytes))
            .collect()
    }

    fn load_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let bytes = self.backend.get(OWN_SECRETS, name)?;
        bytes
            .map(|b| {
                String::from_utf8(b).map(Secret::new).map_err(|_| {
                    StoreError::Keychain(format!("keygate's secret {name:?} is not text"))
                })
            })
            .transpose()
    }

    fn save_secret(&self, name: &str, value: &Secret) -> Result<(), StoreError> {
        self.backend
            .set(OWN_SECRETS, name, value.expose().as_bytes())
    }
}

fn parse(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Keychain(format!(
            "a keygate entry is not valid JSON ({})",
            crate::store::describe_json_error(&e)
        ))
    })
}

#[cfg(target_os = "linux")]
fn platform_backend() -> Result<Box<dyn Backend>, StoreError> {
    Ok(Box::new(secret_service::SecretServiceBackend::connect()?))
}

#[cfg(any(target_os = "macos", windows))]
fn platform_backend() -> Result<Box<dyn Backend>, StoreError> {
    Ok(Box::new(native::NativeBackend::open()?))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_backend() -> Result<Box<dyn Backend>, StoreError> {
    Err(StoreError::KeychainUnreachable(
        "no supported keychain on this platform".into(),
    ))
}
