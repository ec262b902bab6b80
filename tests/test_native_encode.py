"""Native encode kernels (native/encode.c): bit-identical to the numba reference.

The C rotation and the fused rotate + scalar-quantize + pack kernel perform the same float
operations in the same order as kernels/rotation.py and kernels/quantize.py, so codes,
rotated vectors and factors must be equal bit for bit, on every backend the CPU has.
"""
import numpy as np
import pytest

import vqindex
from vqindex.kernels import native as _native
from vqindex.codecs import codebooks
from vqindex.codecs.rotation import Rotation
from vqindex.kernels import quantize as kq
from vqindex.kernels import rotation as kr

BACKENDS = _native.encode_backends()
needs_native = pytest.mark.skipif(not BACKENDS, reason=f"native library not built: "
                                                        f"{_native.load_error}")
# powers of two, one short/over, sub-16 widths (no SIMD layers), d % 16 != 0 tails
DIMS = [1, 2, 3, 7, 15, 16, 17, 31, 33, 50, 100, 128, 200, 384, 1000, 1536]


def _rows(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[1] = 0.0                          # zero vector
    x[2] *= 1e-30                       # below the FLT_EPS norm guard
    if d > 4:
        x[3, : d // 2] = 0.0            # sparse
    return x


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


@needs_native
def test_backends_listed():
    assert "scalar" in BACKENDS
    assert set(BACKENDS) <= {"scalar", "avx2", "avx512"}


@needs_native
@pytest.mark.parametrize("d", DIMS)
def test_rotation_bit_identical(d):
    rot = Rotation(d, kind="fast", seed=11)
    signs, perms, p = rot.fused_args()
    sp, nperms, _ = rot.native_args()
    x = _rows(37, d, d)  # 37 rows: two full tiles of 16 and a partial one
    ref = np.empty_like(x)
    kr.fast_rotate(x, signs, perms, p, ref)
    refi = np.empty_like(x)
    kr.fast_rotate_inverse(x, signs, perms, p, refi)
    for b in BACKENDS:
        out = np.empty_like(x)
        _native.fast_rotate(x, sp, nperms, p, out, backend=b)
        np.testing.assert_array_equal(_bits(out), _bits(ref), err_msg=f"forward {b}")
        out = np.empty_like(x)
        _native.fast_rotate(x, sp, nperms, p, out, inverse=True, backend=b)
        np.testing.assert_array_equal(_bits(out), _bits(refi), err_msg=f"inverse {b}")


@needs_native
@pytest.mark.parametrize("d", [7, 17, 50, 200, 384])
@pytest.mark.parametrize("bits", range(1, 9))
def test_fused_scalar_encode_bit_identical(d, bits):
    codec = vqindex.codec_factory(d, f"EDEN{bits}")
    signs, perms, p = codec.rotation.fused_args()
    sp, nperms, _ = codec.rotation.native_args()
    x = _rows(40, d, 100 * d + bits)
    n = x.shape[0]
    nbytes = (d * bits + 7) // 8
    ref = np.zeros((n, codec.code_size), np.uint8)
    alpha_ref = np.empty(n, np.float32)
    ell_ref = np.empty(n, np.float32)
    for rule in (0, 1, 2):
        kq.fast_rotate_scalar_encode(x, signs, perms, p, codec._bounds, codec.levels, rule, bits,
                                     ref, alpha_ref, ell_ref)
        for b in BACKENDS:
            codes = np.zeros_like(ref)
            stats = np.empty((n, 3))
            _native.rotate_scalar_encode(x, sp, nperms, p, codec._bounds.astype(np.float32),
                                         codec.levels, bits, codes, stats, backend=b)
            np.testing.assert_array_equal(codes[:, :nbytes], ref[:, :nbytes], err_msg=b)
            assert not codes[:, nbytes:].any(), "wrote past the code bytes"
            alpha = np.empty(n, np.float32)
            ell = np.empty(n, np.float32)
            kq.alpha_ell_rows(rule, stats, d, alpha, ell)
            np.testing.assert_array_equal(_bits(alpha), _bits(alpha_ref), err_msg=b)
            np.testing.assert_array_equal(_bits(ell), _bits(ell_ref), err_msg=b)


@needs_native
@pytest.mark.parametrize("spec", ["EDEN4", "EDEN1BIASED", "TQmse2", "TQmse8", "RaBitQ1",
                                  "TQprod3", "RaBitQ4", "BQ2"])
def test_codec_codes_same_with_and_without_native(spec, monkeypatch):
    """Whole encode/decode through the codec API: native on == native off, and any thread count."""
    d = 200
    x = _rows(300, d, 5)
    codec = vqindex.codec_factory(d, spec)
    codes = codec.encode(x, num_threads=2)
    dec = codec.decode(codes)
    q = codec.prepare_queries(x[:3])
    monkeypatch.setattr(_native, "encode_lib", None)
    ref = codec.encode(x, num_threads=1)
    np.testing.assert_array_equal(codes, ref)
    np.testing.assert_array_equal(_bits(codec.decode(ref)), _bits(dec))
    np.testing.assert_array_equal(_bits(codec.prepare_queries(x[:3]).v), _bits(q.v))


def test_alpha_ell_rows_matches_rules():
    stats = np.array([[4.0, 2.0, 8.0], [0.0, 1.0, 1.0], [9.0, -1.0, 2.0]])
    d = 16
    got = {}
    for rule in (0, 1, 2):
        a = np.empty(3, np.float32)
        e = np.empty(3, np.float32)
        kq.alpha_ell_rows(rule, stats, d, a, e)
        got[rule] = (a, e)
    np.testing.assert_allclose(got[0][0], [0.5, 0.0, 0.0])      # sqrt(yy / D); guards
    np.testing.assert_allclose(got[1][0], [0.25, 0.0, 0.0])     # yq / qq
    np.testing.assert_allclose(got[1][1], [0.5, 0.0, 0.0])      # a^2 qq
    np.testing.assert_allclose(got[2][0], [2.0, 0.0, 0.0])      # yy / yq
    np.testing.assert_allclose(got[2][1], [4.0, 0.0, 0.0])


@pytest.mark.parametrize("d", [3, 4, 5, 8, 12, 20, 33])
@pytest.mark.parametrize("bits", range(1, 9))
def test_small_d_sphere_codebooks_are_valid(d, bits):
    """Exact finite-D codebooks at small D (where Gaussian levels fall outside the support
    sqrt(D)) are finite, strictly increasing, inside the support and symmetric; D = 3 is the
    uniform law on [-sqrt 3, sqrt 3], whose Lloyd-Max levels are the cell midpoints."""
    lv = codebooks.sphere_levels(bits, d)
    assert lv.shape == (1 << bits,)
    assert np.all(np.isfinite(lv))
    assert np.all(np.diff(lv) > 0)
    assert np.abs(lv).max() < np.sqrt(d)
    np.testing.assert_allclose(lv, -lv[::-1], atol=1e-12)
    if d == 3:
        k = 1 << bits
        expect = np.sqrt(3.0) * (2 * (np.arange(k) + 0.5) / k - 1)
        np.testing.assert_allclose(lv, expect, atol=2e-4)


@needs_native
def test_numba_runs_when_the_cpu_has_no_simd_backend(monkeypatch):
    """The portable scalar C rotation is slower than numba's, so it is never preferred."""
    rot = Rotation(64, kind="fast", seed=1)
    assert rot.native_args() is not None or BACKENDS == ["scalar"]
    _native._has_simd.cache_clear()
    monkeypatch.setattr(_native, "encode_backends", lambda: ["scalar"])
    try:
        assert not _native.encode_preferred()
        assert rot.native_args() is None
    finally:
        monkeypatch.undo()
        _native._has_simd.cache_clear()
