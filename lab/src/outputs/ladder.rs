//! Packet ladder diagrams (SVG, drawn with `plotters`): one vertical line per
//! node (client / router / server), one sloped arrow per TCP segment in time
//! order, labelled with tcpdump's flags and seq/ack. The snat-timewait
//! evidence: a reader sees the server's FIN first, the reused 4-tuple's SYN
//! and the challenge ACKs with old numbers (drawn red) at a glance.

use std::net::SocketAddr;
use std::path::Path;

use plotters::prelude::*;

use crate::evidence::pcap::{Flags, Segment};
use crate::evidence::{packet_sequence, Evidence};

/// One arrow: a segment from column `from` to column `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    pub t_ns: u64,
    pub from: usize,
    pub to: usize,
    pub label: String,
    /// Drawn red: the segments the diagnosis rests on.
    pub highlight: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub title: String,
    pub columns: Vec<String>,
    pub arrows: Vec<Arrow>,
}

#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    #[error("ladder: arrow {index} goes to column {column}, but there are {columns} columns")]
    NoSuchColumn {
        index: usize,
        column: usize,
        columns: usize,
    },
    #[error("ladder: drawing failed: {0}")]
    Draw(String),
}

const COLUMN_GAP: i32 = 300;
const MARGIN_X: i32 = 110;
const TOP: i32 = 70;
const ROW: i32 = 34;

/// Where one side of the node pair sits: segments from `near` go from column
/// `near_column` to `far_column`, every other segment of the capture back.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub segments: &'a [Segment],
    pub near: SocketAddr,
    pub near_column: usize,
    pub far_column: usize,
}

impl Ladder {
    /// A ladder from one or more captures (say the router's two interfaces),
    /// merged in time order. Labels give SYNs' absolute ISNs and every other
    /// segment's seq/ack relative to the first ISNs seen on that side, as
    /// tcpdump does; a server's bare ACK answering a SYN (a challenge ACK) is
    /// highlighted.
    pub fn from_sides(title: &str, columns: &[&str], sides: &[Side]) -> Ladder {
        let mut arrows = Vec::new();
        for side in sides {
            let near_isn = side
                .segments
                .iter()
                .find(|s| s.from == side.near && s.flags.syn())
                .map(|s| s.seq);
            let far_isn = side
                .segments
                .iter()
                .find(|s| s.to == side.near && s.flags.syn())
                .map(|s| s.seq);
            let mut previous_syn_from_far = false;
            for s in side.segments {
                let from_near = s.from == side.near;
                let (own, other) = if from_near {
                    (near_isn, far_isn)
                } else {
                    (far_isn, near_isn)
                };
                let rel = |v: u32, base: Option<u32>| base.map_or(v, |b| v.wrapping_sub(b));
                let flags = s.flags.to_string();
                let label = if s.flags.syn() && !s.flags.ack() {
                    format!("{flags} seq {}", s.seq)
                } else if s.flags.rst() && !s.flags.ack() {
                    format!("{flags} seq {}", rel(s.seq, own))
                } else {
                    let len = if s.len > 0 {
                        format!(" len {}", s.len)
                    } else {
                        String::new()
                    };
                    format!(
                        "{flags} seq {} ack {}{len}",
                        rel(s.seq, own),
                        rel(s.ack, other)
                    )
                };
                let bare_ack = s.flags.0 & !Flags::PSH == Flags::ACK && s.len == 0;
                arrows.push(Arrow {
                    t_ns: s.t_ns,
                    from: if from_near {
                        side.near_column
                    } else {
                        side.far_column
                    },
                    to: if from_near {
                        side.far_column
                    } else {
                        side.near_column
                    },
                    label,
                    highlight: from_near && bare_ack && previous_syn_from_far,
                });
                previous_syn_from_far = !from_near && s.flags.syn() && !s.flags.ack();
            }
        }
        arrows.sort_by_key(|a| a.t_ns);
        Ladder {
            title: title.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            arrows,
        }
    }

    /// The diagram as an SVG document.
    pub fn to_svg(&self) -> Result<String, LadderError> {
        for (index, arrow) in self.arrows.iter().enumerate() {
            for column in [arrow.from, arrow.to] {
                if column >= self.columns.len() {
                    return Err(LadderError::NoSuchColumn {
                        index,
                        column,
                        columns: self.columns.len(),
                    });
                }
            }
        }
        let width = 2 * MARGIN_X + COLUMN_GAP * (self.columns.len().max(2) as i32 - 1);
        let height = TOP + ROW * (self.arrows.len() as i32 + 1) + 20;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width as u32, height as u32))
                .into_drawing_area();
            self.draw(&root, height)
                .map_err(|e| LadderError::Draw(e.to_string()))?;
            root.present()
                .map_err(|e| LadderError::Draw(e.to_string()))?;
        }
        Ok(svg)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
        height: i32,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let x = |column: usize| MARGIN_X + COLUMN_GAP * column as i32;
        let font = |size: f64| ("sans-serif", size).into_font();
        root.draw(&Text::new(self.title.clone(), (10, 12), font(16.0)))?;
        for (i, name) in self.columns.iter().enumerate() {
            let style = font(14.0)
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                ));
            root.draw(&Text::new(name.clone(), (x(i), TOP - 12), style))?;
            root.draw(&PathElement::new(
                vec![(x(i), TOP - 6), (x(i), height - 10)],
                BLACK.mix(0.5).stroke_width(1),
            ))?;
        }
        let t0 = self.arrows.first().map_or(0, |a| a.t_ns);
        for (row, arrow) in self.arrows.iter().enumerate() {
            let y0 = TOP + ROW * row as i32;
            let y1 = y0 + ROW * 2 / 3;
            let (x0, x1) = (x(arrow.from), x(arrow.to));
            let color = if arrow.highlight { RED } else { BLACK };
            root.draw(&Text::new(
                format!("{:.6}", (arrow.t_ns - t0) as f64 / 1e9),
                (8, y0 + 4),
                font(11.0).color(&BLACK.mix(0.6)),
            ))?;
            root.draw(&PathElement::new(
                vec![(x0, y0), (x1, y1)],
                color.stroke_width(if arrow.highlight { 2 } else { 1 }),
            ))?;
            let dir = if x1 > x0 { -1 } else { 1 };
            root.draw(&Polygon::new(
                vec![(x1, y1), (x1 + dir * 10, y1 - 7), (x1 + dir * 10, y1 + 1)],
                color.filled(),
            ))?;
            let mid = (x0 + x1) / 2;
            let style = font(12.0)
                .color(&color)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                ));
            root.draw(&Text::new(
                arrow.label.clone(),
                (mid, (y0 + y1) / 2 - 2),
                style,
            ))?;
        }
        Ok(())
    }
}

/// Packet ladders in a run's evidence directory: `<node>.ladder.svg`.
pub const LADDER_SUFFIX: &str = ".ladder.svg";

/// The packet ladder at a capturing node that served connections: the
/// first SYN that met its TIME_WAIT (else its first connection). When
/// its peer is a node that captured too (a router), that node's other
/// side is a third column: the same connections before the NAT, found
/// by their ISNs (a NAT keeps sequence numbers).
pub fn of(evidence: &Evidence, node: &str) -> Option<Ladder> {
    let packets = evidence.packets.get(node)?;
    let (excerpt, at) = packets.ladder_excerpt()?;
    let peer = excerpt
        .iter()
        .map(|s| if s.from == at { s.to } else { s.from })
        .next()?;
    let title =
        format!("tcpdump at {node}: the first SYN that met TIME_WAIT (else the first connection)");
    let router = evidence
        .packets
        .iter()
        .find(|(name, p)| *name != node && p.addresses.contains(&peer.ip()));
    let Some((router, seen)) = router else {
        let side = Side {
            segments: &excerpt,
            near: at,
            near_column: 1,
            far_column: 0,
        };
        return Some(Ladder::from_sides(
            &title,
            &["peer (as the node sees it)", node],
            &[side],
        ));
    };
    // The router's other side: segments with none of its own addresses.
    let inside: Vec<Segment> = seen
        .segments
        .iter()
        .filter(|s| !seen.addresses.contains(&s.from.ip()) && !seen.addresses.contains(&s.to.ip()))
        .copied()
        .collect();
    let before_nat = packet_sequence::same_connections(&inside, &excerpt);
    let mut sides: Vec<Side> = before_nat
        .iter()
        .map(|c| Side {
            segments: &c.segments,
            near: c.client,
            near_column: 0,
            far_column: 1,
        })
        .collect();
    sides.push(Side {
        segments: &excerpt,
        near: at,
        near_column: 2,
        far_column: 1,
    });
    Some(Ladder::from_sides(
        &title,
        &["client", router, node],
        &sides,
    ))
}

/// Writes each capturing node's ladder (see [`of`]) beside its pcap.
pub fn save_all(dir: &Path, evidence: &Evidence) -> std::io::Result<()> {
    for node in evidence.packets.keys() {
        if let Some(ladder) = of(evidence, node) {
            let svg = ladder.to_svg().map_err(std::io::Error::other)?;
            std::fs::write(dir.join(format!("{node}{LADDER_SUFFIX}")), svg)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::packet_sequence::tests::seed_capture;

    fn seed_ladder() -> Ladder {
        let capture = seed_capture();
        Ladder::from_sides(
            "seed 003 at the server",
            &["load balancer (SNAT)", "server"],
            &[Side {
                segments: &capture,
                near: "10.0.2.10:8080".parse().unwrap(),
                near_column: 1,
                far_column: 0,
            }],
        )
    }

    #[test]
    fn labels_follow_tcpdump_and_challenge_acks_are_highlighted() {
        let ladder = seed_ladder();
        let labels: Vec<&str> = ladder.arrows.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels[0], "S seq 1640887617");
        assert_eq!(labels[5], "P. seq 1 ack 321 len 270");
        assert_eq!(labels[6], "F. seq 271 ack 321");
        assert_eq!(labels[10], "S seq 1563951501");
        assert_eq!(labels[11], ". seq 272 ack 322");
        let red: Vec<usize> = (0..ladder.arrows.len())
            .filter(|&i| ladder.arrows[i].highlight)
            .collect();
        assert_eq!(red, [11, 13, 15]);
        assert_eq!((ladder.arrows[0].from, ladder.arrows[0].to), (0, 1));
        assert_eq!((ladder.arrows[1].from, ladder.arrows[1].to), (1, 0));
    }

    #[test]
    fn svg_has_every_column_and_arrow() {
        let svg = seed_ladder().to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("load balancer (SNAT)"));
        assert!(svg.contains(". seq 272 ack 322"));
        assert_eq!(svg.matches("<polygon").count(), 17);
    }

    #[test]
    fn an_arrow_to_a_missing_column_is_an_error() {
        let mut ladder = seed_ladder();
        ladder.arrows[3].to = 5;
        let error = ladder.to_svg().unwrap_err().to_string();
        assert!(error.contains("arrow 3 goes to column 5"), "{error}");
    }

    #[test]
    fn a_ladder_gets_the_routers_inside_when_the_router_captured_too() {
        use crate::evidence::packet_sequence::tests::{lb, seed_capture};
        let server = crate::evidence::Packets {
            addresses: vec!["10.0.2.10".parse().unwrap()],
            segments: seed_capture(),
            pcap: Vec::new(),
        };
        let mut evidence = Evidence::default();
        evidence.packets.insert("server".into(), server);
        let two = of(&evidence, "server").unwrap();
        assert_eq!(two.columns, ["peer (as the node sees it)", "server"]);
        assert_eq!(two.arrows.len(), 17);
        // The router (the server's peer, 10.0.2.2) saw both sides; inside,
        // the client 10.0.1.5 talks to the server's address.
        let client: std::net::SocketAddr = "10.0.1.5:50000".parse().unwrap();
        let inside = seed_capture().into_iter().map(|mut s| {
            if s.from == lb() {
                s.from = client;
            } else {
                s.to = client;
            }
            s
        });
        let router = crate::evidence::Packets {
            addresses: vec![lb().ip(), "10.0.1.2".parse().unwrap()],
            segments: seed_capture().into_iter().chain(inside).collect(),
            pcap: Vec::new(),
        };
        evidence.packets.insert("router".into(), router);
        let three = of(&evidence, "server").unwrap();
        assert_eq!(three.columns, ["client", "router", "server"]);
        assert_eq!(three.arrows.len(), 34);
        assert!(three.arrows.iter().any(|a| (a.from, a.to) == (0, 1)));
        assert!(three.arrows.iter().any(|a| (a.from, a.to) == (1, 2)));
        // The router served nothing: no ladder of its own.
        assert!(of(&evidence, "router").is_none());
    }
}
