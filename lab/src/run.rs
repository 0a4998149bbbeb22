//! Runs one variant: topology up, faults and workload, evidence collected,
//! topology gone — in that order, whatever fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::check::{self, Evidence};
use crate::faults::{self, Fault};
use crate::outcome::Outcome;
use crate::progress::{self, Phase, Workload};
use crate::roles::{backend, client, envoy};
use crate::runtime::{Lab, LabError};
use crate::scenario::{Scenario, Variant};

/// Runs a variant; with `keep`, also writes the raw evidence there (see
/// `Evidence::save`).
pub async fn run_variant(
    scenario: &Scenario,
    variant: &Variant,
    image: &str,
    keep: Option<&Path>,
) -> Result<Outcome, LabError> {
    let started = Instant::now();
    let mut lab = Lab::new(image).await?;
    let evidence = drive(&mut lab, variant).await;
    lab.teardown().await;
    let evidence = evidence?;
    if let Some(dir) = keep {
        evidence.save(dir)?;
    }
    Ok(check::outcome(
        scenario,
        variant,
        &evidence,
        started.elapsed(),
    ))
}

async fn drive(lab: &mut Lab, variant: &Variant) -> Result<Evidence, LabError> {
    variant.backend.start(lab).await?;
    let backend_addr = SocketAddr::new(lab.ip(backend::ROLE).await?, backend::PORT);
    let backend_delay = variant
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::Delay {
                target, delay_ms, ..
            } if target == backend::ROLE => Some(*delay_ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let filter = envoy::filter_config(backend_delay);
    envoy::start(
        lab,
        "envoy",
        &variant.envoy,
        backend::ROLE,
        backend_addr,
        filter,
    )
    .await?;
    let mut envoys = vec!["envoy"];
    if let Some(caller) = &variant.caller {
        let server = SocketAddr::new(lab.ip("envoy").await?, envoy::LISTEN_PORT);
        envoy::start(
            lab,
            "caller",
            caller,
            "envoy",
            server,
            envoy::filter_config(0),
        )
        .await?;
        envoys.push("caller");
    }
    // Faults at time 0 are in place before the first request; the rest run
    // on their schedule beside the workload.
    let (now, later): (Vec<_>, Vec<_>) = variant.faults.iter().partition(|f| f.at().is_zero());
    for fault in now {
        fault.inject(lab).await?;
    }
    progress::emit(Phase::FaultsInPlace);
    client::start(lab, &variant.client).await?;
    let limit = Duration::from_secs(variant.timeout_s);
    let lab_ref: &Lab = lab;
    let workload = Workload::of(&variant.client);
    let (output, scheduled) = tokio::join!(
        progress::watch_client(
            lab_ref,
            client::ROLE,
            &workload,
            client::finish(lab_ref, limit)
        ),
        faults::run_schedule(lab_ref, &later)
    );
    scheduled?;
    let output = output?;
    progress::emit(Phase::CollectingEvidence);
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
