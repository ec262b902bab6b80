"""vqindex-bench: quick sweep / distortion / encode-time runs, the Recall@k definition, errors."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vqindex import benchmark as B
from vqindex import cli

TINY = Path(__file__).resolve().parents[2] / "shared" / "data" / "pypi-minilm-384-angular-tiny.hdf5"


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
def test_quick_sweep(tmp_path):
    path = _tiny()
    rc = cli.main(["sweep", "--dataset", path, "--methods", "vqindex,faiss,hnswlib", "--quick",
                   "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    for f in ("results.json", "summary.md") + _PLOT * ("recall_qps.png",):
        assert (tmp_path / f).is_file() and (tmp_path / f).stat().st_size > 0
    rep = json.loads((tmp_path / "results.json").read_text())
    rows = rep["results"]
    assert {r["method"] for r in rows} == {"vqindex", "faiss", "hnswlib"}
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


def test_console_script_declared():
    cfg = (Path(__file__).resolve().parents[1] / "setup.cfg").read_text()
    assert "vqindex-bench = vqindex.cli:main" in cfg
