"""IndexFlatCodes: scan every code with the shared LUT kernel."""
import numpy as np

from ..kernels._threads import resolve_threads, threads
from .base import IndexCodes
from .params import METRIC_L2

__all__ = ["IndexFlatCodes"]


class IndexFlatCodes(IndexCodes):
    """Flat index over codec codes (FAISS IndexFlatCodes / IndexRaBitQ / IndexEDEN analogue).

    Codecs whose codes are sums of 4-bit lookups (1, 2, 4-bit scalar fields: EDEN, TQmse,
    RaBitQ 1/3/5 bits) are scanned with the fast-scan kernels (uint8 LUTs, uint16
    accumulators, SIMD byte shuffles; `vqindex.kernels.fastscan`), then a shortlist of
    `fastscan_rerank * k` (at least 64) is rescored exactly from the full code. Other codecs
    use the float LUT scan. Set `fastscan = False` to force the float scan.
    """

    fastscan = True
    fastscan_rerank = 8
    fastscan_batch = 32

    def __init__(self, d, codec, metric=METRIC_L2):
        super().__init__(d, codec, metric)
        self._blocks = None

    def _append(self, codes, sf, ids, x):
        super()._append(codes, sf, ids, x)
        self._blocks = None

    def _keep(self, keep):
        super()._keep(keep)
        self._blocks = None

    def _fastscan_blocks(self):
        from ..kernels import fastscan as fs
        if self._blocks is None:
            raw = np.ascontiguousarray(self._codes[:, : self.codec._code_bytes])
            self._blocks = fs.pack_bitstream_blocks(raw, self.codec.n_nibbles)
        return self._blocks

    def _search_fastscan(self, queries, k, p, nt):
        from ..kernels import fastscan as fs
        from ..kernels import topk as _topk
        blocks = self._fastscan_blocks()
        n, nq = self.ntotal, len(queries)
        r = min(n, max(64, self.fastscan_rerank * k))
        mask, use_mask = self._filter_mask(p.filter)
        a_ell, a_ip = (0.0, 1.0) if self._is_ip else (1.0, -2.0)
        qadd = (np.zeros(nq, np.float32) if self._is_ip else queries.qnorm2).astype(np.float32)
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        bs = self.fastscan_batch
        with threads(nt):
            for b0 in range(0, nq, bs):
                b1 = min(nq, b0 + bs)
                nl = self.codec.build_nibble_luts(queries.v[b0:b1])
                lut_u8, scale, bias = fs.quantize_lut(nl)
                acc = fs.scan(blocks, n, lut_u8, num_threads=nt)
                cand = np.empty((b1 - b0, r), np.int64)
                _topk.approx_topk_u16(acc, bias.astype(np.float32), scale.astype(np.float32),
                                      self._sf, self.codec.n_acc, np.float32(a_ell), np.float32(a_ip),
                                      qadd[b0:b1], mask, use_mask, cand)
                _topk.rescore_topk(self._codes, self._sf, self.codec._nibble_secs,
                                   nl.reshape(b1 - b0, -1),
                                   self.codec.n_acc, np.float32(a_ell), np.float32(a_ip), np.repeat(qadd[b0:b1, None], r, axis=1),
                                   cand, keys[b0:b1], pos[b0:b1])
        ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)
        return keys, ids

    def _search_keys(self, x, k, p, for_range=False):
        nt = resolve_threads(p.num_threads)
        queries = self.codec.prepare_queries(x, num_threads=nt)
        if self.fastscan and not for_range and self.codec.supports_fastscan and self.ntotal >= 256:
            return self._search_fastscan(queries, k, p, nt)
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
