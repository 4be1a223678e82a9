/*
 * test_model.c - the whole AIM model on the `micro` preset: a finite-
 * difference check of the gradient of every named tensor, frozen tensors,
 * per-image prefixes, parameter table and init, save/load; the sgemm peak
 * on the model's GEMM shapes (aim/prof.h): the shapes add up to the
 * model's forward FLOPs, the peak is the rows' FLOP-weighted rate.
 *
 * Each part is a named case (run_case) that builds what it needs and
 * reports its own checks (`# case NAME: N checks, F failed`): a failure in
 * one does not hide the others.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/model.h"
#include "aim/prof.h"
#include "tap.h"
#include "gemm_libs.h"

static void random_batch(float *x, size_t n, int32_t *prefix, int B, int N, uint64_t seed)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)aim_rng_normal(&r);
    for (int b = 0; b < B; b++)
        prefix[b] = 1 + (int32_t)aim_rng_below(&r, (uint32_t)(N - 1));
}

/* perturb the weights slightly so LayerNorm weights are not exactly 1 and
 * biases not 0 (otherwise some gradient terms are invisible) */
static void jitter(aim_params *p, uint64_t seed)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->t[i].numel; k++)
            p->data[p->t[i].offset + k] += (float)(0.1 * aim_rng_normal(&r));
}

/* the worst difference of p's gradients from g (same layout), relative to
 * each tensor's largest value in g */
static double grad_diff(const aim_params *p, const float *g)
{
    double worst = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        double tmax = 1e-12;
        for (size_t k = 0; k < t->numel; k++)
            tmax = tap_worse(tmax, fabs(g[t->offset + k]));
        for (size_t k = 0; k < t->numel; k++)
            worst = tap_worse(worst, fabs(p->grad[t->offset + k] - g[t->offset + k]) / tmax);
    }
    return worst;
}

/* Loss-only pass (AIM_FWD_LOSS_ONLY) against the full one on model m: the
 * loss and every gradient, with nt threads. Returns the worst relative
 * difference of a gradient (against each tensor's largest value) and the
 * loss difference in *dloss. */
static double loss_only_vs_full(aim_model *m, const float *x, const int32_t *prefix, int B,
                                double *dloss)
{
    aim_params *p = aim_model_params(m);
    aim_params_zero_grad(p);
    float lf = aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    float *g = aim_xmalloc(p->total * sizeof(float));
    memcpy(g, p->grad, p->total * sizeof(float));
    aim_params_zero_grad(p);
    float lo = aim_model_forward_ex(m, x, prefix, B, AIM_FWD_LOSS_ONLY);
    aim_model_backward(m);
    *dloss = fabs((double)lf - lo) / fabs((double)lf);
    double worst = grad_diff(p, g);
    free(g);
    return worst;
}

/* ------------------------------------------------------------ fixtures */

/* aim_model_new, or one failed check naming the case's setup */
static aim_model *new_model(const aim_config *c, uint64_t seed, const char *what)
{
    aim_err e = {{0}};
    aim_model *m = aim_model_new(c, seed, &e);
    if (!m)
        tap_ok(0, "%s: a model: %s", what, e.msg);
    return m;
}

/* a preset, or one failed check */
static int preset(const char *name, aim_config *c)
{
    aim_err e = {{0}};
    if (aim_config_preset(name, c, &e) == 0)
        return 0;
    tap_ok(0, "setup: the %s preset: %s", name, e.msg);
    return -1;
}

/* The micro model most cases share: seed 3, weights jittered (seed 11), and
 * a batch of B = 3 images with the prefixes 1, N/2 and N-1. */
typedef struct fixture {
    aim_config c;
    aim_model *m;
    aim_params *p;
    int B, N;          /* images, tokens per image */
    size_t img;        /* values per image, C*H*W */
    float *x;          /* (B, C, H, W) */
    int32_t prefix[3]; /* (B) */
} fixture;

static void fixture_free(fixture *f)
{
    free(f->x);
    aim_model_free(f->m);
    memset(f, 0, sizeof *f);
}

/* 0, or -1 after a failed check (nothing left to free) */
static int fixture_new(fixture *f)
{
    memset(f, 0, sizeof *f);
    if (preset("micro", &f->c) != 0 || !(f->m = new_model(&f->c, 3, "micro fixture")))
        return -1;
    f->p = aim_model_params(f->m);
    jitter(f->p, 11);
    f->B = 3;
    f->N = aim_config_tokens(&f->c);
    f->img = (size_t)f->c.channels * f->c.image * f->c.image;
    f->x = aim_xmalloc(f->B * f->img * sizeof(float));
    random_batch(f->x, f->B * f->img, f->prefix, f->B, f->N, 5);
    f->prefix[0] = 1;
    f->prefix[1] = f->N / 2;
    f->prefix[2] = f->N - 1;
    return 0;
}

/* Zero the gradients, forward and backward on the fixture's batch: a copy
 * of the gradients (the caller frees it), the loss in *loss. */
static float *fixture_grad(fixture *f, float *loss)
{
    aim_params_zero_grad(f->p);
    float l = aim_model_forward(f->m, f->x, f->prefix, f->B);
    aim_model_backward(f->m);
    if (loss)
        *loss = l;
    float *g = aim_xmalloc(f->p->total * sizeof(float));
    memcpy(g, f->p->grad, f->p->total * sizeof(float));
    return g;
}

/* the micro config with depth 3 and head depth 3 (the alternating head
 * buffers), seed 5, jittered with jseed; NULL after a failed check */
static aim_model *deep_model(const aim_config *c, uint64_t jseed)
{
    aim_config c3 = *c;
    c3.depth = 3;
    c3.head_depth = 3;
    aim_model *m3 = new_model(&c3, 5, "depth 3");
    if (m3)
        jitter(aim_model_params(m3), jseed);
    return m3;
}

/* central difference of the loss in one weight, with the step it used */
static double fd_at(float *w, double (*loss)(void *), void *ctx)
{
    float w0 = *w, h = 1e-2f * fmaxf(1.0f, fabsf(w0));
    *w = w0 + h;
    double lp = loss(ctx);
    *w = w0 - h;
    double lm = loss(ctx);
    *w = w0;
    return (lp - lm) / (2.0 * ((double)(w0 + h) - (double)w0));
}

static double fixture_loss(void *ctx)
{
    fixture *f = ctx;
    return aim_model_forward(f->m, f->x, f->prefix, f->B);
}

/* ------------------------------------------------------------ the cases */

static void case_presets(void)
{
    aim_err e = {{0}};
    aim_config c;
    tap_ok(aim_config_preset("micro", &c, &e) == 0, "micro preset");
    tap_ok(aim_config_preset("huge", &c, &e) == -1 && tap_contains(e.msg, "huge"),
           "unknown preset is named: %s", e.msg);
    aim_config bad;
    aim_config_preset("tiny", &bad, &e);
    bad.patch = 5;
    tap_ok(aim_config_validate(&bad, &e) == -1 && tap_contains(e.msg, "patch"),
           "patch not dividing the image is refused: %s", e.msg);
    aim_config_preset("tiny", &bad, &e);
    bad.heads = 5;
    tap_ok(aim_config_validate(&bad, &e) == -1 && tap_contains(e.msg, "heads"),
           "heads not dividing the width is refused: %s", e.msg);
    aim_config_preset("tiny", &bad, &e);
    bad.patch = 28;
    tap_ok(aim_config_validate(&bad, &e) == -1 && tap_contains(e.msg, "token"),
           "a single token is refused: %s", e.msg);
}

/* parameter table of tiny: names, order, count formula */
static void case_param_table(void)
{
    aim_config tiny;
    aim_model *mt;
    if (preset("tiny", &tiny) != 0 || !(mt = new_model(&tiny, 0, "tiny")))
        return;
    aim_params *pt = aim_model_params(mt);
    unsigned long long total = aim_config_trunk_params(&tiny) + aim_config_head_params(&tiny);
    tap_ok(aim_params_count(pt, 0) == total,
           "tiny: table holds %llu values = trunk %llu + head %llu",
           (unsigned long long)aim_params_count(pt, 0),
           (unsigned long long)aim_config_trunk_params(&tiny),
           (unsigned long long)aim_config_head_params(&tiny));
    tap_ok(total > 3200000 && total < 3400000,
           "tiny has about 3.29M parameters (calibration note)");
    int iq = aim_params_find(pt, "trunk.blocks.5.attn.qkv.weight");
    tap_ok(iq >= 0 && pt->t[iq].shape[0] == 576 && pt->t[iq].shape[1] == 192 &&
               (pt->t[iq].flags & AIM_P_DECAY),
           "qkv weight [3D, D] with weight decay");
    int ipw = aim_params_find(pt, "preprocessor.patchifier.proj.weight");
    tap_ok(ipw >= 0 && pt->t[ipw].ndim == 4 && pt->t[ipw].shape[1] == 1 && pt->t[ipw].shape[2] == 4,
           "patch embedding has the conv layout [D, C, p, p]");
    int inb = aim_params_find(pt, "trunk.blocks.0.norm_1.bias");
    int inw = aim_params_find(pt, "pixel_head.decoder_norm.weight");
    tap_ok(inb >= 0 && !(pt->t[inb].flags & AIM_P_DECAY) && inw >= 0 &&
               !(pt->t[inw].flags & AIM_P_DECAY),
           "no weight decay on norms and biases");
    tap_ok(aim_params_find(pt, "pixel_head.decoder_blocks.1.mlp.fc2.weight") >= 0 &&
               aim_params_find(pt, "pixel_head.decoder_blocks.2.mlp.fc2.weight") < 0,
           "head depth 2 gives decoder_blocks 0 and 1");
    aim_model_free(mt);
}

/* init of tiny: xavier bound, LN = 1/0, biases 0, deterministic per seed */
static void case_init(void)
{
    aim_config tiny;
    aim_model *mt;
    if (preset("tiny", &tiny) != 0 || !(mt = new_model(&tiny, 0, "tiny")))
        return;
    aim_params *pt = aim_model_params(mt);
    int iq = aim_params_find(pt, "trunk.blocks.5.attn.qkv.weight");
    int iln = aim_params_find(pt, "trunk.blocks.2.norm_2.weight");
    int ipb = aim_params_find(pt, "pixel_head.decoder_pred.bias");
    if (iq < 0 || iln < 0 || ipb < 0) {
        tap_ok(0, "tiny: the qkv weight, a LayerNorm weight and the prediction bias are named");
        aim_model_free(mt);
        return;
    }
    float a = sqrtf(6.0f / (192 + 576));
    const float *wq = pt->data + pt->t[iq].offset;
    float mx = 0;
    double s2 = 0;
    for (size_t k = 0; k < pt->t[iq].numel; k++) {
        mx = fabsf(wq[k]) > mx ? fabsf(wq[k]) : mx;
        s2 += (double)wq[k] * wq[k];
    }
    double var = s2 / pt->t[iq].numel;
    tap_ok(mx <= a && mx > 0.95f * a && fabs(var - a * a / 3) < 0.05 * a * a / 3,
           "xavier-uniform init of qkv: max %.4f bound %.4f, var %.3g (expected %.3g)", mx, a,
           var, a * a / 3.0);
    const float *lnw = pt->data + pt->t[iln].offset;
    const float *pb = pt->data + pt->t[ipb].offset;
    tap_ok(lnw[0] == 1 && lnw[191] == 1 && pb[0] == 0 && pb[15] == 0, "LayerNorm 1, biases 0");
    aim_model *mt2 = new_model(&tiny, 0, "tiny, seed 0 again");
    aim_model *mt3 = new_model(&tiny, 1, "tiny, seed 1");
    if (mt2 && mt3)
        tap_ok(!memcmp(aim_model_params(mt2)->data, pt->data, pt->total * 4) &&
                   memcmp(aim_model_params(mt3)->data, pt->data, pt->total * 4),
               "init is deterministic per seed");
    aim_model_free(mt);
    aim_model_free(mt2);
    aim_model_free(mt3);
}

/* Finite differences on up to 12 elements of every tensor against the
 * analytic gradient g: 1 if all agree; the worst relative error and its
 * tensor in *worst, *worst_name. */
static int fd_check_all(fixture *f, const float *g, double *worst, const char **worst_name)
{
    aim_params *p = f->p;
    int all_ok = 1;
    aim_rng r;
    aim_rng_seed(&r, 99);
    *worst = 0;
    *worst_name = "";
    for (int i = 0; i < p->n; i++) {
        aim_param *t = &p->t[i];
        int nk = t->numel < 12 ? (int)t->numel : 12;
        double tmax = 0;
        for (size_t k = 0; k < t->numel; k++)
            tmax = tap_worse(tmax, fabs(g[t->offset + k]));
        for (int j = 0; j < nk; j++) {
            size_t k = t->numel <= 12 ? (size_t)j : aim_rng_below(&r, (uint32_t)t->numel);
            double num = fd_at(p->data + t->offset + k, fixture_loss, f);
            double an = g[t->offset + k];
            double err = fabs(an - num) / fmax(fmax(fabs(num), 0.05 * tmax), 1e-4);
            if (!isnan(*worst) && !(err <= *worst)) { /* a NaN is the worst */
                *worst = err;
                *worst_name = t->name;
            }
            if (!(err <= 3e-2)) {
                all_ok = 0;
                tap_diag("%s[%zu]: analytic %.6g numeric %.6g", t->name, k, an, num);
            }
        }
    }
    return all_ok;
}

/* whole-model gradient: every named tensor by finite differences */
static void case_gradient(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    float loss;
    float *g = fixture_grad(&f, &loss);
    tap_ok(isfinite(loss) && loss > 0, "micro loss is finite: %.6f", loss);
    double worst;
    const char *worst_name;
    int all_ok = fd_check_all(&f, g, &worst, &worst_name);
    tap_ok(all_ok, "finite differences match the gradient of all %d tensors (worst rel %.2e at %s)",
           f.p->n, worst, worst_name);
    int any_zero_tensor = 0;
    for (int i = 0; i < f.p->n; i++) {
        double s = 0;
        for (size_t k = 0; k < f.p->t[i].numel; k++)
            s += fabs(g[f.p->t[i].offset + k]);
        if (s == 0) {
            any_zero_tensor = 1;
            tap_diag("zero gradient: %s", f.p->t[i].name);
        }
    }
    tap_ok(!any_zero_tensor, "every tensor receives a gradient");
    free(g);
    fixture_free(&f);
}

static void case_backward_accumulates(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    float *g = fixture_grad(&f, NULL);
    aim_model_forward(f.m, f.x, f.prefix, f.B);
    aim_model_backward(f.m);
    double maxdiff = 0;
    for (size_t k = 0; k < f.p->total; k++)
        maxdiff = tap_worse(maxdiff, fabs(f.p->grad[k] - 2 * g[k]) / fmax(1e-3, fabs(2 * g[k])));
    tap_ok(maxdiff < 1e-4, "a second backward adds the same gradient again (%.2e)", maxdiff);
    free(g);
    fixture_free(&f);
}

/* frozen tensors get no gradient */
static void case_frozen(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_params *p = f.p;
    float *g = fixture_grad(&f, NULL);
    int ifc = aim_params_find(p, "trunk.blocks.0.mlp.fc1.weight");
    int iproj = aim_params_find(p, "trunk.blocks.0.attn.proj.weight");
    if (ifc < 0 || iproj < 0) {
        tap_ok(0, "micro: fc1 and proj of block 0 are named");
        free(g);
        fixture_free(&f);
        return;
    }
    p->t[ifc].flags |= AIM_P_FROZEN;
    aim_params_zero_grad(p);
    aim_model_forward(f.m, f.x, f.prefix, f.B);
    aim_model_backward(f.m);
    double fs = 0;
    for (size_t k = 0; k < p->t[ifc].numel; k++)
        fs += fabs(p->grad[p->t[ifc].offset + k]);
    tap_ok(fs == 0 && p->grad[p->t[iproj].offset] == g[p->t[iproj].offset],
           "a frozen tensor gets no gradient, the others are unchanged");
    p->t[ifc].flags &= ~AIM_P_FROZEN;
    tap_ok(aim_params_count(p, 1) == aim_params_count(p, 0), "nothing frozen any more");
    free(g);
    fixture_free(&f);
}

/* per-image prefixes: each image's loss depends only on its own prefix;
 * batch-size changes reuse or grow the activation slab */
static void case_prefixes(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    float l_all = aim_model_forward(f.m, f.x, f.prefix, f.B);
    double parts = 0, cnt = 0;
    for (int b = 0; b < f.B; b++) {
        float lb = aim_model_forward(f.m, f.x + b * f.img, &f.prefix[b], 1);
        parts += (double)lb * (f.N - f.prefix[b]);
        cnt += f.N - f.prefix[b];
    }
    tap_ok(tap_close(l_all, parts / cnt, 1e-5, 0),
           "batch loss = target-weighted mean of single-image losses (%.7f vs %.7f)", l_all,
           parts / cnt);
    aim_model_forward(f.m, f.x, f.prefix, f.B);
    float l1 = aim_model_forward(f.m, f.x, f.prefix, 1);
    float l1b = aim_model_forward(f.m, f.x, f.prefix, 1);
    tap_ok(l1 == l1b, "forward is deterministic");
    fixture_free(&f);
}

/* the evaluation forward (buffers shared between blocks, the batch cut
 * into chunks handed out to the threads) gives the same loss and
 * predictions, and no backward follows it; depth 3 and head depth 3 so
 * the alternating head buffers are exercised. Not to the bit: B = 3 is
 * split 1 + 2 for training and 2 + 1 in chunks, and the BLAS may sum a
 * row's products in another order at another place in its M tiles. */
static void case_eval_forward(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_model *m3 = deep_model(&f.c, 6);
    if (!m3) {
        fixture_free(&f);
        return;
    }
    aim_params *p3 = aim_model_params(m3);
    int B = f.B;
    size_t np = (size_t)B * f.N * aim_config_patch_dim(aim_model_config(m3));
    float lt = aim_model_forward(m3, f.x, f.prefix, B);
    float *pv = aim_xmalloc(np * sizeof(float));
    memcpy(pv, aim_model_predictions(m3), np * sizeof(float));
    /* another batch first, so that nothing left in the buffers can pass
     * for the evaluation pass's own work */
    float *xo = aim_xmalloc((size_t)B * f.img * sizeof(float));
    int32_t po[sizeof f.prefix / sizeof *f.prefix]; /* B of them */
    random_batch(xo, (size_t)B * f.img, po, B, f.N, 77);
    aim_model_forward(m3, xo, po, B);
    free(xo);
    float le = aim_model_loss(m3, f.x, f.prefix, B);
    double pdiff = 0.0;
    for (size_t k = 0; k < np; k++)
        pdiff = tap_worse(pdiff, fabs((double)pv[k] - aim_model_predictions(m3)[k]));
    int same = fabs((double)lt - le) <= 1e-6 * fabs((double)lt) && pdiff <= 1e-5;
    aim_params_zero_grad(p3);
    aim_model_backward(m3);
    int zero = 1;
    for (size_t k = 0; k < p3->total; k++)
        zero &= p3->grad[k] == 0.0f;
    tap_ok(same && zero,
           "aim_model_loss = aim_model_forward (%.7f vs %.7f, predictions within %.1e), "
           "and leaves nothing to backward",
           le, lt, pdiff);
    free(pv);
    aim_model_free(m3);
    fixture_free(&f);
}

/* The batch of the loss-only cases: B5 = 5 images with prefixes from plain
 * causal (1) to one target (N-1), and another batch to leave stale buffers. */
enum { B5 = 5 };
typedef struct batch5 {
    float *x, *xo;              /* (B5, C, H, W) each */
    int32_t pre[B5], preo[B5];
} batch5;

static void batch5_new(batch5 *b, const fixture *f)
{
    b->x = aim_xmalloc((size_t)B5 * f->img * sizeof(float));
    random_batch(b->x, (size_t)B5 * f->img, b->pre, B5, f->N, 21);
    b->xo = aim_xmalloc((size_t)B5 * f->img * sizeof(float));
    random_batch(b->xo, (size_t)B5 * f->img, b->preo, B5, f->N, 22);
    b->pre[0] = 1;
    b->pre[3] = f->N - 1;
}

static void batch5_free(batch5 *b)
{
    free(b->x);
    free(b->xo);
}

/* the loss-only pass (the last block's tail and the head on the loss's
 * rows): the same loss and gradients as the full pass, one to three
 * threads, prefixes from plain causal to one target; the evaluation form
 * agrees (1-3 threads); no predictions after it */
static void case_loss_only(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_model *m3 = deep_model(&f.c, 7);
    if (!m3) {
        fixture_free(&f);
        return;
    }
    batch5 b;
    batch5_new(&b, &f);
    int nt0 = omp_get_max_threads();
    double wg = 0, wl = 0;
    for (int nt = 1; nt <= 3; nt++) {
        omp_set_num_threads(nt);
        double dl, dg = loss_only_vs_full(m3, b.x, b.pre, B5, &dl);
        wg = tap_worse(wg, dg);
        wl = tap_worse(wl, dl);
        /* a single image: one thread, every BLAS thread */
        dg = loss_only_vs_full(m3, b.x + 3 * f.img, b.pre + 3, 1, &dl);
        wg = tap_worse(wg, dg);
        wl = tap_worse(wl, dl);
    }
    omp_set_num_threads(nt0);
    tap_ok(wl < 1e-6 && wg < 1e-5,
           "loss-only pass = full pass: loss (rel %.1e), every gradient (rel %.1e), 1-3 "
           "threads", wl, wg);
    float l1o = aim_model_forward_ex(m3, b.x, b.pre, B5, AIM_FWD_LOSS_ONLY);
    const float *nop = aim_model_predictions(m3);
    /* the evaluation form runs in chunks handed out to 1-3 threads (the
     * training form in thread halves): the same loss up to the BLAS's
     * summation order, and the same to the bit when run again */
    const int ev = AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL;
    double we = 0;
    int again = 1;
    for (int nt = 1; nt <= 3; nt++) {
        omp_set_num_threads(nt);
        aim_model_forward_ex(m3, b.xo, b.preo, B5, AIM_FWD_LOSS_ONLY); /* stale buffers */
        float l1e = aim_model_forward_ex(m3, b.x, b.pre, B5, ev);
        we = tap_worse(we, fabs((double)l1e - l1o) / fabs((double)l1o));
        again &= l1e == aim_model_forward_ex(m3, b.x, b.pre, B5, ev);
        nop = nop ? nop : aim_model_predictions(m3);
    }
    omp_set_num_threads(nt0);
    tap_ok(we < 1e-6 && again && nop == NULL,
           "its evaluation form gives the same loss with 1-3 threads (rel %.1e), the same "
           "to the bit when repeated; no predictions after it", we);
    aim_model_forward(m3, b.x, b.pre, B5);
    tap_ok(aim_model_predictions(m3) != NULL, "predictions again after a full pass");
    batch5_free(&b);
    aim_model_free(m3);
    fixture_free(&f);
}

typedef struct eval_ctx {
    aim_model *m;
    const batch5 *b;
} eval_ctx;

static double eval_loss(void *ctx)
{
    eval_ctx *c = ctx;
    return aim_model_forward_ex(c->m, c->b->x, c->b->pre, B5, AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL);
}

/* finite differences straight on the loss-only pass, a few values of each
 * tensor of the last block (block 2 of 3) and the head: the worst relative
 * error */
static double fd_loss_only(aim_model *m3, const batch5 *b)
{
    aim_params *p3 = aim_model_params(m3);
    aim_params_zero_grad(p3);
    aim_model_forward_ex(m3, b->x, b->pre, B5, AIM_FWD_LOSS_ONLY);
    aim_model_backward(m3);
    float *g3 = aim_xmalloc(p3->total * sizeof(float));
    memcpy(g3, p3->grad, p3->total * sizeof(float));
    eval_ctx ctx = {m3, b};
    double fdw = 0;
    for (int i = 0; i < p3->n; i++) {
        const aim_param *t = &p3->t[i];
        if (!strstr(t->name, "blocks.2.") && strncmp(t->name, "pixel_head", 10) &&
            strncmp(t->name, "trunk.post", 10))
            continue;
        double tmax = 0;
        for (size_t k = 0; k < t->numel; k++)
            tmax = tap_worse(tmax, fabs(g3[t->offset + k]));
        for (size_t k = 0; k < t->numel && k < 3 * 97; k += 97) {
            double num = fd_at(p3->data + t->offset + k, eval_loss, &ctx);
            double err = fabs(g3[t->offset + k] - num) / fmax(fmax(fabs(num), 0.05 * tmax), 1e-4);
            if (!(err <= 3e-2))
                tap_diag("%s[%zu]: analytic %.6g numeric %.6g", t->name, k, g3[t->offset + k],
                         num);
            fdw = tap_worse(fdw, err);
        }
    }
    free(g3);
    return fdw;
}

/* the loss-only pass with LoRA on the last block: the same loss and
 * gradients as the full pass, and finite differences on it */
static void case_loss_only_lora(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_model *m3 = deep_model(&f.c, 7);
    if (!m3) {
        fixture_free(&f);
        return;
    }
    batch5 b;
    batch5_new(&b, &f);
    int last = 3;
    int lrc = aim_model_lora_add(m3, 2, 4.0f, &last, 1, 9, &e);
    /* B starts at zero: give it values so the adapter's terms count */
    aim_params *p3 = aim_model_params(m3);
    for (int i = 0; i < p3->n; i++)
        if (strstr(p3->t[i].name, "lora_B"))
            for (size_t k = 0; k < p3->t[i].numel; k++)
                p3->data[p3->t[i].offset + k] = 0.05f * (float)((k % 7) - 3);
    double dl, dg = loss_only_vs_full(m3, b.x, b.pre, B5, &dl);
    tap_ok(lrc == 0 && dl < 1e-6 && dg < 1e-5,
           "... with LoRA on the last block (loss rel %.1e, gradients rel %.1e)", dl, dg);
    double fdw = fd_loss_only(m3, &b);
    tap_ok(fdw < 3e-2,
           "finite differences on the loss-only pass (last block, head: worst rel %.2e)", fdw);
    batch5_free(&b);
    aim_model_free(m3);
    fixture_free(&f);
}

/* a pixel head wider than the trunk: the trunk's MLPs and the head's
 * share one gradient scratch whose rows are as wide as the wider, and
 * each thread works on its own rows of it. The same gradients with 1-3
 * threads, full and loss-only passes. */
static void case_wide_head(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_config cw = f.c;
    cw.head_width = 4 * f.c.width;
    aim_model *mw = new_model(&cw, 11, "wide head");
    if (!mw) {
        fixture_free(&f);
        return;
    }
    aim_params *pw = aim_model_params(mw);
    jitter(pw, 12);
    enum { B6 = 6 };
    float *x6 = aim_xmalloc((size_t)B6 * f.img * sizeof(float));
    int32_t pre6[B6];
    random_batch(x6, (size_t)B6 * f.img, pre6, B6, f.N, 23);
    float *g1 = aim_xmalloc(pw->total * sizeof(float));
    int nt0 = omp_get_max_threads();
    double wd = 0;
    for (int lo = 0; lo <= 1; lo++)
        for (int nt = 1; nt <= 3; nt++) {
            omp_set_num_threads(nt);
            aim_params_zero_grad(pw);
            aim_model_forward_ex(mw, x6, pre6, B6, lo ? AIM_FWD_LOSS_ONLY : 0);
            aim_model_backward(mw);
            if (nt == 1)
                memcpy(g1, pw->grad, pw->total * sizeof(float));
            else
                wd = tap_worse(wd, grad_diff(pw, g1));
        }
    omp_set_num_threads(nt0);
    tap_ok(wd < 1e-5,
           "head width %d > width %d: the same gradients with 1-3 threads, full and "
           "loss-only passes (rel %.1e)",
           cw.head_width, cw.width, wd);
    free(g1);
    free(x6);
    aim_model_free(mw);
    fixture_free(&f);
}

/* trunk features: no mask by default */
static void case_trunk_mask(void)
{
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    float *x = f.x;
    size_t img = f.img;
    const float *f1 = aim_model_trunk(f.m, x, NULL, 1, 1);
    float f10 = f1[0];
    x[img - 1] += 1.0f; /* last pixel changes the last patch only */
    f1 = aim_model_trunk(f.m, x, NULL, 1, 1);
    tap_ok(f1[0] != f10, "bidirectional trunk: token 0 sees the last patch");
    int32_t causal = 1;
    const float *f2 = aim_model_trunk(f.m, x, &causal, 1, 1);
    float f20 = f2[0];
    x[img - 1] -= 1.0f;
    f2 = aim_model_trunk(f.m, x, &causal, 1, 1);
    tap_ok(f2[0] == f20, "causal trunk: token 0 does not see the last patch");
    fixture_free(&f);
}

/* features: the average of the listed blocks' raw outputs, no mask */
static void case_features(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    const aim_config *mc = aim_model_config(f.m);
    size_t nd = (size_t)2 * aim_config_tokens(mc) * mc->width;
    float *avg = aim_xmalloc(nd * sizeof *avg), *b1 = aim_xmalloc(nd * sizeof *b1);
    memcpy(b1, aim_model_trunk(f.m, f.x, NULL, 2, 1), nd * sizeof *b1);
    const float *b2 = aim_model_trunk(f.m, f.x, NULL, 2, 2);
    int blocks[2] = {2, 1};
    int rc = aim_model_features(f.m, f.x, 2, blocks, 2, avg, &e);
    double dmax = 0;
    for (size_t k = 0; k < nd; k++)
        dmax = tap_worse(dmax, fabs(avg[k] - 0.5 * (b1[k] + b2[k])));
    tap_ok(rc == 0 && dmax < 1e-6, "features of blocks {2,1} = mean of the two outputs (%.2g)",
           dmax);
    blocks[1] = 3;
    tap_ok(aim_model_features(f.m, f.x, 2, blocks, 2, avg, &e) == -1 &&
               tap_contains(e.msg, "block 3 is outside 1..2"),
           "a block past the depth is refused: %s", e.msg);
    free(avg);
    free(b1);
    fixture_free(&f);
}

static const float norm_mean[3] = {0.1f, 0.2f, 0.3f}, norm_std[3] = {0.5f, 0.5f, 0.5f};

/* input normalisation recorded in the config */
static void case_set_norm(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    float zstd[3] = {1, 0, 1};
    tap_ok(aim_model_set_norm(f.m, 3, norm_mean, zstd, &e) == -1 &&
               aim_model_config(f.m)->nmean == 0,
           "a zero std is refused and leaves the config: %s", e.msg);
    tap_ok(aim_model_set_norm(f.m, 3, norm_mean, norm_std, &e) == 0 &&
               aim_model_config(f.m)->nmean == 3 && aim_model_config(f.m)->mean[2] == 0.3f,
           "set_norm records mean/std");
    fixture_free(&f);
}

/* save / load (with the normalisation recorded, as a trained model has it) */
static void case_save_load(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    if (aim_model_set_norm(f.m, 3, norm_mean, norm_std, &e) != 0)
        tap_ok(0, "setup: set_norm: %s", e.msg);
    const char *path = tap_path("micro.safetensors");
    tap_ok(aim_model_save(f.m, path, &e) == 0, "save");
    aim_model *m2 = aim_model_load(path, &e);
    tap_ok(m2 != NULL, "load: %s", m2 ? "ok" : e.msg);
    if (m2) {
        tap_ok(!memcmp(aim_model_params(m2)->data, f.p->data, f.p->total * 4),
               "loaded weights are bit-identical");
        float l2 = aim_model_forward(m2, f.x, f.prefix, f.B);
        tap_ok(l2 == aim_model_forward(f.m, f.x, f.prefix, f.B),
               "loaded model gives the same loss");
        aim_model_free(m2);
    } else {
        tap_skip("loaded weights are bit-identical: the model did not load");
        tap_skip("loaded model gives the same loss: the model did not load");
    }
    tap_ok(aim_model_load(tap_path("none.safetensors"), &e) == NULL &&
               tap_contains(e.msg, "none.safetensors"),
           "missing file: %s", e.msg);
    fixture_free(&f);
}

/* the model's GEMM shapes: the forward FLOPs less the attention core */
static void case_gemm_shapes(void)
{
    aim_config c;
    if (preset("micro", &c) != 0)
        return;
    const int B = 3;
    aim_gemm_row rows[AIM_GEMM_SHAPES_MAX];
    int nr = aim_gemm_shapes(&c, B, rows);
    double shape_flops = 0;
    for (int i = 0; i < nr; i++)
        shape_flops += 2.0 * rows[i].M * rows[i].K * rows[i].N * rows[i].count;
    int Nt = aim_config_tokens(&c);
    double gemm_fwd = aim_config_flops_forward(&c) - c.depth * 4.0 * Nt * Nt * c.width;
    tap_ok(nr == 9 && rows[0].M == B * Nt &&
               fabs(shape_flops - B * gemm_fwd) <= 1e-9 * shape_flops,
           "%d GEMM shapes hold the forward FLOPs less the attention core (%g vs %g per batch)",
           nr, shape_flops, B * gemm_fwd);
}

/* the sgemm peak on the model's shapes: structure, never speed */
static void case_gemm_peak(void)
{
    aim_config c;
    if (preset("micro", &c) != 0)
        return;
    const int B = 3;
    aim_gemm_row rows[AIM_GEMM_SHAPES_MAX];
    int nr = aim_gemm_shapes(&c, B, rows);
    aim_peak pk;
    double peak = aim_gemm_peak(&c, B, 0.05, &pk);
    double fl = 0, tm = 0;
    int rows_ok = pk.nrows == nr;
    for (int i = 0; i < pk.nrows; i++) {
        double f = 2.0 * pk.row[i].M * pk.row[i].K * pk.row[i].N * pk.row[i].count;
        rows_ok &= pk.row[i].flops_per_s > 0 && isfinite(pk.row[i].flops_per_s) &&
                   pk.row[i].M == rows[i].M && pk.row[i].N == rows[i].N;
        fl += f;
        tm += f / pk.row[i].flops_per_s;
    }
    tap_ok(peak > 0 && isfinite(peak) && peak == pk.flops_per_s && rows_ok,
           "the sgemm peak is positive and finite (%.3g GFLOP/s), every row too", peak / 1e9);
    tap_ok(fabs(fl / tm - peak) <= 1e-9 * peak,
           "the peak is the rows' FLOP-weighted rate (%.6g vs %.6g)", fl / tm, peak);
    tap_ok(pk.flops_per_cpu_s > 0 && pk.cores > 0, "... with its rate per CPU second (%.2f cores)",
           pk.cores);
    tap_ok(aim_gemm_peak(&c, 0, 0.05, &pk) == 0 && pk.nrows == 0 &&
               aim_gemm_peak(&c, B, 0, NULL) == 0,
           "no batch or no time: no peak");
}

static void run_cases_gemm(void);

/* Each case reports its own checks: a failure in one does not end the rest. */
static void run_case(const char *name, void (*fn)(void))
{
    int n0 = tap_n, f0 = tap_failed;
    tap_diag("case %s", name);
    fn();
    tap_diag("case %s: %d checks, %d failed", name, tap_n - n0, tap_failed - f0);
}

/* The same fixture, its loss and every gradient with the fp32 GEMMs on
 * OpenBLAS and on oneDNN: the same products summed in another order */
static void case_gemm_libraries(void)
{
    fixture f;
    aim_err e = {{0}};
    if (fixture_new(&f) != 0)
        return;
    float l1, l2;
    if (!tap_ok(aim_model_set_gemm(f.m, AIM_GEMM_OPENBLAS, &e) == 0, "fp32 GEMMs on OpenBLAS%s%s",
                *e.msg ? ": " : "", e.msg))
        goto out;
    float *g1 = fixture_grad(&f, &l1);
    tap_ok(!strcmp(aim_model_gemm(f.m), "openblas"), "the model says openblas (%s)",
           aim_model_gemm(f.m));
    if (aim_model_set_gemm(f.m, AIM_GEMM_ONEDNN, &e) != 0) {
        tap_skip(e.msg);
        free(g1);
        goto out;
    }
    float *g2 = fixture_grad(&f, &l2);
    tap_ok(!strcmp(aim_model_gemm(f.m), "onednn"), "the model says onednn (%s)",
           aim_model_gemm(f.m));
    double worst = 0;
    for (int i = 0; i < f.p->n; i++) {
        const aim_param *t = &f.p->t[i];
        double d = 0, n = 0;
        for (size_t k = 0; k < t->numel; k++) {
            double a = g1[t->offset + k], b = g2[t->offset + k];
            d += (a - b) * (a - b);
            n += a * a;
        }
        double rel = sqrt(d / (n + 1e-30));
        worst = isnan(rel) || rel > worst ? rel : worst;
    }
    tap_ok(fabs((double)l1 - l2) <= 1e-5 * fabs((double)l1) && l1 != 0,
           "fp32 loss on OpenBLAS %.8f, on oneDNN %.8f", l1, l2);
    tap_ok(worst <= 1e-4, "every gradient tensor on oneDNN within 1e-4 (relative RMS) of "
                          "OpenBLAS's (worst %.2e)", worst);
    free(g1);
    free(g2);
out:
    fixture_free(&f);
}

int main(void)
{
    run_case("presets", case_presets);
    run_case("param_table", case_param_table);
    run_case("init", case_init);
    run_case("gemm_libraries", case_gemm_libraries);
    /* every case that runs the model, with the fp32 GEMMs on each library
     * (the models made below resolve AIM_GEMM_AUTO from AIM_GEMM) */
    for (int li = 0; li < GEMM_LIBS; li++) {
        if (gemm_library(li)) {
            run_cases_gemm();
        }
    }
    gemm_library_done();
    run_case("gemm_shapes", case_gemm_shapes);
    run_case("gemm_peak", case_gemm_peak);
    return tap_done();
}

static void run_cases_gemm(void)
{
    run_case("gradient", case_gradient);
    run_case("backward_accumulates", case_backward_accumulates);
    run_case("frozen", case_frozen);
    run_case("prefixes", case_prefixes);
    run_case("eval_forward", case_eval_forward);
    run_case("loss_only", case_loss_only);
    run_case("loss_only_lora", case_loss_only_lora);
    run_case("wide_head", case_wide_head);
    run_case("trunk_mask", case_trunk_mask);
    run_case("features", case_features);
    run_case("set_norm", case_set_norm);
    run_case("save_load", case_save_load);
}
