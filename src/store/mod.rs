//! Where tokens live between git invocations: the OS keychain or a 0600
//! JSON file. Both keep one [`TokenRecord`] per (server, account).

mod file;
mod keychain;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{self, GitConfig, StoreChoice, StoreKind};
use crate::secret::Secret;
use crate::sys::{self, publish_once, read_own};

pub use file::FileStore;
pub use keychain::KeychainStore;

/// Every command keygate suggests goes through one quoting function, this
/// constant one too.
fn use_the_file_store() -> String {
    crate::text::git_config_command(&["keygate.store".into(), "file".into()])
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token file {path} is not valid keygate JSON ({reason}); move it aside and run `keygate login <url>`"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the keychain is not reachable: {0}; set `{command}` to use the file store",
        command = use_the_file_store()
    )]
    KeychainUnreachable(String),
    #[error(
        "there is no keychain in this session: {0}; set `{command}` to use the file store",
        command = use_the_file_store()
    )]
    NoKeychain(String),
    #[error("the keychain refused access: {0}; unlock it (or set keygate.store=file) and retry")]
    KeychainLocked(String),
    #[error("keychain error: {0}; set keygate.store=file to keep tokens in a file instead")]
    Keychain(String),
    #[error("cannot find a data directory: neither XDG_DATA_HOME nor HOME is set")]
    NoDataDir,
    /// `keygate.store` or `keygate.kernelCache` (or their variables) say
    /// something keygate does not understand: see [`open_for`].
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Which account a record belongs to. `account` is the user name a URL or
/// request selects (`https://alice@host/...`); empty for the default one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey {
    pub server: String,
    pub account: String,
}

impl AccountKey {
    pub fn new(server: &url::Url, account: Option<&str>) -> Self {
        Self {
            server: server.as_str().trim_end_matches('/').to_owned(),
            account: account.unwrap_or_default().to_owned(),
        }
    }

    /// The URL that names this account to `keygate login`: the server,
    /// with the account's user name when it is not the default one.
    pub fn login_url(&self) -> String {
        let mut url = url::Url::parse(&self.server).ok();
        if let Some(url) = url.as_mut().filter(|_| !self.account.is_empty()) {
            let _ = url.set_username(&self.account);
        }
        url.map_or_else(
            || self.server.clone(),
            |u| u.as_str().trim_end_matches('/').to_owned(),
        )
    }

    /// A stable name for the account, for keychain entries and lock files.
    pub fn label(&self) -> String {
        if self.account.is_empty() {
            self.server.clone()
        } else {
            format!("{}@{}", self.account, self.server)
        }
    }
}

/// What keygate keeps per account. No password, ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub server: String,
    pub account: String,
    /// `None` once git reported it rejected (erase): the refresh token stays.
    pub access_token: Option<Secret>,
    pub token_type: String,
    /// Unix seconds at which the server said the access token expires.
    pub expires_at: Option<u64>,
    /// Unix seconds at which the access token was issued; with
    /// `expires_at`, its lifetime.
    pub obtained_at: u64,
    pub refresh_token: Option<Secret>,
    /// Unix seconds at which the server said the refresh token itself
    /// dies (GitHub's `refresh_token_expires_in`). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_at: Option<u64>,
    /// The error code with which the token endpoint refused the refresh
    /// token when nobody could log in again: it is never sent again, and
    /// the next login replaces the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_rejected: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub grant: String,
    /// Who issued the tokens: their refresh token must never be presented
    /// to another endpoint or client (two `keygate.<url>` sections of one
    /// host may name different servers). Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Issuer>,
}

/// Who issued a record's tokens, and to which client: their refresh token
/// is presented to no other endpoint or client.
///
/// # Format
///
/// Written as `{"kind": "endpoint", "token_url": URL, "client_id": ID}` or
/// `{"kind": "discovered", "issuer": URL, "client_id": ID}`. A record from
/// before `kind` (`{"token_url": URL, "client_id": ID}`) is read as
/// [`Issuer::Unlabelled`] and written back unchanged. A keygate from before
/// `kind` ignores the member: it reads an `endpoint` record as it wrote
/// them, and a `discovered` one as naming no token endpoint, which none of
/// its configurations has, so it leaves those tokens unsent and unused,
/// logs in afresh and writes its own form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// A token endpoint the configuration (or a preset) names.
    Endpoint {
        token_url: String,
        client_id: String,
    },
    /// An issuer whose metadata names the token endpoint.
    Discovered { issuer: String, client_id: String },
    /// Written before records said which: `url` is the configured token
    /// endpoint, else the issuer, and `client_id` is empty for a client
    /// registered at the issuer (its id went unrecorded then).
    Unlabelled {
        url: Option<String>,
        client_id: String,
    },
    /// What a newer keygate wrote, or nothing keygate can read: kept as it
    /// was, and matching nothing, so its tokens are never sent.
    Unknown(serde_json::Value),
}

impl Issuer {
    /// The client the tokens were issued to, where the record says so.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Issuer::Endpoint { client_id, .. } | Issuer::Discovered { client_id, .. } => {
                Some(client_id)
            }
            Issuer::Unlabelled { .. } | Issuer::Unknown(_) => None,
        }
    }

    fn url(&self) -> Option<&str> {
        match self {
            Issuer::Endpoint { token_url: url, .. } | Issuer::Discovered { issuer: url, .. } => {
                Some(url)
            }
            Issuer::Unlabelled { .. } | Issuer::Unknown(_) => None,
        }
    }

    /// Whether tokens issued by `self` may be used where `here`, read from
    /// the configuration alone, issues them. An empty client id in `here`
    /// is a client registered at the issuer, which the configuration
    /// cannot name: any passes here, and the registered one is compared
    /// before a refresh token is presented. An unlabelled record compares
    /// as the keygate that wrote it compared.
    pub fn matches(&self, here: &Issuer) -> bool {
        let same_client = |recorded: &str, here: &str| here.is_empty() || recorded == here;
        match (self, here) {
            (
                Issuer::Endpoint {
                    token_url: url,
                    client_id,
                },
                Issuer::Endpoint {
                    token_url: here_url,
                    client_id: here_client,
                },
            )
            | (
                Issuer::Discovered {
                    issuer: url,
                    client_id,
                },
                Issuer::Discovered {
                    issuer: here_url,
                    client_id: here_client,
                },
            ) => url == here_url && same_client(client_id, here_client),
            (Issuer::Unlabelled { url, client_id }, here) => {
                url.is_some() && url.as_deref() == here.url() && here.client_id() == Some(client_id)
            }
            _ => false,
        }
    }
}

/// See the `# Format` of [`Issuer`].
impl Serialize for Issuer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde_json::json;
        match self {
            Issuer::Endpoint {
                token_url,
                client_id,
            } => json!({"kind": "endpoint", "token_url": token_url, "client_id": client_id}),
            Issuer::Discovered { issuer, client_id } => {
                json!({"kind": "discovered", "issuer": issuer, "client_id": client_id})
            }
            Issuer::Unlabelled { url, client_id } => {
                json!({"token_url": url, "client_id": client_id})
            }
            Issuer::Unknown(value) => return value.serialize(serializer),
        }
        .serialize(serializer)
    }
}

/// Never fails: what it cannot read is [`Issuer::Unknown`], so one odd
/// record neither breaks the store nor gets its tokens sent.
impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Issuer::read(&value).unwrap_or(Issuer::Unknown(value)))
    }
}

impl Issuer {
    fn read(value: &serde_json::Value) -> Option<Issuer> {
        use serde_json::Value;
        let text = |name: &str| value.get(name)?.as_str().map(str::to_owned);
        let client_id = text("client_id")?;
        match value.get("kind").map(Value::as_str) {
            None => {
                let url = match value.get("token_url") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(url)) => Some(url.clone()),
                    Some(_) => return None,
                };
                Some(Issuer::Unlabelled { url, client_id })
            }
            Some(Some("endpoint")) => Some(Issuer::Endpoint {
                token_url: text("token_url")?,
                client_id,
            }),
            Some(Some("discovered")) => Some(Issuer::Discovered {
                issuer: text("issuer")?,
                client_id,
            }),
            Some(_) => None,
        }
    }
}

impl TokenRecord {
    pub fn key(&self) -> AccountKey {
        AccountKey {
            server: self.server.clone(),
            account: self.account.clone(),
        }
    }

    /// The instant the access token stops counting as fresh: the time left
    /// drops under min(margin, a quarter of its lifetime). A 2-hour token
    /// with a 5-minute margin is stale 5 minutes early; a 30-second test
    /// token 7.5 s early.
    pub fn stale_at(&self, margin: Duration) -> Option<u64> {
        let expires_at = self.expires_at?;
        let lifetime = expires_at.saturating_sub(self.obtained_at);
        let lead = margin.as_secs().min(lifetime / 4);
        Some(expires_at.saturating_sub(lead))
    }

    /// Whether the access token still works at `now`, fresh or not.
    pub fn still_valid(&self, now: u64) -> bool {
        self.access_token.is_some() && self.expires_at.is_none_or(|at| now < at)
    }

    /// The access token, if there is one that is still fresh at `now`.
    pub fn fresh_token(&self, now: u64, margin: Duration) -> Option<&Secret> {
        let token = self.access_token.as_ref()?;
        match self.stale_at(margin) {
            Some(stale_at) if now >= stale_at => None,
            _ => Some(token),
        }
    }
}

/// Where a stored document stops being keygate's JSON, without what is
/// there: serde_json's own message quotes the offending value, which may
/// be a token.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Io => "a read error",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "a value of the wrong kind",
        serde_json::error::Category::Eof => "an early end",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

/// Kept here for the callers that read the time without a session (the
/// quick path, `status`, the proxy): see [`crate::clock`].
pub use crate::clock::unix_now;

/// Keeps token records. Implementations write each record atomically: a
/// crash or a full disk leaves the previous record intact.
pub trait TokenStore {
    /// `keychain` or `file`, for `status` and notices.
    fn kind(&self) -> &'static str;
    fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError>;
    fn save(&self, record: &TokenRecord) -> Result<(), StoreError>;
    /// Returns whether there was anything to delete.
    fn delete(&self, key: &AccountKey) -> Result<bool, StoreError>;
    fn list(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// A secret of keygate's own (the proxy's CA key and password), kept
    /// beside the tokens and as safely.
    ///
    /// keygate once had no way to delete one and stored an empty value
    /// instead: callers read an empty value as nothing stored.
    fn load_secret(&self, name: &str) -> Result<Option<Secret>, StoreError>;
    fn save_secret(&self, name: &str, value: &Secret) -> Result<(), StoreError>;
    /// Returns whether there was anything to delete.
    fn delete_secret(&self, name: &str) -> Result<bool, StoreError>;
    /// The record for `key` where the caller needs nothing but a fresh
    /// access token (`get`): the keychain store answers from its kernel
    /// cache when that holds one, with a record that lacks the refresh
    /// token, so it is never refreshed or saved back; a miss, and every
    /// other store, reads the whole record as [`TokenStore::load`] does.
    fn load_cached(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        self.load(key)
    }
}

/// keygate's private directory ([`sys::data_dir`]).
pub fn data_dir() -> Result<PathBuf, StoreError> {
    sys::data_dir().ok_or(StoreError::NoDataDir)
}

/// Where short-lived sockets go ([`sys::runtime_dir`]).
pub fn runtime_dir() -> Result<PathBuf, StoreError> {
    sys::runtime_dir().ok_or(StoreError::NoDataDir)
}

/// How long `auto`, choosing for the first time, waits for the keychain
/// before taking the file.
const KEYCHAIN_PROBE: Duration = Duration::from_secs(2);
/// How long to wait for a keychain `auto` has already chosen: it exists,
/// it may just be slow under load.
const KEYCHAIN_PATIENCE: Duration = Duration::from_secs(10);

/// Opens the store `choice` names. See [`open_auto`] for `auto`.
pub fn open(choice: StoreChoice) -> Result<Box<dyn TokenStore>, StoreError> {
    match choice.kind {
        StoreKind::File => Ok(Box::new(FileStore::new(data_dir()?))),
        StoreKind::Keychain => Ok(Box::new(
            KeychainStore::open()?.serving_cache(choice.kernel_cache),
        )),
        StoreKind::Auto => open_auto(choice.kernel_cache),
    }
}

/// Opens the store `config` chooses (`keygate.store`, `KEYGATE_STORE`).
/// Every command but the proxy, which keeps the choice to open the store
/// again on its workers, opens its store here.
pub fn open_for(config: &GitConfig) -> Result<Box<dyn TokenStore>, StoreError> {
    open(config::store_choice(config)?)
}

/// `auto`: the keychain when it answers within a short bound, else the
/// file with a one-line notice. Where a keychain exists, the choice is
/// made once and remembered in `<data dir>/store`: choosing afresh in
/// every process would let a keychain slow under load send some of twenty
/// parallel git processes to the file, each then asking for a new login.
/// Where there is no keychain at all (no session bus: SSH, cron), the file
/// serves that session and nothing is remembered, so the desktop session
/// still gets the keychain.
fn open_auto(kernel_cache: bool) -> Result<Box<dyn TokenStore>, StoreError> {
    let dir = data_dir()?;
    let remembered = dir.join("store");
    if let Some(store) = open_remembered(&dir, &remembered, kernel_cache)? {
        return Ok(store);
    }
    let (choice, store): (&str, Box<dyn TokenStore>) =
        match KeychainStore::open_within(KEYCHAIN_PROBE) {
            Ok(keychain) => ("keychain", Box::new(keychain.serving_cache(kernel_cache))),
            Err(StoreError::NoKeychain(reason)) => return Ok(file_instead(dir, &reason)),
            Err(error) => ("file", file_instead(dir.clone(), &short_reason(&error))),
        };
    match publish_once(&dir, &remembered, choice.as_bytes()) {
        Ok(()) => Ok(store),
        // Another process chose first: follow it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(open_remembered(&dir, &remembered, kernel_cache)?.unwrap_or(store))
        }
        Err(e) => {
            // A read-only data directory: choose again next time.
            tracing::debug!(path = %remembered.display(), error = %e, "cannot remember the store choice");
            Ok(store)
        }
    }
}

/// The store `auto` chose earlier, if it has.
fn open_remembered(
    dir: &Path,
    remembered: &Path,
    kernel_cache: bool,
) -> Result<Option<Box<dyn TokenStore>>, StoreError> {
    match remembered_choice(remembered).as_deref() {
        Some("file") => Ok(Some(Box::new(FileStore::new(dir.to_owned())))),
        Some("keychain") => match KeychainStore::open_lazily_within(KEYCHAIN_PATIENCE) {
            Ok(keychain) => Ok(Some(Box::new(keychain.serving_cache(kernel_cache)))),
            Err(StoreError::NoKeychain(reason)) => Ok(Some(file_instead(dir.to_owned(), &reason))),
            // It exists but does not answer: say so rather than switch.
            Err(error) => Err(error),
        },
        _ => Ok(None),
    }
}

/// `file` or `keychain`, as `auto` chose, or nothing yet.
fn remembered_choice(remembered: &Path) -> Option<String> {
    // A word; never block on a FIFO or read a planted giant.
    let choice = read_own(remembered, 64).ok()?;
    Some(String::from_utf8_lossy(&choice).trim().to_owned())
}

/// Where `get`'s quick path (`git-credential-keygate`) looks for a fresh
/// token: the file store, or the kernel cache in front of the keychain;
/// never the keychain itself, a lock or the network.
pub(crate) enum QuickSource {
    File(FileStore),
    KernelCache(keychain::kernel_cache::KernelCache),
}

impl QuickSource {
    /// `None` where only the whole store can answer: `auto` has not chosen
    /// yet, or a keychain has no kernel cache in front (macOS, Windows,
    /// the cache turned off).
    pub(crate) fn for_choice(choice: StoreChoice) -> Result<Option<Self>, StoreError> {
        let dir = data_dir()?;
        let keychain = || {
            keychain::kernel_cache::KernelCache::of_session_keychain()
                .filter(|_| choice.kernel_cache)
                .map(Self::KernelCache)
        };
        Ok(match choice.kind {
            StoreKind::File => Some(Self::File(FileStore::new(dir))),
            StoreKind::Keychain => keychain(),
            StoreKind::Auto => match remembered_choice(&dir.join("store")).as_deref() {
                Some("file") => Some(Self::File(FileStore::new(dir))),
                Some("keychain") => keychain(),
                _ => None,
            },
        })
    }

    pub(crate) fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        match self {
            Self::File(file) => file.load(key),
            Self::KernelCache(cache) => Ok(cache.get(key, unix_now())),
        }
    }
}

fn file_instead(dir: PathBuf, reason: &str) -> Box<dyn TokenStore> {
    let file = FileStore::new(dir);
    crate::text::notice(&format!(
        "keychain unavailable ({reason}); keeping tokens in {}",
        file.path().display()
    ));
    Box::new(file)
}

fn short_reason(error: &StoreError) -> String {
    match error {
        StoreError::KeychainUnreachable(reason)
        | StoreError::NoKeychain(reason)
        | StoreError::KeychainLocked(reason)
        | StoreError::Keychain(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// A bearer token from the code grant for `server`, with nothing optional
/// set: what the store's tests start from and adjust.
#[cfg(test)]
pub(crate) fn test_record(server: &str, access_token: &str) -> TokenRecord {
    TokenRecord {
        server: server.into(),
        account: String::new(),
        access_token: Some(Secret::new(access_token)),
        token_type: "bearer".into(),
        expires_at: None,
        obtained_at: 0,
        refresh_token: None,
        refresh_token_expires_at: None,
        refresh_token_rejected: None,
        scopes: vec![],
        grant: "code".into(),
        issuer: None,
    }
}

/// [`test_record`] issued at `obtained_at`, expiring at `expires_at`: for
/// the tests of freshness and of how long a token may be cached.
#[cfg(test)]
pub(crate) fn test_record_lasting(obtained_at: u64, expires_at: Option<u64>) -> TokenRecord {
    TokenRecord {
        expires_at,
        obtained_at,
        ..test_record("https://h.example", "t")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(obtained_at: u64, expires_at: Option<u64>) -> TokenRecord {
        test_record_lasting(obtained_at, expires_at)
    }

    #[test]
    fn stale_at_uses_the_smaller_of_margin_and_quarter_lifetime() {
        let two_hours = record(0, Some(7200));
        assert_eq!(two_hours.stale_at(Duration::from_secs(300)), Some(6900));
        let thirty_seconds = record(100, Some(130));
        // a quarter of 30 s, in whole seconds
        assert_eq!(thirty_seconds.stale_at(Duration::from_secs(300)), Some(123));
    }

    #[test]
    fn fresh_until_the_stale_instant() {
        let r = record(0, Some(7200));
        let margin = Duration::from_secs(300);
        assert!(r.fresh_token(6899, margin).is_some());
        assert!(r.fresh_token(6900, margin).is_none());
        assert!(record(0, None).fresh_token(u64::MAX, margin).is_some());
    }

    #[test]
    fn json_errors_never_quote_the_stored_value() {
        let bad = br#"{"expires_at": "secret-looking-token"}"#;
        let error = serde_json::from_slice::<TokenRecord>(bad).unwrap_err();
        assert!(
            error.to_string().contains("secret-looking-token"),
            "serde quotes it"
        );
        let said = describe_json_error(&error);
        assert!(!said.contains("secret-looking-token"), "{said}");
        assert!(said.contains("line 1"), "{said}");
    }

    /// A record as keygate wrote it before records said which kind of
    /// issuer they name: the file store's pretty JSON.
    fn written_before_kinds(issuer: &str) -> String {
        format!(
            r#"{{
  "server": "https://git.example.com",
  "account": "",
  "access_token": "at",
  "token_type": "bearer",
  "expires_at": 7200,
  "obtained_at": 0,
  "refresh_token": "rt",
  "scopes": [
    "repo"
  ],
  "grant": "code"{issuer}
}}"#
        )
    }

    fn issuer_read_from(issuer: &str) -> Option<Issuer> {
        let json = written_before_kinds(issuer);
        let record: TokenRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(record.refresh_token.as_ref().unwrap().expose(), "rt");
        record.issuer
    }

    fn endpoint(token_url: &str, client_id: &str) -> Issuer {
        Issuer::Endpoint {
            token_url: token_url.into(),
            client_id: client_id.into(),
        }
    }

    fn discovered(issuer: &str, client_id: &str) -> Issuer {
        Issuer::Discovered {
            issuer: issuer.into(),
            client_id: client_id.into(),
        }
    }

    const TOKEN_URL: &str = "https://git.example.com/oauth/token";
    const ISSUER: &str = "https://sso.example.com/realms/dev";

    #[test]
    fn a_record_from_before_issuers_were_named_is_read() {
        assert_eq!(issuer_read_from(""), None);
    }

    #[test]
    fn an_unlabelled_token_endpoint_compares_as_it_did() {
        let issuer = issuer_read_from(&format!(
            r#",
  "issuer": {{
    "token_url": "{TOKEN_URL}",
    "client_id": "keygate-app"
  }}"#
        ))
        .unwrap();
        assert_eq!(
            issuer,
            Issuer::Unlabelled {
                url: Some(TOKEN_URL.into()),
                client_id: "keygate-app".into()
            }
        );
        assert!(issuer.matches(&endpoint(TOKEN_URL, "keygate-app")));
        assert!(!issuer.matches(&endpoint(TOKEN_URL, "another-app")));
        assert!(!issuer.matches(&endpoint("https://elsewhere.example/token", "keygate-app")));
        // The old form held the issuer where no token endpoint was set.
        assert!(!issuer.matches(&endpoint(TOKEN_URL, "")));
    }

    #[test]
    fn an_unlabelled_issuer_with_a_configured_client_compares_as_it_did() {
        let issuer = issuer_read_from(&format!(
            r#",
  "issuer": {{
    "token_url": "{ISSUER}",
    "client_id": "keygate-app"
  }}"#
        ))
        .unwrap();
        assert!(issuer.matches(&discovered(ISSUER, "keygate-app")));
        assert!(!issuer.matches(&discovered(ISSUER, "another-app")));
        assert!(!issuer.matches(&discovered("https://sso.example.com", "keygate-app")));
    }

    /// The form that lost a registered client's id: the issuer URL under
    /// `token_url`, and an empty client id. Its tokens still serve the
    /// configuration that wrote it (an issuer, no client id), so nobody
    /// logs in again for the upgrade; it names no client to compare, and
    /// its refresh token goes back to the issuer that gave it, whose
    /// server binds it to its client.
    #[test]
    fn the_form_that_lost_the_registered_client_is_read_for_its_issuer_only() {
        let issuer = issuer_read_from(&format!(
            r#",
  "issuer": {{
    "token_url": "{ISSUER}",
    "client_id": ""
  }}"#
        ))
        .unwrap();
        assert_eq!(issuer.client_id(), None);
        assert!(issuer.matches(&discovered(ISSUER, "")));
        assert!(!issuer.matches(&discovered(ISSUER, "keygate-app")));
        assert!(!issuer.matches(&discovered("https://other.example", "")));
        assert!(!issuer.matches(&endpoint(ISSUER, "keygate-app")));
    }

    #[test]
    fn an_unlabelled_record_is_written_back_as_it_was() {
        for old in [
            serde_json::json!({"token_url": ISSUER, "client_id": ""}),
            serde_json::json!({"token_url": TOKEN_URL, "client_id": "keygate-app"}),
            serde_json::json!({"token_url": null, "client_id": "keygate-app"}),
        ] {
            let issuer: Issuer = serde_json::from_value(old.clone()).unwrap();
            assert!(matches!(issuer, Issuer::Unlabelled { .. }), "{old}");
            assert_eq!(serde_json::to_value(&issuer).unwrap(), old);
        }
    }

    #[test]
    fn new_records_say_which_kind_and_name_the_client() {
        let written = serde_json::to_value(discovered(ISSUER, "registered-1")).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"kind": "discovered", "issuer": ISSUER, "client_id": "registered-1"})
        );
        let written = serde_json::to_value(endpoint(TOKEN_URL, "keygate-app")).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"kind": "endpoint", "token_url": TOKEN_URL, "client_id": "keygate-app"})
        );
        for issuer in [discovered(ISSUER, "r"), endpoint(TOKEN_URL, "c")] {
            let json = serde_json::to_string(&issuer).unwrap();
            assert_eq!(serde_json::from_str::<Issuer>(&json).unwrap(), issuer);
        }
    }

    /// A registered client's id is recorded, and compared where known: a
    /// configuration without a client id lets any client of the issuer
    /// pass (the session compares the registered one before a refresh).
    #[test]
    fn labelled_records_compare_endpoint_issuer_and_client() {
        let recorded = discovered(ISSUER, "registered-1");
        assert_eq!(recorded.client_id(), Some("registered-1"));
        assert!(recorded.matches(&discovered(ISSUER, "")));
        assert!(recorded.matches(&discovered(ISSUER, "registered-1")));
        assert!(!recorded.matches(&discovered(ISSUER, "keygate-app")));
        assert!(!recorded.matches(&discovered("https://other.example", "")));
        assert!(!recorded.matches(&endpoint(ISSUER, "")));
        let recorded = endpoint(TOKEN_URL, "keygate-app");
        assert!(recorded.matches(&endpoint(TOKEN_URL, "keygate-app")));
        assert!(!recorded.matches(&endpoint(TOKEN_URL, "another-app")));
        assert!(!recorded.matches(&discovered(TOKEN_URL, "keygate-app")));
    }

    /// What a keygate from before `kind` makes of the new forms: its own
    /// struct, copied here. An `endpoint` record reads as it wrote them; a
    /// `discovered` one names no token endpoint, which none of its
    /// configurations has (it never writes `null` for a working one), so
    /// it leaves those tokens unsent and logs in afresh. Neither fails.
    #[test]
    fn a_keygate_from_before_kinds_reads_the_new_forms_without_harm() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct IssuerBeforeKinds {
            token_url: Option<String>,
            client_id: String,
        }
        let read = |issuer: Issuer| {
            let json = serde_json::to_string(&issuer).unwrap();
            serde_json::from_str::<IssuerBeforeKinds>(&json).unwrap()
        };
        assert_eq!(
            read(endpoint(TOKEN_URL, "keygate-app")),
            IssuerBeforeKinds {
                token_url: Some(TOKEN_URL.into()),
                client_id: "keygate-app".into()
            }
        );
        assert_eq!(
            read(discovered(ISSUER, "registered-1")),
            IssuerBeforeKinds {
                token_url: None,
                client_id: "registered-1".into()
            }
        );
    }

    /// A newer keygate's kind, or a damaged member, neither breaks the
    /// store nor matches anything, and survives being written back.
    #[test]
    fn an_issuer_keygate_cannot_read_matches_nothing_and_is_kept() {
        for odd in [
            serde_json::json!({"kind": "federated", "issuer": ISSUER, "client_id": "x", "via": "y"}),
            serde_json::json!({"kind": "endpoint", "client_id": "x"}),
            serde_json::json!({"token_url": 5, "client_id": "x"}),
            serde_json::json!("just a string"),
        ] {
            let issuer: Issuer = serde_json::from_value(odd.clone()).unwrap();
            assert!(matches!(issuer, Issuer::Unknown(_)), "{odd}");
            assert_eq!(issuer.client_id(), None);
            assert!(!issuer.matches(&discovered(ISSUER, "")));
            assert!(!issuer.matches(&discovered(ISSUER, "x")));
            assert!(!issuer.matches(&endpoint(TOKEN_URL, "")));
            assert_eq!(serde_json::to_value(&issuer).unwrap(), odd);
        }
    }

    #[test]
    fn erased_token_is_never_fresh() {
        let mut r = record(0, Some(7200));
        r.access_token = None;
        assert!(r.fresh_token(1, Duration::from_secs(300)).is_none());
    }
}
