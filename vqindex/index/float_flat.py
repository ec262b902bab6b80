"""Exact float32 storage: the factory's `Flat` token on every index type.

* `IndexFlat` ("Flat"): every vector scanned exactly (faiss IndexFlatL2 / IndexFlatIP).
* `IndexIVFFlat` ("IVF<nlist>,Flat"): k-means lists of float vectors, `nprobe` lists scanned
  exactly (faiss IndexIVFFlat).
* `IndexHNSWFlat` ("HNSW<M>,Flat"): a faiss HNSW graph over the float vectors, searched by
  faiss (faiss IndexHNSWFlat), with vqindex's ids, filters and removals on top.

Ids are built in (IDMap semantics), as for the code indexes, and each can be the base of
`IndexRefine`. Distances follow faiss: squared L2, or inner product (cosine: on normalised
vectors; larger is better). Flat and IVF publish a new immutable state on every write, so
searches running in other threads see the state before or after it, never a mix.
"""
from __future__ import annotations

import threading

import numpy as np

from .._validation import as_ids, as_vectors
from .base import Index, filter_mask, selector_members
from .params import METRIC_L2, check_int

__all__ = ["IndexFlat", "IndexIVFFlat", "IndexHNSWFlat"]


def _faiss():
    import faiss
    return faiss


def _errors():
    from .. import errors
    return errors


def _not_found(key):
    return getattr(_errors(), "IdNotFoundError", KeyError)(f"id {int(key)} is not in the index")


def _arg_error(msg):
    return getattr(_errors(), "ArgumentError", ValueError)(msg)


class _State:
    """One published state: float vectors (n, d), their ids (n,), the IVF list of each row
    (n,) or None, and a lazily built id lookup."""

    __slots__ = ("vectors", "ids", "lists", "_lookup", "_lists_order", "_vnorm2")

    def __init__(self, vectors, ids, lists=None):
        self.vectors, self.ids, self.lists = vectors, ids, lists
        self._lookup = self._lists_order = self._vnorm2 = None

    def lookup(self):
        if self._lookup is None:
            order = np.argsort(self.ids, kind="stable")
            self._lookup = (self.ids[order], order)
        return self._lookup

    def rows_of(self, ids):
        sids, order = self.lookup()
        if sids.shape[0] == 0:
            if ids.shape[0]:
                raise _not_found(ids[0])
            return ids[:0]
        at = np.minimum(np.searchsorted(sids, ids), sids.shape[0] - 1)
        bad = sids[at] != ids
        if bad.any():
            raise _not_found(ids[bad][0])
        return order[at]

    def vnorm2(self):
        if self._vnorm2 is None:
            v = self.vectors
            self._vnorm2 = np.einsum("ij,ij->i", v, v, dtype=np.float64).astype(np.float32)
        return self._vnorm2

    def list_order(self, nlist):
        """(rows sorted by list, start of each list (nlist + 1,))."""
        if self._lists_order is None:
            order = np.argsort(self.lists, kind="stable")
            starts = np.searchsorted(self.lists[order], np.arange(nlist + 1))
            self._lists_order = (order, starts.astype(np.int64))
        return self._lists_order


def _topk(keys, rows, k):
    """Best k (smallest keys) per row of `keys` (c, m); rows: (m,) or (c, m) storage rows.
    Returns keys (c, k) float32 (+inf padded) and rows (c, k) int64 (-1 padded)."""
    c, m = keys.shape
    out_k = np.full((c, k), np.inf, np.float32)
    out_r = np.full((c, k), -1, np.int64)
    if m == 0:
        return out_k, out_r
    kk = min(k, m)
    part = np.argpartition(keys, kk - 1, axis=1)[:, :kk] if kk < m else np.tile(np.arange(m), (c, 1))
    pk = np.take_along_axis(keys, part, 1)
    rr = rows[part] if rows.ndim == 1 else np.take_along_axis(rows, part, 1)
    order = np.lexsort((rr, pk), axis=1) if c else np.zeros((0, kk), np.int64)
    pk = np.take_along_axis(pk, order, 1)
    rr = np.take_along_axis(rr, order, 1)
    ok = np.isfinite(pk)
    out_k[:, :kk] = np.where(ok, pk, np.inf)
    out_r[:, :kk] = np.where(ok, rr, -1)
    return out_k, out_r


class IndexFloat(Index):
    """Shared machinery of the exact-float indexes (storage, ids, reconstruct, sa codes)."""

    _file_codec = False
    _mmap_arrays = ("vectors",)
    #: bytes of one query chunk's score matrix in the exact scans
    scan_chunk_bytes = 32 << 20

    def __init__(self, d, metric=METRIC_L2):
        super().__init__(d, metric)
        self._data = _State(np.zeros((0, self.d), np.float32), np.zeros(0, np.int64),
                            None if not self._has_lists else np.zeros(0, np.int64))
        self._max_id = -1

    _has_lists = False

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return int(self._data.ids.shape[0])

    @property
    def ids(self) -> np.ndarray:
        """int64 (ntotal,): the ids in storage order (read-only)."""
        v = self._data.ids.view()
        v.flags.writeable = False
        return v

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def code_size(self) -> int:
        """Bytes per stored vector (4 * d: float32)."""
        return 4 * self.d

    sa_code_size = code_size
    codec = None

    # ------------------------------------------------------------------ writes
    def train(self, x):
        """Nothing to learn for exact storage (validates `x`, float32 (n, d))."""
        self._prep(x, "training vectors")
        return self

    def add(self, x, num_threads=None):
        """Add vectors, float32 (n, d), with ids after the largest stored one, as faiss ``add``."""
        x = self._prep(x)
        batch = self._prepare_add(x, num_threads)
        with self._lock:
            self._commit_add(batch, self._fresh_ids(x.shape[0]))

    def add_with_ids(self, x, ids, num_threads=None):
        """Add vectors, float32 (n, d), with int64 ids (n,) unique and not yet stored."""
        x = self._prep(x)
        ids = as_ids(ids, x.shape[0])
        self._check_batch_ids(ids)
        batch = self._prepare_add(x, num_threads)
        with self._lock:
            self._check_new_ids(ids)
            self._commit_add(batch, ids)

    # the add protocol shared with IndexRefine (prepare outside the lock, commit under it)
    def _fresh_ids(self, n):
        return np.arange(self._max_id + 1, self._max_id + 1 + n, dtype=np.int64)

    @staticmethod
    def _check_batch_ids(ids):
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise _arg_error(f"add_with_ids: duplicate id {int(uniq[counts > 1][0])} in the batch")

    def _check_new_ids(self, ids):
        hit = np.isin(ids, self.ids)
        if hit.any():
            raise _arg_error(f"add_with_ids: id {int(ids[hit][0])} is already in the index")

    def _prepare_add(self, x, num_threads=None):
        if not self.is_trained:
            raise getattr(_errors(), "NotTrainedError", RuntimeError)(
                f"{type(self).__name__} must be trained before add (call train first)")
        return x, (self._assign_lists(x) if self._has_lists else None)

    def _commit_add(self, batch, ids):
        x, lists = batch
        self._append(x, ids, lists)

    def add_sa_codes(self, codes, ids=None):
        """Add vectors from `sa_encode` codes, uint8 (n, sa_code_size) (faiss
        ``add_sa_codes``); ids int64 (n,) or None (sequential)."""
        x = self.sa_decode(codes)
        return self.add(x) if ids is None else self.add_with_ids(x, ids)

    def _append(self, x, ids, lists):
        st = self._data
        vec = np.concatenate([np.asarray(st.vectors), x])
        new_lists = None if lists is None else np.concatenate([st.lists, lists])
        self._data = _State(vec, np.concatenate([st.ids, ids]), new_lists)
        if ids.shape[0]:
            self._max_id = max(self._max_id, int(ids.max()))

    def _assign_lists(self, x):
        raise NotImplementedError

    def _next_id(self):
        return self._max_id + 1

    def remove_ids(self, sel):
        """Remove by ids (int array) or a faiss IDSelector; returns the number removed."""
        with self._lock:
            st = self._data
            if hasattr(sel, "is_member"):
                hit = selector_members(sel, st.ids)
            else:
                hit = np.isin(st.ids, as_ids(sel))
            removed = int(hit.sum())
            if removed:
                keep = ~hit
                self._data = _State(np.asarray(st.vectors)[keep], st.ids[keep],
                                    None if st.lists is None else st.lists[keep])
            return removed

    def reset(self):
        """Remove every vector (training is kept)."""
        with self._lock:
            self._data = _State(np.zeros((0, self.d), np.float32), np.zeros(0, np.int64),
                                None if not self._has_lists else np.zeros(0, np.int64))
            self._max_id = -1

    # ------------------------------------------------------------------ reads
    def reconstruct(self, key) -> np.ndarray:
        """The stored vector of id `key`: float32 (d,)."""
        return self.reconstruct_batch(np.array([key]))[0]

    def reconstruct_batch(self, ids) -> np.ndarray:
        """The stored vectors of `ids` (int64 (n,)): float32 (n, d)."""
        st = self._data
        return np.array(st.vectors[st.rows_of(as_ids(ids))], dtype=np.float32)

    def reconstruct_n(self, i0: int = 0, ni=None) -> np.ndarray:
        """The stored vectors of ids i0 .. i0 + ni - 1: float32 (ni, d)."""
        i0 = check_int(i0, "i0", 0)
        ni = self.ntotal - i0 if ni is None else check_int(ni, "ni", 0, self.ntotal)
        return self.reconstruct_batch(np.arange(i0, i0 + ni, dtype=np.int64))

    def sa_encode(self, x) -> np.ndarray:
        """Standalone codes of `x`: its float32 bytes, uint8 (n, 4 d) (faiss IndexFlat)."""
        x = self._prep(x)
        return np.ascontiguousarray(x).view(np.uint8).reshape(x.shape[0], 4 * self.d)

    def sa_decode(self, codes) -> np.ndarray:
        """float32 (n, d) vectors from `sa_encode` codes, uint8 (n, 4 d)."""
        from .._validation import as_codes
        codes = as_codes(codes, 4 * self.d)
        return as_vectors(codes.view(np.float32), self.d, "decoded codes")

    # ------------------------------------------------------------------ exact scans
    def _keys(self, x, vectors, vnorm2):
        s = x @ vectors.T
        if self._is_ip:
            return -s
        qn = np.einsum("ij,ij->i", x, x)[:, None]
        return np.maximum(vnorm2[None, :] - 2.0 * s + qn, 0.0).astype(np.float32)

    def _scan(self, x, k, st, rows, mask):
        """Exact top-k of queries x over the rows `rows` (None: all) of state st."""
        vectors = st.vectors if rows is None else st.vectors[rows]
        vn = st.vnorm2() if rows is None else st.vnorm2()[rows]
        m = vectors.shape[0]
        rows_arr = np.arange(m, dtype=np.int64) if rows is None else rows
        chunk = max(1, self.scan_chunk_bytes // (4 * max(m, 1)))
        keys = np.empty((x.shape[0], k), np.float32)
        out = np.empty((x.shape[0], k), np.int64)
        for a in range(0, x.shape[0], chunk):
            kk = self._keys(x[a:a + chunk], vectors, vn)
            if mask is not None:
                kk[:, ~mask[rows_arr]] = np.inf
            keys[a:a + chunk], out[a:a + chunk] = _topk(kk, rows_arr, k)
        return keys, out

    def _row_mask(self, st, flt):
        if flt is None:
            return None
        return filter_mask(flt, st.ids).astype(bool)

    def _rows_to_ids(self, st, rows):
        return np.where(rows >= 0, st.ids[np.maximum(rows, 0)], -1)

    def _range_rows(self, x, radius, st, rows_per_query, mask):
        key_max = -radius if self._is_ip else radius
        lims = np.zeros(x.shape[0] + 1, np.int64)
        keys, ids = [], []
        for i in range(x.shape[0]):
            rows = rows_per_query(i)
            kk = self._keys(x[i:i + 1], st.vectors[rows], st.vnorm2()[rows])[0]
            ok = kk < key_max
            if mask is not None:
                ok &= mask[rows]
            keys.append(kk[ok])
            ids.append(st.ids[rows[ok]])
            lims[i + 1] = lims[i] + int(ok.sum())
        return (lims, np.concatenate(keys).astype(np.float32) if keys else np.zeros(0, np.float32),
                np.concatenate(ids) if ids else np.zeros(0, np.int64))

    # ------------------------------------------------------------------ merge / files
    def merge_from(self, other, add_id: int = 0):
        """Move every vector of `other` (same kind, d, metric and partition) into this index,
        ids shifted by `add_id`; `other` is emptied (faiss ``merge_from``)."""
        from ..interop import _check_mergeable
        _check_mergeable(self, other)
        add_id = check_int(add_id, "add_id", 0)
        with other._lock:
            st = other._data
            x = np.array(st.vectors)
            ids = st.ids + add_id
            lists = None if st.lists is None else st.lists.copy()
        with self._lock:
            hit = np.isin(ids, self._data.ids)
            if hit.any():
                raise _arg_error(f"merge_from: id {int(ids[hit][0])} is in both indexes "
                                 f"(pass add_id to shift the other's ids)")
            self._append(x, ids, lists)
        other.reset()

    def _state(self):
        st = self._data
        return {"nstored": int(st.ids.shape[0])}, {"vectors": st.vectors, "ids": st.ids}, {}

    @classmethod
    def _check_file_arrays(cls, meta, arrays, ctx):
        from .._validation import check_ids_file
        d = int(meta["d"])
        n = ctx.count(meta, "nstored")
        vec = ctx.array(arrays, "vectors", np.float32, 2)
        ids = ctx.array(arrays, "ids", np.int64, 1)
        if vec.shape != (n, d) or ids.shape != (n,):
            raise ctx.fail(f"vectors {vec.shape} / ids {ids.shape} do not match nstored={n}, d={d}")
        check_ids_file(ids, ctx)
        if n and not np.isfinite(np.asarray(vec)).all():
            raise ctx.fail("vectors hold NaN or inf")
        return n, vec, np.ascontiguousarray(ids)


class IndexFlat(IndexFloat):
    """Exact search over float32 vectors (faiss IndexFlat, with ids built in)."""

    _file_kind = "float_flat"

    def __init__(self, d: int, metric=METRIC_L2):
        super().__init__(d, metric)

    def _search_keys(self, x, k, p):
        st = self._data
        return self._finish(st, *self._scan(x, k, st, None, self._row_mask(st, p.filter)))

    def _finish(self, st, keys, rows):
        return keys, self._rows_to_ids(st, rows)

    def _range_keys(self, x, radius, p):
        st = self._data
        allrows = np.arange(st.ids.shape[0], dtype=np.int64)
        return self._range_rows(x, radius, st, lambda i: allrows, self._row_mask(st, p.filter))

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        n, vec, ids = cls._check_file_arrays(meta, arrays, ctx)
        index = cls(int(meta["d"]), meta["metric_type"])
        index._data = _State(vec, ids)
        index._max_id = int(ids.max()) if n else -1
        return index


class IndexIVFFlat(IndexFloat):
    """IVF over exact float32 vectors (faiss IndexIVFFlat, with ids built in)."""

    _file_kind = "float_ivf"
    _has_lists = True

    def __init__(self, d: int, nlist: int, metric=METRIC_L2, quantizer=None):
        super().__init__(d, metric)
        self.nlist = check_int(nlist, "nlist", 1, 1 << 24)
        faiss = _faiss()
        if quantizer is None:
            quantizer = faiss.IndexFlatIP(self.d) if self._is_ip else faiss.IndexFlatL2(self.d)
        if quantizer.d != self.d:
            raise _arg_error(f"quantizer dimension {quantizer.d} != index dimension {self.d}")
        self.quantizer = quantizer
        self.params.nprobe = 1
        self.centroids = None
        if quantizer.is_trained and quantizer.ntotal == self.nlist:
            self.centroids = quantizer.reconstruct_n(0, self.nlist)

    @property
    def is_trained(self) -> bool:
        return self.centroids is not None

    def train(self, x, niter: int = 20, seed: int = 1234):
        """k-means (faiss) of x, float32 (n >= nlist, d), for the coarse lists."""
        x = self._prep(x, "training vectors")
        if x.shape[0] < self.nlist:
            raise _arg_error(f"training needs at least nlist={self.nlist} vectors, got {x.shape[0]}")
        if self.is_trained:
            return self
        faiss = _faiss()
        km = faiss.Kmeans(self.d, self.nlist, niter=niter, seed=seed, spherical=self._is_ip,
                          verbose=False)
        try:
            km.train(x)
        except RuntimeError as exc:
            raise getattr(_errors(), "TrainingError", RuntimeError)(
                f"k-means failed: {str(exc).splitlines()[0][:200]}") from None
        with self._lock:
            self.quantizer.reset()
            self.quantizer.add(km.centroids)
            self.centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
        return self

    def _assign_lists(self, x):
        _, lists = self.quantizer.search(x, 1)
        return lists[:, 0].astype(np.int64)

    def list_sizes(self) -> np.ndarray:
        """int64 (nlist,): vectors per list."""
        return np.bincount(self._data.lists, minlength=self.nlist).astype(np.int64)

    def _probe_rows(self, x, nprobe, st):
        order, starts = st.list_order(self.nlist)
        _, probes = self.quantizer.search(x, nprobe)

        def rows(i):
            ls = probes[i][probes[i] >= 0]
            if ls.shape[0] == 0:
                return np.zeros(0, np.int64)
            return np.concatenate([order[starts[l]:starts[l + 1]] for l in ls])
        return rows

    def _search_keys(self, x, k, p):
        st = self._data
        mask = self._row_mask(st, p.filter)
        rows = self._probe_rows(x, min(p.nprobe, self.nlist), st)
        keys = np.empty((x.shape[0], k), np.float32)
        out = np.empty((x.shape[0], k), np.int64)
        for i in range(x.shape[0]):
            keys[i:i + 1], out[i:i + 1] = self._scan(x[i:i + 1], k, st, rows(i), mask)
        return keys, self._rows_to_ids(st, out)

    def _range_keys(self, x, radius, p):
        st = self._data
        return self._range_rows(x, radius, st, self._probe_rows(x, min(p.nprobe, self.nlist), st),
                                self._row_mask(st, p.filter))

    def _state(self):
        meta, arrays, children = super()._state()
        meta.update(nlist=self.nlist, trained=self.centroids is not None)
        arrays["lists"] = self._data.lists
        if self.centroids is not None:
            arrays["centroids"] = self.centroids
        return meta, arrays, children

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        n, vec, ids = cls._check_file_arrays(meta, arrays, ctx)
        nlist = ctx.count(meta, "nlist", 1 << 24)
        lists = ctx.array(arrays, "lists", np.int64, 1)
        if lists.shape != (n,) or (n and (lists.min() < 0 or lists.max() >= nlist)):
            raise ctx.fail(f"IVF list assignment is inconsistent (shape {lists.shape}, nlist {nlist})")
        faiss = _faiss()
        d, metric = int(meta["d"]), meta["metric_type"]
        quant = faiss.IndexFlatL2(d) if metric == METRIC_L2 else faiss.IndexFlatIP(d)
        if ctx.flag(meta, "trained"):
            cent = ctx.array(arrays, "centroids", np.float32, 2)
            if cent.shape != (nlist, d) or not np.isfinite(cent).all():
                raise ctx.fail(f"centroids have shape {cent.shape} (expected ({nlist}, {d})) or "
                               f"hold NaN/inf")
            quant.add(np.ascontiguousarray(cent))
        elif n:
            raise ctx.fail("an untrained IVF index holds vectors")
        index = cls(d, nlist, metric, quantizer=quant)
        index._data = _State(vec, ids, np.ascontiguousarray(lists))
        index._max_id = int(ids.max()) if n else -1
        return index


class IndexHNSWFlat(IndexFloat):
    """HNSW graph over float32 vectors, built and searched by faiss (IndexHNSWFlat), with
    vqindex's ids, filters and `remove_ids` (removed vectors stay in the graph for
    navigation and never appear in results). Searches and writes take the index lock:
    faiss's graph is updated in place."""

    _file_kind = "float_hnsw"

    def __init__(self, d: int, M: int = 32, metric=METRIC_L2, efConstruction: int = 40):
        super().__init__(d, metric)
        self.M = check_int(M, "M", 2, 512)
        self._efc = check_int(efConstruction, "efConstruction", 1, 1 << 16)
        self.params.efSearch = 16  # faiss's default
        self._deleted = np.zeros(0, bool)
        self._graph = self._new_graph()

    def _new_graph(self):
        faiss = _faiss()
        mt = faiss.METRIC_INNER_PRODUCT if self._is_ip else faiss.METRIC_L2
        g = faiss.IndexHNSWFlat(self.d, self.M, mt)
        g.hnsw.efConstruction = self._efc
        return g

    @property
    def efConstruction(self) -> int:
        return self._efc

    @efConstruction.setter
    def efConstruction(self, value):
        self._efc = check_int(value, "efConstruction", 1, 1 << 16)
        self._graph.hnsw.efConstruction = self._efc

    @property
    def ntotal(self) -> int:
        return int((~self._deleted).sum())

    @property
    def ids(self) -> np.ndarray:
        v = self._data.ids[~self._deleted]
        v.flags.writeable = False
        return v

    def _live(self):
        st = self._data
        live = ~self._deleted
        return st, live

    def _append(self, x, ids, lists):
        self._graph.add(x)
        super()._append(x, ids, None)
        self._deleted = np.concatenate([self._deleted, np.zeros(x.shape[0], bool)])

    def _commit_add(self, batch, ids):
        # a removed id may come back: its old (deleted) row forgets it
        old = np.isin(self._data.ids, ids) & self._deleted
        if old.any():
            st = self._data
            new_ids = st.ids.copy()
            new_ids[old] = -1 - np.flatnonzero(old)  # never matched (ids are >= 0)
            self._data = _State(st.vectors, new_ids)
        super()._commit_add(batch, ids)

    def remove_ids(self, sel):
        with self._lock:
            st = self._data
            hit = (selector_members(sel, st.ids) if hasattr(sel, "is_member")
                   else np.isin(st.ids, as_ids(sel))) & ~self._deleted
            self._deleted = self._deleted | hit
            return int(hit.sum())

    def reset(self):
        with self._lock:
            super().reset()
            self._deleted = np.zeros(0, bool)
            self._graph = self._new_graph()

    def reconstruct_batch(self, ids):
        ids = as_ids(ids)
        with self._lock:
            st = self._data
            rows = st.rows_of(ids)
            if self._deleted[rows].any():
                raise _not_found(ids[self._deleted[rows]][0])
            return np.array(st.vectors[rows], dtype=np.float32)

    def reconstruct_n(self, i0=0, ni=None):
        i0 = check_int(i0, "i0", 0)
        ni = self.ntotal - i0 if ni is None else check_int(ni, "ni", 0, self.ntotal)
        return self.reconstruct_batch(np.arange(i0, i0 + ni, dtype=np.int64))

    def _allowed_rows(self, st, flt):
        allowed = ~self._deleted
        if flt is not None:
            allowed &= filter_mask(flt, st.ids).astype(bool)
        return allowed

    def _search_keys(self, x, k, p):
        faiss = _faiss()
        with self._lock:
            st = self._data
            allowed = self._allowed_rows(st, p.filter)
            sp = faiss.SearchParametersHNSW()
            sp.efSearch = max(int(p.efSearch), k)
            sel = None
            if not allowed.all():
                bits = np.packbits(allowed, bitorder="little")
                sel = faiss.IDSelectorBitmap(allowed.shape[0], faiss.swig_ptr(bits))
                sp.sel = sel
            D, rows = self._graph.search(x, k, params=sp)
            del sel
        keys = -D if self._is_ip else D
        keys = np.where(rows >= 0, keys, np.inf).astype(np.float32)
        return keys, self._rows_to_ids(st, rows.astype(np.int64))

    def _range_keys(self, x, radius, p):
        with self._lock:
            st = self._data
            allowed = self._allowed_rows(st, p.filter)
        rows = np.flatnonzero(allowed).astype(np.int64)
        return self._range_rows(x, radius, st, lambda i: rows, None)

    def merge_from(self, other, add_id=0):
        from ..interop import _check_mergeable
        _check_mergeable(self, other)
        add_id = check_int(add_id, "add_id", 0)
        with other._lock:
            ids = other.ids + add_id
            x = other.reconstruct_batch(other.ids)
        self.add_with_ids(x, ids)
        other.reset()

    # ------------------------------------------------------------------ files
    def graph_arrays(self):
        """The faiss graph as arrays: levels int32 (n,), offsets uint64 (n+1,), neighbors
        int32, entry_point, max_level."""
        faiss = _faiss()
        g = self._graph.hnsw
        return {"levels": faiss.vector_to_array(g.levels).astype(np.int32),
                "offsets": faiss.vector_to_array(g.offsets).astype(np.int64),
                "neighbors": faiss.vector_to_array(g.neighbors).astype(np.int32),
                "entry_point": int(g.entry_point), "max_level": int(g.max_level)}

    def _state(self):
        with self._lock:
            ga = self.graph_arrays()
            st = self._data
            meta = {"nstored": int(st.ids.shape[0]), "M": self.M, "efConstruction": self._efc,
                    "entry_point": ga["entry_point"], "max_level": ga["max_level"]}
            live_ids = np.where(self._deleted, -1, st.ids)  # removed rows: id -1 in the file
            arrays = {"vectors": st.vectors, "ids": live_ids.astype(np.int64),
                      "levels": ga["levels"], "offsets": ga["offsets"],
                      "neighbors": ga["neighbors"]}
            return meta, arrays, {}

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        faiss = _faiss()
        d, metric = int(meta["d"]), meta["metric_type"]
        n = ctx.count(meta, "nstored")
        vec = ctx.array(arrays, "vectors", np.float32, 2)
        ids = np.ascontiguousarray(ctx.array(arrays, "ids", np.int64, 1))
        if vec.shape != (n, d) or ids.shape != (n,):
            raise ctx.fail(f"vectors {vec.shape} / ids {ids.shape} do not match nstored={n}")
        deleted = ids < 0
        if np.any(ids < -1):
            raise ctx.fail("ids below -1")
        live = ids[~deleted]
        if np.unique(live).shape[0] != live.shape[0]:
            raise ctx.fail("duplicate ids")
        if n and not np.isfinite(np.asarray(vec)).all():
            raise ctx.fail("vectors hold NaN or inf")
        M = ctx.count(meta, "M", 512)
        index = cls(d, max(M, 2), metric, max(1, ctx.count(meta, "efConstruction", 1 << 16)))
        g = index._graph.hnsw
        cum = faiss.vector_to_array(g.cum_nneighbor_per_level).astype(np.int64)
        levels = ctx.array(arrays, "levels", np.int32, 1).astype(np.int64)
        offsets = ctx.array(arrays, "offsets", np.int64, 1)
        neighbors = ctx.array(arrays, "neighbors", np.int32, 1)
        if levels.shape != (n,) or offsets.shape != (n + 1,):
            raise ctx.fail("HNSW levels / offsets do not match nstored")
        if n and (levels.min() < 1 or levels.max() > cum.shape[0] - 1):
            raise ctx.fail("HNSW levels out of range")
        if offsets[0] != 0 or np.any(np.diff(offsets) != cum[levels]) or offsets[-1] != neighbors.shape[0]:
            raise ctx.fail("HNSW offsets are inconsistent with the levels")
        if neighbors.shape[0] and (neighbors.min() < -1 or neighbors.max() >= n):
            raise ctx.fail("HNSW neighbour ids out of range")
        ep, ml = int(meta.get("entry_point", -1)), int(meta.get("max_level", -1))
        if n and (not 0 <= ep < n or ml != int(levels.max()) - 1 or levels[ep] - 1 != ml):
            raise ctx.fail("HNSW entry point / max level inconsistent")
        if n == 0 and neighbors.shape[0]:
            raise ctx.fail("HNSW neighbours without nodes")
        faiss.downcast_index(index._graph.storage).add(np.ascontiguousarray(vec))
        faiss.copy_array_to_vector(levels.astype(np.int32), g.levels)
        faiss.copy_array_to_vector(offsets.astype(np.uint64), g.offsets)
        faiss.copy_array_to_vector(np.ascontiguousarray(neighbors), g.neighbors)
        g.entry_point, g.max_level = (ep, ml) if n else (-1, -1)
        index._graph.ntotal = n
        index._data = _State(np.ascontiguousarray(vec), np.where(deleted, -1 - np.arange(n), ids))
        index._deleted = deleted
        index._max_id = int(live.max()) if live.shape[0] else -1
        return index
