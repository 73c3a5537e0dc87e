//! `@embed` and `nearest($v, "text")` against a local provider that speaks
//! OpenAI's embeddings API and Gemini's `embedContent` /
//! `batchEmbedContents` (started here on 127.0.0.1, deterministic
//! vectors), and the vector index.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use omnigraph::embed::{EmbeddingConfig, EmbeddingError, mock_vector};
use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, Graph, ReadAt};
use serde_json::{Value, json};

use crate::support::{counts, head, omnigraph};

/// What the fake provider does to the next requests.
#[derive(Default)]
pub struct Behaviour {
    /// Answer this many requests with 429 first.
    pub fail_429: AtomicUsize,
    /// `Some(n)`: serve n more requests, then answer HTTP 500.
    pub allow: Mutex<Option<usize>>,
    /// Sleep this long before answering, ms.
    pub delay_ms: AtomicU64,
    /// `nan`, `zero` or `short` vectors instead of good ones.
    pub bad: Mutex<Option<&'static str>>,
    /// Refuse requests without this key (401).
    pub key: Mutex<String>,
}

/// One request the provider saw: its path and JSON body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub body: Value,
}

/// A provider on 127.0.0.1 answering until the test ends.
pub struct FakeProvider {
    pub base: String,
    pub behaviour: Arc<Behaviour>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

fn vector_for(text: &str, dim: usize, bad: Option<&str>) -> Vec<f32> {
    match bad {
        Some("nan") => vec![f32::NAN; dim],
        Some("zero") => vec![0.0; dim],
        Some("short") => vec![1.0; dim.saturating_sub(1).max(1)],
        _ => mock_vector(text, dim),
    }
}

impl FakeProvider {
    pub fn start() -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let behaviour = Arc::new(Behaviour::default());
        *behaviour.key.lock().expect("lock") = "test-key".into();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s, st) = (behaviour.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (b, s) = (b.clone(), s.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() || line.is_empty() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0usize;
                    let mut auth = String::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("authorization:")
                            || lower.starts_with("x-goog-api-key:")
                        {
                            auth = h
                                .split_once(':')
                                .map(|x| x.1.trim().to_string())
                                .unwrap_or_default();
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = reader.read_exact(&mut body);
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    s.lock().expect("lock").push(Seen {
                        path: path.clone(),
                        body: body.clone(),
                    });
                    // Decided on arrival; a delayed answer is sent later.
                    let delay = b.delay_ms.load(Ordering::SeqCst);
                    let key = b.key.lock().expect("lock").clone();
                    let (status, out) = if !auth.ends_with(&key) {
                        (401, json!({"error": {"message": "bad key"}}))
                    } else if b
                        .fail_429
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        (429, json!({"error": {"message": "slow down"}}))
                    } else if {
                        let mut allow = b.allow.lock().expect("lock");
                        match allow.as_mut() {
                            Some(0) => true,
                            Some(n) => {
                                *n -= 1;
                                false
                            }
                            None => false,
                        }
                    } {
                        (500, json!({"error": {"message": "provider down"}}))
                    } else {
                        let bad = *b.bad.lock().expect("lock");
                        if path.ends_with("/embeddings") {
                            let dim = body["dimensions"].as_u64().unwrap_or(8) as usize;
                            let data: Vec<Value> = body["input"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .enumerate()
                                .map(|(i, t)| {
                                    json!({"index": i, "embedding": vector_for(t.as_str().unwrap_or(""), dim, bad)})
                                })
                                .collect();
                            (200, json!({"data": data, "model": "m"}))
                        } else if path.ends_with(":embedContent") {
                            let dim = body["outputDimensionality"].as_u64().unwrap_or(8) as usize;
                            let t = body["content"]["parts"][0]["text"].as_str().unwrap_or("");
                            (
                                200,
                                json!({"embedding": {"values": vector_for(t, dim, bad)}}),
                            )
                        } else if path.ends_with(":batchEmbedContents") {
                            let items: Vec<Value> = body["requests"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                                .iter()
                                .map(|r| {
                                    let dim =
                                        r["outputDimensionality"].as_u64().unwrap_or(8) as usize;
                                    let t = r["content"]["parts"][0]["text"].as_str().unwrap_or("");
                                    json!({"values": vector_for(t, dim, bad)})
                                })
                                .collect();
                            (200, json!({"embeddings": items}))
                        } else {
                            (404, json!({"error": "no such route"}))
                        }
                    };
                    if delay > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(delay));
                    }
                    let text = out.to_string();
                    let reason = match status {
                        200 => "OK",
                        401 => "Unauthorized",
                        429 => "Too Many Requests",
                        404 => "Not Found",
                        _ => "Internal Server Error",
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = conn.flush();
                });
            }
        });
        FakeProvider {
            base: format!("http://{addr}"),
            behaviour,
            seen,
            stop,
        }
    }

    /// The environment a client of this provider as `provider` needs.
    pub fn env(&self, provider: &str) -> Vec<(String, String)> {
        let (base, key) = match provider {
            "gemini" => (format!("{}/v1beta", self.base), "GEMINI_API_KEY"),
            _ => (format!("{}/v1", self.base), "OPENAI_API_KEY"),
        };
        vec![
            ("OMNIGRAPH_EMBED_PROVIDER".into(), provider.into()),
            ("OMNIGRAPH_EMBED_BASE_URL".into(), base),
            ("OMNIGRAPH_EMBED_MODEL".into(), "test-model".into()),
            (key.into(), "test-key".into()),
            ("OMNIGRAPH_EMBED_RETRY_BACKOFF_MS".into(), "10".into()),
            ("OMNIGRAPH_EMBED_BATCH_SIZE".into(), "4".into()),
        ]
    }

    /// A client configuration for this provider, with `extra` variables.
    pub fn config(&self, provider: &str, extra: &[(&str, &str)]) -> EmbeddingConfig {
        let mut env: std::collections::HashMap<String, String> =
            self.env(provider).into_iter().collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        EmbeddingConfig::from_lookup(&|k| env.get(k).cloned()).expect("config")
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

const SCHEMA: &str = r#"
node Doc {
    slug: String @key
    kind: String?
    text: String
    embedding: Vector(8) @embed("text") @index
}
"#;

fn docs(n: usize) -> String {
    const TOPICS: [&str; 5] = [
        "sovereign ai infrastructure",
        "weather report rain",
        "football match goals",
        "bread baking flour",
        "ocean tides moon",
    ];
    (0..n)
        .map(|i| {
            json!({"type": "Doc", "data": {"slug": format!("d{i}"), "kind": if i % 2 == 0 {"even"} else {"odd"},
                   "text": format!("{} {i}", TOPICS[i % TOPICS.len()])}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn graph(dir: &std::path::Path, config: EmbeddingConfig) -> Graph {
    Graph::init(dir.join("g").to_str().expect("utf8"), "s.pg", SCHEMA)
        .await
        .expect("init")
        .with_embedding(config)
}

async fn load(g: &Graph, text: &str) -> Result<omnigraph::engine::WriteReport, EngineError> {
    g.load(
        std::io::Cursor::new(text.as_bytes().to_vec()),
        LoadMode::Merge,
        "main",
        None,
        "t",
    )
    .await
}

const NEAREST: &str = r#"
query near($q: String) {
    match { $d: Doc }
    return { $d.slug }
    order { nearest($d.embedding, $q) }
    limit 3
}
query near_even($q: String) {
    match { $d: Doc { kind: "even" } }
    return { $d.slug }
    order { nearest($d.embedding, $q) }
    limit 3
}
"#;

async fn near(g: &Graph, name: &str, q: &str) -> Result<Vec<String>, EngineError> {
    let compiled = omnigraph::query::compile_queries(&g.catalog(), NEAREST);
    assert!(!compiled.has_errors());
    let query = compiled
        .queries
        .iter()
        .find(|x| x.name == name)
        .expect("query");
    let r = g
        .query(query, &json!({ "q": q }), &ReadAt::Branch("main".into()))
        .await?;
    Ok(r.rows
        .iter()
        .map(|r| r["slug"].as_str().unwrap_or("").to_string())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_embeds_in_batches_and_nearest_text_finds_the_topic() {
    for provider in ["openai-compatible", "gemini"] {
        let p = FakeProvider::start();
        let tmp = tempfile::tempdir().expect("tmp");
        let g = graph(tmp.path(), p.config(provider, &[])).await;
        load(&g, &docs(10)).await.expect("load");
        // 10 texts in batches of 4: 3 requests, never one per row.
        let seen = p.requests();
        assert_eq!(seen.len(), 3, "{provider}: {seen:?}");
        if provider == "gemini" {
            assert!(
                seen[0]
                    .path
                    .ends_with("/models/test-model:batchEmbedContents")
            );
            assert_eq!(
                seen[0].body["requests"][0]["taskType"],
                "RETRIEVAL_DOCUMENT"
            );
            assert_eq!(seen[0].body["requests"][0]["outputDimensionality"], 8);
        } else {
            assert!(seen[0].path.ends_with("/v1/embeddings"));
            assert_eq!(seen[0].body["dimensions"], 8);
            assert_eq!(seen[0].body["model"], "test-model");
        }
        // Stored vectors are unit length.
        let exported = crate::support::export_sorted(&g, &ReadAt::Branch("main".into())).await;
        for line in &exported {
            let v: Value = serde_json::from_str(line).expect("json");
            let e: Vec<f64> = serde_json::from_value(v["data"]["embedding"].clone()).expect("vec");
            let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
        let before = p.requests().len();
        let hits = near(&g, "near", "weather rain").await.expect("nearest");
        assert!(
            ["d1", "d6"].contains(&hits[0].as_str()),
            "{provider}: {hits:?}"
        );
        let seen = p.requests();
        assert_eq!(seen.len(), before + 1);
        if provider == "gemini" {
            assert!(seen[before].path.ends_with(":embedContent"));
            assert_eq!(seen[before].body["taskType"], "RETRIEVAL_QUERY");
        }
        // Text that differs per row is refused, not scored as null.
        let per_row = omnigraph::query::compile_queries(
            &g.catalog(),
            "query pr() { match { $a: Doc  $b: Doc { slug: \"d1\" } } return { $a.slug } order { nearest($a.embedding, $b.text) } limit 3 }",
        );
        assert!(!per_row.has_errors(), "{:?}", per_row.diagnostics);
        let err = g
            .query(
                &per_row.queries[0],
                &json!({}),
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect_err("per-row text");
        assert!(
            err.to_string().contains("different text for every row"),
            "{err}"
        );
        // A filter combined with `nearest`: the top of the matching rows.
        let even = near(&g, "near_even", "weather rain")
            .await
            .expect("nearest");
        assert_eq!(even[0], "d6", "{even:?}");
        assert_eq!(even.len(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_then_succeeds() {
    let p = FakeProvider::start();
    p.behaviour.fail_429.store(2, Ordering::SeqCst);
    let tmp = tempfile::tempdir().expect("tmp");
    let g = graph(tmp.path(), p.config("openai-compatible", &[])).await;
    load(&g, &docs(3)).await.expect("load after retries");
    assert_eq!(p.requests().len(), 3, "two 429s then one success");
    // Out of attempts: a clear error.
    p.behaviour.fail_429.store(10, Ordering::SeqCst);
    let g2 = graph(
        &tmp.path().join("two"),
        p.config(
            "openai-compatible",
            &[("OMNIGRAPH_EMBED_RETRY_ATTEMPTS", "2")],
        ),
    )
    .await;
    let err = load(&g2, &docs(3)).await.expect_err("gives up");
    assert!(
        matches!(
            err,
            EngineError::Embedding(EmbeddingError::Provider { attempts: 2, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_bad_vectors_and_a_failed_batch_write_nothing() {
    let p = FakeProvider::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let g = graph(
        tmp.path(),
        p.config(
            "openai-compatible",
            &[("OMNIGRAPH_EMBED_DEADLINE_MS", "300")],
        ),
    )
    .await;
    load(&g, &docs(2)).await.expect("first load");
    let main = ReadAt::Branch("main".into());
    let (before, head_before) = (counts(&g, &main).await, head(&g, "main").await);
    let unchanged = |g: &Graph| {
        let (before, head_before) = (before.clone(), head_before.clone());
        let g = g.clone();
        async move {
            assert_eq!(counts(&g, &ReadAt::Branch("main".into())).await, before);
            assert_eq!(head(&g, "main").await, head_before);
        }
    };

    // Past the deadline.
    p.behaviour.delay_ms.store(2_000, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = load(&g, &docs(6)).await.expect_err("deadline");
    assert!(
        matches!(
            err,
            EngineError::Embedding(EmbeddingError::Deadline {
                deadline_ms: 300,
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("OMNIGRAPH_EMBED_DEADLINE_MS"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(1_800));
    unchanged(&g).await;
    p.behaviour.delay_ms.store(0, Ordering::SeqCst);

    // Unusable vectors.
    for bad in ["nan", "zero", "short"] {
        *p.behaviour.bad.lock().expect("lock") = Some(bad);
        let err = load(&g, &docs(6)).await.expect_err(bad);
        assert!(
            matches!(
                err,
                EngineError::Embedding(EmbeddingError::BadVector { .. })
            ),
            "{bad}: {err}"
        );
        unchanged(&g).await;
    }
    *p.behaviour.bad.lock().expect("lock") = None;

    // The provider fails after the first batch of four: nothing written.
    *p.behaviour.allow.lock().expect("lock") = Some(1);
    let err = load(&g, &docs(10)).await.expect_err("mid-load failure");
    assert!(err.to_string().contains("500"), "{err}");
    unchanged(&g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_fill_and_refresh_embeddings_and_models_must_match() {
    let p = FakeProvider::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let g = graph(tmp.path(), p.config("openai-compatible", &[])).await;
    load(&g, &docs(5)).await.expect("load");
    let src = r#"
query add($slug: String, $text: String) { insert Doc { slug: $slug, text: $text } }
query retext($slug: String, $text: String) { update Doc set { text: $text } where slug = $slug }
"#;
    let compiled = omnigraph::query::compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let q = |n: &str| {
        compiled
            .queries
            .iter()
            .find(|x| x.name == n)
            .expect("q")
            .clone()
    };
    g.mutate(
        &q("add"),
        &json!({"slug": "new", "text": "volcano lava eruption"}),
        "main",
        "t",
    )
    .await
    .expect("insert");
    assert_eq!(near(&g, "near", "volcano lava").await.expect("n")[0], "new");
    g.mutate(
        &q("retext"),
        &json!({"slug": "d0", "text": "volcano lava eruption ash"}),
        "main",
        "t",
    )
    .await
    .expect("update");
    let hits = near(&g, "near", "volcano lava eruption ash")
        .await
        .expect("n");
    assert_eq!(
        hits[0], "d0",
        "the updated text was embedded again: {hits:?}"
    );

    // Only the vectors a write must fill are embedded: an update of
    // another property leaves a cleared (null) vector alone, with no
    // provider call.
    let tmp3 = tempfile::tempdir().expect("tmp");
    let g3 = Graph::init(
        tmp3.path().join("g").to_str().expect("utf8"),
        "s.pg",
        &SCHEMA.replace("embedding: Vector(8)", "embedding: Vector(8)?"),
    )
    .await
    .expect("init")
    .with_embedding(p.config("openai-compatible", &[]));
    load(&g3, &docs(3)).await.expect("load");
    g3.embed_branch(
        "main",
        omnigraph::engine::EmbedMode::Clean,
        &[],
        10,
        "t",
        &|_| {},
    )
    .await
    .expect("clean");
    let src3 = "query rekind($slug: String) { update Doc set { kind: \"x\" } where slug = $slug }";
    let c3 = omnigraph::query::compile_queries(&g3.catalog(), src3);
    let sent = p.requests().len();
    g3.mutate(&c3.queries[0], &json!({"slug": "d1"}), "main", "t")
        .await
        .expect("update");
    assert_eq!(
        p.requests().len(),
        sent,
        "no provider call for an unrelated update"
    );

    // A recorded model the embedder does not use: refused, typed, for
    // text queries and for writes that would embed.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let g2 = Graph::init(
        tmp2.path().join("g").to_str().expect("utf8"),
        "s.pg",
        &SCHEMA.replace(
            r#"@embed("text")"#,
            r#"@embed("text", model="other-model")"#,
        ),
    )
    .await
    .expect("init")
    .with_embedding(p.config("openai-compatible", &[]));
    let err = load(&g2, &docs(2))
        .await
        .expect_err("a write in another model's space");
    assert!(
        matches!(
            err,
            EngineError::Embedding(EmbeddingError::ModelMismatch { .. })
        ),
        "{err}"
    );
    let given: Vec<String> = docs(2)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json");
            v["data"]["embedding"] = json!([1, 0, 0, 0, 0, 0, 0, 0]);
            v.to_string()
        })
        .collect();
    load(&g2, &given.join("\n"))
        .await
        .expect("vectors given: nothing to embed");
    let err = near(&g2, "near", "rain").await.expect_err("model mismatch");
    assert!(
        matches!(
            err,
            EngineError::Embedding(EmbeddingError::ModelMismatch { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("OMNIGRAPH_EMBED_MODEL"), "{err}");
}

#[test]
fn the_embed_command_backfills_a_graph_and_a_file() {
    let p = FakeProvider::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.pg");
    std::fs::write(
        &schema,
        SCHEMA.replace("embedding: Vector(8)", "embedding: Vector(8)?"),
    )
    .expect("schema");
    let uri = tmp.path().join("g");
    let uri = uri.to_str().expect("utf8");
    let run = |args: &[&str], env: &[(String, String)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("OMNIGRAPH_EMBEDDINGS_MOCK")
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let out = omnigraph(&["init", "--schema", schema.to_str().expect("utf8"), uri]);
    assert!(out.status.success());
    // Rows with explicit null vectors load without a provider (nullable).
    let data = tmp.path().join("d.jsonl");
    let with_nulls: Vec<String> = docs(9)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json");
            v["data"]["embedding"] = Value::Null;
            v.to_string()
        })
        .collect();
    std::fs::write(&data, with_nulls.join("\n")).expect("data");
    let env = p.env("openai-compatible");
    let (ok, _, err) = run(
        &[
            "load",
            "--data",
            data.to_str().expect("utf8"),
            "--mode",
            "overwrite",
            uri,
        ],
        &env,
    );
    assert!(ok, "{err}");
    let loaded = p.requests().len();
    assert_eq!(
        loaded, 3,
        "the load filled the null vectors: 9 texts in batches of 4"
    );

    // Clear them, then backfill in chunks of 4 rows: 3 commits.
    let (ok, out, err) = run(&["embed", uri, "--clean", "--json"], &env);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["written"]["node:Doc.embedding"], 9, "{r}");
    let (ok, out, err) = run(&["embed", uri, "--chunk-rows", "4", "--json"], &env);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["written"]["node:Doc.embedding"], 9, "{r}");
    assert_eq!(r["commits"].as_array().map(Vec::len), Some(3), "{r}");
    // Resumable: nothing is missing now, nothing is sent.
    let sent = p.requests().len();
    let (ok, out, err) = run(&["embed", uri, "--json"], &env);
    assert!(ok, "{err}");
    assert_eq!(p.requests().len(), sent, "{out}");
    // A provider that refuses: a clear error, exit non-zero.
    let mut bad_env = env.clone();
    bad_env.retain(|(k, _)| k != "OPENAI_API_KEY");
    let (ok, _, err) = run(&["embed", uri, "--reembed-all"], &bad_env);
    assert!(!ok);
    assert!(err.contains("OPENAI_API_KEY"), "{err}");

    // The file pipeline: fills the missing, keeps the given, cleans.
    let input = tmp.path().join("in.jsonl");
    let output = tmp.path().join("out.jsonl");
    let mut lines: Vec<String> = docs(3).lines().map(str::to_string).collect();
    lines.push(json!({"type": "Doc", "data": {"slug": "given", "text": "x", "embedding": [1,0,0,0,0,0,0,0]}}).to_string());
    std::fs::write(&input, lines.join("\n")).expect("input");
    let (ok, out, err) = run(
        &[
            "embed",
            "--input",
            input.to_str().expect("utf8"),
            "--output",
            output.to_str().expect("utf8"),
            "--spec",
            schema.to_str().expect("utf8"),
            "--json",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (
            r["records"].as_u64(),
            r["selected_records"].as_u64(),
            r["embedded_records"].as_u64()
        ),
        (Some(4), Some(4), Some(3)),
        "{r}"
    );
    let written: Vec<Value> = std::fs::read_to_string(&output)
        .expect("out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(written.len(), 4);
    assert!(
        written[..3]
            .iter()
            .all(|v| v["data"]["embedding"].as_array().map(Vec::len) == Some(8))
    );
    assert_eq!(
        written[3]["data"]["embedding"],
        json!([1, 0, 0, 0, 0, 0, 0, 0])
    );
    // The filled file loads as is.
    let (ok, _, err) = run(
        &[
            "load",
            "--data",
            output.to_str().expect("utf8"),
            "--mode",
            "merge",
            uri,
        ],
        &[],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        &[
            "embed",
            "--input",
            output.to_str().expect("utf8"),
            "--output",
            "-",
            "--spec",
            schema.to_str().expect("utf8"),
            "--clean",
            "--select",
            "Doc:slug=given",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let cleaned: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(cleaned[3]["data"].get("embedding").is_none(), "{out}");
    assert!(cleaned[0]["data"].get("embedding").is_some(), "{out}");
}

/// A table past the index threshold gets a vector index (upkeep); a
/// top-k `nearest` then reads only the rows the index returns, with recall
/// against exact search, and a filtered `nearest` stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_searched_through_its_vector_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = "node V {\n  slug: String @key\n  group: I64\n  vec: Vector(16) @index\n}\n";
    let g = Graph::init(tmp.path().join("g").to_str().expect("utf8"), "s.pg", schema)
        .await
        .expect("init");
    let n = omnigraph::storage::table::VECTOR_INDEX_MIN_ROWS + 2_000;
    // Deterministic vectors around 32 centres.
    let mut state = 7u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    let centres: Vec<Vec<f32>> = (0..32).map(|_| (0..16).map(|_| rnd()).collect()).collect();
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|i| centres[i % 32].iter().map(|c| c + 0.15 * rnd()).collect())
        .collect();
    let text: Vec<String> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"type": "V", "data": {"slug": format!("v{i}"), "group": i % 3, "vec": v}})
                .to_string()
        })
        .collect();
    g.load(
        std::io::Cursor::new(text.join("\n").into_bytes()),
        LoadMode::Overwrite,
        "main",
        None,
        "t",
    )
    .await
    .expect("load");
    g.optimize().await.expect("optimize");
    let snap = g
        .snapshot(&ReadAt::Branch("main".into()))
        .await
        .expect("snap");
    let t = snap
        .tables
        .iter()
        .find(|t| t.table.to_string() == "node:V")
        .expect("table");
    assert_eq!(t.rows, n);
    assert!(t.lance_branch.is_none());
    let ds = lance::Dataset::open(&format!("{}/nodes/V.lance", tmp.path().join("g").display()))
        .await
        .expect("open")
        .checkout_version(t.version)
        .await
        .expect("version");
    assert!(
        omnigraph::storage::table::has_vector_index(&ds, "vec_vector")
            .await
            .expect("indexes"),
        "the vector index was built"
    );
    let src = r#"
query top($q: Vector(16)) { match { $v: V } return { $v.slug } order { nearest($v.vec, $q) } limit 10 }
query top_in($q: Vector(16), $g: I64) { match { $v: V { group: $g } } return { $v.slug } order { nearest($v.vec, $q) } limit 10 }
"#;
    let compiled = omnigraph::query::compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        1.0 - dot / (na * nb)
    };
    let exact = |q: &[f32], group: Option<usize>| -> Vec<String> {
        let mut d: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| group.is_none_or(|g| i % 3 == g))
            .map(|(i, v)| (cos(v, q), i))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        d.iter().take(10).map(|(_, i)| format!("v{i}")).collect()
    };
    let queries: Vec<Vec<f32>> = (0..20)
        .map(|k| vectors[k * 97].iter().map(|x| x + 0.05 * rnd()).collect())
        .collect();
    let slugs = |r: omnigraph::engine::exec::QueryResult| -> Vec<String> {
        r.rows
            .iter()
            .map(|r| r["slug"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let (mut hit, mut total) = (0, 0);
    for q in &queries {
        let got = g
            .query(
                &compiled.queries[0],
                &json!({ "q": q }),
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect("top");
        let got = slugs(got);
        assert_eq!(got.len(), 10);
        let want = exact(q, None);
        hit += got.iter().filter(|s| want.contains(s)).count();
        total += 10;
    }
    // The index answered: no query decoded the table.
    assert_eq!(
        g.read_cache_usage().1,
        0,
        "a top-k nearest read the whole table"
    );
    for q in &queries {
        // Filtered: exact, the true top of the matching rows.
        let got = g
            .query(
                &compiled.queries[1],
                &json!({ "q": q, "g": 1 }),
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect("top_in");
        let got = slugs(got);
        let want_in = exact(q, Some(1));
        let d = |s: &String| {
            let i: usize = s[1..].parse().expect("slug");
            cos(&vectors[i], q)
        };
        // Equal distances may order differently; compare distances.
        let gd: Vec<f32> = got.iter().map(d).collect();
        let wd: Vec<f32> = want_in.iter().map(d).collect();
        assert_eq!(gd.len(), 10);
        for (a, b) in gd.iter().zip(&wd) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want_in:?}");
        }
    }
    // (The filtered search decoded it: the measure above can fail.)
    assert!(g.read_cache_usage().1 > 0);
    let recall = hit as f64 / total as f64;
    eprintln!("vector index recall@10 over 20 queries: {recall:.3}");
    assert!(recall >= 0.9, "recall@10 {recall}");
}
