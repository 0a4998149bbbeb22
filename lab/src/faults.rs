//! The nemesis: faults injected into a running topology, each an action in
//! the scenario's schedule. They act inside the target's own network
//! namespace (the container has NET_ADMIN), so both ends keep real kernel
//! TCP behaviour.

use std::time::Duration;

use serde::Deserialize;

use crate::runtime::{Lab, LabError};

/// NFQUEUE number the delayer serves.
const QUEUE: &str = "0";

/// TCP flags a fault matches, as iptables spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TcpFlags {
    Syn,
    Fin,
    Rst,
}

impl TcpFlags {
    fn iptables(self) -> &'static str {
        match self {
            TcpFlags::Syn => "SYN",
            TcpFlags::Fin => "FIN",
            TcpFlags::Rst => "RST",
        }
    }
}

/// One scheduled fault (`[[variants.faults]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Hold every packet the target sends from `sport` for `delay_ms` (and
    /// drop `loss_percent` of them): connlab's NFQUEUE delayer, since this
    /// kernel has no netem. With `tcp_flags` (e.g. "FIN"), only packets
    /// carrying those flags are held.
    Delay {
        target: String,
        sport: u16,
        delay_ms: u64,
        #[serde(default)]
        tcp_flags: Option<TcpFlags>,
        #[serde(default)]
        loss_percent: u8,
        #[serde(default)]
        at_ms: u64,
    },
    /// The target goes silent: every packet in or out is dropped, no RST, no
    /// ICMP — a node that lost power (not `ip link down`, which answers).
    Blackhole {
        target: String,
        #[serde(default)]
        at_ms: u64,
    },
    /// Run iptables rules in the target, in order (`{dev:NET}` and
    /// `{ip:NODE}` as in a router's rules): a router that changes its mind
    /// at `at_ms`, e.g. a VIP that stops sending new connections to a node
    /// (ECMP withdrawing its route) while conntrack keeps the old ones.
    Iptables {
        target: String,
        rules: Vec<String>,
        #[serde(default)]
        at_ms: u64,
    },
    /// Freeze the target's processes (docker pause).
    Pause {
        target: String,
        #[serde(default)]
        at_ms: u64,
    },
    /// Kill the target's main process.
    Kill {
        target: String,
        #[serde(default)]
        at_ms: u64,
    },
}

impl Fault {
    pub fn target(&self) -> &str {
        match self {
            Fault::Delay { target, .. }
            | Fault::Blackhole { target, .. }
            | Fault::Iptables { target, .. }
            | Fault::Pause { target, .. }
            | Fault::Kill { target, .. } => target,
        }
    }

    /// When, from the start of the workload.
    pub fn at(&self) -> Duration {
        let ms = match self {
            Fault::Delay { at_ms, .. }
            | Fault::Blackhole { at_ms, .. }
            | Fault::Iptables { at_ms, .. }
            | Fault::Pause { at_ms, .. }
            | Fault::Kill { at_ms, .. } => *at_ms,
        };
        Duration::from_millis(ms)
    }

    pub async fn inject(&self, lab: &Lab) -> Result<(), LabError> {
        match self {
            Fault::Delay {
                target,
                sport,
                delay_ms,
                tcp_flags,
                loss_percent,
                ..
            } => {
                let (delay, loss) = (delay_ms.to_string(), loss_percent.to_string());
                lab.exec_detached(
                    target,
                    &[
                        "connlab-delay",
                        "--queue",
                        QUEUE,
                        "--delay-ms",
                        &delay,
                        "--loss-percent",
                        &loss,
                    ],
                )
                .await?;
                // The delayer binds the queue before the rule sends packets
                // to it; until then a queued packet would be dropped.
                lab.wait_until(
                    target,
                    &format!("grep -qE '^ *{QUEUE} ' /proc/net/netfilter/nfnetlink_queue"),
                    Duration::from_secs(10),
                )
                .await?;
                let sport = sport.to_string();
                let mut rule = vec!["iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", &sport];
                if let Some(flags) = tcp_flags {
                    rule.extend(["--tcp-flags", flags.iptables(), flags.iptables()]);
                }
                rule.extend(["-j", "NFQUEUE", "--queue-num", QUEUE]);
                lab.exec_ok(target, &rule).await?;
            }
            Fault::Blackhole { target, .. } => {
                // Both directions in one exec: the node goes dark at once.
                lab.exec_ok(
                    target,
                    &[
                        "sh",
                        "-c",
                        "iptables -A INPUT ! -i lo -j DROP && iptables -A OUTPUT ! -o lo -j DROP",
                    ],
                )
                .await?;
            }
            Fault::Iptables { target, rules, .. } => {
                crate::roles::router::run_rules(lab, target, rules).await?;
            }
            Fault::Pause { target, .. } => lab.pause(target).await?,
            Fault::Kill { target, .. } => lab.kill(target).await?,
        }
        Ok(())
    }
}

/// Injects the faults in time order; `at` 0 faults before the workload
/// starts is the caller's choice (see `run`).
pub async fn run_schedule(lab: &Lab, faults: &[&Fault]) -> Result<(), LabError> {
    let start = tokio::time::Instant::now();
    for fault in faults {
        tokio::time::sleep_until(start + fault.at()).await;
        fault.inject(lab).await?;
    }
    Ok(())
}
