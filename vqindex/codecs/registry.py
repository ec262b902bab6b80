"""The one codec registry: each codec family declares its factory token, pattern and
canonical name here; the string factories, their error messages, `factory_help()`,
`index.description` and the README's codec table all come from `CODECS`.

A token matches a family's `pattern` (case-insensitive); `build(match)` gives the codec class
and its keyword arguments; `codec.name` is the canonical token (it parses back to an equal
codec, which the tests check for every family).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .blockquant import BlockQuant
from .eden import EDEN
from .rabitq import RaBitQ
from .turboquant import TurboQuantMSE, TurboQuantProd

__all__ = ["CodecSpec", "CODECS", "FAISS_ONLY", "parse_codec", "faiss_only_token",
           "codec_spellings", "markdown_table"]


@dataclass(frozen=True)
class CodecSpec:
    """One codec family of the factory grammar.

    family: the class's name as the README says it; spelling: the accepted tokens in short;
    notes: the suffixes; pattern: the token regex; build: match -> (class, kwargs).
    """
    family: str
    spelling: str
    notes: str
    pattern: "re.Pattern[str]"
    build: Callable[["re.Match[str]"], Tuple[type, dict]]
    cls: type


def _rabitq(m):
    return RaBitQ, {"bits": int(m.group(1) or 1), "scale": "biased" if m.group(2) else "unbiased",
                    "rescale": "const" if m.group(3) else "optimal"}


def _rabitq_fs(m):
    return RaBitQ, {"bits": int(m.group(1) or 1)}


def _eden(m):
    return EDEN, {"bits": int(m.group(1)),
                  "scale": "biased" if (m.group(2) or "").upper() == "BIASED" else "unbiased"}


def _tqmse(m):
    return TurboQuantMSE, {"bits": int(m.group(1))}


def _tqprod(m):
    return TurboQuantProd, {"bits": int(m.group(1)),
                            "qjl": "gaussian" if m.group(2) else "orthogonal"}


def _bq(m):
    return BlockQuant, {"bits": int(m.group(1)), "block": int(m.group(2)) if m.group(2) else None,
                        "variant": "sphere" if m.group(3) else "multishell",
                        "scale": "unbiased" if m.group(4) else "biased"}


CODECS: Tuple[CodecSpec, ...] = (
    CodecSpec("RaBitQ / Extended RaBitQ", "RaBitQ1..RaBitQ9",
              "suffix `MSE`: biased rule; `C`: constant rescale (fast encode); faiss's "
              "`RaBitQfs`, `RaBitQfs<b>` are the same codes (every vqindex scan is a fast scan)",
              re.compile(r"^RaBitQ(\d+)?(MSE)?(C)?$", re.I), _rabitq, RaBitQ),
    CodecSpec("RaBitQ (faiss fast-scan spelling)", "RaBitQfs, RaBitQfs<b>", "",
              re.compile(r"^RaBitQfs(\d+)?$", re.I), _rabitq_fs, RaBitQ),
    CodecSpec("EDEN / DRIVE", "EDEN1..EDEN8, EDEN4BIASED", "unbiased by default",
              re.compile(r"^EDEN(\d+)(BIASED|UNBIASED)?$", re.I), _eden, EDEN),
    CodecSpec("TurboQuant_mse", "TQmse1..TQmse8 (alias SQtqmse1..8)",
              "stores the norm, so inputs need not be unit vectors",
              re.compile(r"^(?:TQmse|SQtqmse)(\d+)$", re.I), _tqmse, TurboQuantMSE),
    CodecSpec("TurboQuant_prod", "TQprod2..TQprod8 (alias SQtq2..8)",
              "unbiased; orthogonal QJL projection by default, suffix `G`: the paper's Gaussian S",
              re.compile(r"^(?:TQprod|SQtq)(\d+)(G)?$", re.I), _tqprod, TurboQuantProd),
    CodecSpec("BlockQuant", "BQ1..BQ4, BQ2k6",
              "multi-shell block codebooks, biased rule; `k<k>`: block size; `S`: sphere "
              "variant, `U`: unbiased rule",
              re.compile(r"^BQ(\d+)(?:k(\d+))?(S)?(U)?$", re.I), _bq, BlockQuant),
)

#: faiss codecs (and index kinds) that vqindex does not implement: token pattern -> what it is
FAISS_ONLY: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p, re.I), what) for p, what in (
        (r"^PQ\d+(x\d+)?(fs|fsr|np)?$", "product quantizer"),
        (r"^OPQ\d+(_\d+)?$", "OPQ rotation"),
        (r"^PCA[RW]*\d+$", "PCA transform"),
        (r"^ITQ\d*$", "ITQ transform"),
        (r"^L2norm$", "L2 normalisation transform"),
        (r"^SQ(4|6|8|fp16|bf16|8_direct_signed|8_direct)$", "scalar quantizer"),
        (r"^LSH\w*$", "LSH"),
        (r"^(RQ|PRQ|LSQ|PLSQ|ZnLattice|Residual)\S*$", "additive / residual quantizer"),
        (r"^NSG\d*$", "NSG graph"),
        (r"^NNDescent\d*$", "NNDescent graph"),
        (r"^IMI\S*$", "multi-index quantizer"),
        (r"^IVF\d+_\S+$", "IVF with a non-flat coarse quantizer"),
        (r"^(BinaryHash|Binary\S*|BFlat|BHNSW\S*|BIVF\S*)$", "binary index"),
        (r"^Refine\((?!Flat\)).*\)$", "refinement by another codec"),
        (r"^RaBitQ\d*_\S+$", "faiss RaBitQ variant"),
    ))


def parse_codec(token: str) -> Optional[Tuple[type, dict]]:
    """(codec class, kwargs) of one codec token, or None if no family matches it."""
    token = token.strip()
    for spec in CODECS:
        m = spec.pattern.match(token)
        if m:
            return spec.build(m)
    return None


def faiss_only_token(token: str) -> Optional[str]:
    """What the faiss codec / index kind named by `token` is, or None if it is not one."""
    for pat, what in FAISS_ONLY:
        if pat.match(token.strip()):
            return what
    return None


def codec_spellings() -> str:
    """The accepted codec tokens in one short line (for error messages)."""
    return ", ".join(spec.spelling.split(" (")[0] for spec in CODECS)


def _cell(tokens):
    return ", ".join("..".join(f"`{p}`" for p in t.split("..")) for t in tokens.split(", "))


def markdown_table() -> str:
    """The README's codec table (generated; a test checks the README holds it)."""
    rows = ["| string | codec | notes |", "|---|---|---|"]
    for spec in CODECS:
        if spec.family.startswith("RaBitQ (faiss"):
            continue  # folded into the RaBitQ row's notes
        main, _, alias = spec.spelling.partition(" (alias ")
        cell = _cell(main) + (f", alias {_cell(alias.rstrip(')'))}" if alias else "")
        rows.append(f"| {cell} | {spec.family} | {spec.notes} |")
    return "\n".join(rows)
