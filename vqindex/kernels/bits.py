"""Little-endian bitstream packing (spec 1.5): field i of width w at bit offset i*w, LSB first."""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def read_field(row, byte_off, bit, width):
    """Read the `width`-bit field (width <= 16) at bit offset `bit` of the section at `byte_off`."""
    pos = byte_off + (bit >> 3)
    sh = bit & 7
    val = np.uint32(row[pos])
    need = sh + width
    if need > 8:
        val |= np.uint32(row[pos + 1]) << 8
        if need > 16:
            val |= np.uint32(row[pos + 2]) << 16
    return (val >> sh) & ((np.uint32(1) << width) - 1)


@njit(cache=True, nogil=True, parallel=True)
def pack_fields(idx, width, out, byte_off):
    """Write idx (n, m) (unsigned ints < 2^width) as an LSB-first bitstream into out[:, byte_off:]."""
    pack_fields_shifted(idx, 0, width, out, byte_off)


@njit(cache=True, nogil=True, parallel=True)
def pack_fields_shifted(idx, shift, width, out, byte_off):
    """pack_fields of (idx >> shift) & (2^width - 1): one bit plane of wider values, say."""
    n, m = idx.shape
    mask = np.uint64((1 << width) - 1)
    sh = np.uint64(shift)
    nbytes = (m * width + 7) // 8
    for r in prange(n):
        for b in range(nbytes):
            out[r, byte_off + b] = 0
        acc = np.uint64(0)
        nbits = 0
        pos = byte_off
        for i in range(m):
            acc |= ((np.uint64(idx[r, i]) >> sh) & mask) << np.uint64(nbits)
            nbits += width
            while nbits >= 8:
                out[r, pos] = np.uint8(acc & np.uint64(255))
                acc >>= np.uint64(8)
                nbits -= 8
                pos += 1
        if nbits > 0:
            out[r, pos] = np.uint8(acc & np.uint64(255))


@njit(cache=True, nogil=True, parallel=True)
def unpack_fields(codes, byte_off, width, m, out):
    """Inverse of pack_fields: out (n, m) uint16 from the bitstream at codes[:, byte_off:]."""
    n = codes.shape[0]
    for r in prange(n):
        row = codes[r]
        for i in range(m):
            out[r, i] = read_field(row, byte_off, i * width, width)
