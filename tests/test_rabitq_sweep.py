"""The exact RaBitQ rescale search: the bucket-sorted sweep the encoder uses finds the same t
as the reference merge of the M sorted event lists (spec 6.1), with and without the window."""
import numpy as np
import pytest
from numba import njit

from vqindex.kernels import quantize as q


@njit(cache=True)
def _both(Y, maxe, t_start_frac, out):
    for r in range(Y.shape[0]):
        absy = np.abs(Y[r])
        amax = absy.max()
        if amax == 0.0:
            out[r, 0] = out[r, 1] = 0.0
            continue
        order = np.argsort(-absy, kind="mergesort")  # descending |y|
        t_end = (maxe + 10.0) / amax
        out[r, 0] = q.rabitq_best_t_merge(absy, order, maxe, t_end * t_start_frac, t_end)
        out[r, 1] = q.rabitq_best_t(absy, maxe, t_end * t_start_frac, t_end)


@pytest.mark.parametrize("d", [7, 50, 128, 200])
@pytest.mark.parametrize("bits,window", [(2, 0.0), (3, 0.0), (4, 0.0), (6, 0.0), (4, 0.52),
                                         (7, 0.75), (8, 0.77), (9, 0.81)])
def test_sorted_sweep_matches_merge(d, bits, window):
    rng = np.random.default_rng(d * 10 + bits)
    Y = rng.standard_normal((600, d))
    Y[:60, : d // 2] = 0.0                      # sparse rows
    Y[60:80] = np.round(Y[60:80] * 2) / 2       # repeated magnitudes (tied events)
    out = np.empty((Y.shape[0], 2))
    _both(Y, (1 << (bits - 1)) - 1, window, out)
    np.testing.assert_array_equal(out[:, 1], out[:, 0])
    assert np.mean(out[:, 1] > 0) > 0.5  # the sweep moves off t_start for most rows
