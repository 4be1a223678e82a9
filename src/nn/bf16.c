/*
 * bf16.c - bfloat16 conversions and the GEMMs of a linear layer through
 * oneDNN's matmul primitive (aim/bf16.h): on bf16 operands (--precision
 * bf16), or on fp32 ones (the model's fp32 GEMMs where oneDNN's matmul
 * beats OpenBLAS's sgemm, aim_model_set_gemm; OpenBLAS's path is linear.c).
 *
 * Why tiles: a oneDNN primitive is made for fixed shapes, and the rows of a
 * layer vary (the loss rows of a loss-only pass differ every step; threads
 * own different numbers of images). So each shape gets one primitive per
 * GEMM over AIM_BF16_TILE rows and one over SMALL rows, made before the
 * step, and a layer runs tile by tile: whole tiles of AIM_BF16_TILE rows,
 * then of SMALL rows, are read and written in place; the last partial one
 * is copied into a per-thread operand tile with zero pad rows and its
 * result goes through a per-thread fp32 tile, so nothing past a part's R
 * rows is read or written; at most half a big tile or SMALL - 1 rows are
 * computed in vain (tile_at).
 * dW takes the rows as its reduction (K) dimension, adding tile after tile
 * into dW through a sum post-op. Built without oneDNN only the conversions
 * are here.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/bf16.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

const char *aim_precision_name(aim_precision p)
{
    return p == AIM_PREC_BF16 ? "bf16" : "fp32";
}

int aim_precision_parse(const char *s, aim_precision *p, aim_err *e)
{
    if (s && !strcmp(s, "fp32")) {
        *p = AIM_PREC_FP32;
        return 0;
    }
    if (s && !strcmp(s, "bf16")) {
        *p = AIM_PREC_BF16;
        return 0;
    }
    return aim_errf(e, "precision must be fp32 or bf16 (got '%s')", s ? s : "");
}

void aim_bf16_convert(uint16_t *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dst[i] = aim_bf16_from(src[i]);
}

#ifndef HAVE_DNNL
/* ------------------------------------------------------------ no oneDNN */

int aim_bf16_check(const char *what, aim_err *e)
{
    return aim_errf(e, "%s bf16: this aim was built without oneDNN (libdnnl-dev), so it runs "
                       "in fp32 only",
                    what);
}

const char *aim_bf16_isa(void)
{
    return "none (built without oneDNN)";
}

aim_bf16_ctx *aim_bf16_ctx_new(int nthreads, aim_err *e)
{
    aim_bf16_check("--precision", e);
    return NULL;
}

aim_bf16_ctx *aim_dnnl_f32_ctx_new(int nthreads, aim_err *e)
{
    aim_errf(e, "this aim was built without oneDNN (libdnnl-dev)");
    return NULL;
}

void aim_dnnl_f32_forward(aim_bf16_ctx *c, int tid, float *out, const float *inp,
                          const float *w, int R, int IC, int OC)
{
    abort(); /* unreachable: no context can be made */
}

void aim_dnnl_f32_dinp(aim_bf16_ctx *c, int tid, float *dinp, const float *dout,
                       const float *w, int R, int IC, int OC)
{
    abort();
}

void aim_dnnl_f32_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const float *dout,
                          const float *inp, int R, int IC, int OC)
{
    abort();
}

int aim_dnnl_avx512(void)
{
    return 0;
}

void aim_bf16_ctx_free(aim_bf16_ctx *c) {}

int aim_bf16_ctx_threads(const aim_bf16_ctx *c)
{
    return 0;
}

int aim_bf16_prepare(aim_bf16_ctx *c, int IC, int OC, aim_err *e)
{
    return aim_bf16_check("--precision", e);
}

const char *aim_bf16_impl(const aim_bf16_ctx *c, int IC, int OC)
{
    return NULL;
}

void aim_bf16_forward(aim_bf16_ctx *c, int tid, float *out, const uint16_t *inp,
                      const uint16_t *w, int R, int IC, int OC)
{
    abort(); /* unreachable: no context can be made */
}

void aim_bf16_dinp(aim_bf16_ctx *c, int tid, float *dinp, const uint16_t *dout,
                   const uint16_t *w, int R, int IC, int OC)
{
    abort();
}

void aim_bf16_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const uint16_t *dout,
                      const uint16_t *inp, int R, int IC, int OC)
{
    abort();
}

#else
/* ------------------------------------------------------------ oneDNN */

/* the three GEMMs on tiles of AIM_BF16_TILE rows, then the same three on
 * tiles of SMALL rows, for the rows after the last whole big tile */
enum { G_FWD, G_DX, G_DW, G_FWD_S, G_DX_S, G_DW_S, G_N };
enum { SMALL = 32, G_SMALL = G_FWD_S - G_FWD };
enum { M_A, M_B, M_C, M_SP, M_N }; /* memory objects of a GEMM: src, weights, dst, scratch */

typedef struct gemm_plan {
    dnnl_primitive_t prim;
    size_t sp_bytes;
} gemm_plan;

typedef struct layer {
    int IC, OC;
    gemm_plan g[G_N];
    dnnl_memory_t *mem; /* [nt][G_N][M_N] */
    const char *impl;   /* the forward's, owned by oneDNN's primitive desc */
    dnnl_primitive_desc_t fwd_pd;
} layer;

struct aim_bf16_ctx {
    dnnl_engine_t eng;
    int nt;
    dnnl_data_type_t dt; /* the operands': bf16, or f32 (aim_dnnl_f32_ctx_new) */
    size_t esz;          /* and their size in bytes */
    dnnl_stream_t *st;    /* [nt] */
    int nl, cap;
    layer *l;             /* [nl] */
    float **tail;         /* [nt] [TILE, widest] the last partial tile of a result */
    size_t tail_floats;
    void **opa, **opb;    /* [nt] [TILE, widest] the last partial tile of each operand,
                             its pad rows zero */
    void **scratch;       /* [nt] oneDNN's scratchpad of any primitive */
    size_t scratch_bytes;
};

const char *aim_bf16_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

int aim_bf16_check(const char *what, aim_err *e)
{
    /* the ISA oneDNN will use (DNNL_MAX_CPU_ISA can lower it): without
     * AVX512_BF16 its bf16 matmul is a slow emulation, which we refuse
     * rather than fall back to */
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) !=
        (unsigned)dnnl_cpu_isa_avx512_core_bf16)
        return aim_errf(e, "%s bf16: this CPU has no AVX512_BF16 (oneDNN's ISA here: %s); use "
                           "fp32",
                        what, aim_bf16_isa());
    return 0;
}

int aim_dnnl_avx512(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core;
}

static int dnnl_fail(aim_err *e, const char *what, dnnl_status_t s)
{
    return aim_errf(e, "oneDNN: %s failed (status %d)", what, (int)s);
}

#define DN(call, what)                                                                         \
    do {                                                                                       \
        dnnl_status_t s_ = (call);                                                             \
        if (s_ != dnnl_success) {                                                              \
            dnnl_fail(e, what, s_);                                                            \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

static aim_bf16_ctx *ctx_new(int nthreads, dnnl_data_type_t dt, aim_err *e)
{
    aim_bf16_ctx *c = aim_xcalloc(1, sizeof *c);
    c->nt = nthreads < 1 ? 1 : nthreads;
    c->dt = dt;
    c->esz = dt == dnnl_f32 ? sizeof(float) : sizeof(uint16_t);
    c->st = aim_xcalloc((size_t)c->nt, sizeof *c->st);
    c->tail = aim_xcalloc((size_t)c->nt, sizeof *c->tail);
    c->scratch = aim_xcalloc((size_t)c->nt, sizeof *c->scratch);
    c->opa = aim_xcalloc((size_t)c->nt, sizeof *c->opa);
    c->opb = aim_xcalloc((size_t)c->nt, sizeof *c->opb);
    DN(dnnl_engine_create(&c->eng, dnnl_cpu, 0), "engine");
    for (int t = 0; t < c->nt; t++)
        DN(dnnl_stream_create(&c->st[t], c->eng, dnnl_stream_default_flags), "stream");
    return c;
fail:
    aim_bf16_ctx_free(c);
    return NULL;
}

aim_bf16_ctx *aim_bf16_ctx_new(int nthreads, aim_err *e)
{
    if (aim_bf16_check("--precision", e) != 0)
        return NULL;
    return ctx_new(nthreads, dnnl_bf16, e);
}

aim_bf16_ctx *aim_dnnl_f32_ctx_new(int nthreads, aim_err *e)
{
    return ctx_new(nthreads, dnnl_f32, e);
}

void aim_bf16_ctx_free(aim_bf16_ctx *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nl; i++) {
        layer *L = &c->l[i];
        for (size_t k = 0; k < (size_t)c->nt * G_N * M_N; k++)
            if (L->mem[k])
                dnnl_memory_destroy(L->mem[k]);
        free(L->mem);
        for (int g = 0; g < G_N; g++)
            if (L->g[g].prim)
                dnnl_primitive_destroy(L->g[g].prim);
        if (L->fwd_pd)
            dnnl_primitive_desc_destroy(L->fwd_pd);
    }
    free(c->l);
    for (int t = 0; t < c->nt; t++) {
        if (c->st[t])
            dnnl_stream_destroy(c->st[t]);
        free(c->tail[t]);
        free(c->scratch[t]);
        free(c->opa[t]);
        free(c->opb[t]);
    }
    free(c->st);
    free(c->tail);
    free(c->opa);
    free(c->opb);
    free(c->scratch);
    if (c->eng)
        dnnl_engine_destroy(c->eng);
    free(c);
}

int aim_bf16_ctx_threads(const aim_bf16_ctx *c)
{
    return c->nt;
}

static layer *find(const aim_bf16_ctx *c, int IC, int OC)
{
    for (int i = 0; i < c->nl; i++)
        if (c->l[i].IC == IC && c->l[i].OC == OC)
            return &c->l[i];
    return NULL;
}

const char *aim_bf16_impl(const aim_bf16_ctx *c, int IC, int OC)
{
    const layer *L = find(c, IC, OC);
    return L ? L->impl : NULL;
}

/* a 2-D descriptor [d0, d1] with strides s0, s1 */
static dnnl_status_t md2(dnnl_memory_desc_t *md, int64_t d0, int64_t d1, dnnl_data_type_t t,
                         int64_t s0, int64_t s1)
{
    dnnl_dims_t d = {d0, d1}, s = {s0, s1};
    return dnnl_memory_desc_init_by_strides(md, 2, d, t, s);
}

/* One GEMM C[M,N] (+)= A[M,K] B[K,N] with A, B bf16 (or f32: c->dt) and C fp32 at the given
 * strides; sum: accumulate into C. Its memory objects, one set per thread,
 * go to mem[t * G_N * M_N]. */
static int make_gemm(aim_bf16_ctx *c, gemm_plan *g, dnnl_memory_t *mem, int M, int N, int K,
                     int64_t as0, int64_t as1, int64_t bs0, int64_t bs1, int sum,
                     dnnl_primitive_desc_t *keep_pd, aim_err *e)
{
    dnnl_memory_desc_t a, b, d;
    dnnl_matmul_desc_t mm;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    DN(md2(&a, M, K, c->dt, as0, as1), "memory desc");
    DN(md2(&b, K, N, c->dt, bs0, bs1), "memory desc");
    DN(md2(&d, M, N, dnnl_f32, N, 1), "memory desc");
    DN(dnnl_matmul_desc_init(&mm, &a, &b, NULL, &d), "matmul desc");
    DN(dnnl_primitive_attr_create(&attr), "attr");
    /* the scratchpad is ours, per thread: executing allocates none */
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad");
    if (sum) {
        DN(dnnl_post_ops_create(&po), "post ops");
        DN(dnnl_post_ops_append_sum(po, 1.0f), "sum post op");
        DN(dnnl_primitive_attr_set_post_ops(attr, po), "post ops");
    }
    DN(dnnl_primitive_desc_create(&pd, &mm, attr, c->eng, NULL), "matmul primitive desc");
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    g->sp_bytes = dnnl_memory_desc_get_size(sp);
    DN(dnnl_primitive_create(&g->prim, pd), "matmul primitive");
    for (int t = 0; t < c->nt; t++) {
        dnnl_memory_t *mt = mem + (size_t)t * G_N * M_N;
        DN(dnnl_memory_create(&mt[M_A], &a, c->eng, DNNL_MEMORY_NONE), "memory");
        DN(dnnl_memory_create(&mt[M_B], &b, c->eng, DNNL_MEMORY_NONE), "memory");
        DN(dnnl_memory_create(&mt[M_C], &d, c->eng, DNNL_MEMORY_NONE), "memory");
        DN(dnnl_memory_create(&mt[M_SP], sp, c->eng, DNNL_MEMORY_NONE), "memory");
    }
    if (keep_pd) {
        *keep_pd = pd;
        pd = NULL;
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return 0;
fail:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return -1;
}

int aim_bf16_prepare(aim_bf16_ctx *c, int IC, int OC, aim_err *e)
{
    if (find(c, IC, OC))
        return 0;
    if (IC < 1 || OC < 1)
        return aim_errf(e, "bf16 GEMM: bad shape %d -> %d", IC, OC);
    if (c->nl == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->l = aim_xrealloc(c->l, (size_t)c->cap * sizeof *c->l);
    }
    layer *L = &c->l[c->nl];
    memset(L, 0, sizeof *L);
    L->IC = IC;
    L->OC = OC;
    L->mem = aim_xcalloc((size_t)c->nt * G_N * M_N, sizeof *L->mem);
    c->nl++; /* counted now, so a failure below frees what was made */
    for (int sz = 0; sz < 2; sz++) {
        const int T = sz ? SMALL : AIM_BF16_TILE, o = sz * G_SMALL;
        /* forward: out[T,OC] = inp[T,IC] @ (w[OC,IC])^T; B = w^T as [IC,OC] */
        if (make_gemm(c, &L->g[G_FWD + o], L->mem + (G_FWD + o) * M_N, T, OC, IC, IC, 1, 1, IC,
                      0, sz ? NULL : &L->fwd_pd, e) != 0)
            goto fail;
        /* dX: dinp[T,IC] = dout[T,OC] @ w[OC,IC] */
        if (make_gemm(c, &L->g[G_DX + o], L->mem + (G_DX + o) * M_N, T, IC, OC, OC, 1, IC, 1, 0,
                      NULL, e) != 0)
            goto fail;
        /* dW: dw[OC,IC] += (dout[T,OC])^T @ inp[T,IC]; A = dout^T as [OC,T] */
        if (make_gemm(c, &L->g[G_DW + o], L->mem + (G_DW + o) * M_N, OC, IC, T, 1, OC, IC, 1, 1,
                      NULL, e) != 0)
            goto fail;
    }
    const int T = AIM_BF16_TILE;
    if (dnnl_primitive_desc_query(L->fwd_pd, dnnl_query_impl_info_str, 0, &L->impl) !=
        dnnl_success)
        L->impl = "?";
    size_t sp = 0;
    for (int g = 0; g < G_N; g++)
        if (L->g[g].sp_bytes > sp)
            sp = L->g[g].sp_bytes;
    size_t tail = (size_t)T * (size_t)(IC > OC ? IC : OC);
    for (int t = 0; t < c->nt; t++) {
        if (sp > c->scratch_bytes) {
            free(c->scratch[t]);
            c->scratch[t] = aim_xaligned(sp);
        }
        if (tail > c->tail_floats) {
            free(c->tail[t]);
            free(c->opa[t]);
            free(c->opb[t]);
            c->tail[t] = aim_xaligned(tail * sizeof(float));
            c->opa[t] = aim_xaligned(tail * c->esz);
            c->opb[t] = aim_xaligned(tail * c->esz);
        }
    }
    if (sp > c->scratch_bytes)
        c->scratch_bytes = sp;
    if (tail > c->tail_floats)
        c->tail_floats = tail;
    return 0;
fail:
    L->IC = L->OC = -1; /* half made: never found; aim_bf16_ctx_free frees it */
    return -1;
}

/* Run GEMM g of layer L on thread tid's stream with these operands. (The
 * handles are const in meaning: oneDNN's setter takes void *.) */
static void run(aim_bf16_ctx *c, layer *L, int g, int tid, const void *a, const void *b,
                float *d)
{
    dnnl_memory_t *mt = L->mem + ((size_t)tid * G_N + g) * M_N;
    dnnl_memory_set_data_handle(mt[M_A], (void *)a);
    dnnl_memory_set_data_handle(mt[M_B], (void *)b);
    dnnl_memory_set_data_handle(mt[M_C], d);
    dnnl_memory_set_data_handle(mt[M_SP], c->scratch[tid]);
    const dnnl_exec_arg_t args[M_N] = {{DNNL_ARG_SRC, mt[M_A]},
                                       {DNNL_ARG_WEIGHTS, mt[M_B]},
                                       {DNNL_ARG_DST, mt[M_C]},
                                       {DNNL_ARG_SCRATCHPAD, mt[M_SP]}};
    dnnl_primitive_execute(L->g[g].prim, c->st[tid], M_N, args);
}

/* a prepared layer: preparing happens before a step, so a miss is the
 * caller's bug */
static layer *get(aim_bf16_ctx *c, int IC, int OC)
{
    layer *L = find(c, IC, OC);
    if (!L)
        abort();
    return L;
}

/* rows [r, R) of a [R, K] operand (fewer than T), copied into thread
 * tid's operand tile `to` with zero pad rows up to T: the last partial
 * tile */
static const void *pad_tile(const aim_bf16_ctx *c, void *to, const void *a, int r, int R,
                            int K, int T)
{
    const size_t n = (size_t)(R - r) * K * c->esz;
    memcpy(to, (const char *)a + (size_t)r * K * c->esz, n);
    memset((char *)to + n, 0, (size_t)T * K * c->esz - n);
    return to;
}

/* the tile that rows [r, R) start with: whole tiles of AIM_BF16_TILE rows;
 * then, when more than half a big tile is left, one more big tile (padded:
 * a small tile re-reads the whole weight matrix for SMALL rows, which costs
 * more than the pad rows where the weights outgrow the cache, as on
 * `small`), else tiles of SMALL rows. *rows its rows (the padded size for
 * the last); returns the offset of its GEMMs (0 or G_SMALL). */
static int tile_at(int r, int R, int *rows)
{
    if (R - r > AIM_BF16_TILE / 2) {
        *rows = AIM_BF16_TILE;
        return 0;
    }
    *rows = SMALL;
    return G_SMALL;
}

/* out[R,W] = a[R,K] op, tile by tile (g: G_FWD with W = OC, or G_DX); the
 * last partial tile through the thread's operand and result tiles */
static void rows_gemm(aim_bf16_ctx *c, layer *L, int g, int tid, float *out, const void *a,
                      int K, const void *w, int R, int Wd)
{
    int T;
    for (int r = 0; r < R; r += T) {
        const int gt = g + tile_at(r, R, &T);
        if (R - r >= T) {
            run(c, L, gt, tid, (const char *)a + (size_t)r * K * c->esz, w,
                out + (size_t)r * Wd);
        } else {
            run(c, L, gt, tid, pad_tile(c, c->opa[tid], a, r, R, K, T), w, c->tail[tid]);
            dnnl_stream_wait(c->st[tid]);
            memcpy(out + (size_t)r * Wd, c->tail[tid], (size_t)(R - r) * Wd * sizeof(float));
        }
    }
    dnnl_stream_wait(c->st[tid]);
}

/* dw[OC,IC] = beta dw + dout[R,OC]^T @ inp[R,IC]: the rows are the
 * reduction, tile after tile through the sum post-op, the last partial
 * tile of both operands padded with zero rows */
static void dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const void *dout,
                    const void *inp, int R, int IC, int OC)
{
    layer *L = get(c, IC, OC);
    if (beta == 0.0f)
        memset(dw, 0, (size_t)OC * IC * sizeof(float));
    int T;
    for (int r = 0; r < R; r += T) {
        const int gt = G_DW + tile_at(r, R, &T);
        if (R - r >= T)
            run(c, L, gt, tid, (const char *)dout + (size_t)r * OC * c->esz,
                (const char *)inp + (size_t)r * IC * c->esz, dw);
        else
            run(c, L, gt, tid, pad_tile(c, c->opa[tid], dout, r, R, OC, T),
                pad_tile(c, c->opb[tid], inp, r, R, IC, T), dw);
    }
    dnnl_stream_wait(c->st[tid]);
}

void aim_bf16_forward(aim_bf16_ctx *c, int tid, float *out, const uint16_t *inp,
                      const uint16_t *w, int R, int IC, int OC)
{
    rows_gemm(c, get(c, IC, OC), G_FWD, tid, out, inp, IC, w, R, OC);
}

void aim_bf16_dinp(aim_bf16_ctx *c, int tid, float *dinp, const uint16_t *dout,
                   const uint16_t *w, int R, int IC, int OC)
{
    rows_gemm(c, get(c, IC, OC), G_DX, tid, dinp, dout, OC, w, R, IC);
}

void aim_bf16_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const uint16_t *dout,
                      const uint16_t *inp, int R, int IC, int OC)
{
    dweight(c, tid, dw, beta, dout, inp, R, IC, OC);
}

void aim_dnnl_f32_forward(aim_bf16_ctx *c, int tid, float *out, const float *inp,
                          const float *w, int R, int IC, int OC)
{
    rows_gemm(c, get(c, IC, OC), G_FWD, tid, out, inp, IC, w, R, OC);
}

void aim_dnnl_f32_dinp(aim_bf16_ctx *c, int tid, float *dinp, const float *dout,
                       const float *w, int R, int IC, int OC)
{
    rows_gemm(c, get(c, IC, OC), G_DX, tid, dinp, dout, OC, w, R, IC);
}

void aim_dnnl_f32_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const float *dout,
                          const float *inp, int R, int IC, int OC)
{
    dweight(c, tid, dw, beta, dout, inp, R, IC, OC);
}
#endif
