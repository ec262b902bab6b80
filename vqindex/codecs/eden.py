"""EDEN (ICML 2022; DRIVE = its 1-bit case), spec section 4.

Gaussian Lloyd-Max levels on z = sqrt(D) y/||y||, one scale alpha per vector with the unbiased
(||y||^2/<y,q>, the original EDEN) or the biased (MSE-optimal <y,q>/||q||^2) rule.
"""
import numpy as np

from .base import Codec, Section
from .codebooks import boundaries_of, gaussian_levels

__all__ = ["EDEN", "SCALE_RULES"]

SCALE_RULES = {"unbiased": 2, "biased": 1}


def _check_bits(bits, lo, hi, name):
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= bits <= hi:
        raise ValueError(f"{name} supports {lo}..{hi} bits per dimension, got {bits!r}")
    return int(bits)


def _check_rule(scale):
    if scale not in SCALE_RULES:
        raise ValueError(f"unknown scale rule {scale!r}; expected one of {tuple(SCALE_RULES)}")
    return scale


class EDEN(Codec):
    """EDEN / DRIVE with b = 1..8 bits per dimension and a float alpha and ell per vector."""

    def __init__(self, d, bits=4, scale="unbiased", **kw):
        super().__init__(d, **kw)
        self.bits = _check_bits(bits, 1, 8, "EDEN")
        self.scale = _check_rule(scale)
        self.levels = gaussian_levels(self.bits)
        self._bounds = boundaries_of(self.levels)
        self.sections = [Section(self.levels[:, None], self.bits, self.D)]
        self._finish_layout()

    @property
    def name(self):
        return f"EDEN{self.bits}" + ("BIASED" if self.scale == "biased" else "")

    def params(self):
        return dict(super().params(), bits=self.bits, scale=self.scale)

    def _quantize(self, y, num_threads):
        idx, alpha, ell = self._scalar_quantize(y, SCALE_RULES[self.scale])
        return [idx], np.stack([alpha, ell], axis=1)

    def _encode_fused(self, x, codes, num_threads=1):
        out = self._fused_scalar(x, codes, SCALE_RULES[self.scale], num_threads)
        return None if out is None else np.stack(out, axis=1)

    def _scales(self, fac):
        return fac[:, :2]
