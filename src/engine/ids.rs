//! Typed identities, parsed once where they enter (a manifest or sidecar
//! read, a request, a command line) and carried typed inside.
//!
//! - [`TableKey`]: a graph table, a node or edge type; `node:Person` /
//!   `edge:Knows` in every stored and wire form (manifests, sidecars,
//!   commit records, `ChangeOutput`).
//! - [`BranchName`]: a graph branch's name, validated by
//!   [`check_branch_name`](super::check_branch_name)'s rule.
//! - [`CommitId`]: a commit's id (a ULID as 26 Crockford base-32
//!   characters; ids read from storage or a request are taken as written).
//! - [`GraphId`]: a served graph's id, one path-safe component
//!   ([`is_path_safe_name`](super::is_path_safe_name)).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::EngineError;

/// Whether a table holds a node type's rows or an edge type's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// Rows of a node type: `id`, properties.
    Node,
    /// Rows of an edge type: `id`, `src`, `dst`, properties.
    Edge,
}

impl TableKind {
    /// `node` or `edge`: the prefix of a [`TableKey`]'s text form.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Node => "node",
            TableKind::Edge => "edge",
        }
    }

    /// The directory under a graph root holding this kind's Lance tables:
    /// `nodes` or `edges`.
    pub fn dir(self) -> &'static str {
        match self {
            TableKind::Node => "nodes",
            TableKind::Edge => "edges",
        }
    }
}

/// A graph table: a node or edge type's name. Its text form (`node:Person`,
/// `edge:Knows`) is what manifests, sidecars and commit records store, so
/// it orders and hashes like that text: edge tables before node tables,
/// then by name, the order the manifest's maps have always had.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableKey(String);

impl TableKey {
    /// The table of node type `name`.
    pub fn node(name: &str) -> TableKey {
        TableKey(format!("node:{name}"))
    }

    /// The table of edge type `name`.
    pub fn edge(name: &str) -> TableKey {
        TableKey(format!("edge:{name}"))
    }

    /// The table of `kind` and type `name`.
    pub fn of(kind: TableKind, name: &str) -> TableKey {
        TableKey(format!("{}:{name}", kind.as_str()))
    }

    /// Parses the text form `node:Type` or `edge:Type` (a non-empty type
    /// name after the prefix). Errors: [`EngineError::BadTableKey`] naming
    /// the text and the form wanted.
    pub fn parse(text: &str) -> Result<TableKey, EngineError> {
        match text.split_once(':') {
            Some(("node" | "edge", name)) if !name.is_empty() && !name.contains(':') => {
                Ok(TableKey(text.to_string()))
            }
            _ => Err(EngineError::BadTableKey {
                key: text.to_string(),
            }),
        }
    }

    /// Node or edge.
    pub fn kind(&self) -> TableKind {
        if self.0.starts_with("edge:") {
            TableKind::Edge
        } else {
            TableKind::Node
        }
    }

    /// Whether this is an edge type's table.
    pub fn is_edge(&self) -> bool {
        self.kind() == TableKind::Edge
    }

    /// The type's name (`Person` for `node:Person`).
    pub fn name(&self) -> &str {
        // The constructors and `parse` guarantee the prefix.
        &self.0[5..]
    }

    /// The text form, `node:Person`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Compares with the text form: `key == "node:Person"`.
impl PartialEq<str> for TableKey {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Compares with the text form: `key == "node:Person"`.
impl PartialEq<&str> for TableKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A graph branch's name, checked once by
/// [`check_branch_name`](super::check_branch_name)'s rule (1–100
/// characters, path-safe parts joined by `/`). Serialized as the name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchName(String);

impl BranchName {
    /// Checks `name`. Errors: [`EngineError::BadBranchName`] with the rule.
    pub fn parse(name: &str) -> Result<BranchName, EngineError> {
        super::check_branch_name(name)?;
        Ok(BranchName(name.to_string()))
    }

    /// The branch that always exists, `main`.
    pub fn main() -> BranchName {
        BranchName(super::manifest::MAIN.to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`BranchName::parse`], for command-line arguments.
impl std::str::FromStr for BranchName {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<BranchName, EngineError> {
        BranchName::parse(s)
    }
}

/// A commit's id: a ULID (26 Crockford base-32 characters) for every
/// commit this engine makes; an id read from storage or a request is taken
/// as written (an unknown one is `UnknownCommit`, 404). Typed so a commit
/// id is never passed where a branch name is wanted. Serialized as the id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitId(String);

impl CommitId {
    /// A new id: a ULID, ordered by creation time.
    pub fn new(id: ulid::Ulid) -> CommitId {
        CommitId(id.to_string())
    }

    /// The id `text` as given (a request's, a stored record's).
    pub fn from_text(text: &str) -> CommitId {
        CommitId(text.to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Compares with the id's text.
impl PartialEq<str> for CommitId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Compares with the id's text.
impl PartialEq<&str> for CommitId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Compares with the id's text.
impl PartialEq<String> for CommitId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// A served graph's id: one path-safe component
/// ([`is_path_safe_name`](super::is_path_safe_name); a graph's root is
/// `graphs/<id>.omni` under a cluster's storage). Serialized as the id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GraphId(String);

impl GraphId {
    /// Checks `id`. Errors: [`EngineError::BadGraphId`] with the rule.
    pub fn parse(id: &str) -> Result<GraphId, EngineError> {
        if super::is_path_safe_name(id) {
            Ok(GraphId(id.to_string()))
        } else {
            Err(EngineError::BadGraphId { id: id.to_string() })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Display` and `Debug` as the text an identity wraps.
macro_rules! shown_as_text {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

/// Serialized as its text; deserialized through `parse`, so a stored or
/// sent value is checked like any other.
macro_rules! serde_as_parsed_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Reads as the `str` it wraps.
macro_rules! derefs_to_str {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

shown_as_text!(TableKey);
shown_as_text!(BranchName);
shown_as_text!(CommitId);
shown_as_text!(GraphId);
serde_as_parsed_text!(TableKey);
serde_as_parsed_text!(BranchName);
serde_as_parsed_text!(GraphId);
derefs_to_str!(BranchName);
derefs_to_str!(CommitId);
derefs_to_str!(GraphId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys_parse_their_text_form_and_nothing_else() {
        let k = TableKey::parse("edge:Knows").expect("an edge key");
        assert_eq!((k.kind(), k.name()), (TableKind::Edge, "Knows"));
        assert_eq!(k, TableKey::edge("Knows"));
        assert_eq!(
            TableKey::parse("node:Person").map(|k| k.is_edge()).ok(),
            Some(false)
        );
        for bad in [
            "Person",
            "node:",
            "vertex:Person",
            ":Person",
            "node:a:b",
            "",
        ] {
            assert!(TableKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn table_keys_keep_the_manifests_text_and_order() {
        let keys = [
            TableKey::node("B"),
            TableKey::edge("Z"),
            TableKey::node("A"),
        ];
        let json = serde_json::to_string(&keys).expect("serializes");
        assert_eq!(json, r#"["node:B","edge:Z","node:A"]"#);
        let mut sorted = keys.to_vec();
        sorted.sort();
        let text: Vec<&str> = sorted.iter().map(TableKey::as_str).collect();
        assert_eq!(text, ["edge:Z", "node:A", "node:B"]);
        // As map keys, as manifests store them; a bad key is refused.
        let m: std::collections::BTreeMap<TableKey, u64> =
            serde_json::from_str(r#"{"node:A": 1, "edge:E": 2}"#).expect("parses");
        assert_eq!(m.get(&TableKey::edge("E")), Some(&2));
        assert!(
            serde_json::from_str::<std::collections::BTreeMap<TableKey, u64>>(r#"{"A": 1}"#)
                .is_err()
        );
    }

    #[test]
    fn branch_names_and_graph_ids_are_checked_once() {
        assert_eq!(
            BranchName::parse("review/new-hires").map(|b| b.len()).ok(),
            Some(16)
        );
        for bad in ["", "/a", "a/", "a//b", "../x", "-a", &"x".repeat(101)] {
            assert!(
                BranchName::parse(bad).is_err(),
                "branch {bad:?} was accepted"
            );
        }
        assert!(serde_json::from_str::<BranchName>(r#""a b""#).is_err());
        assert!(GraphId::parse("people.v2").is_ok());
        for bad in ["", "a/b", "..", ".x"] {
            assert!(
                GraphId::parse(bad).is_err(),
                "graph id {bad:?} was accepted"
            );
        }
    }
}
