//! A table's versions: whether a newer one exists, the head, restoring an
//! older version as the new head (heal), and what a version restored.

use super::*;

/// Whether the version after `at` exists on `at`'s Lance branch: one
/// probe of that version's manifest, never a listing of `_versions/`
/// (which grows with history, and which Lance reads with `read_dir` on a
/// local filesystem). Lance versions are dense, so this is exactly "the
/// branch head is ahead of `at`".
pub async fn has_newer_version(at: &TableAt) -> Result<bool, TableError> {
    let next = at.version + 1;
    let b = match &at.branch {
        Some(br) => branch_builder(&at.uri).with_branch(br, Some(next)),
        None => builder(&at.uri).with_version(next),
    };
    match b.load().await {
        Ok(_) => Ok(true),
        Err(
            lance::Error::NotFound { .. }
            | lance::Error::DatasetNotFound { .. }
            | lance::Error::VersionNotFound { .. },
        ) => Ok(false),
        Err(e) => Err(terr(&at.uri, e)),
    }
}

/// The newest version on a Lance branch (`None` for the main line); `None`
/// when that branch does not exist.
pub async fn head_version(uri: &str, branch: Option<&str>) -> Result<Option<u64>, TableError> {
    let root = builder(uri).load().await.map_err(|e| terr(uri, e))?;
    let Some(br) = branch else {
        return Ok(Some(root.version().version));
    };
    let branches = root.list_branches().await.map_err(|e| terr(uri, e))?;
    if !branches.contains_key(br) {
        return Ok(None);
    }
    let ds = branch_builder(uri)
        .with_branch(br, None)
        .load()
        .await
        .map_err(|e| terr(uri, e))?;
    Ok(Some(ds.version().version))
}

/// Makes the content of `at` the newest version of its branch again, as
/// version `head + 1` exactly (Lance `Operation::Restore`, committed through
/// the fence of [`commit_staged`]): `head` is the branch head the caller
/// decided on, so a version anyone committed after it (another process
/// healing the same write, a write published meanwhile) makes this refuse
/// with [`TableError::conflict`] instead of undoing that version. Used to
/// roll back an unpublished write. Returns the new version.
pub async fn restore(at: &TableAt, head: u64) -> Result<u64, TableError> {
    use lance::dataset::transaction::{Operation, Transaction};
    let ds = open(&TableAt {
        version: head,
        ..at.clone()
    })
    .await?;
    let inner = lance_table::io::commit::commit_handler_from_url(&at.uri, &None)
        .await
        .map_err(|e| terr(&at.uri, e))?;
    let fence = Arc::new(fence::Fence::new(inner, Some(head + 1), None));
    let tx = Transaction::new(
        head,
        Operation::Restore {
            version: at.version,
        },
        None,
    );
    let ds = lance::dataset::CommitBuilder::new(Arc::new(ds))
        .with_commit_handler(fence)
        .with_max_retries(1)
        .with_skip_auto_cleanup(true)
        .execute(tx)
        .await
        .map_err(|e| terr(&at.uri, e))?;
    Ok(ds.version().version)
}

/// The version whose content version `at` restored (a roll back by heal,
/// [`restore`]); `None` when `at` was committed by anything but a restore.
pub async fn restored_from(at: &TableAt) -> Result<Option<u64>, TableError> {
    use lance::dataset::transaction::Operation;
    let ds = open(at).await?;
    let t = ds.read_transaction().await.map_err(|e| terr(&at.uri, e))?;
    Ok(t.and_then(|t| match t.operation {
        Operation::Restore { version } => Some(version),
        _ => None,
    }))
}
