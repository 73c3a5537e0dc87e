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
use crate::actors::{Admit, GraphEntry, Mutate, Read, RunQuery, Write};
use crate::api::*;
use crate::engine::exec::QueryControl;
use crate::engine::load::LoadMode;
use crate::engine::{EngineError, Graph, ReadAt};
use crate::policy::{Action, BranchCtx};
use crate::query::CheckedQuery;

mod branches;
mod export;
mod history;
mod queries;
mod reads;
mod schema;
mod server;
mod writes;

use branches::*;
use export::*;
use history::*;
use queries::*;
use reads::*;
use schema::*;
use server::*;
use writes::*;

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

/// Sends `msg` to the graph's actor and maps its answer: 404 when the
/// graph is not served, 503 with `stopped` when the actor went away
/// before answering, the actor's own error otherwise.
async fn ask<M, T>(entry: &GraphEntry, msg: M, stopped: &'static str) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, crate::actors::ActorError>> + Send + 'static,
    T: Send + 'static,
    crate::actors::GraphActor: actix::Handler<M>,
{
    let addr = entry.addr.as_ref().ok_or_else(|| {
        ApiError::not_found(format!("no graph `{}` is being served", entry.spec.id))
    })?;
    let r = addr
        .send(msg)
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, stopped))?;
    Ok(r?)
}

/// The 503 message of a read whose graph stopped while answering.
const STOPPED_READING: &str = "the graph stopped while answering; retry";
/// The 503 message of a write whose graph stopped while writing.
const STOPPED_WRITING: &str = "the graph stopped while writing; read the branch before retrying";

async fn read<T: Send + 'static>(
    entry: &GraphEntry,
    job: impl FnOnce(Arc<Graph>) -> futures::future::BoxFuture<'static, Result<T, EngineError>>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    ask(entry, Read::new(job), STOPPED_READING).await
}

async fn write<T: Send + 'static>(
    entry: &GraphEntry,
    actor: &str,
    keys: Vec<crate::actors::WriteKey>,
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
    ask(entry, w, STOPPED_WRITING).await
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
