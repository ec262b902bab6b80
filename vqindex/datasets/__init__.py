"""Data-set loaders: ann-benchmarks HDF5, GloVe text, DBpedia OpenAI3 parquet, .npy/.fvecs files.

    from vqindex import datasets
    ds = datasets.load("glove-50-angular-tiny")      # ds.train, ds.test, ds.neighbors, ...

Every failure raises `DatasetError` (a ValueError) with a one-line message.
"""
import os
from pathlib import Path

import numpy as np

from ._atomic import user_cache_dir
from ._build import SPLIT_SEED, split_and_write, subset
from ._download import download, sha256_file, verify_sha256
from ._errors import DatasetError
from ._hdf5 import read_layout, write_layout
from ._registry import REGISTRY
from ._sources import resolve_name, resolve_path
from ._text import read_glove_text
from ._truth import canonical_metric, ground_truth, normalize_rows
from ._vecs import read_bvecs, read_fvecs, read_ivecs, write_fvecs

__all__ = ["Dataset", "DatasetError", "load", "data_dir", "list_datasets", "ground_truth",
           "download", "sha256_file", "verify_sha256", "read_fvecs", "read_ivecs", "read_bvecs",
           "write_fvecs", "read_glove_text", "read_layout", "write_layout", "split_and_write",
           "REGISTRY", "SPLIT_SEED"]

_SUFFIXES = (".hdf5", ".h5", ".npy", ".fvecs", ".bvecs", ".ivecs", ".txt")


class Dataset:
    """A loaded data set: train/test vectors with exact ground truth.

    Attributes: train float32 (n, d), test float32 (nq, d), neighbors int64 (nq, K),
    distances float32 (nq, K), metric ("angular" | "euclidean" | "ip"), name, d, path
    (the HDF5 file the data came from, None if computed in memory only), attrs (file attributes).
    """

    def __init__(self, name, train, test, neighbors, distances, metric, path=None, attrs=None):
        """Build from arrays (already validated by the loader)."""
        self.name = name
        self.train, self.test = train, test
        self.neighbors, self.distances = neighbors, distances
        self.metric = metric
        self.path = Path(path) if path is not None else None
        self.attrs = dict(attrs or {})

    @property
    def d(self):
        """Vector dimension."""
        return int(self.train.shape[1])

    @property
    def k(self):
        """Ground-truth neighbours per query."""
        return int(self.neighbors.shape[1])

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={self.train.shape}, test={self.test.shape}, "
                f"k={self.k}, metric={self.metric!r})")


def data_dir():
    """Return the data directory: $VQINDEX_DATA if set, else the user cache (~/.cache/vqindex)."""
    env = os.environ.get("VQINDEX_DATA")
    return Path(env).expanduser() if env else user_cache_dir()


def list_datasets():
    """Return the sorted names `load` knows (local paths are accepted as well)."""
    return sorted(REGISTRY)


def _unknown(name):
    """Return the DatasetError for a name that is neither registered nor an existing path."""
    return DatasetError(f"unknown data set {name!r}; known names: {', '.join(list_datasets())}; "
                        f"or pass a path to an .hdf5/.npy/.fvecs/.txt file or a parquet folder")


def _locate(name_or_path, root, download_ok, metric, progress):
    """Return (name, HDF5 layout Path) for a registered name or a local path."""
    s = os.fspath(name_or_path)
    if s in REGISTRY:
        return s, resolve_name(s, root, download_ok, progress)
    p = Path(s).expanduser()
    if not p.exists() and not p.is_absolute() and (root / p).exists():
        p = root / p
    if p.exists():
        return p.stem if p.is_file() else p.name, resolve_path(p, metric)
    stem = p.name[:-len(p.suffix)] if p.suffix.lower() in (".hdf5", ".h5") else None
    if stem in REGISTRY and p.parent == Path("."):
        return stem, resolve_name(stem, root, download_ok, progress)
    if os.sep in s or "/" in s or p.suffix.lower() in _SUFFIXES:
        where = str(p.resolve()) if p.is_absolute() else f"{p.resolve()} or {root / p}"
        raise DatasetError(f"file not found: {where}; check the path, or set VQINDEX_DATA (or "
                           f"data_dir=) to the folder that holds it, e.g. VQINDEX_DATA=../shared/data")
    raise _unknown(s)


def _check_n(n):
    """Return `n` as a positive int or raise DatasetError."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DatasetError(f"n must be a positive integer number of train vectors, got {n!r}")
    return int(n)


def load(name_or_path, n=None, normalize=False, data_dir=None, download=True, seed=0, metric=None,
         progress=True):
    """Load a data set in the ann-benchmarks layout, downloading or converting it once if needed.

    name_or_path: a name from list_datasets() or a path (.hdf5/.h5, .npy, .fvecs/.bvecs/.ivecs,
    GloVe .txt, or a folder of train-*.parquet embeddings); n: keep a seeded random subset of n
    train rows (rng(seed)), ground truth recomputed exactly (k = min(100, n)) and cached beside
    the data as `<stem>-n<n>-seed<seed>.hdf5` (n >= len(train) keeps all rows); normalize:
    L2-normalise train and test (ground truth recomputed unless the metric is angular);
    data_dir: folder for named data sets (default data_dir()); download: allow network
    downloads; seed: subset seed; metric: metric for raw vectors (default "euclidean" for
    .npy/.fvecs/.bvecs/.ivecs, "angular" for GloVe .txt and parquet embeddings) and for HDF5
    files without a `distance` attribute; progress: tqdm bars.
    Returns a Dataset. Raises DatasetError.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else globals()["data_dir"]()
    if metric is not None:
        metric = canonical_metric(metric)
    if n is not None:
        n = _check_n(n)
    name, path = _locate(name_or_path, root, download, metric, progress)
    data = None
    if n is not None:
        import h5py  # cheap shape probe; read_layout reports corrupt files properly

        try:
            with h5py.File(path, "r") as f:
                ntrain = f["train"].shape[0]
        except (OSError, KeyError, ValueError):
            ntrain = None
        if ntrain is not None and n < ntrain:
            data, sub = subset(path, n, seed, metric)
            name, path = f"{name}-n{n}-seed{seed}", sub
    if data is None:
        data = read_layout(path, metric)
    train, test = data["train"], data["test"]
    nb, dist = data["neighbors"], data["distances"]
    if normalize:
        train, test = normalize_rows(train), normalize_rows(test)
    if nb is None or (normalize and data["metric"] != "angular"):
        k = nb.shape[1] if nb is not None else 100
        dist, nb = ground_truth(train, test, k, data["metric"])
    return Dataset(name, np.ascontiguousarray(train, dtype=np.float32),
                   np.ascontiguousarray(test, dtype=np.float32),
                   np.ascontiguousarray(nb, dtype=np.int64), np.ascontiguousarray(dist, dtype=np.float32),
                   data["metric"], path, data["attrs"])
