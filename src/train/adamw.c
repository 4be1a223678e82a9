/*
 * adamw.c - AdamW over the parameter table (one flat loop per tensor),
 * global gradient-norm clipping and the warmup + cosine schedule.
 */
#include "config.h"

#include <math.h>

#include "aim/train.h"

void aim_adamw_opts_default(aim_adamw_opts *o)
{
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.05f;
}

void aim_adamw_step(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t)
{
    aim_params_alloc_moments(p);
    float b1 = o->beta1, b2 = o->beta2;
    float bc1 = 1.0f - powf(b1, (float)t);
    float bc2 = 1.0f - powf(b2, (float)t);
    for (int i = 0; i < p->n; i++) {
        const aim_param *t_ = &p->t[i];
        if (t_->flags & AIM_P_FROZEN)
            continue;
        float decay = (t_->flags & AIM_P_DECAY) ? 1.0f - lr * o->weight_decay : 1.0f;
        float *w = p->data + t_->offset, *g = p->grad + t_->offset;
        float *m = p->m + t_->offset, *v = p->v + t_->offset;
        size_t n = t_->numel;
#pragma omp parallel for schedule(static) if (n > 32768)
        for (size_t k = 0; k < n; k++) {
            float gk = g[k];
            float mk = b1 * m[k] + (1.0f - b1) * gk;
            float vk = b2 * v[k] + (1.0f - b2) * gk * gk;
            m[k] = mk;
            v[k] = vk;
            float denom = sqrtf(vk / bc2) + o->eps;
            w[k] = w[k] * decay - lr * (mk / bc1) / denom;
        }
    }
}

float aim_grad_norm(const aim_params *p)
{
    double s = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        if (t->flags & AIM_P_FROZEN)
            continue;
        const float *g = p->grad + t->offset;
        size_t n = t->numel;
        double ts = 0;
#pragma omp parallel for reduction(+ : ts) schedule(static) if (n > 32768)
        for (size_t k = 0; k < n; k++)
            ts += (double)g[k] * g[k];
        s += ts;
    }
    return (float)sqrt(s);
}

float aim_clip_grad_norm(aim_params *p, float max_norm)
{
    float norm = aim_grad_norm(p);
    if (max_norm > 0 && isfinite(norm)) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) {
            for (int i = 0; i < p->n; i++) {
                const aim_param *t = &p->t[i];
                if (t->flags & AIM_P_FROZEN)
                    continue;
                float *g = p->grad + t->offset;
                for (size_t k = 0; k < t->numel; k++)
                    g[k] *= coef;
            }
        }
    }
    return norm;
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
