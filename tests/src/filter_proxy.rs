//! Envoy with connlab_http in front of one upstream cluster, for the
//! filter's real-Envoy tests: start it, send requests, read back the
//! filter's events and Envoy's own access log line for each request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::envoy_process::EnvoyProcess;
use crate::{filter_wasm, http1};
use connlab::envoy::config::{bootstrap, file_access_log, hcm, http_wasm, listener};

pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The access log line: what Envoy itself says, beside the filter's state.
pub const LOG_FORMAT: &str =
    "%RESPONSE_CODE% flags=%RESPONSE_FLAGS% state=%FILTER_STATE(wasm.connlab.diagnosis:PLAIN)%\n";

pub struct Proxy {
    pub envoy: EnvoyProcess,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    access_log: PathBuf,
}

impl Proxy {
    /// Envoy with connlab_http (plugin config `config`) in front of one
    /// cluster `upstream` reached on every path.
    pub fn start(config: Value, route: Value, upstream: Value) -> Proxy {
        Proxy::start_with(config, vec![route], vec![upstream])
    }

    /// As `start`, with several routes and clusters.
    pub fn start_with(config: Value, routes: Vec<Value>, clusters: Vec<Value>) -> Proxy {
        Proxy::launch(config, routes, clusters, &[])
    }

    /// As `start`, with the connection manager upgrading these protocols
    /// (`websocket`, `CONNECT`) into tunnels.
    pub fn start_upgrading(
        config: Value,
        route: Value,
        upstream: Value,
        upgrades: &[&str],
    ) -> Proxy {
        Proxy::launch(config, vec![route], vec![upstream], upgrades)
    }

    fn launch(config: Value, routes: Vec<Value>, clusters: Vec<Value>, upgrades: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let access_log = dir.path().join("access.log");
        let filters = vec![http_wasm(&filter_wasm(), "connlab_http", Some(&config))];
        let mut manager = hcm(
            "main",
            filters,
            routes,
            vec![file_access_log(&access_log, LOG_FORMAT)],
        );
        if !upgrades.is_empty() {
            let upgrades: Vec<Value> = upgrades
                .iter()
                .map(|u| serde_json::json!({"upgrade_type": u}))
                .collect();
            manager["typed_config"]["upgrade_configs"] = Value::Array(upgrades);
        }
        let main = listener("main", vec![manager]);
        let envoy = EnvoyProcess::start(&bootstrap(vec![main], clusters)).expect("start Envoy");
        let addr = envoy.listener("main").expect("listener address");
        Proxy {
            envoy,
            addr,
            _dir: dir,
            access_log,
        }
    }

    pub fn connect(&self) -> http1::Conn {
        let conn = http1::Conn::connect(self.addr, TIMEOUT).expect("connect to Envoy");
        conn.set_read_timeout(Some(TIMEOUT));
        conn
    }

    pub fn get(&self, path: &str) -> http1::Response {
        self.connect().get(path).expect("a response from Envoy")
    }

    /// `n` requests at once, one per connection, sent `gap` apart (in that
    /// order), then every answer read; their statuses, sorted.
    pub fn concurrent_statuses(&self, n: usize, gap: Duration) -> Vec<u16> {
        let mut conns: Vec<_> = (0..n).map(|_| self.connect()).collect();
        for conn in &mut conns {
            conn.send_raw(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
                .expect("send");
            std::thread::sleep(gap);
        }
        let mut statuses: Vec<u16> = conns
            .iter_mut()
            .map(|c| c.read_response().expect("a response").status)
            .collect();
        statuses.sort();
        statuses
    }

    /// The filter's events once `n` have been logged.
    pub fn events(&self, n: usize) -> Vec<Value> {
        let events = self.envoy.wait_events(n, TIMEOUT);
        assert_eq!(events.len(), n, "{events:#?}\n{}", self.envoy.log_tail());
        events
    }

    /// The access log's lines once `n` have been written.
    pub fn access_log(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n || start.elapsed() > TIMEOUT {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts the only failed request's event and access log line (the
    /// `n`th line), returns the event.
    pub fn assert_diagnosis(&self, code: &str, status: u16, flags: &str) -> Value {
        let events = self.events(1);
        let event = &events[0];
        assert_eq!(event["diagnosis"], code, "{event:#?}");
        assert!(
            event["explain"].as_str().is_some_and(|s| !s.is_empty()),
            "{event:#?}"
        );
        assert_eq!(event["code"], status, "{event:#?}");
        assert_eq!(event["flags"], flags, "{event:#?}");
        self.assert_logged(&format!(
            "{status} flags={} state={code}",
            envoy_flags(flags)
        ));
        event.clone()
    }

    /// Asserts Envoy's access log has `line` (it prints "-" for no flags).
    pub fn assert_logged(&self, line: &str) {
        let start = Instant::now();
        loop {
            let log = self.access_log(1);
            if log.iter().any(|l| l == line) {
                return;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "Envoy's %RESPONSE_FLAGS% and the filter state agree with the event: {line} in {log:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Envoy prints "-" for no flags.
pub fn envoy_flags(flags: &str) -> &str {
    if flags.is_empty() {
        "-"
    } else {
        flags
    }
}
