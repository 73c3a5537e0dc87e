//! Two processes loading into one graph at the same time, on a local root
//! and on `s3://` (moto): every load is accounted for. One that reported
//! success is present afterwards; one that failed failed with a write
//! conflict (nothing else is acceptable) and left nothing behind.

use std::collections::HashSet;
use std::process::{Command, Output};

use crate::storage::Backend;

#[test]
fn concurrent_processes_never_lose_an_acknowledged_load() {
    for backend in crate::storage::backends() {
        two_processes_load(backend);
    }
}

/// The CLI with `env` (the backend's `AWS_*` variables).
fn run(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run omnigraph")
}

fn two_processes_load(backend: Backend) {
    let env = backend.env();
    let omnigraph = |args: &[&str]| run(&env, args);
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.pg");
    std::fs::write(&schema, crate::support::SMALL).expect("write schema");
    let uri = backend.root(tmp.path(), "g");
    let out = omnigraph(&["init", "--schema", schema.to_str().expect("utf8"), &uri]);
    assert!(
        out.status.success(),
        "{backend}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    const ROUNDS: usize = 6;
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let uri = uri.clone();
            let dir = tmp.path().to_path_buf();
            let env = env.clone();
            let omnigraph = move |args: &[&str]| run(&env, args);
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let mut refused = Vec::new();
                for i in 0..ROUNDS {
                    let slug = format!("w{w}-{i}");
                    let data = dir.join(format!("{slug}.jsonl"));
                    std::fs::write(&data, format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"{slug}\",\"name\":\"n\"}}}}\n")).expect("write");
                    let mode = if i % 2 == 0 { "append" } else { "merge" };
                    let out = omnigraph(&["load", "--data", data.to_str().expect("utf8"), "--mode", mode, &uri]);
                    if out.status.success() {
                        ok.push(slug);
                    } else {
                        let err = String::from_utf8_lossy(&out.stderr).to_string();
                        refused.push((slug, out.status.code(), err));
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let mut acknowledged: Vec<String> = Vec::new();
    let mut refused: Vec<(String, Option<i32>, String)> = Vec::new();
    for h in workers {
        let (ok, no) = h.join().expect("worker");
        acknowledged.extend(ok);
        refused.extend(no);
    }
    assert_eq!(acknowledged.len() + refused.len(), 2 * ROUNDS);
    // A load may lose a race to the other process (a write conflict, the
    // documented answer); any other failure is a bug.
    for (slug, code, err) in &refused {
        assert!(
            err.contains("conflict") || err.contains("is being written"),
            "{backend}: load {slug} failed with exit {code:?} for another reason: {err}"
        );
    }
    assert!(
        acknowledged.len() >= ROUNDS,
        "only {} of {} loads succeeded; refused: {refused:?}",
        acknowledged.len(),
        2 * ROUNDS
    );
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
            "{backend}: acknowledged load {slug} is missing"
        );
    }
    for (slug, _, _) in &refused {
        assert!(
            !present.contains(slug),
            "{backend}: refused load {slug} is visible: a partial commit"
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
