"""Recall / QPS sweeps of vqindex and peer libraries on one data set (`vqindex-bench sweep`).

The library half of the benchmark: metrics (ann-benchmarks Recall@k, id recall, Recall@1@k),
the vqindex adapter, the sweep driver, the Pareto summary, results.json / summary.md /
recall_qps.png. Peer adapters (faiss, hnswlib, rabitqlib, turbovec) live in the repository's
`bench/peers.py` and are loaded from there (`load_bench_module`); without that file only
vqindex runs (with a printed note).

Every method is a list of *configs*: an index description built once, plus a grid of query
parameters. For each grid point the query batch is run (a) in one call and (b) one query
per call, ann-benchmarks style (capped, see `SweepOptions`), with the requested thread count.
"""
import importlib.util
import itertools
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ann_recall", "id_recall", "recall_1_at", "true_distances", "Config", "Method",
           "VQIndexMethod", "SweepOptions", "run_sweep", "default_nlist", "default_configs",
           "parse_config_spec", "pareto_frontier", "summary_markdown", "plot_recall_qps",
           "load_bench_module", "bench_dir", "R1_KS", "EPSILON"]

EPSILON = 1e-3          # ann-benchmarks' distance tolerance for Recall@k
R1_KS = tuple(range(1, 65))  # Recall@1@k for every k in 1..64 (TurboQuant paper)
THRESHOLDS = (0.80, 0.90, 0.95, 0.99)  # 0.80 added: 4-bit codes alone often stop below 0.90


# ---------------------------------------------------------------------------- metrics
def true_distances(queries, train, ids, metric):
    """Exact distances (ann-benchmarks convention) from each query to its returned ids.

    angular: 1 - cos; euclidean: sqrt L2; ip: -<q, x>. Missing ids (-1) get +inf.
    """
    queries = np.asarray(queries, np.float64)
    ids = np.asarray(ids, np.int64)
    ok = ids >= 0
    x = np.asarray(train)[np.where(ok, ids, 0)].astype(np.float64)  # (nq, k, d)
    if metric == "angular":
        qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
        xn = x / np.maximum(np.linalg.norm(x, axis=2, keepdims=True), 1e-30)
        dist = 1.0 - np.einsum("qd,qkd->qk", qn, xn)
    elif metric == "euclidean":
        dist = np.sqrt(np.maximum(((x - queries[:, None, :]) ** 2).sum(axis=2), 0.0))
    elif metric == "ip":
        dist = -np.einsum("qd,qkd->qk", queries, x)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return np.where(ok, dist, np.inf)


def ann_recall(ids, queries, train, gt_distances, k, metric, epsilon=EPSILON):
    """ann-benchmarks Recall@k: a returned result counts if its true distance is within
    epsilon of the k-th true distance (`gt_distances[:, k-1] + epsilon`); mean over queries of
    count / k. Ties at the k-th distance are therefore not penalised."""
    ids = np.asarray(ids)[:, :k]
    thr = np.asarray(gt_distances, np.float64)[:, k - 1] + epsilon
    dist = true_distances(queries, train, ids, metric)
    return float(np.mean((dist <= thr[:, None]).sum(axis=1) / k))


def id_recall(ids, neighbors, k):
    """Plain id recall: |returned top-k ∩ true top-k| / k, averaged over queries."""
    ids = np.asarray(ids)[:, :k]
    gt = np.asarray(neighbors)[:, :k]
    hits = [len(np.intersect1d(a[a >= 0], b)) for a, b in zip(ids, gt)]
    return float(np.mean(hits) / k)


def recall_1_at(ids, neighbors, ks=R1_KS):
    """Recall@1@k: fraction of queries whose true nearest neighbour is in the top k returned."""
    ids = np.asarray(ids)
    nn = np.asarray(neighbors)[:, 0]
    out = {}
    for k in ks:
        if k <= ids.shape[1]:
            out[str(k)] = float(np.mean((ids[:, :k] == nn[:, None]).any(axis=1)))
    return out


# ---------------------------------------------------------------------------- configs
@dataclass
class Config:
    """One index built once plus the query-parameter grid run against it."""
    method: str
    index: str
    grid: list = field(default_factory=lambda: [{}])
    slow: bool = False      # a flat scan: batch/single queries capped harder
    note: str = ""


def default_nlist(n):
    """~3*sqrt(n) rounded to a power of two (1024 for 100k), at most n/39 (FAISS's minimum
    training points per list), at least 1."""
    target = 3.0 * math.sqrt(max(n, 1))
    nl = 2 ** int(round(math.log2(target)))
    while nl > 1 and nl * 39 > n:
        nl //= 2
    return max(1, nl)


def _grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(axes[k] for k in keys))]


def _nprobes(nlist, values):
    out = sorted({min(v, nlist) for v in values})
    return out


def vqindex_configs(n, d, quick=False):
    nl = default_nlist(n)
    npb = _nprobes(nl, (8, 16, 32, 64))
    if quick:
        return [Config("vqindex", "BQ4", slow=True),
                Config("vqindex", f"IVF{nl},BQ4,RFlat", _grid(nprobe=_nprobes(nl, (8,)), k_factor=[4]))]
    cfgs = [Config("vqindex", s, slow=True)
            for s in ("BQ4", "EDEN4", "RaBitQ4", "RaBitQ5", "TQmse4", "TQprod4", "EDEN2")]
    npb = _nprobes(nl, (16, 32, 48, 64, 96, 128))
    cfgs += [Config("vqindex", f"IVF{nl},{c}", _grid(nprobe=npb))
             for c in ("EDEN4", "RaBitQ4", "RaBitQ5", "BQ4", "EDEN8")]
    cfgs += [Config("vqindex", f"IVF{nl},{c},RFlat", _grid(nprobe=_nprobes(nl, (16, 32, 64)), k_factor=[2, 4]))
             for c in ("EDEN2", "EDEN4", "RaBitQ4")]
    cfgs += [Config("vqindex", f"HNSW32,{c}", _grid(efSearch=[32, 64, 128])) for c in ("BQ4", "EDEN4")]
    return cfgs


def default_configs(methods, n, d, quick=False, peers=None):
    """The default config list for `methods` (peer configs come from bench/peers.py)."""
    out, notes = [], []
    for m in methods:
        if m == "vqindex":
            out += vqindex_configs(n, d, quick)
        elif peers is not None and m in peers.METHODS:
            out += peers.default_configs(m, n, d, quick, Config=Config, grid=_grid,
                                         nlist=default_nlist(n))
        else:
            notes.append(f"{m}: no adapter (bench/peers.py not found or method unknown); skipped")
    return out, notes


def _parse_value(v):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def parse_config_spec(spec):
    """'METHOD:INDEX[:param=v1,v2[:param=...]]' -> Config.

    e.g. 'vqindex:IVF1024,BQ4,RFlat:nprobe=16,32:k_factor=2,4', 'hnswlib:M16:ef=32,64',
    'faiss:HNSW32,Flat:efSearch=32,64'. A flat vqindex index (no IVF/HNSW) is marked slow.
    """
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"bad --configs entry {spec!r}; expected METHOD:INDEX[:param=v1,v2...]")
    axes = {}
    for p in parts[2:]:
        if "=" not in p:
            raise ValueError(f"bad query parameter {p!r} in --configs entry {spec!r}; expected name=v1,v2")
        name, vals = p.split("=", 1)
        axes[name.strip()] = [_parse_value(v.strip()) for v in vals.split(",") if v.strip()]
    index = parts[1]
    slow = re.search(r"IVF|HNSW|^M\d|SYMQG", index.upper()) is None
    return Config(parts[0].strip().lower(), index, _grid(**axes) if axes else [{}], slow=slow)


# ---------------------------------------------------------------------------- adapters
class Method:
    """Adapter interface: build once, then search with query parameters.

    kind: "codes" (search on compressed codes only), "codes+rerank" (keeps float vectors to
    rerank a shortlist) or "float" (an uncompressed float index).
    """
    family = "?"
    kind = "codes"
    single_cap = None  # optional per-adapter cap on single queries

    def __init__(self, config, metric, threads):
        self.config, self.metric, self.threads = config, metric, threads

    def build(self, x):
        raise NotImplementedError

    def search(self, q, k, qp):
        """ids int64 (nq, k) for the queries q under query parameters qp (a dict)."""
        raise NotImplementedError

    def file_size(self, tmpdir):
        """(bytes, exact: bool): size of the saved index (exact) or an estimate (False)."""
        raise NotImplementedError

    def close(self):
        pass


def _index_kind(desc):
    return "codes+rerank" if ("RFLAT" in desc.upper() or "REFINE" in desc.upper()) else "codes"


class VQIndexMethod(Method):
    """vqindex.index_factory(d, description, metric); angular -> METRIC_COSINE."""
    family = "vqindex"

    def __init__(self, config, metric, threads):
        super().__init__(config, metric, threads)
        self.kind = _index_kind(config.index)
        if "HNSW" in config.index.upper():
            try:
                import vqindex.index.hnsw  # noqa: F401
            except ImportError as e:
                raise RuntimeError(f"vqindex HNSW not available ({e})") from None

    #: k-means centroids shared by the IVF configs of one sweep: (id(x), nlist, metric) ->
    #: (centroids, seconds the k-means took); cleared by run_sweep. Each config's build_s
    #: still includes the k-means time, so build times stay comparable.
    centroid_cache = {}

    def build(self, x):
        import vqindex
        from vqindex.index import IndexIVFCodes, IndexRefine
        from vqindex.index.params import METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2
        m = {"angular": METRIC_COSINE, "euclidean": METRIC_L2, "ip": METRIC_INNER_PRODUCT}[self.metric]
        bt = getattr(self, "build_threads", self.threads)
        index = vqindex.index_factory(x.shape[1], self.config.index, m)
        base = index.base if isinstance(index, IndexRefine) else index
        self.extra_build_s = 0.0
        if isinstance(base, IndexIVFCodes):
            key = (id(x), base.nlist, m)
            hit = self.centroid_cache.get(key)
            if hit is None:
                t0 = time.perf_counter()
                base.train(x)
                self.centroid_cache[key] = (np.array(base.centroids), time.perf_counter() - t0)
            else:
                import faiss
                cent, secs = hit
                q = faiss.IndexFlatIP(base.d) if base._is_ip else faiss.IndexFlatL2(base.d)
                q.add(cent)
                new = IndexIVFCodes(base.d, base.codec, base.nlist, m, quantizer=q)
                index = IndexRefine(new, index.params.k_factor) if index is not base else new
                self.extra_build_s = secs
        index.train(x)
        index.add(x, num_threads=bt)
        self.index = index

    def search(self, q, k, qp):
        from vqindex import SearchParams
        p = SearchParams(num_threads=self.threads, **qp)
        return self.index.search(q, k, params=p)[1]

    def file_size(self, tmpdir):
        try:
            from vqindex.io import write_index
        except ImportError:
            return self._estimate(), False
        path = os.path.join(tmpdir, "index.vqi")
        write_index(self.index, path)
        size = os.path.getsize(path)
        os.remove(path)
        return size, True

    def _estimate(self):
        idx = self.index
        base = getattr(idx, "base", idx)
        per = base.code_size + 4 * base._sf.shape[1] + 8
        if base is not idx:
            per += 4 * idx.d + 8
        return per * idx.ntotal


# ---------------------------------------------------------------------------- bench/ modules
def bench_dir():
    """The repository's bench/ folder ($VQINDEX_BENCH_DIR, else next to the package)."""
    env = os.environ.get("VQINDEX_BENCH_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "bench"


def load_bench_module(name):
    """Import bench/<name>.py by path (cached in sys.modules as vqindex_bench_<name>);
    None if the file is absent."""
    key = f"vqindex_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = bench_dir() / f"{name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception:
        del sys.modules[key]
        raise
    return mod


# ---------------------------------------------------------------------------- the sweep
@dataclass
class SweepOptions:
    dataset: str
    n: int = None
    methods: tuple = ("vqindex", "faiss", "hnswlib", "rabitqlib", "turbovec")
    threads: int = 1
    build_threads: int = None   # default: every core (os.cpu_count()); builds are not timed per thread
    k: int = 10
    out: str = None
    configs: list = None        # Config list replacing the defaults of the methods it names
    quick: bool = False
    nq: int = 1000              # batch queries (first nq test vectors)
    nq_slow: int = 200          # batch queries for flat scans ("slow" configs)
    single_cap: int = 1000      # at most this many one-query-per-call searches...
    single_cap_slow: int = 200  # ...and this many for flat scans
    single_budget_s: float = 2.0  # ...and stop after this many seconds (at least 20 queries)
    batch_budget_s: float = 4.0   # a batch projected to take longer runs fewer queries (>= 50)
    r1_nq: int = 500            # queries for the k=64 Recall@1@k search
    progress: bool = True


class _Threads:
    """Set BLAS/faiss/numba thread counts for the sweep and restore them after."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.saved = {}
        try:
            import faiss
            self.saved["faiss"] = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(self.n)
        except ImportError:
            pass
        try:
            import numba
            self.saved["numba"] = numba.get_num_threads()
            numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        if "faiss" in self.saved:
            import faiss
            faiss.omp_set_num_threads(self.saved["faiss"])
        if "numba" in self.saved:
            import numba
            numba.set_num_threads(self.saved["numba"])


def _fmt(v, nd=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


ROW_COLS = [("method", 9), ("index", 28), ("query params", 22), ("recall", 6), ("id_rec", 6),
            ("R1@1", 5), ("R1@64", 5), ("qps_batch", 9), ("qps_single", 10), ("B/vec", 8),
            ("build_s", 7)]


def _row_header():
    return "  ".join(f"{c:<{w}}" for c, w in ROW_COLS)


def _row_line(r):
    qp = ",".join(f"{k}={v}" for k, v in r["query_params"].items()) or "-"
    r1 = r.get("recall_1_at") or {}
    vals = [r["method"], r["index"], qp, _fmt(r["recall"]), _fmt(r["id_recall"]),
            _fmt(r1.get("1"), 2), _fmt(r1.get("64"), 2), _fmt(r["qps_batch"], 0),
            _fmt(r["qps_single"], 0),
            (_fmt(r["bytes_per_vector"], 1) + ("" if r["bytes_exact"] else "~")) if r["bytes_per_vector"] else "-",
            _fmt(r["build_s"], 1)]
    return "  ".join(f"{str(v):<{w}}" for v, (_, w) in zip(vals, ROW_COLS))


def _time_batch(method, q, k, qp):
    t0 = time.perf_counter()
    ids = method.search(q, k, qp)
    return ids, time.perf_counter() - t0


def _time_single(method, q, k, qp, cap, budget):
    n = min(len(q), cap)
    out = []
    t_total = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        ids = method.search(q[i:i + 1], k, qp)
        t_total += time.perf_counter() - t0
        out.append(ids[0])
        if t_total > budget and i + 1 >= 20:
            break
    return np.asarray(out), t_total


def shared_data_dir():
    """The repository's sibling ../shared/data folder (the lab's data), or None."""
    p = Path(__file__).resolve().parents[2] / "shared" / "data"
    return p if p.is_dir() else None


def load_dataset(name, **kw):
    """datasets.load, retried in ../shared/data when $VQINDEX_DATA is unset and the named
    file is not in the default data directory (as bench/codecs.py does)."""
    from . import datasets
    try:
        return datasets.load(name, **kw)
    except datasets.DatasetError:
        alt = shared_data_dir()
        if alt is None or os.environ.get("VQINDEX_DATA") or "data_dir" in kw:
            raise
        try:
            return datasets.load(name, data_dir=alt, **kw)
        except datasets.DatasetError:
            pass
        raise


def _load_dataset(opts):
    from . import datasets
    ds = load_dataset(opts.dataset, n=opts.n)
    if ds.metric not in ("angular", "euclidean", "ip"):
        raise datasets.DatasetError(f"unsupported metric {ds.metric!r}")
    return ds


def _check_distances(ds, nq=50):
    """Compare the file's ground-truth distances with recomputed ones; return a note or None."""
    m = min(nq, len(ds.test))
    kk = min(10, ds.k)
    calc = true_distances(ds.test[:m], ds.train, ds.neighbors[:m, :kk], ds.metric)
    err = float(np.max(np.abs(calc - ds.distances[:m, :kk])))
    if err > 1e-3:
        return (f"dataset distances differ from recomputed {ds.metric} distances by up to {err:.3g}; "
                f"using recomputed ones for the Recall@k threshold")
    return None


def run_sweep(opts, log=print):
    """Run the sweep; returns {"meta", "results", "notes"} and writes files into opts.out."""
    from .datasets import DatasetError  # noqa: F401  (callers catch it)
    t_start = time.time()
    ds = _load_dataset(opts)
    n, d = ds.train.shape
    k = int(opts.k)
    if k > ds.k:
        raise ValueError(f"--k {k} exceeds the ground truth depth {ds.k} of {ds.name}")
    quick = opts.quick
    nq = min(len(ds.test), 50 if quick else opts.nq)
    nq_slow = min(nq, 50 if quick else opts.nq_slow)
    single_cap = 20 if quick else opts.single_cap
    single_cap_slow = 20 if quick else opts.single_cap_slow
    r1_nq = min(nq, 50 if quick else opts.r1_nq)
    build_threads = opts.build_threads or os.cpu_count() or 1
    notes = []
    gt_dist = ds.distances
    note = _check_distances(ds)
    if note:
        notes.append(note)
        log("note: " + note)
        gt_dist = true_distances(ds.test, ds.train, ds.neighbors[:, :max(k, 1)], ds.metric).astype(np.float32)

    methods = [m.strip().lower() for m in opts.methods if m.strip()]
    peers = None
    if any(m != "vqindex" for m in methods):
        try:
            peers = load_bench_module("peers")
        except Exception as e:  # a broken peers file must not stop our own rows
            notes.append(f"bench/peers.py failed to import ({e}); peers skipped")
        if peers is None:
            notes.append("bench/peers.py not found: only vqindex runs")
        else:
            peers.prepare_threads(opts.threads)
    configs, cnotes = default_configs([m for m in methods
                                       if not (opts.configs and any(c.method == m for c in opts.configs))],
                                      n, d, quick, peers)
    notes += cnotes
    if opts.configs:
        configs += [c for c in opts.configs if c.method in methods]
    for m in methods:
        if m != "vqindex" and (peers is None or m not in peers.METHODS):
            if not any(m in s for s in notes):
                notes.append(f"{m}: unknown method; known: vqindex"
                             + (", " + ", ".join(peers.METHODS) if peers else ""))
    for s in notes:
        log("note: " + s)

    # vectors per metric: ours gets raw vectors (cosine normalises inside); peers get
    # L2-normalised vectors for angular data.
    train_n = ds.train
    test_n = ds.test
    if ds.metric == "angular":
        from .index.base import normalize_rows
        train_n, test_n = normalize_rows(ds.train), normalize_rows(ds.test)

    meta = {"dataset": ds.name, "dataset_path": str(ds.path) if ds.path else None, "n": int(n),
            "d": int(d), "metric": ds.metric, "nq_total": int(len(ds.test)), "k": k,
            "threads": opts.threads, "build_threads": build_threads, "quick": quick,
            "nq_batch": nq, "nq_batch_slow": nq_slow, "single_cap": single_cap,
            "single_cap_slow": single_cap_slow, "single_budget_s": opts.single_budget_s,
            "batch_budget_s": opts.batch_budget_s,
            "r1_nq": r1_nq, "epsilon": EPSILON, "nlist_default": default_nlist(n),
            "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        import faiss
        meta["faiss"] = faiss.__version__
    except ImportError:
        pass
    log(f"# sweep {ds.name}: n={n} d={d} metric={ds.metric} k={k} threads={opts.threads} "
        f"build_threads={build_threads} batch nq={nq} (flat scans {nq_slow}); single queries: "
        f"at most {single_cap} ({single_cap_slow} for flat scans) and {opts.single_budget_s:g} s "
        f"per point (>= 20 queries); Recall@1@k from a k=64 search on {r1_nq} queries ({min(r1_nq, nq_slow)} for flat scans)")

    results = []
    VQIndexMethod.centroid_cache.clear()
    total = sum(1 + len(c.grid) for c in configs)
    bar = None
    if opts.progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="sweep", unit="step", file=sys.stderr, leave=False,
                       dynamic_ncols=True)
        except ImportError:
            bar = None
    out_log = log
    if bar is not None:
        def out_log(s):
            bar.write(s)
    out_log(_row_header())
    tmpdir = tempfile.mkdtemp(prefix="vqindex_sweep_")
    try:
        for cfg in configs:
            r = _run_config(cfg, ds, train_n, test_n, gt_dist, k, opts, nq, nq_slow, single_cap,
                            single_cap_slow, r1_nq, build_threads, peers, tmpdir, out_log, bar, notes, meta)
            results += r
    finally:
        if bar is not None:
            bar.close()
        VQIndexMethod.centroid_cache.clear()
        try:
            for f in os.listdir(tmpdir):
                os.remove(os.path.join(tmpdir, f))
            os.rmdir(tmpdir)
        except OSError:
            pass
    meta["total_s"] = time.time() - t_start
    report = {"meta": meta, "results": results, "notes": notes}
    if opts.out:
        write_outputs(report, opts.out, log)
    log(f"sweep done in {meta['total_s']:.0f} s")
    return report


def _make_method(cfg, metric, threads, peers):
    if cfg.method == "vqindex":
        return VQIndexMethod(cfg, metric, threads)
    return peers.make(cfg, metric, threads, Method=Method)


def _run_config(cfg, ds, train_n, test_n, gt_dist, k, opts, nq, nq_slow, single_cap,
                single_cap_slow, r1_nq, build_threads, peers, tmpdir, log, bar, notes, meta):
    label = f"{cfg.method} {cfg.index}"
    if bar is not None:
        bar.set_description(f"build {label}"[:50])
    rows = []
    try:
        m = _make_method(cfg, ds.metric, opts.threads, peers)
        m.build_threads = build_threads
        xb = ds.train if cfg.method == "vqindex" else train_n
        xq = ds.test if cfg.method == "vqindex" else test_n
        with _Threads(build_threads):
            t0 = time.perf_counter()
            m.build(xb)
            build_s = time.perf_counter() - t0 + getattr(m, "extra_build_s", 0.0)
        size, exact = m.file_size(tmpdir)
    except Exception as e:
        msg = f"{label}: build failed or unavailable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        notes.append(msg)
        log("note: " + msg)
        if bar is not None:
            bar.update(1 + len(cfg.grid))
        return rows
    if bar is not None:
        bar.update(1)
    n = ds.train.shape[0]
    bpv = size / n if size else None
    qn = nq_slow if cfg.slow else nq
    cap = single_cap_slow if cfg.slow else single_cap
    if m.single_cap is not None:
        cap = min(cap, m.single_cap)
    r1n = min(r1_nq, qn)  # flat scans: the k=64 search uses the (fewer) batch queries too
    q = np.ascontiguousarray(xq[:qn])
    with _Threads(opts.threads):
        for qp in cfg.grid:
            if bar is not None:
                bar.set_description(f"{label} {qp}"[:50])
            try:
                m.search(q[:2], k, qp)       # warm-up (JIT compile, caches)
                m.search(q[:1], k, qp)
                qb = q
                if opts.batch_budget_s and len(q) > 50:
                    # probe: a slow point runs fewer batch queries (>= 50) to stay in budget
                    t0 = time.perf_counter()
                    m.search(q[:20], k, qp)
                    per_q = (time.perf_counter() - t0) / 20
                    if per_q * len(q) > opts.batch_budget_s:
                        qb = q[:max(50, int(opts.batch_budget_s / max(per_q, 1e-9)))]
                ids, t_b = _time_batch(m, qb, k, qp)
                ids_s, t_s = _time_single(m, q, k, qp, cap, opts.single_budget_s)
                r1q = min(r1n, len(qb))
                ids64 = m.search(np.ascontiguousarray(xq[:r1q]), min(64, n), qp)
            except Exception as e:
                msg = f"{label} {qp}: search failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                notes.append(msg)
                log("note: " + msg)
                if bar is not None:
                    bar.update(1)
                continue
            ids = np.asarray(ids, np.int64)
            qn_pt = len(qb)
            row = {"method": cfg.method, "family": m.family, "kind": m.kind, "index": cfg.index,
                   "query_params": dict(qp), "k": k, "threads": opts.threads,
                   "build_threads": build_threads, "dataset": meta["dataset"], "n": int(n),
                   "d": int(ds.d), "metric": ds.metric, "build_s": build_s,
                   "bytes_per_vector": bpv, "bytes_exact": bool(exact),
                   "index_bytes": int(size) if size else None,
                   "recall": ann_recall(ids, ds.test[:qn_pt], ds.train, gt_dist[:qn_pt], k, ds.metric),
                   "id_recall": id_recall(ids, ds.neighbors[:qn_pt], k),
                   "recall_single": ann_recall(np.asarray(ids_s, np.int64), ds.test[:len(ids_s)], ds.train,
                                               gt_dist[:len(ids_s)], k, ds.metric),
                   "recall_1_at": recall_1_at(np.asarray(ids64, np.int64), ds.neighbors[:r1q]),
                   "qps_batch": qn_pt / t_b if t_b > 0 else None,
                   "qps_single": len(ids_s) / t_s if t_s > 0 else None,
                   "nq_batch": int(qn_pt), "nq_single": int(len(ids_s)), "nq_r1": int(r1q),
                   "note": cfg.note or getattr(m, "note", "")}
            rows.append(row)
            log(_row_line(row))
            if bar is not None:
                bar.update(1)
    m.close()
    return rows


# ---------------------------------------------------------------------------- summary
def pareto_frontier(points):
    """points: [(recall, qps, payload)] -> the non-dominated ones sorted by recall."""
    pts = sorted([p for p in points if p[1] is not None], key=lambda p: (-p[0], -p[1]))
    front, best = [], -1.0
    for p in pts:
        if p[1] > best:
            front.append(p)
            best = p[1]
    return sorted(front, key=lambda p: p[0])


def _best(rows, thr, qkey):
    ok = [r for r in rows if r["recall"] >= thr and r.get(qkey)]
    if qkey == "qps_single":
        ok = [r for r in ok if r.get("recall_single", r["recall"]) >= thr]
    return max(ok, key=lambda r: r[qkey]) if ok else None


def _cell(r, qkey):
    if r is None:
        return "-"
    qp = ",".join(f"{k}={v}" for k, v in r["query_params"].items())
    b = r["bytes_per_vector"]
    bs = "?" if b is None else f"{b:.1f}{'' if r['bytes_exact'] else '~'}"
    return f"{r[qkey]:,.0f} ({r['index']}{' ' + qp if qp else ''}; {bs} B/vec)"


KIND_LABEL = {"codes": "codes only", "codes+rerank": "with float rerank", "float": "float index"}


def summary_markdown(report):
    meta, rows, notes = report["meta"], report["results"], report["notes"]
    L = [f"# Sweep: {meta['dataset']} (n={meta['n']}, d={meta['d']}, {meta['metric']}), "
         f"k={meta['k']}, threads={meta['threads']}", ""]
    L.append(f"Recall = ann-benchmarks Recall@{meta['k']} (true distance <= k-th true distance + "
             f"{meta['epsilon']:g}). QPS batch: {meta['nq_batch']} queries in one call "
             f"({meta['nq_batch_slow']} for flat scans; a point projected to take over "
             f"{meta['batch_budget_s']:g} s runs fewer, >= 50: see nq_batch in results.json); QPS single: one query per call, at most "
             f"{meta['single_cap']} queries ({meta['single_cap_slow']} for flat scans) or "
             f"{meta['single_budget_s']:g} s per point. B/vec = saved index file size / n "
             f"(`~` = estimate). Build with {meta['build_threads']} thread(s). Total run "
             f"{meta.get('total_s', 0):.0f} s.")
    L.append("")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for qkey, title in (("qps_batch", "batch"), ("qps_single", "single query")):
        L.append(f"## Best QPS ({title}) at recall >= threshold, per method")
        L.append("")
        L.append("| method | " + " | ".join(f"recall >= {t:.2f}" for t in THRESHOLDS) + " |")
        L.append("|---|" + "---|" * len(THRESHOLDS))
        for m in methods:
            mr = [r for r in rows if r["method"] == m]
            L.append(f"| {m} | " + " | ".join(_cell(_best(mr, t, qkey), qkey) for t in THRESHOLDS) + " |")
        L.append("")
    for qkey, title in (("qps_batch", "batch"), ("qps_single", "single query")):
        L.append(f"## Codes only vs with float rerank ({title})")
        L.append("")
        L.append("| method | kind | " + " | ".join(f"recall >= {t:.2f}" for t in THRESHOLDS) + " |")
        L.append("|---|---|" + "---|" * len(THRESHOLDS))
        for m in methods:
            for kind in ("codes", "codes+rerank", "float"):
                mr = [r for r in rows if r["method"] == m and r["kind"] == kind]
                if mr:
                    L.append(f"| {m} | {KIND_LABEL[kind]} | "
                             + " | ".join(_cell(_best(mr, t, qkey), qkey) for t in THRESHOLDS) + " |")
        L.append("")
    L.append("## Max recall per config")
    L.append("")
    L.append("| method | index | kind | B/vec | build s | max recall | id recall | R@1@1 | R@1@8 | R@1@64 |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    seen = {}
    for r in rows:
        key = (r["method"], r["index"])
        if key not in seen or r["recall"] > seen[key]["recall"]:
            seen[key] = r
    for r in seen.values():
        r1 = r["recall_1_at"]
        b = r["bytes_per_vector"]
        L.append(f"| {r['method']} | {r['index']} | {KIND_LABEL[r['kind']]} | "
                 f"{'-' if b is None else f'{b:.1f}' + ('' if r['bytes_exact'] else '~')} | "
                 f"{r['build_s']:.1f} | {r['recall']:.4f} | {r['id_recall']:.4f} | "
                 f"{r1.get('1', float('nan')):.3f} | {r1.get('8', float('nan')):.3f} | "
                 f"{r1.get('64', float('nan')):.3f} |")
    L.append("")
    cfg_notes = list(dict.fromkeys(f"{r['method']} {r['index']}: {r['note']}" for r in rows if r.get("note")))
    notes = list(notes) + cfg_notes
    if notes:
        L.append("## Notes")
        L.append("")
        L += [f"- {s}" for s in notes]
        L.append("")
    return "\n".join(L)


def plot_recall_qps(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = report["results"]
    fig, axes = plt.subplots(1, 2, figsize=(16, 7), sharex=True)
    cmap = plt.get_cmap("tab20")
    configs = list(dict.fromkeys((r["method"], r["index"]) for r in rows))
    markers = {"vqindex": "o", "faiss": "s", "hnswlib": "^", "rabitqlib": "D", "turbovec": "v",
               "scann": "P", "usearch": "*"}
    for ax, qkey, title in ((axes[0], "qps_batch", "batch"), (axes[1], "qps_single", "one query per call")):
        for i, (m, idx) in enumerate(configs):
            pts = sorted([(r["recall"], r[qkey]) for r in rows
                          if r["method"] == m and r["index"] == idx and r.get(qkey)])
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(m, "x"),
                    color=cmap(i % 20), label=f"{m}: {idx}", linewidth=1, markersize=4,
                    linestyle=("-", ":", "-.")[(i // 20) % 3])
        front = pareto_frontier([(r["recall"], r[qkey], r) for r in rows if r.get(qkey)])
        if front:
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", linewidth=1.5,
                    label="Pareto frontier", alpha=0.6)
        ax.set_yscale("log")
        ax.set_xlabel(f"Recall@{report['meta']['k']}")
        ax.set_ylabel("QPS")
        ax.set_title(f"{report['meta']['dataset']}: {title}, {report['meta']['threads']} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.022 * math.ceil(len(labels) / 4), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report, out, log=print):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(report))
    written = "results.json, summary.md"
    try:
        plot_recall_qps(report, os.path.join(out, "recall_qps.png"))
        written += ", recall_qps.png"
    except ImportError as e:
        report["notes"].append(f"no plot: {e}")
        log(f"note: no plot ({e}; pip install matplotlib)")
    log(f"wrote {out}/{written}")
