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

#[cfg(test)]
mod tests {
    use super::*;

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
