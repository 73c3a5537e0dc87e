//! Write routes: mutate and the two load routes.

use super::*;

/// Admits (`bytes` of request) and runs a compiled mutation (a stored
/// one); the caller has already authorized `change` on its branch.
pub(super) async fn run_mutation(
    state: &AppState,
    entry: &GraphEntry,
    op: ops::RunMutation,
    bytes: u64,
) -> Res {
    let actor = op.actor.clone();
    let _permit = admit(state, &actor, bytes).await?;
    // A mutation is prepared concurrently with other writes and committed
    // in the GraphActor's commit queue: it holds no (table, branch) key.
    let (name, branch) = (op.query.name.clone(), op.branch.clone());
    let r = ask(entry, Write(op), STOPPED_WRITING).await?;
    ok(&ChangeOutput::of_write(&branch, &name, &actor, &r))
}

#[utoipa::path(post, path = "/graphs/{id}/mutate", request_body = ChangeRequest, responses((status = 200, body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn mutate(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let expect = unconditional(&req, &format!("/graphs/{id}/mutate/if-graph-commit"))?;
    run_mutate(req, state, id, body, expect).await
}

/// A conditional mutation (reference docs/user/mutations/index.md,
/// "Conditional writes"): runs only if the branch head is still the
/// commit named by the `Omnigraph-If-Graph-Commit` header, decided
/// atomically with the publish; 412 with `precondition_failure
/// {expected, actual}` and no effect otherwise. A separate route, so an
/// older server answers 404 instead of ignoring the header.
#[utoipa::path(post, path = "/graphs/{id}/mutate/if-graph-commit", request_body = ChangeRequest, params(("Omnigraph-If-Graph-Commit" = String, Header, description = "The branch head the write requires: a commit id (`graph_commit_id` of the read it depends on), bare or as a strong entity tag `\"<id>\"`")), responses((status = 200, body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 412, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn mutate_if_graph_commit(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let expect = if_graph_commit(&req)?;
    run_mutate(req, state, id, body, Some(expect)).await
}

async fn run_mutate(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
    expect_head: Option<CommitId>,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (raw, body): (Bytes, ChangeRequest) = read_json(body, None).await?;
    let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
    // Before the query is compiled: a caller who may not change the
    // branch spends nothing of the server's on its source.
    authorize(&entry, &actor, Action::Change, on_branch(&branch))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    // One trip to the GraphActor: it compiles the source against its
    // catalog, prepares and commits the write.
    let (name, r) = ask(
        &entry,
        Write(ops::Mutate {
            actor: actor.clone(),
            branch: branch.clone(),
            source: body.query,
            name: body.name,
            params: body.params.unwrap_or(Json::Null),
            expect_head,
        }),
        STOPPED_WRITING,
    )
    .await?;
    ok(&ChangeOutput::of_write(&branch, &name, &actor, &r))
}

/// The conditional routes' header.
pub(super) const IF_GRAPH_COMMIT: &str = "Omnigraph-If-Graph-Commit";

/// The commit id of the `Omnigraph-If-Graph-Commit` header: bare or a
/// strong entity tag (`"<id>"`). 400 when it is missing, `*`, weak
/// (`W/"…"`) or empty.
pub(super) fn if_graph_commit(req: &HttpRequest) -> Result<CommitId, ApiError> {
    let v = req
        .headers()
        .get(IF_GRAPH_COMMIT)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "a conditional write needs the `{IF_GRAPH_COMMIT}: <commit id>` header (the `graph_commit_id` of the read it depends on)"
            ))
        })?
        .to_str()
        .map_err(|_| ApiError::bad_request(format!("`{IF_GRAPH_COMMIT}` must be ASCII")))?
        .trim();
    if v == "*" || v.starts_with("W/") {
        return Err(ApiError::bad_request(format!(
            "`{IF_GRAPH_COMMIT}` takes one commit id; the `*` and weak (`W/\"…\"`) forms are refused"
        )));
    }
    let id = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    if id.is_empty() || id.contains('"') || id.contains(',') {
        return Err(ApiError::bad_request(format!(
            "`{IF_GRAPH_COMMIT}` must name one commit id, got `{v}`"
        )));
    }
    Ok(CommitId::from_text(id))
}

/// 400 when an ordinary write route gets the conditional header: the
/// condition would otherwise be ignored; `route` is the one to use.
pub(super) fn unconditional(req: &HttpRequest, route: &str) -> Result<Option<CommitId>, ApiError> {
    if req.headers().contains_key(IF_GRAPH_COMMIT) {
        return Err(ApiError::bad_request(format!(
            "`{IF_GRAPH_COMMIT}` is honoured only by the conditional routes; send this write to POST {route}"
        )));
    }
    Ok(None)
}

pub(super) fn declared_len(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Both load routes: authorize `change` on the branch before any engine
/// work, then `branch_create` when `from` creates it; admit, read the
/// body, write.
///
/// Admission charges the bytes the load holds while in flight: the body
/// already read (the JSON envelope), its `Content-Length`, or, for a body
/// sent without one (chunked), this route's limit ([`LOAD_BODY_LIMIT`]),
/// the most it can grow to; a budget smaller than that refuses such a
/// body with 413 and says to send `Content-Length`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_load(
    req: &HttpRequest,
    state: &AppState,
    entry: &GraphEntry,
    actor: &str,
    params: LoadParams,
    body: LoadBody,
) -> Res {
    let branch = params.branch.unwrap_or_else(|| MAIN.to_string());
    let mode = params.mode.unwrap_or(LoadModeWire::Merge);
    authorize(entry, actor, Action::Change, on_branch(&branch))?;
    let existing = ask(entry, Read(ops::ListBranches), STOPPED_READING).await?;
    let creates = !existing.iter().any(|b| b.name == branch);
    if creates {
        match &params.from {
            Some(_) => authorize(entry, actor, Action::BranchCreate, on_target(&branch))?,
            None => {
                return Err(ApiError::not_found(format!(
                    "branch `{branch}` does not exist; pass `from` to create it"
                )));
            }
        }
    }
    let (bytes, unsized_body) = match (&body, declared_len(req)) {
        (LoadBody::Given(b), _) => (b.len() as u64, false),
        (LoadBody::Raw(_), Some(n)) => (n, false),
        (LoadBody::Raw(_), None) => (LOAD_BODY_LIMIT as u64, true),
    };
    let _permit = match admit(state, actor, bytes).await {
        Err(mut e) if unsized_body && e.status == StatusCode::PAYLOAD_TOO_LARGE => {
            e.message = format!(
                "{}; a body sent without Content-Length (chunked) is charged this route's limit of {LOAD_BODY_LIMIT} bytes: send Content-Length",
                e.message
            );
            return Err(e);
        }
        r => r?,
    };
    let (data, body_kind) = match body {
        LoadBody::Raw(p) => (read_body(p, LOAD_BODY_LIMIT).await?, BodyKind::Ndjson),
        LoadBody::Given(b) => (b, BodyKind::Envelope),
    };
    let engine_mode = LoadMode::from(mode);
    // Like a mutation, a load is prepared concurrently and committed in
    // the GraphActor's commit queue.
    let op = ops::Load {
        bulk: data.len() >= BULK_LOAD_BYTES,
        data,
        mode: engine_mode,
        allow_empty: params.allow_empty.unwrap_or(false),
        branch: branch.clone(),
        from: params.from.clone(),
        actor: actor.to_string(),
    };
    let r = ask(entry, Write(op), STOPPED_WRITING).await?;
    let load = GraphBatchLoadOutput::of_write(&branch, creates, params.from, mode, actor, &r);
    match body_kind {
        BodyKind::Ndjson => ok(&load),
        BodyKind::Envelope => ok(&IngestOutput {
            uri: entry.spec.uri.clone(),
            load,
        }),
    }
}

pub(super) enum LoadBody {
    Raw(web::Payload),
    Given(Bytes),
}

/// Which load route answers: `load/ndjson` ([`GraphBatchLoadOutput`]) or
/// the JSON envelope of `load`/`ingest` ([`IngestOutput`]).
pub(super) enum BodyKind {
    Ndjson,
    Envelope,
}

#[utoipa::path(post, path = "/graphs/{id}/load/ndjson", params(LoadParams), request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = GraphBatchLoadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn load_ndjson(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    params: Query<LoadParams>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    run_load(
        &req,
        &state,
        &entry,
        &actor,
        params.into_inner(),
        LoadBody::Raw(body),
    )
    .await
}

#[utoipa::path(post, path = "/graphs/{id}/load", request_body = LoadRequest, responses((status = 200, body = IngestOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn load_envelope(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let raw = read_body(body, LOAD_BODY_LIMIT).await?;
    let body: LoadRequest = parse_json(&raw, None)?;
    let params = LoadParams {
        branch: body.branch,
        from: body.from,
        mode: body.mode,
        allow_empty: body.allow_empty,
    };
    run_load(
        &req,
        &state,
        &entry,
        &actor,
        params,
        LoadBody::Given(Bytes::from(body.data)),
    )
    .await
}
