//! `import` (create the ledger) and `apply` (converge the desired
//! resources under the lock).

use super::*;

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
