//! Packet captures as evidence: tcpdump inside a node's network namespace,
//! writing into the run's shared directory. The file therefore lives in the
//! run's temp dir on the host and goes with it: removed at teardown, after a
//! panic, and — for a run killed by Ctrl-C — by the next run's sweep of dead
//! runs' directories. Nothing is left in the container to clean up.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::runtime::{Lab, LabError, SHARED_DIR};

/// tcpdump needs this long at most to open its interface and write the
/// file header.
const READY: Duration = Duration::from_secs(10);

/// The capture file of `node` in the shared directory.
pub fn file_name(node: &str) -> String {
    format!("capture-{node}.pcap")
}

/// tcpdump on every interface (`-i any`: a router's two sides both show)
/// writing `path`, with a pcap `filter` such as `tcp port 8080`.
pub fn tcpdump(path: &str, filter: &str) -> Vec<String> {
    // --immediate-mode and -U: hand each packet over and write it at once
    // (by default the kernel holds packets in blocks for up to a second,
    // and a SIGINT before that loses them); -Z root: keep root's rights on
    // the shared directory (tcpdump drops to its own user by default);
    // -s 200: headers are what the checks read.
    let mut cmd: Vec<String> = [
        "tcpdump",
        "--immediate-mode",
        "-i",
        "any",
        "-n",
        "-U",
        "-Z",
        "root",
        "-s",
        "200",
        "-w",
        path,
    ]
    .map(String::from)
    .to_vec();
    cmd.extend(filter.split_whitespace().map(String::from));
    cmd
}

/// A tcpdump running in a node.
#[derive(Debug)]
pub struct Capture {
    node: String,
    file: String,
}

impl Capture {
    /// Starts [`tcpdump`] in `node` and waits until it is capturing.
    pub async fn start(lab: &Lab, node: &str, filter: &str) -> Result<Capture, LabError> {
        let file = file_name(node);
        let path = format!("{SHARED_DIR}/{file}");
        let cmd = tcpdump(&path, filter);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        lab.exec_detached(node, &cmd).await?;
        // The global header (24 bytes) is written once the interface is open.
        lab.wait_until(node, &format!("test -s {path}"), READY)
            .await?;
        Ok(Capture {
            node: node.to_string(),
            file,
        })
    }

    /// Stops tcpdump (SIGINT: it flushes and closes the file) and returns the
    /// file's path on the host.
    pub async fn stop(self, lab: &Lab) -> Result<PathBuf, LabError> {
        lab.exec(&self.node, &["pkill", "-INT", "-x", "tcpdump"])
            .await?;
        lab.wait_until(&self.node, "! pgrep -x tcpdump >/dev/null", READY)
            .await?;
        Ok(lab.dir().join(&self.file))
    }
}
