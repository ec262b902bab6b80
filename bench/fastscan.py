"""Fast-scan throughput: code-query pairs/s per backend vs a float per-byte LUT baseline.

    python bench/fastscan.py --n 100000 --m 384 --nq 1000 --threads 1

m is the number of 4-bit sub-codes per vector (d=384 at 4 bits -> m=384).  The baseline
is a numba scan over the raw bitstream bytes with a float32 256-entry table per byte
(LUT[2k][b & 15] + LUT[2k+1][b >> 4]), one query at a time.
"""
import argparse
import os
import sys
import time

import numpy as np
from numba import njit, prange

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vqindex.kernels import fastscan as fs  # noqa: E402


@njit(cache=True, nogil=True, parallel=True)
def _byte_lut_scan(codes, blut, out):
    n, nbytes = codes.shape
    nq = blut.shape[0]
    for q in range(nq):
        for v in prange(n):
            s = np.float32(0.0)
            for k in range(nbytes):
                s += blut[q, k, codes[v, k]]
            out[q, v] = s


def byte_luts(lut):
    """float (nq, m, 16) -> per-byte float (nq, ceil(m/2), 256) tables."""
    nq, m, _ = lut.shape
    if m % 2:
        lut = np.concatenate([lut, np.zeros((nq, 1, 16), lut.dtype)], axis=1)
    b = np.arange(256)
    return np.ascontiguousarray(lut[:, 0::2, b & 15] + lut[:, 1::2, b >> 4], dtype=np.float32)


def timeit(fn, repeat):
    """Best wall time and best process CPU time over `repeat` runs (after a warm-up).

    CPU time is reported too because the machine may be shared: with one thread it is the
    uncontended cost; with several threads it is the sum over threads."""
    fn()  # warm-up (JIT compile, page faults)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best, best_cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100000, help="database vectors")
    ap.add_argument("--m", type=int, default=384, help="4-bit sub-codes per vector")
    ap.add_argument("--nq", type=int, default=1000, help="queries")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-nq", type=int, default=20,
                    help="queries for the (slow) float baseline and the numba backend")
    ap.add_argument("--backends", default="all", help="comma list or 'all'")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    n, m, nq = args.n, args.m, args.nq
    codes = rng.integers(0, 256, (n, (m + 1) // 2), dtype=np.uint8)
    lut = rng.standard_normal((nq, m, 16)).astype(np.float32)
    t = time.perf_counter()
    blocks = fs.pack_bitstream_blocks(codes, m)
    t_pack = time.perf_counter() - t
    t = time.perf_counter()
    lut_u8, scale, bias = fs.quantize_lut(lut)
    t_q = time.perf_counter() - t
    print(f"n={n} m={m} nq={nq} threads={args.threads}  codes {codes.nbytes / 1e6:.1f} MB, "
          f"LUTs {lut_u8.nbytes / 1e6:.1f} MB; pack {t_pack * 1e3:.0f} ms, "
          f"quantize_lut {t_q * 1e3:.0f} ms")

    # float per-byte LUT baseline (numba), fewer queries
    import numba
    numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    bq = min(nq, args.baseline_nq)
    blut = byte_luts(lut[:bq])
    fout = np.empty((bq, n), np.float32)
    dt, dc = timeit(lambda: _byte_lut_scan(codes, blut, fout), args.repeat)
    base = bq * n / dt
    print(f"{'float byte-LUT (numba)':24s} {base / 1e6:9.1f} M pairs/s wall, "
          f"{bq * n / dc / 1e6:9.1f} M/s per CPU-second  ({bq} queries)")

    names = fs.available_backends() if args.backends == "all" else args.backends.split(",")
    out = np.empty((nq, n), np.uint16)
    for name in names:
        q = bq if name in ("numba", "scalar") else nq
        o = out[:q]
        dt, dc = timeit(lambda: fs.scan(blocks, n, lut_u8[:q], out=o,
                                        num_threads=args.threads, backend=name), args.repeat)
        rate = q * n / dt
        print(f"{'fastscan ' + name:24s} {rate / 1e6:9.1f} M pairs/s wall, "
              f"{q * n / dc / 1e6:9.1f} M/s per CPU-second  ({q} queries, "
              f"{rate / base:5.1f}x baseline, {rate * m / 1e9:5.1f} G lookups/s)")

    # sanity: quantized scores vs float scores for one query
    s_f = fout[0].astype(np.float64)
    s_q = bias[0] + scale[0] * out[0].astype(np.float64)
    err = np.abs(s_f - s_q).max()
    print(f"max |float - dequantized| = {err:.4g} (bound m*scale/2 = "
          f"{fs.quantization_error_bound(scale[0], m):.4g})")


if __name__ == "__main__":
    main()
