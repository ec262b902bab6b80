"""fs_scan_q (the driver's scan primitive) vs the older fs_scan: M code-query pairs/s, 1 thread.

    python bench/fastscan_q.py                      # the default table
    python bench/fastscan_q.py --shapes 384:32:8,100:4:32 --rounds 100 --backend avx2

Both kernels are called through their raw addresses from a numba loop (as the search driver
calls fs_scan_q), `calls` times per timing, so the numbers are the kernels' own (no ctypes
overhead).  fs_scan gets the same data (contiguous blocks and LUT rows, nthreads=1);
fs_scan_q gets qidx = 0..nq-1 and, with --offset, pointers 16 bytes off 32-byte alignment
(the driver passes b_off = blk0*bstride + 16*nibble_offset).  Timing: per-thread CPU time
(time.thread_time), best over --rounds rounds, the two kernels interleaved, because the
machine may be shared; a pair = one (vector, query) score of m sub-quantizer lookups.
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vqindex import _native  # noqa: E402

DEFAULT_SHAPES = "384:32:1,384:32:8,384:32:32,384:4:1,384:4:8,384:4:32,100:32:8,100:4:32"


def _caller(nargs):
    @intrinsic
    def call(typingctx, fptr, args):
        sig = types.int64(types.int64, types.UniTuple(types.int64, nargs))

        def codegen(context, builder, signature, llargs):
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(i64, [i64] * nargs)
            fn = builder.inttoptr(llargs[0], fnty.as_pointer())
            vals = [builder.extract_value(llargs[1], i) for i in range(nargs)]
            return builder.call(fn, vals)

        return sig, codegen

    return call


_call12 = _caller(12)
_call10 = _caller(10)


@njit(nogil=True)
def _loop12(fptr, args, calls):
    rc = 0
    for _ in range(calls):
        rc |= _call12(fptr, args)
    return rc


@njit(nogil=True)
def _loop10(fptr, args, calls):
    rc = 0
    for _ in range(calls):
        rc |= _call10(fptr, args) & 0xFFFFFFFF  # fs_scan returns a C int
    return rc


def _addr(fn):
    return ctypes.cast(fn, ctypes.c_void_p).value


def _aligned(nbytes, offset):
    """uint8 buffer whose data starts `offset` bytes past a 64-byte boundary."""
    raw = np.zeros(nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    return raw[start:start + nbytes]


def bench_shape(lib, m, nb, nq, backend, rounds, offset, target_s):
    rng = np.random.default_rng(m * 1000 + nb * 10 + nq)
    n = 32 * nb
    bs = 16 * m
    blocks = _aligned(nb * bs, offset)
    blocks[:] = rng.integers(0, 256, blocks.shape, dtype=np.uint8)
    lut = _aligned(nq * bs, offset)
    lut[:] = rng.integers(0, 256, lut.shape, dtype=np.uint8)
    qidx = np.arange(nq, dtype=np.int64)
    out_q = np.zeros((nq, n), np.uint16)
    out_s = np.zeros((nq, n), np.uint16)
    bid = _native.BACKEND_IDS[backend]
    args_q = (blocks.ctypes.data, bs, nb, n, m, lut.ctypes.data, bs, qidx.ctypes.data, nq,
              out_q.ctypes.data, n, bid)
    args_s = (blocks.ctypes.data, nb, n, m, lut.ctypes.data, nq, out_s.ctypes.data, n,
              bid, 1)
    fq, fsc = _addr(lib.fs_scan_q), _addr(lib.fs_scan)
    assert _loop12(fq, args_q, 1) == 0 and _loop10(fsc, args_s, 1) > 0
    if not np.array_equal(out_q, out_s):
        raise AssertionError(f"fs_scan_q != fs_scan for m={m} nb={nb} nq={nq}")
    # calls per timing: about target_s of work at ~2e10 lookups/s
    calls = max(1, int(target_s * 2e10 / (n * nq * m)))
    best_q = best_s = float("inf")
    for _ in range(rounds):
        t = time.thread_time()
        _loop10(fsc, args_s, calls)
        best_s = min(best_s, (time.thread_time() - t) / calls)
        t = time.thread_time()
        _loop12(fq, args_q, calls)
        best_q = min(best_q, (time.thread_time() - t) / calls)
    pairs = n * nq
    return pairs / best_s / 1e6, pairs / best_q / 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma list of m:nblocks:nq")
    ap.add_argument("--backend", default="auto", choices=sorted(_native.BACKEND_IDS))
    ap.add_argument("--rounds", type=int, default=60, help="timings per kernel (best kept)")
    ap.add_argument("--offset", type=int, default=0,
                    help="bytes past 64-byte alignment of blocks and LUTs (e.g. 16)")
    ap.add_argument("--target-ms", type=float, default=2.0, help="work per timing")
    args = ap.parse_args(argv)
    lib = _native.lib
    if lib is None or not hasattr(lib, "fs_scan_q"):
        print(f"native library with fs_scan_q not available ({_native.load_error})")
        return 1
    print(f"backend={args.backend} offset={args.offset} rounds={args.rounds}; "
          "M code-query pairs/s, one thread, best per-thread CPU time")
    print(f"| {'m':>5} | {'nblocks':>7} | {'nq':>3} | {'fs_scan':>8} | {'fs_scan_q':>9} | "
          f"{'ratio':>5} | {'G lookups/s':>11} |")
    print(f"|{'-' * 7}|{'-' * 9}|{'-' * 5}|{'-' * 10}|{'-' * 11}|{'-' * 7}|{'-' * 13}|")
    for spec in args.shapes.split(","):
        m, nb, nq = (int(x) for x in spec.split(":"))
        s, q = bench_shape(lib, m, nb, nq, args.backend, args.rounds, args.offset,
                           args.target_ms * 1e-3)
        print(f"| {m:5d} | {nb:7d} | {nq:3d} | {s:8.1f} | {q:9.1f} | {q / s:5.2f} | "
              f"{q * m / 1e3:11.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
