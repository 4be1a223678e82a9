/*
 * loss.c - AIM's pretraining loss: mean squared error between the pixel
 * head's output at token j-1 and the normalised target patch j, counted
 * only for j >= prefix[b] (the prefix patches are context, never targets):
 *   loss = (1/count) * sum_{b, j >= S_b} (1/P) * sum_k (pred[b,j-1,k] - tgt[b,j,k])^2
 * Rows before S_b - 1 and the last row predict nothing. Backward ADDS.
 * loss_per_patch gives the same per target patch (the error map).
 */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

#include "aim/nn.h"
#include "nn/vec.h"

int64_t loss_count(const int32_t *prefix, int B, int N)
{
    // prefix [B]
    int64_t count = 0;
    for (int b = 0; b < B; b++) {
        assert(prefix[b] >= 1 && prefix[b] <= N - 1);
        count += N - prefix[b];
    }
    return count;
}

double loss_row(const float *y, const float *t, int P)
{
    double row = 0.0;
    for (int k = 0; k < P; k++) {
        double d = (double)y[k] - t[k];
        row += d * d;
    }
    return row / P;
}

void loss_row_backward(float *dy, const float *y, const float *t, int P, float scale)
{
    for (int k = 0; k < P; k++)
        dy[k] += scale * (y[k] - t[k]);
}

float loss_forward(const float *pred, const float *tgt, const int32_t *prefix,
                   int B, int N, int P)
{
    // pred [B,N,P], tgt [B,N,P], prefix [B]
    int64_t count = loss_count(prefix, B, N);
    if (count == 0)
        return 0.0f;
    double sum = 0.0;
    for (int b = 0; b < B; b++) {
        for (int j = prefix[b]; j < N; j++) {
            const float *y = pred + ((size_t)b * N + (j - 1)) * P;
            const float *t = tgt + ((size_t)b * N + j) * P;
            sum += loss_row(y, t, P);
        }
    }
    return (float)(sum / (double)count);
}

void loss_per_patch(float *err, const float *pred, const float *tgt, const int32_t *prefix,
                    int B, int N, int P)
{
    // err [B,N], pred [B,N,P], tgt [B,N,P], prefix [B]
    for (int b = 0; b < B; b++) {
        assert(prefix[b] >= 1 && prefix[b] <= N - 1);
        for (int j = 0; j < N; j++) {
            if (j < prefix[b]) {
                err[(size_t)b * N + j] = NAN;
                continue;
            }
            const float *y = pred + ((size_t)b * N + (j - 1)) * P;
            const float *t = tgt + ((size_t)b * N + j) * P;
            err[(size_t)b * N + j] = (float)loss_row(y, t, P);
        }
    }
}

void loss_backward(float *dpred, const float *pred, const float *tgt,
                   const int32_t *prefix, int B, int N, int P, float dloss)
{
    // dpred [B,N,P] (+=), pred [B,N,P], tgt [B,N,P], prefix [B]
    loss_backward_n(dpred, pred, tgt, prefix, B, N, P, dloss, loss_count(prefix, B, N));
}

static void loss_bwd_image(float *dpred, const float *pred, const float *tgt,
                           const int32_t *prefix, int b, int N, int P, float scale)
{
    for (int j = prefix[b]; j < N; j++) {
        float *dy = dpred + ((size_t)b * N + (j - 1)) * P;
        const float *y = pred + ((size_t)b * N + (j - 1)) * P;
        const float *t = tgt + ((size_t)b * N + j) * P;
        loss_row_backward(dy, y, t, P, scale);
    }
}

void loss_backward_n(float *dpred, const float *pred, const float *tgt,
                     const int32_t *prefix, int B, int N, int P, float dloss, int64_t count)
{
    // dpred [B,N,P] (+=), pred [B,N,P], tgt [B,N,P], prefix [B]
    if (count == 0)
        return;
    // d/dy of (1/count)(1/P)(y - t)^2 = 2 (y - t) / (P count)
    float scale = (float)(2.0 * dloss / ((double)P * (double)count));
    if (AIM_PAR((size_t)B * N * P >= 65536 && B > 1)) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++)
            loss_bwd_image(dpred, pred, tgt, prefix, b, N, P, scale);
    } else {
        for (int b = 0; b < B; b++)
            loss_bwd_image(dpred, pred, tgt, prefix, b, N, P, scale);
    }
}
