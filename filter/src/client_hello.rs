//! A TLS ClientHello reader: just enough to take the SNI and the ALPN list
//! out of the first record a client sends. Every length is checked against
//! what is actually there; nothing allocates more than the fixed caps below,
//! whatever the bytes claim.

/// Longest SNI kept (a DNS name is at most 253 characters).
pub const MAX_SNI: usize = 255;
/// ALPN protocols kept, and the longest protocol name kept.
pub const MAX_ALPN: usize = 8;
pub const MAX_ALPN_LEN: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// The outcome of reading the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole ClientHello was read.
    Hello(ClientHello),
    /// A TLS handshake record, but not all of it has arrived yet.
    Incomplete,
    /// Not a TLS ClientHello.
    NotHello,
}

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SNI: u16 = 0;
const EXT_ALPN: u16 = 16;

/// Big-endian cursor over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        let hi = self.u8()?;
        let lo = self.u8()?;
        Some(u16::from_be_bytes([hi, lo]))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// A vector with a 1- or 2-byte length prefix.
    fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = self.u8()? as usize;
        Some(Reader {
            bytes: self.take(n)?,
        })
    }

    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()? as usize;
        Some(Reader {
            bytes: self.take(n)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Reads the ClientHello at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parse {
    let mut record = Reader { bytes };
    // Record header: type, version (3.x), length.
    match (record.u8(), record.u8()) {
        (Some(HANDSHAKE), Some(3)) | (Some(HANDSHAKE), None) => {}
        (None, _) => return Parse::Incomplete,
        _ => return Parse::NotHello,
    }
    let Some(_minor) = record.u8() else {
        return Parse::Incomplete;
    };
    let Some(len) = record.u16() else {
        return Parse::Incomplete;
    };
    if len == 0 || len > 16 * 1024 + 2048 {
        return Parse::NotHello;
    }
    // A ClientHello split over several records is rare; read what the first
    // record holds and treat a short one as not (yet) readable.
    let Some(body) = record.take(len as usize) else {
        return Parse::Incomplete;
    };
    let mut handshake = Reader { bytes: body };
    if handshake.u8() != Some(CLIENT_HELLO) {
        return Parse::NotHello;
    }
    match hello_body(&mut handshake) {
        Some(hello) => Parse::Hello(hello),
        None => Parse::Hello(ClientHello::default()),
    }
}

/// The handshake message after its type byte. `None` when it is truncated
/// or malformed (the caller still knows it was TLS).
fn hello_body(handshake: &mut Reader<'_>) -> Option<ClientHello> {
    let len = (handshake.u8()? as usize) << 16 | handshake.u16()? as usize;
    let mut hello = Reader {
        bytes: handshake.take(len.min(handshake.bytes.len()))?,
    };
    hello.take(2 + 32)?; // client_version, random
    hello.vec8()?; // session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // compression_methods
    let mut out = ClientHello::default();
    if hello.is_empty() {
        return Some(out);
    }
    let mut extensions = hello.vec16()?;
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec16()?;
        match kind {
            EXT_SNI => out.sni = sni(&mut data),
            EXT_ALPN => out.alpn = alpn(&mut data),
            _ => {}
        }
    }
    Some(out)
}

fn sni(data: &mut Reader<'_>) -> Option<String> {
    let mut names = data.vec16()?;
    while !names.is_empty() {
        let kind = names.u8()?;
        let name = names.vec16()?;
        if kind == 0 {
            return printable(name.bytes, MAX_SNI);
        }
    }
    None
}

fn alpn(data: &mut Reader<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(mut list) = data.vec16() else {
        return out;
    };
    while !list.is_empty() && out.len() < MAX_ALPN {
        let Some(proto) = list.vec8() else { break };
        if let Some(name) = printable(proto.bytes, MAX_ALPN_LEN) {
            out.push(name);
        }
    }
    out
}

/// Printable ASCII only (these end up in JSON logs), cut to `max`.
fn printable(bytes: &[u8], max: usize) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .iter()
            .take(max)
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect(),
    )
}

/// Builds a ClientHello record (for tests and the fuzz target's corpus).
pub fn build(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let mut entry = vec![0u8];
        push16(&mut entry, name.as_bytes());
        let mut list = Vec::new();
        push16(&mut list, &entry);
        ext.extend_from_slice(&EXT_SNI.to_be_bytes());
        push16(&mut ext, &list);
    }
    if !alpn.is_empty() {
        let mut protos = Vec::new();
        for p in alpn {
            protos.push(p.len() as u8);
            protos.extend_from_slice(p.as_bytes());
        }
        let mut list = Vec::new();
        push16(&mut list, &protos);
        ext.extend_from_slice(&EXT_ALPN.to_be_bytes());
        push16(&mut ext, &list);
    }
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[7; 32]);
    hello.push(0); // session id
    push16(&mut hello, &[0x13, 0x01]); // TLS_AES_128_GCM_SHA256
    hello.extend_from_slice(&[1, 0]); // compression: null
    push16(&mut hello, &ext);
    let mut handshake = vec![CLIENT_HELLO];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![HANDSHAKE, 3, 1];
    push16(&mut record, &handshake);
    record
}

fn push16(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_and_alpn() {
        let bytes = build(Some("api.example.com"), &["h2", "http/1.1"]);
        assert_eq!(
            parse(&bytes),
            Parse::Hello(ClientHello {
                sni: Some("api.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
    }

    #[test]
    fn a_hello_without_extensions_is_still_tls() {
        assert_eq!(
            parse(&build(None, &[])),
            Parse::Hello(ClientHello::default())
        );
    }

    #[test]
    fn every_truncation_is_incomplete_never_a_panic() {
        let bytes = build(Some("a.example"), &["h2"]);
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Parse::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn other_protocols_are_not_hellos() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotHello);
        assert_eq!(parse(&[22, 2, 0]), Parse::NotHello);
        assert_eq!(parse(&[22, 3, 1, 0, 0]), Parse::NotHello);
        assert_eq!(parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]), Parse::NotHello);
    }

    #[test]
    fn lying_lengths_are_contained() {
        let mut bytes = build(Some("a.example"), &["h2"]);
        // Claim a huge handshake length inside a short record.
        bytes[6] = 0xff;
        bytes[7] = 0xff;
        assert!(matches!(parse(&bytes), Parse::Hello(_)));
    }

    #[test]
    fn non_printable_names_are_masked() {
        let bytes = build(Some("a\u{7}b"), &[]);
        let Parse::Hello(hello) = parse(&bytes) else {
            unreachable!()
        };
        assert_eq!(hello.sni.as_deref(), Some("a?b"));
    }
}
