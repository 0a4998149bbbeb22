//! A `client` node: `connlab-client` (or a real client library's program,
//! `crate::programs::library`) in a container, its target given as `node:port` in the
//! scenario and resolved to an address here.

use std::time::Duration;

use crate::programs::client::{parse_output, Output};
use crate::run::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::ClientNode;

/// Starts the workload; `target` is the resolved `ip:port`.
pub async fn start(
    lab: &mut Lab,
    client: &ClientNode,
    target: String,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    command(client, target, &mut spec);
    lab.start(spec).await
}

/// `connlab-client` (or the library's program) with the node's flags and
/// the resolved `target`, set on `spec`.
pub fn command(client: &ClientNode, target: String, spec: &mut ContainerSpec) {
    let mut config = client.config.clone();
    config.target = target;
    let Some(library) = &client.library else {
        spec.cmd = vec!["connlab-client".to_string()];
        spec.cmd.extend(config.to_args());
        return;
    };
    // The keys a library client shares with connlab-client, as the same flags.
    let shared = [
        ("target", Some(config.target)),
        ("path", Some(config.path)),
        ("connections", Some(config.connections.to_string())),
        ("requests", config.requests.map(|n| n.to_string())),
        (
            "gaps-ms",
            (!config.gaps_ms.is_empty()).then(|| {
                let gaps: Vec<String> = config.gaps_ms.iter().map(u64::to_string).collect();
                gaps.join(",")
            }),
        ),
    ];
    spec.cmd = library.program();
    for (name, value) in shared {
        if let Some(value) = value {
            spec.cmd.push(format!("--{name}"));
            spec.cmd.push(value);
        }
    }
    spec.cmd.extend(library.args());
}

/// Waits for the workload to end and parses what the client recorded.
pub async fn finish(lab: &Lab, name: &str, limit: Duration) -> Result<Output, LabError> {
    let code = lab.wait_exit(name, limit).await?;
    let (stdout, stderr) = lab.logs(name).await;
    if code != 0 {
        return Err(LabError::role(
            name,
            format!("the client exited {code}: {stderr}"),
        ));
    }
    parse_output(&stdout).map_err(|e| LabError::role(name, format!("unreadable output: {e}")))
}
