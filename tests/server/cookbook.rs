//! The industry-intel cookbook served with its own policies: its seed loaded
//! through `load/ndjson`, every stored query invoked over HTTP and compared
//! with the embedded engine, and every role's allowed and refused calls.

use std::collections::BTreeMap;

use omnigraph::engine::{Graph, ReadAt};
use omnigraph::query::CheckedQuery;
use serde_json::{Value, json};

use crate::engine_support::cookbooks_dir;
use crate::support::{Server, init_graph};

const TOKENS: &str =
    r#"{"act-reader":"tok-reader","act-analyst":"tok-analyst","act-admin":"tok-admin"}"#;

/// Parameter maps to try for `q`, drawn from the seed: one per seed row of
/// a type the query reads, each parameter taken from that row when it has a
/// property of that name, else from the first row that has one.
fn candidates(q: &CheckedQuery, seed: &[Value]) -> Vec<serde_json::Map<String, Value>> {
    let types: Vec<&str> = q.reads.iter().map(|t| t.type_name.as_str()).collect();
    let fallback = |p: &str| seed.iter().find_map(|r| r["data"].get(p).cloned());
    let mut out: Vec<serde_json::Map<String, Value>> = seed
        .iter()
        .filter(|r| r["type"].as_str().is_some_and(|t| types.contains(&t)))
        .map(|r| {
            q.params
                .iter()
                .filter_map(|p| {
                    let v = r["data"]
                        .get(&p.name)
                        .cloned()
                        .or_else(|| fallback(&p.name))?;
                    Some((p.name.clone(), v))
                })
                .collect()
        })
        .collect();
    out.dedup();
    if out.is_empty() {
        out.push(serde_json::Map::new());
    }
    out
}

#[test]
fn the_cookbook_serves_its_stored_queries_under_its_policies() {
    let book = cookbooks_dir().join("industry-intel");
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = init_graph(tmp.path(), "spike", &book.join("schema.pg"));
    let q = format!("spike={}", book.join("queries").display());
    let p = format!(
        "spike={}",
        book.join("policies/intel.policy.yaml").display()
    );
    let sp = book
        .join("policies/server.policy.yaml")
        .display()
        .to_string();
    let g = format!("spike={uri}");
    let server = Server::start(
        tmp.path(),
        &[
            "--graph",
            &g,
            "--queries",
            &q,
            "--policy",
            &p,
            "--server-policy",
            &sp,
        ],
        &[("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", TOKENS)],
    );
    let (reader, analyst, admin) = (Some("tok-reader"), Some("tok-analyst"), Some("tok-admin"));

    // Authentication.
    server.get("/healthz", None).expect(200);
    server.get("/graphs/spike/snapshot", None).expect(401);
    server
        .get("/graphs/spike/snapshot", Some("wrong"))
        .expect(401);
    // Only the server policy's admin lists graphs.
    let list = server.get("/graphs", admin).expect(200).json();
    assert_eq!(list["graphs"][0]["graph_id"], "spike");
    server.get("/graphs", reader).expect(403);
    server.get("/graphs", None).expect(401);
    // An unknown graph is a 404.
    server.get("/graphs/nope/snapshot", reader).expect(404);

    // The seed through load/ndjson: readers cannot, analysts can.
    let seed_text = std::fs::read_to_string(book.join("seed.jsonl")).expect("seed");
    let seed: Vec<Value> = seed_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("seed line"))
        .collect();
    let path = "/graphs/spike/load/ndjson?mode=overwrite";
    server.post(path, reader, &seed_text).expect(403);
    let loaded = server.post(path, analyst, &seed_text).expect(200).json();
    assert_eq!(
        loaded["total_entities"].as_u64(),
        Some(seed.len() as u64),
        "{loaded}"
    );
    assert_eq!(loaded["actor_id"], "act-analyst");
    let commit = loaded["commit"]["graph_commit_id"]
        .as_str()
        .expect("commit")
        .to_string();

    // The catalog lists every stored query; each is compared with the
    // embedded engine on the same graph.
    let catalog = server
        .get("/graphs/spike/queries", reader)
        .expect(200)
        .json();
    let names: Vec<String> = catalog["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .map(|q| q["name"].as_str().expect("name").to_string())
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let graph = rt.block_on(Graph::open(&uri)).expect("open");
    let mut stored: BTreeMap<String, CheckedQuery> = BTreeMap::new();
    for f in std::fs::read_dir(book.join("queries")).expect("queries") {
        let f = f.expect("entry").path();
        let src = std::fs::read_to_string(&f).expect("read");
        let (compiled, _) = omnigraph::query::compile_queries_file(&graph.catalog(), "q", &src);
        for q in compiled.queries {
            stored.insert(q.name.clone(), q);
        }
    }
    assert_eq!(names, stored.keys().cloned().collect::<Vec<_>>());
    let (mut reads, mut non_empty, mut mutations) = (0, 0, 0);
    for (name, q) in &stored {
        // The first candidate the embedded engine answers with rows (or the
        // first candidate when none does).
        let all = candidates(q, &seed);
        let at = ReadAt::Branch("main".into());
        let params = all
            .iter()
            .take(40)
            .find(|c| {
                rt.block_on(graph.query(q, &Value::Object((*c).clone()), &at))
                    .is_ok_and(|r| !r.rows.is_empty())
            })
            .unwrap_or(&all[0])
            .clone();
        let body = json!({ "params": params }).to_string();
        let path = format!("/graphs/spike/queries/{name}");
        if q.is_mutation() {
            // Double gate: readers hold invoke_query but not change.
            server.post(&path, reader, &body).expect(403);
            mutations += 1;
            continue;
        }
        reads += 1;
        let http = server.post(&path, reader, &body);
        let embedded = rt.block_on(graph.query(
            q,
            &Value::Object(params.clone()),
            &ReadAt::Branch("main".into()),
        ));
        match embedded {
            Ok(r) => {
                let j = http.expect(200).json();
                assert_eq!(j["rows"], json!(r.rows), "{name} {params:?}");
                assert_eq!(j["row_count"].as_u64(), Some(r.rows.len() as u64));
                assert_eq!(j["graph_commit_id"], commit.as_str());
                if !r.rows.is_empty() {
                    non_empty += 1;
                }
            }
            // The same refusal over HTTP (e.g. `nearest` with no embedder).
            Err(e) => {
                let j = http.expect(400).json();
                assert_eq!(j["error"], e.to_string(), "{name}");
            }
        }
    }
    eprintln!(
        "{reads} stored reads ({non_empty} with rows), {mutations} stored mutations refused to readers"
    );
    assert!(
        reads >= 20 && mutations >= 10,
        "{reads} reads, {mutations} mutations"
    );
    assert!(
        non_empty * 2 >= reads,
        "only {non_empty} of {reads} stored reads returned rows"
    );

    // A stored mutation by an analyst writes; a reader then reads it.
    let add = json!({ "params": { "slug": "co-http", "name": "HTTP Co" } }).to_string();
    let out = server
        .post("/graphs/spike/queries/add_company", analyst, &add)
        .expect(200)
        .json();
    assert_eq!(out["affected_nodes"], 1);
    let read = json!({
        "query": "query c($s: String) { match { $c: Company { slug: $s } } return { $c.name } }",
        "params": { "s": "co-http" }
    })
    .to_string();
    let rows = server
        .post("/graphs/spike/query", reader, &read)
        .expect(200)
        .json();
    assert_eq!(rows["rows"], json!([{ "name": "HTTP Co" }]), "{rows}");

    // Deny == unknown: a caller without invoke_query gets the same 404 as
    // an unknown name.
    let denied = server
        .post("/graphs/spike/queries/recent_signals", admin, "")
        .expect(404);
    let unknown = server
        .post("/graphs/spike/queries/recent_signalz", reader, "")
        .expect(404);
    assert_eq!(
        denied.body.replace("recent_signals", "X"),
        unknown.body.replace("recent_signalz", "X")
    );

    // Inline mutate: analysts yes, readers no; a mutation on /query is a 400.
    let m = json!({
        "query": "query m($s: String, $n: String) { insert Company { slug: $s, name: $n } }",
        "params": { "s": "co-2", "n": "Two" }
    })
    .to_string();
    server.post("/graphs/spike/mutate", reader, &m).expect(403);
    server.post("/graphs/spike/query", analyst, &m).expect(400);
    let done = server
        .post("/graphs/spike/mutate", analyst, &m)
        .expect(200)
        .json();
    assert_eq!(done["affected_nodes"], 1);

    // Branch operations are granted to nobody by this bundle.
    server
        .post("/graphs/spike/branches", analyst, r#"{"name":"dev"}"#)
        .expect(403);
    let branches = server
        .get("/graphs/spike/branches", reader)
        .expect(200)
        .json();
    assert_eq!(branches["branches"], json!(["main"]));

    // Export streams every entity as NDJSON.
    let exported = server
        .post("/graphs/spike/export", reader, "{}")
        .expect(200);
    assert_eq!(
        exported.header("content-type"),
        Some("application/x-ndjson")
    );
    assert_eq!(exported.body.lines().count(), seed.len() + 2);

    // Commits, newest first, with the actors from the tokens.
    let commits = server
        .get("/graphs/spike/commits", reader)
        .expect(200)
        .json();
    let first = &commits["commits"][0];
    assert_eq!(first["actor_id"], "act-analyst");
    let id = first["graph_commit_id"].as_str().expect("id");
    // Every commit names the manifest version that published it (an
    // integer, as the reference's openapi.json requires), newest first
    // and the head's is the snapshot's.
    let versions: Vec<u64> = commits["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| {
            c["graph_manifest_version"]
                .as_u64()
                .unwrap_or_else(|| panic!("no manifest version: {c}"))
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] >= w[1]), "{versions:?}");
    assert_eq!(versions.last(), Some(&1), "init publishes version 1");
    let shown = server
        .get(&format!("/graphs/spike/commits/{id}"), reader)
        .expect(200)
        .json();
    assert_eq!(
        shown["graph_manifest_version"],
        first["graph_manifest_version"]
    );
    server
        .get("/graphs/spike/commits/01NOPE", reader)
        .expect(404);
    // Snapshot and schema.
    let snap = server
        .get("/graphs/spike/snapshot", reader)
        .expect(200)
        .json();
    assert!(snap["datasets"].as_array().is_some_and(|d| !d.is_empty()));
    // Upkeep publishes manifest versions without a commit: the head's is
    // at most the snapshot's.
    assert!(
        snap["graph_manifest_version"].as_u64() >= first["graph_manifest_version"].as_u64(),
        "{snap} vs {first}"
    );
    let schema = server
        .get("/graphs/spike/schema", reader)
        .expect(200)
        .json();
    assert!(
        schema["schema_source"]
            .as_str()
            .is_some_and(|s| s.contains("node Company"))
    );
    // The OpenAPI document names our routes and the bearer scheme.
    let doc = server.get("/openapi.json", None).expect(200).json();
    assert!(doc["paths"]["/graphs/{id}/load/ndjson"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer_token"].is_object());

    let status = server.stop();
    assert!(status.success(), "exit on SIGTERM: {status}");
}
