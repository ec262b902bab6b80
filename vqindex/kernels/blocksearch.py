"""Exact nearest-codeword search for BlockQuant k-blocks (spec codecs.md §7.2), fast.

The blocks are z-blocks (z = sqrt(D) y/||y||, roughly N(0, I_k)); the codebook C is (K, k)
float32. Brute force costs K*k flops per block. Here R^k is cut into a grid of boxes (the
product of one 1-D partition per coordinate, with unbounded end intervals, so every point
of R^k lies in exactly one box) and every box keeps the list of codewords that can be the
nearest one for some point of the box. Codeword c is left out of a box B when a single
other codeword n beats it on all of B:

    min_{x in B} ||x - c||^2 - ||x - n||^2 = ||c||^2 - ||n||^2 + min_{x in B} 2<x, n - c>  > 0,

a linear function of x, whose minimum over a box is exact (one end of each interval; -inf
when an unbounded side faces the wrong way). This is conservative (the true Voronoi test
would need every other codeword at once), so the search inside the list gives the exact
nearest codeword. The boxes are padded a little so that float32 rounding of the box lookup
cannot put a point in the wrong box. Dominators are tried nearest-to-the-box first.

Box lookup (uniform grid of G intervals on [-R, R] per coordinate, the end ones
unbounded): g_t = clip(floor((z_t + R) * G / (2R)), 0, G-1), box = sum_t g_t G^t, computed
for a whole row at once (vectorised). Candidates of all boxes are stored contiguously:
``cand_cw`` (total, k+1) float32 = codeword coordinates and squared norm, ``cand_id`` their
indices; a box with one candidate needs no distance at all. G by k: 128 (k=2), 24 (k=3),
12 (k=4), about 2^14 boxes; larger for K = 4096. For k >= 5 the grid does not pay (k=8,
K=256: about 80 candidates per block even with 4^8 boxes) and the brute force
``quantize.block_quantize`` is used.

:func:`block_search_index` builds (and caches per codebook, in-process) the structure;
:func:`block_quantize_fast` is the entry point with the contract of
``quantize.block_quantize``. Nothing compiles at import.
"""
import hashlib
import math
import threading

import numpy as np
from numba import njit, prange

from .quantize import FLT_EPS, _alpha_ell

__all__ = ["block_search_index", "block_quantize_fast", "block_quantize_grid",
           "nearest_grid", "BlockSearchIndex"]

_PAD = 1e-5          # box padding (z units) against float32 rounding of the lookup
_R = 3.0             # the grid covers [-R, R]^k; the end intervals are unbounded
# boxes per coordinate G by block size k (about 2^14 boxes); larger k: brute force
_GRID_G = {1: 256, 2: 128, 3: 24, 4: 12}


# ----------------------------------------------------------------------------- build
def _partition(G, R):
    """G uniform intervals of [-R, R], the two end ones unbounded, padded by _PAD."""
    h = 2.0 * R / G
    e = -R + h * np.arange(G + 1)
    lo = e[:-1] - _PAD
    hi = e[1:] + _PAD
    lo[0] = -np.inf
    hi[-1] = np.inf
    rep = 0.5 * (e[:-1] + e[1:])
    cdf = np.array([0.5 * math.erfc(-x / math.sqrt(2.0)) for x in e[1:-1]])
    mass = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return lo, hi, rep, mass


class BlockSearchIndex:
    """Grid of boxes with candidate lists for one codebook (see the module docstring)."""

    def __init__(self, codebook, G, R=None, n_dom=32):
        codebook = np.ascontiguousarray(codebook, dtype=np.float32)
        K, k = codebook.shape
        if R is None:
            R = min(_R, float(np.abs(codebook).max()) * 1.05)
        lo, hi, rep, mass = _partition(G, R)
        nbox = G ** k
        cb = codebook.astype(np.float64)
        cbn = np.einsum("ij,ij->i", cb, cb)
        counts = np.zeros(nbox, np.int64)
        max_out = min(K, 64)
        out = np.zeros((nbox, max_out), np.int32)
        _box_candidates(cb, cbn, lo, hi, rep, G, n_dom, np.arange(nbox), counts, out)
        big = np.nonzero(counts > max_out)[0]
        if big.size:   # rare: redo those boxes with room for every codeword
            full = np.zeros((big.size, K), np.int32)
            _box_candidates(cb, cbn, lo, hi, rep, G, n_dom, big, counts, full)
        offsets = np.zeros(nbox + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        ids = np.empty(offsets[-1], np.int32)
        rows = np.nonzero(counts <= max_out)[0]      # gather of the capped lists
        col = np.arange(max_out)[None, :] < counts[rows][:, None]
        pos = (offsets[rows][:, None] + np.arange(max_out)[None, :])[col]
        ids[pos] = out[rows][col]
        for i, b in enumerate(big):
            ids[offsets[b]:offsets[b + 1]] = full[i, :counts[b]]
        self.K, self.k, self.G = K, k, G
        self.offsets = offsets
        self.cand_id = ids.astype(np.uint16)
        cw = np.empty((ids.size, k + 1), np.float32)
        cw[:, :k] = codebook[ids]
        cw[:, k] = np.einsum("ij,ij->i", codebook, codebook).astype(np.float32)[ids]
        self.cand_cw = cw
        self.lo = np.float32(-R)
        self.scale = np.float32(G / (2.0 * R))
        # expected candidates per N(0, I_k) block
        box_mass = mass
        for _ in range(k - 1):   # box index = sum_t g_t G^t (mass is symmetric in the order)
            box_mass = np.multiply.outer(mass, box_mass).ravel()
        self.expected = float(np.dot(box_mass, counts))
        self.max_count = int(counts.max())
        self.nbytes = self.offsets.nbytes + self.cand_id.nbytes + self.cand_cw.nbytes


@njit(cache=True, nogil=True, parallel=True)
def _box_candidates(cb, cbn, edges_lo, edges_hi, rep, G, n_dom, boxes, counts, out):
    """Per box of `boxes`: the codewords that no single dominator beats on the whole box.

    cb float64 (K, k), cbn float64 (K,) squared norms; edges_lo/hi float64 (G,) interval ends
    (+-inf at the ends, padded); rep float64 (G,) a representative point of each interval.
    Writes counts[boxes[i]] and out[i, :count] (capped at out.shape[1]; counts may exceed it).
    """
    max_out = out.shape[1]
    for i in prange(boxes.shape[0]):
        _box_candidates_one(cb, cbn, edges_lo, edges_hi, rep, G, n_dom, boxes[i], counts,
                            out[i], max_out)


@njit(cache=True, nogil=True)
def _box_candidates_one(cb, cbn, edges_lo, edges_hi, rep, G, n_dom, box, counts, out_row,
                        max_out):
    K, k = cb.shape
    lo = np.empty(k)
    hi = np.empty(k)
    p = np.empty(k)
    rem = box
    for t in range(k):
        g = rem % G
        rem //= G
        lo[t] = edges_lo[g]
        hi[t] = edges_hi[g]
        p[t] = rep[g]
    # the n_dom codewords nearest to p, nearest first (insertion into a short sorted list)
    nd = min(n_dom, K)
    dom = np.empty(nd, np.int64)
    domd = np.full(nd, np.inf)
    for c in range(K):
        s = 0.0
        for t in range(k):
            e = p[t] - cb[c, t]
            s += e * e
        if s < domd[nd - 1]:
            i = nd - 1
            while i > 0 and domd[i - 1] > s:
                domd[i] = domd[i - 1]
                dom[i] = dom[i - 1]
                i -= 1
            domd[i] = s
            dom[i] = c
    cnt = 0
    for c in range(K):
        dominated = False
        for di in range(nd):
            nn = dom[di]
            if nn == c:
                continue
            m = cbn[c] - cbn[nn]
            for t in range(k):
                w = 2.0 * (cb[nn, t] - cb[c, t])
                if w > 0.0:
                    m += w * lo[t]
                elif w < 0.0:
                    m += w * hi[t]
            if m > 1e-9:
                dominated = True
                break
        if not dominated:
            if cnt < max_out:
                out_row[cnt] = c
            cnt += 1
    counts[box] = cnt


# ----------------------------------------------------------------------------- search
@njit(cache=True, nogil=True, fastmath=True)
def _row_boxes(y, r, inv, lo, scale, gmax, zrow, grow):
    """z = float32(y[r] * inv) into zrow; per coordinate box index clip(floor((z-lo)*scale))."""
    dim = zrow.shape[0]
    for i in range(dim):
        z = np.float32(y[r, i] * inv)
        zrow[i] = z
        v = (z - lo) * scale
        v = v if v > np.float32(0.0) else np.float32(0.0)
        v = v if v < gmax else gmax
        grow[i] = np.int32(v)


@njit(cache=True, nogil=True)
def _best_in_box(z, z0, k, s, e, cand_cw):
    """Index in [s, e) of the candidate nearest to z[z0:z0+k]; cand_cw rows are (codeword, ||c||^2)."""
    bi = s
    if e - s > 1:
        bd = np.float32(np.inf)
        for c in range(s, e):
            dd = np.float32(0.0)
            for t in range(k):
                dd += z[z0 + t] * cand_cw[c, t]
            dd = cand_cw[c, k] - np.float32(2.0) * dd
            if dd < bd:
                bd = dd
                bi = c
    return bi


@njit(cache=True, nogil=True, parallel=True)
def block_quantize_grid(y, codebook, rule, idx, alpha, ell, lo, scale, G, offsets, cand_id,
                        cand_cw):
    """block_quantize through the box grid (exact nearest codeword, float32 distances)."""
    n, dim = y.shape
    k = codebook.shape[1]
    m = dim // k
    gmax = np.float32(G - 1)
    for r in prange(n):
        zrow = np.empty(dim, np.float32)
        grow = np.empty(dim, np.int32)
        qrow = np.empty(dim, np.float32)
        yy = 0.0
        for i in range(dim):
            yy += np.float64(y[r, i]) * y[r, i]
        inv = np.sqrt(dim / yy) if yy > FLT_EPS else 0.0
        _row_boxes(y, r, inv, lo, scale, gmax, zrow, grow)
        for j in range(m):
            box = 0
            for t in range(k - 1, -1, -1):
                box = box * G + grow[j * k + t]
            best = cand_id[_best_in_box(zrow, j * k, k, offsets[box], offsets[box + 1], cand_cw)]
            idx[r, j] = best
            for t in range(k):
                qrow[j * k + t] = codebook[best, t]
        yq = 0.0
        qq = 0.0
        for i in range(dim):
            q = np.float64(qrow[i])
            yq += y[r, i] * q
            qq += q * q
        a, e2 = _alpha_ell(rule, yy, yq, qq, dim)
        alpha[r] = a
        ell[r] = e2


@njit(cache=True, nogil=True, parallel=True)
def nearest_grid(z, lo, scale, G, offsets, cand_id, cand_cw, out):
    """Nearest codeword of each row of z (n, k) float32 through the grid (for tests/tools)."""
    n, k = z.shape
    gmax = np.float32(G - 1)
    for r in prange(n):
        box = 0
        for t in range(k - 1, -1, -1):
            v = (z[r, t] - lo) * scale
            v = v if v > np.float32(0.0) else np.float32(0.0)
            v = v if v < gmax else gmax
            box = box * G + np.int64(v)
        out[r] = cand_id[_best_in_box(z[r], 0, k, offsets[box], offsets[box + 1], cand_cw)]


# ----------------------------------------------------------------------------- driver
_cache = {}
_lock = threading.Lock()


def _grid_for(K, k):
    """Grid intervals per coordinate for a (K, k) codebook, or None for brute force."""
    G = _GRID_G.get(k)
    if G is not None and K > 1024:
        G = {1: 512, 2: 256, 3: 32, 4: 16}[k]
    return G


def block_search_index(codebook, G=None, R=None):
    """Cached :class:`BlockSearchIndex` for a codebook (None when brute force is better)."""
    codebook = np.ascontiguousarray(codebook, dtype=np.float32)
    K, k = codebook.shape
    if G is None:
        G = _grid_for(K, k)
        if G is None:
            return None
    key = (K, k, G, R, hashlib.sha1(codebook.tobytes()).hexdigest())
    with _lock:
        ix = _cache.get(key)
        if ix is None:
            ix = BlockSearchIndex(codebook, G, R)
            _cache[key] = ix
    return ix


def block_quantize_fast(y, codebook, cb_norms, rule, idx, alpha, ell, index="auto"):
    """Drop-in for quantize.block_quantize using the grid when it pays, else brute force."""
    if index == "auto":
        index = block_search_index(codebook)
    if index is None:
        from .quantize import block_quantize
        block_quantize(y, codebook, cb_norms, rule, idx, alpha, ell)
    else:
        block_quantize_grid(y, codebook, rule, idx, alpha, ell, index.lo, index.scale, index.G,
                            index.offsets, index.cand_id, index.cand_cw)
