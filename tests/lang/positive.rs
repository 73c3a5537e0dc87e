//! The whole language, accepted: every construct the reference docs define
//! compiles, and the catalog and IR say what the source said.

use omnigraph::query::compile_queries;
use omnigraph::query::ir::*;
use omnigraph::schema::*;

use crate::support::catalog;

const FULL_SCHEMA: &str = r#"
/* Every declaration form. */
interface Named {
    name: String @index @description("display name")
}
interface Stamped { createdAt: DateTime }

node Person implements Named, Stamped @description("a human") {
    slug: String @key
    age: I32?
    score: F64? @default(0.5)
    visits: U64 @default(0)
    small: U32?
    big: I64?
    ratio: F32?
    alive: Bool @default(true)
    born: Date?
    tags: [String]?
    photo: Blob?
    status: enum(b, a, c, a) @index
    bio: String?
    embedding: Vector(3)? @embed("bio", model="test/model")
    code: String? @rename_from("old_code") @custom_thing(1, "x")
    @range(age, 0..150)
    @range(score, ..1.0)
    @check(code, "^[A-Z]{3}$")
    @unique(bio, big)
    @index(born, tags, embedding)
}
node Org { name: String, country: String
    @key(name, country)
}
edge Knows: Person -> Person @card(0..*) {
    since: Date?
    weight: F64?
    @unique(src, dst)
    @index(weight)
}
edge MemberOf: Person -> Org @card(1..1)
edge Mentor: Person -> Person @card(0..3)
"#;

#[test]
fn catalog_resolves_every_declaration_form() {
    let cat = catalog(FULL_SCHEMA);
    let p = cat.node("Person").expect("Person");
    assert_eq!(p.implements, ["Named", "Stamped"]);
    assert_eq!(p.description.as_deref(), Some("a human"));
    // Interface properties come first and are marked.
    assert_eq!(p.properties[0].name, "name");
    assert_eq!(p.properties[0].from_interface.as_deref(), Some("Named"));
    assert_eq!(p.properties[0].description.as_deref(), Some("display name"));
    assert_eq!(p.properties[1].name, "createdAt");
    assert_eq!(p.key.as_deref(), Some(&["slug".to_string()][..]));
    let ty = |n: &str| p.property(n).expect(n).ty.clone();
    assert_eq!(ty("age"), PropType::scalar(ScalarType::I32));
    assert_eq!(ty("visits"), PropType::scalar(ScalarType::U64));
    assert_eq!(ty("small"), PropType::scalar(ScalarType::U32));
    assert_eq!(ty("ratio"), PropType::scalar(ScalarType::F32));
    assert_eq!(
        ty("tags"),
        PropType::List {
            item: ScalarType::String
        }
    );
    assert_eq!(ty("photo"), PropType::scalar(ScalarType::Blob));
    assert_eq!(
        ty("status"),
        PropType::Enum {
            values: vec!["a".into(), "b".into(), "c".into()]
        }
    );
    assert_eq!(ty("embedding"), PropType::Vector { dim: 3 });
    assert!(p.property("age").expect("age").nullable);
    assert!(!p.property("slug").expect("slug").nullable);
    assert_eq!(
        p.property("score").expect("score").default,
        Some(Literal::Float(0.5))
    );
    assert_eq!(
        p.property("alive").expect("alive").default,
        Some(Literal::Bool(true))
    );
    assert!(!p.property("visits").expect("visits").is_required());
    assert!(p.property("slug").expect("slug").is_required());
    let embed = p
        .property("embedding")
        .expect("e")
        .embed
        .clone()
        .expect("embed");
    assert_eq!(
        embed,
        EmbedSpec {
            source: "bio".into(),
            model: Some("test/model".into())
        }
    );
    let code = p.property("code").expect("code");
    assert_eq!(code.rename_from.as_deref(), Some("old_code"));
    assert!(
        code.annotations
            .iter()
            .any(|a| a.name == "custom_thing" && a.args == ["1", "\"x\""])
    );
    assert_eq!(
        p.ranges[0],
        RangeConstraint {
            property: "age".into(),
            min: Some(0.0),
            max: Some(150.0)
        }
    );
    assert_eq!(
        p.ranges[1],
        RangeConstraint {
            property: "score".into(),
            min: None,
            max: Some(1.0)
        }
    );
    assert_eq!(p.checks[0].pattern, "^[A-Z]{3}$");
    assert_eq!(p.unique, vec![vec!["bio".to_string(), "big".to_string()]]);
    let kind = |n: &str| p.indexes.iter().find(|i| i.property == n).map(|i| i.kind);
    assert_eq!(kind("name"), Some(IndexKind::FullText));
    assert_eq!(kind("status"), Some(IndexKind::Btree));
    assert_eq!(kind("born"), Some(IndexKind::Btree));
    assert_eq!(kind("tags"), Some(IndexKind::LabelList));
    assert_eq!(kind("embedding"), Some(IndexKind::Vector));
    assert_eq!(
        kind("slug"),
        Some(IndexKind::Btree),
        "a key implies an index"
    );

    let org = cat.node("Org").expect("Org");
    assert_eq!(
        org.key.as_deref(),
        Some(&["name".to_string(), "country".to_string()][..])
    );

    let knows = cat.edge("Knows").expect("Knows");
    assert_eq!(
        (knows.from.as_str(), knows.to.as_str()),
        ("Person", "Person")
    );
    assert_eq!(knows.cardinality, Cardinality { min: 0, max: None });
    assert_eq!(
        knows.unique,
        vec![vec!["src".to_string(), "dst".to_string()]]
    );
    assert_eq!(
        cat.edge("MemberOf").expect("m").cardinality,
        Cardinality {
            min: 1,
            max: Some(1)
        }
    );
    assert_eq!(
        cat.edge("Mentor").expect("m").cardinality,
        Cardinality {
            min: 0,
            max: Some(3)
        }
    );
    assert_eq!(
        cat.edge_ci("memberOf").map(|e| e.name.as_str()),
        Some("MemberOf")
    );
}

#[test]
fn an_annotation_on_the_next_line_is_a_body_constraint() {
    let cat = catalog("node A {\n  a: String\n  b: String @key\n  @unique(a, b)\n}");
    let a = cat.node("A").expect("A");
    assert_eq!(a.key.as_deref(), Some(&["b".to_string()][..]));
    assert_eq!(a.unique, vec![vec!["a".to_string(), "b".to_string()]]);
}

const QUERIES: &str = r#"
query everything($slug: String, $names: [String], $min: I32?, $q: String, $v: Vector(3), $n: I64, $since: Date)
    @description("exercise the grammar") @instruction("use carefully") {
    match {
        $p: Person { slug: $slug, status: "a" }
        $p knows{1,3} $friend
        $p <knows> $peer
        $p $k:knows $other
        $k.weight >= 0.5
        $friend.age > $min
        $friend.tags contains "x"
        $friend.name starts_with "A"
        $friend.name != $slug
        $other.born >= $since
        $other.createdAt < now()
        $peer.born = date("2020-01-02")
        $peer.createdAt <= datetime("2026-01-01T00:00:00Z")
        search($p.name, $q)
        fuzzy($p.name, $q, 2)
        match_text($p.bio, $q)
        not { $friend memberOf $_ }
    }
    return { $p.slug as who, $friend, $k.since, bm25($p.bio, $q) as relevance, [1, 2] as nums }
    order { relevance, $p.slug desc }
    limit $n
}

query counts() {
    match {
        $o: Org
        $p memberOf $o
    }
    return { $o.name, count($p) as members, avg($p.age) as mean_age, min($p.born) as first, max($p.score), sum($p.visits) as total }
    order { members desc, $o.name }
}

query similar($v: Vector(3), $t: String) {
    match { $p: Person }
    return { $p.slug, nearest($p.embedding, $v) as d }
    order { rrf(nearest($p.embedding, $t), bm25($p.bio, $t), 10) }
    limit 5
}

query add($slug: String, $names: [String]) {
    insert Person { slug: $slug, name: "n", createdAt: now(), status: "b", tags: $names, born: "2001-02-03" }
    insert Knows { from: $slug, to: "other", since: date("2020-01-01") }
    update Person set { age: 3, bio: null } where slug = $slug
}

query remove($slug: String) {
    delete Person where slug = $slug
    delete Knows where from = $slug
}
"#;

#[test]
fn every_query_construct_checks_and_lowers() {
    let cat = catalog(FULL_SCHEMA);
    let compiled = compile_queries(&cat, QUERIES);
    let errors = crate::support::errors(&compiled);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(compiled.queries.len(), 5);

    let q = compiled.query("everything").expect("everything");
    assert_eq!(q.description.as_deref(), Some("exercise the grammar"));
    assert_eq!(q.instruction.as_deref(), Some("use carefully"));
    assert!(q.params.iter().any(|p| p.name == "min" && p.optional));
    assert_eq!(
        q.params[1].ty,
        PropType::List {
            item: ScalarType::String
        }
    );
    let QueryKind::Read(r) = &q.body else {
        panic!("read")
    };
    // The key lookup comes first.
    match &r.pipeline[0] {
        Op::Scan { var, lookup, .. } => {
            assert_eq!(var, "p");
            assert_eq!(*lookup, Lookup::Key);
        }
        other => panic!("first op should scan $p: {other:?}"),
    }
    let expands: Vec<&Op> = r
        .pipeline
        .iter()
        .filter(|o| matches!(o, Op::Expand { .. }))
        .collect();
    assert_eq!(expands.len(), 3);
    assert!(r.pipeline.iter().any(|o| matches!(
        o,
        Op::Expand {
            min_hops: 1,
            max_hops: Some(3),
            ..
        }
    )));
    assert!(r.pipeline.iter().any(|o| matches!(
        o,
        Op::Expand {
            undirected: true,
            ..
        }
    )));
    assert!(
        r.pipeline
            .iter()
            .any(|o| matches!(o, Op::Expand { edge_var: Some(v), .. } if v == "k"))
    );
    assert!(r.pipeline.iter().any(|o| matches!(o, Op::AntiJoin { .. })));
    // The date literal was typed at compile time.
    assert!(r.pipeline.iter().any(|o| matches!(
        o,
        Op::Filter {
            right: Some(Expr::Literal {
                value: LiteralValue::Date(18263)
            }),
            ..
        }
    )));
    let names: Vec<&str> = r.projections.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["who", "friend", "since", "relevance", "nums"]);
    assert_eq!(
        r.projections[1].ty,
        ValueType::Node {
            type_name: "Person".into()
        }
    );
    // An unwritten direction on a relevance alias stays ascending (it is an
    // alias, not a bm25 call); the explicit desc is kept.
    assert!(!r.order[0].descending);
    assert!(r.order[1].descending);
    assert_eq!(r.limit, Some(Expr::Param { name: "n".into() }));
    assert!(r.group_by.is_none());

    let q = compiled.query("counts").expect("counts");
    let QueryKind::Read(r) = &q.body else {
        panic!("read")
    };
    assert_eq!(r.group_by, Some(vec![0]));
    assert_eq!(
        r.projections[1].ty,
        ValueType::Int {
            scalar: ScalarType::I64
        }
    );
    assert_eq!(
        r.projections[2].ty,
        ValueType::Float {
            scalar: ScalarType::F64
        }
    );

    let q = compiled.query("similar").expect("similar");
    let QueryKind::Read(r) = &q.body else {
        panic!("read")
    };
    assert!(matches!(r.order[0].expr, Expr::Rrf { .. }));
    assert!(r.order[0].descending, "rrf orders best-first by default");

    let q = compiled.query("add").expect("add");
    let QueryKind::Mutation(m) = &q.body else {
        panic!("mutation")
    };
    assert_eq!(m.statements.len(), 3);
    match &m.statements[0] {
        MutationOp::Insert { values, .. } => {
            let born = values.iter().find(|(k, _)| k == "born").expect("born");
            assert_eq!(
                born.1,
                Expr::Literal {
                    value: LiteralValue::Date(11356)
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &m.statements[1],
        MutationOp::Insert {
            kind: TargetKind::Edge,
            from: Some(_),
            to: Some(_),
            ..
        }
    ));
    assert!(q.writes.contains(&TypeRef {
        kind: "node",
        type_name: "Person".into()
    }));

    // Deleting a node may cascade to every incident edge type.
    let q = compiled.query("remove").expect("remove");
    for e in ["Knows", "MemberOf", "Mentor"] {
        assert!(
            q.writes.contains(&TypeRef {
                kind: "edge",
                type_name: e.into()
            }),
            "{e}"
        );
    }
}

#[test]
fn traversal_from_an_unbound_source_walks_backwards_from_the_bound_side() {
    let cat = catalog(FULL_SCHEMA);
    let src = "query q($o: String) { match { $p memberOf $o2\n $o2: Org { name: $o } } return { $p.slug } }";
    let compiled = compile_queries(&cat, src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let QueryKind::Read(r) = &compiled.queries[0].body else {
        panic!()
    };
    assert!(
        matches!(&r.pipeline[0], Op::Scan { var, lookup: Lookup::Index { .. } | Lookup::Full, .. } if var == "o2")
    );
    assert!(matches!(&r.pipeline[1], Op::Expand { reverse: true, to_var, .. } if to_var == "p"));
}

/// Separators as the reference's fixtures write them: return, order,
/// property-match and assignment items one per line without commas; two
/// unaliased projections of one property name are each named by variable
/// (`p.slug`, `q.slug`) instead of refused.
#[test]
fn items_separated_by_newlines_and_same_named_projections() {
    let cat = catalog(FULL_SCHEMA);
    let src = r#"
query friend_counts() {
    match {
        $p: Person { slug: "a" age: 3 }
        $p knows $q
    }
    return {
        $p.slug
        $q.slug
        count($q) as friends
    }
    order { friends desc $p.slug }
    limit 20
}
query add($s: String) {
    insert Person {
        slug: $s
        name: "n"
        createdAt: now()
        status: "a"
    }
}
"#;
    let compiled = compile_queries(&cat, src);
    let errors = crate::support::errors(&compiled);
    assert!(errors.is_empty(), "{errors:#?}");
    let q = compiled.query("friend_counts").expect("friend_counts");
    let QueryKind::Read(r) = &q.body else {
        panic!("read")
    };
    let names: Vec<&str> = r.projections.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p.slug", "q.slug", "friends"]);
    assert_eq!(r.order.len(), 2);
    assert!(compiled.query("add").is_some());
    // An alias that clashes is still refused.
    let clash = compile_queries(
        &cat,
        "query c() { match { $p: Person } return { $p.slug as s $p.age as s } }",
    );
    assert!(
        clash.diagnostics.iter().any(|d| d.code == "T25"),
        "{:?}",
        clash.diagnostics
    );
}

/// Annotation placement as the reference's schemas write it: `@index` after
/// an `enum(…)` that spans lines belongs to the property; `@unique(a, b)`
/// on a property's line names its properties (a body constraint).
#[test]
fn annotations_after_a_multi_line_type_and_named_constraints_on_a_property_line() {
    let cat = catalog(
        "node A {\n  a: String\n  status: enum(\n    open,\n    closed\n  ) @index\n  b: String @key @unique(a, b)\n}",
    );
    let a = cat.node("A").expect("A");
    assert_eq!(a.key.as_deref(), Some(&["b".to_string()][..]));
    assert_eq!(a.unique, vec![vec!["a".to_string(), "b".to_string()]]);
    let status = a
        .properties
        .iter()
        .find(|p| p.name == "status")
        .expect("status");
    assert!(
        status.annotations.iter().any(|x| x.name == "index"),
        "{:?}",
        status.annotations
    );
}

/// `node X @ann implements Y` (annotations before `implements`) and
/// `@embed(bio)` with the source property named bare.
#[test]
fn annotations_before_implements_and_a_bare_embed_source() {
    let cat = catalog(
        "interface Named { name: String }\nnode P @description(\"a person\") implements Named {\n  bio: String?\n  v: Vector(3)? @embed(bio)\n}",
    );
    let p = cat.node("P").expect("P");
    assert_eq!(p.description.as_deref(), Some("a person"));
    assert!(
        p.properties.iter().any(|x| x.name == "name"),
        "implements Named"
    );
    let v = p.properties.iter().find(|x| x.name == "v").expect("v");
    assert_eq!(
        v.embed.as_ref().map(|e| e.source.as_str()),
        Some("bio"),
        "{:?}",
        v.embed
    );
}

/// A string may span lines; the line break is part of its value.
#[test]
fn a_string_spanning_lines_keeps_its_line_break() {
    let cat = catalog("node P @description(\"first line\nsecond line\") {\n  name: String\n}");
    let p = cat.node("P").expect("P");
    assert_eq!(p.description.as_deref(), Some("first line\nsecond line"));
}
