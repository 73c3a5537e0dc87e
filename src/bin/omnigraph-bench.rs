//! `omnigraph-bench`: load benchmarks that print figures (never asserted).
//!
//! ```text
//! omnigraph-bench load-seed DIR/seed.jsonl DIR/schema.pg   # a cookbook seed, N runs
//! omnigraph-bench load-generated [ROWS]                    # generated nodes+edges, default 1,000,000
//! ```
//! Each prints a table: rows, seconds, rows/s.

use std::io::BufReader;
use std::time::Instant;

use omnigraph::engine::Graph;
use omnigraph::engine::load::LoadMode;

const GEN_SCHEMA: &str =
    "node Item {\n  key: String @key\n  n: I64\n  label: String?\n}\nedge Next: Item -> Item\n";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    let result = match args.first().map(String::as_str) {
        Some("load-seed") if args.len() == 3 => rt.block_on(load_seed(&args[1], &args[2])),
        Some("load-generated") => {
            let rows = args
                .get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000);
            rt.block_on(load_generated(rows))
        }
        _ => Err(
            "usage: omnigraph-bench load-seed SEED.jsonl SCHEMA.pg | load-generated [ROWS]".into(),
        ),
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
        let t = Instant::now();
        g.load(
            BufReader::new(&data[..]),
            LoadMode::Overwrite,
            "main",
            None,
            "bench",
        )
        .await
        .map_err(|e| e.to_string())?;
        row(
            &format!("seed load (overwrite), run {run}"),
            rows,
            t.elapsed().as_secs_f64(),
        );
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
    let t = Instant::now();
    g.load(
        BufReader::new(&data[..]),
        LoadMode::Overwrite,
        "main",
        None,
        "bench",
    )
    .await
    .map_err(|e| e.to_string())?;
    row(
        &format!("generated {nodes} nodes + {edges} edges"),
        rows,
        t.elapsed().as_secs_f64(),
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
