/*
 * adamw.c - AdamW over the parameter table, global gradient-norm clipping
 * and the warmup + cosine schedule.
 *
 * Every function is one OpenMP parallel region over the trainable values
 * (all tensors that are not frozen, taken as one flat sequence): thread t of
 * n owns the t-th n-th of that sequence, whatever the tensor boundaries, so
 * the work is balanced and no region is opened per tensor. The norm's
 * partial sums (double) are combined in thread order: the same thread count
 * gives the same bits. aim_clip_adamw_step does the norm, the clip factor
 * and the update in one region with one barrier.
 */
#include "config.h"

#include <math.h>
#include <omp.h>

#include "aim/train.h"
#include "nn/vec.h"

/* below this many trainable values one thread does everything */
#define OPT_PAR_MIN 65536
#define OPT_MAX_THREADS 256

void aim_adamw_opts_default(aim_adamw_opts *o)
{
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.05f;
    o->lr_scale = NULL;
}

int aim_adamw_opts_check(const aim_adamw_opts *o, aim_err *e)
{
    /* beta = 1 makes the bias correction 1 - beta^t zero (an infinite or NaN
     * update); eps = 0 divides by zero where a moment is zero */
    if (!(o->beta1 >= 0 && o->beta1 < 1))
        return aim_errf(e, "adamw: beta1 = %g is not in [0, 1)", o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1))
        return aim_errf(e, "adamw: beta2 = %g is not in [0, 1)", o->beta2);
    if (!(o->eps > 0 && o->eps <= 1))
        return aim_errf(e, "adamw: eps = %g is not in (0, 1]", o->eps);
    if (!(o->weight_decay >= 0 && o->weight_decay <= 1e3))
        return aim_errf(e, "adamw: weight_decay = %g is not in [0, 1000]", o->weight_decay);
    return 0;
}

static size_t trainable(const aim_params *p)
{
    size_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!(p->t[i].flags & AIM_P_FROZEN))
            n += p->t[i].numel;
    return n;
}

static int team_size(const aim_params *p)
{
    int nt = trainable(p) >= OPT_PAR_MIN ? omp_get_max_threads() : 1;
    return nt > OPT_MAX_THREADS ? OPT_MAX_THREADS : nt;
}

/* Calls fn(ctx, tensor, k0, k1) for the pieces [k0, k1) of every trainable
 * tensor that fall in this thread's share [lo, hi) of the flat sequence. */
typedef void (*piece_fn)(void *ctx, const aim_param *t, size_t k0, size_t k1);

static void for_share(const aim_params *p, size_t total, int nt, int tid, piece_fn fn,
                      void *ctx)
{
    size_t lo = total * (size_t)tid / (size_t)nt, hi = total * (size_t)(tid + 1) / (size_t)nt;
    size_t at = 0;
    for (int i = 0; i < p->n && at < hi; i++) {
        const aim_param *t = &p->t[i];
        if (t->flags & AIM_P_FROZEN)
            continue;
        size_t s = lo > at ? lo - at : 0, e = hi - at < t->numel ? hi - at : t->numel;
        at += t->numel;
        if (s < e)
            fn(ctx, t, s, e);
    }
}

typedef struct opt_ctx {
    const aim_params *p;
    const aim_adamw_opts *o;
    float lr, bc1, bc2, coef;
    double sq;   /* this thread's sum of squares */
} opt_ctx;

AIM_VEC static void sq_piece(void *ctx, const aim_param *t, size_t k0, size_t k1)
{
    opt_ctx *c = ctx;
    const float *g = c->p->grad + t->offset;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t k = k0; k < k1; k++)
        s += (double)g[k] * g[k];
    c->sq += s;
}

AIM_VEC static void scale_piece(void *ctx, const aim_param *t, size_t k0, size_t k1)
{
    opt_ctx *c = ctx;
    float *g = c->p->grad + t->offset;
    const float coef = c->coef;
#pragma omp simd
    for (size_t k = k0; k < k1; k++)
        g[k] *= coef;
}

AIM_VEC static void adamw_piece(void *ctx, const aim_param *t, size_t k0, size_t k1)
{
    opt_ctx *c = ctx;
    const aim_params *p = c->p;
    const float b1 = c->o->beta1, b2 = c->o->beta2, eps = c->o->eps;
    const float lr = c->o->lr_scale ? c->lr * c->o->lr_scale[t - p->t] : c->lr;
    const float bc1 = c->bc1, bc2 = c->bc2, coef = c->coef;
    const float decay = (t->flags & AIM_P_DECAY) ? 1.0f - lr * c->o->weight_decay : 1.0f;
    float *w = p->data + t->offset, *g = p->grad + t->offset;
    float *m = p->m + t->offset, *v = p->v + t->offset;
#pragma omp simd
    for (size_t k = k0; k < k1; k++) {
        float gk = g[k] * coef;
        float mk = b1 * m[k] + (1.0f - b1) * gk;
        float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
        m[k] = mk;
        v[k] = vk;
        float denom = sqrtf(vk / bc2) + eps;
        w[k] = w[k] * decay - lr * (mk / bc1) / denom;
    }
}

/* PyTorch's clip_grad_norm_ factor, 1 when no clipping is needed */
static float clip_coef(float norm, float max_norm)
{
    if (max_norm > 0 && isfinite(norm)) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            return coef;
    }
    return 1.0f;
}

/* what one pass does, shared by the threads */
typedef struct run_ctx {
    const aim_params *p;
    size_t total;
    opt_ctx base;
    float max_norm;
    int want_norm, clip, adamw;
    double part[OPT_MAX_THREADS];
    float norm, coef;
    int skip; /* the norm is not finite: no update */
} run_ctx;

/* thread tid of n: its share of the norm, then of the update */
static void run_thread(run_ctx *r, int tid, int n)
{
    opt_ctx c = r->base;
    if (r->want_norm) {
        for_share(r->p, r->total, n, tid, sq_piece, &c);
        r->part[tid] = c.sq;
#pragma omp barrier
#pragma omp single
        {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += r->part[i];
            r->norm = (float)sqrt(s);
            r->coef = r->clip ? clip_coef(r->norm, r->max_norm) : 1.0f;
            /* a NaN/Inf gradient never reaches the weights or the moments */
            r->skip = !isfinite(r->norm);
        }
        c.coef = r->coef;
    }
    if (r->adamw && !r->skip)
        for_share(r->p, r->total, n, tid, adamw_piece, &c);
    else if (r->clip && c.coef != 1.0f)
        for_share(r->p, r->total, n, tid, scale_piece, &c);
}

/* norm (always), then scale the gradients (clip) and/or AdamW */
static float run(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t, float max_norm,
                 int want_norm, int clip, int adamw)
{
    run_ctx r = {.p = p, .total = trainable(p), .max_norm = max_norm, .want_norm = want_norm,
                 .clip = clip, .adamw = adamw, .coef = 1.0f};
    r.base = (opt_ctx){.p = p, .o = o, .lr = lr, .coef = 1.0f};
    if (adamw) {
        aim_params_alloc_moments(p);
        r.base.bc1 = 1.0f - powf(o->beta1, (float)t);
        r.base.bc2 = 1.0f - powf(o->beta2, (float)t);
    }
    int nt = team_size(p);
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        run_thread(&r, omp_get_thread_num(), omp_get_num_threads());
    } else {
        run_thread(&r, 0, 1); /* no region: a one-thread team costs libgomp an allocation */
    }
    return r.norm;
}

void aim_adamw_step(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t)
{
    run(p, o, lr, t, 0, 0, 0, 1);
}

float aim_grad_norm(const aim_params *p)
{
    return run((aim_params *)p, NULL, 0, 0, 0, 1, 0, 0);
}

float aim_clip_grad_norm(aim_params *p, float max_norm)
{
    return run(p, NULL, 0, 0, max_norm, 1, 1, 0);
}

float aim_clip_adamw_step(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t,
                          float max_norm)
{
    return run(p, o, lr, t, max_norm, 1, 1, 1);
}

float aim_lr_at(int64_t step, int64_t total, int64_t warmup, float peak)
{
    if (step < warmup)
        return peak * (float)(step + 1) / (float)warmup;
    int64_t span = total - warmup;
    if (span <= 0)
        return peak;
    double progress = (double)(step - warmup) / (double)span;
    if (progress > 1)
        progress = 1;
    return (float)(peak * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}
