//! The servers a login or refresh talks to: reached as git would reach
//! them (the same CA files), their clocks compared with ours, and the
//! issuer's metadata fetched and checked without being cached.

use std::time::Duration;

use url::Url;

use super::{Check, origin_text};
use crate::config::{self, GitConfig, Provider};
use crate::http::{self, HttpClient};
use crate::oauth::discovery;
use crate::store::unix_now;

/// Each server check gives up after this: doctor answers in bounded time
/// even when a server swallows the connection.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew past which fresh tokens look expired or not yet valid; a
/// minute is well inside any refresh margin yet above network jitter.
const MAX_SKEW_SECONDS: i64 = 60;

/// The git server and the OAuth token endpoint (or issuer): each reached
/// once, its clock compared with ours.
pub(super) fn checks(config: &GitConfig, url: &Url, provider: Option<&Provider>) -> Vec<Check> {
    let mut targets = vec![("git server", config::origin_of(url))];
    if let Some(provider) = provider {
        let oauth = provider.endpoints.token_url.clone().or_else(|| {
            provider
                .endpoints
                .issuer
                .as_deref()
                .and_then(|i| Url::parse(i).ok())
        });
        if let Some(oauth) = oauth
            && config::origin_of(&oauth) != targets[0].1
        {
            targets.push(("oauth server", oauth));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return vec![Check::fail(
                "server",
                format!("cannot start the network checks: {error}"),
                "try again",
            )];
        }
    };
    let mut checks: Vec<Check> = targets
        .into_iter()
        .map(|(name, target)| runtime.block_on(server(config, name, &target)))
        .collect();
    if let Some(provider) = provider
        && let Some(issuer) = provider.endpoints.issuer.as_deref()
    {
        checks.push(runtime.block_on(issuer_metadata(config, provider, issuer)));
    }
    checks
}

/// The issuer's metadata, fetched as a login would (RFC 8414, then OpenID
/// Connect) and checked the same way, but never written to the metadata
/// cache: doctor changes nothing. Whether it names what this
/// configuration leaves to it: the token endpoint, and a registration
/// endpoint when no client id is configured.
async fn issuer_metadata(config: &GitConfig, provider: &Provider, issuer: &str) -> Check {
    const NAME: &str = "issuer metadata";
    let ca_files = Url::parse(issuer)
        .map(|url| config::ca_files_for(config, &url))
        .unwrap_or_default();
    let client = match HttpClient::new(&ca_files, NETWORK_TIMEOUT) {
        Ok(client) => client,
        Err(error) => return Check::fail(NAME, error.to_string(), "fix http.sslCAInfo"),
    };
    // Two locations may be tried: the whole check gets one timeout.
    let fetched = tokio::time::timeout(NETWORK_TIMEOUT, discovery::fetch(&client, issuer)).await;
    let metadata = match fetched {
        Ok(Ok(metadata)) => metadata,
        Ok(Err(error)) => {
            return Check::fail(
                NAME,
                error.to_string(),
                "check keygate.<url>.issuer: the https:// URL the server names as its issuer",
            );
        }
        Err(_) => {
            return Check::fail(
                NAME,
                format!(
                    "{issuer} did not answer within {}s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                "check the network, the proxy and keygate.<url>.issuer",
            );
        }
    };
    if provider.endpoints.token_url.is_none() && metadata.token_endpoint.is_none() {
        return Check::fail(
            NAME,
            format!("{issuer} names no token endpoint, and none is configured"),
            config::set_key_command(
                &origin_text(&provider.server),
                config::Key::TokenUrl,
                "<url>",
            ),
        );
    }
    if provider.client.client_id.is_empty()
        && provider.policy.token_env.is_none()
        && metadata.registration_endpoint.is_none()
    {
        return Check::fail(
            NAME,
            format!("{issuer} offers no client registration, and no client id is configured"),
            config::set_key_command(
                &origin_text(&provider.server),
                config::Key::ClientId,
                "<id>",
            ),
        );
    }
    let mut named = Vec::new();
    if metadata.token_endpoint.is_some() {
        named.push("token");
    }
    if metadata.authorization_endpoint.is_some() {
        named.push("authorization");
    }
    if metadata.device_authorization_endpoint.is_some() {
        named.push("device");
    }
    if metadata.registration_endpoint.is_some() {
        named.push("registration");
    }
    Check::ok(
        NAME,
        format!(
            "{issuer} publishes its metadata, issuer matching; endpoints: {}",
            named.join(", ")
        ),
    )
}

async fn server(config: &GitConfig, name: &'static str, target: &Url) -> Check {
    if let Err(error) = http::check_endpoint(target) {
        return Check::fail(name, error.to_string(), "use an https:// URL");
    }
    let ca_files = config::ca_files_for(config, target);
    let trust = match ca_files.first() {
        Some(file) => format!("trusting the system roots and {}", file.display()),
        None => "trusting the system roots".to_owned(),
    };
    let client = match HttpClient::new(&ca_files, NETWORK_TIMEOUT) {
        Ok(client) => client,
        Err(error) => return Check::fail(name, error.to_string(), "fix http.sslCAInfo"),
    };
    let request = match ::http::Request::get(target.as_str()).body(Vec::new()) {
        Ok(request) => request,
        Err(error) => return Check::fail(name, error.to_string(), "check the URL"),
    };
    let response = match client.send(request).await {
        Ok(response) => response,
        Err(error) => {
            return Check::fail(
                name,
                format!("{} unreachable ({trust}): {error}", origin_text(target)),
                "check the network, the proxy and http.sslCAInfo; git cannot reach it either",
            );
        }
    };
    let reached = format!(
        "{} answered {} ({trust})",
        origin_text(target),
        response.status().as_u16()
    );
    let date = response
        .headers()
        .get(::http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let Some(date) = date else {
        return Check::ok(name, format!("{reached}; no Date header to compare clocks"));
    };
    let theirs = i64::try_from(date.as_secs()).unwrap_or(i64::MAX);
    let ours = i64::try_from(unix_now()).unwrap_or(i64::MAX);
    let skew = ours.saturating_sub(theirs);
    if skew.abs() > MAX_SKEW_SECONDS {
        let direction = if skew > 0 { "ahead of" } else { "behind" };
        Check::fail(
            name,
            format!(
                "{reached}; this clock is {}s {direction} the server's: fresh tokens look expired or not yet valid",
                skew.abs()
            ),
            "set the clock right (enable NTP: `timedatectl set-ntp true`)",
        )
    } else {
        Check::ok(
            name,
            format!("{reached}; clocks agree within {}s", skew.abs()),
        )
    }
}
