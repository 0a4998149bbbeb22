//! Docker, through testcontainers (containers) and its re-exported bollard
//! client (networks, detached exec, sweeping). Every container and network a
//! run creates carries the `connlab` label plus its run id and the owning
//! process id, so a run removes exactly what it made — when it passes, fails,
//! panics or is interrupted — and the next run sweeps what a killed process
//! left behind. Uses no other lab module: `roles` put their programs in
//! it, and `outputs::compose` writes its `ContainerSpec`s as services.
//!
//! This file brings a run up (its networks, its containers from a
//! [`ContainerSpec`], their addresses); `exec` acts in running containers
//! (exec, readiness waits, logs, pause, kill); `cleanup` takes a run down and
//! sweeps what dead runs left.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use testcontainers::bollard::models::{NetworkConnectRequest, NetworkCreateRequest};
use testcontainers::bollard::query_parameters::InspectContainerOptions;
use testcontainers::bollard::Docker;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use cleanup::{labels, new_run_id};

/// Label on everything connlab creates.
pub const LABEL: &str = "connlab";
const LABEL_RUN: &str = "connlab.run";
const LABEL_PID: &str = "connlab.pid";
/// A run's temp dir is `<tmp>/connlab-run-<pid>-<random>`: the pid lets
/// the sweep find those of dead processes.
const RUN_DIR_PREFIX: &str = "connlab-run-";
/// Where a run's files (Envoy configs, the filter module) appear in containers.
pub const SHARED_DIR: &str = "/connlab";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("no Docker engine: {0} (start dockerd, or set DOCKER_HOST)")]
    NoDocker(String),
    #[error("lab image unavailable: {0}")]
    NoImage(String),
    #[error("docker: {0}")]
    Docker(#[from] testcontainers::bollard::errors::Error),
    #[error("container {role}: {source}")]
    Container {
        role: String,
        source: testcontainers::TestcontainersError,
    },
    #[error("{role}: {what}")]
    Role { role: String, what: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl LabError {
    pub fn role(role: &str, what: impl Into<String>) -> Self {
        LabError::Role {
            role: role.into(),
            what: what.into(),
        }
    }

    /// For `map_err`: a testcontainers error of the role's container.
    fn container(role: &str) -> impl FnOnce(testcontainers::TestcontainersError) -> Self + '_ {
        move |source| LabError::Container {
            role: role.into(),
            source,
        }
    }
}

/// Connects to the engine and checks it answers.
pub async fn docker() -> Result<Docker, LabError> {
    let docker =
        Docker::connect_with_local_defaults().map_err(|e| LabError::NoDocker(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| LabError::NoDocker(e.to_string()))?;
    Ok(docker)
}
mod cleanup;
mod exec;
mod spec;

pub use cleanup::sweep_dead_runs;
pub use spec::ContainerSpec;

/// One run's containers, network and files. Dropping it removes them all.
pub struct Lab {
    docker: Docker,
    image: (String, String),
    pub run_id: String,
    network: String,
    network_created: bool,
    /// Networks added by name: (name, Docker's name).
    networks: Vec<(String, String)>,
    dir: tempfile::TempDir,
    containers: Vec<(String, ContainerAsync<GenericImage>)>,
    torn_down: bool,
}

impl Lab {
    /// Sweeps leftovers of dead runs and makes the run's temp dir; the
    /// default network comes with the first container on it. `image` is
    /// `name:tag`.
    pub async fn new(image: &str) -> Result<Lab, LabError> {
        let docker = docker().await?;
        sweep_dead_runs(&docker).await;
        let (name, tag) = image.split_once(':').unwrap_or((image, "latest"));
        let run_id = new_run_id();
        // Created when a container first needs it: a scenario that names its
        // networks never does (Docker has about 30 address pools for every
        // run on the host).
        let network = format!("connlab-{run_id}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{RUN_DIR_PREFIX}{}-", std::process::id()))
            .tempdir()?;
        Ok(Lab {
            docker,
            image: (name.into(), tag.into()),
            run_id,
            network,
            network_created: false,
            networks: Vec::new(),
            dir,
            containers: Vec::new(),
            torn_down: false,
        })
    }

    /// The run's shared directory on the host (mounted at `SHARED_DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates another network of the run, known to `ContainerSpec` by
    /// `name`.
    pub async fn add_network(&mut self, name: &str) -> Result<(), LabError> {
        let docker_name = format!("connlab-{}-{name}", self.run_id);
        self.docker
            .create_network(NetworkCreateRequest {
                name: docker_name.clone(),
                labels: Some(labels(&self.run_id)),
                ..Default::default()
            })
            .await?;
        self.networks.push((name.to_string(), docker_name));
        Ok(())
    }

    /// Docker's name of a network given to `add_network`.
    fn docker_network(&self, name: &str) -> Result<String, LabError> {
        self.networks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| LabError::role(name, "no such network in this run"))
    }

    pub async fn start(&mut self, spec: ContainerSpec) -> Result<(), LabError> {
        let name = format!("connlab-{}-{}", self.run_id, spec.role);
        let networks = spec
            .networks
            .iter()
            .map(|n| self.docker_network(n))
            .collect::<Result<Vec<_>, _>>()?;
        let first = match networks.first() {
            Some(first) => first.clone(),
            None => {
                if !self.network_created {
                    self.docker
                        .create_network(NetworkCreateRequest {
                            name: self.network.clone(),
                            labels: Some(labels(&self.run_id)),
                            ..Default::default()
                        })
                        .await?;
                    self.network_created = true;
                }
                self.network.clone()
            }
        };
        let mut request = GenericImage::new(self.image.0.clone(), self.image.1.clone())
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(spec.command())
            .with_network(first)
            .with_container_name(name)
            .with_hostname(spec.role.clone())
            .with_labels(labels(&self.run_id))
            .with_mount(Mount::bind_mount(
                self.dir.path().to_string_lossy().into_owned(),
                SHARED_DIR,
            ))
            .with_startup_timeout(Duration::from_secs(60));
        for (key, value) in &spec.env {
            request = request.with_env_var(key.clone(), value.clone());
        }
        if spec.net_admin {
            request = request.with_cap_add("NET_ADMIN");
        }
        for cap in &spec.cap_add {
            request = request.with_cap_add(cap.clone());
        }
        if !spec.sysctls.is_empty() {
            let sysctls = spec.sysctls.clone();
            request =
                request.with_host_config_modifier(move |host| host.sysctls = Some(sysctls.clone()));
        }
        let container = request
            .start()
            .await
            .map_err(LabError::container(&spec.role))?;
        let id = container.id().to_string();
        self.containers.push((spec.role, container));
        // The other networks join after the start (Docker creates a
        // container on one).
        for network in networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: id.clone(),
                ..Default::default()
            };
            self.docker.connect_network(network, request).await?;
        }
        Ok(())
    }

    fn container(&self, role: &str) -> Result<&ContainerAsync<GenericImage>, LabError> {
        self.containers
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, c)| c)
            .ok_or_else(|| LabError::role(role, "no such container in this run"))
    }

    /// The role's address on the run's default network, or else on the
    /// first network it joined.
    pub async fn ip(&self, role: &str) -> Result<IpAddr, LabError> {
        let addresses = self.addresses(role).await?;
        addresses
            .iter()
            .find(|(n, _)| n.is_empty())
            .or(addresses.first())
            .map(|(_, ip)| *ip)
            .ok_or_else(|| LabError::role(role, "no address on the run's networks"))
    }

    /// The role's address on each network of the run it joined, by the
    /// names given to `add_network` ("" for the default network), in the
    /// order networks were added.
    pub async fn addresses(&self, role: &str) -> Result<Vec<(String, IpAddr)>, LabError> {
        let id = self.container(role)?.id().to_string();
        let inspect = self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await?;
        let joined = inspect
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default();
        let known = std::iter::once((String::new(), self.network.clone()))
            .chain(self.networks.iter().cloned());
        Ok(known
            .filter_map(|(name, docker_name)| {
                let ip = joined
                    .get(&docker_name)?
                    .ip_address
                    .as_ref()?
                    .parse()
                    .ok()?;
                Some((name, ip))
            })
            .collect())
    }
}
