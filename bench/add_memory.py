"""Peak memory of one large `add` (issue 8's storage target).

    python bench/add_memory.py [--n 1000000] [--d 128] [--index IVF1024,EDEN4]

Prints the input size, the resident memory before and after the add (the difference is the
stored index) and the process's peak during it, as multiples of the input size.
"""
import argparse
import gc
import resource
import time

import numpy as np

import vqindex


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--index", default="IVF1024,EDEN4")
    a = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((a.n, a.d), dtype=np.float32)
    index = vqindex.index_factory(a.d, a.index, vqindex.METRIC_L2)
    index.train(x[: min(a.n, 60_000)])
    index.add(x[:2000])  # compile the kernels first
    index.reset()
    gc.collect()
    before = rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.time()
    index.add(x)
    t = time.time() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    after = rss()
    mib = 2.0 ** 20
    print(f"{a.index}: add of {a.n} x {a.d} ({x.nbytes / mib:.0f} MiB) in {t:.1f} s")
    print(f"resident before {before / mib:.0f} MiB, after {after / mib:.0f} MiB "
          f"(stored: {(after - before) / x.nbytes:.2f}x the input)")
    if peak > peak_before:
        print(f"peak during add: +{(peak - before) / x.nbytes:.2f}x the input "
              f"(+{(peak - after) / x.nbytes:.2f}x beyond what stays stored)")
    else:
        print("peak during add not above the earlier peak (data generation); no figure")


if __name__ == "__main__":
    main()
