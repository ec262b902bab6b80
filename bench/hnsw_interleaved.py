"""HNSW over codes against graph peers, timed in interleaved rounds (one process, 1 thread).

On a shared machine the load changes over minutes, so a sweep that times one method after
the other can move a ratio by 3x. Here every (method, parameter) point is timed once per
round, rounds repeat, and the median batch QPS per point is reported, so each ratio compares
methods under the same load. Recall@10 against the data set's ground truth (recomputed for
a subset with --n).

    python bench/hnsw_interleaved.py --dataset /work/shared/data/pypi-minilm-384-angular.hdf5 \
        --n 20000 --rounds 5
"""
import argparse
import time

import numpy as np

from vqindex.bench import peers
from vqindex.bench.base import Config
from vqindex.bench.sweep import VQIndexMethod

POINTS = [
    ("vqindex", "HNSW32,EDEN4", "efSearch", [16, 32, 64, 128]),
    ("vqindex", "HNSW16,EDEN4", "efSearch", [32, 64, 128]),
    ("faiss", "HNSW32,Flat", "efSearch", [16, 32, 64]),
    ("hnswlib", "M16", "ef", [16, 32, 64]),
    ("rabitqlib", "HNSW16,RaBitQ8", "ef", [16, 32, 64]),
    ("usearch", "M16,i8", "expansion_search", [32, 64, 128]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    import h5py
    with h5py.File(a.dataset, "r") as f:
        xb = np.asarray(f["train"][: a.n], np.float32)
        xq = np.asarray(f["test"][: a.nq], np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    gt = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    methods = []
    for method, index, pname, values in POINTS:
        ok, note = (True, "") if method == "vqindex" else peers.available(method)
        if not ok:
            print(note)
            continue
        cfg = Config(method, index, [{pname: v} for v in values])
        m = (VQIndexMethod(cfg, "angular", 1) if method == "vqindex"
             else peers.make(cfg, "angular", 1))
        t = time.perf_counter()
        m.build(xb)
        print(f"built {method} {index} in {time.perf_counter() - t:.1f} s", flush=True)
        for v in values:
            qp = {pname: v}
            m.search(xq[:10], 10, qp)
            ids = m.search(xq, 10, qp)
            rec = np.mean([len(set(ids[i]) & set(gt[i])) / 10 for i in range(len(xq))])
            methods.append((method, index, qp, m, rec))
    times = {i: [] for i in range(len(methods))}
    for r in range(a.rounds):
        for i, (method, index, qp, m, rec) in enumerate(methods):
            t = time.perf_counter()
            m.search(xq, 10, qp)
            times[i].append(len(xq) / (time.perf_counter() - t))
    print(f"\nn={a.n} nq={a.nq} rounds={a.rounds} (median batch QPS, 1 thread)")
    print(f"{'method':10s} {'index':16s} {'param':24s} {'recall':>7s} {'qps':>8s}")
    for i, (method, index, qp, m, rec) in enumerate(methods):
        print(f"{method:10s} {index:16s} {str(qp):24s} {rec:7.3f} {np.median(times[i]):8.0f}")


if __name__ == "__main__":
    main()
