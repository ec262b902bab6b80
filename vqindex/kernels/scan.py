"""The one LUT scan shared by every codec (spec 1.4).

A code record is a set of sections; section s holds `count` groups of `width` bits (LSB-first
bitstream at byte `byte_off`); group j of section s adds lut[lut_off + j*nent + value] to
accumulator `acc`. The estimate of <y, v> is sum_a scale_a * acc_a with per-vector scales.

`secs` is int64 (S, 6): byte_off, width, count, acc, lut_off, nent.
"""
import numpy as np
from numba import njit, prange

from .bits import read_field

MAX_ACC = 2


@njit(cache=True, nogil=True)
def lut_dot(row, secs, lut, accs):
    """Fill accs[:] with the LUT sums of one code row."""
    for a in range(accs.shape[0]):
        accs[a] = 0.0
    for s in range(secs.shape[0]):
        off = secs[s, 0]
        width = secs[s, 1]
        count = secs[s, 2]
        lo = secs[s, 4]
        nent = secs[s, 5]
        # four partial sums break the add dependency chain
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        if width == 8:
            j = 0
            while j + 4 <= count:
                a0 += lut[lo + j * nent + row[off + j]]
                a1 += lut[lo + (j + 1) * nent + row[off + j + 1]]
                a2 += lut[lo + (j + 2) * nent + row[off + j + 2]]
                a3 += lut[lo + (j + 3) * nent + row[off + j + 3]]
                j += 4
            while j < count:
                a0 += lut[lo + j * nent + row[off + j]]
                j += 1
        elif width == 4:
            nb = count >> 1
            j = 0
            while j + 2 <= nb:
                b0 = row[off + j]
                b1 = row[off + j + 1]
                a0 += lut[lo + (2 * j) * 16 + (b0 & 15)]
                a1 += lut[lo + (2 * j + 1) * 16 + (b0 >> 4)]
                a2 += lut[lo + (2 * j + 2) * 16 + (b1 & 15)]
                a3 += lut[lo + (2 * j + 3) * 16 + (b1 >> 4)]
                j += 2
            while j < nb:
                b0 = row[off + j]
                a0 += lut[lo + (2 * j) * 16 + (b0 & 15)]
                a1 += lut[lo + (2 * j + 1) * 16 + (b0 >> 4)]
                j += 1
            if count & 1:
                a2 += lut[lo + (count - 1) * 16 + (row[off + (count >> 1)] & 15)]
        else:
            for j in range(count):
                a0 += lut[lo + j * nent + read_field(row, off, j * width, width)]
        acc = (a0 + a1) + (a2 + a3)
        accs[secs[s, 3]] += acc


@njit(cache=True, nogil=True, inline="always")
def affine(accs, sf_row, n_acc):
    """sum_a scale_a * acc_a (the estimate of <y, v> in the rotated space)."""
    ip = np.float32(0.0)
    for a in range(n_acc):
        ip += sf_row[a] * accs[a]
    return ip


@njit(cache=True, nogil=True, parallel=True)
def estimate_dense(codes, secs, luts, sf, n_acc, qadd, a_ell, a_ip, out):
    """out[q, i] = qadd[q] + a_ell * ell_i + a_ip * <y_i, v_q>^ for all queries and codes.

    luts: float32 (nq, L); sf: float32 (n, n_acc + 2) = [scales..., ell, f_c];
    a_ell/a_ip select the metric (L2: 1, -2; IP: 0, 1). f_c is added with weight (1 - a_ell).
    """
    nq = luts.shape[0]
    n = codes.shape[0]
    for q in prange(nq):
        accs = np.zeros(MAX_ACC, np.float32)
        lut = luts[q]
        for i in range(n):
            lut_dot(codes[i], secs, lut, accs)
            ip = affine(accs, sf[i], n_acc)
            out[q, i] = (qadd[q] + a_ell * sf[i, n_acc] + (1.0 - a_ell) * sf[i, n_acc + 1]
                         + a_ip * ip)


@njit(cache=True, nogil=True, parallel=True)
def decode_section(codes, byte_off, width, count, table, scale, out):
    """out[r, i*c:(i+1)*c] += scale[r] * table[field_i(r)] for the fields of one section.

    table: float32 (2**width, c); out: float32 (n, >= count*c) (coordinates past out's width,
    i.e. padding, are dropped).
    """
    n = codes.shape[0]
    c = table.shape[1]
    dim = out.shape[1]
    for r in prange(n):
        row = codes[r]
        s = scale[r]
        for i in range(count):
            f = read_field(row, byte_off, i * width, width)
            for t in range(c):
                j = i * c + t
                if j < dim:
                    out[r, j] += s * table[f, t]
