"""Metrics and per-call search parameters (FAISS names where FAISS has one)."""
from dataclasses import dataclass, fields
from typing import Any, Optional

import numpy as np

__all__ = ["METRIC_INNER_PRODUCT", "METRIC_L2", "METRIC_COSINE", "SearchParams", "metric_name",
           "as_metric"]

METRIC_INNER_PRODUCT = 0  # same values as faiss.METRIC_INNER_PRODUCT / faiss.METRIC_L2
METRIC_L2 = 1
METRIC_COSINE = 100  # ours: inner product on L2-normalised vectors, normalised for the user

_NAMES = {METRIC_INNER_PRODUCT: "ip", METRIC_L2: "l2", METRIC_COSINE: "cosine"}
_ALIASES = {"ip": METRIC_INNER_PRODUCT, "inner_product": METRIC_INNER_PRODUCT, "dot": METRIC_INNER_PRODUCT,
            "l2": METRIC_L2, "euclidean": METRIC_L2, "cosine": METRIC_COSINE, "angular": METRIC_COSINE}


def as_metric(metric):
    """Accept a METRIC_* constant or a name ("l2", "ip", "cosine", "angular", ...)."""
    if isinstance(metric, str):
        key = metric.lower()
        if key not in _ALIASES:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(_ALIASES)}")
        return _ALIASES[key]
    if isinstance(metric, (int, np.integer)) and int(metric) in _NAMES:
        return int(metric)
    raise ValueError(f"unknown metric {metric!r}; expected METRIC_L2 (1), METRIC_INNER_PRODUCT (0) "
                     f"or METRIC_COSINE (100)")


def metric_name(metric):
    return _NAMES[metric]


@dataclass
class SearchParams:
    """Search-time settings; None means "use the index's saved default".

    nprobe: IVF lists visited. efSearch: HNSW candidate list size. k_factor: a Refine index
    reranks k_factor * k candidates with exact distances. num_threads: threads for this call.
    filter: an allowlist of ids (int array) or a boolean mask indexed by id, applied inside the
    scan so that k results come back whenever k allowed vectors exist.
    """
    nprobe: Optional[int] = None
    efSearch: Optional[int] = None
    k_factor: Optional[float] = None
    num_threads: Optional[int] = None
    filter: Any = None

    def merged(self, defaults):
        """A copy with unset fields taken from `defaults` (another SearchParams)."""
        out = SearchParams()
        for name in _FIELDS:
            mine = getattr(self, name)
            setattr(out, name, mine if mine is not None else getattr(defaults, name))
        return out

    def validate(self):
        for name in ("nprobe", "efSearch", "num_threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"SearchParams.{name} must be a positive integer, got {v!r}")
        if self.k_factor is not None and not (np.isfinite(self.k_factor) and self.k_factor >= 1):
            raise ValueError(f"SearchParams.k_factor must be >= 1, got {self.k_factor!r}")
        return self


_FIELDS = tuple(f.name for f in fields(SearchParams))
