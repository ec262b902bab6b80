"""The one search driver: fast-scan shortlists over segments, exact rescoring, top-k, ids.

Every code index (Flat: one list; IVF: the probed lists; HNSW's flat fallback; Refine's
shortlist through its base) searches through these kernels, so a batch search is one compiled
call. Nothing here knows a codec's name; the codec describes its codes with two arrays:

* ``secs`` int64 (S, 7) -- the exact estimator (decode-dot): section s holds ``count`` fields
  of ``width`` bits at byte ``byte_off``; field i is codeword ``tables[toff + f*c : +c]`` of
  coordinates ``[i*c, (i+1)*c)`` of query space ``space``, summed into accumulator ``acc``.
  Columns: byte_off, width, count, acc, space, toff, c.
* the fast-scan layout: every vector is also a row of 4-bit sub-codes packed in blocks of 32
  (``kernels.fastscan.pack_blocks`` layout, ``bstride`` bytes per block); accumulator a owns
  nibbles ``acc_nib[a] .. acc_nib[a+1]`` and a query's uint8 LUT has the same nibble order.

The estimate of a stored vector i for query q, in the metric's own units (smaller is better
after the sign), is always::

    est = add + a_ell * sf[i, n_acc] + (1 - a_ell) * sf[i, n_acc + 1]
              + a_ip * sum_a sf[i, a] * acc_a                                  (``estimate``)

with ``acc_a`` the exact decode-dot sum or, in the shortlist, its fast-scan approximation
``bias[a, q] + scale[a, q] * uint16_acc``. ``add`` is the segment's constant (||q - c||^2 or
<q, c> of the IVF list, or the flat query term). L2: a_ell = 1, a_ip = -2; IP: 0 and 1, and
the key is -est.

The scan primitive is ``fs_scan_q`` of native/fastscan.c, called through its address from
nopython code (``call_scan_q``); its numba twin ``fastscan.scan_q_numba`` runs when the
address is 0 (no library) and is the reference the C kernel is tested against.
"""
import types as pytypes

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .bits import read_field
from .fastscan import quantize_query, scan_q_numba
from .rotation import rotate_row
from .topk import argsort_stable, before, heap_push, heap_sorted

MAX_ACC = 2


def _clone(fn, suffix):
    g = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                             fn.__closure__)
    g.__qualname__ = fn.__qualname__ + suffix
    g.__doc__ = fn.__doc__
    return g


def _dual(fn):
    """Compile `fn` twice: serial and parallel (prange over threads). A parallel numba call
    costs a thread-pool launch (tens of microseconds, more on a loaded machine), so one-query
    calls and one-thread calls take the serial twin. Call as fn(*args, parallel=bool)."""
    ser = njit(cache=True, nogil=True)(_clone(fn, "_serial"))
    par = njit(cache=True, nogil=True, parallel=True)(_clone(fn, "_parallel"))

    def dispatch(*args, parallel=True):
        return (par if parallel else ser)(*args)

    dispatch.__name__ = fn.__name__
    dispatch.__qualname__ = fn.__qualname__
    dispatch.__doc__ = fn.__doc__
    dispatch.serial = ser
    dispatch.parallel = par
    return dispatch


# --------------------------------------------------------------------------- native call

@intrinsic
def _call_i64x12(typingctx, fptr, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12):
    """Call the C function at address `fptr` with 12 int64 arguments; returns int64."""
    sig = types.int64(types.int64, *([types.int64] * 12))

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [i64] * 12)
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fn, args[1:])

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def call_scan_q(fptr, backend, blocks, b_off, bstride, nblocks, n, m, lut, l_off, lut_stride,
                qidx, out):
    """One scan_q call: native when fptr != 0, else the numba twin (same result)."""
    if fptr != 0:
        rc = _call_i64x12(fptr, np.int64(blocks.ctypes.data) + b_off, bstride, nblocks, n, m,
                          np.int64(lut.ctypes.data) + l_off, lut_stride,
                          np.int64(qidx.ctypes.data), np.int64(qidx.shape[0]),
                          np.int64(out.ctypes.data), np.int64(out.shape[1]), backend)
        if rc == 0:
            return 0
    # no library, or it refused the backend: the twin gives the same sums
    scan_q_numba(blocks, b_off, bstride, nblocks, n, m, lut, l_off, lut_stride, qidx, out)
    return 0


# --------------------------------------------------------------------------- exact estimate

@njit(cache=True, nogil=True, inline="always")
def section(secs, s, vsp, q):
    """Row s of an exact estimator's sections (module docstring): (byte_off, width, count,
    acc, toff, c) and the query vector of its space."""
    return (secs[s, 0], secs[s, 1], secs[s, 2], secs[s, 3], secs[s, 5], secs[s, 6],
            vsp[secs[s, 4], q])


@njit(cache=True, nogil=True, inline="always")
def exact_accs(row, secs, tables, vsp, q, accs):
    """accs[a] = sum over sections of accumulator a of <codeword(field_i), v_space[q] block i>.

    Several independent partial sums per section (a float add has a latency of several
    cycles, and one chain would wait on every add); their order is fixed, so the result
    does not depend on threads or batch sizes."""
    for a in range(accs.shape[0]):
        accs[a] = 0.0
    for s in range(secs.shape[0]):
        off, width, count, acc, toff, c, v = section(secs, s, vsp, q)
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        a4 = np.float32(0.0)
        a5 = np.float32(0.0)
        a6 = np.float32(0.0)
        a7 = np.float32(0.0)
        if c == 1 and width == 4:
            nb = count >> 1
            j = 0
            while j + 4 <= nb:
                b0 = row[off + j]
                b1 = row[off + j + 1]
                b2 = row[off + j + 2]
                b3 = row[off + j + 3]
                a0 += tables[toff + (b0 & 15)] * v[2 * j]
                a1 += tables[toff + (b0 >> 4)] * v[2 * j + 1]
                a2 += tables[toff + (b1 & 15)] * v[2 * j + 2]
                a3 += tables[toff + (b1 >> 4)] * v[2 * j + 3]
                a4 += tables[toff + (b2 & 15)] * v[2 * j + 4]
                a5 += tables[toff + (b2 >> 4)] * v[2 * j + 5]
                a6 += tables[toff + (b3 & 15)] * v[2 * j + 6]
                a7 += tables[toff + (b3 >> 4)] * v[2 * j + 7]
                j += 4
            while j < nb:
                b0 = row[off + j]
                a0 += tables[toff + (b0 & 15)] * v[2 * j]
                a1 += tables[toff + (b0 >> 4)] * v[2 * j + 1]
                j += 1
            if count & 1:
                a2 += tables[toff + (row[off + nb] & 15)] * v[count - 1]
        elif c == 1 and width == 1:
            # <t[bit], v> = t0 * sum(v) + (t1 - t0) * sum of v over set bits
            t0 = tables[toff]
            dt = tables[toff + 1] - t0
            nb = count >> 3
            # branch-free: v times the bit (0 or 1) adds the same sums as a test per bit,
            # whose mispredictions on random bits cost ~20x the arithmetic
            for j in range(nb):
                b = np.int32(row[off + j])
                o = 8 * j
                a0 += v[o] * np.float32(b & 1)
                a1 += v[o + 1] * np.float32((b >> 1) & 1)
                a2 += v[o + 2] * np.float32((b >> 2) & 1)
                a3 += v[o + 3] * np.float32((b >> 3) & 1)
                a4 += v[o + 4] * np.float32((b >> 4) & 1)
                a5 += v[o + 5] * np.float32((b >> 5) & 1)
                a6 += v[o + 6] * np.float32((b >> 6) & 1)
                a7 += v[o + 7] * np.float32(b >> 7)
            for i in range(8 * nb, count):
                if (row[off + (i >> 3)] >> (i & 7)) & 1:
                    a0 += v[i]
            ones = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
            if t0 != 0.0:  # RaBitQ's bit planes past the sign have t0 = 0
                vs = np.float32(0.0)
                u0 = np.float32(0.0)
                u1 = np.float32(0.0)
                u2 = np.float32(0.0)
                i = 0
                while i + 4 <= count:
                    vs += v[i]
                    u0 += v[i + 1]
                    u1 += v[i + 2]
                    u2 += v[i + 3]
                    i += 4
                while i < count:
                    vs += v[i]
                    i += 1
                accs[acc] += t0 * ((vs + u0) + (u1 + u2)) + dt * ones
            else:
                accs[acc] += dt * ones
            continue
        elif width == 8 and c == 2:
            i = 0
            while i + 2 <= count:
                f0 = toff + np.int64(row[off + i]) * 2
                f1 = toff + np.int64(row[off + i + 1]) * 2
                a0 += tables[f0] * v[2 * i]
                a1 += tables[f0 + 1] * v[2 * i + 1]
                a2 += tables[f1] * v[2 * i + 2]
                a3 += tables[f1 + 1] * v[2 * i + 3]
                i += 2
            while i < count:
                f0 = toff + np.int64(row[off + i]) * 2
                a0 += tables[f0] * v[2 * i]
                a1 += tables[f0 + 1] * v[2 * i + 1]
                i += 1
        elif width == 8 and c == 1:
            # four independent chains (one chain waits on every add's latency)
            i = 0
            while i + 4 <= count:
                a0 += tables[toff + np.int64(row[off + i])] * v[i]
                a1 += tables[toff + np.int64(row[off + i + 1])] * v[i + 1]
                a2 += tables[toff + np.int64(row[off + i + 2])] * v[i + 2]
                a3 += tables[toff + np.int64(row[off + i + 3])] * v[i + 3]
                i += 4
            while i < count:
                a0 += tables[toff + np.int64(row[off + i])] * v[i]
                i += 1
        elif width == 8:
            for i in range(count):
                base = toff + np.int64(row[off + i]) * c
                for t in range(c):
                    a0 += tables[base + t] * v[i * c + t]
        else:
            i = 0
            while i + 2 <= count:
                b0 = toff + np.int64(read_field(row, off, i * width, width)) * c
                b1 = toff + np.int64(read_field(row, off, (i + 1) * width, width)) * c
                for t in range(c):
                    a0 += tables[b0 + t] * v[i * c + t]
                    a1 += tables[b1 + t] * v[(i + 1) * c + t]
                i += 2
            while i < count:
                b0 = toff + np.int64(read_field(row, off, i * width, width)) * c
                for t in range(c):
                    a2 += tables[b0 + t] * v[i * c + t]
                i += 1
        accs[acc] += ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


#: exact_accs as a called function (not inlined): for the rescoring of a shortlist and other
#: once-per-candidate calls, where inlining its ~100 lines into every driver costs seconds
#: of compile time at the first search and buys nothing measurable; the per-row scans
#: (exact_search, exact_range, the graph's exact hops) keep the inlined one
exact_accs_call = njit(cache=True, nogil=True)(_clone(exact_accs.py_func, "_call"))


@njit(cache=True, nogil=True, inline="always")
def estimate(add, sf_row, n_acc, a_ell, a_ip, accs):
    """The one affine correction: the estimate from accumulator sums (module docstring)."""
    ip = np.float32(0.0)
    for a in range(n_acc):
        ip += sf_row[a] * accs[a]
    return (add + a_ell * sf_row[n_acc] + (np.float32(1.0) - a_ell) * sf_row[n_acc + 1]
            + a_ip * ip)


@njit(cache=True, nogil=True)
def _kth_smallest(a, k):
    """The k-th smallest (0-based) value of `a`, reordering `a`: np.partition(a, k)[k] (NaN
    last, as numpy orders it). Wirth's selection, written out because numba's np.partition
    costs far more compile time at the first search than the whole rest of the shortlist."""
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        x = a[k]
        i, j = lo, hi
        while i <= j:
            while before(a[i], x):
                i += 1
            while before(x, a[j]):
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@njit(cache=True, nogil=True)
def _keep_best(keys, ids, vals, size, keep):
    """Keep the `keep` smallest keys of the buffer (ties to the earliest), in place; returns
    the new size and the threshold: later candidates must have a key below it."""
    kth = _kth_smallest(keys[:size].copy(), keep - 1)
    less = 0
    for u in range(size):
        if keys[u] < kth:
            less += 1
    ties = keep - less
    j = 0
    for u in range(size):
        k = keys[u]
        if k < kth or (k == kth and ties > 0):
            if k == kth:
                ties -= 1
            keys[j] = k
            ids[j] = ids[u]
            vals[j] = vals[u]
            j += 1
    return j, kth


@_dual
def exact_search(exact, metric, seg_start, seg_end, seg_add, positions, flt, out_keys,
                 out_pos):
    """Top-k by exact estimates over segments: query q scans rows seg_start[q, p] ..
    seg_end[q, p] (of `positions` when positions is non-empty, else storage rows) with
    constant seg_add[q, p]. exact, metric, flt: as fastscan_search. out_keys (nq, k): keys
    (sign applied), out_pos: storage rows."""
    codes, secs, tables, vsp, sf, n_acc = exact
    a_ell, a_ip = metric
    mask, use_mask = flt
    nq = seg_start.shape[0]
    k = out_keys.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    use_pos = positions.shape[0] > 0
    for q in prange(nq):
        keys = np.empty(k, np.float32)
        ids = np.empty(k, np.int64)
        accs = np.zeros(MAX_ACC, np.float32)
        size = 0
        for p in range(seg_start.shape[1]):
            add = seg_add[q, p]
            for r in range(seg_start[q, p], seg_end[q, p]):
                i = positions[r] if use_pos else r
                if use_mask and mask[i] == 0:
                    continue
                exact_accs(codes[i], secs, tables, vsp, q, accs)
                key = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)
                size = heap_push(keys, ids, size, key, i)
        heap_sorted(keys, ids, size, out_keys[q], out_pos[q])


@_dual
def exact_range(exact, metric, seg_start, seg_end, seg_add, flt, key_max, counts, out_keys,
                out_pos, fill):
    """Range search by exact estimates: every row with key < key_max[q].

    First call with fill=False to get counts (nq,); then with fill=True and out arrays of
    sum(counts) rows, written at the offsets cumsum(counts) (same order both times)."""
    codes, secs, tables, vsp, sf, n_acc = exact
    a_ell, a_ip = metric
    mask, use_mask = flt
    nq = seg_start.shape[0]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    starts = np.zeros(nq, np.int64)
    if fill:
        for q in range(1, nq):
            starts[q] = starts[q - 1] + counts[q - 1]
    for q in prange(nq):
        accs = np.zeros(MAX_ACC, np.float32)
        c = 0
        o = starts[q]
        for p in range(seg_start.shape[1]):
            add = seg_add[q, p]
            for i in range(seg_start[q, p], seg_end[q, p]):
                if use_mask and mask[i] == 0:
                    continue
                exact_accs(codes[i], secs, tables, vsp, q, accs)
                key = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)
                if key < key_max[q]:
                    if fill:
                        out_keys[o + c] = key
                        out_pos[o + c] = i
                    c += 1
        if not fill:
            counts[q] = c


@_dual
def exact_ip_rows(codes, secs, tables, vsp, which, sf, n_acc, out):
    """out[i] = sum_a sf[i, a] * acc_a of code row i against query which[i] of vsp (the IVF
    fold of <code, R c> into the factors)."""
    n = codes.shape[0]
    for i in prange(n):
        accs = np.zeros(MAX_ACC, np.float32)
        exact_accs_call(codes[i], secs, tables, vsp, which[i], accs)
        ip = np.float32(0.0)
        for a in range(n_acc):
            ip += sf[i, a] * accs[a]
        out[i] = ip


# --------------------------------------------------------------------------- fast-scan driver

@njit(cache=True, nogil=True)
def _task_pairs(probes, list_len, q0, q1, split, nsplit, piece, maxpieces):
    """(key, query, probe) of the (list piece, query) pairs of queries q0..q1 given to `split`,
    sorted by key = list * maxpieces + piece (so each piece is scanned once for all its
    queries)."""
    npairs = 0
    for q in range(q0, q1):
        w = 0
        for p in range(probes.shape[1]):
            l = probes[q, p]
            if l < 0:
                continue
            nb = (list_len[l] + 31) // 32
            for c in range((nb + piece - 1) // piece):
                if w % nsplit == split:
                    npairs += 1
                w += 1
    keys = np.empty(npairs, np.int64)
    qs = np.empty(npairs, np.int64)
    ps = np.empty(npairs, np.int64)
    t = 0
    for q in range(q0, q1):
        w = 0
        for p in range(probes.shape[1]):
            l = probes[q, p]
            if l < 0:
                continue
            nb = (list_len[l] + 31) // 32
            for c in range((nb + piece - 1) // piece):
                if w % nsplit == split:
                    keys[t] = l * maxpieces + c
                    qs[t] = q
                    ps[t] = p
                    t += 1
                w += 1
    order = argsort_stable(keys)
    return keys[order], qs[order], ps[order]


@_dual
def fastscan_search(native, store, fast, exact, metric, flt, probes, probe_add, tune,
                    out_keys, out_pos):
    """Fast-scan shortlist of rr rows per query over the probed lists, exact rescoring, top-k.

    Grouped arguments (tuples):
    native = (fptr, backend): the fs_scan_q address (0: numba twin) and its backend id.
    store = (blocks, bstride, acc_nib, list_row0, list_blk0, list_len): blocks uint8 1-D, the
        block-packed sub-codes (bstride bytes per block; accumulator a owns nibbles acc_nib[a]
        .. acc_nib[a+1]); list l has list_len[l] vectors: storage rows list_row0[l] + r and
        vector r of its blocks from block list_blk0[l].
    fast = (lut_u8, lut_bias, lut_scale): uint8 1-D (nq * m_total * 16) and float32 (n_acc, nq).
    exact = (codes, secs, tables, vsp, sf, n_acc): the exact estimator (module docstring).
    metric = (a_ell, a_ip); flt = (mask, use_mask) over storage rows.
    probes int64 (nq, P) list ids (-1: none), probe_add float32 (nq, P).
    tune = (rr, nsplit, qchunk, piece, group, margin): shortlist depth; tasks are queries in chunks
        of qchunk times nsplit splits of each query's (list, piece) work (for fewer queries
        than threads); each task scans a piece (<= `piece` blocks) once for up to `group` of
        its queries; margin: early stop of the rescoring (float32, 0: rescore all; see below).
    out_keys / out_pos: (nq, k), keys with the sign applied (smaller is better), storage rows
    (-1 padding).
    """
    fptr, backend = native
    blocks, bstride, acc_nib, list_row0, list_blk0, list_len = store
    lut_u8, lut_bias, lut_scale = fast
    codes, secs, tables, vsp, sf, n_acc = exact
    a_ell, a_ip = metric
    mask, use_mask = flt
    rr, nsplit, qchunk, piece, group, margin = tune
    nq = probes.shape[0]
    k = out_keys.shape[1]
    m_total = acc_nib[n_acc]
    lstride = m_total * 16
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    nchunks = (nq + qchunk - 1) // qchunk
    ntasks = nchunks * nsplit
    # shortlists: a buffer of 2 rr candidates under a threshold per (split, query); when it
    # fills, the best rr are kept and the threshold drops to the rr-th key (amortised O(1)
    # per candidate, where a heap costs O(log rr) and a cache miss per push)
    cap = 2 * rr
    hk = np.empty((nsplit, nq, cap), np.float32)
    hp = np.empty((nsplit, nq, cap), np.int64)
    ha = np.empty((nsplit, nq, cap), np.float32)
    hs = np.zeros((nsplit, nq), np.int64)
    ht = np.full((nsplit, nq), np.inf, np.float32)
    maxpieces = 1
    for l in range(list_len.shape[0]):
        np_l = ((list_len[l] + 31) // 32 + piece - 1) // piece
        if np_l > maxpieces:
            maxpieces = np_l
    for task in prange(ntasks):
        ch = task // nsplit
        split = task % nsplit
        q0 = ch * qchunk
        q1 = min(nq, q0 + qchunk)
        pkeys, pqs, pps = _task_pairs(probes, list_len, q0, q1, split, nsplit, piece, maxpieces)
        acc = np.empty((MAX_ACC, group, piece * 32), np.uint16)
        base = np.empty(piece * 32, np.float32)
        w0 = np.empty(piece * 32, np.float32)
        w1 = np.zeros(piece * 32, np.float32)
        kbuf = np.empty(piece * 32, np.float32)
        qidx = np.empty(group, np.int64)
        pidx = np.empty(group, np.int64)
        a = 0
        npairs = pkeys.shape[0]
        while a < npairs:
            b = a + 1
            while b < npairs and pkeys[b] == pkeys[a] and b - a < group:
                b += 1
            l = pkeys[a] // maxpieces
            c = pkeys[a] % maxpieces
            blk0 = list_blk0[l] + c * piece
            nblk = min(piece, (list_len[l] + 31) // 32 - c * piece)
            row0 = list_row0[l] + c * piece * 32
            nv = min(piece * 32, list_len[l] - c * piece * 32)
            g = b - a
            for t in range(g):
                qidx[t] = pqs[a + t]
                pidx[t] = pps[a + t]
            qv = qidx[:g]
            if nv > 0:
                for ac in range(n_acc):
                    m = acc_nib[ac + 1] - acc_nib[ac]
                    call_scan_q(fptr, backend, blocks, blk0 * bstride + 16 * acc_nib[ac], bstride,
                                nblk, nv, m, lut_u8, 16 * acc_nib[ac], lstride, qv, acc[ac, :g])
                # per-row terms, once per piece for the whole query group (contiguous, so
                # the key loop below vectorises)
                for v in range(nv):
                    i = row0 + v
                    base[v] = sign * (a_ell * sf[i, n_acc]
                                      + (np.float32(1.0) - a_ell) * sf[i, n_acc + 1])
                    w0[v] = sign * a_ip * sf[i, 0]
                    if n_acc > 1:
                        w1[v] = sign * a_ip * sf[i, 1]
                for t in range(g):
                    q = qidx[t]
                    add = probe_add[q, pidx[t]]
                    keys = hk[split, q]
                    ids = hp[split, q]
                    adds = ha[split, q]
                    size = hs[split, q]
                    sadd = sign * add
                    b0 = lut_bias[0, q]
                    s0 = lut_scale[0, q]
                    if n_acc > 1:
                        b1 = lut_bias[1, q]
                        s1 = lut_scale[1, q]
                        for v in range(nv):
                            kbuf[v] = (sadd + base[v] + w0[v] * (b0 + s0 * np.float32(acc[0, t, v]))
                                       + w1[v] * (b1 + s1 * np.float32(acc[1, t, v])))
                    else:
                        for v in range(nv):
                            kbuf[v] = sadd + base[v] + w0[v] * (b0 + s0 * np.float32(acc[0, t, v]))
                    thr = ht[split, q]
                    for v in range(nv):
                        key = kbuf[v]
                        if key < thr:
                            i = row0 + v
                            if use_mask and mask[i] == 0:
                                continue
                            keys[size] = key
                            ids[size] = i
                            adds[size] = add
                            size += 1
                            if size == cap:
                                size, thr = _keep_best(keys, ids, adds, size, rr)
                    hs[split, q] = size
                    ht[split, q] = thr
            a = b
    # exact rescoring of every split's shortlist, best approximate key first, top-k.
    # With `margin` > 0 (exact layouts: the approximation error is the uint8 rounding of
    # the LUT entries) the rescoring stops once the next approximate key exceeds the k-th
    # exact key by more than the rounding error can explain: m_a rounding errors of up to
    # scale_a / 2, independent and uniform, have a standard deviation scale_a sqrt(m_a / 12);
    # `margin` of those (times each vector's |scale|) bounds every remaining candidate.
    for q in prange(nq):
        keys = np.empty(k, np.float32)
        ids = np.empty(k, np.int64)
        accs = np.zeros(MAX_ACC, np.float32)
        size = 0
        tot = 0
        for split in range(nsplit):
            tot += hs[split, q]
        ck = np.empty(tot, np.float32)
        ci = np.empty(tot, np.int64)
        ca = np.empty(tot, np.float32)
        t = 0
        worst = np.float32(0.0)
        # the rounding error's standard deviation per unit of vector scale, times the margin
        sd0 = (abs(a_ip) * margin * lut_scale[0, q]
               * np.float32(np.sqrt((acc_nib[1] - acc_nib[0]) / 12.0)))
        sd1 = np.float32(0.0)
        if n_acc > 1:
            sd1 = (abs(a_ip) * margin * lut_scale[1, q]
                   * np.float32(np.sqrt((acc_nib[2] - acc_nib[1]) / 12.0)))
        for split in range(nsplit):
            for u in range(hs[split, q]):
                i = hp[split, q, u]
                ck[t] = hk[split, q, u]
                ci[t] = i
                ca[t] = ha[split, q, u]
                if margin > 0:
                    e = abs(sf[i, 0]) * sd0
                    if n_acc > 1:
                        e += abs(sf[i, 1]) * sd1
                    if e > worst:
                        worst = e
                t += 1
        order = argsort_stable(ck)
        for u in range(min(tot, rr)):
            o = order[u]
            if margin > 0 and size == k and ck[o] - worst > keys[0]:
                break
            i = ci[o]
            exact_accs_call(codes[i], secs, tables, vsp, q, accs)
            key = sign * estimate(ca[o], sf[i], n_acc, a_ell, a_ip, accs)
            size = heap_push(keys, ids, size, key, i)
        heap_sorted(keys, ids, size, out_keys[q], out_pos[q])


# --------------------------------------------------------------------------- query tables

@njit(cache=True, nogil=True)
def nibble_lut_query(vsp, q, space, cidx, E, out):
    """out (m, 16) = the float nibble LUT of query q (see build_nibble_luts)."""
    m, g, _ = E.shape
    for j in range(m):
        v = vsp[space[j], q]
        for x in range(16):
            out[j, x] = 0.0
        for r in range(g):
            ci = cidx[j, r]
            if ci >= 0:
                vv = v[ci]
                for x in range(16):
                    out[j, x] += vv * E[j, r, x]


@_dual
def build_nibble_luts(vsp, space, cidx, E, out):
    """out[q, j, x] = sum_r vsp[space[j], q, cidx[j, r]] * E[j, r, x] (cidx -1: none)."""
    for q in prange(vsp.shape[1]):
        nibble_lut_query(vsp, q, space, cidx, E, out[q])


@_dual
def quantize_luts(lut, acc_nib, out, scale, bias, lut_max):
    """uint8 LUTs with one affine map per (accumulator, query), as fastscan.quantize_lut:
    float LUT sum over accumulator a's nibbles ~= bias[a, q] + scale[a, q] * uint8 sum, every
    entry <= lut_max (255, or 127 for the kernel's paired byte adds) and no uint16
    accumulator can overflow."""
    nq = lut.shape[0]
    for q in prange(nq):
        quantize_query(lut[q], acc_nib, lut_max, out[q], scale[:, q], bias[:, q])


@_dual
def select_probes(scores, nprobe, probes, probe_add, qn, cn, is_l2, x, centroids):
    """The nprobe best lists of each query from scores = x @ centroids.T (the coarse
    assignment, in our own kernel): L2 key ||q||^2 - 2 s + ||c||^2 (smallest), IP: s
    (largest). probe_add gets the list's additive constant, recomputed directly for the
    chosen lists (||q - c||^2 or <q, c>, float64 sums in four fixed lanes, so the result
    never depends on the batch or the thread count, and the sum does not wait on one
    chain of dependent adds)."""
    nq, nlist = scores.shape
    d = x.shape[1]
    d4 = d - d % 4
    for q in prange(nq):
        keys = np.empty(nprobe, np.float32)
        ids = np.empty(nprobe, np.int64)
        size = 0
        for l in range(nlist):
            s = scores[q, l]
            if is_l2:
                key = qn[q] - np.float32(2.0) * s + cn[l]
            else:
                key = -s
            size = heap_push(keys, ids, size, key, l)
        order = argsort_stable(keys[:size])
        xq = x[q]
        for t in range(nprobe):
            if t < size:
                l = ids[order[t]]
                probes[q, t] = l
                c = centroids[l]
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                if is_l2:
                    for j in range(0, d4, 4):
                        e0 = np.float64(xq[j]) - np.float64(c[j])
                        e1 = np.float64(xq[j + 1]) - np.float64(c[j + 1])
                        e2 = np.float64(xq[j + 2]) - np.float64(c[j + 2])
                        e3 = np.float64(xq[j + 3]) - np.float64(c[j + 3])
                        a0 += e0 * e0
                        a1 += e1 * e1
                        a2 += e2 * e2
                        a3 += e3 * e3
                    for j in range(d4, d):
                        e0 = np.float64(xq[j]) - np.float64(c[j])
                        a0 += e0 * e0
                else:
                    for j in range(0, d4, 4):
                        a0 += np.float64(xq[j]) * np.float64(c[j])
                        a1 += np.float64(xq[j + 1]) * np.float64(c[j + 1])
                        a2 += np.float64(xq[j + 2]) * np.float64(c[j + 2])
                        a3 += np.float64(xq[j + 3]) * np.float64(c[j + 3])
                    for j in range(d4, d):
                        a0 += np.float64(xq[j]) * np.float64(c[j])
                probe_add[q, t] = np.float32((a0 + a1) + (a2 + a3))
            else:
                probes[q, t] = -1
                probe_add[q, t] = 0.0


@njit(cache=True, nogil=True, inline="always")
def float_key(v, xq, is_ip):
    """-<v, xq> (IP) or ||v - xq||^2 (L2) in float32: smaller is better."""
    s = np.float32(0.0)
    if is_ip:
        for j in range(xq.shape[0]):
            s += v[j] * xq[j]
        return -s
    for j in range(xq.shape[0]):
        e = v[j] - xq[j]
        s += e * e
    return s


@_dual
def refine_topk(vectors, rows, x, is_ip, out_keys, out_slot):
    """Exact float keys of the candidate rows (nq, kk; -1 = none) and the k best per query:
    out_keys (nq, k) (IP: -<x, v>, L2: ||x - v||^2), out_slot: the candidate's column."""
    nq, kk = rows.shape
    k = out_keys.shape[1]
    for q in prange(nq):
        keys = np.empty(k, np.float32)
        ids = np.empty(k, np.int64)
        size = 0
        xq = x[q]
        for t in range(kk):
            r = rows[q, t]
            if r < 0:
                continue
            s = float_key(vectors[r], xq, is_ip)
            size = heap_push(keys, ids, size, s, t)
        heap_sorted(keys, ids, size, out_keys[q], out_slot[q])


@_dual
def float_range(vectors, x, is_ip, key_max, counts, out_keys, out_rows, fill):
    """Range search over float vectors (two calls as exact_range): key < key_max[q]."""
    nq = x.shape[0]
    n = vectors.shape[0]
    starts = np.zeros(nq, np.int64)
    if fill:
        for q in range(1, nq):
            starts[q] = starts[q - 1] + counts[q - 1]
    for q in prange(nq):
        xq = x[q]
        c = 0
        o = starts[q]
        for r in range(n):
            s = float_key(vectors[r], xq, is_ip)
            if s < key_max[q]:
                if fill:
                    out_keys[o + c] = s
                    out_rows[o + c] = r
                c += 1
        if not fill:
            counts[q] = c


@njit(cache=True, nogil=True)
def rotate_query(x, q, signs, perms, p, has_proj, psigns, pperms, pp, xr, buf, tmp, vsp):
    """Row q of x (float32 (nq, d)), zero-padded into xr (D,), rotated into vsp[0, q] and,
    with has_proj, projected again into vsp[1, q] (buf / tmp: scratch of D); returns
    ||x_q||^2 in float64 (prepare_queries_fast, and the graph search's one-query path)."""
    s = 0.0
    d = x.shape[1]
    for i in range(d):
        xr[i] = x[q, i]
        s += np.float64(x[q, i]) * np.float64(x[q, i])
    for i in range(d, xr.shape[0]):
        xr[i] = 0.0
    rotate_row(xr, signs, perms, p, buf, tmp, vsp[0, q])
    if has_proj:
        rotate_row(vsp[0, q], psigns, pperms, pp, buf, tmp, vsp[1, q])
    return s


@_dual
def prepare_queries_fast(x, rot, proj, lay, vsp, qnorm2, lut_u8, scale, bias, lut_max):
    """All query tables of a batch in one call (fast rotation codecs, no centre).

    x: validated float32 (nq, d); rot = (signs, perms, p) of the codec's rotation of D >= d
    dims (zero padding); proj = (has, signs, perms, p): a second rotation giving query space 1
    (TurboQuant_prod's QJL projection); lay = (space, cidx, E, acc_nib) of the scan layout.
    Writes vsp (n_spaces, nq, D), qnorm2 (nq,) = ||x||^2, and the quantized LUTs as
    `quantize_luts` does. Same arithmetic as Rotation.apply / build_nibble_luts /
    quantize_luts (tested equal)."""
    signs, perms, p = rot
    has_proj, psigns, pperms, pp = proj
    space, cidx, E, acc_nib = lay
    nq, d = x.shape
    dim = vsp.shape[2]
    m = E.shape[0]
    n_acc = acc_nib.shape[0] - 1
    for q in prange(nq):
        xr = np.empty(dim, np.float32)
        buf = np.empty(dim, np.float32)
        tmp = np.empty(dim, np.float32)
        qnorm2[q] = np.float32(rotate_query(x, q, signs, perms, p, has_proj, psigns, pperms,
                                            pp, xr, buf, tmp, vsp))
        lut = np.empty((m, 16), np.float32)
        nibble_lut_query(vsp, q, space, cidx, E, lut)
        sc = np.empty(n_acc, np.float64)
        bi = np.empty(n_acc, np.float64)
        quantize_query(lut, acc_nib, lut_max, lut_u8[q], sc, bi)
        for a in range(n_acc):
            scale[a, q] = np.float32(sc[a])
            bias[a, q] = np.float32(bi[a])


# --------------------------------------------------------------------------- native selection

FLAG_LUT7 = 1 << 8  # backend flag of fs_scan_q: every LUT entry <= 127 (paired byte adds)
_SCAN = None


def scan_setup():
    """(fptr, backend, lut_max) for fastscan_search: the native fs_scan_q with its 7-bit LUT
    mode when the library has it (checked once by a call on a tiny input), else the numba
    twin with 8-bit LUTs (the twin is exact for any LUT; 8 bits keep more precision)."""
    global _SCAN
    if _SCAN is None:
        from . import native as _native
        addr = getattr(_native, "scan_q_address", None)
        fptr = addr() if addr is not None else 0
        setup = (0, 0, 255.0)
        if fptr:
            import ctypes
            fn = ctypes.CFUNCTYPE(ctypes.c_int64, *([ctypes.c_int64] * 12))(fptr)
            blocks = np.zeros(16, np.uint8)
            lut = np.zeros(16, np.uint8)
            qidx = np.zeros(1, np.int64)
            out = np.zeros(32, np.uint16)
            rc = fn(blocks.ctypes.data, 16, 1, 1, 1, lut.ctypes.data, 16, qidx.ctypes.data, 1,
                    out.ctypes.data, 32, FLAG_LUT7)
            setup = (fptr, FLAG_LUT7, 127.0) if rc == 0 else (fptr, 0, 255.0)
        _SCAN = setup
    return _SCAN


# --------------------------------------------------------------------------- one call

_prepare_serial = prepare_queries_fast.serial
_fastscan_serial = fastscan_search.serial


@njit(cache=True, nogil=True)
def search_fused(x, qargs, native, store, exact, metric, flt, probes, probe_add, flat_l2,
                 tune, out_keys, out_pos):
    """prepare_queries_fast then fastscan_search in one compiled call (serial): the path
    of small searches, where each Python step would cost more than the kernels.

    qargs = (rot, proj, lay, lut_max, n_spaces, D, m); exact = (codes, secs, tables, sf,
    n_acc) (the query spaces are made here); flat_l2: probe_add[:, 0] = ||x||^2 (a flat
    L2 index's additive term, known only once the queries are prepared)."""
    rot, proj, lay, lut_max, n_spaces, dim, m = qargs
    codes, secs, tables, sf, n_acc = exact
    nq = x.shape[0]
    vsp = np.empty((n_spaces, nq, dim), np.float32)
    qnorm2 = np.empty(nq, np.float32)
    u8 = np.empty((nq, m, 16), np.uint8)
    scale = np.empty((n_acc, nq), np.float32)
    bias = np.empty((n_acc, nq), np.float32)
    _prepare_serial(x, rot, proj, lay, vsp, qnorm2, u8, scale, bias, lut_max)
    if flat_l2:
        for q in range(nq):
            probe_add[q, 0] = qnorm2[q]
    _fastscan_serial(native, store, (u8.reshape(-1), bias, scale),
                     (codes, secs, tables, vsp, sf, n_acc), metric, flt, probes, probe_add,
                     tune, out_keys, out_pos)


@_dual
def probe_scores(x, ct, out):
    """out = x @ ct (ct: centroids transposed, (d, nlist)): the coarse scores of an IVF
    search of up to 64 queries (index/ivf.py `_probe`; a BLAS call costs more there). Four
    queries share each pass over the centroids; the inner loop runs over contiguous
    centroids, so it vectorises without reassociating any sum: out[q, l] is the same float32
    sum over j in order whatever the number of queries or threads."""
    nq, d = x.shape
    nlist = ct.shape[1]
    for b in prange((nq + 3) // 4):
        q0 = 4 * b
        if q0 + 4 <= nq:
            r0 = out[q0]
            r1 = out[q0 + 1]
            r2 = out[q0 + 2]
            r3 = out[q0 + 3]
            for l in range(nlist):
                r0[l] = 0.0
                r1[l] = 0.0
                r2[l] = 0.0
                r3[l] = 0.0
            for j in range(d):
                x0 = x[q0, j]
                x1 = x[q0 + 1, j]
                x2 = x[q0 + 2, j]
                x3 = x[q0 + 3, j]
                c = ct[j]
                for l in range(nlist):
                    cl = c[l]
                    r0[l] += x0 * cl
                    r1[l] += x1 * cl
                    r2[l] += x2 * cl
                    r3[l] += x3 * cl
        else:
            for q in range(q0, nq):
                row = out[q]
                for l in range(nlist):
                    row[l] = 0.0
                for j in range(d):
                    xj = x[q, j]
                    c = ct[j]
                    for l in range(nlist):
                        row[l] += xj * c[l]


_probe_scores_serial = probe_scores.serial
_select_serial = select_probes.serial


@njit(cache=True, nogil=True)
def search_ivf_fused(x, coarse, qargs, native, store, exact, metric, flt, tune, ids, out_keys,
                     out_ids):
    """A small serial IVF search in one compiled call: the coarse scores against the
    centroids (probe_scores), the nprobe best lists with their constants (select_probes),
    then search_fused over them, and the storage rows mapped to ids (-1: none).

    coarse = (ct, cnorm2, centroids, qn, nprobe, is_l2): centroids transposed (d, nlist), their
    squared norms, the centroids (nlist, d), the queries' squared norms (the same float32 sums
    as the batch path's), nprobe and the metric; the rest as search_fused."""
    ct, cn, centroids, qn, nprobe, is_l2 = coarse
    nq = x.shape[0]
    scores = np.empty((nq, ct.shape[1]), np.float32)
    _probe_scores_serial(x, ct, scores)
    probes = np.empty((nq, nprobe), np.int64)
    probe_add = np.empty((nq, nprobe), np.float32)
    _select_serial(scores, nprobe, probes, probe_add, qn, cn, is_l2, x, centroids)
    rows = np.empty(out_keys.shape, np.int64)
    search_fused(x, qargs, native, store, exact, metric, flt, probes, probe_add, False, tune,
                 out_keys, rows)
    for q in range(nq):
        for t in range(rows.shape[1]):
            r = rows[q, t]
            out_ids[q, t] = ids[r] if r >= 0 else -1
