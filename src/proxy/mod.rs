//! `keygate proxy`: a local HTTP/1.1 forward proxy that puts a fresh token
//! on requests to configured origins, for clients that never ask a git
//! credential helper (Composer, curl, package managers).
//!
//! # Security
//!
//! It listens on loopback only (unless told otherwise with a `danger_`
//! switch) and answers only requests carrying the per-user proxy password,
//! new on every start. On Linux it also closes, before reading a byte,
//! every connection from a process of another user. Request heads are
//! bounded in size and time, and connections without the password are
//! capped, the oldest dropped first (see `admission`), so clients without
//! the password cannot starve those with it.
//! `CONNECT` to a configured origin (scheme, host and port, as git matches
//! URLs) is intercepted with a leaf from the local CA, whose name
//! constraints admit only the configured hosts; the token is added only
//! there, replacing any `Authorization` the client sent, and `Host` is the
//! origin's (a request naming another host is refused). Every other
//! `CONNECT` is tunnelled byte for byte, never decrypted. Redirects are
//! passed to the client, so a token never follows one to another host.

mod admission;
mod ca;
mod tokens;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
// Names resolved by keygate itself, never by getaddrinfo (see crate::http).
type HttpConnector = hyper_util::client::legacy::connect::HttpConnector<crate::http::Resolver>;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{self, GitConfig};
use crate::secret::Secret;
use crate::session::present;
use crate::store::{self, StoreError};

use admission::{Admission, Slot};
use ca::LocalCa;
use tokens::TokenSource;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "refusing to listen on {0}: not a loopback address; the proxy holds your tokens (pass --danger-allow-non-loopback to insist)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "no host is configured for keygate, so the proxy would have nothing to do; configure one (see `keygate.<url>.clientId`)"
    )]
    NothingConfigured,
    #[error("local CA: {0}")]
    Ca(String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// `keygate proxy`'s options; the field comments are its `--help`.
#[derive(clap::Args)]
pub struct Options {
    /// Where to listen; port 0 (the default) takes a free one, and tools
    /// read the URL from the proxy's 0600 `url` file. A fixed port can be
    /// taken by another local user while the proxy is down.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Listen on a non-loopback address (the proxy password is still required)
    #[arg(long)]
    pub danger_allow_non_loopback: bool,
}

type Body = BoxBody<Bytes, hyper::Error>;

const UPSTREAM_READ_BUFFER: usize = 16 * 1024;
type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>;

/// One configured origin: how to reach it and where its token comes from.
struct Origin {
    host: String,
    port: u16,
    tokens: Arc<TokenSource>,
    upstream: Upstream,
}

struct Proxy {
    password: Secret,
    origins: Vec<Origin>,
    ca: LocalCa,
    plain: Client<HttpConnector, Incoming>,
}

/// Runs the proxy until SIGTERM or SIGINT, then lets open connections
/// finish.
pub fn run(options: Options, config: &GitConfig) -> Result<(), ProxyError> {
    if !options.listen.ip().is_loopback() && !options.danger_allow_non_loopback {
        return Err(ProxyError::NotLoopback(options.listen));
    }
    let providers = config::configured_providers(config);
    if providers.is_empty() {
        return Err(ProxyError::NothingConfigured);
    }
    let store_choice = config::store_choice(config)?;
    let store = store::open(store_choice)?;
    // New on every start: a password that leaked (a shell history, a
    // file another user could read) dies with the process it opened.
    let password = random_password()?;
    // The connection caps (see `admission`) need more descriptors than
    // the usual soft limit of 1,024.
    crate::sys::raise_open_file_limit(8192);
    let hosts: Vec<String> = providers
        .iter()
        .filter_map(|p| {
            p.server
                .host_str()
                .map(|h| h.trim_matches(['[', ']']).to_owned())
        })
        .collect();
    let ca = LocalCa::load_or_create(store.as_ref(), &hosts)?;
    let proxy_dir = store::data_dir()?.join("proxy");
    let (ca_path, bundle_path) = ca.write_files(&proxy_dir)?;
    drop(store);

    // One worker: relaying is TLS decrypt + encrypt, and on a small machine
    // the client and the server need the other cores; handing each chunk
    // between worker threads cost more (wake-ups, locks) than it won
    // (bench/proxy.sh: 0.56x direct with one worker, 0.51x with two).
    // Token refreshes run on the blocking pool, never on the worker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ProxyError::Runtime)?;
    runtime.block_on(async move {
        let mut origins = Vec::new();
        for provider in providers {
            let ca_files = config::oauth_ca_files(config, &provider);
            let tls = crate::http::tls_config(&config::ca_files_for(config, &provider.server))?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .wrap_connector(tcp_connector(false));
            let host = provider
                .server
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let port = provider.server.port_or_known_default().unwrap_or(443);
            let tokens = Arc::new(TokenSource::new(provider, ca_files, store_choice));
            tokio::spawn(tokens.clone().refresh_in_background());
            origins.push(Origin {
                host,
                port,
                tokens,
                upstream: Client::builder(TokioExecutor::new())
                    // hyper lets a read buffer grow to ~400 KiB per
                    // connection while streaming a body; one TLS record's
                    // worth keeps 100 open downloads at 15 MiB resident
                    // (23 MiB before) at the same speed.
                    .http1_read_buf_exact_size(UPSTREAM_READ_BUFFER)
                    .build(connector),
            });
        }
        let proxy = Arc::new(Proxy {
            password,
            origins,
            ca,
            plain: Client::builder(TokioExecutor::new()).build(tcp_connector(true)),
        });
        let remote_peers = options.danger_allow_non_loopback;
        let files = (
            proxy_dir.as_path(),
            ca_path.as_path(),
            bundle_path.as_path(),
        );
        serve(proxy, options.listen, remote_peers, files).await
    })
}

/// How long reaching a server may take before the client gets a 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request head to the proxy (and,
/// on a kept-alive connection, to start the next one): real clients send
/// theirs at once.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The same inside an intercepted tunnel, whose client is authenticated.
const TUNNEL_HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the TLS handshake inside an intercepted tunnel may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head, to the proxy (a `CONNECT` is a few hundred
/// bytes) and inside a tunnel; a bigger one gets 431.
const MAX_HEAD: usize = 32 * 1024;
const MAX_TUNNEL_HEAD: usize = 64 * 1024;
/// Peer checks that read `/proc` (no socket diagnostics) at once.
const PROC_CHECKS: usize = 2;

/// The HTTP/1 server settings for connections to the proxy.
fn proxy_server() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    builder
}

/// `http_only`: refuse `https://` URIs, for the client that speaks
/// plain HTTP; under TLS the TLS layer decides instead.
fn tcp_connector(http_only: bool) -> HttpConnector {
    let mut connector = HttpConnector::new_with_resolver(crate::http::Resolver::default());
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    connector.enforce_http(http_only);
    connector
}

/// `remote_peers`: serve peers on other machines too (the `danger_`
/// switch); local ones must still be of this user.
async fn serve(
    proxy: Arc<Proxy>,
    listen: SocketAddr,
    remote_peers: bool,
    (proxy_dir, ca_path, bundle_path): (&Path, &Path, &Path),
) -> Result<(), ProxyError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ProxyError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
        addr: listen,
        source,
    })?;
    let url = format!("http://keygate:{}@{addr}", proxy.password.expose());
    // For services, whose stdout may end up in a log, and for tools that
    // must pick up the new password: the URL in files only the user reads.
    let files = Files::write(proxy_dir, &url, bundle_path)?;
    announce(&url, ca_path, &files);

    // Each connection holds a sender: when all are gone, all are done.
    let (stopping, stop_seen) = tokio::sync::watch::channel(false);
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let admission = Admission::new();
    let proc_checks = Arc::new(Semaphore::new(PROC_CHECKS));
    let shutdown = crate::sys::terminated();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of descriptors, say: do not spin the one worker.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(local) = stream.local_addr() else {
                    continue;
                };
                let proxy = proxy.clone();
                let admission = admission.clone();
                let proc_checks = proc_checks.clone();
                let mut stop_seen = stop_seen.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    // Before reading a byte: another user's process gets a
                    // closed connection, whatever password it holds.
                    let owner = owner(local, peer, &proc_checks).await;
                    if !owner.admitted(peer, remote_peers) {
                        return;
                    }
                    let _ = stream.set_nodelay(true);
                    let (slot, evicted) = admission.admit(peer.ip());
                    let service = hyper::service::service_fn(move |request| {
                        let proxy = proxy.clone();
                        let slot = slot.clone();
                        async move { Ok::<_, Infallible>(proxy.handle(request, slot).await) }
                    });
                    let connection = proxy_server()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = evicted => {}
                        _ = stop_seen.changed() => {
                            // Finish the request in flight, take no more.
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                    drop(alive);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    note("proxy stopping; letting open requests finish");
    let _ = stopping.send(true);
    drop(alive);
    let _ = tokio::time::timeout(Duration::from_secs(10), all_done.recv()).await;
    Ok(())
}

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    ThisUser,
    OtherUser,
    /// No socket on this machine has that address: a remote peer.
    NotLocal,
    /// The lookup failed.
    Unknown,
}

impl Owner {
    /// From "is it this user?": a closed connection whose owner the kernel
    /// no longer names, or names twice with two owners, is `Unknown`,
    /// never ours.
    fn of(same_user: Result<bool, crate::sys::peer::PeerError>) -> Self {
        match same_user {
            Ok(true) => Owner::ThisUser,
            Ok(false) => Owner::OtherUser,
            Err(crate::sys::peer::PeerError::NotFound(_)) => Owner::NotLocal,
            Err(_) => Owner::Unknown,
        }
    }

    /// Fails closed: only this user's processes, and remote peers when
    /// they were asked for.
    fn admitted(self, peer: SocketAddr, remote_peers: bool) -> bool {
        match self {
            Owner::ThisUser => true,
            Owner::NotLocal => remote_peers && !peer.ip().is_loopback(),
            Owner::OtherUser | Owner::Unknown => false,
        }
    }
}

async fn owner(local: SocketAddr, peer: SocketAddr, proc_checks: &Semaphore) -> Owner {
    if let Some(found) = crate::sys::peer::diagnosed_same_user(local, peer) {
        return Owner::of(found);
    }
    // No socket diagnostics (or not Linux): reading /proc/net/tcp blocks
    // and grows with every socket on the machine, so off the worker, and a
    // few at a time.
    let Ok(_turn) = proc_checks.acquire().await else {
        return Owner::Unknown;
    };
    let lookup = move || crate::sys::peer::table_same_user(local, peer);
    match tokio::task::spawn_blocking(lookup).await {
        Ok(found) => Owner::of(found),
        Err(_) => Owner::Unknown,
    }
}

/// What a user needs to point tools at the proxy, printed once listening.
/// The first two lines are for scripts: the URL and the CA path. Only the
/// first carries the password: every suggestion below reads it from a
/// file only the user can read, never puts it in one others can.
// What to set is the point of starting the proxy by hand: stdout.
#[allow(clippy::disallowed_methods)]
fn announce(url: &str, ca: &Path, files: &Files) {
    use std::io::Write;
    let text = format!(
        "proxy: {url}\n\
         ca: {ca}\n\
         \n\
         # The password changes on every start; these files (mode 0600) always\n\
         # hold the current one: {url_file} (the URL), {gitconfig} (for git).\n\
         # shells, curl, Composer, npm, pip (each new shell reads the current URL):\n\
         export HTTPS_PROXY=\"$(cat {url_file})\"; export https_proxy=\"$HTTPS_PROXY\"\n\
         export SSL_CERT_FILE={bundle}   # the proxy CA plus the system CAs\n\
         # git (~/.gitconfig is readable by others: it gets the path, never the URL):\n\
         git config --global include.path {gitconfig}\n\
         # Composer (or COMPOSER_CAFILE={bundle}):\n\
         composer config --global cafile {bundle}\n",
        ca = ca.display(),
        url_file = files.url.display(),
        gitconfig = files.gitconfig.display(),
        bundle = files.bundle.display(),
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Where the proxy leaves what tools need: the URL and a git config
/// include (both 0600, rewritten on every start) and the CA bundle.
struct Files {
    url: PathBuf,
    gitconfig: PathBuf,
    bundle: PathBuf,
}

impl Files {
    fn write(dir: &Path, url: &str, bundle: &Path) -> Result<Self, ProxyError> {
        let files = Self {
            url: dir.join("url"),
            gitconfig: dir.join("gitconfig"),
            bundle: bundle.to_owned(),
        };
        ca::write_atomically(&files.url, format!("{url}\n").as_bytes())?;
        let gitconfig = format!(
            "# Written by `keygate proxy` on every start: the password changes.\n\
             [http]\n\tproxy = {}\n\tsslCAInfo = {}\n",
            git_config_value(url),
            git_config_value(&bundle.to_string_lossy()),
        );
        ca::write_atomically(&files.gitconfig, gitconfig.as_bytes())?;
        Ok(files)
    }
}

/// A git config value, quoted so that `#`, `;` and spaces stay in it.
fn git_config_value(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A line on stderr that never panics: a long-running proxy may outlive
/// the terminal it was started from.
fn note(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "keygate: {message}");
}

fn random_password() -> Result<Secret, ProxyError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ProxyError::Ca("no randomness for the proxy password".into()))?;
    Ok(Secret::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

impl Proxy {
    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        if !self.authorized(request.headers()) {
            let mut response = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "keygate proxy: password required\n",
            );
            response.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keygate\""),
            );
            // One try per connection: a client without the password does
            // not get to hold it open with request after request.
            return closing(response);
        }
        if !slot.authenticate() {
            return closing(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "keygate proxy: too many open connections; close some and try again\n",
            ));
        }
        if request.method() == Method::CONNECT {
            return self.connect(request, slot).await;
        }
        self.forward_plain(request).await
    }

    /// `Proxy-Authorization: Basic base64(any-user:password)`.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        // Exactly one: with two, which one counts would be up to whoever
        // reads them next.
        let mut values = headers.get_all(header::PROXY_AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Ok(value) = value.to_str() else {
            return false;
        };
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(given) = decoded.splitn(2, |&b| b == b':').nth(1) else {
            return false;
        };
        constant_time_eq(given, self.password.expose().as_bytes())
    }

    fn origin(&self, host: &str, port: u16) -> Option<&Origin> {
        self.origins
            .iter()
            .find(|o| o.port == port && o.host.eq_ignore_ascii_case(host))
    }

    /// `slot` goes with the tunnel: its connection counts until it closes.
    async fn connect(
        self: Arc<Self>,
        request: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        let Some(authority) = request.uri().authority().cloned() else {
            return text(
                StatusCode::BAD_REQUEST,
                "keygate proxy: CONNECT needs host:port\n",
            );
        };
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        let Some(port) = authority.port_u16() else {
            return text(
                StatusCode::BAD_REQUEST,
                "keygate proxy: CONNECT needs host:port\n",
            );
        };
        if self.origin(&host, port).is_some() {
            let config = match self.ca.server_config(&host) {
                Ok(config) => config,
                Err(error) => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        &format!("keygate proxy: {error}\n"),
                    );
                }
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let Ok(upgraded) = hyper::upgrade::on(request).await else {
                    return;
                };
                proxy
                    .intercept(TokioIo::new(upgraded), config, host, port)
                    .await;
                drop(slot);
            });
        } else {
            let connect = crate::http::connect_tcp(&host, port);
            let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            {
                Ok(stream) => stream,
                Err(error) => {
                    return text(
                        StatusCode::BAD_GATEWAY,
                        &format!("keygate proxy: cannot reach {authority}: {error}\n"),
                    );
                }
            };
            let _ = upstream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(upgraded) = hyper::upgrade::on(request).await else {
                    return;
                };
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                drop(slot);
            });
        }
        Response::new(empty())
    }

    /// Terminates TLS for a configured origin and forwards each request on
    /// the connection with the token added.
    async fn intercept(
        self: Arc<Self>,
        client: TokioIo<hyper::upgrade::Upgraded>,
        config: Arc<rustls::ServerConfig>,
        host: String,
        port: u16,
    ) {
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(client);
        let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await else {
            return;
        };
        let service = hyper::service::service_fn(move |request| {
            let proxy = self.clone();
            let host = host.clone();
            async move { Ok::<_, Infallible>(proxy.forward_with_token(request, &host, port).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(TUNNEL_HEAD_TIMEOUT)
            .max_buf_size(MAX_TUNNEL_HEAD)
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }

    async fn forward_with_token(
        &self,
        request: Request<Incoming>,
        host: &str,
        port: u16,
    ) -> Response<Body> {
        let Some(origin) = self.origin(host, port) else {
            return text(StatusCode::BAD_GATEWAY, "keygate proxy: origin vanished\n");
        };
        let token = match origin.tokens.token().await {
            Ok(token) => token,
            Err(reason) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    &format!("keygate proxy: no fresh token for {host}:{port}: {reason}\n"),
                );
            }
        };
        let authorization = present::authorization(origin.tokens.provider(), &token);
        let Ok(mut authorization) = HeaderValue::from_str(authorization.expose()) else {
            return text(
                StatusCode::BAD_GATEWAY,
                "keygate proxy: the token is not a valid header value\n",
            );
        };
        authorization.set_sensitive(true);

        let (mut parts, body) = request.into_parts();
        let authority = if port == 443 {
            host.to_owned()
        } else {
            format!("{}:{port}", bracket(host))
        };
        // A front end that routes by name would take the token wherever the
        // client's Host (or absolute URL) pointed: a request naming any host
        // but the tunnel's never goes out.
        if !names_only(&parts, host, port) {
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                &format!(
                    "keygate proxy: this tunnel is for {authority}; the request names another host\n"
                ),
            );
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let Ok(uri) = format!("https://{authority}{path}").parse::<Uri>() else {
            return text(
                StatusCode::BAD_REQUEST,
                "keygate proxy: bad request target\n",
            );
        };
        let Ok(host_header) = HeaderValue::from_str(&authority) else {
            return text(
                StatusCode::BAD_REQUEST,
                "keygate proxy: bad request target\n",
            );
        };
        parts.uri = uri;
        strip_hop_by_hop(&mut parts.headers);
        // Replaced, never forwarded alongside: the server sees one identity,
        // for the one host the token is for.
        parts.headers.insert(header::HOST, host_header);
        parts.headers.remove(header::AUTHORIZATION);
        parts.headers.insert(header::AUTHORIZATION, authorization);
        relay(
            origin
                .upstream
                .request(Request::from_parts(parts, body))
                .await,
            host,
        )
    }

    /// Absolute-form `http://` requests: passed on as they are, no token.
    async fn forward_plain(&self, request: Request<Incoming>) -> Response<Body> {
        if request.uri().scheme_str() != Some("http") || request.uri().authority().is_none() {
            return text(
                StatusCode::BAD_REQUEST,
                "keygate proxy: expected CONNECT or an absolute http:// URL\n",
            );
        }
        let host = request.uri().host().unwrap_or_default().to_owned();
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        relay(
            self.plain.request(Request::from_parts(parts, body)).await,
            &host,
        )
    }
}

/// Whether every name the request gives for its target (absolute-form
/// authority, each `Host`) is the tunnel's `host`:`port`.
fn names_only(parts: &hyper::http::request::Parts, host: &str, port: u16) -> bool {
    let same = |authority: &hyper::http::uri::Authority| {
        authority
            .host()
            .trim_matches(['[', ']'])
            .eq_ignore_ascii_case(host)
            && authority.port_u16().unwrap_or(443) == port
    };
    let target_ok = parts.uri.authority().is_none_or(same)
        && parts
            .uri
            .scheme()
            .is_none_or(|s| s == &hyper::http::uri::Scheme::HTTPS);
    target_ok
        && parts.headers.get_all(header::HOST).iter().all(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<hyper::http::uri::Authority>().ok())
                .is_some_and(|a| same(&a))
        })
}

/// Compares without an early exit, so timing tells nothing of the prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn relay(
    result: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    host: &str,
) -> Response<Body> {
    match result {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(error) => text(
            StatusCode::BAD_GATEWAY,
            &format!("keygate proxy: upstream {host} failed: {error}\n"),
        ),
    }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// `response`, after which the connection is closed.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(message.to_owned()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_users_processes_are_served_and_remote_peers_when_asked_for() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        for peer in [local, remote] {
            for asked in [false, true] {
                assert!(Owner::ThisUser.admitted(peer, asked));
                assert!(!Owner::OtherUser.admitted(peer, asked));
                assert!(!Owner::Unknown.admitted(peer, asked));
            }
        }
        assert!(Owner::NotLocal.admitted(remote, true));
        assert!(!Owner::NotLocal.admitted(remote, false));
        assert!(
            !Owner::NotLocal.admitted(local, true),
            "a loopback peer is local"
        );
    }

    #[test]
    fn a_connection_whose_owner_the_kernel_cannot_name_is_refused() {
        use crate::sys::peer::PeerError;
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        // Issue 18: a closed connection's lingering entry, or one listed
        // twice with different owners, is refused even where remote peers
        // are served.
        for peer in [local, remote] {
            for error in [PeerError::Unowned(peer), PeerError::Ambiguous(peer)] {
                assert_eq!(Owner::of(Err(error)), Owner::Unknown);
                assert!(!Owner::Unknown.admitted(peer, true));
            }
        }
        assert_eq!(Owner::of(Ok(true)), Owner::ThisUser);
        assert_eq!(Owner::of(Ok(false)), Owner::OtherUser);
        assert_eq!(Owner::of(Err(PeerError::NotFound(remote))), Owner::NotLocal);
    }

    #[test]
    fn password_comparison_needs_every_byte_and_the_length() {
        assert!(constant_time_eq(b"3f9c", b"3f9c"));
        assert!(!constant_time_eq(b"3f9c", b"3f9d"));
        assert!(!constant_time_eq(b"3f9", b"3f9c"), "a prefix is not enough");
        assert!(!constant_time_eq(b"", b"3f9c"));
    }

    #[test]
    fn one_proxy_authorization_with_the_password_and_nothing_else_passes() {
        let proxy = Proxy {
            password: Secret::new("pw".to_owned()),
            origins: Vec::new(),
            ca: LocalCa::for_tests(),
            plain: Client::builder(TokioExecutor::new()).build(tcp_connector(true)),
        };
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        let with = |values: &[String]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::PROXY_AUTHORIZATION, value.parse().unwrap());
            }
            proxy.authorized(&headers)
        };
        assert!(with(&[basic("keygate:pw")]));
        assert!(with(&[basic("anyone:pw")]));
        assert!(!with(&[]));
        assert!(!with(&[basic("keygate:px")]));
        assert!(!with(&[basic("keygate")]));
        assert!(
            !with(&[basic("keygate:pw"), basic("keygate:pw")]),
            "duplicates"
        );
        assert!(!with(&[basic("keygate:px"), basic("keygate:pw")]));
        assert!(!with(&["Bearer pw".to_owned()]));
    }

    #[test]
    fn hop_by_hop_headers_go_including_those_connection_names() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }
}
