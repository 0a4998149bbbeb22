//! TCP-level signatures of the failure catalogue in a capture:
//! - `snat-timewait`: a SYN on a 4-tuple the server still holds in
//!   TIME_WAIT, answered by a bare ACK with the old connection's numbers
//!   instead of a SYN-ACK (seed 003, lines 11-16);
//! - `keepalive-race`: a request written on a reused connection the server
//!   had closed (it sent FIN), answered by RST before any response (seed 001);
//! - `dead-peer`: SYNs or data retransmitted with no answer at all (seed 002's
//!   node that lost power).
//!
//! Each check reads one conversation and names its nearest look-alikes it
//! must not match in its tests.

use std::net::SocketAddr;

use serde::Serialize;

use crate::evidence::packet_sequence::{time_wait_reuses, ReuseResult};
use crate::evidence::pcap::{Capture, Conversation, Segment};

/// Retransmissions of the same SYN or data before a peer counts as dead.
pub const DEAD_PEER_RETRANSMITS: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "signature", rename_all = "kebab-case")]
pub enum Finding {
    SnatTimewait {
        client: SocketAddr,
        server: SocketAddr,
        /// SYNs answered by an old-sequence ACK (challenge ACKs).
        syns: usize,
        /// The `ack` the server answered with (the old connection's).
        old_ack: u32,
        /// The new SYN's sequence number.
        syn_seq: u32,
        /// ms from the old connection's last FIN to the first such SYN
        /// (`None`: the capture began after it).
        after_close_ms: Option<u64>,
        /// The client gave up with a RST.
        ended_in_rst: bool,
        first_ns: u64,
    },
    KeepaliveRace {
        client: SocketAddr,
        server: SocketAddr,
        /// How long the connection sat idle before the request.
        idle_ms: u64,
        /// How long after its last response the server sent FIN: its
        /// keep-alive timeout.
        server_closed_after_ms: Option<u64>,
        first_ns: u64,
    },
    DeadPeer {
        client: SocketAddr,
        server: SocketAddr,
        /// `syn` (connect never answered) or `data` (an open connection's
        /// data never acknowledged).
        what: &'static str,
        transmissions: usize,
        /// ms from the first transmission to the last.
        span_ms: u64,
        first_ns: u64,
    },
}

impl Finding {
    pub fn name(&self) -> &'static str {
        match self {
            Finding::SnatTimewait { .. } => "snat-timewait",
            Finding::KeepaliveRace { .. } => "keepalive-race",
            Finding::DeadPeer { .. } => "dead-peer",
        }
    }
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// Every finding in a capture, in conversation order.
pub fn findings(capture: &Capture) -> Vec<Finding> {
    capture
        .conversations()
        .iter()
        .flat_map(|c| {
            let mut found = Vec::new();
            found.extend(snat_timewait(c));
            found.extend(keepalive_race(c));
            found.extend(dead_peer(c));
            found
        })
        .collect()
}

/// A client SYN on a 4-tuple the server still holds in TIME_WAIT, answered
/// by a bare ACK with that connection's numbers instead of a SYN-ACK (RFC
/// 793's challenge; Linux tcp_timewait_state_process): the first such SYN
/// of `packet_sequence::time_wait_reuses`, which also finds it in a capture
/// that began after the close.
pub fn snat_timewait(c: &Conversation) -> Option<Finding> {
    let reuses = time_wait_reuses(c);
    let first = reuses.iter().find(|r| r.challenge_acks > 0)?;
    Some(Finding::SnatTimewait {
        client: c.client,
        server: c.server,
        syns: reuses.iter().map(|r| r.challenge_acks as usize).sum(),
        old_ack: first.old_rcv_nxt,
        syn_seq: first.isn,
        after_close_ms: first.after_close_ms,
        ended_in_rst: matches!(first.result, ReuseResult::Reset | ReuseResult::Assassinated),
        first_ns: first.t_ns,
    })
}

/// A server RST that answers client data (the client's last segment before
/// it carries a request) with no server data since that request, on a
/// connection that had carried an earlier response, where the server sent
/// FIN (before or just after the request: a capture on the server's side
/// may show its delayed FIN after). A RST without a FIN (a crash, an abort)
/// or on a first request is not this race.
pub fn keepalive_race(c: &Conversation) -> Option<Finding> {
    let s = &c.segments;
    for (i, rst) in s.iter().enumerate() {
        if c.from_client(rst) || !rst.flags.rst() {
            continue;
        }
        // This connection: from its last SYN up to the RST.
        let start = s[..i].iter().rposition(|x| x.flags.syn()).unwrap_or(0);
        let conn = &s[start..=i];
        let Some(req_at) = conn.iter().rposition(|x| c.from_client(x) && x.len > 0) else {
            continue;
        };
        let request = conn[req_at];
        let answered = conn[req_at..]
            .iter()
            .any(|x| !c.from_client(x) && x.len > 0);
        let client_closed = conn[..req_at]
            .iter()
            .any(|x| c.from_client(x) && x.flags.fin());
        if answered || client_closed {
            continue;
        }
        let Some(last_response) = conn[..req_at]
            .iter()
            .rev()
            .find(|x| !c.from_client(x) && x.len > 0)
        else {
            continue; // the first request on this connection
        };
        let fin = s[start..]
            .iter()
            .take_while(|x| !(x.flags.syn() && x.t_ns > rst.t_ns))
            .find(|x| !c.from_client(x) && x.flags.fin());
        let Some(fin) = fin else { continue };
        return Some(Finding::KeepaliveRace {
            client: c.client,
            server: c.server,
            idle_ms: ms(request.t_ns.saturating_sub(last_response.t_ns)),
            server_closed_after_ms: (fin.t_ns >= last_response.t_ns)
                .then(|| ms(fin.t_ns - last_response.t_ns)),
            first_ns: request.t_ns,
        });
    }
    None
}

/// The same SYN (or the same data) sent `DEAD_PEER_RETRANSMITS` + 1 times
/// or more with nothing at all from the other side after the first one. A
/// SYN answered late (SYN-ACK after a retransmit) or by old ACKs
/// (TIME_WAIT) is not a dead peer.
pub fn dead_peer(c: &Conversation) -> Option<Finding> {
    let s = &c.segments;
    for (i, first) in s.iter().enumerate() {
        let is_syn = first.flags.syn() && !first.flags.ack();
        if !c.from_client(first) || !(is_syn || first.len > 0) {
            continue;
        }
        let rest = &s[i..];
        let same: Vec<&Segment> = rest
            .iter()
            .filter(|x| {
                c.from_client(x)
                    && x.seq == first.seq
                    && x.flags == first.flags
                    && x.len == first.len
            })
            .collect();
        let peer_spoke = rest.iter().any(|x| !c.from_client(x));
        if same.len() > DEAD_PEER_RETRANSMITS && !peer_spoke {
            let last = same.last().map_or(first.t_ns, |x| x.t_ns);
            return Some(Finding::DeadPeer {
                client: c.client,
                server: c.server,
                what: if is_syn { "syn" } else { "data" },
                transmissions: same.len(),
                // A capture's clock can step back (merged or damaged files).
                span_ms: ms(last.saturating_sub(first.t_ns)),
                first_ns: first.t_ns,
            });
        }
    }
    None
}

/// What each signature means, its fix, and its scenario.
pub fn meaning(name: &str) -> (&'static str, &'static str, &'static str) {
    match name {
        "snat-timewait" => (
            "a new connection reused a 4-tuple the server still holds in TIME_WAIT (SNAT or a \
             pinned source port) with a sequence number below the old one, so the server answered \
             its SYNs with the old connection's ACK and the client gave up",
            "keep connections persistent (fewer closes, fewer TIME_WAITs); have the client side \
             close first; spread SNAT over more ports; keep TCP timestamps on (PAWS lets Linux \
             accept the SYN)",
            "snat-timewait",
        ),
        "keepalive-race" => (
            "a request was written on a reused connection the server had just closed for being \
             idle; its kernel answered with RST (Envoy: 503 UC)",
            "close idle upstream connections before the server does (Envoy cluster idle_timeout \
             below the server's keep-alive timeout) or raise the server's",
            "keepalive-race",
        ),
        _ => (
            "a peer stopped answering: SYNs or data retransmitted with no reply (a node that lost \
             power, a blackholed route)",
            "bound the wait: connect_timeout, per-try timeouts, TCP keep-alive or TCP_USER_TIMEOUT",
            "half-open",
        ),
    }
}

#[cfg(test)]
mod tests;
