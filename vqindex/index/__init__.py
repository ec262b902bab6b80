"""Indexes over codec codes: Flat, IVF, HNSW, Refine (ids built in)."""
from .base import Index, IndexCodes
from .flat import IndexFlatCodes
from .ivf import IndexIVFCodes
from .params import METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2, SearchParams
from .refine import IndexRefine

__all__ = ["Index", "IndexCodes", "IndexFlatCodes", "IndexIVFCodes", "IndexRefine",
           "METRIC_COSINE", "METRIC_INNER_PRODUCT", "METRIC_L2", "SearchParams"]
