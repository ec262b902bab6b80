/*
 * encode.c -- structured fast rotation and fused scalar encoding for vqindex (ctypes).
 *
 * The numba kernels in vqindex/kernels/rotation.py and vqindex/kernels/quantize.py are the
 * reference; these functions perform the SAME floating-point operations in the SAME order,
 * so their results are bit-identical to the numba ones (tests/test_native_encode.py checks
 * it for every backend).  What has to stay fixed for that:
 *   - a rotation round is   dst[i] = src[perm[i]] * sign[perm[i]]   (exact: sign = +-1),
 *     then Walsh-Hadamard butterflies layer by layer, h = 1, 2, 4, ..., p/2 (u+w, u-w),
 *     then a multiply by scale = 1/sqrt(p) of every element of the block, on [0, p) and,
 *     when p < D, on [D-p, D) (the two blocks overlap);
 *   - sums of squares and dot products are float64 with 16 partial sums (element i goes
 *     to partial i mod 16), added up in order 0..15 at the end;
 *   - no FMA contraction (built with -ffp-contract=off; intrinsics use separate mul/add).
 * Butterfly layers commute mathematically but not in rounding, so the layer order is kept.
 *
 * Backends: 1 scalar C (auto-vectorised by the compiler where it can), 2 AVX2, 3 AVX-512F;
 * 0 = the best the CPU supports (runtime detection, one library built with generic flags).
 * Functions work on a row range [r0, r1) so that the caller can split rows over threads
 * (ctypes releases the GIL).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FS_NO_SIMD)
#define VQ_X86 1
#include <immintrin.h>
#endif

#if defined(_WIN32)
#define VQ_API __declspec(dllexport)
#else
#define VQ_API __attribute__((visibility("default")))
#endif

#define VQ_SCALAR 1
#define VQ_AVX2 2
#define VQ_AVX512 3

#define VQ_FLT_EPS 1.1920928955078125e-07

/*
 * Rotation core.  Rows are rotated LANES = 16 at a time in a transposed tile t[i*16 + r]
 * (coordinate i of row r), so that
 *   - a permutation round is a copy of 64-byte vectors (no gathers: Zen 4 gathers cost more
 *     than the whole transform), and
 *   - every butterfly layer, for every stride, is a vertical 16-wide add/sub: in the flat
 *     view of the tile a layer of stride h is a layer of stride 16*h.
 * The numba reference (kernels/rotation.py) uses the same layout.
 */
#define LANES 16

/* layers of stride h0, 2*h0, ..., P/2 on a flat float array (h0 >= 16); the last layer
 * multiplies by scale */
typedef void (*layers_fn)(float *a, int64_t P, int64_t h0, float scale);
/* dst[i] = src[perm[i]] * sp[i] for tile vectors i < dim */
typedef void (*permute_fn)(float *dst, const float *src, const int32_t *perm, const float *sp,
                           int64_t dim, int inverse);
/* tile <-> rows: t[i*16 + r] = x[r*ldx + i] (r < m; zero for m <= r < 16) and back */
typedef void (*load_fn)(const float *x, int64_t ldx, int64_t m, int64_t dim, float *t);
typedef void (*store_fn)(const float *t, int64_t m, int64_t dim, float *out, int64_t ldo);

static void layers_scalar(float *a, int64_t P, int64_t h, float scale) {
    for (; h < P; h *= 2) {
        int last = (2 * h == P);
        for (int64_t i = 0; i < P; i += 2 * h) {
            for (int64_t j = i; j < i + h; j++) {
                float u = a[j], w = a[j + h];
                float s = u + w, d = u - w;
                if (last) { s *= scale; d *= scale; }
                a[j] = s;
                a[j + h] = d;
            }
        }
    }
}

static void permute_scalar(float *dst, const float *src, const int32_t *perm, const float *sp,
                           int64_t dim, int inverse) {
    for (int64_t i = 0; i < dim; i++) {
        const float s = sp[i];
        const int64_t k = perm[i];
        float *d = inverse ? dst + k * LANES : dst + i * LANES;
        const float *q = inverse ? src + i * LANES : src + k * LANES;
        for (int c = 0; c < LANES; c++) d[c] = q[c] * s;
    }
}

static void load_scalar(const float *x, int64_t ldx, int64_t m, int64_t dim, float *t) {
    if (m < LANES) memset(t, 0, (size_t)dim * LANES * sizeof(float));
    for (int64_t r = 0; r < m; r++)
        for (int64_t i = 0; i < dim; i++) t[i * LANES + r] = x[r * ldx + i];
}

static void store_scalar(const float *t, int64_t m, int64_t dim, float *out, int64_t ldo) {
    for (int64_t r = 0; r < m; r++)
        for (int64_t i = 0; i < dim; i++) out[r * ldo + i] = t[i * LANES + r];
}

#ifdef VQ_X86
__attribute__((target("avx2")))
static void layers_avx2(float *a, int64_t P, int64_t h, float scale) {
    const __m256 sc = _mm256_set1_ps(scale);
    while (h < P) {
        if (4 * h <= P) {  /* two layers (h, 2h) per sweep */
            int last = (4 * h == P);
            for (int64_t i = 0; i < P; i += 4 * h) {
                for (int64_t j = i; j < i + h; j += 8) {
                    __m256 x0 = _mm256_loadu_ps(a + j), x1 = _mm256_loadu_ps(a + j + h);
                    __m256 x2 = _mm256_loadu_ps(a + j + 2 * h), x3 = _mm256_loadu_ps(a + j + 3 * h);
                    __m256 s0 = _mm256_add_ps(x0, x1), d0 = _mm256_sub_ps(x0, x1);
                    __m256 s1 = _mm256_add_ps(x2, x3), d1 = _mm256_sub_ps(x2, x3);
                    __m256 y0 = _mm256_add_ps(s0, s1), y1 = _mm256_add_ps(d0, d1);
                    __m256 y2 = _mm256_sub_ps(s0, s1), y3 = _mm256_sub_ps(d0, d1);
                    if (last) {
                        y0 = _mm256_mul_ps(y0, sc); y1 = _mm256_mul_ps(y1, sc);
                        y2 = _mm256_mul_ps(y2, sc); y3 = _mm256_mul_ps(y3, sc);
                    }
                    _mm256_storeu_ps(a + j, y0); _mm256_storeu_ps(a + j + h, y1);
                    _mm256_storeu_ps(a + j + 2 * h, y2); _mm256_storeu_ps(a + j + 3 * h, y3);
                }
            }
            h *= 4;
        } else {
            for (int64_t i = 0; i < P; i += 2 * h) {
                for (int64_t j = i; j < i + h; j += 8) {
                    __m256 u = _mm256_loadu_ps(a + j), w = _mm256_loadu_ps(a + j + h);
                    _mm256_storeu_ps(a + j, _mm256_mul_ps(_mm256_add_ps(u, w), sc));
                    _mm256_storeu_ps(a + j + h, _mm256_mul_ps(_mm256_sub_ps(u, w), sc));
                }
            }
            h *= 2;
        }
    }
}

__attribute__((target("avx2")))
static void permute_avx2(float *dst, const float *src, const int32_t *perm, const float *sp,
                         int64_t dim, int inverse) {
    for (int64_t i = 0; i < dim; i++) {
        const __m256 s = _mm256_set1_ps(sp[i]);
        const int64_t k = perm[i];
        float *d = inverse ? dst + k * LANES : dst + i * LANES;
        const float *q = inverse ? src + i * LANES : src + k * LANES;
        _mm256_storeu_ps(d, _mm256_mul_ps(_mm256_loadu_ps(q), s));
        _mm256_storeu_ps(d + 8, _mm256_mul_ps(_mm256_loadu_ps(q + 8), s));
    }
}

/* ------------------------------------------------------------------ AVX-512 */

__attribute__((target("avx512f")))
static void layers_avx512(float *a, int64_t P, int64_t h, float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    while (h < P) {
        if (8 * h <= P) {  /* three layers (h, 2h, 4h) per sweep */
            int last = (8 * h == P);
            for (int64_t i = 0; i < P; i += 8 * h) {
                for (int64_t j = i; j < i + h; j += 16) {
                    __m512 x[8], y[8];
                    for (int k = 0; k < 8; k++) x[k] = _mm512_loadu_ps(a + j + k * h);
                    for (int k = 0; k < 8; k += 2) {   /* layer h */
                        y[k] = _mm512_add_ps(x[k], x[k + 1]);
                        y[k + 1] = _mm512_sub_ps(x[k], x[k + 1]);
                    }
                    for (int k = 0; k < 8; k += 4) {   /* layer 2h */
                        x[k] = _mm512_add_ps(y[k], y[k + 2]);
                        x[k + 2] = _mm512_sub_ps(y[k], y[k + 2]);
                        x[k + 1] = _mm512_add_ps(y[k + 1], y[k + 3]);
                        x[k + 3] = _mm512_sub_ps(y[k + 1], y[k + 3]);
                    }
                    for (int k = 0; k < 4; k++) {      /* layer 4h */
                        y[k] = _mm512_add_ps(x[k], x[k + 4]);
                        y[k + 4] = _mm512_sub_ps(x[k], x[k + 4]);
                    }
                    if (last)
                        for (int k = 0; k < 8; k++) y[k] = _mm512_mul_ps(y[k], sc);
                    for (int k = 0; k < 8; k++) _mm512_storeu_ps(a + j + k * h, y[k]);
                }
            }
            h *= 8;
        } else if (4 * h <= P) {
            int last = (4 * h == P);
            for (int64_t i = 0; i < P; i += 4 * h) {
                for (int64_t j = i; j < i + h; j += 16) {
                    __m512 x0 = _mm512_loadu_ps(a + j), x1 = _mm512_loadu_ps(a + j + h);
                    __m512 x2 = _mm512_loadu_ps(a + j + 2 * h), x3 = _mm512_loadu_ps(a + j + 3 * h);
                    __m512 s0 = _mm512_add_ps(x0, x1), d0 = _mm512_sub_ps(x0, x1);
                    __m512 s1 = _mm512_add_ps(x2, x3), d1 = _mm512_sub_ps(x2, x3);
                    __m512 y0 = _mm512_add_ps(s0, s1), y1 = _mm512_add_ps(d0, d1);
                    __m512 y2 = _mm512_sub_ps(s0, s1), y3 = _mm512_sub_ps(d0, d1);
                    if (last) {
                        y0 = _mm512_mul_ps(y0, sc); y1 = _mm512_mul_ps(y1, sc);
                        y2 = _mm512_mul_ps(y2, sc); y3 = _mm512_mul_ps(y3, sc);
                    }
                    _mm512_storeu_ps(a + j, y0); _mm512_storeu_ps(a + j + h, y1);
                    _mm512_storeu_ps(a + j + 2 * h, y2); _mm512_storeu_ps(a + j + 3 * h, y3);
                }
            }
            h *= 4;
        } else {
            for (int64_t i = 0; i < P; i += 2 * h) {
                for (int64_t j = i; j < i + h; j += 16) {
                    __m512 u = _mm512_loadu_ps(a + j), w = _mm512_loadu_ps(a + j + h);
                    _mm512_storeu_ps(a + j, _mm512_mul_ps(_mm512_add_ps(u, w), sc));
                    _mm512_storeu_ps(a + j + h, _mm512_mul_ps(_mm512_sub_ps(u, w), sc));
                }
            }
            h *= 2;
        }
    }
}

__attribute__((target("avx512f")))
static void permute_avx512(float *dst, const float *src, const int32_t *perm, const float *sp,
                           int64_t dim, int inverse) {
    if (inverse) {
        for (int64_t i = 0; i < dim; i++)
            _mm512_storeu_ps(dst + (int64_t)perm[i] * LANES,
                             _mm512_mul_ps(_mm512_loadu_ps(src + i * LANES), _mm512_set1_ps(sp[i])));
    } else {
        for (int64_t i = 0; i < dim; i++)
            _mm512_storeu_ps(dst + i * LANES,
                             _mm512_mul_ps(_mm512_loadu_ps(src + (int64_t)perm[i] * LANES),
                                           _mm512_set1_ps(sp[i])));
    }
}

/* in-place transpose of a 16 x 16 float block held in 16 registers */
__attribute__((target("avx512f")))
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* u[4g + c], 128-bit lane L = rows 4g..4g+3 at column 4L + c */
    for (int c = 0; c < 4; c++) {
        __m512 v88 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        __m512 vdd = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 w88 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 wdd = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v88, w88, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v88, w88, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(vdd, wdd, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(vdd, wdd, 0xDD);
    }
}

__attribute__((target("avx512f")))
static void load_avx512(const float *x, int64_t ldx, int64_t m, int64_t dim, float *t) {
    int64_t i0 = 0;
    __m512 r[16];
    for (; i0 + 16 <= dim; i0 += 16) {
        for (int k = 0; k < 16; k++)
            r[k] = k < m ? _mm512_loadu_ps(x + k * ldx + i0) : _mm512_setzero_ps();
        transpose16(r);
        for (int k = 0; k < 16; k++) _mm512_storeu_ps(t + (i0 + k) * LANES, r[k]);
    }
    for (int64_t i = i0; i < dim; i++)
        for (int64_t k = 0; k < LANES; k++) t[i * LANES + k] = k < m ? x[k * ldx + i] : 0.0f;
}

__attribute__((target("avx512f")))
static void store_avx512(const float *t, int64_t m, int64_t dim, float *out, int64_t ldo) {
    int64_t i0 = 0;
    __m512 r[16];
    for (; i0 + 16 <= dim; i0 += 16) {
        for (int k = 0; k < 16; k++) r[k] = _mm512_loadu_ps(t + (i0 + k) * LANES);
        transpose16(r);
        for (int k = 0; k < m; k++) _mm512_storeu_ps(out + k * ldo + i0, r[k]);
    }
    for (int64_t k = 0; k < m; k++)
        for (int64_t i = i0; i < dim; i++) out[k * ldo + i] = t[i * LANES + k];
}
#endif /* VQ_X86 */

/* ------------------------------------------------------------------ dispatch */

static int cpu_features(void) {
    int f = 0;
#ifdef VQ_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) f |= 1 << VQ_AVX2;
    if ((f & (1 << VQ_AVX2)) && __builtin_cpu_supports("avx512f")) f |= 1 << VQ_AVX512;
#endif
    return f | (1 << VQ_SCALAR);
}

/* bit mask of the usable backends (bit b set = backend b runs here) */
VQ_API int vq_encode_backends(void) { return cpu_features(); }

static int pick_backend(int backend) {
    int f = cpu_features();
    if (backend == 0) {
        if (f & (1 << VQ_AVX512)) return VQ_AVX512;
        if (f & (1 << VQ_AVX2)) return VQ_AVX2;
        return VQ_SCALAR;
    }
    if (backend < 0 || backend > 3 || !(f & (1 << backend))) return -1;
    return backend;
}

typedef struct {
    layers_fn layers;
    permute_fn permute;
    load_fn load;
    store_fn store;
} rot_ops;

static rot_ops get_ops(int b) {
    rot_ops o = {layers_scalar, permute_scalar, load_scalar, store_scalar};
    (void)b;
#ifdef VQ_X86
    if (b == VQ_AVX2) { o.layers = layers_avx2; o.permute = permute_avx2; }
    if (b == VQ_AVX512) {
        o.layers = layers_avx512; o.permute = permute_avx512;
        o.load = load_avx512; o.store = store_avx512;
    }
#endif
    return o;
}

/* Rotate the tile in `a` (R, or R^T when inverse), using `b` as scratch; returns the buffer
 * holding the result.  One round: permute with signs, Hadamard on [0, p), on [D-p, D). */
static float *rotate_tile(const rot_ops *o, float *a, float *b, int64_t dim, const float *sp,
                          const int32_t *perms, int64_t rounds, int64_t p, float scale,
                          int inverse) {
    const int64_t P = p * LANES, off = (dim - p) * LANES;
    for (int64_t s = 0; s < rounds; s++) {
        int64_t t = inverse ? rounds - 1 - s : s;
        if (!inverse) {
            o->permute(b, a, perms + t * dim, sp + t * dim, dim, 0);
            o->layers(b, P, LANES, scale);
            if (p < dim) o->layers(b + off, P, LANES, scale);
        } else {
            if (p < dim) o->layers(a + off, P, LANES, scale);
            o->layers(a, P, LANES, scale);
            o->permute(b, a, perms + t * dim, sp + t * dim, dim, 1);
        }
        float *tmp = a; a = b; b = tmp;
    }
    return a;
}

static void *alloc_bytes(size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    void *ptr = NULL;
#if defined(_WIN32)
    ptr = malloc(bytes ? bytes : 64);
#else
    if (posix_memalign(&ptr, 64, bytes ? bytes : 64)) ptr = NULL;
#endif
    return ptr;
}

/* out[r] = R x[r] (inverse=0) or R^T x[r] (inverse=1) for rows [r0, r1).  Returns 0, or
 * -1 for an unusable backend, -2 for an allocation failure. */
VQ_API int vq_fast_rotate(const float *x, int64_t r0, int64_t r1, int64_t dim,
                          const float *sp, const int32_t *perms, int64_t rounds, int64_t p,
                          int inverse, float *out, int backend) {
    int b = pick_backend(backend);
    if (b < 0) return -1;
    rot_ops o = get_ops(b);
    float *ta = alloc_bytes((size_t)dim * LANES * sizeof(float));
    float *tb = alloc_bytes((size_t)dim * LANES * sizeof(float));
    if (!ta || !tb) { free(ta); free(tb); return -2; }
    float scale = (float)(1.0 / sqrt((double)p));
    for (int64_t r = r0; r < r1; r += LANES) {
        int64_t m = r1 - r < LANES ? r1 - r : LANES;
        o.load(x + r * dim, dim, m, dim, ta);
        float *res = rotate_tile(&o, ta, tb, dim, sp, perms, rounds, p, scale, inverse);
        o.store(res, m, dim, out + r * dim, dim);
    }
    free(ta); free(tb);
    return 0;
}

/* ------------------------------------------------------------------ fused scalar encode */

/* sum y_i^2 in float64 with 16 partial sums (see the header) */
static double sumsq16_scalar(const float *y, int64_t dim) {
    double acc[16] = {0};
    for (int64_t i = 0; i < dim; i++) {
        double v = (double)y[i];
        acc[i & 15] += v * v;
    }
    double s = 0.0;
    for (int c = 0; c < 16; c++) s += acc[c];
    return s;
}

static void bucketize_scalar(const float *y, int64_t dim, float inv, const float *bounds,
                             int64_t nb, uint16_t *idx) {
    if (((nb + 1) & nb) == 0) {  /* nb = 2^w - 1: branchless upper bound */
        int64_t half = (nb + 1) >> 1;
        for (int64_t i = 0; i < dim; i++) {
            float z = y[i] * inv;
            int64_t pos = 0;
            for (int64_t st = half; st >= 1; st >>= 1) pos += (bounds[pos + st - 1] <= z) ? st : 0;
            idx[i] = (uint16_t)pos;
        }
        return;
    }
    for (int64_t i = 0; i < dim; i++) {
        float z = y[i] * inv;
        int64_t lo = 0, hi = nb;
        while (lo < hi) {
            int64_t mid = (lo + hi) >> 1;
            if (bounds[mid] <= z) lo = mid + 1; else hi = mid;
        }
        idx[i] = (uint16_t)lo;
    }
}

static void dot_levels16_scalar(const float *y, const uint16_t *idx, const double *levels,
                                int64_t dim, double *yq_out, double *qq_out) {
    double ayq[16] = {0}, aqq[16] = {0};
    for (int64_t i = 0; i < dim; i++) {
        double q = levels[idx[i]];
        ayq[i & 15] += (double)y[i] * q;
        aqq[i & 15] += q * q;
    }
    double yq = 0.0, qq = 0.0;
    for (int c = 0; c < 16; c++) { yq += ayq[c]; qq += aqq[c]; }
    *yq_out = yq;
    *qq_out = qq;
}

#ifdef VQ_X86
__attribute__((target("avx512f")))
static double sumsq16_avx512(const float *y, int64_t dim) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 v = _mm512_loadu_ps(y + i);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        a0 = _mm512_add_pd(a0, _mm512_mul_pd(lo, lo));
        a1 = _mm512_add_pd(a1, _mm512_mul_pd(hi, hi));
    }
    double acc[16];
    _mm512_storeu_pd(acc, a0);
    _mm512_storeu_pd(acc + 8, a1);
    for (; i < dim; i++) {
        double v = (double)y[i];
        acc[i & 15] += v * v;
    }
    double s = 0.0;
    for (int c = 0; c < 16; c++) s += acc[c];
    return s;
}

/* idx = #{bounds <= y*inv} (bounds ascending, nb + 1 a power of two) and the
 * float64 partial sums of y*levels[idx] and levels[idx]^2, all in one sweep */
static void pack_row(const uint16_t *idx, int64_t dim, int64_t width, uint8_t *row,
                     int64_t nbytes);

/* rho = y * rinv - lv[idx] for the whole 16-blocks of a row, squares into the 16 partial
 * sums acc (lane c = element i with i mod 16 = c); returns the number of elements done */
__attribute__((target("avx512f")))
static int64_t resid_avx512(const float *y, const uint16_t *idx, const float *lv, int64_t nlv,
                            float rinv, int64_t dim, float *rho, double *acc) {
    const __m512 vr = _mm512_set1_ps(rinv);
    float lpad[16] = {0};
    for (int64_t k = 0; k < nlv && k < 16; k++) lpad[k] = lv[k];
    const __m512 ltab = _mm512_loadu_ps(lpad);
    const int small = nlv <= 16;
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512i k = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(idx + i)));
        __m512 q = small ? _mm512_permutexvar_ps(k, ltab) : _mm512_i32gather_ps(k, lv, 4);
        __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(y + i), vr), q);
        _mm512_storeu_ps(rho + i, v);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        a0 = _mm512_add_pd(a0, _mm512_mul_pd(lo, lo));
        a1 = _mm512_add_pd(a1, _mm512_mul_pd(hi, hi));
    }
    _mm512_storeu_pd(acc, a0);
    _mm512_storeu_pd(acc + 8, a1);
    return i;
}

/* ... and packs the fields into row (LSB-first bitstream of `width`-bit fields) */
__attribute__((target("avx512f")))
static void quantize_avx512(const float *y, int64_t dim, float inv, const float *bounds,
                            int64_t nb, const double *levels, uint16_t *idx, double *yq_out,
                            double *qq_out, int64_t width, uint8_t *row, int keep_idx) {
    const int direct = width == 1 || width == 2 || width == 4 || width == 8;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i one = _mm512_set1_epi32(1);
    __m512d y0 = _mm512_setzero_pd(), y1 = _mm512_setzero_pd();
    __m512d q0 = _mm512_setzero_pd(), q1 = _mm512_setzero_pd();
    /* K = nb + 1 <= 32 levels: branchless binary search with in-register tables */
    float bpad[32];
    double lpad[16];
    for (int k = 0; k < 32; k++) bpad[k] = k < nb ? bounds[k] : 0.0f;
    for (int k = 0; k < 16; k++) lpad[k] = k <= nb ? levels[k] : 0.0;
    const __m512 blo = _mm512_loadu_ps(bpad), bhi = _mm512_loadu_ps(bpad + 16);
    const __m512d llo = _mm512_loadu_pd(lpad), lhi = _mm512_loadu_pd(lpad + 8);
    const int small = nb <= 15, table = nb <= 31;
    int64_t half = (nb + 1) >> 1;
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 yv = _mm512_loadu_ps(y + i);
        __m512 z = _mm512_mul_ps(yv, vinv);
        __m512i cnt = _mm512_setzero_si512();
        for (int64_t s = half; s >= 1; s >>= 1) {
            __m512i vs = _mm512_set1_epi32((int)s);
            __m512i mid = _mm512_sub_epi32(_mm512_add_epi32(cnt, vs), one);
            __m512 g = small ? _mm512_permutexvar_ps(mid, blo)
                     : table ? _mm512_permutex2var_ps(blo, mid, bhi)
                             : _mm512_i32gather_ps(mid, bounds, 4);
            __mmask16 m = _mm512_cmp_ps_mask(g, z, _CMP_LE_OQ);
            cnt = _mm512_mask_add_epi32(cnt, m, cnt, vs);
        }
        if (keep_idx && direct)
            _mm256_storeu_si256((__m256i *)(idx + i), _mm512_cvtepi32_epi16(cnt));
        if (width == 4) {
            __m128i v = _mm512_cvtepi32_epi8(cnt);
            v = _mm_and_si128(_mm_or_si128(v, _mm_srli_epi16(v, 4)), _mm_set1_epi16(0xFF));
            _mm_storel_epi64((__m128i *)(row + (i >> 1)), _mm_packus_epi16(v, v));
        } else if (width == 8) {
            _mm_storeu_si128((__m128i *)(row + i), _mm512_cvtepi32_epi8(cnt));
        } else if (width == 1) {
            uint16_t bits = (uint16_t)_mm512_test_epi32_mask(cnt, cnt);
            memcpy(row + (i >> 3), &bits, 2);
        } else if (width == 2) {
            __m128i v = _mm512_cvtepi32_epi8(cnt);
            v = _mm_maddubs_epi16(v, _mm_set1_epi16(0x0401));      /* b0 + 4 b1 */
            v = _mm_madd_epi16(v, _mm_set1_epi32(0x00100001));     /* + 16 (b2 + 4 b3) */
            v = _mm_packus_epi16(_mm_packus_epi32(v, v), v);
            uint32_t w4 = (uint32_t)_mm_cvtsi128_si32(v);
            memcpy(row + (i >> 2), &w4, 4);
        } else {
            _mm256_storeu_si256((__m256i *)(idx + i), _mm512_cvtepi32_epi16(cnt));
        }
        __m256i clo = _mm512_castsi512_si256(cnt);
        __m256i chi = _mm512_extracti64x4_epi64(cnt, 1);
        __m512d lq, hq;
        if (small) {
            lq = _mm512_permutex2var_pd(llo, _mm512_cvtepu32_epi64(clo), lhi);
            hq = _mm512_permutex2var_pd(llo, _mm512_cvtepu32_epi64(chi), lhi);
        } else {
            lq = _mm512_i32gather_pd(clo, levels, 8);
            hq = _mm512_i32gather_pd(chi, levels, 8);
        }
        __m512d ly = _mm512_cvtps_pd(_mm512_castps512_ps256(yv));
        __m512d hy = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(yv), 1)));
        y0 = _mm512_add_pd(y0, _mm512_mul_pd(ly, lq));
        y1 = _mm512_add_pd(y1, _mm512_mul_pd(hy, hq));
        q0 = _mm512_add_pd(q0, _mm512_mul_pd(lq, lq));
        q1 = _mm512_add_pd(q1, _mm512_mul_pd(hq, hq));
    }
    double ayq[16], aqq[16];
    _mm512_storeu_pd(ayq, y0); _mm512_storeu_pd(ayq + 8, y1);
    _mm512_storeu_pd(aqq, q0); _mm512_storeu_pd(aqq + 8, q1);
    if (i < dim) bucketize_scalar(y + i, dim - i, inv, bounds, nb, idx + i);
    for (; i < dim; i++) {
        double q = levels[idx[i]];
        ayq[i & 15] += (double)y[i] * q;
        aqq[i & 15] += q * q;
    }
    double yq = 0.0, qq = 0.0;
    for (int c = 0; c < 16; c++) { yq += ayq[c]; qq += aqq[c]; }
    *yq_out = yq;
    *qq_out = qq;
    int64_t tail = dim & ~(int64_t)15;  /* fields from `tail` on start on a byte boundary */
    if (!direct)
        pack_row(idx, dim, width, row, (dim * width + 7) / 8);
    else if (tail < dim)
        pack_row(idx + tail, dim - tail, width, row + tail * width / 8,
                 ((dim - tail) * width + 7) / 8);
}
#endif

/* LSB-first bitstream of idx (width bits each) into row[0:nbytes] */
static void pack_row(const uint16_t *idx, int64_t dim, int64_t width, uint8_t *row,
                     int64_t nbytes) {
    if (width == 8) {
        for (int64_t i = 0; i < dim; i++) row[i] = (uint8_t)idx[i];
        return;
    }
    if (width == 4) {
        int64_t i = 0;
        for (; i + 2 <= dim; i += 2) row[i >> 1] = (uint8_t)(idx[i] | (idx[i + 1] << 4));
        if (i < dim) row[i >> 1] = (uint8_t)idx[i];
        return;
    }
    if (width == 2 || width == 1) {
        int64_t per = 8 / width, i = 0, b = 0;
        for (; i + per <= dim; i += per, b++) {
            unsigned v = 0;
            for (int64_t k = 0; k < per; k++) v |= (unsigned)idx[i + k] << (k * width);
            row[b] = (uint8_t)v;
        }
        if (i < dim) {
            unsigned v = 0;
            for (int64_t k = 0; i + k < dim; k++) v |= (unsigned)idx[i + k] << (k * width);
            row[b] = (uint8_t)v;
        }
        return;
    }
    /* g fields fill g*width/8 whole bytes (g = 8 / gcd(width, 8)): 8 fields of 3, 5, 7 bits,
     * 4 of 6 bits */
    int64_t g = 8;
    while (g > 1 && ((g / 2) * width) % 8 == 0) g /= 2;
    int64_t i0 = 0, pos0 = 0;
    if (g * width <= 64) {
        const int64_t gb = g * width / 8;
        for (; i0 + g <= dim; i0 += g, pos0 += gb) {
            uint64_t acc = 0;
            for (int64_t k = 0; k < g; k++) acc |= (uint64_t)idx[i0 + k] << (k * width);
            for (int64_t b = 0; b < gb; b++) row[pos0 + b] = (uint8_t)(acc >> (8 * b));
        }
    }
    memset(row + pos0, 0, (size_t)(nbytes - pos0));
    uint64_t acc = 0;
    int64_t nbits = 0, pos = pos0;
    for (int64_t i = i0; i < dim; i++) {
        acc |= (uint64_t)idx[i] << nbits;
        nbits += width;
        while (nbits >= 8) {
            row[pos++] = (uint8_t)(acc & 255u);
            acc >>= 8;
            nbits -= 8;
        }
    }
    if (nbits > 0) row[pos] = (uint8_t)(acc & 255u);
}

/*
 * Fused fast rotation + Lloyd-Max scalar quantization + packing for rows [r0, r1):
 *   y = R x;  inv = sqrt(D / ||y||^2) (0 when ||y||^2 <= FLT_EPS);  z = y * inv (float32);
 *   idx_i = #{bounds <= z_i};  codes[r, :ceil(D*width/8)] = bitstream of idx;
 *   stats[r] = (||y||^2, <y, levels[idx]>, ||levels[idx]||^2)  (float64);
 *   optionally yout[r] = y (float32) and idxout[r] = idx (uint16), rows of dim (NULL: not kept);
 *   with resid_lv (float32 levels / sqrt(D)), yout[r] = the unit residual rho and
 *   gamma_out[r] = ||rho|| instead (TurboQuant_prod, see kernels.quantize.unit_residual).
 * bounds: float32 (nb,) ascending; levels float64 (nb + 1,).  Returns 0 / -1 / -2.
 */
VQ_API int vq_rotate_scalar_encode(const float *x, int64_t r0, int64_t r1, int64_t dim,
                                   const float *sp, const int32_t *perms, int64_t rounds,
                                   int64_t p, const float *bounds, int64_t nb,
                                   const double *levels, int64_t width, uint8_t *codes,
                                   int64_t code_stride, double *stats, float *yout,
                                   uint16_t *idxout, const float *resid_lv, float *gamma_out,
                                   int backend) {
    int b = pick_backend(backend);
    if (b < 0) return -1;
    rot_ops o = get_ops(b);
    float *ta = alloc_bytes((size_t)dim * LANES * sizeof(float));
    float *tb = alloc_bytes((size_t)dim * LANES * sizeof(float));
    float *rows = alloc_bytes((size_t)dim * LANES * sizeof(float));
    uint16_t *idx = alloc_bytes((size_t)dim * sizeof(uint16_t));
    if (!ta || !tb || !rows || !idx) { free(ta); free(tb); free(rows); free(idx); return -2; }
    float scale = (float)(1.0 / sqrt((double)p));
    int64_t nbytes = (dim * width + 7) / 8;
#ifdef VQ_X86
    int vec = 0;
    /* the gather binary search needs nb + 1 to be a power of two */
    vec = (b == VQ_AVX512) && ((nb + 1) & nb) == 0;
#endif
    for (int64_t r = r0; r < r1; r += LANES) {
        int64_t m = r1 - r < LANES ? r1 - r : LANES;
        o.load(x + r * dim, dim, m, dim, ta);
        float *res = rotate_tile(&o, ta, tb, dim, sp, perms, rounds, p, scale, 0);
        o.store(res, m, dim, rows, dim);
        for (int64_t k = 0; k < m; k++) {
            const float *y = rows + k * dim;
            const int64_t row = r + k;
            double yy, yq, qq;
#ifdef VQ_X86
            yy = (b == VQ_AVX512) ? sumsq16_avx512(y, dim) : sumsq16_scalar(y, dim);
#else
            yy = sumsq16_scalar(y, dim);
#endif
            float inv = yy > VQ_FLT_EPS ? (float)sqrt((double)dim / yy) : 0.0f;
#ifdef VQ_X86
            if (vec) {
                quantize_avx512(y, dim, inv, bounds, nb, levels, idx, &yq, &qq, width,
                                codes + row * code_stride, idxout != NULL || resid_lv != NULL);
            } else
#endif
            {
                bucketize_scalar(y, dim, inv, bounds, nb, idx);
                dot_levels16_scalar(y, idx, levels, dim, &yq, &qq);
                pack_row(idx, dim, width, codes + row * code_stride, nbytes);
            }
            stats[3 * row] = yy;
            stats[3 * row + 1] = yq;
            stats[3 * row + 2] = qq;
            if (resid_lv) {
                /* TurboQuant_prod's QJL input (kernels.quantize.unit_residual): norm as the
                 * codec stores it (float32 sqrt of ell, 0 when the rule-0 guard trips),
                 * rho = y/norm - lv[idx] in float32, gamma = ||rho|| (16 partial sums) */
                float norm = (yy <= VQ_FLT_EPS || yq <= 0.0) ? 0.0f : sqrtf((float)yy);
                float rinv = norm > 0.0f ? (float)(1.0 / (double)norm) : 0.0f;
                float *rho = yout + row * dim;
                double acc[16] = {0};
                int64_t i = 0;
#ifdef VQ_X86
                if (b == VQ_AVX512) i = resid_avx512(y, idx, resid_lv, nb + 1, rinv, dim, rho, acc);
#endif
                for (; i < dim; i++) {
                    float v = y[i] * rinv - resid_lv[idx[i]];
                    rho[i] = v;
                    acc[i & 15] += (double)v * (double)v;
                }
                double g2 = 0.0;
                for (int c = 0; c < 16; c++) g2 += acc[c];
                gamma_out[row] = (float)sqrt(g2);
            } else if (yout) {
                memcpy(yout + row * dim, y, (size_t)dim * sizeof(float));
            }
            if (idxout) memcpy(idxout + row * dim, idx, (size_t)dim * sizeof(uint16_t));
        }
    }
    free(ta); free(tb); free(rows); free(idx);
    return 0;
}
