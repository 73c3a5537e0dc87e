//! `omnigraph-server`: the multi-graph HTTP server.
//!
//! The actor runtime and HTTP routes land with the server work (see
//! `docs/architecture.md`, "Status"). Until then this binary only answers
//! `--help` and `--version`, and refuses to start with a clear message
//! instead of pretending to serve.

use std::process::ExitCode;

use clap::Parser;

/// Serves many graphs over HTTP.
#[derive(Debug, Parser)]
#[command(name = "omnigraph-server", version)]
struct Args {
    /// Address to listen on (`host:port`; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "omnigraph-server: this build has no HTTP server yet; it cannot listen on {}. \
         Use the `omnigraph` CLI (`lint`, `schema check`, `query explain`).",
        args.listen
    );
    ExitCode::from(2)
}
