"""IndexRefine: rerank a k_factor * k shortlist of a base index with exact float distances."""
import numpy as np

from .._validation import (MAX_NORM2, as_ids, check_finite_file, check_id_range,
                           check_ids_file, row_norms2)
from ..errors import ArgumentTypeError, IdNotFoundError
from .base import Index

__all__ = ["IndexRefine"]


def _selector_hits(sel, ids):
    """bool (len(ids),): sel.is_member(id) for every id (base.selector_members when present)."""
    from . import base as _base
    members = getattr(_base, "selector_members", None)
    if members is not None:
        return np.asarray(members(sel, ids), bool)
    return np.fromiter((bool(sel.is_member(int(i))) for i in ids), bool, ids.shape[0])


class IndexRefine(Index):
    """Wraps a code index; keeps the float vectors (in memory or a memory-mapped file).

    FAISS's IndexRefineFlat / "RFlat" / "Refine(Flat)". Search asks the base index for
    k_factor * k candidates and returns the k best by exact distance.

    The Refine index and its base share one lock: every write (add, remove_ids, reset)
    changes both under it, after its fallible work, and a search takes one view of both
    (the float vectors and the base's snapshot) under it, so the candidates of the base
    always have their vectors.
    """

    _file_kind = "refine"
    _mmap_arrays = ("vectors",)

    def __init__(self, base, k_factor=4.0):
        if not isinstance(base, Index) or isinstance(base, IndexRefine):
            raise ArgumentTypeError(f"IndexRefine needs a code index as its base (Flat, IVF, HNSW), "
                            f"got {type(base).__name__}")
        super().__init__(base.d, getattr(base, "_metric", base.metric_type))
        self.base = base
        self._lock = base._lock  # one lock for the pair (see the class docstring)
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

    @property
    def ids(self):
        """The ids of the stored vectors (read-only), as the base index holds them."""
        return self.base.ids

    @property
    def sa_code_size(self):
        return self.base.sa_code_size

    # ------------------------------------------------------------------ file state
    def _state(self):
        """(meta, arrays, children) for io.write_index (under the shared lock)."""
        return {}, {"vectors": self._vectors, "vec_ids": self._vec_ids}, {"base": self.base}

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        """A new index from a file: vectors float32 (n, d) finite with norms <= MAX_NORM,
        vec_ids unique and exactly the base's ids."""
        base = children.get("base")
        if base is None:
            raise ctx.fail("a Refine index needs its base index")
        d = meta["d"]
        vecs = ctx.array(arrays, "vectors", np.float32, 2)
        vids = ctx.array(arrays, "vec_ids", np.int64, 1)
        if vecs.shape != (base.ntotal, d) or vids.shape != (base.ntotal,):
            raise ctx.fail(f"refine vectors {vecs.shape} / ids {vids.shape} do not match the "
                           f"base ({base.ntotal} vectors of d={d})")
        check_ids_file(vids, ctx, "vec_ids")
        if not np.array_equal(np.sort(vids), np.sort(np.asarray(base.ids))):
            raise ctx.fail("refine vec_ids are not the ids of the base index")
        for r0 in range(0, vecs.shape[0], 1 << 16):
            s2 = row_norms2(np.asarray(vecs[r0:r0 + (1 << 16)]))
            if s2.size and not (np.isfinite(s2).all() and s2.max() <= MAX_NORM2):
                check_finite_file(np.asarray(vecs[r0:r0 + (1 << 16)]), "vectors", ctx)
                raise ctx.fail("refine vectors have rows of norm above 2^60")
        index = cls(base)
        index._vectors, index._vec_ids = vecs, vids
        return index

    # ------------------------------------------------------------------ storage verbs
    def train(self, x):
        self.base.train(x)
        return self

    def add(self, x, num_threads=None):
        """Add vectors with ids after the largest stored one (0, 1, ... when empty)."""
        x = self._prep(x)
        batch = self.base._prepare_add(x, num_threads)
        with self._lock:
            self._publish(batch, x, self.base._fresh_ids(x.shape[0]))

    def add_with_ids(self, x, ids, num_threads=None):
        """Add vectors with the given ids (unique, in [0, 2^63 - 1], not present).

        Parameters
        ----------
        x : array_like, float32 (n, d)
        ids : array_like, int64 (n,)
        num_threads : int, optional
        """
        x = self._prep(x)
        ids = as_ids(ids, len(x))
        self.base._check_batch_ids(ids)
        batch = self.base._prepare_add(x, num_threads)  # fallible work, outside the lock
        with self._lock:
            self.base._check_new_ids(ids)
            self._publish(batch, x, ids)

    def _publish(self, batch, x, ids):
        """Under the lock: new vector arrays first (the last fallible step), then the base's
        commit, then the vectors in one assignment."""
        vectors = np.concatenate([np.asarray(self._vectors), x])
        vec_ids = np.concatenate([self._vec_ids, ids])
        self.base._commit_add(batch, ids)
        self._vectors, self._vec_ids, self._sorted = vectors, vec_ids, None

    def remove_ids(self, sel):
        """Remove by ids (array) or a selector with `is_member(id)`; returns the count removed."""
        with self._lock:
            vec_ids = self._vec_ids
            if hasattr(sel, "is_member"):
                hit = _selector_hits(sel, vec_ids)
            else:
                hit = np.isin(vec_ids, as_ids(sel))
            if not hit.any():
                return 0
            vectors = np.asarray(self._vectors)[~hit]
            kept = vec_ids[~hit]
            n = self.base.remove_ids(vec_ids[hit])
            self._vectors, self._vec_ids, self._sorted = vectors, kept, None
            return n

    def reset(self):
        """Remove every vector (training is kept)."""
        empty_v, empty_i = np.zeros((0, self.d), np.float32), np.zeros(0, np.int64)
        with self._lock:
            self.base.reset()
            self._vectors, self._vec_ids, self._sorted = empty_v, empty_i, None

    # ------------------------------------------------------------------ reconstruction
    def reconstruct(self, key):
        """The stored float vector of one id."""
        with self._lock:
            return np.array(self._vectors[self._rows(as_ids([key], what="key"))[0]])

    def reconstruct_n(self, i0=0, ni=None):
        """Stored float vectors of ids i0 .. i0+ni-1 (float32 (ni, d)); ni <= ntotal."""
        with self._lock:
            i0, ni = check_id_range(i0, ni, self.ntotal)
            return np.array(self._vectors[self._rows(np.arange(i0, i0 + ni, dtype=np.int64))])

    def reconstruct_batch(self, ids):
        """Stored float vectors of these ids (float32 (len(ids), d))."""
        with self._lock:
            return np.array(self._vectors[self._rows(as_ids(ids))])

    def sa_encode(self, x):
        return self.base.sa_encode(x)

    def sa_decode(self, codes):
        return self.base.sa_decode(codes)

    def _lookup(self):
        """(sorted ids, their rows) of the vectors (under the lock)."""
        if self._sorted is None:
            order = np.argsort(self._vec_ids, kind="stable")
            self._sorted = (self._vec_ids[order], order)
        return self._sorted

    def _rows(self, ids, lookup=None):
        sids, order = self._lookup() if lookup is None else lookup
        if len(ids) == 0:
            return np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(sids, ids), max(len(sids) - 1, 0))
        if len(sids) == 0 or np.any(sids[at] != ids):
            bad = ids[(sids[at] != ids)][0] if len(sids) else ids[0]
            raise IdNotFoundError(f"id {int(bad)} is not in the index")
        return order[at]

    # ------------------------------------------------------------------ search
    def _search_keys(self, x, k, p):
        from ..kernels import driver as _drv
        from ..kernels._threads import maybe_threads, resolve_threads
        kf = p.k_factor if p.k_factor is not None else 1.0
        kk = max(k, int(np.ceil(k * kf)))
        nt = resolve_threads(p.num_threads)
        pb = p.merged(self.base.params)
        base = self.base
        if getattr(base, "_accepts_snapshot", False):
            # one view of both: the vectors and the base's snapshot under the shared lock
            with self._lock:
                vectors, lookup = np.asarray(self._vectors), self._lookup()
                snap = base._snapshot(pb, base.fastscan)
            _, cand = base._search_keys(x, kk, pb, snap=snap)
        else:  # a base without a snapshot hook: its whole search under the lock
            with self._lock:
                vectors, lookup = np.asarray(self._vectors), self._lookup()
                _, cand = base._search_keys(x, kk, pb)
        valid = cand >= 0
        rows = np.full(cand.shape, -1, np.int64)
        if valid.any():
            rows[valid] = self._rows(cand[valid], lookup)
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
