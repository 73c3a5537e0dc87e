//! Route handlers. See the module docs of [`crate::http`] for the order of
//! checks every handler follows.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use futures::{FutureExt, StreamExt};
use omnigraph_sync::admission::Permit;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{ApiError, AppState, BODY_LIMIT, LOAD_BODY_LIMIT, caller};
use crate::actors::supervisor::{Quarantine, Restart, StoredQueries};
use crate::actors::{Admit, GraphEntry, Mutate, Read, Write};
use crate::api::*;
use crate::engine::exec::QueryControl;
use crate::engine::load::LoadMode;
use crate::engine::{EngineError, Graph, ReadAt};
use crate::policy::{Action, BranchCtx};
use crate::query::CheckedQuery;

const MAIN: &str = "main";

/// Mounts every route.
#[allow(deprecated)] // the deprecated aliases are still served
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/healthz", web::head().to(healthz))
        .route("/openapi.json", web::get().to(openapi))
        .route("/metrics", web::get().to(metrics))
        .route("/graphs", web::get().to(list_graphs))
        .route("/admin/graphs", web::get().to(admin_graphs))
        .route(
            "/admin/graphs/{id}/quarantine",
            web::post().to(admin_quarantine),
        )
        .route("/admin/graphs/{id}/restart", web::post().to(admin_restart))
        .route("/graphs/{id}/snapshot", web::get().to(snapshot))
        .route("/graphs/{id}/query", web::post().to(query))
        .route("/graphs/{id}/mutate", web::post().to(mutate))
        .route("/graphs/{id}/load", web::post().to(load_envelope))
        .route("/graphs/{id}/load/ndjson", web::post().to(load_ndjson))
        .route("/graphs/{id}/export", web::post().to(export))
        .route("/graphs/{id}/schema", web::get().to(schema))
        .route("/graphs/{id}/schema/apply", web::post().to(schema_apply))
        .route("/graphs/{id}/branches", web::get().to(list_branches))
        .route("/graphs/{id}/branches", web::post().to(create_branch))
        .route(
            "/graphs/{id}/branches/merge",
            web::post().to(merge_branches),
        )
        .route(
            "/graphs/{id}/branches/{branch}",
            web::delete().to(delete_branch),
        )
        .route("/graphs/{id}/commits", web::get().to(list_commits))
        .route(
            "/graphs/{id}/commits/{commit_id}",
            web::get().to(show_commit),
        )
        .route("/graphs/{id}/queries", web::get().to(list_queries))
        .route("/graphs/{id}/queries/{name}", web::post().to(invoke_query))
        // Deprecated aliases kept by the reference (RFC 9745 / RFC 8288 headers).
        .route("/graphs/{id}/read", web::post().to(read_alias))
        .route("/graphs/{id}/change", web::post().to(change_alias))
        .route("/graphs/{id}/ingest", web::post().to(ingest_alias));
}

type Res = Result<HttpResponse, ApiError>;

fn ok<T: serde::Serialize>(v: &T) -> Res {
    Ok(HttpResponse::Ok().json(v))
}

/// Reads a request body up to `limit` bytes (413 beyond it), whole within
/// [`super::body_timeout`] (408 past it).
async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let t = super::body_timeout();
    match tokio::time::timeout(t, read_body_inner(payload, limit)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms; send it at once (the limit is OMNIGRAPH_BODY_TIMEOUT_MS)",
                t.as_millis()
            ),
        )),
    }
}

async fn read_body_inner(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body exceeds this route's limit of {limit} bytes; split it into smaller requests"
                ),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses a JSON body; an empty body is `T::default()` when `empty` is given.
fn parse_json<T: DeserializeOwned>(body: &[u8], empty: Option<T>) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace)
        && let Some(d) = empty
    {
        return Ok(d);
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body at line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// A ready graph or 404 (unknown, quarantined and restarting alike).
fn graph(state: &AppState, id: &str) -> Result<GraphEntry, ApiError> {
    state
        .registry
        .ready(id)
        .ok_or_else(|| ApiError::not_found(format!("no graph `{id}` is being served")))
}

/// Decides `action` for `actor` on a graph; logs the decision.
fn authorize(
    entry: &GraphEntry,
    actor: &str,
    action: Action,
    ctx: BranchCtx<'_>,
) -> Result<(), ApiError> {
    let d = entry.spec.gate.decide(actor, action, &entry.spec.id, &ctx);
    tracing::info!(
        graph = %entry.spec.id,
        actor,
        action = action.name(),
        branch = ctx.branch.unwrap_or(""),
        target = ctx.target.unwrap_or(""),
        allowed = d.allowed,
        rules = ?d.rules,
        "policy decision"
    );
    if d.allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "actor `{actor}` may not `{}` on graph `{}`{}",
            action.name(),
            entry.spec.id,
            ctx.branch
                .or(ctx.target)
                .map(|b| format!(" (branch `{b}`)"))
                .unwrap_or_default()
        )))
    }
}

fn on_branch(b: &str) -> BranchCtx<'_> {
    BranchCtx {
        branch: Some(b),
        target: None,
    }
}

fn on_target(b: &str) -> BranchCtx<'_> {
    BranchCtx {
        branch: None,
        target: Some(b),
    }
}

/// Admits a write for `actor` carrying `bytes`; 429 (or 413) otherwise.
async fn admit(state: &AppState, actor: &str, bytes: u64) -> Result<Permit, ApiError> {
    let r = state
        .admission
        .send(Admit {
            actor: actor.to_string(),
            bytes,
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("admission: {e}")))?;
    r.map_err(|rej| {
        if rej.too_large {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, rej.message)
        } else {
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!("{}; retry after {} s", rej.message, rej.retry_after),
                retry_after: Some(rej.retry_after),
                merge_conflicts: Vec::new(),
            }
        }
    })
}

async fn read<T: Send + 'static>(
    entry: &GraphEntry,
    job: impl FnOnce(Arc<Graph>) -> futures::future::BoxFuture<'static, Result<T, EngineError>>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    let addr = entry.addr.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("no graph `{}` is being served", entry.spec.id))
    })?;
    let r = addr.send(Read::new(job)).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the graph stopped while answering; retry",
        )
    })?;
    Ok(r?)
}

async fn write<T: Send + 'static>(
    entry: &GraphEntry,
    actor: &str,
    keys: Vec<(String, String)>,
    job: impl FnOnce(Arc<Graph>) -> futures::future::BoxFuture<'static, Result<T, EngineError>>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    send_write(entry, Write::new(actor, keys, job)).await
}

/// Bodies of at least this many bytes are loads prepared on the bulk
/// runtime (`Write::bulk`): about 1,000 typical JSONL rows.
pub const BULK_LOAD_BYTES: usize = 64 << 10;

async fn send_write<T: Send + 'static>(entry: &GraphEntry, w: Write<T>) -> Result<T, ApiError> {
    let addr = entry.addr.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("no graph `{}` is being served", entry.spec.id))
    })?;
    let r = addr.send(w).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the graph stopped while writing; read the branch before retrying",
        )
    })?;
    Ok(r?)
}

/// Where a read goes: `snapshot` (a commit id) or `branch` (default main).
/// Returns the read position and the branch policy is decided on (a
/// snapshot's own branch).
async fn read_target(
    entry: &GraphEntry,
    branch: Option<String>,
    snapshot: Option<String>,
) -> Result<(ReadAt, String), ApiError> {
    match (branch, snapshot) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either `branch` or `snapshot`, not both",
        )),
        (_, Some(commit)) => {
            let c2 = commit.clone();
            let c = read(entry, move |g| async move { g.commit(&c2).await }.boxed()).await?;
            Ok((ReadAt::Commit(commit), c.branch))
        }
        (b, None) => {
            let b = b.unwrap_or_else(|| MAIN.to_string());
            Ok((ReadAt::Branch(b.clone()), b))
        }
    }
}

/// Compiles `.gq` source against the graph's catalog and picks `name` (or
/// the only query): [`crate::engine::mutate::compile_request`], a 400 when
/// it cannot.
fn compile(
    catalog: &crate::schema::Catalog,
    src: &str,
    name: Option<&str>,
) -> Result<CheckedQuery, ApiError> {
    Ok(crate::engine::mutate::compile_request(catalog, src, name)?)
}

/// The open graph behind an entry (for compiling against its catalog).
async fn open_graph(entry: &GraphEntry) -> Result<Arc<Graph>, ApiError> {
    read(entry, |g| async move { Ok(g) }.boxed()).await
}

/// The graph's handle after reading its newest manifest, so it holds a
/// schema another handle or process applied.
async fn current_graph(entry: &GraphEntry) -> Result<Arc<Graph>, ApiError> {
    read(entry, |g| {
        async move {
            g.manifest().await?;
            Ok(g)
        }
        .boxed()
    })
    .await
}

fn all_table_keys(g: &Graph, branch: &str) -> Vec<(String, String)> {
    g.table_keys()
        .into_iter()
        .map(|k| (k, branch.to_string()))
        .collect()
}

// ---- server-level -------------------------------------------------------

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthOutput)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthOutput {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        internal_schema_version: crate::engine::INTERNAL_SCHEMA_VERSION,
    })
}

async fn openapi(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(super::openapi_json(!state.tokens.is_empty()))
}

/// `GET /metrics`: with bearer tokens configured, only for a caller the
/// server policy grants `graph_list` (the metrics name every graph,
/// quarantined ones too, like `GET /admin/graphs`); open without tokens.
async fn metrics(req: HttpRequest, state: Data<AppState>) -> Res {
    if !state.tokens.is_empty() {
        let actor = caller(&req, &state.tokens)?;
        server_authorize(&state, &actor, Action::GraphList)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

fn server_authorize(state: &AppState, actor: &str, action: Action) -> Result<(), ApiError> {
    let d = state
        .server_gate
        .decide(actor, action, "root", &BranchCtx::default());
    tracing::info!(actor, action = action.name(), allowed = d.allowed, rules = ?d.rules, "policy decision");
    if d.allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "actor `{actor}` may not `{}` on this server; a server policy bundle (--server-policy) must grant it",
            action.name()
        )))
    }
}

#[utoipa::path(get, path = "/graphs", responses((status = 200, body = GraphListResponse), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn list_graphs(req: HttpRequest, state: Data<AppState>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphList)?;
    let graphs = state
        .registry
        .all()
        .into_iter()
        .filter(|e| e.state == crate::actors::GraphState::Ready)
        .map(|e| GraphInfo {
            graph_id: e.spec.id.clone(),
            uri: e.spec.uri.clone(),
        })
        .collect();
    ok(&GraphListResponse { graphs })
}

#[utoipa::path(get, path = "/admin/graphs", responses((status = 200, body = AdminGraphListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn admin_graphs(req: HttpRequest, state: Data<AppState>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphAdmin)?;
    let graphs = state
        .registry
        .all()
        .into_iter()
        .map(|e| AdminGraphInfo {
            graph_id: e.spec.id.clone(),
            uri: e.spec.uri.clone(),
            state: e.state.name().to_string(),
            reason: match &e.state {
                crate::actors::GraphState::Quarantined { reason } => Some(reason.clone()),
                _ => None,
            },
            crashes: e.crashes,
        })
        .collect();
    ok(&AdminGraphListOutput { graphs })
}

#[utoipa::path(post, path = "/admin/graphs/{id}/quarantine", responses((status = 200, body = AdminGraphListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn admin_quarantine(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphAdmin)?;
    let id = id.into_inner();
    state
        .supervisor
        .send(Quarantine {
            id: id.clone(),
            reason: format!("quarantined by `{actor}`"),
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::not_found)?;
    admin_graphs(req, state).await
}

#[utoipa::path(post, path = "/admin/graphs/{id}/restart", responses((status = 200, body = AdminGraphListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn admin_restart(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphAdmin)?;
    let id = id.into_inner();
    if !state.registry.graphs.contains_key(&id) {
        return Err(ApiError::not_found(format!(
            "no graph `{id}` is configured"
        )));
    }
    state
        .supervisor
        .send(Restart { id: id.clone() })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|reason| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("graph `{id}` did not reopen and stays quarantined: {reason}"),
            )
        })?;
    admin_graphs(req, state).await
}

// ---- reads --------------------------------------------------------------

#[utoipa::path(get, path = "/graphs/{id}/snapshot", params(BranchParam), responses((status = 200, body = SnapshotOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn snapshot(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BranchParam>,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let branch = q.into_inner().branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    let b2 = branch.clone();
    let s = read(&entry, move |g| {
        async move { g.snapshot(&ReadAt::Branch(b2)).await }.boxed()
    })
    .await?;
    ok(&SnapshotOutput::of(&s))
}

/// The `outcome` label of `omnigraph_queries_total`.
fn query_outcome<T>(r: &Result<T, EngineError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(EngineError::Cancelled { .. }) => "cancelled",
        Err(EngineError::Budget { .. }) => "budget",
        Err(EngineError::Overloaded { .. }) => "overloaded",
        Err(_) => "error",
    }
}

/// Sets its flag when dropped: a query handed the flag stops soon after
/// ([`Graph::query_with`](crate::engine::Graph::query_with)).
#[derive(Default)]
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_read(
    state: &AppState,
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
    let (metrics, gid) = (state.metrics.clone(), entry.spec.id.clone());
    let r = read(entry, move |g| {
        async move {
            let running = metrics.query_running(&gid);
            let r = g.query_with(&q, &params, &at, control).await;
            drop(running);
            metrics.query_outcome(&gid, query_outcome(&r));
            r
        }
        .boxed()
    })
    .await?;
    drop(cancel);
    ok(&ReadOutput {
        query_name: name,
        target: ReadTargetOutput {
            branch: if snapshot.is_some() {
                None
            } else {
                Some(policy_branch)
            },
            snapshot,
        },
        columns: r.columns,
        row_count: r.rows.len(),
        rows: r.rows,
        graph_commit_id: Some(r.graph_commit_id),
    })
}

#[utoipa::path(post, path = "/graphs/{id}/query", request_body = QueryRequest, responses((status = 200, body = ReadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn query(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    query_inner(req, state, id, body, false).await
}

/// `/query`, or with `legacy` the deprecated `/read`: the same rows without
/// `graph_commit_id` (the reference keeps `/read`'s body byte-stable).
async fn query_inner(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
    legacy: bool,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let body: QueryRequest = parse_json(&read_body(body, BODY_LIMIT).await?, None)?;
    // A snapshot read checks against the schema of that commit.
    let catalog = match &body.snapshot {
        Some(c) => {
            let c2 = c.clone();
            read(&entry, move |g| {
                async move { g.catalog_at(&ReadAt::Commit(c2)).await }.boxed()
            })
            .await?
        }
        None => open_graph(&entry).await?.catalog(),
    };
    let q = compile(&catalog, &body.query, body.name.as_deref())?;
    if q.is_mutation() {
        return Err(ApiError::bad_request(format!(
            "`{}` is a mutation; send it to POST /graphs/{}/mutate",
            q.name, entry.spec.id
        )));
    }
    let res = run_read(
        &state,
        &entry,
        &actor,
        q,
        body.params.unwrap_or(Json::Null),
        body.branch,
        body.snapshot,
        body.limits,
    )
    .await?;
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
fn deprecated(r: Res, successor: &str) -> HttpResponse {
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
#[utoipa::path(post, path = "/graphs/{id}/read", request_body = QueryRequest, responses((status = 200, description = "The rows `/query` answers, without `graph_commit_id`; the response carries `Deprecation: true` and `Link: <query>; rel=\"successor-version\"`", body = ReadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn read_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(query_inner(req, state, id, body, true).await, "query")
}

/// Deprecated alias of `/mutate`.
#[deprecated = "use POST /graphs/{id}/mutate"]
#[utoipa::path(post, path = "/graphs/{id}/change", request_body = ChangeRequest, responses((status = 200, description = "What `/mutate` answers; the response carries `Deprecation: true` and `Link: <mutate>; rel=\"successor-version\"`", body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn change_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(mutate(req, state, id, body).await, "mutate")
}

/// Deprecated alias of `/load` (the JSON envelope).
#[deprecated = "use POST /graphs/{id}/load"]
#[utoipa::path(post, path = "/graphs/{id}/ingest", request_body = LoadRequest, responses((status = 200, description = "What `/load` answers; the response carries `Deprecation: true` and `Link: <load>; rel=\"successor-version\"`", body = IngestOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn ingest_alias(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> HttpResponse {
    deprecated(load_envelope(req, state, id, body).await, "load")
}

#[utoipa::path(get, path = "/graphs/{id}/schema", responses((status = 200, body = SchemaOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn schema(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    authorize(&entry, &actor, Action::Read, on_branch(MAIN))?;
    let source = read(&entry, |g| {
        async move {
            // Picks up a schema another handle or process applied.
            g.manifest().await?;
            Ok(g.schema_source())
        }
        .boxed()
    })
    .await?;
    ok(&SchemaOutput {
        schema_source: source,
    })
}

#[utoipa::path(post, path = "/graphs/{id}/schema/apply", request_body = SchemaApplyRequest, responses((status = 200, body = SchemaApplyOutput), (status = 400, description = "The schema has errors, or the migration is refused (unsupported steps, drops without `allow_data_loss`, other branches, rows breaking a new constraint)", body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn schema_apply(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let raw = read_body(body, BODY_LIMIT).await?;
    let body: SchemaApplyRequest = parse_json(&raw, None)?;
    authorize(&entry, &actor, Action::SchemaApply, on_target(MAIN))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    let keys = all_table_keys(&*open_graph(&entry).await?, MAIN);
    // The graph's stored queries must still type check against the new
    // schema; otherwise they would be served broken. A schema that does not
    // compile is left to `apply_schema`, which reports it.
    if let Ok(catalog) = crate::schema::compile_schema_file("<request>", &body.schema_source)
        && let Err(why) = entry.queries.recheck(&catalog, None)
    {
        return Err(ApiError::bad_request(format!(
            "this schema would break the graph's stored queries; change the query files \
             (then restart the graph) or keep what they use:\n{why}"
        )));
    }
    let (src, a2, allow) = (body.schema_source, actor.clone(), body.allow_data_loss);
    let r = write(&entry, &actor, keys, move |g| {
        async move { g.apply_schema("<request>", &src, allow, &a2).await }.boxed()
    })
    .await?;
    if r.applied
        && let Err(e) = fresh_queries(&state, &entry, &*open_graph(&entry).await?)
    {
        // Checked above; only a concurrent apply of another schema gets here.
        tracing::warn!(graph = %entry.spec.id, error = %e.message, "stored queries after schema apply");
    }
    ok(&SchemaApplyOutput::of(&entry.spec.uri, &actor, &r))
}

#[utoipa::path(get, path = "/graphs/{id}/branches", responses((status = 200, body = BranchListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn list_branches(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let bs = read(&entry, |g| async move { g.branches().await }.boxed()).await?;
    // Only the branches the caller may read; none readable is the refusal
    // for `main`.
    let branches: Vec<String> = bs
        .into_iter()
        .map(|b| b.name)
        .filter(|b| authorize(&entry, &actor, Action::Read, on_branch(b)).is_ok())
        .collect();
    if branches.is_empty() {
        authorize(&entry, &actor, Action::Read, on_branch(MAIN))?;
    }
    ok(&BranchListOutput { branches })
}

#[utoipa::path(get, path = "/graphs/{id}/commits", params(BranchParam), responses((status = 200, body = CommitListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn list_commits(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BranchParam>,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let branch = q.into_inner().branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    let b2 = branch.clone();
    let cs = read(&entry, move |g| async move { g.commits(&b2).await }.boxed()).await?;
    ok(&CommitListOutput {
        commits: cs
            .iter()
            .map(|c| CommitOutput::from_commit(c, None))
            .collect(),
    })
}

#[utoipa::path(get, path = "/graphs/{id}/commits/{commit_id}", responses((status = 200, body = CommitOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn show_commit(req: HttpRequest, state: Data<AppState>, path: Path<(String, String)>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let (id, commit) = path.into_inner();
    let entry = graph(&state, &id)?;
    let c = read(&entry, move |g| {
        async move { g.commit(&commit).await }.boxed()
    })
    .await?;
    authorize(&entry, &actor, Action::Read, on_branch(&c.branch))?;
    ok(&CommitOutput::from_commit(&c, None))
}

/// Streams NDJSON in chunks of at most 64 KiB through a two-chunk queue:
/// memory stays constant whatever the graph's size, and a slow client
/// slows the export.
#[utoipa::path(post, path = "/graphs/{id}/export", request_body = ExportRequest, responses((status = 200, description = "NDJSON stream, one entity per line", content_type = "application/x-ndjson"), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn export(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let body: ExportRequest = parse_json(
        &read_body(body, BODY_LIMIT).await?,
        Some(ExportRequest::default()),
    )?;
    let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Export, on_branch(&branch))?;
    let g = open_graph(&entry).await?;
    for t in &body.type_names {
        if g.catalog().node(t).is_none() && g.catalog().edge(t).is_none() {
            return Err(ApiError::bad_request(format!(
                "`{t}` is not a node or edge type of graph `{}`",
                entry.spec.id
            )));
        }
    }
    // The branch must exist before we answer 200.
    let b2 = branch.clone();
    read(&entry, move |g| {
        async move { g.view(&ReadAt::Branch(b2)).await.map(|_| ()) }.boxed()
    })
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(2);
    let types = if body.type_names.is_empty() {
        None
    } else {
        Some(body.type_names)
    };
    let rt = state.rt.clone();
    let graph_id = entry.spec.id.clone();
    state.rt.spawn_blocking(move || {
        let mut w = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        };
        let at = ReadAt::Branch(branch);
        let r = rt.block_on(g.export(&at, types.as_deref(), &mut w, |_| {}));
        let r = r.and_then(|_| {
            std::io::Write::flush(&mut w).map_err(|e| EngineError::Io {
                path: "<response>".into(),
                source: e,
            })
        });
        if let Err(e) = r {
            tracing::error!(graph = %graph_id, error = %e, "export failed after 200; the body ends early");
            let _ = futures::executor::block_on(tx.send(Err(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map_err(actix_web::error::ErrorInternalServerError), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}

const CHUNK: usize = 64 << 10;

struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        futures::executor::block_on(self.tx.send(Ok(chunk))).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

// ---- writes -------------------------------------------------------------

/// Admits and runs a compiled mutation on `branch`; the caller has already
/// authorized `change` there (`/mutate` before compiling the source, a
/// stored mutation after `invoke_query`).
async fn run_mutation(
    state: &AppState,
    entry: &GraphEntry,
    actor: &str,
    q: CheckedQuery,
    params: Json,
    branch: String,
    bytes: u64,
) -> Res {
    let _permit = admit(state, actor, bytes).await?;
    // A mutation is prepared concurrently with other writes and committed
    // in the GraphActor's commit queue: it holds no (table, branch) key.
    let keys = Vec::new();
    let name = q.name.clone();
    let (b2, a2) = (branch.clone(), actor.to_string());
    let r = write(entry, actor, keys, move |g| {
        async move { g.mutate(&q, &params, &b2, &a2).await }.boxed()
    })
    .await?;
    ok(&ChangeOutput::of_write(&branch, &name, actor, &r))
}

#[utoipa::path(post, path = "/graphs/{id}/mutate", request_body = ChangeRequest, responses((status = 200, body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn mutate(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let raw = read_body(body, BODY_LIMIT).await?;
    let body: ChangeRequest = parse_json(&raw, None)?;
    let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
    // Before the query is compiled: a caller who may not change the
    // branch spends nothing of the server's on its source.
    authorize(&entry, &actor, Action::Change, on_branch(&branch))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    // One trip to the GraphActor: it compiles the source against its
    // catalog, prepares and commits the write.
    let addr = entry.addr.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("no graph `{}` is being served", entry.spec.id))
    })?;
    let (name, r) = addr
        .send(Mutate {
            actor: actor.clone(),
            branch: branch.clone(),
            source: body.query,
            name: body.name,
            params: body.params.unwrap_or(Json::Null),
        })
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the graph stopped while writing; read the branch before retrying",
            )
        })??;
    ok(&ChangeOutput::of_write(&branch, &name, &actor, &r))
}

fn declared_len(req: &HttpRequest) -> Option<u64> {
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
async fn run_load(
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
    let existing = read(entry, |g| async move { g.branches().await }.boxed()).await?;
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
    let keys = Vec::new();
    let (b2, a2, from) = (branch.clone(), actor.to_string(), params.from.clone());
    let allow_empty = params.allow_empty.unwrap_or(false);
    let big = data.len() >= BULK_LOAD_BYTES;
    let mut w = Write::new(actor, keys, move |g: Arc<Graph>| {
        async move {
            g.load_with(
                std::io::Cursor::new(data),
                engine_mode,
                allow_empty,
                &b2,
                from.as_deref(),
                &a2,
            )
            .await
        }
        .boxed()
    });
    if big {
        w = w.bulk();
    }
    let r = send_write(entry, w).await?;
    let load = GraphBatchLoadOutput::of_write(&branch, creates, params.from, mode, actor, &r);
    match body_kind {
        BodyKind::Ndjson => ok(&load),
        BodyKind::Envelope => ok(&IngestOutput {
            uri: entry.spec.uri.clone(),
            load,
        }),
    }
}

enum LoadBody {
    Raw(web::Payload),
    Given(Bytes),
}

/// Which load route answers: `load/ndjson` ([`GraphBatchLoadOutput`]) or
/// the JSON envelope of `load`/`ingest` ([`IngestOutput`]).
enum BodyKind {
    Ndjson,
    Envelope,
}

#[utoipa::path(post, path = "/graphs/{id}/load/ndjson", params(LoadParams), request_body(content = String, content_type = "application/x-ndjson"), responses((status = 200, body = GraphBatchLoadOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn load_ndjson(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    params: Query<LoadParams>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
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

#[utoipa::path(post, path = "/graphs/{id}/load", request_body = LoadRequest, responses((status = 200, body = IngestOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn load_envelope(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
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

#[utoipa::path(post, path = "/graphs/{id}/branches", request_body = BranchCreateRequest, responses((status = 200, body = BranchCreateOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn create_branch(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let raw = read_body(body, BODY_LIMIT).await?;
    let body: BranchCreateRequest = parse_json(&raw, None)?;
    let from = body.from.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::BranchCreate, on_target(&body.name))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    let (n2, f2, a2) = (body.name.clone(), from.clone(), actor.clone());
    write(&entry, &actor, Vec::new(), move |g| {
        async move { g.create_branch(&n2, &f2, &a2).await }.boxed()
    })
    .await?;
    ok(&BranchCreateOutput {
        uri: entry.spec.uri.clone(),
        from,
        name: body.name,
        actor_id: Some(actor),
    })
}

#[utoipa::path(delete, path = "/graphs/{id}/branches/{branch}", responses((status = 200, body = BranchDeleteOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn delete_branch(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let (id, name) = path.into_inner();
    let entry = graph(&state, &id)?;
    authorize(&entry, &actor, Action::BranchDelete, on_target(&name))?;
    let _permit = admit(&state, &actor, 0).await?;
    let (n2, a2) = (name.clone(), actor.clone());
    let keys = all_table_keys(&*open_graph(&entry).await?, &name);
    write(&entry, &actor, keys, move |g| {
        async move { g.delete_branch(&n2, &a2).await }.boxed()
    })
    .await?;
    ok(&BranchDeleteOutput {
        uri: entry.spec.uri.clone(),
        name,
        actor_id: Some(actor),
    })
}

#[utoipa::path(post, path = "/graphs/{id}/branches/merge", request_body = BranchMergeRequest, responses((status = 200, body = BranchMergeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, description = "Merge conflicts (`merge_conflicts[]`); nothing was published", body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn merge_branches(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    let raw = read_body(body, BODY_LIMIT).await?;
    let body: BranchMergeRequest = parse_json(&raw, None)?;
    let target = body.target.unwrap_or_else(|| MAIN.to_string());
    let ctx = BranchCtx {
        branch: Some(&body.source),
        target: Some(&target),
    };
    authorize(&entry, &actor, Action::BranchMerge, ctx)?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
    // The merge writes the target and, with `delete_branch`, the source.
    let mut keys = all_table_keys(&*open_graph(&entry).await?, &target);
    if body.delete_branch {
        keys.extend(all_table_keys(&*open_graph(&entry).await?, &body.source));
    }
    let (s2, t2, a2, del) = (
        body.source.clone(),
        target.clone(),
        actor.clone(),
        body.delete_branch,
    );
    let r = write(&entry, &actor, keys, move |g| {
        async move { g.merge(&s2, &t2, &a2, del).await }.boxed()
    })
    .await?;
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    ok(&BranchMergeOutput {
        source: r.source,
        target: r.target,
        outcome,
        base: r.base,
        graph_commit_id: r.head,
        actor_id: Some(actor),
        branch_deleted: r.branch_deleted,
        branch_delete_error: r.branch_delete_error,
    })
}

// ---- stored queries -----------------------------------------------------

fn param_kind(t: &crate::schema::catalog::PropType) -> (ParamKind, Option<ParamKind>, Option<u32>) {
    use crate::schema::catalog::{PropType, ScalarType as S};
    let scalar = |s: &S| match s {
        S::String => ParamKind::String,
        S::Blob => ParamKind::Blob,
        S::Bool => ParamKind::Bool,
        S::I32 | S::U32 => ParamKind::Int,
        S::I64 | S::U64 => ParamKind::Bigint,
        S::F32 | S::F64 => ParamKind::Float,
        S::Date => ParamKind::Date,
        S::DateTime => ParamKind::Datetime,
    };
    match t {
        PropType::Scalar { scalar: s } => (scalar(s), None, None),
        PropType::List { item } => (ParamKind::List, Some(scalar(item)), None),
        PropType::Enum { .. } => (ParamKind::String, None, None),
        PropType::Vector { dim } => (ParamKind::Vector, None, Some(*dim)),
    }
}

#[utoipa::path(get, path = "/graphs/{id}/queries", responses((status = 200, body = QueriesCatalogOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, description = "The graph's schema changed outside this server and its stored queries no longer type check", body = ErrorOutput)), security(("bearer_token" = [])))]
async fn list_queries(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let entry = graph(&state, &id)?;
    authorize(&entry, &actor, Action::Read, on_branch(MAIN))?;
    let stored = fresh_queries(&state, &entry, &*current_graph(&entry).await?)?;
    let queries = stored
        .queries
        .values()
        .map(|q| QueryCatalogEntry {
            name: q.name.clone(),
            tool_name: q.name.clone(),
            description: q.description.clone(),
            instruction: q.instruction.clone(),
            mutation: q.is_mutation(),
            params: q
                .params
                .iter()
                .map(|p| {
                    let (kind, item_kind, vector_dim) = param_kind(&p.ty);
                    ParamDescriptor {
                        name: p.name.clone(),
                        kind,
                        item_kind,
                        vector_dim,
                        nullable: p.optional,
                    }
                })
                .collect(),
        })
        .collect();
    ok(&QueriesCatalogOutput { queries })
}

#[utoipa::path(post, path = "/graphs/{id}/queries/{name}", request_body = InvokeStoredQueryRequest, responses((status = 200, description = "ReadOutput for a stored read, ChangeOutput for a stored mutation"), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
async fn invoke_query(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
    body: web::Payload,
) -> Res {
    let actor = caller(&req, &state.tokens)?;
    let (id, name) = path.into_inner();
    let entry = graph(&state, &id)?;
    // Deny == unknown: one 404 body for both, so names cannot be probed.
    let unknown = || {
        ApiError::not_found(format!(
            "no stored query `{name}` on graph `{id}` for this caller"
        ))
    };
    let d = entry.spec.gate.decide(
        &actor,
        Action::InvokeQuery,
        &entry.spec.id,
        &BranchCtx::default(),
    );
    tracing::info!(graph = %id, actor, action = "invoke_query", query = %name, allowed = d.allowed, rules = ?d.rules, "policy decision");
    if !d.allowed {
        return Err(unknown());
    }
    // Stored queries checked against the schema the graph has now.
    let queries = fresh_queries(&state, &entry, &*current_graph(&entry).await?)?;
    let q = queries.queries.get(&name).cloned().ok_or_else(unknown)?;
    let raw = read_body(body, BODY_LIMIT).await?;
    let body: InvokeStoredQueryRequest =
        parse_json(&raw, Some(InvokeStoredQueryRequest::default()))?;
    let params = body.params.unwrap_or(Json::Null);
    if q.is_mutation() {
        if body.snapshot.is_some() {
            return Err(ApiError::bad_request(format!(
                "`{name}` is a stored mutation; it cannot target a snapshot"
            )));
        }
        let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
        authorize(&entry, &actor, Action::Change, on_branch(&branch))?;
        run_mutation(&state, &entry, &actor, q, params, branch, raw.len() as u64).await
    } else {
        run_read(
            &state,
            &entry,
            &actor,
            q,
            params,
            body.branch,
            body.snapshot,
            body.limits,
        )
        .await
    }
}

/// The graph's stored queries, checked against the schema `g` holds now:
/// the registry's when they were checked against it, else re-checked (and
/// then served from the registry). A schema applied outside this server
/// that breaks them is a 409 naming the query file and the diagnostics.
fn fresh_queries(
    state: &AppState,
    entry: &GraphEntry,
    g: &Graph,
) -> Result<Arc<StoredQueries>, ApiError> {
    let schema = g.schema_state();
    if schema.id == entry.queries.schema_id {
        return Ok(entry.queries.clone());
    }
    match entry.queries.recheck(&schema.catalog, schema.id.clone()) {
        Ok(q) => {
            tracing::info!(graph = %entry.spec.id, schema = ?schema.id, "stored queries re-checked against the graph's new schema");
            let q = Arc::new(q);
            state
                .registry
                .replace_queries(&entry.spec.id, entry.generation, q.clone());
            Ok(q)
        }
        Err(why) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "the graph's schema changed outside this server and its stored queries no \
                 longer type check; fix the query files, then restart the graph \
                 (POST /admin/graphs/{}/restart):\n{why}",
                entry.spec.id
            ),
        )),
    }
}

/// Logs each request (id, method, route, status, latency) and counts it.
pub async fn observe(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let request_id = ulid::Ulid::new().to_string();
    let method = req.method().to_string();
    let path = req.path().to_string();
    let state = req.app_data::<Data<AppState>>().cloned();
    // Every log line inside the request (policy decisions, engine
    // warnings) carries the request id.
    let span = tracing::info_span!("request", request_id = %request_id);
    let res = tracing::Instrument::instrument(next.call(req), span).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "<unmatched>".to_string());
    let status = res.status().as_u16();
    if let Some(s) = state {
        s.metrics.request(&route, status);
    }
    tracing::info!(
        request_id,
        method,
        path,
        route,
        status,
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(res)
}

/// The OpenAPI document, generated from the handlers and wire types.
#[allow(deprecated)] // lists the deprecated aliases too
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Omnigraph server", description = "Versioned, branchable property graphs over HTTP."),
    paths(
        healthz, list_graphs, admin_graphs, admin_quarantine, admin_restart, snapshot, query,
        schema, schema_apply, list_branches, merge_branches, list_commits, show_commit, export, mutate, load_ndjson,
        load_envelope, create_branch, delete_branch, list_queries, invoke_query, read_alias,
        change_alias, ingest_alias
    ),
    components(schemas(ErrorOutput, ErrorCode, ReadOutput, ChangeOutput)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
