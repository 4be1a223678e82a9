/*
 * job.c - the job layer (aim/job.h): option tables and what reads them, and
 * the setup every front end shares: the default experiment, data opened by
 * name, resume, the run folder, epochs to steps, the NaN policy.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/bf16.h"
#include "aim/dist.h"
#include "aim/io.h"
#include "aim/job.h"
#include "aim/recon.h"

/* ================================================================ tables */
#define BIG ((double)(1LL << 40))
#define SEED_MAX 9007199254740992.0 /* 2^53: every seed a double holds exactly */

#define INT_(T, n, f, d, lo, hi, a, h, w) {n, AIM_OPT_INT, offsetof(T, f), d, lo, hi, NULL, a, h, w}
#define NUM_(T, n, f, d, lo, hi, a, h, w) {n, AIM_OPT_NUM, offsetof(T, f), d, lo, hi, NULL, a, h, w}
#define BOOL_(T, n, f, d, h, w) {n, AIM_OPT_BOOL, offsetof(T, f), d, 0, 1, NULL, NULL, h, w}
#define STR_(T, n, f, d, a, h, w) {n, AIM_OPT_STR, offsetof(T, f), 0, 0, 0, d, a, h, w}
#define CHOICE_(T, n, f, d, a, h, w) {n, AIM_OPT_CHOICE, offsetof(T, f), 0, 0, 0, d, a, h, w}
#define BLOCKS_(T, n, f, h, w) {n, AIM_OPT_BLOCKS, offsetof(T, f), 0, 0, 0, NULL, "LIST", h, w}
#define LUAONLY_(n, type, h) {n, type, AIM_OPT_NONE, 0, 0, 0, NULL, NULL, h, AIM_OPT_LUA}

/* the data rows of the jobs on a trunk (probe, LoRA) */
#define SPLIT_ROWS_(T)                                                                        \
    STR_(T, "data", data, "fashion-mnist", "SPEC", "dataset with train/test splits", C),     \
    INT_(T, "train_limit", train_limit, 0, 0, BIG, "N", "use the first N training images", C), \
    INT_(T, "test_limit", test_limit, 0, 0, BIG, "N", "use the first N test images", C),     \
    INT_(T, "threads", threads, 0, 0, 4096, "T", "threads for OpenMP and OpenBLAS (0: all)", C)

#define C AIM_OPT_CLI
#define LU AIM_OPT_LUA
#define B AIM_OPT_BOTH

#define T aim_pretrain_spec
const aim_opt aim_pretrain_options[] = {
    /* the model and the data: the command line and aim.experiment */
    STR_(T, "data", data, "fashion-mnist", "SPEC",
         "training data: fashion-mnist (synthetic if not installed), synthetic, or a PATH", C),
    INT_(T, "limit", limit, 0, 0, BIG, "N", "use only the first N training images (0 = all)", C),
    INT_(T, "test_limit", test_limit, 1000, 1, BIG, "N",
         "test images for validation, the live probe and reconstructions", C),
    STR_(T, "val_data", val_data, NULL, "SPEC", "validation data (default: the test split)", C),
    CHOICE_(T, "preset", preset, "tiny", "micro|tiny|small", "model preset", C),
    INT_(T, "image", image, 0, 0, 4096, "H",
         "image side (0: 30 for the default experiment, else the preset's)", C),
    INT_(T, "channels", channels, 0, 0, 4, "C", "image channels (0: the preset's)", C),
    INT_(T, "patch", patch, 0, 0, 4096, "P",
         "patch side (0: 6 for the default experiment, else the preset's)", C),
    INT_(T, "width", width, 0, 0, 65536, "D", "trunk width (0: the preset's)", C),
    INT_(T, "depth", depth, 0, 0, 4096, "L", "trunk depth (0: the preset's)", C),
    INT_(T, "heads", heads, 0, 0, 4096, "NH", "attention heads (0: the preset's)", C),
    INT_(T, "head_width", head_width, 0, 0, 65536, "DH", "pixel-head width (0: the preset's)", C),
    INT_(T, "head_depth", head_depth, 0, 0, 4096, "LH", "pixel-head depth (0: the preset's)", C),
    STR_(T, "init", init, NULL, "WEIGHTS", "start from these weights instead of a fresh init", C),
    INT_(T, "threads", threads, 0, 0, 4096, "T", "threads for OpenMP and OpenBLAS (0: all)", C),
    CHOICE_(T, "precision", precision, "auto", "auto|fp32|bf16",
            AIM_PRECISION_HELP "; auto: bf16 for the default experiment where it runs, else fp32",
            B),
    /* the recipe: its length is steps, else epochs, else budget, else the
     * default experiment's budget (AIM_DEFAULT_IMAGES) or 5 epochs */
    INT_(T, "steps", steps, 0, 0, BIG, "N", "optimiser steps (0: from epochs or budget)", B),
    NUM_(T, "epochs", epochs, 0, 0, 1e6, "E",
         "passes over the training data (0: from budget)", B),
    INT_(T, "budget", budget, 0, 0, BIG, "N",
         "the run's length in training images, when steps and epochs are 0 (0: 900000 for the "
         "default experiment, else 5 epochs)", B),
    INT_(T, "batch", batch, 64, 1, 65536, "B", "images per step", B),
    NUM_(T, "lr", lr, 1e-3, 1e-12, 10, "LR", "peak learning rate", B),
    INT_(T, "warmup", warmup, -1, -1, BIG, "N", "warmup steps (-1: 2.5% of the steps)", B),
    NUM_(T, "wd", wd, 0.05, 0, 10, "WD", "weight decay", B),
    NUM_(T, "clip", clip, 1.0, 0, 1e9, "NORM", "gradient-norm clip (0 = off)", B),
    INT_(T, "seed", seed, 0, 0, SEED_MAX, "S", "seed for init, shuffling, crops, prefixes", B),
    BOOL_(T, "crop", crop, 0, "AIM's random resized crops (on Fashion-MNIST they cost points)", B),
    BOOL_(T, "flip", flip, 1, "random horizontal flips", B),
    NUM_(T, "scale_min", scale_min, 0.4, 0.01, 1, "S", "smallest crop area", B),
    INT_(T, "shift", shift, 0, 0, 4096, "PX",
         "move images by up to PX pixels each way, black padding", B),
    /* the run */
    STR_(T, "out", out, NULL, "DIR",
         "run folder (command line default: runs/DATE-TIME-pretrain-PRESET)", B),
    STR_(T, "run", run, NULL, "NAME", "the metrics' run name (default: the folder's name)", B),
    STR_(T, "resume", resume, NULL, "RUN|CKPT",
         "continue a run exactly from its newest (or this) checkpoint", B),
    INT_(T, "log_every", log_every, 1, 1, 1 << 30, "N", "a metrics line every N steps", B),
    NUM_(T, "sys_every", sys_every, 30, 0, 1e9, "S",
         "a sys line (CPU cores busy, RSS, load) every S seconds (0: none)", B),
    INT_(T, "ckpt_every", ckpt_every, 0, 0, BIG, "N", "checkpoint every N steps (0 = off)", B),
    NUM_(T, "ckpt_minutes", ckpt_minutes, 10, 0, 1e9, "M",
         "checkpoint every M minutes (0 = off)", B),
    INT_(T, "keep", keep, 3, 0, 1 << 30, "K", "keep the K newest checkpoints (0 = all)", B),
    BOOL_(T, "checkpoints", checkpoints, 1,
          "checkpoints in the run folder (on schedule, on stop, at the end)", B),
    CHOICE_(T, "on_nan", on_nan, "skip", "skip|stop",
            "a NaN/Inf loss or gradient: skip the step (stop after 10 in a row) or stop", B),
    INT_(T, "val_every", val_every, 100, 0, BIG, "N",
         "validation loss every N steps (0 = off); the best is kept as best.safetensors", B),
    INT_(T, "val_images", val_images, 512, 1, 1 << 30, "N", "validation images", B),
    INT_(T, "probe_every", probe_every, 300, 0, BIG, "N",
         "live linear probe of every block every N steps (0 = off)", B),
    INT_(T, "probe_images", probe_images, 2000, 2, 1 << 30, "N",
         "training images of the live probe (test images: half as many)", B),
    INT_(T, "recon_images", recon_images, 4, 0, AIM_RECON_IMAGES_MAX, "N",
         "reconstructions of N validation images in the TensorBoard file (0 = off)", B),
    INT_(T, "recon_every", recon_every, 50, 0, BIG, "N",
         "refresh the workbench's reconstructions every N steps (0 = off)", LU),
    INT_(T, "every", every, 1, 1, BIG, "N", "call on_step every N steps (and at the last)", LU),
    LUAONLY_("on_step", AIM_OPT_FUNC, "function(info) after steps; return \"stop\" to end"),
    LUAONLY_("val", AIM_OPT_DATA, "validation images (an open dataset)"),
    LUAONLY_("probe_test", AIM_OPT_DATA, "the live probe's test images"),
    LUAONLY_("recon", AIM_OPT_DATA, "images for the reconstruction panel"),
    {0},
};
#undef T

#define T aim_probe_spec
const aim_opt aim_probe_options[] = {
    SPLIT_ROWS_(T),
    CHOICE_(T, "precision", precision, "fp32", "fp32|bf16", AIM_PRECISION_HELP, B),
    BLOCKS_(T, "blocks", blocks, "average of these blocks (1-based; default the middle ones)", B),
    BOOL_(T, "sweep", sweep, 0, "probe every block (or window) separately", B),
    INT_(T, "window", window, 1, 1, 4096, "K", "with sweep: windows of K consecutive blocks", B),
    CHOICE_(T, "kind", kind, "attentive", "attentive|linear", "the probe", B),
    INT_(T, "epochs", epochs, 0, 0, 100000, "E",
         "probe training epochs (0: 30 for one block set, 15 per set in a sweep)", B),
    INT_(T, "batch", batch, 256, 2, 65536, "B", "probe batch", B),
    NUM_(T, "lr", lr, 1e-2, 1e-12, 10, "LR", "peak learning rate", B),
    NUM_(T, "wd", wd, 0.05, 0, 10, "WD", "weight decay", B),
    BOOL_(T, "mirror", mirror, 0,
          "train on the training images and their mirror images (2x features and epoch)", B),
    BOOL_(T, "random_init", random_init, 0, "baseline: an untrained trunk, same config", C),
    STR_(T, "preset", preset, NULL, "NAME", "with random_init and no WEIGHTS: the config", C),
    BOOL_(T, "raw", raw, 0, "baseline: linear probe on raw pixels (no model needed)", B),
    INT_(T, "seed", seed, 0, 0, SEED_MAX, "S", "seed", B),
    STR_(T, "save", save, NULL, "OUT", "save trunk + the best probe head (head.*)", B),
    BOOL_(T, "quiet", quiet, 0, "no per-epoch lines on stderr", C),
    STR_(T, "out", out, NULL, "DIR", "run folder: run.json, metrics.jsonl, TensorBoard events",
         B),
    LUAONLY_("on_set", AIM_OPT_FUNC, "function(set) as each block set finishes; \"stop\" ends"),
    LUAONLY_("on_epoch", AIM_OPT_FUNC, "function(e) after every epoch"),
    {0},
};
#undef T

#define T aim_lora_spec
const aim_opt aim_lora_options[] = {
    SPLIT_ROWS_(T),
    CHOICE_(T, "precision", precision, "fp32", "fp32|bf16", AIM_PRECISION_HELP, B),
    INT_(T, "rank", rank, 8, 1, 65536, "R", "adapter rank (new adapters)", B),
    NUM_(T, "alpha", alpha, 0, 0, 1e6, "A", "scale alpha/rank (0: alpha = rank)", B),
    BLOCKS_(T, "blocks", blocks, "adapt these blocks (1-based; default the probe blocks)", B),
    BLOCKS_(T, "probe_blocks", probe_blocks,
            "the head reads the average of these blocks (default the middle ones)", B),
    INT_(T, "epochs", epochs, 4, 1, 100000, "E", "epochs", B),
    INT_(T, "batch", batch, 64, 2, 65536, "B", "batch", B),
    NUM_(T, "lr", lr, 1e-3, 1e-12, 10, "LR", "adapters' peak learning rate", B),
    NUM_(T, "head_lr", head_lr, 3e-3, 1e-12, 10, "LR", "head's peak learning rate", B),
    NUM_(T, "wd", wd, 0.05, 0, 10, "WD", "head weight decay", B),
    BOOL_(T, "augment", augment, 0, "random flips and mild crops (they cost points here)", B),
    BOOL_(T, "flip", flip, 0, "random horizontal flips only (pretraining's, without crops)", B),
    BOOL_(T, "compare", compare, 0, "first the frozen attentive probe, same blocks", C),
    BOOL_(T, "fresh_head", fresh_head, 0, "with compare: LoRA's head starts anew", C),
    STR_(T, "head", head_file, NULL, "FILE",
         "start the head from a probe saved by aim probe --save", C),
    LUAONLY_("head", AIM_OPT_PROBE, "start the head from an aim.probe (or aim.probe result)"),
    INT_(T, "probe_epochs", probe_epochs, 15, 1, 100000, "E", "with compare: its epochs", C),
    NUM_(T, "probe_lr", probe_lr, 1e-2, 1e-12, 10, "LR", "with compare: its lr", C),
    INT_(T, "seed", seed, 0, 0, SEED_MAX, "S", "seed", B),
    STR_(T, "save", save, NULL, "OUT", "save trunk + adapters + head as safetensors", B),
    STR_(T, "save_adapters", save_adapters, NULL, "OUT", "save the adapters alone", B),
    BOOL_(T, "quiet", quiet, 0, "no progress on stderr", C),
    STR_(T, "out", out, NULL, "DIR", "run folder: run.json, metrics.jsonl, TensorBoard events",
         B),
    INT_(T, "log_every", log_every, 10, 1, 1 << 30, "N", "with out: a lora_step line every N steps",
         B),
    INT_(T, "val_images", val_images, 512, 0, 1 << 24, "N",
         "next-patch loss on N test images before and after every epoch (0: off)", B),
    LUAONLY_("on_step", AIM_OPT_FUNC, "function(info) after every step; \"stop\" ends"),
    LUAONLY_("on_epoch", AIM_OPT_FUNC, "function(e) after every epoch; \"stop\" ends"),
    {0},
};
#undef T

#define T aim_finetune_spec
const aim_opt aim_finetune_options[] = {
    SPLIT_ROWS_(T),
    CHOICE_(T, "precision", precision, "fp32", "fp32|bf16", AIM_PRECISION_HELP, B),
    BLOCKS_(T, "probe_blocks", probe_blocks,
            "the head reads the average of these blocks (default the middle ones); the trunk "
            "is trained up to the deepest",
            B),
    INT_(T, "epochs", epochs, 4, 1, 100000, "E", "epochs", B),
    INT_(T, "batch", batch, 64, 2, 65536, "B", "batch", B),
    NUM_(T, "lr", lr, 1e-3, 1e-12, 10, "LR",
         "base peak lr: block i of the Lt trained gets lr*layer_decay^(Lt+1-i)", B),
    NUM_(T, "head_lr", head_lr, 3e-3, 1e-12, 10, "LR", "head's peak learning rate (not decayed)",
         B),
    NUM_(T, "layer_decay", layer_decay, 0.75, 0.01, 1, "D",
         "layer-wise lr decay (the patch embedding gets lr*D^(Lt+1); 1 = off)", B),
    NUM_(T, "wd", wd, 0.05, 0, 10, "WD", "weight decay of the trunk's and head's weights", B),
    NUM_(T, "clip", clip, 1.0, 0, 1e9, "NORM", "gradient-norm clip, trunk + head (0 = off)", B),
    NUM_(T, "label_smoothing", label_smoothing, 0, 0, 0.99, "EPS",
         "label smoothing of the head's cross-entropy", B),
    INT_(T, "warmup", warmup, -1, -1, BIG, "N", "warmup steps (-1: 5% of the steps)", B),
    INT_(T, "seed", seed, 0, 0, SEED_MAX, "S", "seed", B),
    STR_(T, "save", save, NULL, "OUT", "save the fine-tuned trunk + head as safetensors", B),
    BOOL_(T, "quiet", quiet, 0, "no progress on stderr", C),
    STR_(T, "out", out, NULL, "DIR", "run folder: run.json, metrics.jsonl, TensorBoard events",
         B),
    INT_(T, "log_every", log_every, 10, 1, 1 << 30, "N",
         "with out: a finetune_step line every N steps", B),
    INT_(T, "val_images", val_images, 512, 0, 1 << 24, "N",
         "next-patch loss on N test images before and after every epoch (0: off)", B),
    LUAONLY_("on_step", AIM_OPT_FUNC, "function(info) after every step; \"stop\" ends"),
    LUAONLY_("on_epoch", AIM_OPT_FUNC, "function(e) after every epoch; \"stop\" ends"),
    {0},
};
#undef T
#undef C
#undef LU
#undef B

const char *const aim_job_names[] = {"pretrain", "probe", "lora", "finetune", NULL};

const aim_opt *aim_job_options(const char *job)
{
    if (!job)
        return NULL;
    if (!strcmp(job, "pretrain") || !strcmp(job, "train"))
        return aim_pretrain_options;
    if (!strcmp(job, "probe"))
        return aim_probe_options;
    if (!strcmp(job, "lora"))
        return aim_lora_options;
    if (!strcmp(job, "finetune"))
        return aim_finetune_options;
    return NULL;
}

/* ================================================================ values */
static void *field(const aim_opt *o, void *spec)
{
    return (char *)spec + o->offset;
}

void aim_opts_default(const aim_opt *t, void *spec, size_t size)
{
    memset(spec, 0, size);
    for (; t->name; t++) {
        if (t->offset == AIM_OPT_NONE)
            continue;
        switch (t->type) {
        case AIM_OPT_INT: *(int64_t *)field(t, spec) = (int64_t)t->def; break;
        case AIM_OPT_NUM: *(double *)field(t, spec) = t->def; break;
        case AIM_OPT_BOOL: *(int *)field(t, spec) = t->def != 0; break;
        case AIM_OPT_STR:
        case AIM_OPT_CHOICE: *(const char **)field(t, spec) = t->sdef; break;
        default: break;
        }
    }
}

/* names compare with '-' and '_' alike */
static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y)
            return 0;
    }
    return !*a && !*b;
}

const aim_opt *aim_opts_find(const aim_opt *t, const char *name, int where)
{
    for (; t->name; t++)
        if ((t->where & where) && same_name(t->name, name))
            return t;
    return NULL;
}

int aim_name_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    int d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int x = a[i - 1] == '-' ? '_' : a[i - 1], y = b[j - 1] == '-' ? '_' : b[j - 1];
            int sub = d[i - 1][j - 1] + (x != y);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

const char *aim_opts_suggest(const aim_opt *t, const char *name, int where)
{
    const char *best = NULL;
    int bestd = 3;
    for (; t->name; t++) {
        if (!(t->where & where))
            continue;
        int d = aim_name_distance(t->name, name);
        if (d < bestd) {
            bestd = d;
            best = t->name;
        }
    }
    return best;
}

static void num_text(double v, char *buf, size_t len)
{
    if (v == (double)(int64_t)v && fabs(v) <= 9007199254740992.0)
        snprintf(buf, len, "%lld", (long long)v);
    else
        snprintf(buf, len, "%g", v);
}

int aim_opt_set_int(const aim_opt *o, void *spec, int64_t v, aim_err *e)
{
    if (o->type != AIM_OPT_INT)
        return aim_errf(e, "is not an integer option");
    if ((double)v < o->lo || (double)v > o->hi) {
        char lo[32], hi[32];
        num_text(o->lo, lo, sizeof lo);
        num_text(o->hi, hi, sizeof hi);
        return aim_errf(e, "must be in %s..%s (got %lld)", lo, hi, (long long)v);
    }
    if (o->offset != AIM_OPT_NONE)
        *(int64_t *)field(o, spec) = v;
    return 0;
}

int aim_opt_set_num(const aim_opt *o, void *spec, double v, aim_err *e)
{
    if (o->type == AIM_OPT_INT) {
        if (!(v == floor(v)) || fabs(v) > 9.2e18)
            return aim_errf(e, "must be an integer (got %g)", v);
        return aim_opt_set_int(o, spec, (int64_t)v, e);
    }
    if (o->type != AIM_OPT_NUM)
        return aim_errf(e, "is not a number option");
    if (!(v >= o->lo && v <= o->hi)) {
        char lo[32], hi[32];
        num_text(o->lo, lo, sizeof lo);
        num_text(o->hi, hi, sizeof hi);
        return aim_errf(e, "must be in [%s, %s] (got %g)", lo, hi, v);
    }
    if (o->offset != AIM_OPT_NONE)
        *(double *)field(o, spec) = v;
    return 0;
}

int aim_opt_set_bool(const aim_opt *o, void *spec, int v, aim_err *e)
{
    if (o->type != AIM_OPT_BOOL)
        return aim_errf(e, "is not a true/false option");
    if (o->offset != AIM_OPT_NONE)
        *(int *)field(o, spec) = v != 0;
    return 0;
}

int aim_opt_set_str(const aim_opt *o, void *spec, const char *v, aim_err *e)
{
    if (o->type == AIM_OPT_BLOCKS) {
        aim_blocks b;
        if (aim_blocks_parse(v, &b, e) != 0)
            return -1;
        return aim_opt_set_blocks(o, spec, b.b, b.n, e);
    }
    if (o->type != AIM_OPT_STR && o->type != AIM_OPT_CHOICE)
        return aim_errf(e, "is not a text option");
    if (v && !*v)
        v = NULL; /* "" reads as unset (a script argument's empty default) */
    if (v && o->type == AIM_OPT_CHOICE) {
        size_t n = strlen(v);
        const char *c = o->arg;
        int ok = 0;
        while (c && *c) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !strncmp(c, v, n))
                ok = 1;
            c = bar ? bar + 1 : NULL;
        }
        if (!ok)
            return aim_errf(e, "must be one of %s (got \"%.60s\")", o->arg, v);
    }
    if (!v && o->type == AIM_OPT_CHOICE)
        v = o->sdef;
    if (o->offset != AIM_OPT_NONE)
        *(const char **)field(o, spec) = v;
    return 0;
}

int aim_opt_set_blocks(const aim_opt *o, void *spec, const int *b, int n, aim_err *e)
{
    if (o->type != AIM_OPT_BLOCKS)
        return aim_errf(e, "is not a block list option");
    if (n < 0 || n > AIM_PROBE_MAX_BLOCKS)
        return aim_errf(e, "must list 1 to %d block numbers", AIM_PROBE_MAX_BLOCKS);
    for (int k = 0; k < n; k++)
        if (b[k] < 1)
            return aim_errf(e, "block %d is not a block number (they start at 1)", b[k]);
    if (o->offset != AIM_OPT_NONE) {
        aim_blocks *d = field(o, spec);
        d->n = n;
        memcpy(d->b, b, (size_t)n * sizeof *b);
    }
    return 0;
}

int aim_opt_set_text(const aim_opt *o, void *spec, const char *v, aim_err *e)
{
    char *end;
    errno = 0;
    switch (o->type) {
    case AIM_OPT_INT: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno)
            return aim_errf(e, "expects an integer, got \"%.60s\"", v);
        return aim_opt_set_int(o, spec, x, e);
    }
    case AIM_OPT_NUM: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return aim_errf(e, "expects a number, got \"%.60s\"", v);
        return aim_opt_set_num(o, spec, x, e);
    }
    case AIM_OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
            return aim_opt_set_bool(o, spec, 1, e);
        if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            return aim_opt_set_bool(o, spec, 0, e);
        return aim_errf(e, "expects true or false, got \"%.60s\"", v);
    case AIM_OPT_STR:
    case AIM_OPT_CHOICE:
    case AIM_OPT_BLOCKS:
        return aim_opt_set_str(o, spec, v, e);
    default:
        return aim_errf(e, "cannot be given on the command line");
    }
}

void aim_opt_default_text(const aim_opt *o, char *buf, size_t len)
{
    switch (o->type) {
    case AIM_OPT_INT:
    case AIM_OPT_NUM: num_text(o->def, buf, len); break;
    case AIM_OPT_BOOL: snprintf(buf, len, "%s", o->def != 0 ? "on" : "off"); break;
    case AIM_OPT_STR:
    case AIM_OPT_CHOICE: snprintf(buf, len, "%s", o->sdef ? o->sdef : ""); break;
    default: snprintf(buf, len, "%s", ""); break;
    }
}

void aim_opt_flag(const aim_opt *o, char *buf, size_t len)
{
    char name[64];
    size_t i = 0;
    for (; o->name[i] && i + 1 < sizeof name; i++)
        name[i] = o->name[i] == '_' ? '-' : o->name[i];
    name[i] = 0;
    if (o->type == AIM_OPT_BOOL)
        snprintf(buf, len, "--%s%s", o->def != 0 ? "no-" : "", name);
    else
        snprintf(buf, len, "--%s %s", name, o->arg ? o->arg : "X");
}

void aim_opt_describe(const aim_opt *o, char *buf, size_t len)
{
    char d[64];
    aim_opt_default_text(o, d, sizeof d);
    /* "(0 = off)" or "(-1: ...)" in the help already says what the default does */
    int said = (o->type == AIM_OPT_INT || o->type == AIM_OPT_NUM) &&
               ((o->def == 0 && strstr(o->help, "(0")) || (o->def == -1 && strstr(o->help, "(-1")));
    if (d[0] && !said)
        snprintf(buf, len, "%s (default %s)", o->help, d);
    else
        snprintf(buf, len, "%s", o->help);
}

/* ================================================================ blocks */
int aim_blocks_parse(const char *s, aim_blocks *b, aim_err *e)
{
    b->n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 1 << 20 || b->n == AIM_PROBE_MAX_BLOCKS)
            return aim_errf(e, "expects a list of block numbers like 3,4 (got \"%.60s\")", s);
        b->b[b->n++] = (int)v;
        p = end;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return aim_errf(e, "expects a list of block numbers like 3,4 (got \"%.60s\")", s);
    }
    if (b->n == 0)
        return aim_errf(e, "expects a list of block numbers like 3,4 (got \"%.60s\")", s);
    return 0;
}

int aim_blocks_check(const aim_blocks *b, int depth, aim_err *e)
{
    for (int k = 0; k < b->n; k++)
        if (b->b[k] < 1 || b->b[k] > depth)
            return aim_errf(e, "block %d is not in 1..%d", b->b[k], depth);
    return 0;
}

void aim_blocks_label(const int *b, int n, char *buf, size_t len)
{
    if (len)
        buf[0] = 0;
    for (int k = 0; k < n; k++) {
        size_t at = strlen(buf);
        if (at + 1 >= len)
            break;
        snprintf(buf + at, len - at, "%s%d", k ? "," : "", b[k]);
    }
}

/* ================================================================ data */
aim_dataset *aim_job_open_data(const char *spec, const char *split, int channels, int image,
                               int64_t limit, uint64_t seed, char *notice, size_t nlen,
                               aim_err *e)
{
    aim_err fe = {{0}};
    aim_dataset *ds = NULL;
    int test = split && !strcmp(split, "test");
    if (notice && nlen)
        notice[0] = 0;
    if (!spec || !strcmp(spec, "fashion-mnist")) {
        ds = aim_data_fashion_mnist(test ? "test" : "train", NULL, &fe);
        if (!ds) {
            if (notice && nlen)
                snprintf(notice, nlen, "using the synthetic dataset instead (%s)", fe.msg);
            spec = "synthetic";
        }
    }
    if (!ds && !strcmp(spec, "synthetic")) {
        aim_synth_opts so = {.n = limit > 0 ? limit : (test ? 2000 : 20000),
                             .c = channels > 0 ? channels : 1,
                             .h = image > 0 ? image : 28,
                             .w = image > 0 ? image : 28,
                             .nclasses = 10,
                             .seed = seed ^ (test ? 0x7e57ULL : 0)};
        ds = aim_data_synthetic(&so, e);
    } else if (!ds) {
        aim_open_opts oo = {.split = split, .limit = limit};
        ds = aim_data_open(spec, &oo, e);
    }
    if (!ds)
        return NULL;
    if (limit > 0)
        aim_dataset_truncate(ds, limit);
    aim_err ce;
    if (aim_dataset_convert(ds, channels, image, image, AIM_RESIZE_AREA, &ce) != 0) {
        aim_errf(e, "%s: %s", spec, ce.msg);
        aim_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void aim_job_norm_as_model(const aim_model *m, aim_dataset *a, aim_dataset *b,
                           aim_norm_saved *s)
{
    aim_dataset *d[2] = {a, b};
    const aim_config *c = aim_model_config(m);
    for (int i = 0; i < 2; i++) {
        if (!d[i])
            continue;
        memcpy(s->mean[i], d[i]->mean, sizeof s->mean[i]);
        memcpy(s->std[i], d[i]->std, sizeof s->std[i]);
        if (c->nmean == c->channels && d[i]->c == c->channels)
            for (int k = 0; k < c->channels && k < 4; k++) {
                d[i]->mean[k] = c->mean[k];
                d[i]->std[k] = c->std[k];
            }
    }
}

void aim_job_norm_restore(aim_dataset *a, aim_dataset *b, const aim_norm_saved *s)
{
    aim_dataset *d[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!d[i])
            continue;
        memcpy(d[i]->mean, s->mean[i], sizeof s->mean[i]);
        memcpy(d[i]->std, s->std[i], sizeof s->std[i]);
    }
}

void aim_job_run_dir(const char *name, char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(buf, len, "runs/%s%s%s", stamp, name ? "-" : "", name ? name : "");
}

/* ================================================================ pretraining */
void aim_pretrain_spec_default(aim_pretrain_spec *s)
{
    aim_opts_default(aim_pretrain_options, s, sizeof *s);
}

int aim_pretrain_spec_config(const aim_pretrain_spec *s, aim_config *c, aim_err *e)
{
    const char *preset = s->preset ? s->preset : "tiny";
    if (aim_config_preset(preset, c, e) != 0)
        return -1;
    /* the default experiment: tiny at 30x30 with patch 6, unless told */
    if (!strcmp(preset, "tiny") && !s->image && !s->patch) {
        c->image = AIM_DEFAULT_IMAGE;
        c->patch = AIM_DEFAULT_PATCH;
    }
#define OVR(f)                                                                             \
    if (s->f)                                                                              \
        c->f = (int)s->f;
    OVR(image) OVR(channels) OVR(patch) OVR(width) OVR(depth) OVR(heads) OVR(head_width)
    OVR(head_depth)
#undef OVR
    return aim_config_validate(c, e);
}

int aim_config_is_default_experiment(const aim_config *c)
{
    aim_config t;
    aim_err e;
    if (aim_config_preset("tiny", &t, &e) != 0)
        return 0;
    return c->image == AIM_DEFAULT_IMAGE && c->patch == AIM_DEFAULT_PATCH &&
           c->channels == t.channels && c->width == t.width && c->depth == t.depth &&
           c->heads == t.heads && c->head_width == t.head_width && c->head_depth == t.head_depth;
}

/* "auto" and the run's length made concrete for the model's shape, so that
 * every door (aim train, aim.experiment's options, aim.pretrain) trains
 * alike and run.json says what ran */
void aim_pretrain_spec_resolve(aim_pretrain_spec *s, const aim_config *c, char *notice,
                               size_t nlen)
{
    const int dflt = aim_config_is_default_experiment(c);
    if (!s->precision || !strcmp(s->precision, "auto")) {
        aim_err why;
        const int bf16 = dflt && aim_bf16_check("", &why) == 0;
        s->precision = bf16 ? "bf16" : "fp32";
        if (dflt && !bf16 && notice && nlen) { /* the reason, without its "bf16: ... use fp32" */
            const char *r = strstr(why.msg, ": "), *u;
            r = r ? r + 2 : why.msg;
            u = strstr(r, "; use fp32");
            snprintf(notice, nlen,
                     "the default experiment runs in fp32, about 2-3x longer than in bf16: %.*s",
                     u ? (int)(u - r) : (int)strlen(r), r);
        }
    }
    if (s->steps <= 0 && s->epochs <= 0 && s->budget <= 0) {
        if (dflt)
            s->budget = AIM_DEFAULT_IMAGES;
        else
            s->epochs = AIM_DEFAULT_EPOCHS;
    }
}

int64_t aim_pretrain_spec_steps(const aim_pretrain_spec *s, int64_t n)
{
    const double b = s->batch > 0 ? (double)s->batch : 1;
    int64_t steps = s->steps > 0    ? s->steps
                    : s->epochs > 0 ? (int64_t)ceil(s->epochs * (double)n / b)
                    : s->budget > 0 ? (int64_t)ceil((double)s->budget / b)
                                    : (int64_t)ceil(AIM_DEFAULT_EPOCHS * (double)n / b);
    return steps > 0 ? steps : (int64_t)ceil((double)n / b); /* one epoch */
}

static char *checkpoint_path(const char *from, aim_err *e)
{
    return aim_is_dir(from) ? aim_checkpoint_latest(from, e) : aim_xstrdup(from);
}

int aim_experiment_open(aim_pretrain_spec *s, aim_experiment *x, char *notice, size_t nlen,
                        aim_err *e)
{
    memset(x, 0, sizeof *x);
    if (notice && nlen)
        notice[0] = 0;
    if (s->resume && s->init)
        return aim_errf(e, "resume and init exclude each other");
    aim_config c;
    aim_st_file *meta = NULL;
    if (s->resume) {
        char *ck = checkpoint_path(s->resume, e);
        if (!ck)
            return -1;
        aim_pretrain_opts co;
        aim_train_state st;
        x->model = aim_checkpoint_load(ck, &st, &co, &meta, e);
        free(ck);
        if (!x->model)
            return -1;
        /* the recipe names the data; keep copies that outlive the file */
        const char *d = aim_st_meta(meta, "recipe.data");
        const char *l = aim_st_meta(meta, "recipe.limit");
        const char *vd = aim_st_meta(meta, "recipe.val_data");
        x->strings[0] = aim_xstrdup(d && *d ? d : "fashion-mnist");
        x->strings[1] = vd && *vd ? aim_xstrdup(vd) : NULL;
        s->data = x->strings[0];
        s->val_data = x->strings[1];
        s->limit = l ? strtoll(l, NULL, 10) : 0;
        s->seed = (int64_t)co.data.seed;
        s->val_every = co.val_every;
        s->val_images = co.val_images;
        s->probe_every = co.probe_every;
        s->probe_images = co.probe_images;
        aim_st_close(meta);
        c = *aim_model_config(x->model);
    } else if (s->init) {
        x->model = aim_model_load(s->init, e);
        if (!x->model)
            return -1;
        c = *aim_model_config(x->model);
    } else if (aim_pretrain_spec_config(s, &c, e) != 0) {
        return -1;
    }
    char n1[320] = "", n2[320] = "";
    x->train = aim_job_open_data(s->data, "train", c.channels, c.image, s->limit,
                                 (uint64_t)s->seed, n1, sizeof n1, e);
    if (!x->train)
        goto fail;
    if (s->val_every > 0 || s->probe_every > 0 || s->recon_every > 0) {
        x->test = aim_job_open_data(s->val_data ? s->val_data : s->data, "test", c.channels,
                                    c.image, s->test_limit, (uint64_t)s->seed, n2, sizeof n2, e);
        if (!x->test)
            goto fail;
    }
    /* one notice when both splits fell back alike */
    const char *n2_ = strcmp(n1, n2) ? n2 : "";
    if (notice && nlen)
        snprintf(notice, nlen, "%s%s%s", n1, n1[0] && n2_[0] ? "\n" : "", n2_);
    if (!s->out && !s->resume) {
        char name[64];
        snprintf(name, sizeof name, "pretrain-%.40s", s->preset ? s->preset : "tiny");
        aim_job_run_dir(name, x->out, sizeof x->out);
        s->out = x->out;
    }
    char n3[400] = "";
    aim_pretrain_spec_resolve(s, &c, n3, sizeof n3);
    if (notice && nlen && n3[0]) {
        size_t l = strlen(notice);
        snprintf(notice + l, nlen - l, "%s%s", l ? "\n" : "", n3);
    }
    if (!x->model) {
        c.nmean = c.channels;
        for (int k = 0; k < c.channels && k < 4; k++) {
            c.mean[k] = x->train->mean[k];
            c.std[k] = x->train->std[k];
        }
        x->model = aim_model_new(&c, (uint64_t)s->seed, e);
        if (!x->model)
            goto fail;
    }
    return 0;
fail:
    aim_experiment_close(x);
    return -1;
}

void aim_experiment_close(aim_experiment *x)
{
    aim_model_free(x->model);
    aim_dataset_free(x->train);
    aim_dataset_free(x->test);
    free(x->strings[0]);
    free(x->strings[1]);
    memset(x, 0, sizeof *x);
}

int aim_job_open_splits(const char *data, const aim_config *c, const aim_model *m,
                        int64_t train_limit, int64_t test_limit, uint64_t seed,
                        aim_dataset **train, aim_dataset **test, char *notice, size_t nlen,
                        aim_err *e)
{
    *train = aim_job_open_data(data, "train", c->channels, c->image, train_limit, seed, notice,
                               nlen, e);
    *test = *train ? aim_job_open_data(data, "test", c->channels, c->image, test_limit, seed,
                                       NULL, 0, e)
                   : NULL;
    if (!*test) {
        aim_dataset_free(*train);
        *train = NULL;
        return -1;
    }
    if (m) { /* the splits are the caller's to free: nothing to put back */
        aim_norm_saved ns;
        aim_job_norm_as_model(m, *train, *test, &ns);
    }
    return 0;
}

/* from: a run folder (its newest checkpoint) or a checkpoint. Its tensors,
 * AdamW moments and normalisation go into m (same shape), its recipe into
 * po, where it stood into *state. Returns the folder it is in (malloc'd). */
static char *resume_into(aim_model *m, const char *from, aim_pretrain_opts *po,
                         aim_train_state *state, char *ck_out, size_t ck_len, aim_err *e)
{
    char *ck = checkpoint_path(from, e);
    if (!ck)
        return NULL;
    aim_pretrain_opts co;
    aim_st_file *meta = NULL;
    aim_model *mc = aim_checkpoint_load(ck, state, &co, &meta, e);
    char *dir = NULL;
    if (!mc)
        goto done;
    const aim_config *a = aim_model_config(m), *b = aim_model_config(mc);
    if (a->image != b->image || a->channels != b->channels || a->patch != b->patch ||
        a->width != b->width || a->depth != b->depth || a->heads != b->heads ||
        a->head_width != b->head_width || a->head_depth != b->head_depth) {
        aim_errf(e, "%s: the checkpoint is a D=%d L=%d heads=%d patch=%d model, not this one "
                    "(D=%d L=%d heads=%d patch=%d); resume into aim.load(checkpoint)",
                 ck, b->width, b->depth, b->heads, b->patch, a->width, a->depth, a->heads,
                 a->patch);
        goto done;
    }
    aim_params *pm = aim_model_params(m), *pc = aim_model_params(mc);
    if (aim_params_try_alloc_moments(pm, e) != 0) {
        aim_err_prefix(e, "%s", ck);
        goto done;
    }
    memcpy(pm->data, pc->data, pc->total * sizeof(float));
    memcpy(pm->m, pc->m, pc->total * sizeof(float));
    memcpy(pm->v, pc->v, pc->total * sizeof(float));
    aim_model_set_norm(m, b->nmean, b->mean, b->std, NULL);
    /* the run's recipe and schedules are the checkpoint's */
    po->steps = co.steps;
    po->batch = co.batch;
    po->lr = co.lr;
    po->warmup = co.warmup;
    po->adamw = co.adamw;
    po->clip = co.clip;
    po->data = co.data;
    po->ckpt_every = co.ckpt_every;
    po->ckpt_minutes = co.ckpt_minutes;
    po->keep_last = co.keep_last;
    po->val_every = co.val_every;
    po->val_images = co.val_images;
    po->probe_every = co.probe_every;
    po->probe_images = co.probe_images;
    dir = aim_is_dir(from) ? aim_xstrdup(from) : aim_dirname(ck);
    snprintf(ck_out, ck_len, "%s", ck);
done:
    aim_model_free(mc);
    aim_st_close(meta);
    free(ck);
    return dir;
}

/* every rank leaves together: 1 if some rank failed */
static int any_failed(const struct aim_dist *d, int failed)
{
    int v = failed;
    aim_dist_max(d, &v, 1);
    return v;
}

#define OTHER_RANK "another rank failed (its message says why)"

int aim_pretrain_job_init(aim_pretrain_job *j, const aim_pretrain_spec *s, aim_model *m,
                          const aim_dataset *ds, const aim_dataset *val,
                          const aim_dataset *probe_test, const char *data,
                          const struct aim_dist *dist, aim_err *e)
{
    memset(j, 0, sizeof *j);
    aim_pretrain_opts *po = &j->po;
    aim_pretrain_opts_default(po);
    po->dist = dist;
    const int lead = aim_dist_rank(dist) == 0;
    const aim_config *c = aim_model_config(m);
    if (ds->c != c->channels || ds->h != c->image || ds->w != c->image)
        return aim_errf(e, "the data is %dx%dx%d but the model takes %dx%dx%d", ds->c, ds->h,
                        ds->w, c->channels, c->image, c->image);
    if (s->ckpt_every > 0 && !s->out && !s->resume)
        return aim_errf(e, "checkpoints need a run folder (option out)");
    /* the precision is the model's, set here for every door (a checkpoint
     * holds fp32 weights: a run resumes in either precision) */
    aim_pretrain_spec rs = *s; /* auto and the run's length made concrete */
    aim_pretrain_spec_resolve(&rs, c, NULL, 0);
    s = &rs;
    aim_precision prec = AIM_PREC_FP32;
    if (aim_precision_parse(s->precision, &prec, e) != 0 ||
        aim_model_set_precision(m, prec, e) != 0)
        return -1;
    po->precision = prec;
    if (s->resume) {
        aim_err re = {{0}};
        char *dir = resume_into(m, s->resume, po, &j->state, j->resumed_from,
                                sizeof j->resumed_from, &re);
        if (any_failed(dist, !dir)) {
            free(dir);
            return aim_errf(e, "%s", dir ? OTHER_RANK : re.msg);
        }
        j->out = s->out ? aim_xstrdup(s->out) : dir;
        if (s->out)
            free(dir);
        po->resume = &j->state;
        j->resumed = 1;
    } else {
        po->batch = (int)s->batch;
        po->steps = aim_pretrain_spec_steps(s, ds->n);
        po->lr = (float)s->lr;
        po->warmup = s->warmup;
        po->adamw.weight_decay = (float)s->wd;
        po->clip = (float)s->clip;
        po->data.seed = (uint64_t)s->seed;
        po->data.crop = s->crop;
        po->data.flip = s->flip;
        po->data.scale_min = (float)s->scale_min;
        po->data.shift = (int)s->shift;
        po->ckpt_every = s->ckpt_every;
        po->ckpt_minutes = s->ckpt_minutes;
        po->keep_last = (int)s->keep;
        po->val_every = s->val_every;
        po->val_images = (int)s->val_images;
        po->probe_every = s->probe_every;
        po->probe_images = (int)s->probe_images;
        j->out = s->out ? aim_xstrdup(s->out) : NULL;
    }
    po->log_every = (int)s->log_every;
    po->sys_every = s->sys_every;
    po->nan_policy = s->on_nan && !strcmp(s->on_nan, "stop") ? AIM_NAN_STOP : AIM_NAN_SKIP;
    po->val = val;
    if (!val)
        po->val_every = 0;
    po->recon_images = val ? (int)s->recon_images : 0;
    po->probe_test = probe_test;
    if (!probe_test)
        po->probe_every = 0;
    /* the normalisation the model is trained with goes into its weights */
    if (c->nmean == 0)
        aim_model_set_norm(m, ds->c, ds->mean, ds->std, NULL);

    /* the run folder: rank 0 makes it and writes run.json */
    if (j->out) {
        j->metrics = aim_xasprintf("%s/metrics.jsonl", j->out);
        j->runjson = aim_xasprintf("%s/run.json", j->out);
        j->weights = aim_xasprintf("%s/model.safetensors", j->out);
        po->metrics_path = j->metrics;
        po->ckpt_dir = s->checkpoints ? j->out : NULL;
    }
    po->run_name = s->run ? s->run : j->out ? aim_basename(j->out) : "pretrain";
    snprintf(j->limit_text, sizeof j->limit_text, "%lld", (long long)s->limit);
    if (data) { /* a resume reopens the data by these names */
        j->recipe[0] = "data";
        j->recipe[1] = data;
        j->recipe[2] = "limit";
        j->recipe[3] = j->limit_text;
        j->recipe[4] = "val_data";
        j->recipe[5] = s->val_data ? s->val_data : "";
        po->recipe = j->recipe;
        po->nrecipe = 3;
    }
    if (j->out) {
        aim_err fe = {{0}};
        int bad = lead && (aim_mkdir_p(j->out, &fe) != 0 ||
                           (!j->resumed &&
                            aim_pretrain_write_info(j->runjson, c, po, data ? data : ds->kind,
                                                    ds->n, &fe) != 0));
        if (any_failed(dist, bad)) {
            aim_errf(e, "%s", bad ? fe.msg : OTHER_RANK);
            aim_pretrain_job_free(j);
            return -1;
        }
    }
    char ranks[48] = "";
    if (aim_dist_size(dist) > 1)
        snprintf(ranks, sizeof ranks, "%d ranks x ", aim_dist_size(dist));
    snprintf(j->desc, sizeof j->desc,
             "%.100s, %lld images %dx%dx%d | model D=%d L=%d heads=%d patch=%d (%.2fM trunk + "
             "%.2fM head params) | %lld steps x %d | %s%d threads%s%s%.200s",
             data ? data : ds->kind, (long long)ds->n, ds->c, ds->h, ds->w, c->width, c->depth,
             c->heads, c->patch, aim_config_trunk_params(c) / 1e6,
             aim_config_head_params(c) / 1e6, (long long)po->steps, po->batch, ranks,
             omp_get_max_threads(), prec == AIM_PREC_BF16 ? " | bf16" : "",
             j->out ? " | " : "", j->out ? j->out : "");
    return 0;
}

int aim_pretrain_job_save(aim_pretrain_job *j, const aim_model *m, aim_err *e)
{
    if (!j->weights || aim_dist_rank(j->po.dist) != 0)
        return 0;
    return aim_model_save(m, j->weights, e);
}

void aim_pretrain_job_free(aim_pretrain_job *j)
{
    free(j->out);
    free(j->metrics);
    free(j->runjson);
    free(j->weights);
    j->out = j->metrics = j->runjson = j->weights = NULL;
}

/* ================================================================ probing */
void aim_probe_spec_default(aim_probe_spec *s)
{
    aim_opts_default(aim_probe_options, s, sizeof *s);
}

int aim_probe_spec_job(const aim_probe_spec *s, int depth, aim_probe_job *j, aim_err *e)
{
    memset(j, 0, sizeof *j);
    aim_probe_opts_default(&j->train);
    j->feature_batch = 64;
    if (aim_precision_parse(s->precision ? s->precision : "fp32", &j->precision, e) != 0)
        return -1;
    j->kind = s->kind && !strcmp(s->kind, "linear") ? AIM_PROBE_LINEAR : AIM_PROBE_ATTENTIVE;
    j->raw = s->raw;
    if (s->raw)
        j->kind = AIM_PROBE_LINEAR;
    j->mirror = s->mirror;
    if (s->raw && s->mirror)
        return aim_errf(e, "mirror needs a trunk's features (not raw pixels)");
    if (s->blocks.n && s->sweep)
        return aim_errf(e, "blocks and sweep exclude each other");
    j->train.epochs = s->epochs > 0 ? (int)s->epochs
                                    : s->sweep ? AIM_PROBE_SWEEP_EPOCHS : AIM_PROBE_EPOCHS;
    j->train.batch = (int)s->batch;
    j->train.lr = (float)s->lr;
    j->train.weight_decay = (float)s->wd;
    j->train.seed = (uint64_t)s->seed;
    if (s->raw)
        return 0;
    if (s->sweep) {
        if (s->window < 1 || s->window > depth)
            return aim_errf(e, "window must be in 1..%d", depth);
        aim_probe_job_sweep(j, depth, (int)s->window);
    } else if (s->blocks.n) {
        if (aim_blocks_check(&s->blocks, depth, e) != 0)
            return -1;
        j->nblocks[0] = s->blocks.n;
        memcpy(j->blocks[0], s->blocks.b, (size_t)s->blocks.n * sizeof(int));
        j->nsets = 1;
    }
    return 0;
}

/* ================================================================ LoRA */
void aim_lora_spec_default(aim_lora_spec *s)
{
    aim_opts_default(aim_lora_options, s, sizeof *s);
}

int aim_lora_spec_job(const aim_lora_spec *s, const aim_config *c, aim_lora_job *j, aim_err *e)
{
    aim_lora_job_default(j);
    if (aim_precision_parse(s->precision ? s->precision : "fp32", &j->precision, e) != 0)
        return -1;
    if (s->rank > c->width)
        return aim_errf(e, "rank %lld exceeds the trunk width %d", (long long)s->rank, c->width);
    j->rank = (int)s->rank;
    j->alpha = s->alpha > 0 ? (float)s->alpha : (float)s->rank;
    aim_err be;
    if (aim_blocks_check(&s->blocks, c->depth, &be) != 0)
        return aim_errf(e, "blocks: %s", be.msg);
    if (aim_blocks_check(&s->probe_blocks, c->depth, &be) != 0)
        return aim_errf(e, "probe_blocks: %s", be.msg);
    j->nblocks = s->blocks.n;
    memcpy(j->blocks, s->blocks.b, sizeof j->blocks);
    j->nprobe = s->probe_blocks.n;
    memcpy(j->probe_blocks, s->probe_blocks.b, sizeof j->probe_blocks);
    j->epochs = (int)s->epochs;
    j->batch = (int)s->batch;
    j->lr = (float)s->lr;
    j->head_lr = (float)s->head_lr;
    j->weight_decay = (float)s->wd;
    j->augment = s->augment;
    j->flip = s->flip;
    j->seed = (uint64_t)s->seed;
    j->log_every = (int)s->log_every;
    j->val_images = (int)s->val_images;
    return 0;
}

aim_probe *aim_lora_load_head(const char *path, const aim_config *c, aim_lora_job *j,
                              aim_err *e)
{
    int hb[AIM_PROBE_MAX_BLOCKS], hn = 0;
    aim_probe *p = aim_probe_load(path, hb, &hn, e);
    if (!p)
        return NULL;
    int hN, hD, hH;
    aim_probe_shape(p, &hN, &hD, &hH);
    int attentive = aim_probe_get_kind(p) == AIM_PROBE_ATTENTIVE;
    if (!attentive || hN != aim_config_tokens(c) || hD != c->width || hH != c->heads) {
        aim_errf(e, "%s: the head does not fit: LoRA trains an attentive head on %d tokens x %d "
                    "with %d heads, this is a%s probe on %d x %d",
                 path, aim_config_tokens(c), c->width, c->heads,
                 attentive ? "n attentive" : " linear", hN, hD);
        aim_probe_free(p);
        return NULL;
    }
    if (!j->nprobe && hn > 0) { /* the head reads the blocks it was trained on */
        j->nprobe = hn;
        memcpy(j->probe_blocks, hb, (size_t)hn * sizeof *hb);
    }
    return p;
}

int aim_lora_plan_make(const aim_model *m, const aim_lora_job *j, const char *head,
                       int64_t ntrain, int64_t ntest, aim_lora_plan *p, aim_err *e)
{
    memset(p, 0, sizeof *p);
    const aim_config *c = aim_model_config(m);
    p->resolved = *j;
    if (aim_lora_job_resolve(&p->resolved, c->depth, e) != 0)
        return -1;
    const aim_lora_job *r = &p->resolved;
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    p->continuing = li.rank > 0; /* a model's adapters go on training as they are */
    p->rank = p->continuing ? li.rank : r->rank;
    p->alpha = p->continuing ? li.alpha : (r->alpha > 0 ? r->alpha : (float)r->rank);
    if (p->continuing)
        aim_blocks_label(li.blocks, li.nblocks < 64 ? li.nblocks : 64, p->adapted,
                         sizeof p->adapted);
    else
        aim_blocks_label(r->blocks, r->nblocks, p->adapted, sizeof p->adapted);
    aim_blocks_label(r->probe_blocks, r->nprobe, p->probed, sizeof p->probed);
    p->trunk = aim_config_trunk_params(c);
    p->adapters = p->continuing ? li.params
                                : 6ull * (uint64_t)p->rank * (uint64_t)c->width * r->nblocks;
    p->share = p->trunk ? 100.0 * (double)p->adapters / (double)p->trunk : 0;
    snprintf(p->desc, sizeof p->desc,
             "%s rank %d alpha %g on block(s) %s: %llu adapter values = %.3f%% of the trunk's "
             "%.2fM | %s attentive head on blocks %s | %lld + %lld images | %d epochs x %lld "
             "steps of %d",
             p->continuing ? "continuing its LoRA adapters," : "new LoRA adapters,", p->rank,
             (double)p->alpha, p->adapted, (unsigned long long)p->adapters, p->share,
             p->trunk / 1e6, head ? head : "a new", p->probed, (long long)ntrain,
             (long long)ntest, r->epochs, (long long)(ntrain / (r->batch > 0 ? r->batch : 1)),
             r->batch);
    return 0;
}

/* ================================================================ fine-tuning */
void aim_finetune_spec_default(aim_finetune_spec *s)
{
    aim_opts_default(aim_finetune_options, s, sizeof *s);
}

int aim_finetune_spec_job(const aim_finetune_spec *s, const aim_config *c, aim_finetune_job *j,
                          aim_err *e)
{
    aim_finetune_job_default(j);
    if (aim_precision_parse(s->precision ? s->precision : "fp32", &j->precision, e) != 0)
        return -1;
    aim_err be;
    if (aim_blocks_check(&s->probe_blocks, c->depth, &be) != 0)
        return aim_errf(e, "probe_blocks: %s", be.msg);
    j->nprobe = s->probe_blocks.n;
    memcpy(j->probe_blocks, s->probe_blocks.b, sizeof j->probe_blocks);
    j->epochs = (int)s->epochs;
    j->batch = (int)s->batch;
    j->lr = (float)s->lr;
    j->head_lr = (float)s->head_lr;
    j->layer_decay = (float)s->layer_decay;
    j->weight_decay = (float)s->wd;
    j->clip = (float)s->clip;
    j->label_smoothing = (float)s->label_smoothing;
    j->warmup = s->warmup;
    j->seed = (uint64_t)s->seed;
    j->log_every = (int)s->log_every;
    j->val_images = (int)s->val_images;
    return aim_finetune_job_resolve(j, c->depth, e);
}
