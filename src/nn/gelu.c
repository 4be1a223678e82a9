/*
 * gelu.c - exact (erf) GELU, as torch.nn.GELU() with approximate='none':
 * gelu(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).
 * Its derivative is Phi(x) + x * phi(x), phi the standard normal density.
 * Phi(x) is evaluated as 0.5 * erfc(-x / sqrt(2)), the same function, which
 * keeps full relative precision in the negative tail where 1 + erf cancels.
 * Backward ADDS into dinp. Elementwise, OpenMP when the buffer is large.
 */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "aim/nn.h"

#define GELU_INV_SQRT2 0.70710678118654752440f   /* 1/sqrt(2) */
#define GELU_INV_SQRT2PI 0.39894228040143267794f /* 1/sqrt(2 pi) */
#define GELU_PAR_MIN 32768

void gelu_forward(float *out, const float *inp, size_t n)
{
    // out [n], inp [n]
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long long i = 0; i < nn; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * erfcf(-x * GELU_INV_SQRT2);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    // dinp [n] (+=), inp [n], dout [n]
    long long nn = (long long)n;
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long long i = 0; i < nn; i++) {
        float x = inp[i];
        float cdf = 0.5f * erfcf(-x * GELU_INV_SQRT2);
        float pdf = expf(-0.5f * x * x) * GELU_INV_SQRT2PI;
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}
