//! keygate's settings: git config, read once, matched against a URL the
//! way git matches `http.<url>.*`, with built-in presets underneath.
//!
//! One module per job; this one re-exports them as a single API, so the
//! rest of the crate reads `config::…` without knowing the split.

mod baked;
mod ca_files;
mod global;
mod keys;
mod matching;
mod presets;
mod provider;
mod resolve;

pub use crate::gitconfig::GitConfig;
pub use ca_files::{ca_files_for, oauth_ca_files};
pub use global::{StoreChoice, StoreKind, git_forbids_interaction, store_choice};
pub use keys::{Key, set_key_command};
pub use matching::origin_of;
pub(crate) use matching::{url_matches, winning_subsection};
pub use presets::{BITBUCKET_REDIRECT, has_preset, registration_hint, unconfigured_message};
pub use provider::{
    AuthScheme, CiIdentity, Client, ClientAuth, ClientIdSource, Endpoints, Exchange, Grant,
    ID_TOKEN_TYPE, IdTokenSource, Policy, Provider, Redirect,
};
pub use resolve::{CLIENT_SECRET_ENV, configured_providers, keep_secret_from_env};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Git(#[from] crate::gitconfig::GitConfigError),
    #[error("invalid value {value:?} for {key}: {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Builders the unit tests of every module here share.
#[cfg(test)]
mod testing {
    use url::Url;

    use super::GitConfig;

    pub(super) fn config(pairs: &[(&str, &str)]) -> GitConfig {
        let mut raw = Vec::new();
        for (k, v) in pairs {
            raw.extend_from_slice(format!("{k}\n{v}\0").as_bytes());
        }
        GitConfig::parse_z(&raw)
    }

    pub(super) fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }
}
