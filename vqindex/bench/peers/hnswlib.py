"""hnswlib: "M16" / "M32" float graphs (ef_construction 100); query param ef.

Threads: set_num_threads and knn_query(num_threads=...).
"""
import re

import numpy as np

from ..base import Config, Method, grid
from ._util import saved_size

LIBRARY = "hnswlib"
INSTALL = "hnswlib (or vqindex[bench])"


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("hnswlib", "M16", grid(ef=[32]))]
    return [Config("hnswlib", f"M{m}", grid(ef=[32, 64, 128, 256])) for m in (16, 32)]


class Adapter(Method):
    family = "hnswlib"
    kind = "float"

    def build(self, x):
        import hnswlib
        m = re.match(r"^M(\d+)$", self.config.index, re.I)
        if not m:
            raise ValueError(f"hnswlib config must be M<int>, got {self.config.index!r}")
        space = "l2" if self.metric == "euclidean" else "ip"
        self.index = hnswlib.Index(space=space, dim=x.shape[1])
        self.index.init_index(max_elements=len(x), ef_construction=100, M=int(m.group(1)),
                              random_seed=100)
        bt = getattr(self, "build_threads", self.threads)
        self.index.set_num_threads(bt)
        self.index.add_items(x, np.arange(len(x)), num_threads=bt)
        self.index.set_num_threads(self.threads)
        self.note = "ef_construction=100"

    def search(self, q, k, qp):
        self.index.set_ef(max(int(qp.get("ef", 64)), k))
        labels, _ = self.index.knn_query(q, k=k, num_threads=self.threads)
        return labels.astype(np.int64)

    def file_size(self, tmpdir):
        return saved_size(self.index.save_index, tmpdir, "h.bin"), True
