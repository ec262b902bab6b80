"""Metrics, per-call search parameters and the process-wide thread default.

FAISS names where FAISS has one: `SearchParams` plays the role of faiss's
`SearchParameters` / `SearchParametersIVF` / `SearchParametersHNSW` (and accepts those objects
too, see `as_search_params`), `ParameterSpace` sets defaults from faiss's
``"nprobe=32,efSearch=64"`` strings, and `set_num_threads` / `get_num_threads` mirror
`faiss.omp_set_num_threads` / `omp_get_max_threads`.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

import numpy as np

__all__ = ["METRIC_INNER_PRODUCT", "METRIC_L2", "METRIC_COSINE", "SearchParams", "metric_name",
           "as_metric", "as_search_params", "ParameterSpace", "set_num_threads",
           "get_num_threads", "SEARCH_PARAMETER_NAMES"]

METRIC_INNER_PRODUCT = 0  # same values as faiss.METRIC_INNER_PRODUCT / faiss.METRIC_L2
METRIC_L2 = 1
#: ours, for constructors and factories: inner product on L2-normalised vectors. An index built
#: with it reports ``metric_type == METRIC_INNER_PRODUCT`` (faiss's similarity convention: larger
#: is better) and ``metric == "cosine"``.
METRIC_COSINE = 100

_NAMES = {METRIC_INNER_PRODUCT: "ip", METRIC_L2: "l2", METRIC_COSINE: "cosine"}
_ALIASES = {"ip": METRIC_INNER_PRODUCT, "inner_product": METRIC_INNER_PRODUCT, "dot": METRIC_INNER_PRODUCT,
            "l2": METRIC_L2, "euclidean": METRIC_L2, "cosine": METRIC_COSINE, "angular": METRIC_COSINE}

#: bounds checked before anything is allocated
MAX_EF_SEARCH = 1 << 20
MAX_NPROBE = (1 << 31) - 1
MAX_K_FACTOR = 4096.0


def _arg_error(msg):
    from .. import errors
    return getattr(errors, "ArgumentError", ValueError)(msg)


def _type_error(msg):
    from .. import errors
    return getattr(errors, "ArgumentTypeError", TypeError)(msg)


def as_metric(metric: Union[int, str]) -> int:
    """Accept a METRIC_* constant (a Python or numpy integer) or a name ("l2", "ip", "cosine",
    "angular", ...); return the internal code 0, 1 or 100."""
    if isinstance(metric, str):
        key = metric.lower()
        if key not in _ALIASES:
            raise _arg_error(f"metric: unknown metric {metric!r}; expected one of {sorted(_ALIASES)}")
        return _ALIASES[key]
    if (isinstance(metric, (bool, np.bool_)) or not isinstance(metric, (numbers.Integral, np.integer))):
        raise _type_error(f"metric must be METRIC_L2 (1), METRIC_INNER_PRODUCT (0), METRIC_COSINE "
                          f"(100) or a name such as 'l2'; got {metric!r} ({type(metric).__name__})")
    if int(metric) in _NAMES:
        return int(metric)
    raise _arg_error(f"metric: unknown metric {metric!r}; expected METRIC_L2 (1), "
                     f"METRIC_INNER_PRODUCT (0) or METRIC_COSINE (100)")


def metric_name(metric: int) -> str:
    """"l2", "ip" or "cosine" for an internal metric code."""
    return _NAMES[metric]


# ---------------------------------------------------------------------- threads
_DEFAULT_THREADS = [0]  # 0: every core


def set_num_threads(num_threads: int) -> None:
    """Set the process-wide default number of threads of search, add and encode.

    Parameters
    ----------
    num_threads : int
        Threads per call; 0 or -1 means every core (the default), as in faiss and hnswlib.
        A per-call ``num_threads=`` or ``SearchParams(num_threads=...)`` overrides it.
    """
    _DEFAULT_THREADS[0] = check_threads(num_threads, "num_threads")


def get_num_threads() -> int:
    """The number of threads a call uses when none is given (every core unless
    `set_num_threads` said otherwise), as an int >= 1."""
    n = _DEFAULT_THREADS[0]
    return int(n) if n > 0 else (os.cpu_count() or 1)


def check_threads(value: Any, name: str = "num_threads") -> int:
    """Validate a thread count: an integer >= -1 (0 and -1: every core). Returns an int."""
    v = check_int(value, name, lo=-1)
    return v


# ---------------------------------------------------------------------- scalar checks
def check_int(value: Any, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """`value` as a Python int (Python or numpy integers; not bool, str or float).

    Raises TypeError/ValueError naming `name`, the expected range and what came."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise _type_error(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = (f">= {lo}" if hi is None else f"in [{lo}, {hi}]") if lo is not None else f"<= {hi}"
        raise _arg_error(f"{name} must be {rng}, got {v}")
    return v


def check_real(value: Any, name: str, lo: Optional[float] = None,
               hi: Optional[float] = None) -> float:
    """`value` as a finite Python float (Python or numpy reals; not bool or str)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer,
                                                                     np.floating)):
        raise _type_error(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise _arg_error(f"{name} must be a finite number, got {v}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _arg_error(f"{name} must be in [{lo}, {hi}], got {v:g}")
    return v


# ---------------------------------------------------------------------- SearchParams
@dataclass
class SearchParams:
    """Search-time settings; None means "use the index's saved default".

    Parameters
    ----------
    nprobe : int, optional
        IVF lists visited (1 .. nlist; larger values are clamped to nlist).
    efSearch : int, optional
        HNSW candidate list size (1 .. 2**20; at least k is used).
    k_factor : float, optional
        A Refine index reranks ``ceil(k_factor * k)`` candidates with exact distances
        (1 .. 4096).
    num_threads : int, optional
        Threads of this call; 0 or -1: every core; None: the index default, else the process
        default (`vqindex.get_num_threads`).
    filter : array_like or faiss.IDSelector, optional
        An allowlist of ids (int array; ``[]`` allows nothing), a boolean mask indexed by id,
        or any faiss ``IDSelector`` (``IDSelectorBatch``, ``IDSelectorRange``, ``IDSelectorNot``,
        ...). It is applied inside the scan, so k results come back whenever k allowed vectors
        exist.
    """
    nprobe: Optional[int] = None
    efSearch: Optional[int] = None
    k_factor: Optional[float] = None
    num_threads: Optional[int] = None
    filter: Any = None

    def merged(self, defaults: "SearchParams") -> "SearchParams":
        """A copy with unset fields taken from `defaults` (another SearchParams)."""
        out = SearchParams()
        for name in _FIELDS:
            mine = getattr(self, name)
            setattr(out, name, mine if mine is not None else getattr(defaults, name))
        return out

    def validate(self) -> "SearchParams":
        """Check every set field (names the field, the expected range and what came) and
        normalise numpy scalars to Python numbers in place; returns self."""
        if self.nprobe is not None:
            self.nprobe = check_int(self.nprobe, "SearchParams.nprobe", 1, MAX_NPROBE)
        if self.efSearch is not None:
            self.efSearch = check_int(self.efSearch, "SearchParams.efSearch", 1, MAX_EF_SEARCH)
        if self.k_factor is not None:
            self.k_factor = check_real(self.k_factor, "SearchParams.k_factor", 1.0, MAX_K_FACTOR)
        if self.num_threads is not None:
            self.num_threads = check_threads(self.num_threads, "SearchParams.num_threads")
        return self


_FIELDS = tuple(f.name for f in fields(SearchParams))
#: the search parameters an index may carry as attributes (``index.nprobe = 64``)
SEARCH_PARAMETER_NAMES = ("nprobe", "efSearch", "k_factor")


def _is_faiss_object(obj, cls_name=None):
    mod = type(obj).__module__ or ""
    if not mod.startswith("faiss"):
        return False
    if cls_name is None:
        return True
    return any(c.__name__ == cls_name for c in type(obj).__mro__)


def as_search_params(params: Any) -> SearchParams:
    """A `SearchParams` from None, a SearchParams, or a faiss ``SearchParameters``,
    ``SearchParametersIVF`` or ``SearchParametersHNSW`` (their ``sel`` becomes the filter; their
    ``nprobe`` / ``efSearch`` set ours; faiss's 0 / unset values mean "the index default")."""
    if params is None:
        return SearchParams()
    if isinstance(params, SearchParams):
        return params
    if _is_faiss_object(params, "SearchParameters"):
        out = SearchParams()
        sel = getattr(params, "sel", None)
        if sel is not None:
            out.filter = sel
        nprobe = getattr(params, "nprobe", None)
        if nprobe is not None and int(nprobe) > 0 and _is_faiss_object(params, "SearchParametersIVF"):
            out.nprobe = int(nprobe)
        ef = getattr(params, "efSearch", None)
        if ef is not None and int(ef) > 0 and _is_faiss_object(params, "SearchParametersHNSW"):
            out.efSearch = int(ef)
        return out
    raise _type_error(f"params must be a vqindex.SearchParams or a faiss SearchParameters object, "
                      f"got {type(params).__name__}")


# ---------------------------------------------------------------------- ParameterSpace
_PS_ALIASES = {"nprobe": "nprobe", "efSearch": "efSearch", "k_factor": "k_factor",
               "k_factor_rf": "k_factor", "num_threads": "num_threads"}


class ParameterSpace:
    """faiss's ParameterSpace for vqindex indexes: set search defaults from strings.

    Examples
    --------
    >>> ps = vqindex.ParameterSpace()
    >>> ps.set_index_parameters(index, "nprobe=32,k_factor=4")   # doctest: +SKIP
    """

    def set_index_parameters(self, index, description: str) -> None:
        """Set every ``name=value`` of a comma-separated string (faiss spelling, e.g.
        ``"nprobe=32,efSearch=64"``; ``k_factor_rf`` is an alias of ``k_factor``)."""
        if not isinstance(description, str):
            raise _type_error(f"description must be a string such as 'nprobe=32', got "
                              f"{type(description).__name__}")
        pairs = []
        for item in description.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise _arg_error(f"description: expected name=value, got {item!r} in {description!r}")
            pairs.append((name.strip(), value.strip()))
        for name, value in pairs:  # check every name first: all or nothing
            self._name(index, name)
        for name, value in pairs:
            self.set_index_parameter(index, name, value)

    def _name(self, index, name):
        key = _PS_ALIASES.get(name)
        if key is None:
            raise _arg_error(f"unknown parameter {name!r}; vqindex knows "
                             f"{sorted(_PS_ALIASES)}")
        if key != "num_threads" and key not in index.search_parameter_names():
            raise _arg_error(f"{type(index).__name__} has no search parameter {name!r} (it has "
                             f"{sorted(index.search_parameter_names())})")
        return key

    def set_index_parameter(self, index, name: str, value: Any) -> None:
        """Set one search default of `index` (value: a number or its string)."""
        key = self._name(index, name)
        if isinstance(value, str):
            try:
                value = float(value) if key == "k_factor" else int(value)
            except ValueError:
                raise _arg_error(f"{name}: expected a number, got {value!r}") from None
        if key == "num_threads":
            index.params.num_threads = check_threads(value, name)
        else:
            setattr(index, key, value)

    def combination_ranges(self, index) -> dict:
        """The values a sweep would try for each parameter of `index` (faiss-like ranges)."""
        out = {}
        names = index.search_parameter_names()
        if "nprobe" in names:
            nlist = int(getattr(_owner(index, "nprobe"), "nlist", 1))
            out["nprobe"] = [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
                             if p <= nlist]
        if "efSearch" in names:
            out["efSearch"] = [16, 32, 64, 128, 256, 512]
        if "k_factor" in names:
            out["k_factor"] = [1, 2, 4, 8, 16, 32]
        return out


def _owner(index, name):
    while index is not None:
        if getattr(index.params, name, None) is not None:
            return index
        index = getattr(index, "base", None)
    return None
