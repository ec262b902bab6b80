"""Writes the format-1 fixtures of tests/test_io.py (run once with vqindex <= 0.1.0's format 1).

Kept for the record: the files in this folder were written by this script before format 2, and
test_io checks that they still load and search like the indexes rebuilt here."""
import numpy as np

import vqindex


def data():
    rng = np.random.default_rng(11)
    return rng.standard_normal((300, 16)).astype(np.float32), rng.standard_normal((5, 16)).astype(np.float32)


SPECS = [("flat_eden4", "EDEN4", vqindex.METRIC_L2), ("ivf_bq2", "IVF4,BQ2", vqindex.METRIC_COSINE),
         ("hnsw_tqprod4", "HNSW8,TQprod4", vqindex.METRIC_INNER_PRODUCT),
         ("refine_rabitq4", "RaBitQ4,RFlat", vqindex.METRIC_L2)]


def build(spec):
    xb, _ = data()
    index = vqindex.index_factory(16, spec[1], spec[2])
    index.train(xb)
    index.add(xb)
    return index


if __name__ == "__main__":
    import sys
    for spec in SPECS:
        vqindex.write_index(build(spec), f"{sys.argv[1]}/v1_{spec[0]}.vqi")
