//! What this process's own table commits inserted, per table version: lets
//! a commit turn keep an insert staged against an older version instead of
//! staging it again (docs/architecture.md, "Staged writes that are not
//! staged again").
//!
//! A staged upsert decided at its read version `V` which of its rows are
//! new. When every one of them was new at `V` (the staged Lance
//! transaction only adds rows) and no version after `V` up to the head it
//! now commits over inserted any of the same ids, committing it as staged
//! is what staging it again would do; Lance rebases the transaction over
//! the versions between (its conflict rules: an update that only adds
//! fragments conflicts with none of an append, another such update, a
//! compaction or an index build). The ledger is how the second condition
//! is checked without reading: it holds, per (table, Lance branch), the
//! ids each version this process committed inserted. A version missing
//! from it (committed by another process, by heal, a schema apply or a
//! merge) means "unknown", and the write is staged again.
//!
//! The ledger is forgotten whenever the [`super::manifest::ManifestStore`]
//! that owns it meets a manifest it did not publish (another process
//! wrote: its table versions, and a Lance branch it may have deleted and
//! made again with the same version numbers, are not ours to vouch for),
//! and when this process forks or deletes a Lance branch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::manifest::TableKey;

/// Versions remembered per table; older ones count as unknown.
pub const MAX_VERSIONS: usize = 4096;

/// Ids remembered per table, over all its versions (about 64 bytes each):
/// older versions are forgotten first, and a version inserting more is
/// recorded as unknown.
pub const MAX_IDS: usize = 200_000;

/// What one version inserted: the ids, or `None` when not known (an
/// overwrite, a merge's steps).
pub type Inserted = Option<Arc<HashSet<String>>>;

/// Per (table key, Lance branch): version → the ids it inserted.
#[derive(Debug, Default)]
pub struct Ledger {
    tables: HashMap<(TableKey, Option<String>), Versions>,
}

#[derive(Debug, Default)]
struct Versions {
    by_version: BTreeMap<u64, Inserted>,
    /// The ids held over all versions.
    ids: usize,
}

impl Ledger {
    /// Records that `version` of `key` on `branch`, committed by this
    /// process, inserted `ids` (`None`: unknown).
    pub fn record(&mut self, key: &TableKey, branch: Option<&str>, version: u64, ids: Inserted) {
        let ids = ids.filter(|s| s.len() <= MAX_IDS);
        let t = self
            .tables
            .entry((key.clone(), branch.map(str::to_string)))
            .or_default();
        t.ids += ids.as_ref().map_or(0, |s| s.len());
        if let Some(Some(old)) = t.by_version.insert(version, ids) {
            t.ids -= old.len();
        }
        while t.by_version.len() > MAX_VERSIONS || t.ids > MAX_IDS {
            match t.by_version.pop_first() {
                Some((_, Some(old))) => t.ids -= old.len(),
                Some((_, None)) => {}
                None => break,
            }
        }
    }

    /// Records versions `from..=to` as inserting nothing (index builds,
    /// compaction: the same rows rewritten).
    pub fn record_no_rows(&mut self, key: &TableKey, branch: Option<&str>, from: u64, to: u64) {
        for v in from..=to {
            self.record(key, branch, v, Some(Arc::new(HashSet::new())));
        }
    }

    /// Whether every version after `after` up to `upto` is known and none
    /// inserted any of `ids`. `after == upto` is trivially true.
    pub fn none_inserted(
        &self,
        key: &TableKey,
        branch: Option<&str>,
        after: u64,
        upto: u64,
        ids: &HashSet<String>,
    ) -> bool {
        if after >= upto {
            return after == upto;
        }
        let Some(t) = self.tables.get(&(key.clone(), branch.map(str::to_string))) else {
            return false;
        };
        let mut count = 0u64;
        for (_, inserted) in t.by_version.range(after + 1..=upto) {
            count += 1;
            match inserted {
                Some(s) if s.is_disjoint(ids) => {}
                _ => return false,
            }
        }
        count == upto - after
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.tables.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Inserted {
        Some(Arc::new(v.iter().map(|s| s.to_string()).collect()))
    }

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_known_disjoint_range_passes_and_a_gap_or_an_overlap_does_not() {
        let mut l = Ledger::default();
        l.record(&TableKey::node("P"), None, 5, ids(&["a"]));
        l.record(&TableKey::node("P"), None, 6, ids(&["b"]));
        l.record_no_rows(&TableKey::node("P"), None, 7, 7);
        assert!(l.none_inserted(&TableKey::node("P"), None, 4, 7, &set(&["c"])));
        assert!(l.none_inserted(&TableKey::node("P"), None, 7, 7, &set(&["a"])));
        // Overlap: `b` was inserted at 6.
        assert!(!l.none_inserted(&TableKey::node("P"), None, 4, 7, &set(&["b"])));
        // Gap: 8 is unknown.
        l.record(&TableKey::node("P"), None, 9, ids(&[]));
        assert!(!l.none_inserted(&TableKey::node("P"), None, 7, 9, &set(&["c"])));
        // Another Lance branch knows nothing.
        assert!(!l.none_inserted(&TableKey::node("P"), Some("f"), 4, 7, &set(&["c"])));
        // Unknown contents.
        l.record(&TableKey::node("Q"), None, 2, None);
        assert!(!l.none_inserted(&TableKey::node("Q"), None, 1, 2, &set(&["c"])));
        // Staged after the head: never.
        assert!(!l.none_inserted(&TableKey::node("P"), None, 8, 7, &set(&["c"])));
        l.clear();
        assert!(!l.none_inserted(&TableKey::node("P"), None, 4, 7, &set(&["c"])));
    }

    #[test]
    fn old_versions_are_forgotten() {
        let mut l = Ledger::default();
        for v in 1..=(MAX_VERSIONS as u64 + 10) {
            l.record(&TableKey::node("P"), None, v, ids(&[]));
        }
        assert!(!l.none_inserted(&TableKey::node("P"), None, 0, 20, &set(&["x"])));
        assert!(l.none_inserted(&TableKey::node("P"), None, 20, 30, &set(&["x"])));
    }

    #[test]
    fn the_ids_held_are_bounded() {
        let mut l = Ledger::default();
        let big: HashSet<String> = (0..MAX_IDS / 2 + 1).map(|i| i.to_string()).collect();
        l.record(&TableKey::node("P"), None, 1, Some(Arc::new(big.clone())));
        l.record(&TableKey::node("P"), None, 2, Some(Arc::new(big)));
        // Version 1 was forgotten to make room for version 2.
        assert!(!l.none_inserted(&TableKey::node("P"), None, 0, 2, &set(&["x"])));
        assert!(l.none_inserted(&TableKey::node("P"), None, 1, 2, &set(&["x"])));
        // Too many ids for one version: unknown.
        let huge: HashSet<String> = (0..MAX_IDS + 1).map(|i| i.to_string()).collect();
        l.record(&TableKey::node("P"), None, 3, Some(Arc::new(huge)));
        assert!(!l.none_inserted(&TableKey::node("P"), None, 2, 3, &set(&["x"])));
    }
}
