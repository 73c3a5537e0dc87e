//! Stored queries: list them, invoke one by name.

use super::*;

pub(super) fn param_kind(
    t: &crate::schema::catalog::PropType,
) -> (ParamKind, Option<ParamKind>, Option<u32>) {
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
pub(super) async fn list_queries(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    authorize(&entry, &actor, Action::Read, on_branch(MAIN))?;
    let schema = ask(&entry, Read(ops::CurrentSchema), STOPPED_READING).await?;
    let stored = fresh_queries(&state, &entry, &schema)?;
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

#[utoipa::path(post, path = "/graphs/{id}/queries/{name}", request_body = InvokeStoredQueryRequest, responses((status = 200, description = "ReadOutput for a stored read, ChangeOutput for a stored mutation"), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn invoke_query(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
    body: web::Payload,
) -> Res {
    let route = format!("/graphs/{}/queries/{}/if-graph-commit", path.0, path.1);
    let expect = super::writes::unconditional(&req, &route)?;
    run_invoke(req, state, path, body, expect).await
}

/// A stored mutation run only if the branch head is still the commit
/// named by `Omnigraph-If-Graph-Commit` (as
/// `POST /graphs/{id}/mutate/if-graph-commit`); 412 with
/// `precondition_failure` otherwise, 400 for a stored read.
#[utoipa::path(post, path = "/graphs/{id}/queries/{name}/if-graph-commit", request_body = InvokeStoredQueryRequest, params(("Omnigraph-If-Graph-Commit" = String, Header, description = "The branch head the write requires: a commit id, bare or as a strong entity tag")), responses((status = 200, body = ChangeOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 409, body = ErrorOutput), (status = 412, body = ErrorOutput), (status = 413, body = ErrorOutput), (status = 429, body = ErrorOutput), (status = 502, description = "The embedding provider failed or returned unusable vectors (`@embed`, `nearest($v, \"text\")`)", body = ErrorOutput), (status = 504, description = "The embedding provider did not answer within OMNIGRAPH_EMBED_DEADLINE_MS", body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn invoke_query_if_graph_commit(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
    body: web::Payload,
) -> Res {
    let expect = super::writes::if_graph_commit(&req)?;
    run_invoke(req, state, path, body, Some(expect)).await
}

async fn run_invoke(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
    body: web::Payload,
    expect_head: Option<CommitId>,
) -> Res {
    let (id, name) = path.into_inner();
    let Entered { actor, entry } = enter(&req, &state, &id)?;
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
    let schema = ask(&entry, Read(ops::CurrentSchema), STOPPED_READING).await?;
    let queries = fresh_queries(&state, &entry, &schema)?;
    let q = queries.queries.get(&name).cloned().ok_or_else(unknown)?;
    let (raw, body) = read_json(body, Some(InvokeStoredQueryRequest::default())).await?;
    let params = body.params.unwrap_or(Json::Null);
    if q.is_mutation() {
        if body.snapshot.is_some() {
            return Err(ApiError::bad_request(format!(
                "`{name}` is a stored mutation; it cannot target a snapshot"
            )));
        }
        let branch = body.branch.unwrap_or_else(|| MAIN.to_string());
        authorize(&entry, &actor, Action::Change, on_branch(&branch))?;
        let op = ops::RunMutation {
            query: q,
            params,
            branch,
            actor: actor.clone(),
            expect_head,
        };
        run_mutation(&state, &entry, op, raw.len() as u64).await
    } else if expect_head.is_some() {
        Err(ApiError::bad_request(format!(
            "`{name}` is a stored read query; a precondition applies to writes only"
        )))
    } else {
        run_read(
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

/// The graph's stored queries, checked against `schema` (the graph's now):
/// the registry's when they were checked against it, else re-checked (and
/// then served from the registry). A schema applied outside this server
/// that breaks them is a 409 naming the query file and the diagnostics.
pub(super) fn fresh_queries(
    state: &AppState,
    entry: &GraphEntry,
    schema: &crate::engine::SchemaState,
) -> Result<Arc<StoredQueries>, ApiError> {
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
