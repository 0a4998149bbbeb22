//! Runs one variant: topology up, faults and workload, evidence collected,
//! topology gone — in that order, whatever fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::check::{self, Evidence};
use crate::faults;
use crate::outcome::Outcome;
use crate::roles::{backend, client, envoy};
use crate::runtime::{Lab, LabError};
use crate::scenario::{Scenario, Variant};

pub async fn run_variant(
    scenario: &Scenario,
    variant: &Variant,
    image: &str,
) -> Result<Outcome, LabError> {
    let started = Instant::now();
    let mut lab = Lab::new(image).await?;
    let evidence = drive(&mut lab, variant).await;
    lab.teardown().await;
    Ok(check::outcome(
        scenario,
        variant,
        &evidence?,
        started.elapsed(),
    ))
}

async fn drive(lab: &mut Lab, variant: &Variant) -> Result<Evidence, LabError> {
    variant.backend.start(lab).await?;
    let backend_addr = SocketAddr::new(lab.ip(backend::ROLE).await?, backend::PORT);
    envoy::start(lab, "envoy", &variant.envoy, backend::ROLE, backend_addr).await?;
    let mut envoys = vec!["envoy"];
    if let Some(caller) = &variant.caller {
        let server = SocketAddr::new(lab.ip("envoy").await?, envoy::LISTEN_PORT);
        envoy::start(lab, "caller", caller, "envoy", server).await?;
        envoys.push("caller");
    }
    // Faults at time 0 are in place before the first request; the rest run
    // on their schedule beside the workload.
    let (now, later): (Vec<_>, Vec<_>) = variant.faults.iter().partition(|f| f.at().is_zero());
    for fault in now {
        fault.inject(lab).await?;
    }
    client::start(lab, &variant.client).await?;
    let limit = Duration::from_secs(variant.timeout_s);
    let lab_ref: &Lab = lab;
    let (output, scheduled) = tokio::join!(
        client::finish(lab_ref, limit),
        faults::run_schedule(lab_ref, &later)
    );
    scheduled?;
    let output = output?;
    // Envoy flushes its access log on a timer; let the last lines land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = BTreeMap::new();
    for role in envoys {
        seen.insert(role.to_string(), envoy::collect(lab, role).await?);
    }
    Ok(Evidence {
        client: output,
        envoys: seen,
    })
}
