"""Encoding kernels: scalar Lloyd-Max, RaBitQ grid with optimal rescale, block codebooks.

Inputs are rotated vectors y (n, D) float32; outputs are field indices and per-vector scalars.
Dot products are accumulated in float64 (spec 1.3). Scale rules: 0 = fixed (alpha = ||y||/sqrt(D),
TurboQuant_mse), 1 = biased (<y,q>/||q||^2), 2 = unbiased (||y||^2/<y,q>).
"""
import numpy as np
from numba import njit, prange

from .rotation import LANES, block_chunks, rotate_block

FLT_EPS = 1.1920928955078125e-07


@njit(cache=True, nogil=True, inline="always")
def _alpha_ell(rule, yy, yq, qq, dim):
    """(alpha, ell) of spec 1.3/1.4 from ||y||^2, <y,q>, ||q||^2."""
    if yy <= FLT_EPS or yq <= 0.0:
        return 0.0, 0.0
    if rule == 0:
        return np.sqrt(yy / dim), yy
    if rule == 1:
        a = yq / qq
        return a, a * a * qq
    return yy / yq, yy


@njit(cache=True, nogil=True)
def sumsq64(y):
    """sum y_i^2 in float64 with 16 partial sums (element i -> partial i mod 16), added in
    order 0..15: a fixed order, shared with native/encode.c, so results are bit-identical on
    every machine and in both implementations."""
    acc = np.zeros(16, np.float64)
    for i in range(y.shape[0]):
        v = np.float64(y[i])
        acc[i & 15] += v * v
    s = 0.0
    for c in range(16):
        s += acc[c]
    return s


@njit(cache=True, nogil=True)
def dot_levels64(y, idx, levels):
    """(<y, levels[idx]>, ||levels[idx]||^2) in float64, same 16-partial order as sumsq64."""
    ayq = np.zeros(16, np.float64)
    aqq = np.zeros(16, np.float64)
    for i in range(y.shape[0]):
        q = levels[idx[i]]
        ayq[i & 15] += np.float64(y[i]) * q
        aqq[i & 15] += q * q
    yq = 0.0
    qq = 0.0
    for c in range(16):
        yq += ayq[c]
        qq += aqq[c]
    return yq, qq


@njit(cache=True, nogil=True)
def alpha_ell_rows(rule, stats, dim, alpha, ell):
    """alpha, ell (n,) from stats float64 (n, 3) = (||y||^2, <y,q>, ||q||^2) per row."""
    for r in range(stats.shape[0]):
        a, e = _alpha_ell(rule, stats[r, 0], stats[r, 1], stats[r, 2], dim)
        alpha[r] = a
        ell[r] = e


@njit(cache=True, nogil=True)
def _bucketize_linear(y, inv, bounds32, idx):
    """idx_i = #{bounds <= y_i * inv} by counting (vectorises; for <= 31 bounds)."""
    for i in range(y.shape[0]):
        z = y[i] * inv
        c = 0
        for b in range(bounds32.shape[0]):
            c += bounds32[b] <= z
        idx[i] = c


@njit(cache=True, nogil=True)
def _bucketize_binary(y, inv, bounds32, idx):
    """idx_i = #{bounds <= y_i * inv} by binary search (upper_bound)."""
    nb = bounds32.shape[0]
    for i in range(y.shape[0]):
        z = y[i] * inv
        lo = 0
        hi = nb
        while lo < hi:
            mid = (lo + hi) >> 1
            if bounds32[mid] <= z:
                lo = mid + 1
            else:
                hi = mid
        idx[i] = lo


@njit(cache=True, nogil=True, parallel=True)
def scalar_quantize(y, bounds, levels, rule, idx, alpha, ell):
    """Lloyd-Max scalar quantization of z = sqrt(D) y/||y|| (spec 3, 4).

    bounds: float64 (K-1,) ascending, levels float64 (K,), both in z units; the comparison
    z_i >= bound is done in float32. Writes idx (n, D) uint16 (#bounds <= z_i), alpha (n,),
    ell (n,) float32.
    """
    n, dim = y.shape
    bounds32 = bounds.astype(np.float32)
    linear = bounds32.shape[0] <= 31
    for r in prange(n):
        yy = sumsq64(y[r])
        inv = np.float32(np.sqrt(dim / yy)) if yy > FLT_EPS else np.float32(0.0)
        if linear:
            _bucketize_linear(y[r], inv, bounds32, idx[r])
        else:
            _bucketize_binary(y[r], inv, bounds32, idx[r])
        yq, qq = dot_levels64(y[r], idx[r], levels)
        a, e = _alpha_ell(rule, yy, yq, qq, dim)
        alpha[r] = a
        ell[r] = e


@njit(cache=True, nogil=True, parallel=True)
def block_quantize(y, codebook, cb_norms, rule, idx, alpha, ell):
    """Nearest-codeword quantization of the k-blocks of z = sqrt(D) y/||y|| (spec 7.2).

    codebook: float32 (K, k) in z units; cb_norms: float32 (K,) squared norms.
    Writes idx (n, D/k) uint16, alpha, ell.
    """
    n, dim = y.shape
    ncw, k = codebook.shape
    m = dim // k
    cbt = np.ascontiguousarray(codebook.T)
    for r in prange(n):
        dist = np.empty(ncw, np.float32)
        zb = np.empty(k, np.float32)
        yy = 0.0
        for i in range(dim):
            yy += np.float64(y[r, i]) * y[r, i]
        inv = np.sqrt(dim / yy) if yy > FLT_EPS else 0.0
        yq = 0.0
        qq = 0.0
        for j in range(m):
            for t in range(k):
                zb[t] = y[r, j * k + t] * inv
            for c in range(ncw):
                dist[c] = cb_norms[c]
            for t in range(k):
                zt = np.float32(2.0) * zb[t]
                for c in range(ncw):
                    dist[c] -= zt * cbt[t, c]
            best = 0
            bd = dist[0]
            for c in range(1, ncw):
                if dist[c] < bd:
                    bd = dist[c]
                    best = c
            idx[r, j] = best
            for t in range(k):
                q = np.float64(codebook[best, t])
                yq += y[r, j * k + t] * q
                qq += q * q
        a, e = _alpha_ell(rule, yy, yq, qq, dim)
        alpha[r] = a
        ell[r] = e


@njit(cache=True, nogil=True, inline="always")
def _sift_down(heap, key, i, size):
    """Restore the min-heap property of heap[:size] (ordered by key[heap[.]]) below i."""
    item = heap[i]
    kv = key[item]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and key[heap[c + 1]] < key[heap[c]]:
            c += 1
        if key[heap[c]] >= kv:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = item


@njit(cache=True, nogil=True)
def rabitq_best_t_merge(absy, order, maxe, t_start, t_end):
    """Exact optimal rescale t in [t_start, t_end] (spec 6.1): merge the sorted event lists.

    The reference for `rabitq_best_t` (which the encoder uses; tests check they agree).

    absy: |y_i| (float64); order: indices of absy sorted descending. For a fixed level j the
    events t = j/|y_i| are ascending along `order`, so the M event lists are merged with one
    cursor each. cos = num/sqrt(den) is compared as num^2/den (num > 0), without sqrt.
    Returns the best t (the cosine is scale invariant, so |y| need not be normalised).
    """
    dim = absy.shape[0]
    inv = np.empty(dim + 1, np.float64)  # 1/|y| along the sorted order, inf past the end
    srt = np.empty(dim + 1, np.float64)  # |y| along the sorted order
    for p in range(dim):
        a = absy[order[p]]
        srt[p] = a
        inv[p] = 1.0 / a if a > 0.0 else np.inf
    inv[dim] = np.inf
    srt[dim] = 0.0
    num = 0.0
    den = 0.0
    for i in range(dim):
        e = np.floor(t_start * absy[i])
        if e > maxe:
            e = maxe
        num += (e + 0.5) * absy[i]
        den += (e + 0.5) * (e + 0.5)
    best_num2 = num * num
    best_den = den
    best_t = t_start
    cur = np.zeros(maxe + 1, np.int64)
    nxt = np.full(maxe + 1, np.inf)  # time of the next event of each level
    for j in range(1, maxe + 1):
        p = 0
        while p < dim and absy[order[p]] * t_start >= j:
            p += 1
        cur[j] = p
        nxt[j] = j * inv[p]
    # next level to fire: a linear scan over few levels, a binary min-heap over many
    use_heap = maxe > 8
    heap = np.empty(maxe, np.int64)
    for j in range(maxe):
        heap[j] = j + 1
    if use_heap:
        for start in range(maxe // 2 - 1, -1, -1):
            _sift_down(heap, nxt, start, maxe)
    while True:
        if use_heap:
            bj = heap[0]
            bt = nxt[bj]
        else:  # branchless argmin (the winner is unpredictable)
            bj = 1
            bt = nxt[1]
            for j in range(2, maxe + 1):
                v = nxt[j]
                c = v < bt
                bj = j if c else bj
                bt = v if c else bt
        if bt > t_end:
            break
        p = cur[bj]
        a = srt[p]
        cur[bj] = p + 1
        nxt[bj] = bj * inv[p + 1]
        if use_heap:
            _sift_down(heap, nxt, 0, maxe)
        # coordinate moves from e = bj-1 to e = bj
        num += a
        den += 2.0 * bj
        num2 = num * num
        if num2 * best_den > best_num2 * den:
            best_num2 = num2
            best_den = den
            best_t = bt
    return best_t


@njit(cache=True, nogil=True)
def rabitq_best_t(absy, maxe, t_start, t_end):
    """Same search as `rabitq_best_t_merge` (same events, same order, same arithmetic), with the
    events put in time order by a bucket sort instead of a merge of the M level lists:
    O(events) rather than O(events * M) or O(events * log M).

    The event of coordinate i at level k fires at t = k * (1/|y_i|) (computed exactly as the
    merge does), for k above the level at t_start while t <= t_end. Events are bucketed on a
    uniform grid of [t_start, t_end] (about two per bucket), each bucket is insertion-sorted
    (stable), and the sweep accumulates num, den in that order.
    """
    dim = absy.shape[0]
    num = 0.0
    den = 0.0
    nev = 0
    for i in range(dim):
        a = absy[i]
        e = np.floor(t_start * a)
        if e > maxe:
            e = maxe
        num += (e + 0.5) * a
        den += (e + 0.5) * (e + 0.5)
        if a > 0.0:
            hi = np.floor(t_end * a) + 1.0  # t_end*a rounds; the exact test is below
            if hi > maxe:
                hi = maxe
            if hi > e:
                nev += int(hi - e)
    best_num2 = num * num
    best_den = den
    best_t = t_start
    if nev == 0:
        return best_t
    ev_t = np.empty(nev, np.float64)
    ev_a = np.empty(nev, np.float64)
    ev_k = np.empty(nev, np.float64)
    ev_b = np.empty(nev, np.int32)
    nb = max(1, nev // 2)
    span = t_end - t_start
    scale = nb / span if span > 0.0 else 0.0
    cnt = np.zeros(nb + 1, np.int64)
    # pass 1: count events per bucket
    m = 0
    for i in range(dim):
        a = absy[i]
        if a <= 0.0:
            continue
        inv = 1.0 / a
        e = np.floor(t_start * a)
        if e > maxe:
            e = maxe
        k = e + 1.0
        while k <= maxe:
            t = k * inv
            if t > t_end:
                break
            b = int((t - t_start) * scale)
            if b < 0:
                b = 0
            elif b >= nb:
                b = nb - 1
            ev_t[m] = t
            ev_a[m] = a
            ev_k[m] = k
            ev_b[m] = b
            m += 1
            cnt[b + 1] += 1
            k += 1.0
    for b in range(nb):
        cnt[b + 1] += cnt[b]
    # pass 2: stable scatter into bucket order
    st = np.empty(m, np.float64)
    sa = np.empty(m, np.float64)
    sk = np.empty(m, np.float64)
    pos = cnt[:nb].copy()
    for j in range(m):
        b = ev_b[j]
        q = pos[b]
        pos[b] = q + 1
        st[q] = ev_t[j]
        sa[q] = ev_a[j]
        sk[q] = ev_k[j]
    # insertion sort inside each bucket (stable), then the sweep
    for b in range(nb):
        lo = cnt[b]
        hi = cnt[b + 1]
        for j in range(lo + 1, hi):
            t = st[j]
            a = sa[j]
            k = sk[j]
            q = j - 1
            while q >= lo and st[q] > t:
                st[q + 1] = st[q]
                sa[q + 1] = sa[q]
                sk[q + 1] = sk[q]
                q -= 1
            st[q + 1] = t
            sa[q + 1] = a
            sk[q + 1] = k
        for j in range(lo, hi):
            num += sa[j]
            den += 2.0 * sk[j]
            num2 = num * num
            better = num2 * best_den > best_num2 * den  # branchless: unpredictable near the peak
            best_num2 = num2 if better else best_num2
            best_den = den if better else best_den
            best_t = st[j] if better else best_t
    return best_t


@njit(cache=True, nogil=True, parallel=True)
def rabitq_quantize(y, ex_bits, const_t, tight_start, rule, sign_out, ex_out, alpha, ell):
    """Extended RaBitQ encoding (spec 6.1): sign plane, ex plane, rescale factor.

    const_t > 0 uses one constant t = const_t * sqrt(D) on o' = y/||y||; otherwise the exact optimal
    t is searched per vector in [t_end * tight_start, t_end], t_end = (M + 10)/max|o'|.
    sign_out (n, D) uint16 in {0,1}; ex_out (n, D) uint16 in 0..M (stored complement for y<0).
    """
    n, dim = y.shape
    maxe = (1 << ex_bits) - 1
    for r in prange(n):
        absy = np.empty(dim, np.float64)
        yy = 0.0
        amax = 0.0
        for i in range(dim):
            v = np.float64(y[r, i])
            yy += v * v
            absy[i] = abs(v)
            if absy[i] > amax:
                amax = absy[i]
        if yy <= FLT_EPS:
            for i in range(dim):
                sign_out[r, i] = 1
                ex_out[r, i] = 0
            alpha[r] = 0.0
            ell[r] = 0.0
            continue
        norm = np.sqrt(yy)
        if maxe == 0:
            t = 0.0
        elif const_t > 0.0:
            t = const_t * np.sqrt(dim) / norm  # const_t = t_c / sqrt(D) in units of |o'|
        else:
            t_end = (maxe + 10.0) / amax
            t = rabitq_best_t(absy, maxe, t_end * tight_start, t_end)
            t *= 1.0 + 1e-9
        yq = 0.0
        qq = 0.0
        for i in range(dim):
            e = np.floor(t * absy[i])
            if e > maxe:
                e = maxe
            g = e + 0.5
            pos = y[r, i] > 0
            sign_out[r, i] = 1 if pos else 0
            ex_out[r, i] = np.uint16(e) if pos else np.uint16(maxe - e)
            yq += g * absy[i]
            qq += g * g
        if rule == 1:
            a = yq / qq
            alpha[r] = a
            ell[r] = a * a * qq
        else:
            alpha[r] = yy / yq
            ell[r] = yy


@njit(cache=True, nogil=True, parallel=True)
def fast_rotate_scalar_encode(x, signs, perms, p, bounds, levels, rule, width, codes, alpha, ell):
    """Fused fast rotation + scalar Lloyd-Max quantization + bit packing (one pass over x).

    Same arithmetic as `rotation.fast_rotate` followed by `scalar_quantize` and
    `bits.pack_fields` (so the codes are identical), without the float (n, D) and index
    (n, D) intermediates. Writes the packed fields into codes[:, :ceil(D*width/8)].
    """
    n, dim = x.shape
    bounds32 = bounds.astype(np.float32)
    linear = bounds32.shape[0] <= 31
    nbytes = (dim * width + 7) // 8
    nblocks, nchunks = block_chunks(n)
    for chunk in prange(nchunks):
        buf = np.empty((dim, LANES), np.float32)
        tmp = np.empty((dim, LANES), np.float32)
        yrow = np.empty(dim, np.float32)
        idx = np.empty(dim, np.uint16)
        for blk in range(chunk * nblocks // nchunks, (chunk + 1) * nblocks // nchunks):
            r0 = blk * LANES
            m = min(LANES, n - r0)
            res = rotate_block(x, r0, m, signs, perms, p, buf, tmp)
            for c in range(m):
                r = r0 + c
                for i in range(dim):
                    yrow[i] = res[i, c]
                yy = sumsq64(yrow)
                inv = np.float32(np.sqrt(dim / yy)) if yy > FLT_EPS else np.float32(0.0)
                if linear:
                    _bucketize_linear(yrow, inv, bounds32, idx)
                else:
                    _bucketize_binary(yrow, inv, bounds32, idx)
                yq, qq = dot_levels64(yrow, idx, levels)
                a, e = _alpha_ell(rule, yy, yq, qq, dim)
                alpha[r] = a
                ell[r] = e
                _pack_row(idx, width, codes[r], nbytes)


@njit(cache=True, nogil=True)
def _pack_row(idx, width, row, nbytes):
    """LSB-first bitstream of idx (width bits each) into row[:nbytes]."""
    for b in range(nbytes):
        row[b] = 0
    acc = np.uint64(0)
    nbits = 0
    pos = 0
    for i in range(idx.shape[0]):
        acc |= np.uint64(idx[i]) << np.uint64(nbits)
        nbits += width
        while nbits >= 8:
            row[pos] = np.uint8(acc & np.uint64(255))
            acc >>= np.uint64(8)
            nbits -= 8
            pos += 1
    if nbits > 0:
        row[pos] = np.uint8(acc & np.uint64(255))


@njit(cache=True, nogil=True, parallel=True)
def unit_residual(y, idx, levels, norm, rho, gamma):
    """rho = y/||y|| - levels[idx]/sqrt(D) (TurboQuant_prod's QJL input, spec 5), gamma = ||rho||.

    y float32 (n, D); idx uint16 (n, D); levels float64 (K,) in z units; norm (n,) = ||y||.
    """
    n, dim = y.shape
    lv = (levels / np.sqrt(dim)).astype(np.float32)
    for r in prange(n):
        inv = np.float32(1.0 / norm[r]) if norm[r] > 0 else np.float32(0.0)
        acc = np.zeros(16, np.float64)  # fixed order, shared with native/encode.c
        for i in range(dim):
            v = y[r, i] * inv - lv[idx[r, i]]
            rho[r, i] = v
            acc[i & 15] += np.float64(v) * np.float64(v)
        g2 = 0.0
        for c in range(16):
            g2 += acc[c]
        gamma[r] = np.sqrt(g2)
