"""Seeded random rotations shared by data, centroids and queries (spec 1.2).

Two kinds:

* ``"haar"``: a dense Haar-distributed orthogonal matrix (QR of a Gaussian matrix with the
  sign fix). D^2 flops per vector.
* ``"fast"`` (default): a structured O(D log D) rotation that keeps the dimension D for any D.
  Each round flips signs, permutes the coordinates and applies a normalised Hadamard transform
  on the first and on the last P = 2^floor(log2 D) coordinates (the two blocks overlap when D is
  not a power of two, so every coordinate is mixed). ``rounds`` defaults to 3 (spec 1.2: one
  round of a randomized Hadamard transform is not enough, three match Haar).
"""
import numpy as np

from ..kernels import native as _native
from .._validation import MAX_NORM, as_vectors
from ..kernels import rotation as _k
from ..kernels._threads import threads

__all__ = ["Rotation", "ROTATION_KINDS"]

ROTATION_KINDS = ("fast", "haar")


class Rotation:
    """A seeded orthogonal D x D rotation; ``apply`` maps rows x -> R x, ``inverse`` -> R^T y."""

    def __init__(self, dim, kind="fast", seed=0, rounds=None):
        if kind not in ROTATION_KINDS:
            raise ValueError(f"unknown rotation kind {kind!r}; expected one of {ROTATION_KINDS}")
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"rotation dimension must be >= 1, got {dim}")
        self.dim = dim
        self.kind = kind
        self.seed = int(seed)
        self.rounds = int(rounds) if rounds is not None else (3 if kind == "fast" else 0)
        if kind == "fast" and self.rounds < 1:
            raise ValueError(f"a fast rotation needs rounds >= 1, got {self.rounds}")
        self._matrix = None
        if kind == "fast":
            rng = np.random.default_rng([self.seed, 0x5EED, dim])
            self._signs = np.where(rng.random((self.rounds, dim)) < 0.5, -1.0, 1.0).astype(np.float32)
            self._perms = np.stack([rng.permutation(dim) for _ in range(self.rounds)]).astype(np.int32)
            self._p = 1 << (dim.bit_length() - 1)
            # sign of the source coordinate of every gathered entry (native kernels)
            self._sp = np.ascontiguousarray(
                np.take_along_axis(self._signs, self._perms.astype(np.int64), axis=1))

    def native_args(self):
        """(sign-at-permutation, perms, p) for native/encode.c, or None (Haar rotation, no
        native library or no SIMD backend: the numba kernels run then, bit-identical)."""
        if self.kind != "fast" or not _native.encode_preferred():
            return None
        return self._sp, self._perms, self._p

    def fused_args(self):
        """(signs, perms, p) of a fast rotation, for fused kernels; None for Haar."""
        if self.kind != "fast":
            return None
        return self._signs, self._perms, self._p

    def params(self):
        """The parameters that rebuild this rotation exactly."""
        return {"dim": self.dim, "kind": self.kind, "seed": self.seed, "rounds": self.rounds}

    def matrix(self):
        """The rotation as a dense float32 (D, D) matrix R (rows map x -> R x)."""
        if self._matrix is None:
            if self.kind == "haar":
                rng = np.random.default_rng([self.seed, 0x4AA2, self.dim])
                g = rng.standard_normal((self.dim, self.dim))
                q, r = np.linalg.qr(g)
                q *= np.sign(np.diag(r))[None, :]
                self._matrix = np.ascontiguousarray(q, dtype=np.float32)
            else:
                eye = np.eye(self.dim, dtype=np.float32)
                self._matrix = np.ascontiguousarray(self.apply(eye).T)
        return self._matrix

    def apply(self, x, num_threads=1):
        """Rotate rows: float32 (n, D) -> float32 (n, D) = x R^T (rows of norm <= 2^62:
        residuals of two inputs within vqindex._validation.MAX_NORM)."""
        x = as_vectors(x, self.dim, max_norm=4 * MAX_NORM)
        if self.kind == "haar":
            return np.ascontiguousarray(x @ self.matrix().T)
        out = np.empty_like(x)
        if 0 < x.shape[0] < _k.LANES:  # a few rows (queries): no 16-row tile, same result
            _k.fast_rotate_rows(x, self._signs, self._perms, self._p, out)
        elif x.shape[0]:
            nat = self.native_args()
            if nat is not None:
                _native.fast_rotate(x, *nat, out, num_threads=num_threads)
            else:
                with threads(num_threads):
                    _k.fast_rotate(x, self._signs, self._perms, self._p, out)
        return out

    def inverse(self, y, num_threads=1):
        """Rotate rows back: float32 (n, D) -> float32 (n, D) = y R."""
        y = as_vectors(y, self.dim)
        if self.kind == "haar":
            return np.ascontiguousarray(y @ self.matrix())
        out = np.empty_like(y)
        if y.shape[0]:
            nat = self.native_args()
            if nat is not None:
                _native.fast_rotate(y, *nat, out, inverse=True, num_threads=num_threads)
            else:
                with threads(num_threads):
                    _k.fast_rotate_inverse(y, self._signs, self._perms, self._p, out)
        return out
