#!/usr/bin/env python3
"""Prints `scripts/bench`'s tables (ours, the peer's, the ratio) from
ours.json (omnigraph-bench suite) and peers.json (bench_peers.py), and
writes the combined results.

Usage: bench_report.py OURS.json PEERS.json RESULTS.json [HISTORY.jsonl]

Ratios are ours ÷ peer: for rows/s and requests/s above 1 means we are
faster; for milliseconds below 1 means we are faster. RESULTS.json gets
{"date", "machine", "ours", "peers"}; the same object is appended as one
line to HISTORY.jsonl, for tracking over time.
"""

import datetime
import json
import os
import platform
import sys



def median(xs):
    """The middle value of a list of numbers (the upper one of two), or None."""
    if not xs:
        return None
    xs = sorted(xs)
    return xs[len(xs) // 2]

def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        if v != v:  # NaN
            return "—"
        if abs(v) >= 1000:
            return f"{v:,.0f}{unit}"
        if abs(v) >= 10:
            return f"{v:.1f}{unit}"
        return f"{v:.2f}{unit}"
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v}{unit}"


def ratio(a, b):
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}×"


def table(title, header, rows):
    print(f"\n## {title}\n")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": platform.platform()}


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    ours, peers = load(argv[1]), load(argv[2])
    kz, pl = peers.get("kuzu", {}), peers.get("pylance", {})
    wl = ours.get("workload", {})
    nodes = sum(wl.get(k, 0) for k in ("persons", "companies", "tags"))
    edges = sum(wl.get(k, 0) for k in ("knows", "works_at", "tagged"))
    print(
        f"# omnigraph-bench: {nodes:,} nodes, {edges:,} edges; ours built {ours.get('profile')}; "
        f"peers {', '.join(f'{k} {v}' for k, v in peers.get('versions', {}).items())}"
    )
    print("ratio = ours ÷ peer (rows/s, req/s: above 1 is faster; ms: below 1 is faster)")

    o, k, p = get(ours, "load", "rows_per_s"), get(kz, "load", "rows_per_s"), get(pl, "load", "rows_per_s")
    table(
        "Bulk load (rows/s, nodes + edges)",
        ["ours", "kuzu", "ratio", "pylance (raw Lance)", "ratio"],
        [[fmt(o), fmt(k), ratio(o, k), fmt(p), ratio(o, p)]],
    )
    o, p = get(ours, "scan", "rows_per_s"), get(pl, "scan", "rows_per_s")
    table(
        "Full scan (rows/s; ours exports every row as JSONL)",
        ["ours", "pylance (raw Lance)", "ratio"],
        [[fmt(o), fmt(p), ratio(o, p)]],
    )
    rows = []
    for q in ("key", "hop1", "hop2", "hop3", "text"):
        a, b = get(ours, "reads", q) or {}, get(kz, "reads", q) or {}
        rows.append([
            q,
            fmt(a.get("p50_ms")), fmt(b.get("p50_ms")), ratio(a.get("p50_ms"), b.get("p50_ms")),
            fmt(a.get("p99_ms")), fmt(b.get("p99_ms")), ratio(a.get("p99_ms"), b.get("p99_ms")),
            fmt(a.get("mean_rows")), fmt(b.get("mean_rows")),
        ])
    table(
        "Reads, embedded (ms; warm; same keys and semantics)",
        ["query", "ours p50", "kuzu p50", "ratio", "ours p99", "kuzu p99", "ratio", "ours rows", "kuzu rows"],
        rows,
    )
    rows = []
    for name, w in sorted((ours.get("writes_embedded") or {}).items(),
                          key=lambda kv: kv[1].get("history_commits", 0)):
        ops = w.get("ops_per_write", {})
        rows.append([
            f"embedded, {w.get('history_commits'):,} commits of history",
            fmt(w.get("p50_ms")), fmt(w.get("p99_ms")), fmt(w.get("requests_per_write")),
            fmt(median(w.get("requests_each"))),
            f"{w.get('requests_min')}–{w.get('requests_max')}",
            " ".join(f"{k.upper()} {fmt(v)}" for k, v in ops.items() if v),
            fmt(w.get("upkeep_drain_ms")),
            fmt(w.get("write_only_requests_median")),
        ])
    h = ours.get("writes_http") or {}
    rows.append(["HTTP (server, one connection per request)", fmt(h.get("p50_ms")), fmt(h.get("p99_ms")), "", "", "", "", "", ""])
    table(
        "Warm single-row insert (ms; storage requests per write counted by the metering store; "
        "mean includes the index upkeep and compaction every few writes, median is the typical write)",
        ["where", "p50", "p99", "requests/write (mean)", "median", "min–max", "per write",
         "upkeep drained first (ms)", "alone (median)"],
        rows,
    )
    by_history = sorted((ours.get("writes_embedded") or {}).values(),
                        key=lambda w: w.get("history_commits", 0))
    # The write path's own requests: the writes measured alone, once the
    # upkeep drained (the upkeep that overlaps a write now and then makes
    # the other figures depend on where its cycles fall in the window).
    counts = [median(w.get("write_only_requests_each") or w.get("requests_each"))
              for w in by_history]
    if len(counts) >= 2 and None not in counts:
        # The typical write at the deepest history costs no more than at
        # the shallowest (2 requests of slack).
        flat = counts[-1] <= counts[0] + 2
        print(f"\nstorage requests per write {'do not grow' if flat else 'GROW'} with history: {counts}")
    r = ours.get("http_reads") or {}
    table(
        "HTTP key lookups, concurrent clients (requests/s)",
        ["clients", "seconds", "requests/s", "failed"],
        [[r.get("clients"), fmt(r.get("seconds")), fmt(r.get("requests_per_s")), r.get("failed")]],
    )
    i = ours.get("isolation")
    if i:
        rows = [["alone", fmt(i["light_alone_p50_ms"]), fmt(i["light_alone_p99_ms"]), "", ""]]
        if "light_flood_other_p50_ms" in i:
            rows.append(["flood into another type", fmt(i["light_flood_other_p50_ms"]),
                         fmt(i["light_flood_other_p99_ms"]), fmt(i["heavy_other_rows_per_s"]), ""])
        rows.append(["flood into the same type", fmt(i["light_flood_p50_ms"]), fmt(i["light_flood_p99_ms"]),
                     fmt(i["heavy_rows_per_s"]), i["heavy_429"]])
        table(
            "Actor isolation (4 light writers vs 1 flooding loader; ms, rows/s)",
            ["phase", "light p50", "light p99", "heavy rows/s", "heavy 429s"],
            rows,
        )
    gc = ours.get("group_commit")
    if gc:
        rows = []
        for label, key in [("1 caller, 1 node type", "one_caller"),
                           ("16 callers, 1 node type", "same_type"),
                           ("8 callers, 8 node types", "own_type")]:
            f = gc[key]
            speed = {"same_type": gc.get("same_type_speedup"),
                     "own_type": gc.get("own_type_speedup")}.get(key)
            rows.append([label, fmt(f["commits_per_s"]), fmt(speed) if speed else "1", fmt(f["p50_ms"]),
                         fmt(f["p99_ms"]), f["failed"],
                         fmt(f.get("server_cpu_ms_per_commit", 0)), fmt(f.get("server_cores", 0)),
                         fmt(f.get("client_cores", 0))])
        table(
            "Group commit (single-row inserts through the server; commits/s, ms; server CPU per commit, cores busy)",
            ["callers", "commits/s", "× one caller", "p50", "p99", "failed",
             "server CPU ms/commit", "server cores", "caller cores"],
            rows,
        )
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "ours": ours,
        "peers": peers,
    }
    with open(argv[3], "w") as f:
        json.dump(result, f, indent=2)
    if len(argv) > 4:
        with open(argv[4], "a") as f:
            f.write(json.dumps(result) + "\n")
    print(f"\nresults: {argv[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
