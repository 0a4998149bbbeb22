//! `connlab`: list and run scenarios.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use connlab::outcome::Outcome;
use connlab::scenario::{self, Scenario};
use connlab::{image, paths, report, run};
use futures::StreamExt;

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
        /// Variants run at once (each in its own network and containers;
        /// they mostly wait, so this is bounded by memory, not cores).
        #[arg(long, default_value_t = 6)]
        jobs: usize,
        /// Run every selected variant this many times and report whether
        /// verdict and counts were the same every time.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Keep each run's raw evidence (client records, filter events,
        /// Envoy access log and stats) under DIR/<scenario>/<variant>-<n>/.
        #[arg(long, value_name = "DIR")]
        evidence: Option<PathBuf>,
    },
    /// Name the failures in access logs, Envoy logs with the filter's
    /// events, or a tcpdump capture, with the filter's own rules.
    Diagnose(connlab::diagnose::cli::Args),
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
    // Reads logs, not scenarios: a broken scenario file must not stop it.
    if let Command::Diagnose(args) = &cli.command {
        connlab::diagnose::cli::run(args, &dir)?;
        return Ok(ExitCode::SUCCESS);
    }
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
            jobs,
            repeat,
            evidence,
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
            let options = RunOptions {
                json,
                jobs: jobs.max(1),
                repeat: repeat.max(1),
                evidence,
            };
            runtime.block_on(run_selected(&selected, &image, &options))
        }
        Command::Diagnose(_) => Ok(ExitCode::SUCCESS),
    }
}

struct RunOptions {
    json: bool,
    jobs: usize,
    repeat: usize,
    evidence: Option<PathBuf>,
}

async fn run_selected(
    selected: &[(&Scenario, Vec<&scenario::Variant>)],
    image: &str,
    options: &RunOptions,
) -> anyhow::Result<ExitCode> {
    let runs = selected.iter().flat_map(|(scenario, variants)| {
        variants
            .iter()
            .flat_map(move |variant| (0..options.repeat).map(move |n| (*scenario, *variant, n)))
    });
    let mut pending = futures::stream::iter(runs.map(|(scenario, variant, n)| async move {
        let keep = options.evidence.as_ref().map(|dir| {
            dir.join(&scenario.name)
                .join(format!("{}-{n}", variant.name))
        });
        let result = run::run_variant(scenario, variant, image, keep.as_deref()).await;
        (scenario, variant, result)
    }))
    .buffer_unordered(options.jobs);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut errors = 0;
    loop {
        // Ctrl-C returns at once: dropping the runs in flight makes each
        // Lab remove every container and network it made before we exit.
        let next = tokio::select! {
            next = pending.next() => next,
            _ = tokio::signal::ctrl_c() => {
                drop(pending);
                eprintln!("connlab: interrupted; containers and networks removed");
                return Ok(ExitCode::from(130));
            }
        };
        let Some((scenario, variant, result)) = next else {
            break;
        };
        match result {
            Ok(outcome) => {
                if options.json {
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
    if options.repeat > 1 {
        for line in report::stability(&outcomes) {
            println!("{line}");
        }
    }
    let summary = report::summary(&outcomes, errors);
    if options.json {
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
