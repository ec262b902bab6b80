"""bench/ann_benchmarks: drive the VQIndex adapter the way the ann-benchmarks harness does.

config.yml is parsed (PyYAML; that part is skipped without it), every run group's first
index string is instantiated with "@metric" -> "angular", fitted on the tiny MiniLM set
(5000 x 384, 200 queries), given its last (largest) query arguments, queried one by one and
in batch; Recall@10 (ann-benchmarks definition) must reach the stated per-group threshold and
get_memory_usage() must be positive.
"""
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from vqindex import benchmark as B

REPO = Path(__file__).resolve().parents[1]
ADAPTER = REPO / "bench" / "ann_benchmarks"
from conftest import DATA_DIR  # noqa: E402  ($VQINDEX_DATA, else ../shared/data)

TINY = DATA_DIR / "pypi-minilm-384-angular-tiny.hdf5"
K = 10
NQ = 100
# minimum Recall@10 per index kind at the largest query arguments of config.yml
THRESHOLDS = {"flat": 0.85, "flat-rerank": 0.95, "ivf": 0.80, "ivf-rerank": 0.85, "hnsw": 0.80}


def _module():
    spec = importlib.util.spec_from_file_location("vqindex_ann_module", ADAPTER / "module.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    if not TINY.is_file():
        pytest.skip(f"{TINY} not found")
    from vqindex import datasets
    return datasets.load(str(TINY), progress=False)


def _recall(ds, ids):
    ids = np.array([np.pad(r, (0, K - len(r)), constant_values=-1)[:K] for r in ids])
    return B.ann_recall(ids, ds.test[:len(ids)], ds.train, ds.distances[:len(ids)], K, ds.metric)


def _run(mod, ds, args, query_args):
    algo = mod.VQIndex("angular", *args)
    algo.fit(ds.train)
    algo.set_query_arguments(*query_args)
    single = [algo.query(q, K) for q in ds.test[:NQ]]
    algo.batch_query(ds.test[:NQ], K)
    batch = algo.get_batch_results()
    mem = algo.get_memory_usage()
    name = str(algo)
    algo.done()
    return _recall(ds, single), _recall(ds, batch), mem, name


def test_stand_in_interface():
    mod = _module()
    for verb in ("fit", "set_query_arguments", "query", "batch_query", "get_batch_results",
                 "get_memory_usage", "done", "__str__"):
        assert callable(getattr(mod.VQIndex, verb))
    with pytest.raises(ValueError):
        mod.VQIndex("hamming", "BQ4")


def test_flat_and_ivf_without_yaml(tiny):
    mod = _module()
    r1, rb, mem, name = _run(mod, tiny, ["EDEN4"], [])
    assert r1 >= 0.85 and rb >= 0.85 and abs(r1 - rb) < 1e-9
    assert mem and mem > 0
    assert "EDEN4" in name
    r1, rb, _, name = _run(mod, tiny, ["IVF64,BQ4,RFlat"], [16, 4])
    assert r1 >= 0.9 and rb >= 0.9
    assert name == "VQIndex(IVF64,BQ4,RFlat, 16, 4.0)"


def test_config_yml_run_groups(tiny):
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ADAPTER / "config.yml").read_text())
    entries = cfg["float"]["any"]
    assert entries and all(e["constructor"] == "VQIndex" and e["base_args"] == ["@metric"] for e in entries)
    mod = _module()
    has_hnsw = importlib.util.find_spec("vqindex.index.hnsw") is not None
    checked = 0
    for e in entries:
        for gname, group in e["run_groups"].items():
            args = [grid[0] for grid in group["args"]]           # first index string of the group
            qgrid = group.get("query_args") or []
            combos = list(itertools.product(*qgrid)) if qgrid else [()]
            qa = combos[-1]                                      # the most accurate setting
            if "HNSW" in args[0].upper() and not has_hnsw:
                continue
            r1, rb, mem, _ = _run(mod, tiny, args, qa)
            thr = THRESHOLDS[gname]
            assert r1 >= thr, f"{gname} {args} {qa}: single-query recall {r1:.3f} < {thr}"
            assert rb >= thr, f"{gname} {args} {qa}: batch recall {rb:.3f} < {thr}"
            assert mem > 0
            checked += 1
    assert checked >= 4
