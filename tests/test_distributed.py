"""vqindex.distributed.ShardedIndex on a local Ray (2 CPUs), one Ray session for the module.

The sharded index must answer as one index would: the codecs are data-oblivious and seeded,
so with an exact scan the merged top-k equals the single index's (ids and distances), and it
must not lose an acknowledged add when a shard actor is killed and restarted.
"""
import json
import os
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the distributed extra (ray) is not installed")

import vqindex  # noqa: E402
from vqindex.distributed import (ClusterConnectionError, ShardedIndex,  # noqa: E402
                                 ShardUnavailableError, merge_topk, route)
from vqindex.distributed._log import OP_ADD, OP_REMOVE, ShardLog  # noqa: E402

D = 32
#: shard actors reserve little CPU so that several indexes of this module fit in 2 CPUs
CPUS = 0.1


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _data(n, nq=20, seed=0, d=D):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)).astype(np.float32),
            rng.standard_normal((nq, d)).astype(np.float32))


def _pair(desc, metric, xb, ids=None, num_shards=2, **kw):
    single = vqindex.index_factory(D, desc, metric)
    sharded = ShardedIndex(D, desc, metric, num_shards=num_shards, num_cpus=CPUS, **kw)
    single.train(xb)
    sharded.train(xb)
    if ids is None:
        single.add(xb)
        sharded.add(xb)
    else:
        single.add_with_ids(xb, ids)
        sharded.add_with_ids(xb, ids)
    return single, sharded


@pytest.fixture(scope="module")
def refine_pair():
    """IVF16,EDEN4,RFlat (L2) over 1500 vectors: single index and 2 shards."""
    xb, _ = _data(1500, seed=1)
    single, sharded = _pair("IVF16,EDEN4,RFlat", "l2", xb)
    yield single, sharded, xb
    sharded.close()


def _exact(k, n):  # every vector reranked by its exact float distance
    return vqindex.SearchParams(nprobe=16, k_factor=float(n))


# ---------------------------------------------------------------------- pure pieces
def test_route_is_a_fixed_balanced_function_of_the_id():
    ids = np.arange(100000, dtype=np.int64)
    r = route(ids, 4)
    assert np.array_equal(r, route(ids.copy(), 4))
    counts = np.bincount(r, minlength=4)
    assert counts.min() > 0.97 * 25000 and counts.max() < 1.03 * 25000
    # pinned values: the routing is part of the saved format and must never change
    assert route(np.array([0, 1, 2, 3], np.int64), 3).tolist() == [1, 2, 1, 0]


def test_only_a_started_sharded_index_imports_ray():
    import subprocess
    import sys
    code = ("import sys, vqindex, vqindex.distributed, vqindex.cli; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_merge_topk_is_exact_with_faiss_padding():
    D1 = np.array([[0.1, 0.5, np.inf]], np.float32)
    I1 = np.array([[4, 6, -1]])
    D2 = np.array([[0.3, np.inf, np.inf]], np.float32)
    I2 = np.array([[9, -1, -1]])
    Dm, Im = merge_topk([D1, D2], [I1, I2], 4, is_ip=False)
    assert Im.tolist() == [[4, 9, 6, -1]]
    assert Dm[0, :3].tolist() == pytest.approx([0.1, 0.3, 0.5]) and Dm[0, 3] == np.inf
    Dm, Im = merge_topk([-D1, -D2], [I1, I2], 4, is_ip=True)  # larger is better
    assert Im.tolist() == [[4, 9, 6, -1]] and Dm[0, 3] == -np.inf
    # many shards (the argpartition path): the same as sorting everything
    rng = np.random.default_rng(0)
    Ds = [np.sort(rng.random((50, 5)).astype(np.float32), 1) for _ in range(8)]
    Is = [rng.permutation(10 ** 6)[:250].reshape(50, 5) for _ in range(8)]
    Dm, Im = merge_topk(Ds, Is, 5, is_ip=False)
    allD, allI = np.concatenate(Ds, 1), np.concatenate(Is, 1)
    order = np.argsort(allD, 1, kind="stable")[:, :5]
    assert np.array_equal(Im, np.take_along_axis(allI, order, 1))
    assert np.array_equal(Dm, np.take_along_axis(allD, order, 1))


def test_shard_log_drops_a_torn_tail_and_rejects_inner_corruption(tmp_path):
    path = tmp_path / "s.log"
    log = ShardLog(path, 4)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    log.append(OP_ADD, 1, np.array([5, 6]), x)
    log.append(OP_REMOVE, 2, np.array([5]))
    end = log.nbytes
    log.close()
    with open(path, "ab") as f:  # a record cut short: the process died before fsync returned
        f.write(b"VQLR\x01\x00\x00\x00" + b"\x03" * 10)
    log = ShardLog(path, 4)
    recs = list(log.replay())
    assert [(op, seq) for op, seq, _, _ in recs] == [(OP_ADD, 1), (OP_REMOVE, 2)]
    assert np.array_equal(recs[0][3], x) and recs[1][2].tolist() == [5]
    assert os.path.getsize(path) == end
    log.close()
    raw = bytearray(path.read_bytes())
    raw[30] ^= 0xFF  # inside the first record's payload, more records follow
    path.write_bytes(bytes(raw))
    log = ShardLog(path, 4)
    with pytest.raises(vqindex.IndexFileError, match="corrupted"):
        list(log.replay())
    log.close()


# ---------------------------------------------------------------------- same answers
def test_exact_scan_merged_topk_equals_single_index(refine_pair):
    single, sharded, xb = refine_pair
    _, xq = _data(1500, seed=2)
    assert sharded.ntotal == single.ntotal == 1500
    for k in (1, 10):
        p = _exact(k, 1500)
        Ds, Is = single.search(xq, k, params=p)
        Dd, Id = sharded.search(xq, k, params=p)
        assert np.array_equal(Is, Id)
        assert np.array_equal(Ds, Dd)  # same float kernels on the same vectors: bit-equal


def test_exact_code_estimates_equal_single_index():
    """A Flat index below exact_below (256) scores every code exactly: the merged top-k of
    the shards' code estimates equals the single index's (cosine), so the shards encoded
    every vector as the single index did."""
    xb, xq = _data(240, seed=3)
    single, sharded = _pair("EDEN4", "cosine", xb)
    try:
        Ds, Is = single.search(xq, 7)
        Dd, Id = sharded.search(xq, 7)
        assert np.array_equal(Is, Id)
        np.testing.assert_allclose(Dd, Ds, rtol=0, atol=0)
    finally:
        sharded.close()


def test_fast_scan_recall_is_at_least_the_single_index():
    xb, xq = _data(3000, nq=100, seed=4)
    gt = vqindex.knn_ground_truth(xq, xb, 10, vqindex.METRIC_L2)[1]
    single, sharded = _pair("IVF16,RaBitQ4", "l2", xb)
    try:
        p = vqindex.SearchParams(nprobe=4)
        _, Is = single.search(xq, 10, params=p)
        _, Id = sharded.search(xq, 10, params=p)
        rs, rd = vqindex.recall_at_k(Is, gt, 10), vqindex.recall_at_k(Id, gt, 10)
        # each shard's shortlist covers the single index's candidates in that shard, so the
        # merged result can only gain; 0.005 absorbs estimate ties at the 10th place
        assert rd >= rs - 0.005, (rd, rs)
    finally:
        sharded.close()


def test_filters_and_range_search_match_single_index(refine_pair):
    single, sharded, xb = refine_pair
    _, xq = _data(1500, seed=5)
    allow = np.arange(0, 1500, 3)
    mask = np.zeros(1500, bool)
    mask[::7] = True
    for flt in (allow, mask):
        p = vqindex.SearchParams(nprobe=16, k_factor=1500.0, filter=flt)
        Ds, Is = single.search(xq, 5, params=p)
        Dd, Id = sharded.search(xq, 5, params=p)
        assert np.array_equal(Is, Id) and np.array_equal(Ds, Dd)
    radius = float(np.quantile(single.search(xq, 20, params=_exact(20, 1500))[0][:, -1], 0.5))
    ls, Ds, Is = single.range_search(xq, radius)
    ld, Dd, Id = sharded.range_search(xq, radius)
    assert np.array_equal(ls, ld)
    for q in range(len(xq)):
        a = dict(zip(Is[ls[q]:ls[q + 1]].tolist(), Ds[ls[q]:ls[q + 1]].tolist()))
        b = dict(zip(Id[ld[q]:ld[q + 1]].tolist(), Dd[ld[q]:ld[q + 1]].tolist()))
        assert a == b
        assert np.all(np.diff(Dd[ld[q]:ld[q + 1]]) >= 0)  # best first


def test_ids_remove_reconstruct_and_reset_follow_single_index_semantics():
    xb, xq = _data(600, seed=6)
    single, sharded = _pair("EDEN4,RFlat", "l2", xb[:300])
    try:
        assert np.array_equal(sharded.reconstruct_batch([0, 299, 17]), xb[[0, 299, 17]])
        assert np.array_equal(sharded.reconstruct(5), single.reconstruct(5))
        gone = np.array([299, 298, 3, 10 ** 9])
        assert sharded.remove_ids(gone) == single.remove_ids(gone) == 3
        with pytest.raises(KeyError):
            sharded.reconstruct(299)
        single.add(xb[300:400])  # sequential ids continue after the largest stored id
        sharded.add_chunk_bytes = 4 * D * 40  # this add goes in 3 calls of <= 40 rows
        sharded.add(xb[300:400])
        assert sharded.ntotal == single.ntotal == 397
        # the caller's default params apply on the shards, as on a single index
        single.params.k_factor = sharded.params.k_factor = 400.0
        assert np.array_equal(single.search(xq, 10)[1], sharded.search(xq, 10)[1])
        assert np.array_equal(sharded.reconstruct(298), xb[300])

        class Odd:  # a selector object (FAISS IDSelector style), evaluated on the shards
            def is_member(self, i):
                return i % 2 == 1 and i < 50
        assert sharded.remove_ids(Odd()) == single.remove_ids(Odd()) == 24
        assert sharded.ntotal == single.ntotal == 373
        sharded.reset()
        assert sharded.ntotal == 0
        Dd, Id = sharded.search(xq, 3)
        assert np.all(Id == -1) and np.all(Dd == np.inf)
        sharded.add(xb[:5])
        assert sharded.ntotal == 5 and np.array_equal(sharded.reconstruct(4), xb[4])
    finally:
        sharded.close()


def test_every_index_kind_and_codec_shards():
    """HNSW over TurboQuant codes, inner product, sparse ids (IVF, Flat, Refine, EDEN and
    RaBitQ are covered by the other tests)."""
    xb, xq = _data(800, seed=7)
    ids = np.arange(800) * 5 + 3
    # the shards' first search compiles the HNSW traversal, about a minute on a cold numba
    # cache of a loaded 2-core machine: more than the default 60 s a call waits for a shard
    single, sharded = _pair("HNSW16,TQmse4", "ip", xb, ids=ids, timeout=600)
    try:
        Is = single.search(xq, 10)[1]
        Id = sharded.search(xq, 10)[1]
        gt = ids[np.argsort(-(xq @ xb.T), 1)[:, :10]]
        # two graphs of 400 are searched instead of one of 800: recall may differ a little
        assert vqindex.recall_at_k(Id, gt) >= vqindex.recall_at_k(Is, gt) - 0.05
        assert np.isin(Id, ids).all()
    finally:
        sharded.close()


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_rejected_on_the_caller_with_single_index_messages(refine_pair):
    single, sharded, xb = refine_pair
    before = sharded.ntotal
    bad_calls = [
        lambda ix: ix.search(np.zeros((2, D + 1), np.float32), 3),
        lambda ix: ix.search(np.full((2, D), np.nan, np.float32), 3),
        lambda ix: ix.search(xb[:2], 0),
        lambda ix: ix.search(xb[:2], 3, params={"nprobe": 2}),
        lambda ix: ix.search(xb[:2], 3, params=vqindex.SearchParams(nprobe=0)),
        lambda ix: ix.range_search(xb[:2], float("nan")),
        lambda ix: ix.add(np.zeros((3, D - 1), np.float32)),
        lambda ix: ix.add_with_ids(xb[:3], [1, 2]),
        lambda ix: ix.add_with_ids(xb[:3], [5000, 5001, 5000]),
        lambda ix: ix.add_with_ids(xb[:2], [7, 5002]),
        lambda ix: ix.add_with_ids(xb[:2], np.array([1.5, 2.0])),
    ]
    for call in bad_calls:
        with pytest.raises(Exception) as want:
            call(single)
        with pytest.raises(type(want.value)) as got:
            call(sharded)
        assert str(got.value) == str(want.value)
    with pytest.raises(ValueError, match="1-D"):
        sharded.search(xb[:2], 3, params=vqindex.SearchParams(filter=np.zeros((2, 2), bool)))
    assert sharded.ntotal == before == single.ntotal


def test_bad_construction_arguments_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="num_shards must be an integer >= 1, got 0"):
        ShardedIndex(D, "EDEN4", "l2", num_shards=0)
    with pytest.raises(TypeError, match="num_shards"):
        ShardedIndex(D, "EDEN4", "l2", num_shards=2.0)
    with pytest.raises(ClusterConnectionError, match="127.0.0.1:1"):
        ShardedIndex(D, "EDEN4", "l2", num_shards=1, address="127.0.0.1:1")
    with pytest.raises(vqindex.IndexFileError, match="manifest"):
        ShardedIndex.load(tmp_path)


# ---------------------------------------------------------------------- files
def test_save_load_round_trip_and_manifest_checks(refine_pair, tmp_path):
    single, sharded, xb = refine_pair
    _, xq = _data(1500, seed=8)
    p = _exact(10, 1500)
    want = sharded.search(xq, 10, params=p)
    out = tmp_path / "shards"
    sharded.save(out)
    sharded.save(out)  # a second save replaces the first generation
    names = sorted(os.listdir(out))
    assert names == ["manifest.json", "shard-0000.g2.log", "shard-0000.g2.vqi",
                     "shard-0001.g2.log", "shard-0001.g2.vqi", "template.g2.vqi"]
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_shards"] == 2 and m["routing"]["hash"] == "splitmix64"
    assert sum(s["ntotal"] for s in m["shards"]) == 1500
    # every shard file is a plain vqindex file holding exactly the ids routed to it
    for i, s in enumerate(m["shards"]):
        part = vqindex.read_index(out / s["file"])
        ids = part.base.ids
        assert np.all(route(ids, 2) == i) and part.ntotal == s["ntotal"]
    loaded = ShardedIndex.load(out, num_cpus=CPUS)
    try:
        got = loaded.search(xq, 10, params=p)
        assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
        loaded.add_with_ids(xb[:3] + 1, [9000, 9001, 9002])  # acknowledged after the save
    finally:
        loaded.close()
    again = ShardedIndex.load(out, num_cpus=CPUS)  # file + log: the adds are back
    try:
        assert again.ntotal == 1503
        assert np.array_equal(again.reconstruct(9001), xb[1] + 1)
    finally:
        again.close()
    bad = dict(m, version=99)
    (out / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(vqindex.IndexFileError, match="version 99"):
        ShardedIndex.load(out)
    (out / "manifest.json").write_text(json.dumps(m))
    raw = bytearray((out / m["shards"][1]["file"]).read_bytes())
    raw[-40] ^= 1
    (out / m["shards"][1]["file"]).write_bytes(bytes(raw))
    with pytest.raises(vqindex.IndexFileError, match="sha256"):
        ShardedIndex.load(out, num_cpus=CPUS)


# ---------------------------------------------------------------------- failures
def test_killed_shard_restarts_and_loses_no_acknowledged_add():
    xb, xq = _data(3000, seed=9)
    index = ShardedIndex(D, "EDEN4,RFlat", "l2", num_shards=2, num_cpus=CPUS,
                         max_restarts=-1, timeout=120)
    acked, errors = [], []
    stop = threading.Event()

    def writer():
        for b in range(15):
            if stop.is_set():
                break
            ids = np.arange(b * 200, (b + 1) * 200)
            try:
                index.add_with_ids(xb[ids], ids)
                acked.append(ids)
            except Exception as exc:  # a failed add is not acknowledged; it must be reported
                errors.append(exc)
                break

    try:
        t = threading.Thread(target=writer)
        t.start()
        while len(acked) < 3 and t.is_alive():
            time.sleep(0.01)
        victim = index.shard_actors[0]
        ray.kill(victim, no_restart=False)  # mid-run: Ray restarts it, it replays its log
        t.join(timeout=300)
        stop.set()
        assert not errors, errors
        done = np.concatenate(acked)
        assert len(acked) == 15
        info = index.shard_info()
        assert info[0]["restarted"] and not info[1]["restarted"]
        assert index.ntotal == len(done)
        assert np.array_equal(index.reconstruct_batch(done), xb[done])
        single = vqindex.index_factory(D, "EDEN4,RFlat", "l2")
        single.add_with_ids(xb[done], done)
        p = vqindex.SearchParams(k_factor=float(len(done)))
        assert np.array_equal(single.search(xq, 10, params=p)[1],
                              index.search(xq, 10, params=p)[1])
    finally:
        stop.set()
        index.close()


def test_dead_or_slow_shard_raises_or_is_flagged_with_allow_partial():
    xb, xq = _data(400, seed=10)
    ids = np.arange(400)
    index = ShardedIndex(D, "EDEN4", "l2", num_shards=2, num_cpus=CPUS, max_restarts=0)
    try:
        index.add_with_ids(xb, ids)
        index.search(xq, 5)
        index.timeout = 1.0
        stall = index.shard_actors[0].stall.remote(4.0)  # a hung shard: no answer in time
        time.sleep(0.3)
        with pytest.raises(ShardUnavailableError, match="shard 0 of 2 .*timeout") as err:
            index.search(xq, 5)
        assert err.value.shards == (0,)
        ray.get(stall)
        ray.kill(index.shard_actors[1], no_restart=True)
        with pytest.raises(ShardUnavailableError, match="shard 1 of 2") as err:
            index.search(xq, 5)
        assert err.value.shards == (1,) and "allow_partial" in str(err.value)
        Dp, Ip, complete = index.search(xq, 5, allow_partial=True)
        assert not complete.any() and complete.shape == (len(xq),)
        assert np.all(route(Ip[Ip >= 0], 2) == 0)  # only the live shard's ids
        single = vqindex.index_factory(D, "EDEN4", "l2")
        single.add_with_ids(xb[route(ids, 2) == 0], ids[route(ids, 2) == 0])
        assert np.array_equal(single.search(xq, 5)[1], Ip)
    finally:
        index.close()


def test_concurrent_searches_during_adds(refine_pair):
    """Two threads search while the main thread adds; afterwards the sharded index equals the
    single index that got the same adds (runs last: it grows the module's pair)."""
    single, sharded, _ = refine_pair
    xb2, xq = _data(600, seed=11)
    ids2 = np.arange(600) + 100000
    errors = []

    def searcher():
        try:
            for _ in range(10):
                sharded.search(xq[:4], 5, params=vqindex.SearchParams(nprobe=4))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for b in range(6):
        sl = slice(b * 100, (b + 1) * 100)
        sharded.add_with_ids(xb2[sl], ids2[sl])
        single.add_with_ids(xb2[sl], ids2[sl])
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    p = _exact(5, 2100)
    Ds, Is = single.search(xq, 5, params=p)
    Dd, Id = sharded.search(xq, 5, params=p)
    assert np.array_equal(Is, Id) and np.array_equal(Ds, Dd)
