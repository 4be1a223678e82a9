/*
 * peak.c - the machine's practical GEMM peak for a model (aim/prof.h): the
 * sgemm rate on the model's own forward GEMM shapes, FLOP-weighted over one
 * pass. `aim bench` prints it with its per-shape rows; the TUI's status line
 * divides a pretraining job's achieved FLOP/s by it (the engine measures it
 * once per config, batch and thread count). It measures sgemm alone, not the
 * model: the attention core and element-wise work are not in it.
 */
#include "config.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "aim/model.h"
#include "aim/prof.h"

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

static void sgemm(const aim_gemm_row *g, const float *A, const float *Wt, float *O)
{
    /* O[M,N] = A[M,K] @ Wt[N,K]^T, as the model's linear layers */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->N, g->K, 1.0f, A, g->K, Wt,
                g->K, 0.0f, O, g->N);
}

double aim_gemm_peak(const aim_config *c, int batch, double seconds, aim_peak *out)
{
    aim_peak pk;
    memset(&pk, 0, sizeof pk);
    if (out)
        *out = pk;
    if (batch < 1 || seconds <= 0)
        return 0;
    aim_gemm_row *g = pk.row;
    int ng = pk.nrows = aim_gemm_shapes(c, batch, g);
    size_t maxa = 0, maxw = 0, maxo = 0;
    for (int i = 0; i < ng; i++) {
        size_t a = (size_t)g[i].M * g[i].K, w = (size_t)g[i].N * g[i].K,
               o = (size_t)g[i].M * g[i].N;
        maxa = a > maxa ? a : maxa;
        maxw = w > maxw ? w : maxw;
        maxo = o > maxo ? o : maxo;
    }
    float *A = aim_xaligned(maxa * 4), *Wt = aim_xaligned(maxw * 4), *O = aim_xaligned(maxo * 4);
    aim_rng r;
    aim_rng_seed(&r, 7);
    fill(A, maxa, &r);
    fill(Wt, maxw, &r);
    double pass_flops = 0, pass_time = 0, pass_cpu = 0;
    for (int i = 0; i < ng; i++) {
        double f = 2.0 * g[i].M * g[i].K * g[i].N;
        sgemm(&g[i], A, Wt, O); /* warm up */
        int reps = 0;
        double t0 = aim_prof_now(), c0 = aim_prof_process_cpu(), t;
        do {
            sgemm(&g[i], A, Wt, O);
            reps++;
            t = aim_prof_now() - t0;
        } while (t < seconds / ng && reps < 10000);
        double per = t / reps, cper = (aim_prof_process_cpu() - c0) / reps;
        g[i].flops_per_s = per > 0 ? f / per : 0;
        pass_flops += f * g[i].count;
        pass_time += per * g[i].count;
        pass_cpu += cper * g[i].count;
    }
    free(A);
    free(Wt);
    free(O);
    pk.flops_per_s = pass_time > 0 ? pass_flops / pass_time : 0;
    pk.flops_per_cpu_s = pass_cpu > 0 ? pass_flops / pass_cpu : 0;
    pk.cores = pass_time > 0 ? pass_cpu / pass_time : 0;
    if (out)
        *out = pk;
    return pk.flops_per_s;
}
