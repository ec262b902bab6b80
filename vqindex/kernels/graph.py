"""HNSW search over a fixed graph with distances estimated from codes (numba).

The graph layout is FAISS's (`faiss.HNSW`): node i has `levels[i]` levels (0 .. levels[i]-1);
its neighbours at level l are `neighbors[offsets[i] + cum[l] : offsets[i] + cum[l + 1]]`,
padded with -1. Distances are the same LUT estimates as `topk.scan_topk`:

    est = add + a_ell * sf[i, n_acc] + (1 - a_ell) * sf[i, n_acc + 1] + a_ip * ip
    key = est (L2, a_ip < 0)  or  -est (IP, a_ip > 0); smaller key is better.

`ok` (uint8 per node, used when `use_ok`) says which nodes may be returned: nodes with
ok == 0 (filtered out or deleted) are still traversed but never enter the result heap, and
the level-0 search only stops early once the result heap is full (the hnswlib rule), so
k results come back whenever k allowed nodes are reachable and ef >= k.
"""
import numpy as np
from numba import njit, prange

from .scan import MAX_ACC, affine, lut_dot
from .topk import heap_push


@njit(cache=True, nogil=True, inline="always")
def _key(codes, sf, secs, lut, n_acc, a_ell, a_ip, add, sign, accs, i):
    lut_dot(codes[i], secs, lut, accs)
    ip = affine(accs, sf[i], n_acc)
    est = add + a_ell * sf[i, n_acc] + (np.float32(1.0) - a_ell) * sf[i, n_acc + 1] + a_ip * ip
    return sign * est


@njit(cache=True, nogil=True, inline="always")
def _minheap_push(keys, ids, size, key, ident):
    """Push into an unbounded (capacity permitting) min-heap; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        ids[i] = ids[parent]
        i = parent
    keys[i] = key
    ids[i] = ident
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _minheap_pop(keys, ids, size):
    """Remove the root of a min-heap of `size` items; returns the new size."""
    size -= 1
    if size <= 0:
        return 0
    key = keys[size]
    ident = ids[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and keys[right] < keys[left]:
            child = right
        if keys[child] >= key:
            break
        keys[i] = keys[child]
        ids[i] = ids[child]
        i = child
    keys[i] = key
    ids[i] = ident
    return size


@njit(cache=True, nogil=True)
def _search_range(q0, q1, codes, sf, secs, luts, n_acc, a_ell, a_ip, qadd, levels, offsets,
                  neighbors, cum, entry, max_level, ef, ok, use_ok, out_keys, out_pos):
    """Search queries q0 .. q1-1 (one thread): greedy descent, then ef-search at level 0."""
    n = codes.shape[0]
    k = out_keys.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    accs = np.zeros(MAX_ACC, np.float32)
    visited = np.zeros(n, np.int32)          # generation stamps: no clearing per query
    cand_k = np.empty(n + 1, np.float32)     # every node is pushed at most once
    cand_i = np.empty(n + 1, np.int64)
    res_k = np.empty(ef, np.float32)
    res_i = np.empty(ef, np.int64)
    gen = 0
    for q in range(q0, q1):
        lut = luts[q]
        add = qadd[q]
        gen += 1
        if gen == 2147483647:
            visited[:] = 0
            gen = 1
        # ---- greedy descent over the upper levels
        cur = entry
        curk = _key(codes, sf, secs, lut, n_acc, a_ell, a_ip, add, sign, accs, cur)
        for level in range(max_level, 0, -1):
            changed = True
            while changed:
                changed = False
                if levels[cur] <= level:
                    break
                b = offsets[cur] + cum[level]
                e = offsets[cur] + cum[level + 1]
                for t in range(b, e):
                    v = neighbors[t]
                    if v < 0:
                        break
                    kv = _key(codes, sf, secs, lut, n_acc, a_ell, a_ip, add, sign, accs, v)
                    if kv < curk:
                        curk = kv
                        cur = v
                        changed = True
        # ---- ef-search at level 0
        nres = 0
        ncand = 0
        visited[cur] = gen
        ncand = _minheap_push(cand_k, cand_i, ncand, curk, cur)
        if not use_ok or ok[cur] != 0:
            nres = heap_push(res_k, res_i, nres, curk, cur)
        c0 = cum[0]
        c1 = cum[1]
        while ncand > 0:
            ck = cand_k[0]
            c = cand_i[0]
            if nres == ef and ck > res_k[0]:
                break
            ncand = _minheap_pop(cand_k, cand_i, ncand)
            b = offsets[c] + c0
            e = offsets[c] + c1
            for t in range(b, e):
                v = neighbors[t]
                if v < 0:
                    break
                if visited[v] == gen:
                    continue
                visited[v] = gen
                kv = _key(codes, sf, secs, lut, n_acc, a_ell, a_ip, add, sign, accs, v)
                if nres < ef or kv < res_k[0]:
                    ncand = _minheap_push(cand_k, cand_i, ncand, kv, v)
                    if not use_ok or ok[v] != 0:
                        nres = heap_push(res_k, res_i, nres, kv, v)
        # ---- sorted top-k
        order = np.argsort(res_k[:nres])
        m = min(k, nres)
        for t in range(m):
            out_keys[q, t] = res_k[order[t]]
            out_pos[q, t] = res_i[order[t]]
        for t in range(m, k):
            out_keys[q, t] = np.inf
            out_pos[q, t] = -1


@njit(cache=True, nogil=True, parallel=True)
def hnsw_search(codes, sf, secs, luts, n_acc, a_ell, a_ip, qadd, levels, offsets, neighbors,
                cum, entry, max_level, ef, ok, use_ok, nchunks, out_keys, out_pos):
    """HNSW search of every query (prange over `nchunks` query chunks, one visited array
    per chunk). out_keys float32 (nq, k) ascending (+inf pads), out_pos int64 (-1 pads)."""
    nq = luts.shape[0]
    for c in prange(nchunks):
        q0 = c * nq // nchunks
        q1 = (c + 1) * nq // nchunks
        if q1 > q0:
            _search_range(q0, q1, codes, sf, secs, luts, n_acc, a_ell, a_ip, qadd, levels,
                          offsets, neighbors, cum, entry, max_level, ef, ok, use_ok,
                          out_keys, out_pos)
