"""Minimal setup.py: metadata lives in setup.cfg / pyproject.toml.

It only adds the optional native library (native/fastscan.c: fast-scan; native/encode.c:
fast rotation and fused scalar encoding), built as a plain
shared object ``vqindex/_fastscan*.so`` (no Python C-API; loaded with ctypes by
``vqindex/_native.py``).  Generic flags only (-O3, no -march=native): the SIMD kernels
select themselves at run time.  If there is no compiler or the build fails, installation
still succeeds with a warning and vqindex falls back to numba kernels.  Editable installs
(``pip install -e .``) build in place, next to the sources.
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext for a ctypes library: no PyInit export, and failures are non-fatal."""

    def get_export_symbols(self, ext):
        return []  # plain shared library, not a Python extension module

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all, etc.
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, ...
            self._warn(exc)

    @staticmethod
    def _warn(exc):
        sys.stderr.write(
            "WARNING: could not build the native fast-scan library "
            f"({type(exc).__name__}: {exc}); vqindex will use its numba kernels.\n")


if sys.platform == "win32":
    _cflags, _libs = ["/O2"], []
else:
    # -ffp-contract=off: no FMA contraction, so the encode kernels stay bit-identical to numba
    _cflags, _libs = ["-O3", "-std=gnu11", "-fvisibility=hidden", "-ffp-contract=off"], ["pthread", "m"]

setup(
    ext_modules=[
        Extension(
            "vqindex._fastscan",
            sources=["native/fastscan.c", "native/encode.c"],
            extra_compile_args=_cflags,
            libraries=_libs,
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
