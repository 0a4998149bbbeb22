//! What Envoy's `get_property` returns, through the filter's decoders: the
//! outcome expression's CEL list (each element then read as the filter
//! reads it) and the scalar decoders on the same bytes. Never panics; a
//! list's elements lie inside its bytes.
#![no_main]

use connlab_filter::property;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(items) = property::list(bytes) {
        let total: usize = items.iter().map(|i| i.len()).sum();
        assert!(total <= bytes.len());
        for item in items {
            let _ = property::uint(item);
            let _ = property::string(item);
        }
    }
    let _ = property::int(bytes);
    let _ = property::uint(bytes);
    let _ = property::boolean(bytes);
    let _ = property::string(bytes);
    let _ = property::string_owned(bytes.to_vec());
});
