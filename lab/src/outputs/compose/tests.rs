use super::commands::shell_word;
use super::yaml::yaml_str;
use super::*;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(Path::new("t.toml"), text).unwrap()
}

const RACE: &str = r#"
name = "race"
seed = "001.txt"
summary = "s"
timeout_s = 30
reproduced = [{ client = "503" }]
fixed = [{ client = "failed", count = 0 }]
faults = [{ action = "delay", target = "backend", sport = 8080, delay_ms = 1000, tcp_flags = "FIN" },
          { action = "pause", target = "backend", at_ms = 3000 }]
[nodes.backend]
kind = "backend"
server = "node"
keepalive_ms = 6000
[nodes.envoy]
kind = "envoy"
listeners.main = { kind = "http", port = 10000, upstream = "backend" }
upstreams.backend = { endpoints = ["backend"] }
[nodes.client]
kind = "client"
target = "envoy:10000"
requests = 2
[[variants]]
name = "node"
about = "the race"
expect = "reproduced"
"#;

fn rendered() -> Rendered {
    let s = scenario(RACE);
    let subnets = Subnets::assign(std::slice::from_ref(&s));
    render(
        &s,
        &s.variants[0],
        &subnets,
        &Placement::checked_in("race", "node"),
    )
    .unwrap()
}

#[test]
fn envoy_endpoints_and_the_client_target_are_the_static_addresses() {
    let r = rendered();
    let yaml = &r.yaml;
    let base = Subnets::assign(&[scenario(RACE)])
        .of("race", "node", "lab")
        .unwrap();
    let o = base.octets();
    let backend = format!("{}.{}.{}.10", o[0], o[1], o[2]);
    let envoy = format!("{}.{}.{}.11", o[0], o[1], o[2]);
    assert!(yaml.contains(&format!("ipv4_address: {backend}")), "{yaml}");
    assert!(
        yaml.contains(&format!("\"--target\", \"{envoy}:10000\"")),
        "{yaml}"
    );
    assert!(yaml.contains(&format!("- subnet: {}/24", base)), "{yaml}");
    let (name, config) = &r.files[0];
    assert_eq!(name, "envoy.json");
    let config: serde_json::Value = serde_json::from_str(config).unwrap();
    let endpoint = &config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
        ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    assert_eq!(endpoint["address"], backend.as_str(), "{endpoint}");
    assert_eq!(endpoint["port_value"], 8080);
}

#[test]
fn services_run_the_lab_commands_and_faults_are_commented_steps() {
    let yaml = rendered().yaml;
    // The backend: Node with its keep-alive knob, NET_ADMIN for the
    // delay fault; Envoy as the runtime starts it, certificates first.
    assert!(
        yaml.contains("command: [\"node\", \"/opt/connlab/backends/node-server.js\"]"),
        "{yaml}"
    );
    assert!(
        yaml.contains("CONNLAB_NODE_KEEPALIVE_MS: \"6000\""),
        "{yaml}"
    );
    assert!(yaml.contains("cap_add: [\"NET_ADMIN\"]"), "{yaml}");
    assert!(
        yaml.contains("\"envoy\", \"-c\", \"/connlab/envoy.json\", \"--concurrency\", \"1\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("command: [\"connlab-certs\", \"/connlab\", \"envoy\"]"),
        "{yaml}"
    );
    assert!(
        yaml.contains("condition: service_completed_successfully"),
        "{yaml}"
    );
    assert!(yaml.contains("source: \"./node/envoy.json\""), "{yaml}");
    assert!(
        yaml.contains(&format!(
            "source: \"${{CONNLAB_FILTER_WASM:-{WASM_FROM_COMPOSE_DIR}}}\""
        )),
        "{yaml}"
    );
    assert!(yaml.contains("profiles: [workload]"), "{yaml}");
    assert!(
        yaml.contains(
            "#   dc exec -d backend connlab-delay --queue 0 --delay-ms 1000 --loss-percent 0\n"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   until dc exec -T backend sh -c \"grep -qE '^ *0 ' /proc/net/netfilter/nfnetlink_queue\"; do sleep 0.1; done\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   dc exec -T backend iptables -A OUTPUT -p tcp --sport 8080 --tcp-flags FIN FIN -j NFQUEUE --queue-num 0\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   # at 3.0 s:\n#   dc pause backend\n"),
        "{yaml}"
    );
    assert!(yaml.contains("#   dc run --rm -T client\n"), "{yaml}");
    // The workload client has no static address (`run` twice).
    let client = yaml.split("  client:\n").nth(1).unwrap();
    assert!(
        !client
            .split("\n  ")
            .next()
            .unwrap()
            .contains("ipv4_address"),
        "{client}"
    );
}

#[test]
fn router_rules_find_the_device_by_the_static_address() {
    let text = RACE
        .replace(
            "timeout_s = 30",
            "timeout_s = 30\nnetworks = [\"inside\", \"outside\"]",
        )
        .replace(
            "kind = \"backend\"",
            "kind = \"backend\"\nnetworks = [\"inside\"]\ncapture = \"tcp port 8080\"",
        )
        .replace(
            "kind = \"envoy\"",
            "kind = \"envoy\"\nnetworks = [\"inside\"]",
        )
        .replace(
            "kind = \"client\"",
            "kind = \"client\"\nnetworks = [\"inside\"]",
        )
        .replace(
            "[nodes.envoy]",
            "[nodes.nat]\nkind = \"router\"\nnetworks = [\"inside\", \"outside\"]\n\
             iptables = [\"-t nat -A POSTROUTING -o {dev:outside} -j MASQUERADE\"]\n\
             [nodes.envoy]",
        );
    let s = scenario(&text);
    let subnets = Subnets::assign(std::slice::from_ref(&s));
    let placement = Placement::checked_in("race", "node");
    let yaml = render(&s, &s.variants[0], &subnets, &placement)
        .unwrap()
        .yaml;
    let o = subnets.of("race", "node", "outside").unwrap().octets();
    // The only node on `outside`.
    let ip = format!("{}.{}.{}.10", o[0], o[1], o[2]);
    let line = format!(
        "#   dc exec -T nat sh -c 'iptables -t nat -A POSTROUTING -o \
         $(ip -br -4 addr show to {ip} | cut -d@ -f1 | cut -d\" \" -f1) -j MASQUERADE'\n"
    );
    assert!(yaml.contains(&line), "{line}\n{yaml}");
    assert!(yaml.contains("net.ipv4.ip_forward: \"1\""), "{yaml}");
    // The capture as the lab starts it: after the rules, before the faults.
    let capture = "#   dc exec -d backend tcpdump --immediate-mode -i any -n -U -Z root \
                   -s 200 -w /connlab/capture-backend.pcap tcp port 8080\n";
    let at = yaml.find(capture).unwrap_or_else(|| panic!("{yaml}"));
    assert!(yaml.find(&line).unwrap() < at, "{yaml}");
    assert!(at < yaml.find("connlab-delay").unwrap(), "{yaml}");
}

#[test]
fn dollars_are_escaped_for_compose() {
    assert_eq!(yaml_str("echo $HOME"), "\"echo $$HOME\"");
    assert_eq!(shell_word("a $b'c"), "'a $b'\\''c'");
    assert_eq!(shell_word("--sport"), "--sport");
    assert_eq!(shell_word("grep -q '^ 0'"), "\"grep -q '^ 0'\"");
}

#[test]
fn subnets_are_stable_and_distinct() {
    let a = scenario(RACE);
    let b = scenario(&RACE.replace("name = \"race\"", "name = \"other\""));
    let alone = Subnets::assign(std::slice::from_ref(&a));
    let both = Subnets::assign(&[a.clone(), b]);
    assert_eq!(
        alone.of("race", "node", "lab"),
        both.of("race", "node", "lab")
    );
    assert_ne!(
        both.of("race", "node", "lab"),
        both.of("other", "node", "lab")
    );
    let ip = both.of("race", "node", "lab").unwrap();
    assert_eq!(ip.octets()[0], 10);
    assert!(ip.octets()[1] >= 128);
    assert_eq!(ip.octets()[3], 0);
}

/// A mesh variant is refused with the reason and the command to run
/// instead, never a half-made pod.
#[test]
fn a_mesh_variant_is_refused_saying_why_and_what_to_run() {
    let text = format!("{RACE}\nnodes.backend.sidecar = {{}}\n[variants.mesh]\nistio = \"1.28\"\n");
    let s = scenario(&text);
    let subnets = Subnets::assign(std::slice::from_ref(&s));
    let err = render(
        &s,
        &s.variants[0],
        &subnets,
        &Placement::checked_in("race", "node"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.starts_with("race/node: a mesh variant has no compose file"),
        "{err}"
    );
    for said in [
        "sha256",
        "ECDS",
        "connlab run <scenario> --variant <variant> --evidence DIR",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
}
