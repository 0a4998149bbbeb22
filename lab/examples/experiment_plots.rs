//! The plots of the by-hand experiments (compose/experiments/*/README.md),
//! drawn with the lab's own evidence code:
//!
//!     cargo run -p connlab-lab --example experiment_plots -- \
//!         timeline CLIENT_JSONL FAULT_S OUT.svg
//!     cargo run -p connlab-lab --example experiment_plots -- \
//!         ladder PCAP SERVER_IP:PORT TITLE OUT.svg
//!
//! CLIENT_JSONL is `connlab-client`'s stdout (one JSON line per request);
//! PCAP a capture at the server. `ladder` also prints what each SYN that met
//! TIME_WAIT got (`packet_sequence::reuse_counts`).

use anyhow::{bail, Context};
use std::net::SocketAddr;

use connlab::evidence::{packet_sequence, pcap, timeline};
use connlab::outputs::ladder::{Ladder, Side};
use connlab::outputs::plots;
use connlab::programs::client;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["timeline", input, fault_s, out] => {
            let text = std::fs::read_to_string(input).with_context(|| format!("read {input}"))?;
            let records = client::parse_output(&text)
                .with_context(|| format!("{input}: not connlab-client output"))?
                .records;
            let fault_s: u64 = fault_s.parse().context("FAULT_S: whole seconds")?;
            let t = timeline::timeline(&records, fault_s, 2);
            let svg = plots::fault_throughput(&t).map_err(anyhow::Error::msg)?;
            std::fs::write(out, svg).with_context(|| format!("write {out}"))?;
            println!(
                "{out}: recovered after {:?} s, dip to {} % of before",
                t.recovered_after_s, t.dip_pct
            );
            Ok(())
        }
        ["ladder", input, server, title, out] => {
            let capture = pcap::read(input.as_ref())?;
            let server: SocketAddr = server.parse().context("SERVER: ip:port")?;
            let counts = packet_sequence::reuse_counts(&capture.segments, |s| s == server);
            println!("{}", serde_json::to_string(&counts)?);
            let side = Side {
                segments: &capture.segments,
                near: server,
                near_column: 1,
                far_column: 0,
            };
            let ladder =
                Ladder::from_sides(title, &["peer (as the server sees it)", "server"], &[side]);
            std::fs::write(out, ladder.to_svg()?).with_context(|| format!("write {out}"))?;
            Ok(())
        }
        _ => bail!(
            "usage: experiment_plots timeline CLIENT_JSONL FAULT_S OUT.svg\n       \
             experiment_plots ladder PCAP SERVER_IP:PORT TITLE OUT.svg"
        ),
    }
}
