/*
 * aim/train.h - optimisation (AdamW, schedule, clipping) and the
 * pretraining loop (shared/AIM.md "Pretraining recipe").
 */
#ifndef AIM_TRAIN_H
#define AIM_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/model.h"

/* ------------------------------------------------------------ optimiser */
typedef struct aim_adamw_opts {
    float beta1, beta2, eps, weight_decay;
    /* optional: one factor per tensor of the table the step is given
     * (indexed like aim_params.t), multiplying lr for that tensor, its
     * decoupled weight decay included (PyTorch's parameter groups, as
     * layer-wise lr decay uses them); NULL = 1 for every tensor */
    const float *lr_scale;
} aim_adamw_opts;

/* betas (0.9, 0.95), eps 1e-8, weight decay 0.05 */
void aim_adamw_opts_default(aim_adamw_opts *o);
/* -1 with a message naming the value unless beta1 and beta2 are in [0, 1),
 * eps in (0, 1] and weight_decay in [0, 1000]: values that cannot turn
 * finite gradients into non-finite weights. */
int aim_adamw_opts_check(const aim_adamw_opts *o, aim_err *e);
/* One AdamW step (PyTorch semantics, decoupled decay on AIM_P_DECAY tensors
 * only, frozen tensors untouched); t is the 1-based step for bias correction. */
void aim_adamw_step(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t);
/* Global L2 norm of the trainable gradients. */
float aim_grad_norm(const aim_params *p);
/* Scale gradients so their global norm is at most max_norm (PyTorch's
 * clip_grad_norm_: coef = max_norm / (norm + 1e-6), capped at 1). Returns the
 * norm before clipping. max_norm <= 0 only measures. */
float aim_clip_grad_norm(aim_params *p, float max_norm);
/* aim_clip_grad_norm(p, max_norm) followed by aim_adamw_step(p, o, lr, t),
 * with the same result, in one pass over the parameters; the gradients are
 * left unscaled (the clip factor is applied on the fly). Returns the norm
 * before clipping. */
float aim_clip_adamw_step(aim_params *p, const aim_adamw_opts *o, float lr, int64_t t,
                          float max_norm);
/* Linear warmup over `warmup` steps to `peak`, then cosine to 0 at `total`.
 * step is 0-based. */
float aim_lr_at(int64_t step, int64_t total, int64_t warmup, float peak);

/* ------------------------------------------------------------ pretraining */
typedef struct aim_step_info {
    int64_t step, total;      /* 1-based step just finished, total steps */
    int64_t images;           /* images seen so far */
    double epoch;             /* images / dataset size */
    float loss, lr, grad_norm;
    double img_per_s;         /* recent throughput */
    double elapsed_s, eta_s;
    /* the job's TensorBoard event file (aim/tfevents.h), NULL when it has
     * none: on_step may add its own summaries (a Lua job's reconstructions,
     * tag "recon/board"). on_step runs on the thread that called
     * aim_pretrain, between steps, so writing here never races the loop's
     * own writes. Valid only during the call: the writer is closed when
     * aim_pretrain returns, so never keep the pointer. */
    struct aim_tfevents *events;
} aim_step_info;

/* Where a run stands: what a checkpoint restores besides the tensors. All
 * randomness of the data stream is derived from (seed, position), so the
 * seed and the stream position are the whole RNG state. */
typedef struct aim_train_state {
    int64_t step;             /* optimiser steps done */
    uint64_t data_position;   /* images consumed from the batcher stream */
    float last_loss;          /* loss of the last step done (information) */
    float best_val;           /* lowest validation loss so far (0 = none yet) */
} aim_train_state;

/* What to do when a step's loss or gradient is NaN or infinite (the step's
 * update is never applied): skip it and go on (stopping after 10 such steps
 * in a row), or stop the job at once. Either way the message names the step
 * and the first tensor with a non-finite gradient, and no checkpoint of the
 * bad state is written. */
typedef enum { AIM_NAN_SKIP = 0, AIM_NAN_STOP = 1 } aim_nan_policy;

typedef struct aim_pretrain_opts {
    int64_t steps;            /* total optimiser steps (> 0) */
    int batch;                /* default 64 */
    float lr;                 /* peak, default 1e-3 */
    int64_t warmup;           /* warmup steps; < 0 = 2.5% of steps (at least 1) */
    float clip;               /* global grad-norm clip, default 1.0 (0 = off) */
    aim_adamw_opts adamw;
    aim_batcher_opts data;    /* seed, crop/flip settings; batch and patch are set */
    /* JSON Lines (aim/runlog.h), NULL = none: a fresh run starts it (and
     * its event file) anew, a resumed one keeps it up to resume->step */
    const char *metrics_path;
    const char *run_name;     /* "run" field of each metrics line */
    int log_every;            /* metrics line every N steps (default 1) */
    double sys_every;         /* a "sys" line (cores busy, rss_mb, load1: aim_sys) every
                                 this many seconds (default 30; 0: none) */
    /* optional: when set, the peak learning rate is read from *live_lr before
     * every step instead of `lr`, so a console can change it while training
     * (the warmup + cosine shape continues from the current step) */
    const float *live_lr;
    /* called after every step; return non-zero to stop early */
    int (*on_step)(void *ctx, const aim_step_info *info);
    void *ctx;
    /* messages for the user (checkpoint saved, a write failed, ...); the
     * library never prints: the front end decides how to show them */
    void (*on_message)(void *ctx, const char *msg);
    /* resume: continue from this state (the model's tensors and moments
     * must already hold the checkpoint's values) */
    const aim_train_state *resume;
    /* checkpoints: ckpt_dir/ckpt-<step>.safetensors every ckpt_every steps
     * and/or ckpt_minutes minutes, at the end, and when *stop_flag becomes
     * non-zero (checked after every step; the step is finished first).
     * keep_last (default 3) newest are kept, older ones removed. A failed
     * write is reported through on_message and training continues. */
    const char *ckpt_dir;
    int64_t ckpt_every;
    double ckpt_minutes;
    int keep_last;
    volatile sig_atomic_t *stop_flag;
    /* validation: every val_every steps, the loss of the first val_images
     * (default 512) images of `val` without augmentation, each with a fixed
     * prefix drawn from (seed, index); logged as kind "val". With ckpt_dir,
     * the best one so far is also saved as best.safetensors. */
    const aim_dataset *val;
    int64_t val_every;
    int val_images;
    /* with val, val_every and an event file (metrics_path): at each
     * validation point (the last step is one) the first recon_images
     * (0..AIM_RECON_IMAGES_MAX, aim/recon.h; default 0 = none) images of
     * `val` are reconstructed at prefix N/2 and written to the event file as
     * the image summary "recon/val" (aim_recon_summary: input | prediction |
     * target per row), 1- or 3-channel models only */
    int recon_images;
    /* live linear probe every probe_every steps on the first probe_images
     * (default 2000) of the training data and half as many of probe_test,
     * logged as kind "probe" with top1 per block */
    const aim_dataset *probe_test;
    int64_t probe_every;
    int probe_images;
    aim_nan_policy nan_policy;
    /* the model's precision (aim_model_set_precision), for run.json */
    aim_precision precision;
    /* the recipe as key/value strings, stored in checkpoints' metadata so
     * `--resume` can rebuild the run (e.g. "data", "limit"); may be NULL */
    const char *const *recipe;
    int nrecipe;
    /* optional, for a UI: each validation loss, and each live probe's test
     * top-1 per block (top1 == NULL: a probe of nblocks blocks starts now,
     * or with nblocks == 0, it failed) */
    void (*on_val)(void *ctx, int64_t step, float loss);
    void (*on_probe)(void *ctx, int64_t step, const float *top1, int nblocks);
    /* optional: a console's requests, read after on_step every step: a bit
     * set of AIM_REQ_* */
    int (*requests)(void *ctx);
    /* data parallel (aim/dist.h): the ranks sharing this run, NULL = one
     * process. `batch` is the global batch: rank r trains on its share of
     * every batch of the one-process stream (aim_dist_share), the gradients
     * are summed over the ranks and every rank applies the same update, so
     * the run follows the one-process run up to float rounding. Every rank
     * calls aim_pretrain with the same options; the validation loss is
     * computed data-parallel too. Only rank 0 writes the metrics log and
     * checkpoints and runs the live probe: on the others metrics_path,
     * ckpt_dir and probe_test are ignored. Their on_step (and stop_flag)
     * run as usual; a stop on any rank stops all of them after the same
     * step, and a failure on one (a metrics write) ends the job on all. */
    const struct aim_dist *dist;
} aim_pretrain_opts;

enum {
    AIM_REQ_CHECKPOINT = 1, /* write a checkpoint after this step (needs ckpt_dir) */
    AIM_REQ_PROBE = 2,      /* run the live probe after this step (needs probe_test) */
    AIM_REQ_NO_SAVE = 4,    /* if the run stops after this step, skip the stop checkpoint */
};

void aim_pretrain_opts_default(aim_pretrain_opts *o);

typedef struct aim_pretrain_result {
    int64_t steps_done;
    float final_loss;         /* loss of the last step */
    float mean_loss_last;     /* mean of the last min(100, steps) losses */
    double seconds;
    int stopped;              /* 1 if on_step or stop_flag ended the run early */
    int checkpoints_written;
    int checkpoint_failures;
    char last_checkpoint[640];/* path of the newest checkpoint written ("" if none) */
    float last_val, best_val; /* validation losses (0 when never measured) */
    int64_t nonfinite_steps;  /* steps skipped for a NaN/Inf loss or gradient */
} aim_pretrain_result;

/* Validation loss of m on the first n images of ds: no augmentation, the
 * prefix of image i drawn from (seed, i), batches of `batch`. */
float aim_validation_loss(aim_model *m, const aim_dataset *ds, int n, int batch, uint64_t seed,
                          float *x, int32_t *prefix);

/* A pretraining run folder's run.json at path, written atomically: the
 * model's shape, data (its name or path, JSON-escaped) and images, and the
 * recipe (steps, batch, lr, warmup, weight_decay, clip, seed, crop, flip,
 * scale_min). -1 with a message naming the file. */
int aim_pretrain_write_info(const char *path, const aim_config *c, const aim_pretrain_opts *o,
                            const char *data, int64_t images, aim_err *e);

/* Train m on ds (converted to the model's image size and channels by the
 * caller). Returns -1 with a message on bad options or I/O failure. */
int aim_pretrain(aim_model *m, const aim_dataset *ds, const aim_pretrain_opts *o,
                 aim_pretrain_result *res, aim_err *e);

/* ------------------------------------------------------------ checkpoints */
/* A checkpoint is a safetensors file: every parameter under its AIM.md name,
 * the AdamW moments as optimizer.exp_avg.<name> / optimizer.exp_avg_sq.<name>,
 * and in the metadata the model config (AIM.md keys), "aim_checkpoint" = "1",
 * step, data_position, seed, the optimiser and schedule settings, the
 * caller's recipe keys (prefixed "recipe."), and "crc32" of the whole data
 * section (8 hex digits). Written atomically (temporary file, fsync, rename,
 * folder fsync): a crash at any moment leaves the previous file intact. */
int aim_checkpoint_save(const char *path, const aim_model *m, const aim_pretrain_opts *o,
                        const aim_train_state *s, aim_err *e);

/* Load and verify everything (CRC, names, shapes, dtypes, config, state):
 * returns the model with its moments filled, the state and the options the
 * run was made with (o is filled from the metadata; its string fields point
 * into *meta_out, which the caller frees with aim_st_close). */
struct aim_st_file;
aim_model *aim_checkpoint_load(const char *path, aim_train_state *s, aim_pretrain_opts *o,
                               struct aim_st_file **meta_out, aim_err *e);

/* 1 if the safetensors file is an aim checkpoint (metadata says so). */
int aim_checkpoint_is(const struct aim_st_file *f);

/* Newest ckpt-*.safetensors in a run folder (malloc'd path) or NULL. */
char *aim_checkpoint_latest(const char *dir, aim_err *e);
/* Remove all but the `keep` newest checkpoints of a run folder (keep <= 0:
 * keep all) and the temporaries a process killed while writing left there
 * (aim_remove_dead_temps: checkpoints, best.safetensors, model.safetensors,
 * run.json, recon.npy, ...). */
void aim_checkpoint_prune(const char *dir, int keep);

#endif
