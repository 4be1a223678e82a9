/*
 * recon.c - reconstructions (aim/recon.h): the model's next-patch
 * predictions mapped back to pixels, and the input | prediction | target
 * grid as a PNG in memory for TensorBoard. Used by aim.reconstruct
 * (l_recon.c), the TUI's reconstruction panel (l_board.c) and the
 * pretraining loop's "recon/val" image summaries (pretrain.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/data.h"
#include "aim/io.h"
#include "aim/recon.h"

#define CHUNK 64 /* images per forward */

static float clamp01(float v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

int aim_model_reconstruct(aim_model *m, const float *x, int B, int S, const float *mean,
                          const float *sd, float *in, float *pr, float *tg, double *loss,
                          aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int C = c->channels, H = c->image, p = c->patch, gw = H / p;
    int N = aim_config_tokens(c), P = aim_config_patch_dim(c);
    if (B < 0)
        return aim_errf(e, "reconstruct: %d images", B);
    if (C < 1 || C > AIM_MAX_CHANNELS)
        return aim_errf(e, "reconstruct: %d channels (1..%d)", C, AIM_MAX_CHANNELS);
    if (S < 1 || S > N - 1)
        return aim_errf(e, "reconstruct: the prefix must be in 1..%d (got %d)", N - 1, S);
    float mu_c[AIM_MAX_CHANNELS], sd_c[AIM_MAX_CHANNELS];
    if ((mean == NULL) != (sd == NULL))
        return aim_errf(e, "reconstruct: give both mean and std, or neither");
    for (int k = 0; k < C && k < AIM_MAX_CHANNELS; k++) {
        mu_c[k] = mean ? mean[k] : k < c->nmean ? c->mean[k] : 0.0f;
        sd_c[k] = sd ? sd[k] : k < c->nmean ? c->std[k] : 1.0f;
    }
    int32_t pre[CHUNK];
    for (int b = 0; b < CHUNK; b++)
        pre[b] = S;
    if (aim_model_reserve(m, B < CHUNK ? B : CHUNK, e) != 0)
        return -1;
    size_t plane = (size_t)H * H, img = (size_t)C * plane;
    double lsum = 0;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        lsum += (double)aim_model_forward(m, x + (size_t)b0 * img, pre, nb) * nb;
        const float *pred = aim_model_predictions(m); /* [nb, N, P], (py, px, c) order */
        for (int b = 0; b < nb; b++) {
            const float *xi = x + (size_t)(b0 + b) * img;
            float *ii = in + (size_t)(b0 + b) * img;
            float *pi = pr + (size_t)(b0 + b) * img;
            float *ti = tg + (size_t)(b0 + b) * img;
            for (int j = 0; j < N; j++) {
                int row = j / gw, col = j % gw;
                /* the target patch's statistics, as patch_targets computes them */
                double mu = 0, var = 0;
                for (int k = 0; k < C; k++)
                    for (int py = 0; py < p; py++)
                        for (int px = 0; px < p; px++)
                            mu += xi[k * plane + (size_t)(row * p + py) * H + col * p + px];
                mu /= P;
                for (int k = 0; k < C; k++)
                    for (int py = 0; py < p; py++)
                        for (int px = 0; px < p; px++) {
                            size_t at = k * plane + (size_t)(row * p + py) * H + col * p + px;
                            var += (xi[at] - mu) * (xi[at] - mu);
                        }
                double s = sqrt(var / (P - 1) + 1e-6);
                const float *pv = j >= S ? pred + ((size_t)b * N + j - 1) * P : NULL;
                for (int k = 0; k < C; k++)
                    for (int py = 0; py < p; py++)
                        for (int px = 0; px < p; px++) {
                            size_t at = k * plane + (size_t)(row * p + py) * H + col * p + px;
                            float v = clamp01(xi[at] * sd_c[k] + mu_c[k]);
                            ti[at] = v;
                            ii[at] = j < S ? v : 0.5f;
                            if (pv) {
                                float n = (float)(pv[(py * p + px) * C + k] * s + mu);
                                pi[at] = clamp01(n * sd_c[k] + mu_c[k]);
                            } else {
                                pi[at] = v;
                            }
                        }
            }
        }
    }
    *loss = lsum / B;
    return 0;
}

void aim_recon_cells(const float *input, const float *pred, const float *target, int B, int C,
                     int H, uint8_t *cells)
{
    size_t img = (size_t)C * H * H;
    for (int b = 0; b < B; b++) {
        const float *src[3] = {input, pred, target};
        for (int k = 0; k < 3; k++) {
            const float *f = src[k] + (size_t)b * img;
            uint8_t *o = cells + ((size_t)b * 3 + k) * img;
            for (size_t q = 0; q < img; q++)
                o[q] = (uint8_t)lrintf(clamp01(f[q]) * 255.0f);
        }
    }
}

int aim_recon_scale(int H)
{
    return H <= 32 ? 4 : H <= 64 ? 2 : 1;
}

int aim_recon_png(const float *input, const float *pred, const float *target, int B, int C,
                  int H, int scale, uint8_t **png, size_t *len, int *width, int *height,
                  aim_err *e)
{
    *png = NULL;
    *len = 0;
    if (B <= 0 || H <= 0)
        return aim_errf(e, "reconstruction grid: %d images of %d pixels", B, H);
    if (C != 1 && C != 3)
        return aim_errf(e, "reconstruction grid: %d channels cannot be shown (1 or 3)", C);
    size_t img = (size_t)C * H * H;
    uint8_t *cells = aim_try_malloc(3 * (size_t)B * img);
    if (!cells)
        return aim_errf(e, "reconstruction grid: out of memory");
    aim_recon_cells(input, pred, target, B, C, H, cells);
    int rc = aim_png_encode_grid(cells, 3 * B, C, H, H, 3, AIM_RECON_BORDER, scale, 255, png,
                                 len, width, height, e);
    free(cells);
    return rc;
}

int aim_recon_summary(aim_tfevents *w, const char *tag, int64_t step, const float *input,
                      const float *pred, const float *target, int B, int C, int H, aim_err *e)
{
    uint8_t *png;
    size_t len;
    int W, Hh;
    if (aim_recon_png(input, pred, target, B, C, H, aim_recon_scale(H), &png, &len, &W, &Hh,
                      e) != 0)
        return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int rc = aim_tfevents_image(w, tag, step, (double)ts.tv_sec + ts.tv_nsec * 1e-9, Hh, W, C,
                                png, len);
    free(png);
    if (rc != 0)
        return aim_errf(e, "%s: writing the image summary %s failed", aim_tfevents_path(w), tag);
    return 0;
}

/* ------------------------------------------------------------ choosing */

int aim_recon_pick(const aim_dataset *ds, const aim_config *c, int n, float **rx)
{
    int C = c->channels, H = c->image;
    *rx = NULL;
    if (ds->c != C || ds->h != H || ds->w != H || ds->n <= 0 || n <= 0)
        return 0;
    if (n > ds->n)
        n = (int)ds->n;
    int64_t *pick = aim_xmalloc((size_t)n * sizeof *pick);
    int k = 0;
    int64_t scan = ds->n < 2000 ? ds->n : 2000;
    for (int cls = 0; k < n && cls < (ds->nclasses > 0 ? ds->nclasses : 1); cls++)
        for (int64_t i = 0; i < scan; i++)
            if (!ds->labels || ds->labels[i] == cls) {
                pick[k++] = i;
                break;
            }
    for (int64_t i = 0; k < n && i < ds->n; i++) { /* too few classes: fill in order */
        int seen = 0;
        for (int j = 0; j < k; j++)
            seen |= pick[j] == i;
        if (!seen)
            pick[k++] = i;
    }
    size_t img = (size_t)C * H * H;
    float *x = aim_xmalloc((size_t)k * img * sizeof *x);
    for (int j = 0; j < k; j++) {
        const uint8_t *src = ds->images + (size_t)pick[j] * img;
        for (int ch = 0; ch < C; ch++) {
            float mu = ch < c->nmean ? c->mean[ch] : 0, sd = ch < c->nmean ? c->std[ch] : 1;
            for (size_t q = 0; q < (size_t)H * H; q++) {
                size_t at = (size_t)ch * H * H + q;
                x[(size_t)j * img + at] = (src[at] / 255.0f - mu) / sd;
            }
        }
    }
    free(pick);
    *rx = x;
    return k;
}
