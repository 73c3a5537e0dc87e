//! Creating and opening a graph: `init` (schema, manifest, empty tables),
//! `open` (the newest manifest and schema).

use super::*;

impl Graph {
    /// Creates a graph at `uri` from `.pg` source (`schema_file` names it in
    /// diagnostics). Refuses a location that already holds a graph, schema
    /// files or tables; on failure removes only what it created.
    pub async fn init(
        uri: &str,
        schema_file: &str,
        schema_source: &str,
    ) -> Result<Graph, EngineError> {
        let root = Root::parse(uri)?;
        let catalog =
            compile_schema_file(schema_file, schema_source).map_err(|d| EngineError::Schema {
                rendered: d.render(false),
            })?;
        if let Some(existing) = root.first_occupied().await? {
            return Err(EngineError::AlreadyExists {
                uri: uri.to_string(),
                what: format!("`{existing}/` (a graph or its files)"),
            });
        }
        let created_root = root.local().is_some_and(|p| !p.exists());
        // A root made again where one was deleted reuses table URIs and
        // version numbers: nothing cached about the old one may serve it.
        table::forget_cached();
        let mut created: Vec<&'static str> = Vec::new();
        let result = Self::init_inner(uri, &root, catalog, schema_source, &mut created).await;
        if result.is_err() {
            // Remove only what this call created, newest first.
            root.remove_created(&created, created_root).await;
        }
        result
    }

    pub(super) async fn init_inner(
        uri: &str,
        root: &Root,
        catalog: Catalog,
        schema_source: &str,
        created: &mut Vec<&'static str>,
    ) -> Result<Graph, EngineError> {
        if let Some(p) = root.local() {
            std::fs::create_dir_all(p).map_err(|source| EngineError::Io {
                path: p.display().to_string(),
                source,
            })?;
        }
        created.push(root::GRAPH_DIR);
        let control = root.control()?;
        control
            .create("schema.pg", schema_source.as_bytes().to_vec())
            .await?;
        let cat_json = serde_json::to_vec_pretty(&catalog).map_err(|e| EngineError::Corrupt {
            path: "catalog.json".into(),
            reason: e.to_string(),
        })?;
        control.create("catalog.json", cat_json).await?;
        for dir in ["nodes", "edges"] {
            created.push(dir);
            if let Some(p) = root.local() {
                std::fs::create_dir_all(p.join(dir)).map_err(|source| EngineError::Io {
                    path: p.join(dir).display().to_string(),
                    source,
                })?;
            }
        }
        let graph = Graph {
            uri: uri.to_string(),
            root: root.clone(),
            manifests: ManifestStore::new(control),
            schema: SchemaState::cell(None, catalog, schema_source.to_string()),
            schema_pinned: false,
            cache: exec::TableCache::default(),
            gate: None,
            commit_lock: commit_lock_for(root),
            commit_path: None,
            heal_due: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            upkeep_background: false,
            upkeep_wanted: Default::default(),
            upkeep_held: Default::default(),
            waiters: Default::default(),
            upkeep_running: Default::default(),
            upkeep_task: None,
            query_limits: budget::QueryLimits::server(),
            expect_head: None,
            embedding: Default::default(),
        };
        let mut tables = BTreeMap::new();
        for key in graph.table_keys() {
            let schema = Arc::new(graph.arrow_schema(&key));
            let version = table::create_empty(&graph.table_uri(&key), schema).await?;
            tables.insert(
                key,
                TableRef {
                    version,
                    lance_branch: None,
                    rows_of: None,
                },
            );
        }
        let commit = Commit {
            id: CommitId::new(ulid::Ulid::new()),
            parents: Vec::new(),
            branch: MAIN.to_string(),
            actor: "init".to_string(),
            timestamp_ms: now_ms(),
            message: "init".to_string(),
            tables: tables.clone(),
            write_id: None,
            recovery: None,
            schema: None,
            manifest_version: Some(1),
        };
        graph.manifests.write_commit(&commit).await?;
        let mut branches = BTreeMap::new();
        branches.insert(
            MAIN.to_string(),
            BranchState {
                head: commit.id.clone(),
                tables,
                lance_branch: None,
            },
        );
        graph
            .manifests
            .create_first(&Manifest {
                version: 1,
                branches,
                schema: None,
            })
            .await?;
        Ok(graph)
    }

    /// Opens an existing graph.
    pub async fn open(uri: &str) -> Result<Graph, EngineError> {
        let root = Root::parse(uri)?;
        if !root.has_graph().await? {
            return Err(EngineError::NotAGraph {
                uri: uri.to_string(),
            });
        }
        let control = root.control()?;
        let cat_bytes = control.get("catalog.json").await?;
        let catalog: Catalog =
            serde_json::from_slice(&cat_bytes).map_err(|e| EngineError::Corrupt {
                path: root.join("_graph/catalog.json"),
                reason: e.to_string(),
            })?;
        let schema_source = String::from_utf8_lossy(&control.get("schema.pg").await?).into_owned();
        let g = Graph {
            uri: uri.to_string(),
            commit_lock: commit_lock_for(&root),
            root,
            manifests: ManifestStore::new(control),
            schema: SchemaState::cell(None, catalog, schema_source),
            schema_pinned: false,
            cache: exec::TableCache::default(),
            gate: None,
            commit_path: None,
            heal_due: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            upkeep_background: false,
            upkeep_wanted: Default::default(),
            upkeep_held: Default::default(),
            waiters: Default::default(),
            upkeep_running: Default::default(),
            upkeep_task: None,
            query_limits: budget::QueryLimits::server(),
            expect_head: None,
            embedding: Default::default(),
        };
        // Loads the schema the newest manifest names, if it was changed.
        g.manifest().await?;
        Ok(g)
    }
}
