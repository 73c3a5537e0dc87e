//! Unit tests of the loader: parsing, validation, chunked reads.

use super::*;

const SCHEMA: &str = "node Person {\n    name: String @key\n    age: I32?\n}\n\
                      edge Knows: Person -> Person\n";

fn catalog() -> Catalog {
    omnigraph_lang::schema::compile_schema_file("t.pg", SCHEMA).expect("schema compiles")
}

/// `n` person lines; `bad` maps a 1-based line number to its text.
fn lines(n: usize, bad: &[(usize, &str)]) -> String {
    (1..=n)
        .map(|line| match bad.iter().find(|(l, _)| *l == line) {
            Some((_, text)) => format!("{text}\n"),
            None => format!(
                "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{line}\",\"age\":{}}}}}\n",
                line % 90
            ),
        })
        .collect()
}

fn errors_of(r: Result<Staged, Vec<LoadError>>) -> Vec<(usize, Option<String>, String)> {
    r.err()
        .expect("errors")
        .into_iter()
        .map(|e| (e.line, e.field, e.message))
        .collect()
}

#[test]
fn parallel_parse_equals_one_line_after_another() {
    let cat = catalog();
    // Errors and duplicates on both sides of block and chunk boundaries:
    // a duplicate of line 11 far after it, one across the first block
    // boundary (32,768), an unknown type, bad JSON, an edge line.
    let text = lines(
        40_000,
        &[
            (5_000, r#"{"type":"Person","data":{"name":"p11","age":1}}"#),
            (32_769, r#"{"type":"Person","data":{"name":"p32768"}}"#),
            (20_001, r#"{"type":"Persn","data":{"name":"x"}}"#),
            (20_002, "{not json"),
            (20_003, ""),
            (39_999, r#"{"edge":"Knows","from":"p1","to":"p2"}"#),
        ],
    );
    let one = errors_of(parse_with_threads(&cat, text.as_bytes(), 1));
    let four = errors_of(parse_with_threads(&cat, text.as_bytes(), 4));
    assert_eq!(one, four);
    let lines_and_fields: Vec<(usize, Option<&str>)> =
        one.iter().map(|(l, f, _)| (*l, f.as_deref())).collect();
    assert_eq!(
        lines_and_fields,
        [
            (5_000, Some("name")),
            (20_001, Some("type")),
            (20_002, None),
            (32_769, Some("name"))
        ]
    );
    assert!(
        one[0].2.contains("already appears on line 11"),
        "{}",
        one[0].2
    );
    assert!(
        one[3].2.contains("already appears on line 32768"),
        "{}",
        one[3].2
    );

    // Without the bad lines: the same rows, in file order, either way.
    let good = lines(
        40_000,
        &[(39_999, r#"{"edge":"Knows","from":"p1","to":"p2"}"#)],
    );
    let a = parse_with_threads(&cat, good.as_bytes(), 1).expect("parses");
    let b = parse_with_threads(&cat, good.as_bytes(), 4).expect("parses");
    assert_eq!(a.nodes, b.nodes);
    let (ea, eb) = (&a.edges["Knows"], &b.edges["Knows"]);
    assert_eq!((ea.len(), eb.len()), (1, 1));
    assert_eq!(
        (&ea[0].src, &ea[0].dst, ea[0].line),
        (&eb[0].src, &eb[0].dst, eb[0].line)
    );
    let people = &a.nodes["Person"];
    assert_eq!(people.len(), 39_999);
    assert!(people.windows(2).all(|w| w[0].line < w[1].line));
    assert_eq!(people[0].id, "p1");
}

#[test]
fn given_edge_ids_are_checked_and_fresh_ones_are_unique() {
    let cat = catalog();
    let knows = |id: Option<&str>| match id {
        Some(id) => {
            format!(r#"{{"edge":"Knows","from":"p1","to":"p2","data":{{"id":"{id}"}}}}"#)
        }
        None => r#"{"edge":"Knows","from":"p1","to":"p2"}"#.to_string(),
    };
    let (e1, e2, fresh) = (knows(Some("e1")), knows(Some("e1")), knows(None));
    let text = lines(5_000, &[(2_000, &e1), (4_000, &e2), (4_500, &fresh)]);
    for threads in [1, 4] {
        let errs = errors_of(parse_with_threads(&cat, text.as_bytes(), threads));
        assert_eq!(errs.len(), 1, "threads {threads}: {errs:?}");
        assert_eq!((errs[0].0, errs[0].1.as_deref()), (4_000, Some("id")));
        assert!(
            errs[0]
                .2
                .contains("duplicate edge id `e1` (first on line 2000)")
        );
    }
    // Edges without an id get distinct fresh ids.
    let many: Vec<(usize, &str)> = (1..=3_000).map(|l| (l, fresh.as_str())).collect();
    let staged = parse_with_threads(&cat, lines(3_000, &many).as_bytes(), 4).expect("parses");
    let ids: HashSet<&str> = staged.edges["Knows"]
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids.len(), 3_000);
}

#[test]
fn errors_stop_at_the_cap_in_line_order() {
    let cat = catalog();
    let bad: Vec<(usize, String)> = (1..=5_000)
        .filter(|l| l % 7 == 0)
        .map(|l| {
            (
                l,
                format!(r#"{{"type":"Person","data":{{"name":"x{l}","age":"old"}}}}"#),
            )
        })
        .collect();
    let bad: Vec<(usize, &str)> = bad.iter().map(|(l, t)| (*l, t.as_str())).collect();
    let text = lines(5_000, &bad);
    for threads in [1, 2, 8] {
        let errs = errors_of(parse_with_threads(&cat, text.as_bytes(), threads));
        assert_eq!(errs.len(), MAX_ERRORS, "threads {threads}");
        let got: Vec<usize> = errs.iter().map(|e| e.0).collect();
        let want: Vec<usize> = (1..).map(|k| 7 * k).take(MAX_ERRORS).collect();
        assert_eq!(got, want, "threads {threads}");
        assert!(errs.iter().all(|e| e.1.as_deref() == Some("age")));
    }
}
