/*
 * gelu.c - exact (erf) GELU, as torch.nn.GELU() with approximate='none':
 * gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
 * Its derivative is Phi(x) + x * phi(x), phi the standard normal density.
 *
 * The fast kernels evaluate Phi through erfc with full relative precision,
 * 16 values at a time (one AVX-512 register, or two AVX2 + FMA ones, where
 * the CPU has them):
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

#include "aim/bf16.h"
#include "aim/nn.h"
#include "nn/vec.h"

#define GELU_INV_SQRT2 0.70710678118654752440f   /* 1/sqrt(2) */
#define GELU_INV_SQRT2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define GELU_PAR_MIN 32768
#define GELU_CHUNK 8192 /* values per task, a multiple of 16 */

/* the span kernels, 8 floats a vector (built for AVX2 + FMA and the
 * baseline), and where the compiler can build them, 16 (AVX-512, used when
 * the CPU has it: gelu_wide) */
#define GW 8
#define GELU_ATTR AIM_VEC
#include "nn/gelu_span.h"
#undef GW
#undef GELU_ATTR
#ifdef AIM_VEC_CLONES
#define GW 16
#define GELU_ATTR __attribute__((target("arch=x86-64-v4")))
#include "nn/gelu_span.h"
#undef GW
#undef GELU_ATTR

/* whether this CPU runs x86-64-v4 code (AVX-512 F, BW, CD, DQ, VL):
 * libgcc's CPU model, filled in once before main, read-only after */
static int gelu_wide(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}
#define GELU_SPAN(name, ...) (gelu_wide() ? name##16(__VA_ARGS__) : name##8(__VA_ARGS__))
#else
#define GELU_SPAN(name, ...) name##8(__VA_ARGS__)
#endif

/* the kinds of pass over chunks of GELU_CHUNK values */
enum { G_FWD, G_FWD_DERIV, G_BWD, G_BWD_ADD, G_MUL };

static void gelu_chunk(long long c, int kind, float *out, float *aux, uint16_t *out16,
                       const float *inp, const float *g, size_t n)
{
    size_t i0 = (size_t)c * GELU_CHUNK, len = n - i0 < GELU_CHUNK ? n - i0 : GELU_CHUNK;
    switch (kind) {
    case G_FWD:
        GELU_SPAN(gelu_fwd_span, out + i0, NULL, inp + i0, len);
        break;
    case G_FWD_DERIV:
        GELU_SPAN(gelu_fwd_span, out + i0, aux + i0, inp + i0, len);
        break;
    case G_BWD:
    case G_BWD_ADD:
        GELU_SPAN(gelu_bwd_span, out + i0, inp + i0, g + i0, len, kind == G_BWD_ADD);
        break;
    default:
        GELU_SPAN(mul_span, out + i0, inp + i0, len);
        break;
    }
    if (out16)
        aim_bf16_convert(out16 + i0, out + i0, len);
}

static void gelu_run(int kind, float *out, float *aux, uint16_t *out16, const float *inp,
                     const float *g, size_t n)
{
    long long nc = (long long)((n + GELU_CHUNK - 1) / GELU_CHUNK);
    if (AIM_PAR(n >= GELU_PAR_MIN)) {
#pragma omp parallel for schedule(static)
        for (long long c = 0; c < nc; c++)
            gelu_chunk(c, kind, out, aux, out16, inp, g, n);
    } else {
        for (long long c = 0; c < nc; c++)
            gelu_chunk(c, kind, out, aux, out16, inp, g, n);
    }
}

void gelu_forward(float *out, const float *inp, size_t n)
{
    // out [n], inp [n]
    gelu_run(G_FWD, out, NULL, NULL, inp, NULL, n);
}

void gelu_forward_deriv(float *out, float *x, size_t n)
{
    // out [n] = gelu(x), x [n] overwritten with gelu'(x)
    gelu_run(G_FWD_DERIV, out, x, NULL, x, NULL, n);
}

void gelu_forward_bf16(float *out, uint16_t *out16, float *x, int deriv, size_t n)
{
    // out [n], out16 [n], x [n] (deriv: overwritten with gelu'(x))
    gelu_run(deriv ? G_FWD_DERIV : G_FWD, out, deriv ? x : NULL, out16, x, NULL, n);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    // dinp [n] (+=), inp [n], dout [n]
    gelu_run(G_BWD_ADD, dinp, NULL, NULL, inp, dout, n);
}

void gelu_backward_inplace(float *d, const float *inp, size_t n)
{
    // d [n]: dout in, dinp out; inp [n]
    gelu_run(G_BWD, d, NULL, NULL, inp, d, n);
}

void gelu_backward_deriv(float *d, const float *deriv, size_t n)
{
    // d [n]: dout in, dinp out; deriv [n] = gelu'(x) from gelu_forward_deriv
    gelu_run(G_MUL, d, NULL, NULL, deriv, NULL, n);
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

/* ---------------------------------------------------------------- widths */

int gelu_span_width(int width, int kind, float *out, float *aux, const float *inp,
                    const float *g, size_t n)
{
    // out [n], aux [n] (kind 1), inp [n], g [n] (kind 2)
#ifdef AIM_VEC_CLONES
    if (width != 8 && (width != 16 || !gelu_wide()))
        return -1;
#define ONE_WIDTH(name, ...) (width == 16 ? name##16(__VA_ARGS__) : name##8(__VA_ARGS__))
#else
    if (width != 8)
        return -1;
#define ONE_WIDTH(name, ...) name##8(__VA_ARGS__)
#endif
    if (kind == 2)
        ONE_WIDTH(gelu_bwd_span, out, inp, g, n, 0);
    else
        ONE_WIDTH(gelu_fwd_span, out, kind == 1 ? aux : NULL, inp, n);
#undef ONE_WIDTH
    return 0;
}
