//! Test certificates made per run with `connlab::envoy::certs` (rcgen, no openssl):
//! a CA (`ca.pem`), a server certificate for `localhost` / 127.0.0.1
//! (`server.pem`, `server.key`) and a client certificate (`client.pem`,
//! `client.key`), in a temp dir that is removed on drop.

use std::path::PathBuf;

use connlab::envoy::certs::Authority;

pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("connlab-certs-")
            .tempdir()
            .expect("temp dir for certificates");
        let ca = Authority::create(dir.path()).expect("CA");
        ca.issue("server", &["localhost", "127.0.0.1"])
            .expect("server certificate");
        ca.issue("client", &[]).expect("client certificate");
        Certs { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}
