/*
 * views.c - turning a model's numbers into the views a job publishes
 * (aim/engine.h): the Inspect view's maps and the reconstructions' pixels,
 * for the Lua layer, the jobs and the command line alike.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/engine.h"
#include "aim/inspect.h"

int aim_inspect_view_fits(const aim_config *c, aim_err *e)
{
    int g = c->image / c->patch;
    if (g > AIM_INSPECT_GRID)
        return aim_errf(e, "inspect: %dx%d patches are more than the Inspect view's %dx%d", g, g,
                        AIM_INSPECT_GRID, AIM_INSPECT_GRID);
    if (c->channels != 1 && c->channels != 3)
        return aim_errf(e, "inspect: %d channels cannot be shown", c->channels);
    return 0;
}

void aim_inspect_view_fill(aim_inspect_view *v, const aim_config *c, const float *x, int B,
                           int k, int S, const float *pca, const float *expl,
                           const aim_token_stats *stats, const float *err, const float *att,
                           int NH, const char *probe, const char *source, int64_t step)
{
    int N = aim_config_tokens(c), H = c->image, C = c->channels;
    memset(v, 0, sizeof *v);
    v->n = B < AIM_INSPECT_IMAGES ? B : AIM_INSPECT_IMAGES;
    v->channels = C;
    int f = aim_shrink_factor(H, AIM_RECON_SIDE);
    v->side = H / f;
    v->grid = H / c->patch;
    v->depth = c->depth < AIM_INSPECT_BLOCKS ? c->depth : AIM_INSPECT_BLOCKS;
    v->heads = att ? (NH < AIM_INSPECT_HEADS ? NH : AIM_INSPECT_HEADS) : 0;
    v->prefix = S;
    v->step = step;
    snprintf(v->source, sizeof v->source, "%s", source ? source : "");
    snprintf(v->probe, sizeof v->probe, "%s", probe ? probe : "");
    aim_image_shrink_u8(c, x, v->n, C, H, f, v->input[0], sizeof v->input[0]);
    uint8_t *rgb = aim_xmalloc((size_t)B * N * 3);
    for (int l = 0; l < v->depth; l++) {
        aim_pca_rgb(pca + (size_t)l * B * N * k, (int64_t)B * N, k, rgb);
        for (int i = 0; i < v->n; i++)
            memcpy(v->pca[l][i], rgb + (size_t)i * N * 3, (size_t)N * 3);
        for (int j = 0; j < 3; j++)
            v->explained[l][j] = j < k ? expl[(size_t)l * k + j] : 0;
        v->norm[l] = (float)stats[l].norm;
        v->cosine[l] = (float)stats[l].cosine;
        v->erank[l] = (float)stats[l].erank;
    }
    free(rgb);
    for (int i = 0; i < v->n; i++) {
        memcpy(v->error[i], err + (size_t)i * N, (size_t)N * sizeof(float));
        v->loss[i] = (float)aim_nanmean(err + (size_t)i * N, (size_t)N);
        for (int h = 0; h < v->heads; h++)
            memcpy(v->attn[i][h], att + ((size_t)i * NH + h) * N, (size_t)N * sizeof(float));
    }
}

int aim_inspect_publish(aim_engine *eng, aim_model *m, const float *x, int B, aim_probe *p,
                        const int *blocks, int nblocks, const char *probe_name, int S,
                        const char *source, int64_t step, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    if (aim_inspect_view_fits(c, e) != 0)
        return -1;
    int N = aim_config_tokens(c), Ld = c->depth, k = 3, NH = 0;
    int attentive = p && aim_probe_get_kind(p) == AIM_PROBE_ATTENTIVE;
    if (attentive) {
        int pN, pD;
        aim_probe_shape(p, &pN, &pD, &NH);
    }
    float *pca = aim_xmalloc((size_t)Ld * B * N * k * sizeof *pca);
    float *expl = aim_xmalloc((size_t)Ld * k * sizeof *expl);
    aim_token_stats *st = aim_xmalloc((size_t)Ld * sizeof *st);
    float *err = aim_xmalloc((size_t)B * N * sizeof *err);
    float *att = attentive ? aim_xmalloc((size_t)B * NH * N * sizeof *att) : NULL;
    int rc = aim_inspect_maps(m, x, B, k, S, p, blocks, nblocks, pca, expl, st, err, att, e);
    if (rc == 0) {
        aim_inspect_view *v = aim_xmalloc(sizeof *v);
        aim_inspect_view_fill(v, c, x, B, k, S, pca, expl, st, err, att, NH,
                              attentive ? probe_name : "", source, step);
        aim_engine_job_inspect(eng, v);
        free(v);
    }
    free(pca);
    free(expl);
    free(st);
    free(err);
    free(att);
    return rc;
}

void aim_recon_view_fill(aim_recon_view *v, const aim_config *c, const float *out, int n, int S,
                         int64_t step, double loss)
{
    int C = c->channels, H = c->image;
    size_t img = (size_t)C * H * H;
    int f = aim_shrink_factor(H, AIM_RECON_SIDE);
    memset(v, 0, sizeof *v);
    v->n = n < AIM_RECON_MAX ? n : AIM_RECON_MAX;
    v->channels = C;
    v->side = H / f;
    v->patch = (c->patch + f / 2) / f > 0 ? (c->patch + f / 2) / f : 1;
    v->prefix = S;
    v->step = step;
    v->loss = (float)loss;
    for (int i = 0; i < v->n; i++)
        for (int k = 0; k < 3; k++)
            aim_image_shrink_u8(NULL, out + ((size_t)k * n + i) * img, 1, C, H, f, v->pix[i][k],
                                0);
}
