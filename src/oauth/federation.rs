//! Trading the CI job's own id token for an access token ("workload
//! identity federation"): find the token's source, fetch a fresh one,
//! present it through the configured grant, and when the server says no,
//! say in one line which server, grant and token, and what to check.
//!
//! The id token is fetched only here, only when a token is due, and is
//! dropped when the request is answered.

use std::time::Duration;

use url::Url;

use crate::config::{CiIdentity, Grant, Provider};
use crate::http::HttpClient;
use crate::text::escape;

use super::ci_identity::{self, Claims, Env, Found, IdToken};
use super::{Answered, OAuthError, TokenSet, described, send, token_endpoint};

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("cannot get the CI id token from {from} for the {grant} at {server}: {cause}")]
    IdToken {
        server: String,
        grant: &'static str,
        from: String,
        cause: ci_identity::CiIdentityError,
    },
    #[error(
        "{server} refused the {grant} of the CI id token from {from}: {}{}; {advice}",
        escape(code),
        described(description)
    )]
    Refused {
        server: String,
        grant: &'static str,
        from: String,
        code: String,
        description: Option<String>,
        advice: String,
    },
}

impl FederationError {
    pub fn code(&self) -> Option<&str> {
        match self {
            FederationError::Refused { code, .. } => Some(code),
            FederationError::IdToken { .. } => None,
        }
    }
}

impl From<FederationError> for OAuthError {
    fn from(error: FederationError) -> Self {
        OAuthError::Federation(Box::new(error))
    }
}

/// The grant `provider` presents its CI identity through, in words that
/// finish "refused the …".
fn grant_words(provider: &Provider, identity: &CiIdentity) -> &'static str {
    match provider.policy.grant {
        Grant::TokenExchange => "token exchange (RFC 8693)",
        Grant::JwtBearer => "jwt-bearer grant (RFC 7523)",
        _ if identity.client_assertion => "client assertion (RFC 7523, client_credentials)",
        _ => "client-credentials grant",
    }
}

/// The `grant_type` a grant sends.
pub fn grant_type(grant: Grant) -> &'static str {
    match grant {
        Grant::TokenExchange => super::token_exchange::GRANT_TYPE,
        Grant::JwtBearer => super::jwt_bearer::GRANT_TYPE,
        Grant::ClientCredentials => super::client_assertion::GRANT_TYPE,
        Grant::Code => "authorization_code",
    }
}

/// Which id-token source `provider` would use here and now, in words, or
/// why there is none: for `keygate status` and `doctor`.
pub fn source_here(provider: &Provider) -> Option<Result<String, String>> {
    let identity = provider.client.ci_identity.as_ref()?;
    Some(
        ci_identity::find(&identity.source, &ci_identity::process_env)
            .map(|found| found.describe())
            .map_err(|error| error.to_string()),
    )
}

/// A token for `provider` (ready for the network) through its grant, with
/// a CI id token fetched now from the process's environment.
pub async fn obtain(provider: &Provider, http: &HttpClient) -> Result<TokenSet, OAuthError> {
    obtain_with(provider, http, &ci_identity::process_env).await
}

/// [`obtain`], reading the environment through `env`.
pub(crate) async fn obtain_with(
    provider: &Provider,
    http: &HttpClient,
    env: Env<'_>,
) -> Result<TokenSet, OAuthError> {
    let Some(identity) = provider.client.ci_identity.as_ref() else {
        return super::client_credentials(provider, http).await;
    };
    let token_url = token_endpoint(provider)?;
    let server = token_url.as_str().to_owned();
    let grant = grant_words(provider, identity);
    // Only `auto` can find nothing.
    let configured = "the environment (idToken = auto)".to_owned();
    let id_token_error = |from: String, cause| FederationError::IdToken {
        server: server.clone(),
        grant,
        from,
        cause,
    };
    let found = ci_identity::find(&identity.source, env)
        .map_err(|cause| id_token_error(configured.clone(), cause))?;
    tracing::info!(
        source = %found.describe(),
        grant = provider.policy.grant.name(),
        server = %server,
        "presenting the CI id token"
    );
    let audience = identity
        .audience
        .clone()
        .unwrap_or_else(|| default_audience(provider, &token_url));
    let id_token = ci_identity::fetch(&found, &audience, http, provider.policy.http_timeout, env)
        .await
        .map_err(|cause| id_token_error(found.describe(), cause))?;
    let request = match provider.policy.grant {
        Grant::TokenExchange => super::token_exchange::request(provider, id_token.secret())?,
        Grant::JwtBearer => super::jwt_bearer::request(provider, id_token.secret())?,
        _ => super::client_assertion::request(provider, id_token.secret())?,
    };
    let response = send(http, request).await?;
    match super::read_token_answer(&response) {
        Ok(tokens) => Ok(tokens),
        Err(Answered::Error {
            code, description, ..
        }) => Err(refused(
            provider,
            server,
            grant,
            &found,
            &id_token,
            code,
            description,
        )
        .into()),
        Err(Answered::Unreadable(reason)) => Err(OAuthError::BadResponse(reason)),
    }
}

/// The audience asked of a CI that lets the job choose it, when
/// `idTokenAudience` is unset: the origin of the issuer, else of the
/// token endpoint.
pub fn default_audience(provider: &Provider, token_url: &Url) -> String {
    let issuer = provider
        .endpoints
        .issuer
        .as_deref()
        .and_then(|issuer| Url::parse(issuer).ok());
    issuer
        .as_ref()
        .unwrap_or(token_url)
        .origin()
        .ascii_serialization()
}

fn refused(
    provider: &Provider,
    server: String,
    grant: &'static str,
    found: &Found,
    id_token: &IdToken,
    code: String,
    description: Option<String>,
) -> FederationError {
    let claims = id_token.claims().unwrap_or_default();
    FederationError::Refused {
        server,
        grant,
        from: found.describe(),
        advice: advice(provider, &code, &claims, crate::store::unix_now()),
        code,
        description,
    }
}

/// What to check, by the server's error code and what the token says.
fn advice(provider: &Provider, code: &str, claims: &Claims, now: u64) -> String {
    let said = claims.describe();
    let token_says = if said.is_empty() {
        String::new()
    } else {
        format!("the id token says {said}; ")
    };
    if let Some(exp) = claims.exp.filter(|&exp| exp <= now) {
        let ago = Duration::from_secs(now - exp);
        return format!(
            "{token_says}it expired {ago:?} ago: the CI minted it too long before the exchange, so use a source that mints one on demand (github, buildkite) or renews it (a projected file)"
        );
    }
    match code {
        "invalid_client" | "unauthorized_client" => format!(
            "{token_says}check that the server's trust policy (a federated credential) for client {:?} names that issuer and subject and that audience (keygate.<url>.idTokenAudience), and that the client may use this grant",
            provider.client.client_id
        ),
        "unsupported_grant_type" => {
            "the server does not take this grant: see its grant_types_supported, and set keygate.<url>.grant to one it lists".to_owned()
        }
        "invalid_scope" | "invalid_target" => format!(
            "{token_says}check keygate.<url>.scopes, audience and resource against what the server grants this identity"
        ),
        _ => format!(
            "{token_says}check that the server trusts that issuer, expects that audience (keygate.<url>.idTokenAudience) and that its trust policy matches that subject"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::http::canned::Canned;

    /// `{"iss":"https://ci.example","sub":"repo:acme/demo:ref:refs/heads/main","aud":"https://auth.example","exp":4102444800}`
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NpLmV4YW1wbGUiLCJzdWIiOiJyZXBvOmFjbWUvZGVtbzpyZWY6cmVmcy9oZWFkcy9tYWluIiwiYXVkIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUiLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl";

    fn provider(settings: &str) -> Provider {
        let config = crate::config::GitConfig::parse_z(settings.as_bytes());
        Provider::resolve(&config, &Url::parse("https://g.example/").unwrap())
            .unwrap()
            .unwrap()
    }

    fn run(provider: &Provider, canned: &std::sync::Arc<Canned>) -> Result<TokenSet, OAuthError> {
        let env: HashMap<&str, &str> = [("KEYGATE_ID_TOKEN", JWT)].into();
        let env = move |name: &str| env.get(name).map(|v| (*v).to_owned());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(obtain_with(provider, &canned.client(), &env))
    }

    fn body(sent: &http::Request<Vec<u8>>) -> String {
        String::from_utf8(sent.body().clone()).unwrap()
    }

    const TOKEN: &str = r#"{"access_token":"at","token_type":"Bearer","expires_in":300,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;

    #[test]
    fn a_token_exchange_sends_the_id_token_as_subject_without_a_client() {
        let p = provider(
            "keygate.https://g.example.tokenurl\nhttps://auth.example/token\0\
             keygate.https://g.example.grant\ntoken_exchange\0\
             keygate.https://g.example.audience\nhttps://g.example\0\
             keygate.https://g.example.scopes\ngit read\0",
        );
        let canned = Canned::new();
        canned.json(200, TOKEN);
        let tokens = run(&p, &canned).unwrap();
        assert_eq!(tokens.access_token.expose(), "at");
        let sent = canned.take_sent();
        assert_eq!(
            body(&sent[0]),
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={JWT}\
                 &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token\
                 &audience=https%3A%2F%2Fg.example&scope=git+read"
            )
        );
        assert!(!sent[0].headers().contains_key("authorization"));
    }

    #[test]
    fn a_jwt_bearer_grant_names_its_public_client() {
        let p = provider(
            "keygate.https://g.example.tokenurl\nhttps://auth.example/token\0\
             keygate.https://g.example.grant\njwt_bearer\0\
             keygate.https://g.example.clientid\nci\0",
        );
        let canned = Canned::new();
        canned.json(200, TOKEN);
        run(&p, &canned).unwrap();
        assert_eq!(
            body(&canned.take_sent()[0]),
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={JWT}&client_id=ci"
            )
        );
    }

    #[test]
    fn a_client_assertion_replaces_the_secret() {
        let p = provider(
            "keygate.https://g.example.tokenurl\nhttps://login.example/t/oauth2/v2.0/token\0\
             keygate.https://g.example.clientassertion\nid_token\0\
             keygate.https://g.example.clientid\napp-id\0\
             keygate.https://g.example.scopes\n499b84ac-1321-427f-aa17-267ca6975798/.default\0",
        );
        assert_eq!(p.policy.grant, Grant::ClientCredentials, "inferred");
        let canned = Canned::new();
        canned.json(200, TOKEN);
        run(&p, &canned).unwrap();
        assert_eq!(
            body(&canned.take_sent()[0]),
            format!(
                "grant_type=client_credentials&scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default\
                 &client_id=app-id\
                 &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                 &client_assertion={JWT}"
            )
        );
    }

    #[test]
    fn a_refusal_names_server_grant_source_and_claims_never_the_token() {
        let p = provider(
            "keygate.https://g.example.tokenurl\nhttps://auth.example/token\0\
             keygate.https://g.example.grant\ntoken_exchange\0",
        );
        let canned = Canned::new();
        canned.json(
            400,
            r#"{"error":"invalid_grant","error_description":"audience mismatch"}"#,
        );
        let error = run(&p, &canned).unwrap_err();
        assert!(error.is_grant_rejected());
        let said = error.to_string();
        for part in [
            "https://auth.example/token",
            "token exchange (RFC 8693)",
            "$KEYGATE_ID_TOKEN",
            "invalid_grant (audience mismatch)",
            "aud=https://auth.example",
            "sub=repo:acme/demo:ref:refs/heads/main",
            "idTokenAudience",
        ] {
            assert!(said.contains(part), "{part:?} missing: {said}");
        }
        assert!(!said.contains(JWT) && !said.contains('\n'), "{said}");
    }

    #[test]
    fn an_expired_id_token_is_said_to_be_one() {
        let p = provider(
            "keygate.https://g.example.tokenurl\nhttps://auth.example/token\0\
             keygate.https://g.example.grant\njwt_bearer\0",
        );
        let claims = Claims {
            exp: Some(1000),
            ..Claims::default()
        };
        let said = advice(&p, "invalid_grant", &claims, 1060);
        assert!(said.contains("expired 60s ago"), "{said}");
    }

    #[test]
    fn the_default_audience_is_the_issuers_origin() {
        let token_url = Url::parse("https://auth.example:8443/realms/ci/token").unwrap();
        let p = provider("keygate.https://g.example.grant\ntoken_exchange\0");
        assert_eq!(
            default_audience(&p, &token_url),
            "https://auth.example:8443"
        );
        let p = provider(
            "keygate.https://g.example.grant\ntoken_exchange\0\
             keygate.https://g.example.issuer\nhttps://kc.example/realms/ci\0",
        );
        assert_eq!(default_audience(&p, &token_url), "https://kc.example");
    }
}
