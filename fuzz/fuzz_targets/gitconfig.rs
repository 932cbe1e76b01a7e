//! The in-process git config reader, through its public entry point
//! `GitConfig::load()` (the file parser itself is private), plus
//! `GitConfig::parse_z`, and URL matching / provider resolution on what
//! they produce.
//!
//! Input: `file text` 0xFF `url` 0xFF `GIT_CONFIG_PARAMETERS` 0xFF
//! `GIT_CONFIG_KEY_0` 0xFF `GIT_CONFIG_VALUE_0` (0xFF never occurs in
//! UTF-8, so the parts stay text). The file is given to `load()` as
//! `GIT_CONFIG_GLOBAL`; `PATH` holds no `git`, so when the reader defers
//! to `git config` the fallback fails at once instead of spawning git.
//!
//! Checks: no panics anywhere; a resolved provider is for an http(s) URL
//! and its server is that URL's origin; `configured_providers` only
//! yields https origins without wildcards.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use keygate::config::{self, GitConfig, Provider};
use libfuzzer_sys::fuzz_target;
use url::Url;

mod scratch;

struct Env {
    config_file: PathBuf,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = scratch::scratch_dir("gitconfig");
        let git_dir = root.join("git-dir");
        let no_git = root.join("empty-path");
        std::fs::create_dir_all(&git_dir).unwrap();
        std::fs::create_dir_all(&no_git).unwrap();
        let config_file = root.join("global-config");
        // SAFETY: set once, before the fuzzer runs anything else; the
        // fuzzer is single-threaded.
        unsafe {
            std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
            std::env::set_var("GIT_CONFIG_GLOBAL", &config_file);
            // A repository directory of ours with no config file, so the
            // reader neither discovers the repository the fuzzer runs in
            // nor defers for a foreign owner.
            std::env::set_var("GIT_DIR", &git_dir);
            std::env::set_var("PATH", &no_git);
            for name in [
                "GIT_CONFIG_COUNT",
                "GIT_CONFIG_PARAMETERS",
                "KEYGATE_CLIENT_ID",
                "KEYGATE_CLIENT_SECRET",
                "KEYGATE_STORE",
            ] {
                std::env::remove_var(name);
            }
        }
        Env { config_file }
    })
}

/// An environment value from fuzz bytes: `set_var` refuses NUL.
fn env_value(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "")
}

fn exercise(config: &GitConfig, url: Option<&Url>) {
    let _ = config.plain("keygate", "store");
    let _ = config::store_choice(config);
    let _ = config::git_forbids_interaction(config);
    for provider in config::configured_providers(config) {
        assert_eq!(provider.server.scheme(), "https");
        assert!(!provider.server.host_str().unwrap_or_default().contains('*'));
        let _ = config::oauth_ca_files(config, &provider);
        let _ = provider.wire_username(Some("someone"));
    }
    if let Some(url) = url {
        let _ = config.for_url("keygate", url);
        let _ = config::ca_files_for(config, url);
        if let Ok(Some(provider)) = Provider::resolve(config, url) {
            assert!(matches!(url.scheme(), "https" | "http"));
            assert_eq!(provider.server, config::origin_of(url));
            let _ = config::oauth_ca_files(config, &provider);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let mut parts = data.split(|&b| b == 0xff);
    let file = parts.next().unwrap_or_default();
    let url_text = parts.next().map(String::from_utf8_lossy);
    let parameters = parts.next();
    let key0 = parts.next();
    let value0 = parts.next();

    let url = url_text.as_deref().and_then(|u| {
        Url::parse(u)
            .or_else(|_| Url::parse(&format!("https://{u}")))
            .ok()
    });

    std::fs::write(&env.config_file, file).unwrap();
    // SAFETY: the fuzzer is single-threaded.
    unsafe {
        match parameters {
            Some(p) => std::env::set_var("GIT_CONFIG_PARAMETERS", env_value(p)),
            None => std::env::remove_var("GIT_CONFIG_PARAMETERS"),
        }
        match key0 {
            Some(k) => {
                std::env::set_var("GIT_CONFIG_COUNT", "1");
                std::env::set_var("GIT_CONFIG_KEY_0", env_value(k));
                std::env::set_var("GIT_CONFIG_VALUE_0", env_value(value0.unwrap_or_default()));
            }
            None => std::env::remove_var("GIT_CONFIG_COUNT"),
        }
    }
    if let Ok(config) = GitConfig::load() {
        exercise(&config, url.as_ref());
    }
    exercise(&GitConfig::parse_z(file), url.as_ref());
});
