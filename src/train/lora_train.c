/*
 * lora_train.c - LoRA fine-tuning (shared/AIM.md "Downstream"): adapters
 * on a frozen trunk trained jointly with an attentive probe head. Every
 * step streams a batch through the trunk up to the deepest probe block
 * (aim_model_features_train), the head's cross-entropy gradient flows back
 * into the features (aim_probe_backward) and through the trunk into the
 * adapters (aim_model_features_backward, which stops at the lowest adapted
 * block), and AdamW updates the adapters and the head, each with its own
 * peak learning rate, warmup + cosine.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/finetune.h"
#include "aim/probe.h"
#include "aim/recon.h"
#include "aim/runlog.h"
#include "aim/train.h"

void aim_lora_job_default(aim_lora_job *j)
{
    memset(j, 0, sizeof *j);
    j->rank = AIM_LORA_DEFAULT_RANK;
    j->alpha = 0; /* = rank */
    j->epochs = 4;
    j->batch = 64;
    j->lr = 1e-3f;
    j->head_lr = 3e-3f;
    j->weight_decay = 0.05f;
    j->augment = 0;
    j->flip = 0;
    j->log_every = 10;
    j->val_images = 512;
}

int aim_lora_job_resolve(aim_lora_job *j, int L, aim_err *e)
{
    if (j->nprobe == 0) { /* the middle blocks, as aim probe */
        j->nprobe = L >= 3 ? 2 : 1;
        j->probe_blocks[0] = L >= 3 ? L / 2 : (L + 1) / 2;
        j->probe_blocks[1] = L / 2 + 1;
    }
    if (j->nprobe < 0 || j->nprobe > AIM_PROBE_MAX_BLOCKS || j->nblocks < 0 ||
        j->nblocks > AIM_PROBE_MAX_BLOCKS)
        return aim_errf(e, "lora: 1 to %d blocks", AIM_PROBE_MAX_BLOCKS);
    for (int k = 0; k < j->nprobe; k++)
        if (j->probe_blocks[k] < 1 || j->probe_blocks[k] > L)
            return aim_errf(e, "lora: probe block %d is not in 1..%d", j->probe_blocks[k], L);
    for (int k = 0; k < j->nblocks; k++)
        if (j->blocks[k] < 1 || j->blocks[k] > L)
            return aim_errf(e, "lora: block %d is not in 1..%d", j->blocks[k], L);
    if (j->nblocks == 0) { /* adapt the probe blocks */
        j->nblocks = j->nprobe;
        memcpy(j->blocks, j->probe_blocks, sizeof j->blocks);
    }
    return 0;
}

/* run.json of a LoRA job */
typedef struct job_info {
    const aim_lora_job *j;
    const aim_config *c;
    const aim_lora_info *li;
    const int *probe_blocks;
    int nprobe;
    uint64_t trunk;
    int64_t ntrain, ntest;
} job_info;

static void json_ints(FILE *f, const char *key, const int *v, int n)
{
    fprintf(f, ",\"%s\":[", key);
    for (int k = 0; k < n; k++)
        fprintf(f, "%s%d", k ? "," : "", v[k]);
    fprintf(f, "]");
}

static int write_info(FILE *f, void *ctx, aim_err *e)
{
    (void)e;
    const job_info *in = ctx;
    const aim_lora_job *j = in->j;
    aim_json_job(f, "lora", j->weights);
    aim_json_precision(f, j->precision);
    fprintf(f, ",\"rank\":%d,\"alpha\":%.9g", in->li->rank, in->li->alpha);
    json_ints(f, "blocks", in->li->blocks, in->li->nblocks < 64 ? in->li->nblocks : 64);
    json_ints(f, "probe_blocks", in->probe_blocks, in->nprobe);
    fprintf(f, ",\"head\":\"%s\",\n \"epochs\":%d,\"batch\":%d,\"lr\":%.9g,\"head_lr\":%.9g,"
               "\"weight_decay\":%.9g,\"augment\":%d,\"flip\":%d,\"seed\":%llu,"
               "\"train_images\":%lld,\"test_images\":%lld,\n \"adapters\":%llu,\"trunk\":%llu,"
               "\"share\":%.6g,\n ",
            j->init_head ? "given" : "new", j->epochs, j->batch, j->lr, j->head_lr,
            j->weight_decay, j->augment, j->augment || j->flip, (unsigned long long)j->seed,
            (long long)in->ntrain,
            (long long)in->ntest, (unsigned long long)in->li->params,
            (unsigned long long)in->trunk,
            in->trunk ? 100.0 * (double)in->li->params / (double)in->trunk : 0.0);
    aim_json_config(f, in->c);
    fprintf(f, "}\n");
    return 0; /* aim_write_atomic checks the stream */
}

/* LoRA's update: the adapters clipped at 1 with no weight decay, the head
 * with its own */
typedef struct lora_update {
    aim_params *mp, *hp;
    float lr, head_lr;
    aim_adamw_opts lo, ho;
} lora_update;

static float lora_step(void *ctx, int64_t step, float f)
{
    lora_update *u = ctx;
    float gn = aim_clip_adamw_step(u->mp, &u->lo, f * u->lr, step + 1, 1.0f);
    aim_adamw_step(u->hp, &u->ho, f * u->head_lr, step + 1);
    return gn;
}

static int lora_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                    const aim_lora_job *j, aim_lora_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r);
    r->val_loss_start = r->val_loss = NAN;
    const aim_config *c = aim_model_config(m);
    if (j->epochs < 1 || j->batch < 2 || !(j->lr > 0) || !(j->head_lr > 0))
        return aim_errf(e, "lora: epochs >= 1, batch >= 2 and learning rates > 0 are needed");
    int K;
    if (aim_tune_check_data("lora", c, train, test, j->batch, &K, e) != 0)
        return -1;
    aim_lora_job jr = *j;
    if (aim_lora_job_resolve(&jr, c->depth, e) != 0)
        return -1;
    const int nb = jr.nprobe;
    const int *bl = jr.probe_blocks;
    for (int k = 0; k < nb; k++) {
        size_t len = strlen(r->probe_label);
        snprintf(r->probe_label + len, sizeof r->probe_label - len, "%s%d", k ? "," : "", bl[k]);
    }
    /* adapters: keep the model's, or add them */
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    if (li.merged)
        return aim_errf(e, "lora: the model's adapters are merged; unmerge them first");
    if (!li.rank) {
        float alpha = j->alpha > 0 ? j->alpha : (float)j->rank;
        if (aim_model_lora_add(m, j->rank, alpha, jr.blocks, jr.nblocks, j->seed + 17, e) != 0)
            return -1;
        aim_model_lora_info(m, &li);
    }
    /* frozen for the job only: afterwards the flags are as they were */
    aim_params *mp = aim_model_params(m);
    unsigned *flags = aim_xmalloc((size_t)mp->n * sizeof *flags);
    for (int i = 0; i < mp->n; i++)
        flags[i] = mp->t[i].flags;
    aim_model_lora_freeze_trunk(m);
    r->adapters = li.params;
    r->trunk = aim_config_trunk_params(c);
    job_info info = {j, c, &li, bl, nb, r->trunk, train->n, test->n};
    if (aim_runlog_write_info(j->log, write_info, &info, e) != 0) {
        for (int i = 0; i < mp->n; i++)
            mp->t[i].flags = flags[i];
        free(flags);
        return -1;
    }

    aim_probe *pr = aim_probe_new(AIM_PROBE_ATTENTIVE, aim_config_tokens(c), c->width, c->heads,
                                  K, j->seed, e);
    if (!pr) {
        for (int i = 0; i < mp->n; i++)
            mp->t[i].flags = flags[i];
        free(flags);
        return -1;
    }
    aim_params *hp = aim_probe_params(pr);
    if (j->init_head) {
        aim_probe *ih = (aim_probe *)j->init_head; /* read only */
        int n1, d1, h1, n2, d2, h2;
        aim_probe_shape(ih, &n1, &d1, &h1);
        aim_probe_shape(pr, &n2, &d2, &h2);
        aim_params *ip = aim_probe_params(ih);
        if (aim_probe_get_kind(ih) != AIM_PROBE_ATTENTIVE || n1 != n2 || d1 != d2 ||
            h1 != h2 || aim_probe_classes(ih) != K || ip->total != hp->total) {
            aim_errf(e, "lora: the starting head (a %s probe, %d tokens x %d, %d heads, %d "
                        "classes) does not fit this trunk and data (%d x %d, %d heads, %d "
                        "classes)",
                     aim_probe_get_kind(ih) == AIM_PROBE_ATTENTIVE ? "attentive" : "linear", n1,
                     d1, h1, aim_probe_classes(ih), n2, d2, h2, K);
            aim_probe_free(pr);
            for (int i = 0; i < mp->n; i++)
                mp->t[i].flags = flags[i];
            free(flags);
            return -1;
        }
        memcpy(hp->data, ip->data, hp->total * sizeof(float));
    }
    r->trainable = aim_params_count(mp, 1) + aim_params_count(hp, 1);
    if (aim_params_try_alloc_moments(mp, e) != 0 || aim_params_try_alloc_moments(hp, e) != 0) {
        aim_err_prefix(e, "lora");
        aim_probe_free(pr);
        for (int i = 0; i < mp->n; i++)
            mp->t[i].flags = flags[i];
        free(flags);
        return -1;
    }
    lora_update up = {.mp = mp, .hp = hp, .lr = j->lr, .head_lr = j->head_lr};
    aim_adamw_opts_default(&up.lo);
    aim_adamw_opts_default(&up.ho);
    up.lo.weight_decay = 0; /* adapters carry no AIM_P_DECAY anyway */
    up.ho.weight_decay = j->weight_decay;
    const int64_t total = train->n / j->batch * j->epochs;
    aim_tune_loop loop = {.job = "lora", .m = m, .train = train, .test = test, .head = pr,
                          .blocks = bl, .nblocks = nb, .batch = j->batch, .epochs = j->epochs,
                          .val_images = j->val_images, .log_every = j->log_every,
                          .crop = j->augment ? 1 : 0, .flip = j->augment || j->flip ? 1 : 0,
                          .seed = j->seed, .warmup = total / 20 > 0 ? total / 20 : 1,
                          .lr = j->lr, .head_lr = j->head_lr, .log = j->log,
                          .update = lora_step, .uctx = &up, .on_step = j->on_step,
                          .on_epoch = j->on_epoch, .ctx = j->ctx};
    aim_tune_out o;
    int rc = aim_tune_run(&loop, &o, e);
    for (int i = 0; i < mp->n; i++)
        mp->t[i].flags = flags[i];
    free(flags);
    r->train_loss = o.train_loss;
    r->train_top1 = o.train_top1;
    r->test_top1 = o.test_top1;
    r->val_loss_start = o.val_loss_start;
    r->val_loss = o.val_loss;
    r->epochs_done = o.epochs_done;
    r->stopped = o.stopped;
    r->steps = o.steps;
    r->seconds = o.seconds;
    if (rc == 0)
        r->probe = pr;
    else
        aim_probe_free(pr);
    return rc;
}

/* the job in its precision: set on the model for the job, then back */
int aim_lora_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                 const aim_lora_job *j, aim_lora_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r); /* a refused precision leaves no probe to free */
    aim_precision was = m ? aim_model_precision(m) : AIM_PREC_FP32;
    if (m && aim_model_set_precision(m, j->precision, e) != 0)
        return -1;
    int rc = lora_run(m, train, test, j, r, e);
    if (m)
        aim_model_set_precision(m, was, NULL);
    return rc;
}
