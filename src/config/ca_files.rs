//! The CA files git is told to trust (`http.<url>.sslCAInfo`), looked up
//! for the hosts keygate itself talks to.

use std::path::PathBuf;

use url::Url;

use super::{GitConfig, Provider};

/// CA files for the OAuth endpoints: `http.<url>.sslCAInfo` matched
/// against the token endpoint, as git would for a request there.
pub fn oauth_ca_files(config: &GitConfig, provider: &Provider) -> Vec<PathBuf> {
    let issuer = provider
        .endpoints
        .issuer
        .as_deref()
        .and_then(|i| Url::parse(i).ok());
    let target = provider
        .endpoints
        .token_url
        .as_ref()
        .or(issuer.as_ref())
        .unwrap_or(&provider.server);
    ca_files_for(config, target)
}

/// The CA files git is told to trust for `url` (`http.<url>.sslCAInfo`).
pub fn ca_files_for(config: &GitConfig, url: &Url) -> Vec<PathBuf> {
    config
        .for_url("http", url)
        .remove("sslcainfo")
        .map(PathBuf::from)
        .into_iter()
        .collect()
}
