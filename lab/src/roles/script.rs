//! A `script` node: a command in the lab image. A workload script is waited
//! for like a client and its stdout kept as evidence.

use std::time::Duration;

use crate::runtime::{ContainerSpec, Lab, LabError};
use crate::scenario::node::ScriptNode;

pub async fn start(
    lab: &mut Lab,
    script: &ScriptNode,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    command(script, &mut spec);
    lab.start(spec).await
}

/// The script's command, set on `spec`.
pub fn command(script: &ScriptNode, spec: &mut ContainerSpec) {
    spec.cmd = script.command.clone();
}

/// Waits for a workload script to exit 0; its stdout.
pub async fn finish(lab: &Lab, name: &str, limit: Duration) -> Result<String, LabError> {
    let code = lab.wait_exit(name, limit).await?;
    let (stdout, stderr) = lab.logs(name).await;
    if code != 0 {
        return Err(LabError::role(name, format!("exited {code}: {stderr}")));
    }
    Ok(stdout)
}
