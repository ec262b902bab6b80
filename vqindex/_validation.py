"""Input validation shared by every public entry point (one place, clear messages)."""
import numpy as np

__all__ = ["as_vectors", "as_codes", "check_k", "as_ids"]


def as_vectors(x, d, what="x"):
    """Return `x` as a C-contiguous float32 (n, d) array or raise a clear error.

    float64/float16/int input and non-contiguous views are converted; complex, object,
    string or boolean input, a wrong shape or dimension, and NaN/Inf are rejected.
    A single vector of shape (d,) is accepted as (1, d).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists etc.
            raise TypeError(f"{what} must be an array of numbers, got {type(x).__name__}") from exc
    if x.dtype.kind == "c":
        raise TypeError(f"{what} has complex dtype {x.dtype}; expected real numbers (float32)")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{what} has dtype {x.dtype}; expected a real numeric dtype (float32)")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n, {d}); got shape {x.shape}")
    if x.shape[1] != d:
        raise ValueError(f"{what} has {x.shape[1]} dimensions, but the index/codec expects d={d}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size and not all_finite(x):
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"{what} contains NaN or Inf (first bad row {bad}); all values must be finite")
    return x


def all_finite(x, block=1 << 20):
    """np.isfinite(x).all() over blocks of ~1M values: no (n, d) boolean temporary, which
    for a large batch costs more in fresh pages than the check itself."""
    flat = x.reshape(-1)
    for i in range(0, flat.size, block):
        if not np.isfinite(flat[i:i + block]).all():
            return False
    return True


def as_codes(codes, code_size, what="codes"):
    """Return codes as a C-contiguous uint8 (n, code_size) array or raise."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise TypeError(f"{what} must have dtype uint8, got {codes.dtype}")
    if codes.ndim == 1:
        codes = codes.reshape(1, -1)
    if codes.ndim != 2 or codes.shape[1] != code_size:
        raise ValueError(f"{what} must have shape (n, {code_size}) (code_size bytes per vector); got {codes.shape}")
    return np.ascontiguousarray(codes)


def check_k(k, ntotal=None):
    """Validate the number of neighbours requested."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > 1 << 20:
        raise ValueError(f"k={k} is too large (max 1048576)")
    return k


def as_ids(ids, n=None, what="ids"):
    """Return ids as an int64 1-D array (checking the int64 range and the count)."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.floor(arr) == arr):
            if np.abs(arr).max() >= 2.0 ** 63:
                raise ValueError(f"{what} out of int64 range")
        else:
            raise TypeError(f"{what} must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{what} out of int64 range (max {np.iinfo(np.int64).max})")
    arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} entries but there are {n} vectors")
    return arr
