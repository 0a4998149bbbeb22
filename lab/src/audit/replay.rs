//! `connlab audit --replay`: each exposure turned into two variants of its
//! catalogue scenario, built from the dump's own settings (the cluster's
//! idle timeout, requests per connection, connect timeout, bind config and
//! its routes' retry policy and timeout; the listener's detection timeout)
//! against the named backend: `yours`, then `fixed` with the proposed fix
//! applied. The variants are TOML appended to the scenario file and read
//! by the scenario parser like any other, so they are validated the same
//! way; what the lab cannot take from the dump is replaced by its own and
//! each replacement is said.

use std::fmt::Write as _;

use super::backend::Backend;
use super::cluster::{Cluster, DEFAULT_IDLE_MS};
use super::dump::Resource;
use super::finding::{Finding, Rule, Status};
use super::routes::RouteTo;
use super::value::{duration_ms, human_ms};
use super::Context;

/// One finding's replay: the scenario and its two variants.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rule: Rule,
    /// `cluster `backend`` / `listener `outbound``.
    pub object: String,
    /// The catalogue scenario (`scenarios/<name>.toml`).
    pub scenario: &'static str,
    /// Their settings as the lab takes them, in words.
    pub settings: String,
    /// The fix applied in `fixed`, in words.
    pub fix: String,
    /// TOML: `[[variants]]` named `yours` and `fixed`.
    pub variants: String,
    /// What the lab put in place of what it could not take from the dump.
    pub replacements: Vec<String>,
}

pub const YOURS: &str = "yours";
pub const FIXED: &str = "fixed";

/// The plans for the findings a replay can rebuild (keepalive-race,
/// source-port-reuse, sniff-timeout), and a line for each it cannot.
pub fn plans(ctx: &Context, findings: &[Finding]) -> (Vec<Plan>, Vec<String>) {
    let mut plans: Vec<Plan> = Vec::new();
    let mut skipped = Vec::new();
    for f in findings.iter().filter(|f| f.status != Status::Info) {
        let plan = match f.rule {
            Rule::KeepaliveRace => cluster_of(ctx, &f.name).map(|(r, c)| keepalive_race(ctx, r, c)),
            Rule::SourcePortReuse => {
                cluster_of(ctx, &f.name).map(|(r, c)| source_port_reuse(ctx, r, c))
            }
            Rule::SniffTimeout => listener_of(ctx, &f.name).and_then(sniff_timeout),
            _ => None,
        };
        match plan {
            Some(mut p) => {
                if ctx.shape.istio() {
                    // Replayed with the same settings in the lab's plain
                    // Envoys; mesh mode has Istio's own shape.
                    p.replacements.push(format!(
                        "shape: the {} → the lab's plain Envoy with the same settings \
                         (`connlab run {} --variant istio-…` replays Istio's own shape)",
                        ctx.shape.word(),
                        p.scenario
                    ));
                }
                plans.push(p)
            }
            None => skipped.push(format!(
                "{} on {} `{}` (`connlab run {}` replays the catalogue's)",
                f.rule.name(),
                f.kind,
                f.name,
                f.rule.scenario()
            )),
        }
    }
    (plans, skipped)
}

fn cluster_of<'a>(ctx: &'a Context, name: &str) -> Option<(&'a Resource, &'a Cluster)> {
    ctx.clusters
        .iter()
        .find(|(r, _)| r.name == name)
        .map(|(r, c)| (*r, c))
}

fn listener_of<'a>(ctx: &'a Context, name: &str) -> Option<&'a Resource> {
    ctx.dump.listeners.iter().find(|l| l.name == name)
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The route settings the lab's upstream takes: retry policy and timeout
/// of the first route to the cluster.
fn route_settings(route: Option<&&RouteTo>, out: &mut String, said: &mut Vec<String>) {
    let Some(r) = route else {
        said.push("no route to it in the dump: no retry policy".into());
        return;
    };
    if let Some(p) = &r.retry {
        let codes: Vec<String> = p.status_codes.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "nodes.envoy.upstreams.backend.retry = {{ retry_on = {}, num_retries = {}, retriable_status_codes = [{}] }}",
            q(&p.retry_on.join(",")),
            p.num_retries,
            codes.join(", ")
        );
        said.push(p.describe());
    } else {
        let _ = writeln!(out, "nodes.envoy.upstreams.backend.retry = \"none\"");
        said.push("no retry policy".into());
    }
    if let Some(ms) = r.timeout_ms {
        let _ = writeln!(out, "nodes.envoy.upstreams.backend.route_timeout_ms = {ms}");
        said.push(format!("route timeout {}", human_ms(ms)));
    }
}

/// Where the cluster's endpoints came from, for the replacement line.
fn endpoints(r: &Resource, c: &Cluster) -> String {
    if c.eds {
        "its EDS endpoints (not in the dump)".into()
    } else {
        let n = r
            .value
            .pointer("/load_assignment/endpoints")
            .and_then(|e| e.as_array())
            .map(|groups| {
                groups
                    .iter()
                    .filter_map(|g| g.get("lb_endpoints").and_then(|l| l.as_array()))
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .unwrap_or(0);
        format!("its {n} endpoint(s)")
    }
}

/// The lab's timings for a backend: close time T, the FIN delay D that
/// widens the race window, the filter's idle window, requests, the run's
/// bound (keepalive-race.toml's per-server variants).
struct Race {
    server: &'static str,
    keepalive_ms: Option<u64>,
    close_ms: u64,
    delay_ms: u64,
    before_ms: u64,
    after_ms: u64,
    requests: u32,
    timeout_s: u64,
}

fn race(backend: Option<&Backend>) -> Race {
    let node = Race {
        server: "node",
        keepalive_ms: None,
        close_ms: 5_000,
        delay_ms: 1_000,
        before_ms: 2_500,
        after_ms: 2_500,
        requests: 6,
        timeout_s: 90,
    };
    match backend.and_then(Backend::lab_server) {
        Some("cherrypy") => Race {
            server: "cherrypy",
            close_ms: 10_000,
            delay_ms: 1_500,
            before_ms: 3_500,
            after_ms: 3_000,
            timeout_s: 120,
            ..node
        },
        Some("tomcat") => Race {
            server: "tomcat",
            close_ms: 20_000,
            delay_ms: 2_000,
            before_ms: 4_500,
            after_ms: 3_500,
            requests: 4,
            timeout_s: 180,
            ..node
        },
        Some(_) => node,
        // A stated keep-alive: Node.js's server with that keepAliveTimeout.
        None => match backend.and_then(|b| b.keepalive_ms) {
            Some(ms) => Race {
                keepalive_ms: Some(ms),
                close_ms: ms,
                timeout_s: 60 + 2 * ms / 1000,
                ..node
            },
            None => node,
        },
    }
}

fn keepalive_race(ctx: &Context, r: &Resource, c: &Cluster) -> Plan {
    let backend = ctx.options.backends.of(&r.name);
    let lab = race(backend);
    let idle = c.idle_timeout_ms.as_ref().map(|f| f.value);
    let envoy_idle = idle.unwrap_or(DEFAULT_IDLE_MS);
    // Idle a little past the backend's close, inside the FIN delay and
    // before Envoy's own idle timeout would close the connection first.
    let room = envoy_idle.saturating_sub(lab.close_ms).min(lab.delay_ms);
    let gap = lab.close_ms + (room / 2).max(1);
    let mut said = Vec::new();
    let mut common = String::new();
    let _ = writeln!(common, "timeout_s = {}", lab.timeout_s);
    let _ = writeln!(common, "nodes.backend.server = {}", q(lab.server));
    if let Some(ms) = lab.keepalive_ms {
        let _ = writeln!(common, "nodes.backend.keepalive_ms = {ms}");
    }
    let _ = writeln!(
        common,
        "faults = [{{ action = \"delay\", target = \"backend\", sport = 8080, delay_ms = {}, tcp_flags = \"FIN\" }}]",
        lab.delay_ms
    );
    let _ = writeln!(
        common,
        "nodes.envoy.filter = {{ idle_match_before_ms = {}, idle_match_after_ms = {} }}",
        lab.before_ms, lab.after_ms
    );
    let _ = writeln!(
        common,
        "nodes.client = {{ requests = {}, gaps_ms = [0, {gap}] }}",
        lab.requests
    );
    if let Some(ms) = r.value.get("connect_timeout").and_then(duration_ms) {
        let _ = writeln!(
            common,
            "nodes.envoy.upstreams.backend.connect_timeout_ms = {ms}"
        );
    }
    if let Some(f) = &c.max_requests_per_connection {
        let _ = writeln!(
            common,
            "nodes.envoy.upstreams.backend.max_requests_per_connection = {}",
            f.value
        );
        said.push(format!("max_requests_per_connection {}", f.value));
    }
    let routes = ctx.traffic.to(&r.name);
    route_settings(routes.first(), &mut common, &mut said);
    let mut yours = common.clone();
    match idle {
        Some(ms) => {
            let _ = writeln!(
                yours,
                "nodes.envoy.upstreams.backend.idle_timeout_ms = {ms}"
            );
            said.insert(0, format!("idle_timeout {}", human_ms(ms)));
        }
        None => said.insert(0, "idle_timeout unset (1 h)".into()),
    }
    let fixed_idle = lab.close_ms * 4 / 5;
    let mut fixed = common;
    let _ = writeln!(
        fixed,
        "nodes.envoy.upstreams.backend.idle_timeout_ms = {fixed_idle}"
    );
    let backend_words = match (lab.keepalive_ms, backend) {
        (Some(ms), _) => format!("Node.js http server with keepAliveTimeout {}", human_ms(ms)),
        (None, Some(b)) => format!(
            "{} server with its default keep-alive ({})",
            b.server,
            human_ms(lab.close_ms)
        ),
        (None, None) => "Node.js http server (keepAliveTimeout 5 s; no --backend given)".into(),
    };
    let mut replacements = vec![
        format!(
            "endpoints: {} → the lab's backend, a {backend_words}",
            endpoints(r, c)
        ),
        "listeners and filters: the dump's → the lab's HTTP listener with connlab's filter"
            .to_string(),
        format!(
            "timing: the backend's FIN held {} and the client idle {} between request pairs (the \
             lab's window onto the race, keepalive-race.toml)",
            human_ms(lab.delay_ms),
            human_ms(gap)
        ),
    ];
    if c.tls {
        replacements.push("TLS: the cluster's transport socket → plaintext".into());
    }
    Plan {
        rule: Rule::KeepaliveRace,
        object: format!("cluster `{}`", r.name),
        scenario: "keepalive-race",
        settings: said.join(", "),
        fix: format!("idle_timeout {}", human_ms(fixed_idle)),
        variants: variants(&yours, &fixed),
        replacements,
    }
}

fn source_port_reuse(ctx: &Context, r: &Resource, c: &Cluster) -> Plan {
    let port = c.bind_port.as_ref().map_or(0, |f| f.value);
    let options: Vec<String> = c
        .socket_options
        .iter()
        .filter_map(|(level, name, value, _)| {
            value.map(|v| format!("{{ level = {level}, name = {name}, int_value = {v} }}"))
        })
        .collect();
    let mut said = vec![format!("source port {port}")];
    if !options.is_empty() {
        said.push(format!("{} socket option(s)", options.len()));
    }
    let mut common = String::new();
    // Two requests at once, each held 1 s: a second connection while the
    // first is open (the catalogue's `concurrent`).
    let _ = writeln!(
        common,
        "nodes.backend = {{ delay_ms = 1000, sysctls = {{ \"net.ipv4.tcp_timestamps\" = \"1\" }} }}"
    );
    let _ = writeln!(common, "nodes.client = {{ connections = 2, requests = 1 }}");
    let _ = writeln!(
        common,
        "reproduced = [{{ diagnosis = \"source_address_conflict\", at = \"envoy\", count = \">= 1\" }}, {{ client = \"failed\", count = \">= 1\" }}]"
    );
    let routes = ctx.traffic.to(&r.name);
    route_settings(routes.first(), &mut common, &mut said);
    let bind = |p: u64| {
        format!(
            "nodes.envoy.upstreams.backend.bind = {{ source_port = {p}, socket_options = [{}] }}\n",
            options.join(", ")
        )
    };
    let yours = common.clone() + &bind(port);
    let fixed = common + &bind(0);
    Plan {
        rule: Rule::SourcePortReuse,
        object: format!("cluster `{}`", r.name),
        scenario: "source-port-reuse",
        settings: said.join(", "),
        fix: "source port 0 (the kernel's pick per connection)".into(),
        variants: variants(&yours, &fixed),
        replacements: vec![
            format!(
                "endpoints: {} → the lab's connlab-backend answering each request after 1 s",
                endpoints(r, c)
            ),
            "load: two requests at once (a second connection while the first is open)".into(),
            "listeners and filters: the dump's → the lab's HTTP listener with connlab's filter"
                .into(),
        ],
    }
}

fn sniff_timeout(l: &Resource) -> Option<Plan> {
    let timeout_ms = l
        .value
        .get("listener_filters_timeout")
        .and_then(duration_ms)
        .unwrap_or(15_000);
    if timeout_ms == 0 {
        // A server-first port with no timeout: not this scenario's failure.
        return None;
    }
    let continues = l
        .value
        .get("continue_on_listener_filters_timeout")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let slow = (timeout_ms + 200).max(300);
    let mut common = String::new();
    let _ = writeln!(
        common,
        "nodes.caller.listeners.outbound.continue_on_timeout = {continues}"
    );
    let _ = writeln!(
        common,
        "nodes.slow = {{ first_byte_delay_ms = {slow}, read_timeout_ms = {} }}",
        slow + 3000
    );
    let _ = writeln!(common, "timeout_s = {}", 60 + 2 * slow / 100);
    let _ = writeln!(
        common,
        "reproduced = [{{ stat = \"listener.outbound.downstream_pre_cx_timeout\", at = \"caller\", value = \">= 1\" }}, {{ client = \"failed\", at = \"slow\", count = \">= 1\" }}]"
    );
    let yours =
        format!("{common}nodes.caller.listeners.outbound.detection_timeout_ms = {timeout_ms}\n");
    let fixed = format!("{common}nodes.caller.listeners.outbound.detection_timeout_ms = 5000\n");
    Some(Plan {
        rule: Rule::SniffTimeout,
        object: format!("listener `{}`", l.name),
        scenario: "sniff-timeout",
        settings: format!(
            "listener_filters_timeout {}, continue_on_listener_filters_timeout {continues}",
            human_ms(timeout_ms)
        ),
        fix: "listener_filters_timeout 5 s".into(),
        variants: variants(&yours, &fixed),
        replacements: vec![
            "chains: the dump's → an HTTP chain originating mTLS to the destination and a \
             plaintext tcp_proxy fall-through (PassthroughCluster), connlab's filter on both"
                .into(),
            "destination: the lab's STRICT mTLS sidecar in front of its backend".into(),
            "TLS secrets: the lab's CA and per-node certificates, made for the run".into(),
            format!(
                "clients: 10 sending at once and 10 waiting {} before their first byte",
                human_ms(slow)
            ),
        ],
    })
}

fn variants(yours: &str, fixed: &str) -> String {
    format!(
        "\n[[variants]]\nname = \"{YOURS}\"\nabout = \"your settings (connlab audit --replay)\"\nexpect = \"reproduced\"\n{yours}\n[[variants]]\nname = \"{FIXED}\"\nabout = \"your settings with the fix (connlab audit --replay)\"\nexpect = \"fixed\"\n{fixed}"
    )
}

/// A plan's scenario: the catalogue file with `yours` and `fixed` appended.
pub fn scenario(
    plan: &Plan,
    scenarios: &std::path::Path,
) -> Result<crate::scenario::Scenario, String> {
    let path = scenarios.join(format!("{}.toml", plan.scenario));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::scenario::Scenario::parse(&path, &(text + &plan.variants)).map_err(|e| e.to_string())
}

/// Runs `yours` and `fixed` of a plan (at once: each has its own network
/// and containers); each outcome or the run's error.
pub async fn run(
    plan: &Plan,
    scenarios: &std::path::Path,
    image: &str,
) -> Result<[Result<crate::outcome::Outcome, String>; 2], String> {
    let scenario = scenario(plan, scenarios)?;
    let one = |name: &'static str| {
        let scenario = &scenario;
        async move {
            let variant = scenario
                .variant(name)
                .ok_or_else(|| format!("no variant `{name}`"))?;
            crate::replay::run_variant(scenario, variant, image, None)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let (yours, fixed) = futures::join!(one(YOURS), one(FIXED));
    Ok([yours, fixed])
}
