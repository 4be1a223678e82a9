/*
 * aim/job.h - the job layer: every long job defined once.
 *
 * Each job (pretrain, probe, LoRA) has one option table below: name, type,
 * default, range and one line of help per option. The command line's parser
 * and `--help` (src/cmd/opts.c), the Lua option checks of aim.pretrain,
 * aim.probe and aim.lora (src/lua/l_util.c), aim.defaults() and the README's
 * option lists (`aim options --markdown`) are all made from these tables, so
 * a default or a range is written once. The table fills a plain "spec"
 * struct; the job's setup from a spec lives here too: the default
 * experiment's model shape, opening the data as the front ends name it,
 * epochs to steps, the NaN policy, the run folder, resume, normalising data
 * as the model expects. Front ends are adapters: they fill a spec, call the
 * setup, attach their callbacks and run the job.
 *
 * This is library code: it never prints; notices for the user come back as
 * strings.
 */
#ifndef AIM_JOB_H
#define AIM_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/finetune.h"
#include "aim/model.h"
#include "aim/probe.h"
#include "aim/train.h"

struct aim_dist;

/* ------------------------------------------------------------ option tables */
typedef enum {
    AIM_OPT_INT,    /* int64_t */
    AIM_OPT_NUM,    /* double */
    AIM_OPT_BOOL,   /* int 0/1; on the command line --name / --no-name */
    AIM_OPT_STR,    /* const char * (borrowed; "" reads as unset, NULL) */
    AIM_OPT_CHOICE, /* const char *, one of the '|'-separated words of `arg` */
    AIM_OPT_BLOCKS, /* aim_blocks: "3,4" on the command line, {3, 4} in Lua */
    AIM_OPT_DATA,   /* Lua only: an open dataset (the Lua adapter reads it) */
    AIM_OPT_FUNC,   /* Lua only: a function */
    AIM_OPT_PROBE,  /* Lua only: an aim.probe or an aim.probe result */
} aim_opt_type;

/* where an option applies */
enum { AIM_OPT_CLI = 1, AIM_OPT_LUA = 2, AIM_OPT_BOTH = 3 };

#define AIM_OPT_NONE ((size_t)-1) /* offset of an option the spec does not hold */

typedef struct aim_opt {
    const char *name;  /* the Lua key; the command line's --name has '-' for '_' */
    aim_opt_type type;
    size_t offset;     /* of the value in the job's spec (AIM_OPT_NONE: not held) */
    double def;        /* INT, NUM, BOOL: the default */
    double lo, hi;     /* INT, NUM: the inclusive range */
    const char *sdef;  /* STR, CHOICE: the default (NULL: none) */
    const char *arg;   /* the command line's value name ("N", "LR"); CHOICE: "a|b" */
    const char *help;  /* one line; the default is appended by aim_opt_describe */
    int where;         /* AIM_OPT_CLI | AIM_OPT_LUA */
} aim_opt;

typedef struct aim_blocks {
    int n;                           /* 0 = not given */
    int b[AIM_PROBE_MAX_BLOCKS];     /* 1-based */
} aim_blocks;

/* The table of a job by name ("pretrain", "probe", "lora", "finetune"), NULL if none;
 * tables end with a zeroed entry. */
const aim_opt *aim_job_options(const char *job);
/* the job names, NULL-terminated */
extern const char *const aim_job_names[];

/* Every option's default into spec (zeroing it first). */
void aim_opts_default(const aim_opt *t, void *spec, size_t size);
/* The option called name ('-' and '_' alike) that applies `where`, or NULL. */
const aim_opt *aim_opts_find(const aim_opt *t, const char *name, int where);
/* Edit distance of two short names ('-' and '_' alike; 99 past 31
 * characters), for "did you mean" hints */
int aim_name_distance(const char *a, const char *b);
/* The nearest name within edit distance 2 (for "did you mean"), or NULL. */
const char *aim_opts_suggest(const aim_opt *t, const char *name, int where);

/* Set one value, checked against the option's type and range. On error
 * -1 with a message that starts after the option's name ("must be in
 * 1..65536 (got 0)"): the front end names the option its own way. */
int aim_opt_set_int(const aim_opt *o, void *spec, int64_t v, aim_err *e);
int aim_opt_set_num(const aim_opt *o, void *spec, double v, aim_err *e);
int aim_opt_set_bool(const aim_opt *o, void *spec, int v, aim_err *e);
int aim_opt_set_str(const aim_opt *o, void *spec, const char *v, aim_err *e);
int aim_opt_set_blocks(const aim_opt *o, void *spec, const int *b, int n, aim_err *e);
/* From the command line's text (INT, NUM, STR, CHOICE, BLOCKS; a BOOL takes
 * "true|false|1|0|yes|no"). The string must outlive the spec. */
int aim_opt_set_text(const aim_opt *o, void *spec, const char *v, aim_err *e);

/* The default as text ("1e-3", "on", "" when none) */
void aim_opt_default_text(const aim_opt *o, char *buf, size_t len);
/* The command line's left column, "--lr LR" ("--no-crop" for a BOOL that
 * defaults to on) */
void aim_opt_flag(const aim_opt *o, char *buf, size_t len);
/* The help line with its default: "peak learning rate (default 1e-3)" */
void aim_opt_describe(const aim_opt *o, char *buf, size_t len);

/* "3,4" -> blocks; -1 with a message on a bad list */
int aim_blocks_parse(const char *s, aim_blocks *b, aim_err *e);
/* every block in 1..depth, or -1 naming the first that is not */
int aim_blocks_check(const aim_blocks *b, int depth, aim_err *e);
void aim_blocks_label(const int *b, int n, char *buf, size_t len);

/* ------------------------------------------------------------ data */
/* A dataset as the front ends name it: "fashion-mnist" (the synthetic set
 * when Debian's dataset-fashion-mnist is not installed: *notice then says
 * so), "synthetic", or a path (aim_data_open). split "train" or "test";
 * converted to channels x image x image when those are > 0; limit 0 = all.
 * notice (may be NULL) receives "" or a line for the user. */
aim_dataset *aim_job_open_data(const char *spec, const char *split, int channels, int image,
                               int64_t limit, uint64_t seed, char *notice, size_t nlen,
                               aim_err *e);

/* The normalisation a model was pretrained with, put on datasets for a
 * probe or LoRA job (and taken back with aim_job_norm_restore). */
typedef struct aim_norm_saved {
    int c;
    float mean[2][4], std[2][4];
} aim_norm_saved;
void aim_job_norm_as_model(const aim_model *m, aim_dataset *a, aim_dataset *b,
                           aim_norm_saved *s);
void aim_job_norm_restore(aim_dataset *a, aim_dataset *b, const aim_norm_saved *s);

/* "runs/YYYYmmdd-HHMMSS-NAME" into buf */
void aim_job_run_dir(const char *name, char *buf, size_t len);

/* ------------------------------------------------------------ pretraining */
/* The default experiment: `tiny` on the images resized to 30x30 with patch 6
 * (25 tokens), no random resized crops, 5 epochs. `aim train` with no
 * options, `aim run samples/pretrain.lua` and `aim` all run it. */
#define AIM_DEFAULT_IMAGE 30
#define AIM_DEFAULT_PATCH 6
/* the default experiment's budget: 15 epochs of Fashion-MNIST, ~17.5 min in
 * bf16 on 2 Zen 4 cores (docs/results.md); other models default to 5 epochs */
#define AIM_DEFAULT_IMAGES 900000
#define AIM_DEFAULT_EPOCHS 5

typedef struct aim_pretrain_spec {
    /* the model and data (command line, aim.experiment) */
    const char *preset;
    int64_t image, channels, patch, width, depth, heads, head_width, head_depth;
    const char *init;
    const char *data, *val_data;
    int64_t limit, test_limit;
    int64_t threads;
    /* the recipe */
    int64_t steps;
    double epochs;
    int64_t budget;           /* training images: the run's length */
    int64_t batch;
    double lr;
    int64_t warmup;
    double wd, clip;
    int64_t seed;
    int crop, flip;
    double scale_min;
    int64_t shift;
    /* the run */
    const char *out, *run, *resume, *on_nan;
    int64_t log_every, ckpt_every;
    double sys_every;
    double ckpt_minutes;
    int64_t keep;
    int checkpoints;
    int64_t val_every, val_images, probe_every, probe_images, recon_images, recon_every;
    int64_t every;
    const char *precision;          /* "auto", "fp32" or "bf16" (aim_model_set_precision) */
} aim_pretrain_spec;

extern const aim_opt aim_pretrain_options[];
void aim_pretrain_spec_default(aim_pretrain_spec *s);

/* The model shape the spec asks for: the preset (default tiny) with its
 * overrides; the default preset without image/patch overrides is the
 * default experiment's 30x30 with patch 6. */
int aim_pretrain_spec_config(const aim_pretrain_spec *s, aim_config *c, aim_err *e);

/* The default experiment's shape: tiny at 30x30 with patch 6. */
int aim_config_is_default_experiment(const aim_config *c);

/* What "auto" and an unstated length mean for a model of shape c, written
 * into s: precision auto is bf16 for the default experiment where bf16 runs
 * (notice says when it cannot), else fp32; with no steps, epochs or budget,
 * the default experiment gets AIM_DEFAULT_IMAGES images, others
 * AIM_DEFAULT_EPOCHS epochs. Idempotent; aim_experiment_open and
 * aim_pretrain_job_init both apply it. notice may be NULL. */
void aim_pretrain_spec_resolve(aim_pretrain_spec *s, const aim_config *c, char *notice,
                               size_t nlen);
/* Optimiser steps for n training images: steps, else epochs, else budget
 * (at least one epoch). */
int64_t aim_pretrain_spec_steps(const aim_pretrain_spec *s, int64_t n);

/* What `aim train` and aim.experiment open: the model (new with the seed,
 * from --init weights, or a checkpoint's with --resume, whose recipe then
 * names the data: spec's data, limit, val_data and seed are replaced from
 * it, so s must be writable) and the training split and the test split
 * (test_limit images; NULL when validation, the live probe and the
 * reconstructions are all off). A new model takes the training set's
 * normalisation. A new run without s->out gets runs/DATE-TIME-pretrain-PRESET
 * (kept in x->out); a resume continues in its own folder. notice gets lines
 * for the user ("" when none). */
typedef struct aim_experiment {
    aim_model *model;
    aim_dataset *train, *test;
    char *strings[2];               /* the resumed recipe's data names */
    char out[512];                  /* the default run folder, when s->out was NULL */
} aim_experiment;
int aim_experiment_open(aim_pretrain_spec *s, aim_experiment *x, char *notice, size_t nlen,
                        aim_err *e);
void aim_experiment_close(aim_experiment *x);

/* The training and test splits of a job on a trunk (probe, LoRA) as `--data`
 * names them (aim_job_open_data), normalised as m was pretrained (m NULL:
 * the splits' own statistics). Both or neither: -1 with a message. */
int aim_job_open_splits(const char *data, const aim_config *c, const aim_model *m,
                        int64_t train_limit, int64_t test_limit, uint64_t seed,
                        aim_dataset **train, aim_dataset **test, char *notice, size_t nlen,
                        aim_err *e);

/* A pretraining job set up from a spec, ready for aim_pretrain once the
 * front end has set po's callbacks. */
typedef struct aim_pretrain_job {
    aim_pretrain_opts po;
    aim_train_state state;
    char *out;                      /* the run folder or NULL (malloc'd) */
    char *metrics, *runjson, *weights; /* in it (malloc'd) or NULL */
    char limit_text[32];
    const char *recipe[6];
    char desc[640];                 /* one line: data, model, steps, threads, folder */
    int resumed;
    char resumed_from[640];         /* the checkpoint a resume started from */
} aim_pretrain_job;

/* Set j up for training m on ds: the recipe (or, with s->resume, the
 * checkpoint's, its tensors and moments copied into m, which must have its
 * shape), the run folder (rank 0 creates it and writes run.json), val and
 * probe_test (either NULL), the NaN policy. data names the training data
 * (run.json and checkpoints). Under mpirun every rank calls it and they
 * fail together. -1 with a message. */
int aim_pretrain_job_init(aim_pretrain_job *j, const aim_pretrain_spec *s, aim_model *m,
                          const aim_dataset *ds, const aim_dataset *val,
                          const aim_dataset *probe_test, const char *data,
                          const struct aim_dist *dist, aim_err *e);
/* After aim_pretrain: the weights into the run folder (rank 0), never
 * non-finite ones. -1 with a message. */
int aim_pretrain_job_save(aim_pretrain_job *j, const aim_model *m, aim_err *e);
void aim_pretrain_job_free(aim_pretrain_job *j);

/* ------------------------------------------------------------ probing */
typedef struct aim_probe_spec {
    const char *data, *preset, *save, *out, *kind;
    int64_t train_limit, test_limit, threads;
    aim_blocks blocks;
    int sweep, raw, mirror, random_init, quiet;
    int64_t window, epochs, batch, seed;
    double lr, wd;
    const char *precision;          /* of the trunk's passes: "fp32" or "bf16" */
} aim_probe_spec;

extern const aim_opt aim_probe_options[];
void aim_probe_spec_default(aim_probe_spec *s);
/* The probe job (sets, kind, training options) for a trunk of `depth`
 * blocks (0 with raw); callbacks, log and dist are left to the caller. */
int aim_probe_spec_job(const aim_probe_spec *s, int depth, aim_probe_job *j, aim_err *e);

/* ------------------------------------------------------------ LoRA */
typedef struct aim_lora_spec {
    const char *data, *save, *save_adapters, *head_file, *out;
    int64_t train_limit, test_limit, threads;
    int64_t rank;
    double alpha;
    aim_blocks blocks, probe_blocks;
    int64_t epochs, batch, seed, log_every, probe_epochs, val_images;
    double lr, head_lr, wd, probe_lr;
    int augment, flip, compare, fresh_head, quiet;
    const char *precision;          /* of the trunk's passes: "fp32" or "bf16" */
} aim_lora_spec;

extern const aim_opt aim_lora_options[];
void aim_lora_spec_default(aim_lora_spec *s);
/* The LoRA job for a model of config c (rank at most the width, blocks in
 * range); callbacks, log, init_head are left to the caller. */
int aim_lora_spec_job(const aim_lora_spec *s, const aim_config *c, aim_lora_job *j,
                      aim_err *e);
/* A probe saved by `aim probe --save` as LoRA's starting head on a model of
 * config c: NULL with a message when it is not an attentive probe of c's
 * tokens, width and heads. Its blocks become j's probe blocks unless j has
 * some. */
aim_probe *aim_lora_load_head(const char *path, const aim_config *c, aim_lora_job *j,
                              aim_err *e);
/* What a LoRA job will train, known before it starts (the numbers the job
 * reports), and the line the front ends show for it: new or continued
 * adapters, rank, alpha, blocks, adapter values and their share of the
 * trunk, the head ("a new", "the saved", ...), images, epochs. */
typedef struct aim_lora_plan {
    aim_lora_job resolved;          /* the job with its block defaults filled in */
    int rank, continuing;
    float alpha;
    char adapted[256], probed[256]; /* "3,4" */
    uint64_t adapters, trunk;
    double share;                   /* adapters in percent of the trunk */
    char desc[768];
} aim_lora_plan;
int aim_lora_plan_make(const aim_model *m, const aim_lora_job *j, const char *head,
                       int64_t ntrain, int64_t ntest, aim_lora_plan *p, aim_err *e);

/* ------------------------------------------------------------ full fine-tuning */
typedef struct aim_finetune_spec {
    const char *data, *save, *out;
    int64_t train_limit, test_limit, threads;
    aim_blocks probe_blocks;
    int64_t epochs, batch, warmup, seed, log_every, val_images;
    double lr, head_lr, layer_decay, wd, clip, label_smoothing;
    int quiet;
    const char *precision;          /* of the trunk's passes: "fp32" or "bf16" */
} aim_finetune_spec;

extern const aim_opt aim_finetune_options[];
void aim_finetune_spec_default(aim_finetune_spec *s);
/* The fine-tuning job for a model of config c (probe blocks in range, then
 * resolved: the middle ones by default); callbacks, log and weights are
 * left to the caller. */
int aim_finetune_spec_job(const aim_finetune_spec *s, const aim_config *c, aim_finetune_job *j,
                          aim_err *e);

#endif
