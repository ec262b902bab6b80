"""Exact nearest-codeword search for BlockQuant (vqindex.kernels.blocksearch) vs brute force."""
import numpy as np
import pytest

from vqindex.codecs.block_codebooks import block_codebook, build_block_codebook
from vqindex.kernels import blocksearch as bs
from vqindex.kernels import quantize as q

DEFAULTS = [(8, 1), (4, 2), (3, 3), (2, 3), (2, 4)]


def _blocks(k, n=60000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    # outliers: random directions with |z| up to 8, and single large coordinates
    out = rng.standard_normal((3000, k))
    out *= rng.uniform(2.0, 8.0, (3000, 1)) / np.linalg.norm(out, axis=1, keepdims=True)
    axis = np.zeros((1000, k))
    axis[np.arange(1000), rng.integers(0, k, 1000)] = rng.uniform(-8, 8, 1000)
    return np.concatenate([z, out, axis]).astype(np.float32)


def _check_exact(z, codebook, got):
    """got must be the float64 argmin, unless the two best distances are within 1e-5 rel."""
    z64 = z.astype(np.float64)
    cb = codebook.astype(np.float64)
    d = (z64 ** 2).sum(1)[:, None] - 2 * z64 @ cb.T + (cb ** 2).sum(1)[None, :]
    ref = d.argmin(axis=1)
    bad = np.nonzero(got != ref)[0]
    if bad.size:
        dg = d[bad, got[bad]]
        dr = d[bad, ref[bad]]
        assert np.all(dg - dr <= 1e-5 * np.maximum(dr, 1e-3)), (bad[:5], dg[:5], dr[:5])
    return bad.size


def _grid_nearest(z, ix):
    out = np.empty(len(z), np.int64)
    bs.nearest_grid(z, ix.lo, ix.scale, ix.G, ix.offsets, ix.cand_id, ix.cand_cw, out)
    return out


@pytest.mark.parametrize("k,b", DEFAULTS)
@pytest.mark.parametrize("variant", ["multishell", "sphere"])
def test_default_codebooks_exact(k, b, variant):
    codebook = block_codebook(k, b, variant)
    ix = bs.block_search_index(codebook)
    if ix is None:   # brute force config (k >= 5)
        assert k >= 5
        return
    z = _blocks(k)
    assert _check_exact(z, codebook, _grid_nearest(z, ix)) <= len(z) // 2000
    assert ix.expected < (8 if variant == "multishell" else 32)   # few candidates per block


@pytest.mark.parametrize("name", ["random", "product"])
def test_k3_K4096_exact(name):
    # the shipped K = 4096 codebooks take minutes to build: test random / Lloyd-start ones
    if name == "random":
        codebook = np.random.default_rng(5).standard_normal((4096, 3)).astype(np.float32)
    else:
        codebook = build_block_codebook(3, 4, n_iter=0)
    ix = bs.block_search_index(codebook)
    assert ix.G == 32
    z = _blocks(3, n=40000, seed=1)
    assert _check_exact(z, codebook, _grid_nearest(z, ix)) <= len(z) // 2000


def test_index_is_cached_per_codebook():
    c = block_codebook(2, 4)
    assert bs.block_search_index(c) is bs.block_search_index(c.copy())
    assert bs.block_search_index(block_codebook(2, 3)) is not bs.block_search_index(c)


@pytest.mark.parametrize("k,b", [(2, 4), (3, 3), (4, 2), (8, 1)])
@pytest.mark.parametrize("rule", [1, 2])
def test_fast_matches_brute_kernel(k, b, rule):
    rng = np.random.default_rng(k)
    D = 48 * k
    y = rng.standard_normal((300, D)).astype(np.float32)
    y[0] = 0.0                      # zero vector
    y[1, :] = 0.0
    y[1, 0] = 3.0                   # one huge coordinate (z = sqrt(D) e_0)
    codebook = block_codebook(k, b)
    cbn = np.einsum("ij,ij->i", codebook, codebook).astype(np.float32)
    m = D // k
    out = [(np.empty((300, m), np.uint16), np.empty(300, np.float32), np.empty(300, np.float32))
           for _ in range(2)]
    q.block_quantize(y, codebook, cbn, rule, *out[0])
    bs.block_quantize_fast(y, codebook, cbn, rule, *out[1])
    same = out[0][0] == out[1][0]
    assert same.mean() > 0.999
    rows = same.all(axis=1)
    np.testing.assert_array_equal(out[0][1][rows], out[1][1][rows])
    np.testing.assert_array_equal(out[0][2][rows], out[1][2][rows])
    # the z-blocks themselves: exact vs float64 brute force
    yy = (y.astype(np.float64) ** 2).sum(1)
    inv = np.where(yy > 1.1920928955078125e-07, np.sqrt(D / np.maximum(yy, 1e-30)), 0.0)
    z = (y * inv[:, None]).astype(np.float32).reshape(-1, k)
    _check_exact(z, codebook, out[1][0].reshape(-1).astype(np.int64))


@pytest.mark.parametrize("spec", ["BQ4", "BQ3", "BQ2k4"])
def test_codec_encode_equals_brute_force(spec, monkeypatch):
    import vqindex
    from vqindex.kernels import blocksearch
    x = np.random.default_rng(3).standard_normal((500, 64)).astype(np.float32)
    x[:10] *= 50.0
    codec = vqindex.codec_factory(64, spec) if spec != "BQ2k4" else vqindex.codec_factory(64, "BQ2")
    fast = codec.encode(x)
    # brute force: force the fallback path
    monkeypatch.setattr(blocksearch, "block_search_index", lambda codebook: None)
    brute = codec.encode(x)
    rows_equal = (fast == brute).all(axis=1)
    assert rows_equal.mean() >= 0.99
    assert (fast != brute).sum() <= 40
