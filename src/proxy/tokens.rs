//! Fresh tokens for the proxy, per configured origin: held in memory so a
//! request costs no store read, obtained through the same refresh-once
//! session as `get`, and refreshed in the background when they turn
//! stale, so a long `composer install` never meets an expired one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;

use crate::config::{Provider, StoreChoice};
use crate::secret::Secret;
use crate::session::{self, Interaction, Session};
use crate::store::{self, TokenRecord, unix_now};

/// How long to wait before looking again when there is nothing to refresh.
const IDLE_CHECK: Duration = Duration::from_secs(60);

pub struct TokenSource {
    provider: Provider,
    ca_files: Vec<PathBuf>,
    store_choice: StoreChoice,
    current: RwLock<Option<TokenRecord>>,
}

impl TokenSource {
    pub fn new(provider: Provider, ca_files: Vec<PathBuf>, store_choice: StoreChoice) -> Self {
        Self {
            provider,
            ca_files,
            store_choice,
            current: RwLock::new(None),
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// A token fresh now, or why there is none (for a 502 the client sees).
    pub async fn token(&self) -> Result<Secret, String> {
        let margin = self.provider.refresh_margin;
        if let Some(token) = self
            .current
            .read()
            .await
            .as_ref()
            .and_then(|r| r.fresh_token(unix_now(), margin))
        {
            return Ok(token.clone());
        }
        let mut current = self.current.write().await;
        // Another request may have fetched it while this one waited.
        if let Some(token) = current
            .as_ref()
            .and_then(|r| r.fresh_token(unix_now(), margin))
        {
            return Ok(token.clone());
        }
        let record = self.obtain().await?;
        let token = record
            .access_token
            .clone()
            .ok_or_else(|| "the OAuth server returned no access token".to_owned())?;
        *current = Some(record);
        Ok(token)
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
                "the proxy opens no browser (run `keygate login {server}`)"
            ));
            let session = Session::new(&provider, None, store.as_ref(), ca_files, move || {
                interaction
            });
            session.fresh_token().map_err(|e| e.to_string())
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
                .and_then(|r| r.stale_at(self.provider.refresh_margin));
            let wait = match stale_at {
                Some(at) => Duration::from_secs(at.saturating_sub(unix_now())),
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
