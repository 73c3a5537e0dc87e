//! The engine's error type. Each variant carries what the user needs to fix
//! the input or the remedy to run.

use crate::storage::ControlError;

use super::load::LoadError;

/// Errors from opening, reading and writing a graph.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Configuring or calling the embedding provider failed (HTTP 400 for
    /// configuration and model mismatch, 504 past the deadline, 502
    /// otherwise).
    #[error(transparent)]
    Embedding(#[from] crate::embed::EmbeddingError),
    #[error(
        "{uri} is not an Omnigraph graph (no manifest); create one with `omnigraph init --schema S.pg {uri}`"
    )]
    NotAGraph { uri: String },
    #[error("{uri} already holds {what}; init refuses to overwrite it — pick an empty location")]
    AlreadyExists { uri: String, what: String },
    #[error("unsupported graph location `{uri}`: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("the schema has errors:\n{rendered}")]
    Schema { rendered: String },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
    #[error("{} invalid input line(s):\n{}", .errors.len(), .errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Load { errors: Vec<LoadError> },
    #[error("branch `{name}` does not exist; {valid}")]
    UnknownBranch { name: String, valid: String },
    #[error("branch `{name}` already exists")]
    BranchExists { name: String },
    #[error("invalid branch name `{name}`: {reason}")]
    BadBranchName { name: String, reason: String },
    #[error("`{key}` is not a table key; a table is named `node:<Type>` or `edge:<Type>`")]
    BadTableKey { key: String },
    #[error(
        "invalid graph id `{id}`: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, no '..'"
    )]
    BadGraphId { id: String },
    #[error("branch `main` cannot be deleted")]
    MainProtected,
    #[error("commit `{id}` does not exist")]
    UnknownCommit { id: String },
    /// No such entity, or its Blob cell is null (HTTP 404).
    #[error("{what}")]
    NoBlob { what: String },
    /// A table version a read needs does not exist: `cleanup` removed it
    /// (a handle that still knew the commit), or the graph is damaged
    /// (HTTP 410).
    #[error(
        "table {table}: the version this read needs no longer exists ({reason}); if `omnigraph cleanup` ran, read a kept commit or a branch head, else run `omnigraph repair`"
    )]
    TableVersionGone { table: String, reason: String },
    /// Time travel below the window `cleanup` kept (HTTP 410).
    #[error(
        "commit `{id}` is no longer kept: `omnigraph cleanup` removed the history before the window it keeps; read a kept commit (`omnigraph commit list`) or a branch head"
    )]
    HistoryRemoved { id: String },
    #[error("write conflict: {reason}")]
    Conflict { reason: String },
    #[error(
        "write conflict on table {table}: {reason}; the write was prepared again and still conflicts — retry it"
    )]
    Stale { table: String, reason: String },
    /// A conditional write (`--if-commit`, `Omnigraph-If-Graph-Commit`)
    /// found the branch head moved: nothing was written (reference
    /// docs/user/mutations/index.md, "Conditional writes"; HTTP 412
    /// `precondition_failure {expected, actual}`, CLI exit code 4).
    #[error(
        "branch `{branch}` is at commit {}, not {expected} as the write required; nothing was written — re-read the branch and decide again",
        actual.as_deref().unwrap_or("(none)")
    )]
    PreconditionFailed {
        branch: String,
        expected: String,
        actual: Option<String>,
    },
    #[error(
        "table {table} on branch `{branch}` is being written by {writer}; the write waited and gave up — retry it"
    )]
    Busy {
        table: String,
        branch: String,
        writer: String,
    },
    #[error(
        "write {write_id} could not renew its lease in time and stopped before publishing; heal finishes or undoes it — retry the write"
    )]
    LeaseLost { write_id: String },
    #[error("query error:\n{rendered}")]
    Query { rendered: String },
    /// The request's `.gq` source cannot be run as sent: it does not
    /// check, names no query it declares, or is the wrong kind for the
    /// route. The message says which and what to send instead.
    #[error("{reason}")]
    Source { reason: String },
    #[error("parameter `${name}`: {reason}")]
    Param { name: String, reason: String },
    #[error(
        "query budget exceeded: {limit} over {value}; connect the query's variables with traversals or filter them, or raise the limit with {raise}"
    )]
    Budget {
        /// The limit's name.
        limit: String,
        /// The limit's value.
        value: u64,
        /// How to raise it.
        raise: String,
    },
    /// A resource shared by every request of the process is exhausted
    /// for now (the query memory pool): retry shortly.
    #[error("the server's {resource} ({limit} bytes) is in use by other requests; {raise}")]
    Overloaded {
        resource: String,
        limit: u64,
        raise: String,
    },
    /// The query's caller went away (the HTTP client disconnected): it
    /// stopped at its next check and freed what it held.
    #[error("the query was cancelled: {reason}")]
    Cancelled { reason: String },
    #[error(
        "an overwrite with no rows would delete every node and edge on branch `{branch}`; to do that, pass --allow-empty (HTTP: allow_empty=true)"
    )]
    EmptyOverwrite { branch: String },
    #[error(
        "recovery sidecar {path} is unreadable ({reason}); it is kept for inspection and writes are refused until it is removed or repaired — reads still work"
    )]
    CorruptSidecar { path: String, reason: String },
    #[error("could not list recovery sidecars: {reason}; {advice}")]
    SidecarsUnlisted { reason: String, advice: String },
    #[error(
        "table {table} on branch `{branch}` has Lance version {head}, ahead of the published version {published}: {advice}"
    )]
    Drift {
        table: String,
        branch: String,
        head: u64,
        published: u64,
        advice: String,
    },
    #[error("actor `{actor}` may not `{action}` on branch `{branch}` (denied by policy)")]
    Forbidden {
        actor: String,
        action: String,
        branch: String,
    },
    #[error("schema apply refused: {reason}")]
    SchemaRefused { reason: String },
    #[error("merge refused: {reason}")]
    MergeRefused { reason: String },
    #[error("the merge has {} conflict(s); nothing was published — reconcile the branches and merge again:\n{}", .conflicts.len(), .conflicts.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    MergeConflicts {
        conflicts: Vec<super::merge::MergeConflict>,
    },
    /// A well-formed diff request this commit cannot answer (HTTP 409
    /// `change_diff_refusal`; reference docs/user/branching/changes.md).
    #[error("commit {commit} cannot be diffed: {}", refusal_text(*.reason, .type_name.as_deref()))]
    ChangeRefused {
        commit: String,
        reason: super::changes::RefusalReason,
        type_name: Option<String>,
    },
    /// History a diff or the change feed needs was removed by `cleanup`
    /// (HTTP 410 `change_feed_gap`): retrying cannot succeed; take a new
    /// baseline (`omnigraph changes baseline`) and follow from its cursor.
    #[error(
        "the history after this point is no longer kept (commit {first_unreadable} cannot be read; removed by cleanup); take a new baseline with `omnigraph changes baseline` and poll from its cursor"
    )]
    ChangeFeedGap {
        cursor: Option<String>,
        first_unreadable: String,
    },
    /// A change cursor or page token that does not fit the request
    /// (HTTP 400; the message starts `change cursor rejected:`).
    #[error("change cursor rejected: {reason}")]
    CursorRejected { reason: String },
    /// A page size above what one response may carry (HTTP 413
    /// `resource_limit`).
    #[error(
        "limit {asked} is above the {max} changes one page may carry; ask for at most {max} and follow next_page_token"
    )]
    ChangeLimit { asked: u64, max: u64 },
    #[error("the graph's worker crashed ({reason}); it is being restarted — retry")]
    Crashed { reason: String },
    #[error("injected fault at `{point}`")]
    Fault { point: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn refusal_text(reason: super::changes::RefusalReason, type_name: Option<&str>) -> String {
    use super::changes::RefusalReason as R;
    match reason {
        R::ParentlessCommit => {
            "it is the graph's first commit and has no parent; start from a baseline (`omnigraph changes baseline`)".into()
        }
        R::SchemaBoundary => format!(
            "it crosses a schema change of type {} (its properties differ between the two states); schema changes are not turned into entity changes — read both states instead",
            type_name.unwrap_or("?")
        ),
    }
}
