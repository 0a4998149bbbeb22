//! The client roles on real client libraries (issue 17): a `client` node
//! with `library = "reqwest"` (or `requests`, `node-agent`, `java`) runs that
//! library's pooled client instead of `connlab-client`. Each library's knobs
//! are node fields named as the library names them (the unit added), and a
//! knob left out keeps the library's own default: the lab measures those
//! defaults (scripts/measure-client-defaults.sh), it does not restate them.
//!
//! Every library client prints connlab-client's request lines, a failed one
//! with `library_error` (the library's own error text), so the checks, the
//! timeline and the report read them as they read connlab-client's.

use serde::Deserialize;

/// The node keys every library client shares with connlab-client (read into
/// its `ClientConfig`); the rest of the node must be the library's knobs.
pub const COMMON_KEYS: [&str; 5] = ["target", "path", "connections", "requests", "gaps_ms"];

/// `library = "..."` on a client node; absent = `connlab-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LibraryName {
    /// connlab's own raw-socket client (every `connlab-client` flag).
    ConnlabClient,
    Reqwest,
    Requests,
    NodeAgent,
    Java,
}

/// A library client's knobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Library {
    Reqwest(Reqwest),
    Requests(Requests),
    NodeAgent(NodeAgent),
    Java(Java),
}

/// A duration in ms, or `"none"` (the library's "no timeout").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MsOrWord")]
pub struct OptionalMs(pub Option<u64>);

#[derive(Deserialize)]
#[serde(untagged)]
enum MsOrWord {
    Ms(u64),
    Word(String),
}

impl TryFrom<MsOrWord> for OptionalMs {
    type Error = String;
    fn try_from(v: MsOrWord) -> Result<OptionalMs, String> {
        match v {
            MsOrWord::Ms(ms) => Ok(OptionalMs(Some(ms))),
            MsOrWord::Word(w) if w == "none" => Ok(OptionalMs(None)),
            MsOrWord::Word(w) => Err(format!("`{w}`: milliseconds or \"none\"")),
        }
    }
}

impl OptionalMs {
    fn arg(self) -> String {
        self.0.map_or("none".into(), |ms| ms.to_string())
    }
}

/// reqwest's `ClientBuilder` (pinned in lab/Cargo.toml; `connlab-reqwest`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reqwest {
    /// `pool_idle_timeout` (default 90 s; `"none"` keeps them forever).
    pub pool_idle_timeout_ms: Option<OptionalMs>,
    /// `pool_max_idle_per_host` (default: no limit).
    pub pool_max_idle_per_host: Option<usize>,
    /// `http2_prior_knowledge` (default off: HTTP/1.1 on http://).
    #[serde(default)]
    pub http2_prior_knowledge: bool,
    /// `tcp_keepalive` (default 15 s; `"none"` turns SO_KEEPALIVE off).
    pub tcp_keepalive_ms: Option<OptionalMs>,
    /// `timeout`, the whole request (default none).
    pub timeout_ms: Option<u64>,
    /// `connect_timeout` (default none).
    pub connect_timeout_ms: Option<u64>,
}

/// Python requests' `HTTPAdapter` and `Session.request(timeout=)`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    /// `pool_connections` (default 10 pools).
    pub pool_connections: Option<u32>,
    /// `pool_maxsize` (default 10 connections per pool).
    pub pool_maxsize: Option<u32>,
    /// `max_retries` (default 0).
    pub max_retries: Option<u32>,
    /// `timeout` (default none).
    pub timeout_ms: Option<u64>,
}

/// Node's `new http.Agent({...})`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAgent {
    /// `keepAlive`: on here (the role is a pooled caller); the Agent's own
    /// default, and Node 18's globalAgent, have it off.
    pub keep_alive: Option<bool>,
    /// `keepAliveMsecs` (TCP keep-alive initial delay, default 1000).
    pub keep_alive_msecs: Option<u64>,
    /// `maxSockets` (default Infinity).
    pub max_sockets: Option<u32>,
    /// `maxFreeSockets` (default 256).
    pub max_free_sockets: Option<u32>,
    /// `timeout`: a socket's idle timeout, free sockets included (default none).
    pub timeout_ms: Option<u64>,
    /// `scheduling`: `"lifo"` (default) or `"fifo"`.
    pub scheduling: Option<String>,
}

/// Java's `java.net.http.HttpClient` and its pool's system properties.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Java {
    /// `HttpClient.Builder.version`: `"HTTP_1_1"` or `"HTTP_2"` (default).
    pub version: Option<String>,
    /// `connectTimeout` (default none).
    pub connect_timeout_ms: Option<u64>,
    /// `HttpRequest.Builder.timeout` (default none).
    pub timeout_ms: Option<u64>,
    /// `jdk.httpclient.keepalive.timeout` (seconds; JDK 17: 1200).
    pub keepalive_timeout_s: Option<u64>,
    /// `jdk.httpclient.connectionPoolSize` (default 0 = no limit).
    pub connection_pool_size: Option<u32>,
}

impl Library {
    pub fn name(&self) -> &'static str {
        match self {
            Library::Reqwest(_) => "reqwest",
            Library::Requests(_) => "requests",
            Library::NodeAgent(_) => "node-agent",
            Library::Java(_) => "java",
        }
    }

    /// The program in the lab image.
    pub fn program(&self) -> Vec<String> {
        let words: &[&str] = match self {
            Library::Reqwest(_) => &["connlab-reqwest"],
            Library::Requests(_) => &["python3", "/opt/connlab/clients/requests-client.py"],
            Library::NodeAgent(_) => &["node", "/opt/connlab/clients/node-agent-client.js"],
            Library::Java(_) => &["java", "/opt/connlab/clients/JavaHttpClient.java"],
        };
        words.iter().map(|w| w.to_string()).collect()
    }

    /// The knobs that are set, as the program's flags.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(format!("--{name}"));
                args.push(value);
            }
        };
        let s = |v: Option<u64>| v.map(|v| v.to_string());
        let n = |v: Option<u32>| v.map(|v| v.to_string());
        match self {
            Library::Reqwest(k) => {
                flag(
                    "pool-idle-timeout-ms",
                    k.pool_idle_timeout_ms.map(OptionalMs::arg),
                );
                flag(
                    "pool-max-idle-per-host",
                    k.pool_max_idle_per_host.map(|v| v.to_string()),
                );
                flag("tcp-keepalive-ms", k.tcp_keepalive_ms.map(OptionalMs::arg));
                flag("timeout-ms", s(k.timeout_ms));
                flag("connect-timeout-ms", s(k.connect_timeout_ms));
                if k.http2_prior_knowledge {
                    args.push("--http2-prior-knowledge".into());
                }
            }
            Library::Requests(k) => {
                flag("pool-connections", n(k.pool_connections));
                flag("pool-maxsize", n(k.pool_maxsize));
                flag("max-retries", n(k.max_retries));
                flag("timeout-ms", s(k.timeout_ms));
            }
            Library::NodeAgent(k) => {
                flag("keep-alive", k.keep_alive.map(|v| v.to_string()));
                flag("keep-alive-msecs", s(k.keep_alive_msecs));
                flag("max-sockets", n(k.max_sockets));
                flag("max-free-sockets", n(k.max_free_sockets));
                flag("timeout-ms", s(k.timeout_ms));
                flag("scheduling", k.scheduling.clone());
            }
            Library::Java(k) => {
                flag("version", k.version.clone());
                flag("connect-timeout-ms", s(k.connect_timeout_ms));
                flag("timeout-ms", s(k.timeout_ms));
                flag("keepalive-timeout-s", s(k.keepalive_timeout_s));
                flag("connection-pool-size", n(k.connection_pool_size));
            }
        }
        args
    }

    /// A knob with a value the library would reject, as (field, problem).
    pub fn validate(&self, connections: u32) -> Result<(), (&'static str, String)> {
        match self {
            Library::NodeAgent(NodeAgent {
                scheduling: Some(s),
                ..
            }) if s != "lifo" && s != "fifo" => {
                Err(("scheduling", format!("`{s}`: \"lifo\" or \"fifo\"")))
            }
            Library::Java(Java {
                version: Some(v), ..
            }) if v != "HTTP_1_1" && v != "HTTP_2" => {
                Err(("version", format!("`{v}`: \"HTTP_1_1\" or \"HTTP_2\"")))
            }
            // Its reuse is read from /proc/net/tcp, which cannot tell
            // workers' connections apart.
            Library::Java(_) if connections != 1 => Err((
                "connections",
                "must be 1 with library = \"java\"".to_string(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_become_the_programs_flags() {
        let reqwest: Reqwest = toml::from_str(
            "pool_idle_timeout_ms = 2000\ntcp_keepalive_ms = \"none\"\nhttp2_prior_knowledge = true",
        )
        .unwrap();
        assert_eq!(
            Library::Reqwest(reqwest).args(),
            [
                "--pool-idle-timeout-ms",
                "2000",
                "--tcp-keepalive-ms",
                "none",
                "--http2-prior-knowledge"
            ]
        );
        assert!(Library::Requests(Requests::default()).args().is_empty());
        let agent: NodeAgent = toml::from_str("keep_alive = false\ntimeout_ms = 4000").unwrap();
        assert_eq!(
            Library::NodeAgent(agent).args(),
            ["--keep-alive", "false", "--timeout-ms", "4000"]
        );
    }

    #[test]
    fn another_librarys_knob_is_an_error_naming_it() {
        let err = toml::from_str::<Requests>("pool_idle_timeout_ms = 2000")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `pool_idle_timeout_ms`"),
            "{err}"
        );
        let err = toml::from_str::<Reqwest>("pool_idle_timeout_ms = \"never\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("milliseconds or \"none\""), "{err}");
    }

    #[test]
    fn validate_names_the_knob() {
        let fifo = |s: &str| {
            Library::NodeAgent(NodeAgent {
                scheduling: Some(s.into()),
                ..NodeAgent::default()
            })
        };
        assert_eq!(fifo("fifo").validate(1), Ok(()));
        assert_eq!(fifo("random").validate(1).unwrap_err().0, "scheduling");
        let java = Library::Java(Java::default());
        assert_eq!(java.validate(2).unwrap_err().0, "connections");
    }
}
