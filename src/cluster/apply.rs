//! The cluster control plane's writers, in the reference's flow
//! (`docs/user/clusters/config.md`): `import` creates the state ledger,
//! `apply` converges the desired resources under the state lock, `status`
//! reports read-only, `approve` records a digest-bound approval for a graph
//! delete, `force-unlock` removes a held lock by id; [`serving`] is what
//! `omnigraph-server --cluster` boots from (the applied revision only).
//!
//! Layout under the storage root (`storage:` in `cluster.yaml`, else the
//! config folder):
//! - `__cluster/state.json` — the ledger, replaced whole (temp file +
//!   rename) after checking it still holds the bytes read under the lock;
//! - `__cluster/lock.json` — the lock, created only if absent;
//! - `__cluster/resources/query/<graph>/<name>/<hex>.gq` and
//!   `__cluster/resources/policy/<name>/<hex>.yaml` — content-addressed
//!   blobs, written before the ledger (the publish point);
//! - `__cluster/approvals/<id>.json` — approval artifacts;
//! - `graphs/<id>.omni` — graph roots.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{ValidationReport, digest, validate};
use crate::engine::Graph;

/// A control-plane refusal: a stable code and a message with the remedy.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ClusterError {
    pub code: &'static str,
    pub message: String,
}

fn cerr(code: &'static str, message: impl Into<String>) -> ClusterError {
    ClusterError {
        code,
        message: message.into(),
    }
}

/// The state ledger (reference shape; fields this release does not use
/// are kept as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    #[serde(default)]
    pub state_revision: u64,
    #[serde(default)]
    pub applied_revision: AppliedRevision,
    #[serde(default)]
    pub resource_statuses: BTreeMap<String, ResourceStatus>,
    #[serde(default)]
    pub approval_records: BTreeMap<String, Json>,
    #[serde(default)]
    pub recovery_records: BTreeMap<String, Json>,
    #[serde(default)]
    pub observations: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedRevision {
    #[serde(default)]
    pub config_digest: Option<String>,
    #[serde(default)]
    pub resources: BTreeMap<String, AppliedResource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedResource {
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies_to: Vec<String>,
}

/// `pending`, `applied`, `blocked`, `error`, `drifted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub status: String,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn cluster_dir(root: &Path) -> PathBuf {
    root.join("__cluster")
}

/// Where graph `id` lives under a storage root.
pub fn graph_root(root: &Path, id: &str) -> PathBuf {
    root.join("graphs").join(format!("{id}.omni"))
}

fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// The blob of a query or policy resource.
fn blob_path(root: &Path, resource: &str, d: &str) -> Option<PathBuf> {
    let base = cluster_dir(root).join("resources");
    let parts: Vec<&str> = resource.splitn(3, '.').collect();
    match parts.as_slice() {
        ["query", g, name] => Some(
            base.join("query")
                .join(g)
                .join(name)
                .join(format!("{}.gq", hex(d))),
        ),
        ["policy", name] => Some(
            base.join("policy")
                .join(name)
                .join(format!("{}.yaml", hex(d))),
        ),
        ["policy", name, rest] => Some(
            base.join("policy")
                .join(format!("{name}.{rest}"))
                .join(format!("{}.yaml", hex(d))),
        ),
        _ => None,
    }
}

fn io(path: &Path, e: std::io::Error) -> ClusterError {
    cerr("io_error", format!("{}: {e}", path.display()))
}

/// Writes a file atomically (temp + rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", ulid::Ulid::new()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// The held state lock; released (file removed) on drop if it is still
/// ours.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    pub id: String,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            .is_some_and(|j| j["lock_id"] == self.id.as_str());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes the state lock for `operation`; `state_lock_held` (with the
/// holder's id, operation, pid and age) when another holds it.
pub fn lock(root: &Path, operation: &str) -> Result<StateLock, ClusterError> {
    let dir = cluster_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let path = dir.join("lock.json");
    let id = ulid::Ulid::new().to_string();
    let body = serde_json::json!({
        "lock_id": id,
        "lock_operation": operation,
        "lock_created_at": chrono::Utc::now().to_rfc3339(),
        "lock_pid": std::process::id(),
    });
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let held = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
                .unwrap_or(Json::Null);
            return Err(cerr(
                "state_lock_held",
                format!(
                    "{} is held (lock_id {}, operation {}, pid {}, since {}); wait for it, or if no cluster command is running, `omnigraph cluster force-unlock {} --config DIR`",
                    path.display(),
                    held["lock_id"],
                    held["lock_operation"],
                    held["lock_pid"],
                    held["lock_created_at"],
                    held["lock_id"].as_str().unwrap_or("<id>")
                ),
            ));
        }
        Err(e) => return Err(io(&path, e)),
    };
    use std::io::Write;
    f.write_all(body.to_string().as_bytes())
        .map_err(|e| io(&path, e))?;
    Ok(StateLock { path, id })
}

/// `cluster force-unlock LOCK_ID`: removes the lock if it has that id.
pub fn force_unlock(dir: &Path, lock_id: &str) -> Result<(), ClusterError> {
    let report = validate(dir).map_err(|e| cerr("config_unreadable", e))?;
    let path = cluster_dir(&report.storage_root).join("lock.json");
    let held = std::fs::read(&path).map_err(|_| {
        cerr(
            "lock_not_held",
            format!("{} does not exist", path.display()),
        )
    })?;
    let j: Json = serde_json::from_slice(&held).unwrap_or(Json::Null);
    if j["lock_id"] != lock_id {
        return Err(cerr(
            "lock_id_mismatch",
            format!(
                "the lock is {}, not {lock_id}; nothing removed",
                j["lock_id"]
            ),
        ));
    }
    std::fs::remove_file(&path).map_err(|e| io(&path, e))
}

/// Reads the ledger and its bytes; `None` when absent.
pub fn read_ledger(root: &Path) -> Result<Option<(Ledger, Vec<u8>)>, ClusterError> {
    let path = cluster_dir(root).join("state.json");
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, e)),
        Ok(b) => b,
    };
    let l: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
        cerr(
            "state_corrupt",
            format!(
                "{} is not a valid ledger ({e}); restore it from a trusted copy",
                path.display()
            ),
        )
    })?;
    Ok(Some((l, bytes)))
}

/// Replaces the ledger if it still holds `expected` (compare-and-swap
/// under the lock: a ledger edited meanwhile is never overwritten).
fn write_ledger(root: &Path, l: &Ledger, expected: Option<&[u8]>) -> Result<(), ClusterError> {
    let path = cluster_dir(root).join("state.json");
    let now = std::fs::read(&path).ok();
    if now.as_deref() != expected {
        return Err(cerr(
            "state_conflict",
            format!(
                "{} changed while this command held the lock; re-run it",
                path.display()
            ),
        ));
    }
    let bytes = serde_json::to_vec_pretty(l).map_err(|e| cerr("state_corrupt", e.to_string()))?;
    write_atomic(&path, &bytes)
}

fn valid(dir: &Path) -> Result<ValidationReport, ClusterError> {
    let report = validate(dir).map_err(|e| cerr("config_unreadable", e))?;
    if !report.ok {
        let lines: Vec<String> = report
            .findings
            .iter()
            .map(|f| format!("  {} {}: {}", f.code, f.resource, f.message))
            .collect();
        return Err(cerr(
            "config_invalid",
            format!(
                "the cluster config has problems; fix them (see `omnigraph cluster validate`):\n{}",
                lines.join("\n")
            ),
        ));
    }
    Ok(report)
}

/// The digest of the desired revision: every resource and its digest.
pub fn config_digest(report: &ValidationReport) -> String {
    digest(
        serde_json::to_string(&report.resources)
            .unwrap_or_default()
            .as_bytes(),
    )
}

fn rt() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| cerr("runtime", e.to_string()))
}

/// What `import` did.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub state_path: PathBuf,
    /// False when a ledger already existed (nothing written).
    pub created: bool,
    /// What was observed per declared graph.
    pub observations: BTreeMap<String, Json>,
}

/// `cluster import`: creates the ledger (revision 0, nothing applied)
/// with an observation per declared graph (its root exists, its live
/// schema digest). An existing ledger is left alone.
pub fn import(dir: &Path) -> Result<ImportReport, ClusterError> {
    let report = valid(dir)?;
    let root = report.storage_root.clone();
    let _lock = lock(&root, "import")?;
    let state_path = cluster_dir(&root).join("state.json");
    if read_ledger(&root)?.is_some() {
        return Ok(ImportReport {
            state_path,
            created: false,
            observations: BTreeMap::new(),
        });
    }
    let rt = rt()?;
    let mut observations = BTreeMap::new();
    for res in report.resources.keys().filter(|r| r.starts_with("graph.")) {
        let id = &res["graph.".len()..];
        let gr = graph_root(&root, id);
        let obs = if gr.exists() {
            match rt.block_on(Graph::open(&gr.display().to_string())) {
                Ok(g) => serde_json::json!({
                    "root": gr, "exists": true,
                    "schema_digest": digest(g.schema_source().as_bytes()),
                }),
                Err(e) => serde_json::json!({"root": gr, "exists": true, "error": e.to_string()}),
            }
        } else {
            serde_json::json!({"root": gr, "exists": false})
        };
        observations.insert(res.clone(), obs);
    }
    let l = Ledger {
        version: 1,
        observations: observations.clone(),
        ..Ledger::default()
    };
    write_ledger(&root, &l, None)?;
    Ok(ImportReport {
        state_path,
        created: true,
        observations,
    })
}

/// One change apply handled.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedChange {
    pub resource: String,
    /// `create`, `update`, `delete`.
    pub action: String,
    /// `applied`, `blocked`, `error`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What `apply` did.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub changes: Vec<AppliedChange>,
    /// False when nothing changed (a converged re-apply).
    pub state_written: bool,
    pub state_revision: u64,
    /// The ledger now records the desired revision.
    pub converged: bool,
}

/// An approval artifact (`__cluster/approvals/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub resource: String,
    pub action: String,
    pub config_digest: String,
    pub state_digest: String,
    pub actor: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<String>,
}

fn approvals(root: &Path) -> Vec<(PathBuf, Approval)> {
    let dir = cluster_dir(root).join("approvals");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let a: Approval = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((p, a))
        })
        .collect()
}

/// `cluster approve graph.<id> --as ACTOR`: records an approval for the
/// planned delete of that graph, bound to the desired config digest and
/// the ledger's digest (either changing invalidates it).
pub fn approve(dir: &Path, resource: &str, actor: &str) -> Result<Approval, ClusterError> {
    let report = valid(dir)?;
    let root = report.storage_root.clone();
    let Some((l, bytes)) = read_ledger(&root)? else {
        return Err(cerr(
            "state_missing",
            "no state ledger; run `omnigraph cluster import` first",
        ));
    };
    if !resource.starts_with("graph.")
        || !l.applied_revision.resources.contains_key(resource)
        || report.resources.contains_key(resource)
    {
        return Err(cerr(
            "nothing_to_approve",
            format!(
                "`{resource}` is not a planned graph delete; only deleting a graph needs approval"
            ),
        ));
    }
    let a = Approval {
        id: ulid::Ulid::new().to_string(),
        resource: resource.to_string(),
        action: "delete".into(),
        config_digest: config_digest(&report),
        state_digest: digest(&bytes),
        actor: actor.to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        consumed_at: None,
    };
    let path = cluster_dir(&root)
        .join("approvals")
        .join(format!("{}.json", a.id));
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&a).map_err(|e| cerr("io_error", e.to_string()))?,
    )?;
    Ok(a)
}

/// A cluster recovery intent (`__cluster/recoveries/<id>.json`): armed
/// before a graph create, schema apply or graph delete moves anything,
/// removed only after the ledger records the outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Intent {
    pub id: String,
    /// `graph_create`, `schema_apply` or `graph_delete`.
    pub kind: String,
    pub graph: String,
    /// The schema digest the operation installs (empty for a delete).
    pub digest: String,
    pub actor: String,
    pub started_at: String,
}

fn intents_dir(root: &Path) -> PathBuf {
    cluster_dir(root).join("recoveries")
}

fn arm(
    root: &Path,
    kind: &str,
    graph: &str,
    digest: &str,
    actor: &str,
) -> Result<PathBuf, ClusterError> {
    let i = Intent {
        id: ulid::Ulid::new().to_string(),
        kind: kind.to_string(),
        graph: graph.to_string(),
        digest: digest.to_string(),
        actor: actor.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
    };
    let path = intents_dir(root).join(format!("{}.json", i.id));
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&i).map_err(|e| cerr("io_error", e.to_string()))?,
    )?;
    Ok(path)
}

/// The live schema digest of a graph root (`None`: absent or unopenable).
fn live_schema(rt: &tokio::runtime::Runtime, root: &Path, graph: &str) -> Option<String> {
    let gr = graph_root(root, graph);
    if !gr.exists() {
        return None;
    }
    rt.block_on(Graph::open(&gr.display().to_string()))
        .ok()
        .map(|g| digest(g.schema_source().as_bytes()))
}

/// The recovery sweep at the start of `apply`: classifies every surviving
/// intent by observation. Completed work the ledger missed is rolled
/// forward (with an entry in `recovery_records`); work that never moved is
/// retired; anything else is kept and blocks its graph. Returns the intent
/// files to remove once the ledger is written.
fn sweep(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    l: &mut Ledger,
    changes: &mut Vec<AppliedChange>,
    blocked: &mut BTreeSet<String>,
) -> Result<Vec<PathBuf>, ClusterError> {
    let mut retire = Vec::new();
    let Ok(rd) = std::fs::read_dir(intents_dir(root)) else {
        return Ok(retire);
    };
    let mut files: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for p in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
    {
        let Ok(i) = std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Intent>(&b).map_err(|e| e.to_string()))
        else {
            return Err(cerr(
                "recovery_unreadable",
                format!(
                    "{} is unreadable; inspect it, then remove it and re-run",
                    p.display()
                ),
            ));
        };
        let schema_res = format!("schema.{}", i.graph);
        let live = live_schema(rt, root, &i.graph);
        let applied = l
            .applied_revision
            .resources
            .get(&schema_res)
            .map(|a| a.digest.clone());
        let outcome = match i.kind.as_str() {
            "graph_create" | "schema_apply" if live.as_deref() == Some(i.digest.as_str()) => {
                if applied.as_deref() != Some(i.digest.as_str()) {
                    l.applied_revision.resources.insert(
                        schema_res.clone(),
                        AppliedResource {
                            digest: i.digest.clone(),
                            applies_to: Vec::new(),
                        },
                    );
                    "rolled_forward"
                } else {
                    "retired"
                }
            }
            "graph_create" if !graph_root(root, &i.graph).exists() => "discarded",
            "schema_apply" if live.is_some() && live == applied => "retired",
            "graph_delete" if !graph_root(root, &i.graph).exists() => {
                let prefix = format!("query.{}.", i.graph);
                let g = format!("graph.{}", i.graph);
                l.applied_revision
                    .resources
                    .retain(|k, _| k != &g && k != &schema_res && !k.starts_with(&prefix));
                "rolled_forward"
            }
            "graph_delete" => "retired",
            _ => "kept",
        };
        if outcome == "kept" {
            blocked.insert(i.graph.clone());
            let code = if i.kind == "graph_create" {
                "graph_create_incomplete"
            } else {
                "actual_applied_state_pending"
            };
            changes.push(AppliedChange {
                resource: format!("graph.{}", i.graph),
                action: "recover".into(),
                outcome: "blocked".into(),
                message: Some(format!(
                    "{code}: an interrupted {} left {} in a state apply cannot classify; inspect it (remove a partial root and the intent {} to retry)",
                    i.kind,
                    graph_root(root, &i.graph).display(),
                    p.display()
                )),
            });
            continue;
        }
        l.recovery_records.insert(
            i.id.clone(),
            serde_json::json!({
                "kind": i.kind, "graph": i.graph, "outcome": outcome,
                "actor": i.actor, "started_at": i.started_at,
                "swept_at": chrono::Utc::now().to_rfc3339(),
            }),
        );
        changes.push(AppliedChange {
            resource: format!("graph.{}", i.graph),
            action: "recover".into(),
            outcome: "applied".into(),
            message: Some(format!("{outcome} interrupted {} {}", i.kind, i.id)),
        });
        retire.push(p);
    }
    Ok(retire)
}

/// `cluster apply`: converges the ledger to the desired revision under
/// the lock — graph creates (init at `graphs/<id>.omni`), schema updates
/// (through the engine's schema apply, no data loss), query and policy
/// blobs, deletes (a graph only with a valid approval) — then one ledger
/// write. A converged re-apply writes nothing.
pub fn apply(dir: &Path, actor: &str) -> Result<ApplyReport, ClusterError> {
    let report = valid(dir)?;
    let root = report.storage_root.clone();
    let _lock = lock(&root, "apply")?;
    let Some((old, old_bytes)) = read_ledger(&root)? else {
        return Err(cerr(
            "state_missing",
            "no state ledger yet; run `omnigraph cluster import --config DIR` first",
        ));
    };
    let mut l = old.clone();
    let mut changes: Vec<AppliedChange> = Vec::new();
    let applied = |l: &Ledger, r: &str| {
        l.applied_revision
            .resources
            .get(r)
            .map(|a| a.digest.clone())
    };
    let record = |changes: &mut Vec<AppliedChange>,
                  l: &mut Ledger,
                  r: &str,
                  action: &str,
                  outcome: &str,
                  message: Option<String>| {
        l.resource_statuses.insert(
            r.to_string(),
            ResourceStatus {
                status: outcome.to_string(),
                conditions: Vec::new(),
                message: message.clone(),
            },
        );
        changes.push(AppliedChange {
            resource: r.to_string(),
            action: action.to_string(),
            outcome: outcome.to_string(),
            message,
        });
    };
    let rt = rt()?;
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    let mut retire = sweep(&rt, &root, &mut l, &mut changes, &mut blocked)?;
    // 1. Graphs: create roots, migrate schemas, each fenced by an intent.
    for (res, want) in report
        .resources
        .iter()
        .filter(|(r, _)| r.starts_with("schema."))
    {
        let id = &res["schema.".len()..];
        let have = applied(&l, res);
        if have.as_deref() == Some(want.as_str()) || blocked.contains(id) {
            continue;
        }
        let src = report.payloads.get(res).cloned().unwrap_or_default();
        let gr = graph_root(&root, id);
        let uri = gr.display().to_string();
        let file = format!("{}/schema.{id}.pg", dir.display());
        let outcome: Result<&str, String> = if !gr.exists() {
            let intent = arm(&root, "graph_create", id, want, actor)?;
            rt.block_on(Graph::init(&uri, &file, &src))
                .map(|_| {
                    retire.push(intent);
                    "create"
                })
                .map_err(|e| e.to_string())
        } else {
            // Preview first: a refusal arms nothing.
            rt.block_on(async {
                let g = Graph::open(&uri).await?;
                let new = crate::schema::compile_schema_file(&file, &src).map_err(|d| {
                    crate::engine::EngineError::Schema {
                        rendered: d.render(false),
                    }
                })?;
                let plan = crate::schema::migrate::plan(&g.catalog(), &new);
                if !plan.supported || plan.data_loss {
                    return Err(crate::engine::EngineError::SchemaRefused {
                        reason: "the migration is unsupported or drops data; cluster apply runs additive migrations only (apply it with `omnigraph schema apply --allow-data-loss`, then re-run)".into(),
                    });
                }
                if plan.steps.is_empty() {
                    return Ok(None);
                }
                Ok(Some(g))
            })
            .map_err(|e| e.to_string())
            .and_then(|g| match g {
                None => Ok("update"),
                Some(g) => {
                    let intent = arm(&root, "schema_apply", id, want, actor)
                        .map_err(|e| e.to_string())?;
                    rt.block_on(g.apply_schema(&file, &src, false, actor))
                        .map(|_| {
                            retire.push(intent);
                            if have.is_some() { "update" } else { "create" }
                        })
                        .map_err(|e| e.to_string())
                }
            })
        };
        match outcome {
            Ok(action) => {
                l.applied_revision.resources.insert(
                    res.clone(),
                    AppliedResource {
                        digest: want.clone(),
                        applies_to: Vec::new(),
                    },
                );
                record(&mut changes, &mut l, res, action, "applied", None);
            }
            Err(e) => {
                blocked.insert(id.to_string());
                let action = if have.is_some() { "update" } else { "create" };
                record(
                    &mut changes,
                    &mut l,
                    res,
                    action,
                    "error",
                    Some(format!("schema_apply_failed: {e}")),
                );
            }
        }
    }
    // 2. Queries and policies: blobs, then the ledger entry.
    for (res, want) in &report.resources {
        let is_query = res.starts_with("query.");
        if !(is_query || res.starts_with("policy.")) {
            continue;
        }
        let have = applied(&l, res);
        let bindings = report.bindings.get(res).cloned().unwrap_or_default();
        let same_bindings = l
            .applied_revision
            .resources
            .get(res)
            .is_some_and(|a| a.applies_to == bindings);
        if have.as_deref() == Some(want.as_str()) && same_bindings {
            // A missing or tampered blob is republished.
            if let Some(path) = blob_path(&root, res, want) {
                let intact = std::fs::read(&path).is_ok_and(|b| blob_matches(res, &b, want, &l));
                if !intact {
                    let payload = report.payloads.get(res).cloned().unwrap_or_default();
                    write_atomic(&path, payload.as_bytes())?;
                    changes.push(AppliedChange {
                        resource: res.clone(),
                        action: "republish".into(),
                        outcome: "applied".into(),
                        message: Some(format!("rewrote {}", path.display())),
                    });
                }
            }
            continue;
        }
        let action = if have.is_some() { "update" } else { "create" };
        let graph = res.split('.').nth(1).unwrap_or_default();
        if is_query && blocked.contains(graph) {
            record(
                &mut changes,
                &mut l,
                res,
                action,
                "blocked",
                Some(format!(
                    "apply_dependency_blocked: schema.{graph} did not apply"
                )),
            );
            continue;
        }
        let Some(path) = blob_path(&root, res, want) else {
            continue;
        };
        let payload = report.payloads.get(res).cloned().unwrap_or_default();
        write_atomic(&path, payload.as_bytes())?;
        l.applied_revision.resources.insert(
            res.clone(),
            AppliedResource {
                digest: want.clone(),
                applies_to: bindings,
            },
        );
        record(&mut changes, &mut l, res, action, "applied", None);
    }
    // 3. Deletes: resources the config no longer declares.
    let gone: Vec<String> = l
        .applied_revision
        .resources
        .keys()
        .filter(|r| !report.resources.contains_key(*r))
        .cloned()
        .collect();
    let desired_digest = config_digest(&report);
    let state_digest = digest(&old_bytes);
    for res in gone {
        if let Some(id) = res.strip_prefix("graph.") {
            let valid_approval = approvals(&root).into_iter().find(|(_, a)| {
                a.resource == res
                    && a.consumed_at.is_none()
                    && a.config_digest == desired_digest
                    && a.state_digest == state_digest
            });
            let Some((apath, mut a)) = valid_approval else {
                record(
                    &mut changes,
                    &mut l,
                    &res,
                    "delete",
                    "blocked",
                    Some(format!(
                        "approval_required: deleting a graph needs `omnigraph cluster approve {res} --config DIR --as ACTOR` (bound to this config and ledger)"
                    )),
                );
                blocked.insert(id.to_string());
                continue;
            };
            let gr = graph_root(&root, id);
            retire.push(arm(&root, "graph_delete", id, "", actor)?);
            if gr.exists() {
                std::fs::remove_dir_all(&gr).map_err(|e| io(&gr, e))?;
            }
            let prefix_q = format!("query.{id}.");
            l.applied_revision.resources.retain(|k, _| {
                k != &res && k != &format!("schema.{id}") && !k.starts_with(&prefix_q)
            });
            a.consumed_at = Some(chrono::Utc::now().to_rfc3339());
            l.approval_records
                .insert(a.id.clone(), serde_json::to_value(&a).unwrap_or(Json::Null));
            write_atomic(
                &apath,
                &serde_json::to_vec_pretty(&a).map_err(|e| cerr("io_error", e.to_string()))?,
            )?;
            l.observations.insert(
                res.clone(),
                serde_json::json!({"tombstone": true, "deleted_at": a.consumed_at}),
            );
            l.resource_statuses.remove(&res);
            changes.push(AppliedChange {
                resource: res.clone(),
                action: "delete".into(),
                outcome: "applied".into(),
                message: Some(format!("removed {}", gr.display())),
            });
        } else if res.starts_with("query.") || res.starts_with("policy.") {
            let graph = res.split('.').nth(1).unwrap_or_default();
            if res.starts_with("query.") && blocked.contains(graph) {
                continue;
            }
            l.applied_revision.resources.remove(&res);
            l.resource_statuses.remove(&res);
            record(&mut changes, &mut l, &res, "delete", "applied", None);
            l.resource_statuses.remove(&res);
        }
    }
    // 4. Graph composites follow their parts.
    for (res, want) in report
        .resources
        .iter()
        .filter(|(r, _)| r.starts_with("graph."))
    {
        let id = &res["graph.".len()..];
        if blocked.contains(id) || applied(&l, res).as_deref() == Some(want.as_str()) {
            continue;
        }
        let action = if applied(&l, res).is_some() {
            "update"
        } else {
            "create"
        };
        l.applied_revision.resources.insert(
            res.clone(),
            AppliedResource {
                digest: want.clone(),
                applies_to: Vec::new(),
            },
        );
        record(&mut changes, &mut l, res, action, "applied", None);
    }
    let converged = changes.iter().all(|c| c.outcome == "applied")
        && report.resources.iter().all(|(r, d)| {
            l.applied_revision
                .resources
                .get(r)
                .is_some_and(|a| &a.digest == d)
        });
    if converged {
        l.applied_revision.config_digest = Some(desired_digest);
    }
    let state_written = l != old;
    fail::fail_point!("cluster.ledger", |_| Err(cerr(
        "fault",
        "injected fault at cluster.ledger"
    )));
    if state_written {
        l.state_revision = old.state_revision + 1;
        write_ledger(&root, &l, Some(&old_bytes))?;
    }
    // The ledger holds the outcomes: the intents are done.
    for p in retire {
        let _ = std::fs::remove_file(p);
    }
    Ok(ApplyReport {
        changes,
        state_written,
        state_revision: l.state_revision,
        converged,
    })
}

/// One drifted resource `refresh` found.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub resource: String,
    /// `schema_changed`, `missing_root`, `missing_blob`, `tampered_blob`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// What `refresh` did.
#[derive(Debug, Serialize)]
pub struct RefreshReport {
    pub drift: Vec<Drift>,
    pub state_written: bool,
    pub state_revision: u64,
}

/// `cluster refresh`: observes the live graphs and catalog blobs and
/// records what it finds in the ledger (under the lock, after the recovery
/// sweep). A graph whose live schema differs gets the observed digest as
/// its applied schema, so the next plan proposes migrating it back; a
/// missing root loses its graph and schema entries, so the next plan
/// proposes creating it; missing or tampered blobs are marked (the next
/// apply republishes them). Writes the ledger only when something changed.
pub fn refresh(dir: &Path) -> Result<RefreshReport, ClusterError> {
    let report = valid(dir)?;
    let root = report.storage_root.clone();
    let _lock = lock(&root, "refresh")?;
    let Some((old, old_bytes)) = read_ledger(&root)? else {
        return Err(cerr(
            "state_missing",
            "no state ledger yet; run `omnigraph cluster import --config DIR` first",
        ));
    };
    let rt = rt()?;
    let mut l = old.clone();
    let mut changes = Vec::new();
    let mut blocked = BTreeSet::new();
    let retire = sweep(&rt, &root, &mut l, &mut changes, &mut blocked)?;
    let mut drift = Vec::new();
    let drifted = |l: &mut Ledger, r: &str, kind: &str| {
        l.resource_statuses.insert(
            r.to_string(),
            ResourceStatus {
                status: "drifted".into(),
                conditions: vec![kind.to_string()],
                message: None,
            },
        );
    };
    let schemas: Vec<(String, String)> = l
        .applied_revision
        .resources
        .iter()
        .filter(|(r, _)| r.starts_with("schema."))
        .map(|(r, a)| (r.clone(), a.digest.clone()))
        .collect();
    for (res, recorded) in schemas {
        let g = &res["schema.".len()..];
        if !graph_root(&root, g).exists() {
            l.applied_revision.resources.remove(&res);
            l.applied_revision.resources.remove(&format!("graph.{g}"));
            drifted(&mut l, &format!("graph.{g}"), "missing_root");
            drift.push(Drift {
                resource: format!("graph.{g}"),
                kind: "missing_root".into(),
                recorded: Some(recorded),
                observed: None,
            });
            continue;
        }
        let live = live_schema(&rt, &root, g);
        l.observations.insert(
            format!("graph.{g}"),
            serde_json::json!({"root": graph_root(&root, g), "exists": true, "schema_digest": live}),
        );
        if let Some(live) = live
            && live != recorded
        {
            if let Some(a) = l.applied_revision.resources.get_mut(&res) {
                a.digest = live.clone();
            }
            drifted(&mut l, &res, "schema_changed");
            drift.push(Drift {
                resource: res.clone(),
                kind: "schema_changed".into(),
                recorded: Some(recorded),
                observed: Some(live),
            });
        }
    }
    let blobs: Vec<(String, String)> = l
        .applied_revision
        .resources
        .iter()
        .map(|(r, a)| (r.clone(), a.digest.clone()))
        .collect();
    for (r, d) in blobs {
        let Some(p) = blob_path(&root, &r, &d) else {
            continue;
        };
        let kind = match std::fs::read(&p) {
            Err(_) => "missing_blob",
            Ok(b) if !blob_matches(&r, &b, &d, &l) => "tampered_blob",
            Ok(_) => continue,
        };
        drifted(&mut l, &r, kind);
        drift.push(Drift {
            resource: r.clone(),
            kind: kind.into(),
            recorded: Some(d),
            observed: None,
        });
    }
    let state_written = l != old;
    if state_written {
        l.state_revision = old.state_revision + 1;
        write_ledger(&root, &l, Some(&old_bytes))?;
    }
    for p in retire {
        let _ = std::fs::remove_file(p);
    }
    Ok(RefreshReport {
        drift,
        state_written,
        state_revision: l.state_revision,
    })
}

/// One resource in `status`.
#[derive(Debug, Serialize)]
pub struct ResourceReport {
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    /// `in_sync`, `pending` (desired differs), `undeclared` (applied, no
    /// longer desired), `missing_blob`, `tampered_blob`, `missing_root`.
    pub status: String,
}

/// What `status` reports (read-only: no lock, no write).
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub state_found: bool,
    pub state_revision: u64,
    pub converged: bool,
    /// The lock file's content when one is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<Json>,
    pub resources: Vec<ResourceReport>,
}

/// `cluster status`.
pub fn status(dir: &Path) -> Result<StatusReport, ClusterError> {
    let report = valid(dir)?;
    let root = report.storage_root.clone();
    let lock = std::fs::read(cluster_dir(&root).join("lock.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some((l, _)) = read_ledger(&root)? else {
        return Ok(StatusReport {
            state_found: false,
            state_revision: 0,
            converged: false,
            lock,
            resources: Vec::new(),
        });
    };
    let names: BTreeSet<&String> = report
        .resources
        .keys()
        .chain(l.applied_revision.resources.keys())
        .collect();
    let mut resources = Vec::new();
    for r in names {
        let applied = l
            .applied_revision
            .resources
            .get(r)
            .map(|a| a.digest.clone());
        let desired = report.resources.get(r).cloned();
        let mut status = match (&applied, &desired) {
            (Some(a), Some(d)) if a == d => "in_sync",
            (None, _) | (Some(_), Some(_)) => "pending",
            (Some(_), None) => "undeclared",
        }
        .to_string();
        if let Some(a) = &applied {
            if let Some(p) = blob_path(&root, r, a) {
                match std::fs::read(&p) {
                    Err(_) => status = "missing_blob".into(),
                    Ok(b) if !blob_matches(r, &b, a, &l) => status = "tampered_blob".into(),
                    Ok(_) => {}
                }
            }
            if let Some(id) = r.strip_prefix("graph.")
                && !graph_root(&root, id).exists()
            {
                status = "missing_root".into();
            }
        }
        resources.push(ResourceReport {
            resource: r.clone(),
            applied,
            desired,
            status,
        });
    }
    let converged = l.applied_revision.config_digest.as_deref() == Some(&config_digest(&report))
        && resources.iter().all(|r| r.status == "in_sync");
    Ok(StatusReport {
        state_found: true,
        state_revision: l.state_revision,
        converged,
        lock,
        resources,
    })
}

/// A blob's bytes hash to the digest the ledger recorded (a policy's
/// digest also covers its bindings).
fn blob_matches(resource: &str, bytes: &[u8], d: &str, l: &Ledger) -> bool {
    if resource.starts_with("policy.") {
        let bound = l
            .applied_revision
            .resources
            .get(resource)
            .map(|a| a.applies_to.join(","))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(bytes);
        digest(format!("{text}\napplies_to:{bound}").as_bytes()) == d
    } else {
        digest(bytes) == d
    }
}

/// One graph a `--cluster` server serves.
#[derive(Debug, Clone)]
pub struct ServedGraph {
    pub id: String,
    pub uri: String,
    /// Verified query blobs.
    pub query_files: Vec<PathBuf>,
    /// The verified policy blob bound to this graph, if any.
    pub policy: Option<PathBuf>,
}

/// What a `--cluster` server boots from.
#[derive(Debug, Clone)]
pub struct Serving {
    pub graphs: Vec<ServedGraph>,
    pub server_policy: Option<PathBuf>,
}

/// Reads the applied revision of the cluster at `dir` (a config folder,
/// or a storage root holding `__cluster/state.json`). Refuses (the
/// message names the remedy) a missing ledger, nothing applied, a missing
/// or tampered blob.
pub fn serving(dir: &Path) -> Result<Serving, ClusterError> {
    let root = if cluster_dir(dir).join("state.json").exists() || !dir.join("cluster.yaml").exists()
    {
        dir.to_path_buf()
    } else {
        validate(dir)
            .map_err(|e| cerr("config_unreadable", e))?
            .storage_root
    };
    let Some((l, _)) = read_ledger(&root)? else {
        return Err(cerr(
            "state_missing",
            format!(
                "{} holds no applied cluster state; run `omnigraph cluster import` and `omnigraph cluster apply` first",
                root.display()
            ),
        ));
    };
    let res = &l.applied_revision.resources;
    let mut graphs: Vec<ServedGraph> = res
        .keys()
        .filter_map(|r| r.strip_prefix("graph."))
        .map(|id| ServedGraph {
            id: id.to_string(),
            uri: graph_root(&root, id).display().to_string(),
            query_files: Vec::new(),
            policy: None,
        })
        .collect();
    if graphs.is_empty() {
        return Err(cerr(
            "nothing_applied",
            "the ledger names no graphs; run `omnigraph cluster apply`",
        ));
    }
    let verified = |r: &str, a: &AppliedResource| -> Result<PathBuf, ClusterError> {
        let p = blob_path(&root, r, &a.digest)
            .ok_or_else(|| cerr("state_corrupt", format!("`{r}` has no blob")))?;
        let bytes = std::fs::read(&p).map_err(|_| {
            cerr(
                "blob_missing",
                format!(
                    "{} (for `{r}`) is missing; run `omnigraph cluster apply` to republish it",
                    p.display()
                ),
            )
        })?;
        if !blob_matches(r, &bytes, &a.digest, &l) {
            return Err(cerr(
                "blob_tampered",
                format!(
                    "{} does not match the digest the ledger recorded for `{r}`; run `omnigraph cluster apply` to republish it",
                    p.display()
                ),
            ));
        }
        Ok(p)
    };
    let mut server_policy = None;
    // A query's blob is its whole file: names from one file share it.
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (r, a) in res {
        if let Some(rest) = r.strip_prefix("query.") {
            let g = rest.split('.').next().unwrap_or_default();
            let p = verified(r, a)?;
            if let Some(sg) = graphs.iter_mut().find(|s| s.id == g)
                && seen.insert((g.to_string(), a.digest.clone()))
            {
                sg.query_files.push(p);
            }
        } else if r.starts_with("policy.") {
            let p = verified(r, a)?;
            for scope in &a.applies_to {
                if scope == "cluster" {
                    server_policy = Some(p.clone());
                } else if let Some(sg) = graphs.iter_mut().find(|s| &s.id == scope) {
                    sg.policy = Some(p.clone());
                }
            }
        }
    }
    Ok(Serving {
        graphs,
        server_policy,
    })
}
