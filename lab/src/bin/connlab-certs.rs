//! `connlab-certs DIR NODE...`: a fresh CA and, per node, the key and
//! certificate the lab issues its Envoys (`certs::Authority`, the node's
//! SPIFFE identity and its name as SANs), as PEM files in DIR. The lab calls
//! the library directly; compose files run this in a one-shot `certs`
//! service at `up` time, so no private key is ever checked in.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use connlab::envoy::certs::Authority;
use connlab::run::roles::envoy;

#[derive(Parser)]
#[command(about = "Issue the lab's CA and node certificates into a directory")]
struct Args {
    /// Where ca.pem, <node>.pem and <node>.key go.
    dir: PathBuf,
    /// The nodes to issue for (Envoy node names).
    nodes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("{}", args.dir.display()))?;
    let ca = Authority::create(&args.dir)?;
    for node in &args.nodes {
        let files = envoy::issue_certificate(&ca, node)?;
        eprintln!(
            "connlab-certs: {} ({})",
            files.cert.display(),
            files.spiffe_id
        );
    }
    Ok(())
}
