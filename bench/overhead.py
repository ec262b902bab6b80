"""Per-call cost of one-query searches: vqindex against faiss and hnswlib, one thread.

Part 1 (--n-small base vectors, default the first 1000 of the data set): each method answers
--calls single-query searches (one query per call, after a warm-up); the table gives median
and p99 microseconds per call, QPS (calls / total time) and each method's ratio to faiss
IndexFlatIP, plus recall@k against the exact top-k of the small base as a sanity check.

Part 2 (the full train set): vqindex IVF<nlist>,EDEN4 and faiss IVF<nlist>,Flat at
nprobe=--nprobe: QPS of one query per call vs one call with a batch of --calls queries.

Only vqindex's public API is used (index_factory, train, add, search with SearchParams).
Cosine data: the peers get L2-normalised vectors and use inner product.

    python bench/overhead.py --dataset ../shared/data/pypi-minilm-384-angular.hdf5
"""
import argparse
import importlib
import os
import sys
import time

import numpy as np


def load(path):
    import h5py
    with h5py.File(path, "r") as f:
        metric = f.attrs.get("distance", "angular")
        if isinstance(metric, bytes):
            metric = metric.decode()
        return np.asarray(f["train"], np.float32), np.asarray(f["test"], np.float32), metric


def normalize(x):
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)).astype(np.float32)


def import_vqindex(retries, wait):
    """Import vqindex once, retrying while it fails to import. A module that imported is
    never reloaded: a second copy of the package would give indexes whose classes
    (SearchParams, ...) differ from the caller's, and every search would be refused."""
    for attempt in range(retries + 1):
        try:
            return importlib.import_module("vqindex")
        except Exception as e:  # ImportError, SyntaxError, AttributeError at import time...
            for name in [m for m in sys.modules if m == "vqindex" or m.startswith("vqindex.")]:
                del sys.modules[name]
            if attempt == retries:
                raise
            print(f"# vqindex import failed ({type(e).__name__}: {e}); retry in {wait:g} s",
                  file=sys.stderr)
            time.sleep(wait)


def retry(fn, what, retries, wait):
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as e:
            if attempt == retries:
                raise
            print(f"# {what} failed ({type(e).__name__}: {e}); retry in {wait:g} s", file=sys.stderr)
            time.sleep(wait)


def time_single(search, q, calls, warmup):
    """search(one_query_2d) per call; returns (per-call seconds array, ids of the timed calls)."""
    for i in range(warmup):
        search(q[i % len(q):i % len(q) + 1])
    ts = np.empty(calls)
    ids = []
    pc = time.perf_counter
    for i in range(calls):
        qi = q[i % len(q):i % len(q) + 1]
        t0 = pc()
        r = search(qi)
        ts[i] = pc() - t0
        ids.append(np.asarray(r)[0])
    return ts, np.asarray(ids)


def time_batch(search, q, reps=3):
    search(q[:10])
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        search(q)
        best = min(best, time.perf_counter() - t0)
    return best


def recall(ids, gt, k):
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(ids, gt)]))


def part1(xb_raw, xb, q_raw, q, k, calls, warmup, rw):
    import faiss
    import hnswlib
    n, d = xb.shape
    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    gt = flat.search(q, k)[1]

    def vq_index(desc):
        def build():
            v = import_vqindex(*rw)
            idx = v.index_factory(d, desc, v.METRIC_COSINE)
            idx.train(xb_raw)
            idx.add(xb_raw)
            return idx, v
        return retry(build, f"vqindex {desc} build", *rw)

    rows = []  # (name, search function over raw-or-normalised queries, queries)
    for desc, params, label in (("EDEN4", dict(), "vqindex Flat EDEN4"),
                                ("IVF16,EDEN4", dict(nprobe=4), "vqindex IVF16,EDEN4 nprobe=4"),
                                ("HNSW32,EDEN4", dict(efSearch=64), "vqindex HNSW32,EDEN4 efSearch=64")):
        try:
            idx, v = vq_index(desc)
        except Exception as e:
            print(f"# {label}: skipped ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        sp = v.SearchParams(num_threads=1, **params)
        rows.append((label, (lambda idx, sp: lambda x: idx.search(x, k, params=sp)[1])(idx, sp), q_raw))

    rows.append(("faiss IndexFlatIP", lambda x: flat.search(x, k)[1], q))
    hf = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hf.hnsw.efConstruction = 100
    hf.add(xb)
    hf.hnsw.efSearch = 64
    rows.append(("faiss IndexHNSWFlat M32 efSearch=64", lambda x: hf.search(x, k)[1], q))
    hl = hnswlib.Index(space="ip", dim=d)
    hl.init_index(max_elements=n, ef_construction=100, M=16, random_seed=100)
    hl.add_items(xb, np.arange(n), num_threads=1)
    hl.set_num_threads(1)
    hl.set_ef(64)
    rows.append(("hnswlib M16 ef=64", lambda x: hl.knn_query(x, k=k, num_threads=1)[0], q))

    res = []
    for label, fn, qq in rows:
        try:
            ts, ids = retry(lambda: time_single(fn, qq, calls, warmup), f"{label} search", *rw)
        except Exception as e:
            print(f"# {label}: search failed ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        us = ts * 1e6
        res.append(dict(label=label, median=float(np.median(us)), p99=float(np.percentile(us, 99)),
                        qps=calls / ts.sum(), recall=recall(ids, gt[np.arange(calls) % len(q)], k)))
    ref = next((r for r in res if r["label"] == "faiss IndexFlatIP"), None)
    print(f"\n### One query per call, n={n}, d={d}, k={k}, {calls} calls, 1 thread\n")
    print("| method | median us | p99 us | QPS | median / faiss Flat | QPS / faiss Flat | recall@%d |" % k)
    print("|---|---|---|---|---|---|---|")
    for r in res:
        rm = r["median"] / ref["median"] if ref else float("nan")
        rq = r["qps"] / ref["qps"] if ref else float("nan")
        print(f"| {r['label']} | {r['median']:.1f} | {r['p99']:.1f} | {r['qps']:,.0f} | {rm:.2f}x | "
              f"{rq:.2f}x | {r['recall']:.3f} |")
    return res


def part2(xb_raw, xb, q_raw, q, k, nlist, nprobe, calls, warmup, rw):
    import faiss
    n, d = xb.shape
    nq = min(calls, len(q))
    out = []

    def build_vq():
        v = import_vqindex(*rw)
        idx = v.index_factory(d, f"IVF{nlist},EDEN4", v.METRIC_COSINE)
        idx.train(xb_raw)
        idx.add(xb_raw)
        return idx, v.SearchParams(nprobe=nprobe, num_threads=1)

    try:
        t0 = time.perf_counter()
        idx, sp = retry(build_vq, "vqindex IVF build", *rw)
        print(f"# vqindex IVF{nlist},EDEN4 built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        out.append((f"vqindex IVF{nlist},EDEN4", lambda x: idx.search(x, k, params=sp)[1], q_raw))
    except Exception as e:
        print(f"# vqindex IVF{nlist},EDEN4: skipped ({type(e).__name__}: {e})", file=sys.stderr)
    fi = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    fi.train(xb)
    fi.add(xb)
    fi.nprobe = nprobe
    out.append((f"faiss IVF{nlist},Flat", lambda x: fi.search(x, k)[1], q))

    print(f"\n### Batch vs one query per call, n={n}, nprobe={nprobe}, k={k}, {nq} queries, 1 thread\n")
    print("| method | QPS single | QPS batch | batch / single | single median us |")
    print("|---|---|---|---|---|")
    res = []
    for label, fn, qq in out:
        try:
            ts, _ = retry(lambda: time_single(fn, qq[:nq], nq, warmup), f"{label} single", *rw)
            tb = retry(lambda: time_batch(fn, np.ascontiguousarray(qq[:nq])), f"{label} batch", *rw)
        except Exception as e:
            print(f"# {label}: search failed ({type(e).__name__}: {e})", file=sys.stderr)
            continue
        qs, qb = nq / ts.sum(), nq / tb
        res.append(dict(label=label, qps_single=qs, qps_batch=qb))
        print(f"| {label} | {qs:,.0f} | {qb:,.0f} | {qb / qs:.2f}x | {np.median(ts) * 1e6:.1f} |")
    return res


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=os.path.join(here, "..", "..", "shared", "data",
                                                      "pypi-minilm-384-angular.hdf5"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-small", type=int, default=1000, help="base vectors for part 1")
    ap.add_argument("--calls", type=int, default=1000, help="single-query calls (and batch size)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    ap.add_argument("--retries", type=int, default=3, help="retries when vqindex fails")
    ap.add_argument("--retry-wait", type=float, default=120.0, help="seconds between retries")
    a = ap.parse_args(argv)

    import faiss
    faiss.omp_set_num_threads(1)
    try:
        import numba
        numba.set_num_threads(1)
    except ImportError:
        pass
    rw = (a.retries, a.retry_wait)
    import_vqindex(*rw)  # fail early (after the retries) when vqindex does not import
    xb_raw, q_raw, metric = load(a.dataset)
    if metric not in ("angular", "cosine"):
        print(f"# note: data set metric is {metric!r}; this script measures cosine search", file=sys.stderr)
    xb, q = normalize(xb_raw), normalize(q_raw)
    print(f"# {os.path.basename(a.dataset)}: train {xb.shape}, test {q.shape}; faiss {faiss.__version__}; "
          f"os.cpu_count()={os.cpu_count()}")
    if a.part in ("1", "both"):
        part1(np.ascontiguousarray(xb_raw[:a.n_small]), np.ascontiguousarray(xb[:a.n_small]),
              q_raw, q, a.k, a.calls, a.warmup, rw)
    if a.part in ("2", "both"):
        part2(xb_raw, xb, q_raw, q, a.k, a.nlist, a.nprobe, a.calls, a.warmup, rw)


if __name__ == "__main__":
    main()
