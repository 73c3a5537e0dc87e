//! Every cookbook: init + load its seed, row counts equal the seed's, and
//! export → init → load → export is identical.

use omnigraph::engine::ReadAt;
use omnigraph::engine::load::LoadMode;

use crate::support::{cookbooks, counts, export_sorted, fresh, seed_counts};

fn main_at() -> ReadAt {
    ReadAt::Branch("main".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cookbook_seed_loads_with_the_seed_counts() {
    for book in cookbooks() {
        let tmp = tempfile::tempdir().expect("tmp");
        let g = fresh(&book, tmp.path()).await;
        let seed = book.join("seed.jsonl");
        let f = std::fs::File::open(&seed).expect("seed");
        let r = g
            .load(
                std::io::BufReader::new(f),
                LoadMode::Overwrite,
                "main",
                None,
                "seed",
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", book.display()));
        assert!(r.commit.is_some());
        let expected = seed_counts(&seed);
        let got = counts(&g, &main_at()).await;
        for (table, rows) in &got {
            assert_eq!(
                *rows,
                expected.get(table).copied().unwrap_or(0),
                "{}: {table}",
                book.display()
            );
        }
        for table in expected.keys() {
            assert!(
                got.contains_key(table),
                "{}: seed type {table} has no table",
                book.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_init_load_export_round_trips() {
    for book in cookbooks() {
        let tmp = tempfile::tempdir().expect("tmp");
        let g = fresh(&book, tmp.path()).await;
        let f = std::fs::File::open(book.join("seed.jsonl")).expect("seed");
        g.load(
            std::io::BufReader::new(f),
            LoadMode::Overwrite,
            "main",
            None,
            "seed",
        )
        .await
        .expect("load seed");
        let first = export_sorted(&g, &main_at()).await;
        assert_eq!(
            first.len(),
            seed_counts(&book.join("seed.jsonl"))
                .values()
                .sum::<usize>()
        );

        let tmp2 = tempfile::tempdir().expect("tmp");
        let g2 = fresh(&book, tmp2.path()).await;
        g2.load(
            std::io::Cursor::new(first.join("\n").into_bytes()),
            LoadMode::Overwrite,
            "main",
            None,
            "reload",
        )
        .await
        .expect("reload export");
        let second = export_sorted(&g2, &main_at()).await;
        assert_eq!(
            first,
            second,
            "{}: export differs after a round trip",
            book.display()
        );
    }
}

#[test]
fn cli_init_load_snapshot_export() {
    let book = &cookbooks()[0];
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g");
    let uri = uri.to_str().expect("utf8");
    let schema = book.join("schema.pg");
    let out = crate::support::omnigraph(&["init", "--schema", schema.to_str().expect("utf8"), uri]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second init on the same location is refused and changes nothing.
    let again =
        crate::support::omnigraph(&["init", "--schema", schema.to_str().expect("utf8"), uri]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds"));

    let seed = book.join("seed.jsonl");
    let out = crate::support::omnigraph(&[
        "load",
        "--data",
        seed.to_str().expect("utf8"),
        "--mode",
        "overwrite",
        "--as",
        "alice",
        uri,
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["commit"]["actor_id"], "alice");

    let out = crate::support::omnigraph(&["snapshot", uri, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let expected = seed_counts(&seed);
    // The shape of `GET /graphs/{id}/snapshot`.
    assert_eq!(snap["graph_branch"], "main");
    for t in snap["datasets"].as_array().expect("datasets") {
        let key = format!(
            "{}:{}",
            t["entity_kind"].as_str().expect("kind"),
            t["type_name"].as_str().expect("type")
        );
        let key = key.as_str();
        assert_eq!(
            t["entity_count"].as_u64(),
            Some(expected.get(key).copied().unwrap_or(0) as u64),
            "{key}"
        );
    }
    let out = crate::support::omnigraph(&["export", uri]);
    assert_eq!(out.status.code(), Some(0));
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(n, expected.values().sum::<usize>());

    // Graph-backed lint uses the graph's accepted schema.
    for q in std::fs::read_dir(book.join("queries"))
        .expect("queries")
        .filter_map(|e| e.ok().map(|e| e.path()))
    {
        let out = crate::support::omnigraph(&["lint", "--query", q.to_str().expect("utf8"), uri]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            q.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A read query over the loaded seed returns the seed's rows of that type.
    let first_node = std::fs::read_to_string(&seed)
        .expect("seed")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"].is_string())
        .expect("a node line");
    let ty = first_node["type"].as_str().expect("type").to_string();
    let src = format!("query all() {{ match {{ $x: {ty} }} return {{ $x }} }}");
    let out = crate::support::omnigraph(&["query", "-e", &src, "--store", uri, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        res["rows"].as_array().expect("rows").len(),
        expected[&format!("node:{ty}")]
    );
    let out = crate::support::omnigraph(&["query", "-e", &src, "--store", uri, "--branch", "nope"]);
    assert_eq!(out.status.code(), Some(1));

    // `--mode` is required.
    let out = crate::support::omnigraph(&["load", "--data", seed.to_str().expect("utf8"), uri]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_existing_files_and_cleans_up_only_its_own() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    // A location that holds someone else's file plus a stray schema dir.
    std::fs::create_dir_all(root.join("_graph")).expect("mkdir");
    std::fs::write(root.join("notes.txt"), "keep me").expect("write");
    let err =
        omnigraph::engine::Graph::init(root.to_str().expect("utf8"), "s.pg", crate::support::SMALL)
            .await
            .expect_err("refused");
    assert!(err.to_string().contains("already holds"), "{err}");
    assert!(root.join("notes.txt").exists());

    // A bad schema fails before creating anything.
    let fresh_root = tmp.path().join("h");
    let err = omnigraph::engine::Graph::init(
        fresh_root.to_str().expect("utf8"),
        "bad.pg",
        "node A { x: Strin }",
    )
    .await
    .expect_err("bad schema");
    assert!(err.to_string().contains("S107"), "{err}");
    assert!(!fresh_root.exists(), "nothing is left behind");

    // A location with unrelated files is fine, and they survive.
    let other = tmp.path().join("k");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("README"), "mine").expect("write");
    omnigraph::engine::Graph::init(other.to_str().expect("utf8"), "s.pg", crate::support::SMALL)
        .await
        .expect("init beside other files");
    assert_eq!(
        std::fs::read_to_string(other.join("README")).expect("read"),
        "mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_nearest_without_a_configured_provider_fails_clearly() {
    for book in cookbooks() {
        let Ok(src) = std::fs::read_to_string(book.join("queries/hybrid.gq")) else {
            continue;
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let g = fresh(&book, tmp.path()).await;
        let compiled = omnigraph::query::compile_queries(&g.catalog(), &src);
        assert!(!compiled.has_errors());
        for q in &compiled.queries {
            let err = g
                .query(q, &serde_json::json!({"q": "sovereign ai"}), &main_at())
                .await
                .expect_err("needs an embedder");
            // The test environment names no provider key: the default
            // (openai-compatible) says which variable to set.
            assert!(
                err.to_string()
                    .contains("embedding provider is not configured")
                    && err.to_string().contains("OPENROUTER_API_KEY"),
                "{err}"
            );
        }
    }
}

/// `schema show` and `schema plan` over a cookbook graph.
#[test]
fn schema_show_and_plan_from_the_cli() {
    use crate::support::omnigraph;
    let book = crate::support::cookbooks_dir().join("industry-intel");
    let tmp = tempfile::tempdir().expect("tmp");
    let schema_path = book.join("schema.pg");
    let schema = std::fs::read_to_string(&schema_path).expect("schema");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    let out = omnigraph(&[
        "init",
        "--schema",
        schema_path.to_str().expect("utf8"),
        &uri,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = omnigraph(&["schema", "show", &uri]);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim_end(),
        schema.trim_end()
    );
    let plan = |text: &str, json: bool| {
        let p = tmp.path().join(format!("new-{}.pg", ulid::Ulid::new()));
        std::fs::write(&p, text).expect("write");
        let mut args = vec!["schema", "plan", "--schema", p.to_str().expect("utf8")];
        if json {
            args.push("--json");
        }
        args.push(&uri);
        let out = omnigraph(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, text, _) = plan(&schema, false);
    assert_eq!(code, Some(0));
    assert!(text.contains("no changes"), "{text}");
    let added = schema.replacen("node Company {", "node Company {\n    founded: Date?", 1);
    let (code, text, _) = plan(&added, false);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("[ok] node Company: add property founded: Date?"),
        "{text}"
    );
    let required = schema.replacen("node Company {", "node Company {\n    founded: Date", 1);
    let (code, text, _) = plan(&required, true);
    assert_eq!(code, Some(1), "{text}");
    let j: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(j["supported"], false);
    assert_eq!(j["steps"][0]["kind"], "unsupported");
    assert!(
        j["steps"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("@default"))
    );
    let (code, text, err) = plan("node Broken {", false);
    assert_eq!(code, Some(1), "{text}");
    assert!(err.contains("new-"), "diagnostics name the file: {err}");
}
