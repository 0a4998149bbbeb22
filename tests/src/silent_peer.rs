//! A backend that goes silent: it serves HTTP/1.1 keep-alive from its own
//! network namespace (a veth pair to this one), and `go_silent()` drops
//! every packet that reaches it there (iptables in that namespace only), so
//! its connections turn half-open: what a dead node or a lost NAT entry
//! leaves behind. No Docker: `ip netns` and a thread that enters the
//! namespace only to open the listening socket (a socket stays in the
//! namespace it was made in). Needs root, like the lab.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nok\n";

pub struct SilentPeer {
    netns: String,
    veth: String,
    addr: SocketAddr,
}

/// Runs a command; its stderr in the panic message when it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (the dead-peer tests need `ip` and root)", args[0]));
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The listening socket, made inside `netns` by a thread that enters it.
fn listen_in(netns: &str, addr: SocketAddr) -> TcpListener {
    let path = format!("/var/run/netns/{netns}");
    thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open the namespace");
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        TcpListener::bind(addr).expect("bind in the namespace")
    })
    .join()
    .expect("listener thread")
}

impl SilentPeer {
    /// The backend, answering every request `200` on kept-alive
    /// connections until `go_silent`.
    pub fn start() -> SilentPeer {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let netns = format!("connlab-silent-{pid}-{n}");
        // Interface names have at most 15 bytes.
        let veth = format!("cls{}x{n}", pid % 100_000);
        // A /30 per peer; the third octet from the pid keeps two test
        // processes apart, the fourth from the peer's number.
        let net = format!("10.232.{}.{}", pid % 250, (n % 60) * 4);
        let base: std::net::Ipv4Addr = net.parse().expect("address");
        let [a, b, c, d] = base.octets();
        let (near, far) = (
            format!("{a}.{b}.{c}.{}", d + 1),
            format!("{a}.{b}.{c}.{}", d + 2),
        );
        let peer = SilentPeer {
            netns: netns.clone(),
            veth: veth.clone(),
            addr: SocketAddr::new(far.parse().expect("address"), 18080),
        };
        // From here on, Drop removes whatever was made.
        run(&["ip", "netns", "add", &netns]);
        let inner = format!("{veth}p");
        run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", &inner,
        ]);
        run(&["ip", "link", "set", &inner, "netns", &netns]);
        run(&["ip", "addr", "add", &format!("{near}/30"), "dev", &veth]);
        run(&["ip", "link", "set", &veth, "up"]);
        let exec = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", netns.as_str()];
            all.extend_from_slice(args);
            run(&all);
        };
        exec(&["ip", "addr", "add", &format!("{far}/30"), "dev", &inner]);
        exec(&["ip", "link", "set", &inner, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        let listener = listen_in(&netns, peer.addr);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            if stream.write_all(OK).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        peer
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on every packet to the backend is dropped in its
    /// namespace: no ACK, no RST, no FIN ever comes back.
    pub fn go_silent(&self) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.netns,
            "iptables",
            "-A",
            "INPUT",
            "-j",
            "DROP",
        ]);
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; then the namespace.
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}
