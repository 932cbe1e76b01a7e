//! The files Docker's clients read `credHelpers` from, and the one edit
//! keygate makes to them.
//!
//! Docker reads `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`). podman, skopeo and buildah
//! (containers/image, `pkg/docker/config`) search, in order,
//! `$REGISTRY_AUTH_FILE` or `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$XDG_CONFIG_HOME/containers/auth.json` (default
//! `~/.config/containers/auth.json`), Docker's file and `~/.dockercfg`,
//! taking the first that has something for the registry; in each file a
//! `credHelpers` entry wins over a saved `auths` login. The runtime file
//! is a tmpfs that logging out empties, so keygate writes the lasting
//! ones and only reads the runtime one (a login saved there comes first).

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The `credHelpers` value that names keygate: clients run
/// `docker-credential-keygate`.
pub const HELPER: &str = "keygate";

/// An auth file is a small JSON document; anything larger is not one.
const FILE_LIMIT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a JSON object ({reason}); fix or move it, then run this again", path.display())]
    NotAnObject { path: PathBuf, reason: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("neither HOME nor DOCKER_CONFIG is set: cannot tell where Docker's config is")]
    NoHome,
}

/// Who reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Docker,
    /// podman, skopeo, buildah.
    Containers,
}

/// One file keygate writes (or, for the runtime one, only reads).
#[derive(Debug, Clone)]
pub struct AuthFile {
    pub path: PathBuf,
    pub reader: Reader,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The files `keygate setup docker` writes: Docker's, the lasting
/// containers file, and `$REGISTRY_AUTH_FILE` when set (podman then
/// reads only that one).
pub fn lasting() -> Result<Vec<AuthFile>, AuthFileError> {
    let home = crate::sys::git::home_dir();
    let docker = env_path("DOCKER_CONFIG")
        .or_else(|| home.as_ref().map(|h| h.join(".docker")))
        .ok_or(AuthFileError::NoHome)?
        .join("config.json");
    let containers = env_path("XDG_CONFIG_HOME")
        .or_else(|| home.as_ref().map(|h| h.join(".config")))
        .ok_or(AuthFileError::NoHome)?
        .join("containers")
        .join("auth.json");
    let mut files = vec![
        AuthFile {
            path: docker,
            reader: Reader::Docker,
        },
        AuthFile {
            path: containers,
            reader: Reader::Containers,
        },
    ];
    if let Some(path) = env_path("REGISTRY_AUTH_FILE") {
        files.push(AuthFile {
            path,
            reader: Reader::Containers,
        });
    }
    Ok(files)
}

/// The runtime containers file, searched before the lasting ones.
pub fn runtime() -> Option<AuthFile> {
    Some(AuthFile {
        path: env_path("XDG_RUNTIME_DIR")?
            .join("containers")
            .join("auth.json"),
        reader: Reader::Containers,
    })
}

/// A file's document: `{}` when there is none.
pub fn read(path: &Path) -> Result<Map<String, Value>, AuthFileError> {
    let bytes = match crate::sys::read_own(path, FILE_LIMIT) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => {
            return Err(AuthFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let not_object = |reason: String| AuthFileError::NotAnObject {
        path: path.to_owned(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(not_object("not an object".into())),
        // serde_json's message names a line and column, never the content.
        Err(error) => Err(not_object(error.to_string())),
    }
}

/// The registries whose `credHelpers` entry in `document` is keygate.
pub fn keygate_registries(document: &Map<String, Value>) -> Vec<String> {
    document
        .get("credHelpers")
        .and_then(Value::as_object)
        .map(|helpers| {
            helpers
                .iter()
                .filter(|(_, helper)| helper.as_str() == Some(HELPER))
                .map(|(registry, _)| registry.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `document` holds a saved login (`auths`) for `registry`.
pub fn has_saved_login(document: &Map<String, Value>, registry: &str) -> bool {
    document
        .get("auths")
        .and_then(Value::as_object)
        .is_some_and(|auths| {
            auths.keys().any(|key| {
                let host = key
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                host.split('/').next() == Some(registry)
            })
        })
}

/// What [`point_at_keygate`] did to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Unchanged,
    Added,
    /// Another helper was named before.
    Replaced(String),
}

/// Sets `credHelpers[registry] = "keygate"` in the file at `path`, every
/// other entry kept: the document is read, changed in memory and written
/// whole to a 0600 temp file renamed over the old one, so a reader never
/// sees half of it. A symbolic link (a dotfiles checkout) is followed and
/// its target replaced. With `dry_run`, nothing is written.
pub fn point_at_keygate(path: &Path, registry: &str, dry_run: bool) -> Result<Edit, AuthFileError> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|source| AuthFileError::Read {
                path: path.to_owned(),
                source,
            })?
        }
        _ => path.to_owned(),
    };
    let mut document = read(&target)?;
    let helpers = document
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(helpers) = helpers else {
        return Err(AuthFileError::NotAnObject {
            path: target,
            reason: "its credHelpers is not an object".into(),
        });
    };
    let edit = match helpers.get(registry) {
        Some(Value::String(helper)) if helper == HELPER => return Ok(Edit::Unchanged),
        Some(Value::String(helper)) => Edit::Replaced(helper.clone()),
        Some(_) => Edit::Replaced("(not a name)".into()),
        None => Edit::Added,
    };
    helpers.insert(registry.to_owned(), Value::String(HELPER.to_owned()));
    if dry_run {
        return Ok(edit);
    }
    write(&target, &document)?;
    Ok(edit)
}

/// Writes `document` as Docker does (tab-indented), atomically.
fn write(path: &Path, document: &Map<String, Value>) -> Result<(), AuthFileError> {
    let write_error = |source| AuthFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(document, &mut serializer)
        .map_err(|error| write_error(error.into()))?;
    bytes.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Private, as Docker makes ~/.docker: the files may hold passwords.
        crate::sys::create_dirs_owner_only(dir).map_err(write_error)?;
    }
    crate::sys::write_private_atomically(path, &bytes).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registrys_helper_changes_and_everything_else_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker").join("config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let before = serde_json::json!({
            "auths": {"other.example": {"auth": "b3RoZXI6cGFzcw=="}},
            "credHelpers": {"gcr.io": "gcloud"},
            "credsStore": "desktop",
            "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        });
        std::fs::write(&path, serde_json::to_vec(&before).unwrap()).unwrap();

        assert_eq!(
            point_at_keygate(&path, "registry.gitlab.com", true).unwrap(),
            Edit::Added
        );
        let untouched: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(untouched, before, "a dry run writes nothing");

        assert_eq!(
            point_at_keygate(&path, "registry.gitlab.com", false).unwrap(),
            Edit::Added
        );
        let mut expected = before.clone();
        expected["credHelpers"]["registry.gitlab.com"] = "keygate".into();
        let after: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(after, expected);
        assert_eq!(
            point_at_keygate(&path, "registry.gitlab.com", false).unwrap(),
            Edit::Unchanged
        );
        assert_eq!(
            point_at_keygate(&path, "gcr.io", false).unwrap(),
            Edit::Replaced("gcloud".into())
        );
        assert_eq!(
            keygate_registries(&read(&path).unwrap()),
            vec!["gcr.io".to_owned(), "registry.gitlab.com".to_owned()]
        );
        assert!(has_saved_login(&read(&path).unwrap(), "other.example"));
        assert!(!has_saved_login(&read(&path).unwrap(), "gcr.io"));
    }

    #[test]
    fn a_missing_file_is_created_and_a_broken_one_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("auth.json");
        assert_eq!(
            point_at_keygate(&path, "127.0.0.1:5000", false).unwrap(),
            Edit::Added
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            "{\n\t\"credHelpers\": {\n\t\t\"127.0.0.1:5000\": \"keygate\"\n\t}\n}\n"
        );
        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "[1, 2").unwrap();
        assert!(matches!(
            point_at_keygate(&broken, "h", false),
            Err(AuthFileError::NotAnObject { .. })
        ));
        assert_eq!(std::fs::read_to_string(&broken).unwrap(), "[1, 2");
    }
}
