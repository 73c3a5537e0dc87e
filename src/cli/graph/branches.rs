//! `branch` and `commit` subcommands, embedded and remote.

use super::*;

pub fn branch(c: BranchCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let target = match &c {
        BranchCommand::Create { target, .. }
        | BranchCommand::List { target, .. }
        | BranchCommand::Merge { target, .. }
        | BranchCommand::Delete { target, .. } => target,
    };
    if let Some(r) = target.remote()? {
        return branch_remote(&rt, &r, c);
    }
    match c {
        BranchCommand::Create {
            name,
            from,
            target,
            json,
            actor: who,
            policy,
        } => {
            let g = open_for_write(&rt, &target.resolve()?, &policy)?;
            let b = rt
                .block_on(g.create_branch(&name, &from, &actor(&who)))
                .map_err(engine)?;
            if json {
                json_out(&b);
            } else {
                println!("created branch {} from {from} at {}", b.name, b.head);
            }
        }
        BranchCommand::List { target, json } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let bs = rt.block_on(g.branches()).map_err(engine)?;
            if json {
                json_out(&crate::api::BranchListOutput {
                    branches: bs.iter().map(|b| b.name.clone()).collect(),
                });
            } else {
                for b in bs {
                    println!("{}  {}", b.name, b.head);
                }
            }
        }
        BranchCommand::Merge {
            source,
            into,
            delete_branch,
            target,
            json,
            actor: who,
            policy,
        } => {
            let g = open_for_write(&rt, &target.resolve()?, &policy)?;
            let r = match rt.block_on(g.merge(&source, &into, &actor(&who), delete_branch)) {
                Ok(r) => r,
                Err(EngineError::MergeConflicts { conflicts }) if json => {
                    json_out(&serde_json::json!({ "merge_conflicts": conflicts }));
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(engine(e)),
            };
            if json {
                json_out(&r);
            } else {
                let how = match r.outcome {
                    crate::engine::merge::MergeOutcome::AlreadyUpToDate => "already up to date",
                    crate::engine::merge::MergeOutcome::FastForward => "fast-forward",
                    crate::engine::merge::MergeOutcome::Merged => "merged",
                };
                println!("{source} into {into}: {how}; head {}", r.head);
                for (t, n) in &r.written {
                    println!("  {t}: {n} upserted");
                }
                for (t, n) in &r.deleted {
                    println!("  {t}: {n} deleted");
                }
            }
            if let Some(e) = &r.branch_delete_error {
                eprintln!("warning: branch {source} was not deleted: {e}");
            } else if r.branch_deleted == Some(true) && !json {
                println!("deleted branch {source}");
            }
        }
        BranchCommand::Delete {
            name,
            target,
            actor: who,
            policy,
            json,
        } => {
            let uri = target.resolve()?;
            let g = open_for_write(&rt, &uri, &policy)?;
            let who = actor(&who);
            rt.block_on(g.delete_branch(&name, &who)).map_err(engine)?;
            if json {
                json_out(&crate::api::BranchDeleteOutput {
                    uri,
                    name,
                    actor_id: Some(who),
                });
            } else {
                println!("deleted branch {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `branch` against a server: the branch routes, the answers printed as
/// the embedded verbs print theirs (`--json`: the answers as they come).
pub(super) fn branch_remote(
    rt: &tokio::runtime::Runtime,
    r: &Remote,
    c: BranchCommand,
) -> Result<ExitCode, CliError> {
    match c {
        BranchCommand::Create {
            name,
            from,
            json,
            actor: who,
            policy,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: crate::api::BranchCreateOutput = rt.block_on(r.graph_post(
                &["branches"],
                &crate::api::BranchCreateRequest {
                    name: name.to_string(),
                    from: Some(from.clone()),
                },
            ))?;
            if json {
                json_out(&out);
            } else {
                println!("created branch {} from {from}", out.name);
            }
        }
        BranchCommand::List { json, .. } => {
            let out: crate::api::BranchListOutput = rt.block_on(r.graph_get(&["branches"], &[]))?;
            if json {
                json_out(&out);
            } else {
                for b in &out.branches {
                    println!("{b}");
                }
            }
        }
        BranchCommand::Merge {
            source,
            into,
            delete_branch,
            json,
            actor: who,
            policy,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: serde_json::Value = rt.block_on(r.graph_post(
                &["branches", "merge"],
                &crate::api::BranchMergeRequest {
                    source: source.clone(),
                    target: Some(into.clone()),
                    delete_branch,
                },
            ))?;
            if json {
                json_out(&out);
            } else {
                println!(
                    "{source} into {into}: {}",
                    out["outcome"]
                        .as_str()
                        .unwrap_or("merged")
                        .replace('_', " ")
                );
            }
        }
        BranchCommand::Delete {
            name,
            actor: who,
            policy,
            json,
            ..
        } => {
            no_local_flags(&who, &policy)?;
            let out: crate::api::BranchDeleteOutput =
                rt.block_on(r.graph_delete(&["branches", &name]))?;
            if json {
                json_out(&out);
            } else {
                println!("deleted branch {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `commit list`: id, time, actor, message, parents.
pub(super) fn commit_line(
    id: &str,
    ms: i64,
    actor: &str,
    message: &str,
    parents: &[String],
) -> String {
    format!(
        "{id}  {}  {actor:<12} {message:<40} parents: {}",
        crate::engine::values::format_datetime(ms),
        if parents.is_empty() {
            "-".to_string()
        } else {
            parents.join(", ")
        }
    )
}

pub fn commit(c: CommitCommand) -> Result<ExitCode, CliError> {
    let rt = runtime()?;
    let target = match &c {
        CommitCommand::List { target, .. } | CommitCommand::Show { target, .. } => target,
        CommitCommand::Changes {
            id,
            scope,
            limit,
            page_token,
            target,
            json,
        } => {
            return super::changes::commit_changes(
                &rt,
                id,
                scope,
                *limit,
                page_token.clone(),
                target,
                *json,
            );
        }
    };
    if let Some(r) = target.remote()? {
        match c {
            CommitCommand::List { branch, json, .. } => {
                let out: crate::api::CommitListOutput =
                    rt.block_on(r.graph_get(&["commits"], &[("branch", branch)]))?;
                if json {
                    json_out(&out);
                } else {
                    for c in &out.commits {
                        let parents: Vec<String> = c
                            .parent_commit_id
                            .iter()
                            .chain(c.merged_parent_commit_id.iter())
                            .cloned()
                            .collect();
                        println!(
                            "{}",
                            commit_line(
                                &c.graph_commit_id,
                                c.created_at / 1000,
                                c.actor_id.as_deref().unwrap_or("-"),
                                &c.message,
                                &parents
                            )
                        );
                    }
                }
            }
            CommitCommand::Show { id, json, .. } => {
                let out: crate::api::CommitOutput =
                    rt.block_on(r.graph_get(&["commits", &id], &[]))?;
                if json {
                    json_out(&out);
                } else {
                    println!("commit   {}", out.graph_commit_id);
                    println!("branch   {}", out.graph_branch.as_deref().unwrap_or("-"));
                    println!("actor    {}", out.actor_id.as_deref().unwrap_or("-"));
                    println!(
                        "time     {}",
                        crate::engine::values::format_datetime(out.created_at / 1000)
                    );
                    println!("message  {}", out.message);
                    println!(
                        "parents  {}",
                        out.parent_commit_id
                            .iter()
                            .chain(out.merged_parent_commit_id.iter())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            // Answered above.
            CommitCommand::Changes { .. } => {}
        }
        return Ok(ExitCode::SUCCESS);
    }
    match c {
        CommitCommand::List {
            branch,
            target,
            json,
        } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let cs = rt.block_on(g.commits(&branch)).map_err(engine)?;
            if json {
                json_out(&crate::api::CommitListOutput {
                    commits: cs
                        .iter()
                        .map(|c| crate::api::CommitOutput::from_commit(c, None))
                        .collect(),
                });
            } else {
                for c in cs {
                    println!(
                        "{}",
                        commit_line(
                            &c.id,
                            c.timestamp_ms,
                            &c.actor,
                            &c.message,
                            &c.parents
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>(),
                        )
                    );
                }
            }
        }
        CommitCommand::Show { id, target, json } => {
            let g = rt
                .block_on(Graph::open(&target.resolve()?))
                .map_err(engine)?;
            let c = rt.block_on(g.commit(&id)).map_err(engine)?;
            if json {
                json_out(&crate::api::CommitOutput::from_commit(&c, None));
            } else {
                println!("commit   {}", c.id);
                println!("branch   {}", c.branch);
                println!("actor    {}", c.actor);
                println!(
                    "time     {}",
                    crate::engine::values::format_datetime(c.timestamp_ms)
                );
                println!("message  {}", c.message);
                println!(
                    "parents  {}",
                    if c.parents.is_empty() {
                        "-".to_string()
                    } else {
                        c.parents
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
                for (t, r) in &c.tables {
                    println!(
                        "  {t} v{}{}",
                        r.version,
                        r.lance_branch
                            .as_ref()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        // Answered above.
        CommitCommand::Changes { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}
