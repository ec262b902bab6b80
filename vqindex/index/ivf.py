"""IndexIVFCodes: coarse k-means lists of residual codes (spec 1.4, IVF residual form).

Residuals r = x - c are encoded with the one shared rotation. The query LUT is built once per
query on R q: the LUT is linear in the query, so the per-list term <code, R c> is a per-vector
constant folded into the stored factors at add time (ell for L2, f_c for IP), and probing a
list costs only its additive constant (||q - c||^2 or <q, c>).
"""
import numpy as np

from .._validation import as_vectors
from ..kernels import scan as _scan
from ..kernels._threads import resolve_threads, threads
from .base import IndexCodes
from .params import METRIC_L2

__all__ = ["IndexIVFCodes"]


def _faiss():
    import faiss
    return faiss


class IndexIVFCodes(IndexCodes):
    """IVF over codec codes; `quantizer` may be any trained or untrained faiss.Index."""

    fastscan = True
    fastscan_rerank = 4

    def __init__(self, d, codec, nlist, metric=METRIC_L2, quantizer=None):
        super().__init__(d, codec, metric)
        self._fs = None
        if codec.center is not None:
            raise ValueError("an IVF codec must not be centred (the list centroids are the reference)")
        nlist = int(nlist)
        if nlist < 1:
            raise ValueError(f"nlist must be >= 1, got {nlist}")
        self.nlist = nlist
        faiss = _faiss()
        if quantizer is None:
            quantizer = (faiss.IndexFlatIP(d) if self._is_ip else faiss.IndexFlatL2(d))
        if quantizer.d != d:
            raise ValueError(f"quantizer dimension {quantizer.d} != index dimension {d}")
        self.quantizer = quantizer
        self.params.nprobe = 1
        self._list_of = np.zeros(0, np.int64)
        self._offsets = np.zeros(nlist + 1, np.int64)
        self.centroids = None
        if quantizer.is_trained and quantizer.ntotal == nlist:
            self._set_centroids(quantizer.reconstruct_n(0, nlist))

    @classmethod
    def from_faiss_ivf(cls, ivf, codec, metric=None):
        """Reuse the coarse quantizer (centroids) of a trained faiss.IndexIVF."""
        faiss = _faiss()
        ivf = faiss.extract_index_ivf(ivf) if not isinstance(ivf, faiss.IndexIVF) else ivf
        if not ivf.is_trained:
            raise ValueError("the faiss IVF index must be trained")
        metric = ivf.metric_type if metric is None else metric
        q = ivf.quantizer
        cent = q.reconstruct_n(0, ivf.nlist)
        quant = faiss.IndexFlatIP(ivf.d) if metric != METRIC_L2 else faiss.IndexFlatL2(ivf.d)
        quant.add(cent)
        out = cls(ivf.d, codec, ivf.nlist, metric=metric, quantizer=quant)
        out.params.nprobe = int(ivf.nprobe)
        return out

    def _set_centroids(self, centroids):
        centroids = as_vectors(centroids, self.d, "centroids")
        self.centroids = centroids
        self._cnorm2 = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)

    @property
    def is_trained(self):
        return self.centroids is not None

    def train(self, x, niter=20, seed=1234):
        """k-means (faiss) on x for the coarse lists; no retraining needed for later adds."""
        x = self._prep(x, "training vectors")
        if x.shape[0] < self.nlist:
            raise ValueError(f"training needs at least nlist={self.nlist} vectors, got {x.shape[0]}")
        if self.is_trained and self.quantizer.ntotal == self.nlist:
            return self
        faiss = _faiss()
        km = faiss.Kmeans(self.d, self.nlist, niter=niter, seed=seed,
                          spherical=self._is_ip, verbose=False)
        km.train(x)
        self.quantizer.reset() if self.quantizer.is_trained else self.quantizer.train(km.centroids)
        self.quantizer.add(km.centroids)
        self._set_centroids(km.centroids)
        return self

    # ------------------------------------------------------------------ storage
    def _assign(self, x, nprobe, num_threads=1):
        faiss = _faiss()
        old = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(resolve_threads(num_threads))
        try:
            _, lists = self.quantizer.search(x, nprobe)
        finally:
            faiss.omp_set_num_threads(old)
        return lists

    def _encode(self, x, num_threads):
        raise NotImplementedError  # IVF adds go through _add

    def _add(self, x, ids, num_threads):
        if not self.is_trained:
            raise RuntimeError("IVF index is not trained: call train(x) before add")
        nt = num_threads if num_threads is not None else self.params.num_threads
        lists = self._assign(x, 1, nt)[:, 0].astype(np.int64)
        ref = self.centroids[lists]
        codes = self.codec.encode(x, reference=ref, num_threads=nt)
        sf = self.codec.scan_factors(codes)
        uniq, which = np.unique(lists, return_inverse=True)
        self.codec.fold_reference(codes, sf, x, self.centroids[uniq], which,
                                  "ip" if self._is_ip else "l2", nt)
        self._append(codes, sf, ids, x, lists)

    def _append(self, codes, sf, ids, x, lists=None):
        allcodes = np.concatenate([self._codes, codes])
        allsf = np.concatenate([self._sf, sf])
        allids = np.concatenate([self._ids, ids])
        alllists = np.concatenate([self._list_of, lists])
        order = np.argsort(alllists, kind="stable")
        self._codes, self._sf = allcodes[order], allsf[order]
        self._ids, self._list_of = allids[order], alllists[order]
        self._rebuild_offsets()

    def _rebuild_offsets(self):
        counts = np.bincount(self._list_of, minlength=self.nlist)
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._sorted_ids = None
        self._fs = None

    def _fastscan_lists(self):
        """Block-packed codes of every list (each list padded to 32) and block offsets."""
        from ..kernels import fastscan as fs
        if self._fs is None:
            m = self.codec.n_nibbles
            raw = np.ascontiguousarray(self._codes[:, : self.codec._code_bytes])
            nblk = (np.diff(self._offsets) + fs.BLOCK - 1) // fs.BLOCK
            boff = np.concatenate([[0], np.cumsum(nblk)]).astype(np.int64)
            blocks = np.zeros((int(boff[-1]), m * 16), np.uint8)
            for l in np.flatnonzero(nblk):
                a, b = self._offsets[l], self._offsets[l + 1]
                blocks[boff[l]:boff[l + 1]] = fs.pack_bitstream_blocks(raw[a:b], m)
            self._fs = (blocks, boff)
        return self._fs

    def _keep(self, keep):
        super()._keep(keep)
        self._list_of = self._list_of[keep]
        self._rebuild_offsets()

    def _references(self, pos):
        return self.centroids[self._list_of[pos]]

    def _decode_positions(self, pos):
        # the stored factors hold folded IVF terms; decode from the raw codes
        return self.codec.decode(self._codes[pos], reference=self._references(pos))

    def list_sizes(self):
        return np.diff(self._offsets)

    # ------------------------------------------------------------------ search
    def _search_keys(self, x, k, p, for_range=False):
        nt = resolve_threads(p.num_threads)
        nprobe = min(p.nprobe, self.nlist)
        lists = self._assign(x, nprobe, nt)
        queries = self.codec.prepare_queries(x, num_threads=nt)
        nq = len(queries)
        valid = lists >= 0
        l = np.where(valid, lists, 0)
        qc_all = x @ self.centroids.T
        qn = np.einsum("ij,ij->i", x, x)
        if self._is_ip:
            add_all = qc_all
        else:
            add_all = qn[:, None] - 2.0 * qc_all + self._cnorm2[None, :]
        add_all = add_all.astype(np.float32)
        if (self.fastscan and not for_range and self.codec.supports_fastscan
                and self.ntotal >= 256):
            return self._search_fastscan(queries, k, p, nt, lists, add_all)
        seg_start = np.where(valid, self._offsets[l], 0).reshape(-1)
        seg_end = np.where(valid, self._offsets[l + 1], 0).reshape(-1)
        seg_add = np.take_along_axis(add_all, l, axis=1)
        task_query = np.arange(nq, dtype=np.int64)
        seg0 = task_query * nprobe
        return self._run_scan(queries, k, p, task_query, seg0, seg0 + nprobe, seg_start, seg_end,
                              seg_add.reshape(-1).astype(np.float32), for_range)

    def _search_fastscan(self, queries, k, p, nt, lists, add_all):
        """Fast-scan over the probed lists, one batched kernel call per list, then exact rescoring.

        The LUT is the same for every list of a query (see the module docstring), so each list
        is scanned once against all the queries that probe it (query batching).
        """
        from ..kernels import fastscan as fs
        from ..kernels import topk as _topk
        blocks, boff = self._fastscan_lists()
        nq = len(queries)
        r = min(self.ntotal, max(32, self.fastscan_rerank * k))
        mask, use_mask = self._filter_mask(p.filter)
        a_ell, a_ip = (0.0, 1.0) if self._is_ip else (1.0, -2.0)
        nl = queries.nibble_luts
        lut_u8, scale, bias = fs.quantize_lut(nl)
        scale = scale.astype(np.float32)
        bias = bias.astype(np.float32)
        hkeys = np.empty((nq, r), np.float32)
        hids = np.empty((nq, r), np.int64)
        sizes = np.zeros(nq, np.int64)
        flat_l = lists.reshape(-1)
        flat_q = np.repeat(np.arange(nq, dtype=np.int64), lists.shape[1])
        keep = flat_l >= 0
        flat_l, flat_q = flat_l[keep], flat_q[keep]
        order = np.argsort(flat_l, kind="stable")
        flat_l, flat_q = flat_l[order], flat_q[order]
        starts = np.flatnonzero(np.r_[True, flat_l[1:] != flat_l[:-1]])
        ends = np.r_[starts[1:], len(flat_l)]
        fa, fe = np.float32(a_ell), np.float32(a_ip)
        for a, b in zip(starts, ends):
            lst = flat_l[a]
            pos0, pos1 = self._offsets[lst], self._offsets[lst + 1]
            if pos1 == pos0:
                continue
            qs = flat_q[a:b]
            acc = fs.scan(blocks[boff[lst]:boff[lst + 1]], int(pos1 - pos0), lut_u8[qs])
            _topk.push_u16(acc, qs, add_all[qs, lst], bias, scale, self._sf, int(pos0),
                           self.codec.n_acc, fa, fe, mask, use_mask, hkeys, hids, sizes)
        cand = np.full((nq, r), -1, np.int64)
        for q in range(nq):  # heap contents (unordered) -> candidate rows
            cand[q, : sizes[q]] = hids[q, : sizes[q]]
        cand_list = self._list_of[np.maximum(cand, 0)]
        cand_add = np.take_along_axis(add_all, cand_list, axis=1).astype(np.float32)
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        with threads(nt):
            _topk.rescore_topk(self._codes, self._sf, self.codec._nibble_secs,
                               nl.reshape(nq, -1),
                               self.codec.n_acc, fa, fe, cand_add, cand, keys, pos)
        ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)
        return keys, ids
