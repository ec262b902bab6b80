"""Codec benchmark (thin wrapper): the code lives in `vqindex.bench.codecs`.

    python bench/codecs.py --out /tmp/bench_codecs            # everything
    python bench/codecs.py --datasets random:200 --bits 2,4 --codecs EDEN,BQ
    vqindex-bench distortion ... / vqindex-bench encode-time ...   (the same code, installed)
"""
import os
import sys


def _threads(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


if __name__ == "__main__":
    for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
        os.environ.setdefault(_v, _threads(sys.argv[1:]))
    from vqindex.bench.codecs import main
    main()
