//! The per-table read state a query works from, cached across queries by
//! (table, branch, version) and bounded by bytes: decoded rows, id lookups
//! through the BTREE index, the CSR adjacency of an edge table.

use super::*;

/// Decoded rows of one table version, with an id index.
#[derive(Debug, Default)]
pub struct Decoded {
    pub rows: Vec<Arc<Row>>,
    pub by_id: HashMap<String, Arc<Row>>,
}

/// Compact adjacency of one edge table version: node ids interned to dense
/// `u32`s, out-neighbours in CSR form (`out_off[n]..out_off[n+1]` indexes
/// `out_to`) and in-neighbours in CSC form, one entry per stored edge.
#[derive(Debug, Default)]
pub struct Csr {
    pub ids: Vec<String>,
    pub dense: HashMap<String, u32>,
    pub out_off: Vec<u32>,
    pub out_to: Vec<u32>,
    pub in_off: Vec<u32>,
    pub in_to: Vec<u32>,
}

impl Csr {
    pub(super) fn build(
        pairs: &[(u32, u32)],
        ids: Vec<String>,
        dense: HashMap<String, u32>,
    ) -> Csr {
        let n = ids.len();
        let side = |key: fn(&(u32, u32)) -> (u32, u32)| {
            let mut off = vec![0u32; n + 1];
            for p in pairs {
                off[key(p).0 as usize + 1] += 1;
            }
            for i in 0..n {
                off[i + 1] += off[i];
            }
            let mut fill = off.clone();
            let mut to = vec![0u32; pairs.len()];
            for p in pairs {
                let (a, b) = key(p);
                to[fill[a as usize] as usize] = b;
                fill[a as usize] += 1;
            }
            (off, to)
        };
        let (out_off, out_to) = side(|&(s, d)| (s, d));
        let (in_off, in_to) = side(|&(s, d)| (d, s));
        Csr {
            ids,
            dense,
            out_off,
            out_to,
            in_off,
            in_to,
        }
    }

    /// Neighbours of dense node `n`: forward (src→dst), backward, or both.
    pub(super) fn neighbours(&self, n: u32, fwd: bool, bwd: bool, out: &mut Vec<u32>) {
        let n = n as usize;
        if fwd {
            out.extend_from_slice(
                &self.out_to[self.out_off[n] as usize..self.out_off[n + 1] as usize],
            );
        }
        if bwd {
            out.extend_from_slice(
                &self.in_to[self.in_off[n] as usize..self.in_off[n + 1] as usize],
            );
        }
    }
}

/// One table at a pinned version, filled lazily (see the module docs).
#[derive(Debug)]
pub struct TableState {
    /// `None`: the table does not exist in the view (no rows).
    pub(super) at: Option<TableAt>,
    pub(super) props: Vec<Property>,
    pub(super) edge: bool,
    /// Columns carrying a BTREE index (`id`, `src`, `dst`, declared ones).
    pub(super) btree: Vec<String>,
    /// Columns carrying a full-text index.
    pub(super) fulltext: Vec<String>,
    /// Vector columns declared `@index` (a vector index once the table is
    /// large enough; [`crate::storage::table::has_vector_index`] tells).
    pub(super) vector: Vec<String>,
    pub(super) ds: OnceCell<Arc<Dataset>>,
    pub(super) full: OnceCell<Arc<Decoded>>,
    pub(super) csr: OnceCell<Arc<Csr>>,
    /// An estimate of what `full` and `csr` hold, for the cache's bound.
    pub(super) bytes: std::sync::atomic::AtomicU64,
}

impl crate::engine::table_cache::Weighed for TableState {
    fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Table states keyed by (table, Lance branch, version), least recently
/// used dropped first past [`crate::engine::table_cache::MAX_ENTRIES`] entries or
/// [`crate::engine::table_cache::MAX_BYTES`] of decoded rows and adjacency.
pub type TableCache =
    crate::engine::table_cache::Bounded<(String, Option<String>, u64), TableState>;

/// More ids than this are resolved by decoding the whole table instead of an
/// indexed `IN (…)` lookup.
pub(super) const MAX_INDEXED_IDS: usize = 20_000;
/// Values per `IN (…)` predicate.
pub(super) const IN_CHUNK: usize = 1_000;

impl TableState {
    pub(super) async fn dataset(&self) -> Result<Option<Arc<Dataset>>, EngineError> {
        let Some(at) = &self.at else {
            return Ok(None);
        };
        let ds = self
            .ds
            .get_or_try_init(|| async { Ok::<_, EngineError>(Arc::new(table::open(at).await?)) })
            .await?;
        Ok(Some(ds.clone()))
    }

    /// Every row, decoded once.
    pub(super) async fn full(&self) -> Result<Arc<Decoded>, EngineError> {
        let d = self
            .full
            .get_or_try_init(|| async {
                let mut d = Decoded::default();
                if let Some(ds) = self.dataset().await? {
                    for b in table::scan_all(&ds, None).await? {
                        // Decoded rows (strings, cells, the id map) take
                        // about three times their Arrow form.
                        self.bytes.fetch_add(
                            3 * b.get_array_memory_size() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        for r in rows_of(&b, &self.props, self.edge) {
                            let r = Arc::new(r);
                            d.by_id.insert(r.id.clone(), r.clone());
                            d.rows.push(r);
                        }
                    }
                }
                Ok::<_, EngineError>(Arc::new(d))
            })
            .await?;
        Ok(d.clone())
    }

    /// Rows whose `column` is one of `values` (SQL literals), through the
    /// column's BTREE index.
    pub(super) async fn rows_where_in(
        &self,
        column: &str,
        values: &[String],
    ) -> Result<Vec<Arc<Row>>, EngineError> {
        let mut out = Vec::new();
        let Some(ds) = self.dataset().await? else {
            return Ok(out);
        };
        for chunk in values.chunks(IN_CHUNK) {
            let filter = format!("{column} IN ({})", chunk.join(", "));
            for b in table::scan_where(&ds, &filter).await? {
                out.extend(
                    rows_of(&b, &self.props, self.edge)
                        .into_iter()
                        .map(Arc::new),
                );
            }
        }
        Ok(out)
    }

    /// Rows by id: from the decoded table when it is already in memory or
    /// the id set is large, else through the `id` BTREE index.
    pub(super) async fn rows_by_id(
        &self,
        ids: &HashSet<String>,
    ) -> Result<HashMap<String, Arc<Row>>, EngineError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if self.full.initialized() || ids.len() > MAX_INDEXED_IDS {
            let full = self.full().await?;
            return Ok(ids
                .iter()
                .filter_map(|i| full.by_id.get(i).map(|r| (i.clone(), r.clone())))
                .collect());
        }
        let lits: Vec<String> = ids.iter().map(|i| sql_string(i)).collect();
        Ok(self
            .rows_where_in("id", &lits)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect())
    }

    /// The adjacency of an edge table, built once from its `src`/`dst`.
    pub(super) async fn csr(&self) -> Result<Arc<Csr>, EngineError> {
        let c = self
            .csr
            .get_or_try_init(|| async {
                use arrow_array::{Array, StringArray};
                let mut ids: Vec<String> = Vec::new();
                let mut dense: HashMap<String, u32> = HashMap::new();
                let mut pairs: Vec<(u32, u32)> = Vec::new();
                let mut intern = |s: &str| -> u32 {
                    if let Some(&d) = dense.get(s) {
                        return d;
                    }
                    let d = ids.len() as u32;
                    ids.push(s.to_string());
                    dense.insert(s.to_string(), d);
                    d
                };
                if let Some(ds) = self.dataset().await? {
                    for b in table::scan_all(&ds, Some(&["src", "dst"])).await? {
                        let col = |n: &str| {
                            b.column_by_name(n)
                                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                                .cloned()
                        };
                        let (Some(s), Some(d)) = (col("src"), col("dst")) else {
                            continue;
                        };
                        for i in 0..b.num_rows() {
                            if s.is_valid(i) && d.is_valid(i) {
                                let a = intern(s.value(i));
                                let z = intern(d.value(i));
                                pairs.push((a, z));
                            }
                        }
                    }
                }
                // Four u32 arrays, the ids and the map from id to index.
                let id_bytes: usize = ids.iter().map(|i| 2 * i.len() + 80).sum();
                let est = 16 * (pairs.len() + ids.len()) + id_bytes;
                self.bytes
                    .fetch_add(est as u64, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, EngineError>(Arc::new(Csr::build(&pairs, ids, dense)))
            })
            .await?;
        Ok(c.clone())
    }
}

/// A SQL string literal.
/// `s` as a SQL string literal (quotes doubled).
pub(crate) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A cell as a SQL literal for an indexed `IN (…)` lookup; `None` for
/// values that path does not take (they fall back to a scan).
pub(super) fn sql_literal(c: &Cell) -> Option<String> {
    match c {
        Cell::Str(s) => Some(sql_string(s)),
        Cell::I32(x) => Some(x.to_string()),
        Cell::I64(x) => Some(x.to_string()),
        Cell::U32(x) => Some(x.to_string()),
        Cell::U64(x) => Some(x.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
