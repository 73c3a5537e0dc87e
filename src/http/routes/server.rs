//! Server-level routes: health, the OpenAPI document, metrics, the graph
//! list and the admin routes (quarantine, restart).

use super::*;

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthOutput)))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthOutput {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        internal_schema_version: crate::engine::INTERNAL_SCHEMA_VERSION,
    })
}

pub(super) async fn openapi(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::http::openapi_json(!state.tokens.is_empty()))
}

/// `GET /metrics`: with bearer tokens configured, only for a caller the
/// server policy grants `graph_list` (the metrics name every graph,
/// quarantined ones too, like `GET /admin/graphs`); open without tokens.
pub(super) async fn metrics(req: HttpRequest, state: Data<AppState>) -> Res {
    if !state.tokens.is_empty() {
        let actor = caller(&req, &state.tokens)?;
        server_authorize(&state, &actor, Action::GraphList)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

pub(super) fn server_authorize(
    state: &AppState,
    actor: &str,
    action: Action,
) -> Result<(), ApiError> {
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
pub(super) async fn list_graphs(req: HttpRequest, state: Data<AppState>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphList)?;
    let graphs = state
        .registry
        .all()
        .into_iter()
        .filter(|e| e.state == crate::actors::GraphState::Ready)
        .map(|e| GraphInfo {
            graph_id: e.spec.id.to_string(),
            uri: e.spec.uri.clone(),
        })
        .collect();
    ok(&GraphListResponse { graphs })
}

#[utoipa::path(get, path = "/admin/graphs", responses((status = 200, body = AdminGraphListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn admin_graphs(req: HttpRequest, state: Data<AppState>) -> Res {
    let actor = caller(&req, &state.tokens)?;
    server_authorize(&state, &actor, Action::GraphAdmin)?;
    let graphs = state
        .registry
        .all()
        .into_iter()
        .map(|e| AdminGraphInfo {
            graph_id: e.spec.id.to_string(),
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
pub(super) async fn admin_quarantine(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
) -> Res {
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
pub(super) async fn admin_restart(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
) -> Res {
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
