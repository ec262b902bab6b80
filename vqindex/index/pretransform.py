"""IndexPreTransform: a linear transform (faiss RR / OPQ / PCA / ITQ) applied to every input
and query before a base index (faiss IndexPreTransform, linear transforms only)."""
from __future__ import annotations

import numpy as np

from .._validation import as_vectors
from .base import Index

__all__ = ["IndexPreTransform"]


class IndexPreTransform(Index):
    """``y = x @ A.T + b`` before the base index (A float32 (d_out, d_in), b float32 (d_out,)).

    Built by `IndexIVFCodes.from_faiss_ivf` from a faiss ``IndexPreTransform`` whose chain is
    made of linear transforms (the chain's matrices are multiplied into one A, b). Distances
    are the base index's, computed in the transformed space (as in faiss).
    """

    _file_kind = "pretransform"
    _file_codec = False

    def __init__(self, A, b, base):
        A = np.ascontiguousarray(A, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
        if A.ndim != 2 or A.shape[0] != base.d or b.shape != (base.d,):
            raise ValueError(f"transform A {A.shape} / b {b.shape} do not map to the base "
                             f"index's d={base.d}")
        if not (np.isfinite(A).all() and np.isfinite(b).all()):
            raise ValueError("transform A / b hold NaN or inf")
        super().__init__(A.shape[1], base._metric)
        self.A, self.b, self.base = A, b, base

    ntotal = property(lambda self: self.base.ntotal)
    is_trained = property(lambda self: self.base.is_trained)
    code_size = property(lambda self: self.base.code_size)
    codec = property(lambda self: self.base.codec)
    ids = property(lambda self: self.base.ids)

    def apply(self, x) -> np.ndarray:
        """The transformed vectors: float32 (n, d_out) of x float32 (n, d_in)."""
        x = as_vectors(x, self.d)
        return np.ascontiguousarray(x @ self.A.T + self.b, dtype=np.float32)

    def _prep(self, x, what="x"):
        return as_vectors(x, self.d, what)  # the base normalises (cosine) after the transform

    def train(self, x):
        self.base.train(self.apply(x))
        return self

    def add(self, x, num_threads=None):
        self.base.add(self.apply(x), num_threads=num_threads)

    def add_with_ids(self, x, ids, num_threads=None):
        self.base.add_with_ids(self.apply(x), ids, num_threads=num_threads)

    def remove_ids(self, sel):
        return self.base.remove_ids(sel)

    def reset(self):
        self.base.reset()

    def _next_id(self):
        return self.base._next_id()

    def _search_keys(self, x, k, p):
        return self.base._search_keys(self.base._prep(self.apply(x)), k, p.merged(self.base.params))

    def _range_keys(self, x, radius, p):
        return self.base._range_keys(self.base._prep(self.apply(x)), radius,
                                     p.merged(self.base.params))

    def reconstruct_batch(self, ids):
        """Stored vectors mapped back with the pseudo-inverse of A: float32 (n, d_in)."""
        y = self.base.reconstruct_batch(ids) - self.b
        return np.ascontiguousarray(y @ np.linalg.pinv(self.A).T, dtype=np.float32)

    def reconstruct(self, key):
        return self.reconstruct_batch(np.array([key]))[0]

    def _state(self):
        return {}, {"A": self.A, "b": self.b}, {"base": self.base}

    @classmethod
    def _from_state(cls, meta, arrays, children, ctx):
        A = ctx.array(arrays, "A", np.float32, 2)
        b = ctx.array(arrays, "b", np.float32, 1)
        try:
            return cls(np.array(A), np.array(b), children["base"])
        except (KeyError, ValueError) as exc:
            raise ctx.fail(f"bad pre-transform: {exc}") from None
