/*
 * vec.h - what the element-wise kernels share: 8-float GCC vectors, the
 * AIM_VEC attribute that builds a function twice (x86-64-v3: AVX2 + FMA,
 * and the baseline), picked at load time by the CPU, and a vector exp.
 * Private to src/nn.
 */
#ifndef AIM_NN_VEC_H
#define AIM_NN_VEC_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                     \
    defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(AIM_NO_CLONES)
#define AIM_VEC __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef AIM_VEC
#define AIM_VEC
#endif

/* 32-byte vectors passed between always-inline helpers never cross an ABI */
#pragma GCC diagnostic ignored "-Wpsabi"

#define AIM_INLINE static inline __attribute__((always_inline))

/* Open an OpenMP region only when it is worth it and we are not already in
 * one: the model calls these kernels from its own parallel region, where a
 * nested region (even of one thread) would only cost libgomp a team
 * allocation. Kernels branch on this and run their loop serially otherwise. */
#include <omp.h>
#define AIM_PAR(worth) ((worth) && omp_get_level() == 0 && omp_get_max_threads() > 1)

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));

#define V8(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define V8I(x) ((v8i){(x), (x), (x), (x), (x), (x), (x), (x)})

AIM_INLINE v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

AIM_INLINE void v8_store(float *p, v8f v)
{
    memcpy(p, &v, sizeof v);
}

/* the first n (< 8) floats, the rest 0 */
AIM_INLINE v8f v8_load_part(const float *p, int n)
{
    float t[8] = {0};
    memcpy(t, p, (size_t)n * sizeof(float));
    return v8_load(t);
}

AIM_INLINE void v8_store_part(float *p, v8f v, int n)
{
    float t[8];
    v8_store(t, v);
    memcpy(p, t, (size_t)n * sizeof(float));
}

/* m ? a : b, m a comparison result (all ones / all zeros per lane) */
AIM_INLINE v8f v8_sel(v8i m, v8f a, v8f b)
{
    return (v8f)((m & (v8i)a) | (~m & (v8i)b));
}

AIM_INLINE v8f v8_abs(v8f x)
{
    return (v8f)((v8i)x & V8I(0x7fffffff));
}

/* exp(hi + lo) for hi + lo <= ~0 with |lo| << 1: the argument is carried in
 * two parts so that a large, exactly known hi (like -x^2/2) keeps its full
 * precision. Cody-Waite reduction by ln 2, Cephes' degree-6 polynomial
 * (about 1 ulp); 0 below -87 (no denormals). */
AIM_INLINE v8f v8_exp2p(v8f hi, v8f lo)
{
    v8f a = hi + lo;
    v8i under = a < V8(-87.0f);
    a = v8_sel(under, V8(-87.0f), a);
    v8f n = (a * V8(1.44269504088896341f) + V8(12582912.0f)) - V8(12582912.0f);
    v8f r = (v8_sel(under, V8(-87.0f), hi) - n * V8(0.693359375f)) +
            v8_sel(under, V8(0.0f), lo) - n * V8(-2.12194440e-4f);
    v8f p = V8(1.9875691500e-4f);
    p = p * r + V8(1.3981999507e-3f);
    p = p * r + V8(8.3334519073e-3f);
    p = p * r + V8(4.1665795894e-2f);
    p = p * r + V8(1.6666665459e-1f);
    p = p * r + V8(5.0000001201e-1f);
    p = p * (r * r) + r + V8(1.0f);
    v8i e = (__builtin_convertvector(n, v8i) + V8I(127)) << 23;
    return v8_sel(under, V8(0.0f), p * (v8f)e);
}

AIM_INLINE v8f v8_exp(v8f x)
{
    return v8_exp2p(x, V8(0.0f));
}

#endif
