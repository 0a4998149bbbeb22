//! Fuzz pass over everything `connlab diagnose` parses: log lines in every
//! format (valid lines, then damaged: bytes flipped, cut, spliced, invalid
//! UTF-8) through the whole pipeline, and captures through the pcap reader.
//! Deterministic (seeded xorshift); a short run is part of `cargo test`,
//! `CONNLAB_FUZZ_ITERS=2000000 cargo test --release -p connlab-lab --test
//! diagnose_fuzz` runs it long. Properties: never panics, every line is
//! counted exactly once, and memory state stays bounded.
#![allow(clippy::unwrap_used, clippy::panic)]

use connlab::diagnose::{Diagnoser, Options};

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
}

fn iterations() -> usize {
    std::env::var("CONNLAB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

const SEEDS: [&str; 6] = [
    "[2026-12-01T02:44:26.123Z] \"GET /slow HTTP/1.1\" 503 UC upstream_reset_before_response_started{connection_termination} - \"-\" 0 95 1 - \"-\" \"curl/8.5.0\" \"5f1c0c8e-1\" \"envoy:10000\" \"172.18.0.2:8080\" backend 172.18.0.3:43210 172.18.0.3:10000 172.18.0.4:51000 - default",
    "[2026-12-01T02:44:26.123Z] \"GET / HTTP/1.1\" 503 UF,URX 0 91 1000 - \"-\" \"curl/8.5.0\" \"id\" \"envoy:10000\" \"10.0.0.9:8080\"",
    r#"{"start_time":"2026-12-01T02:44:26.123Z","response_code":503,"response_flags":"UF","upstream_transport_failure_reason":"immediate_connect_error:_Cannot_assign_requested_address","upstream_request_attempt_count":4,"duration":2,"upstream_local_address":"10.0.0.1:4000","upstream_host":"10.0.0.2:80"}"#,
    r#"[2026-11-23 13:00:00.100][12][info][wasm] wasm log connlab connlab_http connlab: {"v":1,"event":"http","conn":7,"upstream":{"local":"127.0.0.1:40000","peer":null,"nth":2,"idle_ms":5900,"age_ms":6000},"attempts":1,"code":503,"flags":"UC","details":"x","failure":null,"diagnosis":"keepalive_race","explain":"why"}"#,
    "[2026-11-23 13:00:00.000][12][info][main] starting",
    r#"{"v":1,"event":"conn","conn":3,"first_byte_ms":150,"class":"http1","sni":null,"alpn":[],"method":"GET","chain":"PassthroughFilterChain","tls_failure":null,"diagnosis":"sniff_fallthrough","explain":"x"}"#,
];

fn mutated(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
    for _ in 0..rng.below(8) {
        let at = rng.below(bytes.len());
        bytes[at] = match rng.below(4) {
            0 => rng.next() as u8,
            1 => b' ',
            2 => b'"',
            _ => b"-[]{}:,0123456789"[rng.below(17)],
        };
    }
    match rng.below(5) {
        0 => bytes.truncate(rng.below(bytes.len() + 1)),
        1 => {
            let at = rng.below(bytes.len() + 1);
            let junk: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, junk);
        }
        _ => {}
    }
    bytes.retain(|&b| b != b'\n');
    bytes
}

#[test]
fn every_line_is_counted_once_and_nothing_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = iterations();
    let mut data = Vec::new();
    for _ in 0..n {
        data.extend(mutated(&mut rng));
        data.push(b'\n');
    }
    let mut diagnoser = Diagnoser::new(Options::default());
    diagnoser.read("fuzz", &data[..]).unwrap();
    let report = diagnoser.finish();
    let input = &report.inputs[0];
    assert_eq!(input.lines, n as u64);
    assert_eq!(
        input.requests + input.events + input.other + input.malformed + input.joined,
        input.lines
    );
    assert!(input.malformed_first.len() <= 5);
    assert!(report.diagnoses.len() < 64, "codes are a small fixed set");
    let _ = connlab::diagnose::render::human(&report);
    serde_json::to_string(&report).unwrap();
}

#[test]
fn damaged_captures_never_panic() {
    let good = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/diagnose/keepalive-race-rst.pcap"
    ))
    .unwrap();
    let mut rng = Rng(7);
    for _ in 0..(iterations() / 20).max(200) {
        let mut bytes = good.clone();
        for _ in 0..rng.below(16) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        if let Ok(capture) = connlab::evidence::pcap::read_from(&bytes[..]) {
            let _ = connlab::diagnose::tcp::findings(&capture);
        }
    }
}
