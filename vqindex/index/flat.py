"""IndexFlatCodes: every code in one segment, searched by the shared driver."""
import numpy as np

from ..kernels._threads import resolve_threads
from .base import IndexCodes
from .params import METRIC_L2

__all__ = ["IndexFlatCodes"]


class IndexFlatCodes(IndexCodes):
    """Flat index over codec codes (FAISS IndexFlatCodes / IndexRaBitQ / IndexEDEN analogue).

    Search is the shared driver (`vqindex.kernels.driver`) over one list holding every code:
    a fast scan of the codec's 4-bit sub-code layout (uint8 LUTs, SIMD byte shuffles) keeps a
    shortlist, which is rescored exactly from the full code. Every codec has a fast-scan
    layout (`vqindex.codecs.layout`). Below `exact_below` codes, or with `fastscan = False`,
    every code is scored exactly instead.
    """

    exact_below = 256

    def __init__(self, d, codec, metric=METRIC_L2):
        super().__init__(d, codec, metric)
        self._blocks = None
        self._blocks_n = 0

    def _append(self, codes, sf, ids, x):
        super()._append(codes, sf, ids, x)

    def _keep(self, keep):
        super()._keep(keep)
        self._blocks = None
        self._blocks_n = 0

    def _fastscan_blocks(self, codes):
        """Block-packed sub-codes of `codes`; appends only repack the last partial block."""
        n = codes.shape[0]
        lay = self.codec.scan_layout
        blocks = self._blocks
        if blocks is None or blocks.shape[1] != lay.bstride or self._blocks_n > n:
            blocks, done = np.zeros((0, lay.bstride), np.uint8), 0
        else:
            done = self._blocks_n
        if done < n:
            b0 = done // 32
            new = lay.blocks(codes[b0 * 32:n])
            blocks = np.concatenate([blocks[:b0], new])
            self._blocks, self._blocks_n = blocks, n
        return blocks

    def _query_add(self, qt):
        return (qt.qdotc if self._is_ip else qt.qnorm2).astype(np.float32)

    def _search_keys(self, x, k, p, for_range=False):
        nt = resolve_threads(p.num_threads)
        with self._lock:
            codes, sf, ids = self._codes, self._sf, self._ids
            mask, use_mask = self._filter_mask(p.filter)
            blocks = (self._fastscan_blocks(codes)
                      if self.fastscan and codes.shape[0] >= self.exact_below else None)
        qt = self.codec._prepare_trusted(x, nt)
        nq, n = len(qt), codes.shape[0]
        add = self._query_add(qt)[:, None]
        if blocks is None:
            keys, rows = self._exact_search(qt, k, nt, np.zeros((nq, 1), np.int64),
                                            np.full((nq, 1), n, np.int64), add, codes, sf,
                                            mask, use_mask)
        else:
            probes = np.zeros((nq, 1), np.int64)
            keys, rows = self._driver_search(
                qt, k, p, nt, probes, add, blocks, np.array([0, blocks.shape[0]], np.int64),
                np.array([0, n], np.int64), codes, sf, mask, use_mask, qchunk=self.fastscan_group)
        return keys, self._rows_to_ids(rows, ids)

    def _range_keys(self, x, radius, p):
        nt = resolve_threads(p.num_threads)
        with self._lock:
            codes, sf, ids = self._codes, self._sf, self._ids
            mask, use_mask = self._filter_mask(p.filter)
        qt = self.codec._prepare_trusted(x, nt)
        nq, n = len(qt), codes.shape[0]
        lims, keys, rows = self._exact_range(qt, radius, nt, np.zeros((nq, 1), np.int64),
                                             np.full((nq, 1), n, np.int64),
                                             self._query_add(qt)[:, None], codes, sf, mask,
                                             use_mask)
        return lims, keys, ids[rows]
