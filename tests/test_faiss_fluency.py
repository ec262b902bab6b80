"""faiss habits on vqindex indexes: attributes, faiss parameter objects and selectors,
preallocated outputs, ParameterSpace, threads, cosine metric_type with faiss's own helpers,
argument validation, repr, pickling, interop methods (issue 11 items 1, 3-6)."""
import copy
import os
import pickle

import faiss
from faiss.contrib.evaluation import knn_intersection_measure
import numpy as np
import pytest

import vqindex

D_ = 32
K = 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((24, D_)).astype(np.float32) * 3
    xb = (centers[rng.integers(0, 24, 3000)] + rng.standard_normal((3000, D_))).astype(np.float32)
    xq = (centers[rng.integers(0, 24, 30)] + rng.standard_normal((30, D_))).astype(np.float32)
    return xb, xq


def _built(desc, data, metric="l2"):
    xb, _ = data
    index = vqindex.index_factory(D_, desc, metric)
    index.train(xb)
    index.add(xb)
    return index


@pytest.fixture(scope="module")
def ivf(data):
    return _built("IVF64,EDEN4", data)


# ---------------------------------------------------------------------- 1. attributes
def test_nprobe_attribute_changes_results_like_searchparams(ivf, data):
    _, xq = data
    ivf.nprobe = 1
    _, i1 = ivf.search(xq, K)
    ivf.nprobe = 64
    assert ivf.nprobe == 64 and ivf.params.nprobe == 64
    _, i64 = ivf.search(xq, K)
    _, ip = ivf.search(xq, K, params=vqindex.SearchParams(nprobe=64))
    assert not np.array_equal(i1, i64)          # the attribute is not silently ignored
    np.testing.assert_array_equal(i64, ip)
    ivf.nprobe = np.int64(8)                    # numpy integers work wherever ints do
    assert type(ivf.nprobe) is int and ivf.nprobe == 8
    ivf.nprobe = 1


def test_search_parameter_on_wrong_index_kind_raises(data):
    flat = vqindex.index_factory(D_, "EDEN4")
    with pytest.raises(AttributeError, match="nprobe"):
        flat.nprobe = 8
    with pytest.raises(AttributeError, match="efSearch"):
        _ = flat.efSearch
    with pytest.raises(AttributeError, match="k_factor"):
        vqindex.index_factory(D_, "IVF8,EDEN4").k_factor = 2
    with pytest.raises(AttributeError, match="max_codes"):
        vqindex.index_factory(D_, "IVF8,EDEN4").max_codes = 100   # faiss-only spelling
    with pytest.raises(AttributeError):
        _ = flat.hnsw


def test_refine_forwards_base_parameters(data):
    idx = vqindex.index_factory(D_, "IVF16,EDEN4,RFlat")
    idx.nprobe = 7
    idx.k_factor = 3
    assert idx.base.params.nprobe == 7 and idx.params.k_factor == 3.0
    assert idx.search_parameter_names() == {"nprobe", "k_factor"}
    with pytest.raises(ValueError, match="k_factor"):
        idx.k_factor = 0.5


@pytest.mark.parametrize("desc", ["HNSW16,Flat", "HNSW16,EDEN4"])
def test_efsearch_attribute_and_faiss_hnsw_spelling(desc, data):
    _, xq = data
    idx = _built(desc, data)
    idx.hnsw.efSearch = 200
    assert idx.efSearch == 200 and idx.hnsw.efSearch == 200 and idx.params.efSearch == 200
    _, a = idx.search(xq, K)
    _, b = idx.search(xq, K, params=vqindex.SearchParams(efSearch=200))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="efSearch"):
        idx.efSearch = 2 ** 31                 # bounded before any allocation


# ---------------------------------------------------------------------- faiss parameter objects
def test_faiss_search_parameters_ivf_with_idselector_batch(ivf, data):
    _, xq = data
    allow = np.arange(0, 3000, 7, dtype=np.int64)
    sp = faiss.SearchParametersIVF(nprobe=16, sel=faiss.IDSelectorBatch(allow))
    D, I = ivf.search(xq, K, params=sp)
    assert np.isin(I[I >= 0], allow).all() and (I >= 0).mean() > 0.9
    D2, I2 = ivf.search(xq, K, params=vqindex.SearchParams(nprobe=16, filter=allow))
    np.testing.assert_array_equal(I, I2)
    # the nprobe of the faiss object is used, not ignored
    _, I1 = ivf.search(xq, K, params=faiss.SearchParametersIVF(nprobe=1, sel=faiss.IDSelectorBatch(allow)))
    assert not np.array_equal(I, I1)


@pytest.mark.parametrize("desc", ["HNSW16,Flat", "HNSW16,EDEN4", "Flat", "IVF32,Flat"])
def test_faiss_idselector_range_and_not(desc, data):
    _, xq = data
    idx = _built(desc, data)
    sel = faiss.IDSelectorRange(500, 1500)
    params = (faiss.SearchParametersHNSW(efSearch=128, sel=sel) if "HNSW" in desc
              else faiss.SearchParametersIVF(nprobe=32, sel=sel) if "IVF" in desc
              else faiss.SearchParameters(sel=sel))
    _, I = idx.search(xq, K, params=params)
    assert ((I >= 500) & (I < 1500)).all()
    not_sel = faiss.IDSelectorNot(faiss.IDSelectorRange(0, 2900))
    _, I = idx.search(xq, K, params=vqindex.SearchParams(filter=not_sel, nprobe=None))
    ok = I[I >= 0]
    assert ok.size and (ok >= 2900).all()


def test_empty_allowlist_returns_nothing(ivf, data):
    _, xq = data
    D, I = ivf.search(xq, K, params=vqindex.SearchParams(filter=[]))
    assert (I == -1).all() and np.isinf(D).all()


def test_preallocated_outputs_are_filled_in_place(ivf, data):
    _, xq = data
    D = np.zeros((len(xq), K), np.float32)
    I = np.zeros((len(xq), K), np.int64)
    D2, I2 = ivf.search(xq, K, D=D, I=I)
    assert D2 is D and I2 is I
    ref = ivf.search(xq, K)
    np.testing.assert_array_equal(I, ref[1])
    np.testing.assert_array_equal(D, ref[0])
    with pytest.raises(ValueError, match="I must be"):
        ivf.search(xq, K, I=np.zeros((len(xq), K), np.int32))


def test_parameter_space_sets_defaults_from_faiss_strings(data):
    idx = vqindex.index_factory(D_, "IVF16,EDEN4,RFlat")
    ps = vqindex.ParameterSpace()
    ps.set_index_parameters(idx, "nprobe=12,k_factor_rf=3")
    assert idx.nprobe == 12 and idx.k_factor == 3.0
    with pytest.raises(ValueError, match="efSearch"):
        ps.set_index_parameters(idx, "nprobe=4,efSearch=64")
    assert idx.nprobe == 12  # all or nothing
    assert "nprobe" in ps.combination_ranges(idx)


# ---------------------------------------------------------------------- argument validation
@pytest.mark.parametrize("bad,exc,word", [
    (dict(efSearch=2 ** 31), ValueError, "efSearch"),
    (dict(num_threads="2"), TypeError, "num_threads"),
    (dict(k_factor="2"), TypeError, "k_factor"),
    (dict(k_factor=1e6), ValueError, "k_factor"),
    (dict(nprobe=0), ValueError, "nprobe"),
    (dict(nprobe=2.5), TypeError, "nprobe"),
])
def test_bad_search_parameters_name_the_argument(bad, exc, word, data):
    _, xq = data
    idx = vqindex.index_factory(D_, "HNSW8,Flat")
    with pytest.raises(exc, match=word):
        idx.search(xq, K, params=vqindex.SearchParams(**bad))


def test_bad_scalars_rejected(ivf, data):
    _, xq = data
    with pytest.raises(ValueError, match="radius"):
        ivf.range_search(xq, float("nan"))
    with pytest.raises(TypeError, match="num_threads"):
        ivf.search(xq, K, num_threads="2")
    with pytest.raises(ValueError, match="d \\(dimension\\)"):
        vqindex.index_factory(2 ** 31, "EDEN4")
    with pytest.raises(ValueError, match="nlist"):
        vqindex.index_factory(D_, "IVF99999999999,EDEN4")
    with pytest.raises(TypeError, match="d \\(dimension\\)"):
        vqindex.index_factory(40.7, "Flat")
    with pytest.raises(TypeError, match="metric"):
        vqindex.index_factory(D_, "Flat", metric=True)


# ---------------------------------------------------------------------- 6. threads
def test_threads_default_all_cores_and_setter():
    assert vqindex.get_num_threads() == (os.cpu_count() or 1)
    try:
        vqindex.set_num_threads(1)
        assert vqindex.get_num_threads() == 1
        vqindex.set_num_threads(-1)
        assert vqindex.get_num_threads() == (os.cpu_count() or 1)
        with pytest.raises(TypeError, match="num_threads"):
            vqindex.set_num_threads("4")
    finally:
        vqindex.set_num_threads(0)
    assert vqindex.index_factory(D_, "EDEN4").params.num_threads is None


def test_num_threads_zero_and_minus_one_mean_all_cores(ivf, data):
    _, xq = data
    ref = ivf.search(xq, K, num_threads=1)
    for nt in (0, -1, 2):
        got = ivf.search(xq, K, num_threads=nt)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)


def test_benchmark_pins_threads_explicitly():
    import inspect
    from vqindex.bench import sweep
    src = inspect.getsource(sweep.VQIndexMethod.search)
    assert "num_threads=self.threads" in src


# ---------------------------------------------------------------------- 3. cosine + faiss helpers
@pytest.mark.parametrize("desc", ["Flat", "EDEN8"])
def test_cosine_index_is_a_similarity_for_faiss_helpers(desc, data):
    from faiss.contrib.exhaustive_search import range_search_max_results
    xb, xq = data
    idx = _built(desc, data, "cosine")
    assert idx.metric_type == faiss.METRIC_INNER_PRODUCT and idx.metric == "cosine"
    assert faiss.is_similarity_metric(idx.metric_type)
    lims, Dall, _ = idx.range_search(xq, 0.5)
    _, lim2, D2, I2 = range_search_max_results(idx, iter([xq[:10], xq[10:20], xq[20:]]), 0.5,
                                            max_results=len(Dall) // 3)
    assert 0 < len(D2) < len(Dall)
    # faiss kept the best (largest) similarities, not the worst
    assert D2.min() >= np.sort(Dall)[::-1][len(D2) - 1] - 1e-6
    xn = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    qn = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    ref = faiss.IndexFlatIP(D_)
    ref.add(xn)
    _, Iref = ref.search(qn, K)
    _, I = idx.search(xq, K)
    assert knn_intersection_measure(I, Iref) > (0.999 if desc == "Flat" else 0.8)


# ---------------------------------------------------------------------- 4. serialization
KINDS = ["EDEN4", "IVF32,RaBitQ4", "HNSW16,BQ2", "IVF32,EDEN4,RFlat", "TQprod4"]


@pytest.mark.parametrize("desc", KINDS)
def test_pickle_deepcopy_and_bytes_round_trips_give_identical_results(desc, data):
    _, xq = data
    idx = _built(desc, data, "cosine")
    if "IVF" in desc:
        idx.nprobe = 8
    ref = idx.search(xq, K)
    for other in (pickle.loads(pickle.dumps(idx)), copy.deepcopy(idx),
                  vqindex.deserialize_index(vqindex.serialize_index(idx)),
                  vqindex.clone_index(idx)):
        assert other is not idx and type(other) is type(idx) and other.metric == "cosine"
        got = other.search(xq, K)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_array_equal(got[0], ref[0])
    blob = vqindex.serialize_index(idx)
    assert isinstance(blob, bytes) and blob[:8] == b"VQINDEX\0"
    with pytest.raises(ValueError):
        vqindex.deserialize_index(blob[:-100])


def test_clone_is_independent(data):
    idx = _built("EDEN4", data)
    c = vqindex.clone_index(idx)
    c.remove_ids(np.arange(10))
    assert idx.ntotal == 3000 and c.ntotal == 2990


# ---------------------------------------------------------------------- 5. repr
def test_repr_says_what_the_index_is(ivf):
    r = repr(ivf)
    assert r.startswith("IndexIVFCodes('IVF64,EDEN4', d=32, metric='l2', ntotal=3000, nprobe=")
    assert "object at 0x" not in repr(vqindex.index_factory(D_, "HNSW8,Flat"))


# ---------------------------------------------------------------------- 3. interop methods
def test_add_sa_codes_equals_add(data):
    xb, xq = data
    a = _built("EDEN4", data)
    b = vqindex.index_factory(D_, "EDEN4")
    b.add_sa_codes(a.sa_encode(xb))
    np.testing.assert_array_equal(a.search(xq, K)[1], b.search(xq, K)[1])
    c = vqindex.index_factory(D_, "Flat")
    c.add_sa_codes(c.sa_encode(xb[:100]), ids=np.arange(1000, 1100))
    np.testing.assert_array_equal(c.reconstruct(1005), xb[5])


@pytest.mark.parametrize("desc", ["EDEN4", "IVF16,EDEN4", "Flat", "IVF16,Flat"])
def test_merge_from_equals_one_index(desc, data):
    xb, xq = data
    whole = _built(desc, data)
    a = vqindex.index_factory(D_, desc)
    a.train(xb)
    b = vqindex.clone_index(a) if "IVF" in desc and "Flat" not in desc else None
    if b is None:
        b = vqindex.index_factory(D_, desc)
        if "IVF" in desc:  # same partition: copy the trained quantizer's centroids
            b = vqindex.IndexIVFFlat(D_, 16, quantizer=_flat_quantizer(a.centroids))
    a.add(xb[:1500])
    b.add(xb[1500:])
    a.merge_from(b, add_id=1500)
    assert b.ntotal == 0 and a.ntotal == 3000
    if "IVF" in desc:
        a.nprobe = whole.nprobe = 4
    np.testing.assert_array_equal(a.search(xq, K)[1], whole.search(xq, K)[1])
    with pytest.raises(ValueError, match="merge_from"):
        a.merge_from(vqindex.index_factory(D_, "EDEN2" if "Flat" not in desc else "EDEN4"))


def _flat_quantizer(centroids):
    q = faiss.IndexFlatL2(D_)
    q.add(centroids)
    return q


@pytest.mark.parametrize("desc", ["IVF16,EDEN4", "Flat", "IVF16,EDEN4,RFlat"])
def test_search_and_reconstruct(desc, data):
    _, xq = data
    idx = _built(desc, data)
    D, I, R = idx.search_and_reconstruct(xq[:5], 4)
    assert R.shape == (5, 4, D_)
    np.testing.assert_allclose(R[2, 1], idx.reconstruct(int(I[2, 1])), rtol=0, atol=0)


def test_normalize_L2_in_place():
    x = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    x[3] = 0
    vqindex.normalize_L2(x)
    n = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(np.delete(n, 3), 1, rtol=1e-6)
    assert n[3] == 0
    with pytest.raises(TypeError):
        vqindex.normalize_L2(x.astype(np.float64))


@pytest.mark.parametrize("pre", ["OPQ8", "RR", "PCA24"])
def test_from_faiss_ivf_applies_linear_pretransform(pre, data):
    xb, xq = data
    fidx = faiss.index_factory(D_, f"{pre},IVF16,Flat")
    vt = faiss.downcast_VectorTransform(faiss.downcast_index(fidx).chain.at(0))
    if isinstance(vt, faiss.OPQMatrix):
        vt.niter, vt.niter_pq = 4, 2  # a quick OPQ: the test is about applying it
    fidx.train(xb)
    fidx.add(xb)
    d_in = faiss.downcast_index(fidx).chain.at(0).d_out
    codec = vqindex.codec_factory(d_in, "EDEN8")
    ours = vqindex.IndexIVFCodes.from_faiss_ivf(fidx, codec)
    assert isinstance(ours, vqindex.IndexPreTransform) and ours.d == D_
    ours.add(xb)
    ours.nprobe = faiss.extract_index_ivf(fidx).nprobe = 16
    _, If = fidx.search(xq, K)
    _, Io = ours.search(xq, K)
    assert knn_intersection_measure(Io, If) > 0.8
    assert ours.description.endswith("IVF16,EDEN8")


def test_from_faiss_ivf_refuses_nonlinear_pretransform(data):
    xb, _ = data
    fidx = faiss.index_factory(D_, "L2norm,IVF16,Flat")
    fidx.train(xb)
    with pytest.raises(ValueError, match="not linear"):
        vqindex.IndexIVFCodes.from_faiss_ivf(fidx, vqindex.codec_factory(D_, "EDEN4"))


# ---------------------------------------------------------------------- 5. docs
@pytest.mark.parametrize("cls", [vqindex.IndexFlatCodes, vqindex.IndexIVFCodes,
                                 vqindex.IndexHNSWCodes, vqindex.IndexRefine, vqindex.IndexFlat,
                                 vqindex.IndexIVFFlat, vqindex.IndexHNSWFlat,
                                 vqindex.IndexPreTransform, vqindex.ParameterSpace,
                                 vqindex.SearchParams])
def test_every_public_method_and_property_has_a_docstring(cls):
    import inspect
    missing = [name for name, val in inspect.getmembers(cls)
               if not name.startswith("_") and (callable(val) or isinstance(val, property))
               and not (inspect.getdoc(val) or "").strip()]
    assert not missing, f"{cls.__name__}: {missing}"
    for name in ("search", "range_search", "add_with_ids", "reconstruct_batch"):
        doc = inspect.getdoc(getattr(cls, name, None)) or "Parameters"
        assert "Parameters" in doc or "float32" in doc, (cls.__name__, name)


def test_docs_and_messages_name_no_path_outside_the_repository():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # the package's files are read where it is imported from (CI runs the suite against an
    # installed wheel, from an sdist whose own vqindex/ folder is removed)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(vqindex.__file__)))
    for rel in ("docs/faiss.md", "docs/codecs.md", "vqindex/__init__.py", "vqindex/factory.py",
                "vqindex/index/params.py", "vqindex/interop.py", "vqindex/index/float_flat.py"):
        with open(os.path.join(pkg_root if rel.startswith("vqindex/") else root, rel)) as f:
            text = f.read()
        assert "../shared" not in text and "/work/" not in text, rel
    with open(os.path.join(root, "README.md")) as f:
        assert "../shared/spec" not in f.read()
