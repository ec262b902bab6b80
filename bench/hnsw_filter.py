"""Where a filtered HNSW search should switch to a scan of the allowed rows.

For filters keeping a fraction s of the rows, times (same run, one thread) the graph
traversal with the filter inside (IndexHNSWCodes.filter_scan_fraction = 0) and the exact
scan of the allowed rows (fraction = 1), and prints their ratio and recall against the exact
filtered scan. The crossover fraction is what `filter_scan_fraction` should be.

    python bench/hnsw_filter.py --dataset /work/shared/data/pypi-minilm-384-angular.hdf5 \
        --n 100000 --index HNSW32,EDEN4 --ef 64
"""
import argparse
import time

import numpy as np

import vqindex
from vqindex import SearchParams


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--nq", type=int, default=200)
    ap.add_argument("--index", default="HNSW32,EDEN4")
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--load", help="an index file to use instead of building one")
    ap.add_argument("--fractions", default="0.002,0.005,0.01,0.02,0.05,0.1,0.2")
    a = ap.parse_args()
    import h5py
    with h5py.File(a.dataset, "r") as f:
        xq = np.asarray(f["test"][: a.nq], np.float32)
        xb = None if a.load else np.asarray(f["train"][: a.n], np.float32)
    if a.load:
        idx = vqindex.read_index(a.load)
    else:
        idx = vqindex.index_factory(xb.shape[1], a.index, vqindex.METRIC_COSINE)
        t = time.perf_counter()
        idx.add(xb)
        print(f"build {time.perf_counter() - t:.1f} s")
    n = idx.ntotal
    rng = np.random.default_rng(0)
    print("fraction  allowed  graph_ms/q  scan_ms/q  graph/scan  graph_recall")
    for s in [float(v) for v in a.fractions.split(",")]:
        allow = rng.choice(n, max(1, int(s * n)), replace=False)
        p = SearchParams(filter=allow, efSearch=a.ef, num_threads=1)
        out = {}
        for name, frac in (("graph", 0.0), ("scan", 1.0)):
            idx.filter_scan_fraction = frac
            idx.search(xq[:5], 10, params=p)
            t = time.perf_counter()
            out[name] = idx.search(xq, 10, params=p)[1]
            out[name + "_t"] = (time.perf_counter() - t) / len(xq) * 1e3
        rec = np.mean([len(set(out["graph"][i]) & set(out["scan"][i])) / 10
                       for i in range(len(xq))])
        print(f"{s:8.3f} {len(allow):8d} {out['graph_t']:11.3f} {out['scan_t']:10.3f} "
              f"{out['graph_t'] / out['scan_t']:11.2f} {rec:13.3f}")


if __name__ == "__main__":
    main()
