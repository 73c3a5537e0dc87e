//! Counters and gauges for `GET /metrics` (Prometheus text exposition
//! format 0.0.4: <https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the write-latency histogram buckets.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// (route pattern, status) → count.
    requests: BTreeMap<(String, u16), u64>,
    /// reason → count.
    rejections: BTreeMap<String, u64>,
    /// graph → write latency.
    writes: BTreeMap<String, Histogram>,
    /// graph → writers waiting for or holding their (table, branch) keys.
    queue_depth: BTreeMap<String, i64>,
    /// (graph, outcome) → read queries ended so.
    queries: BTreeMap<(String, &'static str), u64>,
    /// graph → read queries running now.
    running: BTreeMap<String, i64>,
}

/// The `outcome` label of `omnigraph_queries_total` for a query's result.
pub fn query_outcome<T>(r: &Result<T, crate::engine::EngineError>) -> &'static str {
    use crate::engine::EngineError as E;
    match r {
        Ok(_) => "ok",
        Err(E::Cancelled { .. }) => "cancelled",
        Err(E::Budget { .. }) => "budget",
        Err(E::Overloaded { .. }) => "overloaded",
        Err(_) => "error",
    }
}

/// The server's metrics; shared by every actor and handler.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// The admission accounting, read for the in-flight gauges
    /// ([`Metrics::watch_admission`]).
    admission: std::sync::OnceLock<omnigraph_sync::admission::Admission>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A read query counted in `omnigraph_queries_running` until dropped
/// ([`Metrics::query_running`]).
pub struct RunningQuery {
    metrics: std::sync::Arc<Metrics>,
    graph: String,
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        let g = std::mem::take(&mut self.graph);
        self.metrics.with(|i| {
            if let Some(n) = i.running.get_mut(&g) {
                *n -= 1;
            }
        });
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Counts one finished request by route pattern and status.
    pub fn request(&self, route: &str, status: u16) {
        self.with(|i| *i.requests.entry((route.to_string(), status)).or_default() += 1);
    }

    /// Counts one admission rejection (`inflight`, `bytes`, `too_large`,
    /// `rate`).
    pub fn rejection(&self, reason: &str) {
        self.with(|i| *i.rejections.entry(reason.to_string()).or_default() += 1);
    }

    /// Records one write's latency in seconds.
    pub fn write_latency(&self, graph: &str, seconds: f64) {
        self.with(|i| {
            let h = i.writes.entry(graph.to_string()).or_default();
            for (n, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[n] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        });
    }

    /// Moves a graph's write-queue depth by `delta`.
    pub fn queue(&self, graph: &str, delta: i64) {
        self.with(|i| *i.queue_depth.entry(graph.to_string()).or_default() += delta);
    }

    /// Counts one read query that ended with `outcome` (`ok`,
    /// `cancelled`, `budget`, `overloaded`, `error`). Counted where the
    /// query ran, so a query whose client went away is counted too.
    pub fn query_outcome(&self, graph: &str, outcome: &'static str) {
        self.with(|i| *i.queries.entry((graph.to_string(), outcome)).or_default() += 1);
    }

    /// Counts one read query of `graph` as running until the returned
    /// guard drops (when the query ends, however it ends).
    pub fn query_running(self: &std::sync::Arc<Self>, graph: &str) -> RunningQuery {
        self.with(|i| *i.running.entry(graph.to_string()).or_default() += 1);
        RunningQuery {
            metrics: self.clone(),
            graph: graph.to_string(),
        }
    }

    /// Reports `admission`'s requests and bytes in flight as
    /// `omnigraph_admission_inflight` (the first call wins).
    pub fn watch_admission(&self, admission: omnigraph_sync::admission::Admission) {
        let _ = self.admission.set(admission);
    }

    /// Total admission rejections so far.
    pub fn rejections_total(&self) -> u64 {
        self.with(|i| i.rejections.values().sum())
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        self.with(|i| {
            let mut out = String::new();
            out.push_str("# HELP omnigraph_http_requests_total HTTP requests by route and status.\n# TYPE omnigraph_http_requests_total counter\n");
            for ((route, status), n) in &i.requests {
                let _ = writeln!(
                    out,
                    "omnigraph_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    esc(route)
                );
            }
            out.push_str("# HELP omnigraph_admission_rejections_total Requests refused with 429 by reason.\n# TYPE omnigraph_admission_rejections_total counter\n");
            for (reason, n) in &i.rejections {
                let _ = writeln!(
                    out,
                    "omnigraph_admission_rejections_total{{reason=\"{}\"}} {n}",
                    esc(reason)
                );
            }
            out.push_str("# HELP omnigraph_write_seconds Write latency per graph, from queue entry to publish.\n# TYPE omnigraph_write_seconds histogram\n");
            for (g, h) in &i.writes {
                let g = esc(g);
                for (n, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "omnigraph_write_seconds_bucket{{graph=\"{g}\",le=\"{b}\"}} {}",
                        h.counts[n]
                    );
                }
                let _ = writeln!(
                    out,
                    "omnigraph_write_seconds_bucket{{graph=\"{g}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "omnigraph_write_seconds_sum{{graph=\"{g}\"}} {}", h.sum);
                let _ = writeln!(out, "omnigraph_write_seconds_count{{graph=\"{g}\"}} {}", h.count);
            }
            out.push_str("# HELP omnigraph_queries_total Read queries by graph and how they ended.\n# TYPE omnigraph_queries_total counter\n");
            for ((g, outcome), n) in &i.queries {
                let _ = writeln!(
                    out,
                    "omnigraph_queries_total{{graph=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(g)
                );
            }
            out.push_str("# HELP omnigraph_queries_running Read queries running now, by graph.\n# TYPE omnigraph_queries_running gauge\n");
            for (g, n) in &i.running {
                let _ = writeln!(out, "omnigraph_queries_running{{graph=\"{}\"}} {n}", esc(g));
            }
            if let Some(a) = self.admission.get() {
                let (requests, bytes) = a.totals();
                let _ = writeln!(
                    out,
                    "# HELP omnigraph_admission_inflight Admitted requests not yet finished, and the bytes charged for them, over every actor.\n# TYPE omnigraph_admission_inflight gauge\nomnigraph_admission_inflight{{kind=\"requests\"}} {requests}\nomnigraph_admission_inflight{{kind=\"bytes\"}} {bytes}"
                );
            }
            let pool = crate::engine::budget::pool();
            let _ = writeln!(
                out,
                "# HELP omnigraph_query_memory_bytes Bytes held by running queries, and the pool's cap.\n# TYPE omnigraph_query_memory_bytes gauge\nomnigraph_query_memory_bytes{{kind=\"used\"}} {}\nomnigraph_query_memory_bytes{{kind=\"cap\"}} {}",
                pool.used(),
                pool.cap()
            );
            out.push_str("# HELP omnigraph_write_queue_depth Writes waiting for or holding their (table, branch) keys.\n# TYPE omnigraph_write_queue_depth gauge\n");
            for (g, d) in &i.queue_depth {
                let _ = writeln!(out, "omnigraph_write_queue_depth{{graph=\"{}\"}} {d}", esc(g));
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("/graphs/{id}/query", 200);
        m.request("/graphs/{id}/query", 200);
        m.rejection("inflight");
        m.write_latency("g", 0.02);
        m.queue("g", 1);
        let m = std::sync::Arc::new(m);
        let running = m.query_running("g");
        let adm = omnigraph_sync::admission::Admission::new(Default::default());
        m.watch_admission(adm.clone());
        let permit = adm.try_admit("alice", 7).expect("admitted");
        let t = m.render();
        assert!(
            t.contains("omnigraph_queries_running{graph=\"g\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("omnigraph_admission_inflight{kind=\"requests\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("omnigraph_admission_inflight{kind=\"bytes\"} 7"),
            "{t}"
        );
        drop((running, permit));
        let after = m.render();
        assert!(
            after.contains("omnigraph_queries_running{graph=\"g\"} 0"),
            "{after}"
        );
        assert!(
            after.contains("omnigraph_admission_inflight{kind=\"requests\"} 0"),
            "{after}"
        );
        assert!(
            t.contains(
                "omnigraph_http_requests_total{route=\"/graphs/{id}/query\",status=\"200\"} 2"
            ),
            "{t}"
        );
        assert!(t.contains("omnigraph_admission_rejections_total{reason=\"inflight\"} 1"));
        assert!(t.contains("omnigraph_write_seconds_bucket{graph=\"g\",le=\"0.01\"} 0"));
        assert!(t.contains("omnigraph_write_seconds_bucket{graph=\"g\",le=\"0.025\"} 1"));
        assert!(t.contains("omnigraph_write_queue_depth{graph=\"g\"} 1"));
        assert_eq!(m.rejections_total(), 1);
    }
}
