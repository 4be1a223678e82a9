/*
 * params.c - the named parameter table: every tensor of a model is a row
 * {name, shape, offset, flags} over one slab per role (values, gradients,
 * AdamW m and v). The optimizer, checkpoints, freezing and the Lua layer
 * walk this table; nothing keeps parallel index arrays by hand.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/model.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

int aim_params_add(aim_params *p, const char *name, int ndim, const int64_t *shape,
                   unsigned flags)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->t = aim_xrealloc(p->t, (size_t)p->cap * sizeof *p->t);
    }
    aim_param *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
    t->flags = flags;
    t->offset = p->total;
    p->total += (t->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return p->n++;
}

static float *slab(size_t n)
{
    float *ptr = aim_xaligned((n ? n : 1) * sizeof(float));
    memset(ptr, 0, (n ? n : 1) * sizeof(float));
    return ptr;
}

void aim_params_alloc(aim_params *p)
{
    if (!p->data)
        p->data = slab(p->total);
    if (!p->grad)
        p->grad = slab(p->total);
}

/* both slabs of a pair (values and gradients, or m and v), or neither */
static int try_pair(aim_params *p, float **a, float **b, const char *what, aim_err *e)
{
    if (*a && *b)
        return 0;
    uint64_t bytes = (uint64_t)(p->total ? p->total : 1) * sizeof(float);
    char need[32], lim[32];
    aim_fmt_bytes(need, sizeof need, 2 * bytes);
    aim_fmt_bytes(lim, sizeof lim, aim_mem_limit());
    if (2 * bytes > aim_mem_limit())
        return aim_errf(e, "%llu parameters need %s for their %s, more than the %s allowed",
                        (unsigned long long)p->total, need, what, lim);
    float *x = *a ? *a : aim_try_aligned_zero((size_t)bytes);
    float *y = *b ? *b : aim_try_aligned_zero((size_t)bytes);
    if (!x || !y) {
        if (x != *a)
            free(x);
        if (y != *b)
            free(y);
        return aim_errf(e, "out of memory: %llu parameters need %s for their %s",
                        (unsigned long long)p->total, need, what);
    }
    *a = x;
    *b = y;
    return 0;
}

int aim_params_try_alloc(aim_params *p, aim_err *e)
{
    return try_pair(p, &p->data, &p->grad, "values and gradients", e);
}

int aim_params_try_alloc_moments(aim_params *p, aim_err *e)
{
    return try_pair(p, &p->m, &p->v, "AdamW moments", e);
}

void aim_params_alloc_moments(aim_params *p)
{
    if (!p->m)
        p->m = slab(p->total);
    if (!p->v)
        p->v = slab(p->total);
}

static float *grow(float *old, size_t old_n, size_t n)
{
    if (!old)
        return NULL;
    float *ptr = slab(n);
    memcpy(ptr, old, old_n * sizeof(float));
    free(old);
    return ptr;
}

void aim_params_grow(aim_params *p, size_t old_total)
{
    p->data = grow(p->data, old_total, p->total);
    p->grad = grow(p->grad, old_total, p->total);
    p->m = grow(p->m, old_total, p->total);
    p->v = grow(p->v, old_total, p->total);
}

int aim_params_try_grow(aim_params *p, size_t old_total, aim_err *e)
{
    float **slabs[4] = {&p->data, &p->grad, &p->m, &p->v};
    float *fresh[4] = {NULL, NULL, NULL, NULL};
    uint64_t bytes = (uint64_t)(p->total ? p->total : 1) * sizeof(float), all = 0;
    for (int k = 0; k < 4; k++)
        all += *slabs[k] ? bytes : 0;
    char need[32], lim[32];
    aim_fmt_bytes(need, sizeof need, all);
    aim_fmt_bytes(lim, sizeof lim, aim_mem_limit());
    if (all > aim_mem_limit())
        return aim_errf(e, "%llu parameters need %s, more than the %s allowed",
                        (unsigned long long)p->total, need, lim);
    for (int k = 0; k < 4; k++) {
        if (!*slabs[k])
            continue;
        if (!(fresh[k] = aim_try_aligned_zero((size_t)bytes))) {
            for (int j = 0; j < k; j++)
                free(fresh[j]);
            return aim_errf(e, "out of memory: %llu parameters need %s",
                            (unsigned long long)p->total, need);
        }
    }
    for (int k = 0; k < 4; k++) {
        if (!fresh[k])
            continue;
        memcpy(fresh[k], *slabs[k], old_total * sizeof(float));
        free(*slabs[k]);
        *slabs[k] = fresh[k];
    }
    return 0;
}

int aim_params_find(const aim_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name))
            return i;
    return -1;
}

void aim_params_free(aim_params *p)
{
    free(p->t);
    free(p->data);
    free(p->grad);
    free(p->m);
    free(p->v);
    memset(p, 0, sizeof *p);
}

void aim_params_zero_grad(aim_params *p)
{
    if (!p->grad)
        return;
    /* in chunks over the threads: a large slab is memory-bound per core */
    const size_t chunk = (size_t)1 << 18;
    long long nc = (long long)((p->total + chunk - 1) / chunk);
    if (nc <= 4 || omp_get_level() > 0 || omp_get_max_threads() < 2) {
        memset(p->grad, 0, p->total * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static)
    for (long long c = 0; c < nc; c++) {
        size_t k0 = (size_t)c * chunk, n = p->total - k0 < chunk ? p->total - k0 : chunk;
        memset(p->grad + k0, 0, n * sizeof(float));
    }
}

uint64_t aim_params_count(const aim_params *p, int trainable_only)
{
    uint64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!trainable_only || !(p->t[i].flags & AIM_P_FROZEN))
            n += p->t[i].numel;
    return n;
}

const char *aim_params_nonfinite(const aim_params *p)
{
    if (!p->data)
        return NULL;
    for (int i = 0; i < p->n; i++) {
        const float *w = p->data + p->t[i].offset;
        for (size_t k = 0; k < p->t[i].numel; k++)
            if (!isfinite(w[k]))
                return p->t[i].name;
    }
    return NULL;
}
