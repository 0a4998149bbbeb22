//! Running scenario variants from tests.

use connlab::outcome::Outcome;
use connlab::run::image;
use connlab::scenario::Scenario;
use connlab::{paths, replay};

/// Runs one variant of a shipped scenario in Docker and returns its Outcome;
/// panics with the reason when the lab itself fails.
pub fn run_variant(scenario: &str, variant: &str) -> Outcome {
    let path = paths::root()
        .join("scenarios")
        .join(format!("{scenario}.toml"));
    let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let variant = scenario
        .variant(variant)
        .unwrap_or_else(|| panic!("no variant {variant}"));
    let image = image::ensure().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime
        .block_on(replay::run_variant(&scenario, variant, &image, None))
        .unwrap_or_else(|e| panic!("{e}"))
}
