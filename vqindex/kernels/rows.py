"""Input rows: the finiteness check and L2 normalisation of the public boundary, in one pass."""
import numpy as np
from numba import njit

#: the largest squared row norm accepted (vqindex._validation.MAX_NORM ** 2 = 2^120)
MAX_NORM2 = 2.0 ** 120


@njit(cache=True, nogil=True)
def check_rows(x, normalize, out):
    """Index of the first row of x (float32 (n, d)) with a NaN or Inf or a squared norm above
    MAX_NORM2 (the caller then raises the standard message), or -1; with
    normalize, out = x / max(||x||, 1e-30) row by row (norm summed in float64, as
    index.base.normalize_rows)."""
    n, d = x.shape
    for i in range(n):
        s = 0.0
        for j in range(d):
            v = x[i, j]
            if not np.isfinite(v):
                return i
            s += np.float64(v) * np.float64(v)
        if s > MAX_NORM2:
            return i
        if normalize:
            nrm = np.float32(np.sqrt(s))
            if nrm < np.float32(1e-30):
                nrm = np.float32(1e-30)
            for j in range(d):
                out[i, j] = x[i, j] / nrm
    return -1
