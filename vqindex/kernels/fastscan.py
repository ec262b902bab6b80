"""4-bit LUT fast-scan: block-packed codes scanned against uint8 lookup tables.

A code is a sequence of ``m`` 4-bit sub-codes (nibbles); nibble ``j`` is bits 4j..4j+3 of
the bitstream (byte ``j >> 1``, low nibble first).  A query has a table ``LUT[j][16]`` and
the score of a vector is ``sum_j LUT[j][nibble_j]``.  Fast-scan quantizes the LUT to uint8
(:func:`quantize_lut`) and reorganises codes into blocks of 32 vectors (:func:`pack_blocks`)
so that one SIMD byte shuffle looks up the nibbles of 32 vectors at once; sums are
accumulated in uint16.

Block layout (``pack_blocks``): ``nblocks = ceil(n / 32)`` blocks of ``m * 16`` bytes; byte
``16*j + i`` of block ``b`` is::

    (nibble j of vector 32*b + i)  |  (nibble j of vector 32*b + 16 + i) << 4     i = 0..15

i.e. 16 consecutive bytes carry sub-quantizer ``j`` for all 32 vectors (vectors 0-15 in
the low nibbles, 16-31 in the high nibbles).  A 256-bit load covers sub-quantizers j, j+1
(one per 128-bit lane), a 512-bit load j..j+3, and the LUT of a query (``m*16`` bytes,
``LUT[j][x]`` at ``16*j + x``) is used with the same offsets, so no LUT repacking is needed.
Padding vectors of the last block are zero codes; their accumulators are never returned.

Backends of :func:`scan` (all bit-identical, results are the sums modulo 2**16, which are
exact for LUTs from :func:`quantize_lut`):

* ``"avx512vnni"`` -- AVX-512 VBMI + VNNI: the 64 code bytes of 4 sub-quantizers are
  transposed once per query group (vpermb) so that a 64-entry vpermb lookup + vpdpbusd
  accumulate 4 sub-quantizers of 16 vectors into int32 per 2 instructions.
* ``"avx512"`` -- AVX-512 F+BW: vpshufb on 4 sub-quantizers at once, uint16 accumulation
  (FAISS trick: A += r as 16-bit words, B += r >> 8, even bytes = A - (B << 8)).
* ``"avx2"`` -- same with 256-bit registers.
* ``"scalar"`` -- portable C.
* ``"numba"`` -- the reference implementation below (used when the library is missing).

The C kernels batch queries: a group of queries (8 for avx512vnni, 4 for avx512, 2 for
avx2; remainders in groups of 4/2/1) is scanned against each block with all accumulators
in registers, so each 64-byte code load serves the whole group.  Blocks are swept in
L2-sized chunks (~384 KB of codes) by every query group; for large m the LUTs of a group
are further cut into 16 KB tiles (L1) with the accumulators parked in a small buffer
between tiles.  ``num_threads`` splits the blocks (or, for few blocks, the queries) over
pthreads; ctypes releases the GIL during the call.

Measured on the 2-core AMD EPYC (Zen 4) dev box, d=384 at 4 bits (m=384), n=100k,
nq=1000, one thread, per CPU-second: avx512vnni ~300 M code-query pairs/s (~115 G
lookups/s), avx512 ~220 M, avx2 ~190 M, scalar C ~9 M, numba ~5 M; a float per-byte LUT
numba scan does ~8 M.  With nq=1 the scan is memory-bound (~150-200 M pairs/s).
"""
import concurrent.futures

import numpy as np
from numba import njit

from . import native as _native

__all__ = [
    "BLOCK",
    "pack_blocks",
    "nibbles_from_bitstream",
    "pack_bitstream_blocks",
    "quantize_lut",
    "quantization_error_bound",
    "scan",
    "scan_reference",
    "available_backends",
]

BLOCK = 32
_NATIVE_ORDER = ("avx512vnni", "avx512", "avx2", "scalar")


# --------------------------------------------------------------------------- packing

def _nblocks(n):
    return (int(n) + BLOCK - 1) // BLOCK


def pack_blocks(nibble_codes):
    """Pack uint8 (n, m) nibbles (values 0..15) into uint8 (ceil(n/32), m*16) blocks.

    See the module docstring for the layout.  Values above 15 are masked to 4 bits.
    """
    c = np.asarray(nibble_codes)
    if c.ndim != 2:
        raise ValueError(f"nibble_codes must be 2-D (n, m); got shape {c.shape}")
    if c.dtype.kind not in "ui":
        raise TypeError(f"nibble_codes must be an integer array, got {c.dtype}")
    n, m = c.shape
    nb = _nblocks(n)
    padded = np.zeros((nb * BLOCK, m), dtype=np.uint8)
    padded[:n] = c & 15
    p = padded.reshape(nb, 2, 16, m)
    packed = p[:, 0] | (p[:, 1] << 4)  # (nb, 16, m): byte i of sub-quantizer j
    return np.ascontiguousarray(packed.transpose(0, 2, 1)).reshape(nb, m * 16)


def _check_bitstream(codes, m):
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8:
        raise ValueError(f"codes must be uint8 (n, nbytes); got {codes.dtype} {codes.shape}")
    m = int(m)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    if codes.shape[1] * 2 < m:
        raise ValueError(f"codes have {codes.shape[1]} bytes per vector, "
                         f"need >= {(m + 1) // 2} for m={m} nibbles")
    return codes, m


def nibbles_from_bitstream(codes, m):
    """Extract the m nibbles of bitstream codes: uint8 (n, nbytes) -> uint8 (n, m).

    Nibble j is byte j >> 1; the low nibble when j is even, the high nibble when odd.
    """
    codes, m = _check_bitstream(codes, m)
    n = codes.shape[0]
    b = codes[:, : (m + 1) // 2]
    out = np.empty((n, 2 * b.shape[1]), dtype=np.uint8)
    np.bitwise_and(b, 15, out=out[:, 0::2])
    np.right_shift(b, 4, out=out[:, 1::2])
    return out[:, :m] if out.shape[1] != m else out


def pack_bitstream_blocks(codes, m, chunk=8192):
    """``pack_blocks(nibbles_from_bitstream(codes, m))`` in chunks of `chunk` vectors
    (bounded temporary memory instead of an (n, m) intermediate)."""
    codes, m = _check_bitstream(codes, m)
    n = codes.shape[0]
    nb = _nblocks(n)
    out = np.empty((nb, m * 16), dtype=np.uint8)
    chunk = max(BLOCK, (int(chunk) // BLOCK) * BLOCK)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out[s // BLOCK: _nblocks(e)] = pack_blocks(nibbles_from_bitstream(codes[s:e], m))
    return out


# --------------------------------------------------------------------------- LUT

def quantize_lut(lut):
    """Quantize float LUTs (nq, m, 16) to uint8 with one affine map per query.

    Returns ``(lut_u8 uint8 (nq, m, 16), scale float32 (nq,), bias float32 (nq,))`` with::

        score(v) = sum_j lut[q, j, nibble_j(v)] ~= bias[q] + scale[q] * acc(v),
        acc(v)   = sum_j lut_u8[q, j, nibble_j(v)]

    Per (q, j) the minimum over the 16 entries is subtracted (``bias = sum_j min``), then
    ``scale = max(sum_j range_j / (65535 - m), max_j range_j / 255)`` and the entries are
    rounded, so every entry is <= 255 and ``sum_j max_x lut_u8[j, x] <= 65535`` (no uint16
    overflow of any accumulator).  Error bound (see :func:`quantization_error_bound`):
    ``|score - (bias + scale * acc)| <= m * scale / 2`` (rounding), plus float32 rounding
    of bias/scale.  Requires m < 65535.
    """
    a = np.asarray(lut)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[2] != 16:
        raise ValueError(f"lut must be (nq, m, 16); got shape {np.shape(lut)}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("lut contains NaN or Inf")
    nq, m, _ = a.shape
    if m >= 65535:
        raise ValueError(f"m={m} too large for uint16 accumulation")
    lut_u8 = np.empty((nq, m, 16), np.uint8)
    scale = np.empty(nq, np.float64)
    bias = np.empty(nq, np.float64)
    _quantize_lut_numba(a, lut_u8, scale, bias)
    return lut_u8, scale.astype(np.float32), bias.astype(np.float32)


@njit(cache=True, nogil=True, fastmath={"nnan", "ninf", "nsz"})
def quantize_query(lut, acc_nib, lut_max, out, scale, bias):
    """uint8 LUT of one query (lut float32 (m, 16) -> out uint8 (m, 16)), one affine map per
    accumulator a (scale[a], bias[a]): per nibble the minimum is subtracted (bias = their
    sum), then scale = max(sum of ranges / (65535 - m_a), max range / lut_max) and entries
    are rounded (half up), so no entry exceeds lut_max and no uint16 sum overflows. Rounding
    error of a sum: at most m_a * scale / 2.

    The entries are mapped in float32 (the ranges and the affine map in float64): the loops
    vectorise (fastmath only drops NaN / signed-zero handling, and the LUTs of validated
    queries are finite); float32's relative error of 6e-8 moves an entry across a rounding
    boundary only where it is within 2e-5 of one, which the bound's half unit absorbs."""
    m = lut.shape[0]
    f = lut.ravel()  # read only (a copy where lut is not contiguous)
    o = out.ravel()  # written: must be a view (out typed C-contiguous, as every caller's is)
    if o.ctypes.data != out.ctypes.data:
        raise ValueError("quantize_query: out must be C-contiguous")
    # the extremes are exact in float32 and the ranges are taken in float64, so scale and
    # bias are the float64 values the entries' range gives; only the mapping is float32
    mins = np.empty(m, np.float32)
    rngs = np.empty(m, np.float64)
    for j in range(m):
        lo = np.float32(np.inf)
        hi = np.float32(-np.inf)
        for x in range(16):
            v = np.float32(f[16 * j + x])
            lo = min(lo, v)
            hi = max(hi, v)
        mins[j] = lo
        rngs[j] = np.float64(hi) - np.float64(lo)
    lm = np.float32(lut_max)
    half = np.float32(0.5)
    for a in range(acc_nib.shape[0] - 1):
        j0 = acc_nib[a]
        j1 = acc_nib[a + 1]
        rsum = 0.0
        rmax = 0.0
        b = 0.0
        for j in range(j0, j1):
            b += np.float64(mins[j])
            r = rngs[j]
            rsum += r
            if r > rmax:
                rmax = r
        sc = max(rsum / (65535.0 - (j1 - j0)), rmax / lut_max)
        if not sc > 0:
            sc = 1.0
        inv = np.float32(1.0 / sc)
        for j in range(j0, j1):
            mn = mins[j]
            for x in range(16):
                v = (np.float32(f[16 * j + x]) - mn) * inv + half  # >= 0.5: rounds half up
                o[16 * j + x] = np.uint8(np.int32(min(v, lm)))
        scale[a] = sc
        bias[a] = b


@njit(cache=True, nogil=True)
def _quantize_lut_numba(a, out, scale, bias):  # pragma: no cover - compiled
    """Kernel of quantize_lut: one accumulator, entries <= 255."""
    acc_nib = np.array([0, a.shape[1]], np.int64)
    for q in range(a.shape[0]):
        quantize_query(a[q], acc_nib, 255.0, out[q], scale[q:q + 1], bias[q:q + 1])


def quantization_error_bound(scale, m):
    """Max |float score - (bias + scale*acc)| from rounding: m * scale / 2 (per query)."""
    return np.asarray(scale, dtype=np.float64) * (int(m) / 2.0)


# --------------------------------------------------------------------------- numba

@njit(cache=True, nogil=True)
def _scan_numba(blocks, b0, b1, n, m, lut, out):  # pragma: no cover - compiled
    nq = lut.shape[0]
    acc = np.zeros(32, dtype=np.uint32)
    for b in range(b0, b1):
        base = b * 32
        nv = min(32, n - base)
        for q in range(nq):
            acc[:] = 0
            for j in range(m):
                o = 16 * j
                for i in range(16):
                    c = blocks[b, o + i]
                    acc[i] += lut[q, j, c & 15]
                    acc[i + 16] += lut[q, j, c >> 4]
            for i in range(nv):
                out[q, base + i] = acc[i] & 0xFFFF


def scan_reference(blocks, n, lut_u8):
    """Pure numpy reference (slow; for tests): uint16 (nq, n) sums modulo 2**16."""
    blocks = np.asarray(blocks, dtype=np.uint8)
    lut_u8 = np.asarray(lut_u8, dtype=np.uint8)
    nq, m, _ = lut_u8.shape
    nb = blocks.shape[0]
    p = blocks.reshape(nb, m, 16)
    nib = np.concatenate([p & 15, p >> 4], axis=2)  # (nb, m, 32)
    nib = nib.transpose(0, 2, 1).reshape(nb * 32, m)[:n]  # (n, m)
    acc = np.zeros((nq, n), dtype=np.uint64)
    for j in range(m):
        acc += lut_u8[:, j, :][:, nib[:, j]]
    return (acc & 0xFFFF).astype(np.uint16)


# --------------------------------------------------------------------------- dispatch

def available_backends():
    """Backends usable here, best first (``"numba"`` is always last and always there)."""
    names = []
    lib = _native.lib
    if lib is not None:
        try:
            mask = int(lib.fs_available_backends())
        except Exception:  # pragma: no cover
            mask = 0
        for name in _NATIVE_ORDER:
            if mask & (1 << _native.BACKEND_IDS[name]):
                names.append(name)
    names.append("numba")
    return names


def _check_scan_args(blocks, n, lut_u8, out):
    blocks = np.asarray(blocks)
    lut_u8 = np.asarray(lut_u8)
    if blocks.dtype != np.uint8 or blocks.ndim != 2:
        raise ValueError(f"blocks must be uint8 (nblocks, m*16); got {blocks.dtype} {blocks.shape}")
    if lut_u8.dtype != np.uint8:
        raise ValueError(f"lut_u8 must be uint8, got {lut_u8.dtype} (use quantize_lut)")
    if lut_u8.ndim == 2:
        lut_u8 = lut_u8[None]
    if lut_u8.ndim != 3 or lut_u8.shape[2] != 16:
        raise ValueError(f"lut_u8 must be (nq, m, 16); got shape {lut_u8.shape}")
    nq, m, _ = lut_u8.shape
    if m < 1:
        raise ValueError("m must be >= 1")
    if blocks.shape[1] != m * 16:
        raise ValueError(f"blocks have {blocks.shape[1]} bytes per block, lut implies m={m} "
                         f"({m * 16} bytes)")
    n = int(n)
    if n < 0 or n > blocks.shape[0] * BLOCK:
        raise ValueError(f"n={n} does not fit in {blocks.shape[0]} blocks of {BLOCK}")
    blocks = np.ascontiguousarray(blocks)
    lut_u8 = np.ascontiguousarray(lut_u8)
    if out is None:
        out = np.empty((nq, n), dtype=np.uint16)
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != np.uint16 or out.shape != (nq, n)
                or (n > 1 and out.strides[1] != 2) or out.strides[0] % 2
                or (nq > 1 and out.strides[0] < 2 * n) or not out.flags.writeable):
            raise ValueError(f"out must be a writable uint16 ({nq}, {n}) array with "
                             "contiguous rows")
    return blocks, n, lut_u8, out


def scan(blocks, n, lut_u8, out=None, num_threads=1, backend="auto"):
    """Accumulators ``acc[q, v] = sum_j lut_u8[q, j, nibble_j(v)]`` (uint16, (nq, n)).

    `blocks` from :func:`pack_blocks` (``n`` valid vectors), `lut_u8` uint8 (nq, m, 16)
    from :func:`quantize_lut`.  `backend`: "auto" (best of :func:`available_backends`),
    "avx512vnni", "avx512", "avx2", "scalar" (native C) or "numba"; ValueError if the
    requested one is unavailable.  `num_threads` >= 1 threads (None/0: all cores).
    """
    names = available_backends()
    if backend == "auto":
        backend = names[0]
    if backend not in names:
        raise ValueError(f"fast-scan backend {backend!r} is not available here; "
                         f"available: {names}")
    blocks, n, lut_u8, out = _check_scan_args(blocks, n, lut_u8, out)
    nq, m, _ = lut_u8.shape
    if num_threads is None or num_threads <= 0:
        import os
        num_threads = os.cpu_count() or 1
    num_threads = int(num_threads)
    if nq == 0 or n == 0:
        return out
    nb = _nblocks(n)
    if backend != "numba":
        lib = _native.lib
        ldo = out.strides[0] // 2 if nq > 1 else n
        rc = lib.fs_scan(blocks.ctypes.data, nb, n, m, lut_u8.ctypes.data, nq,
                         out.ctypes.data, ldo, _native.BACKEND_IDS[backend], num_threads)
        if rc < 0:
            raise ValueError(f"native fs_scan failed (rc={rc}) for backend {backend!r}")
        return out
    if num_threads <= 1 or nb < 2:
        _scan_numba(blocks, 0, nb, n, m, lut_u8, out)
    else:
        t = min(num_threads, nb)
        bounds = [nb * i // t for i in range(t + 1)]
        with concurrent.futures.ThreadPoolExecutor(t) as ex:
            futs = [ex.submit(_scan_numba, blocks, bounds[i], bounds[i + 1], n, m, lut_u8, out)
                    for i in range(t)]
            for f in futs:
                f.result()
    return out


# --------------------------------------------------------------------------- scan_q

@njit(cache=True, nogil=True)
def scan_q_numba(blocks, b_off, block_stride, nblocks, n, m, lut, l_off, lut_stride, qidx,
                 out):  # pragma: no cover - compiled
    """Reference of the native ``fs_scan_q`` kernel (the driver's scan primitive).

    blocks: uint8 1-D buffer; nibble j of block b (layout of :func:`pack_blocks`) is the 16
    bytes at ``b_off + b*block_stride + 16*j``, j < m, b < nblocks (n <= 32*nblocks valid
    vectors).  lut: uint8 1-D buffer; query t uses ``LUT[j][x]`` at
    ``l_off + qidx[t]*lut_stride + 16*j + x``.  out: uint16 2-D, ``out[t, v]`` (v < n) gets
    ``sum_j LUT_t[j][nibble_j(v)]`` modulo 2**16.
    """
    nq = qidx.shape[0]
    acc = np.zeros(32, dtype=np.uint32)
    for b in range(nblocks):
        base = b * 32
        nv = min(32, n - base)
        if nv <= 0:
            break
        o0 = b_off + b * block_stride
        for t in range(nq):
            lo = l_off + qidx[t] * lut_stride
            acc[:] = 0
            for j in range(m):
                o = o0 + 16 * j
                lj = lo + 16 * j
                for i in range(16):
                    c = blocks[o + i]
                    acc[i] += lut[lj + (c & 15)]
                    acc[i + 16] += lut[lj + (c >> 4)]
            for i in range(nv):
                out[t, base + i] = acc[i] & 0xFFFF
