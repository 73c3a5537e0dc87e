//! Wire shapes: every response of every route the server shares with the
//! reference server validates against an OpenAPI 3.1 document's schema for
//! that route and status (JSON Schema 2020-12, `jsonschema`):
//!
//! - always against our own document (`GET /openapi.json`), so the
//!   document clients generate code from is what the server sends;
//! - against the reference's `openapi.json` when
//!   `OMNIGRAPH_REFERENCE_OPENAPI` names a copy of it (the reference
//!   project, MIT; `.ci/run` extracts it from the machine's stored mirror
//!   of `ModernRelay/omnigraph` when there is one). The document is never
//!   committed here.
//!
//! A status a document does not list for a route is checked against its
//! `ErrorOutput` schema when it is an error (the reference lists no 404
//! for an unknown graph, which every route answers) and is a failure
//! otherwise.

use serde_json::{Value, json};

use super::support::{Server, init_graph, request, write};

const SCHEMA: &str =
    "node Person {\n  name: String @key\n  age: I32?\n}\nedge Knows: Person -> Person\n";
const DATA: &str = "{\"type\":\"Person\",\"data\":{\"name\":\"Ada\",\"age\":36}}\n{\"type\":\"Person\",\"data\":{\"name\":\"Grace\",\"age\":45}}\n{\"edge\":\"Knows\",\"from\":\"Ada\",\"to\":\"Grace\",\"data\":{}}\n";
const READ: &str = "query people($min: I32) { match { $p: Person  $p.age >= $min } return { $p.name, $p.age } order { $p.name asc } }";
const ADD: &str = "query add($n: String, $a: I32) { insert Person { name: $n, age: $a } }";

/// One OpenAPI document and what to call it in failures.
struct Doc {
    name: &'static str,
    doc: Value,
    /// How the document spells the graph path parameter.
    graph_param: &'static str,
}

impl Doc {
    /// The JSON schema `doc` gives for `method template` answering
    /// `status`: `Ok(None)` when the response is not JSON (an NDJSON
    /// stream); `Err` when the status is not documented and not an error.
    fn schema(&self, method: &str, template: &str, status: u16) -> Result<Option<Value>, String> {
        let path = template.replace("{graph_id}", self.graph_param);
        let op = self.doc["paths"][&path][method.to_lowercase()].clone();
        if op.is_null() {
            return Err(format!("{}: no operation {method} {path}", self.name));
        }
        let resp = &op["responses"][status.to_string()];
        if resp.is_null() {
            if status >= 400 && !self.doc["components"]["schemas"]["ErrorOutput"].is_null() {
                return Ok(Some(json!({"$ref": "#/components/schemas/ErrorOutput"})));
            }
            return Err(format!(
                "{}: {method} {path} does not list status {status}",
                self.name
            ));
        }
        let Some(content) = resp["content"].as_object() else {
            return Ok(None);
        };
        Ok(content
            .iter()
            .find(|(k, _)| k.contains("json") && !k.contains("ndjson"))
            .map(|(_, v)| v["schema"].clone()))
    }

    /// The schema violations of `body` for that response, as lines.
    fn violations(
        &self,
        method: &str,
        template: &str,
        status: u16,
        body: &str,
    ) -> Result<Vec<String>, String> {
        let Some(schema) = self.schema(method, template, status)? else {
            return Ok(Vec::new());
        };
        let instance: Value = serde_json::from_str(body)
            .map_err(|e| format!("{method} {template} {status}: not JSON ({e}): {body}"))?;
        // The response schema with the document's components beside it, so
        // `#/components/schemas/...` resolves.
        let mut root = match schema {
            Value::Object(m) => Value::Object(m),
            other => json!({ "allOf": [other] }),
        };
        root["components"] = self.doc["components"].clone();
        let v = jsonschema::draft202012::new(&root)
            .map_err(|e| format!("{}: schema of {method} {template}: {e}", self.name))?;
        Ok(v.iter_errors(&instance)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect())
    }

    /// What in `instance` breaks the document's component schema `name`
    /// (a missing component is itself reported).
    fn component_violations(&self, name: &str, instance: &Value) -> Vec<String> {
        if self.doc["components"]["schemas"][name].is_null() {
            return vec![format!("has no component {name}")];
        }
        let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
        root["components"] = self.doc["components"].clone();
        match jsonschema::draft202012::new(&root) {
            Ok(v) => v
                .iter_errors(instance)
                .map(|e| format!("at `{}`: {e}", e.instance_path()))
                .collect(),
            Err(e) => vec![format!("schema {name}: {e}")],
        }
    }
}

#[test]
fn every_shared_route_answers_in_the_documented_shape() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let policy = write(
        tmp.path(),
        "policy.yaml",
        "version: 1\ngroups:\n  all: [ada]\nrules:\n  - id: all\n    allow:\n      actors: { group: all }\n      actions: [read, change, export, invoke_query, schema_apply, branch_create, branch_delete, branch_merge]\n",
    );
    let stored = tmp.path().join("stored");
    std::fs::create_dir_all(&stored).expect("stored dir");
    std::fs::write(stored.join("q.gq"), format!("{READ}\n{ADD}\n")).expect("stored queries");
    let server_policy = write(
        tmp.path(),
        "server-policy.yaml",
        "version: 1\ngroups:\n  ops: [ada]\nrules:\n  - id: ops\n    allow:\n      actors: { group: ops }\n      actions: [graph_list]\n",
    );
    let server = Server::start(
        tmp.path(),
        &[
            "--graph",
            &format!("g={uri}"),
            "--policy",
            &format!("g={policy}"),
            "--server-policy",
            &server_policy,
            "--queries",
            &format!("g={}", stored.display()),
        ],
        &[(
            "OMNIGRAPH_SERVER_BEARER_TOKENS_JSON",
            "{\"ada\": \"tok\", \"bob\": \"tok-b\"}",
        )],
    );
    let ours = server.get("/openapi.json", None).expect(200).json();
    let mut docs = vec![Doc {
        name: "our openapi.json",
        doc: ours,
        graph_param: "{id}",
    }];
    match std::env::var("OMNIGRAPH_REFERENCE_OPENAPI") {
        Ok(p) if !p.is_empty() => {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("OMNIGRAPH_REFERENCE_OPENAPI={p}: {e}"));
            docs.push(Doc {
                name: "the reference's openapi.json",
                doc: serde_json::from_str(&text).expect("the reference document is JSON"),
                graph_param: "{graph_id}",
            });
        }
        _ => eprintln!(
            "OMNIGRAPH_REFERENCE_OPENAPI not set: responses checked against our own document only"
        ),
    }

    let tok = Some("tok");
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0usize;
    // Sends one request, asserts its status and checks its body against
    // every document; returns the body.
    let mut call = |method: &str,
                    template: &str,
                    path: &str,
                    token: Option<&str>,
                    body: Option<&str>,
                    want: u16|
     -> Value {
        let r = request(&server.addr, method, path, token, body.map(str::as_bytes));
        assert_eq!(
            r.status, want,
            "{method} {path} answered {}: {}",
            r.status, r.body
        );
        for d in &docs {
            match d.violations(method, template, r.status, &r.body) {
                Ok(v) => failures.extend(
                    v.into_iter()
                        .map(|e| format!("{}: {method} {path} {}: {e}", d.name, r.status)),
                ),
                Err(e) => failures.push(e),
            }
        }
        checked += 1;
        serde_json::from_str(&r.body).unwrap_or(Value::Null)
    };

    call("GET", "/healthz", "/healthz", None, None, 200);
    call("GET", "/graphs", "/graphs", tok, None, 200);
    call("GET", "/graphs", "/graphs", None, None, 401);
    call("GET", "/graphs", "/graphs", Some("tok-b"), None, 403);

    let envelope = json!({"data": DATA, "mode": "merge"}).to_string();
    let loaded = call(
        "POST",
        "/graphs/{graph_id}/load",
        "/graphs/g/load",
        tok,
        Some(&envelope),
        200,
    );
    assert_eq!(
        loaded["uri"],
        json!(uri),
        "the envelope load names the graph"
    );
    assert_eq!(loaded["total_entities"], json!(3));
    let more = "{\"type\":\"Person\",\"data\":{\"name\":\"Edsger\",\"age\":72}}\n";
    call(
        "POST",
        "/graphs/{graph_id}/ingest",
        "/graphs/g/ingest",
        tok,
        Some(&json!({"data": more, "mode": "merge"}).to_string()),
        200,
    );
    let line = "{\"type\":\"Person\",\"data\":{\"name\":\"Barbara\",\"age\":50}}\n";
    call(
        "POST",
        "/graphs/{graph_id}/load/ndjson",
        "/graphs/g/load/ndjson?mode=append",
        tok,
        Some(line),
        200,
    );
    // The same id again, strictly: 409 with the reference's `key_conflict`.
    let conflict = call(
        "POST",
        "/graphs/{graph_id}/load/ndjson",
        "/graphs/g/load/ndjson?mode=append",
        tok,
        Some(line),
        409,
    );
    assert_eq!(
        conflict["key_conflict"]["entity_kind"], "node",
        "{conflict}"
    );
    assert_eq!(
        conflict["key_conflict"]["type_name"], "Person",
        "{conflict}"
    );
    assert!(
        conflict["key_conflict"]["entity_id"].is_string(),
        "{conflict}"
    );
    call(
        "POST",
        "/graphs/{graph_id}/load/ndjson",
        "/graphs/g/load/ndjson?mode=append",
        tok,
        Some("{\"type\":\"Nope\",\"data\":{}}\n"),
        400,
    );
    call(
        "POST",
        "/graphs/{graph_id}/load/ndjson",
        "/graphs/g/load/ndjson?mode=merge&branch=missing",
        tok,
        Some(line),
        404,
    );
    // Authorization comes before the engine is asked whether the branch
    // exists: a caller without `change` hears 403, not 404.
    call(
        "POST",
        "/graphs/{graph_id}/load/ndjson",
        "/graphs/g/load/ndjson?mode=merge&branch=missing",
        Some("tok-b"),
        Some(line),
        403,
    );

    call(
        "GET",
        "/graphs/{graph_id}/snapshot",
        "/graphs/g/snapshot",
        tok,
        None,
        200,
    );
    call(
        "GET",
        "/graphs/{graph_id}/snapshot",
        "/graphs/g/snapshot",
        Some("tok-b"),
        None,
        403,
    );
    call(
        "GET",
        "/graphs/{graph_id}/snapshot",
        "/graphs/nope/snapshot",
        tok,
        None,
        404,
    );
    let source = call(
        "GET",
        "/graphs/{graph_id}/schema",
        "/graphs/g/schema",
        tok,
        None,
        200,
    );

    let read = json!({"query_source": READ, "params": {"min": 30}}).to_string();
    let rows = call(
        "POST",
        "/graphs/{graph_id}/query",
        "/graphs/g/query",
        tok,
        Some(&read),
        200,
    );
    assert_eq!(rows["row_count"], json!(4), "{rows}");
    call(
        "POST",
        "/graphs/{graph_id}/read",
        "/graphs/g/read",
        tok,
        Some(&read),
        200,
    );
    let bad = json!({"query_source": "query q() { match { $p: Nope } return { $p.name } }"});
    call(
        "POST",
        "/graphs/{graph_id}/query",
        "/graphs/g/query",
        tok,
        Some(&bad.to_string()),
        400,
    );
    call(
        "POST",
        "/graphs/{graph_id}/query",
        "/graphs/g/query",
        None,
        Some(&read),
        401,
    );

    let add = json!({"query_source": ADD, "params": {"n": "Alan", "a": 41}}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/mutate",
        "/graphs/g/mutate",
        tok,
        Some(&add),
        200,
    );
    let add2 = json!({"query_source": ADD, "params": {"n": "Frances", "a": 40}}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/change",
        "/graphs/g/change",
        tok,
        Some(&add2),
        200,
    );
    let missing = json!({"query_source": ADD, "params": {"n": "Radia"}}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/mutate",
        "/graphs/g/mutate",
        tok,
        Some(&missing),
        400,
    );
    // Authorization comes before the source is compiled: a caller without
    // `change` hears 403 even for a query that would not compile.
    let broken = json!({"query_source": "query m( { insert"}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/mutate",
        "/graphs/g/mutate",
        Some("tok-b"),
        Some(&broken),
        403,
    );
    call(
        "POST",
        "/graphs/{graph_id}/mutate",
        "/graphs/g/mutate",
        tok,
        Some(&broken),
        400,
    );
    // The same for a read: `read` is decided before the source compiles.
    let broken_read = json!({"query_source": "query q( { match"}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/query",
        "/graphs/g/query",
        Some("tok-b"),
        Some(&broken_read),
        403,
    );
    call(
        "POST",
        "/graphs/{graph_id}/query",
        "/graphs/g/query",
        tok,
        Some(&broken_read),
        400,
    );

    call(
        "GET",
        "/graphs/{graph_id}/queries",
        "/graphs/g/queries",
        tok,
        None,
        200,
    );
    call(
        "POST",
        "/graphs/{graph_id}/queries/{name}",
        "/graphs/g/queries/people",
        tok,
        Some("{\"params\":{\"min\":40}}"),
        200,
    );
    call(
        "POST",
        "/graphs/{graph_id}/queries/{name}",
        "/graphs/g/queries/add",
        tok,
        Some("{\"params\":{\"n\":\"Ken\",\"a\":60}}"),
        200,
    );
    call(
        "POST",
        "/graphs/{graph_id}/queries/{name}",
        "/graphs/g/queries/nope",
        tok,
        Some("{}"),
        404,
    );

    call(
        "GET",
        "/graphs/{graph_id}/branches",
        "/graphs/g/branches",
        tok,
        None,
        200,
    );
    let fork = json!({"name": "feat/x", "from": "main"}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/branches",
        "/graphs/g/branches",
        tok,
        Some(&fork),
        200,
    );
    call(
        "POST",
        "/graphs/{graph_id}/branches",
        "/graphs/g/branches",
        tok,
        Some(&fork),
        409,
    );
    let on_branch =
        json!({"query_source": ADD, "params": {"n": "Leslie", "a": 80}, "branch": "feat/x"});
    call(
        "POST",
        "/graphs/{graph_id}/mutate",
        "/graphs/g/mutate",
        tok,
        Some(&on_branch.to_string()),
        200,
    );
    let merge = json!({"source": "feat/x", "target": "main"}).to_string();
    call(
        "POST",
        "/graphs/{graph_id}/branches/merge",
        "/graphs/g/branches/merge",
        tok,
        Some(&merge),
        200,
    );
    call(
        "DELETE",
        "/graphs/{graph_id}/branches/{branch}",
        "/graphs/g/branches/feat%2Fx",
        tok,
        None,
        200,
    );
    call(
        "DELETE",
        "/graphs/{graph_id}/branches/{branch}",
        "/graphs/g/branches/feat%2Fx",
        tok,
        None,
        404,
    );

    let commits = call(
        "GET",
        "/graphs/{graph_id}/commits",
        "/graphs/g/commits",
        tok,
        None,
        200,
    );
    let head = commits["commits"][0]["graph_commit_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a commit id: {commits}"))
        .to_string();
    call(
        "GET",
        "/graphs/{graph_id}/commits/{commit_id}",
        &format!("/graphs/g/commits/{head}"),
        tok,
        None,
        200,
    );
    call(
        "GET",
        "/graphs/{graph_id}/commits/{commit_id}",
        "/graphs/g/commits/01ZZZZZZZZZZZZZZZZZZZZZZZZ",
        tok,
        None,
        404,
    );

    // Change routes: a commit's changes (one page, then the rest), the
    // parentless first commit (409), the feed from the beginning, a
    // refused cursor (400), a limit above the ceiling (413).
    let first = call(
        "GET",
        "/graphs/{graph_id}/commits/{commit_id}/changes",
        &format!("/graphs/g/commits/{head}/changes?limit=1"),
        tok,
        None,
        200,
    );
    assert!(first["cause"]["graph_commit_id"].is_string(), "{first}");
    let genesis = commits["commits"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["graph_commit_id"].as_str())
        .expect("the first commit")
        .to_string();
    let refused = call(
        "GET",
        "/graphs/{graph_id}/commits/{commit_id}/changes",
        &format!("/graphs/g/commits/{genesis}/changes"),
        tok,
        None,
        409,
    );
    assert_eq!(
        refused["change_diff_refusal"]["reason"],
        "parentless_commit"
    );
    call(
        "GET",
        "/graphs/{graph_id}/commits/{commit_id}/changes",
        &format!("/graphs/g/commits/{head}/changes?limit=10001"),
        tok,
        None,
        413,
    );
    let feed = call(
        "GET",
        "/graphs/{graph_id}/changes",
        "/graphs/g/changes?start=beginning&kind=node&kind=edge",
        tok,
        None,
        200,
    );
    assert!(feed["cursor"].is_string() && !feed["blocks"].as_array().expect("blocks").is_empty());
    call(
        "GET",
        "/graphs/{graph_id}/changes",
        "/graphs/g/changes?cursor=ogc1.bogus",
        tok,
        None,
        400,
    );
    let r = request(
        &server.addr,
        "POST",
        "/graphs/g/changes/baseline",
        tok,
        Some(b"{}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let last: Value = serde_json::from_str(r.body.lines().last().expect("a line")).expect("json");
    let mut late: Vec<String> = Vec::new();
    for d in &docs {
        late.extend(
            d.component_violations("ChangeBaselineRecord", &last)
                .into_iter()
                .map(|e| format!("{}: the baseline's last line {e}", d.name)),
        );
    }

    let src = source["schema_source"].as_str().expect("schema_source");
    let grown = format!("{src}\nnode Topic {{\n  label: String @key\n}}\n");
    call(
        "POST",
        "/graphs/{graph_id}/schema/apply",
        "/graphs/g/schema/apply",
        tok,
        Some(&json!({"schema_source": grown}).to_string()),
        200,
    );
    call(
        "POST",
        "/graphs/{graph_id}/schema/apply",
        "/graphs/g/schema/apply",
        tok,
        Some(&json!({"schema_source": "node {"}).to_string()),
        400,
    );

    // Export streams NDJSON (no JSON schema): each line is one entity.
    let r = request(&server.addr, "POST", "/graphs/g/export", tok, Some(b"{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    for line in r.body.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("type").is_some() || v.get("edge").is_some(), "{line}");
    }

    failures.extend(late);
    assert!(checked >= 41, "only {checked} responses checked");
    assert!(
        failures.is_empty(),
        "{} responses do not match their documented shape:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_wrong_shape_is_caught() {
    // The checker itself: a response missing a required field, or with a
    // field of the wrong type, is reported; the right one is not.
    let doc = Doc {
        name: "test document",
        graph_param: "{id}",
        doc: json!({
            "paths": {"/graphs/{id}/commits": {"get": {"responses": {"200": {"content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/L"}}}}}}}},
            "components": {"schemas": {
                "L": {"type": "object", "required": ["commits"], "properties": {
                    "commits": {"type": "array", "items": {"$ref": "#/components/schemas/C"}}}},
                "C": {"type": "object", "required": ["graph_manifest_version"], "properties": {
                    "graph_manifest_version": {"type": "integer", "minimum": 0}}},
                "ErrorOutput": {"type": "object", "required": ["error"]}
            }}
        }),
    };
    let t = "/graphs/{graph_id}/commits";
    let good = r#"{"commits":[{"graph_manifest_version":3}]}"#;
    assert_eq!(doc.violations("GET", t, 200, good), Ok(vec![]));
    let null = r#"{"commits":[{"graph_manifest_version":null}]}"#;
    assert_eq!(doc.violations("GET", t, 200, null).map(|v| v.len()), Ok(1));
    assert_eq!(
        doc.violations("GET", t, 200, r#"{}"#).map(|v| v.len()),
        Ok(1)
    );
    // An undocumented error status is held to ErrorOutput; an undocumented
    // success is a failure.
    assert_eq!(
        doc.violations("GET", t, 404, r#"{"x":1}"#).map(|v| v.len()),
        Ok(1)
    );
    assert!(doc.violations("GET", t, 201, good).is_err());
}
