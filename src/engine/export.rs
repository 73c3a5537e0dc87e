//! `export`: the graph as NDJSON in the load format, streamed table by table
//! and batch by batch, so memory stays constant in the size of the graph.

use std::io::Write;

use futures::TryStreamExt;
use serde_json::{Map, Value as Json};

use super::values::{Cell, cell_at, to_json};
use super::{Graph, ReadAt};
use crate::engine::EngineError;
use crate::storage::table;

impl Graph {
    /// Writes every row visible at `at` (node tables first, then edges; only
    /// `types` when given) as load-format lines. Null properties are left
    /// out; `data.id` is always written so a reload keeps ids. Calls
    /// `on_rows` after each batch with the number of rows written. Returns
    /// the total.
    pub async fn export(
        &self,
        at: &ReadAt,
        types: Option<&[String]>,
        out: &mut dyn Write,
        mut on_rows: impl FnMut(usize),
    ) -> Result<usize, EngineError> {
        let view = self.view(at).await?;
        if let Some(ts) = types {
            for t in ts {
                if view.catalog.node(t).is_none() && view.catalog.edge(t).is_none() {
                    return Err(EngineError::Param {
                        name: "type".into(),
                        reason: format!("`{t}` is not a node or edge type of this graph"),
                    });
                }
            }
        }
        let io = |source: std::io::Error| EngineError::Io {
            path: "<output>".into(),
            source,
        };
        let mut total = 0;
        for key in super::keys_of(&view.catalog) {
            let (kind, name) = (key.kind().as_str(), key.name());
            if types.is_some_and(|ts| !ts.iter().any(|t| t == name)) {
                continue;
            }
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let ds = table::open(&self.at(&key, r)).await?;
            let props = super::props_of(&view.catalog, &key);
            let mut stream = table::scan(&ds, None).await?;
            while let Some(b) = stream.try_next().await? {
                let idx = |n: &str| b.schema().index_of(n).ok();
                let id_col = idx("id").map(|i| b.column(i).clone());
                let src_col = idx("src").map(|i| b.column(i).clone());
                let dst_col = idx("dst").map(|i| b.column(i).clone());
                let cols: Vec<_> = props
                    .iter()
                    .map(|p| idx(&p.name).map(|i| b.column(i).clone()))
                    .collect();
                let text = |c: &Option<arrow_array::ArrayRef>, i: usize| match c {
                    Some(a) => match cell_at(
                        a.as_ref(),
                        i,
                        &crate::schema::PropType::scalar(crate::schema::ScalarType::String),
                    ) {
                        Cell::Str(s) => Json::from(s),
                        _ => Json::Null,
                    },
                    None => Json::Null,
                };
                for i in 0..b.num_rows() {
                    let mut data = Map::new();
                    data.insert("id".into(), text(&id_col, i));
                    for (p, c) in props.iter().zip(&cols) {
                        if let Some(a) = c {
                            let cell = cell_at(a.as_ref(), i, &p.ty);
                            if cell != Cell::Null {
                                data.insert(p.name.clone(), to_json(&cell));
                            }
                        }
                    }
                    let mut line = Map::new();
                    if kind == "edge" {
                        line.insert("edge".into(), Json::from(name));
                        line.insert("from".into(), text(&src_col, i));
                        line.insert("to".into(), text(&dst_col, i));
                    } else {
                        line.insert("type".into(), Json::from(name));
                    }
                    line.insert("data".into(), Json::Object(data));
                    serde_json::to_writer(&mut *out, &Json::Object(line))
                        .map_err(|e| io(e.into()))?;
                    out.write_all(b"\n").map_err(io)?;
                }
                total += b.num_rows();
                on_rows(b.num_rows());
            }
        }
        out.flush().map_err(io)?;
        Ok(total)
    }
}
