//! The client's plan: every knob of a run (`ClientConfig`), as scenario
//! files embed it and as `connlab-client`'s flags, and its validation.

use clap::{ArgAction, Parser};
use serde::{Deserialize, Serialize};

const DEFAULT_PATH: &str = "/";
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5000;

/// Every knob of a run. The CLI flags are these fields (`--gaps-ms 0,5900`),
/// and scenario files embed it as data; [`ClientConfig::to_args`] turns it
/// back into flags for a container's command line.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// host:port to send requests to (resolved once, at start).
    #[arg(long)]
    pub target: String,
    /// Request path.
    #[arg(long, default_value = DEFAULT_PATH)]
    #[serde(default = "default_path")]
    pub path: String,
    /// Concurrent workers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Requests per worker. With `duration_ms` too, whichever ends first.
    #[arg(long)]
    #[serde(default)]
    pub requests: Option<u64>,
    /// Stop after this long: no request starts later, and one still waiting
    /// then is recorded as `unfinished`. Without it the bound is 600 s.
    #[arg(long)]
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Reuse the connection (a failed request still drops it, and the next
    /// request reconnects). `false`: a new connection and `connection: close`
    /// per request.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    #[serde(default = "default_keep_alive")]
    pub keep_alive: bool,
    /// Idle gap before each request of a worker, from the end of its previous
    /// request, cycled: `0,5900` = request, 5.9 s idle, request, ...
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub gaps_ms: Vec<u64>,
    /// Requests per second per worker, on a fixed schedule (instead of gaps);
    /// a slot missed while a request is still running is skipped.
    #[arg(long)]
    #[serde(default)]
    pub rate: Option<f64>,
    /// Wait this long after connecting before sending the first byte.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub first_byte_delay_ms: u64,
    /// Give up on a response after this long; 0 waits (until the run ends).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub read_timeout_ms: u64,
    /// Give up on connect() after this long (recorded as connect errno 110).
    #[arg(long, default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Bind this local port (SO_REUSEADDR) before every connect.
    #[arg(long)]
    #[serde(default)]
    pub source_port: Option<u16>,
    /// TCP_USER_TIMEOUT (socket option 18) on every connection.
    #[arg(long)]
    #[serde(default)]
    pub tcp_user_timeout_ms: Option<u64>,
    /// Turn on TCP keep-alive: first probe after this many idle seconds.
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_idle_s: Option<u64>,
    /// Seconds between keep-alive probes (needs `tcp_keepalive_idle_s`).
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_interval_s: Option<u64>,
    /// Unanswered probes before the kernel drops the connection (needs
    /// `tcp_keepalive_idle_s`).
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_count: Option<u32>,
}

fn default_path() -> String {
    DEFAULT_PATH.to_string()
}

fn default_connections() -> u32 {
    1
}

fn default_keep_alive() -> bool {
    true
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// `connlab-client`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "connlab-client",
    about = "HTTP/1.1 load generator: one JSON line per request on stdout, then a summary line"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ClientConfig,
}

/// A knob with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client config: `{field}` {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl ClientConfig {
    /// A config with every knob at its default.
    pub fn new(target: impl Into<String>) -> ClientConfig {
        ClientConfig {
            target: target.into(),
            path: default_path(),
            connections: default_connections(),
            requests: None,
            duration_ms: None,
            keep_alive: default_keep_alive(),
            gaps_ms: Vec::new(),
            rate: None,
            first_byte_delay_ms: 0,
            read_timeout_ms: 0,
            connect_timeout_ms: default_connect_timeout_ms(),
            source_port: None,
            tcp_user_timeout_ms: None,
            tcp_keepalive_idle_s: None,
            tcp_keepalive_interval_s: None,
            tcp_keepalive_count: None,
        }
    }

    /// Parses flags (without the program name), as `connlab-client` does.
    pub fn from_args<I, T>(args: I) -> Result<ClientConfig, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("connlab-client"))
            .chain(args.into_iter().map(Into::into));
        Ok(Cli::try_parse_from(argv)?.config)
    }

    /// The flags that make `connlab-client` run exactly this config.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        flag("target", self.target.clone());
        flag("path", self.path.clone());
        flag("connections", self.connections.to_string());
        if let Some(n) = self.requests {
            flag("requests", n.to_string());
        }
        if let Some(ms) = self.duration_ms {
            flag("duration-ms", ms.to_string());
        }
        flag("keep-alive", self.keep_alive.to_string());
        if !self.gaps_ms.is_empty() {
            let gaps: Vec<String> = self.gaps_ms.iter().map(u64::to_string).collect();
            flag("gaps-ms", gaps.join(","));
        }
        if let Some(rate) = self.rate {
            flag("rate", rate.to_string());
        }
        flag("first-byte-delay-ms", self.first_byte_delay_ms.to_string());
        flag("read-timeout-ms", self.read_timeout_ms.to_string());
        flag("connect-timeout-ms", self.connect_timeout_ms.to_string());
        if let Some(port) = self.source_port {
            flag("source-port", port.to_string());
        }
        if let Some(ms) = self.tcp_user_timeout_ms {
            flag("tcp-user-timeout-ms", ms.to_string());
        }
        if let Some(s) = self.tcp_keepalive_idle_s {
            flag("tcp-keepalive-idle-s", s.to_string());
        }
        if let Some(s) = self.tcp_keepalive_interval_s {
            flag("tcp-keepalive-interval-s", s.to_string());
        }
        if let Some(n) = self.tcp_keepalive_count {
            flag("tcp-keepalive-count", n.to_string());
        }
        args
    }

    /// Checks every knob without touching the network (target resolution
    /// happens when the run starts).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, problem: &str| {
            Err(ConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        match self.target.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return bad("target", "must be host:port"),
        }
        if !self.path.starts_with('/') {
            return bad("path", "must start with /");
        }
        if self.connections == 0 {
            return bad("connections", "must be at least 1");
        }
        if self.requests == Some(0) {
            return bad("requests", "must be at least 1");
        }
        if self.requests.is_none() && self.duration_ms.is_none() {
            return bad("requests", "or `duration_ms` must be set");
        }
        if self.duration_ms == Some(0) {
            return bad("duration_ms", "must be above 0");
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return bad("rate", "must be a positive number");
            }
            if !self.gaps_ms.is_empty() {
                return bad("rate", "and `gaps_ms` exclude each other");
            }
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "must be above 0");
        }
        if self.tcp_keepalive_idle_s == Some(0) {
            return bad("tcp_keepalive_idle_s", "must be above 0");
        }
        if self.tcp_keepalive_idle_s.is_none()
            && (self.tcp_keepalive_interval_s.is_some() || self.tcp_keepalive_count.is_some())
        {
            return bad(
                "tcp_keepalive_idle_s",
                "must be set to use keep-alive probes",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let config: ClientConfig = serde_json::from_str(
            r#"{"target": "envoy:10000", "requests": 2, "gaps_ms": [0, 5900]}"#,
        )
        .unwrap();
        let mut expected = ClientConfig::new("envoy:10000");
        expected.requests = Some(2);
        expected.gaps_ms = vec![0, 5900];
        assert_eq!(config, expected);
        let unknown = serde_json::from_str::<ClientConfig>(r#"{"target": "a:1", "gap_ms": [1]}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown field `gap_ms`"), "{unknown}");
        assert!(serde_json::from_str::<ClientConfig>(r#"{"requests": 1}"#).is_err());
    }

    #[test]
    fn config_reads_from_a_scenario_toml_table() {
        #[derive(Deserialize)]
        struct Variant {
            client: ClientConfig,
        }
        let variant: Variant = toml::from_str(
            "client = { target = \"envoy:10000\", requests = 6, gaps_ms = [0, 5900], rate = 2 }",
        )
        .unwrap();
        assert_eq!(variant.client.gaps_ms, [0, 5900]);
        assert_eq!(variant.client.rate, Some(2.0));
        let typo = toml::from_str::<Variant>("client = { target = \"a:1\", request = 6 }")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(typo.contains("unknown field `request`"), "{typo}");
    }

    #[test]
    fn to_args_round_trips_through_the_cli() {
        let mut config = ClientConfig::new("envoy:10000");
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
        config.path = "/slow?x=1".into();
        config.connections = 3;
        config.requests = Some(4);
        config.duration_ms = Some(20_000);
        config.keep_alive = false;
        config.gaps_ms = vec![0, 5900];
        config.first_byte_delay_ms = 150;
        config.read_timeout_ms = 1000;
        config.connect_timeout_ms = 250;
        config.source_port = Some(40_000);
        config.tcp_user_timeout_ms = Some(3000);
        config.tcp_keepalive_idle_s = Some(1);
        config.tcp_keepalive_interval_s = Some(1);
        config.tcp_keepalive_count = Some(3);
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
        config.gaps_ms.clear();
        config.rate = Some(2.5);
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let field = |edit: fn(&mut ClientConfig)| {
            let mut config = ClientConfig::new("backend:8080");
            config.requests = Some(1);
            edit(&mut config);
            config.validate().err().map(|e| e.field)
        };
        assert_eq!(field(|_| {}), None);
        assert_eq!(field(|c| c.target = "backend".into()), Some("target"));
        assert_eq!(field(|c| c.target = ":80".into()), Some("target"));
        assert_eq!(field(|c| c.path = "x".into()), Some("path"));
        assert_eq!(field(|c| c.connections = 0), Some("connections"));
        assert_eq!(field(|c| c.requests = None), Some("requests"));
        assert_eq!(field(|c| c.requests = Some(0)), Some("requests"));
        assert_eq!(field(|c| c.duration_ms = Some(0)), Some("duration_ms"));
        assert_eq!(field(|c| c.rate = Some(0.0)), Some("rate"));
        assert_eq!(
            field(|c| {
                c.rate = Some(1.0);
                c.gaps_ms = vec![1];
            }),
            Some("rate")
        );
        assert_eq!(
            field(|c| c.tcp_keepalive_count = Some(3)),
            Some("tcp_keepalive_idle_s")
        );
        let mut bounded_by_time = ClientConfig::new("[::1]:80");
        bounded_by_time.duration_ms = Some(100);
        assert_eq!(bounded_by_time.validate(), Ok(()));
    }
}
