//! connlab's Istio manifests (`deploy/istio/`): each `WasmPlugin` is
//! validated against the real CRD's `openAPIV3Schema` (a copy in
//! `deploy/istio/crd/`), and its `pluginConfig` is loaded into real Envoy
//! 1.40 as the plugin configuration of the root_id it names, so a manifest
//! that Istio accepts is also one the filter accepts.

use std::path::{Path, PathBuf};

use connlab::run::envoy_config::{
    bootstrap, cluster, hcm, http_wasm, listener, net_wasm, route, tcp_proxy,
};
use connlab_tests::envoy_process::EnvoyProcess;
use connlab_tests::{closed_port, filter_wasm, paths};
use serde_json::Value;

fn deploy() -> PathBuf {
    paths::root().join("deploy/istio")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `openAPIV3Schema` of the CRD's `v1alpha1` version.
fn schema() -> (Value, String) {
    let crd = yaml(&deploy().join("crd/wasmplugin-crd.yaml"));
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "v1alpha1"))
        .expect("v1alpha1 in the CRD");
    (
        version["schema"]["openAPIV3Schema"].clone(),
        format!("{group}/v1alpha1"),
    )
}

/// Structural validation as the API server does it for the keywords this
/// CRD uses. CEL rules (`x-kubernetes-validations`) are not evaluated; the
/// two that concern these manifests are checked by hand in the test.
fn validate(value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
    let mut fail = |msg: String| errors.push(format!("{at}: {msg}"));
    if let Some(options) = schema["anyOf"].as_array() {
        let ok = options.iter().any(|s| {
            let mut inner = Vec::new();
            validate(value, s, at, &mut inner);
            inner.is_empty()
        });
        if !ok {
            fail("matches none of anyOf".into());
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            fail(format!("{value} not in {allowed:?}"));
        }
    }
    let kind = schema["type"].as_str().unwrap_or("");
    let type_ok = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        return fail(format!("expected {kind}, got {value}"));
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            fail(format!("longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            fail(format!("shorter than {}", schema["minLength"]));
        }
        match schema["pattern"].as_str() {
            None => {}
            // `sha256`: empty or 64 lower-case hex digits.
            Some("(^$|^[a-f0-9]{64}$)") => {
                let hex = s.len() == 64
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !(s.is_empty() || hex) {
                    fail("not empty nor 64 lower-case hex digits".into());
                }
            }
            Some(_) => {
                fail("uses a field with a `pattern`, which this validator does not check".into())
            }
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            fail(format!("above {}", schema["maximum"]));
        }
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            fail(format!("below {}", schema["minimum"]));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["maxItems"]
            .as_u64()
            .is_some_and(|m| items.len() as u64 > m)
        {
            fail(format!("more than {} items", schema["maxItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            validate(item, &schema["items"], &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        let open = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for required in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(required.as_str().unwrap_or_default()) {
                errors.push(format!("{at}: missing required {required}"));
            }
        }
        for (key, field) in object {
            let path = format!("{at}.{key}");
            match (
                schema["properties"].get(key),
                schema.get("additionalProperties"),
            ) {
                (Some(sub), _) => validate(field, sub, &path, errors),
                (None, Some(sub)) if sub.is_object() => validate(field, sub, &path, errors),
                (None, _) if open => {}
                (None, _) => errors.push(format!("{path}: unknown field")),
            }
        }
    }
}

fn manifest(name: &str) -> Value {
    let manifest = yaml(&deploy().join(name));
    let (schema, api_version) = schema();
    assert_eq!(manifest["apiVersion"], api_version.as_str(), "{name}");
    assert_eq!(manifest["kind"], "WasmPlugin", "{name}");
    assert!(manifest["metadata"]["name"].is_string(), "{name}");
    let mut errors = Vec::new();
    let body = serde_json::json!({"spec": manifest["spec"]});
    validate(&body, &schema, "", &mut errors);
    assert!(
        errors.is_empty(),
        "{name} against the CRD schema:\n{}",
        errors.join("\n")
    );
    // The two CEL rules that apply: one of selector/targetRef/targetRefs at
    // most, and a url scheme Istio knows.
    let spec = &manifest["spec"];
    let targets = ["selector", "targetRef", "targetRefs"]
        .iter()
        .filter(|k| !spec[**k].is_null())
        .count();
    assert!(
        targets <= 1,
        "{name}: selector, targetRef and targetRefs are exclusive"
    );
    let url = spec["url"].as_str().unwrap_or_default();
    assert!(
        ["oci://", "http://", "https://", "file://"]
            .iter()
            .any(|s| url.starts_with(s)),
        "{name}: url scheme {url}"
    );
    manifest
}

/// A `selector` rather than mesh-wide, and the module pinned by `sha256`.
fn assert_scoped_and_pinned(m: &Value) {
    let labels = m["spec"]["selector"]["matchLabels"].as_object();
    assert!(labels.is_some_and(|l| !l.is_empty()), "a selector: {m:#?}");
    let sha = m["spec"]["sha256"].as_str().unwrap_or_default();
    assert_eq!(sha.len(), 64, "module pinned by sha256: {m:#?}");
}

#[test]
fn the_validator_rejects_what_the_api_server_would() {
    let (schema, _) = schema();
    let check = |spec: Value| {
        let mut errors = Vec::new();
        validate(&serde_json::json!({"spec": spec}), &schema, "", &mut errors);
        errors
    };
    assert!(check(serde_json::json!({"url": "oci://x/y", "type": "NETWORK"})).is_empty());
    assert!(
        !check(serde_json::json!({"url": "oci://x/y", "type": "TCP"})).is_empty(),
        "enum"
    );
    assert!(
        !check(serde_json::json!({"url": "oci://x/y", "pluginNmae": "a"})).is_empty(),
        "unknown field"
    );
    assert!(
        !check(serde_json::json!({"url": ""})).is_empty(),
        "minLength"
    );
    assert!(
        !check(serde_json::json!({"url": "oci://x/y", "priority": "high"})).is_empty(),
        "type"
    );
    assert!(
        check(serde_json::json!({"url": "oci://x/y", "pluginConfig": {"any": {"thing": 1}}}))
            .is_empty(),
        "pluginConfig is free-form"
    );
    assert!(
        !check(serde_json::json!({"url": "oci://x/y", "sha256": "ABC"})).is_empty(),
        "sha256 pattern"
    );
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
