/*
 * vec.h - what the element-wise kernels share: 8- and 16-float GCC vectors,
 * the AIM_VEC attribute that builds a function twice (x86-64-v3: AVX2 + FMA,
 * and the baseline), picked at load time by the CPU (AIM_VEC_CLONES says
 * it does), and a vector exp.
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
#define AIM_VEC_CLONES
#endif
#endif
#ifndef AIM_VEC
#define AIM_VEC
#endif

/* 32- and 64-byte vectors passed between always-inline helpers never cross
 * an ABI */
#pragma GCC diagnostic ignored "-Wpsabi"

#define AIM_INLINE static inline __attribute__((always_inline))

/* Open an OpenMP region only when it is worth it and we are not already in
 * one: the model calls these kernels from its own parallel region, where a
 * nested region (even of one thread) would only cost libgomp a team
 * allocation. Kernels branch on this and run their loop serially otherwise. */
#include <omp.h>
#define AIM_PAR(worth) ((worth) && omp_get_level() == 0 && omp_get_max_threads() > 1)

/* The vector helpers for N floats (N = 8, 16): types vNf / vNi and
 * vN_load, vN_store, vN_load_part, vN_store_part, vN_sel, vN_abs, vN_exp2p,
 * vN_exp. One body for both widths; constants are scalars, which GCC
 * broadcasts to the vector operand's width.
 *
 * vN_load_part: the first n (< N) floats, the rest 0.
 * vN_sel(m, a, b): m ? a : b, m a comparison result (all ones / all zeros
 * per lane).
 * vN_exp2p(hi, lo): exp(hi + lo) for hi + lo <= ~0 with |lo| << 1: the
 * argument is carried in two parts so that a large, exactly known hi (like
 * -x^2/2) keeps its full precision. Cody-Waite reduction by ln 2, Cephes'
 * degree-6 polynomial (about 1 ulp); 0 below -87 (no denormals). */
#define AIM_VEC_HELPERS(N)                                                                  \
    typedef float v##N##f __attribute__((vector_size(4 * N), aligned(4)));                  \
    typedef int32_t v##N##i __attribute__((vector_size(4 * N), aligned(4)));                \
    AIM_INLINE v##N##f v##N##_load(const float *p)                                          \
    {                                                                                       \
        v##N##f v;                                                                          \
        memcpy(&v, p, sizeof v);                                                            \
        return v;                                                                           \
    }                                                                                       \
    AIM_INLINE void v##N##_store(float *p, v##N##f v)                                       \
    {                                                                                       \
        memcpy(p, &v, sizeof v);                                                            \
    }                                                                                       \
    AIM_INLINE v##N##f v##N##_load_part(const float *p, int n)                              \
    {                                                                                       \
        float t[N] = {0};                                                                   \
        memcpy(t, p, (size_t)n * sizeof(float));                                            \
        return v##N##_load(t);                                                              \
    }                                                                                       \
    AIM_INLINE void v##N##_store_part(float *p, v##N##f v, int n)                           \
    {                                                                                       \
        float t[N];                                                                         \
        v##N##_store(t, v);                                                                 \
        memcpy(p, t, (size_t)n * sizeof(float));                                            \
    }                                                                                       \
    AIM_INLINE v##N##f v##N##_sel(v##N##i m, v##N##f a, v##N##f b)                          \
    {                                                                                       \
        return (v##N##f)((m & (v##N##i)a) | (~m & (v##N##i)b));                             \
    }                                                                                       \
    AIM_INLINE v##N##f v##N##_abs(v##N##f x)                                                \
    {                                                                                       \
        return (v##N##f)((v##N##i)x & 0x7fffffff);                                          \
    }                                                                                       \
    AIM_INLINE v##N##f v##N##_exp2p(v##N##f hi, v##N##f lo)                                 \
    {                                                                                       \
        const v##N##f zero = {0};                                                           \
        v##N##f a = hi + lo;                                                                \
        v##N##i under = a < -87.0f;                                                         \
        a = v##N##_sel(under, zero - 87.0f, a);                                             \
        v##N##f n = (a * 1.44269504088896341f + 12582912.0f) - 12582912.0f;                 \
        v##N##f r = (v##N##_sel(under, zero - 87.0f, hi) - n * 0.693359375f) +              \
                    v##N##_sel(under, zero, lo) - n * -2.12194440e-4f;                      \
        v##N##f p = zero + 1.9875691500e-4f;                                                \
        p = p * r + 1.3981999507e-3f;                                                       \
        p = p * r + 8.3334519073e-3f;                                                       \
        p = p * r + 4.1665795894e-2f;                                                       \
        p = p * r + 1.6666665459e-1f;                                                       \
        p = p * r + 5.0000001201e-1f;                                                       \
        p = p * (r * r) + r + 1.0f;                                                         \
        v##N##i e = (__builtin_convertvector(n, v##N##i) + 127) << 23;                      \
        return v##N##_sel(under, zero, p * (v##N##f)e);                                     \
    }                                                                                       \
    AIM_INLINE v##N##f v##N##_exp(v##N##f x)                                                \
    {                                                                                       \
        return v##N##_exp2p(x, (v##N##f){0});                                               \
    }

AIM_VEC_HELPERS(8)
AIM_VEC_HELPERS(16)

#define V8(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define V8I(x) ((v8i){(x), (x), (x), (x), (x), (x), (x), (x)})

#endif
