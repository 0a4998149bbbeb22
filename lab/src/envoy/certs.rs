//! A mesh's certificates, made per run and never checked in: one CA and,
//! per node, a key and a certificate whose SANs carry the node's SPIFFE
//! identity (`spiffe://cluster.local/ns/lab/sa/<node>`, as Istio issues
//! them) plus the host names and addresses it is reached by. Everything is
//! written as PEM files into a directory the run owns (and removes).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The trust domain of every identity connlab issues (Istio's default).
pub const TRUST_DOMAIN: &str = "cluster.local";
/// The namespace of every identity connlab issues.
pub const NAMESPACE: &str = "lab";
/// The CA certificate's file name in the directory.
pub const CA_FILE: &str = "ca.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate for `{node}`: {source}")]
    Generate {
        node: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("certificate for `{node}`: `{name}` is not a valid host name or address")]
    BadName { node: String, name: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The SPIFFE identity connlab gives `node`.
pub fn spiffe_id(node: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{node}")
}

/// A CA that issues node certificates into one directory.
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// One node's files (in the authority's directory) and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub spiffe_id: String,
}

impl Authority {
    /// Makes a fresh CA (ECDSA P-256, valid from a day ago for two days: a
    /// lab run never outlives it, clock skew between containers never
    /// precedes it) and writes its certificate to `dir/ca.pem`.
    pub fn create(dir: &Path) -> Result<Authority, CertError> {
        let failed = |source| CertError::Generate {
            node: "CA".into(),
            source,
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = name("connlab lab CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.self_signed(&key).map_err(failed)?;
        write(&dir.join(CA_FILE), &cert.pem())?;
        Ok(Authority {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate every node trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// Issues `node`'s key and certificate (`<node>.key`, `<node>.pem`),
    /// usable as a server and as a client: SANs are its SPIFFE identity
    /// plus each of `hosts` (a DNS name or an IP address).
    pub fn issue(&self, node: &str, hosts: &[&str]) -> Result<NodeCert, CertError> {
        let failed = |source| CertError::Generate {
            node: node.into(),
            source,
        };
        let id = spiffe_id(node);
        let mut sans = vec![SanType::URI(id.as_str().try_into().map_err(failed)?)];
        for host in hosts {
            let bad = || CertError::BadName {
                node: node.into(),
                name: (*host).into(),
            };
            sans.push(match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if is_dns_name(host) => {
                    SanType::DnsName((*host).try_into().map_err(|_| bad())?)
                }
                Err(_) => return Err(bad()),
            });
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name(node);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
        let files = NodeCert {
            cert: self.dir.join(format!("{node}.pem")),
            key: self.dir.join(format!("{node}.key")),
            spiffe_id: id,
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

/// Letters, digits, `-` and `.` (a leading `*.` for a wildcard): what a
/// certificate's DNS SAN may hold.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "connlab");
    name.push(DnType::CommonName, common_name);
    name
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(1);
}

fn write(path: &Path, pem: &str) -> Result<(), CertError> {
    std::fs::write(path, pem).map_err(|source| CertError::Write {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_ca_and_node_certificates_with_spiffe_sans() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::create(dir.path()).unwrap();
        let server = ca.issue("server", &["server", "127.0.0.1"]).unwrap();
        assert_eq!(server.spiffe_id, "spiffe://cluster.local/ns/lab/sa/server");
        let pem = std::fs::read_to_string(&server.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let key = std::fs::read_to_string(&server.key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        assert!(ca.ca().exists());
        // Two nodes, two different keys.
        let caller = ca.issue("caller", &[]).unwrap();
        assert_ne!(key, std::fs::read_to_string(caller.key).unwrap());
    }

    #[test]
    fn a_bad_host_name_is_an_error_naming_node_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::create(dir.path()).unwrap();
        let err = ca.issue("server", &["not a host"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate for `server`: `not a host` is not a valid host name or address"
        );
    }
}
