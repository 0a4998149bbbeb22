//! Scenario files (`scenarios/*.toml`): one documented failure each, with
//! the variants that break and the variants with the fix. A file is
//! validated completely before any container starts; an error names the
//! file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::client::ClientConfig;
use crate::faults::Fault;
use crate::outcome::Verdict;
use crate::roles::backend::{self, Backend};
use crate::roles::envoy::EnvoySettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// The write-up it reproduces (a file in shared/seeds).
    pub seed: String,
    pub summary: String,
    pub signature: Signature,
    /// Extra Envoy stats every outcome reports, as `role:stat.name`.
    #[serde(default)]
    pub stats: Vec<String>,
    pub variants: Vec<Variant>,
}

/// What "reproduced" means: the filter in `envoy` names `diagnosis`, and
/// Envoy's own `stat` agrees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub envoy: String,
    pub diagnosis: String,
    pub stat: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub about: String,
    pub expect: Verdict,
    pub backend: Backend,
    /// The Envoy in front of the backend (role `envoy`).
    #[serde(default)]
    pub envoy: EnvoySettings,
    /// A caller-side Envoy in front of `envoy` (role `caller`), as a client
    /// sidecar in a mesh.
    pub caller: Option<EnvoySettings>,
    pub client: ClientConfig,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Upper bound on the workload; a run that needs longer is an error.
    pub timeout_s: u64,
}

impl Variant {
    pub fn roles(&self) -> Vec<&'static str> {
        let mut roles = vec![backend::ROLE, "envoy", crate::roles::client::ROLE];
        if self.caller.is_some() {
            roles.push("caller");
        }
        roles
    }
}

/// A scenario file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The field at fault, when known.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.into(),
            line: 0,
            column: 0,
            field: None,
            message: e.to_string(),
        })?;
        Scenario::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, offset);
            ScenarioError {
                file: path.into(),
                line,
                column,
                field: field_at(text, offset),
                message: e.message().to_string(),
            }
        })?;
        scenario.validate().map_err(|(anchor, field, message)| {
            let offset = anchor.and_then(|a| text.find(&a)).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            ScenarioError {
                file: path.into(),
                line,
                column,
                field: Some(field),
                message,
            }
        })?;
        Ok(scenario)
    }

    /// Checks that toml and serde cannot: names unique, every role a
    /// variant refers to exists. Errors carry a text to find in the file.
    fn validate(&self) -> Result<(), (Option<String>, String, String)> {
        if self.variants.is_empty() {
            return Err((
                None,
                "variants".into(),
                "a scenario needs at least one variant".into(),
            ));
        }
        for (i, variant) in self.variants.iter().enumerate() {
            let anchor = Some(format!("name = \"{}\"", variant.name));
            let err = |field: &str, message: String| {
                (anchor.clone(), format!("variants[{i}].{field}"), message)
            };
            if self.variants[..i].iter().any(|v| v.name == variant.name) {
                return Err(err(
                    "name",
                    format!("`{}` is used by an earlier variant", variant.name),
                ));
            }
            let roles = variant.roles();
            let role_of = |target: &str| target.split(':').next().unwrap_or_default().to_string();
            let target = role_of(&variant.client.target);
            if !["envoy", "caller"].contains(&target.as_str()) || !roles.contains(&target.as_str())
            {
                return Err(err(
                    "client.target",
                    format!("`{target}` is not an Envoy of this variant (envoy or caller)"),
                ));
            }
            if let Err(e) = variant.client.validate() {
                return Err(err("client", e.to_string()));
            }
            for fault in &variant.faults {
                if !roles.contains(&fault.target()) {
                    return Err(err(
                        "faults.target",
                        format!("no role `{}` (roles: {})", fault.target(), roles.join(", ")),
                    ));
                }
            }
            if let Some(key) = variant
                .backend
                .sysctls
                .keys()
                .find(|k| !k.starts_with("net."))
            {
                return Err(err(
                    "backend.sysctls",
                    format!("`{key}`: only net.* sysctls are per container"),
                ));
            }
            if variant.timeout_s == 0 {
                return Err(err("timeout_s", "must be above 0".into()));
            }
            if !roles.contains(&self.signature.envoy.as_str()) {
                return Err((
                    None,
                    "signature.envoy".into(),
                    format!(
                        "no role `{}` in variant `{}`",
                        self.signature.envoy, variant.name
                    ),
                ));
            }
        }
        for stat in &self.stats {
            if !stat.contains(':') {
                return Err((
                    Some(stat.clone()),
                    "stats".into(),
                    format!("`{stat}` is not role:stat.name"),
                ));
            }
        }
        Ok(())
    }

    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// Every scenario in `dir`, sorted by name; the first bad file is an error.
pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ScenarioError {
            file: dir.into(),
            line: 0,
            column: 0,
            field: None,
            message: e.to_string(),
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut scenarios = paths
        .iter()
        .map(|p| Scenario::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    scenarios.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scenarios)
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The key of the `key = value` line an offset falls on.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    Some(key.trim().to_string()).filter(|k| !k.is_empty() && !k.starts_with('['))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid one-variant scenario; other modules' tests use it too.
    pub(crate) const GOOD: &str = r#"
name = "demo"
seed = "001.txt"
summary = "s"

[signature]
envoy = "envoy"
diagnosis = "keepalive_race"
stat = "cluster.backend.upstream_cx_destroy_remote_with_active_rq"

[[variants]]
name = "node"
about = "a"
expect = "reproduced"
timeout_s = 30
backend = { server = "node" }
client = { target = "envoy:10000", requests = 2, gaps_ms = [0, 5900] }
faults = [{ action = "delay", target = "backend", sport = 8080, delay_ms = 200 }]
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("scenarios/demo.toml"), text)
    }

    #[test]
    fn a_good_file_loads() {
        let scenario = parse(GOOD).unwrap();
        assert_eq!(scenario.variants[0].client.gaps_ms, vec![0, 5900]);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = GOOD.replace("timeout_s = 30", "timeout_s = 30\nretries = 2");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 16);
        assert!(
            err.to_string()
                .starts_with("scenarios/demo.toml:16:1: retries: unknown field `retries`"),
            "{err}"
        );
    }

    #[test]
    fn bad_value_names_the_field() {
        let err = parse(&GOOD.replace("timeout_s = 30", "timeout_s = -1")).unwrap_err();
        assert_eq!(
            (err.line, err.field.as_deref()),
            (15, Some("timeout_s")),
            "{err}"
        );
        let err = parse(&GOOD.replace("server = \"node\"", "server = \"nod\"")).unwrap_err();
        assert!(err.message.contains("unknown variant `nod`"), "{err}");
        assert_eq!(err.line, 16);
    }

    #[test]
    fn a_missing_role_is_an_error_before_anything_starts() {
        let err = parse(&GOOD.replace("target = \"backend\"", "target = \"db\"")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("variants[0].faults.target"));
        assert_eq!(err.line, 12, "{err}");
        let err = parse(&GOOD.replace("envoy:10000", "caller:10000")).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("variants[0].client.target"),
            "{err}"
        );
    }

    #[test]
    fn every_shipped_scenario_loads() {
        let dir = crate::paths::root().join("scenarios");
        let scenarios = load_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!scenarios.is_empty());
    }
}
