/*
 * fastscan.c -- 4-bit LUT "fast-scan" kernels for vqindex, loaded with ctypes.
 *
 * Plain C; the SIMD kernels are functions compiled with __attribute__((target(...)))
 * and selected at run time with __builtin_cpu_supports, so ONE shared library built
 * with generic flags (-O3, no -march=native) runs on any x86-64 and the file also
 * compiles on non-x86 targets (scalar kernel only).
 *
 * Block layout (see vqindex/kernels/fastscan.py): codes are grouped in blocks of 32
 * vectors; a block is m*16 bytes; byte (16*j + i) of block b holds
 *     low nibble  = nibble j of vector 32*b + i
 *     high nibble = nibble j of vector 32*b + 16 + i          (i = 0..15)
 * so 16 consecutive bytes hold sub-quantizer j for all 32 vectors; a 256-bit load covers
 * sub-quantizers j, j+1 (one per 128-bit lane) and a 512-bit load j..j+3.  The LUT of a
 * query is m*16 uint8 (LUT[j][x] at 16*j + x), so the same loads give the matching
 * per-lane tables for pshufb.
 *
 * Accumulators: the result of every backend is sum_j LUT[j][nibble_j] modulo 2^16
 * (exact when the LUT comes from quantize_lut, whose sums fit in uint16).
 *
 * Backends (fs_scan's `backend`): 1 scalar C, 2 AVX2 (pshufb), 3 AVX-512 F+BW (pshufb),
 * 4 AVX-512 VBMI+VNNI (vpermb + vpdpbusd), 0 = best the CPU supports.
 * Exported: fs_scan, fs_scan_q (single-threaded, strided, LUT rows by index, optional
 * LUT7 / LUT6 fast modes for LUTs with small entries: the search
 * driver's primitive, see its section), fs_cpu_features, fs_available_backends.
 * Build knobs (-D): FS_NO_SIMD (scalar only), FS_AVX2_QB / FS_AVX512_QB / FS_VNNI_QB
 * (queries per register group), FS_CHUNK_BYTES, FS_LUT_TILE.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#if !defined(_WIN32)
#include <pthread.h>
#define FS_HAVE_PTHREADS 1
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FS_NO_SIMD)
#define FS_X86 1
#include <immintrin.h>
#endif

/* GCC: loop-carried SIMD accumulators otherwise get copied around every update
 * (partial redundancy elimination / register renaming); measured 1.5-2x on some kernels */
#if defined(__GNUC__) && !defined(__clang__) && defined(FS_X86)
#pragma GCC optimize("no-tree-pre", "rename-registers")
#endif

#if defined(_WIN32)
#define FS_API __declspec(dllexport)
#else
#define FS_API __attribute__((visibility("default")))
#endif

#define FS_BACKEND_AUTO 0
#define FS_BACKEND_SCALAR 1
#define FS_BACKEND_AVX2 2
#define FS_BACKEND_AVX512 3
#define FS_BACKEND_AVX512VNNI 4

/* fs_scan_q: flags in bits 8.. of `backend` (backend = id | flags << 8); the caller
 * guarantees every LUT entry is <= 127 (LUT7) / <= 63 (LUT6); other bits: -1 */
#define FS_FLAG_LUT7 1
#define FS_FLAG_LUT6 2

#define FS_FEAT_AVX2 1
#define FS_FEAT_AVX512 2     /* avx512f + avx512bw */
#define FS_FEAT_AVX512VNNI 4 /* + avx512vbmi + avx512vnni */

/* a kernel scans blocks [b0, b1) against queries [q0, q1) */
typedef void (*fs_kernel)(const uint8_t *blocks, int64_t b0, int64_t b1, int64_t n,
                          int64_t m, const uint8_t *lut, int64_t q0, int64_t q1,
                          uint16_t *out, int64_t ldo, void *accbuf);

/* bytes of LUT per query group kept in L1 while a chunk of blocks is swept */
#ifndef FS_LUT_TILE
#define FS_LUT_TILE (16 * 1024)
#endif
/* accumulator parking space per block (8 queries x 4 zmm) */
#define FS_ACC_BYTES (8 * 4 * 64)

/* target size (bytes of codes) of the block chunk that every query group sweeps (L2) */
#ifndef FS_CHUNK_BYTES
#define FS_CHUNK_BYTES (384 * 1024)
#endif

static int64_t chunk_blocks(int64_t m) {
    int64_t c = FS_CHUNK_BYTES / (m * 16);
    return c < 1 ? 1 : c;
}

static inline void store_block(uint16_t *o, const uint16_t *tmp, int nv) {
    memcpy(o, tmp, (size_t)nv * sizeof(uint16_t));
}

/* ------------------------------------------------------------------ scalar */

/* GCC's auto-vectorizer turns the table lookups into slow emulated gathers (3x slower) */
#if defined(__GNUC__) && !defined(__clang__)
#define FS_NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#else
#define FS_NO_VECTORIZE
#endif

FS_NO_VECTORIZE static void kernel_scalar(const uint8_t *blocks, int64_t b0, int64_t b1, int64_t n,
                          int64_t m, const uint8_t *lut, int64_t q0, int64_t q1,
                          uint16_t *out, int64_t ldo, void *accbuf) {
    (void)accbuf;
    const int64_t bs = m * 16;
    uint32_t acc[32];
    uint16_t tmp[32];
    for (int64_t q = q0; q < q1; q++) {
        const uint8_t *L = lut + q * bs;
        for (int64_t b = b0; b < b1; b++) {
            const uint8_t *blk = blocks + b * bs;
            memset(acc, 0, sizeof(acc));
            for (int64_t j = 0; j < m; j++) {
                const uint8_t *c = blk + 16 * j;
                const uint8_t *t = L + 16 * j;
                for (int i = 0; i < 16; i++) {
                    acc[i] += t[c[i] & 15];
                    acc[i + 16] += t[c[i] >> 4];
                }
            }
            int64_t base = b * 32;
            int nv = (int)((n - base) < 32 ? (n - base) : 32);
            for (int i = 0; i < nv; i++) tmp[i] = (uint16_t)acc[i];
            store_block(out + q * ldo + base, tmp, nv);
        }
    }
}

#ifdef FS_X86
/* Query groups: accumulators are named variables (Xq for q < QB, QB a compile-time
 * constant after inlining) so that they live in registers; FS_Q8 expands X(0)..X(7) and
 * every use is guarded by `if (QB > q)`.
 *
 * LUT tiling: for large m the LUTs of a query group do not fit in L1 (8 queries x m=384
 * = 48 KB), so sub-quantizers are processed in tiles of FS_LUT_TILE bytes of LUT per
 * group: every block of the chunk is scanned for tile [j0, j1), with the accumulators
 * parked in a small per-thread buffer (FS_ACC_BYTES per block) between tiles. */
#define FS_Q8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define FS_INLINE static inline __attribute__((always_inline))

/* partial last block: rows of tmp (32 per query) -> out */
static void fs_copy_partial(uint16_t *o, int64_t ldo, const uint16_t *tmp, int qb, int nv) {
    if (nv == 32) return;
    for (int q = 0; q < qb; q++) store_block(o + q * ldo, tmp + 32 * q, nv);
}

/* QB = queries per group; remainders use 4, 2, 1.  For each query group the kernel
 * sweeps blocks [b0, b1) (an L2-sized chunk), one LUT tile at a time.  Every QB variant
 * is its own (non-inlined) function so each gets its own register allocation. */
#define FS_DEFINE_SWEEP(NAME, GROUP, TARGET, QB, VT)                                      \
    TARGET __attribute__((noinline)) static void NAME(                                      \
        const uint8_t *blocks, int64_t b0, int64_t b1, int64_t n, int64_t m,                \
        const uint8_t *L, uint16_t *out, int64_t ldo, void *accbuf) {                       \
        const int64_t bs = m * 16;                                                          \
        int64_t jt = ((int64_t)FS_LUT_TILE / (16 * (QB))) & ~(int64_t)3;                    \
        if (jt < 4) jt = 4;                                                                 \
        if (!accbuf || jt >= m) jt = m;                                                     \
        for (int64_t j0 = 0; j0 < m; j0 += jt) {                                            \
            int64_t j1 = j0 + jt < m ? j0 + jt : m;                                         \
            for (int64_t b = b0; b < b1; b++) {                                             \
                int64_t base = b * 32;                                                      \
                int nv = (int)((n - base) < 32 ? (n - base) : 32);                          \
                VT *acc = (VT *)((char *)accbuf + (b - b0) * FS_ACC_BYTES);                 \
                GROUP(blocks + b * bs, m, L, bs, QB, j0, j1, acc, out + base, ldo, nv);     \
            }                                                                               \
        }                                                                                   \
    }

#define FS_DEFINE_KERNEL(NAME, GROUP, TARGET, QBMAX, VT)                                  \
    FS_DEFINE_SWEEP(NAME##_qmax, GROUP, TARGET, QBMAX, VT)                                  \
    FS_DEFINE_SWEEP(NAME##_q4, GROUP, TARGET, 4, VT)                                        \
    FS_DEFINE_SWEEP(NAME##_q2, GROUP, TARGET, 2, VT)                                        \
    FS_DEFINE_SWEEP(NAME##_q1, GROUP, TARGET, 1, VT)                                        \
    static void NAME(const uint8_t *blocks, int64_t b0, int64_t b1, int64_t n, int64_t m,   \
                     const uint8_t *lut, int64_t q0, int64_t q1, uint16_t *out,             \
                     int64_t ldo, void *accbuf) {                                           \
        const int64_t bs = m * 16;                                                          \
        int64_t q = q0;                                                                     \
        while (q < q1) {                                                                    \
            int64_t left = q1 - q;                                                          \
            const uint8_t *L = lut + q * bs;                                                \
            uint16_t *o = out + q * ldo;                                                    \
            if (left >= QBMAX) {                                                            \
                NAME##_qmax(blocks, b0, b1, n, m, L, o, ldo, accbuf);                       \
                q += QBMAX;                                                                 \
            } else if (left >= 4 && QBMAX > 4) {                                            \
                NAME##_q4(blocks, b0, b1, n, m, L, o, ldo, accbuf);                         \
                q += 4;                                                                     \
            } else if (left >= 2 && QBMAX > 2) {                                            \
                NAME##_q2(blocks, b0, b1, n, m, L, o, ldo, accbuf);                         \
                q += 2;                                                                     \
            } else {                                                                        \
                NAME##_q1(blocks, b0, b1, n, m, L, o, ldo, accbuf);                         \
                q += 1;                                                                     \
            }                                                                               \
        }                                                                                   \
    }

/* ------------------------------------------------------------------ AVX2 */
/* pshufb per 128-bit lane; uint8 -> uint16 accumulation with the FAISS trick:
 * A += r (as 16-bit words), B += r >> 8; odd bytes sum = B, even = A - (B << 8)
 * (all modulo 2^16, so exact whenever the true sums fit in uint16). */
#define FS_T_AVX2 __attribute__((target("avx2")))

FS_T_AVX2 FS_INLINE void avx2_store(__m256i A, __m256i B, uint16_t *o) {
    __m256i ev = _mm256_sub_epi16(A, _mm256_slli_epi16(B, 8));
    __m128i e = _mm_add_epi16(_mm256_castsi256_si128(ev), _mm256_extracti128_si256(ev, 1));
    __m128i d = _mm_add_epi16(_mm256_castsi256_si128(B), _mm256_extracti128_si256(B, 1));
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(e, d));
    _mm_storeu_si128((__m128i *)(o + 8), _mm_unpackhi_epi16(e, d));
}

FS_T_AVX2 FS_INLINE void avx2_group(const uint8_t *blk, int64_t m, const uint8_t *lut,
                                    int64_t bs, const int QB, int64_t j0, int64_t j1,
                                    __m256i *acc, uint16_t *o, int64_t ldo, int nv) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const int first = j0 == 0, last = j1 == m;
    const int64_t mfull = m & ~(int64_t)1, jend = j1 < mfull ? j1 : mfull;
#define DECL(q)                                                                             \
    __m256i Al##q = _mm256_setzero_si256(), Bl##q = Al##q, Ah##q = Al##q, Bh##q = Al##q;    \
    if (QB > q && !first) {                                                                 \
        Al##q = _mm256_loadu_si256(acc + 4 * q);                                            \
        Bl##q = _mm256_loadu_si256(acc + 4 * q + 1);                                        \
        Ah##q = _mm256_loadu_si256(acc + 4 * q + 2);                                        \
        Bh##q = _mm256_loadu_si256(acc + 4 * q + 3);                                        \
    }
    FS_Q8(DECL)
#undef DECL
#define ACC(q)                                                                              \
    if (QB > q) {                                                                           \
        __m256i t = LOADT(lut + q * bs + 16 * j);                                           \
        __m256i rl = _mm256_shuffle_epi8(t, lo), rh = _mm256_shuffle_epi8(t, hi);           \
        Al##q = _mm256_add_epi16(Al##q, rl);                                                \
        Bl##q = _mm256_add_epi16(Bl##q, _mm256_srli_epi16(rl, 8));                          \
        Ah##q = _mm256_add_epi16(Ah##q, rh);                                                \
        Bh##q = _mm256_add_epi16(Bh##q, _mm256_srli_epi16(rh, 8));                          \
    }
#define STEP                                                                                \
    {                                                                                       \
        __m256i c = LOADT(blk + 16 * j);                                                    \
        __m256i lo = _mm256_and_si256(c, mask);                                             \
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), mask);                       \
        FS_Q8(ACC)                                                                          \
    }
    /* odd m: the last sub-quantizer first, upper lane zero (zero table -> 0) */
#define LOADT(p) _mm256_set_m128i(_mm_setzero_si128(), _mm_loadu_si128((const __m128i *)(p)))
    if (last && mfull < m) {
        int64_t j = mfull;
        STEP
    }
#undef LOADT
#define LOADT(p) _mm256_loadu_si256((const __m256i *)(p))
    for (int64_t j = j0; j < jend; j += 2) STEP
#undef LOADT
#undef STEP
#undef ACC
    if (last) {
        uint16_t tmp[8 * 32];
#define OUT(q)                                                                              \
    if (QB > q) {                                                                           \
        uint16_t *d = nv == 32 ? o + q * ldo : tmp + 32 * q;                                \
        avx2_store(Al##q, Bl##q, d);                                                        \
        avx2_store(Ah##q, Bh##q, d + 16);                                                   \
    }
        FS_Q8(OUT)
#undef OUT
        fs_copy_partial(o, ldo, tmp, QB, nv);
    } else {
#define PARK(q)                                                                             \
    if (QB > q) {                                                                           \
        _mm256_storeu_si256(acc + 4 * q, Al##q);                                            \
        _mm256_storeu_si256(acc + 4 * q + 1, Bl##q);                                        \
        _mm256_storeu_si256(acc + 4 * q + 2, Ah##q);                                        \
        _mm256_storeu_si256(acc + 4 * q + 3, Bh##q);                                        \
    }
        FS_Q8(PARK)
#undef PARK
    }
}

#ifndef FS_AVX2_QB
#define FS_AVX2_QB 2
#endif
FS_DEFINE_KERNEL(kernel_avx2, avx2_group, FS_T_AVX2, FS_AVX2_QB, __m256i)

/* ------------------------------------------------------------------ AVX-512 (F+BW) */
/* Same as AVX2 with 4 sub-quantizers (one per 128-bit lane) per 512-bit register. */
#define FS_T_AVX512 __attribute__((target("avx2,avx512f,avx512bw")))

FS_T_AVX512 FS_INLINE void avx512_store(__m512i A, __m512i B, uint16_t *o) {
    __m512i ev = _mm512_sub_epi16(A, _mm512_slli_epi16(B, 8));
    __m256i e2 = _mm256_add_epi16(_mm512_castsi512_si256(ev), _mm512_extracti64x4_epi64(ev, 1));
    __m256i d2 = _mm256_add_epi16(_mm512_castsi512_si256(B), _mm512_extracti64x4_epi64(B, 1));
    __m128i e = _mm_add_epi16(_mm256_castsi256_si128(e2), _mm256_extracti128_si256(e2, 1));
    __m128i d = _mm_add_epi16(_mm256_castsi256_si128(d2), _mm256_extracti128_si256(d2, 1));
    _mm_storeu_si128((__m128i *)o, _mm_unpacklo_epi16(e, d));
    _mm_storeu_si128((__m128i *)(o + 8), _mm_unpackhi_epi16(e, d));
}

FS_T_AVX512 FS_INLINE void avx512_group(const uint8_t *blk, int64_t m, const uint8_t *lut,
                                        int64_t bs, const int QB, int64_t j0, int64_t j1,
                                        __m512i *acc, uint16_t *o, int64_t ldo, int nv) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    const int first = j0 == 0, last = j1 == m;
    const int64_t mfull = m & ~(int64_t)3, jend = j1 < mfull ? j1 : mfull;
#define DECL(q)                                                                             \
    __m512i Al##q = _mm512_setzero_si512(), Bl##q = Al##q, Ah##q = Al##q, Bh##q = Al##q;    \
    if (QB > q && !first) {                                                                 \
        Al##q = _mm512_loadu_si512(acc + 4 * q);                                            \
        Bl##q = _mm512_loadu_si512(acc + 4 * q + 1);                                        \
        Ah##q = _mm512_loadu_si512(acc + 4 * q + 2);                                        \
        Bh##q = _mm512_loadu_si512(acc + 4 * q + 3);                                        \
    }
    FS_Q8(DECL)
#undef DECL
#define ACC(q)                                                                              \
    if (QB > q) {                                                                           \
        __m512i t = LOADT(lut + q * bs + 16 * j);                                           \
        __m512i rl = _mm512_shuffle_epi8(t, lo), rh = _mm512_shuffle_epi8(t, hi);           \
        Al##q = _mm512_add_epi16(Al##q, rl);                                                \
        Bl##q = _mm512_add_epi16(Bl##q, _mm512_srli_epi16(rl, 8));                          \
        Ah##q = _mm512_add_epi16(Ah##q, rh);                                                \
        Bh##q = _mm512_add_epi16(Bh##q, _mm512_srli_epi16(rh, 8));                          \
    }
#define STEP                                                                                \
    {                                                                                       \
        __m512i c = LOADT(blk + 16 * j);                                                    \
        __m512i lo = _mm512_and_si512(c, mask);                                             \
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), mask);                       \
        FS_Q8(ACC)                                                                          \
    }
    /* 1..3 trailing sub-quantizers: masked zeroing loads (zero table -> 0) */
#define LOADT(p) _mm512_maskz_loadu_epi8(k, (const void *)(p))
    if (last && mfull < m) {
        __mmask64 k = (((__mmask64)1) << (16 * (m - mfull))) - 1;
        int64_t j = mfull;
        STEP
    }
#undef LOADT
#define LOADT(p) _mm512_loadu_si512((const void *)(p))
    for (int64_t j = j0; j < jend; j += 4) STEP
#undef LOADT
#undef STEP
#undef ACC
    if (last) {
        uint16_t tmp[8 * 32];
#define OUT(q)                                                                              \
    if (QB > q) {                                                                           \
        uint16_t *d = nv == 32 ? o + q * ldo : tmp + 32 * q;                                \
        avx512_store(Al##q, Bl##q, d);                                                      \
        avx512_store(Ah##q, Bh##q, d + 16);                                                 \
    }
        FS_Q8(OUT)
#undef OUT
        fs_copy_partial(o, ldo, tmp, QB, nv);
    } else {
#define PARK(q)                                                                             \
    if (QB > q) {                                                                           \
        _mm512_storeu_si512(acc + 4 * q, Al##q);                                            \
        _mm512_storeu_si512(acc + 4 * q + 1, Bl##q);                                        \
        _mm512_storeu_si512(acc + 4 * q + 2, Ah##q);                                        \
        _mm512_storeu_si512(acc + 4 * q + 3, Bh##q);                                        \
    }
        FS_Q8(PARK)
#undef PARK
    }
}

#ifndef FS_AVX512_QB
#define FS_AVX512_QB 4
#endif
FS_DEFINE_KERNEL(kernel_avx512, avx512_group, FS_T_AVX512, FS_AVX512_QB, __m512i)

/* ------------------------------------------------------------------ AVX-512 VBMI + VNNI */
/* Same block layout.  The 64 code bytes of sub-quantizers j..j+3 are transposed once per
 * query group (vpermb) so that byte 4*i + l holds sub-quantizer j+l of vector i; the
 * index of a byte is then 16*l + nibble, a 64-entry vpermb lookup into the 64 LUT bytes of
 * j..j+3, and vpdpbusd against ones sums the 4 adjacent bytes of a vector straight into
 * int32 accumulators (2 instructions per 64 lookups instead of 4; results taken mod 2^16). */
#define FS_T_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vbmi,avx512vnni")))

/* in-place accumulate (inline asm: GCC otherwise tends to copy the accumulators) */
FS_T_VNNI FS_INLINE __m512i fs_dpbusd(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

FS_T_VNNI FS_INLINE void vnni_group(const uint8_t *blk, int64_t m, const uint8_t *lut,
                                    int64_t bs, const int QB, int64_t j0, int64_t j1,
                                    __m512i *acc, uint16_t *o, int64_t ldo, int nv) {
    /* P[4i + l] = 16l + i ; OFF[p] = 16*(p % 4) ; SEL selects bits 4,5 */
    const __m512i P = _mm512_set_epi32(
        0x3f2f1f0f, 0x3e2e1e0e, 0x3d2d1d0d, 0x3c2c1c0c, 0x3b2b1b0b, 0x3a2a1a0a, 0x39291909,
        0x38281808, 0x37271707, 0x36261606, 0x35251505, 0x34241404, 0x33231303, 0x32221202,
        0x31211101, 0x30201000);
    const __m512i OFF = _mm512_set1_epi32(0x30201000);
    const __m512i SEL = _mm512_set1_epi8(0x30);
    const __m512i ones = _mm512_set1_epi8(1);
    const int first = j0 == 0, last = j1 == m;
    const int64_t mfull = m & ~(int64_t)3, jend = j1 < mfull ? j1 : mfull;
#define DECL(q)                                                                             \
    __m512i Sl##q = _mm512_setzero_si512(), Sh##q = _mm512_setzero_si512();                 \
    if (QB > q && !first) {                                                                 \
        Sl##q = _mm512_loadu_si512(acc + 2 * q);                                            \
        Sh##q = _mm512_loadu_si512(acc + 2 * q + 1);                                        \
    }
    FS_Q8(DECL)
#undef DECL
#define ACC(q)                                                                              \
    if (QB > q) {                                                                           \
        __m512i t = LOADT(lut + q * bs + 16 * j);                                           \
        Sl##q = fs_dpbusd(Sl##q, _mm512_permutexvar_epi8(il, t), ones);                     \
        Sh##q = fs_dpbusd(Sh##q, _mm512_permutexvar_epi8(ih, t), ones);                     \
    }
    /* bits 4,5 <- OFF, bits 0-3 from the code (bits 6,7 are ignored by vpermb) */
#define STEP                                                                                \
    {                                                                                       \
        __m512i pc = _mm512_permutexvar_epi8(P, LOADT(blk + 16 * j));                       \
        __m512i il = _mm512_ternarylogic_epi32(pc, SEL, OFF, 0xB8);                         \
        __m512i ih = _mm512_ternarylogic_epi32(_mm512_srli_epi16(pc, 4), SEL, OFF, 0xB8);   \
        FS_Q8(ACC)                                                                          \
    }
    /* 1..3 trailing sub-quantizers: masked zeroing loads (zero table -> 0) */
#define LOADT(p) _mm512_maskz_loadu_epi8(k, (const void *)(p))
    if (last && mfull < m) {
        __mmask64 k = (((__mmask64)1) << (16 * (m - mfull))) - 1;
        int64_t j = mfull;
        STEP
    }
#undef LOADT
#define LOADT(p) _mm512_loadu_si512((const void *)(p))
    for (int64_t j = j0; j < jend; j += 4) STEP
#undef LOADT
#undef STEP
#undef ACC
    if (last) {
        uint16_t tmp[8 * 32];
#define OUT(q)                                                                              \
    if (QB > q) {                                                                           \
        uint16_t *d = nv == 32 ? o + q * ldo : tmp + 32 * q;                                \
        _mm256_storeu_si256((__m256i *)d, _mm512_cvtepi32_epi16(Sl##q));                    \
        _mm256_storeu_si256((__m256i *)(d + 16), _mm512_cvtepi32_epi16(Sh##q));             \
    }
        FS_Q8(OUT)
#undef OUT
        fs_copy_partial(o, ldo, tmp, QB, nv);
    } else {
#define PARK(q)                                                                             \
    if (QB > q) {                                                                           \
        _mm512_storeu_si512(acc + 2 * q, Sl##q);                                            \
        _mm512_storeu_si512(acc + 2 * q + 1, Sh##q);                                        \
    }
        FS_Q8(PARK)
#undef PARK
    }
}

#ifndef FS_VNNI_QB
#define FS_VNNI_QB 8
#endif
FS_DEFINE_KERNEL(kernel_avx512vnni, vnni_group, FS_T_VNNI, FS_VNNI_QB, __m512i)

#endif /* FS_X86 */

/* ------------------------------------------------------------------ dispatch */

FS_API int fs_cpu_features(void) {
    int f = 0;
#ifdef FS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= FS_FEAT_AVX2;
    if ((f & FS_FEAT_AVX2) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw"))
        f |= FS_FEAT_AVX512;
    if ((f & FS_FEAT_AVX512) && __builtin_cpu_supports("avx512vbmi") &&
        __builtin_cpu_supports("avx512vnni"))
        f |= FS_FEAT_AVX512VNNI;
#endif
    return f;
}

/* which backends this build + CPU can run: bit (1 << backend) */
FS_API int fs_available_backends(void) {
    int a = 1 << FS_BACKEND_SCALAR;
#ifdef FS_X86
    int f = fs_cpu_features();
    if (f & FS_FEAT_AVX2) a |= 1 << FS_BACKEND_AVX2;
    if (f & FS_FEAT_AVX512) a |= 1 << FS_BACKEND_AVX512;
    if (f & FS_FEAT_AVX512VNNI) a |= 1 << FS_BACKEND_AVX512VNNI;
#endif
    return a;
}

static int resolve_backend(int backend) {
    int a = fs_available_backends();
    if (backend == FS_BACKEND_AUTO) {
        for (int b = FS_BACKEND_AVX512VNNI; b > FS_BACKEND_AUTO; b--)
            if (a & (1 << b)) return b;
        return FS_BACKEND_SCALAR;
    }
    if (backend < FS_BACKEND_SCALAR || backend > FS_BACKEND_AVX512VNNI) return -1;
    return (a & (1 << backend)) ? backend : -1;
}

static fs_kernel kernel_for(int backend) {
    switch (backend) {
#ifdef FS_X86
    case FS_BACKEND_AVX2: return kernel_avx2;
    case FS_BACKEND_AVX512: return kernel_avx512;
    case FS_BACKEND_AVX512VNNI: return kernel_avx512vnni;
#endif
    default: return kernel_scalar;
    }
}

typedef struct {
    fs_kernel kern;
    const uint8_t *blocks;
    int64_t b0, b1, n, m;
    const uint8_t *lut;
    int64_t q0, q1;
    uint16_t *out;
    int64_t ldo;
} fs_work;

/* sweep: for each chunk of blocks (~FS_CHUNK_BYTES, L2-resident), every query group
 * scans the chunk; the kernel keeps the group's LUTs hot while blocks stream by. */
static void run_work(const fs_work *w) {
    int64_t cb = chunk_blocks(w->m);
    /* accumulator buffer for LUT tiling (only needed when one tile can't hold m);
     * without it (malloc failure) the kernels simply don't tile */
    void *accbuf = NULL;
    if (w->m * 16 > FS_LUT_TILE / 8) accbuf = malloc((size_t)cb * FS_ACC_BYTES);
    for (int64_t b = w->b0; b < w->b1; b += cb) {
        int64_t e = b + cb < w->b1 ? b + cb : w->b1;
        w->kern(w->blocks, b, e, w->n, w->m, w->lut, w->q0, w->q1, w->out, w->ldo, accbuf);
    }
    free(accbuf);
}

#ifdef FS_HAVE_PTHREADS
static void *thread_main(void *arg) {
    run_work((const fs_work *)arg);
    return NULL;
}
#endif

/*
 * Scan nblocks blocks (n valid vectors, n <= 32*nblocks) against nq LUTs of m*16 bytes.
 * out[q*ldo + v] (uint16) for v < n.  Returns the backend used (> 0) or -1 if the
 * requested backend is unavailable, -2 on bad arguments.
 */
FS_API int fs_scan(const uint8_t *blocks, int64_t nblocks, int64_t n, int64_t m,
                   const uint8_t *lut, int64_t nq, uint16_t *out, int64_t ldo, int backend,
                   int nthreads) {
    int be = resolve_backend(backend);
    if (be < 0) return -1;
    if (m <= 0 || n < 0 || nq < 0 || n > 32 * nblocks || ldo < n) return -2;
    if (n == 0 || nq == 0) return be;
    nblocks = (n + 31) / 32;
    fs_kernel kern = kernel_for(be);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 256) nthreads = 256;
    /* split blocks when there are enough of them, otherwise queries */
    int split_blocks = nblocks >= 4 * (int64_t)nthreads || nblocks >= nq;
    int64_t units = split_blocks ? nblocks : nq;
    if (nthreads > units) nthreads = (int)units;
    fs_work works[256];
    for (int t = 0; t < nthreads; t++) {
        fs_work *w = &works[t];
        w->kern = kern; w->blocks = blocks; w->n = n; w->m = m; w->lut = lut;
        w->out = out; w->ldo = ldo;
        int64_t u0 = units * t / nthreads, u1 = units * (t + 1) / nthreads;
        if (split_blocks) { w->b0 = u0; w->b1 = u1; w->q0 = 0; w->q1 = nq; }
        else { w->b0 = 0; w->b1 = nblocks; w->q0 = u0; w->q1 = u1; }
    }
#ifdef FS_HAVE_PTHREADS
    pthread_t tids[256];
    int started[256];
    for (int t = 1; t < nthreads; t++)
        started[t] = pthread_create(&tids[t], NULL, thread_main, &works[t]) == 0;
    run_work(&works[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        else run_work(&works[t]);
    }
#else
    for (int t = 0; t < nthreads; t++) run_work(&works[t]);
#endif
    return be;
}

/* ================================================================== fs_scan_q */
/*
 * fs_scan_q: the single-threaded scan primitive of the numba search driver
 * (vqindex/kernels/driver.py calls it through its address; the numba twin and reference is
 * vqindex.kernels.fastscan.scan_q_numba).  Blocks are strided (block_stride >= 16*m: the
 * driver points into the middle of a block shared by several accumulators) and every query
 * picks its LUT row by index.  No allocation, no threads; the CPU features are read once.
 *
 * AVX2 kernel.  Per pair of sub-quantizers (j, j+1) one 256-bit code load is split into
 * lo/hi nibble indices (vectors 0-15 / 16-31; lane 0 = j, lane 1 = j+1) and shared by a
 * group of QB = 3 queries (remainders 2, 1).  Per query: one 256-bit LUT load, 2 vpshufb,
 * and the exact uint8 -> uint16 widening with 3 ops per shuffle result r:
 *     A += r (as 16-bit words: even byte + 256 * odd byte),  B += vpmaddubsw(r, [0,1]) (odd)
 * even = A - (B << 8) at the end, all modulo 2^16, so exact for ANY uint8 LUT and any m.
 * That is 4 vector ops per 32 lookups, the floor for exact 16-bit sums with pshufb (an
 * 8-bit add of two lookups before widening would overflow), so the kernel is about
 * issuing them at 4 per cycle:
 *   - vpmaddubsw runs on the multiply pipes, fs_scan's vpsrlw competes with vpshufb for
 *     the two shuffle pipes (Zen 3);
 *   - 12 accumulators + 4 temporaries = all 16 ymm registers for QB = 3, so the inner
 *     loop is inline asm (GCC spills / copies accumulators otherwise, measured); there
 *     the constants are memory operands;
 *   - with nq >= FSQ_SPLIT_MIN_NQ the codes of a chunk of blocks are split into lo/hi
 *     indices once (stack buffer, 2x the codes, <= FSQ_SPLIT_BYTES) and every query group
 *     reads them as vpshufb memory operands: 24 instead of 27 vector ops per pair and
 *     group, and the constant w stays in a register (~+10% at nq = 32).
 * The odd tail (m odd: the last sub-quantizer with a zero upper LUT lane) and the final
 * reduction are intrinsics.  Measured alternatives that lost on the Zen 3 dev box:
 *   - 128-bit broadcast code + LUT loads (lane 0 = low, lane 1 = high nibbles via vpsrlvd,
 *     2 accumulators per query, QB up to 6): ~20% slower (vbroadcasti128 is not free);
 *   - vpsrlw instead of vpmaddubsw, a 3-op nibble split with one mask load, a 2x unrolled
 *     loop: no gain or slower; copying the group's LUT rows into one interleaved stream:
 *     slower for few blocks, no gain for many.
 *
 * AVX-512 ids (3, 4) run the same AVX2 kernel when the CPU has them: no separate AVX-512
 * version exists (none could be tested here).
 */

static int fsq_avail_cache; /* fs_available_backends() | 1<<30 once known (benign race) */

static int fsq_available(void) {
    int a = __atomic_load_n(&fsq_avail_cache, __ATOMIC_RELAXED);
    if (!a) {
        a = fs_available_backends() | (int)(1u << 30);
        __atomic_store_n(&fsq_avail_cache, a, __ATOMIC_RELAXED);
    }
    return a;
}

FS_NO_VECTORIZE static void fsq_scalar(const uint8_t *blocks, int64_t bstride, int64_t nb,
                                       int64_t n, int64_t m, const uint8_t *lut,
                                       int64_t lstride, const int64_t *qidx, int64_t nq,
                                       uint16_t *out, int64_t ldo) {
    uint32_t acc[32];
    for (int64_t t = 0; t < nq; t++) {
        const uint8_t *L = lut + qidx[t] * lstride;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = blocks + b * bstride;
            memset(acc, 0, sizeof(acc));
            for (int64_t j = 0; j < m; j++) {
                const uint8_t *c = blk + 16 * j, *T = L + 16 * j;
                for (int i = 0; i < 16; i++) {
                    acc[i] += T[c[i] & 15];
                    acc[i + 16] += T[c[i] >> 4];
                }
            }
            int64_t base = 32 * b, nv = n - base < 32 ? n - base : 32;
            uint16_t *o = out + t * ldo + base;
            for (int64_t i = 0; i < nv; i++) o[i] = (uint16_t)acc[i];
        }
    }
}

#ifdef FS_X86
static const uint8_t fsq_c_mask[32] __attribute__((aligned(32))) = {
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15};
/* vpmaddubsw weights (signed bytes): 0 for even bytes, 1 for odd bytes -> word = odd byte */
static const uint8_t fsq_c_w[32] __attribute__((aligned(32))) = {
    0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
    0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};

/* Inline-asm pieces (AT&T operand order).  j = 32 * pair: byte offset of the pair in the
 * block and in every LUT row; 2*j in the split buffer (64 bytes per pair: lo | hi). */
#define FSQ_Z(A) "vpxor %[" A "], %[" A "], %[" A "]\n\t"
#define FSQ_ZQ(q) FSQ_Z("a" #q) FSQ_Z("b" #q) FSQ_Z("c" #q) FSQ_Z("d" #q)
/* widen one pair of shuffle results t (vectors 0-15), u (16-31) into A, B / C, D */
#define FSQ_WIDEN(A, B, C, D)                                                               \
    "vpaddw %[t], %[" A "], %[" A "]\n\t"                                                   \
    "vpaddw %[u], %[" C "], %[" C "]\n\t"                                                   \
    "vpmaddubsw %[w], %[t], %[t]\n\t"                                                       \
    "vpmaddubsw %[w], %[u], %[u]\n\t"                                                       \
    "vpaddw %[t], %[" B "], %[" B "]\n\t"                                                   \
    "vpaddw %[u], %[" D "], %[" D "]\n\t"
/* direct: split the 32 code bytes of the pair in registers lo, hi */
#define FSQ_CODE                                                                            \
    "vmovdqu (%[blk],%[j]), %[lo]\n\t"                                                      \
    "vpsrlw $4, %[lo], %[hi]\n\t"                                                           \
    "vpand %[mask], %[lo], %[lo]\n\t"                                                       \
    "vpand %[mask], %[hi], %[hi]\n\t"
#define FSQ_STEP(LP, A, B, C, D)                                                            \
    "vmovdqu (%[" LP "],%[j]), %[t]\n\t"                                                    \
    "vpshufb %[hi], %[t], %[u]\n\t"                                                         \
    "vpshufb %[lo], %[t], %[t]\n\t" FSQ_WIDEN(A, B, C, D)
/* pre-split: the shuffle indices are memory operands */
#define FSQ_PSTEP(LP, A, B, C, D)                                                           \
    "vmovdqu (%[" LP "],%[j]), %[t]\n\t"                                                    \
    "vpshufb 32(%[sp],%[j],2), %[t], %[u]\n\t"                                              \
    "vpshufb (%[sp],%[j],2), %[t], %[t]\n\t" FSQ_WIDEN(A, B, C, D)
/* loop heads 32-byte aligned: otherwise the speed depends on where the linker puts the code
 * (measured: the direct QB = 1 loop 7% slower at an unlucky offset) */
#ifndef FSQ_ALIGN
#define FSQ_ALIGN ".p2align 5\n\t"
#endif
#define FSQ_LOOP(BODY)                                                                      \
    FSQ_ALIGN "1:\n\t" BODY "add $32, %[j]\n\tcmp %[end], %[j]\n\tjb 1b\n\t"
#define FSQ_ACC_OPS(q) [a##q] "=&x"(A##q), [b##q] "=&x"(B##q), [c##q] "=&x"(C##q), [d##q] "=&x"(D##q)
#define FSQ_OPS1 FSQ_ACC_OPS(0)
#define FSQ_OPS2 FSQ_ACC_OPS(0), FSQ_ACC_OPS(1)
#define FSQ_OPS3 FSQ_ACC_OPS(0), FSQ_ACC_OPS(1), FSQ_ACC_OPS(2)
#define FSQ_Q(S, q) S("l" #q, "a" #q, "b" #q, "c" #q, "d" #q)
#define FSQ_BODY1(S) FSQ_Q(S, 0)
#define FSQ_BODY2(S) FSQ_Q(S, 0) FSQ_Q(S, 1)
#define FSQ_BODY3(S) FSQ_Q(S, 0) FSQ_Q(S, 1) FSQ_Q(S, 2)
#define FSQ_ZERO1 FSQ_ZQ(0)
#define FSQ_ZERO2 FSQ_ZQ(0) FSQ_ZQ(1)
#define FSQ_ZERO3 FSQ_ZQ(0) FSQ_ZQ(1) FSQ_ZQ(2)
/* constants: the direct QB = 3 loop uses all 16 ymm registers (12 accumulators, lo, hi,
 * t, u) so mask and w are memory operands there; registers everywhere else */
#define FSQ_KM(x) "m"(*(const __m256i *)fsq_c_##x)
#define FSQ_KX(x) "x"(x)
#define FSQ_K1 FSQ_KX
#define FSQ_K2 FSQ_KX
#define FSQ_K3 FSQ_KM

/* one query's odd tail: the last sub-quantizer alone; the LUT's upper lane is zero, so the
 * upper lane adds 0 whatever the indices there */
FS_T_AVX2 FS_INLINE void fsq_tail1(__m256i lo, __m256i hi, const uint8_t *T, __m256i w,
                                   __m256i *A, __m256i *B, __m256i *C, __m256i *D) {
    __m256i t = _mm256_inserti128_si256(_mm256_setzero_si256(),
                                        _mm_loadu_si128((const __m128i *)T), 0);
    __m256i rl = _mm256_shuffle_epi8(t, lo), rh = _mm256_shuffle_epi8(t, hi);
    *A = _mm256_add_epi16(*A, rl);
    *B = _mm256_add_epi16(*B, _mm256_maddubs_epi16(rl, w));
    *C = _mm256_add_epi16(*C, rh);
    *D = _mm256_add_epi16(*D, _mm256_maddubs_epi16(rh, w));
}

/* split one block's codes into shuffle indices: pair p -> sp[64p..] = lo, sp[64p+32..] = hi
 * (odd m: the last sub-quantizer as pair m/2 with a zero upper lane) */
FS_T_AVX2 static void fsq_split(const uint8_t *blk, int64_t m, uint8_t *sp) {
    const __m256i mask = _mm256_load_si256((const __m256i *)fsq_c_mask);
    int64_t p = 0;
    for (; 2 * p + 1 < m; p++) {
        __m256i c = _mm256_loadu_si256((const __m256i *)(blk + 32 * p));
        _mm256_store_si256((__m256i *)(sp + 64 * p), _mm256_and_si256(c, mask));
        _mm256_store_si256((__m256i *)(sp + 64 * p + 32),
                           _mm256_and_si256(_mm256_srli_epi16(c, 4), mask));
    }
    if (m & 1) {
        __m256i c = _mm256_inserti128_si256(_mm256_setzero_si256(),
                                            _mm_loadu_si128((const __m128i *)(blk + 32 * p)), 0);
        _mm256_store_si256((__m256i *)(sp + 64 * p), _mm256_and_si256(c, mask));
        _mm256_store_si256((__m256i *)(sp + 64 * p + 32),
                           _mm256_and_si256(_mm256_srli_epi16(c, 4), mask));
    }
}

/* Scan one block for QB (1..3) queries: pairs [0, m/2) in asm, then the odd tail.
 * L[q]: LUT row of query q; o[q]: its 32 outputs; sp: the block's split indices or NULL
 * (split in the loop). */
#define FSQ_DEFINE_BLOCK(QB)                                                                \
    FS_T_AVX2 FS_INLINE void fsq_block##QB(const uint8_t *blk, const uint8_t *sp, int64_t m, \
                                           const uint8_t *const *L, uint16_t *const *o) {   \
        __m256i A0, B0, C0, D0, A1, B1, C1, D1, A2, B2, C2, D2;                             \
        const __m256i mask = _mm256_load_si256((const __m256i *)fsq_c_mask);                \
        const __m256i w = _mm256_load_si256((const __m256i *)fsq_c_w);                      \
        const uint8_t *l0 = L[0], *l1 = L[QB > 1 ? 1 : 0], *l2 = L[QB > 2 ? 2 : 0];         \
        int64_t j = 0, end = 32 * (m >> 1);                                                 \
        __m256i t, u;                                                                       \
        if (end > 0 && sp) {                                                                \
            __asm__(FSQ_ZERO##QB FSQ_LOOP(FSQ_BODY##QB(FSQ_PSTEP))                          \
                    : FSQ_OPS##QB, [t] "=&x"(t), [u] "=&x"(u), [j] "+r"(j)                  \
                    : [sp] "r"(sp), [l0] "r"(l0), [l1] "r"(l1), [l2] "r"(l2),              \
                      [end] "r"(end), [w] "x"(w)                                            \
                    : "cc", "memory");                                                      \
        } else if (end > 0) {                                                               \
            __m256i lo, hi;                                                                 \
            __asm__(FSQ_ZERO##QB FSQ_LOOP(FSQ_CODE FSQ_BODY##QB(FSQ_STEP))                  \
                    : FSQ_OPS##QB, [t] "=&x"(t), [u] "=&x"(u), [lo] "=&x"(lo),              \
                      [hi] "=&x"(hi), [j] "+r"(j)                                           \
                    : [blk] "r"(blk), [l0] "r"(l0), [l1] "r"(l1), [l2] "r"(l2),            \
                      [end] "r"(end), [mask] FSQ_K##QB(mask), [w] FSQ_K##QB(w)             \
                    : "cc", "memory");                                                      \
        } else {                                                                            \
            A0 = B0 = C0 = D0 = A1 = B1 = C1 = D1 = _mm256_setzero_si256();                 \
            A2 = B2 = C2 = D2 = A0;                                                         \
        }                                                                                   \
        (void)l1, (void)l2, (void)mask;                                                     \
        if (m & 1) {                                                                        \
            __m256i lo, hi;                                                                 \
            if (sp) {                                                                       \
                lo = _mm256_load_si256((const __m256i *)(sp + 2 * end));                    \
                hi = _mm256_load_si256((const __m256i *)(sp + 2 * end + 32));               \
            } else {                                                                        \
                __m128i c = _mm_loadu_si128((const __m128i *)(blk + end));                  \
                __m256i c2 = _mm256_inserti128_si256(_mm256_setzero_si256(), c, 0);         \
                lo = _mm256_and_si256(c2, mask);                                            \
                hi = _mm256_and_si256(_mm256_srli_epi16(c2, 4), mask);                      \
            }                                                                               \
            fsq_tail1(lo, hi, L[0] + end, w, &A0, &B0, &C0, &D0);                           \
            if (QB > 1) fsq_tail1(lo, hi, L[QB > 1 ? 1 : 0] + end, w, &A1, &B1, &C1, &D1);  \
            if (QB > 2) fsq_tail1(lo, hi, L[QB > 2 ? 2 : 0] + end, w, &A2, &B2, &C2, &D2);  \
        }                                                                                   \
        avx2_store(A0, B0, o[0]);                                                           \
        avx2_store(C0, D0, o[0] + 16);                                                      \
        if (QB > 1) {                                                                       \
            avx2_store(A1, B1, o[QB > 1 ? 1 : 0]);                                          \
            avx2_store(C1, D1, o[QB > 1 ? 1 : 0] + 16);                                     \
        }                                                                                   \
        if (QB > 2) {                                                                       \
            avx2_store(A2, B2, o[QB > 2 ? 2 : 0]);                                          \
            avx2_store(C2, D2, o[QB > 2 ? 2 : 0] + 16);                                     \
        }                                                                                   \
    }
FSQ_DEFINE_BLOCK(3)
FSQ_DEFINE_BLOCK(2)
FSQ_DEFINE_BLOCK(1)

/* One query group over blocks [b0, b1).  R[q]: LUT row of query q; O[q]: its output row;
 * split: indices of block b at split + (b - b0) * sstride, or NULL. */
#define FSQ_DEFINE_GROUP(QB)                                                                \
    FS_T_AVX2 __attribute__((noinline)) static void fsq_group##QB(                          \
        const uint8_t *blocks, int64_t bstride, int64_t b0, int64_t b1, int64_t n,          \
        int64_t m, const uint8_t *const *R, uint16_t *const *O, const uint8_t *split,       \
        int64_t sstride) {                                                                  \
        uint16_t tmp[QB * 32], *o[QB];                                                      \
        for (int64_t b = b0; b < b1; b++) {                                                 \
            int64_t base = 32 * b, nv = n - base < 32 ? n - base : 32;                      \
            for (int q = 0; q < QB; q++) o[q] = nv == 32 ? O[q] + base : tmp + 32 * q;      \
            fsq_block##QB(blocks + b * bstride, split ? split + (b - b0) * sstride : NULL,  \
                          m, R, o);                                                         \
            if (nv < 32)                                                                    \
                for (int q = 0; q < QB; q++)                                                \
                    memcpy(O[q] + base, tmp + 32 * q, (size_t)nv * sizeof(uint16_t));      \
        }                                                                                   \
    }
FSQ_DEFINE_GROUP(3)
FSQ_DEFINE_GROUP(2)
FSQ_DEFINE_GROUP(1)

/* ---------------------------------------------- fs_scan_q fast modes: LUT7 and LUT6 */
/* backend = id | flags << 8.  FS_FLAG_LUT7: the caller guarantees every LUT entry <= 127,
 * so the shuffle results of G = 2 pairs of sub-quantizers are added in uint8 (vpaddb,
 * <= 254) and widened once; FS_FLAG_LUT6 (entries <= 63): G = 4 pairs (<= 252).  The uint8
 * sums cannot wrap and the widening is the exact one above, so the result is still
 * sum_j LUT[j][nibble_j] mod 2^16, bit for bit.  Vector ops per G pairs and query:
 * 2G vpshufb + 2(G-1) vpaddb + 6 (widening) against 8G exact: 12 vs 16 (LUT7), 20 vs 32
 * (LUT6), so at most 1.33x / 1.6x when ALU-bound (4 vector ops per cycle, vpshufb on two
 * pipes, no op both adds and widens exactly); measured on the Zen 3 dev box
 * (bench/fastscan_q.py): m = 384, nq >= 8: LUT7 1.13-1.19x, LUT6 1.21-1.26x the exact
 * kernel; m = 100-192: 1.16-1.21x / 1.24-1.34x; nq = 1 (both fsl7_direct): 1.15-1.18x.  LUT6 also
 * loads 2.5 vectors per 64 lookups (2 per cycle).  The sub-quantizers past the
 * last full group (at most G lookups per lane: m mod 2G, odd m included) are summed in
 * uint8 the same way and widened once (fsl_tail).
 *
 * Kernels (all with the pre-split indices of fsq_split as memory operands, except the
 * direct one):
 *   - fsb: one query x two blocks, the query's G LUT rows of the group in registers (read
 *     once for both blocks): 8 accumulators + G tables + temporaries + w.  Needs two
 *     blocks' indices per chunk in L1: m <= 384 (FSL_B2_BYTES).
 *   - fsl group: QB = 2 (or 1) queries x one block, tables loaded per query; larger m.
 *   - fsl7_direct: LUT7, one query, codes split in registers (nq = 1, or no room for the
 *     split buffer; LUT6 uses it too: entries <= 63 are <= 127).
 * With 2 or 3 queries the exact kernel runs (as fast as these there: it shares the code
 * split in registers by 3 queries).  Measured and dropped: QB = 3 groups (w as memory
 * operand, load-bound), QB = 2 with three index vectors in registers, prefetching the LUT
 * rows, two blocks per chunk for m > 384 (L1 misses). */
#define FSL_S_(x) #x
#define FSL_S(x) FSL_S_(x)
#define FSL_LOOP(STEP, BODY)                                                                \
    FSQ_ALIGN "1:\n\t" BODY "add $" FSL_S(STEP) ", %[j]\n\tcmp %[end], %[j]\n\tjb 1b\n\t"
/* j: byte offset of the group in the block and the LUT row (2j in the split buffer) */
#define FSL_STEP7 64
#define FSL_STEP6 128

/* sub-quantizers from byte j (an even sub-quantizer) to 16*m of one query: at most G
 * lookups per lane, summed in uint8, widened once.  Indices from sp (pre-split) or split
 * from blk; a last unpaired sub-quantizer gets a zero upper LUT lane. */
FS_T_AVX2 FS_INLINE void fsl_tail(const uint8_t *blk, const uint8_t *sp, int64_t j, int64_t m,
                                  const uint8_t *T, __m256i w, __m256i *A, __m256i *B,
                                  __m256i *C, __m256i *D) {
    const __m256i mask = _mm256_load_si256((const __m256i *)fsq_c_mask);
    const int64_t e = 16 * m;
    __m256i sl = _mm256_setzero_si256(), sh = sl;
    for (; j < e; j += 32) {
        __m256i t, lo, hi;
        if (j + 16 < e) t = _mm256_loadu_si256((const __m256i *)(T + j));
        else t = _mm256_inserti128_si256(_mm256_setzero_si256(),
                                         _mm_loadu_si128((const __m128i *)(T + j)), 0);
        if (sp) {
            lo = _mm256_load_si256((const __m256i *)(sp + 2 * j));
            hi = _mm256_load_si256((const __m256i *)(sp + 2 * j + 32));
        } else {
            __m256i c;
            if (j + 16 < e) c = _mm256_loadu_si256((const __m256i *)(blk + j));
            else c = _mm256_inserti128_si256(_mm256_setzero_si256(),
                                             _mm_loadu_si128((const __m128i *)(blk + j)), 0);
            lo = _mm256_and_si256(c, mask);
            hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), mask);
        }
        sl = _mm256_add_epi8(sl, _mm256_shuffle_epi8(t, lo));
        sh = _mm256_add_epi8(sh, _mm256_shuffle_epi8(t, hi));
    }
    *A = _mm256_add_epi16(*A, sl);
    *B = _mm256_add_epi16(*B, _mm256_maddubs_epi16(sl, w));
    *C = _mm256_add_epi16(*C, sh);
    *D = _mm256_add_epi16(*D, _mm256_maddubs_epi16(sh, w));
}

/* --- fsb: one query x two blocks.  s0, s1: the blocks' split indices (s1 NULL: one
 * block); tables T0..T(G-1) = the query's LUT bytes [j, j + 32G); per block and half
 * (lo: vectors 0-15 at index offset 0, hi: 16-31 at 32): X = sum of the G shuffles in
 * uint8, widened into A, B (lo) / C, D (hi). */
#define FSB_HALF7(SP, H, X, Y)                                                              \
    "vpshufb " H "(%[" SP "],%[j],2), %[T0], %[" X "]\n\t"                                   \
    "vpshufb " H "+64(%[" SP "],%[j],2), %[T1], %[" Y "]\n\t"                                \
    "vpaddb %[" Y "], %[" X "], %[" X "]\n\t"
#define FSB_HALF6(SP, H, X, Y)                                                              \
    FSB_HALF7(SP, H, X, Y)                                                                  \
    "vpshufb " H "+128(%[" SP "],%[j],2), %[T2], %[" Y "]\n\t"                               \
    "vpaddb %[" Y "], %[" X "], %[" X "]\n\t"                                               \
    "vpshufb " H "+192(%[" SP "],%[j],2), %[T3], %[" Y "]\n\t"                               \
    "vpaddb %[" Y "], %[" X "], %[" X "]\n\t"
#define FSB_WIDEN(X, A, B)                                                                  \
    "vpaddw %[" X "], %[" A "], %[" A "]\n\t"                                               \
    "vpmaddubsw %[w], %[" X "], %[" X "]\n\t"                                               \
    "vpaddw %[" X "], %[" B "], %[" B "]\n\t"
#define FSB_BLK(G, SP, X, Y, q)                                                             \
    FSB_HALF##G(SP, "0", X, Y) FSB_WIDEN(X, "a" #q, "b" #q)                                 \
    FSB_HALF##G(SP, "32", X, Y) FSB_WIDEN(X, "c" #q, "d" #q)
#define FSB_TAB7 "vmovdqu (%[l0],%[j]), %[T0]\n\tvmovdqu 32(%[l0],%[j]), %[T1]\n\t"
#define FSB_TAB6                                                                            \
    FSB_TAB7 "vmovdqu 64(%[l0],%[j]), %[T2]\n\tvmovdqu 96(%[l0],%[j]), %[T3]\n\t"
#define FSB_ACC(q) [a##q] "+x"(A##q), [b##q] "+x"(B##q), [c##q] "+x"(C##q), [d##q] "+x"(D##q)
/* tables and temporaries: LUT7 2 + 4, LUT6 4 + 3 (both blocks share y0); + 8 acc + w */
#define FSB_TMP7 [T0] "=&x"(T0), [T1] "=&x"(T1), [x0] "=&x"(x0), [y0] "=&x"(y0)
#define FSB_TMP6 FSB_TMP7, [T2] "=&x"(T2), [T3] "=&x"(T3)
#define FSB_TMP27 FSB_TMP7, [x1] "=&x"(x1), [y1] "=&x"(y1)
#define FSB_TMP26 FSB_TMP6, [x1] "=&x"(x1)
#define FSB_Y7 "y1"
#define FSB_Y6 "y0"

#define FSB_DEFINE(G)                                                                       \
    FS_T_AVX2 FS_INLINE void fsb##G##_blocks(const uint8_t *s0, const uint8_t *s1, int64_t m,\
                                             const uint8_t *l0, uint16_t *o0, uint16_t *o1) { \
        const __m256i w = _mm256_load_si256((const __m256i *)fsq_c_w);                      \
        __m256i A0 = _mm256_setzero_si256(), B0 = A0, C0 = A0, D0 = A0;                     \
        __m256i A1 = A0, B1 = A0, C1 = A0, D1 = A0;                                         \
        __m256i T0, T1, T2, T3, x0, y0, x1, y1;                                             \
        int64_t j = 0, end = FSL_STEP##G * (m / (2 * (G == 7 ? 2 : 4)));                    \
        (void)T2, (void)T3, (void)x1, (void)y1;                                             \
        if (end > 0 && s1) {                                                                \
            __asm__(FSL_LOOP(FSL_STEP##G, FSB_TAB##G FSB_BLK(G, "s0", "x0", "y0", 0)        \
                                              FSB_BLK(G, "s1", "x1", FSB_Y##G, 1))          \
                    : FSB_ACC(0), FSB_ACC(1), FSB_TMP2##G, [j] "+r"(j)                      \
                    : [s0] "r"(s0), [s1] "r"(s1), [l0] "r"(l0), [end] "r"(end), [w] "x"(w)  \
                    : "cc", "memory");                                                      \
        } else if (end > 0) {                                                               \
            __asm__(FSL_LOOP(FSL_STEP##G, FSB_TAB##G FSB_BLK(G, "s0", "x0", "y0", 0))       \
                    : FSB_ACC(0), FSB_TMP##G, [j] "+r"(j)                                   \
                    : [s0] "r"(s0), [l0] "r"(l0), [end] "r"(end), [w] "x"(w)                \
                    : "cc", "memory");                                                      \
        }                                                                                   \
        if (end < 16 * m) {                                                                 \
            fsl_tail(NULL, s0, end, m, l0, w, &A0, &B0, &C0, &D0);                          \
            if (s1) fsl_tail(NULL, s1, end, m, l0, w, &A1, &B1, &C1, &D1);                  \
        }                                                                                   \
        avx2_store(A0, B0, o0);                                                             \
        avx2_store(C0, D0, o0 + 16);                                                        \
        if (s1) {                                                                           \
            avx2_store(A1, B1, o1);                                                         \
            avx2_store(C1, D1, o1 + 16);                                                    \
        }                                                                                   \
    }                                                                                       \
    /* one query (LUT row L, output row O) over blocks [b0, b1) of the split chunk */       \
    FS_T_AVX2 __attribute__((noinline)) static void fsb##G##_query(                         \
        int64_t b0, int64_t b1, int64_t n, int64_t m, const uint8_t *L, uint16_t *O,        \
        const uint8_t *split, int64_t sstride) {                                            \
        uint16_t tmp[64];                                                                   \
        for (int64_t b = b0; b < b1; b += 2) {                                              \
            const int64_t base = 32 * b, nv = n - base < 64 ? n - base : 64;                \
            const uint8_t *s0 = split + (b - b0) * sstride;                                 \
            uint16_t *o = nv == 64 ? O + base : tmp;                                        \
            fsb##G##_blocks(s0, b + 1 < b1 ? s0 + sstride : NULL, m, L, o, o + 32);         \
            if (nv < 64) memcpy(O + base, tmp, (size_t)nv * sizeof(uint16_t));             \
        }                                                                                   \
    }
FSB_DEFINE(7)
FSB_DEFINE(6)

/* --- fsl groups: QB (2 or 1) queries x one block, the indices memory operands, the tables
 * loaded per query (t, x), temporaries u, y. */
#define FS7_PSTEP(LP, A, B, C, D)                                                           \
    "vmovdqu (%[" LP "],%[j]), %[t]\n\t"                                                    \
    "vmovdqu 32(%[" LP "],%[j]), %[x]\n\t"                                                  \
    "vpshufb 32(%[sp],%[j],2), %[t], %[u]\n\t"                                              \
    "vpshufb (%[sp],%[j],2), %[t], %[t]\n\t"                                                \
    "vpshufb 96(%[sp],%[j],2), %[x], %[y]\n\t"                                              \
    "vpshufb 64(%[sp],%[j],2), %[x], %[x]\n\t"                                              \
    "vpaddb %[x], %[t], %[t]\n\t"                                                           \
    "vpaddb %[y], %[u], %[u]\n\t" FSQ_WIDEN(A, B, C, D)
/* one more pair (LUT bytes at OFF, indices at IOL / IOH) added in uint8 into t, u */
#define FS6_ADD(LP, OFF, IOL, IOH)                                                          \
    "vmovdqu " OFF "(%[" LP "],%[j]), %[x]\n\t"                                             \
    "vpshufb " IOH "(%[sp],%[j],2), %[x], %[y]\n\t"                                         \
    "vpshufb " IOL "(%[sp],%[j],2), %[x], %[x]\n\t"                                         \
    "vpaddb %[x], %[t], %[t]\n\t"                                                           \
    "vpaddb %[y], %[u], %[u]\n\t"
#define FS6_PSTEP(LP, A, B, C, D)                                                           \
    "vmovdqu (%[" LP "],%[j]), %[t]\n\t"                                                    \
    "vpshufb 32(%[sp],%[j],2), %[t], %[u]\n\t"                                              \
    "vpshufb (%[sp],%[j],2), %[t], %[t]\n\t"                                                \
    FS6_ADD(LP, "32", "64", "96") FS6_ADD(LP, "64", "128", "160")                           \
    FS6_ADD(LP, "96", "192", "224") FSQ_WIDEN(A, B, C, D)

#define FSL_DEFINE_BLOCK(G, QB)                                                             \
    FS_T_AVX2 FS_INLINE void fsl##G##_block##QB(const uint8_t *sp, int64_t m,               \
                                                const uint8_t *const *L,                    \
                                                uint16_t *const *o) {                       \
        __m256i A0, B0, C0, D0, A1, B1, C1, D1, A2, B2, C2, D2;                             \
        const __m256i w = _mm256_load_si256((const __m256i *)fsq_c_w);                      \
        const uint8_t *l0 = L[0], *l1 = L[QB > 1 ? 1 : 0], *l2 = l0;                        \
        int64_t j = 0, end = FSL_STEP##G * (m / (2 * (G == 7 ? 2 : 4)));                    \
        __m256i t, u, x, y;                                                                 \
        if (end > 0) {                                                                      \
            __asm__(FSQ_ZERO##QB FSL_LOOP(FSL_STEP##G, FSQ_BODY##QB(FS##G##_PSTEP))         \
                    : FSQ_OPS##QB, [t] "=&x"(t), [u] "=&x"(u), [x] "=&x"(x),                \
                      [y] "=&x"(y), [j] "+r"(j)                                             \
                    : [sp] "r"(sp), [l0] "r"(l0), [l1] "r"(l1), [l2] "r"(l2),              \
                      [end] "r"(end), [w] "x"(w)                                            \
                    : "cc", "memory");                                                      \
        } else {                                                                            \
            A0 = B0 = C0 = D0 = A1 = B1 = C1 = D1 = _mm256_setzero_si256();                 \
        }                                                                                   \
        (void)l1, (void)l2, (void)A2, (void)B2, (void)C2, (void)D2;                         \
        if (end < 16 * m) {                                                                 \
            fsl_tail(NULL, sp, end, m, l0, w, &A0, &B0, &C0, &D0);                          \
            if (QB > 1) fsl_tail(NULL, sp, end, m, l1, w, &A1, &B1, &C1, &D1);              \
        }                                                                                   \
        avx2_store(A0, B0, o[0]);                                                           \
        avx2_store(C0, D0, o[0] + 16);                                                      \
        if (QB > 1) {                                                                       \
            avx2_store(A1, B1, o[QB > 1 ? 1 : 0]);                                          \
            avx2_store(C1, D1, o[QB > 1 ? 1 : 0] + 16);                                     \
        }                                                                                   \
    }
FSL_DEFINE_BLOCK(7, 2)
FSL_DEFINE_BLOCK(7, 1)
FSL_DEFINE_BLOCK(6, 2)
FSL_DEFINE_BLOCK(6, 1)

/* --- LUT7, one query, codes split in registers: lo, hi (pair 1), lo2, hi2 (pair 2) */
#define FS7_CODE                                                                            \
    "vmovdqu (%[blk],%[j]), %[lo]\n\t"                                                      \
    "vmovdqu 32(%[blk],%[j]), %[lo2]\n\t"                                                   \
    "vpsrlw $4, %[lo], %[hi]\n\t"                                                           \
    "vpsrlw $4, %[lo2], %[hi2]\n\t"                                                         \
    "vpand %[mask], %[lo], %[lo]\n\t"                                                       \
    "vpand %[mask], %[hi], %[hi]\n\t"                                                       \
    "vpand %[mask], %[lo2], %[lo2]\n\t"                                                     \
    "vpand %[mask], %[hi2], %[hi2]\n\t"
#define FS7_STEP(LP, A, B, C, D)                                                            \
    "vmovdqu (%[" LP "],%[j]), %[t]\n\t"                                                    \
    "vmovdqu 32(%[" LP "],%[j]), %[x]\n\t"                                                  \
    "vpshufb %[hi], %[t], %[u]\n\t"                                                         \
    "vpshufb %[lo], %[t], %[t]\n\t"                                                         \
    "vpshufb %[hi2], %[x], %[y]\n\t"                                                        \
    "vpshufb %[lo2], %[x], %[x]\n\t"                                                        \
    "vpaddb %[x], %[t], %[t]\n\t"                                                           \
    "vpaddb %[y], %[u], %[u]\n\t" FSQ_WIDEN(A, B, C, D)

FS_T_AVX2 FS_INLINE void fsl7_direct(const uint8_t *blk, int64_t m, const uint8_t *l0,
                                     uint16_t *o) {
    __m256i A0, B0, C0, D0;
    const __m256i mask = _mm256_load_si256((const __m256i *)fsq_c_mask);
    const __m256i w = _mm256_load_si256((const __m256i *)fsq_c_w);
    int64_t j = 0, end = 64 * (m >> 2);
    if (end > 0) {
        __m256i t, u, x, y, lo, hi, lo2, hi2;
        __asm__(FSQ_ZERO1 FSL_LOOP(64, FS7_CODE FSQ_BODY1(FS7_STEP))
                : FSQ_OPS1, [t] "=&x"(t), [u] "=&x"(u), [x] "=&x"(x), [y] "=&x"(y),
                  [lo] "=&x"(lo), [hi] "=&x"(hi), [lo2] "=&x"(lo2), [hi2] "=&x"(hi2),
                  [j] "+r"(j)
                : [blk] "r"(blk), [l0] "r"(l0), [end] "r"(end), [mask] "x"(mask), [w] "x"(w)
                : "cc", "memory");
    } else {
        A0 = B0 = C0 = D0 = _mm256_setzero_si256();
    }
    if (end < 16 * m) fsl_tail(blk, NULL, end, m, l0, w, &A0, &B0, &C0, &D0);
    avx2_store(A0, B0, o);
    avx2_store(C0, D0, o + 16);
}

/* one query group over blocks [b0, b1) (as fsq_group##QB); split NULL: LUT7, QB = 1,
 * fsl7_direct */
#define FSL_DEFINE_GROUP(G, QB)                                                             \
    FS_T_AVX2 __attribute__((noinline)) static void fsl##G##_group##QB(                     \
        const uint8_t *blocks, int64_t bstride, int64_t b0, int64_t b1, int64_t n,          \
        int64_t m, const uint8_t *const *R, uint16_t *const *O, const uint8_t *split,       \
        int64_t sstride) {                                                                  \
        uint16_t tmp[QB * 32], *o[QB];                                                      \
        for (int64_t b = b0; b < b1; b++) {                                                 \
            int64_t base = 32 * b, nv = n - base < 32 ? n - base : 32;                      \
            for (int q = 0; q < QB; q++) o[q] = nv == 32 ? O[q] + base : tmp + 32 * q;      \
            if (G == 7 && QB == 1 && !split)                                                \
                fsl7_direct(blocks + b * bstride, m, R[0], o[0]);                           \
            else                                                                            \
                fsl##G##_block##QB(split + (b - b0) * sstride, m, R, o);                    \
            if (nv < 32)                                                                    \
                for (int q = 0; q < QB; q++)                                                \
                    memcpy(O[q] + base, tmp + 32 * q, (size_t)nv * sizeof(uint16_t));      \
        }                                                                                   \
    }
FSL_DEFINE_GROUP(7, 2)
FSL_DEFINE_GROUP(7, 1)
FSL_DEFINE_GROUP(6, 2)
FSL_DEFINE_GROUP(6, 1)

typedef void (*fsq_group_fn)(const uint8_t *, int64_t, int64_t, int64_t, int64_t, int64_t,
                             const uint8_t *const *, uint16_t *const *, const uint8_t *,
                             int64_t);
/* group functions by mode (0 exact, 1 LUT7, 2 LUT6) and group size - 1 */
static const fsq_group_fn fsq_group_fns[3][3] = {
    {fsq_group1, fsq_group2, fsq_group3},
    {fsl7_group1, fsl7_group2, fsl7_group2},
    {fsl6_group1, fsl6_group2, fsl6_group2}};

/* stack bytes for the pre-split indices (2 x the codes); chunk: target bytes per chunk of
 * blocks (each query group sweeps the chunk while its indices stay in L1) */
#ifndef FSQ_SPLIT_BYTES
#define FSQ_SPLIT_BYTES (48 * 1024)
#endif
#ifndef FSQ_SPLIT_CHUNK
#define FSQ_SPLIT_CHUNK (16 * 1024)
#endif
/* pre-split the codes when at least this many queries share them */
#ifndef FSQ_SPLIT_MIN_NQ
#define FSQ_SPLIT_MIN_NQ 4
#endif
/* fast modes: the fast kernels from this many queries (1: fsl7_direct; 2.. below: the
 * exact kernel); fsb (two blocks per chunk) while two blocks' indices fit this */
#ifndef FSL_SPLIT_MIN_NQ
#define FSL_SPLIT_MIN_NQ 4
#endif
#ifndef FSL_B2_BYTES
#define FSL_B2_BYTES (24 * 1024)
#endif

/* mode: 0 exact, 1 LUT7, 2 LUT6; split: the chunk's indices or NULL (direct kernels);
 * b2: fsb kernels (fast modes with split) */
static void fsq_groups(const uint8_t *blocks, int64_t bstride, int64_t b0, int64_t b1,
                       int64_t n, int64_t m, const uint8_t *lut, int64_t lstride,
                       const int64_t *qidx, int64_t nq, uint16_t *out, int64_t ldo,
                       const uint8_t *split, int64_t sstride, int mode, int b2) {
    if (b2) {
        for (int64_t t = 0; t < nq; t++) {
            const uint8_t *L = lut + qidx[t] * lstride;
            if (mode == 1) fsb7_query(b0, b1, n, m, L, out + t * ldo, split, sstride);
            else fsb6_query(b0, b1, n, m, L, out + t * ldo, split, sstride);
        }
        return;
    }
    for (int64_t t = 0; t < nq;) {
        int qb = nq - t >= 3 ? 3 : (int)(nq - t);
        if (mode && qb > 2) qb = 2;
        if (mode == 1 && !split) qb = 1; /* fsl7_direct: one query at a time */
        const uint8_t *R[3];
        uint16_t *O[3];
        for (int q = 0; q < qb; q++) {
            R[q] = lut + qidx[t + q] * lstride;
            O[q] = out + (t + q) * ldo;
        }
        fsq_group_fns[mode][qb - 1](blocks, bstride, b0, b1, n, m, R, O, split, sstride);
        t += qb;
    }
}

/* the pre-split path: its stack buffer lives only in this frame */
__attribute__((noinline)) static void fsq_avx2_split(
    const uint8_t *blocks, int64_t bstride, int64_t nb, int64_t n, int64_t m,
    const uint8_t *lut, int64_t lstride, const int64_t *qidx, int64_t nq, uint16_t *out,
    int64_t ldo, int64_t sstride, int mode) {
    uint8_t split[FSQ_SPLIT_BYTES] __attribute__((aligned(32)));
    /* fast modes: fsb (pairs of blocks per chunk) where two blocks' indices fit */
    const int b2 = mode && 2 * sstride <= FSL_B2_BYTES && 2 * sstride <= FSQ_SPLIT_BYTES;
    int64_t cb = sstride < FSQ_SPLIT_CHUNK ? FSQ_SPLIT_CHUNK / sstride : 1;
    if (b2) cb = cb < 2 ? 2 : cb & ~(int64_t)1;
    for (int64_t b0 = 0; b0 < nb; b0 += cb) {
        int64_t b1 = b0 + cb < nb ? b0 + cb : nb;
        for (int64_t b = b0; b < b1; b++)
            fsq_split(blocks + b * bstride, m, split + (b - b0) * sstride);
        fsq_groups(blocks, bstride, b0, b1, n, m, lut, lstride, qidx, nq, out, ldo, split,
                   sstride, mode, b2);
    }
}

/* mode: 0 exact, 1 LUT7, 2 LUT6 */
static void fsq_avx2(const uint8_t *blocks, int64_t bstride, int64_t nb, int64_t n, int64_t m,
                     const uint8_t *lut, int64_t lstride, const int64_t *qidx, int64_t nq,
                     uint16_t *out, int64_t ldo, int mode) {
    const int64_t sstride = 64 * ((m + 1) >> 1);
    if (mode && nq > 1 && nq < FSL_SPLIT_MIN_NQ) mode = 0;
    if (mode && (nq == 1 || sstride > FSQ_SPLIT_BYTES))
        /* LUT7 direct, also for LUT6 (entries <= 63 are <= 127) */
        fsq_groups(blocks, bstride, 0, nb, n, m, lut, lstride, qidx, nq, out, ldo, NULL, 0, 1,
                   0);
    else if (!mode && (nq < FSQ_SPLIT_MIN_NQ || sstride > FSQ_SPLIT_BYTES))
        fsq_groups(blocks, bstride, 0, nb, n, m, lut, lstride, qidx, nq, out, ldo, NULL, 0, 0,
                   0);
    else
        fsq_avx2_split(blocks, bstride, nb, n, m, lut, lstride, qidx, nq, out, ldo, sstride,
                       mode);
}
#endif /* FS_X86 */

/* Scan nblocks blocks of 32 codes for nq queries (single-threaded).
 * Nibble j (0 <= j < m) of block b is the 16 bytes at blocks + b*block_stride + 16*j.
 * Query t uses LUT[j][x] = lut[qidx[t]*lut_stride + 16*j + x].
 * out[t*ldo + v] = sum_j LUT_t[j][nibble_j(v)] mod 2^16 for v < n (n <= 32*nblocks; do not
 * write past n).  backend = id | flags << 8: id 0 best available, 1 scalar, 2 avx2,
 * 3 avx512, 4 avx512vnni (same ids as fs_scan; 3 and 4 run the AVX2 kernel, see above);
 * flags: FS_FLAG_LUT7 (1) = every LUT entry is <= 127, FS_FLAG_LUT6 (2) = every entry is
 * <= 63: faster kernels, same results (see "fast modes"; the scalar kernel ignores them).
 * Returns 0, or -1 if the backend is unavailable or an unknown flag bit is set (negative
 * backends included).  Pointers need not be 64-byte aligned. */
FS_API int64_t fs_scan_q(const uint8_t *blocks, int64_t block_stride, int64_t nblocks, int64_t n,
                         int64_t m, const uint8_t *lut, int64_t lut_stride, const int64_t *qidx,
                         int64_t nq, uint16_t *out, int64_t ldo, int64_t backend) {
    int a = fsq_available();
    const int64_t flags = backend >> 8;
    int64_t be = backend & 0xFF;
    if (flags & ~(int64_t)(FS_FLAG_LUT7 | FS_FLAG_LUT6)) return -1; /* unknown (or negative) */
    const int mode = (flags & FS_FLAG_LUT6) ? 2 : (flags & FS_FLAG_LUT7) ? 1 : 0;
    if (be == FS_BACKEND_AUTO) be = (a & (1 << FS_BACKEND_AVX2)) ? FS_BACKEND_AVX2 : FS_BACKEND_SCALAR;
    if (be < FS_BACKEND_SCALAR || be > FS_BACKEND_AVX512VNNI || !(a & (1 << be))) return -1;
    if (n <= 0 || nq <= 0 || nblocks <= 0) return 0;
    int64_t nb = (n + 31) / 32;
    if (nb > nblocks) nb = nblocks;
    if (m <= 0) {
        for (int64_t t = 0; t < nq; t++) {
            int64_t nv = n < 32 * nb ? n : 32 * nb;
            memset(out + t * ldo, 0, (size_t)nv * sizeof(uint16_t));
        }
        return 0;
    }
#ifdef FS_X86
    if (be != FS_BACKEND_SCALAR) {
        fsq_avx2(blocks, block_stride, nb, n, m, lut, lut_stride, qidx, nq, out, ldo, mode);
        return 0;
    }
#endif
    (void)mode; /* the scalar kernel is exact for any LUT */
    fsq_scalar(blocks, block_stride, nb, n, m, lut, lut_stride, qidx, nq, out, ldo);
    return 0;
}
