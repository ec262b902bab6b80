"""IVF's one-call search path (IndexIVFCodes._one_call_search): small unfiltered searches on
one thread skip the general path's Python work and call driver.search_ivf_fused with a plan
cached against the store's version. The path must give the general path's results, and a
cached plan must never outlive a change of the index (add, remove_ids, reset, retraining,
nprobe, codec layout): each test below fails if the plan were reused where it is stale.
"""
import numpy as np
import pytest

import vqindex
from vqindex.index.ivf import IndexIVFCodes

from conftest import gauss

K = 10
ONE = vqindex.SearchParams(num_threads=1)
METRICS = [vqindex.METRIC_L2, vqindex.METRIC_INNER_PRODUCT, vqindex.METRIC_COSINE]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = gauss(30, 32, 1) * 2.0
    xb = (centers[rng.integers(0, 30, 2500)] + gauss(2500, 32, 2)).astype(np.float32)
    xq = (centers[rng.integers(0, 30, 12)] + gauss(12, 32, 3)).astype(np.float32)
    return xb, xq


def _ivf(xb, codec="EDEN4", metric=vqindex.METRIC_L2, nprobe=4):
    index = vqindex.index_factory(xb.shape[1], f"IVF16,{codec}", metric)
    index.train(xb)
    index.add(xb)
    index.nprobe = nprobe
    return index


def _general(index, x, k=K, params=ONE):
    """The general path: preallocated outputs never take the one-call path."""
    D = np.empty((x.shape[0], k), np.float32)
    I = np.empty((x.shape[0], k), np.int64)
    return index.search(x, k, params=params, D=D, I=I)


class _Counting:
    """Counts the calls of IndexIVFCodes._search_keys (the general path) on one index."""

    def __init__(self, index, monkeypatch):
        self.n = 0
        orig = index._search_keys

        def wrapped(*a, **kw):
            self.n += 1
            return orig(*a, **kw)

        monkeypatch.setattr(index, "_search_keys", wrapped)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("codec", ["EDEN4", "RaBitQ5", "BQ4", "TQprod4"])
def test_one_call_equals_general_path(data, codec, metric, monkeypatch):
    xb, xq = data
    index = _ivf(xb, codec, metric)
    calls = _Counting(index, monkeypatch)
    for q0 in range(0, 12, 3):
        D, I = index.search(xq[q0:q0 + 3], K, params=ONE)
        D2, I2 = _general(index, xq[q0:q0 + 3])
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
        assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == (3, K)
    # the 4 one-call searches never reached the general path; the 4 preallocated ones did
    assert calls.n == 4


def test_one_call_scope(data, monkeypatch):
    """What does not qualify takes the general path: many queries, threads, filters, other
    dtypes, a k given as numpy integer; bad input still raises the general path's errors."""
    xb, xq = data
    index = _ivf(xb)
    calls = _Counting(index, monkeypatch)
    index.search(xq[:1], K, params=ONE)
    assert calls.n == 0
    index.search(xq, K, params=ONE)                      # 12 > fused_max_queries
    index.search(xq[:1], K, params=vqindex.SearchParams(num_threads=2))
    index.search(xq[:1], K, params=vqindex.SearchParams(num_threads=1, filter=np.arange(50)))
    index.search(xq[:1].astype(np.float64), K, params=ONE)
    index.search(xq[:1], np.int64(K), params=ONE)
    assert calls.n == 5
    with pytest.raises(ValueError, match="queries"):
        index.search(np.full((1, 32), np.nan, np.float32), K, params=ONE)
    with pytest.raises(ValueError):
        index.search(xq[:1], 0, params=ONE)
    with pytest.raises(ValueError, match="nprobe"):
        index.search(xq[:1], K, params=vqindex.SearchParams(nprobe=0, num_threads=1))


def test_plan_follows_adds_removals_and_reset(data):
    xb, xq = data
    index = _ivf(xb)
    q = xq[:1]
    D0, I0 = index.search(q, K, params=ONE)             # caches the plan
    # an exact copy of the query, added under a new id, must come first at once
    new_id = int(index.ntotal)
    index.add(q)
    D1, I1 = index.search(q, K, params=ONE)
    assert I1[0, 0] == new_id
    np.testing.assert_array_equal(I1, _general(index, q)[1])
    # removing it and the old best must drop both
    index.remove_ids(np.array([new_id, I0[0, 0]], np.int64))
    D2, I2 = index.search(q, K, params=ONE)
    assert new_id not in I2 and I0[0, 0] not in I2
    np.testing.assert_array_equal(I2, _general(index, q)[1])
    # reset: no results at all
    index.reset()
    D3, I3 = index.search(q, K, params=ONE)
    assert (I3 == -1).all() and np.isinf(D3).all()
    index.add(xb)
    np.testing.assert_array_equal(index.search(q, K, params=ONE)[1], _general(index, q)[1])


def test_plan_follows_nprobe_retraining_and_k(data):
    xb, xq = data
    index = _ivf(xb, nprobe=1)
    q = xq[:2]
    I1 = index.search(q, K, params=ONE)[1]
    index.nprobe = 16                                   # every list: the exact top-k
    I16 = index.search(q, K, params=ONE)[1]
    np.testing.assert_array_equal(I16, _general(index, q)[1])
    np.testing.assert_array_equal(
        I16, index.search(q, K, params=vqindex.SearchParams(nprobe=16, num_threads=1))[1])
    assert index.search(q, 3, params=ONE)[1].shape == (2, 3)
    np.testing.assert_array_equal(index.search(q, 3, params=ONE)[1], I16[:, :3])
    # retraining on other data replaces the centroids (and empties nothing here: refill)
    rng = np.random.default_rng(5)
    other = (xb + rng.standard_normal(xb.shape).astype(np.float32)).astype(np.float32)
    index.reset()
    index.train(other)
    index.add(xb)
    index.nprobe = 1
    np.testing.assert_array_equal(index.search(q, K, params=ONE)[1], _general(index, q)[1])
    assert I1.shape == (2, K)


def test_plan_is_per_index_and_read_after_load(data, tmp_path):
    xb, xq = data
    a = _ivf(xb)
    b = _ivf(xb[::-1].copy())
    q = xq[:1]
    Ia, Ib = a.search(q, K, params=ONE)[1], b.search(q, K, params=ONE)[1]
    path = tmp_path / "ivf.vqi"
    vqindex.write_index(a, str(path))
    c = vqindex.read_index(str(path))
    assert isinstance(c, IndexIVFCodes)
    c.nprobe = a.nprobe
    np.testing.assert_array_equal(c.search(q, K, params=ONE)[1], Ia)
    # b's ids are positions in the reversed data: its own plan, not a's
    np.testing.assert_array_equal(Ib, _general(b, q)[1])
    np.testing.assert_array_equal(Ia, _general(a, q)[1])
    assert not np.array_equal(Ia, Ib)
