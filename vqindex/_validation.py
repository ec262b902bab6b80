"""Input validation shared by every public entry point (one place, clear messages)."""
import math

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, ValueOverflowError

__all__ = ["as_vectors", "as_codes", "check_k", "as_ids", "as_int", "check_id_range",
           "MAX_NORM", "MAX_ID", "row_norms2"]

#: the largest L2 norm of an input row (vectors, queries, training vectors): squared norms and
#: distances of such rows (<= 4 * MAX_NORM^2 = 2^122) stay 64x below the float32 limit
#: (3.4e38 ~ 2^128), so no estimate or exact distance overflows to inf or NaN
MAX_NORM = 2.0 ** 60
MAX_NORM2 = MAX_NORM * MAX_NORM
#: ids are int64 in [0, MAX_ID]; -1 is the padding id of search results
MAX_ID = int(np.iinfo(np.int64).max)


def as_vectors(x, d, what="x", max_norm=MAX_NORM):
    """Return `x` as a C-contiguous float32 (n, d) array or raise a clear error.

    float64/float16/int input and non-contiguous views are converted; complex, object,
    string or boolean input, a wrong shape or dimension, and NaN/Inf are rejected.
    A single vector of shape (d,) is accepted as (1, d). Rows of L2 norm above max_norm
    (MAX_NORM = 2^60 for inputs; internal residuals of two inputs pass 2 * MAX_NORM) are
    refused with ValueOverflowError.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists etc.
            raise ArgumentTypeError(f"{what} must be an array of numbers, got {type(x).__name__}") from exc
    if x.dtype.kind == "c":
        raise ArgumentTypeError(f"{what} has complex dtype {x.dtype}; expected real numbers (float32)")
    if x.dtype.kind not in "fiu":
        raise ArgumentTypeError(f"{what} has dtype {x.dtype}; expected a real numeric dtype (float32)")
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ArgumentError(f"{what} must be 2-D (n, {d}); got shape {x.shape}")
    if x.shape[1] != d:
        raise ArgumentError(f"{what} has {x.shape[1]} dimensions, but the index/codec expects d={d}")
    src = x
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size:
        check_magnitudes(x, what, src, max_norm)
    return x


def row_norms2(x):
    """float64 (n,) squared L2 norms of float32 rows (inf/nan where a value is not finite)."""
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def check_magnitudes(x, what="x", src=None, max_norm=MAX_NORM):
    """Raise unless every value of float32 (n, d) x is finite and every row norm <= MAX_NORM.

    One float64 pass (the squared norms): a NaN/Inf makes its row's sum non-finite, and no
    float32 value can overflow a float64 square. src: the input before float32 conversion
    (to say when float64 values beyond the float32 range became inf)."""
    s = row_norms2(x)
    if np.isfinite(s).all() and s.max() <= max_norm * max_norm:
        return
    bad_inf = np.flatnonzero(~np.isfinite(s))
    if bad_inf.size:
        i = int(bad_inf[0])
        if (src is not None and isinstance(src, np.ndarray) and src.dtype.kind == "f"
                and src.dtype.itemsize > 4 and np.isfinite(src.reshape(x.shape)[i]).all()):
            raise ValueOverflowError(
                f"{what} row {i} has values beyond the float32 range (|v| > 3.4e38); the "
                f"index computes in float32, so row norms must be <= {MAX_NORM:.3g} (2^60)")
        raise ArgumentError(f"{what} contains NaN or Inf (first bad row {i}); all values must "
                            f"be finite")
    i = int(np.flatnonzero(s > max_norm * max_norm)[0])
    raise ValueOverflowError(
        f"{what} row {i} has L2 norm {math.sqrt(s[i]):.3g}, above the limit {max_norm:.3g} "
        f"(2^{math.log2(max_norm):.0f}) that keeps squared norms and distances inside "
        f"float32; scale the vectors down")


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
        raise ArgumentTypeError(f"{what} must have dtype uint8, got {codes.dtype}")
    if codes.ndim == 1:
        codes = codes.reshape(1, -1)
    if codes.ndim != 2 or codes.shape[1] != code_size:
        raise ArgumentError(f"{what} must have shape (n, {code_size}) (code_size bytes per vector); got {codes.shape}")
    return np.ascontiguousarray(codes)


def check_k(k, ntotal=None):
    """Validate the number of neighbours requested."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ArgumentTypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise ArgumentError(f"k must be >= 1, got {k}")
    if k > 1 << 20:
        raise ArgumentError(f"k={k} is too large (max 1048576)")
    return k


def as_ids(ids, n=None, what="ids"):
    """Return ids as an int64 1-D array, each in [0, 2^63 - 1] (-1 is the padding id of search
    results, so it is refused), checking the count when n is given."""
    arr = np.asarray(ids)
    if arr.dtype == object and arr.size:
        try:
            arr = np.asarray(ids, dtype=np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ArgumentTypeError(f"{what} must be integers in [0, 2^63 - 1], got {exc}") from None
    if arr.size == 0 and arr.dtype.kind in "fiuO":
        arr = np.zeros(0, np.int64)  # [] is an empty list of ids (numpy makes it float64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.isfinite(arr).all() and np.all(np.floor(arr) == arr):
            if np.abs(arr).max() >= 2.0 ** 63:
                raise ArgumentError(f"{what} out of the int64 range: ids must be in [0, 2^63 - 1], got "
                                    f"{arr.reshape(-1)[np.argmax(np.abs(arr))]!r}")
        else:
            raise ArgumentTypeError(f"{what} must be integers in [0, 2^63 - 1], got dtype "
                                    f"{arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > MAX_ID:
        raise ArgumentError(f"{what} out of the int64 range: ids must be in [0, 2^63 - 1], got "
                            f"{int(arr.max())}")
    arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.int64)
    if arr.size and arr.min() < 0:
        at = int(np.argmin(arr))
        raise ArgumentError(f"{what} must be in [0, 2^63 - 1] (-1 is the padding id of search "
                            f"results); got {int(arr[at])} at position {at}")
    if n is not None and arr.shape[0] != n:
        raise ArgumentError(f"{what} has {arr.shape[0]} entries but there are {n} vectors")
    return arr


def as_int(value, what, lo=None, hi=None):
    """A Python int from an int or numpy integer (not bool), checked against [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{what} must be an integer, got {value!r} "
                                f"({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            raise ArgumentError(f"{what} must be >= {lo}, got {value}")
        if lo is None:
            raise ArgumentError(f"{what} must be <= {hi}, got {value}")
        raise ArgumentError(f"{what} must be in [{lo}, {hi}], got {value}")
    return value


def check_id_range(i0, ni, ntotal):
    """(i0, ni) of reconstruct_n: ids i0 .. i0 + ni - 1, ni <= ntotal (checked before any
    allocation; at most ntotal ids can be stored)."""
    i0 = as_int(i0, "reconstruct_n: i0", 0, MAX_ID)
    if ni is None:
        ni = max(ntotal - i0, 0)
    ni = as_int(ni, "reconstruct_n: ni", 0, None)
    if ni > ntotal:
        raise ArgumentError(f"reconstruct_n: ni={ni} exceeds ntotal={ntotal} (the index holds "
                            f"{ntotal} vectors)")
    if i0 + ni - 1 > MAX_ID:
        raise ArgumentError(f"reconstruct_n: ids {i0} .. {i0 + ni - 1} run past 2^63 - 1")
    return i0, ni


# ---------------------------------------------------------------------- file-state checks
# Used by the index kinds' `_from_state` (io.FileContext ctx: ctx.fail(msg) makes the error).
#: the largest magnitude of a stored per-vector factor (scales, squared norms: MAX_NORM^2 =
#: 2^120 with room for the IVF-folded terms); larger ones come only from a damaged file
MAX_FACTOR = 2.0 ** 124


def check_finite_file(arr, name, ctx, bound=MAX_FACTOR):
    """Every value of a float array finite and |v| <= bound (in blocks: no large temporary)."""
    flat = arr.reshape(-1)
    for i in range(0, flat.size, 1 << 20):
        part = flat[i:i + (1 << 20)]
        if not np.isfinite(part).all():
            raise ctx.fail(f"array {name!r} holds NaN or Inf values")
        if part.size and float(np.abs(part).max()) > bound:
            raise ctx.fail(f"array {name!r} holds values beyond {bound:.3g}")


def check_ids_file(ids, ctx, name="ids"):
    """ids (int64 (n,)) unique and in [0, 2^63 - 1]."""
    if ids.size == 0:
        return
    if int(ids.min()) < 0:
        raise ctx.fail(f"array {name!r} holds a negative id ({int(ids.min())}); ids are in "
                       f"[0, 2^63 - 1]")
    s = np.sort(ids)
    dup = np.flatnonzero(s[1:] == s[:-1])
    if dup.size:
        raise ctx.fail(f"array {name!r} holds id {int(s[dup[0]])} twice")


def check_sorted_lists_file(lists, n, nlist, ctx, name="list_of"):
    """The list of each stored row: int64 (n,), non-decreasing, in [0, nlist)."""
    if lists.shape != (n,):
        raise ctx.fail(f"array {name!r} has shape {lists.shape}, expected ({n},)")
    if n and (int(lists.min()) < 0 or int(lists.max()) >= nlist
              or bool((np.diff(lists) < 0).any())):
        raise ctx.fail(f"IVF list assignment {name!r} is inconsistent (not sorted or outside "
                       f"[0, {nlist}))")
