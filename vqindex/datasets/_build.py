"""Turn raw vectors into the HDF5 layout (seeded split + exact ground truth) and cut subsets."""
from pathlib import Path

import numpy as np

from ._atomic import atomic_path, user_cache_dir, writable_dir
from ._errors import DatasetError
from ._hdf5 import read_attrs, read_layout, write_layout
from ._truth import ground_truth

__all__ = ["SPLIT_SEED", "K", "n_queries", "split_and_write", "subset", "signature",
           "find_cached", "fresh", "output_path"]

SPLIT_SEED = 20240601  # the seed of shared/data/scripts/make_glove.py
N_QUERIES = 1000
K = 100


def n_queries(n):
    """Return how many of `n` vectors become queries: min(1000, n // 10), at least 1."""
    return max(1, min(N_QUERIES, n // 10))


def signature(paths):
    """Return a text fingerprint (paths, sizes, mtimes) of the source files of a converted file."""
    parts = []
    for p in sorted(Path(p).resolve() for p in paths):
        st = p.stat()
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def find_cached(name, *folders):
    """Return the first existing `folder/name` among `folders` and the user cache, else None."""
    for d in list(folders) + [user_cache_dir()]:
        if d is not None and (Path(d) / name).is_file():
            return Path(d) / name
    return None


def fresh(path, sig):
    """Return True if the converted file at `path` was made from sources with signature `sig`."""
    try:
        return read_attrs(path).get("source_signature") == sig
    except DatasetError:
        return False


def split_and_write(x, out, metric, attrs=None, words=None, seed=SPLIT_SEED, nq=None):
    """Split vectors into train/test with a seeded permutation, add exact top-100, write `out`.

    x: (N, d) float array; out: target Path (written atomically); metric: canonical metric;
    attrs: extra root attributes; words: optional N labels (stored as train_words/test_words);
    seed: permutation seed; nq: number of queries (default n_queries(N)).
    The first nq permuted rows are the queries, the rest (in permuted order) the train set.
    Returns out.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] < 1:
        raise DatasetError(f"cannot convert an array of shape {x.shape}; expected 2-D (n, d) vectors")
    if x.shape[0] < 2:
        raise DatasetError(f"need at least 2 vectors to split into train and test, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise DatasetError("the vectors contain NaN or Inf; clean the source data first")
    nq = nq or n_queries(x.shape[0])
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    te, tr = perm[:nq], perm[nq:]
    train = np.ascontiguousarray(x[tr], dtype=np.float32)
    test = np.ascontiguousarray(x[te], dtype=np.float32)
    dist, nb = ground_truth(train, test, K, metric)
    idt = np.int32 if x.shape[0] < 2 ** 31 else np.int64
    extra = {"train_ids": tr.astype(idt), "test_ids": te.astype(idt)}
    if words is not None:
        w = np.asarray(words, dtype=object)
        extra["train_words"], extra["test_words"] = list(w[tr]), list(w[te])
    meta = {"split_seed": int(seed), "n_queries": int(nq)}
    meta.update(attrs or {})
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            write_layout(tmp, train, test, nb, dist, metric, meta, extra)
    except OSError as exc:
        raise DatasetError(f"could not write {out} ({exc}); free some disk space or set VQINDEX_DATA "
                           f"to a writable folder") from exc
    return out


def subset(base, n, seed, metric=None):
    """Return (data dict, path or None) for a seeded random subset of `n` train rows of `base`.

    base: ann-benchmarks HDF5 Path; n: rows to keep; seed: numpy default_rng seed; metric: used
    if the file has no `distance` attribute. Ground truth is recomputed exactly (k = min(100, n))
    and the result cached as `<stem>-n<n>-seed<seed>.hdf5` beside `base` (or in the user cache
    when that folder is read-only); path is None if nothing could be cached.
    """
    base = Path(base)
    name = f"{base.stem}-n{n}-seed{seed}.hdf5"
    sig = signature([base])
    hit = find_cached(name, base.parent)
    if hit is not None and fresh(hit, sig):
        return read_layout(hit, metric), hit
    import h5py

    with h5py.File(base, "r") as f:
        ntrain = f["train"].shape[0]
    rows = np.sort(np.random.default_rng(seed).choice(ntrain, size=n, replace=False))
    data = read_layout(base, metric, train_rows=rows)
    dist, nb = ground_truth(data["train"], data["test"], min(K, n), data["metric"])
    data["neighbors"], data["distances"] = nb, dist
    folder = writable_dir(base.parent)
    if folder is None:
        return data, None
    out = folder / name
    attrs = {k: v for k, v in data["attrs"].items() if k in ("source",)}
    attrs.update({"subset_of": base.name, "subset_n": int(n), "subset_seed": int(seed),
                  "source_signature": sig})
    try:
        with atomic_path(out) as tmp:
            write_layout(tmp, data["train"], data["test"], nb, dist, data["metric"], attrs,
                         {"subset_rows": rows.astype(np.int64)})
    except OSError:
        return data, None
    return data, out


def output_path(name, preferred):
    """Return where a converted file `name` should be written: `preferred` or the user cache."""
    folder = writable_dir(preferred)
    if folder is None:
        raise DatasetError(f"cannot write {name}: neither {preferred} nor {user_cache_dir()} is "
                           f"writable; set VQINDEX_DATA to a writable folder")
    return folder / name

