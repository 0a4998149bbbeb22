//! connlab's Istio manifests (`deploy/istio/`), read as Kubernetes reads
//! them: YAML 1.1 (PyYAML, via `scripts/check-manifests.py`) and the strict
//! WasmPlugin schema of every Istio release each one claims (copies in
//! `deploy/istio/crd/by-release/`). Each `pluginConfig` is then loaded into
//! real Envoy as the plugin configuration of the root_id it names, so a
//! manifest that Istio accepts is also one the filter accepts. The
//! EnvoyFilter that installs the failures-only logger (`connlab_log`) is
//! checked the same way against the EnvoyFilter schemas, and the logger it
//! patches in is run in real Envoy.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use connlab::envoy::config::{
    bootstrap, cluster, failures_only_logger, hcm, http_wasm, listener, net_wasm, route, tcp_proxy,
    FAILURES_ONLY,
};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{any_local_port, backend, closed_port, filter_wasm, logger_envoy, paths};
use serde_json::Value;

fn deploy() -> PathBuf {
    paths::root().join("deploy/istio")
}

/// `scripts/check-manifests.py` with the project's Python (PyYAML and
/// jsonschema pinned in the Makefile): `(success, stdout)`.
fn checker(args: &[&Path]) -> (bool, String) {
    let python = paths::root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(paths::root().join("scripts/check-manifests.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make test`)", python.display()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("ModuleNotFoundError"),
        "{err} (PyYAML / jsonschema: run `make test`)"
    );
    (out.status.success(), text + &err)
}

/// A manifest as Kubernetes reads it (YAML 1.1), as JSON.
fn manifest(name: &str) -> Value {
    let path = deploy().join(name);
    let python = paths::root().join(".venv/bin/python");
    let out = Command::new(python)
        .arg(paths::root().join("scripts/check-manifests.py"))
        .arg("--json")
        .arg(&path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn every_manifest_is_valid_for_every_istio_release_it_claims() {
    let (ok, text) = checker(&[]);
    assert!(ok, "deploy/ as Kubernetes reads it:\n{text}");
}

/// Each edit of the manifest `name` (`from` replaced by `to`) is rejected
/// by the checker with a message containing `expected`.
fn assert_each_edit_rejected(name: &str, edits: &[(&str, &str, &str)]) {
    let good = std::fs::read_to_string(deploy().join(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, (from, to, expected)) in edits.iter().enumerate() {
        let text = good.replace(from, to);
        assert_ne!(text, good, "{name} case {i} changed nothing");
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let (ok, out) = checker(&[&path]);
        assert!(!ok && out.contains(expected), "{name} case {i}: {out}");
    }
}

/// What the API server would reject, the checker rejects: each of these
/// is one edit away from a shipped manifest.
#[test]
fn the_checker_rejects_what_the_api_server_would() {
    let sha = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    assert_each_edit_rejected(
        "wasmplugin-http.yaml",
        &[
            // YAML 1.1 reads 64 digits as an integer (serde_yaml would not).
            (sha, &sha[1..65], "is not of type 'string'"),
            ("pluginName:", "pluginNmae:", "pluginNmae"),
            ("type: HTTP", "type: TCP", "'TCP' is not one of"),
            (
                "# Minimum Istio: 1.20",
                "# Minimum Istio: 1.19",
                "Istio 1.19",
            ),
            ("# Minimum Istio: 1.20", "# Minimum Istio: 1.22", "too high"),
            ("url: oci://", "url: ftp://", "scheme"),
        ],
    );
    assert_each_edit_rejected(
        "envoyfilter-logger.yaml",
        &[
            (
                "context: SIDECAR_INBOUND",
                "context: SIDECAR_INBOND",
                "'SIDECAR_INBOND' is not one of",
            ),
            ("    match:", "    matsh:", "'matsh' was unexpected"),
            (
                "operation: MERGE",
                "operation: MERGED",
                "'MERGED' is not one of",
            ),
            ("# Minimum Istio: 1.20", "# Minimum Istio: 1.22", "too high"),
            ("app: checkout", "app: \"*\"", "wildcard"),
        ],
    );
}

/// A `selector` rather than mesh-wide, and the module pinned by `sha256`.
fn assert_scoped_and_pinned(m: &Value) {
    let labels = m["spec"]["selector"]["matchLabels"].as_object();
    assert!(labels.is_some_and(|l| !l.is_empty()), "a selector: {m:#?}");
    let sha = m["spec"]["sha256"].as_str().unwrap_or_default();
    assert_eq!(sha.len(), 64, "module pinned by sha256: {m:#?}");
}

/// Loads the manifest's pluginConfig into real Envoy as `root_id`'s
/// configuration; Envoy refuses a configuration the filter rejects.
fn loads_in_envoy(manifest: &Value) {
    let spec = &manifest["spec"];
    let root_id = spec["pluginName"].as_str().expect("pluginName");
    let config = &spec["pluginConfig"];
    let chain = match spec["type"].as_str() {
        Some("HTTP") => {
            let filters = vec![http_wasm(&filter_wasm(), root_id, Some(config))];
            vec![hcm("main", filters, vec![route("/", "dead")], vec![])]
        }
        Some("NETWORK") => vec![
            net_wasm(&filter_wasm(), Some(config)),
            tcp_proxy("main", "dead"),
        ],
        other => panic!("unexpected type {other:?}"),
    };
    let envoy = EnvoyProcess::start(&bootstrap(
        vec![listener("main", chain)],
        vec![cluster("dead", &[closed_port()])],
    ));
    assert!(envoy.is_ok(), "{root_id} with {config}: {:?}", envoy.err());
}

#[test]
fn http_wasmplugin_is_valid_and_loads() {
    let m = manifest("wasmplugin-http.yaml");
    assert_scoped_and_pinned(&m);
    assert_eq!(
        (&m["spec"]["type"], &m["spec"]["pluginName"]),
        (&"HTTP".into(), &"connlab_http".into())
    );
    loads_in_envoy(&m);
}

#[test]
fn network_wasmplugin_is_valid_and_loads() {
    let m = manifest("wasmplugin-network.yaml");
    assert_scoped_and_pinned(&m);
    assert_eq!(
        (&m["spec"]["type"], &m["spec"]["pluginName"]),
        (&"NETWORK".into(), &"connlab_net".into())
    );
    loads_in_envoy(&m);
}

/// The EnvoyFilter MERGEs connlab's failures-only logger into the HTTP
/// connection manager of both sidecar directions; each patch's logger is
/// the one `failures_only_logger` builds, and in real Envoy a refused
/// connect reaches it while healthy requests do not.
#[test]
fn logger_envoyfilter_patches_both_directions_and_its_logger_runs_in_envoy() {
    let m = manifest("envoyfilter-logger.yaml");
    assert_eq!(m["kind"], "EnvoyFilter", "{m:#?}");
    assert_eq!(
        m["spec"]["workloadSelector"]["labels"]["app"], "checkout",
        "{m:#?}"
    );
    let patches = m["spec"]["configPatches"]
        .as_array()
        .expect("configPatches");
    let contexts: Vec<&str> = patches
        .iter()
        .map(|p| p["match"]["context"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(contexts, ["SIDECAR_INBOUND", "SIDECAR_OUTBOUND"]);
    for p in patches {
        assert_eq!(p["applyTo"], "NETWORK_FILTER", "{p:#?}");
        assert_eq!(p["patch"]["operation"], "MERGE", "{p:#?}");
        assert_eq!(
            p["match"]["listener"]["filterChain"]["filter"]["name"],
            "envoy.filters.network.http_connection_manager"
        );
        let hcm_config = &p["patch"]["value"]["typed_config"];
        assert_eq!(
            hcm_config["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        let logs = hcm_config["access_log"].as_array().expect("access_log");
        assert_eq!(logs.len(), 1, "{logs:#?}");
        logger_runs_in_envoy(&logs[0]);
    }
}

/// `logger` (from the manifest) with the module built here: the entry
/// `failures_only_logger` builds but for the configuration string, then
/// loaded into Envoy behind a healthy and a dead cluster.
fn logger_runs_in_envoy(logger: &Value) {
    let mut logger = logger.clone();
    let plugin = &mut logger["typed_config"]["config"];
    plugin["vm_config"]["code"]["local"]["filename"] = filter_wasm().to_str().unwrap().into();
    let configuration = plugin["configuration"]["value"]
        .as_str()
        .expect("configuration");
    let config: Value = serde_json::from_str(configuration).expect("configuration is JSON");
    let mut expected = failures_only_logger(&filter_wasm(), "connlab_log", Some(&config));
    expected["typed_config"]["config"]["configuration"] = plugin["configuration"].clone();
    assert_eq!(logger, expected);
    assert_eq!(
        logger["filter"]["extension_filter"]["typed_config"]["expression"],
        FAILURES_ONLY
    );

    let healthy =
        backend::spawn(any_local_port(), backend::Behaviour::default()).expect("start backend");
    let routes = vec![route("/dead", "dead"), route("/", "healthy")];
    let clusters = vec![
        cluster("healthy", &[healthy.addr()]),
        cluster("dead", &[closed_port()]),
    ];
    let (envoy, addr) = logger_envoy::start(logger, routes, clusters);
    let timeout = Duration::from_secs(5);
    let mut conn = logger_envoy::connect(addr, timeout);
    for _ in 0..5 {
        assert_eq!(conn.get("/").expect("healthy request").status, 200);
    }
    assert_eq!(conn.get("/dead").expect("503 from Envoy").status, 503);
    // One event, the refused connect's: the healthy requests logged nothing
    // (a short wait for any event after the first).
    envoy.wait_events(1, timeout);
    std::thread::sleep(Duration::from_millis(300));
    let events = envoy.events();
    assert_eq!(events.len(), 1, "{events:#?}\n{}", envoy.log_tail());
    assert_eq!(
        events[0]["diagnosis"], "connect_refused",
        "{:#?}",
        events[0]
    );
}

#[test]
fn the_crd_copy_matches_the_shared_reference_when_present() {
    let shared = paths::root().join("../shared/istio/wasmplugin-crd.yaml");
    let Ok(reference) = std::fs::read_to_string(&shared) else {
        return; // A clone without ../shared: the copy stands alone.
    };
    let copy = std::fs::read_to_string(deploy().join("crd/wasmplugin-crd.yaml")).expect("CRD copy");
    assert_eq!(
        copy,
        reference,
        "deploy/istio/crd/ drifted from {}",
        shared.display()
    );
}

#[test]
fn the_release_schemas_match_the_shared_reference_when_present() {
    let shared = paths::root().join("../shared/istio/reference/wasmplugin-schema-by-version");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return; // A clone without ../shared: the copies stand alone.
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let copy = std::fs::read(deploy().join("crd/by-release").join(&name));
        assert_eq!(
            copy.ok(),
            std::fs::read(entry.path()).ok(),
            "deploy/istio/crd/by-release/{name:?} missing or drifted from {}",
            shared.display()
        );
    }
}

// --- Delivery as Istio does it, in real Envoy: the WasmPlugin reaches the
// filter chain through ECDS (`connlab::envoy::istio::wasmplugin`, from a file Envoy
// watches where istiod would stream it).

mod delivery {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use connlab::envoy::config::{bootstrap, cluster, hcm, listener, route};
    use connlab::envoy::istio::wasmplugin::{ecds_file, WasmPlugin};
    use connlab::envoy::process::EnvoyProcess;
    use connlab::programs::http1::Conn;
    use connlab_tests::{filter_wasm, slow_backend};
    use serde_json::{json, Value};

    fn plugin(fail: &str, config: Value) -> WasmPlugin {
        WasmPlugin::from_manifest(&json!({
            "kind": "WasmPlugin", "metadata": {"name": "connlab-http", "namespace": "shop"},
            "spec": {"url": "oci://r/connlab-filter:0.1.0", "pluginName": "connlab_http",
                     "type": "HTTP", "failStrategy": fail, "pluginConfig": config},
        }))
        .unwrap()
    }

    fn write(ecds: &Path, version: u32, resource: Value) {
        let staged = ecds.with_extension("tmp");
        std::fs::write(&staged, ecds_file(version, resource).to_string()).unwrap();
        std::fs::rename(staged, ecds).unwrap();
    }

    /// An Envoy whose HCM gets the plugin by ECDS from `ecds`, in front of
    /// a backend on loopback.
    fn envoy(p: &WasmPlugin, ecds: &Path, backend: std::net::SocketAddr) -> EnvoyProcess {
        let http = vec![p.reference(ecds)];
        let mut config = bootstrap(
            vec![listener(
                "main",
                vec![hcm("main", http, vec![route("/", "app")], vec![])],
            )],
            vec![cluster("app", &[backend])],
        );
        config["node"] = json!({"id": "sidecar~127.0.0.1~app.shop~shop.svc.cluster.local", "cluster": "app.shop"});
        EnvoyProcess::start(&config).expect("Envoy starts")
    }

    fn get(envoy: &EnvoyProcess) -> u16 {
        let addr = envoy.listener("main").expect("listener");
        let mut conn = Conn::connect(addr, Duration::from_secs(2)).expect("connect");
        conn.get("/").map(|r| r.status).unwrap_or(0)
    }

    /// FAIL_OPEN with a module that fails to load: Istio's agent refuses a
    /// binary that is not Wasm (cache.go isValidWasmBinary) and, the
    /// plugin failing open, sends an allow-all RBAC filter in its place
    /// (convert.go): requests go through, the allow-all filter runs.
    #[test]
    fn fail_open_with_a_module_that_fails_to_load_keeps_traffic_flowing() {
        let dir = tempfile::tempdir().unwrap();
        let backend = slow_backend(Duration::ZERO);
        let p = plugin("FAIL_OPEN", json!({"events": "all"}));
        let ecds = dir.path().join("ecds.json");
        let agent = connlab::envoy::istio::module::check_wasm(b"this is not a wasm module");
        assert!(agent.is_err());
        write(&ecds, 1, p.fallback_resource());
        let envoy = envoy(&p, &ecds, backend.addr());
        for _ in 0..5 {
            assert_eq!(get(&envoy), 200, "{}", envoy.log_tail());
        }
        assert_eq!(envoy.stat("http.main.rbac.wasm-default-allow.denied"), 0);
        // FAIL_CLOSE would deny instead.
        let closed = plugin("FAIL_CLOSE", json!({}));
        write(&ecds, 2, closed.fallback_resource());
        let deadline = Instant::now() + Duration::from_secs(5);
        while get(&envoy) != 403 {
            assert!(Instant::now() < deadline, "{}", envoy.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A pluginConfig change pushed while requests flow: every request is
    /// answered, Envoy takes the new version, and the filter runs with it
    /// (events `all` logs every request; `failures` logs none of these).
    #[test]
    fn a_plugin_config_pushed_mid_run_loses_no_request() {
        let dir = tempfile::tempdir().unwrap();
        let backend = slow_backend(Duration::ZERO);
        let ecds = dir.path().join("ecds.json");
        let quiet = plugin("FAIL_OPEN", json!({"events": "failures"}));
        write(&ecds, 1, quiet.wasm_resource(&filter_wasm()));
        let envoy = envoy(&quiet, &ecds, backend.addr());
        let stat = "extension_config_discovery.http_filter.shop.connlab-http.update_success";
        let mut statuses = Vec::new();
        let started = Instant::now();
        let mut pushed = false;
        while started.elapsed() < Duration::from_secs(4) {
            statuses.push(get(&envoy));
            if !pushed && started.elapsed() > Duration::from_secs(1) {
                let loud = plugin("FAIL_OPEN", json!({"events": "all"}));
                write(&ecds, 2, loud.wasm_resource(&filter_wasm()));
                pushed = true;
            }
        }
        assert!(statuses.len() > 20, "{}", statuses.len());
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        assert_eq!(envoy.stat(stat), 2, "{}", envoy.log_tail());
        assert!(
            !envoy.events().is_empty(),
            "the pushed config (events: all) is running"
        );
    }
}
