//! SVG plots (plotters) of a run, from plain data so any evidence can use
//! them: the request timeline (requests on the upstream connections that
//! carried them, faults as shaded intervals) and per-second throughput with
//! p99/max latency. Every data mark is a `<circle>` and nothing else in a
//! plot is, so a test (or a reader's script) counts marks by counting
//! circles.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::evidence::timeline::{Second, Timeline as FaultTimeline};

/// A shaded interval on the time axis (an injected fault), in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub label: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// One request on a lane of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub lane: usize,
    pub start_s: f64,
    /// Shown in the label when known.
    pub latency_ms: Option<f64>,
    /// Outcome class: `200`, `503 UC`, `reset`, ... (colour, see [`class_color`]).
    pub class: String,
    /// Rode a pooled upstream connection (filled) or a fresh one (hollow).
    pub reused: bool,
    /// Idle time of the connection before this request, drawn as a gap.
    pub idle_ms: Option<f64>,
}

/// Lanes top to bottom (e.g. `client`, `envoy conn 1`, ...) and their marks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub lanes: Vec<String>,
    pub marks: Vec<Mark>,
    pub faults: Vec<Interval>,
    /// The end of the time axis, in seconds.
    pub end_s: f64,
}

/// More marks than this and their text labels would overlap: marks only.
const LABELLED_MARKS: usize = 40;
const WIDTH: u32 = 960;

/// Colour of an outcome class: 2xx/3xx green, 4xx orange, 5xx red, resets
/// and broken responses purple, timeouts slate, connect errors pink.
pub fn class_color(class: &str) -> RGBColor {
    let head = class.split_whitespace().next().unwrap_or_default();
    match head.parse::<u16>() {
        Ok(200..=399) => RGBColor(0x2e, 0x7d, 0x32),
        Ok(400..=499) => RGBColor(0xef, 0x6c, 0x00),
        Ok(500..=599) => RGBColor(0xc6, 0x28, 0x28),
        // Envoy logs code 0 when no response was sent downstream.
        Ok(_) => RGBColor(0x6a, 0x1b, 0x9a),
        Err(_) if head.starts_with("connect") => RGBColor(0xad, 0x14, 0x57),
        Err(_) if matches!(head, "timeout" | "unfinished") => RGBColor(0x45, 0x5a, 0x64),
        Err(_) if matches!(head, "reset" | "eof" | "protocol") => RGBColor(0x6a, 0x1b, 0x9a),
        Err(_) => RGBColor(0x75, 0x75, 0x75),
    }
}

/// `#rrggbb`, for legends drawn outside the SVG.
pub fn hex(color: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", color.0, color.1, color.2)
}

const FAULT: RGBColor = RGBColor(0xff, 0xb3, 0x00);
const IDLE: RGBColor = RGBColor(0x9e, 0x9e, 0x9e);

fn svg_error<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

/// The request timeline: x is seconds since the workload started, one lane
/// per row; each request a circle at its start (hollow: fresh upstream
/// connection, filled: reused), labelled with class and latency; a grey
/// line for the time the connection sat idle before it; faults as shaded
/// intervals across every lane.
pub fn timeline(plot: &Timeline) -> Result<String, String> {
    let lanes = plot.lanes.len().max(1);
    let height = 90 + LANE_PX * (lanes as u32 + label_rows(plot));
    render(height, |root| draw_timeline(root, plot, lanes))
}

const LANE_PX: u32 = 46;
const FAULT_LABEL_PX: u32 = 16;

/// Rows of room above the top lane for the fault labels beyond the first
/// (the first fits above the top lane's mark labels).
fn label_rows(plot: &Timeline) -> u32 {
    let extra = FAULT_LABEL_PX * plot.faults.len().saturating_sub(1) as u32;
    extra.div_ceil(LANE_PX)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// An SVG document `WIDTH` wide, drawn by `draw` on a white background.
fn render(height: u32, draw: impl FnOnce(&Area) -> DrawResult) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(svg_error)?;
        draw(&root).map_err(svg_error)?;
        root.present().map_err(svg_error)?;
    }
    Ok(svg)
}

fn draw_timeline(root: &Area, plot: &Timeline, lanes: usize) -> DrawResult {
    let (x0, x1) = (-0.02 * plot.end_s.max(1.0), plot.end_s.max(1.0) * 1.12);
    // Lane i is drawn at y = lanes - 1 - i (the first lane on top); the
    // extra unit on each side leaves room for labels.
    let top = lanes as i32 + label_rows(plot) as i32;
    let mut chart = ChartBuilder::on(root)
        .margin(MARGIN)
        .x_label_area_size(36)
        .y_label_area_size(LANE_LABELS)
        .build_cartesian_2d(x0..x1, -1..top)?;
    let names = plot.lanes.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xe0, 0xe0, 0xe0))
        .x_labels(12)
        .y_labels(top as usize + 2)
        .y_label_formatter(&|y| {
            let i = lanes as i32 - 1 - *y;
            usize::try_from(i)
                .ok()
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_default()
        })
        .x_desc("seconds since the workload started")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    let lane_y = |lane: usize| lanes as i32 - 1 - lane as i32;
    chart.draw_series(spans(&plot.faults).into_iter().map(|(start, end)| {
        Rectangle::new(
            [(start, -1), (end.max(start + 0.05), top)],
            FAULT.mix(0.16).filled(),
        )
    }))?;
    let fault_font = ("sans-serif", 13)
        .into_font()
        .color(&RGBColor(0x8d, 0x5a, 0x00));
    let px_per_s = f64::from(WIDTH - 2 * MARGIN - LANE_LABELS) / (x1 - x0);
    chart.draw_series(plot.faults.iter().enumerate().map(|(i, f)| {
        // Cut at the plot's right edge (about 7 px a character); the page
        // lists every fault in full under the plot.
        let room = ((x1 - f.start_s) * px_per_s / 7.0).max(8.0) as usize;
        EmptyElement::at((f.start_s, top))
            + Text::new(
                shorten(&f.label, room),
                (6, 4 + (FAULT_LABEL_PX * i as u32) as i32),
                fault_font.clone(),
            )
    }))?;
    // Idle stretches first, so the marks sit on top of them.
    chart.draw_series(plot.marks.iter().filter_map(|m| {
        let idle_s = m.idle_ms? / 1000.0;
        let y = lane_y(m.lane);
        Some(PathElement::new(
            vec![(m.start_s - idle_s, y), (m.start_s, y)],
            IDLE.stroke_width(3),
        ))
    }))?;
    let labelled = plot.marks.len() <= LABELLED_MARKS;
    if labelled {
        let idle_font = ("sans-serif", 11)
            .into_font()
            .color(&RGBColor(0x61, 0x61, 0x61))
            .pos(Pos::new(HPos::Center, VPos::Top));
        chart.draw_series(plot.marks.iter().filter_map(|m| {
            let idle_ms = m.idle_ms.filter(|ms| *ms >= 1000.0)?;
            let at = (m.start_s - idle_ms / 2000.0, lane_y(m.lane));
            Some(
                EmptyElement::at(at)
                    + Text::new(
                        format!("idle {:.1} s", idle_ms / 1000.0),
                        (0, 4),
                        idle_font.clone(),
                    ),
            )
        }))?;
    }
    // Dense lanes keep every mark at its true time (and smaller): nudging
    // hundreds of marks apart would move them in time.
    let layout = layout(&plot.marks, if labelled { px_per_s } else { 0.0 });
    let radius = if labelled { 7 } else { 4 };
    let font = ("sans-serif", 12).into_font();
    chart.draw_series(plot.marks.iter().zip(&layout).map(|(m, at)| {
        let color = class_color(&m.class);
        let style = if m.reused {
            color.filled()
        } else {
            color.stroke_width(3)
        };
        let label = match (labelled, m.latency_ms) {
            (false, _) => String::new(),
            (true, Some(ms)) => format!("{} · {}", m.class, latency_text(ms)),
            (true, None) => m.class.clone(),
        };
        let dy = if at.label_below { 9 } else { -21 };
        EmptyElement::at((m.start_s, lane_y(m.lane)))
            + Circle::new((at.dx, 0), radius, style)
            + Text::new(label, (at.dx - 4, dy), font.clone().color(&color))
    }))?;
    Ok(())
}

/// The faults' distinct intervals: faults over the same one (a node and its
/// backend blackholed at once) shade it once, not darker per fault.
fn spans(faults: &[Interval]) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = faults.iter().map(|f| (f.start_s, f.end_s)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    spans.dedup();
    spans
}

const MARGIN: u32 = 12;
const LANE_LABELS: u32 = 130;

/// Where a mark goes, in pixels from its true place: marks closer than a
/// marker's width on one lane (a request sent right after another) are
/// nudged apart, and their labels alternate above and below the lane.
struct Placement {
    dx: i32,
    label_below: bool,
}

fn layout(marks: &[Mark], px_per_s: f64) -> Vec<Placement> {
    // Per lane: the last marker's x and where the last label above and
    // below it ends, in pixels.
    let mut lanes: std::collections::HashMap<usize, (f64, f64, f64)> = Default::default();
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by(|a, b| marks[*a].start_s.total_cmp(&marks[*b].start_s));
    let mut placed: Vec<Placement> = (0..marks.len())
        .map(|_| Placement {
            dx: 0,
            label_below: false,
        })
        .collect();
    for i in order {
        let m = &marks[i];
        let x = m.start_s * px_per_s;
        let (last_x, above_end, below_end) =
            lanes
                .get(&m.lane)
                .copied()
                .unwrap_or((f64::MIN, f64::MIN, f64::MIN));
        // px_per_s 0: no nudging at all.
        let shown = if px_per_s > 0.0 {
            x.max(last_x + 15.0)
        } else {
            x
        };
        let width = 6.6 * (m.class.len() + 12) as f64;
        let label_below = shown - 4.0 < above_end && shown - 4.0 >= below_end;
        let (above_end, below_end) = if label_below {
            (above_end, shown + width)
        } else {
            (shown + width, below_end)
        };
        lanes.insert(m.lane, (shown, above_end, below_end));
        placed[i] = Placement {
            dx: (shown - x).round() as i32,
            label_below,
        };
    }
    placed
}

/// `text` in at most `chars` characters, cut with an ellipsis.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn latency_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// Per-second throughput (OK and failed requests, stacked bars, left axis)
/// with p99 and max latency (right axis, log scale); a circle per second
/// with requests on the p99 line. Faults as shaded intervals.
pub fn throughput(seconds: &[Second], faults: &[Interval]) -> Result<String, String> {
    render(380, |root| draw_throughput(root, seconds, faults))
}

fn draw_throughput(root: &Area, seconds: &[Second], faults: &[Interval]) -> DrawResult {
    let end = seconds.len().max(1) as f64;
    let most = seconds
        .iter()
        .map(|s| s.ok + s.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let slowest = seconds.iter().map(|s| s.max_ms).fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..end, 0.0..most)?
        .set_secondary_coord(0.0..end, (0.1..slowest).log_scale());
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0xe0, 0xe0, 0xe0))
        .x_desc("second of the workload")
        .y_desc("requests / s")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("latency ms (p99 —, max ┄)")
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(spans(faults).into_iter().map(|(start, end)| {
        Rectangle::new(
            [(start, 0.0), (end.max(start + 0.05), most)],
            FAULT.mix(0.14).filled(),
        )
    }))?;
    let ok = class_color("200");
    let failed = class_color("503");
    chart.draw_series(seconds.iter().enumerate().map(|(i, s)| {
        let x = i as f64;
        Rectangle::new(
            [(x + 0.1, 0.0), (x + 0.9, s.ok as f64)],
            ok.mix(0.8).filled(),
        )
    }))?;
    chart.draw_series(seconds.iter().enumerate().map(|(i, s)| {
        let x = i as f64;
        let bottom = s.ok as f64;
        Rectangle::new(
            [(x + 0.1, bottom), (x + 0.9, bottom + s.failed as f64)],
            failed.mix(0.8).filled(),
        )
    }))?;
    let line = RGBColor(0x15, 0x65, 0xc0);
    let at = |i: usize, ms: f64| (i as f64 + 0.5, ms.max(0.1));
    // Seconds in which no request ended have no latency to draw.
    let busy = || {
        seconds
            .iter()
            .enumerate()
            .filter(|(_, s)| s.ok + s.failed > 0)
    };
    chart.draw_secondary_series(LineSeries::new(
        busy().map(|(i, s)| at(i, s.p99_ms)),
        line.stroke_width(2),
    ))?;
    chart.draw_secondary_series(DashedLineSeries::new(
        busy().map(|(i, s)| at(i, s.max_ms)),
        4,
        3,
        line.stroke_width(1),
    ))?;
    chart.draw_secondary_series(
        busy().map(|(i, s)| Circle::new(at(i, s.p99_ms), 3, line.filled())),
    )?;
    Ok(())
}

/// A fault's timeline (`evidence::timeline`) as [`throughput`]'s SVG, the fault shaded from its
/// start to the end of the run.
pub fn fault_throughput(timeline: &FaultTimeline) -> Result<String, String> {
    let fault = Interval {
        label: "fault".into(),
        start_s: timeline.fault_s as f64,
        end_s: timeline.seconds.len() as f64,
    };
    throughput(&timeline.seconds, &[fault])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::timeline::tests::run;
    use crate::evidence::timeline::timeline as fault_timeline;

    fn circles(svg: &str) -> usize {
        svg.matches("<circle").count()
    }

    #[test]
    fn the_timeline_has_a_circle_per_request_and_the_fault() {
        let plot = Timeline {
            lanes: vec!["client".into(), "envoy conn 1".into()],
            marks: vec![
                Mark {
                    lane: 1,
                    start_s: 0.0,
                    latency_ms: Some(3.0),
                    class: "200".into(),
                    reused: false,
                    idle_ms: None,
                },
                Mark {
                    lane: 1,
                    start_s: 5.5,
                    latency_ms: Some(1.2),
                    class: "503 UC".into(),
                    reused: true,
                    idle_ms: Some(5500.0),
                },
            ],
            faults: vec![Interval {
                label: "FIN delayed 1 s".into(),
                start_s: 0.0,
                end_s: 6.0,
            }],
            end_s: 6.0,
        };
        let svg = timeline(&plot).unwrap();
        assert_eq!(circles(&svg), 2);
        assert!(svg.contains("503 UC · 1.2 ms"), "{svg}");
        assert!(svg.contains("idle 5.5 s"));
        assert!(svg.contains("FIN delayed 1 s"));
        assert_eq!(shorten("FIN delayed 1 s", 5), "FIN …");
        assert_eq!(shorten("FIN", 5), "FIN");
        assert!(svg.contains("envoy conn 1"));
    }

    #[test]
    fn throughput_has_a_circle_per_second_with_requests() {
        let mut seconds = vec![
            Second {
                ok: 10,
                failed: 0,
                p99_ms: 2.0,
                max_ms: 3.0
            };
            5
        ];
        seconds[2] = Second::default();
        let svg = throughput(&seconds, &[]).unwrap();
        assert_eq!(circles(&svg), 4);
    }

    #[test]
    fn classes_have_colors() {
        assert_eq!(hex(class_color("200")), "#2e7d32");
        assert_eq!(hex(class_color("503 UC")), "#c62828");
        assert_eq!(class_color("reset"), class_color("0 UC"));
        assert_ne!(class_color("connect_111"), class_color("timeout"));
    }

    #[test]
    fn plot_is_an_svg_with_the_fault_marked() {
        let svg = fault_throughput(&fault_timeline(&run(6_000.0), 10, 2)).unwrap();
        assert!(svg.starts_with("<svg"));
        // plots::throughput draws one circle per second.
        assert_eq!(svg.matches("<circle").count(), 20);
    }

    #[test]
    fn an_empty_timeline_still_plots() {
        assert!(fault_throughput(&fault_timeline(&[], 10, 2)).is_ok());
    }
}
