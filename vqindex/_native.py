"""ctypes loader for the optional native fast-scan library (native/fastscan.c).

The library is a plain shared object (no Python C-API) built by ``setup.py`` into the
package directory as ``vqindex/_fastscan*.so`` (``.pyd``/``.dylib``/``.dll`` elsewhere).
``lib`` is the loaded ``ctypes.CDLL`` with argument types set, or ``None`` when the
library is missing, fails to load, or ``VQINDEX_NO_NATIVE=1`` is set.  Importing this
module never raises; ``load_error`` says why ``lib`` is None.
"""
import ctypes
import glob
import os

__all__ = ["lib", "load_error", "library_path", "BACKEND_IDS"]

# backend ids understood by fs_scan (0 = best available)
BACKEND_IDS = {"auto": 0, "scalar": 1, "avx2": 2, "avx512": 3, "avx512vnni": 4}

lib = None
load_error = None
library_path = None


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    pats = ["_fastscan*.so", "_fastscan*.pyd", "_fastscan*.dylib", "_fastscan*.dll",
            os.path.join("lib", "*fastscan*.so"), os.path.join("lib", "*fastscan*.dylib"),
            os.path.join("lib", "*fastscan*.dll")]
    found = []
    for p in pats:
        found.extend(sorted(glob.glob(os.path.join(here, p))))
    return found


def _load():
    global lib, load_error, library_path
    if os.environ.get("VQINDEX_NO_NATIVE", "").strip() not in ("", "0"):
        load_error = "disabled by VQINDEX_NO_NATIVE"
        return
    errors = []
    for path in _candidates():
        try:
            cdll = ctypes.CDLL(path)
            i64, p = ctypes.c_int64, ctypes.c_void_p
            cdll.fs_scan.argtypes = [p, i64, i64, i64, p, i64, p, i64, ctypes.c_int,
                                     ctypes.c_int]
            cdll.fs_scan.restype = ctypes.c_int
            cdll.fs_cpu_features.argtypes = []
            cdll.fs_cpu_features.restype = ctypes.c_int
            cdll.fs_available_backends.argtypes = []
            cdll.fs_available_backends.restype = ctypes.c_int
            cdll.fs_available_backends()  # smoke test
        except Exception as exc:  # wrong arch, missing symbol, ...
            errors.append(f"{path}: {exc}")
            continue
        lib, library_path = cdll, path
        return
    load_error = "; ".join(errors) if errors else "native library not built"


try:
    _load()
except Exception as exc:  # pragma: no cover - never raise at import
    lib = None
    load_error = repr(exc)
