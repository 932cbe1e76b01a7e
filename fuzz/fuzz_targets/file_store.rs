//! The file store's JSON document (`tokens.json`), through `FileStore`.
//!
//! Input: the file's bytes. Checks: reading never panics; when the file
//! reads, rewriting the document (saving an unrelated secret, which goes
//! through the same read-modify-write) keeps every account record and
//! every secret as it was.
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use keygate::secret::Secret;
use keygate::store::{FileStore, TokenStore};
use libfuzzer_sys::fuzz_target;

mod scratch;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch::scratch_dir("file-store"))
}

const PROBE: &str = "keygate-fuzz-probe";

fuzz_target!(|data: &[u8]| {
    let store = FileStore::new(dir().clone());
    std::fs::create_dir_all(dir()).unwrap();
    std::fs::write(store.path(), data).unwrap();
    // keygate reads only a token file no one else can.
    std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let Ok(before) = store.list() else {
        return;
    };
    for record in &before {
        let found = store.load(&record.key()).unwrap();
        assert!(found.is_some(), "a listed record does not load");
    }
    let other_secret = store.load_secret("other").unwrap();
    store
        .save_secret(PROBE, &Secret::new("value"))
        .expect("rewriting a readable store must work");
    let after = store.list().expect("the rewritten store must read");
    assert_eq!(after, before, "rewriting the store changed its records");
    let probe = store.load_secret(PROBE).unwrap();
    assert_eq!(probe.as_ref().map(Secret::expose), Some("value"));
    assert_eq!(store.load_secret("other").unwrap(), other_secret);
});
