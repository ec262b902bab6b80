"""Readers-only search throughput from Python threads (the cost of the concurrency scheme).

Every reader thread calls `index.search` in a loop (one query per call, or a batch) for a
fixed time; the table gives searches per second summed over the threads. Run it against two
checkouts (e.g. before and after a change) in the same session and compare ratios:

    PYTHONPATH=/path/to/old python bench/concurrency.py --json old.json
    python bench/concurrency.py --json new.json
"""
import argparse
import json
import platform
import threading
import time

import numpy as np


def run(index, queries, threads, seconds, nq):
    """Searches per second summed over `threads` readers (each its own query rows)."""
    import vqindex
    params = vqindex.SearchParams(num_threads=1)
    counts = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def reader(t):
        q = queries[t * nq:(t + 1) * nq]
        start.wait()
        n = 0
        while not stop.is_set():
            index.search(q, 10, params=params)
            n += 1
        counts[t] = n

    ts = [threading.Thread(target=reader, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="stored vectors (default 20000)")
    ap.add_argument("--d", type=int, default=128, help="dimension (default 128)")
    ap.add_argument("--indexes", default="EDEN4,IVF64:EDEN4,EDEN4:RFlat,HNSW16:EDEN4,HNSW16:EDEN4:RFlat",
                    help="factory strings, ':' for ',' (default %(default)s)")
    ap.add_argument("--threads", default="1,2", help="reader thread counts (default 1,2)")
    ap.add_argument("--nq", default="1,16", help="queries per call (default 1,16)")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many (default 3)")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    import vqindex
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.n, a.d)).astype(np.float32)
    queries = rng.standard_normal((64, a.d)).astype(np.float32)
    rows = []
    print(f"vqindex at {vqindex.__file__}")
    print(f"{'index':<18} {'nq':>4} {'threads':>7} {'searches/s':>11}")
    for desc in a.indexes.split(","):
        desc = desc.replace(":", ",")
        index = vqindex.index_factory(a.d, desc, "l2")
        index.train(x[:5000])
        index.add(x)
        if hasattr(index, "nlist") or hasattr(getattr(index, "base", None), "nlist"):
            (index.base if hasattr(index, "base") else index).params.nprobe = 8
        for nq in (int(v) for v in a.nq.split(",")):
            for threads in (int(v) for v in a.threads.split(",")):
                run(index, queries, threads, 0.3, nq)  # warm-up (compilation, caches)
                qps = max(run(index, queries, threads, a.seconds, nq) for _ in range(a.repeats))
                rows.append({"index": desc, "nq": nq, "threads": threads, "searches_per_s": qps})
                print(f"{desc:<18} {nq:>4} {threads:>7} {qps:>11.1f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"params": vars(a), "vqindex": vqindex.__file__,
                       "machine": platform.processor(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
