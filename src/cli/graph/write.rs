//! Graph writes: `init`, `load`, `mutate`, `repair`.

use super::*;

pub fn init(a: InitArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let src = crate::cli::read(&a.schema)?;
    let rt = runtime()?;
    let g = rt
        .block_on(Graph::init(&uri, &a.schema.display().to_string(), &src))
        .map_err(engine)?;
    if a.json {
        json_out(
            &serde_json::json!({"uri": uri, "nodes": g.catalog().nodes.len(), "edges": g.catalog().edges.len()}),
        );
    } else {
        println!(
            "initialized {uri}: {} node types, {} edge types, branch main",
            g.catalog().nodes.len(),
            g.catalog().edges.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn load(a: LoadArgs) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    if let Some(r) = a.target.remote()? {
        no_local_flags(&a.actor, &a.policy)?;
        if a.if_commit.is_some() {
            return Err(CliError::Usage(
                "--if-commit: the server's load routes take no precondition; load a local graph, or use `mutate --if-commit`".into(),
            ));
        }
        // The same NDJSON, raw, to `load/ndjson` (the reference's remote
        // load).
        let data = if a.data.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
        } else {
            std::fs::read(&a.data)
        }
        .map_err(|source| CliError::Read {
            path: a.data.display().to_string(),
            source,
        })?;
        let mode = serde_json::to_value(crate::api::LoadModeWire::from(a.mode))
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut q = vec![("branch", a.branch.clone()), ("mode", mode)];
        if let Some(f) = &a.from {
            q.push(("from", f.clone()));
        }
        if a.allow_empty {
            q.push(("allow_empty", "true".into()));
        }
        let pb = spinner("loading");
        let out: Result<crate::api::GraphBatchLoadOutput, _> =
            rt.block_on(r.graph_post_raw(&["load", "ndjson"], &q, "application/x-ndjson", data));
        pb.finish_and_clear();
        let out = out?;
        if a.json {
            json_out(&out);
        } else {
            match &out.commit {
                Some(c) => println!(
                    "load: {} entities into `{}`; commit {} by {}",
                    out.total_entities,
                    out.branch,
                    c.graph_commit_id,
                    out.actor_id.as_deref().unwrap_or("-")
                ),
                None => println!("load: nothing changed on `{}`", out.branch),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = a.target.resolve()?;
    let g = open_for_write(&rt, &uri, &a.policy)?.if_head(
        a.if_commit
            .as_deref()
            .map(crate::engine::CommitId::from_text),
    );
    // Whether `--from` forks the branch first (`branch_created` in the
    // `--json` output, as the load routes answer).
    let creates = a.from.is_some()
        && !rt
            .block_on(g.branches())
            .map_err(engine)?
            .iter()
            .any(|b| b.name == a.branch);
    let pb = spinner("loading");
    let result = if a.data.as_os_str() == "-" {
        let stdin = std::io::stdin();
        rt.block_on(g.load_with(
            stdin.lock(),
            a.mode,
            a.allow_empty,
            &a.branch,
            a.from.as_deref(),
            &actor(&a.actor),
        ))
    } else {
        let f = std::fs::File::open(&a.data).map_err(|source| CliError::Read {
            path: a.data.display().to_string(),
            source,
        })?;
        rt.block_on(g.load_with(
            BufReader::new(f),
            a.mode,
            a.allow_empty,
            &a.branch,
            a.from.as_deref(),
            &actor(&a.actor),
        ))
    };
    pb.finish_and_clear();
    let r = result.map_err(engine)?;
    if a.json {
        json_out(&crate::api::GraphBatchLoadOutput::of_write(
            &a.branch,
            creates,
            a.from.clone(),
            a.mode.into(),
            &actor(&a.actor),
            &r,
        ));
    } else {
        report_write(&r);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn mutate(a: MutateArgs) -> Result<ExitCode, CliError> {
    let params = params_json(&a.gq)?;
    let rt = runtime()?;
    if let Some(r) = a.remote.remote_unless(a.store.is_some())? {
        no_local_flags(&a.actor, &a.policy)?;
        let params = (!params.is_null()).then_some(params);
        let cond = a.if_commit.as_deref();
        let out: crate::api::ChangeOutput = if a.gq.query.is_none() && a.gq.source.is_none() {
            invoke_stored(
                &rt,
                &r,
                &a.name,
                true,
                &crate::api::InvokeStoredQueryRequest {
                    params,
                    branch: Some(a.branch.clone()),
                    snapshot: None,
                    limits: None,
                },
                cond,
            )?
        } else {
            let (_, src) = gq_source(&a.gq.query, &a.gq.source)?;
            let body = crate::api::ChangeRequest {
                query: src,
                name: a.name.clone(),
                params,
                branch: Some(a.branch.clone()),
            };
            match cond {
                Some(c) => {
                    rt.block_on(r.graph_post_if(&["mutate", "if-graph-commit"], c, &body))?
                }
                None => rt.block_on(r.graph_post(&["mutate"], &body))?,
            }
        };
        if a.json {
            json_out(&out);
        } else {
            match &out.commit {
                Some(c) => println!(
                    "mutate {}: {} nodes, {} edges affected; commit {} on `{}` by {}",
                    out.query_name,
                    out.affected_nodes,
                    out.affected_edges,
                    c.graph_commit_id,
                    out.branch,
                    out.actor_id.as_deref().unwrap_or("-")
                ),
                None => println!(
                    "`{}` matched no rows; nothing was published",
                    out.query_name
                ),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (file, src) = gq_source(&a.gq.query, &a.gq.source)?;
    let store = a.store.clone().ok_or_else(|| {
        CliError::Usage("which graph? pass --store URI (or --server URL --graph ID)".into())
    })?;
    crate::cli::remote::refuse_http_uri(&store)?;
    let g = open_for_write(&rt, &store, &a.policy)?;
    let q = match pick(&g.catalog(), &file, &src, &a.name)? {
        Ok(q) => q,
        Err(code) => return Ok(code),
    };
    let who = actor(&a.actor);
    let g = g.if_head(
        a.if_commit
            .as_deref()
            .map(crate::engine::CommitId::from_text),
    );
    let r = rt
        .block_on(g.mutate(&q, &params, &a.branch, &who))
        .map_err(engine)?;
    if a.json {
        json_out(&crate::api::ChangeOutput::of_write(
            &a.branch, &q.name, &who, &r,
        ));
    } else {
        report_write(&r);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Publish the verified drift; without it, only preview.
    #[arg(long)]
    pub confirm: bool,
    /// Who repairs (default: $OMNIGRAPH_ACTOR, else `local`).
    #[arg(long = "as", value_name = "ACTOR")]
    pub actor: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `omnigraph repair [--confirm] URI`: heal, list drift, publish it when
/// confirmed.
pub fn repair(a: RepairArgs) -> Result<ExitCode, CliError> {
    let uri = a.target.resolve()?;
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(&uri)).map_err(engine)?;
    let r = rt
        .block_on(g.repair(a.confirm, &actor(&a.actor)))
        .map_err(engine)?;
    if a.json {
        json_out(&r);
        return Ok(ExitCode::SUCCESS);
    }
    for (id, action) in &r.healed {
        println!("healed write {id}: {action:?}");
    }
    if r.drift.is_empty() {
        println!("no drift: every table's Lance head is the published version");
    }
    for d in &r.drift {
        println!(
            "drift: {} on branch {}: published v{}, Lance head v{}",
            d.table, d.branch, d.published, d.head
        );
    }
    if !r.drift.is_empty() {
        if a.confirm {
            for c in &r.published {
                println!("published commit {c}");
            }
        } else {
            println!("preview only: run again with --confirm to publish these versions");
        }
    }
    Ok(ExitCode::SUCCESS)
}
