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

Rooms: this module keeps only the framing (preamble, checksum, header size and depth bounds,
allowlists of index types, codec classes and dtypes, the array table bounded by the file
size, mmap, atomic writes, refusing FIFOs / devices / directories, removing the temp files
of killed writers). Each index kind writes and checks its own state: `_state()` returns its
JSON-able fields, named arrays and child indexes, and `_from_state(meta, arrays, children,
ctx)` validates every array (shapes, ranges, ids unique and >= 0, factors finite, ...) before
building the index, also with verify=False (only the checksum is skipped then).
"""
import dataclasses
import errno
import hashlib
import io as _pyio
import json
import math
import os
import stat
import struct
import tempfile
import time

import numpy as np

from .errors import IndexFileError

__all__ = ["write_index", "read_index", "IndexFileError", "FORMAT_VERSION", "MAGIC",
           "ALLOWED_DTYPES", "FileContext"]

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
INDEX_TYPES = ("flat", "ivf", "hnsw", "refine", "float_flat", "float_ivf", "float_hnsw",
               "pretransform")
_WRAPPERS = ("refine", "pretransform")  # kinds with a child index "base" and no codec
#: header bounds: bytes, JSON nesting depth, arrays, dimensions of one array
_MAX_HEADER = 1 << 26
_MAX_DEPTH = 32
_MAX_ARRAYS = 1 << 16
_MAX_NDIM = 8
#: a temp file of a writer that is not running any more (or of unknown owner and older than
#: this many seconds) is removed by the next write to the same path
_STALE_TEMP_S = 600.0


def _codec_classes():
    from .codecs import BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd
    return {c.__name__: c for c in (BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd)}


def _index_classes():
    from .index import IndexFlatCodes, IndexIVFCodes, IndexRefine
    from .index.float_flat import IndexFlat, IndexHNSWFlat, IndexIVFFlat
    from .index.pretransform import IndexPreTransform
    classes = {"flat": IndexFlatCodes, "ivf": IndexIVFCodes, "refine": IndexRefine,
               "float_flat": IndexFlat, "float_ivf": IndexIVFFlat, "float_hnsw": IndexHNSWFlat,
               "pretransform": IndexPreTransform}
    try:
        from .index.hnsw import IndexHNSWCodes
        classes["hnsw"] = IndexHNSWCodes
    except ImportError:  # pragma: no cover - a build without HNSW
        pass
    return classes


def _align(n):
    return -(-n // ALIGN) * ALIGN


# ====================================================================== describe (write side)
class _Arrays:
    """Collects the arrays to write, by unique name."""

    def __init__(self):
        self.items = []
        self._names = set()

    def add(self, name, arr):
        arr = np.asarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise TypeError(f"cannot save array {name!r}: dtype {arr.dtype} is not in the "
                            f"allowlist {ALLOWED_DTYPES}")
        if name in self._names:
            raise ValueError(f"cannot save two arrays named {name!r}")
        self._names.add(name)
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


def _file_kind(index):
    kind = getattr(type(index), "_file_kind", None)
    if kind is None and hasattr(index, "graph_arrays"):
        kind = "hnsw"
    return kind


def _describe(index, arrays, prefix=""):
    """The header description of `index` (its arrays go into `arrays`, named prefix + key).

    Common fields are io's (type, d, metric_type, metric, ntotal, params, codec); the rest
    comes from the index's `_state()` (contracts: index kinds own their state)."""
    from .index import Index

    if not isinstance(index, Index):
        from .errors import ArgumentTypeError
        raise ArgumentTypeError(f"write_index expects a vqindex index, got {type(index).__name__}")
    kind = _file_kind(index)
    if kind not in INDEX_TYPES:
        raise TypeError(f"cannot save an index of type {type(index).__name__}; "
                        f"supported: IndexFlatCodes, IndexIVFCodes, IndexHNSWCodes, IndexRefine")
    desc = {"type": kind, "d": int(index.d),
            "metric_type": int(getattr(index, "_metric", index.metric_type)),
            "metric": index.metric, "ntotal": int(index.ntotal), "params": _search_params(index)}
    if getattr(type(index), "_file_codec", True) and kind not in _WRAPPERS:
        desc["codec"] = _codec_desc(index.codec, arrays, prefix)
    if hasattr(index, "_state"):
        meta, arrs, children = index._state()
        for key in meta:
            if key in desc or key == "arrays":
                raise ValueError(f"{type(index).__name__}._state: field {key!r} is reserved")
        desc.update(meta)
        for key, child in children.items():
            desc[key] = _describe(child, arrays, prefix + key + ".")
        desc["arrays"] = {key: arrays.add(prefix + key, a) for key, a in arrs.items()}
        return desc
    raise TypeError(f"{type(index).__name__} has no _state(): it cannot be saved")


def _write_payload(f, arr, h):
    """Write one array's bytes (a hook the tests patch to simulate a failure midway)."""
    mv = memoryview(arr.reshape(-1)).cast("B") if arr.size else b""
    f.write(mv)
    h.update(mv)


def _prepare(index):
    """(head bytes, arrays, table) of a file holding `index`, taken under its lock."""
    from . import __version__

    arrays = _Arrays()
    lock = getattr(index, "_lock", None)
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
    try:
        hbytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise ValueError(f"cannot save the index: a header value is not finite ({exc})") from None
    pre = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(hbytes))
    data_start = _align(len(pre) + len(hbytes))
    head = pre + hbytes + b"\0" * (data_start - len(pre) - len(hbytes))
    return head, arrays, table


def _write_stream(f, head, arrays, table):
    """Write a whole file (head, padded payloads, sha256) to a binary stream."""
    h = hashlib.sha256()
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


def _temp_prefix(path):
    return "." + os.path.basename(path) + "."


def _remove_stale_temps(path):
    """Remove temp files that a killed writer left next to `path` (best effort).

    Temp names are ".<name>.<pid>.<random>.tmp": one whose pid no longer runs (or, for a
    name without a pid, one older than _STALE_TEMP_S) is removed; a live writer's is kept."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        full = os.path.join(directory, name)
        middle = name[len(prefix): -len(".tmp")]
        pid_s = middle.split(".", 1)[0]
        stale = False
        if pid_s.isdigit() and "." in middle:
            pid = int(pid_s)
            if pid != os.getpid():
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    stale = True
                except (PermissionError, OSError):
                    stale = False
        else:
            try:
                stale = time.time() - os.lstat(full).st_mtime > _STALE_TEMP_S
            except OSError:
                stale = False
        if stale:
            try:
                if stat.S_ISREG(os.lstat(full).st_mode):
                    os.unlink(full)
            except OSError:
                pass


def write_index(index, path):
    """Save `index` to `path` atomically (temp file in the same directory, fsync, os.replace).

    The target is either the old file or the complete new one, never a partial file; on any
    error the temp file is removed and the exception propagates. A temp file left by a writer
    that was killed is removed by the next write to the same path. Writing over a file that a
    `read_index(..., mmap=True)` index maps is safe (the mapping keeps the old inode).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "write_index: the path is a directory", path)
    head, arrays, table = _prepare(index)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{_temp_prefix(path)}{os.getpid()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_stream(f, head, arrays, table)
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


def _index_to_bytes(index):
    """The bytes of the file `write_index(index, path)` would write (no temp file)."""
    head, arrays, table = _prepare(index)
    buf = _pyio.BytesIO()
    _write_stream(buf, head, arrays, table)
    return buf.getvalue()


# ====================================================================== read side
def _err(path, msg):
    return IndexFileError(f"{path}: {msg}")


class FileContext:
    """What an index kind's `_from_state` gets besides its fields and arrays.

    path: the file (or "<bytes>") for messages; version: the file's format (1 or 2); mmap:
    whether arrays of `_mmap_arrays` are memory-mapped; codec: the rebuilt, table-checked
    codec (None for Refine); prefix: where this index's arrays live in the file."""

    def __init__(self, path, version, mmap=False, codec=None, prefix=""):
        self.path, self.version, self.mmap = path, version, mmap
        self.codec, self.prefix = codec, prefix

    def fail(self, msg):
        """An IndexFileError naming the file (raise it)."""
        where = f" (index {self.prefix[:-1]!r})" if self.prefix else ""
        return _err(self.path, f"{msg}{where}")

    def array(self, arrays, key, dtype, ndim):
        """arrays[key], checked to exist and to have this dtype and number of dimensions."""
        if key not in arrays:
            raise self.fail(f"array {key!r} is missing from the file")
        a = arrays[key]
        if a.dtype != np.dtype(dtype) or a.ndim != ndim:
            raise self.fail(f"array {key!r} has dtype {a.dtype} / {a.ndim} dims, expected "
                            f"{np.dtype(dtype)} / {ndim} dims")
        return a

    def count(self, meta, key, hi=None):
        """meta[key] as an int >= 0 (and <= hi)."""
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (hi is not None and v > hi):
            bound = "" if hi is None else f" and <= {hi}"
            raise self.fail(f"field {key!r} must be an integer >= 0{bound}, got {v!r}")
        return v

    def flag(self, meta, key):
        v = meta.get(key)
        if not isinstance(v, bool):
            raise self.fail(f"field {key!r} must be true or false, got {v!r}")
        return v


class _FileSource:
    """Reads a regular file by offset (and maps it)."""

    def __init__(self, f, path, size):
        self.f, self.path, self.size = f, path, size

    def read(self, at, n):
        self.f.seek(at)
        return self.f.read(n)

    def readinto(self, at, mv):
        self.f.seek(at)
        return self.f.readinto(mv)

    def digest_matches(self):
        h = hashlib.sha256()
        self.f.seek(0)
        left = self.size - _DIGEST
        while left > 0:
            chunk = self.f.read(min(_CHUNK, left))
            if not chunk:
                return False
            h.update(chunk)
            left -= len(chunk)
        return self.f.read(_DIGEST) == h.digest()

    def memmap(self, dtype, at, shape):
        return np.memmap(self.f, dtype=dtype, mode="r", offset=at, shape=shape)


class _BytesSource:
    """Reads a bytes-like object."""

    def __init__(self, data):
        self.mv = memoryview(data).cast("B")
        self.path, self.size = "<bytes>", self.mv.nbytes

    def read(self, at, n):
        return bytes(self.mv[at: at + n])

    def readinto(self, at, mv):
        part = self.mv[at: at + len(mv)]
        mv[: len(part)] = part
        return len(part)

    def digest_matches(self):
        if self.size < _DIGEST:
            return False
        return hashlib.sha256(self.mv[: self.size - _DIGEST]).digest() == bytes(
            self.mv[self.size - _DIGEST:])

    def memmap(self, dtype, at, shape):  # pragma: no cover - bytes are never mapped
        raise AssertionError


def _json_depth(obj):
    """Nesting depth of a parsed JSON value (iterative: no recursion)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        v, dd = stack.pop()
        if isinstance(v, dict):
            depth = max(depth, dd)
            stack.extend((x, dd + 1) for x in v.values())
        elif isinstance(v, list):
            depth = max(depth, dd)
            stack.extend((x, dd + 1) for x in v)
        if depth > _MAX_DEPTH:
            break
    return depth


def _no_constants(name):
    raise ValueError(f"non-finite number {name} in the header")


def _parse_header(raw):
    """The header dict, or None when it is not a JSON object with payload_bytes."""
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        return "deep"
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    if _json_depth(header) > _MAX_DEPTH:
        return "deep"
    payload = header.get("payload_bytes")
    if isinstance(payload, bool) or not isinstance(payload, int) or payload < 0:
        return None
    return header


def _read_header(src):
    """Check magic / version / sizes; return (header dict | None | "deep", version, data_start)."""
    path, size = src.path, src.size
    pre = src.read(0, _PREAMBLE.size)
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
        raise _err(path, f"header length {hlen} is implausible (corrupted file; at most "
                         f"{_MAX_HEADER})")
    if _PREAMBLE.size + hlen + _DIGEST > size:
        raise _err(path, f"truncated vqindex file ({size} bytes; the header alone needs "
                         f"{_PREAMBLE.size + hlen + _DIGEST})")
    raw = src.read(_PREAMBLE.size, hlen)
    data_start = _align(_PREAMBLE.size + hlen)
    header = _parse_header(raw)
    if not isinstance(header, dict):
        return header, version, data_start
    expected = data_start + header["payload_bytes"] + _DIGEST
    if size < expected:
        raise _err(path, f"truncated vqindex file ({size} bytes, expected {expected})")
    if size > expected:
        raise _err(path, f"file has {size - expected} unexpected bytes after the checksum "
                         f"(expected {expected} bytes; corrupted or concatenated file)")
    return header, version, data_start


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_table(header, path):
    """Validate the array table against the payload (every array inside it, so no array
    is larger than the file); return {name: (dtype, shape, offset, nbytes)} in file order."""
    table = header.get("arrays")
    if not isinstance(table, list):
        raise _err(path, "header has no array table")
    if len(table) > _MAX_ARRAYS:
        raise _err(path, f"array table has {len(table)} entries (at most {_MAX_ARRAYS})")
    payload = header["payload_bytes"]
    out, end = {}, 0
    for row in table:
        try:
            name, dt, shape = row["name"], row["dtype"], row["shape"]
            off, nbytes = row["offset"], row["nbytes"]
        except (TypeError, KeyError):
            raise _err(path, f"malformed array table entry {str(row)[:200]}") from None
        if not isinstance(name, str) or len(name) > 256:
            raise _err(path, f"array table entry has a bad name {str(name)[:80]!r}")
        if not isinstance(dt, str) or dt not in ALLOWED_DTYPES:
            raise _err(path, f"array {name!r} has dtype {str(dt)[:40]!r}, which is not in the "
                             f"allowlist {ALLOWED_DTYPES}")
        if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
                or not all(_is_int(s) and 0 <= s < 1 << 62 for s in shape)):
            raise _err(path, f"array {name!r} has a bad shape {str(shape)[:80]}")
        dtype = np.dtype(dt)
        want = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if math.prod(max(s, 1) for s in shape) * dtype.itemsize >= 1 << 62:
            raise _err(path, f"array {name!r} has an impossible shape {shape}")
        if not _is_int(nbytes) or nbytes != want:
            raise _err(path, f"array {name!r}: {nbytes!r} bytes do not match shape {shape} {dt}")
        if not _is_int(off) or off % ALIGN or off < end:
            raise _err(path, f"array {name!r} has a bad offset {off!r}")
        if off + nbytes > payload:
            raise _err(path, f"array {name!r} ({nbytes} bytes at {off}) runs past the payload "
                             f"({payload} bytes)")
        if name in out:
            raise _err(path, f"array {name!r} appears twice")
        end = off + nbytes
        out[name] = (dtype, tuple(shape), off, nbytes)
    return out


def _load_arrays(src, table, data_start, mmap_names, mmap):
    """Arrays by name; those in mmap_names are np.memmap (read-only) when mmap is set.
    Every size was bounded by the file size in `_check_table`."""
    out = {}
    for name, (dtype, shape, off, nbytes) in table.items():
        at = data_start + off
        if mmap and name in mmap_names and nbytes:
            out[name] = src.memmap(dtype, at, shape)
            continue
        arr = np.empty(shape, dtype)
        if nbytes:
            got = src.readinto(at, memoryview(arr.reshape(-1)).cast("B"))
            if got != nbytes:
                raise _err(src.path, f"truncated vqindex file (array {name!r})")
        out[name] = arr
    return out


def _open_regular(path):
    """Open `path` for reading without blocking, refusing anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise _err(path, "is a directory, not an index file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = ("a directory" if stat.S_ISDIR(st.st_mode) else
                    "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise _err(path, f"is {what}; read_index reads regular files only")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, st.st_size


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
    detected, but every structural check below still runs).

    As for any memory-mapped file, truncating or overwriting the file in place while an
    index maps it is fatal (the process gets SIGBUS on the next access to the lost pages);
    replacing it with `write_index` (a rename) is safe.

    Every array is checked against the header and against the others before use (sizes
    bounded by the file size before anything is allocated, offsets monotone and in range,
    ids unique and >= 0, factors finite, counts >= 0, ...), with verify=False too.

    IVF: the coarse quantizer is rebuilt as a faiss IndexFlatL2 / IndexFlatIP over the saved
    centroids, whatever quantizer class the saved index had (e.g. an HNSW quantizer comes
    back flat: exact coarse assignment, same centroids).

    Raises IndexFileError (a ValueError) for a foreign, truncated, corrupted (checksum),
    newer-format, inconsistent or non-regular (FIFO, device, directory) file. Nothing from
    the file is ever executed.
    """
    path = os.fspath(path)
    f, size = _open_regular(path)
    with f:
        return _read(_FileSource(f, path, size), mmap, verify)


def _index_from_bytes(data, verify=True):
    """Load an index from the bytes of a file (`_index_to_bytes`); same checks as files."""
    return _read(_BytesSource(data), False, verify)


def _read(src, mmap, verify):
    path, size = src.path, src.size
    header, version, data_start = _read_header(src)
    if not isinstance(header, dict):
        if src.digest_matches():
            if header == "deep":
                raise _err(path, f"header JSON is nested deeper than {_MAX_DEPTH} levels")
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
        if verify and not src.digest_matches():
            raise _err(path, "checksum mismatch: the file is corrupted") from None
        raise
    if (verify or not mmap) and not src.digest_matches():
        raise _err(path, "checksum mismatch: the file is corrupted (sha256 of the contents "
                         "differs from the stored one)")
    arrays = _load_arrays(src, table, data_start, mmap_names, mmap)
    try:
        return _build(desc, arrays, FileContext(path, version, mmap))
    except IndexFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise _err(path, f"invalid index description: {type(exc).__name__}: {exc}") from None


def _mmap_names(desc, depth=0):
    """File names of the arrays read_index(mmap=True) maps (each kind's `_mmap_arrays`)."""
    names = set()
    if not isinstance(desc, dict) or depth > 4:
        return names
    arrs = desc.get("arrays")
    arrs = arrs if isinstance(arrs, dict) else {}
    kind = desc.get("type")
    cls = _index_classes().get(kind) if isinstance(kind, str) else None
    keys = getattr(cls, "_mmap_arrays", ("codes",)) if cls is not None else ()
    for key in keys:
        if isinstance(arrs.get(key), str):
            names.add(arrs[key])
    if isinstance(kind, str) and kind in _WRAPPERS:
        names |= _mmap_names(desc.get("base"), depth + 1)
    return names


def _build_codec(cdesc, d, ctx):
    classes = _codec_classes()
    if not isinstance(cdesc, dict) or not isinstance(cdesc.get("params"), dict):
        raise ctx.fail("codec description is missing or malformed")
    cls_name = cdesc.get("class")
    if cls_name not in classes:
        raise ctx.fail(f"unknown codec class {str(cls_name)[:80]!r}; known: {sorted(classes)}")
    p = dict(cdesc["params"])
    rot = p.pop("rotation", None)
    center = p.pop("center", None)
    name = p.pop("name", None)
    pd = p.pop("d", None)
    if pd != d:
        raise ctx.fail(f"codec dimension {pd!r} != index dimension {d}")
    if not isinstance(rot, dict) or set(rot) != {"dim", "kind", "seed", "rounds"}:
        raise ctx.fail(f"codec rotation description {str(rot)[:120]} is malformed")
    rounds = rot["rounds"]
    if not _is_int(rounds) or not 0 <= rounds <= 64 or not _is_int(rot["seed"]):
        raise ctx.fail(f"codec rotation rounds {rounds!r} / seed {rot['seed']!r} out of range")
    if not _is_int(rot["dim"]) or not d <= rot["dim"] <= 4 * d + 64:
        raise ctx.fail(f"codec rotation dimension {rot['dim']!r} does not fit d={d}")
    if rot["kind"] != "fast" and d > 1 << 14:
        raise ctx.fail(f"a dense ({rot['kind']!r}) rotation of dimension {d} is implausible")
    for key, v in p.items():  # the remaining codec parameters are small numbers or names
        if isinstance(v, (dict, list)) or (_is_int(v) and not -(1 << 20) <= v <= 1 << 20):
            raise ctx.fail(f"codec parameter {key}={str(v)[:40]} is out of range")
    try:
        codec = classes[cls_name](pd, rotation=rot["kind"], seed=rot["seed"],
                                  rotation_rounds=rot["rounds"], **p)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ctx.fail(f"cannot rebuild codec {cls_name} from {str(cdesc['params'])[:200]}: "
                       f"{exc}") from None
    if center is not None:
        if not isinstance(center, list) or len(center) != pd:
            raise ctx.fail(f"codec center must be a list of {pd} numbers")
        try:
            c = np.asarray(center, dtype=np.float64)
        except (TypeError, ValueError):
            raise ctx.fail("codec center must be a list of numbers") from None
        from ._validation import MAX_NORM
        if c.shape != (pd,) or not np.isfinite(c).all() or np.sqrt((c * c).sum()) > MAX_NORM:
            raise ctx.fail(f"codec center must be {pd} finite numbers of norm <= {MAX_NORM:.3g}")
        codec.center = c.astype(np.float32)
        codec._finish_layout()
    if codec.params() != cdesc["params"] or codec.name != name:
        raise ctx.fail(f"rebuilt codec {codec.name} does not reproduce the saved parameters "
                       f"{str(cdesc['params'])[:200]}")
    return codec


def _check_tables(codec, arrays, prefix, cdesc, ctx):
    if cdesc.get("nsections") != len(codec.sections):
        raise ctx.fail(f"codec {codec.name}: {len(codec.sections)} sections, file has "
                       f"{cdesc.get('nsections')!r}")
    for i, s in enumerate(codec.sections):
        saved = arrays.get(f"{prefix}codec.table{i}")
        if (saved is None or saved.dtype != s.table.dtype or saved.shape != s.table.shape
                or not np.allclose(saved, s.table, rtol=1e-5, atol=1e-6)):
            raise ctx.fail(f"codec {codec.name}: codebook table {i} of this vqindex differs "
                           f"from the one the file was written with (incompatible version)")


def _set_params(index, saved, ctx):
    from .index import SearchParams

    if not isinstance(saved, dict):
        raise ctx.fail("saved search parameters are not an object")
    known = {f.name for f in dataclasses.fields(SearchParams)} - {"filter"}
    try:
        p = SearchParams(**{k: v for k, v in saved.items() if k in known})
        p.validate()
    except (TypeError, ValueError) as exc:
        raise ctx.fail(f"bad saved search parameters: {exc}") from None
    index.params = p


def _build(desc, arrays, ctx, prefix="", depth=0):
    """An index from its description and the file's arrays (see `_describe`)."""
    if not isinstance(desc, dict):
        raise ctx.fail("index description is not an object")
    kind = desc.get("type")
    if not isinstance(kind, str) or kind not in INDEX_TYPES:
        raise ctx.fail(f"unknown index type {str(kind)[:40]!r}; known: {INDEX_TYPES}")
    classes = _index_classes()
    if kind not in classes:
        raise ctx.fail(f"the file holds an {kind} index, which this vqindex lacks")
    cls = classes[kind]
    d = desc.get("d")
    if not _is_int(d) or not 1 <= d <= 1 << 20:
        raise ctx.fail(f"dimension d={d!r} is not an integer in [1, 2^20]")
    if desc.get("metric_type") not in (0, 1, 100) or isinstance(desc.get("metric_type"), bool):
        raise ctx.fail(f"unknown metric_type {desc.get('metric_type')!r}")
    ntotal = ctx.count(desc, "ntotal")
    names = desc.get("arrays")
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in names.items()):
        raise ctx.fail("index description has no valid array map")
    local = {}
    for key, name in names.items():
        if name not in arrays:
            raise ctx.fail(f"array {name!r} is missing from the file")
        local[key] = arrays[name]
    children = {}
    if kind in _WRAPPERS:
        if depth > 2:
            raise ctx.fail("Refine indexes nested too deep")
        children["base"] = _build(desc.get("base"), arrays, ctx, prefix + "base.", depth + 1)
    codec = None
    if getattr(cls, "_file_codec", True) and kind not in _WRAPPERS:
        sub = FileContext(ctx.path, ctx.version, ctx.mmap, None, prefix)
        codec = _build_codec(desc.get("codec"), d, sub)
        _check_tables(codec, arrays, prefix, desc["codec"], sub)
    kctx = FileContext(ctx.path, ctx.version, ctx.mmap, codec, prefix)
    index = cls._from_state(desc, local, children, kctx)
    _set_params(index, desc.get("params"), kctx)
    if index.ntotal != ntotal:
        raise kctx.fail(f"rebuilt index holds {index.ntotal} vectors, header says {ntotal}")
    return index
