//! A checked-in compose file brought up with Debian's docker-compose 1.29,
//! driven by the commands its own header gives a person (wait for readiness,
//! inject the faults), then its workload run: the failure reproduces by hand
//! as in the lab. Torn down with `down -v` whatever happens; the containers,
//! networks and volume carry the test's pid, so the lab's sweep removes them
//! if this process dies first.

use std::process::{Command, Output};

use connlab::paths;
use connlab::programs::client::{self, Record};
use connlab::run::image;

mod support;

/// A compose project of this test process, taken down on drop.
struct Project {
    name: String,
    file: String,
    image: String,
    /// `CONNLAB_PID`: this process's, or another one.
    pid: String,
    /// Held while the project exists: the file's subnets are fixed, so two
    /// test processes on one Docker host (two checkouts) take turns.
    _lock: std::os::unix::net::UnixListener,
}

/// An exclusive host-wide lock per compose file, held until drop: an
/// abstract Unix socket name (Linux), which only one process can bind and
/// the kernel frees when the process ends — no lock file left behind.
fn lock(scenario: &str, variant: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let name = format!("connlab-compose-{scenario}-{variant}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            Err(e) => panic!("lock {name}: {e}"),
        }
    }
}

impl Project {
    fn new(scenario: &str, variant: &str) -> Project {
        let image = image::ensure().unwrap_or_else(|e| panic!("{e}"));
        let wasm = paths::filter_wasm();
        assert!(
            wasm.is_file(),
            "{} missing: run `make filter`",
            wasm.display()
        );
        let version = Command::new("docker-compose")
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("docker-compose: {e} (run `make host-tools`)"));
        assert!(version.status.success(), "{version:?}");
        Project {
            name: format!(
                "connlab-compose-{}-{scenario}-{variant}",
                std::process::id()
            ),
            file: format!("compose/{scenario}/{variant}.yaml"),
            image,
            pid: std::process::id().to_string(),
            _lock: lock(scenario, variant),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(paths::root())
            .env("CONNLAB_IMAGE", &self.image)
            .env("CONNLAB_FILTER_WASM", paths::filter_wasm())
            .env("CONNLAB_RUN", &self.name)
            .env("CONNLAB_PID", &self.pid);
        command
    }

    fn dc(&self, args: &[&str]) -> Output {
        self.command("docker-compose")
            .args(["-p", &self.name, "-f", &self.file])
            .args(args)
            .output()
            .expect("docker-compose")
    }

    /// Runs the file's own commands for a person: `dc up -d`, the readiness
    /// waits, the faults put in place before the workload (with `dc` bound to
    /// this project instead of the file's default name).
    fn up_by_hand(&self) {
        let text = std::fs::read_to_string(paths::root().join(&self.file)).expect("compose file");
        let mut script = format!(
            "set -euo pipefail\ndc() {{ docker-compose -p {} -f {} \"$@\"; }}\n",
            self.name, self.file
        );
        let commands = header_commands(
            &text,
            &["From the repository root", "Wait until", "Faults, in place"],
        );
        for line in commands {
            if !line.starts_with("export ") && !line.starts_with("dc() ") {
                script.push_str(&line);
                script.push('\n');
            }
        }
        let out = self
            .command("timeout")
            .args(["180", "bash", "-c", &script])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "the header's commands failed:\n{script}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `dc run --rm -T <client>`: its records.
    fn run_client(&self, service: &str) -> Vec<Record> {
        let out = self.dc(&["run", "--rm", "-T", service]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{service}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        client::parse_output(&stdout)
            .unwrap_or_else(|e| panic!("{service}: {e}\n{stdout}"))
            .records
    }

    fn exec(&self, service: &str, cmd: &[&str]) -> String {
        let mut args = vec!["exec", "-T", service];
        args.extend(cmd);
        let out = self.dc(&args);
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let out = self.dc(&["down", "-v", "-t", "1"]);
        if !out.status.success() {
            eprintln!("down -v: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The `#   command` lines of the header sections whose titles start with
/// one of `titles`, in file order.
fn header_commands(text: &str, titles: &[&str]) -> Vec<String> {
    let mut take = false;
    let mut commands = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(command) = line.strip_prefix("#   ") {
            if take {
                commands.push(command.to_string());
            }
        } else if let Some(title) = line.strip_prefix("# ") {
            take = titles.iter().any(|t| title.starts_with(t));
        }
    }
    commands
}

fn classes(records: &[Record]) -> Vec<String> {
    let mut classes: Vec<String> = records.iter().map(Record::class).collect();
    classes.sort();
    classes
}

fn stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn keepalive_race_reproduces_by_hand_from_its_compose_file() {
    let project = Project::new("keepalive-race", "node");
    project.up_by_hand();
    let records = project.run_client("client");
    // Each pair: a fresh request, then one on the reused connection the
    // backend has closed while its FIN is held.
    assert_eq!(
        classes(&records),
        ["200", "200", "200", "503", "503", "503"],
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .filter(|r| r.status == Some(503))
            .all(|r| r.seq % 2 == 1),
        "{records:?}"
    );
    let stats = project.exec("envoy", &["curl", "-s", "localhost:9901/stats"]);
    assert_eq!(
        stat(
            &stats,
            "cluster.backend.upstream_cx_destroy_remote_with_active_rq"
        ),
        Some(3)
    );
    let access_log = project.exec("envoy", &["cat", "/connlab/envoy.access.log"]);
    assert_eq!(access_log.matches("\" 503 UC ").count(), 3, "{access_log}");
}

#[test]
fn sniff_timeout_by_hand_issues_certificates_and_crosses_mtls() {
    let project = Project::new("sniff-timeout", "strict");
    project.up_by_hand();
    // Over the sniffed HTTP chain, mTLS to the server's STRICT listener
    // with the certificates the `certs` service issued at `up`.
    assert_eq!(classes(&project.run_client("fast")), vec!["200"; 10]);
    // Slower than the detection timeout: plaintext passthrough, dropped.
    assert_eq!(classes(&project.run_client("slow")), vec!["eof"; 10]);
    let stats = project.exec("server", &["curl", "-s", "localhost:9901/stats"]);
    assert_eq!(
        stat(&stats, "listener.inbound.ssl.connection_error"),
        Some(10)
    );
}

/// Docker objects labelled `connlab.run=<run>`: containers, networks, volumes.
fn labelled(run: &str) -> Vec<String> {
    support::docker_objects(&format!("connlab.run={run}"))
}

#[test]
fn the_lab_sweeps_a_project_whose_process_died_and_leaves_one_by_hand() {
    // The orphan's owner: alive while its project comes up (so no lab run
    // on this host sweeps it half made), dead before the sweep.
    let mut owner = Command::new("sleep").arg("120").spawn().expect("sleep");
    let mut orphan = Project::new("keepalive-race", "fixed-idle-timeout");
    orphan.pid = owner.id().to_string();
    let mut by_hand = Project::new("keepalive-race", "fixed-server-keepalive");
    by_hand.pid = String::new();
    for project in [&orphan, &by_hand] {
        let out = project.dc(&["up", "-d"]);
        assert!(out.status.success(), "{out:?}");
    }
    owner.kill().expect("kill");
    owner.wait().expect("wait");
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let docker = connlab::run::runtime::docker().await.expect("docker");
        connlab::run::runtime::sweep_dead_runs(&docker).await;
    });
    assert_eq!(labelled(&orphan.name), Vec::<String>::new());
    assert!(
        labelled(&by_hand.name).len() >= 4,
        "a person's project was swept"
    );
}
