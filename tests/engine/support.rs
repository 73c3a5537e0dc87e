//! Helpers for the engine tests.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use omnigraph::engine::{Graph, ReadAt};

/// The cookbooks directory (`$OMNIGRAPH_COOKBOOKS` or `../shared/cookbooks`).
pub fn cookbooks_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OMNIGRAPH_COOKBOOKS") {
        return PathBuf::from(d);
    }
    // Read at run time: `cargo test` sets it to this checkout, while a
    // compile-time value would name wherever the cached binary was built.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    root.join("../shared/cookbooks")
}

/// Cookbooks with a schema and a seed, sorted; never empty.
pub fn cookbooks() -> Vec<PathBuf> {
    let dir = cookbooks_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("schema.pg").is_file() && p.join("seed.jsonl").is_file())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cookbook with schema.pg and seed.jsonl");
    out
}

/// Row counts per table key in a JSONL file, from its top-level
/// `type`/`edge` fields (computed here, independently of the engine).
pub fn seed_counts(path: &Path) -> HashMap<String, usize> {
    let f = std::fs::File::open(path).expect("open seed");
    let mut out = HashMap::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.expect("read");
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("seed line is JSON");
        let key = match (
            v.get("type").and_then(|t| t.as_str()),
            v.get("edge").and_then(|t| t.as_str()),
        ) {
            (Some(t), _) => format!("node:{t}"),
            (None, Some(e)) => format!("edge:{e}"),
            _ => panic!("seed line has neither type nor edge: {line}"),
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A fresh graph from a cookbook schema, in a new temporary directory.
pub async fn fresh(book: &Path, tmp: &Path) -> Graph {
    let schema = book.join("schema.pg");
    let src = std::fs::read_to_string(&schema).expect("schema");
    Graph::init(
        tmp.join("graph").to_str().expect("utf8"),
        &schema.display().to_string(),
        &src,
    )
    .await
    .expect("init")
}

/// A small schema for focused tests.
pub const SMALL: &str = r#"
node Person {
    slug: String @key
    name: String
    age: I32?
    score: F64? @default(1.5)
    status: enum(active, archived)?
    email: String? @unique
    code: String?
    tags: [String]?
    born: Date?
    seen: DateTime?
    vec: Vector(2)?
    @range(age, 0..150)
    @check(code, "^[A-Z]{3}$")
}
node Org { name: String @key }
edge Knows: Person -> Person { since: Date? }
edge WorksAt: Person -> Org @card(0..1)
"#;

pub async fn small(tmp: &Path) -> Graph {
    Graph::init(tmp.join("g").to_str().expect("utf8"), "small.pg", SMALL)
        .await
        .expect("init small")
}

/// Loads a JSONL string.
pub async fn load_str(
    g: &Graph,
    data: &str,
    mode: omnigraph::engine::load::LoadMode,
    branch: &str,
) -> Result<omnigraph::engine::WriteReport, omnigraph::engine::EngineError> {
    g.load(
        std::io::Cursor::new(data.as_bytes().to_vec()),
        mode,
        branch,
        None,
        "tester",
    )
    .await
}

/// Rows per table at a read point.
pub async fn counts(g: &Graph, at: &ReadAt) -> HashMap<String, usize> {
    g.snapshot(at)
        .await
        .expect("snapshot")
        .tables
        .into_iter()
        .map(|t| (t.table.to_string(), t.rows))
        .collect()
}

/// The head commit of a branch.
pub async fn head(g: &Graph, branch: &str) -> omnigraph::engine::CommitId {
    g.branches()
        .await
        .expect("branches")
        .into_iter()
        .find(|b| b.name == branch)
        .map(|b| b.head)
        .expect("branch exists")
}

/// Exported lines, sorted (order-normalised).
pub async fn export_sorted(g: &Graph, at: &ReadAt) -> Vec<String> {
    let mut buf = Vec::new();
    g.export(at, None, &mut buf, |_| {}).await.expect("export");
    let mut lines: Vec<String> = String::from_utf8(buf)
        .expect("utf8")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Runs the CLI.
pub fn omnigraph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run omnigraph")
}

/// A graph of the [`SMALL`] schema created through the CLI under `dir`;
/// returns its URI.
pub fn cli_small_graph(dir: &Path) -> String {
    let schema = dir.join("s.pg");
    std::fs::write(&schema, SMALL).expect("write schema");
    let uri = dir.join("g").to_str().expect("utf8").to_string();
    let out = omnigraph(&["init", "--schema", schema.to_str().expect("utf8"), &uri]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    uri
}

/// A two-worker runtime for tests that drive the engine with `block_on`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}

/// Prepares mutation `name` of `queries` on main as `actor`; panics when
/// it fails or has nothing to write.
pub async fn prepare(
    g: &Graph,
    queries: &str,
    name: &str,
    params: serde_json::Value,
    actor: &str,
) -> omnigraph::engine::PreparedWrite {
    let compiled = omnigraph::query::compile_queries(&g.catalog(), queries);
    let q = compiled.query(name).expect("query");
    match g
        .prepare_mutation(q, &params, "main", actor)
        .await
        .expect("prepare")
    {
        omnigraph::engine::Prepared::Write(w) => w,
        omnigraph::engine::Prepared::Nothing(r) => panic!("nothing to write: {}", r.message),
    }
}

/// A branch name the test knows is valid.
pub fn branch_name(name: &str) -> omnigraph::engine::BranchName {
    omnigraph::engine::BranchName::parse(name).expect("a valid branch name")
}
