"""usearch: "M<connectivity>,<dtype>" HNSW graphs, dtype f16 / i8 / b1 / f32.

usearch.index.Index(ndim, metric, dtype, connectivity, expansion_add=100): metric cos for
angular data, ip for inner product, l2sq for euclidean; b1 stores the sign bits of each
vector (np.packbits(x > 0)) and ranks by Hamming distance (an approximation of the angle; for
euclidean data it only sees signs). Query param expansion_search (alias ef). f16/f32 rows are
"float", i8 and b1 rows "codes". Threads: the add/search threads arguments.
"""
import re

import numpy as np

from ..base import Config, Method, grid
from ._util import saved_size

LIBRARY = "usearch"
INSTALL = "usearch"
DTYPES = ("f16", "i8", "b1", "f32")


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("usearch", "M16,i8", grid(expansion_search=[32]))]
    return [Config("usearch", f"M16,{dt}", grid(expansion_search=[32, 64, 128, 256]))
            for dt in ("f16", "i8", "b1")]


class Adapter(Method):
    family = "usearch"

    def __init__(self, cfg, metric, threads):
        super().__init__(cfg, metric, threads)
        m = re.match(r"^M(\d+),(f16|i8|b1|f32)$", cfg.index, re.I)
        if not m:
            raise ValueError(f"usearch config must be M<connectivity>,<{'|'.join(DTYPES)}>, "
                             f"got {cfg.index!r}")
        self.connectivity, self.dtype = int(m.group(1)), m.group(2).lower()
        self.kind = "codes" if self.dtype in ("i8", "b1") else "float"

    def _rows(self, x):
        x = np.ascontiguousarray(x, np.float32)
        return np.packbits(x > 0, axis=1) if self.dtype == "b1" else x

    def build(self, x):
        from usearch.index import Index
        if self.dtype == "b1":
            metric = "hamming"
        else:
            metric = {"angular": "cos", "euclidean": "l2sq", "ip": "ip"}[self.metric]
        self.index = Index(ndim=x.shape[1], metric=metric, dtype=self.dtype,
                           connectivity=self.connectivity, expansion_add=100)
        self.index.add(np.arange(len(x)), self._rows(x),
                       threads=getattr(self, "build_threads", self.threads))
        self.note = f"metric {metric}, dtype {self.dtype}, expansion_add=100"
        if self.dtype == "b1":
            self.note += ", sign bits of each vector"

    def search(self, q, k, qp):
        ef = qp.get("expansion_search", qp.get("ef", 64))
        self.index.expansion_search = max(int(ef), k)
        res = self.index.search(self._rows(q), k, threads=self.threads)
        keys = np.asarray(res.keys, np.int64)
        out = np.full((len(q), k), -1, np.int64)
        if keys.ndim == 1:
            c = int(np.asarray(res.count)) if hasattr(res, "count") else len(keys)
            out[0, :c] = keys[:c]
        else:
            counts = np.asarray(res.counts)
            for i in range(len(q)):
                out[i, :counts[i]] = keys[i, :counts[i]]
        return out

    def file_size(self, tmpdir):
        return saved_size(self.index.save, tmpdir, "u.usearch"), True
