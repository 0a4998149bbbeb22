//! sniff-timeout (seed 000): a listener that sniffs the protocol
//! (`http_inspector`) waits `listener_filters_timeout` for a connection's
//! first bytes. With `continue_on_listener_filters_timeout` a slower client
//! goes to the chain for "no protocol detected": when that chain sends
//! plaintext where the HTTP chain originates mTLS, a STRICT destination
//! resets it. Without the timeout (0 s), a server-first protocol on a
//! sniffed port never sends first bytes: the connection hangs.

use serde_json::Value;

use crate::audit::dump::Resource;
use crate::audit::finding::{Finding, Rule, Status};
use crate::audit::routes::{chains, is_hcm, is_tcp_proxy, tcp_proxy_clusters};
use crate::audit::value::{duration_ms, human_ms, is_extension, items, str_of};
use crate::audit::Context;

/// Envoy's `listener_filters_timeout` when unset.
const DEFAULT_TIMEOUT_MS: u64 = 15_000;
/// Clients that wait this long between connect and first byte are common
/// (pooled or pre-connected clients; the seed's were 150-300 ms late).
const SURELY_SLOW_MS: u64 = 1_000;
/// The seed's fix (and Istio 1.7-1.8's default): clients later than this
/// are rare enough not to call the config exposed.
const SEED_FIX_MS: u64 = 5_000;

/// Ports of protocols where the server speaks first (its greeting), which
/// sniffing without a timeout holds forever.
const SERVER_FIRST: [(u64, &str); 7] = [
    (21, "FTP"),
    (25, "SMTP"),
    (110, "POP3"),
    (143, "IMAP"),
    (587, "SMTP submission"),
    (3306, "MySQL"),
    (4222, "NATS"),
];

pub fn check(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    for l in &ctx.dump.listeners {
        let filters = items(&l.value, "listener_filters");
        let sniffs = filters.iter().any(|f| {
            is_extension(
                f,
                &[
                    "envoy.filters.listener.http_inspector",
                    "envoy.listener.http_inspector",
                ],
                ".HttpInspector",
            )
        });
        if !sniffs {
            continue;
        }
        let timeout_ms = l
            .value
            .get("listener_filters_timeout")
            .and_then(duration_ms)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let timeout_field = match l.value.get("listener_filters_timeout") {
            Some(_) => format!("listener_filters_timeout = {}", human_ms(timeout_ms)),
            None => "listener_filters_timeout unset (15 s)".to_string(),
        };
        let continues = l
            .value
            .get("continue_on_listener_filters_timeout")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(f) = server_first(ctx, l, timeout_ms, continues, &timeout_field) {
            out.push(f);
        }
        if timeout_ms == 0 || timeout_ms >= SEED_FIX_MS {
            continue;
        }
        let mut f = finding(l);
        if !continues {
            f.cause = format!("{timeout_field}; continue_on_listener_filters_timeout false");
            f.why = format!(
                "a client whose first bytes come later than {} after connecting has its \
                 connection closed by the listener",
                human_ms(timeout_ms)
            );
        } else {
            let Some(plain) = plaintext_fallthrough(ctx, l) else {
                continue;
            };
            f.cause = format!(
                "{timeout_field}; continue_on_listener_filters_timeout true; {}",
                plain.text
            );
            f.why = format!(
                "a client whose first bytes come later than {} after connecting (a pooled or \
                 slow client; the seed's came 150-300 ms late) skips protocol detection and \
                 falls through to {}: {}",
                human_ms(timeout_ms),
                plain.chain,
                plain.consequence
            );
            if plain.undecided {
                f.status = Status::Unknown;
                f.decide = Some(
                    "whether the destination requires mTLS (Istio: PeerAuthentication STRICT), \
                     and the HTTP chain's clusters (add the route configurations to the dump)"
                        .into(),
                );
            }
        }
        if timeout_ms >= SURELY_SLOW_MS && f.status == Status::Exposed {
            f.status = Status::Unknown;
            f.decide = Some(format!(
                "how long your clients wait between connect and their first byte: exposed if \
                 some wait {} or more",
                human_ms(timeout_ms)
            ));
        }
        f.fix = fix(ctx);
        out.push(f);
    }
    out
}

fn finding(l: &Resource) -> Finding {
    Finding {
        rule: Rule::SniffTimeout,
        status: Status::Exposed,
        kind: "listener",
        name: l.name.clone(),
        at: l.at.clone(),
        cause: String::new(),
        why: String::new(),
        fix: String::new(),
        decide: None,
    }
}

fn fix(ctx: &Context) -> String {
    if ctx.shape.istio() {
        "meshConfig.protocolDetectionTimeout: 5s (the seed's fix), or 0s (no timeout, Istio's \
         default since 1.9); better, declare the port's protocol (Service port name `http-…` or \
         `appProtocol: http`) so the port is not sniffed; PeerAuthentication PERMISSIVE at the \
         destination only hides it (plaintext, no HTTP handling)"
            .into()
    } else {
        "raise listener_filters_timeout to 5s or more (the seed's fix), or listen without \
         http_inspector (one chain for the known protocol); or make the fall-through chain's \
         cluster originate the same mTLS"
            .into()
    }
}

struct Fallthrough {
    chain: String,
    text: String,
    consequence: String,
    undecided: bool,
}

/// The chain a connection with no detected protocol takes, when it sends
/// plaintext while the HTTP chain's clusters originate TLS.
fn plaintext_fallthrough(ctx: &Context, l: &Resource) -> Option<Fallthrough> {
    let all = chains(&l.value, &l.at);
    let http_protocols = ["http/1.1", "http/1.0", "h2c"];
    let matched = |c: &Value| -> Vec<String> {
        c.pointer("/filter_chain_match/application_protocols")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let port = |c: &Value| {
        c.pointer("/filter_chain_match/destination_port")
            .and_then(Value::as_u64)
    };
    let mut http_clusters: Vec<String> = Vec::new();
    let mut http_ports = Vec::new();
    for (_, c) in &all {
        if matched(c)
            .iter()
            .any(|p| http_protocols.contains(&p.as_str()))
        {
            http_ports.push(port(c));
            http_clusters.extend(hcm_clusters(ctx, c));
        }
    }
    if http_ports.is_empty() {
        return None;
    }
    let tls_of = |name: &str| -> Option<bool> {
        ctx.clusters
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(_, c)| c.tls)
    };
    let http_tls: Vec<Option<bool>> = http_clusters.iter().map(|c| tls_of(c)).collect();
    for (at, c) in &all {
        let transport = c
            .pointer("/filter_chain_match/transport_protocol")
            .and_then(Value::as_str);
        // Only a chain the same connections could take: no protocol match,
        // not TLS, and no other destination port than an HTTP chain's
        // (Istio's `virtualInbound-blackhole` matches port 15006 itself).
        let same_port = port(c).is_none() || http_ports.contains(&port(c));
        if !matched(c).is_empty() || transport == Some("tls") || !same_port {
            continue;
        }
        let chain = match str_of(c, "name") {
            Some(n) => format!("chain `{n}`"),
            None => format!("the chain at {at}"),
        };
        for filter in items(c, "filters").iter().filter(|f| is_tcp_proxy(f)) {
            for cluster in tcp_proxy_clusters(filter) {
                let http_known_plain =
                    !http_tls.is_empty() && http_tls.iter().all(|t| *t == Some(false));
                match tls_of(&cluster) {
                    Some(true) => {}
                    // Both plaintext: the fall-through sends what the HTTP
                    // chain would.
                    Some(false) if http_known_plain => {}
                    Some(false) if http_tls.contains(&Some(true)) => {
                        return Some(Fallthrough {
                            text: format!(
                                "{chain} proxies TCP to cluster `{cluster}` in plaintext while the \
                                 HTTP chain's cluster originates TLS"
                            ),
                            chain,
                            consequence: "its request reaches the destination in plaintext, \
                                          which a STRICT mTLS server resets (TLS error \
                                          HTTP_REQUEST; the client sees its connection end)"
                                .into(),
                            undecided: false,
                        });
                    }
                    tls => {
                        return Some(Fallthrough {
                            text: format!(
                                "{chain} proxies TCP to cluster `{cluster}`{}",
                                if tls == Some(false) {
                                    " in plaintext"
                                } else {
                                    " (not in the dump)"
                                }
                            ),
                            chain,
                            consequence: "its request is sent as opaque TCP; if the \
                                          destination requires mTLS it is reset"
                                .into(),
                            undecided: true,
                        });
                    }
                }
            }
        }
    }
    None
}

/// The clusters an HTTP chain's connection manager routes to (inline
/// routes, or its RDS route configuration when the dump has it).
fn hcm_clusters(ctx: &Context, chain: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in items(chain, "filters").iter().filter(|f| is_hcm(f)) {
        if let Some(rc) = f.pointer("/typed_config/route_config") {
            for vh in items(rc, "virtual_hosts") {
                for route in items(vh, "routes") {
                    if let Some(c) = route.pointer("/route/cluster").and_then(Value::as_str) {
                        out.push(c.to_string());
                    }
                }
            }
        }
        if let Some(name) = f
            .pointer("/typed_config/rds/route_config_name")
            .and_then(Value::as_str)
        {
            out.extend(
                ctx.traffic
                    .http
                    .iter()
                    .filter(|r| r.route_config == name)
                    .map(|r| r.cluster.clone()),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A server-first protocol's port sniffed with no timeout (it hangs) or
/// with the connection closed at the timeout.
fn server_first(
    ctx: &Context,
    l: &Resource,
    timeout_ms: u64,
    continues: bool,
    timeout_field: &str,
) -> Option<Finding> {
    if timeout_ms != 0 && continues {
        return None;
    }
    let mut ports: Vec<u64> = Vec::new();
    if let Some(p) = l
        .value
        .pointer("/address/socket_address/port_value")
        .and_then(Value::as_u64)
    {
        ports.push(p);
    }
    for (_, c) in chains(&l.value, &l.at) {
        if let Some(p) = c
            .pointer("/filter_chain_match/destination_port")
            .and_then(Value::as_u64)
        {
            ports.push(p);
        }
    }
    let (port, protocol) = SERVER_FIRST.iter().find(|(p, _)| ports.contains(p))?;
    let mut f = finding(l);
    f.cause = format!("port {port} ({protocol}) sniffed by http_inspector; {timeout_field}");
    f.why = if timeout_ms == 0 {
        format!(
            "{protocol} is server-first: the client waits for the server's greeting while the \
             listener waits for the client's first bytes, with no timeout: the connection hangs"
        )
    } else {
        format!(
            "{protocol} is server-first: the client sends nothing, and after {} the listener \
             closes the connection (continue_on_listener_filters_timeout false)",
            human_ms(timeout_ms)
        )
    };
    f.fix = if ctx.shape.istio() {
        format!(
            "declare the port's protocol as TCP (Service port name `tcp-…` or `mysql-…`, or \
             `appProtocol: tcp`) so port {port} is not sniffed"
        )
    } else {
        format!("serve port {port} without http_inspector (a TCP proxy chain only)")
    };
    Some(f)
}
