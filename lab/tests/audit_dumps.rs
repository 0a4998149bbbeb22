//! `connlab audit` on real config dumps: every Envoy of every scenario
//! variant as the lab ran it (`connlab run S --evidence DIR` keeps each
//! Envoy's admin /config_dump), the same variants on every Envoy version of
//! `make test-envoy-versions`, and Istio's own sidecar listener dump.
//! Regenerate with `make audit-dumps` (scripts/audit-dumps.sh).
//!
//! Each broken variant's dump is exposed to its own failure and each fixed
//! one's is not; every rule has its negative case, the nearest config that
//! must not be flagged. Where no lab variant is the nearest config, it is a
//! real dump with one field changed, said at the change.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use connlab::audit::backend::Backends;
use connlab::audit::finding::{Report, Rule, Status};
use connlab::audit::{audit, dump, Options};
use serde_json::{json, Value};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/audit")
}

fn lab_dump(scenario: &str, variant: &str, node: &str) -> PathBuf {
    data()
        .join("lab")
        .join(scenario)
        .join(variant)
        .join(format!("{node}.config_dump.json"))
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn options(backends: &[&str], snat: bool) -> Options {
    let args: Vec<String> = backends.iter().map(|s| s.to_string()).collect();
    Options {
        backends: Backends::parse(&args).unwrap(),
        snat,
    }
}

fn audit_value(value: &Value, backends: &[&str], snat: bool) -> Report {
    let parsed = dump::parse(&value.to_string()).unwrap();
    audit("(test)", &parsed, &options(backends, snat))
}

fn audit_lab(scenario: &str, variant: &str, node: &str, backends: &[&str]) -> Report {
    audit_value(&read(&lab_dump(scenario, variant, node)), backends, false)
}

/// The status a rule gives a named cluster or listener (`None`: nothing).
fn status(r: &Report, rule: Rule, name: &str) -> Option<Status> {
    r.findings
        .iter()
        .find(|f| f.rule == rule && f.name == name)
        .map(|f| f.status)
}

/// The finding of a rule on a named cluster or listener (`*`: any).
fn finding<'a>(r: &'a Report, rule: Rule, name: &str) -> &'a connlab::audit::finding::Finding {
    r.findings
        .iter()
        .find(|f| f.rule == rule && (name == "*" || f.name == name))
        .unwrap_or_else(|| panic!("no {} finding on {name}: {:#?}", rule.name(), r.findings))
}

/// `--backend backend=…` as the keepalive-race scenario file states the
/// variant's backend: its server's default, or its stated keep-alive.
fn stated_backend(variant: &str) -> String {
    use connlab::scenario::node::{NodeKind, Server};
    let path = connlab::paths::root().join("scenarios/keepalive-race.toml");
    let scenario = connlab::scenario::Scenario::load(&path).unwrap();
    let NodeKind::Backend(b) = &scenario.variant(variant).unwrap().nodes["backend"].kind else {
        panic!("{variant}: no backend node");
    };
    let kind = match (b.keepalive_ms, b.server) {
        (Some(ms), _) => ms.to_string(),
        (None, Server::Node) => "node".into(),
        (None, Server::Cherrypy) => "cherrypy".into(),
        (None, Server::Tomcat) => "tomcat".into(),
        (None, Server::ConnlabBackend) => panic!("{variant}: connlab-backend"),
    };
    format!("backend={kind}")
}

/// The entries of `list` (`static_listeners`, `static_clusters`) of every
/// admin dump in `configs`, to change one field of a real dump.
fn statics<'a>(v: &'a mut Value, list: &'a str) -> impl Iterator<Item = &'a mut Value> {
    v["configs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter_map(move |c| c.get_mut(list).and_then(Value::as_array_mut))
        .flatten()
}

#[test]
fn every_dump_parses_and_is_audited() {
    let mut n = 0;
    for entry in walk(&data()) {
        if !entry.to_string_lossy().ends_with(".config_dump.json") {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let parsed = dump::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        let report = audit("x", &parsed, &Options::default());
        // The mesh variants' pods run Istio-shaped sidecars.
        let shape = if entry.to_string_lossy().contains("/istio-") {
            "istio-sidecar"
        } else {
            "envoy"
        };
        assert_eq!(report.source.shape, shape, "{}", entry.display());
        assert!(report.source.envoy_version.is_some(), "{}", entry.display());
        assert!(report.source.clusters > 0 && report.source.listeners > 0);
        assert!(
            parsed.skipped.is_empty(),
            "{}: {:?}",
            entry.display(),
            parsed.skipped
        );
        n += 1;
    }
    assert!(
        n >= 60,
        "only {n} dumps in tests/data/audit (run `make audit-dumps`)"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn keepalive_race_broken_variants_are_exposed() {
    for variant in ["node", "cherrypy", "tomcat", "retry-hidden"] {
        let backend = stated_backend(variant);
        let r = audit_lab("keepalive-race", variant, "envoy", &[&backend]);
        assert_eq!(
            status(&r, Rule::KeepaliveRace, "backend"),
            Some(Status::Exposed),
            "{variant}"
        );
        // Without --backend too: no idle_timeout at all.
        let r = audit_lab("keepalive-race", variant, "envoy", &[]);
        assert_eq!(
            status(&r, Rule::KeepaliveRace, "backend"),
            Some(Status::Exposed)
        );
        let f = finding(&r, Rule::KeepaliveRace, "*");
        assert!(f.cause.contains("idle_timeout unset"), "{}", f.cause);
        assert!(
            f.fix.contains("common_http_protocol_options.idle_timeout"),
            "{}",
            f.fix
        );
    }
}

#[test]
fn keepalive_race_fixed_variants_are_not() {
    // Envoy's idle timeout 4 s below Node's 5 s.
    let r = audit_lab(
        "keepalive-race",
        "fixed-idle-timeout",
        "envoy",
        &["backend=node"],
    );
    assert_eq!(status(&r, Rule::KeepaliveRace, "backend"), None);
    // The nearest exposed config: the same 4 s against a backend that
    // closes at 3 s, or exactly at 4 s.
    for closes in ["backend=3000", "backend=4000"] {
        let r = audit_lab("keepalive-race", "fixed-idle-timeout", "envoy", &[closes]);
        assert_eq!(
            status(&r, Rule::KeepaliveRace, "backend"),
            Some(Status::Exposed)
        );
    }
    // Nothing said about the backend: undecidable, and says what decides.
    let r = audit_lab("keepalive-race", "fixed-idle-timeout", "envoy", &[]);
    let f = finding(&r, Rule::KeepaliveRace, "*");
    assert_eq!(f.status, Status::Unknown);
    assert!(f.decide.as_ref().unwrap().contains("--backend"), "{f:?}");
    // The backend keeps connections 6 min: fixed for the lab's 5.5 s idle
    // gaps, but Envoy's pool keeps them 1 h (no idle_timeout), so a
    // connection idle longer than 6 min still races: exposed, saying both.
    let backend = stated_backend("fixed-server-keepalive");
    assert_eq!(backend, "backend=360000");
    let r = audit_lab(
        "keepalive-race",
        "fixed-server-keepalive",
        "envoy",
        &[&backend],
    );
    let f = finding(&r, Rule::KeepaliveRace, "*");
    assert_eq!(f.status, Status::Exposed);
    assert!(
        f.why.contains("1 h") && f.why.contains("6 min"),
        "{}",
        f.why
    );
    // A backend keep-alive above Envoy's 1 h is the fix in full.
    let r = audit_lab(
        "keepalive-race",
        "fixed-server-keepalive",
        "envoy",
        &["backend=7200000"],
    );
    assert_eq!(status(&r, Rule::KeepaliveRace, "backend"), None);
    // A backend that closes after every response has nothing to race.
    let r = audit_lab("keepalive-race", "node", "envoy", &["backend=close"]);
    assert_eq!(status(&r, Rule::KeepaliveRace, "backend"), None);
}

/// The node variant's dump with its route's retry policy set to `retry_on`.
fn with_retry(retry_on: &str) -> Value {
    let mut v = read(&lab_dump("keepalive-race", "node", "envoy"));
    let mut done = false;
    for l in statics(&mut v, "static_listeners") {
        let hcm = &mut l["listener"]["filter_chains"][0]["filters"][1]["typed_config"];
        hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["retry_policy"] =
            json!({"retry_on": retry_on, "num_retries": 1});
        done = true;
    }
    assert!(done);
    v
}

#[test]
fn a_retry_on_reset_hides_the_race_and_says_so() {
    // Changed field: the route's retry_policy.
    for condition in ["reset", "5xx", "gateway-error"] {
        let r = audit_value(&with_retry(condition), &["backend=node"], false);
        assert_eq!(
            status(&r, Rule::KeepaliveRace, "backend"),
            None,
            "{condition}"
        );
        assert_eq!(
            status(&r, Rule::RetriesHideFailures, "backend"),
            Some(Status::Info),
            "{condition}"
        );
    }
    // Nearest negatives: conditions that do not retry a reset after the
    // request was written.
    for condition in ["reset-before-request", "connect-failure", "refused-stream"] {
        let r = audit_value(&with_retry(condition), &["backend=node"], false);
        assert_eq!(
            status(&r, Rule::KeepaliveRace, "backend"),
            Some(Status::Exposed),
            "{condition}"
        );
    }
}

#[test]
fn retries_that_hide_failures_are_information() {
    let r = audit_lab("keepalive-race", "retry-hidden", "caller", &[]);
    let f = finding(&r, Rule::RetriesHideFailures, "*");
    assert_eq!((f.status, f.name.as_str()), (Status::Info, "envoy"));
    assert!(f.why.contains("503"), "{}", f.why);
    assert!(
        f.cause.contains("retriable_status_codes [503]"),
        "{}",
        f.cause
    );
    // Information is not exposure.
    assert_eq!(r.info, 1);
    // Nearest negative: the same Envoy role with no retry policy.
    let r = audit_lab("keepalive-race", "node", "envoy", &[]);
    assert_eq!(status(&r, Rule::RetriesHideFailures, "backend"), None);
}

#[test]
fn sniff_timeout_strict_is_exposed_and_the_fixes_are_not() {
    let r = audit_lab("sniff-timeout", "strict", "caller", &[]);
    let f = finding(&r, Rule::SniffTimeout, "outbound");
    assert_eq!(f.status, Status::Exposed);
    assert!(
        f.cause.contains("listener_filters_timeout = 100 ms"),
        "{}",
        f.cause
    );
    assert!(
        f.cause.contains("`PassthroughCluster` in plaintext"),
        "{}",
        f.cause
    );
    assert!(f.fix.contains("listener_filters_timeout"), "{}", f.fix);
    // The declared port beside it is not sniffed.
    assert_eq!(status(&r, Rule::SniffTimeout, "declared"), None);
    // 5 s: the seed's fix.
    let r = audit_lab("sniff-timeout", "fixed-detection-timeout", "caller", &[]);
    assert!(r.of(Rule::SniffTimeout, Status::Exposed).next().is_none());
    assert!(r.of(Rule::SniffTimeout, Status::Unknown).next().is_none());
    // The servers' listeners do not sniff (STRICT has one chain; PERMISSIVE
    // only tls_inspector).
    for variant in ["strict", "fixed-permissive"] {
        let r = audit_lab("sniff-timeout", variant, "server", &[]);
        assert!(
            r.findings.iter().all(|f| f.rule != Rule::SniffTimeout),
            "{variant}"
        );
    }
}

/// The fixed-detection-timeout caller's dump with its sniffing listener on
/// `port` and `listener_filters_timeout` set to `timeout`.
fn sniffing_on(port: u64, timeout: &str) -> Value {
    let mut v = read(&lab_dump(
        "sniff-timeout",
        "fixed-detection-timeout",
        "caller",
    ));
    for l in statics(&mut v, "static_listeners") {
        if l["listener"]["name"] == "outbound" {
            l["listener"]["address"]["socket_address"]["port_value"] = json!(port);
            l["listener"]["listener_filters_timeout"] = json!(timeout);
        }
    }
    v
}

#[test]
fn server_first_protocols_on_sniffed_ports() {
    // Changed fields: the listener's port and timeout (0 s: Istio's default
    // since 1.9, no timeout).
    let r = audit_value(&sniffing_on(3306, "0s"), &[], false);
    let f = finding(&r, Rule::SniffTimeout, "outbound");
    assert_eq!(f.status, Status::Exposed);
    assert!(
        f.why.contains("MySQL") && f.why.contains("hangs"),
        "{}",
        f.why
    );
    // Nearest negatives: an HTTP port with no timeout; the MySQL port with
    // the timeout and continue (the connection goes on after it).
    let r = audit_value(&sniffing_on(10000, "0s"), &[], false);
    assert_eq!(status(&r, Rule::SniffTimeout, "outbound"), None);
    let r = audit_value(&sniffing_on(3306, "5s"), &[], false);
    assert_eq!(status(&r, Rule::SniffTimeout, "outbound"), None);
}

#[test]
fn a_middle_detection_timeout_is_undecided() {
    // Changed field: the listener's timeout (1 s: rare clients are that late).
    let r = audit_value(&sniffing_on(10000, "1s"), &[], false);
    let f = finding(&r, Rule::SniffTimeout, "outbound");
    assert_eq!(f.status, Status::Unknown);
    assert!(f.decide.as_ref().unwrap().contains("first byte"), "{f:?}");
}

#[test]
fn source_port_reuse_pinned_is_exposed_unpinned_is_not() {
    for variant in ["sequential", "concurrent", "max-requests-pinned"] {
        let r = audit_lab("source-port-reuse", variant, "envoy", &[]);
        let f = finding(&r, Rule::SourcePortReuse, "*");
        assert_eq!(
            (f.status, f.name.as_str()),
            (Status::Exposed, "backend"),
            "{variant}"
        );
        assert!(
            f.cause
                .contains("upstream_bind_config.source_address.port_value = 40000"),
            "{}",
            f.cause
        );
        assert!(f.why.contains("(1 + 3) x the 503s"), "{}", f.why);
    }
    // Nearest negative: the same bind config and SO_REUSEADDR, port 0.
    for variant in ["fixed-unpinned", "fixed-concurrent"] {
        let r = audit_lab("source-port-reuse", variant, "envoy", &[]);
        assert_eq!(
            status(&r, Rule::SourcePortReuse, "backend"),
            None,
            "{variant}"
        );
    }
}

#[test]
fn half_open_gateways() {
    // No keepalive, TCP_USER_TIMEOUT, health check or outlier detection.
    let r = audit_lab("half-open", "broken", "gwa", &[]);
    assert_eq!(status(&r, Rule::HalfOpen, "backend"), Some(Status::Exposed));
    // Health-checked, route timeout 15 s: bounded.
    let r = audit_lab("half-open", "gateway-route-timeout", "gwa", &[]);
    assert_eq!(status(&r, Rule::HalfOpen, "backend"), None);
    // Route timeout off, TCP_USER_TIMEOUT 10 s: bounded.
    let r = audit_lab("half-open", "gateway-user-timeout", "gwa", &[]);
    assert_eq!(status(&r, Rule::HalfOpen, "backend"), None);
    // Route timeout off, TCP keepalive only: a request in flight waits for
    // the connection manager's 5 min stream idle timeout.
    let r = audit_lab("half-open", "gateway-keepalive", "gwa", &[]);
    let f = finding(&r, Rule::HalfOpen, "*");
    assert_eq!(f.status, Status::Exposed);
    assert!(
        f.why.contains("5 min") && f.why.contains("no probe"),
        "{}",
        f.why
    );
}

/// The max-requests-pinned dump with `max_requests_per_connection` = n.
fn max_requests(n: u64) -> Value {
    let mut v = read(&lab_dump(
        "source-port-reuse",
        "max-requests-pinned",
        "envoy",
    ));
    for c in statics(&mut v, "static_clusters") {
        c["cluster"]["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["common_http_protocol_options"]["max_requests_per_connection"] = json!(n);
    }
    v
}

#[test]
fn snat_timewait_churn() {
    // The lab's dumps have no churn (99 requests per connection is not).
    let r = audit_lab("source-port-reuse", "max-requests-pinned", "envoy", &[]);
    assert_eq!(status(&r, Rule::SnatTimewait, "backend"), None);
    // Changed field: max_requests_per_connection 1.
    let r = audit_value(&max_requests(1), &[], false);
    let f = finding(&r, Rule::SnatTimewait, "*");
    assert_eq!(f.status, Status::Unknown);
    assert!(f.decide.as_ref().unwrap().contains("--snat"));
    let r = audit_value(&max_requests(1), &[], true);
    assert_eq!(
        status(&r, Rule::SnatTimewait, "backend"),
        Some(Status::Exposed)
    );
    // Nearest negative: two requests per connection, behind a SNAT.
    let r = audit_value(&max_requests(2), &[], true);
    assert_eq!(status(&r, Rule::SnatTimewait, "backend"), None);
    // A backend that closes after every response, behind a SNAT.
    let r = audit_lab("keepalive-race", "node", "envoy", &["backend=close"]);
    assert_eq!(
        status(&r, Rule::SnatTimewait, "backend"),
        Some(Status::Unknown)
    );
}

#[test]
fn istio_sidecar_reference_dump() {
    // Istio's own (istioctl's testdata; tests/data/istio/README.md).
    let path = connlab::paths::root().join("tests/data/istio/golden-sidecar-configdump.authz.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let golden: Value = serde_json::from_str(&text).unwrap();
    let r = audit_value(&golden, &[], false);
    assert_eq!(r.source.shape, "istio-sidecar");
    assert_eq!(r.source.listeners, 29);
    // Detection timeout 0 s (no timeout) and no server-first port sniffed.
    assert_eq!(r.exposed, 0, "{:#?}", r.findings);
    assert!(
        r.notes.iter().any(|n| n.contains("no clusters")),
        "{:?}",
        r.notes
    );
    // Istio 1.6's 100 ms (the seed's release): the outbound ports'
    // fall-through goes to PassthroughCluster, whose TLS is not in this
    // listener-only dump: undecided, with what decides it.
    let old = text.replace(
        "\"listener_filters_timeout\": \"0s\"",
        "\"listener_filters_timeout\": \"0.100s\"",
    );
    assert_ne!(old, text);
    let r = audit_value(&serde_json::from_str(&old).unwrap(), &[], false);
    let f = finding(&r, Rule::SniffTimeout, "0.0.0.0_9080");
    assert_eq!(f.status, Status::Unknown);
    assert!(f.fix.contains("protocolDetectionTimeout"), "{}", f.fix);
}

#[test]
fn every_envoy_version_gives_the_same_findings() {
    let versions = data().join("versions");
    let mut seen = 0;
    for v in std::fs::read_dir(&versions).unwrap() {
        let v = v.unwrap().path();
        let version = v.file_name().unwrap().to_string_lossy().to_string();
        for dump_path in walk(&v) {
            let rel = dump_path.strip_prefix(&v).unwrap();
            let lab = data().join("lab").join(rel);
            let r = audit_value(&read(&dump_path), &[], false);
            assert_eq!(r.source.envoy_version.as_deref(), Some(version.as_str()));
            let base = audit_value(&read(&lab), &[], false);
            let key = |r: &Report| -> Vec<(Rule, Status, String)> {
                r.findings
                    .iter()
                    .map(|f| (f.rule, f.status, f.name.clone()))
                    .collect()
            };
            assert_eq!(key(&r), key(&base), "{}", dump_path.display());
            seen += 1;
        }
    }
    assert!(seen >= 25, "{seen} version dumps");
}

fn connlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connlab"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn cli_exit_status_and_output() {
    let node = lab_dump("keepalive-race", "node", "envoy");
    let (code, out, _) = connlab(&[node.to_str().unwrap(), "--backend", "backend=node"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(" EXPOSED keepalive-race cluster `backend`"),
        "{out}"
    );
    assert!(
        out.contains("Node.js's default keep-alive timeout 5 s"),
        "{out}"
    );
    let (code, out, _) = connlab(&[node.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["source"]["envoy_version"], "1.40.0");
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "keepalive-race" && f["status"] == "exposed"));

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&node).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let yaml = connlab::paths::root().join("compose/keepalive-race/node.yaml");
    for (file, says) in [
        (truncated.as_path(), "truncated JSON"),
        (empty.as_path(), "empty file"),
        (yaml.as_path(), "a YAML file?"),
        (Path::new("/nonexistent/dump.json"), "No such file"),
    ] {
        let (code, out, err) = connlab(&[file.to_str().unwrap()]);
        assert_eq!(code, 2, "{file:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(out.is_empty());
    }
    let (code, _, err) = connlab(&[node.to_str().unwrap(), "--backend", "backend=nginx"]);
    assert_eq!(code, 2);
    assert!(err.contains("`nginx`"), "{err}");

    // An unknown resource type is skipped with a note, not an error.
    let mut v = read(&node);
    v["configs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"@type": "type.googleapis.com/envoy.admin.v9.FutureConfigDump"}));
    let future = dir.path().join("future.json");
    std::fs::write(&future, v.to_string()).unwrap();
    let (code, out, _) = connlab(&[future.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("note: skipped configs[6]: unknown type type.googleapis.com/envoy.admin.v9.FutureConfigDump"), "{out}");
}

/// The replay plans of a lab dump, each parsed and validated as a scenario.
fn plans(
    scenario: &str,
    variant: &str,
    node: &str,
    backends: &[&str],
) -> Vec<(connlab::audit::replay::Plan, connlab::scenario::Scenario)> {
    let parsed =
        dump::parse(&std::fs::read_to_string(lab_dump(scenario, variant, node)).unwrap()).unwrap();
    let options = options(backends, false);
    let ctx = connlab::audit::context(&parsed, &options);
    let report = connlab::audit::report("x", &ctx);
    let (plans, _) = connlab::audit::replay::plans(&ctx, &report.findings);
    let dir = connlab::paths::root().join("scenarios");
    plans
        .into_iter()
        .map(|p| {
            let s = connlab::audit::replay::scenario(&p, &dir)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", p.scenario, p.variants));
            (p, s)
        })
        .collect()
}

fn upstream<'a>(
    s: &'a connlab::scenario::Scenario,
    variant: &str,
) -> &'a connlab::scenario::envoy::Upstream {
    let v = s.variant(variant).unwrap();
    &v.nodes["envoy"].kind.envoy().unwrap().upstreams["backend"]
}

#[test]
fn replay_variants_carry_the_dumps_settings() {
    use connlab::audit::replay::{FIXED, YOURS};
    // Envoy idles 4 s; the stated backend closes at 3 s: the lab's Node.js
    // with keepAliveTimeout 3 s, Envoy's 4 s kept, the fix 2.4 s.
    let all = plans(
        "keepalive-race",
        "fixed-idle-timeout",
        "envoy",
        &["backend=3000"],
    );
    let (plan, s) = all
        .iter()
        .find(|(p, _)| p.rule == Rule::KeepaliveRace)
        .unwrap();
    assert_eq!(upstream(s, YOURS).idle_timeout_ms, Some(4000));
    assert_eq!(upstream(s, FIXED).idle_timeout_ms, Some(2400));
    let v = s.variant(YOURS).unwrap();
    let connlab::scenario::NodeKind::Backend(b) = &v.nodes["backend"].kind else {
        panic!()
    };
    assert_eq!(b.keepalive_ms, Some(3000));
    assert!(
        plan.replacements
            .iter()
            .any(|r| r.contains("keepAliveTimeout 3 s")),
        "{:?}",
        plan.replacements
    );
    // The client idles past the backend's close, before Envoy's own.
    let gaps = &v.nodes["client"].kind.client().unwrap().config.gaps_ms;
    assert_eq!(gaps, &[0, 3500]);

    // Tomcat's timings, and the caller's retry policy carried over.
    let all = plans("keepalive-race", "tomcat", "envoy", &["backend=tomcat"]);
    let (_, s) = &all[0];
    assert_eq!(s.variant(YOURS).unwrap().timeout_s, 180);
    assert_eq!(upstream(s, FIXED).idle_timeout_ms, Some(16_000));

    // The pinned port and its socket options; port 0 in the fix.
    let all = plans(
        "source-port-reuse",
        "sequential",
        "envoy",
        &["backend=close"],
    );
    assert_eq!(all.len(), 1, "only source-port-reuse has a replay here");
    let (_, s) = &all[0];
    let bind = upstream(s, YOURS).bind.as_ref().unwrap();
    assert_eq!((bind.source_port, bind.socket_options.len()), (40000, 1));
    assert_eq!(upstream(s, FIXED).bind.as_ref().unwrap().source_port, 0);

    // The listener's detection timeout; 5 s in the fix.
    let all = plans("sniff-timeout", "strict", "caller", &["*=node"]);
    let (plan, s) = all
        .iter()
        .find(|(p, _)| p.rule == Rule::SniffTimeout)
        .unwrap();
    let listener = |variant: &str| {
        s.variant(variant).unwrap().nodes["caller"]
            .kind
            .envoy()
            .unwrap()
            .listeners["outbound"]
            .detection_timeout_ms
    };
    assert_eq!((listener(YOURS), listener(FIXED)), (Some(100), Some(5000)));
    assert!(plan.replacements.iter().any(|r| r.contains("TLS secrets")));

    // An Istio sidecar's inbound cluster, replayed in the plain lab: said.
    let all = plans(
        "keepalive-race",
        "istio-inbound",
        "backend",
        &["inbound|8080||=node"],
    );
    let (plan, s) = all
        .iter()
        .find(|(p, _)| p.rule == Rule::KeepaliveRace)
        .unwrap();
    assert_eq!(plan.object, "cluster `inbound|8080||`");
    assert_eq!(upstream(s, YOURS).idle_timeout_ms, None);
    assert!(
        plan.replacements
            .iter()
            .any(|r| r.starts_with("shape: the istio-sidecar")),
        "{:?}",
        plan.replacements
    );
}

/// The lab's Istio-shaped sidecars (mesh mode): Istio's names, Istio's fixes.
#[test]
fn istio_shaped_sidecars() {
    const INBOUND: &str = "inbound|8080||";
    const OUTBOUND: &str = "outbound|8080||backend.lab.svc.cluster.local";
    // The callee's sidecar and Node (seed 001's own place): its inbound
    // cluster has no idle timeout.
    let node = format!("{INBOUND}=node");
    let r = audit_lab("keepalive-race", "istio-inbound", "backend", &[&node]);
    assert_eq!(r.source.shape, "istio-sidecar");
    let f = finding(&r, Rule::KeepaliveRace, INBOUND);
    assert_eq!(f.status, Status::Exposed);
    assert!(
        f.fix
            .contains("DestinationRule for this workload's own Service host"),
        "{}",
        f.fix
    );
    // DestinationRule connectionPool.http.idleTimeout 4 s, applied by Istio
    // to the inbound cluster: not exposed against Node's 5 s.
    let r = audit_lab(
        "keepalive-race",
        "istio-fixed-idle-timeout",
        "backend",
        &[&node],
    );
    assert_eq!(status(&r, Rule::KeepaliveRace, INBOUND), None);
    // The caller's outbound cluster: the fix is the destination's DestinationRule.
    let r = audit_lab("keepalive-race", "istio-inbound", "client", &[]);
    let f = finding(&r, Rule::KeepaliveRace, OUTBOUND);
    assert!(
        f.fix
            .contains("DestinationRule for host `backend.lab.svc.cluster.local`"),
        "{}",
        f.fix
    );
    // Istio's default retries by release: 503 retried up to 1.23 (the
    // client saw only 200s), not from 1.24.
    let old = audit_lab("keepalive-race", "istio-inbound-1.23", "client", &[]);
    assert!(finding(&old, Rule::RetriesHideFailures, OUTBOUND)
        .why
        .contains("503 from the next hop"));
    let new = audit_lab("keepalive-race", "istio-inbound", "client", &[]);
    assert!(!finding(&new, Rule::RetriesHideFailures, OUTBOUND)
        .why
        .contains("503 from the next hop"));
    // Istio 1.6's 100 ms detection on the caller's outbound port, the
    // fall-through to PassthroughCluster in plaintext: exposed, said in
    // meshConfig terms; 5 s is not. The inbound side sniffs too, but its
    // fall-through sends plaintext like its HTTP chain: nothing to say.
    for caller in ["slow", "fast"] {
        let r = audit_lab("sniff-timeout", "istio-strict", caller, &[]);
        let f = finding(&r, Rule::SniffTimeout, "0.0.0.0_8080");
        assert_eq!(f.status, Status::Exposed);
        assert!(
            f.fix.starts_with("meshConfig.protocolDetectionTimeout"),
            "{}",
            f.fix
        );
        assert_eq!(status(&r, Rule::SniffTimeout, "virtualInbound"), None);
        let r = audit_lab(
            "sniff-timeout",
            "istio-fixed-detection-timeout",
            caller,
            &[],
        );
        assert!(
            r.findings.iter().all(|f| f.rule != Rule::SniffTimeout),
            "{caller}"
        );
    }
}

/// Every value of real dumps (but the bootstrap's long extension list)
/// replaced in turn by a value of another JSON type: the audit reads whatever it gets and
/// never panics; a wrong type is a setting it does not see, not a crash.
#[test]
fn no_wrong_typed_field_makes_it_panic() {
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        if at.ends_with("/node/extensions") {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    paths(x, format!("{at}/{key}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    paths(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let wrong = [json!(null), json!(-1), json!("0.5s"), json!([]), json!({})];
    let mut audits = 0;
    for (scenario, variant, node) in [
        ("keepalive-race", "retry-hidden", "caller"),
        ("sniff-timeout", "strict", "caller"),
        ("source-port-reuse", "sequential", "envoy"),
        ("half-open", "gateway-user-timeout", "gwa"),
        ("keepalive-race", "istio-inbound", "backend"),
    ] {
        let mut original = read(&lab_dump(scenario, variant, node));
        // Envoy's list of its extensions (most of the file, never read):
        // left out so each of the thousands of copies is small.
        if let Some(e) = original.pointer_mut("/configs/0/bootstrap/node/extensions") {
            *e = json!([]);
        }
        let mut all = Vec::new();
        paths(&original, String::new(), &mut all);
        // Each value gets the types in turn (value i the i-th, then
        // round): every field meets several wrong types across the dumps.
        for (i, path) in all.iter().filter(|p| !p.is_empty()).enumerate() {
            let mut v = original.clone();
            *v.pointer_mut(path).unwrap() = wrong[i % wrong.len()].clone();
            if let Ok(parsed) = dump::from_value(&v) {
                let r = audit("x", &parsed, &options(&["*=node"], true));
                let _ = connlab::audit::render::human(&r);
                audits += 1;
            }
        }
    }
    assert!(audits > 500, "{audits}");
}
