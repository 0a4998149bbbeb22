//! The client role: `connlab-client` in a container, its target given as
//! `role:port` in the scenario and resolved to that role's address here.

use std::time::Duration;

use crate::client::{parse_output, ClientConfig, Output};
use crate::runtime::{ContainerSpec, Lab, LabError};

pub const ROLE: &str = "client";

/// Starts the workload.
pub async fn start(lab: &mut Lab, config: &ClientConfig) -> Result<(), LabError> {
    let mut config = config.clone();
    config.target = resolve(lab, &config.target).await?;
    let mut cmd = vec!["connlab-client".to_string()];
    cmd.extend(config.to_args());
    lab.start(ContainerSpec {
        role: ROLE.into(),
        cmd,
        ..Default::default()
    })
    .await
}

/// Waits for the workload to end and parses what the client recorded.
pub async fn finish(lab: &Lab, limit: Duration) -> Result<Output, LabError> {
    let code = lab.wait_exit(ROLE, limit).await?;
    let (stdout, stderr) = lab.logs(ROLE).await;
    if code != 0 {
        return Err(LabError::role(
            ROLE,
            format!("connlab-client exited {code}: {stderr}"),
        ));
    }
    parse_output(&stdout).map_err(|e| LabError::role(ROLE, format!("unreadable output: {e}")))
}

/// `envoy:10000` → `<envoy's address>:10000`.
async fn resolve(lab: &Lab, target: &str) -> Result<String, LabError> {
    let (role, port) = target
        .rsplit_once(':')
        .ok_or_else(|| LabError::role(ROLE, format!("target `{target}` is not role:port")))?;
    Ok(format!("{}:{port}", lab.ip(role).await?))
}
