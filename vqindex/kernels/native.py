"""The native library (native/fastscan.c, native/encode.c): loading, CPU dispatch, wrappers.

The one home of everything native: the ctypes loader, the backend ids, the encode and
rotation wrappers, and the address of the scan kernel the numba driver calls.


The library is a plain shared object (no Python C-API) built by ``setup.py`` into the
package directory as ``vqindex/_fastscan*.so`` (``.pyd``/``.dylib``/``.dll`` elsewhere).
``lib`` is the loaded ``ctypes.CDLL`` with argument types set, or ``None`` when the
library is missing, fails to load, or ``VQINDEX_NO_NATIVE=1`` is set.  Importing this
module never raises; ``load_error`` says why ``lib`` is None.
"""
import ctypes
import functools
import glob
import os
import warnings

__all__ = ["lib", "encode_lib", "load_error", "library_path", "BACKEND_IDS", "ENCODE_BACKENDS",
           "encode_backends", "encode_preferred", "fast_rotate", "rotate_scalar_encode",
           "scan_q_address", "warn_if_missing"]

# backend ids understood by fs_scan (0 = best available)
BACKEND_IDS = {"auto": 0, "scalar": 1, "avx2": 2, "avx512": 3, "avx512vnni": 4}

# backend ids understood by the native/encode.c functions (0 = best available)
ENCODE_BACKENDS = {"auto": 0, "scalar": 1, "avx2": 2, "avx512": 3}

lib = None
encode_lib = None
load_error = None
library_path = None


def _candidates():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package folder
    pats = ["_fastscan*.so", "_fastscan*.pyd", "_fastscan*.dylib", "_fastscan*.dll",
            os.path.join("lib", "*fastscan*.so"), os.path.join("lib", "*fastscan*.dylib"),
            os.path.join("lib", "*fastscan*.dll")]
    found = []
    for p in pats:
        found.extend(sorted(glob.glob(os.path.join(here, p))))
    return found


def _load():
    global lib, encode_lib, load_error, library_path
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
            try:  # the driver's scan primitive (absent from libraries built before it)
                cdll.fs_scan_q.argtypes = [p, i64, i64, i64, i64, p, i64, p, i64, p, i64, i64]
                cdll.fs_scan_q.restype = i64
            except AttributeError as exc:
                errors.append(f"{path}: no fs_scan_q ({exc})")
            try:
                cdll.vq_encode_backends.argtypes = []
                cdll.vq_encode_backends.restype = ctypes.c_int
                cdll.vq_fast_rotate.argtypes = [p, i64, i64, i64, p, p, i64, i64, ctypes.c_int,
                                                p, ctypes.c_int]
                cdll.vq_fast_rotate.restype = ctypes.c_int
                cdll.vq_rotate_scalar_encode.argtypes = [p, i64, i64, i64, p, p, i64, i64, p, i64,
                                                         p, i64, p, i64, p, p, p, p, p,
                                                         ctypes.c_int]
                cdll.vq_rotate_scalar_encode.restype = ctypes.c_int
                encode_lib = cdll
            except AttributeError as exc:  # a library built before native/encode.c existed
                errors.append(f"{path}: no encode kernels ({exc})")
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


_warned_missing = False


def warn_if_missing():
    """Warn once per process, at the first search or encode, when the native library is not
    loaded (no compiler at install time, a failed load) and the numba kernels run instead;
    silent when VQINDEX_NO_NATIVE asked for that. Returns True when it warned now."""
    global _warned_missing
    if lib is not None or _warned_missing or load_error == "disabled by VQINDEX_NO_NATIVE":
        return False
    _warned_missing = True
    warnings.warn(f"vqindex: the native library is not loaded ({load_error or 'not found'}); the numba kernels "
                  f"run instead (same results, slower scans and encodes). Install a vqindex "
                  f"wheel, or reinstall with a C compiler, to get it; vqindex.show_config() "
                  f"says what is loaded.", RuntimeWarning, stacklevel=3)
    return True


# --------------------------------------------------------------------------- scan primitive

def scan_q_address():
    """Address (int) of the native ``fs_scan_q`` for nopython callers, 0 when the library is
    missing or predates it.  Signature: 12 int64 arguments, returns int64 (0, or -1 when
    the requested backend is unavailable); see native/fastscan.c."""
    if lib is None:
        warn_if_missing()
        return 0
    try:
        fn = lib.fs_scan_q
    except AttributeError:
        return 0
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


# --------------------------------------------------------------------------- encode kernels

def encode_preferred():
    """True when the native encode kernels should replace numba's: the library is loaded and
    the CPU has a SIMD backend. Its portable scalar C rotation is slower than numba's
    (measured 0.83 s vs 0.49 s per 100k x 1536 rotations), so without AVX2 numba runs."""
    if lib is None:
        warn_if_missing()
    return encode_lib is not None and _has_simd(id(encode_lib))


@functools.lru_cache(maxsize=None)
def _has_simd(lib_id):
    return any(b != "scalar" for b in encode_backends())


def encode_backends():
    """Names of the native encode backends usable on this CPU ([] without the library)."""
    if encode_lib is None:
        return []
    mask = encode_lib.vq_encode_backends()
    return [name for name, b in ENCODE_BACKENDS.items() if b and mask & (1 << b)]


def _ptr(a):
    return a.ctypes.data


def _row_chunks(n, num_threads, min_rows=64):
    t = max(1, min(int(num_threads or 1), n // min_rows if n >= min_rows else 1))
    return [(n * i // t, n * (i + 1) // t) for i in range(t)]


def _run_chunks(fn, n, num_threads):
    """Call fn(r0, r1) over row chunks, on num_threads Python threads (ctypes drops the GIL)."""
    chunks = _row_chunks(n, num_threads)
    if len(chunks) == 1:
        rcs = [fn(*chunks[0])]
    else:
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(len(chunks)) as ex:
            rcs = list(ex.map(lambda c: fn(*c), chunks))
    for rc in rcs:
        if rc == -1:
            raise ValueError("native encode backend not available on this CPU")
        if rc != 0:
            raise MemoryError("native encode kernel could not allocate its buffers")


def fast_rotate(x, sp, perms, p, out, inverse=False, num_threads=1, backend="auto"):
    """out = R x (or R^T x) with the native kernel; same result as kernels.rotation.

    x, out: C-contiguous float32 (n, D); sp: float32 (T, D) with sp[t, i] = signs[t, perms[t, i]];
    perms: int32 (T, D).
    """
    n, dim = x.shape
    b = ENCODE_BACKENDS[backend]
    fn = encode_lib.vq_fast_rotate
    _run_chunks(lambda r0, r1: fn(_ptr(x), r0, r1, dim, _ptr(sp), _ptr(perms), sp.shape[0], p,
                                  int(bool(inverse)), _ptr(out), b), n, num_threads)


def rotate_scalar_encode(x, sp, perms, p, bounds32, levels, width, codes, stats, num_threads=1,
                         backend="auto", y_out=None, idx_out=None, resid_levels=None,
                         gamma_out=None):
    """Fused rotation + scalar quantization + packing (native/encode.c).

    Writes the packed fields into codes[:, :ceil(D*width/8)] and stats float64 (n, 3) =
    (||y||^2, <y, levels[idx]>, ||levels[idx]||^2); bit-identical to
    kernels.quantize.fast_rotate_scalar_encode.  Optionally keeps the rotated rows
    (y_out float32 (n, D)) and the field values (idx_out uint16 (n, D)); with resid_levels
    (float32 levels / sqrt(D)) y_out gets TurboQuant_prod's unit residual and gamma_out (n,)
    its norm, as kernels.quantize.unit_residual computes them.
    """
    n, dim = x.shape
    b = ENCODE_BACKENDS[backend]
    fn = encode_lib.vq_rotate_scalar_encode
    yp = None if y_out is None else _ptr(y_out)
    ip = None if idx_out is None else _ptr(idx_out)
    rp = None if resid_levels is None else _ptr(resid_levels)
    gp = None if gamma_out is None else _ptr(gamma_out)
    _run_chunks(lambda r0, r1: fn(_ptr(x), r0, r1, dim, _ptr(sp), _ptr(perms), sp.shape[0], p,
                                  _ptr(bounds32), bounds32.shape[0], _ptr(levels), width,
                                  _ptr(codes), codes.strides[0], _ptr(stats), yp, ip, rp, gp, b),
                n, num_threads)
