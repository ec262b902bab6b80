"""BlockQuant block codebooks C_{k,b} (spec `codecs.md` §7.2): construction, shipped files, cache.

A block codebook holds K = 2**(k*b) codewords in R^k, in N(0, 1) units, Lloyd-optimal for
N(0, I_k). Two variants:

- ``"multishell"``: plain Lloyd (nearest codeword, new codeword = mean of its cell).
- ``"sphere"``: one shell of unit codewords, spherical Lloyd on S^{k-1}: a sample goes to the
  codeword with the largest inner product, and the new codeword is the normalised **sum of the
  assigned samples** (not of their directions). Both steps increase sum_i max_c <x_i, c>, so the
  iteration is monotone for E<x, c(x)>, the quantity the per-vector scale alpha (§1.3) rewards.

Deterministic construction (§7.2), for the (k, b) pair and the variant:

1. ``rng = numpy.random.default_rng(1000*k + b)`` (PCG64).
2. ``init = product(levels_b, repeat=k)`` (itertools order) with ``levels_b`` the full symmetric
   set of 2**b scalar Gaussian Lloyd-Max levels of §2.1, sorted ascending.
3. Draw order from ``rng``: first the jitter ``0.02 * rng.standard_normal((K, k))`` (float64),
   then the samples ``rng.standard_normal((max(400*K, 10**5), k))`` (float64).
   ``init += jitter``; the sphere variant then normalises every row of ``init``.
4. 100 Lloyd iterations (assign, then update), float64 throughout; empty cells keep their
   codeword. The assignment is exact nearest-codeword search (accelerated with Hamerly's bounds,
   which skip points whose nearest codeword provably did not change); the update sums the
   cells serially in sample order.
5. Return float32 (K, k).

The numba float path may differ in the last bits across machines and library versions (and an
exact tie in the assignment may then break the other way). The shipped files in ``data/`` are
the reference; :func:`build_block_codebook` reproduces them to ~1e-6 on the machine that made them.

Lookup order of :func:`block_codebook`: (1) shipped file ``data/bq_k{k}_b{b}_{variant}.f32``
verified against ``data/manifest.json`` (size and sha256), (2) the user cache
``$VQINDEX_CACHE/codebooks/`` or ``~/.cache/vqindex/codebooks/`` (same file format, written
atomically; a file with the wrong size or a non-finite value is rebuilt), (3) build and write
to the cache. Files are raw little-endian float32, K*k values, row-major.
"""
import hashlib
import itertools
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = [
    "SCALAR_LEVELS",
    "DEFAULT_K",
    "BIG_K",
    "VARIANTS",
    "block_codebook",
    "build_block_codebook",
    "block_distortion",
    "nearest_codeword",
    "codebook_filename",
    "cache_dir",
    "read_codebook_file",
    "write_codebook_file",
]

# §2.1: positive half of the b-bit Gaussian Lloyd-Max levels (the set is symmetric).
SCALAR_LEVELS = {
    1: (0.7978845608,),
    2: (0.4527800346, 1.5104176085),
    3: (0.2450941789, 0.7560052812, 1.3439092785, 2.1519457045),
    4: (0.1283950299, 0.3880482995, 0.6567591185, 0.9423404565,
        1.2562311973, 1.6180463860, 2.0690172265, 2.7325895710),
}
# §7.2 defaults (K <= 512) and the `--big` options (K = 4096), as {b: k}.
DEFAULT_K = {1: 8, 2: 4, 3: 3, 4: 2}
BIG_K = {1: 12, 2: 6, 3: 4, 4: 3}
VARIANTS = ("multishell", "sphere")
MAX_BITS_PER_BLOCK = 12          # K <= 4096
N_ITERATIONS = 100
JITTER_STD = 0.02

DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST_PATH = DATA_DIR / "manifest.json"

_memo = {}
_memo_lock = threading.Lock()


# ----------------------------------------------------------------------------- validation
def _check_args(k, b, variant):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    ok_types = isinstance(k, (int, np.integer)) and isinstance(b, (int, np.integer))
    if not ok_types or not (b in SCALAR_LEVELS and k >= 1 and k * b <= MAX_BITS_PER_BLOCK):
        defaults = ", ".join(f"({DEFAULT_K[bb]}, {bb})" for bb in sorted(DEFAULT_K)) + ", (2, 3)"
        big = ", ".join(f"({BIG_K[bb]}, {bb})" for bb in sorted(BIG_K))
        raise ValueError(
            f"unsupported block codebook (k={k!r}, b={b!r}): b must be in {{1, 2, 3, 4}} and k an "
            f"integer >= 1 with k*b <= {MAX_BITS_PER_BLOCK} (K = 2**(k*b) <= 4096); "
            f"defaults (k, b) = {defaults}; big (K=4096) = {big}")
    return int(k), int(b)


def codebook_filename(k, b, variant="multishell"):
    """File name of a codebook, shipped or cached: ``bq_k{k}_b{b}_{variant}.f32``."""
    return f"bq_k{k}_b{b}_{variant}.f32"


def cache_dir():
    """User cache folder for built codebooks: ``$VQINDEX_CACHE/codebooks`` or
    ``~/.cache/vqindex/codebooks``."""
    root = os.environ.get("VQINDEX_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "vqindex"
    return base / "codebooks"


from ..kernels.lloyd import _assign_hamerly, _cell_sums, _half_gaps, _loosen_bounds


def nearest_codeword(x, codebook):
    """Index of the nearest codeword (squared L2, float32 scores, ties to the lower index) for
    each row of x. x: (n, k) float array; codebook: (K, k) float array. Returns (n,) int64."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    codebook = np.ascontiguousarray(codebook, dtype=np.float64)
    n = x.shape[0]
    assign = np.zeros(n, dtype=np.int64)
    bounds = np.zeros(n)
    _assign_hamerly(x, codebook, assign, bounds, bounds.copy(), np.zeros(len(codebook)), True)
    return assign


# ----------------------------------------------------------------------------- construction
def _product_init(k, b):
    half = np.asarray(SCALAR_LEVELS[b], dtype=np.float64)
    levels = np.concatenate([-half[::-1], half])           # 2**b levels, ascending
    return np.array(list(itertools.product(levels, repeat=k)), dtype=np.float64).reshape(-1, k)


def build_block_codebook(k, b, variant="multishell", n_iter=N_ITERATIONS, verbose=False):
    """Run the deterministic construction of §7.2 (see the module docstring).

    Returns a new writable float32 array of shape (2**(k*b), k). Takes seconds for K <= 512
    and minutes for K = 4096.
    """
    k, b = _check_args(k, b, variant)
    n_centers = 2 ** (k * b)
    rng = np.random.default_rng(1000 * k + b)
    centers = _product_init(k, b)
    centers += JITTER_STD * rng.standard_normal((n_centers, k))      # jitter first ...
    samples = rng.standard_normal((max(400 * n_centers, 10 ** 5), k))  # ... then the samples
    if variant == "sphere":
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        points = samples / np.linalg.norm(samples, axis=1, keepdims=True)  # max IP = nearest
    else:
        points = samples
    n = samples.shape[0]
    assign = np.zeros(n, dtype=np.int64)
    upper = np.full(n, np.inf)
    lower = np.zeros(n)
    for it in range(n_iter):
        scans = _assign_hamerly(points, centers, assign, upper, lower, _half_gaps(centers), it == 0)
        sums, counts = _cell_sums(samples, assign, n_centers)
        filled = counts > 0
        new = centers.copy()
        if variant == "sphere":
            norms = np.linalg.norm(sums, axis=1)
            filled &= norms > 0
            new[filled] = sums[filled] / norms[filled, None]
        else:
            new[filled] = sums[filled] / counts[filled, None]
        shift = np.linalg.norm(new - centers, axis=1)
        centers = new
        _loosen_bounds(assign, upper, lower, shift)
        if verbose:
            print(f"  iter {it + 1:3d}: full scans {scans:8d}, max shift {shift.max():.2e}, "
                  f"empty cells {int((counts == 0).sum())}", flush=True)
    return centers.astype(np.float32)


# ----------------------------------------------------------------------------- files
def write_codebook_file(path, codebook):
    """Write a codebook as raw little-endian float32 atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = np.ascontiguousarray(codebook, dtype="<f4").tobytes()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)        # mkstemp creates 0600; a codebook is not a secret
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_codebook_file(path, k, b, sha256=None):
    """Read a raw float32 codebook file, checking its size (and sha256 if given).

    Returns a float32 (2**(k*b), k) array, or raises ValueError saying what is wrong.
    """
    path = Path(path)
    raw = path.read_bytes()
    n_centers = 2 ** (k * b)
    expected = n_centers * k * 4
    if len(raw) != expected:
        raise ValueError(f"codebook file {path} has {len(raw)} bytes, expected {expected} "
                         f"(K={n_centers} x k={k} float32)")
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise ValueError(f"codebook file {path} has sha256 {digest}, but the manifest "
                             f"lists {sha256}; the file is corrupt or was changed")
    codebook = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(n_centers, k)
    if not np.isfinite(codebook).all():
        raise ValueError(f"codebook file {path} contains NaN or Inf")
    return codebook


def _load_manifest():
    if not MANIFEST_PATH.exists():
        return {}
    with open(MANIFEST_PATH, "r", encoding="utf-8") as f:
        return json.load(f)["files"]


def block_codebook(k, b, variant="multishell"):
    """Block codebook C_{k,b} of §7.2, float32 (2**(k*b), k), read-only, memoised in-process.

    k: block length; b: bits per coordinate (1..4), k*b <= 12; variant: "multishell" or
    "sphere". Looks in the shipped files, then the user cache, then builds (and caches) it.
    Raises ValueError for an unsupported (k, b) or a shipped file that fails its manifest.
    """
    k, b = _check_args(k, b, variant)
    key = (k, b, variant)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
        name = codebook_filename(k, b, variant)
        entry = _load_manifest().get(name)
        if entry is not None:
            codebook = read_codebook_file(DATA_DIR / name, k, b, sha256=entry["sha256"])
        else:
            cached = cache_dir() / name
            codebook = None
            if cached.exists():
                try:
                    codebook = read_codebook_file(cached, k, b)
                except ValueError:
                    codebook = None          # corrupt or truncated: rebuild and overwrite
            if codebook is None:
                codebook = build_block_codebook(k, b, variant)
                try:
                    write_codebook_file(cached, codebook)
                except OSError:
                    pass                     # a read-only home still gets the codebook
        codebook.setflags(write=False)
        _memo[key] = codebook
        return codebook


# ----------------------------------------------------------------------------- quality
def block_distortion(codebook, n=200000, seed=12345):
    """Mean squared error per coordinate of quantizing fresh N(0, I_k) samples with `codebook`.

    codebook: (K, k) float array. Each sample goes to its nearest codeword, then the codewords
    get the least-squares global gain s = sum<x, q> / sum||q||^2 (the biased scale rule §1.3 in
    the large-D limit). For a Lloyd-optimal multi-shell codebook s = 1 up to sampling noise
    (centroid condition), so this is its plain MSE; for a unit-norm "sphere" codebook s is the
    radius that the per-vector alpha supplies. Samples: default_rng(seed).standard_normal((n, k)).
    Returns a float.
    """
    codebook = np.ascontiguousarray(codebook, dtype=np.float64)
    if codebook.ndim != 2:
        raise ValueError(f"codebook must be 2-D (K, k); got shape {codebook.shape}")
    k = codebook.shape[1]
    x = np.random.default_rng(seed).standard_normal((n, k))
    q = codebook[nearest_codeword(x, codebook)]
    gain = np.einsum("ij,ij->", x, q) / np.einsum("ij,ij->", q, q)
    return float(np.mean((x - gain * q) ** 2))
