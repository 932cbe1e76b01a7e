//! Leaving a server: `keygate logout` revokes the account's tokens and
//! deletes them, `--forget-client` deletes the client keygate
//! registered there.

use super::{Session, SessionError, issued_to};
use crate::oauth::register::{self, Forgotten};
use crate::oauth::{self, OAuthError};

/// What `logout` did at the server.
#[derive(Debug)]
pub enum Revocation {
    /// Nothing was stored, or the server has no revocation endpoint.
    NotAttempted,
    Revoked,
    /// The server refused or failed; the local copies are gone anyway.
    Failed(OAuthError),
}

impl Session<'_> {
    /// Revokes the account's tokens where the server allows it (RFC 7009),
    /// then deletes the local copies whatever the server answered.
    /// Returns what happened at the server and whether anything was stored.
    pub fn logout(&self) -> Result<(Revocation, bool), SessionError> {
        let _lock = self.lock()?;
        let Some(record) = self.store.load(&self.key)? else {
            return Ok((Revocation::NotAttempted, false));
        };
        let unknown_endpoint = self.provider.endpoints.revoke_url.is_none()
            && self.provider.endpoints.issuer.is_none();
        let revocation = if unknown_endpoint || !self.issued_here(&record) {
            Revocation::NotAttempted
        } else {
            let outcome = self.block_on(async {
                let http = self.http().map_err(OAuthError::from)?;
                // Leaving is no reason to register a client.
                let provider = oauth::complete(self.provider, self.store, &http, false).await?;
                if !issued_to(&record, &provider) {
                    return Ok(false);
                }
                oauth::revoke(
                    &provider,
                    &http,
                    record.refresh_token.as_ref(),
                    record.access_token.as_ref(),
                )
                .await
            })?;
            match outcome {
                Ok(true) => Revocation::Revoked,
                Ok(false) => Revocation::NotAttempted,
                Err(error) => Revocation::Failed(error),
            }
        };
        let deleted = self.store.delete(&self.key)?;
        Ok((revocation, deleted))
    }

    /// Deletes the client keygate registered for this server: at the
    /// server (RFC 7592) where it offers that, and in the store. The
    /// client's management URI is checked against where the issuer
    /// registers clients now; without its metadata nothing is sent there.
    pub fn forget_client(&self) -> Result<Forgotten, SessionError> {
        let provider = self.provider;
        if register::load(provider, self.store)
            .map_err(OAuthError::from)?
            .is_none()
        {
            return Ok(Forgotten::NothingStored);
        }
        let forgotten = self.block_on(async {
            let http = self.http().map_err(OAuthError::from)?;
            let endpoint = match provider.endpoints.issuer.as_deref() {
                Some(issuer) => match oauth::discovery::metadata(&http, issuer).await {
                    Ok(metadata) => metadata.registration_url(),
                    Err(error) => {
                        tracing::debug!(%error, "no metadata to check the client URI against");
                        None
                    }
                },
                None => None,
            };
            register::forget(provider, self.store, &http, endpoint.as_ref())
                .await
                .map_err(OAuthError::from)
        })??;
        Ok(forgotten)
    }
}
