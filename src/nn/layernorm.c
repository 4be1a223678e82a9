/*
 * layernorm.c - LayerNorm over the last dimension, as torch.nn.LayerNorm
 * (biased variance, affine weight and bias). Forward saves the per-row mean
 * and reciprocal standard deviation; backward follows llm.c's
 * layernorm_backward and ADDS into dinp, dweight, dbias (each may be NULL).
 *
 * Every pass works on one row at a time (a row of C floats stays in L1):
 *   add_layernorm_forward   res = a + b + bias + pos (any may be absent),
 *                           out = LN(res) (+ post): the residual add, the
 *                           bias, the position embedding and the norm in one
 *                           sweep over memory;
 *   layernorm_backward_rows dinp, dweight and dbias in one sweep, with an
 *                           explicit accumulate-or-overwrite choice.
 * Both are serial: the model calls them from its own parallel region, one
 * thread per block of images. layernorm_forward / layernorm_backward are the
 * public, OpenMP-parallel forms (rows for dinp; column blocks for the
 * parameter gradients, so the result does not depend on the thread count).
 * The *_naive pair is the plain llm.c-style reference.
 */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "aim/bf16.h"
#include "aim/nn.h"
#include "nn/vec.h"

/* below this many elements the threads cost more than they save */
#define LN_PAR_MIN 16384
/* columns per task when reducing dweight / dbias over rows */
#define LN_COL_BLOCK 64
/* rows per task in the parallel forms */
#define LN_ROW_BLOCK 32

AIM_VEC void add_layernorm_forward(float *res, const layernorm_args *ln, const float *a,
                                   const float *b, const float *bias, const float *pos, int R,
                                   int C, int N)
{
    // res [R,C] (may alias a), a [R,C], b [R,C], bias [C], pos [N,C] (row r uses
    // row r % N); ln: out [R,C], mean [R], rstd [R], weight [C], bias [C], post [N,C]
    float *out = ln ? ln->out : NULL, *mean = ln ? ln->mean : NULL, *rstd = ln ? ln->rstd : NULL;
    const float *weight = ln ? ln->weight : NULL, *lbias = ln ? ln->bias : NULL;
    const float *post = ln ? ln->post : NULL;
    const float eps = ln ? ln->eps : 0.0f;
    const int adds = b || bias || pos;
    for (int r = 0; r < R; r++) {
        const float *x = a + (size_t)r * C;
        if (adds || (res && res != a)) {
            float *y = res + (size_t)r * C;
            const float *br = b ? b + (size_t)r * C : NULL;
            const float *pr = pos ? pos + (size_t)(r % N) * C : NULL;
            if (br) {
#pragma omp simd
                for (int i = 0; i < C; i++)
                    y[i] = x[i] + br[i];
            } else if (y != x) {
                memcpy(y, x, (size_t)C * sizeof(float));
            }
            if (bias) {
#pragma omp simd
                for (int i = 0; i < C; i++)
                    y[i] += bias[i];
            }
            if (pr) {
#pragma omp simd
                for (int i = 0; i < C; i++)
                    y[i] += pr[i];
            }
            x = y;
        }
        if (!out)
            continue;
        // two passes (mean, then variance about it) for stability
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < C; i++)
            s += x[i];
        const float m = s / C;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        const float rs = 1.0f / sqrtf(v / C + eps);
        float *o = out + (size_t)r * C;
#pragma omp simd
        for (int i = 0; i < C; i++)
            o[i] = (x[i] - m) * rs * weight[i] + lbias[i];
        if (post) {
            const float *pp = post + (size_t)(r % N) * C;
#pragma omp simd
            for (int i = 0; i < C; i++)
                o[i] += pp[i];
        }
        if (ln->out16) /* while the row is in L1 */
            aim_bf16_convert(ln->out16 + (size_t)r * C, o, C);
        mean[r] = m;
        rstd[r] = rs;
    }
}

AIM_VEC void layernorm_backward_rows(float *dinp, float beta_inp, float *dweight,
                                     float *dbias, float beta_w, const float *dout,
                                     const float *inp, const float *weight, const float *mean,
                                     const float *rstd, int R, int C)
{
    // dinp [R,C], dweight [C], dbias [C], dout [R,C], inp [R,C], weight [C],
    // mean [R], rstd [R]
    if (beta_w == 0.0f) {
        if (dweight)
            memset(dweight, 0, (size_t)C * sizeof(float));
        if (dbias)
            memset(dbias, 0, (size_t)C * sizeof(float));
    }
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        const float *dy = dout + (size_t)r * C;
        const float m = mean[r], s = rstd[r];
        if (dinp) {
            // the two reductions of llm.c: mean(w*dy) and mean(w*dy*norm)
            float dm = 0.0f, dnm = 0.0f;
#pragma omp simd reduction(+ : dm, dnm)
            for (int i = 0; i < C; i++) {
                float norm = (x[i] - m) * s;
                float dnorm = weight[i] * dy[i];
                dm += dnorm;
                dnm += dnorm * norm;
            }
            dm /= C;
            dnm /= C;
            float *dx = dinp + (size_t)r * C;
            if (beta_inp == 0.0f) {
#pragma omp simd
                for (int i = 0; i < C; i++) {
                    float norm = (x[i] - m) * s;
                    dx[i] = (weight[i] * dy[i] - dm - norm * dnm) * s;
                }
            } else {
#pragma omp simd
                for (int i = 0; i < C; i++) {
                    float norm = (x[i] - m) * s;
                    dx[i] += (weight[i] * dy[i] - dm - norm * dnm) * s;
                }
            }
        }
        if (dweight) {
#pragma omp simd
            for (int i = 0; i < C; i++)
                dweight[i] += (x[i] - m) * s * dy[i];
        }
        if (dbias) {
#pragma omp simd
            for (int i = 0; i < C; i++)
                dbias[i] += dy[i];
        }
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int R, int C, float eps)
{
    // out [R,C], mean [R], rstd [R], inp [R,C], weight [C], bias [C]
    if (!AIM_PAR((size_t)R * C >= LN_PAR_MIN)) {
        const layernorm_args ln = {out, mean, rstd, weight, bias, NULL, NULL, eps};
        add_layernorm_forward(NULL, &ln, inp, NULL, NULL, NULL, R, C, 1);
        return;
    }
    int nb = (R + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int r0 = blk * LN_ROW_BLOCK, n = R - r0 < LN_ROW_BLOCK ? R - r0 : LN_ROW_BLOCK;
        const layernorm_args ln = {out + (size_t)r0 * C, mean + r0, rstd + r0, weight, bias,
                                   NULL, NULL, eps};
        add_layernorm_forward(NULL, &ln, inp + (size_t)r0 * C, NULL, NULL, NULL, n, C, 1);
    }
}

/* dweight, dbias (+=) of the columns of block blk, summed over all rows */
static void ln_params_block(float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *mean, const float *rstd, int R, int C, int blk)
{
    int c0 = blk * LN_COL_BLOCK;
    int nc = C - c0 < LN_COL_BLOCK ? C - c0 : LN_COL_BLOCK;
    float dw[LN_COL_BLOCK] = {0}, db[LN_COL_BLOCK] = {0}; // [nc] each
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C + c0;
        const float *dy = dout + (size_t)r * C + c0;
        float m = mean[r], s = rstd[r];
        for (int i = 0; i < nc; i++) {
            db[i] += dy[i];
            dw[i] += (x[i] - m) * s * dy[i];
        }
    }
    if (dbias)
        for (int i = 0; i < nc; i++)
            dbias[c0 + i] += db[i];
    if (dweight)
        for (int i = 0; i < nc; i++)
            dweight[c0 + i] += dw[i];
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int R, int C)
{
    // dinp [R,C] (+=), dweight [C] (+=), dbias [C] (+=), dout [R,C], inp [R,C],
    // weight [C], mean [R], rstd [R]
    int par = AIM_PAR((size_t)R * C >= LN_PAR_MIN);

    if (dinp && !par) {
        layernorm_backward_rows(dinp, 1.0f, NULL, NULL, 1.0f, dout, inp, weight, mean, rstd, R,
                                C);
    } else if (dinp) {
        int nb = (R + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nb; blk++) {
            int r0 = blk * LN_ROW_BLOCK, n = R - r0 < LN_ROW_BLOCK ? R - r0 : LN_ROW_BLOCK;
            layernorm_backward_rows(dinp + (size_t)r0 * C, 1.0f, NULL, NULL, 1.0f,
                                    dout + (size_t)r0 * C, inp + (size_t)r0 * C, weight,
                                    mean + r0, rstd + r0, n, C);
        }
    }

    if (dweight || dbias) {
        // each task owns a block of columns, sums it over all rows in local
        // accumulators and adds once, so a second call adds exactly the same
        int nblk = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
        if (par && nblk > 1) {
#pragma omp parallel for schedule(static)
            for (int blk = 0; blk < nblk; blk++)
                ln_params_block(dweight, dbias, dout, inp, mean, rstd, R, C, blk);
        } else {
            for (int blk = 0; blk < nblk; blk++)
                ln_params_block(dweight, dbias, dout, inp, mean, rstd, R, C, blk);
        }
    }
}

/* ---------------------------------------------------------------- naive */

void layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int R, int C, float eps)
{
    // out [R,C], mean [R], rstd [R], inp [R,C], weight [C], bias [C]
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        for (int i = 0; i < C; i++)
            o[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

void layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, int R, int C)
{
    // dinp [R,C] (+=), dweight [C] (+=), dbias [C] (+=), dout [R,C], inp [R,C],
    // weight [C], mean [R], rstd [R]
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        const float *dy = dout + (size_t)r * C;
        float m = mean[r], s = rstd[r];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s;
            float dnorm = weight[i] * dy[i];
            if (dinp)
                dinp[(size_t)r * C + i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
            if (dweight)
                dweight[i] += norm * dy[i];
            if (dbias)
                dbias[i] += dy[i];
        }
    }
}
