"""Property-based fuzzing of index files (hypothesis): header values, array elements, raw
bytes, truncation, nesting. Every mutated file either loads into an index that answers
correctly or raises IndexFileError -- never another exception, never a crash.

A mutation can in principle crash the process (a segfault in a kernel trusting an array),
so these tests run in a child process started by tests/test_fuzz.py
(`test_file_mutations_never_crash`); run directly they are skipped unless VQINDEX_FUZZ_CHILD=1.
Each case is appended to $VQINDEX_FUZZ_LOG before it runs, so a crash names its case.
"""
import hashlib
import json
import os
import struct
import tempfile
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("VQINDEX_FUZZ_CHILD") != "1",
                                reason="run in a child process by tests/test_fuzz.py")

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

import vqindex  # noqa: E402
from vqindex.io import IndexFileError, read_index, write_index  # noqa: E402

D = 16
#: index kinds x codecs x metrics of the saved files (small: a file is read per case)
FILES = [("EDEN4", "l2"), ("IVF4,RaBitQ4", "ip"), ("BQ4,RFlat", "cosine"),
         ("IVF4,TQmse4,RFlat", "l2"), ("RR,EDEN8", "ip"), ("HNSW8,TQprod4", "l2")]
EXAMPLES = int(os.environ.get("VQINDEX_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True,
                phases=[Phase.explicit, Phase.generate, Phase.shrink])  # no tracing "explain"
READ_MODES = [(False, True), (True, True), (True, False), (False, False)]  # (mmap, verify)
NASTY_INTS = [-1, -2, 0, 1, 2, 3, 7, 255, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 62,
              2 ** 63 - 1, -2 ** 63, -2 ** 40]
NASTY_FLOATS = [float("nan"), float("inf"), -float("inf"), 1e38, -1e38, 3.4e38, 1e30, 0.0,
                -0.0, 1e-45, 5e-324]
NASTY_JSON = NASTY_INTS + [1.5, -0.5, 1e300, True, False, None, "", "x", "__import__('os')",
                           [], [1], {}, {"a": 1}, [[[[[]]]]]]
CASES = {"header": 0, "array": 0, "bytes": 0, "structure": 0, "loaded": 0, "refused": 0}


def _log(msg):
    path = os.environ.get("VQINDEX_FUZZ_LOG")
    if path:
        with open(path, "a") as f:
            f.write(msg + "\n")


def _split(blob):
    magic, version, hlen = struct.unpack_from("<8sIQ", blob)
    start = -(-(20 + hlen) // 64) * 64
    return version, json.loads(blob[20:20 + hlen]), bytearray(blob[start:-32])


def _join(version, header, payload, checksum=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    head = struct.pack("<8sIQ", b"VQINDEX\0", version, len(h)) + h
    head += b"\0" * (-(-len(head) // 64) * 64 - len(head))
    body = head + bytes(payload)
    return body + (hashlib.sha256(body).digest() if checksum else b"\0" * 32)


_FILES = []


def _files():
    """(file bytes by kind, a temp folder, queries), built once per process."""
    if not _FILES:
        _FILES.append(_build_files())
    return _FILES[0]


def _build_files():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, D)).astype(np.float32)
    out, tmp = {}, tempfile.mkdtemp()
    for desc, metric in FILES:
        idx = vqindex.index_factory(D, desc, metric)
        idx.train(x)
        idx.add_with_ids(x[:150], np.arange(150) * 3 + 1)
        idx.remove_ids(np.array([4, 7, 10]))  # HNSW keeps them flagged, IVF/Flat move rows
        path = os.path.join(tmp, desc.replace(",", "_"))
        write_index(idx, path)
        with open(path, "rb") as f:
            out[desc] = f.read()
        queries = rng.standard_normal((4, D)).astype(np.float32)
        for mmap in (False, True):  # compile every kernel signature before the fuzzing
            _check_loaded(read_index(path, mmap=mmap), queries, tmp)
    return out, tmp, queries


def _leaves(obj, path=()):
    """Paths of every value in a JSON tree (dicts and lists included)."""
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _check_loaded(idx, queries, tmp):
    """A loaded index answers like an index: finite distances for real ids, unique ids that
    are stored, sorted rows, L2 >= 0; and it can be changed and saved again."""
    stored = set(np.asarray(idx.ids).tolist())
    assert idx.ntotal == len(stored) >= 0
    k = 5
    Dq, Iq = idx.search(queries, k)
    assert Dq.shape == Iq.shape == (len(queries), k)
    assert not np.isnan(Dq).any()
    for r in range(len(queries)):
        ok = Iq[r] >= 0
        ids = Iq[r][ok].tolist()
        assert len(set(ids)) == len(ids) and set(ids) <= stored
        assert np.isfinite(Dq[r][ok]).all()
        step = np.diff(Dq[r][ok])
        assert (step >= 0).all() if idx.metric == "l2" else (step <= 0).all()
        if idx.metric == "l2":
            assert (Dq[r][ok] >= 0).all()
    lims, Dr, Ir = idx.range_search(queries, 1.0 if idx.metric == "l2" else 0.5)
    assert not np.isnan(Dr).any() and set(Ir.tolist()) <= stored
    if stored:
        some = sorted(stored)[:2]
        assert np.isfinite(idx.reconstruct_batch(some)).all()
        idx.remove_ids(np.array(some[:1]))
    if idx.is_trained:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                idx.add(queries[:2])
            except vqindex.ArgumentError as exc:  # a stored id of 2^63 - 1 leaves none after it
                assert "2^63 - 1" in str(exc)
    write_index(idx, os.path.join(tmp, "again"))
    again = read_index(os.path.join(tmp, "again"))
    assert again.ntotal == idx.ntotal


def _attempt(blob, mode, queries, tmp, what):
    mmap, verify = mode
    path = os.path.join(tmp, "case")
    with open(path, "wb") as f:
        f.write(blob)
    _log(f"{what} mmap={mmap} verify={verify}")
    try:
        idx = read_index(path, mmap=mmap, verify=verify)
    except IndexFileError:
        CASES["refused"] += 1
        return
    CASES["loaded"] += 1
    _check_loaded(idx, queries, tmp)


@FUZZ
@given(data=st.data())
def test_header_values(data):
    blobs, tmp, queries = _files()
    desc = data.draw(st.sampled_from(sorted(blobs)), label="file")
    version, header, payload = _split(blobs[desc])
    paths = [p for p in _leaves(header) if p and p[0] in ("index", "arrays")]
    path = data.draw(st.sampled_from(paths), label="path")
    value = data.draw(st.sampled_from(NASTY_JSON), label="value")
    _set(header, path, value)
    CASES["header"] += 1
    mode = data.draw(st.sampled_from(READ_MODES), label="mode")
    _attempt(_join(version, header, payload), mode, queries, tmp, f"{desc} {path}={value!r}")


def _array_table(header):
    return {row["name"]: row for row in header["arrays"]}


@FUZZ
@given(data=st.data())
def test_array_elements(data):
    """A valid checksum over inconsistent arrays: offsets, ids, counts, factors, levels."""
    blobs, tmp, queries = _files()
    desc = data.draw(st.sampled_from(sorted(blobs)), label="file")
    version, header, payload = _split(blobs[desc])
    table = {n: r for n, r in _array_table(header).items() if r["nbytes"] > 0}
    name = data.draw(st.sampled_from(sorted(table)), label="array")
    row = table[name]
    dt = np.dtype(row["dtype"])
    arr = np.frombuffer(payload, dtype=dt, count=row["nbytes"] // dt.itemsize,
                        offset=row["offset"]).copy()
    n_edit = data.draw(st.integers(1, 3), label="elements")
    for _ in range(n_edit):
        at = data.draw(st.integers(0, arr.size - 1), label="at")
        if dt.kind == "f":
            arr[at] = data.draw(st.sampled_from(NASTY_FLOATS), label="value")
        elif dt.kind == "b":
            arr[at] = not arr[at]
        else:
            info = np.iinfo(dt)
            extra = [int(arr.max()) + 1, int(arr[(at + 1) % arr.size])]  # n, a duplicate
            choices = [v for v in NASTY_INTS + extra if info.min <= v <= info.max]
            arr[at] = data.draw(st.sampled_from(choices), label="value")
    payload[row["offset"]: row["offset"] + row["nbytes"]] = arr.tobytes()
    CASES["array"] += 1
    mode = data.draw(st.sampled_from(READ_MODES), label="mode")
    _attempt(_join(version, header, payload), mode, queries, tmp, f"{desc} {name}")


@FUZZ
@given(data=st.data())
def test_raw_bytes(data):
    """Bit flips and byte runs anywhere, the checksum recomputed or not (verify=False)."""
    blobs, tmp, queries = _files()
    desc = data.draw(st.sampled_from(sorted(blobs)), label="file")
    blob = bytearray(blobs[desc])
    recompute = data.draw(st.booleans(), label="recompute checksum")
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        at = data.draw(st.integers(0, len(blob) - 33), label="at")
        if data.draw(st.booleans(), label="bit"):
            blob[at] ^= 1 << data.draw(st.integers(0, 7), label="bit index")
        else:
            blob[at:at + 8] = data.draw(st.sampled_from([b"\xff" * 8, b"\0" * 8,
                                                         struct.pack("<q", -1),
                                                         struct.pack("<q", 2 ** 40)]))
    blob = blob[:len(blobs[desc])]
    if recompute:
        blob[-32:] = hashlib.sha256(bytes(blob[:-32])).digest()
    mode = data.draw(st.sampled_from(READ_MODES), label="mode")
    CASES["bytes"] += 1
    _attempt(bytes(blob), mode, queries, tmp, f"{desc} raw recompute={recompute}")


@FUZZ
@given(data=st.data())
def test_structure(data):
    """Truncation, extension, shapes whose product overflows, deep JSON, huge counts."""
    blobs, tmp, queries = _files()
    desc = data.draw(st.sampled_from(sorted(blobs)), label="file")
    blob = blobs[desc]
    version, header, payload = _split(blob)
    kind = data.draw(st.sampled_from(["truncate", "extend", "shape", "deep", "nstored",
                                      "payload", "drop array", "rename array"]), label="kind")
    if kind == "truncate":
        new = blob[:data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "extend":
        new = blob + b"\0" * data.draw(st.integers(1, 100))
    elif kind == "shape":
        row = data.draw(st.sampled_from(header["arrays"]))
        row["shape"] = data.draw(st.sampled_from([[2 ** 62, 2 ** 62], [2 ** 32, 2 ** 32, 16],
                                                  [-1, 4], [2 ** 63], [0, 2 ** 61], [1.5]]))
        if data.draw(st.booleans()):
            row["nbytes"] = 0
        new = _join(version, header, payload)
    elif kind == "deep":
        depth = data.draw(st.sampled_from([40, 1000, 200000]))
        header["index"]["params"]["x"] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900))
        raw = json.dumps(header, separators=(",", ":"))
        if depth > 900:
            raw = raw.replace('"x":[', '"x":' + "[" * (depth - 900) + "[", 1)
            raw = raw.replace("]]", "]]" + "]" * (depth - 900), 1)
        h = raw.encode()
        head = struct.pack("<8sIQ", b"VQINDEX\0", version, len(h)) + h
        head += b"\0" * (-(-len(head) // 64) * 64 - len(head))
        body = head + bytes(payload)
        new = body + hashlib.sha256(body).digest()
    elif kind in ("nstored", "payload"):
        key = data.draw(st.sampled_from(["nstored", "ntotal", "nlist", "M", "d"]))
        target = header["index"] if header["index"]["type"] != "refine" else header["index"]["base"]
        if kind == "nstored":
            target[key] = data.draw(st.sampled_from([-1, 2 ** 40, 2 ** 63 - 1, 0, 10 ** 30]))
        else:
            header["payload_bytes"] = data.draw(st.sampled_from([-1, 0, 2 ** 62]))
        new = _join(version, header, payload)
    elif kind == "drop array":
        header["arrays"].pop(data.draw(st.integers(0, len(header["arrays"]) - 1)))
        new = _join(version, header, payload)
    else:
        row = data.draw(st.sampled_from(header["arrays"]))
        row["name"] = data.draw(st.sampled_from(["ids", "codes", "x" * 300, ""]))
        new = _join(version, header, payload)
    mode = data.draw(st.sampled_from(READ_MODES), label="mode")
    CASES["structure"] += 1
    _attempt(new, mode, queries, tmp, f"{desc} {kind}")


def test_zz_report_cases():
    """Prints the cases run per class (the parent shows it)."""
    print("FUZZ-FILES-CASES " + json.dumps(CASES))
