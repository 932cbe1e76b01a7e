//! "Give me a fresh token": load it, and when it is stale, refresh it
//! once under a cross-process lock, whatever number of git processes ask
//! at the same moment.

pub mod interaction;
pub mod present;
pub mod quick;

mod error;
mod issuer;
mod leave;
mod lock;
mod login_notice;

use std::cell::{LazyCell, OnceCell};
use std::path::PathBuf;

use crate::clock::Clock;
use crate::config::{Grant, Provider, Redirect};
use crate::http::{HttpClient, HttpError};
use crate::oauth::{self, Browser, Handover, OAuthError, PasteWhen, TokenSet};
use crate::secret::Secret;
use crate::store::{self, AccountKey, Issuer, TokenRecord, TokenStore, unix_now};

pub use error::SessionError;
use issuer::{issued_for, issued_to, issuer_of};
pub use leave::Revocation;
pub use login_notice::utc_date;
use login_notice::warn_if_login_ends_soon;

/// `keygate login URL`, quoted for the shell: the URL is the one git or the
/// person gave, and its host may hold `$(…)`.
pub fn login_command(url: &str) -> String {
    crate::text::shell_command(&["keygate".into(), "login".into(), url.into()])
}

/// A server's `expires_in` beyond ten years is not believed.
const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// How a code-grant login reaches its person.
enum Way<'a> {
    Device,
    Code(Handover<'a>),
}

/// What `obtain` got from the server.
enum Obtained {
    /// From a refresh, with the refresh token it used and when that one
    /// dies (kept when the server does not rotate it).
    Refreshed(TokenSet, Secret, Option<u64>),
    /// From a first grant: login, client credentials.
    NewGrant(TokenSet),
}

/// Whether and how keygate may ask a person to authorize.
pub enum Interaction<'a> {
    /// A browser can be opened (or the URL is shown to open by hand).
    Browser {
        browser: &'a dyn Browser,
        /// Whether the terminal may be asked too: the paste prompt, should
        /// the browser not open (or `redirect = paste`).
        terminal: interaction::TerminalRule,
        /// The browser opens elsewhere (WSL's Windows browser) and its
        /// redirect may not reach this machine: ask on the terminal from
        /// the start, if it may be asked.
        redirect_uncertain: bool,
    },
    /// A person is at a terminal but no browser can be opened here: the
    /// device grant, when the provider has one, else the paste prompt.
    Terminal(&'a dyn Browser),
    /// Why not, in words that finish "and ...": `CI is set`.
    Forbidden(String),
}

type InteractionProbe<'a> = Box<dyn FnOnce() -> Interaction<'a> + 'a>;

pub struct Session<'a> {
    pub provider: &'a Provider,
    pub store: &'a dyn TokenStore,
    pub key: AccountKey,
    /// CA files to trust for the OAuth endpoints, beyond the system store.
    pub ca_files: Vec<PathBuf>,
    /// Decided on first need: a cached fresh token must not pay for
    /// probing the terminal.
    interaction: LazyCell<Interaction<'a>, InteractionProbe<'a>>,
    /// `provider` with what its issuer's metadata adds, filled in right
    /// before the first request: a cached fresh token needs none of it.
    completed: OnceCell<Provider>,
    /// What freshness, refresh-token expiry and saved instants are judged
    /// by; injected so tests put a token exactly at its stale instant.
    clock: Clock,
    /// The client for every request, when given; otherwise one is built
    /// (reading the system CA store) only once a request is due.
    http: Option<HttpClient>,
    /// Where locks and notes go, when not keygate's data directory.
    data_dir: Option<PathBuf>,
}

impl<'a> Session<'a> {
    /// The session for the account `username` selects at `provider` (see
    /// [`account_key`]).
    pub fn new(
        provider: &'a Provider,
        username: Option<&str>,
        store: &'a dyn TokenStore,
        ca_files: Vec<PathBuf>,
        interaction: impl FnOnce() -> Interaction<'a> + 'a,
    ) -> Self {
        let key = account_key(provider, username);
        Self::for_key(key, provider, store, ca_files, interaction)
    }

    fn for_key(
        key: AccountKey,
        provider: &'a Provider,
        store: &'a dyn TokenStore,
        ca_files: Vec<PathBuf>,
        interaction: impl FnOnce() -> Interaction<'a> + 'a,
    ) -> Self {
        Self {
            key,
            provider,
            store,
            ca_files,
            interaction: LazyCell::new(Box::new(interaction)),
            completed: OnceCell::new(),
            clock: Clock::system(),
            http: None,
            data_dir: None,
        }
    }

    /// Judges time by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends every request through `http` (a canned transport in tests).
    pub fn with_http(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }

    /// Keeps locks and notes in `dir` instead of keygate's data directory.
    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// The session for an account [`quick::route`] found, so `get` does
    /// not derive it again; trusting the CA files `config` names for its
    /// OAuth server.
    pub fn for_account(
        config: &crate::config::GitConfig,
        account: &'a quick::Account,
        store: &'a dyn TokenStore,
        interaction: impl FnOnce() -> Interaction<'a> + 'a,
    ) -> Self {
        let key = account.key.clone();
        let ca_files = crate::config::oauth_ca_files(config, &account.provider);
        Self::for_key(key, &account.provider, store, ca_files, interaction)
    }
}

/// Where [`Session::fresh_token`] looks for a fresh token before it takes
/// the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The store's cache of fresh access tokens first
    /// ([`TokenStore::load_cached`]): for `get`, which runs before every
    /// git operation and needs nothing but the access token.
    Cached,
    /// The store's whole record.
    Whole,
}

/// The account `username` selects at `provider`: the user name from the
/// URL or git's request, unless it is just the name the server wants with
/// tokens (`x-token-auth`), which every account of the host shares.
pub fn account_key(provider: &Provider, username: Option<&str>) -> AccountKey {
    let account =
        username.filter(|u| !u.is_empty() && Some(*u) != provider.policy.username.as_deref());
    AccountKey::new(&provider.server, account)
}

/// The stored `record` as `get` may hand it to git without a lock or the
/// network: issued for this configuration and fresh. Says so when the
/// login behind it ends soon. Both of `get`'s entrances decide here,
/// through [`quick::Account::servable`].
pub fn servable(provider: &Provider, key: &AccountKey, record: TokenRecord) -> Option<TokenRecord> {
    servable_at(provider, key, record, unix_now())
}

/// [`servable`] at `now`.
fn servable_at(
    provider: &Provider,
    key: &AccountKey,
    record: TokenRecord,
    now: u64,
) -> Option<TokenRecord> {
    let fresh = issued_for(provider, &record)
        && record
            .fresh_token(now, provider.policy.refresh_margin)
            .is_some();
    if !fresh {
        return None;
    }
    warn_if_login_ends_soon(key, &record, now);
    Some(record)
}

/// A token a CI system minted and put in the environment variable named
/// by `keygate.<url>.tokenEnv`: served as is, never stored.
pub fn token_from_env(provider: &Provider) -> Option<TokenRecord> {
    let name = provider.policy.token_env.as_deref()?;
    let token = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(TokenRecord {
        server: provider.server.as_str().trim_end_matches('/').to_owned(),
        account: String::new(),
        access_token: Some(Secret::new(token)),
        token_type: "bearer".to_owned(),
        expires_at: None,
        obtained_at: unix_now(),
        refresh_token: None,
        refresh_token_expires_at: None,
        refresh_token_rejected: None,
        scopes: Vec::new(),
        grant: format!("env:{name}"),
        issuer: None,
    })
}

impl Session<'_> {
    /// A record holding an access token that is fresh now, refreshing or
    /// logging in first if needed. `lookup` says where the first look,
    /// without the lock, goes.
    pub fn fresh_token(&self, lookup: Lookup) -> Result<TokenRecord, SessionError> {
        let margin = self.provider.policy.refresh_margin;
        // The common case takes no lock and touches no network code.
        if let Some(record) = self.load(lookup)?
            && let Some(record) = servable_at(self.provider, &self.key, record, self.clock.now())
        {
            return Ok(record);
        }
        let waiting_since = std::time::SystemTime::now();
        let _lock = self.lock()?;
        // Another process may have refreshed while we waited for the lock.
        // The whole record, always: a cached one lacks the refresh token.
        let current = self.load(Lookup::Whole)?;
        if let Some(record) = &current
            && record.fresh_token(self.clock.now(), margin).is_some()
        {
            tracing::debug!(account = %self.key.label(), "another process refreshed the token");
            return Ok(record.clone());
        }
        // A CI exchange that failed while we waited would fail again: the
        // same id token source, the same server, the same trust policy.
        if let Some(said) = self.exchange_failed_since(waiting_since) {
            return Err(SessionError::FailedMeanwhile { said });
        }
        let record = self
            .obtain(current)
            .inspect_err(|e| self.note_exchange_failure(e))?;
        warn_if_login_ends_soon(&self.key, &record, self.clock.now());
        Ok(record)
    }

    /// Authorizes anew, ignoring what is stored (`keygate login`).
    pub fn login(&self) -> Result<TokenRecord, SessionError> {
        let _lock = self.lock()?;
        let tokens = self
            .block_on(async {
                let http = self.http()?;
                self.first_grant(&http).await
            })?
            .inspect_err(|e| self.note_failure(e))?;
        self.save(tokens, None)
    }

    /// The URL to give `keygate login` for this account: the server, with
    /// the account's user name when it is not the default one.
    pub fn login_url(&self) -> String {
        self.key.login_url()
    }

    /// Called with the lock held and no fresh token in hand.
    fn obtain(&self, current: Option<TokenRecord>) -> Result<TokenRecord, SessionError> {
        let server = self.login_url();
        let server = &server;
        let now = self.clock.now();
        // A refresh token the server refused before, or one past its own
        // expiry, is not sent again: every git command would otherwise
        // present a dead token and wait for the same answer.
        let dead_why = current.as_ref().and_then(|r| {
            r.refresh_token.as_ref()?;
            if let Some(code) = &r.refresh_token_rejected {
                Some(format!(
                    "was refused earlier ({})",
                    crate::text::escape(code)
                ))
            } else {
                r.refresh_token_expires_at
                    .filter(|&at| at <= now)
                    .map(|_| "has expired".to_owned())
            }
        });
        let refresh_token = current
            .as_ref()
            .filter(|_| dead_why.is_none())
            .and_then(|r| r.refresh_token.clone());
        let refresh_expiry = current.as_ref().and_then(|r| r.refresh_token_expires_at);
        let obtained = self.block_on(async {
            let http = self.http()?;
            let Some(refresh_token) = refresh_token else {
                if let Some(why) = &dead_why
                    && self.provider.policy.grant == Grant::Code
                {
                    match &*self.interaction {
                        Interaction::Forbidden(reason) => {
                            return Err(SessionError::RefreshDead {
                                server: server.clone(),
                                why: why.clone(),
                                reason: reason.clone(),
                            });
                        }
                        _ => crate::text::notice(&format!(
                            "the refresh token for {server} {why}; authorizing again"
                        )),
                    }
                }
                return Ok(Obtained::NewGrant(self.first_grant(&http).await?));
            };
            match self.refresh(&http, &refresh_token, current.as_ref()).await {
                Ok(Some(tokens)) => Ok(Obtained::Refreshed(tokens, refresh_token, refresh_expiry)),
                Ok(None) => Ok(Obtained::NewGrant(self.first_grant(&http).await?)),
                Err(cause) if self.refresh_is_dead(&cause) => match &*self.interaction {
                    Interaction::Forbidden(reason) if self.provider.policy.grant == Grant::Code => {
                        Err(SessionError::RefreshRejected {
                            server: server.clone(),
                            cause,
                            reason: reason.clone(),
                        })
                    }
                    _ => {
                        crate::text::notice(&format!("the refresh token for {server} was rejected ({cause}); authorizing again"));
                        Ok(Obtained::NewGrant(self.first_grant(&http).await?))
                    }
                },
                // The stored refresh token may still be good: keep it.
                Err(cause) => Err(SessionError::RefreshFailed {
                    server: server.clone(),
                    cause,
                }),
            }
        })?
        .inspect_err(|e| self.note_failure(e));
        match obtained {
            Ok(Obtained::Refreshed(tokens, used, expiry)) => {
                self.save(tokens, Some((&used, expiry)))
            }
            Ok(Obtained::NewGrant(tokens)) => self.save(tokens, None),
            // Remembered, so later git commands do not present it again.
            Err(error @ SessionError::RefreshRejected { .. }) => {
                if let (Some(mut record), SessionError::RefreshRejected { cause, .. }) =
                    (current, &error)
                {
                    record.refresh_token_rejected =
                        Some(cause.code().unwrap_or("rejected").to_owned());
                    self.store.save(&record)?;
                }
                Err(error)
            }
            // A passing failure (a 503, a timeout) while the token still
            // works for a while: use it rather than fail a git command.
            Err(error @ SessionError::RefreshFailed { .. }) => match current {
                Some(record) if record.still_valid(self.clock.now()) => {
                    crate::text::notice(&format!(
                        "{error}; using the current token until it expires"
                    ));
                    Ok(record)
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// The account's record, unless another server or client issued it:
    /// then it is as good as absent here, and its tokens stay unsent.
    fn load(&self, lookup: Lookup) -> Result<Option<TokenRecord>, SessionError> {
        let record = match lookup {
            Lookup::Cached => self.store.load_cached(&self.key)?,
            Lookup::Whole => self.store.load(&self.key)?,
        };
        Ok(record.filter(|r| {
            let here = self.issued_here(r);
            if !here {
                tracing::debug!(account = %self.key.label(), "stored tokens come from another endpoint or client; not using them");
            }
            here
        }))
    }

    /// Who issued tokens obtained in this session: the client is the one
    /// the request went out with, registered at the issuer or configured.
    fn issuer(&self) -> Option<Issuer> {
        let provider = self.completed.get().unwrap_or(self.provider);
        issuer_of(self.provider, &provider.client.client_id)
    }

    fn issued_here(&self, record: &TokenRecord) -> bool {
        issued_for(self.provider, record)
    }

    /// Whether a failed refresh means starting over with a first grant.
    /// A new client-credentials grant needs no person, so any explicit
    /// refusal will do (some servers refuse the refresh grant itself to
    /// such clients, with invalid_request or unauthorized_client).
    fn refresh_is_dead(&self, cause: &OAuthError) -> bool {
        match self.provider.policy.grant {
            Grant::Code => cause.is_grant_rejected(),
            Grant::ClientCredentials | Grant::TokenExchange | Grant::JwtBearer => {
                matches!(cause, OAuthError::Rejected { .. })
            }
        }
    }

    /// Gets a first token without a refresh token: the configured grant.
    async fn first_grant(&self, http: &HttpClient) -> Result<TokenSet, SessionError> {
        let provider = self.endpoints(http).await?;
        match provider.policy.grant {
            // With a CI identity: a fresh id token, traded (never stored).
            Grant::ClientCredentials | Grant::TokenExchange | Grant::JwtBearer => {
                Ok(oauth::federation::obtain(provider, http).await?)
            }
            Grant::Code => {
                let way = self.way_to_authorize(provider)?;
                let runtime_dir = match way {
                    Way::Device => None,
                    Way::Code(_) => Some(store::runtime_dir()?),
                };
                // Ctrl-C (or SIGTERM) while a person is waited for ends the
                // login cleanly: the flow is dropped, which closes the
                // listener, deletes the launch page and gives the terminal
                // back; nothing is saved.
                let cancelled = crate::sys::termination();
                let outcome = tokio::select! {
                    outcome = async {
                        match (way, &runtime_dir) {
                            (Way::Code(handover), Some(dir)) => {
                                oauth::authorize(provider, http, handover, &self.key, dir).await
                            }
                            _ => oauth::authorize_device(provider, http).await,
                        }
                    } => outcome,
                    () = cancelled => Err(OAuthError::Cancelled),
                };
                outcome.map_err(|cause| match cause.ended_a_login() {
                    true => SessionError::LoginFailed {
                        command: oauth::login_command(&self.key),
                        cause,
                    },
                    false => cause.into(),
                })
            }
        }
    }

    /// How the code grant reaches the person: the device grant, or the
    /// code flow with a browser opened here or the address pasted on the
    /// terminal. An error when nobody may be asked, or `redirect = paste`
    /// finds no terminal to ask on.
    fn way_to_authorize(&self, provider: &Provider) -> Result<Way<'_>, SessionError> {
        let login_required = |reason: String| SessionError::LoginRequired {
            server: self.key.server.clone(),
            reason,
        };
        let redirect = provider.client.redirect;
        match &*self.interaction {
            Interaction::Forbidden(reason) => Err(login_required(reason.clone())),
            _ if redirect == Some(Redirect::Device) => Ok(Way::Device),
            Interaction::Terminal(browser) => Ok(match redirect {
                None if provider.endpoints.device_url.is_some() => Way::Device,
                // The OS on this machine takes a scheme redirect.
                Some(Redirect::Scheme) => Way::Code(Handover::Browser {
                    browser: *browser,
                    paste: PasteWhen::Never,
                }),
                _ => Way::Code(Handover::Paste),
            }),
            Interaction::Browser {
                browser,
                terminal,
                redirect_uncertain,
            } => {
                if redirect == Some(Redirect::Paste) {
                    return match terminal.allows() {
                        Ok(()) => Ok(Way::Code(Handover::Paste)),
                        Err(why) => Err(login_required(format!(
                            "redirect = paste needs a terminal to paste into, but {why}"
                        ))),
                    };
                }
                let paste = match (terminal.allows(), redirect_uncertain) {
                    (Err(_), _) => PasteWhen::Never,
                    (Ok(()), true) => PasteWhen::Alongside,
                    (Ok(()), false) => PasteWhen::IfNotOpened,
                };
                Ok(Way::Code(Handover::Browser {
                    browser: *browser,
                    paste,
                }))
            }
        }
    }

    /// Saves new tokens. `refreshed_with` is the refresh token a refresh
    /// used, with its expiry: kept when the server sent no new one (servers
    /// that do not rotate). A new grant never inherits an old refresh token.
    fn save(
        &self,
        tokens: TokenSet,
        refreshed_with: Option<(&Secret, Option<u64>)>,
    ) -> Result<TokenRecord, SessionError> {
        let now = self.clock.now();
        let lifetime_end =
            |d: std::time::Duration| now.saturating_add(d.as_secs().min(MAX_LIFETIME_SECS));
        let (refresh_token, refresh_token_expires_at) = match tokens.refresh_token {
            Some(new) => (Some(new), tokens.refresh_token_expires_in.map(lifetime_end)),
            None => match refreshed_with {
                Some((used, expiry)) => (Some(used.clone()), expiry),
                None => (None, None),
            },
        };
        let record = TokenRecord {
            server: self.key.server.clone(),
            account: self.key.account.clone(),
            access_token: Some(tokens.access_token),
            token_type: tokens.token_type.to_ascii_lowercase(),
            // A server's expires_in is untrusted: never let it wrap.
            expires_at: tokens.expires_in.map(lifetime_end),
            obtained_at: now,
            refresh_token,
            refresh_token_expires_at,
            refresh_token_rejected: None,
            scopes: tokens
                .scopes
                .unwrap_or_else(|| self.provider.client.scopes.clone()),
            grant: self.provider.policy.grant.name().to_owned(),
            issuer: self.issuer(),
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

    fn http(&self) -> Result<HttpClient, HttpError> {
        match &self.http {
            Some(http) => Ok(http.clone()),
            None => HttpClient::new(&self.ca_files, self.provider.policy.http_timeout),
        }
    }

    /// The provider as the network needs it: with an issuer, completed
    /// from its metadata, once per session.
    async fn endpoints(&self, http: &HttpClient) -> Result<&Provider, OAuthError> {
        if let Some(completed) = self.completed.get() {
            return Ok(completed);
        }
        let completed = oauth::complete(self.provider, self.store, http, true).await?;
        Ok(self.completed.get_or_init(|| completed))
    }

    /// Redeems the refresh token of `record`; when the endpoint the
    /// metadata named seems to have moved, once more with the metadata
    /// fetched anew (the server never saw the first attempt, so the token
    /// is still good). `None` when the client this session uses is not the
    /// one the tokens were issued to: the refresh token stays unsent.
    async fn refresh(
        &self,
        http: &HttpClient,
        refresh_token: &Secret,
        record: Option<&TokenRecord>,
    ) -> Result<Option<TokenSet>, OAuthError> {
        let provider = self.endpoints(http).await?;
        if record.is_some_and(|r| !issued_to(r, provider)) {
            return Ok(None);
        }
        let result = oauth::refresh(provider, http, refresh_token).await;
        match (&self.provider.endpoints.issuer, result) {
            (Some(issuer), Err(error)) if error.suggests_moved() => {
                tracing::debug!(%error, "the token endpoint may have moved; fetching the metadata again");
                oauth::discovery::forget(issuer);
                let provider = oauth::complete(self.provider, self.store, http, true).await?;
                oauth::refresh(&provider, http, refresh_token)
                    .await
                    .map(Some)
            }
            (_, result) => result.map(Some),
        }
    }

    /// After a failed request: cached metadata whose endpoint seems to have
    /// moved (404, nobody listening) is fetched anew next time.
    fn note_failure(&self, error: &SessionError) {
        let cause = match error {
            SessionError::OAuth(cause) | SessionError::RefreshFailed { cause, .. } => cause,
            _ => return,
        };
        if let Some(issuer) = &self.provider.endpoints.issuer
            && cause.suggests_moved()
        {
            oauth::discovery::forget(issuer);
        }
    }

    fn block_on<T>(&self, work: impl Future<Output = T>) -> Result<T, SessionError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SessionError::Runtime)?;
        Ok(runtime.block_on(work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn provider(settings: &str) -> Provider {
        let config = crate::config::GitConfig::parse_z(settings.as_bytes());
        Provider::resolve(&config, &url::Url::parse("https://g.example/").unwrap())
            .unwrap()
            .unwrap()
    }

    /// A session over a file store in a temp dir, a canned token endpoint
    /// and a clock the test sets: refresh edges, in process, exactly.
    mod refresh {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};

        use super::*;
        use crate::http::canned::{Canned, Sent};
        use crate::store::FileStore;

        const TOKEN_URL: &str = "https://a.example/token";

        struct Fixture {
            dir: tempfile::TempDir,
            store: FileStore,
            provider: Provider,
            endpoint: Arc<Canned>,
            now: Arc<AtomicU64>,
        }

        impl Fixture {
            /// Stored: `at-1`, obtained at 0 and expiring at 7200 (stale at
            /// 6900 with the default 300 s margin), refreshable with `rt-1`.
            fn new() -> Self {
                let dir = tempfile::tempdir().unwrap();
                let store = FileStore::new(dir.path().join("keygate"));
                let provider = provider(&format!(
                    "keygate.https://g.example.tokenurl\n{TOKEN_URL}\0\
                     keygate.https://g.example.clientid\napp\0"
                ));
                let fixture = Self {
                    dir,
                    store,
                    provider,
                    endpoint: Canned::new(),
                    now: Arc::new(AtomicU64::new(0)),
                };
                fixture.store.save(&fixture.stored()).unwrap();
                fixture
            }

            fn stored(&self) -> TokenRecord {
                TokenRecord {
                    expires_at: Some(7200),
                    refresh_token: Some(Secret::new("rt-1")),
                    ..store::test_record("https://g.example", "at-1")
                }
            }

            fn at(&self, now: u64) -> &Self {
                self.now.store(now, Ordering::Relaxed);
                self
            }

            /// A non-interactive session: nobody may be asked anything.
            fn session(&self) -> Session<'_> {
                let now = self.now.clone();
                Session::new(&self.provider, None, &self.store, Vec::new(), || {
                    Interaction::Forbidden("CI is set".into())
                })
                .with_clock(Clock::from_fn(move || now.load(Ordering::Relaxed)))
                .with_http(self.endpoint.client())
                .with_data_dir(self.dir.path().join("data"))
            }

            fn fresh_token(&self) -> Result<TokenRecord, SessionError> {
                self.session().fresh_token(Lookup::Whole)
            }

            fn saved(&self) -> TokenRecord {
                let key = account_key(&self.provider, None);
                self.store.load(&key).unwrap().unwrap()
            }
        }

        fn token(record: &TokenRecord) -> &str {
            record.access_token.as_ref().unwrap().expose()
        }

        fn body(sent: &Sent) -> &str {
            std::str::from_utf8(sent.body()).unwrap()
        }

        #[test]
        fn a_token_one_second_before_its_stale_instant_is_served_without_a_request() {
            let f = Fixture::new();
            let record = f.at(6899).fresh_token().unwrap();
            assert_eq!(token(&record), "at-1");
            assert!(f.endpoint.take_sent().is_empty());
        }

        #[test]
        fn a_token_at_its_stale_instant_is_refreshed() {
            let f = Fixture::new();
            f.endpoint.json(
                200,
                r#"{"access_token":"at-2","token_type":"Bearer","expires_in":7200}"#,
            );
            let record = f.at(6900).fresh_token().unwrap();
            assert_eq!(token(&record), "at-2");
            assert_eq!(f.endpoint.take_sent().len(), 1);
            let saved = f.saved();
            assert_eq!(saved, record);
            assert_eq!(saved.token_type, "bearer");
            assert_eq!((saved.obtained_at, saved.expires_at), (6900, Some(14_100)));
            // The server did not rotate it: the one used is kept.
            assert_eq!(saved.refresh_token.unwrap().expose(), "rt-1");
        }

        #[test]
        fn a_rotated_refresh_token_is_saved_after_the_exact_refresh_request() {
            let f = Fixture::new();
            f.endpoint.json(
                200,
                r#"{"access_token":"at-2","token_type":"bearer","expires_in":28800,
                    "refresh_token":"rt-2","refresh_token_expires_in":15811200}"#,
            );
            f.at(7000).fresh_token().unwrap();
            let sent = f.endpoint.take_sent();
            let [request] = sent.as_slice() else {
                panic!("{} requests", sent.len())
            };
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(request.uri(), TOKEN_URL);
            assert_eq!(request.headers()["accept"], "application/json");
            assert_eq!(
                request.headers()["content-type"],
                "application/x-www-form-urlencoded"
            );
            assert_eq!(
                body(request),
                "grant_type=refresh_token&refresh_token=rt-1&client_id=app"
            );
            let saved = f.saved();
            assert_eq!(saved.refresh_token.unwrap().expose(), "rt-2");
            assert_eq!(saved.refresh_token_expires_at, Some(7000 + 15_811_200));
        }

        /// The server's clock (its `Date`) is not ours: a lifetime counts
        /// from our clock when the answer is saved, and one beyond ten
        /// years is cut to ten.
        #[test]
        fn expiry_counts_from_the_local_clock_whatever_the_servers_says() {
            let f = Fixture::new();
            let local = 2_000_000_000;
            f.endpoint.answer(
                200,
                &[
                    ("content-type", "application/json"),
                    ("date", "Sat, 01 Jan 2000 00:00:00 GMT"),
                ],
                r#"{"access_token":"at-2","token_type":"bearer","expires_in":3600}"#,
            );
            f.at(local).fresh_token().unwrap();
            let saved = f.saved();
            assert_eq!(saved.obtained_at, local);
            assert_eq!(saved.expires_at, Some(local + 3600));
            assert_eq!(
                saved.stale_at(f.provider.policy.refresh_margin),
                Some(local + 3300)
            );

            f.endpoint.json(
                200,
                r#"{"access_token":"at-3","token_type":"bearer","expires_in":99999999999999}"#,
            );
            let record = f.at(local + 3299).fresh_token().unwrap();
            assert_eq!(token(&record), "at-2", "fresh until its stale instant");
            let record = f.at(local + 3300).fresh_token().unwrap();
            assert_eq!(token(&record), "at-3");
            assert_eq!(
                record.expires_at,
                Some(local + 3300 + MAX_LIFETIME_SECS),
                "a lifetime past ten years is not believed"
            );
        }

        /// GitHub answers token-endpoint errors with HTTP 200; read as a
        /// token, that would replace the stored one with nothing.
        #[test]
        fn a_github_http_200_error_keeps_the_refresh_token() {
            let f = Fixture::new();
            // A passing error: nothing is marked, nothing changes.
            f.endpoint.json(200, r#"{"error":"slow_down"}"#);
            let error = f.at(7200).fresh_token().unwrap_err();
            assert!(
                matches!(&error, SessionError::RefreshFailed { cause, .. } if cause.code() == Some("slow_down")),
                "{error:?}"
            );
            assert_eq!(f.saved(), f.stored());

            // GitHub's own word for a dead refresh token.
            f.endpoint.json(
                200,
                r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.",
                    "error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#,
            );
            let error = f.fresh_token().unwrap_err();
            assert!(
                matches!(&error, SessionError::RefreshRejected { cause, .. } if cause.code() == Some("bad_refresh_token")),
                "{error:?}"
            );
            let saved = f.saved();
            assert_eq!(saved.refresh_token.as_ref().unwrap().expose(), "rt-1");
            assert_eq!(token(&saved), "at-1");
            assert_eq!(
                saved.refresh_token_rejected.as_deref(),
                Some("bad_refresh_token")
            );
            assert_eq!(f.endpoint.take_sent().len(), 2);
        }

        #[test]
        fn invalid_grant_kills_the_grant_without_asking_anyone() {
            let f = Fixture::new();
            f.endpoint.json(
                400,
                r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
            );
            let error = f.at(7200).fresh_token().unwrap_err();
            assert!(
                matches!(&error, SessionError::RefreshRejected { reason, .. } if reason == "CI is set"),
                "{error:?}"
            );
            assert!(!error.asked_a_person());
            assert_eq!(
                f.saved().refresh_token_rejected.as_deref(),
                Some("invalid_grant")
            );
            // Remembered: the next command does not present it again.
            let error = f.at(7300).fresh_token().unwrap_err();
            assert!(
                matches!(&error, SessionError::RefreshDead { why, .. } if why.contains("invalid_grant")),
                "{error:?}"
            );
            assert_eq!(f.endpoint.take_sent().len(), 1);
        }

        /// An answer that is no token and no OAuth error changes nothing
        /// stored: the refresh token may still be good.
        #[test]
        fn a_garbage_answer_keeps_the_record_intact() {
            let f = Fixture::new();
            let garbage = [
                (200, "<html>maintenance</html>"),
                (200, r#"{"access_token":["at-2"],"token_type":"bearer"}"#),
                (200, "[]"),
                (502, r#"{"access_token":"at-2","token_type":"bearer"}"#),
                (404, "not here"),
            ];
            for (status, body) in garbage {
                f.endpoint.json(status, body);
                let error = f.at(7200).fresh_token().unwrap_err();
                assert!(
                    matches!(error, SessionError::RefreshFailed { .. }),
                    "{status} {body}: {error:?}"
                );
                assert_eq!(f.saved(), f.stored(), "{status} {body}");
            }
            // Stale but still valid: the current token serves meanwhile.
            f.endpoint.json(200, "garbage");
            let record = f.at(7000).fresh_token().unwrap();
            assert_eq!(token(&record), "at-1");
            assert_eq!(f.saved(), f.stored());
            assert_eq!(f.endpoint.take_sent().len(), garbage.len() + 1);
        }
    }
}
