//! Taking a run down, whatever ended it (teardown after a pass or a failure,
//! `Drop` after a panic or Ctrl-C), and sweeping what runs of dead processes
//! left: every container, network and volume carries the run's labels.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use testcontainers::bollard::Docker;

use super::{Lab, LABEL, LABEL_PID, LABEL_RUN, RUN_DIR_PREFIX};

impl Lab {
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

pub(super) fn labels(run_id: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
    ])
}

/// Unique on this host: the pid, a per-process counter (parallel tests in
/// one process), and the clock (a pid reused after a crash).
pub(super) fn new_run_id() -> String {
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
