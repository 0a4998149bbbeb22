//! Docker, through testcontainers (containers) and its re-exported bollard
//! client (networks, detached exec, sweeping). Every container and network a
//! run creates carries the `connlab` label plus its run id and the owning
//! process id, so a run removes exactly what it made — when it passes, fails,
//! panics or is interrupted — and the next run sweeps what a killed process
//! left behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use testcontainers::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use testcontainers::bollard::models::{NetworkConnectRequest, NetworkCreateRequest};
use testcontainers::bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use testcontainers::bollard::Docker;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use futures::StreamExt;

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

/// What one container runs.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The role's name; also the container's hostname.
    pub role: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// NET_ADMIN, for iptables and NFQUEUE faults inside the container.
    pub net_admin: bool,
    /// net.* sysctls set in the container's network namespace.
    pub sysctls: HashMap<String, String>,
    /// Networks it joins, by the names given to `Lab::add_network`, in
    /// order; empty = the run's default network.
    pub networks: Vec<String>,
    /// More capabilities (`NET_RAW`, ...).
    pub cap_add: Vec<String>,
    /// The default route's next hop (a router node's address), set before
    /// `cmd` runs; needs `net_admin`.
    pub gateway: Option<IpAddr>,
}

impl ContainerSpec {
    /// What the container runs: `cmd`, behind the route change when there is
    /// a gateway (the route must be in place before the command's first
    /// packet, so it cannot wait for an exec after the start).
    pub fn command(&self) -> Vec<String> {
        let Some(gateway) = self.gateway else {
            return self.cmd.clone();
        };
        let mut command = vec![
            "sh".to_string(),
            "-c".into(),
            "ip route replace default via \"$0\" && exec \"$@\"".into(),
            gateway.to_string(),
        ];
        command.extend(self.cmd.iter().cloned());
        command
    }
}

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

    /// Creates an exec of `cmd` in the role's container; its id.
    async fn create_exec(
        &self,
        role: &str,
        cmd: &[&str],
        attach: bool,
    ) -> Result<String, LabError> {
        let id = self.container(role)?.id().to_string();
        let options = CreateExecOptions {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            ..Default::default()
        };
        Ok(self.docker.create_exec(&id, options).await?.id)
    }

    /// Runs `cmd` in the role's container to completion: (exit code, stdout, stderr).
    pub async fn exec(&self, role: &str, cmd: &[&str]) -> Result<(i64, String, String), LabError> {
        let exec_id = self.create_exec(role, cmd, true).await?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec_id, None).await?
        {
            while let Some(Ok(chunk)) = output.next().await {
                use testcontainers::bollard::container::LogOutput;
                match chunk {
                    LogOutput::StdOut { message } => {
                        stdout.push_str(&String::from_utf8_lossy(&message))
                    }
                    LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    _ => {}
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec_id)
            .await?
            .exit_code
            .unwrap_or(-1);
        Ok((code, stdout, stderr))
    }

    /// Like `exec`, but fails with the command's output when it exits non-zero.
    pub async fn exec_ok(&self, role: &str, cmd: &[&str]) -> Result<String, LabError> {
        let (code, stdout, stderr) = self.exec(role, cmd).await?;
        if code != 0 {
            return Err(LabError::role(
                role,
                format!("`{}` exited {code}: {}{}", cmd.join(" "), stdout, stderr),
            ));
        }
        Ok(stdout)
    }

    /// Starts `cmd` in the role's container and returns at once (a packet
    /// delayer, say); it dies with the container.
    pub async fn exec_detached(&self, role: &str, cmd: &[&str]) -> Result<(), LabError> {
        let exec_id = self.create_exec(role, cmd, false).await?;
        self.docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await?;
        Ok(())
    }

    /// Waits until `probe` (a shell snippet) succeeds in the role's container.
    pub async fn wait_until(
        &self,
        role: &str,
        probe: &str,
        limit: Duration,
    ) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            if self.exec(role, &["sh", "-c", probe]).await?.0 == 0 {
                return Ok(());
            }
            if start.elapsed() > limit {
                let (out, err) = self.logs(role).await;
                return Err(LabError::role(
                    role,
                    format!("not ready after {limit:?} ({probe})\n{out}{err}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the role's main process to exit; its exit code.
    pub async fn wait_exit(&self, role: &str, limit: Duration) -> Result<i64, LabError> {
        let container = self.container(role)?;
        let start = Instant::now();
        loop {
            let running = container
                .is_running()
                .await
                .map_err(LabError::container(role))?;
            if !running {
                let code = container
                    .exit_code()
                    .await
                    .map_err(LabError::container(role))?;
                return Ok(code.unwrap_or(-1));
            }
            if start.elapsed() > limit {
                return Err(LabError::role(
                    role,
                    format!("still running after {limit:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The role's stdout and stderr so far.
    pub async fn logs(&self, role: &str) -> (String, String) {
        let Ok(container) = self.container(role) else {
            return Default::default();
        };
        let stdout = container.stdout_to_vec().await.unwrap_or_default();
        let stderr = container.stderr_to_vec().await.unwrap_or_default();
        (
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Freezes a container's processes.
    pub async fn pause(&self, role: &str) -> Result<(), LabError> {
        self.container(role)?
            .pause()
            .await
            .map_err(LabError::container(role))
    }

    /// Stops a container abruptly (a node that loses power).
    pub async fn kill(&self, role: &str) -> Result<(), LabError> {
        let id = self.container(role)?.id().to_string();
        self.docker.kill_container(&id, None).await?;
        Ok(())
    }

    /// Removes every container and the network, and waits for it.
    pub async fn teardown(mut self) {
        self.torn_down = true;
        remove_run(&self.docker, &self.run_id).await;
        // The handles now point at removed containers; forget them so their
        // drop does not try again.
        for (_, container) in self.containers.drain(..) {
            std::mem::forget(container);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // Not torn down: a failure, a panic or a cancelled (Ctrl-C) run. Drop
        // cannot await, so remove everything from a thread of its own and
        // wait for it.
        let run_id = self.run_id.clone();
        let docker = self.docker.clone();
        let containers: Vec<_> = self.containers.drain(..).collect();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(remove_run_settled(&docker, &run_id));
            // Removed above; the handles must not be dropped outside a runtime.
            for (_, container) in containers {
                std::mem::forget(container);
            }
        })
        .join();
    }
}

fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
    ])
}

/// Unique on this host: the pid, a per-process counter (parallel tests in
/// one process), and the clock (a pid reused after a crash).
fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{:x}", std::process::id(), nanos & 0xffff)
}

fn filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])
}

/// Removes a run's containers, then its network.
/// Removes a cancelled run's containers and networks (Ctrl-C, a panic). A
/// create request may still be in flight then: Docker completes it after the
/// first listing, so this keeps sweeping until a listing half a second after
/// the last removal comes back empty (at most about 10 s).
async fn remove_run_settled(docker: &Docker, run_id: &str) {
    let mut quiet = 0;
    for _ in 0..20 {
        if remove_run(docker, run_id).await {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet == 2 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Removes a run's containers, then its networks and volumes; whether it
/// found containers or networks.
async fn remove_run(docker: &Docker, run_id: &str) -> bool {
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filter(LABEL_RUN, run_id))
                .build(),
        ))
        .await
        .unwrap_or_default();
    let containers_empty = containers.is_empty();
    for container in containers {
        if let Some(id) = container.id {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(&id, Some(options)).await;
        }
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filter(LABEL_RUN, run_id))
                .build(),
        ))
        .await
        .unwrap_or_default();
    let found = !containers_empty || !networks.is_empty();
    for network in networks {
        if let Some(id) = network.id {
            let _ = docker.remove_network(&id).await;
        }
    }
    // Compose projects keep their shared directory in a named volume.
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filter(LABEL_RUN, run_id))
                .build(),
        ))
        .await
        .ok()
        .and_then(|list| list.volumes)
        .unwrap_or_default();
    for volume in volumes {
        let _ = docker
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await;
    }
    found
}

/// Removes what runs whose process is gone left behind (a SIGKILLed test,
/// a crashed CLI). Runs of live processes — parallel tests — are left alone.
pub async fn sweep_dead_runs(docker: &Docker) {
    sweep_dead_run_dirs();
    let mut dead_runs = std::collections::BTreeSet::new();
    let all = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&all)
                .build(),
        ))
        .await
        .unwrap_or_default();
    let container_labels = containers.into_iter().filter_map(|c| c.labels);
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default().filters(&all).build(),
        ))
        .await
        .unwrap_or_default();
    let network_labels = networks.into_iter().filter_map(|n| n.labels);
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default().filters(&all).build(),
        ))
        .await
        .ok()
        .and_then(|list| list.volumes)
        .unwrap_or_default();
    let volume_labels = volumes.into_iter().map(|v| v.labels);
    for labels in container_labels.chain(network_labels).chain(volume_labels) {
        // An empty pid: a compose project a person brought up by hand
        // (`connlab compose`); theirs to take down.
        let alive = labels
            .get(LABEL_PID)
            .is_some_and(|pid| pid.is_empty() || pid_alive(pid));
        if let (false, Some(run)) = (alive, labels.get(LABEL_RUN)) {
            dead_runs.insert(run.clone());
        }
    }
    for run in dead_runs {
        remove_run(docker, &run).await;
    }
}

fn pid_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes the temp dirs of runs whose process is gone.
fn sweep_dead_run_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(RUN_DIR_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
