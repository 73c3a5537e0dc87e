//! `omnigraph-bench gen` + `suite` at a tiny scale, as `scripts/bench`
//! runs them, and the report script over their output: every figure is
//! present and sane, and a warm write costs no more storage requests after
//! more history than before.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_omnigraph-bench"))
        .args(args)
        .env("OMNIGRAPH_LOG", "error")
        .output()
        .expect("run omnigraph-bench");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_suite_measures_every_figure_and_write_cost_stays_flat() {
    let tmp = tempfile::tempdir().expect("tmp");
    let work = tmp.path().join("wl");
    let w = work.to_str().expect("utf8");
    let (code, err) = bench(&["gen", "--nodes", "5", "--out", w]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--nodes 5 is too small"), "{err}");

    let (code, err) = bench(&["gen", "--nodes", "300", "--edges", "900", "--out", w]);
    assert_eq!(code, Some(0), "{err}");
    let wl: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("workload.json")).expect("wl"))
            .expect("json");
    assert_eq!(wl["persons"], 240);
    assert_eq!(wl["knows"], 900 - 2 * 240);
    let knows = std::fs::read_to_string(work.join("knows.csv")).expect("csv");
    assert_eq!(knows.lines().count(), 1 + 420, "header + one line per edge");
    let jsonl = std::fs::read_to_string(work.join("graph.jsonl")).expect("jsonl");
    assert_eq!(jsonl.lines().count(), 300 + 900);

    let ours = tmp.path().join("ours.json");
    let (code, err) = bench(&[
        "suite",
        "--workload",
        w,
        "--out",
        ours.to_str().expect("utf8"),
        "--history-small",
        "10",
        "--history-large",
        "60",
        "--writes",
        "10",
        "--isolated",
        "5",
        "--clients",
        "2",
        "--http-secs",
        "1",
        "--isolation-secs",
        "0",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let o: Value =
        serde_json::from_str(&std::fs::read_to_string(&ours).expect("ours")).expect("json");
    assert_eq!(o["load"]["rows"], 1200, "{o}");
    assert_eq!(o["scan"]["rows"], 1200, "{o}");
    for q in ["key", "hop1", "hop2", "hop3", "text"] {
        assert!(
            o["reads"][q]["p50_ms"].as_f64().is_some_and(|v| v > 0.0),
            "{q}: {o}"
        );
    }
    // Every lookup key exists: one row per key lookup.
    assert_eq!(o["reads"]["key"]["mean_rows"], 1.0, "{o}");
    let at = |n: &str| o["writes_embedded"][n].clone();
    let (small, large) = (at("at_10"), at("at_60"));
    assert!(
        small["history_commits"].as_u64().is_some_and(|c| c >= 10),
        "{o}"
    );
    assert!(
        large["history_commits"].as_u64().is_some_and(|c| c >= 60),
        "{o}"
    );
    let reqs = |w: &Value| w["requests_per_write"].as_f64().expect("requests");
    assert!(reqs(&small) > 0.0, "the metering store saw the writes: {o}");
    // Before index segments were folded and small fragments compacted,
    // each earlier commit added about 7 GETs to every write (some 400
    // more at 60 commits). Upkeep now runs in its own task every few
    // writes, and its requests fall inside whichever writes it overlaps
    // (more of them on a loaded machine): the typical write measured
    // alone, once the upkeep drained, must not grow, and no write, upkeep
    // overlap included, may cost more than a bound that does not depend
    // on history.
    let each = |w: &Value, field: &str| {
        let mut v: Vec<u64> = w[field]
            .as_array()
            .expect("requests_each")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        v.sort_unstable();
        v
    };
    let (s, l) = (
        each(&small, "write_only_requests_each"),
        each(&large, "write_only_requests_each"),
    );
    assert_eq!((s.len(), l.len()), (5, 5), "{o}");
    assert!(
        l[l.len() / 2] <= s[s.len() / 2] + 2,
        "the typical warm write's storage requests grew with history: {o}"
    );
    assert!(
        l[l.len() / 2] <= 10,
        "a warm write alone costs at most 10 requests (issue 18): {o}"
    );
    let l = each(&large, "requests_each");
    assert!(
        l.last().is_some_and(|&m| m <= 120),
        "a warm write (with its upkeep) cost more than 120 requests: {o}"
    );
    assert!(o["writes_http"]["p50_ms"].as_f64().is_some(), "{o}");
    assert!(
        o["http_reads"]["requests"].as_u64().is_some_and(|n| n > 0),
        "{o}"
    );
    assert_eq!(o["http_reads"]["failed"], 0, "{o}");

    // The report prints a table per figure even without peers.
    let peers = tmp.path().join("peers.json");
    std::fs::write(&peers, "{}").expect("peers");
    let res = tmp.path().join("results.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_report.py");
    let out = Command::new("python3")
        .args([script])
        .args([&ours, &peers, &res])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for title in [
        "Bulk load",
        "Full scan",
        "Reads, embedded",
        "Warm single-row insert",
        "HTTP key lookups",
    ] {
        assert!(text.contains(title), "{title}: {text}");
    }
    assert!(text.contains("do not grow"), "{text}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&res).expect("results")).expect("json");
    assert_eq!(r["ours"], o);
}
