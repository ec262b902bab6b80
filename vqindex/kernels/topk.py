"""Bounded heaps for top-k (smaller key is better)."""
import numpy as np
from numba import njit



@njit(cache=True, nogil=True, inline="always")
def heap_push(keys, ids, size, key, ident):
    """Insert into a max-heap of the `size` smallest keys (capacity keys.shape[0]); new size."""
    cap = keys.shape[0]
    if size < cap:
        i = size
        size += 1
    elif key < keys[0]:
        # replace the root, sift down
        i = 0
        while True:
            left = 2 * i + 1
            if left >= cap:
                break
            right = left + 1
            child = left
            if right < cap and keys[right] > keys[left]:
                child = right
            if keys[child] <= key:
                break
            keys[i] = keys[child]
            ids[i] = ids[child]
            i = child
        keys[i] = key
        ids[i] = ident
        return size
    else:
        return size
    # sift up
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] >= key:
            break
        keys[i] = keys[parent]
        ids[i] = ids[parent]
        i = parent
    keys[i] = key
    ids[i] = ident
    return size


@njit(cache=True, nogil=True, inline="always")
def before(a, b):
    """a < b with NaN after every number (numpy's sort order)."""
    return a < b or (b != b and a == a)


@njit(cache=True, nogil=True)
def argsort_stable(a):
    """np.argsort(a, kind="stable") for a 1-D array (NaN last), written out: numba's own
    mergesort costs seconds of compile time per key type at the first search of a process.
    Insertion sort of runs of 16, then bottom-up merges."""
    n = a.shape[0]
    src = np.empty(n, np.int64)
    dst = np.empty(n, np.int64)
    for i in range(n):
        src[i] = i
    run = 16
    for s in range(0, n, run):
        e = min(s + run, n)
        for i in range(s + 1, e):
            v = src[i]
            kv = a[v]
            j = i - 1
            while j >= s and before(kv, a[src[j]]):
                src[j + 1] = src[j]
                j -= 1
            src[j + 1] = v
    width = run
    while width < n:
        for s in range(0, n, 2 * width):
            m = min(s + width, n)
            e = min(s + 2 * width, n)
            i = s
            j = m
            o = s
            while i < m and j < e:
                if before(a[src[j]], a[src[i]]):
                    dst[o] = src[j]
                    j += 1
                else:
                    dst[o] = src[i]
                    i += 1
                o += 1
            while i < m:
                dst[o] = src[i]
                i += 1
                o += 1
            while j < e:
                dst[o] = src[j]
                j += 1
                o += 1
        src, dst = dst, src
        width *= 2
    return src


@njit(cache=True, nogil=True)
def heap_sorted(keys, ids, size, out_keys, out_ids):
    """Write the heap contents ascending (stable for equal keys); pad with +inf / -1."""
    order = argsort_stable(keys[:size])
    for t in range(size):
        out_keys[t] = keys[order[t]]
        out_ids[t] = ids[order[t]]
    for t in range(size, out_keys.shape[0]):
        out_keys[t] = np.inf
        out_ids[t] = -1
