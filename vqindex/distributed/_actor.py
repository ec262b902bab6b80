"""One shard: a plain vqindex index inside a Ray actor, with its file, its log and a lock.

`ShardActor` is an ordinary class; `ShardedIndex` wraps it with `ray.remote` (so importing this
module does not import ray). The actor is threaded: searches run concurrently under a shared
lock, and mutations (add, remove, reset, rebase) take it exclusively, so every search sees the
shard in one consistent state.

Durable state of shard i is three files:

* its base file, a vqindex file (the trained template at first, the last saved file after a
  `save`);
* its log (`_log.ShardLog`) next to the base file: every acknowledged mutation since;
* `<work_dir>/shard-<i>.state.json`, naming the current base file and log (written
  atomically whenever they change).

When Ray restarts a dead actor (`max_restarts`) it runs `__init__` again with the same
arguments; the state file then exists, so the shard reloads its base file and replays its log
instead of starting from the arguments. Each mutation carries the caller's operation number
(`seq`); a retried call (`max_task_retries`) whose record is already in the log is answered
from the log, so a retry never applies a mutation twice.
"""
import dataclasses
import json
import os
import threading
import time

import numpy as np

from ._log import OP_ADD, OP_REMOVE, OP_RESET, ShardLog
from ._manifest import fsync_dir, sha256_file, write_bytes_atomic

__all__ = ["ShardActor", "RWLock", "live_ids"]

_RESULTS_KEPT = 64


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_read(self):
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self):
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self):
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_write(self):
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class _Read:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire_read()

    def __exit__(self, *exc):
        self.lock.release_read()


class _Write(_Read):
    def __enter__(self):
        self.lock.acquire_write()

    def __exit__(self, *exc):
        self.lock.release_write()


def live_ids(index):
    """int64 ids stored in `index` (any vqindex index kind)."""
    ids = getattr(index, "ids", None)
    if ids is None and hasattr(index, "base"):
        ids = getattr(index.base, "ids", None)
    if ids is None:
        raise TypeError(f"{type(index).__name__} does not expose its ids")
    return np.asarray(ids, np.int64)


def present_ids(index, ids):
    """bool (len(ids),): which ids are stored (the index's id lookup when it has one)."""
    if index.ntotal == 0 or len(ids) == 0:
        return np.zeros(len(ids), bool)
    for obj in (index, getattr(index, "base", None)):
        lookup = getattr(obj, "_positions_of", None)
        if lookup is not None:
            try:
                return np.asarray(lookup(ids, must_exist=False)) >= 0
            except TypeError:
                break
    return np.isin(ids, live_ids(index))


def _writable(x):
    """Arrays that arrive from the object store are read-only views of shared memory; the
    index kernels expect writable input (a read-only float32 batch fails to compile in
    kernels.rows.check_rows), so such arrays are copied once."""
    return x if x is None or x.flags.writeable else np.array(x)


def _rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


class ShardActor:
    """Shard `shard` of `num_shards`; see the module docstring.

    init_kind "bytes": init_data is the template's vqindex file bytes (a new index);
    init_kind "file": init_data is (base_path, log_path, sha256) of a saved directory's shard.
    """

    def __init__(self, shard, num_shards, d, work_dir, init_kind, init_data):
        # an exception raised here would reach the caller only as Ray's ActorDiedError text;
        # kept instead and raised by every call, so the caller sees the real error
        self._init_error = None
        try:
            self._setup(shard, num_shards, d, work_dir, init_kind, init_data)
        except Exception as exc:
            self._init_error = exc

    def _check(self):
        if self._init_error is not None:
            raise self._init_error

    def _setup(self, shard, num_shards, d, work_dir, init_kind, init_data):
        import vqindex
        self.shard, self.num_shards, self.d = int(shard), int(num_shards), int(d)
        self.work_dir = os.fspath(work_dir)
        os.makedirs(self.work_dir, exist_ok=True)
        self._state_path = os.path.join(self.work_dir, f"shard-{self.shard:04d}.state.json")
        self._lock = RWLock()
        self._results = {}
        self.restarted = os.path.exists(self._state_path)
        if self.restarted:
            with open(self._state_path, "rb") as f:
                state = json.loads(f.read().decode("utf-8"))
        elif init_kind == "bytes":
            base = os.path.join(self.work_dir, f"shard-{self.shard:04d}.g0.vqi")
            write_bytes_atomic(base, init_data)
            log = os.path.join(self.work_dir, f"shard-{self.shard:04d}.g0.log")
            if os.path.exists(log):
                os.unlink(log)
            state = {"base": base, "log": log, "base_seq": 0}
        else:
            base, log, sha = init_data
            got = sha256_file(base)
            if got != sha:
                raise vqindex.IndexFileError(f"{base}: sha256 {got} differs from the manifest's "
                                             f"{sha}: the shard file is corrupted or replaced")
            state = {"base": os.path.abspath(base), "log": os.path.abspath(log), "base_seq": 0}
        self.index = vqindex.read_index(state["base"])
        self.base_path, self.base_seq = state["base"], int(state["base_seq"])
        self.seq = self.base_seq
        self.log = ShardLog(state["log"], self.d)
        self._replay()
        if not self.restarted:
            self._write_state(state)

    # ------------------------------------------------------------------ durability
    def _write_state(self, state):
        data = json.dumps(state, sort_keys=True).encode("utf-8")
        write_bytes_atomic(self._state_path, data)

    def _replay(self):
        for op, seq, ids, vectors in self.log.replay():
            if seq <= self.seq:
                continue
            if op == OP_ADD:
                self.index.add_with_ids(np.array(vectors), np.array(ids))
                result = int(ids.shape[0])
            elif op == OP_REMOVE:
                result = int(self.index.remove_ids(ids))
            else:
                self.index.reset()
                result = 0
            self._remember(seq, result)

    def _remember(self, seq, result):
        self.seq = seq
        self._results[seq] = result
        if len(self._results) > _RESULTS_KEPT:
            del self._results[min(self._results)]

    def _done(self, seq):
        """(True, result) when operation `seq` is already applied (a retried call)."""
        if seq <= self.seq:
            return True, self._results.get(seq, 0)
        return False, None

    # ------------------------------------------------------------------ mutations
    def check_new(self, ids):
        """The first of `ids` already stored here, or None."""
        self._check()
        with _Read(self._lock):
            hit = present_ids(self.index, ids)
        return int(ids[hit][0]) if hit.any() else None

    def add(self, seq, x, ids, num_threads=None):
        """add_with_ids, logged (fsync) before returning; returns the rows added."""
        self._check()
        with _Write(self._lock):
            done, result = self._done(seq)
            if done:
                return result
            x, ids = _writable(x), _writable(ids)
            self.index.add_with_ids(x, ids, num_threads=num_threads)
            try:
                self.log.append(OP_ADD, seq, ids, self._logged_vectors(x))
            except BaseException:
                self.index.remove_ids(ids)
                raise
            self._remember(seq, int(ids.shape[0]))
            return int(ids.shape[0])

    def _logged_vectors(self, x):
        return np.ascontiguousarray(x, np.float32).reshape(-1, self.d)

    def remove(self, seq, ids=None, selector=None):
        """remove_ids by an id array or a selector with is_member(id); logged; the count."""
        self._check()
        with _Write(self._lock):
            done, result = self._done(seq)
            if done:
                return result
            if selector is not None:
                stored = live_ids(self.index)
                ids = np.array([i for i in stored.tolist() if selector.is_member(int(i))],
                               np.int64)
            ids = np.asarray(ids, np.int64)
            if ids.shape[0] == 0 or self.index.ntotal == 0:
                self._remember(seq, 0)
                return 0
            count = int(self.index.remove_ids(ids))
            self.log.append(OP_REMOVE, seq, ids)
            self._remember(seq, count)
            return count

    def reset(self, seq):
        """Remove every vector (training kept); logged."""
        self._check()
        with _Write(self._lock):
            done, result = self._done(seq)
            if done:
                return result
            self.index.reset()
            self.log.append(OP_RESET, seq)
            self._remember(seq, 0)
            return 0

    def rebase(self, seq, file_bytes):
        """Replace an empty shard by a new trained template (after ShardedIndex.train)."""
        self._check()
        import vqindex
        with _Write(self._lock):
            done, _ = self._done(seq)
            if done:
                return 0
            if self.index.ntotal:
                raise vqindex.ArgumentError(f"shard {self.shard} holds {self.index.ntotal} "
                                            f"vectors; only an empty shard can be retrained")
            base = os.path.join(self.work_dir, f"shard-{self.shard:04d}.s{seq}.vqi")
            write_bytes_atomic(base, file_bytes)
            index = vqindex.read_index(base)
            self._switch(base, os.path.join(self.work_dir, f"shard-{self.shard:04d}.s{seq}.log"),
                         seq)
            self.index = index
            self._remember(seq, 0)
            return 0

    def _switch(self, base, log_path, base_seq):
        """Make `base` (already written) and a fresh log at log_path the durable state."""
        if os.path.exists(log_path):
            os.unlink(log_path)
        new_log = ShardLog(log_path, self.d)
        self._write_state({"base": base, "log": log_path, "base_seq": base_seq})
        old_base, old_log = self.base_path, self.log.path
        self.log.close()
        self.log, self.base_path, self.base_seq = new_log, base, base_seq
        for path in (old_base, old_log):  # only our own working files; saved dirs are kept
            if os.path.dirname(path) == self.work_dir and path not in (base, log_path):
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def save(self, directory, generation):
        """Write this shard's file into `directory` and start a fresh log beside it."""
        self._check()
        with _Read(self._lock):  # writers excluded; searches go on
            stem = os.path.join(os.fspath(directory), f"shard-{self.shard:04d}.g{generation}")
            import vqindex
            vqindex.write_index(self.index, stem + ".vqi")
            fsync_dir(os.fspath(directory))
            info = {"file": os.path.basename(stem + ".vqi"), "log": os.path.basename(stem + ".log"),
                    "bytes": os.path.getsize(stem + ".vqi"), "sha256": sha256_file(stem + ".vqi"),
                    "ntotal": int(self.index.ntotal)}
            self._switch(stem + ".vqi", stem + ".log", self.seq)
            return info

    # ------------------------------------------------------------------ queries
    def search(self, x, k, params, flt):
        """(D, I, (wall seconds, CPU seconds of this thread) inside the index) of
        index.search with this shard's filter."""
        self._check()
        with _Read(self._lock):
            t0, c0 = time.perf_counter(), time.thread_time()
            D, I = self.index.search(_writable(x), k,
                                     params=dataclasses.replace(params, filter=flt))
            return D, I, (time.perf_counter() - t0, time.thread_time() - c0)

    def range_search(self, x, radius, params, flt):
        """(lims, D, I, seconds inside the index) of index.range_search."""
        self._check()
        with _Read(self._lock):
            t0 = time.perf_counter()
            lims, D, I = self.index.range_search(_writable(x), radius,
                                                 params=dataclasses.replace(params, filter=flt))
            return lims, D, I, time.perf_counter() - t0

    def ntotal(self):
        """Vectors stored in this shard."""
        self._check()
        return int(self.index.ntotal)

    def reconstruct_batch(self, ids):
        """float32 (len(ids), d): index.reconstruct of each id (KeyError if one is absent)."""
        self._check()
        with _Read(self._lock):
            if len(ids) == 0:
                return np.zeros((0, self.d), np.float32)
            return np.stack([np.asarray(self.index.reconstruct(int(i)), np.float32)
                             for i in ids])

    def info(self):
        """ntotal, max id, operation number, process RSS, file and log sizes, pid."""
        self._check()
        with _Read(self._lock):
            n = int(self.index.ntotal)
            ids = live_ids(self.index) if n else np.zeros(0, np.int64)
            return {"shard": self.shard, "ntotal": n,
                    "max_id": int(ids.max()) if ids.size else -1, "seq": int(self.seq),
                    "rss_bytes": _rss_bytes(), "log_bytes": int(self.log.nbytes),
                    "base": self.base_path, "pid": os.getpid(), "restarted": self.restarted}

    def stall(self, seconds):
        """Test hook: hold the shard exclusively for `seconds` (a slow or hung shard)."""
        self._check()
        with _Write(self._lock):
            time.sleep(float(seconds))
        return True
