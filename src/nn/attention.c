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
 * attention_forward / attention_backward: OpenMP over the (b, h) pairs and,
 * inside each pair, cblas_sgemm on strided head slices (lda = 3D for q/k/v,
 * D for out), so nothing is copied. With the OpenMP build of OpenBLAS the
 * sgemm calls inside the parallel region run single-threaded, and every
 * (b, h) pair is computed by one thread in a fixed order, so results do not
 * depend on the number of threads.
 *
 * Fully masked work is skipped: rows q < S only see keys < S, and a block of
 * rows [r0, r1) with r0 >= S only sees keys < r1, so the rows are processed
 * as one [S x S] block followed by causal blocks of ATT_BLOCK rows.
 *
 * The *_naive pair is plain loops in the style of llm.c, kept as the
 * reference the tests compare against. Backward functions ADD into dqkv;
 * datt [B,NH,N,N] is caller-provided scratch (overwritten). No allocation.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stddef.h>

#include <cblas.h>

#include "aim/nn.h"

/* rows per causal block: smaller skips more masked work, larger makes fewer
 * and bigger sgemm calls */
#ifndef ATT_BLOCK
#define ATT_BLOCK 16
#endif

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

/* Row blocks: the first is [0, S) (all rows see exactly keys < S); after
 * that blocks of ATT_BLOCK rows. Returns r1 for a block starting at r0 and
 * sets *kc to the number of keys any row of the block may see. */
static inline int att_block_end(int r0, int S, int N, int *kc)
{
    int r1 = r0 < S ? S : (r0 + ATT_BLOCK < N ? r0 + ATT_BLOCK : N);
    *kc = r1 > S ? r1 : S;
    return r1;
}

void attention_forward(float *out, float *att, const float *qkv, const int32_t *prefix,
                       int B, int N, int D, int NH)
{
    // out [B,N,D], att [B,NH,N,N], qkv [B,N,3D]
    const int C3 = 3 * D;
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);

    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int S = att_prefix(prefix, b, N);
            const float *Q = qkv + (size_t)b * N * C3 + h * hd; // [N,hd] ld 3D
            const float *K = Q + D;                              // [N,hd] ld 3D
            const float *V = Q + 2 * D;                          // [N,hd] ld 3D
            float *O = out + (size_t)b * N * D + h * hd;         // [N,hd] ld D
            float *P = att + ((size_t)b * NH + h) * N * N;       // [N,N]

            int kc;
            for (int r0 = 0, r1; r0 < N; r0 = r1) {
                r1 = att_block_end(r0, S, N, &kc);
                const int m = r1 - r0;
                // scores[r0:r1, 0:kc] = scale * Q[r0:r1] K[0:kc]^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kc, hd, scale,
                            Q + (size_t)r0 * C3, C3, K, C3, 0.0f, P + (size_t)r0 * N, N);
                // masked, numerically stable softmax of each row
                for (int q = r0; q < r1; q++) {
                    float *row = P + (size_t)q * N;
                    const int km = att_kmax(q, S);
                    float maxval = -FLT_MAX;
                    for (int k = 0; k < km; k++)
                        if (row[k] > maxval)
                            maxval = row[k];
                    float sum = 0.0f;
                    for (int k = 0; k < km; k++) {
                        row[k] = expf(row[k] - maxval);
                        sum += row[k];
                    }
                    const float inv = 1.0f / sum;
                    for (int k = 0; k < km; k++)
                        row[k] *= inv;
                    for (int k = km; k < N; k++)
                        row[k] = 0.0f;
                }
                // out[r0:r1] = P[r0:r1, 0:kc] V[0:kc]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, kc, 1.0f,
                            P + (size_t)r0 * N, N, V, C3, 0.0f, O + (size_t)r0 * D, D);
            }
        }
    }
}

void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, const int32_t *prefix, int B, int N, int D,
                        int NH)
{
    // dqkv [B,N,3D] (+=), datt [B,NH,N,N] scratch, dout [B,N,D], qkv [B,N,3D],
    // att [B,NH,N,N]
    if (!dqkv)
        return;
    const int C3 = 3 * D;
    const int hd = D / NH;
    const float scale = 1.0f / sqrtf((float)hd);

    #pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int S = att_prefix(prefix, b, N);
            const size_t qoff = (size_t)b * N * C3 + h * hd;
            const float *Q = qkv + qoff;                           // [N,hd] ld 3D
            const float *K = Q + D;
            const float *V = Q + 2 * D;
            float *dQ = dqkv + qoff;                               // [N,hd] ld 3D
            float *dK = dQ + D;
            float *dV = dQ + 2 * D;
            const float *dO = dout + (size_t)b * N * D + h * hd;   // [N,hd] ld D
            const float *P = att + ((size_t)b * NH + h) * N * N;   // [N,N]
            float *dS = datt + ((size_t)b * NH + h) * N * N;       // [N,N]

            int kc;
            for (int r0 = 0, r1; r0 < N; r0 = r1) {
                r1 = att_block_end(r0, S, N, &kc);
                const int m = r1 - r0;
                const float *Pb = P + (size_t)r0 * N;
                float *dSb = dS + (size_t)r0 * N;
                // dP[r0:r1, 0:kc] = dO[r0:r1] V[0:kc]^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, kc, hd, 1.0f,
                            dO + (size_t)r0 * D, D, V, C3, 0.0f, dSb, N);
                // dV[0:kc] += P[r0:r1, 0:kc]^T dO[r0:r1]
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, hd, m, 1.0f,
                            Pb, N, dO + (size_t)r0 * D, D, 1.0f, dV, C3);
                // softmax backward, in place: dS = P * (dP - sum_k dP P)
                for (int q = r0; q < r1; q++) {
                    const float *prow = P + (size_t)q * N;
                    float *drow = dS + (size_t)q * N;
                    const int km = att_kmax(q, S);
                    float dot = 0.0f;
                    for (int k = 0; k < km; k++)
                        dot += drow[k] * prow[k];
                    for (int k = 0; k < km; k++)
                        drow[k] = prow[k] * (drow[k] - dot);
                    for (int k = km; k < N; k++)
                        drow[k] = 0.0f;
                }
                // dQ[r0:r1] += scale * dS[r0:r1, 0:kc] K[0:kc]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, kc, scale,
                            dSb, N, K, C3, 1.0f, dQ + (size_t)r0 * C3, C3);
                // dK[0:kc] += scale * dS[r0:r1, 0:kc]^T Q[r0:r1]
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kc, hd, m, scale,
                            dSb, N, Q + (size_t)r0 * C3, C3, 1.0f, dK, C3);
            }
        }
    }
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
