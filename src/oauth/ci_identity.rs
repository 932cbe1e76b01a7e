//! Where a CI job's OpenID Connect id token comes from: GitHub or Forgejo
//! Actions' token request endpoint, `buildkite-agent`, a variable the CI
//! fills (GitLab's `id_tokens:`, Bitbucket, CircleCI) or a file (a
//! Kubernetes projected service-account token).
//!
//! The token is fetched when an exchange is due, a fresh one each time,
//! and lives only in memory: nothing here stores, logs or prints it.
//!
//! Written here rather than taken from `ambient-id` or `ci-id`: both
//! bring their own HTTP client (a second reqwest, native-tls by default in
//! `ci-id`), so neither would honour keygate's trust roots, timeouts and
//! test transport, and neither knows Bitbucket or Forgejo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use url::Url;

use crate::config::IdTokenSource;
use crate::http::{HttpClient, HttpError, check_endpoint};
use crate::secret::Secret;
use crate::text::escape;

/// GitHub and Forgejo Actions: set in a job allowed to request id tokens
/// (<https://docs.github.com/en/actions/reference/security/oidc>,
/// <https://forgejo.org/docs/next/user/actions/security-openid-connect>).
const ACTIONS_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const ACTIONS_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// Bitbucket Pipelines, in a step with `oidc: true`.
const BITBUCKET_TOKEN: &str = "BITBUCKET_STEP_OIDC_TOKEN";
/// CircleCI's current id token, then the older one.
const CIRCLE_TOKENS: [&str; 2] = ["CIRCLE_OIDC_TOKEN_V2", "CIRCLE_OIDC_TOKEN"];
/// The name keygate's documentation gives GitLab's `id_tokens:` entry,
/// and any CI's token a job exports itself.
pub const KEYGATE_ID_TOKEN: &str = "KEYGATE_ID_TOKEN";
/// A token file bigger than this is not an id token.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CiIdentityError {
    #[error("no CI id token was found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{}", escape(&.0.to_string()))]
    Http(#[from] HttpError),
    #[error("{what} answered HTTP {status}{}", status_advice(*status))]
    Status { what: String, status: u16 },
    #[error("{what} sent an answer keygate cannot read: {reason}")]
    Unreadable { what: String, reason: String },
    #[error("cannot read the id token file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`buildkite-agent oidc request-token` failed: {0}")]
    Command(String),
    #[error("{what} did not answer within {0:?}", .timeout)]
    Timeout { what: String, timeout: Duration },
    #[error("{what} holds no JWT")]
    NotJwt { what: String },
}

fn status_advice(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            " (the request token was refused: the job may lack `permissions: id-token: write`)"
        }
        _ => "",
    }
}

/// A CI id token, as fetched: never stored, never shown.
pub struct IdToken(Secret);

impl IdToken {
    pub fn secret(&self) -> &Secret {
        &self.0
    }

    /// What the token says about itself, read without checking the
    /// signature (the server does that): for messages and logs, which
    /// may name the claims a trust policy matches, never the token.
    pub fn claims(&self) -> Option<Claims> {
        let payload = self.0.expose().split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdToken([redacted])")
    }
}

/// The claims a trust policy matches on.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub exp: Option<u64>,
}

/// `aud` is a string or a list of them (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Audience::One(one) => f.write_str(one),
            Audience::Many(many) => f.write_str(&many.join(" ")),
        }
    }
}

impl Claims {
    /// `iss=… aud=… sub=…`, escaped: a server's trust policy compares
    /// exactly these, so an error shows them.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(iss) = &self.iss {
            parts.push(format!("iss={}", escape(iss)));
        }
        if let Some(aud) = &self.aud {
            parts.push(format!("aud={}", escape(&aud.to_string())));
        }
        if let Some(sub) = &self.sub {
            parts.push(format!("sub={}", escape(sub)));
        }
        parts.join(" ")
    }
}

/// A source with nothing left to detect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: IdTokenSource,
    /// Which CI, in words: "GitHub/Forgejo Actions".
    pub ci: &'static str,
}

impl Found {
    /// For messages: "GitHub/Forgejo Actions (ACTIONS_ID_TOKEN_REQUEST_URL)".
    pub fn describe(&self) -> String {
        match &self.source {
            IdTokenSource::Github => format!("{} ({ACTIONS_URL})", self.ci),
            IdTokenSource::Buildkite => format!("{} (buildkite-agent)", self.ci),
            IdTokenSource::Env(name) => format!("{} (${name})", self.ci),
            IdTokenSource::File(path) => format!("{} ({})", self.ci, path.display()),
            IdTokenSource::Auto => self.ci.to_owned(),
        }
    }
}

/// Reads one environment variable: unset and empty are alike.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `source` made concrete: `auto` becomes the CI the environment shows,
/// or an error that says what to set.
pub fn find(source: &IdTokenSource, env: Env<'_>) -> Result<Found, CiIdentityError> {
    let found = |source, ci| Ok(Found { source, ci });
    match source {
        IdTokenSource::Github => found(IdTokenSource::Github, "GitHub/Forgejo Actions"),
        IdTokenSource::Buildkite => found(IdTokenSource::Buildkite, "Buildkite"),
        IdTokenSource::Env(name) => found(IdTokenSource::Env(name.clone()), "the environment"),
        IdTokenSource::File(path) => found(IdTokenSource::File(path.clone()), "a file"),
        IdTokenSource::Auto => detect(env),
    }
}

/// Which CI this is, by the variables each sets; a token the job put in
/// `KEYGATE_ID_TOKEN` first, as the most deliberate.
fn detect(env: Env<'_>) -> Result<Found, CiIdentityError> {
    let set = |name: &str| env(name).is_some();
    let found = |source, ci| Ok(Found { source, ci });
    if set(KEYGATE_ID_TOKEN) {
        let ci = if set("GITLAB_CI") {
            "GitLab CI"
        } else {
            "the environment"
        };
        return found(IdTokenSource::Env(KEYGATE_ID_TOKEN.into()), ci);
    }
    if set(ACTIONS_URL) {
        return found(IdTokenSource::Github, "GitHub/Forgejo Actions");
    }
    if set(BITBUCKET_TOKEN) {
        return found(
            IdTokenSource::Env(BITBUCKET_TOKEN.into()),
            "Bitbucket Pipelines",
        );
    }
    if let Some(name) = CIRCLE_TOKENS.into_iter().find(|name| set(name)) {
        return found(IdTokenSource::Env(name.into()), "CircleCI");
    }
    if set("BUILDKITE_AGENT_ACCESS_TOKEN") {
        return found(IdTokenSource::Buildkite, "Buildkite");
    }
    // A CI that can mint one, not set up to: say how.
    let advice = if set("GITHUB_ACTIONS") || set("GITEA_ACTIONS") || set("FORGEJO_ACTIONS") {
        "this is GitHub or Forgejo Actions, but the job may not request id tokens: give it `permissions: id-token: write` (GitHub) or `enable-openid-connect: true` (Forgejo)"
    } else if set("GITLAB_CI") {
        "this is GitLab CI: add `id_tokens: { KEYGATE_ID_TOKEN: { aud: <audience> } }` to the job"
    } else if set("BITBUCKET_BUILD_NUMBER") {
        "this is Bitbucket Pipelines: add `oidc: true` to the step"
    } else if set("CIRCLECI") {
        "this is CircleCI, but CIRCLE_OIDC_TOKEN_V2 is empty: run the job in a context"
    } else {
        "set keygate.<url>.idToken to env:NAME or file:PATH, or put the token in KEYGATE_ID_TOKEN"
    };
    Err(CiIdentityError::NotFound(advice.to_owned()))
}

/// Fetches a fresh id token from `found`. `audience` goes to the CIs that
/// let the job choose it; `timeout` bounds `buildkite-agent` (requests
/// are bounded by `http`).
pub async fn fetch(
    found: &Found,
    audience: &str,
    http: &HttpClient,
    timeout: Duration,
    env: Env<'_>,
) -> Result<IdToken, CiIdentityError> {
    let what = found.describe();
    let token = match &found.source {
        IdTokenSource::Github => from_actions(audience, http, env).await?,
        IdTokenSource::Buildkite => from_buildkite(audience, timeout).await?,
        IdTokenSource::Env(name) => env(name).ok_or_else(|| {
            CiIdentityError::Unavailable(format!("the variable {name} is not set or empty"))
        })?,
        IdTokenSource::File(path) => from_file(path)?,
        IdTokenSource::Auto => {
            return Err(CiIdentityError::NotFound("nothing was detected".into()));
        }
    };
    let token = IdToken(Secret::new(token.trim()));
    if !looks_like_jwt(token.secret().expose()) {
        return Err(CiIdentityError::NotJwt { what });
    }
    tracing::debug!(source = %what, claims = %token.claims().unwrap_or_default().describe(), "fetched a CI id token");
    Ok(token)
}

/// Three base64url parts: what every CI mints. Anything else is a
/// misconfigured source, better said here than as the server's refusal.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

#[derive(Deserialize)]
struct ActionsAnswer {
    value: String,
}

/// GET `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request token
/// as a bearer credential; the answer is `{"value": "<jwt>"}`.
async fn from_actions(
    audience: &str,
    http: &HttpClient,
    env: Env<'_>,
) -> Result<String, CiIdentityError> {
    const WHAT: &str = "the GitHub/Forgejo Actions token endpoint";
    let missing = |name: &str| {
        CiIdentityError::Unavailable(format!(
            "{name} is not set: give the job `permissions: id-token: write` (GitHub) or `enable-openid-connect: true` (Forgejo)"
        ))
    };
    let raw = env(ACTIONS_URL).ok_or_else(|| missing(ACTIONS_URL))?;
    let request_token = Secret::new(env(ACTIONS_TOKEN).ok_or_else(|| missing(ACTIONS_TOKEN))?);
    let mut url = Url::parse(&raw)
        .map_err(|_| CiIdentityError::Unavailable(format!("{ACTIONS_URL} is not a URL")))?;
    check_endpoint(&url)?;
    url.query_pairs_mut().append_pair("audience", audience);
    let request = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::AUTHORIZATION,
            format!("bearer {}", request_token.expose()),
        )
        .body(Vec::new())
        .map_err(|e| CiIdentityError::Unavailable(format!("cannot build the request: {e}")))?;
    let response = http.send(request).await?;
    if !response.status().is_success() {
        return Err(CiIdentityError::Status {
            what: WHAT.into(),
            status: response.status().as_u16(),
        });
    }
    let answer: ActionsAnswer =
        serde_json::from_slice(response.body()).map_err(|_| CiIdentityError::Unreadable {
            what: WHAT.into(),
            reason: "no string member `value`".into(),
        })?;
    Ok(answer.value)
}

fn from_file(path: &Path) -> Result<String, CiIdentityError> {
    use std::io::Read;
    let error = |source| CiIdentityError::File {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(error)?
        .take(MAX_TOKEN_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(error)?;
    // Cut short, a JWT can still look like one and be sent, only for the
    // server to refuse its signature.
    if text.len() as u64 > MAX_TOKEN_BYTES {
        return Err(error(std::io::Error::other(format!(
            "it is larger than {MAX_TOKEN_BYTES} bytes, which no id token is"
        ))));
    }
    Ok(text)
}

/// `buildkite-agent oidc request-token --audience …`
/// (<https://buildkite.com/docs/agent/v3/cli-oidc>), killed when it takes
/// longer than `timeout`.
async fn from_buildkite(audience: &str, timeout: Duration) -> Result<String, CiIdentityError> {
    let child = tokio::process::Command::new("buildkite-agent")
        .args(["oidc", "request-token", "--audience", audience])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CiIdentityError::Command(format!("cannot run buildkite-agent: {e}")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| CiIdentityError::Timeout {
            what: "buildkite-agent".into(),
            timeout,
        })?
        .map_err(|e| CiIdentityError::Command(e.to_string()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(CiIdentityError::Command(format!(
            "{}{}",
            output.status,
            if last.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(last.trim()))
            }
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| CiIdentityError::Command("its output is not text".into()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::http::canned::Canned;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NpLmV4YW1wbGUiLCJzdWIiOiJyZXBvOmFjbWUvZGVtbyIsImF1ZCI6WyJhIiwiYiJdLCJleHAiOjk5fQ.c2ln";

    #[test]
    fn auto_finds_each_ci_by_its_variables() {
        let detect = |pairs: &[(&str, &str)]| find(&IdTokenSource::Auto, &env_of(pairs));
        let github = detect(&[(ACTIONS_URL, "https://x"), (ACTIONS_TOKEN, "t")]).unwrap();
        assert_eq!(github.source, IdTokenSource::Github);
        assert_eq!(
            detect(&[(BITBUCKET_TOKEN, JWT)]).unwrap().source,
            IdTokenSource::Env(BITBUCKET_TOKEN.into())
        );
        assert_eq!(
            detect(&[("CIRCLE_OIDC_TOKEN_V2", JWT)]).unwrap().ci,
            "CircleCI"
        );
        assert_eq!(
            detect(&[("BUILDKITE_AGENT_ACCESS_TOKEN", "x")])
                .unwrap()
                .source,
            IdTokenSource::Buildkite
        );
        let gitlab = detect(&[("GITLAB_CI", "true"), (KEYGATE_ID_TOKEN, JWT)]).unwrap();
        assert_eq!(gitlab.ci, "GitLab CI");
        assert_eq!(gitlab.describe(), "GitLab CI ($KEYGATE_ID_TOKEN)");
        // The job's own choice wins over what the CI offers.
        let chosen = detect(&[(ACTIONS_URL, "https://x"), (KEYGATE_ID_TOKEN, JWT)]).unwrap();
        assert_eq!(chosen.source, IdTokenSource::Env(KEYGATE_ID_TOKEN.into()));
    }

    #[test]
    fn a_ci_that_is_not_set_up_says_how() {
        let said = |pairs: &[(&str, &str)]| {
            find(&IdTokenSource::Auto, &env_of(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(said(&[("GITHUB_ACTIONS", "true")]).contains("id-token: write"));
        assert!(said(&[("GITLAB_CI", "true")]).contains("id_tokens:"));
        assert!(said(&[("BITBUCKET_BUILD_NUMBER", "7")]).contains("oidc: true"));
        assert!(said(&[]).contains("keygate.<url>.idToken"));
    }

    fn block_on<T>(work: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    }

    #[test]
    fn github_asks_for_the_audience_with_the_request_token() {
        let canned = Canned::new();
        canned.json(200, &format!(r#"{{"count":1,"value":"{JWT}"}}"#));
        let env = env_of(&[
            (
                ACTIONS_URL,
                "https://pipelines.example/oidctoken?api-version=2.0",
            ),
            (ACTIONS_TOKEN, "request-token"),
        ]);
        let found = find(&IdTokenSource::Github, &env).unwrap();
        let token = block_on(fetch(
            &found,
            "https://auth.example",
            &canned.client(),
            Duration::from_secs(5),
            &env,
        ))
        .unwrap();
        assert_eq!(token.secret().expose(), JWT);
        let sent = canned.take_sent();
        assert_eq!(
            sent[0].uri(),
            "https://pipelines.example/oidctoken?api-version=2.0&audience=https%3A%2F%2Fauth.example"
        );
        assert_eq!(sent[0].headers()["authorization"], "bearer request-token");
        let claims = token.claims().unwrap();
        assert_eq!(
            claims.describe(),
            "iss=https://ci.example aud=a b sub=repo:acme/demo"
        );
        assert_eq!(claims.exp, Some(99));
    }

    #[test]
    fn github_failures_never_repeat_the_answer() {
        let env = env_of(&[
            (ACTIONS_URL, "https://p.example/t?x=1"),
            (ACTIONS_TOKEN, "rt"),
        ]);
        let found = find(&IdTokenSource::Github, &env).unwrap();
        let canned = Canned::new();
        canned.json(403, r#"{"message":"no"}"#);
        canned.json(200, r#"{"val":"secret-looking"}"#);
        canned.json(200, r#"{"value":"not-a-jwt-secret-looking"}"#);
        let mut said = Vec::new();
        for _ in 0..3 {
            let error = block_on(fetch(
                &found,
                "aud",
                &canned.client(),
                Duration::from_secs(5),
                &env,
            ))
            .unwrap_err()
            .to_string();
            assert!(!error.contains("secret-looking"), "{error}");
            said.push(error);
        }
        assert!(said[0].contains("403") && said[0].contains("id-token: write"));
        assert!(said[1].contains("value"));
        assert!(said[2].contains("holds no JWT"));
        let unset = block_on(fetch(
            &found,
            "aud",
            &canned.client(),
            Duration::from_secs(5),
            &env_of(&[]),
        ))
        .unwrap_err()
        .to_string();
        assert!(unset.contains(ACTIONS_URL) && unset.contains("id-token: write"));
    }

    #[test]
    fn a_file_is_read_afresh_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let found = find(&IdTokenSource::File(path.clone()), &env_of(&[])).unwrap();
        let fetch_now = || {
            block_on(fetch(
                &found,
                "aud",
                &Canned::new().client(),
                Duration::from_secs(5),
                &env_of(&[]),
            ))
        };
        let missing = fetch_now().unwrap_err().to_string();
        assert!(missing.contains(&path.display().to_string()), "{missing}");
        std::fs::write(&path, format!("{JWT}\n")).unwrap();
        assert_eq!(fetch_now().unwrap().secret().expose(), JWT);
        let other = JWT.replace("c2ln", "b3RoZXI");
        std::fs::write(&path, &other).unwrap();
        assert_eq!(fetch_now().unwrap().secret().expose(), other);
        // A file too big for an id token is refused, not cut to a JWT-like
        // prefix and sent.
        let padded = format!("{JWT}{}", "A".repeat(MAX_TOKEN_BYTES as usize));
        std::fs::write(&path, &padded).unwrap();
        let too_big = fetch_now().unwrap_err().to_string();
        assert!(too_big.contains("larger than"), "{too_big}");
    }

    #[test]
    fn an_id_token_is_never_debug_printed() {
        let token = IdToken(Secret::new(JWT));
        assert!(!format!("{token:?}").contains("eyJ"));
    }
}
