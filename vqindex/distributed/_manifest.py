"""Routing of ids to shards, the saved-directory manifest, and byte-level file helpers.

A saved sharded index is a directory::

    manifest.json              this file's format (below), written last and atomically
    template.g<G>.vqi          the trained, empty index every shard started from
    shard-<i>.g<G>.vqi         shard i's vectors: a plain vqindex file (vqindex.read_index)
    shard-<i>.g<G>.log         acknowledged adds / removes since that file (see _log.py)

G is the save generation: a save writes new files beside the old ones and commits by
replacing manifest.json, then removes the older generations, so the directory always holds
one complete, consistent state. The manifest::

    {"format": "vqindex-shards", "version": 1, "library_version": "0.1.0",
     "num_shards": N, "routing": {"hash": "splitmix64", "rule": "splitmix64(uint64(id)) % N"},
     "generation": G, "d": d, "metric_type": m, "seq": last operation number,
     "template": {"file", "bytes", "sha256"},
     "shards": [{"file", "log", "bytes", "sha256", "ntotal"}, ...]}
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from ..errors import IndexFileError

__all__ = ["route", "ROUTING", "MANIFEST", "MANIFEST_VERSION", "write_manifest", "read_manifest",
           "sha256_file", "write_bytes_atomic", "index_to_bytes", "fsync_dir"]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "vqindex-shards"
MANIFEST_VERSION = 1
ROUTING = {"hash": "splitmix64", "rule": "splitmix64(uint64(id)) % num_shards"}

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def route(ids, num_shards):
    """Shard number (int64 (n,)) of each int64 id: splitmix64 of its 64 bits, mod num_shards.

    A fixed function of the id alone (no state, no seed), so every process and every later
    version routes an id to the same shard; it is recorded in the manifest."""
    z = np.asarray(ids, np.int64).view(np.uint64) + _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(num_shards)).astype(np.int64)


def fsync_dir(path):
    """fsync a directory so a rename in it is durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_bytes_atomic(path, data):
    """Write `data` to `path` via a temp file in the same directory, fsync, os.replace."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def sha256_file(path, chunk=1 << 22):
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def index_to_bytes(index):
    """The bytes of `index` in the vqindex file format (vqindex.serialize_index when the
    library has it, else write_index to a temporary file). Never pickle."""
    import vqindex
    ser = getattr(vqindex, "serialize_index", None)
    if ser is not None:
        return bytes(ser(index))
    with tempfile.TemporaryDirectory(prefix="vqindex-ser-") as tmp:
        path = os.path.join(tmp, "index.vqi")
        vqindex.write_index(index, path)
        with open(path, "rb") as f:
            return f.read()


def write_manifest(directory, manifest):
    """Write manifest.json atomically (the commit point of a save)."""
    data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    write_bytes_atomic(os.path.join(directory, MANIFEST), data)


def read_manifest(directory):
    """Read and check manifest.json of a saved sharded index; IndexFileError if invalid."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.isfile(path):
        raise IndexFileError(f"{directory}: no {MANIFEST}; not a saved ShardedIndex directory")
    try:
        with open(path, "rb") as f:
            m = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IndexFileError(f"{path}: not a valid JSON manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise IndexFileError(f"{path}: not a vqindex shard manifest (format "
                             f"{m.get('format') if isinstance(m, dict) else None!r})")
    if m.get("version") != MANIFEST_VERSION:
        raise IndexFileError(f"{path}: manifest version {m.get('version')!r}; this vqindex "
                             f"reads version {MANIFEST_VERSION}")
    try:
        n = m["num_shards"]
        ok = (isinstance(n, int) and n >= 1 and m.get("routing") == ROUTING
              and isinstance(m["d"], int) and isinstance(m["generation"], int)
              and isinstance(m["shards"], list) and len(m["shards"]) == n
              and all(isinstance(s, dict) and isinstance(s.get("file"), str)
                      and isinstance(s.get("log"), str) and isinstance(s.get("sha256"), str)
                      for s in m["shards"])
              and isinstance(m["template"], dict))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise IndexFileError(f"{path}: manifest is inconsistent (num_shards, routing, d, "
                             f"generation, template or the shard list)")
    for s in m["shards"] + [m["template"]]:
        if os.path.basename(s["file"]) != s["file"] or (
                "log" in s and os.path.basename(s["log"]) != s["log"]):
            raise IndexFileError(f"{path}: manifest names a file outside its directory")
    return m
