//! Read routes: snapshot, query (and the deprecated `/read`, `/change`,
//! `/ingest` aliases).

use super::*;

#[utoipa::path(get, path = "/graphs/{id}/snapshot", params(BranchParam), responses((status = 200, body = SnapshotOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn snapshot(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BranchParam>,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let branch = q.into_inner().branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    let op = ops::TakeSnapshot {
        at: ReadAt::Branch(branch),
    };
    let s = ask(&entry, Read(op), STOPPED_READING).await?;
    ok(&SnapshotOutput::of(&s))
}

/// Sets its flag when dropped: a query handed the flag stops soon after
/// ([`Graph::query_with`](crate::engine::Graph::query_with)).
#[derive(Default)]
pub(super) struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_read(
    entry: &GraphEntry,
    actor: &str,
    q: CheckedQuery,
    params: Json,
    branch: Option<String>,
    snapshot: Option<String>,
    limits: Option<crate::api::QueryLimitsInput>,
) -> Res {
    let (at, policy_branch) = read_target(entry, branch.clone(), snapshot.clone()).await?;
    authorize(entry, actor, Action::Read, on_branch(&policy_branch))?;
    let name = q.name.clone();
    // Dropped with this handler: the query, running on the Lance runtime,
    // stops at its next check. The server drops a handler whose client
    // closed its connection (`h1_allow_half_closed(false)`, in
    // `omnigraph-server`), so a disconnect cancels the query.
    let cancel = CancelOnDrop::default();
    let control = QueryControl {
        cancel: Some(cancel.0.clone()),
        lower: limits.unwrap_or_default().into(),
    };
    let op = ops::RunChecked {
        query: q,
        params,
        at,
        control,
    };
    let r = ask(entry, Read(op), STOPPED_READING).await?;
    drop(cancel);
    ok(&read_output(name, r, policy_branch, snapshot))
}

/// The wire answer of a read: the rows, and where they were read (a
/// snapshot, or the branch).
fn read_output(
    name: String,
    r: crate::engine::exec::QueryResult,
    branch: String,
    snapshot: Option<String>,
) -> ReadOutput {
    ReadOutput {
        query_name: name,
        target: ReadTargetOutput {
            branch: if snapshot.is_some() {
                None
            } else {
                Some(branch)
            },
            snapshot,
        },
        columns: r.columns,
        row_count: r.rows.len(),
        rows: r.rows,
        graph_commit_id: Some(r.graph_commit_id),
    }
}

#[utoipa::path(post, path = "/graphs/{id}/query", request_body = QueryRequest, responses((status = 200, body = ReadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn query(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    query_inner(req, state, id, body, false).await
}

/// `/query`, or with `legacy` the deprecated `/read`: the same rows without
/// `graph_commit_id` (the reference keeps `/read`'s body byte-stable).
pub(super) async fn query_inner(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
    legacy: bool,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (_, body): (Bytes, QueryRequest) = read_json(body, None).await?;
    // Where the read goes, and the branch policy decides on (a snapshot's
    // own branch: one trip to the actor to read the commit), before the
    // query is compiled: a caller who may not read spends nothing of the
    // server's on its source.
    let (at, policy_branch) = read_target(&entry, body.branch, body.snapshot.clone()).await?;
    authorize(&entry, &actor, Action::Read, on_branch(&policy_branch))?;
    // Dropped with this handler: the query, running on the Lance runtime,
    // stops at its next check (a client that disconnects cancels it).
    let cancel = CancelOnDrop::default();
    let control = QueryControl {
        cancel: Some(cancel.0.clone()),
        lower: body.limits.unwrap_or_default().into(),
    };
    // One trip: the actor compiles against the catalog at `at` and runs it.
    let (name, r) = ask(
        &entry,
        Read(ops::RunQuery {
            source: body.query,
            name: body.name,
            params: body.params.unwrap_or(Json::Null),
            at,
            control,
        }),
        STOPPED_READING,
    )
    .await?;
    drop(cancel);
    let res = ok(&read_output(name, r, policy_branch, body.snapshot))?;
    if !legacy {
        return Ok(res);
    }
    let bytes = actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "response body"))?;
    let mut v: Json = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("graph_commit_id");
    }
    ok(&v)
}

/// Marks a deprecated route's response (success or error) with
/// `Deprecation: true` (RFC 9745) and `Link: <successor>;
/// rel="successor-version"` (RFC 8288), as the reference does.
pub(super) fn deprecated(r: Res, successor: &str) -> HttpResponse {
    let mut res = match r {
        Ok(res) => res,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    let h = res.headers_mut();
    h.insert(
        actix_web::http::header::HeaderName::from_static("deprecation"),
        actix_web::http::header::HeaderValue::from_static("true"),
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!(
        "<{successor}>; rel=\"successor-version\""
    )) {
        h.insert(actix_web::http::header::LINK, v);
    }
    res
}

/// Deprecated alias of `/query` (legacy field names accepted, no
/// `graph_commit_id` in the response).
#[deprecated = "use POST /graphs/{id}/query"]
#[utoipa::path(post, path = "/graphs/{id}/read", request_body = QueryRequest, responses((status = 200, description = "The rows `/query` answers, without `graph_commit_id`; the response carries `Deprecation: true` and `Link: <query>; rel=\"successor-version\"`", body = ReadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn read_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(query_inner(req, state, id, body, true).await, "query")
}

/// Deprecated alias of `/mutate`.
#[deprecated = "use POST /graphs/{id}/mutate"]
#[utoipa::path(post, path = "/graphs/{id}/change", request_body = ChangeRequest, responses((status = 200, description = "What `/mutate` answers; the response carries `Deprecation: true` and `Link: <mutate>; rel=\"successor-version\"`", body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn change_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(mutate(req, state, id, body).await, "mutate")
}

/// Deprecated alias of `/load` (the JSON envelope).
#[deprecated = "use POST /graphs/{id}/load"]
#[utoipa::path(post, path = "/graphs/{id}/ingest", request_body = LoadRequest, responses((status = 200, description = "What `/load` answers; the response carries `Deprecation: true` and `Link: <load>; rel=\"successor-version\"`", body = IngestOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn ingest_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(load_envelope(req, state, id, body).await, "load")
}
