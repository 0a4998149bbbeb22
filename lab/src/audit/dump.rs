//! Reading an Envoy config dump: the admin API's `/config_dump` (a
//! `configs` array of `*ConfigDump` messages), one `?resource=` answer
//! (a `configs` array of resources), or what `istioctl proxy-config
//! cluster|listener|route -o json` prints (an array of resources, in
//! protobuf's camelCase JSON). Every shape becomes the same lists of
//! clusters, listeners and route configurations, each with where in the
//! file it was, so a finding can point at it.

use serde_json::Value;

/// One cluster, listener or route configuration, as the dump has it.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    /// Where in the file: `configs[1].dynamic_active_clusters[3].cluster`.
    pub at: String,
    pub value: Value,
}

/// What the dump says about the Envoy it came from.
#[derive(Debug, Clone, Default)]
pub struct Dump {
    pub clusters: Vec<Resource>,
    pub listeners: Vec<Resource>,
    pub routes: Vec<Resource>,
    /// `BootstrapConfigDump.bootstrap`, when the dump has it.
    pub bootstrap: Option<Value>,
    /// Which kinds the file carried (a listener-only dump cannot say
    /// anything about clusters).
    pub has_clusters: bool,
    pub has_listeners: bool,
    pub has_routes: bool,
    /// Entries left out, each with why.
    pub skipped: Vec<String>,
}

/// Why a file is not a config dump, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error("empty file: expected Envoy's /config_dump JSON")]
    Empty,
    #[error("not JSON at line {line}, column {column}: {what} (a YAML file? `connlab audit` reads the admin API's /config_dump JSON)")]
    NotJson {
        line: usize,
        column: usize,
        what: String,
    },
    #[error("truncated JSON: the file ends at line {line}, column {column} inside a value (an interrupted download?)")]
    Truncated { line: usize, column: usize },
    #[error("{0}")]
    Shape(String),
}

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";
const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Admin dump types read for something else or with nothing for the rules:
/// known, so not reported as skipped.
const IGNORED: [&str; 6] = [
    "EndpointsConfigDump",
    "SecretsConfigDump",
    "ScopedRoutesConfigDump",
    "EcdsConfigDump",
    "ClustersConfigDump.DynamicCluster.EndpointConfig",
    "UnreadyTargetsDumps",
];

pub fn parse(text: &str) -> Result<Dump, DumpError> {
    if text.trim().is_empty() {
        return Err(DumpError::Empty);
    }
    let mut value: Value = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            DumpError::Truncated {
                line: e.line(),
                column: e.column(),
            }
        } else {
            DumpError::NotJson {
                line: e.line(),
                column: e.column(),
                what: e
                    .to_string()
                    .split(" at line")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            }
        }
    })?;
    snake_case_keys(&mut value);
    from_value(&value)
}

/// The dump in an already parsed JSON value (admin API field names).
pub fn from_value(value: &Value) -> Result<Dump, DumpError> {
    let mut dump = Dump::default();
    match &value {
        Value::Object(o) if o.contains_key("configs") => {
            let Some(configs) = o["configs"].as_array() else {
                return Err(DumpError::Shape("`configs` is not an array".into()));
            };
            for (i, config) in configs.iter().enumerate() {
                dump.config(&format!("configs[{i}]"), config);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                dump.resource(&format!("[{i}]"), item, None);
            }
        }
        Value::Object(_) => dump.resource("", value, None),
        _ => {
            return Err(DumpError::Shape(
                "the top level is neither an object with `configs` nor an array of resources"
                    .into(),
            ))
        }
    }
    if !dump.has_clusters && !dump.has_listeners && !dump.has_routes && dump.bootstrap.is_none() {
        return Err(DumpError::Shape(format!(
            "no cluster, listener, route or bootstrap in it{}",
            if dump.skipped.is_empty() {
                String::new()
            } else {
                format!(" (skipped: {})", dump.skipped.join("; "))
            }
        )));
    }
    Ok(dump)
}

fn type_of(v: &Value) -> &str {
    v.get("@type").and_then(Value::as_str).unwrap_or("")
}

impl Dump {
    /// One entry of `configs`: an admin `*ConfigDump`, or (from
    /// `?resource=`) a resource or its dump wrapper.
    fn config(&mut self, at: &str, config: &Value) {
        let ty = type_of(config);
        let Some(kind) = ty.strip_prefix(ADMIN) else {
            self.resource(at, config, None);
            return;
        };
        match kind {
            "BootstrapConfigDump" => {
                if let Some(b) = config.get("bootstrap") {
                    self.bootstrap = Some(b.clone());
                }
            }
            "ClustersConfigDump" => {
                self.has_clusters = true;
                self.wrapped(at, config, "static_clusters", "cluster", None);
                self.wrapped(at, config, "dynamic_active_clusters", "cluster", None);
                self.wrapped(
                    at,
                    config,
                    "dynamic_warming_clusters",
                    "cluster",
                    Some("warming"),
                );
            }
            "ListenersConfigDump" => {
                self.has_listeners = true;
                self.wrapped(at, config, "static_listeners", "listener", None);
                if let Some(list) = config.get("dynamic_listeners").and_then(Value::as_array) {
                    for (i, d) in list.iter().enumerate() {
                        self.dynamic_listener(&format!("{at}.dynamic_listeners[{i}]"), d);
                    }
                }
            }
            "RoutesConfigDump" => {
                self.has_routes = true;
                self.wrapped(at, config, "static_route_configs", "route_config", None);
                self.wrapped(at, config, "dynamic_route_configs", "route_config", None);
            }
            "ClustersConfigDump.StaticCluster" | "ClustersConfigDump.DynamicCluster" => {
                self.has_clusters = true;
                self.inner(at, config, "cluster");
            }
            "ListenersConfigDump.StaticListener" => {
                self.has_listeners = true;
                self.inner(at, config, "listener");
            }
            "ListenersConfigDump.DynamicListener" => {
                self.has_listeners = true;
                self.dynamic_listener(at, config);
            }
            "RoutesConfigDump.StaticRouteConfig" | "RoutesConfigDump.DynamicRouteConfig" => {
                self.has_routes = true;
                self.inner(at, config, "route_config");
            }
            k if IGNORED.iter().any(|i| k.starts_with(i)) => {}
            _ => self.skip(at, ty),
        }
    }

    /// `list[i].<field>` of a dump message.
    fn wrapped(&mut self, at: &str, config: &Value, list: &str, field: &str, state: Option<&str>) {
        let Some(items) = config.get(list).and_then(Value::as_array) else {
            return;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(inner) = item.get(field) {
                self.resource(&format!("{at}.{list}[{i}].{field}"), inner, state);
            }
        }
    }

    fn inner(&mut self, at: &str, config: &Value, field: &str) {
        if let Some(inner) = config.get(field) {
            self.resource(&format!("{at}.{field}"), inner, None);
        }
    }

    /// A dynamic listener: the active state is what serves traffic; a
    /// listener only warming or draining is read too and says so.
    fn dynamic_listener(&mut self, at: &str, d: &Value) {
        for (state, label) in [
            ("active_state", None),
            ("warming_state", Some("warming")),
            ("draining_state", Some("draining")),
        ] {
            if let Some(listener) = d.get(state).and_then(|s| s.get("listener")) {
                self.resource(&format!("{at}.{state}.listener"), listener, label);
                return;
            }
        }
    }

    /// A resource by its `@type`, or by its fields when it has none.
    fn resource(&mut self, at: &str, v: &Value, state: Option<&str>) {
        let ty = type_of(v);
        let kind = match ty {
            CLUSTER => Kind::Cluster,
            LISTENER => Kind::Listener,
            ROUTE_CONFIG => Kind::Route,
            "" => match guess(v) {
                Some(kind) => kind,
                None => {
                    self.skip(at, "(no @type, not a cluster, listener or route)");
                    return;
                }
            },
            t if t.starts_with(ADMIN) => {
                // A dump message nested where a resource was expected.
                self.config(at, v);
                return;
            }
            other => {
                self.skip(at, other);
                return;
            }
        };
        let name = v.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
        let name = match state {
            Some(s) => format!("{name} ({s})"),
            None => name.to_string(),
        };
        let resource = Resource {
            name,
            at: if at.is_empty() {
                "(top)".into()
            } else {
                at.into()
            },
            value: v.clone(),
        };
        match kind {
            Kind::Cluster => {
                self.has_clusters = true;
                self.clusters.push(resource);
            }
            Kind::Listener => {
                self.has_listeners = true;
                self.listeners.push(resource);
            }
            Kind::Route => {
                self.has_routes = true;
                self.routes.push(resource);
            }
        }
    }

    fn skip(&mut self, at: &str, ty: &str) {
        self.skipped.push(format!("{at}: unknown type {ty}"));
    }
}

enum Kind {
    Cluster,
    Listener,
    Route,
}

/// `istioctl proxy-config … -o json` prints resources without `@type`.
fn guess(v: &Value) -> Option<Kind> {
    let has = |k: &str| v.get(k).is_some();
    if has("filter_chains") || has("default_filter_chain") || has("listener_filters") {
        Some(Kind::Listener)
    } else if has("virtual_hosts") {
        Some(Kind::Route)
    } else if has("connect_timeout")
        || has("lb_policy")
        || has("load_assignment")
        || has("eds_cluster_config")
        || has("cluster_type")
        || (has("name") && has("type"))
    {
        Some(Kind::Cluster)
    } else {
        None
    }
}

/// protobuf's JSON mapping prints field names in lowerCamelCase
/// (`connectTimeout`, what istioctl shows); the admin API keeps the proto
/// names (`connect_timeout`). Only plain identifiers are field names: map
/// keys such as `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`
/// have dots and stay as they are.
fn snake_case_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let camel = map.keys().any(|k| is_camel(k));
            if camel {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    snake_case_keys(&mut val);
                    let key = if is_camel(&k) { snake(&k) } else { k };
                    map.insert(key, val);
                }
            } else {
                for val in map.values_mut() {
                    snake_case_keys(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(snake_case_keys),
        _ => {}
    }
}

fn is_camel(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.chars().all(|c| c.is_ascii_alphanumeric())
        && k.chars().any(|c| c.is_ascii_uppercase())
}

fn snake(k: &str) -> String {
    let mut out = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_one_line_naming_what_is_wrong() {
        assert_eq!(parse("").unwrap_err(), DumpError::Empty);
        assert_eq!(parse(" \n").unwrap_err(), DumpError::Empty);
        let truncated = parse("{\"configs\": [{\"@type\": \"x\"").unwrap_err();
        assert!(
            matches!(truncated, DumpError::Truncated { line: 1, .. }),
            "{truncated}"
        );
        let yaml = parse("configs:\n- '@type': x\n").unwrap_err().to_string();
        assert!(yaml.starts_with("not JSON at line 1, column 1"), "{yaml}");
        assert!(yaml.contains("YAML"), "{yaml}");
        assert!(parse("42").unwrap_err().to_string().contains("top level"));
        let nothing = parse(r#"{"configs":[{"@type":"type.googleapis.com/x.Y"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            nothing.contains("unknown type type.googleapis.com/x.Y"),
            "{nothing}"
        );
        for e in [truncated.to_string(), yaml] {
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn unknown_types_are_skipped_with_a_note() {
        let dump = parse(
            r#"{"configs":[
              {"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
               "static_clusters":[{"cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"a"}}]},
              {"@type":"type.googleapis.com/envoy.admin.v9.FutureDump"}]}"#,
        )
        .unwrap();
        assert_eq!(dump.clusters.len(), 1);
        assert_eq!(dump.clusters[0].at, "configs[0].static_clusters[0].cluster");
        assert_eq!(
            dump.skipped,
            ["configs[1]: unknown type type.googleapis.com/envoy.admin.v9.FutureDump"]
        );
    }

    #[test]
    fn istioctl_camel_case_arrays() {
        let dump = parse(
            r#"[{"name":"outbound|80||a.ns.svc.cluster.local","type":"EDS","connectTimeout":"10s",
                "typedExtensionProtocolOptions":{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":
                  {"commonHttpProtocolOptions":{"idleTimeout":"4s"}}}}]"#,
        )
        .unwrap();
        let c = &dump.clusters[0].value;
        assert_eq!(c["connect_timeout"], "10s");
        assert_eq!(
            c["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
                ["common_http_protocol_options"]["idle_timeout"],
            "4s"
        );
    }
}
