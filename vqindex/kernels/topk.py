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


@njit(cache=True, nogil=True)
def heap_sorted(keys, ids, size, out_keys, out_ids):
    """Write the heap contents ascending (stable for equal keys); pad with +inf / -1."""
    order = np.argsort(keys[:size], kind="mergesort")
    for t in range(size):
        out_keys[t] = keys[order[t]]
        out_ids[t] = ids[order[t]]
    for t in range(size, out_keys.shape[0]):
        out_keys[t] = np.inf
        out_ids[t] = -1
