/*
 * graph.c -- per-hop integer estimates of the HNSW traversal (vqindex/kernels/graph.py).
 *
 * One kernel, called from the numba traversal through its address (12 int64 arguments, the
 * calling convention of kernels.driver._call_i64x12):
 *
 *   vq_graph_dot4(codes, stride, ids, cnt, qa, lut, nbytes, out, backend, pf, pf_stride, 0)
 *
 * For each t < cnt, row = codes + ids[t] * stride (int32 ids) holds nbytes bytes of 4-bit
 * fields, byte j = field 2j (low nibble) | field 2j+1 (high nibble). lut: 16 uint8 level
 * values, each <= 127. qa: the int8 query arranged per 32-byte chunk c of the row:
 * qa[64c + r] multiplies the low nibble of byte 32c + r, qa[64c + 32 + r] its high nibble
 * (64 * ceil(nbytes / 32) bytes). out[t] (int32) = sum_j lut[field_j] * q_j, exactly (the
 * AVX2 pair sums are <= 2 * 127 * 127 < 2^15, so vpmaddubsw never saturates).
 * backend: 0 best, 1 scalar, 2 AVX2. Returns 0, or -1 for an unsupported backend (the caller
 * then runs the numba twin kernels.graph.dot4_numba, which gives the same integers).
 *
 * pf / pf_stride (optional, pf = 0: none): a second per-row array the caller reads next (the
 * scan factors); its rows are prefetched with the codes.
 * The rows of all ids are prefetched first (the rows are random accesses into the codes);
 * the AVX2 kernel is compiled with __attribute__((target("avx2"))) and selected at run time
 * with __builtin_cpu_supports, as in fastscan.c.
 */
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FS_NO_SIMD)
#define GR_X86 1
#include <immintrin.h>
#endif

#if defined(_WIN32)
#define GR_API __declspec(dllexport)
#else
#define GR_API __attribute__((visibility("default")))
#endif

static int32_t dot4_scalar_row(const uint8_t *row, const int8_t *qa, const uint8_t *lut,
                               int64_t nbytes, int64_t from) {
    int32_t acc = 0;
    for (int64_t j = from; j < nbytes; j++) {
        int64_t c = j >> 5, r = j & 31;
        uint8_t b = row[j];
        acc += (int32_t)lut[b & 15] * (int32_t)qa[64 * c + r];
        acc += (int32_t)lut[b >> 4] * (int32_t)qa[64 * c + 32 + r];
    }
    return acc;
}

static void dot4_scalar(const uint8_t *codes, int64_t stride, const int32_t *ids, int64_t cnt,
                        const int8_t *qa, const uint8_t *lut, int64_t nbytes, int32_t *out) {
    for (int64_t t = 0; t < cnt; t++)
        out[t] = dot4_scalar_row(codes + (int64_t)ids[t] * stride, qa, lut, nbytes, 0);
}

#ifdef GR_X86
#define GR_T_AVX2 __attribute__((target("avx2")))

GR_T_AVX2 static inline __m256i dot4_chunk(const uint8_t *p, const int8_t *q, __m256i L,
                                           __m256i m4, __m256i ones, __m256i acc) {
    __m256i b = _mm256_loadu_si256((const __m256i *)p);
    __m256i lo = _mm256_and_si256(b, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    __m256i vl = _mm256_shuffle_epi8(L, lo);
    __m256i vh = _mm256_shuffle_epi8(L, hi);
    __m256i pl = _mm256_maddubs_epi16(vl, _mm256_loadu_si256((const __m256i *)q));
    __m256i ph = _mm256_maddubs_epi16(vh, _mm256_loadu_si256((const __m256i *)(q + 32)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pl, ones));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(ph, ones));
}

GR_T_AVX2 static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

GR_T_AVX2 static void dot4_avx2(const uint8_t *codes, int64_t stride, const int32_t *ids,
                                int64_t cnt, const int8_t *qa, const uint8_t *lut,
                                int64_t nbytes, int32_t *out, const char *pf,
                                int64_t pf_stride) {
    const __m256i L = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lut));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t full = nbytes >> 5;
    for (int64_t t = 0; t < cnt; t++) {
        const char *row = (const char *)(codes + (int64_t)ids[t] * stride);
        for (int64_t o = 0; o < nbytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
        if (pf) _mm_prefetch(pf + (int64_t)ids[t] * pf_stride, _MM_HINT_T0);
    }
    int64_t t = 0;
    for (; t + 2 <= cnt; t += 2) {  /* two rows at a time: independent dependency chains */
        const uint8_t *r0 = codes + (int64_t)ids[t] * stride;
        const uint8_t *r1 = codes + (int64_t)ids[t + 1] * stride;
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (int64_t c = 0; c < full; c++) {
            a0 = dot4_chunk(r0 + 32 * c, qa + 64 * c, L, m4, ones, a0);
            a1 = dot4_chunk(r1 + 32 * c, qa + 64 * c, L, m4, ones, a1);
        }
        out[t] = hsum_epi32(a0) + dot4_scalar_row(r0, qa, lut, nbytes, full << 5);
        out[t + 1] = hsum_epi32(a1) + dot4_scalar_row(r1, qa, lut, nbytes, full << 5);
    }
    for (; t < cnt; t++) {
        const uint8_t *r0 = codes + (int64_t)ids[t] * stride;
        __m256i a0 = _mm256_setzero_si256();
        for (int64_t c = 0; c < full; c++) a0 = dot4_chunk(r0 + 32 * c, qa + 64 * c, L, m4, ones, a0);
        out[t] = hsum_epi32(a0) + dot4_scalar_row(r0, qa, lut, nbytes, full << 5);
    }
}
#endif

static int gr_has_avx2(void) {
#ifdef GR_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

GR_API int64_t vq_graph_dot4(int64_t codes, int64_t stride, int64_t ids, int64_t cnt,
                             int64_t qa, int64_t lut, int64_t nbytes, int64_t out,
                             int64_t backend, int64_t pf, int64_t pf_stride, int64_t u3) {
    (void)u3;
    if (backend == 0) backend = gr_has_avx2() ? 2 : 1;
    if (backend == 1) {
        dot4_scalar((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                    (const int8_t *)qa, (const uint8_t *)lut, nbytes, (int32_t *)out);
        return 0;
    }
#ifdef GR_X86
    if (backend == 2 && gr_has_avx2()) {
        dot4_avx2((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                  (const int8_t *)qa, (const uint8_t *)lut, nbytes, (int32_t *)out,
                  (const char *)pf, pf_stride);
        return 0;
    }
#endif
    return -1;
}

/* backends of vq_graph_dot4 this CPU runs: bit 1 scalar, bit 2 AVX2 */
GR_API int64_t vq_graph_backends(void) { return 2 | (gr_has_avx2() ? 4 : 0); }
