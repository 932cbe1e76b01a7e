//! Whether git asks keygate at all, and first: the helpers git runs for
//! the URL in their order, a helper before keygate that would answer
//! instead (a `store` file holding an old password), and the
//! `credential.*` settings that decide what keygate is asked.

use std::path::{Path, PathBuf};

use url::Url;

use super::Check;
use crate::commands::url_username;
use crate::config::{self, GitConfig};
use crate::gitconfig::split_key;

/// One helper git will run, in order.
pub(super) struct Helper {
    /// As configured: `keygate`, `store --file x`, `/abs/path`, `!sh`.
    value: String,
}

impl Helper {
    pub(super) fn first_word(&self) -> &str {
        self.value.split_whitespace().next().unwrap_or_default()
    }

    pub(super) fn is_keygate(&self) -> bool {
        let word = self.first_word();
        word == "keygate"
            || Path::new(word)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("git-credential-keygate"))
    }
}

/// The helpers git runs for `url`, in config order: `credential.helper`
/// and every matching `credential.<url>.helper`; an empty value clears
/// the list so far, as git does.
pub(super) fn helpers_for(config: &GitConfig, url: Option<&Url>) -> Vec<Helper> {
    let mut helpers = Vec::new();
    for (key, value) in &config.entries {
        let Some((section, subsection, variable)) = split_key(key) else {
            continue;
        };
        if !section.eq_ignore_ascii_case("credential") || !variable.eq_ignore_ascii_case("helper") {
            continue;
        }
        let applies = match (subsection, url) {
            (None, _) => true,
            (Some(pattern), Some(url)) => config::url_matches(pattern, url),
            (Some(_), None) => false,
        };
        if !applies {
            continue;
        }
        if value.is_empty() {
            helpers.clear();
        } else {
            helpers.push(Helper {
                value: value.clone(),
            });
        }
    }
    helpers
}

pub(super) fn checks(config: &GitConfig, url: Option<&Url>) -> Vec<Check> {
    const NAME: &str = "helper chain";
    let helpers = helpers_for(config, url);
    let listed = helpers
        .iter()
        .map(|h| h.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut checks = Vec::new();
    let Some(position) = helpers.iter().position(Helper::is_keygate) else {
        checks.push(Check::fail(
            NAME,
            if helpers.is_empty() {
                "git runs no credential helper".to_owned()
            } else {
                format!("keygate is not among git's helpers ({listed})")
            },
            "git config --global --add credential.helper keygate",
        ));
        return checks;
    };
    if position == 0 {
        checks.push(Check::ok(
            NAME,
            format!("git asks keygate first ({listed})"),
        ));
    }
    for helper in &helpers[..position] {
        checks.push(helper_before(helper, url));
    }
    if let Some(url) = url {
        checks.extend(credential_settings(config, url));
    }
    checks
}

/// A helper git asks before keygate: if it answers, keygate is never asked.
fn helper_before(helper: &Helper, url: Option<&Url>) -> Check {
    const NAME: &str = "helper before keygate";
    let reset = "list keygate first: `git config --global credential.helper ''` then \
                 `git config --global --add credential.helper keygate` (re-add others after it)";
    match helper.first_word() {
        "store" => {
            let files = store_files(&helper.value);
            let holding: Vec<&PathBuf> = match url {
                Some(url) => files
                    .iter()
                    .filter(|f| store_file_has(f, url).unwrap_or(false))
                    .collect(),
                None => Vec::new(),
            };
            match (holding.first(), url) {
                (Some(file), Some(url)) => Check::fail(
                    NAME,
                    format!(
                        "`store` comes before keygate and {} holds a password for {}: git sends it and never asks keygate",
                        file.display(),
                        url.host_str().unwrap_or_default()
                    ),
                    format!(
                        "remove the {} line from {} (it holds an old password), or {reset}",
                        url.host_str().unwrap_or_default(),
                        file.display()
                    ),
                ),
                _ => Check::warn(
                    NAME,
                    "`store` comes before keygate: a password saved there would answer first",
                    reset,
                ),
            }
        }
        "cache" => Check::warn(
            NAME,
            "`cache` comes before keygate: a password it still holds answers first",
            format!("`git credential-cache exit` forgets them; or {reset}"),
        ),
        _ => Check::warn(
            NAME,
            format!(
                "`{}` comes before keygate and answers first when it has a credential",
                helper.value
            ),
            reset,
        ),
    }
}

/// The files `git credential-store` reads: `--file` or its two defaults.
fn store_files(value: &str) -> Vec<PathBuf> {
    let words: Vec<&str> = value.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        if let Some(path) = word.strip_prefix("--file=") {
            return vec![expand_home(path)];
        }
        if *word == "--file"
            && let Some(path) = words.get(i + 1)
        {
            return vec![expand_home(path)];
        }
    }
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".git-credentials"));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(xdg) = xdg {
        files.push(xdg.join("git/credentials"));
    }
    files
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Whether a credential-store file has a line for `url`'s host. Only the
/// scheme, host and port are compared; the line itself (a password) is
/// never kept or shown.
fn store_file_has(file: &Path, url: &Url) -> std::io::Result<bool> {
    let contents = match std::fs::read_to_string(file) {
        Ok(contents) => contents,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(contents.lines().any(|line| {
        Url::parse(line.trim()).is_ok_and(|stored| {
            stored.scheme() == url.scheme()
                && stored.host_str() == url.host_str()
                && stored.port_or_known_default() == url.port_or_known_default()
                && stored.password().is_some()
        })
    }))
}

/// `credential.useHttpPath` and `credential.<url>.username` as they apply.
fn credential_settings(config: &GitConfig, url: &Url) -> Vec<Check> {
    let values = config.for_url("credential", url);
    let mut checks = Vec::new();
    let use_path = values
        .get("usehttppath")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"));
    checks.push(Check::ok(
        "credential.useHttpPath",
        if use_path {
            "true: git sends the repository path, so a path-scoped keygate section can match"
        } else {
            "false: git sends only the host, so keygate sections are matched by host"
        },
    ));
    if let (Some(configured), Some(in_url)) = (values.get("username"), url_username(url))
        && *configured != in_url
    {
        checks.push(Check::warn(
            "credential.username",
            format!(
                "credential.username is {configured:?} but the URL names {in_url:?}: git sends the URL's, \
                 and keygate keeps the tokens of each user name apart"
            ),
            "use one user name in both, or none in the URL",
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> GitConfig {
        GitConfig {
            entries: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn helpers_are_listed_in_order_and_reset_by_an_empty_value() {
        let url = Url::parse("https://git.example.com/org/repo.git").unwrap();
        let config = config(&[
            ("credential.helper", "cache"),
            ("credential.helper", ""),
            ("credential.helper", "store --file=/tmp/x"),
            ("credential.https://other.example.com.helper", "manager"),
            ("credential.https://git.example.com.helper", "keygate"),
        ]);
        let helpers: Vec<String> = helpers_for(&config, Some(&url))
            .into_iter()
            .map(|h| h.value)
            .collect();
        assert_eq!(helpers, ["store --file=/tmp/x", "keygate"]);
        assert_eq!(
            store_files("store --file=/tmp/x"),
            [PathBuf::from("/tmp/x")]
        );
        assert_eq!(
            store_files("store --file /tmp/y"),
            [PathBuf::from("/tmp/y")]
        );
    }

    #[test]
    fn keygate_is_recognised_by_name_or_path() {
        for value in [
            "keygate",
            "/usr/local/bin/git-credential-keygate",
            "keygate --x",
        ] {
            assert!(
                Helper {
                    value: value.into()
                }
                .is_keygate(),
                "{value}"
            );
        }
        for value in ["store", "manager", "!f() { keygate; }; f"] {
            assert!(
                !Helper {
                    value: value.into()
                }
                .is_keygate(),
                "{value}"
            );
        }
    }

    #[test]
    fn a_store_file_matches_by_host_and_keeps_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(&file, "https://alice:old-pass@git.example.com\n").unwrap();
        let here = Url::parse("https://git.example.com/org/repo.git").unwrap();
        let there = Url::parse("https://other.example.com/x.git").unwrap();
        assert!(store_file_has(&file, &here).unwrap());
        assert!(!store_file_has(&file, &there).unwrap());
        assert!(!store_file_has(&dir.path().join("none"), &here).unwrap());
    }
}
