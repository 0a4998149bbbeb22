//! Every container and network a run creates is gone after it, whether it
//! passed, failed, panicked, got Ctrl-C or was killed outright (then the next
//! run sweeps it). Checked with the docker CLI, as a user would.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connlab::run::image;
use connlab::run::runtime::{ContainerSpec, Lab};

mod support;

/// Containers, networks and volumes carrying `label`.
fn leftovers(label: &str) -> Vec<String> {
    support::docker_objects(label)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn image() -> String {
    image::ensure().unwrap_or_else(|e| panic!("{e}"))
}

fn sleeper() -> ContainerSpec {
    ContainerSpec {
        role: "sleeper".into(),
        cmd: vec!["sleep".into(), "300".into()],
        ..Default::default()
    }
}

#[test]
fn a_panic_inside_a_run_removes_its_containers_and_network() {
    let image = image();
    let run_id = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&run_id);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime().block_on(async {
            let mut lab = Lab::new(&image).await.expect("lab");
            *seen.lock().unwrap() = lab.run_id.clone();
            lab.start(sleeper()).await.expect("start");
            assert!(!leftovers(&format!("connlab.run={}", lab.run_id)).is_empty());
            panic!("a checker bug");
        })
    }));
    assert!(result.is_err());
    let run_id = run_id.lock().unwrap().clone();
    assert_eq!(
        leftovers(&format!("connlab.run={run_id}")),
        Vec::<String>::new()
    );
}

#[test]
fn a_failed_start_removes_what_was_started() {
    let image = image();
    let run_id = runtime().block_on(async {
        let mut lab = Lab::new(&image).await.expect("lab");
        lab.start(sleeper()).await.expect("start");
        let broken = ContainerSpec {
            role: "broken".into(),
            cmd: vec!["/no/such/program".into()],
            ..Default::default()
        };
        assert!(lab.start(broken).await.is_err());
        lab.run_id.clone()
    });
    assert_eq!(
        leftovers(&format!("connlab.run={run_id}")),
        Vec::<String>::new()
    );
}

/// Starts `connlab run keepalive-race --variant node` and waits until its
/// first container exists.
fn start_cli_run() -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_connlab"))
        .args(["run", "keepalive-race", "--variant", "node"])
        .env("CONNLAB_IMAGE", image())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn connlab");
    let label = format!("connlab.pid={}", child.id());
    let start = Instant::now();
    while leftovers(&label).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

#[test]
fn ctrl_c_removes_everything_before_exit() {
    let mut child = start_cli_run();
    let pid = child.id();
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        leftovers(&format!("connlab.pid={pid}")),
        Vec::<String>::new()
    );
}

#[test]
fn a_killed_run_is_swept_by_the_next_one() {
    let mut child = start_cli_run();
    let pid = child.id();
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let label = format!("connlab.pid={pid}");
    assert!(
        !leftovers(&label).is_empty(),
        "SIGKILL leaves containers behind"
    );
    // The next run sweeps what a dead process left.
    let image = image();
    runtime().block_on(async {
        let lab = Lab::new(&image).await.expect("lab");
        lab.teardown().await;
    });
    assert_eq!(leftovers(&label), Vec::<String>::new());
    // ...and its temp dir.
    let dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("connlab-run-{pid}-"))
        })
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
}
