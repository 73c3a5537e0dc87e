//! The compiled catalog: resolved node and edge types with interface
//! properties merged in, keys, endpoints, indexes and constraints.
//!
//! The catalog is what every layer above the compiler reads: the query type
//! checker, the engine (Arrow schemas, validation on load) and schema
//! migration planning (`schema::migrate`). It is plain data and serializes to JSON so a graph can
//! persist its compiled IR beside the `.pg` source.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Names reserved for Lance's virtual system columns; a schema may not declare
/// them (reference: docs/user/schema/index.md, "Property declarations").
pub const RESERVED_SYSTEM_COLUMNS: &[&str] = &[
    "_rowid",
    "_rowaddr",
    "_rowoffset",
    "_row_created_at_version",
    "_row_last_updated_at_version",
];

/// A built-in scalar type (reference table "Built-in scalar types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScalarType {
    String,
    Blob,
    Bool,
    I32,
    I64,
    U32,
    U64,
    F32,
    F64,
    Date,
    DateTime,
}

impl ScalarType {
    /// Every scalar, in the order the reference lists them.
    pub const ALL: [ScalarType; 11] = [
        ScalarType::String,
        ScalarType::Blob,
        ScalarType::Bool,
        ScalarType::I32,
        ScalarType::I64,
        ScalarType::U32,
        ScalarType::U64,
        ScalarType::F32,
        ScalarType::F64,
        ScalarType::Date,
        ScalarType::DateTime,
    ];

    /// The `.pg` spelling.
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::String => "String",
            ScalarType::Blob => "Blob",
            ScalarType::Bool => "Bool",
            ScalarType::I32 => "I32",
            ScalarType::I64 => "I64",
            ScalarType::U32 => "U32",
            ScalarType::U64 => "U64",
            ScalarType::F32 => "F32",
            ScalarType::F64 => "F64",
            ScalarType::Date => "Date",
            ScalarType::DateTime => "DateTime",
        }
    }

    /// Parses the `.pg` spelling (case-sensitive, as the reference writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            ScalarType::I32 | ScalarType::I64 | ScalarType::U32 | ScalarType::U64
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::F32 | ScalarType::F64)
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer() || self.is_float()
    }

    pub fn is_temporal(self) -> bool {
        matches!(self, ScalarType::Date | ScalarType::DateTime)
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value type of a property (nullability is kept on [`Property`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PropType {
    Scalar {
        scalar: ScalarType,
    },
    /// `[T]`: a list of scalars.
    List {
        item: ScalarType,
    },
    /// `enum(a, b)`: a string limited to these values, sorted and deduplicated.
    Enum {
        values: Vec<String>,
    },
    /// `Vector(n)`: `n` 32-bit floats, `1 <= n <= i32::MAX`.
    Vector {
        dim: u32,
    },
}

impl PropType {
    pub fn scalar(s: ScalarType) -> Self {
        PropType::Scalar { scalar: s }
    }

    /// The scalar when this is a plain scalar.
    pub fn as_scalar(&self) -> Option<ScalarType> {
        match self {
            PropType::Scalar { scalar } => Some(*scalar),
            _ => None,
        }
    }

    pub fn is_blob(&self) -> bool {
        self.as_scalar() == Some(ScalarType::Blob)
    }

    /// True for String and enum: both hold text.
    pub fn is_textual(&self) -> bool {
        matches!(self, PropType::Enum { .. }) || self.as_scalar() == Some(ScalarType::String)
    }
}

impl fmt::Display for PropType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropType::Scalar { scalar } => write!(f, "{scalar}"),
            PropType::List { item } => write!(f, "[{item}]"),
            PropType::Enum { values } => write!(f, "enum({})", values.join(", ")),
            PropType::Vector { dim } => write!(f, "Vector({dim})"),
        }
    }
}

/// A literal value written in a schema (annotation arguments, defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// An annotation kept as metadata: known ones are also lifted into typed
/// fields; unknown ones are accepted and surfaced here (reference:
/// "Custom annotations are accepted by the parser and surfaced in catalog
/// metadata").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub name: String,
    /// Arguments in their source spelling.
    pub args: Vec<String>,
}

/// Where a property's embedding comes from (`@embed("source", model="…")`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedSpec {
    /// The String property whose text is embedded.
    pub source: String,
    pub model: Option<String>,
}

/// One declared (or interface-inherited) property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub name: String,
    pub ty: PropType,
    pub nullable: bool,
    /// `@default(v)`: the value used when an insert omits the property.
    pub default: Option<Literal>,
    pub embed: Option<EmbedSpec>,
    pub description: Option<String>,
    /// `@rename_from("old")`: migration hint naming the previous spelling.
    pub rename_from: Option<String>,
    /// The interface this property came from, if any.
    pub from_interface: Option<String>,
    pub annotations: Vec<Annotation>,
}

impl Property {
    /// True when an insert must supply a value: not nullable and no default.
    pub fn is_required(&self) -> bool {
        !self.nullable && self.default.is_none()
    }
}

/// The index an `@index` selects, by the property's type (reference:
/// docs/user/schema/index.md, `@index(p, …)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    /// Scalars and enums: ordered lookups and ranges.
    Btree,
    /// String: full-text (inverted) index for search/fuzzy/match_text/bm25.
    FullText,
    /// Vector: approximate nearest-neighbour index.
    Vector,
    /// List: label list index for membership.
    LabelList,
}

/// An index on one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDecl {
    pub property: String,
    pub kind: IndexKind,
}

/// `@range(p, min..max)`: inclusive numeric bounds, either side open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeConstraint {
    pub property: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// `@check(p, "regex")`: every non-null value must match the whole pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub property: String,
    pub pattern: String,
}

/// `@card(min..max)`: how many edges of this type one source node may have.
/// `max = None` means unbounded (`*`). Default `0..*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cardinality {
    pub min: u32,
    pub max: Option<u32>,
}

impl fmt::Display for Cardinality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "{}..{}", self.min, max),
            None => write!(f, "{}..*", self.min),
        }
    }
}

/// A node type with its interfaces' properties merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeType {
    pub name: String,
    pub implements: Vec<String>,
    /// Declaration order; interface properties come first, in `implements` order.
    pub properties: Vec<Property>,
    /// The `@key` tuple, when declared; it identifies the node and its `id`.
    pub key: Option<Vec<String>>,
    pub unique: Vec<Vec<String>>,
    pub indexes: Vec<IndexDecl>,
    pub ranges: Vec<RangeConstraint>,
    pub checks: Vec<CheckConstraint>,
    pub description: Option<String>,
    pub annotations: Vec<Annotation>,
}

/// An edge type. Endpoints name node types; rows name endpoints by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeType {
    pub name: String,
    pub from: String,
    pub to: String,
    pub cardinality: Cardinality,
    pub properties: Vec<Property>,
    /// Unique tuples; may name the physical `src` / `dst` columns.
    pub unique: Vec<Vec<String>>,
    pub indexes: Vec<IndexDecl>,
    pub description: Option<String>,
    pub annotations: Vec<Annotation>,
}

/// An interface: a reusable property contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub properties: Vec<Property>,
}

/// The whole compiled schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub interfaces: BTreeMap<String, Interface>,
    pub nodes: BTreeMap<String, NodeType>,
    pub edges: BTreeMap<String, EdgeType>,
}

impl NodeType {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// True when `property` has an index of any kind (keys imply one).
    pub fn is_indexed(&self, property: &str) -> bool {
        self.indexes.iter().any(|i| i.property == property)
    }
}

impl EdgeType {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// True when both endpoints are the same node type (required for
    /// undirected and multi-hop traversal).
    pub fn is_homogeneous(&self) -> bool {
        self.from == self.to
    }
}

impl Catalog {
    pub fn node(&self, name: &str) -> Option<&NodeType> {
        self.nodes.get(name)
    }

    /// Edge lookup by exact name.
    pub fn edge(&self, name: &str) -> Option<&EdgeType> {
        self.edges.get(name)
    }

    /// Edge lookup ignoring case: `.gq` traverses `Knows` as `knows`
    /// (reference: edge names are matched case-insensitively).
    pub fn edge_ci(&self, name: &str) -> Option<&EdgeType> {
        self.edges
            .values()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }
}
