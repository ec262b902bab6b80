"""bench/peers.py: the scann and usearch adapters on small synthetic data (skipped when the
peer library is not installed: `pip install -e .[peers]`)."""
import numpy as np
import pytest

from vqindex.benchmark import Config, Method, default_nlist, load_bench_module, _grid

peers = load_bench_module("peers")
pytestmark = pytest.mark.skipif(peers is None, reason="bench/peers.py not found")


def _data(n=3000, d=64, nq=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[:nq] + 0.05 * rng.standard_normal((nq, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    gt = np.argsort(-(q @ x.T), axis=1)[:, :10]
    return x, q, gt


def _recall(ids, gt):
    return np.mean([len(np.intersect1d(a, b)) / gt.shape[1] for a, b in zip(ids, gt)])


def test_methods_and_default_configs():
    for m in ("scann", "usearch"):
        assert m in peers.METHODS
        for quick in (True, False):
            cfgs = peers.default_configs(m, 100000, 384, quick, Config=Config, grid=_grid,
                                         nlist=default_nlist(100000))
            assert cfgs and all(c.method == m for c in cfgs)
    full = peers.default_configs("scann", 100000, 384, False, Config=Config, grid=_grid, nlist=1024)
    assert {c.index for c in full} == {"IVF1024,AH2", "IVF1024,AH2,Reorder"}


@pytest.mark.parametrize("desc", ["IVF32,AH2", "IVF32,AH2,Reorder"])
def test_scann_adapter(tmp_path, desc):
    pytest.importorskip("scann")
    x, q, gt = _data()
    m = peers.make(Config("scann", desc), "angular", 1, Method=Method)
    m.build_threads = 1
    m.build(x)
    assert m.kind == ("codes+rerank" if desc.endswith("Reorder") else "codes")
    qp = {"leaves": 32, "k_factor": 4} if m.kind == "codes+rerank" else {"leaves": 32}
    ids = m.search(q, 10, qp)
    assert ids.shape == (len(q), 10) and ids.dtype == np.int64
    one = m.search(q[:1], 10, qp)
    assert one.shape == (1, 10)
    assert _recall(ids, gt) > (0.9 if m.kind == "codes+rerank" else 0.5)
    size, exact = m.file_size(str(tmp_path))
    per = size / len(x)
    # 4-bit codes for d/2 blocks = d/4 bytes, + 4*d float32 with the reorder
    assert per >= x.shape[1] / 4 + (4 * x.shape[1] if m.kind == "codes+rerank" else 0)
    assert not exact and not list(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", ["f16", "i8"])
def test_usearch_adapter(tmp_path, dtype):
    pytest.importorskip("usearch")
    x, q, gt = _data()
    m = peers.make(Config("usearch", f"M16,{dtype}"), "angular", 1, Method=Method)
    m.build_threads = 1
    m.build(x)
    ids = m.search(q, 10, {"ef": 64})
    assert ids.shape == (len(q), 10) and ids.dtype == np.int64
    assert np.array_equal(m.search(q[:1], 10, {"ef": 64})[0], ids[0])
    assert _recall(ids, gt) > 0.8
    size, exact = m.file_size(str(tmp_path))
    assert exact and size > len(x) * x.shape[1] * (2 if dtype == "f16" else 1)
