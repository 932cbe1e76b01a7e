//! The proxy's local certificate authority: made on first use, its key
//! kept in the token store, and restricted by X.509 name constraints to
//! the configured hosts, so a stolen key cannot impersonate any other
//! site. Its extended key usage is `serverAuth` alone, so the key cannot
//! sign for mail, code or clients either. It is made anew whenever the set
//! of hosts (or this file's idea of a CA) changes. Leaf certificates are
//! issued per host on demand and cached in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
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
/// What the stored CA's parameters are: a CA made by an older keygate
/// (version 0: no EKU, only DNS and IP constraints) is replaced.
const CA_VERSION: u32 = 1;
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_LIFETIME: Duration = Duration::from_secs(397 * 24 * 3600);

#[derive(Serialize, Deserialize)]
struct StoredCa {
    #[serde(default)]
    version: u32,
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
                Ok(ca) if ca.hosts == hosts && ca.version == CA_VERSION => {
                    return Self::from_stored(&ca);
                }
                Ok(ca) if ca.hosts == hosts => super::note(
                    "making a new, narrower proxy CA; tools trusting the old one need the new ca.pem or bundle",
                ),
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
        crate::sys::create_private_dir(dir).map_err(|e| ProxyError::Io(dir.to_owned(), e))?;
        let ca_path = dir.join("ca.pem");
        write_atomically(&ca_path, self.cert_pem.as_bytes())?;
        let bundle_path = dir.join("ca-bundle.pem");
        let mut bundle = self.cert_pem.clone();
        if let Some(system) = system_bundle(&bundle_path) {
            bundle.push('\n');
            bundle.push_str(&system);
        }
        write_atomically(&bundle_path, bundle.as_bytes())?;
        Ok((ca_path, bundle_path))
    }
}

#[cfg(test)]
impl LocalCa {
    pub fn for_tests() -> Self {
        Self::from_stored(&generate(&["127.0.0.1".to_owned()]).unwrap()).unwrap()
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
        version: CA_VERSION,
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
    // Verifiers that chain EKUs (OpenSSL, Windows, macOS) then refuse any
    // leaf of this CA for anything but a TLS server.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut constraints =
        CustomExtension::from_oid_content(NAME_CONSTRAINTS_OID, name_constraints(hosts));
    // RFC 5280 §4.2.1.10: conforming CAs MUST mark it critical.
    constraints.set_criticality(true);
    params.custom_extensions = vec![constraints];
    params
}

const NAME_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 30];

/// GeneralName tags (RFC 5280 §4.2.1.6), context-specific and implicit.
const RFC822_NAME: u8 = 0x81;
const DNS_NAME: u8 = 0x82;
const URI: u8 = 0x86;
const IP_ADDRESS: u8 = 0x87;

/// The DER of a NameConstraints extension permitting exactly the
/// configured names. Per RFC 5280 a constraint binds only names of its own
/// type, so each type is closed explicitly: DNS, email and URI by a
/// permitted name that matches nothing real (`keygate.invalid`), IP by
/// excluding every address when no IP host is configured.
///
/// Written by hand because rcgen has no URI subtree. Directory names are
/// left open on purpose: rustls-webpki and Go's crypto/x509 reject every
/// leaf below a CA with any directoryName constraint (webpki
/// `subject_name/mod.rs`: "we don't implement this"), and the leaves have
/// no subject anyway.
fn name_constraints(hosts: &[String]) -> Vec<u8> {
    let mut permitted = Vec::new();
    let mut any_ip = false;
    for host in hosts {
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                any_ip = true;
                let mut address = ip_bytes(ip);
                address.extend(vec![0xff; address.len()]);
                permitted.extend(subtree(IP_ADDRESS, &address));
            }
            Err(_) => permitted.extend(subtree(DNS_NAME, host.as_bytes())),
        }
    }
    for tag in [DNS_NAME, RFC822_NAME, URI] {
        permitted.extend(subtree(tag, NOTHING_DNS.as_bytes()));
    }
    let mut constraints = der(0xa0, &permitted);
    if !any_ip {
        let mut excluded = subtree(IP_ADDRESS, &[0; 8]);
        excluded.extend(subtree(IP_ADDRESS, &[0; 32]));
        constraints.extend(der(0xa1, &excluded));
    }
    der(0x30, &constraints)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// GeneralSubtree: a SEQUENCE holding just the base name.
fn subtree(tag: u8, name: &[u8]) -> Vec<u8> {
    der(0x30, &der(tag, name))
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        out.push(0x80 | significant.len() as u8);
        out.extend(significant);
    }
    out.extend(content);
    out
}

/// The system's CA bundle, as tools on this machine would read it, but
/// never keygate's own bundle (`ours`): `SSL_CERT_FILE` points there once
/// a user follows the proxy's advice, and reading it back would stack one
/// more copy of the CA (and keep old CAs trusted) on every start.
fn system_bundle(ours: &Path) -> Option<String> {
    let from_env = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .map(PathBuf::from);
    first_readable(from_env.into_iter().chain(system), ours)
}

/// The first of `candidates` that can be read and is not `ours` (by any
/// path: a symlink to it counts as it).
fn first_readable(candidates: impl Iterator<Item = PathBuf>, ours: &Path) -> Option<String> {
    let ours_resolved = std::fs::canonicalize(ours).ok();
    let is_ours = |path: &Path| {
        path == ours
            || (ours_resolved.is_some() && std::fs::canonicalize(path).ok() == ours_resolved)
    };
    candidates
        .filter(|path| !is_ours(path))
        .find_map(|path| std::fs::read_to_string(path).ok())
}

/// Replaces `path` whole, readable by its owner only.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    crate::sys::write_private_atomically(path, bytes)
        .map_err(|e| ProxyError::Io(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127_bytes() {
        assert_eq!(der(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn constraints_close_every_name_type_a_tls_client_checks() {
        let contains =
            |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
        let dns_only = name_constraints(&["git.example.com".to_owned()]);
        assert!(contains(&dns_only, &subtree(DNS_NAME, b"git.example.com")));
        for tag in [DNS_NAME, RFC822_NAME, URI] {
            assert!(contains(&dns_only, &subtree(tag, NOTHING_DNS.as_bytes())));
        }
        assert!(
            contains(&dns_only, &subtree(IP_ADDRESS, &[0; 8])),
            "every IPv4 excluded"
        );
        assert!(
            contains(&dns_only, &subtree(IP_ADDRESS, &[0; 32])),
            "every IPv6 excluded"
        );
        let ip_only = name_constraints(&["127.0.0.1".to_owned()]);
        assert!(contains(
            &ip_only,
            &subtree(IP_ADDRESS, &[127, 0, 0, 1, 255, 255, 255, 255])
        ));
        assert!(!contains(&ip_only, &[0xa1]), "no excluded subtrees");
    }

    #[cfg(unix)]
    #[test]
    fn keygates_own_bundle_is_never_read_as_the_system_one() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ca-bundle.pem");
        std::fs::write(&ours, "ours").unwrap();
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&ours, &link).unwrap();
        let system = dir.path().join("system.pem");
        std::fs::write(&system, "system").unwrap();
        for first in [&ours, &link] {
            let candidates = [first.clone(), system.clone()].into_iter();
            assert_eq!(first_readable(candidates, &ours).as_deref(), Some("system"));
        }
    }
}
