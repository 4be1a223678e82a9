/*
 * pretrain.c - the AIM pretraining loop: batches with random resized crops,
 * flips and a random prefix per image, forward, backward, gradient clipping,
 * AdamW with warmup + cosine, a JSON Lines metrics log and a per-step
 * callback for progress, UIs and early stopping. Nothing is allocated inside
 * a step (of a one-process run).
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
    o->keep_last = 3;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
            "\"weight_decay\":%.9g,\"clip\":%.9g,\"seed\":%llu,\"crop\":%d,\"flip\":%d,"
            "\"scale_min\":%.9g,\"shift\":%d}\n",
            (long long)in->images, (long long)o->steps, o->batch, o->lr, (long long)o->warmup,
            o->adamw.weight_decay, o->clip, (unsigned long long)o->data.seed, o->data.crop,
            o->data.flip, o->data.scale_min, o->data.shift);
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

/* Reconstruct at N/2 and write "recon/val"; a failure is a message. */
static void recon_val_write(recon_val *r, aim_model *m, aim_tfevents *tf,
                            const aim_pretrain_opts *o, int64_t step)
{
    if (r->n == 0 || !tf)
        return;
    int N = aim_config_tokens(aim_model_config(m));
    size_t all = (size_t)r->n * r->C * r->H * r->H;
    double loss;
    aim_err re = {{0}};
    if (aim_model_reconstruct(m, r->x, r->n, N / 2 > 0 ? N / 2 : 1, r->mean, r->std, r->out,
                              r->out + all, r->out + 2 * all, &loss, &re) != 0 ||
        aim_recon_summary(tf, "recon/val", step, r->out, r->out + all, r->out + 2 * all, r->n,
                          r->C, r->H, &re) != 0)
        message(o, "step %lld: reconstruction images not written: %s", (long long)step, re.msg);
}

static void recon_val_free(recon_val *r)
{
    free(r->x);
    free(r->out);
    r->x = r->out = NULL;
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
    /* data parallel: this rank's rows [r0, r1) of every batch; rank 0 alone
     * writes files and runs the live probe */
    const aim_dist *dist = o->dist;
    if (o->batch < aim_dist_size(dist))
        return aim_errf(e, "pretrain: a batch of %d cannot be shared by %d ranks", o->batch,
                        aim_dist_size(dist));
    int64_t r0, r1;
    aim_dist_share(dist, o->batch, &r0, &r1);
    const int nb = (int)(r1 - r0), lead = aim_dist_rank(dist) == 0;
    const char *metrics_path = lead ? o->metrics_path : NULL;
    const char *ckpt_dir = lead ? o->ckpt_dir : NULL;
    const aim_dataset *probe_test = lead ? o->probe_test : NULL;
    if (aim_model_reserve(m, nb, e) != 0)
        return -1;
    aim_batcher_opts bo = o->data;
    bo.batch = o->batch;
    bo.patch = c->patch;
    aim_batcher *b = aim_batcher_new(ds, &bo, e);
    if (!b)
        return -1;
    const char *run = o->run_name ? o->run_name : "run";
    aim_runlog *rl = NULL; /* the metrics files (rank 0) */
    int bad = 0;
    if (metrics_path) {
        rl = aim_runlog_open(metrics_path, run, o->resume ? o->resume->step : -1, e);
        bad = !rl;
        if (rl && aim_runlog_warning(rl)[0])
            message(o, "warning: %s", aim_runlog_warning(rl));
    }
    if (dist) { /* every rank fails with rank 0, rather than wait for it */
        int v = bad;
        aim_dist_max(dist, &v, 1);
        if (v && !bad)
            aim_errf(e, "pretrain: another rank failed (its message says why)");
        bad = v;
    }
    if (bad) {
        aim_batcher_free(b);
        return -1;
    }
    aim_params *p = aim_model_params(m);
    if (aim_params_try_alloc_moments(p, e) != 0) {
        aim_batcher_free(b);
        aim_runlog_close(rl, NULL);
        return aim_err_prefix(e, "pretrain");
    }
    size_t img = (size_t)c->channels * c->image * c->image;
    float *x = aim_xaligned((size_t)nb * img * sizeof(float));     /* [nb, C, H, W] */
    int32_t *prefix = aim_xmalloc((size_t)nb * sizeof(int32_t));   /* [nb] */
    int64_t warmup = o->warmup >= 0 ? o->warmup : (int64_t)(0.025 * o->steps);
    if (warmup < 1)
        warmup = 1;
    aim_pretrain_opts eo = *o; /* what checkpoints record: the effective values */
    eo.warmup = warmup;
    int64_t start = 0;
    if (o->resume) {
        if (o->resume->step < 0 || o->resume->step > o->steps) {
            free(x);
            free(prefix);
            aim_batcher_free(b);
            aim_runlog_close(rl, NULL);
            return aim_errf(e, "pretrain: cannot resume at step %lld of %lld",
                            (long long)o->resume->step, (long long)o->steps);
        }
        start = o->resume->step;
        aim_batcher_seek(b, o->resume->data_position);
    }
    if (dist) {
        /* every rank starts from rank 0's weights, moments and position */
        aim_dist_bcast(dist, p->data, p->total * sizeof(float));
        aim_dist_bcast(dist, p->m, p->total * sizeof(float));
        aim_dist_bcast(dist, p->v, p->total * sizeof(float));
        int64_t where[2] = {start, (int64_t)aim_batcher_position(b)};
        aim_dist_bcast(dist, where, sizeof where);
        start = where[0];
        aim_batcher_seek(b, (uint64_t)where[1]);
    }
    double last_ckpt = now_s();
    float best_val = o->resume ? o->resume->best_val : 0;
    int val_images = o->val_images > 0 ? o->val_images : 512;
    eo.val_images = val_images;
    int log_every = o->log_every > 0 ? o->log_every : 1;
    aim_tfevents *tf = aim_runlog_events(rl); /* rank 0 alone has one */
    recon_val rv;
    recon_val_init(&rv, m, o, tf ? o->recon_images : 0);
    double t0 = now_s(), tprev = t0, ips = 0;
    double recent[100];
    int nrecent = 0, bad_run = 0;
    int rc = 0;
    res->steps_done = start;
    for (int64_t step = start; step < o->steps; step++) {
        aim_batcher_next_rows(b, (int)r0, (int)r1, x, NULL, prefix);
        aim_params_zero_grad(p);
        float loss = aim_model_forward_ex(m, x, prefix, nb, AIM_FWD_LOSS_ONLY);
        float peak = o->live_lr && *o->live_lr > 0 ? *o->live_lr : o->lr;
        if (dist) {
            /* the global batch's loss (a mean over all its target tokens)
             * and count, and rank 0's peak lr (a console may change it) */
            double cnt = (double)aim_model_loss_count(m);
            double g[3] = {(double)loss * cnt, cnt, lead ? peak : 0.0};
            aim_dist_sum(dist, g, 3);
            loss = (float)(g[0] / g[1]);
            peak = (float)g[2];
            aim_model_set_loss_count(m, (int64_t)g[1]);
        }
        aim_model_backward(m);
        aim_dist_sum_grads(dist, p);
        float lr = aim_lr_at(step, o->steps, warmup, peak);
        /* norm, clip and AdamW in one pass; a non-finite gradient norm skips
         * the update inside it */
        float norm = isfinite(loss) ? aim_clip_adamw_step(p, &o->adamw, lr, step + 1, o->clip)
                                    : aim_grad_norm(p);
        if (isfinite(loss) && isfinite(norm)) {
            bad_run = 0;
        } else {
            /* a NaN/Inf loss or gradient: never let it into the weights */
            res->nonfinite_steps++;
            bad_run++;
            const char *where = nonfinite_tensor(p);
            if (o->nan_policy == AIM_NAN_STOP || bad_run >= 10) {
                rc = aim_errf(e, "step %lld: non-finite %s%s%s (loss %g); stopped%s, no bad "
                                 "update was applied and no checkpoint written",
                              (long long)(step + 1), isfinite(loss) ? "gradient" : "loss",
                              where ? " in " : "", where ? where : "", loss,
                              bad_run >= 10 ? " after 10 bad steps in a row" : "");
                res->steps_done = step;
                break;
            }
            message(o, "step %lld: non-finite %s%s%s (loss %g): step skipped",
                    (long long)(step + 1), isfinite(loss) ? "gradient" : "loss",
                    where ? " in " : "", where ? where : "", loss);
        }

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
            .events = tf,
        };
        info.eta_s = (t - t0) / (step + 1 - start) * (o->steps - step - 1);
        res->steps_done = step + 1;
        res->final_loss = loss;
        int fail = 0;
        if (rl && ((step + 1) % log_every == 0 || step + 1 == o->steps)) {
            aim_runlog_begin(rl, step + 1, "train");
            aim_runlog_num(rl, "loss", loss);
            aim_runlog_num(rl, "lr", lr);
            aim_runlog_num(rl, "grad_norm", norm);
            aim_runlog_num(rl, "img_per_s", ips);
            aim_runlog_num(rl, "epoch", info.epoch);
            aim_runlog_num(rl, "time", info.elapsed_s);
            if (aim_runlog_end(rl) != 0) {
                rc = aim_errf(e, "%s: write failed", metrics_path);
                fail = 1;
            }
        }
        int stop = 0;
        if (!fail) {
            stop = o->on_step && o->on_step(o->ctx, &info);
            stop |= o->stop_flag && *o->stop_flag;
        }
        if (dist) { /* the ranks stop together */
            int v[2] = {stop, fail};
            aim_dist_max(dist, v, 2);
            stop = v[0];
            if (v[1] && !fail) {
                rc = aim_errf(e, "pretrain: stopped at step %lld: another rank failed",
                              (long long)(step + 1));
                break;
            }
        }
        if (fail)
            break;
        int req = o->requests ? o->requests(o->ctx) : 0;
        int best_now = 0;
        if (o->val && o->val_every > 0 && ((step + 1) % o->val_every == 0 || step + 1 == o->steps)) {
            float vl = dist ? validation_loss_dist(m, o->val, val_images, nb, bo.seed, x, prefix,
                                                   dist)
                            : aim_validation_loss(m, o->val, val_images, o->batch, bo.seed, x,
                                                  prefix);
            res->last_val = vl;
            if (best_val == 0 || vl < best_val) {
                best_val = vl;
                best_now = 1;
            }
            res->best_val = best_val;
            aim_runlog_begin(rl, step + 1, "val");
            aim_runlog_num(rl, "val_loss", vl);
            aim_runlog_num(rl, "best_val_loss", best_val);
            aim_runlog_end(rl);
            message(o, "step %lld: validation loss %.4f%s", (long long)(step + 1), vl,
                    best_now ? " (best so far)" : "");
            if (o->on_val)
                o->on_val(o->ctx, step + 1, vl);
            recon_val_write(&rv, m, tf, o, step + 1);
        }
        if ((req & AIM_REQ_PROBE) && !probe_test)
            message(o, "probe: this run has no probe data (probe_test)");
        if (probe_test && ((o->probe_every > 0 && (step + 1) % o->probe_every == 0) ||
                           (req & AIM_REQ_PROBE))) {
            int L = c->depth, ni = o->probe_images > 0 ? o->probe_images : 2000;
            float *top1 = aim_xcalloc((size_t)L, sizeof *top1);
            aim_err pe = {{0}};
            if (o->on_probe)
                o->on_probe(o->ctx, step + 1, NULL, L);
            if (aim_live_probe(m, ds, ni, probe_test, ni / 2, bo.seed, top1, &pe) == 0) {
                if (o->on_probe)
                    o->on_probe(o->ctx, step + 1, top1, L);
                int best = 0;
                for (int l = 1; l < L; l++)
                    best = top1[l] > top1[best] ? l : best;
                aim_runlog_begin(rl, step + 1, "probe");
                aim_runlog_num(rl, "images", ni);
                aim_runlog_array(rl, "top1", top1, L);
                aim_runlog_num(rl, "best_block", best + 1);
                aim_runlog_end(rl);
                char line[512];
                int off = snprintf(line, sizeof line, "step %lld: live linear probe top-1 per block:",
                                   (long long)(step + 1));
                for (int l = 0; l < L && off < 480; l++)
                    off += snprintf(line + off, sizeof line - (size_t)off, " %.1f", top1[l]);
                message(o, "%s (best block %d)", line, best + 1);
            } else {
                if (o->on_probe)
                    o->on_probe(o->ctx, step + 1, NULL, 0);
                message(o, "live probe failed: %s", pe.msg);
            }
            free(top1);
        }
        if (ckpt_dir && best_now) {
            aim_train_state st = {step + 1, aim_batcher_position(b), loss, best_val};
            char *path = aim_xasprintf("%s/best.safetensors", ckpt_dir);
            aim_err be = {{0}};
            if (aim_checkpoint_save(path, m, &eo, &st, &be) != 0) {
                res->checkpoint_failures++;
                message(o, "best checkpoint FAILED (training continues): %s", be.msg);
            }
            free(path);
        }
        if ((req & AIM_REQ_CHECKPOINT) && !ckpt_dir)
            message(o, "checkpoint: this run has no checkpoint folder");
        if (ckpt_dir) {
            int due = (stop && !(req & AIM_REQ_NO_SAVE)) || step + 1 == o->steps ||
                      (req & AIM_REQ_CHECKPOINT) ||
                      (o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) ||
                      (o->ckpt_minutes > 0 && t - last_ckpt >= 60 * o->ckpt_minutes);
            if (due) {
                aim_runlog_flush(rl); /* the log is never behind a checkpoint */
                aim_train_state st = {step + 1, aim_batcher_position(b), loss, best_val};
                checkpoint(m, &eo, &st, res);
                last_ckpt = now_s();
            }
        }
        if (stop) {
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
    /* the ranks' weights must still be bit-identical (they apply the same
     * update to the same values); say so if the MPI sums were not */
    if (dist && !aim_dist_same(dist, p->data, p->total * sizeof(float)))
        message(o, "warning: the ranks' weights differ after step %lld (the gradient sums were "
                   "not the same on every rank); rank 0's are the ones saved",
                (long long)res->steps_done);
    aim_err ce;
    if (aim_runlog_close(rl, &ce) != 0 && rc == 0)
        rc = aim_errf(e, "%s", ce.msg);
    recon_val_free(&rv);
    free(x);
    free(prefix);
    aim_batcher_free(b);
    return rc;
}
