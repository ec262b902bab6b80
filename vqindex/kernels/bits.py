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


@njit(cache=True, nogil=True)
def _pack_groups(row, dst, shift, width, g, gbytes, ngroups):
    """Bitstream of one row, g fields (= gbytes whole bytes) at a time, then the tail."""
    mask = np.uint64((1 << width) - 1)
    sh = np.uint64(shift)
    for q in range(ngroups):
        acc = np.uint64(0)
        for k in range(g):
            acc |= ((np.uint64(row[q * g + k]) >> sh) & mask) << np.uint64(k * width)
        for b in range(gbytes):
            dst[q * gbytes + b] = np.uint8((acc >> np.uint64(8 * b)) & np.uint64(255))
    acc = np.uint64(0)
    nbits = 0
    pos = ngroups * gbytes
    for i in range(ngroups * g, row.shape[0]):
        acc |= ((np.uint64(row[i]) >> sh) & mask) << np.uint64(nbits)
        nbits += width
    while nbits > 0:
        dst[pos] = np.uint8(acc & np.uint64(255))
        acc >>= np.uint64(8)
        nbits -= 8
        pos += 1


@njit(cache=True, nogil=True, parallel=True)
def pack_fields_shifted(idx, shift, width, out, byte_off):
    """pack_fields of (idx >> shift) & (2^width - 1): one bit plane of wider values, say."""
    n, m = idx.shape
    mask = np.uint64((1 << width) - 1)
    sh = np.uint64(shift)
    nbytes = (m * width + 7) // 8
    if 8 % width == 0:  # 1, 2, 4, 8 bits: whole fields per byte, no carry between bytes
        per = 8 // width
        full = m // per
        mask32 = np.uint32((1 << width) - 1)
        sh32 = np.uint32(shift)
        for r in prange(n):
            row = idx[r]
            dst = out[r, byte_off:byte_off + full]
            if width == 4:
                for b in range(full):
                    lo = (np.uint32(row[2 * b]) >> sh32) & mask32
                    hi = (np.uint32(row[2 * b + 1]) >> sh32) & mask32
                    dst[b] = np.uint8(lo | (hi << np.uint32(4)))
            elif width == 8:
                for b in range(full):
                    dst[b] = np.uint8((np.uint32(row[b]) >> sh32) & mask32)
            else:
                for b in range(full):
                    v = np.uint32(0)
                    for k in range(per):
                        f = (np.uint32(row[b * per + k]) >> sh32) & mask32
                        v |= f << np.uint32(k * width)
                    dst[b] = np.uint8(v)
            if full * per < m:
                v = np.uint32(0)
                for k in range(m - full * per):
                    f = (np.uint32(idx[r, full * per + k]) >> sh32) & mask32
                    v |= f << np.uint32(k * width)
                out[r, byte_off + full] = np.uint8(v)
        return
    # groups of g fields fill g*width/8 whole bytes (g = 8 / gcd(width, 8)): 3, 5, 7 bits ->
    # 8 fields in 3, 5, 7 bytes; 6 -> 4 in 3; 12 -> 2 in 3 (any width with g*width <= 64)
    g = 8
    while g > 1 and (g // 2) * width % 8 == 0:
        g //= 2
    if g * width <= 64:
        gbytes = g * width // 8
        ngroups = m // g
        for r in prange(n):
            _pack_groups(idx[r], out[r, byte_off:byte_off + nbytes], shift, width, g, gbytes,
                         ngroups)
        return
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
