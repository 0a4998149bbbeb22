//! Fuzz target for everything the filter parses from the wire or the host:
//! the ClientHello / first-bytes classifier, the plugin configuration and
//! the CEL list Envoy returns for the outcome expression.
//! Deterministic (seeded xorshift), no extra toolchain: a short run is part of
//! `cargo test`; `make fuzz-filter` runs it long
//! (`CONNLAB_FUZZ_ITERS=5000000 cargo test --release -p connlab-filter --test fuzz_parsers`).
//! Properties: never panics, and every output stays inside its fixed caps.
#![allow(clippy::unwrap_used, clippy::panic)]

use connlab_filter::client_hello::{self, MAX_ALPN, MAX_ALPN_LEN, MAX_SNI};
use connlab_filter::config;
use connlab_filter::property;
use connlab_filter::sniff::{self, Class, Verdict, MAX_SNIFF_BYTES};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn iterations() -> usize {
    std::env::var("CONNLAB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("CONNLAB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
}

/// A valid ClientHello, then damaged: bytes flipped, cut, spliced.
fn mutated_hello(rng: &mut Rng) -> Vec<u8> {
    let sni = "s".repeat(rng.below(300));
    let alpn: Vec<String> = (0..rng.below(12)).map(|i| "p".repeat(i * 5 + 1)).collect();
    let alpn: Vec<&str> = alpn.iter().map(String::as_str).collect();
    let mut bytes = client_hello::build((rng.below(4) > 0).then_some(sni.as_str()), &alpn);
    for _ in 0..rng.below(6) {
        let at = rng.below(bytes.len());
        bytes[at] = rng.next() as u8;
    }
    match rng.below(4) {
        0 => bytes.truncate(rng.below(bytes.len() + 1)),
        1 => {
            let at = rng.below(bytes.len() + 1);
            let junk = rng.bytes(64);
            bytes.splice(at..at, junk);
        }
        _ => {}
    }
    bytes
}

fn check_first_bytes(bytes: &[u8]) {
    if let client_hello::Parse::Hello(hello) = client_hello::parse(bytes) {
        assert!(hello.sni.as_ref().is_none_or(|s| s.len() <= MAX_SNI));
        assert!(hello.alpn.len() <= MAX_ALPN);
        assert!(hello.alpn.iter().all(|p| p.len() <= MAX_ALPN_LEN));
    }
    let capped = &bytes[..bytes.len().min(MAX_SNIFF_BYTES)];
    let _ = sniff::classify(capped, false);
    match sniff::classify(capped, true) {
        Verdict::Decided(Class::None) => assert!(capped.is_empty()),
        Verdict::Decided(_) => {}
        Verdict::NeedMore => panic!("a final classification must decide: {capped:?}"),
    }
}

#[test]
fn first_bytes_never_panic_and_stay_bounded() {
    let mut rng = Rng(seed());
    for _ in 0..iterations() {
        let bytes = match rng.below(3) {
            0 => rng.bytes(600),
            1 => {
                // TLS-looking record headers with random bodies.
                let mut b = vec![22, 3, rng.below(5) as u8];
                b.extend(rng.bytes(600));
                b
            }
            _ => mutated_hello(&mut rng),
        };
        check_first_bytes(&bytes);
    }
}

/// A list as Envoy serializes it (`property::list`), then damaged: sizes,
/// counts and bytes flipped, cut, spliced.
fn mutated_list(rng: &mut Rng) -> Vec<u8> {
    let items: Vec<Vec<u8>> = (0..rng.below(6)).map(|_| rng.bytes(40)).collect();
    let mut bytes = (items.len() as u32).to_le_bytes().to_vec();
    for item in &items {
        bytes.extend_from_slice(&(item.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
    }
    for item in &items {
        bytes.extend_from_slice(item);
        bytes.extend_from_slice(&[0, 0]);
    }
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes.truncate(at),
            _ => bytes.splice(at..at, rng.bytes(8)).for_each(drop),
        }
    }
    bytes
}

#[test]
fn outcome_lists_never_panic_and_stay_inside_their_bytes() {
    let mut rng = Rng(seed());
    for _ in 0..iterations() {
        let bytes = if rng.below(4) == 0 {
            rng.bytes(200)
        } else {
            mutated_list(&mut rng)
        };
        if let Some(items) = property::list(&bytes) {
            let total: usize = items.iter().map(|i| i.len()).sum();
            assert!(total <= bytes.len(), "{bytes:?}");
        }
    }
}

const KEYS: [&str; 9] = [
    "events",
    "reuse_table_cap",
    "server_idle_timeouts",
    "idle_match_before_ms",
    "idle_match_after_ms",
    "sniff_threshold_ms",
    "response_header",
    "bogus",
    "",
];

fn json_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => "null".into(),
        1 => (rng.next() as i64 >> rng.below(64)).to_string(),
        2 => format!("{}.5", rng.below(1000)),
        3 => [
            "\"all\"",
            "\"failures\"",
            "\"x-connlab\"",
            "\"X Y\"",
            "\"\"",
        ][rng.below(5)]
        .into(),
        4 => "true".into(),
        5 => format!("{:?}", String::from_utf8_lossy(&rng.bytes(20))),
        6 => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| json_value(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => json_object(rng, depth + 1),
    }
}

fn json_object(rng: &mut Rng, depth: usize) -> String {
    let fields: Vec<String> = (0..rng.below(5))
        .map(|_| {
            format!(
                "\"{}\":{}",
                KEYS[rng.below(KEYS.len())],
                json_value(rng, depth)
            )
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[test]
fn config_parser_never_panics_and_names_a_key() {
    let mut rng = Rng(seed() ^ 0xdead_beef);
    for _ in 0..iterations() {
        let text = match rng.below(3) {
            0 => json_object(&mut rng, 0).into_bytes(),
            1 => {
                let mut t = json_object(&mut rng, 0).into_bytes();
                let cut = rng.below(t.len() + 1);
                t.truncate(cut);
                t
            }
            _ => rng.bytes(200),
        };
        match config::parse(&text) {
            Ok(c) => {
                assert!(c.reuse_table_cap >= 1);
                assert!(c.server_idle_timeouts.len() <= config::MAX_SERVERS);
            }
            Err(e) => {
                assert!(!e.key.is_empty());
                assert!(e.key.chars().count() <= config::MAX_NAME_LEN);
            }
        }
    }
}
