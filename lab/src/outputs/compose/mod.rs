//! `connlab compose`: a variant's topology as a docker-compose file, for a
//! person who wants to poke at a live reproduction with `docker-compose
//! exec`, curl and tcpdump. Every container is built by the lab's own spec
//! builders (`run::spec` plus each role's command), so it runs what a lab
//! run runs; only what the lab learns at run time is fixed up front: each
//! network gets a static subnet and each node a static address, so Envoy's
//! generated config (a file beside the compose file) can name its endpoints.
//! `services` builds the containers, `yaml` writes them, `commands` writes
//! the steps after `up` as comments, `subnets` fixes the addresses. Uses
//! `run` (spec builders, roles, addresses, captures) and `scenario`.
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
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::scenario::{Scenario, Variant};

mod commands;
mod services;
mod subnets;
mod yaml;

pub use subnets::Subnets;

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

/// Why a mesh variant has no compose file (README "Mesh mode", 8): the
/// pod's start depends on what `connlab run` does on the host per run.
pub const MESH_REFUSED: &str = "a mesh variant has no compose file: its WasmPlugins reach the \
sidecars through the lab's agent stand-in at run time (it resolves the filter image just built, \
checks its digest against the manifest's sha256, unpacks plugin.wasm under that digest and writes \
the ECDS resource, or the fail strategy's filter when any of that fails), and a checked-in ECDS \
file would name a digest that changes with every filter build or skip that check; run it with \
`connlab run <scenario> --variant <variant> --evidence DIR` (each sidecar's config_dump, access \
log, stats and the filter's events are kept in DIR)";

pub fn render(
    scenario: &Scenario,
    variant: &Variant,
    subnets: &Subnets,
    placement: &Placement,
) -> anyhow::Result<Rendered> {
    let title = format!("{}/{}", scenario.name, variant.name);
    anyhow::ensure!(variant.mesh.is_none(), "{title}: {MESH_REFUSED}");
    let (services, files) = services::build(scenario, variant, subnets)?;
    let mut yaml = commands::header(scenario, variant, placement, &services);
    yaml.push_str(&yaml::body(
        scenario, variant, subnets, placement, &services,
    )?);
    Ok(Rendered { yaml, files })
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
        // Mesh variants are lab-run only (`MESH_REFUSED` says why).
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
mod tests;
