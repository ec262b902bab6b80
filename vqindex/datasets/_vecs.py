"""Readers and a writer for the TEXMEX .fvecs / .ivecs / .bvecs formats."""
from pathlib import Path

import numpy as np

from ._errors import DatasetError

__all__ = ["read_fvecs", "read_ivecs", "read_bvecs", "write_fvecs", "read_vecs"]


def _read(path, dtype):
    """Return the (n, d) array of a *vecs file whose components have `dtype`."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read {path} ({exc})") from exc
    if raw.size == 0:
        raise DatasetError(f"{path} is empty; expected vectors in {path.suffix} format")
    if raw.size < 4:
        raise DatasetError(f"{path} is truncated ({raw.size} bytes); download or write it again")
    d = int(raw[:4].view(np.int32)[0])
    item = np.dtype(dtype).itemsize
    rec = 4 + d * item
    if d <= 0 or raw.size % rec:
        raise DatasetError(f"{path} is not a valid {path.suffix} file (first dimension {d}, "
                           f"{raw.size} bytes is not a whole number of records); it may be truncated")
    rows = raw.reshape(-1, rec)
    dims = rows[:, :4].copy().view(np.int32).ravel()
    if (dims != d).any():
        raise DatasetError(f"{path} mixes vector dimensions ({sorted(set(dims.tolist()))[:5]}); "
                           f"expected all {d}")
    return np.ascontiguousarray(rows[:, 4:].copy().view(dtype))


def read_fvecs(path):
    """Read a .fvecs file. path: file path. Returns float32 (n, d)."""
    return _read(path, np.float32)


def read_ivecs(path):
    """Read an .ivecs file (e.g. ground-truth ids). path: file path. Returns int32 (n, d)."""
    return _read(path, np.int32)


def read_bvecs(path):
    """Read a .bvecs file (uint8 components). path: file path. Returns uint8 (n, d)."""
    return _read(path, np.uint8)


def read_vecs(path):
    """Read .fvecs/.ivecs/.bvecs by suffix. path: file path. Returns float32 (n, d)."""
    readers = {".fvecs": read_fvecs, ".ivecs": read_ivecs, ".bvecs": read_bvecs}
    return np.ascontiguousarray(readers[Path(path).suffix.lower()](path), dtype=np.float32)


def write_fvecs(path, x):
    """Write a float32 (n, d) array as .fvecs. path: target file; x: array."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rec = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.float32)
    rec[:, 0] = np.array([x.shape[1]], dtype=np.int32).view(np.float32)[0]
    rec[:, 1:] = x
    rec.tofile(path)
