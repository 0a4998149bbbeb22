//! One variant through the whole pipeline: `run` records evidence, `check`
//! turns it into an `Outcome`, and with `keep` the evidence is written out
//! as files (raw evidence, packet ladders, the timeline plot).

use std::path::Path;
use std::time::Instant;

use crate::check;
use crate::evidence::timeline;
use crate::outcome::Outcome;
use crate::outputs::{ladder, plots};
use crate::run::{self, runtime::LabError};
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
    let evidence = run::record(variant, image).await?;
    let outcome = check::outcome(scenario, variant, &evidence, started.elapsed());
    if let Some(dir) = keep {
        evidence.save(dir)?;
        ladder::save_all(dir, &evidence)?;
        if let Some(timeline) = &outcome.timeline {
            let svg =
                plots::fault_throughput(timeline).map_err(|e| LabError::role("timeline", e))?;
            std::fs::write(dir.join(timeline::SVG_FILE), svg)?;
        }
    }
    Ok(outcome)
}
