//! `cluster plan`: the desired resources (from a valid folder) against the
//! state ledger `<storage>/__cluster/state.json`, local or on S3 (reference shape:
//! `docs/user/clusters/config.md`, "Planning"). Read-only: it never writes
//! the ledger.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ValidationReport, validate};

/// The ledger fields plan reads; others are kept by later writers.
#[derive(Debug, Deserialize)]
struct Ledger {
    version: u32,
    #[serde(default)]
    state_revision: u64,
    #[serde(default)]
    applied_revision: Option<AppliedRevision>,
}

#[derive(Debug, Deserialize)]
struct AppliedRevision {
    #[serde(default)]
    resources: BTreeMap<String, AppliedResource>,
}

#[derive(Debug, Deserialize)]
struct AppliedResource {
    digest: String,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub resource: String,
    pub action: Action,
    /// The applied digest (update, delete).
    pub from: Option<String>,
    /// The desired digest (create, update).
    pub to: Option<String>,
}

/// A plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The ledger's URI (`state_found: false`: none yet; every resource
    /// is a create).
    pub state_path: String,
    pub state_found: bool,
    pub state_revision: u64,
    pub changes: Vec<Change>,
    /// Resources already as desired.
    pub unchanged: usize,
}

/// Validates `dir`, then plans against its ledger. `Ok((report, None))`
/// when the folder is invalid; `Err` when `cluster.yaml` or the ledger
/// cannot be read (the message names the file and the remedy).
pub fn plan(dir: &Path) -> Result<(ValidationReport, Option<Plan>), String> {
    let report = validate(dir)?;
    if !report.ok {
        return Ok((report, None));
    }
    let store =
        super::apply::ClusterStore::open(&report.storage_root).map_err(|e| e.to_string())?;
    let path = store.uri(super::apply::LEDGER);
    let read = store
        .read(super::apply::LEDGER)
        .map_err(|e| format!("cannot read the state ledger {path}: {e}"))?;
    let (found, revision, applied) = match read {
        None => (false, 0, BTreeMap::new()),
        Some(bytes) => {
            let l: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "the state ledger {path} is not valid ({e}); restore it from a trusted copy"
                )
            })?;
            if l.version != 1 {
                return Err(format!(
                    "the state ledger {path} has version {}; this release reads version 1",
                    l.version
                ));
            }
            let applied = l
                .applied_revision
                .map(|a| {
                    a.resources
                        .into_iter()
                        .map(|(k, v)| (k, v.digest))
                        .collect()
                })
                .unwrap_or_default();
            (true, l.state_revision, applied)
        }
    };
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (r, d) in &report.resources {
        match applied.get(r) {
            None => changes.push(Change {
                resource: r.clone(),
                action: Action::Create,
                from: None,
                to: Some(d.clone()),
            }),
            Some(a) if a != d => changes.push(Change {
                resource: r.clone(),
                action: Action::Update,
                from: Some(a.clone()),
                to: Some(d.clone()),
            }),
            Some(_) => unchanged += 1,
        }
    }
    for (r, a) in &applied {
        if !report.resources.contains_key(r) {
            changes.push(Change {
                resource: r.clone(),
                action: Action::Delete,
                from: Some(a.clone()),
                to: None,
            });
        }
    }
    Ok((
        report,
        Some(Plan {
            state_path: path,
            state_found: found,
            state_revision: revision,
            changes,
            unchanged,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_updates_and_deletes_against_the_ledger() {
        let t = tempfile::tempdir().expect("tmp");
        let w = |n: &str, s: &str| {
            let p = t.path().join(n);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, s).expect("write");
        };
        w(
            "cluster.yaml",
            "version: 1\ngraphs:\n  a:\n    schema: a.pg\n    queries: [q.gq]\n",
        );
        w("a.pg", "node P { name: String @key }\n");
        w(
            "q.gq",
            "query all() { match { $p: P } return { $p.name } }\n",
        );
        let (_, p) = plan(t.path()).expect("plan");
        let p = p.expect("valid");
        assert!(!p.state_found);
        let creates: Vec<&str> = p.changes.iter().map(|c| c.resource.as_str()).collect();
        assert_eq!(creates, vec!["graph.a", "query.a.all", "schema.a"]);
        assert!(p.changes.iter().all(|c| c.action == Action::Create));
        // A ledger with the schema applied, an old query digest and a
        // graph that is gone.
        let (report, _) = plan(t.path()).expect("plan");
        let schema = &report.resources["schema.a"];
        w(
            "__cluster/state.json",
            &format!(
                r#"{{"version":1,"state_revision":3,"applied_revision":{{"config_digest":"x","resources":{{"schema.a":{{"digest":"{schema}"}},"query.a.all":{{"digest":"sha256:old"}},"graph.b":{{"digest":"sha256:b"}}}}}}}}"#
            ),
        );
        let (_, p) = plan(t.path()).expect("plan");
        let p = p.expect("valid");
        assert!(p.state_found);
        assert_eq!(p.state_revision, 3);
        assert_eq!(p.unchanged, 1);
        let got: Vec<(&str, Action)> = p
            .changes
            .iter()
            .map(|c| (c.resource.as_str(), c.action))
            .collect();
        assert_eq!(
            got,
            vec![
                ("graph.a", Action::Create),
                ("query.a.all", Action::Update),
                ("graph.b", Action::Delete)
            ]
        );
        w("__cluster/state.json", "{ not json");
        let e = plan(t.path()).expect_err("corrupt ledger");
        assert!(
            e.contains("state.json") && e.contains("trusted copy"),
            "{e}"
        );
    }
}
