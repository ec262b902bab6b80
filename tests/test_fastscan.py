"""Fast-scan kernels: every backend bit-identical to the numba reference."""
import numpy as np
import pytest

from vqindex.kernels import fastscan as fs

BACKENDS = fs.available_backends()
SHAPES = [(77, 1, 1), (45, 2, 5), (100, 3, 33), (33, 16, 5), (250, 96, 33), (65, 384, 5),
          (31, 5, 1), (1, 7, 33), (96, 384, 1),
          (70, 1031, 9), (40, 602, 7), (33, 1024, 16)]  # large m: LUT tiling + tails


def _data(n, m, nq, seed):
    rng = np.random.default_rng(seed)
    nib = rng.integers(0, 16, (n, m), dtype=np.uint8)
    lut = rng.integers(0, 256, (nq, m, 16), dtype=np.uint8)
    return nib, lut


def _naive(nib, lut):
    n, m = nib.shape
    acc = np.zeros((lut.shape[0], n), dtype=np.int64)
    for j in range(m):
        acc += lut[:, j, nib[:, j]].astype(np.int64)
    return (acc % 65536).astype(np.uint16)


def test_available_backends():
    assert BACKENDS[-1] == "numba"
    assert len(set(BACKENDS)) == len(BACKENDS)
    assert set(BACKENDS) <= {"avx512vnni", "avx512", "avx2", "scalar", "numba"}


@pytest.mark.parametrize("n,m,nq", SHAPES)
def test_numba_matches_naive(n, m, nq):
    nib, lut = _data(n, m, nq, 1)
    blocks = fs.pack_blocks(nib)
    ref = _naive(nib, lut)
    np.testing.assert_array_equal(fs.scan(blocks, n, lut, backend="numba"), ref)
    np.testing.assert_array_equal(fs.scan_reference(blocks, n, lut), ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,m,nq", SHAPES)
def test_backends_match_numba(backend, n, m, nq):
    nib, lut = _data(n, m, nq, n * 1000 + m)
    blocks = fs.pack_blocks(nib)
    ref = fs.scan(blocks, n, lut, backend="numba")
    got = fs.scan(blocks, n, lut, backend=backend)
    assert got.dtype == np.uint16 and got.shape == (nq, n)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_and_out(backend):
    n, m, nq = 1000, 24, 7
    nib, lut = _data(n, m, nq, 7)
    blocks = fs.pack_blocks(nib)
    ref = _naive(nib, lut)
    for th in (2, 3, 0):
        np.testing.assert_array_equal(fs.scan(blocks, n, lut, num_threads=th, backend=backend), ref)
    # few blocks, many queries -> threads split the queries
    np.testing.assert_array_equal(
        fs.scan(blocks[:2], 50, lut, num_threads=2, backend=backend), ref[:, :50])
    # out= with strided rows (a column slice of a wider array)
    big = np.full((nq, n + 10), 7, dtype=np.uint16)
    out = big[:, 3:3 + n]
    r = fs.scan(blocks, n, lut, out=out, backend=backend)
    assert r is out
    np.testing.assert_array_equal(out, ref)
    assert (big[:, :3] == 7).all() and (big[:, 3 + n:] == 7).all()


def test_quantized_sums_exact_and_bounded():
    # quantize_lut output never overflows, so the uint16 sums are the exact integer sums
    rng = np.random.default_rng(3)
    for m in (1, 3, 96, 384, 1000):
        lut = rng.standard_normal((4, m, 16)).astype(np.float32) * rng.uniform(0.1, 10, (4, m, 1))
        lut_u8, scale, bias = fs.quantize_lut(lut)
        assert lut_u8.dtype == np.uint8 and lut_u8.shape == lut.shape
        assert scale.dtype == np.float32 and bias.dtype == np.float32
        assert (lut_u8.astype(np.int64).max(axis=2).sum(axis=1) <= 65535).all()
        n = 300
        nib = rng.integers(0, 16, (n, m), dtype=np.uint8)
        acc = fs.scan(fs.pack_blocks(nib), n, lut_u8)
        exact = np.zeros((4, n))
        exact_u8 = np.zeros((4, n), dtype=np.int64)
        for j in range(m):
            exact += lut[:, j, nib[:, j]]
            exact_u8 += lut_u8[:, j, nib[:, j]]
        np.testing.assert_array_equal(acc.astype(np.int64), exact_u8)
        approx = bias[:, None].astype(np.float64) + scale[:, None].astype(np.float64) * acc
        bound = fs.quantization_error_bound(scale, m)[:, None]
        slack = 1e-5 * (np.abs(lut).sum(axis=(1, 2))[:, None] + 1)  # float32 bias/scale
        assert (np.abs(approx - exact) <= bound + slack).all()


def test_quantize_lut_constant_and_extremes():
    lut = np.zeros((2, 5, 16), np.float32)
    lut[1] = 3.0
    u8, scale, bias = fs.quantize_lut(lut)
    assert (u8 == 0).all() and (scale > 0).all()
    np.testing.assert_allclose(bias, [0.0, 15.0])
    # one dominant sub-quantizer: entries capped at 255
    lut = np.zeros((1, 4, 16), np.float32)
    lut[0, 0] = np.arange(16) * 1000.0
    u8, scale, bias = fs.quantize_lut(lut)
    assert u8.max() == 255
    with pytest.raises(ValueError):
        fs.quantize_lut(np.full((1, 2, 16), np.nan, np.float32))


def _py_nibbles(codes, m):
    out = np.zeros((codes.shape[0], m), np.uint8)
    for v in range(codes.shape[0]):
        bits = []
        for byte in codes[v]:
            bits.extend((int(byte) >> k) & 1 for k in range(8))  # LSB first
        for j in range(m):
            out[v, j] = sum(bits[4 * j + k] << k for k in range(4))
    return out


@pytest.mark.parametrize("m", [1, 2, 3, 8, 17])
def test_nibbles_from_bitstream(m):
    rng = np.random.default_rng(m)
    nbytes = (m + 1) // 2 + (m % 3)  # allow trailing bytes beyond the code
    codes = rng.integers(0, 256, (9, nbytes), dtype=np.uint8)
    np.testing.assert_array_equal(fs.nibbles_from_bitstream(codes, m), _py_nibbles(codes, m))
    np.testing.assert_array_equal(fs.pack_bitstream_blocks(codes, m, chunk=32),
                                  fs.pack_blocks(_py_nibbles(codes, m)))


def test_pack_bitstream_blocks_chunks():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (1000, 10), dtype=np.uint8)
    a = fs.pack_bitstream_blocks(codes, 20, chunk=64)
    b = fs.pack_blocks(fs.nibbles_from_bitstream(codes, 20))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 20 * 16)


def test_pack_blocks_layout():
    n, m = 40, 3
    nib = (np.arange(n * m).reshape(n, m) % 16).astype(np.uint8)
    blocks = fs.pack_blocks(nib)
    assert blocks.shape == (2, m * 16) and blocks.dtype == np.uint8
    for b in range(2):
        for j in range(m):
            for i in range(16):
                lo = nib[32 * b + i, j] if 32 * b + i < n else 0
                hi = nib[32 * b + 16 + i, j] if 32 * b + 16 + i < n else 0
                assert blocks[b, 16 * j + i] == lo | (hi << 4)


def test_errors():
    nib, lut = _data(10, 4, 2, 0)
    blocks = fs.pack_blocks(nib)
    with pytest.raises(ValueError):
        fs.scan(blocks, 10, lut, backend="nonexistent")
    with pytest.raises(ValueError):
        fs.scan(blocks, 33, lut)  # more vectors than the blocks hold
    with pytest.raises(ValueError):
        fs.scan(blocks, 10, lut[:, :3])  # m mismatch
    with pytest.raises(ValueError):
        fs.scan(blocks, 10, lut, out=np.empty((2, 10), np.int32))
    with pytest.raises(ValueError):
        fs.nibbles_from_bitstream(np.zeros((3, 2), np.uint8), 5)
    assert fs.scan(blocks, 0, lut).shape == (2, 0)


def test_native_module_never_raises():
    import vqindex.kernels.native as nat
    assert nat.lib is None or hasattr(nat.lib, "fs_scan")
    if nat.lib is None:
        assert BACKENDS == ["numba"] and nat.load_error
