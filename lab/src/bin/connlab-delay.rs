//! `connlab-delay`: a userspace packet delayer on an NFQUEUE, for kernels
//! without `tc netem` (DESIGN §6). Every packet iptables sends to the queue is
//! held `--delay-ms` and then accepted, in arrival order; `--loss-percent` of
//! them are dropped instead, chosen by a seeded PRNG so runs repeat. Both ends
//! keep real kernel TCP: only the wire gets slower.
//!
//! Run it in the target's network namespace (the container needs NET_ADMIN):
//!
//! ```text
//! iptables -A OUTPUT -p tcp --sport 8080 -j NFQUEUE --queue-num 0 --queue-bypass
//! connlab-delay --queue 0 --delay-ms 200 &
//! ```
//!
//! It prints `connlab-delay: ready ...` on stderr once bound to the queue, and
//! on SIGTERM/SIGINT releases what it holds, prints a summary and exits 0.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use nfq::{Message, Queue, Verdict};

#[derive(Parser)]
#[command(about = "Hold every packet of an NFQUEUE for a fixed time (and drop some)")]
struct Args {
    /// NFQUEUE number (iptables `--queue-num`).
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// How long each packet is held before it is accepted.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Percentage of packets dropped instead of accepted (0-100).
    #[arg(long, default_value_t = 0.0)]
    loss_percent: f64,
    /// Seed of the PRNG that picks the dropped packets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Log one line per packet (ports, TCP flags, verdict) on stderr.
    #[arg(long)]
    verbose: bool,
}

/// Set by the signal handler; the main loop polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How often the loop looks for new packets while idle or waiting. The crate
/// exposes no fd to poll, so the socket is read non-blocking on this tick; it
/// bounds the delay's error (1 ms against the hundreds the lab uses).
const TICK: Duration = Duration::from_millis(1);

/// Bytes of each packet copied to userspace: enough for IPv4 + TCP headers.
const COPY_RANGE: u16 = 80;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=100.0).contains(&args.loss_percent),
        "--loss-percent must be within 0..=100, got {}",
        args.loss_percent
    );
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }

    let mut queue = Queue::open().context("open netlink socket (needs CAP_NET_ADMIN)")?;
    queue
        .bind(args.queue)
        .with_context(|| format!("bind NFQUEUE {}", args.queue))?;
    queue.set_copy_range(args.queue, COPY_RANGE)?;
    queue.set_queue_max_len(args.queue, 8192)?;
    queue.set_nonblocking(true);
    eprintln!(
        "connlab-delay: ready queue={} delay_ms={} loss_percent={} seed={}",
        args.queue, args.delay_ms, args.loss_percent, args.seed
    );

    let delay = Duration::from_millis(args.delay_ms);
    let mut loss = Loss::new(args.loss_percent, args.seed);
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let (mut seen, mut dropped) = (0u64, 0u64);

    while !STOP.load(Ordering::SeqCst) {
        // 1. Take everything the kernel has queued; stamp its release time.
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    seen += 1;
                    if loss.drop_next() {
                        dropped += 1;
                        log(args.verbose, &msg, "drop");
                        msg.set_verdict(Verdict::Drop);
                        queue.verdict(msg)?;
                    } else {
                        held.push_back((Instant::now() + delay, msg));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("read NFQUEUE"),
            }
        }
        // 2. Release, in order, every packet whose time has come. All share
        //    one delay, so the queue is sorted by release time.
        let now = Instant::now();
        while held.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, msg)) = held.pop_front() {
                accept(&mut queue, msg, args.verbose)?;
            }
        }
        // 3. Sleep until the next release or the next tick, whichever is first.
        let next = held
            .front()
            .map_or(TICK, |(at, _)| at.saturating_duration_since(now));
        std::thread::sleep(next.min(TICK));
    }

    // Stopping: let through what is held rather than silently dropping it.
    let flushed = held.len();
    for (_, msg) in held {
        accept(&mut queue, msg, args.verbose)?;
    }
    eprintln!("connlab-delay: stopped packets={seen} dropped={dropped} flushed_at_exit={flushed}");
    Ok(())
}

fn accept(queue: &mut Queue, mut msg: Message, verbose: bool) -> anyhow::Result<()> {
    log(verbose, &msg, "accept");
    msg.set_verdict(Verdict::Accept);
    queue.verdict(msg).context("send verdict")
}

fn log(verbose: bool, msg: &Message, verdict: &str) {
    if verbose {
        eprintln!("connlab-delay: {verdict} {}", describe(msg.get_payload()));
    }
}

/// `sport>dport [SFRPA.]` for an IPv4 TCP packet, else its length.
fn describe(packet: &[u8]) -> String {
    let tcp = packet
        .first()
        .filter(|b| *b >> 4 == 4 && packet.get(9) == Some(&6))
        .map(|b| usize::from(b & 0x0f) * 4)
        .and_then(|ihl| packet.get(ihl..ihl + 14));
    let Some(tcp) = tcp else {
        return format!("len={}", packet.len());
    };
    let port = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
    let flags: String = [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, 'A'),
    ]
    .iter()
    .filter(|(bit, _)| tcp[13] & bit != 0)
    .map(|(_, c)| *c)
    .collect();
    format!("{}>{} [{flags}]", port(0), port(2))
}

/// Seeded drop decisions: the same seed drops the same packet numbers.
struct Loss {
    /// Drop when the next 53-bit draw is below this threshold.
    threshold: u64,
    state: u64,
}

impl Loss {
    fn new(percent: f64, seed: u64) -> Self {
        Loss {
            threshold: (percent / 100.0 * (1u64 << 53) as f64) as u64,
            state: seed,
        }
    }

    /// splitmix64, top 53 bits.
    fn drop_next(&mut self) -> bool {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drops(percent: f64, seed: u64, n: usize) -> Vec<bool> {
        let mut loss = Loss::new(percent, seed);
        (0..n).map(|_| loss.drop_next()).collect()
    }

    #[test]
    fn loss_is_deterministic_and_near_the_rate() {
        assert_eq!(drops(10.0, 7, 1000), drops(10.0, 7, 1000));
        let n = drops(10.0, 7, 10_000).iter().filter(|d| **d).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(drops(0.0, 7, 1000).iter().all(|d| !d));
        assert!(drops(100.0, 7, 1000).iter().all(|d| *d));
    }

    #[test]
    fn describes_tcp_flags_and_ports() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[20..22].copy_from_slice(&8080u16.to_be_bytes());
        p[22..24].copy_from_slice(&41000u16.to_be_bytes());
        p[33] = 0x11; // FIN + ACK
        assert_eq!(describe(&p), "8080>41000 [FA]");
        assert_eq!(describe(&[1, 2, 3]), "len=3");
    }
}
