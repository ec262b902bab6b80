"""vqindex.io: write_index / read_index round trips, mmap, error cases, atomic write."""
import hashlib
import json
from pathlib import Path
import os
import struct
import warnings

import numpy as np
import pytest

import vqindex
from vqindex import SearchParams
from vqindex.io import IndexFileError, read_index, write_index

D, N, NQ = 64, 2000, 16
CODECS = ["EDEN4", "RaBitQ4", "TQprod4", "TQmse4", "BQ4"]
HAS_HNSW = os.path.exists(os.path.join(os.path.dirname(vqindex.__file__), "index", "hnsw.py"))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return (rng.standard_normal((N, D)).astype(np.float32),
            rng.standard_normal((NQ, D)).astype(np.float32))


def _build(desc, metric, x, seed=0):
    idx = vqindex.index_factory(D, desc, metric, seed=seed)
    idx.train(x)
    idx.add(x)
    return idx


def _same_search(a, b, q, k=10):
    da, ia = a.search(q, k)
    db, ib = b.search(q, k)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)


def _base(idx):
    return idx.base if hasattr(idx, "base") else idx


STRUCTS = ["", "IVF16,", "RR,IVF16,|RFlat"]
if HAS_HNSW:
    STRUCTS.append("HNSW16,")


def _desc(struct_, codec):
    pre, _, suf = struct_.partition("|")
    return pre + codec + ("," + suf if suf else "")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("struct_", STRUCTS)
def test_round_trip(tmp_path, data, struct_, codec, metric):
    x, q = data
    desc = _desc(struct_, codec)
    idx = _build(desc, metric, x, seed=5)
    base = _base(idx)
    # change defaults before saving: they must survive
    if hasattr(base, "nlist"):
        base.params.nprobe = 5
    if hasattr(base, "graph_arrays"):
        base.params.efSearch = 37
        base.efConstruction = 50
    if hasattr(idx, "base"):
        idx.params.k_factor = 3.0
    path = tmp_path / "a.vqi"
    write_index(idx, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # HNSW add after load rebuilds its graph
        for mmap in (False, True):
            got = read_index(path, mmap=mmap)
            assert type(got) is type(idx)
            assert got.params == idx.params
            gb = _base(got)
            assert type(gb) is type(base) and gb.params == base.params
            assert gb.codec.params() == base.codec.params()
            assert gb.codec.rotation.params() == base.codec.rotation.params()
            assert gb.codec.rotation.params()["seed"] == 5
            assert gb.codec.rotation.kind == ("haar" if desc.startswith("RR,") else "fast")
            assert got.ntotal == idx.ntotal and got.metric_type == idx.metric_type
            if hasattr(base, "_stored_arrays"):  # list storage: the live rows by list
                for a, b in zip(gb._stored_arrays(), base._stored_arrays()):
                    np.testing.assert_array_equal(np.asarray(a), b)
            else:
                np.testing.assert_array_equal(gb._ids, base._ids)
                np.testing.assert_array_equal(gb._sf, base._sf)
                np.testing.assert_array_equal(np.asarray(gb._codes), base._codes)
            if hasattr(base, "nlist"):
                assert gb.nlist == base.nlist
                np.testing.assert_array_equal(gb.centroids, base.centroids)
                np.testing.assert_array_equal(gb.list_sizes(), base.list_sizes())
            if hasattr(base, "graph_arrays"):
                assert gb.M == base.M and gb.efConstruction == 50
                ga, gg = base.graph_arrays(), gb.graph_arrays()
                for key in ga:
                    np.testing.assert_array_equal(ga[key], gg[key])
            _same_search(idx, got, q)
            _same_search(idx, got, q, k=3)
            if mmap:
                assert isinstance(gb._codes, np.memmap) and not gb._codes.flags.writeable
                if hasattr(got, "base"):
                    assert isinstance(got._vectors, np.memmap)
                # add copies on write: new arrays, the file is untouched
                before = path.read_bytes()
                got.add(q)
                assert got.ntotal == idx.ntotal + NQ
                assert not isinstance(gb._codes, np.memmap)
                _, ii = got.search(q, 1)
                assert (ii[:, 0] >= N).mean() > 0.5  # most queries find themselves
                assert path.read_bytes() == before
                assert read_index(path).ntotal == idx.ntotal


def test_search_params_per_call_still_work(tmp_path, data):
    x, q = data
    idx = _build("IVF16,RaBitQ4", "l2", x)
    write_index(idx, tmp_path / "a")
    got = read_index(tmp_path / "a")
    assert got.params.nprobe == 1
    a = idx.search(q, 5, SearchParams(nprobe=16))
    b = got.search(q, 5, SearchParams(nprobe=16))
    np.testing.assert_array_equal(a[1], b[1])


def test_non_flat_quantizer_rebuilt_flat(tmp_path, data):
    import faiss
    x, q = data
    quant = faiss.IndexHNSWFlat(D, 16)
    codec = vqindex.codec_factory(D, "EDEN4")
    idx = vqindex.IndexIVFCodes(D, codec, 16, quantizer=quant)
    idx.train(x)
    idx.add(x)
    write_index(idx, tmp_path / "a")
    got = read_index(tmp_path / "a")
    assert isinstance(got.quantizer, faiss.IndexFlatL2)
    np.testing.assert_array_equal(got.centroids, idx.centroids)
    assert got.search(q, 5)[1].shape == (NQ, 5)


def test_centered_codec_and_empty_and_removed(tmp_path, data):
    x, q = data
    codec = vqindex.codec_factory(D, "EDEN4", seed=3)
    codec.train(x, center=True)
    idx = vqindex.IndexFlatCodes(D, codec)
    write_index(idx, tmp_path / "empty")
    got = read_index(tmp_path / "empty", mmap=True)
    assert got.ntotal == 0 and got.search(q, 3)[1].min() == -1
    np.testing.assert_array_equal(got.codec.center, codec.center)
    got.add(x)
    idx.add_with_ids(x, np.arange(N, dtype=np.int64) * 3 + 1)
    idx.remove_ids(np.arange(0, 300, dtype=np.int64))
    write_index(idx, tmp_path / "a")
    got = read_index(tmp_path / "a")
    _same_search(idx, got, q)
    np.testing.assert_array_equal(got.ids, idx.ids)


def test_untrained_ivf(tmp_path):
    idx = vqindex.index_factory(D, "IVF8,BQ4")
    write_index(idx, tmp_path / "a")
    got = read_index(tmp_path / "a")
    assert not got.is_trained and got.nlist == 8


# ---------------------------------------------------------------------------- error cases
def _split(blob):
    """Independent parse of the documented layout: (version, header dict, payload bytes)."""
    magic, version, hlen = struct.unpack_from("<8sIQ", blob)
    assert magic == b"VQINDEX\0"
    start = -(-(20 + hlen) // 64) * 64
    return version, json.loads(blob[20:20 + hlen]), blob[start:-32]


def _join(version, header, payload):
    h = json.dumps(header, separators=(",", ":")).encode()
    head = struct.pack("<8sIQ", b"VQINDEX\0", version, len(h)) + h
    head += b"\0" * (-(-len(head) // 64) * 64 - len(head))
    body = head + payload
    return body + hashlib.sha256(body).digest()


@pytest.fixture()
def saved(tmp_path, data):
    x, _ = data
    idx = _build("IVF16,TQprod4,RFlat", "l2", x[:1000])
    path = tmp_path / "a.vqi"
    write_index(idx, path)
    return path


def test_layout_matches_spec(saved):
    blob = saved.read_bytes()
    version, header, payload = _split(blob)
    assert version == 2 and header["version"] == 2
    assert header["index"]["type"] == "refine" and header["index"]["base"]["type"] == "ivf"
    assert header["index"]["base"]["codec"]["class"] == "TurboQuantProd"
    assert "filter" not in header["index"]["params"]
    start = len(blob) - 32 - len(payload)
    for row in header["arrays"]:
        assert (start + row["offset"]) % 64 == 0
    assert _join(version, header, payload) == blob  # the layout is fully described


@pytest.mark.parametrize("mmap", [False, True])
def test_errors(tmp_path, saved, mmap):
    blob = saved.read_bytes()
    bad = tmp_path / "bad"

    def expect(content, match, **kw):
        bad.write_bytes(content)
        with pytest.raises(IndexFileError, match=match):
            read_index(bad, mmap=mmap, **kw)

    expect(os.urandom(5000), "not a vqindex")
    expect(b"", "truncated")
    expect(blob[:5], "truncated")
    expect(blob[:30], "truncated")
    for cut in (len(blob) - 1, len(blob) - 40, len(blob) // 2, 200):
        expect(blob[:cut], "truncated")
    expect(blob + b"xx", "unexpected bytes")
    for at in (len(blob) - 100, len(blob) // 2, len(blob) - 10, 30):
        flipped = bytearray(blob)
        flipped[at] ^= 0x10
        expect(bytes(flipped), "checksum mismatch")
    # verify=False skips the (whole-file) checksum pass when mapping, not the structural
    # checks: a flipped payload bit either loads (codes: any bits are a valid code) or is
    # refused by them (ids, factors, offsets), never crashes
    flipped = bytearray(blob)
    flipped[len(blob) - 100] ^= 0x10
    if mmap:
        bad.write_bytes(bytes(flipped))
        try:
            read_index(bad, mmap=True, verify=False)
        except IndexFileError as exc:
            assert "checksum" not in str(exc)
    version, header, payload = _split(blob)
    newer = bytearray(_join(version, header, payload))
    newer[8:12] = struct.pack("<I", 3)
    expect(bytes(newer), r"newer vqindex \(format 3 > 2\); upgrade")
    h = json.loads(json.dumps(header))
    h["index"]["type"] = "lsh"
    expect(_join(2, h, payload), "unknown index type 'lsh'")
    h = json.loads(json.dumps(header))
    h["index"]["base"]["type"] = "pq"
    expect(_join(2, h, payload), "unknown index type 'pq'")
    h = json.loads(json.dumps(header))
    h["index"]["base"]["codec"]["class"] = "os.system"
    expect(_join(2, h, payload), "unknown codec class 'os.system'")
    h = json.loads(json.dumps(header))
    h["arrays"][0]["dtype"] = "|O"
    expect(_join(2, h, payload), "not in the allowlist")
    h = json.loads(json.dumps(header))
    h["arrays"][0]["dtype"] = "<c8"
    expect(_join(2, h, payload), "not in the allowlist")
    h = json.loads(json.dumps(header))
    h["index"]["base"]["codec"]["params"]["bits"] = 99
    expect(_join(2, h, payload), "cannot rebuild codec")
    h = json.loads(json.dumps(header))
    h["index"]["base"]["codec"]["params"]["evil"] = "__import__('os')"
    expect(_join(2, h, payload), "cannot rebuild codec")
    h = json.loads(json.dumps(header))
    h["index"]["base"]["nstored"] = 7
    expect(_join(2, h, payload), "do not match")
    expect(_join(1, {"x": 1}, b""), "header is malformed")
    expect(blob[:20] + b"{not json" + blob[29:], "checksum mismatch")


def test_faiss_file_rejected(tmp_path):
    import faiss
    f = faiss.IndexFlatL2(8)
    f.add(np.zeros((3, 8), np.float32))
    faiss.write_index(f, str(tmp_path / "f.faiss"))
    for mmap in (False, True):
        with pytest.raises(IndexFileError, match="not a vqindex index file"):
            read_index(tmp_path / "f.faiss", mmap=mmap)
    np.save(tmp_path / "n.npy", np.zeros(3))
    with pytest.raises(IndexFileError, match="not a vqindex"):
        read_index(tmp_path / "n.npy")
    assert issubclass(IndexFileError, ValueError)


def test_cannot_save_foreign_objects(tmp_path):
    with pytest.raises(TypeError):
        write_index(object(), tmp_path / "x")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------- atomic write
def test_atomic_write(tmp_path, data, monkeypatch):
    import vqindex.io as vio
    x, q = data
    old = _build("EDEN4", "l2", x[:300])
    new = _build("BQ4", "l2", x)
    path = tmp_path / "idx.vqi"
    write_index(old, path)
    before = path.read_bytes()

    calls = {"n": 0}
    real = vio._write_payload

    def failing(f, arr, h):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        real(f, arr, h)

    monkeypatch.setattr(vio, "_write_payload", failing)
    with pytest.raises(OSError, match="disk full"):
        write_index(new, path)
    assert calls["n"] == 3
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["idx.vqi"]
    monkeypatch.undo()

    def bad_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(vio.os, "fsync", bad_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        write_index(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["idx.vqi"]
    _same_search(old, read_index(path), q)

    # a successful write replaces it, also while the old file is memory-mapped
    mapped = read_index(path, mmap=True)
    write_index(new, path)
    assert sorted(os.listdir(tmp_path)) == ["idx.vqi"]
    _same_search(new, read_index(path), q)
    _same_search(old, mapped, q)


#: the top-5 ids of the fixtures' 5 queries, recorded when the fixtures were written
FORMAT1_IDS = {
    "flat_eden4": [[39, 91, 90, 247, 190], [142, 171, 280, 163, 110], [259, 88, 54, 24, 3],
                   [2, 274, 255, 46, 254], [230, 156, 98, 235, 62]],
    "ivf_bq2": [[44, 90, 39, 198, 190], [142, 110, 171, 280, 163], [66, 29, 16, 151, 168],
                [203, 218, 46, 190, 166], [230, 98, 156, 168, 235]],
    "hnsw_tqprod4": [[167, 91, 39, 44, 118], [110, 175, 142, 280, 119], [66, 88, 56, 281, 259],
                     [255, 29, 2, 218, 166], [40, 230, 19, 168, 63]],
    "refine_rabitq4": [[39, 90, 91, 190, 247], [142, 280, 163, 171, 110], [259, 54, 88, 3, 24],
                       [2, 274, 255, 46, 67], [230, 156, 98, 235, 62]],
}


@pytest.mark.parametrize("name", ["flat_eden4", "ivf_bq2", "hnsw_tqprod4", "refine_rabitq4"])
@pytest.mark.parametrize("mmap", [False, True])
def test_format1_files_still_load(name, mmap, tmp_path):
    """Files written by format 1 (tests/data, made by make_v1_fixtures.py before format 2)
    load, search and reconstruct exactly like the same index built now, and save as format 2."""
    import sys
    here = Path(__file__).resolve().parent / "data"
    sys.path.insert(0, str(here))
    try:
        import make_v1_fixtures as fx
    finally:
        sys.path.pop(0)
    spec = dict((s[0], s) for s in fx.SPECS)[name]
    old = read_index(here / f"v1_{name}.vqi", mmap=mmap)
    new = fx.build(spec)
    _, xq = fx.data()
    D, I = old.search(xq, 5)
    D2, I2 = new.search(xq, 5)
    np.testing.assert_array_equal(I, I2)
    np.testing.assert_allclose(D, D2, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(I, FORMAT1_IDS[name])
    np.testing.assert_allclose(old.reconstruct_n(0, 10), new.reconstruct_n(0, 10), atol=1e-6)
    write_index(old, tmp_path / "v2.vqi")
    assert _split((tmp_path / "v2.vqi").read_bytes())[0] == 2
    again = read_index(tmp_path / "v2.vqi")
    np.testing.assert_array_equal(again.search(xq, 5)[1], I)
