"""scann: "IVF<nlist>,AH2" (tree of nlist leaves, spherical k-means and quantized centroids for
dot product as in ann-benchmarks, training on all rows; score_ah with 2 dims per 4-bit code,
anisotropic threshold 0.2 for dot product) and "IVF<nlist>,AH2,Reorder" (the same plus a
float32 reorder).

Query params: leaves (leaves_to_search), k_factor (pre_reorder_num_neighbors = k * k_factor;
Reorder only). Threads: searcher.set_num_threads, search_batched (one thread) or
search_batched_parallel (threads > 1); training on the build threads. Bytes: the serialized
files with the 4-bit codes counted packed (the saved hashed_dataset.npy keeps one byte per
code): d/4 bytes + 4-byte token per vector, + 4*d with Reorder (an estimate, marked ~).
"""
import os
import re

import numpy as np

from ..base import Config, Method, grid, nprobes

LIBRARY = "scann"
INSTALL = "scann"


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("scann", f"IVF{nlist},AH2,Reorder", grid(leaves=nprobes(nlist, (8,)), k_factor=[4]))]
    return [Config("scann", f"IVF{nlist},AH2", grid(leaves=nprobes(nlist, (8, 16, 32, 64, 128)))),
            Config("scann", f"IVF{nlist},AH2,Reorder",
                   grid(leaves=nprobes(nlist, (16, 32, 64, 128, 256)), k_factor=[2, 4, 10]))]


class Adapter(Method):
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
        self.note = (("tree spherical+quantize_centroids, training on all rows; " if self.metric == "angular"
                      else "tree quantize_centroids; ")
                     + ("AH lut16, AVQ threshold 0.2" if dot else "AH lut16, no AVQ (L2)")
                     + ("; float32 reorder" if self.reorder else "")
                     + "; B/vec counts the 4-bit codes packed")

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
