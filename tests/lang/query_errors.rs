//! Negative `.gq` cases against a small schema: each names the code it must
//! raise and marks (with `«`) where the diagnostic must point.

use omnigraph::query::compile_queries;

use crate::support::{catalog, check_has, unmark};

pub const SCHEMA: &str = r#"
interface Named { name: String }
node Person implements Named {
    slug: String @key
    age: I32?
    tags: [String]?
    status: enum(active, archived)
    born: Date?
    photo: Blob?
    bio: String? @index
    embedding: Vector(4)? @embed("bio")
    raw: Vector(4)?
}
node Company {
    slug: String @key
    name: String
}
edge Knows: Person -> Person { since: Date? }
edge WorksAt: Person -> Company @card(0..1) { role: String? }
"#;

const CASES: &[(&str, &str)] = &[
    ("Q000", "query q() { match { $p: Person } «}"),
    (
        "Q000",
        "query q() { match { $p: Person } return { $p.name } limit «}",
    ),
    ("Q000", "query q() «match { $p: Person } return { $p.name }"),
    // No `()` after the name: pointed at the `{`, naming the `(` wanted.
    (
        "Q000",
        "query q «{ match { $p: Person } return { $p.name } }",
    ),
    (
        "Q001",
        "query q() { match { $p: Person\n $p.age = «99999999999999999999 } return { $p.name } }",
    ),
    ("T01", "query q() { match { $p: «Persn } return { $p } }"),
    ("T01", "query q() { match { $p: «Named } return { $p } }"),
    ("T01", "query q() { insert «Nobody { slug: \"a\" } }"),
    (
        "T02",
        "query q() { match { $p: Person { «nme: \"x\" } } return { $p } }",
    ),
    (
        "T02",
        "query q() { match { $p: Person } return { $p.«nme } }",
    ),
    (
        "T02",
        "query q() { update Person set { age: 3 } where «agee = 1 }",
    ),
    (
        "T02",
        "query q() { match { $p: Person\n $p $w:knows $q } return { $w.«weight } }",
    ),
    (
        "T03",
        "query q() { match { $p: Person\n $p «likes $q } return { $q } }",
    ),
    (
        "T03",
        "query q() { match { $p: Person\n $p «Knows $q } return { $q } }",
    ),
    (
        "T04",
        "query q() { match { $p: Person } return { «$x.name } }",
    ),
    (
        "T04",
        "query q() { match { $p: Person\n not { $p knows $q } } return { «$q.slug } }",
    ),
    (
        "T05",
        "query q() { insert Company { slug: «$s, name: \"x\" } }",
    ),
    (
        "T06",
        "query q() { match { $p: Person } return { $p } }\nquery «q() { match { $p: Person } return { $p } }",
    ),
    (
        "T07",
        "query q($a: String, «$a: I32) { match { $p: Person { slug: $a } } return { $p } }",
    ),
    (
        "T08",
        "query q() { match { $p: Person\n «$p: Company } return { $p } }",
    ),
    (
        "T09",
        "query q() { match { $c: Company\n «$c knows $p } return { $p } }",
    ),
    (
        "T09",
        "query q() { match { $p: Person\n $p worksAt $x\n «$x knows $y } return { $p } }",
    ),
    (
        "T10",
        "query q() { match { $p: Person\n $p.age = «\"ten\" } return { $p } }",
    ),
    (
        "T10",
        "query q() { match { $p: Person\n $p.born = «5 } return { $p } }",
    ),
    (
        "T10",
        "query q() { match { $p: Person\n $q: Person\n $p = «$q } return { $p } }",
    ),
    (
        "T11",
        "query q() { match { $p: Person\n $p.slug starts_with «5 } return { $p } }",
    ),
    (
        "T11",
        "query q() { match { $p: Person\n $p.age contains «1 } return { $p } }",
    ),
    (
        "T11",
        "query q() { match { $p: Person } return { $p.slug } order { «$p.raw } }",
    ),
    (
        "T12",
        "query q() { match { $p: Person { status: «\"deleted\" } } return { $p } }",
    ),
    (
        "T12",
        "query q() { insert Person { slug: \"a\", name: \"n\", status: «\"gone\" } }",
    ),
    (
        "T13",
        "query q($x: String) { match { $p: Person { slug: «$x.name } } return { $p } }",
    ),
    (
        "T14",
        "query q() { match { $p: Person } return { «lower($p.name) } }",
    ),
    (
        "T14",
        "query q() { match { $p: Person } return { «count() } }",
    ),
    (
        "T15",
        "query q() { match { $p: Person\n «count($p) > 1 } return { $p } }",
    ),
    (
        "T15",
        "query q() { match { $p: Person } return { sum(«$p.name) } }",
    ),
    (
        "T15",
        "query q() { match { $p: Person } return { count(«count($p)) } }",
    ),
    (
        "T16",
        "query q() { match { $p: Person } return { $p.status, count($p) as n } order { «$p.age } }",
    ),
    (
        "T17",
        "query q() { match { $p: Person\n search(«$p.age, \"x\") } return { $p } }",
    ),
    (
        "T17",
        "query q() { match { $p: Person\n search($p.bio, «5) } return { $p } }",
    ),
    (
        "T18",
        "query q($v: Vector(4)) { match { $p: Person } return { $p.slug } order { nearest(«$p.age, $v) } limit 3 }",
    ),
    (
        "T18",
        "query q($q: String) { match { $p: Person } return { $p.slug } order { nearest($p.raw, «$q) } limit 3 }",
    ),
    (
        "T18",
        "query q($v: Vector(3)) { match { $p: Person } return { $p.slug } order { nearest($p.raw, «$v) } limit 3 }",
    ),
    (
        "T19",
        "query q($v: Vector(4)) { match { $p: Person } return { $p.slug } order { «nearest($p.raw, $v) } }",
    ),
    (
        "T20",
        "query q($q: String) { match { $p: Person } return { $p.slug } order { rrf(«$p.age, bm25($p.bio, $q)) } limit 3 }",
    ),
    (
        "T21",
        "query q() { match { $p: Person\n $p knows«{3,1} $q } return { $q } }",
    ),
    (
        "T21",
        "query q() { match { $p: Person\n $p worksAt«{0,2} $c } return { $c } }",
    ),
    (
        "T22",
        "query q() { match { $p: Person\n $p <«worksAt> $c } return { $c } }",
    ),
    (
        "T23",
        "query q() { match { $p: Person\n $p «$w:knows{1,2} $q } return { $q } }",
    ),
    (
        "T23",
        "query q() { match { $p: Person\n $p $w:knows $q } return { «$w } }",
    ),
    (
        "T24",
        "query q() { match { $p: Person } return { «$p.photo } }",
    ),
    (
        "T24",
        "query q() { match { $p: Person } return { $p.slug } order { «$p.photo } }",
    ),
    (
        "T25",
        "query q() { match { $p: Person\n $p worksAt $c } return { $p.slug as s, «$c.slug as s } }",
    ),
    (
        "T25",
        "query q() { match { $p: Person } return { $p.slug } order { «score } }",
    ),
    (
        "T26",
        "query q() { match { $p: Person\n «$p.age } return { $p } }",
    ),
    ("T28", "query q() { «insert Person { slug: \"a\" } }"),
    (
        "T28",
        "query q() { update «Person set { } where slug = \"a\" }",
    ),
    (
        "T29",
        "query q() { insert Person { slug: \"a\", name: «5, status: \"active\" } }",
    ),
    (
        "T29",
        "query q($n: I32) { insert Company { slug: \"a\", name: «$n } }",
    ),
    (
        "T29",
        "query q() { insert Person { slug: \"a\", name: \"n\", status: \"active\", age: «3000000000 } }",
    ),
    (
        "T29",
        "query q() { insert Company { slug: \"a\", name: «null } }",
    ),
    (
        "T30",
        "query q() { update Person set { «slug: \"b\" } where slug = \"a\" }",
    ),
    (
        "T30",
        "query q() { update Knows set { «to: \"b\" } where from = \"a\" }",
    ),
    ("T31", "query q() { «insert Knows { from: \"a\" } }"),
    (
        "T32",
        "query q() {\n insert Company { slug: \"a\", name: \"b\" }\n «delete Person where slug = \"x\"\n}",
    ),
    (
        "T33",
        "query q() { insert Company { slug: \"a\", name: \"b\", «name: \"c\" } }",
    ),
    (
        "T34",
        "query q() { match { $p: Person } return { $p.slug } limit «0 }",
    ),
    (
        "T34",
        "query q($n: String) { match { $p: Person } return { $p.slug } limit «$n }",
    ),
    (
        "T35",
        "query q() { match { $p: Person\n $p knows $_ } return { «$_ } }",
    ),
    ("T35", "query q() { match { «$_: Person } return { 1 } }"),
    (
        "T36",
        "query q() { match { $p: Person\n «not { $x: Company } } return { $p } }",
    ),
    (
        "T37",
        "query q() «@description(1) { match { $p: Person } return { $p } }",
    ),
    (
        "T38",
        "query q($a: «Strin) { match { $p: Person { slug: $a } } return { $p } }",
    ),
    (
        "T39",
        "query q() { match { $p: Person\n $p.born = «\"2026-13-40\" } return { $p } }",
    ),
    (
        "T39",
        "query q() { match { $p: Person\n $p.born < date(«\"yesterday\") } return { $p } }",
    ),
];

#[test]
fn every_query_case_reports_its_code_at_its_position() {
    assert!(CASES.len() >= 40, "keep at least 40 query cases");
    let cat = catalog(SCHEMA);
    let mut failures = Vec::new();
    for (code, case) in CASES {
        let (src, pos) = unmark(case);
        let compiled = compile_queries(&cat, &src);
        if !compiled.has_errors() {
            failures.push(format!("expected {code}, but the query checked:\n{case}"));
            continue;
        }
        failures.extend(check_has(&compiled.diagnostics, &src, code, pos, case).err());
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_syntax_error_names_the_token_wanted_where_the_parser_stopped() {
    let cat = catalog(SCHEMA);
    let cases = [
        (
            "query q { match { $p: Person } return { $p.slug } }",
            "expected `(`, found `{`",
        ),
        (
            "query q() { match { $p: Person } return { $p.slug }",
            "found the end of the input",
        ),
    ];
    for (src, want) in cases {
        let compiled = compile_queries(&cat, src);
        let msgs: Vec<&str> = compiled
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(
            msgs.iter().any(|m| m.contains(want)),
            "{src}: {msgs:?} should say {want:?}"
        );
    }
}

#[test]
fn unused_parameter_is_a_warning_not_an_error() {
    let cat = catalog(SCHEMA);
    let src = "query q($unused: String) { match { $p: Person } return { $p.slug } }";
    let compiled = compile_queries(&cat, src);
    assert!(!compiled.has_errors());
    assert_eq!(compiled.queries.len(), 1);
    assert!(compiled.diagnostics.iter().any(|d| d.code == "W01"));
}

/// Bounds on an edge between two node types (the reference accepts them):
/// warning W02, and the traversal is the one hop a path over such an edge
/// can have (nothing from two hops on), even where a `Person` and an `Org`
/// share a key. Zero hops stay T21 (the case list above).
#[test]
fn bounds_on_an_edge_between_two_types_warn_and_run_as_one_hop() {
    use omnigraph::engine::load::LoadMode;
    use omnigraph::engine::{Graph, ReadAt};
    let schema = "node Person { name: String @key }\nnode Org { name: String @key }\nedge WorksAt: Person -> Org\n";
    let rt = crate::support::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let g = rt
        .block_on(Graph::init(
            tmp.path().join("g").to_str().expect("utf8"),
            "s.pg",
            schema,
        ))
        .expect("init");
    // `x` is both a person and an org: a path must not go on from the org.
    let data = [
        r#"{"type":"Person","data":{"name":"ann"}}"#,
        r#"{"type":"Person","data":{"name":"x"}}"#,
        r#"{"type":"Org","data":{"name":"x"}}"#,
        r#"{"type":"Org","data":{"name":"acme"}}"#,
        r#"{"edge":"WorksAt","from":"ann","to":"x"}"#,
        r#"{"edge":"WorksAt","from":"x","to":"acme"}"#,
    ]
    .join("\n");
    rt.block_on(g.load(
        std::io::Cursor::new(data.into_bytes()),
        LoadMode::Append,
        "main",
        None,
        "t",
    ))
    .expect("load");
    let src =
        "query one() { match { $p: Person { name: \"ann\" }\n $p worksAt $o } return { $o.name } }
query upto3() { match { $p: Person { name: \"ann\" }\n $p worksAt{1,3} $o } return { $o.name } }
query from2() { match { $p: Person\n $p worksAt{2,3} $o } return { $o.name } }";
    let compiled = compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let w02: Vec<_> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.code == "W02")
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(w02.len(), 2, "{w02:?}");
    assert!(w02[1].contains("match nothing"), "{w02:?}");
    let run = |name: &str| {
        let r = rt
            .block_on(g.query(
                compiled.query(name).expect("query"),
                &serde_json::Value::Null,
                &ReadAt::Branch("main".into()),
            ))
            .expect("run");
        r.rows
            .iter()
            .map(|row| row["name"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run("one"), ["x"]);
    assert_eq!(run("upto3"), ["x"], "no second hop from org `x` to `acme`");
    assert!(run("from2").is_empty());
}

/// Unconnected bindings (a cross product) are warning W03 at the binding
/// that is not connected; bindings tied by a traversal, an equality on a
/// bound variable or a key lookup are not, nor are bindings inside `not`.
#[test]
fn an_unconnected_binding_warns_w03() {
    let cat = catalog(SCHEMA);
    let w03 = |src: &str| -> Vec<String> {
        let compiled = compile_queries(&cat, src);
        assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
        compiled
            .diagnostics
            .iter()
            .filter(|d| d.code == "W03")
            .map(|d| d.message.clone())
            .collect()
    };
    let cross = w03("query q() { match { $a: Person\n $c: Company } return { $a.slug, $c.slug } }");
    assert_eq!(cross.len(), 1, "{cross:?}");
    assert!(
        cross[0].contains("`$c` is not connected to $a"),
        "{cross:?}"
    );
    let six = w03(
        "query q() { match { $v0: Person $v1: Person $v2: Person } return { $v0.slug } limit 1 }",
    );
    assert_eq!(six.len(), 2, "{six:?}");
    for connected in [
        "query q() { match { $a: Person\n $a knows $b } return { $b.slug } }",
        "query q() { match { $a: Person\n $c: Company { slug: $a.slug } } return { $c.slug } }",
        "query q($s: String) { match { $a: Person\n $c: Company { slug: $s } } return { $c.slug, $a.slug } }",
        "query q() { match { $a: Person\n not { $b: Person\n $b.age > $a.age } } return { $a.slug } }",
    ] {
        assert!(
            w03(connected).is_empty(),
            "{connected}: {:?}",
            w03(connected)
        );
    }
}

/// A property match that names a variable bound later in the block
/// (`$c: Company { slug: $a.slug }` written before `$a`'s binding is
/// scanned) waits for it: the planner used to look `$c` up by a key it
/// could not know yet and answered nothing.
#[test]
fn a_property_match_on_a_variable_bound_later_waits_for_it() {
    use omnigraph::engine::load::LoadMode;
    use omnigraph::engine::{Graph, ReadAt};
    let schema =
        "node Person { slug: String @key }\nnode Company { slug: String @key\n name: String }\n";
    let rt = crate::support::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let g = rt
        .block_on(Graph::init(
            tmp.path().join("g").to_str().expect("utf8"),
            "s.pg",
            schema,
        ))
        .expect("init");
    let data = [
        r#"{"type":"Person","data":{"slug":"x"}}"#,
        r#"{"type":"Company","data":{"slug":"x","name":"X"}}"#,
        r#"{"type":"Company","data":{"slug":"y","name":"Y"}}"#,
    ]
    .join("\n");
    rt.block_on(g.load(
        std::io::Cursor::new(data.into_bytes()),
        LoadMode::Append,
        "main",
        None,
        "t",
    ))
    .expect("load");
    let src =
        "query q() { match { $a: Person\n $c: Company { slug: $a.slug } } return { $c.name } }";
    let compiled = compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let r = rt
        .block_on(g.query(
            compiled.query("q").expect("query"),
            &serde_json::Value::Null,
            &ReadAt::Branch("main".into()),
        ))
        .expect("run");
    assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
    assert_eq!(r.rows[0]["name"], serde_json::json!("X"));
}
