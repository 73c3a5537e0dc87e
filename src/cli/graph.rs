//! Graph commands: `init`, `load`, `mutate`, `snapshot`, `export`,
//! `branch`, `commit`. Embedded, they open the graph directly; with
//! `--server URL --graph ID` (remote mode, [`super::remote`]) `query`,
//! `mutate`, `load`, `snapshot`, `branch` and `commit` send the same
//! request to a server and print its answer the same way.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use super::remote::{Remote, ServerArgs};
use crate::engine::load::LoadMode;
use crate::engine::{EngineError, Graph, ReadAt, WriteReport};

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
            (Some(c), _) => ReadAt::Commit(c.clone()),
            (None, Some(b)) => ReadAt::Branch(b.clone()),
            (None, None) => ReadAt::Branch("main".into()),
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The `.pg` schema.
    #[arg(long)]
    pub schema: PathBuf,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The JSONL file (`-` for stdin).
    #[arg(long)]
    pub data: PathBuf,
    /// overwrite (replace the branch's graph), append (strict insert) or
    /// merge (upsert by key).
    #[arg(long)]
    pub mode: LoadMode,
    /// Let an overwrite with no rows empty the branch (refused otherwise).
    #[arg(long)]
    pub allow_empty: bool,
    /// The branch to load into.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Fork a missing `--branch` from this branch first.
    #[arg(long)]
    pub from: Option<String>,
    /// The actor recorded on the commit.
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: Option<String>,
    /// A policy bundle (YAML) the write must pass, for `--as`; also
    /// `OMNIGRAPH_POLICY_FILE`. Without one, direct writes are not gated.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

/// Which `.gq` source a `query` or `mutate` runs, and its parameters.
#[derive(Debug, Args)]
pub struct GqArgs {
    /// A `.gq` file.
    #[arg(long, conflicts_with = "source")]
    pub query: Option<PathBuf>,
    /// Inline `.gq` source.
    #[arg(short = 'e', long = "query-string", value_name = "GQ")]
    pub source: Option<String>,
    /// Parameters as a JSON object.
    #[arg(long, conflicts_with = "params_file")]
    pub params: Option<String>,
    /// Parameters as a file holding a JSON object (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// The mutation's name in the file (optional when it holds one query).
    pub name: Option<String>,
    #[command(flatten)]
    pub gq: GqArgs,
    #[arg(long, default_value = "main")]
    pub branch: String,
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: Option<String>,
    /// A policy bundle (YAML) the write must pass, for `--as`; also
    /// `OMNIGRAPH_POLICY_FILE`. Without one, direct writes are not gated.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The graph (a local path or file:// URI); also `--uri`.
    #[arg(long, alias = "uri", value_name = "URI", conflicts_with = "server")]
    pub store: Option<String>,
    #[command(flatten)]
    pub remote: ServerArgs,
    #[arg(long)]
    pub json: bool,
}

/// Output format of `query` (reference: docs/user/cli/reference.md,
/// "Output formats").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One object, the `POST /graphs/{id}/query` answer: `query_name`, `target`,
    /// `columns`, `row_count`, `rows`, `graph_commit_id`.
    Json,
    /// A metadata line, then one object per row.
    Jsonl,
    /// A header line, then one line per row (RFC 4180 quoting).
    Csv,
    /// A fitted text table.
    Table,
    /// One block per row: `column: value` lines, a blank line between rows.
    Kv,
}

#[derive(Debug, Args)]
pub struct QueryRunArgs {
    /// The query's name in the source (optional when it holds one query).
    pub name: Option<String>,
    #[command(flatten)]
    pub gq: GqArgs,
    #[command(flatten)]
    pub at: At,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Same as `--format json`.
    #[arg(long)]
    pub json: bool,
    /// The graph (a local path or file:// URI); also `--uri`.
    #[arg(long, alias = "uri", value_name = "URI", conflicts_with = "server")]
    pub store: Option<String>,
    #[command(flatten)]
    pub remote: ServerArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub at: At,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub at: At,
    /// Only these types (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum BranchCommand {
    /// Create a branch at the head of another.
    Create {
        name: String,
        #[arg(long, default_value = "main")]
        from: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
        /// The actor the write is made as.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
        /// A policy bundle (YAML) the write must pass, for `--as`; also
        /// `OMNIGRAPH_POLICY_FILE`. Without one, direct writes are not gated.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// List branches and their heads.
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Merge a branch into another, three-way at the entity level:
    /// already up to date, fast-forward, or one commit with two parents.
    /// Conflicts are listed (kind, type, id, message) and nothing is
    /// published; exit 1.
    Merge {
        /// The branch whose changes are merged.
        source: String,
        /// The branch that receives them.
        #[arg(long = "into", default_value = "main")]
        into: String,
        /// Delete the source after a successful merge (a refusal is a
        /// warning: the merge has landed).
        #[arg(long)]
        delete_branch: bool,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
        /// The actor the write is made as.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
        /// A policy bundle (YAML) the write must pass, for `--as`; also
        /// `OMNIGRAPH_POLICY_FILE`. Without one, direct writes are not gated.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Delete a branch (never `main`).
    Delete {
        name: String,
        #[command(flatten)]
        target: Target,
        /// Print what `DELETE /graphs/{id}/branches/{name}` answers.
        #[arg(long)]
        json: bool,
        /// The actor the write is made as.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
        /// A policy bundle (YAML) the write must pass, for `--as`; also
        /// `OMNIGRAPH_POLICY_FILE`. Without one, direct writes are not gated.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CommitCommand {
    /// The commits reachable from a branch head, newest first.
    List {
        #[arg(long, default_value = "main")]
        branch: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// One commit.
    Show {
        id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
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

pub fn init(a: InitArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let src = super::read(&a.schema)?;
    let rt = runtime()?;
    let g = rt
        .block_on(Graph::init(&uri, &a.schema.display().to_string(), &src))
        .map_err(engine)?;
    if a.json {
        json_out(
            &serde_json::json!({"uri": uri, "nodes": g.catalog().nodes.len(), "edges": g.catalog().edges.len()}),
        );
    } else {
        println!(
            "initialized {uri}: {} node types, {} edge types, branch main",
            g.catalog().nodes.len(),
            g.catalog().edges.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load(a: LoadArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        no_local_flags(&a.actor, &a.policy)?;
        // The same NDJSON, raw, to `load/ndjson` (the reference's remote
        // load).
        let data = if a.data.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
        } else {
            std::fs::read(&a.data)
        }
        .map_err(|source| CliError::Read {
            path: a.data.display().to_string(),
            source,
        })?;
        let mode = serde_json::to_value(crate::api::LoadModeWire::from(a.mode))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut q = vec![("branch", a.branch.clone()), ("mode", mode)];
        if let Some(f) = &a.from {
            q.push(("from", f.clone()));
        }
        if a.allow_empty {
            q.push(("allow_empty", "true".into()));
        }
        let pb = spinner("loading");
        let out: Result<crate::api::GraphBatchLoadOutput, _> =
            rt.block_on(r.graph_post_raw(&["load", "ndjson"], &q, "application/x-ndjson", data));
        pb.finish_and_clear();
        let out = out?;
        if a.json {
            json_out(&out);
        } else {
            match &out.commit {
                Some(c) => println!(
                    "load: {} entities into `{}`; commit {} by {}",
                    out.total_entities,
                    out.branch,
                    c.graph_commit_id,
                    out.actor_id.as_deref().unwrap_or("-")
                ),
                None => println!("load: nothing changed on `{}`", out.branch),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = open_for_write(&rt, &uri, &a.policy)?;
    // Whether `--from` forks the branch first (`branch_created` in the
    // `--json` output, as the load routes answer).
    let creates = a.from.is_some()
        && !rt
            .block_on(g.branches())
            .map_err(engine)?
            .iter()
            .any(|b| b.name == a.branch);
    let pb = spinner("loading");
    let result = if a.data.as_os_str() == "-" {
        let stdin = std::io::stdin();
        rt.block_on(g.load_with(
            stdin.lock(),
            a.mode,
            a.allow_empty,
            &a.branch,
            a.from.as_deref(),
            &actor(&a.actor),
        ))
    } else {
        let f = std::fs::File::open(&a.data).map_err(|source| CliError::Read {
            path: a.data.display().to_string(),
            source,
        })?;
        rt.block_on(g.load_with(
            BufReader::new(f),
            a.mode,
            a.allow_empty,
            &a.branch,
            a.from.as_deref(),
            &actor(&a.actor),
        ))
    };
    pb.finish_and_clear();
    let r = result.map_err(engine)?;
    if a.json {
        json_out(&crate::api::GraphBatchLoadOutput::of_write(
            &a.branch,
            creates,
            a.from.clone(),
            a.mode.into(),
            &actor(&a.actor),
            &r,
        ));
    } else {
        report_write(&r);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `.gq` source from a file or inline text.
fn gq_source(
    query: &Option<PathBuf>,
    source: &Option<String>,
) -> Result<(String, String), CliError> {
    match (query, source) {
        (Some(p), None) => Ok((p.display().to_string(), super::read(p)?)),
        (None, Some(s)) => Ok(("<inline>".to_string(), s.clone())),
        _ => Err(CliError::Usage(
            "give the query with --query FILE or -e SOURCE (a stored query is invoked by name \
             only on a served graph: --server URL --graph ID)"
                .into(),
        )),
    }
}

/// The parameters of `--params JSON` or `--params-file FILE` (`-` reads
/// stdin); `Null` when neither is given. Errors: an unreadable file (I/O),
/// text that is not JSON (input, naming the flag and the file).
fn params_json(gq: &GqArgs) -> Result<serde_json::Value, CliError> {
    match (&gq.params, &gq.params_file) {
        (Some(p), _) => serde_json::from_str(p)
            .map_err(|e| CliError::Input(format!("--params is not valid JSON: {e}"))),
        (None, Some(f)) => {
            let text = if f.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(f)
            }
            .map_err(|source| CliError::Read {
                path: f.display().to_string(),
                source,
            })?;
            serde_json::from_str(&text).map_err(|e| {
                CliError::Input(format!(
                    "--params-file {} is not valid JSON: {e}",
                    f.display()
                ))
            })
        }
        (None, None) => Ok(serde_json::Value::Null),
    }
}

/// Invokes the server's stored query `name` (`POST
/// /graphs/{id}/queries/{name}`) after checking in its catalog (`GET
/// /graphs/{id}/queries`) that it exists and is a mutation exactly when
/// `mutation` (the verb asserts the kind, as the reference's does).
/// Errors: no name, an unknown name (with the close ones), the other kind,
/// the server's refusal.
fn invoke_stored<T: serde::de::DeserializeOwned>(
    rt: &tokio::runtime::Runtime,
    r: &Remote,
    name: &Option<String>,
    mutation: bool,
    body: &crate::api::InvokeStoredQueryRequest,
) -> Result<T, CliError> {
    let Some(name) = name else {
        return Err(CliError::Usage(
            "name the stored query to run, or give a query with --query FILE or -e SOURCE".into(),
        ));
    };
    let catalog: crate::api::QueriesCatalogOutput = rt.block_on(r.graph_get(&["queries"], &[]))?;
    let Some(entry) = catalog.queries.iter().find(|q| &q.name == name) else {
        let known = catalog.queries.iter().map(|q| q.name.as_str());
        return Err(CliError::Input(format!(
            "the server has no stored query `{name}`; {}",
            crate::diag::did_you_mean(name, known.clone())
                .unwrap_or_else(|| crate::diag::valid_list("stored queries", known))
        )));
    };
    if entry.mutation != mutation {
        return Err(CliError::Input(if mutation {
            format!("`{name}` is a stored read query; run it with `omnigraph query`")
        } else {
            format!("`{name}` is a stored mutation; run it with `omnigraph mutate`")
        }));
    }
    rt.block_on(r.graph_post(&["queries", name], body))
}

/// `omnigraph alias NAME ARGS…`: the alias's stored query on its server
/// (module [`super::operator`]). Parameters: the alias's fixed `params`,
/// then each positional argument under the alias's `args` name in order
/// (read as JSON when it parses, else as a string), then `--params`.
/// Errors: an unknown alias, more arguments than names, bad `--params`,
/// the server's refusal.
pub fn alias(
    name: &str,
    args: &[String],
    params: Option<&str>,
    format: Option<Format>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let cfg = super::operator::config()?;
    let a = cfg.aliases.get(name).cloned().ok_or_else(|| {
        let known = cfg.aliases.keys().map(String::as_str);
        CliError::Usage(format!(
            "no alias `{name}` in {}; {}",
            super::operator::home().join("config.yaml").display(),
            crate::diag::did_you_mean(name, known.clone())
                .unwrap_or_else(|| crate::diag::valid_list("aliases", known))
        ))
    })?;
    if args.len() > a.args.len() {
        return Err(CliError::Usage(format!(
            "alias `{name}` takes {} argument(s) ({}), got {}",
            a.args.len(),
            a.args.join(", "),
            args.len()
        )));
    }
    let mut p = a.params.clone();
    for (k, v) in a.args.iter().zip(args) {
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
        p.insert(k.clone(), value);
    }
    if let Some(text) = params {
        let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| CliError::Input(format!("--params is not a JSON object: {e}")))?;
        p.extend(given);
    }
    let format = match (json, format, a.format.as_deref()) {
        (true, _, _) => Format::Json,
        (false, Some(f), _) => f,
        (false, None, Some(f)) => <Format as clap::ValueEnum>::from_str(f, true)
            .map_err(|_| CliError::Input(format!("alias `{name}`: unknown format `{f}`")))?,
        (false, None, None) => Format::Table,
    };
    let r = Remote::new(&a.server, a.graph.clone())?;
    let rt = runtime()?;
    let body = crate::api::InvokeStoredQueryRequest {
        params: Some(serde_json::Value::Object(p)),
        branch: None,
        snapshot: None,
        limits: None,
    };
    let catalog: crate::api::QueriesCatalogOutput = rt.block_on(r.graph_get(&["queries"], &[]))?;
    let mutation = catalog
        .queries
        .iter()
        .find(|q| q.name == a.query)
        .map(|q| q.mutation)
        .unwrap_or(false);
    if mutation {
        let out: crate::api::ChangeOutput =
            invoke_stored(&rt, &r, &Some(a.query.clone()), true, &body)?;
        json_out(&out);
    } else {
        let out: crate::api::ReadOutput =
            invoke_stored(&rt, &r, &Some(a.query.clone()), false, &body)?;
        print_rows(format, &out);
    }
    Ok(ExitCode::SUCCESS)
}

/// Compiles the source against the graph's catalog and picks the query:
/// `name`, or the only one. `Err(Ok(code))` when diagnostics were printed.
fn pick(
    catalog: &crate::schema::Catalog,
    file: &str,
    src: &str,
    name: &Option<String>,
) -> Result<Result<crate::query::CheckedQuery, ExitCode>, CliError> {
    let (compiled, diags) = crate::query::compile_queries_file(catalog, file, src);
    if compiled.has_errors() {
        eprint!("{}", diags.render(super::color()));
        return Ok(Err(ExitCode::from(1)));
    }
    let q = match name {
        Some(n) => compiled.query(n).cloned().ok_or_else(|| {
            let known = compiled.declared.iter().map(String::as_str);
            CliError::Input(format!(
                "no query named `{n}`; {}",
                crate::diag::did_you_mean(n, known.clone())
                    .unwrap_or_else(|| crate::diag::valid_list("queries", known))
            ))
        })?,
        None => match compiled.queries.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(CliError::Usage(format!(
                    "the source holds {} queries; name the one to run ({})",
                    compiled.queries.len(),
                    compiled.declared.join(", ")
                )));
            }
        },
    };
    Ok(Ok(q))
}

pub fn mutate(a: MutateArgs) -> Result<ExitCode, CliError> {
    let params = params_json(&a.gq)?;
    let rt = runtime()?;
    if let Some(r) = a.remote.remote_unless(a.store.is_some())? {
        no_local_flags(&a.actor, &a.policy)?;
        let params = (!params.is_null()).then_some(params);
        let out: crate::api::ChangeOutput = if a.gq.query.is_none() && a.gq.source.is_none() {
            invoke_stored(
                &rt,
                &r,
                &a.name,
                true,
                &crate::api::InvokeStoredQueryRequest {
                    params,
                    branch: Some(a.branch.clone()),
                    snapshot: None,
                    limits: None,
                },
            )?
        } else {
            let (_, src) = gq_source(&a.gq.query, &a.gq.source)?;
            rt.block_on(r.graph_post(
                &["mutate"],
                &crate::api::ChangeRequest {
                    query: src,
                    name: a.name.clone(),
                    params,
                    branch: Some(a.branch.clone()),
                },
            ))?
        };
        if a.json {
            json_out(&out);
        } else {
            match &out.commit {
                Some(c) => println!(
                    "mutate {}: {} nodes, {} edges affected; commit {} on `{}` by {}",
                    out.query_name,
                    out.affected_nodes,
                    out.affected_edges,
                    c.graph_commit_id,
                    out.branch,
                    out.actor_id.as_deref().unwrap_or("-")
                ),
                None => println!(
                    "`{}` matched no rows; nothing was published",
                    out.query_name
                ),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (file, src) = gq_source(&a.gq.query, &a.gq.source)?;
    let store = a.store.clone().ok_or_else(|| {
        CliError::Usage("which graph? pass --store URI (or --server URL --graph ID)".into())
    })?;
    super::remote::refuse_http_uri(&store)?;
    let g = open_for_write(&rt, &store, &a.policy)?;
    let q = match pick(&g.catalog(), &file, &src, &a.name)? {
        Ok(q) => q,
        Err(code) => return Ok(code),
    };
    let who = actor(&a.actor);
    let r = rt
        .block_on(g.mutate(&q, &params, &a.branch, &who))
        .map_err(engine)?;
    if a.json {
        json_out(&crate::api::ChangeOutput::of_write(
            &a.branch, &q.name, &who, &r,
        ));
    } else {
        report_write(&r);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn query(a: QueryRunArgs) -> Result<ExitCode, CliError> {
    let params = params_json(&a.gq)?;
    let rt = runtime()?;
    let format = if a.json { Format::Json } else { a.format };
    if let Some(r) = a.remote.remote_unless(a.store.is_some())? {
        if a.gq.query.is_none() && a.gq.source.is_none() {
            let out: crate::api::ReadOutput = invoke_stored(
                &rt,
                &r,
                &a.name,
                false,
                &crate::api::InvokeStoredQueryRequest {
                    params: (!params.is_null()).then_some(params),
                    branch: a.at.branch.clone(),
                    snapshot: a.at.commit.clone(),
                    limits: None,
                },
            )?;
            print_rows(format, &out);
            return Ok(ExitCode::SUCCESS);
        }
        let (_, src) = gq_source(&a.gq.query, &a.gq.source)?;
        let out: crate::api::ReadOutput = rt.block_on(r.graph_post(
            &["query"],
            &crate::api::QueryRequest {
                query: src,
                name: a.name.clone(),
                params: (!params.is_null()).then_some(params),
                branch: a.at.branch.clone(),
                snapshot: a.at.commit.clone(),
                limits: None,
            },
        ))?;
        print_rows(format, &out);
        return Ok(ExitCode::SUCCESS);
    }
    let (file, src) = gq_source(&a.gq.query, &a.gq.source)?;
    let store = a.store.clone().ok_or_else(|| {
        CliError::Usage("which graph? pass --store URI (or --server URL --graph ID)".into())
    })?;
    super::remote::refuse_http_uri(&store)?;
    // The CLI's limits are higher than a server's (docs/cli.md, "Limits").
    let g = rt
        .block_on(Graph::open(&store))
        .map_err(engine)?
        .with_query_limits(crate::engine::budget::QueryLimits::cli());
    // A commit from before a schema apply is read with its own schema.
    let catalog = rt.block_on(g.catalog_at(&a.at.read_at())).map_err(engine)?;
    let q = match pick(&catalog, &file, &src, &a.name)? {
        Ok(q) => q,
        Err(code) => return Ok(code),
    };
    let r = rt
        .block_on(g.query(&q, &params, &a.at.read_at()))
        .map_err(engine)?;
    let out = crate::api::ReadOutput {
        query_name: q.name.clone(),
        target: crate::api::ReadTargetOutput {
            branch: match &a.at.commit {
                Some(_) => None,
                None => Some(a.at.branch.clone().unwrap_or_else(|| "main".into())),
            },
            snapshot: a.at.commit.clone(),
        },
        columns: r.columns,
        row_count: r.rows.len(),
        rows: r.rows,
        graph_commit_id: Some(r.graph_commit_id),
    };
    print_rows(format, &out);
    Ok(ExitCode::SUCCESS)
}

/// Prints a read's rows in `format`: `json` is the `POST /query` answer
/// (the same embedded and remote), `jsonl` a metadata line then one
/// object per row, `csv`, `table` (the row count on stderr) or `kv`.
fn print_rows(format: Format, r: &crate::api::ReadOutput) {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    match format {
        Format::Json => json_out(r),
        Format::Jsonl => {
            println!(
                "{}",
                serde_json::json!({"columns": r.columns, "graph_commit_id": r.graph_commit_id, "row_count": r.rows.len()})
            );
            for row in &r.rows {
                println!("{}", serde_json::Value::Object(row.clone()));
            }
        }
        Format::Csv => {
            let quote = |s: String| {
                if s.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            };
            println!(
                "{}",
                r.columns
                    .iter()
                    .map(|c| quote(c.clone()))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for row in &r.rows {
                let line: Vec<String> = r
                    .columns
                    .iter()
                    .map(|c| quote(row.get(c).map(cell).unwrap_or_default()))
                    .collect();
                println!("{}", line.join(","));
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|row| {
                    r.columns
                        .iter()
                        .map(|c| row.get(c).map(cell).unwrap_or_default())
                        .collect()
                })
                .collect();
            let widths: Vec<usize> = r
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    cells
                        .iter()
                        .map(|row| row[i].chars().count().min(48))
                        .chain([c.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let fit = |s: &str, w: usize| {
                let t: String = s.chars().take(w).collect();
                format!("{t:<w$}")
            };
            println!(
                "{}",
                r.columns
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| fit(c, *w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
            for row in &cells {
                println!(
                    "{}",
                    row.iter()
                        .zip(&widths)
                        .map(|(c, w)| fit(c, *w))
                        .collect::<Vec<_>>()
                        .join("  ")
                );
            }
            let n = r.rows.len();
            eprintln!("({n} {})", if n == 1 { "row" } else { "rows" });
        }
        Format::Kv => {
            let w = r
                .columns
                .iter()
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            for (i, row) in r.rows.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                for c in &r.columns {
                    let v = row.get(c).map(cell).unwrap_or_default();
                    let line = format!("{:<w$}  {v}", format!("{c}:"), w = w + 1);
                    println!("{}", line.trim_end());
                }
            }
            let n = r.rows.len();
            eprintln!("({n} {})", if n == 1 { "row" } else { "rows" });
        }
    }
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Publish the verified drift; without it, only preview.
    #[arg(long)]
    pub confirm: bool,
    /// Who repairs (default: $OMNIGRAPH_ACTOR, else `local`).
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `omnigraph repair [--confirm] URI`: heal, list drift, publish it when
/// confirmed.
pub fn repair(a: RepairArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let r = rt
        .block_on(g.repair(a.confirm, &actor(&a.actor)))
        .map_err(engine)?;
    if a.json {
        json_out(&r);
        return Ok(ExitCode::SUCCESS);
    }
    for (id, action) in &r.healed {
        println!("healed write {id}: {action:?}");
    }
    if r.drift.is_empty() {
        println!("no drift: every table's Lance head is the published version");
    }
    for d in &r.drift {
        println!(
            "drift: {} on branch {}: published v{}, Lance head v{}",
            d.table, d.branch, d.published, d.head
        );
    }
    if !r.drift.is_empty() {
        if a.confirm {
            for c in &r.published {
                println!("published commit {c}");
            }
        } else {
            println!("preview only: run again with --confirm to publish these versions");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn snapshot(a: SnapshotArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        if a.at.commit.is_some() {
            return Err(CliError::Usage(
                "a served graph's snapshot is of a branch (--branch); --snapshot ID reads \
                 a commit only on a graph opened directly"
                    .into(),
            ));
        }
        let branch = a.at.branch.clone().unwrap_or_else(|| "main".into());
        let out: crate::api::SnapshotOutput =
            rt.block_on(r.graph_get(&["snapshot"], &[("branch", branch)]))?;
        if a.json {
            json_out(&out);
        } else {
            println!(
                "branch {} at commit {} (manifest v{})",
                out.graph_branch, out.graph_commit_id, out.graph_manifest_version
            );
            let name = |d: &crate::api::SnapshotDatasetOutput| {
                format!("{}:{}", d.entity_kind, d.type_name)
            };
            let w = out
                .datasets
                .iter()
                .map(|d| name(d).len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!("{:<w$}  {:>7}  {:>9}", "TABLE", "VERSION", "ROWS");
            for d in &out.datasets {
                println!(
                    "{:<w$}  {:>7}  {:>9}",
                    name(d),
                    d.published_dataset_version,
                    d.entity_count
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let s = rt.block_on(g.snapshot(&a.at.read_at())).map_err(engine)?;
    if a.json {
        json_out(&crate::api::SnapshotOutput::of(&s));
    } else {
        match &s.branch {
            Some(b) => println!(
                "branch {b} at commit {} (manifest v{})",
                s.commit, s.manifest_version
            ),
            None => println!("commit {}", s.commit),
        }
        let w = s
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        println!("{:<w$}  {:>7}  {:>9}", "TABLE", "VERSION", "ROWS");
        for t in &s.tables {
            println!("{:<w$}  {:>7}  {:>9}", t.table, t.version, t.rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(a: ExportArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        if a.at.commit.is_some() {
            return Err(CliError::Usage(
                "a served graph exports a branch (--branch); --snapshot ID exports a commit \
                 only on a graph opened directly"
                    .into(),
            ));
        }
        let mut sink: Box<dyn Write> = match &a.out {
            Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |source| CliError::Read {
                    path: p.display().to_string(),
                    source,
                },
            )?)),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let n = rt.block_on(r.graph_post_stream(
            &["export"],
            &crate::api::ExportRequest {
                branch: Some(a.at.branch.clone().unwrap_or_else(|| "main".into())),
                type_names: a.types.clone(),
            },
            &mut *sink,
        ))?;
        sink.flush().map_err(|source| CliError::Read {
            path: "the output".into(),
            source,
        })?;
        if a.out.is_some() {
            eprintln!("exported {n} bytes");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let types = (!a.types.is_empty()).then_some(a.types.as_slice());
    let pb = spinner("exporting");
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |source| CliError::Read {
                path: p.display().to_string(),
                source,
            },
        )?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let n = rt
        .block_on(g.export(&a.at.read_at(), types, &mut *sink, |k| pb.inc(k as u64)))
        .map_err(engine)?;
    pb.finish_and_clear();
    drop(sink);
    if a.out.is_some() {
        eprintln!("exported {n} rows");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn branch(c: BranchCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let target = match &c {
        BranchCommand::Create { target, .. }
        | BranchCommand::List { target, .. }
        | BranchCommand::Merge { target, .. }
        | BranchCommand::Delete { target, .. } => target,
    };
    if let Some(r) = target.remote()? {
        return branch_remote(&rt, &r, c);
    }
    match c {
        BranchCommand::Create {
            name,
            from,
            target,
            json,
            actor: who,
            policy,
        } => {
            let g = open_for_write(&rt, &target.resolve()?, &policy)?;
            let b = rt
                .block_on(g.create_branch(&name, &from, &actor(&who)))
                .map_err(engine)?;
            if json {
                json_out(&b);
            } else {
                println!("created branch {} from {from} at {}", b.name, b.head);
            }
        }
        BranchCommand::List { target, json } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let bs = rt.block_on(g.branches()).map_err(engine)?;
            if json {
                json_out(&crate::api::BranchListOutput {
                    branches: bs.iter().map(|b| b.name.clone()).collect(),
                });
            } else {
                for b in bs {
                    println!("{}  {}", b.name, b.head);
                }
            }
        }
        BranchCommand::Merge {
            source,
            into,
            delete_branch,
            target,
            json,
            actor: who,
            policy,
        } => {
            let g = open_for_write(&rt, &target.resolve()?, &policy)?;
            let r = match rt.block_on(g.merge(&source, &into, &actor(&who), delete_branch)) {
                Ok(r) => r,
                Err(EngineError::MergeConflicts { conflicts }) if json => {
                    json_out(&serde_json::json!({ "merge_conflicts": conflicts }));
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(engine(e)),
            };
            if json {
                json_out(&r);
            } else {
                let how = match r.outcome {
                    crate::engine::merge::MergeOutcome::AlreadyUpToDate => "already up to date",
                    crate::engine::merge::MergeOutcome::FastForward => "fast-forward",
                    crate::engine::merge::MergeOutcome::Merged => "merged",
                };
                println!("{source} into {into}: {how}; head {}", r.head);
                for (t, n) in &r.written {
                    println!("  {t}: {n} upserted");
                }
                for (t, n) in &r.deleted {
                    println!("  {t}: {n} deleted");
                }
            }
            if let Some(e) = &r.branch_delete_error {
                eprintln!("warning: branch {source} was not deleted: {e}");
            } else if r.branch_deleted == Some(true) && !json {
                println!("deleted branch {source}");
            }
        }
        BranchCommand::Delete {
            name,
            target,
            actor: who,
            policy,
            json,
        } => {
            let uri = target.resolve()?;
            let g = open_for_write(&rt, &uri, &policy)?;
            let who = actor(&who);
            rt.block_on(g.delete_branch(&name, &who)).map_err(engine)?;
            if json {
                json_out(&crate::api::BranchDeleteOutput {
                    uri,
                    name,
                    actor_id: Some(who),
                });
            } else {
                println!("deleted branch {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `branch` against a server: the branch routes, the answers printed as
/// the embedded verbs print theirs (`--json`: the answers as they come).
fn branch_remote(
    rt: &tokio::runtime::Runtime,
    r: &Remote,
    c: BranchCommand,
) -> Result<ExitCode, CliError> {
    match c {
        BranchCommand::Create {
            name,
            from,
            json,
            actor: who,
            policy,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: crate::api::BranchCreateOutput = rt.block_on(r.graph_post(
                &["branches"],
                &crate::api::BranchCreateRequest {
                    name,
                    from: Some(from.clone()),
                },
            ))?;
            if json {
                json_out(&out);
            } else {
                println!("created branch {} from {from}", out.name);
            }
        }
        BranchCommand::List { json, .. } => {
            let out: crate::api::BranchListOutput = rt.block_on(r.graph_get(&["branches"], &[]))?;
            if json {
                json_out(&out);
            } else {
                for b in &out.branches {
                    println!("{b}");
                }
            }
        }
        BranchCommand::Merge {
            source,
            into,
            delete_branch,
            json,
            actor: who,
            policy,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: serde_json::Value = rt.block_on(r.graph_post(
                &["branches", "merge"],
                &crate::api::BranchMergeRequest {
                    source: source.clone(),
                    target: Some(into.clone()),
                    delete_branch,
                },
            ))?;
            if json {
                json_out(&out);
            } else {
                println!(
                    "{source} into {into}: {}",
                    out["outcome"]
                        .as_str()
                        .unwrap_or("merged")
                        .replace('_', " ")
                );
            }
        }
        BranchCommand::Delete {
            name,
            actor: who,
            policy,
            json,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: crate::api::BranchDeleteOutput =
                rt.block_on(r.graph_delete(&["branches", &name]))?;
            if json {
                json_out(&out);
            } else {
                println!("deleted branch {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `commit list`: id, time, actor, message, parents.
fn commit_line(id: &str, ms: i64, actor: &str, message: &str, parents: &[String]) -> String {
    format!(
        "{id}  {}  {actor:<12} {message:<40} parents: {}",
        crate::engine::values::format_datetime(ms),
        if parents.is_empty() {
            "-".to_string()
        } else {
            parents.join(", ")
        }
    )
}

pub fn commit(c: CommitCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let target = match &c {
        CommitCommand::List { target, .. } | CommitCommand::Show { target, .. } => target,
    };
    if let Some(r) = target.remote()? {
        match c {
            CommitCommand::List { branch, json, .. } => {
                let out: crate::api::CommitListOutput =
                    rt.block_on(r.graph_get(&["commits"], &[("branch", branch)]))?;
                if json {
                    json_out(&out);
                } else {
                    for c in &out.commits {
                        let parents: Vec<String> = c
                            .parent_commit_id
                            .iter()
                            .chain(c.merged_parent_commit_id.iter())
                            .cloned()
                            .collect();
                        println!(
                            "{}",
                            commit_line(
                                &c.graph_commit_id,
                                c.created_at / 1000,
                                c.actor_id.as_deref().unwrap_or("-"),
                                &c.message,
                                &parents
                            )
                        );
                    }
                }
            }
            CommitCommand::Show { id, json, .. } => {
                let out: crate::api::CommitOutput =
                    rt.block_on(r.graph_get(&["commits", &id], &[]))?;
                if json {
                    json_out(&out);
                } else {
                    println!("commit   {}", out.graph_commit_id);
                    println!("branch   {}", out.graph_branch.as_deref().unwrap_or("-"));
                    println!("actor    {}", out.actor_id.as_deref().unwrap_or("-"));
                    println!(
                        "time     {}",
                        crate::engine::values::format_datetime(out.created_at / 1000)
                    );
                    println!("message  {}", out.message);
                    println!(
                        "parents  {}",
                        out.parent_commit_id
                            .iter()
                            .chain(out.merged_parent_commit_id.iter())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match c {
        CommitCommand::List {
            branch,
            target,
            json,
        } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let cs = rt.block_on(g.commits(&branch)).map_err(engine)?;
            if json {
                json_out(&crate::api::CommitListOutput {
                    commits: cs
                        .iter()
                        .map(|c| crate::api::CommitOutput::from_commit(c, None))
                        .collect(),
                });
            } else {
                for c in cs {
                    println!(
                        "{}",
                        commit_line(&c.id, c.timestamp_ms, &c.actor, &c.message, &c.parents)
                    );
                }
            }
        }
        CommitCommand::Show { id, target, json } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let c = rt.block_on(g.commit(&id)).map_err(engine)?;
            if json {
                json_out(&crate::api::CommitOutput::from_commit(&c, None));
            } else {
                println!("commit   {}", c.id);
                println!("branch   {}", c.branch);
                println!("actor    {}", c.actor);
                println!(
                    "time     {}",
                    crate::engine::values::format_datetime(c.timestamp_ms)
                );
                println!("message  {}", c.message);
                println!(
                    "parents  {}",
                    if c.parents.is_empty() {
                        "-".to_string()
                    } else {
                        c.parents.join(", ")
                    }
                );
                for (t, r) in &c.tables {
                    println!(
                        "  {t} v{}{}",
                        r.version,
                        r.lance_branch
                            .as_ref()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `omnigraph schema plan --schema NEW.pg URI [--json]`.
pub fn schema_plan(schema: &std::path::Path, uri: &str, json: bool) -> Result<ExitCode, CliError> {
    let src = super::read(schema)?;
    let new = match crate::schema::compile_schema_file(&schema.display().to_string(), &src) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render(super::color()));
            return Ok(ExitCode::from(1));
        }
    };
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(uri)).map_err(engine)?;
    let plan = crate::schema::migrate::plan(&g.catalog(), &new);
    if json {
        json_out(&plan);
    } else {
        if plan.steps.is_empty() {
            println!("no changes: the graph already has this schema");
        }
        for s in &plan.steps {
            let mark = if !s.supported {
                "unsupported"
            } else if s.data_loss {
                "data loss"
            } else {
                "ok"
            };
            println!("[{mark}] {} {}: {}", s.entity, s.type_name, s.detail);
            if let Some(r) = &s.reason {
                println!("    reason: {r}");
            }
        }
        println!(
            "supported: {}{}",
            if plan.supported { "yes" } else { "no" },
            if plan.data_loss {
                " (drops data: applying needs --allow-data-loss)"
            } else {
                ""
            }
        );
    }
    Ok(if plan.supported {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `omnigraph schema apply --schema NEW.pg URI`.
pub fn schema_apply(
    schema: &std::path::Path,
    target: &Target,
    allow_data_loss: bool,
    json: bool,
    who: Option<String>,
    policy: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let src = super::read(schema)?;
    let rt = runtime()?;
    if let Some(r) = target.remote()? {
        no_local_flags(&who, &policy)?;
        let out: crate::api::SchemaApplyOutput = rt.block_on(r.graph_post(
            &["schema", "apply"],
            &crate::api::SchemaApplyRequest {
                schema_source: src,
                allow_data_loss,
            },
        ))?;
        if json {
            json_out(&out);
        } else if !out.applied {
            println!("no changes: the graph already has this schema");
        } else {
            for s in &out.steps {
                println!(
                    "applied {} {}: {}",
                    s["entity"].as_str().unwrap_or_default(),
                    s["type_name"].as_str().unwrap_or_default(),
                    s["detail"].as_str().unwrap_or_default()
                );
            }
            println!(
                "schema {} in commit {} (manifest v{})",
                out.schema_id.as_deref().unwrap_or_default(),
                out.graph_commit_id.as_deref().unwrap_or("-"),
                out.graph_manifest_version
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = target.resolve()?;
    let uri = uri.as_str();
    let g = open_for_write(&rt, uri, &policy)?;
    let file = schema.display().to_string();
    let r = match rt.block_on(g.apply_schema(&file, &src, allow_data_loss, &actor(&who))) {
        Ok(r) => r,
        Err(EngineError::Schema { rendered }) => {
            eprint!("{rendered}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(engine(e)),
    };
    if json {
        json_out(&crate::api::SchemaApplyOutput::of(uri, &actor(&who), &r));
    } else if !r.applied {
        println!("no changes: the graph already has this schema");
    } else {
        for s in &r.steps {
            println!("applied {} {}: {}", s.entity, s.type_name, s.detail);
        }
        for (t, n) in &r.rewritten {
            println!("  {t}: {n} rows rewritten");
        }
        if let Some(c) = &r.commit {
            println!(
                "schema {} in commit {} (manifest v{})",
                r.schema_id.as_deref().unwrap_or_default(),
                c.id,
                r.manifest_version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `omnigraph schema show URI`.
pub fn schema_show(target: &Target) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let source = match target.remote()? {
        Some(r) => {
            let out: crate::api::SchemaOutput = rt.block_on(r.graph_get(&["schema"], &[]))?;
            out.schema_source
        }
        None => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            g.schema_source()
        }
    };
    print!("{source}");
    if !source.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
