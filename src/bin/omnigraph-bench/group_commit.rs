//! `omnigraph-bench group-commit [SECONDS]`: concurrent single-row writers
//! through the server (the GraphActor's group commit): one caller alone, 16
//! callers into one node type, 8 callers each into its own node type. Each
//! caller has its own token and sends one mutation at a time; each
//! scenario reports the server's CPU time per commit (docs/cli.md).

use std::sync::Arc;
use std::time::Instant;

use omnigraph::engine::Graph;

const TYPES: usize = 8;
const CALLERS: usize = 16;
/// Rows each node type holds before the writers start.
const SEED: usize = 10_000;
const POLICY: &str = "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, change]\n";

fn schema() -> String {
    (0..TYPES)
        .map(|t| format!("node W{t} {{\n  key: String @key\n  n: I64\n}}\n"))
        .collect()
}

/// One scenario's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub callers: usize,
    pub node_types: usize,
    pub commits: u64,
    pub failed: u64,
    pub commits_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server's CPU time (user + system, every thread, upkeep
    /// included) per commit, in milliseconds; 0 without procfs.
    pub server_cpu_ms_per_commit: f64,
    /// The server's CPU time over the scenario's wall time: cores busy.
    pub server_cores: f64,
    /// The same for this process (the callers and their HTTP client).
    pub client_cores: f64,
}

/// The three scenarios.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupCommit {
    pub one_caller: Figures,
    pub same_type: Figures,
    pub own_type: Figures,
    pub same_type_speedup: f64,
    pub own_type_speedup: f64,
}

/// `callers` callers for `secs` seconds; caller `i` inserts into node
/// type `W{i % types}`.
fn scenario(
    addr: &str,
    server: u32,
    secs: u64,
    callers: usize,
    types: usize,
    tag: &str,
) -> Figures {
    let tag = tag.to_string();
    let cpu = || {
        (
            super::isolation::cpu_ms(server).unwrap_or(0.0),
            super::isolation::cpu_ms(std::process::id()).unwrap_or(0.0),
        )
    };
    let (server0, client0) = cpu();
    let t = Instant::now();
    let (all, failed) = super::isolation::mutate_callers(
        addr,
        secs,
        callers,
        Arc::new(|i| format!("tok-c{i}")),
        Arc::new(move |i, n| {
            let ty = i % types;
            format!(
                "{{\"query\":\"query m($k: String, $n: I64) {{ insert W{ty} {{ key: $k, n: $n }} }}\",\"params\":{{\"k\":\"{tag}-{i}-{n}\",\"n\":{n}}}}}"
            )
        }),
    );
    let elapsed = t.elapsed().as_secs_f64();
    let (server1, client1) = cpu();
    let f = Figures {
        callers,
        node_types: types,
        commits: all.len() as u64,
        failed,
        commits_per_s: all.len() as f64 / elapsed,
        p50_ms: super::percentile(&all, 0.5),
        p99_ms: super::percentile(&all, 0.99),
        server_cpu_ms_per_commit: (server1 - server0) / (all.len().max(1) as f64),
        server_cores: (server1 - server0) / 1e3 / elapsed,
        client_cores: (client1 - client0) / 1e3 / elapsed,
    };
    println!(
        "{:>2} callers into {} node type(s): {:>6} commits in {elapsed:.1} s = {:>7.1} commits/s  p50 {:>7.2} ms  p99 {:>7.2} ms  failed {}  server CPU {:.2} ms/commit ({:.2} cores, callers {:.2})",
        f.callers,
        f.node_types,
        f.commits,
        f.commits_per_s,
        f.p50_ms,
        f.p99_ms,
        f.failed,
        f.server_cpu_ms_per_commit,
        f.server_cores,
        f.client_cores
    );
    f
}

pub async fn run(secs: u64) -> Result<GroupCommit, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let uri = dir.path().join("g").display().to_string();
    let g = Graph::init(&uri, "group.pg", &schema())
        .await
        .map_err(|e| e.to_string())?;
    let seed: String = (0..TYPES)
        .flat_map(|t| {
            (0..SEED).map(move |i| {
                format!("{{\"type\":\"W{t}\",\"data\":{{\"key\":\"seed-{i}\",\"n\":{i}}}}}\n")
            })
        })
        .collect();
    super::load_append(&g, seed.into_bytes()).await?;
    drop(g);
    let tokens: serde_json::Map<String, serde_json::Value> = (0..CALLERS)
        .map(|i| (format!("c{i}"), format!("tok-c{i}").into()))
        .collect();
    let (child, addr) = super::isolation::start_graph_server(&uri, POLICY, dir.path(), tokens)?;
    println!(
        "group commit: single-row inserts through the server, one caller per connection, {secs} s each ({SEED} rows per node type before)"
    );
    let pid = child.id();
    let one = scenario(&addr, pid, secs, 1, 1, "one");
    let same = scenario(&addr, pid, secs, CALLERS, 1, "same");
    let own = scenario(&addr, pid, secs, TYPES, TYPES, "own");
    super::isolation::stop_server(child);
    Ok(GroupCommit {
        same_type_speedup: same.commits_per_s / one.commits_per_s.max(f64::MIN_POSITIVE),
        own_type_speedup: own.commits_per_s / one.commits_per_s.max(f64::MIN_POSITIVE),
        one_caller: one,
        same_type: same,
        own_type: own,
    })
}
