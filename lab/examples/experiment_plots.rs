//! The plots of the by-hand experiments (compose/experiments/*/README.md),
//! drawn with the lab's own evidence code:
//!
//!     cargo run -p connlab-lab --example experiment_plots -- \
//!         timeline CLIENT_JSONL FAULT_S OUT.svg
//!
//! CLIENT_JSONL is `connlab-client`'s stdout (one JSON line per request).

use anyhow::{bail, Context};
use connlab::{client, timeline};

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
            let svg = timeline::plot_svg(&t).map_err(anyhow::Error::msg)?;
            std::fs::write(out, svg).with_context(|| format!("write {out}"))?;
            println!(
                "{out}: recovered after {:?} s, dip to {} % of before",
                t.recovered_after_s, t.dip_pct
            );
            Ok(())
        }
        _ => bail!("usage: experiment_plots timeline CLIENT_JSONL FAULT_S OUT.svg"),
    }
}
