"""Compatibility name of `vqindex.bench.sweep` (the sweep harness now lives in vqindex.bench)."""
import sys

from .bench import sweep as _sweep

sys.modules[__name__] = _sweep
