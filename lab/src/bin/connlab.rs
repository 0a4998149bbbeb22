//! `connlab`: list and run scenarios.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use connlab::outcome::Outcome;
use connlab::outputs::{compose, html, human, junit, recorded};
use connlab::run::image;
use connlab::run::progress::{self, Phase, Reporter, RunId, Sink};
use connlab::scenario::{self, Scenario};
use connlab::{paths, replay};
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
    List {
        /// One JSON array of every variant (scenario, variant, expect,
        /// seed, timeout_s, about): the input of the CI matrix.
        #[arg(long)]
        json: bool,
    },
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
        /// Write a JUnit XML report: one test case per variant run.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write a static HTML report to DIR/index.html (evidence kept under
        /// DIR/evidence unless --evidence says elsewhere).
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
    /// Write a variant's topology as a docker-compose file (default
    /// compose/<scenario>/<variant>.yaml, its Envoy configs in
    /// compose/<scenario>/<variant>/), to bring it up by hand.
    Compose {
        /// Scenario name (see `connlab list`).
        scenario: Option<String>,
        /// One variant (default: every variant of the scenario).
        #[arg(long)]
        variant: Option<String>,
        /// Every variant of every scenario (`make compose-files`).
        #[arg(long, conflicts_with = "scenario")]
        all: bool,
        /// Write the one variant's file here instead (its configs go in a
        /// directory named after the variant beside it).
        #[arg(short = 'o', long = "out", value_name = "FILE", requires = "variant")]
        out: Option<PathBuf>,
        /// The directory of scenario subdirectories (default: compose/).
        #[arg(long, value_name = "DIR", conflicts_with = "out")]
        dir: Option<PathBuf>,
    },
    /// Render the HTML report of recorded runs (an --evidence directory).
    Report {
        /// The evidence directory (<scenario>/<run>/outcome.json inside).
        evidence: PathBuf,
        /// Where index.html goes.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Name the failures in access logs, Envoy logs with the filter's
    /// events, or a tcpdump capture, with the filter's own rules.
    Diagnose(connlab::diagnose::cli::Args),
    /// Read an Envoy config dump against the failure catalogue: which
    /// failures each cluster and listener is exposed to, why, and the fix.
    /// Exit status 0 clean, 1 exposed, 2 unreadable input.
    Audit(connlab::audit::cli::Args),
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
    if let Command::Audit(args) = &cli.command {
        return Ok(ExitCode::from(connlab::audit::cli::run(args, &dir)));
    }
    let scenarios = scenario::load_all(&dir)?;
    match cli.command {
        Command::List { json: true } => {
            println!("{}", serde_json::to_string_pretty(&matrix(&scenarios))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Compose {
            scenario,
            variant,
            all,
            out,
            dir: compose_dir,
        } => {
            let selected: Vec<&Scenario> = if all {
                scenarios.iter().collect()
            } else {
                vec![named(&scenarios, scenario, &dir)?]
            };
            let written = match (variant, out) {
                (Some(v), out) => {
                    let s = selected[0];
                    let variant = s
                        .variant(&v)
                        .with_context(|| format!("no variant `{v}` in `{}`", s.name))?;
                    let subnets = compose::Subnets::assign(&scenarios);
                    let root = compose_dir.unwrap_or_else(|| paths::root().join("compose"));
                    let (file, placement) = match out {
                        Some(file) => {
                            let wasm = std::path::absolute(paths::filter_wasm())?;
                            let placement = compose::Placement {
                                file: file.display().to_string(),
                                wasm: wasm.display().to_string(),
                            };
                            (file, placement)
                        }
                        None => (
                            root.join(&s.name).join(format!("{v}.yaml")),
                            compose::Placement::checked_in(&s.name, &v),
                        ),
                    };
                    let rendered = compose::render(s, variant, &subnets, &placement)?;
                    compose::write(&file, &v, &rendered)?
                }
                (None, _) => {
                    let root = compose_dir.unwrap_or_else(|| paths::root().join("compose"));
                    compose::write_all(&root, &scenarios, &selected)?
                }
            };
            for path in written {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { evidence, out } => {
            let index = html::write_all(&out, &evidence)?;
            println!("report: {}", index.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json: false } => {
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
            junit,
            report,
        } => {
            let selected: Vec<(&Scenario, Vec<&scenario::Variant>)> = if all {
                scenarios
                    .iter()
                    .map(|s| (s, s.variants.iter().collect()))
                    .collect()
            } else {
                let s = named(&scenarios, scenario, &dir)?;
                let variants: Vec<_> = match &variant {
                    Some(v) => vec![s
                        .variant(v)
                        .with_context(|| format!("no variant `{v}` in `{}`", s.name))?],
                    None => s.variants.iter().collect(),
                };
                vec![(s, variants)]
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            // Say plainly what is missing before building anything.
            runtime.block_on(connlab::run::runtime::docker())?;
            let image = image::ensure()?;
            let options = RunOptions {
                json,
                jobs: jobs.max(1),
                repeat: repeat.max(1),
                evidence: evidence.or_else(|| report.as_ref().map(|dir| dir.join("evidence"))),
                junit,
                report,
            };
            runtime.block_on(run_selected(&selected, &image, &options))
        }
        Command::Diagnose(_) | Command::Audit(_) => Ok(ExitCode::SUCCESS),
    }
}

struct RunOptions {
    json: bool,
    jobs: usize,
    repeat: usize,
    evidence: Option<PathBuf>,
    junit: Option<PathBuf>,
    report: Option<PathBuf>,
}

/// One row per variant: what a CI matrix job needs to run it.
#[derive(serde::Serialize)]
struct MatrixRow<'a> {
    scenario: &'a str,
    variant: &'a str,
    expect: String,
    seed: &'a str,
    timeout_s: u64,
    about: &'a str,
}

fn matrix(scenarios: &[Scenario]) -> Vec<MatrixRow<'_>> {
    scenarios
        .iter()
        .flat_map(|s| {
            s.variants.iter().map(move |v| MatrixRow {
                scenario: &s.name,
                variant: &v.name,
                expect: v.expect.word().to_lowercase(),
                seed: &s.seed,
                timeout_s: v.timeout_s,
                about: &v.about,
            })
        })
        .collect()
}

async fn run_selected(
    selected: &[(&Scenario, Vec<&scenario::Variant>)],
    image: &str,
    options: &RunOptions,
) -> anyhow::Result<ExitCode> {
    let progress = std::sync::Arc::new(Reporter::for_stderr());
    let runs = selected.iter().flat_map(|(scenario, variants)| {
        variants
            .iter()
            .flat_map(move |variant| (0..options.repeat).map(move |n| (*scenario, *variant, n)))
    });
    let progress_ref = &progress;
    let mut pending = futures::stream::iter(runs.map(|(scenario, variant, n)| async move {
        let id = RunId {
            scenario: scenario.name.clone(),
            variant: variant.name.clone(),
            repeat: n,
        };
        let keep = options.evidence.as_ref().map(|dir| {
            dir.join(&scenario.name)
                .join(format!("{}-{n}", variant.name))
        });
        progress_ref.phase(&id, Phase::StartingNodes);
        let started = std::time::Instant::now();
        let sink: std::sync::Arc<dyn Sink> = progress_ref.clone();
        let result = progress::scope(
            sink,
            id.clone(),
            replay::run_variant(scenario, variant, image, keep.as_deref()),
        )
        .await;
        let word = match &result {
            Ok(outcome) => outcome.verdict.word(),
            Err(_) => "ERROR",
        };
        progress_ref.phase(&id, Phase::Finished { word });
        if let (Some(dir), Ok(outcome)) = (&keep, &result) {
            if let Err(e) = recorded::save(dir, outcome, &variant.faults) {
                eprintln!("connlab: {}: {e}", dir.display());
            }
        }
        (id, keep, started.elapsed(), result)
    }))
    .buffer_unordered(options.jobs);
    let mut finished = Vec::new();
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
        let Some((id, keep, wall, result)) = next else {
            break;
        };
        let result = result.map_err(|e| e.to_string());
        match &result {
            Ok(outcome) if options.json => println!("{}", serde_json::to_string(outcome)?),
            Ok(outcome) => progress.println(&human::line(outcome)),
            Err(e) => eprintln!("{:>11} {id}: {e}", "ERROR"),
        }
        finished.push((id, keep, wall, result));
    }
    // JUnit and the report list runs in the order of the scenario files,
    // not the order they happened to end in.
    let order = |id: &RunId| {
        selected
            .iter()
            .flat_map(|(s, variants)| variants.iter().map(move |v| (&s.name, &v.name)))
            .position(|(s, v)| *s == id.scenario && *v == id.variant)
    };
    finished.sort_by_key(|(id, ..)| (order(id), id.repeat));
    let outcomes: Vec<Outcome> = finished
        .iter()
        .filter_map(|(_, _, _, r)| r.as_ref().ok().cloned())
        .collect();
    let errors = finished.len() - outcomes.len();
    if options.repeat > 1 {
        for line in human::stability(&outcomes) {
            println!("{line}");
        }
    }
    if let Some(path) = &options.junit {
        let cases: Vec<junit::Case> = finished
            .iter()
            .map(|(id, keep, wall, result)| junit::Case {
                run: id,
                result: result.as_ref().map_err(String::as_str),
                evidence: keep.as_deref(),
                wall: *wall,
            })
            .collect();
        junit::write(path, &cases)?;
        eprintln!("junit: {}", path.display());
    }
    if let Some(dir) = &options.report {
        let recorded: Vec<PathBuf> = finished
            .iter()
            .filter(|(_, _, _, result)| result.is_ok())
            .filter_map(|(_, keep, _, _)| keep.clone())
            .collect();
        let index = html::write(dir, &recorded)?;
        println!("report: {}", index.display());
    }
    let summary = human::summary(&outcomes, errors);
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

/// The scenario the command line names (when it does not say `--all`).
fn named<'a>(
    scenarios: &'a [Scenario],
    name: Option<String>,
    dir: &std::path::Path,
) -> anyhow::Result<&'a Scenario> {
    let name = name.context("name a scenario, or use --all")?;
    match scenarios.iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => bail!(
            "no scenario `{name}` in {} (see `connlab list`)",
            dir.display()
        ),
    }
}
