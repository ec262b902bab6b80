"""BlockQuant encoding time: grid search (vqindex.kernels.blocksearch) vs brute force.

    python bench/blockquant_encode.py --n 100000 --d 1536 --bits 1 2 3 4 --threads 1 [--brute]

Times the quantization kernel on Gaussian rows (what the rotation produces), one call each,
after a warm-up call (numba compile, index build); prints seconds and index-agreement rate.
"""
import argparse
import os
import sys
import time

import numpy as np
import numba

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vqindex.codecs.block_codebooks import DEFAULT_K, block_codebook  # noqa: E402
from vqindex.kernels import blocksearch as bs  # noqa: E402
from vqindex.kernels import quantize as q  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--d", type=int, default=1536)
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--block", type=int, default=None, help="k (default: spec default per b)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--brute", action="store_true", help="also time the brute-force kernel")
    a = ap.parse_args()
    numba.set_num_threads(a.threads)
    for b in a.bits:
        k = a.block or DEFAULT_K[b]
        D = k * -(-a.d // k)
        y = np.random.default_rng(0).standard_normal((a.n, D)).astype(np.float32)
        C = block_codebook(k, b)
        cbn = np.einsum("ij,ij->i", C, C).astype(np.float32)
        out = lambda: (np.empty((a.n, D // k), np.uint16), np.empty(a.n, np.float32),  # noqa
                       np.empty(a.n, np.float32))
        t0 = time.perf_counter()
        ix = bs.block_search_index(C)
        build = time.perf_counter() - t0
        r1 = out()
        bs.block_quantize_fast(y[:8], C, cbn, 1, *(v[:8] for v in r1))
        t0 = time.perf_counter()
        bs.block_quantize_fast(y, C, cbn, 1, *r1)
        fast = time.perf_counter() - t0
        info = "brute force" if ix is None else \
            f"grid G={ix.G} cand/block={ix.expected:.2f} build={build:.2f}s"
        line = f"BQ{b} k={k} K={len(C)} n={a.n} D={D}: fast {fast:.3f}s ({info})"
        if a.brute:
            r2 = out()
            q.block_quantize(y[:8], C, cbn, 1, *(v[:8] for v in r2))
            t0 = time.perf_counter()
            q.block_quantize(y, C, cbn, 1, *r2)
            brute = time.perf_counter() - t0
            line += f"; brute {brute:.3f}s; x{brute / fast:.1f}; same idx {np.mean(r1[0] == r2[0]):.7f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
