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

/// One Person row as a JSONL load line.
fn person(slug: &str) -> String {
    format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"{slug}\",\"name\":\"n\"}}}}\n")
}

/// Fairness between processes (`engine/waiting.rs`): a commit step
/// yields once to another process's write that stands waiting for its
/// table: it waits for that write's publish, so the waiting write lands
/// first. It does not yield to the same waiter twice, and never to one of
/// its own process.
#[test]
fn a_commit_step_yields_once_to_another_process_waiting_for_its_table() {
    use omnigraph::engine::load::LoadMode;
    use omnigraph::engine::{lease, waiting};

    let rt = crate::support::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    rt.block_on(async {
        let g = crate::support::small(tmp.path()).await;
        let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
        let load = |slug: &'static str| {
            let g = g.clone();
            async move {
                crate::support::load_str(&g, &person(slug), LoadMode::Append, "main")
                    .await
                    .unwrap_or_else(|e| panic!("load {slug}: {e}"))
                    .commit
                    .expect("a commit")
                    .id
            }
        };
        // Another process (the CLI) loads one row `delay` from now.
        let cli_load = |slug: &'static str, delay: std::time::Duration| {
            let uri = uri.clone();
            let data = tmp.path().join(format!("{slug}.jsonl"));
            std::fs::write(&data, person(slug)).expect("write data");
            tokio::task::spawn_blocking(move || {
                std::thread::sleep(delay);
                let out = crate::support::omnigraph(&[
                    "load",
                    "--data",
                    data.to_str().expect("utf8"),
                    "--mode",
                    "append",
                    &uri,
                ]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            })
        };
        let waiter_file = |owner: lease::Owner| {
            let path = tmp
                .path()
                .join("g/_graph")
                .join(waiting::waiter_path("main", "node:Person"));
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            let w = waiting::Waiter {
                id: ulid::Ulid::new().to_string(),
                owner,
                until_ms: omnigraph::engine::now_ms() + 8_000,
            };
            std::fs::write(&path, serde_json::to_vec(&w).expect("json")).expect("write waiter");
        };
        // The commit step reads waiters through a cache refreshed in the
        // background at most once a second here: commit, wait out the
        // refresh period, commit again (which starts a refresh), let the
        // refresh land.
        let settle = |slug: &'static str| {
            let load = &load;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
                load(slug).await;
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        };
        let a1 = load("a1").await;

        // A waiter of this process: no yield; the load lands before the
        // CLI's, which starts 700 ms later.
        waiter_file(lease::me().clone());
        settle("settle-a").await;
        let cli = cli_load("cli-1", std::time::Duration::from_millis(700));
        let a2 = load("a2").await;
        cli.await.expect("cli");

        // Another process's waiter: the next load waits for a publish,
        // and the CLI's load, started 700 ms later, lands first.
        waiter_file(lease::Owner {
            instance: "another-process".into(),
            host: "elsewhere".into(),
            pid: 1,
        });
        settle("settle-b").await;
        let cli = cli_load("cli-2", std::time::Duration::from_millis(700));
        let a3 = load("a3").await;
        cli.await.expect("cli");

        // The same waiter again: yielded to once already, no wait.
        let cli = cli_load("cli-3", std::time::Duration::from_millis(700));
        let a4 = load("a4").await;
        cli.await.expect("cli");

        let history: Vec<_> = g
            .commits("main")
            .await
            .expect("history")
            .into_iter()
            .map(|c| (c.id, c.actor))
            .collect();
        let at = |id: &omnigraph::engine::CommitId| {
            history
                .iter()
                .position(|(c, _)| c == id)
                .unwrap_or_else(|| panic!("{id} not on main: {history:?}"))
        };
        // Newest first: the CLI's load right after each of ours is older
        // than it when it was yielded to.
        let (p1, p2, p3, p4) = (at(&a1), at(&a2), at(&a3), at(&a4));
        assert!(p4 < p3 && p3 < p2 && p2 < p1, "{history:?}");
        let tester = |p: usize| history[p].1 == "tester";
        assert!(
            !tester(p2 - 1),
            "after a2 (own waiter) comes the CLI's load: {history:?}"
        );
        assert!(
            !tester(p3 + 1),
            "before a3 (yielded) comes the CLI's load: {history:?}"
        );
        assert!(
            !tester(p4 - 1),
            "after a4 (yielded once already) comes the CLI's load: {history:?}"
        );
    });
}
