//! A downstream connection's first bytes, classified as the filter's
//! listener side does: never panics, a final classification always decides
//! (`none` only for no bytes), and a TLS verdict keeps the hello's caps.
#![no_main]

use connlab_filter::client_hello::{MAX_ALPN, MAX_ALPN_LEN, MAX_SNI};
use connlab_filter::sniff::{self, Class, Verdict, MAX_SNIFF_BYTES};
use libfuzzer_sys::fuzz_target;

fn check(class: &Class) {
    if let Class::Tls(hello) = class {
        assert!(hello.sni.as_ref().is_none_or(|s| s.len() <= MAX_SNI));
        assert!(hello.alpn.len() <= MAX_ALPN);
        assert!(hello.alpn.iter().all(|p| p.len() <= MAX_ALPN_LEN));
    }
}

fuzz_target!(|bytes: &[u8]| {
    // The filter never buffers more than this.
    let bytes = &bytes[..bytes.len().min(MAX_SNIFF_BYTES)];
    if let Verdict::Decided(class) = sniff::classify(bytes, false) {
        check(&class);
    }
    match sniff::classify(bytes, true) {
        Verdict::Decided(Class::None) => assert!(bytes.is_empty()),
        Verdict::Decided(class) => check(&class),
        Verdict::NeedMore => panic!("a final classification must decide: {bytes:?}"),
    }
});
