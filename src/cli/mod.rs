//! The `omnigraph` command line (reference: docs/user/cli/reference.md).
//!
//! Exit codes: 0 success, 1 the input has errors (diagnostics printed),
//! 2 usage or I/O errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod graph;
pub mod operator;
pub mod remote;

use crate::diag::Diagnostics;
use crate::schema;

/// Command-line interface for Omnigraph.
#[derive(Debug, Parser)]
#[command(
    name = "omnigraph",
    version,
    about = "Typed, versioned, branchable property-graph database"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Do not echo a write's resolved target to stderr (reference CLI,
    /// "Write diagnostics & destructive confirmation").
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Consent to a destructive write (an overwrite load, a branch delete)
    /// against a non-local target (`s3://`, a served graph); without it
    /// such a write asks on a terminal and is refused otherwise (reference
    /// CLI, "Write diagnostics & destructive confirmation"). Local targets
    /// never ask.
    #[arg(long, global = true)]
    pub yes: bool,
}

/// The verb and the target of a command that writes a graph, for the
/// target echo (`omnigraph load → ./g (direct, local)` on stderr, which
/// the reference prints for `load`, `branch create|delete|merge`, `schema
/// apply` and `repair`; `mutate` does not echo; a served graph shows as
/// `URL graph ID (served, remote)`). `None`: not such a command, or its
/// target is missing (the command itself reports that).
fn write_target(c: &Command) -> Option<(&'static str, String)> {
    let (verb, target) = match c {
        Command::Load(a) => ("load", &a.target),
        Command::Branch(graph::BranchCommand::Create { target, .. }) => ("branch create", target),
        Command::Branch(graph::BranchCommand::Delete { target, .. }) => ("branch delete", target),
        Command::Branch(graph::BranchCommand::Merge { target, .. }) => ("branch merge", target),
        Command::Schema(SchemaCommand::Apply { target, .. }) => ("schema apply", target),
        Command::Repair(a) => ("repair", &a.target),
        _ => return None,
    };
    Some((verb, target.echo()?))
}

/// The verb of a destructive write (an overwrite `load`, `branch
/// delete`) and its target echo, when the target is not local: such a
/// write needs `--yes` or a yes on a terminal (reference CLI, "Write
/// diagnostics & destructive confirmation").
fn destructive_remote(c: &Command) -> Option<(&'static str, String)> {
    let destructive = match c {
        Command::Load(a) => a.mode == crate::engine::load::LoadMode::Overwrite,
        Command::Branch(graph::BranchCommand::Delete { .. }) => true,
        _ => false,
    };
    let (verb, echo) = write_target(c)?;
    (destructive && echo.ends_with("remote)")).then_some((verb, echo))
}

/// Asks on the terminal whether to run `verb` against `echo`; refuses
/// without asking when stdin is not a terminal.
fn confirm_destructive(verb: &str, echo: &str) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let refused = || {
        CliError::Usage(format!(
            "`omnigraph {verb}` against a non-local target ({echo}) is destructive: \
             pass --yes to run it"
        ))
    };
    if !std::io::stdin().is_terminal() {
        return Err(refused());
    }
    eprint!("omnigraph {verb} → {echo} is destructive. Proceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|_| refused())?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(refused()),
    }
}

/// The target echo's scope word: a bare path or `file://` is `local`,
/// any other scheme `remote` (reference CLI reference).
fn scope_of(uri: &str) -> &'static str {
    if uri.starts_with("file://") || !uri.contains("://") {
        "local"
    } else {
        "remote"
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate queries against a schema (offline): exit 0 clean, 1 on errors.
    #[command(alias = "check")]
    Lint(LintArgs),
    /// Schema commands.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// The cluster control plane (`cluster.yaml`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Run a read query against a graph (`query explain` prints its plan).
    #[command(
        alias = "read",
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Query(QueryArgs),
    /// Create a graph from a schema.
    Init(graph::InitArgs),
    /// Load a JSONL file as one commit.
    Load(graph::LoadArgs),
    /// Run a `.gq` mutation as one commit.
    #[command(alias = "change")]
    Mutate(graph::MutateArgs),
    /// Each table's version and row count.
    Snapshot(graph::SnapshotArgs),
    /// Write the graph as JSONL (the load format).
    Export(graph::ExportArgs),
    /// Branch commands.
    #[command(subcommand)]
    Branch(graph::BranchCommand),
    /// Commit history.
    #[command(subcommand)]
    Commit(graph::CommitCommand),
    /// Follow a branch's change feed (`poll`), or take the snapshot and
    /// cursor a follower starts from (`baseline`).
    #[command(subcommand)]
    Changes(graph::ChangesCommand),
    /// The entity changes between two branches or commits (FROM to TO).
    Diff(graph::DiffArgs),
    /// Read one Blob property of a node or edge (`get`, `stat`).
    #[command(subcommand)]
    Blob(graph::BlobCommand),
    /// Publish tables whose Lance head is ahead of the manifest (preview
    /// unless --confirm).
    Repair(graph::RepairArgs),
    /// Run every upkeep step due (compaction, index builds and folds) on
    /// every table of every branch; non-destructive.
    Optimize(graph::OptimizeArgs),
    /// Fill, re-embed (--reembed-all) or clear (--clean) `@embed`
    /// vectors of a graph (each chunk a commit; run again to resume) or of
    /// a JSONL file (--input/--output/--spec), with the configured
    /// embedding provider (OMNIGRAPH_EMBED_*).
    Embed(graph::EmbedArgs),
    /// Remove history below a kept window (old table versions and commit
    /// records); a dry run unless --confirm.
    Cleanup(graph::CleanupArgs),
    /// The graphs a server serves (`GET /graphs`).
    #[command(subcommand)]
    Graphs(GraphsCommand),
    /// Store a bearer token for a server named in the operator's
    /// `config.yaml` (`--token`, else one line of stdin), in its
    /// `credentials` file (created 0600).
    Login {
        name: String,
        #[arg(long)]
        token: Option<String>,
    },
    /// Remove a server's stored token (idempotent).
    Logout { name: String },
    /// Invoke an operator alias from `config.yaml`: its stored query on
    /// its server, positional ARGS filling the alias's `args` in order
    /// (`--params` wins over both).
    Alias {
        name: String,
        args: Vec<String>,
        #[arg(long)]
        params: Option<String>,
        #[arg(long, value_enum)]
        format: Option<graph::Format>,
        #[arg(long)]
        json: bool,
    },
    /// The profiles of the operator's `config.yaml` (read-only).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print this build's release and the storage format it reads and
    /// writes (`internal-schema N`); also `omnigraph -v`.
    #[command(short_flag = 'v')]
    Version {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Every profile: its name and scope, one line each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One profile (default: `$OMNIGRAPH_PROFILE`, else the `defaults`).
    Show {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GraphsCommand {
    /// List the graphs a server serves: id and storage URI.
    List {
        /// The server (an `http(s)://` URL or an operator server's name).
        #[arg(long, value_name = "NAME|URL")]
        server: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The `.pg` schema the queries are checked against (offline form).
    #[arg(long, conflicts_with = "uri", required_unless_present = "uri")]
    pub schema: Option<PathBuf>,
    /// A graph whose accepted schema the queries are checked against
    /// (graph-backed form).
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
    /// The `.gq` file to check.
    #[arg(long)]
    pub query: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Check a cluster folder: `cluster.yaml`, its schemas, stored queries
    /// and policy bundles. Exit 0 when valid, 1 with every problem listed.
    Validate {
        /// The folder holding `cluster.yaml` (default: the current one).
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Validate, then list what `apply` would create, update or delete
    /// compared with the state ledger (`<storage>/__cluster/state.json`).
    /// Read-only. Exit 0, or 1 when the folder is invalid.
    Plan {
        /// The folder holding `cluster.yaml` (default: the current one).
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Create the state ledger (nothing applied yet), recording what each
    /// declared graph's root holds. An existing ledger is left alone.
    Import {
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Converge to the config under the state lock: create graphs, apply
    /// schema changes, publish stored queries and policies, delete what
    /// was removed (a graph only after `approve`). Exit 1 unless converged.
    Apply {
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        /// The operator recorded on schema commits.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
    },
    /// Observe the live graphs and blobs and record drift in the ledger,
    /// so the next plan proposes converging it.
    Refresh {
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Read-only: each resource applied vs desired, blobs and roots
    /// checked, whether the lock is held.
    Status {
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Approve deleting a graph (`graph.<id>`), bound to this config and
    /// ledger.
    Approve {
        resource: String,
        #[arg(long, default_value = ".")]
        config: PathBuf,
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a held state lock by its exact id (only when no cluster
    /// command is running).
    ForceUnlock {
        lock_id: String,
        #[arg(long, default_value = ".")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Parse and validate a `.pg` file; exit 0 clean, 1 on errors.
    Check {
        /// The `.pg` file.
        schema: PathBuf,
        /// Print diagnostics (or the compiled catalog) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plan the migration from a graph's schema to a new `.pg`: the typed
    /// steps, each supported or not with the reason. Exit 0 when every
    /// step is supported, 1 when one is not (or the new schema has errors).
    Plan {
        /// The desired `.pg` file.
        #[arg(long)]
        schema: PathBuf,
        /// The graph (a local path or file:// URI).
        uri: String,
        #[arg(long)]
        json: bool,
    },
    /// Apply a new `.pg` to a graph: the planned steps in one commit,
    /// fenced like every write. Unsupported plans, drops without
    /// `--allow-data-loss`, steps other branches cannot take, and rows that
    /// break a new constraint are refused (exit 1) with the reason.
    Apply {
        /// The desired `.pg` file.
        #[arg(long)]
        schema: PathBuf,
        #[command(flatten)]
        target: graph::Target,
        /// Apply steps that drop a type or property (older commits keep
        /// reading the dropped data).
        #[arg(long)]
        allow_data_loss: bool,
        #[arg(long)]
        json: bool,
        /// The actor the write is made as.
        #[arg(long = "as", value_name = "ACTOR")]
        actor: Option<String>,
        /// A policy bundle (YAML) the write must pass (`schema_apply`), for
        /// `--as`; also `OMNIGRAPH_POLICY_FILE`.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Print a graph's current `.pg` source.
    #[command(alias = "get")]
    Show {
        #[command(flatten)]
        target: graph::Target,
    },
}

/// `omnigraph query`: run a read query, or `query explain`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub sub: Option<QueryCommand>,
    #[command(flatten)]
    pub run: graph::QueryRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Print the lowered execution IR of one query.
    Explain {
        #[arg(long)]
        schema: PathBuf,
        #[arg(long)]
        query: PathBuf,
        /// The query's name in the file.
        name: String,
        /// Print the IR as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Test builds: failpoints from the `FAILPOINTS` environment variable
    // (`name=action;...`, the `fail` crate's format); inert without the
    // `failpoints` feature.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr when `OMNIGRAPH_LOG` is set (`error|warn|info|debug|trace`,
/// as the server's): our events at that level, other libraries' (Lance,
/// DataFusion) at warn, or at the level itself from debug on. Unset, the
/// CLI logs nothing: its output is the command's. `debug` shows, among
/// others, where a load spends its time (parse, validate, batch, commit).
fn init_logging() {
    if let Some(filter) = crate::logging::directives_from_env() {
        crate::logging::init_with(filter);
    } else if let Some(level) = crate::logging::level_from_env() {
        crate::logging::init(level, &[]);
    }
}

/// A failure that is not a diagnostic in the user's source.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad command-line usage (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The input names something that does not exist (exit code 1).
    #[error("{0}")]
    Input(String),
    /// The engine refused or failed (exit code 1; 2 for I/O and locations).
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    /// A server refused or could not be reached (remote mode): its error
    /// code (`unreachable` when no answer came) and message; exit code 1
    /// for a refusal of the input (4xx), 2 otherwise.
    #[error("{code}: {message}{}", if *.status > 0 { format!(" (HTTP {})", .status) } else { String::new() })]
    Remote {
        status: u16,
        code: String,
        message: String,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // A conditional write whose branch moved (reference:
            // docs/user/mutations/index.md, exit code 4).
            CliError::Engine(crate::engine::EngineError::PreconditionFailed { .. })
            | CliError::Remote { status: 412, .. } => 4,
            CliError::Input(_) => 1,
            CliError::Engine(
                crate::engine::EngineError::Io { .. } | crate::engine::EngineError::BadUri { .. },
            ) => 2,
            CliError::Engine(_) => 1,
            CliError::Read { .. } | CliError::Usage(_) => 2,
            CliError::Remote { status, .. } if (400..500).contains(status) => 1,
            CliError::Remote { .. } => 2,
        }
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn print_diags(d: &Diagnostics, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d.to_json()).unwrap_or_default()
        );
    } else {
        eprint!("{}", d.render(color()));
    }
}

/// Runs one parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    if !cli.quiet
        && let Some((verb, uri)) = write_target(&cli.command)
    {
        eprintln!("omnigraph {verb} → {uri}");
    }
    if !cli.yes
        && let Some((verb, echo)) = destructive_remote(&cli.command)
    {
        confirm_destructive(verb, &echo)?;
    }
    match cli.command {
        Command::Schema(SchemaCommand::Check { schema, json }) => {
            let src = read(&schema)?;
            match schema::compile_schema_file(&schema.display().to_string(), &src) {
                Ok(cat) => {
                    if json {
                        println!("{}", serde_json::json!({"status": "ok", "catalog": cat}));
                    } else {
                        println!(
                            "{}: ok ({} node types, {} edge types, {} interfaces)",
                            schema.display(),
                            cat.nodes.len(),
                            cat.edges.len(),
                            cat.interfaces.len()
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(d) => {
                    print_diags(&d, json);
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Schema(SchemaCommand::Plan { schema, uri, json }) => {
            graph::schema_plan(&schema, &uri, json)
        }
        Command::Schema(SchemaCommand::Show { target }) => graph::schema_show(&target),
        Command::Schema(SchemaCommand::Apply {
            schema,
            target,
            allow_data_loss,
            json,
            actor,
            policy,
        }) => graph::schema_apply(&schema, &target, allow_data_loss, json, actor, policy),
        Command::Cluster(ClusterCommand::Validate { config, json }) => {
            let r = crate::cluster::validate(&config).map_err(CliError::Input)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                for f in &r.findings {
                    println!("error[{}] {}: {}", f.code, f.resource, f.message.trim_end());
                }
                println!(
                    "{}: {} ({} graphs, {} stored queries, {} policies)",
                    config.join("cluster.yaml").display(),
                    if r.ok { "valid" } else { "invalid" },
                    r.graphs,
                    r.queries,
                    r.policies
                );
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Cluster(ClusterCommand::Plan { config, json }) => {
            let (report, plan) = crate::cluster::plan::plan(&config).map_err(CliError::Input)?;
            let Some(plan) = plan else {
                for f in &report.findings {
                    println!("error[{}] {}: {}", f.code, f.resource, f.message.trim_end());
                }
                println!(
                    "{}: invalid; nothing planned",
                    config.join("cluster.yaml").display()
                );
                return Ok(ExitCode::from(1));
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                );
            } else {
                if !plan.state_found {
                    println!(
                        "no state ledger at {}: every resource is a create",
                        plan.state_path
                    );
                }
                for c in &plan.changes {
                    let sign = match c.action {
                        crate::cluster::plan::Action::Create => "+ create",
                        crate::cluster::plan::Action::Update => "~ update",
                        crate::cluster::plan::Action::Delete => "- delete",
                    };
                    println!("{sign} {}", c.resource);
                }
                let n = |a| plan.changes.iter().filter(|c| c.action == a).count();
                println!(
                    "{} to create, {} to update, {} to delete, {} unchanged (state revision {})",
                    n(crate::cluster::plan::Action::Create),
                    n(crate::cluster::plan::Action::Update),
                    n(crate::cluster::plan::Action::Delete),
                    plan.unchanged,
                    plan.state_revision
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(c) => cluster_write(c),
        Command::Lint(args) => lint(&args),
        Command::Init(a) => graph::init(a),
        Command::Load(a) => graph::load(a),
        Command::Mutate(a) => graph::mutate(a),
        Command::Snapshot(a) => graph::snapshot(a),
        Command::Export(a) => graph::export(a),
        Command::Branch(c) => graph::branch(c),
        Command::Commit(c) => graph::commit(c),
        Command::Changes(c) => graph::changes(c),
        Command::Diff(a) => graph::diff(a),
        Command::Blob(c) => graph::blob(c),
        Command::Repair(a) => graph::repair(a),
        Command::Optimize(a) => graph::optimize(a),
        Command::Cleanup(a) => graph::cleanup(a),
        Command::Embed(a) => graph::embed(a),
        Command::Login { name, token } => {
            operator::login(&name, token)?;
            eprintln!(
                "stored the token for `{name}` in {}",
                operator::home().join("credentials").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Logout { name } => {
            if operator::logout(&name)? {
                eprintln!("removed the token for `{name}`");
            } else {
                eprintln!("no token stored for `{name}`");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Alias {
            name,
            args,
            params,
            format,
            json,
        } => graph::alias(&name, &args, params.as_deref(), format, json),
        Command::Profile(ProfileCommand::List { json }) => {
            let cfg = operator::config()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&cfg.profiles).unwrap_or_default()
                );
            } else {
                for (n, p) in &cfg.profiles {
                    println!("{n}  {}", p.describe());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile(ProfileCommand::Show { name, json }) => {
            let cfg = operator::config()?;
            let name = name.or_else(|| {
                std::env::var("OMNIGRAPH_PROFILE")
                    .ok()
                    .filter(|p| !p.trim().is_empty())
            });
            let p = match &name {
                Some(n) => cfg
                    .profiles
                    .get(n)
                    .cloned()
                    .ok_or_else(|| CliError::Input(format!("no profile `{n}`")))?,
                None => cfg.defaults.clone(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            } else {
                println!(
                    "{}: {}",
                    name.as_deref().unwrap_or("defaults"),
                    p.describe()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Graphs(GraphsCommand::List { server, json }) => {
            let r = remote::Remote::new(&server, None)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
            let out: crate::api::GraphListResponse = rt.block_on(r.get(&["graphs"], &[]))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                for g in &out.graphs {
                    println!("{}  {}", g.graph_id, g.uri);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Version { json } => {
            let release = env!("CARGO_PKG_VERSION");
            let schema = crate::engine::INTERNAL_SCHEMA_VERSION;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"version": release, "internal_schema_version": schema})
                );
            } else {
                println!("omnigraph {release}");
                println!("internal-schema {schema}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query(QueryArgs { sub: None, run }) => graph::query(run),
        Command::Query(QueryArgs {
            sub:
                Some(QueryCommand::Explain {
                    schema,
                    query,
                    name,
                    json,
                }),
            ..
        }) => {
            let cat = match load_schema(&schema, json)? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let src = read(&query)?;
            let (compiled, diags) =
                crate::query::compile_queries_file(&cat, &query.display().to_string(), &src);
            let Some(q) = compiled.query(&name) else {
                if compiled.has_errors() {
                    print_diags(&diags, json);
                    return Ok(ExitCode::from(1));
                }
                let known = compiled.declared.iter().map(String::as_str);
                let help = crate::diag::did_you_mean(&name, known.clone())
                    .unwrap_or_else(|| crate::diag::valid_list("queries", known));
                return Err(CliError::Input(format!(
                    "no query named `{name}` in {}; {help}",
                    query.display()
                )));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(q).unwrap_or_default());
            } else {
                print!("{}", crate::query::explain::explain(q));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Compiles a schema file; on errors prints them and returns the exit code.
fn load_schema(path: &Path, json: bool) -> Result<Result<schema::Catalog, ExitCode>, CliError> {
    let src = read(path)?;
    Ok(
        match schema::compile_schema_file(&path.display().to_string(), &src) {
            Ok(c) => Ok(c),
            Err(d) => {
                print_diags(&d, json);
                Err(ExitCode::from(1))
            }
        },
    )
}

fn lint(args: &LintArgs) -> Result<ExitCode, CliError> {
    let cat = match (&args.schema, &args.uri) {
        (Some(schema), _) => match load_schema(schema, args.json)? {
            Ok(c) => c,
            Err(code) => return Ok(code),
        },
        (None, Some(uri)) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
            (*rt.block_on(crate::engine::Graph::open(uri))?.catalog()).clone()
        }
        (None, None) => return Err(CliError::Usage("give --schema S.pg or a graph URI".into())),
    };
    let src = read(&args.query)?;
    let file = args.query.display().to_string();
    let (compiled, diags) = crate::query::compile_queries_file(&cat, &file, &src);
    let report = crate::query::lint::LintReport::new(&compiled, &diags);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for q in &report.queries {
            println!("{:<7} {:<8} {}", q.status, q.kind, q.name);
        }
        if !diags.items.is_empty() {
            eprint!("{}", diags.render(color()));
        }
        println!(
            "{}: {} ({} queries, {} errors, {} warnings)",
            file,
            report.status,
            report.queries.len(),
            report.errors,
            report.warnings
        );
    }
    Ok(if compiled.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `cluster import | apply | status | approve | force-unlock`.
fn cluster_write(c: ClusterCommand) -> Result<ExitCode, CliError> {
    use crate::cluster::apply as ca;
    let fail = |e: ca::ClusterError| CliError::Input(e.to_string());
    let out = |json: bool, v: &dyn erased::Json, text: &dyn Fn()| {
        if json {
            println!("{}", v.to_json());
        } else {
            text();
        }
    };
    let who = |a: Option<String>| {
        a.or_else(|| std::env::var("OMNIGRAPH_ACTOR").ok())
            .unwrap_or_else(|| "local".into())
    };
    match c {
        ClusterCommand::Import { config, json } => {
            let r = ca::import(&config).map_err(fail)?;
            out(json, &r, &|| {
                if r.created {
                    println!(
                        "created {} ({} graphs observed)",
                        r.state_path,
                        r.observations.len()
                    );
                } else {
                    println!("{} already exists; nothing changed", r.state_path);
                }
            });
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Apply {
            config,
            json,
            actor,
        } => {
            let r = ca::apply(&config, &who(actor)).map_err(fail)?;
            out(json, &r, &|| {
                for c in &r.changes {
                    println!(
                        "{} {} {}{}",
                        c.outcome,
                        c.action,
                        c.resource,
                        c.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                }
                println!(
                    "{}; state revision {}{}",
                    if r.converged {
                        "converged"
                    } else {
                        "not converged"
                    },
                    r.state_revision,
                    if r.state_written {
                        ""
                    } else {
                        " (nothing written)"
                    }
                );
            });
            Ok(if r.converged {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ClusterCommand::Refresh { config, json } => {
            let r = ca::refresh(&config).map_err(fail)?;
            out(json, &r, &|| {
                for d in &r.drift {
                    println!("drifted {} ({})", d.resource, d.kind);
                }
                println!(
                    "{} drifted; state revision {}{}",
                    r.drift.len(),
                    r.state_revision,
                    if r.state_written {
                        ""
                    } else {
                        " (nothing written)"
                    }
                );
            });
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Status { config, json } => {
            let r = ca::status(&config).map_err(fail)?;
            out(json, &r, &|| {
                if !r.state_found {
                    println!("no state ledger; run `omnigraph cluster import`");
                }
                for x in &r.resources {
                    println!("{:<13} {}", x.status, x.resource);
                }
                if let Some(l) = &r.lock {
                    println!("lock held: {l}");
                }
                println!(
                    "state revision {}: {}",
                    r.state_revision,
                    if r.converged {
                        "converged"
                    } else {
                        "not converged"
                    }
                );
            });
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Approve {
            resource,
            config,
            actor,
            json,
        } => {
            let a = ca::approve(&config, &resource, &who(actor)).map_err(fail)?;
            out(json, &a, &|| {
                println!(
                    "approved delete of {} ({}) by {}",
                    a.resource, a.id, a.actor
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::ForceUnlock { lock_id, config } => {
            ca::force_unlock(&config, &lock_id).map_err(fail)?;
            println!("removed lock {lock_id}");
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Validate { .. } | ClusterCommand::Plan { .. } => {
            Err(CliError::Usage("handled above".into()))
        }
    }
}

/// Serializes any report for `--json`.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}
