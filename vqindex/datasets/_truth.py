"""Exact k-nearest-neighbour ground truth with faiss flat indexes."""
import numpy as np

from ._errors import DatasetError

__all__ = ["ground_truth", "normalize_rows", "canonical_metric", "METRICS"]

METRICS = ("angular", "euclidean", "ip")
_ALIASES = {"angular": "angular", "cosine": "angular", "cos": "angular",
            "euclidean": "euclidean", "l2": "euclidean",
            "ip": "ip", "dot": "ip", "inner_product": "ip", "inner-product": "ip"}
_BLOCK = 1 << 18  # train rows per faiss search block (bounds memory for huge sets)


def canonical_metric(metric):
    """Return "angular", "euclidean" or "ip" for a metric name or alias, else raise DatasetError."""
    if isinstance(metric, bytes):
        metric = metric.decode()
    m = _ALIASES.get(str(metric).strip().lower())
    if m is None:
        raise DatasetError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return m


def normalize_rows(x):
    """Return float32 C-contiguous copy of `x` with unit L2 rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-30)), dtype=np.float32)


def _search(base, queries, k, metric):
    """Return (scores, ids) of a faiss flat search where smaller score = nearer."""
    import faiss

    if metric == "euclidean":
        index = faiss.IndexFlatL2(base.shape[1])
    else:
        index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    scores, ids = index.search(queries, k)
    if metric != "euclidean":
        scores = -scores
    return scores, ids


def ground_truth(train, test, k=100, metric="angular"):
    """Compute the exact k nearest train rows of every test row.

    train: (n, d) array; test: (nq, d) array; k: neighbours per query (clipped to n);
    metric: "angular" (IndexFlatIP on L2-normalised rows), "euclidean" (IndexFlatL2) or
    "ip" (IndexFlatIP).
    Returns (distances float32 (nq, k), neighbors int64 (nq, k)), best first, distances
    ascending: 1 - cos for angular, L2 distance (not squared) for euclidean, -<q, x> for ip.
    """
    metric = canonical_metric(metric)
    train = np.ascontiguousarray(train, dtype=np.float32)
    test = np.ascontiguousarray(test, dtype=np.float32)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise DatasetError(f"ground_truth needs 2-D train and test with the same dimension; "
                           f"got {train.shape} and {test.shape}")
    if train.shape[0] == 0:
        raise DatasetError("ground_truth needs at least one train vector")
    k = int(min(int(k), train.shape[0]))
    if k < 1:
        raise DatasetError(f"ground_truth needs k >= 1, got {k}")
    if metric == "angular":
        test = normalize_rows(test)
    best_s = best_i = None
    for start in range(0, train.shape[0], _BLOCK):
        block = train[start:start + _BLOCK]
        if metric == "angular":
            block = normalize_rows(block)
        s, i = _search(block, test, min(k, block.shape[0]), metric)
        i = i.astype(np.int64) + start
        if best_s is None:
            best_s, best_i = s, i
        else:
            s = np.concatenate([best_s, s], axis=1)
            i = np.concatenate([best_i, i], axis=1)
            order = np.argsort(s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(s, order, axis=1)
            best_i = np.take_along_axis(i, order, axis=1)
    if metric == "angular":
        dist = 1.0 - (-best_s)
    elif metric == "euclidean":
        dist = np.sqrt(np.maximum(best_s, 0))
    else:
        dist = best_s
    return np.ascontiguousarray(dist, dtype=np.float32), np.ascontiguousarray(best_i, dtype=np.int64)
