"""Per-call cost of one-query IVF searches, split into the compiled call and the Python
around it (the figures of README's one-call path).

    python bench/one_call.py                                   # IVF256,EDEN4, 20k MiniLM vectors
    python bench/one_call.py --index IVF1024,EDEN4 --n 100000 --nprobe 16

Builds the index on the first --n vectors of the data set, then times --calls searches of one
query each (one thread, after a warm-up) three ways: the public search(); the compiled call
alone (driver.search_ivf_fused with the arguments search() passed it); and search() with that
call replaced by a no-op, which is the Python left in a call. Microseconds per call, best of
--repeat.
"""
import argparse
import os
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--dataset", default=os.path.join(here, "..", "..", "shared", "data",
                                                     "pypi-minilm-384-angular.hdf5"))
    p.add_argument("--index", default="IVF256,EDEN4")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--nprobe", type=int, default=1)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    import h5py
    import vqindex
    from vqindex.kernels import driver as drv
    with h5py.File(a.dataset, "r") as f:
        x = np.asarray(f["train"][: a.n], np.float32)
        q = np.asarray(f["test"], np.float32)
        metric = f.attrs.get("distance", "angular")
    metric = metric.decode() if isinstance(metric, bytes) else metric
    m = vqindex.METRIC_COSINE if metric == "angular" else (
        vqindex.METRIC_INNER_PRODUCT if metric == "dot" else vqindex.METRIC_L2)
    index = vqindex.index_factory(x.shape[1], a.index, m)
    index.train(x)
    index.add(x)
    params = vqindex.SearchParams(nprobe=a.nprobe, num_threads=1)
    nq = q.shape[0]
    seen = {}
    real = drv.search_ivf_fused

    def spy(*args):
        seen["args"] = list(args)
        return real(*args)

    def best(fn):
        out = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            for i in range(a.calls):
                fn(i % nq)
            out.append((time.perf_counter() - t0) / a.calls * 1e6)
        return min(out)

    search = lambda i: index.search(q[i:i + 1], 10, params=params)  # noqa: E731
    drv.search_ivf_fused = spy
    try:
        for i in range(50):
            search(i)
        if "args" not in seen:
            raise SystemExit("this index's one-query search does not make the one compiled call")
        args = seen["args"]

        def kernel(i):
            args[0] = q[i:i + 1]
            real(*args)

        t_search = best(search)
        t_kernel = best(kernel)
        drv.search_ivf_fused = lambda *args: None
        t_python = best(search)
    finally:
        drv.search_ivf_fused = real
    print(f"{a.index} n={a.n} nprobe={a.nprobe}, one query per call, 1 thread (us per call)")
    print(f"search()            {t_search:8.1f}")
    print(f"compiled call alone {t_kernel:8.1f}")
    print(f"Python (no-op call) {t_python:8.1f}")


if __name__ == "__main__":
    main()
