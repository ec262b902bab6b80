"""Shared fixtures and helpers of the codec tests.

* ``data_dir``: the real-data directory (``$VQINDEX_DATA``, else ``<repo>/../shared/data``);
  tests that need it are skipped with a clear reason when it is absent.
* ``unit_vectors`` / ``gauss``: seeded random data (spec 9 protocol: iid N(0, I) rows, normalised).
* ``make_codec``: ``vqindex.codec_factory`` plus a per-session cache of the rotation objects.
  A dense Haar rotation costs one D x D QR (seconds at D = 1536 on a loaded 2-core box), and
  every codec built with the same (D, kind, seed) draws exactly the same matrix, so sharing the
  Rotation object changes nothing but the run time.
"""
import contextlib
import ctypes
import os
from pathlib import Path

import numpy as np
import pytest

import vqindex
from vqindex.codecs import Rotation

REPO = Path(__file__).resolve().parents[1]


def _data_path():
    env = os.environ.get("VQINDEX_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


#: the real-data directory for module-level use (``from conftest import DATA_DIR``)
DATA_DIR = _data_path()


@pytest.fixture
def parallel_always(monkeypatch):
    """Every numba call that may run in parallel does (no serial shortcut for small work,
    kernels._threads.PARALLEL_MIN_WORK), so a thread-invariance test on small data really
    runs the parallel twins."""
    from vqindex.kernels import _threads
    monkeypatch.setattr(_threads, "PARALLEL_MIN_WORK", 0)


@pytest.fixture(scope="session")
def data_dir():
    p = _data_path()
    if not p.is_dir():
        pytest.skip(f"real-data directory {p} not found (set $VQINDEX_DATA to the shared/data folder)")
    return p


def load_angular(data_dir, name, n_train=None, n_test=None):
    """(train, test, neighbors) of an ann-benchmarks HDF5 file, rows L2-normalised, float32."""
    h5py = pytest.importorskip("h5py", reason="h5py is needed to read the real data sets")
    path = Path(data_dir) / name
    if not path.is_file():
        pytest.skip(f"data file {path} not found")
    with h5py.File(path, "r") as f:
        train = np.asarray(f["train"][: n_train], dtype=np.float32)
        test = np.asarray(f["test"][: n_test], dtype=np.float32)
        nbrs = np.asarray(f["neighbors"][: n_test]) if "neighbors" in f else None
    train /= np.maximum(np.linalg.norm(train, axis=1, keepdims=True), 1e-30)
    test /= np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-30)
    return train, test, nbrs


def gauss(n, d, seed):
    """iid N(0, 1) float32 (n, d) with a fixed seed."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def unit_vectors(n, d, seed):
    """n unit vectors uniform on S^{d-1} (float32), fixed seed (the spec 9 protocol)."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def sparse_unit_vectors(n, d, seed, density=0.05):
    """Unit vectors with a fraction `density` of non-zeros (at least one), spec 1.2."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    mask = rng.random((n, d)) < density
    mask[np.arange(n), rng.integers(0, d, n)] = True
    x *= mask
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


# ------------------------------------------------------------------ BLAS threads
def _openblas_setter():
    """(get, set) of the BLAS library numpy uses, or None (then nothing is changed)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for lib in sorted(libs):
        try:
            h = ctypes.CDLL(lib)
        except OSError:
            continue
        for get_name, set_name in (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                                   ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                                   ("openblas_get_num_threads", "openblas_set_num_threads")):
            if hasattr(h, get_name) and hasattr(h, set_name):
                get, set_ = getattr(h, get_name), getattr(h, set_name)
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                return get, set_
    return None


@contextlib.contextmanager
def single_blas_thread():
    """Run a LAPACK-heavy block (the Haar QR) on one BLAS thread.

    On a 2-core machine shared with numba's pool, a multi-threaded QR of 1536 x 1536 takes
    10-15 s instead of < 1 s (oversubscription).
    """
    np.linalg.norm(np.ones(2))  # make sure the BLAS library is loaded
    fns = _openblas_setter()
    if fns is None:
        yield
        return
    get, set_ = fns
    old = get()
    set_(1)
    try:
        yield
    finally:
        set_(old)


# ------------------------------------------------------------------ codecs
_ROTATIONS = {}


def shared_rotation(dim, kind, seed, rounds=None):
    """One Rotation object per (dim, kind, seed, rounds) per session, matrix precomputed."""
    key = (int(dim), kind, int(seed), rounds)
    rot = _ROTATIONS.get(key)
    if rot is None:
        rot = Rotation(dim, kind=kind, seed=seed, rounds=rounds)
        if kind == "haar":
            with single_blas_thread():
                rot.matrix()
        _ROTATIONS[key] = rot
    return rot


def share_rotations(codec):
    """Swap the codec's Rotation objects for equal, cached ones (identical matrices)."""
    r = codec.rotation
    p = r.params()
    codec.rotation = shared_rotation(p["dim"], p["kind"], p["seed"], p["rounds"])
    proj = getattr(codec, "_proj", None)
    if isinstance(proj, Rotation):
        q = proj.params()
        codec._proj = shared_rotation(q["dim"], q["kind"], q["seed"], q["rounds"])
    return codec


def make_codec(d, name, rotation="haar", seed=0):
    """``vqindex.codec_factory(d, name, rotation, seed)`` with shared rotation objects."""
    return share_rotations(vqindex.codec_factory(d, name, rotation=rotation, seed=seed))


def ell_of(codec, codes):
    """The l2 term ell of spec 1.4 from the stored factors (ell, or norm^2 for TurboQuant)."""
    fac = codec.factors(codes).astype(np.float64)
    names = list(codec.factor_names)
    if "ell" in names:
        return fac[:, names.index("ell")]
    return fac[:, names.index("norm")] ** 2


def pad(x, D):
    """Zero-pad rows of x to D coordinates."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] == D:
        return x
    return np.concatenate([x, np.zeros((x.shape[0], D - x.shape[1]))], axis=1)
