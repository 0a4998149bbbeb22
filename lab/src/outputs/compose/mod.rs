//! `connlab compose`: a variant's topology as a docker-compose file, for a
//! person who wants to poke at a live reproduction with `docker-compose
//! exec`, curl and tcpdump. Every container is built by the lab's own spec
//! builders (`run::spec` plus each role's command), so it runs what a lab
//! run runs; only what the lab learns at run time is fixed up front: each
//! network gets a static subnet and each node a static address, so Envoy's
//! generated config (a file beside the compose file) can name its endpoints.
//!
//! The file format is 2.4, which Debian's docker-compose 1.29 reads. Faults,
//! router rules and the workload are what a lab run does after `up`; the file
//! writes them as commented `docker-compose` commands, in the lab's order.
//!
//! Certificates are issued at `up` time by a one-shot `certs` service
//! (`connlab-certs`, the lab's own issuer) into the project's volume: a key
//! checked in would either change on every regeneration (rcgen's keys and
//! ECDSA signatures are random, so the drift check could never pass) or be
//! a fixed private key in git that outlives its two-day validity.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::run;
use crate::run::addresses::{self, Addresses};
use crate::run::capture;
use crate::run::roles::{backend, client, envoy, router, script};
use crate::run::runtime::{ContainerSpec, SHARED_DIR};
use crate::scenario::fault::{Fault, Step};
use crate::scenario::node::{NodeKind, BACKEND_PORT};
use crate::scenario::rules;
use crate::scenario::{networks_of, start_order, Scenario, Variant};

/// The compose file format: the newest 2.x, read by docker-compose 1.29.
pub const FILE_FORMAT: &str = "2.4";
/// The one-shot service that issues the Envoys' certificates.
pub const CERTS_SERVICE: &str = "certs";
/// The project's volume, mounted at `SHARED_DIR` in every container like a
/// run's shared directory.
pub const VOLUME: &str = "connlab";
/// Clients and workload scripts: started by `docker-compose run`, not `up`.
pub const WORKLOAD_PROFILE: &str = "workload";
/// Where the filter module is, seen from `compose/<scenario>/`.
const WASM_FROM_COMPOSE_DIR: &str = "../../target/wasm32-unknown-unknown/wasm/connlab_filter.wasm";
/// The lab's runtime directories under `compose/`, never a scenario's.
pub const NOT_SCENARIOS: [&str; 5] = ["backends", "clients", "experiments", "lab-image", "scripts"];
/// First host number of nodes in a subnet (.1 is Docker's gateway).
const FIRST_HOST: u8 = 10;

/// A /24 per (scenario, variant, network), from 10.128.0.0/9: a stable hash
/// of the three names, so a new scenario leaves the other files as they are
/// (unless it takes a slot another file then has to give up: the next free
/// /24 on a collision, in name order), and distinct, so two compose projects
/// can be up at once. Docker's default pools (172.17/12, 192.168/16) and the
/// lab's own networks never use 10/8.
pub struct Subnets(BTreeMap<(String, String, String), Ipv4Addr>);

const SLOTS: u32 = 1 << 15;

impl Subnets {
    pub fn assign(scenarios: &[Scenario]) -> Subnets {
        let mut taken = BTreeSet::new();
        let mut subnets = BTreeMap::new();
        for s in scenarios {
            for v in &s.variants {
                for n in &v.networks {
                    let key = format!("{}/{}/{}", s.name, v.name, n);
                    let mut slot = (fnv1a(key.as_bytes()) % u64::from(SLOTS)) as u32;
                    while !taken.insert(slot) {
                        slot = (slot + 1) % SLOTS;
                    }
                    let base = Ipv4Addr::from(0x0a80_0000 | (slot << 8));
                    subnets.insert((s.name.clone(), v.name.clone(), n.clone()), base);
                }
            }
        }
        Subnets(subnets)
    }

    /// The network's x.y.z.0.
    fn of(&self, scenario: &str, variant: &str, network: &str) -> Option<Ipv4Addr> {
        let key = (scenario.into(), variant.into(), network.into());
        self.0.get(&key).copied()
    }
}

/// FNV-1a, 64 bits: stable across Rust versions (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where a compose file lives, as its text names it.
pub struct Placement {
    /// The file, as a person at the repository root names it (`-f`).
    pub file: String,
    /// The filter module's default host path (`$CONNLAB_FILTER_WASM`
    /// overrides), relative to the file's directory or absolute.
    pub wasm: String,
}

impl Placement {
    /// `compose/<scenario>/<variant>.yaml` of a checkout.
    pub fn checked_in(scenario: &str, variant: &str) -> Placement {
        Placement {
            file: format!("compose/{scenario}/{variant}.yaml"),
            wasm: WASM_FROM_COMPOSE_DIR.into(),
        }
    }
}

/// A compose file and the files beside it, in `<variant>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub yaml: String,
    /// (file name, text): each Envoy's bootstrap.
    pub files: Vec<(String, String)>,
}

/// One node, ready to write as a service.
struct Service {
    spec: ContainerSpec,
    /// Its static address per network (none: workload nodes, so `run` can
    /// start them again and again).
    addresses: Vec<(String, IpAddr)>,
    envoy_config: Option<String>,
    workload: bool,
}

pub fn render(
    scenario: &Scenario,
    variant: &Variant,
    subnets: &Subnets,
    placement: &Placement,
) -> anyhow::Result<Rendered> {
    let title = format!("{}/{}", scenario.name, variant.name);
    anyhow::ensure!(
        variant.mesh.is_none(),
        "{title}: mesh variants run in the lab only (`connlab run`), not as compose files yet"
    );
    let workload = |kind: &NodeKind| match kind {
        NodeKind::Client(_) => true,
        NodeKind::Script(s) => s.workload,
        _ => false,
    };
    // Static addresses, in node order, for every node a run starts before
    // the workload.
    let mut addresses = Addresses::default();
    let mut next_host: BTreeMap<String, u8> = BTreeMap::new();
    for (name, node) in &variant.nodes {
        if workload(&node.kind) {
            continue;
        }
        let mut mine = Vec::new();
        for network in &networks_of(variant, node) {
            let base = subnets
                .of(&scenario.name, &variant.name, network)
                .with_context(|| format!("{title}: no subnet for network `{network}`"))?;
            let host = next_host.entry(network.clone()).or_insert(FIRST_HOST);
            let ip = Ipv4Addr::from(u32::from(base) | u32::from(*host));
            *host += 1;
            mine.push((network.clone(), IpAddr::V4(ip)));
        }
        addresses.0.insert(name.clone(), mine);
    }

    // The runtime's start order: routers, then backends and background
    // scripts; Envoys after the Envoys they forward to; then the workload.
    let envoys =
        start_order(variant).map_err(|n| anyhow::anyhow!("{title}: Envoy cycle at {n}"))?;
    let router = |kind: &NodeKind| matches!(kind, NodeKind::Router(_));
    let before_envoys = variant
        .nodes
        .iter()
        .filter(|(_, n)| n.kind.envoy().is_none() && !workload(&n.kind));
    let (routers, others): (Vec<_>, Vec<_>) = before_envoys.partition(|(_, n)| router(&n.kind));
    let mut order: Vec<&String> = routers
        .into_iter()
        .chain(others)
        .map(|(name, _)| name)
        .collect();
    order.extend(envoys.iter());
    order.extend(
        variant
            .nodes
            .iter()
            .filter(|(_, n)| workload(&n.kind))
            .map(|(name, _)| name),
    );

    let mut services = Vec::new();
    let mut files = Vec::new();
    for name in order {
        let node = &variant.nodes[name];
        let mut spec = run::spec(variant, name, node, &addresses)
            .map_err(|e| anyhow::anyhow!("{title}: {e}"))?;
        let mut envoy_config = None;
        match &node.kind {
            NodeKind::Backend(b) => backend::command(b, &mut spec),
            NodeKind::Router(_) => router::prepare(&mut spec),
            NodeKind::Script(s) => {
                let words = addresses
                    .fill(&spec.networks, &s.command)
                    .map_err(|e| anyhow::anyhow!("{title}: {name}: {e}"))?;
                script::command(words, &mut spec)
            }
            NodeKind::Envoy(e) => {
                let from = networks_of(variant, node);
                let resolve = |endpoint: &str| addresses.reach(variant, &from, endpoint);
                let (file, text) = envoy::config_file(name, e, &resolve)
                    .map_err(|e| anyhow::anyhow!("{title}: {name}: {e}"))?;
                envoy::command(&file, &mut spec);
                files.push((file.clone(), text));
                envoy_config = Some(file);
            }
            NodeKind::Client(c) => {
                let target = addresses
                    .reach(variant, &spec.networks, &c.config.target)
                    .with_context(|| format!("{title}: {name}: cannot reach the target"))?;
                client::command(c, target.to_string(), &mut spec);
            }
        }
        services.push(Service {
            addresses: addresses.0.get(name).cloned().unwrap_or_default(),
            spec,
            envoy_config,
            workload: workload(&node.kind),
        });
    }

    let mut yaml = header(scenario, variant, placement, &services);
    let labels = format!("{}/{}", scenario.name, variant.name);
    writeln!(yaml, "version: \"{FILE_FORMAT}\"").ok();
    yaml.push_str(&format!(
        "\n# On every container, network and volume: the lab's sweep removes a\n\
         # project whose CONNLAB_PID is set and no longer running (the tests set it).\n\
         x-labels: &labels\n  connlab: \"1\"\n  connlab.run: \"${{CONNLAB_RUN:-}}\"\n  \
         connlab.pid: \"${{CONNLAB_PID:-}}\"\n  connlab.compose: {}\n",
        yaml_str(&labels)
    ));
    yaml.push_str("\nservices:\n");
    let envoy_nodes: Vec<&str> = services
        .iter()
        .filter(|s| s.envoy_config.is_some())
        .map(|s| s.spec.role.as_str())
        .collect();
    let mut certs = vec!["connlab-certs".to_string(), SHARED_DIR.to_string()];
    certs.extend(envoy_nodes.iter().map(|s| s.to_string()));
    writeln!(
        yaml,
        "  # The run's CA and each Envoy's certificate, issued at `up` into the volume.\n  \
         {CERTS_SERVICE}:\n    image: {IMAGE}\n    command: {}\n    network_mode: none\n    \
         volumes:\n      - {VOLUME}:{SHARED_DIR}\n    labels: *labels",
        flow(&certs)
    )
    .ok();
    for service in &services {
        yaml.push_str(&service_yaml(service, &variant.name, placement));
    }
    yaml.push_str("\nnetworks:\n");
    for network in &variant.networks {
        let base = subnets
            .of(&scenario.name, &variant.name, network)
            .with_context(|| format!("{title}: no subnet for network `{network}`"))?;
        writeln!(
            yaml,
            "  {}:\n    ipam:\n      config:\n        - subnet: {base}/24\n    labels: *labels",
            yaml_key(network)
        )
        .ok();
    }
    writeln!(yaml, "\nvolumes:\n  {VOLUME}:\n    labels: *labels").ok();
    Ok(Rendered { yaml, files })
}

/// `${CONNLAB_IMAGE}`, with the reason when it is not set.
const IMAGE: &str =
    "${CONNLAB_IMAGE:?run make image and export CONNLAB_IMAGE from target/lab-image.tag}";

fn service_yaml(service: &Service, variant: &str, placement: &Placement) -> String {
    let spec = &service.spec;
    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "  {}:", yaml_key(&spec.role)).ok();
    writeln!(w, "    image: {IMAGE}").ok();
    writeln!(w, "    hostname: {}", yaml_str(&spec.role)).ok();
    writeln!(w, "    command: {}", flow(&spec.command())).ok();
    if !spec.env.is_empty() {
        writeln!(w, "    environment:").ok();
        for (key, value) in &spec.env {
            writeln!(w, "      {}: {}", yaml_key(key), yaml_str(value)).ok();
        }
    }
    let mut caps: Vec<String> = Vec::new();
    if spec.net_admin {
        caps.push("NET_ADMIN".into());
    }
    caps.extend(
        spec.cap_add
            .iter()
            .filter(|c| !caps.contains(c))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if !caps.is_empty() {
        writeln!(w, "    cap_add: {}", flow(&caps)).ok();
    }
    if !spec.sysctls.is_empty() {
        writeln!(w, "    sysctls:").ok();
        let sorted: BTreeMap<_, _> = spec.sysctls.iter().collect();
        for (key, value) in sorted {
            writeln!(w, "      {}: {}", yaml_key(key), yaml_str(value)).ok();
        }
    }
    writeln!(w, "    networks:").ok();
    for network in &spec.networks {
        match service.addresses.iter().find(|(n, _)| n == network) {
            Some((_, ip)) => writeln!(
                w,
                "      {}:\n        ipv4_address: {ip}",
                yaml_key(network)
            )
            .ok(),
            None => writeln!(w, "      {}: {{}}", yaml_key(network)).ok(),
        };
    }
    writeln!(w, "    volumes:\n      - {VOLUME}:{SHARED_DIR}").ok();
    if let Some(config) = &service.envoy_config {
        // `source` is quoted YAML already.
        let bind = |source: String, target: &str| {
            format!(
                "      - type: bind\n        source: {source}\n        target: {}\n        read_only: true\n",
                yaml_str(target)
            )
        };
        let config_source = yaml_str(&format!("./{variant}/{config}"));
        w.push_str(&bind(config_source, &format!("{SHARED_DIR}/{config}")));
        // Interpolated by compose: `$CONNLAB_FILTER_WASM` wins.
        let wasm = format!(
            "\"${{CONNLAB_FILTER_WASM:-{}}}\"",
            yaml_str(&placement.wasm).trim_matches('"')
        );
        w.push_str(&bind(wasm, &envoy::wasm_in_container().to_string_lossy()));
        writeln!(
            w,
            "    depends_on:\n      {CERTS_SERVICE}:\n        condition: service_completed_successfully"
        )
        .ok();
    }
    if service.workload {
        writeln!(w, "    profiles: [{WORKLOAD_PROFILE}]").ok();
    }
    // The lab removes its containers at once; no server here needs SIGTERM.
    writeln!(w, "    stop_grace_period: 1s").ok();
    writeln!(w, "    labels: *labels").ok();
    out
}

/// The comment at the top: what this is and the commands to drive it.
fn header(
    scenario: &Scenario,
    variant: &Variant,
    placement: &Placement,
    services: &[Service],
) -> String {
    let project = format!("{}-{}", scenario.name, variant.name);
    let mut h = String::new();
    let w = &mut h;
    writeln!(w, "# {}/{}: {}", scenario.name, variant.name, variant.about).ok();
    writeln!(
        w,
        "# Expected: {}. Seed {}; scenarios/{}.toml.",
        variant.expect.word().to_lowercase(),
        scenario.seed,
        scenario.name
    )
    .ok();
    writeln!(w, "#").ok();
    writeln!(
        w,
        "# Generated by `connlab compose {} --variant {}`: do not edit (`make\n\
         # compose-files` regenerates every file). The lab's containers with the\n\
         # lab's commands, environment, sysctls and capabilities, on fixed addresses;\n\
         # each Envoy's config is {}/<node>.json beside this file.",
        scenario.name, variant.name, variant.name
    )
    .ok();
    writeln!(
        w,
        "#\n# From the repository root (bash), after `make image filter`:"
    )
    .ok();
    writeln!(w, "#   export CONNLAB_IMAGE=$(cat target/lab-image.tag)").ok();
    writeln!(
        w,
        "#   dc() {{ docker-compose -p {project} -f {} \"$@\"; }}",
        placement.file
    )
    .ok();
    writeln!(w, "#   dc up -d").ok();
    // What the runtime waits for before it goes on: each backend accepting
    // connections, each Envoy's admin saying LIVE.
    let ready: Vec<String> = services
        .iter()
        .filter_map(|s| {
            let probe = match &variant.nodes[&s.spec.role].kind {
                NodeKind::Backend(_) => backend::ready_probe(),
                NodeKind::Envoy(_) => {
                    format!("curl -sf localhost:{}/ready >/dev/null", envoy::ADMIN_PORT)
                }
                _ => return None,
            };
            Some(format!(
                "#   until dc exec -T {} sh -c {}; do sleep 0.5; done",
                s.spec.role,
                shell_word(&probe)
            ))
        })
        .collect();
    if !ready.is_empty() {
        writeln!(
            w,
            "# Wait until the backends accept and the Envoys are live:"
        )
        .ok();
        ready.iter().for_each(|l| {
            writeln!(w, "{l}").ok();
        });
    }
    writeln!(w, "#\n# Addresses:").ok();
    for s in services.iter().filter(|s| !s.addresses.is_empty()) {
        let ips: Vec<String> = s
            .addresses
            .iter()
            .map(|(n, ip)| format!("{ip} ({n})"))
            .collect();
        let admin = match (&s.envoy_config, s.addresses.first()) {
            (Some(_), Some((_, ip))) => format!(", admin http://{ip}:{}/", envoy::ADMIN_PORT),
            _ => String::new(),
        };
        writeln!(w, "#   {:<10} {}{admin}", s.spec.role, ips.join(", ")).ok();
    }
    let routers: Vec<&Service> = services.iter().filter(|s| is_router(s, variant)).collect();
    for s in routers {
        let NodeKind::Router(r) = &variant.nodes[&s.spec.role].kind else {
            continue;
        };
        writeln!(
            w,
            "#\n# {}'s rules (the lab applies them once the other nodes are up):",
            s.spec.role
        )
        .ok();
        rule_lines(w, s, services, &r.iptables);
    }
    capture_lines(w, variant);
    let (now, later): (Vec<&Fault>, Vec<&Fault>) =
        variant.faults.iter().partition(|f| f.at().is_zero());
    if !now.is_empty() {
        writeln!(
            w,
            "#\n# Faults, in place before the workload (the lab's own steps):"
        )
        .ok();
        for fault in now {
            fault_lines(w, fault, services);
        }
    }
    let workload: Vec<&Service> = services.iter().filter(|s| s.workload).collect();
    if !workload.is_empty() {
        writeln!(
            w,
            "#\n# Workload (profile `{WORKLOAD_PROFILE}`; a fresh container each time, its records on stdout):"
        )
        .ok();
        let names: Vec<&str> = workload.iter().map(|s| s.spec.role.as_str()).collect();
        if names.len() == 1 {
            writeln!(w, "#   dc run --rm -T {}", names[0]).ok();
        } else {
            writeln!(
                w,
                "#   for n in {}; do dc run --rm -T $n > $n.jsonl & done; wait",
                names.join(" ")
            )
            .ok();
        }
    }
    if !later.is_empty() {
        writeln!(
            w,
            "#\n# Faults during the workload, at their time after it starts:"
        )
        .ok();
        for fault in later {
            writeln!(w, "#   # at {:.1} s:", fault.at().as_secs_f64()).ok();
            fault_lines(w, fault, services);
        }
    }
    writeln!(w, "#\n# Look around:").ok();
    if let Some(e) = services.iter().find(|s| s.envoy_config.is_some()) {
        let e = &e.spec.role;
        writeln!(
            w,
            "#   dc exec {e} curl -s localhost:{}/stats | grep upstream_cx",
            envoy::ADMIN_PORT
        )
        .ok();
        writeln!(
            w,
            "#   dc exec {e} cat {SHARED_DIR}/{}",
            envoy::access_log_name(e)
        )
        .ok();
        writeln!(
            w,
            "#   dc logs {e}    # the filter's events, the checker's JSON access log"
        )
        .ok();
    }
    if let Some(b) = services
        .iter()
        .find(|s| matches!(variant.nodes[&s.spec.role].kind, NodeKind::Backend(_)))
    {
        writeln!(
            w,
            "#   dc exec {} tcpdump -ni any tcp port {}",
            b.spec.role, BACKEND_PORT
        )
        .ok();
    }
    writeln!(
        w,
        "#\n# Down (containers, networks, the volume):\n#   dc down -v\n"
    )
    .ok();
    h
}

/// The nodes' `capture`s as the lab runs them: tcpdump into the volume,
/// started before the faults and the workload.
fn capture_lines(w: &mut String, variant: &Variant) {
    let captures: Vec<(&String, &String)> = variant
        .nodes
        .iter()
        .filter_map(|(name, node)| Some((name, node.capture.as_ref()?)))
        .collect();
    if captures.is_empty() {
        return;
    }
    writeln!(
        w,
        "#\n# Packet captures (the lab starts them before the faults and the workload;\n\
         # stop with `dc exec NODE pkill -INT -x tcpdump`, the pcap stays in the volume):"
    )
    .ok();
    for (name, filter) in captures {
        let path = format!("{SHARED_DIR}/{}", capture::file_name(name));
        let cmd = shell_words(&capture::tcpdump(&path, filter));
        writeln!(w, "#   dc exec -d {name} {cmd}").ok();
    }
}

fn is_router(s: &Service, variant: &Variant) -> bool {
    matches!(variant.nodes[&s.spec.role].kind, NodeKind::Router(_))
}

/// `rules` run in `s` as `dc exec` lines: `{dev:NET}` looked up in the
/// container by its address on NET, `{ip:NODE}` NODE's static address on a
/// network both join (as the lab fills them in).
fn rule_lines(w: &mut String, s: &Service, services: &[Service], rules: &[String]) {
    let device = |network: &str| {
        let (_, ip) = s.addresses.iter().find(|(n, _)| n == network)?;
        Some(format!(
            "$(ip -br -4 addr show to {ip} | cut -d@ -f1 | cut -d\" \" -f1)"
        ))
    };
    let networks: Vec<String> = s.addresses.iter().map(|(n, _)| n.clone()).collect();
    let ip = |node: &str| {
        let theirs = &services.iter().find(|t| t.spec.role == node)?.addresses;
        addresses::reach(&networks, theirs).map(|ip| ip.to_string())
    };
    for rule in rules {
        let rule = rules::fill(rule, &device, &ip);
        let line = if rule.iter().any(|word| word.contains("$(")) {
            let script: Vec<String> = rule
                .iter()
                .map(|word| {
                    if word.contains("$(") {
                        word.clone()
                    } else {
                        shell_word(word)
                    }
                })
                .collect();
            format!("sh -c {}", shell_word(&script.join(" ")))
        } else {
            shell_words(&rule)
        };
        writeln!(w, "#   dc exec -T {} {line}", s.spec.role).ok();
    }
}

fn fault_lines(w: &mut String, fault: &Fault, services: &[Service]) {
    for step in fault.steps() {
        let line = match step {
            Step::Rules { target, rules } => {
                if let Some(s) = services.iter().find(|s| s.spec.role == target) {
                    rule_lines(w, s, services, &rules);
                }
                continue;
            }
            Step::Exec {
                target,
                cmd,
                detach: true,
            } => format!("dc exec -d {target} {}", shell_words(&cmd)),
            Step::Exec {
                target,
                cmd,
                detach: false,
            } => format!("dc exec -T {target} {}", shell_words(&cmd)),
            Step::WaitUntil { target, probe } => {
                format!(
                    "until dc exec -T {target} sh -c {}; do sleep 0.1; done",
                    shell_word(&probe)
                )
            }
            Step::Pause(target) => format!("dc pause {target}"),
            Step::Kill(target) => format!("dc kill {target}"),
        };
        writeln!(w, "#   {line}").ok();
    }
}

/// A word as a POSIX shell reads it back: as it is when plain, else in
/// single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=,@%+".contains(&b));
    if plain {
        word.to_string()
    } else if word.contains('\'') && !word.contains(['"', '$', '`', '\\', '!']) {
        // Double quotes expand nothing here, and read better than '\''.
        format!("\"{word}\"")
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A YAML double-quoted string (JSON's escapes are YAML's) with compose's
/// interpolation escaped (`$` is `$$`).
fn yaml_str(value: &str) -> String {
    serde_json::to_string(&value.replace('$', "$$")).unwrap_or_default()
}

/// A mapping key: plain when it is a simple name.
fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && key.as_bytes()[0].is_ascii_alphabetic();
    if plain {
        key.to_string()
    } else {
        yaml_str(key)
    }
}

/// A flow sequence of strings: `["node", "/opt/..."]`.
fn flow(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| yaml_str(i)).collect();
    format!("[{}]", items.join(", "))
}

/// Writes `rendered` as `yaml` and its files into `<yaml's dir>/<variant>/`.
pub fn write(yaml: &Path, variant: &str, rendered: &Rendered) -> anyhow::Result<Vec<PathBuf>> {
    let dir = yaml.parent().unwrap_or(Path::new("."));
    let files_dir = dir.join(variant);
    std::fs::create_dir_all(&files_dir).with_context(|| format!("{}", files_dir.display()))?;
    let mut written = vec![yaml.to_path_buf()];
    std::fs::write(yaml, &rendered.yaml).with_context(|| format!("{}", yaml.display()))?;
    for (name, text) in &rendered.files {
        let path = files_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every variant of `selected` as `root/<scenario>/<variant>.yaml` (plus
/// its files), as checked in; files under `root/<scenario>/` that are no
/// longer generated are removed. Subnets are assigned over `all`.
pub fn write_all(
    root: &Path,
    all: &[Scenario],
    selected: &[&Scenario],
) -> anyhow::Result<Vec<PathBuf>> {
    let subnets = Subnets::assign(all);
    let mut written = Vec::new();
    for scenario in selected {
        anyhow::ensure!(
            !NOT_SCENARIOS.contains(&scenario.name.as_str()),
            "scenario name `{}` is taken by compose/{} (the lab's own files)",
            scenario.name,
            scenario.name
        );
        let dir = root.join(&scenario.name);
        let mut mine = Vec::new();
        // Mesh variants are lab-run only for now: their pods' start (rules,
        // sidecar as 1337, ECDS files) is not written as compose services.
        for variant in scenario.variants.iter().filter(|v| v.mesh.is_none()) {
            let placement = Placement::checked_in(&scenario.name, &variant.name);
            let rendered = render(scenario, variant, &subnets, &placement)?;
            mine.extend(write(
                &dir.join(format!("{}.yaml", variant.name)),
                &variant.name,
                &rendered,
            )?);
        }
        for stale in files_under(&dir).into_iter().filter(|f| !mine.contains(f)) {
            std::fs::remove_file(&stale).with_context(|| format!("{}", stale.display()))?;
        }
        remove_empty_dirs(&dir);
        written.extend(mine);
    }
    Ok(written)
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                remove_empty_dirs(&entry.path());
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        let endpoint = &config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
            [0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
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
}
