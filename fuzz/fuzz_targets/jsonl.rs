//! JSONL load input → decode against every catalog; when it decodes,
//! validate it as each load mode would (against an empty branch), and
//! round-trip every column through Arrow: `cell_at(column(cells), i)` must
//! give back each cell, and `to_json` / `from_json` must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnigraph_data::load::{Existing, LoadMode, Row, parse, validate_graph};
use omnigraph_data::values::{Cell, cell_at, column, from_json, to_json};
use omnigraph_lang::schema::Property;

#[path = "common.rs"]
mod common;

fn round_trip(props: &[Property], rows: &[Row]) {
    for (i, p) in props.iter().enumerate() {
        let cells: Vec<Cell> = rows
            .iter()
            .filter_map(|r| r.cells.get(i).cloned())
            .collect();
        if cells.len() != rows.len() {
            continue;
        }
        let array = column(&cells, &p.ty);
        for (j, c) in cells.iter().enumerate() {
            assert_eq!(
                &cell_at(array.as_ref(), j, &p.ty),
                c,
                "arrow round trip of {}",
                p.name
            );
            if *c != Cell::Null {
                let back = from_json(&to_json(c), &p.ty, p.nullable);
                assert_eq!(back.as_ref().ok(), Some(c), "json round trip of {}", p.name);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for catalog in common::catalogs() {
        let staged = match parse(catalog, data) {
            Ok(s) => s,
            Err(errors) => {
                // What the user reads: every error formats.
                for e in errors {
                    let _ = e.to_string();
                }
                continue;
            }
        };
        for mode in [LoadMode::Overwrite, LoadMode::Append, LoadMode::Merge] {
            let _ = validate_graph(catalog, &staged, &Existing::default(), mode);
        }
        for (name, rows) in &staged.nodes {
            if let Some(n) = catalog.node(name) {
                round_trip(&n.properties, rows);
            }
        }
        for (name, rows) in &staged.edges {
            if let Some(e) = catalog.edge(name) {
                round_trip(&e.properties, rows);
            }
        }
    }
});
