"""turbovec: "TQ<b>" (TurboQuantIndex, flat) and "TQ<b>+cal" (TQ+ calibration on 1024 random
rows before adding). Inner product only (angular data, normalised; euclidean data: skipped).

Threads: rayon's RAYON_NUM_THREADS, fixed at first use in the process (the sweep sets it
before the first import, `vqindex.bench.peers.prepare_threads`). It needs d % 8 == 0: other
dimensions are zero-padded (exact for inner products).
"""
import os
import re

import numpy as np

from ..base import Config, Method
from ._util import pad, saved_size

LIBRARY = "turbovec"
INSTALL = "turbovec"


def default_configs(n, d, quick, nlist):
    if quick:
        return [Config("turbovec", "TQ4", slow=True)]
    return [Config("turbovec", "TQ4", slow=True), Config("turbovec", "TQ4+cal", slow=True)]


class Adapter(Method):
    family = "turbovec"

    def build(self, x):
        if self.metric == "euclidean":
            raise RuntimeError("turbovec scores by inner product only (no euclidean)")
        import turbovec
        m = re.match(r"^TQ(\d)(\+cal)?$", self.config.index, re.I)
        if not m:
            raise ValueError(f"turbovec config must be TQ<b> or TQ<b>+cal, got {self.config.index!r}")
        d0 = x.shape[1]
        x = pad(x, 8)  # turbovec needs d % 8 == 0; zero padding is exact
        self.index = turbovec.TurboQuantIndex(x.shape[1], int(m.group(1)))
        if m.group(2):
            rng = np.random.default_rng(0)
            self.index.calibrate(np.ascontiguousarray(x[rng.choice(len(x), min(1024, len(x)), replace=False)]))
        self.index.add(x)
        self.index.prepare()
        self.note = f"rayon threads from RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}"
        if x.shape[1] != d0:
            self.note += f"; zero-padded d {d0} -> {x.shape[1]}"

    def search(self, q, k, qp):
        return np.asarray(self.index.search(pad(q, 8), k)[1], np.int64)

    def file_size(self, tmpdir):
        return saved_size(lambda p: self.index.write(p, durable=False), tmpdir, "t.tv"), True
