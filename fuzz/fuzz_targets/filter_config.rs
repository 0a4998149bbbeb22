//! The filter's plugin configuration (JSON from Envoy, or `connlab diagnose
//! --filter-config`): never panics; accepted values keep their bounds, and
//! a rejection names a key of bounded length.
#![no_main]

use connlab_filter::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match config::parse(bytes) {
        Ok(c) => {
            assert!(c.reuse_table_cap >= 1);
            assert!(c.server_idle_timeouts.len() <= config::MAX_SERVERS);
        }
        Err(e) => {
            assert!(!e.key.is_empty());
            assert!(e.key.chars().count() <= config::MAX_NAME_LEN);
        }
    }
});
