"""vqindex.bench.peers: the adapters on small synthetic data (each skipped when its peer
library is not installed: `pip install vqindex[peers]`), and the skip note for a missing one."""
import numpy as np
import pytest

from vqindex.bench import peers
from vqindex.bench.base import Config, default_nlist


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
            cfgs = peers.default_configs(m, 100000, 384, quick, default_nlist(100000))
            assert cfgs and all(c.method == m for c in cfgs)
    full = peers.default_configs("scann", 100000, 384, False, 1024)
    assert {c.index for c in full} == {"IVF1024,AH2", "IVF1024,AH2,Reorder"}


@pytest.mark.parametrize("desc", ["IVF32,AH2", "IVF32,AH2,Reorder"])
def test_scann_adapter(tmp_path, desc):
    pytest.importorskip("scann")
    x, q, gt = _data()
    m = peers.make(Config("scann", desc), "angular", 1)
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


@pytest.mark.parametrize("dtype", ["f16", "i8", "b1"])
def test_usearch_adapter(tmp_path, dtype):
    pytest.importorskip("usearch")
    x, q, gt = _data()
    m = peers.make(Config("usearch", f"M16,{dtype}"), "angular", 1)
    assert m.kind == ("float" if dtype == "f16" else "codes")
    m.build_threads = 1
    m.build(x)
    qp = {"expansion_search": 64}
    ids = m.search(q, 10, qp)
    assert ids.shape == (len(q), 10) and ids.dtype == np.int64
    assert np.array_equal(m.search(q[:1], 10, qp)[0], ids[0])
    assert np.array_equal(m.search(q, 10, {"ef": 64}), ids)  # ef: the alias of expansion_search
    # sign bits alone (64 bits per vector) find far fewer of the true neighbours
    assert _recall(ids, gt) > (0.15 if dtype == "b1" else 0.8)
    size, exact = m.file_size(str(tmp_path))
    per_dim = {"f16": 2, "i8": 1, "b1": 1 / 8}[dtype]
    assert exact and size > len(x) * x.shape[1] * per_dim


def test_usearch_bad_config():
    with pytest.raises(ValueError, match="M<connectivity>"):
        peers.make(Config("usearch", "M16,f64"), "angular", 1)


def test_every_peer_declares_its_library():
    for m in peers.METHODS:
        mod = peers.module(m)
        assert mod.LIBRARY and mod.INSTALL and callable(mod.default_configs) and mod.Adapter
        cfgs = peers.default_configs(m, 10000, 128, True)
        assert cfgs and all(c.method == m for c in cfgs)
    with pytest.raises(ValueError, match="unknown peer"):
        peers.module("annoy")


def test_missing_library_is_a_note(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hnswlib" else real(name, *a))
    ok, note = peers.available("hnswlib")
    assert not ok and "not installed" in note and "pip install hnswlib" in note
    from vqindex.bench.sweep import default_configs
    cfgs, notes = default_configs(["hnswlib", "faiss"], 5000, 64, quick=True)
    assert {c.method for c in cfgs} == {"faiss"} and notes == [note]
