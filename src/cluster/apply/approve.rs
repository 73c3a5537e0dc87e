//! Approvals: digest-bound artifacts that allow a graph delete.

use super::*;

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

/// The approval artifacts under `__cluster/approvals/` (path relative to
/// `__cluster/`, content); unreadable ones are skipped.
pub(super) fn approvals(store: &ClusterStore) -> Result<Vec<(String, Approval)>, ClusterError> {
    let mut out = Vec::new();
    for p in store.list("approvals")? {
        if !p.ends_with(".json") {
            continue;
        }
        if let Some(a) = store
            .read(&p)?
            .and_then(|b| serde_json::from_slice::<Approval>(&b).ok())
        {
            out.push((p, a));
        }
    }
    Ok(out)
}

/// `cluster approve graph.<id> --as ACTOR`: records an approval for the
/// planned delete of that graph, bound to the desired config digest and
/// the ledger's digest (either changing invalidates it).
pub fn approve(dir: &Path, resource: &str, actor: &str) -> Result<Approval, ClusterError> {
    let report = valid(dir)?;
    let store = store_for(&report)?;
    let Some(LedgerRead {
        ledger: l, bytes, ..
    }) = read_ledger(&store)?
    else {
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
    store.write(
        &format!("approvals/{}.json", a.id),
        serde_json::to_vec_pretty(&a).map_err(|e| cerr("io_error", e.to_string()))?,
    )?;
    Ok(a)
}
