"""Bounded heaps for top-k (smaller key is better) and the LUT scan that feeds them."""
import numpy as np
from numba import njit, prange

from .scan import MAX_ACC, affine, lut_dot


@njit(cache=True, nogil=True, inline="always")
def heap_push(keys, ids, size, key, ident):
    """Insert into a max-heap of the `size` smallest keys (capacity keys.shape[0]); new size."""
    cap = keys.shape[0]
    if size < cap:
        i = size
        size += 1
    elif key < keys[0]:
        # replace the root, sift down
        i = 0
        while True:
            left = 2 * i + 1
            if left >= cap:
                break
            right = left + 1
            child = left
            if right < cap and keys[right] > keys[left]:
                child = right
            if keys[child] <= key:
                break
            keys[i] = keys[child]
            ids[i] = ids[child]
            i = child
        keys[i] = key
        ids[i] = ident
        return size
    else:
        return size
    # sift up
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] >= key:
            break
        keys[i] = keys[parent]
        ids[i] = ids[parent]
        i = parent
    keys[i] = key
    ids[i] = ident
    return size


@njit(cache=True, nogil=True)
def heap_sorted(keys, ids, size, out_keys, out_ids):
    """Write the heap contents ascending; pad with +inf / -1."""
    order = np.argsort(keys[:size])
    for t in range(size):
        out_keys[t] = keys[order[t]]
        out_ids[t] = ids[order[t]]
    for t in range(size, out_keys.shape[0]):
        out_keys[t] = np.inf
        out_ids[t] = -1


@njit(cache=True, nogil=True, parallel=True)
def scan_topk(codes, sf, secs, luts, n_acc, a_ell, a_ip, task_query, task_seg0, task_seg1,
              seg_start, seg_end, seg_add, mask, use_mask, out_keys, out_pos):
    """Top-k by LUT estimates over segments of the code array, one heap per task.

    A task t scans segments task_seg0[t]..task_seg1[t] (rows seg_start..seg_end of codes)
    for query task_query[t]; each segment adds seg_add to the estimate (||q-c||^2 for L2,
    <q,c> for IP). key = a_ell*ell + (1-a_ell)*f_c + a_ip*ip + seg_add, negated for IP
    (a_ip > 0) so the smallest key is the best. out_keys/out_pos: (ntasks, k).
    """
    ntasks = task_query.shape[0]
    k = out_keys.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    for t in prange(ntasks):
        q = task_query[t]
        lut = luts[q]
        keys = np.empty(k, np.float32)
        ids = np.empty(k, np.int64)
        accs = np.zeros(MAX_ACC, np.float32)
        size = 0
        for s in range(task_seg0[t], task_seg1[t]):
            add = seg_add[s]
            for i in range(seg_start[s], seg_end[s]):
                if use_mask and mask[i] == 0:
                    continue
                lut_dot(codes[i], secs, lut, accs)
                ip = affine(accs, sf[i], n_acc)
                est = add + a_ell * sf[i, n_acc] + (np.float32(1.0) - a_ell) * sf[i, n_acc + 1] + a_ip * ip
                size = heap_push(keys, ids, size, sign * est, i)
        heap_sorted(keys, ids, size, out_keys[t], out_pos[t])


@njit(cache=True, nogil=True, parallel=True)
def approx_topk_u16(acc, bias, scale, sf, n_acc, a_ell, a_ip, qadd, mask, use_mask, out_pos):
    """Shortlist from fast-scan accumulators: key of code i for query q uses
    ip ~= bias[q] + scale[q] * acc[q, i] times the code's scale (single accumulator).

    acc: uint16 (nq, n); out_pos: int64 (nq, R) positions of the R smallest keys (-1 padded).
    """
    nq, n = acc.shape
    r = out_pos.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    for q in prange(nq):
        keys = np.empty(r, np.float32)
        ids = np.empty(r, np.int64)
        size = 0
        b = bias[q]
        s = scale[q]
        add = qadd[q]
        for i in range(n):
            if use_mask and mask[i] == 0:
                continue
            ip = sf[i, 0] * (b + s * np.float32(acc[q, i]))
            est = add + a_ell * sf[i, n_acc] + (np.float32(1.0) - a_ell) * sf[i, n_acc + 1] + a_ip * ip
            size = heap_push(keys, ids, size, sign * est, i)
        tmpk = np.empty(r, np.float32)
        heap_sorted(keys, ids, size, tmpk, out_pos[q])


@njit(cache=True, nogil=True, parallel=True)
def rescore_topk(codes, sf, secs, luts, n_acc, a_ell, a_ip, qadd, cand, out_keys, out_pos):
    """Exact LUT estimates of the shortlisted positions `cand` (nq, R; -1 = none); keep top-k.

    qadd: float32 (nq, R), the additive constant of each candidate (its list's ||q-c||^2 or
    <q,c>; the same for every candidate of a flat index).
    """
    nq, r = cand.shape
    k = out_keys.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    for q in prange(nq):
        keys = np.empty(k, np.float32)
        ids = np.empty(k, np.int64)
        accs = np.zeros(MAX_ACC, np.float32)
        size = 0
        lut = luts[q]
        for t in range(r):
            i = cand[q, t]
            if i < 0:
                continue
            lut_dot(codes[i], secs, lut, accs)
            ip = affine(accs, sf[i], n_acc)
            est = qadd[q, t] + a_ell * sf[i, n_acc] + (np.float32(1.0) - a_ell) * sf[i, n_acc + 1] + a_ip * ip
            size = heap_push(keys, ids, size, sign * est, i)
        heap_sorted(keys, ids, size, out_keys[q], out_pos[q])


@njit(cache=True, nogil=True)
def push_u16(acc, qs, pair_add, bias, scale, sf, pos0, n_acc, a_ell, a_ip, mask, use_mask,
             keys, ids, sizes):
    """Push the fast-scan estimates of one IVF list into the running per-query heaps.

    acc: uint16 (len(qs), n_list) accumulators of the queries qs against the list's codes,
    whose storage positions start at pos0; pair_add: the list's additive constant per query.
    """
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    for t in range(qs.shape[0]):
        q = qs[t]
        b = bias[q]
        s = scale[q]
        add = pair_add[t]
        kq = keys[q]
        iq = ids[q]
        size = sizes[q]
        for i in range(acc.shape[1]):
            pos = pos0 + i
            if use_mask and mask[pos] == 0:
                continue
            ip = sf[pos, 0] * (b + s * np.float32(acc[t, i]))
            est = add + a_ell * sf[pos, n_acc] + (np.float32(1.0) - a_ell) * sf[pos, n_acc + 1] + a_ip * ip
            size = heap_push(kq, iq, size, sign * est, pos)
        sizes[q] = size
