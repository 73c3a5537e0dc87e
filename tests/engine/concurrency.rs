//! Two processes loading into one graph at the same time: every load that
//! reported success is present afterwards.

use std::collections::HashSet;

use crate::support::omnigraph;

#[test]
fn concurrent_processes_never_lose_an_acknowledged_load() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = crate::support::cli_small_graph(tmp.path());
    const ROUNDS: usize = 6;
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let uri = uri.clone();
            let dir = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                for i in 0..ROUNDS {
                    let slug = format!("w{w}-{i}");
                    let data = dir.join(format!("{slug}.jsonl"));
                    std::fs::write(&data, format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"{slug}\",\"name\":\"n\"}}}}\n")).expect("write");
                    let mode = if i % 2 == 0 { "append" } else { "merge" };
                    let out = omnigraph(&["load", "--data", data.to_str().expect("utf8"), "--mode", mode, &uri]);
                    if out.status.success() {
                        ok.push(slug);
                    }
                }
                ok
            })
        })
        .collect();
    let acknowledged: Vec<String> = workers
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();
    assert!(!acknowledged.is_empty(), "no load succeeded");
    let out = omnigraph(&["export", &uri]);
    assert_eq!(out.status.code(), Some(0));
    let present: HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["data"]["slug"].as_str().map(str::to_string))
        .collect();
    for slug in &acknowledged {
        assert!(
            present.contains(slug),
            "acknowledged load {slug} is missing"
        );
    }
    // Every commit the loads published is on main's history.
    let out = omnigraph(&["commit", "list", "--json", &uri]);
    let commits: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        commits["commits"].as_array().expect("list").len(),
        acknowledged.len() + 1
    );
}
