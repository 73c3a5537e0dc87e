//! `schema plan`, `schema apply`, `schema show`.

use super::*;

/// `omnigraph schema plan --schema NEW.pg URI [--json]`.
pub fn schema_plan(schema: &std::path::Path, uri: &str, json: bool) -> Result<ExitCode, CliError> {
    let src = crate::cli::read(schema)?;
    let new = match crate::schema::compile_schema_file(&schema.display().to_string(), &src) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render(crate::cli::color()));
            return Ok(ExitCode::from(1));
        }
    };
    let rt = runtime()?;
    let g = rt.block_on(Graph::open(uri)).map_err(engine)?;
    let plan = crate::schema::migrate::plan(&g.catalog(), &new);
    if json {
        json_out(&plan);
    } else {
        if plan.steps.is_empty() {
            println!("no changes: the graph already has this schema");
        }
        for s in &plan.steps {
            let mark = if !s.supported {
                "unsupported"
            } else if s.data_loss {
                "data loss"
            } else {
                "ok"
            };
            println!("[{mark}] {} {}: {}", s.entity, s.type_name, s.detail);
            if let Some(r) = &s.reason {
                println!("    reason: {r}");
            }
        }
        println!(
            "supported: {}{}",
            if plan.supported { "yes" } else { "no" },
            if plan.data_loss {
                " (drops data: applying needs --allow-data-loss)"
            } else {
                ""
            }
        );
    }
    Ok(if plan.supported {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `omnigraph schema apply --schema NEW.pg URI`.
pub fn schema_apply(
    schema: &std::path::Path,
    target: &Target,
    allow_data_loss: bool,
    json: bool,
    who: Option<String>,
    policy: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    let src = crate::cli::read(schema)?;
    let rt = runtime()?;
    if let Some(r) = target.remote()? {
        no_local_flags(&who, &policy)?;
        let out: crate::api::SchemaApplyOutput = rt.block_on(r.graph_post(
            &["schema", "apply"],
            &crate::api::SchemaApplyRequest {
                schema_source: src,
                allow_data_loss,
            },
        ))?;
        if json {
            json_out(&out);
        } else if !out.applied {
            println!("no changes: the graph already has this schema");
        } else {
            for s in &out.steps {
                println!(
                    "applied {} {}: {}",
                    s["entity"].as_str().unwrap_or_default(),
                    s["type_name"].as_str().unwrap_or_default(),
                    s["detail"].as_str().unwrap_or_default()
                );
            }
            println!(
                "schema {} in commit {} (manifest v{})",
                out.schema_id.as_deref().unwrap_or_default(),
                out.graph_commit_id.as_deref().unwrap_or("-"),
                out.graph_manifest_version
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let uri = target.resolve()?;
    let uri = uri.as_str();
    let g = open_for_write(&rt, uri, &policy)?;
    let file = schema.display().to_string();
    let r = match rt.block_on(g.apply_schema(&file, &src, allow_data_loss, &actor(&who))) {
        Ok(r) => r,
        Err(EngineError::Schema { rendered }) => {
            eprint!("{rendered}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(engine(e)),
    };
    if json {
        json_out(&crate::api::SchemaApplyOutput::of(uri, &actor(&who), &r));
    } else if !r.applied {
        println!("no changes: the graph already has this schema");
    } else {
        for s in &r.steps {
            println!("applied {} {}: {}", s.entity, s.type_name, s.detail);
        }
        for (t, n) in &r.rewritten {
            println!("  {t}: {n} rows rewritten");
        }
        if let Some(c) = &r.commit {
            println!(
                "schema {} in commit {} (manifest v{})",
                r.schema_id.as_deref().unwrap_or_default(),
                c.id,
                r.manifest_version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `omnigraph schema show URI`.
pub fn schema_show(target: &Target) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let source = match target.remote()? {
        Some(r) => {
            let out: crate::api::SchemaOutput = rt.block_on(r.graph_get(&["schema"], &[]))?;
            out.schema_source
        }
        None => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            g.schema_source()
        }
    };
    print!("{source}");
    if !source.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
