//! What a run records, and the parsers of it: `Evidence` holds everything
//! one run recorded (the roles produce it while the topology is up, the
//! checker only reads it after the topology is gone, and `--evidence DIR`
//! writes it as files a person can read and grep); `pcap`,
//! `packet_sequence`, `timeline` and `access_log` turn raw captures, client
//! records and logs into facts. Pure data, no Docker: uses only `programs`
//! (the client's record format) and `paths`; `check`, `outputs` and
//! `diagnose` read it.

pub mod access_log;
pub mod packet_sequence;
pub mod pcap;
pub mod timeline;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde_json::Value;

use crate::programs::client::{self, Output};
use packet_sequence::ReuseCounts;
use pcap::{Conversation, PcapError, Segment};

/// Per client node, its records, one JSON line per request
/// (`<node>.jsonl`): any `.jsonl` file that is not an Envoy's.
pub const CLIENT_SUFFIX: &str = ".jsonl";
/// Per Envoy: the filter's events.
pub const EVENTS_SUFFIX: &str = ".events.jsonl";
/// Per Envoy: the checker's access-log fields.
pub const ACCESS_SUFFIX: &str = ".access.jsonl";

/// Everything a run recorded, by node name.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// What each client recorded.
    pub clients: BTreeMap<String, Output>,
    /// What each Envoy, and the filter in it, saw.
    pub envoys: BTreeMap<String, EnvoyEvidence>,
    /// Each workload script's stdout.
    pub scripts: BTreeMap<String, String>,
    /// What each capturing node's tcpdump saw (a `packets` check on a node
    /// missing here is unknown).
    pub packets: BTreeMap<String, Packets>,
}

/// One node's capture.
#[derive(Debug, Clone, Default)]
pub struct Packets {
    /// The node's addresses: the conversations it served are those whose
    /// server (the side answering the first SYN) is one of them.
    pub addresses: Vec<IpAddr>,
    /// TCP segments in capture order.
    pub segments: Vec<Segment>,
    /// The pcap file as tcpdump wrote it.
    pub pcap: Vec<u8>,
}

/// Segments a packet ladder shows at most (a load run has thousands).
const LADDER_MAX: usize = 60;

impl Packets {
    pub fn read(file: &Path, addresses: Vec<IpAddr>) -> Result<Packets, PcapError> {
        let pcap = std::fs::read(file).map_err(|source| PcapError::Io {
            path: file.display().to_string(),
            source,
        })?;
        let segments = pcap::read_from(pcap.as_slice())?.segments;
        Ok(Packets {
            addresses,
            segments,
            pcap,
        })
    }

    fn serves(&self, server: SocketAddr) -> bool {
        self.addresses.contains(&server.ip())
    }

    /// The conversations the node served.
    pub fn served(&self) -> Vec<Conversation> {
        let mut all = pcap::conversations(&self.segments);
        all.retain(|c| self.serves(c.server));
        all
    }

    /// TIME_WAIT facts over the conversations the node served.
    pub fn reuse_counts(&self) -> ReuseCounts {
        packet_sequence::reuse_counts(&self.segments, |server| self.serves(server))
    }

    /// The node's side of a ladder: the first SYN that met its TIME_WAIT
    /// (else the first connection it served); `None` when it served none.
    pub fn ladder_excerpt(&self) -> Option<(Vec<Segment>, SocketAddr)> {
        let excerpt = packet_sequence::ladder_excerpt(&self.served(), LADDER_MAX);
        let node = excerpt
            .iter()
            .map(|s| if self.serves(s.from) { s.from } else { s.to })
            .next()?;
        Some((excerpt, node))
    }
}

/// What one Envoy saw.
#[derive(Debug, Clone, Default)]
pub struct EnvoyEvidence {
    /// The filter's events (`http` and `conn`), from Envoy's log.
    pub events: Vec<Value>,
    /// Envoy's access log, the checker's JSON fields.
    pub access_log: Vec<Value>,
    /// The same requests in Istio's default TEXT format, as written.
    pub access_log_text: String,
    /// Every counter and gauge (admin `/stats`).
    pub stats: BTreeMap<String, u64>,
    /// Admin `/config_dump`: the config Envoy actually ran.
    pub config_dump: String,
    /// Admin `/clusters`: endpoints and their health, as Envoy saw them.
    pub clusters: String,
}

impl Evidence {
    /// All client records, every client's.
    pub fn client_records(&self) -> impl Iterator<Item = &client::Record> {
        self.clients.values().flat_map(|o| o.records.iter())
    }

    /// Writes everything under `dir`: `<client>.jsonl` (one record per
    /// request); per Envoy, `<node>.events.jsonl` (the filter),
    /// `<node>.access.jsonl` (the checker's access-log fields),
    /// `<node>.access.log` (Istio's TEXT format), `<node>.stats.json`,
    /// `<node>.config_dump.json`, `<node>.clusters.txt`; per workload
    /// script, `<node>.stdout`; per capturing node, `<node>.pcap` and its
    /// packet ladder (`outputs::ladder`).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let lines = |values: Vec<String>| values.join("\n") + "\n";
        for (node, output) in &self.clients {
            let records = output.records.iter().map(client::request_line).collect();
            std::fs::write(dir.join(format!("{node}{CLIENT_SUFFIX}")), lines(records))?;
        }
        for (node, seen) in &self.envoys {
            let json = |values: &[Value]| lines(values.iter().map(Value::to_string).collect());
            let file = |suffix: &str| dir.join(format!("{node}.{suffix}"));
            std::fs::write(
                dir.join(format!("{node}{EVENTS_SUFFIX}")),
                json(&seen.events),
            )?;
            std::fs::write(
                dir.join(format!("{node}{ACCESS_SUFFIX}")),
                json(&seen.access_log),
            )?;
            std::fs::write(file("access.log"), &seen.access_log_text)?;
            let stats = serde_json::to_string_pretty(&seen.stats).unwrap_or_default();
            std::fs::write(file("stats.json"), stats)?;
            std::fs::write(file("config_dump.json"), &seen.config_dump)?;
            std::fs::write(file("clusters.txt"), &seen.clusters)?;
        }
        for (node, stdout) in &self.scripts {
            std::fs::write(dir.join(format!("{node}.stdout")), stdout)?;
        }
        for (node, packets) in &self.packets {
            std::fs::write(dir.join(format!("{node}.pcap")), &packets.pcap)?;
        }
        Ok(())
    }
}

/// The filter's events in an Envoy log: every line that Envoy's wasm logger
/// wrote (`... wasm log <plugin> <root_id> <vm_id>: {...}`) whose message is
/// a JSON object. Other lines, and messages that are not JSON, are skipped.
pub fn filter_events(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.contains("wasm log"))
        .filter_map(|line| line.find(": {").map(|at| &line[at + 2..]))
        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
        .filter(Value::is_object)
        .collect()
}

/// Envoy's `/stats` text (`name: value` lines) as numbers; histograms and
/// other non-numeric lines are skipped.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
        .collect()
}

/// A JSON-lines access log; lines that are not JSON objects are skipped.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_keep_numbers_only() {
        let stats = parse_stats(
            "cluster.backend.upstream_cx_total: 3\ncluster.backend.upstream_rq_time: P0(nan,1)\n",
        );
        assert_eq!(stats.len(), 1);
        assert_eq!(stats["cluster.backend.upstream_cx_total"], 3);
    }

    #[test]
    fn picks_only_filter_json_lines() {
        let log = "\
[2026-11-23 13:00:00.000][12][info][main] starting\n\
[2026-11-23 13:00:00.100][12][info][wasm] [source/extensions/common/wasm/context.cc:1195] wasm log connlab connlab_http connlab: {\"v\":1,\"event\":\"http\",\"code\":200}\n\
[2026-11-23 13:00:00.100][12][info][wasm] wasm log connlab connlab_http connlab: not json\n";
        let events = filter_events(log);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["code"], 200);
    }

    #[test]
    fn access_log_lines_skip_what_is_not_json() {
        let entries = json_lines("{\"code\":\"503\"}\n[info] starting\n");
        assert_eq!(entries.len(), 1);
    }
}
