//! Fresh tokens for the proxy, per configured origin: held in memory so a
//! request costs no store read, obtained through the same refresh-once
//! session as `get`, and refreshed in the background when they turn
//! stale, so a long `composer install` never meets an expired one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::RwLock;

use crate::config::{Provider, StoreChoice};
use crate::secret::Secret;
use crate::session::{self, Interaction, Session};
use crate::store::{self, TokenRecord, unix_now};

/// How long to wait before looking again when there is nothing to refresh.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// After a refresh failed while the token still works, how long to keep
/// serving it before trying again.
const RETRY_AFTER_FAILURE: u64 = 10;

pub struct TokenSource {
    provider: Provider,
    ca_files: Vec<PathBuf>,
    store_choice: StoreChoice,
    current: RwLock<Option<TokenRecord>>,
    /// Unix second until which a stale but still valid token is served as
    /// is: a refresh has just failed, and trying again at once (for every
    /// request, and in the background loop) would hammer the server.
    retry_at: AtomicU64,
}

impl TokenSource {
    pub fn new(provider: Provider, ca_files: Vec<PathBuf>, store_choice: StoreChoice) -> Self {
        Self {
            provider,
            ca_files,
            store_choice,
            current: RwLock::new(None),
            retry_at: AtomicU64::new(0),
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// A token fresh now, or why there is none (for a 502 the client sees).
    pub async fn token(&self) -> Result<Secret, String> {
        if let Some(token) = self.usable(self.current.read().await.as_ref()) {
            return Ok(token);
        }
        let mut current = self.current.write().await;
        // Another request may have fetched it while this one waited.
        if let Some(token) = self.usable(current.as_ref()) {
            return Ok(token);
        }
        let record = self.obtain().await?;
        let token = record
            .access_token
            .clone()
            .ok_or_else(|| "the OAuth server returned no access token".to_owned())?;
        let now = unix_now();
        if record
            .fresh_token(now, self.provider.policy.refresh_margin)
            .is_none()
        {
            // The session kept a still-valid token because the refresh failed.
            self.retry_at
                .store(now + RETRY_AFTER_FAILURE, Ordering::Relaxed);
        }
        *current = Some(record);
        Ok(token)
    }

    /// The held token, if it is fresh, or still valid while a failed
    /// refresh waits for its retry.
    fn usable(&self, record: Option<&TokenRecord>) -> Option<Secret> {
        let record = record?;
        let now = unix_now();
        if let Some(token) = record.fresh_token(now, self.provider.policy.refresh_margin) {
            return Some(token.clone());
        }
        let waiting = now < self.retry_at.load(Ordering::Relaxed);
        (waiting && record.still_valid(now))
            .then(|| record.access_token.clone())
            .flatten()
    }

    /// Runs the blocking session (store, cross-process lock, refresh) off
    /// the async workers.
    async fn obtain(&self) -> Result<TokenRecord, String> {
        if let Some(record) = session::token_from_env(&self.provider) {
            return Ok(record);
        }
        let provider = self.provider.clone();
        let ca_files = self.ca_files.clone();
        let choice = self.store_choice;
        tokio::task::spawn_blocking(move || {
            let store = store::open(choice).map_err(|e| e.to_string())?;
            let server = provider.server.as_str().trim_end_matches('/').to_owned();
            let interaction = Interaction::Forbidden(format!(
                "the proxy opens no browser (run `{}`)",
                session::login_command(&server)
            ));
            let session = Session::new(&provider, None, store.as_ref(), ca_files, move || {
                interaction
            });
            session
                .fresh_token(session::Lookup::Whole)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("token task failed: {e}"))?
    }

    /// Keeps the token fresh ahead of requests: sleeps until it turns
    /// stale, then refreshes. Runs until the proxy stops.
    pub async fn refresh_in_background(self: Arc<Self>) {
        loop {
            let stale_at = self
                .current
                .read()
                .await
                .as_ref()
                .and_then(|r| r.stale_at(self.provider.policy.refresh_margin));
            let now = unix_now();
            let retry_at = self.retry_at.load(Ordering::Relaxed);
            let wait = match stale_at {
                Some(at) => Duration::from_secs(at.max(retry_at).saturating_sub(now)),
                None => IDLE_CHECK,
            };
            tokio::time::sleep(wait).await;
            if stale_at.is_some()
                && let Err(reason) = self.token().await
            {
                tracing::warn!(server = %self.provider.server, %reason, "background refresh failed");
                tokio::time::sleep(IDLE_CHECK.min(Duration::from_secs(10))).await;
            }
        }
    }
}
