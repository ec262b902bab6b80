"""faiss interop: bytes serialization, clone_index, normalize_L2, merge checks and the faiss
methods of the code indexes (add_sa_codes, merge_from, from_faiss_ivf pre-transforms).

`serialize_index` / `deserialize_index` use the file format of `write_index` / `read_index`
(no pickle inside: a JSON header and checked raw arrays), so `pickle.dumps(index)`,
`copy.deepcopy(index)`, joblib, multiprocessing and Ray ship an index through it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["serialize_index", "deserialize_index", "clone_index", "normalize_L2",
           "pretransform_of_faiss"]


def _errors():
    from . import errors
    return errors


def serialize_index(index) -> bytes:
    """The bytes of the file `write_index(index, path)` would write.

    Parameters
    ----------
    index : vqindex.Index

    Returns
    -------
    bytes
        A vqindex index file (header, arrays, sha256); `deserialize_index` reads it back.
    """
    from .io import _index_to_bytes
    return _index_to_bytes(index)


def deserialize_index(data, verify: bool = True):
    """An index from `serialize_index` bytes (bytes, bytearray, memoryview or a uint8 numpy
    array, as faiss's ``deserialize_index`` takes); the same checks as `read_index`."""
    from .io import _index_from_bytes
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise getattr(_errors(), "ArgumentTypeError", TypeError)(
                f"data must be bytes or a uint8 array, got a {data.dtype} array")
        data = data.tobytes()
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise getattr(_errors(), "ArgumentTypeError", TypeError)(
            f"data must be bytes (from serialize_index), got {type(data).__name__}")
    return _index_from_bytes(data, verify=verify)


def clone_index(index):
    """A deep, independent copy of `index` (faiss ``clone_index``)."""
    return deserialize_index(serialize_index(index))


def normalize_L2(x) -> None:
    """L2-normalise the rows of `x` in place (faiss ``normalize_L2``; zero rows stay zero).

    Parameters
    ----------
    x : ndarray, float32 (n, d), C-contiguous and writeable
    """
    if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2
            or not x.flags.c_contiguous or not x.flags.writeable):
        raise getattr(_errors(), "ArgumentTypeError", TypeError)(
            "normalize_L2 works in place on a writeable C-contiguous float32 (n, d) array; got "
            + (f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__))
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    x /= np.maximum(norms, 1e-30).astype(np.float32)[:, None]


def _check_mergeable(a, b):
    """merge_from: same kind, d, metric, codec and partition (faiss's rule)."""
    err = getattr(_errors(), "ArgumentError", ValueError)
    if type(a) is not type(b):
        raise err(f"merge_from: cannot merge a {type(b).__name__} into a {type(a).__name__}")
    if a is b:
        raise err("merge_from: an index cannot be merged into itself")
    if a.d != b.d or a._metric != b._metric:
        raise err(f"merge_from: d / metric differ ({a.d}, {a.metric} vs {b.d}, {b.metric})")
    codec_a, codec_b = getattr(a, "codec", None), getattr(b, "codec", None)
    if (codec_a is None) != (codec_b is None) or (
            codec_a is not None and (type(codec_a) is not type(codec_b)
                                     or codec_a.params() != codec_b.params())):
        raise err("merge_from: the indexes use different codecs (or rotations)")
    ca, cb = getattr(a, "centroids", None), getattr(b, "centroids", None)
    if getattr(a, "nlist", None) != getattr(b, "nlist", None) or (
            (ca is None) != (cb is None)) or (ca is not None and not np.array_equal(ca, cb)):
        raise err("merge_from: the IVF partitions (centroids) differ")


def _composed_linear(chain):
    """One (A, b) of a chain of faiss LinearTransforms (applied in order), or None."""
    import faiss
    A, b = None, None
    for vt in chain:
        vt = faiss.downcast_VectorTransform(vt)
        if not isinstance(vt, faiss.LinearTransform):
            return None, type(vt).__name__
        if not vt.is_trained:
            raise getattr(_errors(), "ArgumentError", ValueError)(
                f"the faiss pre-transform {type(vt).__name__} is not trained")
        Ai = faiss.vector_to_array(vt.A).reshape(vt.d_out, vt.d_in).astype(np.float64)
        bi = (faiss.vector_to_array(vt.b).astype(np.float64) if vt.have_bias
              else np.zeros(vt.d_out))
        A, b = (Ai, bi) if A is None else (Ai @ A, Ai @ b + bi)
    return (A, b), None


def pretransform_of_faiss(index):
    """(A, b, inner faiss index) of a faiss IndexPreTransform whose chain is linear (RR, OPQ,
    PCA, ITQ); raises a clear error for any other transform (e.g. L2norm)."""
    import faiss
    pt = faiss.downcast_index(index)
    chain = [pt.chain.at(i) for i in range(pt.chain.size())]
    ab, bad = _composed_linear(chain)
    if ab is None:
        raise getattr(_errors(), "ArgumentError", ValueError)(
            f"from_faiss_ivf: the faiss pre-transform {bad} is not linear; vqindex applies "
            f"linear ones (RR, OPQ, PCA, ITQ) only. Apply it to the vectors yourself and pass "
            f"the inner index (faiss.extract_index_ivf)")
    return ab[0], ab[1], faiss.downcast_index(pt.index)


# ---------------------------------------------------------------------- code-index methods
def add_sa_codes(index, codes, ids=None):
    """`index.add_sa_codes(codes, ids)` for the code indexes (see its docstring)."""
    from ._validation import as_codes, as_ids
    from .index import IndexFlatCodes
    codes = as_codes(codes, index.sa_code_size)
    if not isinstance(index, IndexFlatCodes) or type(index).__name__ != "IndexFlatCodes":
        x = index.codec.decode(codes)
        return index.add(x) if ids is None else index.add_with_ids(x, ids)
    n = codes.shape[0]
    packed = np.ascontiguousarray(codes[:, : index.codec._code_bytes])
    sf = np.ascontiguousarray(index.codec.scan_factors(codes), dtype=np.float32)
    if n and not np.isfinite(sf).all():
        raise getattr(_errors(), "ArgumentError", ValueError)(
            "codes: the factors stored in these codes are NaN or inf (not codes of sa_encode)")
    with index._lock:
        if ids is None:
            ids = (index._fresh_ids(n) if hasattr(index, "_fresh_ids")
                   else np.arange(index._next_id(), index._next_id() + n, dtype=np.int64))
        else:
            ids = as_ids(ids, n)
            index._check_new_ids(ids)
        mine = index._stored_arrays()
        index._load_stored(np.zeros(mine[0].shape[0] + n, np.int64),
                           np.concatenate([mine[1], packed]), np.concatenate([mine[2], sf]),
                           np.concatenate([mine[3], ids]))


def merge_code_index(index, other, add_id=0):
    """`index.merge_from(other, add_id)` for the code indexes (Flat, IVF): the stored codes
    of `other` move over unchanged (same codec and partition), `other` is emptied."""
    from .index.params import check_int
    _check_mergeable(index, other)
    add_id = check_int(add_id, "add_id", 0)
    with other._lock:
        lists, codes, sf, ids = other._stored_arrays()
        lists, codes, sf, ids = lists.copy(), codes.copy(), sf.copy(), ids + add_id
    with index._lock:
        if ids.shape[0] and index.ntotal:
            pos = index._positions_of(ids, must_exist=False)
            if np.any(pos >= 0):
                raise getattr(_errors(), "ArgumentError", ValueError)(
                    f"merge_from: id {int(ids[pos >= 0][0])} is in both indexes (pass add_id "
                    f"to shift the other's ids)")
        mine = index._stored_arrays()
        order = np.argsort(np.concatenate([mine[0], lists]), kind="stable")
        index._load_stored(*(np.ascontiguousarray(np.concatenate([m, o])[order])
                             for m, o in zip(mine, (lists, codes, sf, ids))))
    other.reset()
