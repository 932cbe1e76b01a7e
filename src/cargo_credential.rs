//! cargo's credential-provider protocol, version 1 (cargo's
//! `credential-provider-protocol.md`, and the `cargo-credential` crate
//! whose shapes these mirror): one JSON object per line. The provider
//! says hello (`{"v":[1]}`), cargo sends a request, the provider answers
//! `{"Ok":{...}}` or `{"Err":{...}}`, and exits 0 once cargo closes stdin,
//! an error answer included (cargo reads a non-zero exit as the provider
//! failing, whatever it answered).
//!
//! The `cargo-credential` crate is not used: its `main` owns stdin and
//! stdout and swaps them for the console around each request (keygate
//! reaches a person through its own interaction policy), and it brings
//! `time` and `anyhow` for what is a few serde types here.
//!
//! Unknown fields are ignored and an unknown `kind` or `operation` reads
//! as [`Action::Unknown`] / [`Operation::Unknown`], as in cargo's own
//! types, so a newer cargo's request still gets an answer.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The protocol versions keygate speaks.
pub const VERSIONS: &[u32] = &[1];

#[derive(Debug, thiserror::Error)]
pub enum CargoProtocolError {
    #[error("cargo sent a request keygate cannot read: {0}")]
    Malformed(serde_json::Error),
    #[error("cargo asked for credential protocol version {0}; keygate speaks version 1")]
    Version(u32),
    #[error("writing the answer to cargo failed: {0}")]
    Write(io::Error),
}

/// `{"v":[1]}`: the first line, before cargo sends anything.
pub fn write_hello(out: impl Write) -> Result<(), CargoProtocolError> {
    #[derive(Serialize)]
    struct Hello {
        v: &'static [u32],
    }
    write_line(out, &Hello { v: VERSIONS })
}

/// One request from cargo.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Request {
    pub v: u32,
    pub registry: Registry,
    #[serde(flatten)]
    pub action: Action,
    /// The arguments configured after the program in `credential-provider`,
    /// then those of `cargo login -- ARGS`: cargo passes them here, not on
    /// the command line.
    #[serde(default)]
    pub args: Vec<String>,
}

impl Request {
    /// Reads one request line.
    ///
    /// # Errors
    ///
    /// The line is no request, or one of a protocol version other than 1.
    pub fn read(line: &str) -> Result<Self, CargoProtocolError> {
        let request: Request = serde_json::from_str(line).map_err(CargoProtocolError::Malformed)?;
        if !VERSIONS.contains(&request.v) {
            return Err(CargoProtocolError::Version(request.v));
        }
        Ok(request)
    }
}

/// The registry a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Registry {
    /// `sparse+https://host/index/`, or a git index's URL.
    pub index_url: String,
    /// The registry's name in cargo's configuration, when it has one.
    #[serde(default)]
    pub name: Option<String>,
    /// Headers of the 401 that made cargo ask, when one did.
    #[serde(default)]
    pub headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    Get(Operation),
    Login(LoginOptions),
    Logout,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoginOptions {
    /// A token typed or piped into `cargo login`.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub login_url: Option<String>,
}

/// What cargo wants the token for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case")]
pub enum Operation {
    Read,
    Publish {
        name: String,
        vers: String,
        cksum: String,
    },
    Yank {
        name: String,
        vers: String,
    },
    Unyank {
        name: String,
        vers: String,
    },
    Owners {
        name: String,
    },
    #[serde(other)]
    Unknown,
}

impl Operation {
    /// Its name in the protocol, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Publish { .. } => "publish",
            Operation::Yank { .. } => "yank",
            Operation::Unyank { .. } => "unyank",
            Operation::Owners { .. } => "owners",
            Operation::Unknown => "unknown",
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Answer {
    Get {
        /// The whole `Authorization` header value cargo sends
        /// (`Bearer …`): cargo adds no scheme of its own.
        token: Secret,
        #[serde(flatten)]
        cache: Cache,
        /// The token serves every operation, so cargo may reuse a `read`
        /// token to publish.
        operation_independent: bool,
    },
    Login,
    Logout,
}

/// How long cargo may keep the token in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "cache", rename_all = "kebab-case")]
pub enum Cache {
    /// Until `expiration` (Unix seconds); cargo asks again once less than
    /// a minute is left.
    Expires { expiration: u64 },
    /// For the rest of this cargo run.
    Session,
}

/// An error answer: the first two send cargo to its next provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Refusal {
    /// Not a registry keygate is configured for.
    UrlNotSupported,
    /// Nothing kept for it (`cargo logout` of an account keygate holds no
    /// tokens for).
    NotFound,
    OperationNotSupported,
    /// Anything else: cargo shows `message` and stops.
    Other {
        message: String,
        #[serde(rename = "caused-by", skip_serializing_if = "Vec::is_empty")]
        caused_by: Vec<String>,
    },
}

impl Refusal {
    /// A failure in keygate's words, made safe for the terminal cargo
    /// prints it on.
    pub fn other(message: &str) -> Self {
        Refusal::Other {
            message: crate::text::escape_line(message),
            caused_by: Vec::new(),
        }
    }
}

/// Writes the answer to one request as one line. serde_json escapes every
/// control character, so nothing in a token can end the line early.
pub fn write_answer(
    out: impl Write,
    answer: &Result<Answer, Refusal>,
) -> Result<(), CargoProtocolError> {
    #[derive(Serialize)]
    enum Wire<'a> {
        Ok(&'a Answer),
        Err(&'a Refusal),
    }
    let wire = match answer {
        Ok(answer) => Wire::Ok(answer),
        Err(refusal) => Wire::Err(refusal),
    };
    write_line(out, &wire)
}

fn write_line(mut out: impl Write, value: &impl Serialize) -> Result<(), CargoProtocolError> {
    let mut line = serde_json::to_vec(value).map_err(|e| CargoProtocolError::Write(e.into()))?;
    line.push(b'\n');
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(CargoProtocolError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(answer: &Result<Answer, Refusal>) -> String {
        let mut out = Vec::new();
        write_answer(&mut out, answer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hello_lists_version_1() {
        let mut out = Vec::new();
        write_hello(&mut out).unwrap();
        assert_eq!(out, b"{\"v\":[1]}\n");
    }

    /// The request cargo 1.95 sends for `credential-provider =
    /// ["/path/keygate", "cargo"]` after a 401.
    #[test]
    fn reads_a_read_request_as_cargo_sends_it() {
        let line = r#"{"v":1,"registry":{"index-url":"sparse+https://r.example/index/","name":"kg","headers":["HTTP/1.1 401 Unauthorized","www-authenticate: Cargo login_url=\"https://r.example/me\""]},"kind":"get","operation":"read","args":["cargo"]}"#;
        let request = Request::read(line).unwrap();
        assert_eq!(
            request.registry.index_url,
            "sparse+https://r.example/index/"
        );
        assert_eq!(request.registry.name.as_deref(), Some("kg"));
        assert_eq!(request.registry.headers.len(), 2);
        assert_eq!(request.action, Action::Get(Operation::Read));
        assert_eq!(request.args, ["cargo"]);
    }

    #[test]
    fn reads_every_operation_and_action() {
        let read = |rest: &str| {
            Request::read(&format!(
                r#"{{"v":1,"registry":{{"index-url":"u"}},{rest}}}"#
            ))
            .unwrap()
            .action
        };
        assert_eq!(
            read(r#""kind":"get","operation":"publish","name":"a","vers":"1.0.0","cksum":"ab""#),
            Action::Get(Operation::Publish {
                name: "a".into(),
                vers: "1.0.0".into(),
                cksum: "ab".into()
            })
        );
        assert_eq!(
            read(r#""kind":"get","operation":"yank","name":"a","vers":"1.0.0""#),
            Action::Get(Operation::Yank {
                name: "a".into(),
                vers: "1.0.0".into()
            })
        );
        assert_eq!(
            read(r#""kind":"get","operation":"owners","name":"a""#),
            Action::Get(Operation::Owners { name: "a".into() })
        );
        assert_eq!(
            read(r#""kind":"get","operation":"rename","name":"a""#),
            Action::Get(Operation::Unknown)
        );
        assert_eq!(
            read(r#""kind":"login","token":"pasted","login-url":"https://r.example/me""#),
            Action::Login(LoginOptions {
                token: Some(Secret::new("pasted")),
                login_url: Some("https://r.example/me".into())
            })
        );
        assert_eq!(read(r#""kind":"logout""#), Action::Logout);
        assert_eq!(read(r#""kind":"future","extra":1"#), Action::Unknown);
    }

    #[test]
    fn refuses_other_versions_and_garbage_without_echoing_it() {
        let error = Request::read(r#"{"v":2,"registry":{"index-url":"u"},"kind":"logout"}"#);
        assert!(matches!(error, Err(CargoProtocolError::Version(2))));
        let error = Request::read(r#"{"v":1,"kind":"login","token":"s3cr3t"}"#).unwrap_err();
        assert!(matches!(error, CargoProtocolError::Malformed(_)));
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn a_login_token_is_never_shown_by_debug() {
        let line = r#"{"v":1,"registry":{"index-url":"u"},"kind":"login","token":"s3cr3t"}"#;
        let shown = format!("{:?}", Request::read(line).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn answers_are_the_json_cargo_reads() {
        let get = Ok(Answer::Get {
            token: Secret::new("Bearer t"),
            cache: Cache::Expires {
                expiration: 1_693_942_857,
            },
            operation_independent: true,
        });
        assert_eq!(
            answer(&get),
            "{\"Ok\":{\"kind\":\"get\",\"token\":\"Bearer t\",\"cache\":\"expires\",\"expiration\":1693942857,\"operation_independent\":true}}\n"
        );
        let session = Ok(Answer::Get {
            token: Secret::new("t"),
            cache: Cache::Session,
            operation_independent: true,
        });
        assert_eq!(
            answer(&session),
            "{\"Ok\":{\"kind\":\"get\",\"token\":\"t\",\"cache\":\"session\",\"operation_independent\":true}}\n"
        );
        assert_eq!(
            answer(&Ok(Answer::Login)),
            "{\"Ok\":{\"kind\":\"login\"}}\n"
        );
        assert_eq!(
            answer(&Ok(Answer::Logout)),
            "{\"Ok\":{\"kind\":\"logout\"}}\n"
        );
        assert_eq!(
            answer(&Err(Refusal::UrlNotSupported)),
            "{\"Err\":{\"kind\":\"url-not-supported\"}}\n"
        );
        assert_eq!(
            answer(&Err(Refusal::NotFound)),
            "{\"Err\":{\"kind\":\"not-found\"}}\n"
        );
        assert_eq!(
            answer(&Err(Refusal::OperationNotSupported)),
            "{\"Err\":{\"kind\":\"operation-not-supported\"}}\n"
        );
        assert_eq!(
            answer(&Err(Refusal::other("no token\u{1b}[2J"))),
            "{\"Err\":{\"kind\":\"other\",\"message\":\"no token\\\\u{1b}[2J\"}}\n"
        );
    }

    #[test]
    fn a_token_cannot_break_the_line() {
        let get = Ok(Answer::Get {
            token: Secret::new("t\n{\"Ok\":{}}\r\0"),
            cache: Cache::Session,
            operation_independent: true,
        });
        let line = answer(&get);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
    }
}
