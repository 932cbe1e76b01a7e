//! The proxy's local certificate authority: made on first use, its key
//! kept in the token store, and restricted by X.509 name constraints to
//! the configured hosts, so a stolen key cannot impersonate any other
//! site. It is made anew whenever the set of hosts changes. Leaf
//! certificates are issued per host on demand and cached in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::store::TokenStore;

use super::ProxyError;

/// Where the CA lives in the store.
const STORE_NAME: &str = "proxy-ca";
/// Never matches a real name: permitting only it (and the configured
/// names) shuts every other DNS name out when only IPs are configured.
const NOTHING_DNS: &str = "keygate.invalid";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_LIFETIME: Duration = Duration::from_secs(397 * 24 * 3600);

#[derive(Serialize, Deserialize)]
struct StoredCa {
    hosts: Vec<String>,
    cert_pem: String,
    key_pem: String,
}

pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl LocalCa {
    /// The CA for `hosts` from the store, or a new one (saved) when there
    /// is none or it was made for other hosts.
    pub fn load_or_create(store: &dyn TokenStore, hosts: &[String]) -> Result<Self, ProxyError> {
        let mut hosts = hosts.to_vec();
        hosts.sort();
        hosts.dedup();
        if let Some(stored) = store.load_secret(STORE_NAME)? {
            match serde_json::from_str::<StoredCa>(stored.expose()) {
                Ok(ca) if ca.hosts == hosts => return Self::from_stored(&ca),
                Ok(_) => super::note("the configured hosts changed; making a new proxy CA"),
                Err(_) => super::note("the stored proxy CA is unreadable; making a new one"),
            }
        }
        let ca = generate(&hosts)?;
        let json = serde_json::to_string(&ca).map_err(|e| ProxyError::Ca(e.to_string()))?;
        store.save_secret(STORE_NAME, &Secret::new(json))?;
        Self::from_stored(&ca)
    }

    fn from_stored(stored: &StoredCa) -> Result<Self, ProxyError> {
        let key = KeyPair::from_pem(&stored.key_pem).map_err(ca_error)?;
        // The issuer needs the CA's name and key, which its parameters
        // give again: the leaves' authority key id matches the CA's.
        let issuer = Issuer::new(ca_params(&stored.hosts), key);
        Ok(Self {
            issuer,
            cert_pem: stored.cert_pem.clone(),
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// TLS settings presenting a certificate for `host`, chosen from the
    /// CONNECT target rather than SNI (clients send no SNI for an IP).
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
        let mut leaves = self
            .leaves
            .lock()
            .map_err(|_| ProxyError::Ca("leaf cache poisoned".into()))?;
        if let Some(config) = leaves.get(host) {
            return Ok(config.clone());
        }
        let config = Arc::new(self.issue(host)?);
        leaves.insert(host.to_owned(), config.clone());
        Ok(config)
    }

    fn issue(&self, host: &str) -> Result<rustls::ServerConfig, ProxyError> {
        let key = KeyPair::generate().map_err(ca_error)?;
        let mut params = CertificateParams::default();
        // No subject: with only the SAN, no client mistakes a CN for a host
        // name against the name constraints.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into().map_err(ca_error)?),
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + LEAF_LIFETIME).into();
        let cert = params.signed_by(&key, &self.issuer).map_err(ca_error)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Ca(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key_der)
            .map_err(|e| ProxyError::Ca(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Writes the CA certificate (public) to `dir/ca.pem`, and a bundle
    /// of it plus the system's CAs to `dir/ca-bundle.pem` for tools that
    /// take one CA file for every host. Returns both paths.
    pub fn write_files(&self, dir: &Path) -> Result<(PathBuf, PathBuf), ProxyError> {
        crate::store::create_private_dir(dir).map_err(|e| ProxyError::Io(dir.to_owned(), e))?;
        let ca_path = dir.join("ca.pem");
        write_atomically(&ca_path, self.cert_pem.as_bytes())?;
        let mut bundle = self.cert_pem.clone();
        if let Some(system) = system_bundle() {
            bundle.push('\n');
            bundle.push_str(&system);
        }
        let bundle_path = dir.join("ca-bundle.pem");
        write_atomically(&bundle_path, bundle.as_bytes())?;
        Ok((ca_path, bundle_path))
    }
}

fn ca_error(error: rcgen::Error) -> ProxyError {
    ProxyError::Ca(error.to_string())
}

fn generate(hosts: &[String]) -> Result<StoredCa, ProxyError> {
    let key = KeyPair::generate().map_err(ca_error)?;
    let mut params = ca_params(hosts);
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + CA_LIFETIME).into();
    let cert = params.self_signed(&key).map_err(ca_error)?;
    Ok(StoredCa {
        hosts: hosts.to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn ca_params(hosts: &[String]) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "keygate local proxy CA");
    name.push(DnType::OrganizationName, "keygate");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(name_constraints(hosts));
    params
}

/// Permits exactly the configured names. Per RFC 5280 a constraint only
/// binds names of its own type, so each type is closed explicitly: DNS by
/// a permitted name that matches nothing, IP by excluding every address.
fn name_constraints(hosts: &[String]) -> NameConstraints {
    let mut permitted = vec![GeneralSubtree::DnsName(NOTHING_DNS.to_owned())];
    let mut excluded = Vec::new();
    let mut any_ip = false;
    for host in hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                any_ip = true;
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                    ip, prefix,
                )));
            }
            Err(_) => permitted.push(GeneralSubtree::DnsName(host.clone())),
        }
    }
    if !any_ip {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
            [0; 4], 0,
        )));
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
            [0; 16], 0,
        )));
    }
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    }
}

/// The system's CA bundle, as tools on this machine would read it.
fn system_bundle() -> Option<String> {
    let candidates = [
        std::env::var("SSL_CERT_FILE")
            .ok()
            .filter(|p| !p.is_empty()),
        Some("/etc/ssl/certs/ca-certificates.crt".to_owned()),
        Some("/etc/pki/tls/certs/ca-bundle.crt".to_owned()),
        Some("/etc/ssl/cert.pem".to_owned()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|path| std::fs::read_to_string(path).ok())
}

/// Replaces `path` whole, readable by its owner only.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    crate::store::write_private_atomically(path, bytes)
        .map_err(|e| ProxyError::Io(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_close_both_name_types() {
        let dns_only = name_constraints(&["git.example.com".to_owned()]);
        assert_eq!(dns_only.permitted_subtrees.len(), 2);
        assert_eq!(dns_only.excluded_subtrees.len(), 2, "every IP excluded");
        let ip_only = name_constraints(&["127.0.0.1".to_owned()]);
        assert!(ip_only.excluded_subtrees.is_empty());
        assert!(
            matches!(&ip_only.permitted_subtrees[0], GeneralSubtree::DnsName(n) if n == NOTHING_DNS)
        );
    }
}
