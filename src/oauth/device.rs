//! The device authorization grant (RFC 8628), for machines without a
//! browser: show a URL and a code, poll until the person has approved.
//!
//! The poll loop is keygate's own, not oauth2's: that one stops at the
//! first HTTP-200 error GitHub sends, adds a fixed 5 s on `slow_down`
//! where GitHub's answer carries the new interval, and gives up on the
//! first network hiccup of a wait that can last 15 minutes.

use std::time::Duration;

use oauth2::{DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse};
use tokio::time::Instant;

use super::{
    Answered, OAuthError, TokenSet, classify, endpoint, qr, read_token_answer, send, token_client,
    token_request, waiting,
};
use crate::config::Provider;
use crate::http::HttpClient;
use crate::text::escape;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5: "the client MUST use a reasonable default polling
/// interval" — and adds 5 s on each `slow_down`.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Back-off for a poll that failed on the way (RFC 8628 §3.5 asks for
/// exponential back-off on connection timeouts), capped.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Consecutive failed polls after which the server counts as gone.
const MAX_FAILED_POLLS: u32 = 4;

/// Runs the device grant: asks for a code, shows it, polls the token
/// endpoint until the person approves, denies, or the code expires.
///
/// It polls for as long as the device code lives (`expires_in`: 900 s on
/// GitHub), cut short only by a `loginTimeout` the user set.
pub async fn authorize_device(
    provider: &Provider,
    http: &HttpClient,
) -> Result<TokenSet, OAuthError> {
    let device_url = endpoint(
        provider.endpoints.device_url.as_ref(),
        provider,
        "device authorization endpoint",
        crate::config::Key::DeviceUrl,
    )?;
    let client = token_client(provider)?
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(device_url));
    let mut request = client.exchange_device_code();
    for scope in &provider.client.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    // GitHub refuses here with `device_flow_disabled` when the app's
    // "Enable Device Flow" box is not ticked.
    let details: StandardDeviceAuthorizationResponse = request
        .request_async(&|request| send(http, request))
        .await
        .map_err(|error| stopped(classify(error)))?;

    let server = provider.server.as_str().trim_end_matches('/');
    let verification_uri = details.verification_uri().as_str();
    let complete = details
        .verification_uri_complete()
        .map(|c| c.secret().as_str());
    waiting::show(
        &prompt(
            server,
            verification_uri,
            details.user_code().secret(),
            complete,
        ),
        |terminal| {
            let screen = qr::Screen::of_this_process(provider.policy.qr, terminal);
            qr::drawing(&screen, complete.into_iter().chain([verification_uri]))
        },
    );

    let lifetime = match provider.policy.explicit_login_timeout {
        Some(cap) => details.expires_in().min(cap),
        None => details.expires_in(),
    };
    let deadline = Instant::now() + lifetime;
    let what = format!("you to enter the code at {}", escape(verification_uri));
    tokio::select! {
        tokens = poll(provider, http, &details, lifetime, deadline) => tokens,
        never = waiting::status(&what, deadline) => match never {},
    }
}

/// Polls the token endpoint until the person approves or denies, the code
/// expires, or the server stops answering.
async fn poll(
    provider: &Provider,
    http: &HttpClient,
    details: &StandardDeviceAuthorizationResponse,
    lifetime: Duration,
    deadline: Instant,
) -> Result<TokenSet, OAuthError> {
    let mut interval = details.interval().max(Duration::from_secs(1));
    let mut failed_polls = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(OAuthError::Timeout(lifetime));
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        if Instant::now() >= deadline {
            return Err(OAuthError::Timeout(lifetime));
        }
        let poll = token_request(
            provider,
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", details.device_code().secret()),
            ],
        )?;
        let response = match send(http, poll).await {
            Ok(response) => response,
            // A network failure or a 5xx while the person is typing the
            // code: wait longer and ask again, a few times.
            Err(error) => {
                failed_polls += 1;
                if failed_polls >= MAX_FAILED_POLLS {
                    return Err(error.into());
                }
                tracing::debug!(%error, "device poll failed; backing off");
                interval = interval.saturating_mul(2).min(MAX_BACKOFF);
                continue;
            }
        };
        failed_polls = 0;
        match read_token_answer(&response) {
            Ok(tokens) => return Ok(tokens),
            Err(Answered::Error {
                code,
                description,
                interval: new_interval,
            }) => match code.as_str() {
                "authorization_pending" => {}
                // GitHub: "The error response includes the new interval
                // that you must use."
                "slow_down" => {
                    interval = new_interval
                        .filter(|i| !i.is_zero())
                        .unwrap_or(interval + SLOW_DOWN_STEP)
                        .min(lifetime);
                }
                _ => return Err(stopped(OAuthError::Rejected { code, description })),
            },
            Err(Answered::Unreadable(what)) => return Err(OAuthError::BadResponse(what)),
        }
    }
}

/// The codes that end a device login get their own words.
fn stopped(error: OAuthError) -> OAuthError {
    match error {
        OAuthError::Rejected { code, description } if code == "access_denied" => {
            OAuthError::Denied { code, description }
        }
        OAuthError::Rejected { code, description }
            if matches!(
                code.as_str(),
                "expired_token" | "incorrect_device_code" | "device_flow_disabled"
            ) =>
        {
            OAuthError::DeviceStopped { code, description }
        }
        other => other,
    }
}

/// What the person is told to do: the URL and code are the server's words,
/// escaped so a hostile server cannot make them look like others.
fn prompt(server: &str, verification_uri: &str, user_code: &str, complete: Option<&str>) -> String {
    let mut message = format!(
        "keygate: to authorize {server}, visit {}\nkeygate: and enter the code {}\n",
        escape(verification_uri),
        escape(user_code)
    );
    if let Some(complete) = complete {
        message.push_str(&format!("keygate: or open {}\n", escape(complete)));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_or_url_with_invisible_characters_is_shown_escaped() {
        // The server would have the person type a code other than the one
        // it shows, or visit a host that reads like the real one.
        let shown = prompt(
            "https://git.example.com",
            "https://github.com\u{200b}.evil.example/login/device",
            "WDJB\u{2060}-MJHT\u{2028}",
            Some("https://github.com\u{feff}.evil.example/?code=WDJB\u{ad}"),
        );
        assert!(
            shown.contains("visit https://github.com\\u{200b}.evil.example/login/device"),
            "{shown}"
        );
        assert!(
            shown.contains("enter the code WDJB\\u{2060}-MJHT\\u{2028}\n"),
            "{shown}"
        );
        assert!(
            shown.contains("or open https://github.com\\u{feff}.evil.example/?code=WDJB\\u{ad}"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 3, "{shown}");
    }
}
