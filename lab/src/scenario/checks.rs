//! Checks as data: what must hold in a run's evidence for "reproduced" or
//! "fixed". Each check measures one number in the evidence and compares it:
//!
//! ```toml
//! reproduced = [
//!   { diagnosis = "keepalive_race", at = "envoy" },                 # count >= 1
//!   { stat = "cluster.backend.upstream_cx_destroy_remote_with_active_rq", at = "envoy", value = ">= 1" },
//!   { client = "503", count = 3 },
//!   { library_error = "connection reset", count = 3 },   # a library client's own text
//!   { access_log = "503 UC", at = "envoy", count = ">= 1" },
//!   { packets = "challenge_acks", at = "server", count = 3 },      # needs `capture`
//!   { timeline = "recovery_s", value = "never" },
//! ]
//! ```
//!
//! Without `count` / `value`, a check means "at least once".

use std::fmt;

use serde::Deserialize;

use crate::evidence::packet_sequence::{ReuseCounts, ISN_POSITIONS, RESULTS};
use crate::evidence::timeline::{self, NEVER};

/// One check: a measure of the evidence and the comparison it must pass.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawCheck")]
pub struct Check {
    pub measure: Measure,
    /// The node it looks at (Envoy checks need one; client checks may name
    /// one client of several).
    pub at: Option<String>,
    pub expect: Comparison,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Requests and connections the filter diagnosed with this code (`http`
    /// and `conn` events); `*` = any diagnosis.
    Diagnosis(String),
    /// An Envoy counter or gauge.
    Stat(String),
    /// Client requests of a class: a status (`503`), `reset`, `eof`,
    /// `timeout`, `connect_<errno>`, `protocol`, `unfinished`; or `ok`
    /// (2xx/3xx), `failed` (anything else), `*` (all).
    Client(String),
    /// Client requests whose library error text (`Record::library_error`:
    /// reqwest's cause chain, the Python exception, Node's `err.code`)
    /// contains this, case-sensitively.
    LibraryError(String),
    /// Envoy access-log entries matching `code flags details`, each word a
    /// field in that order (`*` = any; fewer words = the rest any).
    AccessLog(String),
    /// A count from the capture at a node (`capture`), over the connections
    /// it served (`packet_sequence::ReuseCounts`): `server_closed_first`,
    /// `challenge_acks`, `reuses` (SYNs that met its TIME_WAIT), or one kind
    /// of reuse, ISN position / result: `below/reset`, `above/accepted`,
    /// `below/assassinated`, `below/unanswered`, ...
    Packets(String),
    /// Conversations (one 4-tuple, every connection on it) the node served
    /// whose segments' flags are exactly this line, tcpdump's flags with `>`
    /// from the peer and `<` from the node: `">S <S. >. >P. <. <P. <F. ..."`.
    Conversation(String),
    /// A figure of the client's timeline around the variant's first
    /// scheduled fault (`timeline::FIGURES`): time to recover,
    /// throughput dip, a phase's latency or success. Compared as `value`,
    /// rounded to an integer; a recovery that never came is `never`.
    Timeline(String),
}

impl Measure {
    /// Whether it reads an Envoy's evidence (and so needs `at`).
    pub fn at_envoy(&self) -> bool {
        matches!(
            self,
            Measure::Diagnosis(_) | Measure::Stat(_) | Measure::AccessLog(_)
        )
    }

    /// Whether it reads a node's capture (and so needs `at`).
    pub fn at_capture(&self) -> bool {
        matches!(self, Measure::Packets(_) | Measure::Conversation(_))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.measure {
            Measure::Diagnosis(code) => write!(f, "diagnosis {code}")?,
            Measure::Stat(name) => write!(f, "stat {name}")?,
            Measure::Client(class) => write!(f, "client {class}")?,
            Measure::LibraryError(text) => write!(f, "library_error \"{text}\"")?,
            Measure::AccessLog(pattern) => write!(f, "access_log \"{pattern}\"")?,
            Measure::Packets(count) => write!(f, "packets {count}")?,
            Measure::Conversation(line) => write!(f, "conversation \"{line}\"")?,
            Measure::Timeline(figure) => write!(f, "timeline {figure}")?,
        }
        if let Some(at) = &self.at {
            write!(f, " at {at}")?;
        }
        write!(f, " {}", self.expect)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    diagnosis: Option<String>,
    stat: Option<String>,
    client: Option<String>,
    library_error: Option<String>,
    access_log: Option<String>,
    packets: Option<String>,
    conversation: Option<String>,
    timeline: Option<String>,
    at: Option<String>,
    count: Option<Comparison>,
    value: Option<Comparison>,
}

impl TryFrom<RawCheck> for Check {
    type Error = String;

    fn try_from(raw: RawCheck) -> Result<Check, String> {
        let measures = [
            raw.diagnosis.map(Measure::Diagnosis),
            raw.stat.map(Measure::Stat),
            raw.client.map(Measure::Client),
            raw.library_error.map(Measure::LibraryError),
            raw.access_log.map(Measure::AccessLog),
            raw.packets.map(Measure::Packets),
            raw.conversation.map(Measure::Conversation),
            raw.timeline.map(Measure::Timeline),
        ];
        let mut measures = measures.into_iter().flatten();
        let (Some(measure), None) = (measures.next(), measures.next()) else {
            return Err(
                "a check needs exactly one of diagnosis, stat, client, library_error, \
                 access_log, packets, conversation, timeline"
                    .into(),
            );
        };
        if let Measure::Timeline(figure) = &measure {
            if !timeline::is_figure(figure) {
                return Err(format!(
                    "unknown timeline figure `{figure}` (one of {})",
                    timeline::FIGURES
                ));
            }
        }
        let valued = matches!(measure, Measure::Stat(_) | Measure::Timeline(_));
        let expect = match (valued, raw.count, raw.value) {
            (true, None, value) => value,
            (true, Some(_), _) => {
                return Err("a stat or timeline check compares its `value`, not a `count`".into())
            }
            (false, count, None) => count,
            (false, _, Some(_)) => {
                return Err("only stat and timeline checks have a `value`; use `count`".into())
            }
        }
        .unwrap_or(Comparison::AT_LEAST_ONE);
        if measure.at_envoy() && raw.at.is_none() {
            return Err("needs `at`: the Envoy node it looks at".into());
        }
        if measure.at_capture() && raw.at.is_none() {
            return Err("needs `at`: the node whose capture it reads".into());
        }
        if let Measure::Packets(name) = &measure {
            if ReuseCounts::default().get(name).is_none() {
                return Err(format!(
                    "packets `{name}`: expected server_closed_first, challenge_acks, reuses, \
                     or ISN/RESULT with ISN {} and RESULT {}",
                    ISN_POSITIONS.join("|"),
                    RESULTS.join("|")
                ));
            }
        }
        Ok(Check {
            measure,
            at: raw.at,
            expect,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `3` (exactly), or `">= 1"`, `"< 5"`, `"== 0"`, `"!= 0"`; `"never"` is
/// `"== never"` (see [`NEVER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawComparison")]
pub struct Comparison {
    pub op: Op,
    pub value: u64,
}

impl Comparison {
    pub const AT_LEAST_ONE: Comparison = Comparison {
        op: Op::Ge,
        value: 1,
    };

    pub fn holds(&self, seen: u64) -> bool {
        match self.op {
            Op::Eq => seen == self.value,
            Op::Ne => seen != self.value,
            Op::Lt => seen < self.value,
            Op::Le => seen <= self.value,
            Op::Gt => seen > self.value,
            Op::Ge => seen >= self.value,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        };
        match self.value {
            NEVER => write!(f, "{op} never"),
            value => write!(f, "{op} {value}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawComparison {
    Exactly(u64),
    Text(String),
}

impl TryFrom<RawComparison> for Comparison {
    type Error = String;

    fn try_from(raw: RawComparison) -> Result<Comparison, String> {
        let text = match raw {
            RawComparison::Exactly(value) => return Ok(Comparison { op: Op::Eq, value }),
            RawComparison::Text(text) => text,
        };
        let bad =
            || format!("`{text}`: expected a number, \">= 1\" (==, !=, <, <=, >, >=) or \"never\"");
        let trimmed = text.trim();
        if trimmed == "never" {
            return Ok(Comparison {
                op: Op::Eq,
                value: NEVER,
            });
        }
        let (op, rest) = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(word, op)| trimmed.strip_prefix(word).map(|rest| (op, rest)))
        .ok_or_else(bad)?;
        let value = match rest.trim() {
            "never" => NEVER,
            number => number.parse().map_err(|_| bad())?,
        };
        Ok(Comparison { op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Check, String> {
        #[derive(Deserialize)]
        struct One {
            c: Check,
        }
        toml::from_str::<One>(&format!("c = {text}"))
            .map(|o| o.c)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn comparisons_parse_and_hold() {
        let c = check(r#"{ client = "503", count = ">= 2" }"#).unwrap();
        assert_eq!(c.expect.to_string(), ">= 2");
        assert!(c.expect.holds(2) && !c.expect.holds(1));
        let c = check(r#"{ client = "503", count = 3 }"#).unwrap();
        assert!(c.expect.holds(3) && !c.expect.holds(4));
        let c = check(r#"{ client = "503" }"#).unwrap();
        assert_eq!(c.expect, Comparison::AT_LEAST_ONE);
        let err = check(r#"{ client = "503", count = "about 3" }"#).unwrap_err();
        assert!(err.contains("`about 3`"), "{err}");
    }

    #[test]
    fn a_check_measures_one_thing() {
        let err = check(r#"{ client = "503", stat = "x", at = "envoy" }"#).unwrap_err();
        assert!(err.contains("exactly one of"), "{err}");
        let err = check(r#"{ stat = "x", at = "envoy", count = 1 }"#).unwrap_err();
        assert!(err.contains("`value`"), "{err}");
        let err = check(r#"{ diagnosis = "keepalive_race" }"#).unwrap_err();
        assert!(err.contains("needs `at`"), "{err}");
    }

    #[test]
    fn packets_checks_name_a_known_count_at_a_node() {
        for name in [
            "challenge_acks",
            "server_closed_first",
            "reuses",
            "below/reset",
        ] {
            let c = check(&format!(r#"{{ packets = "{name}", at = "server" }}"#)).unwrap();
            assert_eq!(c.measure, Measure::Packets(name.into()));
        }
        let err = check(r#"{ packets = "below/rejected", at = "server" }"#).unwrap_err();
        assert!(err.contains("`below/rejected`"), "{err}");
        assert!(err.contains("accepted|reset"), "{err}");
        let err = check(r#"{ packets = "challenge_ack", at = "server" }"#).unwrap_err();
        assert!(err.contains("expected server_closed_first"), "{err}");
        let err = check(r#"{ packets = "challenge_acks" }"#).unwrap_err();
        assert!(err.contains("needs `at`"), "{err}");
        let err = check(r#"{ conversation = ">S <S." }"#).unwrap_err();
        assert!(err.contains("needs `at`"), "{err}");
        let c = check(r#"{ conversation = ">S <S.", at = "server", count = 1 }"#).unwrap();
        assert_eq!(c.to_string(), "conversation \">S <S.\" at server == 1");
    }

    #[test]
    fn timeline_checks_compare_a_value_and_know_never() {
        let c = check(r#"{ timeline = "recovery_s", value = "never" }"#).unwrap();
        assert_eq!(c.to_string(), "timeline recovery_s == never");
        assert!(c.expect.holds(NEVER) && !c.expect.holds(7));
        let c = check(r#"{ timeline = "recovery_s", value = "<= 8" }"#).unwrap();
        assert!(c.expect.holds(7) && !c.expect.holds(NEVER));
        let c = check(r#"{ timeline = "recovery_s", value = ">= 10" }"#).unwrap();
        assert!(c.expect.holds(NEVER), "never is later than any bound");
        let c = check(r#"{ timeline = "during.max_ms", value = ">= 10000" }"#).unwrap();
        assert_eq!(c.measure, Measure::Timeline("during.max_ms".into()));
        let err = check(r#"{ timeline = "recovery_s", count = 1 }"#).unwrap_err();
        assert!(err.contains("`value`"), "{err}");
        let err = check(r#"{ timeline = "during.p98_ms", value = 1 }"#).unwrap_err();
        assert!(
            err.contains("unknown timeline figure `during.p98_ms`"),
            "{err}"
        );
        let err = check(r#"{ timeline = "recovery_s", value = "soon" }"#).unwrap_err();
        assert!(err.contains("`soon`"), "{err}");
    }
}
