"""fs_scan_q (the driver's scan primitive): exact mode vs the LUT7 / LUT6 fast modes (and the
older fs_scan), M code-query pairs/s, 1 thread.

    python bench/fastscan_q.py                      # the default table
    python bench/fastscan_q.py --shapes 384:32:8,100:4:32 --rounds 100 --backend avx2
    python bench/fastscan_q.py --lib /tmp/fsbuild/vqindex/_fastscan.so   # another build

Columns: fs_scan; fs_scan_q exact (backend id); LUT7 (id | FS_FLAG_LUT7 << 8, LUT entries
<= 127: two lookups added in uint8 before widening); LUT6 (id | FS_FLAG_LUT6 << 8, entries
<= 63: four lookups); the fast modes' ratios to the exact one.  Every kernel gets the same
data (LUT entries in [0, 63], so all four must agree, which is checked).  The kernels are
called through their raw addresses from a numba loop (as the search driver calls fs_scan_q),
`calls` times per timing, so the numbers are the kernels' own (no ctypes overhead).  fs_scan
gets contiguous blocks and LUT rows, nthreads=1; fs_scan_q gets qidx = 0..nq-1 and, with
--offset, pointers 16 bytes off 32-byte alignment (the driver passes b_off =
blk0*bstride + 16*nibble_offset).  Timing: per-thread CPU time (time.thread_time), best over
--rounds rounds, the kernels interleaved, because the machine may be shared; a pair = one
(vector, query) score of m sub-quantizer lookups.
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

DEFAULT_SHAPES = ",".join(f"{m}:{nb}:{nq}" for m in (384, 192, 100) for nb in (32, 4)
                          for nq in (1, 8, 16, 32))
FS_FLAG_LUT7 = 1  # fs_scan_q backend |= flag << 8: every LUT entry <= 127
FS_FLAG_LUT6 = 2  # every LUT entry <= 63


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
    """M pairs/s of fs_scan, fs_scan_q exact, LUT7, LUT6 (best of `rounds`, interleaved)."""
    rng = np.random.default_rng(m * 1000 + nb * 10 + nq)
    n = 32 * nb
    bs = 16 * m
    blocks = _aligned(nb * bs, offset)
    blocks[:] = rng.integers(0, 256, blocks.shape, dtype=np.uint8)
    lut = _aligned(nq * bs, offset)
    lut[:] = rng.integers(0, 64, lut.shape, dtype=np.uint8)  # valid for every mode
    qidx = np.arange(nq, dtype=np.int64)
    bid = _native.BACKEND_IDS[backend]
    fq, fsc = _addr(lib.fs_scan_q), _addr(lib.fs_scan)
    outs, runs = [], []
    out_s = np.zeros((nq, n), np.uint16)
    args_s = (blocks.ctypes.data, nb, n, m, lut.ctypes.data, nq, out_s.ctypes.data, n,
              bid, 1)
    assert _loop10(fsc, args_s, 1) > 0
    outs.append(out_s)
    runs.append((_loop10, fsc, args_s))
    for flags in (0, FS_FLAG_LUT7, FS_FLAG_LUT6):
        out_q = np.zeros((nq, n), np.uint16)
        args_q = (blocks.ctypes.data, bs, nb, n, m, lut.ctypes.data, bs, qidx.ctypes.data,
                  nq, out_q.ctypes.data, n, bid | (flags << 8))
        assert _loop12(fq, args_q, 1) == 0, flags
        outs.append(out_q)
        runs.append((_loop12, fq, args_q))
    for o in outs[1:]:
        if not np.array_equal(o, outs[0]):
            raise AssertionError(f"kernels disagree for m={m} nb={nb} nq={nq}")
    # calls per timing: about target_s of work at ~8e10 lookups/s
    calls = max(1, int(target_s * 8e10 / (n * nq * m)))
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, (loop, f, a) in enumerate(runs):
            t = time.thread_time()
            loop(f, a, calls)
            best[i] = min(best[i], (time.thread_time() - t) / calls)
    pairs = n * nq
    return [pairs / b / 1e6 for b in best]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma list of m:nblocks:nq")
    ap.add_argument("--backend", default="auto", choices=sorted(_native.BACKEND_IDS))
    ap.add_argument("--rounds", type=int, default=200, help="timings per kernel (best kept)")
    ap.add_argument("--offset", type=int, default=0,
                    help="bytes past 64-byte alignment of blocks and LUTs (e.g. 16)")
    ap.add_argument("--target-ms", type=float, default=0.5, help="work per timing")
    ap.add_argument("--lib", default=None,
                    help="path of a fastscan library to load instead of vqindex's")
    args = ap.parse_args(argv)
    if args.lib:
        lib = ctypes.CDLL(args.lib)
        lib.fs_scan_q.restype = ctypes.c_int64
    else:
        lib = _native.lib
    if lib is None or not hasattr(lib, "fs_scan_q"):
        print(f"native library with fs_scan_q not available ({_native.load_error})")
        return 1
    print(f"backend={args.backend} offset={args.offset} rounds={args.rounds}; "
          "M code-query pairs/s, one thread, best per-thread CPU time")
    print(f"| {'m':>4} | {'nblocks':>7} | {'nq':>3} | {'fs_scan':>7} | {'exact':>7} | "
          f"{'LUT7':>7} | {'LUT6':>7} | {'LUT7/ex':>7} | {'LUT6/ex':>7} |")
    print("|" + "|".join("-" * (w + 2) for w in (4, 7, 3, 7, 7, 7, 7, 7, 7)) + "|")
    for spec in args.shapes.split(","):
        m, nb, nq = (int(x) for x in spec.split(":"))
        s, e, l7, l6 = bench_shape(lib, m, nb, nq, args.backend, args.rounds, args.offset,
                                   args.target_ms * 1e-3)
        print(f"| {m:4d} | {nb:7d} | {nq:3d} | {s:7.1f} | {e:7.1f} | {l7:7.1f} | {l6:7.1f} | "
              f"{l7 / e:7.2f} | {l6 / e:7.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
