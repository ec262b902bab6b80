"""IndexRefine: rerank a k_factor * k shortlist of a base index with exact float distances."""
import numpy as np

from .._validation import as_ids
from .base import Index

__all__ = ["IndexRefine"]


class IndexRefine(Index):
    """Wraps a code index; keeps the float vectors (in memory or a memory-mapped file).

    FAISS's IndexRefineFlat / "RFlat" / "Refine(Flat)". Search asks the base index for
    k_factor * k candidates and returns the k best by exact distance.
    """

    def __init__(self, base, k_factor=4.0):
        super().__init__(base.d, base._metric)
        self.base = base
        self.params.k_factor = float(k_factor)
        self.params.num_threads = base.params.num_threads
        self._vectors = np.zeros((0, base.d), np.float32)
        self._vec_ids = np.zeros(0, np.int64)
        self._sorted = None

    # delegate the FAISS surface of the base
    ntotal = property(lambda self: self.base.ntotal)
    is_trained = property(lambda self: self.base.is_trained)
    code_size = property(lambda self: self.base.code_size)
    codec = property(lambda self: self.base.codec)

    def train(self, x):
        self.base.train(x)
        return self

    def add(self, x, num_threads=None):
        x = self._prep(x)
        start = self.base._next_id() if self.base.ntotal else 0
        self.add_with_ids(x, np.arange(start, start + len(x), dtype=np.int64), num_threads)

    def add_with_ids(self, x, ids, num_threads=None):
        x = self._prep(x)
        ids = as_ids(ids, len(x))
        self.base.add_with_ids(x, ids, num_threads=num_threads)  # validates ids first
        self._vectors = np.concatenate([np.asarray(self._vectors), x])
        self._vec_ids = np.concatenate([self._vec_ids, ids])
        self._sorted = None

    def remove_ids(self, sel):
        n = self.base.remove_ids(sel)
        if n:
            keep = np.isin(self._vec_ids, self.base.ids)
            self._vectors = np.asarray(self._vectors)[keep]
            self._vec_ids = self._vec_ids[keep]
            self._sorted = None
        return n

    def reset(self):
        self.base.reset()
        self._vectors = np.zeros((0, self.d), np.float32)
        self._vec_ids = np.zeros(0, np.int64)
        self._sorted = None

    def reconstruct(self, key):
        return np.array(self._vectors[self._rows(as_ids([key]))[0]])

    def reconstruct_n(self, i0=0, ni=None):
        ni = self.ntotal - i0 if ni is None else ni
        return np.array(self._vectors[self._rows(np.arange(i0, i0 + ni, dtype=np.int64))])

    def sa_encode(self, x):
        return self.base.sa_encode(x)

    def sa_decode(self, codes):
        return self.base.sa_decode(codes)

    def _rows(self, ids):
        if self._sorted is None:
            order = np.argsort(self._vec_ids, kind="stable")
            self._sorted = (self._vec_ids[order], order)
        sids, order = self._sorted
        at = np.minimum(np.searchsorted(sids, ids), max(len(sids) - 1, 0))
        if len(sids) == 0 or np.any(sids[at] != ids):
            bad = ids[(sids[at] != ids)][0] if len(sids) else ids[0]
            raise KeyError(f"id {int(bad)} is not in the index")
        return order[at]

    def _search_keys(self, x, k, p):
        from ..kernels import driver as _drv
        from ..kernels._threads import maybe_threads, resolve_threads
        kf = p.k_factor if p.k_factor is not None else 1.0
        kk = max(k, int(np.ceil(k * kf)))
        nt = resolve_threads(p.num_threads)
        _, cand = self.base._search_keys(x, kk, p.merged(self.base.params))
        with self._lock:
            vectors = np.asarray(self._vectors)
            valid = cand >= 0
            rows = np.full(cand.shape, -1, np.int64)
            if valid.any():
                rows[valid] = self._rows(cand[valid])
        nq = x.shape[0]
        keys = np.empty((nq, k), np.float32)
        slot = np.empty((nq, k), np.int64)
        with maybe_threads(nt, nt > 1 and nq > 1):
            _drv.refine_topk(vectors, rows, x, self._is_ip, keys, slot, parallel=nt > 1 and nq > 1)
        ids = np.where(slot >= 0, np.take_along_axis(cand, np.maximum(slot, 0), 1), -1)
        return keys, ids

    def _range_keys(self, x, radius, p):
        """Exact range search over the stored float vectors (chunked, no nq x n x d array)."""
        from ..kernels import driver as _drv
        from ..kernels._threads import maybe_threads, resolve_threads
        nt = resolve_threads(p.num_threads)
        with self._lock:
            vectors = np.asarray(self._vectors)
            vec_ids = self._vec_ids
        nq = x.shape[0]
        kmax = np.full(nq, -radius if self._is_ip else radius, np.float32)
        counts = np.zeros(nq, np.int64)
        with maybe_threads(nt, nt > 1 and nq > 1):
            _drv.float_range(vectors, x, self._is_ip, kmax, counts, np.zeros(0, np.float32),
                             np.zeros(0, np.int64), False, parallel=nt > 1 and nq > 1)
            keys = np.empty(int(counts.sum()), np.float32)
            rows = np.empty(int(counts.sum()), np.int64)
            _drv.float_range(vectors, x, self._is_ip, kmax, counts, keys, rows, True,
                             parallel=nt > 1 and nq > 1)
        ids = vec_ids[rows]
        if p.filter is not None:
            from .base import filter_mask
            ok = filter_mask(p.filter, ids).astype(bool)
            per = np.repeat(np.arange(nq), counts)
            counts = np.bincount(per[ok], minlength=nq)
            keys, ids = keys[ok], ids[ok]
        lims = np.zeros(nq + 1, np.int64)
        lims[1:] = np.cumsum(counts)
        return lims, keys, ids
