//! Read queries against an independent oracle: random small graphs, random
//! queries (bindings with property matches, directed and undirected
//! traversals with hop bounds, edge bindings with edge properties, filters
//! including list `contains`, negation, `count`/`sum`/`avg`/`min`/`max` with
//! grouping, order, limit),
//! and the engine's rows must equal what a direct evaluation of the
//! reference semantics gives. `OMNIGRAPH_ORACLE_GRAPHS` graphs × 50 queries.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{Graph, ReadAt};
use omnigraph::query::compile_queries;
use proptest::prelude::*;

const SCHEMA: &str = "node P {\n  key: String @key\n  a: I32?\n  b: String?\n  tags: [String]?\n}\nedge E: P -> P { w: I32? }\nedge F: P -> P\n";

#[derive(Debug, Clone)]
struct Node {
    key: String,
    a: Option<i32>,
    b: Option<&'static str>,
    tags: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct TestGraph {
    nodes: Vec<Node>,
    e: Vec<(usize, usize)>,
    /// The `w` of each `e` edge.
    w: Vec<Option<i32>>,
    f: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct Trav {
    undirected: bool,
    min: u32,
    max: u32,
}

#[derive(Debug, Clone)]
struct Q {
    x_a: Option<i32>,
    trav: Option<Trav>,
    y_b: Option<&'static str>,
    x_a_gt: Option<i32>,
    not_f: bool,
    aggregate: Option<Agg>,
    /// `$x.tags contains "<tag>"`.
    tag: Option<&'static str>,
    /// Bind the edge of a single forward hop as `$k` and return `$k.w`.
    edge_bind: bool,
    limit: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Agg {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl Agg {
    fn name(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }

    /// The aggregate of the present values, as the engine prints it.
    fn apply(self, vals: &[Option<i32>]) -> String {
        let present: Vec<i64> = vals.iter().flatten().map(|&v| i64::from(v)).collect();
        match self {
            Agg::Count => present.len().to_string(),
            Agg::Sum => present.iter().sum::<i64>().to_string(),
            Agg::Avg if present.is_empty() => "null".into(),
            Agg::Avg => {
                serde_json::Value::from(present.iter().sum::<i64>() as f64 / present.len() as f64)
                    .to_string()
            }
            Agg::Min => present
                .iter()
                .min()
                .map_or("null".into(), |v| v.to_string()),
            Agg::Max => present
                .iter()
                .max()
                .map_or("null".into(), |v| v.to_string()),
        }
    }
}

const BS: [Option<&str>; 4] = [Some("x"), Some("y"), Some("z"), None];

fn graph() -> impl Strategy<Value = TestGraph> {
    (1usize..8).prop_flat_map(|n| {
        (
            prop::collection::vec(
                (
                    prop::option::of(0i32..4),
                    0usize..4,
                    prop::option::of(prop::collection::vec(0usize..3, 0..3)),
                ),
                n,
            ),
            prop::collection::vec((0..n, 0..n), 0..(n * 2)),
            prop::collection::vec(prop::option::of(0i32..5), n * 2),
            prop::collection::vec((0..n, 0..n), 0..n),
        )
            .prop_map(|(props, e, ws, f)| {
                let e: Vec<(usize, usize)> =
                    e.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
                TestGraph {
                    nodes: props
                        .into_iter()
                        .enumerate()
                        .map(|(i, (a, b, tags))| Node {
                            key: format!("k{i}"),
                            a,
                            b: BS[b],
                            tags: tags.map(|t| t.into_iter().filter_map(|j| BS[j]).collect()),
                        })
                        .collect(),
                    w: ws.into_iter().take(e.len()).collect(),
                    e,
                    f,
                }
            })
    })
}

fn query() -> impl Strategy<Value = Q> {
    (
        prop::option::of(0i32..4),
        prop::option::of((any::<bool>(), 0u32..3, 1u32..4)),
        prop::option::of(0usize..3),
        prop::option::of(0i32..4),
        any::<bool>(),
        prop::option::of(0usize..5),
        prop::option::of(0usize..3),
        any::<bool>(),
        prop::option::of(1usize..5),
    )
        .prop_map(
            |(x_a, t, y_b, x_a_gt, not_f, agg, tag, edge_bind, limit)| Q {
                x_a,
                trav: t.map(|(undirected, min, span)| Trav {
                    undirected,
                    min,
                    max: min.max(1) + span - 1,
                }),
                y_b: y_b.and_then(|i| BS[i]),
                x_a_gt,
                not_f,
                aggregate: agg.map(|i| [Agg::Count, Agg::Sum, Agg::Avg, Agg::Min, Agg::Max][i]),
                tag: tag.and_then(|i| BS[i]),
                // An edge binding is a single forward hop.
                edge_bind: edge_bind
                    && t.is_some_and(|(u, min, span)| !u && min.max(1) + span - 1 == 1 && min == 1),
                limit,
            },
        )
}

fn source(q: &Q) -> String {
    let mut m = String::from("$x: P");
    if let Some(a) = q.x_a {
        m += &format!(" {{ a: {a} }}");
    }
    m += "\n";
    if let Some(gt) = q.x_a_gt {
        m += &format!("$x.a > {gt}\n");
    }
    if let Some(t) = q.tag {
        m += &format!("$x.tags contains \"{t}\"\n");
    }
    if q.edge_bind {
        m += "$x $k:e $y\n";
        if let Some(b) = q.y_b {
            m += &format!("$y.b = \"{b}\"\n");
        }
    } else if let Some(t) = &q.trav {
        let e = if t.undirected {
            "<e>".to_string()
        } else {
            "e".to_string()
        };
        m += &format!("$x {e}{{{},{}}} $y\n", t.min, t.max);
        if let Some(b) = q.y_b {
            m += &format!("$y.b = \"{b}\"\n");
        }
    }
    if q.not_f {
        m += "not { $x f $_ }\n";
    }
    let agg = |a: Agg, var: &str, prop: &str| match a {
        // An edge variable cannot be counted bare; its target counts the same rows.
        Agg::Count if var == "k" => "count($y)".to_string(),
        Agg::Count => format!("count(${var})"),
        other => format!("{}(${var}.{prop})", other.name()),
    };
    let (ret, order) = match (&q.trav, q.aggregate) {
        (Some(_), Some(a)) if q.edge_bind => {
            (format!("$x.key as xk, {} as n", agg(a, "k", "w")), "xk")
        }
        (Some(_), Some(a)) => (format!("$x.key as xk, {} as n", agg(a, "y", "a")), "xk"),
        (Some(_), None) if q.edge_bind => {
            ("$x.key as xk, $y.key as yk, $k.w as kw".into(), "xk, yk")
        }
        (Some(_), None) => ("$x.key as xk, $y.key as yk".into(), "xk, yk"),
        (None, Some(a)) => (format!("$x.b as bk, {} as n", agg(a, "x", "a")), "bk"),
        (None, None) => ("$x.key as xk".into(), "xk"),
    };
    let limit = q.limit.map(|l| format!(" limit {l}")).unwrap_or_default();
    format!("query q() {{ match {{\n{m}}} return {{ {ret} }} order {{ {order} }}{limit} }}")
}

/// Nodes reported for source `s`: shortest-path distance within bounds, plus
/// a node whose self-loop is followed at a hop within bounds (reference:
/// each destination once per source; visited nodes are not revisited).
fn reach(g: &TestGraph, s: usize, t: &Trav) -> BTreeSet<usize> {
    let n = g.nodes.len();
    let neighbours = |u: usize| -> Vec<usize> {
        let mut v: Vec<usize> =
            g.e.iter()
                .filter(|(a, _)| *a == u)
                .map(|(_, b)| *b)
                .collect();
        if t.undirected {
            v.extend(g.e.iter().filter(|(_, b)| *b == u).map(|(a, _)| *a));
        }
        v
    };
    let mut dist = vec![u32::MAX; n];
    dist[s] = 0;
    let mut q = VecDeque::from([s]);
    while let Some(u) = q.pop_front() {
        for v in neighbours(u) {
            if dist[v] == u32::MAX {
                dist[v] = dist[u] + 1;
                q.push_back(v);
            }
        }
    }
    let mut out = BTreeSet::new();
    for v in 0..n {
        if dist[v] != u32::MAX && dist[v] >= t.min && dist[v] <= t.max {
            out.insert(v);
        }
        let self_loop = neighbours(v).contains(&v);
        if self_loop && dist[v] != u32::MAX && dist[v] < t.max && dist[v] + 1 >= t.min {
            out.insert(v);
        }
    }
    out
}

fn oracle(g: &TestGraph, q: &Q) -> Vec<Vec<String>> {
    let xs: Vec<usize> = (0..g.nodes.len())
        .filter(|&i| q.x_a.is_none_or(|a| g.nodes[i].a == Some(a)))
        .filter(|&i| {
            q.x_a_gt
                .is_none_or(|gt| g.nodes[i].a.is_some_and(|a| a > gt))
        })
        .filter(|&i| !q.not_f || !g.f.iter().any(|(a, _)| *a == i))
        .filter(|&i| {
            q.tag
                .is_none_or(|t| g.nodes[i].tags.as_ref().is_some_and(|ts| ts.contains(&t)))
        })
        .collect();
    let key = |i: usize| g.nodes[i].key.clone();
    let mut rows: Vec<Vec<String>> = match (&q.trav, q.aggregate) {
        (None, None) => xs.iter().map(|&x| vec![key(x)]).collect(),
        (None, Some(agg)) => {
            let mut groups: BTreeMap<String, Vec<Option<i32>>> = BTreeMap::new();
            for &x in &xs {
                let v = match agg {
                    Agg::Count => Some(0),
                    _ => g.nodes[x].a,
                };
                groups
                    .entry(g.nodes[x].b.map_or("null".into(), |b| format!("\"{b}\"")))
                    .or_default()
                    .push(v);
            }
            groups
                .into_iter()
                .map(|(b, vals)| vec![b, agg.apply(&vals)])
                .collect()
        }
        (Some(t), agg) => {
            // (x, y, w of the bound edge)
            let mut triples: Vec<(usize, usize, Option<i32>)> = Vec::new();
            for &x in &xs {
                if q.edge_bind {
                    for (i, &(a, y)) in g.e.iter().enumerate() {
                        if a == x && q.y_b.is_none_or(|b| g.nodes[y].b == Some(b)) {
                            triples.push((x, y, g.w.get(i).copied().flatten()));
                        }
                    }
                    continue;
                }
                for y in reach(g, x, t) {
                    if q.y_b.is_none_or(|b| g.nodes[y].b == Some(b)) {
                        triples.push((x, y, None));
                    }
                }
            }
            match agg {
                Some(agg) => {
                    let mut groups: BTreeMap<String, Vec<Option<i32>>> = BTreeMap::new();
                    for (x, y, w) in triples {
                        let v = match agg {
                            Agg::Count => Some(0),
                            _ if q.edge_bind => w,
                            _ => g.nodes[y].a,
                        };
                        groups.entry(key(x)).or_default().push(v);
                    }
                    groups
                        .into_iter()
                        .map(|(k, vals)| vec![k, agg.apply(&vals)])
                        .collect()
                }
                None => triples
                    .into_iter()
                    .map(|(x, y, w)| {
                        let mut r = vec![key(x), key(y)];
                        if q.edge_bind {
                            r.push(w.map_or("null".into(), |w| w.to_string()));
                        }
                        r
                    })
                    .collect(),
            }
        }
    };
    // Keys are `k<digit>` and unique per row, so string order is the order.
    rows.sort_by(|a, b| {
        let null_first = |s: &String| if s == "null" { 0 } else { 1 };
        (null_first(&a[0]), &a[0], &a.get(1)).cmp(&(null_first(&b[0]), &b[0], &b.get(1)))
    });
    if let Some(l) = q.limit {
        rows.truncate(l);
    }
    rows
}

fn jsonl(g: &TestGraph) -> String {
    let mut out = String::new();
    for n in &g.nodes {
        let mut d = serde_json::json!({"key": n.key});
        if let Some(a) = n.a {
            d["a"] = a.into();
        }
        if let Some(t) = &n.tags {
            d["tags"] = serde_json::json!(t);
        }
        if let Some(b) = n.b {
            d["b"] = b.into();
        }
        out += &serde_json::json!({"type": "P", "data": d}).to_string();
        out.push('\n');
    }
    for (name, edges) in [("E", &g.e), ("F", &g.f)] {
        for (i, (a, b)) in edges.iter().enumerate() {
            let mut e =
                serde_json::json!({"edge": name, "from": g.nodes[*a].key, "to": g.nodes[*b].key});
            if name == "E"
                && let Some(Some(w)) = g.w.get(i)
            {
                e["data"] = serde_json::json!({ "w": w });
            }
            out += &e.to_string();
            out.push('\n');
        }
    }
    out
}

fn engine_rows(rt: &tokio::runtime::Runtime, graph: &Graph, src: &str) -> Vec<Vec<String>> {
    let compiled = compile_queries(&graph.catalog(), src);
    assert!(!compiled.has_errors(), "{src}\n{:#?}", compiled.diagnostics);
    let q = &compiled.queries[0];
    let r = rt
        .block_on(graph.query(q, &serde_json::Value::Null, &ReadAt::Branch("main".into())))
        .unwrap_or_else(|e| panic!("{src}: {e}"));
    r.rows
        .iter()
        .map(|row| {
            r.columns
                .iter()
                .map(|c| match &row[c] {
                    serde_json::Value::String(s) if c == "bk" => format!("\"{s}\""),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn graphs() -> u32 {
    std::env::var("OMNIGRAPH_ORACLE_GRAPHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: graphs(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_oracle(g in graph(), qs in prop::collection::vec(query(), 50)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let tmp = tempfile::tempdir().expect("tmp");
        let graph = rt.block_on(Graph::init(tmp.path().join("g").to_str().expect("utf8"), "p.pg", SCHEMA)).expect("init");
        rt.block_on(graph.load(std::io::Cursor::new(jsonl(&g).into_bytes()), LoadMode::Overwrite, "main", None, "oracle")).expect("load");
        let mut seen = HashSet::new();
        for q in &qs {
            let src = source(q);
            if !seen.insert(src.clone()) {
                continue;
            }
            let want = oracle(&g, q);
            let got = engine_rows(&rt, &graph, &src);
            prop_assert_eq!(got, want, "query:\n{}\ngraph: {:?}", src, g);
        }
    }
}
