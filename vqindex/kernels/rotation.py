"""Structured rotation kernels: sign flips, permutations, Hadamard butterflies (spec 1.2).

Rows are processed in groups of LANES, transposed so that every butterfly is a contiguous
LANES-wide vector operation (numba vectorises it for any butterfly stride).
"""
import numpy as np
from numba import njit, prange

LANES = 16


@njit(cache=True, nogil=True)
def _fwht_lanes(a, start, p, scale):
    """Normalised Walsh-Hadamard transform of rows a[start:start+p, :] (p a power of two).

    Radix-4 passes (two butterfly levels per sweep over the buffer), then one radix-2 pass
    when log2(p) is odd; the inner loop runs over the LANES contiguous columns.
    """
    h = 1
    while 4 * h <= p:
        for i in range(start, start + p, 4 * h):
            for j in range(i, i + h):
                for c in range(LANES):
                    x0 = a[j, c]
                    x1 = a[j + h, c]
                    x2 = a[j + 2 * h, c]
                    x3 = a[j + 3 * h, c]
                    s0 = x0 + x1
                    d0 = x0 - x1
                    s1 = x2 + x3
                    d1 = x2 - x3
                    a[j, c] = s0 + s1
                    a[j + h, c] = d0 + d1
                    a[j + 2 * h, c] = s0 - s1
                    a[j + 3 * h, c] = d0 - d1
        h *= 4
    if h < p:
        for i in range(start, start + p, 2 * h):
            for j in range(i, i + h):
                for c in range(LANES):
                    u = a[j, c]
                    w = a[j + h, c]
                    a[j, c] = u + w
                    a[j + h, c] = u - w
    for j in range(start, start + p):
        for c in range(LANES):
            a[j, c] *= scale


@njit(cache=True, nogil=True)
def load_block(x, r0, m, buf):
    """Transpose rows x[r0:r0+m] into buf (D, LANES), zero columns past m."""
    if m < LANES:
        buf[:] = 0.0
    for c in range(m):
        for i in range(x.shape[1]):
            buf[i, c] = x[r0 + c, i]


@njit(cache=True, nogil=True)
def rotate_block(x, r0, m, signs, perms, p, buf, tmp):
    """Rotate rows x[r0:r0+m] (m <= LANES) into the transposed buffer; returns the buffer
    (buf or tmp, whichever holds the result) of shape (D, LANES)."""
    dim = x.shape[1]
    rounds = signs.shape[0]
    scale = np.float32(1.0 / np.sqrt(p))
    load_block(x, r0, m, buf)
    for t in range(rounds):
        for i in range(dim):
            src = perms[t, i]
            s = signs[t, src]
            for c in range(LANES):
                tmp[i, c] = buf[src, c] * s
        _fwht_lanes(tmp, 0, p, scale)
        if p < dim:
            _fwht_lanes(tmp, dim - p, p, scale)
        buf, tmp = tmp, buf
    return buf


@njit(cache=True, nogil=True)
def block_chunks(n):
    """(number of row blocks of LANES, number of parallel chunks of blocks)."""
    nblocks = (n + LANES - 1) // LANES
    return nblocks, min(nblocks, 256)


@njit(cache=True, nogil=True, parallel=True)
def fast_rotate(x, signs, perms, p, out):
    """out = R x for each row; R = prod over rounds of (H_overlap * P_t * diag(s_t)).

    x: float32 (n, D); signs: float32 (T, D); perms: int32 (T, D); p: the largest power of two
    <= D. Each round: multiply by signs, permute, normalised Hadamard on [0, p) and (when
    p < D) on [D - p, D). Orthogonal and O(D log D); deterministic for any thread count.
    Rows are processed LANES at a time; buffers are allocated once per chunk of blocks.
    """
    n, dim = x.shape
    nblocks, nchunks = block_chunks(n)
    for chunk in prange(nchunks):
        buf = np.empty((dim, LANES), np.float32)
        tmp = np.empty((dim, LANES), np.float32)
        for blk in range(chunk * nblocks // nchunks, (chunk + 1) * nblocks // nchunks):
            r0 = blk * LANES
            m = min(LANES, n - r0)
            res = rotate_block(x, r0, m, signs, perms, p, buf, tmp)
            for c in range(m):
                for i in range(dim):
                    out[r0 + c, i] = res[i, c]


@njit(cache=True, nogil=True, parallel=True)
def fast_rotate_inverse(y, signs, perms, p, out):
    """out = R^T y: the rounds of `fast_rotate` undone in reverse order."""
    n, dim = y.shape
    rounds = signs.shape[0]
    scale = np.float32(1.0 / np.sqrt(p))
    nblocks, nchunks = block_chunks(n)
    for chunk in prange(nchunks):
        buf = np.empty((dim, LANES), np.float32)
        tmp = np.empty((dim, LANES), np.float32)
        for blk in range(chunk * nblocks // nchunks, (chunk + 1) * nblocks // nchunks):
            r0 = blk * LANES
            m = min(LANES, n - r0)
            load_block(y, r0, m, buf)
            for t in range(rounds - 1, -1, -1):
                if p < dim:
                    _fwht_lanes(buf, dim - p, p, scale)
                _fwht_lanes(buf, 0, p, scale)
                for i in range(dim):
                    j = perms[t, i]
                    s = signs[t, j]
                    for c in range(LANES):
                        tmp[j, c] = buf[i, c] * s
                buf, tmp = tmp, buf
            for c in range(m):
                for i in range(dim):
                    out[r0 + c, i] = buf[i, c]


# --------------------------------------------------------------------------- one row at a time

@njit(cache=True, nogil=True)
def _fwht_row(a, start, p, scale):
    """`_fwht_lanes` on one vector a[start:start+p] (same butterflies, same float order)."""
    h = 1
    while 4 * h <= p:
        for i in range(start, start + p, 4 * h):
            for j in range(i, i + h):
                x0 = a[j]
                x1 = a[j + h]
                x2 = a[j + 2 * h]
                x3 = a[j + 3 * h]
                s0 = x0 + x1
                d0 = x0 - x1
                s1 = x2 + x3
                d1 = x2 - x3
                a[j] = s0 + s1
                a[j + h] = d0 + d1
                a[j + 2 * h] = s0 - s1
                a[j + 3 * h] = d0 - d1
        h *= 4
    if h < p:
        for i in range(start, start + p, 2 * h):
            for j in range(i, i + h):
                u = a[j]
                w = a[j + h]
                a[j] = u + w
                a[j + h] = u - w
    for j in range(start, start + p):
        a[j] *= scale


@njit(cache=True, nogil=True)
def rotate_row(x, signs, perms, p, buf, tmp, out):
    """out = R x for one row x (D,), bit-identical to `fast_rotate` (which works on tiles of
    LANES rows: for a few rows, such as one query, a tile is LANES times the work)."""
    dim = x.shape[0]
    rounds = signs.shape[0]
    scale = np.float32(1.0 / np.sqrt(p))
    for i in range(dim):
        buf[i] = x[i]
    for t in range(rounds):
        for i in range(dim):
            src = perms[t, i]
            tmp[i] = buf[src] * signs[t, src]
        _fwht_row(tmp, 0, p, scale)
        if p < dim:
            _fwht_row(tmp, dim - p, p, scale)
        for i in range(dim):
            buf[i] = tmp[i]
    for i in range(dim):
        out[i] = buf[i]


@njit(cache=True, nogil=True)
def fast_rotate_rows(x, signs, perms, p, out):
    """`fast_rotate` row by row, serial: for batches of fewer than LANES rows."""
    dim = x.shape[1]
    buf = np.empty(dim, np.float32)
    tmp = np.empty(dim, np.float32)
    for r in range(x.shape[0]):
        rotate_row(x[r], signs, perms, p, buf, tmp, out[r])
