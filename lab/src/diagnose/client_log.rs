//! Client-library error lines: the only evidence of a client-side pool
//! race. A pooled client that writes a request on a keep-alive connection
//! its server (or Envoy's downstream `idle_timeout`) has just closed gets a
//! reset or an EOF before any response byte; measured on Envoy 1.40
//! (`scenarios/client-pool-race.toml`), that request is reset before it is
//! a stream, so Envoy's access log has no line and no `DC` for it: only the
//! client's own log and `downstream_cx_idle_timeout` show it.
//!
//! The texts are the libraries' own, as the lab's client-pool-race runs
//! record them in `library_error` (reqwest 0.13 / hyper 1, requests 2.28 /
//! urllib3 1.26, Node 18's agent, JDK 17's HttpClient) and as the
//! libraries spell the same failure elsewhere (hyper's "connection closed
//! before message completed", urllib3's `RemoteDisconnected`, Node's
//! "socket hang up", Go's "server closed idle connection"). The same texts
//! also come from a server that crashed or reset a fresh connection, so the
//! verdict is likely, with those alternatives; the failures a text does
//! tell apart (refused, timed out, TLS, a body cut off mid-response, DNS)
//! are never called a pool race.

use connlab_filter::diagnose::{Confidence, Diagnosis};

/// The code a client-library line gets.
pub const CODE: &str = "client_pool_race";

/// What a client-library error line says, when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLine {
    /// The library the text belongs to.
    pub library: &'static str,
    /// The text that decided it.
    pub matched: &'static str,
    /// `client_pool_race`, or `None` for a client error the text shows is
    /// something else (`other` says what).
    pub diagnosis: Option<Diagnosis>,
    pub other: Option<&'static str>,
}

/// Texts of a request that failed before any response byte because the
/// connection was closed or reset under it: (library, text, how sure).
const RACE: [(&str, &str, Confidence); 11] = [
    // Go's transport names the mechanism itself (errServerClosedIdle).
    (
        "Go net/http",
        "server closed idle connection",
        Confidence::Confirmed,
    ),
    (
        "reqwest/hyper",
        "connection closed before message completed",
        Confidence::Likely,
    ),
    ("reqwest/hyper", "incompletemessage", Confidence::Likely),
    (
        "Python requests/urllib3",
        "remotedisconnected",
        Confidence::Likely,
    ),
    (
        "Python requests/urllib3",
        "remote end closed connection without response",
        Confidence::Likely,
    ),
    (
        "Python requests/urllib3",
        "connectionreseterror",
        Confidence::Likely,
    ),
    ("Node.js http", "econnreset", Confidence::Likely),
    ("Node.js http", "socket hang up", Confidence::Likely),
    (
        "Java HttpClient",
        "header parser received no bytes",
        Confidence::Likely,
    ),
    // reqwest's own wording of a reset while sending (the lab's record:
    // "client error (SendRequest): connection error: Connection reset by peer").
    ("reqwest/hyper", "sendrequest", Confidence::Likely),
    (
        "Java",
        "java.net.socketexception: connection reset",
        Confidence::Likely,
    ),
];

/// Client errors whose text says what else happened: never a pool race.
const NOT_RACE: [(&str, &str); 16] = [
    (
        "connection refused",
        "refused: nothing listened (a new connection, not a pooled one)",
    ),
    (
        "econnrefused",
        "refused: nothing listened (a new connection, not a pooled one)",
    ),
    (
        "newconnectionerror",
        "a new connection failed, not a pooled one",
    ),
    (
        "failed to establish a new connection",
        "a new connection failed, not a pooled one",
    ),
    (
        "timed out",
        "a timeout: the server was slow or silent, not closed",
    ),
    (
        "etimedout",
        "a timeout: the server was slow or silent, not closed",
    ),
    (
        "readtimeout",
        "a timeout: the server was slow or silent, not closed",
    ),
    (
        "deadline exceeded",
        "a timeout: the server was slow or silent, not closed",
    ),
    ("sslerror", "TLS failed"),
    ("certificate", "TLS failed"),
    (
        "incompleteread",
        "the response broke off mid-body: the server got the request",
    ),
    (
        "chunkedencodingerror",
        "the response broke off mid-body: the server got the request",
    ),
    (
        "error decoding response body",
        "the response broke off mid-body: the server got the request",
    ),
    (
        "premature close",
        "the response broke off mid-body: the server got the request",
    ),
    ("enotfound", "the host name did not resolve"),
    ("name or service not known", "the host name did not resolve"),
];

/// Reads one line as a client-library error whose words are a pool race's
/// (a reset or EOF before any response), or `None`. Such a line whose other
/// words say what else happened (refused, timed out...) is returned with no
/// diagnosis. Client errors with no race words are not read here: their
/// generic words ("timed out", "certificate") are in Envoy's own log too.
pub fn read(line: &str) -> Option<ClientLine> {
    // Client errors are short; a long line is something else (and this
    // keeps the lower-casing bounded).
    if line.len() > 4096 {
        return None;
    }
    let lower = line.to_ascii_lowercase();
    let (library, matched, confidence) = RACE.iter().find(|(_, t, _)| lower.contains(t))?;
    if let Some((_, why)) = NOT_RACE.iter().find(|(t, _)| lower.contains(t)) {
        return Some(ClientLine {
            library,
            matched,
            diagnosis: None,
            other: Some(why),
        });
    }
    Some(ClientLine {
        library,
        matched,
        diagnosis: Some(diagnosis(library, matched, *confidence)),
        other: None,
    })
}

fn diagnosis(library: &str, matched: &str, confidence: Confidence) -> Diagnosis {
    let explain = format!(
        "the client ({library}: \"{matched}\") lost a request before any response byte on a \
         connection that was closed under it: the signature of a client-side pool race, where \
         the server (or Envoy's downstream idle_timeout) closed a pooled keep-alive connection \
         for being idle and the client wrote its next request into it. The server side closed, \
         the client side wrote: the request never reached the server's application, and \
         Envoy's access log has no line for it (Envoy 1.40 resets it before it is a stream), \
         so only this client log and Envoy's downstream_cx_idle_timeout counter show it; fix: \
         the pool's idle timeout below every server's on the path (or the server's above the \
         pool's), and retry idempotent requests that fail before any response byte"
    );
    let mut alternatives = vec![
        "a server that crashed, restarted or was killed with the request on the connection (the \
         same text on a fresh connection: then the server dropped the request itself)"
            .to_string(),
        "a server or proxy limit that closes connections (max requests or max age per \
         connection, a drain on shutdown) while the client writes"
            .to_string(),
        "a load balancer or NAT between whose idle timeout dropped the connection".to_string(),
    ];
    if confidence == Confidence::Confirmed {
        alternatives.clear();
    }
    Diagnosis {
        code: CODE,
        explain,
        confidence,
        alternatives,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the lab's client-pool-race runs record (README's table).
    const LAB: [&str; 3] = [
        "error sending request for url (http://envoy:10000/): client error (SendRequest): \
         connection error: Connection reset by peer (os error 104)",
        "requests.exceptions.ConnectionError: ('Connection aborted.', \
         ConnectionResetError(104, 'Connection reset by peer'))",
        "ECONNRESET: read ECONNRESET",
    ];

    #[test]
    fn the_lab_clients_own_texts_are_a_likely_pool_race() {
        for text in LAB {
            let line = read(text).unwrap();
            let d = line.diagnosis.unwrap();
            assert_eq!((d.code, d.confidence), (CODE, Confidence::Likely), "{text}");
            assert!(!d.alternatives.is_empty());
            assert!(d
                .explain
                .contains("server side closed, the client side wrote"));
        }
        for text in [
            "hyper::Error(IncompleteMessage): connection closed before message completed",
            "urllib3.exceptions.ProtocolError: ('Connection aborted.', \
             RemoteDisconnected('Remote end closed connection without response'))",
            "Error: socket hang up",
            "java.io.IOException: HTTP/1.1 header parser received no bytes",
        ] {
            assert_eq!(read(text).unwrap().diagnosis.unwrap().code, CODE, "{text}");
        }
        let go = read("Post \"http://api/\": http: server closed idle connection").unwrap();
        assert_eq!(go.diagnosis.unwrap().confidence, Confidence::Confirmed);
    }

    /// The nearest client failures that must not be called a pool race.
    #[test]
    fn refused_timeouts_tls_and_cut_bodies_are_not_a_pool_race() {
        for text in [
            "error sending request for url (http://api/): client error (Connect): tcp connect \
             error: Connection refused (os error 111)",
            "requests.exceptions.ConnectionError: HTTPConnectionPool(host='api', port=80): Max \
             retries exceeded (Caused by NewConnectionError('Failed to establish a new \
             connection: [Errno 111] Connection refused'))",
            "Error: connect ECONNREFUSED 10.0.0.1:80",
            "requests.exceptions.ReadTimeout: HTTPConnectionPool(host='api', port=80): Read \
             timed out. (read timeout=5)",
            "error sending request for url (http://api/): client error (SendRequest): operation \
             timed out",
            "requests.exceptions.ChunkedEncodingError: ('Connection broken: \
             IncompleteRead(10 bytes read, 90 more expected)', IncompleteRead(10 bytes read))",
            "Error: read ECONNRESET ... SSLError certificate verify failed",
        ] {
            // Either not a pool-race text at all, or one whose other words
            // say what else happened.
            if let Some(line) = read(text) {
                assert_eq!(line.diagnosis, None, "{text}");
                assert!(line.other.is_some(), "{text}");
            }
        }
        // Not a client error at all.
        for text in [
            "[2024-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 200 - via_upstream",
            "info: request served",
            "",
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }
}
