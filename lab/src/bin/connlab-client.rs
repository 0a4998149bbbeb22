//! `connlab-client`: the client role as a process (the lab image runs it in a
//! container). Flags are `connlab::programs::client::ClientConfig`'s fields; stdout gets
//! one JSON line per request and a summary line, stderr a little progress.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use connlab::programs::client::{self, Cli};

fn main() -> ExitCode {
    let config = Cli::parse().config;
    eprintln!(
        "connlab-client: {} worker(s) -> {}{}",
        config.connections, config.target, config.path
    );
    let mut stdout = io::stdout().lock();
    let started = Instant::now();
    let mut last_progress = started;
    let (mut done, mut failed) = (0u64, 0u64);
    let result = client::run(&config, |record| {
        // A closed stdout (the reader went away) must not stop the run.
        let _ = writeln!(stdout, "{}", client::request_line(record));
        let _ = stdout.flush();
        done += 1;
        failed += u64::from(!record.is_ok());
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "connlab-client: {:.1} s, {done} requests, {failed} failed",
                started.elapsed().as_secs_f64()
            );
        }
    });
    match result {
        Ok(records) => {
            let summary = client::summarize(&records);
            let _ = writeln!(stdout, "{}", client::summary_line(&summary));
            let _ = stdout.flush();
            eprintln!(
                "connlab-client: done in {:.1} s: {} requests, {} ok, {} failed {:?}",
                started.elapsed().as_secs_f64(),
                summary.requests,
                summary.ok,
                summary.failed,
                summary.classes
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("connlab-client: {error}");
            ExitCode::from(2)
        }
    }
}
