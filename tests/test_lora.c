/*
 * test_lora.c - LoRA adapters (shared/AIM.md, loralib conventions) on a
 * small trunk: the table entries and their shapes, a new adapter (B = 0)
 * changes nothing, finite differences for every adapter through both the
 * pixel loss and the feature path (features_train / features_backward, the
 * gradient entering at every probed block), the frozen trunk, merge and
 * unmerge, save and load (with the trunk, alone, merged) and bad files.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "aim/io.h"
#include "aim/model.h"
#include "aim/probe.h"
#include "aim/train.h"
#include "tap.h"

static void randn(float *x, size_t n, uint64_t seed, float scale)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)aim_rng_normal(&r);
}

/* adapters (or everything) moved off their init, so every term is visible */
static void jitter(aim_params *p, unsigned need_flag, uint64_t seed, float scale)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    for (int i = 0; i < p->n; i++) {
        if (need_flag && !(p->t[i].flags & need_flag))
            continue;
        for (size_t k = 0; k < p->t[i].numel; k++)
            p->data[p->t[i].offset + k] += scale * (float)aim_rng_normal(&r);
    }
}

/* the scalar the feature path is checked with: sum(features * R) */
static double feat_objective(aim_model *m, const float *x, int B, const int *bl, int nb,
                             const float *R, float *f, size_t n)
{
    aim_err e;
    if (aim_model_features_train(m, x, B, bl, nb, f, &e) != 0)
        return NAN;
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += (double)f[k] * R[k];
    return s;
}

typedef double (*objective)(void *ctx);

/* central differences on up to `per` values of every tensor matching the
 * filter; returns the worst relative error */
static double fd_check(aim_params *p, const float *g, unsigned only_flag, int skip_frozen,
                       int per, objective f, void *ctx, int *checked, const char **worst_at)
{
    aim_rng r;
    aim_rng_seed(&r, 4242);
    double worst = 0;
    *checked = 0;
    for (int i = 0; i < p->n; i++) {
        aim_param *t = &p->t[i];
        if ((only_flag && !(t->flags & only_flag)) || (skip_frozen && (t->flags & AIM_P_FROZEN)))
            continue;
        double tmax = 0;
        for (size_t k = 0; k < t->numel; k++)
            tmax = tap_worse(tmax, fabs(g[t->offset + k]));
        int nk = t->numel < (size_t)per ? (int)t->numel : per;
        for (int j = 0; j < nk; j++) {
            size_t k = aim_rng_below(&r, (uint32_t)t->numel);
            float *w = p->data + t->offset + k;
            float w0 = *w, h = 1e-2f * fmaxf(1.0f, fabsf(w0));
            *w = w0 + h;
            double lp = f(ctx);
            *w = w0 - h;
            double lm = f(ctx);
            *w = w0;
            double num = (lp - lm) / (2.0 * ((double)(w0 + h) - (double)w0));
            double an = g[t->offset + k];
            double err = fabs(an - num) / fmax(fmax(fabs(num), 0.05 * tmax), 1e-4);
            if (!isnan(worst) && !(err <= worst)) { /* a NaN is the worst */
                worst = err;
                *worst_at = t->name;
            }
            if (err > 3e-2)
                tap_diag("%s[%zu]: analytic %.6g numeric %.6g", t->name, k, an, num);
        }
        (*checked)++;
    }
    return worst;
}

typedef struct loss_ctx {
    aim_model *m;
    const float *x;
    const int32_t *prefix;
    int B;
} loss_ctx;

static double loss_obj(void *ctx)
{
    loss_ctx *c = ctx;
    return aim_model_forward(c->m, c->x, c->prefix, c->B);
}

typedef struct feat_ctx {
    aim_model *m;
    const float *x;
    int B;
    const int *bl;
    int nb;
    const float *R;
    float *f;
    size_t n;
} feat_ctx;

static double feat_obj(void *ctx)
{
    feat_ctx *c = ctx;
    return feat_objective(c->m, c->x, c->B, c->bl, c->nb, c->R, c->f, c->n);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t k = 0; k < n; k++)
        d = tap_worse(d, fabs((double)a[k] - b[k]));
    return d;
}

/* ------------------------------------------------ the job's next-patch loss */
typedef struct epochs_seen {
    int n;
    float val[8];
    int64_t step[8];
    int head_given;
} epochs_seen;

static int record_epoch(void *ctx, const aim_lora_epoch *ep)
{
    epochs_seen *s = ctx;
    if (s->n < 8 && ep->epoch == s->n) {
        s->val[s->n] = ep->val_loss;
        s->step[s->n] = ep->step;
        s->head_given += ep->head != NULL && ep->nprobe == 1 && ep->probe_blocks[0] == 2;
        s->n++;
    }
    return 0;
}

/* aim_lora_run measures the next-patch loss of the adapted model on the
 * first val_images test images before the first step (epoch 0) and after
 * every epoch: before, the adapters are zero (lora_B = 0), so it is exactly
 * pretraining's validation loss of the plain trunk on the same images and
 * prefixes; after, the trunk has changed and so has the loss */
static void job_next_patch_loss(void)
{
    aim_err e;
    aim_config c;
    aim_config_preset("micro", &c, &e);
    c.image = 8;
    c.patch = 2;
    c.depth = 2;
    aim_model *m = aim_model_new(&c, 7, &e);
    aim_synth_opts to = {.n = 96, .c = c.channels, .h = 8, .w = 8, .seed = 3};
    aim_synth_opts vo = {.n = 40, .c = c.channels, .h = 8, .w = 8, .seed = 4};
    aim_dataset *tr = aim_data_synthetic(&to, &e), *te = aim_data_synthetic(&vo, &e);
    const int batch = 16, nval = 24;
    float *x = malloc((size_t)batch * c.channels * 64 * sizeof(float));
    int32_t pre[16];
    float before = aim_validation_loss(m, te, nval, batch, 5, x, pre);
    aim_lora_job j;
    aim_lora_job_default(&j);
    j.rank = 2;
    j.epochs = 2;
    j.batch = batch;
    j.lr = 2e-2f;
    j.seed = 5;
    j.val_images = nval;
    j.nprobe = 1;
    j.probe_blocks[0] = 2;
    epochs_seen seen = {0};
    j.on_epoch = record_epoch;
    j.ctx = &seen;
    aim_lora_result r;
    int rc = aim_lora_run(m, tr, te, &j, &r, &e);
    tap_ok(rc == 0 && seen.n == 3 && seen.step[0] == 0 && seen.step[1] == 96 / batch &&
               seen.step[2] == 2 * (96 / batch) && seen.head_given == 3,
           "on_epoch: epoch 0 before the first step, then each epoch with its steps and the head "
           "(%d calls: %s)", seen.n, rc ? e.msg : "ok");
    tap_ok(seen.val[0] == before && r.val_loss_start == before,
           "epoch 0's next-patch loss is the plain trunk's validation loss (%.6f = %.6f)",
           seen.val[0], before);
    tap_ok(isfinite(seen.val[2]) && seen.val[2] != seen.val[0] && r.val_loss == seen.val[2],
           "after LoRA the next-patch loss has moved (%.6f -> %.6f)", seen.val[0], seen.val[2]);
    aim_probe_free(r.probe);
    aim_model_free(m);
    m = aim_model_new(&c, 7, &e);
    j.val_images = 0;
    seen = (epochs_seen){0};
    rc = aim_lora_run(m, tr, te, &j, &r, &e);
    tap_ok(rc == 0 && seen.n == 3 && isnan(seen.val[0]) && isnan(seen.val[2]) &&
               isnan(r.val_loss),
           "val_images = 0: no next-patch loss (NaN)");
    aim_probe_free(r.probe);
    aim_model_free(m);
    aim_dataset_free(tr);
    aim_dataset_free(te);
    free(x);
}

int main(void)
{
    aim_err e;
    aim_config c;
    aim_config_preset("micro", &c, &e);
    c.depth = 3;
    aim_model *m = aim_model_new(&c, 5, &e);
    aim_params *p = aim_model_params(m);
    jitter(p, 0, 1, 0.1f);
    const int B = 3, N = aim_config_tokens(&c), D = c.width;
    const size_t img = (size_t)c.channels * c.image * c.image, nf = (size_t)B * N * D;
    float *x = malloc(B * img * sizeof(float));
    randn(x, B * img, 2, 1.0f);
    int32_t prefix[3] = {1, N / 2, N - 1};
    const int fb[2] = {1, 3}; /* features of blocks 1 and 3 */
    float *f0 = malloc(nf * sizeof(float)), *f1 = malloc(nf * sizeof(float));

    /* ------------------------------------------------ adding adapters */
    float l0 = aim_model_forward(m, x, prefix, B);
    aim_model_features(m, x, B, fb, 2, f0, &e);
    size_t base_total = aim_params_count(p, 0);
    const int lb[2] = {2, 3};
    tap_ok(aim_model_lora_add(m, 0, 1, NULL, 0, 0, &e) == -1 && tap_contains(e.msg, "rank 0"),
           "rank 0 is refused: %s", e.msg);
    tap_ok(aim_model_lora_add(m, 2, 1, (int[]){4}, 1, 0, &e) == -1 &&
               tap_contains(e.msg, "block 4 is not in 1..3"),
           "a block outside the trunk is refused: %s", e.msg);
    tap_ok(aim_model_lora_add(m, 2, 4.0f, lb, 2, 7, &e) == 0, "rank 2, alpha 4 on blocks 2, 3");
    tap_ok(aim_model_lora_add(m, 2, 4.0f, lb, 2, 7, &e) == -1 &&
               tap_contains(e.msg, "already has adapters"),
           "adapters cannot be added twice");
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    tap_ok(li.rank == 2 && li.alpha == 4.0f && li.nblocks == 2 && li.blocks[0] == 2 &&
               li.blocks[1] == 3 && li.params == 2 * 6 * 2 * (uint64_t)D &&
               aim_params_count(p, 0) == base_total + li.params,
           "info: rank, alpha, blocks and 6 r D values per block (%llu)",
           (unsigned long long)li.params);
    int iqa = aim_params_find(p, "trunk.blocks.1.attn.qkv.lora_A");
    int iqb = aim_params_find(p, "trunk.blocks.1.attn.qkv.lora_B");
    int ipa = aim_params_find(p, "trunk.blocks.2.attn.proj.lora_A");
    int ipb = aim_params_find(p, "trunk.blocks.2.attn.proj.lora_B");
    tap_ok(iqa >= 0 && p->t[iqa].shape[0] == 4 && p->t[iqa].shape[1] == D && iqb >= 0 &&
               p->t[iqb].shape[0] == 2 * D && p->t[iqb].shape[1] == 2 && ipa >= 0 &&
               p->t[ipa].shape[0] == 2 && p->t[ipa].shape[1] == D && ipb >= 0 &&
               p->t[ipb].shape[0] == D && p->t[ipb].shape[1] == 2 &&
               aim_params_find(p, "trunk.blocks.0.attn.qkv.lora_A") < 0,
           "AIM.md names and shapes: qkv A [2r,D] B [2D,r], proj A [r,D] B [D,r]");
    double bsum = 0, amax = 0;
    for (size_t k = 0; k < p->t[iqb].numel; k++)
        bsum += fabs(p->data[p->t[iqb].offset + k]);
    for (size_t k = 0; k < p->t[iqa].numel; k++)
        amax = tap_worse(amax, fabs(p->data[p->t[iqa].offset + k]));
    tap_ok(bsum == 0 && amax > 0 && amax <= 1.0 / sqrt(D),
           "B starts at zero, A uniform within 1/sqrt(D) (max %.3f)", amax);
    float l1 = aim_model_forward(m, x, prefix, B);
    aim_model_features(m, x, B, fb, 2, f1, &e);
    tap_ok(l1 == l0 && max_abs_diff(f0, f1, nf) == 0,
           "with B = 0 the loss and the features are unchanged (%.9g, %.9g)", l0, l1);

    /* ------------------------------------------------ gradients, pixel loss */
    jitter(p, AIM_P_LORA, 3, 0.3f);
    float l2 = aim_model_forward(m, x, prefix, B);
    tap_ok(fabsf(l2 - l0) > 1e-4f, "adapters with B != 0 change the loss (%.6g -> %.6g)", l0, l2);
    aim_params_zero_grad(p);
    aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    float *g = malloc(p->total * sizeof(float));
    memcpy(g, p->grad, p->total * sizeof(float));
    loss_ctx lc = {m, x, prefix, B};
    int checked;
    const char *at = "";
    double worst = fd_check(p, g, 0, 0, 6, loss_obj, &lc, &checked, &at);
    tap_ok(worst < 3e-2, "pixel loss: finite differences match all %d tensors, adapters "
                         "included (worst rel %.2e at %s)", checked, worst, at);

    /* frozen trunk: only the adapters get gradients */
    aim_model_lora_freeze_trunk(m);
    tap_ok(aim_params_count(p, 1) == li.params, "frozen trunk: %llu trainable values = adapters",
           (unsigned long long)aim_params_count(p, 1));
    aim_params_zero_grad(p);
    aim_model_forward(m, x, prefix, B);
    aim_model_backward(m);
    double frozen_sum = 0, lora_diff = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        for (size_t k = 0; k < t->numel; k++) {
            if (t->flags & AIM_P_LORA)
                lora_diff = tap_worse(lora_diff, fabs(p->grad[t->offset + k] - g[t->offset + k]));
            else
                frozen_sum += fabs(p->grad[t->offset + k]);
        }
    }
    tap_ok(frozen_sum == 0 && lora_diff < 1e-5,
           "frozen trunk: no gradient outside the adapters, theirs as before (%.2g)", lora_diff);

    /* ------------------------------------------------ the feature path */
    float *R = malloc(nf * sizeof(float));
    randn(R, nf, 9, 1.0f);
    aim_model_features(m, x, B, fb, 2, f0, &e);
    aim_model_features_train(m, x, B, fb, 2, f1, &e);
    /* features run in chunks, features_train in thread halves: the same up
     * to the BLAS's summation order (see tests/test_model.c) */
    double fdiff = max_abs_diff(f0, f1, nf);
    tap_ok(fdiff < 1e-5, "features_train gives the same features (%.1e)", fdiff);
    tap_ok(aim_model_features_train(m, x, B, (int[]){0}, 1, f1, &e) == -1 &&
               tap_contains(e.msg, "block 0"),
           "features_train: a bad block is an error: %s", e.msg);
    aim_params_zero_grad(p);
    feat_objective(m, x, B, fb, 2, R, f1, nf);
    aim_model_features_backward(m, R);
    memcpy(g, p->grad, p->total * sizeof(float));
    feat_ctx fc = {m, x, B, fb, 2, R, f1, nf};
    worst = fd_check(p, g, AIM_P_LORA, 0, 8, feat_obj, &fc, &checked, &at);
    tap_ok(worst < 3e-2 && checked == 8,
           "features backward: finite differences match all %d adapter tensors (worst rel %.2e "
           "at %s)", checked, worst, at);
    /* the whole trunk trainable: the gradient enters at blocks 3 and 1 */
    for (int i = 0; i < p->n; i++)
        p->t[i].flags &= ~(unsigned)AIM_P_FROZEN;
    aim_params_zero_grad(p);
    feat_objective(m, x, B, fb, 2, R, f1, nf);
    aim_model_features_backward(m, R);
    memcpy(g, p->grad, p->total * sizeof(float));
    int trunk_n = 0;
    double head_sum = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        int head = !strncmp(t->name, "pixel_head.", 11) || !strncmp(t->name, "trunk.post", 10);
        for (size_t k = 0; head && k < t->numel; k++)
            head_sum += fabs(g[t->offset + k]);
        trunk_n += !head;
    }
    worst = fd_check(p, g, 0, 0, 4, feat_obj, &fc, &checked, &at);
    tap_ok(worst < 3e-2 && head_sum == 0,
           "features backward, whole trunk: finite differences match all %d tensors (worst rel "
           "%.2e at %s), the pixel head and post norm get none", checked, worst, at);
    int ifc3 = aim_params_find(p, "trunk.blocks.2.mlp.fc2.weight");
    double g3 = 0;
    for (size_t k = 0; k < p->t[ifc3].numel; k++)
        g3 += fabs(g[p->t[ifc3].offset + k]);
    tap_ok(g3 > 0 && trunk_n > 0, "the deepest probed block gets a gradient");

    /* ------------------------------------------------ merge / unmerge */
    aim_model_lora_freeze_trunk(m);
    float *w0 = malloc(p->total * sizeof(float));
    memcpy(w0, p->data, p->total * sizeof(float));
    float lu = aim_model_forward(m, x, prefix, B);
    aim_model_features(m, x, B, fb, 2, f0, &e);
    tap_ok(aim_model_lora_merge(m, &e) == 0, "merge");
    aim_model_lora_info(m, &li);
    float lmg = aim_model_forward(m, x, prefix, B);
    aim_model_features(m, x, B, fb, 2, f1, &e);
    tap_ok(li.merged && fabsf(lmg - lu) < 1e-5f * fabsf(lu) && max_abs_diff(f0, f1, nf) < 1e-4,
           "merged and unmerged agree: loss %.8g vs %.8g, features %.2g", lu, lmg,
           max_abs_diff(f0, f1, nf));
    int iqkv = aim_params_find(p, "trunk.blocks.1.attn.qkv.weight");
    tap_ok(max_abs_diff(p->data + p->t[iqkv].offset, w0 + p->t[iqkv].offset,
                        p->t[iqkv].numel) > 1e-4,
           "merge changes the adapted weights");
    tap_ok(aim_model_lora_merge(m, &e) == -1 && tap_contains(e.msg, "already"),
           "merging twice is refused");
    /* saved while merged: the file holds the base weights and the adapters */
    const char *pm = tap_path("merged.safetensors");
    tap_ok(aim_model_save(m, pm, &e) == 0, "save while merged");
    int un = aim_model_lora_unmerge(m, &e);
    double wd = max_abs_diff(p->data, w0, p->total);
    tap_ok(un == 0 && wd < 1e-6, "unmerge restores the weights (%.2g)", wd);
    tap_ok(aim_model_lora_unmerge(m, &e) == -1, "unmerging twice is refused");
    lu = aim_model_forward(m, x, prefix, B); /* after the round trip */

    /* ------------------------------------------------ files */
    const char *pw = tap_path("lora_model.safetensors");
    tap_ok(aim_model_save(m, pw, &e) == 0, "save trunk + adapters");
    aim_model *m2 = aim_model_load(pw, &e);
    tap_ok(m2 != NULL, "load trunk + adapters: %s", m2 ? "ok" : e.msg);
    if (m2) {
        aim_lora_info l2i;
        aim_model_lora_info(m2, &l2i);
        float lm2 = aim_model_forward(m2, x, prefix, B);
        tap_ok(l2i.rank == 2 && l2i.alpha == 4.0f && l2i.nblocks == 2 && lm2 == lu,
               "loaded: rank 2, alpha 4, blocks 2-3, the same loss (%.9g)", lm2);
    }
    aim_model *m3 = aim_model_load(pm, &e);
    float lm3 = m3 ? aim_model_forward(m3, x, prefix, B) : NAN;
    tap_ok(fabsf(lm3 - lu) < 1e-6f * fabsf(lu),
           "a model saved merged loads unmerged, with the same loss (%.9g vs %.9g)", lm3, lu);
    aim_model_free(m3);
    const char *pa = tap_path("adapters.safetensors");
    tap_ok(aim_model_save_lora(m, pa, &e) == 0, "save adapters alone");
    aim_st_file *sf = aim_st_open(pa, &e);
    tap_ok(sf && sf->ntensors == 8 && aim_st_meta(sf, "lora_rank") &&
               !strcmp(aim_st_meta(sf, "lora_rank"), "2") &&
               !strcmp(aim_st_meta(sf, "lora_alpha"), "4"),
           "the adapters file: 8 tensors, lora_rank 2, lora_alpha 4");
    aim_st_close(sf);
    /* the trunk alone, then the adapters onto it */
    aim_model *base = aim_model_new(&c, 5, &e);
    memcpy(aim_model_params(base)->data, p->data, aim_model_params(base)->total * sizeof(float));
    const char *pb = tap_path("base.safetensors");
    aim_model_save(base, pb, &e);
    aim_model_free(base);
    aim_model *m4 = aim_model_load(pb, &e);
    aim_model_lora_info(m4, &li);
    tap_ok(li.rank == 0, "a trunk without adapters loads without them");
    tap_ok(aim_model_load_lora(m4, pa, &e) == 0 && aim_model_forward(m4, x, prefix, B) == lu,
           "adapters loaded onto the trunk give the same loss");
    tap_ok(aim_model_load_lora(m4, pa, &e) == -1 && tap_contains(e.msg, "already"),
           "loading adapters twice is refused: %s", e.msg);
    aim_model_free(m4);
    aim_config c2 = c;
    c2.depth = 2;
    aim_model *m5 = aim_model_new(&c2, 1, &e);
    tap_ok(aim_model_load_lora(m5, pa, &e) == -1 && tap_contains(e.msg, "adapters.safetensors") &&
               tap_contains(e.msg, "L=3"),
           "adapters for another trunk are refused: %s", e.msg);
    aim_model_lora_info(m5, &li);
    tap_ok(li.rank == 0, "... and the model is unchanged");
    aim_model_free(m5);

    /* a file whose adapter has the wrong shape: an error, the model unchanged */
    {
        aim_model *ml = aim_model_load(pb, &e);
        aim_st_entry ent[2];
        float z[4 * 16] = {0};
        char vals[AIM_CONFIG_META_MAX][160];
        const char *kv[2 * AIM_CONFIG_META_MAX];
        int nm = aim_config_to_meta(&c, vals, kv);
        memset(ent, 0, sizeof ent);
        ent[0].name = "trunk.blocks.0.attn.qkv.lora_A";
        ent[0].dtype = AIM_F32;
        ent[0].ndim = 2;
        ent[0].shape[0] = 4;
        ent[0].shape[1] = 16;
        ent[0].data = z;
        ent[1] = ent[0];
        ent[1].name = "trunk.blocks.0.attn.qkv.lora_B";
        ent[1].shape[0] = 4; /* should be [2D, r] = [32, 2] */
        const char *pbad = tap_path("bad_lora.safetensors");
        aim_st_write(pbad, ent, 2, kv, nm, &e);
        tap_ok(aim_model_load_lora(ml, pbad, &e) == -1 &&
                   tap_contains(e.msg, "trunk.blocks.0.attn.qkv.lora_B"),
               "an adapter of the wrong shape is named: %s", e.msg);
        aim_model_lora_info(ml, &li);
        tap_ok(li.rank == 0, "... and the model keeps no half-loaded adapters");
        ent[1].shape[0] = 32;
        ent[1].shape[1] = 2;
        ent[1].name = "trunk.blocks.0.attn.proj.lora_Q";
        aim_st_write(pbad, ent, 2, kv, nm, &e);
        tap_ok(aim_model_load(pbad, &e) == NULL && tap_contains(e.msg, "lora_Q"),
               "an unknown LoRA name is an error: %s", e.msg);
        aim_model_free(ml);
    }

    aim_model_free(m2);
    aim_model_free(m);
    free(x);
    free(f0);
    free(f1);
    free(g);
    free(R);
    free(w0);
    job_next_patch_loss();
    return tap_done();
}
