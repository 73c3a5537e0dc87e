//! Schema apply over the industry-intel cookbook: every supported step
//! keeps every row, queries written against the new schema run, time
//! travel reads old commits with their old schema, and refused plans
//! (unsupported, data loss without the flag, other branches, rows breaking
//! a new constraint) change nothing.

use std::collections::BTreeMap;

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, Graph, ReadAt};
use omnigraph::query::compile_queries;
use omnigraph::schema::migrate::StepKind;
use serde_json::{Value, json};

use crate::support::{cookbooks_dir, counts, export_sorted, fresh, head, omnigraph};

fn at(b: &str) -> ReadAt {
    ReadAt::Branch(b.into())
}

/// The cookbook's schema source and a loaded graph of it.
async fn loaded(tmp: &std::path::Path) -> (Graph, String) {
    let book = cookbooks_dir().join("industry-intel");
    let g = fresh(&book, tmp).await;
    let seed = std::fs::read(book.join("seed.jsonl")).expect("seed");
    g.load(
        std::io::Cursor::new(seed),
        LoadMode::Overwrite,
        "main",
        None,
        "seed",
    )
    .await
    .expect("seed load");
    let src = std::fs::read_to_string(book.join("schema.pg")).expect("schema");
    (g, src)
}

/// Inserts `line` after the line `anchor` (which must exist).
fn insert_after(src: &str, anchor: &str, line: &str) -> String {
    assert!(src.contains(anchor), "anchor `{anchor}` not in the schema");
    src.replacen(&format!("{anchor}\n"), &format!("{anchor}\n{line}\n"), 1)
}

/// Replaces the first `from` after the line `block`.
fn replace_in(src: &str, block: &str, from: &str, to: &str) -> String {
    let start = src.find(block).expect("block");
    let (head, tail) = src.split_at(start);
    assert!(tail.contains(from), "`{from}` not after `{block}`");
    format!("{head}{}", tail.replacen(from, to, 1))
}

/// Exported entities keyed by (type or edge, id) → data.
async fn entities(g: &Graph, at: &ReadAt) -> BTreeMap<(String, String), Value> {
    export_sorted(g, at)
        .await
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            let ty = v["type"].as_str().or(v["edge"].as_str()).expect("kind");
            let id = v["data"]["id"].as_str().expect("id").to_string();
            ((ty.to_string(), id), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additive_steps_keep_every_row() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (g, src) = loaded(tmp.path()).await;
    let before = entities(&g, &at("main")).await;
    let before_counts = counts(&g, &at("main")).await;
    let old_head = head(&g, "main").await;
    // Another handle on the same graph, opened before the apply.
    let other = Graph::open(g.uri()).await.expect("open");

    let mut new = insert_after(&src, "node Signal {", "    confidence: F64?");
    new = replace_in(
        &new,
        "node Signal {",
        "    brief: String @index",
        "    summary: String @index @rename_from(\"brief\")",
    );
    new = replace_in(
        &new,
        "node Signal {",
        "    description: String?",
        "    description: String? @index",
    );
    new = insert_after(&new, "node Element {", "    reviewed: Bool @default(false)");
    new = insert_after(&new, "node Expert {", "    bio: String?");
    new.push_str(
        "\nnode Reviewer {\n    handle: String @key\n    since: Date?\n}\nedge Reviews: Reviewer -> Signal\n",
    );

    let r = g
        .apply_schema("new.pg", &new, false, "migrator")
        .await
        .expect("apply");
    assert!(r.applied && r.supported);
    let mut kinds: Vec<StepKind> = r.steps.iter().map(|s| s.kind).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        // The renamed property's index moves with it: drop + add.
        vec![
            StepKind::AddIndex,
            StepKind::AddIndex,
            StepKind::AddProperty,
            StepKind::AddProperty,
            StepKind::AddProperty,
            StepKind::AddType,
            StepKind::AddType,
            StepKind::DropIndex,
            StepKind::RenameProperty,
        ]
    );
    let c = r.commit.expect("one commit");
    assert_eq!(c.parents, vec![old_head.clone()]);
    assert_eq!(c.actor, "migrator");
    assert_eq!(
        r.rewritten.keys().collect::<Vec<_>>(),
        vec!["node:Element", "node:Expert", "node:Signal"],
        "only the reshaped tables are rewritten"
    );

    // Every row survives, with the new shape.
    let after_counts = counts(&g, &at("main")).await;
    for (t, n) in &before_counts {
        assert_eq!(after_counts.get(t), Some(n), "{t}");
    }
    assert_eq!(after_counts["node:Reviewer"], 0);
    assert_eq!(after_counts["edge:Reviews"], 0);
    let after = entities(&g, &at("main")).await;
    assert_eq!(after.len(), before.len());
    for (k, v) in &before {
        let mut want = v.clone();
        if k.0 == "Signal" {
            let data = want["data"].as_object_mut().expect("data");
            if let Some(b) = data.remove("brief") {
                data.insert("summary".into(), b);
            }
        }
        if k.0 == "Element" {
            want["data"]["reviewed"] = json!(false);
        }
        assert_eq!(after.get(k), Some(&want), "{k:?}");
    }

    // Queries written against the new schema run, on this handle and on
    // one opened before the apply.
    let q = "query s() { match { $s: Signal } return { $s.slug, $s.summary, $s.confidence } }
             query fts($q: String) { match { $s: Signal  search($s.description, $q) } return { $s.slug } }";
    for handle in [&g, &other] {
        handle.manifest().await.expect("manifest");
        let compiled = compile_queries(&handle.catalog(), q);
        assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
        let rows = handle
            .query(compiled.query("s").expect("s"), &Value::Null, &at("main"))
            .await
            .expect("read")
            .rows;
        assert_eq!(rows.len(), before_counts["node:Signal"]);
        for row in &rows {
            let old = &before[&(
                "Signal".to_string(),
                row["slug"].as_str().expect("slug").to_string(),
            )];
            assert_eq!(row["summary"], old["data"]["brief"]);
            assert_eq!(row["confidence"], Value::Null);
        }
        handle
            .query(
                compiled.query("fts").expect("fts"),
                &json!({"q": "model"}),
                &at("main"),
            )
            .await
            .expect("full text on the newly indexed property");
    }
    // New types take writes; a reopened graph has the new schema.
    g.load(
        std::io::Cursor::new(
            br#"{"type":"Reviewer","data":{"handle":"rv","since":"2026-01-01"}}"#.to_vec(),
        ),
        LoadMode::Append,
        "main",
        None,
        "t",
    )
    .await
    .expect("load the new type");
    let reopened = Graph::open(g.uri()).await.expect("reopen");
    assert!(reopened.catalog().node("Reviewer").is_some());
    assert!(reopened.schema_source().contains("node Reviewer"));

    // Time travel: the commit before the apply reads with its own schema.
    let old = ReadAt::Commit(old_head);
    assert_eq!(entities(&g, &old).await, before);
    let old_cat = g.catalog_at(&old).await.expect("old schema");
    let compiled = compile_queries(
        &old_cat,
        "query b() { match { $s: Signal } return { $s.brief } }",
    );
    assert!(!compiled.has_errors());
    let rows = g
        .query(compiled.query("b").expect("b"), &Value::Null, &old)
        .await
        .expect("old read")
        .rows;
    assert!(rows.iter().all(|r| r["brief"].is_string()), "{rows:?}");

    // The same schema again: nothing to do.
    let r = g
        .apply_schema("new.pg", &new, false, "m")
        .await
        .expect("noop");
    assert!(!r.applied && r.steps.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_plans_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (g, src) = loaded(tmp.path()).await;
    let h = head(&g, "main").await;
    let refused = |r: Result<_, EngineError>| match r {
        Err(EngineError::SchemaRefused { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Unsupported: a property changes type.
    let bad = replace_in(
        &src,
        "node Element {",
        "release_year: I32?",
        "release_year: String?",
    );
    let reason = refused(g.apply_schema("bad.pg", &bad, true, "m").await);
    assert!(reason.contains("release_year"), "{reason}");
    assert!(reason.contains("unsupported"), "{reason}");

    // A new constraint the stored rows break names the rows.
    let ranged = insert_after(&src, "node Element {", "    @range(release_year, 0..10)");
    let reason = refused(g.apply_schema("r.pg", &ranged, false, "m").await);
    assert!(reason.contains("existing rows break"), "{reason}");
    assert!(reason.contains("`Element` `"), "{reason}");

    // Drops need the flag; then the rows of other types stay, and the
    // commit before still reads the dropped data.
    let dropped = src
        .replace("    website: String?\n", "")
        .replace(
            "edge ContributedByExpert: InformationArtifact -> Expert\n",
            "",
        )
        .replace("edge AffiliatedWithCompany: Expert -> Company\n", "");
    let dropped = {
        let start = dropped.find("node Expert {").expect("Expert");
        let end = start + dropped[start..].find("}\n").expect("end") + 2;
        format!("{}{}", &dropped[..start], &dropped[end..])
    };
    let reason = refused(g.apply_schema("d.pg", &dropped, false, "m").await);
    assert!(reason.contains("--allow-data-loss"), "{reason}");
    assert_eq!(head(&g, "main").await, h, "nothing published");

    // Other branches block steps that rewrite tables, not added types.
    g.create_branch(&crate::support::branch_name("dev"), "main", "t")
        .await
        .expect("dev");
    let reason = refused(g.apply_schema("d.pg", &dropped, true, "m").await);
    assert!(reason.contains("(dev)"), "{reason}");
    let added = format!("{src}\nnode Tag {{\n    name: String @key\n}}\n");
    let r = g
        .apply_schema("a.pg", &added, false, "m")
        .await
        .expect("add type");
    assert!(r.applied);
    assert_eq!(
        counts(&g, &at("dev")).await["node:Tag"],
        0,
        "dev sees the new type"
    );
    g.delete_branch("dev", "t").await.expect("delete dev");

    let before = counts(&g, &at("main")).await;
    let pre_drop = head(&g, "main").await;
    let dropped = format!("{dropped}\nnode Tag {{\n    name: String @key\n}}\n");
    let r = g
        .apply_schema("d.pg", &dropped, true, "m")
        .await
        .expect("drop");
    assert_eq!(
        r.dropped,
        vec![
            "edge:AffiliatedWithCompany",
            "edge:ContributedByExpert",
            "node:Expert"
        ]
    );
    let after = counts(&g, &at("main")).await;
    assert!(!after.contains_key("node:Expert"));
    assert_eq!(after["node:Element"], before["node:Element"]);
    let now = entities(&g, &at("main")).await;
    assert!(now.values().all(|v| v["data"].get("website").is_none()));
    let then = entities(&g, &ReadAt::Commit(pre_drop)).await;
    assert!(then.keys().any(|k| k.0 == "Expert"));
    assert!(then.values().any(|v| v["data"].get("website").is_some()));
}

/// `schema plan` and `schema apply` from the CLI: the same refusal reason,
/// exit 1; then an apply that lands, `schema show` prints the new source.
#[test]
fn cli_schema_apply() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = crate::support::cli_small_graph(tmp.path());
    let run = |args: &[&str]| {
        let out = omnigraph(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf8").to_string()
    };
    let bad = write(
        "bad.pg",
        &crate::support::SMALL.replace("born: Date?", "born: String?"),
    );
    let (code, out, _) = run(&["schema", "plan", "--schema", &bad, &uri]);
    assert_eq!(code, Some(1));
    let reason_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("reason:"))
        .expect("a reason")
        .trim()
        .trim_start_matches("reason:")
        .trim()
        .to_string();
    let (code, _, err) = run(&["schema", "apply", "--schema", &bad, &uri]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&reason_line), "{err}\nvs {reason_line}");

    let good = write(
        "good.pg",
        &crate::support::SMALL.replace(
            "    name: String\n",
            "    name: String\n    nick: String?\n",
        ),
    );
    let (code, out, err) = run(&["schema", "apply", "--schema", &good, "--json", &uri]);
    assert_eq!(code, Some(0), "{err}");
    let j: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j["applied"], true);
    assert_eq!(j["steps"][0]["kind"], "add_property");
    let (_, shown, _) = run(&["schema", "show", &uri]);
    assert!(shown.contains("nick: String?"), "{shown}");
    let (code, out, _) = run(&["schema", "apply", "--schema", &good, &uri]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no changes"), "{out}");
}

/// A renamed type (with its edges following), a relaxed nullability, an
/// extended enum, a new constraint the rows satisfy and a description: the
/// rows move to the new name unchanged and traversals through them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_type_and_catalog_steps() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (g, src) = loaded(tmp.path()).await;
    let before = entities(&g, &at("main")).await;
    let experts: BTreeMap<&String, &Value> = before
        .iter()
        .filter(|(k, _)| k.0 == "Expert")
        .map(|(k, v)| (&k.1, v))
        .collect();
    assert!(!experts.is_empty());
    let mut new = src
        .replace("node Expert {", "node Person @rename_from(\"Expert\") {")
        .replace(
            "InformationArtifact -> Expert",
            "InformationArtifact -> Person",
        )
        .replace(
            "edge AffiliatedWithCompany: Expert -> Company",
            "edge AffiliatedWithCompany: Person -> Company",
        );
    new = replace_in(
        &new,
        "node Person",
        "    name: String @index",
        "    name: String? @index @unique",
    );
    new = replace_in(
        &new,
        "node Signal {",
        "data-eng, context)?",
        "data-eng, context, policy)?",
    );
    let r = g
        .apply_schema("r.pg", &new, false, "m")
        .await
        .expect("apply");
    let mut kinds: Vec<String> = r.steps.iter().map(|s| format!("{:?}", s.kind)).collect();
    kinds.sort();
    kinds.dedup();
    for k in [
        "RenameType",
        "RelaxNullability",
        "ExtendEnum",
        "AddConstraint",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} in {kinds:?}");
    }
    assert_eq!(r.created, vec!["node:Person"]);
    assert_eq!(r.dropped, vec!["node:Expert"]);
    let after = entities(&g, &at("main")).await;
    assert_eq!(after.len(), before.len());
    for (id, v) in &experts {
        let mut want = (*v).clone();
        want["type"] = json!("Person");
        assert_eq!(
            after.get(&("Person".to_string(), id.to_string())),
            Some(&want)
        );
    }
    let n_edges = before
        .keys()
        .filter(|k| k.0 == "AffiliatedWithCompany")
        .count();
    let compiled = compile_queries(
        &g.catalog(),
        "query q() { match { $p: Person  $p affiliatedWithCompany $c } return { $p.slug, $c.slug as company } }",
    );
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let rows = g
        .query(compiled.query("q").expect("q"), &Value::Null, &at("main"))
        .await
        .expect("traverse")
        .rows;
    assert_eq!(rows.len(), n_edges);
    // The extended enum takes its new value.
    g.load(
        std::io::Cursor::new(
            br#"{"type":"Signal","data":{"slug":"sig-new","name":"n","brief":"b","domain":"policy","stagingTimestamp":"2026-01-01T00:00:00Z","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}}"#.to_vec(),
        ),
        LoadMode::Append,
        "main",
        None,
        "t",
    )
    .await
    .expect("new enum value");
}
