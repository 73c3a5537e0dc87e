//! Every cookbook schema and every query beside it parses and type checks.
//! The test walks the directory, so a cookbook added later is covered too.

use omnigraph::query::compile_queries;
use omnigraph::schema::compile_schema_file;

use crate::support::{cookbooks, query_files};

#[test]
fn every_cookbook_schema_and_query_checks_clean() {
    let mut checked = 0;
    for book in cookbooks() {
        let schema_path = book.join("schema.pg");
        let src = std::fs::read_to_string(&schema_path).expect("read schema");
        let cat = compile_schema_file(&schema_path.display().to_string(), &src)
            .unwrap_or_else(|d| panic!("{}", d.render(false)));
        assert!(
            !cat.nodes.is_empty(),
            "{} declares no node types",
            schema_path.display()
        );
        let files = query_files(&book);
        assert!(!files.is_empty(), "{} has no queries", book.display());
        for f in files {
            let q = std::fs::read_to_string(&f).expect("read query");
            let compiled = compile_queries(&cat, &q);
            let errors = crate::support::errors(&compiled);
            assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
            assert_eq!(
                compiled.queries.len(),
                compiled.declared.len(),
                "{}: every declared query must check",
                f.display()
            );
            assert!(
                !compiled.queries.is_empty(),
                "{} declares no queries",
                f.display()
            );
            checked += compiled.queries.len();
        }
    }
    assert!(checked > 0);
}

#[test]
fn cookbook_catalogs_resolve_keys_edges_and_indexes() {
    for book in cookbooks() {
        let src = std::fs::read_to_string(book.join("schema.pg")).expect("read schema");
        let cat = omnigraph::schema::compile_schema(&src).expect("compiles");
        for e in cat.edges.values() {
            assert!(
                cat.node(&e.from).is_some(),
                "{}: endpoint {} resolves",
                e.name,
                e.from
            );
            assert!(
                cat.node(&e.to).is_some(),
                "{}: endpoint {} resolves",
                e.name,
                e.to
            );
        }
        for n in cat.nodes.values() {
            if let Some(key) = &n.key {
                for k in key {
                    let p = n.property(k).expect("key property exists");
                    assert!(!p.nullable, "{}.{k} key is not nullable", n.name);
                    assert!(n.is_indexed(k), "{}.{k}: a key implies an index", n.name);
                }
            }
        }
        // The compiled catalog round-trips through JSON (it is persisted).
        let json = serde_json::to_string(&cat).expect("serializes");
        let back: omnigraph::schema::Catalog = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, cat);
    }
}
