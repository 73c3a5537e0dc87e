//! Negative `.pg` cases: each names the code it must raise and marks (with
//! `«`) where the diagnostic must point.

use omnigraph::schema::compile_schema;

use crate::support::{check_has, unmark};

const CASES: &[(&str, &str)] = &[
    ("S001", "node A {\n  x: String\n  y «String\n}"),
    ("S001", "node A {\n  x: String\n«"),
    ("S001", "«nod A { x: String }"),
    ("S101", "node A { x: String }\nnode «A { y: String }"),
    (
        "S101",
        "node A { x: String }\nedge Knows: A -> A\nedge «KNOWS: A -> A",
    ),
    ("S102", "node A {\n  x: String\n  «x: I32\n}"),
    (
        "S103",
        "interface N { name: String }\nnode A implements N {\n  «name: I32\n}",
    ),
    ("S104", "node A implements «Nope { x: String }"),
    (
        "S104",
        "node B { x: String }\nnode A implements «B { y: String }",
    ),
    ("S105", "node A { x: String }\nedge E: A -> «Bee"),
    (
        "S105",
        "interface I { x: String }\nnode A { x: String }\nedge E: «I -> A",
    ),
    ("S106", "node A { «_rowid: I64 }"),
    ("S106", "node A { «id: String }"),
    (
        "S106",
        "node A { x: String }\nedge E: A -> A { «src: String }",
    ),
    ("S107", "node A { x: «Strin }"),
    ("S107", "node A { xs: [«Blob] }"),
    ("S108", "node A { v: Vector(«0) }"),
    ("S108", "node A { v: Vector(«99999999999) }"),
    ("S109", "node A { k: enum(a, «\"\") }"),
    ("S110", "node A {\n  x: String\n  @key(«y)\n}"),
    (
        "S110",
        "node A { x: String }\nedge E: A -> A {\n  w: I32\n  @unique(«v)\n}",
    ),
    ("S111", "node A { «x: String? @key }"),
    ("S112", "node A { «tags: [String] @key }"),
    ("S113", "node A { «b: Blob @index }"),
    ("S113", "node A {\n  b: Blob\n  @unique(«b)\n}"),
    (
        "S114",
        "node A {\n  a: String @key\n  b: String\n  «@key(b)\n}",
    ),
    ("S115", "node A {\n  s: String\n  @range(«s, 0..1)\n}"),
    ("S116", "node A {\n  n: I32\n  @range(n, «5..1)\n}"),
    ("S116", "node A {\n  n: I32\n  @range(n, «0.5..2)\n}"),
    ("S116", "node A {\n  n: F64\n  @range(n, «..)\n}"),
    ("S117", "node A {\n  n: I32\n  @check(«n, \"x\")\n}"),
    ("S118", "node A {\n  s: String\n  @check(s, «\"(\")\n}"),
    (
        "S119",
        "node A {\n  text: String\n  v: String «@embed(\"text\")\n}",
    ),
    (
        "S120",
        "node A {\n  n: I32\n  «v: Vector(3) @embed(\"n\")\n}",
    ),
    (
        "S120",
        "node A {\n  text: String\n  «v: Vector(3) @embed(\"txt\")\n}",
    ),
    (
        "S121",
        "node A {\n  t: String\n  v: Vector(3) @embed(\"t\", «dims=3)\n}",
    ),
    ("S121", "node A {\n  t: String\n  v: Vector(3) «@embed\n}"),
    ("S122", "node A { x: String }\nedge E: A -> A @card(«3..1)"),
    ("S122", "node A { x: String }\nedge E: A -> A @card(«0..0)"),
    ("S122", "node A { x: String }\nedge E: A -> A «@card(1)"),
    (
        "S123",
        "node A { x: String }\nedge E: A -> A {\n  w: I32\n  «@key(w)\n}",
    ),
    ("S123", "node A {\n  x: String\n  «@card(0..1)\n}"),
    ("S123", "interface I {\n  x: String\n  «@unique(x)\n}"),
    ("S124", "node A {\n  x: String\n  «@unique\n}"),
    ("S124", "node A {\n  x: String\n  «@index\n}"),
    ("S124", "node A {\n  x: String «@description(5)\n}"),
    ("S125", "node A { x: String @index «@index }"),
    ("S125", "node A { «x: String @key @default(\"a\") }"),
    ("S126", "node A { n: I32 @default(«\"x\") }"),
    ("S126", "node A { n: U32 @default(«-1) }"),
    ("S126", "node A { k: enum(a, b) @default(«c) }"),
    ("S127", "node A { x: String }\nedge «knows: A -> A"),
    (
        "S129",
        "interface I { x: String }\nnode A implements I, «I { y: String }",
    ),
];

#[test]
fn every_schema_case_reports_its_code_at_its_position() {
    assert!(CASES.len() >= 40, "keep at least 40 schema cases");
    let mut failures = Vec::new();
    for (code, case) in CASES {
        let (src, pos) = unmark(case);
        match compile_schema(&src) {
            Ok(_) => failures.push(format!("expected {code}, but the schema compiled:\n{case}")),
            Err(diags) => failures.extend(check_has(&diags, &src, code, pos, case).err()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_schema_error_has_a_message_and_most_have_a_remedy() {
    let mut with_help = 0;
    let mut total = 0;
    for (_, case) in CASES {
        let (src, _) = unmark(case);
        for d in compile_schema(&src).err().unwrap_or_default() {
            assert!(!d.message.is_empty(), "empty message for {}", d.code);
            total += 1;
            with_help += usize::from(d.help.is_some());
        }
    }
    // Syntax errors and a few self-explanatory rules carry no help line.
    assert!(
        with_help * 2 > total,
        "{with_help} of {total} diagnostics have help"
    );
}

#[test]
fn validation_reports_every_error_not_only_the_first() {
    let src =
        "node A implements Nope {\n  x: Strin\n  y: I32\n  @range(y, 9..1)\n}\nedge E: A -> B";
    let diags = compile_schema(src).expect_err("invalid");
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    for want in ["S104", "S107", "S116", "S105"] {
        assert!(codes.contains(&want), "{want} missing from {codes:?}");
    }
}
