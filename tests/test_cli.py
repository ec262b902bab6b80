"""vqindex-bench: quick sweep / distortion / encode-time runs, the Recall@k definition, errors."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vqindex import cli
from vqindex.bench import sweep as B

from conftest import DATA_DIR  # noqa: E402  ($VQINDEX_DATA, else ../shared/data)

TINY = DATA_DIR / "pypi-minilm-384-angular-tiny.hdf5"


def _tiny():
    if not TINY.is_file():
        pytest.skip(f"{TINY} not found")
    return str(TINY)


# ---------------------------------------------------------------------------- recall definition
def test_ann_recall_epsilon_euclidean():
    train = np.array([[0.0], [1.0], [1.0005], [1.002], [3.0]], np.float32)
    q = np.array([[0.0]], np.float32)
    gt_ids = np.array([[0, 1, 2, 3]])
    gt_d = np.array([[0.0, 1.0, 1.0005, 1.002]], np.float32)
    # k = 2: threshold = 1.0 + 1e-3; id 2 (distance 1.0005) counts, id 3 (1.002) does not
    assert B.ann_recall(np.array([[0, 2]]), q, train, gt_d, 2, "euclidean") == 1.0
    assert B.id_recall(np.array([[0, 2]]), gt_ids, 2) == 0.5
    assert B.ann_recall(np.array([[0, 3]]), q, train, gt_d, 2, "euclidean") == 0.5
    assert B.ann_recall(np.array([[4, 3]]), q, train, gt_d, 2, "euclidean") == 0.0
    assert B.ann_recall(np.array([[0, -1]]), q, train, gt_d, 2, "euclidean") == 0.5  # missing


def test_ann_recall_angular_hand_computed():
    # query along x, train rows at angles ang (and different norms: angular ignores them);
    # true distances 1 - cos(ang): id2 sits exactly 9e-4 beyond id1, id3 far beyond
    ang = np.array([0.0, 0.02, np.arccos(np.cos(0.02) - 9e-4), 0.1])
    train = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32) * np.array([[1], [2], [3], [4]], np.float32)
    q = np.array([[5.0, 0.0]], np.float32)
    true = 1 - np.cos(ang)
    gt_d = true[None, :].astype(np.float32)
    np.testing.assert_allclose(B.true_distances(q, train, np.array([[0, 1, 2, 3]]), "angular")[0], true,
                               atol=1e-6)
    # k = 2: threshold = true[1] + 1e-3; id 2 sits 9e-4 above true[1] -> counts; id 3 does not
    assert B.ann_recall(np.array([[0, 2]]), q, train, gt_d, 2, "angular") == 1.0
    assert B.ann_recall(np.array([[3, 0]]), q, train, gt_d, 2, "angular") == 0.5
    assert B.ann_recall(np.array([[2, 0]]), q, train, gt_d, 2, "angular", epsilon=1e-4) == 0.5


def test_recall_1_at():
    nb = np.array([[5, 1], [7, 2], [9, 3]])
    ids = np.zeros((3, 64), np.int64) - 1
    ids[0, 0] = 5
    ids[1, 3] = 7
    ids[2, 40] = 9
    r = B.recall_1_at(ids, nb)
    assert r["1"] == pytest.approx(1 / 3) and r["4"] == pytest.approx(2 / 3)
    assert r["32"] == pytest.approx(2 / 3) and r["64"] == 1.0
    assert sorted(map(int, r)) == list(range(1, 65))
    assert r["3"] == pytest.approx(1 / 3) and r["41"] == 1.0


def test_pareto_and_nlist():
    front = B.pareto_frontier([(0.5, 100, "a"), (0.6, 50, "b"), (0.55, 40, "c"), (0.9, 10, "d")])
    assert [p[2] for p in front] == ["a", "b", "d"]
    assert B.default_nlist(100_000) == 1024
    assert B.default_nlist(5000) <= 128


def test_parse_config_spec():
    c = B.parse_config_spec("vqindex:IVF64,BQ4,RFlat:nprobe=4,8:k_factor=2")
    assert c.method == "vqindex" and c.index == "IVF64,BQ4,RFlat" and not c.slow
    assert c.grid == [{"nprobe": 4, "k_factor": 2}, {"nprobe": 8, "k_factor": 2}]
    assert B.parse_config_spec("vqindex:TQmse4").slow
    with pytest.raises(ValueError):
        B.parse_config_spec("vqindex")


# ---------------------------------------------------------------------------- runs
_PLOT = importlib.util.find_spec("matplotlib") is not None  # plots need the bench extra
_HNSWLIB = importlib.util.find_spec("hnswlib") is not None  # a peer of the bench extra


def test_quick_sweep(tmp_path, capsys):
    path = _tiny()
    rc = cli.main(["sweep", "--dataset", path, "--methods", "vqindex,faiss,hnswlib", "--quick",
                   "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr()
    assert "\r" not in out.out + out.err  # no progress bar when stderr is not a terminal
    assert "metric=angular" in out.out
    if not _HNSWLIB:
        assert "hnswlib: library 'hnswlib' not installed" in out.out
    for f in ("results.json", "summary.md") + _PLOT * ("recall_qps.png",):
        assert (tmp_path / f).is_file() and (tmp_path / f).stat().st_size > 0
    rep = json.loads((tmp_path / "results.json").read_text())
    rows = rep["results"]
    assert {r["method"] for r in rows} == {"vqindex", "faiss"} | ({"hnswlib"} if _HNSWLIB else set())
    assert rep["meta"]["complete"] and rep["failures"] == []
    env = rep["meta"]["environment"]
    import vqindex
    assert env["vqindex"] == vqindex.__version__ and "commit" in env
    assert {"numpy", "numba", "faiss"} <= set(env["versions"]) and env["versions"]["numpy"] == np.__version__
    assert env["cpu"]["model"] and isinstance(env["cpu"]["simd"], list) and env["native"]["backend"]
    for r in rows:  # one-query-per-call latency percentiles, in milliseconds
        assert 0 < r["latency_p50_ms"] <= r["latency_p95_ms"] <= r["latency_p99_ms"]
        assert r["latency_mean_ms"] == pytest.approx(1e3 / r["qps_single"], rel=1e-6)
    for r in rows:
        for key in ("method", "index", "query_params", "k", "threads", "dataset", "n", "d", "metric",
                    "build_s", "bytes_per_vector", "recall", "id_recall", "recall_1_at", "qps_batch",
                    "qps_single"):
            assert key in r
        assert 0.0 <= r["recall"] <= 1.0 and 0.0 <= r["id_recall"] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in r["recall_1_at"].values())
        assert r["qps_batch"] > 0 and r["qps_single"] > 0 and r["bytes_per_vector"] > 0
        assert r["threads"] == 1 and r["k"] == 10 and r["metric"] == "angular" and r["d"] == 384
    exact = [r for r in rows if r["method"] == "faiss" and r["index"] == "Flat"][0]
    assert exact["recall"] == 1.0
    md = (tmp_path / "summary.md").read_text()
    assert "recall >= 0.90" in md and "with float rerank" in md and "codes only" in md
    (tmp_path / "summary.md").unlink()
    assert cli.main(["summarize", str(tmp_path)]) == 0
    assert (tmp_path / "summary.md").read_text() == md


def test_custom_configs(tmp_path):
    path = _tiny()
    rc = cli.main(["sweep", "--dataset", path, "--methods", "vqindex", "--quick", "--no-progress",
                   "--configs", "vqindex:IVF32,EDEN4:nprobe=2,8", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["query_params"] for r in rows] == [{"nprobe": 2}, {"nprobe": 8}]
    assert rows[1]["recall"] >= rows[0]["recall"]


def test_distortion_quick(tmp_path):
    path = _tiny()
    rc = cli.main(["distortion", "--dataset", path, "--bits", "2,4", "--n", "1000", "--nq", "20",
                   "--codecs", "EDEN,TQmse", "--out", str(tmp_path)])
    assert rc == 0
    for f in ("distortion.json", "distortion.md") + _PLOT * ("distortion.png",):
        assert (tmp_path / f).is_file()
    rows = json.loads((tmp_path / "distortion.json").read_text())["rows"]
    ours = {r["codec"]: r for r in rows if r["impl"] == "vqindex"}
    assert ours["EDEN4"]["vnmse"] < ours["EDEN2"]["vnmse"] < 1
    assert any(r["impl"] == "faiss" for r in rows)


def test_encode_time_quick(tmp_path):
    rc = cli.main(["encode-time", "--dims", "64,128", "--n", "2000", "--bits", "4", "--codecs", "EDEN",
                   "--repeat", "1", "--no-faiss", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "encode_time.json").read_text())["rows"]
    assert sorted(r["d"] for r in rows) == [64, 128]
    assert all(r["encode_vps"] > 0 and r["n_time"] == 2000 for r in rows)
    assert (tmp_path / "encode_time.md").is_file()
    if _PLOT:
        assert (tmp_path / "encode_time.png").is_file()


@pytest.mark.parametrize("argv", [
    ["sweep", "--dataset", "no-such-dataset-xyz", "--methods", "vqindex"],
    ["sweep", "--dataset", "/nonexistent/dir/x.hdf5"],
    ["sweep", "--dataset", "x", "--methods", "annoy"],
    ["distortion", "--dataset", "no-such-dataset-xyz"],
    ["bogus-command"],
])
def test_errors_one_line(argv, capsys, tmp_path):
    rc = cli.main(argv + ["--out", str(tmp_path)] if argv[0] != "bogus-command" else argv)
    assert rc != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("vqindex-bench: error:")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def _two_config_sweep(out, extra=()):
    return cli.main(["sweep", "--dataset", _tiny(), "--methods", "vqindex", "--quick", "--out", str(out),
                     "--configs", "vqindex:IVF32,EDEN4:nprobe=2", "vqindex:EDEN2", *extra])


def test_resume_continues_a_killed_sweep(tmp_path, capsys):
    assert _two_config_sweep(tmp_path) == 0
    path = tmp_path / "results.json"
    full = json.loads(path.read_text())
    assert full["done_configs"] == ["vqindex EDEN2", "vqindex IVF32,EDEN4"]
    # a sweep killed after its first config: results.json as it was saved then
    killed = dict(full, results=[r for r in full["results"] if r["index"] == "IVF32,EDEN4"],
                  done_configs=["vqindex IVF32,EDEN4"], meta=dict(full["meta"], complete=False))
    path.write_text(json.dumps(killed))
    capsys.readouterr()
    assert _two_config_sweep(tmp_path, ["--resume"]) == 0
    assert "resumed: 1 finished config(s)" in capsys.readouterr().out
    again = json.loads(path.read_text())
    assert again["meta"]["complete"] and again["done_configs"] == full["done_configs"]
    kept = [r for r in again["results"] if r["index"] == "IVF32,EDEN4"]
    assert kept == killed["results"]  # not run again (same timings)
    assert [r["index"] for r in again["results"]] == ["IVF32,EDEN4", "EDEN2"]
    # another sweep's results are refused
    rc = cli.main(["sweep", "--dataset", _tiny(), "--methods", "vqindex", "--quick", "--k", "5",
                   "--out", str(tmp_path), "--resume", "--configs", "vqindex:EDEN2"])
    assert rc == 2 and "comes from another sweep" in capsys.readouterr().err


def test_failed_config_exits_nonzero(tmp_path, capsys):
    rc = cli.main(["sweep", "--dataset", _tiny(), "--methods", "vqindex", "--quick", "--out", str(tmp_path),
                   "--configs", "vqindex:EDEN2", "vqindex:NoSuchCodec4"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 configuration(s) failed" in err and "NoSuchCodec4" in err
    rep = json.loads((tmp_path / "results.json").read_text())
    assert len(rep["failures"]) == 1 and [r["index"] for r in rep["results"]] == ["EDEN2"]
    assert "## Failures" in (tmp_path / "summary.md").read_text()


def test_raw_npy_defaults_to_l2(tmp_path, capsys):
    x = np.random.default_rng(3).standard_normal((1200, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    rc = cli.main(["sweep", "--dataset", str(tmp_path / "v.npy"), "--methods", "vqindex", "--quick",
                   "--configs", "vqindex:EDEN4", "--out", str(tmp_path / "o")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "metric=euclidean" in out and "metric euclidean: the default for raw .npy/.fvecs vectors" in out
    rep = json.loads((tmp_path / "o" / "results.json").read_text())
    assert rep["meta"]["metric"] == "euclidean" and rep["results"][0]["metric"] == "euclidean"
    rc = cli.main(["sweep", "--dataset", str(tmp_path / "v.npy"), "--methods", "vqindex", "--quick",
                   "--metric", "ip", "--configs", "vqindex:EDEN4"])
    assert rc == 0 and "metric=ip" in capsys.readouterr().out


def _report(rows, **meta):
    base = {"dataset": "x", "n": 10, "d": 4, "metric": "euclidean", "k": 10, "threads": 1}
    return {"meta": dict(base, **meta), "results": rows, "notes": []}


def _row(method, recall, qb, qs, index="I"):
    return {"method": method, "index": index, "query_params": {}, "recall": recall,
            "recall_single": recall, "qps_batch": qb, "qps_single": qs}


def test_compare(tmp_path, capsys):
    a = _report([_row("vqindex", 0.85, 100.0, 50.0), _row("vqindex", 0.96, 40.0, 20.0),
                 _row("faiss", 0.99, 10.0, 5.0)])
    b = _report([_row("vqindex", 0.85, 300.0, 100.0), _row("vqindex", 0.97, 60.0, 30.0)])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b.json"), "--qps", "batch"]) == 0
    out = capsys.readouterr().out
    assert "| vqindex | batch | 0.80 | 100 | 300 | 3.000 |" in out
    assert "| vqindex | batch | 0.95 | 40 | 60 | 1.500 |" in out
    assert "| vqindex | batch | 0.99 | - | - | - |" in out
    assert "| faiss | batch | 0.99 | 10 | - | - |" in out
    from vqindex.bench import compare as C
    rows = C.compare(a, b, (0.9,), ("qps_single",))
    assert [(r["method"], r["ratio"]) for r in rows] == [("vqindex", 1.5), ("faiss", None)]
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "nope.json")]) == 2
    assert "nope.json not found" in capsys.readouterr().err


def test_datasets_command(tmp_path, capsys):
    (tmp_path / "sift-128-euclidean.hdf5").write_bytes(b"")
    assert cli.main(["datasets", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = [line for line in lines if line.startswith("sift-128-euclidean ")][0]
    assert "euclidean" in row and " yes " in row and "ann-benchmarks.com/sift-128-euclidean.hdf5" in row
    row = [line for line in lines if line.startswith("gist-960-euclidean ")][0]
    assert " no " in row


def test_config_and_warmup_commands(capsys):
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "native backend:" in out and "numba cache:" in out and "numpy" in out
    from vqindex.bench.warmup import warmup
    import vqindex
    rows = warmup(log=None, metrics=(vqindex.METRIC_L2,), indexes=("EDEN2",), n=300)
    assert [r[:2] for r in rows] == [("EDEN2", "L2")]


@pytest.mark.skipif(not _PLOT, reason="matplotlib not installed (the bench extra)")
def test_plot_pareto_lines(tmp_path):
    rep = _report([_row("vqindex", 0.8, 100.0, 50.0, "A"), _row("vqindex", 0.9, 80.0, 40.0, "B"),
                   _row("vqindex", 0.85, 50.0, 30.0, "B"), _row("faiss", 0.95, 60.0, 20.0)])
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    seen = {}
    real = plt.Figure.savefig

    def grab(fig, *a, **kw):
        seen["lines"] = [(ln.get_label(), list(ln.get_xdata())) for ln in fig.axes[0].get_lines()]
        seen["scatter"] = len(fig.axes[0].collections)
        return real(fig, *a, **kw)
    import unittest.mock
    with unittest.mock.patch.object(plt.Figure, "savefig", grab):
        B.plot_recall_qps(rep, str(tmp_path / "p.png"))
        assert seen["lines"] == [("vqindex", [0.8, 0.9]), ("faiss", [0.95])] and seen["scatter"] == 0
        B.plot_recall_qps(rep, str(tmp_path / "p.png"), all_points=True)
        assert seen["scatter"] == 2  # every point, one scatter per method


def test_console_script_declared():
    cfg = (Path(__file__).resolve().parents[1] / "setup.cfg").read_text()
    assert "vqindex-bench = vqindex.cli:main" in cfg
