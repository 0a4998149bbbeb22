//! Faults as data (`[[variants.faults]]`): what to do to which node, when,
//! and the steps it takes. `run::faults` runs the steps in a live topology;
//! `connlab compose` writes them out as `docker-compose` commands.

use std::time::Duration;

use serde::Deserialize;

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

    /// What injecting it takes, step by step: the lab runs these (`inject`)
    /// and `connlab compose` writes them out as `docker-compose` commands.
    pub fn steps(&self) -> Vec<Step> {
        let exec = |target: &str, cmd: &[&str], detach: bool| Step::Exec {
            target: target.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            detach,
        };
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
                let delayer = [
                    "connlab-delay",
                    "--queue",
                    QUEUE,
                    "--delay-ms",
                    &delay,
                    "--loss-percent",
                    &loss,
                ];
                let sport = sport.to_string();
                let mut rule = vec!["iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", &sport];
                if let Some(flags) = tcp_flags {
                    rule.extend(["--tcp-flags", flags.iptables(), flags.iptables()]);
                }
                rule.extend(["-j", "NFQUEUE", "--queue-num", QUEUE]);
                vec![
                    exec(target, &delayer, true),
                    // The delayer binds the queue before the rule sends
                    // packets to it; until then a queued packet would be
                    // dropped.
                    Step::WaitUntil {
                        target: target.clone(),
                        probe: format!(
                            "grep -qE '^ *{QUEUE} ' /proc/net/netfilter/nfnetlink_queue"
                        ),
                    },
                    exec(target, &rule, false),
                ]
            }
            Fault::Blackhole { target, .. } => ["INPUT", "OUTPUT"]
                .iter()
                .map(|chain| {
                    let iface = if *chain == "INPUT" { "-i" } else { "-o" };
                    exec(
                        target,
                        &["iptables", "-A", chain, "!", iface, "lo", "-j", "DROP"],
                        false,
                    )
                })
                .collect(),
            Fault::Iptables { target, rules, .. } => vec![Step::Rules {
                target: target.clone(),
                rules: rules.clone(),
            }],
            Fault::Pause { target, .. } => vec![Step::Pause(target.clone())],
            Fault::Kill { target, .. } => vec![Step::Kill(target.clone())],
        }
    }
}

/// One step of injecting a fault, in a node's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run a command (to completion, or `detach`ed: it runs on beside the
    /// topology).
    Exec {
        target: String,
        cmd: Vec<String>,
        detach: bool,
    },
    /// Wait until a shell snippet succeeds.
    WaitUntil { target: String, probe: String },
    /// Run iptables rules with placeholders (`{dev:NET}`, `{ip:NODE}`),
    /// filled in where they run (see `roles::router`).
    Rules { target: String, rules: Vec<String> },
    /// Freeze the container's processes (docker pause).
    Pause(String),
    /// Stop the container abruptly (docker kill).
    Kill(String),
}
