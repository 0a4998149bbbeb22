//! Reading what Envoy and the filter left behind.

use serde_json::Value;

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
pub fn parse_stats(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
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
}
