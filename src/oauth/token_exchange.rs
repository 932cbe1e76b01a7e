//! The token exchange grant (RFC 8693): the CI job's id token is the
//! subject token, traded for an access token. A client is optional
//! (§2.1); a configured one is sent, with its secret if it has one.

use crate::config::{ID_TOKEN_TYPE, Provider};
use crate::secret::Secret;

use super::OAuthError;

pub(super) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token request (RFC 8693 §2.1), `subject` as the subject token.
pub(super) fn request(
    provider: &Provider,
    subject: &Secret,
) -> Result<oauth2::HttpRequest, OAuthError> {
    let exchange = &provider.client.exchange;
    let scope = provider.client.scopes.join(" ");
    let mut params = vec![
        ("grant_type", GRANT_TYPE),
        ("subject_token", subject.expose()),
        (
            "subject_token_type",
            exchange
                .subject_token_type
                .as_deref()
                .unwrap_or(ID_TOKEN_TYPE),
        ),
    ];
    if let Some(audience) = &exchange.audience {
        params.push(("audience", audience));
    }
    if let Some(resource) = &exchange.resource {
        params.push(("resource", resource));
    }
    if !scope.is_empty() {
        params.push(("scope", &scope));
    }
    super::form_request(provider, &params, None)
}
