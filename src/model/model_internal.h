/*
 * model_internal.h - the aim_model struct, shared by model.c (config,
 * parameters, init, files) and vit.c (activations, forward, backward).
 * Not part of the public API.
 */
#ifndef AIM_MODEL_INTERNAL_H
#define AIM_MODEL_INTERNAL_H

#include "aim/bf16.h"
#include "aim/model.h"
#include "aim/prof.h"

/* indices into the parameter table, per trunk block */
typedef struct block_idx {
    int ln1w, ln1b, qkv, proj, ln2w, ln2b, fc1, fc2;
    /* LoRA adapters (lora.c), -1 when the block has none: qkv.lora_A [2r,D],
     * qkv.lora_B [2D,r] (q and v), proj.lora_A [r,D], proj.lora_B [D,r] */
    int qa, qb, pa, pb;
} block_idx;

/* per pixel-head block */
typedef struct hblock_idx {
    int lnw, lnb, fc1, fc2;
} hblock_idx;

/* saved activations of one trunk block, for batch capacity cap_B */
typedef struct block_acts {
    float *ln1;                 /* [R, D] */
    float *ln1_mean, *ln1_rstd; /* [R] */
    float *qkv;                 /* [R, 3D] */
    float *att;                 /* [B, NH, N, N] softmax probabilities */
    float *atty;                /* [R, D] heads concatenated, before proj */
    float *res1;                /* [R, D] x + attn */
    float *ln2;                 /* [R, D] */
    float *ln2_mean, *ln2_rstd; /* [R] */
    float *fc1;                 /* [R, 4D] after a training forward: gelu'(fc1 output) */
    float *gelu;                /* [R, 4D] */
    float *res2;                /* [R, D] block output */
    float *lora_u;              /* [R, 2r] qkv.lora_A x (LoRA blocks only) */
    float *lora_w;              /* [R, r] proj.lora_A atty (LoRA blocks only) */
    /* bf16 only (else NULL): the bf16 copies of the GEMM inputs, written
     * once in the forward (ln1, ln2, gelu by the pass that makes them, atty
     * in front of proj) and read again by the weight gradients' GEMMs.
     * Row r at row r, as the fp32 ones: see bf16_fwd_rows */
    uint16_t *ln1_16, *atty16, *ln2_16, *gelu16;
} block_acts;

typedef struct hblock_acts {
    float *ln;                  /* [R, Dh] */
    float *ln_mean, *ln_rstd;   /* [R] */
    float *fc1;                 /* [R, 4Dh] as block_acts.fc1 */
    float *gelu;                /* [R, 4Dh] */
    float *res;                 /* [R, Dh] block output */
    uint16_t *ln16, *gelu16;    /* bf16 copies, as block_acts' */
} hblock_acts;

typedef struct model_acts {
    float *patches;             /* [R, C*p*p] conv order */
    float *emb;                 /* [R, D] patch embedding before its norm */
    float *emb_mean, *emb_rstd; /* [R] */
    float *x0;                  /* [R, D] trunk input (normed + pos) */
    block_acts *blk;            /* [L] */
    float *lnf;                 /* [R, D] post_trunk_norm output */
    float *lnf_mean, *lnf_rstd; /* [R] */
    float *hy0;                 /* [R, Dh] head input (proj + bias + pos) */
    hblock_acts *hblk;          /* [Lh] */
    float *hln;                 /* [R, Dh] decoder_norm output */
    float *hln_mean, *hln_rstd; /* [R] */
    uint16_t *patches16, *lnf16, *hln16; /* bf16 copies, as block_acts' */
    float *pred;                /* [R, P] */
    float *tgt;                 /* [R, P] */
    int32_t *prefix;            /* [B] copy of the last forward's prefixes */
    int32_t *crow;              /* [R] loss-only pass: compact row -> its row */
    double *iloss;              /* [B] loss-only pass: each image's sum of row losses */
    /* backward scratch */
    float *dres;                /* [R, D] gradient of the residual stream */
    float *dln;                 /* [R, D] */
    float *dqkv;                /* [R, 3D] */
    float *datt;                /* [B, NH, N, N] */
    float *datty;               /* [R, D] */
    float *dgelu;               /* [R, 4max(D,Dh)] then, in place, dfc1 */
    float *dhy;                 /* [R, Dh] gradient of the head's stream */
    float *dhln;                /* [R, Dh] */
    float *dpred;               /* [R, P] */
    float *dlora;               /* [R, 2r] (with LoRA) */
} model_acts;

struct aim_model {
    aim_config cfg;
    int N, P, CPP, D, L, NH, Dh, Lh; /* CPP = C*p*p (conv order patch) */
    aim_params p;
    /* table indices */
    int patch_w, patch_b, pn_w, pn_b;
    block_idx *blk;             /* [L] */
    int post_w, post_b;
    int hproj_w, hproj_b;
    hblock_idx *hblk;           /* [Lh] */
    int hn_w, hn_b, pred_w, pred_b;
    /* fixed tables */
    float *pos;                 /* [N, D] 2-D sin-cos */
    float *pos_h;               /* [N, Dh] */
    /* activations */
    int cap_B;                  /* capacity of the activation slab */
    float *act_slab;
    model_acts a;
    int B;                      /* batch of the last forward */
    float loss;
    int have_forward;           /* 1 after a training forward */
    /* the last pixel-loss forward ran the last block's tail and the head on
     * the loss's rows only (AIM_FWD_LOSS_ONLY): their activations, pred
     * and the backward's top are compact, thread t's from row r0 on */
    int loss_only;
    int64_t norm_count;         /* > 0: the next backward divides by this many
                                   target tokens (aim_model_set_loss_count) */
    struct aim_prof *prof;      /* NULL unless profiling */
    int nslot;                  /* private gradient slabs, threads 1..nslot */
    float **gslot;              /* [nslot][p.total] */
    /* LoRA (lora.c): rank 0 = none */
    int lora_rank;
    float lora_alpha, lora_scale; /* scale = alpha / rank */
    int lora_merged;            /* 1: B A folded into the weights, forward skips it */
    /* the last forward was aim_model_features_train: backward starts from
     * the feature gradient at block fb_upto instead of the pixel loss */
    int fb_mode, fb_upto, fb_nblocks;
    unsigned char *fb_in;       /* [L] 1 if block l+1 is in the feature set */
    unsigned char *bw_written;  /* [bw_cap] tensors the last backward wrote */
    int bw_cap;
    /* mixed precision (aim_model_set_precision): with bf16 the linear layers'
     * GEMMs take bf16 operands through bf (oneDNN), fp32 otherwise */
    aim_precision prec;
    aim_bf16_ctx *bf;           /* NULL in fp32 */
    aim_gemm gemm;              /* fp32's GEMM library (never AUTO) */
    aim_bf16_ctx *dnf;          /* oneDNN's fp32 GEMMs (gemm == AIM_GEMM_ONEDNN), made at
                                   the first pass (aim_model_reserve) */
    uint16_t *w16;              /* [w16_n] bf16 copy of p.data, made at each forward */
    size_t w16_n;
    uint16_t **a16;             /* [2 * bf threads] per thread: an operand [R, wide] and a
                                   gradient [R, wide] in bf16 */
    size_t a16_n;               /* elements of each */
    uint16_t *act16;            /* [act16_n] the activations' bf16 copies (block_acts) */
    size_t act16_n;
};

/* LoRA: active in the forward (adapters present and not merged) */
static inline int lora_active(const aim_model *m, const block_idx *b)
{
    return b->qa >= 0 && !m->lora_merged;
}

/* pointers into the slabs */
static inline float *W(const aim_model *m, int idx)
{
    return m->p.data + m->p.t[idx].offset;
}
static inline float *G(const aim_model *m, int idx)
{
    /* NULL for frozen tensors: kernels then skip the weight gradient */
    return (m->p.t[idx].flags & AIM_P_FROZEN) ? NULL : m->p.grad + m->p.t[idx].offset;
}

/* lora.c, for model.c's save and load: the lora_rank / lora_alpha metadata
 * (returns the pairs added to kv, 0 without adapters); a copy of weight idx
 * with the adapters taken out when they are merged (NULL otherwise; free
 * it); the adapters of an open file added and loaded (returns the adapted
 * blocks, 0 when the file has none, -1 on error, the model unchanged) */
int lora_meta(const aim_model *m, char vals[2][32], const char **kv);
float *lora_unmerged_copy(const aim_model *m, int idx);
struct aim_st_file;
int lora_from_st(aim_model *m, const struct aim_st_file *f, aim_err *e);
/* the same checks as lora_from_st, the model unchanged (0 or -1) */
int lora_check_st(const aim_model *m, const struct aim_st_file *f, aim_err *e);

/* model.c: a model's fields and parameter table for config c (validated),
 * nothing sized by the config allocated: the slabs come later, once the
 * sizes are checked (model_alloc). */
aim_model *model_shell(const aim_config *c, aim_err *e);
/* vit.c: floats of activations for batch B (counted, nothing allocated;
 * on a model whose activation slab is not yet laid out) */
size_t model_activation_floats(aim_model *m, int B);
/* vit.c: the bf16 context and buffers of a model, freed (fp32 again) */
void model_bf16_free(aim_model *m);

#endif
