//! The device authorization grant (RFC 8628), for machines without a
//! browser: show a URL and a code, poll until the person has approved.

use std::io::{IsTerminal, Write};

use oauth2::{DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse};

use super::{OAuthError, TokenSet, classify, endpoint, send, token_client};
use crate::config::Provider;
use crate::http::HttpClient;

/// Runs the device grant. oauth2 polls at the server's `interval`, adds
/// 5 s on `slow_down`, and stops on `access_denied` / `expired_token`.
pub async fn authorize_device(
    provider: &Provider,
    http: &HttpClient,
) -> Result<TokenSet, OAuthError> {
    let device_url = endpoint(
        provider.device_url.as_ref(),
        provider,
        "device authorization endpoint",
        "deviceUrl",
    )?;
    let client = token_client(provider)?
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(device_url));
    let mut request = client.exchange_device_code();
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let details: StandardDeviceAuthorizationResponse = request
        .request_async(&|request| send(http, request))
        .await
        .map_err(classify)?;

    let server = provider.server.as_str().trim_end_matches('/');
    let mut message = format!(
        "keygate: to authorize {server}, visit {}\nkeygate: and enter the code {}\n",
        details.verification_uri().as_str(),
        details.user_code().secret()
    );
    if let Some(complete) = details.verification_uri_complete() {
        message.push_str(&format!("keygate: or open {}\n", complete.secret()));
    }
    show(&message);

    client
        .exchange_device_access_token(&details)
        .request_async(
            &|request| send(http, request),
            tokio::time::sleep,
            Some(provider.login_timeout),
        )
        .await
        .map(TokenSet::from)
        .map_err(|error| match classify(error) {
            OAuthError::Rejected { code, description } if code == "access_denied" => {
                OAuthError::Denied { code, description }
            }
            OAuthError::Rejected { code, .. } if code == "expired_token" => {
                OAuthError::Timeout(provider.login_timeout.min(details.expires_in()))
            }
            other => other,
        })
}

/// Prints on stderr, and on the terminal too when stderr is not one (git
/// may have redirected it), so a person at the keyboard sees the code.
fn show(message: &str) {
    eprint!("{message}");
    if !std::io::stderr().is_terminal()
        && let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty")
    {
        let _ = tty.write_all(message.as_bytes());
    }
}
