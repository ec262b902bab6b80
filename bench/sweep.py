"""Recall / QPS sweep of vqindex and its peers on one data set (thin CLI over vqindex.benchmark).

    python bench/sweep.py ../shared/data/pypi-minilm-384-angular.hdf5 --out /tmp/sweep_minilm
    python bench/sweep.py glove-50-angular-100k --methods vqindex,faiss --threads 1 --quick

The first argument is the data set (name or path; `--dataset` works too); every other option is
`vqindex-bench sweep`'s (see `python bench/sweep.py --help`). Peer adapters: bench/peers.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vqindex.cli import main  # noqa: E402


def run(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--dataset", argv[0]] + argv[1:]
    return main(["sweep"] + argv)


if __name__ == "__main__":
    sys.exit(run())
