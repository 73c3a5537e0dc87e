//! Read-only views: `refresh` (drift), `status`, and [`serving`], what
//! `omnigraph-server --cluster` boots from.

use super::*;

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
    let store = store_for(&report)?;
    let _lock = lock(&store, "refresh")?;
    let Some(LedgerRead {
        ledger: old,
        version: old_version,
        ..
    }) = read_ledger(&store)?
    else {
        return Err(cerr(
            "state_missing",
            "no state ledger yet; run `omnigraph cluster import --config DIR` first",
        ));
    };
    let mut l = old.clone();
    let mut changes = Vec::new();
    let mut blocked = BTreeSet::new();
    let retire = sweep(&store, &mut l, &mut changes, &mut blocked)?;
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
        if !store.graph_exists(g)? {
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
        let live = live_schema(&store, g);
        l.observations.insert(
            format!("graph.{g}"),
            serde_json::json!({"root": store.graph_uri(g), "exists": true, "schema_digest": live}),
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
        let Some(p) = blob_path(&r, &d) else {
            continue;
        };
        let kind = match store.read(&p)? {
            None => "missing_blob",
            Some(b) if !blob_matches(&r, &b, &d, &l) => "tampered_blob",
            Some(_) => continue,
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
        write_ledger(&store, &l, Some(&old_version))?;
    }
    for p in retire {
        let _ = store.delete(&p);
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
    let store = store_for(&report)?;
    let lock = held_lock(&store)?;
    let Some(LedgerRead { ledger: l, .. }) = read_ledger(&store)? else {
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
            if let Some(p) = blob_path(r, a) {
                match store.read(&p)? {
                    None => status = "missing_blob".into(),
                    Some(b) if !blob_matches(r, &b, a, &l) => status = "tampered_blob".into(),
                    Some(_) => {}
                }
            }
            if let Some(id) = r.strip_prefix("graph.")
                && !store.graph_exists(id)?
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
pub(super) fn blob_matches(resource: &str, bytes: &[u8], d: &str, l: &Ledger) -> bool {
    if resource.starts_with("policy.") || resource.starts_with("provider.") {
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

/// A published text a `--cluster` server loads: where it came from (for
/// messages) and its verified content.
#[derive(Debug, Clone)]
pub struct Blob {
    pub uri: String,
    pub text: String,
}

/// One graph a `--cluster` server serves.
#[derive(Debug, Clone)]
pub struct ServedGraph {
    pub id: String,
    pub uri: String,
    /// Verified query blobs.
    pub queries: Vec<Blob>,
    /// The verified policy blob bound to this graph, if any.
    pub policy: Option<Blob>,
    /// The verified `providers.embedding` profile (JSON) this graph names
    /// with `embedding_provider`, if any.
    pub embedding: Option<Blob>,
}

/// What a `--cluster` server boots from.
#[derive(Debug, Clone)]
pub struct Serving {
    pub graphs: Vec<ServedGraph>,
    pub server_policy: Option<Blob>,
}

/// Reads the applied revision of the cluster at `target`: a config folder
/// (its `storage:` names the storage root), a local storage root holding
/// `__cluster/state.json`, or an `s3://bucket/prefix` storage root; the
/// server needs nothing else, no local state. Refuses (the message names
/// the remedy) a missing ledger, nothing applied, a missing or tampered
/// blob.
pub fn serving(target: &str) -> Result<Serving, ClusterError> {
    let store = if target.contains("://") && !target.starts_with("file://") {
        ClusterStore::open_uri(target)?
    } else {
        let dir = Path::new(target.strip_prefix("file://").unwrap_or(target));
        if dir.join(CLUSTER_DIR).join(LEDGER).exists() || !dir.join("cluster.yaml").exists() {
            ClusterStore::open_uri(&dir.display().to_string())?
        } else {
            store_for(&validate(dir).map_err(|e| cerr("config_unreadable", e))?)?
        }
    };
    let Some(LedgerRead { ledger: l, .. }) = read_ledger(&store)? else {
        return Err(cerr(
            "state_missing",
            format!(
                "{} holds no applied cluster state; run `omnigraph cluster import` and `omnigraph cluster apply` first",
                store.root()
            ),
        ));
    };
    let res = &l.applied_revision.resources;
    let mut graphs: Vec<ServedGraph> = res
        .keys()
        .filter_map(|r| r.strip_prefix("graph."))
        .map(|id| ServedGraph {
            id: id.to_string(),
            uri: store.graph_uri(id),
            queries: Vec::new(),
            policy: None,
            embedding: None,
        })
        .collect();
    if graphs.is_empty() {
        return Err(cerr(
            "nothing_applied",
            "the ledger names no graphs; run `omnigraph cluster apply`",
        ));
    }
    let verified = |r: &str, a: &AppliedResource| -> Result<Blob, ClusterError> {
        let p = blob_path(r, &a.digest)
            .ok_or_else(|| cerr("state_corrupt", format!("`{r}` has no blob")))?;
        let uri = store.uri(&p);
        let Some(bytes) = store.read(&p)? else {
            return Err(cerr(
                "blob_missing",
                format!(
                    "{uri} (for `{r}`) is missing; run `omnigraph cluster apply` to republish it"
                ),
            ));
        };
        if !blob_matches(r, &bytes, &a.digest, &l) {
            return Err(cerr(
                "blob_tampered",
                format!(
                    "{uri} does not match the digest the ledger recorded for `{r}`; run `omnigraph cluster apply` to republish it"
                ),
            ));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| cerr("blob_tampered", format!("{uri} is not UTF-8 text")))?;
        Ok(Blob { uri, text })
    };
    let mut server_policy = None;
    // A query's blob is its whole file: names from one file share it.
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for (r, a) in res {
        if let Some(rest) = r.strip_prefix("query.") {
            let g = rest.split('.').next().unwrap_or_default();
            let b = verified(r, a)?;
            if let Some(sg) = graphs.iter_mut().find(|s| s.id == g)
                && seen.insert((g.to_string(), a.digest.clone()))
            {
                sg.queries.push(b);
            }
        } else if r.starts_with("provider.embedding.") {
            let b = verified(r, a)?;
            for g in &a.applies_to {
                if let Some(sg) = graphs.iter_mut().find(|s| &s.id == g) {
                    sg.embedding = Some(b.clone());
                }
            }
        } else if r.starts_with("policy.") {
            let b = verified(r, a)?;
            for scope in &a.applies_to {
                if scope == "cluster" {
                    server_policy = Some(b.clone());
                } else if let Some(sg) = graphs.iter_mut().find(|s| &s.id == scope) {
                    sg.policy = Some(b.clone());
                }
            }
        }
    }
    Ok(Serving {
        graphs,
        server_policy,
    })
}
