"""Peer adapters for `vqindex-bench sweep`: one small module per peer library.

    faiss      faiss.index_factory strings plus "EDEN<b>"          (faiss-cpu, a dependency)
    hnswlib    "M<m>" float graphs                                  (pip install hnswlib)
    rabitqlib  "IVF<n>,RaBitQ<b>", "HNSW<M>,RaBitQ<b>", "SymQG<R>"  (pip install rabitqlib)
    turbovec   "TQ<b>", "TQ<b>+cal" (inner product only)            (pip install turbovec)
    scann      "IVF<n>,AH<dims>[,Reorder]"                          (pip install scann)
    usearch    "M<connectivity>,<f16|i8|b1|f32>"                    (pip install usearch)

Each module defines LIBRARY (the import name), INSTALL (the pip requirement),
`default_configs(n, d, quick, nlist)` and `Adapter` (a `vqindex.bench.base.Method`). A peer
whose library is not importable is skipped by the sweep with a note saying how to install it
(`available`). Angular data arrive L2-normalised; peers then use inner product.
"""
import importlib
import importlib.util
import os
import sys

from ..base import Config, Method

__all__ = ["METHODS", "module", "available", "default_configs", "make", "prepare_threads",
           "Config", "Method"]

METHODS = ("faiss", "hnswlib", "rabitqlib", "turbovec", "scann", "usearch")
NOTES = []


def module(method):
    """The adapter module of a peer (ValueError naming the known peers for another name)."""
    if method not in METHODS:
        raise ValueError(f"unknown peer method {method!r}; known: {', '.join(METHODS)}")
    return importlib.import_module(f"{__name__}.{method}")


def available(method):
    """(True, "") when the peer's library can be imported, else (False, a note saying how to
    install it)."""
    mod = module(method)
    if importlib.util.find_spec(mod.LIBRARY.split(".")[0]) is None:
        return False, (f"{method}: library {mod.LIBRARY!r} not installed (pip install "
                       f"{mod.INSTALL}); skipped")
    return True, ""


def default_configs(method, n, d, quick=False, nlist=None):
    """The default configs of one peer for n vectors of dimension d."""
    from ..base import default_nlist
    return module(method).default_configs(n, d, quick, nlist or default_nlist(n))


def make(cfg, metric, threads):
    """The adapter instance for a Config of a peer method."""
    return module(cfg.method).Adapter(cfg, metric, threads)


def prepare_threads(threads):
    """Must run before turbovec is first imported: its rayon pool reads RAYON_NUM_THREADS once."""
    if "turbovec" in sys.modules and os.environ.get("RAYON_NUM_THREADS") != str(threads):
        NOTES.append(f"turbovec was imported before the sweep: its thread pool may not use "
                     f"{threads} thread(s)")
    os.environ["RAYON_NUM_THREADS"] = str(threads)
