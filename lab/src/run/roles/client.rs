//! A `client` node: `connlab-client` in a container, its target given as
//! `node:port` in the scenario and resolved to an address here.

use std::time::Duration;

use crate::programs::client::{parse_output, ClientConfig, Output};
use crate::run::runtime::{ContainerSpec, Lab, LabError};

/// Starts the workload; `target` is the resolved `ip:port`.
pub async fn start(
    lab: &mut Lab,
    config: &ClientConfig,
    target: String,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    command(config, target, &mut spec);
    lab.start(spec).await
}

/// `connlab-client` with the node's flags and the resolved `target`, set on
/// `spec`.
pub fn command(config: &ClientConfig, target: String, spec: &mut ContainerSpec) {
    let mut config = config.clone();
    config.target = target;
    spec.cmd = vec!["connlab-client".to_string()];
    spec.cmd.extend(config.to_args());
}

/// Waits for the workload to end and parses what the client recorded.
pub async fn finish(lab: &Lab, name: &str, limit: Duration) -> Result<Output, LabError> {
    let code = lab.wait_exit(name, limit).await?;
    let (stdout, stderr) = lab.logs(name).await;
    if code != 0 {
        return Err(LabError::role(
            name,
            format!("connlab-client exited {code}: {stderr}"),
        ));
    }
    parse_output(&stdout).map_err(|e| LabError::role(name, format!("unreadable output: {e}")))
}
