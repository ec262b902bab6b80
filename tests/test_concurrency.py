"""Concurrency with real threads: searches running while other threads add, remove_ids and
reset see one consistent state (no duplicate id, no removed id, the right distance for every
id, no exception); readers-only use is unaffected."""
import threading
import time

import numpy as np
import pytest

import vqindex

D, POOL, CORE = 32, 6000, 400
KINDS = ["EDEN4", "IVF8,EDEN4", "EDEN4,RFlat", "IVF8,TQmse4,RFlat", "HNSW8,EDEN4",
         "HNSW8,EDEN4,RFlat"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    return (rng.standard_normal((POOL, D)).astype(np.float32),
            rng.standard_normal((6, D)).astype(np.float32))


def _make(desc, pool):
    idx = vqindex.index_factory(D, desc, "l2")
    idx.train(pool[:2000])
    return idx


def _reference(desc, pool, q):
    """Exact estimates of every pool vector for every query: the distance a search must
    report for an id in any state of the index (an id's code does not depend on the others)."""
    ref = _make(desc, pool)
    ref.add_with_ids(pool, np.arange(POOL))
    base = getattr(ref, "base", ref)
    if hasattr(base, "fastscan"):
        base.fastscan = False
    params = {}
    if hasattr(base, "nlist"):
        params["nprobe"] = base.nlist
    if hasattr(ref, "base"):
        params["k_factor"] = 1.0
    if hasattr(base, "M"):
        params["efSearch"] = POOL
    Dr, Ir = ref.search(q, POOL, params=vqindex.SearchParams(**params))
    out = np.full((len(q), POOL), np.nan, np.float32)
    for r in range(len(q)):
        ok = Ir[r] >= 0
        out[r, Ir[r][ok]] = Dr[r][ok]
    return out


def _ids_of(idx):
    return np.asarray(idx.ids)


def _run(desc, pool, q, ops, with_reset, seed):
    idx = _make(desc, pool)
    idx.add_with_ids(pool[:CORE], np.arange(CORE))
    for nt in (1, 2):
        idx.search(q, 10, params=vqindex.SearchParams(num_threads=nt))
    ref = _reference(desc, pool, q)
    removed_at = {}          # id -> time its removal returned (ids are never reused)
    errors, bad = [], []
    done = threading.Event()
    nsearch = [0]

    def writer():
        rng = np.random.default_rng(seed)
        nxt = CORE
        try:
            for _ in range(ops):
                u = rng.random()
                if u < 0.45:
                    m = int(rng.choice([1, 40, 700, 4500]))
                    idx.add_with_ids(pool[np.arange(nxt, nxt + m) % POOL],
                                     np.arange(nxt, nxt + m))
                    nxt += m
                elif u < 0.9 or not with_reset:
                    ids = _ids_of(idx)
                    ids = ids[ids >= CORE]
                    if ids.size:
                        gone = rng.choice(ids, size=min(ids.size, int(rng.choice([1, 90, 3000]))),
                                          replace=False)
                        idx.remove_ids(gone)
                        t = time.monotonic()
                        removed_at.update((int(i), t) for i in gone)
                else:
                    before = _ids_of(idx)
                    idx.reset()
                    t = time.monotonic()
                    removed_at.update((int(i), t) for i in before)
                    idx.add_with_ids(pool[np.arange(nxt, nxt + CORE) % POOL],
                                     np.arange(nxt, nxt + CORE))
                    nxt += CORE
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"writer: {exc!r}")
        finally:
            done.set()

    def reader(nt):
        params = vqindex.SearchParams(num_threads=nt)
        try:
            while not done.is_set():
                t0 = time.monotonic()
                Dq, Iq = idx.search(q, 10, params=params)
                nsearch[0] += 1
                for r in range(len(q)):
                    ok = Iq[r] >= 0
                    ids = Iq[r][ok]
                    if not with_reset and not ok.all():
                        bad.append(("missing results", Iq[r]))
                    if len(set(ids.tolist())) != ids.size:
                        bad.append(("duplicate id", Iq[r]))
                    if not np.isfinite(Dq[r][ok]).all() or (np.diff(Dq[r][ok]) < 0).any():
                        bad.append(("distances", Dq[r]))
                    late = [i for i in ids.tolist() if removed_at.get(i, np.inf) < t0]
                    if late:
                        bad.append(("removed id", late))
                    want = ref[r, ids % POOL]
                    if not np.allclose(Dq[r][ok], want, rtol=1e-3, atol=1e-3):
                        bad.append(("distance of another state", Dq[r][ok], want))
        except Exception as exc:
            errors.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(nt,))
                                                   for nt in (1, 2, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    assert not bad, bad[:3]
    assert nsearch[0] > 0
    return idx


@pytest.mark.parametrize("desc", KINDS)
def test_searches_during_add_and_remove_see_one_state(data, desc):
    pool, q = data
    _run(desc, pool, q, ops=12 if "HNSW" in desc else 40, with_reset=False, seed=1)


@pytest.mark.parametrize("desc", KINDS)
def test_searches_during_reset_see_one_state(data, desc):
    pool, q = data
    _run(desc, pool, q, ops=10 if "HNSW" in desc else 30, with_reset=True, seed=2)


@pytest.mark.parametrize("desc", ["EDEN4", "IVF8,EDEN4", "EDEN4,RFlat"])
def test_concurrent_writers_keep_ids_unique(data, desc):
    """Two threads adding and removing at once: every id ends up stored once, and the
    index holds exactly what the completed calls say."""
    pool, _ = data
    idx = _make(desc, pool)
    errors = []

    def worker(w):
        try:
            for j in range(20):
                ids = np.arange(100) + 10_000 * w + 100 * j
                idx.add_with_ids(pool[ids % POOL], ids)
                if j % 3 == 2:
                    idx.remove_ids(ids[:50])
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    ids = _ids_of(idx)
    want = set()
    for w in range(3):
        for j in range(20):
            block = np.arange(100) + 10_000 * w + 100 * j
            want |= set((block[50:] if j % 3 == 2 else block).tolist())
    assert len(ids) == len(set(ids.tolist())) == idx.ntotal
    assert set(ids.tolist()) == want
    Dq, Iq = idx.search(pool[:5], 10)
    assert (Iq >= 0).all() and np.isfinite(Dq).all()


@pytest.mark.parametrize("desc", ["EDEN4,RFlat", "IVF8,EDEN4,RFlat", "HNSW8,EDEN4,RFlat"])
def test_refine_readers_search_their_base_without_the_lock(data, desc):
    """Readers only take the shared lock for their snapshot: while a Refine index's base
    searches, another thread can take the lock (so readers never serialise on it, and
    two-thread readers-only throughput is not capped at one thread's)."""
    pool, q = data
    idx = _make(desc, pool)
    idx.add(pool[:1000])
    base = idx.base
    seen = []
    inner = base._search_keys

    def spy(*args, **kwargs):
        got = []

        def probe():
            ok = idx._lock.acquire(blocking=False)
            got.append(ok)
            if ok:
                idx._lock.release()

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        seen.append(got[0])
        return inner(*args, **kwargs)

    base._search_keys = spy
    try:
        idx.search(q, 5)
    finally:
        del base._search_keys
    assert seen == [True]
