//! Graph commands: `init`, `load`, `mutate`, `query`, `snapshot`,
//! `export`, `branch`, `commit`, `repair`, `schema plan|apply|show`.
//! Embedded, they open the graph directly; with `--server URL --graph ID`
//! (remote mode, [`super::remote`]) `query`, `mutate`, `load`,
//! `snapshot`, `export`, `branch`, `commit` and `schema apply|show` send
//! the same request to a server and print its answer the same way.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use super::remote::{Remote, ServerArgs};
use crate::engine::load::LoadMode;
use crate::engine::{EngineError, Graph, ReadAt, WriteReport};

mod args;
mod blob;
mod branches;
mod changes;
mod embed;
mod maintenance;
mod read;
mod schema;
mod write;

pub use args::*;
pub use blob::*;
pub use branches::*;
pub use changes::*;
pub use embed::*;
pub use maintenance::*;
pub use read::*;
pub use schema::*;
pub use write::*;

/// The graph a command addresses: a positional URI or `--store URI`.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// The graph (a local path or file:// URI).
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
    /// The graph, as a flag (same as the positional URI); `--uri` is the
    /// reference CLI's spelling.
    #[arg(long, alias = "uri", value_name = "URI")]
    pub store: Option<String>,
    #[command(flatten)]
    pub remote: ServerArgs,
}

impl Target {
    /// The URI given (positional or `--store`) of a graph opened directly.
    /// Errors: none or both given, an `http(s)://` URI, or `--server` on
    /// a command that only works on storage.
    pub(crate) fn resolve(&self) -> Result<String, CliError> {
        if self.remote.server.is_some() || self.remote.graph.is_some() {
            return Err(CliError::Usage(
                "this command works on a graph's storage (a path, file:// URI or --store); \
                 --server addresses a served graph and does not apply"
                    .into(),
            ));
        }
        match (&self.uri, &self.store) {
            (Some(u), None) | (None, Some(u)) => {
                super::remote::refuse_http_uri(u)?;
                Ok(u.clone())
            }
            (Some(_), Some(_)) => Err(CliError::Usage(
                "give the graph once: a positional URI or --store, not both".into(),
            )),
            (None, None) => Err(CliError::Usage(
                "which graph? pass its URI (or --store URI, or --server URL --graph ID)".into(),
            )),
        }
    }

    /// The server client when `--server` is given (remote mode). Errors:
    /// `--server` beside a URI or `--store`, a bad server URL.
    pub(crate) fn remote(&self) -> Result<Option<Remote>, CliError> {
        let local = self.uri.is_some() || self.store.is_some();
        if self.remote.server.is_some() && local {
            return Err(CliError::Usage(
                "give the graph once: --server URL --graph ID, or a URI / --store, not both".into(),
            ));
        }
        self.remote.remote_unless(local)
    }

    /// The write echo's target: `URI (direct, local|remote)` or `URL
    /// graph ID (served, remote)`; `None` when the target is missing.
    pub(crate) fn echo(&self) -> Option<String> {
        if let Ok(Some(r)) = self.remote() {
            return Some(format!("{} (served, remote)", r.describe()));
        }
        let uri = self.resolve().ok()?;
        Some(format!("{uri} (direct, {})", super::scope_of(&uri)))
    }
}

/// Refuses flags that only an embedded write consumes in remote mode: the
/// server takes the actor from the caller's token and applies its own
/// policy.
fn no_local_flags(actor: &Option<String>, policy: &Option<PathBuf>) -> Result<(), CliError> {
    if actor.is_some() {
        return Err(CliError::Usage(
            "--as does not apply to a served graph: the server records the actor of your token"
                .into(),
        ));
    }
    if policy.is_some() {
        return Err(CliError::Usage(
            "--policy does not apply to a served graph: the server applies its own policy".into(),
        ));
    }
    Ok(())
}

/// Where a read looks: a branch head (default `main`) or a commit.
#[derive(Debug, Args, Clone)]
pub struct At {
    /// Read this branch's head.
    #[arg(long, conflicts_with = "commit")]
    pub branch: Option<String>,
    /// Read this commit (time travel): a commit id from `commit list` or a
    /// write's report. `--snapshot` is the reference CLI's name for it.
    #[arg(long = "snapshot", visible_alias = "commit", value_name = "ID")]
    pub commit: Option<String>,
}

impl At {
    fn read_at(&self) -> ReadAt {
        match (&self.commit, &self.branch) {
            (Some(c), _) => ReadAt::Commit(crate::engine::CommitId::from_text(c)),
            (None, Some(b)) => ReadAt::Branch(b.clone()),
            (None, None) => ReadAt::Branch("main".into()),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))
}

/// Opens a graph for a write; with a policy bundle (`--policy` or
/// `OMNIGRAPH_POLICY_FILE`) installed as the engine's gate, so the write is
/// decided for its actor exactly as the server decides it. The bundle's
/// Cedar resource is the graph directory's name.
fn open_for_write(
    rt: &tokio::runtime::Runtime,
    uri: &str,
    policy: &Option<PathBuf>,
) -> Result<Graph, CliError> {
    let g = rt.block_on(Graph::open(uri)).map_err(engine)?;
    let file = policy.clone().or_else(|| {
        std::env::var_os("OMNIGRAPH_POLICY_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let Some(file) = file else {
        return Ok(g);
    };
    let bundle =
        crate::policy::PolicyEngine::load(&file).map_err(|e| CliError::Input(e.to_string()))?;
    let id = std::path::Path::new(uri)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| uri.to_string());
    Ok(g.with_gate(
        &id,
        crate::policy::Gate::Policy(std::sync::Arc::new(bundle)),
    ))
}

fn actor(a: &Option<String>) -> String {
    a.clone()
        .or_else(|| std::env::var("OMNIGRAPH_ACTOR").ok())
        .unwrap_or_else(|| "local".to_string())
}

fn engine(e: EngineError) -> CliError {
    CliError::Engine(e)
}

fn json_out<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}] {pos} rows")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn report_write(r: &WriteReport) {
    match &r.commit {
        Some(c) => {
            let rows: usize = r.written.values().sum();
            let gone: usize = r.deleted.values().sum();
            println!(
                "{}: {rows} rows written, {gone} deleted; commit {} on `{}` by {}",
                r.message, c.id, c.branch, c.actor
            );
        }
        None => println!("{}", r.message),
    }
}
