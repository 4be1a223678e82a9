/*
 * aim/train.h - optimisation (AdamW, schedule, clipping) and the
 * pretraining loop (shared/AIM.md "Pretraining recipe").
 */
#ifndef AIM_TRAIN_H
#define AIM_TRAIN_H

#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/model.h"

/* ------------------------------------------------------------ optimiser */
typedef struct aim_adamw_opts {
    float beta1, beta2, eps, weight_decay;
} aim_adamw_opts;

/* betas (0.9, 0.95), eps 1e-8, weight decay 0.05 */
void aim_adamw_opts_default(aim_adamw_opts *o);
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
} aim_step_info;

typedef struct aim_pretrain_opts {
    int64_t steps;            /* total optimiser steps (> 0) */
    int batch;                /* default 64 */
    float lr;                 /* peak, default 1e-3 */
    int64_t warmup;           /* warmup steps; < 0 = 2.5% of steps (at least 1) */
    float clip;               /* global grad-norm clip, default 1.0 (0 = off) */
    aim_adamw_opts adamw;
    aim_batcher_opts data;    /* seed, crop/flip settings; batch and patch are set */
    const char *metrics_path; /* JSON Lines, appended; NULL = none */
    const char *run_name;     /* "run" field of each metrics line */
    int log_every;            /* metrics line every N steps (default 1) */
    /* called after every step; return non-zero to stop early */
    int (*on_step)(void *ctx, const aim_step_info *info);
    void *ctx;
} aim_pretrain_opts;

void aim_pretrain_opts_default(aim_pretrain_opts *o);

typedef struct aim_pretrain_result {
    int64_t steps_done;
    float final_loss;         /* loss of the last step */
    float mean_loss_last;     /* mean of the last min(100, steps) losses */
    double seconds;
    int stopped;              /* 1 if on_step asked to stop */
} aim_pretrain_result;

/* Train m on ds (converted to the model's image size and channels by the
 * caller). Returns -1 with a message on bad options or I/O failure. */
int aim_pretrain(aim_model *m, const aim_dataset *ds, const aim_pretrain_opts *o,
                 aim_pretrain_result *res, aim_err *e);

#endif
