"""String factories: `codec_factory` (codec names) and `index_factory` (FAISS-style grammar).

Every codec token comes from the one registry (`vqindex.codecs.registry.CODECS`); the reverse
direction is `describe_index(index)` (= ``index.description``), so that
``index_factory(d, index.description, index.metric)`` rebuilds an equal empty index.
"""
from __future__ import annotations

import re
from typing import Optional, Union

from .codecs.registry import CODECS, codec_spellings, faiss_only_token, markdown_table, parse_codec

__all__ = ["codec_factory", "index_factory", "parse_codec", "describe_index", "factory_help",
           "CODEC_SPELLINGS", "INDEX_GRAMMAR", "MAX_NLIST", "MAX_HNSW_M"]

#: the accepted codec tokens, one entry per registry family
CODEC_SPELLINGS = tuple(spec.spelling for spec in CODECS)

INDEX_GRAMMAR = ("[IDMap,|IDMap2,] [RR,|HR,] [IVF<nlist>, | HNSW<M>[_efc<n>],] <codec> "
                 "| Flat [,RFlat | ,Refine(Flat)]")

#: bounds checked before anything is allocated
MAX_NLIST = 1 << 24
MAX_HNSW_M = 512
MAX_DIM = 1 << 20

_IVF = re.compile(r"^IVF(\d+)$", re.I)
_HNSW = re.compile(r"^HNSW(\d+)?(?:_efc(\d+))?$", re.I)


def _errors():
    from . import errors
    return errors


def _value_error(msg):
    return getattr(_errors(), "ArgumentError", ValueError)(msg)


def _type_error(msg):
    return getattr(_errors(), "ArgumentTypeError", TypeError)(msg)


def _check_d(d):
    from .index.params import check_int
    return check_int(d, "d (dimension)", 1, MAX_DIM)


def _short(description, limit=60):
    return description if len(description) <= limit else description[:limit - 3] + "..."


def _unknown_token(tok, description, expected):
    what = faiss_only_token(tok)
    if what is not None:
        return _value_error(
            f"{tok!r} in {_short(description)!r} is a faiss {what} that vqindex does not "
            f"implement; build it with faiss.index_factory(d, {_short(description)!r}). "
            f"vqindex.factory_help() lists vqindex's strings")
    return _value_error(f"unexpected token {tok!r} in {_short(description)!r} (expected "
                        f"{expected}); vqindex.factory_help() lists the grammar and codecs")


def _build_codec(tok, d, rotation, seed, description):
    parsed = parse_codec(tok)
    if parsed is None:
        return None
    cls, kw = parsed
    try:
        return cls(d, rotation=rotation, seed=seed, **kw)
    except ValueError as exc:
        raise _value_error(f"bad codec token {tok!r} in {_short(description)!r}: {exc}") from None


def codec_factory(d: int, description: str, rotation: str = "fast", seed: int = 0):
    """Build a codec from a string such as "BQ4", "RaBitQ4", "EDEN4BIASED", "SQtq4" or "TQmse2".

    Parameters
    ----------
    d : int
        Vector dimension (1 .. 2**20).
    description : str
        One codec token (see `factory_help`), optionally after an "RR," (dense Haar rotation)
        or "HR," (fast rotation, the default) prefix.
    rotation : str
        "fast" or "haar", when no prefix says it.
    seed : int
        Seed of the rotation.

    Returns
    -------
    Codec
    """
    if not isinstance(description, str):
        raise _type_error(f"codec description must be a string, got {type(description).__name__}")
    d = _check_d(d)
    tokens = [t.strip() for t in description.split(",") if t.strip()]
    while tokens and tokens[0].upper() in ("RR", "HR"):
        rotation = "haar" if tokens[0].upper() == "RR" else "fast"
        tokens = tokens[1:]
    if len(tokens) != 1:
        raise _value_error(f"codec description {_short(description)!r} must name exactly one "
                           f"codec ({codec_spellings()})")
    codec = _build_codec(tokens[0], d, rotation, seed, description)
    if codec is None:
        if faiss_only_token(tokens[0]) is not None:
            raise _unknown_token(tokens[0], description, "")
        raise _value_error(f"unknown codec {tokens[0]!r} in {_short(description)!r}; expected one "
                           f"of {codec_spellings()} (vqindex.factory_help() lists them)")
    return codec


def index_factory(d: int, description: str, metric: "Union[int, str, None]" = None,
                  seed: int = 0):
    """Build an index from a FAISS-style string (grammar: `factory_help()`).

    Parameters
    ----------
    d : int
        Vector dimension (1 .. 2**20).
    description : str
        E.g. ``"IVF1024,BQ4,Refine(Flat)"``, ``"HNSW32,RaBitQ4"``, ``"EDEN4"``, ``"Flat"``,
        ``"IVF256,Flat"``, ``"IDMap,RaBitQfs4"``.
    metric : int or str, optional
        vqindex.METRIC_L2 (default), METRIC_INNER_PRODUCT or METRIC_COSINE, or a name.
    seed : int
        Seed of the codec's rotation.

    Returns
    -------
    Index
    """
    from .index import IndexFlatCodes, IndexIVFCodes, IndexRefine, METRIC_L2
    from .index.params import as_metric, check_int

    if not isinstance(description, str):
        raise _type_error(f"index description must be a string, got {type(description).__name__}")
    d = _check_d(d)
    metric = as_metric(METRIC_L2 if metric is None else metric)
    seed = check_int(seed, "seed", 0)
    tokens = [t.strip() for t in description.split(",")]
    if any(not t for t in tokens):
        raise _value_error(f"index description {_short(description)!r} has an empty token")
    rotation = "fast"
    structure = None
    storage = None  # a codec, or "flat"
    refine = False
    for tok in tokens:
        up = tok.upper()
        if storage is None and structure is None and up in ("IDMAP", "IDMAP2"):
            continue  # ids are built into every vqindex index
        if storage is None and structure is None and up in ("RR", "HR"):
            rotation = "haar" if up == "RR" else "fast"
            continue
        m = _IVF.match(tok)
        if m and structure is None and storage is None:
            nlist = int(m.group(1))
            if not 1 <= nlist <= MAX_NLIST:
                raise _value_error(f"nlist in {tok!r} must be in [1, {MAX_NLIST}], got {nlist}")
            structure = ("ivf", nlist)
            continue
        m = _HNSW.match(tok)
        if m and structure is None and storage is None:
            M = int(m.group(1) or 32)
            if not 2 <= M <= MAX_HNSW_M:
                raise _value_error(f"HNSW M in {tok!r} must be in [2, {MAX_HNSW_M}], got {M}")
            efc = int(m.group(2)) if m.group(2) is not None else 40
            if not 1 <= efc <= 1 << 16:
                raise _value_error(f"HNSW efConstruction in {tok!r} must be in [1, 65536], "
                                   f"got {efc}")
            structure = ("hnsw", M, efc)
            continue
        if storage is None:
            if up == "FLAT":
                storage = "flat"
                continue
            codec = _build_codec(tok, d, rotation, seed, description)
            if codec is not None:
                storage = codec
                continue
            raise _unknown_token(tok, description, f"a codec ({codec_spellings()}) or Flat")
        if not refine and up in ("RFLAT", "REFINE(FLAT)"):
            refine = True
            continue
        raise _unknown_token(tok, description, "a suffix: RFlat or Refine(Flat)"
                             if not refine else "the end of the string")
    if storage is None:
        if structure is not None and structure[0] == "hnsw":
            storage = "flat"  # faiss: "HNSW32" alone is HNSW32,Flat
        else:
            raise _value_error(f"index description {_short(description)!r} names no codec "
                               f"(expected a codec or Flat); see vqindex.factory_help()")
    if storage == "flat":
        from .index.float_flat import IndexFlat, IndexHNSWFlat, IndexIVFFlat
        if structure is None:
            index = IndexFlat(d, metric)
        elif structure[0] == "ivf":
            index = IndexIVFFlat(d, structure[1], metric)
        else:
            index = IndexHNSWFlat(d, structure[1], metric, efConstruction=structure[2])
    elif structure is None:
        index = IndexFlatCodes(d, storage, metric)
    elif structure[0] == "ivf":
        index = IndexIVFCodes(d, storage, structure[1], metric)
    else:
        from .index.hnsw import IndexHNSWCodes
        index = IndexHNSWCodes(d, storage, structure[1], metric, efConstruction=structure[2])
    if refine:
        index = IndexRefine(index)
    return index


def describe_index(index) -> str:
    """The factory string of `index` (``index.description``): a reverse factory.

    ``index_factory(index.d, describe_index(index), index.metric)`` builds an equal empty
    index (same kind, structure, codec and codec parameters)."""
    from .index import IndexFlatCodes, IndexIVFCodes, IndexRefine
    from .index.float_flat import IndexFlat, IndexHNSWFlat, IndexIVFFlat

    if isinstance(index, IndexRefine):
        return describe_index(index.base) + ",RFlat"
    if type(index).__name__ == "IndexPreTransform":
        # a faiss transform's matrix has no factory spelling: the description is the base's
        return describe_index(index.base)
    if isinstance(index, IndexFlat):
        return "Flat"
    if isinstance(index, IndexIVFFlat):
        return f"IVF{index.nlist},Flat"
    if isinstance(index, IndexHNSWFlat):
        return f"HNSW{index.M}{_efc_suffix(index)},Flat"
    codec = getattr(index, "codec", None)
    if codec is None:
        raise _type_error(f"cannot describe an index of type {type(index).__name__}")
    prefix = "RR," if getattr(codec.rotation, "kind", "fast") == "haar" else ""
    if isinstance(index, IndexIVFCodes):
        return f"{prefix}IVF{index.nlist},{codec.name}"
    if isinstance(index, IndexFlatCodes):
        return f"{prefix}{codec.name}"
    if hasattr(index, "M") and hasattr(index, "graph_arrays"):
        return f"{prefix}HNSW{index.M}{_efc_suffix(index)},{codec.name}"
    raise _type_error(f"cannot describe an index of type {type(index).__name__}")


def _efc_suffix(index):
    """'_efc<n>' of an HNSW index whose efConstruction is not the default 40, else ''."""
    efc = int(index.efConstruction)
    return "" if efc == 40 else f"_efc{efc}"


def factory_help() -> str:
    """The full grammar of `index_factory` / `codec_factory` strings, with the codec table."""
    lines = [
        "vqindex.index_factory(d, description, metric) grammar:",
        f"  {INDEX_GRAMMAR}",
        "  IDMap, / IDMap2,  accepted and ignored: every vqindex index stores int64 ids",
        "  RR, / HR,         dense Haar / fast (default) random rotation of the codec",
        f"  IVF<nlist>,       k-means coarse lists (nlist 1..{MAX_NLIST})",
        f"  HNSW<M>[_efc<n>], HNSW graph (M 2..{MAX_HNSW_M}; efConstruction n, default 40;",
        "                    'HNSW32' alone = 'HNSW32,Flat')",
        "  Flat              exact float32 storage (works with IVF and HNSW too)",
        "  ,RFlat / ,Refine(Flat)  rerank k_factor*k candidates with exact float distances",
        "examples: 'IVF1024,BQ4,Refine(Flat)', 'HNSW32,RaBitQ4', 'EDEN4', 'IVF256,Flat',",
        "          'IDMap,RaBitQfs4', 'IVF256,SQtq4,RFlat'",
        "codecs:",
    ]
    for spec in CODECS:
        lines.append(f"  {spec.spelling:36s} {spec.family}" + (f": {spec.notes}" if spec.notes
                                                               else ""))
    lines.append("faiss codecs that vqindex does not implement (PQ, OPQ, PCA, SQ8, LSH, RQ, "
                 "...) are built with faiss.index_factory; an IVF partition of a trained faiss "
                 "index can seed a vqindex one (IndexIVFCodes.from_faiss_ivf).")
    return "\n".join(lines)


def codec_table() -> str:
    """The README's codec table (markdown), generated from the registry."""
    return markdown_table()
