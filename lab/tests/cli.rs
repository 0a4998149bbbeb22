//! What a user sees when something is missing or wrong: one line naming it,
//! a non-zero exit, and no container started.

use std::process::Command;

fn connlab(args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connlab"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run connlab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn no_docker_engine_is_one_line() {
    let (code, stderr) = connlab(
        &["run", "keepalive-race", "--variant", "node"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("connlab: no Docker engine:"), "{stderr}");
}

#[test]
fn a_malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good =
        std::fs::read_to_string(connlab::paths::root().join("scenarios/keepalive-race.toml"))
            .expect("shipped scenario");
    let bad = good.replacen("timeout_s = 90", "timeout_s = \"soon\"", 1);
    let line = bad
        .lines()
        .position(|l| l.contains("\"soon\""))
        .expect("edited line")
        + 1;
    std::fs::write(dir.path().join("keepalive-race.toml"), bad).expect("write");
    let scenarios = dir.path().to_string_lossy().into_owned();
    let (code, stderr) = connlab(&["--scenarios", &scenarios, "list"], &[]);
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!("keepalive-race.toml:{line}:13: timeout_s: invalid type");
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn an_unknown_scenario_or_variant_is_named() {
    let (code, stderr) = connlab(&["run", "no-such-scenario"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no scenario `no-such-scenario`"),
        "{stderr}"
    );
    let (code, stderr) = connlab(&["run", "keepalive-race", "--variant", "nope"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no variant `nope` in `keepalive-race`"),
        "{stderr}"
    );
}
