//! The side-by-side benchmark's workload (`gen`) and our half of it
//! (`suite`); `scripts/bench` runs both, then the peers on the same files.
//!
//! The workload is a property graph of three node types and three edge
//! types: `Person` (80% of the nodes; `key @key`, `name`, `age`, `bio`
//! with a full-text `@index`), `Company` (15%; `name @index`) and `Tag`
//! (5%); every person `WorksAt` one company and is `Tagged` with one tag,
//! and the remaining edges are `Knows` between people (random targets from
//! a fixed seed, so every run and every engine sees the same graph). It is
//! written once as our load JSONL and once as one CSV per table for the
//! peers, with the lookup keys and search words every engine uses.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use omnigraph::engine::{Graph, ReadAt};
use omnigraph::http::client::request;
use omnigraph::storage::metered;
use serde_json::{Value, json};

use super::{Lcg, percentile};

/// The workload's schema (written to `schema.pg`).
pub const SCHEMA: &str = "node Person {
  key: String @key
  name: String
  age: I64
  bio: String @index
}
node Company {
  key: String @key
  name: String @index
}
node Tag {
  key: String @key
  label: String
}
edge Knows: Person -> Person
edge WorksAt: Person -> Company
edge Tagged: Person -> Tag
";

/// Our queries; the peers' script runs the equivalent Cypher. `hopN`
/// returns the people first reached at exactly N `Knows` hops (breadth
/// first, each once), which is Cypher's `SHORTEST 1..N` with
/// `length(p) = N`.
pub const QUERIES: &str = "
query key($k: String) { match { $a: Person { key: $k } } return { $a.key, $a.name, $a.age } }
query hop1($k: String) { match { $a: Person { key: $k }  $a knows $b } return { $b.key } }
query hop2($k: String) { match { $a: Person { key: $k }  $a knows{2,2} $b } return { $b.key } }
query hop3($k: String) { match { $a: Person { key: $k }  $a knows{3,3} $b } return { $b.key } }
query text($q: String) { match { $a: Person  search($a.bio, $q) } return { $a.key } limit 20 }
query add($k: String, $n: I64) { insert Person { key: $k, name: $k, age: $n, bio: \"fresh row\" } }
";

const VOCABULARY: u64 = 20_000;

/// `gen` arguments.
#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Nodes in all (80% Person, 15% Company, 5% Tag).
    #[arg(long, default_value_t = 100_000)]
    pub nodes: usize,
    /// Edges in all: one WorksAt and one Tagged per person, the rest Knows.
    #[arg(long, default_value_t = 500_000)]
    pub edges: usize,
    /// The directory to write (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// What `gen` wrote (`workload.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    pub persons: usize,
    pub companies: usize,
    pub tags: usize,
    pub knows: usize,
    pub works_at: usize,
    pub tagged: usize,
}

impl Workload {
    pub fn nodes(&self) -> usize {
        self.persons + self.companies + self.tags
    }
    pub fn edges(&self) -> usize {
        self.knows + self.works_at + self.tagged
    }
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

fn create(path: &Path) -> Result<BufWriter<std::fs::File>, String> {
    Ok(BufWriter::new(
        std::fs::File::create(path).map_err(|e| io(path, e))?,
    ))
}

/// Writes `schema.pg`, `queries.gq`, `graph.jsonl` (our load format),
/// `person.csv`, `company.csv`, `tag.csv`, `knows.csv`, `works_at.csv`,
/// `tagged.csv` (header row; edges as `from,to` keys), `keys.txt` (1,000
/// person keys to look up), `words.txt` (200 search words) and
/// `workload.json` (the counts) under `out`.
pub fn generate(a: &GenArgs) -> Result<Workload, String> {
    if a.nodes < 20 {
        return Err(format!(
            "--nodes {} is too small: the workload needs at least 20 nodes",
            a.nodes
        ));
    }
    let persons = a.nodes * 80 / 100;
    let companies = a.nodes * 15 / 100;
    let tags = a.nodes - persons - companies;
    let knows = a.edges.saturating_sub(2 * persons);
    let w = Workload {
        persons,
        companies,
        tags,
        knows,
        works_at: persons,
        tagged: persons,
    };
    let out = &a.out;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    std::fs::write(out.join("schema.pg"), SCHEMA).map_err(|e| io(out, e))?;
    std::fs::write(out.join("queries.gq"), QUERIES).map_err(|e| io(out, e))?;
    let mut rng = Lcg(42);
    let mut jsonl = create(&out.join("graph.jsonl"))?;
    let csv = |name: &str, header: &str| -> Result<BufWriter<std::fs::File>, String> {
        let mut f = create(&out.join(name))?;
        writeln!(f, "{header}").map_err(|e| e.to_string())?;
        Ok(f)
    };
    let (mut pc, mut cc, mut tc) = (
        csv("person.csv", "key,name,age,bio")?,
        csv("company.csv", "key,name")?,
        csv("tag.csv", "key,label")?,
    );
    let (mut kc, mut wc, mut gc) = (
        csv("knows.csv", "from,to")?,
        csv("works_at.csv", "from,to")?,
        csv("tagged.csv", "from,to")?,
    );
    let e = |x: std::io::Error| x.to_string();
    for i in 0..persons {
        let bio: Vec<String> = (0..8)
            .map(|_| format!("w{}", rng.next() % VOCABULARY))
            .collect();
        let bio = bio.join(" ");
        let age = 18 + rng.next() % 70;
        writeln!(
            jsonl,
            r#"{{"type":"Person","data":{{"key":"p{i}","name":"Person {i}","age":{age},"bio":"{bio}"}}}}"#
        )
        .map_err(e)?;
        writeln!(pc, "p{i},Person {i},{age},{bio}").map_err(e)?;
    }
    for i in 0..companies {
        let name = format!("w{} w{}", rng.next() % VOCABULARY, rng.next() % VOCABULARY);
        writeln!(
            jsonl,
            r#"{{"type":"Company","data":{{"key":"c{i}","name":"{name}"}}}}"#
        )
        .map_err(e)?;
        writeln!(cc, "c{i},{name}").map_err(e)?;
    }
    for i in 0..tags {
        writeln!(
            jsonl,
            r#"{{"type":"Tag","data":{{"key":"t{i}","label":"tag {i}"}}}}"#
        )
        .map_err(e)?;
        writeln!(tc, "t{i},tag {i}").map_err(e)?;
    }
    for i in 0..persons {
        let c = rng.next() % companies as u64;
        let t = rng.next() % tags as u64;
        writeln!(jsonl, r#"{{"edge":"WorksAt","from":"p{i}","to":"c{c}"}}"#).map_err(e)?;
        writeln!(wc, "p{i},c{c}").map_err(e)?;
        writeln!(jsonl, r#"{{"edge":"Tagged","from":"p{i}","to":"t{t}"}}"#).map_err(e)?;
        writeln!(gc, "p{i},t{t}").map_err(e)?;
    }
    // Knows: spread evenly over the people (the first `knows % persons`
    // get one more), random distinct-from-self targets.
    for j in 0..knows {
        let i = j % persons;
        let mut t = rng.next() % persons as u64;
        if t == i as u64 {
            t = (t + 1) % persons as u64;
        }
        writeln!(jsonl, r#"{{"edge":"Knows","from":"p{i}","to":"p{t}"}}"#).map_err(e)?;
        writeln!(kc, "p{i},p{t}").map_err(e)?;
    }
    for f in [
        &mut jsonl, &mut pc, &mut cc, &mut tc, &mut kc, &mut wc, &mut gc,
    ] {
        f.flush().map_err(e)?;
    }
    let mut keys = create(&out.join("keys.txt"))?;
    for _ in 0..1000 {
        writeln!(keys, "p{}", rng.next() % persons as u64).map_err(e)?;
    }
    keys.flush().map_err(e)?;
    let mut words = create(&out.join("words.txt"))?;
    for _ in 0..200 {
        writeln!(words, "w{}", rng.next() % VOCABULARY).map_err(e)?;
    }
    words.flush().map_err(e)?;
    let wj = serde_json::to_string_pretty(&w).map_err(|x| x.to_string())?;
    std::fs::write(out.join("workload.json"), wj).map_err(|x| io(out, x))?;
    eprintln!(
        "workload: {} nodes ({persons} Person, {companies} Company, {tags} Tag), {} edges ({knows} Knows, {persons} WorksAt, {persons} Tagged) in {}",
        w.nodes(),
        w.edges(),
        out.display()
    );
    Ok(w)
}

/// `suite` arguments.
#[derive(clap::Args, Debug)]
pub struct SuiteArgs {
    /// A directory written by `gen`.
    #[arg(long)]
    pub workload: PathBuf,
    /// Where to write our figures (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Where the graph goes (default: a temporary directory).
    #[arg(long)]
    pub graph: Option<PathBuf>,
    /// Commits of history at the first storage-operation count.
    #[arg(long, default_value_t = 100)]
    pub history_small: usize,
    /// Commits of history at the second count.
    #[arg(long, default_value_t = 10_000)]
    pub history_large: usize,
    /// Writes measured at each history point.
    #[arg(long, default_value_t = 50)]
    pub writes: usize,
    /// Writes measured alone after those at each history point (each once
    /// the upkeep has drained): the write path's own storage requests,
    /// without the upkeep that overlaps a write now and then.
    #[arg(long, default_value_t = 20)]
    pub isolated: usize,
    /// Concurrent HTTP read clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of HTTP read load.
    #[arg(long, default_value_t = 10)]
    pub http_secs: u64,
    /// Seconds per phase of the actor-isolation run (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub isolation_secs: u64,
}

fn lines(path: &Path) -> Result<Vec<String>, String> {
    let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    Ok(BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn summary(mut lat: Vec<f64>) -> Value {
    lat.sort_by(f64::total_cmp);
    json!({
        "runs": lat.len(),
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
    })
}

/// Runs our half of the benchmark and writes `args.out`:
/// `{"load": {rows, seconds, rows_per_s}, "scan": {...}, "reads": {key,
/// hop1, hop2, hop3, text: {runs, p50_ms, p99_ms, mean_rows}}, "writes":
/// {embedded: {at_<N>: {p50_ms, p99_ms, ops_per_write}}, http: {...}},
/// "http_reads": {clients, seconds, requests_per_s}, "isolation": {...}}`.
/// Storage operations are counted by [`metered`] (turned on here).
pub async fn run(a: &SuiteArgs) -> Result<(), String> {
    metered::enable();
    let wl: Workload = serde_json::from_str(
        &std::fs::read_to_string(a.workload.join("workload.json"))
            .map_err(|e| io(&a.workload, e))?,
    )
    .map_err(|e| format!("workload.json: {e}"))?;
    let keys = lines(&a.workload.join("keys.txt"))?;
    let words = lines(&a.workload.join("words.txt"))?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = a
        .graph
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench.omni"));
    let uri = root.to_string_lossy().into_owned();
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| io(&root, e))?;
    }
    let mut out = serde_json::Map::new();
    out.insert(
        "workload".into(),
        serde_json::to_value(&wl).map_err(|e| e.to_string())?,
    );

    // Bulk load.
    let g = Graph::init(&uri, "schema.pg", SCHEMA)
        .await
        .map_err(|e| e.to_string())?;
    let data = a.workload.join("graph.jsonl");
    let f = std::fs::File::open(&data).map_err(|e| io(&data, e))?;
    let secs = super::timed_load(&g, f).await?;
    let rows = wl.nodes() + wl.edges();
    eprintln!("load: {rows} rows in {secs:.1} s");
    out.insert(
        "load".into(),
        json!({"rows": rows, "seconds": secs, "rows_per_s": rows as f64 / secs}),
    );

    // Full scan: every row out as JSONL (to a sink).
    let t = Instant::now();
    let n = g
        .export(
            &ReadAt::Branch("main".into()),
            None,
            &mut std::io::sink(),
            |_| {},
        )
        .await
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    out.insert(
        "scan".into(),
        json!({"rows": n, "seconds": secs, "rows_per_s": n as f64 / secs}),
    );

    // Reads, embedded.
    let compiled = omnigraph::query::compile_queries(&g.catalog(), QUERIES);
    if compiled.has_errors() {
        return Err(format!("{:?}", compiled.diagnostics));
    }
    let at = ReadAt::Branch("main".into());
    let mut reads = serde_json::Map::new();
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
        let param = |i: usize| {
            if name == "text" {
                json!({"q": words[i % words.len()]})
            } else {
                json!({"k": keys[i % keys.len()]})
            }
        };
        // Warm: the first run opens tables and builds the traversal index.
        let t = Instant::now();
        g.query(q, &param(0), &at)
            .await
            .map_err(|e| e.to_string())?;
        let first_ms = ms(t);
        let mut lat = Vec::with_capacity(runs);
        let mut rows = 0usize;
        for i in 0..runs {
            let p = param(i);
            let t = Instant::now();
            let r = g.query(q, &p, &at).await.map_err(|e| e.to_string())?;
            lat.push(ms(t));
            rows += r.rows.len();
        }
        let mut s = summary(lat);
        s["mean_rows"] = json!(rows as f64 / runs as f64);
        s["first_ms"] = json!(first_ms);
        eprintln!("{name}: {s}");
        reads.insert(name.into(), s);
    }
    out.insert("reads".into(), Value::Object(reads));

    // Warm single-row writes, embedded, and their storage operations at two
    // points of history, through a long-lived handle whose upkeep runs in
    // its own task (`Graph::with_upkeep_task`), as a library user's would;
    // the upkeep's storage requests that fall inside a write's window are
    // counted with it.
    let add = compiled.query("add").ok_or("no query add")?;
    let gw = if std::env::var("OMNIGRAPH_BENCH_UPKEEP").as_deref() == Ok("inline") {
        g.clone()
    } else {
        g.clone().with_upkeep_task()
    };
    let mut seq = 0u64;
    // Boxed: the future is large enough to overflow the layout query.
    let embedded = Box::pin(warm_writes(
        &g,
        &gw,
        add,
        &mut seq,
        [a.history_small, a.history_large],
        a.writes,
        a.isolated,
    ))
    .await?;
    out.insert("writes_embedded".into(), Value::Object(embedded));
    // Let the upkeep task finish before the server opens the same root.
    let drain = Instant::now();
    while gw.upkeep_pending() > 0 && drain.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gw);
    drop(g);

    // Through the server: single-row writes, then concurrent reads.
    let tokens = json!({"bench": "tok-bench"}).to_string();
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, change]\n",
    )
    .map_err(|e| io(&policy, e))?;
    let (child, addr) = super::isolation::start_server(
        &[
            "--graph".into(),
            format!("g={uri}"),
            "--policy".into(),
            format!("g={}", policy.display()),
        ],
        &tokens,
    )?;
    let result = http_figures(a, &addr, &keys, &mut seq);
    super::isolation::stop_server(child);
    let (http_writes, http_reads) = result?;
    out.insert("writes_http".into(), http_writes);
    out.insert("http_reads".into(), http_reads);

    if a.isolation_secs > 0 {
        let iso = super::isolation::run(a.isolation_secs, 24).await?;
        out.insert(
            "isolation".into(),
            serde_json::to_value(iso).map_err(|e| e.to_string())?,
        );
        let group = super::group_commit::run(a.isolation_secs).await?;
        out.insert(
            "group_commit".into(),
            serde_json::to_value(group).map_err(|e| e.to_string())?,
        );
    }
    out.insert(
        "profile".into(),
        json!(if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }),
    );
    let text = serde_json::to_string_pretty(&Value::Object(out)).map_err(|e| e.to_string())?;
    std::fs::write(&a.out, text).map_err(|e| io(&a.out, e))?;
    Ok(())
}

/// Warm single-row inserts through `gw` (a long-lived handle on `g`) at
/// each point of `history` (commits on main; the gaps are filled with the
/// same inserts first): per point `{runs, p50_ms, p99_ms, history_commits,
/// upkeep_drain_ms, requests_per_write, requests_each, requests_min,
/// requests_max, ops_per_write: {get, head, put, list, listed_entries,
/// delete, copy}}`, keyed `at_<N>`. Storage requests are counted by
/// [`metered`] (enable it first); the upkeep's requests that fall inside a
/// write's window are counted with it. With `isolated > 0`, that many
/// more writes each start after the upkeep has drained, and their own
/// requests alone are `write_only_requests_each` (with min, max and
/// median), the upkeep's requests between them
/// `upkeep_requests_per_write`.
async fn warm_writes(
    g: &Graph,
    gw: &Graph,
    add: &omnigraph::query::CheckedQuery,
    seq: &mut u64,
    history: [usize; 2],
    writes: usize,
    isolated: usize,
) -> Result<serde_json::Map<String, Value>, String> {
    let write = async |seq: &mut u64| -> Result<f64, String> {
        *seq += 1;
        let p = json!({"k": format!("new{seq}"), "n": *seq as i64});
        let t = Instant::now();
        gw.mutate(add, &p, "main", "bench")
            .await
            .map_err(|e| e.to_string())?;
        Ok(ms(t))
    };
    let mut embedded = serde_json::Map::new();
    let mut commits = g.commits("main").await.map_err(|e| e.to_string())?.len();
    for target in history {
        let started = Instant::now();
        let mut last = Instant::now();
        while commits < target {
            write(seq).await?;
            commits += 1;
            if last.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "history: {commits}/{target} commits ({:.0} s)",
                    started.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
        }
        // Warm writes at this much history: the upkeep the history build
        // left queued (compaction, index folds) finishes first, and how
        // long that took is reported beside the figures.
        let drain = Instant::now();
        while gw.upkeep_pending() > 0 && drain.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let drain_ms = ms(drain);
        let mut lat = Vec::with_capacity(writes);
        let mut per_write = Vec::with_capacity(writes);
        let before = metered::snapshot();
        for _ in 0..writes {
            let b = metered::snapshot();
            lat.push(write(seq).await?);
            per_write.push(metered::snapshot().since(&b));
        }
        let total = metered::snapshot().since(&before);
        let mut alone = Vec::with_capacity(isolated);
        let mut upkeep = 0u64;
        for _ in 0..isolated {
            let b = metered::snapshot();
            let d = Instant::now();
            while gw.upkeep_pending() > 0 && d.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let w = metered::snapshot();
            upkeep += w.since(&b).requests();
            write(seq).await?;
            alone.push(metered::snapshot().since(&w).requests());
        }
        commits += writes + isolated;
        let n = writes.max(1) as f64;
        let reqs: Vec<u64> = per_write.iter().map(|o| o.requests()).collect();
        let mut s = summary(lat);
        s["history_commits"] = json!(commits - writes - isolated);
        if isolated > 0 {
            let mut sorted = alone.clone();
            sorted.sort_unstable();
            s["write_only_requests_each"] = json!(alone);
            s["write_only_requests_min"] = json!(sorted.first());
            s["write_only_requests_max"] = json!(sorted.last());
            s["write_only_requests_median"] = json!(sorted.get(sorted.len() / 2));
            s["upkeep_requests_per_write"] = json!(upkeep as f64 / isolated as f64);
        }
        s["upkeep_drain_ms"] = json!(drain_ms);
        s["requests_per_write"] = json!(total.requests() as f64 / n);
        s["requests_each"] = json!(reqs);
        s["requests_min"] = json!(reqs.iter().min());
        s["requests_max"] = json!(reqs.iter().max());
        s["ops_per_write"] = json!({
            "get": total.get as f64 / n, "head": total.head as f64 / n,
            "put": total.put as f64 / n, "list": total.list as f64 / n,
            "listed_entries": total.listed as f64 / n,
            "delete": total.delete as f64 / n, "copy": total.copy as f64 / n,
        });
        eprintln!("writes at {} commits: {s}", commits - writes - isolated);
        embedded.insert(format!("at_{target}"), s);
    }
    Ok(embedded)
}

/// `s3-writes` arguments.
#[derive(clap::Args, Debug)]
pub struct S3WritesArgs {
    /// Where the graph goes: `s3://bucket/prefix` (must be empty), or a
    /// local path to compare with.
    #[arg(long)]
    pub uri: String,
    /// Where to write the figures (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Commits of history at the first count.
    #[arg(long, default_value_t = 100)]
    pub history_small: usize,
    /// Commits of history at the second count.
    #[arg(long, default_value_t = 10_000)]
    pub history_large: usize,
    /// Writes measured at each history point.
    #[arg(long, default_value_t = 50)]
    pub writes: usize,
    /// Writes measured alone after those (each once the upkeep has
    /// drained), for the write path's own request count.
    #[arg(long, default_value_t = 20)]
    pub isolated: usize,
}

/// Warm single-row inserts on a graph at `args.uri` (`scripts/bench
/// --s3` points it at a local moto): latency and storage requests per
/// write at two points of history, written to `args.out` as
/// `{"uri", "writes_embedded": {at_<N>: ...}, "profile"}` (the fields of
/// [`warm_writes`]). The graph starts with 1,000 people.
pub async fn s3_writes(a: &S3WritesArgs) -> Result<(), String> {
    metered::enable();
    let g = Graph::init(&a.uri, "schema.pg", SCHEMA)
        .await
        .map_err(|e| e.to_string())?;
    let mut seed = String::new();
    for i in 0..1000 {
        seed += &format!(
            "{{\"type\":\"Person\",\"data\":{{\"key\":\"p{i}\",\"name\":\"p{i}\",\"age\":{},\"bio\":\"seed row\"}}}}\n",
            i % 90
        );
    }
    super::timed_load(&g, seed.as_bytes()).await?;
    let compiled = omnigraph::query::compile_queries(&g.catalog(), QUERIES);
    let add = compiled.query("add").ok_or("no query add")?;
    let gw = g.clone().with_upkeep_task();
    let mut seq = 0u64;
    let writes = Box::pin(warm_writes(
        &g,
        &gw,
        add,
        &mut seq,
        [a.history_small, a.history_large],
        a.writes,
        a.isolated,
    ))
    .await?;
    let out = json!({
        "uri": a.uri,
        "writes_embedded": writes,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
    std::fs::write(&a.out, text).map_err(|e| io(&a.out, e))?;
    Ok(())
}

fn http_figures(
    a: &SuiteArgs,
    addr: &str,
    keys: &[String],
    seq: &mut u64,
) -> Result<(Value, Value), String> {
    let tok = "tok-bench";
    let mut lat = Vec::new();
    for i in 0..(a.writes + 5) {
        *seq += 1;
        let body = json!({
            "query": QUERIES, "name": "add",
            "params": {"k": format!("http{seq}"), "n": *seq as i64},
        })
        .to_string();
        let t = Instant::now();
        let r = request(
            addr,
            "POST",
            "/graphs/g/mutate",
            Some(tok),
            Some(body.as_bytes()),
        );
        if r.status != 200 {
            return Err(format!("mutate over HTTP: {} {}", r.status, r.body));
        }
        if i >= 5 {
            lat.push(ms(t));
        }
    }
    let writes = summary(lat);
    eprintln!("writes over HTTP: {writes}");

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..a.clients)
        .map(|c| {
            let (addr, stop, done, failed) =
                (addr.to_string(), stop.clone(), done.clone(), failed.clone());
            let keys: Vec<String> = keys.to_vec();
            std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({
                        "query": QUERIES, "name": "key",
                        "params": {"k": keys[i % keys.len()]},
                    })
                    .to_string();
                    let r = request(
                        &addr,
                        "POST",
                        "/graphs/g/query",
                        Some(tok),
                        Some(body.as_bytes()),
                    );
                    if r.status == 200 {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // A stride, so clients do not ask for the same keys
                    // in lockstep.
                    i += 7;
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(a.http_secs));
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        let _ = th.join();
    }
    let secs = t.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let reads = json!({
        "clients": a.clients,
        "seconds": secs,
        "requests": n,
        "failed": failed.load(Ordering::Relaxed),
        "requests_per_s": n as f64 / secs,
    });
    eprintln!("HTTP key lookups: {reads}");
    Ok((writes, reads))
}

/// `cleanup` arguments.
#[derive(clap::Args)]
pub struct CleanupArgs {
    /// Where the graph goes: a local directory (must not exist) or
    /// `s3://bucket/prefix` (files are then counted by Lance only).
    #[arg(long)]
    pub uri: String,
    /// Commits of history before the cleanup.
    #[arg(long, default_value_t = 1_000)]
    pub history: usize,
    /// Commits of each branch kept.
    #[arg(long, default_value_t = 10)]
    pub keep: usize,
    /// Warm writes measured alone (once upkeep drained) before and after.
    #[arg(long, default_value_t = 20)]
    pub writes: usize,
}

/// Files and bytes under a local directory.
fn disk_usage(dir: &std::path::Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    files += 1;
                    bytes += m.len();
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}

/// A graph with `history` single-row commits; its files and bytes and the
/// warm write's storage requests (median of `writes` writes, each alone);
/// `cleanup --keep N --confirm` while another handle writes; the same
/// figures after, and whether the kept commits read the same rows.
/// Printed as JSON on stdout.
pub async fn cleanup(a: &CleanupArgs) -> Result<(), String> {
    use omnigraph::engine::cleanup::CleanupPolicy;
    metered::enable();
    let g = Graph::init(&a.uri, "schema.pg", SCHEMA)
        .await
        .map_err(|e| e.to_string())?;
    let compiled = omnigraph::query::compile_queries(&g.catalog(), QUERIES);
    let add = compiled.query("add").ok_or("no query add")?.clone();
    let gw = g.clone().with_upkeep_task();
    let mut seq = 0u64;
    let t = Instant::now();
    Box::pin(warm_writes(
        &g,
        &gw,
        &add,
        &mut seq,
        [a.history, a.history],
        1,
        0,
    ))
    .await?;
    eprintln!(
        "history of {} commits in {:.0} s",
        a.history,
        t.elapsed().as_secs_f64()
    );
    // Warm writes through a handle opened now, before and after the
    // cleanup alike (a handle that met another writer's commit reads more
    // for a while; both measurements start the same way).
    let fresh = || async {
        let h = Graph::open(&a.uri).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((h.clone(), h.with_upkeep_task()))
    };
    let (h, hw) = fresh().await?;
    let before_writes = Box::pin(warm_writes(&h, &hw, &add, &mut seq, [0, 0], 1, a.writes)).await?;
    let local = (!a.uri.starts_with("s3://")).then(|| std::path::PathBuf::from(&a.uri));
    let usage = || local.as_deref().map(disk_usage);
    let before = usage();
    let history = g.commits("main").await.map_err(|e| e.to_string())?;
    let mut rows_before = Vec::new();
    for c in history.iter().take(a.keep) {
        let at = ReadAt::Commit(c.id.clone());
        let mut out = Vec::new();
        g.export(&at, None, &mut out, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        rows_before.push((at, out));
    }
    // One write lands during the cleanup, from another handle.
    let other = Graph::open(&a.uri).await.map_err(|e| e.to_string())?;
    let during = {
        let add = add.clone();
        tokio::spawn(async move {
            other
                .mutate(&add, &json!({"k": "during", "n": 1}), "main", "bench")
                .await
                .map(|r| r.commit.map(|c| c.id))
        })
    };
    let t = Instant::now();
    let policy = CleanupPolicy {
        keep: Some(a.keep),
        older_than_ms: None,
    };
    let report = g.cleanup(policy, true).await.map_err(|e| e.to_string())?;
    let cleanup_ms = ms(t);
    let landed = during
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let after = usage();
    let mut same = true;
    for (at, rows) in &rows_before {
        let mut out = Vec::new();
        g.export(at, None, &mut out, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        same &= &out == rows;
    }
    let read_back = match &landed {
        Some(id) => g.view(&ReadAt::Commit(id.clone())).await.is_ok(),
        None => false,
    };
    let (h, hw) = fresh().await?;
    let after_writes = Box::pin(warm_writes(&h, &hw, &add, &mut seq, [0, 0], 1, a.writes)).await?;
    let median = |w: &serde_json::Map<String, Value>| {
        w.values()
            .last()
            .map(|s| s["write_only_requests_median"].clone())
            .unwrap_or(Value::Null)
    };
    let out = json!({
        "uri": a.uri,
        "history_commits": history.len(),
        "keep": a.keep,
        "files_before": before.map(|b| b.0), "bytes_before": before.map(|b| b.1),
        "files_after": after.map(|b| b.0), "bytes_after": after.map(|b| b.1),
        "cleanup_ms": cleanup_ms,
        "commits_removed": report.commits_removed,
        "table_versions_removed": report.versions_removed(),
        "lance_files_removed": report.files_removed(),
        "lance_bytes_removed": report.bytes_removed(),
        "kept_commits_read_the_same_rows": same,
        "write_during_cleanup_landed": read_back,
        "warm_write_requests_median_before": median(&before_writes),
        "warm_write_requests_median_after": median(&after_writes),
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}
