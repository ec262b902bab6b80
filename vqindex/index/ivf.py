"""IndexIVFCodes: coarse k-means lists of residual codes (spec 1.4, IVF residual form).

Residuals r = x - c are encoded with the one shared rotation. The query LUT is built once per
query on R q: the LUT is linear in the query, so the per-list term <code, R c> is a per-vector
constant folded into the stored factors at add time (ell for L2, f_c for IP), and probing a
list costs only its additive constant (||q - c||^2 or <q, c>).
"""
import numpy as np

from .._validation import MAX_NORM, as_vectors, check_finite_file, check_sorted_lists_file
from ..errors import ArgumentError, NotTrainedError, TrainingError
from ..kernels._threads import maybe_threads, resolve_threads, worth_parallel
from .base import IndexListCodes
from .flat import IndexFlatCodes, no_results
from .params import MAX_NPROBE, METRIC_L2, SearchParams

__all__ = ["IndexIVFCodes"]

_QUANTIZER_LOCK = __import__("threading").Lock()


def _faiss():
    import faiss
    return faiss


class _OneCallPlan:
    """The static arguments of IVF's one-call search (IndexIVFCodes._one_call_plan)."""

    __slots__ = ("key", "exact", "tunes", "coarse", "qargs", "native", "store", "ex",
                 "metric", "flt", "ids", "n", "no_qn")

    def __init__(self, **kw):
        for name, value in kw.items():
            setattr(self, name, value)


class IndexIVFCodes(IndexListCodes):
    """IVF over codec codes; `quantizer` may be any trained or untrained faiss.Index."""

    fastscan = True
    #: file state (io.py framing, index kinds own their state: /notes/contracts.md)
    _file_kind = "ivf"
    _mmap_arrays = ("codes",)
    _accepts_snapshot = True
    #: nlist of an untrained index read from a file (a trained one is bounded by its centroids)
    max_file_nlist_untrained = 1 << 22

    def __init__(self, d, codec, nlist, metric=METRIC_L2, quantizer=None):
        nlist = int(nlist)
        if nlist < 1:
            raise ArgumentError(f"nlist must be >= 1, got {nlist}")
        super().__init__(d, codec, metric, nlist=nlist)
        if codec.center is not None:
            raise ArgumentError("an IVF codec must not be centred (the list centroids are the reference)")
        self.nlist = nlist
        faiss = _faiss()
        if quantizer is None:
            quantizer = (faiss.IndexFlatIP(d) if self._is_ip else faiss.IndexFlatL2(d))
        if quantizer.d != d:
            raise ArgumentError(f"quantizer dimension {quantizer.d} != index dimension {d}")
        self.quantizer = quantizer
        self.params.nprobe = 1
        self.centroids = None
        if quantizer.is_trained and quantizer.ntotal == nlist:
            self._set_centroids(quantizer.reconstruct_n(0, nlist))

    @classmethod
    def from_faiss_ivf(cls, ivf, codec, metric=None):
        """Reuse the coarse quantizer (centroids) of a trained faiss.IndexIVF.

        Parameters
        ----------
        ivf : faiss.Index
            A trained faiss ``IndexIVF*``, possibly inside ``IndexIDMap`` / ``IndexRefine`` /
            ``IndexPreTransform``. A pre-transform made of linear transforms (RR, OPQ, PCA,
            ITQ) is kept: the result is a `vqindex.IndexPreTransform` that applies it to
            every input and query (as faiss does); any other transform is refused.
        codec : Codec
            The codec of the lists, of the IVF's dimension (after the transform).
        metric : int or str, optional
            Defaults to the faiss index's metric.

        Returns
        -------
        IndexIVFCodes, or IndexPreTransform over one
        """
        faiss = _faiss()
        from ..interop import pretransform_of_faiss
        node = faiss.downcast_index(ivf)
        while True:  # walk the wrappers down to the IVF, keeping a pre-transform
            if isinstance(node, faiss.IndexPreTransform):
                A, b, inner = pretransform_of_faiss(node)
                base = cls.from_faiss_ivf(inner, codec, metric)
                from .pretransform import IndexPreTransform
                return IndexPreTransform(A, b, base)
            if isinstance(node, faiss.IndexIVF):
                break
            inner = getattr(node, "base_index", None) or getattr(node, "index", None)
            if inner is None:
                raise ValueError(f"from_faiss_ivf: {type(node).__name__} holds no faiss IndexIVF")
            node = faiss.downcast_index(inner)
        ivf = node
        if not ivf.is_trained:
            raise ValueError("the faiss IVF index must be trained")
        if codec.d != ivf.d:
            raise ValueError(f"from_faiss_ivf: the codec has d={codec.d}, the faiss IVF lists "
                             f"have d={ivf.d} (after its pre-transform); build the codec with "
                             f"d={ivf.d}")
        metric = ivf.metric_type if metric is None else metric
        q = ivf.quantizer
        cent = q.reconstruct_n(0, ivf.nlist)
        quant = faiss.IndexFlatIP(ivf.d) if metric != METRIC_L2 else faiss.IndexFlatL2(ivf.d)
        quant.add(cent)
        out = cls(ivf.d, codec, ivf.nlist, metric=metric, quantizer=quant)
        out.params.nprobe = int(ivf.nprobe)
        return out

    # ------------------------------------------------------------------ file state
    def _state(self):
        """(meta, arrays, children) for io.write_index (called under the lock)."""
        lists, codes, sf, ids = self._stored_arrays()
        meta = {"nstored": int(ids.shape[0]), "nlist": int(self.nlist),
                "trained": self.centroids is not None,
                "quantizer": type(self.quantizer).__name__}
        arrays = {"codes": codes, "sf": sf, "ids": ids, "list_of": lists}
        if self.centroids is not None:
            arrays["centroids"] = self.centroids
        return meta, arrays, {}

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        """A new index from a file's state: centroids (nlist, d) finite, list assignment
        sorted and in range, the stored rows checked as for Flat; an untrained index holds
        no vectors."""
        import faiss
        d, metric = meta["d"], meta["metric_type"]
        trained = ctx.flag(meta, "trained")
        nlist = ctx.count(meta, "nlist")
        if nlist < 1:
            raise ctx.fail(f"nlist must be >= 1, got {nlist}")
        quant = faiss.IndexFlatL2(d) if metric == METRIC_L2 else faiss.IndexFlatIP(d)
        if trained:
            cent = ctx.array(arrays, "centroids", np.float32, 2)
            if cent.shape != (nlist, d):
                raise ctx.fail(f"centroids have shape {cent.shape}, expected ({nlist}, {d})")
            check_finite_file(cent, "centroids", ctx, bound=MAX_NORM)
            quant.add(np.ascontiguousarray(cent))
        elif nlist > cls.max_file_nlist_untrained:
            raise ctx.fail(f"nlist={nlist} of an untrained index is implausible (at most "
                           f"{cls.max_file_nlist_untrained})")
        codes, sf, ids = IndexFlatCodes._stored_from_state(meta, arrays, ctx)
        if not trained and ids.shape[0]:
            raise ctx.fail(f"an untrained IVF index cannot hold vectors (nstored={ids.shape[0]})")
        lists = ctx.array(arrays, "list_of", np.int64, 1)
        check_sorted_lists_file(lists, ids.shape[0], nlist, ctx)
        index = cls(d, ctx.codec, nlist, metric, quantizer=quant)
        index._load_stored(np.ascontiguousarray(lists), codes, sf, ids)
        return index

    def _training_state(self):
        return self.centroids

    def _set_centroids(self, centroids):
        centroids = as_vectors(centroids, self.d, "centroids")
        self.centroids = centroids
        self._cnorm2 = np.einsum("ij,ij->i", centroids, centroids).astype(np.float32)
        self._ct = np.ascontiguousarray(centroids.T)

    @property
    def is_trained(self):
        return self.centroids is not None

    def train(self, x, niter=20, seed=1234):
        """k-means (faiss) on x for the coarse lists; no retraining needed for later adds."""
        x = self._prep(x, "training vectors")
        if x.shape[0] < self.nlist:
            raise ArgumentError(f"training needs at least nlist={self.nlist} vectors, got {x.shape[0]}")
        if self.is_trained and self.quantizer.ntotal == self.nlist:
            return self
        faiss = _faiss()
        # the fallible part first (inputs are finite with norms <= MAX_NORM, which keeps
        # faiss's float32 distances finite); then the quantizer and centroids in one step
        try:
            km = faiss.Kmeans(self.d, self.nlist, niter=niter, seed=seed,
                              spherical=self._is_ip, verbose=False)
            km.train(x)
            cent = np.ascontiguousarray(km.centroids, dtype=np.float32)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise TrainingError(f"IVF k-means (faiss) failed on {x.shape[0]} training vectors "
                                f"for nlist={self.nlist}: {str(exc).strip()[:300]}") from None
        if cent.shape != (self.nlist, self.d) or not np.isfinite(cent).all():
            raise TrainingError(f"IVF k-means (faiss) returned unusable centroids (shape "
                                f"{cent.shape}, finite: {bool(np.isfinite(cent).all())})")
        with self._lock:
            try:
                if self.quantizer.is_trained:
                    self.quantizer.reset()
                else:
                    self.quantizer.train(cent)
                self.quantizer.add(cent)
            except RuntimeError as exc:
                raise TrainingError(f"the coarse quantizer ({type(self.quantizer).__name__}) "
                                    f"failed: {str(exc).strip()[:300]}") from None
            self._set_centroids(cent)
        return self

    # ------------------------------------------------------------------ storage
    def _assign(self, x, nprobe, num_threads=1):
        return self._probe(x, nprobe, num_threads)[0]

    def _probe(self, x, nprobe, num_threads=1):
        """(lists int64 (nq, nprobe), their additive constants float32 (nq, nprobe)).

        A flat quantizer holding our centroids is searched in our own kernel (one matmul that
        also gives the constants); any other faiss quantizer under a lock, with faiss's own
        thread setting left alone (changing it would race between Python threads)."""
        from ..kernels import driver as _drv
        nq = x.shape[0]
        probes = np.empty((nq, nprobe), np.int64)
        add = np.empty((nq, nprobe), np.float32)
        if self._flat_quantizer():
            if nq <= 64:  # a few queries: our kernel (a BLAS call costs more here)
                scores = np.empty((nq, self.nlist), np.float32)
                _drv.probe_scores(x, self._ct, scores, parallel=False)
            else:  # BLAS: 4x faster than our kernel at 1000 queries (on BLAS's own threads)
                scores = np.ascontiguousarray(x @ self.centroids.T, dtype=np.float32)
            par = nq > 1 and worth_parallel(num_threads, nq * self.nlist)
            qn = np.einsum("ij,ij->i", x, x).astype(np.float32)
            with maybe_threads(num_threads, par):
                _drv.select_probes(scores, nprobe, probes, add, qn, self._cnorm2,
                                   not self._is_ip, x, self.centroids, parallel=par)
            return probes, add
        with _QUANTIZER_LOCK:
            _, lists = self.quantizer.search(x, nprobe)
        probes[:] = lists
        ok = probes >= 0
        c = self.centroids[np.maximum(probes, 0)].astype(np.float64)  # (nq, nprobe, d)
        if self._is_ip:
            add[:] = np.einsum("qpd,qd->qp", c, x.astype(np.float64))
        else:
            diff = c - x[:, None, :].astype(np.float64)
            add[:] = np.einsum("qpd,qpd->qp", diff, diff)
        add[~ok] = 0.0
        return probes, add

    def _flat_quantizer(self):
        faiss = _faiss()
        q = self.quantizer
        return (type(q) in (faiss.IndexFlatL2, faiss.IndexFlatIP, faiss.IndexFlat)
                and q.ntotal == self.nlist
                and (q.metric_type == faiss.METRIC_INNER_PRODUCT) == self._is_ip)

    def _assign_lists(self, x, num_threads):
        if not self.is_trained:
            raise NotTrainedError("IVF index is not trained: call train(x) before add")
        return self._assign(x, 1, num_threads)[:, 0].astype(np.int64)

    def _encode_rows(self, x, lists, num_threads):
        """Residual codes against each vector's centroid, the IVF term folded into sf."""
        codes = self.codec._encode_trusted(x, self.centroids[lists], num_threads)
        sf = self.codec.scan_factors(codes)
        uniq, which = np.unique(lists, return_inverse=True)
        self.codec.fold_reference(codes, sf, x, self.centroids[uniq], which,
                                  "ip" if self._is_ip else "l2", num_threads)
        return codes[:, : self.codec._code_bytes], sf

    def _references(self, pos):
        return self.centroids[self._store.lists_of(pos)]

    @property
    def _list_of(self):
        """The list of every live vector, in storage order of `_stored_arrays`."""
        return self._store.list_of_rows()[1]

    def list_sizes(self):
        return self._store.len.copy()

    # ------------------------------------------------------------------ search
    def _search_keys(self, x, k, p, snap=None):
        nt = resolve_threads(p.num_threads)
        nprobe = min(p.nprobe, self.nlist)
        if snap is None:
            snap = self._snapshot(p, self.fastscan and self.ntotal >= 256)
        codes, sf, ids, row0, ln, mask, use_mask, blocks, blk0 = snap
        fast = blocks is not None and self.fastscan and int(ln.sum()) >= 256
        if int(ln.sum()) == 0:  # emptied (reset / remove_ids) since the caller looked
            return no_results(x.shape[0], k)
        if not self.is_trained:
            raise NotTrainedError("IVF index is not trained: call train(x) before search")
        if fast and self._fused_ok(x, nt) and self._flat_quantizer():
            # probe selection, query tables, scan, rescoring and ids in one compiled call
            coarse = (self._ct, self._cnorm2, self.centroids,
                      np.einsum("ij,ij->i", x, x).astype(np.float32), np.int64(nprobe),
                      not self._is_ip)
            return self._fused_search(x, k, None, None, False, blocks, row0, blk0, ln, codes,
                                      sf, mask, use_mask, coarse=coarse, ids=ids)
        probes, probe_add = self._probe(x, nprobe, nt)
        if fast and self._fused_ok(x, nt):
            keys, rows = self._fused_search(x, k, probes, probe_add, False, blocks, row0, blk0,
                                            ln, codes, sf, mask, use_mask)
            return keys, self._rows_to_ids(rows, ids)
        qt = self.codec._prepare_trusted(x, nt)
        nq = len(qt)
        if not fast:
            keys, rows = self._exact_search(qt, k, nt, *self._segments(probes, row0, ln),
                                            probe_add, codes, sf, mask, use_mask)
        else:
            keys, rows = self._driver_search(qt, k, p, nt, probes, probe_add, blocks, row0,
                                             blk0, ln, codes, sf, mask, use_mask,
                                             qchunk=max(1, -(-nq // nt)))
        return keys, self._rows_to_ids(rows, ids)

    def _one_call_search(self, x, k, params, num_threads):
        """Small unfiltered searches on one thread (at most `fused_max_queries` float32
        C-contiguous queries, plain parameters, a flat coarse quantizer) skip the general
        path's Python work: the static arguments of driver.search_ivf_fused come from a plan
        cached against the store's version (storage.ListStore.touch), the codec, the
        centroids and the quantizer, and the call returns what the general path returns.
        Anything else returns None and takes the general path (which raises the errors)."""
        small = self._small_call(x, k, params, num_threads, "nprobe", self.fused_max_queries)
        if small is None:
            return None
        nprobe, nt = small
        if type(nprobe) is not int or not 0 < nprobe <= MAX_NPROBE or resolve_threads(nt) != 1:
            return None
        plan = self._one_call_plan()
        if plan is None:
            return None
        x = self._prep(x, "queries")
        nq = x.shape[0]
        ct, cn, cents, is_l2 = plan.coarse
        qn = np.einsum("ij,ij->i", x, x).astype(np.float32) if is_l2 else plan.no_qn[:nq]
        coarse = (ct, cn, cents, qn, np.int64(min(nprobe, self.nlist)), is_l2)
        tkey = (k, self.fastscan_group, self.fastscan_piece, self.fastscan_rerank,
                self.fastscan_rerank_surrogate, self.fastscan_min, self.fastscan_sigmas)
        tune = plan.tunes.get(tkey)
        if tune is None:
            tune = (np.int64(self._rerank_depth(k, plan.n)), np.int64(1),
                    np.int64(self.fastscan_group), np.int64(self.fastscan_piece),
                    np.int64(self.fastscan_group),
                    np.float32(self.fastscan_sigmas if plan.exact else 0.0))
            plan.tunes[tkey] = tune
        keys = np.empty((nq, k), np.float32)
        out = np.empty((nq, k), np.int64)
        from ..kernels import driver as _drv
        _drv.search_ivf_fused(x, coarse, plan.qargs, plan.native, plan.store, plan.ex,
                              plan.metric, plan.flt, tune, plan.ids, keys, out)
        return self._keys_to_distances(keys).astype(np.float32, copy=False), out

    def _one_call_plan(self):
        """The cached plan of `_one_call_search`, rebuilt (under the lock, from a snapshot)
        when the store, its version, the codec, its layout, the centroids or the quantizer
        changed; None where the one-call path does not apply."""
        plan = getattr(self, "_ocp", None)
        if plan is not None and self.fastscan and self._one_call_key_holds(plan.key):
            return plan
        codec = self.codec
        with self._lock:
            if (not self.is_trained or not self.fastscan or not self._flat_quantizer()
                    or codec._fast_prepare_args() is None):
                return None
            codes, sf, ids, row0, ln, mask, use_mask, blocks, blk0 = self._snapshot(
                SearchParams(), True)
            n = int(ln.sum())
            if blocks is None or n < 256:
                return None
            _, _, qargs, native, lay, secs, tables, metric, _, n_acc = self._fused_plan()
            plan = _OneCallPlan(
                key=self._one_call_key(),  # after the snapshot (packing bumps the version)
                exact=bool(lay.exact), tunes={},
                coarse=(self._ct, self._cnorm2, self.centroids, not self._is_ip),
                qargs=qargs, native=native,
                store=(blocks.reshape(-1), np.int64(lay.bstride), lay.acc_nib, row0, blk0, ln),
                ex=(codes, secs, tables, sf, n_acc), metric=metric, flt=(mask, use_mask),
                ids=ids, n=n, no_qn=np.zeros(self.fused_max_queries, np.float32))
            self._ocp = plan
            return plan

    def _one_call_key(self):
        """What a one-call plan depends on: the store, codec, centroids and quantizer
        (objects) and the store's and layout's versions (values)."""
        st, codec = self._store, self.codec
        return (st, codec, getattr(self, "_ct", None), self.quantizer, st.version,
                codec._layout_version)

    def _one_call_key_holds(self, key):
        now = self._one_call_key()
        return all(a is b for a, b in zip(key[:4], now[:4])) and key[4:] == now[4:]

    @staticmethod
    def _segments(probes, row0, ln):
        ok = probes >= 0
        l = np.maximum(probes, 0)
        start = np.where(ok, row0[l], 0).astype(np.int64)
        return start, np.where(ok, start + ln[l], 0).astype(np.int64)

    def _range_keys(self, x, radius, p, snap=None):
        nt = resolve_threads(p.num_threads)
        nprobe = min(p.nprobe, self.nlist)
        codes, sf, ids, row0, ln, mask, use_mask, _, _ = snap or self._snapshot(p)
        if not self.is_trained:
            raise NotTrainedError("IVF index is not trained: call train(x) before search")
        probes, probe_add = self._probe(x, nprobe, nt)
        qt = self.codec._prepare_trusted(x, nt)
        lims, keys, rows = self._exact_range(qt, radius, nt, *self._segments(probes, row0, ln),
                                             probe_add, codes, sf, mask, use_mask)
        return lims, keys, ids[rows]
