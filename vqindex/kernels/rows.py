"""Input rows: the finiteness check and L2 normalisation of the public boundary, in one pass."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def check_rows(x, normalize, out):
    """Index of the first row of x (float32 (n, d)) with a NaN or Inf, or -1; with
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
        if normalize:
            nrm = np.float32(np.sqrt(s))
            if nrm < np.float32(1e-30):
                nrm = np.float32(1e-30)
            for j in range(d):
                out[i, j] = x[i, j] / nrm
    return -1
