//! `blob get|stat ENTITY TYPE ID PROPERTY`: one Blob cell, embedded or
//! through a server (reference docs/user/cli/reference.md, "Blob read
//! commands").

use sha2::Digest;

use super::*;
use crate::engine::changes::EntityKind;

/// The cell and where it is read.
#[derive(Debug, Args)]
pub struct BlobCellArgs {
    /// `node` or `edge`.
    #[arg(value_parser = ["node", "edge"])]
    pub entity: String,
    /// The node or edge type.
    #[arg(value_name = "TYPE")]
    pub type_name: String,
    /// The entity's id (a node's key).
    pub id: String,
    /// The `Blob` property.
    pub property: String,
    #[command(flatten)]
    pub at: At,
    /// The graph's storage (a path, file:// or s3:// URI); also `--uri`.
    #[arg(long, alias = "uri", value_name = "URI", conflicts_with = "server")]
    pub store: Option<String>,
    #[command(flatten)]
    pub remote: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// The bytes, to stdout or `--out`; `--offset`/`--length` read one
    /// range (through a server: a `Range` request).
    Get {
        #[command(flatten)]
        cell: BlobCellArgs,
        #[arg(long)]
        offset: Option<u64>,
        #[arg(long)]
        length: Option<u64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Length, SHA-256 ETag and the commit read, without the bytes.
    Stat {
        #[command(flatten)]
        cell: BlobCellArgs,
        #[arg(long)]
        json: bool,
    },
}

/// What `stat` prints.
#[derive(Debug, serde::Serialize)]
struct BlobStat {
    length: u64,
    etag: String,
    snapshot_commit_id: String,
}

fn query(c: &BlobCellArgs) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("entity", c.entity.clone()),
        ("type", c.type_name.clone()),
        ("id", c.id.clone()),
        ("property", c.property.clone()),
    ];
    q.extend(c.at.branch.clone().map(|b| ("branch", b)));
    q.extend(c.at.commit.clone().map(|s| ("snapshot", s)));
    q
}

fn usage_range(offset: Option<u64>, length: Option<u64>) -> Option<String> {
    match (offset, length) {
        (None, None) => None,
        (o, Some(0)) => Some(format!("bytes={}-{}", o.unwrap_or(0), o.unwrap_or(0))),
        (o, Some(n)) => Some(format!(
            "bytes={}-{}",
            o.unwrap_or(0),
            o.unwrap_or(0) + n - 1
        )),
        (Some(o), None) => Some(format!("bytes={o}-")),
    }
}

pub fn blob(c: BlobCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let cell = match &c {
        BlobCommand::Get { cell, .. } | BlobCommand::Stat { cell, .. } => cell,
    };
    let remote = cell.remote.remote_unless(cell.store.is_some())?;
    // (bytes or None for a HEAD, length, etag, commit)
    let read = |head: bool,
                range: Option<String>|
     -> Result<(Vec<u8>, u64, String, String), CliError> {
        if let Some(r) = &remote {
            let method = if head {
                reqwest::Method::HEAD
            } else {
                reqwest::Method::GET
            };
            let headers: Vec<(&str, String)> = range.into_iter().map(|r| ("Range", r)).collect();
            let (_, h, body) =
                rt.block_on(r.graph_bytes(method, &["blob"], &query(cell), &headers))?;
            let text = |n: &str| {
                h.get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            let total = text("Content-Range")
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .or_else(|| text("Content-Length").parse().ok())
                .unwrap_or(body.len() as u64);
            return Ok((body, total, text("ETag"), text("Omnigraph-Snapshot-Id")));
        }
        let uri = cell.store.clone().ok_or_else(|| {
            CliError::Usage("which graph? pass --store URI (or --server URL --graph ID)".into())
        })?;
        super::super::remote::refuse_http_uri(&uri)?;
        let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
        let kind = if cell.entity == "edge" {
            EntityKind::Edge
        } else {
            EntityKind::Node
        };
        let b = rt
            .block_on(g.blob(
                &cell.at.read_at(),
                kind,
                &cell.type_name,
                &cell.id,
                &cell.property,
            ))
            .map_err(engine)?;
        let len = b.bytes.len() as u64;
        let etag = format!("\"{:x}\"", sha2::Sha256::digest(&b.bytes));
        Ok((b.bytes, len, etag, b.commit.to_string()))
    };
    match &c {
        BlobCommand::Stat { json, .. } => {
            let (_, length, etag, snapshot_commit_id) = read(true, None)?;
            let s = BlobStat {
                length,
                etag,
                snapshot_commit_id,
            };
            if *json {
                json_out(&s);
            } else {
                println!(
                    "{} bytes, etag {}, at commit {}",
                    s.length, s.etag, s.snapshot_commit_id
                );
            }
        }
        BlobCommand::Get {
            offset,
            length,
            out,
            ..
        } => {
            let (offset, length) = (*offset, *length);
            let range = usage_range(offset, length);
            let (mut bytes, len, _, _) = read(
                false,
                if remote.is_some() {
                    range.clone()
                } else {
                    None
                },
            )?;
            if remote.is_none() && range.is_some() {
                let start = offset.unwrap_or(0);
                if start >= len && len > 0 || (len == 0 && start > 0) {
                    return Err(CliError::Input(format!(
                        "--offset {start} is outside this Blob of {len} bytes"
                    )));
                }
                let end = length.map_or(len, |n| start.saturating_add(n).min(len));
                bytes = bytes[start as usize..end as usize].to_vec();
            }
            let io = |source| CliError::Read {
                path: out
                    .as_ref()
                    .map_or("the output".into(), |p| p.display().to_string()),
                source,
            };
            match &out {
                Some(p) => std::fs::write(p, &bytes).map_err(io)?,
                None => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&bytes).map_err(io)?;
                    o.flush().map_err(io)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
