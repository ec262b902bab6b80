/*
 * graph.c -- per-hop integer estimates of the HNSW traversal (vqindex/kernels/graph.py).
 *
 * Two kernels, called from the numba traversal through their addresses (12 int64 arguments,
 * the calling convention of kernels.driver._call_i64x12): vq_graph_dot4 for one section of
 * 4-bit fields (below) and vq_graph_planes for codes of 1-bit planes (RaBitQ; described at
 * its code further down).
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
#include <string.h>

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

/* ---------------------------------------------------------------- bit planes
 * vq_graph_planes: row = codes + ids[t] * stride holds P planes of pbytes bytes each (plane p
 * at row + p * pbytes; bit j of byte b is coordinate 8b + j, least significant bit first).
 * q: the int8 query in natural order, zero padded to 64 * ceil(pbytes / 8) bytes. w: P uint8
 * plane weights, each <= 128. out[t] (int32) = sum_p w[p] * (sum of q_j over the set bits of
 * plane p), exactly (AVX2 pair sums <= 2 * 128 * 127 < 2^15: vpmaddubsw never saturates;
 * VNNI's vpdpbusd has no 16-bit stage). */
static int32_t planes_scalar_row(const uint8_t *row, const int8_t *q, const uint8_t *w,
                                 int64_t P, int64_t pbytes, int64_t from) {
    int32_t acc = 0;
    for (int64_t p = 0; p < P; p++) {
        const uint8_t *pl = row + p * pbytes;
        int32_t s = 0;
        for (int64_t b = from; b < pbytes; b++) {
            uint32_t v = pl[b];
            const int8_t *qq = q + 8 * b;
            for (int j = 0; j < 8; j++) s += (int32_t)((v >> j) & 1u) * (int32_t)qq[j];
        }
        acc += (int32_t)w[p] * s;
    }
    return acc;
}

static void planes_scalar(const uint8_t *codes, int64_t stride, const int32_t *ids,
                          int64_t cnt, const int8_t *q, const uint8_t *w, int64_t P,
                          int64_t pbytes, int32_t *out) {
    for (int64_t t = 0; t < cnt; t++)
        out[t] = planes_scalar_row(codes + (int64_t)ids[t] * stride, q, w, P, pbytes, 0);
}

#ifdef GR_X86
static inline void planes_prefetch(const uint8_t *codes, int64_t stride, const int32_t *ids,
                                   int64_t cnt, int64_t nbytes, const char *pf,
                                   int64_t pf_stride) {
    for (int64_t t = 0; t < cnt; t++) {
        const char *row = (const char *)(codes + (int64_t)ids[t] * stride);
        for (int64_t o = 0; o < nbytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
        _mm_prefetch(row + nbytes - 1, _MM_HINT_T0);
        if (pf) _mm_prefetch(pf + (int64_t)ids[t] * pf_stride, _MM_HINT_T0);
    }
}

/* 32 coordinates of one plane: the bits of m as 0 / 0xFF bytes, and-ed with q */
GR_T_AVX2 static inline __m256i planes_sel32(uint32_t m, __m256i qv) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64,
                                         -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16,
                                         32, 64, -128);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)m), spread);
    __m256i mk = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(mk, qv);
}

GR_T_AVX2 static void planes_avx2(const uint8_t *codes, int64_t stride, const int32_t *ids,
                                  int64_t cnt, const int8_t *q, const uint8_t *w, int64_t P,
                                  int64_t pbytes, int32_t *out, const char *pf,
                                  int64_t pf_stride) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int64_t full = pbytes >> 2;  /* 32-coordinate chunks */
    planes_prefetch(codes, stride, ids, cnt, P * pbytes, pf, pf_stride);
    for (int64_t t = 0; t < cnt; t++) {
        const uint8_t *row = codes + (int64_t)ids[t] * stride;
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (int64_t c = 0; c < full; c++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            int64_t p = 0;
            for (; p + 2 <= P; p += 2) {
                uint32_t m0, m1;
                memcpy(&m0, row + p * pbytes + 4 * c, 4);
                memcpy(&m1, row + (p + 1) * pbytes + 4 * c, 4);
                __m256i s0 = _mm256_maddubs_epi16(_mm256_set1_epi8((char)w[p]),
                                                  planes_sel32(m0, qv));
                __m256i s1 = _mm256_maddubs_epi16(_mm256_set1_epi8((char)w[p + 1]),
                                                  planes_sel32(m1, qv));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(s0, ones));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(s1, ones));
            }
            if (p < P) {
                uint32_t m0;
                memcpy(&m0, row + p * pbytes + 4 * c, 4);
                __m256i s0 = _mm256_maddubs_epi16(_mm256_set1_epi8((char)w[p]),
                                                  planes_sel32(m0, qv));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(s0, ones));
            }
        }
        out[t] = hsum_epi32(_mm256_add_epi32(a0, a1))
                 + planes_scalar_row(row, q, w, P, pbytes, full << 2);
    }
}

#define GR_T_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

GR_T_VNNI static inline uint64_t planes_mask64(const uint8_t *p, int64_t n) {
    uint64_t m = 0;
    if (n >= 8) memcpy(&m, p, 8);
    else memcpy(&m, p, (size_t)n);
    return m;
}

GR_T_VNNI static void planes_vnni(const uint8_t *codes, int64_t stride, const int32_t *ids,
                                  int64_t cnt, const int8_t *q, const uint8_t *w, int64_t P,
                                  int64_t pbytes, int32_t *out, const char *pf,
                                  int64_t pf_stride) {
    const int64_t chunks = (pbytes + 7) >> 3;  /* 64-coordinate chunks, the last partial */
    planes_prefetch(codes, stride, ids, cnt, P * pbytes, pf, pf_stride);
    int64_t t = 0;
    for (; t + 2 <= cnt; t += 2) {  /* two rows at a time: four independent chains */
        const uint8_t *r0 = codes + (int64_t)ids[t] * stride;
        const uint8_t *r1 = codes + (int64_t)ids[t + 1] * stride;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        __m512i b0 = _mm512_setzero_si512(), b1 = _mm512_setzero_si512();
        for (int64_t c = 0; c < chunks; c++) {
            const __m512i qv = _mm512_loadu_si512((const void *)(q + 64 * c));
            const int64_t nb = pbytes - 8 * c;
            int64_t p = 0;
            for (; p + 2 <= P; p += 2) {
                const __m512i w0 = _mm512_set1_epi8((char)w[p]);
                const __m512i w1 = _mm512_set1_epi8((char)w[p + 1]);
                const int64_t o0 = p * pbytes + 8 * c, o1 = o0 + pbytes;
                a0 = _mm512_dpbusd_epi32(a0, w0, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r0 + o0, nb)), qv));
                b0 = _mm512_dpbusd_epi32(b0, w0, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r1 + o0, nb)), qv));
                a1 = _mm512_dpbusd_epi32(a1, w1, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r0 + o1, nb)), qv));
                b1 = _mm512_dpbusd_epi32(b1, w1, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r1 + o1, nb)), qv));
            }
            if (p < P) {
                const __m512i w0 = _mm512_set1_epi8((char)w[p]);
                const int64_t o0 = p * pbytes + 8 * c;
                a0 = _mm512_dpbusd_epi32(a0, w0, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r0 + o0, nb)), qv));
                b0 = _mm512_dpbusd_epi32(b0, w0, _mm512_maskz_mov_epi8(
                    _cvtu64_mask64(planes_mask64(r1 + o0, nb)), qv));
            }
        }
        out[t] = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
        out[t + 1] = _mm512_reduce_add_epi32(_mm512_add_epi32(b0, b1));
    }
    for (; t < cnt; t++) {
        const uint8_t *r0 = codes + (int64_t)ids[t] * stride;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int64_t c = 0; c < chunks; c++) {
            const __m512i qv = _mm512_loadu_si512((const void *)(q + 64 * c));
            const int64_t nb = pbytes - 8 * c;
            for (int64_t p = 0; p < P; p++) {
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                _mm512_set1_epi8((char)w[p]),
                                                _mm512_maskz_mov_epi8(_cvtu64_mask64(
                                                    planes_mask64(r0 + p * pbytes + 8 * c,
                                                                  nb)), qv));
                if (p & 1) a1 = _mm512_add_epi32(a1, s);
                else a0 = _mm512_add_epi32(a0, s);
            }
        }
        out[t] = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
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

/* ---------------------------------------------------------------- bit planes, float
 * vq_graph_planes_f32: the exact rescoring of the same codes (layout as vq_graph_planes).
 * v: the float32 query in natural order, zero padded to 16 * ceil(pbytes / 2) entries;
 * steps: P float32 plane steps t1_p - t0_p. out[t] (float32) = sum_p steps[p] * S_p with S_p
 * the sum of v_j over the set bits of plane p, in one fixed order on every backend (and in
 * the numba twin kernels.graph.planes_f32_numba), so all give the same bits: 16 lanes,
 * lane l sums v[16c + l] over chunks c in order (a clear bit adds +0.0, which changes
 * nothing), then lanes l and l + h are added for h = 8, 4, 2, 1, then the planes in order. */
static inline uint32_t planes_bits16(const uint8_t *pl, int64_t pbytes, int64_t c) {
    uint32_t m = pl[2 * c];
    if (2 * c + 1 < pbytes) m |= (uint32_t)pl[2 * c + 1] << 8;
    return m;
}

static inline float planes_tree16(float *L) {
    for (int h = 8; h >= 1; h >>= 1)
        for (int l = 0; l < h; l++) L[l] = L[l] + L[l + h];
    return L[0];
}

static float planes_f32_scalar_row(const uint8_t *row, const float *v, const float *steps,
                                   int64_t P, int64_t pbytes) {
    const int64_t chunks = (pbytes + 1) >> 1;
    float out = 0.0f;
    for (int64_t p = 0; p < P; p++) {
        const uint8_t *pl = row + p * pbytes;
        float L[16];
        for (int l = 0; l < 16; l++) L[l] = 0.0f;
        for (int64_t c = 0; c < chunks; c++) {
            uint32_t m = planes_bits16(pl, pbytes, c);
            for (int l = 0; l < 16; l++) L[l] = L[l] + ((m >> l) & 1u ? v[16 * c + l] : 0.0f);
        }
        out = out + steps[p] * planes_tree16(L);
    }
    return out;
}

#ifdef GR_X86
GR_T_AVX2 static void planes_f32_avx2(const uint8_t *codes, int64_t stride, const int32_t *ids,
                                      int64_t cnt, const float *v, const float *steps,
                                      int64_t P, int64_t pbytes, float *out) {
    const int64_t chunks = (pbytes + 1) >> 1;
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    planes_prefetch(codes, stride, ids, cnt, P * pbytes, 0, 0);
    for (int64_t t = 0; t < cnt; t++) {
        const uint8_t *row = codes + (int64_t)ids[t] * stride;
        float o = 0.0f;
        for (int64_t p = 0; p < P; p++) {
            const uint8_t *pl = row + p * pbytes;
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            for (int64_t c = 0; c < chunks; c++) {
                uint32_t m = planes_bits16(pl, pbytes, c);
                __m256i b0 = _mm256_set1_epi32((int32_t)(m & 255u));
                __m256i b1 = _mm256_set1_epi32((int32_t)(m >> 8));
                __m256 k0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b0, bit), bit));
                __m256 k1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b1, bit), bit));
                lo = _mm256_add_ps(lo, _mm256_and_ps(k0, _mm256_loadu_ps(v + 16 * c)));
                hi = _mm256_add_ps(hi, _mm256_and_ps(k1, _mm256_loadu_ps(v + 16 * c + 8)));
            }
            float L[16];
            _mm256_storeu_ps(L, lo);
            _mm256_storeu_ps(L + 8, hi);
            o = o + steps[p] * planes_tree16(L);
        }
        out[t] = o;
    }
}

GR_T_VNNI static void planes_f32_avx512(const uint8_t *codes, int64_t stride,
                                        const int32_t *ids, int64_t cnt, const float *v,
                                        const float *steps, int64_t P, int64_t pbytes,
                                        float *out) {
    const int64_t chunks = (pbytes + 1) >> 1;
    planes_prefetch(codes, stride, ids, cnt, P * pbytes, 0, 0);
    for (int64_t t = 0; t < cnt; t++) {
        const uint8_t *row = codes + (int64_t)ids[t] * stride;
        float o = 0.0f;
        int64_t p = 0;
        for (; p + 2 <= P; p += 2) {  /* two planes: two independent chains */
            const uint8_t *p0 = row + p * pbytes, *p1 = p0 + pbytes;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; c++) {
                const __m512 vc = _mm512_loadu_ps(v + 16 * c);
                a0 = _mm512_mask_add_ps(a0, (__mmask16)planes_bits16(p0, pbytes, c), a0, vc);
                a1 = _mm512_mask_add_ps(a1, (__mmask16)planes_bits16(p1, pbytes, c), a1, vc);
            }
            float L[16], M[16];
            _mm512_storeu_ps(L, a0);
            _mm512_storeu_ps(M, a1);
            o = o + steps[p] * planes_tree16(L);
            o = o + steps[p + 1] * planes_tree16(M);
        }
        if (p < P) {
            const uint8_t *p0 = row + p * pbytes;
            __m512 a0 = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; c++)
                a0 = _mm512_mask_add_ps(a0, (__mmask16)planes_bits16(p0, pbytes, c), a0,
                                        _mm512_loadu_ps(v + 16 * c));
            float L[16];
            _mm512_storeu_ps(L, a0);
            o = o + steps[p] * planes_tree16(L);
        }
        out[t] = o;
    }
}
#endif

static int gr_has_vnni(void) {
#ifdef GR_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                  && __builtin_cpu_supports("avx512vnni")) ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

GR_API int64_t vq_graph_planes(int64_t codes, int64_t stride, int64_t ids, int64_t cnt,
                               int64_t q, int64_t w, int64_t P, int64_t pbytes, int64_t out,
                               int64_t backend, int64_t pf, int64_t pf_stride) {
    if (backend == 0) backend = gr_has_vnni() ? 3 : (gr_has_avx2() ? 2 : 1);
    if (backend == 1) {
        planes_scalar((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                      (const int8_t *)q, (const uint8_t *)w, P, pbytes, (int32_t *)out);
        return 0;
    }
#ifdef GR_X86
    if (backend == 2 && gr_has_avx2()) {
        planes_avx2((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                    (const int8_t *)q, (const uint8_t *)w, P, pbytes, (int32_t *)out,
                    (const char *)pf, pf_stride);
        return 0;
    }
    if (backend == 3 && gr_has_vnni()) {
        planes_vnni((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                    (const int8_t *)q, (const uint8_t *)w, P, pbytes, (int32_t *)out,
                    (const char *)pf, pf_stride);
        return 0;
    }
#endif
    return -1;
}

/* backends of vq_graph_planes this CPU runs: bit 1 scalar, bit 2 AVX2, bit 3 AVX-512 VNNI */
GR_API int64_t vq_graph_planes_backends(void) {
    return 2 | (gr_has_avx2() ? 4 : 0) | (gr_has_vnni() ? 8 : 0);
}

GR_API int64_t vq_graph_planes_f32(int64_t codes, int64_t stride, int64_t ids, int64_t cnt,
                                   int64_t v, int64_t steps, int64_t P, int64_t pbytes,
                                   int64_t out, int64_t backend, int64_t u1, int64_t u2) {
    (void)u1;
    (void)u2;
    if (backend == 0) backend = gr_has_vnni() ? 3 : (gr_has_avx2() ? 2 : 1);
    if (backend == 1) {
        for (int64_t t = 0; t < cnt; t++)
            ((float *)out)[t] = planes_f32_scalar_row(
                (const uint8_t *)codes + (int64_t)((const int32_t *)ids)[t] * stride,
                (const float *)v, (const float *)steps, P, pbytes);
        return 0;
    }
#ifdef GR_X86
    if (backend == 2 && gr_has_avx2()) {
        planes_f32_avx2((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                        (const float *)v, (const float *)steps, P, pbytes, (float *)out);
        return 0;
    }
    if (backend == 3 && gr_has_vnni()) {
        planes_f32_avx512((const uint8_t *)codes, stride, (const int32_t *)ids, cnt,
                          (const float *)v, (const float *)steps, P, pbytes, (float *)out);
        return 0;
    }
#endif
    return -1;
}
