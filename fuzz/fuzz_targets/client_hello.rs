//! The first record a client sends, as the filter's TLS reader takes it:
//! never panics, and what it keeps stays inside the fixed caps whatever the
//! lengths in the bytes claim.
#![no_main]

use connlab_filter::client_hello::{self, Parse, MAX_ALPN, MAX_ALPN_LEN, MAX_SNI};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Parse::Hello(hello) = client_hello::parse(bytes) {
        assert!(hello.sni.as_ref().is_none_or(|s| s.len() <= MAX_SNI));
        assert!(hello.alpn.len() <= MAX_ALPN);
        assert!(hello.alpn.iter().all(|p| p.len() <= MAX_ALPN_LEN));
    }
});
