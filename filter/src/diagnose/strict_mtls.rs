//! Plaintext sent through `PassthroughCluster` into a destination whose
//! sidecar requires mTLS: as a reset HTTP request, or as a TCP line that
//! delivered bytes and got none back. The fix is said in Istio's terms.

use super::{human_ms, likely, Diagnosis, HttpFacts, PASSTHROUGH_CLUSTER};

/// A request Istio sent through `PassthroughCluster` (plaintext: it did not
/// route it as mesh traffic) whose connection the destination reset: a
/// destination whose sidecar requires mTLS resets plaintext.
pub(super) fn plaintext_to_strict_mtls(facts: &HttpFacts<'_>) -> Option<Diagnosis> {
    let shown = facts.details.unwrap_or("no details");
    likely(
        "plaintext_to_strict_mtls",
        plaintext_to_strict_explain(&format!(
            "the request left through {PASSTHROUGH_CLUSTER} (plaintext: this sidecar did not route \
             it as mesh traffic) and the destination reset the connection ({shown})"
        )),
        &[
            "a destination outside the mesh that reset the connection for its own reasons",
            "a keep-alive race on the passthrough connection (the evidence has no earlier request \
             on it)",
        ],
    )
}

/// Why plaintext through PassthroughCluster meets a STRICT destination, and
/// the fix in Istio's terms, after what the evidence showed.
pub(super) fn plaintext_to_strict_explain(seen: &str) -> String {
    format!(
        "{seen}: a destination whose sidecar requires mTLS (PeerAuthentication mode STRICT) \
         resets plaintext; this sidecar sends plaintext there when the host is not in its registry \
         (no Service or ServiceEntry, a Sidecar resource that hides it), when the port's protocol \
         is not declared and detection fell through (protocolDetectionTimeout was 100 ms up to \
         Istio 1.6), or when a DestinationRule sets tls mode DISABLE; fix it in Istio's terms: \
         declare the port (name http-*, appProtocol), make the host known (ServiceEntry), or set \
         the destination's PeerAuthentication to PERMISSIVE while you migrate"
    )
}

/// What a tcp_proxy access-log line says (no HTTP request: Istio prints
/// `"- - -"`). Only a log has it for a sidecar's fall-through: Istio runs no
/// plugin on `PassthroughFilterChain` / `virtualOutbound-catchall-tcp`.
#[derive(Debug, Clone, Default)]
pub struct TcpFacts<'a> {
    pub flags: u64,
    pub cluster: Option<&'a str>,
    /// The line names the upstream host it connected to.
    pub connected: bool,
    /// Bytes from the downstream (the application) and back to it.
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub elapsed_ms: Option<u64>,
}

/// A TCP connection that left through `PassthroughCluster`, delivered the
/// application's bytes and got none back before it closed: what plaintext
/// into a STRICT destination looks like from the sender (Istio 1.6: the
/// callee's TLS handshake fails on it; from 1.8 no inbound chain matches
/// it), likely, never confirmed: the line cannot tell who closed. A
/// destination that answered a byte, a connect that failed (the flags say
/// so: the request rules name it), a client that sent nothing, or a mesh
/// cluster (mTLS originated) is not this.
pub fn tcp_line(facts: &TcpFacts<'_>) -> Option<Diagnosis> {
    let (Some(received), Some(0)) = (facts.bytes_received, facts.bytes_sent) else {
        return None;
    };
    if facts.flags != 0
        || !facts.connected
        || received == 0
        || facts.cluster != Some(PASSTHROUGH_CLUSTER)
    {
        return None;
    }
    let after = facts.elapsed_ms.map_or(String::new(), |ms| {
        format!(" {} after accept", human_ms(ms))
    });
    likely(
        "plaintext_to_strict_mtls",
        plaintext_to_strict_explain(&format!(
            "the connection left through {PASSTHROUGH_CLUSTER} as plaintext TCP (this sidecar did \
             not route it as mesh traffic), delivered {received} bytes and closed{after} with not \
             one byte back"
        )),
        &[
            "a destination outside the mesh that closed without answering",
            "the client closing first (its own timeout of about the connection's duration)",
        ],
    )
}
