/*
 * linear.c - fully connected layer out = inp @ W^T + b with W [OC, IC]
 * row-major (PyTorch's nn.Linear layout), through OpenBLAS's cblas_sgemm.
 * All three products are expressed with transpose flags, so nothing is
 * copied. Backward ADDS into dinp, dweight, dbias; each may be NULL.
 * The *_naive versions are plain loops (double accumulators) that the
 * tests use as the reference.
 */
#include "config.h"

#include <cblas.h>
#include <stddef.h>
#include <string.h>

#include "aim/nn.h"
#include "nn/vec.h"

/* below this many multiply-adds the naive loops stay single threaded */
#define LIN_PAR_MIN 65536
/* columns per task when summing dbias over rows */
#define LIN_COL_BLOCK 64

/* ------------------------------------------------------------------ fast */

/* dbias (+=) of the columns of block blk: column sums of dout[R,OC] */
static void bias_block(float *dbias, const float *dout, int R, int OC, int blk)
{
    int o0 = blk * LIN_COL_BLOCK;
    int no = OC - o0 < LIN_COL_BLOCK ? OC - o0 : LIN_COL_BLOCK;
    float acc[LIN_COL_BLOCK] = {0}; // [no]
    for (int r = 0; r < R; r++) {
        const float *g = dout + (size_t)r * OC + o0;
        for (int o = 0; o < no; o++)
            acc[o] += g[o];
    }
    for (int o = 0; o < no; o++)
        dbias[o0 + o] += acc[o];
}

void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int R, int IC, int OC)
{
    // out [R,OC], inp [R,IC], weight [OC,IC], bias [OC] or NULL
    if (R <= 0 || OC <= 0)
        return;
    float beta = 0.0f;
    if (bias) {
        // preload the bias into every row, then let sgemm accumulate onto it
        for (int r = 0; r < R; r++)
            memcpy(out + (size_t)r * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    if (IC <= 0) {
        if (!bias)
            memset(out, 0, (size_t)R * OC * sizeof(float));
        return;
    }
    // out[R,OC] = inp[R,IC] @ weight[OC,IC]^T (+ out)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, IC,
                1.0f, inp, IC, weight, IC, beta, out, OC);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int R, int IC, int OC)
{
    // dinp [R,IC] (+=), dweight [OC,IC] (+=), dbias [OC] (+=), dout [R,OC],
    // inp [R,IC], weight [OC,IC]
    if (R <= 0 || OC <= 0)
        return;
    if (IC > 0) {
        if (dinp)
            // dinp[R,IC] += dout[R,OC] @ weight[OC,IC]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IC, OC,
                        1.0f, dout, OC, weight, IC, 1.0f, dinp, IC);
        if (dweight)
            // dweight[OC,IC] += dout[R,OC]^T @ inp[R,IC]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, R,
                        1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
    }
    if (dbias) {
        // dbias[OC] += column sums of dout[R,OC]: per block of columns, rows
        // outer (contiguous reads) into a local sum that is added once
        int nblk = (OC + LIN_COL_BLOCK - 1) / LIN_COL_BLOCK;
        if (AIM_PAR((size_t)R * OC >= LIN_PAR_MIN && nblk > 1)) {
#pragma omp parallel for schedule(static)
            for (int blk = 0; blk < nblk; blk++)
                bias_block(dbias, dout, R, OC, blk);
        } else {
            for (int blk = 0; blk < nblk; blk++)
                bias_block(dbias, dout, R, OC, blk);
        }
    }
}

void linear_backward_beta(float *dinp, float beta_inp, float *dweight, float *dbias,
                          float beta_w, const float *dout, const float *inp,
                          const float *weight, int R, int IC, int OC)
{
    // dinp [R,IC], dweight [OC,IC], dbias [OC], dout [R,OC], inp [R,IC], weight [OC,IC]
    if (OC <= 0)
        return;
    if (R > 0 && IC > 0) {
        if (dinp)
            // dinp[R,IC] = beta dinp + dout[R,OC] @ weight[OC,IC]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IC, OC, 1.0f, dout, OC,
                        weight, IC, beta_inp, dinp, IC);
        if (dweight)
            // dweight[OC,IC] = beta dweight + dout[R,OC]^T @ inp[R,IC]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, R, 1.0f, dout, OC,
                        inp, IC, beta_w, dweight, IC);
    } else if (dweight && IC > 0 && beta_w == 0.0f) {
        memset(dweight, 0, (size_t)OC * IC * sizeof(float));
    }
    if (dbias) {
        // dbias[OC] = beta dbias + column sums of dout, rows outer (contiguous)
        if (beta_w == 0.0f)
            memset(dbias, 0, (size_t)OC * sizeof(float));
        for (int r = 0; r < R; r++) {
            const float *g = dout + (size_t)r * OC;
#pragma omp simd
            for (int o = 0; o < OC; o++)
                dbias[o] += g[o];
        }
    }
}

/* ----------------------------------------------------------------- naive */

void linear_forward_naive(float *out, const float *inp, const float *weight,
                          const float *bias, int R, int IC, int OC)
{
    // out [R,OC], inp [R,IC], weight [OC,IC], bias [OC] or NULL
#pragma omp parallel for schedule(static) if ((double)R * IC * OC >= LIN_PAR_MIN)
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * IC;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * IC;
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < IC; i++)
                acc += (double)x[i] * w[i];
            out[(size_t)r * OC + o] = (float)acc;
        }
    }
}

void linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int R, int IC, int OC)
{
    // dinp [R,IC] (+=), dweight [OC,IC] (+=), dbias [OC] (+=), dout [R,OC],
    // inp [R,IC], weight [OC,IC]
    int par = (double)R * IC * OC >= LIN_PAR_MIN;
    if (dinp) {
        // dinp[r,i] += sum_o dout[r,o] * weight[o,i]
#pragma omp parallel for schedule(static) if (par)
        for (int r = 0; r < R; r++) {
            const float *g = dout + (size_t)r * OC;
            for (int i = 0; i < IC; i++) {
                double acc = 0.0;
                for (int o = 0; o < OC; o++)
                    acc += (double)g[o] * weight[(size_t)o * IC + i];
                dinp[(size_t)r * IC + i] += (float)acc;
            }
        }
    }
    if (dweight) {
        // dweight[o,i] += sum_r dout[r,o] * inp[r,i]
#pragma omp parallel for schedule(static) if (par)
        for (int o = 0; o < OC; o++) {
            for (int i = 0; i < IC; i++) {
                double acc = 0.0;
                for (int r = 0; r < R; r++)
                    acc += (double)dout[(size_t)r * OC + o] * inp[(size_t)r * IC + i];
                dweight[(size_t)o * IC + i] += (float)acc;
            }
        }
    }
    if (dbias) {
        // dbias[o] += sum_r dout[r,o]
        for (int o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int r = 0; r < R; r++)
                acc += dout[(size_t)r * OC + o];
            dbias[o] += (float)acc;
        }
    }
}
