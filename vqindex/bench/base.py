"""The pieces every benchmark adapter shares: `Config`, the `Method` interface, grids, nlist."""
import itertools
import math
import os
from dataclasses import dataclass, field

__all__ = ["Config", "Method", "grid", "default_nlist", "nprobes", "saved_size"]


@dataclass
class Config:
    """One index built once plus the query-parameter grid run against it."""
    method: str
    index: str
    grid: list = field(default_factory=lambda: [{}])
    slow: bool = False      # a flat scan: batch/single queries capped harder
    note: str = ""


class Method:
    """Adapter interface: build once, then search with query parameters.

    kind: "codes" (search on compressed codes only), "codes+rerank" (keeps float vectors to
    rerank a shortlist) or "float" (an uncompressed float index).
    """
    family = "?"
    kind = "codes"
    single_cap = None  # optional per-adapter cap on single queries

    def __init__(self, config, metric, threads):
        self.config, self.metric, self.threads = config, metric, threads
        self.note = ""

    def build(self, x):
        """Build the index from float32 rows `x` (n, d)."""
        raise NotImplementedError

    def search(self, q, k, qp):
        """ids int64 (nq, k) for the queries q under query parameters qp (a dict)."""
        raise NotImplementedError

    def file_size(self, tmpdir):
        """(bytes, exact: bool): size of the saved index (exact) or an estimate (False)."""
        raise NotImplementedError

    def close(self):
        """Release the index (called once after its grid)."""


def grid(**axes):
    """The cartesian product of the axes as a list of dicts (insertion order of the axes)."""
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(axes[k] for k in keys))]


def default_nlist(n):
    """~3*sqrt(n) rounded to a power of two (1024 for 100k), at most n/39 (FAISS's minimum
    training points per list), at least 1."""
    target = 3.0 * math.sqrt(max(n, 1))
    nl = 2 ** int(round(math.log2(target)))
    while nl > 1 and nl * 39 > n:
        nl //= 2
    return max(1, nl)


def nprobes(nlist, values):
    """The values capped at nlist, sorted, without duplicates."""
    return sorted({min(v, nlist) for v in values})


def saved_size(save, tmpdir, name):
    """Bytes of the file `save(path)` writes into tmpdir (the file is removed again)."""
    path = os.path.join(tmpdir, name)
    save(path)
    size = os.path.getsize(path)
    os.remove(path)
    return size
