//! Who sends requests to which cluster, and with what: every route action
//! of every route configuration (RDS or inline in a listener's HTTP
//! connection manager), with its retry policy and timeouts, and the TCP
//! proxies' clusters.

use std::collections::BTreeSet;

use serde_json::Value;

use super::dump::Dump;
use super::value::{duration_ms, is_extension, items, str_of};

/// Envoy's route timeout when a route sets none.
pub const DEFAULT_ROUTE_TIMEOUT_MS: u64 = 15_000;
/// The HTTP connection manager's `stream_idle_timeout` when unset.
pub const DEFAULT_STREAM_IDLE_MS: u64 = 300_000;

/// One route that sends requests to a cluster.
#[derive(Debug, Clone)]
pub struct RouteTo {
    pub cluster: String,
    /// The route configuration's name (`(inline)` for one in a listener).
    pub route_config: String,
    /// `route config "9080" / virtual host "reviews" / route "default"`.
    pub label: String,
    /// Where in the file.
    pub at: String,
    /// The retry policy in force (the route's, else its virtual host's).
    pub retry: Option<Retry>,
    /// Route timeout in ms (0 = none); `None` when unset (15 s).
    pub timeout_ms: Option<u64>,
    pub per_try_timeout_ms: Option<u64>,
    /// The connection managers' `stream_idle_timeout` for this route
    /// configuration (the smallest, when several use it); `None` when no
    /// connection manager in the dump was found for it.
    pub stream_idle_ms: Option<u64>,
}

impl RouteTo {
    /// The longest a request can wait on this route with nothing coming
    /// back, from Envoy's timers alone; `None` = no bound.
    pub fn in_flight_bound_ms(&self) -> Option<u64> {
        let route = match self.timeout_ms {
            None => Some(DEFAULT_ROUTE_TIMEOUT_MS),
            Some(0) => None,
            Some(ms) => Some(ms),
        };
        let idle = match self.stream_idle_ms {
            None => Some(DEFAULT_STREAM_IDLE_MS),
            Some(0) => None,
            Some(ms) => Some(ms),
        };
        [route, self.per_try_timeout_ms.filter(|&ms| ms > 0), idle]
            .into_iter()
            .flatten()
            .min()
    }
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub retry_on: Vec<String>,
    pub num_retries: u64,
    pub status_codes: Vec<u64>,
    pub at: String,
}

impl Retry {
    fn has(&self, condition: &str) -> bool {
        self.retry_on.iter().any(|r| r == condition)
    }

    /// Retries an upstream reset after the request was written (the
    /// keep-alive race): `reset`, `5xx` and `gateway-error` do
    /// (RetryStateImpl::wouldRetryFromReset); `reset-before-request`,
    /// `connect-failure`, `refused-stream` do not.
    pub fn retries_reset(&self) -> Option<&'static str> {
        ["reset", "5xx", "gateway-error"]
            .into_iter()
            .find(|c| self.has(c))
            .filter(|_| self.num_retries > 0)
    }

    /// Retries a 503 answered by the next hop (an Envoy's 503 UC).
    pub fn retries_503(&self) -> Option<&'static str> {
        if self.num_retries == 0 {
            return None;
        }
        if self.has("5xx") {
            return Some("5xx");
        }
        if self.has("gateway-error") {
            return Some("gateway-error");
        }
        (self.has("retriable-status-codes") && self.status_codes.contains(&503))
            .then_some("retriable-status-codes 503")
    }

    pub fn retries_connect_failure(&self) -> bool {
        self.num_retries > 0 && (self.has("connect-failure") || self.has("5xx"))
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "retry_on `{}`, num_retries {}",
            self.retry_on.join(","),
            self.num_retries
        );
        if !self.status_codes.is_empty() {
            let codes: Vec<String> = self.status_codes.iter().map(u64::to_string).collect();
            s += &format!(", retriable_status_codes [{}]", codes.join(", "));
        }
        s
    }
}

fn retry(policy: &Value, at: String) -> Retry {
    Retry {
        retry_on: str_of(policy, "retry_on")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        // Envoy's default when the policy is there but the count is not.
        num_retries: policy
            .get("num_retries")
            .and_then(super::value::as_u64)
            .unwrap_or(1),
        status_codes: items(policy, "retriable_status_codes")
            .iter()
            .filter_map(super::value::as_u64)
            .collect(),
        at,
    }
}

/// A route configuration's routes, each action split per cluster.
fn route_config(rc: &Value, at: &str, stream_idle_ms: Option<u64>, out: &mut Vec<RouteTo>) {
    let rc_name = str_of(rc, "name").unwrap_or("(inline)");
    for (v, vh) in items(rc, "virtual_hosts").iter().enumerate() {
        let vh_at = format!("{at}.virtual_hosts[{v}]");
        let vh_retry = vh
            .get("retry_policy")
            .map(|p| retry(p, format!("{vh_at}.retry_policy")));
        let vh_name = str_of(vh, "name").unwrap_or("");
        for (r, route) in items(vh, "routes").iter().enumerate() {
            let Some(action) = route.get("route") else {
                continue;
            };
            let r_at = format!("{vh_at}.routes[{r}]");
            let retry = action
                .get("retry_policy")
                .map(|p| retry(p, format!("{r_at}.route.retry_policy")))
                .or_else(|| vh_retry.clone());
            let mut clusters: Vec<String> = Vec::new();
            if let Some(c) = str_of(action, "cluster") {
                clusters.push(c.into());
            }
            if let Some(w) = action.get("weighted_clusters") {
                clusters.extend(
                    items(w, "clusters")
                        .iter()
                        .filter_map(|c| str_of(c, "name").map(String::from)),
                );
            }
            let label = format!(
                "route config `{rc_name}` / virtual host `{vh_name}` / route {}",
                str_of(route, "name").map_or_else(|| format!("#{r}"), |n| format!("`{n}`"))
            );
            for cluster in clusters {
                out.push(RouteTo {
                    cluster,
                    route_config: rc_name.to_string(),
                    label: label.clone(),
                    at: format!("{r_at}.route"),
                    retry: retry.clone(),
                    timeout_ms: action.get("timeout").and_then(duration_ms),
                    per_try_timeout_ms: action
                        .get("retry_policy")
                        .or_else(|| vh.get("retry_policy"))
                        .and_then(|p| p.get("per_try_timeout"))
                        .and_then(duration_ms),
                    stream_idle_ms,
                });
            }
        }
    }
}

pub fn is_hcm(filter: &Value) -> bool {
    is_extension(
        filter,
        &[
            "envoy.filters.network.http_connection_manager",
            "envoy.http_connection_manager",
        ],
        ".HttpConnectionManager",
    )
}

pub fn is_tcp_proxy(filter: &Value) -> bool {
    is_extension(
        filter,
        &["envoy.filters.network.tcp_proxy", "envoy.tcp_proxy"],
        ".TcpProxy",
    )
}

/// Every filter chain of a listener (the default chain last), with where.
pub fn chains(listener: &Value, at: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = items(listener, "filter_chains")
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{at}.filter_chains[{i}]"), c.clone()))
        .collect();
    if let Some(d) = listener.get("default_filter_chain") {
        out.push((format!("{at}.default_filter_chain"), d.clone()));
    }
    out
}

/// The clusters a TCP proxy sends to.
pub fn tcp_proxy_clusters(filter: &Value) -> Vec<String> {
    let Some(tc) = filter.get("typed_config") else {
        return Vec::new();
    };
    let mut out: Vec<String> = str_of(tc, "cluster")
        .map(String::from)
        .into_iter()
        .collect();
    if let Some(w) = tc.get("weighted_clusters") {
        out.extend(
            items(w, "clusters")
                .iter()
                .filter_map(|c| str_of(c, "name").map(String::from)),
        );
    }
    out
}

/// Everything that routes to a cluster, from every listener and route
/// configuration of the dump.
#[derive(Debug, Default)]
pub struct Traffic {
    pub http: Vec<RouteTo>,
    /// Clusters a TCP proxy sends to.
    pub tcp: BTreeSet<String>,
}

impl Traffic {
    pub fn of(dump: &Dump) -> Traffic {
        let mut traffic = Traffic::default();
        // RDS names -> the connection managers' stream idle timeouts.
        let mut rds_idle: Vec<(String, Option<u64>)> = Vec::new();
        for l in &dump.listeners {
            for (chain_at, chain) in chains(&l.value, &l.at) {
                for (f, filter) in items(&chain, "filters").iter().enumerate() {
                    if is_tcp_proxy(filter) {
                        traffic.tcp.extend(tcp_proxy_clusters(filter));
                    }
                    if !is_hcm(filter) {
                        continue;
                    }
                    let Some(tc) = filter.get("typed_config") else {
                        continue;
                    };
                    let idle = Some(
                        tc.get("stream_idle_timeout")
                            .and_then(duration_ms)
                            .unwrap_or(DEFAULT_STREAM_IDLE_MS),
                    );
                    if let Some(rc) = tc.get("route_config") {
                        let at = format!("{chain_at}.filters[{f}].typed_config.route_config");
                        route_config(rc, &at, idle, &mut traffic.http);
                    }
                    if let Some(name) = tc.pointer("/rds/route_config_name").and_then(Value::as_str)
                    {
                        rds_idle.push((name.to_string(), idle));
                    }
                }
            }
        }
        for r in &dump.routes {
            // Envoy lists a listener's inline route configuration again
            // under static_route_configs: read once, with its listener.
            if dump.has_listeners && r.at.contains(".static_route_configs[") {
                continue;
            }
            let name = str_of(&r.value, "name").unwrap_or("");
            // The worst of the connection managers that use it (0 = none).
            let idle = rds_idle
                .iter()
                .filter(|(n, _)| n == name)
                .filter_map(|(_, i)| *i)
                .max_by_key(|i| if *i == 0 { u64::MAX } else { *i });
            route_config(&r.value, &r.at, idle, &mut traffic.http);
        }
        traffic
    }

    pub fn to(&self, cluster: &str) -> Vec<&RouteTo> {
        self.http.iter().filter(|r| r.cluster == cluster).collect()
    }
}
