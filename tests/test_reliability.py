"""Reliability: bad input gets a clear vqindex exception and leaves the index as it was;
magnitudes, ids, L2 distances and faiss failures never give a silent wrong answer."""
import warnings

import numpy as np
import pytest

import vqindex
from vqindex import errors
from vqindex._validation import MAX_NORM

D = 16
KINDS = ["EDEN4", "IVF4,EDEN4", "EDEN4,RFlat", "IVF4,TQmse4,RFlat", "HNSW8,EDEN4"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((400, D)).astype(np.float32)


def _built(desc, x, metric="l2"):
    idx = vqindex.index_factory(D, desc, metric)
    idx.train(x)
    idx.add(x)
    return idx


def _state(idx, q):
    """What a caller can observe: ntotal, sorted ids, a search."""
    Dq, Iq = idx.search(q, 5)
    return idx.ntotal, np.sort(np.asarray(idx.ids)), Dq, Iq


def _same(a, b):
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[3], b[3])


def test_exceptions_are_ours_and_builtin():
    assert issubclass(errors.IndexFileError, ValueError)
    assert issubclass(errors.NotTrainedError, RuntimeError)
    assert issubclass(errors.DatasetError, ValueError)
    assert issubclass(errors.IdNotFoundError, KeyError)
    assert issubclass(errors.TrainingError, RuntimeError)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.VQIndexError) and getattr(vqindex, name) is cls
    assert vqindex.io.IndexFileError is errors.IndexFileError
    assert vqindex.datasets.DatasetError is errors.DatasetError
    assert str(errors.IdNotFoundError("id 3 is not in the index")) == "id 3 is not in the index"


@pytest.mark.parametrize("desc", KINDS)
def test_bad_ids_are_refused_with_the_range(data, desc):
    idx = _built(desc, data)
    before = _state(idx, data[:3])
    for bad in ([-1, 7000], [-5, 7001], [2 ** 63, 7002], np.array([1.5, 2.0]),
                np.array([2 ** 64 - 1, 1], np.uint64), [7003, 7003]):
        with pytest.raises(errors.VQIndexError) as info:
            idx.add_with_ids(data[:2], bad)
        assert isinstance(info.value, (ValueError, TypeError))
        msg = str(info.value)
        assert "2^63 - 1" in msg or "duplicate" in msg or "integers" in msg
        _same(before, _state(idx, data[:3]))
    with pytest.raises(ValueError, match=r"\[0, 2\^63 - 1\]"):
        idx.remove_ids(np.array([-1]))
    _same(before, _state(idx, data[:3]))


@pytest.mark.parametrize("desc", KINDS)
def test_every_stored_id_is_returned_up_to_the_largest(data, desc):
    """Every kind (Refine included) returns every stored id, 0 and 2^63 - 1 too."""
    idx = vqindex.index_factory(D, desc)
    idx.train(data)
    ids = np.concatenate([[0, 2 ** 63 - 1, 2 ** 62], np.arange(10, 10 + 97)]).astype(np.int64)
    idx.add_with_ids(data[:100], ids)
    base = getattr(idx, "base", idx)
    if hasattr(base, "nlist"):
        base.params.nprobe = base.nlist
    if hasattr(idx, "base"):
        idx.params.k_factor = 8.0
    params = vqindex.SearchParams(efSearch=256) if hasattr(base, "M") else None
    _, I = idx.search(data[:100], 1, params=params) if params else idx.search(data[:100], 1)
    assert set(I[:, 0].tolist()) <= set(ids.tolist())
    found = set()
    _, I = (idx.search(data[:100], 100, params=params) if params else idx.search(data[:100], 100))
    for row in I:
        found |= set(row[row >= 0].tolist())
    assert found == set(ids.tolist())
    with pytest.raises(ValueError, match=r"2\^63 - 1"):
        idx.add(data[:1])  # no id after 2^63 - 1


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("desc", KINDS)
def test_overflowing_magnitudes_are_refused_and_change_nothing(data, desc, metric):
    idx = _built(desc, data, metric)
    before = _state(idx, data[:3])
    huge = data[:50] * np.float32(1e30)
    for call in (lambda: idx.add(huge), lambda: idx.add_with_ids(huge, np.arange(50) + 10 ** 6),
                 lambda: idx.search(huge[:2], 3), lambda: idx.range_search(huge[:2], 1.0)):
        with pytest.raises(errors.ValueOverflowError, match=r"2\^60"):
            call()
    near = np.full((2, D), 3e38 / np.sqrt(D), np.float32)
    with pytest.raises(ValueError, match="limit"):
        idx.add(near)
    f64 = np.full((1, D), 1e300)
    with pytest.raises(ValueError, match="float32 range"):
        idx.search(f64, 3)
    _same(before, _state(idx, data[:3]))


@pytest.mark.parametrize("desc", ["EDEN4", "IVF4,RaBitQ4", "BQ4,RFlat", "HNSW8,TQprod4"])
def test_magnitudes_at_the_limit_give_finite_ranked_distances(data, desc):
    x = data / np.linalg.norm(data, axis=1, keepdims=True) * np.float32(0.99 * MAX_NORM)
    idx = _built(desc, x.astype(np.float32))
    Dq, Iq = idx.search(x[:20], 5)
    assert np.isfinite(Dq).all() and (Iq >= 0).all() and (Dq >= 0).all()
    assert (np.diff(Dq, axis=1) >= 0).all()


def test_ivf_training_at_1e30_is_refused_not_aborted(data):
    idx = vqindex.index_factory(D, "IVF4,EDEN4")
    with pytest.raises(errors.ValueOverflowError):
        idx.train(data * np.float32(1e30))
    assert not idx.is_trained
    with pytest.raises(errors.NotTrainedError):
        idx.add(data)
    idx.train(data)
    idx.add(data)
    assert idx.ntotal == len(data)


def test_faiss_kmeans_failure_becomes_training_error(data, monkeypatch):
    import faiss

    class Boom:
        def __init__(self, *a, **kw):
            pass

        def train(self, x):
            raise RuntimeError("Error in ... invalid cluster assignment")

    idx = vqindex.index_factory(D, "IVF4,EDEN4")
    monkeypatch.setattr(faiss, "Kmeans", Boom)
    with pytest.raises(errors.TrainingError, match="k-means"):
        idx.train(data)
    assert not idx.is_trained and idx.quantizer.ntotal == 0


@pytest.mark.parametrize("desc", ["EDEN4", "IVF4,EDEN4", "EDEN4,RFlat"])
def test_add_failing_midway_leaves_the_index_unchanged(data, desc, monkeypatch):
    idx = _built(desc, data)
    before = _state(idx, data[:3])
    base = getattr(idx, "base", idx)
    calls = {"n": 0}
    real = type(base)._encode_rows

    def flaky(self, x, lists, nt):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError("simulated")
        return real(self, x, lists, nt)

    monkeypatch.setattr(type(base), "_encode_rows", flaky)
    monkeypatch.setattr(type(base), "add_chunk_bytes", 1)  # many encoding steps
    big = np.random.default_rng(0).standard_normal((3000, D)).astype(np.float32)
    with pytest.raises(MemoryError):
        idx.add(big)
    monkeypatch.undo()
    _same(before, _state(idx, data[:3]))
    idx.add(big[:10])
    assert idx.ntotal == before[0] + 10


@pytest.mark.parametrize("desc", KINDS)
def test_failing_selector_removes_nothing(data, desc):
    idx = _built(desc, data)
    before = _state(idx, data[:3])

    class Broken:
        def is_member(self, i):
            if i > 200:
                raise RuntimeError("selector failed")
            return True

    with pytest.raises(RuntimeError, match="selector failed"):
        idx.remove_ids(Broken())
    _same(before, _state(idx, data[:3]))


@pytest.mark.parametrize("desc", ["TQmse4", "TQprod4", "IVF4,TQprod4", "HNSW8,TQmse4",
                                  "TQmse4,RFlat"])
def test_l2_distances_are_never_negative(data, desc):
    idx = _built(desc, data)
    Dq, _ = idx.search(data[:200], 5)
    assert (Dq >= 0).all()
    lims, Dr, _ = idx.range_search(data[:50], 1.0)
    assert (Dr >= 0).all()


def test_estimate_refuses_tables_of_another_codec(data):
    a = vqindex.codec_factory(D, "EDEN4")
    tables = a.prepare_queries(data[:2])
    for other in (vqindex.codec_factory(D, "RaBitQ4"), vqindex.codec_factory(2 * D, "EDEN4"),
                  vqindex.codec_factory(D, "EDEN4", seed=9)):
        codes = other.encode(np.zeros((3, other.d), np.float32))
        with pytest.raises(errors.CodecMismatchError, match="another codec"):
            other.estimate(tables, codes)
    assert np.isfinite(a.estimate(tables, a.encode(data[:5]))).all()


@pytest.mark.parametrize("desc", KINDS)
def test_reconstruct_bounds_checked_before_allocating(data, desc):
    idx = _built(desc, data)
    with pytest.raises(ValueError, match="exceeds ntotal"):
        idx.reconstruct_n(0, 10 ** 12)
    with pytest.raises(ValueError, match=">= 0"):
        idx.reconstruct_n(0, -3)
    with pytest.raises(ValueError, match=r"i0 must be in \[0, "):
        idx.reconstruct_n(-1, 2)
    with pytest.raises(TypeError, match="integer"):
        idx.reconstruct_n(0, 2.5)
    assert idx.reconstruct_n(np.int64(2), np.int32(3)).shape == (3, D)
    assert idx.reconstruct_batch(np.array([1, 5])).shape == (2, D)
    with pytest.raises(KeyError, match="not in the index"):
        idx.reconstruct(10 ** 9)
    assert len(idx.ids) == idx.ntotal and idx.sa_code_size == idx.codec.code_size


def test_untrained_ivf_says_so(data):
    idx = vqindex.index_factory(D, "IVF4,EDEN4")
    with pytest.raises(errors.NotTrainedError, match="train"):
        idx.add(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Dq, Iq = idx.search(data[:2], 3)  # an empty index: no results, no error
    assert (Iq == -1).all()
