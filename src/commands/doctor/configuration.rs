//! Which `keygate.<url>` section or preset applies to the URL, and
//! whether it is enough to get a token: a client id or an issuer to
//! register one at, a CI id token where the grant presents one.

use url::Url;

use super::{Check, origin_text};
use crate::config::{self, GitConfig, Provider};

/// Which `keygate.<url>` section (or preset) applies to `url`.
pub(super) fn check(config: &GitConfig, url: &Url) -> (Check, Option<Provider>) {
    const NAME: &str = "configuration";
    match Provider::resolve(config, url) {
        Ok(Some(provider)) => {
            let section = config::winning_subsection(config, "keygate", url);
            let mut detail = match (&section, config::has_preset(url)) {
                (Some(section), true) => {
                    format!("keygate.{section} over the preset for {}", host(url))
                }
                (Some(section), false) => format!("keygate.{section}"),
                (None, _) => format!("the preset for {}", host(url)),
            };
            detail.push_str(&format!(", grant {}", provider.policy.grant.name()));
            if !provider.client.client_id.is_empty() {
                detail.push_str(&format!(
                    ", client id from {}",
                    provider.client.client_id_source.describe()
                ));
            } else if provider.endpoints.issuer.is_some() {
                detail.push_str(
                    ", no client id configured: keygate registers one at the issuer (RFC 7591) and keeps it in the token store",
                );
            }
            match crate::oauth::federation::source_here(&provider) {
                Some(Ok(source)) => detail.push_str(&format!(", CI id token from {source}")),
                Some(Err(why)) => {
                    return (
                        Check::fail(
                            NAME,
                            format!("{detail}: {why}"),
                            config::set_key_command(
                                &origin_text(url),
                                config::Key::IdToken,
                                "env:<NAME>",
                            ),
                        ),
                        Some(provider),
                    );
                }
                None => {}
            }
            // A token exchange needs no client (RFC 8693 §2.1).
            if provider.client.client_id.is_empty()
                && provider.policy.token_env.is_none()
                && provider.endpoints.issuer.is_none()
                && !provider.policy.grant.presents_id_token()
            {
                let server = origin_text(url);
                return (
                    Check::fail(
                        NAME,
                        format!("{detail}: no client id"),
                        config::set_key_command(&server, config::Key::ClientId, "<id>"),
                    ),
                    Some(provider),
                );
            }
            (Check::ok(NAME, detail), Some(provider))
        }
        Ok(None) => (
            Check::fail(
                NAME,
                format!(
                    "no keygate.<url> section or preset applies to {}: keygate passes and git asks for a password",
                    origin_text(url)
                ),
                config::unconfigured_message(url),
            ),
            None,
        ),
        Err(error) => (
            Check::fail(NAME, error.to_string(), "fix the value it names"),
            None,
        ),
    }
}

fn host(url: &Url) -> &str {
    url.host_str().unwrap_or_default()
}
