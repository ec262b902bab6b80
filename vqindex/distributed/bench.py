"""`vqindex-bench scale`: a ShardedIndex on a local Ray against the plain in-process index.

    vqindex-bench scale --dataset ../shared/data/pypi-minilm-384-angular.hdf5 --shards 1,2,4

For the plain index and for each shard count: build time (actor start, train, add), QPS of a
batch of nq queries in one call and of one query per call, the fan-out cost per search (a
sharded call's wall time minus the plain index's, and minus the slowest shard's own search
time), merge time, recall@k, and per shard the process RSS and the shard file's bytes. Then
the cost model for N machines (see `cost_model`): bytes on the wire per query, merge time
measured for N = 8 and 64, and the throughput expected from the measured per-shard figures.
"""
import json
import os
import tempfile
import time

import numpy as np

__all__ = ["run_scale", "cost_model", "format_report", "run_cli"]


def _load(dataset, n, nq):
    """(train, queries, neighbors or None, metric name) from an HDF5 path or a data set name."""
    path = os.path.expanduser(dataset)
    if os.path.isfile(path) and path.endswith((".hdf5", ".h5")):
        import h5py
        with h5py.File(path, "r") as f:
            ntrain = f["train"].shape[0]
            n = ntrain if n is None else min(int(n), ntrain)
            xb = np.ascontiguousarray(f["train"][:n], np.float32)  # the first n rows
            xq = np.ascontiguousarray(f["test"][:nq], np.float32)
            gt = np.asarray(f["neighbors"][:nq]) if n == ntrain and "neighbors" in f else None
            dist = f.attrs.get("distance", "euclidean")
        dist = dist.decode() if isinstance(dist, bytes) else str(dist)
    else:
        from .. import datasets
        ds = datasets.load(dataset, n=n)
        xb, xq, gt, dist = ds.train, ds.test[:nq], ds.neighbors[:nq], ds.metric
    metric = {"angular": "cosine", "euclidean": "l2", "ip": "ip", "dot": "ip"}.get(dist, dist)
    return xb, xq, gt, metric


def _time_batch(search, xq, k, repeat=2):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = search(xq, k)
        best = min(best, time.perf_counter() - t)
    return best, out


def _time_single(search, xq, k, cap, budget=5.0):
    times, t_end = [], time.perf_counter() + budget
    for i in range(min(cap, len(xq))):
        t = time.perf_counter()
        search(xq[i:i + 1], k)
        times.append(time.perf_counter() - t)
        if i >= 20 and time.perf_counter() > t_end:
            break
    return np.asarray(times)


def _recall(I, gt, k):
    from ..evaluation import recall_at_k
    return recall_at_k(I, gt, k)


def merge_seconds(num_shards, nq, k, is_ip=True, repeat=3, seed=0):
    """Seconds to merge num_shards result blocks of (nq, k) (random distances) on this box."""
    from ._sharded import merge_topk
    rng = np.random.default_rng(seed)
    Ds = [np.sort(rng.random((nq, k)).astype(np.float32), 1)[:, ::-1].copy()
          for _ in range(num_shards)]
    Is = [rng.integers(0, 1 << 40, (nq, k)) for _ in range(num_shards)]
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        merge_topk(Ds, Is, k, is_ip)
        best = min(best, time.perf_counter() - t)
    return best


def cost_model(report, machines=(8, 64), link_gbit=10.0):
    """Bytes on the wire, merge time and expected QPS on N machines (one shard each).

    A search sends the query batch once to every shard (4 d bytes per query per shard) and
    gets k results of 12 bytes (float32 distance, int64 id) per query per shard back. Every
    shard works on every query, so with one shard per machine the batch throughput is bounded
    by the slowest shard's search time per query, t_shard(n / N), and by the caller's merge,
    fan-out (submitting and collecting N calls per batch, fitted linear in N from the
    measured batch fan-out) and network time. t_shard(m) = a + b m is fitted to the measured per-shard search times
    (CPU seconds of the slowest shard's search thread, batch of nq: on a shared box
    the wall time also counts the other processes) at the measured shard sizes m; the fixed part a (coarse
    quantizer, query tables) does not shrink with N. Two scenarios: the same n split over
    N machines, and n per machine (an N times larger index)."""
    d, k, nq, n = report["d"], report["k"], report["nq"], report["n"]
    rows = [r for r in report["rows"] if r["kind"] == "sharded"]
    m = np.array([n / r["shards"] for r in rows], float)
    t = np.array([r["shard_cpu_s_per_query"] for r in rows], float)
    if len(rows) >= 2 and np.ptp(m) > 0:
        b, a = np.polyfit(m, t, 1)
        a, b = max(a, 0.0), max(b, 0.0)
    else:
        a, b = 0.0, float(t[0] / m[0]) if len(rows) else 0.0
    link = link_gbit * 1e9 / 8
    # the caller's cost per call (submitting N calls, waiting, unpacking), linear in N
    Ns = np.array([r["shards"] for r in rows], float)

    def fit(key):
        y = np.array([r[key] for r in rows], float) / 1e3
        if len(rows) >= 2 and np.ptp(Ns) > 0:
            f1, f0 = np.polyfit(Ns, y, 1)
            return max(f0, 0.0), max(f1, 0.0)
        return (float(y[0]) if len(rows) else 0.0), 0.0
    fb0, fb1 = fit("batch_fanout_ms")
    fs0, fs1 = fit("fanout_ms_vs_shard")
    plain_call = [r for r in report["rows"] if r["kind"] == "plain"][0]["call_ms_p50"] / 1e3
    out = {"fit_a_s": a, "fit_b_s_per_vector": b, "link_gbit": link_gbit,
           "fanout_batch_s": (fb0, fb1), "fanout_single_s": (fs0, fs1), "rows": []}
    for N in tuple(r["shards"] for r in rows) + tuple(machines):
        merge = merge_seconds(N, nq, k) / nq
        bytes_out, bytes_back = 4 * d * N, 12 * k * N
        wire = (bytes_out + bytes_back) / link
        same_n = a + b * n / N
        per_machine_n = a + b * n
        caller = merge + (fb0 + fb1 * N) / nq
        out["rows"].append({
            "caller_us_per_query": caller * 1e6,
            "latency_ms_one_query": (plain_call + fs0 + fs1 * N) * 1e3,
            "machines": N, "bytes_out_per_query": bytes_out, "bytes_back_per_query": bytes_back,
            "merge_us_per_query": merge * 1e6, "wire_us_per_query": wire * 1e6,
            "shard_us_per_query_same_n": same_n * 1e6,
            "qps_same_n": 1.0 / max(same_n, caller, wire),
            "qps_n_per_machine": 1.0 / max(per_machine_n, caller, wire),
            "total_vectors_n_per_machine": n * N})
    return out


def run_scale(dataset, shards=(1, 2, 4), n=None, nq=1000, k=10, index="IVF1024,EDEN4,RFlat",
              nprobe=32, k_factor=2.0, single_queries=300, threads=1, address=None,
              progress=print):
    """Measure the plain index and ShardedIndex(num_shards=s) for each s; returns a dict."""
    import vqindex
    from . import ShardedIndex
    from ._sharded import _check_reachable, _ray, connect
    _ray()  # fail before the plain build: no ray installed
    if address is not None:
        _check_reachable(address)  # or no cluster at the address
    say = progress or (lambda *a, **kw: None)
    xb, xq, gt, metric = _load(dataset, n, nq)
    n, d = xb.shape
    if gt is None:
        gt = vqindex.knn_ground_truth(xq, xb, k, metric)[1]
    params = vqindex.SearchParams(nprobe=nprobe, k_factor=k_factor, num_threads=threads)
    rows = []
    say(f"data: n={n} d={d} nq={len(xq)} metric={metric}; index {index}, nprobe={nprobe}, "
        f"k_factor={k_factor}, {threads} search thread(s) per index / shard")

    # ---- the plain in-process index
    t0 = time.perf_counter()
    plain = vqindex.index_factory(d, index, metric)
    plain.train(xb)
    plain.add(xb)
    build = time.perf_counter() - t0
    plain.search(xq, k, params)  # compile / warm the batch and the one-query paths
    plain.search(xq[:1], k, params)
    c0 = time.thread_time()
    tb, (_, I) = _time_batch(lambda q, kk: plain.search(q, kk, params), xq, k, repeat=1)
    cpu_batch = time.thread_time() - c0
    tb = min(tb, _time_batch(lambda q, kk: plain.search(q, kk, params), xq, k, repeat=1)[0])
    ts = _time_single(lambda q, kk: plain.search(q, kk, params), xq, k, single_queries)
    with tempfile.TemporaryDirectory(prefix="vqindex-scale-") as tmp:
        vqindex.write_index(plain, os.path.join(tmp, "plain.vqi"))
        fbytes = os.path.getsize(os.path.join(tmp, "plain.vqi"))
    plain_call = float(np.median(ts))
    rows.append({"kind": "plain", "shards": 0, "build_s": build, "batch_qps": len(xq) / tb,
                 "single_qps": 1.0 / float(np.mean(ts)), "call_ms_p50": plain_call * 1e3,
                 "recall": _recall(I, gt, k), "file_mb_per_shard": fbytes / 2 ** 20,
                 "cpu_s_per_query": cpu_batch / len(xq)})
    say(f"plain: build {build:.1f} s, batch {len(xq) / tb:.0f} QPS, one query per call "
        f"{1 / np.mean(ts):.0f} QPS")
    del plain

    connect(address)
    for s in shards:
        t0 = time.perf_counter()
        sh = ShardedIndex(d, index, metric, num_shards=s, address=address)
        t_start = time.perf_counter() - t0
        try:
            sh.train(xb)
            sh.add(xb)
            build = time.perf_counter() - t0
            sh.search(xq, k, params)
            sh.search(xq[:1], k, params)
            calls = []

            def batch(q, kk):
                out = sh.search(q, kk, params)
                calls.append(dict(sh.last_search))
                return out
            tb, (_, I) = _time_batch(batch, xq, k)
            stats = min(calls, key=lambda c: c["wall_s"])  # the call that gave tb
            shard_s = max(stats["shard_s"])
            shard_cpu = max(stats["shard_cpu_s"])
            singles, overhead = [], []

            def one(q, kk):
                out = sh.search(q, kk, params)
                overhead.append(sh.last_search["wall_s"] - max(sh.last_search["shard_s"]))
                return out
            ts = _time_single(one, xq, k, single_queries)
            with tempfile.TemporaryDirectory(prefix="vqindex-scale-") as tmp:
                t1 = time.perf_counter()
                man = sh.save(tmp)
                t_save = time.perf_counter() - t1
            info = sh.shard_info()
            call = float(np.median(ts))
            rows.append({
                "kind": "sharded", "shards": s, "start_s": t_start, "build_s": build,
                "save_s": t_save, "batch_qps": len(xq) / tb,
                "single_qps": 1.0 / float(np.mean(ts)), "call_ms_p50": call * 1e3,
                "fanout_ms_vs_plain": (call - plain_call) * 1e3,
                "fanout_ms_vs_shard": float(np.median(overhead)) * 1e3,
                "batch_fanout_ms": (stats["wall_s"] - shard_s) * 1e3,
                "merge_ms_batch": stats["merge_s"] * 1e3,
                "shard_search_s_per_query": shard_s / len(xq),
                "shard_cpu_s_per_query": shard_cpu / len(xq),
                "recall": _recall(I, gt, k),
                "rss_mb_per_shard": float(np.mean([i["rss_bytes"] for i in info])) / 2 ** 20,
                "file_mb_per_shard": float(np.mean([x["bytes"] for x in man["shards"]])) / 2 ** 20,
                "ntotal_per_shard": [x["ntotal"] for x in man["shards"]]})
            r = rows[-1]
            say(f"{s} shard(s): build {build:.1f} s (actors {t_start:.1f} s), batch "
                f"{r['batch_qps']:.0f} QPS, one query per call {r['single_qps']:.0f} QPS, "
                f"fan-out {r['fanout_ms_vs_plain']:.2f} ms/search vs plain, RSS "
                f"{r['rss_mb_per_shard']:.0f} MB/shard")
        finally:
            sh.close()
    report = {"dataset": str(dataset), "n": int(n), "d": int(d), "nq": int(len(xq)), "k": k,
              "index": index, "metric": metric, "nprobe": nprobe, "k_factor": k_factor,
              "threads": threads, "cpus": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "load_avg": os.getloadavg(), "rows": rows}
    report["model"] = cost_model(report)
    return report


def format_report(rep):
    """Markdown tables of a run_scale report (measurements, then the cost model)."""
    lines = [f"n={rep['n']} d={rep['d']} nq={rep['nq']} k={rep['k']} {rep['index']} "
             f"nprobe={rep['nprobe']} k_factor={rep['k_factor']}, {rep['threads']} search "
             f"thread per index / shard, {rep['cpus']} CPUs", "",
             "| index | build s | batch QPS | 1-query QPS | p50 ms/call | fan-out ms/search "
             "(vs plain / vs slowest shard) | batch fan-out ms | merge ms/batch | CPU ms/batch "
             "(slowest shard) | recall@k | RSS MB/shard | file MB/shard |", "|" + "---|" * 12]
    for r in rep["rows"]:
        if r["kind"] == "plain":
            lines.append(f"| plain in-process | {r['build_s']:.1f} | {r['batch_qps']:,.0f} | "
                         f"{r['single_qps']:,.0f} | {r['call_ms_p50']:.2f} | - | - | - | "
                         f"{r['cpu_s_per_query'] * rep['nq'] * 1e3:.0f} | "
                         f"{r['recall']:.3f} | - | {r['file_mb_per_shard']:.1f} |")
        else:
            lines.append(f"| {r['shards']} shard(s) | {r['build_s']:.1f} | {r['batch_qps']:,.0f} |"
                         f" {r['single_qps']:,.0f} | {r['call_ms_p50']:.2f} | "
                         f"{r['fanout_ms_vs_plain']:.2f} / {r['fanout_ms_vs_shard']:.2f} | "
                         f"{r['batch_fanout_ms']:.1f} | {r['merge_ms_batch']:.2f} | "
                         f"{r['shard_cpu_s_per_query'] * rep['nq'] * 1e3:.0f} | {r['recall']:.3f} | {r['rss_mb_per_shard']:.0f} | "
                         f"{r['file_mb_per_shard']:.1f} |")
    m = rep["model"]
    lines += ["", f"Cost model (t_shard(m) = {m['fit_a_s'] * 1e6:.1f} us + "
                  f"{m['fit_b_s_per_vector'] * 1e9:.2f} ns x m vectors per query, fitted to the "
                  f"measured per-shard CPU time per query; {m['link_gbit']:g} Gbit/s at the caller)", "",
              "| machines N | bytes out / query | bytes back / query | merge us / query | "
              "caller us / query (merge + fan-out) | shard CPU us / query (same n) | "
              "QPS, same n over N | QPS, n per machine (N x n) | 1-query latency ms |",
              "|" + "---|" * 9]
    for r in m["rows"]:
        lines.append(f"| {r['machines']} | {r['bytes_out_per_query']:,} | "
                     f"{r['bytes_back_per_query']:,} | {r['merge_us_per_query']:.2f} | "
                     f"{r['caller_us_per_query']:.1f} | "
                     f"{r['shard_us_per_query_same_n']:.1f} | {r['qps_same_n']:,.0f} | "
                     f"{r['qps_n_per_machine']:,.0f} ({r['total_vectors_n_per_machine']:,}) | "
                     f"{r['latency_ms_one_query']:.1f} |")
    return "\n".join(lines)


def run_cli(a):
    """The `vqindex-bench scale` command: run, print the tables, write scale.json/.md."""
    shards = [int(t) for t in str(a.shards).split(",") if t.strip()]
    if not shards or min(shards) < 1:
        raise ValueError(f"--shards must be positive integers, got {a.shards!r}")
    try:
        rep = run_scale(a.dataset, shards=shards, n=a.n, nq=a.nq, k=a.k, index=a.index,
                        nprobe=a.nprobe, k_factor=a.k_factor, single_queries=a.single_queries,
                        threads=a.threads, address=a.address)
    except ConnectionError as exc:  # no ray installed, or no cluster at --address
        import sys
        print(f"vqindex-bench: error: {exc}", file=sys.stderr)
        return 2
    md = format_report(rep)
    print(md)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "scale.json"), "w") as f:
            json.dump({"args": vars(a), **rep}, f, indent=1, default=str)
        with open(os.path.join(a.out, "scale.md"), "w") as f:
            f.write(md + "\n")
        print(f"wrote {os.path.join(a.out, 'scale.json')} and scale.md")
    return 0
