/*
 * aim/model.h - the AIM model (shared/AIM.md): configuration and presets,
 * the named parameter table over one slab per role, and the model itself
 * (patch embedding, prefix-causal ViT trunk, pixel head, normalised-pixel
 * loss) with forward, backward, save and load.
 *
 * Dimension letters: B batch, C channels, H=W image side, p patch side,
 * N = (H/p)^2 tokens, P = p*p*C values per patch, D width, L depth,
 * NH heads, hd = D/NH, Dh pixel-head width, Lh pixel-head depth, R = B*N.
 */
#ifndef AIM_MODEL_H
#define AIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "aim/bf16.h"
#include "aim/core.h"

/* ------------------------------------------------------------ config */
typedef struct aim_config {
    int image;        /* H = W */
    int channels;     /* C */
    int patch;        /* p */
    int width;        /* D */
    int depth;        /* L */
    int heads;        /* NH */
    int head_width;   /* Dh */
    int head_depth;   /* Lh */
    float norm_eps;   /* every LayerNorm; default 1e-6 */
    int nmean;        /* number of mean/std entries (0 = none recorded) */
    float mean[4], std[4]; /* per-channel input normalisation (metadata) */
} aim_config;

/* "micro" (tests), "tiny" (Fashion-MNIST), "small" (CIFAR-size). */
int aim_config_preset(const char *name, aim_config *c, aim_err *e);
/* The integer fields of a config with their ranges (aim_config_validate's,
 * aim.model{}'s), in order; the list ends with a NULL name. */
typedef struct aim_config_field {
    const char *name;
    size_t offset; /* of the int in aim_config */
    int lo, hi;
} aim_config_field;
extern const aim_config_field aim_config_fields[];
/* Checks every constraint (ranges, divisibility, multiples of 4 for
 * sin-cos, ...). */
int aim_config_validate(const aim_config *c, aim_err *e);
static inline int aim_config_tokens(const aim_config *c)
{
    return (c->image / c->patch) * (c->image / c->patch);
}
static inline int aim_config_patch_dim(const aim_config *c)
{
    return c->patch * c->patch * c->channels;
}
/* The config as safetensors metadata (AIM.md keys, %.9g decimal strings):
 * fills kv[2i], kv[2i+1] pointing into vals; returns the number of pairs. */
#define AIM_CONFIG_META_MAX 16
int aim_config_to_meta(const aim_config *c, char vals[AIM_CONFIG_META_MAX][160],
                       const char **kv);
/* Parameter count of trunk (with patch embedding) and pixel head. */
uint64_t aim_config_trunk_params(const aim_config *c);
uint64_t aim_config_head_params(const aim_config *c);
/* Forward FLOPs per image (multiply-add = 2 FLOPs): GEMMs + attention. */
double aim_config_flops_forward(const aim_config *c);
/* FLOPs per image of a loss-only forward (AIM_FWD_LOSS_ONLY) whose images
 * have `rows` loss rows on average (N - S_b; N/2 under pretraining's prefix
 * draw): the trunk on tokens 0..N-2, the last block's projection and MLP
 * and the pixel head on the loss rows only. A training step is 3x this
 * (backward: two GEMMs per one). */
double aim_config_flops_loss(const aim_config *c, double rows);
/* the average loss rows per image under pretraining's draw, S ~ U{1..N-1} */
#define AIM_LOSS_ROWS(c) (aim_config_tokens(c) / 2.0)

/* ------------------------------------------------------- parameter table */
enum {
    AIM_P_DECAY = 1,   /* AdamW weight decay applies (matrices) */
    AIM_P_FROZEN = 2,  /* no gradient, no update */
    AIM_P_LORA = 4,    /* a LoRA adapter */
};

#define AIM_PARAM_NAME_MAX 96

typedef struct aim_param {
    char name[AIM_PARAM_NAME_MAX]; /* AIM.md weight name */
    int ndim;
    int64_t shape[4];
    size_t offset;                 /* in floats, into every slab */
    size_t numel;
    unsigned flags;
} aim_param;

typedef struct aim_params {
    int n, cap;
    aim_param *t;
    size_t total;                  /* floats per slab (with alignment gaps) */
    float *data;                   /* values */
    float *grad;                   /* gradients (same layout) */
    float *m, *v;                  /* AdamW moments (allocated on demand) */
} aim_params;

/* Append a tensor (before aim_params_alloc); returns its index. */
int aim_params_add(aim_params *p, const char *name, int ndim, const int64_t *shape,
                   unsigned flags);
/* Allocate the data and grad slabs, zeroed (64-byte aligned tensors). */
void aim_params_alloc(aim_params *p);
/* After adding tensors to an allocated table: every allocated slab grows to
 * the new total, the first old_total floats kept, the rest zeroed. */
void aim_params_grow(aim_params *p, size_t old_total);
/* The same, but -1 with a message (every slab as it was) when the new
 * slabs are over aim_mem_limit() or cannot be had. */
int aim_params_try_grow(aim_params *p, size_t old_total, aim_err *e);
/* Allocate the AdamW slabs (zeroed) if not yet there. */
void aim_params_alloc_moments(aim_params *p);
/* The same two (values and gradients, or the moments), but -1 with a
 * message giving the size when it is over aim_mem_limit() or cannot be had:
 * for tables whose sizes come from a file or a user. */
int aim_params_try_alloc(aim_params *p, aim_err *e);
int aim_params_try_alloc_moments(aim_params *p, aim_err *e);
int aim_params_find(const aim_params *p, const char *name); /* -1 if absent */
void aim_params_free(aim_params *p);
void aim_params_zero_grad(aim_params *p);
/* Count of values, optionally only the trainable (not frozen) ones. */
uint64_t aim_params_count(const aim_params *p, int trainable_only);
/* Name of the first tensor (table order) whose values hold a NaN or an
 * infinity, or NULL: the savers refuse to write such weights. */
const char *aim_params_nonfinite(const aim_params *p);

/* --------------------------------------------------------------- model */
typedef struct aim_model aim_model;

/* A new model with the AIM.md init (xavier-uniform linears, LN 1/0),
 * deterministic for a seed. */
aim_model *aim_model_new(const aim_config *c, uint64_t seed, aim_err *e);
void aim_model_free(aim_model *m);
const aim_config *aim_model_config(const aim_model *m);
aim_params *aim_model_params(aim_model *m);

/* Size the activation buffers for batches of up to B images (called
 * automatically by forward with a larger B; never inside a step of a fixed
 * size). Returns -1 if the memory cannot be had. */
int aim_model_reserve(aim_model *m, int B, aim_err *e);

/* Forward pass with per-image prefix lengths S_b in 1..N-1 (prefix must not
 * be NULL): fills the saved activations and returns the loss. x is
 * [B,C,H,W], already normalised. */
float aim_model_forward(aim_model *m, const float *x, const int32_t *prefix, int B);
/* The same forward and loss for evaluation, when no backward follows: the
 * activations are not kept (every block reuses one block's buffers, which
 * stay in cache), so a following aim_model_backward does nothing.
 * Predictions and targets are available as after aim_model_forward. */
float aim_model_loss(aim_model *m, const float *x, const int32_t *prefix, int B);
/* The forward pass with flags:
 *   AIM_FWD_EVAL       no backward follows (as aim_model_loss);
 *   AIM_FWD_LOSS_ONLY  the loss and its gradient alone: the last token, which
 *                      the loss does not depend on (only its own query sees
 *                      its key), is left out everywhere, and from the last
 *                      block's attention output on (its projection and MLP,
 *                      the post norm and the pixel head) only the rows the
 *                      loss reads are computed (row i of image b when
 *                      i+1 >= S_b: half of them on average under
 *                      pretraining's prefix draw). The
 *                      loss and a following backward equal the full pass's up
 *                      to float rounding; aim_model_predictions then returns
 *                      NULL (targets are still there). Pretraining and the
 *                      validation loss use it. */
#define AIM_FWD_EVAL 1u
#define AIM_FWD_LOSS_ONLY 2u
float aim_model_forward_ex(aim_model *m, const float *x, const int32_t *prefix, int B,
                           unsigned flags);
/* Backward of the last forward: ADDS parameter gradients into the grad slab
 * (frozen tensors are skipped). */
void aim_model_backward(aim_model *m);
/* The loss is a mean over the target tokens of the batch (patches at or
 * after each image's prefix). aim_model_loss_count gives that count for the
 * last training forward; aim_model_set_loss_count makes the next backward
 * divide by `count` instead (data parallel: the count of the whole global
 * batch, so the ranks' gradients add up to the one-process gradient). It
 * holds until the next forward; 0 = this batch's own count. */
int64_t aim_model_loss_count(const aim_model *m);
void aim_model_set_loss_count(aim_model *m, int64_t count);
/* Predictions of the last forward: [B,N,P] (row i predicts patch i+1);
 * NULL after an AIM_FWD_LOSS_ONLY forward. */
const float *aim_model_predictions(const aim_model *m);
/* Normalised-pixel targets of the last forward: [B,N,P]. */
const float *aim_model_targets(const aim_model *m);

/* Trunk only, no mask (prefix NULL) or with prefixes: returns the raw output
 * of block `upto` (1-based; blocks 1..L) as [B,N,D] in an internal buffer,
 * or after post_trunk_norm when upto == 0. */
const float *aim_model_trunk(aim_model *m, const float *x, const int32_t *prefix, int B,
                             int upto);

/* The raw output [B,N,D] of block l (1-based) from the last trunk or
 * training forward that ran through it (NULL if l is out of range). */
const float *aim_model_block_output(const aim_model *m, int l);
/* Layer features (AIM.md "Downstream"): the average of the raw outputs
 * (before post_trunk_norm) of the listed blocks, 1-based, each in 1..L, with
 * no mask (bidirectional). x [B,C,H,W] normalised; out [B,N,D] (caller's
 * buffer). Returns -1 with a message naming the bad block number, or when
 * the activations for B images cannot be had. */
int aim_model_features(aim_model *m, const float *x, int B, const int *blocks, int nblocks,
                       float *out, aim_err *e);

/* Record the per-channel input normalisation in the config (saved in the
 * weights' metadata). n = 0 clears it; otherwise n must equal the channels
 * and every std be positive. */
int aim_model_set_norm(aim_model *m, int n, const float *mean, const float *std, aim_err *e);

/* safetensors with AIM.md names and config metadata (atomic write). */
int aim_model_save(const aim_model *m, const char *path, aim_err *e);
/* The same with the tensors of another table (a probe head) after the
 * model's and up to 16 more metadata pairs (key, value, key, value...). */
int aim_model_save_with(const aim_model *m, const char *path, const aim_params *extra,
                        const char *const *extra_kv, int nextra, aim_err *e);
/* Load weights written by aim or anyone using the AIM.md names: config from
 * the metadata, every tensor checked (name, dtype, shape); missing or extra
 * tensors are errors naming them. */
aim_model *aim_model_load(const char *path, aim_err *e);

/* The same from an already opened safetensors file (config from its
 * metadata); tensors named optimizer.* or head.* are ignored, LoRA
 * adapters (*.lora_A / *.lora_B) are loaded with lora_rank / lora_alpha
 * from the metadata. */
struct aim_st_file;
aim_model *aim_model_from_st(const struct aim_st_file *f, aim_err *e);
/* The config of f (as aim_config_from_meta) and a check that f holds every
 * tensor it needs (F32, the right shapes), nothing allocated by their sizes:
 * works on a header read by aim_st_peek, so a caller can charge or refuse
 * the model's size before loading it. */
int aim_model_check_st(const struct aim_st_file *f, aim_config *c, aim_err *e);
/* Config from a safetensors file's metadata (AIM.md keys), validated. */
int aim_config_from_meta(const struct aim_st_file *f, aim_config *c, aim_err *e);
/* Copy the tensor `name` of file f into dst, checking it is F32 with the
 * shape of table entry t. */
int aim_st_copy_param(const struct aim_st_file *f, const aim_param *t, const char *name,
                      float *dst, aim_err *e);
/* Every tensor of table p from f under its own name into p->data (the
 * slabs allocated, the table checked first with aim_st_check_params). */
int aim_st_copy_params(const struct aim_st_file *f, aim_params *p, aim_err *e);
/* Check (without copying) that f holds every tensor of table p, named
 * prefix + its name, F32 with its shape: the first one missing or wrong is
 * the message. Loaders call it before allocating the table's slabs. */
int aim_st_check_params(const struct aim_st_file *f, const aim_params *p, const char *prefix,
                        aim_err *e);
/* Attach a profile (aim/prof.h) that the forward and backward passes add
 * their per-kernel times to, or NULL (the default: no clock is read). */
struct aim_prof;
void aim_model_set_profile(aim_model *m, struct aim_prof *p);

/* Training through the features (LoRA fine-tuning): the same features as
 * aim_model_features, but every activation is kept for
 * aim_model_features_backward, which takes dL/d(features) [B,N,D] and ADDS
 * the gradients of the trainable tensors (backward stops at the lowest
 * block with one). */
int aim_model_features_train(aim_model *m, const float *x, int B, const int *blocks,
                             int nblocks, float *out, aim_err *e);
void aim_model_features_backward(aim_model *m, const float *dfeat);

/* ------------------------------------------------------------ LoRA
 * Adapters as shared/AIM.md (loralib): trunk.blocks.{i}.attn.qkv.lora_A
 * [2r,D] / .lora_B [2D,r] on q and v, trunk.blocks.{i}.attn.proj.lora_A
 * [r,D] / .lora_B [D,r]; output += (alpha/r) B (A x); A kaiming-uniform
 * (bound 1/sqrt(D)), B zero, so a new adapter changes nothing. Flagged
 * AIM_P_LORA, no weight decay. */
#define AIM_LORA_DEFAULT_RANK 8
/* Add adapters of rank r to the listed blocks (1-based; nblocks 0 = every
 * block). The model must have none yet. Activations are re-laid out at the
 * next pass. */
int aim_model_lora_add(aim_model *m, int rank, float alpha, const int *blocks, int nblocks,
                       uint64_t seed, aim_err *e);
/* Freeze every tensor but the adapters (AIM_P_FROZEN). */
void aim_model_lora_freeze_trunk(aim_model *m);
/* Fold s B A into the qkv / proj weights (the forward then skips the
 * adapters), or take it out again. -1 without adapters or in the wrong
 * state. */
int aim_model_lora_merge(aim_model *m, aim_err *e);
int aim_model_lora_unmerge(aim_model *m, aim_err *e);
typedef struct aim_lora_info {
    int rank;           /* 0: no adapters */
    float alpha;
    int merged;
    int nblocks;
    int blocks[64];     /* 1-based, the first 64 */
    uint64_t params;    /* adapter values */
} aim_lora_info;
void aim_model_lora_info(const aim_model *m, aim_lora_info *li);
/* Adapters alone (with the config and lora_rank / lora_alpha metadata). */
int aim_model_save_lora(const aim_model *m, const char *path, aim_err *e);
/* Load adapters saved alone (or with a trunk) onto m, which must have none
 * and the same trunk configuration. */
int aim_model_load_lora(aim_model *m, const char *path, aim_err *e);

/* ------------------------------------------------------------ precision
 * AIM_PREC_BF16: the linear layers' GEMMs (forward, dX, dW) take bf16
 * operands and accumulate and write fp32 (oneDNN); master weights,
 * gradients, AdamW, the norms, softmax, GELU, attention and the loss stay
 * fp32. The weights' bf16 copy is made at the start of every pass. -1 with
 * a message when bf16 cannot run here (built without oneDNN, a CPU without
 * AVX512_BF16): the model stays as it was. fp32 is the default; going back
 * to it frees the bf16 state. Set it before a step, not inside one (it
 * makes oneDNN's primitives). */
int aim_model_set_precision(aim_model *m, aim_precision p, aim_err *e);
aim_precision aim_model_precision(const aim_model *m);
/* oneDNN's implementation of the bf16 GEMMs (the MLP's fc1), NULL in fp32 */
const char *aim_model_bf16_impl(const aim_model *m);

/* Which library runs the fp32 GEMMs of the linear layers: OpenBLAS's sgemm
 * or oneDNN's fp32 matmul (the same products in fp32; their sums differ in
 * order, so in the last bits). AUTO, the default, picks oneDNN where
 * OpenBLAS runs AVX2 kernels on a CPU on which oneDNN runs AVX-512 ones (an
 * OPENBLAS_CORETYPE such as Haswell on an AVX-512 CPU: there oneDNN's fp32
 * matmul is 1.7-2x sgemm on the model's shapes, docs/performance.md) and
 * OpenBLAS everywhere else. The environment variable AIM_GEMM
 * (auto|openblas|onednn) overrides AUTO for every model of the process. */
typedef enum { AIM_GEMM_AUTO = 0, AIM_GEMM_OPENBLAS = 1, AIM_GEMM_ONEDNN = 2 } aim_gemm;
/* "openblas" / "onednn" ("auto" for AIM_GEMM_AUTO) */
const char *aim_gemm_name(aim_gemm g);
/* AUTO made concrete: AIM_GEMM if set, else the rule above. -1 with a
 * message naming AIM_GEMM when it is neither of the three, or onednn where
 * oneDNN is not built in. *why (may be NULL) gets the reason in words. */
int aim_gemm_resolve(aim_gemm g, aim_gemm *out, const char **why, aim_err *e);
/* Set m's fp32 GEMM library (AUTO resolved here); -1 with a message as
 * aim_gemm_resolve. Takes effect at the next pass. */
int aim_model_set_gemm(aim_model *m, aim_gemm g, aim_err *e);
/* what runs m's linear layers' GEMMs now: "openblas", "onednn" (fp32), or
 * "onednn bf16" */
const char *aim_model_gemm(const aim_model *m);
/* the same for a new model in precision p (AIM_GEMM_AUTO resolved; "?" if
 * AIM_GEMM is bad), for run.json */
const char *aim_gemm_label(aim_precision p);

/* Bytes of activation memory for batch B (for bench / messages). */
size_t aim_model_activation_bytes(const aim_config *c, int B);

#endif
