use super::*;
use crate::scenario::envoy::{Retry, RetryPreset};

/// A valid two-variant scenario; other modules' tests use it too.
pub(crate) const GOOD: &str = r#"name = "demo"
seed = "001.txt"
summary = "s"
timeout_s = 30
reproduced = [{ diagnosis = "keepalive_race", at = "envoy" }]
fixed = [{ client = "failed", count = 0 }]
faults = [{ action = "delay", target = "backend", sport = 8080, delay_ms = 200 }]

[nodes.backend]
kind = "backend"
server = "node"

[nodes.envoy]
kind = "envoy"
listeners.main = { kind = "http", port = 10000, upstream = "backend" }
upstreams.backend = { endpoints = ["backend"] }
filter = { events = "all" }

[nodes.client]
kind = "client"
target = "envoy:10000"
requests = 2
gaps_ms = [0, 5900]

[[variants]]
name = "node"
about = "a"
expect = "reproduced"

[[variants]]
name = "fixed"
about = "b"
expect = "fixed"
nodes.envoy.upstreams.backend.idle_timeout_ms = 4000
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("scenarios/demo.toml"), text)
}

/// The 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in the text"))
        + 1
}

/// Parses `text`, expects an error on the line holding `needle`, in
/// `field`, whose message contains `message`.
fn assert_error(text: &str, needle: &str, field: &str, message: &str) {
    let err = parse(text).expect_err("a mistake");
    let shown = err.to_string();
    assert_eq!(err.line, line_of(text, needle), "{shown}");
    assert_eq!(err.field.as_deref(), Some(field), "{shown}");
    assert!(err.message.contains(message), "{shown}");
    assert!(
        shown.starts_with(&format!(
            "scenarios/demo.toml:{}:{}: {field}: ",
            err.line, err.column
        )),
        "{shown}"
    );
}

#[test]
fn a_good_file_loads_and_variants_override_fields() {
    let scenario = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.variants.len(), 2);
    let upstream =
        |v: &Variant| v.nodes["envoy"].kind.envoy().unwrap().upstreams["backend"].idle_timeout_ms;
    assert_eq!(upstream(&scenario.variants[0]), None);
    assert_eq!(upstream(&scenario.variants[1]), Some(4000));
    // Everything else is inherited.
    let fixed = &scenario.variants[1];
    assert_eq!(fixed.faults.len(), 1);
    assert_eq!(fixed.timeout_s, 30);
    assert_eq!(fixed.networks, vec![DEFAULT_NETWORK.to_string()]);
    let client = fixed.nodes["client"].kind.client().unwrap();
    assert_eq!(client.config.gaps_ms, vec![0, 5900]);
    let filter = &fixed.nodes["envoy"].kind.envoy().unwrap().filter;
    assert_eq!(filter["events"].as_str(), Some("all"));
}

#[test]
fn a_variant_can_add_a_node() {
    let text = GOOD.to_string()
        + r#"
[[variants]]
name = "caller"
about = "c"
expect = "reproduced"
nodes.client.target = "caller:10000"
[variants.nodes.caller]
kind = "envoy"
listeners.main = { kind = "http", port = 10000, upstream = "envoy" }
upstreams.envoy = { endpoints = ["envoy"], retry = "istio-default" }
"#;
    let scenario = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let caller = scenario.variants[2].nodes["caller"].kind.envoy().unwrap();
    assert_eq!(
        caller.upstreams["envoy"].retry,
        Some(Retry::Preset(RetryPreset::IstioDefault))
    );
    assert!(!scenario.variants[0].nodes.contains_key("caller"));
    assert_eq!(
        start_order(&scenario.variants[2]).unwrap(),
        ["envoy", "caller"]
    );
}

#[test]
fn an_unknown_field_is_named_where_it_is() {
    let text = GOOD.replace("server = \"node\"", "server = \"node\"\nretries = 2");
    assert_error(&text, "retries = 2", "retries", "unknown field `retries`");
    let text = GOOD.replace("timeout_s = 30", "timeout_s = 30\nretries = 2");
    assert_error(&text, "retries = 2", "retries", "unknown field `retries`");
}

#[test]
fn a_bad_value_is_named_where_it_is() {
    assert_error(
        &GOOD.replace("timeout_s = 30", "timeout_s = -1"),
        "timeout_s = -1",
        "timeout_s",
        "",
    );
    assert_error(
        &GOOD.replace("server = \"node\"", "server = \"nod\""),
        "server = \"nod\"",
        "server",
        "unknown variant `nod`",
    );
    // A bad value in a variant points at the variant, not the base.
    let text = GOOD.replace("idle_timeout_ms = 4000", "idle_timeout_ms = \"4s\"");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.line, line_of(&text, "\"4s\""), "{err}");
}

#[test]
fn an_unknown_node_kind() {
    assert_error(
        &GOOD.replace("kind = \"backend\"", "kind = \"server\""),
        "kind = \"server\"",
        "nodes.backend.kind",
        "unknown kind `server`",
    );
}

#[test]
fn an_unknown_listener_kind() {
    assert_error(
        &GOOD.replace("kind = \"http\"", "kind = \"grpc\""),
        "kind = \"grpc\"",
        "listeners.main",
        "unknown variant `grpc`",
    );
}

#[test]
fn an_unknown_node_in_an_endpoint() {
    assert_error(
        &GOOD.replace("endpoints = [\"backend\"]", "endpoints = [\"bakend\"]"),
        "bakend",
        "nodes.envoy.upstreams.backend.endpoints[0]",
        "no node `bakend`",
    );
}

#[test]
fn an_endpoint_without_a_port_on_a_node_without_one() {
    assert_error(
        &GOOD.replace("endpoints = [\"backend\"]", "endpoints = [\"client\"]"),
        "endpoints = [\"client\"]",
        "nodes.envoy.upstreams.backend.endpoints[0]",
        "write `client:<port>`",
    );
}

#[test]
fn an_unknown_upstream_in_a_listener() {
    assert_error(
        &GOOD.replace("upstream = \"backend\"", "upstream = \"db\""),
        "upstream = \"db\"",
        "nodes.envoy.listeners.main.upstream",
        "no upstream `db`",
    );
}

#[test]
fn an_unknown_node_as_client_target() {
    assert_error(
        &GOOD.replace("target = \"envoy:10000\"", "target = \"proxy:10000\""),
        "proxy:10000",
        "nodes.client.target",
        "no node `proxy`",
    );
}

#[test]
fn a_fault_on_a_node_that_is_not_there() {
    assert_error(
        &GOOD.replace("target = \"backend\"", "target = \"db\""),
        "target = \"db\"",
        "faults[0].target",
        "no node `db`",
    );
}

#[test]
fn a_check_on_a_node_that_is_not_there() {
    assert_error(
        &GOOD.replace("at = \"envoy\" }]", "at = \"sidecar\" }]"),
        "sidecar",
        "reproduced[0].at",
        "no node `sidecar`",
    );
    // An Envoy check on a node that is not an Envoy.
    assert_error(
        &GOOD.replace("at = \"envoy\" }]", "at = \"backend\" }]"),
        "at = \"backend\" }]",
        "reproduced[0].at",
        "is a backend node",
    );
}

#[test]
fn a_malformed_check() {
    assert_error(
        &GOOD.replace(
            "{ client = \"failed\", count = 0 }",
            "{ client = \"failed\", count = \"lots\" }",
        ),
        "lots",
        "fixed",
        "`lots`",
    );
    assert_error(
        &GOOD.replace("fixed = [{ client = \"failed\", count = 0 }]", "fixed = []"),
        "fixed = []",
        "fixed",
        "at least one check",
    );
}

#[test]
fn a_network_not_declared() {
    let text = GOOD.replace(
        "server = \"node\"",
        "server = \"node\"\nnetworks = [\"dmz\"]",
    );
    assert_error(
        &text,
        "networks = [\"dmz\"]",
        "nodes.backend.networks[0]",
        "no network `dmz`",
    );
}

#[test]
fn several_networks_need_each_node_to_name_its_own() {
    let text = GOOD.replace(
        "timeout_s = 30",
        "timeout_s = 30\nnetworks = [\"a\", \"b\"]",
    );
    let err = parse(&text).unwrap_err();
    assert!(err.message.contains("name the ones it joins"), "{err}");
}

#[test]
fn a_sysctl_outside_net() {
    let text = GOOD.replace(
        "server = \"node\"",
        "server = \"node\"\nsysctls = { \"kernel.pid_max\" = \"9\" }",
    );
    assert_error(
        &text,
        "kernel.pid_max",
        "nodes.backend.sysctls",
        "only net.*",
    );
}

#[test]
fn a_knob_of_another_server() {
    let text = GOOD.replace("server = \"node\"", "server = \"node\"\nclose_after = 100");
    assert_error(
        &text,
        "close_after = 100",
        "nodes.backend.close_after",
        "connlab-backend knob",
    );
}

#[test]
fn a_router_on_one_network() {
    let text = GOOD.to_string() + "\n[nodes.gw]\nkind = \"router\"\n";
    let err = parse(&text).unwrap_err();
    assert!(err.message.contains("at least two networks"), "{err}");
}

#[test]
fn an_envoy_cycle() {
    let text = GOOD.replace(
        "upstreams.backend = { endpoints = [\"backend\"] }",
        "upstreams.backend = { endpoints = [\"envoy:10000\"] }",
    );
    let err = parse(&text).unwrap_err();
    assert!(err.message.contains("cycle"), "{err}");
}

#[test]
fn duplicate_variant_names() {
    let text = GOOD.replace("name = \"fixed\"", "name = \"node\"");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("variants[1].name"), "{err}");
    assert!(err.message.contains("earlier variant"), "{err}");
}

#[test]
fn every_shipped_scenario_loads() {
    let dir = crate::paths::root().join("scenarios");
    let scenarios = load_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(!scenarios.is_empty());
}

/// GOOD with its listener made a sniffing one (`rest` replaces the closing
/// brace, so a test can add or drop keys).
fn sniffing(rest: &str) -> String {
    GOOD.replace(
        "listeners.main = { kind = \"http\", port = 10000, upstream = \"backend\" }",
        &format!(
            "listeners.main = {{ kind = \"sniffing\", port = 10000, upstream = \"backend\"{rest}"
        ),
    )
}

#[test]
fn a_sniffing_listener_loads() {
    let text = sniffing(", passthrough = \"backend\", detection_timeout_ms = 100 }");
    let scenario = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let envoy = scenario.variants[0].nodes["envoy"].kind.envoy().unwrap();
    assert_eq!(envoy.listeners["main"].detection_timeout_ms, Some(100));
}

#[test]
fn a_sniffing_listener_without_its_default_chain_or_timeout() {
    assert_error(
        &sniffing(", detection_timeout_ms = 100 }"),
        "kind = \"sniffing\"",
        "nodes.envoy.listeners.main",
        "needs `passthrough`",
    );
    assert_error(
        &sniffing(", passthrough = \"backend\" }"),
        "kind = \"sniffing\"",
        "nodes.envoy.listeners.main",
        "needs `detection_timeout_ms`",
    );
    assert_error(
        &sniffing(", passthrough = \"backend\", detection_timeout_ms = 0 }"),
        "detection_timeout_ms = 0",
        "nodes.envoy.listeners.main.detection_timeout_ms",
        "must be above 0",
    );
}

#[test]
fn a_passthrough_to_an_unknown_upstream() {
    assert_error(
        &sniffing(", passthrough = \"PassthroughCluster\", detection_timeout_ms = 100 }"),
        "PassthroughCluster",
        "nodes.envoy.listeners.main.passthrough",
        "no upstream `PassthroughCluster`",
    );
}

#[test]
fn a_sniffing_key_on_another_listener_kind() {
    assert_error(
        &GOOD.replace(
            "upstream = \"backend\" }",
            "upstream = \"backend\", detection_timeout_ms = 100 }",
        ),
        "detection_timeout_ms = 100",
        "nodes.envoy.listeners.main.detection_timeout_ms",
        "only a `sniffing` listener",
    );
}

#[test]
fn an_unknown_or_misplaced_mtls_mode() {
    assert_error(
        &GOOD.replace(
            "upstream = \"backend\" }",
            "upstream = \"backend\", mtls = \"mutual\" }",
        ),
        "mtls = \"mutual\"",
        "listeners.main",
        "unknown variant `mutual`",
    );
    assert_error(
        &sniffing(", passthrough = \"backend\", detection_timeout_ms = 100, mtls = \"strict\" }"),
        "mtls = \"strict\"",
        "nodes.envoy.listeners.main.mtls",
        "no downstream mTLS",
    );
    assert_error(
        &GOOD.replace(
            "endpoints = [\"backend\"] }",
            "endpoints = [\"backend\"], mtls = \"strict\" }",
        ),
        "mtls = \"strict\"",
        "upstreams.backend",
        "expected a boolean",
    );
}

#[test]
fn a_connlab_backend_knob_on_another_server() {
    assert_error(
        &GOOD.replace(
            "server = \"node\"",
            "server = \"node\"\nawait_client_close_ms = 2000",
        ),
        "await_client_close_ms",
        "nodes.backend.await_client_close_ms",
        "connlab-backend",
    );
}

#[test]
fn a_timeline_check_needs_a_scheduled_fault() {
    assert_error(
        &GOOD.replace(
            "fixed = [{ client = \"failed\", count = 0 }]",
            "fixed = [{ timeline = \"recovery_s\", value = \"<= 8\" }]",
        ),
        "fixed = [",
        "fixed[0]",
        "scheduled after the start",
    );
    let text = GOOD
        .replace("delay_ms = 200 }]", "delay_ms = 200, at_ms = 5000 }]")
        .replace(
            "fixed = [{ client = \"failed\", count = 0 }]",
            "fixed = [{ timeline = \"recovery_s\", value = \"<= 8\" }]",
        );
    let scenario = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.variants[0].timeline_fault_s(), Some(5));
}

#[test]
fn iptables_rules_name_nodes_that_are_up() {
    let router = |rules: &str| {
        GOOD.replace(
            "[nodes.client]",
            &format!(
                "[nodes.vip]\nkind = \"router\"\nnetworks = [\"lab\", \"out\"]\niptables = [{rules}]\n\n[nodes.client]"
            ),
        )
        .replace("timeout_s = 30", "timeout_s = 30\nnetworks = [\"lab\", \"out\"]")
        .replace("kind = \"backend\"", "kind = \"backend\"\nnetworks = [\"lab\"]")
        .replace("kind = \"envoy\"", "kind = \"envoy\"\nnetworks = [\"lab\"]")
        .replace("kind = \"client\"", "kind = \"client\"\nnetworks = [\"lab\"]")
    };
    let good = router("\"-t nat -A PREROUTING -j DNAT --to-destination {ip:envoy}:10000\"");
    parse(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_error(
        &router("\"-j DNAT --to-destination {ip:envoi}\""),
        "{ip:envoi}",
        "nodes.vip.iptables[0]",
        "no node `envoi`",
    );
    assert_error(
        &router("\"-j DNAT --to-destination {ip:client}\""),
        "{ip:client}",
        "nodes.vip.iptables[0]",
        "a workload node",
    );
    // A scheduled fault runs while the workload is up.
    let fault = |rules: &str| {
        GOOD.replace(
            "faults = [{ action = \"delay\", target = \"backend\", sport = 8080, delay_ms = 200 }]",
            &format!("faults = [{{ action = \"iptables\", target = \"backend\", at_ms = 5000, rules = [{rules}] }}]"),
        )
    };
    parse(&fault("\"-A INPUT -s {ip:client} -j DROP\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_error(
        &fault(""),
        "rules = []",
        "faults[0].rules",
        "at least one rule",
    );
}

#[test]
fn a_health_check_needs_its_times() {
    assert_error(
        &GOOD.replace(
            "upstreams.backend = { endpoints = [\"backend\"] }",
            "upstreams.backend = { endpoints = [\"backend\"], health_check = { interval_ms = 0, timeout_ms = 500 } }",
        ),
        "health_check",
        "nodes.envoy.upstreams.backend.health_check",
        "above 0",
    );
}

/// A client behind a router, a server on the other side capturing, a scapy
/// script: the snat-timewait shape.
const ROUTED: &str = r#"name = "routed"
seed = "003.txt"
summary = "s"
timeout_s = 30
networks = ["inside", "outside"]
reproduced = [{ packets = "challenge_acks", at = "server", count = ">= 1" }]
fixed = [{ packets = "challenge_acks", at = "server", count = 0 }]

[nodes.server]
kind = "backend"
server = "connlab-backend"
networks = ["outside"]
capture = "tcp port 8080"

[nodes.nat]
kind = "router"
networks = ["inside", "outside"]

[nodes.client]
kind = "client"
networks = ["inside"]
gateway = "nat"
target = "server:8080"
requests = 1

[[variants]]
name = "load"
about = "a"
expect = "reproduced"

[[variants]]
name = "scapy"
about = "b"
expect = "reproduced"
nodes.client = false
nodes.nat = false
networks = ["outside"]
[variants.nodes.lb]
kind = "script"
networks = ["outside"]
workload = true
command = ["python3", "x.py", "{ip:server}", "40000"]
"#;

#[test]
fn gateways_captures_and_dropped_nodes_load() {
    let scenario = parse(ROUTED).unwrap_or_else(|e| panic!("{e}"));
    let load = &scenario.variants[0];
    assert_eq!(load.nodes["client"].gateway.as_deref(), Some("nat"));
    assert_eq!(
        load.nodes["server"].capture.as_deref(),
        Some("tcp port 8080")
    );
    let scapy = &scenario.variants[1];
    let names: Vec<&str> = scapy.nodes.keys().map(String::as_str).collect();
    assert_eq!(names, ["lb", "server"]);
}

#[test]
fn a_gateway_that_is_not_a_router_on_a_shared_network() {
    assert_error(
        &ROUTED.replace("gateway = \"nat\"", "gateway = \"server\""),
        "gateway = \"server\"",
        "nodes.client.gateway",
        "not a router",
    );
    assert_error(
        &ROUTED.replace("gateway = \"nat\"", "gateway = \"gw\""),
        "gateway = \"gw\"",
        "nodes.client.gateway",
        "no node `gw`",
    );
    let text = ROUTED.replace(
        "networks = [\"inside\", \"outside\"]\n\n[nodes.client]",
        "networks = [\"outside\", \"dmz\"]\n\n[nodes.client]",
    );
    let text = text.replacen(
        "networks = [\"inside\", \"outside\"]",
        "networks = [\"inside\", \"outside\", \"dmz\"]",
        1,
    );
    assert_error(
        &text,
        "gateway = \"nat\"",
        "nodes.client.gateway",
        "on none of `client`'s networks",
    );
}

#[test]
fn a_capture_on_a_workload_or_a_packets_check_without_one() {
    assert_error(
        &ROUTED.replace("gateway = \"nat\"", "gateway = \"nat\"\ncapture = \"tcp\""),
        "capture = \"tcp\"",
        "nodes.client.capture",
        "a workload node",
    );
    let text = ROUTED.replace("capture = \"tcp port 8080\"\n", "");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("reproduced[0].at"), "{err}");
    assert!(err.message.contains("captures nothing"), "{err}");
}

#[test]
fn a_script_names_an_unknown_node() {
    assert_error(
        &ROUTED.replace("{ip:server}", "{ip:sever}"),
        "{ip:sever}",
        "nodes.lb.command[2]",
        "no other node `sever`",
    );
}
