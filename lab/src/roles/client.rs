//! A `client` node: `connlab-client` in a container, its target given as
//! `node:port` in the scenario and resolved to an address here.

use std::time::Duration;

use crate::client::{parse_output, ClientConfig, Output};
use crate::runtime::{ContainerSpec, Lab, LabError};

/// Starts the workload; `target` is the resolved `ip:port`.
pub async fn start(
    lab: &mut Lab,
    config: &ClientConfig,
    target: String,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    let mut config = config.clone();
    config.target = target;
    spec.cmd = vec!["connlab-client".to_string()];
    spec.cmd.extend(config.to_args());
    lab.start(spec).await
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
