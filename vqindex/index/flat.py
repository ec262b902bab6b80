"""IndexFlatCodes: every code in one list, searched by the shared driver."""
import numpy as np

from ..kernels._threads import resolve_threads
from .base import IndexListCodes
from .params import METRIC_L2

__all__ = ["IndexFlatCodes"]


class IndexFlatCodes(IndexListCodes):
    """Flat index over codec codes (FAISS IndexFlatCodes / IndexRaBitQ / IndexEDEN analogue).

    Search is the shared driver (`vqindex.kernels.driver`) over one list holding every code:
    a fast scan of the codec's 4-bit sub-code layout (uint8 LUTs, SIMD byte shuffles) keeps a
    shortlist, which is rescored exactly from the full code. Every codec has a fast-scan
    layout (`vqindex.codecs.layout`). Below `exact_below` codes, or with `fastscan = False`,
    every code is scored exactly instead.
    """

    exact_below = 256

    def __init__(self, d, codec, metric=METRIC_L2):
        super().__init__(d, codec, metric, nlist=1)

    def _query_add(self, qt):
        return (qt.qdotc if self._is_ip else qt.qnorm2).astype(np.float32)

    def _search_keys(self, x, k, p):
        nt = resolve_threads(p.num_threads)
        fast = self.fastscan and self.ntotal >= self.exact_below
        codes, sf, ids, row0, ln, mask, use_mask, blocks, blk0 = self._snapshot(p, fast)
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

    def _range_keys(self, x, radius, p):
        nt = resolve_threads(p.num_threads)
        codes, sf, ids, row0, ln, mask, use_mask, _, _ = self._snapshot(p)
        qt = self.codec._prepare_trusted(x, nt)
        nq = len(qt)
        lims, keys, rows = self._exact_range(qt, radius, nt, np.full((nq, 1), row0[0], np.int64),
                                             np.full((nq, 1), row0[0] + ln[0], np.int64),
                                             self._query_add(qt)[:, None], codes, sf, mask,
                                             use_mask)
        return lims, keys, ids[rows]
