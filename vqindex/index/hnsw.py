"""IndexHNSWCodes: an HNSW graph navigated with distances estimated from codes.

Design
------
* Construction: the graph is built by faiss `IndexHNSWFlat(d, M, metric)` on the float
  vectors given to `add` (metric IP for METRIC_INNER_PRODUCT / METRIC_COSINE -- cosine inputs
  are already normalised by `_prep` --, L2 otherwise; efConstruction default 40, settable),
  in the same order as our code storage, so graph node i is storage row i. faiss's HNSW
  construction is fast multi-threaded C++ and builds the graph on exact float distances,
  which gives a better graph than one built on estimates.
* After each add the graph is copied out of faiss into numpy arrays (`levels`, `offsets`,
  `neighbors`, `cum` = cum_nneighbor_per_level, `entry_point`, `max_level`; neighbours of
  node i at level l are neighbors[offsets[i] + cum[l] : offsets[i] + cum[l+1]], -1 padded).
* Search uses only those arrays and the codes (numba kernel `kernels.graph.hnsw_search`):
  greedy descent over the upper levels, then ef-search at level 0, every distance being the
  same LUT estimate as the flat scan (`scan_topk`). So float vectors are not needed at
  query time. The faiss builder (which holds the float vectors) is kept in memory only so
  that later `add`s can extend the graph; `drop_float_graph_builder()` frees it. After that,
  or after loading the index from a file (`set_graph_arrays`), a later `add` rebuilds a
  builder from the decoded stored codes (`codec.decode`) followed by the new floats -- the
  whole graph is then rebuilt on decoded vectors, and a warning says so.
* efSearch: `self.params.efSearch` (default 64) or `SearchParams(efSearch=...)` per call;
  ef = max(efSearch, k).
* Filters (`SearchParams.filter`) and removed vectors: such nodes are still traversed but
  never enter the result heap, and the level-0 search only stops early once the result heap
  holds ef allowed nodes; so k results come back whenever k allowed vectors exist (and are
  reachable). When the filter keeps very few vectors (< 2% of the stored ones, or <= ef),
  the search is a flat scan of the codes instead (cheaper than walking most of the graph).
* remove_ids: an HNSW graph cannot delete nodes, so removed positions stay in storage and in
  the graph (still used for navigation) with a `deleted` flag; they never appear in results,
  id lookups (`reconstruct`, `add_with_ids` duplicate checks) ignore them, and `ntotal` /
  `ids` count only live vectors. `reset` clears everything, including the builder.
* range_search falls back to a flat scan of all (live) codes.
"""
import warnings

import numpy as np

from .._validation import as_ids
from ..kernels import graph as _graph
from ..kernels._threads import resolve_threads, threads
from .base import IndexCodes
from .params import METRIC_L2

__all__ = ["IndexHNSWCodes"]


def _faiss():
    import faiss
    return faiss


_FAISS_THREADS_LOCK = __import__("threading").Lock()

_GRAPH_KEYS = ("levels", "offsets", "neighbors", "cum", "entry_point", "max_level", "deleted")


class IndexHNSWCodes(IndexCodes):
    """HNSW (graph built by faiss on floats) searched with code estimates; see module doc."""

    query_chunk = 32  # queries whose LUTs are built and searched together (one thread)

    def __init__(self, d, codec, M=32, metric=METRIC_L2, efConstruction=40):
        super().__init__(d, codec, metric)
        M = int(M)
        if M < 2:
            raise ValueError(f"HNSW M must be >= 2, got {M}")
        efConstruction = int(efConstruction)
        if efConstruction < 1:
            raise ValueError(f"efConstruction must be >= 1, got {efConstruction}")
        self.M = M
        self._efc = efConstruction
        self.params.efSearch = 64
        self._builder = None
        self._clear_graph()

    # ------------------------------------------------------------------ properties
    @property
    def efConstruction(self):
        return self._efc

    @efConstruction.setter
    def efConstruction(self, v):
        v = int(v)
        if v < 1:
            raise ValueError(f"efConstruction must be >= 1, got {v}")
        self._efc = v
        if self._builder is not None:
            self._builder.hnsw.efConstruction = v

    @property
    def ntotal(self):
        return int(self._ids.shape[0]) - self._ndeleted

    @property
    def ids(self):
        v = self._ids[self._deleted == 0] if self._ndeleted else self._ids.view()
        v.flags.writeable = False
        return v

    @property
    def has_float_graph_builder(self):
        return self._builder is not None

    # ------------------------------------------------------------------ graph arrays
    def _clear_graph(self):
        self._levels = np.zeros(0, np.int32)
        self._offsets = np.zeros(1, np.int64)
        self._neighbors = np.zeros(0, np.int32)
        self._cum = np.zeros(1, np.int32)
        self._entry = -1
        self._max_level = -1
        self._deleted = np.zeros(0, np.uint8)
        self._ndeleted = 0

    def _new_builder(self):
        faiss = _faiss()
        mt = faiss.METRIC_INNER_PRODUCT if self._is_ip else faiss.METRIC_L2
        b = faiss.IndexHNSWFlat(self.d, self.M, mt)
        b.hnsw.efConstruction = self._efc
        return b

    def _refresh_graph(self):
        faiss = _faiss()
        h = self._builder.hnsw
        self._levels = faiss.vector_to_array(h.levels).astype(np.int32)
        self._offsets = faiss.vector_to_array(h.offsets).astype(np.int64)
        self._neighbors = faiss.vector_to_array(h.neighbors).astype(np.int32)
        self._cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int32)
        self._entry = int(h.entry_point)
        self._max_level = int(h.max_level)

    def graph_arrays(self):
        """The graph as a dict of numpy arrays (for the file writer)."""
        return {"levels": self._levels.copy(), "offsets": self._offsets.copy(),
                "neighbors": self._neighbors.copy(), "cum": self._cum.copy(),
                "entry_point": np.int64(self._entry), "max_level": np.int64(self._max_level),
                "deleted": self._deleted.copy()}

    def set_graph_arrays(self, g):
        """Install a graph (dict as from `graph_arrays`) for the stored codes; drops the builder."""
        missing = [k for k in _GRAPH_KEYS if k not in g]
        if missing:
            raise ValueError(f"graph arrays miss {missing}")
        n = int(self._ids.shape[0])
        levels = np.ascontiguousarray(g["levels"], np.int32)
        offsets = np.ascontiguousarray(g["offsets"], np.int64)
        neighbors = np.ascontiguousarray(g["neighbors"], np.int32)
        cum = np.ascontiguousarray(g["cum"], np.int32)
        deleted = np.ascontiguousarray(g["deleted"], np.uint8)
        entry, max_level = int(g["entry_point"]), int(g["max_level"])
        if levels.shape[0] != n or offsets.shape[0] != n + 1 or deleted.shape[0] != n:
            raise ValueError(f"graph arrays describe {levels.shape[0]} nodes, storage holds {n}")
        if n and (offsets[-1] > neighbors.shape[0] or not (0 <= entry < n)
                  or max_level + 2 > cum.shape[0] or neighbors.max(initial=-1) >= n):
            raise ValueError("inconsistent graph arrays")
        with self._lock:
            self._builder = None
            self._levels, self._offsets, self._neighbors, self._cum = levels, offsets, neighbors, cum
            self._entry, self._max_level = entry, max_level
            self._deleted = deleted
            self._ndeleted = int(deleted.sum())
            self._sorted_ids = None

    def drop_float_graph_builder(self):
        """Free the faiss builder (float vectors); a later add rebuilds it from decoded codes."""
        with self._lock:
            self._builder = None

    # ------------------------------------------------------------------ ids (live only)
    def _id_lookup(self):
        if self._sorted_ids is None:
            if self._ndeleted:
                live = np.flatnonzero(self._deleted == 0)
                order = live[np.argsort(self._ids[live], kind="stable")]
            else:
                order = np.argsort(self._ids, kind="stable")
            self._sorted_ids = (self._ids[order], order)
        return self._sorted_ids

    def _next_id(self):
        return int(self._ids.max()) + 1 if self._ids.shape[0] else 0

    def _filter_mask(self, flt):
        """uint8 mask over storage positions (filter AND not deleted), and whether to use it."""
        n = int(self._ids.shape[0])
        if flt is None:
            if not self._ndeleted:
                return np.zeros(0, np.uint8), False
            return (self._deleted == 0).astype(np.uint8), True
        arr = np.asarray(flt)
        if arr.dtype == bool:
            if arr.ndim != 1:
                raise ValueError("filter mask must be 1-D (indexed by id)")
            ok = (self._ids >= 0) & (self._ids < arr.shape[0])
            mask = np.zeros(n, np.uint8)
            mask[ok] = arr[self._ids[ok]]
        else:
            mask = np.isin(self._ids, as_ids(arr, what="filter ids")).astype(np.uint8)
        if self._ndeleted:
            mask[self._deleted != 0] = 0
        return mask, True

    # ------------------------------------------------------------------ storage verbs
    def _add(self, x, ids, num_threads):
        faiss = _faiss()
        nt = resolve_threads(num_threads if num_threads is not None else self.params.num_threads)
        codes, sf = self._encode(x, nt)
        # the graph build is faiss's (OpenMP); its thread count is process-wide, so it is
        # changed only under one lock shared by every vqindex call that touches it
        _FAISS_THREADS_LOCK.acquire()
        old = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(nt)
        try:
            if self._builder is None:
                b = self._new_builder()
                n_old = int(self._ids.shape[0])
                if n_old:
                    warnings.warn(f"IndexHNSWCodes: no float graph builder (dropped or loaded "
                                  f"from a file); rebuilding the HNSW graph from {n_old} decoded "
                                  f"codes plus the new vectors", RuntimeWarning, stacklevel=4)
                    b.add(self._prep(self.codec._decode_parts(self._codes, self._sf)))
                self._builder = b
            self._builder.add(x)
        finally:
            faiss.omp_set_num_threads(old)
            _FAISS_THREADS_LOCK.release()
        self._append(codes, sf, ids, x)
        self._deleted = np.concatenate([self._deleted, np.zeros(len(ids), np.uint8)])
        self._refresh_graph()

    def remove_ids(self, sel):
        """Mark vectors as removed (by ids or selector); returns the count removed."""
        with self._lock:
            live = self._deleted == 0
            if hasattr(sel, "is_member"):
                hit = np.array([bool(sel.is_member(int(i))) for i in self._ids], dtype=bool)
            else:
                hit = np.isin(self._ids, as_ids(sel))
            hit &= live
            removed = int(hit.sum())
            if removed:
                deleted = self._deleted.copy()
                deleted[hit] = 1
                self._deleted = deleted
                self._ndeleted += removed
                self._sorted_ids = None
            return removed

    def reset(self):
        """Remove every vector, the graph and the builder."""
        with self._lock:
            IndexCodes._keep(self, np.zeros(self._ids.shape[0], bool))
            self._builder = None
            self._clear_graph()

    # ------------------------------------------------------------------ search
    def _search_keys(self, x, k, p):
        nt = resolve_threads(p.num_threads)
        with self._lock:  # a consistent snapshot (add replaces these arrays)
            codes, sf, ids = self._codes, self._sf, self._ids
            levels, offsets, neighbors, cum = self._levels, self._offsets, self._neighbors, self._cum
            entry, max_level = self._entry, self._max_level
            mask, use_mask = self._filter_mask(p.filter)
        n = codes.shape[0]
        queries = self.codec._prepare_trusted(x, nt)
        nq = len(queries)
        ef = max(int(p.efSearch if p.efSearch is not None else 64), k)
        if entry < 0:
            return self._flat_keys(queries, k, nt, codes, sf, ids, mask, use_mask)
        if use_mask:
            allowed = int(mask.sum())
            if allowed <= ef or allowed < 0.02 * n:
                return self._flat_keys(queries, k, nt, codes, sf, ids, mask, use_mask)
        a_ell, a_ip = (0.0, 1.0) if self._is_ip else (1.0, -2.0)
        qadd = (np.zeros(nq, np.float32) if self._is_ip
                else np.ascontiguousarray(queries.qnorm2, np.float32))
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        # LUTs are built per chunk of queries so that they stay in cache (a BQ4 LUT at
        # d = 384 is 196 KB per query)
        chunk = nq if nt > 1 and nq > 1 else self.query_chunk
        for c0 in range(0, nq, chunk):
            c1 = min(nq, c0 + chunk)
            luts = self.codec.build_luts(queries.v[c0:c1], nt)
            args = (codes, sf, self.codec._secs, luts, self.codec.n_acc, np.float32(a_ell),
                    np.float32(a_ip), qadd[c0:c1], levels, offsets, neighbors, cum, entry,
                    max_level, ef, mask, use_mask)
            if nt == 1 or c1 - c0 == 1:
                _graph._search_range(0, c1 - c0, *args, keys[c0:c1], pos[c0:c1])
            else:
                with threads(nt) as n_thr:
                    _graph.hnsw_search(*args, min(n_thr, c1 - c0), keys[c0:c1], pos[c0:c1])
        out_ids = np.where(pos >= 0, ids[np.maximum(pos, 0)], -1)
        return keys, out_ids

    def _flat_keys(self, queries, k, nt, codes, sf, ids, mask, use_mask):
        """Exact top-k of the estimates over the stored (allowed, live) codes: the driver's
        exact back end over one segment (only the allowed rows when a mask is set)."""
        nq, n = len(queries), codes.shape[0]
        add = (queries.qdotc if self._is_ip else queries.qnorm2).astype(np.float32)[:, None]
        if use_mask:
            rows = np.flatnonzero(mask).astype(np.int64)
            seg_end = np.full((nq, 1), rows.shape[0], np.int64)
        else:
            rows, seg_end = None, np.full((nq, 1), n, np.int64)
        keys, pos = self._exact_search(queries, k, nt, np.zeros((nq, 1), np.int64), seg_end,
                                       add, codes, sf, np.zeros(0, np.uint8), False, rows)
        return keys, self._rows_to_ids(pos, ids)

    def _range_keys(self, x, radius, p):
        """Range search: the exact estimates of every live (allowed) code, thresholded."""
        nt = resolve_threads(p.num_threads)
        with self._lock:
            codes, sf, ids = self._codes, self._sf, self._ids
            mask, use_mask = self._filter_mask(p.filter)
        qt = self.codec._prepare_trusted(x, nt)
        nq, n = len(qt), codes.shape[0]
        add = (qt.qdotc if self._is_ip else qt.qnorm2).astype(np.float32)[:, None]
        lims, keys, rows = self._exact_range(qt, radius, nt, np.zeros((nq, 1), np.int64),
                                             np.full((nq, 1), n, np.int64), add, codes, sf,
                                             mask, use_mask)
        return lims, keys, ids[rows]
