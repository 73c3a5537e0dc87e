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
pub(super) fn blob_matches(resource: &str, bytes: &[u8], d: &str, l: &Ledger) -> bool {
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
