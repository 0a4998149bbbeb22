//! TLS transport sockets: downstream and upstream, with files or a mesh's
//! mutual TLS (certificate, CA, the peer identities accepted).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// A DownstreamTlsContext transport socket from PEM files; with
/// `client_ca`, client certificates are required and checked against it.
pub fn downstream_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Value {
    let mut context = json!({
        "common_tls_context": {
            "tls_certificates": [{
                "certificate_chain": {"filename": cert},
                "private_key": {"filename": key},
            }],
        },
    });
    if let Some(ca) = client_ca {
        context["require_client_certificate"] = json!(true);
        context["common_tls_context"]["validation_context"] =
            json!({"trusted_ca": {"filename": ca}});
    }
    context["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// An UpstreamTlsContext transport socket (no verification: tests only).
pub fn upstream_tls() -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        },
    })
}

// --- Sniffing listeners, TLS and upstream socket blocks (source-port-reuse,
// sniff-timeout). Each returns one Envoy block.

/// A certificate and key from PEM files, and the CA that peers' certificates
/// must chain to, with (if any) the SPIFFE URIs a peer may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Peer identities accepted (URI SANs, e.g. `spiffe://.../sa/caller`);
    /// empty: any certificate the CA signed.
    pub peer_ids: Vec<String>,
}

impl TlsFiles {
    fn common_context(&self) -> Value {
        let mut validation = json!({"trusted_ca": {"filename": self.ca}});
        if !self.peer_ids.is_empty() {
            let sans: Vec<Value> = self
                .peer_ids
                .iter()
                .map(|id| json!({"san_type": "URI", "matcher": {"exact": id}}))
                .collect();
            validation["match_typed_subject_alt_names"] = json!(sans);
        }
        json!({
            "tls_certificates": [{
                "certificate_chain": {"filename": self.cert},
                "private_key": {"filename": self.key},
            }],
            "validation_context": validation,
        })
    }
}

/// Downstream mTLS (a server sidecar's inbound): the client must present a
/// certificate (`require_client_certificate`: Istio STRICT), or may
/// (validated when presented).
pub fn downstream_mtls(files: &TlsFiles, require_client_certificate: bool) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require_client_certificate,
            "common_tls_context": files.common_context(),
        },
    })
}

/// Upstream mTLS origination (a client sidecar's outbound): presents this
/// node's certificate, verifies the server's against the CA (and
/// `peer_ids`), sends `sni` and offers `alpn` (Istio: `istio-http/1.1`,
/// `istio`).
pub fn upstream_mtls(files: &TlsFiles, sni: Option<&str>, alpn: &[&str]) -> Value {
    let mut common = files.common_context();
    if !alpn.is_empty() {
        common["alpn_protocols"] = json!(alpn);
    }
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    });
    if let Some(sni) = sni {
        context["sni"] = json!(sni);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtls_contexts_carry_certificate_ca_and_peer_identities() {
        let ids = vec!["spiffe://cluster.local/ns/lab/sa/caller".to_string()];
        let files = TlsFiles {
            cert: "/c/server.pem".into(),
            key: "/c/server.key".into(),
            ca: "/c/ca.pem".into(),
            peer_ids: ids.clone(),
        };
        let strict = downstream_mtls(&files, true);
        let context = &strict["typed_config"];
        assert_eq!(context["require_client_certificate"], true);
        let common = &context["common_tls_context"];
        assert_eq!(
            common["tls_certificates"][0]["private_key"]["filename"],
            "/c/server.key"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/c/ca.pem"
        );
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"],
            json!([{"san_type": "URI", "matcher": {"exact": ids[0]}}])
        );
        assert_eq!(
            downstream_mtls(&files, false)["typed_config"]["require_client_certificate"],
            false
        );

        let anyone = TlsFiles {
            peer_ids: vec![],
            ..files
        };
        let upstream = upstream_mtls(&anyone, Some("outbound_.8080_._.server"), &["istio"]);
        let context = &upstream["typed_config"];
        assert_eq!(context["sni"], "outbound_.8080_._.server");
        assert_eq!(
            context["common_tls_context"]["alpn_protocols"],
            json!(["istio"])
        );
        assert!(context["common_tls_context"]["validation_context"]
            .get("match_typed_subject_alt_names")
            .is_none());
        assert!(upstream_mtls(&anyone, None, &[])["typed_config"]
            .get("sni")
            .is_none());
    }
}
