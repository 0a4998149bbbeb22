//! `connlab audit CONFIG_DUMP.json [--backend CLUSTER=KIND]… [--snat] [--json]`.
//! Exit status: 0 nothing exposed, 1 exposed, 2 the input could not be read.

use std::io::Write;
use std::path::PathBuf;

use super::backend::Backends;
use super::finding::Report;
use super::{audit, dump, render, Options};

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
}

/// Exit status when the dump is exposed to a catalogued failure.
pub const EXPOSED: u8 = 1;
/// Exit status when the input cannot be read (not JSON, truncated, empty).
pub const BAD_INPUT: u8 = 2;

/// Reads and audits the file; `Err` is one line naming what is wrong.
pub fn report(args: &Args) -> Result<Report, String> {
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
    Ok(audit(&name, &parsed, &options))
}

/// Runs the command; returns the exit status.
pub fn run(args: &Args) -> u8 {
    let report = match report(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("connlab audit: {e}");
            return BAD_INPUT;
        }
    };
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
    if report.exposed > 0 {
        EXPOSED
    } else {
        0
    }
}
