"""IndexHNSWCodes: faiss-built HNSW graph searched with code estimates."""
import threading
import warnings

import numpy as np
import pytest

import vqindex
from vqindex import SearchParams

from conftest import load_angular

MINILM = "pypi-minilm-384-angular-tiny.hdf5"
GLOVE = "glove-50-angular-tiny.hdf5"


def recall(I, gt, k=10):
    return float(np.mean([len(set(I[i, :k]) & set(gt[i, :k])) / k for i in range(len(I))]))


@pytest.fixture(scope="module")
def minilm(data_dir):
    return load_angular(data_dir, MINILM)


@pytest.fixture(scope="module")
def built(minilm):
    xb, xq, gt = minilm
    idx = vqindex.index_factory(384, "HNSW32,BQ4", vqindex.METRIC_COSINE)
    idx.add(xb)
    return idx


def test_factory_type(built):
    from vqindex.index.hnsw import IndexHNSWCodes
    assert isinstance(built, IndexHNSWCodes)
    assert built.M == 32 and built.params.efSearch == 64 and built.ntotal == 5000


def test_recall_and_efsearch(built, minilm):
    # Measured (BQ4, 5000 x 384, 200 queries): flat scan of the codes 0.954; HNSW
    # efSearch 16: 0.911, 32: 0.939, 64: 0.949, 128: 0.952. Thresholds leave ~0.03 slack.
    xb, xq, gt = minilm
    _, I = built.search(xq, 10)
    r64 = recall(I, gt)
    assert r64 >= 0.90, r64
    _, I16 = built.search(xq, 10, SearchParams(efSearch=16))
    _, I128 = built.search(xq, 10, SearchParams(efSearch=128))
    r16, r128 = recall(I16, gt), recall(I128, gt)
    assert r128 >= 0.92 and r128 > r16, (r16, r128)
    assert not np.array_equal(I16, I128)


def test_equals_flat_scan_when_ef_covers_all(built, minilm):
    xb, xq, gt = minilm
    flat = vqindex.IndexFlatCodes(384, built.codec, vqindex.METRIC_COSINE)
    flat.add(xb)
    Df, If = flat.search(xq[:50], 10)
    Dh, Ih = built.search(xq[:50], 10, SearchParams(efSearch=built.ntotal))
    assert np.mean(Ih == If) >= 0.99
    np.testing.assert_allclose(Dh, Df, rtol=1e-5, atol=1e-5)


def test_k_larger_than_ef(built, minilm):
    xq = minilm[1][:5]
    D, I = built.search(xq, 100, SearchParams(efSearch=16))
    assert np.all(I >= 0) and np.all(np.diff(D, axis=1) <= 1e-6)  # IP: descending
    assert all(len(set(row)) == 100 for row in I)


def test_l2_glove(data_dir):
    xb, xq, gt = load_angular(data_dir, GLOVE)
    xb = xb * 3.0  # non-unit norms so that L2 differs from IP
    xq = xq * 3.0
    idx = vqindex.index_factory(xb.shape[1], "HNSW16,EDEN4", vqindex.METRIC_L2)
    idx.add(xb)
    D, I = idx.search(xq, 10, SearchParams(efSearch=128))
    flat = vqindex.IndexFlatCodes(xb.shape[1], idx.codec, vqindex.METRIC_L2)
    flat.add(xb)
    Df, If = flat.search(xq, 10)
    assert recall(I, gt) >= recall(If, gt) - 0.05
    assert recall(I, gt) >= 0.7
    assert np.all(np.diff(D, axis=1) >= -1e-5)  # L2: ascending
    # estimated squared distances roughly match the true ones
    true = ((xq[:, None, :] - xb[I]) ** 2).sum(-1)
    assert np.median(np.abs(D - true)) < 0.2 * np.median(true)


def test_two_batches_and_ids(minilm):
    xb, xq, gt = minilm
    idx = vqindex.index_factory(384, "HNSW32,BQ4", vqindex.METRIC_COSINE)
    idx.add(xb[:2500])
    idx.add(xb[2500:])
    assert idx.ntotal == 5000
    np.testing.assert_array_equal(idx.ids, np.arange(5000))
    _, I = idx.search(xq, 10)
    assert recall(I, gt) >= 0.90


def test_add_with_ids(minilm):
    xb, xq, gt = minilm
    idx = vqindex.index_factory(384, "HNSW32,BQ4", vqindex.METRIC_COSINE)
    ids = np.arange(5000, dtype=np.int64) * 7 + 1000
    idx.add_with_ids(xb, ids)
    _, I = idx.search(xq, 10)
    assert np.all(np.isin(I, ids))
    assert recall((I - 1000) // 7, gt) >= 0.90
    with pytest.raises(ValueError):
        idx.add_with_ids(xb[:1], ids[:1])
    np.testing.assert_allclose(idx.reconstruct(int(ids[3])),
                               idx.codec.decode(idx.codec.encode(idx._prep(xb[3:4])))[0], atol=1e-6)


def test_filter(built, minilm):
    xq = minilm[1][:20]
    allow = np.arange(0, 5000, 3)
    D, I = built.search(xq, 10, SearchParams(filter=allow))
    assert np.all(np.isin(I, allow)) and np.all(I >= 0)
    # a very selective filter: still k allowed results
    few = np.array([5, 17, 400, 999, 4000, 4001, 4002, 4003, 4100, 4200, 4300, 4444])
    D, I = built.search(xq, 10, SearchParams(filter=few))
    assert np.all(np.isin(I, few)) and np.all(I >= 0)
    # boolean mask by id, moderately selective (graph path)
    mask = np.zeros(5000, bool)
    mask[::10] = True
    D, I = built.search(xq, 10, SearchParams(filter=mask))
    assert np.all(I % 10 == 0) and np.all(I >= 0)
    # filtered results equal the flat scan of the allowed codes (large ef)
    flat = vqindex.IndexFlatCodes(384, built.codec, vqindex.METRIC_COSINE)
    flat.add(minilm[0])
    _, If = flat.search(xq, 10, SearchParams(filter=mask))
    _, Ih = built.search(xq, 10, SearchParams(filter=mask, efSearch=256))
    assert np.mean(If == Ih) >= 0.95


def test_remove_ids(minilm):
    xb, xq, gt = minilm
    idx = vqindex.index_factory(384, "HNSW32,BQ4", vqindex.METRIC_COSINE)
    idx.add(xb)
    _, I0 = idx.search(xq, 10)
    gone = np.unique(I0[:, :3])
    assert idx.remove_ids(gone) == len(gone)
    assert idx.remove_ids(gone) == 0
    assert idx.ntotal == 5000 - len(gone)
    assert len(idx.ids) == idx.ntotal and not np.any(np.isin(idx.ids, gone))
    _, I = idx.search(xq, 10)
    assert not np.any(np.isin(I, gone)) and np.all(I >= 0)
    with pytest.raises(KeyError):
        idx.reconstruct(int(gone[0]))
    idx.reconstruct(int(idx.ids[0]))
    lims, D, Ir = idx.range_search(xq[:3], 0.5)
    assert not np.any(np.isin(Ir, gone))
    # re-adding a removed id is allowed and findable
    idx.add_with_ids(xb[gone[:1]], gone[:1])
    assert idx.ntotal == 5001 - len(gone)
    _, I = idx.search(xb[gone[:1]], 1)
    assert I[0, 0] == gone[0]
    idx.reset()
    assert idx.ntotal == 0
    D, I = idx.search(xq[:2], 5)
    assert np.all(I == -1)


def test_empty_index():
    idx = vqindex.index_factory(16, "HNSW8,BQ4", vqindex.METRIC_L2)
    D, I = idx.search(np.ones((3, 16), np.float32), 4)
    assert np.all(I == -1) and np.all(np.isinf(D))


def test_few_vectors_pad():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    idx = vqindex.index_factory(16, "HNSW8,BQ4", vqindex.METRIC_L2)
    idx.add(x)
    D, I = idx.search(x, 8)
    assert np.all(I[:, :5] >= 0) and np.all(I[:, 5:] == -1) and np.all(np.isinf(D[:, 5:]))
    assert sorted(I[0, :5]) == list(range(5))


def test_concurrent_searches(built, minilm):
    xq = minilm[1]
    ref = [built.search(xq[i::4], 10) for i in range(4)]
    out = [None] * 4

    def work(i):
        out[i] = built.search(xq[i::4], 10, SearchParams(num_threads=2 if i % 2 else 1))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(out[i][1], ref[i][1])
        np.testing.assert_array_equal(out[i][0], ref[i][0])


def test_graph_arrays_roundtrip_and_incremental_add(built, minilm):
    # a clone from the graph arrays (what files hold) searches the same; a later add
    # extends that graph (no rebuild, no warning): the old nodes' own lists only gain
    # reverse links, and the new vectors are found
    xb, xq, gt = minilm
    g = built.graph_arrays()
    n = built.ntotal
    assert g["levels"].shape == (n,) and g["levels"].dtype == np.uint8
    assert g["neighbors"].dtype == np.int32 and g["neighbors"].max() < n
    assert 0 <= g["entry_point"] < n
    clone = vqindex.index_factory(384, "HNSW32,BQ4", vqindex.METRIC_COSINE)
    clone.codec = built.codec
    clone._set_codes(built._codes.copy())
    clone._set_sf(built._sf.copy())
    clone._set_ids(built._ids.copy())
    clone.set_graph_arrays(g)
    assert not clone.has_float_graph_builder
    np.testing.assert_array_equal(clone.search(xq, 10)[1], built.search(xq, 10)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone.add(xq[:10])
    assert clone.ntotal == n + 10
    assert np.array_equal(clone.graph_arrays()["levels"][:n], g["levels"])
    _, I = clone.search(xq, 10)
    assert recall(I, gt) >= 0.85
    _, I = clone.search(xq[:10], 1)
    assert np.mean(I[:, 0] == np.arange(n, n + 10)) >= 0.9
