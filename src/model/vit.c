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
#include <strings.h>

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

/* ------------------------------------------------------------ bf16
 * With bf16 (aim_model_set_precision) every linear layer's GEMMs go through
 * the model's oneDNN context: its primitives are made when the precision is
 * set, the bf16 buffers here when the activations are (aim_model_reserve),
 * so a step allocates nothing. The weights' bf16 copy is made at the start
 * of each forward pass (after the optimizer's update: once per training
 * step); activations and gradients are converted into a per-thread operand
 * buffer in front of each GEMM (a conversion pass, timed with the GEMM). */

/* the widest operand row of any linear layer */
static size_t bf16_wide(const aim_model *m)
{
    size_t w = (size_t)4 * (m->D > m->Dh ? m->D : m->Dh);
    if ((size_t)m->CPP > w)
        w = m->CPP;
    if ((size_t)m->P > w)
        w = m->P;
    return w;
}

/* The activations' bf16 copies (block_acts) for rows rows, carved from
 * m->act16, or when base is NULL only counted: returns the elements. */
static size_t bf16_act_layout(aim_model *m, uint16_t *base, size_t rows)
{
    size_t used = 0;
#define CARVE16(ptr, width)                                                                 \
    do {                                                                                    \
        if (base)                                                                           \
            (ptr) = base + used;                                                            \
        used += rows * (size_t)(width);                                                     \
    } while (0)
    model_acts *a = &m->a;
    CARVE16(a->patches16, m->CPP);
    for (int l = 0; l < m->L; l++) {
        block_acts *b = &a->blk[l];
        CARVE16(b->ln1_16, m->D);
        CARVE16(b->atty16, m->D);
        CARVE16(b->ln2_16, m->D);
        CARVE16(b->gelu16, 4 * m->D);
    }
    CARVE16(a->lnf16, m->D);
    for (int j = 0; j < m->Lh; j++) {
        CARVE16(a->hblk[j].ln16, m->Dh);
        CARVE16(a->hblk[j].gelu16, 4 * m->Dh);
    }
    CARVE16(a->hln16, m->Dh);
#undef CARVE16
    return used;
}

/* every bf16 copy's pointer back to NULL: fp32 passes write none */
static void bf16_act_clear(aim_model *m)
{
    model_acts *a = &m->a;
    a->patches16 = a->lnf16 = a->hln16 = NULL;
    for (int l = 0; a->blk && l < m->L; l++)
        a->blk[l].ln1_16 = a->blk[l].atty16 = a->blk[l].ln2_16 = a->blk[l].gelu16 = NULL;
    for (int j = 0; a->hblk && j < m->Lh; j++)
        a->hblk[j].ln16 = a->hblk[j].gelu16 = NULL;
}

/* the bf16 weight copy, each thread's two operand buffers for batches of B
 * images (any thread may run them all: the one-thread pass does), and the
 * activations' bf16 copies (when the activations are there: a->blk) */
static int bf16_buffers(aim_model *m, int B, aim_err *e)
{
    if (!m->bf)
        return 0;
    if (m->a.blk) {
        size_t rows = (size_t)B * m->N, n = bf16_act_layout(m, NULL, rows);
        if (n > m->act16_n) {
            free(m->act16);
            m->act16 = aim_try_aligned_zero(n * sizeof *m->act16);
            m->act16_n = m->act16 ? n : 0;
            if (!m->act16) { /* no copies: every GEMM converts into a16 as it goes */
                bf16_act_clear(m);
                return aim_errf(e, "out of memory: batch %d needs %.1f GB of bf16 activations",
                                B, (double)n * 2 / 1e9);
            }
        }
        bf16_act_layout(m, m->act16, rows);
    }
    if (m->w16_n < m->p.total) {
        free(m->w16);
        m->w16 = aim_try_aligned_zero((m->p.total ? m->p.total : 1) * sizeof *m->w16);
        m->w16_n = m->w16 ? m->p.total : 0;
        if (!m->w16)
            return aim_errf(e, "out of memory for the bf16 weights");
    }
    size_t n = (size_t)B * m->N * bf16_wide(m);
    int nb = 2 * aim_bf16_ctx_threads(m->bf);
    if (n > m->a16_n) {
        if (!m->a16)
            m->a16 = aim_xcalloc((size_t)nb, sizeof *m->a16);
        for (int i = 0; i < nb; i++) {
            free(m->a16[i]);
            m->a16[i] = aim_try_aligned_zero(n * sizeof **m->a16);
            if (!m->a16[i]) {
                m->a16_n = 0;
                return aim_errf(e, "out of memory: batch %d needs %.1f GB of bf16 buffers", B,
                                (double)n * nb * 2 / 1e9);
            }
        }
        m->a16_n = n;
    }
    return 0;
}

void model_bf16_free(aim_model *m)
{
    if (m->a16)
        for (int i = 0; i < 2 * aim_bf16_ctx_threads(m->bf); i++)
            free(m->a16[i]);
    free(m->a16);
    m->a16 = NULL;
    m->a16_n = 0;
    free(m->w16);
    m->w16 = NULL;
    m->w16_n = 0;
    free(m->act16);
    m->act16 = NULL;
    m->act16_n = 0;
    bf16_act_clear(m);
    aim_bf16_ctx_free(m->bf);
    m->bf = NULL;
    m->prec = AIM_PREC_FP32;
}

/* threads a oneDNN context is made for: the pass's team size at most */
static int dnnl_threads(void)
{
    int nt = omp_get_max_threads();
    return nt > AIM_PROF_MAX_THREADS ? AIM_PROF_MAX_THREADS : nt;
}

/* the GEMMs of every linear layer's shape (IC -> OC) in context c */
static int prepare_shapes(const aim_model *m, aim_bf16_ctx *c, aim_err *e)
{
    const int D = m->D, Dh = m->Dh;
    const int shapes[][2] = {{m->CPP, D}, {D, 3 * D},      {D, D},        {D, 4 * D}, {4 * D, D},
                             {D, Dh},     {Dh, 4 * Dh},    {4 * Dh, Dh},  {Dh, m->P}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (m->L == 0 && i >= 1 && i <= 4)
            continue;
        if (m->Lh == 0 && (i == 6 || i == 7))
            continue;
        if (aim_bf16_prepare(c, shapes[i][0], shapes[i][1], e) != 0)
            return -1;
    }
    return 0;
}

int aim_model_set_precision(aim_model *m, aim_precision p, aim_err *e)
{
    if (p == m->prec)
        return 0;
    if (p == AIM_PREC_FP32) {
        model_bf16_free(m);
        return 0;
    }
    aim_bf16_ctx *bf = aim_bf16_ctx_new(dnnl_threads(), e);
    if (!bf)
        return -1;
    if (prepare_shapes(m, bf, e) != 0) {
        aim_bf16_ctx_free(bf);
        return -1;
    }
    m->bf = bf;
    m->prec = p;
    if (m->cap_B > 0 && bf16_buffers(m, m->cap_B, e) != 0) {
        model_bf16_free(m);
        return -1;
    }
    return 0;
}

aim_precision aim_model_precision(const aim_model *m)
{
    return m->prec;
}

const char *aim_model_bf16_impl(const aim_model *m)
{
    return m->bf ? aim_bf16_impl(m->bf, m->D, 4 * m->D) : NULL;
}

/* ------------------------------------------------------------ fp32 GEMMs
 * OpenBLAS's sgemm, or oneDNN's fp32 matmul through the same tiled
 * primitives as bf16 (a context of fp32 operands, m->dnf) where OpenBLAS
 * is held to AVX2 kernels on an AVX-512 CPU (aim/model.h). */

const char *aim_gemm_name(aim_gemm g)
{
    return g == AIM_GEMM_ONEDNN ? "onednn" : g == AIM_GEMM_OPENBLAS ? "openblas" : "auto";
}

/* OpenBLAS's AVX-512 kernels (openblas_get_corename()) */
static int blas_core_avx512(const char *core)
{
    static const char *const k[] = {"skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (core && !strcasecmp(core, k[i]))
            return 1;
    return 0;
}

int aim_gemm_resolve(aim_gemm g, aim_gemm *out, const char **why, aim_err *e)
{
    const char *w = "asked for";
    int from_env = 0;
    if (g == AIM_GEMM_AUTO) {
        const char *env = getenv("AIM_GEMM");
        if (env && *env && strcmp(env, "auto") != 0) {
            if (!strcmp(env, "openblas"))
                g = AIM_GEMM_OPENBLAS;
            else if (!strcmp(env, "onednn"))
                g = AIM_GEMM_ONEDNN;
            else
                return aim_errf(e, "AIM_GEMM must be auto, openblas or onednn (got '%s')", env);
            w = "AIM_GEMM";
            from_env = 1;
        } else if (!aim_dnnl_avx512()) {
            g = AIM_GEMM_OPENBLAS;
#ifdef HAVE_DNNL
            w = "auto: oneDNN has no AVX-512 kernels here";
#else
            w = "auto: built without oneDNN";
#endif
        } else if (blas_core_avx512(aim_blas_core())) {
            g = AIM_GEMM_OPENBLAS;
            w = "auto: OpenBLAS runs its AVX-512 kernels here";
        } else {
            g = AIM_GEMM_ONEDNN;
            w = "auto: OpenBLAS runs AVX2 kernels here, oneDNN AVX-512 ones";
        }
    }
#ifndef HAVE_DNNL
    if (g == AIM_GEMM_ONEDNN)
        return aim_errf(e, "%s: this aim was built without oneDNN (libdnnl-dev)",
                        from_env ? "AIM_GEMM=onednn" : "gemm onednn");
#else
    (void)from_env;
#endif
    *out = g;
    if (why)
        *why = w;
    return 0;
}

int aim_model_set_gemm(aim_model *m, aim_gemm g, aim_err *e)
{
    aim_gemm r;
    if (aim_gemm_resolve(g, &r, NULL, e) != 0)
        return -1;
    m->gemm = r;
    if (r != AIM_GEMM_ONEDNN) {
        aim_bf16_ctx_free(m->dnf);
        m->dnf = NULL;
    }
    return 0;
}

const char *aim_model_gemm(const aim_model *m)
{
    return m->bf ? "onednn bf16" : aim_gemm_name(m->gemm);
}

const char *aim_gemm_label(aim_precision p)
{
    aim_gemm g;
    if (p == AIM_PREC_BF16)
        return "onednn bf16";
    return aim_gemm_resolve(AIM_GEMM_AUTO, &g, NULL, NULL) == 0 ? aim_gemm_name(g) : "?";
}

/* oneDNN's fp32 context for this many threads, before a pass (a new one
 * when the thread count grew since the last) */
static int fp32_gemm_ready(aim_model *m, aim_err *e)
{
    if (m->gemm != AIM_GEMM_ONEDNN || m->bf)
        return 0;
    int nt = dnnl_threads();
    if (m->dnf && aim_bf16_ctx_threads(m->dnf) >= nt)
        return 0;
    aim_bf16_ctx *c = aim_dnnl_f32_ctx_new(nt, e);
    if (!c || prepare_shapes(m, c, e) != 0) {
        aim_bf16_ctx_free(c);
        return -1;
    }
    aim_bf16_ctx_free(m->dnf);
    m->dnf = c;
    return 0;
}

/* the bf16 copy of the weights, before a pass (profiled as thread 0's) */
static void bf16_weights(aim_model *m)
{
    if (!m->bf)
        return;
    double t0 = m->prof ? aim_prof_now() : 0;
    aim_bf16_convert(m->w16, m->p.data, m->p.total);
    if (m->prof)
        m->prof->th[0].sec[AIM_K_F_BF16] += aim_prof_now() - t0;
}

int aim_model_reserve(aim_model *m, int B, aim_err *e)
{
    if (fp32_gemm_ready(m, e) != 0)
        return -1;
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
    if (bf16_buffers(m, B, e) != 0) {
        free(slab);
        return -1;
    }
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
    if (m->bf && nt > aim_bf16_ctx_threads(m->bf))
        nt = aim_bf16_ctx_threads(m->bf); /* its streams and buffers */
    if (!m->bf && m->dnf && nt > aim_bf16_ctx_threads(m->dnf))
        nt = aim_bf16_ctx_threads(m->dnf);
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

/* a thread's rows of an [R, width] activation and of an [R] statistic: r0,
 * its first row, comes from the enclosing scope */
#define ROWS(ptr, width) ((ptr) + (size_t)r0 * (size_t)(width))
#define STATS(ptr) ((ptr) + r0)
/* ... and of a bf16 copy (block_acts), NULL in fp32 */
#define ROWS16(ptr, width) ((ptr) ? ROWS(ptr, width) : NULL)

/* the bf16 copy of the weight that w points at (the same offset) */
static inline const uint16_t *W16(const aim_model *m, const float *w)
{
    return m->w16 + (w - m->p.data);
}


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

/* ------------------------------------------------------------ a pass
 * What a forward pass runs and keeps, and one thread's part of a pass:
 * every kernel below works on the part's images and rows only. */

/* where a forward pass stops */
typedef enum fwd_stop {
    FWD_BLOCKS, /* at the output of block `upto` (raw trunk features) */
    FWD_NORM,   /* after post_trunk_norm (lnf) */
    FWD_LOSS,   /* after the pixel head: predictions, targets, the loss */
} fwd_stop;

typedef struct fwd_mode {
    int upto;      /* trunk blocks run, 0..L */
    fwd_stop stop;
    int eval;      /* no backward follows: blocks share buffers (BA, HA), no gelu' kept */
    int loss_only; /* the loss's rows only (see "loss rows"): FWD_LOSS, upto == L >= 1 and
                      prefixes; each image's sum of row losses in a->iloss */
    int keep;      /* a backward follows: thread t runs share()'s images, which the
                      backward's thread t takes again (forward_all) */
} fwd_mode;

/* Thread tid's part of a pass: images [b0, b0 + nb) of the batch, N tokens
 * each, rows [r0, r0 + R) of every [B*N, .] activation (ROWS, STATS). */
typedef struct part {
    const fwd_mode *mode;  /* forward: what the pass runs and keeps */
    const float *x;        /* forward: [nb, C, H, W] the part's images */
    const int32_t *prefix; /* forward: [nb] their prefixes, or NULL (no mask) */
    int b0, nb;
    int N;                 /* tokens per image: N, or N-1 in a loss-only pass */
    int r0, R;
    int Rt;                /* rows from the last block's attention output on: R, or in a
                              loss-only pass the loss's, packed to the front (crow) */
    int32_t *crow;         /* [R] a->crow from r0: packed row -> row */
    int tid;               /* the thread running it (bf16: its stream and buffers) */
    float *slab;           /* backward: where this thread's weight gradients go */
    float bw;              /* backward: their beta (thread 0 adds into grad, others write) */
    aim_laptimer lp;
} part;

/* images [b0, b1) by thread tid, N tokens each (lo: all but the last) */
static part part_of(const aim_model *m, int lo, int b0, int b1, int tid)
{
    const int N = lo ? m->N - 1 : m->N;
    part s = {.b0 = b0, .nb = b1 - b0, .N = N, .r0 = b0 * N, .R = (b1 - b0) * N};
    s.Rt = s.R;
    s.tid = tid;
    s.crow = m->a.crow + s.r0;
    aim_lap_start(&s.lp, m->prof, tid);
    return s;
}

/* out[R,OC] = inp[R,IC] @ w[OC,IC]^T by part s's thread in the model's
 * precision (w a tensor of the table). In bf16, x16 is inp's kept bf16 copy
 * at the same rows, which the pass that made inp wrote (have16), or which
 * is converted here, once: the backward's weight gradient reads it again.
 * Without one (x16 NULL) inp goes through the thread's operand buffer. */
static void lin_fwd(aim_model *m, part *s, float *out, const float *inp, uint16_t *x16,
                    int have16, const float *w, int R, int IC, int OC)
{
    if (!m->bf) {
        if (m->dnf)
            aim_dnnl_f32_forward(m->dnf, s->tid, out, inp, w, R, IC, OC);
        else
            gemm_nt(out, inp, w, R, IC, OC);
        return;
    }
    if (!x16) {
        uint16_t *a = m->a16[2 * s->tid];
        aim_bf16_convert(a, inp, (size_t)R * IC);
        aim_lap(&s->lp, AIM_K_F_BF16, 0);
        aim_bf16_forward(m->bf, s->tid, out, a, W16(m, w), R, IC, OC);
        return;
    }
    if (!have16) {
        aim_bf16_convert(x16, inp, (size_t)R * IC);
        aim_lap(&s->lp, AIM_K_F_BF16, 0);
    }
    aim_bf16_forward(m->bf, s->tid, out, x16, W16(m, w), R, IC, OC);
}

/* ------------------------------------------------------------ forward
 * As llm.c's gpt2_forward: the patch embedding, a loop over the blocks,
 * then the head and the loss. Each LayerNorm is fused with the residual add
 * in front of it (add_layernorm_forward), so a stage ends by writing the
 * norm that reads its output: each stage is handed that norm, `next`. */

/* The norms, over part s's rows: the input norm of trunk block l (ln1) */
static layernorm_args ln1_args(aim_model *m, const part *s, int l)
{
    const int r0 = s->r0;
    block_acts *b = BA(m, l, s->mode->eval);
    return (layernorm_args){.out = ROWS(b->ln1, m->D),
                            .out16 = ROWS16(b->ln1_16, m->D),
                            .mean = STATS(b->ln1_mean),
                            .rstd = STATS(b->ln1_rstd),
                            .weight = W(m, m->blk[l].ln1w),
                            .bias = W(m, m->blk[l].ln1b),
                            .eps = m->cfg.norm_eps};
}

/* ... the MLP's norm of trunk block l (ln2) */
static layernorm_args ln2_args(aim_model *m, const part *s, int l)
{
    const int r0 = s->r0;
    block_acts *b = BA(m, l, s->mode->eval);
    return (layernorm_args){.out = ROWS(b->ln2, m->D),
                            .out16 = ROWS16(b->ln2_16, m->D),
                            .mean = STATS(b->ln2_mean),
                            .rstd = STATS(b->ln2_rstd),
                            .weight = W(m, m->blk[l].ln2w),
                            .bias = W(m, m->blk[l].ln2b),
                            .eps = m->cfg.norm_eps};
}

/* ... the one that reads the trunk's stream after `done` blocks (0: the
 * embedding's output x0): the next block's ln1, or post_trunk_norm after
 * the last block run, or none (NULL) when the pass stops at the blocks */
static const layernorm_args *trunk_next(aim_model *m, const part *s, int done,
                                        layernorm_args *buf)
{
    const int r0 = s->r0;
    model_acts *a = &m->a;
    if (done < s->mode->upto)
        *buf = ln1_args(m, s, done);
    else if (s->mode->stop != FWD_BLOCKS)
        *buf = (layernorm_args){.out = ROWS(a->lnf, m->D),
                                .out16 = ROWS16(a->lnf16, m->D),
                                .mean = STATS(a->lnf_mean),
                                .rstd = STATS(a->lnf_rstd),
                                .weight = W(m, m->post_w),
                                .bias = W(m, m->post_b),
                                .eps = m->cfg.norm_eps};
    else
        return NULL;
    return buf;
}

/* ... and the input norm of head block j, or the decoder norm (hln) when
 * j == Lh */
static layernorm_args head_norm(aim_model *m, const part *s, int j)
{
    const int r0 = s->r0, Dh = m->Dh;
    const float eps = m->cfg.norm_eps;
    model_acts *a = &m->a;
    if (j == m->Lh)
        return (layernorm_args){.out = ROWS(a->hln, Dh),
                                .out16 = ROWS16(a->hln16, Dh),
                                .mean = STATS(a->hln_mean),
                                .rstd = STATS(a->hln_rstd),
                                .weight = W(m, m->hn_w),
                                .bias = W(m, m->hn_b),
                                .eps = eps};
    hblock_acts *h = HA(m, j, s->mode->eval);
    return (layernorm_args){.out = ROWS(h->ln, Dh),
                            .out16 = ROWS16(h->ln16, Dh),
                            .mean = STATS(h->ln_mean),
                            .rstd = STATS(h->ln_rstd),
                            .weight = W(m, m->hblk[j].lnw),
                            .bias = W(m, m->hblk[j].lnb),
                            .eps = eps};
}

/* out = gelu(pre) [n]; in a pass a backward follows, pre becomes gelu'(pre);
 * in bf16 out16 = bf16(out) too (the next GEMM's operand), else NULL */
static void gelu_fwd(const part *s, float *out, uint16_t *out16, float *pre, size_t n)
{
    if (out16)
        gelu_forward_bf16(out, out16, pre, !s->mode->eval, n);
    else if (s->mode->eval)
        gelu_forward(out, pre, n);
    else
        gelu_forward_deriv(out, pre, n);
}

/* patches -> emb = patches Wp^T -> x0 = LN(emb + bp) + pos; then the next
 * norm of x0 */
static void embed_forward(aim_model *m, part *s, const layernorm_args *next)
{
    const aim_config *c = &m->cfg;
    model_acts *a = &m->a;
    const int D = m->D, R = s->R, N = s->N, r0 = s->r0;
    patch_extract_first(ROWS(a->patches, m->CPP), s->x, s->nb, c->channels, c->image, c->image,
                        c->patch, N);
    aim_lap(&s->lp, AIM_K_F_PATCH, 0);
    float *emb = ROWS(a->emb, D), *x0 = ROWS(a->x0, D);
    lin_fwd(m, s, emb, ROWS(a->patches, m->CPP), ROWS16(a->patches16, m->CPP), 0,
            W(m, m->patch_w), R, m->CPP, D);
    aim_lap(&s->lp, AIM_K_F_EMBED, GF(R, m->CPP, D));
    const layernorm_args pn = {.out = x0,
                               .mean = STATS(a->emb_mean),
                               .rstd = STATS(a->emb_rstd),
                               .weight = W(m, m->pn_w),
                               .bias = W(m, m->pn_b),
                               .post = m->pos, /* x0 = LN(emb) + pos */
                               .eps = c->norm_eps};
    add_layernorm_forward(emb, &pn, emb, NULL, W(m, m->patch_b), NULL, R, D, N);
    if (next)
        add_layernorm_forward(NULL, next, x0, NULL, NULL, NULL, R, D, N);
    aim_lap(&s->lp, AIM_K_F_LN, 0);
}

/* The attention half of trunk block l: res1 = xin + proj(attn(qkv(ln1)))
 * and ln2 = LN(res1) (ln1 = LN(xin) is there already). In the last block of
 * a loss-only pass the rows become the loss's from the attention output on
 * (s->Rt). */
static void attn_forward(aim_model *m, part *s, int l, const float *xin)
{
    const int D = m->D, N = s->N, nb = s->nb, R = s->R, r0 = s->r0;
    const block_idx *bi = &m->blk[l];
    block_acts *b = BA(m, l, s->mode->eval);
    model_acts *a = &m->a;
    float *qkv = ROWS(b->qkv, 3 * D), *atty = ROWS(b->atty, D), *res1 = ROWS(b->res1, D);
    lin_fwd(m, s, qkv, ROWS(b->ln1, D), ROWS16(b->ln1_16, D), 1, W(m, bi->qkv), R, D, 3 * D);
    aim_lap(&s->lp, AIM_K_F_QKV, GF(R, D, 3 * D));
    const int lora = lora_active(m, bi), lr2 = 2 * m->lora_rank;
    /* an evaluation pass keeps nothing: the adapters' A x go to scratch */
    float *lu = lora ? (s->mode->eval ? ROWS(a->dlora, lr2) : ROWS(b->lora_u, lr2)) : NULL;
    float *lw = lora ? (s->mode->eval ? ROWS(a->dlora, lr2) : ROWS(b->lora_w, lr2 / 2)) : NULL;
    if (lora) {
        lora_qkv_fwd(m, bi, lu, qkv, ROWS(b->ln1, D), R);
        aim_lap(&s->lp, AIM_K_F_LORA, GF(R, D, 2 * lr2));
    }
    attention_forward(atty, b->att + (size_t)s->b0 * m->NH * N * N, qkv, s->prefix, nb, N, D,
                      m->NH);
    aim_lap(&s->lp, AIM_K_F_ATTN, 4.0 * N * N * D * nb); /* QK^T and PV */
    if (s->mode->loss_only && l == s->mode->upto - 1) {
        s->Rt = loss_rows(s->crow, s->prefix, nb, N);
        pack_rows(atty, s->crow, s->Rt, D);
    }
    const int Rt = s->Rt;
    lin_fwd(m, s, res1, atty, ROWS16(b->atty16, D), 0, W(m, bi->proj), Rt, D, D);
    aim_lap(&s->lp, AIM_K_F_PROJ, GF(Rt, D, D));
    if (lora) {
        lora_proj_fwd(m, bi, lw, res1, atty, Rt);
        aim_lap(&s->lp, AIM_K_F_LORA, GF(Rt, D, lr2));
    }
    /* res1 = xin + proj;  ln2 = LN(res1) */
    if (Rt < R) { /* the residual from xin's loss rows, added as below */
        for (int cr = 0; cr < Rt; cr++) {
            float *y = res1 + (size_t)cr * D;
            const float *xr = xin + (size_t)s->crow[cr] * D;
#pragma omp simd
            for (int i = 0; i < D; i++)
                y[i] = y[i] + xr[i];
        }
    }
    const layernorm_args ln2 = ln2_args(m, s, l);
    add_layernorm_forward(res1, &ln2, res1, Rt < R ? NULL : xin, NULL, NULL, Rt, D, N);
    aim_lap(&s->lp, AIM_K_F_LN, 0);
}

/* The MLP half: res2 = res1 + fc2(gelu(fc1(ln2))), then the next norm of
 * res2. Returns res2. */
static const float *mlp_forward(aim_model *m, part *s, int l, const layernorm_args *next)
{
    const int D = m->D, Rt = s->Rt, r0 = s->r0;
    const block_idx *bi = &m->blk[l];
    block_acts *b = BA(m, l, s->mode->eval);
    float *fc1 = ROWS(b->fc1, 4 * D), *gl = ROWS(b->gelu, 4 * D), *res2 = ROWS(b->res2, D);
    lin_fwd(m, s, fc1, ROWS(b->ln2, D), ROWS16(b->ln2_16, D), 1, W(m, bi->fc1), Rt, D,
            4 * D);
    aim_lap(&s->lp, AIM_K_F_FC1, GF(Rt, D, 4 * D));
    gelu_fwd(s, gl, ROWS16(b->gelu16, 4 * D), fc1, (size_t)Rt * 4 * D);
    aim_lap(&s->lp, AIM_K_F_GELU, 0);
    lin_fwd(m, s, res2, gl, ROWS16(b->gelu16, 4 * D), 1, W(m, bi->fc2), Rt, 4 * D, D);
    aim_lap(&s->lp, AIM_K_F_FC2, GF(Rt, 4 * D, D));
    add_layernorm_forward(res2, next, res2, ROWS(b->res1, D), NULL, NULL, Rt, D, s->N);
    aim_lap(&s->lp, AIM_K_F_LN, 0);
    return res2;
}

/* Trunk block l on its input xin (its ln1 = LN(xin) written by the stage
 * before); returns its output res2, whose norm `next` it writes too. */
static const float *block_forward(aim_model *m, part *s, int l, const float *xin,
                                  const layernorm_args *next)
{
    attn_forward(m, s, l, xin);
    return mlp_forward(m, s, l, next);
}

/* hy0 = lnf Wh^T + bh + pos_h (the head's input; the position embedding is
 * fixed), then the next norm of hy0 */
static const float *hproj_forward(aim_model *m, part *s, const layernorm_args *next)
{
    const int D = m->D, Dh = m->Dh, N = s->N, R = s->R, Rt = s->Rt, r0 = s->r0;
    float *hy0 = ROWS(m->a.hy0, Dh);
    const float *hb = W(m, m->hproj_b);
    lin_fwd(m, s, hy0, ROWS(m->a.lnf, D), ROWS16(m->a.lnf16, D), 1, W(m, m->hproj_w), Rt, D,
            Dh);
    aim_lap(&s->lp, AIM_K_F_HPROJ, GF(Rt, D, Dh));
    if (Rt < R) { /* bias and each packed row's position, added as below */
        for (int cr = 0; cr < Rt; cr++) {
            float *y = hy0 + (size_t)cr * Dh;
            const float *pr = m->pos_h + (size_t)(s->crow[cr] % N) * Dh;
#pragma omp simd
            for (int i = 0; i < Dh; i++)
                y[i] += hb[i];
#pragma omp simd
            for (int i = 0; i < Dh; i++)
                y[i] += pr[i];
        }
    }
    add_layernorm_forward(hy0, next, hy0, NULL, Rt < R ? NULL : hb, Rt < R ? NULL : m->pos_h,
                          Rt, Dh, N);
    aim_lap(&s->lp, AIM_K_F_LN, 0);
    return hy0;
}

/* Pixel-head block j: res = y + fc2(gelu(fc1(ln))), then the next norm of
 * res. Returns res. */
static const float *hblock_forward(aim_model *m, part *s, int j, const float *y,
                                   const layernorm_args *next)
{
    const int Dh = m->Dh, Rt = s->Rt, r0 = s->r0;
    const hblock_idx *hi = &m->hblk[j];
    hblock_acts *h = HA(m, j, s->mode->eval);
    float *fc1 = ROWS(h->fc1, 4 * Dh), *gl = ROWS(h->gelu, 4 * Dh), *res = ROWS(h->res, Dh);
    lin_fwd(m, s, fc1, ROWS(h->ln, Dh), ROWS16(h->ln16, Dh), 1, W(m, hi->fc1), Rt, Dh,
            4 * Dh);
    aim_lap(&s->lp, AIM_K_F_HFC1, GF(Rt, Dh, 4 * Dh));
    gelu_fwd(s, gl, ROWS16(h->gelu16, 4 * Dh), fc1, (size_t)Rt * 4 * Dh);
    aim_lap(&s->lp, AIM_K_F_GELU, 0);
    lin_fwd(m, s, res, gl, ROWS16(h->gelu16, 4 * Dh), 1, W(m, hi->fc2), Rt, 4 * Dh, Dh);
    aim_lap(&s->lp, AIM_K_F_HFC2, GF(Rt, 4 * Dh, Dh));
    add_layernorm_forward(res, next, res, y, NULL, NULL, Rt, Dh, s->N);
    aim_lap(&s->lp, AIM_K_F_LN, 0);
    return res;
}

/* pred = hln Wp^T + bp; the targets (every patch: m->N per image); in a
 * loss-only pass each image's sum of row losses */
static void pred_forward(aim_model *m, part *s)
{
    const aim_config *c = &m->cfg;
    model_acts *a = &m->a;
    const int Dh = m->Dh, P = m->P, N = s->N, Rt = s->Rt, r0 = s->r0;
    float *pred = ROWS(a->pred, P), *tgt = a->tgt + (size_t)s->b0 * m->N * P;
    if (m->bf || m->dnf) { /* the GEMM, then the bias */
        const float *pb = W(m, m->pred_b);
        lin_fwd(m, s, pred, ROWS(a->hln, Dh), ROWS16(a->hln16, Dh), 1, W(m, m->pred_w), Rt,
                Dh, P);
        for (int r = 0; r < Rt; r++) {
            float *y = pred + (size_t)r * P;
#pragma omp simd
            for (int i = 0; i < P; i++)
                y[i] += pb[i];
        }
    } else {
        linear_forward(pred, ROWS(a->hln, Dh), W(m, m->pred_w), W(m, m->pred_b), Rt, Dh, P);
    }
    aim_lap(&s->lp, AIM_K_F_PRED, GF(Rt, Dh, P));
    patch_targets(tgt, s->x, s->nb, c->channels, c->image, c->image, c->patch);
    if (s->mode->loss_only) { /* packed row cr predicts the patch after row crow[cr] */
        const int32_t *crow = s->crow;
        double *il = a->iloss + s->b0;
        for (int b = 0; b < s->nb; b++)
            il[b] = 0.0;
        for (int cr = 0; cr < Rt; cr++)
            il[crow[cr] / N] +=
                loss_row(pred + (size_t)cr * P, tgt + target_row(crow[cr], N, m->N) * P, P);
    }
    aim_lap(&s->lp, AIM_K_F_LOSS, 0);
}

/* The pixel head on the Rt rows: hproj, Lh residual MLPs, the decoder norm,
 * the predictions and the targets */
static void head_forward(aim_model *m, part *s)
{
    layernorm_args next = head_norm(m, s, 0);
    const float *y = hproj_forward(m, s, &next);
    for (int j = 0; j < m->Lh; j++) {
        next = head_norm(m, s, j + 1);
        y = hblock_forward(m, s, j, y, &next);
    }
    pred_forward(m, s);
}

/* The forward pass of images [b0, b1) of x by thread tid, as md says */
static void forward_part(aim_model *m, const fwd_mode *md, const float *x,
                         const int32_t *prefix, int b0, int b1, int tid)
{
    const size_t img = (size_t)m->cfg.channels * m->cfg.image * m->cfg.image;
    part s = part_of(m, md->loss_only, b0, b1, tid);
    s.mode = md;
    s.x = x + (size_t)b0 * img;
    s.prefix = prefix ? prefix + b0 : NULL;

    layernorm_args next;
    embed_forward(m, &s, trunk_next(m, &s, 0, &next));
    const float *xin = m->a.x0 + (size_t)s.r0 * m->D;
    for (int l = 0; l < md->upto; l++)
        xin = block_forward(m, &s, l, xin, trunk_next(m, &s, l + 1, &next));
    if (md->stop == FWD_LOSS)
        head_forward(m, &s);
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
 * (md->keep) gives thread t images [b0, b1) of share(), which the
 * backward's threads take again; any other is cut into chunks handed out
 * dynamically. An image's work is the same whichever thread or chunk runs
 * it, but the BLAS may sum a row's products in another order at another
 * place of its M tiles: results agree to float rounding, not always to the
 * bit. */
static void forward_all(aim_model *m, const fwd_mode *md, const float *x, const int32_t *prefix,
                        int B)
{
    int nt = team(m, B, 0);
    if (nt == 1) { /* no region: a one-thread team costs libgomp an allocation */
        forward_part(m, md, x, prefix, 0, B, 0);
        return;
    }
    if (!md->keep) {
        const int ch = chunk_images(m, B, nt), nc = (B + ch - 1) / ch;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int i = 0; i < nc; i++) {
            int b0 = i * ch, b1 = b0 + ch < B ? b0 + ch : B;
            forward_part(m, md, x, prefix, b0, b1, omp_get_thread_num());
        }
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads(), b0, b1;
        share(B, n, t, &b0, &b1);
        if (b1 > b0)
            forward_part(m, md, x, prefix, b0, b1, t);
    }
}

const float *aim_model_trunk(aim_model *m, const float *x, const int32_t *prefix, int B,
                             int upto)
{
    if (aim_model_reserve(m, B, NULL) != 0)
        return NULL;
    m->have_forward = m->fb_mode = m->loss_only = 0;
    bf16_weights(m);
    int L = upto >= 1 && upto <= m->L ? upto : m->L;
    /* every block keeps its own buffers: callers read any block's output
     * (aim_model_block_output) after this pass */
    const fwd_mode md = {.upto = L, .stop = upto == 0 ? FWD_NORM : FWD_BLOCKS};
    forward_all(m, &md, x, prefix, B);
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
    bf16_weights(m);
    const fwd_mode md = {.upto = upto, .stop = FWD_BLOCKS};
    forward_all(m, &md, x, NULL, B);
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
    bf16_weights(m);
    const fwd_mode md = {.upto = upto, .stop = FWD_BLOCKS, .keep = 1};
    forward_all(m, &md, x, m->a.prefix, B);
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
    bf16_weights(m);
    memcpy(a->prefix, prefix, (size_t)B * sizeof *prefix);
    const fwd_mode md = {
        .upto = m->L, .stop = FWD_LOSS, .eval = eval, .loss_only = lo, .keep = !eval};
    forward_all(m, &md, x, a->prefix, B);
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
 * dinp overwritten, the weight gradients into the thread's slab (beta_w);
 * in bf16, x16 is inp's kept copy from the forward (NULL: converted here) */
static void lin_bwd(aim_model *m, part *s, int kdx, int kdw, float *dinp, float *dweight,
                    float *dbias, float beta_w, const float *dout, const float *inp,
                    const uint16_t *x16, const float *weight, int R, int IC, int OC)
{
    aim_laptimer *lp = &s->lp;
    if (m->bf || m->dnf) { /* oneDNN's GEMMs, bf16 or fp32; the bias's column sums in fp32 */
        uint16_t *g16 = m->bf ? m->a16[2 * s->tid + 1] : NULL;
        if (g16) {
            aim_bf16_convert(g16, dout, (size_t)R * OC);
            aim_lap(lp, AIM_K_B_BF16, 0);
        }
        if (dinp) {
            if (g16)
                aim_bf16_dinp(m->bf, s->tid, dinp, g16, W16(m, weight), R, IC, OC);
            else
                aim_dnnl_f32_dinp(m->dnf, s->tid, dinp, dout, weight, R, IC, OC);
            aim_lap(lp, kdx, GF(R, IC, OC));
        }
        if (dweight && !g16)
            aim_dnnl_f32_dweight(m->dnf, s->tid, dweight, beta_w, dout, inp, R, IC, OC);
        if (dweight && g16) {
            if (!x16) { /* no copy kept from the forward (lin_fwd): converted here */
                uint16_t *a16 = m->a16[2 * s->tid];
                aim_bf16_convert(a16, inp, (size_t)R * IC);
                aim_lap(lp, AIM_K_B_BF16, 0);
                x16 = a16;
            }
            aim_bf16_dweight(m->bf, s->tid, dweight, beta_w, g16, x16, R, IC, OC);
        }
        if (dbias)
            linear_backward_beta(NULL, 0.0f, NULL, dbias, beta_w, dout, inp, weight, R, IC, OC);
        if (dweight || dbias)
            aim_lap(lp, kdw, dweight ? GF(R, IC, OC) : 0);
        return;
    }
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

/* part s's rows of the gradient scratch that the trunk's MLPs and the
 * head's share, [R, 4 max(D, Dh)]: a row is as wide as the wider of them */
static float *dgelu_rows(const aim_model *m, const part *s)
{
    const size_t wide = 4 * (size_t)(m->D > m->Dh ? m->D : m->Dh);
    return m->a.dgelu + (size_t)s->r0 * wide;
}

/* the gradient of the predictions, dpred, over part s's Rt rows (after a
 * loss-only forward: packed, as loss_backward_n with packed row cr against
 * the patch after its token) */
static void loss_backward_part(aim_model *m, part *s, int64_t count)
{
    model_acts *a = &m->a;
    const int P = m->P, N = s->N, Rt = s->Rt, r0 = s->r0;
    float *dpred = ROWS(a->dpred, P);
    memset(dpred, 0, (size_t)Rt * P * sizeof(float));
    if (m->loss_only) { /* (head_backward runs outside a features backward) */
        const float scale = count ? (float)(2.0 / ((double)P * (double)count)) : 0.0f;
        const float *pred = ROWS(a->pred, P), *tgt = a->tgt + (size_t)s->b0 * m->N * P;
        for (int cr = 0; cr < Rt && count; cr++)
            loss_row_backward(dpred + (size_t)cr * P, pred + (size_t)cr * P,
                              tgt + target_row(s->crow[cr], N, m->N) * P, P, scale);
    } else {
        loss_backward_n(dpred, ROWS(a->pred, P), ROWS(a->tgt, P), a->prefix + s->b0, s->nb, N,
                        P, 1.0f, count);
    }
    aim_lap(&s->lp, AIM_K_B_LOSS, 0);
}

/* Backward of hblock_forward: dhy (the gradient of its output) becomes
 * that of its input y */
static void hblock_backward(aim_model *m, part *s, int j)
{
    model_acts *a = &m->a;
    const int Dh = m->Dh, Rt = s->Rt, r0 = s->r0;
    const hblock_idx *hi = &m->hblk[j];
    hblock_acts *h = &a->hblk[j];
    const float *y = j ? ROWS(a->hblk[j - 1].res, Dh) : ROWS(a->hy0, Dh);
    float *dhy = ROWS(a->dhy, Dh), *dhln = ROWS(a->dhln, Dh), *dgelu = dgelu_rows(m, s);
    lin_bwd(m, s, AIM_K_B_HFC2_DX, AIM_K_B_HFC2_DW, dgelu, GS(m, hi->fc2, s->slab), NULL,
            s->bw, dhy, ROWS(h->gelu, 4 * Dh), ROWS16(h->gelu16, 4 * Dh), W(m, hi->fc2), Rt,
            4 * Dh, Dh);
    gelu_backward_deriv(dgelu, ROWS(h->fc1, 4 * Dh), (size_t)Rt * 4 * Dh);
    aim_lap(&s->lp, AIM_K_B_GELU, 0);
    lin_bwd(m, s, AIM_K_B_HFC1_DX, AIM_K_B_HFC1_DW, dhln, GS(m, hi->fc1, s->slab), NULL,
            s->bw, dgelu, ROWS(h->ln, Dh), ROWS16(h->ln16, Dh), W(m, hi->fc1), Rt, Dh, 4 * Dh);
    /* the residual path already sits in dhy; the norm adds its part */
    layernorm_backward_rows(dhy, 1.0f, GS(m, hi->lnw, s->slab), GS(m, hi->lnb, s->slab), s->bw,
                            dhln, y, W(m, hi->lnw), STATS(h->ln_mean), STATS(h->ln_rstd), Rt,
                            Dh);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
}

/* Backward of the loss, head_forward and post_trunk_norm: dres = the
 * gradient of the last block's output (its Rt rows) */
static void head_backward(aim_model *m, part *s, int64_t count)
{
    model_acts *a = &m->a;
    const int D = m->D, Dh = m->Dh, P = m->P, Rt = s->Rt, r0 = s->r0;
    float *dhln = ROWS(a->dhln, Dh), *dhy = ROWS(a->dhy, Dh), *dln = ROWS(a->dln, D);
    float *slab = s->slab;
    loss_backward_part(m, s, count);
    lin_bwd(m, s, AIM_K_B_PRED_DX, AIM_K_B_PRED_DW, dhln, GS(m, m->pred_w, slab),
            GS(m, m->pred_b, slab), s->bw, ROWS(a->dpred, P), ROWS(a->hln, Dh),
            ROWS16(a->hln16, Dh), W(m, m->pred_w), Rt, Dh, P);
    const float *yin = m->Lh ? ROWS(a->hblk[m->Lh - 1].res, Dh) : ROWS(a->hy0, Dh);
    layernorm_backward_rows(dhy, 0.0f, GS(m, m->hn_w, slab), GS(m, m->hn_b, slab), s->bw, dhln,
                            yin, W(m, m->hn_w), STATS(a->hln_mean), STATS(a->hln_rstd), Rt, Dh);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
    for (int j = m->Lh - 1; j >= 0; j--)
        hblock_backward(m, s, j);
    /* head projection (the position embedding is fixed) and post norm */
    lin_bwd(m, s, AIM_K_B_HPROJ_DX, AIM_K_B_HPROJ_DW, dln, GS(m, m->hproj_w, slab),
            GS(m, m->hproj_b, slab), s->bw, dhy, ROWS(a->lnf, D), ROWS16(a->lnf16, D),
            W(m, m->hproj_w), Rt, D, Dh);
    const float *xt = m->L ? ROWS(a->blk[m->L - 1].res2, D) : ROWS(a->x0, D);
    layernorm_backward_rows(ROWS(a->dres, D), 0.0f, GS(m, m->post_w, slab),
                            GS(m, m->post_b, slab), s->bw, dln, xt, W(m, m->post_w),
                            STATS(a->lnf_mean), STATS(a->lnf_rstd), Rt, D);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
}

/* Backward of mlp_forward over Rb rows: dres, the gradient of res2, becomes
 * that of res1 */
static void mlp_backward(aim_model *m, part *s, int l, int Rb)
{
    model_acts *a = &m->a;
    const int D = m->D, r0 = s->r0;
    const block_idx *bi = &m->blk[l];
    block_acts *b = &a->blk[l];
    float *dres = ROWS(a->dres, D), *dln = ROWS(a->dln, D), *dgelu = dgelu_rows(m, s);
    lin_bwd(m, s, AIM_K_B_FC2_DX, AIM_K_B_FC2_DW, dgelu, GS(m, bi->fc2, s->slab), NULL, s->bw,
            dres, ROWS(b->gelu, 4 * D), ROWS16(b->gelu16, 4 * D), W(m, bi->fc2), Rb, 4 * D, D);
    gelu_backward_deriv(dgelu, ROWS(b->fc1, 4 * D), (size_t)Rb * 4 * D);
    aim_lap(&s->lp, AIM_K_B_GELU, 0);
    lin_bwd(m, s, AIM_K_B_FC1_DX, AIM_K_B_FC1_DW, dln, GS(m, bi->fc1, s->slab), NULL, s->bw,
            dgelu, ROWS(b->ln2, D), ROWS16(b->ln2_16, D), W(m, bi->fc1), Rb, D, 4 * D);
    layernorm_backward_rows(dres, 1.0f, GS(m, bi->ln2w, s->slab), GS(m, bi->ln2b, s->slab),
                            s->bw, dln, ROWS(b->res1, D), W(m, bi->ln2w), STATS(b->ln2_mean),
                            STATS(b->ln2_rstd), Rb, D);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
}

/* Backward of attn_forward: dres, the gradient of res1 (its Rb rows, packed
 * when Rb < R), becomes that of the block's input xin (every row) */
static void attn_backward(aim_model *m, part *s, int l, int Rb)
{
    model_acts *a = &m->a;
    const int D = m->D, N = s->N, nb = s->nb, R = s->R, r0 = s->r0, lr2 = 2 * m->lora_rank;
    const block_idx *bi = &m->blk[l];
    block_acts *b = &a->blk[l];
    const float *xin = l ? ROWS(a->blk[l - 1].res2, D) : ROWS(a->x0, D);
    float *dres = ROWS(a->dres, D), *dln = ROWS(a->dln, D), *datty = ROWS(a->datty, D);
    float *dqkv = ROWS(a->dqkv, 3 * D), *dlora = lr2 ? ROWS(a->dlora, lr2) : NULL;
    float *slab = s->slab;
    lin_bwd(m, s, AIM_K_B_PROJ_DX, AIM_K_B_PROJ_DW, datty, GS(m, bi->proj, slab), NULL, s->bw,
            dres, ROWS(b->atty, D), ROWS16(b->atty16, D), W(m, bi->proj), Rb, D, D);
    const int lora = lora_active(m, bi);
    if (lora) {
        lora_proj_bwd(m, bi, GS(m, bi->pa, slab), GS(m, bi->pb, slab), s->bw, dres,
                      ROWS(b->atty, D), ROWS(b->lora_w, lr2 / 2), datty, dlora, Rb);
        aim_lap(&s->lp, AIM_K_B_LORA, 3 * GF(Rb, D, lr2));
    }
    if (Rb < R) { /* back to every row: the others' gradients are zero */
        unpack_rows(datty, s->crow, Rb, R, D);
        unpack_rows(dres, s->crow, Rb, R, D);
        aim_lap(&s->lp, AIM_K_B_LN, 0);
    }
    attention_backward_write(dqkv, a->datt + (size_t)s->b0 * m->NH * N * N, datty,
                             ROWS(b->qkv, 3 * D), b->att + (size_t)s->b0 * m->NH * N * N,
                             a->prefix + s->b0, nb, N, D, m->NH);
    aim_lap(&s->lp, AIM_K_B_ATTN, 8.0 * N * N * D * nb); /* backward of QK^T and PV */
    lin_bwd(m, s, AIM_K_B_QKV_DX, AIM_K_B_QKV_DW, dln, GS(m, bi->qkv, slab), NULL, s->bw, dqkv,
            ROWS(b->ln1, D), ROWS16(b->ln1_16, D), W(m, bi->qkv), R, D, 3 * D);
    if (lora) {
        lora_qkv_bwd(m, bi, GS(m, bi->qa, slab), GS(m, bi->qb, slab), s->bw, dqkv,
                     ROWS(b->ln1, D), ROWS(b->lora_u, lr2), dln, dlora, R);
        aim_lap(&s->lp, AIM_K_B_LORA, 3 * GF(R, D, 2 * lr2));
    }
    layernorm_backward_rows(dres, 1.0f, GS(m, bi->ln1w, slab), GS(m, bi->ln1b, slab), s->bw,
                            dln, xin, W(m, bi->ln1w), STATS(b->ln1_mean), STATS(b->ln1_rstd), R,
                            D);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
}

/* Backward of block_forward: dres, the gradient of block l's output, becomes
 * that of its input. After a loss-only forward the last block runs on the
 * loss's rows, packed, down to its attention output. */
static void block_backward(aim_model *m, part *s, int l)
{
    const int Rb = l == m->L - 1 ? s->Rt : s->R;
    mlp_backward(m, s, l, Rb);
    attn_backward(m, s, l, Rb);
}

/* Backward of embed_forward: x0 = LN(emb) + pos; emb = patches Wp^T + bp */
static void embed_backward(aim_model *m, part *s)
{
    model_acts *a = &m->a;
    const int D = m->D, R = s->R, r0 = s->r0;
    float *dln = ROWS(a->dln, D), *slab = s->slab;
    layernorm_backward_rows(dln, 0.0f, GS(m, m->pn_w, slab), GS(m, m->pn_b, slab), s->bw,
                            ROWS(a->dres, D), ROWS(a->emb, D), W(m, m->pn_w),
                            STATS(a->emb_mean), STATS(a->emb_rstd), R, D);
    aim_lap(&s->lp, AIM_K_B_LN, 0);
    lin_bwd(m, s, AIM_K_B_EMBED_DW, AIM_K_B_EMBED_DW, NULL, GS(m, m->patch_w, slab),
            GS(m, m->patch_b, slab), s->bw, dln, ROWS(a->patches, m->CPP),
            ROWS16(a->patches16, m->CPP), W(m, m->patch_w), R, m->CPP, D);
}

/* The backward of images [b0, b1) by thread tid: from the loss (or, after
 * aim_model_features_train, from the features' gradient) down to the
 * lowest trunk block with something to train (with a frozen trunk and
 * LoRA: the lowest adapted block) and the patch embedding */
static void backward_part(aim_model *m, int b0, int b1, int tid, int64_t count)
{
    const int lo = m->loss_only && !m->fb_mode; /* the forward's tokens and rows */
    part s = part_of(m, lo, b0, b1, tid);
    s.slab = tid == 0 ? m->p.grad : m->gslot[tid - 1];
    s.bw = tid == 0 ? 1.0f : 0.0f; /* thread 0 adds into grad, others write */
    if (lo)
        s.Rt = (int)loss_count(m->a.prefix + b0, s.nb, m->N);
    const size_t RD = (size_t)s.R * m->D;
    float *dres = m->a.dres + (size_t)s.r0 * m->D;
    const float *dfeat = m->a.lnf + (size_t)s.r0 * m->D;
    int top = m->L - 1; /* the deepest block the gradient enters */
    if (m->fb_mode) {
        /* dL/d(features) / nblocks sits in lnf (unused in this mode); it
         * enters the stream at every block of the set */
        top = m->fb_upto - 1;
        memcpy(dres, dfeat, RD * sizeof(float));
    } else {
        head_backward(m, &s, count);
    }
    const int floor_l = lowest_trainable_block(m);
    for (int l = top; l >= floor_l && l >= 0; l--) {
        block_backward(m, &s, l);
        /* dres is now the gradient of block l-1's output: add the features' */
        if (m->fb_mode && l > 0 && m->fb_in[l - 1])
            for (size_t k = 0; k < RD; k++)
                dres[k] += dfeat[k];
    }
    if (floor_l == 0)
        embed_backward(m, &s);
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
