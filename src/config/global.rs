//! The settings that hold whatever the URL (`KeyScope::Global` in the key
//! table, and git's own `credential.interactive`): where tokens are kept,
//! and whether a person may be asked.

use super::{ConfigError, GitConfig, Key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Auto,
    Keychain,
    File,
}

/// Where tokens are kept: `keygate.store` (or `KEYGATE_STORE`), and
/// whether fresh access tokens may also be cached in the kernel's
/// per-user keyring in front of the keychain (`keygate.kernelCache`, or
/// `KEYGATE_KERNEL_CACHE`; on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreChoice {
    pub kind: StoreKind,
    pub kernel_cache: bool,
}

/// `keygate.store`, overridden by `KEYGATE_STORE`.
pub fn store_choice(config: &GitConfig) -> Result<StoreChoice, ConfigError> {
    let from_env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let store = from_env("KEYGATE_STORE");
    let kind = match store
        .as_deref()
        .or(config.plain("keygate", Key::Store.name()))
    {
        None | Some("auto") => StoreKind::Auto,
        Some("keychain") => StoreKind::Keychain,
        Some("file") => StoreKind::File,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: Key::Store.full_name(),
                value: other.to_owned(),
                expected: "auto, keychain or file",
            });
        }
    };
    let cache = from_env("KEYGATE_KERNEL_CACHE");
    let kernel_cache = match cache.as_deref() {
        Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
            key: "KEYGATE_KERNEL_CACHE".to_owned(),
            value: value.to_owned(),
            expected: "on or off",
        })?,
        None => match config.plain("keygate", Key::KernelCache.name()) {
            Some(value) => parse_bool(value).ok_or_else(|| ConfigError::Invalid {
                key: Key::KernelCache.full_name(),
                value: value.to_owned(),
                expected: "true or false",
            })?,
            None => true,
        },
    };
    Ok(StoreChoice { kind, kernel_cache })
}

/// A boolean as git spells them.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

/// git's `credential.interactive` (2.46+): `false` or `never` forbid
/// asking a person.
pub fn git_forbids_interaction(config: &GitConfig) -> bool {
    config.plain("credential", "interactive").is_some_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "no" | "off" | "0" | "never"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::config;

    #[test]
    fn key_table_defaults_are_the_store_defaults() {
        // What `store_choice` answers with nothing configured.
        let choice = store_choice(&GitConfig::default());
        if std::env::var_os("KEYGATE_STORE").is_none()
            && std::env::var_os("KEYGATE_KERNEL_CACHE").is_none()
        {
            let choice = choice.unwrap();
            assert_eq!(Key::Store.default(), "auto");
            assert_eq!(choice.kind, StoreKind::Auto);
            assert_eq!(Key::KernelCache.default(), choice.kernel_cache.to_string());
        }
    }

    #[test]
    fn parses_git_config_z_output() {
        let c = GitConfig::parse_z(b"keygate.store\nfile\0credential.interactive\0");
        assert_eq!(c.plain("keygate", "store"), Some("file"));
        assert_eq!(c.plain("credential", "interactive"), Some("true"));
    }

    #[test]
    fn interactive_false_or_never() {
        assert!(git_forbids_interaction(&config(&[(
            "credential.interactive",
            "never"
        )])));
        assert!(git_forbids_interaction(&config(&[(
            "credential.interactive",
            "false"
        )])));
        assert!(!git_forbids_interaction(&config(&[(
            "credential.interactive",
            "true"
        )])));
    }
}
