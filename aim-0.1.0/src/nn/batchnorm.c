/*
 * batchnorm.c - BatchNorm over channels without affine parameters (the
 * probes' torch.nn.BatchNorm1d(D, affine=False)): training mode with batch
 * statistics and PyTorch's running-stat update, evaluation mode, backward.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "aim/nn.h"

/* inp [R, C]: statistics per column c over the R rows */
void batchnorm_forward(float *out, float *mean, float *rstd, const float *inp, int R, int C,
                       float eps, float *running_mean, float *running_var, float momentum)
{
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int r = 0; r < R; r++)
            s += inp[(size_t)r * C + c];
        double mu = s / R;
        double v = 0;
        for (int r = 0; r < R; r++) {
            double d = inp[(size_t)r * C + c] - mu;
            v += d * d;
        }
        double var = v / R;
        float rs = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)mu;
        rstd[c] = rs;
        for (int r = 0; r < R; r++)
            out[(size_t)r * C + c] = (float)((inp[(size_t)r * C + c] - mu) * rs);
        if (running_mean && running_var) {
            double unbiased = R > 1 ? v / (R - 1) : var;
            running_mean[c] = (float)((1 - momentum) * running_mean[c] + momentum * mu);
            running_var[c] = (float)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

void batchnorm_eval(float *out, const float *inp, int R, int C, float eps,
                    const float *running_mean, const float *running_var)
{
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            out[(size_t)r * C + c] =
                (inp[(size_t)r * C + c] - running_mean[c]) / sqrtf(running_var[c] + eps);
}

/* y = (x - mu) * rstd: dx = rstd * (dy - mean(dy) - y * mean(dy * y)) */
void batchnorm_backward(float *dinp, const float *dout, const float *out, const float *rstd,
                        int R, int C)
{
#pragma omp parallel for schedule(static) if ((long)R * C > 65536)
    for (int c = 0; c < C; c++) {
        double sd = 0, sdy = 0;
        for (int r = 0; r < R; r++) {
            double d = dout[(size_t)r * C + c];
            sd += d;
            sdy += d * out[(size_t)r * C + c];
        }
        double md = sd / R, mdy = sdy / R;
        for (int r = 0; r < R; r++) {
            size_t i = (size_t)r * C + c;
            dinp[i] += (float)(rstd[c] * (dout[i] - md - out[i] * mdy));
        }
    }
}
