"""Read and write the ann-benchmarks HDF5 layout (train, test, neighbors, distances)."""
from pathlib import Path

import numpy as np

from ._errors import DatasetError
from ._truth import canonical_metric

__all__ = ["read_layout", "write_layout", "read_attrs", "read_rows"]

_ROWS_BYTES = 1 << 26  # read big datasets in ~64 MB row blocks


def _h5():
    """Import h5py or raise DatasetError saying how to install it."""
    try:
        import h5py
    except ImportError as exc:
        raise DatasetError("reading HDF5 data sets needs h5py: pip install h5py") from exc
    return h5py


def _open(path):
    """Open `path` read-only or raise DatasetError naming it corrupt."""
    try:
        return _h5().File(path, "r")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file, probably truncated or corrupt "
                           f"({exc}); delete it and download or rebuild it") from exc


def read_attrs(path):
    """Return the root attributes of an HDF5 file as a plain dict (strings decoded)."""
    with _open(path) as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def read_rows(dset, rows=None):
    """Return rows of an h5py dataset (all, or the sorted index array `rows`) as a numpy array."""
    if rows is None:
        return dset[...]
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    step = max(1, _ROWS_BYTES // max(1, dset.dtype.itemsize * int(np.prod(dset.shape[1:]))))
    out = np.empty((len(rows),) + dset.shape[1:], dtype=dset.dtype)
    lo = 0
    while lo < len(srt):
        start = int(srt[lo])
        hi = int(np.searchsorted(srt, start + step, side="left"))
        block = dset[start:int(srt[hi - 1]) + 1]
        out[order[lo:hi]] = block[srt[lo:hi] - start]
        lo = hi
    return out


def _check_2d(x, key, path):
    """Raise DatasetError unless `x` (an h5py dataset) is 2-D and non-empty."""
    if len(x.shape) != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DatasetError(f"{path}: dataset '{key}' has shape {x.shape}; expected a non-empty "
                           f"2-D (n, d) array (ann-benchmarks layout)")


def read_layout(path, metric=None, train_rows=None):
    """Read an ann-benchmarks HDF5 file.

    path: file; metric: used when the file has no `distance` attribute (default "angular");
    train_rows: optional index array, read only those train rows.
    Returns dict train, test (float32), neighbors (int64 or None), distances (float32 or None),
    metric, attrs. Raises DatasetError on a corrupt file or a wrong layout.
    """
    path = Path(path)
    h5py = _h5()
    with _open(path) as f:
        try:
            missing = [k for k in ("train", "test") if k not in f]
            if missing:
                raise DatasetError(f"{path}: missing dataset(s) {missing} (has {sorted(f.keys())}); "
                                   f"expected the ann-benchmarks layout train/test/neighbors/distances")
            for key in ("train", "test"):
                if not isinstance(f[key], h5py.Dataset):
                    raise DatasetError(f"{path}: '{key}' is a group, not a dataset; wrong layout")
                _check_2d(f[key], key, path)
            if f["train"].shape[1] != f["test"].shape[1]:
                raise DatasetError(f"{path}: train has {f['train'].shape[1]} dimensions but test has "
                                   f"{f['test'].shape[1]}; wrong layout")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            try:
                m = canonical_metric(attrs.get("distance", metric or "angular"))
            except DatasetError as exc:
                raise DatasetError(f"{path}: {exc}") from None
            train = read_rows(f["train"], train_rows)
            test = f["test"][...]
            nb = dist = None
            if "neighbors" in f and "distances" in f:
                nb, dist = f["neighbors"][...], f["distances"][...]
        except DatasetError:
            raise
        except (OSError, KeyError, RuntimeError) as exc:
            raise DatasetError(f"{path} could not be read, probably truncated or corrupt ({exc}); "
                               f"delete it and download or rebuild it") from exc
    if nb is not None:
        if nb.ndim != 2 or nb.shape != dist.shape or nb.shape[0] != test.shape[0]:
            raise DatasetError(f"{path}: neighbors {nb.shape} / distances {dist.shape} do not match "
                               f"{test.shape[0]} test rows; wrong layout")
        if train_rows is None and nb.size and (nb.min() < 0 or nb.max() >= train.shape[0]):
            raise DatasetError(f"{path}: neighbors hold ids outside 0..{train.shape[0] - 1}; wrong layout")
        nb = np.ascontiguousarray(nb, dtype=np.int64)
        dist = np.ascontiguousarray(dist, dtype=np.float32)
    return {"train": np.ascontiguousarray(train, dtype=np.float32),
            "test": np.ascontiguousarray(test, dtype=np.float32),
            "neighbors": nb, "distances": dist, "metric": m, "attrs": attrs}


def write_layout(path, train, test, neighbors, distances, metric, attrs=None, extra=None):
    """Write an ann-benchmarks HDF5 file (neighbors stored as int32, as ann-benchmarks does).

    path: target (write to a temporary name, see atomic_path); train/test: float arrays;
    neighbors/distances: ground truth; metric: canonical metric; attrs: extra root attributes;
    extra: dict of additional datasets (ids: int arrays, words: lists of str).
    """
    h5py = _h5()
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = metric
        f.attrs["dimension"] = int(train.shape[1])
        f.attrs["point_type"] = "float"
        f.attrs["type"] = "dense"
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        f.create_dataset("train", data=np.asarray(train, dtype=np.float32))
        f.create_dataset("test", data=np.asarray(test, dtype=np.float32))
        f.create_dataset("neighbors", data=np.asarray(neighbors, dtype=np.int32))
        f.create_dataset("distances", data=np.asarray(distances, dtype=np.float32))
        for k, v in (extra or {}).items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "iuf":
                f.create_dataset(k, data=v)
            else:
                f.create_dataset(k, data=[str(s) for s in v], dtype=h5py.string_dtype("utf-8"))
