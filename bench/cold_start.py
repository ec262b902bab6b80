"""Cold start: seconds to the first search result of each index type in a fresh process with an
empty numba cache (and, for comparison, with the cache that run left behind).

    python bench/cold_start.py                       # the default index types, L2, d=128
    python bench/cold_start.py --types EDEN4,IVF64,BQ4 --metric cosine --repeat 2

Each measurement is its own `python -c` process with NUMBA_CACHE_DIR set to a new empty
folder (cold) or to the folder the cold run filled (warm). Inside it: import vqindex, build
the index on n random vectors (train + add), one search of 10 queries; the clock starts before
`import vqindex` and stops when the search returns. Target (issue 11): cold <= 3 s per type.
Timings depend on the machine and its load: compare cold with warm from the same run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT_TYPES = "EDEN4,BQ4,RaBitQ4,TQprod4,EDEN4;RFlat,IVF64;EDEN4,IVF64;BQ4;RFlat,HNSW16;EDEN4"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import vqindex
t_import = time.perf_counter() - t0
desc, metric, n, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = {"l2": vqindex.METRIC_L2, "ip": vqindex.METRIC_INNER_PRODUCT, "cosine": vqindex.METRIC_COSINE}[metric]
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d)).astype(np.float32)
q = rng.standard_normal((10, d)).astype(np.float32)
index = vqindex.index_factory(d, desc, m)
t1 = time.perf_counter()
index.train(x)
index.add(x)
t_build = time.perf_counter() - t1
t2 = time.perf_counter()
D, I = index.search(q, 10)
t_search = time.perf_counter() - t2
t3 = time.perf_counter()
index.search(q[:1], 10)
t_single = time.perf_counter() - t3
assert (I >= 0).all()
print(json.dumps({"import_s": t_import, "build_s": t_build, "search_s": t_search,
                  "single_s": t_single, "first_result_s": time.perf_counter() - t0 - t_single}))
"""


def run_one(desc, metric, n, d, cache_dir, timeout=600):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, desc, metric, str(n), str(d)], env=env,
                         capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{desc}: child failed: {out.stderr.strip().splitlines()[-1:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_s"] = wall
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--types", default=DEFAULT_TYPES,
                   help="comma list of index_factory strings, ';' standing for ',' inside one "
                        "(default: %(default)s)")
    p.add_argument("--metric", default="l2", choices=("l2", "ip", "cosine"))
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--repeat", type=int, default=1, help="cold runs per type (best and worst kept)")
    p.add_argument("--limit", type=float, default=3.0, help="target seconds (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per process (default: %(default)s)")
    p.add_argument("--out", default=None, help="write cold_start.json here")
    a = p.parse_args(argv)
    types = [t.replace(";", ",") for t in a.types.split(",") if t.strip()]
    rows = []
    print(f"# cold start: {a.metric}, n={a.n}, d={a.d}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores; seconds from before `import vqindex` to the first search result")
    print(f"{'index':<20} {'cold':>7} {'worst':>7} {'warm':>7} {'cold/warm':>9} {'import':>7} "
          f"{'build':>7} {'search':>7}  target")
    for desc in types:
        colds = []
        try:
            with tempfile.TemporaryDirectory(prefix="vqindex_cold_") as cache:
                for _ in range(a.repeat):
                    with tempfile.TemporaryDirectory(prefix="vqindex_cold_", dir=cache) as fresh:
                        colds.append(run_one(desc, a.metric, a.n, a.d, fresh, a.timeout))
                        warm = run_one(desc, a.metric, a.n, a.d, fresh, a.timeout)
        except subprocess.TimeoutExpired:
            rows.append({"index": desc, "metric": a.metric, "n": a.n, "d": a.d, "cold": None,
                         "timeout_s": a.timeout, "ok": False})
            print(f"{desc:<20} timed out after {a.timeout:g} s", flush=True)
            continue
        best = min(colds, key=lambda r: r["first_result_s"])
        worst = max(r["first_result_s"] for r in colds)
        row = {"index": desc, "metric": a.metric, "n": a.n, "d": a.d, "cold": best, "cold_worst_s": worst,
               "warm": warm, "ok": best["first_result_s"] <= a.limit}
        rows.append(row)
        print(f"{desc:<20} {best['first_result_s']:7.2f} {worst:7.2f} {warm['first_result_s']:7.2f} "
              f"{best['first_result_s'] / warm['first_result_s']:9.2f} {best['import_s']:7.2f} "
              f"{best['build_s']:7.2f} {best['search_s']:7.2f}  {'ok' if row['ok'] else '> %gs' % a.limit}",
              flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "cold_start.json"), "w") as f:
            json.dump({"rows": rows, "limit_s": a.limit}, f, indent=1)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
