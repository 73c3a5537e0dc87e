//! `omnigraph query` end to end: time travel to an older commit after later
//! writes, and the bad inputs a user makes (each exit 1 with a message
//! naming what is wrong, never a panic).

use crate::support::{cli_small_graph, omnigraph};
use serde_json::Value as Json;

const PEOPLE: &str = r#"{"type":"Person","data":{"slug":"ada","name":"Ada","age":36}}
{"type":"Person","data":{"slug":"bob","name":"Bob","age":41}}
{"type":"Person","data":{"slug":"cy","name":"Cy"}}
{"edge":"Knows","from":"ada","to":"bob"}
{"edge":"Knows","from":"bob","to":"cy"}
"#;

const QUERIES: &str = r#"
query people() { match { $p: Person } return { $p.slug, $p.name, $p.age } order { $p.slug } }
query reach($s: String) { match { $p: Person { slug: $s }  $p knows{1,3} $q } return { $q.slug } order { $q.slug } }
query by_age($min: I32) { match { $p: Person  $p.age >= $min } return { $p.slug } order { $p.slug } }
query first($n: I64) { match { $p: Person } return { $p.slug } order { $p.slug } limit $n }
"#;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = omnigraph(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rows of a `--format json` answer.
fn rows(uri: &str, extra: &[&str]) -> Vec<Json> {
    let mut args = vec!["query", "--store", uri, "-e", QUERIES, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
    let v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    v["rows"].as_array().cloned().unwrap_or_default()
}

fn head_commit(uri: &str) -> String {
    let (code, out, err) = run(&["commit", "list", "--json", uri]);
    assert_eq!(code, 0, "{err}");
    let v: Json = serde_json::from_str(&out).expect("commit list json");
    let list = v["commits"].as_array().cloned().unwrap_or_default();
    list.first()
        .and_then(|c| c["graph_commit_id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no commits in {out}"))
}

#[test]
fn a_query_at_an_older_commit_returns_that_commits_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = cli_small_graph(tmp.path());
    let data = tmp.path().join("people.jsonl");
    std::fs::write(&data, PEOPLE).expect("write");
    let (code, _, err) = run(&[
        "load",
        "--mode",
        "overwrite",
        "--data",
        data.to_str().expect("utf8"),
        &uri,
    ]);
    assert_eq!(code, 0, "{err}");
    let c1 = head_commit(&uri);
    let at_c1 = rows(&uri, &["people"]);
    let reach_c1 = rows(&uri, &["reach", "--params", r#"{"s":"ada"}"#]);
    assert_eq!(reach_c1.len(), 2, "{reach_c1:?}");

    // Later writes: rename, insert, delete (cascading Bob's edges).
    for m in [
        r#"query m() { update Person set { name: "Ada L." } where slug = "ada" }"#,
        r#"query m() { insert Person { slug: "dee", name: "Dee", age: 50 } }"#,
        r#"query m() { delete Person where slug = "bob" }"#,
    ] {
        let (code, _, err) = run(&["mutate", "--store", &uri, "-e", m]);
        assert_eq!(code, 0, "{m}: {err}");
    }
    let now = rows(&uri, &["people"]);
    let slugs = |r: &[Json]| {
        r.iter()
            .map(|x| x["slug"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(slugs(&now), ["ada", "cy", "dee"]);
    assert_eq!(now[0]["name"], "Ada L.");
    assert!(rows(&uri, &["reach", "--params", r#"{"s":"ada"}"#]).is_empty());

    // The old commit still answers with its own rows, traversals included.
    assert_eq!(rows(&uri, &["people", "--commit", &c1]), at_c1);
    assert_eq!(slugs(&at_c1), ["ada", "bob", "cy"]);
    assert_eq!(at_c1[0]["name"], "Ada");
    assert_eq!(
        rows(
            &uri,
            &["reach", "--params", r#"{"s":"ada"}"#, "--commit", &c1]
        ),
        reach_c1
    );
    assert_eq!(
        slugs(&rows(
            &uri,
            &["by_age", "--params", r#"{"min":40}"#, "--commit", &c1]
        )),
        ["bob"]
    );
    assert_eq!(
        slugs(&rows(&uri, &["by_age", "--params", r#"{"min":40}"#])),
        ["dee"]
    );
}

#[test]
fn bad_query_inputs_exit_1_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = cli_small_graph(tmp.path());
    let data = tmp.path().join("people.jsonl");
    std::fs::write(&data, PEOPLE).expect("write");
    assert_eq!(
        run(&[
            "load",
            "--mode",
            "overwrite",
            "--data",
            data.to_str().expect("utf8"),
            &uri
        ])
        .0,
        0
    );
    let cases: &[(&[&str], &str)] = &[
        (&["reach"], "missing required parameter"),
        (&["reach", "--params", r#"{"s":5}"#], "expected String"),
        (&["by_age", "--params", r#"{"min":"old"}"#], "$min"),
        (&["by_age", "--params", r#"{"min":1.5}"#], "$min"),
        (
            &["reach", "--params", r#"{"s":"ada","x":1}"#],
            "no such parameter",
        ),
        (&["reach", "--params", "{bad"], "not valid JSON"),
        // A limit parameter below 1 once answered no rows.
        (
            &["first", "--params", r#"{"n":-1}"#],
            "must be at least 1, got -1",
        ),
        (
            &["first", "--params", r#"{"n":0}"#],
            "must be at least 1, got 0",
        ),
        (&["nope"], "no query named `nope`"),
        (
            &["people", "--branch", "nope"],
            "branch `nope` does not exist",
        ),
        (
            &["people", "--commit", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
            "commit `01ARZ3NDEKTSV4RRFFQ69G5FAV` does not exist",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["query", "--store", uri.as_str(), "-e", QUERIES];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(
            code, 1,
            "{extra:?}: exit {code}\nstdout: {out}\nstderr: {err}"
        );
        assert!(
            err.contains(want),
            "{extra:?}: stderr lacks {want:?}:\n{err}"
        );
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
    assert_eq!(rows(&uri, &["first", "--params", r#"{"n":2}"#]).len(), 2);
    // A closed stdout (`omnigraph commit list | head -1`) ends the command
    // without a panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(["commit", "list", &uri])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // A query that does not type-check against the graph's schema.
    let (code, _, err) = run(&[
        "query",
        "--store",
        &uri,
        "-e",
        "query q() { match { $p: Persn } return { $p } }",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Persn"), "{err}");
}

/// The reference CLI's spellings (docs/user/cli/reference.md): `--snapshot`
/// for time travel (`--commit` stays), `--uri` for `--store`,
/// `--params-file`, `--format kv`, and `omnigraph version` / `-v`.
#[test]
fn the_reference_cli_spellings_are_accepted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = cli_small_graph(tmp.path());
    let data = tmp.path().join("people.jsonl");
    std::fs::write(&data, PEOPLE).expect("write");
    let load = ["load", "--mode", "overwrite", "--data"];
    let (code, _, err) = run(&[&load[..], &[data.to_str().expect("utf8"), &uri]].concat());
    assert_eq!(code, 0, "{err}");
    // A write echoes its resolved target on stderr; --quiet drops the
    // echo, --yes is accepted (a local target needs no consent).
    assert!(
        err.contains(&format!("omnigraph load → {uri} (direct, local)")),
        "{err}"
    );
    let (code, _, err) = run(&[
        &load[..],
        &[data.to_str().expect("utf8"), &uri, "--quiet", "--yes"],
    ]
    .concat());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("omnigraph load →"), "{err}");
    let (code, _, err) = run(&["branch", "create", "tmp", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("omnigraph branch create → "), "{err}");
    let (code, _, err) = run(&["--yes", "branch", "delete", "tmp", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("omnigraph branch delete → "), "{err}");
    let (code, _, err) = run(&[
        "mutate",
        "--uri",
        &uri,
        "-e",
        "query m() { delete Person where slug = \"nobody\" }",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("→"), "mutate does not echo: {err}");
    let c1 = head_commit(&uri);
    let insert = r#"query m() { insert Person { slug: "dee", name: "Dee", age: 50 } }"#;
    let (code, _, err) = run(&["mutate", "--uri", &uri, "-e", insert]);
    assert_eq!(code, 0, "mutate --uri: {err}");

    // --snapshot reads the commit, as --commit does; --uri names the graph.
    let at = |flag: &str| {
        let (code, out, err) = run(&[
            "query", "--uri", &uri, "-e", QUERIES, "people", flag, &c1, "--json",
        ]);
        assert_eq!(code, 0, "{flag}: {err}");
        serde_json::from_str::<Json>(&out).expect("json")["rows"].clone()
    };
    assert_eq!(at("--snapshot"), at("--commit"));
    assert_eq!(at("--snapshot").as_array().map(Vec::len), Some(3));
    assert_eq!(rows(&uri, &["people"]).len(), 4);
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--store", uri.as_str(), "-e", QUERIES];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, _, err) = query(&["people", "--snapshot", &c1, "--branch", "main"]);
    assert_eq!(code, 2, "--snapshot with --branch: {err}");

    // --params-file: a file or stdin; bad JSON names the file; not with --params.
    let params = tmp.path().join("params.json");
    std::fs::write(&params, r#"{"s": "ada"}"#).expect("write");
    let p = params.to_str().expect("utf8");
    let reach = rows(&uri, &["reach", "--params-file", p]);
    assert_eq!(reach, rows(&uri, &["reach", "--params", r#"{"s":"ada"}"#]));
    assert_eq!(reach.len(), 2, "{reach:?}");
    std::fs::write(&params, "{s: ada}").expect("write");
    let (code, _, err) = query(&["reach", "--params-file", p]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--params-file") && err.contains("params.json"),
        "{err}"
    );
    let (code, _, err) = query(&["reach", "--params-file", p, "--params", "{}"]);
    assert_eq!(code, 2, "--params with --params-file: {err}");
    let missing = tmp.path().join("none.json");
    let (code, _, err) = query(&["reach", "--params-file", missing.to_str().expect("utf8")]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("none.json"), "{err}");

    // --format kv: one `column: value` block per row, blank lines between.
    let (code, out, err) = query(&["people", "--format", "kv"]);
    assert_eq!(code, 0, "{err}");
    let blocks: Vec<&str> = out.trim_end().split("\n\n").collect();
    assert_eq!(blocks.len(), 4, "{out}");
    assert_eq!(blocks[0], "slug:  ada\nname:  Ada\nage:   36", "{out}");
    assert_eq!(blocks[2], "slug:  cy\nname:  Cy\nage:", "{out}");

    // omnigraph version / -v: the release and the storage format.
    for args in [&["version"][..], &["-v"][..]] {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(
            out,
            format!(
                "omnigraph {}\ninternal-schema {}\n",
                env!("CARGO_PKG_VERSION"),
                omnigraph::engine::INTERNAL_SCHEMA_VERSION
            )
        );
    }
    let (code, out, _) = run(&["version", "--json"]);
    assert_eq!(code, 0);
    let v: Json = serde_json::from_str(&out).expect("json");
    assert_eq!(v["internal_schema_version"], 1);
}
