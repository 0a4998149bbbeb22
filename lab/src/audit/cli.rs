//! `connlab audit CONFIG_DUMP.json [--backend CLUSTER=KIND]… [--snat] [--json]`.
//! Exit status: 0 nothing exposed, 1 exposed, 2 the input could not be read.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::backend::Backends;
use super::finding::Report;
use super::{context, dump, render, replay, report, Context, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Envoy's admin /config_dump (or `istioctl proxy-config … -o json`).
    pub dump: PathBuf,
    /// A backend's keep-alive: CLUSTER=node|cherrypy|tomcat (their
    /// defaults: 5 s, 10 s, 20 s), close (closes after every response), or
    /// its idle timeout in ms. CLUSTER `*` is every cluster. Repeatable.
    #[arg(long, value_name = "CLUSTER=KIND")]
    pub backend: Vec<String>,
    /// A SNAT (NAT gateway, load balancer SNAT pool) sits between Envoy and
    /// its upstreams.
    #[arg(long)]
    pub snat: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replay each exposure in the lab with the dump's own settings against
    /// the named backend (REPRODUCED or FIXED), then with the fix applied.
    /// Needs Docker.
    #[arg(long)]
    pub replay: bool,
}

/// Exit status when the dump is exposed to a catalogued failure.
pub const EXPOSED: u8 = 1;
/// Exit status when the input cannot be read (not JSON, truncated, empty).
pub const BAD_INPUT: u8 = 2;

/// Reads the file; `Err` is one line naming what is wrong.
fn read(args: &Args) -> Result<(dump::Dump, Options), String> {
    let name = args.dump.display().to_string();
    let backends = Backends::parse(&args.backend)?;
    let bytes = std::fs::read(&args.dump).map_err(|e| format!("{name}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name}: not UTF-8 text (byte {}): expected Envoy's /config_dump JSON",
            e.utf8_error().valid_up_to()
        )
    })?;
    let parsed = dump::parse(&text).map_err(|e| format!("{name}: {e}"))?;
    let options = Options {
        backends,
        snat: args.snat,
    };
    Ok((parsed, options))
}

/// Runs the command; returns the exit status.
pub fn run(args: &Args, scenarios: &Path) -> u8 {
    let (parsed, options) = match read(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("connlab audit: {e}");
            return BAD_INPUT;
        }
    };
    let ctx = context(&parsed, &options);
    let report = report(&args.dump.display().to_string(), &ctx);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        write!(out, "{}", render::human(&report))
    };
    if let Err(e) = written {
        eprintln!("connlab audit: {e}");
        return BAD_INPUT;
    }
    drop(out);
    if args.replay {
        if let Err(e) = replay_all(&ctx, &report, scenarios) {
            eprintln!("connlab audit: replay: {e}");
            return BAD_INPUT;
        }
    }
    if report.exposed > 0 {
        EXPOSED
    } else {
        0
    }
}

/// Prints each plan, runs it and prints its two outcomes.
fn replay_all(ctx: &Context, report: &Report, scenarios: &Path) -> Result<(), String> {
    let (plans, skipped) = replay::plans(ctx, &report.findings);
    if !skipped.is_empty() {
        println!("\nreplay: not rebuilt from a dump (yet):");
        for line in skipped {
            println!("  {line}");
        }
    }
    if plans.is_empty() {
        return Ok(());
    }
    // Every plan's variants parse before any container starts.
    for plan in &plans {
        replay::scenario(plan, scenarios)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(crate::run::runtime::docker())
        .map_err(|e| e.to_string())?;
    let image = crate::run::image::ensure().map_err(|e| e.to_string())?;
    for plan in &plans {
        println!(
            "\nreplay {} on {}: {}",
            plan.rule.name(),
            plan.object,
            plan.settings
        );
        for r in &plan.replacements {
            println!("  replaced  {r}");
        }
        let outcomes = runtime.block_on(replay::run(plan, scenarios, &image))?;
        let fixed = format!("with the fix, {}:", plan.fix);
        for (what, outcome) in [
            ("your settings:", &outcomes[0]),
            (fixed.as_str(), &outcomes[1]),
        ] {
            println!("  {what}");
            match outcome {
                Ok(o) => println!("{}", crate::outputs::human::line(o)),
                Err(e) => println!("{:>11} {e}", "ERROR"),
            }
        }
    }
    Ok(())
}
