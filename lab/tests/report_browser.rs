//! The HTML report of recorded runs (tests/data/recorded, no Docker) in
//! headless Chromium: it loads without errors or network requests, every
//! plot has its marks, half-open's throughput plot its fault and
//! snat-timewait's ladder its challenge ACKs. A screenshot is kept at
//! target/connlab-report.png for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use connlab::outputs::{html, recorded};
use connlab::paths;

/// `$CONNLAB_CHROMIUM`, else the first Chromium on PATH (`make host-tools`
/// installs Debian's).
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CONNLAB_CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no chromium on PATH: run `make host-tools`"))
}

fn headless(args: &[&str], page: &Path) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--allow-file-access-from-files",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs in the page before anything else: records errors (script errors,
/// console.error, resources that failed) and, once loaded, the marks of
/// each plot and every resource the page fetched, into `#connlab-check`.
const CHECK: &str = r#"<script>
window.__errors = [];
addEventListener('error', e => __errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || e)), true);
const __consoleError = console.error;
console.error = (...a) => { __errors.push(a.join(' ')); __consoleError(...a); };
addEventListener('load', () => {
  const fill = (el, color) => (el.getAttribute('fill') || '').toLowerCase() === color;
  const plots = [...document.querySelectorAll('figure[data-plot]')].map(f => ({
    plot: f.dataset.plot, expected: f.dataset.marks === undefined ? null : +f.dataset.marks,
    run: f.closest('section') ? f.closest('section').querySelector('h2').textContent : '',
    circles: f.querySelectorAll('svg circle').length,
    // Filled (a reused connection) in the failure colour, and the Envoy
    // lanes' `503 UC` labels: the keep-alive race.
    reusedFailed: [...f.querySelectorAll('svg circle')]
      .filter(c => (c.getAttribute('fill') || '').toLowerCase() === '#c62828').length,
    uc503: [...f.querySelectorAll('svg text')].filter(t => t.textContent.trim().startsWith('503 UC')).length,
    // Requests that never ended (half-open's hung workers).
    unfinished: [...f.querySelectorAll('svg circle')].filter(c => fill(c, '#455a64')).length,
    // Shaded fault intervals.
    faults: [...f.querySelectorAll('svg rect')].filter(r => fill(r, '#ffb300')).length,
    // A packet ladder's arrows (one head each) and the red ones: challenge ACKs.
    arrows: f.querySelectorAll('svg polygon').length,
    redArrows: [...f.querySelectorAll('svg polygon')].filter(p => fill(p, '#ff0000')).length,
    width: f.querySelector('svg') ? f.querySelector('svg').getBoundingClientRect().width : 0,
  }));
  const pre = document.createElement('pre');
  pre.id = 'connlab-check';
  pre.textContent = JSON.stringify({
    errors: __errors, plots,
    resources: performance.getEntriesByType('resource').map(r => r.name),
    summaryRows: document.querySelectorAll('#summary tr').length - 1,
    checkRows: document.querySelectorAll('table.checks tr').length,
  });
  document.body.appendChild(pre);
});
</script>"#;

#[test]
fn the_recorded_report_renders_in_chromium_with_every_mark() {
    let root = paths::root();
    let recorded = root.join("tests/data/recorded");
    let out = root.join("target/connlab-report-test");
    let _ = std::fs::remove_dir_all(&out);
    let index = html::write_all(&out, &recorded).unwrap_or_else(|e| panic!("{e:#}"));
    let html = std::fs::read_to_string(&index).expect("index.html");
    let runs = recorded::find_runs(&recorded).len();

    let check = out.join("check.html");
    std::fs::write(
        &check,
        html.replacen("<head>", &format!("<head>{CHECK}"), 1),
    )
    .unwrap();
    let (dom, stderr) = headless(&["--virtual-time-budget=5000", "--dump-dom"], &check);
    let json = dom
        .split("<pre id=\"connlab-check\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the page script did not run:\n{dom}\n{stderr}"));
    let json = json.replace("&quot;", "\"").replace("&amp;", "&");
    let result: serde_json::Value = serde_json::from_str(&json).expect("check JSON");

    assert_eq!(result["errors"], serde_json::json!([]), "{stderr}");
    assert_eq!(
        result["resources"],
        serde_json::json!([]),
        "fetched something"
    );
    assert_eq!(result["summaryRows"], runs);
    // Every run's checks as a table (a header row and one per check).
    assert!(
        result["checkRows"].as_u64().unwrap() > 2 * runs as u64,
        "{result}"
    );
    let plots = result["plots"].as_array().expect("plots");
    // One timeline per run, but snat-timewait/precise's: a script replays
    // its packets, there are no client requests to place.
    assert_eq!(
        plots.iter().filter(|p| p["plot"] == "timeline").count(),
        runs - 1,
        "{plots:?}"
    );
    for plot in plots.iter().filter(|p| p["plot"] != "ladder") {
        assert!(plot["expected"].as_u64().unwrap() > 0, "{plot}");
        assert_eq!(plot["circles"], plot["expected"], "{plot}");
        assert!(plot["width"].as_f64().unwrap() > 300.0, "{plot}");
    }
    // The race at a glance in node's timeline: each 503 on a reused
    // connection, in the client's lane and in Envoy's upstream lanes.
    let node = plots
        .iter()
        .find(|p| p["plot"] == "timeline" && p["run"].as_str().unwrap_or("").contains("/node-0"))
        .unwrap_or_else(|| panic!("no timeline of keepalive-race/node-0: {plots:?}"));
    assert_eq!(node["uc503"], 3, "{node}");
    assert!(node["reusedFailed"].as_u64().unwrap() >= 3, "{node}");
    let find = |kind: &str, run: &str| {
        plots
            .iter()
            .find(|p| p["plot"] == kind && p["run"].as_str().unwrap_or("").contains(run))
            .unwrap_or_else(|| panic!("no {kind} plot of {run}: {plots:?}"))
    };
    // half-open/broken: node B's 4 workers hang (one lane each goes quiet)
    // and throughput halves: a p99 mark per second (20), the three faults
    // at 5.25 s shaded as one interval in both plots.
    let timeline = find("timeline", "half-open/broken-0");
    assert_eq!(timeline["unfinished"], 4, "{timeline}");
    assert_eq!(timeline["faults"], 1, "{timeline}");
    let throughput = find("throughput", "half-open/broken-0");
    assert_eq!(throughput["circles"], 20, "{throughput}");
    assert_eq!(throughput["faults"], 1, "{throughput}");
    // snat-timewait/precise: the seed's 17 segments, the 3 challenge ACKs red.
    let ladder = find("ladder", "snat-timewait/precise-0");
    assert_eq!(ladder["arrows"], 17, "{ladder}");
    assert_eq!(ladder["redArrows"], 3, "{ladder}");
    assert!(ladder["width"].as_f64().unwrap() > 300.0, "{ladder}");
    assert!(
        !stderr.contains("Uncaught"),
        "console errors in chromium's log:\n{stderr}"
    );

    let png = root.join("target/connlab-report.png");
    let _ = std::fs::remove_file(&png);
    headless(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,2600",
        ],
        &index,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");

    // A second picture of keepalive-race alone, whose report opens with
    // the race: the whole page is too tall for one screenshot.
    let race_root = root.join("target/connlab-report-test-race");
    let _ = std::fs::remove_dir_all(&race_root);
    std::fs::create_dir_all(race_root.join("runs")).unwrap();
    std::os::unix::fs::symlink(
        recorded.join("keepalive-race"),
        race_root.join("runs/keepalive-race"),
    )
    .unwrap();
    let race_index = html::write_all(&race_root.join("out"), &race_root.join("runs"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let race_png = root.join("target/connlab-report-keepalive-race.png");
    let _ = std::fs::remove_file(&race_png);
    headless(
        &[
            &format!("--screenshot={}", race_png.display()),
            "--window-size=1100,2000",
        ],
        &race_index,
    );
    let bytes = std::fs::read(&race_png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
}
