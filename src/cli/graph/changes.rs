//! `commit changes`, `changes poll|baseline` and `diff`: entity changes,
//! embedded and remote (reference docs/user/branching/changes.md).

use super::*;
use crate::engine::changes::{ChangeFilter, ChangeOp, EntityChange, EntityKind};
use crate::engine::feed::{ChangeBlock, CommitChangesPage, FeedPage, FeedRequest, FeedStart};

/// Which changes to show: graph concepts only, each flag repeatable; none
/// given selects everything.
#[derive(Debug, Args, Clone, Default)]
pub struct ChangeScope {
    /// Only changes of nodes or of edges.
    #[arg(long = "kind", value_name = "KIND", value_parser = ["node", "edge"])]
    pub kinds: Vec<String>,
    /// Only changes of this node or edge type.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only inserts, updates or deletes.
    #[arg(long = "op", value_name = "OP", value_parser = ["insert", "update", "delete"])]
    pub ops: Vec<String>,
}

impl ChangeScope {
    fn filter(&self) -> ChangeFilter {
        fn parse<T: serde::de::DeserializeOwned>(v: &String) -> Option<T> {
            serde_json::from_value(serde_json::Value::from(v.as_str())).ok()
        }
        ChangeFilter {
            kinds: self.kinds.iter().filter_map(parse::<EntityKind>).collect(),
            types: self.types.clone(),
            ops: self.ops.iter().filter_map(parse::<ChangeOp>).collect(),
        }
    }

    /// The scope as query parameters of the change routes.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        q.extend(self.kinds.iter().map(|k| ("kind", k.clone())));
        q.extend(self.types.iter().map(|t| ("type", t.clone())));
        q.extend(self.ops.iter().map(|o| ("op", o.clone())));
        q
    }
}

#[derive(Debug, Subcommand)]
pub enum ChangesCommand {
    /// Follow a branch's change feed: the commits after `--cursor` (or
    /// from `--start`) as blocks of entity changes, oldest first; prints
    /// the cursor to resume from after the last page.
    Poll {
        /// The branch (default: the cursor's, else main).
        #[arg(long)]
        branch: Option<String>,
        /// Resume after this cursor (from a previous poll or a baseline).
        #[arg(long, conflicts_with = "start")]
        cursor: Option<String>,
        /// First poll only: `now` (default: the head, no replay),
        /// `beginning`, or `after:<commit_id>`.
        #[arg(long)]
        start: Option<String>,
        #[command(flatten)]
        scope: ChangeScope,
        /// Changes per page (1 to 10,000; default 1,000).
        #[arg(long)]
        limit: Option<u64>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Write a snapshot of a branch (the load format) to `--out`, then
    /// print the commit it holds and the cursor that resumes the feed
    /// right after it. The file is complete and on disk before the
    /// cursor is printed.
    Baseline {
        /// The snapshot file (written beside as a temporary, then renamed).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "main")]
        branch: String,
        #[command(flatten)]
        scope: ChangeScope,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// `omnigraph diff FROM TO`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A branch name or a commit id.
    pub from: String,
    /// A branch name or a commit id.
    pub to: String,
    #[command(flatten)]
    pub scope: ChangeScope,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

fn io(source: std::io::Error) -> CliError {
    CliError::Read {
        path: "the output".into(),
        source,
    }
}

/// One change as a line: `insert node Person alice {…}`; an update shows
/// only the properties (and endpoints) that differ.
fn change_line(c: &EntityChange) -> String {
    let kind = match c.kind {
        EntityKind::Node => "node",
        EntityKind::Edge => "edge",
    };
    let op = match c.op {
        ChangeOp::Insert => "insert",
        ChangeOp::Update => "update",
        ChangeOp::Delete => "delete",
    };
    let image = |i: &crate::engine::changes::ChangeImage| {
        let ends = i
            .endpoints
            .as_ref()
            .map(|e| format!("{} -> {} ", e.from, e.to))
            .unwrap_or_default();
        format!("{ends}{}", serde_json::Value::Object(i.properties.clone()))
    };
    let what = match (&c.before, &c.after) {
        (Some(b), Some(a)) => {
            let mut parts = Vec::new();
            if b.endpoints != a.endpoints
                && let (Some(x), Some(y)) = (&b.endpoints, &a.endpoints)
            {
                parts.push(format!(
                    "endpoints {} -> {} => {} -> {}",
                    x.from, x.to, y.from, y.to
                ));
            }
            for (k, v) in &a.properties {
                let old = b.properties.get(k).unwrap_or(&serde_json::Value::Null);
                if old != v {
                    parts.push(format!("{k}: {old} => {v}"));
                }
            }
            parts.join(", ")
        }
        (None, Some(a)) => image(a),
        (Some(b), None) => image(b),
        (None, None) => String::new(),
    };
    format!("{op} {kind} {} {}  {what}", c.type_.name, c.id)
}

fn cause_line(b: &ChangeBlock) -> String {
    format!(
        "commit {} on `{}` by {} at {}: {} change(s)",
        b.cause.graph_commit_id,
        b.cause.authored_branch,
        b.cause.actor_id.as_deref().unwrap_or("-"),
        crate::engine::values::format_datetime(b.cause.authored_at / 1000),
        b.changes.len()
    )
}

/// Where pages come from: the graph opened here, or a server.
enum Source {
    Local(Graph),
    Remote(Remote),
}

impl Source {
    fn of(rt: &tokio::runtime::Runtime, target: &Target) -> Result<Source, CliError> {
        if let Some(r) = target.remote()? {
            return Ok(Source::Remote(r));
        }
        let g = rt
            .block_on(Graph::open(&target.resolve()?))
            .map_err(engine)?;
        Ok(Source::Local(g))
    }
}

/// `commit changes ID`: every page (or the one `--page-token` names),
/// each change printed as its page arrives.
pub(super) fn commit_changes(
    rt: &tokio::runtime::Runtime,
    id: &str,
    scope: &ChangeScope,
    limit: Option<u64>,
    page_token: Option<String>,
    target: &Target,
    json: bool,
) -> Result<ExitCode, CliError> {
    let src = Source::of(rt, target)?;
    let one_page = page_token.is_some();
    let fetch = |token: Option<String>| -> Result<CommitChangesPage, CliError> {
        match &src {
            Source::Local(g) => rt
                .block_on(g.commit_changes_page(id, scope.filter(), token.as_deref(), limit))
                .map_err(engine),
            Source::Remote(r) => {
                let mut q = scope.query();
                q.extend(token.map(|t| ("page_token", t)));
                q.extend(limit.map(|l| ("limit", l.to_string())));
                rt.block_on(r.graph_get(&["commits", id, "changes"], &q))
            }
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut page = fetch(page_token)?;
    if one_page && json {
        json_out(&page);
        return Ok(ExitCode::SUCCESS);
    }
    let mut first = true;
    if json {
        let cause = serde_json::to_string(&page.cause).unwrap_or_default();
        write!(out, "{{\"cause\":{cause},\"changes\":[").map_err(io)?;
    } else {
        writeln!(
            out,
            "commit {} (parent {}) on `{}` by {}",
            page.cause.graph_commit_id,
            page.cause.parent_commit_id.as_deref().unwrap_or("-"),
            page.cause.authored_branch,
            page.cause.actor_id.as_deref().unwrap_or("-")
        )
        .map_err(io)?;
    }
    loop {
        for c in &page.changes {
            if json {
                let sep = if first { "" } else { "," };
                write!(out, "{sep}{}", serde_json::to_string(c).unwrap_or_default()).map_err(io)?;
            } else {
                writeln!(out, "  {}", change_line(c)).map_err(io)?;
            }
            first = false;
        }
        out.flush().map_err(io)?;
        match page.next_page_token.take() {
            Some(t) if !one_page => page = fetch(Some(t))?,
            Some(t) => {
                writeln!(out, "next page: --page-token {t}").map_err(io)?;
                break;
            }
            None => break,
        }
    }
    if json {
        writeln!(out, "]}}").map_err(io)?;
    } else if first {
        writeln!(out, "  (no entity changes)").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

pub fn changes(c: ChangesCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    match c {
        ChangesCommand::Poll {
            branch,
            cursor,
            start,
            scope,
            limit,
            target,
            json,
        } => poll(&rt, branch, cursor, start, &scope, limit, &target, json),
        ChangesCommand::Baseline {
            out,
            branch,
            scope,
            target,
            json,
        } => baseline(&rt, &out, &branch, &scope, &target, json),
    }
}

/// `changes poll`: one poll, its pages followed to the terminal one;
/// complete blocks are printed as they arrive (JSON: one object whose
/// `blocks` array stays open until the end), a block split across pages
/// once complete, and the cursor only after the last page.
#[allow(clippy::too_many_arguments)]
fn poll(
    rt: &tokio::runtime::Runtime,
    branch: Option<String>,
    cursor: Option<String>,
    start: Option<String>,
    scope: &ChangeScope,
    limit: Option<u64>,
    target: &Target,
    json: bool,
) -> Result<ExitCode, CliError> {
    let src = Source::of(rt, target)?;
    let fetch = |token: Option<String>| -> Result<FeedPage, CliError> {
        match &src {
            Source::Local(g) => {
                let mut req = FeedRequest {
                    branch: branch.clone(),
                    page_token: token.clone(),
                    limit,
                    filter: scope.filter(),
                    ..Default::default()
                };
                if token.is_none() {
                    req.cursor = cursor.clone();
                    req.start = start.as_deref().map(FeedStart::parse).transpose()?;
                }
                rt.block_on(g.poll_changes(req)).map_err(engine)
            }
            Source::Remote(r) => {
                let mut q = scope.query();
                q.extend(branch.clone().map(|b| ("branch", b)));
                q.extend(limit.map(|l| ("limit", l.to_string())));
                match token {
                    Some(t) => q.push(("page_token", t)),
                    None => {
                        q.extend(cursor.clone().map(|c| ("cursor", c)));
                        q.extend(start.clone().map(|s| ("start", s)));
                    }
                }
                rt.block_on(r.graph_get(&["changes"], &q))
            }
        }
    };
    let mut page = fetch(None)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        write!(out, "{{\"blocks\":[").map_err(io)?;
    }
    let mut printed = 0usize;
    let mut emit = |out: &mut dyn Write, b: &ChangeBlock| -> Result<(), CliError> {
        if json {
            let sep = if printed == 0 { "" } else { "," };
            write!(out, "{sep}{}", serde_json::to_string(b).unwrap_or_default()).map_err(io)?;
        } else {
            writeln!(out, "{}", cause_line(b)).map_err(io)?;
            for c in &b.changes {
                writeln!(out, "  {}", change_line(c)).map_err(io)?;
            }
        }
        printed += 1;
        out.flush().map_err(io)
    };
    // A block split across pages, held until its last part arrives.
    let mut open: Option<ChangeBlock> = None;
    loop {
        for b in std::mem::take(&mut page.blocks) {
            match open.take() {
                Some(mut o) if o.cause.graph_commit_id == b.cause.graph_commit_id => {
                    o.changes.extend(b.changes);
                    open = Some(o);
                }
                Some(o) => {
                    emit(&mut out, &o)?;
                    open = Some(b);
                }
                None => open = Some(b),
            }
        }
        match page.next_page_token.take() {
            Some(t) => page = fetch(Some(t))?,
            None => break,
        }
    }
    if let Some(o) = open.take() {
        emit(&mut out, &o)?;
    }
    let cursor = page.cursor.clone().unwrap_or_default();
    let caught_up = page.caught_up.unwrap_or(true);
    if json {
        writeln!(
            out,
            "],\"cursor\":{},\"caught_up\":{caught_up}}}",
            serde_json::Value::from(cursor)
        )
        .map_err(io)?;
    } else {
        if printed == 0 {
            writeln!(out, "no new commits").map_err(io)?;
        }
        writeln!(out, "cursor: {cursor}").map_err(io)?;
        if !caught_up {
            writeln!(out, "more commits wait: poll again with this cursor").map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

/// `changes baseline`: the snapshot to a temporary beside `out`, synced,
/// renamed over `out`, the directory synced; only then the handshake.
fn baseline(
    rt: &tokio::runtime::Runtime,
    out: &std::path::Path,
    branch: &str,
    scope: &ChangeScope,
    target: &Target,
    json: bool,
) -> Result<ExitCode, CliError> {
    let fail = |source: std::io::Error| CliError::Read {
        path: out.display().to_string(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::Usage(format!("--out {}: name a file", out.display())))?;
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(fail)?;
    let mut sink = std::io::BufWriter::new(file);
    let written = match Source::of(rt, target)? {
        Source::Local(g) => (|| {
            let (head, cursor) = rt
                .block_on(g.capture_baseline(branch, scope.filter()))
                .map_err(engine)?;
            let at = ReadAt::Commit(head.clone());
            let types = rt
                .block_on(g.baseline_types(&at, &scope.filter()))
                .map_err(engine)?;
            rt.block_on(g.export(&at, types.as_deref(), &mut sink, |_| {}))
                .map_err(engine)?;
            Ok(crate::api::ChangeBaselineOutput {
                snapshot_commit_id: head.to_string(),
                resume_cursor: cursor,
            })
        })(),
        Source::Remote(r) => (|| {
            let body = crate::api::ChangeBaselineRequest {
                branch: Some(branch.to_string()),
                kind: scope.filter().kinds,
                type_names: scope.types.clone(),
                op: scope.filter().ops,
            };
            let mut lines = LastLine::new(&mut sink);
            rt.block_on(r.graph_post_stream(&["changes", "baseline"], &body, &mut lines))?;
            let last = lines.finish().map_err(fail)?;
            serde_json::from_slice::<crate::api::ChangeBaselineRecord>(&last)
                .map(|r| r.baseline)
                .map_err(|_| CliError::Remote {
                    status: 0,
                    code: "interrupted".into(),
                    message: "the baseline stream ended without its final record; nothing was installed — run it again".into(),
                })
        })(),
    };
    let done = written.and_then(|b| {
        let file = sink.into_inner().map_err(|e| fail(e.into_error()))?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, out).map_err(fail)?;
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(fail)?;
        }
        Ok(b)
    });
    let b = match done {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if json {
        json_out(&crate::api::ChangeBaselineRecord { baseline: b });
    } else {
        println!(
            "snapshot of commit {} written to {}",
            b.snapshot_commit_id,
            out.display()
        );
        println!("resume cursor: {}", b.resume_cursor);
    }
    Ok(ExitCode::SUCCESS)
}

/// Passes every line but the last through to `inner`, and keeps the last
/// (a baseline stream's terminal record).
struct LastLine<'a> {
    inner: &'a mut dyn Write,
    pending: Vec<u8>,
}

impl<'a> LastLine<'a> {
    fn new(inner: &'a mut dyn Write) -> Self {
        LastLine {
            inner,
            pending: Vec::new(),
        }
    }

    /// The last non-empty line; everything before it written through.
    fn finish(mut self) -> std::io::Result<Vec<u8>> {
        while self.pending.last() == Some(&b'\n') {
            self.pending.pop();
        }
        let cut = self
            .pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let last = self.pending.split_off(cut);
        self.inner.write_all(&self.pending)?;
        self.inner.flush()?;
        Ok(last)
    }
}

impl Write for LastLine<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(data);
        // Everything up to the second-to-last newline is surely not last.
        let newlines: Vec<usize> = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        if newlines.len() >= 2 {
            let keep_from = newlines[newlines.len() - 2] + 1;
            self.inner.write_all(&self.pending[..keep_from])?;
            self.pending.drain(..keep_from);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `diff FROM TO`: each side a branch (its head) or a commit id.
pub fn diff(a: DiffArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if a.target.remote()?.is_some() {
        return Err(CliError::Usage(
            "diff reads the graph's storage (a path, file:// URI or --store); for a served graph \
             use `commit changes ID --server …` per commit"
                .into(),
        ));
    }
    let g = rt
        .block_on(Graph::open(&a.target.resolve()?))
        .map_err(engine)?;
    let branches = rt.block_on(g.branches()).map_err(engine)?;
    let at = |s: &str| {
        if branches.iter().any(|b| b.name == s) {
            ReadAt::Branch(s.to_string())
        } else {
            ReadAt::Commit(crate::engine::CommitId::from_text(s))
        }
    };
    let set = rt
        .block_on(g.diff(&at(&a.from), &at(&a.to), &a.scope.filter()))
        .map_err(engine)?;
    if a.json {
        json_out(&set);
    } else {
        println!(
            "{} ({}) -> {} ({}): {} change(s)",
            a.from,
            set.from_commit_id,
            a.to,
            set.to_commit_id,
            set.changes.len()
        );
        for c in &set.changes {
            println!("  {}", change_line(c));
        }
    }
    Ok(ExitCode::SUCCESS)
}
