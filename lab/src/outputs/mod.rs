//! What a run is turned into for people and machines: human lines
//! (`human`), JUnit XML, the run directory as it lies on disk (`recorded`),
//! the static HTML report, SVG plots and packet ladders, and docker-compose
//! files of a topology. Uses every layer below (outcome, evidence, scenario,
//! run); nothing below uses it.

pub mod compose;
pub mod html;
pub mod human;
pub mod junit;
pub mod ladder;
pub mod plots;
pub mod recorded;
