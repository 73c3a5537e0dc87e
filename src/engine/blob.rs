//! Reading one `Blob` property of one node or edge (reference
//! docs/user/cli/reference.md, "Blob read commands"; `GET /graphs/{id}/blob`).
//! Blobs are loaded as `base64:<payload>` and stored in a Lance
//! `LargeBinary` column; a read fetches the one row by its `id` (through the
//! `id` BTREE) and only that column.

use arrow_array::Array;

use super::changes::EntityKind;
use super::{CommitId, EngineError, Graph, ReadAt, TableKey};
use crate::schema::ScalarType;
use crate::storage::table;

/// One Blob cell as a read found it: the commit it was read at and the
/// bytes.
#[derive(Debug, Clone)]
pub struct BlobCell {
    pub commit: CommitId,
    pub bytes: Vec<u8>,
}

impl Graph {
    /// The bytes of `property` of the `kind` entity `id` of type
    /// `type_name` at `at`. Errors: an unknown type or property, or one
    /// that is not a `Blob` (`Source`, 400); no such entity, or a null
    /// cell (`NoBlob`, 404); an unknown branch or commit.
    pub async fn blob(
        &self,
        at: &ReadAt,
        kind: EntityKind,
        type_name: &str,
        id: &str,
        property: &str,
    ) -> Result<BlobCell, EngineError> {
        let view = self.view(at).await?;
        let key = match kind {
            EntityKind::Node => TableKey::node(type_name),
            EntityKind::Edge => TableKey::edge(type_name),
        };
        let exists = match kind {
            EntityKind::Node => view.catalog.node(type_name).is_some(),
            EntityKind::Edge => view.catalog.edge(type_name).is_some(),
        };
        let kind_name = key.kind().as_str();
        if !exists {
            return Err(EngineError::Source {
                reason: format!("`{type_name}` is not a {kind_name} type of this graph"),
            });
        }
        let props = super::props_of(&view.catalog, &key);
        let Some(p) = props.iter().find(|p| p.name == property) else {
            let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
            return Err(EngineError::Source {
                reason: format!(
                    "{kind_name} type `{type_name}` has no property `{property}`; {}",
                    crate::diag::valid_list("properties", names.iter().copied())
                ),
            });
        };
        if p.ty.as_scalar() != Some(ScalarType::Blob) {
            return Err(EngineError::Source {
                reason: format!(
                    "property `{property}` of `{type_name}` is not a Blob; read it with a query"
                ),
            });
        }
        let missing = |what: String| EngineError::NoBlob { what };
        let Some(r) = view.tables.get(&key) else {
            return Err(missing(format!(
                "{kind_name} {type_name} `{id}` does not exist"
            )));
        };
        let ds = table::open(&self.at(&key, r)).await?;
        let filter = format!("id = '{}'", id.replace('\'', "''"));
        let batches = table::scan_where_columns(&ds, &filter, &[property]).await?;
        let col = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| b.column_by_name(property).cloned())
            .ok_or_else(|| missing(format!("{kind_name} {type_name} `{id}` does not exist")))?;
        if col.is_null(0) {
            return Err(missing(format!(
                "{kind_name} {type_name} `{id}` has no `{property}` (the cell is null)"
            )));
        }
        let bytes = match super::values::cell_at(col.as_ref(), 0, &p.ty) {
            super::values::Cell::Blob(b) => b,
            _ => {
                return Err(EngineError::Corrupt {
                    path: format!("{key}.{property}"),
                    reason: "a Blob column holds another type".into(),
                });
            }
        };
        Ok(BlobCell {
            commit: view.commit,
            bytes,
        })
    }
}
