/*
 * attention.c - the multi-head attention core of the AIM trunk (no
 * projections), with AIM's prefix-causal mask: for image b with prefix
 * length S = prefix[b] (1 <= S <= N; prefix NULL means S = N), query q may
 * attend key k iff k < S || k <= q. S = 1 is plain causal, S = N is fully
 * bidirectional.
 *
 * Layouts (row-major):
 *   qkv [B,N,3D]   each row is [q | k | v]; head h uses columns
 *                  h*hd..(h+1)*hd of each third, hd = D/NH
 *   out [B,N,D]    heads concatenated
 *   att [B,NH,N,N] softmax probabilities, masked entries exactly 0
 *
 * The fast pair works on one (image, head) at a time, in L1/L2 for the
 * model's sizes (N ~ 50-250 tokens, hd ~ 64), with no BLAS call: every
 * product is one register-blocked micro-kernel (two rows by 32 columns,
 * 8 vector accumulators, FMA) run over query pairs or key pairs; for the
 * products with K^T and V^T, each block of 32 keys is transposed once (8x8
 * register transposes) into a [hd][32] stack buffer. Only the visible keys
 * are computed (query q sees keys 0..max(q+1, S)-1, up to the 32-key block).
 * The (b, h) pairs are independent: OpenMP over them when called on its
 * own (inside the model's parallel region the loop runs serially), and each
 * pair is computed by one thread in a fixed order, so results do not depend
 * on the number of threads.
 *
 * The *_naive pair is plain loops in the style of llm.c, kept as the
 * reference the tests compare against. attention_backward ADDS into dqkv;
 * attention_backward_write overwrites it; datt [B,NH,N,N] is caller-provided
 * scratch (overwritten with the score gradients). No allocation.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "aim/nn.h"
#include "nn/vec.h"

/* prefix length of image b, clamped into [1, N] */
static inline int att_prefix(const int32_t *prefix, int b, int N)
{
    if (!prefix)
        return N;
    int S = prefix[b];
    return S < 1 ? 1 : (S > N ? N : S);
}

/* keys 0..kmax-1 are visible to query q (all others are masked) */
static inline int att_kmax(int q, int S)
{
    return q + 1 > S ? q + 1 : S;
}

/* Micro-kernel, two rows of C by 32 columns, 8 accumulators:
 *   C[r][0..nst) (=|+=) scale * sum_{k in [k0, k1)} A(r, k) * B[k][0..nc)
 * A(r, k) = a[r * ar + k * ak] for r < rows (rows 1 or 2), B rows ldb apart
 * with nc <= 32 readable columns (columns past nc count as 0), nst <= 32. */
AIM_INLINE void mk2(float *c, size_t cr, int rows, int nst, const float *a, size_t ar,
                    size_t ak, const float *B, size_t ldb, int nc, int k0, int k1, float scale,
                    int accumulate)
{
    const float *a1 = rows > 1 ? a + ar : a;
    v8f x0 = V8(0), x1 = V8(0), x2 = V8(0), x3 = V8(0);
    v8f y0 = V8(0), y1 = V8(0), y2 = V8(0), y3 = V8(0);
    if (nc == 32) {
        for (int k = k0; k < k1; k++) {
            const float *b = B + (size_t)k * ldb;
            v8f b0 = v8_load(b), b1 = v8_load(b + 8), b2 = v8_load(b + 16), b3 = v8_load(b + 24);
            v8f w0 = V8(a[(size_t)k * ak]), w1 = V8(a1[(size_t)k * ak]);
            x0 += w0 * b0;
            x1 += w0 * b1;
            x2 += w0 * b2;
            x3 += w0 * b3;
            y0 += w1 * b0;
            y1 += w1 * b1;
            y2 += w1 * b2;
            y3 += w1 * b3;
        }
    } else {
        for (int k = k0; k < k1; k++) { /* odd head widths: partial loads */
            const float *b = B + (size_t)k * ldb;
            v8f bv[4];
            for (int j = 0; j < 4; j++) {
                int n = nc - 8 * j;
                bv[j] = n >= 8 ? v8_load(b + 8 * j) : n > 0 ? v8_load_part(b + 8 * j, n) : V8(0);
            }
            v8f w0 = V8(a[(size_t)k * ak]), w1 = V8(a1[(size_t)k * ak]);
            x0 += w0 * bv[0];
            x1 += w0 * bv[1];
            x2 += w0 * bv[2];
            x3 += w0 * bv[3];
            y0 += w1 * bv[0];
            y1 += w1 * bv[1];
            y2 += w1 * bv[2];
            y3 += w1 * bv[3];
        }
    }
    v8f xs[4] = {x0, x1, x2, x3}, ys[4] = {y0, y1, y2, y3};
    for (int r = 0; r < rows; r++) {
        float *cc = c + (size_t)r * cr;
        const v8f *v = r ? ys : xs;
        if (nst == 32) {
            for (int j = 0; j < 4; j++) {
                v8f t = V8(scale) * v[j];
                if (accumulate)
                    t += v8_load(cc + 8 * j);
                v8_store(cc + 8 * j, t);
            }
        } else {
            float t[32];
            for (int j = 0; j < 4; j++)
                v8_store(t + 8 * j, V8(scale) * v[j]);
            if (accumulate)
                for (int j = 0; j < nst; j++)
                    cc[j] += t[j];
            else
                memcpy(cc, t, (size_t)nst * sizeof(float));
        }
    }
}

/* C[q..][c0..c0+hd) for query/key rows in pairs and head columns in blocks
 * of 32: the whole [n, hd] result, A(r, k) = a[r * ar + k * ak] with row r's
 * range of k given by kbeg(r)..kend(r) (the union over each pair is used:
 * A is 0 outside each row's own range). */
AIM_INLINE void rows_by_cols(float *C, size_t ldc, int n, const float *a, size_t ar,
                             size_t ak, const float *B, size_t ldb, int hd, int S, int by_query,
                             float scale, int accumulate)
{
    for (int r = 0; r < n; r += 2) {
        int rows = r + 1 < n ? 2 : 1;
        /* by query: keys 0..kmax(last row); by key: queries from the first
         * row's first visible one to the end */
        int k0 = by_query ? 0 : (r < S ? 0 : r);
        int k1 = by_query ? att_kmax(r + rows - 1, S) : n;
        for (int d0 = 0; d0 < hd; d0 += 32) {
            int nc = hd - d0 < 32 ? hd - d0 : 32;
            mk2(C + (size_t)r * ldc + d0, ldc, rows, nc, a + (size_t)r * ar, ar, ak, B + d0, ldb,
                nc, k0, k1, scale, accumulate);
        }
    }
}

/* the 8x8 transpose of r[0..7] (rows) into c[0..7] (columns) */
AIM_INLINE void tr8(v8f *c, const v8f *r)
{
/* __builtin_shufflevector (GCC >= 12 and clang) with the index lists the
 * transpose needs: unpack lo/hi, shuffle pairs lo/hi, permute halves lo/hi */
#define ULO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define UHI(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define SLO(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define SHI(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define PLO(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define PHI(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)
    v8f t0 = ULO(r[0], r[1]), t1 = UHI(r[0], r[1]);
    v8f t2 = ULO(r[2], r[3]), t3 = UHI(r[2], r[3]);
    v8f t4 = ULO(r[4], r[5]), t5 = UHI(r[4], r[5]);
    v8f t6 = ULO(r[6], r[7]), t7 = UHI(r[6], r[7]);
    v8f u0 = SLO(t0, t2), u1 = SHI(t0, t2);
    v8f u2 = SLO(t1, t3), u3 = SHI(t1, t3);
    v8f u4 = SLO(t4, t6), u5 = SHI(t4, t6);
    v8f u6 = SLO(t5, t7), u7 = SHI(t5, t7);
    c[0] = PLO(u0, u4), c[4] = PHI(u0, u4);
    c[1] = PLO(u1, u5), c[5] = PHI(u1, u5);
    c[2] = PLO(u2, u6), c[6] = PHI(u2, u6);
    c[3] = PLO(u3, u7), c[7] = PHI(u3, u7);
#undef ULO
#undef UHI
#undef SLO
#undef SHI
#undef PLO
#undef PHI
}

/* T[d][j] = Y[j][d] for j < n (n <= 32), 0 for n <= j < 32; d < hd */
AIM_INLINE void transpose32(float *T, const float *Y, size_t ldy, int n, int hd)
{
    if (hd % 8 == 0) {
        for (int j0 = 0; j0 < 32; j0 += 8) {
            for (int d0 = 0; d0 < hd; d0 += 8) {
                v8f r[8], c[8];
                for (int j = 0; j < 8; j++)
                    r[j] = j0 + j < n ? v8_load(Y + (size_t)(j0 + j) * ldy + d0) : V8(0);
                tr8(c, r);
                for (int d = 0; d < 8; d++)
                    v8_store(T + (size_t)(d0 + d) * 32 + j0, c[d]);
            }
        }
        return;
    }
    for (int d = 0; d < hd; d++)
        for (int j = 0; j < 32; j++)
            T[(size_t)d * 32 + j] = j < n ? Y[(size_t)j * ldy + d] : 0.0f;
}

/* out[q][0..N) = scale * X[q] . Y[k] for the keys k each query q sees (the
 * rest of the row is left as is): keys in blocks of 32, each transposed
 * once into T [hd][32], queries in pairs. X rows ldx apart, Y rows ldy. */
AIM_INLINE void scores(float *out, const float *X, size_t ldx, const float *Y, size_t ldy,
                       float *T, int N, int hd, int S, float scale)
{
    for (int kb = 0; kb < N; kb += 32) {
        int nk = N - kb < 32 ? N - kb : 32;
        transpose32(T, Y + (size_t)kb * ldy, ldy, nk, hd);
        for (int q = S > kb ? 0 : kb; q < N; q += 2)
            mk2(out + (size_t)q * N + kb, N, q + 1 < N ? 2 : 1, nk, X + (size_t)q * ldx, ldx, 1,
                T, 32, 32, 0, hd, scale, 0);
    }
}

/* softmax of row[0..km) in place, zeros in row[km..N) */
AIM_INLINE void softmax_row(float *row, int km, int N)
{
    v8f mv = V8(-FLT_MAX);
    int k = 0;
    for (; k + 8 <= km; k += 8)
        mv = v8_sel(v8_load(row + k) > mv, v8_load(row + k), mv);
    float maxval = -FLT_MAX;
    for (int j = 0; j < 8; j++)
        maxval = mv[j] > maxval ? mv[j] : maxval;
    for (; k < km; k++)
        maxval = row[k] > maxval ? row[k] : maxval;
    v8f sv = V8(0);
    for (k = 0; k + 8 <= km; k += 8) {
        v8f e = v8_exp(v8_load(row + k) - V8(maxval));
        v8_store(row + k, e);
        sv += e;
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; j++)
        sum += sv[j];
    for (; k < km; k++) {
        float e = expf(row[k] - maxval);
        row[k] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (k = 0; k < km; k++)
        row[k] *= inv;
#pragma omp simd
    for (k = km; k < N; k++)
        row[k] = 0.0f;
}

/* largest head width the transposing kernels take (T is [hd][32] on the
 * stack); wider heads use the per-key dot products */
#define ATT_HD_MAX 512

/* out[k] = scale * (x . Y[k]) for k in [0, n): the wide-head fallback */
AIM_INLINE void dots(float *out, const float *x, const float *Y, size_t ldy, int n, int hd,
                     float scale)
{
    for (int k = 0; k < n; k++) {
        const float *y = Y + (size_t)k * ldy;
        v8f acc = V8(0);
        int d = 0;
        for (; d + 8 <= hd; d += 8)
            acc += v8_load(x + d) * v8_load(y + d);
        float s = 0.0f;
        for (int j = 0; j < 8; j++)
            s += acc[j];
        for (; d < hd; d++)
            s += x[d] * y[d];
        out[k] = scale * s;
    }
}

AIM_VEC static void fwd_pair(float *O, float *P, const float *Q, int N, int D, int hd, int S,
                             float scale)
{
    // Q [N,hd] ld 3D (K = Q + D, V = Q + 2D), O [N,hd] ld D, P [N,N]
    const size_t C3 = 3 * (size_t)D;
    const float *K = Q + D, *V = Q + 2 * D;
    if (hd <= ATT_HD_MAX) {
        float T[ATT_HD_MAX * 32];
        scores(P, Q, C3, K, C3, T, N, hd, S, scale);
    } else {
        for (int q = 0; q < N; q++)
            dots(P + (size_t)q * N, Q + (size_t)q * C3, K, C3, att_kmax(q, S), hd, scale);
    }
    for (int q = 0; q < N; q++)
        softmax_row(P + (size_t)q * N, att_kmax(q, S), N);
    /* O = P V (P is 0 past each row's visible keys) */
    rows_by_cols(O, (size_t)D, N, P, (size_t)N, 1, V, C3, hd, S, 1, 1.0f, 0);
}

AIM_VEC static void bwd_pair(float *dQ, float *dS, const float *dO, const float *Q,
                             const float *P, int N, int D, int hd, int S, float scale,
                             int accumulate)
{
    // dQ [N,hd] ld 3D (dK = dQ + D, dV = dQ + 2D), dS [N,N] scratch, dO [N,hd] ld D,
    // Q [N,hd] ld 3D (K = Q + D, V = Q + 2D), P [N,N]
    const size_t C3 = 3 * (size_t)D;
    const float *K = Q + D, *V = Q + 2 * D;
    float *dK = dQ + D, *dV = dQ + 2 * D;
    // dV = P^T dO: key pairs, A(k, q) = P[q, k]
    rows_by_cols(dV, C3, N, P, 1, (size_t)N, dO, (size_t)D, hd, S, 0, 1.0f, accumulate);
    // dP[q, k] = dO[q] . V[k], then dS = P * (dP - sum_k P dP)
    if (hd <= ATT_HD_MAX) {
        float T[ATT_HD_MAX * 32];
        scores(dS, dO, (size_t)D, V, C3, T, N, hd, S, 1.0f);
    } else {
        for (int q = 0; q < N; q++)
            dots(dS + (size_t)q * N, dO + (size_t)q * D, V, C3, att_kmax(q, S), hd, 1.0f);
    }
    for (int q = 0; q < N; q++) {
        const int km = att_kmax(q, S);
        const float *prow = P + (size_t)q * N;
        float *drow = dS + (size_t)q * N;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int k = 0; k < km; k++)
            dot += drow[k] * prow[k];
#pragma omp simd
        for (int k = 0; k < km; k++)
            drow[k] = prow[k] * (drow[k] - dot);
#pragma omp simd
        for (int k = km; k < N; k++)
            drow[k] = 0.0f;
    }
    // dQ = scale dS K (query pairs); dK = scale dS^T Q (key pairs)
    rows_by_cols(dQ, C3, N, dS, (size_t)N, 1, K, C3, hd, S, 1, scale, accumulate);
    rows_by_cols(dK, C3, N, dS, 1, (size_t)N, Q, C3, hd, S, 0, scale, accumulate);
}

void attention_forward(float *out, float *att, const float *qkv, const int32_t *prefix,
                       int B, int N, int D, int NH)
{
    // out [B,N,D], att [B,NH,N,N], qkv [B,N,3D]
    const int hd = D / NH, np = B * NH;
    const float scale = 1.0f / sqrtf((float)hd);
#define FWD(i)                                                                              \
    fwd_pair(out + (size_t)((i) / NH) * N * D + ((i) % NH) * hd,                           \
             att + (size_t)(i) * N * N, qkv + (size_t)((i) / NH) * N * 3 * D + ((i) % NH) * hd, \
             N, D, hd, att_prefix(prefix, (i) / NH, N), scale)
    if (AIM_PAR(np > 1)) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < np; i++)
            FWD(i);
    } else {
        for (int i = 0; i < np; i++)
            FWD(i);
    }
#undef FWD
}

static void backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                     const float *att, const int32_t *prefix, int B, int N, int D, int NH,
                     int accumulate)
{
    if (!dqkv)
        return;
    const int hd = D / NH, np = B * NH;
    const float scale = 1.0f / sqrtf((float)hd);
#define BWD(i)                                                                              \
    bwd_pair(dqkv + (size_t)((i) / NH) * N * 3 * D + ((i) % NH) * hd, datt + (size_t)(i) * N * N, \
             dout + (size_t)((i) / NH) * N * D + ((i) % NH) * hd,                          \
             qkv + (size_t)((i) / NH) * N * 3 * D + ((i) % NH) * hd, att + (size_t)(i) * N * N, \
             N, D, hd, att_prefix(prefix, (i) / NH, N), scale, accumulate)
    if (AIM_PAR(np > 1)) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < np; i++)
            BWD(i);
    } else {
        for (int i = 0; i < np; i++)
            BWD(i);
    }
#undef BWD
}

void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, const int32_t *prefix, int B, int N, int D, int NH)
{
    // dqkv [B,N,3D] (+=), datt [B,NH,N,N] scratch, dout [B,N,D], qkv [B,N,3D],
    // att [B,NH,N,N]
    backward(dqkv, datt, dout, qkv, att, prefix, B, N, D, NH, 1);
}

void attention_backward_write(float *dqkv, float *datt, const float *dout, const float *qkv,
                              const float *att, const int32_t *prefix, int B, int N, int D,
                              int NH)
{
    // dqkv [B,N,3D] (overwritten), datt [B,NH,N,N] scratch, dout [B,N,D], qkv [B,N,3D],
    // att [B,NH,N,N]
    backward(dqkv, datt, dout, qkv, att, prefix, B, N, D, NH, 0);
}

/* ---------------------------------------------------------------- naive */

void attention_forward_naive(float *out, float *att, const float *qkv,
                             const int32_t *prefix, int B, int N, int D, int NH)
{
    // out [B,N,D], att [B,NH,N,N], qkv [B,N,3D]
    const int C3 = 3 * D;
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int b = 0; b < B; b++) {
        const int S = att_prefix(prefix, b, N);
        for (int t = 0; t < N; t++) {
            for (int h = 0; h < NH; h++) {
                const float *query_t = qkv + (size_t)b * N * C3 + (size_t)t * C3 + h * hd;
                float *att_bth = att + (((size_t)b * NH + h) * N + t) * N;

                // pass 1: scores of the visible keys, and their maximum
                float maxval = -FLT_MAX;
                for (int t2 = 0; t2 < N; t2++) {
                    if (!(t2 < S || t2 <= t))
                        continue;
                    const float *key_t2 = qkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + D;
                    float val = 0.0f;
                    for (int i = 0; i < hd; i++)
                        val += query_t[i] * key_t2[i];
                    val *= scale;
                    if (val > maxval)
                        maxval = val;
                    att_bth[t2] = val;
                }
                // pass 2: exp and sum; masked entries are exactly 0
                float expsum = 0.0f;
                for (int t2 = 0; t2 < N; t2++) {
                    if (!(t2 < S || t2 <= t)) {
                        att_bth[t2] = 0.0f;
                        continue;
                    }
                    float e = expf(att_bth[t2] - maxval);
                    expsum += e;
                    att_bth[t2] = e;
                }
                // pass 3: normalise
                const float expsum_inv = 1.0f / expsum;
                for (int t2 = 0; t2 < N; t2++)
                    att_bth[t2] *= expsum_inv;

                // pass 4: weighted sum of the values
                float *out_bth = out + (size_t)b * N * D + (size_t)t * D + h * hd;
                for (int i = 0; i < hd; i++)
                    out_bth[i] = 0.0f;
                for (int t2 = 0; t2 < N; t2++) {
                    if (!(t2 < S || t2 <= t))
                        continue;
                    const float *value_t2 = qkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + 2 * D;
                    const float a = att_bth[t2];
                    for (int i = 0; i < hd; i++)
                        out_bth[i] += a * value_t2[i];
                }
            }
        }
    }
}

void attention_backward_naive(float *dqkv, float *datt, const float *dout,
                              const float *qkv, const float *att, const int32_t *prefix,
                              int B, int N, int D, int NH)
{
    // dqkv [B,N,3D] (+=), datt [B,NH,N,N] scratch, dout [B,N,D], qkv [B,N,3D],
    // att [B,NH,N,N]
    if (!dqkv)
        return;
    const int C3 = 3 * D;
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int b = 0; b < B; b++) {
        const int S = att_prefix(prefix, b, N);
        for (int t = 0; t < N; t++) {
            for (int h = 0; h < NH; h++) {
                const float *att_bth = att + (((size_t)b * NH + h) * N + t) * N;
                float *datt_bth = datt + (((size_t)b * NH + h) * N + t) * N;
                const float *dout_bth = dout + (size_t)b * N * D + (size_t)t * D + h * hd;
                const float *query_t = qkv + (size_t)b * N * C3 + (size_t)t * C3 + h * hd;
                float *dquery_t = dqkv + (size_t)b * N * C3 + (size_t)t * C3 + h * hd;

                // backward through the value accumulation: datt = dout . v
                for (int t2 = 0; t2 < N; t2++) {
                    const float *value_t2 = qkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + 2 * D;
                    float *dvalue_t2 = dqkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + 2 * D;
                    float d = 0.0f;
                    for (int i = 0; i < hd; i++) {
                        d += value_t2[i] * dout_bth[i];
                        dvalue_t2[i] += att_bth[t2] * dout_bth[i];
                    }
                    datt_bth[t2] = d;
                }
                // backward through the softmax, in place:
                // dpreatt[t2] = att[t2] * (datt[t2] - sum_t3 att[t3] datt[t3])
                float dot = 0.0f;
                for (int t3 = 0; t3 < N; t3++)
                    dot += att_bth[t3] * datt_bth[t3];
                for (int t2 = 0; t2 < N; t2++) {
                    if (!(t2 < S || t2 <= t))
                        datt_bth[t2] = 0.0f;
                    else
                        datt_bth[t2] = att_bth[t2] * (datt_bth[t2] - dot);
                }
                // backward through the scores q . k * scale
                for (int t2 = 0; t2 < N; t2++) {
                    if (!(t2 < S || t2 <= t))
                        continue;
                    const float *key_t2 = qkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + D;
                    float *dkey_t2 = dqkv + (size_t)b * N * C3 + (size_t)t2 * C3 + h * hd + D;
                    for (int i = 0; i < hd; i++) {
                        dquery_t[i] += key_t2[i] * datt_bth[t2] * scale;
                        dkey_t2[i] += query_t[i] * datt_bth[t2] * scale;
                    }
                }
            }
        }
    }
}
