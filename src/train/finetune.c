/*
 * finetune.c - full fine-tuning (aim/finetune.h): the whole trunk up to the
 * deepest probe block, down to the patch embedding, trained jointly with a
 * new attentive probe head on the average of the probe blocks. Every step
 * streams a batch through the trunk (aim_model_features_train), the head's
 * cross-entropy gradient flows into the features (aim_probe_backward) and
 * through every trained block to the patch embedding
 * (aim_model_features_backward: nothing is frozen below the top trained
 * block, so it goes all the way down). One AdamW step per table: the
 * trunk's with a per-tensor lr factor (layer-wise decay, aim_adamw_opts
 * lr_scale), the head's at head_lr; one gradient-norm clip over both.
 * The pixel head is not trained: the next-patch loss measures what the
 * changing trunk still gives it. This is not LoRA (lora_train.c): no
 * adapters, and every trunk value moves.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/finetune.h"
#include "aim/runlog.h"

void aim_finetune_job_default(aim_finetune_job *j)
{
    memset(j, 0, sizeof *j);
    j->epochs = 4;
    j->batch = 64;
    j->lr = 1e-3f;
    j->head_lr = 3e-3f;
    j->layer_decay = 0.75f;
    j->weight_decay = 0.05f;
    j->clip = 1.0f;
    j->label_smoothing = 0;
    j->warmup = -1;
    j->log_every = 10;
    j->val_images = 512;
}

int aim_finetune_job_resolve(aim_finetune_job *j, int L, aim_err *e)
{
    if (j->nprobe == 0) { /* the middle blocks, as aim probe and aim lora */
        j->nprobe = L >= 3 ? 2 : 1;
        j->probe_blocks[0] = L >= 3 ? L / 2 : (L + 1) / 2;
        j->probe_blocks[1] = L / 2 + 1;
    }
    if (j->nprobe < 0 || j->nprobe > AIM_PROBE_MAX_BLOCKS)
        return aim_errf(e, "finetune: 1 to %d probe blocks", AIM_PROBE_MAX_BLOCKS);
    for (int k = 0; k < j->nprobe; k++)
        if (j->probe_blocks[k] < 1 || j->probe_blocks[k] > L)
            return aim_errf(e, "finetune: probe block %d is not in 1..%d", j->probe_blocks[k],
                            L);
    return 0;
}

int aim_finetune_lr_scales(const aim_model *m, const int *probe_blocks, int nprobe,
                           float layer_decay, float *lr_scale)
{
    int top = 0;
    for (int k = 0; k < nprobe; k++)
        top = probe_blocks[k] > top ? probe_blocks[k] : top;
    const aim_params *p = aim_model_params((aim_model *)m);
    for (int i = 0; i < p->n; i++) {
        const char *name = p->t[i].name;
        int b = -1;
        lr_scale[i] = 0;
        if (!strncmp(name, "preprocessor.patchifier.", 24))
            b = 0;
        else if (sscanf(name, "trunk.blocks.%d.", &b) == 1)
            b += 1; /* 1-based */
        else
            continue; /* the post-trunk norm, the pixel head */
        if (b <= top && !strstr(name, ".lora_"))
            lr_scale[i] = powf(layer_decay, (float)(top + 1 - b));
    }
    return top;
}

/* run.json of a fine-tuning job */
typedef struct job_info {
    const aim_finetune_job *j;
    const aim_config *c;
    const aim_finetune_result *r;
    int64_t warmup;
} job_info;

static int write_info(FILE *f, void *ctx, aim_err *e)
{
    (void)e;
    const job_info *in = ctx;
    const aim_finetune_job *j = in->j;
    aim_json_job(f, "finetune", j->weights);
    aim_json_precision(f, j->precision);
    fprintf(f, ",\"probe_blocks\":[");
    for (int k = 0; k < j->nprobe; k++)
        fprintf(f, "%s%d", k ? "," : "", j->probe_blocks[k]);
    fprintf(f, "],\"top_block\":%d,\"head\":\"new\",\n \"epochs\":%d,\"batch\":%d,\"lr\":%.9g,"
               "\"head_lr\":%.9g,\"layer_decay\":%.9g,\"weight_decay\":%.9g,\"clip\":%.9g,"
               "\"label_smoothing\":%.9g,\"warmup\":%lld,\"seed\":%llu,\n \"trained\":%llu,"
               "\"head_values\":%llu,\"trunk\":%llu,\n ",
            in->r->top_block, j->epochs, j->batch, j->lr, j->head_lr, j->layer_decay,
            j->weight_decay, j->clip, j->label_smoothing, (long long)in->warmup,
            (unsigned long long)j->seed, (unsigned long long)in->r->trained,
            (unsigned long long)in->r->head,
            (unsigned long long)aim_config_trunk_params(in->c));
    aim_json_config(f, in->c);
    fprintf(f, "}\n");
    return 0;
}

void aim_finetune_describe(const aim_model *m, const aim_finetune_job *j, int64_t ntrain,
                           int64_t ntest, char *buf, size_t len)
{
    const aim_config *c = aim_model_config(m);
    int top = 0;
    char probed[256] = "";
    for (int k = 0; k < j->nprobe; k++) {
        top = j->probe_blocks[k] > top ? j->probe_blocks[k] : top;
        size_t at = strlen(probed);
        snprintf(probed + at, sizeof probed - at, "%s%d", k ? "," : "", j->probe_blocks[k]);
    }
    snprintf(buf, len,
             "the whole trunk (patch embedding + blocks 1-%d of %d) at lr %g x %g^(%d-i) for block i, "
             "a new attentive head on blocks %s at %g | %lld + %lld images | %d epochs x %lld "
             "steps of %d",
             top, c->depth, (double)j->lr, (double)j->layer_decay, top + 1, probed,
             (double)j->head_lr, (long long)ntrain, (long long)ntest, j->epochs,
             (long long)(ntrain / (j->batch > 0 ? j->batch : 1)), j->batch);
}

/* fine-tuning's update: one clip over trunk + head (each table's step is
 * given the norm bound that makes its own clip factor the joint one), the
 * trunk's tensors at their layer-decayed lr (lr_scale) */
typedef struct ft_update {
    aim_params *mp, *hp;
    float lr, head_lr, clip;
    aim_adamw_opts to, ho;
} ft_update;

static float ft_step(void *ctx, int64_t step, float f)
{
    ft_update *u = ctx;
    float gt = aim_grad_norm(u->mp), gh = aim_grad_norm(u->hp);
    float gn = sqrtf(gt * gt + gh * gh);
    float coef = u->clip > 0 && gn > 0 ? u->clip / (gn + 1e-6f) : 1.0f;
    aim_clip_adamw_step(u->mp, &u->to, f * u->lr, step + 1, coef < 1 ? coef * (gt + 1e-6f) : 0);
    aim_clip_adamw_step(u->hp, &u->ho, f * u->head_lr, step + 1,
                        coef < 1 ? coef * (gh + 1e-6f) : 0);
    return gn;
}

static int finetune_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                        const aim_finetune_job *j, aim_finetune_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r);
    r->val_loss_start = r->val_loss = NAN;
    const aim_config *c = aim_model_config(m);
    if (j->epochs < 1 || j->batch < 2 || !(j->lr > 0) || !(j->head_lr > 0))
        return aim_errf(e, "finetune: epochs >= 1, batch >= 2 and learning rates > 0 are "
                           "needed");
    if (!(j->layer_decay > 0 && j->layer_decay <= 1))
        return aim_errf(e, "finetune: layer_decay %g is not in (0, 1]", (double)j->layer_decay);
    if (!(j->label_smoothing >= 0 && j->label_smoothing < 1))
        return aim_errf(e, "finetune: label_smoothing %g is not in [0, 1)",
                        (double)j->label_smoothing);
    int K;
    if (aim_tune_check_data("finetune", c, train, test, j->batch, &K, e) != 0)
        return -1;
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    if (li.rank)
        return aim_errf(e, "finetune: the model has LoRA adapters; fine-tune a model without "
                           "them");
    aim_finetune_job jr = *j;
    if (aim_finetune_job_resolve(&jr, c->depth, e) != 0)
        return -1;
    const int nb = jr.nprobe;
    const int *bl = jr.probe_blocks;
    for (int k = 0; k < nb; k++) {
        size_t len = strlen(r->probe_label);
        snprintf(r->probe_label + len, sizeof r->probe_label - len, "%s%d", k ? "," : "", bl[k]);
    }
    /* the trained tensors and their lr factors; the rest frozen for the job */
    aim_params *mp = aim_model_params(m);
    unsigned *flags = aim_xmalloc((size_t)mp->n * sizeof *flags);
    float *scale = aim_xmalloc((size_t)mp->n * sizeof *scale);
    r->top_block = aim_finetune_lr_scales(m, bl, nb, jr.layer_decay, scale);
    for (int i = 0; i < mp->n; i++) {
        flags[i] = mp->t[i].flags;
        if (scale[i] > 0) {
            mp->t[i].flags &= ~(unsigned)AIM_P_FROZEN;
            r->trained += mp->t[i].numel;
        } else {
            mp->t[i].flags |= AIM_P_FROZEN;
        }
    }
    const int B = j->batch;
    const int64_t per_epoch = train->n / B, total = per_epoch * j->epochs;
    const int64_t warmup = j->warmup >= 0 ? (j->warmup > 0 ? j->warmup : 1)
                                          : (total / 20 > 0 ? total / 20 : 1);
    aim_probe *pr = aim_probe_new(AIM_PROBE_ATTENTIVE, aim_config_tokens(c), c->width, c->heads,
                                  K, j->seed, e);
    int rc = -1;
    if (!pr)
        goto out;
    aim_params *hp = aim_probe_params(pr);
    aim_probe_set_label_smoothing(pr, j->label_smoothing);
    r->head = aim_params_count(hp, 1);
    job_info info = {&jr, c, r, warmup};
    jr.weights = j->weights;
    if (aim_runlog_write_info(j->log, write_info, &info, e) != 0)
        goto out;
    if (aim_params_try_alloc_moments(mp, e) != 0 || aim_params_try_alloc_moments(hp, e) != 0) {
        aim_err_prefix(e, "finetune");
        goto out;
    }
    ft_update up = {.mp = mp, .hp = hp, .lr = j->lr, .head_lr = j->head_lr, .clip = j->clip};
    aim_adamw_opts_default(&up.to);
    aim_adamw_opts_default(&up.ho);
    up.to.weight_decay = up.ho.weight_decay = j->weight_decay; /* on AIM_P_DECAY tensors only */
    up.to.lr_scale = scale;
    aim_tune_loop loop = {.job = "finetune", .m = m, .train = train, .test = test, .head = pr,
                          .blocks = bl, .nblocks = nb, .batch = B, .epochs = j->epochs,
                          .val_images = j->val_images, .log_every = j->log_every,
                          .seed = j->seed, .warmup = warmup, .lr = j->lr, .head_lr = j->head_lr,
                          .log = j->log, .update = ft_step, .uctx = &up, .on_step = j->on_step,
                          .on_epoch = j->on_epoch, .ctx = j->ctx};
    aim_tune_out o;
    rc = aim_tune_run(&loop, &o, e);
    r->train_loss = o.train_loss;
    r->train_top1 = o.train_top1;
    r->test_top1 = o.test_top1;
    r->val_loss_start = o.val_loss_start;
    r->val_loss = o.val_loss;
    r->epochs_done = o.epochs_done;
    r->stopped = o.stopped;
    r->steps = o.steps;
    r->seconds = o.seconds;
out:
    for (int i = 0; i < mp->n; i++)
        mp->t[i].flags = flags[i];
    free(flags);
    free(scale);
    if (rc == 0)
        r->probe = pr;
    else
        aim_probe_free(pr);
    return rc;
}

/* the job in its precision: set on the model for the job, then back */
int aim_finetune_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                     const aim_finetune_job *j, aim_finetune_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r); /* a refused precision leaves no probe to free */
    aim_precision was = m ? aim_model_precision(m) : AIM_PREC_FP32;
    if (m && aim_model_set_precision(m, j->precision, e) != 0)
        return -1;
    int rc = finetune_run(m, train, test, j, r, e);
    if (m)
        aim_model_set_precision(m, was, NULL);
    return rc;
}
