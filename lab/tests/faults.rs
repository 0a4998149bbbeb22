//! Each fault, injected into real containers, does what it says: measured
//! from a second container with curl, as a person would check it.

use std::collections::HashMap;

use connlab::run::image;
use connlab::run::roles::backend;
use connlab::run::runtime::{ContainerSpec, Lab};
use connlab::scenario::fault::Fault;
use connlab::scenario::node::{BackendNode, Server};

const ROLE: &str = "backend";

const PROBE: &str = "probe";

/// curl from the probe to the backend: (exit code, seconds taken).
async fn curl(lab: &Lab, url: &str) -> (i64, f64) {
    let (code, stdout, _) = lab
        .exec(
            PROBE,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "2",
                "-w",
                "%{time_total}",
                url,
            ],
        )
        .await
        .expect("exec curl");
    (code, stdout.trim().parse().unwrap_or(f64::NAN))
}

/// A tunable backend and a probe container to curl it from; the backend's URL.
async fn backend_and_probe(sysctls: HashMap<String, String>) -> (Lab, String) {
    let image = image::ensure().unwrap_or_else(|e| panic!("{e}"));
    let mut lab = Lab::new(&image).await.expect("lab");
    let spec = ContainerSpec {
        role: ROLE.into(),
        net_admin: true,
        sysctls,
        ..Default::default()
    };
    backend::start(&mut lab, &BackendNode::new(Server::ConnlabBackend), spec)
        .await
        .expect("backend");
    lab.start(ContainerSpec {
        role: PROBE.into(),
        cmd: vec!["sleep".into(), "300".into()],
        ..Default::default()
    })
    .await
    .expect("probe");
    let url = format!("http://{}:8080/", lab.ip(ROLE).await.expect("ip"));
    (lab, url)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn delay_blackhole_pause_and_sysctls_act_on_the_target() {
    runtime().block_on(async {
        let sysctls = HashMap::from([("net.ipv4.tcp_timestamps".into(), "0".into())]);
        let (lab, url) = backend_and_probe(sysctls).await;

        // sysctls are the backend's own.
        let timestamps = lab
            .exec_ok(ROLE, &["cat", "/proc/sys/net/ipv4/tcp_timestamps"])
            .await
            .expect("read sysctl");
        assert_eq!(timestamps.trim(), "0");

        let (code, before) = curl(&lab, &url).await;
        assert_eq!(code, 0);

        // Delay: the SYN-ACK and the response each wait 300 ms.
        let delay = Fault::Delay {
            target: ROLE.into(),
            sport: 8080,
            delay_ms: 300,
            tcp_flags: None,
            loss_percent: 0,
            at_ms: 0,
        };
        delay
            .inject(&lab, &Default::default())
            .await
            .expect("delay");
        let (code, delayed) = curl(&lab, &url).await;
        assert_eq!(code, 0);
        assert!(
            delayed >= 0.55 && delayed > before,
            "{before} s before, {delayed} s delayed"
        );

        // Blackhole: no answer at all, so curl times out (28) rather than
        // being refused (7).
        let blackhole = Fault::Blackhole {
            target: ROLE.into(),
            at_ms: 0,
        };
        blackhole
            .inject(&lab, &Default::default())
            .await
            .expect("blackhole");
        assert_eq!(curl(&lab, &url).await.0, 28);
        lab.teardown().await;
    });
}

#[test]
fn a_paused_backend_accepts_nothing() {
    runtime().block_on(async {
        let (lab, url) = backend_and_probe(HashMap::new()).await;
        assert_eq!(curl(&lab, &url).await.0, 0);
        Fault::Pause {
            target: ROLE.into(),
            at_ms: 0,
        }
        .inject(&lab, &Default::default())
        .await
        .expect("pause");
        // The kernel still completes the handshake; the frozen server never
        // answers.
        assert_eq!(curl(&lab, &url).await.0, 28);
        lab.teardown().await;
    });
}
