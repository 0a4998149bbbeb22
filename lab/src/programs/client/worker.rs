//! The client's worker loop: one std thread per connection (exact timing
//! matters more than throughput here), each sending its requests on the
//! plan's schedule and recording one [`Record`] per request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::plan::{ClientConfig, ConfigError};
use super::record::Record;
use crate::programs::http1::{Conn, ConnectOptions, ErrorKind, Response};

/// Without `duration_ms` a run still ends after this long, so a request that
/// would wait forever (no read timeout, a dead peer) cannot hang the client.
pub const MAX_RUN: Duration = Duration::from_secs(600);

/// The response header whose value a record carries as `tag`.
pub const TAG_HEADER: &str = "x-connlab";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot resolve target `{target}`: {reason}")]
    Resolve { target: String, reason: String },
    #[error("a client worker panicked")]
    WorkerPanicked,
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
        options: connect_options(config, target),
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

/// The socket options the config asks for, for a connection to `target`.
fn connect_options(config: &ClientConfig, target: SocketAddr) -> ConnectOptions {
    let any: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let keepalive = config.tcp_keepalive_idle_s.map(|idle| {
        let mut k = socket2::TcpKeepalive::new().with_time(Duration::from_secs(idle));
        if let Some(s) = config.tcp_keepalive_interval_s {
            k = k.with_interval(Duration::from_secs(s));
        }
        if let Some(n) = config.tcp_keepalive_count {
            k = k.with_retries(n);
        }
        k
    });
    ConnectOptions {
        bind: config.source_port.map(|port| SocketAddr::new(any, port)),
        tcp_user_timeout: config.tcp_user_timeout_ms.map(Duration::from_millis),
        keepalive,
    }
}
