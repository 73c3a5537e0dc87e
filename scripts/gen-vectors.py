#!/usr/bin/env python3
"""Write a deterministic clustered vector dataset (Lance) and a query JSON file.

Rows are L2-normalized: a random unit centre (one of --clusters) plus Gaussian
noise, renormalized. Queries are dataset rows plus smaller noise, renormalized.

    gen-vectors.py --out /tmp/vec.lance --queries /tmp/queries.json
"""
import argparse
import json

import numpy as np
import pyarrow as pa
import lance


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="Lance dataset directory to create (overwritten)")
    p.add_argument("--queries", required=True, help="query JSON file to write")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--clusters", type=int, default=256)
    p.add_argument("--num-queries", type=int, default=200)
    p.add_argument("--spread", type=float, default=0.06, help="per-dimension noise around a centre")
    p.add_argument("--query-noise", type=float, default=0.02, help="per-dimension noise on a query")
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()

    rng = np.random.default_rng(a.seed)
    centres = unit(rng.standard_normal((a.clusters, a.dim)))
    which = rng.integers(0, a.clusters, a.rows)
    vecs = unit(centres[which] + a.spread * rng.standard_normal((a.rows, a.dim))).astype(np.float32)

    ids = pa.array([f"v{i:07d}" for i in range(a.rows)], pa.string())
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), a.dim)
    lance.write_dataset(pa.table({"id": ids, "embedding": emb}), a.out, mode="overwrite")

    src = rng.choice(a.rows, a.num_queries, replace=False)
    q = unit(vecs[src] + a.query_noise * rng.standard_normal((a.num_queries, a.dim))).astype(np.float32)
    with open(a.queries, "w") as f:
        json.dump([[float(x) for x in row] for row in q], f)
    print(f"wrote {a.rows} rows x {a.dim} to {a.out}, {a.num_queries} queries to {a.queries}")


if __name__ == "__main__":
    main()
