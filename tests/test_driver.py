"""The search core: the driver's results against the float LUT reference, for every index kind,
codec and metric.

Reference: the estimates of the float LUT scan (`kernels.scan.estimate_dense`, the estimator of
spec 1.4 with its own LUTs and summation order) over the rows the index may return (all codes
for Flat, the probed lists for IVF), then an exact top-k. The driver computes the same
estimates by decode-dot, so with a shortlist as deep as the index (`fastscan_min = n`) the ids
must be the reference's and the distances equal within float32 rounding (rtol 1e-4 of the
distance scale: two float32 sums of ~D terms in different orders). With the default shortlist
the fast scan may only lose a reference neighbour when the uint8 LUT rounding (or the
surrogate layout) misranks it: recall against the reference >= 0.97 (exact layouts) / 0.93
(surrogates), measured with margin on these seeds; returned distances are still exact.
"""
import numpy as np
import pytest

import vqindex
from vqindex.kernels import scan as _scan

from conftest import gauss, load_angular

CODECS = ["EDEN4", "EDEN2", "EDEN1", "TQmse3", "TQprod4", "RaBitQ1", "RaBitQ4", "RaBitQ5",
          "BQ4", "BQ2", "BQ1", "EDEN8"]
METRICS = [vqindex.METRIC_L2, vqindex.METRIC_INNER_PRODUCT, vqindex.METRIC_COSINE]
K = 10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    # clustered data, so IVF lists differ in size and neighbours are meaningful
    centers = gauss(40, 48, 1) * 2.0
    xb = (centers[rng.integers(0, 40, 3000)] + gauss(3000, 48, 2)).astype(np.float32)
    xq = (centers[rng.integers(0, 40, 40)] + gauss(40, 48, 3)).astype(np.float32)
    return xb, xq


def _prep(index, x):
    if index.metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, np.float32)


def _ref_ip(codec, x, codes, sf):
    """sum_a scale_a * acc_a by the float LUT scan, (nq, n)."""
    qt = codec.prepare_queries(x)
    sf2 = np.ascontiguousarray(sf, np.float32).copy()
    sf2[:, codec.n_acc:] = 0.0
    out = np.empty((x.shape[0], codes.shape[0]), np.float32)
    _scan.estimate_dense(codes, codec._secs, qt.luts, sf2, codec.n_acc,
                         np.zeros(x.shape[0], np.float32), np.float32(0), np.float32(1), out)
    return qt, out


def _reference(index, x, k):
    """(distances, ids, est (nq, n live), column of each storage row) of the float LUT
    reference over the rows the index may return."""
    codec = index.codec
    rows, lists = index._store.list_of_rows()
    codes, sf, ids = index._codes[rows], index._sf[rows], index._ids[rows]
    col = np.full(index._codes.shape[0], -1, np.int64)
    col[rows] = np.arange(rows.shape[0])
    x = _prep(index, x)
    qt, ip = _ref_ip(codec, x, codes, sf)
    n_acc = codec.n_acc
    is_ip = index.metric_type != vqindex.METRIC_L2
    nq, n = ip.shape
    if isinstance(index, vqindex.IndexIVFCodes):
        probes, add = index._probe(x, min(index.params.nprobe, index.nlist), 1)
        base = np.full((nq, n), np.nan, np.float32)
        for q in range(nq):
            for p, l in enumerate(probes[q]):
                base[q, lists == l] = add[q, p]
    else:
        base = np.repeat((qt.qdotc if is_ip else qt.qnorm2)[:, None], n, 1)
    if is_ip:
        est = base + sf[None, :, n_acc + 1] + ip
        key = -est
    else:
        est = base + sf[None, :, n_acc] - 2.0 * ip
        key = est
        est = np.maximum(est, np.float32(0))  # reported L2 distances are clamped at 0
    key = np.where(np.isnan(key), np.inf, key)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(est, order, 1), ids[order], est, col


def _build(kind, codec, metric, xb):
    d = xb.shape[1]
    if kind == "flat":
        index = vqindex.index_factory(d, codec, metric)
    elif kind == "ivf":
        index = vqindex.index_factory(d, f"IVF16,{codec}", metric)
        index.train(xb)
        index.params.nprobe = 4
    index.add(xb)
    return index


def _scale(est):
    return float(np.nanmax(np.abs(est[np.isfinite(est)])))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("codec", CODECS)
def test_driver_equals_float_lut_reference(data, kind, codec, metric):
    xb, xq = data
    index = _build(kind, codec, metric, xb)
    ref_d, ref_i, est, col = _reference(index, xq, K)
    tol = 1e-4 * _scale(est)
    # full-depth shortlist: the fast scan only orders the candidates, rescoring is exact
    index.fastscan_min = index.ntotal
    D, I = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
    np.testing.assert_allclose(D, ref_d, rtol=0, atol=tol)
    same = (I == ref_i) | (np.abs(D - ref_d) <= tol)  # ties may swap ids
    assert same.all()
    # default shortlist: exact distances of what is returned, recall of the reference
    index.fastscan_min = type(index).fastscan_min
    D, I = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
    rows = col[index._positions_of(I.reshape(-1))].reshape(I.shape)
    np.testing.assert_allclose(D, np.take_along_axis(est, rows, 1), rtol=0, atol=tol)
    recall = np.mean([len(set(I[q]) & set(ref_i[q])) / K for q in range(len(xq))])
    assert recall >= (0.97 if index.codec.scan_layout.exact else 0.93), recall
    # the exact back end (no fast scan) gives the reference too
    index.fastscan = False
    D2, I2 = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
    np.testing.assert_allclose(D2, ref_d, rtol=0, atol=tol)


@pytest.mark.parametrize("codec", ["EDEN4", "TQprod4", "BQ4"])
def test_threads_do_not_change_results(data, codec, parallel_always):
    xb, xq = data
    for kind in ("flat", "ivf"):
        index = _build(kind, codec, vqindex.METRIC_L2, xb)
        a = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
        b = index.search(xq, K, params=vqindex.SearchParams(num_threads=2))
        c = [index.search(xq[i:i + 1], K, params=vqindex.SearchParams(num_threads=2))
             for i in range(5)]
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
        for i in range(5):
            np.testing.assert_array_equal(c[i][1][0], a[1][i])


@pytest.mark.parametrize("codec", ["EDEN4", "BQ4", "TQprod4"])
def test_filter_inside_the_driver(data, codec):
    xb, xq = data
    index = _build("flat", codec, vqindex.METRIC_L2, xb)
    allow = np.arange(0, 3000, 7)
    D, I = index.search(xq, K, params=vqindex.SearchParams(filter=allow, num_threads=1))
    assert np.isin(I, allow).all()
    ref = vqindex.index_factory(48, codec, vqindex.METRIC_L2)
    ref.add_with_ids(xb[allow], allow)
    D2, I2 = ref.search(xq, K, params=vqindex.SearchParams(num_threads=1))
    np.testing.assert_allclose(D, D2, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_range_search_matches_knn(data, metric):
    xb, xq = data
    for kind in ("flat", "ivf"):
        index = _build(kind, "EDEN4", metric, xb)
        index.fastscan = False
        D, I = index.search(xq, 30, params=vqindex.SearchParams(num_threads=1))
        radius = float(np.median(D[:, 20]))
        lims, Dr, Ir = index.range_search(xq, radius, params=vqindex.SearchParams(num_threads=1))
        for q in range(len(xq)):
            got = dict(zip(Ir[lims[q]:lims[q + 1]], Dr[lims[q]:lims[q + 1]]))
            ok = D[q] > radius if metric != vqindex.METRIC_L2 else D[q] < radius
            # every knn result inside the radius is in the range result, with its distance
            for i, dist in zip(I[q][ok], D[q][ok]):
                assert i in got and abs(got[i] - dist) <= 1e-5 * max(1.0, abs(dist))
            for dist in got.values():
                assert (dist > radius) if metric != vqindex.METRIC_L2 else (dist < radius)
            if ok.all():  # more than 30 inside: the range result holds at least those
                assert len(got) >= 30
            else:
                assert len(got) == ok.sum()


def test_real_data_recall_bq4_and_eden4(data_dir):
    """Fast-scan with the default shortlist on real embeddings keeps the exact scan's recall
    (ground truth from the file): within 0.01 for exact layouts, 0.02 for BQ4's surrogate."""
    xb, xq, nbrs = load_angular(data_dir, "pypi-minilm-384-angular-tiny.hdf5")
    for codec, slack in (("EDEN4", 0.01), ("BQ4", 0.02), ("TQprod4", 0.01)):
        index = vqindex.index_factory(384, codec, vqindex.METRIC_COSINE)
        index.add(xb)
        _, I = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
        index.fastscan = False
        _, I2 = index.search(xq, K, params=vqindex.SearchParams(num_threads=1))
        rec = np.mean([len(set(I[q]) & set(nbrs[q, :K])) / K for q in range(len(xq))])
        rec2 = np.mean([len(set(I2[q]) & set(nbrs[q, :K])) / K for q in range(len(xq))])
        assert rec >= rec2 - slack, (codec, rec, rec2)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_incremental_storage_matches_one_batch(data, kind):
    """Adds in many batches, removals and re-adds give the index one batch builds: the list
    store moves and repacks only touched lists, and results must not depend on history."""
    xb, xq = data
    one = _build(kind, "EDEN4", vqindex.METRIC_L2, xb)
    inc = _build(kind, "EDEN4", vqindex.METRIC_L2, xb)  # same training
    inc.reset()
    ids = np.arange(3000)
    rng = np.random.default_rng(5)
    for part in np.array_split(rng.permutation(3000), 37):
        inc.add_with_ids(xb[part], ids[part])
        inc.search(xq[:2], K)  # packs blocks between adds (incremental repacking)
    gone = rng.choice(3000, 500, replace=False)
    assert inc.remove_ids(gone) == 500
    inc.search(xq[:2], K)
    inc.add_with_ids(xb[gone], gone)
    assert inc.ntotal == 3000 and sorted(inc.ids) == list(range(3000))
    P = vqindex.SearchParams(num_threads=1)
    D1, I1 = one.search(xq, K, params=P)
    D2, I2 = inc.search(xq, K, params=P)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inc.reconstruct_n(0, 50), one.reconstruct_n(0, 50), atol=1e-6)
    # holes are reclaimed: after many removals the row arrays stay near the live size
    inc.remove_ids(np.arange(0, 3000, 2))
    assert inc._store.used <= 2 * inc.ntotal + 4096
    D3, I3 = inc.search(xq, K, params=P)
    assert not np.isin(I3, np.arange(0, 3000, 2)).any()


@pytest.mark.parametrize("codec", CODECS + ["TQprod4G", "RR,EDEN4"])
def test_fused_query_tables_equal_the_general_path(codec):
    """prepare_queries_fast (one compiled call) makes the same tables as the step-by-step path
    (Rotation.apply, query_spaces, build_nibble_luts, quantize_luts); codecs it does not cover
    (dense rotation, Gaussian QJL) take the general path."""
    c = vqindex.codec_factory(48, codec)
    x = gauss(33, 48, 4)
    for rows in (slice(0, 1), slice(0, 5), slice(0, 33)):
        fast = c._prepare_trusted(x[rows], 1)
        c._derived_cache["fast_prepare"] = None  # force the general path
        ref = c._prepare_trusted(x[rows], 1)
        del c._derived_cache["fast_prepare"]
        np.testing.assert_array_equal(fast.spaces, ref.spaces)
        np.testing.assert_allclose(fast.qnorm2, ref.qnorm2, rtol=1e-6)
        for a, b in zip(fast.fast_luts(), ref.fast_luts()):
            np.testing.assert_array_equal(a, b)
    covered = c._fast_prepare_args() is not None
    assert covered == (codec not in ("TQprod4G", "RR,EDEN4"))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("codec", ["EDEN4", "TQprod4", "BQ4", "RaBitQ5"])
def test_fused_small_searches_equal_the_batch_path(data, kind, codec, metric):
    """Searches of <= fused_max_queries queries on one thread run in one compiled call
    (search_fused); they must give the batch path's ids and distances."""
    xb, xq = data
    index = _build(kind, codec, metric, xb)
    P = vqindex.SearchParams(num_threads=1)
    D, I = index.search(xq, K, params=P)  # 40 queries: the batch path
    assert index.fused_max_queries < len(xq)
    for q0 in range(0, 12, 3):
        d, i = index.search(xq[q0:q0 + 3], K, params=P)
        np.testing.assert_array_equal(i, I[q0:q0 + 3])
        np.testing.assert_allclose(d, D[q0:q0 + 3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_written_out_stable_argsort_is_numpys(dtype):
    """kernels.topk.argsort_stable (the one sort of every compiled search: top-k output,
    shortlists, probes, graph neighbour selection) orders exactly as
    np.argsort(kind="stable"): ties keep their input order, NaN goes last; sizes around the
    insertion-run (16) and merge-width boundaries."""
    from vqindex.kernels.topk import argsort_stable
    rng = np.random.default_rng(11)
    for n in [0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 257, 1000]:
        for few in (3, 1000):  # many ties, few ties
            a = rng.integers(0, few, n).astype(dtype)
            if dtype == np.float32 and n > 4:
                a[rng.integers(0, n, n // 5)] = np.nan
                a[rng.integers(0, n, n // 7)] = np.inf
                a[rng.integers(0, n, n // 7)] = -np.inf
            got = argsort_stable(a)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, np.argsort(a, kind="stable"), err_msg=f"n={n}")


def test_small_calls_run_the_serial_twins():
    """A search whose work is below kernels._threads.PARALLEL_MIN_WORK runs the serial twins
    even with two threads asked for (a thread-pool launch costs more than such a call, and
    a first small search must not pay seconds of compile time for the parallel twins); a
    large enough one runs the parallel twins. Checked in a fresh process: numba lists a
    dispatcher's signatures once it has compiled or loaded them."""
    import subprocess
    import sys
    code = """
import numpy as np, vqindex
from vqindex.kernels import driver, _threads
rng = np.random.default_rng(0)
x = rng.standard_normal((3000, 32)).astype(np.float32)
p = vqindex.SearchParams(num_threads=2)
for desc in ("EDEN4", "IVF8,EDEN4"):
    ix = vqindex.index_factory(32, desc)
    ix.train(x)
    ix.add(x)
    ix.search(x[:10], 5, params=p)
par = [f.parallel for f in (driver.fastscan_search, driver.prepare_queries_fast,
                            driver.select_probes, driver.build_nibble_luts)]
assert all(not f.signatures for f in par), [f.signatures for f in par]
_threads.PARALLEL_MIN_WORK = 0
ix.search(x[:10], 5, params=p)
assert driver.fastscan_search.parallel.signatures
assert driver.select_probes.parallel.signatures
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
