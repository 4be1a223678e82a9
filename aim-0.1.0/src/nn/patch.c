/*
 * patch.c - everything that turns an image into tokens or targets:
 *   patch_extract  image -> per-patch vectors in conv weight order (c,py,px),
 *                  so the patch embedding is a plain linear layer;
 *   sincos2d       the fixed 2-D sin-cos position embedding (MAE / AIM);
 *   patch_targets  the pixel targets in (py,px,c) order, normalised per patch
 *                  with the unbiased variance (AIM's normalised-pixel loss).
 * Tokens are raster order: n = row * (W/p) + col.
 */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

#include "aim/nn.h"
#include "nn/vec.h"

static void targets_image(float *tgt, const float *img, int C, int H, int W, int p);

/* one image's first ntok patches in conv order */
static void extract_image(float *out, const float *img, int C, int H, int W, int p, int ntok)
{
    int gw = W / p, P = C * p * p;
    for (int n = 0; n < ntok; n++) {
        int row = n / gw, col = n % gw;
        float *o = out + (size_t)n * P;
        for (int c = 0; c < C; c++) {
            const float *src = img + ((size_t)c * H + (size_t)row * p) * W + (size_t)col * p;
            for (int py = 0; py < p; py++)
                for (int px = 0; px < p; px++)
                    o[(c * p + py) * p + px] = src[(size_t)py * W + px];
        }
    }
}

void patch_extract_first(float *out, const float *img, int B, int C, int H, int W, int p,
                         int ntok)
{
    // out [B,ntok,C*p*p], img [B,C,H,W], ntok <= N = (H/p)*(W/p)
    assert(p > 0 && H % p == 0 && W % p == 0 && ntok >= 0 && ntok <= (H / p) * (W / p));
    size_t per = (size_t)C * H * W;                 /* values per image in */
    size_t per_out = (size_t)ntok * C * p * p;      /* and out */
    if (AIM_PAR((size_t)B * per >= 65536 && B > 1)) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++)
            extract_image(out + b * per_out, img + b * per, C, H, W, p, ntok);
    } else {
        for (int b = 0; b < B; b++)
            extract_image(out + b * per_out, img + b * per, C, H, W, p, ntok);
    }
}

void patch_extract(float *out, const float *img, int B, int C, int H, int W, int p)
{
    // out [B,N,C*p*p] with N = (H/p)*(W/p), img [B,C,H,W]
    patch_extract_first(out, img, B, C, H, W, p, p > 0 ? (H / p) * (W / p) : 0);
}

void sincos2d(float *out, int gh, int gw, int E)
{
    // out [gh*gw, E]: [sin(j w) | cos(j w) | sin(i w) | cos(i w)], each Q = E/4 wide
    assert(E % 4 == 0);
    int Q = E / 4;
    for (int i = 0; i < gh; i++) {
        for (int j = 0; j < gw; j++) {
            float *o = out + ((size_t)i * gw + j) * E;
            for (int k = 0; k < Q; k++) {
                double w = pow(10000.0, -(double)k / Q);
                o[k] = (float)sin(j * w);
                o[Q + k] = (float)cos(j * w);
                o[2 * Q + k] = (float)sin(i * w);
                o[3 * Q + k] = (float)cos(i * w);
            }
        }
    }
}

void patch_targets(float *tgt, const float *img, int B, int C, int H, int W, int p)
{
    // tgt [B,N,P] with P = p*p*C in (py,px,c) order, img [B,C,H,W]
    assert(p > 0 && H % p == 0 && W % p == 0);
    int N = (H / p) * (W / p), P = C * p * p;
    assert(P >= 2);
    if (AIM_PAR((size_t)B * C * H * W >= 65536 && B > 1)) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++)
            targets_image(tgt + (size_t)b * N * P, img + (size_t)b * C * H * W, C, H, W, p);
    } else {
        for (int b = 0; b < B; b++)
            targets_image(tgt + (size_t)b * N * P, img + (size_t)b * C * H * W, C, H, W, p);
    }
}

/* one image's normalised targets */
static void targets_image(float *tgt, const float *img, int C, int H, int W, int p)
{
    int gw = W / p, N = (H / p) * gw, P = C * p * p;
    for (int n = 0; n < N; n++) {
        int row = n / gw, col = n % gw;
        float *t = tgt + (size_t)n * P;
        for (int c = 0; c < C; c++) {
            const float *src = img + ((size_t)c * H + (size_t)row * p) * W + (size_t)col * p;
            for (int py = 0; py < p; py++)
                for (int px = 0; px < p; px++)
                    t[(py * p + px) * C + c] = src[(size_t)py * W + px];
        }
        // (v - mean) / sqrt(var_unbiased + 1e-6), statistics in double
        double m = 0.0;
        for (int k = 0; k < P; k++)
            m += t[k];
        m /= P;
        double v = 0.0;
        for (int k = 0; k < P; k++)
            v += (t[k] - m) * (t[k] - m);
        v /= (P - 1);
        double s = 1.0 / sqrt(v + 1e-6);
        for (int k = 0; k < P; k++)
            t[k] = (float)((t[k] - m) * s);
    }
}
