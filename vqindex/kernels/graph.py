"""HNSW graph kernels (numba): construction on float vectors, traversal over codes.

Graph layout (faiss's `HNSW` layout, so graphs in files of earlier versions load as they
are): node i has levels[i] >= 1 levels; its neighbours at level l are
``neighbors[offsets[i] + cum[l] : offsets[i] + cum[l + 1]]`` (int32, -1 padded), with
cum[l] = 2M + (l - 1) M for l >= 1 (level 0 holds 2M neighbours, the others M).
offsets[i + 1] = offsets[i] + cum[levels[i]].

Construction (`hnsw_insert`): HNSW insertion (greedy descent, ef-search with efConstruction
at every level of the node, the neighbour-selection heuristic, reverse links with the same
heuristic when a list is full), on float vectors: the vectors being added and, for nodes
already stored, their decoded codes. Keys are squared L2 or -<x, y> (smaller is better).
`hnsw_insert_batched` runs it in batches that do not depend on the thread count (each
batch's nodes search the graph as it stood, in parallel; the reverse links follow in
parallel by target), so a build gives the same graph on any number of threads.

Traversal (`hnsw_search_codes`): greedy descent over the upper levels, then the ef-search at
level 0, every hop keyed by an estimate from the codes; the `ef` list is then rescored with
the exact estimator (driver.exact_accs / estimate) and the top k returned. Per-hop estimates:

* mode HOP_EXACT: the exact estimator itself (any codec; no rescoring needed).
* mode HOP_NIBBLE: codes with one section of 4-bit scalar fields (EDEN4, TQmse4): the query
  is quantized once to int8 (scale max|v| / 127) and each level value t[l] to a 7-bit
  integer u[l] (t[l] ~ t_min + s_t u[l]); then <t(code), v> ~ t_min sum(v) + s_t s_q
  sum_j u[l_j] q_j, the integer sum from native/graph.c's vq_graph_dot4 (AVX2: one byte
  shuffle maps 64 fields to their levels, vpmaddubsw / vpmaddwd sum them) or its numba twin
  `dot4_numba` (same integers).
* mode HOP_PLANES: codes of P 1-bit planes over the same coordinates (RaBitQ's extended
  codes: plane p holds bit p of every coordinate's level, with the two values t0_p, t1_p):
  <t(code), v> = sum_p t0_p sum(v) + sum_p (t1_p - t0_p) sum_{j: bit j of plane p} v_j. The
  index uses it when the steps t1_p - t0_p are integer multiples w_p <= 128 of one unit
  s_t; the query is quantized once to int8 (natural order, scale max|v| / 127) and
  sum_p w_p sum_{set bits} q_j comes from native/graph.c's vq_graph_planes (AVX-512 VNNI:
  a masked byte move selects 64 query bytes per plane word, vpdpbusd weights and sums them;
  AVX2: bits spread to byte masks) or its numba twin `planes_numba` (same integers). Keys
  are estimates, so the ef list is rescored exactly (as with HOP_NIBBLE).
  Two-stage hops (RaBitQ: plane 0 is the sign plane, w_0 = 1 + sum of the other weights, so
  bit 0 of a coordinate is the sign of y_j = u_j - W/2): each stored row also has a 64-byte
  record (index/hnsw.py `_coarse_records`: plane 0 and four factors, one cache line at
  d <= 384). With c_i = ||y||^2 / ||y||_1, y ~ c_i sign(y) + r_i (r_i orthogonal to y), so
  <t(code), v> ~ c0 sum(v) + s_t c_i (2 sum_{bit 0 set} v_j - sum(v)) from plane 0 alone
  (c0 = sum_p t0_p + s_t W / 2); the error is s_t <r_i, v> plus the query's rounding, about
  N(0, (s_t ||r_i|| ||v||)^2 / (D - 1) + (s_t c_i s_q)^2 D / 6) under the random rotation
  (spec 6.2, "incremental search"). Every neighbour gets this sign-plane key; those that may
  be returned and whose lower bound (key - lam x that standard deviation) is below the kk-th
  best full key so far also get the other planes (their full key replaces the sign key in
  the beam and enters the kk best); at the end the kk best are rescored exactly. The bound
  fails at the Gaussian rate (tests/test_hnsw_graph.py), so lam = 2 loses ~2 % of the
  pool's members to the beam, which the rescoring of the pool does not see.
* mode HOP_BYTE: codes whose sections all have fields of 1, 2, 4 or 8 bits that tile the
  code's first bytes, two or more coordinates a byte (BlockQuant's 8-bit block fields,
  RaBitQ's bit planes, 2-bit codes; the index chooses, index/hnsw.py `_byte_plan`): per
  query, a float table of 256 entries per code byte holds the sum of that byte's fields'
  codeword-query products (`byte_lut`), so a neighbour's accumulator is one table lookup
  per code byte (`_byte_hop_keys`) instead of a decode and a dot product per coordinate.
  The sums are the exact estimator's up to float rounding, so the ef list is not rescored
  (as with HOP_EXACT).

Nodes >= n_visible are skipped (a concurrent add writes nodes past the published count;
neighbour lists of older nodes are rewritten in place with valid ids only, and the visited
stamps keep a node from being scored twice). `ok` (uint8 per node, when use_ok) says which
nodes may be returned: others are traversed but never enter the result list, and the
level-0 search stops only once the list holds ef allowed nodes (so k results come back
whenever k allowed nodes are reachable and ef >= k).
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .driver import (MAX_ACC, _call_i64x12, _dual, estimate, exact_accs, exact_accs_call,
                     rotate_query, section)
from .topk import argsort_stable, heap_push, heap_sorted

HOP_EXACT = 0
HOP_NIBBLE = 1
HOP_BYTE = 2
HOP_PLANES = 3

# the build's float keys only steer the graph construction (no result depends on their
# last bits): reassociation lets LLVM vectorise the sums
_FM = {"reassoc", "contract", "nsz"}


# --------------------------------------------------------------------------- heaps

@njit(cache=True, nogil=True, inline="always")
def _minheap_push(keys, ids, size, key, ident):
    """Push into a min-heap (capacity permitting); returns the new size."""
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


# --------------------------------------------------------------------------- layout

def level_cum(M, max_levels=64):
    """cum (int32, max_levels + 1): cum[l] = slots of levels < l (2M at level 0, M above)."""
    cum = np.zeros(max_levels + 1, np.int32)
    for l in range(1, max_levels + 1):
        cum[l] = cum[l - 1] + (2 * M if l == 1 else M)
    return cum


def random_levels(n, M, seed):
    """levels (int32, n) >= 1 of new nodes: 1 + floor(-ln(U) / ln(M)) (the HNSW rule)."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    lv = np.floor(-np.log(np.maximum(u, 1e-300)) / np.log(max(M, 2))).astype(np.int64)
    return (1 + np.minimum(lv, 30)).astype(np.int32)


@njit(cache=True, nogil=True)
def check_graph(levels, offsets, neighbors, cum, n):
    """-1 when the first n nodes are consistent (offsets follow the levels, ids in [-1, n),
    no self links), else the first bad node."""
    if offsets[0] != 0:
        return 0
    for i in range(n):
        lv = levels[i]
        if lv < 1 or lv >= cum.shape[0]:
            return i
        if offsets[i + 1] != offsets[i] + cum[lv] or offsets[i + 1] > neighbors.shape[0]:
            return i
        for t in range(offsets[i], offsets[i + 1]):
            v = neighbors[t]
            if v < -1 or v >= n or v == i:
                return i
    return -1


# --------------------------------------------------------------------------- construction

@njit(cache=True, nogil=True, fastmath=_FM)
def _fkey(V, i, q, is_ip):
    """-<V[i], q> (IP) or ||V[i] - q||^2 (L2)."""
    s = np.float32(0.0)
    row = V[i]
    if is_ip:
        for j in range(q.shape[0]):
            s += row[j] * q[j]
        return -s
    for j in range(q.shape[0]):
        e = row[j] - q[j]
        s += e * e
    return s


@njit(cache=True, nogil=True)
def _build_search(V, q, is_ip, ep, epk, b0, b1, ef, offsets, neighbors, visited, gen,
                  cand_k, cand_i, res_k, res_i):
    """ef-search of one level (slots b0 .. b1 of each node) from `ep`; returns the size of
    the result max-heap res_k / res_i."""
    visited[ep] = gen
    ncand = _minheap_push(cand_k, cand_i, 0, epk, ep)
    nres = heap_push(res_k, res_i, 0, epk, ep)
    while ncand > 0:
        ck = cand_k[0]
        c = cand_i[0]
        if nres == ef and ck > res_k[0]:
            break
        ncand = _minheap_pop(cand_k, cand_i, ncand)
        o = offsets[c]
        for t in range(o + b0, o + b1):
            v = neighbors[t]
            if v < 0:
                break
            if visited[v] == gen:
                continue
            visited[v] = gen
            kv = _fkey(V, v, q, is_ip)
            if nres < ef or kv < res_k[0]:
                ncand = _minheap_push(cand_k, cand_i, ncand, kv, v)
                nres = heap_push(res_k, res_i, nres, kv, v)
    return nres


@njit(cache=True, nogil=True)
def _select(V, is_ip, sk, si, cnt, maxn, out):
    """HNSW neighbour-selection heuristic over candidates sorted by key (sk, si): keep e
    unless an already kept s is closer to e than the base point is; at most maxn. Fewer
    than maxn candidates are all kept (faiss's rule: dense level-0 lists, better recall
    per ef)."""
    if cnt < maxn:
        for t in range(cnt):
            out[t] = si[t]
        return cnt
    m = 0
    for t in range(cnt):
        e = si[t]
        good = True
        for s in range(m):
            if _fkey(V, out[s], V[e], is_ip) < sk[t]:
                good = False
                break
        if good:
            out[m] = e
            m += 1
            if m == maxn:
                break
    return m


@njit(cache=True, nogil=True)
def _add_link(V, is_ip, src, dst, b, size, neighbors, tk, ti, sel):
    """Add dst to src's list neighbors[b : b + size]; a full list is re-selected (heuristic)
    over its members plus dst."""
    for t in range(size):
        if neighbors[b + t] < 0:
            neighbors[b + t] = dst
            return
    q = V[src]
    for t in range(size):
        v = neighbors[b + t]
        tk[t] = _fkey(V, v, q, is_ip)
        ti[t] = v
    tk[size] = _fkey(V, dst, q, is_ip)
    ti[size] = dst
    order = argsort_stable(tk[: size + 1])
    sk = tk[: size + 1][order]
    sj = ti[: size + 1][order]
    m = _select(V, is_ip, sk, sj, size + 1, size, sel)
    for t in range(m):
        neighbors[b + t] = sel[t]
    for t in range(m, size):
        neighbors[b + t] = -1


@njit(cache=True, nogil=True)
def _link_node(V, is_ip, i, levels, offsets, neighbors, cum, entry, ml, efc, visited, g,
               cand_k, cand_i, res_k, res_i, sel):
    """Phase A of a batched insertion: node i's own lists from a search of the graph as it
    stands (read only; nothing links to i yet), written into i's slots. Returns the last
    visit stamp used."""
    q = V[i]
    li = levels[i] - 1
    cur = entry
    curk = _fkey(V, cur, q, is_ip)
    for level in range(ml, li, -1):  # greedy descent above the node's top level
        changed = True
        while changed:
            changed = False
            o = offsets[cur]
            for t in range(o + cum[level], o + cum[level + 1]):
                v = neighbors[t]
                if v < 0:
                    break
                kv = _fkey(V, v, q, is_ip)
                if kv < curk:
                    curk = kv
                    cur = v
                    changed = True
    for level in range(min(li, ml), -1, -1):
        g += 1
        if g >= 2147483647:
            visited[:] = 0
            g = 1
        b0 = cum[level]
        b1 = cum[level + 1]
        nres = _build_search(V, q, is_ip, cur, curk, b0, b1, efc, offsets, neighbors,
                             visited, g, cand_k, cand_i, res_k, res_i)
        order = argsort_stable(res_k[:nres])
        sk = res_k[:nres][order]
        si = res_i[:nres][order]
        m = _select(V, is_ip, sk, si, nres, b1 - b0, sel)
        o = offsets[i] + b0
        for t in range(m):
            neighbors[o + t] = sel[t]
        cur = si[0]
        curk = sk[0]
    return g


@njit(cache=True, nogil=True)
def hnsw_insert(V, is_ip, first, last, levels, offsets, neighbors, cum, state, efc, visited,
                gen):
    """Insert nodes first .. last-1 (rows of V, float32 (>= last, d)) into the graph.

    levels / offsets / neighbors: the graph (the new nodes' slots already allocated and -1);
    state int64 (2,): entry point, max level (-1, -1 for an empty graph), updated;
    visited int32 (>= last,) and gen int64 (1,): visit stamps kept between calls."""
    n = V.shape[0]
    maxdeg = cum[1]
    cand_k = np.empty(n + 1, np.float32)
    cand_i = np.empty(n + 1, np.int64)
    res_k = np.empty(efc, np.float32)
    res_i = np.empty(efc, np.int64)
    tk = np.empty(maxdeg + 1, np.float32)
    ti = np.empty(maxdeg + 1, np.int64)
    sel = np.empty(maxdeg + 1, np.int64)
    sel2 = np.empty(maxdeg + 1, np.int64)
    g = gen[0]
    for i in range(first, last):
        li = levels[i] - 1
        entry = state[0]
        ml = state[1]
        if entry < 0:
            state[0] = i
            state[1] = li
            continue
        g = _link_node(V, is_ip, i, levels, offsets, neighbors, cum, entry, ml, efc, visited,
                       g, cand_k, cand_i, res_k, res_i, sel)
        for level in range(min(li, ml), -1, -1):  # the reverse links, level by level
            b0 = cum[level]
            size = cum[level + 1] - b0
            o = offsets[i] + b0
            for t in range(size):
                s = neighbors[o + t]
                if s < 0:
                    break
                _add_link(V, is_ip, s, i, offsets[s] + b0, size, neighbors, tk, ti, sel2)
        if li > ml:
            state[0] = i
            state[1] = li
    gen[0] = g


@_dual
def hnsw_insert_batched(V, is_ip, first, last, levels, offsets, neighbors, cum, state, efc,
                        visited, gens, cand_k, cand_i, batch):
    """Insert nodes first .. last-1 in batches whose result does not depend on the thread
    count: phase A (parallel over the batch's nodes) searches the graph as it stood at the
    batch's start and writes each new node's own lists; phase B (parallel over the nodes
    they point to, each target's links in node order) adds the reverse links with the
    heuristic re-selection of full lists. A batch holds at most min(batch, nodes / 16) nodes
    (new nodes do not see each other, so the batch stays a small part of the graph);
    nodes above the current top level, and the graph's first nodes, are inserted one at a
    time by hnsw_insert. visited int32 (T, >= last), gens int64 (T,), cand_k float32 /
    cand_i int64 (T, >= last + 1): per-thread scratch, T = visited.shape[0]."""
    T = visited.shape[0]
    maxdeg = cum[1]
    i = first
    while i < last:
        entry = state[0]
        ml = state[1]
        if entry < 0 or i < 1024 or levels[i] - 1 > ml:
            # one call for the run of the graph's first nodes (or one node above the top)
            j = min(last, 1024) if i < 1024 else i + 1
            hnsw_insert(V, is_ip, i, j, levels, offsets, neighbors, cum, state, efc,
                        visited[0], gens[0:1])
            i = j
            continue
        bmax = min(batch, max(1, i // 16))
        j = i + 1
        while j < last and j - i < bmax and levels[j] - 1 <= ml:
            j += 1
        nb = j - i
        # phase A: each new node's own lists
        for c in prange(T):
            res_k = np.empty(efc, np.float32)
            res_i = np.empty(efc, np.int64)
            sel = np.empty(maxdeg + 1, np.int64)
            g = gens[c]
            for u in range(c, nb, T):
                g = _link_node(V, is_ip, i + u, levels, offsets, neighbors, cum, entry, ml,
                               efc, visited[c], g, cand_k[c], cand_i[c], res_k, res_i, sel)
            gens[c] = g
        # phase B: the reverse links, grouped by target (in node, level, slot order)
        cnt = np.zeros(nb + 1, np.int64)
        for u in range(nb):
            a = i + u
            top = min(levels[a] - 1, ml)
            c2 = 0
            for level in range(top + 1):
                o = offsets[a] + cum[level]
                for t in range(o, o + cum[level + 1] - cum[level]):
                    if neighbors[t] < 0:
                        break
                    c2 += 1
            cnt[u + 1] = cnt[u] + c2
        tot = cnt[nb]
        rs = np.empty(tot, np.float64)
        rl = np.empty(tot, np.int32)
        ri = np.empty(tot, np.int64)
        for u in range(nb):
            a = i + u
            top = min(levels[a] - 1, ml)
            w = cnt[u]
            for level in range(top + 1):
                o = offsets[a] + cum[level]
                for t in range(o, o + cum[level + 1] - cum[level]):
                    s = neighbors[t]
                    if s < 0:
                        break
                    rs[w] = np.float64(s)
                    rl[w] = level
                    ri[w] = a
                    w += 1
        order = argsort_stable(rs)
        starts = np.empty(tot + 1, np.int64)
        ng = 0
        for t in range(tot):
            if t == 0 or rs[order[t]] != rs[order[t - 1]]:
                starts[ng] = t
                ng += 1
        starts[ng] = tot
        for c in prange(T):
            tk = np.empty(maxdeg + 1, np.float32)
            ti = np.empty(maxdeg + 1, np.int64)
            sel2 = np.empty(maxdeg + 1, np.int64)
            for gi in range(c, ng, T):
                for t in range(starts[gi], starts[gi + 1]):
                    r = order[t]
                    s = np.int64(rs[r])
                    level = rl[r]
                    b0 = cum[level]
                    _add_link(V, is_ip, s, ri[r], offsets[s] + b0, cum[level + 1] - b0,
                              neighbors, tk, ti, sel2)
        i = j


# --------------------------------------------------------------------------- hop estimates

@njit(cache=True, nogil=True)
def dot4_numba(codes, off, ids, cnt, qa, lut, nbytes, out):
    """The numba twin of vq_graph_dot4 (native/graph.c): out[t] = sum_j lut[field_j] q_j over
    the 4-bit fields of row ids[t] (bytes off .. off + nbytes), qa arranged per 32 bytes."""
    for t in range(cnt):
        row = codes[ids[t]]
        acc = np.int32(0)
        for j in range(nbytes):
            c = j >> 5
            r = j & 31
            b = row[off + j]
            acc += np.int32(lut[b & 15]) * np.int32(qa[64 * c + r])
            acc += np.int32(lut[b >> 4]) * np.int32(qa[64 * c + 32 + r])
        out[t] = acc


@njit(cache=True, nogil=True, inline="always")
def _quantize_i8(v, count, qa, paired):
    """qa = v[:count] / s rounded to int8 (the rest zero) at position j (natural order) or,
    when paired, at vq_graph_dot4's position of coordinate j; returns s = max|v| / 127 (1 for
    a zero query)."""
    mx = np.float32(0.0)
    for j in range(count):
        a = abs(v[j])
        if a > mx:
            mx = a
    s = mx / np.float32(127.0) if mx > 0 else np.float32(1.0)
    inv = np.float32(1.0) / s
    for j in range(qa.shape[0]):
        qa[j] = 0
    for j in range(count):
        w = np.int64(np.round(v[j] * inv))
        w = min(127, max(-127, w))
        if paired:
            r = j & 63
            qa[(j - r) + (r >> 1) + 32 * (r & 1)] = w
        else:
            qa[j] = w
    return s


@njit(cache=True, nogil=True)
def quantize_query_i8(v, count, qa):
    """qa (int8, 64 * ceil(count / 64)): v[:count] / s rounded, arranged as vq_graph_dot4
    reads it (qa[64c + r] = q[64c + 2r], qa[64c + 32 + r] = q[64c + 2r + 1]); returns
    s = max|v| / 127 (1 for a zero query)."""
    return _quantize_i8(v, count, qa, True)


@njit(cache=True, nogil=True)
def planes_numba(codes, off, ids, cnt, q, w, pbytes, out):
    """The numba twin of vq_graph_planes (native/graph.c): out[t] = sum_p w[p] * (sum of q_j
    over the set bits of plane p) for row ids[t], plane p at bytes off + p * pbytes."""
    for t in range(cnt):
        row = codes[ids[t]]
        acc = np.int32(0)
        for p in range(w.shape[0]):
            o = off + p * pbytes
            s = np.int32(0)
            for b in range(pbytes):
                v = np.int32(row[o + b])
                for j in range(8):
                    s += ((v >> j) & 1) * np.int32(q[8 * b + j])
            acc += np.int32(w[p]) * s
        out[t] = acc


@njit(cache=True, nogil=True)
def planes_f32_numba(codes, off, ids, cnt, v, steps, pbytes, out):
    """The numba twin of vq_graph_planes_f32 (native/graph.c), the same bits: out[t] =
    sum_p steps[p] * (sum of v_j over the set bits of plane p) for row ids[t], each plane
    summed in 16 lanes (lane l: v[16c + l] over chunks c), the lanes added pairwise for
    h = 8, 4, 2, 1, the planes in order."""
    chunks = (pbytes + 1) >> 1
    L = np.empty(16, np.float32)
    zero = np.float32(0.0)
    for t in range(cnt):
        row = codes[ids[t]]
        o = np.float32(0.0)
        for p in range(steps.shape[0]):
            b0 = off + p * pbytes
            for l in range(16):
                L[l] = zero
            for c in range(chunks):
                m = np.int64(row[b0 + 2 * c])
                if 2 * c + 1 < pbytes:
                    m |= np.int64(row[b0 + 2 * c + 1]) << 8
                for l in range(16):
                    L[l] = L[l] + (v[16 * c + l] if (m >> l) & 1 else zero)
            h = 8
            while h >= 1:
                for l in range(h):
                    L[l] = L[l] + L[l + h]
                h >>= 1
            o = o + steps[p] * L[0]
        out[t] = o


@njit(cache=True, nogil=True)
def quantize_query_plain(v, count, qa):
    """qa[:count] (int8) = v[:count] / s rounded, natural order (vq_graph_planes' query), the
    rest of qa zero; returns s = max|v| / 127 (1 for a zero query)."""
    return _quantize_i8(v, count, qa, False)


@njit(cache=True, nogil=True)
def plane_sign_factors(codes, off, w, pbytes, count, out):
    """The sign-plane estimate's per-row factors of P-plane codes whose plane 0 is the sign
    plane (w[0] = 1 + sum(w[1:]), so W = sum(w) <= 255): with u_j = sum_p w_p bit_pj and
    y_j = u_j - W/2, out[i, 0] = c_i = ||y||^2 / ||y||_1, the scalar for which c_i sign(y)
    is exact along y (the residual r = y - c_i sign(y) is orthogonal to y), and out[i, 1] =
    ||r|| = sqrt(c_i^2 count - ||y||^2), in weight units, over the first `count`
    coordinates (kernels.graph HOP_PLANES, two-stage hops). Eight coordinates at a time:
    each plane byte is spread to one byte per bit, so u of eight coordinates is one
    weighted sum of uint64 words (no lane exceeds W <= 255)."""
    P = w.shape[0]
    W = np.int64(0)
    for p in range(P):
        W += np.int64(w[p])
    spread = np.zeros(256, np.uint64)
    for b in range(256):
        v = np.uint64(0)
        for j in range(8):
            if (b >> j) & 1:
                v |= np.uint64(1) << np.uint64(8 * j)
        spread[b] = v
    # |u - W/2| and (u - W/2)^2 by u, doubled to stay integer: |2u - W|, (2u - W)^2
    tab1 = np.zeros(256, np.int64)
    tab2 = np.zeros(256, np.int64)
    for u in range(256):
        tab1[u] = abs(2 * u - W)
        tab2[u] = (2 * u - W) * (2 * u - W)
    full = count >> 3
    for i in range(codes.shape[0]):
        row = codes[i]
        s1 = np.int64(0)
        s2 = np.int64(0)
        for c in range(full):
            acc = np.uint64(0)
            for p in range(P):
                acc += np.uint64(w[p]) * spread[row[off + p * pbytes + c]]
            for j in range(8):
                u = (acc >> np.uint64(8 * j)) & np.uint64(255)
                s1 += tab1[u]
                s2 += tab2[u]
        for j in range(full * 8, count):
            u = 0
            for p in range(P):
                u += np.int64(w[p]) * ((np.int64(row[off + p * pbytes + (j >> 3)]) >> (j & 7))
                                       & 1)
            s1 += tab1[u]
            s2 += tab2[u]
        c = 0.5 * np.float64(s2) / np.float64(s1) if s1 > 0 else 0.0
        q2 = 0.25 * np.float64(s2)
        out[i, 0] = c
        out[i, 1] = np.sqrt(max(c * c * count - q2, 0.0))


@njit(cache=True, nogil=True)
def byte_lut(bplan, tables, vsp, q, out):
    """out[p * 256 + b] = the sum over the fields held in code byte p, when that byte has
    value b, of <codeword(field), v> (the query space of the field's section); bplan rows
    (byte_off, width, count, acc, space, toff, c) of the sections in byte order (secs'
    columns), every width in 1, 2, 4, 8 and count * width a multiple of 8. Built per byte
    from the per-field value tables: entry x * 2^(t w) + b = entry b + (value of field t
    at x - at 0), one add per entry."""
    fv = np.empty((8, 256), np.float32)
    for s in range(bplan.shape[0]):
        off, width, count, _, toff, c, v = section(bplan, s, vsp, q)
        F = 8 // width
        nv = 1 << width
        for j in range((count * width) // 8):
            base = (off + j) * 256
            if F == 1:  # one field a byte (8-bit fields): the codeword products directly
                if c == 2:
                    v0 = v[2 * j]
                    v1 = v[2 * j + 1]
                    for x in range(256):
                        out[base + x] = tables[toff + 2 * x] * v0 + tables[toff + 2 * x + 1] * v1
                else:
                    for x in range(256):
                        a = np.float32(0.0)
                        for u in range(c):
                            a += tables[toff + x * c + u] * v[j * c + u]
                        out[base + x] = a
                continue
            for t in range(F):
                f = j * F + t
                for x in range(nv):
                    a = np.float32(0.0)
                    for u in range(c):
                        a += tables[toff + x * c + u] * v[f * c + u]
                    fv[t, x] = a
            z = np.float32(0.0)
            for t in range(F):
                z += fv[t, 0]
            out[base] = z
            for t in range(F):
                size = 1 << (t * width)
                for x in range(1, nv):
                    dlt = fv[t, x] - fv[t, 0]
                    o = base + x * size
                    for b in range(size):
                        out[o + b] = out[base + b] + dlt


@intrinsic
def _prefetch(typingctx, addr):
    """Prefetch the cache line at integer address `addr` (llvm.prefetch: read, high locality)."""
    sig = types.void(types.int64)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.inttoptr(args[0], i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _byte_hop_keys(buf, cnt, codes, sf, blut, nbytes, pb, n_acc, add, a_ell, a_ip, sign,
                   keys):
    """HOP_BYTE keys of one node's neighbours: accumulator 0 sums the table entries of code
    bytes 0 .. pb, accumulator 1 (n_acc 2) those of pb .. nbytes (four partial sums each)."""
    accs = np.zeros(2, np.float32)
    # the neighbours' rows are random accesses into the codes: ask for all of them first
    base = np.int64(codes.ctypes.data)
    stride = np.int64(codes.shape[1])
    for t in range(cnt):
        r = base + np.int64(buf[t]) * stride
        for o in range(0, nbytes, 64):
            _prefetch(r + o)
    for t in range(cnt):
        i = buf[t]
        row = codes[i]
        for a in range(n_acc):
            p0 = 0 if a == 0 else pb
            p1 = pb if a == 0 else nbytes
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            p = p0
            while p + 4 <= p1:
                s0 += blut[p * 256 + np.int64(row[p])]
                s1 += blut[(p + 1) * 256 + np.int64(row[p + 1])]
                s2 += blut[(p + 2) * 256 + np.int64(row[p + 2])]
                s3 += blut[(p + 3) * 256 + np.int64(row[p + 3])]
                p += 4
            while p < p1:
                s0 += blut[p * 256 + np.int64(row[p])]
                p += 1
            accs[a] = (s0 + s1) + (s2 + s3)
        keys[t] = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)


@njit(cache=True, nogil=True, inline="always")
def _hop_keys(hop, q, qs, codes, sf, exact, metric, add, buf, cnt, dots, keys, accs):
    """keys[t] = the per-hop key of node buf[t] for query q (sign applied)."""
    mode, fptr, fptr2, backend, lut, nbytes, off, tmin, st, bplan = hop
    _, secs, tables, vsp, _, n_acc = exact
    a_ell, a_ip = metric
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    if mode == HOP_BYTE:
        _byte_hop_keys(buf, cnt, codes, sf, qs[3], nbytes, off, n_acc, add, a_ell, a_ip, sign,
                       keys)
    elif mode == HOP_NIBBLE or mode == HOP_PLANES:
        qa, scale, bias, _ = qs
        rc = np.int64(-1)
        if mode == HOP_NIBBLE:
            if fptr != 0:
                rc = _call_i64x12(fptr, np.int64(codes.ctypes.data) + off,
                                  np.int64(codes.shape[1]), np.int64(buf.ctypes.data), cnt,
                                  np.int64(qa.ctypes.data), np.int64(lut.ctypes.data), nbytes,
                                  np.int64(dots.ctypes.data), backend,
                                  np.int64(sf.ctypes.data), np.int64(4 * sf.shape[1]),
                                  np.int64(0))
            if rc != 0:
                dot4_numba(codes, off, buf, cnt, qa, lut, nbytes, dots)
        else:
            if fptr != 0:
                rc = _call_i64x12(fptr, np.int64(codes.ctypes.data) + off,
                                  np.int64(codes.shape[1]), np.int64(buf.ctypes.data), cnt,
                                  np.int64(qa.ctypes.data), np.int64(lut.ctypes.data),
                                  np.int64(lut.shape[0]), nbytes, np.int64(dots.ctypes.data),
                                  backend, np.int64(sf.ctypes.data), np.int64(4 * sf.shape[1]))
            if rc != 0:
                planes_numba(codes, off, buf, cnt, qa, lut, nbytes, dots)
        for t in range(cnt):
            i = buf[t]
            acc = bias + scale * np.float32(dots[t])
            keys[t] = sign * (add + a_ell * sf[i, 1] + (np.float32(1.0) - a_ell) * sf[i, 2]
                              + a_ip * sf[i, 0] * acc)
    else:
        _exact_hop_keys(buf, cnt, codes, sf, secs, tables, vsp, q, accs, add, n_acc, a_ell,
                        a_ip, sign, keys)


@njit(cache=True, nogil=True)
def _exact_hop_keys(buf, cnt, codes, sf, secs, tables, vsp, q, accs, add, n_acc, a_ell, a_ip,
                    sign, keys):
    """The exact per-hop keys of one node's neighbours: one call per hop with the estimator
    inlined in its loop (inlined into the traversal itself it costs a minute of compile time
    at the first search; called per neighbour it costs a quarter of the search time)."""
    for t in range(cnt):
        i = buf[t]
        exact_accs(codes[i], secs, tables, vsp, q, accs)
        keys[t] = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)


@njit(cache=True, nogil=True)
def _planes_rescore(fptr2, backend, codes, off, res_i, nres, vpad, steps, pbytes, rbuf, rsum):
    """rsum[t] = sum_p steps[p] S_p(row res_i[t]) for t < nres (vq_graph_planes_f32 or its
    numba twin, the same bits)."""
    for t in range(nres):
        rbuf[t] = res_i[t]
    rc = np.int64(-1)
    if fptr2 != 0:
        rc = _call_i64x12(fptr2, np.int64(codes.ctypes.data) + off, np.int64(codes.shape[1]),
                          np.int64(rbuf.ctypes.data), np.int64(nres),
                          np.int64(vpad.ctypes.data), np.int64(steps.ctypes.data),
                          np.int64(steps.shape[0]), pbytes, np.int64(rsum.ctypes.data),
                          backend, np.int64(0), np.int64(0))
    if rc != 0:
        planes_f32_numba(codes, off, rbuf, nres, vpad, steps, pbytes, rsum)


@njit(cache=True, nogil=True)
def _search_queries(q0, q1, hop, coarse, rot, exact, metric, qadd, graph, n_vis, ef, flt,
                    scan_rows, visited, gen, out_keys, out_pos):
    """Queries q0 .. q1-1, one thread; visited uint16 (>= n_vis,) / gen int64 (1,): stamps
    (uint16: the stamps of 100k nodes take 200 kB, which stay in L2 beside the codes).
    A non-empty scan_rows (int32 storage rows) replaces the traversal by a scan of those
    rows with the same per-hop estimates (the ef best are rescored as after a traversal)."""
    levels, offsets, neighbors, cum, entry, max_level = graph
    ok, use_ok = flt
    codes, secs, tables, vsp, sf, n_acc = exact
    a_ell, a_ip = metric
    mode, fptr, fptr2, backend, lut, nbytes, off, tmin, st, bplan = hop
    k = out_keys.shape[1]
    sign = np.float32(1.0) if a_ip < 0 else np.float32(-1.0)
    maxdeg = cum[1]
    accs = np.zeros(MAX_ACC, np.float32)
    cand_k = np.empty(n_vis + 1, np.float32)
    cand_i = np.empty(n_vis + 1, np.int64)
    res_k = np.empty(ef, np.float32)
    res_i = np.empty(ef, np.int64)
    buf = np.empty(maxdeg, np.int32)
    dots = np.empty(maxdeg, np.int32)
    hk = np.empty(maxdeg, np.float32)
    one = np.empty(1, np.int32)
    onek = np.empty(1, np.float32)
    qa = np.zeros(64 * ((max(vsp.shape[2], 8 * nbytes) + 63) // 64), np.int8)
    blut = np.empty(nbytes * 256 if mode == HOP_BYTE else 0, np.float32)
    # HOP_PLANES rescoring: the plane steps t1_p - t0_p, the padded float query, the rows
    planes = mode == HOP_PLANES
    steps = np.zeros(lut.shape[0] if planes else 0, np.float32)
    if planes:
        for s in range(secs.shape[0]):
            steps[(secs[s, 0] - off) // nbytes] = (tables[secs[s, 5] + 1]
                                                   - tables[secs[s, 5]])
    vpad = np.zeros(16 * ((nbytes + 1) // 2) if planes else 0, np.float32)
    rbuf = np.empty(ef if planes else 0, np.int32)
    rsum = np.empty(ef if planes else 0, np.float32)
    # two-stage HOP_PLANES hops: sign-plane keys, full keys only for the neighbours that may
    # enter the kk best (tk / ti: the kk best full keys, rescored at the end)
    rec, recf, fo, lam, kk, w1, rnd = coarse
    two = planes and rec.shape[0] > 0
    tk = np.empty(kk if two else 0, np.float32)
    ti = np.empty(kk if two else 0, np.int64)
    buf2 = np.empty(maxdeg if two else 0, np.int32)
    pos2 = np.empty(maxdeg if two else 0, np.int32)
    dots2 = np.empty(maxdeg if two else 0, np.int32)
    c0 = tmin + st * np.float32(0.5) * np.float32(lut.astype(np.float32).sum()) if two else \
        np.float32(0.0)
    # the hot loop passes raw addresses: an array handed to an inlined helper costs a pair
    # of atomic reference-count updates per call (measured: 8% of a two-stage search)
    lut_rest = lut[1:].copy() if two else np.zeros(0, np.uint8)
    rec_a = np.int64(rec.ctypes.data)
    nbr_a = np.int64(neighbors.ctypes.data)
    off_a = np.int64(offsets.ctypes.data)
    rec_st = np.int64(rec.shape[1])
    codes2_a = np.int64(codes.ctypes.data) + off + nbytes
    codes_st = np.int64(codes.shape[1])
    codes_off_a = np.int64(codes.ctypes.data) + off
    lut_a = np.int64(lut.ctypes.data)
    n_lut = np.int64(lut.shape[0])
    sf_a = np.int64(sf.ctypes.data)
    sf_st = np.int64(4 * sf.shape[1])
    int_hops = mode == HOP_NIBBLE or (planes and not two)
    buf_a = np.int64(buf.ctypes.data)
    buf2_a = np.int64(buf2.ctypes.data)
    dots_a = np.int64(dots.ctypes.data)
    dots2_a = np.int64(dots2.ctypes.data)
    qa_a = np.int64(qa.ctypes.data)
    w1_a = np.int64(w1.ctypes.data)
    rest_a = np.int64(lut_rest.ctypes.data)
    n_rest = np.int64(lut_rest.shape[0])
    w0 = np.int32(lut[0]) if two else np.int32(0)
    lam2 = lam * lam
    two_s = np.float32(0.0)
    ee = np.float32(0.0)
    c0vs = np.float32(0.0)
    vn = np.float32(0.0)
    # HOP_EXACT and HOP_BYTE keys are the exact estimator's: no rescoring of the ef list
    keyed_exactly = mode == HOP_EXACT or mode == HOP_BYTE
    top_k = np.empty(k, np.float32)
    top_i = np.empty(k, np.int64)
    # rot (a few queries): the kernel rotates x[q] into vsp[:, q] and writes qadd[q] itself
    # (driver.rotate_query, prepare_queries_fast's arithmetic), which saves a compiled call
    xq, rsg, rpm, rp, has_proj, psg, ppm, pp, do_rot = rot
    rdim = vsp.shape[2] if do_rot else 0
    xr = np.empty(rdim, np.float32)
    rb1 = np.empty(rdim, np.float32)
    rb2 = np.empty(rdim, np.float32)
    g = gen[0]
    for q in range(q0, q1):
        if do_rot:
            ss = rotate_query(xq, q, rsg, rpm, rp, has_proj, psg, ppm, pp, xr, rb1, rb2, vsp)
            qadd[q] = np.float32(ss) if a_ip < 0 else np.float32(0.0)
        add = qadd[q]
        scale = np.float32(1.0)
        bias = np.float32(0.0)
        if mode == HOP_NIBBLE:
            v = vsp[0, q]
            s = quantize_query_i8(v, 2 * nbytes, qa)
            vs = np.float32(0.0)
            for j in range(2 * nbytes):
                vs += v[j]
            scale = s * st
            bias = tmin * vs
        elif mode == HOP_PLANES:
            v = vsp[0, q]
            s = quantize_query_plain(v, 8 * nbytes, qa)
            vs = np.float32(0.0)
            vn = np.float32(0.0)
            for j in range(8 * nbytes):
                vs += v[j]
                vn += v[j] * v[j]
                vpad[j] = v[j]
            vn = np.float32(np.sqrt(vn))
            scale = s * st
            bias = tmin * vs
            two_s = np.float32(2.0) * s
            ee = s * rnd
            c0vs = c0 * vs
        elif mode == HOP_BYTE:
            byte_lut(bplan, tables, vsp, q, blut)
        qs = (qa, scale, bias, blut)
        nres = 0
        if scan_rows.shape[0] > 0:
            for r0 in range(0, scan_rows.shape[0], maxdeg):
                cnt = min(maxdeg, scan_rows.shape[0] - r0)
                for t in range(cnt):
                    buf[t] = scan_rows[r0 + t]
                _hop_keys(hop, q, qs, codes, sf, exact, metric, add, buf, cnt, dots, hk, accs)
                for t in range(cnt):
                    nres = heap_push(res_k, res_i, nres, hk[t], buf[t])
            size = 0
            if planes:
                _planes_rescore(fptr2, backend, codes, off, res_i, nres, vpad, steps, nbytes,
                                rbuf, rsum)
            for t in range(nres):
                i = res_i[t]
                if planes:
                    accs[0] = bias + rsum[t]
                    key = sign * estimate(add, sf[i], 1, a_ell, a_ip, accs)
                elif keyed_exactly:
                    key = res_k[t]
                else:
                    exact_accs_call(codes[i], secs, tables, vsp, q, accs)
                    key = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)
                size = heap_push(top_k, top_i, size, key, i)
            heap_sorted(top_k, top_i, size, out_keys[q], out_pos[q])
            continue
        g += 1
        if g >= 65535:
            visited[:] = 0
            g = 1
        # ---- greedy descent over the upper levels
        cur = entry
        one[0] = cur
        _hop_keys(hop, q, qs, codes, sf, exact, metric, add, one, 1, dots, onek, accs)
        curk = onek[0]
        for level in range(max_level, 0, -1):
            changed = True
            while changed:
                changed = False
                if levels[cur] <= level:
                    break
                o = offsets[cur]
                cnt = 0
                for t in range(o + cum[level], o + cum[level + 1]):
                    v = neighbors[t]
                    if v < 0:
                        break
                    if v < n_vis:
                        buf[cnt] = v
                        cnt += 1
                _hop_keys(hop, q, qs, codes, sf, exact, metric, add, buf, cnt, dots, hk, accs)
                for t in range(cnt):
                    if hk[t] < curk:
                        curk = hk[t]
                        cur = buf[t]
                        changed = True
        # ---- ef-search at level 0
        nres = 0
        ntop = 0
        visited[cur] = g
        ncand = _minheap_push(cand_k, cand_i, 0, curk, cur)
        if not use_ok or ok[cur] != 0:
            nres = heap_push(res_k, res_i, nres, curk, cur)
            if two:
                ntop = heap_push(tk, ti, ntop, curk, cur)
        b1 = cum[1]
        while ncand > 0:
            ck = cand_k[0]
            c = cand_i[0]
            if nres == ef and ck > res_k[0]:
                break
            ncand = _minheap_pop(cand_k, cand_i, ncand)
            o = offsets[c]
            if ncand > 0:
                # the next candidate's list, most often the next expanded (its load and
                # this prefetch overlap with this hop's work)
                pa = nbr_a + 4 * offsets[cand_i[0]]
                _prefetch(pa)
                _prefetch(pa + 4 * b1 - 4)
            cnt = 0
            for t in range(o, o + b1):
                v = neighbors[t]
                if v < 0:
                    break
                if v >= n_vis or visited[v] == g:
                    continue
                visited[v] = g
                buf[cnt] = v
                cnt += 1
            if cnt == 0:
                continue
            if two:
                thr = tk[0] if ntop == kk else np.float32(np.inf)
                # stage 1: the sign plane of every neighbour, from its record
                rc = np.int64(-1)
                if fptr != 0:
                    rc = _call_i64x12(fptr, rec_a, rec_st, buf_a, cnt, qa_a, w1_a, np.int64(1),
                                      nbytes, dots_a, backend, np.int64(0), np.int64(0))
                if rc != 0:
                    planes_numba(rec, np.int64(0), buf, cnt, qa, w1, nbytes, dots)
                ns = 0
                for t in range(cnt):
                    i = buf[t]
                    f0 = recf[i, fo]
                    f2 = recf[i, fo + 2]
                    key1 = sign * (add + recf[i, fo + 1]
                                   + f0 * (c0vs + f2 * (two_s * np.float32(dots[t]) - vs)))
                    hk[t] = key1
                    if use_ok and ok[i] == 0:
                        continue
                    dd = thr - key1
                    if dd <= 0:
                        e1 = recf[i, fo + 3] * vn
                        e2 = f0 * f2 * ee
                        if dd * dd >= lam2 * (e1 * e1 + e2 * e2):
                            continue
                    buf2[ns] = i
                    pos2[ns] = t
                    ns += 1
                # stage 2: the other planes of the neighbours that may enter the kk best
                if ns > 0:
                    rc = np.int64(-1)
                    if fptr != 0:
                        rc = _call_i64x12(fptr, codes2_a, codes_st, buf2_a, np.int64(ns), qa_a,
                                          rest_a, n_rest, nbytes, dots2_a, backend,
                                          np.int64(0), np.int64(0))
                    if rc != 0:
                        planes_numba(codes, off + nbytes, buf2, np.int64(ns), qa, lut_rest,
                                     nbytes, dots2)
                    for u in range(ns):
                        t = pos2[u]
                        i = buf2[u]
                        acc = bias + scale * np.float32(w0 * dots[t] + dots2[u])
                        kf = sign * (add + recf[i, fo + 1] + recf[i, fo] * acc)
                        hk[t] = kf
                        ntop = heap_push(tk, ti, ntop, kf, i)
            elif int_hops:
                # HOP_NIBBLE / one-stage HOP_PLANES on raw addresses (as the two stages): the
                # same keys as _hop_keys, written out here because that inlined helper's
                # array arguments cost a pair of atomic reference counts per hop
                rc = np.int64(-1)
                if fptr != 0:
                    if mode == HOP_NIBBLE:
                        rc = _call_i64x12(fptr, codes_off_a, codes_st, buf_a, cnt, qa_a, lut_a,
                                          nbytes, dots_a, backend, sf_a, sf_st, np.int64(0))
                    else:
                        rc = _call_i64x12(fptr, codes_off_a, codes_st, buf_a, cnt, qa_a, lut_a,
                                          n_lut, nbytes, dots_a, backend, sf_a, sf_st)
                if rc != 0:
                    if mode == HOP_NIBBLE:
                        dot4_numba(codes, off, buf, cnt, qa, lut, nbytes, dots)
                    else:
                        planes_numba(codes, off, buf, cnt, qa, lut, nbytes, dots)
                for t in range(cnt):
                    i = buf[t]
                    acc = bias + scale * np.float32(dots[t])
                    hk[t] = sign * (add + a_ell * sf[i, 1] + (np.float32(1.0) - a_ell) * sf[i, 2]
                                    + a_ip * sf[i, 0] * acc)
            else:
                _hop_keys(hop, q, qs, codes, sf, exact, metric, add, buf, cnt, dots, hk, accs)
            for t in range(cnt):
                kv = hk[t]
                if nres < ef or kv < res_k[0]:
                    v = buf[t]
                    ncand = _minheap_push(cand_k, cand_i, ncand, kv, v)
                    _prefetch(off_a + 8 * v)  # read if v is expanded
                    if not use_ok or ok[v] != 0:
                        nres = heap_push(res_k, res_i, nres, kv, v)
        # ---- the ef list (two-stage: the kk best full keys) rescored exactly, top k
        size = 0
        if planes:
            pr = ti if two else res_i
            npr = ntop if two else nres
            _planes_rescore(fptr2, backend, codes, off, pr, npr, vpad, steps, nbytes, rbuf,
                            rsum)
            for t in range(npr):
                i = pr[t]
                accs[0] = bias + rsum[t]
                key = sign * estimate(add, sf[i], 1, a_ell, a_ip, accs)
                size = heap_push(top_k, top_i, size, key, i)
        elif keyed_exactly:
            for t in range(nres):
                size = heap_push(top_k, top_i, size, res_k[t], res_i[t])
        else:
            for t in range(nres):
                i = res_i[t]
                exact_accs_call(codes[i], secs, tables, vsp, q, accs)
                key = sign * estimate(add, sf[i], n_acc, a_ell, a_ip, accs)
                size = heap_push(top_k, top_i, size, key, i)
        heap_sorted(top_k, top_i, size, out_keys[q], out_pos[q])
    gen[0] = g


@_dual
def hnsw_search_codes(hop, coarse, rot, exact, metric, qadd, graph, n_vis, ef, flt, scan_rows,
                      visited, gens, out_keys, out_pos):
    """HNSW search of every query over the codes: prange over visited.shape[0] chunks of
    queries (one visit-stamp row each). hop = (mode, fptr, fptr2 (HOP_PLANES: the address of
    vq_graph_planes_f32, the rescoring kernel; 0: its numba twin), backend, lut uint8 (16,;
    HOP_PLANES: the P plane weights), nbytes (HOP_PLANES: bytes per plane),
    byte offset (HOP_BYTE: the first byte of accumulator 1), t_min, s_t, bplan int64 (S, 7):
    HOP_BYTE's sections in byte order) (module docstring); coarse = (rec uint8 (>= n_vis, R),
    recf (its float32 view), fo, lam, kk, w1 uint8 [1], rnd): the two-stage HOP_PLANES hops
    (module docstring; an empty rec turns them off); rot = (x float32 (nq, d), signs, perms,
    p, has_proj, psigns, pperms, pp, do_rot): with do_rot the kernel rotates x[q] into
    vsp[:, q] and writes qadd[q] (driver.rotate_query); exact =
    (codes, secs, tables, vsp, sf, n_acc) as driver.exact_search; graph = (levels, offsets,
    neighbors, cum, entry, max_level); visited uint16 (chunks, >= n_vis); flt = (ok, use_ok);
    scan_rows: see _search_queries. out_keys float32 (nq, k) ascending (+inf pads), out_pos
    int64 storage rows (-1 pads)."""
    nq = out_keys.shape[0]
    nchunks = visited.shape[0]
    for c in prange(nchunks):
        q0 = c * nq // nchunks
        q1 = (c + 1) * nq // nchunks
        if q1 > q0:
            _search_queries(q0, q1, hop, coarse, rot, exact, metric, qadd, graph, n_vis, ef, flt,
                            scan_rows, visited[c], gens[c:c + 1], out_keys, out_pos)
