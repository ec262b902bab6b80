"""Helpers shared by the peer adapters: zero padding and faiss k-means."""
import numpy as np

from ..base import saved_size  # noqa: F401  (re-exported for the adapters)


def pad(x, multiple):
    """Zero-pad columns to a multiple of `multiple` (inner products and L2 distances unchanged)."""
    d = x.shape[1]
    dp = -(-d // multiple) * multiple
    if dp == d:
        return np.ascontiguousarray(x, np.float32)
    out = np.zeros((x.shape[0], dp), np.float32)
    out[:, :d] = x
    return out


def kmeans(x, nlist, metric, seed=1234):
    """(centroids float32 (nlist, d), assignment uint32 (n,)) from faiss k-means."""
    import faiss
    km = faiss.Kmeans(x.shape[1], nlist, niter=20, seed=seed, spherical=(metric == "angular"),
                      verbose=False)
    km.train(x)
    _, a = km.index.search(x, 1)
    return np.ascontiguousarray(km.centroids, np.float32), np.ascontiguousarray(a.ravel(), np.uint32)
