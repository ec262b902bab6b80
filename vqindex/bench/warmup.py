"""Compile vqindex's numba kernels once (`vqindex-bench warmup`), so later processes start warm.

Builds a small index of every kind (flat, IVF, HNSW, Refine, the fast-scan and float-LUT
paths) over every codec family and metric, and runs batch and single-query searches, range
searches and encode/decode on it. numba writes what it compiles to its cache (cache=True), so
a later process only loads it. Returns the seconds each step took.
"""
import time

import numpy as np

__all__ = ["warmup", "WARMUP_INDEXES"]

#: index descriptions compiled by `warmup` (every codec family; every index kind)
WARMUP_INDEXES = ("BQ4", "EDEN4", "RaBitQ4", "TQmse4", "TQprod4", "EDEN2,RFlat", "IVF16,EDEN4",
                  "IVF16,BQ4,RFlat", "IVF16,RaBitQ4", "HNSW16,EDEN4", "HNSW16,BQ4")


def warmup(log=print, metrics=None, indexes=WARMUP_INDEXES, d=64, n=2000, seed=0):
    """Build and search each of `indexes` for each metric; return [(description, metric, s)]."""
    import vqindex
    metrics = metrics or (vqindex.METRIC_L2, vqindex.METRIC_INNER_PRODUCT, vqindex.METRIC_COSINE)
    names = {vqindex.METRIC_L2: "L2", vqindex.METRIC_INNER_PRODUCT: "IP", vqindex.METRIC_COSINE: "cosine"}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal((8, d)).astype(np.float32)
    out = []
    for desc in indexes:
        for metric in metrics:
            t0 = time.perf_counter()
            index = vqindex.index_factory(d, desc, metric)
            index.train(x)
            index.add(x)
            D, _ = index.search(q, 10)
            index.search(q[:1], 10)
            try:  # a radius that keeps about 10 results of the first query
                index.range_search(q[:2], float(D[0, -1]))
            except (AttributeError, NotImplementedError, ValueError, TypeError):
                pass
            dt = time.perf_counter() - t0
            out.append((desc, names.get(metric, str(metric)), dt))
            if log:
                log(f"  {desc:<18} {names.get(metric, metric):<6} {dt:6.2f} s")
    return out
