"""rabitqlib: "IVF<nlist>,RaBitQ<b>" (IvfIndex, centroids from faiss k-means, build time
included; b total bits = 1 sign bit + b-1 extra bits), "HNSW<M>,RaBitQ<b>" (HnswIndex over 16
k-means clusters, ef_construction 100), "SymQG<R>" (SymqgIndex, max degree R,
ef_construction 100). Query params nprobe / ef. Threads: num_threads arguments.

It needs d % 64 == 0: other dimensions are zero-padded (exact for inner products and L2).
"""
import re

import numpy as np

from ..base import Config, Method, grid, nprobes
from ._util import kmeans, pad, saved_size

LIBRARY = "rabitqlib"
INSTALL = "rabitqlib"


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("rabitqlib", f"IVF{nlist},RaBitQ4", grid(nprobe=[min(8, nlist)]))]
    return [Config("rabitqlib", f"IVF{nlist},RaBitQ4", grid(nprobe=nprobes(nlist, (8, 16, 32, 64)))),
            Config("rabitqlib", "HNSW16,RaBitQ4", grid(ef=[32, 64, 128])),
            Config("rabitqlib", "SymQG32", grid(ef=[32, 64, 128]))]


class Adapter(Method):
    family = "rabitqlib"

    def build(self, x):
        import rabitqlib
        d0 = x.shape[1]
        x = pad(x, 64)  # its FhtKacRotator needs d % 64 == 0; zero padding is exact
        n, d = x.shape
        self.note = f"zero-padded d {d0} -> {d}" if d != d0 else ""
        metric = "l2" if self.metric == "euclidean" else "ip"
        bt = getattr(self, "build_threads", self.threads)
        desc = self.config.index
        m_ivf = re.match(r"^IVF(\d+),RaBitQ(\d+)$", desc, re.I)
        m_hnsw = re.match(r"^HNSW(\d+),RaBitQ(\d+)$", desc, re.I)
        m_sym = re.match(r"^SymQG(\d+)$", desc, re.I)
        if m_ivf:
            nlist, bits = int(m_ivf.group(1)), int(m_ivf.group(2))
            cent, assign = kmeans(x, nlist, self.metric)
            self.index = rabitqlib.IvfIndex(d, n, nlist, bits, metric)
            self.index.build(x, cent, assign, num_threads=bt)
            self.kind_ = "ivf"
        elif m_hnsw:
            M, bits = int(m_hnsw.group(1)), int(m_hnsw.group(2))
            cent, assign = kmeans(x, 16, self.metric)
            self.index = rabitqlib.HnswIndex(d, n, M, 100, bits, metric)
            self.index.build(x, cent, assign, num_threads=bt)
            self.kind_ = "hnsw"
        elif m_sym:
            self.index = rabitqlib.SymqgIndex(d, int(m_sym.group(1)), metric, 0)
            self.index.build(x, 100, num_threads=bt)
            self.kind_ = "symqg"
            self.kind = "codes+rerank"  # SymphonyQG keeps the float vectors for exact rerank
            self.note = ("SymqgIndex(quantization_bits=0), ef_construction=100; stores float vectors; "
                         + self.note).strip("; ")
        else:
            raise ValueError(f"rabitqlib config must be IVF<n>,RaBitQ<b>, HNSW<M>,RaBitQ<b> "
                             f"or SymQG<R>, got {desc!r}")

    def search(self, q, k, qp):
        t = self.threads
        q = pad(q, 64)
        if self.kind_ == "ivf":
            res = self.index.search(q, k, int(qp.get("nprobe", 16)), num_threads=t)
        elif self.kind_ == "hnsw":
            res = self.index.search(q, k, max(int(qp.get("ef", 64)), k), num_threads=t)
        else:
            ef = max(int(qp.get("ef", 64)), k)
            res = (self.index.search_batch(q, k, ef, num_threads=t) if len(q) > 1
                   else self.index.search(q, k, ef, num_threads=t))
        ids = np.asarray(res[0])
        out = ids.astype(np.int64)
        out[ids == np.iinfo(np.uint32).max] = -1
        return out

    def file_size(self, tmpdir):
        return saved_size(self.index.save, tmpdir, "r.bin"), True
