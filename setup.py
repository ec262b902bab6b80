"""Minimal setup.py: metadata lives in setup.cfg / pyproject.toml.

It only adds the optional native library (native/fastscan.c: fast-scan; native/encode.c:
fast rotation and fused scalar encoding), built as a plain
shared object ``vqindex/_fastscan*.so`` (no Python C-API; loaded with ctypes by
``vqindex/_native.py``).  Generic flags only (-O3, no -march=native): the SIMD kernels
select themselves at run time.  If there is no compiler or the build fails, installation
still succeeds with a warning and vqindex falls back to numba kernels.  Editable installs
(``pip install -e .``) build in place, next to the sources.

Wheels: the library needs no Python ABI, so a wheel is ``py3-none-<platform>`` (one per
platform, any Python 3), and on glibc Linux the platform is the manylinux tag of the newest
glibc symbol version the built library requires (what auditwheel would assign: the library
links only libc, libm and libpthread).  Without a built library the wheel is ``py3-none-any``.
The wheel and the sdist record the git commit they were built from (vqindex/_build_info.json,
read by ``vqindex.show_config()``).
"""
import json
import os
import platform
import re
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:  # neither: no wheels from this environment (sdist, plain builds work)
        bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_INFO = "_build_info.json"


class OptionalBuildExt(build_ext):
    """build_ext for a ctypes library: no PyInit export, and failures are non-fatal."""

    def get_export_symbols(self, ext):
        return []  # plain shared library, not a Python extension module

    def get_ext_filename(self, ext_name):
        # wheels: no Python ABI in the name (the loader globs _fastscan*); in-place builds keep
        # the usual name so a checkout never holds two libraries
        if self.inplace:
            return super().get_ext_filename(ext_name)
        return os.path.join(*ext_name.split(".")) + (".pyd" if sys.platform == "win32" else ".so")

    def run(self):
        if not self.inplace:  # a library left in build/ by an older build must not ship
            folder = os.path.join(self.build_lib, "vqindex")
            for f in os.listdir(folder) if os.path.isdir(folder) else ():
                if f.startswith("_fastscan") and f.endswith((".so", ".pyd", ".dylib", ".dll")):
                    os.remove(os.path.join(folder, f))
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


def _git_commit():
    try:
        out = subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _build_info():
    """{"commit": ...} from git, else from the vqindex/_build_info.json an sdist carries."""
    commit = _git_commit() if os.path.isdir(os.path.join(HERE, ".git")) else None
    if commit is None:
        try:
            with open(os.path.join(HERE, "vqindex", BUILD_INFO)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"commit": None}
    return {"commit": commit}


class BuildPyInfo(build_py):
    """build_py that also writes vqindex/_build_info.json (the commit) into the build."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            path = os.path.join(self.build_lib, "vqindex", BUILD_INFO)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(_build_info(), f)


class SdistInfo(sdist):
    """sdist that carries vqindex/_build_info.json, so wheels built from it know the commit."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        path = os.path.join(base_dir, "vqindex", BUILD_INFO)
        if os.path.exists(path):
            os.remove(path)  # a hard link to the source tree's copy: never write through it
        with open(path, "w") as f:
            json.dump(_build_info(), f)


def _glibc_needed(path):
    """The newest GLIBC_2.N symbol version a shared library references, as (2, N), or None."""
    with open(path, "rb") as f:
        found = re.findall(rb"GLIBC_2\.([0-9]+)", f.read())
    return (2, max(int(v) for v in found)) if found else None


class PlatformWheel(bdist_wheel or object):
    """py3-none-<platform> wheels (no Python ABI); manylinux tags on glibc Linux."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def _built_library(self):
        build_lib = self.get_finalized_command("build").build_lib
        folder = os.path.join(build_lib, "vqindex")
        if not os.path.isdir(folder):
            return None
        libs = [f for f in os.listdir(folder) if f.startswith("_fastscan") and
                f.endswith((".so", ".pyd", ".dylib", ".dll"))]
        return os.path.join(folder, libs[0]) if libs else None

    def get_tag(self):
        _, _, plat = super().get_tag()
        lib = self._built_library()
        if lib is None:
            return "py3", "none", "any"
        if plat.startswith("linux_") and platform.libc_ver()[0] == "glibc" and not self.plat_name_supplied:
            arch = plat[len("linux_"):]
            major, minor = _glibc_needed(lib) or (2, 17)
            minor = max(minor, 17 if arch in ("x86_64", "i686", "aarch64", "ppc64le", "s390x") else 5)
            plat = f"manylinux_{major}_{minor}_{arch}"
            if (major, minor) == (2, 17):
                plat = f"{plat}.manylinux2014_{arch}"
        return "py3", "none", plat


if sys.platform == "win32":
    _cflags, _libs = ["/O2"], []
else:
    # -ffp-contract=off: no FMA contraction, so the encode kernels stay bit-identical to numba
    _cflags, _libs = ["-O3", "-std=gnu11", "-fvisibility=hidden", "-ffp-contract=off"], ["pthread", "m"]

setup(
    ext_modules=[
        Extension(
            "vqindex._fastscan",
            sources=["native/fastscan.c", "native/encode.c", "native/graph.c"],
            extra_compile_args=_cflags,
            libraries=_libs,
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyInfo, "sdist": SdistInfo,
              **({"bdist_wheel": PlatformWheel} if bdist_wheel is not None else {})},
)
