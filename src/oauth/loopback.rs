//! The loopback redirect listener (RFC 8252 §7.3): 127.0.0.1 only, one
//! redirect accepted, and only with the state this login sent.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use url::Url;

use super::OAuthError;
use crate::secret::Secret;

pub const DEFAULT_REDIRECT: &str = "http://127.0.0.1/callback";

pub struct Loopback {
    listener: TcpListener,
    redirect_uri: Url,
}

/// What the one accepted redirect said.
type Outcome = Result<Secret, OAuthError>;

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
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| OAuthError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| OAuthError::Listen {
                addr: addr.to_string(),
                source,
            })?
            .port();
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

    /// Serves until one redirect for our path arrives (or `timeout`), and
    /// returns the authorization code it carried.
    pub async fn wait(self, expected_state: &str, timeout: Duration) -> Outcome {
        let (sender, receiver) = oneshot::channel::<Outcome>();
        let gate = Arc::new(Gate {
            path: self.redirect_uri.path().to_owned(),
            state: expected_state.to_owned(),
            sender: Mutex::new(Some(sender)),
        });
        let mut connections = JoinSet::new();
        let accept_loop = async {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let gate = gate.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let gate = gate.clone();
                        async move { Ok::<_, Infallible>(gate.answer(&request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        let outcome = tokio::select! {
            outcome = receiver => outcome.unwrap_or(Err(OAuthError::Timeout(timeout))),
            _ = accept_loop => Err(OAuthError::Timeout(timeout)),
            _ = tokio::time::sleep(timeout) => Err(OAuthError::Timeout(timeout)),
        };
        // Let the browser receive its page before the listener goes away.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        outcome
    }
}

struct Gate {
    path: String,
    state: String,
    sender: Mutex<Option<oneshot::Sender<Outcome>>>,
}

impl Gate {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != self.path {
            return page(
                StatusCode::NOT_FOUND,
                "Not found",
                "This is keygate's login listener.",
            );
        }
        let Some(sender) = self.sender.lock().ok().and_then(|mut s| s.take()) else {
            return page(
                StatusCode::GONE,
                "Already done",
                "This login has already received its redirect.",
            );
        };
        let outcome = parse_redirect(request.uri().query().unwrap_or(""), &self.state);
        let response = match &outcome {
            Ok(_) => page(
                StatusCode::OK,
                "Signed in",
                "keygate has your authorization. You can close this tab and return to the terminal.",
            ),
            Err(error) => page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                &format!("keygate could not complete the login: {error}."),
            ),
        };
        let _ = sender.send(outcome);
        response
    }
}

/// Reads `code`, `state` and `error` from a redirect's query. The state is
/// checked first: a redirect with the wrong state says nothing trustworthy,
/// not even an error.
pub fn parse_redirect(query: &str, expected_state: &str) -> Outcome {
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
        .ok_or_else(|| OAuthError::BadResponse("the redirect carried no authorization code".into()))
}

fn page(status: StatusCode, title: &str, message: &str) -> Response<Full<Bytes>> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>keygate: {title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\">\
         <h1>{title}</h1><p>{}</p></body></html>",
        escape(message)
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
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

    #[tokio::test]
    async fn refuses_localhost_and_https_redirects() {
        assert!(Loopback::bind("http://localhost/callback").await.is_err());
        assert!(Loopback::bind("https://127.0.0.1/callback").await.is_err());
        let lb = Loopback::bind(DEFAULT_REDIRECT).await.unwrap();
        assert_ne!(lb.redirect_uri().port(), Some(0));
        assert_eq!(lb.redirect_uri().path(), "/callback");
    }
}
