//! The one HTTP client keygate talks to OAuth servers with: rustls with
//! the ring provider, explicit trust roots, no redirects, bounded time and
//! bounded response size.
//!
//! Building it reads the system CA store (a few milliseconds), so callers
//! build it only when a request is actually due.
//!
//! Names are resolved by [`Resolver`], never by libc's `getaddrinfo`: the
//! release binary is a static PIE, and a static glibc would load the NSS
//! modules of the glibc it was built against at run time, which can fail
//! or crash after the system's libc is upgraded.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolveHosts, ResolverConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;

use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Token responses are small; anything bigger is a misbehaving server.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no usable trusted CA certificates (system store and configured files are empty)")]
    NoRoots,
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("building the HTTP client failed: {0}")]
    Build(reqwest::Error),
    #[error("request to {host} failed: {reason}")]
    Transport { host: String, reason: String },
    #[error("response from {host} is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge { host: String },
    #[error("refusing plain http:// endpoint {0}: only https, or http on loopback, is allowed")]
    InsecureEndpoint(String),
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
}

/// Refuses `http://` except on loopback, where TLS buys nothing and test
/// and development servers live.
pub fn check_endpoint(url: &Url) -> Result<(), HttpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(HttpError::InsecureEndpoint(url.to_string())),
    }
}

/// Whether `url` names this machine by its host: an IP literal in
/// 127.0.0.0/8 or `::1`, or `localhost`. A name that merely resolves to
/// loopback does not count: the URL is what a server can choose.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Trust anchors: the system store (which honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` the way OpenSSL does), `SSL_CERT_FILE` itself, and the
/// files git is configured to trust.
pub fn root_store(extra_ca_files: &[PathBuf]) -> Result<rustls::RootCertStore, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping part of the system CA store");
    }
    roots.add_parsable_certificates(native.certs);

    // A stale SSL_CERT_FILE in the environment should not break keygate
    // when the system store or git's own setting suffices; a CA file git
    // is configured with must exist, as git itself insists.
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        match read_pem_certs(&PathBuf::from(path)) {
            Ok(certs) => {
                roots.add_parsable_certificates(certs);
            }
            Err(error) => tracing::debug!(%error, "ignoring SSL_CERT_FILE"),
        }
    }
    for path in extra_ca_files {
        roots.add_parsable_certificates(read_pem_certs(path)?);
    }
    if roots.is_empty() {
        return Err(HttpError::NoRoots);
    }
    Ok(roots)
}

fn read_pem_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, HttpError> {
    use rustls_pki_types::pem::PemObject;
    let ca_error = |source| HttpError::CaFile {
        path: path.to_owned(),
        source,
    };
    let pem = std::fs::read(path).map_err(ca_error)?;
    Ok(rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect())
}

/// The client config every TLS connection keygate opens uses.
pub fn tls_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(extra_ca_files)?)
        .with_no_client_auth();
    Ok(config)
}

/// The system resolver configuration, read by keygate itself: `/etc/hosts`
/// first, then the name servers, search list and options of
/// `/etc/resolv.conf` (hickory-resolver). Built on first use, so a
/// connector that never looks a name up never reads those files.
#[derive(Clone, Default)]
pub struct Resolver(Arc<OnceLock<TokioResolver>>);

const RESOLV_CONF: &str = "/etc/resolv.conf";

impl Resolver {
    /// Socket addresses (port 0) for `host`, IPv4 and IPv6 both, so the
    /// connector can fall back from one family to the other.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, HttpError> {
        let error = |reason: String| HttpError::Resolve {
            host: host.to_owned(),
            reason,
        };
        let resolver = self.get().map_err(|e| error(e.to_string()))?;
        let ips = resolver
            .lookup_ip(host)
            .await
            .map_err(|e| error(e.to_string()))?;
        Ok(ips.iter().map(|ip| SocketAddr::new(ip, 0)).collect())
    }

    fn get(&self) -> Result<&TokioResolver, hickory_resolver::ResolveError> {
        if let Some(resolver) = self.0.get() {
            return Ok(resolver);
        }
        let provider = TokioConnectionProvider::default();
        // Without a resolv.conf, glibc asks a name server on the local
        // machine; do the same rather than fail names /etc/hosts knows.
        let mut builder = if Path::new(RESOLV_CONF).exists() {
            TokioResolver::builder(provider)?
        } else {
            let local = [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            let servers = NameServerConfigGroup::from_ips_clear(&local, 53, true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                provider,
            )
        };
        builder.options_mut().use_hosts_file = ResolveHosts::Always;
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(self.0.get_or_init(|| builder.build()))
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

/// A TCP connection to `host:port` (the proxy's CONNECT tunnels), trying
/// each address [`Resolver`] finds in turn.
pub async fn connect_tcp(host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => Resolver::default()
            .lookup(host)
            .await
            .map_err(std::io::Error::other)?
            .into_iter()
            .map(|addr| SocketAddr::new(addr.ip(), port))
            .collect(),
    };
    tokio::net::TcpStream::connect(addrs.as_slice()).await
}

type Lookup =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, HttpError>> + Send>>;

/// For hyper-util's `HttpConnector::new_with_resolver` (the proxy).
impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = HttpError;
    type Future = Lookup;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move { Ok(resolver.lookup(name.as_str()).await?.into_iter()) })
    }
}

/// For reqwest (the OAuth client).
impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addrs: reqwest::dns::Addrs =
                Box::new(resolver.lookup(name.as_str()).await?.into_iter());
            Ok(addrs)
        })
    }
}

/// A request's whole answer, or why there is none.
pub type Answer<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, HttpError>> + Send + 'a>>;

/// What sends keygate's requests to OAuth servers: one request in, the
/// whole (bounded) response out. The real one is reqwest with the trust
/// roots and limits [`HttpClient::new`] sets; tests put canned answers
/// behind it and read back the exact requests. One boxed-future method,
/// so it can sit behind `dyn` in a cheaply cloned [`HttpClient`] and no
/// caller of the client changes.
pub trait Transport: Send + Sync {
    fn send(&self, request: http::Request<Vec<u8>>) -> Answer<'_>;
}

/// The client the OAuth code holds: a [`Transport`], the real one unless
/// built with [`HttpClient::with_transport`].
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// `timeout` bounds each whole request, connection included.
    pub fn new(extra_ca_files: &[PathBuf], timeout: Duration) -> Result<Self, HttpError> {
        Ok(Self::with_transport(Arc::new(Reqwest::new(
            extra_ca_files,
            timeout,
        )?)))
    }

    /// A client whose requests go to `transport`.
    pub fn with_transport(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }

    /// Sends one request and reads the whole (bounded) response; the
    /// shape oauth2's `AsyncHttpClient` expects.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        self.transport.send(request).await
    }
}

/// The real transport.
struct Reqwest {
    inner: reqwest::Client,
}

impl Transport for Reqwest {
    fn send(&self, request: http::Request<Vec<u8>>) -> Answer<'_> {
        Box::pin(self.send(request))
    }
}

impl Reqwest {
    fn new(extra_ca_files: &[PathBuf], timeout: Duration) -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(extra_ca_files)?)
            // A token endpoint has no reason to redirect, and following one
            // could carry a code or client secret to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .no_proxy()
            .dns_resolver(Arc::new(Resolver::default()))
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpError::Build)?;
        Ok(Self { inner })
    }

    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let host = request.uri().host().unwrap_or_default().to_owned();
        let transport = |error: reqwest::Error| HttpError::Transport {
            host: host.clone(),
            reason: describe(&error),
        };
        let request = reqwest::Request::try_from(request).map_err(transport)?;
        let mut response = self.inner.execute(request).await.map_err(transport)?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge { host });
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError::Transport {
            host,
            reason: e.to_string(),
        })
    }
}

/// reqwest's error chain, without the URL (which is already in the message
/// around it) and down to the root cause, which is what a user can act on.
fn describe(error: &reqwest::Error) -> String {
    let mut reason = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "transport error".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

/// A [`Transport`] for unit tests: answers from a script, in order, and
/// keeps every request it was sent, whole, for the test to assert.
#[cfg(test)]
pub(crate) mod canned {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::{Answer, HttpClient, HttpError, Transport};

    /// A request as sent: method, URL, headers, body.
    pub(crate) type Sent = http::Request<Vec<u8>>;

    #[derive(Default)]
    pub(crate) struct Canned {
        answers: Mutex<VecDeque<http::Response<Vec<u8>>>>,
        sent: Mutex<Vec<Sent>>,
    }

    impl Canned {
        pub(crate) fn new() -> Arc<Self> {
            Arc::default()
        }

        /// The client whose requests this answers.
        pub(crate) fn client(self: &Arc<Self>) -> HttpClient {
            HttpClient::with_transport(self.clone())
        }

        /// Queues an answer with `status`, `headers` and `body`.
        pub(crate) fn answer(&self, status: u16, headers: &[(&str, &str)], body: &str) {
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            let response = response.body(body.as_bytes().to_vec()).unwrap();
            self.answers.lock().unwrap().push_back(response);
        }

        /// A JSON answer.
        pub(crate) fn json(&self, status: u16, body: &str) {
            self.answer(status, &[("content-type", "application/json")], body);
        }

        /// The requests sent so far, taken out.
        pub(crate) fn take_sent(&self) -> Vec<Sent> {
            std::mem::take(&mut *self.sent.lock().unwrap())
        }
    }

    impl Transport for Canned {
        fn send(&self, request: http::Request<Vec<u8>>) -> Answer<'_> {
            let host = request.uri().host().unwrap_or_default().to_owned();
            self.sent.lock().unwrap().push(request);
            let answer = self.answers.lock().unwrap().pop_front();
            // No script line left: the code under test sent a request the
            // test did not expect; a transport error keeps it visible in
            // `take_sent` rather than panicking inside the flow.
            Box::pin(async move {
                answer.ok_or(HttpError::Transport {
                    host,
                    reason: "no canned answer left".into(),
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        let ok = |s: &str| check_endpoint(&Url::parse(s).unwrap()).is_ok();
        assert!(ok("https://auth.example.com/token"));
        assert!(ok("http://127.0.0.1:8080/token"));
        assert!(ok("http://[::1]:8080/token"));
        assert!(ok("http://localhost/token"));
        assert!(!ok("http://auth.example.com/token"));
        assert!(!ok("http://127.0.0.1.evil.example/token"));
    }

    #[test]
    fn localhost_resolves_and_connects_without_libc() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let addrs = Resolver::default().lookup("localhost").await.unwrap();
            assert!(!addrs.is_empty(), "no address for localhost");
            assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let stream = connect_tcp("localhost", port).await.unwrap();
            assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
        });
    }
}
