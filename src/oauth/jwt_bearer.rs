//! The JWT bearer grant (RFC 7523 §2.1): the CI job's id token is the
//! authorization grant itself.

use crate::config::Provider;
use crate::secret::Secret;

use super::OAuthError;

pub(super) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The token request (RFC 7523 §2.1), `assertion` as the grant.
pub(super) fn request(
    provider: &Provider,
    assertion: &Secret,
) -> Result<oauth2::HttpRequest, OAuthError> {
    let scope = provider.client.scopes.join(" ");
    let mut params = vec![
        ("grant_type", GRANT_TYPE),
        ("assertion", assertion.expose()),
    ];
    if let Some(resource) = &provider.client.exchange.resource {
        params.push(("resource", resource));
    }
    if !scope.is_empty() {
        params.push(("scope", &scope));
    }
    super::form_request(provider, &params, None)
}
