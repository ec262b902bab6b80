"""The write-ahead log of one shard: every acknowledged mutation since its last saved file.

A shard acknowledges an add / remove / reset only after the record is in this file and the
file is fsync'ed, so a shard process that dies is rebuilt exactly by loading its last saved
vqindex file and replaying the log (`ShardLog.replay`). The log holds the validated float32
vectors, not codes: the codecs are data-oblivious and seeded, so re-adding the same vectors
with the same ids in the same order gives the same codes (and, for IVF, the same lists).

File layout (little-endian)::

    offset 0  8 bytes  magic b"VQSHLOG\\0"
    offset 8  uint32   log format version (1)
    offset 12 uint32   d (vector dimension)
    then records, each:
        20 bytes  <4sHHQ>... header: b"VQLR", op (1 add, 2 remove, 3 reset), reserved, seq
                  (uint64: the caller's operation number), n (uint64 rows)
        payload   add: ids int64 (n,), then vectors float32 (n, d); remove: ids int64 (n,);
                  reset: nothing
        4 bytes   crc32 of the header and payload

A record cut short or with a bad crc at the very end of the file is a write that was never
acknowledged (the process died before fsync returned); replay drops it and truncates the file
there. A bad record followed by more data is corruption and raises IndexFileError.
"""
import os
import struct
import zlib

import numpy as np

from ..errors import IndexFileError

__all__ = ["ShardLog", "OP_ADD", "OP_REMOVE", "OP_RESET", "LOG_VERSION"]

MAGIC = b"VQSHLOG\0"
LOG_VERSION = 1
_FILE_HEAD = struct.Struct("<8sII")
_REC = struct.Struct("<4sHHQQ")
_REC_MAGIC = b"VQLR"
_CRC = struct.Struct("<I")
OP_ADD, OP_REMOVE, OP_RESET = 1, 2, 3


def _payload_nbytes(op, n, d):
    if op == OP_ADD:
        return n * 8 + n * d * 4
    if op == OP_REMOVE:
        return n * 8
    return 0


def _fsync_dir(path):
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class ShardLog:
    """Append-only, fsync'ed operation log of one shard (see the module docstring)."""

    def __init__(self, path, d):
        """Open (or create) the log at `path` for vectors of dimension `d`."""
        self.path = os.fspath(path)
        self.d = int(d)
        if not os.path.exists(self.path):
            with open(self.path, "wb") as f:
                f.write(_FILE_HEAD.pack(MAGIC, LOG_VERSION, self.d))
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(self.path)
        self._f = open(self.path, "r+b")
        head = self._f.read(_FILE_HEAD.size)
        if len(head) < _FILE_HEAD.size:
            raise IndexFileError(f"{self.path}: shard log is truncated (no header)")
        magic, version, d_file = _FILE_HEAD.unpack(head)
        if magic != MAGIC:
            raise IndexFileError(f"{self.path}: not a vqindex shard log (bad magic)")
        if version != LOG_VERSION:
            raise IndexFileError(f"{self.path}: shard log version {version}, expected {LOG_VERSION}")
        if d_file != self.d:
            raise IndexFileError(f"{self.path}: shard log has d={d_file}, the shard has d={self.d}")
        self._end = _FILE_HEAD.size

    def replay(self):
        """Yield (op, seq, ids, vectors) for every complete record, in order.

        A torn last record is dropped and the file truncated to the last complete one, so
        appends continue from a clean end."""
        f = self._f
        size = os.fstat(f.fileno()).st_size
        pos = _FILE_HEAD.size
        f.seek(pos)
        while pos < size:
            head = f.read(_REC.size)
            if len(head) < _REC.size:
                break
            magic, op, _, seq, n = _REC.unpack(head)
            if magic != _REC_MAGIC or op not in (OP_ADD, OP_REMOVE, OP_RESET):
                self._bad(pos, size, None)
                break
            nbytes = _payload_nbytes(op, n, self.d)
            end = pos + _REC.size + nbytes + _CRC.size
            if end > size:
                break  # cut short: never acknowledged
            payload = bytearray(nbytes)
            f.readinto(memoryview(payload))
            crc = _CRC.unpack(f.read(_CRC.size))[0]
            if zlib.crc32(payload, zlib.crc32(head)) != crc:
                self._bad(pos, size, end)
                break
            ids = np.frombuffer(payload, np.int64, count=n) if op != OP_RESET else None
            vectors = None
            if op == OP_ADD:
                vectors = np.frombuffer(payload, np.float32, offset=8 * n).reshape(n, self.d)
            pos = end
            yield op, int(seq), ids, vectors
        if pos < size:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
        self._end = pos

    def _bad(self, pos, size, end):
        if end is not None and end < size:
            raise IndexFileError(f"{self.path}: shard log record at offset {pos} is corrupted "
                                 f"(crc mismatch) and more records follow")
        if end is None and size - pos > _REC.size + _CRC.size:
            raise IndexFileError(f"{self.path}: shard log record at offset {pos} has a bad header")

    def append(self, op, seq, ids=None, vectors=None):
        """Write one record and fsync; on any error the file is cut back to its last record."""
        n = 0 if ids is None else int(ids.shape[0])
        head = _REC.pack(_REC_MAGIC, op, 0, int(seq), n)
        parts = [head]
        if ids is not None:
            parts.append(np.ascontiguousarray(ids, np.int64).reshape(-1).view(np.uint8))
        if vectors is not None:
            parts.append(np.ascontiguousarray(vectors, np.float32).reshape(-1).view(np.uint8))
        crc = 0
        for p in parts:
            crc = zlib.crc32(p, crc)
        f = self._f
        try:
            f.seek(self._end)
            for p in parts:
                f.write(p)
            f.write(_CRC.pack(crc))
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            try:
                f.truncate(self._end)
                f.flush()
            except OSError:
                pass
            raise
        self._end = f.tell()

    @property
    def nbytes(self):
        """Bytes in the log (header and records)."""
        return self._end

    def close(self):
        """Close the file (idempotent)."""
        if self._f is not None and not self._f.closed:
            self._f.close()
