//! `import` (create the ledger) and `apply` (converge the desired
//! resources under the lock).

use super::*;

/// What `import` did.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    /// The ledger's URI.
    pub state_path: String,
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
    let store = store_for(&report)?;
    let _lock = lock(&store, "import")?;
    let state_path = store.uri(LEDGER);
    if read_ledger(&store)?.is_some() {
        return Ok(ImportReport {
            state_path,
            created: false,
            observations: BTreeMap::new(),
        });
    }
    let mut observations = BTreeMap::new();
    for res in report.resources.keys().filter(|r| r.starts_with("graph.")) {
        let id = &res["graph.".len()..];
        let gr = store.graph_uri(id);
        let obs = if store.graph_exists(id)? {
            match store.open_graph(id) {
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
    write_ledger(&store, &l, None)?;
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
    let store = store_for(&report)?;
    let _lock = lock(&store, "apply")?;
    let Some(LedgerRead {
        ledger: old,
        bytes: old_bytes,
        version: old_version,
    }) = read_ledger(&store)?
    else {
        return Err(cerr(
            "state_missing",
            "no state ledger yet; run `omnigraph cluster import --config DIR` first",
        ));
    };
    let mut run = Run {
        dir,
        store: &store,
        actor,
        report: &report,
        l: old.clone(),
        changes: Vec::new(),
        blocked: BTreeSet::new(),
        retire: Vec::new(),
    };
    run.retire = sweep(&store, &mut run.l, &mut run.changes, &mut run.blocked)?;
    run.graphs()?;
    run.blobs()?;
    let desired_digest = config_digest(&report);
    run.deletes(&desired_digest, &digest(&old_bytes))?;
    run.composites();
    let Run {
        mut l,
        changes,
        retire,
        ..
    } = run;
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
        write_ledger(&store, &l, Some(&old_version))?;
    }
    // The ledger holds the outcomes: the intents are done.
    for p in retire {
        let _ = store.delete(&p);
    }
    Ok(ApplyReport {
        changes,
        state_written,
        state_revision: l.state_revision,
        converged,
    })
}

/// One apply's working state, under the lock: the ledger being written,
/// what changed, the graphs whose dependents must wait, the intents to
/// retire once the ledger is written.
struct Run<'a> {
    dir: &'a Path,
    store: &'a ClusterStore,
    actor: &'a str,
    report: &'a ValidationReport,
    l: Ledger,
    changes: Vec<AppliedChange>,
    blocked: BTreeSet<String>,
    retire: Vec<String>,
}

impl Run<'_> {
    /// The digest the ledger has applied for resource `r`.
    fn applied(&self, r: &str) -> Option<String> {
        self.l
            .applied_revision
            .resources
            .get(r)
            .map(|a| a.digest.clone())
    }

    /// Records resource `r`'s outcome in the ledger and the report.
    fn record(&mut self, r: &str, action: &str, outcome: &str, message: Option<String>) {
        self.l.resource_statuses.insert(
            r.to_string(),
            ResourceStatus {
                status: outcome.to_string(),
                conditions: Vec::new(),
                message: message.clone(),
            },
        );
        self.changes.push(AppliedChange {
            resource: r.to_string(),
            action: action.to_string(),
            outcome: outcome.to_string(),
            message,
        });
    }

    /// Marks resource `r` applied at `digest` for `applies_to`.
    fn mark_applied(&mut self, r: &str, digest: &str, applies_to: Vec<String>) {
        self.l.applied_revision.resources.insert(
            r.to_string(),
            AppliedResource {
                digest: digest.to_string(),
                applies_to,
            },
        );
    }

    /// 1. Graphs: create roots, migrate schemas, each fenced by an intent.
    /// A graph whose schema does not apply blocks its queries.
    fn graphs(&mut self) -> Result<(), ClusterError> {
        let report = self.report;
        for (res, want) in report
            .resources
            .iter()
            .filter(|(r, _)| r.starts_with("schema."))
        {
            let id = &res["schema.".len()..];
            let have = self.applied(res);
            if have.as_deref() == Some(want.as_str()) || self.blocked.contains(id) {
                continue;
            }
            let src = report.payloads.get(res).cloned().unwrap_or_default();
            let file = format!("{}/schema.{id}.pg", self.dir.display());
            let outcome = self.schema(id, want, &file, &src, have.is_some())?;
            match outcome {
                Ok(action) => {
                    self.mark_applied(res, want, Vec::new());
                    self.record(res, action, "applied", None);
                }
                Err(e) => {
                    self.blocked.insert(id.to_string());
                    let action = if have.is_some() { "update" } else { "create" };
                    self.record(
                        res,
                        action,
                        "error",
                        Some(format!("schema_apply_failed: {e}")),
                    );
                }
            }
        }
        Ok(())
    }

    /// Creates graph `id` with schema `src`, or migrates it (additive
    /// migrations only; a preview first, so a refusal arms nothing).
    /// The outer error stops the apply (an intent could not be armed);
    /// the inner one is the graph's outcome.
    fn schema(
        &mut self,
        id: &str,
        want: &str,
        file: &str,
        src: &str,
        existed: bool,
    ) -> Result<Result<&'static str, String>, ClusterError> {
        let store = self.store;
        let uri = store.graph_uri(id);
        if !store.graph_exists(id)? {
            let intent = arm(store, "graph_create", id, want, self.actor)?;
            return Ok(store
                .block_on(Graph::init(&uri, file, src))
                .map(|_| {
                    self.retire.push(intent);
                    "create"
                })
                .map_err(|e| e.to_string()));
        }
        let preview = store.block_on(async {
            let g = Graph::open(&uri).await?;
            let new = crate::schema::compile_schema_file(file, src).map_err(|d| {
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
        });
        Ok(match preview {
            Err(e) => Err(e.to_string()),
            Ok(None) => Ok("update"),
            Ok(Some(g)) => {
                let intent = match arm(store, "schema_apply", id, want, self.actor) {
                    Ok(i) => i,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                store
                    .block_on(g.apply_schema(file, src, false, self.actor))
                    .map(|_| {
                        self.retire.push(intent);
                        if existed { "update" } else { "create" }
                    })
                    .map_err(|e| e.to_string())
            }
        })
    }

    /// 2. Queries and policies: blobs, then the ledger entry. An applied
    /// blob that is missing or tampered with is republished.
    fn blobs(&mut self) -> Result<(), ClusterError> {
        let report = self.report;
        for (res, want) in &report.resources {
            let is_query = res.starts_with("query.");
            if !(is_query || res.starts_with("policy.") || res.starts_with("provider.")) {
                continue;
            }
            let have = self.applied(res);
            let bindings = report.bindings.get(res).cloned().unwrap_or_default();
            let same_bindings = self
                .l
                .applied_revision
                .resources
                .get(res)
                .is_some_and(|a| a.applies_to == bindings);
            if have.as_deref() == Some(want.as_str()) && same_bindings {
                if let Some(path) = blob_path(res, want) {
                    let intact = self
                        .store
                        .read(&path)?
                        .is_some_and(|b| blob_matches(res, &b, want, &self.l));
                    if !intact {
                        let payload = report.payloads.get(res).cloned().unwrap_or_default();
                        self.store.write(&path, payload.into_bytes())?;
                        self.changes.push(AppliedChange {
                            resource: res.clone(),
                            action: "republish".into(),
                            outcome: "applied".into(),
                            message: Some(format!("rewrote {}", self.store.uri(&path))),
                        });
                    }
                }
                continue;
            }
            let action = if have.is_some() { "update" } else { "create" };
            let graph = res.split('.').nth(1).unwrap_or_default();
            if is_query && self.blocked.contains(graph) {
                self.record(
                    res,
                    action,
                    "blocked",
                    Some(format!(
                        "apply_dependency_blocked: schema.{graph} did not apply"
                    )),
                );
                continue;
            }
            let Some(path) = blob_path(res, want) else {
                continue;
            };
            let payload = report.payloads.get(res).cloned().unwrap_or_default();
            self.store.write(&path, payload.into_bytes())?;
            self.mark_applied(res, want, bindings);
            self.record(res, action, "applied", None);
        }
        Ok(())
    }

    /// 3. Deletes: resources the config no longer declares. A graph goes
    /// only with an unconsumed approval bound to this config (`desired`)
    /// and ledger (`state`) digests.
    fn deletes(&mut self, desired: &str, state: &str) -> Result<(), ClusterError> {
        let gone: Vec<String> = self
            .l
            .applied_revision
            .resources
            .keys()
            .filter(|r| !self.report.resources.contains_key(*r))
            .cloned()
            .collect();
        for res in gone {
            if let Some(id) = res.strip_prefix("graph.") {
                self.delete_graph(&res, id, desired, state)?;
            } else if res.starts_with("query.")
                || res.starts_with("policy.")
                || res.starts_with("provider.")
            {
                let graph = res.split('.').nth(1).unwrap_or_default();
                if res.starts_with("query.") && self.blocked.contains(graph) {
                    continue;
                }
                self.l.applied_revision.resources.remove(&res);
                self.l.resource_statuses.remove(&res);
                self.record(&res, "delete", "applied", None);
                self.l.resource_statuses.remove(&res);
            }
        }
        Ok(())
    }

    /// Deletes graph `id` (resource `res`) when an approval allows it,
    /// consuming the approval; blocked otherwise.
    fn delete_graph(
        &mut self,
        res: &str,
        id: &str,
        desired: &str,
        state: &str,
    ) -> Result<(), ClusterError> {
        let valid_approval = approvals(self.store)?.into_iter().find(|(_, a)| {
            a.resource == res
                && a.consumed_at.is_none()
                && a.config_digest == desired
                && a.state_digest == state
        });
        let Some((apath, mut a)) = valid_approval else {
            self.record(
                res,
                "delete",
                "blocked",
                Some(format!(
                    "approval_required: deleting a graph needs `omnigraph cluster approve {res} --config DIR --as ACTOR` (bound to this config and ledger)"
                )),
            );
            self.blocked.insert(id.to_string());
            return Ok(());
        };
        let gr = self.store.graph_uri(id);
        let intent = arm(self.store, "graph_delete", id, "", self.actor)?;
        self.retire.push(intent);
        self.store.remove_graph(id)?;
        let prefix_q = format!("query.{id}.");
        let schema = format!("schema.{id}");
        self.l
            .applied_revision
            .resources
            .retain(|k, _| k != res && *k != schema && !k.starts_with(&prefix_q));
        a.consumed_at = Some(chrono::Utc::now().to_rfc3339());
        self.l
            .approval_records
            .insert(a.id.clone(), serde_json::to_value(&a).unwrap_or(Json::Null));
        self.store.write(
            &apath,
            serde_json::to_vec_pretty(&a).map_err(|e| cerr("io_error", e.to_string()))?,
        )?;
        self.l.observations.insert(
            res.to_string(),
            serde_json::json!({"tombstone": true, "deleted_at": a.consumed_at}),
        );
        self.l.resource_statuses.remove(res);
        self.changes.push(AppliedChange {
            resource: res.to_string(),
            action: "delete".into(),
            outcome: "applied".into(),
            message: Some(format!("removed {gr}")),
        });
        Ok(())
    }

    /// 4. Graph composites follow their parts.
    fn composites(&mut self) {
        let report = self.report;
        for (res, want) in report
            .resources
            .iter()
            .filter(|(r, _)| r.starts_with("graph."))
        {
            let id = &res["graph.".len()..];
            let have = self.applied(res);
            if self.blocked.contains(id) || have.as_deref() == Some(want.as_str()) {
                continue;
            }
            let action = if have.is_some() { "update" } else { "create" };
            self.mark_applied(res, want, Vec::new());
            self.record(res, action, "applied", None);
        }
    }
}
