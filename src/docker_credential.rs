//! Docker's credential-helper protocol, as `docker-credential-<name>`
//! programs speak it to Docker, podman, skopeo, buildah and crane
//! (github.com/docker/docker-credential-helpers, `credentials/`): one verb
//! as the only argument, the request on stdin, the answer on stdout.
//!
//! - `get`: the server URL (`registry.example.com`, `127.0.0.1:5000`,
//!   `https://index.docker.io/v1/`) → `{"ServerURL","Username","Secret"}`.
//! - `store`: `{"ServerURL","Username","Secret"}` → nothing.
//! - `erase`: the server URL → nothing.
//! - `list`: → `{"<server URL>": "<user name>", ...}`.
//!
//! A failure is one line on **stdout** and exit status 1: clients read
//! stdout, compare it with [`NOT_FOUND`] (which means "go on without
//! credentials"), and show any other text in their own error.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The one answer clients take for "nothing here": skopeo and Docker then
/// go on anonymously. Any other text fails their pull.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// The user name that tells clients the secret is an identity (refresh)
/// token to trade at the registry's OAuth endpoint, not a password.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// How much a request may hold: a URL, or a store request with a token.
const REQUEST_LIMIT: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DockerProtocolError {
    /// The helpers' own words, which clients recognise.
    #[error("no credentials server URL")]
    MissingServerUrl,
    #[error("no credentials username")]
    MissingUsername,
    #[error("the server URL {0:?} is not a registry host or an http(s) URL")]
    BadServerUrl(String),
    #[error("the request is not the JSON a store sends: {0}")]
    BadStoreRequest(serde_json::Error),
    #[error("the request is larger than {REQUEST_LIMIT} bytes")]
    TooLarge,
    #[error("reading the request failed: {0}")]
    Read(io::Error),
    #[error("writing the answer failed: {0}")]
    Write(io::Error),
}

/// The verbs, from the helper's one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Store,
    Erase,
    List,
    Version,
    Help,
}

impl Verb {
    /// The verb of a command line, as the helpers' `Serve` reads it: exactly
    /// one argument. `None` for anything else (the helpers print their
    /// usage on stdout and exit 1).
    pub fn from_args(mut args: impl Iterator<Item = std::ffi::OsString>) -> Option<Self> {
        let verb = args.next()?;
        if args.next().is_some() {
            return None;
        }
        Some(match verb.to_str()? {
            "get" => Verb::Get,
            "store" => Verb::Store,
            "erase" => Verb::Erase,
            "list" => Verb::List,
            "version" | "--version" | "-v" => Verb::Version,
            "--help" | "-h" => Verb::Help,
            _ => return None,
        })
    }
}

/// The usage line the helpers print.
pub fn usage(program: &str) -> String {
    format!("Usage: {program} <store|get|erase|list|version>")
}

/// Reads the whole request (clients close stdin after it), at most
/// [`REQUEST_LIMIT`] bytes.
pub fn read_request(input: impl Read) -> Result<Vec<u8>, DockerProtocolError> {
    let mut bytes = Vec::new();
    input
        .take(REQUEST_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(DockerProtocolError::Read)?;
    if bytes.len() as u64 > REQUEST_LIMIT {
        return Err(DockerProtocolError::TooLarge);
    }
    Ok(bytes)
}

/// The server URL of a `get` or `erase` request, as the helpers take it:
/// the input with surrounding white space trimmed.
pub fn server_url(request: &[u8]) -> Result<String, DockerProtocolError> {
    let text = String::from_utf8_lossy(request);
    let url = text.trim();
    if url.is_empty() {
        return Err(DockerProtocolError::MissingServerUrl);
    }
    Ok(url.to_owned())
}

/// The https URL a server URL names, for keygate's URL-matched settings:
/// a bare host (`registry.example.com`, `127.0.0.1:5000`, what podman and
/// skopeo send) means https there, as it does to every client; an
/// explicit `http://` is kept (keygate's own rules then decide). Query
/// and fragment are dropped, as the helpers drop them
/// (`registryurl.Parse`).
pub fn registry_url(server_url: &str) -> Result<url::Url, DockerProtocolError> {
    // Never echoed with what could be a password in it.
    let shown = if server_url.contains('@') {
        "(with a user name)".to_owned()
    } else {
        server_url.to_owned()
    };
    let bad = || DockerProtocolError::BadServerUrl(shown.clone());
    let with_scheme = if server_url.contains("://") {
        server_url.to_owned()
    } else {
        format!("https://{}", server_url.trim_start_matches("//"))
    };
    let mut url = url::Url::parse(&with_scheme).map_err(|_| bad())?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    // A user name in the URL would select another account: clients never
    // send one, so one here is not from a client.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad());
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The key a registry has in `credHelpers` and `auths`: its host, with
/// the port when there is one (`registry.example.com`, `127.0.0.1:5000`).
pub fn registry_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The answer to `get`. Its `Debug` shows no secret (see [`Secret`]).
#[derive(Debug)]
pub struct Credentials {
    pub server_url: String,
    pub username: String,
    pub secret: Secret,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

impl Credentials {
    /// One JSON line, as the helpers' encoder writes it.
    pub fn write(&self, mut output: impl Write) -> Result<(), DockerProtocolError> {
        let wire = Wire {
            server_url: &self.server_url,
            username: &self.username,
            secret: self.secret.expose(),
        };
        let mut line =
            serde_json::to_vec(&wire).map_err(|e| DockerProtocolError::Write(e.into()))?;
        line.push(b'\n');
        output
            .write_all(&line)
            .and_then(|()| output.flush())
            .map_err(DockerProtocolError::Write)
    }
}

/// What `store` is handed (by `docker login`, `podman login`).
#[derive(Debug, Deserialize)]
pub struct StoreRequest {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username", default)]
    pub username: String,
    #[serde(rename = "Secret", default)]
    pub secret: Secret,
}

impl StoreRequest {
    /// Parsed and checked as the helpers check it: a server URL and a
    /// user name are required.
    pub fn parse(request: &[u8]) -> Result<Self, DockerProtocolError> {
        let parsed: Self =
            serde_json::from_slice(request).map_err(DockerProtocolError::BadStoreRequest)?;
        if parsed.server_url.is_empty() {
            return Err(DockerProtocolError::MissingServerUrl);
        }
        if parsed.username.is_empty() {
            return Err(DockerProtocolError::MissingUsername);
        }
        Ok(parsed)
    }
}

/// The answer to `list`: server URL → user name, one JSON line.
pub fn write_list(
    entries: &BTreeMap<String, String>,
    mut output: impl Write,
) -> Result<(), DockerProtocolError> {
    let mut line = serde_json::to_vec(entries).map_err(|e| DockerProtocolError::Write(e.into()))?;
    line.push(b'\n');
    output
        .write_all(&line)
        .and_then(|()| output.flush())
        .map_err(DockerProtocolError::Write)
}

/// A failure, the helpers' way: its text alone on a line of stdout.
pub fn write_failure(message: &str, mut output: impl Write) -> io::Result<()> {
    writeln!(output, "{message}")?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> impl Iterator<Item = std::ffi::OsString> {
        words
            .iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn one_verb_is_the_only_argument() {
        assert_eq!(Verb::from_args(args(&["get"])), Some(Verb::Get));
        assert_eq!(Verb::from_args(args(&["list"])), Some(Verb::List));
        assert_eq!(Verb::from_args(args(&["-v"])), Some(Verb::Version));
        assert_eq!(Verb::from_args(args(&["get", "x"])), None);
        assert_eq!(Verb::from_args(args(&["login"])), None);
        assert_eq!(Verb::from_args(args(&[])), None);
    }

    #[test]
    fn server_urls_are_trimmed_and_an_empty_one_is_refused() {
        assert_eq!(
            server_url(b"  registry.example.com\n").unwrap(),
            "registry.example.com"
        );
        assert!(matches!(
            server_url(b" \n"),
            Err(DockerProtocolError::MissingServerUrl)
        ));
        assert_eq!(
            DockerProtocolError::MissingServerUrl.to_string(),
            "no credentials server URL"
        );
    }

    #[test]
    fn registry_urls_are_https_unless_they_say_otherwise() {
        let url = |s| registry_url(s).unwrap().to_string();
        assert_eq!(url("registry.gitlab.com"), "https://registry.gitlab.com/");
        assert_eq!(url("127.0.0.1:5000"), "https://127.0.0.1:5000/");
        assert_eq!(
            url("https://index.docker.io/v1/"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(url("//ghcr.io"), "https://ghcr.io/");
        assert_eq!(url("http://127.0.0.1:5000?x=1"), "http://127.0.0.1:5000/");
        for bad in ["ftp://host", "https://", "https://user@host", "a b"] {
            assert!(registry_url(bad).is_err(), "{bad}");
        }
        let parsed = registry_url("127.0.0.1:5000").unwrap();
        assert_eq!(registry_host(&parsed), "127.0.0.1:5000");
        assert_eq!(registry_host(&registry_url("ghcr.io").unwrap()), "ghcr.io");
    }

    #[test]
    fn get_answers_one_json_line_in_the_helpers_field_names() {
        let credentials = Credentials {
            server_url: "ghcr.io".into(),
            username: "x-access-token".into(),
            secret: Secret::new("s3cret"),
        };
        let mut out = Vec::new();
        credentials.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ServerURL\":\"ghcr.io\",\"Username\":\"x-access-token\",\"Secret\":\"s3cret\"}\n"
        );
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }

    #[test]
    fn store_requests_need_a_server_and_a_user_name_and_hide_the_secret() {
        let parsed = StoreRequest::parse(
            br#"{"ServerURL":"ghcr.io","Username":"alice","Secret":"pat-123"}"#,
        )
        .unwrap();
        assert_eq!(
            (parsed.server_url.as_str(), parsed.username.as_str()),
            ("ghcr.io", "alice")
        );
        assert!(!format!("{parsed:?}").contains("pat-123"));
        assert!(matches!(
            StoreRequest::parse(br#"{"ServerURL":"ghcr.io","Secret":"x"}"#),
            Err(DockerProtocolError::MissingUsername)
        ));
        assert!(matches!(
            StoreRequest::parse(b"not json"),
            Err(DockerProtocolError::BadStoreRequest(_))
        ));
    }

    #[test]
    fn a_failure_is_its_text_on_a_line() {
        let mut out = Vec::new();
        write_failure(NOT_FOUND, &mut out).unwrap();
        assert_eq!(out, b"credentials not found in native keychain\n");
    }
}
