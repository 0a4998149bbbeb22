//! The static HTML report (`connlab run … --report DIR`, `connlab report`):
//! one self-contained `index.html` (inline CSS and SVG, no script, nothing
//! fetched) rendered from recorded runs on disk: a summary table, then per
//! run its verdict, explanation, request timeline, throughput (when the run
//! had load), packet ladders (when the run captured packets), the Outcome's
//! values and links to the raw evidence files. Reads only what `recorded`
//! put on disk, drawing with `plots` and the evidence parsers (`timeline`).

mod timeline;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::outputs::plots;
use crate::outputs::recorded::{self, file_name, RecordedRun};

/// Renders the runs in `run_dirs` into `out/index.html`; links to evidence
/// are relative when the evidence lies under `out`.
pub fn write(out: &Path, run_dirs: &[PathBuf]) -> anyhow::Result<PathBuf> {
    let runs = run_dirs
        .iter()
        .map(|dir| RecordedRun::load(dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(out)?;
    let index = out.join("index.html");
    std::fs::write(&index, page(out, &runs))?;
    Ok(index)
}

/// Every recorded run under `evidence` (see [`recorded::find_runs`]).
pub fn write_all(out: &Path, evidence: &Path) -> anyhow::Result<PathBuf> {
    let runs = recorded::find_runs(evidence);
    if runs.is_empty() {
        anyhow::bail!(
            "no recorded runs under {} (expected <scenario>/<run>/{})",
            evidence.display(),
            recorded::OUTCOME_FILE
        );
    }
    write(out, &runs)
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#212121;padding:0 12px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 6px;border-top:1px solid #ddd;padding-top:18px}
h3{font-size:15px;margin:18px 0 6px;color:#424242}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{font-weight:600;color:#555}.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:700;letter-spacing:.03em}.pass{color:#2e7d32}.fail{color:#c62828}
.explain{background:#fff8e1;border-left:4px solid #ffb300;padding:8px 12px;margin:8px 0}
figure{margin:8px 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}
.legend span{display:inline-block;margin-right:14px;font-size:13px}
.dot{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:4px;vertical-align:-1px}
.hollow{background:#fff !important;border:2px solid #2e7d32;width:8px;height:8px}
.note{color:#757575;font-size:13px}code{font-size:13px}
";

fn page(out: &Path, runs: &[RecordedRun]) -> String {
    let passed = runs.iter().filter(|r| r.as_expected()).count();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>connlab report</title><style>{STYLE}</style></head><body>\n\
         <h1>connlab report</h1><p class=\"note\">{} runs: {passed} as expected, {} not. \
         Rendered from the recorded evidence by <code>connlab report</code>.</p>\n",
        runs.len(),
        runs.len() - passed
    );
    html.push_str(&summary(runs));
    for (i, run) in runs.iter().enumerate() {
        html.push_str(&section(out, i, run));
    }
    html.push_str("</body></html>\n");
    html
}

fn summary(runs: &[RecordedRun]) -> String {
    let mut html = String::from(
        "<table id=\"summary\"><tr><th>scenario</th><th>variant</th><th>expected</th>\
         <th>verdict</th><th class=\"num\">wall time</th></tr>\n",
    );
    for (i, run) in runs.iter().enumerate() {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td><a href=\"#run-{i}\">{}</a></td><td>{}</td>\
             <td class=\"verdict {}\">{}</td><td class=\"num\">{:.1} s</td></tr>",
            esc(&run.field("scenario")),
            esc(&file_name(&run.dir)),
            esc(&run.field("expected")),
            pass_class(run),
            esc(&run.field("verdict").to_uppercase()),
            run.outcome["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        );
    }
    html.push_str("</table>\n");
    html
}

fn pass_class(run: &RecordedRun) -> &'static str {
    if run.as_expected() {
        "pass"
    } else {
        "fail"
    }
}

fn section(out: &Path, i: usize, run: &RecordedRun) -> String {
    let mut html = String::new();
    let _ = writeln!(
        html,
        "<section id=\"run-{i}\"><h2>{} <span class=\"verdict {}\">{}</span></h2>\
         <p>expected <b>{}</b> · {} requests · wall time {:.1} s</p>",
        esc(&run.title()),
        pass_class(run),
        esc(&run.field("verdict").to_uppercase()),
        esc(&run.field("expected")),
        run.records.len(),
        run.outcome["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
    );
    if let Some(explain) = run.outcome["explain"].as_str() {
        let _ = writeln!(html, "<div class=\"explain\">{}</div>", esc(explain));
    }
    if run.records.is_empty() {
        // A script replayed the packets (snat-timewait's precise variants):
        // no request to place; the ladder below is the run.
        html.push_str("<p class=\"note\">No client requests recorded: no request timeline.</p>");
    } else {
        html.push_str(&timeline_figure(run));
    }
    if let Some(seconds) = timeline::seconds(run) {
        let (plot, _) = timeline::timeline(run);
        html.push_str("<h3>Throughput and latency per second</h3>");
        let busy = seconds.iter().filter(|s| s.ok + s.failed > 0).count();
        html.push_str(&figure(
            "throughput",
            busy,
            plots::throughput(&seconds, &plot.faults),
        ));
    }
    for ladder in run.ladders() {
        // Drawn when the run was recorded: one arrow (a `<polygon>` head)
        // per segment, challenge ACKs in red.
        let svg = std::fs::read_to_string(ladder).unwrap_or_default();
        let _ = write!(
            html,
            "<h3>Packets: {}</h3><p class=\"note\">One arrow per TCP segment at the \
             capturing node, time down the left; red: a challenge ACK (a bare ACK \
             with the old connection's numbers answering a SYN).</p>\
             <figure data-plot=\"ladder\">{}</figure>",
            esc(&file_name(ladder)),
            strip_xml_declaration(&svg)
        );
    }
    html.push_str(&checks(&run.outcome));
    html.push_str("<h3>What the run measured</h3>");
    html.push_str(&values(&run.outcome));
    html.push_str("<h3>Raw evidence</h3><ul>");
    for file in &run.files {
        let _ = write!(
            html,
            "<li><a href=\"{}\">{}</a></li>",
            esc(&link(out, file)),
            esc(&file_name(file))
        );
    }
    html.push_str("</ul></section>\n");
    html
}

fn timeline_figure(run: &RecordedRun) -> String {
    let (plot, unplaced) = timeline::timeline(run);
    let mut html = String::from("<h3>Requests over time</h3>");
    html.push_str(&figure(
        "timeline",
        plot.marks.len(),
        plots::timeline(&plot),
    ));
    html.push_str("<p class=\"legend\">");
    let mut classes: Vec<&str> = plot.marks.iter().map(|m| m.class.as_str()).collect();
    classes.sort();
    classes.dedup();
    for class in classes {
        let _ = write!(
            html,
            "<span><i class=\"dot\" style=\"background:{}\"></i>{}</span>",
            plots::hex(plots::class_color(class)),
            esc(class)
        );
    }
    html.push_str(
        "<span><i class=\"dot hollow\"></i>fresh connection</span>\
         <span><i class=\"dot\" style=\"background:#2e7d32\"></i>reused connection \
         (client lanes: client→Envoy; Envoy lanes: Envoy→upstream)</span>\
         <span><i class=\"dot\" style=\"background:#9e9e9e;border-radius:0;height:3px\"></i>\
         connection idle before the request</span>\
         <span><i class=\"dot\" style=\"background:#ffe082;border-radius:0\"></i>fault in place</span></p>",
    );
    if !plot.faults.is_empty() {
        // In full: the plot cuts long labels at its edge.
        html.push_str("<ul class=\"note faults\">");
        for f in &plot.faults {
            let _ = write!(html, "<li>from {:.2} s: {}</li>", f.start_s, esc(&f.label));
        }
        html.push_str("</ul>");
    }
    if !unplaced.is_empty() {
        let _ = write!(
            html,
            "<p class=\"note\">Not on the timeline (their events do not line up with the \
             client's requests): {}</p>",
            esc(&unplaced.join(", "))
        );
    }
    html
}

/// A plot in a figure that names it and its number of marks (the browser
/// test counts them); a plot that failed says why instead.
fn figure(kind: &str, marks: usize, svg: Result<String, String>) -> String {
    match svg {
        Ok(svg) => format!(
            "<figure data-plot=\"{kind}\" data-marks=\"{marks}\">{}</figure>\n",
            strip_xml_declaration(&svg)
        ),
        Err(e) => format!("<p class=\"fail\">{}</p>", esc(&e)),
    }
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(at) => &svg[at..],
        None => svg,
    }
}

/// The Outcome's `checks`: each check of the "reproduced" and "fixed" lists
/// with whether it held, the number it saw and why it could not tell.
fn checks(outcome: &Value) -> String {
    let Some(checks) = outcome["checks"].as_array().filter(|c| !c.is_empty()) else {
        return String::new();
    };
    let mut html = String::from(
        "<h3>Checks</h3><table class=\"checks\"><tr><th>list</th><th>check</th>\
         <th>holds</th><th class=\"num\">seen</th><th>why</th></tr>",
    );
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // A recovery that never came (`recovery_s == never`).
        Value::Number(n) if n.as_u64() == Some(crate::evidence::timeline::NEVER) => "never".into(),
        other => other.to_string(),
    };
    for check in checks {
        let holds = text(&check["holds"]);
        let class = match holds.as_str() {
            "true" => "pass",
            "false" => "fail",
            _ => "",
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&text(&check["list"])),
            esc(&text(&check["check"])),
            esc(&holds),
            esc(&text(&check["seen"])),
            esc(&text(&check["why"])),
        );
    }
    html.push_str("</table>");
    html
}

/// The Outcome's fields other than those the heading shows: numbers and
/// strings as they are, maps of counts (also per role) as rows, anything
/// else as JSON.
fn values(outcome: &Value) -> String {
    const SHOWN: [&str; 7] = [
        "scenario", "variant", "expected", "verdict", "explain", "wall_ms", "checks",
    ];
    let mut html = String::from("<table class=\"values\">");
    let Some(fields) = outcome.as_object() else {
        return String::new();
    };
    for (key, value) in fields.iter().filter(|(k, _)| !SHOWN.contains(&k.as_str())) {
        // The timeline's seconds are the throughput plot above; its phases
        // and recovery stay rows.
        let mut value = value.clone();
        if key == "timeline" {
            if let Some(t) = value.as_object_mut() {
                t.remove("seconds");
            }
        }
        for (name, shown) in rows(key, &value) {
            let _ = write!(
                html,
                "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
                esc(&name),
                esc(&shown)
            );
        }
    }
    html.push_str("</table>");
    html
}

fn rows(key: &str, value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .flat_map(|(k, v)| rows(&format!("{key} · {k}"), v))
            .collect(),
        Value::Object(_) => vec![(key.to_string(), "none".into())],
        Value::String(s) => vec![(key.to_string(), s.clone())],
        other => vec![(key.to_string(), other.to_string())],
    }
}

/// `file` relative to `out` when it lies under it, else absolute.
fn link(out: &Path, file: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (out, file) = (absolute(out), absolute(file));
    match file.strip_prefix(&out) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => format!("file://{}", file.display()),
    }
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
