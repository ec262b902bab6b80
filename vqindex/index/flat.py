"""IndexFlatCodes: scan every code with the shared LUT kernel."""
import numpy as np

from ..kernels._threads import resolve_threads
from .base import IndexCodes
from .params import METRIC_L2

__all__ = ["IndexFlatCodes"]


class IndexFlatCodes(IndexCodes):
    """Flat index over codec codes (FAISS IndexFlatCodes / IndexRaBitQ / IndexEDEN analogue)."""

    def _search_keys(self, x, k, p, for_range=False):
        nt = resolve_threads(p.num_threads)
        queries = self.codec.prepare_queries(x, num_threads=nt)
        nq, n = len(queries), self.ntotal
        k = min(k, n) if for_range else k
        # one task per query, or split the codes into chunks when queries < threads
        chunks = 1 if nq >= nt or n < 4096 else nt
        bounds = np.linspace(0, n, chunks + 1).astype(np.int64)
        task_query = np.repeat(np.arange(nq, dtype=np.int64), chunks)
        seg = np.arange(nq * chunks, dtype=np.int64)
        seg_start = np.tile(bounds[:-1], nq)
        seg_end = np.tile(bounds[1:], nq)
        seg_add = (np.zeros(nq, np.float32) if self._is_ip else queries.qnorm2)
        seg_add = np.repeat(seg_add, chunks)
        keys, ids = self._run_scan(queries, k, p, task_query, seg, seg + 1, seg_start, seg_end,
                                   seg_add, for_range)
        if keys.shape[1] < k:
            pad = k - keys.shape[1]
            keys = np.concatenate([keys, np.full((nq, pad), np.inf, np.float32)], 1)
            ids = np.concatenate([ids, np.full((nq, pad), -1, np.int64)], 1)
        return keys, ids
