"""Compatibility name of `vqindex.kernels.native` (the one home of the native library)."""
import sys

from .kernels import native as _native

sys.modules[__name__] = _native
