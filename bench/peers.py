"""Peer adapters for `vqindex-bench sweep` (loaded by path from vqindex.benchmark).

Each adapter builds one index from a config string and searches it with a dict of query
parameters, honouring the thread count:

  faiss      faiss.index_factory strings ("Flat", "HNSW32,Flat", "IVF1024,PQ192x4fs,RFlat",
             "RR,RaBitQ", "RR,RaBitQfs", "IVF1024,RaBitQ4", "HNSW32,RaBitQ4", "RR,SQtq4",
             "RR,SQtqmse4") plus "EDEN<b>" = IndexPreTransform(RandomRotationMatrix,
             IndexEDEN(d, metric, b, UNBIASED)). Query params: nprobe, efSearch (via
             faiss.ParameterSpace), k_factor (set on the IndexRefine), qb (RaBitQ query bits).
             Threads: faiss.omp_set_num_threads (set and restored by the sweep).
  hnswlib    "M16" / "M32" (ef_construction 100); query param ef. Threads: set_num_threads
             and knn_query(num_threads=...).
  rabitqlib  "IVF<nlist>,RaBitQ<b>" (IvfIndex, centroids from faiss k-means, build time
             included; b total bits = 1 sign bit + b-1 extra bits), "HNSW<M>,RaBitQ<b>"
             (HnswIndex over 16 k-means clusters, ef_construction 100), "SymQG<R>"
             (SymqgIndex, max degree R, ef_construction 100). Query params nprobe / ef.
             Threads: num_threads arguments.
  turbovec   "TQ<b>" (TurboQuantIndex, flat) and "TQ<b>+cal" (TQ+ calibration on 1024
             random rows before adding). Inner product only (angular data, normalised).
             Threads: rayon's RAYON_NUM_THREADS, fixed at first use in the process.
  scann      "IVF<nlist>,AH2" (tree of nlist leaves, spherical k-means and quantized centroids
             for dot product as in ann-benchmarks, training on all rows; score_ah with 2 dims
             per 4-bit code, anisotropic threshold 0.2 for dot product) and
             "IVF<nlist>,AH2,Reorder" (the same plus a float32 reorder). Query params: leaves
             (leaves_to_search), k_factor (pre_reorder_num_neighbors = k * k_factor; Reorder
             only). Threads: searcher.set_num_threads, search_batched (one thread) or
             search_batched_parallel (threads > 1); training on the build threads.
             Bytes: the serialized files with the 4-bit codes counted packed (the saved
             hashed_dataset.npy keeps one byte per code): d/4 bytes + 4-byte token per vector,
             + 4*d with Reorder (an estimate, marked ~).
  usearch    "M<connectivity>,<dtype>" with dtype f16 / i8 / f32 (usearch.index.Index, metric
             cos for angular data, ip / l2sq otherwise; expansion_add 100). Query param ef
             (expansion_search). f16/f32 rows are "float", i8 rows "codes". Threads: add/search
             threads arguments.

Angular data arrive L2-normalised; faiss/hnswlib/rabitqlib then use inner product (faiss
HNSW-RaBitQ: L2, equivalent ranking on unit vectors). rabitqlib needs d % 64 == 0 and turbovec
d % 8 == 0: other dimensions are zero-padded (exact for inner products and L2; noted per row).
"""
import os
import re
import sys

import numpy as np

METHODS = ("faiss", "hnswlib", "rabitqlib", "turbovec", "scann", "usearch")
_NOTES = []


def prepare_threads(threads):
    """Must run before turbovec is first imported: its rayon pool reads RAYON_NUM_THREADS once."""
    if "turbovec" in sys.modules and os.environ.get("RAYON_NUM_THREADS") != str(threads):
        _NOTES.append(f"turbovec was imported before the sweep: its thread pool may not use "
                      f"{threads} thread(s)")
    os.environ["RAYON_NUM_THREADS"] = str(threads)


def default_configs(method, n, d, quick, Config, grid, nlist):
    if method == "faiss":
        if quick:
            return [Config("faiss", "Flat", slow=True),
                    Config("faiss", "HNSW32,Flat", grid(efSearch=[32]))]
        npb = sorted({min(v, nlist) for v in (8, 16, 32, 64)})
        npb2 = sorted({min(v, nlist) for v in (16, 32)})
        m = d // 2 if d % 2 == 0 else d
        return [Config("faiss", "Flat", slow=True, note="exact baseline"),
                Config("faiss", "HNSW32,Flat", grid(efSearch=[32, 64, 128])),
                Config("faiss", f"IVF{nlist},PQ{m}x4fs,RFlat", grid(nprobe=npb2, k_factor=[2, 4, 8])),
                Config("faiss", "RR,RaBitQ", slow=True),
                Config("faiss", "RR,RaBitQfs", slow=True),
                Config("faiss", f"IVF{nlist},RaBitQ4", grid(nprobe=npb)),
                Config("faiss", "HNSW32,RaBitQ4", grid(efSearch=[32, 64, 128])),
                Config("faiss", "EDEN4", slow=True),
                Config("faiss", "RR,SQtq4", slow=True),
                Config("faiss", "RR,SQtqmse4", slow=True)]
    if method == "hnswlib":
        if quick:
            return [Config("hnswlib", "M16", grid(ef=[32]))]
        return [Config("hnswlib", f"M{m}", grid(ef=[32, 64, 128, 256])) for m in (16, 32)]
    if method == "rabitqlib":
        if quick:
            return [Config("rabitqlib", f"IVF{nlist},RaBitQ4", grid(nprobe=[min(8, nlist)]))]
        return [Config("rabitqlib", f"IVF{nlist},RaBitQ4",
                       grid(nprobe=sorted({min(v, nlist) for v in (8, 16, 32, 64)}))),
                Config("rabitqlib", "HNSW16,RaBitQ4", grid(ef=[32, 64, 128])),
                Config("rabitqlib", "SymQG32", grid(ef=[32, 64, 128]))]
    if method == "turbovec":
        if quick:
            return [Config("turbovec", "TQ4", slow=True)]
        return [Config("turbovec", "TQ4", slow=True), Config("turbovec", "TQ4+cal", slow=True)]
    if method == "scann":
        lv = lambda vals: sorted({min(v, nlist) for v in vals})  # noqa: E731
        if quick:
            return [Config("scann", f"IVF{nlist},AH2,Reorder", grid(leaves=lv([8]), k_factor=[4]))]
        return [Config("scann", f"IVF{nlist},AH2", grid(leaves=lv((8, 16, 32, 64, 128)))),
                Config("scann", f"IVF{nlist},AH2,Reorder",
                       grid(leaves=lv((16, 32, 64, 128, 256)), k_factor=[2, 4, 10]))]
    if method == "usearch":
        if quick:
            return [Config("usearch", "M16,i8", grid(ef=[32]))]
        return [Config("usearch", f"M16,{dt}", grid(ef=[32, 64, 128, 256])) for dt in ("f16", "i8")]
    raise ValueError(f"unknown peer method {method!r}")


def make(cfg, metric, threads, Method):
    cls = {"faiss": _faiss_cls, "hnswlib": _hnswlib_cls, "rabitqlib": _rabitqlib_cls,
           "turbovec": _turbovec_cls, "scann": _scann_cls, "usearch": _usearch_cls}.get(cfg.method)
    if cls is None:
        raise ValueError(f"unknown method {cfg.method!r}")
    return cls(Method)(cfg, metric, threads)


def _saved_size(save, tmpdir, name):
    path = os.path.join(tmpdir, name)
    save(path)
    size = os.path.getsize(path)
    os.remove(path)
    return size


def _pad(x, multiple):
    """Zero-pad columns to a multiple of `multiple` (inner products and L2 distances unchanged)."""
    d = x.shape[1]
    dp = -(-d // multiple) * multiple
    if dp == d:
        return np.ascontiguousarray(x, np.float32)
    out = np.zeros((x.shape[0], dp), np.float32)
    out[:, :d] = x
    return out


def _kmeans(x, nlist, metric, seed=1234):
    import faiss
    km = faiss.Kmeans(x.shape[1], nlist, niter=20, seed=seed, spherical=(metric == "angular"),
                      verbose=False)
    km.train(x)
    _, a = km.index.search(x, 1)
    return np.ascontiguousarray(km.centroids, np.float32), np.ascontiguousarray(a.ravel(), np.uint32)


# ---------------------------------------------------------------------------- faiss
def _faiss_cls(Method):
    class FaissMethod(Method):
        family = "faiss"

        def __init__(self, cfg, metric, threads):
            super().__init__(cfg, metric, threads)
            up = cfg.index.upper()
            self.kind = ("float" if up in ("FLAT", "HNSW32,FLAT") or up.endswith(",FLAT")
                         else "codes+rerank" if "RFLAT" in up or "REFINE" in up else "codes")

        def build(self, x):
            import faiss
            d = x.shape[1]
            desc = self.config.index
            fm = faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
            m = re.match(r"^EDEN(\d)$", desc, re.I)
            if m:
                rr = faiss.RandomRotationMatrix(d, d)
                rr.init(1234)
                inner = faiss.IndexEDEN(d, fm, int(m.group(1)), faiss.EDENScaleType_UNBIASED)
                self._keep = (rr, inner)
                self.index = faiss.IndexPreTransform(rr, inner)
            else:
                if "HNSW" in desc.upper() and "RABITQ" in desc.upper():
                    fm = faiss.METRIC_L2  # IndexHNSWRaBitQ is L2-only; same ranking on unit vectors
                    self.note = "L2 metric (IndexHNSWRaBitQ is L2-only; vectors are unit-norm)"
                self.index = faiss.index_factory(d, desc, fm)
            self.index.train(x)
            self.index.add(x)
            self._refine = None
            try:
                self._refine = faiss.downcast_index(self.index)
                if not hasattr(self._refine, "k_factor"):
                    self._refine = None
            except Exception:
                self._refine = None

        def _apply(self, qp):
            import faiss
            ps = faiss.ParameterSpace()
            for k, v in qp.items():
                if k == "k_factor":
                    if self._refine is None:
                        raise ValueError("k_factor needs a refine index")
                    self._refine.k_factor = float(v)
                elif k == "qb":
                    ivf = faiss.try_extract_index_ivf(self.index)
                    tgt = ivf if ivf is not None else faiss.downcast_index(
                        faiss.downcast_index(self.index).index if hasattr(self.index, "index") else self.index)
                    tgt.qb = int(v)
                else:
                    ps.set_index_parameter(self.index, k, v)

        def search(self, q, k, qp):
            if qp != getattr(self, "_qp", None):
                self._apply(qp)
                self._qp = dict(qp)
            return self.index.search(q, k)[1]

        def file_size(self, tmpdir):
            import faiss
            try:
                return _saved_size(lambda p: faiss.write_index(self.index, p), tmpdir, "f.faiss"), True
            except Exception:
                try:
                    return self.index.sa_code_size() * self.index.ntotal, False
                except Exception:
                    return None, False

    return FaissMethod


# ---------------------------------------------------------------------------- hnswlib
def _hnswlib_cls(Method):
    class HnswlibMethod(Method):
        family = "hnswlib"
        kind = "float"

        def build(self, x):
            import hnswlib
            m = re.match(r"^M(\d+)$", self.config.index, re.I)
            if not m:
                raise ValueError(f"hnswlib config must be M<int>, got {self.config.index!r}")
            space = "l2" if self.metric == "euclidean" else "ip"
            self.index = hnswlib.Index(space=space, dim=x.shape[1])
            self.index.init_index(max_elements=len(x), ef_construction=100, M=int(m.group(1)),
                                  random_seed=100)
            bt = getattr(self, "build_threads", self.threads)
            self.index.set_num_threads(bt)
            self.index.add_items(x, np.arange(len(x)), num_threads=bt)
            self.index.set_num_threads(self.threads)
            self.note = "ef_construction=100"

        def search(self, q, k, qp):
            self.index.set_ef(max(int(qp.get("ef", 64)), k))
            labels, _ = self.index.knn_query(q, k=k, num_threads=self.threads)
            return labels.astype(np.int64)

        def file_size(self, tmpdir):
            return _saved_size(self.index.save_index, tmpdir, "h.bin"), True

    return HnswlibMethod


# ---------------------------------------------------------------------------- rabitqlib
def _rabitqlib_cls(Method):
    class RabitqlibMethod(Method):
        family = "rabitqlib"

        def build(self, x):
            import rabitqlib
            d0 = x.shape[1]
            x = _pad(x, 64)  # its FhtKacRotator needs d % 64 == 0; zero padding is exact
            self.pad = x.shape[1]
            n, d = x.shape
            self.note = f"zero-padded d {d0} -> {d}" if d != d0 else ""
            metric = "l2" if self.metric == "euclidean" else "ip"
            bt = getattr(self, "build_threads", self.threads)
            desc = self.config.index
            m_ivf = re.match(r"^IVF(\d+),RaBitQ(\d+)$", desc, re.I)
            m_hnsw = re.match(r"^HNSW(\d+),RaBitQ(\d+)$", desc, re.I)
            m_sym = re.match(r"^SymQG(\d+)$", desc, re.I)
            if m_ivf:
                nlist, bits = int(m_ivf.group(1)), int(m_ivf.group(2))
                cent, assign = _kmeans(x, nlist, self.metric)
                self.index = rabitqlib.IvfIndex(d, n, nlist, bits, metric)
                self.index.build(x, cent, assign, num_threads=bt)
                self.kind_ = "ivf"
            elif m_hnsw:
                M, bits = int(m_hnsw.group(1)), int(m_hnsw.group(2))
                cent, assign = _kmeans(x, 16, self.metric)
                self.index = rabitqlib.HnswIndex(d, n, M, 100, bits, metric)
                self.index.build(x, cent, assign, num_threads=bt)
                self.kind_ = "hnsw"
            elif m_sym:
                self.index = rabitqlib.SymqgIndex(d, int(m_sym.group(1)), metric, 0)
                self.index.build(x, 100, num_threads=bt)
                self.kind_ = "symqg"
                self.kind = "codes+rerank"  # SymphonyQG keeps the float vectors for exact rerank
                self.note = ("SymqgIndex(quantization_bits=0), ef_construction=100; stores float vectors; "
                             + self.note).strip("; ")
            else:
                raise ValueError(f"rabitqlib config must be IVF<n>,RaBitQ<b>, HNSW<M>,RaBitQ<b> "
                                 f"or SymQG<R>, got {desc!r}")

        def search(self, q, k, qp):
            t = self.threads
            q = _pad(q, 64)
            if self.kind_ == "ivf":
                res = self.index.search(q, k, int(qp.get("nprobe", 16)), num_threads=t)
            elif self.kind_ == "hnsw":
                res = self.index.search(q, k, max(int(qp.get("ef", 64)), k), num_threads=t)
            else:
                ef = max(int(qp.get("ef", 64)), k)
                res = (self.index.search_batch(q, k, ef, num_threads=t) if len(q) > 1
                       else self.index.search(q, k, ef, num_threads=t))
            ids = np.asarray(res[0])
            out = ids.astype(np.int64)
            out[ids == np.iinfo(np.uint32).max] = -1
            return out

        def file_size(self, tmpdir):
            return _saved_size(self.index.save, tmpdir, "r.bin"), True

    return RabitqlibMethod


# ---------------------------------------------------------------------------- turbovec
def _turbovec_cls(Method):
    class TurbovecMethod(Method):
        family = "turbovec"

        def build(self, x):
            if self.metric == "euclidean":
                raise RuntimeError("turbovec scores by inner product only (no euclidean)")
            import turbovec
            m = re.match(r"^TQ(\d)(\+cal)?$", self.config.index, re.I)
            if not m:
                raise ValueError(f"turbovec config must be TQ<b> or TQ<b>+cal, got {self.config.index!r}")
            d0 = x.shape[1]
            x = _pad(x, 8)  # turbovec needs d % 8 == 0; zero padding is exact
            self.index = turbovec.TurboQuantIndex(x.shape[1], int(m.group(1)))
            if m.group(2):
                rng = np.random.default_rng(0)
                self.index.calibrate(np.ascontiguousarray(x[rng.choice(len(x), min(1024, len(x)), replace=False)]))
            self.index.add(x)
            self.index.prepare()
            self.note = f"rayon threads from RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}"
            if x.shape[1] != d0:
                self.note += f"; zero-padded d {d0} -> {x.shape[1]}"

        def search(self, q, k, qp):
            return np.asarray(self.index.search(_pad(q, 8), k)[1], np.int64)

        def file_size(self, tmpdir):
            return _saved_size(lambda p: self.index.write(p, durable=False), tmpdir, "t.tv"), True

    return TurbovecMethod


# ---------------------------------------------------------------------------- scann
def _scann_cls(Method):
    class ScannMethod(Method):
        family = "scann"

        def build(self, x):
            import scann
            m = re.match(r"^IVF(\d+),AH(\d+)(,Reorder)?$", self.config.index, re.I)
            if not m:
                raise ValueError(f"scann config must be IVF<n>,AH<dims per block>[,Reorder], "
                                 f"got {self.config.index!r}")
            nlist, dpb, self.reorder = int(m.group(1)), int(m.group(2)), bool(m.group(3))
            n, d = x.shape
            self.d, self.n, self.dpb = d, n, dpb
            dot = self.metric != "euclidean"
            self.kind = "codes+rerank" if self.reorder else "codes"
            x = np.ascontiguousarray(x, np.float32)
            b = scann.scann_ops_pybind.builder(x, 10, "dot_product" if dot else "squared_l2")
            b = b.tree(num_leaves=min(nlist, n), num_leaves_to_search=min(16, nlist),
                       training_sample_size=n, spherical=(self.metric == "angular"),
                       quantize_centroids=True)
            b = b.score_ah(dpb, anisotropic_quantization_threshold=0.2 if dot else float("nan"))
            if self.reorder:
                b = b.reorder(40)
            b = b.set_n_training_threads(getattr(self, "build_threads", self.threads))
            self.searcher = b.build()
            self.searcher.set_num_threads(self.threads)
            self.note = ("tree spherical+quantize_centroids, training on all rows; " if self.metric == "angular"
                         else "tree quantize_centroids; ") + \
                        ("AH lut16, AVQ threshold 0.2" if dot else "AH lut16, no AVQ (L2)") + \
                        ("; float32 reorder" if self.reorder else "") + \
                        "; B/vec counts the 4-bit codes packed"

        def search(self, q, k, qp):
            leaves = int(qp.get("leaves", 16))
            pre = k * int(qp.get("k_factor", 4)) if self.reorder else k
            if len(q) == 1:
                ids, _ = self.searcher.search(q[0], final_num_neighbors=k, leaves_to_search=leaves,
                                              pre_reorder_num_neighbors=pre)
                rows = [ids]
            elif self.threads > 1:
                rows, _ = self.searcher.search_batched_parallel(
                    q, final_num_neighbors=k, leaves_to_search=leaves, pre_reorder_num_neighbors=pre)
            else:
                rows, _ = self.searcher.search_batched(
                    q, final_num_neighbors=k, leaves_to_search=leaves, pre_reorder_num_neighbors=pre)
            out = np.full((len(q), k), -1, np.int64)
            for i, r in enumerate(rows):
                r = np.asarray(r, np.int64)[:k]
                out[i, :len(r)] = r
            return out

        def file_size(self, tmpdir):
            path = os.path.join(tmpdir, "scann")
            os.makedirs(path, exist_ok=True)
            self.searcher.serialize(path)
            total = 0
            for fn in os.listdir(path):
                fp = os.path.join(path, fn)
                sz = os.path.getsize(fp)
                if fn == "hashed_dataset.npy":  # one byte per 4-bit code on disk; packed in memory
                    nblocks = -(-self.d // self.dpb)
                    sz = self.n * (-(-nblocks // 2))
                total += sz
                os.remove(fp)
            os.rmdir(path)
            return total, False

    return ScannMethod


# ---------------------------------------------------------------------------- usearch
def _usearch_cls(Method):
    class UsearchMethod(Method):
        family = "usearch"

        def build(self, x):
            from usearch.index import Index
            m = re.match(r"^M(\d+),(f16|i8|f32)$", self.config.index, re.I)
            if not m:
                raise ValueError(f"usearch config must be M<connectivity>,<f16|i8|f32>, got {self.config.index!r}")
            dt = m.group(2).lower()
            self.kind = "codes" if dt == "i8" else "float"
            metric = {"angular": "cos", "euclidean": "l2sq", "ip": "ip"}[self.metric]
            self.index = Index(ndim=x.shape[1], metric=metric, dtype=dt,
                               connectivity=int(m.group(1)), expansion_add=100)
            self.index.add(np.arange(len(x)), np.ascontiguousarray(x, np.float32),
                           threads=getattr(self, "build_threads", self.threads))
            self.note = f"metric {metric}, dtype {dt}, expansion_add=100"

        def search(self, q, k, qp):
            self.index.expansion_search = max(int(qp.get("ef", 64)), k)
            res = self.index.search(np.ascontiguousarray(q, np.float32), k, threads=self.threads)
            keys = np.asarray(res.keys, np.int64)
            out = np.full((len(q), k), -1, np.int64)
            if keys.ndim == 1:
                out[0, :len(keys)] = keys
            else:
                counts = np.asarray(res.counts)
                for i in range(len(q)):
                    out[i, :counts[i]] = keys[i, :counts[i]]
            return out

        def file_size(self, tmpdir):
            return _saved_size(self.index.save, tmpdir, "u.usearch"), True

    return UsearchMethod
