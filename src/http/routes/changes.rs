//! Change routes: a commit's entity changes, the change feed and its
//! baseline (reference docs/user/branching/changes.md). Reads: `read` on
//! the branch; a baseline is a full export and needs `export`.

use super::export::stream_export;
use super::*;
use crate::engine::changes::ChangeFilter;
use crate::engine::feed::{FeedRequest, FeedStart};

/// The query string as name/value pairs, every name one of `allowed`
/// (400 otherwise, naming it: a misspelt filter must not widen the
/// answer); `kind`, `type` and `op` may repeat.
fn change_query(req: &HttpRequest, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?
        .into_inner();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}`; this route takes {}",
                allowed.join(", ")
            )));
        }
    }
    let repeatable = ["kind", "type", "op"];
    for (i, (k, _)) in pairs.iter().enumerate() {
        if !repeatable.contains(&k.as_str()) && pairs[..i].iter().any(|(o, _)| o == k) {
            return Err(ApiError::bad_request(format!(
                "query parameter `{k}` is given twice"
            )));
        }
    }
    Ok(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn filter_of(pairs: &[(String, String)]) -> Result<ChangeFilter, ApiError> {
    let mut f = ChangeFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "kind" => {
                f.kinds
                    .push(serde_json::from_value(Json::from(v.as_str())).map_err(|_| {
                        ApiError::bad_request(format!("kind `{v}`: use `node` or `edge`"))
                    })?)
            }
            "op" => f
                .ops
                .push(serde_json::from_value(Json::from(v.as_str())).map_err(|_| {
                    ApiError::bad_request(format!("op `{v}`: use `insert`, `update` or `delete`"))
                })?),
            "type" => f.types.push(v.clone()),
            _ => {}
        }
    }
    Ok(f)
}

fn limit_of(pairs: &[(String, String)]) -> Result<Option<u64>, ApiError> {
    one(pairs, "limit")
        .map(|l| {
            l.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("limit `{l}` is not a whole number")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/graphs/{id}/commits/{commit_id}/changes", params(CommitChangesParams), responses((status = 200, body = CommitChangesPage, description = "Entity changes this commit made relative to its first parent, in frozen (kind, type, id, op) order with the cause stated once"), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 404, body = ErrorOutput, description = "Commit not found, or the actor cannot read the commit's branch"), (status = 409, body = ErrorOutput, description = "Parentless commit or schema boundary; see change_diff_refusal"), (status = 410, body = ErrorOutput, description = "Required history was removed by cleanup; see change_feed_gap"), (status = 413, body = ErrorOutput, description = "limit above 10,000; see resource_limit")), security(("bearer_token" = [])))]
pub(super) async fn commit_changes(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
) -> Res {
    let (id, commit) = path.into_inner();
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let q = change_query(&req, &["page_token", "limit", "kind", "type", "op"])?;
    let c = ask(
        &entry,
        Read(ops::ShowCommit {
            id: CommitId::from_text(&commit),
        }),
        STOPPED_READING,
    )
    .await?;
    // A commit on a branch the caller may not read is not there for it.
    if authorize(&entry, &actor, Action::Read, on_branch(&c.branch)).is_err() {
        return Err(ApiError::not_found(format!(
            "commit `{commit}` does not exist"
        )));
    }
    let op = ops::CommitChanges {
        id: commit,
        filter: filter_of(&q)?,
        page_token: one(&q, "page_token").map(str::to_string),
        limit: limit_of(&q)?,
    };
    ok(&ask(&entry, Read(op), STOPPED_READING).await?)
}

#[utoipa::path(get, path = "/graphs/{id}/changes", params(ChangeFeedParams), responses((status = 200, body = FeedPage, description = "Change blocks in first-parent order. The durable cursor appears only on a terminal page, advanced only over complete commits; a mid-block page carries only next_page_token"), (status = 400, body = ErrorOutput, description = "Invalid start/filter combination, or a rejected cursor or page token"), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput, description = "Branch not found"), (status = 409, body = ErrorOutput, description = "The feed crossed a schema change; see change_diff_refusal"), (status = 410, body = ErrorOutput, description = "Feed gap: the history after the cursor was removed by cleanup; take a new baseline"), (status = 413, body = ErrorOutput, description = "limit above 10,000; see resource_limit")), security(("bearer_token" = [])))]
pub(super) async fn poll_changes(req: HttpRequest, state: Data<AppState>, id: Path<String>) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let q = change_query(
        &req,
        &[
            "branch",
            "cursor",
            "start",
            "page_token",
            "limit",
            "kind",
            "type",
            "op",
        ],
    )?;
    let start = one(&q, "start").map(FeedStart::parse).transpose()?;
    let request = FeedRequest {
        branch: one(&q, "branch").map(str::to_string),
        cursor: one(&q, "cursor").map(str::to_string),
        start,
        page_token: one(&q, "page_token").map(str::to_string),
        limit: limit_of(&q)?,
        filter: filter_of(&q)?,
    };
    // The branch is the cursor's when none is named.
    let branch = crate::engine::feed::polled_branch(&request);
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    ok(&ask(&entry, Read(ops::PollChanges(request)), STOPPED_READING).await?)
}

#[utoipa::path(post, path = "/graphs/{id}/changes/baseline", request_body = ChangeBaselineRequest, responses((status = 200, description = "NDJSON entity snapshot pinned at one captured commit (the load/export line shape), then exactly one final line `{\"baseline\": {snapshot_commit_id, resume_cursor}}` (ChangeBaselineRecord), sent only after every snapshot line", content_type = "application/x-ndjson", body = ChangeBaselineRecord), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput, description = "Branch not found")), security(("bearer_token" = [])))]
pub(super) async fn change_baseline(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    body: web::Payload,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let (_, body) = read_json(body, Some(ChangeBaselineRequest::default())).await?;
    let branch = body.branch.clone().unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Export, on_branch(&branch))?;
    let filter = ChangeFilter {
        kinds: body.kind,
        types: body.type_names,
        ops: body.op,
    };
    let (head, cursor, types) = ask(
        &entry,
        Read(ops::CaptureBaseline { branch, filter }),
        STOPPED_READING,
    )
    .await?;
    let mut trailer = serde_json::to_vec(&ChangeBaselineRecord {
        baseline: ChangeBaselineOutput {
            snapshot_commit_id: head.to_string(),
            resume_cursor: cursor,
        },
    })
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    trailer.push(b'\n');
    stream_export(&entry, ReadAt::Commit(head), types, Some(trailer)).await
}
