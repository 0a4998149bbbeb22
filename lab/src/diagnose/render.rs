//! The human summary: a table first (what failed, how often, when), then
//! per code why, an example, the fix and the replay; then the idle times
//! of failed reuses and what the logs cannot tell. Plain text, no colour.

use std::fmt::Write;

use super::idle::IdleReport;
use super::report::{CodeReport, Report, Source};

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

pub fn human(report: &Report) -> String {
    let mut out = String::new();
    unread(&mut out, report);
    header(&mut out, report);
    if report.diagnoses.is_empty() && report.unread > 0 {
        let _ = writeln!(
            out,
            "\nno failure named in the lines read; {} line(s) were NOT read (above): this is not \
             an all-clear",
            thousands(report.unread)
        );
    } else if report.diagnoses.is_empty() {
        let _ = writeln!(out, "\nno failure the filter's rules name");
    } else {
        table(&mut out, &report.diagnoses);
        for d in &report.diagnoses {
            code(&mut out, d);
        }
    }
    if let Some(f) = &report.failed_reuse_idle {
        let _ = writeln!(
            out,
            "\nidle time before a reused upstream connection failed ({} requests):",
            thousands(f.idle.count)
        );
        histogram(&mut out, &f.idle);
        if let Some(server) = &f.consistent_with {
            let _ = writeln!(
                out,
                "  consistent with {server}: the backend closes connections idle that long"
            );
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    if !report.cannot_tell.is_empty() {
        let _ = writeln!(out, "\ncannot tell from these logs:");
        for line in &report.cannot_tell {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// Lines not read, first: how many and why (the first few).
fn unread(out: &mut String, r: &Report) {
    if r.unread == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "NOT READ: {} line(s) diagnose could not read (not judged):",
        thousands(r.unread)
    );
    for input in &r.inputs {
        for m in &input.malformed_first {
            let _ = writeln!(out, "  {m}");
        }
    }
}

fn header(out: &mut String, r: &Report) {
    let lines: u64 = r.inputs.iter().map(|i| i.lines).sum();
    let events: u64 = r.inputs.iter().map(|i| i.events).sum();
    let other: u64 = r.inputs.iter().map(|i| i.other).sum();
    let malformed: u64 = r.inputs.iter().map(|i| i.malformed).sum();
    let mut formats = std::collections::BTreeMap::<&str, u64>::new();
    for input in &r.inputs {
        for (f, n) in &input.formats {
            *formats.entry(f).or_default() += n;
        }
    }
    let formats: Vec<String> = formats
        .iter()
        .map(|(f, n)| format!("{f} {}", thousands(*n)))
        .collect();
    let _ = write!(
        out,
        "connlab diagnose: {} input(s), {} lines: {} requests",
        r.inputs.len(),
        thousands(lines),
        thousands(r.requests)
    );
    if !formats.is_empty() {
        let _ = write!(out, " ({})", formats.join(", "));
    }
    let client: u64 = r.inputs.iter().map(|i| i.client_lines).sum();
    let _ = write!(out, ", {} filter events", thousands(events));
    if client > 0 {
        let _ = write!(out, ", {} client-library errors", thousands(client));
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  {} diagnosed; skipped {} malformed and {} other lines",
        thousands(r.diagnosed),
        thousands(malformed),
        thousands(other)
    );
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::AccessLog => "access log",
        Source::FilterEvent => "filter event",
        Source::ClientLog => "client log",
    }
}

fn table(out: &mut String, diagnoses: &[CodeReport]) {
    let _ = writeln!(
        out,
        "\n  {:<24} {:>9} {:>8}  {:<24}  {:<24}  FROM",
        "DIAGNOSIS", "COUNT", "SHARE", "FIRST", "LAST"
    );
    for d in diagnoses {
        let share = d
            .share_pct
            .map(|p| format!("{p:.3}%"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<24} {:>9} {:>8}  {:<24}  {:<24}  {}",
            d.code,
            thousands(d.count),
            share,
            d.first.as_deref().unwrap_or("-"),
            d.last.as_deref().unwrap_or("-"),
            source_name(d.source)
        );
    }
}

fn code(out: &mut String, d: &CodeReport) {
    let _ = writeln!(
        out,
        "\n{} ({}, {})",
        d.code,
        thousands(d.count),
        source_name(d.source)
    );
    if let Some(confidence) = &d.confidence {
        let how = match confidence {
            connlab_filter::diagnose::Confidence::Confirmed => "confirmed".to_string(),
            connlab_filter::diagnose::Confidence::Likely if d.confirmed > 0 => format!(
                "likely ({} confirmed, {} likely)",
                thousands(d.confirmed),
                thousands(d.likely)
            ),
            connlab_filter::diagnose::Confidence::Likely => "likely".to_string(),
        };
        let _ = writeln!(out, "  sure     {how}");
    }
    if let Some(explain) = &d.explain {
        let _ = writeln!(out, "  why      {explain}");
    }
    for alternative in &d.alternatives {
        let _ = writeln!(out, "  or       {alternative}");
    }
    if let Some(e) = &d.example {
        let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  example  {}  {}", e.at, fields.join(" "));
        let _ = writeln!(out, "           {}", e.line.trim());
    }
    if let Some(idle) = &d.idle {
        let _ = writeln!(
            out,
            "  idle     {} s min, {} s median, {} s max over {} reused connection(s)",
            seconds(idle.min_ms),
            seconds(idle.median_ms),
            seconds(idle.max_ms),
            thousands(idle.count)
        );
    }
    if let Some(fix) = &d.fix {
        let _ = writeln!(out, "  fix      {fix}");
    }
    if let Some(replay) = &d.replay {
        let _ = writeln!(out, "  replay   {replay}");
    }
    if let Some((first, rest)) = d.collect_next.split_first() {
        let mut lines = first.lines();
        let _ = writeln!(out, "  collect  {}", lines.next().unwrap_or_default());
        for line in lines {
            let _ = writeln!(out, "           {line}");
        }
        for other in rest {
            let _ = writeln!(
                out,
                "  then     {}",
                other.lines().next().unwrap_or_default()
            );
        }
    }
}

fn histogram(out: &mut String, idle: &IdleReport) {
    let _ = writeln!(
        out,
        "  min {} s, median {} s, p90 {} s, max {} s",
        seconds(idle.min_ms),
        seconds(idle.median_ms),
        seconds(idle.p90_ms),
        seconds(idle.max_ms)
    );
    let most = idle.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    for bin in &idle.bins {
        let bar = "#".repeat(((bin.count * 40).div_ceil(most)) as usize);
        let _ = writeln!(
            out,
            "  {:>6}-{:<6} s {:>9} {bar}",
            seconds(bin.from_ms),
            seconds(bin.to_ms),
            thousands(bin.count)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
