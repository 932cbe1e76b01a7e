//! The file store: one JSON document, mode 0600 in a 0700 directory,
//! replaced atomically (temp file, fsync, rename) under an exclusive lock
//! so concurrent writers for different accounts never lose each other's
//! records. The document is read only when it is a regular file of the
//! user's that no one else can read, and only up to [`MAX_STORE_BYTES`].

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::sys::{
    check_private_dir, create_private_dir, open_private, read_private, write_private_atomically,
};

use super::{AccountKey, StoreError, TokenRecord, TokenStore};

const FILE_NAME: &str = "tokens.json";
const LOCK_NAME: &str = "tokens.lock";
/// Thousands of accounts fit in a few MiB; more is not a token store, and
/// reading it whole would hold every `get` up.
pub const MAX_STORE_BYTES: u64 = 16 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    accounts: Vec<TokenRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, Secret>,
}

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn io_error(&self, path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
        let path = path.to_owned();
        move |source| StoreError::File {
            path: path.clone(),
            source,
        }
    }

    fn read(&self) -> Result<Document, StoreError> {
        match check_private_dir(&self.dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Document::default()),
            checked => checked.map_err(self.io_error(&self.dir))?,
        }
        let path = self.path();
        let bytes = match read_private(&path, MAX_STORE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Document::default()),
            Err(e) => return Err(self.io_error(&path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path,
            reason: super::describe_json_error(&e),
        })
    }

    /// Read-modify-write under the store lock.
    fn update(&self, change: impl FnOnce(&mut Document) -> bool) -> Result<bool, StoreError> {
        create_private_dir(&self.dir).map_err(self.io_error(&self.dir))?;
        let lock_path = self.dir.join(LOCK_NAME);
        let lock = open_private(&lock_path, false).map_err(self.io_error(&lock_path))?;
        lock.lock().map_err(self.io_error(&lock_path))?;
        let mut document = self.read()?;
        let changed = change(&mut document);
        if changed {
            document.version = 1;
            self.write_atomically(&document)?;
        }
        Ok(changed)
    }

    fn write_atomically(&self, document: &Document) -> Result<(), StoreError> {
        let path = self.path();
        let json = serde_json::to_vec_pretty(document).map_err(std::io::Error::other);
        json.and_then(|json| write_private_atomically(&path, &json))
            .map_err(self.io_error(&path))
    }
}

impl TokenStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load(&self, key: &AccountKey) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.read()?.accounts.into_iter().find(|r| r.key() == *key))
    }

    fn save(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.update(|document| {
            let key = record.key();
            match document.accounts.iter_mut().find(|r| r.key() == key) {
                Some(existing) => *existing = record.clone(),
                None => document.accounts.push(record.clone()),
            }
            true
        })?;
        Ok(())
    }

    fn delete(&self, key: &AccountKey) -> Result<bool, StoreError> {
        if !self.path().exists() {
            return Ok(false);
        }
        self.update(|document| {
            let before = document.accounts.len();
            document.accounts.retain(|r| r.key() != *key);
            document.accounts.len() != before
        })
    }

    fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self.read()?.accounts)
    }

    fn load_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        Ok(self.read()?.secrets.remove(name))
    }

    fn save_secret(&self, name: &str, value: &Secret) -> Result<(), StoreError> {
        self.update(|document| {
            document.secrets.insert(name.to_owned(), value.clone());
            true
        })?;
        Ok(())
    }

    fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        // Nothing to delete is no reason to create the directory.
        if !self.path().exists() {
            return Ok(false);
        }
        self.update(|document| document.secrets.remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::secret::Secret;

    fn record(server: &str, token: &str) -> TokenRecord {
        TokenRecord {
            expires_at: Some(100),
            refresh_token: Some(Secret::new("r".repeat(4096))),
            scopes: vec!["repo".into()],
            ..crate::store::test_record(server, token)
        }
    }

    #[test]
    fn saves_loads_and_deletes_4k_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("keygate"));
        let big = "t".repeat(4096);
        store.save(&record("https://a.example", &big)).unwrap();
        store.save(&record("https://b.example", "b")).unwrap();
        let key = record("https://a.example", "").key();
        let loaded = store.load(&key).unwrap().unwrap();
        assert_eq!(loaded.access_token.unwrap().expose(), big);
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(store.delete(&key).unwrap());
        assert!(!store.delete(&key).unwrap());
        assert!(store.load(&key).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn file_is_0600_in_a_0700_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("keygate"));
        store.save(&record("https://a.example", "x")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&dir.path().join("keygate")), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn planted_files_are_refused_not_read() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("keygate"));
        store.save(&record("https://a.example", "x")).unwrap();
        let key = record("https://a.example", "").key();
        let elsewhere = dir.path().join("elsewhere.json");
        fs::rename(store.path(), &elsewhere).unwrap();

        symlink(&elsewhere, store.path()).unwrap();
        let error = store.load(&key).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        // Nor does a save read (or write) through it.
        let before = fs::read(&elsewhere).unwrap();
        assert!(store.save(&record("https://a.example", "y")).is_err());
        assert_eq!(fs::read(&elsewhere).unwrap(), before);
        fs::remove_file(store.path()).unwrap();
        fs::rename(&elsewhere, store.path()).unwrap();

        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o640)).unwrap();
        let error = store.list().unwrap_err().to_string();
        assert!(error.contains("can be read by other users"), "{error}");

        fs::remove_file(store.path()).unwrap();
        let big = fs::File::create(store.path()).unwrap();
        big.set_len(MAX_STORE_BYTES + 1).unwrap();
        big.set_permissions(fs::Permissions::from_mode(0o600))
            .unwrap();
        let error = store.list().unwrap_err().to_string();
        assert!(error.contains("larger than 16 MiB"), "{error}");
    }

    #[test]
    fn a_secret_is_deleted_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("keygate"));
        assert!(!store.delete_secret("client").unwrap());
        assert!(!dir.path().join("keygate").exists());
        store.save_secret("client", &Secret::new("{}")).unwrap();
        store.save_secret("ca", &Secret::new("key")).unwrap();
        store.save(&record("https://a.example", "x")).unwrap();
        assert!(store.delete_secret("client").unwrap());
        assert!(!store.delete_secret("client").unwrap());
        assert_eq!(store.load_secret("client").unwrap(), None);
        assert_eq!(store.load_secret("ca").unwrap().unwrap().expose(), "key");
        assert_eq!(store.list().unwrap().len(), 1);
        let written = fs::read_to_string(store.path()).unwrap();
        assert!(!written.contains("\"client\""), "{written}");
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().to_owned());
        fs::write(store.path(), b"{not json").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(store.path(), fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(
            store.load(&record("https://a.example", "").key()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
