/*
 * aim/probe.h - probing a frozen trunk (shared/AIM.md "Downstream"): block
 * features, the attentive probe (BatchNorm without affine, one learned query,
 * k and v projections, NH heads, bias-free classifier) and the linear probe
 * (token mean, BatchNorm, linear), feature caches and the probe trainer.
 */
#ifndef AIM_PROBE_H
#define AIM_PROBE_H

#include <stdint.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/model.h"
#include "aim/train.h"

typedef enum { AIM_PROBE_ATTENTIVE = 0, AIM_PROBE_LINEAR = 1 } aim_probe_kind;

typedef struct aim_probe aim_probe;

/* A probe over [B, N, D] features with `classes` outputs; heads divides D
 * (attentive only). Parameters use the AIM.md names head.*; the BatchNorm
 * running statistics are table entries flagged frozen (saved, not trained). */
aim_probe *aim_probe_new(aim_probe_kind kind, int N, int D, int heads, int classes,
                         uint64_t seed, aim_err *e);
/* A probe of these sizes with its tensors from an open safetensors file:
 * every head.* tensor is checked (F32, the shape the sizes give) before the
 * slabs are allocated; NULL with a message naming the file otherwise. */
struct aim_st_file;
aim_probe *aim_probe_from_st(const struct aim_st_file *f, aim_probe_kind kind, int N, int D,
                             int heads, int classes, aim_err *e);
void aim_probe_free(aim_probe *p);
aim_params *aim_probe_params(aim_probe *p);
aim_probe_kind aim_probe_get_kind(const aim_probe *p);
int aim_probe_classes(const aim_probe *p);
/* The sizes it was made for: tokens N, width D, heads (1 for a linear probe). */
void aim_probe_shape(const aim_probe *p, int *N, int *D, int *heads);

/* Forward on feats [B,N,D]: training = 1 uses batch statistics and updates the
 * running ones; 0 uses the running ones. Returns the mean cross-entropy when
 * labels are given (else 0); *correct = argmax hits (may be NULL). */
float aim_probe_forward(aim_probe *p, const float *feats, const int32_t *labels, int B,
                        int training, int *correct);
/* Backward of the last (training) forward: ADDS parameter gradients; dfeats
 * [B,N,D] (may be NULL) += the gradient of the features. */
void aim_probe_backward(aim_probe *p, float *dfeats);
/* The attentive probe's attention in the per-token order (every token's k
 * and v projected, as until issue 25; attnpool_proj_*_naive) instead of
 * the cheap one: the same function, for the tests and for timing. Default
 * 0. Call it between a backward and the next forward. */
void aim_probe_set_naive(aim_probe *p, int naive);
const float *aim_probe_logits(const aim_probe *p);     /* [B, K] */
/* Label smoothing eps in [0, 1) for the training forward and backward (the
 * loss of evaluation stays the plain cross-entropy); 0 by default. */
void aim_probe_set_label_smoothing(aim_probe *p, float eps);
const float *aim_probe_attention(const aim_probe *p);  /* [B, NH, N], attentive only */

/* ------------------------------------------------------------ feature caches */
/* Features of n images, [n, N, D], stored as IEEE half floats (a full
 * Fashion-MNIST sweep of `tiny` then needs 6.8 GB instead of 13.5). */
typedef struct aim_feats {
    int64_t n;
    int N, D;
    uint16_t *data;         /* [n, N, D] half floats */
    int32_t *labels;        /* [n] */
} aim_feats;

void aim_feats_free(aim_feats *f);
/* out [nb, N, D] <- images idx[0..nb) (or i0.. when idx is NULL) */
void aim_feats_get(const aim_feats *f, const int64_t *idx, int64_t i0, int nb, float *out);
/* half <-> float, round to nearest even */
uint16_t aim_half_from_float(float x);
float aim_half_to_float(uint16_t h);

/* One trunk pass over the first n images of ds (n <= 0: all), no mask, and
 * for each of the nsets block sets (1-based block numbers) the average of
 * those blocks' raw outputs into its own cache. With AIM_FEATS_MIRROR the
 * cache holds 2n entries: the n images, then the same n mirrored left to
 * right (a probe trained on both sees the flip augmentation of pretraining;
 * labels repeat). progress (may be NULL) is called after every batch with
 * the passes done. With ranks (dist, may be NULL; aim/dist.h) each rank
 * computes its share of the images and the caches are then gathered, so
 * every rank ends with all of them. Returns 0 or -1. */
struct aim_dist;
#define AIM_FEATS_MIRROR 1u
int aim_features_extract(aim_model *m, const aim_dataset *ds, int64_t n, int batch,
                         unsigned flags, int nsets, const int *const *sets, const int *set_sizes,
                         aim_feats **out, void (*progress)(void *ctx, int64_t done,
                                                           int64_t total),
                         void *ctx, const struct aim_dist *dist, aim_err *e);
/* Raw pixels as features: [n, 1, C*H*W] (the raw-pixel linear baseline). */
aim_feats *aim_features_raw(const aim_dataset *ds, int64_t n, aim_err *e);

/* ------------------------------------------------------------ training */
typedef struct aim_probe_opts {
    int epochs;             /* default 15 */
    int batch;              /* default 256 */
    float lr;               /* peak, default 1e-2 (warmup 1 epoch/10, cosine) */
    float weight_decay;     /* default 0.05 (k, v, linear weights only) */
    uint64_t seed;
    int eval_every_epoch;   /* 1: test top-1 after every epoch (default 1) */
    /* after every epoch; return non-zero to stop */
    int (*on_epoch)(void *ctx, int epoch, float train_loss, float train_top1,
                    float test_top1);
    void *ctx;
    /* a run folder's log (aim/runlog.h; NULL: none): after every epoch one
     * line of kind "probe_epoch", step = the epoch, with set (log_set),
     * loss, train_top1, test_top1 and lr (the epoch's last) */
    struct aim_runlog *log;
    int log_set;
} aim_probe_opts;

void aim_probe_opts_default(aim_probe_opts *o);

/* Probe epochs when a front end is given none: 30 for one block set (the
 * probe is the result; 30 beat 15 by 0.3-0.5 points on Fashion-MNIST), 15 per
 * set in a sweep (several probes, whose ranking is what it shows). */
#define AIM_PROBE_EPOCHS 30
#define AIM_PROBE_SWEEP_EPOCHS 15

typedef struct aim_probe_result {
    float train_top1, test_top1; /* percent */
    float train_loss;
    int epochs_done;
    double seconds;
} aim_probe_result;

/* Train p on train features, report top-1 on test features (may be NULL). */
int aim_probe_train(aim_probe *p, const aim_feats *train, const aim_feats *test,
                    const aim_probe_opts *o, aim_probe_result *r, aim_err *e);
/* Top-1 (percent) of p on f in evaluation mode. */
float aim_probe_evaluate(aim_probe *p, const aim_feats *f, int batch);

/* ------------------------------------------------------------ probe jobs */
/* A whole probing job, shared by `aim probe` and aim.probe: features of every
 * block set from one trunk pass (or raw pixels), one probe per set, results
 * streamed set by set. */
#define AIM_PROBE_MAX_SETS 64
#define AIM_PROBE_MAX_BLOCKS 64

typedef struct aim_probe_set_result {
    int nblocks;
    int blocks[AIM_PROBE_MAX_BLOCKS]; /* 1-based */
    char label[128];                  /* "3,4" or "pixels" */
    float test_top1, train_top1, train_loss;
    double seconds;
} aim_probe_set_result;

typedef struct aim_probe_job {
    aim_probe_kind kind;
    int raw;                          /* raw pixels instead of a trunk (linear) */
    int nsets;                        /* 0 = the middle blocks */
    int nblocks[AIM_PROBE_MAX_SETS];
    int blocks[AIM_PROBE_MAX_SETS][AIM_PROBE_MAX_BLOCKS];
    aim_probe_opts train;             /* epochs, batch, lr, ... and on_epoch */
    int feature_batch;                /* trunk batch for features (default 64) */
    int mirror;                       /* 1: train on the training images and their
                                         mirror images (AIM_FEATS_MIRROR), twice
                                         the cache and the epoch */
    /* features progress, and each set as soon as it is done (may be NULL);
     * on_set returning non-zero stops the job */
    void (*on_features)(void *ctx, int64_t done, int64_t total);
    int (*on_set)(void *ctx, int index, const aim_probe_set_result *r);
    void *ctx;
    /* ranks (aim/dist.h, NULL = one process): the features are computed
     * data-parallel (each rank its share of the images, then gathered); the
     * probes are then trained on every rank alike (their BatchNorm uses
     * whole-batch statistics, so they are not split) */
    const struct aim_dist *dist;
    /* a run folder's log (aim/runlog.h; NULL: none; rank 0's alone): run.json
     * (kind "probe": weights, probe kind, sets, epochs, lr ...) before the
     * features are computed, the "probe_epoch" lines of every set (set =
     * its number) and at the end one "probe_result" line, step = epochs:
     * top1 per set as an array (probe_result/top1_block<i> in TensorBoard;
     * per block for a sweep), best_set and time - or, for raw pixels, the
     * baseline's top-1 as "baseline" */
    struct aim_runlog *log;
    const char *weights;              /* for run.json: where the trunk came from */
    /* the trunk's passes (aim_model_set_precision) while the job runs; the
     * model's own precision is back afterwards */
    aim_precision precision;
} aim_probe_job;

typedef struct aim_probe_job_result {
    int nsets;                        /* sets done */
    aim_probe_set_result sets[AIM_PROBE_MAX_SETS];
    int best;                         /* index of the best set (-1 if none) */
    aim_probe *best_probe;            /* owned by the caller (aim_probe_free) */
    int stopped;
} aim_probe_job_result;

/* Fill sets with a sweep: every block (window 1) or every window of k
 * consecutive blocks of an L-block trunk. Returns the number of sets. */
int aim_probe_job_sweep(aim_probe_job *j, int L, int window);
/* Run the job on m (NULL with raw) over train/test. */
int aim_probe_job_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                      const aim_probe_job *j, aim_probe_job_result *r, aim_err *e);
/* Save trunk + pixel head + probe head (head.*) with classes, probe_layers
 * and probe_kind in the metadata. */
int aim_probe_save_with_model(const char *path, aim_model *m, aim_probe *p,
                              const char *layers, aim_err *e);
/* The probe of a file written by aim_probe_save_with_model (`aim probe
 * --save`): the head.* tensors, sized from the model configuration and
 * classes / probe_kind in the metadata, and its blocks (probe_layers, e.g.
 * "3,4") in blocks[AIM_PROBE_MAX_BLOCKS] (1-based, *nblocks of them). NULL
 * with a message naming the file when it holds no probe or a bad one. */
aim_probe *aim_probe_load(const char *path, int *blocks, int *nblocks, aim_err *e);

/* ------------------------------------------------------------ LoRA job */
/* Fine-tuning with LoRA (shared/AIM.md): adapters of rank r on the chosen
 * blocks, the rest of the model frozen, trained jointly with an attentive
 * probe head on the features of the probe blocks; images stream through
 * the whole trunk every step (no feature cache). */
typedef struct aim_lora_epoch aim_lora_epoch; /* below */
typedef struct aim_lora_job {
    int rank;                /* default 8 (used when the model has no adapters) */
    float alpha;             /* default = rank (scale 1) */
    int nblocks;             /* adapted blocks, 0 = the probe blocks */
    int blocks[AIM_PROBE_MAX_BLOCKS];
    int nprobe;              /* probe blocks, 0 = the middle blocks (as aim probe) */
    int probe_blocks[AIM_PROBE_MAX_BLOCKS];
    int epochs;              /* default 4 */
    int batch;               /* default 64 */
    float lr;                /* adapters' peak lr, default 1e-3 */
    float head_lr;           /* the probe head's peak lr, default 3e-3 */
    float weight_decay;      /* the head's k, v, linear weights, default 0.05 */
    int augment;             /* 1: flip + random resized crop (scale 0.8-1); default 0 (on
                              * Fashion-MNIST it cost 5 points in a short run) */
    int flip;                /* 1: random horizontal flips (alone, or with augment) */
    uint64_t seed;
    /* start the head from this trained attentive probe (its copy is
     * trained; the probe itself is not changed): linear probing, then
     * fine-tuning ("LP-FT"). NULL: a new head. It must read the same
     * features (tokens, width, heads) and classes. */
    const aim_probe *init_head;
    /* after every step (progress; return non-zero to stop) and epoch (also
     * once before the first step, as epoch 0: see aim_lora_epoch) */
    int (*on_step)(void *ctx, const aim_step_info *s);
    int (*on_epoch)(void *ctx, const aim_lora_epoch *ep);
    void *ctx;
    /* the next-patch (AIM) loss of the adapted model on the first val_images
     * test images, before the first step and after every epoch: how much of
     * its generative skill the trunk keeps while it learns to classify
     * (0: not measured); default 512 */
    int val_images;
    /* a run folder's log (aim/runlog.h; NULL: none): run.json (kind "lora":
     * weights, rank, alpha, blocks, probe blocks, epochs, lrs, adapter values
     * and their share of the trunk) once the adapters are in place, a
     * "lora_step" line every log_every steps (loss, lr, head_lr, grad_norm,
     * img_per_s, epoch, time) and a "lora" line after every epoch, step =
     * the steps done (epoch, loss, train_top1, test_top1, time); with
     * val_images a "val" line (val_loss: the next-patch loss) at step 0 and
     * after every epoch, as pretraining's validation lines */
    struct aim_runlog *log;
    const char *weights;     /* for run.json: where the trunk came from */
    int log_every;           /* default 10 */
    aim_precision precision; /* as aim_probe_job's */
} aim_lora_job;

/* What on_epoch sees. Epoch 0 comes before the first step: the losses and
 * top-1 are NaN there and val_loss is the trunk's before any change. */
struct aim_lora_epoch {
    int epoch, epochs;
    int64_t step;                 /* steps done */
    float train_loss, train_top1, test_top1;
    float val_loss;               /* next-patch loss (NaN: val_images = 0) */
    const aim_probe *head;        /* the head as trained so far: read only, during the call */
    const int *probe_blocks;      /* the blocks the head reads */
    int nprobe;
};

void aim_lora_job_default(aim_lora_job *j);
/* Fill in the defaults that depend on the trunk depth L (probe blocks: the
 * middle ones, as aim probe; adapted blocks: the probe blocks) and check the
 * block numbers. */
int aim_lora_job_resolve(aim_lora_job *j, int L, aim_err *e);

typedef struct aim_lora_result {
    float train_top1, test_top1, train_loss; /* the last epoch's */
    float val_loss_start, val_loss; /* next-patch loss before and after (NaN: not measured) */
    int epochs_done, stopped;
    int64_t steps;
    uint64_t trainable;      /* adapters + head values */
    uint64_t adapters, trunk; /* adapter values, trunk values (patch embedding + blocks) */
    char probe_label[128];   /* "3,4" */
    double seconds;
    aim_probe *probe;        /* the trained head, owned by the caller */
} aim_lora_result;

/* Adds adapters to m when it has none (rank, alpha, blocks), freezes all
 * but the adapters, trains them with a new attentive head on train, reports
 * test top-1 after every epoch. m keeps the trained adapters (unmerged);
 * the tensors' flags are restored when the job ends. */
int aim_lora_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                 const aim_lora_job *j, aim_lora_result *r, aim_err *e);
/* Save trunk + adapters + head with aim_probe_save_with_model (lora_rank
 * and lora_alpha join its metadata). */

/* ------------------------------------------------------------ live probe */
/* The cheap probe shown while pretraining: one trunk pass over the first
 * ntrain images of train and ntest of test (no augmentation), the token mean
 * of every block's raw output, and a linear probe (BatchNorm + linear, a few
 * epochs) per block. top1[L] receives test top-1 in percent per block. */
int aim_live_probe(aim_model *m, const aim_dataset *train, int64_t ntrain,
                   const aim_dataset *test, int64_t ntest, uint64_t seed, float *top1,
                   aim_err *e);
/* The reference mark next to it: the same linear probe on raw pixels (the
 * normalised image as one token) with the same images and settings. */
int aim_live_probe_raw(const aim_dataset *train, int64_t ntrain, const aim_dataset *test,
                       int64_t ntest, uint64_t seed, float *top1, aim_err *e);

#endif
