/*
 * pretrain.c - the AIM pretraining loop: batches with random resized crops,
 * flips and a random prefix per image, forward, backward, gradient clipping,
 * AdamW with warmup + cosine, a JSON Lines metrics log and a per-step
 * callback for progress, UIs and early stopping. Nothing is allocated inside
 * a step.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/train.h"

void aim_pretrain_opts_default(aim_pretrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->batch = 64;
    o->lr = 1e-3f;
    o->warmup = -1;
    o->clip = 1.0f;
    aim_adamw_opts_default(&o->adamw);
    aim_batcher_opts_default(&o->data);
    o->log_every = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* a JSON number, or null for NaN / Inf (JSON has no such values) */
static void json_num(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

int aim_pretrain(aim_model *m, const aim_dataset *ds, const aim_pretrain_opts *o,
                 aim_pretrain_result *res, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    memset(res, 0, sizeof *res);
    if (o->steps <= 0)
        return aim_errf(e, "pretrain: steps must be positive (got %lld)", (long long)o->steps);
    if (o->batch <= 0 || o->batch > 65536)
        return aim_errf(e, "pretrain: batch must be in 1..65536 (got %d)", o->batch);
    if (!(o->lr > 0) || !isfinite(o->lr))
        return aim_errf(e, "pretrain: lr must be positive (got %g)", o->lr);
    if (ds->c != c->channels || ds->h != c->image || ds->w != c->image)
        return aim_errf(e, "pretrain: the data is %dx%dx%d but the model takes %dx%dx%d", ds->c,
                        ds->h, ds->w, c->channels, c->image, c->image);
    if (aim_model_reserve(m, o->batch, e) != 0)
        return -1;
    aim_batcher_opts bo = o->data;
    bo.batch = o->batch;
    bo.patch = c->patch;
    aim_batcher *b = aim_batcher_new(ds, &bo, e);
    if (!b)
        return -1;
    FILE *mf = NULL;
    if (o->metrics_path) {
        mf = fopen(o->metrics_path, "a");
        if (!mf) {
            aim_batcher_free(b);
            return aim_errf(e, "%s: cannot open for writing: %s", o->metrics_path,
                            strerror(errno));
        }
    }
    aim_params *p = aim_model_params(m);
    aim_params_alloc_moments(p);
    size_t img = (size_t)c->channels * c->image * c->image;
    float *x = aim_xaligned((size_t)o->batch * img * sizeof(float));
    int32_t *prefix = aim_xmalloc((size_t)o->batch * sizeof(int32_t));
    int64_t warmup = o->warmup >= 0 ? o->warmup : (int64_t)(0.025 * o->steps);
    if (warmup < 1)
        warmup = 1;
    int log_every = o->log_every > 0 ? o->log_every : 1;
    const char *run = o->run_name ? o->run_name : "run";

    double t0 = now_s(), tprev = t0, ips = 0;
    double recent[100];
    int nrecent = 0;
    int rc = 0;
    for (int64_t step = 0; step < o->steps; step++) {
        aim_batcher_next(b, x, NULL, prefix);
        aim_params_zero_grad(p);
        float loss = aim_model_forward(m, x, prefix, o->batch);
        aim_model_backward(m);
        float lr = aim_lr_at(step, o->steps, warmup, o->lr);
        float norm = aim_clip_adamw_step(p, &o->adamw, lr, step + 1, o->clip);

        double t = now_s(), dt = t - tprev;
        tprev = t;
        double inst = dt > 0 ? o->batch / dt : 0;
        ips = step == 0 ? inst : 0.9 * ips + 0.1 * inst;
        recent[nrecent++ % 100] = loss;
        aim_step_info info = {
            .step = step + 1,
            .total = o->steps,
            .images = (step + 1) * (int64_t)o->batch,
            .epoch = (double)(step + 1) * o->batch / (double)ds->n,
            .loss = loss,
            .lr = lr,
            .grad_norm = norm,
            .img_per_s = ips,
            .elapsed_s = t - t0,
        };
        info.eta_s = (t - t0) / (step + 1) * (o->steps - step - 1);
        res->steps_done = step + 1;
        res->final_loss = loss;
        if (mf && ((step + 1) % log_every == 0 || step + 1 == o->steps)) {
            fprintf(mf, "{\"run\":\"%s\",\"step\":%lld,\"kind\":\"train\"", run,
                    (long long)(step + 1));
            json_num(mf, "loss", loss);
            json_num(mf, "lr", lr);
            json_num(mf, "grad_norm", norm);
            json_num(mf, "img_per_s", ips);
            json_num(mf, "epoch", info.epoch);
            json_num(mf, "time", info.elapsed_s);
            fprintf(mf, "}\n");
            if (ferror(mf)) {
                rc = aim_errf(e, "%s: write failed", o->metrics_path);
                break;
            }
        }
        if (o->on_step && o->on_step(o->ctx, &info)) {
            res->stopped = 1;
            break;
        }
    }
    int k = nrecent < 100 ? nrecent : 100;
    double s = 0;
    for (int i = 0; i < k; i++)
        s += recent[i];
    res->mean_loss_last = k ? (float)(s / k) : 0;
    res->seconds = now_s() - t0;
    if (mf && fclose(mf) != 0 && rc == 0)
        rc = aim_errf(e, "%s: write failed: %s", o->metrics_path, strerror(errno));
    free(x);
    free(prefix);
    aim_batcher_free(b);
    return rc;
}
