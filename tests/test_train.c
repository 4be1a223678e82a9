/*
 * test_train.c - AdamW against a hand computation, the warmup + cosine
 * schedule, gradient clipping, and the pretraining loop: the loss falls on
 * synthetic data, the same seed gives the same losses, metrics are logged,
 * reconstruction grids reach the TensorBoard event file (recon_images).
 *
 * Each part is a named case (run_case) that builds what it needs and
 * reports its own checks (`# case NAME: N checks, F failed`): a failure in
 * one does not hide the others.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "aim/recon.h"
#include "aim/train.h"
#include "tap.h"
#include "tfread.h"

typedef struct record {
    float loss[64];
    int n;
} record;

static int rec_step(void *ctx, const aim_step_info *s)
{
    record *r = ctx;
    if (r->n < 64)
        r->loss[r->n++] = s->loss;
    return 0;
}

typedef struct lr_probe {
    float live;     /* what the "console" sets */
    float seen[8];  /* lr reported per step */
} lr_probe;

static int change_lr(void *ctx, const aim_step_info *s)
{
    lr_probe *p = ctx;
    if (s->step <= 8)
        p->seen[s->step - 1] = s->lr;
    if (s->step == 4)
        p->live = 1e-4f;
    return 0;
}

/* counts the steps whose info carries the job's event file, and those
 * without */
static int count_events(void *ctx, const aim_step_info *s)
{
    int *n = ctx;
    n[s->events ? 0 : 1]++;
    return 0;
}

/* The image summaries of dir/events.out.tfevents.aim into im[max]; -1 if
 * the file is missing or malformed or a CRC is wrong. *records: all records. */
static int read_images(const char *dir, tf_image *im, int max, uint8_t **buf, int *records)
{
    char path[600];
    snprintf(path, sizeof path, "%s/events.out.tfevents.aim", dir);
    size_t n;
    aim_err e;
    *buf = NULL;
    if (aim_read_file(path, 1 << 26, buf, &n, &e) != 0)
        return -1;
    int crc_ok = 0;
    int k = tf_images(*buf, n, im, max, &crc_ok, records);
    return crc_ok ? k : -1;
}

static int stop_at_3(void *ctx, const aim_step_info *s)
{
    return s->step >= 3;
}

/* ------------------------------------------------------------ fixtures */

/* A two-tensor table, w with weight decay and b without, two values each,
 * with their values and gradients set. */
typedef struct table2 {
    aim_params p;
    float *w, *b;   /* (2) each */
    float *gw, *gb; /* (2) each */
    int iw, ib;
} table2;

static void table2_new(table2 *t)
{
    memset(t, 0, sizeof *t);
    int64_t s2[1] = {2};
    t->iw = aim_params_add(&t->p, "w", 1, s2, AIM_P_DECAY);
    t->ib = aim_params_add(&t->p, "b", 1, s2, 0);
    aim_params_alloc(&t->p);
    t->w = t->p.data + t->p.t[t->iw].offset, t->b = t->p.data + t->p.t[t->ib].offset;
    t->gw = t->p.grad + t->p.t[t->iw].offset, t->gb = t->p.grad + t->p.t[t->ib].offset;
    t->w[0] = 1.0f, t->w[1] = -2.0f, t->b[0] = 0.5f, t->b[1] = 0.0f;
    t->gw[0] = 0.1f, t->gw[1] = -0.3f, t->gb[0] = 1.0f, t->gb[1] = 0.0f;
}

/* The model of the pretraining cases: micro at 1 x 16 x 16, patch 4, width
 * 32. 0, or -1 after a failed check. */
static int train_config(aim_config *c)
{
    aim_err e = {{0}};
    if (aim_config_preset("micro", c, &e) != 0) {
        tap_ok(0, "setup: the micro preset: %s", e.msg);
        return -1;
    }
    c->channels = 1;
    c->image = 16;
    c->patch = 4;
    c->width = 32;
    c->heads = 2;
    c->head_width = 32;
    return 0;
}

static const aim_synth_opts train_synth = {.n = 512, .c = 1, .h = 16, .w = 16, .nclasses = 10,
                                           .seed = 1};

/* the training set: 512 synthetic 16 x 16 images (NULL after a failed
 * check) */
static aim_dataset *train_data(void)
{
    aim_err e = {{0}};
    aim_dataset *ds = aim_data_synthetic(&train_synth, &e);
    if (!ds)
        tap_ok(0, "setup: synthetic data: %s", e.msg);
    return ds;
}

/* aim_model_new, or one failed check */
static aim_model *new_model(const aim_config *c, uint64_t seed)
{
    aim_err e = {{0}};
    aim_model *m = aim_model_new(c, seed, &e);
    if (!m)
        tap_ok(0, "setup: a model: %s", e.msg);
    return m;
}

/* The config, the data and a model of seed 7 that most pretraining cases
 * start from. */
typedef struct fixture {
    aim_config c;
    aim_dataset *ds;
    aim_model *m;
} fixture;

static void fixture_free(fixture *f)
{
    aim_model_free(f->m);
    aim_dataset_free(f->ds);
    memset(f, 0, sizeof *f);
}

/* 0, or -1 after a failed check (nothing left to free) */
static int fixture_new(fixture *f)
{
    memset(f, 0, sizeof *f);
    if (train_config(&f->c) != 0 || !(f->ds = train_data()))
        return -1;
    if (!(f->m = new_model(&f->c, 7))) {
        fixture_free(f);
        return -1;
    }
    return 0;
}

/* the options of the pretraining cases: 60 steps of 16 images at 3e-3 */
static void base_opts(aim_pretrain_opts *po)
{
    aim_pretrain_opts_default(po);
    po->steps = 60;
    po->batch = 16;
    po->lr = 3e-3f;
}

/* ------------------------------------------------------------ the cases */

/* AdamW on a two-tensor table against PyTorch's formulas */
static void case_adamw(void)
{
    table2 t;
    table2_new(&t);
    float *w = t.w, *b = t.b;
    aim_adamw_opts o;
    aim_adamw_opts_default(&o);
    tap_ok(o.beta1 == 0.9f && o.beta2 == 0.95f && o.eps == 1e-8f && o.weight_decay == 0.05f,
           "AdamW defaults are the AIM recipe");
    aim_adamw_step(&t.p, &o, 0.01f, 1);
    /* step 1: mhat = g, vhat = g^2 -> update = g/(|g| + eps) = sign(g) */
    double ew0 = 1.0 * (1 - 0.01 * 0.05) - 0.01 * (0.1 / (0.1 + 1e-8));
    double eb0 = 0.5 - 0.01 * 1.0 / (1.0 + 1e-8);
    tap_ok(tap_close(w[0], ew0, 1e-6, 0) && tap_close(b[0], eb0, 1e-6, 0) && b[1] == 0.0f,
           "first AdamW step: decayed weight %.7f (expected %.7f), bias %.7f", w[0], ew0, b[0]);
    /* second step with a new gradient, computed by hand in double */
    double am1 = 0.1 * 0.1, av1 = 0.05 * 0.01; /* after step 1: m = (1-b1) g, v = (1-b2) g^2 */
    double g2 = 0.2;
    t.gw[0] = (float)g2;
    double am2 = 0.9 * am1 + 0.1 * g2, av2 = 0.95 * av1 + 0.05 * g2 * g2;
    double mh = am2 / (1 - 0.81), vh = av2 / (1 - 0.9025);
    double ew1 = ew0 * (1 - 0.02 * 0.05) - 0.02 * mh / (sqrt(vh) + 1e-8);
    aim_adamw_step(&t.p, &o, 0.02f, 2);
    tap_ok(tap_close(w[0], ew1, 1e-5, 0), "second AdamW step with bias correction (%.7f vs %.7f)",
           w[0], ew1);
    t.p.t[t.ib].flags |= AIM_P_FROZEN;
    float bfrozen = b[0];
    aim_adamw_step(&t.p, &o, 0.02f, 3);
    tap_ok(b[0] == bfrozen, "frozen tensors are not updated");
    aim_params_free(&t.p);
}

static void case_clipping(void)
{
    table2 t;
    table2_new(&t);
    t.gw[0] = 3, t.gw[1] = 0, t.gb[0] = 4, t.gb[1] = 0;
    tap_ok(tap_close(aim_grad_norm(&t.p), 5.0, 1e-6, 0), "global grad norm = 5");
    float n0 = aim_clip_grad_norm(&t.p, 1.0f);
    tap_ok(n0 == 5.0f && tap_close(aim_grad_norm(&t.p), 1.0, 1e-5, 0) &&
               tap_close(t.gw[0] / t.gb[0], 0.75, 1e-6, 0),
           "clip to 1 scales every gradient by the same factor");
    aim_clip_grad_norm(&t.p, 10.0f);
    tap_ok(tap_close(aim_grad_norm(&t.p), 1.0, 1e-5, 0), "a norm below the limit is untouched");
    aim_params_free(&t.p);
}

/* the fused clip + AdamW step = clip, then AdamW, to the bit; on a table
 * big enough for every thread, with a frozen tensor in the middle */
static void case_fused_clip_adamw(void)
{
    aim_adamw_opts o;
    aim_adamw_opts_default(&o);
    aim_params q1 = {0}, q2 = {0};
    int64_t sh[3][1] = {{70001}, {333}, {120000}};
    for (int i = 0; i < 3; i++) {
        aim_params_add(&q1, i == 1 ? "frozen" : "t", 1, sh[i], i == 2 ? 0 : AIM_P_DECAY);
        aim_params_add(&q2, i == 1 ? "frozen" : "t", 1, sh[i], i == 2 ? 0 : AIM_P_DECAY);
    }
    q1.t[1].flags |= AIM_P_FROZEN;
    q2.t[1].flags |= AIM_P_FROZEN;
    aim_params_alloc(&q1);
    aim_params_alloc(&q2);
    aim_rng rng;
    aim_rng_seed(&rng, 5);
    for (size_t k = 0; k < q1.total; k++) {
        q1.data[k] = q2.data[k] = (float)aim_rng_normal(&rng);
        q1.grad[k] = q2.grad[k] = (float)(0.01 * aim_rng_normal(&rng));
    }
    int same = 1;
    float n1 = 0, n2 = 0;
    for (int step = 1; step <= 3; step++) {
        float maxn = step == 2 ? 1e6f : 1.0f; /* step 2 does not clip */
        n1 = aim_clip_grad_norm(&q1, maxn);
        aim_adamw_step(&q1, &o, 1e-3f, step);
        n2 = aim_clip_adamw_step(&q2, &o, 1e-3f, step, maxn);
        same &= n1 == n2;
        for (size_t k = 0; k < q1.total; k++) {
            same &= q1.data[k] == q2.data[k] && q1.m[k] == q2.m[k] && q1.v[k] == q2.v[k];
            q2.grad[k] = q1.grad[k] = (float)(0.01 * aim_rng_normal(&rng));
        }
    }
    tap_ok(same, "aim_clip_adamw_step = aim_clip_grad_norm + aim_adamw_step, bit for bit "
                 "(norm %g)", n1);
    aim_params_free(&q1);
    aim_params_free(&q2);
}

static void case_schedule(void)
{
    tap_ok(tap_close(aim_lr_at(0, 100, 10, 1e-3f), 1e-4, 1e-6, 0) &&
               tap_close(aim_lr_at(9, 100, 10, 1e-3f), 1e-3, 1e-6, 0),
           "linear warmup reaches the peak at the end of warmup");
    tap_ok(tap_close(aim_lr_at(55, 100, 10, 1e-3f), 0.5e-3, 1e-5, 0),
           "cosine is at half the peak half-way: %g", aim_lr_at(55, 100, 10, 1e-3f));
    tap_ok(aim_lr_at(99, 100, 10, 1e-3f) < 1e-6 && aim_lr_at(99, 100, 10, 1e-3f) >= 0,
           "cosine ends near zero");
    int mono = 1;
    for (int s = 10; s < 99; s++)
        mono &= aim_lr_at(s + 1, 100, 10, 1e-3f) <= aim_lr_at(s, 100, 10, 1e-3f);
    tap_ok(mono, "the cosine part decreases monotonically");
}

/* the metrics log of the 60-step run named "t" */
static void check_metrics_log(const char *path)
{
    aim_err e = {{0}};
    uint8_t *log;
    size_t loglen;
    int lines = 0;
    if (aim_read_file(path, 1 << 20, &log, &loglen, &e) != 0) {
        tap_ok(0, "metrics file written: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < loglen; i++)
        lines += log[i] == '\n';
    const char *first = "{\"run\":\"t\",\"step\":1,\"kind\":\"train\",\"wall\":";
    tap_ok(lines == 60 && tap_contains((char *)log, first) &&
               tap_contains((char *)log, ",\"loss\":"),
           "metrics.jsonl has one JSON line per step with run, step, kind, wall, loss");
    free(log);
}

/* pretraining on synthetic data: the loss falls, the metrics are logged,
 * the same seed gives the same run */
static void case_pretrain(void)
{
    aim_err e = {{0}};
    aim_config c;
    if (train_config(&c) != 0)
        return;
    aim_dataset *ds = aim_data_synthetic(&train_synth, &e);
    tap_ok(ds != NULL, "synthetic data: %s", ds ? "ok" : e.msg);
    if (!ds)
        return;
    aim_model *m1 = new_model(&c, 7), *m2 = new_model(&c, 7);
    if (!m1 || !m2) {
        aim_model_free(m1);
        aim_model_free(m2);
        aim_dataset_free(ds);
        return;
    }
    aim_pretrain_opts po;
    base_opts(&po);
    po.metrics_path = tap_path("metrics.jsonl");
    po.run_name = "t";
    record r1 = {0}, r2 = {0};
    po.on_step = rec_step;
    po.ctx = &r1;
    aim_pretrain_result res;
    tap_ok(aim_pretrain(m1, ds, &po, &res, &e) == 0 && res.steps_done == 60,
           "60 steps of pretraining");
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        first += r1.loss[i] / 10;
        last += r1.loss[50 + i] / 10;
    }
    tap_ok(last < 0.8 * first, "the loss falls: mean of the first 10 steps %.4f, last 10 %.4f",
           first, last);
    check_metrics_log(po.metrics_path);
    po.ctx = &r2;
    po.metrics_path = NULL;
    aim_pretrain(m2, ds, &po, &res, &e);
    tap_ok(r2.n == 60 && !memcmp(r1.loss, r2.loss, sizeof r1.loss),
           "the same seed gives the same loss sequence");
    tap_ok(!memcmp(aim_model_params(m1)->data, aim_model_params(m2)->data,
                   aim_model_params(m1)->total * 4),
           "... and the same final weights");
    aim_model_free(m1);
    aim_model_free(m2);
    aim_dataset_free(ds);
}

/* |grad - g| / |g| over n values, with the squared norms |grad - g|^2 and
 * |g|^2 in *diff2 and *norm2 (the check compares those, without the
 * division) */
static double rel_diff(const float *grad, const float *g, size_t n, double *diff2, double *norm2)
{
    double diff = 0, norm = 0;
    for (size_t k = 0; k < n; k++) {
        diff += ((double)grad[k] - g[k]) * ((double)grad[k] - g[k]);
        norm += (double)g[k] * g[k];
    }
    *diff2 = diff;
    *norm2 = norm;
    return sqrt(diff / norm);
}

/* data parallel arithmetic (aim_model_set_loss_count): two shares of a
 * batch, each backward divided by the whole batch's target count, add up to
 * the whole batch's gradient, and the count-weighted losses to its loss */
static void case_loss_count(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_model *md = f.m;
    aim_params *pd = aim_model_params(md);
    aim_batcher_opts bo;
    aim_batcher_opts_default(&bo);
    bo.batch = 16;
    bo.patch = f.c.patch;
    aim_batcher *bt = aim_batcher_new(f.ds, &bo, &e);
    if (!bt) {
        tap_ok(0, "setup: a batcher: %s", e.msg);
        fixture_free(&f);
        return;
    }
    size_t img = (size_t)f.c.image * f.c.image * f.c.channels;
    float *x = aim_xmalloc(16 * img * sizeof(float));
    int32_t pre[16];
    aim_batcher_next(bt, x, NULL, pre);
    aim_params_zero_grad(pd);
    float whole = aim_model_forward(md, x, pre, 16);
    int64_t count = aim_model_loss_count(md);
    aim_model_backward(md);
    float *g = aim_xmalloc(pd->total * sizeof(float));
    memcpy(g, pd->grad, pd->total * sizeof(float));
    aim_params_zero_grad(pd);
    float l1 = aim_model_forward(md, x, pre, 7);
    int64_t c1 = aim_model_loss_count(md);
    aim_model_set_loss_count(md, count);
    aim_model_backward(md);
    float l2 = aim_model_forward(md, x + 7 * img, pre + 7, 9);
    int64_t c2 = aim_model_loss_count(md);
    aim_model_set_loss_count(md, count);
    aim_model_backward(md);
    double diff, norm, rel = rel_diff(pd->grad, g, pd->total, &diff, &norm);
    double joined = ((double)l1 * c1 + (double)l2 * c2) / (double)count;
    tap_ok(c1 + c2 == count && tap_close(joined, whole, 1e-6, 0) &&
               sqrt(diff) <= 1e-6 * sqrt(norm),
           "shares of 7 + 9 images with the batch's count (%lld targets) give its loss "
           "(%.7f vs %.7f) and gradient (relative difference %.2g)",
           (long long)count, joined, whole, rel);
    /* the count holds until the next forward */
    aim_params_zero_grad(pd);
    aim_model_forward(md, x + 7 * img, pre + 7, 9);
    aim_model_backward(md);
    memcpy(g, pd->grad, pd->total * sizeof(float));
    aim_params_zero_grad(pd);
    aim_model_set_loss_count(md, count);
    aim_model_forward(md, x + 7 * img, pre + 7, 9);
    aim_model_backward(md);
    tap_ok(!memcmp(pd->grad, g, pd->total * sizeof(float)),
           "a forward clears the count: the next backward divides by its own again");
    free(g);
    free(x);
    aim_batcher_free(bt);
    fixture_free(&f);
}

/* the validation set of the reconstruction cases: 32 images, seed 2 */
static aim_dataset *recon_val(void)
{
    aim_err e = {{0}};
    aim_synth_opts vo = train_synth;
    vo.n = 32;
    vo.seed = 2;
    aim_dataset *val = aim_data_synthetic(&vo, &e);
    if (!val)
        tap_ok(0, "setup: synthetic validation data: %s", e.msg);
    return val;
}

/* the options of the reconstruction cases: 6 steps of 8 images, validated
 * at steps 4 and 6 (the last); on_step counts the steps with and without
 * the event file into seen[2] */
static void recon_opts(aim_pretrain_opts *ro, aim_dataset *val, int *seen)
{
    aim_pretrain_opts_default(ro);
    ro->steps = 6;
    ro->batch = 8;
    ro->lr = 3e-3f;
    ro->val = val;
    ro->val_every = 4; /* steps 4 and 6 (the last) */
    ro->val_images = 16;
    ro->on_step = count_events;
    ro->ctx = seen;
}

/* The two recon/val grids im[2] of 16 x 16 images scaled by sc, against the
 * validation images: *okpix if both decode to the summaries' size in grey
 * (*pw x *ph), *rows_ok if their target cells are the validation images,
 * their input cells the first N/2 = 8 patches (rows 0..7) given and the
 * rest grey, and their prediction cells the given top half. */
static void check_grids(const tf_image *im, int nimg, const aim_dataset *val, int sc,
                        int *okpix, int *rows_ok, int *pw, int *ph)
{
    const int bd = AIM_RECON_BORDER;
    const int W = 3 * 16 * sc + 4 * bd, H = 2 * 16 * sc + 3 * bd;
    int ok = nimg == 2, tgt = 1, inp = 1, pred_top = 1;
    *pw = *ph = 0;
    for (int k = 0; ok && k < 2; k++) {
        int color = -1;
        uint8_t *pix = tf_png_pixels(im[k].png, im[k].len, 1, pw, ph, &color);
        ok = pix && im[k].width == W && im[k].height == H && im[k].colorspace == 1 &&
             *pw == W && *ph == H && color == 0;
        for (int bi = 0; ok && bi < 2; bi++)
            for (int y = 0; y < 16 * sc; y++)
                for (int x = 0; x < 16 * sc; x++) {
                    int Y = bd + bi * (16 * sc + bd) + y;
                    uint8_t want = val->images[(size_t)bi * 256 + (y / sc) * 16 + x / sc];
                    const uint8_t *row = pix + (size_t)Y * W;
                    tgt &= row[bd + 2 * (16 * sc + bd) + x] == want;
                    inp &= row[bd + x] == (y / sc < 8 ? want : 128);
                    if (y / sc < 8)
                        pred_top &= row[bd + (16 * sc + bd) + x] == want;
                }
        free(pix);
    }
    *okpix = ok;
    *rows_ok = ok && tgt && inp && pred_top;
}

/* reconstruction images: the first recon_images validation images at each
 * validation point, "recon/val" in the event file beside the log; runs with
 * recon_images = 2 and 0 */
static void case_recon_images(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_dataset *val = recon_val();
    if (!val) {
        fixture_free(&f);
        return;
    }
    char dir[2][512];
    snprintf(dir[0], sizeof dir[0], "%s", tap_path("recon2"));
    snprintf(dir[1], sizeof dir[1], "%s", tap_path("recon0"));
    mkdir(dir[0], 0755);
    mkdir(dir[1], 0755);
    aim_pretrain_opts ro;
    int seen[2] = {0, 0};
    recon_opts(&ro, val, seen);
    aim_pretrain_result res;
    char mpath[2][600];
    int nimg[2], records[2], rcs[2];
    tf_image im[2][4];
    uint8_t *buf[2];
    for (int run = 0; run < 2; run++) {
        snprintf(mpath[run], sizeof mpath[run], "%s/metrics.jsonl", dir[run]);
        ro.metrics_path = mpath[run];
        ro.recon_images = run == 0 ? 2 : 0;
        aim_model *mr = new_model(&f.c, 7);
        rcs[run] = mr ? aim_pretrain(mr, f.ds, &ro, &res, &e) : -1;
        aim_model_free(mr);
        nimg[run] = read_images(dir[run], im[run], 4, &buf[run], &records[run]);
    }
    tap_ok(rcs[0] == 0 && rcs[1] == 0 && seen[0] == 12 && seen[1] == 0,
           "runs with validation and an event file; on_step saw the writer every step "
           "(%d with, %d without)", seen[0], seen[1]);
    /* 2 images of 16 px, x4 (aim_recon_scale), borders of AIM_RECON_BORDER */
    const int sc = aim_recon_scale(16);
    tap_ok(sc == 4 && nimg[0] == 2 && !strcmp(im[0][0].tag, "recon/val") &&
               !strcmp(im[0][1].tag, "recon/val") && im[0][0].step == 4 && im[0][1].step == 6,
           "recon_images = 2: two recon/val summaries, at the validation steps 4 and 6 "
           "(%d found)", nimg[0]);
    int okpix, rows_ok, pw, ph;
    check_grids(im[0], nimg[0], val, sc, &okpix, &rows_ok, &pw, &ph);
    tap_ok(okpix, "both PNGs decode to %d x %d grey pixels (3 cells of 16 x %d per row, 2 "
                  "rows), the size the summaries give", pw, ph, sc);
    tap_ok(rows_ok, "the grids' rows: input (top half given, bottom grey) | prediction (top half "
                    "given) | target = the validation images, x%d", sc);
    tap_ok(nimg[1] == 0 && records[1] > 10,
           "recon_images = 0: no image summaries (%d), the scalars are there (%d records)",
           nimg[1], records[1]);
    free(buf[0]);
    free(buf[1]);
    aim_dataset_free(val);
    fixture_free(&f);
}

/* recon_images without a metrics log, and above its bound */
static void case_recon_options(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_dataset *val = recon_val();
    if (!val) {
        fixture_free(&f);
        return;
    }
    aim_pretrain_opts ro;
    int seen[2] = {0, 0};
    recon_opts(&ro, val, seen);
    aim_pretrain_result res;
    ro.metrics_path = NULL;
    ro.recon_images = 2;
    tap_ok(aim_pretrain(f.m, f.ds, &ro, &res, &e) == 0 && seen[0] == 0 && seen[1] == 6,
           "without a metrics log there is no event file: on_step's events is NULL");
    ro.recon_images = AIM_RECON_IMAGES_MAX + 1;
    tap_ok(aim_pretrain(f.m, f.ds, &ro, &res, &e) == -1 && tap_contains(e.msg, "recon_images"),
           "recon_images above %d is refused: %s", AIM_RECON_IMAGES_MAX, e.msg);
    aim_dataset_free(val);
    fixture_free(&f);
}

static void case_on_step_stop(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_pretrain_opts po;
    base_opts(&po);
    po.on_step = stop_at_3;
    aim_pretrain_result res;
    tap_ok(aim_pretrain(f.m, f.ds, &po, &res, &e) == 0 && res.stopped && res.steps_done == 3,
           "on_step can stop training");
    fixture_free(&f);
}

/* live_lr: a changed peak applies from the next step, with the schedule's
 * shape */
static void case_live_lr(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    lr_probe lp = {.live = 0};
    aim_pretrain_opts lo;
    base_opts(&lo);
    lo.steps = 8;
    lo.warmup = 0;
    lo.live_lr = &lp.live;
    lo.on_step = change_lr;
    lo.ctx = &lp;
    aim_pretrain_result res;
    aim_pretrain(f.m, f.ds, &lo, &res, &e);
    float want5 = aim_lr_at(4, 8, 1, 1e-4f), want4 = aim_lr_at(3, 8, 1, lo.lr);
    tap_ok(lp.seen[3] == want4 && lp.seen[4] == want5,
           "live_lr: step 4 at the old peak (%g), step 5 on the new one (%g = %g)", lp.seen[3],
           lp.seen[4], want5);
    fixture_free(&f);
}

/* options and data the job refuses, each with a message naming it */
static void case_refused(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_pretrain_opts po;
    base_opts(&po);
    aim_pretrain_result res;
    po.steps = 0;
    tap_ok(aim_pretrain(f.m, f.ds, &po, &res, &e) == -1 && tap_contains(e.msg, "steps"),
           "zero steps is refused: %s", e.msg);
    po.steps = 5;
    po.metrics_path = tap_path("no/such/dir/m.jsonl");
    tap_ok(aim_pretrain(f.m, f.ds, &po, &res, &e) == -1 && tap_contains(e.msg, "no/such/dir"),
           "an unwritable metrics path is reported: %s", e.msg);
    po.metrics_path = NULL;
    aim_config c2 = f.c;
    c2.image = 8;
    c2.patch = 2;
    aim_model *m4 = new_model(&c2, 7);
    if (m4)
        tap_ok(aim_pretrain(m4, f.ds, &po, &res, &e) == -1 && tap_contains(e.msg, "16x16"),
               "data of the wrong size is refused: %s", e.msg);
    aim_model_free(m4);
    fixture_free(&f);
}

/* non-finite losses: never applied, reported with the step and tensor */
static void case_nonfinite(void)
{
    aim_err e = {{0}};
    fixture f;
    if (fixture_new(&f) != 0)
        return;
    aim_params *p5 = aim_model_params(f.m);
    int ib5 = aim_params_find(p5, "pixel_head.decoder_pred.bias");
    int iw5 = aim_params_find(p5, "trunk.blocks.0.attn.qkv.weight");
    if (ib5 < 0 || iw5 < 0) {
        tap_ok(0, "setup: the prediction bias and the qkv weight of block 0 are named");
        fixture_free(&f);
        return;
    }
    p5->data[p5->t[ib5].offset] = NAN;
    float w_before = p5->data[p5->t[iw5].offset];
    aim_pretrain_opts po;
    base_opts(&po);
    po.steps = 20;
    po.nan_policy = AIM_NAN_SKIP;
    aim_pretrain_result res;
    int rc5 = aim_pretrain(f.m, f.ds, &po, &res, &e);
    tap_ok(rc5 == -1 && res.nonfinite_steps == 10 && tap_contains(e.msg, "10 bad steps") &&
               tap_contains(e.msg, "step 10"),
           "NaN losses are skipped, then the job stops after 10 in a row: %s", e.msg);
    tap_ok(p5->data[p5->t[iw5].offset] == w_before, "no NaN update reached the weights");
    po.nan_policy = AIM_NAN_STOP;
    rc5 = aim_pretrain(f.m, f.ds, &po, &res, &e);
    tap_ok(rc5 == -1 && res.nonfinite_steps == 1 && tap_contains(e.msg, "step 1:") &&
               tap_contains(e.msg, "preprocessor.patchifier.proj.weight"),
           "policy stop: the first bad step ends the job, naming the tensor: %s", e.msg);
    fixture_free(&f);
}

/* Each case reports its own checks: a failure in one does not end the rest. */
static void run_case(const char *name, void (*fn)(void))
{
    int n0 = tap_n, f0 = tap_failed;
    tap_diag("case %s", name);
    fn();
    tap_diag("case %s: %d checks, %d failed", name, tap_n - n0, tap_failed - f0);
}

int main(void)
{
    run_case("adamw", case_adamw);
    run_case("clipping", case_clipping);
    run_case("fused_clip_adamw", case_fused_clip_adamw);
    run_case("schedule", case_schedule);
    run_case("pretrain", case_pretrain);
    run_case("loss_count", case_loss_count);
    run_case("recon_images", case_recon_images);
    run_case("recon_options", case_recon_options);
    run_case("on_step_stop", case_on_step_stop);
    run_case("live_lr", case_live_lr);
    run_case("refused", case_refused);
    run_case("nonfinite", case_nonfinite);
    return tap_done();
}
