"""Property-based fuzzing (hypothesis, fixed seeds) of the public verbs over index kinds x
codecs x metrics x inputs; the file fuzzing runs in a child process (tests/test_fuzz_files.py).

Properties: a call either succeeds with a valid answer (finite distances for real ids,
unique stored ids, sorted rows, L2 >= 0) or raises an exception of vqindex's vocabulary
(`VQIndexError`, also the built-in type) and leaves the index exactly as it was.
"""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

import vqindex  # noqa: E402
from vqindex.errors import VQIndexError  # noqa: E402

D = 16
KINDS = ["EDEN4", "RaBitQ4", "TQprod4", "IVF4,TQmse4", "IVF4,BQ4", "RaBitQ1,RFlat",
         "IVF4,EDEN8,RFlat", "HNSW8,EDEN4"]
METRICS = ["l2", "ip", "cosine"]
EXAMPLES = int(os.environ.get("VQINDEX_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink])
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, 1e18, 1e-45, -0.0, 0.0, 1e-30]
CASES = {}


def _count(name):
    CASES[name] = CASES.get(name, 0) + 1


_POOL = []


def _pool():
    """(vectors, {(kind, metric): index}), built once per process (not a fixture: hypothesis
    would print it with every failing case)."""
    if not _POOL:
        _POOL.append(_build_pool())
    return _POOL[0]


def _build_pool():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((300, D)).astype(np.float32)
    built = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for desc in KINDS:
            for metric in METRICS:
                idx = vqindex.index_factory(D, desc, metric)
                idx.train(x)
                idx.add(x[:120])
                idx.search(x[:3], 5)
                built[desc, metric] = idx
    return x, built


@st.composite
def vectors(draw, allow_bad=True):
    """Arrays of every dtype, layout and shape, with special values injected."""
    n = draw(st.integers(0, 6))
    d = draw(st.sampled_from([D, D, D, D - 1, D + 1])) if allow_bad else D
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    scale = draw(st.sampled_from([1.0, 1.0, 1e-20, 1e10, 1e17, 1e19, 1e30]))
    x = (rng.standard_normal((n, d)) * scale)
    for _ in range(draw(st.integers(0, 2))):
        if x.size:
            x.reshape(-1)[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(SPECIAL))
    dtype = draw(st.sampled_from(["float32", "float32", "float64", "float16", "int32",
                                  "uint8", "bool", "complex64", "object", "list"]))
    if dtype == "list":
        return x.tolist()
    with np.errstate(all="ignore"):
        x = x.astype(dtype)
    layout = draw(st.sampled_from(["c", "f", "strided", "1d"]))
    if layout == "f":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    elif layout == "1d" and n:
        x = x[0]
    return x


IDS = st.one_of(
    st.lists(st.integers(-2 ** 63, 2 ** 64 - 1), min_size=0, max_size=6),
    st.lists(st.sampled_from([-1, 0, 1, 2 ** 63 - 1, 2 ** 63, 5, 5]), max_size=6),
    st.lists(st.floats(allow_nan=True), max_size=4),
    st.sampled_from([None, "ids", 3.5, [[1, 2]], np.array([1, 2], np.uint64),
                     np.array([True, False])]))
INTS = st.one_of(st.integers(-3, 12), st.sampled_from(
    [2 ** 31, 2 ** 40, 10 ** 12, -2 ** 63, np.int64(3), np.int32(2), np.uint8(1), 2.0, 2.5,
     True, "3", None, float("nan")]))


def _observe(idx, q):
    Dq, Iq = idx.search(q, 4)
    return idx.ntotal, sorted(np.asarray(idx.ids).tolist()), Dq.tolist(), Iq.tolist()


def _check_answer(idx, Dq, Iq, k):
    stored = set(np.asarray(idx.ids).tolist())
    assert Dq.dtype == np.float32 and Iq.dtype == np.int64 and Dq.shape == Iq.shape
    assert Dq.shape[1] == k and not np.isnan(Dq).any()
    for r in range(Dq.shape[0]):
        ok = Iq[r] >= 0
        ids = Iq[r][ok].tolist()
        assert len(set(ids)) == len(ids) and set(ids) <= stored
        assert np.isfinite(Dq[r][ok]).all()
        step = np.diff(Dq[r][ok])
        if idx.metric == "l2":
            assert (step >= 0).all() and (Dq[r][ok] >= 0).all()
        else:
            assert (step <= 0).all()


def _call(idx, verb, args):
    """Run one verb; returns what came back, or the exception (which must be ours)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(idx, verb)(*args), None
    except VQIndexError as exc:
        assert isinstance(exc, (ValueError, TypeError, KeyError, RuntimeError))
        assert len(str(exc)) < 600 and str(exc)
        return None, exc


@FUZZ
@given(data=st.data())
def test_mutating_verbs_complete_or_change_nothing(data):
    x, built = _pool()
    desc = data.draw(st.sampled_from(KINDS), label="kind")
    metric = data.draw(st.sampled_from(METRICS), label="metric")
    idx = built[desc, metric]
    verb = data.draw(st.sampled_from(["add", "add_with_ids", "add_with_ids", "remove_ids",
                                      "train"]), label="verb")
    v = data.draw(vectors(), label="x")
    if verb == "add_with_ids" and data.draw(st.booleans(), label="clean vectors"):
        v = x[200:200 + data.draw(st.integers(1, 4), label="n")]  # only the ids are odd
    if verb == "add_with_ids":
        n = len(v) if isinstance(v, list) else (v.shape[0] if v.ndim == 2 else 1)
        same_count = st.lists(st.sampled_from([-1, -7, 0, 3, 2 ** 63 - 1, 10 ** 6, 10 ** 6 + 1]),
                              min_size=n, max_size=n)
        args = (v, data.draw(st.one_of(IDS, same_count, same_count), label="ids"))
    elif verb == "remove_ids":
        args = (data.draw(IDS, label="ids"),)
    else:
        args = (v,)
    _count(f"mutate:{verb}")
    before = _observe(idx, x[:2])
    out, exc = _call(idx, verb, args)
    after = _observe(idx, x[:2])
    if exc is not None:
        assert before == after, f"{verb} raised {exc!r} but changed the index"
        return
    if verb in ("add", "add_with_ids"):
        n = np.asarray(v).reshape(-1, D).shape[0] if np.asarray(v).size else 0
        assert after[0] == before[0] + n
        assert len(set(after[1])) == len(after[1])
        assert not after[1] or min(after[1]) >= 0  # -1 is padding: never a stored id
        # undo, so that the shared index stays small and equal to its start
        added = sorted(set(after[1]) - set(before[1]))
        idx.remove_ids(np.array(added, np.int64))
    elif verb == "remove_ids":
        assert after[0] == before[0] - out
        if out:  # put them back is not possible without the vectors: rebuild the pool entry
            fresh = vqindex.index_factory(D, desc, metric)
            fresh.train(x)
            fresh.add(x[:120])
            built[desc, metric] = fresh


@FUZZ
@given(data=st.data())
def test_queries_give_valid_answers_or_clear_errors(data):
    x, built = _pool()
    desc = data.draw(st.sampled_from(KINDS), label="kind")
    metric = data.draw(st.sampled_from(METRICS), label="metric")
    idx = built[desc, metric]
    verb = data.draw(st.sampled_from(["search", "search", "range_search", "reconstruct_n",
                                      "reconstruct", "reconstruct_batch", "assign",
                                      "sa_encode"]), label="verb")
    before = _observe(idx, x[:2])
    if verb in ("search", "assign"):
        k = data.draw(INTS, label="k")
        args = (data.draw(vectors(), label="queries"), k)
    elif verb == "range_search":
        args = (data.draw(vectors(), label="queries"),
                data.draw(st.one_of(st.floats(allow_nan=True), INTS), label="radius"))
    elif verb == "reconstruct_n":
        args = (data.draw(INTS, label="i0"), data.draw(INTS, label="ni"))
    elif verb == "reconstruct":
        args = (data.draw(INTS, label="key"),)
    elif verb == "reconstruct_batch":
        args = (data.draw(IDS, label="ids"),)
    else:
        args = (data.draw(vectors(), label="x"),)
    _count(f"query:{verb}")
    out, exc = _call(idx, verb, args)
    assert _observe(idx, x[:2]) == before
    if exc is not None or out is None:
        return
    if verb == "search":
        _check_answer(idx, out[0], out[1], int(args[1]))
    elif verb == "range_search":
        lims, Dr, Ir = out
        assert lims[0] == 0 and (np.diff(lims) >= 0).all() and lims[-1] == len(Dr) == len(Ir)
        assert not np.isnan(Dr).any() and set(Ir.tolist()) <= set(before[1])
        if metric == "l2":
            assert (Dr >= 0).all()
    elif verb.startswith("reconstruct"):
        assert np.isfinite(np.asarray(out)).all()


def test_zz_report_cases():
    print("FUZZ-INPUT-CASES " + json.dumps(CASES, sort_keys=True))


def test_file_mutations_never_crash(tmp_path):
    """tests/test_fuzz_files.py in a child process: a crash (signal) names its case."""
    log = tmp_path / "cases.log"
    env = dict(os.environ, VQINDEX_FUZZ_CHILD="1", VQINDEX_FUZZ_LOG=str(log))
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           os.path.join(here, "test_fuzz_files.py")], env=env, cwd=here,
                          capture_output=True, text=True, timeout=1200)
    tail = (proc.stdout + proc.stderr)[-3000:]
    for line in proc.stdout.splitlines():
        if line.startswith("FUZZ-FILES-CASES") or "FUZZ-FILES-CASES" in line:
            print(line[line.index("FUZZ-FILES-CASES"):])
    if proc.returncode < 0:
        last = log.read_text().splitlines()[-1:] if log.exists() else ["?"]
        pytest.fail(f"the file fuzzer crashed (signal {-proc.returncode}) on: {last}\n{tail}")
    assert proc.returncode == 0, tail
