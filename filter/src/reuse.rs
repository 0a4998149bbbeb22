//! The reuse table: what the filter knows about each pooled upstream
//! connection, keyed by `upstream.local_address` (wasm has no upstream
//! connection id; Envoy's side of the socket is its identity). One table per
//! wasm VM, which is one per worker thread, as Envoy's pools are.
//!
//! Bounded: when it holds `cap` entries, the least recently used eighth is
//! evicted in one sweep (amortised O(1) per new connection, and no LRU
//! bookkeeping on the per-request path), so memory never grows with traffic
//! or with the number of upstream hosts.

use std::collections::HashMap;

/// Longest key kept; a longer "address" is not an address and is not tracked.
pub const MAX_KEY_LEN: usize = 128;

/// What a request learns about the upstream connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reuse {
    /// 1 = the connection's first request.
    pub nth: u64,
    /// How long the connection sat idle before this request; `None` on the
    /// first request.
    pub idle_ms: Option<u64>,
    /// Time since the connection carried its first request.
    pub age_ms: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    requests: u64,
    opened_ns: u64,
    last_done_ns: u64,
    stamp: u64,
}

#[derive(Debug)]
pub struct ReuseTable {
    cap: usize,
    entries: HashMap<String, Entry>,
    /// Increases with every use; the smallest stamps are the oldest uses.
    next_stamp: u64,
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

impl ReuseTable {
    pub fn new(cap: usize) -> Self {
        ReuseTable {
            cap: cap.max(1),
            entries: HashMap::new(),
            next_stamp: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What recording a request that started at `start_ns` and ended at
    /// `end_ns` on connection `local` would report, without recording it
    /// (used while the response headers pass, before the request ends).
    pub fn peek(&self, local: &str, start_ns: u64, end_ns: u64) -> Reuse {
        match self.entries.get(local) {
            Some(e) => Reuse {
                nth: e.requests.saturating_add(1),
                // Overlapping requests (HTTP/2 multiplexing) were not idle.
                idle_ms: Some(ms(start_ns.saturating_sub(e.last_done_ns))),
                age_ms: ms(end_ns.saturating_sub(e.opened_ns)),
            },
            None => Reuse {
                nth: 1,
                idle_ms: None,
                age_ms: ms(end_ns.saturating_sub(start_ns)),
            },
        }
    }

    /// Records a finished request and returns its reuse facts.
    pub fn record(&mut self, local: &str, start_ns: u64, end_ns: u64) -> Reuse {
        let reuse = self.peek(local, start_ns, end_ns);
        if local.is_empty() || local.len() > MAX_KEY_LEN {
            return reuse;
        }
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.wrapping_add(1);
        if let Some(entry) = self.entries.get_mut(local) {
            entry.requests = reuse.nth;
            entry.last_done_ns = entry.last_done_ns.max(end_ns);
            entry.stamp = stamp;
            return reuse;
        }
        if self.entries.len() >= self.cap {
            self.evict_oldest();
        }
        self.entries.insert(
            local.to_string(),
            Entry {
                requests: 1,
                opened_ns: start_ns,
                last_done_ns: end_ns,
                stamp,
            },
        );
        reuse
    }

    /// Forgets a connection known to be gone (reset or refused), so a later
    /// connection that gets the same local port starts again at nth 1.
    pub fn forget(&mut self, local: &str) {
        self.entries.remove(local);
    }

    /// Drops the least recently used eighth (at least one entry).
    fn evict_oldest(&mut self) {
        let n = (self.cap / 8).max(1);
        let mut stamps: Vec<u64> = self.entries.values().map(|e| e.stamp).collect();
        if n >= stamps.len() {
            self.entries.clear();
            return;
        }
        let (_, cutoff, _) = stamps.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        self.entries.retain(|_, e| e.stamp > cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn first_request_then_reuse_with_idle_time() {
        let mut table = ReuseTable::new(4);
        let a = "127.0.0.1:40000";
        assert_eq!(
            table.record(a, 0, 10 * MS),
            Reuse {
                nth: 1,
                idle_ms: None,
                age_ms: 10
            }
        );
        assert_eq!(
            table.record(a, 5_010 * MS, 5_020 * MS),
            Reuse {
                nth: 2,
                idle_ms: Some(5_000),
                age_ms: 5_020
            }
        );
        assert_eq!(table.record(a, 5_020 * MS, 5_021 * MS).nth, 3);
    }

    #[test]
    fn peek_does_not_record() {
        let mut table = ReuseTable::new(4);
        table.record("a", 0, MS);
        assert_eq!(table.peek("a", 3 * MS, 4 * MS).nth, 2);
        assert_eq!(table.peek("a", 3 * MS, 4 * MS).nth, 2);
        assert_eq!(table.peek("b", 3 * MS, 4 * MS).nth, 1);
    }

    #[test]
    fn overlapping_requests_have_zero_idle() {
        let mut table = ReuseTable::new(4);
        table.record("a", 0, 100 * MS);
        assert_eq!(table.record("a", 50 * MS, 120 * MS).idle_ms, Some(0));
    }

    #[test]
    fn never_exceeds_its_cap_and_evicts_the_least_recently_used() {
        let mut table = ReuseTable::new(3);
        for port in 0..1000u64 {
            table.record(&format!("127.0.0.1:{port}"), port * MS, port * MS + 1);
            assert!(table.len() <= 3);
        }
        // Keep "x" warm while others come and go: it survives.
        table.record("x", 0, 1);
        for port in 0..10u64 {
            table.record("x", 0, 1);
            table.record(&format!("10.0.0.1:{port}"), 0, 1);
        }
        assert_eq!(table.peek("x", 0, 1).nth, 12);
        assert_eq!(table.peek("10.0.0.1:0", 0, 1).nth, 1, "evicted");
    }

    #[test]
    fn large_tables_evict_an_eighth_at_a_time() {
        let mut table = ReuseTable::new(64);
        for port in 0..64u64 {
            table.record(&format!("p{port}"), 0, 1);
        }
        assert_eq!(table.len(), 64);
        table.record("new", 0, 1);
        assert_eq!(table.len(), 64 - 8 + 1);
        assert_eq!(table.peek("p7", 0, 1).nth, 1, "oldest eighth evicted");
        assert_eq!(table.peek("p8", 0, 1).nth, 2, "the rest kept");
        for port in 0..10_000u64 {
            table.record(&format!("q{port}"), 0, 1);
            assert!(table.len() <= 64);
        }
    }

    #[test]
    fn forgotten_and_oversized_keys_start_again() {
        let mut table = ReuseTable::new(3);
        table.record("a", 0, 1);
        table.forget("a");
        assert_eq!(table.record("a", 0, 1).nth, 1);
        let long = "1".repeat(MAX_KEY_LEN + 1);
        table.record(&long, 0, 1);
        assert_eq!(table.record(&long, 0, 1).nth, 1);
        assert_eq!(table.record("", 0, 1).nth, 1);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_cap_of_zero_still_keeps_one() {
        let mut table = ReuseTable::new(0);
        table.record("a", 0, 1);
        assert_eq!(table.record("a", 0, 1).nth, 2);
        assert_eq!(table.len(), 1);
    }
}
