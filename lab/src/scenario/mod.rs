//! Scenario files (`scenarios/*.toml`): one documented failure each, as data.
//! A file declares networks and named nodes (each a container of the lab
//! image), the faults to inject, and the checks that say "reproduced" and
//! "fixed"; each variant overrides fields of that base. Every variant is
//! resolved and validated before any container starts, and a mistake is one
//! `file:line:col: field: message` line.
//!
//! Parsing keeps TOML's spans: a variant is the base table with the
//! variant's table merged over it (tables merge key by key, anything else
//! replaces), and deserializing the merged tree reports errors at the place
//! in the file the offending value came from — the base or the variant.
//! A variant leaves out a node of the base with `nodes.NAME = false`.
//!
//! The bottom of the pipeline, data only: it uses `evidence` (the names a
//! check can measure), `outcome` (the verdict a variant expects),
//! `programs` (the client's plan) and `envoy` (Istio's releases and modes, a
//! listener's timeouts block), never the run.

pub mod checks;
pub mod envoy;
pub mod fault;
pub mod mesh;
pub mod node;
pub mod rules;
mod tree;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::outcome::Verdict;
pub use checks::{Check, Comparison, Measure};
use fault::Fault;
pub use node::{Node, NodeKind};
pub use validate::{default_port, networks_of, start_order};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// The write-up it reproduces (a file in shared/seeds).
    pub seed: String,
    pub summary: String,
    pub variants: Vec<Variant>,
}

/// One runnable variant: the base topology with the variant's overrides
/// applied.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub about: String,
    pub expect: Verdict,
    /// Upper bound on the workload; a run that needs longer is an error.
    pub timeout_s: u64,
    /// Docker networks, by name.
    pub networks: Vec<String>,
    pub nodes: BTreeMap<String, Node>,
    pub faults: Vec<Fault>,
    /// All must hold for the verdict "reproduced".
    pub reproduced: Vec<Check>,
    /// All must hold for the verdict "fixed".
    pub fixed: Vec<Check>,
    /// Extra Envoy stats every outcome reports, as `node:stat.name`.
    pub stats: Vec<String>,
    /// Mesh mode: the Istio release and mesh-wide config of the nodes with
    /// a `sidecar`.
    pub mesh: Option<mesh::Mesh>,
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

/// The scenario's own keys; everything else in the base is topology that
/// variants inherit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    seed: String,
    summary: String,
}

const HEADER_KEYS: [&str; 3] = ["name", "seed", "summary"];

/// A variant after merging, minus its nodes (read one by one, see `node`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    name: String,
    about: String,
    expect: Verdict,
    timeout_s: u64,
    #[serde(default)]
    networks: Vec<NetworkDecl>,
    #[serde(default)]
    faults: Vec<Fault>,
    #[serde(default)]
    reproduced: Vec<Check>,
    #[serde(default)]
    fixed: Vec<Check>,
    #[serde(default)]
    stats: Vec<String>,
    mesh: Option<mesh::Mesh>,
}

/// `networks = ["mesh"]`, or `[[networks]] name = "mesh"` (room for
/// per-network settings).
#[derive(Deserialize)]
#[serde(untagged)]
enum NetworkDecl {
    Name(String),
    Table(NetworkTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkTable {
    name: String,
}

impl NetworkDecl {
    fn name(self) -> String {
        match self {
            NetworkDecl::Name(name) | NetworkDecl::Table(NetworkTable { name }) => name,
        }
    }
}

/// Without `networks`, every node is on this one.
pub const DEFAULT_NETWORK: &str = "lab";

impl Variant {
    /// The second in which the first scheduled fault (one after the workload
    /// started) strikes: the reference of the client's timeline.
    pub fn timeline_fault_s(&self) -> Option<u64> {
        self.faults
            .iter()
            .map(|f| f.at())
            .filter(|at| !at.is_zero())
            .min()
            .map(|at| at.as_secs())
    }
}

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
        let at = |span: std::ops::Range<usize>, field: Option<String>, message: String| {
            let (line, column) = line_column(text, span.start);
            ScenarioError {
                file: path.into(),
                line,
                column,
                field: field.or_else(|| field_at(text, span.start)),
                message,
            }
        };
        let toml_error = |e: toml::de::Error| {
            at(
                e.span().unwrap_or(0..0),
                None,
                e.message().trim_end().to_string(),
            )
        };
        let root = toml::de::DeTable::parse(text).map_err(toml_error)?;
        let (header, base, variants) = tree::split_root(root)
            .map_err(|(span, message)| at(span, Some("variants".into()), message))?;
        let header: Header = tree::deserialize(header).map_err(toml_error)?;
        if variants.is_empty() {
            return Err(at(
                0..0,
                Some("variants".into()),
                "a scenario needs at least one variant".into(),
            ));
        }
        let mut resolved: Vec<Variant> = Vec::new();
        for (i, patch) in variants.into_iter().enumerate() {
            let merged = tree::merge(base.clone(), patch);
            let variant = read_variant(merged.clone()).map_err(|e| match e {
                ReadError::Toml(e) => toml_error(e),
                ReadError::At(span, field, message) => at(span, Some(field), message),
            })?;
            if resolved.iter().any(|v| v.name == variant.name) {
                let span = tree::span_at(&merged, "name");
                return Err(at(
                    span,
                    Some(format!("variants[{i}].name")),
                    format!("`{}` is used by an earlier variant", variant.name),
                ));
            }
            validate::variant(&variant).map_err(|(path, message)| {
                at(tree::span_at(&merged, &path), Some(path), message)
            })?;
            resolved.push(variant);
        }
        Ok(Scenario {
            name: header.name,
            seed: header.seed,
            summary: header.summary,
            variants: resolved,
        })
    }

    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.name == name)
    }
}

enum ReadError {
    Toml(toml::de::Error),
    /// A span, the field's path, the message.
    At(std::ops::Range<usize>, String, String),
}

impl From<toml::de::Error> for ReadError {
    fn from(e: toml::de::Error) -> Self {
        ReadError::Toml(e)
    }
}

/// A merged variant table into a `Variant`.
fn read_variant(mut merged: tree::Table<'_>) -> Result<Variant, ReadError> {
    let nodes_value = tree::remove(&mut merged, "nodes");
    let setup: Setup = tree::deserialize(merged)?;
    let mut networks: Vec<String> = setup.networks.into_iter().map(NetworkDecl::name).collect();
    if networks.is_empty() {
        networks.push(DEFAULT_NETWORK.into());
    }
    let mut nodes = BTreeMap::new();
    if let Some(value) = nodes_value {
        let span = value.span();
        let table = tree::into_table(value)
            .map_err(|_| ReadError::At(span, "nodes".into(), "must be a table of nodes".into()))?;
        for (name, value) in table.into_inner() {
            let name = name.get_ref().to_string();
            // `nodes.NAME = false`: a variant leaves out a node of the base.
            if matches!(value.get_ref(), toml::de::DeValue::Boolean(false)) {
                continue;
            }
            let node = node::read(&name, value)?;
            nodes.insert(name, node);
        }
    }
    Ok(Variant {
        name: setup.name,
        about: setup.about,
        expect: setup.expect,
        timeout_s: setup.timeout_s,
        networks,
        nodes,
        faults: setup.faults,
        reproduced: setup.reproduced,
        fixed: setup.fixed,
        stats: setup.stats,
        mesh: setup.mesh,
    })
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
pub(crate) mod tests;
