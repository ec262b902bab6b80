"""RaBitQ (SIGMOD 2024) and Extended RaBitQ (SIGMOD 2025), spec section 6.

Code: a sign plane (bit = y_i > 0) and B-1 bit planes of the extra code (e_i, complemented
for y_i < 0), so uc_i - (2^B - 1)/2 = g_i is the uniform-grid code. The per-vector rescale t is the exact
optimum of cos(g, y) (``rescale="optimal"``) or one constant (``"const"``, the fast option).
"""
import numpy as np

from ..kernels import quantize as _q
from .base import Codec, Section
from .eden import SCALE_RULES, _check_bits, _check_rule

__all__ = ["RaBitQ"]

# The optimal sweep visits every critical point from t -> 0 (the 1-bit code) up to t_end.
# FAISS and RaBitQ-Library start it at t_end * kTightStart[ex_bits] (spec 6.1). Measured here,
# that window loses ~5 % vNMSE at B = 4, d = 128 (0.0105 vs 0.0100), and up to 0.3 % at B = 5, 6
# and d = 64, but gives the same vNMSE to 4 digits at B >= 7 (d = 64, 128, 1536) while being
# 2-4x faster. So the window is used from B = 7 and the full sweep below.
TIGHT_START = (0.0, 0.15, 0.20, 0.52, 0.59, 0.71, 0.75, 0.77, 0.81)
WINDOW_FROM_BITS = 7
# constant rescale t_c / sqrt(D) (spec 6.1: measured 0.99, 1.70, 3.0 for B = 2, 3, 4);
# beyond B = 4 the step halves per extra bit.
CONST_T = {1: 0.0, 2: 0.99, 3: 1.70, 4: 3.0}
RESCALES = ("optimal", "const")


class RaBitQ(Codec):
    """RaBitQ with B = 1..9 bits per dimension (1 sign bit + B-1 extra bits)."""

    def __init__(self, d, bits=1, scale="unbiased", rescale="optimal", **kw):
        super().__init__(d, **kw)
        self.bits = _check_bits(bits, 1, 9, "RaBitQ")
        self.scale = _check_rule(scale)
        if rescale not in RESCALES:
            raise ValueError(f"unknown RaBitQ rescale {rescale!r}; expected one of {RESCALES}")
        self.rescale = rescale
        half = ((1 << self.bits) - 1) / 2.0
        hi = (1 << (self.bits - 1)) - half
        # The ex code e (B-1 bits) is stored as B-1 bit planes: g = uc - (2^B-1)/2 is linear in
        # the bits of uc, so every plane is a 1-bit section with table [0, 2^p] and the whole
        # code is a sum of 4-bit lookups (fast-scan) at any B. Same bits as FAISS's
        # sign + packed ex layout (spec 6.1), different order.
        if self.bits == 1:  # the 1-bit code is scalar: fused encoder with levels +-1/2
            self.levels = np.array([-0.5, 0.5])
            self._bounds = np.array([0.0])
        self.sections = [Section(np.array([[-half], [hi]]), 1, self.D)]
        for plane in range(self.bits - 1):
            self.sections.append(Section(np.array([[0.0], [float(1 << plane)]]), 1, self.D))
        self._finish_layout()

    @property
    def name(self):
        return f"RaBitQ{self.bits}" + ("MSE" if self.scale == "biased" else "") + (
            "C" if self.rescale == "const" and self.bits > 1 else "")

    def params(self):
        return dict(super().params(), bits=self.bits, scale=self.scale, rescale=self.rescale)

    def _const_t(self):
        b = self.bits
        if b in CONST_T:
            return CONST_T[b]
        return CONST_T[4] * 2.0 ** (b - 4)

    def _quantize(self, y, num_threads):
        n = y.shape[0]
        sign = np.empty((n, self.D), np.uint16)
        ex = np.empty((n, self.D), np.uint16)
        alpha = np.empty(n, np.float32)
        ell = np.empty(n, np.float32)
        const_t = self._const_t() if self.rescale == "const" else 0.0
        sweep_start = TIGHT_START[self.bits - 1] if self.bits >= WINDOW_FROM_BITS else 0.0
        _q.rabitq_quantize(y, self.bits - 1, const_t, sweep_start,
                           SCALE_RULES[self.scale], sign, ex, alpha, ell)
        fields = [sign] + [(ex, plane) for plane in range(self.bits - 1)]  # bit planes
        return fields, np.stack([alpha, ell], axis=1)

    def _encode_fused(self, x, codes, num_threads=1):
        if self.bits != 1:
            return None
        out = self._fused_scalar(x, codes, SCALE_RULES[self.scale], num_threads)
        return None if out is None else np.stack(out, axis=1)

    def _scales(self, fac):
        return fac[:, :2]
