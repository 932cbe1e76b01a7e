//! Fresh access tokens cached in the kernel's per-user keyring (`@u`), in
//! front of the keychain: answering `get` from it costs two system calls,
//! no D-Bus round trip and nothing of the Secret Service daemon.
//!
//! - **What**: the account's record without its refresh token, which only
//!   the keychain holds.
//! - **How long**: until the token stops being fresh under any
//!   `refreshMargin` ([`cache_until`]), and never more than an hour; the
//!   kernel drops the key at its timeout and a read checks the instant
//!   again, so a cached token is always one `get` would hand out.
//! - **Who can read it**: processes of this user. The key grants nothing
//!   to group or others (the mask is set explicitly, not left to the
//!   kernel's default), the same boundary as the Secret Service, which
//!   answers any process of the user on the session bus.
//! - **Never out of date**: the keychain store replaces or drops the key
//!   on every save and delete, and fills it from a keychain read only
//!   under [`FillLock`], which writers hold across their keychain write.
//! - **Where it is missing** (seccomp filters, containers without key
//!   support, quota reached): every operation quietly does nothing and
//!   the keychain answers alone.
//!
//! `KEYGATE_KERNEL_CACHE=off` stops reads and fills; saves and deletes
//! still drop what an earlier process cached.

use std::fs::{File, TryLockError};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{AccountKey, TokenRecord};

/// The longest a token stays cached whatever its lifetime (tokens
/// without an expiry, or a keychain entry changed by another tool).
const MAX_SECS: u64 = 3600;

/// The instant after which `record` may no longer be served from the
/// cache: three quarters into the token's lifetime. A token stops being
/// fresh when the time left drops under min(refreshMargin, a quarter of
/// its lifetime), so up to this instant it is fresh whatever margin the
/// reader's configuration sets.
pub(crate) fn cache_until(record: &TokenRecord, now: u64) -> Option<u64> {
    record.access_token.as_ref()?;
    let cap = now.saturating_add(MAX_SECS);
    let until = match record.expires_at {
        Some(expires_at) => {
            let lifetime = expires_at.saturating_sub(record.obtained_at);
            expires_at.saturating_sub(lifetime / 4).min(cap)
        }
        None => cap,
    };
    (until > now).then_some(until)
}

/// Whether reads and fills are on: `KEYGATE_KERNEL_CACHE=off` (or `0`,
/// `false`, `no`) turns them off.
pub(crate) fn enabled() -> bool {
    !std::env::var("KEYGATE_KERNEL_CACHE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

/// What a cached key holds: the record without its refresh token, and
/// the instant it stops being served.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    until: u64,
    record: TokenRecord,
}

/// The cache of one keychain: keys are named after the keychain they
/// front (its bus address) and the account, so two sessions with two
/// keychains never answer for each other.
pub(crate) struct KernelCache {
    scope: String,
}

impl KernelCache {
    /// The cache in front of this session's Secret Service, on Linux.
    pub(crate) fn of_session_keychain() -> Option<Self> {
        cfg!(target_os = "linux").then(|| {
            // Named after the keychain it fronts: a private bus (another
            // session, a test) has its own Secret Service.
            let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
            Self::new(&bus)
        })
    }

    /// The same, when reads are on: where `get`'s quick path may look.
    pub(crate) fn for_session_keychain() -> Option<Self> {
        Self::of_session_keychain().filter(|_| enabled())
    }

    pub(crate) fn new(scope: &str) -> Self {
        Self {
            scope: scope.to_owned(),
        }
    }

    /// The key's description: a digest, so neither the server nor the
    /// account shows in `/proc/keys`.
    fn description(&self, key: &AccountKey) -> String {
        let mut digest = Sha256::new();
        digest.update(b"keygate kernel cache v1\0");
        digest.update(self.scope.as_bytes());
        digest.update(b"\0");
        digest.update(key.label().as_bytes());
        let hex: String = digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("keygate:{hex}")
    }

    /// The cached record for `key`, if there is one still servable at
    /// `now`. Its refresh token is always absent.
    pub(crate) fn get(&self, key: &AccountKey, now: u64) -> Option<TokenRecord> {
        let bytes = imp::read(&self.description(key))?;
        let cached: Cached = serde_json::from_slice(&bytes).ok()?;
        let record = cached.record;
        let servable = now < cached.until
            && record.key() == *key
            && record.refresh_token.is_none()
            && cache_until(&record, now).is_some_and(|until| now < until);
        servable.then_some(record)
    }

    /// Caches `record`'s access token, or drops what is cached when it
    /// has none worth serving. Best effort: a failure leaves nothing.
    pub(crate) fn put(&self, record: &TokenRecord, now: u64) {
        let description = self.description(&record.key());
        let Some(until) = cache_until(record, now) else {
            imp::forget(&description);
            return;
        };
        let cached = Cached {
            until,
            record: TokenRecord {
                refresh_token: None,
                ..record.clone()
            },
        };
        match serde_json::to_vec(&cached) {
            Ok(payload) => imp::write(&description, &payload, until - now),
            Err(_) => imp::forget(&description),
        }
    }

    /// Drops what is cached for `key`.
    pub(crate) fn forget(&self, key: &AccountKey) {
        imp::forget(&self.description(key));
    }
}

/// Orders filling the cache from a keychain read against keychain
/// writes. A reader that read the keychain just before a writer replaced
/// the record must not put the old token back after the writer updated
/// the cache: readers fill only while holding this lock, taken before
/// their keychain read and without waiting, and writers hold it across
/// their keychain write and cache update.
pub(crate) struct FillLock(#[allow(dead_code)] File);

impl FillLock {
    fn path() -> Option<PathBuf> {
        let dir = super::runtime_dir().ok()?;
        super::create_private_dir(&dir).ok()?;
        Some(dir.join("kernel-cache.lock"))
    }

    /// For a reader: the lock if it is free now, else `None` (do not fill).
    pub(crate) fn try_for_fill() -> Option<Self> {
        let file = super::open_private(&Self::path()?, false).ok()?;
        match file.try_lock() {
            Ok(()) => Some(Self(file)),
            Err(TryLockError::WouldBlock | TryLockError::Error(_)) => None,
        }
    }

    /// For a writer: waits for readers filling now. `None` when there is
    /// no place for the lock, and then no reader can fill either.
    pub(crate) fn for_write() -> Option<Self> {
        let file = super::open_private(&Self::path()?, false).ok()?;
        file.lock().ok()?;
        Some(Self(file))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

    fn user_keyring() -> Option<KeyRing> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).ok()
    }

    pub(super) fn read(description: &str) -> Option<Vec<u8>> {
        let key = user_keyring()?.search(description).ok()?;
        key.read_to_vec().ok()
    }

    pub(super) fn write(description: &str, payload: &[u8], timeout_secs: u64) {
        let Some(ring) = user_keyring() else {
            return;
        };
        let written = ring.add_key(description, payload).and_then(|key| {
            // This user's processes only: possessor and owner may read
            // and replace it, group and others get nothing.
            let mine = || {
                Permission::VIEW
                    | Permission::READ
                    | Permission::WRITE
                    | Permission::SEARCH
                    | Permission::SETATTR
            };
            key.set_perms(
                KeyPermissionsBuilder::builder()
                    .posessor(mine())
                    .user(mine())
                    .build(),
            )?;
            key.set_timeout(usize::try_from(timeout_secs).unwrap_or(usize::MAX))?;
            Ok(key)
        });
        if written.is_err() {
            // Whatever half-written key there is, it must not be served.
            forget(description);
        }
    }

    pub(super) fn forget(description: &str) {
        if let Some(key) = user_keyring().and_then(|ring| ring.search(description).ok()) {
            let _ = key.invalidate();
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn read(_: &str) -> Option<Vec<u8>> {
        None
    }
    pub(super) fn write(_: &str, _: &[u8], _: u64) {}
    pub(super) fn forget(_: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn record(obtained_at: u64, expires_at: Option<u64>) -> TokenRecord {
        TokenRecord {
            expires_at,
            obtained_at,
            refresh_token: Some(Secret::new("r")),
            ..crate::store::test_record("https://h.example", "t")
        }
    }

    #[test]
    fn cached_only_while_fresh_under_any_margin() {
        // A 2-hour token: three quarters in, capped at an hour from now.
        let two_hours = record(0, Some(7200));
        assert_eq!(cache_until(&two_hours, 0), Some(3600));
        assert_eq!(cache_until(&two_hours, 5000), Some(5400));
        assert_eq!(cache_until(&two_hours, 5400), None);
        for margin in [0, 60, 300, 1800, 100_000] {
            let stale = two_hours
                .stale_at(std::time::Duration::from_secs(margin))
                .unwrap();
            assert!(5400 <= stale, "margin {margin}");
        }
        // A 30-second test token: 22 s in.
        assert_eq!(cache_until(&record(100, Some(130)), 100), Some(123));
        // No expiry: an hour at most; no token: nothing.
        assert_eq!(cache_until(&record(0, None), 10), Some(3610));
        let mut erased = record(0, Some(7200));
        erased.access_token = None;
        assert_eq!(cache_until(&erased, 0), None);
    }

    #[test]
    fn descriptions_name_neither_server_nor_account_and_differ_by_scope() {
        let key = record(0, None).key();
        let one = KernelCache::new("unix:path=/run/user/1000/bus").description(&key);
        let two = KernelCache::new("unix:path=/tmp/other").description(&key);
        assert_ne!(one, two);
        assert!(one.starts_with("keygate:") && !one.contains("h.example"));
    }
}
