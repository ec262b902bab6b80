"""Per-call thread control for numba parallel kernels (thread-local in numba)."""
import contextlib
import os

import numba

__all__ = ["threads", "resolve_threads", "maybe_threads", "worth_parallel", "PARALLEL_MIN_WORK"]

#: the least work (elementary steps: code-query pairs of a fast scan, or their equivalent)
#: for which a numba parallel call pays off. Starting the thread pool's work costs tens of
#: microseconds, about 2^18 such steps on one core, so smaller calls run the serial twin.
#: That also keeps a process's first small searches from compiling the parallel twins
#: (each costs seconds of numba compile time; bench/cold_start.py).
PARALLEL_MIN_WORK = 1 << 18


def resolve_threads(num_threads):
    """Map None to the process default, 0/-1 to all cores, clamp to numba's pool size; return an int >= 1."""
    if num_threads is None:
        from ..index.params import get_num_threads
        num_threads = get_num_threads()  # the process default (every core unless set)
    elif num_threads <= 0:
        num_threads = os.cpu_count() or 1
    return max(1, min(int(num_threads), numba.config.NUMBA_NUM_THREADS))


@contextlib.contextmanager
def threads(num_threads):
    """Run numba parallel kernels of this (Python) thread with `num_threads` threads."""
    n = resolve_threads(num_threads)
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(old)


def maybe_threads(num_threads, parallel):
    """`threads(num_threads)` for a parallel call; nothing (no numba call) for a serial one."""
    return threads(num_threads) if parallel else contextlib.nullcontext(1)


def worth_parallel(num_threads, work):
    """Whether a call doing `work` elementary steps should run the parallel twin: more than
    one thread asked for (None counts as the default, every core) and at least
    PARALLEL_MIN_WORK steps. Serial and parallel twins give identical results."""
    return num_threads != 1 and work >= PARALLEL_MIN_WORK
