"""HNSW over codes against graph peers, timed in interleaved rounds (one process, 1 thread).

On a shared machine the load changes over minutes, so a sweep that times one method after
the other can move a ratio by 3x. Here every (method, parameter) point is timed once per
round, rounds repeat, and the median batch QPS per point is reported, so each ratio compares
methods under the same load. Recall@10 against the data set's ground truth (recomputed for
a subset with --n).

    python bench/hnsw_interleaved.py --dataset ../shared/data/pypi-minilm-384-angular.hdf5 \
        --n 100000 --nq 1000 --rounds 5 --single 300

--points replaces the default points (METHOD:INDEX:PARAM=v1,v2,...); --single N also times
N one-query-per-call searches of each point in every round (the p50 latency's inverse is
not reported: QPS over the N calls, as the sweep's qps_single).
"""
import argparse
import time

import numpy as np

from vqindex.bench import peers
from vqindex.bench.base import Config
from vqindex.bench.sweep import VQIndexMethod

POINTS = [
    ("vqindex", "HNSW16_efc100,RaBitQ7", "efSearch", [32, 48, 64, 96]),
    ("vqindex", "HNSW16_efc100,EDEN4", "efSearch", [32, 64, 128]),
    ("rabitqlib", "HNSW16,RaBitQ8", "ef", [32, 48, 64, 96]),
    ("usearch", "M16,i8", "expansion_search", [32, 64, 128]),
    ("faiss", "HNSW32,Flat", "efSearch", [16, 32, 64]),
    ("hnswlib", "M16", "ef", [16, 32, 64]),
]


def _point(spec):
    method, index, param = spec.split(":", 2)
    pname, _, vals = param.partition("=")
    return method, index, pname, [int(v) for v in vals.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--single", type=int, default=0)
    ap.add_argument("--points", nargs="+", default=None)
    a = ap.parse_args()
    points = [_point(p) for p in a.points] if a.points else POINTS
    import h5py
    with h5py.File(a.dataset, "r") as f:
        xb = np.asarray(f["train"][: a.n], np.float32)
        xq = np.asarray(f["test"][: a.nq], np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    gt = np.empty((len(xq), 10), np.int64)
    for q0 in range(0, len(xq), 100):
        sc = xq[q0:q0 + 100] @ xb.T
        top = np.argpartition(-sc, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(sc, top, 1), axis=1)
        gt[q0:q0 + 100] = np.take_along_axis(top, order, 1)
    methods = []
    for method, index, pname, values in points:
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
    single = {i: [] for i in range(len(methods))}
    for r in range(a.rounds):
        for i, (method, index, qp, m, rec) in enumerate(methods):
            t = time.perf_counter()
            m.search(xq, 10, qp)
            times[i].append(len(xq) / (time.perf_counter() - t))
            if a.single:
                t = time.perf_counter()
                for j in range(a.single):
                    m.search(xq[j:j + 1], 10, qp)
                single[i].append(a.single / (time.perf_counter() - t))
    print(f"\nn={a.n} nq={a.nq} rounds={a.rounds} (median QPS, 1 thread; single: "
          f"{a.single} one-query calls)")
    print(f"{'method':10s} {'index':22s} {'param':26s} {'recall':>7s} {'qps':>8s} {'single':>8s}")
    for i, (method, index, qp, m, rec) in enumerate(methods):
        sq = f"{np.median(single[i]):8.0f}" if a.single else f"{'-':>8s}"
        print(f"{method:10s} {index:22s} {str(qp):26s} {rec:7.3f} {np.median(times[i]):8.0f} "
              f"{sq}")


if __name__ == "__main__":
    main()
