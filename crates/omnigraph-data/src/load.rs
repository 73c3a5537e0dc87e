//! Parsing and validating the JSONL load format before anything is written.
//!
//! Format (reference: docs/user/mutations, "Bulk loading"): one JSON object
//! per non-blank line, either `{"type": "Node", "data": {…}}` or
//! `{"edge": "Edge", "from": "<src key>", "to": "<dst key>", "data": {…}}`;
//! `data` defaults to `{}`. Every error names its line and, where there is
//! one, the field.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

use serde_json::{Map, Value as Json};

use crate::values::{Cell, default_cell, from_json, key_string};
use omnigraph_lang::schema::{Catalog, NodeType, Property};

/// How a load combines with what the branch already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Replace the whole graph image on the branch with the file.
    Overwrite,
    /// Strict insert: an `id` that already exists is a `key_conflict`.
    Append,
    /// Upsert by `id` (the key).
    Merge,
}

impl std::str::FromStr for LoadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "overwrite" => Ok(LoadMode::Overwrite),
            "append" => Ok(LoadMode::Append),
            "merge" => Ok(LoadMode::Merge),
            other => Err(format!(
                "unknown mode `{other}`; use overwrite, append or merge"
            )),
        }
    }
}

/// One problem with the input, located by line (1-based) and field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadError {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    /// Set when the row was a strict insert (`append`) of an id its type
    /// already holds: the reference's `key_conflict` (HTTP 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_conflict: Option<KeyConflict>,
}

/// A strict insert's id that already names an entity of its type
/// (reference `KeyConflictOutput`, docs/user/operations/errors.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyConflict {
    /// `node` or `edge`.
    pub entity_kind: String,
    /// The node or edge type.
    pub type_name: String,
    /// The conflicting id.
    pub entity_id: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0 is a row that came from a mutation, not a file.
        match (&self.field, self.line) {
            (Some(field), 0) => write!(f, "field `{field}`: {}", self.message),
            (None, 0) => f.write_str(&self.message),
            (Some(field), line) => write!(f, "line {line}, field `{field}`: {}", self.message),
            (None, line) => write!(f, "line {line}: {}", self.message),
        }
    }
}

fn err(line: usize, field: Option<&str>, message: impl Into<String>) -> LoadError {
    LoadError {
        line,
        field: field.map(str::to_string),
        message: message.into(),
        key_conflict: None,
    }
}

/// A strict insert's key conflict on `line` (`kind`: `node` or `edge`).
fn key_conflict(
    line: usize,
    field: Option<&str>,
    kind: &str,
    t: &str,
    id: &str,
    message: String,
) -> LoadError {
    LoadError {
        key_conflict: Some(KeyConflict {
            entity_kind: kind.to_string(),
            type_name: t.to_string(),
            entity_id: Some(id.to_string()),
        }),
        ..err(line, field, message)
    }
}

/// A row ready to write. `cells` follow the type's property order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub cells: Vec<Cell>,
    /// Source line, for later errors (0 for rows from storage or mutations).
    pub line: usize,
}

/// Parsed rows per type, in file order.
#[derive(Debug, Default, Clone)]
pub struct Staged {
    pub nodes: BTreeMap<String, Vec<Row>>,
    pub edges: BTreeMap<String, Vec<Row>>,
}

impl Staged {
    pub fn row_count(&self) -> usize {
        self.nodes
            .values()
            .chain(self.edges.values())
            .map(Vec::len)
            .sum()
    }
}

/// A hash set with foldhash: fast on short ids, randomly seeded per process
/// so crafted ids cannot force collisions.
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

/// Stop collecting after this many errors: the first ones are what the user
/// fixes, and a broken million-line file should not print a million lines.
pub const MAX_ERRORS: usize = 100;

/// Derives a keyed node's `id` from its key cells (reference: a single key
/// keeps its canonical scalar spelling; a composite key is a JSON array of
/// canonical scalar strings).
pub fn node_id(n: &NodeType, cells: &[Cell]) -> Option<String> {
    let key = n.key.as_ref()?;
    let parts: Vec<String> = key
        .iter()
        .map(|k| {
            let i = n.properties.iter().position(|p| &p.name == k).unwrap_or(0);
            key_string(&cells[i])
        })
        .collect();
    Some(match parts.as_slice() {
        [one] => one.clone(),
        many => serde_json::to_string(many).unwrap_or_default(),
    })
}

/// Converts a `data` object into cells for `props`, checking types, required
/// properties, defaults, ranges and checks. `id_field` names the physical
/// columns that may also appear in `data`.
pub fn cells_from_data(
    line: usize,
    owner: &str,
    props: &[Property],
    data: &Map<String, Json>,
    physical: &[&str],
    errors: &mut Vec<LoadError>,
) -> Vec<Cell> {
    for k in data.keys() {
        if !props.iter().any(|p| &p.name == k) && !physical.contains(&k.as_str()) {
            let names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
            let help =
                omnigraph_lang::diag::did_you_mean(k, names.iter().copied()).unwrap_or_else(|| {
                    omnigraph_lang::diag::valid_list("properties", names.iter().copied())
                });
            errors.push(err(
                line,
                Some(k),
                format!("`{owner}` has no property `{k}`; {help}"),
            ));
        }
    }
    props
        .iter()
        .map(|p| match data.get(&p.name) {
            None | Some(Json::Null) if p.default.is_some() && !p.nullable => {
                default_cell(p, p.default.as_ref().expect("checked"))
            }
            // An `@embed` vector left out (or null) is filled from its
            // source text by the engine before anything is written.
            None | Some(Json::Null) if p.embed.is_some() => Cell::Null,
            None if !p.nullable => {
                errors.push(err(
                    line,
                    Some(&p.name),
                    format!("missing required property `{}` of `{owner}`", p.name),
                ));
                Cell::Null
            }
            None => Cell::Null,
            Some(v) => match from_json(v, &p.ty, p.nullable) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(err(line, Some(&p.name), e));
                    Cell::Null
                }
            },
        })
        .collect()
}

/// The `@check` patterns of a node type, compiled (they were validated when
/// the schema compiled, so none is dropped).
pub fn compiled_checks(n: &NodeType) -> Vec<regex::Regex> {
    n.checks
        .iter()
        .filter_map(|c| regex::Regex::new(&c.pattern).ok())
        .collect()
}

/// Checks `@range` and `@check` on a node row.
pub fn check_constraints(
    line: usize,
    n: &NodeType,
    cells: &[Cell],
    checks: &[regex::Regex],
    errors: &mut Vec<LoadError>,
) {
    for r in &n.ranges {
        let Some(i) = n.properties.iter().position(|p| p.name == r.property) else {
            continue;
        };
        let x = match &cells[i] {
            Cell::I32(v) => f64::from(*v),
            Cell::I64(v) => *v as f64,
            Cell::U32(v) => f64::from(*v),
            Cell::U64(v) => *v as f64,
            Cell::F32(v) => f64::from(*v),
            Cell::F64(v) => *v,
            _ => continue,
        };
        if r.min.is_some_and(|m| x < m) || r.max.is_some_and(|m| x > m) {
            let lo = r.min.map(|m| m.to_string()).unwrap_or_default();
            let hi = r.max.map(|m| m.to_string()).unwrap_or_default();
            errors.push(err(
                line,
                Some(&r.property),
                format!("{x} is outside @range({lo}..{hi})"),
            ));
        }
    }
    for (c, re) in n.checks.iter().zip(checks) {
        let Some(i) = n.properties.iter().position(|p| p.name == c.property) else {
            continue;
        };
        if let Cell::Str(s) = &cells[i]
            && !re.is_match(s)
        {
            errors.push(err(
                line,
                Some(&c.property),
                format!("`{s}` does not match @check(\"{}\")", c.pattern),
            ));
        }
    }
}

/// Lines parsed per block: each block is split across the machine's cores,
/// then merged in line order (duplicate ids, the error cap), so memory
/// beyond the parsed rows stays one block of text.
const PARSE_BLOCK_LINES: usize = 32_768;

/// Parses and checks every line on its own (types, properties, constraints
/// within a row, duplicate ids within the file). Graph-level checks (edge
/// endpoints, uniqueness against stored rows, cardinality) are
/// [`validate_graph`]'s.
///
/// Lines are parsed in parallel (blocks of [`PARSE_BLOCK_LINES`] split
/// across `available_parallelism` threads, at most 8); the result and the
/// errors (in line order, at most [`MAX_ERRORS`] lines' worth) are the
/// same as parsing one line after another.
pub fn parse(catalog: &Catalog, input: impl BufRead) -> Result<Staged, Vec<LoadError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    parse_with_threads(catalog, input, threads)
}

/// [`parse`] on `threads` threads per block.
fn parse_with_threads(
    catalog: &Catalog,
    input: impl BufRead,
    threads: usize,
) -> Result<Staged, Vec<LoadError>> {
    let mut staged = Staged::default();
    let mut errors = Vec::new();
    // Per type (keyed by the catalog's name), each id seen → its line.
    // foldhash: fast on short keys and randomly seeded per process, so
    // crafted ids cannot force collisions.
    type Seen = HashMap<String, usize, foldhash::fast::RandomState>;
    let mut seen_nodes: HashMap<&str, Seen> = HashMap::new();
    let mut seen_edges: HashMap<&str, Seen> = HashMap::new();
    let checks: HashMap<&str, Vec<regex::Regex>> = catalog
        .nodes
        .values()
        .map(|n| (n.name.as_str(), compiled_checks(n)))
        .collect();
    let mut lines = input.lines();
    let mut next_lineno = 1;
    let mut read_error = None;
    'blocks: while errors.len() < MAX_ERRORS && read_error.is_none() {
        let first_lineno = next_lineno;
        let mut block = Vec::with_capacity(PARSE_BLOCK_LINES);
        for line in lines.by_ref().take(PARSE_BLOCK_LINES) {
            match line {
                Ok(t) => block.push(t),
                Err(e) => {
                    read_error = Some((first_lineno + block.len(), e));
                    break;
                }
            }
        }
        next_lineno += block.len();
        if block.is_empty() && read_error.is_none() {
            break;
        }
        let outcomes = parse_block(catalog, &checks, first_lineno, &block, threads);
        for outcome in outcomes {
            if errors.len() >= MAX_ERRORS {
                break 'blocks;
            }
            let parsed = match outcome {
                LineOutcome::Blank => continue,
                LineOutcome::Errors(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
                LineOutcome::Row(p) => p,
            };
            let Parsed {
                edge,
                type_name,
                key_field,
                generated_id,
                row,
            } = parsed;
            let seen = if edge {
                &mut seen_edges
            } else {
                &mut seen_nodes
            };
            // A fresh ULID (128 bits, 80 random) cannot repeat one in the
            // file; only ids the file gives or a key derives are checked.
            let duplicate_of = if generated_id {
                None
            } else {
                seen.entry(type_name)
                    .or_default()
                    .insert(row.id.clone(), row.line)
            };
            if let Some(first) = duplicate_of {
                let id = &row.id;
                errors.push(if edge {
                    err(
                        row.line,
                        Some("id"),
                        format!("duplicate edge id `{id}` (first on line {first})"),
                    )
                } else {
                    err(
                        row.line,
                        key_field,
                        format!(
                            "duplicate key: `{type_name}` with id `{id}` already appears on line {first}"
                        ),
                    )
                });
                continue;
            }
            let rows = if edge {
                &mut staged.edges
            } else {
                &mut staged.nodes
            };
            match rows.get_mut(type_name) {
                Some(rows) => rows.push(row),
                None => {
                    rows.insert(type_name.to_string(), vec![row]);
                }
            }
        }
    }
    if let Some((lineno, e)) = read_error
        && errors.len() < MAX_ERRORS
    {
        errors.push(err(lineno, None, format!("cannot read line: {e}")));
    }
    if errors.is_empty() {
        Ok(staged)
    } else {
        Err(errors)
    }
}

/// One line's result.
enum LineOutcome<'c> {
    Blank,
    Errors(Vec<LoadError>),
    Row(Parsed<'c>),
}

/// A line that parsed and checked on its own.
struct Parsed<'c> {
    edge: bool,
    type_name: &'c str,
    /// The first key property of a node type (the field a duplicate names).
    key_field: Option<&'c str>,
    /// The id is a fresh ULID (no key, no `id` given).
    generated_id: bool,
    row: Row,
}

/// Parses `block` (its first line is `first_lineno`) on up to `threads`
/// threads; the outcomes are in line order.
fn parse_block<'c>(
    catalog: &'c Catalog,
    checks: &HashMap<&str, Vec<regex::Regex>>,
    first_lineno: usize,
    block: &[String],
    threads: usize,
) -> Vec<LineOutcome<'c>> {
    let parse_chunk = |offset: usize, chunk: &[String]| -> Vec<LineOutcome<'c>> {
        chunk
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut errors = Vec::new();
                match parse_line(
                    catalog,
                    checks,
                    first_lineno + offset + i,
                    text,
                    &mut errors,
                ) {
                    Some(p) if errors.is_empty() => LineOutcome::Row(p),
                    _ if errors.is_empty() => LineOutcome::Blank,
                    _ => LineOutcome::Errors(errors),
                }
            })
            .collect()
    };
    if threads <= 1 || block.len() < 2 * 1024 {
        return parse_chunk(0, block);
    }
    let size = block.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = block
            .chunks(size)
            .enumerate()
            .map(|(k, chunk)| scope.spawn(move || parse_chunk(k * size, chunk)))
            .collect();
        let mut out = Vec::with_capacity(block.len());
        for h in handles {
            match h.join() {
                Ok(mut part) => out.append(&mut part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Parses and checks one line; `None` for a blank line or one with errors
/// (pushed to `errors`).
fn parse_line<'c>(
    catalog: &'c Catalog,
    checks: &HashMap<&str, Vec<regex::Regex>>,
    lineno: usize,
    text: &str,
    errors: &mut Vec<LoadError>,
) -> Option<Parsed<'c>> {
    if text.trim().is_empty() {
        return None;
    }
    let mut obj: Map<String, Json> = match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(m)) => m,
        Ok(_) => {
            errors.push(err(lineno, None, "expected a JSON object"));
            return None;
        }
        Err(e) => {
            errors.push(err(lineno, None, format!("invalid JSON: {e}")));
            return None;
        }
    };
    let data = match obj.remove("data") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(m)) => m,
        Some(_) => {
            errors.push(err(lineno, Some("data"), "`data` must be an object"));
            return None;
        }
    };
    if let Some(t) = obj.get("type") {
        // `data` was taken out above.
        for k in obj.keys() {
            if k != "type" {
                errors.push(err(
                    lineno,
                    Some(k),
                    "a node line has only `type` and `data`",
                ));
            }
        }
        let Some(tname) = t.as_str() else {
            errors.push(err(lineno, Some("type"), "`type` must be a string"));
            return None;
        };
        let Some(n) = catalog.node(tname) else {
            let names = catalog.nodes.keys().map(String::as_str);
            let help = omnigraph_lang::diag::did_you_mean(tname, names.clone())
                .unwrap_or_else(|| omnigraph_lang::diag::valid_list("node types", names));
            errors.push(err(
                lineno,
                Some("type"),
                format!("unknown node type `{tname}`; {help}"),
            ));
            return None;
        };
        let before = errors.len();
        let cells = cells_from_data(lineno, &n.name, &n.properties, &data, &["id"], errors);
        check_constraints(
            lineno,
            n,
            &cells,
            checks.get(n.name.as_str()).map_or(&[][..], |v| v),
            errors,
        );
        if errors.len() > before {
            return None;
        }
        let given_id = match data.get("id") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(err(lineno, Some("id"), "`id` must be a string"));
                return None;
            }
        };
        let id = match (node_id(n, &cells), given_id) {
            (Some(derived), Some(given)) if derived != given => {
                errors.push(err(
                    lineno,
                    Some("id"),
                    format!(
                        "`id` is `{given}` but the key gives `{derived}`; omit `id` for keyed types"
                    ),
                ));
                return None;
            }
            (Some(derived), _) => derived,
            (None, Some(given)) => given,
            (None, None) => ulid::Ulid::new().to_string(),
        };
        Some(Parsed {
            edge: false,
            type_name: &n.name,
            key_field: n.key.as_ref().and_then(|k| k.first()).map(String::as_str),
            generated_id: n.key.is_none() && !matches!(data.get("id"), Some(Json::String(_))),
            row: Row {
                id,
                src: None,
                dst: None,
                cells,
                line: lineno,
            },
        })
    } else if let Some(e) = obj.get("edge") {
        for k in obj.keys() {
            if !matches!(k.as_str(), "edge" | "from" | "to") {
                errors.push(err(
                    lineno,
                    Some(k),
                    "an edge line has only `edge`, `from`, `to` and `data`",
                ));
            }
        }
        let Some(ename) = e.as_str() else {
            errors.push(err(lineno, Some("edge"), "`edge` must be a string"));
            return None;
        };
        let Some(et) = catalog.edge(ename) else {
            let names = catalog.edges.keys().map(String::as_str);
            let help = omnigraph_lang::diag::did_you_mean(ename, names.clone())
                .unwrap_or_else(|| omnigraph_lang::diag::valid_list("edge types", names));
            errors.push(err(
                lineno,
                Some("edge"),
                format!("unknown edge type `{ename}`; {help}"),
            ));
            return None;
        };
        let mut ends = Vec::new();
        for f in ["from", "to"] {
            match obj.get(f) {
                Some(Json::String(s)) => ends.push(s.clone()),
                Some(Json::Number(n)) => ends.push(n.to_string()),
                Some(_) => errors.push(err(
                    lineno,
                    Some(f),
                    format!("`{f}` must be the endpoint's key (a string)"),
                )),
                None => errors.push(err(lineno, Some(f), format!("an edge line needs `{f}`"))),
            }
        }
        let before = errors.len();
        let cells = cells_from_data(lineno, &et.name, &et.properties, &data, &["id"], errors);
        if errors.len() > before || ends.len() != 2 {
            return None;
        }
        let (id, generated_id) = match data.get("id") {
            Some(Json::String(s)) => (s.clone(), false),
            _ => (ulid::Ulid::new().to_string(), true),
        };
        let mut ends = ends.into_iter();
        Some(Parsed {
            edge: true,
            type_name: &et.name,
            key_field: None,
            generated_id,
            row: Row {
                id,
                src: ends.next(),
                dst: ends.next(),
                cells,
                line: lineno,
            },
        })
    } else {
        errors.push(err(
            lineno,
            None,
            "a line needs `type` (a node) or `edge` (an edge)",
        ));
        None
    }
}

/// What the branch holds now, as far as validation needs it.
#[derive(Debug, Default, Clone)]
pub struct Existing {
    /// Node ids per node type.
    pub node_ids: HashMap<String, HashSet<String>>,
    /// Per (type, unique-constraint index): tuple → id, for stored rows.
    pub unique: HashMap<(String, usize), HashMap<Vec<String>, String>>,
    /// Per edge type: (id, src, dst) of stored edges.
    pub edges: HashMap<String, Vec<(String, String, String)>>,
    /// Ids of stored edges per edge type.
    pub edge_ids: HashMap<String, HashSet<String>>,
}

/// The tuple a unique constraint sees in a row; `None` when any part is
/// null (nulls never collide).
pub fn unique_tuple(props: &[Property], cols: &[String], row: &Row) -> Option<Vec<String>> {
    cols.iter()
        .map(|c| match c.as_str() {
            "src" => row.src.clone(),
            "dst" => row.dst.clone(),
            name => {
                let i = props.iter().position(|p| p.name == name)?;
                match &row.cells[i] {
                    Cell::Null => None,
                    cell => Some(key_string(cell)),
                }
            }
        })
        .collect()
}

/// Graph-level validation of a parsed load against what the branch holds:
/// key conflicts (append), `@unique`, edge endpoints, `@card`. `existing` is
/// ignored for `overwrite` (the file replaces everything).
pub fn validate_graph(
    catalog: &Catalog,
    staged: &Staged,
    existing: &Existing,
    mode: LoadMode,
) -> Vec<LoadError> {
    let empty = Existing::default();
    let existing = if mode == LoadMode::Overwrite {
        &empty
    } else {
        existing
    };
    let mut errors = Vec::new();
    // Key conflicts on strict insert.
    if mode == LoadMode::Append {
        for (t, rows) in &staged.nodes {
            let ids = existing.node_ids.get(t);
            for r in rows {
                if ids.is_some_and(|s| s.contains(&r.id)) {
                    errors.push(key_conflict(r.line, None, "node", t, &r.id, format!(
                        "key_conflict: `{t}` `{}` already exists; use --mode merge to update it",
                        r.id
                    )));
                }
            }
        }
        for (t, rows) in &staged.edges {
            let ids = existing.edge_ids.get(t);
            for r in rows {
                if ids.is_some_and(|s| s.contains(&r.id)) {
                    errors.push(key_conflict(
                        r.line,
                        Some("id"),
                        "edge",
                        t,
                        &r.id,
                        format!("key_conflict: edge `{t}` `{}` already exists", r.id),
                    ));
                }
            }
        }
    }
    // Uniqueness: stored tuples (minus rows this load replaces) plus new ones.
    let mut check_unique =
        |owner: &str, props: &[Property], uniques: &[Vec<String>], rows: &[Row]| {
            if uniques.is_empty() {
                return;
            }
            let replaced: FastSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            for (ci, cols) in uniques.iter().enumerate() {
                let mut seen: HashMap<Vec<String>, (String, usize)> = HashMap::new();
                if let Some(stored) = existing.unique.get(&(owner.to_string(), ci)) {
                    for (tuple, id) in stored {
                        if !replaced.contains(id.as_str()) {
                            seen.insert(tuple.clone(), (id.clone(), 0));
                        }
                    }
                }
                for r in rows {
                    let Some(t) = unique_tuple(props, cols, r) else {
                        continue;
                    };
                    if let Some((other, line)) = seen.get(&t) {
                        let whose = if *line == 0 {
                            format!("stored `{other}`")
                        } else {
                            format!("line {line}")
                        };
                        errors.push(err(
                            r.line,
                            cols.first().map(String::as_str),
                            format!(
                                "@unique({}) violated: {} already has ({})",
                                cols.join(", "),
                                whose,
                                t.join(", ")
                            ),
                        ));
                    } else {
                        seen.insert(t, (r.id.clone(), r.line));
                    }
                }
            }
        };
    for (t, rows) in &staged.nodes {
        if let Some(n) = catalog.node(t) {
            check_unique(t, &n.properties, &n.unique, rows);
        }
    }
    for (t, rows) in &staged.edges {
        if let Some(e) = catalog.edge(t) {
            check_unique(t, &e.properties, &e.unique, rows);
        }
    }
    // Endpoints exist (in the file or, unless overwriting, in storage).
    let file_ids: HashMap<&str, FastSet<&str>> = if staged.edges.is_empty() {
        HashMap::new()
    } else {
        staged
            .nodes
            .iter()
            .map(|(t, rows)| (t.as_str(), rows.iter().map(|r| r.id.as_str()).collect()))
            .collect()
    };
    let exists = |t: &str, id: &str| {
        file_ids.get(t).is_some_and(|s| s.contains(id))
            || existing.node_ids.get(t).is_some_and(|s| s.contains(id))
    };
    for (t, rows) in &staged.edges {
        let Some(e) = catalog.edge(t) else { continue };
        for r in rows {
            for (field, end, ty) in [("from", &r.src, &e.from), ("to", &r.dst, &e.to)] {
                if let Some(end) = end
                    && !exists(ty, end)
                {
                    errors.push(err(
                        r.line,
                        Some(field),
                        format!("edge `{t}` {field} `{end}`: no `{ty}` with that key exists"),
                    ));
                }
            }
        }
    }
    // Cardinality per source node, over stored edges not replaced plus new ones.
    for e in catalog.edges.values() {
        let card = e.cardinality;
        if card.min == 0 && card.max.is_none() {
            continue;
        }
        let new_rows = staged.edges.get(&e.name).map_or(&[][..], |v| v.as_slice());
        let replaced: FastSet<&str> = new_rows.iter().map(|r| r.id.as_str()).collect();
        let mut count: HashMap<&str, (usize, usize), foldhash::fast::RandomState> =
            HashMap::default();
        if let Some(stored) = existing.edges.get(&e.name) {
            for (id, src, _) in stored {
                if !replaced.contains(id.as_str()) {
                    count.entry(src.as_str()).or_default().0 += 1;
                }
            }
        }
        for r in new_rows {
            if let Some(src) = &r.src {
                let c = count.entry(src.as_str()).or_default();
                c.0 += 1;
                if c.1 == 0 {
                    c.1 = r.line;
                }
            }
        }
        if let Some(max) = card.max {
            for (src, (n, line)) in &count {
                if *n > max as usize && *line > 0 {
                    errors.push(err(
                        *line,
                        Some("from"),
                        format!(
                            "@card({card}) on `{}`: `{src}` would have {n} edges",
                            e.name
                        ),
                    ));
                }
            }
        }
        if card.min > 0 {
            // Every source node this load writes must end up with enough edges.
            for r in staged.nodes.get(&e.from).map_or(&[][..], |v| v.as_slice()) {
                let n = count.get(r.id.as_str()).map_or(0, |c| c.0);
                if n < card.min as usize {
                    errors.push(err(
                        r.line,
                        None,
                        format!(
                            "@card({card}) on `{}`: `{}` `{}` has {n} edges",
                            e.name, e.from, r.id
                        ),
                    ));
                }
            }
        }
    }
    errors.sort_by_key(|e| e.line);
    errors.truncate(MAX_ERRORS);
    errors
}

#[cfg(test)]
mod tests;
