//! `connlab`: list and run scenarios.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Replay documented proxy connection failures with real Envoy and real servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios.
    List,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::List => Ok(()),
    }
}
