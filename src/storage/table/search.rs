//! Filtered scans and text search: `scan_where`, Lance's full-text index
//! (`search`, `match_text`, `bm25`), and fuzzy matching over the fragments
//! an index does not cover yet.

use super::*;

/// The rows of `ds` matching `filter` (a Lance SQL predicate), only the
/// given `columns`; an indexed `IN (…)` is served from the index.
pub async fn scan_where_columns(
    ds: &Dataset,
    filter: &str,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, TableError> {
    let uri = ds.uri().to_string();
    let mut sc = ds.scan();
    sc.project(columns).map_err(|e| terr(&uri, e))?;
    sc.filter(filter).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    stream.map_err(|e| terr(&uri, e)).try_collect().await
}

/// Rows whose `filter` (a Lance/DataFusion SQL predicate) holds, as batches.
/// Lance serves the predicate from a scalar index when one covers it.
pub async fn scan_where(ds: &Dataset, filter: &str) -> Result<Vec<RecordBatch>, TableError> {
    let uri = ds.uri().to_string();
    let mut sc = ds.scan();
    sc.filter(filter).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    stream.map_err(|e| terr(&uri, e)).try_collect().await
}

/// How a full-text query combines its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// Any token matches (`search`, `bm25`).
    Any,
    /// Every token matches (`match_text`).
    All,
    /// Any token within this many edits of an indexed term (`fuzzy`).
    Fuzzy(u32),
}

/// Full-text search on `column` through its inverted index: the matching
/// rows' `id`s with their BM25 scores (Lance: k1 = 1.2, b = 0.75).
pub async fn full_text(
    ds: &Dataset,
    column: &str,
    query: &str,
    mode: TextMode,
) -> Result<Vec<(String, f32)>, TableError> {
    use lance_index::scalar::FullTextSearchQuery;
    use lance_index::scalar::inverted::query::{MatchQuery, Operator};
    let uri = ds.uri().to_string();
    // Lowercased here as well as by the tokenizer: Lance's fuzzy expansion
    // compares the raw query term with the (lowercased) index vocabulary.
    let mut m = MatchQuery::new(query.to_lowercase()).with_column(Some(column.to_string()));
    m = match mode {
        TextMode::Any => m.with_operator(Operator::Or).with_fuzziness(Some(0)),
        TextMode::All => m.with_operator(Operator::And).with_fuzziness(Some(0)),
        TextMode::Fuzzy(k) => m
            .with_operator(Operator::Or)
            .with_fuzziness(Some(k))
            .with_max_expansions(10_000),
    };
    let mut sc = ds.scan();
    sc.full_text_search(FullTextSearchQuery::new_query(m.into()))
        .map_err(|e| terr(&uri, e))?;
    sc.project(&["id"]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let batches: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut out = scored_ids(&uri, batches)?;
    if let TextMode::Fuzzy(k) = mode {
        fuzzy_unindexed(ds, column, query, k, &mut out).await?;
    }
    Ok(out)
}

/// The `(id, _score)` pairs of a full-text search's batches.
pub(super) fn scored_ids(
    uri: &str,
    batches: Vec<RecordBatch>,
) -> Result<Vec<(String, f32)>, TableError> {
    use arrow_array::{Array, Float32Array, StringArray};
    let mut out = Vec::new();
    for b in batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let scores = b
            .column_by_name("_score")
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>());
        let (Some(ids), Some(scores)) = (ids, scores) else {
            return Err(TableError {
                uri: uri.to_string(),
                message: "full-text search returned no id/_score columns".into(),
                conflict: false,
                missing: false,
            });
        };
        for i in 0..b.num_rows() {
            if ids.is_valid(i) {
                out.push((ids.value(i).to_string(), scores.value(i)));
            }
        }
    }
    Ok(out)
}

/// The tokens of `text` as every full-text index here splits them
/// ([`fts_params`]: runs of alphanumeric characters, lowercased).
pub fn fts_tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// Completes a `fuzzy` search over the fragments the full-text index does
/// not cover yet (index upkeep is deferred, [`indexes_due`]): Lance expands
/// a fuzzy term against the index's vocabulary only and searches uncovered
/// fragments for the exact terms. This reads those fragments' `column`,
/// finds their terms within `k` edits (Levenshtein, as Lance's automaton)
/// of a query term but not equal to one, searches them exactly and adds
/// each uncovered row's scores to what `out` already holds for it, so a
/// row scores the sum over its matching terms, as an index covering it
/// would give. Nothing is read when the index covers every fragment.
pub(super) async fn fuzzy_unindexed(
    ds: &Dataset,
    column: &str,
    query: &str,
    k: u32,
    out: &mut Vec<(String, f32)>,
) -> Result<(), TableError> {
    use arrow_array::{Array, StringArray};
    use lance::index::DatasetIndexInternalExt;
    use lance_index::scalar::FullTextSearchQuery;
    use lance_index::scalar::inverted::query::{MatchQuery, Operator};
    let uri = ds.uri().to_string();
    let unindexed = ds
        .unindexed_fragments(&IndexSpec::FullText(column.to_string()).name())
        .await
        .map_err(|e| terr(&uri, e))?;
    if unindexed.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = fts_tokens(query).collect();
    let mut sc = ds.scan();
    sc.with_fragments(unindexed);
    sc.project(&["id", column]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let batches: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut extra: std::collections::BTreeSet<String> = Default::default();
    let mut rows: std::collections::HashSet<String> = Default::default();
    for b in &batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let texts = b
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let (Some(ids), Some(texts)) = (ids, texts) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if !ids.is_valid(i) || !texts.is_valid(i) {
                continue;
            }
            let mut near = false;
            for t in fts_tokens(texts.value(i)) {
                if wanted.contains(&t) {
                    continue;
                }
                if wanted
                    .iter()
                    .any(|w| strsim::levenshtein(w, &t) <= k as usize)
                {
                    near = true;
                    extra.insert(t);
                }
            }
            if near {
                rows.insert(ids.value(i).to_string());
            }
        }
    }
    if extra.is_empty() {
        return Ok(());
    }
    let terms = extra.into_iter().collect::<Vec<_>>().join(" ");
    let m = MatchQuery::new(terms)
        .with_column(Some(column.to_string()))
        .with_operator(Operator::Or)
        .with_fuzziness(Some(0));
    let mut sc = ds.scan();
    sc.full_text_search(FullTextSearchQuery::new_query(m.into()))
        .map_err(|e| terr(&uri, e))?;
    sc.project(&["id"]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let found: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut add: std::collections::HashMap<String, f32> = scored_ids(&uri, found)?
        .into_iter()
        .filter(|(id, _)| rows.contains(id))
        .collect();
    for (id, score) in out.iter_mut() {
        if let Some(s) = add.remove(id) {
            *score += s;
        }
    }
    out.extend(add);
    Ok(())
}

/// True when `ds` carries a trained vector index named `name` (at least
/// one segment that covers fragments; Lance stores an index over too few
/// vectors as a definition with no files). Reads the manifest's index
/// section, which the shared session caches.
pub async fn has_vector_index(ds: &Dataset, name: &str) -> Result<bool, TableError> {
    use lance::index::DatasetIndexExt;
    let indices = ds.load_indices().await.map_err(|e| terr(ds.uri(), e))?;
    Ok(indices
        .iter()
        .any(|i| i.name == name && i.fragment_bitmap.as_ref().is_some_and(|b| !b.is_empty())))
}

/// The `k` rows of `ds` nearest to `query` in the vector column `column`
/// by cosine distance, through its vector index when it has one (IVF
/// probes at least `min_probes` partitions; candidates re-ranked by exact
/// distance, [`VECTOR_REFINE`]); fragments the index does not cover are
/// searched exactly and merged by Lance. Returns `(id, distance)`, nearest
/// first; rows whose vector is null never appear. Errors: `query` of
/// another width than the column, storage.
pub async fn nearest(
    ds: &Dataset,
    column: &str,
    query: &[f32],
    k: usize,
    min_probes: usize,
) -> Result<Vec<(String, f32)>, TableError> {
    use arrow_array::{Array, Float32Array};
    let uri = ds.uri().to_string();
    if k == 0 {
        return Ok(Vec::new());
    }
    let q = Float32Array::from(query.to_vec());
    let mut sc = ds.scan();
    sc.nearest(column, &q, k).map_err(|e| terr(&uri, e))?;
    sc.distance_metric(lance_linalg::distance::DistanceType::Cosine)
        .minimum_nprobes(min_probes.max(1))
        .refine(VECTOR_REFINE);
    sc.project(&["id", "_distance"])
        .map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let batches: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>());
        let dist = b
            .column_by_name("_distance")
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>());
        let (Some(ids), Some(dist)) = (ids, dist) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if ids.is_valid(i) && dist.is_valid(i) {
                out.push((ids.value(i).to_string(), dist.value(i)));
            }
        }
    }
    Ok(out)
}
