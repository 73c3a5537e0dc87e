//! The typed intermediate representation a checked query lowers to, which
//! the engine executes.
//!
//! A read query is a pipeline of [`Op`]s over rows of bound variables,
//! followed by projection, optional grouping, ordering and a limit. Every name
//! is resolved: node and edge types are catalog names, properties exist and
//! every expression carries its [`ValueType`].

use std::fmt;

use serde::Serialize;

use super::ast::CmpOp;
use crate::schema::{PropType, ScalarType};

/// The type of a value flowing through a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ValueType {
    Null,
    Bool,
    /// Any integer width; `scalar` keeps the declared width.
    Int {
        scalar: ScalarType,
    },
    Float {
        scalar: ScalarType,
    },
    String,
    Enum {
        values: Vec<String>,
    },
    Date,
    DateTime,
    Blob,
    Vector {
        dim: u32,
    },
    List {
        item: Box<ValueType>,
    },
    /// A whole node (bare `$x` in `return`).
    Node {
        type_name: String,
    },
    /// A search score or distance (F64).
    Score,
}

impl ValueType {
    /// The type of a property of type `t`.
    pub fn of_prop(t: &PropType) -> Self {
        match t {
            PropType::Scalar { scalar } => Self::of_scalar(*scalar),
            PropType::List { item } => ValueType::List {
                item: Box::new(Self::of_scalar(*item)),
            },
            PropType::Enum { values } => ValueType::Enum {
                values: values.clone(),
            },
            PropType::Vector { dim } => ValueType::Vector { dim: *dim },
        }
    }

    pub fn of_scalar(s: ScalarType) -> Self {
        match s {
            ScalarType::String => ValueType::String,
            ScalarType::Blob => ValueType::Blob,
            ScalarType::Bool => ValueType::Bool,
            ScalarType::Date => ValueType::Date,
            ScalarType::DateTime => ValueType::DateTime,
            s if s.is_integer() => ValueType::Int { scalar: s },
            s => ValueType::Float { scalar: s },
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ValueType::Int { .. } | ValueType::Float { .. } | ValueType::Score
        )
    }

    pub fn is_textual(&self) -> bool {
        matches!(self, ValueType::String | ValueType::Enum { .. })
    }

    /// True when values of this type have an order (`<`, `order`, min/max).
    pub fn is_orderable(&self) -> bool {
        self.is_numeric()
            || self.is_textual()
            || matches!(
                self,
                ValueType::Date | ValueType::DateTime | ValueType::Bool | ValueType::Null
            )
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Null => f.write_str("null"),
            ValueType::Bool => f.write_str("Bool"),
            ValueType::Int { scalar } | ValueType::Float { scalar } => write!(f, "{scalar}"),
            ValueType::String => f.write_str("String"),
            ValueType::Enum { values } => write!(f, "enum({})", values.join(", ")),
            ValueType::Date => f.write_str("Date"),
            ValueType::DateTime => f.write_str("DateTime"),
            ValueType::Blob => f.write_str("Blob"),
            ValueType::Vector { dim } => write!(f, "Vector({dim})"),
            ValueType::List { item } => write!(f, "[{item}]"),
            ValueType::Node { type_name } => write!(f, "node {type_name}"),
            ValueType::Score => f.write_str("score (F64)"),
        }
    }
}

/// A typed parameter of a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: String,
    pub ty: PropType,
    /// Declared with a trailing `?`: it may be omitted or null.
    pub optional: bool,
}

/// A literal value in a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum LiteralValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// UTC milliseconds since the epoch.
    DateTime(i64),
    List(Vec<LiteralValue>),
}

/// Aggregate functions (reference: docs/user/queries/index.md, RETURN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// Token-matching text predicates on a full-text index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSearch {
    Search,
    Fuzzy,
    MatchText,
}

/// A resolved, typed expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "expr", rename_all = "snake_case")]
pub enum Expr {
    Literal {
        value: LiteralValue,
    },
    Param {
        name: String,
    },
    /// `now()`: the query's start instant, one value per query.
    Now,
    Property {
        var: String,
        property: String,
    },
    /// A bound edge's property (`$w.role`).
    EdgeProperty {
        var: String,
        property: String,
    },
    /// The whole node bound to `var`.
    Node {
        var: String,
    },
    Aggregate {
        func: AggFunc,
        arg: Box<Expr>,
    },
    /// `search` / `fuzzy` / `match_text` as a boolean predicate.
    TextMatch {
        func: TextSearch,
        var: String,
        property: String,
        query: Box<Expr>,
        max_edits: Option<Box<Expr>>,
    },
    /// BM25 relevance of `property` to `query` (higher is better).
    Bm25 {
        var: String,
        property: String,
        query: Box<Expr>,
    },
    /// Cosine distance from `property` to `query` (lower is nearer). A String
    /// `query` is embedded with the property's `@embed` model at run time.
    Nearest {
        var: String,
        property: String,
        query: Box<Expr>,
    },
    /// Reciprocal rank fusion of two rankings: sum of `1 / (k + rank)`.
    Rrf {
        a: Box<Expr>,
        b: Box<Expr>,
        k: Box<Expr>,
    },
    List {
        items: Vec<Expr>,
    },
    /// A reference to projection number `index` (a `return … as name` alias).
    Alias {
        name: String,
        index: usize,
    },
}

/// One operator of a read pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "operator", rename_all = "snake_case")]
pub enum Op {
    /// Bind `var` to every node of `node_type` whose properties equal the
    /// given values (`lookup` says which access path serves it).
    Scan {
        var: String,
        node_type: String,
        equals: Vec<(String, Expr)>,
        lookup: Lookup,
    },
    /// Follow `edge` from the bound `from_var` to `to_var` between
    /// `min_hops` and `max_hops` (None = unbounded) times. `reverse` walks
    /// dst→src; `undirected` walks both ways with set semantics. When
    /// `to_bound` is set, `to_var` is already bound and this keeps only the
    /// rows where the two are connected.
    Expand {
        from_var: String,
        edge: String,
        to_var: String,
        to_type: String,
        reverse: bool,
        undirected: bool,
        min_hops: u32,
        max_hops: Option<u32>,
        edge_var: Option<String>,
        to_bound: bool,
    },
    /// Keep rows where `left op right` holds (`right` absent: `left` is a
    /// boolean predicate such as a text search).
    Filter {
        left: Expr,
        op: Option<CmpOp>,
        right: Option<Expr>,
    },
    /// Drop rows for which the inner pipeline, run with the row's bindings,
    /// yields any row (`not { … }`).
    AntiJoin { ops: Vec<Op> },
}

/// How a [`Op::Scan`] finds its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Lookup {
    /// Every row of the table.
    Full,
    /// Point lookup on the `@key`.
    Key,
    /// An indexed equality on `property`.
    Index { property: String },
}

/// One output column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub name: String,
    pub expr: Expr,
    pub ty: ValueType,
}

/// One ordering key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderKey {
    pub expr: Expr,
    pub descending: bool,
}

/// A read query's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadPlan {
    pub pipeline: Vec<Op>,
    pub projections: Vec<Projection>,
    /// When the query aggregates: the indexes of the projections that are
    /// group keys (every non-aggregate projection).
    pub group_by: Option<Vec<usize>>,
    pub order: Vec<OrderKey>,
    pub limit: Option<Expr>,
    /// Variables bound in the pipeline, with their node type, in bind order;
    /// their ids are the final tie-break of the total order.
    pub variables: Vec<(String, String)>,
}

/// The kind of graph type a statement targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Node,
    Edge,
}

/// One mutation statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stmt", rename_all = "snake_case")]
pub enum MutationOp {
    /// Insert (an upsert by key for keyed node types). Edge endpoints are
    /// `from` / `to` key expressions.
    Insert {
        kind: TargetKind,
        type_name: String,
        values: Vec<(String, Expr)>,
        from: Option<Expr>,
        to: Option<Expr>,
    },
    Update {
        kind: TargetKind,
        type_name: String,
        set: Vec<(String, Expr)>,
        predicate: Predicate,
    },
    Delete {
        kind: TargetKind,
        type_name: String,
        predicate: Predicate,
    },
}

/// `property op value` in `update … where` / `delete … where`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predicate {
    pub property: String,
    pub op: CmpOp,
    pub value: Expr,
}

/// A checked mutation query: its statements run in order and publish one
/// commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MutationPlan {
    pub statements: Vec<MutationOp>,
}

/// What a query reads or writes: `{kind, type_name}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TypeRef {
    pub kind: &'static str,
    pub type_name: String,
}

/// The body of a checked query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QueryKind {
    Read(ReadPlan),
    Mutation(MutationPlan),
}

/// A type-checked, lowered query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckedQuery {
    pub name: String,
    pub params: Vec<Param>,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub body: QueryKind,
    /// Graph types the query may read (sorted, deduplicated).
    pub reads: Vec<TypeRef>,
    /// Graph types a mutation may change (empty for reads).
    pub writes: Vec<TypeRef>,
}

impl CheckedQuery {
    pub fn is_mutation(&self) -> bool {
        matches!(self.body, QueryKind::Mutation(_))
    }
}
