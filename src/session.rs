//! "Give me a fresh token": load it, and when it is stale, refresh it
//! once under a cross-process lock, whatever number of git processes ask
//! at the same moment.

use std::fs::File;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::config::{Grant, Provider, Redirect};
use crate::http::{HttpClient, HttpError};
use crate::oauth::{self, Browser, OAuthError, TokenSet};
use crate::secret::Secret;
use crate::store::{self, AccountKey, StoreError, TokenRecord, TokenStore, unix_now};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("no token for {server} and {reason}; run `keygate login {server}` in a terminal first")]
    LoginRequired { server: String, reason: String },
    #[error(
        "the refresh token for {server} was rejected ({cause}) and {reason}; run `keygate login {server}` in a terminal"
    )]
    RefreshRejected {
        server: String,
        cause: OAuthError,
        reason: String,
    },
    #[error(
        "refreshing the token for {server} failed: {cause}; the stored refresh token is kept, try again later"
    )]
    RefreshFailed { server: String, cause: OAuthError },
    #[error("cannot take the refresh lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Whether and how keygate may ask a person to authorize.
pub enum Interaction<'a> {
    /// A browser can be opened (or the URL is shown to open by hand).
    Browser(&'a dyn Browser),
    /// A person is at a terminal but no browser can be opened here: the
    /// device grant, when the provider has one.
    Terminal(&'a dyn Browser),
    /// Why not, in words that finish "and ...": `CI is set`.
    Forbidden(String),
}

pub struct Session<'a> {
    pub provider: &'a Provider,
    pub store: &'a dyn TokenStore,
    pub key: AccountKey,
    /// CA files to trust for the OAuth endpoints, beyond the system store.
    pub ca_files: Vec<PathBuf>,
    pub interaction: Interaction<'a>,
}

/// A token a CI system minted and put in the environment variable named
/// by `keygate.<url>.tokenEnv`: served as is, never stored.
pub fn token_from_env(provider: &Provider) -> Option<TokenRecord> {
    let name = provider.token_env.as_deref()?;
    let token = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(TokenRecord {
        server: provider.server.as_str().trim_end_matches('/').to_owned(),
        account: String::new(),
        access_token: Some(Secret::new(token)),
        token_type: "bearer".to_owned(),
        expires_at: None,
        obtained_at: unix_now(),
        refresh_token: None,
        scopes: Vec::new(),
        grant: format!("env:{name}"),
    })
}

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
        let revocation = if self.provider.revoke_url.is_none() {
            Revocation::NotAttempted
        } else {
            let outcome = self.block_on(async {
                let http = self.http().map_err(OAuthError::from)?;
                oauth::revoke(
                    self.provider,
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

    /// A record holding an access token that is fresh now, refreshing or
    /// logging in first if needed.
    pub fn fresh_token(&self) -> Result<TokenRecord, SessionError> {
        let margin = self.provider.refresh_margin;
        // The common case takes no lock and touches no network code.
        if let Some(record) = self.store.load(&self.key)?
            && record.fresh_token(unix_now(), margin).is_some()
        {
            return Ok(record);
        }
        let _lock = self.lock()?;
        // Another process may have refreshed while we waited for the lock.
        let current = self.store.load(&self.key)?;
        if let Some(record) = &current
            && record.fresh_token(unix_now(), margin).is_some()
        {
            tracing::debug!(account = %self.key.label(), "another process refreshed the token");
            return Ok(record.clone());
        }
        self.obtain(current)
    }

    /// Authorizes anew, ignoring what is stored (`keygate login`).
    pub fn login(&self) -> Result<TokenRecord, SessionError> {
        let _lock = self.lock()?;
        let previous = self.store.load(&self.key)?;
        let tokens = self.block_on(async {
            let http = self.http()?;
            self.first_grant(&http).await
        })??;
        self.save(tokens, previous.as_ref())
    }

    /// Called with the lock held and no fresh token in hand.
    fn obtain(&self, current: Option<TokenRecord>) -> Result<TokenRecord, SessionError> {
        let server = self.server_name();
        let refresh_token = current.as_ref().and_then(|r| r.refresh_token.clone());
        let tokens = self.block_on(async {
            let http = self.http()?;
            let Some(refresh_token) = refresh_token else {
                return self.first_grant(&http).await;
            };
            match oauth::refresh(self.provider, &http, &refresh_token).await {
                Ok(tokens) => Ok(tokens),
                Err(cause) if cause.is_grant_rejected() => match &self.interaction {
                    Interaction::Forbidden(reason) if self.provider.grant == Grant::Code => {
                        Err(SessionError::RefreshRejected {
                            server: server.clone(),
                            cause,
                            reason: reason.clone(),
                        })
                    }
                    _ => {
                        eprintln!("keygate: the refresh token for {server} was rejected ({cause}); authorizing again");
                        self.first_grant(&http).await
                    }
                },
                // The stored refresh token may still be good: keep it.
                Err(cause) => Err(SessionError::RefreshFailed {
                    server: server.clone(),
                    cause,
                }),
            }
        })??;
        self.save(tokens, current.as_ref())
    }

    /// Gets a first token without a refresh token: the configured grant.
    async fn first_grant(&self, http: &HttpClient) -> Result<TokenSet, SessionError> {
        match self.provider.grant {
            Grant::ClientCredentials => Ok(oauth::client_credentials(self.provider, http).await?),
            Grant::Code => {
                let browser = match &self.interaction {
                    Interaction::Forbidden(reason) => {
                        return Err(SessionError::LoginRequired {
                            server: self.server_name(),
                            reason: reason.clone(),
                        });
                    }
                    Interaction::Browser(browser) | Interaction::Terminal(browser) => *browser,
                };
                let device = match self.provider.redirect {
                    Some(Redirect::Device) => true,
                    Some(_) => false,
                    None => {
                        matches!(self.interaction, Interaction::Terminal(_))
                            && self.provider.device_url.is_some()
                    }
                };
                if device {
                    Ok(oauth::authorize_device(self.provider, http).await?)
                } else {
                    let handoff_dir = store::runtime_dir()?.join("callbacks");
                    Ok(oauth::authorize(self.provider, http, browser, &handoff_dir).await?)
                }
            }
        }
    }

    /// Saves new tokens, keeping the previous refresh token when the
    /// server did not send a new one (servers that do not rotate).
    fn save(
        &self,
        tokens: TokenSet,
        previous: Option<&TokenRecord>,
    ) -> Result<TokenRecord, SessionError> {
        let now = unix_now();
        let record = TokenRecord {
            server: self.key.server.clone(),
            account: self.key.account.clone(),
            access_token: Some(tokens.access_token),
            token_type: tokens.token_type.to_ascii_lowercase(),
            expires_at: tokens.expires_in.map(|d| now + d.as_secs()),
            obtained_at: now,
            refresh_token: tokens
                .refresh_token
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            scopes: tokens
                .scopes
                .unwrap_or_else(|| self.provider.scopes.clone()),
            grant: match self.provider.grant {
                Grant::Code => "code",
                Grant::ClientCredentials => "client_credentials",
            }
            .to_owned(),
        };
        self.store.save(&record)?;
        Ok(record)
    }

    /// Forgets the access token git reported as rejected, if it is the
    /// one keygate handed out; the refresh token stays. Returns whether
    /// anything changed.
    pub fn drop_access_token(&self, password: &Secret) -> Result<bool, SessionError> {
        let _lock = self.lock()?;
        let candidates = match self.store.load(&self.key)? {
            Some(record) => vec![record],
            None => self.store.list()?,
        };
        let Some(mut record) = candidates
            .into_iter()
            .find(|r| r.server == self.key.server && r.access_token.as_ref() == Some(password))
        else {
            return Ok(false);
        };
        record.access_token = None;
        self.store.save(&record)?;
        Ok(true)
    }

    fn server_name(&self) -> String {
        self.key.server.clone()
    }

    fn http(&self) -> Result<HttpClient, HttpError> {
        HttpClient::new(&self.ca_files, self.provider.http_timeout)
    }

    fn block_on<T>(&self, work: impl Future<Output = T>) -> Result<T, SessionError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SessionError::Runtime)?;
        Ok(runtime.block_on(work))
    }

    /// An exclusive lock per account, shared by every keygate process of
    /// this user; released when the returned file is dropped.
    fn lock(&self) -> Result<File, SessionError> {
        let dir = store::data_dir()?.join("locks");
        let digest = Sha256::digest(self.key.label().as_bytes());
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{name}.lock"));
        let lock_error = |source| SessionError::Lock {
            path: path.clone(),
            source,
        };
        store::create_private_dir(&dir).map_err(lock_error)?;
        let file = store::open_private(&path, false).map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
        Ok(file)
    }
}

impl From<HttpError> for SessionError {
    fn from(error: HttpError) -> Self {
        SessionError::OAuth(OAuthError::Http(error))
    }
}
