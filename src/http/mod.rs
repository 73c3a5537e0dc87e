//! The HTTP API on actix-web. Routes, bodies and status codes follow the
//! reference `docs/user/operations/server.md` and `openapi.json`
//! (ModernRelay/omnigraph); `docs/server.md` lists them.
//!
//! Every handler does the same steps, in this order: resolve the caller
//! from the bearer token (401), find a ready graph (404) — one call,
//! `enter`, the first of every graph route — read and parse
//! the body when the decision needs it (the branch is in it), decide the
//! action with the graph's gate (403; 404 for a denied `invoke_query`),
//! admit the request with the AdmissionActor for writes (429 +
//! `Retry-After`), then message the GraphActor and map its answer. The
//! decision is made here, once: the server's graphs carry no engine gate.
//! The work is one typed message to the GraphActor
//! ([`crate::actors::ops`]: `Read(op)` or `Write(op)`, e.g.
//! `Write(Mutate { .. })`, `Read(RunQuery { .. })`, `Read(Export { .. })`);
//! no route holds the graph. A few routes make a typed read first for
//! what their decision needs: a snapshot read its commit (the branch
//! policy decides on), a load the branch list (`branch_create` when `from`
//! creates it), a stored query the current schema (its queries
//! re-checked). Errors are one JSON shape, [`ErrorOutput`].

pub mod auth;
pub mod client;
mod openapi;
mod routes;

use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::actors::{ActorError, AdmissionActor, Metrics, Registry, SupervisorActor};
use crate::api::{ErrorCode, ErrorOutput};
use crate::engine::EngineError;
use crate::policy::Gate;

pub use auth::Tokens;
pub use openapi::openapi_json;
pub use routes::{configure, observe};

/// Default request body limit (reference: 1 MB).
pub const BODY_LIMIT: usize = 1 << 20;
/// Body limit of `/load` and `/load/ndjson` (reference: 32 MB).
pub const LOAD_BODY_LIMIT: usize = 32 << 20;

/// Default of [`body_timeout`]: 30 s.
pub const BODY_TIMEOUT_MS: u64 = 30_000;

/// How long a request body may take to arrive, whole
/// (`OMNIGRAPH_BODY_TIMEOUT_MS`, default [`BODY_TIMEOUT_MS`]); past it the
/// request is answered 408 and its connection closed, so a body trickled
/// a byte at a time cannot hold a worker, an admission slot or memory.
/// (actix-web's own `client_request_timeout`, 5 s, bounds the head.)
pub fn body_timeout() -> std::time::Duration {
    static T: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        std::env::var("OMNIGRAPH_BODY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(BODY_TIMEOUT_MS)
    });
    std::time::Duration::from_millis(*T)
}

/// Shared by every handler.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub supervisor: Addr<SupervisorActor>,
    pub admission: Addr<AdmissionActor>,
    pub tokens: Arc<Tokens>,
    /// The server-level gate (`graph_list`, `graph_admin`).
    pub server_gate: Gate,
    pub metrics: Arc<Metrics>,
    /// The multi-threaded runtime Lance work runs on.
    pub rt: tokio::runtime::Handle,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    pub merge_conflicts: Vec<crate::api::MergeConflictOutput>,
    /// With 412: the head the write required and the one it met.
    pub precondition_failure: Option<Box<crate::api::PreconditionFailureOutput>>,
    /// With 409: a strict insert's id conflict (the first of the load).
    pub key_conflict: Option<Box<crate::api::KeyConflictOutput>>,
    /// With 409 on the change routes: why the commit cannot be diffed.
    pub change_diff_refusal: Option<Box<crate::api::ChangeDiffRefusalOutput>>,
    /// With 410: where the change feed's retained history ends.
    pub change_feed_gap: Option<Box<crate::api::ChangeFeedGapOutput>>,
    /// With 413: the ceiling and what was asked.
    pub resource_limit: Option<Box<crate::api::ResourceLimitOutput>>,
    /// With 416: the unsatisfiable Blob range.
    pub blob_range: Option<Box<crate::api::BlobRangeOutput>>,
    /// With 409: the table a prepared write read that was published
    /// again before it could commit.
    pub read_set_conflict: Option<Box<crate::api::ReadSetConflictOutput>>,
    /// Extra response headers (a 416's `Content-Range`).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            merge_conflicts: Vec::new(),
            precondition_failure: None,
            key_conflict: None,
            change_diff_refusal: None,
            change_feed_gap: None,
            resource_limit: None,
            blob_range: None,
            read_set_conflict: None,
            headers: Vec::new(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, m)
    }

    /// The closed `code` set of the reference's `ErrorCode`; statuses it
    /// has no code for (412) send none, their structured field says it.
    fn code(&self) -> Option<ErrorCode> {
        Some(match self.status.as_u16() {
            400 | 408 | 413 | 415 | 416 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            429 => ErrorCode::TooManyRequests,
            // The closed set has no code for these; the structured field
            // (`precondition_failure`, `change_feed_gap`) says it.
            412 => return None,
            410 if self.change_feed_gap.is_some() => return None,
            // Time travel below the kept window: gone, like not found.
            410 => ErrorCode::NotFound,
            _ => ErrorCode::Internal,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a trickled body is not waited for.
            b.force_close();
        }
        if let Some(s) = self.retry_after {
            b.insert_header(("Retry-After", s.to_string()));
        }
        for (k, v) in &self.headers {
            b.insert_header((k.as_str(), v.as_str()));
        }
        b.json(ErrorOutput {
            error: self.message.clone(),
            code: self.code(),
            retry_after_seconds: self.retry_after,
            merge_conflicts: self.merge_conflicts.clone(),
            precondition_failure: self.precondition_failure.as_deref().cloned(),
            key_conflict: self.key_conflict.as_deref().cloned(),
            change_diff_refusal: self.change_diff_refusal.as_deref().cloned(),
            change_feed_gap: self.change_feed_gap.as_deref().cloned(),
            resource_limit: self.resource_limit.as_deref().cloned(),
            blob_range: self.blob_range.as_deref().cloned(),
            read_set_conflict: self.read_set_conflict.as_deref().cloned(),
        })
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        use EngineError as E;
        let key_conflict = match &e {
            E::Load { errors } => errors.iter().find_map(|l| l.key_conflict.clone()),
            _ => None,
        };
        let status = match &e {
            // A strict insert's key conflict is a conflict, not bad input
            // (reference errors.md: 409 with `key_conflict`).
            E::Load { .. } if key_conflict.is_some() => StatusCode::CONFLICT,
            E::Load { .. }
            | E::Query { .. }
            | E::Source { .. }
            | E::Param { .. }
            | E::EmptyOverwrite { .. }
            | E::Budget { .. }
            | E::Cancelled { .. }
            | E::BadBranchName { .. }
            | E::BadTableKey { .. }
            | E::BadGraphId { .. }
            | E::Schema { .. }
            | E::MergeRefused { .. }
            | E::SchemaRefused { .. }
            | E::CursorRejected { .. }
            | E::MainProtected => StatusCode::BAD_REQUEST,
            E::ChangeRefused { .. } => StatusCode::CONFLICT,
            E::ChangeFeedGap { .. } | E::HistoryRemoved { .. } | E::TableVersionGone { .. } => {
                StatusCode::GONE
            }
            E::ChangeLimit { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::UnknownBranch { .. } | E::UnknownCommit { .. } | E::NoBlob { .. } => {
                StatusCode::NOT_FOUND
            }
            E::BranchExists { .. }
            | E::Conflict { .. }
            | E::Stale { .. }
            | E::Busy { .. }
            | E::LeaseLost { .. }
            | E::Drift { .. }
            | E::MergeConflicts { .. } => StatusCode::CONFLICT,
            E::Embedding(e) => match e {
                crate::embed::EmbeddingError::Config { .. }
                | crate::embed::EmbeddingError::ModelMismatch { .. } => StatusCode::BAD_REQUEST,
                crate::embed::EmbeddingError::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            E::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        let mut out = ApiError::new(status, e.to_string());
        if let E::MergeConflicts { conflicts } = &e {
            out.merge_conflicts = conflicts.iter().map(Into::into).collect();
        }
        out.key_conflict = key_conflict.map(|k| {
            Box::new(crate::api::KeyConflictOutput {
                entity_kind: k.entity_kind,
                type_name: k.type_name,
                entity_id: k.entity_id,
            })
        });
        if let E::PreconditionFailed {
            expected, actual, ..
        } = &e
        {
            out.precondition_failure = Some(Box::new(crate::api::PreconditionFailureOutput {
                expected: expected.clone(),
                actual: actual.clone(),
            }));
        }
        match &e {
            E::ChangeRefused {
                commit,
                reason,
                type_name,
            } => {
                out.change_diff_refusal = Some(Box::new(crate::api::ChangeDiffRefusalOutput {
                    reason: *reason,
                    graph_commit_id: commit.clone(),
                    type_name: type_name.clone(),
                }));
            }
            E::ChangeFeedGap {
                cursor,
                first_unreadable,
            } => {
                out.change_feed_gap = Some(Box::new(crate::api::ChangeFeedGapOutput {
                    cursor: cursor.clone(),
                    first_unreadable_commit_id: first_unreadable.clone(),
                }));
            }
            E::Stale { table, .. } => {
                // The table whose published rows moved under the write.
                out.read_set_conflict = Some(Box::new(crate::api::ReadSetConflictOutput {
                    member: table.clone(),
                    expected: None,
                    actual: None,
                }));
            }
            E::ChangeLimit { asked, max } => {
                out.resource_limit = Some(Box::new(crate::api::ResourceLimitOutput {
                    resource: "changes_per_page".into(),
                    limit: *max,
                    actual: *asked,
                }));
            }
            _ => {}
        }
        if let E::Overloaded { .. } = &e {
            out.retry_after = Some(1);
        }
        out
    }
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> ApiError {
        match e {
            ActorError::Engine(e) => e.into(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// The caller's actor id from `Authorization: Bearer <token>`; with no
/// tokens configured (Open state) every caller is `anonymous`.
pub fn caller(req: &HttpRequest, tokens: &Tokens) -> Result<String, ApiError> {
    if tokens.is_empty() {
        return Ok("anonymous".to_string());
    }
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized("missing bearer token; send `Authorization: Bearer <token>`")
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    tokens
        .actor(token.trim())
        .map(str::to_string)
        .ok_or_else(|| ApiError::unauthorized("unknown bearer token"))
}
