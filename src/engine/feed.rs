//! The change feed: a branch's commits in first-parent order as blocks
//! of entity changes ([`super::changes`]), read page by page from a
//! caller-owned cursor, and the baseline that starts or restarts a
//! follower. Reference: docs/user/branching/changes.md ("The change
//! feed", "Change baselines").
//!
//! - A poll captures the branch head as its *cut*; commits landing
//!   meanwhile wait for the next poll.
//! - A page holds whole blocks while they fit in `limit` changes. A
//!   block larger than that is split across pages joined by
//!   `next_page_token`; only a page that ends on a block boundary (a
//!   *terminal* page) carries the `cursor`, so a follower can never
//!   checkpoint half a commit. `caught_up` says whether the terminal page
//!   reached the cut.
//! - The server keeps no consumer state: a cursor names the last complete
//!   commit, the branch and the filter scope; a cursor whose commit is
//!   not on the branch's first-parent history (another branch's, another
//!   graph's, or a branch deleted and made again elsewhere) is refused. Delivery is at
//!   least once: a follower that crashes before saving the cursor polls
//!   the same blocks again; apply them idempotently by
//!   `graph_commit_id`.
//! - A cursor older than what `cleanup` kept answers `ChangeFeedGap`
//!   (HTTP 410); the remedy is a new baseline.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::changes::{ChangeCause, ChangeFilter, EntityChange};
use super::manifest::Commit;
use super::{CommitId, EngineError, Graph, ReadAt};

/// Changes one page carries when the caller names no limit.
pub const DEFAULT_LIMIT: u64 = 1_000;
/// The most changes one page may carry (above: `ChangeLimit`, 413).
pub const MAX_LIMIT: u64 = 10_000;
/// The most commits one feed page carries (each one is a diff).
pub const MAX_BLOCKS: usize = 1_000;

/// Where a first poll starts (reference `start`): `now` (the head, no
/// replay), `beginning` (every commit after the graph's first) or after
/// an exact commit of the branch's first-parent chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStart {
    Now,
    Beginning,
    After(CommitId),
}

impl FeedStart {
    /// Parses `now`, `beginning` or `after:<commit id>`.
    pub fn parse(text: &str) -> Result<FeedStart, EngineError> {
        match text {
            "now" => Ok(FeedStart::Now),
            "beginning" => Ok(FeedStart::Beginning),
            t => match t.strip_prefix("after:") {
                Some(id) if !id.is_empty() => Ok(FeedStart::After(CommitId::from_text(id))),
                _ => Err(EngineError::Source {
                    reason: format!("start `{t}`: use `now`, `beginning` or `after:<commit_id>`"),
                }),
            },
        }
    }
}

/// One poll: where to read and how much.
#[derive(Debug, Clone, Default)]
pub struct FeedRequest {
    /// The branch; `None`: the cursor's, else `main`.
    pub branch: Option<String>,
    pub cursor: Option<String>,
    pub start: Option<FeedStart>,
    pub page_token: Option<String>,
    /// Changes per page (1..=[`MAX_LIMIT`]); `None`: [`DEFAULT_LIMIT`].
    pub limit: Option<u64>,
    pub filter: ChangeFilter,
}

/// One commit's changes inside a feed page (reference
/// `ChangeBlockOutput`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeBlockOutput)]
pub struct ChangeBlock {
    pub cause: ChangeCause,
    pub changes: Vec<EntityChange>,
}

/// One page of a poll (reference `ChangeFeedOutput`): a terminal page has
/// `cursor` and `caught_up`, any other `next_page_token`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeFeedOutput)]
pub struct FeedPage {
    pub blocks: Vec<ChangeBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One page of a commit's changes (reference `CommitChangesOutput`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = CommitChangesOutput)]
pub struct CommitChangesPage {
    pub cause: ChangeCause,
    pub changes: Vec<EntityChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// What a cursor or page token holds (opaque to callers: `ogc1.` or
/// `ogp1.` and base64url of this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// The branch.
    b: String,
    /// The filter scope.
    s: ChangeFilter,
    /// Cursor: the last complete commit. Page token: the commit before
    /// the split block.
    c: CommitId,
    /// Page token only: the poll's cut, the split block and how many of
    /// its changes were sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cut: Option<CommitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blk: Option<CommitId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    off: Option<usize>,
    /// Commit-changes page token only: the commit being paged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one: Option<bool>,
}

const CURSOR: &str = "ogc1.";
const PAGE: &str = "ogp1.";

fn encode(prefix: &str, p: &Position) -> String {
    let json = serde_json::to_vec(p).unwrap_or_default();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    )
}

fn rejected(reason: impl Into<String>) -> EngineError {
    EngineError::CursorRejected {
        reason: reason.into(),
    }
}

fn decode(prefix: &str, text: &str) -> Result<Position, EngineError> {
    let (want, other) = if prefix == CURSOR {
        ("cursor", "a page token")
    } else {
        ("page token", "a cursor")
    };
    let body = match text.strip_prefix(prefix) {
        Some(b) => b,
        None if text.starts_with(CURSOR) || text.starts_with(PAGE) => {
            return Err(rejected(format!(
                "this is {other}, not a {want}; pass it as {}",
                if prefix == CURSOR {
                    "page_token (--page-token)"
                } else {
                    "cursor (--cursor)"
                }
            )));
        }
        None => {
            return Err(rejected(format!(
                "`{text}` is not a {want} this server issued"
            )));
        }
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|j| serde_json::from_slice(&j).ok())
        .ok_or_else(|| {
            rejected(format!(
                "the {want} is damaged; use one exactly as it was returned"
            ))
        })
}

/// The branch a poll reads: `branch` when given, else the one its page
/// token or cursor names, else `main` (a token that does not decode
/// names none; the poll refuses it).
pub fn polled_branch(req: &FeedRequest) -> String {
    if let Some(b) = &req.branch {
        return b.clone();
    }
    req.page_token
        .as_deref()
        .and_then(|t| decode(PAGE, t).ok())
        .or_else(|| req.cursor.as_deref().and_then(|t| decode(CURSOR, t).ok()))
        .map(|p| p.b)
        .unwrap_or_else(|| super::MAIN.to_string())
}

fn limit_of(asked: Option<u64>) -> Result<usize, EngineError> {
    match asked {
        None => Ok(DEFAULT_LIMIT as usize),
        Some(0) => Err(EngineError::Source {
            reason: "limit 0: ask for at least 1 change per page".into(),
        }),
        Some(n) if n > MAX_LIMIT => Err(EngineError::ChangeLimit {
            asked: n,
            max: MAX_LIMIT,
        }),
        Some(n) => Ok(n as usize),
    }
}

impl Graph {
    /// One page of commit `id`'s changes ([`Graph::commit_changes`]):
    /// at most `limit` changes from where `page_token` left off. The
    /// token continues this response only; it binds the commit and the
    /// filter. Errors as `commit_changes`, plus `CursorRejected` and
    /// `ChangeLimit`.
    pub async fn commit_changes_page(
        &self,
        id: &str,
        filter: ChangeFilter,
        page_token: Option<&str>,
        limit: Option<u64>,
    ) -> Result<CommitChangesPage, EngineError> {
        let limit = limit_of(limit)?;
        let filter = filter.canonical();
        let from = match page_token {
            None => 0,
            Some(t) => {
                let p = decode(PAGE, t)?;
                if p.one != Some(true) || p.c.as_str() != id || p.s != filter {
                    return Err(rejected(
                        "the page token belongs to another commit or filter; send the same commit and filters as the first page",
                    ));
                }
                p.off.unwrap_or(0)
            }
        };
        let (cause, all) = self.commit_changes(id, &filter).await?;
        let end = all.len().min(from.saturating_add(limit));
        let next_page_token = (end < all.len()).then(|| {
            encode(
                PAGE,
                &Position {
                    b: String::new(),
                    s: filter.clone(),
                    c: CommitId::from_text(id),
                    cut: None,
                    blk: None,
                    off: Some(end),
                    one: Some(true),
                },
            )
        });
        let changes = all
            .into_iter()
            .skip(from)
            .take(end.saturating_sub(from))
            .collect();
        Ok(CommitChangesPage {
            cause,
            changes,
            next_page_token,
        })
    }

    /// One page of the change feed (see the module docs). Errors:
    /// `UnknownBranch` (404); `CursorRejected` (400) for a cursor or
    /// token of another branch or filter scope, a commit off
    /// the branch's first-parent chain, or both a cursor and a start;
    /// `ChangeFeedGap` (410) when the history after the cursor was
    /// removed; `ChangeRefused` (409) across a schema change;
    /// `ChangeLimit` (413).
    pub async fn poll_changes(&self, req: FeedRequest) -> Result<FeedPage, EngineError> {
        let limit = limit_of(req.limit)?;
        let filter = req.filter.clone().canonical();
        filter.check(&self.catalog())?;
        if req.cursor.is_some() && req.start.is_some() {
            return Err(rejected("give a cursor or a start, not both"));
        }
        if req.page_token.is_some() && (req.cursor.is_some() || req.start.is_some()) {
            return Err(rejected(
                "a page token continues its poll alone; send it without a cursor or start",
            ));
        }
        let token = req
            .page_token
            .as_deref()
            .map(|t| decode(PAGE, t))
            .transpose()?;
        let cursor = req
            .cursor
            .as_deref()
            .map(|t| decode(CURSOR, t))
            .transpose()?;
        let bound = token.as_ref().or(cursor.as_ref());
        let branch = match (&req.branch, bound) {
            (Some(b), _) => b.clone(),
            (None, Some(p)) => p.b.clone(),
            (None, None) => super::MAIN.to_string(),
        };
        let m = self.manifest().await?;
        let bs = m
            .branches
            .get(&branch)
            .ok_or_else(|| Self::unknown_branch(&m, &branch))?;
        if let Some(p) = bound {
            if p.one.is_some() {
                return Err(rejected(
                    "this page token continues a commit's changes, not the feed",
                ));
            }
            if p.b != branch {
                return Err(rejected(format!(
                    "it follows branch `{}`, not `{branch}`",
                    p.b
                )));
            }
            if p.s != filter {
                return Err(rejected(
                    "it was issued for other kind/type/op filters; poll with the same filters",
                ));
            }
        }
        let here = |c: &CommitId, s: &ChangeFilter| Position {
            b: branch.clone(),
            s: s.clone(),
            c: c.clone(),
            cut: None,
            blk: None,
            off: None,
            one: None,
        };
        // The cut and the commit the page continues after (`None`: the
        // beginning), and the split block a token resumes.
        let (cut, after, resume) = match (&token, &cursor, &req.start) {
            (Some(t), _, _) => (
                t.cut.clone().unwrap_or_else(|| bs.head.clone()),
                Some(t.c.clone()),
                t.blk.clone().zip(t.off),
            ),
            (None, Some(c), _) => (bs.head.clone(), Some(c.c.clone()), None),
            (None, None, Some(FeedStart::Beginning)) => (bs.head.clone(), None, None),
            (None, None, Some(FeedStart::After(id))) => (bs.head.clone(), Some(id.clone()), None),
            (None, None, None | Some(FeedStart::Now)) => {
                return Ok(FeedPage {
                    blocks: Vec::new(),
                    cursor: Some(encode(CURSOR, &here(&bs.head, &filter))),
                    caught_up: Some(true),
                    next_page_token: None,
                });
            }
        };
        let gap = |first: &CommitId| EngineError::ChangeFeedGap {
            cursor: req.cursor.clone(),
            first_unreadable: first.to_string(),
        };
        let (base, chain) = self
            .first_parent_chain(&branch, &cut, after.as_ref(), &gap)
            .await?;
        if let Some((blk, _)) = &resume
            && chain.first().map(|c| &c.id) != Some(blk)
        {
            return Err(rejected(
                "the page token does not continue this branch's history",
            ));
        }
        let mut page = FeedPage {
            blocks: Vec::new(),
            cursor: None,
            caught_up: None,
            next_page_token: None,
        };
        let mut sent = 0usize;
        let mut parent = base;
        let mut last = parent.id.clone();
        let mut done = 0usize;
        for (n, c) in chain.iter().enumerate() {
            if page.blocks.len() >= MAX_BLOCKS {
                break;
            }
            let mut changes = match self.block_changes(&parent, c, &filter).await {
                Err(EngineError::ChangeFeedGap { .. } | EngineError::TableVersionGone { .. }) => {
                    return Err(gap(&c.id));
                }
                r => r?,
            };
            let skip = match &resume {
                Some((blk, off)) if n == 0 && *blk == c.id => *off,
                _ => 0,
            };
            let rest = changes.len().saturating_sub(skip);
            if sent + rest <= limit {
                changes.drain(..skip.min(changes.len()));
                sent += rest;
                page.blocks.push(ChangeBlock {
                    cause: ChangeCause::of(c),
                    changes,
                });
                last = c.id.clone();
                done = n + 1;
                parent = c.clone();
                continue;
            }
            if page.blocks.is_empty() {
                // A block larger than the page: split it.
                let end = skip + limit;
                let part: Vec<EntityChange> = changes.drain(..end).skip(skip).collect();
                page.blocks.push(ChangeBlock {
                    cause: ChangeCause::of(c),
                    changes: part,
                });
                let mut p = here(&parent.id, &filter);
                p.cut = Some(cut.clone());
                p.blk = Some(c.id.clone());
                p.off = Some(end);
                page.next_page_token = Some(encode(PAGE, &p));
                return Ok(page);
            }
            break;
        }
        page.cursor = Some(encode(CURSOR, &here(&last, &filter)));
        page.caught_up = Some(done == chain.len());
        Ok(page)
    }

    /// The commits after `after` up to `cut` along first parents, oldest
    /// first, and the record of the commit they follow (`after`, or the
    /// graph's first commit when `after` is `None`). Errors:
    /// `CursorRejected` when `after` is not on the chain, `gap` when a
    /// record is missing.
    async fn first_parent_chain(
        &self,
        branch: &str,
        cut: &CommitId,
        after: Option<&CommitId>,
        gap: &(dyn Fn(&CommitId) -> EngineError + Sync),
    ) -> Result<(Commit, Vec<Commit>), EngineError> {
        let mut chain = Vec::new();
        let mut cur = cut.clone();
        loop {
            if Some(&cur) == after {
                let base = self
                    .manifests
                    .commit(&cur)
                    .await?
                    .ok_or_else(|| gap(&cur))?;
                chain.reverse();
                return Ok((base, chain));
            }
            let c = self
                .manifests
                .commit(&cur)
                .await?
                .ok_or_else(|| gap(&cur))?;
            match c.parents.first().cloned() {
                Some(p) => {
                    chain.push(c);
                    cur = p;
                }
                None if after.is_none() => {
                    chain.reverse();
                    return Ok((c, chain));
                }
                None => {
                    let after = after.map(|a| a.to_string()).unwrap_or_default();
                    return Err(rejected(format!(
                        "commit {after} is not on branch `{branch}`'s first-parent history"
                    )));
                }
            }
        }
    }

    /// Captures a baseline: the branch head now and the cursor that
    /// resumes the feed right after it, for `filter`. Export the commit
    /// ([`Graph::export`] at `ReadAt::Commit`) before installing the
    /// cursor. Errors: `UnknownBranch`, a type the schema lacks.
    pub async fn capture_baseline(
        &self,
        branch: &str,
        filter: ChangeFilter,
    ) -> Result<(CommitId, String), EngineError> {
        let filter = filter.canonical();
        filter.check(&self.catalog())?;
        let m = self.manifest().await?;
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        let cursor = encode(
            CURSOR,
            &Position {
                b: branch.to_string(),
                s: filter,
                c: bs.head.clone(),
                cut: None,
                blk: None,
                off: None,
                one: None,
            },
        );
        Ok((bs.head.clone(), cursor))
    }

    /// The types a baseline's snapshot holds for `filter` (its kinds and
    /// types), in the schema of `at`; `None`: every type.
    pub async fn baseline_types(
        &self,
        at: &ReadAt,
        filter: &ChangeFilter,
    ) -> Result<Option<Vec<String>>, EngineError> {
        if filter.kinds.is_empty() && filter.types.is_empty() {
            return Ok(None);
        }
        let cat = self.catalog_at(at).await?;
        let wanted = |kind, name: &String| {
            (filter.kinds.is_empty() || filter.kinds.contains(&kind))
                && (filter.types.is_empty() || filter.types.contains(name))
        };
        use super::changes::EntityKind;
        let mut out: Vec<String> = cat
            .nodes
            .keys()
            .filter(|n| wanted(EntityKind::Node, n))
            .chain(cat.edges.keys().filter(|e| wanted(EntityKind::Edge, e)))
            .cloned()
            .collect();
        out.sort();
        Ok(Some(out))
    }
}
