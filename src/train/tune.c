/*
 * tune.c - what the jobs that train a head on a trunk (LoRA, full
 * fine-tuning) share: the data checks, the test top-1 of trunk + head, the
 * next-patch loss with its "val" line, the reconstructions, the step
 * report and the training loop itself (aim_tune_run). The jobs themselves
 * (what is trained, how it is updated) are lora_train.c and finetune.c.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "aim/finetune.h"
#include "aim/train.h"
#include "aim/recon.h"
#include "aim/runlog.h"

int aim_tune_check_data(const char *job, const aim_config *c, const aim_dataset *train,
                        const aim_dataset *test, int batch, int *K, aim_err *e)
{
    for (int i = 0; i < 2; i++) {
        const aim_dataset *d = i ? test : train;
        if (d->c != c->channels || d->h != c->image || d->w != c->image)
            return aim_errf(e, "%s: the %s data is %dx%dx%d but the model takes %dx%dx%d", job,
                            i ? "test" : "training", d->c, d->h, d->w, c->channels, c->image,
                            c->image);
    }
    if (train->n < batch)
        return aim_errf(e, "%s: %lld training images are fewer than one batch of %d", job,
                        (long long)train->n, batch);
    *K = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    if (*K < 2)
        return aim_errf(e, "%s: the data has %d class(es)", job, *K);
    for (int64_t i = 0; i < train->n; i++)
        if (train->labels[i] < 0 || train->labels[i] >= *K)
            return aim_errf(e, "%s: label %d of training image %lld is not in 0..%d", job,
                            train->labels[i], (long long)i + 1, *K - 1);
    return 0;
}

float aim_tune_evaluate(aim_model *m, aim_probe *pr, const aim_dataset *ds, const int *bl,
                        int nb, int batch, float *x, int32_t *lab, float *feat, aim_err *e)
{
    int64_t hits = 0;
    for (int64_t i0 = 0; i0 < ds->n; i0 += batch) {
        int n = (int)(ds->n - i0 < batch ? ds->n - i0 : batch);
        aim_dataset_get_batch(ds, i0, n, 1, x, lab);
        if (aim_model_features(m, x, n, bl, nb, feat, e) != 0)
            return -1;
        int correct = 0;
        aim_probe_forward(pr, feat, lab, n, 0, &correct);
        hits += correct;
    }
    return ds->n ? (float)(100.0 * hits / ds->n) : 0;
}

float aim_tune_next_patch_loss(aim_model *m, const aim_dataset *test, int val_images,
                               int batch, uint64_t seed, struct aim_runlog *log, int64_t step,
                               float *x, int32_t *prefix)
{
    if (val_images <= 0 || test->n <= 0)
        return NAN;
    float vl = aim_validation_loss(m, test, val_images, batch, seed, x, prefix);
    aim_runlog_begin(log, step, "val");
    aim_runlog_num(log, "val_loss", vl);
    aim_runlog_end(log);
    return vl;
}

void aim_tune_recon_init(aim_tune_recon *r, const aim_model *m, const aim_dataset *test,
                         aim_runlog *log)
{
    memset(r, 0, sizeof *r);
    const aim_config *c = aim_model_config(m);
    if (!log || (c->channels != 1 && c->channels != 3))
        return;
    r->n = aim_recon_pick(test, c, 4, &r->x);
    if (r->n > 0)
        r->out = aim_xmalloc(3 * (size_t)r->n * c->channels * c->image * c->image *
                             sizeof(float));
}

void aim_tune_recon_write(aim_tune_recon *r, aim_model *m, aim_runlog *log, const char *tag,
                          int64_t step)
{
    if (r->n == 0)
        return;
    const aim_config *c = aim_model_config(m);
    float mean[4] = {0, 0, 0, 0}, sd[4] = {1, 1, 1, 1};
    for (int k = 0; k < c->nmean && k < 4; k++) {
        mean[k] = c->mean[k];
        sd[k] = c->std[k];
    }
    int N = aim_config_tokens(c), S = N / 2 > 0 ? N / 2 : 1;
    size_t all = (size_t)r->n * c->channels * c->image * c->image;
    double loss = 0;
    aim_err e = {{0}};
    if (aim_model_reconstruct(m, r->x, r->n, S, mean, sd, r->out, r->out + all,
                              r->out + 2 * all, &loss, &e) != 0)
        return;
    aim_recon_summary(aim_runlog_events(log), tag, step, r->out, r->out + all, r->out + 2 * all,
                      r->n, c->channels, c->image, &e);
    aim_runlog_recon(log, step, r->out, r->n, c->channels, c->image, S, loss, &e);
}

void aim_tune_recon_free(aim_tune_recon *r)
{
    free(r->x);
    free(r->out);
    memset(r, 0, sizeof *r);
}

void aim_tune_clock_start(aim_tune_clock *c, double now)
{
    c->t0 = c->tw = now;
    c->win_images = 0;
}

void aim_tune_step_report(aim_tune_clock *c, double now, const aim_tune_step *t,
                          aim_runlog *log, const char *kind, int log_every, aim_step_info *si)
{
    c->win_images += t->batch;
    *si = (aim_step_info){.step = t->step, .total = t->total, .images = t->step * t->batch,
                          .epoch = (double)t->step * t->batch / (double)t->ntrain,
                          .loss = t->loss, .lr = t->lr, .grad_norm = t->grad_norm,
                          .elapsed_s = now - c->t0};
    si->img_per_s = now > c->tw ? c->win_images / (now - c->tw) : 0;
    si->eta_s = si->elapsed_s / t->step * (t->total - t->step);
    if (now - c->tw > 5) { /* the throughput of the last 5 s or so */
        c->tw = now;
        c->win_images = 0;
    }
    if (log && t->step % log_every == 0) {
        aim_runlog_begin(log, t->step, kind);
        aim_runlog_num(log, "loss", t->loss);
        aim_runlog_num(log, "lr", t->lr);
        aim_runlog_num(log, "head_lr", t->head_lr);
        aim_runlog_num(log, "grad_norm", t->grad_norm);
        aim_runlog_num(log, "img_per_s", si->img_per_s);
        aim_runlog_num(log, "epoch", si->epoch);
        aim_runlog_num(log, "time", si->elapsed_s);
        aim_runlog_end(log);
    }
}

void aim_tune_zero_trainable(aim_params *p)
{
    for (int i = 0; i < p->n; i++)
        if (!(p->t[i].flags & AIM_P_FROZEN))
            memset(p->grad + p->t[i].offset, 0, p->t[i].numel * sizeof(float));
}

/* after an epoch: what it measured, logged and told */
static int end_epoch(const aim_tune_loop *l, aim_tune_out *o, aim_tune_recon *rec, int ep,
                     int64_t step, double loss_sum, int64_t hits, int64_t seen, double t0,
                     float *x, int32_t *lab, float *feat, int32_t *prefix, aim_err *e)
{
    if (seen) {
        o->train_loss = (float)(loss_sum / seen);
        o->train_top1 = (float)(100.0 * hits / seen);
    }
    o->test_top1 = aim_tune_evaluate(l->m, l->head, l->test, l->blocks, l->nblocks, l->batch, x,
                                     lab, feat, e);
    if (o->test_top1 < 0)
        return -1;
    o->epochs_done = ep + 1;
    o->val_loss = aim_tune_next_patch_loss(l->m, l->test, l->val_images, l->batch, l->seed,
                                           l->log, step, x, prefix);
    char tag[48];
    snprintf(tag, sizeof tag, "recon/%s", l->job);
    aim_tune_recon_write(rec, l->m, l->log, tag, step);
    aim_runlog_begin(l->log, step, l->job);
    aim_runlog_num(l->log, "epoch", ep + 1);
    aim_runlog_num(l->log, "loss", o->train_loss);
    aim_runlog_num(l->log, "train_top1", o->train_top1);
    aim_runlog_num(l->log, "test_top1", o->test_top1);
    aim_runlog_num(l->log, "time", aim_now() - t0);
    aim_runlog_end(l->log);
    aim_runlog_flush(l->log);
    aim_lora_epoch le = {.epoch = ep + 1, .epochs = l->epochs, .step = step,
                         .train_loss = o->train_loss, .train_top1 = o->train_top1,
                         .test_top1 = o->test_top1, .val_loss = o->val_loss, .head = l->head,
                         .probe_blocks = l->blocks, .nprobe = l->nblocks};
    if (l->on_epoch && l->on_epoch(l->ctx, &le))
        o->stopped = 1;
    return 0;
}

int aim_tune_run(const aim_tune_loop *l, aim_tune_out *o, aim_err *e)
{
    memset(o, 0, sizeof *o);
    o->val_loss_start = o->val_loss = NAN;
    double t0 = aim_now();
    aim_batcher_opts bo;
    aim_batcher_opts_default(&bo);
    bo.batch = l->batch;
    bo.seed = l->seed;
    bo.crop = l->crop;
    bo.flip = l->flip;
    bo.scale_min = 0.8f;
    aim_batcher *bt = aim_batcher_new(l->train, &bo, e);
    if (!bt)
        return -1;
    aim_model *m = l->m;
    const aim_config *c = aim_model_config(m);
    aim_params *mp = aim_model_params(m), *hp = aim_probe_params(l->head);
    const int B = l->batch;
    const size_t img = (size_t)c->channels * c->image * c->image;
    const size_t nf = (size_t)B * aim_config_tokens(c) * c->width;
    float *x = aim_xaligned((size_t)B * img * sizeof(float));
    float *feat = aim_xaligned(nf * sizeof(float));
    float *dfeat = aim_xaligned(nf * sizeof(float));
    int32_t *lab = aim_xmalloc((size_t)B * sizeof *lab);
    int32_t *prefix = aim_xmalloc((size_t)B * sizeof *prefix);
    const int64_t per_epoch = l->train->n / B, total = per_epoch * l->epochs;
    const int log_every = l->log_every > 0 ? l->log_every : 10;
    char step_kind[48], tag[48];
    snprintf(step_kind, sizeof step_kind, "%s_step", l->job);
    snprintf(tag, sizeof tag, "recon/%s", l->job);
    aim_tune_clock clock;
    aim_tune_clock_start(&clock, t0);
    aim_tune_recon rec;
    aim_tune_recon_init(&rec, m, l->test, l->log);
    aim_tune_recon_write(&rec, m, l->log, tag, 0);
    o->val_loss_start = o->val_loss = aim_tune_next_patch_loss(
        m, l->test, l->val_images, B, l->seed, l->log, 0, x, prefix);
    aim_lora_epoch le = {.epoch = 0, .epochs = l->epochs, .train_loss = NAN, .train_top1 = NAN,
                         .test_top1 = NAN, .val_loss = o->val_loss, .head = l->head,
                         .probe_blocks = l->blocks, .nprobe = l->nblocks};
    if (l->on_epoch && l->on_epoch(l->ctx, &le))
        o->stopped = 1;
    int64_t step = 0;
    int rc = 0;
    for (int ep = 0; ep < l->epochs && !o->stopped && rc == 0; ep++) {
        double loss_sum = 0;
        int64_t hits = 0, seen = 0;
        for (int64_t s = 0; s < per_epoch; s++, step++) {
            aim_batcher_next(bt, x, lab, NULL);
            if (aim_model_features_train(m, x, B, l->blocks, l->nblocks, feat, e) != 0) {
                rc = -1;
                break;
            }
            aim_tune_zero_trainable(mp);
            aim_tune_zero_trainable(hp);
            int correct = 0;
            float loss = aim_probe_forward(l->head, feat, lab, B, 1, &correct);
            memset(dfeat, 0, nf * sizeof(float));
            aim_probe_backward(l->head, dfeat);
            aim_model_features_backward(m, dfeat);
            float f = aim_lr_at(step, total, l->warmup, 1.0f);
            float gn = l->update(l->uctx, step, f);
            loss_sum += (double)loss * B;
            hits += correct;
            seen += B;
            aim_tune_step ts = {.step = step + 1, .total = total, .ntrain = l->train->n,
                                .batch = B, .loss = loss, .lr = f * l->lr,
                                .head_lr = f * l->head_lr, .grad_norm = gn};
            aim_step_info si;
            aim_tune_step_report(&clock, aim_now(), &ts, l->log, step_kind, log_every, &si);
            if (l->on_step && l->on_step(l->ctx, &si)) {
                o->stopped = 1;
                step++; /* this step is done: count it (the loop's ++ is skipped) */
                break;
            }
        }
        if (rc == 0)
            rc = end_epoch(l, o, &rec, ep, step, loss_sum, hits, seen, t0, x, lab, feat, prefix,
                           e);
    }
    o->steps = step;
    o->seconds = aim_now() - t0;
    aim_batcher_free(bt);
    free(x);
    free(feat);
    free(dfeat);
    free(lab);
    free(prefix);
    aim_tune_recon_free(&rec);
    return rc;
}
