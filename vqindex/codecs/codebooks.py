"""Scalar Lloyd-Max codebooks (spec 2): the Gaussian limit and the exact finite-D sphere law.

Levels are returned in N(0, 1) units ("z units": coordinates of sqrt(D) * unit vector), full and
sorted ascending, with boundaries = midpoints (spec 1.5: idx = #{boundaries <= value}).
"""
import functools
import math

import numpy as np

__all__ = ["gaussian_levels", "sphere_levels", "boundaries_of", "uniform_grid_levels"]

# Spec 2.1, positive halves (b = 1..4), agree with FAISS kLloydMaxCentroids to 1e-9.
_SPEC_GAUSS = {
    1: [0.7978845608],
    2: [0.4527800346, 1.5104176085],
    3: [0.2450941789, 0.7560052812, 1.3439092785, 2.1519457045],
    4: [0.1283950299, 0.3880482995, 0.6567591185, 0.9423404565, 1.2562311973,
        1.6180463860, 2.0690172265, 2.7325895710],
}

_erf = np.frompyfunc(math.erf, 1, 1)


def _phi(t):
    return np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def _cdf(t):
    return 0.5 * (1.0 + _erf(t / math.sqrt(2.0)).astype(np.float64))


def _symmetric(pos):
    pos = np.asarray(pos, dtype=np.float64)
    return np.concatenate([-pos[::-1], pos])


@functools.lru_cache(maxsize=None)
def _gaussian_levels(bits):
    if bits in _SPEC_GAUSS:
        return _symmetric(_SPEC_GAUSS[bits])
    k = 1 << bits
    # Panter-Dite start (point density ~ pdf^(1/3): quantiles of N(0, 3)), then exact Lloyd.
    u = (np.arange(k) + 0.5) / k
    levels = math.sqrt(3.0) * np.array([_norm_ppf(p) for p in u])
    for _ in range(20000):
        b = 0.5 * (levels[1:] + levels[:-1])
        lo = np.concatenate([[-np.inf], b])
        hi = np.concatenate([b, [np.inf]])
        pdf_lo = np.where(np.isinf(lo), 0.0, _phi(np.where(np.isinf(lo), 0.0, lo)))
        pdf_hi = np.where(np.isinf(hi), 0.0, _phi(np.where(np.isinf(hi), 0.0, hi)))
        mass = _cdf(hi) - _cdf(lo)
        new = (pdf_lo - pdf_hi) / np.maximum(mass, 1e-300)
        new = 0.5 * (new - new[::-1])  # keep exact symmetry
        if np.max(np.abs(new - levels)) < 1e-13:
            levels = new
            break
        levels = new
    return levels


def _norm_ppf(p):
    """Inverse standard normal CDF by bisection on erf (only used for initialisation)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def gaussian_levels(bits):
    """The 2^bits Lloyd-Max levels for N(0, 1), float64 ascending (spec 2.1)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"scalar codebooks exist for 1..8 bits, got {bits}")
    return _gaussian_levels(int(bits)).copy()


@functools.lru_cache(maxsize=None)
def _sphere_levels(bits, dim):
    # Density of z = sqrt(D) * (one coordinate of a uniform point on S^{D-1}):
    # f(z) ~ (1 - z^2/D)^((D-3)/2) on |z| <= sqrt(D). Integrated numerically on a fine grid.
    zmax = min(math.sqrt(dim), 14.0)
    grid = np.linspace(-zmax, zmax, 400001)
    with np.errstate(divide="ignore"):
        logf = 0.5 * (dim - 3) * np.log1p(-np.minimum(grid * grid / dim, 1.0))
    f = np.exp(logf - logf.max())
    f[~np.isfinite(f)] = 0.0
    dz = grid[1] - grid[0]
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * dz)])
    g = f * grid
    mom = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * dz)])
    total = cdf[-1]
    cdf /= total
    mom /= total
    levels = _gaussian_levels(bits).copy()
    if levels[-1] >= zmax:
        # small D: the Gaussian levels fall outside the support [-sqrt(D), sqrt(D)] and their
        # cells would be empty; start from the quantiles of the true law instead
        k = levels.shape[0]
        levels = np.interp((np.arange(k) + 0.5) / k, cdf, grid)
        levels = 0.5 * (levels - levels[::-1])
    for _ in range(5000):
        b = 0.5 * (levels[1:] + levels[:-1])
        edges = np.concatenate([[-zmax], b, [zmax]])
        c = np.interp(edges, grid, cdf)
        m = np.interp(edges, grid, mom)
        mass = c[1:] - c[:-1]
        # an empty cell keeps its level (its centroid is undefined)
        new = np.where(mass > 1e-15, (m[1:] - m[:-1]) / np.maximum(mass, 1e-300), levels)
        new = 0.5 * (new - new[::-1])
        if np.max(np.abs(new - levels)) < 1e-12:
            levels = new
            break
        levels = new
    return levels


def sphere_levels(bits, dim):
    """Exact finite-D Lloyd-Max levels for a coordinate of a uniform point on S^{dim-1}, in z units.

    Spec 2.2 (TurboQuant's construction): multiply by 1/sqrt(dim) for unit-sphere units.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"scalar codebooks exist for 1..8 bits, got {bits}")
    if dim < 3:
        return gaussian_levels(bits)
    return _sphere_levels(int(bits), int(dim)).copy()


def boundaries_of(levels):
    """Midpoints between adjacent sorted levels (len(levels) - 1 values)."""
    levels = np.asarray(levels, dtype=np.float64)
    return 0.5 * (levels[1:] + levels[:-1])


def uniform_grid_levels(bits):
    """RaBitQ's grid {j - (2^B - 1)/2 : j = 0..2^B-1} (spec 6.1)."""
    k = 1 << bits
    return np.arange(k, dtype=np.float64) - (k - 1) / 2.0
