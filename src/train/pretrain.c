/*
 * pretrain.c - the AIM pretraining loop: batches with random resized crops,
 * flips and a random prefix per image, forward, backward, gradient clipping,
 * AdamW with warmup + cosine, a JSON Lines metrics log and a per-step
 * callback for progress, UIs and early stopping. Nothing is allocated inside
 * a step (of a one-process run). The job is one pretrain_state and functions
 * over it (open, step, report, validate, live probe, checkpoint, close, at
 * the end of the file); aim_pretrain is the loop that calls them.
 *
 * Data parallel (o->dist, aim/dist.h): every rank runs this same loop on its
 * share of each global batch; after the forward the ranks agree on the
 * batch's loss and target count (one tiny allreduce), each backward divides
 * by the global count, the gradients are summed (bucketed allreduce), and
 * clipping and AdamW then see the one-process gradient on every rank. After
 * each step the ranks agree on whether to stop (a second tiny allreduce).
 */
#include "config.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/dist.h"
#include "aim/metrics.h"
#include "aim/probe.h"
#include "aim/io.h"
#include "aim/recon.h"
#include "aim/runlog.h"
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
    o->sys_every = 30;
    o->keep_last = 3;
}

/* the first tensor (in table order) whose gradient is not finite */
static const char *nonfinite_tensor(const aim_params *p)
{
    for (int i = 0; i < p->n; i++) {
        if (p->t[i].flags & AIM_P_FROZEN)
            continue;
        const float *g = p->grad + p->t[i].offset;
        for (size_t k = 0; k < p->t[i].numel; k++)
            if (!isfinite(g[k]))
                return p->t[i].name;
    }
    return NULL;
}

/* ------------------------------------------------------------ checkpoints */

static void message(const aim_pretrain_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void message(const aim_pretrain_opts *o, const char *fmt, ...)
{
    if (!o->on_message)
        return;
    char buf[AIM_ERR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    o->on_message(o->ctx, buf);
}

static void checkpoint(aim_model *m, const aim_pretrain_opts *o, const aim_train_state *s,
                       aim_pretrain_result *res)
{
    char *path = aim_xasprintf("%s/ckpt-%lld.safetensors", o->ckpt_dir, (long long)s->step);
    aim_err e = {{0}};
    if (aim_checkpoint_save(path, m, o, s, &e) != 0) {
        res->checkpoint_failures++;
        message(o, "checkpoint at step %lld FAILED (training continues, the previous checkpoint "
                   "is kept): %s",
                (long long)s->step, e.msg);
        free(path);
        return;
    }
    res->checkpoints_written++;
    snprintf(res->last_checkpoint, sizeof res->last_checkpoint, "%s", path);
    aim_checkpoint_prune(o->ckpt_dir, o->keep_last);
    message(o, "checkpoint saved: %s", path);
    free(path);
}

typedef struct run_info {
    const aim_config *c;
    const aim_pretrain_opts *o;
    const char *data;
    int64_t images;
} run_info;

static int write_run_info(FILE *f, void *ctx, aim_err *e)
{
    (void)e;
    const run_info *in = ctx;
    const aim_config *c = in->c;
    const aim_pretrain_opts *o = in->o;
    fprintf(f,
            "{\"image\":%d,\"channels\":%d,\"patch\":%d,\"width\":%d,\"depth\":%d,\"heads\":%d,"
            "\"head_width\":%d,\"head_depth\":%d,\"norm_eps\":%.9g,\n \"data\":",
            c->image, c->channels, c->patch, c->width, c->depth, c->heads, c->head_width,
            c->head_depth, c->norm_eps);
    aim_json_string(f, in->data);
    fprintf(f,
            ",\"images\":%lld,\"steps\":%lld,\"batch\":%d,\"lr\":%.9g,\"warmup\":%lld,"
            "\"weight_decay\":%.9g,\"clip\":%.9g",
            (long long)in->images, (long long)o->steps, o->batch, o->lr, (long long)o->warmup,
            o->adamw.weight_decay, o->clip);
    aim_json_precision(f, o->precision);
    fprintf(f, ",\"seed\":%llu,\"crop\":%d,\"flip\":%d,\"scale_min\":%.9g,\"shift\":%d}\n",
            (unsigned long long)o->data.seed, o->data.crop, o->data.flip, o->data.scale_min,
            o->data.shift);
    return 0; /* aim_write_atomic checks the stream */
}

int aim_pretrain_write_info(const char *path, const aim_config *c, const aim_pretrain_opts *o,
                            const char *data, int64_t images, aim_err *e)
{
    run_info in = {c, o, data, images};
    return aim_write_atomic(path, write_run_info, &in, e);
}

/* sum[0] += loss x targets and sum[1] += targets over images [i0, i1) */
static void validation_range(aim_model *m, const aim_dataset *ds, int i0, int i1, int batch,
                             uint64_t seed, float *x, int32_t *prefix, double sum[2])
{
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c);
    for (int j0 = i0; j0 < i1; j0 += batch) {
        int nb = i1 - j0 < batch ? i1 - j0 : batch;
        aim_dataset_get_batch(ds, j0, nb, 1, x, NULL);
        double targets = 0;
        for (int b = 0; b < nb; b++) {
            uint64_t h = aim_hash64(seed ^ aim_hash64((uint64_t)(j0 + b) + 0x7a1ULL));
            prefix[b] = 1 + (int32_t)(h % (uint64_t)(N - 1));
            targets += N - prefix[b];
        }
        float l = aim_model_forward_ex(m, x, prefix, nb, AIM_FWD_EVAL | AIM_FWD_LOSS_ONLY);
        sum[0] += (double)l * targets;
        sum[1] += targets;
    }
}

float aim_validation_loss(aim_model *m, const aim_dataset *ds, int n, int batch, uint64_t seed,
                          float *x, int32_t *prefix)
{
    if (n > ds->n)
        n = (int)ds->n;
    double sum[2] = {0, 0};
    validation_range(m, ds, 0, n, batch, seed, x, prefix, sum);
    return sum[1] > 0 ? (float)(sum[0] / sum[1]) : 0.0f;
}

/* The same over the ranks: each takes its share of the images in batches of
 * its share of the training batch; every rank gets the result. */
static float validation_loss_dist(aim_model *m, const aim_dataset *ds, int n, int batch,
                                  uint64_t seed, float *x, int32_t *prefix,
                                  const aim_dist *dist)
{
    if (n > ds->n)
        n = (int)ds->n;
    int64_t i0, i1;
    aim_dist_share(dist, n, &i0, &i1);
    double sum[2] = {0, 0};
    validation_range(m, ds, (int)i0, (int)i1, batch, seed, x, prefix, sum);
    aim_dist_sum(dist, sum, 2);
    return sum[1] > 0 ? (float)(sum[0] / sum[1]) : 0.0f;
}

/* ------------------------------------------------------------ recon/val */
/* The fixed images whose reconstructions go to the event file at each
 * validation point: the first n of the validation set, normalised as the
 * validation loss sees them (the validation set's statistics, which also
 * undo it). */
typedef struct recon_val {
    int n, C, H;
    float *x;      /* [n, C, H, H] */
    float *out;    /* input, prediction, target: 3 x [n, C, H, H] */
    float mean[AIM_MAX_CHANNELS], std[AIM_MAX_CHANNELS];
} recon_val;

static void recon_val_init(recon_val *r, const aim_model *m, const aim_pretrain_opts *o,
                           int want)
{
    const aim_config *c = aim_model_config(m);
    memset(r, 0, sizeof *r);
    if (want <= 0 || !o->val || o->val_every <= 0 || o->val->n <= 0)
        return;
    if (c->channels != 1 && c->channels != 3) {
        message(o, "recon images: a %d-channel model cannot be shown as a PNG; none are "
                   "written", c->channels);
        return;
    }
    r->n = want < o->val->n ? want : (int)o->val->n;
    r->C = c->channels;
    r->H = c->image;
    size_t img = (size_t)r->C * r->H * r->H;
    r->x = aim_xmalloc((size_t)r->n * img * sizeof(float));
    r->out = aim_xmalloc(3 * (size_t)r->n * img * sizeof(float));
    aim_dataset_get_batch(o->val, 0, r->n, 1, r->x, NULL);
    for (int k = 0; k < r->C; k++) {
        r->mean[k] = o->val->mean[k];
        r->std[k] = o->val->std[k];
    }
}

/* Reconstruct at N/2 and write "recon/val" to the event file, and for
 * other processes watching the run (`aim tui RUN`) the grid as recon.npy
 * beside the log (float32 [3, n, C, H, W]: input, prediction, target in
 * [0, 1]) with a "recon" line (loss, prefix, images) once it is in place;
 * a failure is a message. */
static void recon_val_write(recon_val *r, aim_model *m, aim_tfevents *tf, aim_runlog *rl,
                            const aim_pretrain_opts *o, int64_t step)
{
    if (r->n == 0 || !tf)
        return;
    int N = aim_config_tokens(aim_model_config(m));
    int S = N / 2 > 0 ? N / 2 : 1;
    size_t all = (size_t)r->n * r->C * r->H * r->H;
    double loss;
    aim_err re = {{0}};
    if (aim_model_reconstruct(m, r->x, r->n, S, r->mean, r->std, r->out, r->out + all,
                              r->out + 2 * all, &loss, &re) != 0 ||
        aim_recon_summary(tf, "recon/val", step, r->out, r->out + all, r->out + 2 * all, r->n,
                          r->C, r->H, &re) != 0) {
        message(o, "step %lld: reconstruction images not written: %s", (long long)step, re.msg);
        return;
    }
    if (aim_runlog_recon(rl, step, r->out, r->n, r->C, r->H, S, loss, &re) != 0)
        message(o, "step %lld: %s", (long long)step, re.msg);
}

static void recon_val_free(recon_val *r)
{
    free(r->x);
    free(r->out);
    r->x = r->out = NULL;
}

/* ------------------------------------------------------------ the job */
/* One run of aim_pretrain: what it trains, what it owns (batcher, log,
 * buffers) and where it stands. pretrain_open fills it, each step is
 * pretrain_step, pretrain_report, then pretrain_validate,
 * pretrain_live_probe and pretrain_checkpoint as they fall due, and
 * pretrain_close frees it, however far pretrain_open got. */
typedef struct pretrain_state {
    aim_model *m;
    const aim_dataset *ds;
    const aim_pretrain_opts *o;
    aim_pretrain_opts eo;          /* what checkpoints record: the effective values */
    aim_pretrain_result *res;
    aim_params *p;
    /* data parallel: this rank's rows [r0, r1) of every batch; rank 0
     * (lead) alone writes files and runs the live probe, so the others
     * have no ckpt_dir, probe_test or log */
    const aim_dist *dist;
    int64_t r0, r1;
    int nb, lead;
    const char *ckpt_dir;
    const aim_dataset *probe_test;
    aim_batcher *b;
    aim_runlog *rl;                /* the metrics files (rank 0) */
    aim_tfevents *tf;              /* its event file, or NULL */
    recon_val rv;
    float *x;                      /* [nb, C, H, W] */
    int32_t *prefix;               /* [nb] */
    int64_t warmup, start;         /* effective warmup steps; the first step */
    int val_images, log_every;
    aim_sys_meter sysm;            /* the "sys" lines' CPU meter */
    double sys_last;
    int started;                   /* pretrain_open succeeded */
    /* the last step done */
    float loss, lr, norm;
    /* where the run stands */
    float best_val;                /* 0 = none yet */
    int bad_run;                   /* non-finite steps in a row */
    double t0, t_last, last_ckpt;  /* start, end of the last step, last checkpoint */
    double ips;                    /* images per second, smoothed */
    double recent[100];            /* the last losses (a ring) */
    int nrecent;
} pretrain_state;

/* The options a run cannot start with: -1 with a message. */
static int check_opts(const aim_model *m, const aim_dataset *ds, const aim_pretrain_opts *o,
                      aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    if (o->steps <= 0)
        return aim_errf(e, "pretrain: steps must be positive (got %lld)", (long long)o->steps);
    if (o->batch <= 0 || o->batch > 65536)
        return aim_errf(e, "pretrain: batch must be in 1..65536 (got %d)", o->batch);
    if (!(o->lr > 0) || !isfinite(o->lr))
        return aim_errf(e, "pretrain: lr must be positive (got %g)", o->lr);
    if (aim_adamw_opts_check(&o->adamw, e) != 0)
        return aim_err_prefix(e, "pretrain");
    if (ds->c != c->channels || ds->h != c->image || ds->w != c->image)
        return aim_errf(e, "pretrain: the data is %dx%dx%d but the model takes %dx%dx%d", ds->c,
                        ds->h, ds->w, c->channels, c->image, c->image);
    if (o->recon_images < 0 || o->recon_images > AIM_RECON_IMAGES_MAX)
        return aim_errf(e, "pretrain: recon_images must be in 0..%d (got %d)",
                        AIM_RECON_IMAGES_MAX, o->recon_images);
    if (o->val && (o->val->c != c->channels || o->val->h != c->image || o->val->w != c->image))
        return aim_errf(e, "pretrain: the validation data is %dx%dx%d but the model takes %dx%dx%d",
                        o->val->c, o->val->h, o->val->w, c->channels, c->image, c->image);
    if (o->batch < aim_dist_size(o->dist))
        return aim_errf(e, "pretrain: a batch of %d cannot be shared by %d ranks", o->batch,
                        aim_dist_size(o->dist));
    if (o->resume && (o->resume->step < 0 || o->resume->step > o->steps))
        return aim_errf(e, "pretrain: cannot resume at step %lld of %lld",
                        (long long)o->resume->step, (long long)o->steps);
    return 0;
}

/* Rank 0's metrics log. A fresh run starts it anew (it continues from step
 * 0: whatever an earlier run killed before its first checkpoint logged in
 * this folder is dropped); a resumed run keeps what was logged up to its
 * checkpoint. Every rank fails with rank 0, rather than wait for it. */
static int open_log(pretrain_state *ps, aim_err *e)
{
    const aim_pretrain_opts *o = ps->o;
    int bad = 0;
    if (ps->lead && o->metrics_path) {
        ps->rl = aim_runlog_open(o->metrics_path, o->run_name ? o->run_name : "run",
                                 o->resume ? o->resume->step : 0, e);
        bad = !ps->rl;
        if (ps->rl && aim_runlog_warning(ps->rl)[0])
            message(o, "warning: %s", aim_runlog_warning(ps->rl));
    }
    if (ps->dist) {
        int v = bad;
        aim_dist_max(ps->dist, &v, 1);
        if (v && !bad)
            aim_errf(e, "pretrain: another rank failed (its message says why)");
        bad = v;
    }
    ps->tf = aim_runlog_events(ps->rl);
    return bad ? -1 : 0;
}

/* The first step and the data stream's position: the checkpoint's when
 * resuming; on ranks, every rank starts from rank 0's weights, moments and
 * position. */
static void start_position(pretrain_state *ps)
{
    const aim_pretrain_opts *o = ps->o;
    ps->start = 0;
    if (o->resume) {
        ps->start = o->resume->step;
        aim_batcher_seek(ps->b, o->resume->data_position);
    }
    if (ps->dist) {
        aim_params *p = ps->p;
        aim_dist_bcast(ps->dist, p->data, p->total * sizeof(float));
        aim_dist_bcast(ps->dist, p->m, p->total * sizeof(float));
        aim_dist_bcast(ps->dist, p->v, p->total * sizeof(float));
        int64_t where[2] = {ps->start, (int64_t)aim_batcher_position(ps->b)};
        aim_dist_bcast(ps->dist, where, sizeof where);
        ps->start = where[0];
        aim_batcher_seek(ps->b, (uint64_t)where[1]);
    }
}

/* Check the options, then take what the run needs: the model's buffers for
 * nb images, the batcher, the log, the AdamW moments and a batch. -1 with a
 * message; pretrain_close frees what was taken either way. */
static int pretrain_open(pretrain_state *ps, aim_model *m, const aim_dataset *ds,
                         const aim_pretrain_opts *o, aim_pretrain_result *res, aim_err *e)
{
    memset(ps, 0, sizeof *ps);
    memset(res, 0, sizeof *res);
    ps->m = m;
    ps->ds = ds;
    ps->o = o;
    ps->res = res;
    ps->dist = o->dist;
    if (check_opts(m, ds, o, e) != 0)
        return -1;
    const aim_config *c = aim_model_config(m);
    aim_dist_share(ps->dist, o->batch, &ps->r0, &ps->r1);
    ps->nb = (int)(ps->r1 - ps->r0);
    ps->lead = aim_dist_rank(ps->dist) == 0;
    ps->ckpt_dir = ps->lead ? o->ckpt_dir : NULL;
    ps->probe_test = ps->lead ? o->probe_test : NULL;
    if (aim_model_reserve(m, ps->nb, e) != 0)
        return -1;
    aim_batcher_opts bo = o->data;
    bo.batch = o->batch;
    bo.patch = c->patch;
    if (!(ps->b = aim_batcher_new(ds, &bo, e)) || open_log(ps, e) != 0)
        return -1;
    if (ps->ckpt_dir) /* what a run killed while writing left (the log's lock is ours now) */
        aim_remove_dead_temps(ps->ckpt_dir);
    ps->p = aim_model_params(m);
    if (aim_params_try_alloc_moments(ps->p, e) != 0)
        return aim_err_prefix(e, "pretrain");
    size_t img = (size_t)c->channels * c->image * c->image;
    ps->x = aim_xaligned((size_t)ps->nb * img * sizeof(float));
    ps->prefix = aim_xmalloc((size_t)ps->nb * sizeof(int32_t));
    ps->warmup = o->warmup >= 0 ? o->warmup : (int64_t)(0.025 * o->steps);
    if (ps->warmup < 1)
        ps->warmup = 1;
    ps->val_images = o->val_images > 0 ? o->val_images : 512;
    ps->log_every = o->log_every > 0 ? o->log_every : 1;
    aim_sys_start(&ps->sysm);
    ps->sys_last = aim_now();
    ps->eo = *o;
    ps->eo.warmup = ps->warmup;
    ps->eo.val_images = ps->val_images;
    start_position(ps);
    ps->last_ckpt = aim_now();
    ps->best_val = o->resume ? o->resume->best_val : 0;
    recon_val_init(&ps->rv, m, o, ps->tf ? o->recon_images : 0);
    ps->t0 = ps->t_last = aim_now();
    res->steps_done = ps->start;
    ps->started = 1;
    return 0;
}

/* A non-finite loss or gradient: the update was not applied. Skip the step
 * with a message, or stop (-1) under AIM_NAN_STOP and at the 10th bad step
 * in a row. */
static int nonfinite_step(pretrain_state *ps, int64_t step, aim_err *e)
{
    const aim_pretrain_opts *o = ps->o;
    ps->res->nonfinite_steps++;
    ps->bad_run++;
    const char *where = nonfinite_tensor(ps->p);
    const char *what = isfinite(ps->loss) ? "gradient" : "loss";
    if (o->nan_policy == AIM_NAN_STOP || ps->bad_run >= 10) {
        ps->res->steps_done = step;
        return aim_errf(e, "step %lld: non-finite %s%s%s (loss %g); stopped%s, no bad update "
                           "was applied and no checkpoint written",
                        (long long)(step + 1), what, where ? " in " : "", where ? where : "",
                        ps->loss, ps->bad_run >= 10 ? " after 10 bad steps in a row" : "");
    }
    message(o, "step %lld: non-finite %s%s%s (loss %g): step skipped", (long long)(step + 1),
            what, where ? " in " : "", where ? where : "", ps->loss);
    return 0;
}

/* Step `step` (0-based): this rank's rows of the next batch, forward, the
 * ranks' loss, backward, the summed gradient, then norm, clip and AdamW in
 * one pass (a non-finite gradient norm skips the update inside it). Leaves
 * loss, lr and norm in ps; -1 when the NaN policy stops the run. */
static int pretrain_step(pretrain_state *ps, int64_t step, aim_err *e)
{
    const aim_pretrain_opts *o = ps->o;
    aim_batcher_next_rows(ps->b, (int)ps->r0, (int)ps->r1, ps->x, NULL, ps->prefix);
    aim_params_zero_grad(ps->p);
    float loss = aim_model_forward_ex(ps->m, ps->x, ps->prefix, ps->nb, AIM_FWD_LOSS_ONLY);
    float peak = o->live_lr && *o->live_lr > 0 ? *o->live_lr : o->lr;
    if (ps->dist) {
        /* the global batch's loss (a mean over all its target tokens) and
         * count, and rank 0's peak lr (a console may change it) */
        double cnt = (double)aim_model_loss_count(ps->m);
        double g[3] = {(double)loss * cnt, cnt, ps->lead ? peak : 0.0};
        aim_dist_sum(ps->dist, g, 3);
        loss = (float)(g[0] / g[1]);
        peak = (float)g[2];
        aim_model_set_loss_count(ps->m, (int64_t)g[1]);
    }
    aim_model_backward(ps->m);
    aim_dist_sum_grads(ps->dist, ps->p);
    ps->loss = loss;
    ps->lr = aim_lr_at(step, o->steps, ps->warmup, peak);
    ps->norm = isfinite(loss) ? aim_clip_adamw_step(ps->p, &o->adamw, ps->lr, step + 1, o->clip)
                              : aim_grad_norm(ps->p);
    if (isfinite(loss) && isfinite(ps->norm)) {
        ps->bad_run = 0;
        return 0;
    }
    return nonfinite_step(ps, step, e);
}

/* The "train" line of the log (every log_every steps and the last): -1 when
 * the log cannot be written. */
static int log_train(pretrain_state *ps, const aim_step_info *info)
{
    if (!ps->rl || (info->step % ps->log_every != 0 && info->step != info->total))
        return 0;
    aim_runlog_begin(ps->rl, info->step, "train");
    aim_runlog_num(ps->rl, "loss", info->loss);
    aim_runlog_num(ps->rl, "lr", info->lr);
    aim_runlog_num(ps->rl, "grad_norm", info->grad_norm);
    aim_runlog_num(ps->rl, "img_per_s", info->img_per_s);
    aim_runlog_num(ps->rl, "epoch", info->epoch);
    aim_runlog_num(ps->rl, "time", info->elapsed_s);
    return aim_runlog_end(ps->rl);
}

/* After a step: throughput, the result so far, the log line, on_step and
 * the stop flag (*stop); the ranks stop together. -1 when the log cannot be
 * written, here or on another rank. */
static int pretrain_report(pretrain_state *ps, int64_t step, int *stop, aim_err *e)
{
    const aim_pretrain_opts *o = ps->o;
    double t = aim_now(), dt = t - ps->t_last;
    ps->t_last = t;
    double inst = dt > 0 ? o->batch / dt : 0;
    ps->ips = step == 0 ? inst : 0.9 * ps->ips + 0.1 * inst;
    ps->recent[ps->nrecent++ % 100] = ps->loss;
    aim_step_info info = {
        .step = step + 1,
        .total = o->steps,
        .images = (step + 1) * (int64_t)o->batch,
        .epoch = (double)(step + 1) * o->batch / (double)ps->ds->n,
        .loss = ps->loss,
        .lr = ps->lr,
        .grad_norm = ps->norm,
        .img_per_s = ps->ips,
        .elapsed_s = t - ps->t0,
        .events = ps->tf,
    };
    info.eta_s = (t - ps->t0) / (step + 1 - ps->start) * (o->steps - step - 1);
    ps->res->steps_done = step + 1;
    ps->res->final_loss = ps->loss;
    int fail = log_train(ps, &info) != 0;
    if (ps->rl && o->sys_every > 0 && t - ps->sys_last >= o->sys_every) {
        aim_sys sys; /* the process and the machine, for the run's followers too */
        aim_sys_sample(&ps->sysm, &sys);
        ps->sys_last = t;
        aim_runlog_begin(ps->rl, step + 1, "sys");
        aim_runlog_num(ps->rl, "cores", sys.cores);
        aim_runlog_num(ps->rl, "rss_mb", sys.rss_mb);
        aim_runlog_num(ps->rl, "load1", sys.load1);
        fail |= aim_runlog_end(ps->rl) != 0;
    }
    if (fail)
        aim_errf(e, "%s: write failed", o->metrics_path);
    *stop = 0;
    if (!fail) {
        *stop = o->on_step && o->on_step(o->ctx, &info);
        *stop |= o->stop_flag && *o->stop_flag;
    }
    if (ps->dist) {
        int v[2] = {*stop, fail};
        aim_dist_max(ps->dist, v, 2);
        *stop = v[0];
        if (v[1] && !fail)
            return aim_errf(e, "pretrain: stopped at step %lld: another rank failed",
                            (long long)(step + 1));
    }
    return fail ? -1 : 0;
}

/* The validation loss when it is due (every val_every steps and the last),
 * its log line, message and reconstructions; 1 when it is the best so far. */
static int pretrain_validate(pretrain_state *ps, int64_t step)
{
    const aim_pretrain_opts *o = ps->o;
    if (!o->val || o->val_every <= 0 || ((step + 1) % o->val_every != 0 && step + 1 != o->steps))
        return 0;
    uint64_t seed = o->data.seed;
    float vl = ps->dist ? validation_loss_dist(ps->m, o->val, ps->val_images, ps->nb, seed,
                                               ps->x, ps->prefix, ps->dist)
                        : aim_validation_loss(ps->m, o->val, ps->val_images, o->batch, seed,
                                              ps->x, ps->prefix);
    int best_now = 0;
    ps->res->last_val = vl;
    if (ps->best_val == 0 || vl < ps->best_val) {
        ps->best_val = vl;
        best_now = 1;
    }
    ps->res->best_val = ps->best_val;
    aim_runlog_begin(ps->rl, step + 1, "val");
    aim_runlog_num(ps->rl, "val_loss", vl);
    aim_runlog_num(ps->rl, "best_val_loss", ps->best_val);
    aim_runlog_end(ps->rl);
    message(o, "step %lld: validation loss %.4f%s", (long long)(step + 1), vl,
            best_now ? " (best so far)" : "");
    if (o->on_val)
        o->on_val(o->ctx, step + 1, vl);
    recon_val_write(&ps->rv, ps->m, ps->tf, ps->rl, o, step + 1);
    return best_now;
}

/* A live probe's result: the "probe" line of the log and a message. */
static void log_probe(pretrain_state *ps, int64_t step, const float *top1, int L, int ni)
{
    int best = 0;
    for (int l = 1; l < L; l++)
        best = top1[l] > top1[best] ? l : best;
    aim_runlog_begin(ps->rl, step + 1, "probe");
    aim_runlog_num(ps->rl, "images", ni);
    aim_runlog_array(ps->rl, "top1", top1, L);
    aim_runlog_num(ps->rl, "best_block", best + 1);
    aim_runlog_end(ps->rl);
    char line[512];
    int off = snprintf(line, sizeof line, "step %lld: live linear probe top-1 per block:",
                       (long long)(step + 1));
    for (int l = 0; l < L && off < 480; l++)
        off += snprintf(line + off, sizeof line - (size_t)off, " %.1f", top1[l]);
    message(ps->o, "%s (best block %d)", line, best + 1);
}

/* The live linear probe (rank 0) every probe_every steps and when a console
 * asks (req); a failure is a message. */
static void pretrain_live_probe(pretrain_state *ps, int64_t step, int req)
{
    const aim_pretrain_opts *o = ps->o;
    if ((req & AIM_REQ_PROBE) && !ps->probe_test)
        message(o, "probe: this run has no probe data (probe_test)");
    if (!ps->probe_test ||
        !((o->probe_every > 0 && (step + 1) % o->probe_every == 0) || (req & AIM_REQ_PROBE)))
        return;
    int L = aim_model_config(ps->m)->depth, ni = o->probe_images > 0 ? o->probe_images : 2000;
    float *top1 = aim_xcalloc((size_t)L, sizeof *top1);
    aim_err pe = {{0}};
    if (o->on_probe)
        o->on_probe(o->ctx, step + 1, NULL, L);
    if (aim_live_probe(ps->m, ps->ds, ni, ps->probe_test, ni / 2, o->data.seed, top1, &pe) == 0) {
        if (o->on_probe)
            o->on_probe(o->ctx, step + 1, top1, L);
        log_probe(ps, step, top1, L, ni);
    } else {
        if (o->on_probe)
            o->on_probe(o->ctx, step + 1, NULL, 0);
        message(o, "live probe failed: %s", pe.msg);
    }
    free(top1);
}

/* Checkpoints (rank 0): best.safetensors after a best validation, and
 * ckpt-<step> when due: at a stop (unless the console said not to), at the
 * end, on request, every ckpt_every steps or ckpt_minutes minutes. A failed
 * write is a message; training continues. */
static void pretrain_checkpoint(pretrain_state *ps, int64_t step, int stop, int req,
                                int best_now)
{
    const aim_pretrain_opts *o = ps->o;
    aim_train_state st = {step + 1, aim_batcher_position(ps->b), ps->loss, ps->best_val};
    if (ps->ckpt_dir && best_now) {
        char *path = aim_xasprintf("%s/best.safetensors", ps->ckpt_dir);
        aim_err be = {{0}};
        if (aim_checkpoint_save(path, ps->m, &ps->eo, &st, &be) != 0) {
            ps->res->checkpoint_failures++;
            message(o, "best checkpoint FAILED (training continues): %s", be.msg);
        }
        free(path);
    }
    if ((req & AIM_REQ_CHECKPOINT) && !ps->ckpt_dir)
        message(o, "checkpoint: this run has no checkpoint folder");
    if (!ps->ckpt_dir)
        return;
    int due = (stop && !(req & AIM_REQ_NO_SAVE)) || step + 1 == o->steps ||
              (req & AIM_REQ_CHECKPOINT) ||
              (o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) ||
              (o->ckpt_minutes > 0 && ps->t_last - ps->last_ckpt >= 60 * o->ckpt_minutes);
    if (!due)
        return;
    aim_runlog_flush(ps->rl); /* the log is never behind a checkpoint */
    checkpoint(ps->m, &ps->eo, &st, ps->res);
    ps->last_ckpt = aim_now();
}

/* The run's summary (when it started) and the one cleanup path: the log
 * is closed (its write error is the result if there was none before), the
 * rest freed. Returns rc. */
static int pretrain_close(pretrain_state *ps, int rc, aim_err *e)
{
    if (ps->started) {
        int k = ps->nrecent < 100 ? ps->nrecent : 100;
        double s = 0;
        for (int i = 0; i < k; i++)
            s += ps->recent[i];
        ps->res->mean_loss_last = k ? (float)(s / k) : 0;
        ps->res->seconds = aim_now() - ps->t0;
        /* the ranks' weights must still be bit-identical (they apply the
         * same update to the same values); say so if the MPI sums were not */
        if (ps->dist && !aim_dist_same(ps->dist, ps->p->data, ps->p->total * sizeof(float)))
            message(ps->o, "warning: the ranks' weights differ after step %lld (the gradient "
                           "sums were not the same on every rank); rank 0's are the ones saved",
                    (long long)ps->res->steps_done);
    }
    aim_err ce;
    if (aim_runlog_close(ps->rl, &ce) != 0 && rc == 0)
        rc = aim_errf(e, "%s", ce.msg);
    recon_val_free(&ps->rv);
    free(ps->x);
    free(ps->prefix);
    aim_batcher_free(ps->b);
    return rc;
}

int aim_pretrain(aim_model *m, const aim_dataset *ds, const aim_pretrain_opts *o,
                 aim_pretrain_result *res, aim_err *e)
{
    pretrain_state ps;
    int rc = pretrain_open(&ps, m, ds, o, res, e);
    for (int64_t step = ps.start; rc == 0 && step < o->steps; step++) {
        int stop;
        if (pretrain_step(&ps, step, e) != 0 || pretrain_report(&ps, step, &stop, e) != 0) {
            rc = -1;
            break;
        }
        int req = o->requests ? o->requests(o->ctx) : 0;
        int best_now = pretrain_validate(&ps, step);
        pretrain_live_probe(&ps, step, req);
        pretrain_checkpoint(&ps, step, stop, req, best_now);
        if (stop) {
            res->stopped = 1;
            break;
        }
    }
    return pretrain_close(&ps, rc, e);
}
