"""BlockQuant (block-sphere quantization, arXiv 2605.19972), our construction of spec 7.2.

EDEN with the scalar Lloyd-Max quantizer replaced by a k-dimensional Gaussian-optimal block
codebook of 2^(k b) codewords; D = k * ceil(d / k) (zero padding when k does not divide d).
"""
import numpy as np

from ..kernels import quantize as _q
from .base import Codec, Section
from .block_codebooks import block_codebook
from .eden import SCALE_RULES, _check_bits, _check_rule

__all__ = ["BlockQuant", "DEFAULT_BLOCK"]

DEFAULT_BLOCK = {1: 8, 2: 4, 3: 3, 4: 2}
VARIANTS = ("multishell", "sphere")


class BlockQuant(Codec):
    """BlockQuant with b = 1..4 bits per dimension, block size k (k*b <= 12)."""

    def __init__(self, d, bits=4, block=None, scale="biased", variant="multishell", **kw):
        bits = _check_bits(bits, 1, 4, "BlockQuant")
        block = DEFAULT_BLOCK[bits] if block is None else int(block)
        if block < 1 or block * bits > 12:
            raise ValueError(f"BlockQuant block size k must satisfy 1 <= k and k*b <= 12; "
                             f"got k={block}, b={bits}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown BlockQuant variant {variant!r}; expected one of {VARIANTS}")
        super().__init__(d, code_dim=block * -(-int(d) // block), **kw)
        self.bits = bits
        self.block = block
        self.scale = _check_rule(scale)
        self.variant = variant
        self.codebook = np.ascontiguousarray(block_codebook(block, bits, variant), dtype=np.float32)
        self._cb_norms = np.einsum("ij,ij->i", self.codebook, self.codebook).astype(np.float32)
        self.sections = [Section(self.codebook, block * bits, self.D // block)]
        self._finish_layout()

    @property
    def name(self):
        suffix = "" if self.block == DEFAULT_BLOCK[self.bits] else f"k{self.block}"
        if self.variant == "sphere":
            suffix += "S"
        return f"BQ{self.bits}{suffix}" + ("U" if self.scale == "unbiased" else "")

    def params(self):
        return dict(super().params(), bits=self.bits, block=self.block, scale=self.scale,
                    variant=self.variant)

    def _quantize(self, y, num_threads):
        n = y.shape[0]
        idx = np.empty((n, self.D // self.block), np.uint16)
        alpha = np.empty(n, np.float32)
        ell = np.empty(n, np.float32)
        from ..kernels.blocksearch import block_quantize_fast
        block_quantize_fast(y, self.codebook, self._cb_norms, SCALE_RULES[self.scale], idx,
                            alpha, ell)
        return [idx], np.stack([alpha, ell], axis=1)

    def _scales(self, fac):
        return fac[:, :2]
