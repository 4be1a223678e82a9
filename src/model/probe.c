/*
 * probe.c - the probes of shared/AIM.md "Downstream" over frozen features:
 *   attentive: BatchNorm(affine=False) per channel over all tokens, k and v
 *              projections without bias, one learned query (head.cls_token,
 *              no projection) attending over the N tokens with NH heads,
 *              heads concatenated, a bias-free linear classifier;
 *   linear:    token mean, BatchNorm(affine=False), linear classifier with
 *              bias (cheap, for the live probe during pretraining).
 * Parameters live in a table with the AIM.md head.* names. The attentive
 * probe's attention runs in the cheap order (attnpool_proj_*: no token is
 * projected); aim_probe_set_naive switches to the per-token order.
 */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/nn.h"
#include "aim/probe.h"

#define BN_EPS 1e-6f
#define BN_MOMENTUM 0.1f

struct aim_probe {
    aim_probe_kind kind;
    int N, D, NH, K;
    aim_params p;
    int i_q, i_k, i_v, i_w, i_b, i_rm, i_rv; /* table indices (-1 if absent) */
    int naive;          /* per-token order (attnpool_proj_*_naive) */
    int cap_B, B;
    float *slab;
    float *xn;          /* [B*N, D] (attentive) or [B, D] (linear): normalised */
    float *pooled;      /* [B, D] token mean (linear) */
    float *bn_mean, *bn_rstd; /* [D] */
    float *kq;          /* [NH, D] (fast order) */
    float *z, *dz, *dkq; /* [B, NH, D] (fast order) */
    float *dl;          /* [NH, B*N] (fast order) */
    float *kk, *vv;     /* [B, N, D] (naive order) */
    float *att;         /* [B, NH, N] */
    float *pool;        /* [B, D] attention output */
    float *logits;      /* [B, K] */
    float *probs;       /* [B, K] */
    float *dlogits;     /* [B, K] */
    float *dpool;       /* [B, D] */
    float *dk, *dv;     /* [B, N, D] (naive order) */
    float *dxn;         /* like xn */
    const int32_t *labels;
    float smoothing;    /* label smoothing of the training loss (0: none) */
};

static float *P(const aim_probe *p, int i)
{
    return i < 0 ? NULL : p->p.data + p->p.t[i].offset;
}

static float *G(const aim_probe *p, int i)
{
    return i < 0 || (p->p.t[i].flags & AIM_P_FROZEN) ? NULL : p->p.grad + p->p.t[i].offset;
}

/* The probe's fields and table, no slab yet */
static aim_probe *probe_shell(aim_probe_kind kind, int N, int D, int heads, int classes,
                              aim_err *e)
{
    if (N < 1 || D < 1 || classes < 2 || classes > 100000) {
        aim_errf(e, "probe: bad sizes (N %d, D %d, classes %d)", N, D, classes);
        return NULL;
    }
    if (kind == AIM_PROBE_ATTENTIVE && (heads < 1 || D % heads)) {
        aim_errf(e, "probe: %d heads do not divide the width %d", heads, D);
        return NULL;
    }
    aim_probe *p = aim_xcalloc(1, sizeof *p);
    p->kind = kind;
    p->N = N;
    p->D = D;
    p->NH = kind == AIM_PROBE_ATTENTIVE ? heads : 1;
    p->K = classes;
    p->i_q = p->i_k = p->i_v = p->i_b = -1;
    int64_t sD[1] = {D}, sq[3] = {1, 1, D}, sDD[2] = {D, D}, sKD[2] = {classes, D},
            sK[1] = {classes};
    if (kind == AIM_PROBE_ATTENTIVE) {
        p->i_q = aim_params_add(&p->p, "head.cls_token", 3, sq, 0);
        p->i_k = aim_params_add(&p->p, "head.k.weight", 2, sDD, AIM_P_DECAY);
        p->i_v = aim_params_add(&p->p, "head.v.weight", 2, sDD, AIM_P_DECAY);
    }
    p->i_w = aim_params_add(&p->p, "head.linear.weight", 2, sKD, AIM_P_DECAY);
    if (kind == AIM_PROBE_LINEAR)
        p->i_b = aim_params_add(&p->p, "head.linear.bias", 1, sK, 0);
    p->i_rm = aim_params_add(&p->p, "head.bn.running_mean", 1, sD, AIM_P_FROZEN);
    p->i_rv = aim_params_add(&p->p, "head.bn.running_var", 1, sD, AIM_P_FROZEN);
    return p;
}

aim_probe *aim_probe_new(aim_probe_kind kind, int N, int D, int heads, int classes,
                         uint64_t seed, aim_err *e)
{
    aim_probe *p = probe_shell(kind, N, D, heads, classes, e);
    if (!p)
        return NULL;
    if (aim_params_try_alloc(&p->p, e) != 0) {
        aim_err_prefix(e, "probe");
        aim_probe_free(p);
        return NULL;
    }
    /* init: xavier-uniform linears, query N(0, 0.02^2), running var 1 */
    aim_rng r;
    aim_rng_seed(&r, aim_hash64(seed ^ 0x9b0beULL));
    for (int i = 0; i < p->p.n; i++) {
        aim_param *t = &p->p.t[i];
        float *w = p->p.data + t->offset;
        if (t->flags & AIM_P_DECAY) {
            double a = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            for (size_t k = 0; k < t->numel; k++)
                w[k] = (float)((2 * aim_rng_uniform(&r) - 1) * a);
        }
    }
    if (p->i_q >= 0)
        for (int k = 0; k < D; k++)
            P(p, p->i_q)[k] = (float)(0.02 * aim_rng_normal(&r));
    for (int k = 0; k < D; k++)
        P(p, p->i_rv)[k] = 1.0f;
    return p;
}

aim_probe *aim_probe_from_st(const aim_st_file *f, aim_probe_kind kind, int N, int D,
                             int heads, int classes, aim_err *e)
{
    aim_probe *p = probe_shell(kind, N, D, heads, classes, e);
    if (!p) {
        aim_err_prefix(e, "%s", f->path);
        return NULL;
    }
    /* the head's tensors are checked before its slabs are allocated */
    aim_params *t = &p->p;
    if (aim_st_check_params(f, t, NULL, e) != 0)
        goto fail;
    if (aim_params_try_alloc(t, e) != 0) {
        aim_err_prefix(e, "%s: probe", f->path);
        goto fail;
    }
    if (aim_st_copy_params(f, t, e) != 0)
        goto fail;
    return p;
fail:
    aim_probe_free(p);
    return NULL;
}

void aim_probe_free(aim_probe *p)
{
    if (!p)
        return;
    aim_params_free(&p->p);
    free(p->slab);
    free(p);
}

aim_params *aim_probe_params(aim_probe *p)
{
    return &p->p;
}

aim_probe_kind aim_probe_get_kind(const aim_probe *p)
{
    return p->kind;
}

int aim_probe_classes(const aim_probe *p)
{
    return p->K;
}

void aim_probe_shape(const aim_probe *p, int *N, int *D, int *heads)
{
    *N = p->N;
    *D = p->D;
    *heads = p->NH;
}

static void reserve(aim_probe *p, int B)
{
    if (B <= p->cap_B)
        return;
    size_t R = (size_t)B * p->N, D = p->D, K = p->K, NH = p->NH;
    int att = p->kind == AIM_PROBE_ATTENTIVE;
    size_t rows = att ? R : (size_t)B;
    size_t kvn = att && p->naive ? R * D : 0;      /* naive: every token's k, v */
    size_t hD = att && !p->naive ? NH * D : 0;     /* fast: per head */
    size_t bhD = (size_t)B * hD, hR = att && !p->naive ? NH * R : 0;
    size_t sizes[] = {rows * D, (size_t)B * D, D, D, hD, bhD, bhD, bhD, hR, kvn, kvn,
                      (size_t)B * NH * p->N, (size_t)B * D, (size_t)B * K, (size_t)B * K,
                      (size_t)B * K, (size_t)B * D, kvn, kvn, rows * D};
    float **ptrs[] = {&p->xn,     &p->pooled, &p->bn_mean, &p->bn_rstd, &p->kq,
                      &p->dkq,    &p->z,      &p->dz,      &p->dl,      &p->kk,
                      &p->vv,     &p->att,    &p->pool,    &p->logits,  &p->probs,
                      &p->dlogits, &p->dpool, &p->dk,      &p->dv,      &p->dxn};
    int n = (int)(sizeof sizes / sizeof *sizes);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (sizes[i] + 15) / 16 * 16;
    free(p->slab);
    p->slab = aim_xaligned(total * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p->slab + off;
        off += (sizes[i] + 15) / 16 * 16;
    }
    p->cap_B = B;
}

float aim_probe_forward(aim_probe *p, const float *feats, const int32_t *labels, int B,
                        int training, int *correct)
{
    reserve(p, B);
    int N = p->N, D = p->D, K = p->K;
    p->B = B;
    p->labels = labels;
    float *rm = P(p, p->i_rm), *rv = P(p, p->i_rv);
    if (p->kind == AIM_PROBE_ATTENTIVE) {
        int R = B * N;
        if (training)
            batchnorm_forward(p->xn, p->bn_mean, p->bn_rstd, feats, R, D, BN_EPS, rm, rv,
                              BN_MOMENTUM);
        else
            batchnorm_eval(p->xn, feats, R, D, BN_EPS, rm, rv);
        if (p->naive)
            attnpool_proj_forward_naive(p->pool, p->att, p->kk, p->vv, p->xn, P(p, p->i_q),
                                        P(p, p->i_k), P(p, p->i_v), B, N, D, p->NH);
        else
            attnpool_proj_forward(p->pool, p->att, p->kq, p->z, p->xn, P(p, p->i_q),
                                  P(p, p->i_k), P(p, p->i_v), B, N, D, p->NH);
        linear_forward(p->logits, p->pool, P(p, p->i_w), NULL, B, D, K);
    } else {
        for (int b = 0; b < B; b++) {
            float *o = p->pooled + (size_t)b * D;
            for (int d = 0; d < D; d++)
                o[d] = 0;
            for (int n = 0; n < N; n++) {
                const float *f = feats + ((size_t)b * N + n) * D;
                for (int d = 0; d < D; d++)
                    o[d] += f[d];
            }
            for (int d = 0; d < D; d++)
                o[d] /= (float)N;
        }
        if (training)
            batchnorm_forward(p->xn, p->bn_mean, p->bn_rstd, p->pooled, B, D, BN_EPS, rm, rv,
                              BN_MOMENTUM);
        else
            batchnorm_eval(p->xn, p->pooled, B, D, BN_EPS, rm, rv);
        linear_forward(p->logits, p->xn, P(p, p->i_w), P(p, p->i_b), B, D, K);
    }
    return xent_smooth_forward(p->probs, p->logits, labels, B, K, training ? p->smoothing : 0,
                               correct);
}

void aim_probe_backward(aim_probe *p, float *dfeats)
{
    int B = p->B, N = p->N, D = p->D, K = p->K;
    memset(p->dlogits, 0, (size_t)B * K * sizeof(float));
    xent_smooth_backward(p->dlogits, p->probs, p->labels, B, K, p->smoothing, 1.0f);
    if (p->kind == AIM_PROBE_ATTENTIVE) {
        int R = B * N;
        memset(p->dpool, 0, (size_t)B * D * sizeof(float));
        linear_backward(p->dpool, G(p, p->i_w), NULL, p->dlogits, p->pool, P(p, p->i_w), B, D,
                        K);
        float *dxn = dfeats ? p->dxn : NULL;
        if (dxn)
            memset(dxn, 0, (size_t)R * D * sizeof(float));
        if (p->naive)
            attnpool_proj_backward_naive(dxn, G(p, p->i_q), G(p, p->i_k), G(p, p->i_v), p->dk,
                                         p->dv, p->dpool, p->xn, P(p, p->i_q), P(p, p->i_k),
                                         P(p, p->i_v), p->att, p->kk, p->vv, B, N, D, p->NH);
        else
            attnpool_proj_backward(dxn, G(p, p->i_q), G(p, p->i_k), G(p, p->i_v), p->dz, p->dl,
                                   p->dkq, p->dpool, p->xn, P(p, p->i_q), P(p, p->i_k),
                                   P(p, p->i_v), p->att, p->kq, p->z, B, N, D, p->NH);
        if (dfeats)
            batchnorm_backward(dfeats, p->dxn, p->xn, p->bn_rstd, R, D);
    } else {
        float *dxn = dfeats ? p->dxn : NULL;
        if (dxn)
            memset(dxn, 0, (size_t)B * D * sizeof(float));
        linear_backward(dxn, G(p, p->i_w), G(p, p->i_b), p->dlogits, p->xn, P(p, p->i_w), B, D,
                        K);
        if (dfeats) {
            memset(p->dpool, 0, (size_t)B * D * sizeof(float));
            batchnorm_backward(p->dpool, p->dxn, p->xn, p->bn_rstd, B, D);
            for (int b = 0; b < B; b++)
                for (int n = 0; n < N; n++)
                    for (int d = 0; d < D; d++)
                        dfeats[((size_t)b * N + n) * D + d] += p->dpool[(size_t)b * D + d] / N;
        }
    }
}

void aim_probe_set_naive(aim_probe *p, int naive)
{
    naive = naive != 0;
    if (naive != p->naive) {
        p->naive = naive;
        p->cap_B = 0; /* the slab's layout changes: the next forward reserves again */
        p->B = 0;
    }
}

const float *aim_probe_logits(const aim_probe *p)
{
    return p->logits;
}

const float *aim_probe_attention(const aim_probe *p)
{
    return p->kind == AIM_PROBE_ATTENTIVE ? p->att : NULL;
}

void aim_probe_set_label_smoothing(aim_probe *p, float eps)
{
    assert(eps >= 0 && eps < 1);
    p->smoothing = eps;
}
