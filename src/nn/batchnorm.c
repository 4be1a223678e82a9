/*
 * batchnorm.c - BatchNorm over channels without affine parameters (the
 * probes' torch.nn.BatchNorm1d(D, affine=False)): training mode with batch
 * statistics and PyTorch's running-stat update, evaluation mode, backward.
 * Statistics are per column over the rows; the loops walk blocks of BN_CB
 * columns (one cache line) row by row, each column summed in row order in
 * double, so a block is read line by line instead of one float per line.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "aim/nn.h"
#include "nn/vec.h"

#define BN_CB 16 /* columns per block */

/* one block of nc <= BN_CB columns starting at c0 (inlined with nc = BN_CB
 * for the full blocks, so the column loops have a constant length) */
static inline __attribute__((always_inline)) void
bn_forward_block(float *out, float *mean, float *rstd, const float *inp, int R, int C, int c0,
                 int nc, float eps, float *running_mean, float *running_var, float momentum)
{
    double s[BN_CB] = {0}, v[BN_CB] = {0}, mu[BN_CB];
    float rs[BN_CB];
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C + c0;
        for (int j = 0; j < nc; j++)
            s[j] += x[j];
    }
    for (int j = 0; j < nc; j++)
        mu[j] = s[j] / R;
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C + c0;
        for (int j = 0; j < nc; j++) {
            double d = x[j] - mu[j];
            v[j] += d * d;
        }
    }
    for (int j = 0; j < nc; j++) {
        int c = c0 + j;
        double var = v[j] / R;
        rs[j] = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu[j];
        rstd[c] = rs[j];
        if (running_mean && running_var) {
            double unbiased = R > 1 ? v[j] / (R - 1) : var;
            running_mean[c] = (float)((1 - momentum) * running_mean[c] + momentum * mu[j]);
            running_var[c] = (float)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C + c0;
        float *o = out + (size_t)r * C + c0;
        for (int j = 0; j < nc; j++)
            o[j] = (float)((x[j] - mu[j]) * rs[j]);
    }
}

AIM_VEC static void bn_forward_full(float *out, float *mean, float *rstd, const float *inp,
                                    int R, int C, int c0, float eps, float *running_mean,
                                    float *running_var, float momentum)
{
    bn_forward_block(out, mean, rstd, inp, R, C, c0, BN_CB, eps, running_mean, running_var,
                     momentum);
}

/* inp [R, C]: statistics per column c over the R rows */
void batchnorm_forward(float *out, float *mean, float *rstd, const float *inp, int R, int C,
                       float eps, float *running_mean, float *running_var, float momentum)
{
    int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * BN_CB;
        if (C - c0 >= BN_CB)
            bn_forward_full(out, mean, rstd, inp, R, C, c0, eps, running_mean, running_var,
                            momentum);
        else
            bn_forward_block(out, mean, rstd, inp, R, C, c0, C - c0, eps, running_mean,
                             running_var, momentum);
    }
}

void batchnorm_eval(float *out, const float *inp, int R, int C, float eps,
                    const float *running_mean, const float *running_var)
{
    int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * BN_CB, nc = C - c0 < BN_CB ? C - c0 : BN_CB;
        float sd[BN_CB];
        for (int j = 0; j < nc; j++)
            sd[j] = sqrtf(running_var[c0 + j] + eps);
        for (int r = 0; r < R; r++) {
            const float *x = inp + (size_t)r * C + c0;
            float *o = out + (size_t)r * C + c0;
            for (int j = 0; j < nc; j++)
                o[j] = (x[j] - running_mean[c0 + j]) / sd[j];
        }
    }
}

/* y = (x - mu) * rstd: dx = rstd * (dy - mean(dy) - y * mean(dy * y)) */
static inline __attribute__((always_inline)) void
bn_backward_block(float *dinp, const float *dout, const float *out, const float *rstd, int R,
                  int C, int c0, int nc)
{
    double sd[BN_CB] = {0}, sdy[BN_CB] = {0}, md[BN_CB], mdy[BN_CB];
    for (int r = 0; r < R; r++) {
        size_t i = (size_t)r * C + c0;
        for (int j = 0; j < nc; j++) {
            double d = dout[i + j];
            sd[j] += d;
            sdy[j] += d * out[i + j];
        }
    }
    for (int j = 0; j < nc; j++)
        md[j] = sd[j] / R, mdy[j] = sdy[j] / R;
    for (int r = 0; r < R; r++) {
        size_t i = (size_t)r * C + c0;
        for (int j = 0; j < nc; j++)
            dinp[i + j] += (float)(rstd[c0 + j] * (dout[i + j] - md[j] - out[i + j] * mdy[j]));
    }
}

AIM_VEC static void bn_backward_full(float *dinp, const float *dout, const float *out,
                                     const float *rstd, int R, int C, int c0)
{
    bn_backward_block(dinp, dout, out, rstd, R, C, c0, BN_CB);
}

void batchnorm_backward(float *dinp, const float *dout, const float *out, const float *rstd,
                        int R, int C)
{
    int nblk = (C + BN_CB - 1) / BN_CB;
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * BN_CB;
        if (C - c0 >= BN_CB)
            bn_backward_full(dinp, dout, out, rstd, R, C, c0);
        else
            bn_backward_block(dinp, dout, out, rstd, R, C, c0, C - c0);
    }
}
