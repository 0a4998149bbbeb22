//! The nemesis: the scenario's faults (`scenario::fault`) injected into a
//! running topology, each an action in the scenario's schedule. They act
//! inside the target's own network namespace (the container has NET_ADMIN),
//! so both ends keep real kernel TCP behaviour.

use std::time::Duration;

use crate::run::addresses::Addresses;
use crate::run::runtime::{Lab, LabError};
use crate::scenario::fault::{Fault, Step};

impl Fault {
    /// Runs its steps; `addresses` fills an `iptables` fault's `{ip:NODE}`.
    pub async fn inject(&self, lab: &Lab, addresses: &Addresses) -> Result<(), LabError> {
        for step in self.steps() {
            match step {
                Step::Exec {
                    target,
                    cmd,
                    detach,
                } => {
                    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    if detach {
                        lab.exec_detached(&target, &cmd).await?;
                    } else {
                        lab.exec_ok(&target, &cmd).await?;
                    }
                }
                Step::WaitUntil { target, probe } => {
                    lab.wait_until(&target, &probe, Duration::from_secs(10))
                        .await?
                }
                Step::Rules { target, rules } => {
                    crate::run::roles::router::run_rules(lab, &target, &rules, addresses).await?
                }
                Step::Pause(target) => lab.pause(&target).await?,
                Step::Kill(target) => lab.kill(&target).await?,
            }
        }
        Ok(())
    }
}

/// Injects the faults in time order; `at` 0 faults before the workload
/// starts is the caller's choice (see `run`).
pub async fn run_schedule(
    lab: &Lab,
    faults: &[&Fault],
    addresses: &Addresses,
) -> Result<(), LabError> {
    let start = tokio::time::Instant::now();
    for fault in faults {
        tokio::time::sleep_until(start + fault.at()).await;
        fault.inject(lab, addresses).await?;
    }
    Ok(())
}
