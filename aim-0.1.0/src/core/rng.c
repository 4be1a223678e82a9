/*
 * rng.c - xoshiro256** (Blackman & Vigna), seeded through splitmix64.
 * Every random choice in aim (init, shuffling, crops, prefixes) comes from
 * one of these streams, so a seed reproduces a run on any machine.
 */
#include "config.h"

#include <math.h>

#include "aim/core.h"

uint64_t aim_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void aim_rng_seed(aim_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = aim_hash64(x - 0x9e3779b97f4a7c15ULL + (uint64_t)i * 0x632be59bd9b4e019ULL);
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t aim_rng_u64(aim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t aim_rng_below(aim_rng *r, uint32_t n)
{
    /* Lemire's nearly divisionless method, exact (rejection) */
    uint64_t m = (uint64_t)(uint32_t)(aim_rng_u64(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(aim_rng_u64(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double aim_rng_uniform(aim_rng *r)
{
    return (double)(aim_rng_u64(r) >> 11) * 0x1.0p-53;
}

double aim_rng_normal(aim_rng *r)
{
    /* Box-Muller; one value per call keeps the stream state simple */
    double u1 = aim_rng_uniform(r);
    double u2 = aim_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
