//! The client role: a load generator on std threads (exact timing matters
//! more than throughput here). Each worker owns one connection and records
//! one [`Record`] per request; [`summarize`] turns records into the counts,
//! per-second throughput and percentiles a scenario checks. The checker runs
//! the same code on records it parses back from `connlab-client`'s stdout
//! ([`parse_output`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{ArgAction, Parser};
use serde::{Deserialize, Serialize};

use crate::http1::{Conn, ConnectOptions, ErrorKind, Response};

/// Without `duration_ms` a run still ends after this long, so a request that
/// would wait forever (no read timeout, a dead peer) cannot hang the client.
pub const MAX_RUN: Duration = Duration::from_secs(600);

/// The response header whose value a record carries as `tag`.
pub const TAG_HEADER: &str = "x-connlab";

const DEFAULT_PATH: &str = "/";
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5000;

/// Every knob of a run. The CLI flags are these fields (`--gaps-ms 0,5900`),
/// and scenario files embed it as data; [`ClientConfig::to_args`] turns it
/// back into flags for a container's command line.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// host:port to send requests to (resolved once, at start).
    #[arg(long)]
    pub target: String,
    /// Request path.
    #[arg(long, default_value = DEFAULT_PATH)]
    #[serde(default = "default_path")]
    pub path: String,
    /// Concurrent workers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Requests per worker. With `duration_ms` too, whichever ends first.
    #[arg(long)]
    #[serde(default)]
    pub requests: Option<u64>,
    /// Stop after this long: no request starts later, and one still waiting
    /// then is recorded as `unfinished`. Without it the bound is 600 s.
    #[arg(long)]
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Reuse the connection (a failed request still drops it, and the next
    /// request reconnects). `false`: a new connection and `connection: close`
    /// per request.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    #[serde(default = "default_keep_alive")]
    pub keep_alive: bool,
    /// Idle gap before each request of a worker, from the end of its previous
    /// request, cycled: `0,5900` = request, 5.9 s idle, request, ...
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub gaps_ms: Vec<u64>,
    /// Requests per second per worker, on a fixed schedule (instead of gaps);
    /// a slot missed while a request is still running is skipped.
    #[arg(long)]
    #[serde(default)]
    pub rate: Option<f64>,
    /// Wait this long after connecting before sending the first byte.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub first_byte_delay_ms: u64,
    /// Give up on a response after this long; 0 waits (until the run ends).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub read_timeout_ms: u64,
    /// Give up on connect() after this long (recorded as connect errno 110).
    #[arg(long, default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Bind this local port (SO_REUSEADDR) before every connect.
    #[arg(long)]
    #[serde(default)]
    pub source_port: Option<u16>,
    /// TCP_USER_TIMEOUT (socket option 18) on every connection.
    #[arg(long)]
    #[serde(default)]
    pub tcp_user_timeout_ms: Option<u64>,
    /// Turn on TCP keep-alive: first probe after this many idle seconds.
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_idle_s: Option<u64>,
    /// Seconds between keep-alive probes (needs `tcp_keepalive_idle_s`).
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_interval_s: Option<u64>,
    /// Unanswered probes before the kernel drops the connection (needs
    /// `tcp_keepalive_idle_s`).
    #[arg(long)]
    #[serde(default)]
    pub tcp_keepalive_count: Option<u32>,
}

fn default_path() -> String {
    DEFAULT_PATH.to_string()
}

fn default_connections() -> u32 {
    1
}

fn default_keep_alive() -> bool {
    true
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// `connlab-client`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "connlab-client",
    about = "HTTP/1.1 load generator: one JSON line per request on stdout, then a summary line"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ClientConfig,
}

/// A knob with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client config: `{field}` {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot resolve target `{target}`: {reason}")]
    Resolve { target: String, reason: String },
    #[error("a client worker panicked")]
    WorkerPanicked,
}

impl ClientConfig {
    /// A config with every knob at its default.
    pub fn new(target: impl Into<String>) -> ClientConfig {
        ClientConfig {
            target: target.into(),
            path: default_path(),
            connections: default_connections(),
            requests: None,
            duration_ms: None,
            keep_alive: default_keep_alive(),
            gaps_ms: Vec::new(),
            rate: None,
            first_byte_delay_ms: 0,
            read_timeout_ms: 0,
            connect_timeout_ms: default_connect_timeout_ms(),
            source_port: None,
            tcp_user_timeout_ms: None,
            tcp_keepalive_idle_s: None,
            tcp_keepalive_interval_s: None,
            tcp_keepalive_count: None,
        }
    }

    /// Parses flags (without the program name), as `connlab-client` does.
    pub fn from_args<I, T>(args: I) -> Result<ClientConfig, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("connlab-client"))
            .chain(args.into_iter().map(Into::into));
        Ok(Cli::try_parse_from(argv)?.config)
    }

    /// The flags that make `connlab-client` run exactly this config.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        flag("target", self.target.clone());
        flag("path", self.path.clone());
        flag("connections", self.connections.to_string());
        if let Some(n) = self.requests {
            flag("requests", n.to_string());
        }
        if let Some(ms) = self.duration_ms {
            flag("duration-ms", ms.to_string());
        }
        flag("keep-alive", self.keep_alive.to_string());
        if !self.gaps_ms.is_empty() {
            let gaps: Vec<String> = self.gaps_ms.iter().map(u64::to_string).collect();
            flag("gaps-ms", gaps.join(","));
        }
        if let Some(rate) = self.rate {
            flag("rate", rate.to_string());
        }
        flag("first-byte-delay-ms", self.first_byte_delay_ms.to_string());
        flag("read-timeout-ms", self.read_timeout_ms.to_string());
        flag("connect-timeout-ms", self.connect_timeout_ms.to_string());
        if let Some(port) = self.source_port {
            flag("source-port", port.to_string());
        }
        if let Some(ms) = self.tcp_user_timeout_ms {
            flag("tcp-user-timeout-ms", ms.to_string());
        }
        if let Some(s) = self.tcp_keepalive_idle_s {
            flag("tcp-keepalive-idle-s", s.to_string());
        }
        if let Some(s) = self.tcp_keepalive_interval_s {
            flag("tcp-keepalive-interval-s", s.to_string());
        }
        if let Some(n) = self.tcp_keepalive_count {
            flag("tcp-keepalive-count", n.to_string());
        }
        args
    }

    /// Checks every knob without touching the network (target resolution
    /// happens when the run starts).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, problem: &str| {
            Err(ConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        match self.target.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return bad("target", "must be host:port"),
        }
        if !self.path.starts_with('/') {
            return bad("path", "must start with /");
        }
        if self.connections == 0 {
            return bad("connections", "must be at least 1");
        }
        if self.requests == Some(0) {
            return bad("requests", "must be at least 1");
        }
        if self.requests.is_none() && self.duration_ms.is_none() {
            return bad("requests", "or `duration_ms` must be set");
        }
        if self.duration_ms == Some(0) {
            return bad("duration_ms", "must be above 0");
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return bad("rate", "must be a positive number");
            }
            if !self.gaps_ms.is_empty() {
                return bad("rate", "and `gaps_ms` exclude each other");
            }
        }
        if self.connect_timeout_ms == 0 {
            return bad("connect_timeout_ms", "must be above 0");
        }
        if self.tcp_keepalive_idle_s == Some(0) {
            return bad("tcp_keepalive_idle_s", "must be above 0");
        }
        if self.tcp_keepalive_idle_s.is_none()
            && (self.tcp_keepalive_interval_s.is_some() || self.tcp_keepalive_count.is_some())
        {
            return bad(
                "tcp_keepalive_idle_s",
                "must be set to use keep-alive probes",
            );
        }
        Ok(())
    }

    fn connect_options(&self, target: SocketAddr) -> ConnectOptions {
        let any: IpAddr = match target {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let keepalive = self.tcp_keepalive_idle_s.map(|idle| {
            let mut k = socket2::TcpKeepalive::new().with_time(Duration::from_secs(idle));
            if let Some(s) = self.tcp_keepalive_interval_s {
                k = k.with_interval(Duration::from_secs(s));
            }
            if let Some(n) = self.tcp_keepalive_count {
                k = k.with_retries(n);
            }
            k
        });
        ConnectOptions {
            bind: self.source_port.map(|port| SocketAddr::new(any, port)),
            tcp_user_timeout: self.tcp_user_timeout_ms.map(Duration::from_millis),
            keepalive,
        }
    }
}

/// One request as the client saw it. Times are ms since the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub worker: u32,
    /// The request's number within its worker, from 0.
    pub seq: u64,
    /// When the worker began it (before connecting, when it had to).
    pub start_ms: f64,
    pub end_ms: f64,
    /// The response's status; `None` when there was no response.
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    /// The connection's local address; `None` when connect failed.
    pub local: Option<SocketAddr>,
    /// Sent on a connection that had already carried a request.
    pub reused: bool,
    /// The response's `x-connlab` header.
    pub tag: Option<String>,
    /// A library client's own error text for a failed request (reqwest's
    /// error with its causes, the Python exception, Node's `err.code`), as
    /// the service would log it; connlab-client writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_error: Option<String>,
}

impl Record {
    /// The class counted in [`Summary::classes`]: the status (`"200"`,
    /// `"503"`), or the error (`"reset"`, `"eof"`, `"timeout"`,
    /// `"connect_111"`, `"protocol"`, `"unfinished"`).
    pub fn class(&self) -> String {
        match (self.status, self.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(ErrorKind::Connect(errno))) => format!("connect_{errno}"),
            (None, Some(ErrorKind::Reset)) => "reset".into(),
            (None, Some(ErrorKind::Eof)) => "eof".into(),
            (None, Some(ErrorKind::Timeout)) => "timeout".into(),
            (None, Some(ErrorKind::Protocol)) => "protocol".into(),
            (None, Some(ErrorKind::Unfinished)) => "unfinished".into(),
            (None, None) => "unknown".into(),
        }
    }

    /// A response with a 2xx or 3xx status.
    pub fn is_ok(&self) -> bool {
        self.status.is_some_and(|s| (200..400).contains(&s))
    }

    /// `end_ms - start_ms`, to the µs the times are recorded in.
    pub fn latency_ms(&self) -> f64 {
        round_us(self.end_ms - self.start_ms)
    }
}

/// Latency percentiles (nearest rank), in ms; all 0 when `count` is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What a run amounts to, computed from its records alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    /// Requests answered 2xx/3xx.
    pub ok: u64,
    pub failed: u64,
    /// Requests per [`Record::class`].
    pub classes: BTreeMap<String, u64>,
    /// Requests per `x-connlab` value (requests without one are not counted).
    pub tags: BTreeMap<String, u64>,
    /// Connections opened (requests sent on a fresh connection).
    pub new_connections: u64,
    /// The last request's end.
    pub duration_ms: f64,
    /// OK requests per second: entry i counts ends in [i s, i+1 s); one entry
    /// per second up to the last request's end.
    pub throughput: Vec<u64>,
    /// Failed requests per second, the same way.
    pub failures: Vec<u64>,
    /// Over every request, failed ones included (a hung request is what
    /// moves p99 and max).
    pub latency_ms: Latency,
    /// Over OK requests only.
    pub ok_latency_ms: Latency,
}

/// Counts, per-second buckets and percentiles of a run's records.
pub fn summarize(records: &[Record]) -> Summary {
    let mut summary = Summary {
        requests: records.len() as u64,
        ..Summary::default()
    };
    let last_end = records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let seconds = if records.is_empty() {
        0
    } else {
        second_of(last_end) + 1
    };
    summary.duration_ms = last_end;
    summary.throughput = vec![0; seconds];
    summary.failures = vec![0; seconds];
    for record in records {
        *summary.classes.entry(record.class()).or_default() += 1;
        if let Some(tag) = &record.tag {
            *summary.tags.entry(tag.clone()).or_default() += 1;
        }
        if !record.reused && record.local.is_some() {
            summary.new_connections += 1;
        }
        let second = second_of(record.end_ms);
        if record.is_ok() {
            summary.ok += 1;
            summary.throughput[second] += 1;
        } else {
            summary.failed += 1;
            summary.failures[second] += 1;
        }
    }
    summary.latency_ms = latency(records.iter().map(Record::latency_ms).collect());
    summary.ok_latency_ms = latency(
        records
            .iter()
            .filter(|r| r.is_ok())
            .map(Record::latency_ms)
            .collect(),
    );
    summary
}

fn second_of(ms: f64) -> usize {
    // Records never end before the run started; a negative or NaN time from
    // a hand-edited file lands in second 0.
    (ms.max(0.0) / 1000.0).floor() as usize
}

fn latency(mut samples: Vec<f64>) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_by(f64::total_cmp);
    Latency {
        count: samples.len() as u64,
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: samples[samples.len() - 1],
        mean: round_us(samples.iter().sum::<f64>() / samples.len() as f64),
    }
}

/// Milliseconds rounded to the µs, so sums and differences print short.
fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Nearest-rank percentile of ascending `sorted` samples (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One line of `connlab-client`'s stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Request(Record),
    Summary(Summary),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LineRef<'a> {
    Request(&'a Record),
    Summary(&'a Summary),
}

/// `{"type":"request",...}` for stdout.
pub fn request_line(record: &Record) -> String {
    serde_json::to_string(&LineRef::Request(record)).unwrap_or_default()
}

/// `{"type":"summary",...}` for stdout.
pub fn summary_line(summary: &Summary) -> String {
    serde_json::to_string(&LineRef::Summary(summary)).unwrap_or_default()
}

/// What `connlab-client` printed, parsed back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub records: Vec<Record>,
    /// Missing when the client was killed before it finished.
    pub summary: Option<Summary>,
}

/// Parses `connlab-client`'s stdout; blank lines are skipped, anything else
/// that is not one of its lines is an error.
pub fn parse_output(stdout: &str) -> Result<Output, serde_json::Error> {
    let mut output = Output::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line)? {
            Line::Request(record) => output.records.push(record),
            Line::Summary(summary) => output.summary = Some(summary),
        }
    }
    Ok(output)
}

/// Runs the workload to its bound, calling `on_record` as each request ends
/// (in the calling thread), and returns every record in that order.
pub fn run(
    config: &ClientConfig,
    mut on_record: impl FnMut(&Record),
) -> Result<Vec<Record>, ClientError> {
    config.validate()?;
    let target = resolve(&config.target)?;
    let started = Instant::now();
    let plan = Arc::new(Plan {
        options: config.connect_options(target),
        request: request_bytes(config),
        config: config.clone(),
        target,
        started,
        deadline: started + config.duration_ms.map_or(MAX_RUN, Duration::from_millis),
    });
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..config.connections)
        .map(|worker| {
            let plan = Arc::clone(&plan);
            let tx = tx.clone();
            thread::spawn(move || plan.work(worker, &tx))
        })
        .collect();
    drop(tx);
    let mut records = Vec::new();
    for record in rx {
        on_record(&record);
        records.push(record);
    }
    let mut panicked = false;
    for worker in workers {
        panicked |= worker.join().is_err();
    }
    if panicked {
        return Err(ClientError::WorkerPanicked);
    }
    Ok(records)
}

fn resolve(target: &str) -> Result<SocketAddr, ClientError> {
    let error = |reason: String| ClientError::Resolve {
        target: target.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| error(e.to_string()))?
        .collect();
    // Prefer IPv4: the lab's networks are IPv4.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| error("no address".to_string()))
}

fn request_bytes(config: &ClientConfig) -> Vec<u8> {
    let connection = if config.keep_alive {
        ""
    } else {
        "connection: close\r\n"
    };
    format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: connlab-client\r\n{connection}\r\n",
        config.path, config.target
    )
    .into_bytes()
}

/// A run's fixed inputs, shared by its workers.
struct Plan {
    config: ClientConfig,
    target: SocketAddr,
    options: ConnectOptions,
    request: Vec<u8>,
    started: Instant,
    /// The run's bound: nothing starts later, nothing waits past it.
    deadline: Instant,
}

impl Plan {
    fn work(&self, worker: u32, records: &Sender<Record>) {
        let mut conn: Option<Conn> = None;
        let mut previous_end = self.started;
        let mut next_slot = 0;
        for seq in 0.. {
            if self.config.requests.is_some_and(|n| seq >= n) {
                return;
            }
            let due = match self.config.rate {
                Some(rate) => self.slot(rate, &mut next_slot, previous_end),
                None => self.after_gap(seq, previous_end),
            };
            if due >= self.deadline {
                return;
            }
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let (record, end) = self.request(worker, seq, &mut conn);
            previous_end = end;
            if records.send(record).is_err() {
                return;
            }
        }
    }

    /// With `rate`, requests start on a fixed schedule of slots 1/rate apart;
    /// a slot that passed while the previous request was still running is
    /// skipped, not made up with a burst.
    fn slot(&self, rate: f64, next_slot: &mut u64, previous_end: Instant) -> Instant {
        let elapsed = previous_end.saturating_duration_since(self.started);
        let first_free = (elapsed.as_secs_f64() * rate).ceil() as u64;
        let slot = (*next_slot).max(first_free);
        *next_slot = slot + 1;
        self.started + Duration::from_secs_f64(slot as f64 / rate)
    }

    /// Otherwise request `seq` starts its gap after the previous one ended.
    fn after_gap(&self, seq: u64, previous_end: Instant) -> Instant {
        let gaps = &self.config.gaps_ms;
        let gap = match gaps.len() {
            0 => 0,
            n => gaps[(seq % n as u64) as usize],
        };
        previous_end + Duration::from_millis(gap)
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// One request on the worker's connection (opening one if it has none);
    /// drops the connection when the request failed or it must not be reused.
    fn request(&self, worker: u32, seq: u64, slot: &mut Option<Conn>) -> (Record, Instant) {
        let start = Instant::now();
        let reused = slot.is_some();
        let mut record = Record {
            worker,
            seq,
            start_ms: self.ms(start),
            end_ms: 0.0,
            status: None,
            error: None,
            local: None,
            reused,
            tag: None,
            library_error: None,
        };
        let outcome = match slot.take() {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
        .and_then(|mut conn| {
            record.local = conn.local_addr();
            self.exchange(&mut conn).map(|r| (conn, r))
        });
        let end = Instant::now();
        record.end_ms = self.ms(end);
        match outcome {
            Ok((conn, response)) => {
                record.status = Some(response.status);
                record.tag = response.header(TAG_HEADER).map(str::to_string);
                let closing = response
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if self.config.keep_alive && !closing {
                    *slot = Some(conn);
                }
            }
            Err(error) => record.error = Some(error),
        }
        (record, end)
    }

    /// A new connection, after the first-byte delay.
    fn open(&self) -> Result<Conn, ErrorKind> {
        let timeout = Duration::from_millis(self.config.connect_timeout_ms).min(self.left());
        let conn = Conn::connect_with(self.target, timeout, &self.options)
            .map_err(|e| self.unfinished_if_cut(e))?;
        if self.config.first_byte_delay_ms > 0 {
            let delay = Duration::from_millis(self.config.first_byte_delay_ms);
            thread::sleep(delay.min(self.left()));
            if self.left().is_zero() {
                return Err(ErrorKind::Unfinished);
            }
        }
        Ok(conn)
    }

    /// Sends the request and reads the response, within the read timeout and
    /// the run's bound.
    fn exchange(&self, conn: &mut Conn) -> Result<Response, ErrorKind> {
        let sent = Instant::now();
        let own_deadline = (self.config.read_timeout_ms > 0).then(|| sent + self.read_timeout());
        let deadline = own_deadline.map_or(self.deadline, |d| d.min(self.deadline));
        conn.set_deadline(Some(deadline));
        let result = conn
            .send_raw(&self.request)
            .and_then(|()| conn.read_response());
        result.map_err(|e| match own_deadline {
            Some(own) if own <= self.deadline && e == ErrorKind::Timeout => e,
            _ => self.unfinished_if_cut(e),
        })
    }

    fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.config.read_timeout_ms)
    }

    /// A timeout that struck because the run ended is `Unfinished`.
    fn unfinished_if_cut(&self, error: ErrorKind) -> ErrorKind {
        let timed_out = matches!(
            error,
            ErrorKind::Timeout | ErrorKind::Connect(libc::ETIMEDOUT)
        );
        // Socket timeouts round up to the kernel's tick; allow a little slack.
        if timed_out && self.left() <= Duration::from_millis(2) {
            ErrorKind::Unfinished
        } else {
            error
        }
    }

    fn ms(&self, at: Instant) -> f64 {
        let us = at.saturating_duration_since(self.started).as_micros();
        us as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, start_ms: f64, end_ms: f64, status: Option<u16>) -> Record {
        Record {
            worker: 0,
            seq,
            start_ms,
            end_ms,
            status,
            error: None,
            local: Some("127.0.0.1:40000".parse().unwrap()),
            reused: seq > 0,
            tag: None,
            library_error: None,
        }
    }

    fn failed(seq: u64, start_ms: f64, end_ms: f64, error: ErrorKind) -> Record {
        Record {
            error: Some(error),
            ..record(seq, start_ms, end_ms, None)
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&samples, 100.0), 100.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[7.0], 0.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summary_counts_classes_buckets_and_latency() {
        let mut tagged = record(0, 0.0, 10.0, Some(200));
        tagged.tag = Some("UC".into());
        let records = vec![
            tagged,
            record(1, 100.0, 120.0, Some(200)),
            record(2, 900.0, 1_100.0, Some(503)),
            failed(3, 1_200.0, 1_201.5, ErrorKind::Reset),
            failed(4, 1_300.0, 1_300.25, ErrorKind::Connect(111)),
            record(5, 2_500.0, 2_530.0, Some(204)),
            failed(6, 2_600.0, 3_600.0, ErrorKind::Unfinished),
        ];
        let s = summarize(&records);
        assert_eq!((s.requests, s.ok, s.failed), (7, 3, 4));
        let classes: Vec<(&str, u64)> = s.classes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            classes,
            [
                ("200", 2),
                ("204", 1),
                ("503", 1),
                ("connect_111", 1),
                ("reset", 1),
                ("unfinished", 1)
            ]
        );
        assert_eq!(s.tags.get("UC"), Some(&1));
        // Ends at 10, 120 | 1100, 1201.5, 1300.25 | 2530 | 3600.
        assert_eq!(s.throughput, [2, 0, 1, 0]);
        assert_eq!(s.failures, [0, 3, 0, 1]);
        assert_eq!(s.duration_ms, 3_600.0);
        // Latencies sorted: 0.25 1.5 10 20 30 200 1000.
        assert_eq!(s.latency_ms.count, 7);
        assert_eq!(s.latency_ms.p50, 20.0);
        assert_eq!(s.latency_ms.p99, 1_000.0);
        assert_eq!(s.latency_ms.max, 1_000.0);
        assert_eq!(s.latency_ms.mean, 180.25);
        assert_eq!(
            s.ok_latency_ms,
            Latency {
                count: 3,
                p50: 20.0,
                p99: 30.0,
                max: 30.0,
                mean: 20.0
            }
        );
    }

    #[test]
    fn new_connections_skip_reuse_and_connect_failures() {
        let mut refused = failed(1, 0.0, 1.0, ErrorKind::Connect(111));
        refused.local = None;
        let records = [
            record(0, 0.0, 1.0, Some(200)),
            refused,
            record(2, 2.0, 3.0, Some(200)),
        ];
        assert_eq!(summarize(&records).new_connections, 1);
    }

    #[test]
    fn empty_run_summarizes_to_zeros() {
        let s = summarize(&[]);
        assert_eq!(s, Summary::default());
        assert!(s.throughput.is_empty());
    }

    #[test]
    fn lines_round_trip_through_parse_output() {
        let mut records = vec![
            record(0, 0.5, 1.25, Some(200)),
            failed(1, 2.0, 3.0, ErrorKind::Connect(99)),
            failed(2, 4.0, 5.0, ErrorKind::Eof),
        ];
        records[0].tag = Some("keepalive_race".into());
        let summary = summarize(&records);
        let mut stdout: String = records.iter().map(|r| request_line(r) + "\n").collect();
        stdout += &summary_line(&summary);
        stdout += "\n\n";
        let output = parse_output(&stdout).unwrap();
        assert_eq!(output.records, records);
        assert_eq!(output.summary, Some(summary));
        assert!(parse_output("{\"type\":\"other\"}").is_err());
    }

    #[test]
    fn request_line_has_the_documented_shape() {
        let line = request_line(&failed(3, 1.0, 2.5, ErrorKind::Connect(111)));
        assert_eq!(
            line,
            r#"{"type":"request","worker":0,"seq":3,"start_ms":1.0,"end_ms":2.5,"status":null,"error":{"kind":"connect","errno":111},"local":"127.0.0.1:40000","reused":true,"tag":null}"#
        );
        let ok = request_line(&record(0, 0.0, 1.0, Some(503)));
        assert!(ok.contains(r#""status":503,"error":null"#), "{ok}");
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let config: ClientConfig = serde_json::from_str(
            r#"{"target": "envoy:10000", "requests": 2, "gaps_ms": [0, 5900]}"#,
        )
        .unwrap();
        let mut expected = ClientConfig::new("envoy:10000");
        expected.requests = Some(2);
        expected.gaps_ms = vec![0, 5900];
        assert_eq!(config, expected);
        let unknown = serde_json::from_str::<ClientConfig>(r#"{"target": "a:1", "gap_ms": [1]}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown field `gap_ms`"), "{unknown}");
        assert!(serde_json::from_str::<ClientConfig>(r#"{"requests": 1}"#).is_err());
    }

    #[test]
    fn config_reads_from_a_scenario_toml_table() {
        #[derive(Deserialize)]
        struct Variant {
            client: ClientConfig,
        }
        let variant: Variant = toml::from_str(
            "client = { target = \"envoy:10000\", requests = 6, gaps_ms = [0, 5900], rate = 2 }",
        )
        .unwrap();
        assert_eq!(variant.client.gaps_ms, [0, 5900]);
        assert_eq!(variant.client.rate, Some(2.0));
        let typo = toml::from_str::<Variant>("client = { target = \"a:1\", request = 6 }")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(typo.contains("unknown field `request`"), "{typo}");
    }

    #[test]
    fn to_args_round_trips_through_the_cli() {
        let mut config = ClientConfig::new("envoy:10000");
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
        config.path = "/slow?x=1".into();
        config.connections = 3;
        config.requests = Some(4);
        config.duration_ms = Some(20_000);
        config.keep_alive = false;
        config.gaps_ms = vec![0, 5900];
        config.first_byte_delay_ms = 150;
        config.read_timeout_ms = 1000;
        config.connect_timeout_ms = 250;
        config.source_port = Some(40_000);
        config.tcp_user_timeout_ms = Some(3000);
        config.tcp_keepalive_idle_s = Some(1);
        config.tcp_keepalive_interval_s = Some(1);
        config.tcp_keepalive_count = Some(3);
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
        config.gaps_ms.clear();
        config.rate = Some(2.5);
        assert_eq!(ClientConfig::from_args(config.to_args()).unwrap(), config);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let field = |edit: fn(&mut ClientConfig)| {
            let mut config = ClientConfig::new("backend:8080");
            config.requests = Some(1);
            edit(&mut config);
            config.validate().err().map(|e| e.field)
        };
        assert_eq!(field(|_| {}), None);
        assert_eq!(field(|c| c.target = "backend".into()), Some("target"));
        assert_eq!(field(|c| c.target = ":80".into()), Some("target"));
        assert_eq!(field(|c| c.path = "x".into()), Some("path"));
        assert_eq!(field(|c| c.connections = 0), Some("connections"));
        assert_eq!(field(|c| c.requests = None), Some("requests"));
        assert_eq!(field(|c| c.requests = Some(0)), Some("requests"));
        assert_eq!(field(|c| c.duration_ms = Some(0)), Some("duration_ms"));
        assert_eq!(field(|c| c.rate = Some(0.0)), Some("rate"));
        assert_eq!(
            field(|c| {
                c.rate = Some(1.0);
                c.gaps_ms = vec![1];
            }),
            Some("rate")
        );
        assert_eq!(
            field(|c| c.tcp_keepalive_count = Some(3)),
            Some("tcp_keepalive_idle_s")
        );
        let mut bounded_by_time = ClientConfig::new("[::1]:80");
        bounded_by_time.duration_ms = Some(100);
        assert_eq!(bounded_by_time.validate(), Ok(()));
    }
}
