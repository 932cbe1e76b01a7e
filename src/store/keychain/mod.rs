//! The OS keychain: Secret Service on Linux, Keychain on macOS, Credential
//! Manager on Windows. One entry per account under service `keygate`,
//! holding the record as JSON, so no token byte is written to a file.

// The cache of fresh access tokens in front of the keychain, which the
// quick path (`store::QuickSource`) reads alone.
pub(super) mod kernel_cache;
#[cfg(any(target_os = "macos", windows))]
mod native;
#[cfg(target_os = "linux")]
mod secret_service;

use std::cell::{Ref, RefCell};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{AccountKey, StoreError, TokenRecord, TokenStore, unix_now};
use crate::secret::Secret;
use kernel_cache::{FillLock, KernelCache};

/// Token records, one entry per account.
const TOKENS: &str = "keygate";
/// keygate's own secrets, apart so listing accounts never meets them.
const OWN_SECRETS: &str = "keygate-secrets";

/// Pieces of values too big for one entry, apart so listing accounts
/// never meets them.
const PARTS: &str = "keygate-parts";

/// What each platform's keychain provides: secrets by service and label.
trait Backend: Send {
    fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the entry in one step: the old value stays until the new
    /// one is in.
    fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError>;
    fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The most bytes one entry holds: Credential Manager takes 2560, less
    /// than a record with a new Bitbucket token.
    fn max_secret_len(&self) -> usize {
        usize::MAX
    }
}

/// More parts than any keygate value needs (a record is a few KB): a head
/// claiming more is damaged, and is not followed.
const MAX_PARTS: usize = 256;

/// What an entry holds in place of a value too big for it: the value is
/// in `parts` entries under [`PARTS`], labelled `<sha256>#<i>`, so the
/// head alone finds them and a torn read cannot pass the digest check.
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitHead {
    split: Split,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Split {
    sha256: String,
    parts: usize,
}

impl Split {
    fn part_label(&self, index: usize) -> String {
        format!("{}#{index}", self.sha256)
    }
}

fn split_of(bytes: &[u8]) -> Option<Split> {
    // A token record never has a top-level "split" key.
    serde_json::from_slice::<SplitHead>(bytes)
        .ok()
        .map(|head| head.split)
}

/// Opens a conversation with the platform keychain.
type Connect = Box<dyn Fn() -> Result<Box<dyn Backend>, StoreError> + Send>;

pub struct KeychainStore {
    /// The keychain conversation of the store operation under way, if it
    /// needed one: opened on first use (a `get` answered from the kernel
    /// cache never talks to the keychain) and ended with the operation,
    /// so no process holds one across a refresh (see `in_conversation`).
    connected: RefCell<Option<Box<dyn Backend>>>,
    connect: Connect,
    /// Fresh access tokens in the kernel's per-user keyring, where there
    /// is one (Linux); kept in step with every save and delete.
    cache: Option<KernelCache>,
    /// Whether `cache` may be read and filled; off, saves and deletes
    /// still drop what it holds.
    cache_serving: bool,
}

impl KeychainStore {
    /// The keychain, connected when first needed. Where there is plainly
    /// none (no session bus), says so at once.
    pub fn open() -> Result<Self, StoreError> {
        platform_check()?;
        Ok(Self::lazily(Box::new(platform_backend)))
    }

    /// Like [`KeychainStore::open`], giving up after `bound` when the
    /// connection is made; for a keychain `auto` chose earlier.
    pub fn open_lazily_within(bound: Duration) -> Result<Self, StoreError> {
        platform_check()?;
        Ok(Self::lazily(Box::new(move || {
            Self::open_within(bound)?.into_backend()
        })))
    }

    fn into_backend(self) -> Result<Box<dyn Backend>, StoreError> {
        drop(self.backend()?);
        self.connected
            .into_inner()
            .ok_or_else(|| StoreError::Keychain("the keychain conversation ended".into()))
    }

    /// The keychain conversation, opened now if there is none.
    fn backend(&self) -> Result<Ref<'_, dyn Backend>, StoreError> {
        if self.connected.borrow().is_none() {
            let backend = (self.connect)()?;
            *self.connected.borrow_mut() = Some(backend);
        }
        Ref::filter_map(self.connected.borrow(), |b| b.as_deref())
            .map_err(|_| StoreError::Keychain("the keychain conversation ended".into()))
    }

    /// Runs one store operation, then ends its keychain conversation, if
    /// it opened one: no process keeps a Secret Service session open
    /// across a refresh or while it waits for a lock.
    fn in_conversation<T>(
        &self,
        operation: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = operation();
        if let Ok(mut connected) = self.connected.try_borrow_mut() {
            connected.take();
        }
        if let (Err(StoreError::KeychainLocked(_)), Some(_)) = (&result, &self.cache) {
            // Locked: what the keychain withholds, the cache must not
            // keep handing out.
            KernelCache::forget_all();
        }
        result
    }

    /// Whether the kernel cache may be read and filled
    /// (`keygate.kernelCache`, `KEYGATE_KERNEL_CACHE`).
    pub fn serving_cache(mut self, on: bool) -> Self {
        self.cache_serving = on;
        self
    }

    fn lazily(connect: Connect) -> Self {
        let cache = KernelCache::of_session_keychain();
        Self {
            connected: RefCell::new(None),
            connect,
            cache,
            cache_serving: true,
        }
    }

    /// Opens the keychain, giving up after `bound`: a session bus with no
    /// Secret Service behind it can otherwise stall for D-Bus's 25-second
    /// activation timeout on every git command.
    #[cfg(target_os = "linux")]
    pub fn open_within(bound: Duration) -> Result<Self, StoreError> {
        // Only finding the daemon runs under the bound. A thread given up
        // on while opening a session would leave OpenSession in flight at
        // the daemon when this process exits: the very race that makes
        // gnome-keyring abort (see secret_service.rs).
        let bus = secret_service::Bus::reach_within(bound)?;
        let backend = secret_service::SecretServiceBackend::open_session(bus)?;
        let store = Self::lazily(Box::new(platform_backend));
        // The first operation uses the conversation the probe opened.
        *store.connected.borrow_mut() = Some(Box::new(backend));
        Ok(store)
    }

    /// Opens the keychain, giving up after `bound`.
    #[cfg(not(target_os = "linux"))]
    pub fn open_within(bound: Duration) -> Result<Self, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(Self::open().and_then(|store| {
                drop(store.backend()?);
                Ok(store)
            }));
        });
        receiver
            .recv_timeout(bound)
            .unwrap_or_else(|_| Err(StoreError::KeychainUnreachable("no answer in time".into())))
    }

    /// The cache, when reads and fills are on.
    fn active_cache(&self) -> Option<&KernelCache> {
        self.cache.as_ref().filter(|_| self.cache_serving)
    }

    /// Runs a keychain write, then brings the cache in step with `after`
    /// (the record now stored, or `None` for gone), whatever the write did.
    fn write_through<T>(
        &self,
        key: &AccountKey,
        after: Option<&TokenRecord>,
        write: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(cache) = &self.cache else {
            return write();
        };
        // Held across the write, so no reader fills the cache from a
        // keychain read made before it.
        let _fill = FillLock::for_write();
        let written = write();
        match (after, &written) {
            (Some(record), Ok(_)) => cache.replace(record, unix_now(), self.cache_serving),
            _ => cache.forget(key),
        }
        written
    }
}

impl TokenStore for KeychainStore {
    fn kind(&self) -> &'static str {
        "keychain"
    }

    fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        // Taken before the keychain read: see `FillLock`.
        let fill = self
            .active_cache()
            .and_then(|cache| FillLock::try_for_fill().map(|lock| (cache, lock)));
        let record = self.in_conversation(|| {
            self.fetch(TOKENS, &key.label())?
                .map(|bytes| parse(&bytes))
                .transpose()
        })?;
        if let (Some((cache, _lock)), Some(record)) = (fill, &record)
            && record.key() == *key
        {
            cache.fill(record, unix_now());
        }
        Ok(record)
    }

    fn save(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record)
            .map_err(|e| StoreError::Keychain(format!("cannot encode the record: {e}")))?;
        self.write_through(&record.key(), Some(record), || {
            self.in_conversation(|| self.put(TOKENS, &record.key().label(), &json))
        })
    }

    fn delete(&self, key: &AccountKey) -> Result<bool, StoreError> {
        self.write_through(key, None, || {
            self.in_conversation(|| self.remove(TOKENS, &key.label()))
        })
    }

    fn load_cached(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        match self
            .active_cache()
            .and_then(|cache| cache.get(key, unix_now()))
        {
            Some(record) => Ok(Some(record)),
            None => self.load(key),
        }
    }

    fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let list_once = || -> Result<Vec<TokenRecord>, StoreError> {
            self.backend()?
                .all(TOKENS)?
                .into_iter()
                .map(|bytes| parse(&self.assemble(bytes)?))
                .collect()
        };
        // A split value replaced between reading its head and its parts:
        // once more, as `fetch` does.
        self.in_conversation(|| list_once().or_else(|_| list_once()))
    }

    fn load_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let bytes = self.in_conversation(|| self.fetch(OWN_SECRETS, name))?;
        bytes
            .map(|b| {
                String::from_utf8(b).map(Secret::new).map_err(|_| {
                    StoreError::Keychain(format!("keygate's secret {name:?} is not text"))
                })
            })
            .transpose()
    }

    fn save_secret(&self, name: &str, value: &Secret) -> Result<(), StoreError> {
        self.in_conversation(|| self.put(OWN_SECRETS, name, value.expose().as_bytes()))
    }

    fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        self.in_conversation(|| self.remove(OWN_SECRETS, name))
    }
}

/// Values bigger than one entry holds, split across entries.
impl KeychainStore {
    fn put(&self, service: &str, label: &str, value: &[u8]) -> Result<(), StoreError> {
        let previous = self
            .backend()?
            .get(service, label)?
            .and_then(|b| split_of(&b));
        let max = self.backend()?.max_secret_len();
        let written = if value.len() <= max {
            self.backend()?.set(service, label, value)?;
            None
        } else {
            let split = Split {
                sha256: hex_digest(value),
                parts: value.len().div_ceil(max),
            };
            for (index, part) in value.chunks(max).enumerate() {
                self.backend()?.set(PARTS, &split.part_label(index), part)?;
            }
            let head = serde_json::to_vec(&SplitHead { split })
                .map_err(|e| StoreError::Keychain(format!("cannot encode an entry: {e}")))?;
            // The one step that switches readers to the new value.
            self.backend()?.set(service, label, &head)?;
            split_of(&head)
        };
        if let Some(previous) = previous
            && Some(&previous) != written.as_ref()
        {
            self.remove_parts(&previous);
        }
        Ok(())
    }

    fn fetch(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(bytes) = self.backend()?.get(service, label)? else {
            return Ok(None);
        };
        match self.assemble(bytes) {
            // A writer replaced the value between our two reads: once more.
            Err(_) => self
                .backend()?
                .get(service, label)?
                .map(|bytes| self.assemble(bytes))
                .transpose(),
            whole => whole.map(Some),
        }
    }

    /// The value an entry stands for: itself, or its parts joined.
    fn assemble(&self, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let Some(split) = split_of(&bytes) else {
            return Ok(bytes);
        };
        if split.parts > MAX_PARTS {
            return Err(StoreError::Keychain(format!(
                "a split keygate entry claims {} parts; it is damaged, run `keygate logout <url>` and log in again",
                split.parts
            )));
        }
        let mut value = Vec::new();
        for index in 0..split.parts {
            let part = self
                .backend()?
                .get(PARTS, &split.part_label(index))?
                .ok_or_else(|| {
                    StoreError::Keychain(format!(
                        "part {index} of a split keygate entry is missing"
                    ))
                })?;
            value.extend_from_slice(&part);
        }
        if hex_digest(&value) != split.sha256 {
            return Err(StoreError::Keychain(
                "the parts of a split keygate entry do not fit together".into(),
            ));
        }
        Ok(value)
    }

    fn remove(&self, service: &str, label: &str) -> Result<bool, StoreError> {
        let split = self
            .backend()?
            .get(service, label)?
            .and_then(|b| split_of(&b));
        let removed = self.backend()?.delete(service, label)?;
        if let Some(split) = split {
            self.remove_parts(&split);
        }
        Ok(removed)
    }

    /// Best effort: a leftover part holds nothing an entry points to.
    fn remove_parts(&self, split: &Split) {
        let Ok(backend) = self.backend() else {
            return;
        };
        for index in 0..split.parts.min(MAX_PARTS) {
            let _ = backend.delete(PARTS, &split.part_label(index));
        }
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::Keychain(format!(
            "a keygate entry is not valid JSON ({})",
            crate::store::describe_json_error(&e)
        ))
    })
}

/// Fails at once where there is plainly no keychain.
fn platform_check() -> Result<(), StoreError> {
    #[cfg(target_os = "linux")]
    secret_service::Bus::check()?;
    Ok(())
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
    Err(StoreError::NoKeychain(
        "no supported keychain on this platform".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A keychain with Credential Manager's kind of size bound, small;
    /// its clones (one per conversation) share the entries.
    #[derive(Default, Clone)]
    struct SmallEntries {
        entries: std::sync::Arc<Mutex<Entries>>,
    }

    type Entries = BTreeMap<(String, String), Vec<u8>>;

    impl Backend for SmallEntries {
        fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let entries = self.entries.lock().unwrap();
            Ok(entries.get(&(service.into(), label.into())).cloned())
        }
        fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError> {
            assert!(secret.len() <= self.max_secret_len(), "entry too big");
            let mut entries = self.entries.lock().unwrap();
            entries.insert((service.into(), label.into()), secret.to_vec());
            Ok(())
        }
        fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError> {
            let mut entries = self.entries.lock().unwrap();
            Ok(entries.remove(&(service.into(), label.into())).is_some())
        }
        fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError> {
            let entries = self.entries.lock().unwrap();
            Ok(entries
                .iter()
                .filter(|((s, _), _)| s == service)
                .map(|(_, v)| v.clone())
                .collect())
        }
        fn max_secret_len(&self) -> usize {
            300
        }
    }

    fn store() -> KeychainStore {
        let entries = SmallEntries::default();
        let mut store = KeychainStore::lazily(Box::new(move || Ok(Box::new(entries.clone()))));
        store.cache = None;
        store
    }

    fn entries_in(store: &KeychainStore, service: &str) -> usize {
        store.backend().unwrap().all(service).unwrap().len()
    }

    fn record(access_token: &str) -> TokenRecord {
        TokenRecord {
            expires_at: Some(7200),
            refresh_token: Some(Secret::new("r".repeat(100))),
            ..crate::store::test_record("https://bitbucket.example", access_token)
        }
    }

    #[test]
    fn a_record_bigger_than_an_entry_round_trips_in_parts() {
        let store = store();
        let big = record(&"a".repeat(4096));
        store.save(&big).unwrap();
        assert!(entries_in(&store, PARTS) > 10);
        assert_eq!(store.load(&big.key()).unwrap(), Some(big.clone()));
        assert_eq!(store.list().unwrap(), vec![big]);
    }

    #[test]
    fn replacing_or_deleting_a_split_record_leaves_no_parts() {
        let store = store();
        let first = record(&"a".repeat(4096));
        store.save(&first).unwrap();
        let parts_of_one = entries_in(&store, PARTS);
        store.save(&record(&"b".repeat(4096))).unwrap();
        assert_eq!(entries_in(&store, PARTS), parts_of_one, "old parts removed");
        let small = record("small");
        store.save(&small).unwrap();
        assert_eq!(entries_in(&store, PARTS), 0);
        assert_eq!(store.load(&small.key()).unwrap(), Some(small.clone()));
        store.save(&first).unwrap();
        assert!(store.delete(&first.key()).unwrap());
        assert_eq!(entries_in(&store, PARTS), 0);
        assert_eq!(entries_in(&store, TOKENS), 0);
    }

    #[test]
    fn deleting_a_split_secret_leaves_no_entry_and_no_parts() {
        let store = store();
        let big = Secret::new("k".repeat(2000));
        store.save_secret("proxy-ca", &big).unwrap();
        store.save_secret("other", &Secret::new("small")).unwrap();
        assert!(entries_in(&store, PARTS) > 5);
        assert_eq!(store.load_secret("proxy-ca").unwrap(), Some(big));
        assert!(store.delete_secret("proxy-ca").unwrap());
        assert!(!store.delete_secret("proxy-ca").unwrap());
        assert_eq!(store.load_secret("proxy-ca").unwrap(), None);
        assert_eq!(entries_in(&store, PARTS), 0);
        assert_eq!(entries_in(&store, OWN_SECRETS), 1);
        assert_eq!(
            store.load_secret("other").unwrap().unwrap().expose(),
            "small"
        );
    }

    #[test]
    fn a_damaged_head_is_not_followed() {
        let store = store();
        let key = record("x").key();
        let head = br#"{"split":{"sha256":"00","parts":18446744073709551615}}"#;
        store
            .backend()
            .unwrap()
            .set(TOKENS, &key.label(), head)
            .unwrap();
        let error = store.load(&key).unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
        assert!(store.delete(&key).unwrap());
    }

    #[test]
    fn a_missing_or_foreign_part_is_a_clear_error() {
        let store = store();
        let big = record(&"a".repeat(4096));
        store.save(&big).unwrap();
        let head = store
            .backend()
            .unwrap()
            .get(TOKENS, &big.key().label())
            .unwrap()
            .unwrap();
        let split = split_of(&head).unwrap();
        store
            .backend()
            .unwrap()
            .set(PARTS, &split.part_label(1), b"x")
            .unwrap();
        let error = store.load(&big.key()).unwrap_err().to_string();
        assert!(error.contains("do not fit together"), "{error}");
        store
            .backend()
            .unwrap()
            .delete(PARTS, &split.part_label(1))
            .unwrap();
        let error = store.load(&big.key()).unwrap_err().to_string();
        assert!(error.contains("part 1"), "{error}");
        assert!(!error.contains("aaaa"));
    }
}
