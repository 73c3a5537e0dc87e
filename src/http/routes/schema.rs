//! Schema routes: show the accepted schema, apply a new one.

use super::*;

#[utoipa::path(get, path = "/graphs/{id}/schema", responses((status = 200, body = SchemaOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn schema(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    authorize(&entry, &actor, Action::Read, on_branch(MAIN))?;
    // Picks up a schema another handle or process applied.
    let s = ask(&entry, Read(ops::CurrentSchema), STOPPED_READING).await?;
    ok(&SchemaOutput {
        schema_source: s.source.clone(),
    })
}

#[utoipa::path(post, path = "/graphs/{id}/schema/apply", request_body = SchemaApplyRequest, responses((status = 200, body = SchemaApplyOutput), (status = 400, description = "The schema has errors, or the migration is refused (unsupported steps, drops without `allow_data_loss`, other branches, rows breaking a new constraint)", body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput), (status = 429, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn schema_apply(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (raw, body): (Bytes, SchemaApplyRequest) = read_json(body, None).await?;
    authorize(&entry, &actor, Action::SchemaApply, on_target(MAIN))?;
    let _permit = admit(&state, &actor, raw.len() as u64).await?;
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
    // Holds every table of `main` (named by the actor; one message).
    let op = ops::ApplySchema {
        source: body.schema_source,
        allow_data_loss: body.allow_data_loss,
        actor: actor.clone(),
    };
    let (r, now) = ask(&entry, Write(op), STOPPED_WRITING).await?;
    if r.applied
        && let Err(e) = fresh_queries(&state, &entry, &now)
    {
        // Checked above; only a concurrent apply of another schema gets here.
        tracing::warn!(graph = %entry.spec.id, error = %e.message, "stored queries after schema apply");
    }
    ok(&SchemaApplyOutput::of(&entry.spec.uri, &actor, &r))
}
