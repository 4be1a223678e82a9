/*
 * aim/finetune.h - full fine-tuning: the whole trunk (up to the deepest
 * probe block, down to the patch embedding) trained together with a new
 * attentive probe head on the average of the probe blocks, the recipe of
 * MAE / BEiT fine-tuning (AdamW, warmup + cosine, layer-wise lr decay,
 * weight decay on the trunk's weights, gradient clipping, optional label
 * smoothing). It is the ceiling LoRA is judged against: the same head, the
 * same images, every trunk value trained. Also what the LoRA job and this
 * one share (the data checks, the test top-1, the next-patch loss).
 */
#ifndef AIM_FINETUNE_H
#define AIM_FINETUNE_H

#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/model.h"
#include "aim/probe.h"
#include "aim/train.h"

struct aim_runlog;

/* ------------------------------------------------------------ the job */
typedef struct aim_finetune_job {
    int nprobe;              /* probe blocks, 0 = the middle blocks (as aim probe) */
    int probe_blocks[AIM_PROBE_MAX_BLOCKS];
    int epochs;              /* default 4 */
    int batch;               /* default 64 */
    float lr;                /* the base peak lr: block i of Lt gets lr * layer_decay^(Lt+1-i) */
    float head_lr;           /* the head's peak lr, not decayed; default 3e-3 */
    float layer_decay;       /* default 0.75 (1: every trunk tensor at lr) */
    float weight_decay;      /* trunk and head weights (AIM_P_DECAY), default 0.05 */
    float clip;              /* global gradient-norm clip of trunk + head, default 1 (0: off) */
    float label_smoothing;   /* of the head's cross-entropy, default 0 */
    int64_t warmup;          /* warmup steps, < 0: 5% of the steps (at least 1) */
    uint64_t seed;           /* the head's init and the data order */
    /* after every step (progress; return non-zero to stop) and epoch (also
     * once before the first step, as epoch 0) */
    int (*on_step)(void *ctx, const aim_step_info *s);
    int (*on_epoch)(void *ctx, const aim_lora_epoch *ep);
    void *ctx;
    /* the next-patch loss (the frozen pixel head on the changing trunk) on
     * the first val_images test images before the first step and after
     * every epoch; 0: off; default 512 */
    int val_images;
    /* a run folder's log (NULL: none): run.json (kind "finetune"), a
     * "finetune_step" line every log_every steps (loss, lr, head_lr,
     * grad_norm, img_per_s, epoch, time), a "finetune" line per epoch
     * (epoch, loss, train_top1, test_top1, time) and "val" lines as LoRA's */
    struct aim_runlog *log;
    const char *weights;     /* for run.json */
    int log_every;           /* default 10 */
    aim_precision precision; /* as aim_probe_job's */
} aim_finetune_job;

void aim_finetune_job_default(aim_finetune_job *j);
/* The probe blocks' default (the middle ones) and their check for a trunk
 * of depth L. */
int aim_finetune_job_resolve(aim_finetune_job *j, int L, aim_err *e);

/* The trained trunk of a job: blocks 1..Lt with Lt the deepest probe block
 * (the blocks above it and the post-trunk norm feed nothing the head reads,
 * the pixel head is not trained: all of them stay frozen and as loaded).
 * lr_scale[i] (one per tensor of aim_model_params(m)) receives the factor
 * of tensor i: layer_decay^(Lt+1-b) for a tensor of block b (1-based),
 * layer_decay^(Lt+1) for the patch embedding and its norm, 0 for a frozen
 * one. Returns Lt. */
int aim_finetune_lr_scales(const aim_model *m, const int *probe_blocks, int nprobe,
                           float layer_decay, float *lr_scale);

typedef struct aim_finetune_result {
    float train_top1, test_top1, train_loss; /* the last epoch's (never the best) */
    float val_loss_start, val_loss; /* next-patch loss before and after (NaN: not measured) */
    int epochs_done, stopped;
    int64_t steps;
    int top_block;           /* Lt: the deepest trained block */
    uint64_t trained;        /* trunk values trained */
    uint64_t head;           /* head values */
    char probe_label[128];   /* "3,4" */
    double seconds;
    aim_probe *probe;        /* the trained head, owned by the caller */
} aim_finetune_result;

/* Trains m's trunk (blocks 1..Lt and the patch embedding) and a new
 * attentive head on train, test top-1 after every epoch. m keeps the
 * trained weights; the flags are restored when the job ends. A model with
 * LoRA adapters is refused. */
int aim_finetune_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                     const aim_finetune_job *j, aim_finetune_result *r, aim_err *e);
/* One line for the front ends: trained blocks, values, lrs, head, images,
 * epochs (j resolved). */
void aim_finetune_describe(const aim_model *m, const aim_finetune_job *j, int64_t ntrain,
                           int64_t ntest, char *buf, size_t len);

/* ------------------------------------------------------------ shared with LoRA */
/* The checks a job that trains a head on the trunk makes of its data (the
 * model's channels and size, at least one batch, labels in 0..K-1, K >= 2):
 * *K the classes. job names the job in messages. */
int aim_tune_check_data(const char *job, const aim_config *c, const aim_dataset *train,
                        const aim_dataset *test, int batch, int *K, aim_err *e);
/* Test top-1 (percent) of trunk + head on ds, no augmentation; -1 with a
 * message. x [batch images], lab [batch], feat [batch, N, D] are scratch. */
float aim_tune_evaluate(aim_model *m, aim_probe *pr, const aim_dataset *ds, const int *bl,
                        int nb, int batch, float *x, int32_t *lab, float *feat, aim_err *e);
/* The next-patch loss on the first val_images of test (pretraining's
 * validation loss: the same prefixes for a seed), logged as a "val" line at
 * step when log is not NULL; NaN when val_images <= 0. */
float aim_tune_next_patch_loss(aim_model *m, const aim_dataset *test, int val_images,
                               int batch, uint64_t seed, struct aim_runlog *log, int64_t step,
                               float *x, int32_t *prefix);

/* With a run folder (log): the reconstructions of a few test images (one
 * per class, aim_recon_pick) by the tuned trunk, for the run's followers
 * (aim_runlog_recon: recon.npy + a "recon" line) and the event file (tag);
 * a failure is dropped, the job goes on. LoRA and fine-tuning call it before
 * the first step and after every epoch. */
typedef struct aim_tune_recon {
    int n;
    float *x, *out;
} aim_tune_recon;
void aim_tune_recon_init(aim_tune_recon *r, const aim_model *m, const aim_dataset *test,
                         struct aim_runlog *log);
void aim_tune_recon_write(aim_tune_recon *r, aim_model *m, struct aim_runlog *log,
                          const char *tag, int64_t step);
void aim_tune_recon_free(aim_tune_recon *r);

/* The loop LoRA and fine-tuning share. Before the first step: the
 * reconstructions and the next-patch loss (epoch 0 for on_epoch). Then per
 * epoch, train->n / batch steps of: a batch (crop / flip as asked, crops of
 * 80-100% of the area), the probe blocks' features with the trunk's graph
 * kept, the trainable gradients zeroed, the head's forward and backward,
 * the trunk's backward, the job's own update (its optimiser steps at the
 * lr factor of warmup + cosine; it returns the gradient norm) and the
 * step's report ("JOB_step" lines every log_every steps, on_step). After
 * each epoch: the test top-1, the next-patch loss, the reconstructions, a
 * "JOB" line and on_epoch. A callback returning non-zero stops the job
 * after its step. -1 with a message if the trunk's features fail. */
typedef struct aim_tune_loop {
    const char *job;                   /* "lora", "finetune": kinds, tags, messages */
    aim_model *m;
    const aim_dataset *train, *test;
    aim_probe *head;
    const int *blocks;                 /* the probe blocks, 1-based */
    int nblocks;
    int batch, epochs, val_images, log_every;
    int crop, flip;
    uint64_t seed;
    int64_t warmup;                    /* steps */
    float lr, head_lr;                 /* peak rates, for the reports */
    struct aim_runlog *log;            /* may be NULL */
    float (*update)(void *uctx, int64_t step, float lr_factor); /* step: 0-based */
    void *uctx;
    int (*on_step)(void *ctx, const aim_step_info *s);
    int (*on_epoch)(void *ctx, const aim_lora_epoch *e);
    void *ctx;
} aim_tune_loop;
typedef struct aim_tune_out {
    float train_loss, train_top1;      /* the last epoch's, on its training batches */
    float test_top1;                   /* the last epoch's */
    float val_loss_start, val_loss;    /* next-patch loss before and after; NaN: none */
    int epochs_done, stopped;
    int64_t steps;
    double seconds;
} aim_tune_out;
int aim_tune_run(const aim_tune_loop *l, aim_tune_out *o, aim_err *e);

/* One step of LoRA or fine-tuning reported: the progress for on_step
 * (throughput over the last ~5 s, ETA) and, every log_every steps, a line
 * of `kind` ("lora_step", "finetune_step": loss, lr, head_lr, grad_norm,
 * img_per_s, epoch, time) in the run's log (may be NULL). */
typedef struct aim_tune_clock {
    double t0, tw;
    int64_t win_images;
} aim_tune_clock;
typedef struct aim_tune_step {
    int64_t step, total, ntrain; /* step: 1-based, just done */
    int batch;
    float loss, lr, head_lr, grad_norm;
} aim_tune_step;
void aim_tune_clock_start(aim_tune_clock *c, double now);
void aim_tune_step_report(aim_tune_clock *c, double now, const aim_tune_step *t,
                          struct aim_runlog *log, const char *kind, int log_every,
                          aim_step_info *si);

/* Zero the gradients of the tensors not frozen (AIM_P_FROZEN) only: a
 * tuning job's frozen trunk is large and its gradients are never read. */
void aim_tune_zero_trainable(aim_params *p);

#endif
