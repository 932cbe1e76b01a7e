//! The client-credentials grant with the CI job's id token as the client's
//! credential (RFC 7523 §2.2), no secret: Microsoft Entra's federated
//! identity credential
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow#third-case-access-token-request-with-a-federated-credential>).

use crate::config::Provider;
use crate::secret::Secret;

use super::OAuthError;

pub(super) const GRANT_TYPE: &str = "client_credentials";

/// The token request: RFC 6749 §4.4.2's, the client authenticated by
/// `assertion`.
pub(super) fn request(
    provider: &Provider,
    assertion: &Secret,
) -> Result<oauth2::HttpRequest, OAuthError> {
    let scope = provider.client.scopes.join(" ");
    let mut params = vec![("grant_type", GRANT_TYPE)];
    if let Some(resource) = &provider.client.exchange.resource {
        params.push(("resource", resource));
    }
    if !scope.is_empty() {
        params.push(("scope", &scope));
    }
    super::form_request(provider, &params, Some(assertion))
}
