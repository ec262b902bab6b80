"""fs_scan_q (native/fastscan.c, the driver's scan primitive) vs its numba reference.

Every backend (native ones only when the library is built) must match
``kernels.fastscan.scan_q_numba`` bit for bit on strided blocks, LUT rows picked by index,
ragged n, padded output rows, wrapping sums; nothing outside out[t, :n] may be written.
The fast modes (flags in bits 8.. of the backend: FS_FLAG_LUT7 = 1 for LUT entries <= 127,
FS_FLAG_LUT6 = 2 for entries <= 63) must give the same bits for LUTs within their bound.
"""
import ctypes
import mmap
import sys

import numpy as np
import pytest

from vqindex import _native
from vqindex.kernels import fastscan as fs

LIB = _native.lib
HAS_Q = LIB is not None and hasattr(LIB, "fs_scan_q")
BACKENDS = fs.available_backends()
NATIVE = [b for b in BACKENDS if b != "numba"]
SENT = 0xBEEF
GUARD = 2  # sentinel rows around the output
FS_FLAG_LUT7 = 1  # backend |= flag << 8: every LUT entry <= 127
FS_FLAG_LUT6 = 2  # every LUT entry <= 63
FLAG_MAX = {0: 255, FS_FLAG_LUT7: 127, FS_FLAG_LUT6: 63}  # largest LUT entry per flag
FLAGS = [FS_FLAG_LUT7, FS_FLAG_LUT6]


def _native_scan(backend, blocks, b_off, bstride, nblocks, n, m, lut, l_off, lstride, qidx,
                 out, flags=0):
    """Call fs_scan_q on 1-D buffers with byte offsets (the driver's call)."""
    qidx = np.ascontiguousarray(qidx, dtype=np.int64)
    return LIB.fs_scan_q(blocks.ctypes.data + b_off, bstride, nblocks, n, m,
                         lut.ctypes.data + l_off, lstride, qidx.ctypes.data, len(qidx),
                         out.ctypes.data, out.shape[1],
                         _native.BACKEND_IDS[backend] | (flags << 8))


def _case(seed, m=None, full_lut=False, lut_max=255):
    """Random strided blocks / LUT rows / qidx with repeats / padded output."""
    rng = np.random.default_rng(seed)
    if m is None:
        m = int(rng.choice([1, 2, 3, 16, 50, 100, 384, 1000]))
    nblocks = int(rng.integers(1, 41))
    n = 32 * (nblocks - 1) + int(rng.integers(1, 33))  # 1..32 vectors in the last block
    if rng.random() < 0.25:
        nblocks += int(rng.integers(1, 3))  # blocks past ceil(n/32) must be ignored
    nq = int(rng.integers(1, 34))
    bstride = 16 * m + 16 * int(rng.choice([0, 1, 3, 10]))
    b_off = 16 * int(rng.integers(0, (bstride - 16 * m) // 16 + 1)) + int(rng.integers(0, 3))
    blocks = rng.integers(0, 256, b_off + nblocks * bstride + 8, dtype=np.uint8)
    nl = int(rng.integers(1, 40))
    lstride = 16 * m + int(rng.choice([0, 16, 48, 1]))
    l_off = int(rng.integers(0, 70))
    if full_lut:
        lut = np.full(l_off + nl * lstride + 5, lut_max, np.uint8)
    else:
        lut = rng.integers(0, lut_max + 1, l_off + nl * lstride + 5, dtype=np.uint8)
    qidx = rng.integers(0, nl, nq)
    qidx[: min(nq, nl)] = rng.permutation(nl)[: min(nq, nl)]
    if nq > 1:
        qidx[-1] = qidx[0]  # a repeat
    ldo = n + int(rng.integers(1, 40))
    return dict(blocks=blocks, b_off=b_off, bstride=bstride, nblocks=nblocks, n=n, m=m,
                lut=lut, l_off=l_off, lstride=lstride, qidx=qidx, ldo=ldo)


def _reference(c):
    nq = len(c["qidx"])
    out = np.full((nq + 2 * GUARD, c["ldo"]), SENT, np.uint16)
    fs.scan_q_numba(c["blocks"], c["b_off"], c["bstride"], c["nblocks"], c["n"], c["m"],
                    c["lut"], c["l_off"], c["lstride"], c["qidx"].astype(np.int64),
                    out[GUARD:GUARD + nq])
    return out


def _run(backend, c, flags=0):
    nq = len(c["qidx"])
    out = np.full((nq + 2 * GUARD, c["ldo"]), SENT, np.uint16)
    rc = _native_scan(backend, c["blocks"], c["b_off"], c["bstride"], c["nblocks"], c["n"],
                      c["m"], c["lut"], c["l_off"], c["lstride"], c["qidx"],
                      out[GUARD:GUARD + nq], flags)
    assert rc == 0
    return out


def _check(got, ref, c):
    nq, n = len(c["qidx"]), c["n"]
    # sentinels: guard rows and the padding past n of every row are untouched
    assert (got[:GUARD] == SENT).all() and (got[GUARD + nq:] == SENT).all()
    assert (got[GUARD:GUARD + nq, n:] == SENT).all()
    np.testing.assert_array_equal(got, ref)


needs_lib = pytest.mark.skipif(not HAS_Q, reason="native fs_scan_q not built")


def test_reference_matches_scan_reference():
    """scan_q_numba on contiguous blocks / rows = the plain fast-scan reference."""
    rng = np.random.default_rng(5)
    n, m, nq = 77, 13, 4
    nib = rng.integers(0, 16, (n, m), dtype=np.uint8)
    lut = rng.integers(0, 256, (nq, m, 16), dtype=np.uint8)
    blocks = fs.pack_blocks(nib)
    out = np.zeros((nq, n), np.uint16)
    fs.scan_q_numba(blocks.reshape(-1), 0, 16 * m, blocks.shape[0], n, m, lut.reshape(-1), 0,
                    16 * m, np.arange(nq, dtype=np.int64), out)
    np.testing.assert_array_equal(out, fs.scan_reference(blocks, n, lut))


@needs_lib
@pytest.mark.parametrize("backend", NATIVE + ["auto"])
@pytest.mark.parametrize("seed", range(24))
def test_matches_numba(backend, seed):
    c = _case(1000 + seed)
    _check(_run(backend, c), _reference(c), c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("m", [1, 2, 3, 16, 50, 100, 384, 1000])
def test_every_m(backend, m):
    c = _case(77 + m, m=m)
    _check(_run(backend, c), _reference(c), c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("m", [255, 256, 257, 258, 1000])
def test_worst_case_lut_wraps(backend, m):
    """All-255 LUT: 255*m is exactly 65535 at m = 257 and wraps modulo 2**16 above."""
    c = _case(300 + m, m=m, full_lut=True)
    ref = _reference(c)
    nq, n = len(c["qidx"]), c["n"]
    assert (ref[GUARD:GUARD + nq, :n] == (255 * m) % 65536).all()
    _check(_run(backend, c), ref, c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("nq", [1, 2, 3, 4, 5, 6, 7, 8, 32, 33])
def test_query_group_remainders(backend, nq):
    """Every query-group split (groups of 3, remainders 2 / 1, pre-split codes or not)."""
    c = _case(500 + nq, m=[50, 7, 384][nq % 3])
    c["qidx"] = np.random.default_rng(nq).integers(0, 5, nq)
    c["lut"] = np.resize(c["lut"], max(len(c["lut"]), c["l_off"] + 5 * c["lstride"]))
    _check(_run(backend, c), _reference(c), c)


def _guarded(nbytes):
    """A writable uint8 array of nbytes ending right before an inaccessible page (reading
    one byte past it segfaults), or None where that cannot be arranged."""
    if not sys.platform.startswith("linux"):
        return None
    page = mmap.PAGESIZE
    total = (nbytes + page - 1) // page * page + page
    buf = mmap.mmap(-1, total, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(addr + total - page, page, 0) != 0:
        return None
    arr = np.frombuffer(buf, np.uint8, count=total - page)
    return arr[total - page - nbytes:], buf


@needs_lib
@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("m", [1, 3, 5, 7, 16, 101, 103, 401])
@pytest.mark.parametrize("nq", [1, 2, 9])
@pytest.mark.parametrize("flags", [0] + FLAGS)
def test_no_read_past_last_block_or_row(backend, m, nq, flags):
    """The last block and the last LUT row end at a guard page (odd m: 16-byte tail)."""
    c = _case(900 + m, m=m, lut_max=FLAG_MAX[flags])
    c["qidx"] = np.resize(c["qidx"], nq)
    nblocks, bstride = c["nblocks"], c["bstride"]
    nb_used = (c["n"] + 31) // 32
    blen = (nb_used - 1) * bstride + 16 * m
    g = _guarded(blen)
    if g is None:
        pytest.skip("no guard pages here")
    gb, keep_b = g
    gb[:] = c["blocks"][c["b_off"]:c["b_off"] + blen]
    qidx = c["qidx"]
    nl = int(qidx.max()) + 1
    llen = (nl - 1) * c["lstride"] + 16 * m
    gl, keep_l = _guarded(llen)
    gl[:] = c["lut"][c["l_off"]:c["l_off"] + llen]
    c.update(blocks=gb, b_off=0, nblocks=min(nblocks, nb_used), lut=gl, l_off=0)
    ref = _reference(c)
    _check(_run(backend, c, flags), ref, c)
    del gb, gl, keep_b, keep_l


# ---------------------------------------------------------------- fast modes (flags)

@needs_lib
@pytest.mark.parametrize("backend", NATIVE + ["auto"])
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("seed", range(16))
def test_flag_matches_numba(backend, flags, seed):
    """Random LUTs with entries in [0, 127] (LUT7) / [0, 63] (LUT6): the same bits."""
    c = _case(2000 + seed, lut_max=FLAG_MAX[flags])
    _check(_run(backend, c, flags), _reference(c), c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE + ["auto"])
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("m", list(range(1, 20)) + [31, 32, 33, 100, 191, 192, 383, 384, 385])
def test_flag_every_m(backend, flags, m):
    """Every m mod 8 (the sub-quantizers past the last group of 2 / 4 pairs, odd m)."""
    c = _case(3000 + m, m=m, lut_max=FLAG_MAX[flags])
    _check(_run(backend, c, flags), _reference(c), c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE + ["auto"])
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("m", [257, 515, 516, 517, 518, 1040, 1041, 1043, 1600])
def test_flag_worst_case_lut_wraps(backend, flags, m):
    """LUT all at the bound: 127*m wraps modulo 2**16 from m = 517, 63*m from m = 1041;
    m = 1600 has no room for the pre-split buffer (the direct LUT7 kernel)."""
    top = FLAG_MAX[flags]
    c = _case(4000 + m, m=m, full_lut=True, lut_max=top)
    ref = _reference(c)
    nq, n = len(c["qidx"]), c["n"]
    assert (ref[GUARD:GUARD + nq, :n] == (top * m) % 65536).all()
    _check(_run(backend, c, flags), ref, c)


@needs_lib
@pytest.mark.parametrize("backend", NATIVE)
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("nq", [1, 2, 3, 4, 5, 7, 8, 16, 32, 33])
def test_flag_query_group_remainders(backend, flags, nq):
    """Groups of 3 / 2 / 1 queries, pre-split buffer or direct, with the flags."""
    c = _case(5000 + nq, m=[50, 7, 384, 101][nq % 4], lut_max=FLAG_MAX[flags])
    c["qidx"] = np.random.default_rng(nq).integers(0, 5, nq)
    c["lut"] = np.resize(c["lut"], max(len(c["lut"]), c["l_off"] + 5 * c["lstride"]))
    _check(_run(backend, c, flags), _reference(c), c)


@needs_lib
def test_unknown_flags_rejected():
    """Flag bits other than LUT7 / LUT6 (and negative backends) return -1, write nothing."""
    c = _case(43, m=8, lut_max=63)
    q = np.zeros(3, np.int64)
    out = np.full((3, 40), SENT, np.uint16)

    def call(backend):
        return LIB.fs_scan_q(c["blocks"].ctypes.data, c["bstride"], 1, 20, 8,
                             c["lut"].ctypes.data, c["lstride"], q.ctypes.data, 3,
                             out.ctypes.data, 40, backend)

    for bid in _native.BACKEND_IDS.values():
        for bad in (4, 8, 16, 128, 1 << 20, 1 << 55, 4 | FS_FLAG_LUT7, 8 | FS_FLAG_LUT6):
            assert call(bid | (bad << 8)) == -1, (bid, bad)
    for bad in (-1, -2, -256, -(1 << 62)):
        assert call(bad) == -1
    assert call(0x80 | (FS_FLAG_LUT7 << 8)) == -1  # unknown backend id with a known flag
    assert (out == SENT).all()
    mask = LIB.fs_available_backends()
    for name, bid in _native.BACKEND_IDS.items():
        for flags in FLAGS + [FS_FLAG_LUT7 | FS_FLAG_LUT6]:
            ok = bid == 0 or mask & (1 << bid)
            assert call(bid | (flags << 8)) == (0 if ok else -1), (name, flags)


@needs_lib
def test_return_codes_and_empty():
    c = _case(42, m=5)
    mask = LIB.fs_available_backends()
    out = np.full((3, 40), SENT, np.uint16)
    for name, bid in _native.BACKEND_IDS.items():
        rc = LIB.fs_scan_q(c["blocks"].ctypes.data, c["bstride"], 1, 20, 5,
                           c["lut"].ctypes.data, c["lstride"], np.zeros(3, np.int64).ctypes.data,
                           3, out.ctypes.data, 40, bid)
        assert rc == (0 if bid == 0 or mask & (1 << bid) else -1), name
    for bad in (-1, 5, 99):
        assert LIB.fs_scan_q(c["blocks"].ctypes.data, c["bstride"], 1, 20, 5,
                             c["lut"].ctypes.data, c["lstride"],
                             np.zeros(3, np.int64).ctypes.data, 3, out.ctypes.data, 40,
                             bad) == -1
    out[:] = SENT
    for n, nq in ((0, 3), (20, 0)):
        assert LIB.fs_scan_q(c["blocks"].ctypes.data, c["bstride"], 1, n, 5,
                             c["lut"].ctypes.data, c["lstride"],
                             np.zeros(3, np.int64).ctypes.data, nq, out.ctypes.data, 40,
                             0) == 0
    assert (out == SENT).all()


@needs_lib
def test_scan_q_address_calls_with_int64_args():
    """The driver calls the raw address with 12 int64 arguments."""
    addr = _native.scan_q_address()
    assert addr and addr == ctypes.cast(LIB.fs_scan_q, ctypes.c_void_p).value
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, *([ctypes.c_int64] * 12))(addr)
    c = _case(7, m=33)
    nq = len(c["qidx"])
    out = np.full((nq + 2 * GUARD, c["ldo"]), SENT, np.uint16)
    q = c["qidx"].astype(np.int64)
    rc = fn(c["blocks"].ctypes.data + c["b_off"], c["bstride"], c["nblocks"], c["n"], c["m"],
            c["lut"].ctypes.data + c["l_off"], c["lstride"], q.ctypes.data, nq,
            out[GUARD:].ctypes.data, c["ldo"], 0)
    assert rc == 0
    _check(out, _reference(c), c)


def test_scan_q_address_without_library(monkeypatch):
    monkeypatch.setattr(_native, "lib", None)
    assert _native.scan_q_address() == 0
