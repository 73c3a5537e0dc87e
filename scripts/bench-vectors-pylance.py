#!/usr/bin/env python3
"""Vector search with pylance on a Lance dataset: exact vs ANN (latency, recall@k).

    bench-vectors-pylance.py --dataset PATH --column embedding --queries Q.json \
        [--k 10] [--index ivf_pq|ivf_hnsw_sq] [--partitions N] [--sub-vectors M] \
        [--nprobes P] [--refine R] [--ef E] [--copy]

The dataset is only read unless --copy is given: then its directory is copied to a
temp dir first, and everything (including any index build) happens on the copy.
--index needs --copy. Without --index, ANN runs on an index the dataset already has
on the column, or is skipped (ann_* and recall are null).

Progress goes to stderr; stdout gets exactly one JSON object at the end.
Metric is cosine throughout. Latency: each query is one ds.to_table() call, timed
after 3 warm-up queries.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import lance

WARMUP = 3


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    return float(np.percentile(np.asarray(xs), p)) if xs else None


def vector_dim(ds, col):
    t = ds.schema.field(col).type
    if not pa.types.is_fixed_size_list(t):
        sys.exit(f"column {col!r} is {t}, expected a FixedSizeList vector column")
    return t.list_size


def has_vector_index(ds, col):
    for idx in ds.describe_indices():
        if col in (getattr(idx, "field_names", None) or []):
            return True
    return False


def run(ds, queries, nearest, id_col):
    """Time each query (after WARMUP untimed ones); return (ids per query, ms list)."""
    def one(q):
        return ds.to_table(nearest={**nearest, "q": q}, columns=[id_col])

    for q in queries[:WARMUP]:
        one(q)
    ids, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        tbl = one(q)
        ms.append((time.perf_counter() - t0) * 1000.0)
        ids.append(tbl.column(id_col).to_pylist())
    return ids, ms


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--column", default="embedding")
    p.add_argument("--id-column", default="id")
    p.add_argument("--queries", required=True, help="JSON array of float arrays")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--index", choices=["ivf_pq", "ivf_hnsw_sq"])
    p.add_argument("--partitions", type=int, help="IVF partitions (default: ~sqrt(rows))")
    p.add_argument("--sub-vectors", type=int, default=16, help="PQ sub-vectors (ivf_pq only)")
    p.add_argument("--nprobes", type=int, default=20)
    p.add_argument("--refine", type=int, default=None, help="refine_factor (default: none)")
    p.add_argument("--ef", type=int, default=None, help="HNSW search ef (ivf_hnsw_sq)")
    p.add_argument("--copy", action="store_true", help="work on a temp copy of the dataset")
    p.add_argument("--keep-copy", action="store_true", help="do not delete the temp copy")
    a = p.parse_args()

    if a.index and not a.copy:
        sys.exit("--index builds an index, which writes to the dataset: add --copy")

    with open(a.queries) as f:
        queries = [np.asarray(q, dtype=np.float32) for q in json.load(f)]
    if not queries:
        sys.exit("no queries")

    tmp = None
    path = a.dataset
    try:
        if a.copy:
            tmp = tempfile.mkdtemp(prefix="bench-vectors-")
            path = os.path.join(tmp, os.path.basename(os.path.normpath(a.dataset)))
            t0 = time.perf_counter()
            shutil.copytree(a.dataset, path)
            log(f"copied {a.dataset} -> {path} in {time.perf_counter() - t0:.2f}s")

        ds = lance.dataset(path)
        rows = ds.count_rows()
        dim = vector_dim(ds, a.column)
        for i, q in enumerate(queries):
            if q.shape != (dim,):
                sys.exit(f"query {i} has shape {q.shape}, column dim is {dim}")
        log(f"dataset: {rows} rows, dim {dim}, {len(queries)} queries, k={a.k}")

        base = {"column": a.column, "k": a.k, "metric": "cosine"}

        # Exact (flat) search: ground truth.
        exact_ids, exact_ms = run(ds, queries, {**base, "use_index": False}, a.id_column)
        log(f"exact: p50 {pct(exact_ms, 50):.2f} ms, p99 {pct(exact_ms, 99):.2f} ms")

        build_s = None
        index = a.index
        if a.index:
            parts = a.partitions or max(1, int(round(rows ** 0.5)))
            kw = {"num_partitions": parts}
            if a.index == "ivf_pq":
                kw["num_sub_vectors"] = a.sub_vectors
            log(f"building {a.index.upper()} {kw} ...")
            t0 = time.perf_counter()
            ds = ds.create_index(a.column, index_type=a.index.upper(), metric="cosine",
                                 replace=True, **kw)
            build_s = time.perf_counter() - t0
            log(f"index build: {build_s:.2f} s")
        elif has_vector_index(ds, a.column):
            index = "existing"
        else:
            log(f"no index on {a.column!r} and no --index: ANN skipped")

        ann_ms, recall = [], None
        if index:
            ann = {**base, "use_index": True, "nprobes": a.nprobes}
            if a.refine:
                ann["refine_factor"] = a.refine
            if a.ef:
                ann["ef"] = a.ef
            ann_ids, ann_ms = run(ds, queries, ann, a.id_column)
            recall = float(np.mean([len(set(x) & set(e)) / max(1, len(e))
                                    for x, e in zip(ann_ids, exact_ids)]))
            log(f"ann: p50 {pct(ann_ms, 50):.2f} ms, p99 {pct(ann_ms, 99):.2f} ms, "
                f"recall@{a.k} {recall:.4f}")

        r = lambda v, n=3: None if v is None else round(v, n)
        print(json.dumps({
            "pylance_version": lance.__version__,
            "rows": rows,
            "dim": dim,
            "index": index,
            "partitions": (a.partitions or max(1, int(round(rows ** 0.5)))) if a.index else None,
            "sub_vectors": a.sub_vectors if a.index == "ivf_pq" else None,
            "build_s": r(build_s),
            "exact_p50_ms": r(pct(exact_ms, 50)),
            "exact_p99_ms": r(pct(exact_ms, 99)),
            "ann_p50_ms": r(pct(ann_ms, 50)),
            "ann_p99_ms": r(pct(ann_ms, 99)),
            "recall_at_k": r(recall, 4),
            "k": a.k,
            "nprobes": a.nprobes if index else None,
            "refine": a.refine if index else None,
            "ef": a.ef if index else None,
            "queries": len(queries),
        }))
    finally:
        if tmp and not a.keep_copy:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            log(f"kept copy at {path}")


if __name__ == "__main__":
    main()
