//! Classifies a downstream connection by its first bytes, the way Envoy's
//! `tls_inspector` and `http_inspector` would have: `tls` (with SNI and ALPN),
//! `http1` (with the method), `http2` (the client preface), `other`, or
//! `none` when the client sent nothing.

use crate::client_hello::{self, ClientHello};

/// Bytes buffered at most while deciding (a large ClientHello with
/// post-quantum key shares is under 2 KiB).
pub const MAX_SNIFF_BYTES: usize = 4096;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Tls(ClientHello),
    Http1 { method: String },
    Http2,
    Other,
    None,
}

impl Class {
    pub fn name(&self) -> &'static str {
        match self {
            Class::Tls(_) => "tls",
            Class::Http1 { .. } => "http1",
            Class::Http2 => "http2",
            Class::Other => "other",
            Class::None => "none",
        }
    }

    pub fn looks_like_http(&self) -> bool {
        matches!(self, Class::Http1 { .. } | Class::Http2)
    }
}

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Decided(Class),
    /// A prefix of something recognisable; wait for more bytes.
    NeedMore,
}

/// Classifies the first bytes of a connection. With `final_bytes` (the
/// connection closed, or the buffer is full) it always decides.
pub fn classify(bytes: &[u8], final_bytes: bool) -> Verdict {
    let verdict = classify_prefix(bytes);
    match verdict {
        Verdict::NeedMore if final_bytes || bytes.len() >= MAX_SNIFF_BYTES => {
            Verdict::Decided(if bytes.is_empty() {
                Class::None
            } else if bytes.first() == Some(&22) {
                // A TLS record we could not read whole: still TLS.
                Class::Tls(ClientHello::default())
            } else {
                Class::Other
            })
        }
        v => v,
    }
}

fn classify_prefix(bytes: &[u8]) -> Verdict {
    if bytes.is_empty() {
        return Verdict::NeedMore;
    }
    match client_hello::parse(bytes) {
        client_hello::Parse::Hello(hello) => return Verdict::Decided(Class::Tls(hello)),
        client_hello::Parse::Incomplete => return Verdict::NeedMore,
        client_hello::Parse::NotHello => {}
    }
    if is_prefix_either_way(bytes, H2_PREFACE) {
        return if bytes.len() >= H2_PREFACE.len() {
            Verdict::Decided(Class::Http2)
        } else {
            Verdict::NeedMore
        };
    }
    let mut could_be_method = false;
    for method in METHODS {
        let token = method.as_bytes();
        if bytes.len() > token.len() && bytes.starts_with(token) && bytes[token.len()] == b' ' {
            return Verdict::Decided(Class::Http1 {
                method: method.to_string(),
            });
        }
        could_be_method |= bytes.len() <= token.len() && token.starts_with(bytes);
    }
    if could_be_method {
        Verdict::NeedMore
    } else {
        Verdict::Decided(Class::Other)
    }
}

fn is_prefix_either_way(bytes: &[u8], pattern: &[u8]) -> bool {
    let n = bytes.len().min(pattern.len());
    bytes[..n] == pattern[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(bytes: &[u8]) -> Class {
        match classify(bytes, false) {
            Verdict::Decided(class) => class,
            Verdict::NeedMore => Class::None,
        }
    }

    #[test]
    fn http1_with_method() {
        assert_eq!(
            decided(b"GET / HTTP/1.1\r\n"),
            Class::Http1 {
                method: "GET".into()
            }
        );
        assert_eq!(decided(b"OPTIONS * HTTP/1.1\r\n").name(), "http1");
        assert_eq!(classify(b"GE", false), Verdict::NeedMore);
        assert_eq!(classify(b"GET", false), Verdict::NeedMore);
        assert_eq!(classify(b"GE", true), Verdict::Decided(Class::Other));
        assert_eq!(decided(b"GETX"), Class::Other);
    }

    #[test]
    fn http2_preface() {
        assert_eq!(decided(H2_PREFACE), Class::Http2);
        assert_eq!(classify(b"PRI * HT", false), Verdict::NeedMore);
        assert_eq!(decided(b"PRI * HTTP/1.1\r\n"), Class::Other);
    }

    #[test]
    fn tls_with_hello_fields() {
        let hello = client_hello::build(Some("svc.local"), &["h2"]);
        let Class::Tls(found) = decided(&hello) else {
            unreachable!()
        };
        assert_eq!(found.sni.as_deref(), Some("svc.local"));
        assert_eq!(classify(&hello[..10], false), Verdict::NeedMore);
        assert_eq!(
            classify(&hello[..10], true),
            Verdict::Decided(Class::Tls(ClientHello::default()))
        );
    }

    #[test]
    fn other_and_none() {
        assert_eq!(decided(b"SSH-2.0-OpenSSH_9.2\r\n"), Class::Other);
        assert_eq!(decided(b"hello\r\n"), Class::Other);
        assert_eq!(classify(b"", false), Verdict::NeedMore);
        assert_eq!(classify(b"", true), Verdict::Decided(Class::None));
    }

    #[test]
    fn a_full_buffer_always_decides() {
        let mut bytes = vec![22, 3, 1, 0x40, 0x00];
        bytes.resize(MAX_SNIFF_BYTES, 0);
        assert!(matches!(
            classify(&bytes, false),
            Verdict::Decided(Class::Tls(_))
        ));
    }
}
