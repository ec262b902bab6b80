"""How a codec's code maps onto the shared kernels: the exact estimator and the fast-scan layout.

Exact estimator (``exact_tables``): every section's field i is a codeword of ``c`` coordinates
(``Section.table``), so ``<y_hat, v>`` per accumulator is a sum of codeword-query dot products,
computed by ``kernels.driver.exact_accs`` straight from the packed code (no LUT).

Fast-scan layout (``ScanLayout``): the fast scan needs every code as a row of 4-bit sub-codes
whose 16-entry LUTs add up to the estimate. Per section:

* 1-, 2- and 4-bit scalar fields (EDEN, TQmse, RaBitQ's bit planes, TQprod's QJL signs): the
  code's own bitstream nibbles (4 / width fields a nibble); exact.
* other scalar widths: each field gets its own nibble. Up to 16 levels (3 bits) this is exact;
  wider fields (5..8 bits) are mapped onto the 16 levels of a 1-D k-means of their codebook.
* block fields (BlockQuant: one field per k coordinates): each coordinate gets a sub-code of
  ``bc`` bits (1, 2 or 4, the section's bits per coordinate rounded up), 4 / bc coordinates a
  nibble, from a per-coordinate 1-D k-means of the codebook's values. This is a surrogate of
  the exact 256-entry block lookup: the scan ranks with it, and the shortlist is rescored from
  the full code, so results are exact estimates; only the shortlist depth differs
  (``ScanLayout.exact`` tells the index which rerank depth to use).

The nibble LUT of a query is ``LUT[j][x] = sum_r v[coord(j, r)] * E[j, r, x]`` (``build``),
with ``E`` holding the representative value of sub-code ``(x >> r*bc) & (2^bc - 1)`` of the
r-th coordinate of nibble j. Sections are ordered by accumulator, so accumulator a owns the
nibble range ``acc_nib[a] .. acc_nib[a+1]``.
"""
import numpy as np

__all__ = ["ScanLayout", "exact_tables", "kmeans_1d"]


def kmeans_1d(values, k, iters=60):
    """Levels (k,) and the level index of each value: Lloyd's algorithm in one dimension,
    started from quantiles; exact (levels = the distinct values) when there are <= k."""
    vals = np.asarray(values, np.float64)
    uniq = np.unique(vals)
    if uniq.shape[0] <= k:
        levels = np.zeros(k)
        levels[: uniq.shape[0]] = uniq
        return levels, np.searchsorted(uniq, vals)
    levels = np.quantile(vals, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        bounds = (levels[1:] + levels[:-1]) / 2
        cell = np.searchsorted(bounds, vals)
        new = levels.copy()
        for j in range(k):
            sel = vals[cell == j]
            if sel.size:
                new[j] = sel.mean()
        new.sort()
        if np.allclose(new, levels, rtol=0, atol=1e-12):
            break
        levels = new
    bounds = (levels[1:] + levels[:-1]) / 2
    return levels, np.searchsorted(bounds, vals)


def exact_tables(codec):
    """(secs int64 (S, 7), tables float32 1-D) of the exact estimator (kernels.driver)."""
    rows, parts, off = [], [], 0
    for s in codec.sections:
        rows.append((s.byte_off, s.width, s.count, s.acc, s.space, off, s.coords))
        t = np.ascontiguousarray(s.table, np.float32).reshape(-1)
        parts.append(t)
        off += t.shape[0]
    return (np.array(rows, np.int64).reshape(-1, 7),
            np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32))


class _Part:
    """The nibbles of one section."""

    def __init__(self, s):
        self.s = s
        c, w = s.coords, s.width
        ncoord = s.count * c
        if c == 1 and w in (1, 2, 4):
            self.kind = "stream"
            self.bc = w
            self.exact = True
            reps = [np.asarray(s.table[:, 0], np.float64)]
            self.maps = None
        else:
            per = w / c
            self.bc = 1 if per <= 1 else (2 if per <= 2 else 4)
            self.kind = "map"
            reps, maps, exact = [], [], True
            for t in range(c):
                lev, assign = kmeans_1d(s.table[:, t], 1 << self.bc)
                exact &= bool(np.allclose(lev[assign], s.table[:, t], rtol=0, atol=0))
                reps.append(lev)
                maps.append(assign.astype(np.uint8))
            self.maps = np.stack(maps, axis=1)  # (2^w, c) sub-code of each coordinate
            self.exact = exact
        self.g = 4 // self.bc
        self.nn = -(-ncoord // self.g)
        # E (nn, g, 16) and coordinate index (nn, g) (-1: padding)
        x = np.arange(16)
        e = np.zeros((self.nn, self.g, 16), np.float64)
        cidx = np.full((self.nn, self.g), -1, np.int64)
        mask = (1 << self.bc) - 1
        for r in range(self.g):
            j = np.arange(self.nn) * self.g + r
            ok = j < ncoord
            cidx[ok, r] = j[ok]
            sub = (x >> (r * self.bc)) & mask
            for t in range(c):
                rows = ok & (j % c == t)
                e[rows, r, :] = reps[t][sub][None, :]
        self.E = e.astype(np.float32)
        self.cidx = cidx

    def nibbles(self, codes, out, col):
        """Write the (n, nn) nibbles of this section's fields into out[:, col:col+nn]."""
        from ..kernels import bits as _bits
        s = self.s
        n = codes.shape[0]
        if self.kind == "stream":
            b = codes[:, s.byte_off: s.byte_off + (self.nn + 1) // 2]
            lo = b & 15
            hi = b >> 4
            out[:, col: col + self.nn: 2] = lo[:, : (self.nn + 1) // 2]
            if self.nn > 1:
                out[:, col + 1: col + self.nn: 2] = hi[:, : self.nn // 2]
            return
        f = np.empty((n, s.count), np.uint16)
        _bits.unpack_fields(np.ascontiguousarray(codes), s.byte_off, s.width, s.count, f)
        sub = self.maps[f].reshape(n, -1)  # (n, count*c)
        pad = self.nn * self.g - sub.shape[1]
        if pad:
            sub = np.concatenate([sub, np.zeros((n, pad), np.uint8)], axis=1)
        sub = sub.reshape(n, self.nn, self.g)
        nib = np.zeros((n, self.nn), np.uint8)
        for r in range(self.g):
            nib |= (sub[:, :, r] << (r * self.bc)).astype(np.uint8)
        out[:, col: col + self.nn] = nib


class ScanLayout:
    """The fast-scan sub-code layout of a codec (module docstring)."""

    def __init__(self, codec):
        order = sorted(range(len(codec.sections)), key=lambda i: codec.sections[i].acc)
        self.parts = [_Part(codec.sections[i]) for i in order]
        self.n_acc = codec.n_acc
        acc_nib = [0] * (self.n_acc + 1)
        for p in self.parts:
            acc_nib[p.s.acc + 1] += p.nn
        self.acc_nib = np.cumsum(acc_nib).astype(np.int64)
        self.m = int(self.acc_nib[-1])
        self.exact = all(p.exact for p in self.parts)
        gmax = max(p.g for p in self.parts)
        self.E = np.zeros((self.m, gmax, 16), np.float32)
        self.cidx = np.full((self.m, gmax), -1, np.int64)
        self.space = np.zeros(self.m, np.int64)
        col = 0
        self._cols = []
        for p in self.parts:
            self.E[col: col + p.nn, : p.g] = p.E
            self.cidx[col: col + p.nn, : p.g] = p.cidx
            self.space[col: col + p.nn] = p.s.space
            self._cols.append(col)
            col += p.nn
        # the fast-scan block stride: whole 64-byte lines
        self.bstride = 16 * self.m

    def nibbles(self, codes):
        """uint8 (n, m) sub-codes of full codes (n, code_size)."""
        out = np.zeros((codes.shape[0], self.m), np.uint8)
        for p, col in zip(self.parts, self._cols):
            p.nibbles(codes, out, col)
        return out

    def blocks(self, codes):
        """Block-packed sub-codes (ceil(n/32), bstride) of full codes, in bounded chunks."""
        from ..kernels import fastscan as fs
        n = codes.shape[0]
        nb = -(-n // fs.BLOCK)
        out = np.empty((nb, self.bstride), np.uint8)
        step = 8192
        for s0 in range(0, n, step):
            e = min(n, s0 + step)
            out[s0 // fs.BLOCK: -(-e // fs.BLOCK)] = fs.pack_blocks(self.nibbles(codes[s0:e]))
        return out
