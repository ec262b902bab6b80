"""Ground truth and recall helpers whose arrays faiss.contrib.evaluation accepts."""
import numpy as np

from ._validation import as_vectors, check_k
from .index.params import METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2, as_metric

__all__ = ["knn_ground_truth", "recall_at_k"]


def knn_ground_truth(xq, xb, k, metric=METRIC_L2):
    """Exact k-NN with faiss: (D float32 (nq, k), I int64 (nq, k)), best first.

    metric: METRIC_L2 (squared distances), METRIC_INNER_PRODUCT or METRIC_COSINE (similarity
    of L2-normalised vectors). The arrays are what faiss.contrib.evaluation.knn_intersection_measure
    and range helpers take.
    """
    import faiss

    metric = as_metric(metric)
    xb = as_vectors(xb, np.asarray(xb).shape[-1], "database vectors")
    xq = as_vectors(xq, xb.shape[1], "queries")
    k = check_k(k)
    if metric == METRIC_COSINE:
        xb = xb / np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-30)
        xq = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-30)
    index = faiss.IndexFlatL2(xb.shape[1]) if metric == METRIC_L2 else faiss.IndexFlatIP(xb.shape[1])
    index.add(np.ascontiguousarray(xb, dtype=np.float32))
    D, I = index.search(np.ascontiguousarray(xq, dtype=np.float32), k)
    return D.astype(np.float32), I.astype(np.int64)


def recall_at_k(I, gt, k=None):
    """Mean fraction of the true top-k ids (gt[:, :k]) found in the returned I[:, :k]."""
    I = np.asarray(I)
    gt = np.asarray(gt)
    k = I.shape[1] if k is None else int(k)
    hits = [len(np.intersect1d(I[i, :k][I[i, :k] >= 0], gt[i, :k])) for i in range(len(I))]
    return float(np.sum(hits)) / (len(I) * k)
