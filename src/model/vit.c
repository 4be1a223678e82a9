/*
 * vit.c - the AIM forward and backward passes over the parameter table:
 * patch embedding (+ LayerNorm + 2-D sin-cos), L pre-norm blocks with
 * prefix-causal attention, post_trunk_norm, the per-token MLP pixel head and
 * the normalised-pixel loss (shared/AIM.md). Activations live in one slab
 * sized for the largest batch seen; a step never allocates.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/nn.h"
#include "aim/prof.h"
#include "model/model_internal.h"

/* FLOPs of out[R,OC] = inp[R,IC] W^T */
#define GF(R, IC, OC) (2.0 * (double)(R) * (double)(IC) * (double)(OC))

void aim_model_set_profile(aim_model *m, aim_prof *p)
{
    m->prof = p;
}

/* ------------------------------------------------------------ activations */

typedef struct carver {
    float *base;   /* NULL while counting */
    size_t used;   /* floats */
} carver;

static float *take(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) / 16 * 16; /* keep every buffer 64-byte aligned */
    return p;
}

/* Lay out (or count) every activation buffer for batch B. */
static void layout(aim_model *m, int B, carver *c)
{
    size_t R = (size_t)B * m->N, D = m->D, Dh = m->Dh, NN = (size_t)m->N * m->N;
    model_acts *a = &m->a;
    a->patches = take(c, R * m->CPP);
    a->emb = take(c, R * D);
    a->emb_mean = take(c, R);
    a->emb_rstd = take(c, R);
    a->x0 = take(c, R * D);
    for (int l = 0; l < m->L; l++) {
        block_acts *b = &a->blk[l];
        b->ln1 = take(c, R * D);
        b->ln1_mean = take(c, R);
        b->ln1_rstd = take(c, R);
        b->qkv = take(c, R * 3 * D);
        b->att = take(c, (size_t)B * m->NH * NN);
        b->atty = take(c, R * D);
        b->res1 = take(c, R * D);
        b->ln2 = take(c, R * D);
        b->ln2_mean = take(c, R);
        b->ln2_rstd = take(c, R);
        b->fc1 = take(c, R * 4 * D);
        b->gelu = take(c, R * 4 * D);
        b->res2 = take(c, R * D);
    }
    a->lnf = take(c, R * D);
    a->lnf_mean = take(c, R);
    a->lnf_rstd = take(c, R);
    a->hy0 = take(c, R * Dh);
    for (int j = 0; j < m->Lh; j++) {
        hblock_acts *h = &a->hblk[j];
        h->ln = take(c, R * Dh);
        h->ln_mean = take(c, R);
        h->ln_rstd = take(c, R);
        h->fc1 = take(c, R * 4 * Dh);
        h->gelu = take(c, R * 4 * Dh);
        h->res = take(c, R * Dh);
    }
    a->hln = take(c, R * Dh);
    a->hln_mean = take(c, R);
    a->hln_rstd = take(c, R);
    a->pred = take(c, R * m->P);
    a->tgt = take(c, R * m->P);
    a->prefix = (int32_t *)take(c, (size_t)B);
    size_t wide = 4 * (D > Dh ? D : Dh);
    a->dres = take(c, R * D);
    a->dln = take(c, R * D);
    a->dqkv = take(c, R * 3 * D);
    a->datt = take(c, (size_t)B * m->NH * NN);
    a->datty = take(c, R * D);
    a->dfc1 = take(c, R * wide);
    a->dgelu = take(c, R * wide);
    a->dhy = take(c, R * Dh);
    a->dhln = take(c, R * Dh);
    a->dpred = take(c, R * m->P);
    a->demb = take(c, R * D);
}

size_t aim_model_activation_bytes(const aim_config *cfg, int B)
{
    aim_err e;
    aim_model *m = aim_model_new(cfg, 0, &e);
    if (!m)
        return 0;
    m->a.blk = aim_xcalloc((size_t)m->L, sizeof *m->a.blk);
    m->a.hblk = aim_xcalloc((size_t)(m->Lh ? m->Lh : 1), sizeof *m->a.hblk);
    carver c = {0};
    layout(m, B, &c);
    aim_model_free(m);
    return c.used * sizeof(float);
}

int aim_model_reserve(aim_model *m, int B, aim_err *e)
{
    if (B <= m->cap_B)
        return 0;
    if (!m->a.blk) {
        m->a.blk = aim_xcalloc((size_t)m->L, sizeof *m->a.blk);
        m->a.hblk = aim_xcalloc((size_t)(m->Lh ? m->Lh : 1), sizeof *m->a.hblk);
    }
    carver c = {0};
    layout(m, B, &c);
    if ((uint64_t)c.used * sizeof(float) > AIM_MAX_ALLOC * 4)
        return aim_errf(e, "batch %d needs %.1f GB of activations", B,
                        c.used * sizeof(float) / 1e9);
    void *slab = NULL;
    if (posix_memalign(&slab, 64, c.used * sizeof(float)) != 0)
        return aim_errf(e, "out of memory: batch %d needs %.1f GB of activations", B,
                        c.used * sizeof(float) / 1e9);
    free(m->act_slab);
    m->act_slab = slab;
    m->cap_B = B;
    c.base = m->act_slab;
    c.used = 0;
    layout(m, B, &c);
    m->have_forward = 0;
    return 0;
}

/* ------------------------------------------------------------ forward */

static void add_pos(float *x, const float *pos, int B, int N, int D)
{
    size_t nd = (size_t)N * D;
#pragma omp parallel for schedule(static) if (B > 1)
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * nd;
        for (size_t i = 0; i < nd; i++)
            xb[i] += pos[i];
    }
}

static void residual(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* Trunk through block `upto` (1..L): returns the residual stream there. */
static const float *trunk_forward(aim_model *m, const float *x, const int32_t *prefix, int B,
                                  int upto)
{
    const aim_config *c = &m->cfg;
    model_acts *a = &m->a;
    int N = m->N, D = m->D, R = B * N;
    float eps = c->norm_eps;
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, 0);
    double NND = 4.0 * N * N * D * B; /* QK^T and PV */
    patch_extract(a->patches, x, B, c->channels, c->image, c->image, c->patch);
    aim_lap(&lp, AIM_K_F_PATCH, 0);
    linear_forward(a->emb, a->patches, W(m, m->patch_w), W(m, m->patch_b), R, m->CPP, D);
    aim_lap(&lp, AIM_K_F_EMBED, GF(R, m->CPP, D));
    layernorm_forward(a->x0, a->emb_mean, a->emb_rstd, a->emb, W(m, m->pn_w), W(m, m->pn_b), R,
                      D, eps);
    add_pos(a->x0, m->pos, B, N, D);
    aim_lap(&lp, AIM_K_F_LN, 0);
    const float *xin = a->x0;
    for (int l = 0; l < upto; l++) {
        const block_idx *bi = &m->blk[l];
        block_acts *b = &a->blk[l];
        layernorm_forward(b->ln1, b->ln1_mean, b->ln1_rstd, xin, W(m, bi->ln1w), W(m, bi->ln1b),
                          R, D, eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
        linear_forward(b->qkv, b->ln1, W(m, bi->qkv), NULL, R, D, 3 * D);
        aim_lap(&lp, AIM_K_F_QKV, GF(R, D, 3 * D));
        attention_forward(b->atty, b->att, b->qkv, prefix, B, N, D, m->NH);
        aim_lap(&lp, AIM_K_F_ATTN, NND);
        linear_forward(b->res1, b->atty, W(m, bi->proj), NULL, R, D, D);
        aim_lap(&lp, AIM_K_F_PROJ, GF(R, D, D));
        residual(b->res1, b->res1, xin, (size_t)R * D);
        aim_lap(&lp, AIM_K_F_RES, 0);
        layernorm_forward(b->ln2, b->ln2_mean, b->ln2_rstd, b->res1, W(m, bi->ln2w),
                          W(m, bi->ln2b), R, D, eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
        linear_forward(b->fc1, b->ln2, W(m, bi->fc1), NULL, R, D, 4 * D);
        aim_lap(&lp, AIM_K_F_FC1, GF(R, D, 4 * D));
        gelu_forward(b->gelu, b->fc1, (size_t)R * 4 * D);
        aim_lap(&lp, AIM_K_F_GELU, 0);
        linear_forward(b->res2, b->gelu, W(m, bi->fc2), NULL, R, 4 * D, D);
        aim_lap(&lp, AIM_K_F_FC2, GF(R, 4 * D, D));
        residual(b->res2, b->res2, b->res1, (size_t)R * D);
        aim_lap(&lp, AIM_K_F_RES, 0);
        xin = b->res2;
    }
    return xin;
}

const float *aim_model_trunk(aim_model *m, const float *x, const int32_t *prefix, int B,
                             int upto)
{
    if (aim_model_reserve(m, B, NULL) != 0)
        return NULL;
    m->have_forward = 0;
    int L = upto >= 1 && upto <= m->L ? upto : m->L;
    const float *out = trunk_forward(m, x, prefix, B, L);
    if (upto == 0) {
        model_acts *a = &m->a;
        layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, out, W(m, m->post_w),
                          W(m, m->post_b), B * m->N, m->D, m->cfg.norm_eps);
        return a->lnf;
    }
    return out;
}

float aim_model_forward(aim_model *m, const float *x, const int32_t *prefix, int B)
{
    if (aim_model_reserve(m, B, NULL) != 0)
        return -1.0f;
    const aim_config *c = &m->cfg;
    model_acts *a = &m->a;
    int N = m->N, D = m->D, Dh = m->Dh, R = B * N;
    float eps = c->norm_eps;
    memcpy(a->prefix, prefix, (size_t)B * sizeof *prefix);
    double t0 = m->prof ? aim_prof_now() : 0;
    const float *xt = trunk_forward(m, x, a->prefix, B, m->L);
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, 0);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, xt, W(m, m->post_w), W(m, m->post_b), R,
                      D, eps);
    aim_lap(&lp, AIM_K_F_LN, 0);
    /* pixel head */
    linear_forward(a->hy0, a->lnf, W(m, m->hproj_w), W(m, m->hproj_b), R, D, Dh);
    aim_lap(&lp, AIM_K_F_HPROJ, GF(R, D, Dh));
    add_pos(a->hy0, m->pos_h, B, N, Dh);
    aim_lap(&lp, AIM_K_F_RES, 0);
    const float *y = a->hy0;
    for (int j = 0; j < m->Lh; j++) {
        const hblock_idx *hi = &m->hblk[j];
        hblock_acts *h = &a->hblk[j];
        layernorm_forward(h->ln, h->ln_mean, h->ln_rstd, y, W(m, hi->lnw), W(m, hi->lnb), R, Dh,
                          eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
        linear_forward(h->fc1, h->ln, W(m, hi->fc1), NULL, R, Dh, 4 * Dh);
        aim_lap(&lp, AIM_K_F_HFC1, GF(R, Dh, 4 * Dh));
        gelu_forward(h->gelu, h->fc1, (size_t)R * 4 * Dh);
        aim_lap(&lp, AIM_K_F_GELU, 0);
        linear_forward(h->res, h->gelu, W(m, hi->fc2), NULL, R, 4 * Dh, Dh);
        aim_lap(&lp, AIM_K_F_HFC2, GF(R, 4 * Dh, Dh));
        residual(h->res, h->res, y, (size_t)R * Dh);
        aim_lap(&lp, AIM_K_F_RES, 0);
        y = h->res;
    }
    layernorm_forward(a->hln, a->hln_mean, a->hln_rstd, y, W(m, m->hn_w), W(m, m->hn_b), R, Dh,
                      eps);
    aim_lap(&lp, AIM_K_F_LN, 0);
    linear_forward(a->pred, a->hln, W(m, m->pred_w), W(m, m->pred_b), R, Dh, m->P);
    aim_lap(&lp, AIM_K_F_PRED, GF(R, Dh, m->P));
    /* loss */
    patch_targets(a->tgt, x, B, c->channels, c->image, c->image, c->patch);
    m->loss = loss_forward(a->pred, a->tgt, a->prefix, B, N, m->P);
    aim_lap(&lp, AIM_K_F_LOSS, 0);
    if (m->prof) {
        m->prof->wall_fwd += aim_prof_now() - t0;
        m->prof->steps++;
    }
    m->B = B;
    m->have_forward = 1;
    return m->loss;
}

const float *aim_model_predictions(const aim_model *m)
{
    return m->a.pred;
}

const float *aim_model_targets(const aim_model *m)
{
    return m->a.tgt;
}

/* ------------------------------------------------------------ backward */

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof *p);
}

/* linear backward split in its two GEMMs, each timed on its own */
static void lin_bwd(aim_laptimer *lp, int kdx, int kdw, float *dinp, float *dweight,
                    float *dbias, const float *dout, const float *inp, const float *weight,
                    int R, int IC, int OC)
{
    if (dinp) {
        linear_backward(dinp, NULL, NULL, dout, inp, weight, R, IC, OC);
        aim_lap(lp, kdx, GF(R, IC, OC));
    }
    if (dweight || dbias) {
        linear_backward(NULL, dweight, dbias, dout, inp, weight, R, IC, OC);
        aim_lap(lp, kdw, dweight ? GF(R, IC, OC) : 0);
    }
}

void aim_model_backward(aim_model *m)
{
    if (!m->have_forward)
        return;
    model_acts *a = &m->a;
    int B = m->B, N = m->N, D = m->D, Dh = m->Dh, R = B * N;
    double t0 = m->prof ? aim_prof_now() : 0;
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, 0);

    /* loss and prediction layer */
    zero(a->dpred, (size_t)R * m->P);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    loss_backward(a->dpred, a->pred, a->tgt, a->prefix, B, N, m->P, 1.0f);
    aim_lap(&lp, AIM_K_B_LOSS, 0);
    zero(a->dhln, (size_t)R * Dh);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    lin_bwd(&lp, AIM_K_B_PRED_DX, AIM_K_B_PRED_DW, a->dhln, G(m, m->pred_w), G(m, m->pred_b),
            a->dpred, a->hln, W(m, m->pred_w), R, Dh, m->P);
    const float *yin = m->Lh ? a->hblk[m->Lh - 1].res : a->hy0;
    zero(a->dhy, (size_t)R * Dh);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    layernorm_backward(a->dhy, G(m, m->hn_w), G(m, m->hn_b), a->dhln, yin, W(m, m->hn_w),
                       a->hln_mean, a->hln_rstd, R, Dh);
    aim_lap(&lp, AIM_K_B_LN, 0);

    /* pixel head blocks, in reverse: y_out = y_in + fc2(gelu(fc1(ln(y_in)))) */
    for (int j = m->Lh - 1; j >= 0; j--) {
        const hblock_idx *hi = &m->hblk[j];
        hblock_acts *h = &a->hblk[j];
        const float *y = j ? a->hblk[j - 1].res : a->hy0;
        zero(a->dgelu, (size_t)R * 4 * Dh);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_HFC2_DX, AIM_K_B_HFC2_DW, a->dgelu, G(m, hi->fc2), NULL, a->dhy,
                h->gelu, W(m, hi->fc2), R, 4 * Dh, Dh);
        zero(a->dfc1, (size_t)R * 4 * Dh);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        gelu_backward(a->dfc1, h->fc1, a->dgelu, (size_t)R * 4 * Dh);
        aim_lap(&lp, AIM_K_B_GELU, 0);
        zero(a->dhln, (size_t)R * Dh);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_HFC1_DX, AIM_K_B_HFC1_DW, a->dhln, G(m, hi->fc1), NULL, a->dfc1,
                h->ln, W(m, hi->fc1), R, Dh, 4 * Dh);
        /* the residual path already sits in dhy; the norm adds its part */
        layernorm_backward(a->dhy, G(m, hi->lnw), G(m, hi->lnb), a->dhln, y, W(m, hi->lnw),
                           h->ln_mean, h->ln_rstd, R, Dh);
        aim_lap(&lp, AIM_K_B_LN, 0);
    }

    /* head projection (the position embedding is fixed) and post norm */
    zero(a->dln, (size_t)R * D);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    lin_bwd(&lp, AIM_K_B_HPROJ_DX, AIM_K_B_HPROJ_DW, a->dln, G(m, m->hproj_w), G(m, m->hproj_b),
            a->dhy, a->lnf, W(m, m->hproj_w), R, D, Dh);
    const float *xt = m->L ? a->blk[m->L - 1].res2 : a->x0;
    zero(a->dres, (size_t)R * D);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    layernorm_backward(a->dres, G(m, m->post_w), G(m, m->post_b), a->dln, xt, W(m, m->post_w),
                       a->lnf_mean, a->lnf_rstd, R, D);
    aim_lap(&lp, AIM_K_B_LN, 0);

    /* trunk blocks, in reverse */
    double NND = 8.0 * N * N * D * B; /* backward of QK^T and PV */
    for (int l = m->L - 1; l >= 0; l--) {
        const block_idx *bi = &m->blk[l];
        block_acts *b = &a->blk[l];
        const float *xin = l ? a->blk[l - 1].res2 : a->x0;
        /* res2 = res1 + fc2(gelu(fc1(ln2(res1)))) */
        zero(a->dgelu, (size_t)R * 4 * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_FC2_DX, AIM_K_B_FC2_DW, a->dgelu, G(m, bi->fc2), NULL, a->dres,
                b->gelu, W(m, bi->fc2), R, 4 * D, D);
        zero(a->dfc1, (size_t)R * 4 * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        gelu_backward(a->dfc1, b->fc1, a->dgelu, (size_t)R * 4 * D);
        aim_lap(&lp, AIM_K_B_GELU, 0);
        zero(a->dln, (size_t)R * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_FC1_DX, AIM_K_B_FC1_DW, a->dln, G(m, bi->fc1), NULL, a->dfc1,
                b->ln2, W(m, bi->fc1), R, D, 4 * D);
        layernorm_backward(a->dres, G(m, bi->ln2w), G(m, bi->ln2b), a->dln, b->res1,
                           W(m, bi->ln2w), b->ln2_mean, b->ln2_rstd, R, D);
        aim_lap(&lp, AIM_K_B_LN, 0);
        /* res1 = xin + proj(attn(qkv(ln1(xin)))) */
        zero(a->datty, (size_t)R * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_PROJ_DX, AIM_K_B_PROJ_DW, a->datty, G(m, bi->proj), NULL, a->dres,
                b->atty, W(m, bi->proj), R, D, D);
        zero(a->dqkv, (size_t)R * 3 * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        attention_backward(a->dqkv, a->datt, a->datty, b->qkv, b->att, a->prefix, B, N, D,
                           m->NH);
        aim_lap(&lp, AIM_K_B_ATTN, NND);
        zero(a->dln, (size_t)R * D);
        aim_lap(&lp, AIM_K_B_ZERO, 0);
        lin_bwd(&lp, AIM_K_B_QKV_DX, AIM_K_B_QKV_DW, a->dln, G(m, bi->qkv), NULL, a->dqkv,
                b->ln1, W(m, bi->qkv), R, D, 3 * D);
        layernorm_backward(a->dres, G(m, bi->ln1w), G(m, bi->ln1b), a->dln, xin, W(m, bi->ln1w),
                           b->ln1_mean, b->ln1_rstd, R, D);
        aim_lap(&lp, AIM_K_B_LN, 0);
    }

    /* x0 = LN(emb) + pos;  emb = patches @ Wp^T + bp */
    zero(a->demb, (size_t)R * D);
    aim_lap(&lp, AIM_K_B_ZERO, 0);
    layernorm_backward(a->demb, G(m, m->pn_w), G(m, m->pn_b), a->dres, a->emb, W(m, m->pn_w),
                       a->emb_mean, a->emb_rstd, R, D);
    aim_lap(&lp, AIM_K_B_LN, 0);
    lin_bwd(&lp, AIM_K_B_EMBED_DW, AIM_K_B_EMBED_DW, NULL, G(m, m->patch_w), G(m, m->patch_b),
            a->demb, a->patches, W(m, m->patch_w), R, m->CPP, D);
    if (m->prof)
        m->prof->wall_bwd += aim_prof_now() - t0;
}
