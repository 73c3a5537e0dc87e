//! The `omnigraph` binary as a user runs it: exit codes, human and JSON
//! output.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::cookbooks;

fn omnigraph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run omnigraph")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnigraph-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

#[test]
fn schema_check_passes_cookbooks_and_fails_bad_input() {
    for book in cookbooks() {
        let out = omnigraph(&[
            "schema",
            "check",
            book.join("schema.pg").to_str().expect("utf8"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("ok"));
    }
    let bad = tmp("bad.pg", "node A {\n  x: Strin\n}\n");
    let out = omnigraph(&["schema", "check", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.pg:2:6"), "{err}");
    assert!(err.contains("S107"), "{err}");
    assert!(err.contains("unknown type `Strin`"), "{err}");
    assert!(err.contains("did you mean `String`?"), "{err}");
    assert!(
        err.contains('^') || err.contains('─'),
        "caret snippet: {err}"
    );

    let out = omnigraph(&["schema", "check", "--json", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["code"], "S107");
    assert_eq!(v[0]["line"], 2);
    assert_eq!(v[0]["column"], 6);
    assert!(v[0]["file"].as_str().expect("file").ends_with("bad.pg"));
}

#[test]
fn lint_reports_per_query_status_and_operation() {
    let book = &cookbooks()[0];
    let schema = book.join("schema.pg");
    for q in crate::support::query_files(book) {
        let out = omnigraph(&[
            "lint",
            "--schema",
            schema.to_str().expect("utf8"),
            "--query",
            q.to_str().expect("utf8"),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["status"], "ok");
        let queries = v["queries"].as_array().expect("queries");
        assert!(!queries.is_empty());
        for q in queries {
            assert_eq!(q["status"], "ok");
            assert!(
                q["operation"]["reads"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            );
        }
    }

    let schema = tmp(
        "s.pg",
        "node P { slug: String @key\n age: I32? }\nedge Knows: P -> P\n",
    );
    let query = tmp(
        "q.gq",
        "query good($s: String) { match { $p: P { slug: $s } } return { $p.slug, $p.age } }\nquery bad() { match { $p: P } return { $p.nme } }\n",
    );
    let args = [
        "lint",
        "--schema",
        schema.to_str().expect("utf8"),
        "--query",
        query.to_str().expect("utf8"),
    ];
    let out = omnigraph(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("q.gq:2:"), "{err}");
    assert!(err.contains("T02"), "{err}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = omnigraph(&json_args);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "error");
    assert_eq!(v["queries"][0]["name"], "good");
    assert_eq!(v["queries"][0]["status"], "ok");
    assert_eq!(v["queries"][0]["operation"]["result"][1]["kind"], "int");
    assert_eq!(v["queries"][1]["status"], "error");
    assert_eq!(v["findings"][0]["code"], "T02");
    assert_eq!(v["findings"][0]["line"], 2);

    // `check` is an alias of `lint`.
    let mut alias = args.to_vec();
    alias[0] = "check";
    assert_eq!(omnigraph(&alias).status.code(), Some(1));
}

#[test]
fn query_explain_prints_the_plan() {
    let schema = tmp(
        "e.pg",
        "node P { slug: String @key\n age: I32? }\nedge Knows: P -> P\n",
    );
    let query = tmp(
        "e.gq",
        "query friends($s: String) { match { $p: P { slug: $s }\n $p knows{1,2} $f\n not { $f knows $p } } return { $f.slug } order { $f.age desc } limit 3 }\n",
    );
    let s = schema.to_str().expect("utf8");
    let q = query.to_str().expect("utf8");
    let out = omnigraph(&["query", "explain", "--schema", s, "--query", q, "friends"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("Scan $p: P where slug = $s [key lookup]"),
        "{plan}"
    );
    assert!(plan.contains("Expand $p ->[Knows x1..2] $f: P"), "{plan}");
    assert!(plan.contains("AntiJoin"), "{plan}");
    assert!(plan.contains("limit: 3"), "{plan}");

    let out = omnigraph(&[
        "query", "explain", "--schema", s, "--query", q, "friends", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["body"]["kind"], "read");
    assert_eq!(v["body"]["pipeline"][0]["operator"], "scan");

    let out = omnigraph(&["query", "explain", "--schema", s, "--query", q, "frends"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did you mean `friends`?"));

    let out = omnigraph(&[
        "query",
        "explain",
        "--schema",
        "/nonexistent.pg",
        "--query",
        q,
        "friends",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent.pg"));
}

/// `cluster validate` over every cookbook that ships a `cluster.yaml`, and
/// over a copy of one with a policy bound to a graph it does not declare.
#[test]
fn cluster_validate_checks_cookbook_clusters() {
    let mut validated = 0;
    for book in cookbooks() {
        if !book.join("cluster.yaml").exists() {
            continue;
        }
        let dir = book.to_str().expect("utf8");
        let out = omnigraph(&["cluster", "validate", "--config", dir]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("valid ("),
            "{}",
            text(&out.stdout)
        );
        let out = omnigraph(&["cluster", "validate", "--config", dir, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["ok"], true);
        assert!(v["queries"].as_u64().is_some_and(|n| n > 0));
        validated += 1;
        // With no ledger, plan creates every resource: each graph and its
        // schema, each stored query, each policy.
        if !book.join("__cluster").exists() {
            let out = omnigraph(&["cluster", "plan", "--config", dir]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            let n = |k: &str| v[k].as_u64().expect("count");
            let want = format!(
                "{} to create, 0 to update, 0 to delete",
                2 * n("graphs") + n("queries") + n("policies")
            );
            let shown = text(&out.stdout);
            assert!(
                shown.contains("no state ledger") && shown.contains(&want),
                "{shown}"
            );
        }
        // A broken copy: the graph renamed, so every binding dangles.
        let copy = std::env::temp_dir().join(format!("omnigraph-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        std::fs::create_dir_all(&copy).expect("mkdir");
        for entry in ["schema.pg", "queries", "policies"] {
            let from = book.join(entry);
            if from.is_dir() {
                std::fs::create_dir_all(copy.join(entry)).expect("mkdir");
                for f in std::fs::read_dir(&from).expect("read") {
                    let f = f.expect("entry").path();
                    std::fs::copy(&f, copy.join(entry).join(f.file_name().expect("name")))
                        .expect("copy");
                }
            } else if from.exists() {
                std::fs::copy(&from, copy.join(entry)).expect("copy");
            }
        }
        let config = std::fs::read_to_string(book.join("cluster.yaml")).expect("config");
        let first_graph = config
            .lines()
            .skip_while(|l| !l.starts_with("graphs:"))
            .nth(1)
            .and_then(|l| l.trim().strip_suffix(':'))
            .expect("a graph")
            .to_string();
        let broken = config.replacen(&format!("  {first_graph}:"), "  renamed:", 1);
        std::fs::write(copy.join("cluster.yaml"), broken).expect("write");
        let out = omnigraph(&[
            "cluster",
            "validate",
            "--config",
            copy.to_str().expect("utf8"),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let shown = text(&out.stdout);
        assert!(
            shown.contains("error[unknown_graph]") && shown.contains(&first_graph),
            "{shown}"
        );
    }
    assert!(validated >= 1, "no cookbook ships a cluster.yaml");
}
