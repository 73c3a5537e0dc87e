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
        return Ok(Some(root.manifest().version));
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
    Ok(Some(ds.manifest().version))
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
    Ok(ds.manifest().version)
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

/// Opens a pinned version for reading history; `Ok(None)` when that
/// version (or the whole table) no longer exists — removed by `cleanup`,
/// or never written — where [`open`] would fail.
pub async fn open_retained(at: &TableAt) -> Result<Option<Dataset>, TableError> {
    match open(at).await {
        Ok(ds) => Ok(Some(ds)),
        Err(e) if e.missing => Ok(None),
        Err(e) => Err(e),
    }
}

/// The rows that can differ between two versions of a table, read
/// fragment by fragment: `(before, after)`, where `before` is every row
/// of the fragments of `before` that `after` does not hold unchanged
/// (same id, data files and deletion file) and `after` the same the other
/// way round. A row outside both sets is in a fragment both versions hold
/// unchanged, so it is the same row in both; a row in both sets may still
/// be unchanged (compaction moves rows, a merge-insert may rewrite equal
/// values), which the caller finds by comparing values. A missing version
/// is read as no rows. The cost is the changed fragments' rows, not the
/// table's.
pub async fn differing_rows(
    before: Option<&Dataset>,
    after: Option<&Dataset>,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), TableError> {
    use lance_table::format::Fragment;
    use std::collections::HashMap;
    let by_id = |ds: Option<&Dataset>| -> HashMap<u64, Fragment> {
        ds.map(|d| d.fragments().iter().map(|f| (f.id, f.clone())).collect())
            .unwrap_or_default()
    };
    let (a, b) = (by_id(before), by_id(after));
    let only = |mine: &HashMap<u64, Fragment>, theirs: &HashMap<u64, Fragment>| {
        let mut v: Vec<Fragment> = mine
            .values()
            .filter(|f| theirs.get(&f.id) != Some(*f))
            .cloned()
            .collect();
        v.sort_by_key(|f| f.id);
        v
    };
    let (only_a, only_b) = (only(&a, &b), only(&b, &a));
    async fn rows(
        ds: Option<&Dataset>,
        frags: Vec<Fragment>,
    ) -> Result<Vec<RecordBatch>, TableError> {
        let Some(ds) = ds else { return Ok(Vec::new()) };
        if frags.is_empty() {
            return Ok(Vec::new());
        }
        let uri = ds.uri().to_string();
        let mut sc = ds.scan();
        sc.with_fragments(frags);
        let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
        stream.map_err(|e| terr(&uri, e)).try_collect().await
    }
    Ok((rows(before, only_a).await?, rows(after, only_b).await?))
}

/// What a Lance cleanup removed (or would remove): versions (their
/// manifests), files of every kind (manifests, transactions, data,
/// deletion and index files) and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub versions: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Removes (with `confirm`; else only counts) every version of a Lance
/// branch (`uri`, `branch`) below the newest in `keep`, except those in
/// `keep`, and
/// the files no remaining version, and no other Lance branch, references
/// (Lance `Dataset::cleanup` with an exact `versions` set; Lance never
/// removes a branch's newest version, and leaves files it cannot prove
/// old — `delete_unverified` off — so the staged files of a write in
/// flight stay). Errors: the table cannot be opened or listed, Lance's
/// cleanup failing.
pub async fn remove_versions_except(
    uri: &str,
    branch: Option<&str>,
    keep: &std::collections::BTreeSet<u64>,
    confirm: bool,
) -> Result<Removed, TableError> {
    use lance::dataset::cleanup::CleanupPolicy;
    let Some(head) = head_version(uri, branch).await? else {
        return Ok(Removed::default());
    };
    let ds = open(&TableAt {
        uri: uri.to_string(),
        branch: branch.map(str::to_string),
        version: head,
    })
    .await?;
    let gone: std::collections::HashSet<u64> = ds
        .versions()
        .await
        .map_err(|e| terr(uri, e))?
        .into_iter()
        .map(|v| v.version)
        // Only below the newest kept version: versions after it were made
        // since the caller read the graph (a write in flight, an upkeep
        // not yet published) and may be what readers see next.
        .filter(|v| *v < head && !keep.contains(v) && keep.last().is_some_and(|k| v < k))
        .collect();
    if gone.is_empty() {
        return Ok(Removed::default());
    }
    let policy = CleanupPolicy {
        before_version: Some(head),
        versions: Some(gone),
        error_if_tagged_old_versions: false,
        ..CleanupPolicy::default()
    };
    let op = ds.cleanup(policy);
    let s = if confirm {
        op.execute().await
    } else {
        op.explain().await.map(|e| e.stats)
    }
    .map_err(|e| terr(uri, e))?;
    Ok(Removed {
        versions: s.old_versions,
        files: s.old_versions
            + s.data_files_removed
            + s.transaction_files_removed
            + s.index_files_removed
            + s.deletion_files_removed,
        bytes: s.bytes_removed,
    })
}
