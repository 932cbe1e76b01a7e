//! Fresh access tokens cached in the kernel's per-user keyring (`@u`), in
//! front of the keychain: answering `get` from it costs a few system
//! calls, no D-Bus round trip and nothing of the Secret Service daemon.
//!
//! - **What**: the account's record without its refresh token, which only
//!   the keychain holds.
//! - **How long**: until the token stops being fresh under any
//!   `refreshMargin` ([`cache_until`]), and never more than an hour; the
//!   kernel drops the key at its timeout and a read checks the instant
//!   again, so a cached token is always one `get` would hand out.
//! - **Who can read it**: processes running as this user, and no one
//!   else. The key grants its owner (the UID) what keygate needs and
//!   *nothing to whoever possesses it*: possession follows session
//!   keyrings, not UIDs, and `su OTHER -c …` without `pam_keyinit` hands
//!   this user's session keyring, and so `@u`, to another user's
//!   processes. The key is sealed while only this process can reach it
//!   (in its process keyring) and only then linked into `@u`, so it never
//!   sits in `@u` with the kernel's default mask. A read serves only a key
//!   this UID owns with no possessor, group or other rights, so a key
//!   another user planted in `@u` (they may write to it when they possess
//!   it), or one an older keygate made with possessor rights (which
//!   another user may have rewritten), is dropped, never served.
//! - **Wider than the keychain**: the Secret Service answers processes on
//!   this user's session bus while the collection is unlocked; the cache
//!   answers any process of this UID (a sandbox without the bus, files or
//!   keygate's directories still finds the key), and until some keygate
//!   process finds the collection locked. docs/tokens.md says so and how to turn
//!   it off.
//! - **Never out of date**: the keychain store replaces or drops the key
//!   on every save and delete (every key in `@u` that holds the account,
//!   whichever bus address spelling named it), fills it from a keychain
//!   read only under [`FillLock`], which writers hold across their
//!   keychain write, and drops every key when the keychain says it is
//!   locked.
//! - **Where it is missing** (seccomp filters, containers without key
//!   support, quota reached): every operation quietly does nothing and
//!   the keychain answers alone. A write that fails half way leaves
//!   nothing behind.
//!
//! Off (`KEYGATE_KERNEL_CACHE=off`, `keygate.kernelCache=false`): no reads
//! and no fills; saves and deletes still drop what an earlier process
//! cached.

use std::fs::{File, TryLockError};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::store::{AccountKey, TokenRecord};

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

/// What a cached key holds: the record without its refresh token, and
/// the instant it stops being served.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    until: u64,
    record: TokenRecord,
}

/// Every key keygate names starts so, whatever its version and scope.
const PREFIX: &str = "keygate:";

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

    pub(crate) fn new(scope: &str) -> Self {
        Self {
            scope: scope.to_owned(),
        }
    }

    /// The key's description: a digest, so neither the server nor the
    /// account shows in `/proc/keys`. v2: keys of v1 were made with
    /// possessor rights and are never read again.
    fn description(&self, key: &AccountKey) -> String {
        let mut digest = Sha256::new();
        digest.update(b"keygate kernel cache v2\0");
        digest.update(self.scope.as_bytes());
        digest.update(b"\0");
        digest.update(key.label().as_bytes());
        let hex: String = digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{PREFIX}{hex}")
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

    /// Caches `record`'s access token as just read from the keychain, or
    /// drops what is cached when it has none worth serving. Best effort:
    /// a failure leaves nothing.
    pub(crate) fn fill(&self, record: &TokenRecord, now: u64) {
        let description = self.description(&record.key());
        let Some(until) = cache_until(record, now) else {
            imp::drop_where(|entry| entry.description == description);
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
            Err(_) => imp::drop_where(|entry| entry.description == description),
        }
    }

    /// After the keychain's record changed: whatever any key holds for the
    /// account goes, then the new record is cached when `serve` allows.
    pub(crate) fn replace(&self, record: &TokenRecord, now: u64, serve: bool) {
        self.forget(&record.key());
        // Nothing worth serving (an erased token) is already dropped.
        if serve && cache_until(record, now).is_some() {
            self.fill(record, now);
        }
    }

    /// Drops every key that may answer for `key`: this scope's, the same
    /// account's under another spelling of the bus address, and any key
    /// that is not plainly this user's own (unreadable, foreign, made by
    /// an older keygate).
    pub(crate) fn forget(&self, key: &AccountKey) {
        let description = self.description(key);
        imp::drop_where(|entry| {
            entry.description == description
                || entry.payload.as_deref().is_none_or(|payload| {
                    serde_json::from_slice::<Cached>(payload)
                        .map_or(true, |cached| cached.record.key() == *key)
                })
        });
    }

    /// Drops every key keygate made: the keychain is locked, so nothing it
    /// holds may be served until it is unlocked and read again.
    pub(crate) fn forget_all() {
        imp::drop_where(|_| true);
    }
}

/// A key in `@u` whose description is keygate's, as the writers' sweeps
/// see it: `payload` only for a key this user made and may trust.
struct Entry {
    description: String,
    payload: Option<Vec<u8>>,
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
        let dir = crate::sys::runtime_dir()?;
        crate::sys::create_private_dir(&dir).ok()?;
        Some(dir.join("kernel-cache.lock"))
    }

    /// For a reader: the lock if it is free now, else `None` (do not fill).
    pub(crate) fn try_for_fill() -> Option<Self> {
        let file = crate::sys::open_private(&Self::path()?, false).ok()?;
        match file.try_lock() {
            Ok(()) => Some(Self(file)),
            Err(TryLockError::WouldBlock | TryLockError::Error(_)) => None,
        }
    }

    /// For a writer: waits for readers filling now. `None` when there is
    /// no place for the lock, and then no reader can fill either.
    pub(crate) fn for_write() -> Option<Self> {
        let file = crate::sys::open_private(&Self::path()?, false).ok()?;
        file.lock().ok()?;
        Some(Self(file))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use linux_keyutils::{
        Key, KeyPermissions, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, KeySerialId,
        KeyType, Metadata, Permission,
    };

    use super::{Entry, PREFIX};
    use crate::sys::effective_uid;

    /// What the owner may do with a sealed key; possessor, group and
    /// others get nothing.
    fn owner_may() -> Permission {
        Permission::VIEW
            | Permission::READ
            | Permission::WRITE
            | Permission::SEARCH
            | Permission::SETATTR
    }

    fn owner_only(rights: Permission) -> KeyPermissions {
        KeyPermissionsBuilder::builder().user(rights).build()
    }

    fn user_keyring() -> Option<KeyRing> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).ok()
    }

    /// A key this UID made and sealed: any possessor, group or other right
    /// means another user may have written it.
    fn trusted(metadata: &Metadata) -> bool {
        const OTHERS_THAN_OWNER: u32 = 0xff00_ffff;
        metadata.get_type() == KeyType::User
            && metadata.get_uid() == effective_uid()
            && metadata.get_perms().bits() & OTHERS_THAN_OWNER == 0
    }

    pub(super) fn read(description: &str) -> Option<Vec<u8>> {
        let ring = user_keyring()?;
        let key = ring.search(description).ok()?;
        if !key.metadata().is_ok_and(|metadata| trusted(&metadata)) {
            let _ = ring.unlink_key(key);
            return None;
        }
        key.read_to_vec().ok()
    }

    pub(super) fn write(description: &str, payload: &[u8], timeout_secs: u64) {
        let (Some(user), Ok(process)) = (
            user_keyring(),
            KeyRing::from_special_id(KeyRingIdentifier::Process, true),
        ) else {
            return;
        };
        // Made in this process's own keyring, which no other process
        // possesses: the kernel's default mask (all rights to possessors)
        // is never seen outside it.
        let Ok(key) = process.add_key(description, payload) else {
            return;
        };
        let linked = seal_and_link(key, &user, timeout_secs);
        let _ = process.unlink_key(key);
        if linked.is_err() {
            // Whatever half-made key there is, it must not be served.
            let _ = key.invalidate();
            drop_where(|entry| entry.description == description);
        }
    }

    fn seal_and_link(
        key: Key,
        user: &KeyRing,
        timeout_secs: u64,
    ) -> Result<(), linux_keyutils::KeyError> {
        // LINK only for as long as the link takes.
        key.set_perms(owner_only(owner_may() | Permission::LINK))?;
        key.set_timeout(usize::try_from(timeout_secs).unwrap_or(usize::MAX))?;
        // Displaces the key of the same description, in one step.
        user.link_key(key)?;
        key.set_perms(owner_only(owner_may()))
    }

    /// Unlinks from `@u` every key of keygate's for which `doomed` says
    /// so, and invalidates those of this user's. Unlinking needs only the
    /// right to write `@u`, which its owner always has: keys whose own
    /// mask denies the owner everything (made where the session keyring
    /// is not linked to `@u`, by an older keygate) go too.
    pub(super) fn drop_where(doomed: impl Fn(&Entry) -> bool) {
        let Some(ring) = user_keyring() else {
            return;
        };
        for id in linked_ids() {
            let key = Key::from_id(KeySerialId::new(id));
            let Ok(metadata) = key.metadata() else {
                continue;
            };
            let description = metadata.get_description();
            if metadata.get_type() != KeyType::User || !description.starts_with(PREFIX) {
                continue;
            }
            let payload = trusted(&metadata).then(|| key.read_to_vec().ok()).flatten();
            let entry = Entry {
                description: description.to_owned(),
                payload,
            };
            if doomed(&entry) {
                let _ = ring.unlink_key(key);
                if metadata.get_uid() == effective_uid() {
                    let _ = key.invalidate();
                }
            }
        }
    }

    /// The serial numbers of what `@u` links to directly.
    fn linked_ids() -> Vec<i32> {
        let ring = Key::from_id(KeySerialId::new(KeyRingIdentifier::User as i32));
        let mut buffer = vec![0u8; 1024];
        // The kernel says how much it has; grow once or twice if needed.
        for _ in 0..4 {
            let Ok(len) = ring.read(&mut buffer) else {
                return Vec::new();
            };
            if len <= buffer.len() {
                return buffer[..len]
                    .chunks_exact(4)
                    .filter_map(|id| id.try_into().ok().map(i32::from_ne_bytes))
                    .collect();
            }
            buffer.resize(len, 0);
        }
        Vec::new()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Entry;

    pub(super) fn read(_: &str) -> Option<Vec<u8>> {
        None
    }
    pub(super) fn write(_: &str, _: &[u8], _: u64) {}
    pub(super) fn drop_where(_: impl Fn(&Entry) -> bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn record(obtained_at: u64, expires_at: Option<u64>) -> TokenRecord {
        TokenRecord {
            refresh_token: Some(Secret::new("r")),
            ..crate::store::test_record_lasting(obtained_at, expires_at)
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
