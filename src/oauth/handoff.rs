//! The private-use URI scheme redirect (RFC 8252 §7.1). The OS runs
//! `keygate callback '<redirect URL>'`; that process hands the URL to the
//! login waiting for it over a per-user local channel named after the
//! flow's state, so a callback reaches only the flow it belongs to:
//!
//! - Unix: a socket in a 0700 directory of this user, which another user
//!   cannot even connect to;
//! - Windows: a named pipe created as the first and only instance of its
//!   name, local clients only, whose name hashes this user's runtime
//!   directory together with the state.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::OAuthError;
use super::loopback::parse_redirect;
use crate::secret::Secret;

/// A redirect URL is short; anything longer is not one.
const MAX_URL_BYTES: u64 = 16 * 1024;

/// `keygate callback` writes its one line at once after connecting.
const CALLBACK_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    Channel {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the flow with `state` listens: a socket under `dir` on Unix, a
/// pipe whose name hashes `dir` and `state` on Windows (pipes live in one
/// machine-wide namespace, so the per-user directory goes into the name).
fn channel_path(dir: &Path, state: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    if cfg!(windows) {
        hasher.update(dir.as_os_str().as_encoded_bytes());
        hasher.update([0]);
    }
    hasher.update(state.as_bytes());
    let digest = hasher.finalize();
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    if cfg!(windows) {
        PathBuf::from(format!(r"\\.\pipe\keygate-callback-{name}"))
    } else {
        dir.join(format!("{name}.sock"))
    }
}

/// A login waiting for its redirect. Its channel goes away on drop.
pub struct Waiting {
    listener: platform::Listener,
    state: String,
}

impl Waiting {
    /// Opens the channel for the flow with `state`. Needs a tokio runtime.
    pub fn register(dir: &Path, state: &str) -> Result<Self, OAuthError> {
        let path = channel_path(dir, state);
        let listener =
            platform::Listener::bind(dir, &path).map_err(|source| OAuthError::Listen {
                addr: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            listener,
            state: state.to_owned(),
        })
    }

    /// Waits for `keygate callback` to deliver the redirect, answers it,
    /// and returns the authorization code.
    pub async fn wait(mut self, timeout: Duration) -> Result<Secret, OAuthError> {
        // Each connection is answered on its own, so a peer that connects
        // and stays silent cannot hold up the real callback behind it.
        let mut answering = tokio::task::JoinSet::new();
        let receive = async {
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => match accepted {
                        Ok(stream) => {
                            let state = self.state.clone();
                            answering.spawn(async move { answer(stream, &state).await });
                        }
                        // Out of descriptors, say: do not spin.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    },
                    Some(answered) = answering.join_next() => {
                        if let Ok(Some(outcome)) = answered {
                            return outcome;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(timeout, receive)
            .await
            .unwrap_or(Err(OAuthError::Timeout(timeout)))
    }
}

/// Reads the one redirect URL a callback sends and tells it how the flow
/// took it. `None` when the peer went away without sending anything.
async fn answer<S>(stream: S, state: &str) -> Option<Result<Secret, OAuthError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = tokio::io::BufReader::new(read_half.take(MAX_URL_BYTES));
    let mut line = String::new();
    // Nothing at all (a peer probing the channel, or one that connects and
    // stays silent) is not a redirect: wait for the next one.
    let read = tokio::time::timeout(CALLBACK_READ_TIMEOUT, reader.read_line(&mut line)).await;
    if read.ok()?.ok()? == 0 {
        return None;
    }
    let outcome = match url::Url::parse(line.trim_end()) {
        Ok(url) => parse_redirect(url.query().unwrap_or(""), state),
        Err(_) => Err(OAuthError::BadResponse("the callback sent no URL".into())),
    };
    let reply = match &outcome {
        Ok(_) => "ok\n".to_owned(),
        Err(error) => format!("error: {error}\n"),
    };
    let _ = write_half.write_all(reply.as_bytes()).await;
    let _ = write_half.shutdown().await;
    Some(outcome)
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
    let path = channel_path(dir, &state);
    // A directory another user can swap could hold their socket, which
    // would receive the code. (Windows pipes live in no directory.)
    #[cfg(unix)]
    match crate::store::check_private_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HandoffError::NoFlowWaiting);
        }
        Err(source) => {
            return Err(HandoffError::Channel {
                path: dir.to_owned(),
                source,
            });
        }
    }
    let channel_error = |source| HandoffError::Channel {
        path: path.clone(),
        source,
    };
    let mut stream = match platform::connect(&path) {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HandoffError::NoFlowWaiting);
        }
        Err(e) => return Err(channel_error(e)),
    };
    stream
        .write_all(format!("{url}\n").as_bytes())
        .map_err(channel_error)?;
    let mut reply = String::new();
    BufReader::new(&mut stream)
        .read_line(&mut reply)
        .map_err(channel_error)?;
    match reply.trim_end() {
        "ok" => Ok(()),
        other => Err(HandoffError::Refused(
            other.strip_prefix("error: ").unwrap_or(other).to_owned(),
        )),
    }
}

/// The URL without its query, which holds the authorization code.
fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => url.to_owned(),
    }
}

#[cfg(unix)]
mod platform {
    use std::io;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};

    use std::time::Duration;

    /// How long `keygate callback` waits for the login to answer.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

    pub struct Listener {
        inner: tokio::net::UnixListener,
        path: PathBuf,
    }

    impl Listener {
        pub fn bind(dir: &Path, path: &Path) -> io::Result<Self> {
            crate::store::create_private_dir(dir)?;
            // A socket left by a crashed login with this same state.
            let _ = std::fs::remove_file(path);
            Ok(Self {
                inner: tokio::net::UnixListener::bind(path)?,
                path: path.to_owned(),
            })
        }

        pub async fn accept(&mut self) -> io::Result<tokio::net::UnixStream> {
            Ok(self.inner.accept().await?.0)
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// NotFound when no login listens, including a socket file left by
    /// one that died.
    pub fn connect(path: &Path) -> io::Result<UnixStream> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => io::Error::from(io::ErrorKind::NotFound),
            _ => e,
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(stream)
    }
}

// Written against tokio's named-pipe API but not compiled by this
// project's CI, which has no Windows target: see README "Platforms".
#[cfg(windows)]
mod platform {
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};

    pub struct Listener {
        server: NamedPipeServer,
        path: PathBuf,
    }

    impl Listener {
        pub fn bind(_dir: &Path, path: &Path) -> io::Result<Self> {
            // first_pipe_instance: fail rather than share a name someone
            // else created first; remote clients: never over the network.
            let server = ServerOptions::new()
                .first_pipe_instance(true)
                .reject_remote_clients(true)
                .create(path)?;
            Ok(Self {
                server,
                path: path.to_owned(),
            })
        }

        pub async fn accept(&mut self) -> io::Result<NamedPipeServer> {
            let connected = self.server.connect().await;
            // The next instance exists before this one is handed out, so
            // a probe or a stray client never leaves the name gone.
            let next = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.path)?;
            let this = std::mem::replace(&mut self.server, next);
            connected.map(|()| this)
        }
    }

    /// NotFound when no login listens. A pipe busy with another callback
    /// is an error of its own (ERROR_PIPE_BUSY), not "nobody waiting".
    pub fn connect(path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
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

    #[test]
    fn a_socket_left_by_a_dead_login_means_no_flow_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = channel_path(dir.path(), "dead");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let err = deliver(dir.path(), "com.example.app:/callback?code=abc&state=dead").unwrap_err();
        assert!(matches!(err, HandoffError::NoFlowWaiting), "{err:?}");
    }

    #[tokio::test]
    async fn a_peer_that_sends_nothing_does_not_end_the_flow() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-2").unwrap();
        let path = channel_path(dir.path(), "state-2");
        let run_dir = dir.path().to_owned();
        let sender = std::thread::spawn(move || {
            drop(std::os::unix::net::UnixStream::connect(&path).unwrap());
            deliver(&run_dir, "com.example.app:/callback?code=xyz&state=state-2")
        });
        let code = waiting.wait(Duration::from_secs(5)).await.unwrap();
        assert_eq!(code.expose(), "xyz");
        sender.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_silent_peer_does_not_hold_up_the_real_callback() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-3").unwrap();
        let path = channel_path(dir.path(), "state-3");
        let run_dir = dir.path().to_owned();
        let (silent_done, hold_until) = std::sync::mpsc::channel::<()>();
        let sender = std::thread::spawn(move || {
            let silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let delivered = deliver(&run_dir, "com.example.app:/callback?code=c3&state=state-3");
            let _ = hold_until.recv();
            drop(silent);
            delivered
        });
        // The flow's own limit is shorter than a silent peer's read
        // timeout: answered in turn, the real callback would come too late.
        let code = waiting.wait(CALLBACK_READ_TIMEOUT / 2).await.unwrap();
        assert_eq!(code.expose(), "c3");
        silent_done.send(()).unwrap();
        sender.join().unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_socket_is_removed_when_the_flow_ends() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "s").unwrap();
        let path = channel_path(dir.path(), "s");
        assert!(path.exists());
        drop(waiting);
        assert!(!path.exists());
    }
}
