/*
 * cmd_train.c - `aim train`: headless AIM pretraining from the command line.
 * Opens the data, builds (or loads) the model, trains with the AIM.md recipe,
 * shows a progress line on stderr, logs metrics as JSON Lines in the run
 * folder and saves the weights there at the end. Under mpirun every rank
 * runs this; they train data-parallel on shares of each --batch
 * (aim/dist.h) and rank 0 alone writes the run folder.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/recon.h"
#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

typedef struct progress {
    int tty;
} progress;

static int on_step(void *ctx, const aim_step_info *s)
{
    progress *p = ctx;
    if (cmd_step_line(s, p->tty) && p->tty && s->step == s->total)
        fputc('\n', stderr);
    return 0;
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

/* Ctrl-C / SIGTERM: finish the step, save a checkpoint, exit 0. A second
 * signal gets the default action (the front end's only global). */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = 1;
    signal(sig, SIG_DFL);
}

static void on_message(void *ctx, const char *msg)
{
    progress *p = ctx;
    fprintf(stderr, "%s%s\n", p->tty ? "\r\033[K" : "", msg);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return aim_xstrdup(".");
    return aim_xasprintf("%.*s", (int)(slash - path), path);
}

static int train_exec(int argc, char **argv)
{
    cmd_model_opts mo = {0};
    const char *data = "fashion-mnist", *out = NULL, *init = NULL, *resume = NULL;
    const char *val_data = NULL;
    int64_t val_every = 0, probe_every = 0;
    int val_images = 512, probe_images = 2000, recon_images = 4;
    int threads = 0, log_every = 1;
    float epochs = 0, ckpt_minutes = 10;
    int64_t limit = 0, seed = 0, ckpt_every = 0;
    int keep = 3;
    const char *on_nan = "skip";
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.steps = 0;
    int crop = 1, flip = 1;
    cmd_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "training data (default fashion-mnist)"},
        {"limit", OPT_I64, &limit, "N", "use only the first N images"},
        CMD_MODEL_OPTS(mo),
        {"init", OPT_STR, &init, "WEIGHTS", "start from these weights instead of a fresh init"},
        {"resume", OPT_STR, &resume, "RUN|CKPT",
         "continue a run exactly from its newest (or this) checkpoint"},
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
        {"shift", OPT_INT, &po.data.shift, "PX",
         "move images by up to PX pixels each way, black padding (default 0)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"out", OPT_STR, &out, "DIR", "run folder (default runs/DATE-TIME-PRESET)"},
        {"log-every", OPT_INT, &log_every, "N", "a metrics line every N steps (default 1)"},
        {"ckpt-every", OPT_I64, &ckpt_every, "N", "checkpoint every N steps (default off)"},
        {"ckpt-minutes", OPT_FLOAT, &ckpt_minutes, "M",
         "checkpoint every M minutes (default 10, 0 = off)"},
        {"keep", OPT_INT, &keep, "K", "keep the K newest checkpoints (default 3, 0 = all)"},
        {"on-nan", OPT_STR, &on_nan, "skip|stop",
         "a NaN/Inf loss or gradient: skip the step (default; stop after 10) or stop"},
        {"val-every", OPT_I64, &val_every, "N",
         "validation loss every N steps; the best is kept as best.safetensors"},
        {"val-data", OPT_STR, &val_data, "SPEC", "validation data (default: the test split)"},
        {"val-images", OPT_INT, &val_images, "N", "validation images (default 512)"},
        {"recon-images", OPT_INT, &recon_images, "N",
         "TensorBoard images of N validation reconstructions (default 4, 0 = off, max 8)"},
        {"probe-every", OPT_I64, &probe_every, "N",
         "live linear probe of every block every N steps (logged as kind probe)"},
        {"probe-images", OPT_INT, &probe_images, "N",
         "training images for the live probe (default 2000; test: half)"},
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
    if (keep < 0 || ckpt_every < 0 || ckpt_minutes < 0)
        return cmd_fail("train: --keep, --ckpt-every and --ckpt-minutes must not be negative");
    if (resume && init)
        return cmd_fail("train: --resume and --init exclude each other");
    if (strcmp(on_nan, "skip") && strcmp(on_nan, "stop"))
        return cmd_fail("train: --on-nan must be skip or stop (got \"%s\")", on_nan);
    if (recon_images < 0 || recon_images > AIM_RECON_IMAGES_MAX)
        return cmd_fail("train: --recon-images must be in 0..%d (got %d)", AIM_RECON_IMAGES_MAX,
                        recon_images);
    cmd_set_threads(threads);
    aim_err e = {{0}};
    aim_model *m = NULL;
    aim_config c;
    aim_train_state state = {0};
    aim_st_file *ckmeta = NULL;
    char *rundir = NULL;
    if (resume) {
        char *ck = aim_is_dir(resume) ? aim_checkpoint_latest(resume, &e) : aim_xstrdup(resume);
        if (!ck)
            return cmd_fail("%s", e.msg);
        m = aim_checkpoint_load(ck, &state, &po, &ckmeta, &e);
        if (!m) {
            free(ck);
            return cmd_fail("%s", e.msg);
        }
        rundir = aim_is_dir(resume) ? aim_xstrdup(resume) : dir_of(ck);
        fprintf(stderr, "aim train: resuming %s at step %lld of %lld\n", ck,
                (long long)state.step, (long long)po.steps);
        free(ck);
        c = *aim_model_config(m);
        const char *d = aim_st_meta(ckmeta, "recipe.data");
        const char *l = aim_st_meta(ckmeta, "recipe.limit");
        const char *vd = aim_st_meta(ckmeta, "recipe.val_data");
        val_data = vd && *vd ? vd : NULL;
        val_every = po.val_every;
        val_images = po.val_images;
        probe_every = po.probe_every;
        probe_images = po.probe_images;
        data = d ? d : "fashion-mnist";
        limit = l ? strtoll(l, NULL, 10) : 0;
        seed = (int64_t)po.data.seed;
        out = rundir;
    } else if (init) {
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
        aim_st_close(ckmeta);
        free(rundir);
        return 1;
    }
    aim_dataset *vds = NULL, *pds = NULL;
    if (probe_every > 0) {
        pds = cmd_open_data(val_data ? val_data : data, "test", c.channels, c.image,
                            probe_images / 2 > 0 ? probe_images / 2 : 1, (uint64_t)seed);
        if (!pds) {
            aim_dataset_free(ds);
            aim_model_free(m);
            aim_st_close(ckmeta);
            free(rundir);
            return 1;
        }
    }
    if (val_every > 0) {
        if (!val_data)
            val_data = data;
        vds = cmd_open_data(val_data, "test", c.channels, c.image, val_images, (uint64_t)seed);
        if (!vds) {
            aim_dataset_free(ds);
            aim_model_free(m);
            aim_st_close(ckmeta);
            free(rundir);
            return 1;
        }
    }
    if (!init && !resume) {
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
    if (!resume) {
        if (epochs > 0)
            po.steps = (int64_t)ceil(epochs * ds->n / po.batch);
        if (po.steps <= 0)
            po.steps = (ds->n + po.batch - 1) / po.batch;
        po.data.seed = (uint64_t)seed;
        po.data.crop = crop;
        po.data.flip = flip;
        po.log_every = log_every;
        po.ckpt_every = ckpt_every;
        po.ckpt_minutes = ckpt_minutes;
        po.keep_last = keep;
        po.val_every = val_every;
        po.val_images = val_images;
        po.probe_every = probe_every;
        po.probe_images = probe_images;
    }
    po.val = vds;
    /* the event file is always there (beside metrics.jsonl); images need the
     * validation set. Not part of the checkpoint: a resume takes the flag. */
    po.recon_images = vds ? recon_images : 0;
    po.probe_test = pds;
    po.nan_policy = strcmp(on_nan, "stop") ? AIM_NAN_SKIP : AIM_NAN_STOP;

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
    char *metrics = NULL, *runjson = NULL, *weights = NULL;
    const aim_dist *world = aim_dist_world();
    const int lead = aim_dist_rank(world) == 0;
    po.dist = world;
    aim_err me;
    if (lead && aim_mkdir_p(out, &me) != 0) {
        cmd_fail("cannot create the run folder: %s", me.msg);
        goto done;
    }
    metrics = aim_xasprintf("%s/metrics.jsonl", out);
    runjson = aim_xasprintf("%s/run.json", out);
    weights = aim_xasprintf("%s/model.safetensors", out);
    po.metrics_path = metrics;
    po.run_name = aim_basename(out);
    po.ckpt_dir = out;
    char limit_s[32];
    snprintf(limit_s, sizeof limit_s, "%lld", (long long)limit);
    const char *recipe[6] = {"data", data, "limit", limit_s, "val_data",
                             val_data ? val_data : ""};
    po.recipe = recipe;
    po.nrecipe = 3;
    if (resume)
        po.resume = &state;
    if (lead && !resume && aim_pretrain_write_info(runjson, &c, &po, data, ds->n, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    progress pr = {.tty = isatty(2)};
    po.on_step = on_step;
    po.on_message = on_message;
    po.ctx = &pr;
    po.stop_flag = &stop_requested;
    char ranks[48] = "";
    if (world)
        snprintf(ranks, sizeof ranks, "%d ranks x ", world->size);
    if (state.step < po.steps)
        fprintf(stderr,
                "aim train: %s, %lld images %dx%dx%d | model D=%d L=%d heads=%d patch=%d "
                "(%.2fM trunk + %.2fM head params) | %lld steps x %d | %s%d threads | %s\n",
                data, (long long)ds->n, ds->c, ds->h, ds->w, c.width, c.depth, c.heads, c.patch,
                aim_config_trunk_params(&c) / 1e6, aim_config_head_params(&c) / 1e6,
                (long long)po.steps, po.batch, ranks, cmd_threads(), out);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    aim_pretrain_result res = {0};
    if (state.step < po.steps && aim_pretrain(m, ds, &po, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (res.stopped) {
        printf("stopped at step %lld of %lld; checkpoint: %s\n"
               "resume with: aim train --resume %s\n",
               (long long)res.steps_done, (long long)po.steps,
               res.last_checkpoint[0] ? res.last_checkpoint : "(none written)", out);
        rc = res.last_checkpoint[0] || !lead ? 0 : 1; /* rank 0 writes the checkpoints */
        goto done;
    }
    if (lead && aim_model_save(m, weights, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    if (state.step >= po.steps)
        printf("the run was already complete at step %lld\nweights: %s\n", (long long)state.step,
               weights);
    else
        printf("trained %lld steps in %.1f s: final loss %.6f (mean of last %d: %.6f)\n"
               "weights: %s\n",
               (long long)(res.steps_done - state.step), res.seconds, res.final_loss,
               (int)(res.steps_done - state.step < 100 ? res.steps_done - state.step : 100),
               res.mean_loss_last, weights);
    rc = res.checkpoint_failures ? 1 : 0;
    if (res.checkpoint_failures)
        cmd_fail("train: %d checkpoint(s) could not be written (see above)",
                 res.checkpoint_failures);
done:
    free(metrics);
    free(runjson);
    free(weights);
    free(rundir);
    aim_st_close(ckmeta);
    aim_dataset_free(ds);
    aim_dataset_free(vds);
    aim_dataset_free(pds);
    aim_model_free(m);
    return rc;
}
