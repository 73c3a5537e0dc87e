//! The graph commands' arguments (clap).

use super::*;

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
    /// Load only if the branch head is still this commit; otherwise change
    /// nothing and exit with code 4 (as `mutate --if-commit`). A local
    /// graph only: the server's load routes take no precondition.
    #[arg(long, value_name = "COMMIT")]
    pub if_commit: Option<String>,
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
    /// Run only if the branch head is still this commit (the
    /// `graph_commit_id` of `query --json`); otherwise change nothing and
    /// exit with code 4 (a conditional write; reference
    /// docs/user/mutations/index.md).
    #[arg(long, value_name = "COMMIT")]
    pub if_commit: Option<String>,
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
        /// The new branch's name: 1-100 letters, digits, '.', '_', '-',
        /// with '/' between parts (checked here, before anything runs).
        name: crate::engine::BranchName,
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
    /// The entity changes a commit made relative to its first parent
    /// (nodes before edges, then type, id, op), every page fetched and
    /// printed as it arrives unless `--page-token` asks for one page.
    Changes {
        id: String,
        #[command(flatten)]
        scope: super::ChangeScope,
        /// Changes per page (1 to 10,000; default 1,000).
        #[arg(long)]
        limit: Option<u64>,
        /// Fetch and print exactly this page (from `next_page_token`).
        #[arg(long)]
        page_token: Option<String>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}
