"""Recall / QPS sweeps of vqindex and peer libraries on one data set (`vqindex-bench sweep`).

The library half of the benchmark: metrics (ann-benchmarks Recall@k, id recall, Recall@1@k),
the vqindex adapter, the sweep driver, the Pareto summary, results.json / summary.md /
recall_qps.png. Peer adapters (faiss, hnswlib, rabitqlib, turbovec, scann, usearch) live in
`vqindex.bench.peers`, one module each; a peer whose library is missing is skipped with a note.

Every method is a list of *configs*: an index description built once, plus a grid of query
parameters. For each grid point the query batch is run (a) in one call and (b) one query
per call, ann-benchmarks style (capped, see `SweepOptions`), with the requested thread count;
(b) also gives the per-query latency percentiles p50 / p95 / p99. results.json is rewritten
after every config, so `resume=True` continues a killed sweep where it stopped.
"""
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import Config, Method, default_nlist, grid as _grid, nprobes as _nprobes

__all__ = ["ann_recall", "id_recall", "recall_1_at", "true_distances", "Config", "Method",
           "VQIndexMethod", "SweepOptions", "SweepError", "run_sweep", "default_nlist",
           "default_configs", "parse_config_spec", "pareto_frontier", "summary_markdown",
           "plot_recall_qps", "write_outputs", "load_dataset", "R1_KS", "EPSILON", "THRESHOLDS"]


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


def default_configs(methods, n, d, quick=False):
    """(configs, notes): the default configs of `methods`; a peer whose library is missing
    or an unknown method gets a note instead of configs."""
    from . import peers
    out, notes = [], []
    for m in methods:
        if m == "vqindex":
            out += vqindex_configs(n, d, quick)
        elif m in peers.METHODS:
            ok, note = peers.available(m)
            if ok:
                out += peers.default_configs(m, n, d, quick, default_nlist(n))
            else:
                notes.append(note)
        else:
            notes.append(f"{m}: unknown method; known: vqindex, {', '.join(peers.METHODS)}")
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
        # what searches derive from the codes and keep in memory counts too (HNSW's
        # two-stage hop records)
        base = getattr(self.index, "base", self.index)
        size += int(getattr(base, "derived_bytes_per_vector", 0)) * base.ntotal
        return size, True

    def _estimate(self):
        idx = self.index
        base = getattr(idx, "base", idx)
        per = base.code_size + 4 * base._sf.shape[1] + 8
        if base is not idx:
            per += 4 * idx.d + 8
        return per * idx.ntotal


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
    progress: bool = True       # a tqdm bar, only when stderr is a terminal
    resume: bool = False        # keep the finished configs of out/results.json, run the rest
    all_points: bool = False    # the plot scatters every point besides each method's Pareto line
    metric: str = None          # metric of raw vectors (.npy/.fvecs default: euclidean)


class SweepError(RuntimeError):
    """A sweep that cannot start (e.g. --resume on results of another run)."""


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
            ("R1@1", 5), ("R1@64", 5), ("qps_batch", 9), ("qps_single", 10), ("p50_ms", 7),
            ("p99_ms", 7), ("B/vec", 8), ("build_s", 7)]


def _row_header():
    return "  ".join(f"{c:<{w}}" for c, w in ROW_COLS)


def _row_line(r):
    qp = ",".join(f"{k}={v}" for k, v in r["query_params"].items()) or "-"
    r1 = r.get("recall_1_at") or {}
    vals = [r["method"], r["index"], qp, _fmt(r["recall"]), _fmt(r["id_recall"]),
            _fmt(r1.get("1"), 2), _fmt(r1.get("64"), 2), _fmt(r["qps_batch"], 0),
            _fmt(r["qps_single"], 0), _fmt(r.get("latency_p50_ms"), 3), _fmt(r.get("latency_p99_ms"), 3),
            (_fmt(r["bytes_per_vector"], 1) + ("" if r["bytes_exact"] else "~")) if r["bytes_per_vector"] else "-",
            _fmt(r["build_s"], 1)]
    return "  ".join(f"{str(v):<{w}}" for v, (_, w) in zip(vals, ROW_COLS))


def _time_batch(method, q, k, qp):
    t0 = time.perf_counter()
    ids = method.search(q, k, qp)
    return ids, time.perf_counter() - t0


def _time_single(method, q, k, qp, cap, budget):
    """One query per call: (ids (m, k), per-query seconds (m,)) for the first m <= cap queries,
    stopping once `budget` seconds are spent (after at least 20 queries)."""
    n = min(len(q), cap)
    out, times = [], []
    t_total = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        ids = method.search(q[i:i + 1], k, qp)
        dt = time.perf_counter() - t0
        t_total += dt
        times.append(dt)
        out.append(ids[0])
        if t_total > budget and i + 1 >= 20:
            break
    return np.asarray(out), np.asarray(times, np.float64)


def latency_percentiles(times):
    """{"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms"} of per-query
    seconds (numpy's linear interpolation between order statistics)."""
    t = np.asarray(times, np.float64) * 1e3
    if t.size == 0:
        return {f"latency_{p}_ms": None for p in ("p50", "p95", "p99", "mean")}
    p50, p95, p99 = np.percentile(t, [50, 95, 99])
    return {"latency_p50_ms": float(p50), "latency_p95_ms": float(p95),
            "latency_p99_ms": float(p99), "latency_mean_ms": float(t.mean())}


def shared_data_dir():
    """The repository's sibling ../shared/data folder (the lab's data), or None."""
    p = Path(__file__).resolve().parents[3] / "shared" / "data"
    return p if p.is_dir() else None


def load_dataset(name, **kw):
    """datasets.load, retried in ../shared/data when $VQINDEX_DATA is unset and the named
    file is not in the default data directory (as bench/codecs.py does)."""
    from .. import datasets
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
    from .. import datasets
    ds = load_dataset(opts.dataset, n=opts.n, metric=opts.metric)
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


_META_MATCH = ("dataset", "n", "d", "metric", "k", "threads", "quick", "nq_batch", "nq_batch_slow")


def _resume_state(opts, meta, log):
    """(rows kept, labels of finished configs, notes) from out/results.json, or empty."""
    path = os.path.join(opts.out, "results.json") if opts.out else None
    if not opts.resume:
        return [], set(), []
    if path is None:
        raise SweepError("--resume needs --out (the folder of the sweep to continue)")
    if not os.path.isfile(path):
        log(f"note: --resume: {path} not found; starting a new sweep")
        return [], set(), []
    try:
        with open(path) as f:
            old = json.load(f)
        old_meta, rows = old["meta"], old["results"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SweepError(f"--resume: cannot read {path} ({e})") from None
    bad = [f"{key} {old_meta.get(key)!r} != {meta[key]!r}" for key in _META_MATCH
           if old_meta.get(key) != meta[key]]
    if bad:
        raise SweepError(f"--resume: {path} comes from another sweep ({'; '.join(bad)}); "
                         f"use another --out or drop --resume")
    done = set(old.get("done_configs", []))
    kept = [r for r in rows if f"{r['method']} {r['index']}" in done]
    notes = [s for s in old.get("notes", []) if not s.startswith("resumed:")]
    log(f"note: resumed: {len(done)} finished config(s) with {len(kept)} rows kept from {path}")
    return kept, done, notes


def _save_json(report, out):
    """Write out/results.json atomically (a temporary file renamed over it)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.json")
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".json", dir=out)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def run_sweep(opts, log=print):
    """Run the sweep; returns {"meta", "results", "notes", "failures", "done_configs"}.

    With opts.out, results.json is rewritten after every config (meta["complete"] false
    until the end) and summary.md / recall_qps.png are written at the end. `failures` lists
    the configs and points whose build or search raised (the CLI then exits with status 1);
    a peer whose library is missing is a note, not a failure.
    """
    from .._config import environment
    from . import peers
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
    notes, failures = [], []
    gt_dist = ds.distances
    if opts.metric is None and str(opts.dataset).lower().endswith((".npy", ".fvecs", ".bvecs", ".ivecs")):
        notes.append(f"metric {ds.metric}: the default for raw .npy/.fvecs vectors (--metric to choose)")
    note = _check_distances(ds)
    if note:
        notes.append(note)
        gt_dist = true_distances(ds.test, ds.train, ds.neighbors[:, :max(k, 1)], ds.metric).astype(np.float32)

    methods = list(dict.fromkeys(m.strip().lower() for m in opts.methods if m.strip()))
    if any(m in ("turbovec",) for m in methods):
        peers.prepare_threads(opts.threads)
    custom = {c.method for c in (opts.configs or ())}
    configs, cnotes = default_configs([m for m in methods if m not in custom], n, d, quick)
    notes += cnotes
    for c in opts.configs or ():
        if c.method not in methods:
            continue
        if c.method != "vqindex":
            ok, pnote = peers.available(c.method) if c.method in peers.METHODS else (
                False, f"{c.method}: unknown method; known: vqindex, {', '.join(peers.METHODS)}")
            if not ok:
                if pnote not in notes:
                    notes.append(pnote)
                continue
        configs.append(c)
    notes += [s for s in peers.NOTES if s not in notes]

    # vectors per metric: ours gets raw vectors (cosine normalises inside); peers get
    # L2-normalised vectors for angular data.
    train_n = ds.train
    test_n = ds.test
    if ds.metric == "angular":
        from ..index.base import normalize_rows
        train_n, test_n = normalize_rows(ds.train), normalize_rows(ds.test)

    meta = {"dataset": ds.name, "dataset_path": str(ds.path) if ds.path else None, "n": int(n),
            "d": int(d), "metric": ds.metric, "nq_total": int(len(ds.test)), "k": k,
            "threads": opts.threads, "build_threads": build_threads, "quick": quick,
            "nq_batch": nq, "nq_batch_slow": nq_slow, "single_cap": single_cap,
            "single_cap_slow": single_cap_slow, "single_budget_s": opts.single_budget_s,
            "batch_budget_s": opts.batch_budget_s,
            "r1_nq": r1_nq, "epsilon": EPSILON, "nlist_default": default_nlist(n),
            "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "complete": False}
    meta["environment"] = environment()
    meta["faiss"] = meta["environment"]["versions"].get("faiss")
    results, done, old_notes = _resume_state(opts, meta, log)
    notes = list(dict.fromkeys(old_notes + notes))
    for s in notes:
        log("note: " + s)
    env = meta["environment"]
    log(f"# sweep {ds.name}: n={n} d={d} metric={ds.metric} k={k} threads={opts.threads} "
        f"build_threads={build_threads} batch nq={nq} (flat scans {nq_slow}); single queries: "
        f"at most {single_cap} ({single_cap_slow} for flat scans) and {opts.single_budget_s:g} s "
        f"per point (>= 20 queries); Recall@1@k from a k=64 search on {r1_nq} queries "
        f"({min(r1_nq, nq_slow)} for flat scans)")
    log(f"# vqindex {env['vqindex']} ({env.get('commit') or 'commit unknown'}), native backend "
        f"{env['native']['backend']}, CPU {env['cpu']['model']}")

    todo = [c for c in configs if f"{c.method} {c.index}" not in done]
    report = {"meta": meta, "results": results, "notes": notes, "failures": failures,
              "done_configs": sorted(done)}
    VQIndexMethod.centroid_cache.clear()
    total = sum(1 + len(c.grid) for c in todo)
    bar = None
    if opts.progress and sys.stderr.isatty():  # no carriage-return flood in a log file
        try:
            from tqdm import tqdm
            bar = tqdm(total=total, desc="sweep", unit="step", file=sys.stderr, leave=False,
                       dynamic_ncols=True)
        except ImportError:
            bar = None
    out_log = bar.write if bar is not None else log
    out_log(_row_header())
    for r in results:
        out_log(_row_line(r))
    tmpdir = tempfile.mkdtemp(prefix="vqindex_sweep_")
    try:
        for cfg in todo:
            rows, errs = _run_config(cfg, ds, train_n, test_n, gt_dist, k, opts, nq, nq_slow,
                                     single_cap, single_cap_slow, r1_nq, build_threads, tmpdir,
                                     out_log, bar, meta)
            results += rows
            failures += errs
            if not errs:
                done.add(f"{cfg.method} {cfg.index}")
                report["done_configs"] = sorted(done)
            if opts.out:
                meta["total_s"] = time.time() - t_start
                _save_json(report, opts.out)
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
    meta["complete"] = True
    if opts.out:
        write_outputs(report, opts.out, log, all_points=opts.all_points)
    log(f"sweep done in {meta['total_s']:.0f} s" + (f"; {len(failures)} failure(s)" if failures else ""))
    return report


def _make_method(cfg, metric, threads):
    if cfg.method == "vqindex":
        return VQIndexMethod(cfg, metric, threads)
    from . import peers
    return peers.make(cfg, metric, threads)


def _first_line(e):
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _run_config(cfg, ds, train_n, test_n, gt_dist, k, opts, nq, nq_slow, single_cap,
                single_cap_slow, r1_nq, build_threads, tmpdir, log, bar, meta):
    """(rows, failure messages) of one config."""
    label = f"{cfg.method} {cfg.index}"
    if bar is not None:
        bar.set_description(f"build {label}"[:50])
    rows, errs = [], []
    try:
        m = _make_method(cfg, ds.metric, opts.threads)
        m.build_threads = build_threads
        xb = ds.train if cfg.method == "vqindex" else train_n
        xq = ds.test if cfg.method == "vqindex" else test_n
        with _Threads(build_threads):
            t0 = time.perf_counter()
            m.build(xb)
            build_s = time.perf_counter() - t0 + getattr(m, "extra_build_s", 0.0)
        size, exact = m.file_size(tmpdir)
    except Exception as e:
        msg = f"{label}: build failed: {_first_line(e)}"
        log("FAILED: " + msg)
        if bar is not None:
            bar.update(1 + len(cfg.grid))
        return rows, [msg]
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
                ids_s, times_s = _time_single(m, q, k, qp, cap, opts.single_budget_s)
                t_s = float(times_s.sum())
                r1q = min(r1n, len(qb))
                ids64 = m.search(np.ascontiguousarray(xq[:r1q]), min(64, n), qp)
            except Exception as e:
                msg = f"{label} {qp}: search failed: {_first_line(e)}"
                errs.append(msg)
                log("FAILED: " + msg)
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
                   **latency_percentiles(times_s),
                   "nq_batch": int(qn_pt), "nq_single": int(len(ids_s)), "nq_r1": int(r1q),
                   "note": cfg.note or getattr(m, "note", "")}
            rows.append(row)
            log(_row_line(row))
            if bar is not None:
                bar.update(1)
    m.close()
    return rows, errs


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
    lat = ""
    if qkey == "qps_single" and r.get("latency_p50_ms") is not None:
        lat = (f"; p50/p95/p99 {r['latency_p50_ms']:.3g}/{r['latency_p95_ms']:.3g}/"
               f"{r['latency_p99_ms']:.3g} ms")
    return f"{r[qkey]:,.0f} ({r['index']}{' ' + qp if qp else ''}; {bs} B/vec{lat})"


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
    env = meta.get("environment")
    if env:
        v = env.get("versions", {})
        L.append("")
        L.append(f"Environment: vqindex {env.get('vqindex')} ({env.get('commit') or 'commit unknown'}), "
                 + ", ".join(f"{k} {v[k]}" for k in ("numpy", "numba", "faiss") if v.get(k))
                 + f"; native backend {env.get('native', {}).get('backend')}; CPU "
                 f"{env.get('cpu', {}).get('model')} ({', '.join(env.get('cpu', {}).get('simd', [])) or 'no SIMD flags'}).")
    if not meta.get("complete", True):
        L.append("")
        L.append("**Incomplete sweep** (stopped early; `--resume` continues it).")
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
    if report.get("failures"):
        L.append("## Failures")
        L.append("")
        L += [f"- {s}" for s in report["failures"]]
        L.append("")
    if notes:
        L.append("## Notes")
        L.append("")
        L += [f"- {s}" for s in notes]
        L.append("")
    return "\n".join(L)


MARKERS = {"vqindex": "o", "faiss": "s", "hnswlib": "^", "rabitqlib": "D", "turbovec": "v",
           "scann": "P", "usearch": "*"}


def plot_recall_qps(report, path, all_points=False):
    """recall vs QPS (log y), batch and one query per call: one Pareto line per method, as
    ann-benchmarks draws it; all_points also scatters every measured point (faint)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = report["results"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5), sharex=True)
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    meta = report["meta"]
    for ax, qkey, title in ((axes[0], "qps_batch", "batch"), (axes[1], "qps_single", "one query per call")):
        for i, m in enumerate(methods):
            mr = [r for r in rows if r["method"] == m and r.get(qkey)]
            if not mr:
                continue
            color = cmap(i % 10)
            if all_points:
                ax.scatter([r["recall"] for r in mr], [r[qkey] for r in mr], s=9, color=color,
                           alpha=0.35, marker=MARKERS.get(m, "x"), linewidths=0)
            front = pareto_frontier([(r["recall"], r[qkey], r) for r in mr])
            ax.plot([p[0] for p in front], [p[1] for p in front], marker=MARKERS.get(m, "x"),
                    color=color, label=m, linewidth=1.5, markersize=5)
        ax.set_yscale("log")
        ax.set_xlabel(f"Recall@{meta['k']}")
        ax.set_ylabel("QPS")
        ax.set_title(f"{meta['dataset']} ({meta['metric']}): {title}, {meta['threads']} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(7, len(labels)), fontsize=9,
                   frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report, out, log=print, all_points=False):
    """results.json, summary.md and (with matplotlib) recall_qps.png in `out`."""
    os.makedirs(out, exist_ok=True)
    _save_json(report, out)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(report))
    written = "results.json, summary.md"
    try:
        plot_recall_qps(report, os.path.join(out, "recall_qps.png"), all_points=all_points)
        written += ", recall_qps.png"
    except ImportError as e:
        report["notes"].append(f"no plot: {e}")
        log(f"note: no plot ({e}; pip install matplotlib)")
    log(f"wrote {out}/{written}")
