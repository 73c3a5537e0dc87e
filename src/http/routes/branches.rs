//! Branch writes: create, delete, merge.

use super::*;

#[utoipa::path(post, path = "/graphs/{id}/branches", request_body = BranchCreateRequest, responses((status = 200, body = BranchCreateOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn create_branch(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (raw, body): (Bytes, BranchCreateRequest) = read_json(body, None).await?;
    let from = body.from.unwrap_or_else(|| MAIN.to_string());
    let name = crate::engine::BranchName::parse(&body.name)?;
    authorize(&entry, &actor, Action::BranchCreate, on_target(&name))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    ask(
        &entry,
        Write(ops::CreateBranch {
            name,
            from: from.clone(),
            actor: actor.clone(),
        }),
        STOPPED_WRITING,
    )
    .await?;
    ok(&BranchCreateOutput {
        uri: entry.spec.uri.clone(),
        from,
        name: body.name,
        actor_id: Some(actor),
    })
}

#[utoipa::path(delete, path = "/graphs/{id}/branches/{branch}", responses((status = 200, body = BranchDeleteOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn delete_branch(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
) -> Res {
    let (id, name) = path.into_inner();
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    authorize(&entry, &actor, Action::BranchDelete, on_target(&name))?;
    let _permit = admit(&state, &actor, 0).await?;
    // Holds every table of the branch: one message, the actor names them.
    let op = ops::DeleteBranch {
        name: name.clone(),
        actor: actor.clone(),
    };
    ask(&entry, Write(op), STOPPED_WRITING).await?;
    ok(&BranchDeleteOutput {
        uri: entry.spec.uri.clone(),
        name,
        actor_id: Some(actor),
    })
}

#[utoipa::path(post, path = "/graphs/{id}/branches/merge", request_body = BranchMergeRequest, responses((status = 200, body = BranchMergeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, description = "Merge conflicts (`merge_conflicts[]`); nothing was published", body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn merge_branches(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (raw, body): (Bytes, BranchMergeRequest) = read_json(body, None).await?;
    let target = body.target.unwrap_or_else(|| MAIN.to_string());
    let ctx = BranchCtx {
        branch: Some(&body.source),
        target: Some(&target),
    };
    authorize(&entry, &actor, Action::BranchMerge, ctx)?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    // The merge writes the target and, with `delete_branch`, the source:
    // it holds every table of both (named by the actor; one message).
    let op = ops::MergeBranches {
        source: body.source.clone(),
        target: target.clone(),
        actor: actor.clone(),
        delete_source: body.delete_branch,
    };
    let r = ask(&entry, Write(op), STOPPED_WRITING).await?;
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    ok(&BranchMergeOutput {
        source: r.source,
        target: r.target,
        outcome,
        base: r.base.to_string(),
        graph_commit_id: r.head.to_string(),
        actor_id: Some(actor),
        branch_deleted: r.branch_deleted,
        branch_delete_error: r.branch_delete_error,
    })
}
