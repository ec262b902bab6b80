"""Smoke test of vqindex.bench.codecs (bench/codecs.py wraps it): tiny run, JSON rows with the
expected keys and sane values."""
import json
import math

import pytest


def _load():
    from vqindex.bench import codecs
    return codecs


@pytest.mark.parametrize("use_faiss", [True, False])
def test_codecs_bench_smoke(tmp_path, use_faiss):
    if use_faiss:
        pytest.importorskip("faiss")
    mod = _load()
    argv = ["--n", "500", "--datasets", "random:64", "--bits", "2", "--codecs", "EDEN,BQ",
            "--repeat", "1", "--no-big-encode", "--out", str(tmp_path)]
    argv.append("--faiss" if use_faiss else "--no-faiss")
    res = mod.main(argv)
    data = json.loads((tmp_path / "codecs.json").read_text())
    assert (tmp_path / "codecs.md").read_text().count("| random:64 |") == len(data["rows"])
    rows = data["rows"]
    ours = {r["codec"]: r for r in rows if r["impl"] == "vqindex"}
    assert set(ours) == {"EDEN2", "BQ2"}
    faiss_rows = [r for r in rows if r["impl"] == "faiss"]
    assert len(faiss_rows) == (1 if use_faiss else 0)
    keys = {"dataset", "d", "n", "b", "codec", "impl", "bits_per_dim", "vnmse", "ip_err", "ip_err_est",
            "beta", "encode_vps", "decode_vps", "threads"}
    for r in rows:
        assert keys <= set(r), keys - set(r)
        assert r["d"] == 64 and r["n"] == 500 and r["b"] == 2 and r["threads"] == 1
        assert 2.0 < r["bits_per_dim"] < 4.0
        assert 0.05 < r["vnmse"] < 0.2            # 2-bit codecs: ~0.09..0.14
        assert 0.05 < r["ip_err"] < 0.25
        assert 0.8 < r["beta"] < 1.1
        assert r["encode_vps"] > 0 and r["decode_vps"] > 0 and math.isfinite(r["encode_vps"])
    assert abs(ours["EDEN2"]["beta"] - 1) < 0.01          # unbiased rule
    assert ours["BQ2"]["vnmse"] < ours["EDEN2"]["vnmse"] + 0.02
    if use_faiss:
        (f,) = faiss_rows
        assert f["codec"] == "IndexEDEN 2b unbiased"
        assert abs(f["bits_per_dim"] - ours["EDEN2"]["bits_per_dim"]) < 1e-9
        assert abs(f["vnmse"] / ours["EDEN2"]["vnmse"] - 1) < 0.15
        assert len(res["summary"]) == 1 and res["summary"][0]["ours"] == "EDEN2"
