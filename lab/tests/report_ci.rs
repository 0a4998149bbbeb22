//! The CI side of the lab, without Docker: the matrix `connlab list --json`
//! prints has every variant of every scenario file; the workflow takes its
//! matrix from that command and matches GitHub's workflow schema; `connlab report` renders
//! recorded runs.

use std::collections::BTreeSet;
use std::process::Command;

use connlab::{paths, scenario};

fn connlab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connlab"))
        .args(args)
        .output()
        .expect("run connlab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_matrix_has_every_variant_of_every_scenario() {
    let (code, stdout, stderr) = connlab(&["list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("a JSON array");
    let listed: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| {
            for field in ["expect", "seed", "about"] {
                assert!(r[field].is_string(), "{field} missing in {r}");
            }
            assert!(r["timeout_s"].as_u64().is_some_and(|t| t > 0), "{r}");
            (
                r["scenario"].as_str().unwrap().to_string(),
                r["variant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let scenarios = scenario::load_all(&paths::root().join("scenarios")).expect("scenarios");
    let expected: BTreeSet<(String, String)> = scenarios
        .iter()
        .flat_map(|s| s.variants.iter().map(|v| (s.name.clone(), v.name.clone())))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(rows.len(), expected.len(), "a variant listed twice");
}

#[test]
fn the_workflow_runs_the_matrix_from_connlab_list() {
    let workflow = std::fs::read_to_string(paths::root().join(".github/workflows/scenarios.yml"))
        .expect("workflow");
    assert!(workflow.contains("connlab list --json"), "matrix source");
    assert!(
        workflow.contains("include: ${{ fromJSON(needs.image.outputs.matrix) }}"),
        "matrix use"
    );
    assert!(workflow.contains("--junit") && workflow.contains("--report"));
    assert!(workflow.contains("make test"));
}

/// GitHub's workflow schema (check-jsonschema's vendored copy; actionlint
/// from PyPI has no wheels and its build downloads a binary).
#[test]
fn the_workflow_matches_githubs_schema() {
    let check = paths::root().join(".venv/bin/check-jsonschema");
    assert!(
        check.is_file(),
        "{} missing: run `make lint-workflows`",
        check.display()
    );
    let out = Command::new(&check)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(".github/workflows/scenarios.yml")
        .current_dir(paths::root())
        .output()
        .expect("run check-jsonschema");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connlab_report_renders_recorded_runs_and_names_an_empty_dir() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_dir = out.path().to_string_lossy().into_owned();
    let recorded = paths::root().join("tests/data/recorded");
    let (code, stdout, stderr) =
        connlab(&["report", &recorded.to_string_lossy(), "--out", &out_dir]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("index.html"), "{stdout}");
    let html = std::fs::read_to_string(out.path().join("index.html")).expect("index.html");
    assert!(html.contains("keepalive-race"));
    assert!(!html.contains("<script"), "the report needs no script");

    let empty = tempfile::tempdir().expect("temp dir");
    let (code, _, stderr) =
        connlab(&["report", &empty.path().to_string_lossy(), "--out", &out_dir]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no recorded runs under"), "{stderr}");
}
