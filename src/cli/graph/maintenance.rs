//! `optimize` and `cleanup`: maintenance on a graph's storage (never
//! through a server; reference docs/user/operations/maintenance.md).

use super::*;
use crate::engine::cleanup::{CleanupPolicy, CleanupReport};
use crate::engine::upkeep::UpkeepDone;

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Keep the newest N commits of each branch (its head always).
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Keep every commit younger than this (`30m`, `12h`, `7d`, `2w`).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,
    /// Remove; without it, only list what would be removed.
    #[arg(long)]
    pub confirm: bool,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}`: {e}; write it as 30m, 12h, 7d or 2w"))
}

/// `omnigraph optimize URI`.
pub fn optimize(a: OptimizeArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let steps = rt.block_on(g.optimize()).map_err(engine)?;
    let lines: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| match s {
            UpkeepDone::Published {
                branch,
                table,
                version,
                what,
            } => serde_json::json!({"branch": branch, "table": table.as_str(), "version": version, "done": what}),
            UpkeepDone::Deferred { branch, table, reason } => {
                serde_json::json!({"branch": branch, "table": table.as_str(), "deferred": reason})
            }
            _ => serde_json::Value::Null,
        })
        .collect();
    if a.json {
        json_out(&serde_json::json!({ "steps": lines }));
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        println!("nothing to optimize: every table is compacted and fully indexed");
    }
    for l in &lines {
        match l.get("done") {
            Some(d) => println!(
                "{} on `{}`: {} (v{})",
                l["table"].as_str().unwrap_or(""),
                l["branch"].as_str().unwrap_or(""),
                d.as_str().unwrap_or(""),
                l["version"]
            ),
            None => println!(
                "{} on `{}`: deferred, a write held it ({}); run optimize again",
                l["table"].as_str().unwrap_or(""),
                l["branch"].as_str().unwrap_or(""),
                l["deferred"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `omnigraph cleanup (--keep N | --older-than D) [--confirm] URI`.
pub fn cleanup(a: CleanupArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let policy = CleanupPolicy {
        keep: a.keep,
        older_than_ms: a
            .older_than
            .map(|d| d.as_millis().min(i64::MAX as u128) as i64),
    };
    let r = rt.block_on(g.cleanup(policy, a.confirm)).map_err(engine)?;
    if a.json {
        json_out(&r);
    } else {
        print_cleanup(&r);
    }
    let failed = r.tables.iter().any(|t| t.error.is_some());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_cleanup(r: &CleanupReport) {
    let verb = if r.confirmed {
        "removed"
    } else {
        "would remove"
    };
    for t in &r.tables {
        let line = t
            .lance_branch
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        match &t.error {
            Some(e) => println!("{}{line}: failed: {e}", t.table),
            None if t.versions_removed > 0 => println!(
                "{}{line}: {verb} {} version(s), {} file(s), {} bytes ({} kept)",
                t.table, t.versions_removed, t.files_removed, t.bytes_removed, t.versions_kept
            ),
            None => {}
        }
    }
    println!(
        "{verb} {} commit(s) ({} kept), {} table version(s), {} file(s), {} bytes",
        r.commits_removed,
        r.commits_kept,
        r.versions_removed(),
        r.files_removed()
            + if r.confirmed {
                r.commits_removed as u64
            } else {
                0
            },
        r.bytes_removed()
    );
    if !r.confirmed {
        println!("dry run: nothing was removed; run again with --confirm to remove it");
    }
}
