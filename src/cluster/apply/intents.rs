//! Recovery intents: armed before a step that touches a graph, swept on
//! the next apply (finished, or rolled back).

use super::*;

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

/// Arms an intent; returns its path under `__cluster/`.
pub(super) fn arm(
    store: &ClusterStore,
    kind: &str,
    graph: &str,
    digest: &str,
    actor: &str,
) -> Result<String, ClusterError> {
    let i = Intent {
        id: ulid::Ulid::new().to_string(),
        kind: kind.to_string(),
        graph: graph.to_string(),
        digest: digest.to_string(),
        actor: actor.to_string(),
        started_at: chrono::Utc::now().to_rfc3339(),
    };
    let path = format!("recoveries/{}.json", i.id);
    store.write(
        &path,
        serde_json::to_vec_pretty(&i).map_err(|e| cerr("io_error", e.to_string()))?,
    )?;
    Ok(path)
}

/// The live schema digest of a graph root (`None`: absent or unopenable).
pub(super) fn live_schema(store: &ClusterStore, graph: &str) -> Option<String> {
    if !store.graph_exists(graph).unwrap_or(false) {
        return None;
    }
    store
        .open_graph(graph)
        .ok()
        .map(|g| digest(g.schema_source().as_bytes()))
}

/// The recovery sweep at the start of `apply`: classifies every surviving
/// intent by observation. Completed work the ledger missed is rolled
/// forward (with an entry in `recovery_records`); work that never moved is
/// retired; anything else is kept and blocks its graph. Returns the intent
/// objects to remove once the ledger is written.
pub(super) fn sweep(
    store: &ClusterStore,
    l: &mut Ledger,
    changes: &mut Vec<AppliedChange>,
    blocked: &mut BTreeSet<String>,
) -> Result<Vec<String>, ClusterError> {
    let mut retire = Vec::new();
    for p in store
        .list("recoveries")?
        .into_iter()
        .filter(|p| p.ends_with(".json"))
    {
        let Some(i) = store
            .read(&p)?
            .and_then(|b| serde_json::from_slice::<Intent>(&b).ok())
        else {
            return Err(cerr(
                "recovery_unreadable",
                format!(
                    "{} is unreadable; inspect it, then remove it and re-run",
                    store.uri(&p)
                ),
            ));
        };
        let schema_res = format!("schema.{}", i.graph);
        let live = live_schema(store, &i.graph);
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
            "graph_create" if !store.graph_exists(&i.graph)? => "discarded",
            "schema_apply" if live.is_some() && live == applied => "retired",
            "graph_delete" if !store.graph_exists(&i.graph)? => {
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
                    store.graph_uri(&i.graph),
                    store.uri(&p)
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
