//! The private-use URI scheme redirect (RFC 8252 §7.1). The OS runs
//! `keygate callback '<redirect URL>'`; that process hands the URL to the
//! login waiting for it over a Unix socket in a 0700 directory of this
//! user, named after the flow's state, so a callback reaches only the flow
//! it belongs to and another user cannot connect at all.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::OAuthError;
use super::loopback::parse_redirect;
use crate::secret::Secret;

/// A redirect URL is short; anything longer is not one.
const MAX_URL_BYTES: u64 = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("the redirect URL {0:?} cannot be parsed")]
    BadUrl(String),
    #[error("the redirect carries no state, so it cannot belong to a keygate login")]
    NoState,
    #[error(
        "no keygate login is waiting for this redirect (it has expired, or its state is wrong)"
    )]
    NoFlowWaiting,
    #[error("the waiting login refused the redirect: {0}")]
    Refused(String),
    #[error("cannot reach the waiting login through {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scheme redirects need Unix sockets, which this platform lacks")]
    Unsupported,
}

/// The socket a flow with `state` listens on, under `dir`.
fn socket_path(dir: &Path, state: &str) -> PathBuf {
    let digest = Sha256::digest(state.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.sock"))
}

/// A login waiting for its redirect. The socket is removed on drop.
pub struct Waiting {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    path: PathBuf,
    state: String,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Waiting {
    #[cfg(unix)]
    pub fn register(dir: &Path, state: &str) -> Result<Self, OAuthError> {
        let listen_error = |source| OAuthError::Listen {
            addr: dir.display().to_string(),
            source,
        };
        crate::store::create_private_dir(dir).map_err(listen_error)?;
        let path = socket_path(dir, state);
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(listen_error)?;
        Ok(Self {
            listener,
            path,
            state: state.to_owned(),
        })
    }

    #[cfg(not(unix))]
    pub fn register(_dir: &Path, _state: &str) -> Result<Self, OAuthError> {
        Err(OAuthError::BadRedirect {
            url: String::new(),
            reason: "scheme redirects are not supported on this platform yet",
        })
    }

    /// Waits for `keygate callback` to deliver the redirect, answers it,
    /// and returns the authorization code.
    #[cfg(unix)]
    pub async fn wait(self, timeout: Duration) -> Result<Secret, OAuthError> {
        let receive = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (read_half, mut write_half) = stream.into_split();
                let mut reader = tokio::io::BufReader::new(read_half.take(MAX_URL_BYTES));
                let mut line = String::new();
                if reader.read_line(&mut line).await.is_err() {
                    continue;
                }
                let outcome = match url::Url::parse(line.trim_end()) {
                    Ok(url) => parse_redirect(url.query().unwrap_or(""), &self.state),
                    Err(_) => Err(OAuthError::BadResponse("the callback sent no URL".into())),
                };
                let reply = match &outcome {
                    Ok(_) => "ok\n".to_owned(),
                    Err(error) => format!("error: {error}\n"),
                };
                let _ = write_half.write_all(reply.as_bytes()).await;
                let _ = write_half.shutdown().await;
                return outcome;
            }
        };
        tokio::time::timeout(timeout, receive)
            .await
            .unwrap_or(Err(OAuthError::Timeout(timeout)))
    }

    #[cfg(not(unix))]
    pub async fn wait(self, _timeout: Duration) -> Result<Secret, OAuthError> {
        unreachable!("register fails on this platform")
    }
}

/// `keygate callback URL`: hands `url` to the login waiting for it.
pub fn deliver(dir: &Path, url: &str) -> Result<(), HandoffError> {
    let parsed = url::Url::parse(url).map_err(|_| HandoffError::BadUrl(redact_query(url)))?;
    let state = parsed
        .query_pairs()
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned())
        .filter(|s| !s.is_empty())
        .ok_or(HandoffError::NoState)?;
    send(&socket_path(dir, &state), url)
}

#[cfg(unix)]
fn send(path: &Path, url: &str) -> Result<(), HandoffError> {
    use std::io::ErrorKind;
    use std::os::unix::net::UnixStream;
    let socket_error = |source| HandoffError::Socket {
        path: path.to_owned(),
        source,
    };
    let mut stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Err(HandoffError::NoFlowWaiting);
        }
        Err(e) => return Err(socket_error(e)),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(socket_error)?;
    stream
        .write_all(format!("{url}\n").as_bytes())
        .map_err(socket_error)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(socket_error)?;
    match reply.trim_end() {
        "ok" => Ok(()),
        other => Err(HandoffError::Refused(
            other.strip_prefix("error: ").unwrap_or(other).to_owned(),
        )),
    }
}

#[cfg(not(unix))]
fn send(_path: &Path, _url: &str) -> Result<(), HandoffError> {
    Err(HandoffError::Unsupported)
}

/// The URL without its query, which holds the authorization code.
fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => url.to_owned(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_the_code_to_the_flow_with_that_state() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-1").unwrap();
        let run_dir = dir.path().to_owned();
        let sender = std::thread::spawn(move || {
            deliver(&run_dir, "com.example.app:/callback?code=abc&state=state-1")
        });
        let code = waiting.wait(Duration::from_secs(5)).await.unwrap();
        assert_eq!(code.expose(), "abc");
        sender.join().unwrap().unwrap();
    }

    #[test]
    fn a_callback_without_a_waiting_flow_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = deliver(
            dir.path(),
            "com.example.app:/callback?code=abc&state=nobody",
        )
        .unwrap_err();
        assert!(matches!(err, HandoffError::NoFlowWaiting));
        let err = deliver(dir.path(), "com.example.app:/callback?code=abc").unwrap_err();
        assert!(matches!(err, HandoffError::NoState));
    }

    #[tokio::test]
    async fn the_socket_is_removed_when_the_flow_ends() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "s").unwrap();
        let path = waiting.path.clone();
        assert!(path.exists());
        drop(waiting);
        assert!(!path.exists());
    }
}
