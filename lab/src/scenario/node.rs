//! A node: one container of the lab image, with a kind (`backend`, `envoy`,
//! `client`, `router`, `script`), the networks it joins and its kernel
//! settings. The keys every kind shares are read first; the rest of the
//! table must be the kind's own, so a key of another kind is an error that
//! points at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::de::DeTable;
use toml::Spanned;

use super::envoy::EnvoyNode;
use super::tree::{self, Value};
use super::ReadError;
use crate::programs::client::ClientConfig;
use crate::programs::library::{self, Library, LibraryName};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The networks it joins; empty = the scenario's only network.
    pub networks: Vec<String>,
    /// net.* sysctls of its network namespace (set at creation: Docker
    /// keeps /proc/sys read-only inside a container).
    pub sysctls: BTreeMap<String, String>,
    /// Linux capabilities beyond Docker's default set, e.g. `NET_ADMIN`.
    pub cap_add: Vec<String>,
    /// A router node its default route goes through (set before its command
    /// starts): how a node reaches networks it is not on.
    pub gateway: Option<String>,
    /// tcpdump in its network namespace with this pcap filter (`tcp port
    /// 8080`), from before the workload starts until it ends; what it saw is
    /// evidence (`packets` checks, the pcap, a packet ladder).
    pub capture: Option<String>,
    /// An Istio sidecar in its network namespace (backends and clients;
    /// the variant's `[mesh]` says which release).
    pub sidecar: Option<super::mesh::SidecarSettings>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Backend(BackendNode),
    Envoy(EnvoyNode),
    Client(ClientNode),
    Router(RouterNode),
    Script(ScriptNode),
}

impl NodeKind {
    pub fn word(&self) -> &'static str {
        match self {
            NodeKind::Backend(_) => "backend",
            NodeKind::Envoy(_) => "envoy",
            NodeKind::Client(_) => "client",
            NodeKind::Router(_) => "router",
            NodeKind::Script(_) => "script",
        }
    }

    pub fn envoy(&self) -> Option<&EnvoyNode> {
        match self {
            NodeKind::Envoy(e) => Some(e),
            _ => None,
        }
    }

    pub fn client(&self) -> Option<&ClientNode> {
        match self {
            NodeKind::Client(c) => Some(c),
            _ => None,
        }
    }
}

const KINDS: &str = "backend, envoy, client, router, script";

/// The keys every kind has.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    sysctls: BTreeMap<String, String>,
    #[serde(default)]
    cap_add: Vec<String>,
    gateway: Option<String>,
    capture: Option<String>,
    sidecar: Option<super::mesh::SidecarSettings>,
}

const COMMON_KEYS: [&str; 6] = [
    "networks", "sysctls", "cap_add", "gateway", "capture", "sidecar",
];

/// The port every backend serves on.
pub const BACKEND_PORT: u16 = 8080;

/// A server on port [`BACKEND_PORT`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendNode {
    pub server: Server,
    /// Raise (or lower) the server's keep-alive / socket timeout — the "fix
    /// it in the application" remedy. Absent: the server's default.
    pub keepalive_ms: Option<u64>,
    // connlab-backend's knobs (`connlab-backend --help`); on another server
    // they are an error.
    /// Close a keep-alive connection idle this long after a response.
    pub idle_close_ms: Option<u64>,
    /// Answer the Nth request on a connection with `Connection: close`.
    pub close_after: Option<u32>,
    /// After a `Connection: close` response, wait up to this long for the
    /// client to close first (the client then holds TIME_WAIT).
    pub await_client_close_ms: Option<u64>,
    /// Close with RST (SO_LINGER 0) instead of FIN.
    #[serde(default)]
    pub rst: bool,
    /// Close after every response (the server holds TIME_WAIT).
    #[serde(default)]
    pub close_per_request: bool,
    /// Delay every response.
    #[serde(default)]
    pub delay_ms: u64,
    /// A line sent on accept, before any request.
    pub banner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// Node.js `http` server (keepAliveTimeout 5 s).
    Node,
    /// CherryPy (server.socket_timeout 10 s).
    Cherrypy,
    /// Tomcat 10 (keepAliveTimeout = connectionTimeout 20 s).
    Tomcat,
    /// `connlab-backend`, shaped by its knobs.
    ConnlabBackend,
}

impl BackendNode {
    pub fn new(server: Server) -> Self {
        BackendNode {
            server,
            keepalive_ms: None,
            idle_close_ms: None,
            close_after: None,
            await_client_close_ms: None,
            rst: false,
            close_per_request: false,
            delay_ms: 0,
            banner: None,
        }
    }

    /// connlab-backend's flags for its knobs, and the name of the first knob
    /// set (for the error when the server is not connlab-backend).
    pub fn tunable_args(&self) -> (Vec<String>, Option<&'static str>) {
        let mut args: Vec<String> = Vec::new();
        let mut first = None;
        let mut set = |name: &'static str, flag: &str, value: Option<String>| {
            first.get_or_insert(name);
            args.push(flag.into());
            args.extend(value);
        };
        if let Some(ms) = self.idle_close_ms {
            set("idle_close_ms", "--idle-close-ms", Some(ms.to_string()));
        }
        if let Some(n) = self.close_after {
            set("close_after", "--close-after", Some(n.to_string()));
        }
        if let Some(ms) = self.await_client_close_ms {
            set(
                "await_client_close_ms",
                "--await-client-close-ms",
                Some(ms.to_string()),
            );
        }
        if self.rst {
            set("rst", "--rst", None);
        }
        if self.close_per_request {
            set("close_per_request", "--close-per-request", None);
        }
        if self.delay_ms > 0 {
            set("delay_ms", "--delay-ms", Some(self.delay_ms.to_string()));
        }
        if let Some(banner) = &self.banner {
            set("banner", "--banner", Some(banner.clone()));
        }
        (args, first)
    }
}

/// `connlab-client` (every flag of `connlab-client --help`, snake_case);
/// its `target` is `node:port`. The run ends when every client has.
/// With `library = "reqwest"` (`requests`, `node-agent`, `java`), that
/// library's pooled client instead: `config` then holds only the keys every
/// client shares (`library::COMMON_KEYS`), the rest are the library's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientNode {
    pub config: ClientConfig,
    /// `None`: connlab-client.
    pub library: Option<Library>,
}

/// A node on two or more networks that forwards between them
/// (`net.ipv4.ip_forward=1`), with iptables rules (NAT, say) run in order
/// once it has joined every network. `{dev:NET}` in a rule is its interface
/// on network NET.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterNode {
    #[serde(default)]
    pub iptables: Vec<String>,
}

/// A command in the lab image (a scapy program, say). A `workload` script
/// is waited for like a client, and its output kept as evidence; otherwise
/// it runs beside the topology until the end. `{ip:NODE}` in an argument is
/// NODE's address as this node reaches it (known for nodes started before:
/// a workload script may name any other node).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptNode {
    pub command: Vec<String>,
    #[serde(default)]
    pub workload: bool,
}

/// Reads `[nodes.<name>]`.
pub(super) fn read(name: &str, value: Value<'_>) -> Result<Node, ReadError> {
    let path = format!("nodes.{name}");
    let span = value.span();
    let table = tree::into_table(value)
        .map_err(|_| ReadError::At(span.clone(), path.clone(), "must be a table".into()))?;
    let table_span = table.span();
    let mut rest = table.into_inner();
    let Some(kind) = rest.remove("kind") else {
        return Err(ReadError::At(
            span,
            format!("{path}.kind"),
            format!("missing: one of {KINDS}"),
        ));
    };
    let kind_span = kind.span();
    let kind_word = kind.get_ref().as_str().unwrap_or_default().to_string();
    let mut common = DeTable::new();
    for key in COMMON_KEYS {
        if let Some((k, v)) = rest.remove_entry(key) {
            common.insert(k, v);
        }
    }
    let common: Common = tree::deserialize(Spanned::new(table_span.clone(), common))?;
    let rest = Spanned::new(table_span, rest);
    let kind = match kind_word.as_str() {
        "backend" => NodeKind::Backend(tree::deserialize(rest)?),
        "envoy" => NodeKind::Envoy(tree::deserialize(rest)?),
        "client" => NodeKind::Client(read_client(rest)?),
        "router" => NodeKind::Router(tree::deserialize(rest)?),
        "script" => NodeKind::Script(tree::deserialize(rest)?),
        other => {
            return Err(ReadError::At(
                kind_span,
                format!("{path}.kind"),
                format!("unknown kind `{other}`, expected one of {KINDS}"),
            ))
        }
    };
    Ok(Node {
        networks: common.networks,
        sysctls: common.sysctls,
        cap_add: common.cap_add,
        gateway: common.gateway,
        capture: common.capture,
        sidecar: common.sidecar,
        kind,
    })
}

/// A client node's own keys: connlab-client's flags, or with `library` the
/// shared keys and that library's knobs (another library's knob, or a
/// connlab-client flag the library has no equivalent of, is an error).
fn read_client(rest: tree::Table<'_>) -> Result<ClientNode, ReadError> {
    use serde::Deserialize as _;
    let span = rest.span();
    let mut table = rest.into_inner();
    let name = match table.remove("library") {
        None => LibraryName::ConnlabClient,
        Some(value) => LibraryName::deserialize(toml::de::ValueDeserializer::from(value))?,
    };
    if name == LibraryName::ConnlabClient {
        return Ok(ClientNode {
            config: tree::deserialize(Spanned::new(span, table))?,
            library: None,
        });
    }
    let mut common = DeTable::new();
    for key in library::COMMON_KEYS {
        if let Some((k, v)) = table.remove_entry(key) {
            common.insert(k, v);
        }
    }
    let config = tree::deserialize(Spanned::new(span.clone(), common))?;
    let knobs = Spanned::new(span, table);
    let library = match name {
        LibraryName::ConnlabClient => unreachable!("returned above"),
        LibraryName::Reqwest => Library::Reqwest(tree::deserialize(knobs)?),
        LibraryName::Requests => Library::Requests(tree::deserialize(knobs)?),
        LibraryName::NodeAgent => Library::NodeAgent(tree::deserialize(knobs)?),
        LibraryName::Java => Library::Java(tree::deserialize(knobs)?),
    };
    Ok(ClientNode {
        config,
        library: Some(library),
    })
}
