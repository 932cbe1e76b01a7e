//! The loopback redirect listener (RFC 8252 §7.3): 127.0.0.1 only. One
//! request counts: a `GET` on the redirect path carrying this login's
//! state, from a process of this user. Anything else gets a small error
//! page and the login keeps waiting, so a stray tab, a preconnect socket
//! or another local user cannot end it. The browser's answer is held
//! until the code has been redeemed, so the page says what happened.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

use super::OAuthError;
use crate::secret::Secret;

pub const DEFAULT_REDIRECT: &str = "http://127.0.0.1/callback";

/// Connections served at once. Past it, the oldest connection that has
/// not sent a request yet is dropped for the new one: a browser sends its
/// request as soon as it connects, so idle sockets cannot crowd it out.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the final page may take to reach the browser before keygate
/// exits anyway.
const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// Ignored requests reported on stderr, one line each; the rest silently.
const REPORTED_STRAYS: usize = 5;

pub struct Loopback {
    listener: TcpListener,
    redirect_uri: Url,
}

/// Who the login is for, in the words the pages use.
pub struct Audience<'a> {
    /// The server signed in to: `https://git.example.com`.
    pub server: &'a str,
    /// The account name keygate keeps the tokens under, if any.
    pub account: Option<&'a str>,
    /// What to run to try again: `keygate login https://...`.
    pub retry: &'a str,
}

impl Loopback {
    /// Listens where `redirect_url` says: `http://127.0.0.1[:port]/path`;
    /// no port means a free ephemeral one. `localhost` is refused: it may
    /// resolve to another interface, and providers treat it differently.
    pub async fn bind(redirect_url: &str) -> Result<Self, OAuthError> {
        let bad = |reason| OAuthError::BadRedirect {
            url: redirect_url.to_owned(),
            reason,
        };
        let mut redirect_uri = Url::parse(redirect_url).map_err(|_| bad("not a URL"))?;
        if redirect_uri.scheme() != "http" {
            return Err(bad("a loopback redirect must be http://127.0.0.1/..."));
        }
        if redirect_uri.host() != Some(url::Host::Ipv4(Ipv4Addr::LOCALHOST)) {
            return Err(bad("a loopback redirect must use the host 127.0.0.1"));
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, redirect_uri.port().unwrap_or(0)));
        let listen_error = |source| OAuthError::Listen {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        redirect_uri
            .set_port(Some(port))
            .map_err(|()| bad("cannot set the port"))?;
        Ok(Self {
            listener,
            redirect_uri,
        })
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Serves until the one redirect that counts arrives (or `timeout`),
    /// then runs `redeem` on its code while the browser waits, and shows
    /// the browser how that ended.
    ///
    /// `alongside` runs meanwhile: what the person sees while keygate
    /// waits, or the paste prompt, whose code (checked against the same
    /// state) counts as the redirect would; whichever comes first wins,
    /// and the other is dropped at once.
    ///
    /// # Security
    /// Requests with another method, path or state, and (on Linux) from
    /// another user's process, are answered with an error page and do not
    /// end the login. The page never shows the code, the state or a token.
    pub async fn wait<T, F>(
        self,
        expected_state: &str,
        timeout: Duration,
        audience: &Audience<'_>,
        alongside: Alongside<'_>,
        redeem: impl FnOnce(Secret) -> F,
    ) -> Result<T, OAuthError>
    where
        F: Future<Output = Result<T, OAuthError>>,
    {
        let (arrivals, mut arrived) = mpsc::channel::<Arrival>(1);
        let gate = Arc::new(Gate {
            path: self.redirect_uri.path().to_owned(),
            state: expected_state.to_owned(),
            taken: AtomicBool::new(false),
            strays: AtomicUsize::new(0),
            arrivals,
        });
        let mut connections = Connections::default();
        let came = {
            let accept_loop = async {
                loop {
                    match self.listener.accept().await {
                        Ok((stream, peer)) => connections.serve(stream, peer, &gate),
                        // Out of descriptors, say: do not spin.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            };
            tokio::select! {
                arrival = arrived.recv() => arrival.map(Came::Redirect),
                pasted = alongside => Some(Came::Alongside(pasted)),
                () = accept_loop => None,
                () = tokio::time::sleep(timeout) => None,
            }
        };
        let Arrival { redirect, reply } = match came {
            None => return Err(OAuthError::Timeout(timeout)),
            Some(Came::Redirect(arrival)) => arrival,
            // No browser waits on this listener for a page.
            Some(Came::Alongside(pasted)) => {
                drop(connections);
                return redeem(pasted?).await;
            }
        };
        let outcome = match redirect {
            Ok(code) => redeem(code).await,
            Err(error) => Err(error),
        };
        let page = match &outcome {
            Ok(_) => success_page(audience),
            Err(error) => failure_page(error, audience),
        };
        let (flushed, sent) = oneshot::channel();
        if reply.send(Reply { page, flushed }).is_ok() {
            // Resolves when the connection that carried the redirect ends.
            let _ = tokio::time::timeout(FLUSH_GRACE, sent).await;
        }
        // Every other connection (idle preconnects, strays) ends here.
        drop(connections);
        outcome
    }
}

/// What runs beside the listener: see [`Loopback::wait`].
pub type Alongside<'a> = Pin<Box<dyn Future<Output = Result<Secret, OAuthError>> + Send + 'a>>;

/// What ended the wait first.
enum Came {
    Redirect(Arrival),
    Alongside(Result<Secret, OAuthError>),
}

/// The live connections, with the cap and the eviction rule.
#[derive(Default)]
struct Connections {
    tasks: JoinSet<()>,
    live: VecDeque<(AbortHandle, Arc<AtomicBool>)>,
}

impl Connections {
    fn serve(&mut self, stream: TcpStream, peer: SocketAddr, gate: &Arc<Gate>) {
        while self.tasks.try_join_next().is_some() {}
        self.live.retain(|(task, _)| !task.is_finished());
        if self.live.len() >= MAX_CONNECTIONS {
            let idle = self
                .live
                .iter()
                .position(|(_, requested)| !requested.load(Ordering::Relaxed));
            match idle.and_then(|i| self.live.remove(i)) {
                Some((task, _)) => task.abort(),
                // Every slot is answering a request: those end quickly.
                None => return,
            }
        }
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let requested = Arc::new(AtomicBool::new(false));
        let gate = gate.clone();
        let flag = requested.clone();
        let task = self.tasks.spawn(async move {
            // The redirect's connection keeps the sender of "page sent"
            // here; it drops, and so signals, when the connection ends.
            let flushed: Arc<Mutex<Option<oneshot::Sender<()>>>> = Arc::default();
            let slot = flushed.clone();
            let service = hyper::service::service_fn(move |request| {
                flag.store(true, Ordering::Relaxed);
                let gate = gate.clone();
                let slot = slot.clone();
                async move { Ok::<_, Infallible>(gate.answer(&request, local, peer, &slot).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .max_buf_size(16 * 1024)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(flushed);
        });
        self.live.push_back((task, requested));
    }
}

/// The redirect that counts, and where to send the page for it.
struct Arrival {
    redirect: Result<Secret, OAuthError>,
    reply: oneshot::Sender<Reply>,
}

struct Reply {
    page: Page,
    flushed: oneshot::Sender<()>,
}

struct Gate {
    path: String,
    state: String,
    taken: AtomicBool,
    strays: AtomicUsize,
    arrivals: mpsc::Sender<Arrival>,
}

impl Gate {
    async fn answer(
        &self,
        request: &Request<Incoming>,
        local: SocketAddr,
        peer: SocketAddr,
        flushed: &Mutex<Option<oneshot::Sender<()>>>,
    ) -> Response<Full<Bytes>> {
        let (page, what) = match self.check(request, local, peer) {
            Ok(redirect) => return self.take(redirect, flushed).await,
            Err(refusal) => refusal,
        };
        let count = self.strays.fetch_add(1, Ordering::Relaxed);
        if count < REPORTED_STRAYS {
            crate::text::notice(&format!(
                "ignored {what} to the login listener; still waiting for the browser's redirect"
            ));
        } else if count == REPORTED_STRAYS {
            crate::text::notice(
                "further stray requests to the login listener are ignored silently",
            );
        }
        page.render()
    }

    /// The redirect a request carries if it is the one that counts; else
    /// the page to answer it with and how to report it.
    fn check(
        &self,
        request: &Request<Incoming>,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<Result<Secret, OAuthError>, (Page, String)> {
        // Other users' processes are served nothing, whatever they ask.
        match crate::sys::peer::is_same_user(local, peer) {
            Ok(true) => {}
            Ok(false) => {
                let page = Page::new(
                    StatusCode::FORBIDDEN,
                    "Not your sign-in",
                    "This keygate sign-in belongs to another user of this computer. It ignored \
                     this request and keeps waiting for its own.",
                );
                return Err((page, "a request from another user's process".to_owned()));
            }
            Err(error) => {
                let page = Page::new(
                    StatusCode::FORBIDDEN,
                    "Not accepted",
                    "keygate cannot tell which user sent this request, so it ignored it and keeps \
                     waiting.",
                );
                return Err((page, format!("a request whose sender is unknown ({error})")));
            }
        }
        let stray = |status, what: String| {
            let page = Page::new(
                status,
                "Not the sign-in redirect",
                "This is keygate's sign-in listener, and this request is not the redirect it is \
                 waiting for, so keygate ignored it and keeps waiting. Finish signing in in the tab \
                 keygate opened.",
            );
            Err((page, what))
        };
        if request.method() != Method::GET {
            let mut refusal = stray(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("a request with method {}", request.method()),
            );
            if let Err((page, _)) = &mut refusal {
                page.allow_get = true;
            }
            return refusal;
        }
        if request.uri().path() != self.path {
            return stray(
                StatusCode::NOT_FOUND,
                "a request for another path".to_owned(),
            );
        }
        let redirect = parse_redirect(request.uri().query().unwrap_or(""), &self.state);
        if matches!(redirect, Err(OAuthError::StateMismatch)) {
            return stray(
                StatusCode::BAD_REQUEST,
                "a redirect with a wrong or missing state (stray or forged)".to_owned(),
            );
        }
        Ok(redirect)
    }

    /// Hands the redirect to the login and waits for the page to show.
    async fn take(
        &self,
        redirect: Result<Secret, OAuthError>,
        flushed: &Mutex<Option<oneshot::Sender<()>>>,
    ) -> Response<Full<Bytes>> {
        let done = Page::new(
            StatusCode::GONE,
            "Already done",
            "This sign-in has already received its redirect. You can close this tab.",
        );
        if self.taken.swap(true, Ordering::SeqCst) {
            return done.render();
        }
        let (reply, page) = oneshot::channel();
        if self
            .arrivals
            .send(Arrival { redirect, reply })
            .await
            .is_err()
        {
            return done.render();
        }
        match page.await {
            Ok(Reply {
                page,
                flushed: sent,
            }) => {
                if let Ok(mut slot) = flushed.lock() {
                    *slot = Some(sent);
                }
                page.render()
            }
            Err(_) => done.render(),
        }
    }
}

/// Reads `code`, `state` and `error` from a redirect's query. The state is
/// checked first: a redirect with the wrong state says nothing trustworthy,
/// not even an error.
pub fn parse_redirect(query: &str, expected_state: &str) -> Result<Secret, OAuthError> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = Some(value.into_owned()),
            _ => {}
        }
    }
    if state.as_deref() != Some(expected_state) {
        return Err(OAuthError::StateMismatch);
    }
    if let Some(code) = error {
        return Err(OAuthError::Denied { code, description });
    }
    code.filter(|c| !c.is_empty())
        .map(Secret::new)
        .ok_or(OAuthError::MissingCode)
}

fn success_page(audience: &Audience<'_>) -> Page {
    let whom = match audience.account {
        Some(account) => format!("{} as {account}", audience.server),
        None => audience.server.to_owned(),
    };
    Page::new(
        StatusCode::OK,
        "Signed in",
        &format!(
            "keygate is signed in to {whom}. You can close this tab and return to the terminal."
        ),
    )
}

fn failure_page(error: &OAuthError, audience: &Audience<'_>) -> Page {
    let server = audience.server;
    let next = format!(
        "Nothing was stored. To try again, run `{}` in a terminal, or run your git command again.",
        audience.retry
    );
    let (title, message) = match error {
        OAuthError::Denied { code, description } => (
            "Sign-in cancelled",
            format!(
                "You did not give keygate access to {server} (the server said: {}). {next}",
                description.as_deref().unwrap_or(code)
            ),
        ),
        OAuthError::MissingCode => (
            "Sign-in failed",
            format!(
                "{server} sent the browser back without an authorization code, so keygate \
                 could not sign in. {next}"
            ),
        ),
        OAuthError::Exchange(cause) => (
            "Sign-in failed",
            format!("keygate could not finish signing in to {server}: {cause}. {next}"),
        ),
        other => (
            "Sign-in failed",
            format!("keygate could not finish signing in to {server}: {other}. {next}"),
        ),
    };
    Page::new(StatusCode::BAD_REQUEST, title, &message)
}

/// A small page of keygate's own: text only, escaped, never cached.
struct Page {
    status: StatusCode,
    title: &'static str,
    message: String,
    allow_get: bool,
}

impl Page {
    fn new(status: StatusCode, title: &'static str, message: &str) -> Self {
        Self {
            status,
            title,
            message: message.to_owned(),
            allow_get: false,
        }
    }

    fn html(&self) -> String {
        // The empty icon keeps the browser from asking for /favicon.ico.
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <link rel=\"icon\" href=\"data:,\"><title>keygate: {title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em\">\
             <h1>{title}</h1><p>{message}</p></body></html>",
            title = escape_html(self.title),
            message = escape_html(&self.message),
        )
    }

    fn render(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.html())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if self.allow_get {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        response
    }
}

/// Text from a server (an error description, a URL) may hold markup.
pub(crate) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_code_with_matching_state() {
        let code = parse_redirect("code=abc&state=s1", "s1").unwrap();
        assert_eq!(code.expose(), "abc");
    }

    #[test]
    fn wrong_or_missing_state_is_refused_even_with_an_error() {
        assert!(matches!(
            parse_redirect("code=abc&state=s2", "s1"),
            Err(OAuthError::StateMismatch)
        ));
        assert!(matches!(
            parse_redirect("code=abc", "s1"),
            Err(OAuthError::StateMismatch)
        ));
        assert!(matches!(
            parse_redirect("error=access_denied&state=evil", "s1"),
            Err(OAuthError::StateMismatch)
        ));
    }

    #[test]
    fn access_denied_is_reported() {
        let err = parse_redirect("error=access_denied&state=s1", "s1").unwrap_err();
        assert!(err.to_string().contains("denied"));
    }

    #[test]
    fn a_missing_code_does_not_blame_the_token_endpoint() {
        let err = parse_redirect("state=s1", "s1").unwrap_err();
        assert!(matches!(err, OAuthError::MissingCode));
        assert!(!err.to_string().contains("token endpoint"), "{err}");
    }

    #[test]
    fn pages_escape_server_text_and_forbid_caching_and_referrers() {
        let audience = Audience {
            server: "https://git.example.com",
            account: None,
            retry: "keygate login https://git.example.com",
        };
        let error = OAuthError::Denied {
            code: "access_denied".into(),
            description: Some("<script>alert(1)</script>".into()),
        };
        let page = failure_page(&error, &audience);
        let response = page.render();
        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'")
        );
        let body = page.html();
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
    }

    /// Sends one raw HTTP/1.1 request and reads the whole answer.
    async fn exchange(port: u16, head: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn strays_are_answered_and_the_page_waits_for_the_redemption() {
        let loopback = Loopback::bind(DEFAULT_REDIRECT).await.unwrap();
        let port = loopback.redirect_uri().port().unwrap();
        let (release, released) = oneshot::channel::<()>();
        let login = tokio::spawn(async move {
            let audience = Audience {
                server: "https://git.example.com",
                account: Some("alice"),
                retry: "keygate login https://alice@git.example.com",
            };
            loopback
                .wait(
                    "s1",
                    Duration::from_secs(60),
                    &audience,
                    Box::pin(std::future::pending()),
                    async |code| {
                        let _ = released.await;
                        Ok::<_, OAuthError>(code.expose().to_owned())
                    },
                )
                .await
        });
        let request = |method: &str, target: &str| {
            format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        };
        for (method, target, status) in [
            ("HEAD", "/callback?code=c&state=s1", "405"),
            ("OPTIONS", "/callback?code=c&state=s1", "405"),
            ("POST", "/callback?code=c&state=s1", "405"),
            ("GET", "/callback?code=c&state=s2", "400"),
            ("GET", "/callback?code=c", "400"),
            ("GET", "/other?code=c&state=s1", "404"),
        ] {
            let answer = exchange(port, request(method, target)).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{method} {target}: {answer}"
            );
            assert!(answer.contains("cache-control: no-store"), "{answer}");
        }
        assert!(!login.is_finished(), "a stray request ended the login");

        let redirect = tokio::spawn(exchange(port, request("GET", "/callback?code=c1&state=s1")));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !redirect.is_finished(),
            "the page came before the redemption ended"
        );
        release.send(()).unwrap();
        let answer = redirect.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("signed in to https://git.example.com as alice"),
            "{answer}"
        );
        assert!(!answer.contains("c1") && !answer.contains("s1"), "{answer}");
        assert_eq!(login.await.unwrap().unwrap(), "c1");
    }

    #[tokio::test]
    async fn refuses_localhost_and_https_redirects() {
        assert!(Loopback::bind("http://localhost/callback").await.is_err());
        assert!(Loopback::bind("https://127.0.0.1/callback").await.is_err());
        let lb = Loopback::bind(DEFAULT_REDIRECT).await.unwrap();
        assert_ne!(lb.redirect_uri().port(), Some(0));
        assert_eq!(lb.redirect_uri().path(), "/callback");
    }
}
