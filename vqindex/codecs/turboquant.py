"""TurboQuant (Zandieh et al., arXiv 2504.19874): TQ_mse (Alg. 1) and TQ_prod (Alg. 2), spec 3 and 5.

TQ_mse stores the norm so any input works (FAISS's assumes unit vectors). TQ_prod adds a
1-bit QJL sketch of the residual with the *correct* coefficient, so it is unbiased: with the
default orthogonal projection (a second seeded rotation) the coefficient is gamma/(D m_D),
m_D = E|u_1|; with the paper's Gaussian S it is sqrt(pi/2)/D * gamma. FAISS's QT_*bit_tq keeps
the Gaussian coefficient with an orthonormal projection, which shrinks the QJL term (spec 5).
"""
import math

import numpy as np

from ..kernels import native as _native
from ..kernels import bits as _bits
from ..kernels import quantize as _q
from ..kernels._threads import threads
from .base import Codec, Section
from .codebooks import boundaries_of, gaussian_levels, sphere_levels
from .eden import _check_bits
from .rotation import Rotation

__all__ = ["TurboQuantMSE", "TurboQuantProd"]

CODEBOOKS = ("exact", "gauss")
QJL_KINDS = ("orthogonal", "gaussian")


def _levels(bits, dim, codebook):
    if codebook not in CODEBOOKS:
        raise ValueError(f"unknown TurboQuant codebook {codebook!r}; expected one of {CODEBOOKS}")
    return sphere_levels(bits, dim) if codebook == "exact" else gaussian_levels(bits)


def _mean_abs_coord(dim):
    """m_D = E|u_1| for u uniform on S^{D-1} = Gamma(D/2) / (sqrt(pi) Gamma((D+1)/2))."""
    return math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)


class TurboQuantMSE(Codec):
    """TurboQuant_mse: b = 1..8 bits per dimension plus the float32 norm."""

    factor_names = ("norm",)

    def __init__(self, d, bits=4, codebook="exact", **kw):
        super().__init__(d, **kw)
        self.bits = _check_bits(bits, 1, 8, "TQmse")
        self.codebook = codebook
        self.levels = _levels(self.bits, self.D, codebook)
        self._bounds = boundaries_of(self.levels)
        self.sections = [Section(self.levels[:, None], self.bits, self.D)]
        self._finish_layout()

    @property
    def name(self):
        return f"TQmse{self.bits}"

    def params(self):
        return dict(super().params(), bits=self.bits, codebook=self.codebook)

    def _quantize(self, y, num_threads):
        idx, alpha, ell = self._scalar_quantize(y, 0)
        return [idx], np.sqrt(ell)[:, None].astype(np.float32)

    def _encode_fused(self, x, codes, num_threads=1):
        out = self._fused_scalar(x, codes, 0, num_threads)
        return None if out is None else np.sqrt(out[1])[:, None].astype(np.float32)

    def _scales(self, fac):
        norm = fac[:, 0]
        return np.stack([norm / np.float32(math.sqrt(self.D)), norm * norm], axis=1)


class TurboQuantProd(Codec):
    """TurboQuant_prod: (b-1)-bit TQ_mse + 1-bit QJL of the residual; b = 2..8; unbiased."""

    n_acc = 2
    factor_names = ("norm", "gamma")

    def __init__(self, d, bits=4, qjl="orthogonal", codebook="exact", **kw):
        super().__init__(d, **kw)
        self.bits = _check_bits(bits, 2, 8, "TQprod")
        if qjl not in QJL_KINDS:
            raise ValueError(f"unknown QJL projection {qjl!r}; expected one of {QJL_KINDS}")
        self.qjl = qjl
        self.codebook = codebook
        self.levels = _levels(self.bits - 1, self.D, codebook)
        self._bounds = boundaries_of(self.levels)
        if qjl == "orthogonal":
            self._proj = Rotation(self.D, kind=self.rotation.kind, seed=self.seed + 7919)
            self._coef = 1.0 / (self.D * _mean_abs_coord(self.D))
        else:
            rng = np.random.default_rng([self.seed, 0x0A1, self.D])
            self._gauss = rng.standard_normal((self.D, self.D)).astype(np.float32)
            self._coef = math.sqrt(math.pi / 2.0) / self.D
        self.sections = [Section(self.levels[:, None], self.bits - 1, self.D),
                         Section(np.array([[-1.0], [1.0]]), 1, self.D, acc=1, space=1)]
        self._finish_layout()

    @property
    def name(self):
        return f"TQprod{self.bits}" + ("G" if self.qjl == "gaussian" else "")

    def params(self):
        return dict(super().params(), bits=self.bits, qjl=self.qjl, codebook=self.codebook)

    def _space_apply(self, space, v, num_threads):
        if self.qjl == "orthogonal":
            return self._proj.apply(v, num_threads=num_threads)
        return np.ascontiguousarray(v @ self._gauss.T)

    def _space_inverse(self, space, w, num_threads):
        if self.qjl == "orthogonal":
            return self._proj.inverse(np.ascontiguousarray(w, dtype=np.float32), num_threads=num_threads)
        return np.ascontiguousarray(w @ self._gauss)

    def _quantize(self, y, num_threads):
        idx, alpha, ell = self._scalar_quantize(y, 0)
        norm = np.sqrt(ell).astype(np.float32)
        rho = np.empty_like(y)
        gamma = np.empty(y.shape[0], np.float32)
        _q.unit_residual(y, idx, self.levels, norm, rho, gamma)
        proj = self._space_apply(1, rho, num_threads)
        signs = (proj >= 0).astype(np.uint16)
        return [idx, signs], np.stack([norm, gamma], axis=1)

    def _encode_fused(self, x, codes, num_threads=1):
        """Native path: the (b-1)-bit stage is rotated, quantized and packed in one C pass
        that also returns the QJL input (unit residual rho and its norm gamma); same codes
        as `_quantize` (tests/test_native_encode.py)."""
        nat = self.rotation.native_args()
        if nat is None:
            return None
        n = x.shape[0]
        factors = np.empty((n, 2), np.float32)
        bounds32 = np.ascontiguousarray(self._bounds, np.float32)
        levels = np.ascontiguousarray(self.levels, np.float64)
        lv = (self.levels / np.sqrt(self.D)).astype(np.float32)  # as unit_residual builds it
        qjl = self.sections[1]
        for r0, r1 in self._row_chunks(n):
            m = r1 - r0
            rho = np.empty((m, self.D), np.float32)
            gamma = np.empty(m, np.float32)
            stats = np.empty((m, 3), np.float64)
            _native.rotate_scalar_encode(x[r0:r1], *nat, bounds32, levels, self.bits - 1,
                                         codes[r0:r1], stats, num_threads=num_threads,
                                         y_out=rho, resid_levels=lv, gamma_out=gamma)
            alpha = np.empty(m, np.float32)
            ell = np.empty(m, np.float32)
            _q.alpha_ell_rows(0, stats, self.D, alpha, ell)
            norm = np.sqrt(ell).astype(np.float32)
            with threads(num_threads):
                proj = self._space_apply(1, rho, num_threads)
                _bits.pack_fields_shifted((proj >= 0).astype(np.uint16), 0, 1, codes[r0:r1],
                                          qjl.byte_off)
            factors[r0:r1, 0] = norm
            factors[r0:r1, 1] = gamma
        return factors

    def _scales(self, fac):
        norm, gamma = fac[:, 0], fac[:, 1]
        return np.stack([norm / np.float32(math.sqrt(self.D)),
                         norm * gamma * np.float32(self._coef), norm * norm], axis=1)
