/*
 * vit.c - the AIM forward and backward passes over the parameter table:
 * patch embedding (+ LayerNorm + 2-D sin-cos), L pre-norm blocks with
 * prefix-causal attention, post_trunk_norm, the per-token MLP pixel head and
 * the normalised-pixel loss (shared/AIM.md). Activations live in one slab
 * sized for the largest batch seen; a step never allocates.
 *
 * Threading: every image is independent until the weight gradients are
 * summed, so each pass is ONE OpenMP parallel region in which thread t owns
 * a fixed block of images (rows) and runs the whole network on it: sgemm
 * calls made there are single-threaded (OpenBLAS's OpenMP build), the
 * element-wise work is fused into few sweeps over the thread's own rows,
 * and no thread waits for another until the end. In backward, thread 0
 * accumulates its weight gradients into the grad slab and thread t > 0
 * writes its own into a private slab (gslot[t-1]); after one barrier the
 * threads add the private slabs into the grad slab, each over its share of
 * the parameters, in thread order. The same thread count therefore gives
 * bit-identical results. With a single image (or thread) the region has one
 * thread and the sgemm calls use every OpenBLAS thread instead.
 */
#include "config.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

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
        int lr = m->blk[l].qa >= 0 ? m->lora_rank : 0;
        b->lora_u = lr ? take(c, R * 2 * lr) : NULL;
        b->lora_w = lr ? take(c, R * lr) : NULL;
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
    a->crow = (int32_t *)take(c, R);
    a->iloss = (double *)take(c, 2 * (size_t)B);
    size_t wide = 4 * (D > Dh ? D : Dh);
    a->dres = take(c, R * D);
    a->dln = take(c, R * D);
    a->dqkv = take(c, R * 3 * D);
    a->datt = take(c, (size_t)B * m->NH * NN);
    a->datty = take(c, R * D);
    a->dgelu = take(c, R * wide);
    a->dhy = take(c, R * Dh);
    a->dhln = take(c, R * Dh);
    a->dpred = take(c, R * m->P);
    a->dlora = m->lora_rank ? take(c, R * 2 * m->lora_rank) : NULL;
}

size_t model_activation_floats(aim_model *m, int B)
{
    if (!m->a.blk) {
        m->a.blk = aim_xcalloc((size_t)m->L, sizeof *m->a.blk);
        m->a.hblk = aim_xcalloc((size_t)(m->Lh ? m->Lh : 1), sizeof *m->a.hblk);
    }
    carver c = {0};
    layout(m, B, &c);
    return c.used;
}

size_t aim_model_activation_bytes(const aim_config *cfg, int B)
{
    /* the table alone: no parameter is allocated to count */
    aim_model *m = model_shell(cfg, NULL);
    if (!m)
        return 0;
    size_t n = model_activation_floats(m, B);
    aim_model_free(m);
    return n * sizeof(float);
}

/* Private weight-gradient slabs for threads 1..nt-1 (zeroed once: the
 * alignment gaps and frozen tensors are never written). Allocates only when
 * the thread count grows; stops at the first slab that cannot be had (the
 * backward then runs on fewer threads, team() caps them at nslot + 1). */
static void ensure_slots(aim_model *m, int nt)
{
    if (nt - 1 <= m->nslot)
        return;
    m->gslot = aim_xrealloc(m->gslot, (size_t)(nt - 1) * sizeof *m->gslot);
    for (int i = m->nslot; i < nt - 1; i++) {
        m->gslot[i] = aim_try_aligned_zero((m->p.total ? m->p.total : 1) * sizeof(float));
        if (!m->gslot[i])
            break;
        m->nslot = i + 1;
    }
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
    uint64_t bytes = (uint64_t)c.used * sizeof(float);
    if (bytes > AIM_MAX_ALLOC * 4 || bytes > aim_mem_limit()) {
        char need[32], lim[32];
        aim_fmt_bytes(need, sizeof need, bytes);
        aim_fmt_bytes(lim, sizeof lim, aim_mem_limit());
        return aim_errf(e, "batch %d needs %s of activations, more than the %s allowed", B,
                        need, lim);
    }
    void *slab = NULL;
    if (posix_memalign(&slab, 64, c.used * sizeof(float)) != 0)
        return aim_errf(e, "out of memory: batch %d needs %.1f GB of activations", B,
                        c.used * sizeof(float) / 1e9);
    free(m->act_slab);
    m->act_slab = slab;
    ensure_slots(m, omp_get_max_threads());
    m->cap_B = B;
    c.base = m->act_slab;
    c.used = 0;
    layout(m, B, &c);
    m->have_forward = 0;
    return 0;
}

/* ------------------------------------------------------------ forward */

/* thread t of nt owns images [*b0, *b1) of B */
static void share(int B, int nt, int t, int *b0, int *b1)
{
    *b0 = (int)((int64_t)B * t / nt);
    *b1 = (int)((int64_t)B * (t + 1) / nt);
}

/* team size for a batch of B images */
static int team(const aim_model *m, int B, int with_slots)
{
    int nt = omp_get_max_threads();
    if (nt > B)
        nt = B;
    if (with_slots && nt > m->nslot + 1)
        nt = m->nslot + 1;
    if (nt > AIM_PROF_MAX_THREADS)
        nt = AIM_PROF_MAX_THREADS;
    return nt < 1 ? 1 : nt;
}

/* out[R,OC] = inp[R,IC] @ W[OC,IC]^T, overwriting */
static void gemm_nt(float *out, const float *inp, const float *w, int R, int IC, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, OC, IC, 1.0f, inp, IC, w, IC, 0.0f,
                out, OC);
}

#define ROWS(ptr, width) ((ptr) + (size_t)r0 * (size_t)(width))
#define STATS(ptr) ((ptr) + r0)

/* The activations of trunk block l and head block j. An evaluation pass
 * (no backward to follow) keeps none of them, so every trunk block works in
 * block 0's buffers and the head blocks alternate between two: the working
 * set stays in cache instead of streaming through the whole slab. (A trunk
 * block reads its input only before fc2 overwrites res2; a head block still
 * needs its input after fc2, hence the two.) */
static block_acts *BA(aim_model *m, int l, int eval)
{
    return &m->a.blk[eval ? 0 : l];
}

static hblock_acts *HA(aim_model *m, int j, int eval)
{
    return &m->a.hblk[eval ? j % 2 : j];
}

/* ------------------------------------------------------------ LoRA terms
 * loralib conventions (AIM.md): on qkv, q and v only, A [2r,D] (rows 0..r-1
 * for q, r..2r-1 for v) and B [2D,r] (rows 0..D-1 for q, D..2D-1 for v); on
 * proj, A [r,D] and B [D,r]; output += s B (A x) with s = alpha / r. */

/* qkv[:, 0:D] += s Bq (Aq x), qkv[:, 2D:3D] += s Bv (Av x); u = A x [R,2r] */
static void lora_qkv_fwd(const aim_model *m, const block_idx *bi, float *u, float *qkv,
                         const float *x, int R)
{
    const int D = m->D, r = m->lora_rank;
    const float s = m->lora_scale, *B = W(m, bi->qb);
    gemm_nt(u, x, W(m, bi->qa), R, D, 2 * r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, D, r, s, u, 2 * r, B, r, 1.0f, qkv,
                3 * D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, D, r, s, u + r, 2 * r,
                B + (size_t)D * r, r, 1.0f, qkv + 2 * D, 3 * D);
}

/* out += s Bp (Ap y); w = Ap y [R,r] */
static void lora_proj_fwd(const aim_model *m, const block_idx *bi, float *w, float *out,
                          const float *y, int R)
{
    const int D = m->D, r = m->lora_rank;
    gemm_nt(w, y, W(m, bi->pa), R, D, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, D, r, m->lora_scale, w, r,
                W(m, bi->pb), r, 1.0f, out, D);
}

/* Backward of lora_qkv_fwd: dx += (the adapter's part of dL/dx); the
 * gradients of A and B into gA, gB (beta bw; NULL when frozen). du [R,2r]
 * is scratch. */
static void lora_qkv_bwd(const aim_model *m, const block_idx *bi, float *gA, float *gB, float bw,
                         const float *dqkv, const float *x, const float *u, float *dx, float *du,
                         int R)
{
    const int D = m->D, r = m->lora_rank;
    const float s = m->lora_scale, *A = W(m, bi->qa), *B = W(m, bi->qb);
    for (int h = 0; h < 2; h++) { /* q, then v */
        const float *dy = dqkv + 2 * h * D, *Bh = B + (size_t)h * D * r;
        /* du_h = s dy Bh  [R,r] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, r, D, s, dy, 3 * D, Bh, r,
                    0.0f, du + h * r, 2 * r);
        /* dBh = s dy^T u_h  [D,r] */
        if (gB)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, r, R, s, dy, 3 * D,
                        u + h * r, 2 * r, bw, gB + (size_t)h * D * r, r);
    }
    if (gA) /* dA = du^T x  [2r,D] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2 * r, D, R, 1.0f, du, 2 * r, x, D,
                    bw, gA, D);
    /* dx += du A */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D, 2 * r, 1.0f, du, 2 * r, A, D,
                1.0f, dx, D);
}

/* Backward of lora_proj_fwd (dout = dL/d out): dy += its part; dw [R,r] scratch */
static void lora_proj_bwd(const aim_model *m, const block_idx *bi, float *gA, float *gB, float bw,
                          const float *dout, const float *y, const float *w, float *dy,
                          float *dw, int R)
{
    const int D = m->D, r = m->lora_rank;
    const float s = m->lora_scale;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, r, D, s, dout, D, W(m, bi->pb), r,
                0.0f, dw, r);
    if (gB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, r, R, s, dout, D, w, r, bw, gB,
                    r);
    if (gA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, D, R, 1.0f, dw, r, y, D, bw, gA,
                    D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, D, r, 1.0f, dw, r, W(m, bi->pa), D,
                1.0f, dy, D);
}

/* ------------------------------------------------------------ loss rows
 * A loss-only pass (AIM_FWD_LOSS_ONLY) needs the last block's output, the
 * post norm and the head only at the rows the loss reads: row i of image b
 * predicts patch i+1, a target when i+1 >= S_b, so rows S_b-1..N-2 (N - S_b
 * of N; half on average under pretraining's prefix draw). From the last
 * block's attention output on, those rows are packed to the front of the
 * thread's range, in order; the attention itself needs every row's keys
 * and values and stays whole.
 * Nor does the loss depend on the last token at all: under the mask key
 * N-1 is visible to query N-1 alone (k < S_b <= N-1 fails, k <= q needs
 * q = N-1), whose row predicts nothing. So the whole pass runs on tokens
 * 0..N-2 (Nt = N-1 rows per image; the mask, the position embeddings of
 * those tokens and the attention over them are exactly the full pass's);
 * the targets keep all N patches per image. */

/* crow[c] = the (thread-relative) row of packed row c, Nt rows per image;
 * returns the count */
static int loss_rows(int32_t *crow, const int32_t *prefix, int nb, int Nt)
{
    int n = 0;
    for (int b = 0; b < nb; b++)
        for (int i = prefix[b] - 1; i < Nt; i++)
            crow[n++] = b * Nt + i;
    return n;
}

/* the target row (N patches per image) the packed row's token predicts */
static inline size_t target_row(int32_t crow, int Nt, int N)
{
    return (size_t)(crow / Nt) * N + (size_t)(crow % Nt) + 1;
}

/* pack rows crow[0..n) of buf to its front, in place (crow[c] >= c) */
static void pack_rows(float *buf, const int32_t *crow, int n, int C)
{
    for (int c = 0; c < n; c++)
        if (crow[c] != c)
            memcpy(buf + (size_t)c * C, buf + (size_t)crow[c] * C, (size_t)C * sizeof(float));
}

/* the inverse: packed row c back to row crow[c], every other row of the R
 * zeroed (in place, last row first) */
static void unpack_rows(float *buf, const int32_t *crow, int n, int R, int C)
{
    int next = R; /* rows >= next are done */
    for (int c = n - 1; c >= 0; c--) {
        int r = crow[c];
        if (r + 1 < next)
            memset(buf + (size_t)(r + 1) * C, 0, (size_t)(next - r - 1) * C * sizeof(float));
        if (r != c)
            memcpy(buf + (size_t)r * C, buf + (size_t)c * C, (size_t)C * sizeof(float));
        next = r;
    }
    if (next > 0)
        memset(buf, 0, (size_t)next * C * sizeof(float));
}

/* The forward pass of images [b0, b1) by thread tid: trunk through block
 * `upto`; then, when `final` is 1, post_trunk_norm (lnf) and, when `head`
 * is 1, the pixel head, predictions and targets. eval: see BA. lo: a
 * loss-only pass (head, final, upto == L >= 1 and prefixes): the loss's rows
 * only from the last block's attention output on, and each image's sum of
 * row losses in a->iloss. */
static void forward_part(aim_model *m, const float *x, const int32_t *prefix, int b0, int b1,
                         int upto, int final, int head, int eval, int lo, int tid)
{
    const aim_config *c = &m->cfg;
    model_acts *a = &m->a;
    /* N: the tokens each image runs with (loss-only: all but the last) */
    const int N = lo ? m->N - 1 : m->N, D = m->D, Dh = m->Dh, P = m->P, nb = b1 - b0;
    const int R = nb * N, r0 = b0 * N;
    const float eps = c->norm_eps;
    const size_t img = (size_t)c->channels * c->image * c->image;
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, tid);

    /* patch embedding: emb = patches @ Wp^T + bp;  x0 = LN(emb) + pos */
    patch_extract_first(ROWS(a->patches, m->CPP), x + (size_t)b0 * img, nb, c->channels,
                        c->image, c->image, c->patch, N);
    aim_lap(&lp, AIM_K_F_PATCH, 0);
    gemm_nt(ROWS(a->emb, D), ROWS(a->patches, m->CPP), W(m, m->patch_w), R, m->CPP, D);
    aim_lap(&lp, AIM_K_F_EMBED, GF(R, m->CPP, D));
    add_layernorm_forward(ROWS(a->emb, D), ROWS(a->x0, D), STATS(a->emb_mean),
                          STATS(a->emb_rstd), ROWS(a->emb, D), NULL, W(m, m->patch_b), NULL,
                          W(m, m->pn_w), W(m, m->pn_b), m->pos, R, D, N, eps);
    if (upto > 0) {
        block_acts *b = BA(m, 0, eval);
        add_layernorm_forward(NULL, ROWS(b->ln1, D), STATS(b->ln1_mean), STATS(b->ln1_rstd),
                              ROWS(a->x0, D), NULL, NULL, NULL, W(m, m->blk[0].ln1w),
                              W(m, m->blk[0].ln1b), NULL, R, D, N, eps);
    }
    aim_lap(&lp, AIM_K_F_LN, 0);

    const float *xin = ROWS(a->x0, D);
    const double natt = 4.0 * N * N * D * nb; /* QK^T and PV */
    int32_t *crow = ROWS(a->crow, 1);
    int Rt = R; /* rows after the attention: all, or the loss's in the last block */
    for (int l = 0; l < upto; l++) {
        const block_idx *bi = &m->blk[l];
        block_acts *b = BA(m, l, eval);
        float *qkv = ROWS(b->qkv, 3 * D), *atty = ROWS(b->atty, D), *res1 = ROWS(b->res1, D);
        float *ln2 = ROWS(b->ln2, D), *fc1 = ROWS(b->fc1, 4 * D), *gl = ROWS(b->gelu, 4 * D);
        float *res2 = ROWS(b->res2, D);
        gemm_nt(qkv, ROWS(b->ln1, D), W(m, bi->qkv), R, D, 3 * D);
        aim_lap(&lp, AIM_K_F_QKV, GF(R, D, 3 * D));
        const int lora = lora_active(m, bi), lr2 = 2 * m->lora_rank;
        /* an evaluation pass keeps nothing: the adapters' A x go to scratch */
        float *lu = lora ? (eval ? ROWS(a->dlora, lr2) : ROWS(b->lora_u, lr2)) : NULL;
        float *lw = lora ? (eval ? ROWS(a->dlora, lr2) : ROWS(b->lora_w, lr2 / 2)) : NULL;
        if (lora) {
            lora_qkv_fwd(m, bi, lu, qkv, ROWS(b->ln1, D), R);
            aim_lap(&lp, AIM_K_F_LORA, GF(R, D, 2 * lr2));
        }
        attention_forward(atty, b->att + (size_t)b0 * m->NH * N * N, qkv,
                          prefix ? prefix + b0 : NULL, nb, N, D, m->NH);
        aim_lap(&lp, AIM_K_F_ATTN, natt);
        if (lo && l == upto - 1) {
            Rt = loss_rows(crow, prefix + b0, nb, N);
            pack_rows(atty, crow, Rt, D);
        }
        gemm_nt(res1, atty, W(m, bi->proj), Rt, D, D);
        aim_lap(&lp, AIM_K_F_PROJ, GF(Rt, D, D));
        if (lora) {
            lora_proj_fwd(m, bi, lw, res1, atty, Rt);
            aim_lap(&lp, AIM_K_F_LORA, GF(Rt, D, lr2));
        }
        /* res1 = xin + proj;  ln2 = LN(res1) */
        if (Rt < R) { /* the residual from xin's loss rows, added as below */
            for (int cr = 0; cr < Rt; cr++) {
                float *y = res1 + (size_t)cr * D;
                const float *xr = xin + (size_t)crow[cr] * D;
#pragma omp simd
                for (int i = 0; i < D; i++)
                    y[i] = y[i] + xr[i];
            }
        }
        add_layernorm_forward(res1, ln2, STATS(b->ln2_mean), STATS(b->ln2_rstd), res1,
                              Rt < R ? NULL : xin, NULL, NULL, W(m, bi->ln2w), W(m, bi->ln2b),
                              NULL, Rt, D, N, eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
        gemm_nt(fc1, ln2, W(m, bi->fc1), Rt, D, 4 * D);
        aim_lap(&lp, AIM_K_F_FC1, GF(Rt, D, 4 * D));
        if (eval)
            gelu_forward(gl, fc1, (size_t)Rt * 4 * D);
        else /* fc1 then holds gelu'(pre-activation) for backward */
            gelu_forward_deriv(gl, fc1, (size_t)Rt * 4 * D);
        aim_lap(&lp, AIM_K_F_GELU, 0);
        gemm_nt(res2, gl, W(m, bi->fc2), Rt, 4 * D, D);
        aim_lap(&lp, AIM_K_F_FC2, GF(Rt, 4 * D, D));
        /* res2 = res1 + fc2;  then the next norm: ln1 of block l+1, or the
         * post-trunk norm, or nothing (trunk features only) */
        if (l + 1 < upto) {
            block_acts *nx = BA(m, l + 1, eval);
            add_layernorm_forward(res2, ROWS(nx->ln1, D), STATS(nx->ln1_mean),
                                  STATS(nx->ln1_rstd), res2, res1, NULL, NULL,
                                  W(m, m->blk[l + 1].ln1w), W(m, m->blk[l + 1].ln1b), NULL, R, D,
                                  N, eps);
        } else if (final) {
            add_layernorm_forward(res2, ROWS(a->lnf, D), STATS(a->lnf_mean), STATS(a->lnf_rstd),
                                  res2, res1, NULL, NULL, W(m, m->post_w), W(m, m->post_b), NULL,
                                  Rt, D, N, eps);
        } else {
            add_layernorm_forward(res2, NULL, NULL, NULL, res2, res1, NULL, NULL, NULL, NULL,
                                  NULL, R, D, N, eps);
        }
        aim_lap(&lp, AIM_K_F_LN, 0);
        xin = res2;
    }
    if (upto == 0 && final) {
        add_layernorm_forward(NULL, ROWS(a->lnf, D), STATS(a->lnf_mean), STATS(a->lnf_rstd), xin,
                              NULL, NULL, NULL, W(m, m->post_w), W(m, m->post_b), NULL, R, D, N,
                              eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
    }
    if (!head)
        return;

    /* pixel head: hy0 = lnf @ Wh^T + bh + pos_h, then Lh residual MLPs,
     * each LayerNorm fused with the residual add before it (Rt rows: all,
     * or the loss's, packed) */
    float *hy0 = ROWS(a->hy0, Dh);
    gemm_nt(hy0, ROWS(a->lnf, D), W(m, m->hproj_w), Rt, D, Dh);
    aim_lap(&lp, AIM_K_F_HPROJ, GF(Rt, D, Dh));
    if (Rt < R) { /* bias and each packed row's position, added as below */
        const float *hb = W(m, m->hproj_b);
        for (int cr = 0; cr < Rt; cr++) {
            float *y = hy0 + (size_t)cr * Dh;
            const float *pr = m->pos_h + (size_t)(crow[cr] % N) * Dh;
#pragma omp simd
            for (int i = 0; i < Dh; i++)
                y[i] += hb[i];
#pragma omp simd
            for (int i = 0; i < Dh; i++)
                y[i] += pr[i];
        }
    }
    const hblock_idx *h0 = m->Lh ? &m->hblk[0] : NULL;
    hblock_acts *ha0 = m->Lh ? HA(m, 0, eval) : NULL;
    float *ln_next = ha0 ? ROWS(ha0->ln, Dh) : ROWS(a->hln, Dh);
    add_layernorm_forward(hy0, ln_next, ha0 ? STATS(ha0->ln_mean) : STATS(a->hln_mean),
                          ha0 ? STATS(ha0->ln_rstd) : STATS(a->hln_rstd), hy0, NULL,
                          Rt < R ? NULL : W(m, m->hproj_b), Rt < R ? NULL : m->pos_h,
                          W(m, h0 ? h0->lnw : m->hn_w), W(m, h0 ? h0->lnb : m->hn_b), NULL, Rt,
                          Dh, N, eps);
    aim_lap(&lp, AIM_K_F_LN, 0);
    const float *y = hy0;
    for (int j = 0; j < m->Lh; j++) {
        const hblock_idx *hi = &m->hblk[j];
        hblock_acts *h = HA(m, j, eval);
        float *fc1 = ROWS(h->fc1, 4 * Dh), *gl = ROWS(h->gelu, 4 * Dh), *res = ROWS(h->res, Dh);
        gemm_nt(fc1, ROWS(h->ln, Dh), W(m, hi->fc1), Rt, Dh, 4 * Dh);
        aim_lap(&lp, AIM_K_F_HFC1, GF(Rt, Dh, 4 * Dh));
        if (eval)
            gelu_forward(gl, fc1, (size_t)Rt * 4 * Dh);
        else
            gelu_forward_deriv(gl, fc1, (size_t)Rt * 4 * Dh);
        aim_lap(&lp, AIM_K_F_GELU, 0);
        gemm_nt(res, gl, W(m, hi->fc2), Rt, 4 * Dh, Dh);
        aim_lap(&lp, AIM_K_F_HFC2, GF(Rt, 4 * Dh, Dh));
        int last = j + 1 == m->Lh;
        const hblock_idx *hn = last ? NULL : &m->hblk[j + 1];
        hblock_acts *hx = last ? NULL : HA(m, j + 1, eval);
        add_layernorm_forward(res, last ? ROWS(a->hln, Dh) : ROWS(hx->ln, Dh),
                              last ? STATS(a->hln_mean) : STATS(hx->ln_mean),
                              last ? STATS(a->hln_rstd) : STATS(hx->ln_rstd), res, y, NULL, NULL,
                              W(m, last ? m->hn_w : hn->lnw), W(m, last ? m->hn_b : hn->lnb),
                              NULL, Rt, Dh, N, eps);
        aim_lap(&lp, AIM_K_F_LN, 0);
        y = res;
    }
    /* the targets: every patch of the images (m->N per image) */
    float *pred = ROWS(a->pred, P), *tgt = a->tgt + (size_t)b0 * m->N * P;
    linear_forward(pred, ROWS(a->hln, Dh), W(m, m->pred_w), W(m, m->pred_b), Rt, Dh, P);
    aim_lap(&lp, AIM_K_F_PRED, GF(Rt, Dh, P));
    patch_targets(tgt, x + (size_t)b0 * img, nb, c->channels, c->image, c->image, c->patch);
    if (lo) { /* packed row cr predicts the patch after row crow[cr] */
        double *il = a->iloss + b0;
        for (int b = 0; b < nb; b++)
            il[b] = 0.0;
        for (int cr = 0; cr < Rt; cr++)
            il[crow[cr] / N] +=
                loss_row(pred + (size_t)cr * P, tgt + target_row(crow[cr], N, m->N) * P, P);
    }
    aim_lap(&lp, AIM_K_F_LOSS, 0);
}

/* images per chunk of a pass that no backward follows: about 512 token rows,
 * so that one chunk's activations stay near the core (measured on tiny,
 * 2 threads: chunks of 8-16 images ran the evaluation forward ~9% faster
 * than two halves of 32, from the GEMMs and from the balance) */
static int chunk_images(const aim_model *m, int B, int nt)
{
    int ch = 512 / m->N;
    if (ch < 1)
        ch = 1;
    /* then as many chunks per thread for every thread, of equal size as far
     * as B allows (64 images of tiny: 8 chunks of 8, not 6 of 10 and a 4) */
    int per = (B + nt * ch - 1) / (nt * ch), nc = nt * per;
    return (B + nc - 1) / nc;
}

/* One parallel region over the batch. A pass that a backward will follow
 * (`keep`) gives thread t images [b0, b1) of share(), which the backward's
 * threads take again; any other is cut into chunks handed out dynamically.
 * An image's work is the same whichever thread or chunk runs it, but the
 * BLAS may sum a row's products in another order at another place of its
 * M tiles: results agree to float rounding, not always to the bit. */
static void forward_all(aim_model *m, const float *x, const int32_t *prefix, int B, int upto,
                        int final, int head, int eval, int lo, int keep)
{
    int nt = team(m, B, 0);
    if (nt == 1) { /* no region: a one-thread team costs libgomp an allocation */
        forward_part(m, x, prefix, 0, B, upto, final, head, eval, lo, 0);
        return;
    }
    if (!keep) {
        const int ch = chunk_images(m, B, nt), nc = (B + ch - 1) / ch;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int i = 0; i < nc; i++) {
            int b0 = i * ch, b1 = b0 + ch < B ? b0 + ch : B;
            forward_part(m, x, prefix, b0, b1, upto, final, head, eval, lo,
                         omp_get_thread_num());
        }
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads(), b0, b1;
        share(B, n, t, &b0, &b1);
        if (b1 > b0)
            forward_part(m, x, prefix, b0, b1, upto, final, head, eval, lo, t);
    }
}

const float *aim_model_trunk(aim_model *m, const float *x, const int32_t *prefix, int B,
                             int upto)
{
    if (aim_model_reserve(m, B, NULL) != 0)
        return NULL;
    m->have_forward = m->fb_mode = m->loss_only = 0;
    int L = upto >= 1 && upto <= m->L ? upto : m->L;
    /* every block keeps its own buffers: callers read any block's output
     * (aim_model_block_output) after this pass */
    forward_all(m, x, prefix, B, L, upto == 0, 0, 0, 0, 0);
    if (upto == 0)
        return m->a.lnf;
    return BA(m, L - 1, 0)->res2;
}

const float *aim_model_block_output(const aim_model *m, int l)
{
    if (l < 1 || l > m->L || !m->a.blk)
        return NULL;
    return m->a.blk[l - 1].res2;
}

/* Check a block set; returns the deepest block or -1 */
static int check_blocks(const aim_model *m, const int *blocks, int nblocks, aim_err *e)
{
    if (nblocks < 1)
        return aim_errf(e, "features: no blocks given");
    int upto = 0;
    for (int i = 0; i < nblocks; i++) {
        if (blocks[i] < 1 || blocks[i] > m->L)
            return aim_errf(e, "features: block %d is outside 1..%d", blocks[i], m->L);
        if (blocks[i] > upto)
            upto = blocks[i];
    }
    return upto;
}

/* out = the mean of the listed blocks' outputs (every block keeps its own
 * res2 in a pass with eval = 0) */
static void average_blocks(const aim_model *m, int B, const int *blocks, int nblocks, float *out)
{
    size_t n = (size_t)B * m->N * m->D;
    float w = 1.0f / (float)nblocks;
    memset(out, 0, n * sizeof *out);
    for (int i = 0; i < nblocks; i++) {
        const float *r = m->a.blk[blocks[i] - 1].res2;
        for (size_t k = 0; k < n; k++)
            out[k] += w * r[k];
    }
}

int aim_model_features(aim_model *m, const float *x, int B, const int *blocks, int nblocks,
                       float *out, aim_err *e)
{
    int upto = check_blocks(m, blocks, nblocks, e);
    if (upto < 0 || aim_model_reserve(m, B, e) != 0)
        return -1;
    m->have_forward = m->fb_mode = m->loss_only = 0;
    forward_all(m, x, NULL, B, upto, 0, 0, 0, 0, 0);
    average_blocks(m, B, blocks, nblocks, out);
    return 0;
}

int aim_model_features_train(aim_model *m, const float *x, int B, const int *blocks,
                             int nblocks, float *out, aim_err *e)
{
    int upto = check_blocks(m, blocks, nblocks, e);
    if (upto < 0 || aim_model_reserve(m, B, e) != 0)
        return -1;
    ensure_slots(m, team(m, B, 0));
    if (!m->fb_in)
        m->fb_in = aim_xcalloc((size_t)m->L, 1);
    memset(m->fb_in, 0, (size_t)m->L);
    for (int i = 0; i < nblocks; i++)
        m->fb_in[blocks[i] - 1] = 1;
    for (int b = 0; b < B; b++)
        m->a.prefix[b] = m->N; /* no mask */
    forward_all(m, x, m->a.prefix, B, upto, 0, 0, 0, 0, 1);
    average_blocks(m, B, blocks, nblocks, out);
    m->B = B;
    m->fb_mode = 1;
    m->loss_only = 0;
    m->fb_upto = upto;
    m->fb_nblocks = nblocks;
    m->have_forward = 1;
    return 0;
}

void aim_model_features_backward(aim_model *m, const float *dfeat)
{
    if (!m->have_forward || !m->fb_mode)
        return;
    size_t n = (size_t)m->B * m->N * m->D;
    float w = 1.0f / (float)m->fb_nblocks;
    for (size_t k = 0; k < n; k++)
        m->a.lnf[k] = w * dfeat[k];
    aim_model_backward(m);
}

float aim_model_forward_ex(aim_model *m, const float *x, const int32_t *prefix, int B,
                           unsigned flags)
{
    if (aim_model_reserve(m, B, NULL) != 0)
        return -1.0f;
    ensure_slots(m, team(m, B, 0));
    model_acts *a = &m->a;
    const int eval = (flags & AIM_FWD_EVAL) != 0;
    /* a model without trunk blocks has no attention to keep whole: it runs
     * the full head (no loss-only form) */
    const int lo = (flags & AIM_FWD_LOSS_ONLY) && m->L >= 1;
    double t0 = m->prof ? aim_prof_now() : 0;
    memcpy(a->prefix, prefix, (size_t)B * sizeof *prefix);
    forward_all(m, x, a->prefix, B, m->L, 1, 1, eval, lo, !eval);
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, 0);
    if (lo) { /* the images' sums in image order: no thread count or chunking moves it */
        int64_t count = loss_count(a->prefix, B, m->N);
        double sum = 0.0;
        for (int b = 0; b < B; b++)
            sum += a->iloss[b];
        m->loss = count ? (float)(sum / (double)count) : 0.0f;
    } else {
        m->loss = loss_forward(a->pred, a->tgt, a->prefix, B, m->N, m->P);
    }
    m->loss_only = lo;
    aim_lap(&lp, AIM_K_F_LOSS, 0);
    if (m->prof) {
        m->prof->wall_fwd += aim_prof_now() - t0;
        m->prof->steps++;
    }
    m->B = B;
    m->have_forward = !eval;
    m->fb_mode = 0;
    m->norm_count = 0;
    return m->loss;
}

float aim_model_forward(aim_model *m, const float *x, const int32_t *prefix, int B)
{
    return aim_model_forward_ex(m, x, prefix, B, 0);
}

float aim_model_loss(aim_model *m, const float *x, const int32_t *prefix, int B)
{
    return aim_model_forward_ex(m, x, prefix, B, AIM_FWD_EVAL);
}

const float *aim_model_predictions(const aim_model *m)
{
    return m->loss_only ? NULL : m->a.pred;
}

const float *aim_model_targets(const aim_model *m)
{
    return m->a.tgt;
}

/* ------------------------------------------------------------ backward */

/* the gradient of tensor idx in a thread's slab (NULL when frozen) */
static inline float *GS(const aim_model *m, int idx, float *slab)
{
    return (m->p.t[idx].flags & AIM_P_FROZEN) ? NULL : slab + m->p.t[idx].offset;
}

/* linear backward of one thread's rows, the two GEMMs timed on their own:
 * dinp overwritten, the weight gradients into the thread's slab (beta_w) */
static void lin_bwd(aim_laptimer *lp, int kdx, int kdw, float *dinp, float *dweight,
                    float *dbias, float beta_w, const float *dout, const float *inp,
                    const float *weight, int R, int IC, int OC)
{
    if (dinp) {
        linear_backward_beta(dinp, 0.0f, NULL, NULL, beta_w, dout, inp, weight, R, IC, OC);
        aim_lap(lp, kdx, GF(R, IC, OC));
    }
    if (dweight || dbias) {
        linear_backward_beta(NULL, 0.0f, dweight, dbias, beta_w, dout, inp, weight, R, IC, OC);
        aim_lap(lp, kdw, dweight ? GF(R, IC, OC) : 0);
    }
}

/* The lowest trunk block (0-based) with a trainable tensor, or 0 when the
 * patch embedding is trainable; L when nothing in the trunk is. The
 * backward pass stops there. */
static int lowest_trainable_block(const aim_model *m)
{
    const aim_param *t = m->p.t;
    const int emb[4] = {m->patch_w, m->patch_b, m->pn_w, m->pn_b};
    for (int i = 0; i < 4; i++)
        if (!(t[emb[i]].flags & AIM_P_FROZEN))
            return 0;
    for (int l = 0; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        const int idx[12] = {b->ln1w, b->ln1b, b->qkv, b->proj, b->ln2w, b->ln2b,
                             b->fc1,  b->fc2,  b->qa,  b->qb,   b->pa,   b->pb};
        for (int i = 0; i < 12; i++)
            if (idx[i] >= 0 && !(t[idx[i]].flags & AIM_P_FROZEN))
                return l;
    }
    return m->L;
}

static void backward_part(aim_model *m, int b0, int b1, int tid, int64_t count)
{
    model_acts *a = &m->a;
    /* N: the tokens each image ran with (loss-only: all but the last) */
    const int lo = m->loss_only && !m->fb_mode;
    const int N = lo ? m->N - 1 : m->N, D = m->D, Dh = m->Dh, P = m->P, nb = b1 - b0;
    const int R = nb * N, r0 = b0 * N;
    float *slab = tid == 0 ? m->p.grad : m->gslot[tid - 1];
    const float bw = tid == 0 ? 1.0f : 0.0f; /* thread 0 adds into grad, others write */
    aim_laptimer lp;
    aim_lap_start(&lp, m->prof, tid);

    float *dpred = ROWS(a->dpred, P), *dhln = ROWS(a->dhln, Dh), *dhy = ROWS(a->dhy, Dh);
    float *dln = ROWS(a->dln, D), *dres = ROWS(a->dres, D), *dgelu = ROWS(a->dgelu, 4 * D);
    int top = m->L - 1; /* the deepest block the gradient enters */
    const int32_t *crow = ROWS(a->crow, 1);
    const int Rt = lo ? (int)loss_count(a->prefix + b0, nb, m->N) : R;
    if (m->fb_mode) {
        /* features backward: dL/d(features) / nblocks sits in lnf (unused in
         * this mode); it enters the stream at every block of the set */
        top = m->fb_upto - 1;
        memcpy(dres, ROWS(a->lnf, D), (size_t)R * D * sizeof(float));
        goto trunk;
    }

    /* loss and prediction layer; after a loss-only forward the head and the
     * last block's tail run on the Rt packed loss rows (crow) */
    memset(dpred, 0, (size_t)Rt * P * sizeof(float));
    if (lo) { /* as loss_backward_n, packed row cr against the patch after its token */
        const float scale = count ? (float)(2.0 / ((double)P * (double)count)) : 0.0f;
        const float *pred = ROWS(a->pred, P), *tgt = a->tgt + (size_t)b0 * m->N * P;
        for (int cr = 0; cr < Rt && count; cr++)
            loss_row_backward(dpred + (size_t)cr * P, pred + (size_t)cr * P,
                              tgt + target_row(crow[cr], N, m->N) * P, P, scale);
    } else {
        loss_backward_n(dpred, ROWS(a->pred, P), ROWS(a->tgt, P), a->prefix + b0, nb, N, P,
                        1.0f, count);
    }
    aim_lap(&lp, AIM_K_B_LOSS, 0);
    lin_bwd(&lp, AIM_K_B_PRED_DX, AIM_K_B_PRED_DW, dhln, GS(m, m->pred_w, slab),
            GS(m, m->pred_b, slab), bw, dpred, ROWS(a->hln, Dh), W(m, m->pred_w), Rt, Dh, P);
    const float *yin = m->Lh ? ROWS(a->hblk[m->Lh - 1].res, Dh) : ROWS(a->hy0, Dh);
    layernorm_backward_rows(dhy, 0.0f, GS(m, m->hn_w, slab), GS(m, m->hn_b, slab), bw, dhln, yin,
                            W(m, m->hn_w), STATS(a->hln_mean), STATS(a->hln_rstd), Rt, Dh);
    aim_lap(&lp, AIM_K_B_LN, 0);

    /* pixel head blocks, in reverse: y_out = y_in + fc2(gelu(fc1(ln(y_in)))) */
    for (int j = m->Lh - 1; j >= 0; j--) {
        const hblock_idx *hi = &m->hblk[j];
        hblock_acts *h = &a->hblk[j];
        const float *y = j ? ROWS(a->hblk[j - 1].res, Dh) : ROWS(a->hy0, Dh);
        lin_bwd(&lp, AIM_K_B_HFC2_DX, AIM_K_B_HFC2_DW, dgelu, GS(m, hi->fc2, slab), NULL, bw,
                dhy, ROWS(h->gelu, 4 * Dh), W(m, hi->fc2), Rt, 4 * Dh, Dh);
        gelu_backward_deriv(dgelu, ROWS(h->fc1, 4 * Dh), (size_t)Rt * 4 * Dh);
        aim_lap(&lp, AIM_K_B_GELU, 0);
        lin_bwd(&lp, AIM_K_B_HFC1_DX, AIM_K_B_HFC1_DW, dhln, GS(m, hi->fc1, slab), NULL, bw,
                dgelu, ROWS(h->ln, Dh), W(m, hi->fc1), Rt, Dh, 4 * Dh);
        /* the residual path already sits in dhy; the norm adds its part */
        layernorm_backward_rows(dhy, 1.0f, GS(m, hi->lnw, slab), GS(m, hi->lnb, slab), bw, dhln,
                                y, W(m, hi->lnw), STATS(h->ln_mean), STATS(h->ln_rstd), Rt, Dh);
        aim_lap(&lp, AIM_K_B_LN, 0);
    }

    /* head projection (the position embedding is fixed) and post norm */
    lin_bwd(&lp, AIM_K_B_HPROJ_DX, AIM_K_B_HPROJ_DW, dln, GS(m, m->hproj_w, slab),
            GS(m, m->hproj_b, slab), bw, dhy, ROWS(a->lnf, D), W(m, m->hproj_w), Rt, D, Dh);
    const float *xt = m->L ? ROWS(a->blk[m->L - 1].res2, D) : ROWS(a->x0, D);
    layernorm_backward_rows(dres, 0.0f, GS(m, m->post_w, slab), GS(m, m->post_b, slab), bw, dln,
                            xt, W(m, m->post_w), STATS(a->lnf_mean), STATS(a->lnf_rstd), Rt, D);
    aim_lap(&lp, AIM_K_B_LN, 0);

    /* trunk blocks, in reverse, down to the lowest one with something to
     * train (with a frozen trunk and LoRA: the lowest adapted block) */
trunk:;
    const double natt = 8.0 * N * N * D * nb; /* backward of QK^T and PV */
    float *datty = ROWS(a->datty, D), *dqkv = ROWS(a->dqkv, 3 * D);
    const int lr2 = 2 * m->lora_rank;
    float *dlora = lr2 ? ROWS(a->dlora, lr2) : NULL;
    const int floor_l = lowest_trainable_block(m);
    for (int l = top; l >= floor_l && l >= 0; l--) {
        const block_idx *bi = &m->blk[l];
        block_acts *b = &a->blk[l];
        const float *xin = l ? ROWS(a->blk[l - 1].res2, D) : ROWS(a->x0, D);
        /* the loss rows only, packed, in the last block after a loss-only
         * forward, down to the attention output */
        const int Rb = l == m->L - 1 ? Rt : R;
        /* res2 = res1 + fc2(gelu(fc1(ln2(res1)))) */
        lin_bwd(&lp, AIM_K_B_FC2_DX, AIM_K_B_FC2_DW, dgelu, GS(m, bi->fc2, slab), NULL, bw, dres,
                ROWS(b->gelu, 4 * D), W(m, bi->fc2), Rb, 4 * D, D);
        gelu_backward_deriv(dgelu, ROWS(b->fc1, 4 * D), (size_t)Rb * 4 * D);
        aim_lap(&lp, AIM_K_B_GELU, 0);
        lin_bwd(&lp, AIM_K_B_FC1_DX, AIM_K_B_FC1_DW, dln, GS(m, bi->fc1, slab), NULL, bw, dgelu,
                ROWS(b->ln2, D), W(m, bi->fc1), Rb, D, 4 * D);
        layernorm_backward_rows(dres, 1.0f, GS(m, bi->ln2w, slab), GS(m, bi->ln2b, slab), bw, dln,
                                ROWS(b->res1, D), W(m, bi->ln2w), STATS(b->ln2_mean),
                                STATS(b->ln2_rstd), Rb, D);
        aim_lap(&lp, AIM_K_B_LN, 0);
        /* res1 = xin + proj(attn(qkv(ln1(xin)))) */
        lin_bwd(&lp, AIM_K_B_PROJ_DX, AIM_K_B_PROJ_DW, datty, GS(m, bi->proj, slab), NULL, bw,
                dres, ROWS(b->atty, D), W(m, bi->proj), Rb, D, D);
        const int lora = lora_active(m, bi);
        if (lora) {
            lora_proj_bwd(m, bi, GS(m, bi->pa, slab), GS(m, bi->pb, slab), bw, dres,
                          ROWS(b->atty, D), ROWS(b->lora_w, lr2 / 2), datty, dlora, Rb);
            aim_lap(&lp, AIM_K_B_LORA, 3 * GF(Rb, D, lr2));
        }
        if (Rb < R) { /* back to every row: the others' gradients are zero */
            unpack_rows(datty, crow, Rb, R, D);
            unpack_rows(dres, crow, Rb, R, D);
            aim_lap(&lp, AIM_K_B_LN, 0);
        }
        attention_backward_write(dqkv, a->datt + (size_t)b0 * m->NH * N * N, datty,
                                 ROWS(b->qkv, 3 * D), b->att + (size_t)b0 * m->NH * N * N,
                                 a->prefix + b0, nb, N, D, m->NH);
        aim_lap(&lp, AIM_K_B_ATTN, natt);
        lin_bwd(&lp, AIM_K_B_QKV_DX, AIM_K_B_QKV_DW, dln, GS(m, bi->qkv, slab), NULL, bw, dqkv,
                ROWS(b->ln1, D), W(m, bi->qkv), R, D, 3 * D);
        if (lora) {
            lora_qkv_bwd(m, bi, GS(m, bi->qa, slab), GS(m, bi->qb, slab), bw, dqkv,
                         ROWS(b->ln1, D), ROWS(b->lora_u, lr2), dln, dlora, R);
            aim_lap(&lp, AIM_K_B_LORA, 3 * GF(R, D, 2 * lr2));
        }
        layernorm_backward_rows(dres, 1.0f, GS(m, bi->ln1w, slab), GS(m, bi->ln1b, slab), bw, dln,
                                xin, W(m, bi->ln1w), STATS(b->ln1_mean), STATS(b->ln1_rstd), R,
                                D);
        aim_lap(&lp, AIM_K_B_LN, 0);
        /* dres is now the gradient of block l-1's output: add the features' */
        if (m->fb_mode && l > 0 && m->fb_in[l - 1]) {
            const float *df = ROWS(a->lnf, D);
            for (size_t k = 0; k < (size_t)R * D; k++)
                dres[k] += df[k];
        }
    }
    if (floor_l > 0)
        return; /* nothing below to train */

    /* x0 = LN(emb) + pos;  emb = patches @ Wp^T + bp */
    layernorm_backward_rows(dln, 0.0f, GS(m, m->pn_w, slab), GS(m, m->pn_b, slab), bw, dres,
                            ROWS(a->emb, D), W(m, m->pn_w), STATS(a->emb_mean),
                            STATS(a->emb_rstd), R, D);
    aim_lap(&lp, AIM_K_B_LN, 0);
    lin_bwd(&lp, AIM_K_B_EMBED_DW, AIM_K_B_EMBED_DW, NULL, GS(m, m->patch_w, slab),
            GS(m, m->patch_b, slab), bw, dln, ROWS(a->patches, m->CPP), W(m, m->patch_w), R,
            m->CPP, D);
}

/* Which tensors this backward writes: the trainable ones, less (after
 * features_train) the pixel head, the post norm and the blocks above the
 * deepest probed one. The private slabs hold stale values elsewhere. */
static void mark_written(aim_model *m)
{
    const aim_params *p = &m->p;
    if (m->bw_cap < p->n) {
        free(m->bw_written);
        m->bw_written = aim_xmalloc((size_t)p->n);
        m->bw_cap = p->n;
    }
    for (int i = 0; i < p->n; i++)
        m->bw_written[i] = !(p->t[i].flags & AIM_P_FROZEN);
    if (!m->fb_mode)
        return;
    const int top[] = {m->post_w, m->post_b, m->hproj_w, m->hproj_b, m->hn_w, m->hn_b,
                       m->pred_w, m->pred_b};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        m->bw_written[top[i]] = 0;
    for (int j = 0; j < m->Lh; j++) {
        const hblock_idx *h = &m->hblk[j];
        m->bw_written[h->lnw] = m->bw_written[h->lnb] = 0;
        m->bw_written[h->fc1] = m->bw_written[h->fc2] = 0;
    }
    for (int l = m->fb_upto; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        const int idx[12] = {b->ln1w, b->ln1b, b->qkv, b->proj, b->ln2w, b->ln2b,
                             b->fc1,  b->fc2,  b->qa,  b->qb,   b->pa,   b->pb};
        for (int i = 0; i < 12; i++)
            if (idx[i] >= 0)
                m->bw_written[idx[i]] = 0;
    }
}

/* grad += gslot[0] + ... + gslot[nt-2] over thread tid's share of the
 * values this backward wrote */
static void reduce_slots(aim_model *m, int nt, int tid)
{
    const aim_params *p = &m->p;
    size_t total = 0;
    for (int i = 0; i < p->n; i++)
        if (m->bw_written[i])
            total += p->t[i].numel;
    size_t lo = total * (size_t)tid / (size_t)nt, hi = total * (size_t)(tid + 1) / (size_t)nt;
    size_t at = 0;
    for (int i = 0; i < p->n && at < hi; i++) {
        const aim_param *t = &p->t[i];
        if (!m->bw_written[i])
            continue;
        size_t s = lo > at ? lo - at : 0, e = hi - at < t->numel ? hi - at : t->numel;
        at += t->numel;
        if (s >= e)
            continue;
        float *g = p->grad + t->offset;
        for (int k = 0; k < nt - 1; k++) {
            const float *q = m->gslot[k] + t->offset;
#pragma omp simd
            for (size_t j = s; j < e; j++)
                g[j] += q[j];
        }
    }
}

void aim_model_set_loss_count(aim_model *m, int64_t count)
{
    m->norm_count = count > 0 ? count : 0;
}

int64_t aim_model_loss_count(const aim_model *m)
{
    return m->have_forward && !m->fb_mode ? loss_count(m->a.prefix, m->B, m->N) : 0;
}

void aim_model_backward(aim_model *m)
{
    if (!m->have_forward)
        return;
    double t0 = m->prof ? aim_prof_now() : 0;
    int B = m->B;
    int64_t count = m->fb_mode          ? 0
                    : m->norm_count > 0 ? m->norm_count
                                        : loss_count(m->a.prefix, B, m->N);
    int nt = team(m, B, 1);
    if (nt > 1)
        mark_written(m);
    if (nt == 1) { /* no region: a one-thread team costs libgomp an allocation */
        backward_part(m, 0, B, 0, count);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), n = omp_get_num_threads(), b0, b1;
            share(B, n, t, &b0, &b1);
            if (b1 > b0)
                backward_part(m, b0, b1, t, count);
            if (n > 1) {
                aim_laptimer lp;
                aim_lap_start(&lp, m->prof, t);
#pragma omp barrier
                aim_lap(&lp, AIM_K_B_WAIT, 0);
                reduce_slots(m, n, t);
                aim_lap(&lp, AIM_K_B_REDUCE, 0);
            }
        }
    }
    if (m->prof)
        m->prof->wall_bwd += aim_prof_now() - t0;
}
