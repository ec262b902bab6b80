"""String factories: `codec_factory` (codec names) and `index_factory` (FAISS-style grammar)."""
import re

from .codecs import BlockQuant, EDEN, RaBitQ, TurboQuantMSE, TurboQuantProd

__all__ = ["codec_factory", "index_factory", "parse_codec", "CODEC_SPELLINGS", "INDEX_GRAMMAR"]

CODEC_SPELLINGS = (
    "RaBitQ1..RaBitQ9 (suffix MSE: biased rule, C: constant rescale)",
    "EDEN1..EDEN8, EDEN1BIASED..EDEN8BIASED",
    "TQmse1..TQmse8 (alias SQtqmse1..8)",
    "TQprod2..TQprod8 (alias SQtq2..8; suffix G: Gaussian QJL as in the paper)",
    "BQ1..BQ4 (BQ<b>k<k> explicit block size, suffix S: sphere variant, U: unbiased rule)",
)

_PATTERNS = [
    (re.compile(r"^RaBitQ(\d+)?(MSE)?(C)?$", re.I), "rabitq"),
    (re.compile(r"^EDEN(\d+)(BIASED|UNBIASED)?$", re.I), "eden"),
    (re.compile(r"^(?:TQmse|SQtqmse)(\d+)$", re.I), "tqmse"),
    (re.compile(r"^(?:TQprod|SQtq)(\d+)(G)?$", re.I), "tqprod"),
    (re.compile(r"^BQ(\d+)(?:k(\d+))?(S)?(U)?$", re.I), "bq"),
]


def parse_codec(token):
    """Parse one codec token into (constructor, kwargs) or None if it is not a codec name."""
    token = token.strip()
    for pat, kind in _PATTERNS:
        m = pat.match(token)
        if not m:
            continue
        g = m.groups()
        if kind == "rabitq":
            return RaBitQ, {"bits": int(g[0] or 1), "scale": "biased" if g[1] else "unbiased",
                            "rescale": "const" if g[2] else "optimal"}
        if kind == "eden":
            return EDEN, {"bits": int(g[0]),
                          "scale": "biased" if (g[1] or "").upper() == "BIASED" else "unbiased"}
        if kind == "tqmse":
            return TurboQuantMSE, {"bits": int(g[0])}
        if kind == "tqprod":
            return TurboQuantProd, {"bits": int(g[0]), "qjl": "gaussian" if g[1] else "orthogonal"}
        return BlockQuant, {"bits": int(g[0]), "block": int(g[1]) if g[1] else None,
                            "variant": "sphere" if g[2] else "multishell",
                            "scale": "unbiased" if g[3] else "biased"}
    return None


def codec_factory(d, description, rotation="fast", seed=0):
    """Build a codec from a string such as "BQ4", "RaBitQ4", "EDEN4BIASED", "SQtq4" or "TQmse2".

    An "RR," or "HR," prefix (FAISS's random / Hadamard rotation) is accepted: every codec here
    rotates already; "RR" selects the dense Haar rotation, "HR" the fast one.
    """
    if not isinstance(description, str):
        raise TypeError(f"codec description must be a string, got {type(description).__name__}")
    tokens = [t.strip() for t in description.split(",") if t.strip()]
    while tokens and tokens[0].upper() in ("RR", "HR"):
        rotation = "haar" if tokens[0].upper() == "RR" else "fast"
        tokens = tokens[1:]
    if len(tokens) != 1:
        raise ValueError(f"codec description {description!r} must name exactly one codec; "
                         f"valid: {'; '.join(CODEC_SPELLINGS)}")
    parsed = parse_codec(tokens[0])
    if parsed is None:
        raise ValueError(f"unknown codec {tokens[0]!r} in {description!r}; valid: "
                         f"{'; '.join(CODEC_SPELLINGS)}")
    cls, kw = parsed
    return cls(d, rotation=rotation, seed=seed, **kw)


INDEX_GRAMMAR = ("[RR,|HR,] [IVF<nlist>, | HNSW<M>,] <codec> [,RFlat | ,Refine(Flat)]; "
                 "e.g. 'IVF1024,BQ4,Refine(Flat)', 'HNSW32,RaBitQ4', 'EDEN4', 'IVF256,SQtq4,RFlat'")


def index_factory(d, description, metric=None, seed=0):
    """Build an index from a FAISS-style string (see INDEX_GRAMMAR).

    metric: vqindex.METRIC_L2 (default), METRIC_INNER_PRODUCT or METRIC_COSINE, or a name.
    """
    from .index import IndexFlatCodes, IndexIVFCodes, IndexRefine, METRIC_L2

    if not isinstance(description, str):
        raise TypeError(f"index description must be a string, got {type(description).__name__}")
    metric = METRIC_L2 if metric is None else metric
    tokens = [t.strip() for t in description.split(",") if t.strip()]
    rotation = "fast"
    structure = None
    codec = None
    refine = False
    for tok in tokens:
        up = tok.upper()
        if up in ("RR", "HR") and codec is None and structure is None:
            rotation = "haar" if up == "RR" else "fast"
            continue
        m = re.match(r"^IVF(\d+)$", tok, re.I)
        if m and structure is None and codec is None:
            structure = ("ivf", int(m.group(1)))
            continue
        m = re.match(r"^HNSW(\d+)?$", tok, re.I)
        if m and structure is None and codec is None:
            structure = ("hnsw", int(m.group(1) or 32))
            continue
        if codec is None:
            parsed = parse_codec(tok)
            if parsed is not None:
                cls, kw = parsed
                try:
                    codec = cls(d, rotation=rotation, seed=seed, **kw)
                except ValueError as exc:
                    raise ValueError(f"bad codec token {tok!r} in {description!r}: {exc}") from None
                continue
        if codec is not None and not refine and up in ("RFLAT", "REFINE(FLAT)"):
            refine = True
            continue
        where = "codec" if codec is None else "suffix"
        valid = (f"codecs: {'; '.join(CODEC_SPELLINGS)}" if codec is None
                 else "suffixes: RFlat, Refine(Flat)")
        raise ValueError(f"unexpected token {tok!r} in index description {description!r} "
                         f"(expected a {where}); grammar: {INDEX_GRAMMAR}; valid {valid}")
    if codec is None:
        raise ValueError(f"index description {description!r} names no codec; grammar: {INDEX_GRAMMAR}")
    if structure is None:
        index = IndexFlatCodes(d, codec, metric)
    elif structure[0] == "ivf":
        index = IndexIVFCodes(d, codec, structure[1], metric)
    else:
        from .index.hnsw import IndexHNSWCodes
        index = IndexHNSWCodes(d, codec, structure[1], metric)
    if refine:
        index = IndexRefine(index)
    return index
