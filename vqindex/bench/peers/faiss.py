"""faiss: faiss.index_factory strings ("Flat", "HNSW32,Flat", "IVF1024,PQ192x4fs,RFlat",
"RR,RaBitQ", "RR,RaBitQfs", "IVF1024,RaBitQ4", "HNSW32,RaBitQ4", "RR,SQtq4", "RR,SQtqmse4")
plus "EDEN<b>" = IndexPreTransform(RandomRotationMatrix, IndexEDEN(d, metric, b, UNBIASED)).

Query params: nprobe, efSearch (faiss.ParameterSpace), k_factor (set on the IndexRefine), qb
(RaBitQ query bits). Threads: faiss.omp_set_num_threads (set and restored by the sweep).
IndexHNSWRaBitQ is L2-only: it runs with L2 on the unit vectors of angular data (same ranking).
"""
import re

from ..base import Config, Method, grid, nprobes
from ._util import saved_size

LIBRARY = "faiss"
INSTALL = "faiss-cpu"


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("faiss", "Flat", slow=True),
                Config("faiss", "HNSW32,Flat", grid(efSearch=[32]))]
    npb = nprobes(nlist, (8, 16, 32, 64))
    npb2 = nprobes(nlist, (16, 32))
    m = d // 2 if d % 2 == 0 else d
    return [Config("faiss", "Flat", slow=True, note="exact baseline"),
            Config("faiss", "HNSW32,Flat", grid(efSearch=[32, 64, 128])),
            Config("faiss", f"IVF{nlist},PQ{m}x4fs,RFlat", grid(nprobe=npb2, k_factor=[2, 4, 8])),
            Config("faiss", "RR,RaBitQ", slow=True),
            Config("faiss", "RR,RaBitQfs", slow=True),
            Config("faiss", f"IVF{nlist},RaBitQ4", grid(nprobe=npb)),
            Config("faiss", "HNSW32,RaBitQ4", grid(efSearch=[32, 64, 128])),
            Config("faiss", "EDEN4", slow=True),
            Config("faiss", "RR,SQtq4", slow=True),
            Config("faiss", "RR,SQtqmse4", slow=True)]


class Adapter(Method):
    family = "faiss"

    def __init__(self, cfg, metric, threads):
        super().__init__(cfg, metric, threads)
        up = cfg.index.upper()
        self.kind = ("float" if up in ("FLAT", "HNSW32,FLAT") or up.endswith(",FLAT")
                     else "codes+rerank" if "RFLAT" in up or "REFINE" in up else "codes")

    def build(self, x):
        import faiss
        d = x.shape[1]
        desc = self.config.index
        fm = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        m = re.match(r"^EDEN(\d)$", desc, re.I)
        if m:
            rr = faiss.RandomRotationMatrix(d, d)
            rr.init(1234)
            inner = faiss.IndexEDEN(d, fm, int(m.group(1)), faiss.EDENScaleType_UNBIASED)
            self._keep = (rr, inner)
            self.index = faiss.IndexPreTransform(rr, inner)
        else:
            if "HNSW" in desc.upper() and "RABITQ" in desc.upper():
                fm = faiss.METRIC_L2  # IndexHNSWRaBitQ is L2-only; same ranking on unit vectors
                self.note = "L2 metric (IndexHNSWRaBitQ is L2-only; vectors are unit-norm)"
            self.index = faiss.index_factory(d, desc, fm)
        self.index.train(x)
        self.index.add(x)
        self._refine = None
        try:
            self._refine = faiss.downcast_index(self.index)
            if not hasattr(self._refine, "k_factor"):
                self._refine = None
        except Exception:
            self._refine = None

    def _apply(self, qp):
        import faiss
        ps = faiss.ParameterSpace()
        for k, v in qp.items():
            if k == "k_factor":
                if self._refine is None:
                    raise ValueError("k_factor needs a refine index")
                self._refine.k_factor = float(v)
            elif k == "qb":
                ivf = faiss.try_extract_index_ivf(self.index)
                tgt = ivf if ivf is not None else faiss.downcast_index(
                    faiss.downcast_index(self.index).index if hasattr(self.index, "index") else self.index)
                tgt.qb = int(v)
            else:
                ps.set_index_parameter(self.index, k, v)

    def search(self, q, k, qp):
        if qp != getattr(self, "_qp", None):
            self._apply(qp)
            self._qp = dict(qp)
        return self.index.search(q, k)[1]

    def file_size(self, tmpdir):
        import faiss
        try:
            return saved_size(lambda p: faiss.write_index(self.index, p), tmpdir, "f.faiss"), True
        except Exception:
            try:
                return self.index.sa_code_size() * self.index.ntotal, False
            except Exception:
                return None, False
