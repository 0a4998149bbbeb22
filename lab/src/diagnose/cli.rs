//! `connlab diagnose [FILE…|-] [--json] [--pcap FILE]`.

use std::io::{BufReader, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::line::Formats;
use super::report::Report;
use super::template::Template;
use super::{render, tcp, Diagnoser, Options};
use crate::evidence::pcap;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Access logs, Envoy/istio-proxy logs with the filter's events (`-`, or
    /// none without --pcap: stdin). Each file is one Envoy's log.
    pub files: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// A tcpdump capture (pcap or pcapng) to check for TCP-level signatures.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Your access log's format string, if it is neither Istio's TEXT
    /// default nor Envoy's (JSON logs need none).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// The filter's plugin configuration (JSON), to judge with your settings
    /// (server_idle_timeouts, idle match window) instead of its defaults.
    #[arg(long, value_name = "FILE")]
    pub filter_config: Option<PathBuf>,
    /// The Istio release the logs come from (e.g. 1.22): its defaults (a
    /// 503 retried before 1.24) are then said.
    #[arg(long, value_name = "1.N", value_parser = parse_istio_release)]
    pub istio_release: Option<u32>,
}

/// `1.22` or `1.22.3` to its minor, 22.
fn parse_istio_release(text: &str) -> Result<u32, String> {
    let mut parts = text.trim().trim_start_matches('v').split('.');
    match (parts.next(), parts.next().map(str::parse::<u32>)) {
        (Some("1"), Some(Ok(minor))) => Ok(minor),
        _ => Err(format!("`{text}` is not an Istio release like 1.22")),
    }
}

/// A capture's findings.
#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    pub file: String,
    pub segments: usize,
    pub conversations: usize,
    /// Packets that were not TCP over IP.
    pub skipped: u64,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub name: &'static str,
    pub count: usize,
    pub meaning: &'static str,
    pub fix: &'static str,
    pub replay: Option<String>,
    /// Every finding (each one conversation).
    pub findings: Vec<tcp::Finding>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    logs: Option<&'a Report>,
    tcp: Option<&'a TcpReport>,
}

pub fn run(args: &Args, scenarios: &std::path::Path) -> anyhow::Result<()> {
    let custom = args
        .format
        .as_deref()
        .map(Template::compile)
        .transpose()
        .context("--format")?;
    let config = match &args.filter_config {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
            connlab_filter::config::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => connlab_filter::config::Config::default(),
    };
    let options = Options {
        config,
        formats: Formats::new(custom),
        scenarios: scenarios.to_path_buf(),
        istio_minor: args.istio_release,
    };
    let mut files = args.files.clone();
    if files.is_empty() && args.pcap.is_none() {
        files.push(PathBuf::from("-"));
    }
    let logs = if files.is_empty() {
        None
    } else {
        let mut diagnoser = Diagnoser::new(options);
        for file in &files {
            if file.as_os_str() == "-" {
                // Not `stdin().lock()`: its lines are read on a thread of their own.
                diagnoser.read(
                    "(stdin)",
                    BufReader::with_capacity(1 << 20, std::io::stdin()),
                )?;
            } else {
                let f = std::fs::File::open(file).with_context(|| file.display().to_string())?;
                diagnoser
                    .read(
                        &file.display().to_string(),
                        BufReader::with_capacity(1 << 20, f),
                    )
                    .with_context(|| file.display().to_string())?;
            }
        }
        Some(diagnoser.finish())
    };
    let tcp = match &args.pcap {
        Some(path) => Some(tcp_report(path, scenarios)?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &Output {
                logs: logs.as_ref(),
                tcp: tcp.as_ref(),
            },
        )?;
        writeln!(out)?;
    } else {
        if let Some(report) = &logs {
            write!(out, "{}", render::human(report))?;
        }
        if let Some(tcp) = &tcp {
            if logs.is_some() {
                writeln!(out)?;
            }
            write!(out, "{}", human_tcp(tcp))?;
        }
    }
    Ok(())
}

pub fn tcp_report(
    path: &std::path::Path,
    scenarios: &std::path::Path,
) -> anyhow::Result<TcpReport> {
    let capture = pcap::read(path)?;
    Ok(tcp_report_of(
        path.display().to_string(),
        &capture,
        scenarios,
    ))
}

/// The report on a capture already read (`file` names it).
pub fn tcp_report_of(
    file: String,
    capture: &pcap::Capture,
    scenarios: &std::path::Path,
) -> TcpReport {
    let findings = tcp::findings(capture);
    let mut signatures: Vec<Signature> = Vec::new();
    for finding in findings {
        let name = finding.name();
        if let Some(s) = signatures.iter_mut().find(|s| s.name == name) {
            s.count += 1;
            s.findings.push(finding);
            continue;
        }
        let (meaning, fix, scenario) = tcp::meaning(name);
        signatures.push(Signature {
            name,
            count: 1,
            meaning,
            fix,
            replay: super::catalogue::command(scenarios, scenario, None),
            findings: vec![finding],
        });
    }
    TcpReport {
        file,
        segments: capture.segments.len(),
        conversations: capture.conversations().len(),
        skipped: capture.skipped,
        signatures,
    }
}

/// How many findings per signature the human output lists.
const SHOWN: usize = 3;

pub fn human_tcp(r: &TcpReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "capture {}: {} TCP segments in {} conversations ({} other packets)",
        r.file, r.segments, r.conversations, r.skipped
    );
    if r.signatures.is_empty() {
        let _ = writeln!(out, "  no TCP signature of the catalogue");
    }
    for s in &r.signatures {
        let _ = writeln!(out, "\n{} ({} conversation(s))", s.name, s.count);
        let _ = writeln!(out, "  what     {}", s.meaning);
        for f in s.findings.iter().take(SHOWN) {
            let _ = writeln!(out, "  seen     {}", describe(f));
        }
        let _ = writeln!(out, "  fix      {}", s.fix);
        if let Some(replay) = &s.replay {
            let _ = writeln!(out, "  replay   {replay}");
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn describe(f: &tcp::Finding) -> String {
    match f {
        tcp::Finding::SnatTimewait {
            client,
            server,
            syns,
            old_ack,
            syn_seq,
            after_close_ms,
            ended_in_rst,
            ..
        } => format!(
            "{client} > {server}: {syns} SYN(s) seq {syn_seq} answered by ACK ack {old_ack} (the old \
             connection's){}{}",
            after_close_ms.map(|ms| format!(", {} after it closed", secs(ms))).unwrap_or_default(),
            if *ended_in_rst { ", then the client's RST" } else { "" }
        ),
        tcp::Finding::KeepaliveRace {
            client,
            server,
            idle_ms,
            server_closed_after_ms,
            ..
        } => format!(
            "{client} > {server}: request after {} idle answered by RST{}",
            secs(*idle_ms),
            server_closed_after_ms
                .map(|ms| format!("; the server sent FIN {} after its last response", secs(ms)))
                .unwrap_or_default()
        ),
        tcp::Finding::DeadPeer {
            client,
            server,
            what,
            transmissions,
            span_ms,
            ..
        } => format!(
            "{client} > {server}: the same {what} sent {transmissions} times over {} with no answer",
            secs(*span_ms)
        ),
    }
}
