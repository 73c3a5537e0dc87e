//! Route handlers. See the module docs of [`crate::http`] for the order of
//! checks every handler follows.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;
use omnigraph_sync::admission::Permit;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use super::{ApiError, AppState, BODY_LIMIT, LOAD_BODY_LIMIT, caller};
use crate::actors::ops::{self, Read, Write};
use crate::actors::supervisor::{Quarantine, Restart, StoredQueries};
use crate::actors::{Admit, GraphEntry};
use crate::api::*;
use crate::engine::exec::QueryControl;
use crate::engine::load::LoadMode;
use crate::engine::{CommitId, ReadAt};
use crate::policy::{Action, BranchCtx};
use crate::query::CheckedQuery;

mod blob;
mod branches;
mod changes;
mod export;
mod history;
mod queries;
mod reads;
mod schema;
mod server;
mod writes;

use blob::*;
use branches::*;
use changes::*;
use export::*;
use history::*;
use queries::*;
use reads::*;
use schema::*;
use server::*;
use writes::*;

const MAIN: &str = "main";

/// The route table. The router ([`configure`]) and the OpenAPI
/// document's path list ([`ApiDoc`]) are both generated from it, so a
/// documented route is always served and a served one always documented
/// (each handler's `#[utoipa::path]` gives its method, path and answers;
/// `documented_routes_match_the_router` checks those against this table).
/// `undocumented` routes are served without an entry: `HEAD /healthz`,
/// the document itself and the Prometheus text.
macro_rules! route_table {
    (
        documented { $( $dm:ident $dp:literal => $dh:ident, )* }
        undocumented { $( $um:ident $up:literal => $uh:ident, )* }
    ) => {
        /// Mounts every route.
        #[allow(deprecated)] // the deprecated aliases are still served
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $( cfg.route($dp, web::$dm().to($dh)); )*
            $( cfg.route($up, web::$um().to($uh)); )*
        }

        /// (method, path) of every documented route, in table order.
        #[cfg(test)]
        const DOCUMENTED: &[(&str, &str)] = &[ $( (stringify!($dm), $dp), )* ];

        /// The OpenAPI document, generated from the handlers and wire types.
        #[allow(deprecated)] // lists the deprecated aliases too
        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(title = "Omnigraph server", description = "Versioned, branchable property graphs over HTTP."),
            paths( $( $dh ),* ),
            components(schemas(ErrorOutput, ErrorCode, PreconditionFailureOutput, KeyConflictOutput, ReadOutput, ChangeOutput, ChangeDiffRefusalOutput, ChangeFeedGapOutput, ResourceLimitOutput, ChangeBaselineOutput, ChangeBaselineRecord, BlobRangeOutput, ReadSetConflictOutput)),
            modifiers(&BearerScheme)
        )]
        pub struct ApiDoc;
    };
}

route_table! {
    documented {
        get "/healthz" => healthz,
        get "/graphs" => list_graphs,
        get "/admin/graphs" => admin_graphs,
        post "/admin/graphs/{id}/quarantine" => admin_quarantine,
        post "/admin/graphs/{id}/restart" => admin_restart,
        get "/graphs/{id}/snapshot" => snapshot,
        post "/graphs/{id}/query" => query,
        post "/graphs/{id}/mutate" => mutate,
        post "/graphs/{id}/mutate/if-graph-commit" => mutate_if_graph_commit,
        post "/graphs/{id}/load" => load_envelope,
        post "/graphs/{id}/load/ndjson" => load_ndjson,
        post "/graphs/{id}/export" => export,
        get "/graphs/{id}/blob" => blob_get,
        head "/graphs/{id}/blob" => blob_head,
        get "/graphs/{id}/schema" => schema,
        post "/graphs/{id}/schema/apply" => schema_apply,
        get "/graphs/{id}/branches" => list_branches,
        post "/graphs/{id}/branches" => create_branch,
        post "/graphs/{id}/branches/merge" => merge_branches,
        delete "/graphs/{id}/branches/{branch}" => delete_branch,
        get "/graphs/{id}/commits" => list_commits,
        get "/graphs/{id}/commits/{commit_id}" => show_commit,
        get "/graphs/{id}/commits/{commit_id}/changes" => commit_changes,
        get "/graphs/{id}/changes" => poll_changes,
        post "/graphs/{id}/changes/baseline" => change_baseline,
        get "/graphs/{id}/queries" => list_queries,
        post "/graphs/{id}/queries/{name}" => invoke_query,
        post "/graphs/{id}/queries/{name}/if-graph-commit" => invoke_query_if_graph_commit,
        // Deprecated aliases kept by the reference (RFC 9745 / RFC 8288 headers).
        post "/graphs/{id}/read" => read_alias,
        post "/graphs/{id}/change" => change_alias,
        post "/graphs/{id}/ingest" => ingest_alias,
    }
    undocumented {
        head "/healthz" => healthz,
        get "/openapi.json" => openapi,
        get "/metrics" => metrics,
    }
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
            let mut e = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body exceeds this route's limit of {limit} bytes; split it into smaller requests"
                ),
            );
            // What arrived before reading stopped: at least this much.
            e.resource_limit = Some(Box::new(ResourceLimitOutput {
                resource: "request_body_bytes".into(),
                limit: limit as u64,
                actual: (buf.len() + chunk.len()) as u64,
            }));
            return Err(e);
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

/// Reads a JSON body of at most [`BODY_LIMIT`] bytes (413; 408 when it
/// does not arrive in time) and parses it (400; an empty body is `empty`
/// when given). Answers the bytes too: admission charges them.
async fn read_json<T: DeserializeOwned>(
    body: web::Payload,
    empty: Option<T>,
) -> Result<(Bytes, T), ApiError> {
    let raw = read_body(body, BODY_LIMIT).await?;
    let parsed = parse_json(&raw, empty)?;
    Ok((raw, parsed))
}

/// Who a graph route acts for and on which graph ([`enter`]).
struct Entered {
    /// The caller, from the bearer token.
    actor: String,
    /// The served graph.
    entry: GraphEntry,
}

/// The gate's first steps, the same for every graph route and always its
/// first call: the caller from the bearer token (401), then graph `id`
/// among the ready ones (404). What each route does next, in this order:
/// read the body when its decision needs it ([`read_json`]), decide
/// ([`authorize`], 403), admit a write ([`admit`], 429), then send one
/// typed message to the GraphActor ([`ask`]).
fn enter(req: &HttpRequest, state: &AppState, id: &str) -> Result<Entered, ApiError> {
    let actor = caller(req, &state.tokens)?;
    let entry = graph(state, id)?;
    Ok(Entered { actor, entry })
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
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "")
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

/// Bodies of at least this many bytes are loads prepared on the bulk
/// runtime ([`ops::Load::bulk`]): about 1,000 typical JSONL rows.
pub const BULK_LOAD_BYTES: usize = 64 << 10;

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
            let id = crate::engine::CommitId::from_text(&commit);
            let c = ask(
                entry,
                Read(ops::ShowCommit { id: id.clone() }),
                STOPPED_READING,
            )
            .await?;
            Ok((ReadAt::Commit(id), c.branch))
        }
        (b, None) => {
            let b = b.unwrap_or_else(|| MAIN.to_string());
            Ok((ReadAt::Branch(b.clone()), b))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[test]
    fn documented_routes_match_the_router() {
        let doc = ApiDoc::openapi();
        let mut listed = 0;
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("get", item.get.is_some()),
                ("post", item.post.is_some()),
                ("put", item.put.is_some()),
                ("delete", item.delete.is_some()),
                ("head", item.head.is_some()),
                ("patch", item.patch.is_some()),
            ];
            for (m, _) in methods.iter().filter(|(_, present)| *present) {
                listed += 1;
                assert!(
                    DOCUMENTED.contains(&(*m, path.as_str())),
                    "the document lists {m} {path}, which the router does not serve"
                );
            }
        }
        assert_eq!(
            listed,
            DOCUMENTED.len(),
            "a documented route's handler declares another method or path than the table"
        );
    }
}
