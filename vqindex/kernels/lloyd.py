"""Lloyd / k-means kernels of the block codebook construction (codecs/block_codebooks.py):
exact nearest-centre scans and Hamerly-bounded assignment, cell sums."""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _scan_all(x, centers_t, half_sq, dist):
    """Nearest and second-nearest codeword of one point by exhaustive search.

    x: (k,) float64; centers_t: (k, K) float32; half_sq: (K,) float32 = ||c||^2 / 2;
    dist: (K,) float32 scratch. Scores ||c||^2/2 - <x, c> in float32 (SIMD-friendly); ties go
    to the lower index. Returns (nearest index, its score, second-smallest score) as float64.
    """
    k, n_centers = centers_t.shape
    dist[:] = half_sq
    for j in range(k):
        xj = np.float32(x[j])
        row = centers_t[j]
        for c in range(n_centers):
            dist[c] -= xj * row[c]
    best = 0
    d1 = np.float32(np.inf)
    d2 = np.float32(np.inf)
    for c in range(n_centers):
        dc = dist[c]
        if dc < d1:
            d2 = d1
            d1 = dc
            best = c
        elif dc < d2:
            d2 = dc
    return best, np.float64(d1), np.float64(d2)


@njit(cache=True, nogil=True)
def _distance(x, centers, c):
    s = 0.0
    for j in range(x.shape[0]):
        t = x[j] - centers[c, j]
        s += t * t
    return np.sqrt(s)


@njit(cache=True, nogil=True, parallel=True)
def _assign_hamerly(points, centers, assign, upper, lower, half_gap, full_scan):
    """One nearest-codeword assignment step with Hamerly's bounds; returns the number of full
    scans.

    points: (n, k) float64; centers: (K, k) float64; assign: (n,) int64; upper, lower: (n,)
    float64 bounds on the distance to the assigned codeword / to every other codeword;
    half_gap: (K,) half the distance from each codeword to its nearest other codeword.
    full_scan=True ignores the bounds (first iteration). The exhaustive scan runs in float32;
    the bounds it sets are widened by `slack` to cover its rounding.
    """
    n, k = points.shape
    n_centers = centers.shape[0]
    centers_t = np.ascontiguousarray(centers.T).astype(np.float32)
    half_sq = np.empty(n_centers, dtype=np.float32)
    max_sq = 0.0
    for c in range(n_centers):
        s = 0.0
        for j in range(k):
            s += centers[c, j] * centers[c, j]
        half_sq[c] = 0.5 * s
        max_sq = max(max_sq, s)
    n_chunks = min(n, 256)
    scans = np.zeros(n_chunks, dtype=np.int64)
    for chunk in prange(n_chunks):
        dist = np.empty(n_centers, dtype=np.float32)
        lo = chunk * n // n_chunks
        hi = (chunk + 1) * n // n_chunks
        for i in range(lo, hi):
            x = points[i]
            if not full_scan:
                a = assign[i]
                bound = max(half_gap[a], lower[i])
                if upper[i] < bound:
                    continue
                upper[i] = _distance(x, centers, a)
                if upper[i] < bound:
                    continue
            best, s1, s2 = _scan_all(x, centers_t, half_sq, dist)
            x_sq = 0.0
            for j in range(k):
                x_sq += x[j] * x[j]
            # float32 error of a score is below ~1e-6 * (||x||^2 + max||c||^2)
            slack = 4e-6 * (x_sq + max_sq) + 1e-9
            assign[i] = best
            upper[i] = _distance(x, centers, best)
            lower[i] = np.sqrt(max(x_sq + 2.0 * s2 - slack, 0.0))
            scans[chunk] += 1
    return scans.sum()


@njit(cache=True, nogil=True, parallel=True)
def _half_gaps(centers):
    """(K,) half the distance from each codeword to its nearest other codeword."""
    n_centers, k = centers.shape
    out = np.empty(n_centers, dtype=np.float64)
    for c in prange(n_centers):
        best = np.inf
        for o in range(n_centers):
            if o == c:
                continue
            s = 0.0
            for j in range(k):
                t = centers[c, j] - centers[o, j]
                s += t * t
            if s < best:
                best = s
        out[c] = 0.5 * np.sqrt(best)
    return out


@njit(cache=True, nogil=True)
def _cell_sums(values, assign, n_centers):
    """Serial (deterministic) per-cell sums of `values` (n, k) and counts."""
    n, k = values.shape
    sums = np.zeros((n_centers, k), dtype=np.float64)
    counts = np.zeros(n_centers, dtype=np.int64)
    for i in range(n):
        c = assign[i]
        counts[c] += 1
        for j in range(k):
            sums[c, j] += values[i, j]
    return sums, counts


@njit(cache=True, nogil=True, parallel=True)
def _loosen_bounds(assign, upper, lower, shift):
    """Hamerly bound update after the codewords moved by `shift` (K,)."""
    n = assign.shape[0]
    first = np.argmax(shift)
    max1 = shift[first]
    max2 = 0.0
    for c in range(shift.shape[0]):
        if c != first and shift[c] > max2:
            max2 = shift[c]
    for i in prange(n):
        a = assign[i]
        upper[i] += shift[a]
        lower[i] -= max2 if a == first else max1


