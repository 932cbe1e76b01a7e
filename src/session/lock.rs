//! The cross-process lock that makes one process refresh while the
//! others wait, and the notes kept beside it: a failed CI exchange, so
//! the waiting processes do not present the same id token again.

use std::fs::{File, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{Interaction, Session, SessionError};
use crate::store::{self, AccountKey};

impl Session<'_> {
    /// An exclusive lock per account, shared by every keygate process of
    /// this user; released when the returned file is dropped.
    ///
    /// The holder may be waiting for a person (a browser login), so a
    /// process that may not ask one waits only as long as a refresh by
    /// another process can take.
    pub(super) fn lock(&self) -> Result<File, SessionError> {
        let dir = self.locks_dir()?;
        let path = dir.join(format!("{}.lock", lock_name(&self.key)));
        let lock_error = |source| SessionError::Lock {
            path: path.clone(),
            source,
        };
        crate::sys::create_private_dir(&dir).map_err(lock_error)?;
        let file = crate::sys::open_private(&path, false).map_err(lock_error)?;
        if !matches!(*self.interaction, Interaction::Forbidden(_)) {
            file.lock().map_err(lock_error)?;
            return Ok(file);
        }
        // Room for another process's refresh: connect, answer, save.
        let patience = self.provider.policy.http_timeout.saturating_mul(2) + Duration::from_secs(5);
        let deadline = Instant::now() + patience;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(SessionError::Busy {
                        server: self.key.server.clone(),
                        waited: patience,
                    });
                }
                Err(TryLockError::Error(source)) => return Err(lock_error(source)),
            }
        }
    }

    fn locks_dir(&self) -> Result<PathBuf, SessionError> {
        Ok(match &self.data_dir {
            Some(dir) => dir.clone(),
            None => store::data_dir()?,
        }
        .join("locks"))
    }

    /// Where a failed CI exchange is noted, beside the account's lock.
    fn exchange_failure_note(&self) -> Option<PathBuf> {
        self.provider.client.ci_identity.as_ref()?;
        let dir = self.locks_dir().ok()?;
        Some(dir.join(format!("{}.failed", lock_name(&self.key))))
    }

    /// Notes, with the lock held, that this process's CI exchange failed
    /// and how: the processes waiting for the lock say so rather than
    /// present the id token again. The words name the server and the
    /// token's claims, never the token.
    pub(super) fn note_exchange_failure(&self, error: &SessionError) {
        let Some(path) = self.exchange_failure_note() else {
            return;
        };
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let note = format!("{at}\n{error}");
        if let Err(error) = crate::sys::write_private_atomically(&path, note.as_bytes()) {
            tracing::debug!(%error, "cannot note the failed exchange");
        }
    }

    /// What a CI exchange met after `since`, if one failed.
    pub(super) fn exchange_failed_since(&self, since: std::time::SystemTime) -> Option<String> {
        let path = self.exchange_failure_note()?;
        let note = std::fs::read_to_string(path).ok()?;
        let (at, said) = note.split_once('\n')?;
        let at = std::time::UNIX_EPOCH + Duration::from_millis(at.parse().ok()?);
        (at >= since).then(|| said.to_owned())
    }
}

/// A file name for `key`'s lock and notes that reveals nothing of the account.
pub(super) fn lock_name(key: &AccountKey) -> String {
    let digest = Sha256::digest(key.label().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}
