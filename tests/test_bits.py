"""Bitstream packing (spec 1.5): every width's fast path equals the plain LSB-first stream."""
import numpy as np
import pytest

from vqindex.kernels import bits


def _reference(idx, shift, width, nbytes):
    out = np.zeros((idx.shape[0], nbytes), np.uint8)
    for r in range(idx.shape[0]):
        acc = 0
        for i in range(idx.shape[1]):
            acc |= ((int(idx[r, i]) >> shift) & ((1 << width) - 1)) << (i * width)
        out[r] = np.frombuffer(acc.to_bytes(nbytes, "little"), np.uint8)
    return out


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 16])
@pytest.mark.parametrize("m", [1, 3, 7, 8, 9, 50, 129])
@pytest.mark.parametrize("shift", [0, 2])
def test_pack_matches_bitstream_and_unpack_inverts(width, m, shift):
    if width + shift > 16:
        pytest.skip("fields are uint16")
    rng = np.random.default_rng(width * 1000 + m)
    idx = rng.integers(0, 1 << 16, (23, m)).astype(np.uint16)
    nbytes = (m * width + 7) // 8
    out = np.full((23, 3 + nbytes + 2), 0xAB, np.uint8)  # guard bytes either side
    bits.pack_fields_shifted(idx, shift, width, out, 3)
    np.testing.assert_array_equal(out[:, 3:3 + nbytes], _reference(idx, shift, width, nbytes))
    assert np.all(out[:, :3] == 0xAB) and np.all(out[:, 3 + nbytes:] == 0xAB)
    back = np.empty((23, m), np.uint16)
    bits.unpack_fields(out, 3, width, m, back)
    np.testing.assert_array_equal(back, (idx >> shift) & ((1 << width) - 1))
