//! The reuse table: what the filter knows about each pooled upstream
//! connection, keyed by the connection's two ends, `upstream.local_address`
//! and `upstream.address` (wasm has no upstream connection id). Keying on
//! both matters: one local address may legally talk to two upstream hosts
//! (a pinned source port with SO_REUSEADDR, or the kernel handing the same
//! ephemeral port out for another destination), and those are two
//! connections. One table per wasm VM, which is one per worker thread, as
//! Envoy's pools are.
//!
//! Bounded: when it holds `cap` entries, the least recently used eighth is
//! evicted in one sweep (amortised O(1) per new connection, and no LRU
//! bookkeeping on the per-request path), so memory never grows with traffic
//! or with the number of upstream hosts. An evicted connection is not
//! silently taken for a fresh one: the table remembers which connections it
//! evicted (a bounded set of key hashes), and when one comes back its
//! position and idle time are reported as unknown (`forgotten`). Evictions
//! are counted for a metric.
//!
//! A connection the table sees for the first time is not taken for a fresh
//! one either: it may have carried requests before the table existed (the
//! filter loaded or updated into a running Envoy, ECDS) or before the log
//! began (a pasted line, a grep). Its start is known only when the caller
//! has evidence that it was opened for this request (`opened`); otherwise
//! its history is unknown ([`History::Unknown`]).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Longest address kept; a longer "address" is not an address and is not
/// tracked.
pub const MAX_KEY_LEN: usize = 128;

/// What a request learns about the upstream connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reuse {
    /// 1 = the connection's first request; 0 = no connection.
    pub nth: u64,
    /// How long the connection sat idle before this request; `None` on the
    /// first request and when unknown.
    pub idle_ms: Option<u64>,
    /// Time since the connection carried its first request (as far as the
    /// table knows).
    pub age_ms: u64,
    /// The table had evicted this connection when it was full: it carried
    /// requests before, but how many and how long it sat idle then is
    /// unknown; `nth` counts from when it was seen again.
    pub forgotten: bool,
    /// The table saw the connection's first request: `nth` is its position
    /// on the connection. False when the connection was first seen without
    /// evidence that it was new then: `nth` counts from that sight.
    pub start_known: bool,
}

/// What the evidence says about a request's connection, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// No connection (the connect failed, or the request had none).
    None,
    /// Known first: the evidence shows the connection start.
    First,
    /// Known reused: an earlier request on it is in the evidence, so its
    /// idle time before this request is known (`nth` is exact only when
    /// `start_known`).
    Reused,
    /// The connection's history is not in the evidence: it may be fresh or
    /// reused after any idle time.
    Unknown,
}

impl Reuse {
    pub fn history(&self) -> History {
        match (self.nth, self.idle_ms) {
            (0, _) => History::None,
            (_, Some(_)) => History::Reused,
            (1, None) if self.start_known && !self.forgotten => History::First,
            _ => History::Unknown,
        }
    }

    /// Known to have carried an earlier request.
    pub fn reused(&self) -> bool {
        self.nth > 1 || self.forgotten
    }

    /// `nth` when it is the request's position on the connection.
    pub fn known_nth(&self) -> Option<u64> {
        (self.nth > 0 && self.start_known && !self.forgotten).then_some(self.nth)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    requests: u64,
    opened_ns: u64,
    last_done_ns: u64,
    stamp: u64,
    forgotten: bool,
    start_known: bool,
    /// Hash of the peer alone, and the local port, for `pinned_port`.
    peer: u64,
    local_port: Option<u16>,
}

#[derive(Debug)]
pub struct ReuseTable {
    cap: usize,
    entries: HashMap<u64, Entry, KeyBuild>,
    /// Increases with every use; the smallest stamps are the oldest uses.
    next_stamp: u64,
    /// Keys evicted recently (two generations of at most `cap` each).
    evicted: [HashSet<u64, KeyBuild>; 2],
    evictions: u64,
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// FNV-1a over the parts, each followed by a 0xff (never in an address):
/// the key of a connection. Cheaper per request than std's SipHash, and the
/// inputs are Envoy's own addresses, not attacker-chosen keys.
fn hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A hasher for keys that already are hashes (or small unique ids): one
/// multiply spreads them over the table's buckets.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// Maps and sets keyed by hashes or ids.
pub type KeyBuild = BuildHasherDefault<KeyHasher>;

/// The port of `host:port` (`[v6]:port` too).
pub fn port(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

fn trackable(local: &str, peer: &str) -> bool {
    !local.is_empty() && local.len() <= MAX_KEY_LEN && peer.len() <= MAX_KEY_LEN
}

impl ReuseTable {
    pub fn new(cap: usize) -> Self {
        ReuseTable {
            cap: cap.max(1),
            entries: HashMap::default(),
            next_stamp: 0,
            evicted: [HashSet::default(), HashSet::default()],
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Connections evicted because the table was full, since it was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn was_evicted(&self, key: u64) -> bool {
        self.evicted.iter().any(|set| set.contains(&key))
    }

    /// Whether the table holds the connection `local` → `peer` (a request
    /// on it finished since the table began, and it was not forgotten).
    pub fn knows(&self, local: &str, peer: &str) -> bool {
        self.entries.contains_key(&hash(&[local, peer]))
    }

    /// What recording a request that started at `start_ns` and ended at
    /// `end_ns` on the connection `local` → `peer` would report, without
    /// recording it (used while the response headers pass). `opened`: the
    /// caller has evidence that the connection was opened for this request
    /// (only asked about a connection the table does not hold).
    pub fn peek(&self, local: &str, peer: &str, start_ns: u64, end_ns: u64, opened: bool) -> Reuse {
        self.peek_key(
            hash(&[local, peer]),
            trackable(local, peer),
            (start_ns, end_ns),
            opened,
        )
    }

    fn peek_key(
        &self,
        key: u64,
        trackable: bool,
        (start_ns, end_ns): (u64, u64),
        opened: bool,
    ) -> Reuse {
        match self.entries.get(&key) {
            Some(e) => Reuse {
                nth: e.requests.saturating_add(1),
                // Overlapping requests (HTTP/2 multiplexing) were not idle.
                idle_ms: Some(ms(start_ns.saturating_sub(e.last_done_ns))),
                age_ms: ms(end_ns.saturating_sub(e.opened_ns)),
                forgotten: e.forgotten,
                start_known: e.start_known,
            },
            None => {
                let forgotten = trackable && self.was_evicted(key);
                Reuse {
                    nth: 1,
                    idle_ms: None,
                    age_ms: ms(end_ns.saturating_sub(start_ns)),
                    forgotten,
                    start_known: opened && !forgotten,
                }
            }
        }
    }

    /// Records a finished request and returns its reuse facts (`opened` as
    /// for [`ReuseTable::peek`]).
    pub fn record(
        &mut self,
        local: &str,
        peer: &str,
        start_ns: u64,
        end_ns: u64,
        opened: bool,
    ) -> Reuse {
        let key = hash(&[local, peer]);
        let trackable = trackable(local, peer);
        let reuse = self.peek_key(key, trackable, (start_ns, end_ns), opened);
        if !trackable {
            return reuse;
        }
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.requests = reuse.nth;
            entry.last_done_ns = entry.last_done_ns.max(end_ns);
            entry.stamp = stamp;
            return reuse;
        }
        if self.entries.len() >= self.cap {
            self.evict_oldest();
        }
        self.entries.insert(
            key,
            Entry {
                requests: 1,
                opened_ns: start_ns,
                last_done_ns: end_ns,
                stamp,
                forgotten: reuse.forgotten,
                start_known: reuse.start_known,
                peer: hash(&[peer]),
                local_port: port(local),
            },
        );
        reuse
    }

    /// Forgets a connection known to be gone (reset), so a later connection
    /// that gets the same local port starts again at nth 1.
    pub fn forget(&mut self, local: &str, peer: &str) {
        let key = hash(&[local, peer]);
        self.entries.remove(&key);
        for set in &mut self.evicted {
            set.remove(&key);
        }
    }

    /// The local port every known connection to `peer` uses, when there is
    /// at least one and they all use the same one: the evidence that the
    /// source port is pinned (the kernel picks a different ephemeral port
    /// for each concurrent connection to one peer). The known connections
    /// are the table's (finished requests) and `in_flight`: the local ports
    /// of connections to `peer` that carry a request right now, which the
    /// table has not seen finish yet.
    pub fn pinned_port(&self, peer: &str, in_flight: &[u16]) -> Option<u16> {
        let peer = hash(&[peer]);
        let mut ports = self
            .entries
            .values()
            .filter(|e| e.peer == peer)
            .map(|e| e.local_port)
            .chain(in_flight.iter().map(|p| Some(*p)));
        let first = ports.next()??;
        ports.all(|p| p == Some(first)).then_some(first)
    }

    /// Drops the least recently used eighth (at least one entry), and
    /// remembers which.
    fn evict_oldest(&mut self) {
        let n = (self.cap / 8).max(1);
        let mut stamps: Vec<u64> = self.entries.values().map(|e| e.stamp).collect();
        let cutoff = if n >= stamps.len() {
            u64::MAX
        } else {
            let (_, cutoff, _) = stamps.select_nth_unstable(n - 1);
            *cutoff
        };
        let cap = self.cap;
        let before = self.entries.len();
        let [older, newer] = &mut self.evicted;
        self.entries.retain(|key, e| {
            if e.stamp > cutoff {
                return true;
            }
            if newer.len() >= cap {
                std::mem::swap(older, newer);
                newer.clear();
            }
            newer.insert(*key);
            false
        });
        self.evictions = self
            .evictions
            .saturating_add((before - self.entries.len()) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const PEER: &str = "10.0.0.9:8080";

    #[test]
    fn first_request_then_reuse_with_idle_time() {
        let mut table = ReuseTable::new(4);
        let a = "127.0.0.1:40000";
        assert_eq!(
            table.record(a, PEER, 0, 10 * MS, true),
            Reuse {
                nth: 1,
                idle_ms: None,
                age_ms: 10,
                forgotten: false,
                start_known: true,
            }
        );
        assert_eq!(
            table.record(a, PEER, 5_010 * MS, 5_020 * MS, true),
            Reuse {
                nth: 2,
                idle_ms: Some(5_000),
                age_ms: 5_020,
                forgotten: false,
                start_known: true,
            }
        );
        assert_eq!(table.record(a, PEER, 5_020 * MS, 5_021 * MS, true).nth, 3);
    }

    #[test]
    fn a_connection_first_seen_without_evidence_of_its_start_is_unknown() {
        let mut table = ReuseTable::new(4);
        let first = table.record("a:1", PEER, 0, MS, false);
        assert_eq!((first.nth, first.history()), (1, History::Unknown));
        assert_eq!(first.known_nth(), None);
        // The next request on it is known reused, its idle time known; its
        // position on the connection is not.
        let next = table.record("a:1", PEER, 3 * MS, 4 * MS, false);
        assert_eq!((next.history(), next.idle_ms), (History::Reused, Some(2)));
        assert_eq!((next.nth, next.known_nth()), (2, None));
        // Opened for the request: known first.
        let fresh = table.record("b:1", PEER, 0, MS, true);
        assert_eq!(
            (fresh.history(), fresh.known_nth()),
            (History::First, Some(1))
        );
        assert_eq!(
            table.record("b:1", PEER, 2 * MS, 3 * MS, false).known_nth(),
            Some(2)
        );
        assert_eq!(Reuse::default().history(), History::None);
        assert!(table.knows("a:1", PEER) && !table.knows("c:1", PEER));
    }

    #[test]
    fn one_local_address_to_two_peers_is_two_connections() {
        let mut table = ReuseTable::new(8);
        let local = "127.0.0.1:40000";
        let nths: Vec<u64> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.1:80", "10.0.0.2:80"]
            .iter()
            .map(|peer| table.record(local, peer, 0, MS, true).nth)
            .collect();
        assert_eq!(nths, [1, 1, 2, 2]);
        table.forget(local, "10.0.0.1:80");
        assert_eq!(table.peek(local, "10.0.0.1:80", 0, 1, true).nth, 1);
        assert_eq!(table.peek(local, "10.0.0.2:80", 0, 1, true).nth, 3);
    }

    #[test]
    fn peek_does_not_record() {
        let mut table = ReuseTable::new(4);
        table.record("a:1", PEER, 0, MS, true);
        assert_eq!(table.peek("a:1", PEER, 3 * MS, 4 * MS, true).nth, 2);
        assert_eq!(table.peek("a:1", PEER, 3 * MS, 4 * MS, true).nth, 2);
        assert_eq!(table.peek("b:1", PEER, 3 * MS, 4 * MS, true).nth, 1);
    }

    #[test]
    fn overlapping_requests_have_zero_idle() {
        let mut table = ReuseTable::new(4);
        table.record("a:1", PEER, 0, 100 * MS, true);
        assert_eq!(
            table.record("a:1", PEER, 50 * MS, 120 * MS, true).idle_ms,
            Some(0)
        );
    }

    #[test]
    fn never_exceeds_its_cap_and_evicts_the_least_recently_used() {
        let mut table = ReuseTable::new(3);
        for port in 0..1000u64 {
            table.record(
                &format!("127.0.0.1:{port}"),
                PEER,
                port * MS,
                port * MS + 1,
                true,
            );
            assert!(table.len() <= 3);
        }
        // Keep "x" warm while others come and go: it survives.
        table.record("x:1", PEER, 0, 1, true);
        for port in 0..10u64 {
            table.record("x:1", PEER, 0, 1, true);
            table.record(&format!("10.0.0.1:{port}"), PEER, 0, 1, true);
        }
        assert_eq!(table.peek("x:1", PEER, 0, 1, true).nth, 12);
        assert_eq!(table.peek("10.0.0.1:0", PEER, 0, 1, true).nth, 1, "evicted");
        // The last one evicted is remembered as such: not taken for a fresh
        // connection. (The memory of evictions is bounded like the table.)
        let evicted = table.peek("10.0.0.1:7", PEER, 0, 1, true);
        assert!(evicted.forgotten, "{evicted:?}");
    }

    #[test]
    fn at_the_cap_an_evicted_connection_comes_back_forgotten_and_is_counted() {
        let mut table = ReuseTable::new(64);
        for port in 0..64u64 {
            table.record(&format!("p:{port}"), PEER, 0, 1, true);
        }
        assert_eq!((table.len(), table.evictions()), (64, 0));
        table.record("new:1", PEER, 0, 1, true);
        assert_eq!(table.len(), 64 - 8 + 1);
        assert_eq!(table.evictions(), 8);
        let back = table.record("p:7", PEER, 10 * MS, 11 * MS, true);
        assert_eq!((back.nth, back.idle_ms), (1, None));
        assert!(back.forgotten && back.reused(), "{back:?}");
        // Later requests on it know their idle time, still marked.
        let next = table.record("p:7", PEER, 20 * MS, 21 * MS, true);
        assert_eq!(next.idle_ms, Some(9));
        assert!(next.forgotten);
        assert_eq!(table.peek("p:8", PEER, 0, 1, true).nth, 2, "the rest kept");
        for port in 0..10_000u64 {
            table.record(&format!("q:{port}"), PEER, 0, 1, true);
            assert!(table.len() <= 64);
        }
        assert!(table.evicted.iter().all(|s| s.len() <= 64));
        assert!(table.evictions() > 9_000);
    }

    #[test]
    fn forgotten_and_oversized_keys_start_again() {
        let mut table = ReuseTable::new(3);
        table.record("a:1", PEER, 0, 1, true);
        table.forget("a:1", PEER);
        let again = table.record("a:1", PEER, 0, 1, true);
        assert_eq!((again.nth, again.forgotten), (1, false));
        let long = "1".repeat(MAX_KEY_LEN + 1);
        table.record(&long, PEER, 0, 1, true);
        assert_eq!(table.record(&long, PEER, 0, 1, true).nth, 1);
        assert_eq!(table.record("", PEER, 0, 1, true).nth, 1);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_cap_of_zero_still_keeps_one() {
        let mut table = ReuseTable::new(0);
        table.record("a:1", PEER, 0, 1, true);
        assert_eq!(table.record("a:1", PEER, 0, 1, true).nth, 2);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn pinned_port_needs_every_known_connection_to_the_peer_on_one_port() {
        let mut table = ReuseTable::new(16);
        assert_eq!(table.pinned_port(PEER, &[]), None, "no evidence");
        table.record("127.0.0.1:40000", PEER, 0, 1, true);
        table.record("127.0.0.1:40000", "10.0.0.1:1", 0, 1, true);
        assert_eq!(table.pinned_port(PEER, &[]), Some(40000));
        assert_eq!(table.pinned_port(PEER, &[40000]), Some(40000));
        assert_eq!(table.pinned_port(PEER, &[40002]), None, "two ports");
        table.record("127.0.0.1:40001", PEER, 0, 1, true);
        assert_eq!(table.pinned_port(PEER, &[]), None, "ephemeral ports");
        assert_eq!(table.pinned_port("10.0.0.1:1", &[]), Some(40000));
    }

    #[test]
    fn a_connection_in_flight_is_evidence_of_a_pinned_port() {
        let table = ReuseTable::new(16);
        // Nothing finished yet, one request in flight from port 40000: a
        // second connect() to that peer failing means that port is pinned.
        assert_eq!(table.pinned_port(PEER, &[40000]), Some(40000));
        assert_eq!(table.pinned_port(PEER, &[40000, 40000]), Some(40000));
        // Two in flight from two ports: the kernel picked them, ephemeral.
        assert_eq!(table.pinned_port(PEER, &[40000, 40001]), None);
    }

    #[test]
    fn ports_of_addresses() {
        assert_eq!(port("127.0.0.1:40000"), Some(40000));
        assert_eq!(port("[::1]:8080"), Some(8080));
        assert_eq!(port("pipe"), None);
    }
}
