/*
 * test_probe.c - probe math: BatchNorm (train/eval, running statistics),
 * attention pooling, cross-entropy, finite-difference checks of both probes
 * through every trainable tensor and the features, half-float storage, a
 * probe learning a separable task, feature extraction from a model.
 * The attentive probe's attention in its cheap order (attnpool_proj_*)
 * against the per-token order (*_naive): forward, backward, the probe, and
 * a whole training run with the same seed.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/nn.h"
#include "aim/probe.h"
#include "tap.h"

static void randn(float *x, size_t n, aim_rng *r, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(s * aim_rng_normal(r));
}

/* worst relative error of analytic vs central differences of f over x */
typedef double (*objective)(void *ctx);

static double fd_check_h(float *x, size_t n, const float *analytic, objective f, void *ctx,
                         size_t stride, float rel_h);

static double fd_check(float *x, size_t n, const float *analytic, objective f, void *ctx,
                       size_t stride)
{
    return fd_check_h(x, n, analytic, f, ctx, stride, 1e-3f);
}

static double fd_check_h(float *x, size_t n, const float *analytic, objective f, void *ctx,
                         size_t stride, float rel_h)
{
    double worst = 0, amax = 0;
    for (size_t i = 0; i < n; i++)
        amax = tap_worse(amax, fabs(analytic[i]));
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        float h = rel_h * fmaxf(1.0f, fabsf(x0));
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        double num = (lp - lm) / (2.0 * h);
        double err = fabs(num - analytic[i]) / fmax(fmax(fabs(num), 0.05 * amax), 1e-5);
        worst = tap_worse(worst, err);
    }
    return worst;
}

/* ---------------------------------------------------------------- kernels */
typedef struct kctx {
    int R, C, B, N, D, NH, K;
    float *x, *out, *mean, *rstd, *g, *q, *k, *v, *att, *logits, *probs;
    int32_t *labels;
} kctx;

static double bn_obj(void *p)
{
    kctx *c = p;
    batchnorm_forward(c->out, c->mean, c->rstd, c->x, c->R, c->C, 1e-6f, NULL, NULL, 0);
    double s = 0;
    for (int i = 0; i < c->R * c->C; i++)
        s += (double)c->out[i] * c->g[i];
    return s;
}

static double pool_obj(void *p)
{
    kctx *c = p;
    attnpool_forward(c->out, c->att, c->q, c->k, c->v, c->B, c->N, c->D, c->NH);
    double s = 0;
    for (int i = 0; i < c->B * c->D; i++)
        s += (double)c->out[i] * c->g[i];
    return s;
}

static double xent_obj(void *p)
{
    kctx *c = p;
    return xent_forward(c->probs, c->logits, c->labels, c->B, c->K, NULL);
}

/* ------------------------------------------- attention with projections */
typedef struct jctx {
    int B, N, D, NH;
    float *x, *q, *wk, *wv, *out, *att, *kq, *z, *g;
} jctx;

static double proj_obj(void *p)
{
    jctx *c = p;
    attnpool_proj_forward(c->out, c->att, c->kq, c->z, c->x, c->q, c->wk, c->wv, c->B, c->N,
                          c->D, c->NH);
    double s = 0;
    for (int i = 0; i < c->B * c->D; i++)
        s += (double)c->out[i] * c->g[i];
    return s;
}

/* largest |a - b| over the largest |b| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = tap_worse(d, fabs((double)a[i] - b[i]));
        m = tap_worse(m, fabs((double)b[i]));
    }
    return d / fmax(m, 1e-30);
}

/* float rounding bound for fast vs naive: both orders sum at most a few
 * hundred float products; 1e-5 of the largest entry is ~100 ulps */
#define ORDER_TOL 1e-5

/* fast vs naive order on random inputs, forward and every gradient; with
 * fd, also finite differences of the fast kernel */
static void check_proj(int B, int N, int D, int NH, int fd, uint64_t seed)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    size_t R = (size_t)B * N, BD = (size_t)B * D, RD = R * D, DD = (size_t)D * D;
    float *x = malloc(RD * 4), *q = malloc(D * 4), *wk = malloc(DD * 4), *wv = malloc(DD * 4);
    float *g = malloc(BD * 4);
    float *out = malloc(BD * 4), *att = malloc(R * NH * 4), *kq = malloc((size_t)NH * D * 4),
          *z = malloc(BD * NH * 4);
    float *out0 = malloc(BD * 4), *att0 = malloc(R * NH * 4), *k = malloc(RD * 4),
          *v = malloc(RD * 4);
    float *dx = calloc(RD, 4), *dq = calloc(D, 4), *dwk = calloc(DD, 4), *dwv = calloc(DD, 4);
    float *dx0 = calloc(RD, 4), *dq0 = calloc(D, 4), *dwk0 = calloc(DD, 4),
          *dwv0 = calloc(DD, 4);
    float *dz = malloc(BD * NH * 4), *dl = malloc(R * NH * 4), *dkq = malloc(BD * NH * 4),
          *dk = malloc(RD * 4), *dv = malloc(RD * 4);
    randn(x, RD, &r, 1.0f);
    randn(q, D, &r, 1.0f); /* large enough that the softmax is far from uniform */
    randn(wk, DD, &r, 1.0f / sqrtf((float)D));
    randn(wv, DD, &r, 1.0f / sqrtf((float)D));
    randn(g, BD, &r, 1.0f);
    /* the gradients add: start both from the same non-zero values */
    for (int i = 0; i < D; i++)
        dq[i] = dq0[i] = 0.5f;
    for (size_t i = 0; i < DD; i++)
        dwk[i] = dwk0[i] = dwv[i] = dwv0[i] = 0.25f;
    attnpool_proj_forward(out, att, kq, z, x, q, wk, wv, B, N, D, NH);
    attnpool_proj_forward_naive(out0, att0, k, v, x, q, wk, wv, B, N, D, NH);
    attnpool_proj_backward(dx, dq, dwk, dwv, dz, dl, dkq, g, x, q, wk, wv, att, kq, z, B, N, D,
                           NH);
    attnpool_proj_backward_naive(dx0, dq0, dwk0, dwv0, dk, dv, g, x, q, wk, wv, att0, k, v, B,
                                 N, D, NH);
    double amin = 1, amax = 0; /* the attention must be neither uniform nor one-hot */
    for (size_t i = 0; i < R * NH; i++)
        amin = fmin(amin, att0[i]), amax = tap_worse(amax, att0[i]);
    double eo = rel_diff(out, out0, BD), ea = rel_diff(att, att0, R * NH);
    tap_ok(eo < ORDER_TOL && ea < ORDER_TOL && amax > 2.0 / N && amax < 0.999,
           "attnpool_proj B%d N%d D%d NH%d: forward equals the per-token order (out %.1e, att "
           "%.1e; att in [%.2g, %.2g])", B, N, D, NH, eo, ea, amin, amax);
    double ex = rel_diff(dx, dx0, RD), eq = rel_diff(dq, dq0, D), ek = rel_diff(dwk, dwk0, DD),
           ev = rel_diff(dwv, dwv0, DD);
    tap_ok(ex < ORDER_TOL && eq < ORDER_TOL && ek < ORDER_TOL && ev < ORDER_TOL,
           "attnpool_proj B%d N%d D%d NH%d: backward equals the per-token order (dx %.1e, dq "
           "%.1e, dWk %.1e, dWv %.1e)", B, N, D, NH, ex, eq, ek, ev);
    /* NULL gradients: the others unchanged */
    float *dq1 = calloc(D, 4), *dwv1 = calloc(DD, 4);
    attnpool_proj_backward(NULL, dq1, NULL, dwv1, dz, dl, dkq, g, x, q, wk, wv, att, kq, z, B, N,
                           D, NH);
    int same = 1;
    for (int i = 0; i < D; i++)
        same &= fabsf(dq1[i] + 0.5f - dq[i]) <= 1e-6f * (1 + fabsf(dq[i]));
    for (size_t i = 0; i < DD; i++)
        same &= fabsf(dwv1[i] + 0.25f - dwv[i]) <= 1e-6f * (1 + fabsf(dwv[i]));
    tap_ok(same, "attnpool_proj B%d N%d D%d NH%d: dx and dWk NULL leave dq and dWv as they were",
           B, N, D, NH);
    if (fd) {
        jctx c = {B, N, D, NH, x, q, wk, wv, out, att, kq, z, g};
        memset(dx, 0, RD * 4), memset(dq, 0, D * 4), memset(dwk, 0, DD * 4),
            memset(dwv, 0, DD * 4);
        proj_obj(&c);
        attnpool_proj_backward(dx, dq, dwk, dwv, dz, dl, dkq, g, x, q, wk, wv, att, kq, z, B, N,
                               D, NH);
        double fx = fd_check(x, RD, dx, proj_obj, &c, 1), fq = fd_check(q, D, dq, proj_obj, &c, 1),
               fk = fd_check(wk, DD, dwk, proj_obj, &c, 1),
               fv = fd_check(wv, DD, dwv, proj_obj, &c, 1);
        tap_ok(fx < 1e-2 && fq < 1e-2 && fk < 1e-2 && fv < 1e-2,
               "attnpool_proj backward matches finite differences (x %.1e, q %.1e, Wk %.1e, Wv "
               "%.1e)", fx, fq, fk, fv);
    }
    free(x), free(q), free(wk), free(wv), free(g), free(out), free(att), free(kq), free(z);
    free(out0), free(att0), free(k), free(v), free(dx), free(dq), free(dwk), free(dwv);
    free(dx0), free(dq0), free(dwk0), free(dwv0), free(dz), free(dl), free(dkq), free(dk),
        free(dv), free(dq1), free(dwv1);
}

/* ---------------------------------------------------------------- probes */
typedef struct pctx {
    aim_probe *p;
    float *feats;
    int32_t *labels;
    int B;
} pctx;

static double probe_obj(void *ctx)
{
    pctx *c = ctx;
    return aim_probe_forward(c->p, c->feats, c->labels, c->B, 1, NULL);
}

static void check_probe(aim_probe_kind kind, int naive, const char *name)
{
    aim_err e;
    int B = 6, N = 5, D = 8, K = 4;
    aim_probe *p = aim_probe_new(kind, N, D, 2, K, 3, &e);
    aim_probe_set_naive(p, naive);
    aim_params *pp = aim_probe_params(p);
    aim_rng r;
    aim_rng_seed(&r, 17);
    /* larger weights than the init so every path matters */
    for (int i = 0; i < pp->n; i++)
        if (!(pp->t[i].flags & AIM_P_FROZEN))
            randn(pp->data + pp->t[i].offset, pp->t[i].numel, &r, 0.5f);
    float feats[6 * 5 * 8], dfeats[6 * 5 * 8] = {0};
    randn(feats, sizeof feats / 4, &r, 1.0f);
    int32_t labels[6] = {0, 1, 2, 3, 1, 2};
    pctx c = {p, feats, labels, B};
    aim_params_zero_grad(pp);
    probe_obj(&c);
    aim_probe_backward(p, dfeats);
    float *g = malloc(pp->total * sizeof(float));
    memcpy(g, pp->grad, pp->total * sizeof(float));
    double worst = 0;
    int every_nonzero = 1;
    for (int i = 0; i < pp->n; i++) {
        aim_param *t = &pp->t[i];
        if (t->flags & AIM_P_FROZEN)
            continue;
        /* the loss is a float through BatchNorm and softmax: a larger step
         * keeps rounding out of the difference quotient */
        double w = fd_check_h(pp->data + t->offset, t->numel, g + t->offset, probe_obj, &c, 1,
                              1e-2f);
        worst = tap_worse(worst, w);
        double s = 0;
        for (size_t k = 0; k < t->numel; k++)
            s += fabs(g[t->offset + k]);
        every_nonzero &= s > 0;
    }
    tap_ok(worst < 1e-2 && every_nonzero, "%s probe: parameter gradients match finite differences (worst %.2e)",
           name, worst);
    double wf = fd_check_h(feats, sizeof feats / 4, dfeats, probe_obj, &c, 1, 1e-2f);
    tap_ok(wf < 1e-2, "%s probe: feature gradient matches finite differences (worst %.2e)", name, wf);
    free(g);
    aim_probe_free(p);
}

/* features of a 6-class task, hard enough that top-1 stays well below 100%:
 * class c lifts channel c of one random token by `lift` */
static aim_feats *noisy_task(int64_t n, int N, int D, float lift, aim_rng *r)
{
    aim_feats *f = aim_xcalloc(1, sizeof *f);
    f->n = n;
    f->N = N;
    f->D = D;
    f->data = malloc((size_t)n * N * D * 2);
    f->labels = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        int cls = (int)aim_rng_below(r, 6);
        f->labels[i] = cls;
        int tok = (int)aim_rng_below(r, (uint32_t)N);
        for (int t = 0; t < N; t++)
            for (int d = 0; d < D; d++) {
                float val = (float)aim_rng_normal(r) + (d == cls && t == tok ? lift : 0.0f);
                f->data[((size_t)i * N + t) * D + d] = aim_half_from_float(val);
            }
    }
    return f;
}

/* the attentive probe in both orders: one step (loss, logits, every
 * gradient, the features' gradient, evaluation), then a whole training run
 * with the same seed */
static void check_probe_orders(void)
{
    aim_err e;
    aim_rng r;
    aim_rng_seed(&r, 23);
    int B = 40, N = 9, D = 24, NH = 3, K = 6;
    aim_probe *pf = aim_probe_new(AIM_PROBE_ATTENTIVE, N, D, NH, K, 4, &e);
    aim_probe *pn = aim_probe_new(AIM_PROBE_ATTENTIVE, N, D, NH, K, 4, &e);
    aim_probe_set_naive(pn, 1);
    aim_params *ppf = aim_probe_params(pf), *ppn = aim_probe_params(pn);
    for (int i = 0; i < ppf->n; i++)
        if (!(ppf->t[i].flags & AIM_P_FROZEN))
            randn(ppf->data + ppf->t[i].offset, ppf->t[i].numel, &r, 0.5f);
    memcpy(ppn->data, ppf->data, ppf->total * sizeof(float));
    size_t RD = (size_t)B * N * D;
    float *feats = malloc(RD * 4), *dff = calloc(RD, 4), *dfn = calloc(RD, 4);
    randn(feats, RD, &r, 1.0f);
    int32_t lab[40];
    for (int b = 0; b < B; b++)
        lab[b] = b % K;
    aim_params_zero_grad(ppf);
    aim_params_zero_grad(ppn);
    int cf = 0, cn = 0;
    float lf = aim_probe_forward(pf, feats, lab, B, 1, &cf);
    float ln = aim_probe_forward(pn, feats, lab, B, 1, &cn);
    aim_probe_backward(pf, dff);
    aim_probe_backward(pn, dfn);
    double el = rel_diff(aim_probe_logits(pf), aim_probe_logits(pn), (size_t)B * K);
    double ea = rel_diff(aim_probe_attention(pf), aim_probe_attention(pn), (size_t)B * NH * N);
    tap_ok(fabs(lf - ln) <= ORDER_TOL * fabs(ln) && cf == cn && el < ORDER_TOL && ea < ORDER_TOL,
           "attentive probe, both orders: loss %.7g vs %.7g, logits %.1e, attention %.1e", lf, ln,
           el, ea);
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < ppf->n; i++) {
        aim_param *t = &ppf->t[i];
        if (t->flags & AIM_P_FROZEN)
            continue;
        double d = rel_diff(ppf->grad + t->offset, ppn->grad + t->offset, t->numel);
        if (d >= worst) {
            worst = d;
            wname = t->name;
        }
    }
    double ef = rel_diff(dff, dfn, RD);
    tap_ok(worst < ORDER_TOL && ef < ORDER_TOL,
           "attentive probe, both orders: every gradient (worst %.1e, %s) and the features' "
           "(%.1e)", worst, wname, ef);
    aim_probe_forward(pf, feats, NULL, B, 0, NULL);
    aim_probe_forward(pn, feats, NULL, B, 0, NULL);
    el = rel_diff(aim_probe_logits(pf), aim_probe_logits(pn), (size_t)B * K);
    tap_ok(el < ORDER_TOL, "attentive probe, both orders: evaluation logits (%.1e)", el);
    aim_probe_free(pf);
    aim_probe_free(pn);
    free(feats), free(dff), free(dfn);

    /* a training run: the same seed gives the same probe up to rounding */
    int Nt = 6, Dt = 24;
    aim_feats *tr = noisy_task(1200, Nt, Dt, 2.5f, &r), *te = noisy_task(600, Nt, Dt, 2.5f, &r);
    aim_probe_result res[2];
    aim_probe *pr[2];
    for (int naive = 0; naive < 2; naive++) {
        pr[naive] = aim_probe_new(AIM_PROBE_ATTENTIVE, Nt, Dt, NH, 6, 9, &e);
        aim_probe_set_naive(pr[naive], naive);
        aim_probe_opts o;
        aim_probe_opts_default(&o);
        o.epochs = 8;
        o.batch = 60;
        o.seed = 3;
        aim_probe_train(pr[naive], tr, te, &o, &res[naive], &e);
    }
    aim_params *p0 = aim_probe_params(pr[0]), *p1 = aim_probe_params(pr[1]);
    double ew = rel_diff(p0->data, p1->data, p0->total);
    int hits = (int)lround(res[0].test_top1 * 6), hits1 = (int)lround(res[1].test_top1 * 6);
    tap_ok(abs(hits - hits1) <= 1 && res[0].test_top1 > 40 && res[0].test_top1 < 97 &&
               fabs(res[0].train_loss - res[1].train_loss) < 1e-4 * res[1].train_loss && ew < 1e-3,
           "probe training, both orders, same seed: test top-1 %.2f%% vs %.2f%% (%d vs %d of 600), "
           "loss %.7g vs %.7g, weights %.1e apart", res[0].test_top1, res[1].test_top1, hits, hits1,
           res[0].train_loss, res[1].train_loss, ew);
    aim_probe_free(pr[0]);
    aim_probe_free(pr[1]);
    aim_feats_free(tr);
    aim_feats_free(te);
}

int main(void)
{
    aim_err e = {{0}};
    aim_rng r;
    aim_rng_seed(&r, 1);

    /* BatchNorm */
    kctx c = {.R = 7, .C = 3};
    float x[21], out[21], g[21], mean[3], rstd[3], din[21] = {0};
    randn(x, 21, &r, 2.0f);
    for (int i = 0; i < 21; i++)
        x[i] += (float)(i % 3); /* different means per channel */
    randn(g, 21, &r, 1.0f);
    c.x = x, c.out = out, c.g = g, c.mean = mean, c.rstd = rstd;
    float rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
    batchnorm_forward(out, mean, rstd, x, 7, 3, 1e-6f, rm, rv, 0.1f);
    double mu = 0, var = 0;
    for (int r0 = 0; r0 < 7; r0++)
        mu += x[r0 * 3 + 1] / 7.0;
    for (int r0 = 0; r0 < 7; r0++)
        var += (x[r0 * 3 + 1] - mu) * (x[r0 * 3 + 1] - mu);
    tap_ok(tap_close(mean[1], mu, 1e-6, 1e-6) && tap_close(rstd[1], 1 / sqrt(var / 7 + 1e-6), 1e-5, 0),
           "batchnorm: batch mean and biased variance");
    tap_ok(tap_close(rm[1], 0.1 * mu, 1e-5, 1e-7) && tap_close(rv[1], 0.9 + 0.1 * var / 6, 1e-5, 0),
           "batchnorm: running stats with momentum 0.1 and the unbiased variance");
    float ev[21];
    batchnorm_eval(ev, x, 7, 3, 1e-6f, rm, rv);
    tap_ok(tap_close(ev[4], (x[4] - rm[1]) / sqrtf(rv[1] + 1e-6f), 1e-6, 1e-6), "batchnorm: eval uses the running stats");
    bn_obj(&c);
    batchnorm_backward(din, g, out, rstd, 7, 3);
    double w = fd_check(x, 21, din, bn_obj, &c, 1);
    tap_ok(w < 1e-2, "batchnorm backward matches finite differences (worst %.2e)", w);

    /* BatchNorm at a size with full column blocks and a partial one, against
     * plain per-column loops in double (forward, running stats, eval,
     * backward) */
    {
        int R = 300, C = 40;
        float *bx = malloc(R * C * 4), *bo = malloc(R * C * 4), *bg = malloc(R * C * 4),
              *bd = calloc(R * C, 4), *be = malloc(R * C * 4), bm[40], brs[40], brm[40], brv[40];
        randn(bx, R * C, &r, 1.5f);
        randn(bg, R * C, &r, 1.0f);
        for (int i = 0; i < R * C; i++)
            bx[i] += 0.1f * (i % C), bd[i] = 0.5f;
        for (int j = 0; j < C; j++)
            brm[j] = 0.2f, brv[j] = 2.0f;
        batchnorm_forward(bo, bm, brs, bx, R, C, 1e-6f, brm, brv, 0.1f);
        batchnorm_eval(be, bx, R, C, 1e-6f, brm, brv);
        batchnorm_backward(bd, bg, bo, brs, R, C);
        double wf = 0, wr = 0, we = 0, wb = 0;
        for (int j = 0; j < C; j++) {
            double mu = 0, v = 0, gm = 0, gym = 0;
            for (int i = 0; i < R; i++)
                mu += bx[i * C + j];
            mu /= R;
            for (int i = 0; i < R; i++)
                v += (bx[i * C + j] - mu) * (bx[i * C + j] - mu);
            double rs = 1 / sqrt(v / R + 1e-6);
            wr = tap_worse(wr, fabs(brm[j] - (0.9 * 0.2 + 0.1 * mu)) +
                                   fabs(brv[j] - (0.9 * 2.0 + 0.1 * v / (R - 1))));
            for (int i = 0; i < R; i++) {
                double y = (bx[i * C + j] - mu) * rs;
                wf = tap_worse(wf, fabs(bo[i * C + j] - y));
                we = tap_worse(we, fabs(be[i * C + j] -
                                        (bx[i * C + j] - brm[j]) / sqrt(brv[j] + 1e-6)));
                gm += bg[i * C + j] / R;
                gym += bg[i * C + j] * y / R;
            }
            for (int i = 0; i < R; i++) {
                double y = (bx[i * C + j] - mu) * rs;
                wb = tap_worse(wb, fabs(bd[i * C + j] - 0.5 - rs * (bg[i * C + j] - gm - y * gym)));
            }
        }
        tap_ok(wf < 1e-5 && wr < 1e-5 && we < 1e-5 && wb < 1e-5,
               "batchnorm %dx%d against per-column loops in double: forward %.1e, running stats "
               "%.1e, eval %.1e, backward %.1e", R, C, wf, wr, we, wb);
        free(bx), free(bo), free(bg), free(bd), free(be);
    }

    /* attention pooling */
    int B = 3, N = 5, D = 6, NH = 2;
    float q[6], k[90], v[90], po[18], att[30], gq[6] = {0}, gk[90] = {0}, gv[90] = {0}, gp[18];
    randn(q, 6, &r, 1), randn(k, 90, &r, 1), randn(v, 90, &r, 1), randn(gp, 18, &r, 1);
    kctx pc = {.B = B, .N = N, .D = D, .NH = NH, .q = q, .k = k, .v = v, .att = att, .out = po, .g = gp};
    pool_obj(&pc);
    double worst_sum = 0, worst_ref = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            double s = 0, ref[5], z = 0;
            for (int n = 0; n < N; n++) {
                s += att[(b * NH + h) * N + n];
                double d = 0;
                for (int i = 0; i < 3; i++)
                    d += (double)q[h * 3 + i] * k[(b * N + n) * D + h * 3 + i];
                ref[n] = exp(d / sqrt(3.0));
                z += ref[n];
            }
            worst_sum = tap_worse(worst_sum, fabs(s - 1));
            for (int n = 0; n < N; n++)
                worst_ref = tap_worse(worst_ref, fabs(ref[n] / z - att[(b * NH + h) * N + n]));
        }
    tap_ok(worst_sum < 1e-6 && worst_ref < 1e-6,
           "attention pooling: weights sum to 1 per head and match a naive softmax (%.1e)", worst_ref);
    attnpool_backward(gq, gk, gv, gp, q, k, v, att, B, N, D, NH);
    double wq = fd_check(q, 6, gq, pool_obj, &pc, 1), wk = fd_check(k, 90, gk, pool_obj, &pc, 1),
           wv = fd_check(v, 90, gv, pool_obj, &pc, 1);
    tap_ok(wq < 1e-2 && wk < 1e-2 && wv < 1e-2,
           "attention pooling backward (q %.1e, k %.1e, v %.1e)", wq, wk, wv);

    /* cross-entropy */
    float logits[8] = {1, 2, 3, 0.5f, -1, 0, 1, 5}, probs[8], dl[8] = {0};
    int32_t lab[2] = {2, 0};
    int correct;
    float l = xent_forward(probs, logits, lab, 2, 4, &correct);
    double e0 = log(exp(1) + exp(2) + exp(3) + exp(0.5)) - 3;
    double e1 = log(exp(-1) + exp(0) + exp(1) + exp(5)) + 1;
    tap_ok(tap_close(l, (e0 + e1) / 2, 1e-5, 0) && correct == 1, "cross-entropy value and hits");
    kctx xc = {.B = 2, .K = 4, .logits = logits, .probs = probs, .labels = lab};
    xent_backward(dl, probs, lab, 2, 4, 1.0f);
    w = fd_check(logits, 8, dl, xent_obj, &xc, 1);
    tap_ok(w < 1e-2, "cross-entropy backward (worst %.2e)", w);

    /* whole probes */
    check_probe(AIM_PROBE_ATTENTIVE, 0, "attentive");
    check_probe(AIM_PROBE_ATTENTIVE, 1, "attentive (per-token order)");
    check_probe(AIM_PROBE_LINEAR, 0, "linear");

    /* the cheap order against the per-token one: a head width with a
     * vector tail (D 12, hd 4), the tiny probe's sizes (D 192, NH 3, N 25),
     * a batch big enough for the threaded paths */
    check_proj(6, 5, 12, 3, 1, 5);
    check_proj(7, 25, 192, 3, 0, 6);
    check_proj(64, 25, 192, 3, 0, 7);
    check_probe_orders();
    aim_probe *ap = aim_probe_new(AIM_PROBE_ATTENTIVE, 4, 12, 3, 10, 0, &e);
    aim_params *app = aim_probe_params(ap);
    tap_ok(aim_params_find(app, "head.cls_token") >= 0 && aim_params_find(app, "head.k.weight") >= 0 &&
               aim_params_find(app, "head.v.weight") >= 0 &&
               aim_params_find(app, "head.linear.weight") >= 0 &&
               aim_params_find(app, "head.bn.running_mean") >= 0 &&
               aim_params_find(app, "head.bn.running_var") >= 0 &&
               aim_params_find(app, "head.linear.bias") < 0,
           "attentive probe tensors carry the AIM.md names (no classifier bias)");
    int iq = aim_params_find(app, "head.cls_token");
    tap_ok(app->t[iq].ndim == 3 && app->t[iq].shape[2] == 12 && !(app->t[iq].flags & AIM_P_DECAY),
           "the query is [1,1,D] without weight decay");
    tap_ok(aim_probe_new(AIM_PROBE_ATTENTIVE, 4, 10, 3, 10, 0, &e) == NULL && tap_contains(e.msg, "heads"),
           "heads must divide the width: %s", e.msg);
    aim_probe_free(ap);

    /* half floats: every finite half survives half -> float -> half */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f)
            continue;
        if (aim_half_from_float(aim_half_to_float((uint16_t)h)) != h)
            bad++;
    }
    tap_ok(bad == 0, "half floats round-trip exactly (%d failures)", bad);
    /* the cache reader's vectorised conversion: every half, NaNs included */
    {
        aim_feats hf = {.n = 1, .N = 256, .D = 256};
        hf.data = malloc(65536 * 2);
        float *hv = malloc(65536 * 4);
        for (uint32_t h = 0; h < 65536; h++)
            hf.data[h] = (uint16_t)h;
        aim_feats_get(&hf, NULL, 0, 1, hv);
        int diff = 0;
        for (uint32_t h = 0; h < 65536; h++) {
            float ref = aim_half_to_float((uint16_t)h);
            diff += memcmp(&ref, hv + h, 4) != 0;
        }
        tap_ok(diff == 0, "aim_feats_get converts every half bit for bit as aim_half_to_float "
                          "(%d differ)", diff);
        free(hf.data);
        free(hv);
    }
    tap_ok(aim_half_to_float(aim_half_from_float(1.0f + 1.0f / 4096)) == 1.0f &&
               aim_half_to_float(aim_half_from_float(65504.0f)) == 65504.0f &&
               isinf(aim_half_to_float(aim_half_from_float(1e6f))) &&
               fabsf(aim_half_to_float(aim_half_from_float(0.1f)) - 0.1f) < 1e-4f,
           "half rounding: nearest even, max, overflow, precision");

    /* a separable task: class k lifts channel k of every token a little and
     * of one random token a lot; both probes must learn it to ~100% */
    int n = 600, Nt = 4, Dt = 12;
    aim_feats *tr = aim_xcalloc(1, sizeof *tr), *te = aim_xcalloc(1, sizeof *te);
    aim_feats *sets[2] = {tr, te};
    for (int s = 0; s < 2; s++) {
        aim_feats *f = sets[s];
        f->n = s ? 300 : n;
        f->N = Nt;
        f->D = Dt;
        f->data = malloc((size_t)f->n * Nt * Dt * 2);
        f->labels = malloc((size_t)f->n * 4);
        for (int64_t i = 0; i < f->n; i++) {
            int cls = (int)aim_rng_below(&r, 6);
            f->labels[i] = cls;
            int tok = (int)aim_rng_below(&r, (uint32_t)Nt);
            for (int t = 0; t < Nt; t++)
                for (int d = 0; d < Dt; d++) {
                    float val = (float)aim_rng_normal(&r) +
                                (d == cls ? (t == tok ? 6.0f : 1.5f) : 0.0f);
                    f->data[((size_t)i * Nt + t) * Dt + d] = aim_half_from_float(val);
                }
        }
    }
    for (int kind = 0; kind < 2; kind++) {
        aim_probe *p = aim_probe_new(kind, Nt, Dt, 3, 6, 1, &e);
        aim_probe_opts o;
        aim_probe_opts_default(&o);
        o.epochs = 30;
        o.batch = 50;
        o.lr = 1e-2f;
        aim_probe_result res;
        aim_probe_train(p, tr, te, &o, &res, &e);
        tap_ok(res.test_top1 > 98.0f,
               "%s probe learns a separable task: test top-1 %.1f%%, train %.1f%%",
               kind ? "linear" : "attentive", res.test_top1, res.train_top1);
        aim_probe_free(p);
    }
    aim_feats_free(tr);
    aim_feats_free(te);

    /* features from a model: one pass, averaged block sets */
    aim_config mc;
    aim_config_preset("micro", &mc, &e);
    aim_model *m = aim_model_new(&mc, 1, &e);
    aim_synth_opts so = {.n = 40, .c = 3, .h = 8, .w = 8, .seed = 2};
    aim_dataset *ds = aim_data_synthetic(&so, &e);
    int s1[1] = {1}, s2[1] = {2}, s12[2] = {1, 2};
    const int *setv[3] = {s1, s2, s12};
    int sizes[3] = {1, 1, 2};
    aim_feats *fo[3];
    tap_ok(aim_features_extract(m, ds, 30, 16, 0, 3, setv, sizes, fo, NULL, NULL, NULL, &e) == 0 &&
               fo[0]->n == 30,
           "features of 3 block sets in one pass");
    float *f0 = malloc(30 * 16 * 16 * 4), *f1 = malloc(30 * 16 * 16 * 4), *f2 = malloc(30 * 16 * 16 * 4);
    aim_feats_get(fo[0], NULL, 0, 30, f0);
    aim_feats_get(fo[1], NULL, 0, 30, f1);
    aim_feats_get(fo[2], NULL, 0, 30, f2);
    double worst_avg = 0;
    for (int i = 0; i < 30 * 256; i++)
        worst_avg = tap_worse(worst_avg, fabs(f2[i] - 0.5 * (f0[i] + f1[i])) / (1 + fabs(f2[i])));
    tap_ok(worst_avg < 2e-3, "a block set holds the average of its blocks (%.1e)", worst_avg);
    float *xb = malloc(4 * 192 * 4);
    aim_dataset_get_batch(ds, 0, 4, 1, xb, NULL);
    const float *ref = aim_model_trunk(m, xb, NULL, 4, 2);
    double worst_blk = 0;
    for (int i = 0; i < 4 * 256; i++)
        worst_blk = tap_worse(worst_blk, fabs(ref[i] - f1[i]) / (1 + fabs(ref[i])));
    tap_ok(worst_blk < 2e-3 && fo[1]->labels[3] == ds->labels[3],
           "cached block-2 features equal the trunk's output (half precision %.1e)", worst_blk);
    int bad_set[1] = {3};
    const int *bsv[1] = {bad_set};
    int bsz[1] = {1};
    aim_feats *bo[1];
    tap_ok(aim_features_extract(m, ds, 0, 16, 0, 1, bsv, bsz, bo, NULL, NULL, NULL, &e) == -1 &&
               tap_contains(e.msg, "block 3"),
           "a block beyond the depth is refused: %s", e.msg);
    /* mirror views: entries 0..n-1 as without, n..2n-1 the trunk's output
     * on the images flipped left to right (done here by hand), labels twice */
    {
        aim_feats *fm[1];
        int ok = aim_features_extract(m, ds, 30, 16, AIM_FEATS_MIRROR, 1, setv + 1, sizes + 1, fm,
                                      NULL, NULL, NULL, &e) == 0;
        tap_ok(ok && fm[0]->n == 60 && fm[0]->labels[33] == ds->labels[3] &&
                   fm[0]->labels[3] == ds->labels[3],
               "mirror: 2n entries, labels repeated");
        float *fv = malloc(60 * 256 * 4);
        aim_feats_get(fm[0], NULL, 0, 60, fv);
        tap_ok(!memcmp(fv, f1, 30 * 256 * 4), "mirror: the first n are the plain features");
        float *xm = malloc(4 * 192 * 4);
        aim_dataset_get_batch(ds, 0, 4, 1, xb, NULL);
        for (int b = 0; b < 4; b++)
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 8; y++)
                    for (int xx = 0; xx < 8; xx++)
                        xm[((b * 3 + ch) * 8 + y) * 8 + xx] = xb[((b * 3 + ch) * 8 + y) * 8 + 7 - xx];
        const float *rm = aim_model_trunk(m, xm, NULL, 4, 2);
        double wm = 0, dplain = 0;
        for (int i = 0; i < 4 * 256; i++) {
            wm = tap_worse(wm, fabs(rm[i] - fv[30 * 256 + i]) / (1 + fabs(rm[i])));
            dplain = tap_worse(dplain, fabs(fv[30 * 256 + i] - fv[i]));
        }
        tap_ok(wm < 2e-3 && dplain > 1e-2,
               "mirror: entry n+i is the trunk on image i mirrored (%.1e; differs from the plain "
               "one by %.2f)", wm, dplain);
        free(xm);
        free(fv);
        if (ok)
            aim_feats_free(fm[0]);
    }
    aim_feats *raw = aim_features_raw(ds, 0, &e);
    tap_ok(raw && raw->n == 40 && raw->N == 1 && raw->D == 192, "raw-pixel features [n, 1, C*H*W]");
    aim_feats_free(raw);
    for (int s = 0; s < 3; s++)
        aim_feats_free(fo[s]);
    free(f0), free(f1), free(f2), free(xb);
    aim_dataset_free(ds);
    aim_model_free(m);
    return tap_done();
}
