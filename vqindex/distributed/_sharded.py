"""ShardedIndex: one vqindex index spread over Ray actors, with the single index's API.

The caller keeps only the trained, empty template index (for validation and for training);
the vectors and codes live in the shard actors (`_actor.ShardActor`). Ids are routed to shards
by a fixed hash (`_manifest.route`), so a shard holds exactly the vectors whose ids hash to it,
and every shard encodes a vector as a single index would (the codecs are data-oblivious and
seeded; IVF shards share the caller's centroids). A search sends the query batch through the
object store once, each shard returns its k best, and the caller merges them exactly.
"""
import os
import re
import shutil
import socket
import tempfile
import threading
import time

import numpy as np

from .._validation import as_ids, as_vectors, check_k
from ..errors import ArgumentError, ArgumentTypeError, IndexFileError, VQIndexError
from ..index.params import METRIC_COSINE, METRIC_INNER_PRODUCT, SearchParams
from ._actor import ShardActor
from ._manifest import (MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, ROUTING, fsync_dir,
                        index_to_bytes, read_manifest, route, sha256_file, write_manifest)

__all__ = ["ShardedIndex", "ShardUnavailableError", "ClusterConnectionError", "merge_topk",
           "merge_range"]


class ShardUnavailableError(VQIndexError, RuntimeError):
    """A shard actor is dead, restarting past its limit, or did not answer in time.

    `shards` lists the shard numbers that failed; the message names them and the reason."""

    def __init__(self, message, shards=()):
        super().__init__(message)
        self.shards = tuple(int(s) for s in shards)


class ClusterConnectionError(VQIndexError, ConnectionError):
    """No Ray cluster could be reached at the given address (or ray is not installed)."""


def _ray():
    try:
        import ray
    except ImportError:
        raise ClusterConnectionError(
            "vqindex.distributed needs Ray: pip install \"vqindex[distributed]\"") from None
    return ray


def _check_reachable(address, timeout=3.0):
    """Fail fast on an explicit host:port (or ray://host:port) nobody listens on."""
    m = re.match(r"^(?:ray://)?\[?([^\]\s]+?)\]?:(\d+)$", address)
    if not m:
        return
    host, port = m.group(1), int(m.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterConnectionError(
            f"cannot reach a Ray cluster at address={address!r}: {exc.strerror or exc}; expected "
            f"None (a local Ray), \"auto\" or the address of a running Ray head") from None


def connect(address=None):
    """Start or reuse Ray. address None: a local Ray with this machine's cores (or the Ray
    this process already runs); "auto" or "host:port" / "ray://host:port": a running cluster."""
    ray = _ray()
    if address is not None:
        if not isinstance(address, str) or not address:
            raise ArgumentTypeError(f"address must be None or a string such as \"auto\" or "
                                    f"\"ray://head:10001\", got {address!r}")
        _check_reachable(address)
    if ray.is_initialized():
        return ray
    kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    if address is None:
        kwargs["num_cpus"] = os.cpu_count() or 1
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ClusterConnectionError(
            f"cannot connect to Ray at address={address!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return ray


def _fill(is_ip):
    return -np.inf if is_ip else np.inf


def merge_topk(Ds, Is, k, is_ip):
    """Exact top-k over the shards' results: (D (nq, k) float32, I (nq, k) int64).

    Ds, Is: lists of (nq, k_s) arrays, best first; missing results are id -1. Ties in distance
    are broken by the smaller id (with more than 4 k candidates, ties at the k-th place are
    cut by np.argpartition first). Missing results stay id -1 with distance -inf (IP, cosine)
    or +inf (L2), as in FAISS."""
    nq = Ds[0].shape[0] if Ds else 0
    if not Ds:
        return (np.full((nq, k), _fill(is_ip), np.float32), np.full((nq, k), -1, np.int64))
    if len(Ds) == 1:
        D, I = Ds[0], Is[0]
    else:
        D = np.concatenate(Ds, axis=1)
        I = np.concatenate(Is, axis=1)
        key = np.where(I < 0, np.inf, -D if is_ip else D)
        if key.shape[1] > 4 * k:  # many shards: the k best first, then order those
            part = np.argpartition(key, k - 1, axis=1)[:, :k]
            key, D, I = (np.take_along_axis(a, part, 1) for a in (key, D, I))
        order = np.lexsort((I, key), axis=-1)[:, :k]
        D = np.take_along_axis(D, order, 1)
        I = np.take_along_axis(I, order, 1)
    if D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.concatenate([D, np.full((nq, pad), _fill(is_ip), np.float32)], axis=1)
        I = np.concatenate([I, np.full((nq, pad), -1, np.int64)], axis=1)
    D = np.where(I < 0, np.float32(_fill(is_ip)), D)
    return np.ascontiguousarray(D, np.float32), np.ascontiguousarray(I, np.int64)


def merge_range(parts, nq, is_ip):
    """Concatenate range results (lims, D, I) of the shards per query, each query's results
    sorted best first (ties by id): (lims (nq + 1,), D, I) in FAISS's layout."""
    if not parts:
        return np.zeros(nq + 1, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    q = np.concatenate([np.repeat(np.arange(nq), np.diff(lims)) for lims, _, _ in parts])
    D = np.concatenate([d for _, d, _ in parts]).astype(np.float32, copy=False)
    I = np.concatenate([i for _, _, i in parts]).astype(np.int64, copy=False)
    order = np.lexsort((I, -D if is_ip else D, q))
    lims = np.zeros(nq + 1, np.int64)
    lims[1:] = np.cumsum(np.bincount(q, minlength=nq))
    return lims, D[order], I[order]


_GEN_FILE = re.compile(r"^(?:shard-\d+|template)\.g(\d+)\.(?:vqi|log)$")


class ShardedIndex:
    """A vqindex index split over `num_shards` Ray actors; the API of one index.

    d, description, metric, seed: as `vqindex.index_factory(d, description, metric, seed)`;
    description may also be an empty vqindex index (trained or not) to use as the template.
    num_shards: shard actors (>= 1). address: None (a local Ray with this machine's cores, or
    the Ray this process already runs), "auto" or "ray://head:10001" (a running cluster).
    num_cpus: CPUs Ray reserves per shard actor (default min(1, cluster CPUs / num_shards)).
    max_restarts: how often Ray restarts a dead shard (it reloads its file and replays its
    log); -1: always. timeout: seconds a call waits for a shard before ShardUnavailableError.
    work_dir: where shards keep their files until the first `save` (default: a temporary
    directory, removed by `close`); on a cluster it must exist on (or be shared with) every
    node, as must the directory given to `save`. max_concurrency: concurrent searches per
    shard actor.
    """

    def __init__(self, d, description, metric=None, num_shards=2, address=None, num_cpus=None,
                 max_restarts=3, timeout=60.0, work_dir=None, seed=0, max_concurrency=4,
                 start_timeout=120.0):
        import vqindex
        if isinstance(description, str):
            template = vqindex.index_factory(d, description, metric, seed=seed)
        elif isinstance(description, vqindex.Index):
            template = description
            if template.ntotal:
                raise ArgumentError(f"description: the template index must be empty, got one "
                                    f"with ntotal={template.ntotal}")
            if int(d) != template.d:
                raise ArgumentError(f"d={d} but the template index has d={template.d}")
        else:
            raise ArgumentTypeError(f"description must be an index string (e.g. "
                                    f"\"IVF1024,EDEN4,RFlat\") or an empty vqindex index, got "
                                    f"{type(description).__name__}")
        self._init(template, num_shards, address, num_cpus, max_restarts, timeout, work_dir,
                   max_concurrency, start_timeout, [("bytes", None)] * _check_shards(num_shards))

    # ------------------------------------------------------------------ start-up
    def _init(self, template, num_shards, address, num_cpus, max_restarts, timeout, work_dir,
              max_concurrency, start_timeout, inits, seq=0):
        num_shards = _check_shards(num_shards)
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, (int, np.integer)) \
                or max_restarts < -1:
            raise ArgumentError(f"max_restarts must be an integer >= -1, got {max_restarts!r}")
        for name, v in (("timeout", timeout), ("start_timeout", start_timeout)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ArgumentError(f"{name} must be a positive number of seconds, got {v!r}")
        if num_cpus is not None and (isinstance(num_cpus, bool)
                                     or not isinstance(num_cpus, (int, float)) or not num_cpus > 0):
            raise ArgumentError(f"num_cpus must be None or a positive number, got {num_cpus!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, (int, np.integer)) \
                or max_concurrency < 1:
            raise ArgumentError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        self._template = template
        self.num_shards = num_shards
        self.timeout = float(timeout)
        self._mutex = threading.RLock()
        self._seq = int(seq)
        self._next = None
        self._actors = []
        self.last_search = {}
        ray = connect(address)  # before anything is created: an unreachable address leaks nothing
        self._ray = ray
        self._own_work_dir = work_dir is None
        self.work_dir = os.path.abspath(work_dir) if work_dir is not None else \
            tempfile.mkdtemp(prefix="vqindex-shards-")
        os.makedirs(self.work_dir, exist_ok=True)
        if num_cpus is None:
            total = float(ray.cluster_resources().get("CPU", 1.0))
            num_cpus = min(1.0, total / num_shards)
        self.num_cpus = float(num_cpus)
        retries = -1 if max_restarts == -1 else int(max_restarts)
        actor_cls = ray.remote(ShardActor).options(
            num_cpus=self.num_cpus, max_restarts=int(max_restarts), max_task_retries=retries,
            max_concurrency=int(max_concurrency))
        template_ref = None
        try:
            for i, (kind, data) in enumerate(inits):
                if kind == "bytes":
                    if template_ref is None:
                        template_ref = ray.put(index_to_bytes(template))
                        self._template_ref = template_ref  # kept: restarts re-read it
                    data = template_ref
                self._actors.append(actor_cls.remote(i, num_shards, template.d, self.work_dir,
                                                     kind, data))
            infos = self._gather([a.info.remote() for a in self._actors], "start",
                                 timeout=start_timeout, starting=True)
        except BaseException:
            self.close()
            raise
        self._seq = max([self._seq] + [inf["seq"] for inf in infos])

    # ------------------------------------------------------------------ properties
    d = property(lambda self: self._template.d, doc="vector dimension")
    metric_type = property(lambda self: self._template.metric_type,
                           doc="METRIC_L2, METRIC_INNER_PRODUCT or METRIC_COSINE")
    metric = property(lambda self: self._template.metric, doc="metric name")
    is_trained = property(lambda self: self._template.is_trained)
    params = property(lambda self: self._template.params,
                      doc="default SearchParams (the template's; sent with every search)")
    shard_actors = property(lambda self: list(self._actors), doc="the Ray actor handles")

    @property
    def code_size(self):
        return self._template.code_size

    @property
    def ntotal(self):
        """Vectors stored over all shards."""
        return int(sum(self._gather([a.ntotal.remote() for a in self._actors], "ntotal")))

    @property
    def _is_ip(self):
        return self.metric_type in (METRIC_INNER_PRODUCT, METRIC_COSINE)

    def shard_info(self):
        """Per shard: ntotal, max id, last operation number, process RSS (bytes), log bytes,
        base file, pid, whether the actor was restarted."""
        return self._gather([a.info.remote() for a in self._actors], "info")

    def __repr__(self):
        return (f"ShardedIndex(d={self.d}, metric={self.metric!r}, num_shards={self.num_shards}, "
                f"template={type(self._template).__name__})")

    # ------------------------------------------------------------------ calls to shards
    def _gather(self, refs, what, allow_partial=False, timeout=None, shards=None, starting=False):
        """Results of one call per shard, in order; failed shards raise ShardUnavailableError
        (or, with allow_partial, come back as None). An error raised inside a shard's index
        (a KeyError for an absent id, ...) is re-raised as itself."""
        ray = self._ray
        shards = list(range(len(refs))) if shards is None else list(shards)
        timeout = self.timeout if timeout is None else timeout
        t_end = time.monotonic() + timeout
        try:  # the common case: every shard answers
            return ray.get(list(refs), timeout=timeout)
        except Exception:
            timeout = max(0.0, t_end - time.monotonic())
        _, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        pending = set(pending)
        out, failed = [], []
        for s, r in zip(shards, refs):
            if r in pending:
                failed.append((s, f"no answer within timeout={timeout:g} s"))
                out.append(None)
                continue
            try:
                out.append(ray.get(r))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None)
                if starting and isinstance(cause, Exception) and not isinstance(
                        cause, ray.exceptions.RayError):
                    raise cause from None
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                failed.append((s, f"{type(exc).__name__}: {first[:200]}"))
                out.append(None)
        if failed and not allow_partial:
            names = ", ".join(f"shard {s} of {self.num_shards} ({why})" for s, why in failed)
            hint = ("; with allow_partial=True search returns the other shards' results"
                    if what in ("search", "range_search") else "")
            if starting:
                hint = (f"; {self.num_shards} shards x num_cpus={self.num_cpus:g} must fit in "
                        f"the cluster's CPUs ({self._ray.cluster_resources().get('CPU', 0):g})")
            raise ShardUnavailableError(f"{what}: {names} unavailable{hint}",
                                        [s for s, _ in failed])
        return out

    def _parts(self, ids):
        """(shard, row indices) for each shard holding some of `ids` (rows in input order)."""
        dest = route(ids, self.num_shards)
        order = np.argsort(dest, kind="stable")
        bounds = np.searchsorted(dest[order], np.arange(self.num_shards + 1))
        return [(s, order[bounds[s]:bounds[s + 1]]) for s in range(self.num_shards)
                if bounds[s + 1] > bounds[s]]

    def _next_seq(self):
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------------ training, adding
    def train(self, x):
        """Train the template on the caller (IVF k-means), then give every shard the trained
        empty index (its file bytes, through the object store once)."""
        with self._mutex:
            was = self._template.is_trained
            self._template.train(x)
            if not was and self._template.is_trained:
                ref = self._ray.put(index_to_bytes(self._template))
                self._template_ref = ref
                seq = self._next_seq()
                self._gather([a.rebase.remote(seq, ref) for a in self._actors], "train")
        return self

    def _require_trained(self, x):
        if not self._template.is_trained:  # the library's own error for an untrained index
            self._template.add(x[:0])

    def add(self, x, num_threads=None):
        """Add vectors with ids ntotal-style: max stored id + 1, + 2, ... (FAISS add)."""
        x = as_vectors(x, self.d, "x")
        with self._mutex:
            self._require_trained(x)
            start = self._next_id()
            ids = np.arange(start, start + x.shape[0], dtype=np.int64)
            self._add(x, ids, num_threads)

    def add_with_ids(self, x, ids, num_threads=None):
        """Add vectors with the given int64 ids (unique, not already stored), each routed to
        its shard; returns once every shard has logged its part (fsync)."""
        x = as_vectors(x, self.d, "x")
        ids = as_ids(ids, x.shape[0])
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ArgumentError(f"add_with_ids: duplicate id {int(uniq[counts > 1][0])} in the batch")
        with self._mutex:
            parts = self._parts(ids)
            found = self._gather([self._actors[s].check_new.remote(ids[rows]) for s, rows in parts],
                                 "add_with_ids", shards=[s for s, _ in parts])
            hits = [f for f in found if f is not None]
            if hits:
                raise ArgumentError(f"add_with_ids: id {hits[0]} is already in the index")
            self._require_trained(x)
            self._add(x, ids, num_threads, parts)

    #: an add larger than this is sent in several calls (each logged and acknowledged on
    #: its own), so the caller holds at most one chunk's per-shard copies at a time
    add_chunk_bytes = 256 << 20

    def _add(self, x, ids, num_threads, parts=None):
        n = x.shape[0]
        step = max(1, self.add_chunk_bytes // (4 * self.d))
        if n > step:
            for a in range(0, n, step):
                self._add(x[a:a + step], ids[a:a + step], num_threads)
            return
        if n == 0:
            return
        parts = self._parts(ids) if parts is None else parts
        seq = self._next_seq()
        refs = [self._actors[s].add.remote(seq, x[rows], ids[rows], num_threads)
                for s, rows in parts]
        try:
            self._gather(refs, "add", shards=[s for s, _ in parts])
        except ShardUnavailableError as exc:
            self._next = None
            raise ShardUnavailableError(f"{exc} (the shards that answered keep their part of "
                                        f"this add)", exc.shards) from None
        if self._next is not None:
            self._next = max(self._next, int(ids.max()) + 1)

    def _next_id(self):
        if self._next is None:
            infos = self.shard_info()
            self._next = max(inf["max_id"] for inf in infos) + 1
        return self._next

    def remove_ids(self, sel):
        """Remove by an id array (each id sent to its shard only) or a selector with
        `is_member(id)` (sent to every shard); returns the number removed."""
        with self._mutex:
            seq = self._next_seq()
            if hasattr(sel, "is_member"):
                refs = [a.remove.remote(seq, None, sel) for a in self._actors]
                shards = None
            else:
                ids = as_ids(sel)
                parts = self._parts(ids)
                refs = [self._actors[s].remove.remote(seq, ids[rows]) for s, rows in parts]
                shards = [s for s, _ in parts]
            self._next = None
            return int(sum(self._gather(refs, "remove_ids", shards=shards)))

    def reset(self):
        """Remove every vector on every shard (training is kept)."""
        with self._mutex:
            seq = self._next_seq()
            self._next = None
            self._gather([a.reset.remote(seq) for a in self._actors], "reset")

    # ------------------------------------------------------------------ reading back
    def reconstruct(self, key):
        """Decoded (or, with Refine, stored float) vector of one id."""
        return self.reconstruct_batch(as_ids([key]))[0]

    def reconstruct_batch(self, ids):
        """float32 (len(ids), d): the vector of each id (KeyError if one is not stored)."""
        ids = as_ids(ids)
        out = np.zeros((ids.shape[0], self.d), np.float32)
        parts = self._parts(ids)
        vecs = self._gather([self._actors[s].reconstruct_batch.remote(ids[rows])
                             for s, rows in parts], "reconstruct", shards=[s for s, _ in parts])
        for (_, rows), v in zip(parts, vecs):
            out[rows] = v
        return out

    def reconstruct_n(self, i0=0, ni=None):
        """Vectors of ids i0 .. i0 + ni - 1 (default: up to ntotal, as FAISS)."""
        ni = self.ntotal - i0 if ni is None else ni
        return self.reconstruct_batch(np.arange(i0, i0 + ni, dtype=np.int64))

    # ------------------------------------------------------------------ search
    def _shard_filters(self, flt):
        """The filter each shard gets: an allowlist split by routing, a mask shared."""
        if flt is None:
            return [None] * self.num_shards
        arr = np.asarray(flt)
        if arr.dtype == bool:
            if arr.ndim != 1:
                raise ArgumentError(f"filter mask must be 1-D (indexed by id), got shape {arr.shape}")
            return [self._shared(arr)] * self.num_shards
        allow = as_ids(arr, what="filter ids")
        out = [allow[:0]] * self.num_shards
        for s, rows in self._parts(allow):
            out[s] = allow[rows]
        return out

    #: arrays sent to every shard go through the object store once (ray.put) above this
    #: size; smaller ones travel inline in the call (a put costs ~5 ms, more than a search)
    inline_bytes = 64 << 10

    def _shared(self, arr):
        return arr if arr.nbytes <= self.inline_bytes else self._ray.put(arr)

    def _prepare(self, x, params):
        x = as_vectors(x, self.d, "queries")
        flts = self._shard_filters(params.filter if isinstance(params, SearchParams) else None)
        # the caller's defaults (index.params) apply, as on a single index
        send = (SearchParams() if params is None else params).merged(self._template.params)
        send.filter = None
        return x, flts, send

    def search(self, x, k, params=None, allow_partial=False):
        """k nearest neighbours over all shards: (D float32 (nq, k), I int64 (nq, k)).

        The exact top-k of the shards' k best; missing results are id -1 with distance +inf
        (L2) or -inf (IP, cosine). allow_partial=True: a shard that is dead or does not answer
        within `timeout` is left out instead of raising ShardUnavailableError, and the call
        returns (D, I, complete) with complete bool (nq,) False where a shard is missing."""
        self._template.search(x, k, params)  # the single index's checks and messages
        k = check_k(k)
        x, flts, send = self._prepare(x, params)
        nq = x.shape[0]
        t0 = time.perf_counter()
        if nq == 0:
            D, I = merge_topk([], [], k, self._is_ip)
            D, I = D[:0], I[:0]
            return (D, I, np.ones(0, bool)) if allow_partial else (D, I)
        xref = self._shared(x)
        refs = [a.search.remote(xref, k, send, flts[s]) for s, a in enumerate(self._actors)]
        res = self._gather(refs, "search", allow_partial=allow_partial)
        t1 = time.perf_counter()
        ok = [r for r in res if r is not None]
        D, I = merge_topk([r[0] for r in ok], [r[1] for r in ok], k, self._is_ip)
        if not ok:
            D, I = np.full((nq, k), _fill(self._is_ip), np.float32), np.full((nq, k), -1, np.int64)
        t2 = time.perf_counter()
        self.last_search = {"wall_s": t2 - t0, "merge_s": t2 - t1,
                            "shard_s": [r[2][0] if r is not None else None for r in res],
                            "shard_cpu_s": [r[2][1] if r is not None else None for r in res]}
        if allow_partial:
            return D, I, np.full(nq, len(ok) == self.num_shards)
        return D, I

    def range_search(self, x, radius, params=None, allow_partial=False):
        """All results within `radius` over all shards: (lims, D, I) in FAISS's layout, each
        query's results best first. allow_partial: as in `search`, then (lims, D, I, complete)."""
        self._template.range_search(x, radius, params)  # the single index's checks
        x, flts, send = self._prepare(x, params)
        nq = x.shape[0]
        radius = float(radius)
        if nq == 0:
            out = merge_range([], 0, self._is_ip)
            return out + (np.ones(0, bool),) if allow_partial else out
        xref = self._shared(x)
        refs = [a.range_search.remote(xref, radius, send, flts[s])
                for s, a in enumerate(self._actors)]
        res = self._gather(refs, "range_search", allow_partial=allow_partial)
        ok = [r[:3] for r in res if r is not None]
        out = merge_range(ok, nq, self._is_ip)
        if allow_partial:
            return out + (np.full(nq, len(ok) == self.num_shards),)
        return out

    def assign(self, x, k, params=None):
        return self.search(x, k, params)[1]

    # ------------------------------------------------------------------ files
    def save(self, directory):
        """Write one vqindex file per shard plus template.g<G>.vqi and manifest.json into
        `directory`; the manifest (replaced atomically) is the commit point, older
        generations are removed after it. Each shard then logs into `directory`."""
        directory = os.path.abspath(os.fspath(directory))
        os.makedirs(directory, exist_ok=True)
        import vqindex
        with self._mutex:
            gens = [int(m.group(1)) for m in map(_GEN_FILE.match, os.listdir(directory)) if m]
            gen = max(gens, default=0) + 1
            tname = f"template.g{gen}.vqi"
            vqindex.write_index(self._template, os.path.join(directory, tname))
            infos = self._gather([a.save.remote(directory, gen) for a in self._actors], "save")
            tpath = os.path.join(directory, tname)
            manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                        "library_version": vqindex.__version__, "num_shards": self.num_shards,
                        "routing": dict(ROUTING), "generation": gen, "d": self.d,
                        "metric_type": self.metric_type, "seq": self._seq,
                        "template": {"file": tname, "bytes": os.path.getsize(tpath),
                                     "sha256": sha256_file(tpath)},
                        "shards": infos}
            write_manifest(directory, manifest)
            for name in os.listdir(directory):
                m = _GEN_FILE.match(name)
                if m and int(m.group(1)) != gen:
                    try:
                        os.unlink(os.path.join(directory, name))
                    except OSError:
                        pass
            fsync_dir(directory)
        return manifest

    @classmethod
    def load(cls, directory, address=None, num_cpus=None, max_restarts=3, timeout=60.0,
             work_dir=None, max_concurrency=4, start_timeout=120.0):
        """Open a directory written by `save`: one actor per shard loads its file (checked
        against the manifest's sha256) and replays its log, so adds acknowledged after the
        save are back too. Raises IndexFileError for a missing, foreign or other-version
        manifest or a corrupted file."""
        import vqindex
        directory = os.path.abspath(os.fspath(directory))
        m = read_manifest(directory)
        tpath = os.path.join(directory, m["template"]["file"])
        if not os.path.isfile(tpath) or sha256_file(tpath) != m["template"].get("sha256"):
            raise IndexFileError(f"{tpath}: template file missing or its sha256 differs from "
                                 f"the manifest")
        template = vqindex.read_index(tpath)
        if template.d != m["d"] or template.metric_type != m.get("metric_type"):
            raise IndexFileError(f"{directory}: manifest d/metric differ from the template's")
        inits = []
        for s in m["shards"]:
            path = os.path.join(directory, s["file"])
            if not os.path.isfile(path):
                raise IndexFileError(f"{path}: shard file named by the manifest is missing")
            inits.append(("file", (path, os.path.join(directory, s["log"]), s["sha256"])))
        obj = cls.__new__(cls)
        obj._init(template, m["num_shards"], address, num_cpus, max_restarts, timeout, work_dir,
                  max_concurrency, start_timeout, inits, seq=m.get("seq", 0))
        return obj

    def close(self):
        """Stop the shard actors and remove the temporary work_dir (unsaved data is lost)."""
        actors, self._actors = getattr(self, "_actors", []), []
        ray = getattr(self, "_ray", None)
        for a in actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:
                pass
        if getattr(self, "_own_work_dir", False) and os.path.isdir(self.work_dir):
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_shards(num_shards):
    if isinstance(num_shards, bool) or not isinstance(num_shards, (int, np.integer)):
        raise ArgumentTypeError(f"num_shards must be an integer >= 1, got "
                                f"{type(num_shards).__name__}")
    if num_shards < 1:
        raise ArgumentError(f"num_shards must be an integer >= 1, got {num_shards}")
    return int(num_shards)
