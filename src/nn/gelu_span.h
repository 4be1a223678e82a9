/*
 * gelu_span.h - the GELU span kernels of gelu.c on GW-float vectors,
 * included by gelu.c once per width (GW 8: AVX2 + FMA or the baseline;
 * GW 16: AVX-512), with GELU_ATTR the functions' target attribute. Each
 * width's functions are named with a GW suffix (gelu_fwd_span16, ...).
 * Both widths run the same operations in the same order, so they give the
 * same results. Private to src/nn/gelu.c: no include guard, on purpose.
 */
#define GELU_CAT3(a, b, c) a##b##c
#define GELU_CAT(a, b, c) GELU_CAT3(a, b, c)
#define VF GELU_CAT(v, GW, f)
#define VI GELU_CAT(v, GW, i)
#define VLOAD GELU_CAT(v, GW, _load)
#define VLOADP GELU_CAT(v, GW, _load_part)
#define VSTORE GELU_CAT(v, GW, _store)
#define VSTOREP GELU_CAT(v, GW, _store_part)
#define VSEL GELU_CAT(v, GW, _sel)
#define VABS GELU_CAT(v, GW, _abs)
#define VEXP2P GELU_CAT(v, GW, _exp2p)
#define PHI2 GELU_CAT(gelu_phi2_, GW, )
#define GQ GELU_CAT(gelu_q, GW, )

/* erfc(u) exp(u^2) / t as a polynomial in t = 1 / (1 + u/2), u >= 0: a
 * degree-10 least-squares fit (relative error 3e-8 in exact arithmetic,
 * 2e-7 evaluated in float), so that erfc(u) = t * exp(-u^2) * Q(t) and the
 * one exp also serves the density in the backward pass. */
AIM_INLINE VF GQ(VF t)
{
    VF p = (VF){0} + 0.044302983f;
    p = p * t + -0.240177656f;
    p = p * t + 0.505098191f;
    p = p * t + -0.468252709f;
    p = p * t + 0.141581732f;
    p = p * t + -0.0633764431f;
    p = p * t + 0.0946045453f;
    p = p * t + 0.175130718f;
    p = p * t + 0.24690072f;
    p = p * t + 0.282093132f;
    return p * t + 0.282094802f;
}

/* Phi(x0), Phi(x1) and exp(-x^2/2) of both, two vectors statement by
 * statement: each alone is one long dependency chain (divide, polynomial,
 * exp), two give the core independent work to overlap. */
AIM_INLINE void PHI2(VF x0, VF x1, VF *phi0, VF *phi1, VF *e0, VF *e1)
{
    VF ax0 = VABS(x0), ax1 = VABS(x1);
    VF xh0 = (VF)((VI)ax0 & (int32_t)0xfffff000u); /* 12 significant bits */
    VF xh1 = (VF)((VI)ax1 & (int32_t)0xfffff000u);
    VF hi0 = -0.5f * (xh0 * xh0), hi1 = -0.5f * (xh1 * xh1); /* exact */
    VF lo0 = -0.5f * ((ax0 - xh0) * (xh0 + ax0));           /* -x^2/2 = hi + lo */
    VF lo1 = -0.5f * ((ax1 - xh1) * (xh1 + ax1));
    VF t0 = 1.0f / (1.0f + (0.5f * GELU_INV_SQRT2) * ax0);
    VF t1 = 1.0f / (1.0f + (0.5f * GELU_INV_SQRT2) * ax1);
    VF q0 = GQ(t0), q1 = GQ(t1);
    VF ex0 = VEXP2P(hi0, lo0), ex1 = VEXP2P(hi1, lo1);
    VF h0 = 0.5f * t0 * ex0 * q0, h1 = 0.5f * t1 * ex1 * q1; /* erfc(u)/2 */
    *phi0 = VSEL(x0 < 0.0f, h0, 1.0f - h0);
    *phi1 = VSEL(x1 < 0.0f, h1, 1.0f - h1);
    *e0 = ex0;
    *e1 = ex1;
}

/* out = gelu(inp); with deriv, also deriv = gelu'(inp) (deriv may be inp) */
GELU_ATTR static void GELU_CAT(gelu_fwd_span, GW, )(float *out, float *deriv, const float *inp,
                                                     size_t n)
{
    const float c = GELU_INV_SQRT2PI;
    size_t i = 0;
    for (; i + 2 * GW <= n; i += 2 * GW) {
        VF x0 = VLOAD(inp + i), x1 = VLOAD(inp + i + GW), p0, p1, e0, e1;
        PHI2(x0, x1, &p0, &p1, &e0, &e1);
        VSTORE(out + i, x0 * p0);
        VSTORE(out + i + GW, x1 * p1);
        if (deriv) {
            VSTORE(deriv + i, p0 + x0 * e0 * c);
            VSTORE(deriv + i + GW, p1 + x1 * e1 * c);
        }
    }
    for (; i < n; i += GW) {
        int k = n - i < GW ? (int)(n - i) : GW;
        VF x = k == GW ? VLOAD(inp + i) : VLOADP(inp + i, k), p, p1, e, e1;
        PHI2(x, x, &p, &p1, &e, &e1);
        VF d = p + x * e * c;
        if (k == GW) {
            VSTORE(out + i, x * p);
            if (deriv)
                VSTORE(deriv + i, d);
        } else {
            VSTOREP(out + i, x * p, k);
            if (deriv)
                VSTOREP(deriv + i, d, k);
        }
    }
}

/* d *= m */
GELU_ATTR static void GELU_CAT(mul_span, GW, )(float *d, const float *m, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        d[i] *= m[i];
}

/* d = (accumulate ? d : 0) + g * gelu'(x), gelu'(x) = Phi(x) + x phi(x) */
GELU_ATTR static void GELU_CAT(gelu_bwd_span, GW, )(float *d, const float *inp, const float *g,
                                                    size_t n, int accumulate)
{
    const float c = GELU_INV_SQRT2PI;
    size_t i = 0;
    for (; i + 2 * GW <= n; i += 2 * GW) {
        VF x0 = VLOAD(inp + i), x1 = VLOAD(inp + i + GW), p0, p1, e0, e1;
        PHI2(x0, x1, &p0, &p1, &e0, &e1);
        VF r0 = VLOAD(g + i) * (p0 + x0 * e0 * c);
        VF r1 = VLOAD(g + i + GW) * (p1 + x1 * e1 * c);
        if (accumulate) {
            r0 += VLOAD(d + i);
            r1 += VLOAD(d + i + GW);
        }
        VSTORE(d + i, r0);
        VSTORE(d + i + GW, r1);
    }
    for (; i < n; i += GW) {
        int k = n - i < GW ? (int)(n - i) : GW;
        VF x = k == GW ? VLOAD(inp + i) : VLOADP(inp + i, k);
        VF gv = k == GW ? VLOAD(g + i) : VLOADP(g + i, k);
        VF p, p1, e, e1;
        PHI2(x, x, &p, &p1, &e, &e1);
        VF r = gv * (p + x * e * c);
        if (accumulate)
            r += k == GW ? VLOAD(d + i) : VLOADP(d + i, k);
        if (k == GW)
            VSTORE(d + i, r);
        else
            VSTOREP(d + i, r, k);
    }
}

#undef GELU_CAT3
#undef GELU_CAT
#undef VF
#undef VI
#undef VLOAD
#undef VLOADP
#undef VSTORE
#undef VSTOREP
#undef VSEL
#undef VABS
#undef VEXP2P
#undef PHI2
#undef GQ
