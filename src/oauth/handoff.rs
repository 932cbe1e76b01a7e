//! The private-use URI scheme redirect (RFC 8252 §7.1). The OS runs
//! `keygate callback '<redirect URL>'`; that process hands the URL to the
//! login waiting for it over a per-user local channel named after the
//! flow's state, so a callback reaches only the flow it belongs to: a Unix
//! socket in a 0700 directory, or a Windows named pipe open to this user
//! alone ([`crate::sys::channel`]).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::OAuthError;
use super::loopback::parse_redirect;
use crate::secret::Secret;
use crate::sys::channel;

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

/// Where the flow with `state` listens ([`channel::path`]).
fn channel_path(dir: &Path, state: &str) -> PathBuf {
    channel::path(dir, state)
}

/// A login waiting for its redirect. Its channel goes away on drop.
pub struct Waiting {
    listener: channel::Listener,
    state: String,
}

impl Waiting {
    /// Opens the channel for the flow with `state`. Needs a tokio runtime.
    pub fn register(dir: &Path, state: &str) -> Result<Self, OAuthError> {
        let path = channel_path(dir, state);
        let listener =
            channel::Listener::bind(dir, &path).map_err(|source| OAuthError::Listen {
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
    // would receive the code.
    match channel::check_dir(dir) {
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
    let mut stream = match channel::connect(&path) {
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

/// What the hand-off promises on every platform, over its Unix socket or
/// its Windows named pipe alike.
#[cfg(test)]
mod shared_tests {
    use super::*;

    #[tokio::test]
    async fn hands_the_code_to_the_flow_with_that_state() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-1").unwrap();
        let run_dir = dir.path().to_owned();
        let sender = std::thread::spawn(move || {
            deliver(&run_dir, "com.example.app:/callback?code=abc&state=state-1")
        });
        let code = waiting.wait(Duration::from_secs(30)).await.unwrap();
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
        assert!(matches!(err, HandoffError::NoFlowWaiting), "{err:?}");
        let err = deliver(dir.path(), "com.example.app:/callback?code=abc").unwrap_err();
        assert!(matches!(err, HandoffError::NoState));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

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

/// The same guarantees over named pipes, run under Wine in CI
/// (.ci/windows.sh).
#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;

    fn open(path: &Path) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[tokio::test]
    async fn a_wrong_state_is_refused_by_the_flow() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-w").unwrap();
        // Sent to this flow's pipe, but with another state.
        let path = channel_path(dir.path(), "state-w");
        let forged = std::thread::spawn(move || {
            let mut pipe = open(&path);
            pipe.write_all(b"com.example.app:/callback?code=abc&state=other\n")
                .unwrap();
            let mut reply = String::new();
            BufReader::new(&mut pipe).read_line(&mut reply).unwrap();
            reply
        });
        let err = waiting.wait(Duration::from_secs(30)).await.unwrap_err();
        let reply = forged.join().unwrap();
        assert!(reply.starts_with("error:"), "{reply:?} / {err:?}");
    }

    /// A peer takes the only listening instance: the callback right after
    /// it finds the pipe busy, and must wait for the next instance.
    #[tokio::test]
    async fn a_peer_that_sends_nothing_does_not_end_the_flow() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-2").unwrap();
        let path = channel_path(dir.path(), "state-2");
        let run_dir = dir.path().to_owned();
        let sender = std::thread::spawn(move || {
            drop(open(&path));
            deliver(&run_dir, "com.example.app:/callback?code=xyz&state=state-2")
        });
        let code = waiting.wait(Duration::from_secs(30)).await;
        let sent = sender.join().unwrap();
        assert!(
            code.as_ref().is_ok_and(|c| c.expose() == "xyz") && sent.is_ok(),
            "flow: {code:?}, callback: {sent:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_peer_does_not_hold_up_the_real_callback() {
        let dir = tempfile::tempdir().unwrap();
        let waiting = Waiting::register(dir.path(), "state-3").unwrap();
        let path = channel_path(dir.path(), "state-3");
        let run_dir = dir.path().to_owned();
        let (silent_done, hold_until) = std::sync::mpsc::channel::<()>();
        let sender = std::thread::spawn(move || {
            let silent = open(&path);
            let delivered = deliver(&run_dir, "com.example.app:/callback?code=c3&state=state-3");
            let _ = hold_until.recv();
            drop(silent);
            delivered
        });
        let code = waiting.wait(CALLBACK_READ_TIMEOUT / 2).await;
        silent_done.send(()).unwrap();
        let sent = sender.join().unwrap();
        assert!(
            code.as_ref().is_ok_and(|c| c.expose() == "c3") && sent.is_ok(),
            "flow: {code:?}, callback: {sent:?}"
        );
    }

    /// A "login" that takes the URL and never answers: the callback gives
    /// up instead of blocking forever.
    #[tokio::test]
    async fn the_callback_gives_up_on_a_login_that_never_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = channel_path(dir.path(), "mute");
        let server = tokio::net::windows::named_pipe::ServerOptions::new()
            .create(&path)
            .unwrap();
        let listening = tokio::spawn(async move { server.connect().await.map(|()| server) });
        tokio::task::yield_now().await;
        let run_dir = dir.path().to_owned();
        let (sent, result) = std::sync::mpsc::channel();
        // A thread of its own, so that a callback that never gives up
        // fails this test instead of holding up the whole run.
        std::thread::spawn(move || {
            let _ = sent.send(deliver(
                &run_dir,
                "com.example.app:/callback?code=m&state=mute",
            ));
        });
        let result =
            tokio::task::spawn_blocking(move || result.recv_timeout(Duration::from_secs(120)))
                .await
                .unwrap()
                .expect("the callback is still waiting for an answer");
        match result {
            Err(HandoffError::Channel { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{source}")
            }
            other => panic!("{other:?}"),
        }
        drop(listening.await);
    }

    /// The pipe's DACL has one entry: this user.
    #[tokio::test]
    async fn the_pipe_admits_this_user_alone() {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Foundation::LocalFree;
        use windows_sys::Win32::Security::Authorization::{
            ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
            SE_KERNEL_OBJECT,
        };
        use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;

        let dir = tempfile::tempdir().unwrap();
        let _waiting = Waiting::register(dir.path(), "acl").unwrap();
        let pipe = open(&channel_path(dir.path(), "acl"));
        let mut descriptor = std::ptr::null_mut();
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: test code: a live handle; outputs freed below.
        let sddl = unsafe {
            let status = GetSecurityInfo(
                pipe.as_raw_handle(),
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut descriptor,
            );
            assert_eq!(status, 0);
            assert_ne!(
                ConvertSecurityDescriptorToStringSecurityDescriptorW(
                    descriptor,
                    SDDL_REVISION_1,
                    DACL_SECURITY_INFORMATION,
                    &mut text,
                    std::ptr::null_mut(),
                ),
                0
            );
            let len = (0..).take_while(|&i| *text.add(i) != 0).count();
            let sddl = String::from_utf16_lossy(std::slice::from_raw_parts(text, len));
            LocalFree(text.cast());
            LocalFree(descriptor);
            sddl
        };
        let me = crate::sys::windows::CurrentUser::get()
            .unwrap()
            .sid_string()
            .unwrap();
        assert!(sddl.starts_with("D:P("), "{sddl}");
        assert_eq!(sddl.matches('(').count(), 1, "{sddl}");
        assert!(sddl.ends_with(&format!(";;;{me})")), "{sddl} / {me}");
    }

    #[tokio::test]
    async fn the_pipe_is_gone_when_the_flow_ends() {
        let dir = tempfile::tempdir().unwrap();
        drop(Waiting::register(dir.path(), "s").unwrap());
        let err = deliver(dir.path(), "com.example.app:/callback?code=abc&state=s").unwrap_err();
        assert!(matches!(err, HandoffError::NoFlowWaiting), "{err:?}");
    }
}
