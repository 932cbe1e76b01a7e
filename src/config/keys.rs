//! Every git config key keygate reads, declared once: reads take a
//! [`Key`], and keygate-config(5) is rendered from the same table.

/// Declares [`Key`] and its documentation in one place: a key cannot be
/// read (reads take a `Key`) without a line in keygate-config(5), which is
/// rendered from [`Key::ALL`].
macro_rules! keys {
    ($($variant:ident: $scope:ident $name:literal, default $default:literal, $meaning:literal;)*) => {
        /// Every git config key keygate reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Key {
            $($variant,)*
        }

        impl Key {
            /// Every key, in the order the manual lists them.
            pub const ALL: &[Key] = &[$(Key::$variant,)*];

            /// The variable as documented (`clientId`); git compares it
            /// without regard to case.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Key::$variant => $name,)*
                }
            }

            /// Whether it is `keygate.<url>.NAME` (matched against the URL)
            /// or plain `keygate.NAME`.
            pub const fn per_url(self) -> bool {
                match self {
                    $(Key::$variant => matches!(KeyScope::$scope, KeyScope::Url),)*
                }
            }

            /// The value in force when the key is unset, in words; empty
            /// when there is none.
            pub const fn default(self) -> &'static str {
                match self {
                    $(Key::$variant => $default,)*
                }
            }

            /// What it means, in a sentence or two of plain text.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Key::$variant => $meaning,)*
                }
            }
        }
    };
}

enum KeyScope {
    Url,
    Global,
}

keys! {
    Issuer: Url "issuer", default "",
        "Issuer URL (https; http only on loopback). Endpoints not set by their own keys come from its RFC 8414 or OpenID Connect metadata, whose issuer must match exactly; the metadata is cached a day.";
    ClientId: Url "clientId", default "env KEYGATE_CLIENT_ID, else one baked into the build by its packager",
        "OAuth client id. Unset with an issuer whose metadata has a registration endpoint: keygate registers a client (RFC 7591) and keeps it in the token store.";
    ClientSecret: Url "clientSecret", default "env KEYGATE_CLIENT_SECRET (client-credentials grant only), else the one baked in with the client id",
        "Client secret, for confidential and CI clients.";
    AuthUrl: Url "authUrl", default "the preset's, else the issuer's metadata",
        "Authorization endpoint.";
    TokenUrl: Url "tokenUrl", default "the preset's, else the issuer's metadata",
        "Token endpoint.";
    DeviceUrl: Url "deviceUrl", default "the preset's, else the issuer's metadata",
        "Device authorization endpoint (RFC 8628).";
    RevokeUrl: Url "revokeUrl", default "the preset's, else the issuer's metadata",
        "Revocation endpoint (RFC 7009), used by keygate logout.";
    Scopes: Url "scopes", default "the preset's, else none",
        "Space-separated scopes to ask for.";
    Redirect: Url "redirect", default "loopback; on a terminal where no browser opens, device when a device endpoint is known, else paste",
        "How the authorization comes back: loopback, scheme, device, or paste (keygate prints the authorization URL and asks on the terminal for the address the browser ends on; the loopback listener keeps waiting, so an SSH port forward finishes the login without pasting).";
    Grant: Url "grant", default "client_credentials when there is a secret (or a client assertion) and no authorization endpoint, else code",
        "The OAuth grant: code, client_credentials, token_exchange (RFC 8693) or jwt_bearer (RFC 7523), the last two presenting the CI job's id token (see idToken).";
    AuthType: Url "authType", default "basic",
        "How git sends the token: basic (user name and the token as password) or bearer (an Authorization: Bearer header, git 2.46 or later).";
    RedirectUrl: Url "redirectUrl", default "http://127.0.0.1/callback",
        "Redirect URI. Without a port a free ephemeral one is taken and the path kept; with redirect = scheme, a private-use URI such as com.example.keygate:/callback.";
    Username: Url "username", default "the preset's, else the one git asks for, else oauth2",
        "User name handed to git (and to Docker's clients) with the token.";
    TokensFrom: Url "tokensFrom", default "",
        "Another URL whose login this host shares: its client, endpoints, scopes and tokens, so one login and one refresh serve both (a container registry and its forge: https://gitlab.com for registry.gitlab.com). The forge's token is then sent to this host. Only this host's username and authType still apply. The URL names no user: a shared login is the forge's default account.";
    RefreshMargin: Url "refreshMargin", default "300",
        "Seconds: a token counts as stale when less than the smaller of this and a quarter of its lifetime is left.";
    LoginTimeout: Url "loginTimeout", default "300",
        "Seconds to wait for the browser's redirect (or the address pasted on the terminal).";
    Timeout: Url "timeout", default "30",
        "Seconds for each request to the OAuth server.";
    ClientAuth: Url "clientAuth", default "basic, or the preset's",
        "How a client secret is sent: basic (HTTP Basic) or post (in the form body).";
    ClientAssertion: Url "clientAssertion", default "",
        "id_token: the client authenticates with the CI job's id token (RFC 7523 client assertion, as an Entra federated credential takes it) instead of a client secret.";
    IdToken: Url "idToken", default "auto",
        "Where the CI job's OpenID Connect id token comes from, for grant = token_exchange or jwt_bearer and clientAssertion = id_token: auto (detect GitHub or Forgejo Actions, Bitbucket Pipelines, CircleCI, Buildkite, or KEYGATE_ID_TOKEN), github, buildkite, env:NAME or file:PATH (an absolute path, read afresh each time). Fetched anew for each exchange, never stored.";
    IdTokenAudience: Url "idTokenAudience", default "the origin of the issuer, else of the token endpoint",
        "The audience asked of a CI that lets the job choose it (GitHub and Forgejo Actions, Buildkite): what the server's trust policy expects in the id token's aud.";
    Audience: Url "audience", default "",
        "The audience parameter of a token exchange (RFC 8693): the service the new token is for.";
    Resource: Url "resource", default "",
        "The resource parameter (RFC 8707) sent with a token exchange, jwt_bearer or client-assertion request.";
    SubjectTokenType: Url "subjectTokenType", default "urn:ietf:params:oauth:token-type:id_token",
        "The subject_token_type of a token exchange; some servers want urn:ietf:params:oauth:token-type:jwt.";
    TokenEnv: Url "tokenEnv", default "",
        "Name of an environment variable holding a ready token (such as CI_JOB_TOKEN): served as is, never stored.";
    Qr: Url "qr", default "true",
        "Whether the device grant also draws its verification URL (and the paste prompt its authorization URL) as a QR code, for a phone to scan. Only on a terminal wide enough, never when CI is set.";
    Store: Global "store", default "auto",
        "Where tokens are kept: auto, keychain or file. The environment variable KEYGATE_STORE overrides it.";
    KernelCache: Global "kernelCache", default "true",
        "Whether fresh access tokens are cached in the kernel's per-user keyring in front of the Secret Service (Linux). KEYGATE_KERNEL_CACHE=on or off overrides it.";
}

impl Key {
    /// The key as a person writes it: `keygate.<url>.clientId`,
    /// `keygate.store`.
    pub fn full_name(self) -> String {
        if self.per_url() {
            format!("keygate.<url>.{}", self.name())
        } else {
            format!("keygate.{}", self.name())
        }
    }
}

/// The command that sets `keygate.<server>.<key>` to what a person fills in
/// for `blank`, quoted for the shell: `server` comes from a URL, whose host
/// may hold `$(…)`.
pub fn set_key_command(server: &str, key: Key, blank: &str) -> String {
    crate::text::git_config_command(&[
        format!("keygate.{server}.{}", key.name()).as_str().into(),
        crate::text::Word::Blank(blank),
    ])
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// keygate-config(5) is rendered from `Key`, so it documents every key
    /// read only if every read goes through `Key`. The compiler holds
    /// `Provider::resolve` and `store_choice` to that (their lookups take a
    /// `Key`); this holds the rest of the source to it: no `keygate.*`
    /// variable is read by a string of its own.
    #[test]
    fn keygate_keys_are_read_only_through_key() {
        fn sources(dir: &std::path::Path, files: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, files);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        assert!(files.len() > 10, "found the sources");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // A file's unit tests may read whatever they like. Only the
            // `tests` module is cut: other `#[cfg(test)]` items (a test
            // transport, an include) stand before code that is scanned.
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            // One spelling of the path on every platform (Windows under Wine too).
            let name = file
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string()
                .replace('\\', "/");
            assert!(
                !code.contains(r#"plain("keygate", ""#),
                "{name}: reads a keygate key by name; add it to `Key` and read it through that"
            );
            let url_reads = code.matches(r#"for_url("keygate""#).count();
            let allowed = match name.as_str() {
                // Provider::resolve, whose lookup takes a `Key`.
                "src/config/resolve.rs" => 1,
                // setup compares what it is about to write (`Key`s) with
                // what is there.
                "src/commands/setup.rs" => 1,
                _ => 0,
            };
            assert_eq!(
                url_reads, allowed,
                "{name}: reads keygate.<url>.* outside `Key`"
            );
            // config's own modules look keys up by `Key` alone.
            if name.starts_with("src/config/") {
                assert!(!code.contains(r#"get(""#), "{name}: a lookup by string");
            }
        }
    }

    #[test]
    fn key_names_are_unique_and_every_one_has_a_meaning() {
        for (i, key) in Key::ALL.iter().enumerate() {
            assert!(!key.meaning().is_empty(), "{key:?}");
            assert!(
                Key::ALL[..i]
                    .iter()
                    .all(|other| !other.name().eq_ignore_ascii_case(key.name())),
                "{key:?} twice"
            );
        }
        assert_eq!(Key::Store.full_name(), "keygate.store");
        assert_eq!(Key::ClientId.full_name(), "keygate.<url>.clientId");
    }
}
