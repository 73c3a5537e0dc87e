//! Branch and commit listings: branches, commits, one commit.

use super::*;

#[utoipa::path(get, path = "/graphs/{id}/branches", responses((status = 200, body = BranchListOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn list_branches(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let bs = ask(&entry, Read(ops::ListBranches), STOPPED_READING).await?;
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
pub(super) async fn list_commits(
    req: HttpRequest,
    state: Data<AppState>,
    id: Path<String>,
    q: Query<BranchParam>,
) -> Res {
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let branch = q.into_inner().branch.unwrap_or_else(|| MAIN.to_string());
    authorize(&entry, &actor, Action::Read, on_branch(&branch))?;
    let op = ops::ListCommits {
        branch: branch.clone(),
    };
    let cs = ask(&entry, Read(op), STOPPED_READING).await?;
    ok(&CommitListOutput {
        commits: cs
            .iter()
            .map(|c| CommitOutput::from_commit(c, None))
            .collect(),
    })
}

#[utoipa::path(get, path = "/graphs/{id}/commits/{commit_id}", responses((status = 200, body = CommitOutput), (status = 400, body = ErrorOutput), (status = 401, body = ErrorOutput), (status = 403, body = ErrorOutput), (status = 404, body = ErrorOutput)), security(("bearer_token" = [])))]
pub(super) async fn show_commit(
    req: HttpRequest,
    state: Data<AppState>,
    path: Path<(String, String)>,
) -> Res {
    let (id, commit) = path.into_inner();
    let Entered { actor, entry } = enter(&req, &state, &id)?;
    let c = ask(
        &entry,
        Read(ops::ShowCommit {
            id: crate::engine::CommitId::from_text(&commit),
        }),
        STOPPED_READING,
    )
    .await?;
    authorize(&entry, &actor, Action::Read, on_branch(&c.branch))?;
    ok(&CommitOutput::from_commit(&c, None))
}
