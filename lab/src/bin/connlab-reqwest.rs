//! `connlab-reqwest`: the client role on reqwest (pinned in lab/Cargo.toml),
//! one pooled `reqwest::Client` with the library's own defaults unless a
//! flag sets a knob. Every knob flag is the `ClientBuilder` method's name;
//! a flag left out leaves reqwest's default in place (pool idle 90 s, no
//! limit on idle connections per host, TCP keep-alive 15 s, no timeouts,
//! no retries of HTTP/1.1 requests).
//!
//! stdout gets connlab-client's lines (one JSON record per request, then a
//! summary), each failed record with `library_error`: reqwest's error with
//! its whole cause chain (hyper's error, the io error), as a service would
//! log it.

use std::error::Error as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::Parser;
use connlab::programs::client::{self, Record, MAX_RUN, TAG_HEADER};
use connlab::programs::http1::ErrorKind;
use hyper_util::client::legacy::connect::HttpInfo;

const LIBRARY: &str = "reqwest 0.13.5 (hyper 1.12.0, hyper-util 0.1.21)";

#[derive(Debug, Parser)]
#[command(
    name = "connlab-reqwest",
    about = "The client role on reqwest: one JSON line per request on stdout, then a summary line"
)]
struct Cli {
    /// host:port to send requests to.
    #[arg(long)]
    target: String,
    #[arg(long, default_value = "/")]
    path: String,
    /// Concurrent workers sharing the one client (and its pool).
    #[arg(long, default_value_t = 1)]
    connections: u32,
    /// Requests per worker.
    #[arg(long)]
    requests: u64,
    /// Idle gap before each request of a worker, cycled (as connlab-client).
    #[arg(long, value_delimiter = ',')]
    gaps_ms: Vec<u64>,
    /// `ClientBuilder::pool_idle_timeout`; `none` keeps idle connections
    /// forever. Left out: reqwest's default.
    #[arg(long, value_parser = parse_optional_ms)]
    pool_idle_timeout_ms: Option<OptionalMs>,
    /// `ClientBuilder::pool_max_idle_per_host`.
    #[arg(long)]
    pool_max_idle_per_host: Option<usize>,
    /// `ClientBuilder::http2_prior_knowledge`.
    #[arg(long)]
    http2_prior_knowledge: bool,
    /// `ClientBuilder::tcp_keepalive`; `none` turns SO_KEEPALIVE off.
    #[arg(long, value_parser = parse_optional_ms)]
    tcp_keepalive_ms: Option<OptionalMs>,
    /// `ClientBuilder::timeout` (whole request).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// `ClientBuilder::connect_timeout`.
    #[arg(long)]
    connect_timeout_ms: Option<u64>,
}

/// A duration flag that may also be `none` (the builder's `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OptionalMs(Option<u64>);

/// `none` or milliseconds.
fn parse_optional_ms(s: &str) -> Result<OptionalMs, String> {
    if s == "none" {
        return Ok(OptionalMs(None));
    }
    s.parse()
        .map(|ms| OptionalMs(Some(ms)))
        .map_err(|_| format!("`{s}` is neither milliseconds nor `none`"))
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl Cli {
    fn client(&self, connects: Arc<AtomicU64>) -> reqwest::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder().connector_layer(CountConnects(connects));
        if let Some(OptionalMs(v)) = self.pool_idle_timeout_ms {
            b = b.pool_idle_timeout(v.map(ms));
        }
        if let Some(n) = self.pool_max_idle_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if self.http2_prior_knowledge {
            b = b.http2_prior_knowledge();
        }
        if let Some(OptionalMs(v)) = self.tcp_keepalive_ms {
            b = b.tcp_keepalive(v.map(ms));
        }
        if let Some(v) = self.timeout_ms {
            b = b.timeout(ms(v));
        }
        if let Some(v) = self.connect_timeout_ms {
            b = b.connect_timeout(ms(v));
        }
        b.build()
    }
}

/// A connector layer counting the connections reqwest opens: a request during
/// which the count did not move went out on a pooled connection.
#[derive(Clone)]
struct CountConnects(Arc<AtomicU64>);

impl<S> tower_layer::Layer<S> for CountConnects {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted(inner, Arc::clone(&self.0))
    }
}

#[derive(Clone)]
struct Counted<S>(S, Arc<AtomicU64>);

impl<S: tower_service::Service<R>, R> tower_service::Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, request: R) -> S::Future {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.call(request)
    }
}

/// reqwest's error as a service logs it: each cause after a colon.
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The lab's class of a reqwest error, from the innermost cause that tells:
/// an io error's kind (reset, refused), hyper's "connection closed before
/// message completed" (EOF before the response), or a timeout.
fn classify(error: &reqwest::Error) -> ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut kind = None;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            kind = Some(from_io(io));
        } else if let Some(h) = cause.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                kind = Some(ErrorKind::Eof);
            } else if h.is_timeout() {
                kind = Some(ErrorKind::Timeout);
            }
        }
        source = cause.source();
    }
    match kind {
        Some(kind) => kind,
        None if error.is_timeout() => ErrorKind::Timeout,
        None => ErrorKind::Protocol,
    }
}

fn from_io(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
        io::ErrorKind::UnexpectedEof => ErrorKind::Eof,
        _ => match error.raw_os_error() {
            Some(errno) => ErrorKind::Connect(errno),
            None => ErrorKind::Protocol,
        },
    }
}

struct Worker {
    id: u32,
    cli: Arc<Cli>,
    client: reqwest::Client,
    connects: Arc<AtomicU64>,
    url: String,
    started: Instant,
    deadline: Instant,
}

impl Worker {
    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_micros() as f64 / 1000.0
    }

    async fn run(self, out: tokio::sync::mpsc::UnboundedSender<Record>) {
        // The local address of the connection this worker last used: with one
        // worker it is the pooled connection a failed reused request went out on.
        let mut last_local: Option<SocketAddr> = None;
        for seq in 0..self.cli.requests {
            let gaps = &self.cli.gaps_ms;
            if !gaps.is_empty() {
                let gap = gaps[(seq % gaps.len() as u64) as usize];
                tokio::time::sleep(ms(gap)).await;
            }
            let start = Instant::now();
            if start >= self.deadline {
                return;
            }
            let before = self.connects.load(Ordering::SeqCst);
            let sent = self.client.get(&self.url).send();
            let result = tokio::time::timeout_at(self.deadline.into(), async {
                let response = sent.await?;
                let status = response.status().as_u16();
                let local = response
                    .extensions()
                    .get::<HttpInfo>()
                    .map(|i| i.local_addr());
                let tag = response
                    .headers()
                    .get(TAG_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                response.bytes().await?;
                Ok::<_, reqwest::Error>((status, local, tag))
            })
            .await;
            let end = Instant::now();
            let reused = self.connects.load(Ordering::SeqCst) == before;
            let mut record = Record {
                worker: self.id,
                seq,
                start_ms: self.ms(start),
                end_ms: self.ms(end),
                status: None,
                error: None,
                local: None,
                reused,
                tag: None,
                library_error: None,
            };
            match result {
                Ok(Ok((status, local, tag))) => {
                    record.status = Some(status);
                    record.local = local;
                    record.tag = tag;
                    last_local = local;
                }
                Ok(Err(error)) => {
                    record.error = Some(classify(&error));
                    if reused && self.cli.connections == 1 {
                        record.local = last_local;
                    }
                    record.library_error = Some(error_text(&error));
                }
                Err(_) => record.error = Some(ErrorKind::Unfinished),
            }
            if out.send(record).is_err() {
                return;
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("connlab-reqwest: no tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(Arc::new(cli)))
}

async fn run(cli: Arc<Cli>) -> ExitCode {
    let connects = Arc::new(AtomicU64::new(0));
    let client = match cli.client(Arc::clone(&connects)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connlab-reqwest: {}", error_text(&e));
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "connlab-reqwest: {LIBRARY}, {} worker(s) -> {}{}",
        cli.connections, cli.target, cli.path
    );
    let url = format!("http://{}{}", cli.target, cli.path);
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for id in 0..cli.connections {
        let worker = Worker {
            id,
            cli: Arc::clone(&cli),
            client: client.clone(),
            connects: Arc::clone(&connects),
            url: url.clone(),
            started,
            deadline: started + MAX_RUN,
        };
        tokio::spawn(worker.run(tx.clone()));
    }
    drop(tx);
    let mut stdout = io::stdout().lock();
    let mut records = Vec::new();
    while let Some(record) = rx.recv().await {
        // A closed stdout (the reader went away) must not stop the run.
        let _ = writeln!(stdout, "{}", client::request_line(&record));
        let _ = stdout.flush();
        if let Some(text) = &record.library_error {
            eprintln!("connlab-reqwest: request {}: {text}", record.seq);
        }
        records.push(record);
    }
    let summary = client::summarize(&records);
    let _ = writeln!(stdout, "{}", client::summary_line(&summary));
    eprintln!(
        "connlab-reqwest: {} requests, {} ok, {} failed {:?}",
        summary.requests, summary.ok, summary.failed, summary.classes
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_flag_parses() {
        let cli = Cli::try_parse_from([
            "connlab-reqwest",
            "--target",
            "envoy:10000",
            "--requests",
            "2",
            "--gaps-ms",
            "0,9000",
            "--pool-idle-timeout-ms",
            "2000",
            "--tcp-keepalive-ms",
            "none",
            "--pool-max-idle-per-host",
            "1",
            "--http2-prior-knowledge",
            "--timeout-ms",
            "500",
            "--connect-timeout-ms",
            "100",
        ])
        .unwrap();
        assert_eq!(cli.pool_idle_timeout_ms, Some(OptionalMs(Some(2000))));
        assert_eq!(cli.tcp_keepalive_ms, Some(OptionalMs(None)));
        assert_eq!(cli.gaps_ms, [0, 9000]);
        assert!(cli.client(Arc::default()).is_ok());
        assert!(parse_optional_ms("2s").is_err());
    }

    #[test]
    fn io_errors_map_to_the_lab_classes() {
        let os = |errno| from_io(&io::Error::from_raw_os_error(errno));
        assert_eq!(os(libc::ECONNRESET), ErrorKind::Reset);
        assert_eq!(os(libc::EPIPE), ErrorKind::Reset);
        assert_eq!(os(libc::ECONNREFUSED), ErrorKind::Connect(111));
        assert_eq!(os(libc::EADDRNOTAVAIL), ErrorKind::Connect(99));
        assert_eq!(os(libc::ETIMEDOUT), ErrorKind::Timeout);
    }
}
