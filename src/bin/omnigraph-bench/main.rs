//! `omnigraph-bench`: load benchmarks that print figures (never asserted).
//!
//! ```text
//! omnigraph-bench gen --nodes N --edges M --out DIR          # the side-by-side workload
//! omnigraph-bench suite --workload DIR --out ours.json       # our figures (scripts/bench)
//! omnigraph-bench load-seed DIR/seed.jsonl DIR/schema.pg   # a cookbook seed, N runs
//! omnigraph-bench load-generated [ROWS]                    # generated nodes+edges, default 1,000,000
//! omnigraph-bench query-generated [NODES] [EDGES] [DIR]    # read latencies, default 1M nodes, 5M edges
//! omnigraph-bench actor-isolation [SECONDS] [HEAVY_CONNS]   # server: one flooding caller vs four light ones
//! omnigraph-bench group-commit [SECONDS]                   # server: 1, 16 and 8×1 concurrent writers
//! omnigraph-bench hops [ROUNDS]                            # CPU cost of a thread hop, every CPU vs one
//! omnigraph-bench example-seed [NODES]                     # the example cluster's seed (scripts/example)
//! omnigraph-bench s3-writes --uri s3://B/P --out s3.json   # warm writes' requests on S3 (scripts/bench --s3)
//! omnigraph-bench cleanup --uri DIR                           # cleanup --keep 10 after 1,000 commits
//! ```
//! The load commands print rows, seconds, rows/s. `query-generated` builds
//! (or reuses, when DIR already holds it) a graph of `Item` nodes with an
//! out-degree of EDGES/NODES and prints p50/p99 latencies of key lookups,
//! 1-, 2- and 3-hop expansions and a full-text search. `actor-isolation`
//! starts `omnigraph-server` (from this binary's directory) on 127.0.0.1
//! port 0; one caller floods `load/ndjson` from HEAVY_CONNS connections
//! (default 24) while four callers each send single-row `mutate`s one at a
//! time; it prints the light callers' p50/p95/p99 (alone, then under the
//! flood), the heavy caller's rows/s and its 429 count.

// The benchmarks await the engine's deepest futures (a load's key check,
// an upkeep step) inside long async bodies; rustc's layout query of
// `vectors::run` needs more than the default 128 levels in the workspace
// test build.
#![recursion_limit = "256"]

use std::io::BufReader;
use std::time::Instant;

use omnigraph::engine::Graph;
use omnigraph::engine::load::LoadMode;

/// mimalloc instead of the system allocator: under concurrent writes the
/// server spent about a fifth of its CPU in glibc's malloc and free
/// (docs/performance.md, "Group commit: kept stagings, appends at the
/// head, mimalloc").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GEN_SCHEMA: &str =
    "node Item {\n  key: String @key\n  n: I64\n  label: String?\n}\nedge Next: Item -> Item\n";

/// Benchmarks that print figures (never asserted).
#[derive(clap::Parser)]
#[command(name = "omnigraph-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// A cookbook seed loaded (overwrite) into a fresh graph, 5 runs.
    LoadSeed { seed: String, schema: String },
    /// Generated nodes + edges loaded into a fresh graph, then exported.
    LoadGenerated {
        #[arg(default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Read latencies over a generated `Item` graph (reused when DIR holds one).
    QueryGenerated {
        #[arg(default_value_t = 1_000_000)]
        nodes: usize,
        #[arg(default_value_t = 5_000_000)]
        edges: usize,
        dir: Option<String>,
    },
    /// The server under one flooding caller and four light ones.
    ActorIsolation {
        #[arg(default_value_t = 20)]
        seconds: u64,
        #[arg(default_value_t = 24)]
        heavy_conns: usize,
    },
    /// Concurrent single-row writers through the server: one caller, 16
    /// callers into one node type, 8 callers each into its own.
    GroupCommit {
        #[arg(default_value_t = 10)]
        seconds: u64,
    },
    /// What a thread hop costs here: a blocking-pool round trip and a
    /// small file written with and without one, on every CPU and on one
    /// (see `hops::run`).
    Hops {
        #[arg(default_value_t = 100_000)]
        rounds: usize,
    },
    /// The example cluster's seed (load JSONL) on stdout.
    ExampleSeed {
        #[arg(default_value_t = 100_000)]
        nodes: usize,
    },
    /// Writes the side-by-side workload (see `suite::generate`) to OUT.
    Gen(suite::GenArgs),
    /// Our figures over a workload written by `gen`, as JSON (see `suite::run`).
    Suite(suite::SuiteArgs),
    /// Warm single-row writes on a graph at a URI (`s3://…`): latency and
    /// storage requests per write at two points of history (see
    /// `suite::s3_writes`).
    S3Writes(suite::S3WritesArgs),
    /// `cleanup --keep N` after a history of commits: files and bytes
    /// before and after, the kept commits' rows, a write during the
    /// cleanup, and warm-write requests before and after (see
    /// `suite::cleanup`).
    Cleanup(suite::CleanupArgs),
    /// Indexed `nearest` on generated vectors (100,000 × 128 by default):
    /// load, index build, exact and indexed p50/p99, recall@k; beside
    /// pylance on the same vectors with `--python` (see `vectors::run`).
    Vectors(vectors::VectorsArgs),
}

mod group_commit;
mod hops;
mod suite;
mod vectors;

fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    // `OMNIGRAPH_LOG` (a level or per-target directives) for profiling the
    // embedded figures; off by default.
    if let Some(filter) = omnigraph::logging::directives_from_env() {
        omnigraph::logging::init_with(filter);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.cmd {
        Cmd::LoadSeed { seed, schema } => rt.block_on(load_seed(&seed, &schema)),
        Cmd::LoadGenerated { rows } => rt.block_on(load_generated(rows)),
        Cmd::QueryGenerated { nodes, edges, dir } => {
            rt.block_on(query_generated(nodes, edges, dir))
        }
        Cmd::ExampleSeed { nodes } => example_seed(nodes),
        Cmd::ActorIsolation {
            seconds,
            heavy_conns,
        } => rt
            .block_on(isolation::run(seconds, heavy_conns))
            .map(|_| ()),
        Cmd::GroupCommit { seconds } => rt.block_on(group_commit::run(seconds)).map(|_| ()),
        Cmd::Hops { rounds } => hops::run(rounds),
        Cmd::Gen(a) => suite::generate(&a).map(|_| ()),
        Cmd::Suite(a) => rt.block_on(suite::run(&a)),
        Cmd::S3Writes(a) => rt.block_on(suite::s3_writes(&a)),
        Cmd::Cleanup(a) => rt.block_on(suite::cleanup(&a)),
        Cmd::Vectors(a) => rt.block_on(vectors::run(&a)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn row(name: &str, rows: usize, secs: f64) {
    println!(
        "| {name:<34} | {rows:>9} | {secs:>8.3} | {:>10.0} |",
        rows as f64 / secs.max(1e-9)
    );
}

fn header() {
    println!(
        "| {:<34} | {:>9} | {:>8} | {:>10} |",
        "run", "rows", "seconds", "rows/s"
    );
    println!("|{:-<36}|{:->11}|{:->10}|{:->12}|", "", "", "", "");
}

/// One overwrite load of `input` (load JSONL) on main; returns its seconds.
async fn timed_load(g: &Graph, input: impl std::io::Read) -> Result<f64, String> {
    let t = Instant::now();
    g.load(
        BufReader::new(input),
        LoadMode::Overwrite,
        "main",
        None,
        "bench",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_secs_f64())
}

async fn load_seed(seed: &str, schema: &str) -> Result<(), String> {
    let src = std::fs::read_to_string(schema).map_err(|e| e.to_string())?;
    let data = std::fs::read(seed).map_err(|e| e.to_string())?;
    let rows = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    header();
    for run in 1..=5 {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let g = Graph::init(tmp.path().join("g").to_str().unwrap_or("g"), schema, &src)
            .await
            .map_err(|e| e.to_string())?;
        let secs = timed_load(&g, &data[..]).await?;
        row(&format!("seed load (overwrite), run {run}"), rows, secs);
    }
    Ok(())
}

async fn load_generated(rows: usize) -> Result<(), String> {
    let nodes = rows / 2;
    let edges = rows - nodes;
    let mut data = Vec::with_capacity(rows * 64);
    for i in 0..nodes {
        data.extend_from_slice(format!("{{\"type\":\"Item\",\"data\":{{\"key\":\"k{i}\",\"n\":{i},\"label\":\"item {i}\"}}}}\n").as_bytes());
    }
    for i in 0..edges {
        let a = i % nodes.max(1);
        let b = (i * 7 + 1) % nodes.max(1);
        data.extend_from_slice(
            format!("{{\"edge\":\"Next\",\"from\":\"k{a}\",\"to\":\"k{b}\"}}\n").as_bytes(),
        );
    }
    header();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let g = Graph::init(
        tmp.path().join("g").to_str().unwrap_or("g"),
        "gen.pg",
        GEN_SCHEMA,
    )
    .await
    .map_err(|e| e.to_string())?;
    let secs = timed_load(&g, &data[..]).await?;
    row(
        &format!("generated {nodes} nodes + {edges} edges"),
        rows,
        secs,
    );
    let t = Instant::now();
    let mut sink = std::io::sink();
    let n = g
        .export(
            &omnigraph::engine::ReadAt::Branch("main".into()),
            None,
            &mut sink,
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?;
    row("export of the same graph", n, t.elapsed().as_secs_f64());
    Ok(())
}

const QUERY_SCHEMA: &str = "node Item {\n  key: String @key\n  n: I64\n  label: String? @index\n}\nedge Next: Item -> Item\n";

const QUERIES: &str = "
query key($k: String) { match { $a: Item { key: $k } } return { $a.key, $a.n } }
query hop1($k: String) { match { $a: Item { key: $k }  $a next $b } return { $b.key } }
query hop2($k: String) { match { $a: Item { key: $k }  $a next{2,2} $b } return { $b.key } }
query hop3($k: String) { match { $a: Item { key: $k }  $a next{3,3} $b } return { $b.key } }
query text($q: String) { match { $a: Item  search($a.label, $q) } return { $a.key } limit 20 }
";

/// A small deterministic generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

const WORDS: u64 = 20_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn query_generated(nodes: usize, edges: usize, dir: Option<String>) -> Result<(), String> {
    use omnigraph::engine::ReadAt;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.unwrap_or_else(|| tmp.path().join("g").to_string_lossy().into_owned());
    let g = match Graph::open(&path).await {
        Ok(g) => {
            println!("reusing the graph at {path}");
            g
        }
        Err(_) => {
            let g = Graph::init(&path, "bench.pg", QUERY_SCHEMA)
                .await
                .map_err(|e| e.to_string())?;
            let mut rng = Lcg(7);
            let mut data = Vec::with_capacity((nodes + edges) * 70);
            for i in 0..nodes {
                let label: Vec<String> =
                    (0..3).map(|_| format!("w{}", rng.next() % WORDS)).collect();
                data.extend_from_slice(
                    format!(
                        "{{\"type\":\"Item\",\"data\":{{\"key\":\"k{i}\",\"n\":{i},\"label\":\"{}\"}}}}\n",
                        label.join(" ")
                    )
                    .as_bytes(),
                );
            }
            let degree = edges / nodes.max(1);
            for i in 0..nodes {
                for j in 0..degree {
                    let b = (i * 7 + 1 + j * 104_729) % nodes;
                    data.extend_from_slice(
                        format!("{{\"edge\":\"Next\",\"from\":\"k{i}\",\"to\":\"k{b}\"}}\n")
                            .as_bytes(),
                    );
                }
            }
            let secs = timed_load(&g, &data[..]).await?;
            println!(
                "loaded {nodes} nodes + {} edges in {:.1} s (indexes included)",
                nodes * degree,
                secs
            );
            g
        }
    };
    let compiled = omnigraph::query::compile_queries(&g.catalog(), QUERIES);
    if compiled.has_errors() {
        return Err(format!("{:?}", compiled.diagnostics));
    }
    let at = ReadAt::Branch("main".into());
    let mut rng = Lcg(11);
    println!(
        "| {:<28} | {:>5} | {:>9} | {:>9} | {:>9} |",
        "query", "runs", "p50 ms", "p99 ms", "rows/run"
    );
    println!(
        "|{:-<30}|{:->7}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", ""
    );
    for (name, runs) in [
        ("key", 1000),
        ("hop1", 200),
        ("hop2", 200),
        ("hop3", 200),
        ("text", 200),
    ] {
        let q = compiled
            .query(name)
            .ok_or_else(|| format!("no query {name}"))?;
        let params = |rng: &mut Lcg| {
            if name == "text" {
                serde_json::json!({"q": format!("w{}", rng.next() % WORDS)})
            } else {
                serde_json::json!({"k": format!("k{}", rng.next() % nodes as u64)})
            }
        };
        // The first run opens the tables and, for traversals, builds the
        // CSR; it is reported on its own line.
        let t = Instant::now();
        let first = g
            .query(q, &params(&mut rng), &at)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "| {:<28} | {:>5} | {:>9.2} | {:>9} | {:>9} |",
            format!("{name} (first run)"),
            1,
            t.elapsed().as_secs_f64() * 1e3,
            "",
            first.rows.len()
        );
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0usize;
        for _ in 0..runs {
            let p = params(&mut rng);
            let t = Instant::now();
            let r = g.query(q, &p, &at).await.map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            rows += r.rows.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {:<28} | {:>5} | {:>9.2} | {:>9.2} | {:>9.1} |",
            name,
            runs,
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            rows as f64 / runs as f64
        );
    }
    Ok(())
}

/// The actor-isolation benchmark (after the reference's: one caller floods
/// ingestion, others do small writes; the small writers' tail latency is
/// the figure).
mod isolation {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use omnigraph::engine::Graph;
    use omnigraph::http::client::request;

    const SCHEMA: &str = "node Person {\n  name: String @key\n  age: I32?\n}\nnode Bulk {\n  name: String @key\n  age: I32?\n}\n";
    const POLICY: &str = "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, change]\n";
    const BATCH: u64 = 5_000;
    const LIGHT: usize = 4;

    fn token(name: &str) -> String {
        format!("tok-{name}")
    }

    /// `callers` threads for `secs` seconds, caller `i` sending
    /// `body(i, n)` (its n-th request) to `POST /graphs/g/mutate` with
    /// bearer `token(i)`, one request at a time. Returns the successful
    /// requests' latencies (ms, sorted) and the number refused.
    pub fn mutate_callers(
        addr: &str,
        secs: u64,
        callers: usize,
        token: Arc<dyn Fn(usize) -> String + Send + Sync>,
        body: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
    ) -> (Vec<f64>, u64) {
        let stop = Instant::now() + Duration::from_secs(secs);
        let failed = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..callers)
            .map(|i| {
                let (addr, token, body, failed) = (
                    addr.to_string(),
                    token.clone(),
                    body.clone(),
                    failed.clone(),
                );
                std::thread::spawn(move || {
                    let tok = token(i);
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while Instant::now() < stop {
                        let b = body(i, n);
                        let t = Instant::now();
                        let r = request(
                            &addr,
                            "POST",
                            "/graphs/g/mutate",
                            Some(&tok),
                            Some(b.as_bytes()),
                        );
                        if r.status == 200 {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("caller {i} got {}: {}", r.status, r.body);
                        }
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        let mut all: Vec<f64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        all.sort_by(|a, b| a.total_cmp(b));
        (all, failed.load(Ordering::Relaxed))
    }

    /// Light callers' latencies (ms) over `secs` seconds, each sending one
    /// single-row mutation at a time.
    fn light_round(addr: &str, secs: u64, tag: &str) -> Vec<f64> {
        let tag = tag.to_string();
        mutate_callers(
            addr,
            secs,
            LIGHT,
            Arc::new(|i| token(&format!("light{i}"))),
            Arc::new(move |i, n| {
                format!(
                    "{{\"query\":\"query m($n: String) {{ insert Person {{ name: $n }} }}\",\"params\":{{\"n\":\"{tag}-{i}-{n}\"}}}}"
                )
            }),
        )
        .0
    }

    fn print_light(label: &str, lat: &[f64]) {
        println!(
            "{label:<28} {:>7} writes  p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms",
            lat.len(),
            super::percentile(lat, 0.50),
            super::percentile(lat, 0.95),
            super::percentile(lat, 0.99)
        );
    }

    /// Starts `omnigraph-server` (beside this binary) with `args` plus
    /// `--bind 127.0.0.1:0` and the bearer tokens `tokens_json`; returns
    /// the child and the address it reported.
    pub fn start_server(
        args: &[String],
        tokens_json: &str,
    ) -> Result<(std::process::Child, String), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let server = exe.with_file_name("omnigraph-server");
        let mut child = Command::new(&server)
            .args(args)
            .args(["--bind", "127.0.0.1:0"])
            .env("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", tokens_json)
            // `OMNIGRAPH_BENCH_SERVER_LOG` (a tracing filter) to profile.
            .env(
                "OMNIGRAPH_LOG",
                std::env::var("OMNIGRAPH_BENCH_SERVER_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (build it: cargo build --bins)",
                    server.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut addr = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("OMNIGRAPH_LISTEN_ADDR=") {
                addr = a.to_string();
                break;
            }
        }
        if addr.is_empty() {
            let _ = child.kill();
            return Err("the server did not report its address".into());
        }
        Ok((child, addr))
    }

    /// Starts `omnigraph-server` serving graph `g` at `uri` under the
    /// policy `policy` (YAML, written to `dir/policy.yaml`) with the
    /// bearer tokens `tokens` (actor name → token), as [`start_server`].
    pub fn start_graph_server(
        uri: &str,
        policy: &str,
        dir: &std::path::Path,
        tokens: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(std::process::Child, String), String> {
        let file = dir.join("policy.yaml");
        std::fs::write(&file, policy).map_err(|e| format!("{}: {e}", file.display()))?;
        start_server(
            &[
                "--graph".into(),
                format!("g={uri}"),
                "--policy".into(),
                format!("g={}", file.display()),
            ],
            &serde_json::Value::Object(tokens).to_string(),
        )
    }

    /// Stops a server started by [`start_server`] (SIGTERM, then wait).
    /// CPU time (user + system) a process has used so far, in
    /// milliseconds, from `/proc/<pid>/stat` (fields 14 and 15, in clock
    /// ticks; proc(5)). `None` where there is no procfs.
    pub fn cpu_ms(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces: count after its `)`.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf reads a constant of the running system.
        let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (per_s > 0).then(|| ticks * 1e3 / per_s as f64)
    }

    pub fn stop_server(mut child: std::process::Child) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    /// The isolation figures (milliseconds; rows/s).
    #[derive(Debug, Clone, serde::Serialize)]
    pub struct Isolation {
        pub light_alone_p50_ms: f64,
        pub light_alone_p99_ms: f64,
        pub light_flood_p50_ms: f64,
        pub light_flood_p99_ms: f64,
        pub heavy_rows_per_s: f64,
        pub heavy_429: u64,
        /// The same while the flood appends to another node type.
        pub light_flood_other_p50_ms: f64,
        pub light_flood_other_p99_ms: f64,
        pub heavy_other_rows_per_s: f64,
    }

    pub async fn run(secs: u64, heavy_conns: usize) -> Result<Isolation, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let uri = dir.path().join("g").display().to_string();
        Graph::init(&uri, "bench.pg", SCHEMA)
            .await
            .map_err(|e| e.to_string())?;
        let mut tokens = serde_json::Map::new();
        tokens.insert("heavy".into(), token("heavy").into());
        for i in 0..LIGHT {
            tokens.insert(format!("light{i}"), token(&format!("light{i}")).into());
        }
        let (child, addr) = start_graph_server(&uri, POLICY, dir.path(), tokens)?;
        println!(
            "actor isolation: {LIGHT} light callers (single-row mutate), 1 heavy caller ({heavy_conns} connections, load/ndjson of {BATCH} rows), {secs} s per phase"
        );
        let alone = light_round(&addr, secs.div_ceil(2), "alone");
        print_light("light, alone", &alone);

        // The flood appends to another node type, then to the one the
        // light callers insert into.
        let other = flood(&addr, secs, heavy_conns, "Bulk", "other");
        print_light("light, flood into Bulk", &other.light);
        println!(
            "heavy into Bulk              {:>7} rows in {:.1} s = {:.0} rows/s; 429 refusals: {}; other errors: {}",
            other.rows,
            other.secs,
            other.rows as f64 / other.secs,
            other.refused,
            other.errors
        );
        let same = flood(&addr, secs, heavy_conns, "Person", "flood");
        print_light("light, flood into Person", &same.light);
        println!(
            "heavy into Person            {:>7} rows in {:.1} s = {:.0} rows/s; 429 refusals: {}; other errors: {}",
            same.rows,
            same.secs,
            same.rows as f64 / same.secs,
            same.refused,
            same.errors
        );
        stop_server(child);
        let p = super::percentile;
        Ok(Isolation {
            light_alone_p50_ms: p(&alone, 0.5),
            light_alone_p99_ms: p(&alone, 0.99),
            light_flood_p50_ms: p(&same.light, 0.5),
            light_flood_p99_ms: p(&same.light, 0.99),
            heavy_rows_per_s: same.rows as f64 / same.secs,
            heavy_429: same.refused,
            light_flood_other_p50_ms: p(&other.light, 0.5),
            light_flood_other_p99_ms: p(&other.light, 0.99),
            heavy_other_rows_per_s: other.rows as f64 / other.secs,
        })
    }

    /// One flood phase's figures.
    struct Flood {
        light: Vec<f64>,
        rows: u64,
        secs: f64,
        refused: u64,
        errors: u64,
    }

    /// The light callers for `secs` seconds while one heavy caller sends
    /// `load/ndjson` bodies of [`BATCH`] rows of node type `ty` from
    /// `conns` connections.
    fn flood(addr: &str, secs: u64, conns: usize, ty: &str, tag: &str) -> Flood {
        let flooding = Arc::new(AtomicBool::new(true));
        let rows = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let heavy: Vec<_> = (0..conns)
            .map(|_| {
                let (addr, flooding, rows, rejected, errors, next) = (
                    addr.to_string(),
                    flooding.clone(),
                    rows.clone(),
                    rejected.clone(),
                    errors.clone(),
                    next.clone(),
                );
                let ty = ty.to_string();
                let tag = tag.to_string();
                std::thread::spawn(move || {
                    let tok = token("heavy");
                    while flooding.load(Ordering::Relaxed) {
                        let start = next.fetch_add(BATCH, Ordering::Relaxed);
                        let body: String = (start..start + BATCH)
                            .map(|i| {
                                format!(
                                    "{{\"type\":\"{ty}\",\"data\":{{\"name\":\"{tag}-h{i}\",\"age\":{}}}}}\n",
                                    i % 90
                                )
                            })
                            .collect();
                        let r = request(
                            &addr,
                            "POST",
                            "/graphs/g/load/ndjson?mode=append",
                            Some(&tok),
                            Some(body.as_bytes()),
                        );
                        match r.status {
                            200 => {
                                rows.fetch_add(BATCH, Ordering::Relaxed);
                            }
                            429 => {
                                rejected.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        let t = Instant::now();
        let light = light_round(addr, secs, tag);
        flooding.store(false, Ordering::Relaxed);
        for h in heavy {
            let _ = h.join();
        }
        Flood {
            light,
            rows: rows.load(Ordering::Relaxed),
            secs: t.elapsed().as_secs_f64(),
            refused: rejected.load(Ordering::Relaxed),
            errors: errors.load(Ordering::Relaxed),
        }
    }
}

/// Appends load JSONL to `main` of an embedded graph as the bench's actor:
/// how the benchmarks seed their graphs. Errors: the load's, as text.
async fn load_append(g: &omnigraph::engine::Graph, jsonl: Vec<u8>) -> Result<(), String> {
    g.load(
        std::io::Cursor::new(jsonl),
        omnigraph::engine::load::LoadMode::Append,
        "main",
        None,
        "bench",
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// `example-seed [NODES]`: writes a deterministic seed for the example
/// cluster (`examples/research`) to stdout as load JSONL: 50 topics, a
/// fifth of the nodes authors, the rest papers; each paper has 1–4
/// authors, cites up to 5 earlier papers and is about 1–2 topics.
fn example_seed(nodes: usize) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    const WORDS: [&str; 24] = [
        "sparse",
        "graph",
        "attention",
        "retrieval",
        "versioned",
        "columnar",
        "learned",
        "index",
        "transactional",
        "streaming",
        "vector",
        "temporal",
        "causal",
        "robust",
        "federated",
        "incremental",
        "probabilistic",
        "embedding",
        "storage",
        "query",
        "scalable",
        "neural",
        "distributed",
        "approximate",
    ];
    const FIRST: [&str; 12] = [
        "Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Leslie", "Jim",
        "Margaret", "Ken", "Radia",
    ];
    const LAST: [&str; 12] = [
        "Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Knuth", "Lamport", "Gray",
        "Hamilton", "Thompson", "Perlman",
    ];
    const AFFIL: [&str; 6] = ["ETH", "MIT", "Inria", "CMU", "Tsinghua", "Berkeley"];
    const VENUES: [&str; 4] = ["conference", "journal", "workshop", "preprint"];
    let topics = 50.min(nodes);
    let authors = (nodes / 5).max(1).min(nodes - topics);
    let papers = nodes.saturating_sub(topics + authors);
    let w = |e: std::io::Error| e.to_string();
    for t in 0..topics {
        writeln!(
            out,
            r#"{{"type":"Topic","data":{{"name":"{}-{t}"}}}}"#,
            WORDS[t % WORDS.len()]
        )
        .map_err(w)?;
    }
    for a in 0..authors {
        let name = format!("{} {}", FIRST[next(FIRST.len())], LAST[next(LAST.len())]);
        let aff = AFFIL[next(AFFIL.len())];
        writeln!(out, r#"{{"type":"Author","data":{{"handle":"a{a:06}","name":"{name}","affiliation":"{aff}"}}}}"#).map_err(w)?;
    }
    for p in 0..papers {
        let title: Vec<&str> = (0..4).map(|_| WORDS[next(WORDS.len())]).collect();
        let abs: Vec<&str> = (0..12).map(|_| WORDS[next(WORDS.len())]).collect();
        writeln!(
            out,
            r#"{{"type":"Paper","data":{{"slug":"p{p:07}","title":"{}","abstract":"{}","year":{},"venue":"{}"}}}}"#,
            title.join(" "),
            abs.join(" "),
            1990 + next(37),
            VENUES[next(VENUES.len())]
        )
        .map_err(w)?;
    }
    for p in 0..papers {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1 + next(4) {
            let a = next(authors);
            if seen.insert(a) {
                writeln!(out, r#"{{"edge":"Wrote","from":"a{a:06}","to":"p{p:07}"}}"#)
                    .map_err(w)?;
            }
        }
        let mut cited = std::collections::BTreeSet::new();
        for _ in 0..next(6) {
            if p > 0 {
                let q = next(p);
                if cited.insert(q) {
                    writeln!(out, r#"{{"edge":"Cites","from":"p{p:07}","to":"p{q:07}"}}"#)
                        .map_err(w)?;
                }
            }
        }
        let t1 = next(topics);
        writeln!(
            out,
            r#"{{"edge":"About","from":"p{p:07}","to":"{}-{t1}"}}"#,
            WORDS[t1 % WORDS.len()]
        )
        .map_err(w)?;
        let t2 = next(topics);
        if t2 != t1 && next(2) == 0 {
            writeln!(
                out,
                r#"{{"edge":"About","from":"p{p:07}","to":"{}-{t2}"}}"#,
                WORDS[t2 % WORDS.len()]
            )
            .map_err(w)?;
        }
    }
    out.flush().map_err(w)
}
