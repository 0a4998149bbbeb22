//! A capture in a real container records the packets a request made, and
//! the file goes away with the run.

use connlab::run::capture::Capture;
use connlab::run::image;
use connlab::run::roles::backend;
use connlab::run::runtime::{ContainerSpec, Lab};
use connlab::scenario::node::{BackendNode, Server};

const ROLE: &str = "backend";

#[test]
fn a_capture_holds_the_requests_packets_and_leaves_with_the_run() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let image = image::ensure().unwrap_or_else(|e| panic!("{e}"));
        let mut lab = Lab::new(&image).await.expect("lab");
        let node = BackendNode {
            close_per_request: true,
            ..BackendNode::new(Server::ConnlabBackend)
        };
        let spec = ContainerSpec {
            role: ROLE.into(),
            net_admin: true,
            ..Default::default()
        };
        backend::start(&mut lab, &node, spec)
            .await
            .expect("backend");

        let capture = Capture::start(&lab, ROLE, "tcp port 8080")
            .await
            .expect("capture");
        // From inside the node: `-i any` sees loopback too.
        lab.exec_ok(
            ROLE,
            &["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:8080/"],
        )
        .await
        .expect("curl");
        let file = capture.stop(&lab).await.expect("stop");
        let bytes = std::fs::read(&file).expect("capture file");
        // pcap's magic (microsecond, little-endian) and more than its header:
        // a request's handshake, data and close.
        assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "{file:?}");
        assert!(bytes.len() > 24 + 6 * 16, "{} bytes", bytes.len());

        let dir = lab.dir().to_path_buf();
        lab.teardown().await;
        assert!(!file.exists() && !dir.exists(), "{dir:?} left behind");
    });
}
