//! git's credential-helper protocol (`git help credential`): a lossless
//! codec for every attribute git documents up to 2.47.
//!
//! Decoding follows git: lines of `key=value` up to a blank line or EOF,
//! unknown keys ignored, an empty value for an array key clears the array.
//! A line without `=`, or a NUL or CR anywhere, is an error rather than
//! something to guess around, because a helper that misreads the request
//! may hand a token to the wrong host.

use std::io::{self, BufRead, Write};

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed credential line {line}: no '=' in it")]
    MissingEquals { line: usize },
    #[error("malformed credential line {line}: key {key:?} contains a NUL or CR")]
    BadKey { line: usize, key: String },
    #[error("malformed credential line {line}: the value of {key:?} contains a NUL or CR")]
    BadValue { line: usize, key: String },
    #[error("credential input is not valid UTF-8 (line {line})")]
    NotUtf8 { line: usize },
    #[error("refusing to write {key:?}: its value contains a newline or NUL")]
    UnencodableValue { key: &'static str },
    #[error("reading the credential request failed: {0}")]
    Read(#[from] io::Error),
    #[error("writing the credential answer failed: {0}")]
    Write(io::Error),
}

/// One credential description, as git sends it to a helper or a helper
/// answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credential {
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub url: Option<String>,
    pub password_expiry_utc: Option<String>,
    pub oauth_refresh_token: Option<Secret>,
    pub wwwauth: Vec<String>,
    pub capability: Vec<String>,
    pub authtype: Option<String>,
    pub credential: Option<Secret>,
    pub ephemeral: Option<String>,
    pub state: Vec<String>,
    pub continue_: Option<String>,
    pub quit: Option<String>,
}

impl Credential {
    /// Reads one credential description: up to a blank line or EOF.
    pub fn read(input: impl BufRead) -> Result<Self, ProtocolError> {
        let mut credential = Self::default();
        for (index, line) in input.split(b'\n').enumerate() {
            let line_number = index + 1;
            let line = line?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8(line)
                .map_err(|_| ProtocolError::NotUtf8 { line: line_number })?;
            let (key, value) = line
                .split_once('=')
                .ok_or(ProtocolError::MissingEquals { line: line_number })?;
            if key.contains(['\0', '\r']) {
                return Err(ProtocolError::BadKey {
                    line: line_number,
                    key: key.to_owned(),
                });
            }
            if value.contains(['\0', '\r']) {
                return Err(ProtocolError::BadValue {
                    line: line_number,
                    key: key.to_owned(),
                });
            }
            credential.set(key, value.to_owned());
        }
        Ok(credential)
    }

    fn set(&mut self, key: &str, value: String) {
        let push = |list: &mut Vec<String>, value: String| {
            if value.is_empty() {
                list.clear();
            } else {
                list.push(value);
            }
        };
        match key {
            "protocol" => self.protocol = Some(value),
            "host" => self.host = Some(value),
            "path" => self.path = Some(value),
            "username" => self.username = Some(value),
            "password" => self.password = Some(Secret::new(value)),
            "url" => self.url = Some(value),
            "password_expiry_utc" => self.password_expiry_utc = Some(value),
            "oauth_refresh_token" => self.oauth_refresh_token = Some(Secret::new(value)),
            "wwwauth[]" => push(&mut self.wwwauth, value),
            "capability[]" => push(&mut self.capability, value),
            "authtype" => self.authtype = Some(value),
            "credential" => self.credential = Some(Secret::new(value)),
            "ephemeral" => self.ephemeral = Some(value),
            "state[]" => push(&mut self.state, value),
            "continue" => self.continue_ = Some(value),
            "quit" => self.quit = Some(value),
            _ => {}
        }
    }

    /// Writes the description followed by nothing else: git reads up to
    /// EOF. A value that would break the line framing is refused, so a
    /// hostile server cannot smuggle extra attributes through a token.
    pub fn write(&self, mut out: impl Write) -> Result<(), ProtocolError> {
        let secret = |value: &Option<Secret>| value.as_ref().map(|s| s.expose().to_owned());
        let scalars: [(&'static str, Option<String>); 13] = [
            ("protocol", self.protocol.clone()),
            ("host", self.host.clone()),
            ("path", self.path.clone()),
            ("username", self.username.clone()),
            ("password", secret(&self.password)),
            ("url", self.url.clone()),
            ("password_expiry_utc", self.password_expiry_utc.clone()),
            ("oauth_refresh_token", secret(&self.oauth_refresh_token)),
            ("authtype", self.authtype.clone()),
            ("credential", secret(&self.credential)),
            ("ephemeral", self.ephemeral.clone()),
            ("continue", self.continue_.clone()),
            ("quit", self.quit.clone()),
        ];
        // Capabilities first: git reads them before deciding how to take
        // the rest.
        let lines = self
            .capability
            .iter()
            .map(|v| ("capability[]", v.clone()))
            .chain(scalars.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
            .chain(self.wwwauth.iter().map(|v| ("wwwauth[]", v.clone())))
            .chain(self.state.iter().map(|v| ("state[]", v.clone())));

        let mut encoded = String::new();
        for (key, value) in lines {
            if value.contains(['\n', '\0', '\r']) {
                return Err(ProtocolError::UnencodableValue { key });
            }
            encoded.push_str(key);
            encoded.push('=');
            encoded.push_str(&value);
            encoded.push('\n');
        }
        let written = out.write_all(encoded.as_bytes()).and_then(|()| out.flush());
        match written {
            // git stopped listening (it was interrupted): nobody to tell.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(ProtocolError::Write),
        }
    }

    /// Whether git announced that it understands `capability`.
    pub fn announces(&self, capability: &str) -> bool {
        self.capability.iter().any(|c| c == capability)
    }

    /// The URL this request is about: from `protocol`/`host`/`path`, or
    /// from `url=` when git (or a caller) sent only that; with the
    /// request's `username`, which config URLs such as
    /// `https://alice@host` match on.
    pub fn target_url(&self) -> Option<url::Url> {
        let mut url = match (&self.protocol, &self.host) {
            (Some(protocol), Some(host)) => {
                let path = self.path.as_deref().unwrap_or("");
                url::Url::parse(&format!("{protocol}://{host}/{path}")).ok()?
            }
            _ => url::Url::parse(self.url.as_deref()?).ok()?,
        };
        if let Some(username) = self.username.as_deref().filter(|u| !u.is_empty())
            && url.username().is_empty()
        {
            url.set_username(username).ok()?;
        }
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(text: &str) -> Result<Credential, ProtocolError> {
        Credential::read(text.as_bytes())
    }

    fn encode(credential: &Credential) -> String {
        let mut out = Vec::new();
        credential.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decodes_every_documented_attribute() {
        let text = "protocol=https\nhost=example.com:8443\npath=org/repo.git\nusername=alice\n\
            password=pw\nurl=https://example.com/x\npassword_expiry_utc=1700000000\n\
            oauth_refresh_token=rt\nwwwauth[]=Basic realm=\"x\"\nwwwauth[]=Bearer\n\
            capability[]=authtype\ncapability[]=state\nauthtype=Bearer\ncredential=tok\n\
            ephemeral=1\nstate[]=keygate:a\ncontinue=1\nquit=0\n\n";
        let c = decode(text).unwrap();
        assert_eq!(c.host.as_deref(), Some("example.com:8443"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(c.wwwauth, ["Basic realm=\"x\"", "Bearer"]);
        assert_eq!(c.capability, ["authtype", "state"]);
        assert_eq!(c.credential.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(c.state, ["keygate:a"]);
        assert_eq!(c.continue_.as_deref(), Some("1"));
        assert_eq!(c.quit.as_deref(), Some("0"));
        assert_eq!(decode(&encode(&c)).unwrap(), c);
    }

    #[test]
    fn stops_at_the_blank_line_and_ignores_unknown_keys() {
        let c = decode("host=a\nfuture_key=1\n\nhost=b\n").unwrap();
        assert_eq!(c.host.as_deref(), Some("a"));
    }

    #[test]
    fn empty_array_value_clears_the_array() {
        let c = decode("wwwauth[]=Basic\nwwwauth[]=\nwwwauth[]=Bearer\n").unwrap();
        assert_eq!(c.wwwauth, ["Bearer"]);
    }

    #[test]
    fn value_may_contain_equals_signs() {
        let c = decode("password=a=b==\n").unwrap();
        assert_eq!(c.password.unwrap().expose(), "a=b==");
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(matches!(
            decode("host\n"),
            Err(ProtocolError::MissingEquals { line: 1 })
        ));
        assert!(matches!(
            decode("host=a\r\n"),
            Err(ProtocolError::BadValue { .. })
        ));
        assert!(matches!(
            decode("ho\rst=a\n"),
            Err(ProtocolError::BadKey { .. })
        ));
        assert!(matches!(
            decode("host=a\0b\n"),
            Err(ProtocolError::BadValue { .. })
        ));
        assert!(matches!(
            decode("ho\0st=a\n"),
            Err(ProtocolError::BadKey { .. })
        ));
        assert!(matches!(
            Credential::read(&b"host=\xff\n"[..]),
            Err(ProtocolError::NotUtf8 { line: 1 })
        ));
    }

    #[test]
    fn refuses_to_encode_a_value_that_breaks_framing() {
        let c = Credential {
            password: Some(Secret::new("tok\nhost=evil.example")),
            ..Credential::default()
        };
        assert!(matches!(
            c.write(Vec::new()),
            Err(ProtocolError::UnencodableValue { key: "password" })
        ));
    }

    #[test]
    fn errors_never_contain_the_secret_value() {
        let err = decode("password=s3cr3t\rX\n").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn target_url_uses_host_and_path() {
        let c = decode("protocol=https\nhost=git.example.com:8443\npath=a/b.git\n").unwrap();
        assert_eq!(
            c.target_url().unwrap().as_str(),
            "https://git.example.com:8443/a/b.git"
        );
    }

    #[test]
    fn target_url_carries_the_username_config_urls_match_on() {
        let c = decode("protocol=https\nhost=h.example\nusername=al ice\n").unwrap();
        assert_eq!(
            c.target_url().unwrap().as_str(),
            "https://al%20ice@h.example/"
        );
        let c = decode("url=https://bob@h.example/x\nusername=alice\n").unwrap();
        assert_eq!(c.target_url().unwrap().username(), "bob");
    }

    fn value() -> impl Strategy<Value = String> {
        "[^\n\r\0]{0,40}"
    }

    fn item() -> impl Strategy<Value = String> {
        "[^\n\r\0]{1,40}"
    }

    prop_compose! {
        fn credential()(
            scalars in proptest::collection::vec(proptest::option::of(value()), 13),
            wwwauth in proptest::collection::vec(item(), 0..4),
            capability in proptest::collection::vec(item(), 0..4),
            state in proptest::collection::vec(item(), 0..4),
        ) -> Credential {
            let mut s = scalars.into_iter();
            let mut next = || s.next().flatten();
            Credential {
                protocol: next(),
                host: next(),
                path: next(),
                username: next(),
                password: next().map(Secret::new),
                url: next(),
                password_expiry_utc: next(),
                oauth_refresh_token: next().map(Secret::new),
                authtype: next(),
                credential: next().map(Secret::new),
                ephemeral: next(),
                continue_: next(),
                quit: next(),
                wwwauth,
                capability,
                state,
            }
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_lossless(c in credential()) {
            prop_assert_eq!(decode(&encode(&c)).unwrap(), c);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Credential::read(&bytes[..]);
        }
    }
}
