/*
 * params.c - the named parameter table: every tensor of a model is a row
 * {name, shape, offset, flags} over one slab per role (values, gradients,
 * AdamW m and v). The optimizer, checkpoints, freezing and the Lua layer
 * walk this table; nothing keeps parallel index arrays by hand.
 */
#include "config.h"

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
