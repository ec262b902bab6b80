"""ann-benchmarks adapter for vqindex (https://github.com/erikbern/ann-benchmarks).

Copy this folder to `ann_benchmarks/algorithms/vqindex/` (module.py, config.yml, a Dockerfile
that `pip install`s vqindex) or import it directly. `VQIndex(metric, index_string)`:
metric is ann-benchmarks' "angular" (-> vqindex.METRIC_COSINE) or "euclidean" (-> METRIC_L2);
index_string is a vqindex.index_factory description ("BQ4", "IVF1024,BQ4,RFlat",
"HNSW32,EDEN4"); query arguments are set with set_query_arguments(...) (see its docstring).
"""
import numpy as np

try:  # inside the ann-benchmarks harness
    from ann_benchmarks.algorithms.base.module import BaseANN
except ImportError:  # standalone: a minimal stand-in with the same interface
    class BaseANN(object):
        """Stand-in for ann_benchmarks.algorithms.base.module.BaseANN."""

        def done(self):
            pass

        def get_memory_usage(self):
            """Resident memory in kB (ann-benchmarks' convention), or None."""
            try:
                import psutil
                return psutil.Process().memory_info().rss / 1024
            except ImportError:
                try:
                    import resource
                    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                except ImportError:
                    return None

        def fit(self, X):
            pass

        def query(self, q, n):
            return []

        def batch_query(self, X, n):
            self.res = [self.query(q, n) for q in X]

        def get_batch_results(self):
            return self.res

        def get_additional(self):
            return {}

        def set_query_arguments(self, *args):
            pass

        def __str__(self):
            return self.name


import vqindex  # noqa: E402
from vqindex import SearchParams  # noqa: E402

_METRICS = {"angular": vqindex.METRIC_COSINE, "euclidean": vqindex.METRIC_L2,
            "ip": vqindex.METRIC_INNER_PRODUCT}


class VQIndex(BaseANN):
    """vqindex.index_factory index in the ann-benchmarks harness.

    Constructor args (config.yml "args"): metric ("@metric"), index_string, then optional
    build threads (default 1). Query args: IVF: (nprobe,) or (nprobe, k_factor); HNSW:
    (efSearch,) or (efSearch, k_factor); flat: () or (k_factor,) for an RFlat index.
    """

    def __init__(self, metric, index_string, num_threads=1):
        if metric not in _METRICS:
            raise ValueError(f"unsupported metric {metric!r}; expected angular or euclidean")
        self._metric = metric
        self._index_string = index_string
        self._threads = int(num_threads)
        self._params = SearchParams(num_threads=1)
        self._query_args = ()
        self.index = None
        self.res = None
        self.name = f"VQIndex({index_string})"

    # ------------------------------------------------------------------ build
    def fit(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.index = vqindex.index_factory(X.shape[1], self._index_string, _METRICS[self._metric])
        desc = self._index_string.upper()
        if "IVF" in desc:
            import re
            nlist = int(re.search(r"IVF(\d+)", desc).group(1))
            if len(X) < nlist:
                raise ValueError(f"{len(X)} vectors cannot train IVF{nlist}")
        self.index.train(X)
        self.index.add(X, num_threads=self._threads)

    # ------------------------------------------------------------------ query
    def set_query_arguments(self, *args):
        """IVF: nprobe[, k_factor]; HNSW: efSearch[, k_factor]; flat: [k_factor]."""
        desc = self._index_string.upper()
        p = SearchParams(num_threads=1)
        args = list(args)
        if "IVF" in desc and args:
            p.nprobe = int(args.pop(0))
        elif "HNSW" in desc and args:
            p.efSearch = int(args.pop(0))
        if args:
            p.k_factor = float(args.pop(0))
        if args:
            raise ValueError(f"too many query arguments for {self._index_string}: {self._query_args}")
        self._params = p
        self._query_args = tuple(a for a in (p.nprobe, p.efSearch, p.k_factor) if a is not None)
        self.name = f"VQIndex({self._index_string}, {', '.join(map(str, self._query_args))})"

    def query(self, v, n):
        q = np.ascontiguousarray(np.asarray(v, dtype=np.float32).reshape(1, -1))
        ids = self.index.search(q, n, params=self._params)[1][0]
        return ids[ids >= 0]

    def batch_query(self, X, n):
        """Batch mode (ann-benchmarks --batch): every thread the harness allows."""
        import os
        X = np.ascontiguousarray(X, dtype=np.float32)
        p = SearchParams(nprobe=self._params.nprobe, efSearch=self._params.efSearch,
                         k_factor=self._params.k_factor, num_threads=os.cpu_count() or 1)
        self.res = self.index.search(X, n, params=p)[1]

    def get_batch_results(self):
        return [row[row >= 0] for row in self.res]

    def get_memory_usage(self):
        usage = super().get_memory_usage()
        return usage

    def get_additional(self):
        return {"index_string": self._index_string}

    def __str__(self):
        return self.name

    def done(self):
        self.index = None
        self.res = None
