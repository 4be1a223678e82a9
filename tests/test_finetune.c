/*
 * test_finetune.c - full fine-tuning (aim/finetune.h) on a micro trunk:
 * the smoothed cross-entropy against a double-precision reference and by
 * finite differences (alone and through the attentive probe), AdamW's
 * per-tensor lr factor against separate steps, the layer-wise factors of
 * every tensor, one step of the job moving each trained tensor by its own
 * lr (the head's undecayed) and nothing else, training that learns, the
 * same seed giving the same weights, and the errors. The trunk gradients of
 * the features path this job uses are checked by finite differences in
 * tests/test_lora.c ("features backward, whole trunk").
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "aim/finetune.h"
#include "aim/model.h"
#include "aim/nn.h"
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

/* ------------------------------------------------------------ label smoothing */
static void smoothing(void)
{
    enum { B = 3, K = 5 };
    float logits[B * K], probs[B * K], dl[B * K];
    const int32_t lab[B] = {0, 3, 4};
    randn(logits, B * K, 1, 2.0f);
    const float eps = 0.1f;
    /* the reference in double: -sum_k q_k log p_k */
    double ref = 0;
    for (int b = 0; b < B; b++) {
        double mx = -1e30, s = 0;
        for (int k = 0; k < K; k++)
            mx = tap_worse(mx, logits[b * K + k]);
        for (int k = 0; k < K; k++)
            s += exp(logits[b * K + k] - mx);
        for (int k = 0; k < K; k++) {
            double q = (k == lab[b] ? 1.0 - eps : 0.0) + eps / K;
            ref -= q * (logits[b * K + k] - mx - log(s));
        }
    }
    ref /= B;
    float l = xent_smooth_forward(probs, logits, lab, B, K, eps, NULL);
    tap_ok(fabs(l - ref) < 1e-5 * fabs(ref), "smoothed cross-entropy %.7f = reference %.7f", l,
           ref);
    float l0 = xent_smooth_forward(probs, logits, lab, B, K, 0, NULL);
    float lp = xent_forward(probs, logits, lab, B, K, NULL);
    tap_ok(l0 == lp, "eps = 0 is the plain cross-entropy (%.7f)", l0);
    xent_smooth_forward(probs, logits, lab, B, K, eps, NULL);
    memset(dl, 0, sizeof dl);
    xent_smooth_backward(dl, probs, lab, B, K, eps, 1.0f);
    double worst = 0;
    for (int i = 0; i < B * K; i++) {
        float keep = logits[i], h = 1e-2f;
        logits[i] = keep + h;
        double up = xent_smooth_forward(probs, logits, lab, B, K, eps, NULL);
        logits[i] = keep - h;
        double dn = xent_smooth_forward(probs, logits, lab, B, K, eps, NULL);
        logits[i] = keep;
        double fd = (up - dn) / (2 * h);
        worst = tap_worse(worst, fabs(fd - dl[i]) / fmax(1e-3, fabs(fd) + fabs(dl[i])));
    }
    tap_ok(worst < 1e-2, "smoothed cross-entropy: finite differences match every logit (worst "
                         "rel %.2e)", worst);

    /* through the attentive probe: the features' gradient */
    const int N = 4, D = 8, NH = 2, PB = 6, PK = 3;
    aim_err e;
    aim_probe *p = aim_probe_new(AIM_PROBE_ATTENTIVE, N, D, NH, PK, 3, &e);
    aim_probe_set_label_smoothing(p, 0.2f);
    float *f = malloc((size_t)PB * N * D * sizeof(float));
    float *df = calloc((size_t)PB * N * D, sizeof(float));
    randn(f, (size_t)PB * N * D, 4, 1.0f);
    const int32_t pl[6] = {0, 1, 2, 0, 1, 2};
    aim_params_zero_grad(aim_probe_params(p));
    aim_probe_forward(p, f, pl, PB, 1, NULL);
    aim_probe_backward(p, df);
    worst = 0;
    for (int i = 0; i < PB * N * D; i += 7) {
        float keep = f[i], h = 1e-2f;
        f[i] = keep + h;
        double up = aim_probe_forward(p, f, pl, PB, 1, NULL);
        f[i] = keep - h;
        double dn = aim_probe_forward(p, f, pl, PB, 1, NULL);
        f[i] = keep;
        double fd = (up - dn) / (2 * h);
        worst = tap_worse(worst, fabs(fd - df[i]) / fmax(1e-3, fabs(fd) + fabs(df[i])));
    }
    tap_ok(worst < 3e-2, "attentive probe with label smoothing 0.2: finite differences match the "
                         "features' gradient (worst rel %.2e)", worst);
    aim_probe_free(p);
    free(f);
    free(df);
}

/* ------------------------------------------------------------ AdamW's lr factor */
static void lr_scale(void)
{
    aim_params a = {0}, b = {0};
    const int64_t sh[1] = {37};
    for (int i = 0; i < 3; i++) {
        aim_params_add(&a, i == 1 ? "half" : i == 2 ? "frozen" : "one", 1, sh,
                       AIM_P_DECAY | (i == 2 ? AIM_P_FROZEN : 0));
        aim_params_add(&b, i == 1 ? "half" : i == 2 ? "frozen" : "one", 1, sh,
                       AIM_P_DECAY | (i == 2 ? AIM_P_FROZEN : 0));
    }
    aim_params_alloc(&a);
    aim_params_alloc(&b);
    randn(a.data, a.total, 5, 1.0f);
    randn(a.grad, a.total, 6, 1.0f);
    memcpy(b.data, a.data, a.total * sizeof(float));
    memcpy(b.grad, a.grad, a.total * sizeof(float));
    const float scale[3] = {1.0f, 0.5f, 0.25f};
    aim_adamw_opts o;
    aim_adamw_opts_default(&o);
    o.weight_decay = 0.1f;
    aim_adamw_opts os = o;
    os.lr_scale = scale;
    const float lr = 1e-2f;
    for (int t = 1; t <= 3; t++)
        aim_adamw_step(&a, &os, lr, t);
    /* the same with separate steps: tensor "half" alone at lr / 2 */
    for (int t = 1; t <= 3; t++) {
        b.t[1].flags |= AIM_P_FROZEN;
        aim_adamw_step(&b, &o, lr, t);
        b.t[1].flags &= ~(unsigned)AIM_P_FROZEN;
        b.t[0].flags |= AIM_P_FROZEN;
        aim_adamw_step(&b, &o, lr * 0.5f, t);
        b.t[0].flags &= ~(unsigned)AIM_P_FROZEN;
    }
    tap_ok(!memcmp(a.data, b.data, a.total * sizeof(float)) &&
               !memcmp(a.m, b.m, a.total * sizeof(float)),
           "lr_scale {1, 0.5}: three steps give the bits of stepping each tensor at its own lr "
           "(its weight decay scaled too); the frozen one stays");
    aim_params_free(&a);
    aim_params_free(&b);
}

/* ------------------------------------------------------------ the job */
typedef struct world {
    aim_config c;
    aim_dataset *tr, *te;
    aim_model *base;
} world;

static int count_epochs(void *ctx, const aim_lora_epoch *ep)
{
    int *n = ctx;
    *n += ep->epoch > 0;
    return 0;
}

static void layer_factors(const world *w)
{
    aim_err e;
    aim_config c = w->c;
    c.depth = 4;
    aim_model *m = aim_model_new(&c, 1, &e);
    const aim_params *p = aim_model_params(m);
    float *s = malloc((size_t)p->n * sizeof *s);
    const int pb[2] = {2, 3};
    int top = aim_finetune_lr_scales(m, pb, 2, 0.5f, s);
    int bad = 0, n_embed = 0, n_frozen = 0;
    for (int i = 0; i < p->n; i++) {
        const char *name = p->t[i].name;
        int b = -1;
        float want = 0;
        if (!strncmp(name, "preprocessor.", 13)) {
            want = 0.0625f; /* 0.5^(3+1) */
            n_embed++;
        } else if (sscanf(name, "trunk.blocks.%d.", &b) == 1) {
            want = b + 1 <= 3 ? powf(0.5f, (float)(3 - b)) : 0; /* 0.5^(Lt+1-i), i = b+1 */
        }
        n_frozen += want == 0;
        if (s[i] != want) {
            bad++;
            tap_diag("%s: %g, expected %g", name, s[i], want);
        }
    }
    tap_ok(top == 3 && !bad && n_embed == 4 && n_frozen > 0,
           "probe blocks 2,3 of 4, decay 0.5: the patch embedding 0.5^4, block i 0.5^(4-i), "
           "block 4, the post norm and the pixel head 0 (%d tensors)", p->n);
    free(s);
    aim_model_free(m);
}

/* one step (train = one batch, warmup 1: the lr factor of the schedule is 1
 * at step 0), no weight decay or clip: Adam's first update is lr * g / (|g|
 * + eps), so the largest change of each tensor is its own lr */
static void one_step(const world *w)
{
    aim_err e;
    aim_model *m = aim_model_new(&w->c, 1, &e);
    aim_params *p = aim_model_params(m);
    memcpy(p->data, aim_model_params(w->base)->data, p->total * sizeof(float));
    float *w0 = malloc(p->total * sizeof(float));
    memcpy(w0, p->data, p->total * sizeof(float));
    aim_synth_opts so = {.n = 16, .c = w->c.channels, .h = w->c.image, .w = w->c.image,
                         .seed = 9};
    aim_dataset *one = aim_data_synthetic(&so, &e);
    aim_finetune_job j;
    aim_finetune_job_default(&j);
    j.epochs = 1;
    j.batch = 16;
    j.lr = 1e-2f;
    j.head_lr = 4e-2f;
    j.layer_decay = 0.5f;
    j.weight_decay = 0;
    j.clip = 0;
    j.warmup = 1;
    j.val_images = 0;
    j.seed = 3;
    j.nprobe = 1;
    j.probe_blocks[0] = 1; /* Lt = 1 of 2: block 1 at lr/2, the embedding at lr/4 */
    aim_finetune_result r;
    int rc = aim_finetune_run(m, one, w->te, &j, &r, &e);
    tap_ok(rc == 0 && r.steps == 1 && r.top_block == 1, "one step of the job: %s",
           rc ? e.msg : "ok");
    if (rc) {
        aim_model_free(m);
        aim_dataset_free(one);
        free(w0);
        return;
    }
    int bad = 0, moved = 0, still = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        double d = 0;
        for (size_t k = 0; k < t->numel; k++)
            d = tap_worse(d, fabs(p->data[t->offset + k] - w0[t->offset + k]));
        double want = !strncmp(t->name, "preprocessor.", 13)     ? 2.5e-3
                      : !strncmp(t->name, "trunk.blocks.0.", 15) ? 5e-3
                                                                 : 0;
        int ok = want ? fabs(d - want) < 0.01 * want : d == 0;
        if (!ok) {
            bad++;
            tap_diag("%s moved by %.6g, expected %.6g", t->name, d, want);
        }
        moved += want > 0;
        still += want == 0;
        if (t->flags & AIM_P_FROZEN)
            bad++; /* the flags are restored */
    }
    tap_ok(!bad && moved > 8 && still > 8,
           "each trained tensor's largest change is its own lr (block 1 lr/2, the patch "
           "embedding and its norm lr/4); block 2, the post norm and the pixel head unchanged, "
           "all trainable again after the job (%d moved, %d unchanged)", moved, still);
    /* the head, against the same new head: head_lr, not decayed */
    aim_probe *h0 = aim_probe_new(AIM_PROBE_ATTENTIVE, aim_config_tokens(&w->c), w->c.width,
                                  w->c.heads, 10, 3, &e);
    aim_params *hp = aim_probe_params(r.probe), *h0p = aim_probe_params(h0);
    int hbad = 0, hmoved = 0;
    for (int i = 0; i < hp->n; i++) {
        const aim_param *t = &hp->t[i];
        if (t->flags & AIM_P_FROZEN)
            continue; /* BatchNorm's running statistics */
        double d = 0;
        for (size_t k = 0; k < t->numel; k++)
            d = tap_worse(d, fabs(hp->data[t->offset + k] - h0p->data[t->offset + k]));
        hbad += !(fabs(d - 4e-2) < 4e-4);
        hmoved++;
        if (fabs(d - 4e-2) >= 4e-4)
            tap_diag("%s moved by %.6g, expected 0.04", t->name, d);
    }
    tap_ok(!hbad && hmoved >= 4, "the head's %d tensors move by head_lr, undecayed", hmoved);
    aim_probe_free(h0);
    aim_probe_free(r.probe);
    aim_model_free(m);
    aim_dataset_free(one);
    free(w0);
}

static void learns(const world *w)
{
    aim_err e;
    float *wt[2] = {NULL, NULL};
    float top[2] = {0, 0}, loss1 = 0, loss_last = 0;
    size_t total = 0;
    for (int run = 0; run < 2; run++) {
        aim_model *m = aim_model_new(&w->c, 1, &e);
        aim_params *p = aim_model_params(m);
        memcpy(p->data, aim_model_params(w->base)->data, p->total * sizeof(float));
        aim_finetune_job j;
        aim_finetune_job_default(&j);
        j.epochs = 6;
        j.batch = 32;
        j.lr = 3e-3f;
        j.head_lr = 1e-2f;
        j.seed = 4;
        j.val_images = 0;
        int epochs = 0;
        j.on_epoch = count_epochs;
        j.ctx = &epochs;
        aim_finetune_result r;
        if (run == 0) { /* the first epoch's loss on its own */
            aim_finetune_job j1 = j;
            j1.epochs = 1;
            aim_model *m1 = aim_model_new(&w->c, 1, &e);
            memcpy(aim_model_params(m1)->data, p->data, p->total * sizeof(float));
            if (aim_finetune_run(m1, w->tr, w->te, &j1, &r, &e) == 0) {
                loss1 = r.train_loss;
                aim_probe_free(r.probe);
            }
            aim_model_free(m1);
            epochs = 0;
        }
        int rc = aim_finetune_run(m, w->tr, w->te, &j, &r, &e);
        if (rc != 0) {
            tap_ok(0, "training: %s", e.msg);
            aim_model_free(m);
            continue;
        }
        top[run] = r.test_top1;
        if (run == 0) {
            loss_last = r.train_loss;
            tap_ok(epochs == 6 && r.epochs_done == 6 && r.steps == 6 * (w->tr->n / 32),
                   "6 epochs of %lld steps, on_epoch after each", (long long)(w->tr->n / 32));
        }
        total = p->total;
        wt[run] = malloc(total * sizeof(float));
        memcpy(wt[run], p->data, total * sizeof(float));
        aim_probe_free(r.probe);
        aim_model_free(m);
    }
    tap_ok(loss_last < 0.9f * loss1, "training lowers the loss (first epoch %.4f, sixth %.4f)",
           loss1, loss_last);
    tap_ok(top[0] > 25 && top[0] <= 100,
           "test top-1 beats chance on 10 classes (%.2f%%, the last epoch's)", top[0]);
    tap_ok(wt[0] && wt[1] && !memcmp(wt[0], wt[1], total * sizeof(float)) && top[0] == top[1],
           "the same seed gives the same weights and top-1 (%.2f%%)", top[1]);
    free(wt[0]);
    free(wt[1]);
}

static void errors(const world *w)
{
    aim_err e;
    aim_model *m = aim_model_new(&w->c, 1, &e);
    aim_finetune_job j;
    aim_finetune_job_default(&j);
    j.epochs = 1;
    j.batch = 32;
    j.val_images = 0;
    aim_finetune_result r;
    j.layer_decay = 0;
    tap_ok(aim_finetune_run(m, w->tr, w->te, &j, &r, &e) == -1 &&
               tap_contains(e.msg, "layer_decay"),
           "layer_decay 0 is refused: %s", e.msg);
    j.layer_decay = 0.75f;
    j.label_smoothing = 1;
    tap_ok(aim_finetune_run(m, w->tr, w->te, &j, &r, &e) == -1 &&
               tap_contains(e.msg, "label_smoothing"),
           "label_smoothing 1 is refused: %s", e.msg);
    j.label_smoothing = 0;
    j.nprobe = 1;
    j.probe_blocks[0] = 3;
    tap_ok(aim_finetune_run(m, w->tr, w->te, &j, &r, &e) == -1 &&
               tap_contains(e.msg, "probe block 3 is not in 1..2"),
           "a probe block beyond the depth: %s", e.msg);
    j.nprobe = 0;
    j.batch = 1000;
    tap_ok(aim_finetune_run(m, w->tr, w->te, &j, &r, &e) == -1 &&
               tap_contains(e.msg, "fewer than one batch"),
           "a batch larger than the data: %s", e.msg);
    j.batch = 32;
    aim_model_lora_add(m, 2, 2, (int[]){1}, 1, 1, &e);
    tap_ok(aim_finetune_run(m, w->tr, w->te, &j, &r, &e) == -1 &&
               tap_contains(e.msg, "LoRA adapters"),
           "a model with LoRA adapters is refused: %s", e.msg);
    aim_model_free(m);
}

int main(void)
{
    smoothing();
    lr_scale();
    world w;
    aim_err e;
    aim_config_preset("micro", &w.c, &e);
    w.c.depth = 2;
    aim_synth_opts to = {.n = 320, .c = w.c.channels, .h = w.c.image, .w = w.c.image, .seed = 1};
    aim_synth_opts vo = {.n = 200, .c = w.c.channels, .h = w.c.image, .w = w.c.image, .seed = 2};
    w.tr = aim_data_synthetic(&to, &e);
    w.te = aim_data_synthetic(&vo, &e);
    w.base = aim_model_new(&w.c, 1, &e);
    /* a little pretraining, so the trunk is not at its init */
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.steps = 20;
    po.batch = 16;
    aim_pretrain_result pr;
    tap_ok(aim_pretrain(w.base, w.tr, &po, &pr, &e) == 0, "a briefly pretrained micro trunk");
    layer_factors(&w);
    one_step(&w);
    learns(&w);
    errors(&w);
    aim_model_free(w.base);
    aim_dataset_free(w.tr);
    aim_dataset_free(w.te);
    return tap_done();
}
