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
 * The fast pair works on one (image, head) at a time, entirely in L1 for the
 * model's sizes (N ~ 50-250 tokens, hd ~ 64): nothing is copied or
 * transposed and no BLAS call is made; two vector primitives do the work:
 *   dots   s[k] = x . Y[k] for 8 rows of Y at a time (8 accumulators over
 *          the hd dimension, then one 8-way transposing reduction);
 *   wsum   o = sum_k w_k Y[k], 32 columns at a time in registers.
 * Only the visible keys are computed: query q sees keys 0..max(q+1, S)-1.
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

/* the 8 sums of a0..a7, in order */
AIM_INLINE v8f v8_sum8(v8f a0, v8f a1, v8f a2, v8f a3, v8f a4, v8f a5, v8f a6, v8f a7)
{
    const v8i ev = {0, 8, 2, 10, 4, 12, 6, 14}, od = {1, 9, 3, 11, 5, 13, 7, 15};
    const v8i lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const v8i lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    v8f s01 = __builtin_shuffle(a0, a1, ev) + __builtin_shuffle(a0, a1, od);
    v8f s23 = __builtin_shuffle(a2, a3, ev) + __builtin_shuffle(a2, a3, od);
    v8f s45 = __builtin_shuffle(a4, a5, ev) + __builtin_shuffle(a4, a5, od);
    v8f s67 = __builtin_shuffle(a6, a7, ev) + __builtin_shuffle(a6, a7, od);
    /* s01 = [a0 01, a1 01, a0 23, a1 23 | a0 45, a1 45, a0 67, a1 67] */
    v8f q03 = __builtin_shuffle(s01, s23, lo2) + __builtin_shuffle(s01, s23, hi2);
    v8f q47 = __builtin_shuffle(s45, s67, lo2) + __builtin_shuffle(s45, s67, hi2);
    /* q03 = [a0 0-3, a1 0-3, a2 0-3, a3 0-3 | the same for 4-7] */
    return __builtin_shuffle(q03, q47, lo4) + __builtin_shuffle(q03, q47, hi4);
}

/* out[k] = scale * (x . Y[k]) for k in [0, n), Y rows ldy apart, length hd */
AIM_INLINE void dots(float *out, const float *x, const float *Y, size_t ldy, int n, int hd,
                     float scale)
{
    for (int k0 = 0; k0 < n; k0 += 8) {
        const float *y[8];
        for (int j = 0; j < 8; j++) /* rows past n repeat the last one */
            y[j] = Y + (size_t)(k0 + j < n ? k0 + j : n - 1) * ldy;
        v8f a0 = V8(0), a1 = V8(0), a2 = V8(0), a3 = V8(0);
        v8f a4 = V8(0), a5 = V8(0), a6 = V8(0), a7 = V8(0);
        int d = 0;
        for (; d + 8 <= hd; d += 8) {
            v8f xv = v8_load(x + d);
            a0 += xv * v8_load(y[0] + d);
            a1 += xv * v8_load(y[1] + d);
            a2 += xv * v8_load(y[2] + d);
            a3 += xv * v8_load(y[3] + d);
            a4 += xv * v8_load(y[4] + d);
            a5 += xv * v8_load(y[5] + d);
            a6 += xv * v8_load(y[6] + d);
            a7 += xv * v8_load(y[7] + d);
        }
        if (d < hd) {
            int r = hd - d;
            v8f xv = v8_load_part(x + d, r);
            a0 += xv * v8_load_part(y[0] + d, r);
            a1 += xv * v8_load_part(y[1] + d, r);
            a2 += xv * v8_load_part(y[2] + d, r);
            a3 += xv * v8_load_part(y[3] + d, r);
            a4 += xv * v8_load_part(y[4] + d, r);
            a5 += xv * v8_load_part(y[5] + d, r);
            a6 += xv * v8_load_part(y[6] + d, r);
            a7 += xv * v8_load_part(y[7] + d, r);
        }
        v8f sv = V8(scale) * v8_sum8(a0, a1, a2, a3, a4, a5, a6, a7);
        if (k0 + 8 <= n)
            v8_store(out + k0, sv);
        else
            v8_store_part(out + k0, sv, n - k0);
    }
}

/* o (=|+=) scale * sum_{k in [k0, k1)} w[k * ws] * Y[k], Y rows ldy apart,
 * length hd */
AIM_INLINE void wsum(float *o, const float *w, size_t ws, const float *Y, size_t ldy, int k0,
                     int k1, int hd, float scale, int accumulate)
{
    for (int d0 = 0; d0 < hd; d0 += 32) {
        const int nd = hd - d0 < 32 ? hd - d0 : 32;
        v8f a0 = V8(0), a1 = V8(0), a2 = V8(0), a3 = V8(0);
        if (nd == 32) {
            for (int k = k0; k < k1; k++) {
                const float *y = Y + (size_t)k * ldy + d0;
                v8f wk = V8(w[(size_t)k * ws]);
                a0 += wk * v8_load(y);
                a1 += wk * v8_load(y + 8);
                a2 += wk * v8_load(y + 16);
                a3 += wk * v8_load(y + 24);
            }
        } else {
            for (int k = k0; k < k1; k++) {
                const float *y = Y + (size_t)k * ldy + d0;
                v8f wk = V8(w[(size_t)k * ws]);
                a0 += wk * (nd >= 8 ? v8_load(y) : v8_load_part(y, nd));
                if (nd > 8)
                    a1 += wk * (nd >= 16 ? v8_load(y + 8) : v8_load_part(y + 8, nd - 8));
                if (nd > 16)
                    a2 += wk * (nd >= 24 ? v8_load(y + 16) : v8_load_part(y + 16, nd - 16));
                if (nd > 24)
                    a3 += wk * v8_load_part(y + 24, nd - 24);
            }
        }
        v8f acc[4] = {a0, a1, a2, a3};
        for (int j = 0; j * 8 < nd; j++) {
            int n = nd - 8 * j < 8 ? nd - 8 * j : 8;
            float *od = o + d0 + 8 * j;
            v8f r = V8(scale) * acc[j];
            if (accumulate)
                r += n == 8 ? v8_load(od) : v8_load_part(od, n);
            if (n == 8)
                v8_store(od, r);
            else
                v8_store_part(od, r, n);
        }
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
    if (k < km) {
        int r = km - k;
        v8f e = v8_exp(v8_load_part(row + k, r) - V8(maxval));
        v8_store_part(row + k, e, r);
        for (int j = 0; j < r; j++)
            sv[j] += e[j];
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; j++)
        sum += sv[j];
    const float inv = 1.0f / sum;
    for (k = 0; k < km; k++)
        row[k] *= inv;
    for (; k < N; k++)
        row[k] = 0.0f;
}

AIM_VEC static void fwd_pair(float *O, float *P, const float *Q, int N, int D, int hd, int S,
                             float scale)
{
    // Q [N,hd] ld 3D (K = Q + D, V = Q + 2D), O [N,hd] ld D, P [N,N]
    const size_t C3 = 3 * (size_t)D;
    const float *K = Q + D, *V = Q + 2 * D;
    for (int q = 0; q < N; q++) {
        const int km = att_kmax(q, S);
        float *row = P + (size_t)q * N;
        dots(row, Q + (size_t)q * C3, K, C3, km, hd, scale);
        softmax_row(row, km, N);
        wsum(O + (size_t)q * D, row, 1, V, C3, 0, km, hd, 1.0f, 0);
    }
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
    // dV[k] = sum over the queries that see k of P[q,k] dO[q]
    for (int k = 0; k < N; k++)
        wsum(dV + (size_t)k * C3, P + k, (size_t)N, dO, (size_t)D, k < S ? 0 : k, N, hd, 1.0f,
             accumulate);
    // dS = P * (dP - sum_k P dP) with dP[q,k] = dO[q] . V[k]; dQ = scale dS K
    for (int q = 0; q < N; q++) {
        const int km = att_kmax(q, S);
        const float *prow = P + (size_t)q * N;
        float *drow = dS + (size_t)q * N;
        dots(drow, dO + (size_t)q * D, V, C3, km, hd, 1.0f);
        float dot = 0.0f;
        for (int k = 0; k < km; k++)
            dot += drow[k] * prow[k];
        for (int k = 0; k < km; k++)
            drow[k] = prow[k] * (drow[k] - dot);
        for (int k = km; k < N; k++)
            drow[k] = 0.0f;
        wsum(dQ + (size_t)q * C3, drow, 1, K, C3, 0, km, hd, scale, accumulate);
    }
    // dK[k] = scale * sum over the queries that see k of dS[q,k] Q[q]
    for (int k = 0; k < N; k++)
        wsum(dK + (size_t)k * C3, dS + k, (size_t)N, Q, C3, k < S ? 0 : k, N, hd, scale,
             accumulate);
}

void attention_forward(float *out, float *att, const float *qkv, const int32_t *prefix,
                       int B, int N, int D, int NH)
{
    // out [B,N,D], att [B,NH,N,N], qkv [B,N,3D]
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (B * NH > 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            fwd_pair(out + (size_t)b * N * D + h * hd, att + ((size_t)b * NH + h) * N * N,
                     qkv + (size_t)b * N * 3 * D + h * hd, N, D, hd, att_prefix(prefix, b, N),
                     scale);
}

static void backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                     const float *att, const int32_t *prefix, int B, int N, int D, int NH,
                     int accumulate)
{
    if (!dqkv)
        return;
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (B * NH > 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const size_t qoff = (size_t)b * N * 3 * D + h * hd;
            bwd_pair(dqkv + qoff, datt + ((size_t)b * NH + h) * N * N,
                     dout + (size_t)b * N * D + h * hd, qkv + qoff,
                     att + ((size_t)b * NH + h) * N * N, N, D, hd, att_prefix(prefix, b, N),
                     scale, accumulate);
        }
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
