/*
 * layernorm.c - LayerNorm over the last dimension, as torch.nn.LayerNorm
 * (biased variance, affine weight and bias). Forward saves the per-row mean
 * and reciprocal standard deviation; backward follows llm.c's
 * layernorm_backward and ADDS into dinp, dweight, dbias (each may be NULL).
 * Rows are independent, so both directions run OpenMP over rows (the
 * parameter gradients over column blocks instead, to avoid races).
 */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "aim/nn.h"

/* below this many elements the threads cost more than they save */
#define LN_PAR_MIN 16384
/* columns per task when reducing dweight / dbias over rows */
#define LN_COL_BLOCK 64

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int R, int C, float eps)
{
    // out [R,C], mean [R], rstd [R], inp [R,C], weight [C], bias [C]
#pragma omp parallel for schedule(static) if ((size_t)R * C >= LN_PAR_MIN)
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        // two passes (mean, then variance about it) for stability
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

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int R, int C)
{
    // dinp [R,C] (+=), dweight [C] (+=), dbias [C] (+=), dout [R,C], inp [R,C],
    // weight [C], mean [R], rstd [R]
    int par = (size_t)R * C >= LN_PAR_MIN;

    if (dinp) {
#pragma omp parallel for schedule(static) if (par)
        for (int r = 0; r < R; r++) {
            const float *x = inp + (size_t)r * C;
            const float *dy = dout + (size_t)r * C;
            float *dx = dinp + (size_t)r * C;
            float m = mean[r], s = rstd[r];
            // the two reductions of llm.c: mean(w*dy) and mean(w*dy*norm)
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
                dx[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
            }
        }
    }

    if (dweight || dbias) {
        // each task owns a block of columns, sums it over all rows in local
        // accumulators and adds once, so a second call adds exactly the same
        int nblk = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
#pragma omp parallel for schedule(static) if (par && nblk > 1)
        for (int blk = 0; blk < nblk; blk++) {
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
    }
}
