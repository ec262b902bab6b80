"""Shared machinery of the code indexes: ids, metrics, validation, the search driver."""
import threading

import numpy as np

from .._validation import MAX_ID, as_ids, as_vectors, check_id_range, check_k
from ..errors import ArgumentError, IdNotFoundError, NotTrainedError
from ..kernels._threads import maybe_threads, resolve_threads, worth_parallel
from .storage import ListStore
from .params import (METRIC_COSINE, METRIC_INNER_PRODUCT, METRIC_L2, SearchParams, as_metric,
                     metric_name)

__all__ = ["Index", "IndexCodes", "IndexListCodes", "normalize_rows", "filter_mask", "selector_members"]


def normalize_rows(x):
    """L2-normalise rows (zero rows stay zero)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-30)[:, None], dtype=np.float32)


def selector_members(sel, ids):
    """bool (len(ids),): ``sel.is_member(id)`` for every id, for any faiss ``IDSelector``
    (IDSelectorRange and IDSelectorBitmap vectorised, the others evaluated by faiss in C++)
    or any object with an ``is_member(id)`` method."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    name = type(sel).__name__
    mod = type(sel).__module__ or ""
    if not mod.startswith("faiss"):
        return np.fromiter((bool(sel.is_member(int(i))) for i in ids), bool, ids.shape[0])
    if name == "IDSelectorRange":
        return (ids >= int(sel.imin)) & (ids < int(sel.imax))
    if ids.shape[0] == 0:
        return np.zeros(0, bool)
    import faiss
    probe = faiss.IndexIDMap(faiss.IndexFlatL2(1))  # remove_ids runs sel.is_member in C++
    probe.add_with_ids(np.zeros((ids.shape[0], 1), np.float32), ids)
    probe.remove_ids(sel)
    kept = faiss.vector_to_array(probe.id_map)
    return ~np.isin(ids, kept)


def filter_mask(flt, ids):
    """uint8 (len(ids),): 1 where the id passes the filter (an allowlist of ids, ``[]`` allowing
    none, a boolean mask indexed by id, or a faiss ``IDSelector``)."""
    if hasattr(flt, "is_member"):
        return selector_members(flt, ids).astype(np.uint8)
    arr = np.asarray(flt)
    if arr.size == 0 and arr.dtype != bool:
        return np.zeros(ids.shape[0], np.uint8)
    if arr.dtype == bool:
        if arr.ndim != 1:
            raise ValueError(f"filter mask must be 1-D (indexed by id), got shape {arr.shape}")
        ok = (ids >= 0) & (ids < arr.shape[0])
        mask = np.zeros(ids.shape[0], np.uint8)
        mask[ok] = arr[ids[ok]]
        return mask
    allow = as_ids(arr, what="filter ids")
    return np.isin(ids, allow).astype(np.uint8)


class _SearchDefault:
    """``index.nprobe`` / ``index.efSearch`` / ``index.k_factor``: the index's saved default of
    that search parameter (faiss attribute habit). Reading or writing it on an index kind that
    has no such parameter raises AttributeError; a Refine index forwards to its base."""

    def __init__(self, name):
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        owner = obj._param_owner(self.name)
        if owner is None:
            raise AttributeError(obj._no_param_message(self.name))
        return getattr(owner.params, self.name)

    def __set__(self, obj, value):
        owner = obj._param_owner(self.name)
        if owner is None:
            raise AttributeError(obj._no_param_message(self.name))
        trial = SearchParams(**{self.name: value}).validate()
        setattr(owner.params, self.name, getattr(trial, self.name))


class _HNSWView:
    """faiss spelling ``index.hnsw.efSearch`` (and ``efConstruction``, ``M`` read-only)."""

    __slots__ = ("_index",)

    def __init__(self, index):
        object.__setattr__(self, "_index", index)

    def __getattr__(self, name):
        if name == "efSearch":
            return self._index.efSearch
        owner = self._index._param_owner("efSearch")
        if name in ("efConstruction", "M"):
            return getattr(owner, name)
        raise AttributeError(f"index.hnsw has no attribute {name!r} (vqindex exposes efSearch, "
                             f"efConstruction, M)")

    def __setattr__(self, name, value):
        if name == "efSearch":
            self._index.efSearch = value
        elif name == "efConstruction":
            setattr(self._index._param_owner("efSearch"), name, value)
        else:
            raise AttributeError(f"index.hnsw.{name} cannot be set (vqindex exposes efSearch, "
                                 f"efConstruction)")

    def __repr__(self):
        return f"<hnsw view: efSearch={self._index.efSearch}>"


class _HNSWProperty:
    """Non-data descriptor: ``index.hnsw`` exists on indexes with an efSearch parameter."""

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        if obj._param_owner("efSearch") is None:
            raise AttributeError(f"{type(obj).__name__} is not an HNSW index (no index.hnsw)")
        return _HNSWView(obj)


#: faiss attribute spellings that vqindex does not have: setting one raises instead of being
#: silently ignored (a plain Python attribute that no search would read)
_FOREIGN_ATTRIBUTES = frozenset({"max_codes", "quantizer_efSearch", "k_factor_rf", "ef",
                                 "efsearch", "ef_search", "n_probe", "nprobes", "parallel_mode",
                                 "polysemous_ht", "scan_table_threshold", "efconstruction"})


#: numpydoc docstrings of the faiss verbs and properties every index kind has; a subclass's
#: undocumented override gets the one of its parent or this table (`Index.__init_subclass__`)
_SURFACE_DOCS = {
    "ntotal": "int: number of stored (live) vectors.",
    "is_trained": "bool: whether `add` may be called (IVF: the coarse centroids exist).",
    "code_size": "int: bytes of storage per vector (packed code, or 4 d for float storage).",
    "sa_code_size": "int: bytes of one standalone code of `sa_encode`.",
    "ids": "ndarray, int64 (ntotal,): the ids of the stored vectors in storage order (read-only).",
    "codec": "Codec or None: the codec of the stored codes (None for float storage).",
    "efConstruction": "int: HNSW candidate list size while linking new vectors.",
    "train": ("Learn what the index needs from training vectors (IVF: k-means centroids).\n\n"
              "Parameters\n----------\nx : array_like, float32 (n, d)\n\nReturns\n-------\nself"),
    "add": ("Add vectors with ids after the largest stored one (0, 1, ... when empty), as "
            "faiss ``add``.\n\nParameters\n----------\nx : array_like, float32 (n, d)\n"
            "num_threads : int, optional\n    Threads (0 or -1: every core)."),
    "add_with_ids": ("Add vectors with the given ids.\n\nParameters\n----------\nx : array_like, "
                     "float32 (n, d)\nids : array_like, int64 (n,)\n    Unique, in [0, 2^63 - 1], "
                     "not stored yet.\nnum_threads : int, optional"),
    "remove_ids": ("Remove vectors by id.\n\nParameters\n----------\nsel : array_like of int64 or "
                   "faiss.IDSelector\n\nReturns\n-------\nint\n    The number removed."),
    "reset": "Remove every vector (training is kept).",
    "reconstruct": ("The stored vector of one id (decoded for code indexes).\n\nParameters\n"
                    "----------\nkey : int\n\nReturns\n-------\nndarray, float32 (d,)"),
    "reconstruct_n": ("The stored vectors of ids i0 .. i0 + ni - 1.\n\nParameters\n----------\n"
                      "i0 : int\nni : int, optional\n\nReturns\n-------\nndarray, float32 (ni, d)"),
    "reconstruct_batch": ("The stored vectors of the given ids.\n\nParameters\n----------\n"
                          "ids : array_like, int64 (n,)\n\nReturns\n-------\nndarray, float32 (n, d)"),
    "sa_encode": ("Standalone codes of vectors.\n\nParameters\n----------\nx : array_like, float32 "
                  "(n, d)\n\nReturns\n-------\nndarray, uint8 (n, sa_code_size)"),
    "sa_decode": ("Vectors of standalone codes.\n\nParameters\n----------\ncodes : ndarray, uint8 "
                  "(n, sa_code_size)\n\nReturns\n-------\nndarray, float32 (n, d)"),
    "list_sizes": "ndarray, int64 (nlist,): the number of vectors in each IVF list.",
}


class Index:
    """FAISS-like surface shared by every index: d, ntotal, metric_type, search, ...

    Subclasses implement `_search_keys` (internal keys, smaller is better, and ids) and the
    storage verbs. Default search parameters live in `self.params` (saved in files); the
    faiss attributes ``index.nprobe``, ``index.efSearch``, ``index.k_factor`` and
    ``index.hnsw.efSearch`` read and write them.
    """

    nprobe = _SearchDefault("nprobe")
    efSearch = _SearchDefault("efSearch")
    k_factor = _SearchDefault("k_factor")
    hnsw = _HNSWProperty()

    def __init__(self, d: int, metric: "int | str" = METRIC_L2):
        from .params import check_int
        d = check_int(d, "d (dimension)", 1, 1 << 20)
        self.d = d
        self._metric = as_metric(metric)
        self.params = SearchParams()
        self._lock = threading.RLock()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name, val in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            doc = _SURFACE_DOCS.get(name)
            for base in cls.__mro__[1:]:
                inherited = getattr(vars(base).get(name), "__doc__", None)
                if inherited and type(vars(base).get(name)) is type(val):
                    doc = inherited
                    break
            if isinstance(val, property) and not val.__doc__ and doc:
                setattr(cls, name, property(val.fget, val.fset, val.fdel, doc))
            elif callable(val) and not isinstance(val, type) and not getattr(val, "__doc__", None) and doc:
                try:
                    val.__doc__ = doc
                except (AttributeError, TypeError):
                    pass

    def __setattr__(self, name, value):
        if name in _FOREIGN_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__} has no search parameter {name!r}; "
                                 f"vqindex's are {sorted(self.search_parameter_names())} "
                                 f"(attributes or SearchParams)")
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ search defaults
    def _param_owner(self, name):
        if getattr(self.params, name, None) is not None:
            return self
        base = self.__dict__.get("base")
        return base._param_owner(name) if base is not None else None

    def search_parameter_names(self) -> "set[str]":
        """The search parameters this index has (of nprobe, efSearch, k_factor)."""
        from .params import SEARCH_PARAMETER_NAMES
        return {n for n in SEARCH_PARAMETER_NAMES if self._param_owner(n) is not None}

    def _no_param_message(self, name):
        kind = {"nprobe": "an IVF", "efSearch": "an HNSW", "k_factor": "a Refine"}[name]
        have = sorted(self.search_parameter_names())
        return (f"{type(self).__name__} has no search parameter {name!r} ({name} belongs to "
                f"{kind} index); this index has {have or 'none'}")

    # ------------------------------------------------------------------ metric helpers
    @property
    def metric_type(self) -> int:
        """faiss metric: METRIC_L2 (1) or METRIC_INNER_PRODUCT (0). A cosine index reports
        METRIC_INNER_PRODUCT (its distances are similarities, larger is better); see
        `metric` for the name."""
        return METRIC_INNER_PRODUCT if self._metric == METRIC_COSINE else self._metric

    @property
    def metric(self) -> str:
        """"l2", "ip" or "cosine"."""
        return metric_name(self._metric)

    @property
    def metric_arg(self):
        """faiss's ``metric_arg`` (unused by these metrics: 0.0)."""
        return 0.0

    @property
    def _is_ip(self):
        return self._metric in (METRIC_INNER_PRODUCT, METRIC_COSINE)

    @property
    def verbose(self) -> bool:
        """faiss's ``verbose`` flag (vqindex indexes print nothing)."""
        return False

    def _prep(self, x, what="x"):
        """Validate input rows once (dtype, shape, finite) and normalise them for cosine."""
        if (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2
                and x.shape[1] == self.d and x.flags.c_contiguous and x.shape[0] <= 4096):
            # the common case of a search call: one compiled pass checks and normalises
            from ..kernels.rows import check_rows
            cos = self._metric == METRIC_COSINE
            # without normalisation `out` is never written; a writable stand-in keeps one
            # specialisation and lets read-only inputs (np.frombuffer, Ray, mmap) through
            out = np.empty_like(x) if cos else np.empty((1, 1), np.float32)
            bad = check_rows(x, cos, out)
            if not cos:
                out = x
            if bad >= 0:
                as_vectors(x, self.d, what)  # raises the standard message
            return out
        x = as_vectors(x, self.d, what)
        if self._metric == METRIC_COSINE:
            x = normalize_rows(x)
        return x

    def _keys_to_distances(self, keys):
        """Internal keys (smaller better) -> FAISS distances (L2: squared; IP: similarity)."""
        if self._is_ip:
            d = -keys
            d[~np.isfinite(keys)] = -np.inf
            return d
        # a squared L2 distance is never negative; estimates can be (rounding, unbiased
        # estimators): clamp at 0, which keeps the order of the sorted rows
        return np.maximum(keys, np.float32(0), out=keys if keys.flags.writeable else None)

    def _resolve(self, params, num_threads=None):
        from .params import as_search_params, check_threads
        params = as_search_params(params)
        p = params.merged(self.params).validate()
        if num_threads is not None:
            p.num_threads = check_threads(num_threads, "num_threads")
        return p

    # ------------------------------------------------------------------ public verbs
    def search(self, x, k: int, params=None, *, D=None, I=None,
               num_threads: "int | None" = None):
        """k nearest neighbours of each query, best first (faiss ``Index.search``).

        Parameters
        ----------
        x : array_like, float32 (nq, d)
            Queries (other real dtypes and layouts are converted; a (d,) vector is one query).
        k : int
            Neighbours per query (1 .. 2**20).
        params : SearchParams or faiss SearchParameters, optional
            Per-call settings (nprobe, efSearch, k_factor, filter, num_threads; also accepted as
            the third positional argument); faiss
            ``SearchParameters[IVF|HNSW]`` are accepted, their ``sel`` as the filter.
        D, I : ndarray, optional
            Preallocated outputs, float32 (nq, k) and int64 (nq, k), C-contiguous; filled in
            place and returned.
        num_threads : int, optional
            Threads of this call (0 or -1: every core); overrides ``params.num_threads``.

        Returns
        -------
        D : ndarray, float32 (nq, k)
            Distances: squared L2, or similarities (inner product / cosine, larger is better).
        I : ndarray, int64 (nq, k)
            Ids; missing results are -1 with distance +inf (L2) or -inf (IP/cosine).
        """
        if D is None and I is None:
            fast = self._one_call_search(x, k, params, num_threads)
            if fast is not None:
                return fast
        k = check_k(k)
        x = self._prep(x, "queries")
        p = self._resolve(params, num_threads)
        nq = x.shape[0]
        D, I = self._check_outputs(D, I, nq, k)
        if p.k_factor is not None and "k_factor" in self.search_parameter_names():
            if k * p.k_factor > (1 << 24):
                raise _value_error(f"k_factor={p.k_factor:g} with k={k} asks for "
                                   f"{k * p.k_factor:.0f} candidates (max 2**24); lower k_factor")
        if nq == 0 or self.ntotal == 0:
            fill = -np.inf if self._is_ip else np.inf
            dist, ids = np.full((nq, k), fill, np.float32), np.full((nq, k), -1, np.int64)
        else:
            keys, ids = self._search_keys(x, k, p)
            dist = self._keys_to_distances(keys).astype(np.float32, copy=False)
        if D is not None:
            D[...] = dist
            dist = D
        if I is not None:
            I[...] = ids
            ids = I
        return dist, ids

    def _one_call_search(self, x, k, params, num_threads):
        """(D, I) of a small search that an index answers on a short path (IVF: one compiled
        call with a cached plan), or None: the general path then validates and searches."""
        return None

    def _small_call(self, x, k, params, num_threads, name, max_queries):
        """(value of search parameter `name`, num_threads) when a search may take the short
        path: at most max_queries float32 C-contiguous (nq, d) queries, an int k, plain
        SearchParams (or none) that set no filter and no search parameter but `name`; else
        None (the general path then validates everything and raises the errors)."""
        if not (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2
                and 0 < x.shape[0] <= max_queries and x.shape[1] == self.d
                and x.flags.c_contiguous and type(k) is int and 0 < k <= 1 << 20):
            return None
        P = self.params
        others = [f for f in ("nprobe", "efSearch", "k_factor") if f != name]
        if P.filter is not None or any(getattr(P, f) is not None for f in others):
            return None
        value, nt = getattr(P, name), P.num_threads
        if params is not None:
            if (type(params) is not SearchParams or params.filter is not None
                    or any(getattr(params, f) is not None for f in others)):
                return None
            if getattr(params, name) is not None:
                value = getattr(params, name)
            if params.num_threads is not None:
                nt = params.num_threads
        if num_threads is not None:
            nt = num_threads
        if nt is not None and type(nt) is not int:
            return None
        return value, nt

    @staticmethod
    def _check_outputs(D, I, nq, k):
        for name, arr, dt in (("D", D, np.float32), ("I", I, np.int64)):
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray):
                raise _type_error(f"{name} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != dt or arr.shape != (nq, k) or not arr.flags.writeable:
                raise _value_error(f"{name} must be a writeable {np.dtype(dt).name} array of shape "
                                   f"({nq}, {k}); got {arr.dtype} {arr.shape}")
        return D, I

    def range_search(self, x, radius: float, params=None, *, num_threads: "int | None" = None):
        """All results within `radius` (faiss ``Index.range_search``).

        Parameters
        ----------
        x : array_like, float32 (nq, d)
            Queries.
        radius : float
            L2: results with squared distance < radius; IP / cosine: similarity > radius.
        params : SearchParams or faiss SearchParameters, optional
            Per-call settings (nprobe, filter, num_threads).
        num_threads : int, optional
            Threads of this call (0 or -1: every core).

        Returns
        -------
        lims : ndarray, int64 (nq + 1,)
            Results of query i are ``D[lims[i]:lims[i+1]]``, ``I[lims[i]:lims[i+1]]``.
        D : ndarray, float32 (lims[-1],)
        I : ndarray, int64 (lims[-1],)
        """
        from .params import check_real
        x = self._prep(x, "queries")
        p = self._resolve(params, num_threads)
        radius = check_real(radius, "radius")
        nq = x.shape[0]
        if nq == 0 or self.ntotal == 0:
            return np.zeros(nq + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        lims, keys, ids = self._range_keys(x, radius, p)
        return lims, self._keys_to_distances(keys).astype(np.float32), ids.astype(np.int64)

    def _range_keys(self, x, radius, p):
        """(lims, keys, ids) of the range search (each index kind has its own kernel)."""
        raise NotImplementedError

    def assign(self, x, k: int, labels=None, *, params=None):
        """Ids of the k nearest neighbours (faiss ``assign``): int64 (nq, k)."""
        return self.search(x, k, params=params, I=labels)[1]

    def search_and_reconstruct(self, x, k: int, *, params=None, D=None, I=None, R=None,
                               num_threads: "int | None" = None):
        """`search`, plus the stored (decoded) vector of every result (faiss semantics).

        Returns
        -------
        D : float32 (nq, k), I : int64 (nq, k)
        R : float32 (nq, k, d)
            ``reconstruct(I[i, j])`` (the decoded code; a Refine index's float vector); rows of
            missing results (id -1) are NaN, as in faiss. Pass ``R=`` to fill an array in place.
        """
        D, I = self.search(x, k, params=params, D=D, I=I, num_threads=num_threads)
        nq = I.shape[0]
        if R is None:
            R = np.zeros((nq, k, self.d), np.float32)
        elif (not isinstance(R, np.ndarray) or R.dtype != np.float32
              or R.shape != (nq, k, self.d)):
            raise _value_error(f"R must be a float32 array of shape ({nq}, {k}, {self.d})")
        ok = I >= 0
        if ok.any():
            R[ok] = self.reconstruct_batch(I[ok])
        R[~ok] = np.nan
        return D, I, R

    def _search_keys(self, x, k, p):
        raise NotImplementedError

    # ------------------------------------------------------------------ description, repr, pickle
    @property
    def description(self) -> str:
        """The factory string of this index (a reverse factory:
        ``index_factory(d, index.description, metric)`` rebuilds an equal empty index)."""
        from ..factory import describe_index
        return describe_index(self)

    def __repr__(self):
        try:
            desc = self.description
        except Exception:  # a subclass the factory cannot describe
            desc = None
        parts = [repr(desc)] if desc is not None else []
        parts += [f"d={self.d}", f"metric={self.metric!r}", f"ntotal={self.ntotal}"]
        for name in ("nprobe", "efSearch", "k_factor"):
            if name in self.search_parameter_names():
                val = getattr(self, name)
                parts.append(f"{name}={val:g}" if isinstance(val, float) else f"{name}={val}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self):
        from ..interop import deserialize_index, serialize_index
        return deserialize_index, (serialize_index(self),)

    def __copy__(self):
        from ..interop import deserialize_index, serialize_index
        return deserialize_index(serialize_index(self))

    def __deepcopy__(self, memo):
        return self.__copy__()


def _value_error(msg):
    from .params import _arg_error
    return _arg_error(msg)


def _type_error(msg):
    from .params import _type_error as t
    return t(msg)


class IndexCodes(Index):
    """An index that stores codec codes with int64 ids (IDMap semantics built in)."""

    def __init__(self, d, codec, metric=METRIC_L2):
        super().__init__(d, metric)
        if codec.d != self.d:
            raise ValueError(f"codec dimension {codec.d} != index dimension {self.d}")
        self.codec = codec
        # the packed fields only: the per-vector factors live once, in _sf (scan factors)
        self._codes = np.zeros((0, codec._code_bytes), np.uint8)
        self._sf = np.zeros((0, codec.n_acc + 2), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._sorted_ids = None

    # ------------------------------------------------------------------ properties
    @property
    def ntotal(self):
        return int(self._ids.shape[0])

    @property
    def code_size(self):
        return self.codec.code_size

    @property
    def is_trained(self):
        return True

    @property
    def ids(self):
        """The ids of the stored vectors in storage order (read-only view)."""
        v = self._ids.view()
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ ids
    def _id_lookup(self):
        if self._sorted_ids is None:
            order = np.argsort(self._ids, kind="stable")
            self._sorted_ids = (self._ids[order], order)
        return self._sorted_ids

    def _positions_of(self, ids, must_exist=True):
        """Storage positions of ids (-1 where absent, or KeyError if must_exist)."""
        sids, order = self._id_lookup()
        at = np.searchsorted(sids, ids)
        at = np.minimum(at, max(len(sids) - 1, 0))
        found = (len(sids) > 0) & (sids[at] == ids) if len(sids) else np.zeros(len(ids), bool)
        pos = np.where(found, order[at] if len(sids) else -1, -1)
        if must_exist and not np.all(found):
            bad = ids[~found][0]
            raise IdNotFoundError(f"id {int(bad)} is not in the index")
        return pos

    def _check_new_ids(self, ids):
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ArgumentError(f"add_with_ids: duplicate id {int(uniq[counts > 1][0])} in the batch")
        if self.ntotal:
            pos = self._positions_of(ids, must_exist=False)
            if np.any(pos >= 0):
                raise ArgumentError(f"add_with_ids: id {int(ids[pos >= 0][0])} is already in the index")

    def _filter_mask(self, flt):
        """uint8 mask over storage positions from an allowlist of ids or a bool mask by id."""
        if flt is None:
            return np.zeros(0, np.uint8), False
        return filter_mask(flt, self._ids), True

    # ------------------------------------------------------------------ storage verbs
    def train(self, x):
        """A no-op for flat data-oblivious codecs (validates the input)."""
        self._prep(x, "training vectors")
        return self

    def _encode(self, x, num_threads):
        """(codes, scan factors) of already-validated vectors; subclasses add references."""
        codes = self.codec._encode_trusted(x, None, num_threads)
        return np.ascontiguousarray(codes[:, : self.codec._code_bytes]), self.codec.scan_factors(codes)

    def add(self, x, num_threads=None):
        """Add vectors with ids max_id + 1, max_id + 2, ... (0, 1, ... when empty: FAISS add).

        Atomic: the fallible work (validation, encoding) comes first, outside the lock; the
        rows are then published in one step, so searches see all of them or none."""
        x = self._prep(x)
        batch = self._prepare_add(x, num_threads)
        with self._lock:
            self._commit_add(batch, self._fresh_ids(x.shape[0]))

    def add_with_ids(self, x, ids, num_threads=None):
        """Add vectors with the given int64 ids (unique, in [0, 2^63 - 1], not present).

        Parameters
        ----------
        x : array_like, float32 (n, d)
        ids : array_like, int64 (n,)
        num_threads : int, optional
            Threads of the encoding (0 or -1: every core).
        """
        x = self._prep(x)
        ids = as_ids(ids, x.shape[0])
        self._check_batch_ids(ids)
        batch = self._prepare_add(x, num_threads)
        with self._lock:
            self._check_new_ids(ids)
            self._commit_add(batch, ids)

    def _fresh_ids(self, n):
        """n new ids after the largest stored one (call under the lock)."""
        start = self._next_id()
        if start + n - 1 > MAX_ID:
            raise ArgumentError(f"add: {n} new ids after {start - 1} would pass 2^63 - 1 (the "
                                f"largest id); use add_with_ids")
        return np.arange(start, start + n, dtype=np.int64)

    @staticmethod
    def _check_batch_ids(ids):
        if ids.shape[0] > 1:
            s = np.sort(ids)
            dup = np.flatnonzero(s[1:] == s[:-1])
            if dup.size:
                raise ArgumentError(f"add_with_ids: duplicate id {int(s[dup[0]])} in the batch")

    def _prepare_add(self, x, num_threads):
        """The fallible part of an add that needs no lock (kinds that encode without
        touching their state do it here); the default defers everything to `_commit_add`."""
        return (x, num_threads)

    def _commit_add(self, batch, ids):
        """Publish a prepared batch with these ids (under the lock)."""
        x, num_threads = batch
        self._add(x, ids, num_threads)

    def _next_id(self):
        return int(self._ids.max()) + 1 if self.ntotal else 0

    def _add(self, x, ids, num_threads):
        if not self.is_trained:
            raise NotTrainedError("the index must be trained before add (call train first)")
        nt = num_threads if num_threads is not None else self.params.num_threads
        codes, sf = self._encode(x, nt)
        self._append(codes, sf, ids, x)

    def _append(self, codes, sf, ids, x):
        self._codes = np.concatenate([self._codes, codes])
        self._sf = np.concatenate([self._sf, sf])
        self._ids = np.concatenate([self._ids, ids])
        self._sorted_ids = None

    def remove_ids(self, sel):
        """Remove by ids (array) or a selector with `is_member(id)`; returns the count removed."""
        with self._lock:
            if hasattr(sel, "is_member"):
                keep = ~selector_members(sel, self._ids)
            else:
                ids = as_ids(sel)
                keep = ~np.isin(self._ids, ids)
            removed = int((~keep).sum())
            if removed:
                self._keep(keep)
            return removed

    def _keep(self, keep):
        self._codes = self._codes[keep]
        self._sf = self._sf[keep]
        self._ids = self._ids[keep]
        self._sorted_ids = None

    def reset(self):
        """Remove every vector (training is kept)."""
        with self._lock:
            self._keep(np.zeros(self.ntotal, bool))

    def _references(self, pos):
        return None

    def reconstruct(self, key):
        """Decoded vector of one id."""
        with self._lock:
            pos = self._positions_of(as_ids([key], what="key"))
            return self._decode_positions(pos)[0]

    def reconstruct_n(self, i0=0, ni=None):
        """Decoded vectors of ids i0 .. i0+ni-1 (float32 (ni, d)); ni <= ntotal, checked
        before anything is allocated."""
        with self._lock:
            i0, ni = check_id_range(i0, ni, self.ntotal)
            pos = self._positions_of(np.arange(i0, i0 + ni, dtype=np.int64))
            return self._decode_positions(pos)

    def reconstruct_batch(self, ids):
        """Decoded vectors of these ids (float32 (len(ids), d))."""
        with self._lock:
            return self._decode_positions(self._positions_of(as_ids(ids)))

    def _decode_positions(self, pos):
        return self.codec._decode_parts(self._codes[pos], self._sf[pos], self._references(pos))

    def sa_encode(self, x):
        """Standalone codes of x, float32 (n, d): uint8 (n, sa_code_size) (faiss ``sa_encode``;
        cosine inputs are normalised first)."""
        return self.codec.encode(self._prep(x))

    def sa_decode(self, codes):
        """Decoded vectors of `sa_encode` codes, uint8 (n, sa_code_size): float32 (n, d)."""
        return self.codec.decode(codes)

    @property
    def sa_code_size(self):
        """Bytes of one standalone code (`sa_encode`)."""
        return self.codec.code_size

    def add_sa_codes(self, codes, ids=None):
        """Add vectors given as `sa_encode` codes, uint8 (n, sa_code_size) (faiss
        ``add_sa_codes``), with int64 ids (n,) or sequential ids when None.

        A flat index stores the codes as they are; an IVF or HNSW index decodes them and
        encodes the decoded vectors into its own storage (IVF codes are residuals of their
        list; HNSW links the graph on the vectors)."""
        from ..interop import add_sa_codes
        return add_sa_codes(self, codes, ids)

    # ------------------------------------------------------------------ the search core
    #: shortlist depth of the fast scan: max(fastscan_min, factor * k) rows per query are
    #: rescored exactly; an exact layout only loses the uint8 LUT rounding, a surrogate
    #: (BlockQuant's block fields, 5-8-bit scalar fields) gets a deeper shortlist. Measured
    #: on MiniLM-100k (IVF1024, nprobe 32, k=10): a 2k shortlist already returns the exact
    #: scan's top 10 for EDEN4, RaBitQ5 and BQ4 (1k loses 2 %); a deeper one costs heap work
    fastscan = True
    fastscan_rerank = 3
    fastscan_rerank_surrogate = 6
    fastscan_min = 32
    #: exact layouts rescore the shortlist best-first and stop once the rest cannot beat the
    #: k-th exact estimate by more than this many standard deviations of the uint8 LUT
    #: rounding error (6: a miss has probability ~1e-9 per candidate); 0 rescores them all
    fastscan_sigmas = 6.0
    #: blocks of 32 codes scanned per kernel call (a piece: 1024 codes, L2-sized)
    fastscan_piece = 32
    #: queries that share one scan of a piece (kernel query batch)
    fastscan_group = 16

    def _metric_ab(self):
        return (np.float32(0.0), np.float32(1.0)) if self._is_ip else (np.float32(1.0),
                                                                        np.float32(-2.0))

    def _rerank_depth(self, k, n):
        f = self.fastscan_rerank if self.codec.scan_layout.exact else self.fastscan_rerank_surrogate
        return int(min(max(n, 1), max(k, self.fastscan_min, f * k)))

    def _driver_search(self, qt, k, p, nt, probes, probe_add, blocks, list_row0, list_blk0,
                       list_len, codes, sf, mask, use_mask, qchunk):
        """Fast-scan shortlist + exact rescoring over the probed lists: one compiled call.

        Returns keys (nq, k) (smaller is better) and storage rows (-1: none)."""
        from ..kernels import driver as _drv
        codec = self.codec
        lay = codec.scan_layout
        lut_u8, scale, bias = qt.fast_luts()
        nq = probes.shape[0]
        rr = self._rerank_depth(k, int(list_len.sum()))
        nsplit = 1 if nq >= nt else max(1, nt // max(nq, 1))
        a_ell, a_ip = self._metric_ab()
        secs, tables = codec.exact_tables
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        fptr, backend, _ = _drv.scan_setup()
        pairs = int(np.where(probes >= 0, list_len[np.maximum(probes, 0)], 0).sum())
        par = worth_parallel(nt, pairs) and (nsplit > 1 or nq > qchunk)
        if not par:  # one task: no split shortlists to merge
            nsplit, qchunk = 1, max(nq, 1)
        with maybe_threads(nt, par):
            _drv.fastscan_search(
                (np.int64(fptr), np.int64(backend)),
                (blocks.reshape(-1), np.int64(lay.bstride), lay.acc_nib, list_row0, list_blk0,
                 list_len),
                (lut_u8.reshape(-1), bias, scale),
                (codes, secs, tables, qt.spaces, sf, np.int64(codec.n_acc)),
                (a_ell, a_ip), (mask, use_mask), probes, probe_add,
                (np.int64(rr), np.int64(nsplit), np.int64(qchunk), np.int64(self.fastscan_piece),
                 np.int64(self.fastscan_group),
                 np.float32(self.fastscan_sigmas if lay.exact else 0.0)),
                keys, pos, parallel=par)
        return keys, pos

    #: searches of at most this many queries on one thread take the fused path
    fused_max_queries = 8

    def _fused_ok(self, x, nt):
        return (nt == 1 and x.shape[0] <= self.fused_max_queries
                and self.codec._fast_prepare_args() is not None)

    def _fused_plan(self):
        """The static arguments of the one-call kernels, cached per codec and layout version:
        (codec, layout version, qargs, native, layout, secs, tables, metric, margin, n_acc)."""
        from ..kernels import driver as _drv
        codec = self.codec
        plan = getattr(self, "_plan", None)
        if plan is None or plan[0] is not codec or plan[1] != codec._layout_version:
            lay = codec.scan_layout
            rot, proj = codec._fast_prepare_args()
            fptr, backend, lut_max = _drv.scan_setup()
            secs, tables = codec.exact_tables
            qargs = (rot, proj, (lay.space, lay.cidx, lay.E, lay.acc_nib), np.float64(lut_max),
                     np.int64(codec.n_spaces), np.int64(codec.D), np.int64(lay.m))
            plan = (codec, codec._layout_version, qargs, (np.int64(fptr), np.int64(backend)),
                    lay, secs, tables, self._metric_ab(),
                    np.float32(self.fastscan_sigmas if lay.exact else 0.0),
                    np.int64(codec.n_acc))
            self._plan = plan
        return plan

    def _fused_search(self, x, k, probes, probe_add, flat_l2, blocks, list_row0, list_blk0,
                      list_len, codes, sf, mask, use_mask, coarse=None, ids=None):
        """Small serial searches in one compiled call (kernels.driver.search_fused): query
        tables, fast scan, rescoring. Static argument tuples are cached per codec.

        With `coarse` (IVF: the coarse-quantizer tuple of driver.search_ivf_fused) the probe
        selection runs in the same call (probes / probe_add are then unused) and the result
        is (keys, ids) through `ids`; else (keys, storage rows)."""
        from ..kernels import driver as _drv
        _, _, qargs, native, lay, secs, tables, metric, margin, n_acc = self._fused_plan()
        nq = x.shape[0]
        rr = self._rerank_depth(k, int(list_len.sum()))
        keys = np.empty((nq, k), np.float32)
        out = np.empty((nq, k), np.int64)
        store = (blocks.reshape(-1), np.int64(lay.bstride), lay.acc_nib, list_row0, list_blk0,
                 list_len)
        tune = (np.int64(rr), np.int64(1), np.int64(self.fastscan_group),
                np.int64(self.fastscan_piece), np.int64(self.fastscan_group), margin)
        ex = (codes, secs, tables, sf, n_acc)
        if coarse is not None:
            _drv.search_ivf_fused(x, coarse, qargs, native, store, ex, metric, (mask, use_mask),
                                  tune, ids, keys, out)
        else:
            _drv.search_fused(x, qargs, native, store, ex, metric, (mask, use_mask), probes,
                              probe_add, flat_l2, tune, keys, out)
        return keys, out

    def _exact_args(self, qt, codes, sf):
        secs, tables = self.codec.exact_tables
        return (codes, secs, tables, qt.spaces, sf, np.int64(self.codec.n_acc))

    def _exact_search(self, qt, k, nt, seg_start, seg_end, seg_add, codes, sf, mask, use_mask,
                      positions=None):
        """Exact estimates over segments of rows (or of `positions`), top-k; (keys, rows)."""
        from ..kernels import driver as _drv
        a_ell, a_ip = self._metric_ab()
        nq = seg_start.shape[0]
        keys = np.empty((nq, k), np.float32)
        pos = np.empty((nq, k), np.int64)
        positions = np.zeros(0, np.int64) if positions is None else positions
        # an exact estimate costs about a code's bytes of table lookups (~8 fast-scan pairs)
        par = nq > 1 and worth_parallel(nt, 8 * int((seg_end - seg_start).sum()))
        with maybe_threads(nt, par):
            _drv.exact_search(self._exact_args(qt, codes, sf), (a_ell, a_ip), seg_start,
                              seg_end, seg_add, positions, (mask, use_mask), keys, pos,
                              parallel=par)
        return keys, pos

    def _exact_range(self, qt, radius, nt, seg_start, seg_end, seg_add, codes, sf, mask,
                     use_mask):
        """Range search by exact estimates: (lims, keys, rows) of keys < the radius key."""
        from ..kernels import driver as _drv
        a_ell, a_ip = self._metric_ab()
        nq = seg_start.shape[0]
        kmax = np.full(nq, -radius if self._is_ip else radius, np.float32)
        counts = np.zeros(nq, np.int64)
        ex, ab, flt = self._exact_args(qt, codes, sf), (a_ell, a_ip), (mask, use_mask)
        dummy_k = np.zeros(0, np.float32)
        dummy_p = np.zeros(0, np.int64)
        with maybe_threads(nt, nt > 1 and nq > 1):
            _drv.exact_range(ex, ab, seg_start, seg_end, seg_add, flt, kmax, counts,
                             dummy_k, dummy_p, False, parallel=nt > 1 and nq > 1)
            tot = int(counts.sum())
            keys = np.empty(tot, np.float32)
            rows = np.empty(tot, np.int64)
            _drv.exact_range(ex, ab, seg_start, seg_end, seg_add, flt, kmax, counts, keys,
                             rows, True, parallel=nt > 1 and nq > 1)
        lims = np.zeros(nq + 1, np.int64)
        lims[1:] = np.cumsum(counts)
        return lims, keys, rows

    def _rows_to_ids(self, rows, ids=None):
        ids = self._ids if ids is None else ids
        return np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)


class IndexListCodes(IndexCodes):
    """Flat (one list) and IVF (nlist lists) indexes: the codes live in a `ListStore`
    (index/storage.py), so add and remove_ids cost O(batch + touched lists) and the fast-scan
    blocks are packed incrementally."""

    def __init__(self, d, codec, metric=METRIC_L2, nlist=1):
        Index.__init__(self, d, metric)
        if codec.d != self.d:
            raise ValueError(f"codec dimension {codec.d} != index dimension {self.d}")
        self.codec = codec
        self._store = ListStore(nlist, codec._code_bytes, codec.n_acc + 2, codec.scan_layout)
        self._max_id = -1

    # the row arrays (storage rows; rows outside every list are stale)
    _codes = property(lambda self: self._store.codes)
    _sf = property(lambda self: self._store.sf)
    _ids = property(lambda self: self._store.ids)

    @property
    def ntotal(self):
        return int(self._store.live)

    @property
    def ids(self):
        v = self._store.ids[self._store.rows()]
        v.flags.writeable = False
        return v

    def _id_lookup(self):
        return self._store.lookup()

    def _next_id(self):
        if self._max_id is None:
            live = self._store.ids[self._store.rows()]
            self._max_id = int(live.max()) if live.size else -1
        return self._max_id + 1

    #: bytes of temporaries per encoding step of `add` (rows are encoded in chunks and
    #: written straight into their final storage rows)
    add_chunk_bytes = 16 << 20

    def _assign_lists(self, x, num_threads):
        return np.zeros(x.shape[0], np.int64)

    def _encode_rows(self, x, lists, num_threads):
        """(packed fields, scan factors) of validated vectors going to `lists`."""
        return self._encode(x, num_threads)

    def _training_state(self):
        """What encoding depends on (IVF: the centroids); an add checks it did not change
        between its encoding (outside the lock) and its commit."""
        return None

    def _prepare_add(self, x, num_threads):
        """Assign and encode every row (outside the lock: the fallible, slow part). Returns
        (lists, codes, sf, training state); nothing of the index changes here."""
        if not self.is_trained:
            raise NotTrainedError(f"{type(self).__name__} is not trained: call train(x) "
                                  f"before add")
        trained = self._training_state()
        nt = resolve_threads(num_threads if num_threads is not None else self.params.num_threads)
        n = x.shape[0]
        step = max(256, self.add_chunk_bytes // (4 * max(getattr(self, "nlist", 1), self.d)))
        lists = (np.concatenate([self._assign_lists(x[a:a + step], nt)
                                 for a in range(0, n, step)]) if n else np.zeros(0, np.int64))
        codes = np.empty((n, self.codec._code_bytes), np.uint8)
        sf = np.empty((n, self.codec.n_acc + 2), np.float32)
        for a in range(0, n, step):
            codes[a:a + step], sf[a:a + step] = self._encode_rows(x[a:a + step],
                                                                  lists[a:a + step], nt)
        if n and not np.isfinite(sf).all():  # cannot happen for inputs within MAX_NORM
            from ..errors import ValueOverflowError
            raise ValueOverflowError("add: the encoded factors of these vectors overflow "
                                     "float32; scale the vectors down")
        return lists, codes, sf, trained

    def _commit_add(self, batch, ids):
        """Write a prepared batch into the store and publish it (under the lock)."""
        lists, codes, sf, trained = batch
        if trained is not self._training_state():
            raise NotTrainedError(f"{type(self).__name__} was retrained during this add")
        n = ids.shape[0]
        st = self._store
        dest = st.reserve(lists)  # may move lists (content-preserving); nothing published
        st.codes[dest] = codes
        st.sf[dest] = sf
        st.ids[dest] = ids
        st.commit(lists, dest, ids)
        if n and self._max_id is not None:
            self._max_id = max(self._max_id, int(ids.max()))

    def _add(self, x, ids, num_threads):
        self._commit_add(self._prepare_add(x, num_threads), ids)

    def remove_ids(self, sel):
        """Remove by ids (array) or a selector with `is_member(id)`; returns the count removed."""
        with self._lock:
            if hasattr(sel, "is_member"):
                rows = self._store.rows()
                rows = rows[selector_members(sel, self._store.ids[rows])]
            else:
                ids = as_ids(sel)
                pos = self._positions_of(ids, must_exist=False) if self.ntotal else ids[:0]
                rows = pos[pos >= 0]
            removed = self._store.remove_rows(np.asarray(rows, np.int64))
            if removed:
                self._max_id = None
            return removed

    def reset(self):
        """Remove every vector (training is kept)."""
        with self._lock:
            self._store.reset()
            self._max_id = -1

    def _stored_arrays(self):
        """(lists, codes, sf, ids) of the live vectors, sorted by list (what files hold)."""
        rows, lists = self._store.list_of_rows()
        st = self._store
        return lists, st.codes[rows], st.sf[rows], st.ids[rows]

    def merge_from(self, other, add_id=0):
        """Move every vector of `other` into this index, its ids shifted by `add_id` (faiss
        ``merge_from``): same kind, d, metric, codec and (IVF) centroids, else a clear error.
        The codes move unchanged; `other` is left empty."""
        from ..interop import merge_code_index
        merge_code_index(self, other, add_id)

    def _load_stored(self, lists, codes, sf, ids):
        self._store = ListStore.from_sorted(self._store.nlist, lists, codes, sf, ids,
                                            self.codec.scan_layout)
        self._max_id = None

    def _snapshot(self, p, blocks=False):
        """A consistent view for one search (storage.py: module docstring)."""
        with self._lock:
            codes, sf, ids, row0, ln = self._store.snapshot()
            mask, use_mask = self._filter_mask(p.filter)
            self._store.layout = self.codec.scan_layout
            fs = self._store.fastscan_blocks() if blocks else (None, None)
        return codes, sf, ids, row0, ln, mask, use_mask, fs[0], fs[1]
