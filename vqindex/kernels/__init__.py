"""numba kernels: loops and memory layouts only, nothing about codec names.

Every kernel is ``@njit(cache=True, nogil=True)``; nothing compiles at import time
(numba compiles lazily on the first call and caches the machine code on disk).
"""
