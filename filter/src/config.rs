//! The plugin configuration (Envoy `configuration`, Istio `pluginConfig`):
//! JSON, every key optional, compiled once in `on_configure` into a
//! ready-to-use [`Config`]. An unknown key or a bad value is an error that
//! names the key, and the host adapter then makes Envoy refuse the filter.

use serde_json::{Map, Value};

/// Which events are logged. Metrics always count everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// Only requests and connections with a diagnosis (the default).
    Failures,
    /// Every request and every connection.
    All,
}

/// A backend's keep-alive idle timeout, matched against a failed request's
/// idle time to name the server that most likely closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTimeout {
    pub name: String,
    pub idle_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub events: Events,
    /// Most upstream connections the reuse table remembers (LRU beyond).
    pub reuse_table_cap: usize,
    /// Known server idle timeouts, matched in order.
    pub server_idle_timeouts: Vec<ServerTimeout>,
    /// An idle time `t` matches a timeout `T` when
    /// `T - before <= t <= T + after`: real servers close a little after
    /// their nominal timeout (Node.js 20 closes at about T + 1 s).
    pub idle_match_before_ms: u64,
    pub idle_match_after_ms: u64,
    /// First bytes later than this after accept are "late": set it to the
    /// listener's `listener_filters_timeout` (protocol detection timeout).
    pub sniff_threshold_ms: u64,
    /// The filter chains a sniffing listener falls through to when protocol
    /// detection times out; `sniff_fallthrough` is only named on these
    /// (default: `DEFAULT_FALLTHROUGH_CHAINS`, where Istio lets the filter see one).
    pub fallthrough_chains: Vec<String>,
    /// A reset this soon after the request is prompt enough for a
    /// keep-alive race (one round trip, with room for a cross-region RTT
    /// and a busy worker); a later reset is the backend dropping the request.
    pub race_window_ms: u64,
    /// Most events logged per second per worker (and plugin); the rest are
    /// counted and reported in a `suppressed` summary event.
    pub events_per_second: u64,
    /// The TCP_USER_TIMEOUT the upstream clusters set (socket option level
    /// 6, name 18), when they do: a connection that ends this long after a
    /// request with nothing back is the kernel giving up on a dead peer
    /// (`upstream_dead_peer`). `None`: only the kernel's own give-up
    /// (tcp_retries2, about 15 min) is recognised.
    pub tcp_user_timeout_ms: Option<u64>,
    /// When set, responses carry the diagnosis in this header (off by
    /// default; meant for test clients, not for production traffic).
    pub response_header: Option<String>,
    /// For this long after the filter starts, an upstream connection it
    /// sees for the first time may be one Envoy pooled before the filter
    /// was loaded (ECDS, a WasmPlugin update into a running sidecar): its
    /// history is unknown, never taken for a fresh connection. Past it, a
    /// pooled connection the filter has not seen would have idled past
    /// Envoy's upstream `idle_timeout` (1 h by default; Istio sets none on
    /// outbound clusters) and been closed. 0: the filter starts with Envoy
    /// (static bootstrap), so no connection predates it.
    pub unknown_history_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events: Events::Failures,
            reuse_table_cap: 1024,
            server_idle_timeouts: vec![
                ServerTimeout {
                    name: "Node.js".into(),
                    idle_ms: 5_000,
                },
                ServerTimeout {
                    name: "CherryPy".into(),
                    idle_ms: 10_000,
                },
                ServerTimeout {
                    name: "Tomcat".into(),
                    idle_ms: 20_000,
                },
            ],
            idle_match_before_ms: 500,
            idle_match_after_ms: 1_500,
            sniff_threshold_ms: 100,
            fallthrough_chains: DEFAULT_FALLTHROUGH_CHAINS
                .iter()
                .map(|c| c.to_string())
                .collect(),
            race_window_ms: 250,
            events_per_second: 100,
            tcp_user_timeout_ms: None,
            response_header: None,
            unknown_history_ms: 3_600_000,
        }
    }
}

/// The fall-through chain a NETWORK WasmPlugin can sit on in an Istio
/// sidecar: the inbound listener's passthrough TCP chain `virtualInbound`
/// (0.0.0.0:15006), where a slow plaintext client lands when detection
/// times out on a port with no Service. Istio places a SERVER-mode plugin
/// on every virtualInbound chain but the blackhole one and a CLIENT-mode
/// plugin on the outbound per-port chains (pilot/pkg/networking/core), and
/// never on the outbound fall-through chains (`PassthroughFilterChain`,
/// `virtualOutbound-catchall-tcp`: stats filters and tcp_proxy only), so
/// naming those would be naming chains the filter never runs on. A port's
/// own chains (`0.0.0.0_<port>`) are named alike for HTTP and TCP, so they
/// are not fall-throughs. A plain Envoy names its own chains in the config.
pub const DEFAULT_FALLTHROUGH_CHAINS: [&str; 1] = ["virtualInbound"];

/// A rejected configuration: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connlab: bad configuration key `{}`: {}",
            self.key, self.reason
        )
    }
}

/// Limits that keep a hostile or mistaken configuration from costing memory.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
pub const MAX_REUSE_TABLE_CAP: u64 = 1 << 20;
pub const MAX_SERVERS: usize = 32;
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_CHAINS: usize = 32;
pub const MAX_CHAIN_NAME_LEN: usize = 256;
const MAX_MS: u64 = 24 * 3600 * 1000;

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    let key = if key.is_empty() { "(empty key)" } else { key };
    ConfigError {
        key: key.chars().take(MAX_NAME_LEN).collect(),
        reason: reason.into(),
    }
}

/// Parses the plugin configuration. Empty bytes (no configuration) mean all
/// defaults, as does `{}`.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(err(
            "(config)",
            format!("longer than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Config::default());
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| err("(config)", format!("not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(err("(config)", "must be a JSON object"));
    };
    compile(&map)
}

fn compile(map: &Map<String, Value>) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    for (key, value) in map {
        match key.as_str() {
            "events" => {
                config.events = match value.as_str() {
                    Some("failures") => Events::Failures,
                    Some("all") => Events::All,
                    _ => return Err(err(key, "must be \"failures\" or \"all\"")),
                }
            }
            "reuse_table_cap" => {
                config.reuse_table_cap = ms_or_count(key, value, 1, MAX_REUSE_TABLE_CAP)? as usize
            }
            "server_idle_timeouts" => config.server_idle_timeouts = servers(key, value)?,
            "idle_match_before_ms" => {
                config.idle_match_before_ms = ms_or_count(key, value, 0, MAX_MS)?
            }
            "idle_match_after_ms" => {
                config.idle_match_after_ms = ms_or_count(key, value, 0, MAX_MS)?
            }
            "sniff_threshold_ms" => config.sniff_threshold_ms = ms_or_count(key, value, 1, MAX_MS)?,
            "response_header" => config.response_header = header_name(key, value)?,
            "fallthrough_chains" => config.fallthrough_chains = chains(key, value)?,
            "race_window_ms" => config.race_window_ms = ms_or_count(key, value, 1, 60_000)?,
            "tcp_user_timeout_ms" => {
                config.tcp_user_timeout_ms = Some(ms_or_count(key, value, 1, MAX_MS)?)
            }
            "unknown_history_ms" => config.unknown_history_ms = ms_or_count(key, value, 0, MAX_MS)?,
            "events_per_second" => {
                config.events_per_second = ms_or_count(key, value, 1, 1_000_000)?
            }
            _ => return Err(err(key, "unknown key")),
        }
    }
    Ok(config)
}

fn ms_or_count(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(err(key, format!("must be an integer from {min} to {max}"))),
    }
}

/// `{"Node.js": 5000, ...}`, in the order given; `{}` disables matching.
fn servers(key: &str, value: &Value) -> Result<Vec<ServerTimeout>, ConfigError> {
    let Value::Object(map) = value else {
        return Err(err(
            key,
            "must be an object of server name to idle timeout in ms",
        ));
    };
    if map.len() > MAX_SERVERS {
        return Err(err(key, format!("at most {MAX_SERVERS} servers")));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, ms) in map {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if !valid_name {
            return Err(err(
                key,
                format!("server names are 1 to {MAX_NAME_LEN} printable ASCII characters"),
            ));
        }
        let idle_ms = ms_or_count(&format!("{key}.{name}"), ms, 1, MAX_MS)?;
        out.push(ServerTimeout {
            name: name.clone(),
            idle_ms,
        });
    }
    Ok(out)
}

/// A list of filter chain names; `[]` turns `sniff_fallthrough` off.
fn chains(key: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let reason = format!(
        "must be a list of at most {MAX_CHAINS} filter chain names of 1 to {MAX_CHAIN_NAME_LEN} characters"
    );
    let Value::Array(items) = value else {
        return Err(err(key, reason));
    };
    if items.len() > MAX_CHAINS {
        return Err(err(key, reason));
    }
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(name) if !name.is_empty() && name.len() <= MAX_CHAIN_NAME_LEN => {
                Ok(name.to_string())
            }
            _ => Err(err(key, reason.clone())),
        })
        .collect()
}

/// A lower-case HTTP header token, or null for off.
fn header_name(key: &str, value: &Value) -> Result<Option<String>, ConfigError> {
    match value {
        Value::Null => Ok(None),
        Value::String(name)
            if !name.is_empty()
                && name.len() <= MAX_NAME_LEN
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            Ok(Some(name.clone()))
        }
        _ => Err(err(
            key,
            format!("must be null or a header name of 1 to {MAX_NAME_LEN} characters a-z, 0-9, -"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_means_defaults() {
        assert_eq!(parse(b""), Ok(Config::default()));
        assert_eq!(parse(b"  \n"), Ok(Config::default()));
        assert_eq!(parse(b"{}"), Ok(Config::default()));
        assert_eq!(Config::default().events, Events::Failures);
    }

    /// The default is the fall-through chain Istio puts a NETWORK plugin
    /// on (SERVER mode: virtualInbound); the outbound fall-through chains
    /// carry no plugin in Istio, so they are not in it. A plain Envoy (or
    /// the lab's own sniffing listener) names its chain explicitly, and the
    /// list replaces the default rather than adding to it.
    #[test]
    fn fallthrough_chains_default_to_where_istio_places_the_plugin() {
        let default = Config::default().fallthrough_chains;
        assert_eq!(default, vec!["virtualInbound".to_string()]);
        for outbound in ["PassthroughFilterChain", "virtualOutbound-catchall-tcp"] {
            assert!(!default.iter().any(|c| c == outbound), "{outbound}");
        }
        let plain = parse(br#"{"fallthrough_chains":["PassthroughFilterChain"]}"#).unwrap();
        assert_eq!(plain.fallthrough_chains, vec!["PassthroughFilterChain"]);
        let off = parse(br#"{"fallthrough_chains":[]}"#).unwrap();
        assert!(off.fallthrough_chains.is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            br#"{"events":"all","reuse_table_cap":8,"server_idle_timeouts":{"gunicorn":2000},
                "idle_match_before_ms":100,"idle_match_after_ms":200,"sniff_threshold_ms":5000,
                "response_header":"x-connlab","fallthrough_chains":["tcp"],"race_window_ms":400,
                "events_per_second":7,"tcp_user_timeout_ms":10000}"#,
        )
        .unwrap();
        assert_eq!(config.events, Events::All);
        assert_eq!(config.reuse_table_cap, 8);
        assert_eq!(
            config.server_idle_timeouts,
            vec![ServerTimeout {
                name: "gunicorn".into(),
                idle_ms: 2000
            }]
        );
        assert_eq!(
            (config.idle_match_before_ms, config.idle_match_after_ms),
            (100, 200)
        );
        assert_eq!(config.sniff_threshold_ms, 5000);
        assert_eq!(config.response_header.as_deref(), Some("x-connlab"));
        assert_eq!(config.fallthrough_chains, vec!["tcp".to_string()]);
        assert_eq!(config.race_window_ms, 400);
        assert_eq!(config.events_per_second, 7);
        assert_eq!(config.tcp_user_timeout_ms, Some(10_000));
    }

    fn rejected_key(json: &str) -> String {
        parse(json.as_bytes()).unwrap_err().key
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        assert_eq!(rejected_key(r#"{"evnts":"all"}"#), "evnts");
        assert_eq!(
            rejected_key(r#"{"tcp_user_timeout_ms":0}"#),
            "tcp_user_timeout_ms"
        );
        assert_eq!(rejected_key(r#"{"events":"some"}"#), "events");
        assert_eq!(rejected_key(r#"{"reuse_table_cap":0}"#), "reuse_table_cap");
        assert_eq!(
            rejected_key(r#"{"reuse_table_cap":"8"}"#),
            "reuse_table_cap"
        );
        assert_eq!(rejected_key(r#"{"reuse_table_cap":-1}"#), "reuse_table_cap");
        assert_eq!(
            rejected_key(r#"{"sniff_threshold_ms":1.5}"#),
            "sniff_threshold_ms"
        );
        assert_eq!(
            rejected_key(r#"{"response_header":"X Bad"}"#),
            "response_header"
        );
        assert_eq!(
            rejected_key(r#"{"server_idle_timeouts":{"node":0}}"#),
            "server_idle_timeouts.node"
        );
        assert_eq!(
            rejected_key(r#"{"server_idle_timeouts":[5000]}"#),
            "server_idle_timeouts"
        );
        assert_eq!(
            rejected_key(r#"{"fallthrough_chains":"tcp"}"#),
            "fallthrough_chains"
        );
        assert_eq!(
            rejected_key(r#"{"fallthrough_chains":[""]}"#),
            "fallthrough_chains"
        );
        assert_eq!(
            rejected_key(r#"{"events_per_second":0}"#),
            "events_per_second"
        );
        assert_eq!(rejected_key(r#"{"race_window_ms":0}"#), "race_window_ms");
        assert_eq!(rejected_key("[1]"), "(config)");
        assert_eq!(rejected_key("{"), "(config)");
    }

    #[test]
    fn the_log_line_names_the_key() {
        let line = parse(br#"{"bogus_key":1}"#).unwrap_err().to_string();
        assert_eq!(
            line,
            "connlab: bad configuration key `bogus_key`: unknown key"
        );
    }

    #[test]
    fn response_header_can_be_switched_off_explicitly() {
        assert_eq!(
            parse(br#"{"response_header":null}"#)
                .unwrap()
                .response_header,
            None
        );
    }
}
