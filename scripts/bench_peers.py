#!/usr/bin/env python3
"""The peers' half of `scripts/bench`, on the workload `omnigraph-bench gen`
wrote (its CSV files, keys.txt):

- kuzu (an embedded graph database, from PyPI): bulk load with COPY FROM
  the CSV files, then key lookup p50/p99 and 1-, 2-, 3-hop expansion p50
  with the same keys and the same semantics as our queries (the people
  first reached at exactly N hops: `SHORTEST 1..N` with `length(p) = N`).
- pylance (Lance's Python binding, the substrate we store in): the same
  rows written as plain Lance datasets (the CSV is parsed before the clock
  starts), then scanned back; the limit for our load and scan throughput.

Usage: bench_peers.py WORKLOAD_DIR OUT.json [--skip-kuzu] [--skip-lance]
Prints progress to stderr; writes {"kuzu": {...}, "pylance": {...},
"versions": {...}} to OUT.json.
"""

import json
import os
import shutil
import sys
import tempfile
import time


def pct(lat, p):
    s = sorted(lat)
    if not s:
        return float("nan")
    i = round((len(s) - 1) * p)
    return s[min(i, len(s) - 1)]


def summary(lat, rows=None):
    out = {"runs": len(lat), "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
    if rows is not None:
        out["mean_rows"] = rows / max(len(lat), 1)
    return out


NODE_TABLES = [
    ("Person", "person.csv", "key STRING, name STRING, age INT64, bio STRING, PRIMARY KEY(key)"),
    ("Company", "company.csv", "key STRING, name STRING, PRIMARY KEY(key)"),
    ("Tag", "tag.csv", "key STRING, label STRING, PRIMARY KEY(key)"),
]
REL_TABLES = [
    ("Knows", "knows.csv", "FROM Person TO Person"),
    ("WorksAt", "works_at.csv", "FROM Person TO Company"),
    ("Tagged", "tagged.csv", "FROM Person TO Tag"),
]


def lines(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def workload_rows(wl):
    return sum(wl[k] for k in ("persons", "companies", "tags", "knows", "works_at", "tagged"))


def run_kuzu(work, wl, keys):
    import kuzu

    tmp = tempfile.mkdtemp(prefix="bench-kuzu-")
    try:
        db = kuzu.Database(os.path.join(tmp, "db"))
        conn = kuzu.Connection(db)
        t = time.perf_counter()
        for name, _, cols in NODE_TABLES:
            conn.execute(f"CREATE NODE TABLE {name}({cols})")
        for name, _, ends in REL_TABLES:
            conn.execute(f"CREATE REL TABLE {name}({ends})")
        for name, f, _ in NODE_TABLES + REL_TABLES:
            conn.execute(f"COPY {name} FROM '{os.path.join(work, f)}' (HEADER=true)")
        secs = time.perf_counter() - t
        rows = workload_rows(wl)
        out = {"load": {"rows": rows, "seconds": secs, "rows_per_s": rows / secs}}
        print(f"kuzu load: {rows} rows in {secs:.1f} s", file=sys.stderr)

        queries = {
            "key": ("MATCH (a:Person {key: $k}) RETURN a.key, a.name, a.age", 1000),
            "hop1": ("MATCH (a:Person {key: $k})-[:Knows]->(b:Person) RETURN DISTINCT b.key", 200),
        }
        for h in (2, 3):
            queries[f"hop{h}"] = (
                f"MATCH p = (a:Person {{key: $k}})-[:Knows* SHORTEST 1..{h}]->(b:Person) "
                f"WHERE length(p) = {h} RETURN DISTINCT b.key",
                200,
            )
        reads = {}
        for name, (q, runs) in queries.items():
            t = time.perf_counter()
            r = conn.execute(q, {"k": keys[0]})
            r.get_all()
            first = (time.perf_counter() - t) * 1e3
            lat, rows = [], 0
            for i in range(runs):
                t = time.perf_counter()
                r = conn.execute(q, {"k": keys[i % len(keys)]})
                got = r.get_all()
                lat.append((time.perf_counter() - t) * 1e3)
                rows += len(got)
            s = summary(lat, rows)
            s["first_ms"] = first
            reads[name] = s
            print(f"kuzu {name}: {s}", file=sys.stderr)
        out["reads"] = reads
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_lance(work, wl):
    import lance
    import pyarrow.csv as pcsv

    tmp = tempfile.mkdtemp(prefix="bench-lance-")
    try:
        tables = {}
        for name, f, _ in NODE_TABLES + REL_TABLES:
            tables[name] = pcsv.read_csv(os.path.join(work, f))
        rows = sum(t.num_rows for t in tables.values())
        t = time.perf_counter()
        for name, table in tables.items():
            lance.write_dataset(table, os.path.join(tmp, f"{name}.lance"), mode="create")
        wsecs = time.perf_counter() - t
        t = time.perf_counter()
        scanned = 0
        for name in tables:
            scanned += lance.dataset(os.path.join(tmp, f"{name}.lance")).to_table().num_rows
        ssecs = time.perf_counter() - t
        out = {
            "load": {"rows": rows, "seconds": wsecs, "rows_per_s": rows / wsecs},
            "scan": {"rows": scanned, "seconds": ssecs, "rows_per_s": scanned / ssecs},
        }
        print(f"pylance: {out}", file=sys.stderr)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    work, dest = argv[1], argv[2]
    with open(os.path.join(work, "workload.json")) as f:
        wl = json.load(f)
    keys = lines(os.path.join(work, "keys.txt"))
    out = {"versions": {}}
    if "--skip-kuzu" not in argv:
        import kuzu

        out["versions"]["kuzu"] = kuzu.__version__
        out["kuzu"] = run_kuzu(work, wl, keys)
    if "--skip-lance" not in argv:
        import lance

        out["versions"]["pylance"] = lance.__version__
        out["pylance"] = run_lance(work, wl)
    with open(dest, "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
