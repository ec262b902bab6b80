"""IndexHNSWCodes: an HNSW graph of our own over codes; no float vectors kept.

Design
------
* Storage: codes, scan factors, ids and the graph live in capacity-doubling vqindex arrays
  (rows < n are published; `add` writes rows past n, then publishes the new count). The
  graph uses faiss's HNSW layout (kernels/graph.py): int32 neighbour lists, 2M slots at
  level 0 and M above, `levels` per node, `offsets` derived from the levels. After a build
  the index holds codes + factors + ids + graph, nothing else (RaBitQ's two-stage hop
  records, 64 B a vector at d <= 384, are derived from the codes at the first search and
  held in memory, never in files: `derived_bytes_per_vector`).
* add: HNSW insertion of the new nodes into the existing graph (kernels.graph.hnsw_insert,
  in batches of at most `insert_batch` nodes run on every core: hnsw_insert_batched),
  on float vectors: the vectors being added and, for nodes already stored, their decoded
  codes (decoded for the call only, in chunks; not kept). So an add after `read_index`
  extends the loaded graph; nothing is rebuilt or copied except when an array's capacity
  doubles. Levels are drawn with the HNSW rule from a seed fixed by the row number, so a
  build is reproducible. `M` and `efConstruction` come from the factory string
  ("HNSW32,...") or attributes; efConstruction applies to later adds.
* search: one compiled call per query batch (kernels.graph.hnsw_search_codes; prange over
  chunks of queries when num_threads > 1): greedy descent, ef-search at level 0 with fast
  per-hop estimates (4-bit scalar codes: int8 query x 7-bit levels through native/graph.c's
  AVX2 kernel or its numba twin, then the `ef` list is rescored with the exact estimator;
  RaBitQ's bit planes: int8 query x weighted planes through vq_graph_planes, in two stages
  (the sign plane of every neighbour from a 64-byte record per row, derived from the codes
  when first searched and kept in memory only; the other planes for the neighbours whose
  lower bound may enter the plane_pool x k best; `plane_two_stage`, `plane_sigmas`,
  `plane_pool`), the pool (or, in one stage, the `ef` list) rescored by vq_graph_planes_f32; other byte-aligned codes with two or more coordinates a byte: per-query byte tables, the exact
  estimate up to rounding; other codecs: the exact estimator), and the top k returned.
  ef = max(efSearch, k).
* remove_ids: tombstones. A removed node stays in the graph for navigation, is never
  returned (the search's `ok` mask), and id lookups ignore it; `compact()` rebuilds the graph
  over the live nodes (from their decoded codes) and drops the removed rows.
* filters (SearchParams.filter): inside the traversal (filtered-out nodes are traversed but
  never enter the result list, so k results come back when k allowed nodes are reachable);
  when the filter keeps few rows (a measured cost model, `_scan_instead`), the allowed rows
  are scanned instead, with the same per-hop estimates and exact rescoring of the ef best
  (faiss / qdrant switch the same way); bench/hnsw_filter.py measures the switch.
* concurrency: writers (add, remove_ids, compact, reset) are serialised by `self._lock`;
  a search takes a snapshot (array references, n, entry point) under the short
  `_publish_lock` and runs without a lock. Nodes past the snapshot's n are skipped, so a
  search running during an add never sees a half-inserted node, and stored rows never
  change once published.
* range_search: an exact scan of the live (allowed) codes.
"""
import threading
import warnings

import numpy as np

from .._validation import as_ids, check_finite_file
from ..kernels import graph as _graph
from ..kernels._threads import maybe_threads, resolve_threads
from .base import IndexCodes
from .params import MAX_EF_SEARCH

__all__ = ["IndexHNSWCodes"]

_MAX_LEVELS = 64  # levels per node are capped at 31 by graph.random_levels


def _pos_int(name, v, lo=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {lo}, got {v!r} ({type(v).__name__})")
    v = int(v)
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    return v


class IndexHNSWCodes(IndexCodes):
    """HNSW over codes with fast per-hop estimates and exact final keys; see the module doc."""

    _file_kind = "hnsw"
    _accepts_snapshot = True  # IndexRefine searches it from a snapshot, without the lock
    _mmap_arrays = ("codes",)
    #: the switch of a filtered search to the scan of the allowed rows (`_scan_instead`):
    #: a fixed fraction of the stored rows when set, else the measured cost model
    filter_scan_fraction = None
    filter_scan_cost = 127.0
    #: codes of byte-aligned 1/2/4/8-bit fields with two or more coordinates a byte that the
    #: int8 nibble kernel does not cover (BlockQuant, RaBitQ, 2-bit codes, TQprod2/3) hop on
    #: per-query byte tables (kernels.graph HOP_BYTE); False: the exact estimator per
    #: neighbour (same keys up to float rounding)
    byte_hops = True
    #: codes of 1-bit planes with integer step ratios (RaBitQ) hop on an int8 query and the
    #: masked-byte integer kernel (kernels.graph HOP_PLANES) and rescore the ef list exactly;
    #: False: they take the byte tables (or the exact estimator without byte_hops)
    plane_hops = True
    #: RaBitQ codes whose plane 0 is the sign plane hop in two stages (kernels.graph
    #: module docstring, "Two-stage hops"): every neighbour gets the 1-bit sign-plane estimate, and only
    #: those whose lower bound (estimate - plane_sigmas x its error's standard deviation)
    #: may enter the plane_pool x k best so far also get the full planes; the pool is
    #: rescored exactly at the end. False: every neighbour gets the full planes
    plane_two_stage = True
    _plane_sigmas = 2.0
    _plane_pool = 1
    #: nodes inserted together (kernels.graph.hnsw_insert_batched; at most 1/16 of the graph)
    insert_batch = 256
    #: decoded rows per step when an add needs the stored nodes as floats
    decode_chunk = 8192

    def __init__(self, d, codec, M=32, metric=None, efConstruction=40, efSearch=64):
        from .params import METRIC_L2
        self._publish_lock = threading.Lock()
        self._n = 0
        self._cap = 0
        self._cbuf = np.zeros((0, codec._code_bytes), np.uint8)
        self._sbuf = np.zeros((0, codec.n_acc + 2), np.float32)
        self._ibuf = np.zeros(0, np.int64)
        super().__init__(d, codec, METRIC_L2 if metric is None else metric)
        self.M = _pos_int("M", M, 2)
        self._efc = _pos_int("efConstruction", efConstruction)
        self.params.efSearch = _pos_int("efSearch", efSearch)  # index.efSearch (base)
        self._visit_pool = []
        self._hop = None
        self._rows_gen = 0
        self._coarse_cache = None
        self._coarse_lock = threading.Lock()
        self._plan_cache = None
        self._clear_graph()

    # ------------------------------------------------------------------ storage views
    # rows < n of the capacity buffers; the setters install whole arrays (base __init__, io)
    # (a read-only memory map from read_index(mmap=True) is kept as it is: an add grows
    # into new arrays, so the file is never written)
    def _set_codes(self, v):
        self._cbuf = _as_c(v, np.uint8)
        self._rows_gen = getattr(self, "_rows_gen", 0) + 1

    def _set_sf(self, v):
        self._sbuf = _as_c(v, np.float32)
        self._rows_gen = getattr(self, "_rows_gen", 0) + 1

    def _set_ids(self, v):
        self._ibuf = _as_c(v, np.int64)
        self._n = self._cap = int(self._ibuf.shape[0])

    _codes = property(lambda self: self._cbuf[: self._n], _set_codes)
    _sf = property(lambda self: self._sbuf[: self._n], _set_sf)
    _ids = property(lambda self: self._ibuf[: self._n], _set_ids)

    @property
    def plane_sigmas(self):
        """Two-stage hops: the lower bound's width in standard deviations of the sign-plane
        key's error (default 2: a neighbour that belongs in the pool is missed with
        probability ~ Phi(-2) = 2.3 %, measured in tests/test_hnsw_graph.py)."""
        return self._plane_sigmas

    @plane_sigmas.setter
    def plane_sigmas(self, v):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not np.isfinite(v) or v < 0:
            raise ValueError(f"plane_sigmas must be a finite number >= 0, got {v!r}")
        self._plane_sigmas = float(v)

    @property
    def plane_pool(self):
        """Two-stage hops: the pool of full keys is plane_pool x k (at most efSearch) rows,
        rescored exactly at the end (default 1)."""
        return self._plane_pool

    @plane_pool.setter
    def plane_pool(self, v):
        self._plane_pool = _pos_int("plane_pool", v)

    @property
    def efConstruction(self):
        return self._efc

    @efConstruction.setter
    def efConstruction(self, v):
        self._efc = _pos_int("efConstruction", v)

    @property
    def ntotal(self):
        return self._n - self._ndeleted

    @property
    def ids(self):
        ids = self._ids
        v = ids[self._deleted[: self._n] == 0] if self._ndeleted else ids.view()
        v.flags.writeable = False
        return v

    @property
    def has_float_graph_builder(self):
        """False: the graph is our own and no float vectors are kept (kept for callers of
        the faiss-built versions)."""
        return False

    def drop_float_graph_builder(self):
        """A no-op: no float vectors are kept (kept for callers of earlier versions)."""

    # ------------------------------------------------------------------ graph arrays
    def _clear_graph(self):
        self._cum = _graph.level_cum(self.M, _MAX_LEVELS)
        self._levels = np.zeros(self._cap, np.int32)
        self._offsets = np.zeros(self._cap + 1, np.int64)
        self._nbr = np.zeros(0, np.int32)
        self._entry = -1
        self._max_level = -1
        self._deleted = np.zeros(self._cap, np.uint8)
        self._ndeleted = 0

    @property
    def _neighbors(self):
        return self._nbr[: int(self._offsets[self._n])]

    def _grow(self, rows, slots):
        """Capacity for `rows` nodes and `slots` neighbour slots (doubling; new arrays are
        published by the caller, so searches keep reading the old ones meanwhile)."""
        cap = self._cap
        out = {}
        if rows > cap:
            cap = max(rows, 2 * cap, 64)
            for name, buf in (("_cbuf", self._cbuf), ("_sbuf", self._sbuf),
                              ("_ibuf", self._ibuf), ("_levels", self._levels),
                              ("_deleted", self._deleted)):
                new = np.zeros((cap,) + buf.shape[1:], buf.dtype)
                new[: self._n] = buf[: self._n]
                out[name] = new
            off = np.zeros(cap + 1, np.int64)
            off[: self._n + 1] = self._offsets[: self._n + 1]
            out["_offsets"] = off
            out["_cap"] = cap
        if slots > self._nbr.shape[0]:
            new = np.full(max(slots, 2 * self._nbr.shape[0], 1024), -1, np.int32)
            used = int(self._offsets[self._n])
            new[:used] = self._nbr[:used]
            out["_nbr"] = new
        return out

    def _float_rows(self, x, n0):
        """float32 (n0 + len(x), d): the decoded stored rows, then x (the build's vectors)."""
        if n0 == 0:
            return x
        v = np.empty((n0 + x.shape[0], self.d), np.float32)
        step = self.decode_chunk
        for a in range(0, n0, step):
            b = min(n0, a + step)
            v[a:b] = self._prep(self.codec._decode_parts(self._cbuf[a:b], self._sbuf[a:b]))
        v[n0:] = x
        return v

    def _insert(self, vecs, n0, n1, arrays, num_threads=None):
        """Run the insertion kernel for rows n0 .. n1-1 on `arrays` (the graph buffers):
        batched (kernels.graph.hnsw_insert_batched), so the graph is the same whatever
        the thread count."""
        batch = _pos_int("insert_batch", self.insert_batch)
        nt = resolve_threads(num_threads)
        T = max(1, min(nt, (n1 - n0) // 64 + 1))
        state = np.array([self._entry, self._max_level], np.int64)
        visited = np.zeros((T, n1), np.int32)
        gens = np.zeros(T, np.int64)
        cand_k = np.empty((T, n1 + 1), np.float32)
        cand_i = np.empty((T, n1 + 1), np.int64)
        with maybe_threads(T, T > 1):
            _graph.hnsw_insert_batched(vecs, self._is_ip, n0, n1, arrays["_levels"],
                                       arrays["_offsets"], arrays["_nbr"], self._cum, state,
                                       np.int64(self._efc), visited, gens, cand_k, cand_i,
                                       np.int64(batch), parallel=T > 1)
        return int(state[0]), int(state[1])

    # ------------------------------------------------------------------ ids (live only)
    def _id_lookup(self):
        if self._sorted_ids is None:
            ids = self._ids
            if self._ndeleted:
                live = np.flatnonzero(self._deleted[: self._n] == 0)
                order = live[np.argsort(ids[live], kind="stable")]
            else:
                order = np.argsort(ids, kind="stable")
            self._sorted_ids = (ids[order], order)
        return self._sorted_ids

    def _next_id(self):
        return int(self._ids.max()) + 1 if self._n else 0

    def _live_mask(self, flt, ids, deleted, ndeleted):
        """uint8 mask over storage rows (filter AND not removed), and whether to use it."""
        from .base import filter_mask
        if flt is None:
            if not ndeleted:
                return np.zeros(0, np.uint8), False
            return (deleted == 0).astype(np.uint8), True
        mask = filter_mask(flt, ids)
        if ndeleted:
            mask[deleted != 0] = 0
        return mask, True

    # ------------------------------------------------------------------ storage verbs
    def _add(self, x, ids, num_threads):
        nt = resolve_threads(num_threads if num_threads is not None else self.params.num_threads)
        b = x.shape[0]
        if b == 0:
            return
        codes, sf = self._encode(x, nt)
        n0 = self._n
        n1 = n0 + b
        levels = _graph.random_levels(b, self.M, [0x5EED, n0])
        need = int(self._offsets[n0]) + int(self._cum[levels].sum())
        arrays = {"_cbuf": self._cbuf, "_sbuf": self._sbuf, "_ibuf": self._ibuf,
                  "_levels": self._levels, "_deleted": self._deleted,
                  "_offsets": self._offsets, "_nbr": self._nbr, "_cap": self._cap}
        arrays.update(self._grow(n1, need))
        arrays["_cbuf"][n0:n1] = codes
        arrays["_sbuf"][n0:n1] = sf
        arrays["_ibuf"][n0:n1] = ids
        arrays["_levels"][n0:n1] = levels
        arrays["_deleted"][n0:n1] = 0
        arrays["_offsets"][n0 + 1:n1 + 1] = arrays["_offsets"][n0] + np.cumsum(self._cum[levels])
        vecs = self._float_rows(x, n0)
        entry, max_level = self._insert(vecs, n0, n1, arrays, nt)
        with self._publish_lock:
            for name, val in arrays.items():
                setattr(self, name, val)
            self._n = n1
            self._entry, self._max_level = entry, max_level
            self._sorted_ids = None

    def remove_ids(self, sel):
        """Tombstone vectors (by ids or a selector); returns the count removed. Removed
        nodes still route searches but are never returned; `compact()` drops them."""
        with self._lock:
            ids = self._ids
            if hasattr(sel, "is_member"):
                hit = np.array([bool(sel.is_member(int(i))) for i in ids], dtype=bool)
            else:
                hit = np.isin(ids, as_ids(sel))
            hit &= self._deleted[: self._n] == 0
            removed = int(hit.sum())
            if removed:
                deleted = self._deleted.copy()
                deleted[: self._n][hit] = 1
                with self._publish_lock:
                    self._deleted = deleted
                    self._ndeleted += removed
                    self._sorted_ids = None
            return removed

    def compact(self, num_threads=None):
        """Drop removed rows and rebuild the graph over the live ones (from their decoded
        codes); returns the number of rows dropped."""
        with self._lock:
            if not self._ndeleted:
                return 0
            live = np.flatnonzero(self._deleted[: self._n] == 0)
            dropped = self._n - live.shape[0]
            codes = self._cbuf[live].copy()
            sf = self._sbuf[live].copy()
            ids = self._ibuf[live].copy()
            other = IndexHNSWCodes(self.d, self.codec, self.M, self.metric_type, self._efc)
            other._store_and_link(codes, sf, ids)
            with self._publish_lock:
                for name in ("_cbuf", "_sbuf", "_ibuf", "_levels", "_offsets", "_nbr",
                             "_deleted", "_cap", "_n", "_entry", "_max_level", "_ndeleted"):
                    setattr(self, name, getattr(other, name))
                self._sorted_ids = None
                self._rows_gen += 1
            return dropped

    def _store_and_link(self, codes, sf, ids):
        """Install codes / sf / ids on an empty index and build the graph from their decoded
        vectors (compact, and old files whose graph cannot be used)."""
        n = codes.shape[0]
        self._set_codes(codes)
        self._set_sf(sf)
        self._set_ids(ids)
        self._clear_graph()
        if n == 0:
            return
        levels = _graph.random_levels(n, self.M, [0x5EED, 0])
        self._levels = levels
        self._offsets = np.zeros(n + 1, np.int64)
        self._offsets[1:] = np.cumsum(self._cum[levels])
        self._nbr = np.full(int(self._offsets[n]), -1, np.int32)
        vecs = self._float_rows(np.zeros((0, self.d), np.float32), n)
        arrays = {"_levels": self._levels, "_offsets": self._offsets, "_nbr": self._nbr}
        self._entry = -1
        self._max_level = -1
        self._entry, self._max_level = self._insert(vecs, 0, n, arrays)

    def reset(self):
        """Remove every vector and the graph."""
        with self._lock:
            with self._publish_lock:
                self._n = 0
                self._cap = 0
                self._cbuf = self._cbuf[:0].copy()
                self._sbuf = self._sbuf[:0].copy()
                self._ibuf = self._ibuf[:0].copy()
                self._sorted_ids = None
                self._rows_gen += 1
                self._clear_graph()

    # ------------------------------------------------------------------ files
    def graph_arrays(self):
        """The graph as a dict (what files hold): levels uint8 (n,), neighbors int32 (the
        slots of node after node; offsets follow from the levels), removed storage rows,
        entry point and max level."""
        with self._publish_lock:
            n = self._n
            return {"levels": self._levels[:n].astype(np.uint8),
                    "neighbors": self._nbr[: int(self._offsets[n])].copy(),
                    "deleted_rows": np.flatnonzero(self._deleted[:n]).astype(np.int64),
                    "entry_point": int(self._entry), "max_level": int(self._max_level)}

    def set_graph_arrays(self, g):
        """Install a graph (dict as from `graph_arrays`, or the faiss-layout dict of files
        written by earlier versions: levels, offsets, neighbors, cum, deleted) for the stored
        codes. Every array is checked; ValueError names what is wrong."""
        levels, offsets, nbr, deleted, entry, max_level, relink = _check_graph(
            g, self._n, self.M, self._cum)
        with self._lock:
            if relink:  # an old graph in another slot layout: rebuilt from the codes
                warnings.warn("IndexHNSWCodes: the file's graph uses another neighbour-slot "
                              "layout; rebuilding it from the decoded codes", RuntimeWarning,
                              stacklevel=3)
                self._store_and_link(self._cbuf[: self._n].copy(), self._sbuf[: self._n].copy(),
                                     self._ibuf[: self._n].copy())
                levels, offsets, nbr = self._levels, self._offsets, self._nbr
                entry, max_level = self._entry, self._max_level
            with self._publish_lock:
                self._cap = self._n
                self._levels, self._offsets, self._nbr = levels, offsets, nbr
                self._entry, self._max_level = entry, max_level
                self._deleted = deleted
                self._ndeleted = int(deleted.sum())
                self._sorted_ids = None

    def _state(self):
        """(meta, arrays, children) of the file (the io contract, notes/contracts.md)."""
        g = self.graph_arrays()
        meta = {"nstored": int(self._n), "M": int(self.M), "efConstruction": int(self._efc),
                "entry_point": g["entry_point"], "max_level": g["max_level"],
                "graph_layout": 3}
        arrays = {"codes": self._codes.copy(), "sf": self._sf.copy(), "ids": self._ids.copy(),
                  "levels": g["levels"], "neighbors": g["neighbors"],
                  "deleted_rows": g["deleted_rows"]}
        return meta, arrays, {}

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        """A new index from a file's state; every array is checked (ctx.fail on a problem)."""
        codec = ctx.codec
        try:
            n = int(meta["nstored"])
            M = int(meta["M"])
            efc = int(meta.get("efConstruction", 40))
            index = cls(int(meta["d"]), codec, M, int(meta["metric_type"]), efc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ctx.fail(f"bad HNSW header fields: {exc}") from None
        codes = ctx.array(arrays, "codes", np.uint8, 2)
        sf = ctx.array(arrays, "sf", np.float32, 2)
        ids = ctx.array(arrays, "ids", np.int64, 1)
        width = codec.code_size if ctx.version == 1 else codec._code_bytes
        if codes.shape != (n, width) or sf.shape != (n, codec.n_acc + 2) or ids.shape != (n,):
            raise ctx.fail(f"stored arrays codes {codes.shape}, sf {sf.shape}, ids "
                           f"{ids.shape} do not match nstored={n}, {width} code bytes")
        # finite and bounded, as for Flat/IVF: a factor beyond the bound would load and then
        # decode to vectors that overflow float32 at the next add
        check_finite_file(sf, "sf", ctx)
        g = {"entry_point": meta.get("entry_point"), "max_level": meta.get("max_level")}
        legacy = "graph_arrays" in meta  # format 1/2 files: faiss-layout graph arrays
        if legacy:
            scalars = meta.get("graph_scalars")
            if isinstance(scalars, dict):
                g.update(scalars)
        for key in ("levels", "neighbors", "deleted_rows", "offsets", "cum", "deleted"):
            for name in (key, "graph." + key):
                if name in arrays:
                    g[key] = arrays[name]
        index._set_codes(codes if ctx.version != 1
                         else np.ascontiguousarray(codes[:, : codec._code_bytes]))
        index._set_sf(sf)
        index._set_ids(ids)
        if legacy and "levels" not in g:
            # the graph arrays of an old file were not handed over: rebuild from the codes
            # (the removed rows are unknown then: an old file that has some is refused)
            if meta.get("ntotal") != n:
                raise ctx.fail("an old-layout HNSW file with removed rows needs its graph arrays")
            index._store_and_link(index._cbuf.copy(), index._sbuf.copy(), index._ibuf.copy())
            return index
        try:
            index.set_graph_arrays(g)
        except ValueError as exc:
            raise ctx.fail(str(exc)) from None
        live = ids[index._deleted[:n] == 0]
        if np.unique(live).shape[0] != live.shape[0] or (live.shape[0] and live.min() < 0):
            raise ctx.fail("ids of the live rows are not unique and >= 0")
        return index

    # ------------------------------------------------------------------ search
    def _hop_setup(self):
        """(mode, lut, nbytes, off, t_min, s_t) of the per-hop estimate (kernels.graph)."""
        if self._hop is None or self._hop[0] is not self.codec:
            secs, tables = self.codec.exact_tables
            hop = (_graph.HOP_EXACT, np.zeros(16, np.uint8), 0, 0, 0.0, 1.0)
            if (secs.shape[0] == 1 and self.codec.n_acc == 1 and int(secs[0, 1]) == 4
                    and int(secs[0, 6]) == 1 and int(secs[0, 4]) == 0
                    and int(secs[0, 2]) % 2 == 0):
                t = np.asarray(tables[int(secs[0, 5]): int(secs[0, 5]) + 16], np.float64)
                tmin, span = float(t.min()), float(t.max() - t.min())
                st = span / 127.0 if span > 0 else 1.0
                lut = np.round((t - tmin) / st).clip(0, 127).astype(np.uint8)
                hop = (_graph.HOP_NIBBLE, lut, int(secs[0, 2]) // 2, int(secs[0, 0]), tmin, st)
            elif self.plane_hops and (pp := _planes_plan(secs, tables, self.codec.n_acc)):
                hop = (_graph.HOP_PLANES,) + pp
            elif self.byte_hops:
                plan = _byte_plan(secs, self.codec.n_acc)
                if plan is not None:
                    hop = (_graph.HOP_BYTE, np.zeros(16, np.uint8), plan[1], plan[2], 0.0, 1.0)
            self._hop = (self.codec, hop)
        return self._hop[1]

    @property
    def derived_bytes_per_vector(self):
        """Bytes per stored row that searches derive from the codes and hold in memory
        beyond what files store: the two-stage hops' records (64 at d <= 384; 0 when those
        hops do not apply)."""
        mode, lut, nbytes, off, tmin, st = self._hop_setup()
        return _record_bytes(nbytes) if self._two_stage_applies(mode, lut) else 0

    def _two_stage_applies(self, mode, lut):
        """Whether the hops run in two stages: RaBitQ's planes (plane 0 the sign plane:
        w_0 = 1 + the other weights) and plane_two_stage."""
        return (mode == _graph.HOP_PLANES and self.plane_two_stage and lut.shape[0] >= 2
                and int(lut[0]) == int(lut[1:].astype(np.int64).sum()) + 1)

    def _coarse_setup(self, mode, lut, nbytes, off, st, codes, sf, n, k, ef, gen):
        """The two-stage plane hops' record (rec, recf, fo, lam, kk, w1, rnd) of
        kernels.graph.hnsw_search_codes; an empty rec turns them off."""
        # ef >= n asks for every reachable node: the exhaustive search keeps full keys
        if ef >= n or not self._two_stage_applies(mode, lut):
            return (np.zeros((0, 64), np.uint8), np.zeros((0, 16), np.float32), np.int64(0),
                    np.float32(0), np.int64(1), np.ones(1, np.uint8), np.float32(0))
        lam = self._plane_sigmas
        pool = self._plane_pool
        count = 8 * int(nbytes)
        rec, fo = self._coarse_records(codes, sf, n, lut, int(nbytes), int(off), st, count,
                                       gen)
        kk = min(ef, max(k, pool * k))
        return (rec, rec.view(np.float32), np.int64(fo), np.float32(lam), np.int64(kk),
                np.ones(1, np.uint8), np.float32(2.0 * np.sqrt(count / 24.0)))

    def _coarse_records(self, codes, sf, n, lut, nbytes, off, st, count, gen):
        """uint8 (>= n, R) records of the sign-plane hops (kernels.graph, two-stage hops),
        one per stored row, R a multiple of 64 on 64-byte boundaries so that a hop reads one
        cache line per neighbour at d <= 384: plane 0 (nbytes), then at float32 column fo
        [a_ip scale, the metric's constant term, unit c_i,
        |a_ip scale| unit ||r_i|| / sqrt(count - 1)] (c_i, ||r_i||: `plane_sign_factors`).
        Derived from the codes (not stored in files), in capacity-doubling buffers extended
        by the rows added since the last search: stored rows never change while the
        generation (bumped whenever the codes are replaced) stays the same. `gen` is the
        generation of the caller's snapshot: a search that took its snapshot before a
        compact or reset derives its records from its own codes and caches nothing."""
        R = _record_bytes(nbytes)
        fo = (-(-nbytes // 16) * 16) // 4
        cached = self._coarse_cache
        if cached is not None and cached[:3] == (self.codec, gen, R) and cached[3] >= n:
            return cached[4], fo
        with self._coarse_lock:
            cached = self._coarse_cache
            if cached is not None and cached[:3] == (self.codec, gen, R):
                done, buf = cached[3], cached[4]
            else:
                done, buf = 0, np.zeros((0, R), np.uint8)
            if done >= n:
                return buf, fo
            if n > buf.shape[0]:
                cap = max(n, 2 * buf.shape[0], 1024)
                raw = np.zeros(cap * R + 64, np.uint8)
                a = (-raw.ctypes.data) % 64
                new = raw[a: a + cap * R].reshape(cap, R)
                new[:done] = buf[:done]
                buf = new
            a_ell, a_ip = self._metric_ab()
            view = buf.view(np.float32)
            step = 65536
            for r0 in range(done, n, step):
                r1 = min(n, r0 + step)
                pf = np.empty((r1 - r0, 2), np.float64)
                _graph.plane_sign_factors(codes[r0:r1], np.int64(off), lut, np.int64(nbytes),
                                          np.int64(count), pf)
                s = sf[r0:r1].astype(np.float64)
                buf[r0:r1, :nbytes] = codes[r0:r1, off:off + nbytes]
                view[r0:r1, fo] = a_ip * s[:, 0]
                view[r0:r1, fo + 1] = a_ell * s[:, 1] + (1.0 - a_ell) * s[:, 2]
                view[r0:r1, fo + 2] = st * pf[:, 0]
                view[r0:r1, fo + 3] = (np.abs(a_ip * s[:, 0]) * st * pf[:, 1]
                                       / np.sqrt(max(count - 1, 1)))
            with self._publish_lock:
                if self._rows_gen == gen:
                    self._coarse_cache = (self.codec, gen, R, n, buf)
            return buf, fo

    def _byte_sections(self):
        """HOP_BYTE's sections in byte order (int64 (S, 7); empty for the other modes),
        derived once per codec."""
        cached = getattr(self, "_bplan", None)
        if cached is None or cached[0] is not self.codec:
            secs, _ = self.codec.exact_tables
            plan = _byte_plan(secs, self.codec.n_acc)
            cached = (self.codec, plan[0] if plan is not None else np.zeros((0, 7), np.int64))
            self._bplan = cached
        return cached[1]

    def _scan_instead(self, allowed, n, ef):
        """Whether a filter keeping `allowed` of n rows is searched by a scan of those rows
        (with the same per-hop estimates and rescoring) instead of the traversal.

        Cost model (bench/hnsw_filter.py, MiniLM-20k, HNSW32,EDEN4, one thread, same run):
        the scan costs ~ s n rows, the filtered traversal ~ ef s^-1/2 (it walks past the
        filtered-out nodes); measured graph/scan = 4.5 at s = 0.2, ef = 64, which puts the
        switch at s^1.5 n = filter_scan_cost * ef (s ~ 0.19 at n = 100k, 0.04 at 1M).
        A float `filter_scan_fraction` replaces the model by a fixed fraction."""
        if allowed <= ef:
            return True
        if self.filter_scan_fraction is not None:
            return allowed < self.filter_scan_fraction * n
        s = allowed / max(n, 1)
        return s ** 1.5 * n < self.filter_scan_cost * ef

    def _visit_rows(self, rows, n):
        """Visit-stamp arrays (rows, >= n) and generations: pooled for one-row calls."""
        if rows == 1:
            pool = self._visit_pool
            while pool:
                try:
                    vis, gen = pool.pop()
                except IndexError:  # another thread took the last one
                    break
                if vis.shape[1] >= n:
                    return vis, gen
            return np.zeros((1, max(n, 1024)), np.uint16), np.zeros(1, np.int64)
        return np.zeros((rows, n), np.uint16), np.zeros(rows, np.int64)

    def _snapshot(self, p, blocks=False):
        """One consistent view for a search (array references, n, entry point; `blocks` is
        the Flat/IVF signature's and unused): IndexRefine takes it under the lock it shares
        with this index, with its float vectors, then searches without the lock."""
        return self._snap(p.filter)

    def _snap(self, flt):
        with self._publish_lock:
            n = self._n
            snap = (self._cbuf, self._sbuf, self._ibuf[:n], n, self._levels, self._offsets,
                    self._nbr, self._entry, self._max_level, self._deleted[:n],
                    self._ndeleted, self._rows_gen)
        codes, sf, ids, n, levels, offsets, nbr, entry, max_level, deleted, ndel, gen = snap
        mask, use_mask = self._live_mask(flt, ids, deleted, ndel)
        # gen: the generation of the snapshot's rows (what derived arrays are keyed on)
        return (codes, sf, ids, n, (levels, offsets, nbr, entry, max_level, gen), mask,
                use_mask)

    def _one_call_search(self, x, k, params, num_threads):
        """Small unfiltered searches on one thread (fewer than 16 float32 C-contiguous
        queries, plain parameters) skip the general path's Python work: one check of the
        queries, the cached plan (`_search_plan`), the rotation, one compiled call. Anything
        else returns None and takes the general path (which raises the errors)."""
        small = (self._small_call(x, k, params, num_threads, "efSearch", 15)
                 if self._entry >= 0 else None)
        if small is None:
            return None
        ef, nt = small
        if ef is None:
            ef = 64
        if (type(ef) is not int or not 0 < ef <= MAX_EF_SEARCH
                or (x.shape[0] > 1 and resolve_threads(nt) != 1)):
            return None
        if self.codec._fast_prepare_args() is None:
            return None
        x = self._prep(x, "queries")
        keys, ids = self._graph_keys(x, k, max(ef, k), 1, self._snap(None))
        return self._keys_to_distances(keys), ids

    def _search_keys(self, x, k, p, snap=None):
        nt = resolve_threads(p.num_threads)
        snap = self._snapshot(p) if snap is None else snap
        ef = max(int(p.efSearch if p.efSearch is not None else 64), k)
        return self._graph_keys(x, k, ef, nt, snap)

    def _graph_keys(self, x, k, ef, nt, snap):
        """(keys, ids) of validated queries x over the snapshot `snap`."""
        codes, sf, ids, n, graph, mask, use_mask = snap
        nq = x.shape[0]
        entry = graph[3]
        fpa = self.codec._fast_prepare_args() if nq < 16 and entry >= 0 else None
        if fpa is not None:
            # a few queries: the kernel rotates them (the graph reads nothing else of them)
            vsp = np.empty((self.codec.n_spaces, nq, self.codec.D), np.float32)
            qadd = np.empty(nq, np.float32)
            rot = self._rot_args(fpa, x, True)
        else:
            rot = self._rot_args(self.codec._fast_prepare_args(), x[:0], False)
            queries = self.codec._prepare_trusted(x, nt)
            if entry < 0:
                return self._flat_keys(queries, k, nt, codes[:n], sf[:n], ids, mask, use_mask)
            vsp = queries.spaces
            qadd = np.ascontiguousarray(queries.qdotc if self._is_ip else queries.qnorm2,
                                        np.float32)
        scan_rows = np.zeros(0, np.int32)
        if use_mask:
            allowed = int(mask.sum())
            if allowed == 0:
                fill = np.full((nq, k), np.inf, np.float32)
                return fill, np.full((nq, k), -1, np.int64)
            if self._scan_instead(allowed, n, ef):
                scan_rows = np.flatnonzero(mask).astype(np.int32)
        hop, coarse, static, metric, g = self._search_plan(codes, sf, n, graph, k, ef)
        exact = (codes, static[0], static[1], vsp, sf, static[2])
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        par = nt > 1 and nq > 1
        rows = min(nt, nq) if par else 1
        visited, gens = self._visit_rows(rows, n)
        with maybe_threads(nt, par):
            _graph.hnsw_search_codes(hop, coarse, rot, exact, metric, qadd, g, np.int64(n),
                                     np.int64(ef), (mask, use_mask), scan_rows, visited, gens,
                                     keys, pos, parallel=par)
        if rows == 1 and len(self._visit_pool) < 8:
            self._visit_pool.append((visited, gens))  # list.append / pop are atomic
        return keys, self._rows_to_ids(pos, ids)

    @staticmethod
    def _rot_args(fpa, x, do_rot):
        """The `rot` argument of hnsw_search_codes from the codec's fast-rotation arguments
        (fpa; None: stand-ins of the same types, never read): with do_rot the kernel
        rotates x itself."""
        if fpa is None:
            zs, zp = np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int32)
            fpa = ((zs, zp, np.int64(0)), (False, zs, zp, np.int64(0)))
        (signs, perms, p), (has_proj, psigns, pperms, pp) = fpa
        return (x, signs, perms, p, has_proj, psigns, pperms, pp, do_rot)

    def _search_plan(self, codes, sf, n, graph, k, ef):
        """(hop, coarse, (secs, tables, n_acc), metric, graph tuple) of
        kernels.graph.hnsw_search_codes for this snapshot, k and ef: everything of a search
        but the queries, cached while its inputs (the snapshot's arrays by identity, n, the
        hop attributes) stay the same, so a one-query call assembles one tuple."""
        levels, offsets, nbr, entry, max_level, gen = graph
        # objects by identity (the cache holds them, so their ids cannot be reused while it
        # does), the rest by value: one tuple comparison
        objs = (self.codec, codes, sf, levels, offsets, nbr)
        key = (tuple(map(id, objs)), n, entry, max_level, k, ef, self.plane_hops,
               self.byte_hops, self.plane_two_stage, self._plane_sigmas, self._plane_pool,
               gen)
        cached = self._plan_cache
        if cached is not None and cached[0] == key:
            return cached[2]
        mode, lut, nbytes, off, tmin, st = self._hop_setup()
        fptr = (_graph_dot4_address() if mode == _graph.HOP_NIBBLE else
                _graph_planes_address() if mode == _graph.HOP_PLANES else 0)
        bplan = self._byte_sections() if mode == _graph.HOP_BYTE else np.zeros((0, 7), np.int64)
        fptr2 = _graph_kernel_address("vq_graph_planes_f32") if mode == _graph.HOP_PLANES else 0
        coarse = self._coarse_setup(mode, lut, nbytes, off, st, codes, sf, n, k, ef, gen)
        hop = (np.int64(mode), np.int64(fptr), np.int64(fptr2), np.int64(0), lut,
               np.int64(nbytes), np.int64(off), np.float32(tmin), np.float32(st), bplan)
        secs, tables = self.codec.exact_tables
        g = (levels, offsets, nbr, self._cum, np.int64(entry), np.int64(max_level))
        a_ell, a_ip = self._metric_ab()
        plan = (hop, coarse, (secs, tables, np.int64(self.codec.n_acc)),
                (np.float32(a_ell), np.float32(a_ip)), g)
        self._plan_cache = (key, objs, plan)
        return plan

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
        codes, sf, ids, n, graph, mask, use_mask = self._snapshot(p)
        qt = self.codec._prepare_trusted(x, nt)
        nq = len(qt)
        add = (qt.qdotc if self._is_ip else qt.qnorm2).astype(np.float32)[:, None]
        lims, keys, rows = self._exact_range(qt, radius, nt, np.zeros((nq, 1), np.int64),
                                             np.full((nq, 1), n, np.int64), add, codes[:n],
                                             sf[:n], mask, use_mask)
        return lims, keys, ids[rows]


def _byte_plan(secs, n_acc):
    """(sections in byte order, nbytes, first byte of accumulator 1) when the sections' fields
    (1, 2, 4 or 8 bits) tile bytes 0 .. nbytes of the code with accumulator 0's bytes first
    (kernels.graph HOP_BYTE); else None."""
    if n_acc > 2 or secs.shape[0] == 0:
        return None
    # worth it where a byte holds two or more coordinates (one table lookup replaces two
    # or more decode-multiply-adds); one coordinate a byte (EDEN8) keeps the exact estimator
    coords = int(sum(int(r[2]) * int(r[6]) for r in secs))
    nbytes = int(sum(int(r[2]) * int(r[1]) for r in secs)) // 8
    if coords < 2 * nbytes:
        return None
    order = np.argsort(secs[:, 0], kind="stable")
    plan = np.ascontiguousarray(secs[order], np.int64)
    at, pb, last_acc = 0, None, 0
    for off, width, count, acc, _, _, _ in plan:
        if width not in (1, 2, 4, 8) or (count * width) % 8 or off != at or acc < last_acc:
            return None
        if acc == 1 and pb is None:
            pb = at
        last_acc = acc
        at += count * width // 8
    return plan, at, (at if pb is None else pb)


def _as_c(v, dtype):
    if isinstance(v, np.ndarray) and v.dtype == dtype and v.flags.c_contiguous:
        return v
    return np.ascontiguousarray(v, dtype)


_ADDR = {}


def _record_bytes(nbytes):
    """Bytes of a two-stage hop record: plane 0 padded to 16 bytes, four float32 factors,
    rounded up to whole 64-byte cache lines."""
    return -(-(-(-int(nbytes) // 16) * 16 + 16) // 64) * 64


def _graph_kernel_address(name):
    """Address of native/graph.c's kernel `name` (0: no library, or one built before the
    kernel existed; the numba twin runs)."""
    addr = _ADDR.get(name)
    if addr is None:
        import ctypes
        from ..kernels import native as _native
        addr = 0
        lib = getattr(_native, "lib", None)
        if lib is not None:
            try:
                addr = int(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value or 0)
            except AttributeError:
                addr = 0
        _ADDR[name] = addr
    return addr


def _graph_dot4_address():
    """Address of native/graph.c's vq_graph_dot4 (0: the numba twin runs)."""
    return _graph_kernel_address("vq_graph_dot4")


def _graph_planes_address():
    """Address of native/graph.c's vq_graph_planes (0: the numba twin runs)."""
    return _graph_kernel_address("vq_graph_planes")


def _planes_plan(secs, tables, n_acc):
    """(weights uint8 (P,), bytes per plane, offset of plane 0, sum_p t0_p, unit) when the
    code is P >= 1 planes of 1-bit fields over the same coordinates, stored back to back,
    whose steps t1_p - t0_p are integer multiples w_p <= 128 of one unit (kernels.graph
    HOP_PLANES; RaBitQ's codes); else None."""
    if n_acc != 1 or secs.shape[0] == 0 or secs.shape[0] > 16:
        return None
    order = np.argsort(secs[:, 0], kind="stable")
    rows = secs[order]
    count = int(rows[0, 2])
    if count <= 0 or count % 8:
        return None
    pbytes = count // 8
    off0 = int(rows[0, 0])
    t0 = np.empty(len(rows), np.float64)
    step = np.empty(len(rows), np.float64)
    for p, (off, width, cnt, acc, space, toff, c) in enumerate(rows):
        if (int(width) != 1 or int(c) != 1 or int(acc) != 0 or int(space) != 0
                or int(cnt) != count or int(off) != off0 + p * pbytes):
            return None
        t0[p] = float(tables[int(toff)])
        step[p] = float(tables[int(toff) + 1]) - t0[p]
    if not np.all(np.isfinite(step)) or np.any(step <= 0):
        return None
    unit = float(step.min())
    w = step / unit
    wr = np.round(w)
    if np.any(np.abs(w - wr) > 1e-6 * wr) or wr.max() > 128:
        return None
    return wr.astype(np.uint8), pbytes, off0, float(t0.sum()), unit


def _check_graph(g, n, M, cum):
    """Validate a graph dict for n stored rows; returns (levels int32 (n,), offsets int64
    (n+1,), neighbors int32, deleted uint8 (n,), entry, max_level, relink) where relink
    means the graph's slot layout differs from ours (the caller rebuilds it)."""
    def arr(key, dtype, ndim):
        if key not in g:
            raise ValueError(f"graph array {key!r} is missing")
        a = np.asarray(g[key])
        if a.ndim != ndim or a.dtype.kind not in "iub":
            raise ValueError(f"graph array {key!r} must be a {ndim}-D integer array, got "
                             f"{a.ndim}-D {a.dtype}")
        return a

    def scalar(key):
        v = g.get(key)
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"graph scalar {key!r} must be an integer, got {v!r}")
        return int(v)

    levels_in = arr("levels", np.int32, 1)
    if levels_in.shape[0] != n:
        raise ValueError(f"graph levels describe {levels_in.shape[0]} nodes, storage holds {n}")
    if n and (levels_in.min() < 1 or levels_in.max() >= cum.shape[0]):
        raise ValueError(f"graph levels must lie in [1, {cum.shape[0] - 1}], got "
                         f"[{levels_in.min()}, {levels_in.max()}]")
    levels = levels_in.astype(np.int32)
    nbr = np.ascontiguousarray(arr("neighbors", np.int32, 1)).astype(np.int32, copy=False)
    relink = False
    if "offsets" in g or "cum" in g:  # the faiss layout of format 1/2 files
        offsets = arr("offsets", np.int64, 1).astype(np.int64)
        fcum = arr("cum", np.int32, 1).astype(np.int64)
        if offsets.shape[0] != n + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
                or offsets[-1] > nbr.shape[0]:
            raise ValueError("graph offsets are not monotone from 0 within the neighbour array")
        if fcum.shape[0] < 2 or fcum[0] != 0 or np.any(np.diff(fcum) < 0):
            raise ValueError("graph cum is not monotone from 0")
        if n and levels.max() >= fcum.shape[0]:
            raise ValueError("graph levels exceed the file's cum table")
        if not np.array_equal(np.diff(offsets), fcum[levels]):
            raise ValueError("graph offsets do not follow the levels and cum")
        top = int(levels.max()) if n else 1
        relink = not np.array_equal(fcum[: top + 1], cum[: top + 1])
        dl = arr("deleted", np.uint8, 1)
        if dl.shape[0] != n or (n and (dl.min() < 0 or dl.max() > 1)):
            raise ValueError("graph deleted flags must be n values in {0, 1}")
        deleted = dl.astype(np.uint8)
        nbr = nbr[: int(offsets[-1])]
    else:
        offsets = np.zeros(n + 1, np.int64)
        offsets[1:] = np.cumsum(cum[levels])
        if offsets[-1] != nbr.shape[0]:
            raise ValueError(f"graph neighbors hold {nbr.shape[0]} slots, the levels need "
                             f"{int(offsets[-1])}")
        rows = arr("deleted_rows", np.int64, 1).astype(np.int64)
        if rows.shape[0] and (rows.min() < 0 or rows.max() >= n
                              or np.unique(rows).shape[0] != rows.shape[0]):
            raise ValueError("graph deleted rows must be distinct storage rows in [0, n)")
        deleted = np.zeros(n, np.uint8)
        deleted[rows] = 1
    entry, max_level = scalar("entry_point"), scalar("max_level")
    if n == 0:
        if entry != -1 or max_level != -1:
            raise ValueError("an empty graph must have entry point and max level -1")
    else:
        if not 0 <= entry < n:
            raise ValueError(f"graph entry point {entry} is not a node in [0, {n})")
        if max_level != int(levels.max()) - 1 or levels[entry] - 1 != max_level:
            raise ValueError(f"graph max level {max_level} does not match the levels "
                             f"(highest {int(levels.max()) - 1}, entry's {levels[entry] - 1})")
    if not relink:
        bad = _graph.check_graph(levels, offsets, nbr, cum, n)
        if bad >= 0:
            raise ValueError(f"graph node {bad}: offsets or neighbour ids are inconsistent "
                             f"(ids must lie in [-1, {n}), no self links)")
    elif n and (nbr.min() < -1 or nbr.max() >= n):
        raise ValueError(f"graph neighbour ids must lie in [-1, {n})")
    return levels, offsets, np.ascontiguousarray(nbr), deleted, entry, max_level, relink
