/*
 * gelu.c - exact (erf) GELU, as torch.nn.GELU() with approximate='none':
 * gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
 * Its derivative is Phi(x) + x * phi(x), phi the standard normal density.
 *
 * The fast kernels evaluate Phi through erfc with full relative precision,
 * 16 values at a time (AVX2 + FMA where the CPU has them):
 *   u = |x| / sqrt(2), t = 1 / (1 + u/2),
 *   erfc(u) = t * exp(-u^2) * Q(t)   (the t substitution of Numerical
 *                                      Recipes' erfcc, with Q a degree-10
 *                                      fit of erfc(u) exp(u^2) / t: relative
 *                                      error 2e-7 for every u >= 0),
 *   Phi(x) = erfc(u) / 2 for x < 0 (no cancellation in the tail), else
 *   1 - erfc(u) / 2, and the density phi(x) = exp(-u^2) / sqrt(2 pi) reuses
 *   the same exp, so the backward pass costs one exp per value too.
 * -u^2 = -x^2/2 is carried to exp as an exact high part plus a low part
 * (Dekker's split of x), so the large exponents of the tail lose nothing.
 * Measured against double erfc: relative error below 6e-7 for gelu, absolute
 * below 3e-7 for its derivative (tests/test_nn.c holds them to 2e-6 and
 * 1e-5).
 * The *_naive versions call libm's erfcf per value (the reference).
 * gelu_backward ADDS into dinp; gelu_backward_inplace overwrites.
 * gelu_forward_deriv also leaves gelu'(x) in place of x (same exp, two more
 * operations), so a training step's backward is one multiply per value
 * (gelu_backward_deriv) instead of a second evaluation.
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

/* erfc(u) exp(u^2) / t as a polynomial in t = 1 / (1 + u/2), u >= 0: a
 * degree-10 least-squares fit (relative error 3e-8 in exact arithmetic,
 * 2e-7 evaluated in float), so that erfc(u) = t * exp(-u^2) * Q(t) and the
 * one exp also serves the density in the backward pass. */
#define GQ(p, t)                                                                            \
    do {                                                                                    \
        p = V8(0.044302983f);                                                               \
        p = p * t + V8(-0.240177656f);                                                      \
        p = p * t + V8(0.505098191f);                                                       \
        p = p * t + V8(-0.468252709f);                                                      \
        p = p * t + V8(0.141581732f);                                                       \
        p = p * t + V8(-0.0633764431f);                                                     \
        p = p * t + V8(0.0946045453f);                                                      \
        p = p * t + V8(0.175130718f);                                                       \
        p = p * t + V8(0.24690072f);                                                        \
        p = p * t + V8(0.282093132f);                                                       \
        p = p * t + V8(0.282094802f);                                                       \
    } while (0)

/* Phi(x0), Phi(x1) and exp(-x^2/2) of both, two vectors statement by
 * statement: each alone is one long dependency chain (divide, polynomial,
 * exp), two give the core independent work to overlap. */
AIM_INLINE void v8_phi2(v8f x0, v8f x1, v8f *phi0, v8f *phi1, v8f *e0, v8f *e1)
{
    v8f ax0 = v8_abs(x0), ax1 = v8_abs(x1);
    v8f xh0 = (v8f)((v8i)ax0 & V8I((int32_t)0xfffff000u)); /* 12 significant bits */
    v8f xh1 = (v8f)((v8i)ax1 & V8I((int32_t)0xfffff000u));
    v8f hi0 = V8(-0.5f) * (xh0 * xh0), hi1 = V8(-0.5f) * (xh1 * xh1); /* exact */
    v8f lo0 = V8(-0.5f) * ((ax0 - xh0) * (xh0 + ax0));  /* -x^2/2 = hi + lo */
    v8f lo1 = V8(-0.5f) * ((ax1 - xh1) * (xh1 + ax1));
    v8f t0 = V8(1.0f) / (V8(1.0f) + V8(0.5f * GELU_INV_SQRT2) * ax0);
    v8f t1 = V8(1.0f) / (V8(1.0f) + V8(0.5f * GELU_INV_SQRT2) * ax1);
    v8f q0, q1;
    GQ(q0, t0);
    GQ(q1, t1);
    v8f ex0 = v8_exp2p(hi0, lo0), ex1 = v8_exp2p(hi1, lo1);
    v8f h0 = V8(0.5f) * t0 * ex0 * q0, h1 = V8(0.5f) * t1 * ex1 * q1; /* erfc(u)/2 */
    *phi0 = v8_sel(x0 < V8(0.0f), h0, V8(1.0f) - h0);
    *phi1 = v8_sel(x1 < V8(0.0f), h1, V8(1.0f) - h1);
    *e0 = ex0;
    *e1 = ex1;
}

/* out = gelu(inp); with deriv, also deriv = gelu'(inp) (deriv may be inp) */
AIM_VEC static void gelu_fwd_span(float *out, float *deriv, const float *inp, size_t n)
{
    const v8f c = V8(GELU_INV_SQRT2PI);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v8f x0 = v8_load(inp + i), x1 = v8_load(inp + i + 8), p0, p1, e0, e1;
        v8_phi2(x0, x1, &p0, &p1, &e0, &e1);
        v8_store(out + i, x0 * p0);
        v8_store(out + i + 8, x1 * p1);
        if (deriv) {
            v8_store(deriv + i, p0 + x0 * e0 * c);
            v8_store(deriv + i + 8, p1 + x1 * e1 * c);
        }
    }
    for (; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        v8f x = k == 8 ? v8_load(inp + i) : v8_load_part(inp + i, k), p, p1, e, e1;
        v8_phi2(x, x, &p, &p1, &e, &e1);
        v8f d = p + x * e * c;
        if (k == 8) {
            v8_store(out + i, x * p);
            if (deriv)
                v8_store(deriv + i, d);
        } else {
            v8_store_part(out + i, x * p, k);
            if (deriv)
                v8_store_part(deriv + i, d, k);
        }
    }
}

/* d *= m */
AIM_VEC static void mul_span(float *d, const float *m, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        d[i] *= m[i];
}

/* d = (accumulate ? d : 0) + g * gelu'(x), gelu'(x) = Phi(x) + x phi(x) */
AIM_VEC static void gelu_bwd_span(float *d, const float *inp, const float *g, size_t n,
                                  int accumulate)
{
    const v8f c = V8(GELU_INV_SQRT2PI);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v8f x0 = v8_load(inp + i), x1 = v8_load(inp + i + 8), p0, p1, e0, e1;
        v8_phi2(x0, x1, &p0, &p1, &e0, &e1);
        v8f r0 = v8_load(g + i) * (p0 + x0 * e0 * c);
        v8f r1 = v8_load(g + i + 8) * (p1 + x1 * e1 * c);
        if (accumulate) {
            r0 += v8_load(d + i);
            r1 += v8_load(d + i + 8);
        }
        v8_store(d + i, r0);
        v8_store(d + i + 8, r1);
    }
    for (; i < n; i += 8) {
        int k = n - i < 8 ? (int)(n - i) : 8;
        v8f x = k == 8 ? v8_load(inp + i) : v8_load_part(inp + i, k);
        v8f gv = k == 8 ? v8_load(g + i) : v8_load_part(g + i, k);
        v8f p, p1, e, e1;
        v8_phi2(x, x, &p, &p1, &e, &e1);
        v8f r = gv * (p + x * e * c);
        if (accumulate)
            r += k == 8 ? v8_load(d + i) : v8_load_part(d + i, k);
        if (k == 8)
            v8_store(d + i, r);
        else
            v8_store_part(d + i, r, k);
    }
}

/* the kinds of pass over chunks of GELU_CHUNK values */
enum { G_FWD, G_FWD_DERIV, G_BWD, G_BWD_ADD, G_MUL };

static void gelu_chunk(long long c, int kind, float *out, float *aux, const float *inp,
                       const float *g, size_t n)
{
    size_t i0 = (size_t)c * GELU_CHUNK, len = n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK;
    switch (kind) {
    case G_FWD:
        gelu_fwd_span(out + i0, NULL, inp + i0, len);
        break;
    case G_FWD_DERIV:
        gelu_fwd_span(out + i0, aux + i0, inp + i0, len);
        break;
    case G_BWD:
    case G_BWD_ADD:
        gelu_bwd_span(out + i0, inp + i0, g + i0, len, kind == G_BWD_ADD);
        break;
    default:
        mul_span(out + i0, inp + i0, len);
        break;
    }
}

static void gelu_run(int kind, float *out, float *aux, const float *inp, const float *g,
                     size_t n)
{
    long long nc = (long long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
    if (AIM_PAR(n >= GELU_PAR_MIN)) {
#pragma omp parallel for schedule(static)
        for (long long c = 0; c < nc; c++)
            gelu_chunk(c, kind, out, aux, inp, g, n);
    } else {
        for (long long c = 0; c < nc; c++)
            gelu_chunk(c, kind, out, aux, inp, g, n);
    }
}

void gelu_forward(float *out, const float *inp, size_t n)
{
    // out [n], inp [n]
    gelu_run(G_FWD, out, NULL, inp, NULL, n);
}

void gelu_forward_deriv(float *out, float *x, size_t n)
{
    // out [n] = gelu(x), x [n] overwritten with gelu'(x)
    gelu_run(G_FWD_DERIV, out, x, x, NULL, n);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    // dinp [n] (+=), inp [n], dout [n]
    gelu_run(G_BWD_ADD, dinp, NULL, inp, dout, n);
}

void gelu_backward_inplace(float *d, const float *inp, size_t n)
{
    // d [n]: dout in, dinp out; inp [n]
    gelu_run(G_BWD, d, NULL, inp, d, n);
}

void gelu_backward_deriv(float *d, const float *deriv, size_t n)
{
    // d [n]: dout in, dinp out; deriv [n] = gelu'(x) from gelu_forward_deriv
    gelu_run(G_MUL, d, NULL, deriv, NULL, n);
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
