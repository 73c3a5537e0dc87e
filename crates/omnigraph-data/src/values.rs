//! Typed cell values and their three spellings: JSON (load/export), Arrow
//! (Lance tables) and catalog types.
//!
//! Arrow types per catalog type: String/enum → Utf8; Blob → LargeBinary;
//! Bool → Boolean; I32/I64/U32/U64 → Int32/Int64/UInt32/UInt64; F32/F64 →
//! Float32/Float64; Date → Date32; DateTime → Timestamp(ms, "UTC");
//! `[T]` → List<T>; `Vector(n)` → FixedSizeList<Float32, n>.

use std::sync::Arc;

use arrow_array::builder::*;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, ListArray};
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use base64::Engine as _;
use serde_json::Value as Json;

use omnigraph_lang::schema::temporal::{parse_date, parse_datetime};
use omnigraph_lang::schema::{EdgeType, Literal, NodeType, PropType, Property, ScalarType};

/// One typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Str(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// UTC milliseconds since the epoch.
    DateTime(i64),
    Blob(Vec<u8>),
    List(Vec<Cell>),
    Vector(Vec<f32>),
}

/// The Arrow type of a catalog type.
pub fn arrow_type(t: &PropType) -> DataType {
    match t {
        PropType::Scalar { scalar } => scalar_arrow(*scalar),
        PropType::Enum { .. } => DataType::Utf8,
        PropType::List { item } => {
            DataType::List(Arc::new(Field::new("item", scalar_arrow(*item), true)))
        }
        PropType::Vector { dim } => DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            *dim as i32,
        ),
    }
}

fn scalar_arrow(s: ScalarType) -> DataType {
    match s {
        ScalarType::String => DataType::Utf8,
        ScalarType::Blob => DataType::LargeBinary,
        ScalarType::Bool => DataType::Boolean,
        ScalarType::I32 => DataType::Int32,
        ScalarType::I64 => DataType::Int64,
        ScalarType::U32 => DataType::UInt32,
        ScalarType::U64 => DataType::UInt64,
        ScalarType::F32 => DataType::Float32,
        ScalarType::F64 => DataType::Float64,
        ScalarType::Date => DataType::Date32,
        ScalarType::DateTime => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
    }
}

fn prop_fields(props: &[Property]) -> Vec<Field> {
    props
        .iter()
        .map(|p| {
            // Non-null in the schema only when a value is always present.
            Field::new(&p.name, arrow_type(&p.ty), p.nullable)
        })
        .collect()
}

/// Arrow schema of a node table: `id` then the properties.
pub fn node_schema(n: &NodeType) -> Schema {
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    fields.extend(prop_fields(&n.properties));
    Schema::new(Fields::from(fields))
}

/// Arrow schema of an edge table: `id`, `src`, `dst` then the properties.
pub fn edge_schema(e: &EdgeType) -> Schema {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("src", DataType::Utf8, false),
        Field::new("dst", DataType::Utf8, false),
    ];
    fields.extend(prop_fields(&e.properties));
    Schema::new(Fields::from(fields))
}

/// Why a JSON value does not fit a property.
pub type FitError = String;

/// Converts a JSON value to a cell of type `t` (null allowed only when
/// `nullable`). The error says what was expected.
pub fn from_json(v: &Json, t: &PropType, nullable: bool) -> Result<Cell, FitError> {
    if v.is_null() {
        return if nullable {
            Ok(Cell::Null)
        } else {
            Err("is required and cannot be null".into())
        };
    }
    match t {
        PropType::Scalar { scalar } => scalar_from_json(v, *scalar),
        PropType::Enum { values } => match v.as_str() {
            Some(s) if values.iter().any(|x| x == s) => Ok(Cell::Str(s.to_string())),
            Some(s) => Err(format!("`{s}` is not one of: {}", values.join(", "))),
            None => Err(format!(
                "expected a string (one of: {}), found {}",
                values.join(", "),
                kind(v)
            )),
        },
        PropType::List { item } => match v.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    if x.is_null() {
                        Err(format!("item {i} is null"))
                    } else {
                        scalar_from_json(x, *item).map_err(|e| format!("item {i}: {e}"))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::List),
            None => Err(format!("expected a list of {item}, found {}", kind(v))),
        },
        PropType::Vector { dim } => match v.as_array() {
            Some(items) if items.len() == *dim as usize => items
                .iter()
                .map(|x| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .ok_or_else(|| "vector items must be numbers".to_string())
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::Vector),
            Some(items) => Err(format!("expected {dim} numbers, found {}", items.len())),
            None => Err(format!(
                "expected a vector of {dim} numbers, found {}",
                kind(v)
            )),
        },
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn scalar_from_json(v: &Json, s: ScalarType) -> Result<Cell, FitError> {
    let bad = || format!("expected {}, found {}", s.name(), kind(v));
    let int = || -> Result<i128, FitError> {
        match v {
            Json::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .ok_or_else(|| format!("expected an integer ({}), found {n}", s.name())),
            // Large unsigned ids travel as strings in JS-safe JSON.
            Json::String(t) => t.parse::<i128>().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let range = |x: i128| format!("{x} is out of range for {}", s.name());
    Ok(match s {
        ScalarType::String => Cell::Str(v.as_str().ok_or_else(bad)?.to_string()),
        ScalarType::Bool => Cell::Bool(v.as_bool().ok_or_else(bad)?),
        ScalarType::I32 => {
            let x = int()?;
            Cell::I32(i32::try_from(x).map_err(|_| range(x))?)
        }
        ScalarType::I64 => {
            let x = int()?;
            Cell::I64(i64::try_from(x).map_err(|_| range(x))?)
        }
        ScalarType::U32 => {
            let x = int()?;
            Cell::U32(u32::try_from(x).map_err(|_| range(x))?)
        }
        ScalarType::U64 => {
            let x = int()?;
            Cell::U64(u64::try_from(x).map_err(|_| range(x))?)
        }
        ScalarType::F32 => Cell::F32(v.as_f64().ok_or_else(bad)? as f32),
        ScalarType::F64 => Cell::F64(v.as_f64().ok_or_else(bad)?),
        ScalarType::Date => {
            let t = v.as_str().ok_or_else(bad)?;
            Cell::Date(parse_date(t).ok_or_else(|| format!("`{t}` is not a date (YYYY-MM-DD)"))?)
        }
        ScalarType::DateTime => {
            let t = v.as_str().ok_or_else(bad)?;
            Cell::DateTime(parse_datetime(t).ok_or_else(|| {
                format!("`{t}` is not an RFC 3339 datetime (e.g. 2026-01-31T12:00:00Z)")
            })?)
        }
        ScalarType::Blob => {
            let t = v.as_str().ok_or_else(bad)?;
            let Some(payload) = t.strip_prefix("base64:") else {
                return Err("Blob values are `base64:<payload>`; external URI references are not allowed here".into());
            };
            Cell::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .map_err(|e| format!("invalid base64: {e}"))?,
            )
        }
    })
}

/// The cell for a schema `@default` literal.
pub fn default_cell(p: &Property, lit: &Literal) -> Cell {
    let json = match lit {
        Literal::Bool(b) => Json::from(*b),
        Literal::Int(i) => Json::from(*i),
        Literal::Float(f) => Json::from(*f),
        Literal::String(s) => Json::from(s.clone()),
    };
    from_json(&json, &p.ty, true).unwrap_or(Cell::Null)
}

/// The canonical JSON spelling of a cell (what export writes).
pub fn to_json(c: &Cell) -> Json {
    match c {
        Cell::Null => Json::Null,
        Cell::Bool(b) => Json::from(*b),
        Cell::I32(x) => Json::from(*x),
        Cell::I64(x) => Json::from(*x),
        Cell::U32(x) => Json::from(*x),
        Cell::U64(x) => Json::from(*x),
        Cell::F32(x) => {
            serde_json::Number::from_f64(f64::from(*x)).map_or(Json::Null, Json::Number)
        }
        Cell::F64(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Cell::Str(s) => Json::from(s.clone()),
        Cell::Date(d) => Json::from(format_date(*d)),
        Cell::DateTime(ms) => Json::from(format_datetime(*ms)),
        Cell::Blob(b) => Json::from(format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(b)
        )),
        Cell::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Cell::Vector(v) => Json::Array(
            v.iter()
                .map(|x| {
                    serde_json::Number::from_f64(f64::from(*x)).map_or(Json::Null, Json::Number)
                })
                .collect(),
        ),
    }
}

/// `YYYY-MM-DD` for days since the epoch.
pub fn format_date(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|d| d.date_naive().format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// RFC 3339 UTC with milliseconds for epoch milliseconds.
pub fn format_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The canonical key string of a cell (node ids, endpoint names).
pub fn key_string(c: &Cell) -> String {
    match c {
        Cell::Str(s) => s.clone(),
        other => match to_json(other) {
            Json::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// Builds an Arrow column of type `t` from cells.
pub fn column(cells: &[Cell], t: &PropType) -> ArrayRef {
    match t {
        PropType::Scalar { scalar } => scalar_column(cells, *scalar),
        PropType::Enum { .. } => scalar_column(cells, ScalarType::String),
        PropType::List { item } => {
            let mut offsets = Vec::with_capacity(cells.len() + 1);
            let mut flat = Vec::new();
            let mut valid = Vec::with_capacity(cells.len());
            offsets.push(0i32);
            for c in cells {
                match c {
                    Cell::List(items) => {
                        flat.extend(items.iter().cloned());
                        valid.push(true);
                    }
                    _ => valid.push(false),
                }
                offsets.push(flat.len() as i32);
            }
            let values = scalar_column(&flat, *item);
            let field = Arc::new(Field::new("item", scalar_arrow(*item), true));
            Arc::new(ListArray::new(
                field,
                arrow_buffer::OffsetBuffer::new(arrow_buffer::ScalarBuffer::from(offsets)),
                values,
                Some(valid.into()),
            ))
        }
        PropType::Vector { dim } => {
            let mut b = Float32Builder::with_capacity(cells.len() * *dim as usize);
            let mut valid = Vec::with_capacity(cells.len());
            for c in cells {
                match c {
                    Cell::Vector(v) if v.len() == *dim as usize => {
                        b.append_slice(v);
                        valid.push(true);
                    }
                    _ => {
                        b.append_nulls(*dim as usize);
                        valid.push(false);
                    }
                }
            }
            let field = Arc::new(Field::new("item", DataType::Float32, true));
            Arc::new(FixedSizeListArray::new(
                field,
                *dim as i32,
                Arc::new(b.finish()),
                Some(valid.into()),
            ))
        }
    }
}

macro_rules! prim {
    ($cells:expr, $builder:ty, $variant:path) => {{
        let mut b = <$builder>::with_capacity($cells.len());
        for c in $cells {
            match c {
                $variant(x) => b.append_value(*x),
                _ => b.append_null(),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

fn scalar_column(cells: &[Cell], s: ScalarType) -> ArrayRef {
    match s {
        ScalarType::String => {
            let mut b = StringBuilder::with_capacity(cells.len(), cells.len() * 16);
            for c in cells {
                match c {
                    Cell::Str(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ScalarType::Blob => {
            let mut b = LargeBinaryBuilder::with_capacity(cells.len(), 0);
            for c in cells {
                match c {
                    Cell::Blob(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        ScalarType::Bool => prim!(cells, BooleanBuilder, Cell::Bool),
        ScalarType::I32 => prim!(cells, Int32Builder, Cell::I32),
        ScalarType::I64 => prim!(cells, Int64Builder, Cell::I64),
        ScalarType::U32 => prim!(cells, UInt32Builder, Cell::U32),
        ScalarType::U64 => prim!(cells, UInt64Builder, Cell::U64),
        ScalarType::F32 => prim!(cells, Float32Builder, Cell::F32),
        ScalarType::F64 => prim!(cells, Float64Builder, Cell::F64),
        ScalarType::Date => prim!(cells, Date32Builder, Cell::Date),
        ScalarType::DateTime => {
            let mut b =
                TimestampMillisecondBuilder::with_capacity(cells.len()).with_timezone("UTC");
            for c in cells {
                match c {
                    Cell::DateTime(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// Reads row `i` of an Arrow column of catalog type `t` back into a cell.
pub fn cell_at(a: &dyn Array, i: usize, t: &PropType) -> Cell {
    if a.is_null(i) {
        return Cell::Null;
    }
    match t {
        PropType::Scalar { scalar } => scalar_at(a, i, *scalar),
        PropType::Enum { .. } => scalar_at(a, i, ScalarType::String),
        PropType::List { item } => {
            let l = a.as_list::<i32>();
            let v = l.value(i);
            Cell::List(
                (0..v.len())
                    .map(|j| scalar_at(v.as_ref(), j, *item))
                    .collect(),
            )
        }
        PropType::Vector { .. } => {
            let l = a.as_fixed_size_list();
            let v = l.value(i);
            let f = v.as_primitive::<Float32Type>();
            Cell::Vector(f.values().to_vec())
        }
    }
}

fn scalar_at(a: &dyn Array, i: usize, s: ScalarType) -> Cell {
    if a.is_null(i) {
        return Cell::Null;
    }
    match s {
        ScalarType::String => Cell::Str(a.as_string::<i32>().value(i).to_string()),
        ScalarType::Blob => Cell::Blob(a.as_binary::<i64>().value(i).to_vec()),
        ScalarType::Bool => Cell::Bool(a.as_boolean().value(i)),
        ScalarType::I32 => Cell::I32(a.as_primitive::<Int32Type>().value(i)),
        ScalarType::I64 => Cell::I64(a.as_primitive::<Int64Type>().value(i)),
        ScalarType::U32 => Cell::U32(a.as_primitive::<UInt32Type>().value(i)),
        ScalarType::U64 => Cell::U64(a.as_primitive::<UInt64Type>().value(i)),
        ScalarType::F32 => Cell::F32(a.as_primitive::<Float32Type>().value(i)),
        ScalarType::F64 => Cell::F64(a.as_primitive::<Float64Type>().value(i)),
        ScalarType::Date => Cell::Date(a.as_primitive::<Date32Type>().value(i)),
        ScalarType::DateTime => {
            Cell::DateTime(a.as_primitive::<TimestampMillisecondType>().value(i))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_cells_and_arrow() {
        let cases: Vec<(PropType, Json)> = vec![
            (PropType::scalar(ScalarType::String), Json::from("x")),
            (PropType::scalar(ScalarType::I32), Json::from(-5)),
            (PropType::scalar(ScalarType::U64), Json::from(u64::MAX)),
            (PropType::scalar(ScalarType::F64), Json::from(1.5)),
            (PropType::scalar(ScalarType::Date), Json::from("2026-01-31")),
            (
                PropType::scalar(ScalarType::DateTime),
                Json::from("2026-01-31T12:00:00.250Z"),
            ),
            (
                PropType::scalar(ScalarType::Blob),
                Json::from("base64:aGk="),
            ),
            (
                PropType::List {
                    item: ScalarType::String,
                },
                serde_json::json!(["a", "b"]),
            ),
            (PropType::Vector { dim: 2 }, serde_json::json!([0.5, 1.0])),
            (
                PropType::Enum {
                    values: vec!["a".into()],
                },
                Json::from("a"),
            ),
        ];
        for (t, j) in cases {
            let c = from_json(&j, &t, false).expect("fits");
            let col = column(&[c.clone(), Cell::Null], &t);
            assert_eq!(cell_at(col.as_ref(), 0, &t), c);
            assert_eq!(cell_at(col.as_ref(), 1, &t), Cell::Null);
            assert_eq!(to_json(&c), j, "{t}");
        }
    }

    #[test]
    fn misfits_say_what_was_expected() {
        let e = from_json(&Json::from("x"), &PropType::scalar(ScalarType::I32), false).unwrap_err();
        assert!(e.contains("expected I32"), "{e}");
        let e = from_json(
            &Json::from(3_000_000_000i64),
            &PropType::scalar(ScalarType::I32),
            false,
        )
        .unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = from_json(&Json::Null, &PropType::scalar(ScalarType::I32), false).unwrap_err();
        assert!(e.contains("required"), "{e}");
    }
}
