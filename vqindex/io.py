"""Index files: `write_index(index, path)` / `read_index(path, mmap=False, verify=True)`.

No pickle, no eval: a file is a JSON header plus raw little-endian array payloads, and the
loader only ever calls `json.loads`, `np.frombuffer`/`readinto` and `np.memmap` on it. Codecs
are rebuilt from an allowlist of class names and their `params()`; indexes from an allowlist
of index types.

File layout (format version 2, all integers little-endian; version 1 files still load)::

    offset 0   8 bytes   magic b"VQINDEX\\0"
    offset 8   uint32    format version (2)
    offset 12  uint64    H = header length in bytes
    offset 20  H bytes   header: UTF-8 JSON (see below)
               zero padding up to data_start = the next multiple of 64
    data_start ...       array payloads; each starts at data_start + its "offset", a multiple
                         of 64 (zero padding between them), C order, little-endian
    end - 32   32 bytes  sha256 of every byte before it (preamble, header, padding, payloads)

Header JSON::

    {"format": "vqindex", "version": 2, "library_version": "0.1.0",
     "index": <index description>,
     "arrays": [{"name", "dtype", "shape", "offset", "nbytes"}, ...],   # offsets from data_start
     "payload_bytes": <bytes from data_start to the digest>, "checksum": "sha256"}

    index description:
      {"type": "flat" | "ivf" | "hnsw" | "refine", "d", "metric_type", "metric", "ntotal",
       "nstored" (rows in storage; > ntotal when HNSW keeps removed rows flagged deleted),
       "params": asdict(index.params) minus "filter",
       "codec": {"class": "EDEN", "params": codec.params()},        # not for "refine"
       "arrays": {"codes": <array name>, "sf": ..., "ids": ...},    # names in the table
               codes: uint8 (nstored, code_bytes), the packed fields (format 1: the full
               code_size bytes, whose float tail repeated the factors); sf: float32
               (nstored, n_acc + 2) scan factors (scales, ell, f_c; IVF terms folded in)
       ivf:    "nlist", "trained", "quantizer" (faiss class name of the saved quantizer),
               arrays "centroids", "list_of"
       hnsw:   "M", "efConstruction", "graph_scalars" {key: int/float/bool},
               arrays "graph.<key>" for every array of graph_arrays()
       refine: "base": <nested description>, arrays "vectors", "vec_ids"}

Array dtypes come from a fixed allowlist (`ALLOWED_DTYPES`); anything else is rejected.
Codec section tables are saved too ("codec.table<i>") and compared (allclose) with the
rebuilt codec, so a codebook construction that changed between versions fails loudly.
"""
import dataclasses
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

from .errors import IndexFileError

__all__ = ["write_index", "read_index", "IndexFileError", "FORMAT_VERSION", "MAGIC",
           "ALLOWED_DTYPES"]

MAGIC = b"VQINDEX\0"
FORMAT_VERSION = 2
#: formats this version reads: 1 stored the per-vector factors twice (in the code tail and in
#: "sf"); 2 stores the packed fields only in "codes" (n, code_bytes) and the factors in "sf"
READ_VERSIONS = (1, 2)
ALIGN = 64
_PREAMBLE = struct.Struct("<8sIQ")  # magic, version, header length
_DIGEST = 32
_CHUNK = 1 << 22
#: dtype strings (numpy `dtype.str`) allowed in the array table
ALLOWED_DTYPES = ("|u1", "<u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8",
                  "<f4", "<f8")
INDEX_TYPES = ("flat", "ivf", "hnsw", "refine")
_MAX_HEADER = 1 << 30




def _codec_classes():
    from .codecs import BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd
    return {c.__name__: c for c in (BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd)}


def _align(n):
    return -(-n // ALIGN) * ALIGN


# ====================================================================== describe (write side)
class _Arrays:
    """Collects the arrays to write, by unique name."""

    def __init__(self):
        self.items = []

    def add(self, name, arr):
        arr = np.asarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise TypeError(f"cannot save array {name!r}: dtype {arr.dtype} is not in the "
                            f"allowlist {ALLOWED_DTYPES}")
        self.items.append((name, np.ascontiguousarray(arr)))
        return name


def _search_params(index):
    p = dataclasses.asdict(index.params)
    p.pop("filter", None)
    return p


def _codec_desc(codec, arrays, prefix):
    cls = type(codec).__name__
    if cls not in _codec_classes():
        raise TypeError(f"cannot save codec class {cls!r}; known: {sorted(_codec_classes())}")
    for i, s in enumerate(codec.sections):
        arrays.add(f"{prefix}codec.table{i}", s.table)
    return {"class": cls, "params": codec.params(), "nsections": len(codec.sections)}


def _describe(index, arrays, prefix=""):
    from .index import Index, IndexFlatCodes, IndexIVFCodes, IndexRefine

    if not isinstance(index, Index):
        raise TypeError(f"write_index expects a vqindex index, got {type(index).__name__}")
    desc = {"d": int(index.d), "metric_type": int(index._metric), "metric": index.metric,
            "ntotal": int(index.ntotal), "params": _search_params(index)}
    if hasattr(index, "_ids"):  # rows in storage (HNSW keeps removed rows, flagged deleted)
        desc["nstored"] = int(index._ids.shape[0] if not hasattr(index, "_store")
                              else index.ntotal)
    if isinstance(index, IndexRefine):
        desc["type"] = "refine"
        desc["base"] = _describe(index.base, arrays, prefix + "base.")
        desc["arrays"] = {"vectors": arrays.add(prefix + "vectors", index._vectors),
                          "vec_ids": arrays.add(prefix + "vec_ids", index._vec_ids)}
        return desc
    if hasattr(index, "graph_arrays"):
        kind = "hnsw"
    elif isinstance(index, IndexIVFCodes):
        kind = "ivf"
    elif isinstance(index, IndexFlatCodes):
        kind = "flat"
    else:
        raise TypeError(f"cannot save an index of type {type(index).__name__}; "
                        f"supported: IndexFlatCodes, IndexIVFCodes, IndexHNSWCodes, IndexRefine")
    desc["type"] = kind
    desc["codec"] = _codec_desc(index.codec, arrays, prefix)
    if kind == "hnsw":
        codes, sf, ids = index._codes, index._sf, index._ids
    else:  # list storage: the live rows, sorted by list
        lists, codes, sf, ids = index._stored_arrays()
    names = {"codes": arrays.add(prefix + "codes", codes),
             "sf": arrays.add(prefix + "sf", sf),
             "ids": arrays.add(prefix + "ids", ids)}
    if kind == "ivf":
        desc["nlist"] = int(index.nlist)
        desc["trained"] = index.centroids is not None
        desc["quantizer"] = type(index.quantizer).__name__
        names["list_of"] = arrays.add(prefix + "list_of", lists)
        if index.centroids is not None:
            names["centroids"] = arrays.add(prefix + "centroids", index.centroids)
    elif kind == "hnsw":
        desc["M"] = int(index.M)
        desc["efConstruction"] = int(index.efConstruction)
        scalars, graph = {}, {}
        for key, val in index.graph_arrays().items():
            if isinstance(val, np.ndarray):
                graph[key] = arrays.add(f"{prefix}graph.{key}", val)
            elif isinstance(val, (bool, np.bool_)):
                scalars[key] = bool(val)
            elif isinstance(val, (int, np.integer)):
                scalars[key] = int(val)
            elif isinstance(val, (float, np.floating)):
                scalars[key] = float(val)
            elif val is None:
                scalars[key] = None
            else:
                raise TypeError(f"cannot save HNSW graph entry {key!r} of type {type(val).__name__}")
        desc["graph_scalars"] = scalars
        desc["graph_arrays"] = graph
    desc["arrays"] = names
    return desc


def _write_payload(f, arr, h):
    """Write one array's bytes (a hook the tests patch to simulate a failure midway)."""
    mv = memoryview(arr.reshape(-1)).cast("B") if arr.size else b""
    f.write(mv)
    h.update(mv)


def write_index(index, path):
    """Save `index` to `path` atomically (temp file in the same directory, fsync, os.replace).

    The target is either the old file or the complete new one, never a partial file; on any
    error the temp file is removed and the exception propagates. Writing over a file that a
    `read_index(..., mmap=True)` index maps is safe (the mapping keeps the old inode).
    """
    from . import __version__

    path = os.fspath(path)
    lock = getattr(index, "_lock", None)
    arrays = _Arrays()
    if lock is not None:
        with lock:
            desc = _describe(index, arrays)
    else:
        desc = _describe(index, arrays)
    table, off = [], 0
    for name, arr in arrays.items:
        off = _align(off)
        table.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                      "offset": off, "nbytes": int(arr.nbytes)})
        off += int(arr.nbytes)
    header = {"format": "vqindex", "version": FORMAT_VERSION, "library_version": __version__,
              "index": desc, "arrays": table, "payload_bytes": off, "checksum": "sha256"}
    hbytes = json.dumps(header, separators=(",", ":"), allow_nan=True).encode("utf-8")
    pre = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(hbytes))
    data_start = _align(len(pre) + len(hbytes))

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            h = hashlib.sha256()
            head = pre + hbytes + b"\0" * (data_start - len(pre) - len(hbytes))
            f.write(head)
            h.update(head)
            pos = 0
            for (name, arr), row in zip(arrays.items, table):
                pad = b"\0" * (row["offset"] - pos)
                f.write(pad)
                h.update(pad)
                _write_payload(f, arr, h)
                pos = row["offset"] + row["nbytes"]
            f.write(h.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable (best effort: not every platform can open a directory)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# ====================================================================== read side
def _err(path, msg):
    return IndexFileError(f"{path}: {msg}")


def _digest_matches(f, size):
    """sha256 of bytes [0, size - 32) == the trailing 32 bytes (reads the whole file)."""
    h = hashlib.sha256()
    f.seek(0)
    left = size - _DIGEST
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            return False
        h.update(chunk)
        left -= len(chunk)
    return f.read(_DIGEST) == h.digest()


def _read_header(f, path, size):
    """Check magic / version / sizes; return (header dict or None, data_start)."""
    pre = f.read(_PREAMBLE.size)
    if len(pre) < len(MAGIC) or pre[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(pre) and len(pre) < len(MAGIC):
            raise _err(path, f"truncated vqindex file ({size} bytes)")
        raise _err(path, f"not a vqindex index file (starts with {pre[:8]!r}, expected magic "
                         f"{MAGIC!r}; a faiss index is read with faiss.read_index)")
    if len(pre) < _PREAMBLE.size:
        raise _err(path, f"truncated vqindex file ({size} bytes)")
    _, version, hlen = _PREAMBLE.unpack(pre)
    if version > FORMAT_VERSION:
        raise _err(path, f"written by a newer vqindex (format {version} > {FORMAT_VERSION}); "
                         f"upgrade vqindex to read it")
    if version < 1:
        raise _err(path, f"invalid format version {version}")
    if hlen > _MAX_HEADER:
        raise _err(path, f"header length {hlen} is implausible (corrupted file)")
    if _PREAMBLE.size + hlen + _DIGEST > size:
        raise _err(path, f"truncated vqindex file ({size} bytes; the header alone needs "
                         f"{_PREAMBLE.size + hlen + _DIGEST})")
    raw = f.read(hlen)
    data_start = _align(_PREAMBLE.size + hlen)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not an object")
        payload = header["payload_bytes"]
        if isinstance(payload, bool) or not isinstance(payload, int) or payload < 0:
            raise ValueError("bad payload_bytes")
    except (ValueError, KeyError, UnicodeDecodeError):
        return None, data_start
    expected = data_start + payload + _DIGEST
    if size < expected:
        raise _err(path, f"truncated vqindex file ({size} bytes, expected {expected})")
    if size > expected:
        raise _err(path, f"file has {size - expected} unexpected bytes after the checksum "
                         f"(expected {expected} bytes; corrupted or concatenated file)")
    return header, data_start


def _check_table(header, path):
    """Validate the array table; return {name: (dtype, shape, offset, nbytes)} in file order."""
    table = header.get("arrays")
    if not isinstance(table, list):
        raise _err(path, "header has no array table")
    out, end = {}, 0
    for row in table:
        try:
            name, dt, shape = row["name"], row["dtype"], row["shape"]
            off, nbytes = row["offset"], row["nbytes"]
        except (TypeError, KeyError):
            raise _err(path, f"malformed array table entry {row!r}") from None
        if dt not in ALLOWED_DTYPES:
            raise _err(path, f"array {name!r} has dtype {dt!r}, which is not in the allowlist "
                             f"{ALLOWED_DTYPES}")
        if (not isinstance(shape, list) or
                not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise _err(path, f"array {name!r} has a bad shape {shape!r}")
        dtype = np.dtype(dt)
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise _err(path, f"array {name!r}: {nbytes} bytes do not match shape {shape} {dt}")
        if not isinstance(off, int) or off % ALIGN or off < end:
            raise _err(path, f"array {name!r} has a bad offset {off!r}")
        if name in out:
            raise _err(path, f"array {name!r} appears twice")
        end = off + nbytes
        out[name] = (dtype, tuple(shape), off, nbytes)
    if end > header["payload_bytes"]:
        raise _err(path, "array table runs past the payload")
    return out


def _load_arrays(f, path, table, data_start, mmap_names, mmap):
    """Arrays by name; those in mmap_names are np.memmap (read-only) when mmap is set."""
    out = {}
    for name, (dtype, shape, off, nbytes) in table.items():
        at = data_start + off
        if mmap and name in mmap_names and nbytes:
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=at, shape=shape)
            continue
        arr = np.empty(shape, dtype)
        if nbytes:
            f.seek(at)
            got = f.readinto(memoryview(arr.reshape(-1)).cast("B"))
            if got != nbytes:
                raise _err(path, f"truncated vqindex file (array {name!r})")
        out[name] = arr
    return out


def read_index(path, mmap=False, verify=True):
    """Load an index written by `write_index`.

    mmap=False: every array is read into memory and the sha256 checksum is always verified
    (a hashing pass over the file, then the array reads, which then hit the OS page cache).
    mmap=True: the codes (and a Refine index's float vectors) are mapped read-only with
    `np.memmap` instead of read; the index searches them in place, and `add` / `remove_ids`
    build new in-memory arrays (copy-on-write), leaving the file untouched. With verify=True
    (the default) the checksum is still checked, which reads the whole file once (sequential
    I/O of the file size; the pages then sit in the OS cache); pass verify=False to skip it
    and open a large index in time independent of its size (a corrupted payload is then not
    detected).

    IVF: the coarse quantizer is rebuilt as a faiss IndexFlatL2 / IndexFlatIP over the saved
    centroids, whatever quantizer class the saved index had (e.g. an HNSW quantizer comes
    back flat: exact coarse assignment, same centroids).

    Raises IndexFileError (a ValueError) for a foreign, truncated, corrupted (checksum),
    newer-format or otherwise invalid file. Nothing from the file is ever executed.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, data_start = _read_header(f, path, size)
        f.seek(0)
        version = _PREAMBLE.unpack(f.read(_PREAMBLE.size))[1]
        if header is None:
            if _digest_matches(f, size):
                raise _err(path, "header is malformed (not a JSON object with payload_bytes)")
            raise _err(path, "checksum mismatch: the file is corrupted (header damaged)")
        try:
            if (header.get("format") != "vqindex" or header.get("version") not in READ_VERSIONS
                    or header.get("version") != version):
                raise _err(path, f"header does not describe a vqindex format {version} file")
            table = _check_table(header, path)
            desc = header.get("index")
            if not isinstance(desc, dict):
                raise _err(path, "header has no index description")
            mmap_names = _mmap_names(desc)
        except IndexFileError:
            if verify and not _digest_matches(f, size):
                raise _err(path, "checksum mismatch: the file is corrupted") from None
            raise
        if (verify or not mmap) and not _digest_matches(f, size):
            raise _err(path, "checksum mismatch: the file is corrupted (sha256 of the contents "
                             "differs from the stored one)")
        arrays = _load_arrays(f, path, table, data_start, mmap_names, mmap)
    try:
        return _build(desc, arrays, path, version=version)
    except IndexFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _err(path, f"invalid index description: {type(exc).__name__}: {exc}") from None


def _mmap_names(desc):
    names = set()
    arrs = desc.get("arrays") or {}
    if desc.get("type") == "refine":
        names.add(arrs.get("vectors"))
        names |= _mmap_names(desc.get("base") or {})
    else:
        names.add(arrs.get("codes"))
    return names


def _get(arrays, desc, key, path, dtype, ndim):
    name = desc["arrays"][key]
    if name not in arrays:
        raise _err(path, f"array {name!r} is missing from the file")
    a = arrays[name]
    if a.dtype != np.dtype(dtype) or a.ndim != ndim:
        raise _err(path, f"array {name!r} has dtype {a.dtype} / {a.ndim} dims, expected "
                         f"{np.dtype(dtype)} / {ndim} dims")
    return a


def _build_codec(cdesc, d, path):
    classes = _codec_classes()
    cls_name = cdesc.get("class")
    if cls_name not in classes:
        raise _err(path, f"unknown codec class {cls_name!r}; known: {sorted(classes)}")
    p = dict(cdesc["params"])
    rot = p.pop("rotation")
    center = p.pop("center", None)
    name = p.pop("name", None)
    pd = p.pop("d")
    if pd != d:
        raise _err(path, f"codec dimension {pd} != index dimension {d}")
    try:
        codec = classes[cls_name](pd, rotation=rot["kind"], seed=rot["seed"],
                                  rotation_rounds=rot["rounds"], **p)
    except (TypeError, ValueError) as exc:
        raise _err(path, f"cannot rebuild codec {cls_name} from {cdesc['params']!r}: {exc}") from None
    if center is not None:
        codec.center = np.asarray(center, dtype=np.float32)
        if codec.center.shape != (pd,):
            raise _err(path, f"codec center has shape {codec.center.shape}, expected ({pd},)")
        codec._finish_layout()
    if codec.params() != cdesc["params"] or codec.name != name:
        raise _err(path, f"rebuilt codec {codec.name} does not reproduce the saved parameters "
                         f"{cdesc['params']!r}")
    return codec


def _check_tables(codec, arrays, prefix, cdesc, path):
    if cdesc.get("nsections") != len(codec.sections):
        raise _err(path, f"codec {codec.name}: {len(codec.sections)} sections, file has "
                         f"{cdesc.get('nsections')}")
    for i, s in enumerate(codec.sections):
        saved = arrays.get(f"{prefix}codec.table{i}")
        if saved is None or saved.shape != s.table.shape or not np.allclose(
                saved, s.table, rtol=1e-5, atol=1e-6):
            raise _err(path, f"codec {codec.name}: codebook table {i} of this vqindex differs "
                             f"from the one the file was written with (incompatible version)")


def _set_params(index, saved, path):
    from .index import SearchParams

    known = {f.name for f in dataclasses.fields(SearchParams)} - {"filter"}
    p = SearchParams(**{k: v for k, v in saved.items() if k in known})
    try:
        p.validate()
    except ValueError as exc:
        raise _err(path, f"bad saved search parameters: {exc}") from None
    index.params = p


def _build(desc, arrays, path, prefix="", version=FORMAT_VERSION):
    from .index import IndexFlatCodes, IndexIVFCodes, IndexRefine

    kind = desc.get("type")
    if kind not in INDEX_TYPES:
        raise _err(path, f"unknown index type {kind!r}; known: {INDEX_TYPES}")
    d, metric = int(desc["d"]), int(desc["metric_type"])
    if kind == "refine":
        base = _build(desc["base"], arrays, path, prefix + "base.", version)
        index = IndexRefine(base)
        vecs = _get(arrays, desc, "vectors", path, np.float32, 2)
        vids = _get(arrays, desc, "vec_ids", path, np.int64, 1)
        if vecs.shape[1] != d or vids.shape != (vecs.shape[0],):
            raise _err(path, f"refine vectors {vecs.shape} / ids {vids.shape} do not match "
                             f"d={d}")
        index._vectors, index._vec_ids = vecs, vids
        _set_params(index, desc["params"], path)
        return index

    codec = _build_codec(desc["codec"], d, path)
    _check_tables(codec, arrays, prefix, desc["codec"], path)
    if kind == "flat":
        index = IndexFlatCodes(d, codec, metric)
    elif kind == "ivf":
        import faiss
        nlist = int(desc["nlist"])
        quant = faiss.IndexFlatL2(d) if metric == 1 else faiss.IndexFlatIP(d)
        if desc.get("trained"):
            cent = _get(arrays, desc, "centroids", path, np.float32, 2)
            if cent.shape != (nlist, d):
                raise _err(path, f"centroids have shape {cent.shape}, expected ({nlist}, {d})")
            quant.add(np.ascontiguousarray(cent))
        index = IndexIVFCodes(d, codec, nlist, metric, quantizer=quant)
    else:
        try:
            from .index.hnsw import IndexHNSWCodes
        except ImportError:
            raise _err(path, "the file holds an HNSW index, but this vqindex has no "
                             "IndexHNSWCodes") from None
        index = IndexHNSWCodes(d, codec, int(desc["M"]), metric)
        index.efConstruction = int(desc["efConstruction"])

    codes = _get(arrays, desc, "codes", path, np.uint8, 2)
    sf = _get(arrays, desc, "sf", path, np.float32, 2)
    ids = _get(arrays, desc, "ids", path, np.int64, 1)
    n = int(desc["nstored"])
    width = codec.code_size if version == 1 else codec._code_bytes
    if (codes.shape != (n, width) or sf.shape != (n, codec.n_acc + 2)
            or ids.shape != (n,)):
        raise _err(path, f"stored arrays codes {codes.shape}, sf {sf.shape}, ids {ids.shape} "
                         f"do not match nstored={n}, {width} code bytes per vector")
    if version == 1:  # the code tail repeated the factors: keep the packed fields only
        codes = np.ascontiguousarray(codes[:, : codec._code_bytes])
    if kind == "hnsw":
        index._codes, index._sf, index._ids = codes, sf, ids
        index._sorted_ids = None
    elif kind == "flat":
        index._load_stored(np.zeros(n, np.int64), codes, sf, ids)
    if kind == "ivf":
        lists = _get(arrays, desc, "list_of", path, np.int64, 1)
        if lists.shape != (n,) or (n and (lists.min() < 0 or lists.max() >= index.nlist
                                          or np.any(np.diff(lists) < 0))):
            raise _err(path, "IVF list assignment is inconsistent (not sorted / out of range)")
        index._load_stored(np.ascontiguousarray(lists), codes, sf, ids)
    elif kind == "hnsw":
        graph = dict(desc.get("graph_scalars") or {})
        for key, name in (desc.get("graph_arrays") or {}).items():
            if name not in arrays:
                raise _err(path, f"array {name!r} is missing from the file")
            graph[key] = arrays[name]
        index.set_graph_arrays(graph)
    _set_params(index, desc["params"], path)
    if index.ntotal != int(desc["ntotal"]):
        raise _err(path, f"rebuilt index holds {index.ntotal} vectors, header says {desc['ntotal']}")
    return index
