//! Schema migration planning: compare the live catalog with a desired one
//! and list the typed steps between them, each supported or not with the
//! reason (reference `docs/user/schema/index.md`, "Schema migration
//! planning" and "Destructive drops").
//!
//! Renames need an explicit hint: `@rename_from("old")` on the property, or
//! on the type (`node New @rename_from("Old") { ... }`); without one, a
//! rename plans as a drop plus an add. Drops lose data and are marked so;
//! applying them needs `--allow-data-loss`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::catalog::{Catalog, EdgeType, NodeType, PropType, Property};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    AddType,
    RenameType,
    DropType,
    AddProperty,
    RenameProperty,
    DropProperty,
    ExtendEnum,
    RelaxNullability,
    AddIndex,
    DropIndex,
    AddConstraint,
    DropConstraint,
    UpdateMetadata,
    Unsupported,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    /// `node` or `edge`.
    pub entity: &'static str,
    pub type_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// What changes, in words.
    pub detail: String,
    pub supported: bool,
    /// Why a step is not supported, with what to do instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Applying it loses stored data (needs `--allow-data-loss`).
    pub data_loss: bool,
}

/// The steps from one catalog to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationPlan {
    /// True when every step is supported (an empty plan is supported).
    pub supported: bool,
    /// True when some step loses data.
    pub data_loss: bool,
    pub steps: Vec<Step>,
}

struct Planner {
    steps: Vec<Step>,
}

impl Planner {
    fn push(
        &mut self,
        kind: StepKind,
        entity: &'static str,
        type_name: &str,
        property: Option<&str>,
        detail: String,
    ) {
        self.steps.push(Step {
            kind,
            entity,
            type_name: type_name.to_string(),
            property: property.map(str::to_string),
            detail,
            supported: kind != StepKind::Unsupported,
            reason: None,
            data_loss: matches!(kind, StepKind::DropType | StepKind::DropProperty),
        });
    }

    fn unsupported(
        &mut self,
        entity: &'static str,
        type_name: &str,
        property: Option<&str>,
        detail: String,
        reason: &str,
    ) {
        self.steps.push(Step {
            kind: StepKind::Unsupported,
            entity,
            type_name: type_name.to_string(),
            property: property.map(str::to_string),
            detail,
            supported: false,
            reason: Some(reason.to_string()),
            data_loss: false,
        });
    }
}

/// Annotations the catalog also holds as typed fields (keys, indexes,
/// constraints, defaults, hints): compared through those fields.
const LIFTED: [&str; 10] = [
    "key",
    "unique",
    "index",
    "range",
    "check",
    "card",
    "default",
    "embed",
    "description",
    "rename_from",
];

/// The type-level `@rename_from("Old")` hint, if any.
fn type_rename_from(annotations: &[super::catalog::Annotation]) -> Option<String> {
    annotations
        .iter()
        .find(|a| a.name == "rename_from")
        .and_then(|a| a.args.first())
        .map(|s| s.trim_matches('"').to_string())
}

fn ty(t: &PropType) -> String {
    match t {
        PropType::Scalar { scalar } => format!("{scalar:?}"),
        PropType::List { item } => format!("[{item:?}]"),
        PropType::Enum { values } => format!("enum({})", values.join(", ")),
        PropType::Vector { dim } => format!("Vector({dim})"),
    }
}

fn nullable(p: &Property) -> String {
    format!("{}{}", ty(&p.ty), if p.nullable { "?" } else { "" })
}

/// Pairs the types of `old` and `new` by name or by a `@rename_from` hint.
/// Returns (old name, new name) pairs plus the added and dropped names.
fn pair<'a, T>(
    old: &'a BTreeMap<String, T>,
    new: &'a BTreeMap<String, T>,
    hint: impl Fn(&T) -> Option<String>,
) -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut added = Vec::new();
    let mut renamed_from = BTreeSet::new();
    for (name, t) in new {
        if old.contains_key(name) {
            pairs.push((name.clone(), name.clone()));
        } else if let Some(from) = hint(t).filter(|f| old.contains_key(f) && !new.contains_key(f)) {
            renamed_from.insert(from.clone());
            pairs.push((from, name.clone()));
        } else {
            added.push(name.clone());
        }
    }
    let dropped = old
        .keys()
        .filter(|n| !new.contains_key(*n) && !renamed_from.contains(*n))
        .cloned()
        .collect();
    (pairs, added, dropped)
}

/// The type-level steps of one kind of type: adds, hinted renames, drops.
fn type_steps(
    p: &mut Planner,
    entity: &'static str,
    added: &[String],
    pairs: &[(String, String)],
    dropped: &[String],
) {
    for name in added {
        p.push(
            StepKind::AddType,
            entity,
            name,
            None,
            format!("add {entity} type {name}"),
        );
    }
    for (from, to) in pairs.iter().filter(|(f, t)| f != t) {
        p.push(
            StepKind::RenameType,
            entity,
            to,
            None,
            format!("rename {entity} type {from} to {to}"),
        );
    }
    for name in dropped {
        p.push(
            StepKind::DropType,
            entity,
            name,
            None,
            format!("drop {entity} type {name} and its rows"),
        );
    }
}

/// Plans the migration from `old` to `new`.
pub fn plan(old: &Catalog, new: &Catalog) -> MigrationPlan {
    let mut p = Planner { steps: Vec::new() };
    let (pairs, added, dropped) = pair(&old.nodes, &new.nodes, |n: &NodeType| {
        type_rename_from(&n.annotations)
    });
    type_steps(&mut p, "node", &added, &pairs, &dropped);
    for (from, to) in &pairs {
        node_changes(&mut p, &old.nodes[from], &new.nodes[to]);
    }
    let renamed_nodes: BTreeMap<String, String> = pairs.into_iter().collect();
    let (pairs, added, dropped) = pair(&old.edges, &new.edges, |e: &EdgeType| {
        type_rename_from(&e.annotations)
    });
    type_steps(&mut p, "edge", &added, &pairs, &dropped);
    for (from, to) in &pairs {
        edge_changes(&mut p, &old.edges[from], &new.edges[to], &renamed_nodes);
    }
    MigrationPlan {
        supported: p.steps.iter().all(|s| s.supported),
        data_loss: p.steps.iter().any(|s| s.data_loss),
        steps: p.steps,
    }
}

/// Property-level steps shared by nodes and edges; `key` lists the old
/// key properties (a key cannot be dropped or changed).
fn property_changes(
    p: &mut Planner,
    entity: &'static str,
    type_name: &str,
    old: &[Property],
    new: &[Property],
    key: &[String],
) {
    let old_map: BTreeMap<String, &Property> = old.iter().map(|q| (q.name.clone(), q)).collect();
    let new_map: BTreeMap<String, &Property> = new.iter().map(|q| (q.name.clone(), q)).collect();
    let (pairs, added, dropped) = pair(&old_map, &new_map, |q: &&Property| q.rename_from.clone());
    for name in added {
        let q = new_map[&name];
        if q.nullable || q.default.is_some() {
            p.push(
                StepKind::AddProperty,
                entity,
                type_name,
                Some(&name),
                format!("add property {name}: {}", nullable(q)),
            );
        } else {
            p.unsupported(
                entity,
                type_name,
                Some(&name),
                format!("add required property {name}: {}", nullable(q)),
                "existing rows have no value for it; make it nullable (`?`) or give it a @default",
            );
        }
    }
    for (from, to) in pairs {
        let (a, b) = (old_map[&from], new_map[&to]);
        if from != to {
            if key.contains(&from) {
                p.unsupported(
                    entity,
                    type_name,
                    Some(&to),
                    format!("rename key property {from} to {to}"),
                    "a key property cannot be renamed by a migration; keep its name",
                );
                continue;
            }
            p.push(
                StepKind::RenameProperty,
                entity,
                type_name,
                Some(&to),
                format!("rename property {from} to {to}"),
            );
        }
        match (&a.ty, &b.ty) {
            (x, y) if x == y => {}
            (PropType::Enum { values: va }, PropType::Enum { values: vb })
                if va.iter().all(|v| vb.contains(v)) =>
            {
                let extra: Vec<&str> = vb
                    .iter()
                    .filter(|v| !va.contains(v))
                    .map(String::as_str)
                    .collect();
                p.push(
                    StepKind::ExtendEnum,
                    entity,
                    type_name,
                    Some(&to),
                    format!("extend enum {to} with {}", extra.join(", ")),
                );
            }
            (PropType::Enum { .. }, PropType::Enum { .. }) => p.unsupported(
                entity,
                type_name,
                Some(&to),
                format!("narrow enum {to}: {} → {}", ty(&a.ty), ty(&b.ty)),
                "removing or renaming enum values could invalidate stored rows; only adding values is supported",
            ),
            _ => p.unsupported(
                entity,
                type_name,
                Some(&to),
                format!("change type of {to}: {} → {}", ty(&a.ty), ty(&b.ty)),
                "stored values would need converting; add a new property, copy the values with a mutation, then drop the old one",
            ),
        }
        if a.nullable && !b.nullable {
            p.unsupported(
                entity,
                type_name,
                Some(&to),
                format!("make {to} required"),
                "existing rows may hold nulls; keep it nullable",
            );
        } else if !a.nullable && b.nullable {
            p.push(
                StepKind::RelaxNullability,
                entity,
                type_name,
                Some(&to),
                format!("make {to} nullable"),
            );
        }
        // Annotations lifted into typed fields are compared there.
        let ann = |q: &Property| {
            q.annotations
                .iter()
                .filter(|x| !LIFTED.contains(&x.name.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        };
        if a.default != b.default
            || a.description != b.description
            || a.embed != b.embed
            || ann(a) != ann(b)
        {
            p.push(
                StepKind::UpdateMetadata,
                entity,
                type_name,
                Some(&to),
                format!("update metadata of {to} (default, description, embedding or annotations)"),
            );
        }
    }
    for name in dropped {
        if key.contains(&name) {
            p.unsupported(
                entity,
                type_name,
                Some(&name),
                format!("drop key property {name}"),
                "every id is derived from the key; a key property cannot be dropped",
            );
        } else {
            p.push(
                StepKind::DropProperty,
                entity,
                type_name,
                Some(&name),
                format!("drop property {name} and its values"),
            );
        }
    }
}

fn set_diff<T: Ord + Clone>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (sa, sb): (BTreeSet<T>, BTreeSet<T>) =
        (a.iter().cloned().collect(), b.iter().cloned().collect());
    (
        sb.difference(&sa).cloned().collect(),
        sa.difference(&sb).cloned().collect(),
    )
}

fn node_changes(p: &mut Planner, a: &NodeType, b: &NodeType) {
    let name = &b.name;
    let key = a.key.clone().unwrap_or_default();
    if a.key != b.key {
        p.unsupported(
            "node",
            name,
            None,
            format!(
                "change the key of {name}: {:?} → {:?}",
                a.key.clone().unwrap_or_default(),
                b.key.clone().unwrap_or_default()
            ),
            "every id is derived from the key; changing it would rewrite every id and edge; create a new type and load it instead",
        );
    }
    property_changes(p, "node", name, &a.properties, &b.properties, &key);
    index_and_constraint_changes(
        p,
        "node",
        name,
        (&a.indexes, &b.indexes),
        (&a.unique, &b.unique),
    );
    let rng = |n: &NodeType| -> Vec<String> {
        n.ranges
            .iter()
            .map(|r| format!("@range({}, {:?}..{:?})", r.property, r.min, r.max))
            .chain(
                n.checks
                    .iter()
                    .map(|c| format!("@check({}, {:?})", c.property, c.pattern)),
            )
            .collect()
    };
    let (added, removed) = set_diff(&rng(a), &rng(b));
    for c in added {
        p.push(
            StepKind::AddConstraint,
            "node",
            name,
            None,
            format!("add {c} (existing rows are checked when applied)"),
        );
    }
    for c in removed {
        p.push(
            StepKind::DropConstraint,
            "node",
            name,
            None,
            format!("drop {c}"),
        );
    }
    if a.description != b.description
        || a.annotations != b.annotations
        || a.implements != b.implements
    {
        let ann = |n: &NodeType| {
            n.annotations
                .iter()
                .filter(|x| !LIFTED.contains(&x.name.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        };
        if a.description != b.description || ann(a) != ann(b) || a.implements != b.implements {
            p.push(
                StepKind::UpdateMetadata,
                "node",
                name,
                None,
                format!("update metadata of {name} (description, annotations or interfaces)"),
            );
        }
    }
}

fn index_and_constraint_changes(
    p: &mut Planner,
    entity: &'static str,
    name: &str,
    (ia, ib): (&[super::catalog::IndexDecl], &[super::catalog::IndexDecl]),
    (ua, ub): (&[Vec<String>], &[Vec<String>]),
) {
    let idx = |v: &[super::catalog::IndexDecl]| -> Vec<String> {
        v.iter()
            .map(|i| format!("{} ({:?})", i.property, i.kind))
            .collect()
    };
    let (added, removed) = set_diff(&idx(ia), &idx(ib));
    for i in added {
        p.push(
            StepKind::AddIndex,
            entity,
            name,
            None,
            format!("add index on {i}"),
        );
    }
    for i in removed {
        p.push(
            StepKind::DropIndex,
            entity,
            name,
            None,
            format!("drop index on {i}"),
        );
    }
    let (added, removed) = set_diff(ua, ub);
    for u in added {
        p.push(
            StepKind::AddConstraint,
            entity,
            name,
            None,
            format!(
                "add @unique({}) (existing rows are checked when applied)",
                u.join(", ")
            ),
        );
    }
    for u in removed {
        p.push(
            StepKind::DropConstraint,
            entity,
            name,
            None,
            format!("drop @unique({})", u.join(", ")),
        );
    }
}

fn edge_changes(
    p: &mut Planner,
    a: &EdgeType,
    b: &EdgeType,
    renamed_nodes: &BTreeMap<String, String>,
) {
    let name = &b.name;
    let follow = |n: &str| {
        renamed_nodes
            .get(n)
            .cloned()
            .unwrap_or_else(|| n.to_string())
    };
    if follow(&a.from) != b.from || follow(&a.to) != b.to {
        p.unsupported(
            "edge",
            name,
            None,
            format!("change endpoints of {name}: {} -> {} → {} -> {}", a.from, a.to, b.from, b.to),
            "stored edges would point at the wrong types; create a new edge type and load it instead",
        );
    }
    property_changes(p, "edge", name, &a.properties, &b.properties, &[]);
    index_and_constraint_changes(
        p,
        "edge",
        name,
        (&a.indexes, &b.indexes),
        (&a.unique, &b.unique),
    );
    if a.cardinality != b.cardinality {
        p.push(
            StepKind::AddConstraint,
            "edge",
            name,
            None,
            format!(
                "change @card of {name}: {} → {} (existing rows are checked when applied)",
                a.cardinality, b.cardinality
            ),
        );
    }
    if a.description != b.description
        || a.annotations
            .iter()
            .filter(|x| !LIFTED.contains(&x.name.as_str()))
            .collect::<Vec<_>>()
            != b.annotations
                .iter()
                .filter(|x| !LIFTED.contains(&x.name.as_str()))
                .collect::<Vec<_>>()
    {
        p.push(
            StepKind::UpdateMetadata,
            "edge",
            name,
            None,
            format!("update metadata of {name}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile_schema_file;

    const BASE: &str = "node Person {\n  slug: String @key\n  name: String @index\n  age: I32?\n  mood: enum(happy, sad)?\n}\nnode Org { name: String @key }\nedge WorksAt: Person -> Org\n";

    fn plan_of(new: &str) -> MigrationPlan {
        let a = compile_schema_file("old.pg", BASE).expect("old");
        let b =
            compile_schema_file("new.pg", new).unwrap_or_else(|d| panic!("{}", d.render(false)));
        plan(&a, &b)
    }

    fn kinds(p: &MigrationPlan) -> Vec<StepKind> {
        p.steps.iter().map(|s| s.kind).collect()
    }

    #[test]
    fn the_same_schema_plans_nothing() {
        let p = plan_of(BASE);
        assert!(p.supported && !p.data_loss && p.steps.is_empty(), "{p:?}");
    }

    #[test]
    fn supported_steps() {
        let p = plan_of(&BASE.replace(
            "  age: I32?\n",
            "  age: I32?\n  email: String?\n  score: F64 @default(1.0)\n",
        ));
        assert_eq!(
            kinds(&p),
            vec![StepKind::AddProperty, StepKind::AddProperty]
        );
        assert!(p.supported && !p.data_loss);
        let p = plan_of(&BASE.replace("enum(happy, sad)", "enum(happy, sad, calm)"));
        assert_eq!(kinds(&p), vec![StepKind::ExtendEnum]);
        assert!(p.steps[0].detail.contains("calm"));
        let p = plan_of(&BASE.replace("  age: I32?", "  years: I32? @rename_from(\"age\")"));
        assert_eq!(kinds(&p), vec![StepKind::RenameProperty], "{p:?}");
        let p = plan_of(&format!("{BASE}node Place {{ name: String @key }}\n"));
        assert_eq!(kinds(&p), vec![StepKind::AddType]);
        let p = plan_of(
            &BASE
                .replace("node Org {", "node Company @rename_from(\"Org\") {")
                .replace("-> Org", "-> Company"),
        );
        assert_eq!(kinds(&p), vec![StepKind::RenameType], "{p:?}");
        let p = plan_of(&BASE.replace("  age: I32?\n", "  age: I32? @index\n"));
        assert_eq!(kinds(&p), vec![StepKind::AddIndex], "{p:?}");
        let p = plan_of(&BASE.replace("  mood:", "  @range(age, 0..150)\n  mood:"));
        assert_eq!(kinds(&p), vec![StepKind::AddConstraint], "{p:?}");
    }

    #[test]
    fn drops_are_data_loss() {
        let p = plan_of(&BASE.replace("  age: I32?\n", ""));
        assert_eq!(kinds(&p), vec![StepKind::DropProperty]);
        assert!(p.supported && p.data_loss);
        let p = plan_of(
            "node Person {\n  slug: String @key\n  name: String @index\n  age: I32?\n  mood: enum(happy, sad)?\n}\n",
        );
        assert_eq!(
            kinds(&p),
            vec![StepKind::DropType, StepKind::DropType],
            "{p:?}"
        );
        assert!(p.data_loss);
    }

    #[test]
    fn unsupported_steps_carry_a_reason() {
        for (new, want) in [
            (
                BASE.replace("  age: I32?\n", "  age: I32?\n  email: String\n"),
                "nullable",
            ),
            (
                BASE.replace("  age: I32?", "  age: String?"),
                "copy the values",
            ),
            (
                BASE.replace("enum(happy, sad)", "enum(happy)"),
                "only adding values",
            ),
            (BASE.replace("  age: I32?", "  age: I32"), "nulls"),
            (
                BASE.replace("slug: String @key", "slug: String\n  code: String @key"),
                "key",
            ),
            (
                BASE.replace("Person -> Org", "Org -> Person"),
                "wrong types",
            ),
        ] {
            let p = plan_of(&new);
            assert!(!p.supported, "{new}");
            let bad: Vec<&Step> = p.steps.iter().filter(|s| !s.supported).collect();
            assert!(
                bad.iter()
                    .any(|s| s.reason.as_deref().is_some_and(|r| r.contains(want))),
                "{new}: {p:?}"
            );
        }
    }
}
