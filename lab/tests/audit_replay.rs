//! `connlab audit --replay` in the lab (Docker): a real dump's pinned
//! source port rebuilt as a variant of source-port-reuse, REPRODUCED with
//! its own settings and FIXED with the port unpinned, every replacement
//! said. (`--backend backend=close` leaves keepalive-race out: nothing is
//! reused, so this replays one exposure, in about 15 s.)
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_pinned_port_reproduces_and_the_fix_fixes_it() {
    let dump = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/audit/lab/source-port-reuse/sequential/envoy.config_dump.json");
    let out = Command::new(env!("CARGO_BIN_EXE_connlab"))
        .args([
            "audit",
            dump.to_str().unwrap(),
            "--backend",
            "backend=close",
            "--replay",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("replay source-port-reuse on cluster `backend`: source port 40000, 1 socket option(s), retry_on `connect-failure`, num_retries 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  replaced  endpoints: its 1 endpoint(s) → the lab's connlab-backend"),
        "{stdout}"
    );
    let yours = stdout.find("  your settings:").unwrap();
    let fixed = stdout.find("  with the fix, source port 0").unwrap();
    assert!(stdout[yours..fixed].contains(" REPRODUCED ["), "{stdout}");
    assert!(
        stdout[yours..fixed].contains("source_address_conflict×1"),
        "{stdout}"
    );
    assert!(stdout[fixed..].contains("      FIXED ["), "{stdout}");
    assert!(stdout[fixed..].contains("client 200×2"), "{stdout}");
    assert!(
        stdout.contains(
            "  half-open on cluster `backend` (`connlab run half-open` replays the catalogue's)"
        ),
        "{stdout}"
    );
}
