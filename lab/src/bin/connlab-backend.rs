//! `connlab-backend`: the tunable backend as a process (the lab image runs it
//! in a container). Flags map one to one onto `connlab::programs::backend::Behaviour`.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use connlab::programs::backend::{self, Behaviour};

#[derive(Parser)]
#[command(about = "A real HTTP/1.1 server whose connection handling is tunable")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Close a keep-alive connection idle this many ms after a response.
    #[arg(long)]
    idle_close_ms: Option<u64>,
    /// Answer the Nth request on a connection with `Connection: close`.
    #[arg(long)]
    close_after: Option<u32>,
    /// After a `Connection: close` response, wait up to this many ms for the
    /// client to close first (the client then holds TIME_WAIT).
    #[arg(long)]
    await_client_close_ms: Option<u64>,
    /// Close with RST (SO_LINGER 0) instead of FIN.
    #[arg(long)]
    rst: bool,
    /// HTTP/1.0 style: close after every response (the server holds TIME_WAIT).
    #[arg(long)]
    close_per_request: bool,
    /// Delay every response by this many ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Send this banner line on accept, before any request.
    #[arg(long)]
    banner: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("listen on {}", args.listen))?;
    eprintln!("connlab-backend listening on {}", listener.local_addr()?);
    backend::serve(
        listener,
        Behaviour {
            idle_close: args.idle_close_ms.map(Duration::from_millis),
            close_after: args.close_after,
            await_client_close: args.await_client_close_ms.map(Duration::from_millis),
            close_with_rst: args.rst,
            close_per_request: args.close_per_request,
            response_delay: Duration::from_millis(args.delay_ms),
            banner: args.banner,
        },
    );
    Ok(())
}
