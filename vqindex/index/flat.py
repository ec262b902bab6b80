"""IndexFlatCodes: every code in one list, searched by the shared driver."""
import numpy as np

from .._validation import check_finite_file, check_ids_file
from ..kernels._threads import resolve_threads
from .base import IndexListCodes
from .params import METRIC_L2

__all__ = ["IndexFlatCodes", "no_results"]


def no_results(nq, k):
    """(keys, ids) of a search over no vectors: +inf keys, -1 ids."""
    return np.full((nq, k), np.inf, np.float32), np.full((nq, k), -1, np.int64)


class IndexFlatCodes(IndexListCodes):
    """Flat index over codec codes (FAISS IndexFlatCodes / IndexRaBitQ / IndexEDEN analogue).

    Search is the shared driver (`vqindex.kernels.driver`) over one list holding every code:
    a fast scan of the codec's 4-bit sub-code layout (uint8 LUTs, SIMD byte shuffles) keeps a
    shortlist, which is rescored exactly from the full code. Every codec has a fast-scan
    layout (`vqindex.codecs.layout`). Below `exact_below` codes, or with `fastscan = False`,
    every code is scored exactly instead.
    """

    exact_below = 256
    #: file state (io.py framing, index kinds own their state: /notes/contracts.md)
    _file_kind = "flat"
    _mmap_arrays = ("codes",)
    #: `_search_keys` accepts a snapshot taken by the caller (IndexRefine's one consistent view)
    _accepts_snapshot = True

    def __init__(self, d, codec, metric=METRIC_L2):
        super().__init__(d, codec, metric, nlist=1)

    # ------------------------------------------------------------------ file state
    def _state(self):
        """(meta, arrays, children) for io.write_index (called under the lock)."""
        lists, codes, sf, ids = self._stored_arrays()
        return {"nstored": int(ids.shape[0])}, {"codes": codes, "sf": sf, "ids": ids}, {}

    @classmethod
    def _stored_from_state(cls, meta, arrays, ctx):
        """(codes, sf, ids) of a file, each checked: shapes against nstored and the codec,
        factors finite and bounded, ids unique and >= 0."""
        codec = ctx.codec
        n = ctx.count(meta, "nstored")
        codes = ctx.array(arrays, "codes", np.uint8, 2)
        sf = ctx.array(arrays, "sf", np.float32, 2)
        ids = ctx.array(arrays, "ids", np.int64, 1)
        width = codec.code_size if ctx.version == 1 else codec._code_bytes
        if codes.shape != (n, width) or sf.shape != (n, codec.n_acc + 2) or ids.shape != (n,):
            raise ctx.fail(f"stored arrays codes {codes.shape}, sf {sf.shape}, ids {ids.shape} "
                           f"do not match nstored={n}, {width} code bytes per vector")
        check_finite_file(sf, "sf", ctx)
        check_ids_file(ids, ctx)
        if ctx.version == 1:  # the code tail repeated the factors: keep the packed fields only
            codes = np.ascontiguousarray(codes[:, : codec._code_bytes])
        return codes, sf, ids

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        """A new index from a file's state (io.read_index); every array checked first."""
        codes, sf, ids = cls._stored_from_state(meta, arrays, ctx)
        index = cls(meta["d"], ctx.codec, meta["metric_type"])
        index._load_stored(np.zeros(ids.shape[0], np.int64), codes, sf, ids)
        return index

    def _query_add(self, qt):
        return (qt.qdotc if self._is_ip else qt.qnorm2).astype(np.float32)

    def _search_keys(self, x, k, p, snap=None):
        nt = resolve_threads(p.num_threads)
        if snap is None:
            snap = self._snapshot(p, self.fastscan and self.ntotal >= self.exact_below)
        codes, sf, ids, row0, ln, mask, use_mask, blocks, blk0 = snap
        fast = blocks is not None and self.fastscan and int(ln.sum()) >= self.exact_below
        if int(ln.sum()) == 0:  # emptied (reset / remove_ids) since the caller looked
            return no_results(x.shape[0], k)
        if fast and self._fused_ok(x, nt):
            nq = x.shape[0]
            keys, rows = self._fused_search(x, k, np.zeros((nq, 1), np.int64),
                                            np.zeros((nq, 1), np.float32), not self._is_ip,
                                            blocks, row0, blk0, ln, codes, sf, mask, use_mask)
            return keys, self._rows_to_ids(rows, ids)
        qt = self.codec._prepare_trusted(x, nt)
        nq = len(qt)
        add = self._query_add(qt)[:, None]
        if not fast:
            keys, rows = self._exact_search(qt, k, nt, np.full((nq, 1), row0[0], np.int64),
                                            np.full((nq, 1), row0[0] + ln[0], np.int64), add,
                                            codes, sf, mask, use_mask)
        else:
            keys, rows = self._driver_search(qt, k, p, nt, np.zeros((nq, 1), np.int64), add,
                                             blocks, row0, blk0, ln, codes, sf, mask, use_mask,
                                             qchunk=self.fastscan_group)
        return keys, self._rows_to_ids(rows, ids)

    def _range_keys(self, x, radius, p, snap=None):
        nt = resolve_threads(p.num_threads)
        codes, sf, ids, row0, ln, mask, use_mask, _, _ = snap or self._snapshot(p)
        qt = self.codec._prepare_trusted(x, nt)
        nq = len(qt)
        lims, keys, rows = self._exact_range(qt, radius, nt, np.full((nq, 1), row0[0], np.int64),
                                             np.full((nq, 1), row0[0] + ln[0], np.int64),
                                             self._query_add(qt)[:, None], codes, sf, mask,
                                             use_mask)
        return lims, keys, ids[rows]
