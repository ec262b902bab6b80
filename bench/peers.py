"""Compatibility wrapper: the peer adapters live in `vqindex.bench.peers` (one module per peer).

Keeps the old call signatures (`default_configs(method, n, d, quick, Config, grid, nlist)`,
`make(cfg, metric, threads, Method)`) for scripts written against bench/peers.py.
"""
from vqindex.bench.peers import METHODS, available, module, prepare_threads  # noqa: F401
from vqindex.bench import peers as _peers


def default_configs(method, n, d, quick, Config=None, grid=None, nlist=None):
    return _peers.default_configs(method, n, d, quick, nlist)


def make(cfg, metric, threads, Method=None):
    return _peers.make(cfg, metric, threads)
