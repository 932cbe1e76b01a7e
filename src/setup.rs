//! Bringing a server into keygate's care: `keygate setup <url>` finds
//! what it can (preset, server metadata, dynamic registration), and
//! `keygate logout --forget-client` undoes the registration.

use crate::config::{self, GitConfig, Provider};
use crate::http::{HttpClient, HttpError};
use crate::oauth::register::{self, Forgotten, RegisterError};
use crate::store::TokenStore;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn block_on<T>(work: impl Future<Output = T>) -> Result<T, SetupError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    Ok(runtime.block_on(work))
}

/// Deletes the client keygate registered for `provider`: at the server
/// (RFC 7592) where it offers that, and in `store`.
pub fn forget_client(
    config: &GitConfig,
    provider: &Provider,
    store: &dyn TokenStore,
) -> Result<Forgotten, SetupError> {
    if register::load(provider, store)?.is_none() {
        return Ok(Forgotten::NothingStored);
    }
    block_on(async {
        let http = HttpClient::new(
            &config::oauth_ca_files(config, provider),
            provider.http_timeout,
        )?;
        Ok(register::forget(provider, store, &http).await?)
    })?
}
