/*
 * test_model.c - the whole AIM model on the `micro` preset: a finite-
 * difference check of the gradient of every named tensor, frozen tensors,
 * per-image prefixes, parameter table and init, save/load; the sgemm peak
 * on the model's GEMM shapes (aim/prof.h): the shapes add up to the
 * model's forward FLOPs, the peak is the rows' FLOP-weighted rate.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/model.h"
#include "aim/prof.h"
#include "tap.h"

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
            tmax = fmax(tmax, fabs(g[t->offset + k]));
        for (size_t k = 0; k < t->numel; k++)
            worst = fmax(worst, fabs(p->grad[t->offset + k] - g[t->offset + k]) / tmax);
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
    float *g = malloc(p->total * sizeof(float));
    memcpy(g, p->grad, p->total * sizeof(float));
    aim_params_zero_grad(p);
    float lo = aim_model_forward_ex(m, x, prefix, B, AIM_FWD_LOSS_ONLY);
    aim_model_backward(m);
    *dloss = fabs((double)lf - lo) / fabs((double)lf);
    double worst = grad_diff(p, g);
    free(g);
    return worst;
}

int main(void)
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

    /* parameter table of tiny: names, order, count formula */
    aim_config tiny;
    aim_config_preset("tiny", &tiny, &e);
    aim_model *mt = aim_model_new(&tiny, 0, &e);
    aim_params *pt = aim_model_params(mt);
    tap_ok(aim_params_count(pt, 0) == aim_config_trunk_params(&tiny) + aim_config_head_params(&tiny),
           "tiny: table holds %llu values = trunk %llu + head %llu",
           (unsigned long long)aim_params_count(pt, 0),
           (unsigned long long)aim_config_trunk_params(&tiny),
           (unsigned long long)aim_config_head_params(&tiny));
    tap_ok(aim_config_trunk_params(&tiny) + aim_config_head_params(&tiny) > 3200000 &&
               aim_config_trunk_params(&tiny) + aim_config_head_params(&tiny) < 3400000,
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
    /* init: xavier bound, LN = 1/0, biases 0 */
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
    const float *lnw = pt->data + pt->t[aim_params_find(pt, "trunk.blocks.2.norm_2.weight")].offset;
    const float *pb = pt->data + pt->t[aim_params_find(pt, "pixel_head.decoder_pred.bias")].offset;
    tap_ok(lnw[0] == 1 && lnw[191] == 1 && pb[0] == 0 && pb[15] == 0, "LayerNorm 1, biases 0");
    aim_model *mt2 = aim_model_new(&tiny, 0, &e);
    aim_model *mt3 = aim_model_new(&tiny, 1, &e);
    tap_ok(!memcmp(aim_model_params(mt2)->data, pt->data, pt->total * 4) &&
               memcmp(aim_model_params(mt3)->data, pt->data, pt->total * 4),
           "init is deterministic per seed");
    aim_model_free(mt);
    aim_model_free(mt2);
    aim_model_free(mt3);

    /* ------------------------------------------------ whole-model gradient */
    aim_model *m = aim_model_new(&c, 3, &e);
    aim_params *p = aim_model_params(m);
    jitter(p, 11);
    int B = 3, N = aim_config_tokens(&c);
    size_t img = (size_t)c.channels * c.image * c.image;
    float *x = malloc(B * img * sizeof(float));
    int32_t prefix[3];
    random_batch(x, B * img, prefix, B, N, 5);
    prefix[0] = 1;
    prefix[1] = N / 2;
    prefix[2] = N - 1;
    aim_params_zero_grad(p);
    float loss = aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    tap_ok(isfinite(loss) && loss > 0, "micro loss is finite: %.6f", loss);
    float *g = malloc(p->total * sizeof(float));
    memcpy(g, p->grad, p->total * sizeof(float));
    /* check up to 12 elements per tensor, every tensor */
    int all_ok = 1;
    double worst = 0;
    const char *worst_name = "";
    aim_rng r;
    aim_rng_seed(&r, 99);
    for (int i = 0; i < p->n; i++) {
        aim_param *t = &p->t[i];
        int nk = t->numel < 12 ? (int)t->numel : 12;
        double tmax = 0;
        for (size_t k = 0; k < t->numel; k++)
            tmax = fmax(tmax, fabs(g[t->offset + k]));
        int ok = 1;
        for (int j = 0; j < nk; j++) {
            size_t k = t->numel <= 12 ? (size_t)j : aim_rng_below(&r, (uint32_t)t->numel);
            float *w = p->data + t->offset + k;
            float w0 = *w, h = 1e-2f * fmaxf(1.0f, fabsf(w0));
            *w = w0 + h;
            double lp = aim_model_forward(m, x, prefix, B);
            *w = w0 - h;
            double lm = aim_model_forward(m, x, prefix, B);
            *w = w0;
            double num = (lp - lm) / (2.0 * ((double)(w0 + h) - (double)w0));
            double an = g[t->offset + k];
            double err = fabs(an - num) / fmax(fmax(fabs(num), 0.05 * tmax), 1e-4);
            if (err > worst) {
                worst = err;
                worst_name = t->name;
            }
            if (err > 3e-2) {
                ok = 0;
                tap_diag("%s[%zu]: analytic %.6g numeric %.6g", t->name, k, an, num);
            }
        }
        all_ok &= ok;
    }
    tap_ok(all_ok, "finite differences match the gradient of all %d tensors (worst rel %.2e at %s)",
           p->n, worst, worst_name);
    int any_zero_tensor = 0;
    for (int i = 0; i < p->n; i++) {
        double s = 0;
        for (size_t k = 0; k < p->t[i].numel; k++)
            s += fabs(g[p->t[i].offset + k]);
        if (s == 0) {
            any_zero_tensor = 1;
            tap_diag("zero gradient: %s", p->t[i].name);
        }
    }
    tap_ok(!any_zero_tensor, "every tensor receives a gradient");

    /* backward accumulates */
    aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    double maxdiff = 0;
    for (size_t k = 0; k < p->total; k++)
        maxdiff = fmax(maxdiff, fabs(p->grad[k] - 2 * g[k]) / fmax(1e-3, fabs(2 * g[k])));
    tap_ok(maxdiff < 1e-4, "a second backward adds the same gradient again (%.2e)", maxdiff);

    /* frozen tensors get no gradient */
    int ifc = aim_params_find(p, "trunk.blocks.0.mlp.fc1.weight");
    p->t[ifc].flags |= AIM_P_FROZEN;
    aim_params_zero_grad(p);
    aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    double fs = 0;
    for (size_t k = 0; k < p->t[ifc].numel; k++)
        fs += fabs(p->grad[p->t[ifc].offset + k]);
    int iproj = aim_params_find(p, "trunk.blocks.0.attn.proj.weight");
    tap_ok(fs == 0 && p->grad[p->t[iproj].offset] == g[p->t[iproj].offset],
           "a frozen tensor gets no gradient, the others are unchanged");
    p->t[ifc].flags &= ~AIM_P_FROZEN;
    tap_ok(aim_params_count(p, 1) == aim_params_count(p, 0), "nothing frozen any more");

    /* per-image prefixes: each image's loss depends only on its own prefix */
    float l_all = aim_model_forward(m, x, prefix, B);
    double parts = 0, cnt = 0;
    for (int b = 0; b < B; b++) {
        float lb = aim_model_forward(m, x + b * img, &prefix[b], 1);
        parts += (double)lb * (N - prefix[b]);
        cnt += N - prefix[b];
    }
    tap_ok(tap_close(l_all, parts / cnt, 1e-5, 0),
           "batch loss = target-weighted mean of single-image losses (%.7f vs %.7f)", l_all,
           parts / cnt);

    /* batch-size changes reuse or grow the activation slab */
    float l1 = aim_model_forward(m, x, prefix, 1);
    float l1b = aim_model_forward(m, x, prefix, 1);
    tap_ok(l1 == l1b, "forward is deterministic");

    /* the evaluation forward (buffers shared between blocks, the batch cut
     * into chunks handed out to the threads) gives the same loss and
     * predictions, and no backward follows it; depth 3 and head depth 3 so
     * the alternating head buffers are exercised. Not to the bit: B = 3 is
     * split 1 + 2 for training and 2 + 1 in chunks, and the BLAS may sum a
     * row's products in another order at another place in its M tiles. */
    {
        aim_config c3 = c;
        c3.depth = 3;
        c3.head_depth = 3;
        aim_model *m3 = aim_model_new(&c3, 5, &e);
        aim_params *p3 = aim_model_params(m3);
        jitter(p3, 6);
        size_t np = (size_t)B * N * aim_config_patch_dim(&c3);
        float lt = aim_model_forward(m3, x, prefix, B);
        float *pv = aim_xmalloc(np * sizeof(float));
        memcpy(pv, aim_model_predictions(m3), np * sizeof(float));
        /* another batch first, so that nothing left in the buffers can pass
         * for the evaluation pass's own work */
        float *xo = aim_xmalloc((size_t)B * img * sizeof(float));
        int32_t po[sizeof prefix / sizeof *prefix]; /* B of them */
        random_batch(xo, (size_t)B * img, po, B, N, 77);
        aim_model_forward(m3, xo, po, B);
        free(xo);
        float le = aim_model_loss(m3, x, prefix, B);
        double pdiff = 0.0;
        for (size_t k = 0; k < np; k++)
            pdiff = fmax(pdiff, fabs((double)pv[k] - aim_model_predictions(m3)[k]));
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
    }

    /* the loss-only pass (the last block's tail and the head on the loss's
     * rows): the same loss and gradients as the full pass, one to three
     * threads, prefixes from plain causal to one target, with LoRA on the
     * last block; the evaluation form agrees (1-3 threads); no predictions */
    {
        aim_config c3 = c;
        c3.depth = 3;
        c3.head_depth = 3;
        aim_model *m3 = aim_model_new(&c3, 5, &e);
        jitter(aim_model_params(m3), 7);
        int B5 = 5;
        float *x5 = malloc((size_t)B5 * img * sizeof(float));
        int32_t pre5[5];
        random_batch(x5, (size_t)B5 * img, pre5, B5, N, 21);
        float *x5o = malloc((size_t)B5 * img * sizeof(float)); /* another batch */
        int32_t pre5o[5];
        random_batch(x5o, (size_t)B5 * img, pre5o, B5, N, 22);
        pre5[0] = 1;
        pre5[3] = N - 1;
        int nt0 = omp_get_max_threads();
        double wg = 0, wl = 0;
        for (int nt = 1; nt <= 3; nt++) {
            omp_set_num_threads(nt);
            double dl, dg = loss_only_vs_full(m3, x5, pre5, B5, &dl);
            wg = fmax(wg, dg);
            wl = fmax(wl, dl);
            /* a single image: one thread, every BLAS thread */
            dg = loss_only_vs_full(m3, x5 + 3 * img, pre5 + 3, 1, &dl);
            wg = fmax(wg, dg);
            wl = fmax(wl, dl);
        }
        omp_set_num_threads(nt0);
        tap_ok(wl < 1e-6 && wg < 1e-5,
               "loss-only pass = full pass: loss (rel %.1e), every gradient (rel %.1e), 1-3 "
               "threads", wl, wg);
        float l1o = aim_model_forward_ex(m3, x5, pre5, B5, AIM_FWD_LOSS_ONLY);
        const float *nop = aim_model_predictions(m3);
        /* the evaluation form runs in chunks handed out to 1-3 threads (the
         * training form in thread halves): the same loss up to the BLAS's
         * summation order, and the same to the bit when run again */
        double we = 0;
        int again = 1;
        for (int nt = 1; nt <= 3; nt++) {
            omp_set_num_threads(nt);
            aim_model_forward_ex(m3, x5o, pre5o, B5, AIM_FWD_LOSS_ONLY); /* stale buffers */
            float l1e = aim_model_forward_ex(m3, x5, pre5, B5, AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL);
            we = fmax(we, fabs((double)l1e - l1o) / fabs((double)l1o));
            again &= l1e == aim_model_forward_ex(m3, x5, pre5, B5,
                                                 AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL);
            nop = nop ? nop : aim_model_predictions(m3);
        }
        omp_set_num_threads(nt0);
        tap_ok(we < 1e-6 && again && nop == NULL,
               "its evaluation form gives the same loss with 1-3 threads (rel %.1e), the same "
               "to the bit when repeated; no predictions after it", we);
        aim_model_forward(m3, x5, pre5, B5);
        tap_ok(aim_model_predictions(m3) != NULL, "predictions again after a full pass");
        int last = 3;
        int lrc = aim_model_lora_add(m3, 2, 4.0f, &last, 1, 9, &e);
        /* B starts at zero: give it values so the adapter's terms count */
        aim_params *p3 = aim_model_params(m3);
        for (int i = 0; i < p3->n; i++)
            if (strstr(p3->t[i].name, "lora_B"))
                for (size_t k = 0; k < p3->t[i].numel; k++)
                    p3->data[p3->t[i].offset + k] = 0.05f * (float)((k % 7) - 3);
        double dl, dg = loss_only_vs_full(m3, x5, pre5, B5, &dl);
        tap_ok(lrc == 0 && dl < 1e-6 && dg < 1e-5,
               "... with LoRA on the last block (loss rel %.1e, gradients rel %.1e)", dl, dg);
        /* finite differences straight on the loss-only pass, a few values
         * of each tensor of the last block and the head */
        aim_params_zero_grad(p3);
        aim_model_forward_ex(m3, x5, pre5, B5, AIM_FWD_LOSS_ONLY);
        aim_model_backward(m3);
        float *g3 = malloc(p3->total * sizeof(float));
        memcpy(g3, p3->grad, p3->total * sizeof(float));
        double fdw = 0;
        for (int i = 0; i < p3->n; i++) {
            const aim_param *t = &p3->t[i];
            if (!strstr(t->name, "blocks.2.") && strncmp(t->name, "pixel_head", 10) &&
                strncmp(t->name, "trunk.post", 10))
                continue;
            double tmax = 0;
            for (size_t k = 0; k < t->numel; k++)
                tmax = fmax(tmax, fabs(g3[t->offset + k]));
            for (size_t k = 0; k < t->numel && k < 3 * 97; k += 97) {
                float *w = p3->data + t->offset + k;
                float w0 = *w, h = 1e-2f * fmaxf(1.0f, fabsf(w0));
                *w = w0 + h;
                double lp = aim_model_forward_ex(m3, x5, pre5, B5, AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL);
                *w = w0 - h;
                double lm = aim_model_forward_ex(m3, x5, pre5, B5, AIM_FWD_LOSS_ONLY | AIM_FWD_EVAL);
                *w = w0;
                double num = (lp - lm) / (2.0 * ((double)(w0 + h) - (double)w0));
                double err = fabs(g3[t->offset + k] - num) / fmax(fmax(fabs(num), 0.05 * tmax), 1e-4);
                if (err > 3e-2)
                    tap_diag("%s[%zu]: analytic %.6g numeric %.6g", t->name, k,
                             g3[t->offset + k], num);
                fdw = fmax(fdw, err);
            }
        }
        tap_ok(fdw < 3e-2, "finite differences on the loss-only pass (last block, head: worst rel %.2e)",
               fdw);
        free(g3);
        free(x5);
        free(x5o);
        aim_model_free(m3);
    }

    /* a pixel head wider than the trunk: the trunk's MLPs and the head's
     * share one gradient scratch whose rows are as wide as the wider, and
     * each thread works on its own rows of it. The same gradients with 1-3
     * threads, full and loss-only passes. */
    {
        aim_config cw = c;
        cw.head_width = 4 * c.width;
        aim_model *mw = aim_model_new(&cw, 11, &e);
        aim_params *pw = aim_model_params(mw);
        jitter(pw, 12);
        enum { B6 = 6 };
        float *x6 = malloc((size_t)B6 * img * sizeof(float));
        int32_t pre6[B6];
        random_batch(x6, (size_t)B6 * img, pre6, B6, N, 23);
        float *g1 = malloc(pw->total * sizeof(float));
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
                    wd = fmax(wd, grad_diff(pw, g1));
            }
        omp_set_num_threads(nt0);
        tap_ok(wd < 1e-5,
               "head width %d > width %d: the same gradients with 1-3 threads, full and "
               "loss-only passes (rel %.1e)",
               cw.head_width, cw.width, wd);
        free(g1);
        free(x6);
        aim_model_free(mw);
    }

    /* trunk features: no mask by default */
    const float *f1 = aim_model_trunk(m, x, NULL, 1, 1);
    float f10 = f1[0];
    x[img - 1] += 1.0f; /* last pixel changes the last patch only */
    f1 = aim_model_trunk(m, x, NULL, 1, 1);
    tap_ok(f1[0] != f10, "bidirectional trunk: token 0 sees the last patch");
    int32_t causal = 1;
    const float *f2 = aim_model_trunk(m, x, &causal, 1, 1);
    float f20 = f2[0];
    x[img - 1] -= 1.0f;
    f2 = aim_model_trunk(m, x, &causal, 1, 1);
    tap_ok(f2[0] == f20, "causal trunk: token 0 does not see the last patch");

    /* features: the average of the listed blocks' raw outputs, no mask */
    {
        const aim_config *mc = aim_model_config(m);
        size_t nd = (size_t)2 * aim_config_tokens(mc) * mc->width;
        float *avg = malloc(nd * sizeof *avg), *b1 = malloc(nd * sizeof *b1);
        memcpy(b1, aim_model_trunk(m, x, NULL, 2, 1), nd * sizeof *b1);
        const float *b2 = aim_model_trunk(m, x, NULL, 2, 2);
        int blocks[2] = {2, 1};
        int rc = aim_model_features(m, x, 2, blocks, 2, avg, &e);
        double dmax = 0;
        for (size_t k = 0; k < nd; k++)
            dmax = fmax(dmax, fabs(avg[k] - 0.5 * (b1[k] + b2[k])));
        tap_ok(rc == 0 && dmax < 1e-6, "features of blocks {2,1} = mean of the two outputs (%.2g)",
               dmax);
        blocks[1] = 3;
        tap_ok(aim_model_features(m, x, 2, blocks, 2, avg, &e) == -1 &&
                   tap_contains(e.msg, "block 3 is outside 1..2"),
               "a block past the depth is refused: %s", e.msg);
        free(avg);
        free(b1);
    }

    /* input normalisation recorded in the config */
    {
        float mean[3] = {0.1f, 0.2f, 0.3f}, std[3] = {0.5f, 0.5f, 0.5f}, zstd[3] = {1, 0, 1};
        tap_ok(aim_model_set_norm(m, 3, mean, zstd, &e) == -1 && aim_model_config(m)->nmean == 0,
               "a zero std is refused and leaves the config: %s", e.msg);
        tap_ok(aim_model_set_norm(m, 3, mean, std, &e) == 0 &&
                   aim_model_config(m)->nmean == 3 && aim_model_config(m)->mean[2] == 0.3f,
               "set_norm records mean/std");
    }

    /* save / load */
    const char *path = tap_path("micro.safetensors");
    tap_ok(aim_model_save(m, path, &e) == 0, "save");
    aim_model *m2 = aim_model_load(path, &e);
    tap_ok(m2 != NULL, "load: %s", m2 ? "ok" : e.msg);
    if (m2) {
        tap_ok(!memcmp(aim_model_params(m2)->data, p->data, p->total * 4),
               "loaded weights are bit-identical");
        tap_ok(aim_model_forward(m2, x, prefix, B) == aim_model_forward(m, x, prefix, B),
               "loaded model gives the same loss");
        aim_model_free(m2);
    }
    tap_ok(aim_model_load(tap_path("none.safetensors"), &e) == NULL &&
               tap_contains(e.msg, "none.safetensors"),
           "missing file: %s", e.msg);

    /* the sgemm peak on the model's shapes: structure, never speed */
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

    free(g);
    free(x);
    aim_model_free(m);
    return tap_done();
}
