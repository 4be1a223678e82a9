/*
 * cmd_train.c - `aim train`: headless AIM pretraining from the command line.
 * Opens the data, builds (or loads) the model, trains with the AIM.md recipe,
 * shows a progress line on stderr, logs metrics as JSON Lines in the run
 * folder and saves the weights there at the end.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

typedef struct progress {
    int tty;
    int64_t every;       /* lines when stderr is not a terminal */
    int64_t last_shown;
} progress;

static int on_step(void *ctx, const aim_step_info *s)
{
    progress *p = ctx;
    int last = s->step == s->total;
    if (!p->tty && !last && s->step % p->every && s->step != 1)
        return 0;
    char eta[32], el[32];
    cmd_duration(s->eta_s, eta, sizeof eta);
    cmd_duration(s->elapsed_s, el, sizeof el);
    fprintf(stderr, "%sstep %lld/%lld  epoch %.2f  loss %.4f  lr %.2e  |g| %.3f  %.0f img/s  %s %s%s",
            p->tty ? "\r\033[K" : "", (long long)s->step, (long long)s->total, s->epoch, s->loss,
            s->lr, s->grad_norm, s->img_per_s, last ? "took" : "ETA", last ? el : eta,
            p->tty && !last ? "" : "\n");
    fflush(stderr);
    return 0;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return aim_is_dir(buf) ? 0 : -1;
}

static int write_run_json(const char *path, const aim_config *c, const aim_pretrain_opts *o,
                          const char *data, int64_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"image\":%d,\"channels\":%d,\"patch\":%d,\"width\":%d,\"depth\":%d,\"heads\":%d,"
            "\"head_width\":%d,\"head_depth\":%d,\"norm_eps\":%.9g,\n"
            " \"data\":\"%s\",\"images\":%lld,\"steps\":%lld,\"batch\":%d,\"lr\":%.9g,"
            "\"warmup\":%lld,\"weight_decay\":%.9g,\"clip\":%.9g,\"seed\":%llu,\"crop\":%d,"
            "\"flip\":%d,\"scale_min\":%.9g}\n",
            c->image, c->channels, c->patch, c->width, c->depth, c->heads, c->head_width,
            c->head_depth, c->norm_eps, data, (long long)n, (long long)o->steps, o->batch, o->lr,
            (long long)o->warmup, o->adamw.weight_decay, o->clip,
            (unsigned long long)o->data.seed, o->data.crop, o->data.flip, o->data.scale_min);
    return fclose(f);
}

static int train_exec(int argc, char **argv);

const struct aim_cmd cmd_train_entry = {
    .name = "train",
    .usage = "[--data SPEC] [--preset NAME] [--steps N | --epochs E] [options]",
    .summary = "pretrain an AIM model headless (progress on stderr)",
    .help = "Pretrains with the AIM recipe: AdamW (0.9, 0.95), weight decay 0.05 on matrices,\n"
            "linear warmup then cosine to zero, gradient clipping at 1.0, random resized crops\n"
            "(scale 0.4-1) and flips, and a random prefix per image. Writes run.json,\n"
            "metrics.jsonl and model.safetensors into the run folder (--out).\n"
            "SPEC: fashion-mnist (default; synthetic if not installed), synthetic, or a PATH\n"
            "(IDX file or folder, CIFAR-10 .bin or folder, PNG class folder).",
    .exec = train_exec,
};

static int train_exec(int argc, char **argv)
{
    cmd_model_opts mo = {0};
    const char *data = "fashion-mnist", *out = NULL, *init = NULL;
    int threads = 0, log_every = 1;
    float epochs = 0;
    int64_t limit = 0, seed = 0;
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.steps = 0;
    int crop = 1, flip = 1;
    cmd_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "training data (default fashion-mnist)"},
        {"limit", OPT_I64, &limit, "N", "use only the first N images"},
        CMD_MODEL_OPTS(mo),
        {"init", OPT_STR, &init, "WEIGHTS", "start from these weights instead of a fresh init"},
        {"steps", OPT_I64, &po.steps, "N", "optimiser steps (default: one epoch)"},
        {"epochs", OPT_FLOAT, &epochs, "E", "train for E epochs instead of --steps"},
        {"batch", OPT_INT, &po.batch, "B", "images per step (default 64)"},
        {"lr", OPT_FLOAT, &po.lr, "LR", "peak learning rate (default 1e-3)"},
        {"warmup", OPT_I64, &po.warmup, "N", "warmup steps (default 2.5% of the steps)"},
        {"wd", OPT_FLOAT, &po.adamw.weight_decay, "WD", "weight decay (default 0.05)"},
        {"clip", OPT_FLOAT, &po.clip, "NORM", "gradient-norm clip, 0 = off (default 1.0)"},
        {"seed", OPT_I64, &seed, "S", "seed for init, shuffling, crops, prefixes (default 0)"},
        {"no-crop", OPT_NOFLAG, &crop, NULL, "no random resized crop"},
        {"no-flip", OPT_NOFLAG, &flip, NULL, "no horizontal flip"},
        {"scale-min", OPT_FLOAT, &po.data.scale_min, "S", "smallest crop area (default 0.4)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"out", OPT_STR, &out, "DIR", "run folder (default runs/DATE-TIME-PRESET)"},
        {"log-every", OPT_INT, &log_every, "N", "a metrics line every N steps (default 1)"},
        {0},
    };
    if (cmd_help(&cmd_train_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("train", argc, argv, opts, pos, &npos, 0))
        return 1;
    if (po.batch <= 0)
        return cmd_fail("train: --batch must be positive (got %d)", po.batch);
    cmd_set_threads(threads);
    aim_err e = {{0}};
    aim_model *m = NULL;
    aim_config c;
    if (init) {
        m = aim_model_load(init, &e);
        if (!m)
            return cmd_fail("%s", e.msg);
        c = *aim_model_config(m);
    } else if (cmd_model_config(&mo, &c)) {
        return 1;
    }
    aim_dataset *ds = cmd_open_data(data, "train", c.channels, c.image, limit, (uint64_t)seed);
    if (!ds) {
        aim_model_free(m);
        return 1;
    }
    if (!init) {
        c.nmean = c.channels;
        for (int k = 0; k < c.channels; k++) {
            c.mean[k] = ds->mean[k];
            c.std[k] = ds->std[k];
        }
        m = aim_model_new(&c, (uint64_t)seed, &e);
        if (!m) {
            aim_dataset_free(ds);
            return cmd_fail("%s", e.msg);
        }
    }
    if (epochs > 0)
        po.steps = (int64_t)ceil(epochs * ds->n / po.batch);
    if (po.steps <= 0)
        po.steps = (ds->n + po.batch - 1) / po.batch;
    po.data.seed = (uint64_t)seed;
    po.data.crop = crop;
    po.data.flip = flip;
    po.log_every = log_every;

    char outbuf[512];
    if (!out) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(outbuf, sizeof outbuf, "runs/%s-%s", stamp, mo.preset ? mo.preset : "tiny");
        out = outbuf;
    }
    int rc = 1;
    if (mkdir_p(out) != 0) {
        cmd_fail("%s: cannot create the run folder: %s", out, strerror(errno));
        goto done;
    }
    char *metrics = aim_xasprintf("%s/metrics.jsonl", out);
    char *runjson = aim_xasprintf("%s/run.json", out);
    char *weights = aim_xasprintf("%s/model.safetensors", out);
    po.metrics_path = metrics;
    po.run_name = aim_basename(out);
    if (write_run_json(runjson, &c, &po, data, ds->n) != 0) {
        cmd_fail("%s: cannot write: %s", runjson, strerror(errno));
        goto done2;
    }
    progress pr = {.tty = isatty(2), .every = po.steps / 20 > 0 ? po.steps / 20 : 1};
    po.on_step = on_step;
    po.ctx = &pr;
    fprintf(stderr,
            "aim train: %s, %lld images %dx%dx%d | model D=%d L=%d heads=%d patch=%d "
            "(%.2fM trunk + %.2fM head params) | %lld steps x %d | %d threads | %s\n",
            data, (long long)ds->n, ds->c, ds->h, ds->w, c.width, c.depth, c.heads, c.patch,
            aim_config_trunk_params(&c) / 1e6, aim_config_head_params(&c) / 1e6,
            (long long)po.steps, po.batch, cmd_threads(), out);
    aim_pretrain_result res;
    if (aim_pretrain(m, ds, &po, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done2;
    }
    if (aim_model_save(m, weights, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done2;
    }
    printf("trained %lld steps in %.1f s: final loss %.6f (mean of last %d: %.6f)\n"
           "weights: %s\n",
           (long long)res.steps_done, res.seconds, res.final_loss,
           (int)(res.steps_done < 100 ? res.steps_done : 100), res.mean_loss_last, weights);
    rc = 0;
done2:
    free(metrics);
    free(runjson);
    free(weights);
done:
    aim_dataset_free(ds);
    aim_model_free(m);
    return rc;
}
