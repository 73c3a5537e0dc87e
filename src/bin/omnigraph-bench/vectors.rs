//! `omnigraph-bench vectors`: indexed `nearest` beside pylance's own
//! vector search on the same vectors (issue 24). Generates `rows`
//! clustered unit vectors of `dim` floats (256 centres, deterministic),
//! loads them into a graph `node V { slug @key, vec: Vector(dim) @index }`
//! with upkeep deferred, times exact search (no index yet), then
//! `optimize` (which builds the IVF_HNSW_SQ index) and indexed search;
//! recall@k is against brute force computed here. With `--python`, the
//! same table's Lance dataset is copied and searched by
//! `scripts/bench-vectors-pylance.py` with the same index settings, and
//! ours ÷ pylance is printed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use omnigraph::engine::{Graph, ReadAt};
use serde_json::{Value, json};

use super::{Lcg, percentile};

#[derive(Debug, clap::Args)]
pub struct VectorsArgs {
    /// Where the graph goes (a local directory that must not exist).
    #[arg(long)]
    pub uri: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Query vectors (each a stored vector plus noise).
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// A Python with pylance (`pip install pylance==14.0.2`) to run
    /// `scripts/bench-vectors-pylance.py` on the same vectors.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn uniform(r: &mut Lcg) -> f32 {
    (r.next() % 1_000_000) as f32 / 500_000.0 - 1.0
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

/// (p50, p99) of `ms`.
fn p50_p99(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

pub async fn run(a: &VectorsArgs) -> Result<(), String> {
    if a.uri.exists() {
        return Err(format!("{} exists; give a new directory", a.uri.display()));
    }
    let mut r = Lcg(42);
    let centres: Vec<Vec<f32>> = (0..256)
        .map(|_| {
            let mut c: Vec<f32> = (0..a.dim).map(|_| uniform(&mut r)).collect();
            unit(&mut c);
            c
        })
        .collect();
    let vectors: Vec<Vec<f32>> = (0..a.rows)
        .map(|i| {
            let c = &centres[(r.next() as usize + i) % centres.len()];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.06 * uniform(&mut r)).collect();
            unit(&mut v);
            v
        })
        .collect();
    let step = (a.rows / a.queries.max(1)).max(1);
    let queries: Vec<Vec<f32>> = (0..a.queries)
        .map(|j| {
            let mut q: Vec<f32> = vectors[(j * step) % a.rows]
                .iter()
                .map(|x| x + 0.02 * uniform(&mut r))
                .collect();
            unit(&mut q);
            q
        })
        .collect();
    // Ground truth: brute force here.
    let truth: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            let mut d: Vec<(f32, usize)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (cosine(v, q), i))
                .collect();
            d.select_nth_unstable_by(a.k, |x, y| x.0.total_cmp(&y.0));
            d.truncate(a.k);
            d.into_iter().map(|(_, i)| i).collect()
        })
        .collect();

    let uri = a.uri.to_string_lossy().into_owned();
    let schema = format!(
        "node V {{\n  slug: String @key\n  vec: Vector({}) @index\n}}\n",
        a.dim
    );
    let g = Graph::init(&uri, "vectors.pg", &schema)
        .await
        .map_err(|e| e.to_string())?
        .with_background_upkeep();
    let started = Instant::now();
    for (n, chunk) in vectors.chunks(20_000).enumerate() {
        let mut buf = Vec::new();
        for (i, v) in chunk.iter().enumerate() {
            let line =
                json!({"type": "V", "data": {"slug": format!("v{}", n * 20_000 + i), "vec": v}});
            writeln!(buf, "{line}").map_err(|e| e.to_string())?;
        }
        super::load_append(&g, buf).await?;
    }
    let load_s = started.elapsed().as_secs_f64();
    let src = format!(
        "query top($q: Vector({})) {{ match {{ $v: V }} return {{ $v.slug }} order {{ nearest($v.vec, $q) }} limit {} }}",
        a.dim, a.k
    );
    let compiled = omnigraph::query::compile_queries(&g.catalog(), &src);
    let q = compiled
        .queries
        .first()
        .ok_or("the benchmark query did not compile")?
        .clone();
    let main = ReadAt::Branch("main".into());
    let search = |g: &Graph, qv: &[f32]| {
        let (g, q, main, p) = (g.clone(), q.clone(), main.clone(), json!({ "q": qv }));
        async move {
            let t = Instant::now();
            let res = g.query(&q, &p, &main).await.map_err(|e| e.to_string())?;
            let ids: Vec<usize> = res
                .rows
                .iter()
                .filter_map(|r| r["slug"].as_str()?.strip_prefix('v')?.parse().ok())
                .collect();
            Ok::<_, String>((t.elapsed().as_secs_f64() * 1e3, ids))
        }
    };
    let recall = |got: &[Vec<usize>]| -> f64 {
        let hit: usize = got
            .iter()
            .zip(&truth)
            .map(|(g, t)| g.iter().filter(|i| t.contains(i)).count())
            .sum();
        hit as f64 / (truth.len() * a.k) as f64
    };
    // Exact (no index yet): the first query decodes the table, untimed.
    search(&g, &queries[0]).await?;
    let mut exact_ms = Vec::new();
    let mut exact_ids = Vec::new();
    for qv in queries.iter().take(50) {
        let (ms, ids) = search(&g, qv).await?;
        exact_ms.push(ms);
        exact_ids.push(ids);
    }
    // (Over the first 50 queries only.)
    let exact_recall = recall(&exact_ids) * truth.len() as f64 / exact_ids.len().max(1) as f64;
    let partitions = (a.rows / omnigraph::storage::table::VECTOR_ROWS_PER_PARTITION).clamp(1, 1024);
    // pylance on a copy of the same (still unindexed) dataset, before our
    // index build, so neither run shares the machine with the other.
    let pylance = match &a.python {
        None => None,
        Some(py) => {
            let qfile = a.uri.with_extension("queries.json");
            std::fs::write(
                &qfile,
                serde_json::to_vec(&queries).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts/bench-vectors-pylance.py");
            let o = std::process::Command::new(py)
                .arg(&script)
                .args(["--dataset", &format!("{uri}/nodes/V.lance")])
                .args(["--column", "vec", "--id-column", "slug", "--copy"])
                .arg("--queries")
                .arg(&qfile)
                .args(["--k", &a.k.to_string(), "--index", "ivf_hnsw_sq"])
                .args(["--partitions", &partitions.to_string()])
                .args([
                    "--nprobes",
                    &omnigraph::storage::table::VECTOR_MIN_PROBES.to_string(),
                ])
                .args([
                    "--refine",
                    &omnigraph::storage::table::VECTOR_REFINE.to_string(),
                ])
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("{}: {e}", py.display()))?;
            if !o.status.success() {
                return Err(format!("{} failed", script.display()));
            }
            Some(
                serde_json::from_slice::<Value>(&o.stdout)
                    .map_err(|e| format!("pylance output: {e}"))?,
            )
        }
    };
    let t = Instant::now();
    g.optimize().await.map_err(|e| e.to_string())?;
    let build_s = t.elapsed().as_secs_f64();
    // Indexed: a fresh handle (nothing decoded), 3 warm-up queries.
    let g = Graph::open(&uri).await.map_err(|e| e.to_string())?;
    for qv in queries.iter().take(3) {
        search(&g, qv).await?;
    }
    let mut ann_ms = Vec::new();
    let mut ann_ids = Vec::new();
    for qv in &queries {
        let (ms, ids) = search(&g, qv).await?;
        ann_ms.push(ms);
        ann_ids.push(ids);
    }
    let ann_recall = recall(&ann_ids);
    let (exact_p50, exact_p99) = p50_p99(exact_ms);
    let (ann_p50, ann_p99) = p50_p99(ann_ms);
    let mut out = json!({
        "rows": a.rows, "dim": a.dim, "k": a.k, "queries": a.queries,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "ours": {
            "index": "IVF_HNSW_SQ", "partitions": partitions,
            "min_probes": omnigraph::storage::table::VECTOR_MIN_PROBES, "refine": omnigraph::storage::table::VECTOR_REFINE,
            "load_s": load_s, "build_s": build_s,
            "exact_p50_ms": exact_p50, "exact_p99_ms": exact_p99,
            "exact_recall_at_k": exact_recall,
            "ann_p50_ms": ann_p50, "ann_p99_ms": ann_p99, "recall_at_k": ann_recall,
        },
    });
    println!(
        "ours: {} × {} vectors, load {load_s:.1} s, index build (optimize) {build_s:.1} s",
        a.rows, a.dim
    );
    println!(
        "ours: exact nearest p50 {exact_p50:.2} ms p99 {exact_p99:.2} ms (recall {exact_recall:.3}); indexed p50 {ann_p50:.2} ms p99 {ann_p99:.2} ms, recall@{} {ann_recall:.4}",
        a.k
    );
    if let Some(p) = pylance {
        let ratio = |ours: f64, key: &str| p[key].as_f64().map(|x| ours / x);
        println!(
            "pylance {}: build {:.1} s, exact p50 {:.2} ms, indexed p50 {:.2} ms p99 {:.2} ms, recall@{} {:.4}",
            p["pylance_version"].as_str().unwrap_or("?"),
            p["build_s"].as_f64().unwrap_or(f64::NAN),
            p["exact_p50_ms"].as_f64().unwrap_or(f64::NAN),
            p["ann_p50_ms"].as_f64().unwrap_or(f64::NAN),
            p["ann_p99_ms"].as_f64().unwrap_or(f64::NAN),
            a.k,
            p["recall_at_k"].as_f64().unwrap_or(f64::NAN),
        );
        let ratios = json!({
            "build": ratio(build_s, "build_s"),
            "exact_p50": ratio(exact_p50, "exact_p50_ms"),
            "ann_p50": ratio(ann_p50, "ann_p50_ms"),
            "ann_p99": ratio(ann_p99, "ann_p99_ms"),
        });
        println!(
            "ours ÷ pylance: build {:.2}, exact p50 {:.2}, indexed p50 {:.2}, indexed p99 {:.2}",
            ratios["build"].as_f64().unwrap_or(f64::NAN),
            ratios["exact_p50"].as_f64().unwrap_or(f64::NAN),
            ratios["ann_p50"].as_f64().unwrap_or(f64::NAN),
            ratios["ann_p99"].as_f64().unwrap_or(f64::NAN),
        );
        out["pylance"] = p;
        out["ours_over_pylance"] = ratios;
    }
    if let Some(path) = &a.out {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
