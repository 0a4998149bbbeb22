//! A `script` node: a command in the lab image. A workload script is waited
//! for like a client and its stdout kept as evidence.

use std::time::Duration;

use crate::run::runtime::{ContainerSpec, Lab, LabError};

/// Starts the script's `command` (its `{ip:NODE}` already filled in).
pub async fn start(
    lab: &mut Lab,
    words: Vec<String>,
    mut spec: ContainerSpec,
) -> Result<(), LabError> {
    command(words, &mut spec);
    lab.start(spec).await
}

/// The script's command (its `{ip:NODE}` filled in), set on `spec`.
pub fn command(words: Vec<String>, spec: &mut ContainerSpec) {
    spec.cmd = words;
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
