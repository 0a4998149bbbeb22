//! `connlab`: list and run scenarios.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use connlab::outcome::Outcome;
use connlab::scenario::{self, Scenario};
use connlab::{image, paths, report, run};

#[derive(Parser)]
#[command(about = "Replay documented proxy connection failures with real Envoy and real servers")]
struct Cli {
    /// Directory of scenario files.
    #[arg(long, global = true)]
    scenarios: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios and their variants.
    List,
    /// Run a scenario (every variant, or one), or all of them.
    Run {
        /// Scenario name (see `connlab list`).
        scenario: Option<String>,
        #[arg(long)]
        variant: Option<String>,
        #[arg(long, conflicts_with = "scenario")]
        all: bool,
        /// Print each Outcome as JSON instead of the human lines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("connlab: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let dir = cli
        .scenarios
        .unwrap_or_else(|| paths::root().join("scenarios"));
    let scenarios = scenario::load_all(&dir)?;
    match cli.command {
        Command::List => {
            for s in &scenarios {
                println!("{}  ({})  {}", s.name, s.seed, s.summary);
                for v in &s.variants {
                    println!(
                        "    {:<24} expect {:<10} {}",
                        v.name,
                        v.expect.word().to_lowercase(),
                        v.about
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            variant,
            all,
            json,
        } => {
            let selected: Vec<(&Scenario, Vec<&scenario::Variant>)> = if all {
                scenarios
                    .iter()
                    .map(|s| (s, s.variants.iter().collect()))
                    .collect()
            } else {
                let name = scenario.context("name a scenario, or use --all")?;
                let Some(s) = scenarios.iter().find(|s| s.name == name) else {
                    bail!(
                        "no scenario `{name}` in {} (see `connlab list`)",
                        dir.display()
                    );
                };
                let variants: Vec<_> = match &variant {
                    Some(v) => vec![s
                        .variant(v)
                        .with_context(|| format!("no variant `{v}` in `{name}`"))?],
                    None => s.variants.iter().collect(),
                };
                vec![(s, variants)]
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            // Say plainly what is missing before building anything.
            runtime.block_on(connlab::runtime::docker())?;
            let image = image::ensure()?;
            runtime.block_on(run_selected(&selected, &image, json))
        }
    }
}

async fn run_selected(
    selected: &[(&Scenario, Vec<&scenario::Variant>)],
    image: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut errors = 0;
    for (scenario, variants) in selected {
        for variant in variants {
            // Ctrl-C drops the run in progress; its Lab removes every
            // container and network it made before we exit.
            let result = tokio::select! {
                result = run::run_variant(scenario, variant, image) => result,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("connlab: interrupted; containers removed");
                    return Ok(ExitCode::from(130));
                }
            };
            match result {
                Ok(outcome) => {
                    if json {
                        println!("{}", serde_json::to_string(&outcome)?);
                    } else {
                        println!("{}", report::line(&outcome));
                    }
                    outcomes.push(outcome);
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("{:>11} {}/{}: {e}", "ERROR", scenario.name, variant.name);
                }
            }
        }
    }
    let summary = report::summary(&outcomes, errors);
    if json {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    let all_expected = errors == 0 && outcomes.iter().all(Outcome::as_expected);
    Ok(if all_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
