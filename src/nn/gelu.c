/*
 * gelu.c - exact (erf) GELU, as torch.nn.GELU() with approximate='none':
 * gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
 * Its derivative is Phi(x) + x * phi(x), phi the standard normal density.
 *
 * The fast kernels evaluate Phi through erfc with full relative precision,
 * 8 values at a time (AVX2 + FMA where the CPU has them):
 *   u = |x| / sqrt(2), t = 1 / (1 + u/2),
 *   erfc(u) = t * exp(-u^2 + P(t))   (Numerical Recipes' erfcc: a degree-9
 *                                      Chebyshev fit, relative error < 1.2e-7
 *                                      for every u >= 0),
 *   Phi(x) = erfc(u) / 2 for x < 0 (no cancellation in the tail), else
 *   1 - erfc(u) / 2.
 * -u^2 = -x^2/2 is carried to exp as an exact high part plus a low part
 * (Dekker's split of x), so the large exponents of the tail lose nothing.
 * Measured against double erfc: relative error below 5e-7 for gelu, absolute
 * below 3e-7 for its derivative (tests/test_nn.c holds them to 1e-5).
 * The *_naive versions call libm's erfcf per value (the reference).
 * gelu_backward ADDS into dinp; gelu_backward_inplace overwrites.
 */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "aim/nn.h"
#include "nn/vec.h"

#define GELU_INV_SQRT2 0.70710678118654752440f   /* 1/sqrt(2) */
#define GELU_INV_SQRT2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define GELU_PAR_MIN 32768
#define GELU_CHUNK 8192 /* values per task, a multiple of 8 */

/* Phi(x); *pdf = exp(-x^2/2) when pdf is not NULL */
AIM_INLINE v8f v8_phi(v8f x, v8f *pdf)
{
    v8f ax = v8_abs(x);
    v8f xh = (v8f)((v8i)ax & V8I((int32_t)0xfffff000u)); /* 12 significant bits */
    v8f xl = ax - xh;
    v8f hi = V8(-0.5f) * (xh * xh);      /* exact */
    v8f lo = V8(-0.5f) * (xl * (xh + ax)); /* -x^2/2 = hi + lo */
    v8f t = V8(1.0f) / (V8(1.0f) + V8(0.5f * GELU_INV_SQRT2) * ax);
    v8f p = V8(0.17087277f);
    p = p * t + V8(-0.82215223f);
    p = p * t + V8(1.48851587f);
    p = p * t + V8(-1.13520398f);
    p = p * t + V8(0.27886807f);
    p = p * t + V8(-0.18628806f);
    p = p * t + V8(0.09678418f);
    p = p * t + V8(0.37409196f);
    p = p * t + V8(1.00002368f);
    p = p * t + V8(-1.26551223f);
    v8f half_erfc = V8(0.5f) * t * v8_exp2p(hi, lo + p);
    if (pdf)
        *pdf = v8_exp2p(hi, lo);
    return v8_sel(x < V8(0.0f), half_erfc, V8(1.0f) - half_erfc);
}

AIM_VEC static void gelu_fwd_span(float *out, const float *inp, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f x = v8_load(inp + i);
        v8_store(out + i, x * v8_phi(x, NULL));
    }
    if (i < n) {
        int k = (int)(n - i);
        v8f x = v8_load_part(inp + i, k);
        v8_store_part(out + i, x * v8_phi(x, NULL), k);
    }
}

/* d = (accumulate ? d : 0) + g * gelu'(x) */
AIM_VEC static void gelu_bwd_span(float *d, const float *inp, const float *g, size_t n,
                                  int accumulate)
{
    size_t i = 0;
    for (; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        v8f x = k == 8 ? v8_load(inp + i) : v8_load_part(inp + i, k);
        v8f gv = k == 8 ? v8_load(g + i) : v8_load_part(g + i, k);
        v8f pdf, cdf = v8_phi(x, &pdf);
        v8f r = gv * (cdf + x * pdf * V8(GELU_INV_SQRT2PI));
        if (accumulate)
            r += k == 8 ? v8_load(d + i) : v8_load_part(d + i, k);
        if (k == 8)
            v8_store(d + i, r);
        else
            v8_store_part(d + i, r, k);
    }
}

void gelu_forward(float *out, const float *inp, size_t n)
{
    // out [n], inp [n]
    long long nc = (long long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long long c = 0; c < nc; c++) {
        size_t i0 = (size_t)c * GELU_CHUNK;
        gelu_fwd_span(out + i0, inp + i0, n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    // dinp [n] (+=), inp [n], dout [n]
    long long nc = (long long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long long c = 0; c < nc; c++) {
        size_t i0 = (size_t)c * GELU_CHUNK;
        gelu_bwd_span(dinp + i0, inp + i0, dout + i0,
                      n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK, 1);
    }
}

void gelu_backward_inplace(float *d, const float *inp, size_t n)
{
    // d [n]: dout in, dinp out; inp [n]
    long long nc = (long long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long long c = 0; c < nc; c++) {
        size_t i0 = (size_t)c * GELU_CHUNK;
        gelu_bwd_span(d + i0, inp + i0, d + i0, n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK, 0);
    }
}

/* ---------------------------------------------------------------- naive */

void gelu_forward_naive(float *out, const float *inp, size_t n)
{
    // out [n], inp [n]; Phi(x) = erfc(-x/sqrt 2)/2 keeps the negative tail exact
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * erfcf(-x * GELU_INV_SQRT2);
    }
}

void gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n)
{
    // dinp [n] (+=), inp [n], dout [n]
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * erfcf(-x * GELU_INV_SQRT2);
        float pdf = expf(-0.5f * x * x) * GELU_INV_SQRT2PI;
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}
