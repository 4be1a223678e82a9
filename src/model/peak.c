/*
 * peak.c - the machine's practical GEMM peak for a model (aim/prof.h): the
 * sgemm rate on the model's own forward GEMM shapes, FLOP-weighted over one
 * pass. `aim bench` prints it with its per-shape rows; the TUI's status line
 * divides a pretraining job's achieved FLOP/s by it (the engine measures it
 * once per config, batch and thread count). It measures sgemm alone, not the
 * model: the attention core and element-wise work are not in it. The GEMMs
 * are made as the model makes them (vit.c): a team of threads, each on its
 * own images' rows with single-threaded sgemm, so small shapes are not
 * charged OpenBLAS's cost of splitting one small product over threads (that
 * made the peak of narrow models too low: MFU above 100%). The bf16 peak
 * (aim_gemm_peak_bf16) times the bf16 GEMMs of --precision bf16 the same
 * way, each thread on its own stream of one oneDNN context, and
 * aim_gemm_peak_dnnl_f32 oneDNN's fp32 matmul on the same shapes, to weigh
 * it against OpenBLAS (aim bench --dnnl-f32).
 */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/bf16.h"
#include "aim/model.h"
#include "aim/prof.h"

const char *aim_blas_core(void)
{
    const char *n = openblas_get_corename();
    return n && *n ? n : "unknown";
}

int aim_gemm_shapes(const aim_config *c, int batch, aim_gemm_row *g)
{
    int R = batch * aim_config_tokens(c), D = c->width, Dh = c->head_width;
    int P = aim_config_patch_dim(c), n = 0;
    g[n++] = (aim_gemm_row){"patch embed", R, P, D, 1, 0};
    g[n++] = (aim_gemm_row){"attn.qkv", R, D, 3 * D, c->depth, 0};
    g[n++] = (aim_gemm_row){"attn.proj", R, D, D, c->depth, 0};
    g[n++] = (aim_gemm_row){"mlp.fc1", R, D, 4 * D, c->depth, 0};
    g[n++] = (aim_gemm_row){"mlp.fc2", R, 4 * D, D, c->depth, 0};
    g[n++] = (aim_gemm_row){"head.proj", R, D, Dh, 1, 0};
    if (c->head_depth) {
        g[n++] = (aim_gemm_row){"head.fc1", R, Dh, 4 * Dh, c->head_depth, 0};
        g[n++] = (aim_gemm_row){"head.fc2", R, 4 * Dh, Dh, c->head_depth, 0};
    }
    g[n++] = (aim_gemm_row){"head.pred", R, Dh, P, 1, 0};
    return n;
}

static void fill(float *p, size_t n, aim_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(aim_rng_uniform(r) - 0.5);
}

/* the GEMM measured: OpenBLAS's sgemm, oneDNN's bf16 matmul (what
 * --precision bf16 runs), or oneDNN's fp32 matmul (to compare with sgemm) */
enum { K_SGEMM, K_BF16, K_DNNL_F32 };

/* each thread's operands: fp32, or bf16 through bf */
typedef struct operands {
    int kind;
    aim_bf16_ctx *bf; /* oneDNN's (not K_SGEMM) */
    float *A[AIM_PROF_MAX_THREADS], *Wt[AIM_PROF_MAX_THREADS], *O[AIM_PROF_MAX_THREADS];
    uint16_t *A16[AIM_PROF_MAX_THREADS], *W16[AIM_PROF_MAX_THREADS];
} operands;

/* O[M,N] = A[M,K] @ Wt[N,K]^T by thread t, as the model's linear layers */
static void gemm(const operands *o, int t, int M, int N, int K)
{
    if (o->kind == K_BF16)
        aim_bf16_forward(o->bf, t, o->O[t], o->A16[t], o->W16[t], M, K, N);
    else if (o->kind == K_DNNL_F32)
        aim_dnnl_f32_forward(o->bf, t, o->O[t], o->A[t], o->Wt[t], M, K, N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, o->A[t], K,
                    o->Wt[t], K, 0.0f, o->O[t], N);
}

/* The time of reps calls of shape g made the way the model makes them: with
 * a team of nt > 1 threads each thread multiplies its own block of images'
 * rows (its own buffers) with single-threaded sgemm inside one parallel
 * region (OpenBLAS's OpenMP build runs BLAS calls made in a region on the
 * calling thread); with nt == 1, one sgemm on all rows with every BLAS
 * thread. Timed from before the region to after it. */
static double timed(const aim_gemm_row *g, int batch, int nt, int reps, const operands *o)
{
    double t0 = aim_prof_now();
    if (nt == 1) {
        for (int k = 0; k < reps; k++)
            gemm(o, 0, g->M, g->N, g->K);
        return aim_prof_now() - t0;
    }
    int per_image = g->M / batch;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int b0 = (int)((int64_t)batch * t / n), b1 = (int)((int64_t)batch * (t + 1) / n);
        int M = (b1 - b0) * per_image;
        for (int k = 0; k < reps && M > 0; k++)
            gemm(o, t, M, g->N, g->K);
    }
    return aim_prof_now() - t0;
}

static double peak(const aim_config *c, int batch, double seconds, int kind, aim_peak *out)
{
    aim_peak pk;
    memset(&pk, 0, sizeof pk);
    if (out)
        *out = pk;
    if (batch < 1 || seconds <= 0)
        return 0;
    aim_gemm_row *g = pk.row;
    int ng = pk.nrows = aim_gemm_shapes(c, batch, g);
    /* the team the model's passes use for this batch (vit.c's team()) */
    int nt = omp_get_max_threads();
    nt = nt > batch ? batch : nt;
    nt = nt > AIM_PROF_MAX_THREADS ? AIM_PROF_MAX_THREADS : nt < 1 ? 1 : nt;
    size_t maxa = 0, maxw = 0, maxo = 0;
    for (int i = 0; i < ng; i++) {
        size_t a = (size_t)g[i].M * g[i].K, w = (size_t)g[i].N * g[i].K,
               o = (size_t)g[i].M * g[i].N;
        maxa = a > maxa ? a : maxa;
        maxw = w > maxw ? w : maxw;
        maxo = o > maxo ? o : maxo;
    }
    /* each thread its own buffers (with a team, its rows only: at most all) */
    operands o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    const int bf16 = kind == K_BF16;
    if (kind != K_SGEMM) {
        o.bf = bf16 ? aim_bf16_ctx_new(nt, NULL) : aim_dnnl_f32_ctx_new(nt, NULL);
        for (int i = 0; o.bf && i < ng; i++)
            if (aim_bf16_prepare(o.bf, g[i].K, g[i].N, NULL) != 0) {
                aim_bf16_ctx_free(o.bf);
                o.bf = NULL;
            }
        if (!o.bf)
            return 0;
    }
    aim_rng r;
    aim_rng_seed(&r, 7);
    for (int t = 0; t < nt; t++) {
        o.A[t] = aim_xaligned(maxa * 4);
        o.Wt[t] = aim_xaligned(maxw * 4);
        o.O[t] = aim_xaligned(maxo * 4);
        fill(o.A[t], maxa, &r);
        fill(o.Wt[t], maxw, &r);
        if (bf16) {
            o.A16[t] = aim_xaligned(maxa * 2);
            o.W16[t] = aim_xaligned(maxw * 2);
            aim_bf16_convert(o.A16[t], o.A[t], maxa);
            aim_bf16_convert(o.W16[t], o.Wt[t], maxw);
        }
    }
    double pass_flops = 0, pass_time = 0, pass_cpu = 0;
    for (int i = 0; i < ng; i++) {
        double f = 2.0 * g[i].M * g[i].K * g[i].N;
        /* warm up and size the run: double reps until it takes 1/8 of the
         * shape's share of the time, then run for the share */
        double share = seconds / ng, t = 0;
        int reps = 1;
        while ((t = timed(&g[i], batch, nt, reps, &o)) < share / 8 && reps < 5000)
            reps *= 2;
        int total = t > 0 ? (int)(reps * (share / t)) : reps;
        total = total < 1 ? 1 : total > 10000 ? 10000 : total;
        double c0 = aim_prof_process_cpu();
        t = timed(&g[i], batch, nt, total, &o);
        double per = t / total, cper = (aim_prof_process_cpu() - c0) / total;
        g[i].flops_per_s = per > 0 ? f / per : 0;
        pass_flops += f * g[i].count;
        pass_time += per * g[i].count;
        pass_cpu += cper * g[i].count;
    }
    for (int t = 0; t < nt; t++) {
        free(o.A[t]);
        free(o.Wt[t]);
        free(o.O[t]);
        free(o.A16[t]);
        free(o.W16[t]);
    }
    aim_bf16_ctx_free(o.bf);
    pk.flops_per_s = pass_time > 0 ? pass_flops / pass_time : 0;
    pk.flops_per_cpu_s = pass_cpu > 0 ? pass_flops / pass_cpu : 0;
    pk.cores = pass_time > 0 ? pass_cpu / pass_time : 0;
    if (out)
        *out = pk;
    return pk.flops_per_s;
}

double aim_gemm_peak(const aim_config *c, int batch, double seconds, aim_peak *out)
{
    return peak(c, batch, seconds, K_SGEMM, out);
}

double aim_gemm_peak_bf16(const aim_config *c, int batch, double seconds, aim_peak *out)
{
    return peak(c, batch, seconds, K_BF16, out);
}

double aim_gemm_peak_dnnl_f32(const aim_config *c, int batch, double seconds, aim_peak *out)
{
    return peak(c, batch, seconds, K_DNNL_F32, out);
}
