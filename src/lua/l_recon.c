/*
 * l_recon.c - aim.reconstruct(m, x [, opts]): what the model predicts for
 * each patch, as images.
 *
 * x [B,C,H,W] is normalised as the model sees it. With prefix S (opts.prefix,
 * default N/2) one forward pass gives, for every patch j >= S, the
 * prediction made from patches 0..j-1 (row j-1 of m:predict). Predictions
 * live in normalised-pixel space, so each is mapped back with the TARGET
 * patch's own mean and unbiased std (the inverse of the loss's per-patch
 * normalisation) and then the channel normalisation is undone with the
 * model's mean/std (opts.mean/opts.std override; neither: x is taken as
 * x/255 already). Returns a table:
 *   input       the image with patches >= S greyed out (what is given)
 *   prediction  patches < S from the image, patches >= S predicted
 *   target      the image
 * all [B,C,H,W] in [0,1], plus prefix = S and loss. With opts.png = path the
 * three are written side by side, one image per row (input | prediction |
 * target), each pixel scaled by opts.scale (default: up to about 128
 * pixels); C must then be 1 or 3. A failed write gives nil, message.
 * The computation itself (l_recon_compute) also serves the TUI's
 * reconstruction panel (l_jobs.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "lua/l_aim.h"

#define CHUNK 64

static int read_stats(lua_State *L, int idx, const char *key, float *out, int c)
{
    if (l_opt_get(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1) || luaL_len(L, -1) != c)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must hold %d numbers", key, c));
    for (int k = 0; k < c; k++) {
        lua_rawgeti(L, -1, k + 1);
        out[k] = (float)luaL_checknumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static float clamp01(float v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

int l_recon_compute(aim_model *m, const float *x, int B, int S, const float *mean,
                    const float *sd, float *in, float *pr, float *tg, double *loss, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int C = c->channels, H = c->image, p = c->patch, gw = H / p;
    int N = aim_config_tokens(c), P = aim_config_patch_dim(c);
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
                            float v = clamp01(xi[at] * sd[k] + mean[k]);
                            ti[at] = v;
                            ii[at] = j < S ? v : 0.5f;
                            if (pv) {
                                float n = (float)(pv[(py * p + px) * C + k] * s + mu);
                                pi[at] = clamp01(n * sd[k] + mean[k]);
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

static const char *const recon_options[] = {"prefix", "png", "scale", "mean", "std", NULL};

static int l_reconstruct(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    l_check_options(L, 3, recon_options);
    lua_settop(L, 3);
    const aim_config *c = aim_model_config(m);
    int C = c->channels, H = c->image;
    int B = l_tensor_check_images(L, 2, x, C, H, H);
    int N = aim_config_tokens(c);
    size_t img = (size_t)C * H * H;
    int S = (int)l_opt_int(L, 3, "prefix", N / 2 > 0 ? N / 2 : 1, 1, N - 1);
    const char *png = l_opt_str(L, 3, "png", NULL);
    int scale = (int)l_opt_int(L, 3, "scale", H >= 128 ? 1 : 128 / H, 1, 64);
    if (png && C != 1 && C != 3)
        luaL_argerror(L, 3, "a PNG needs 1 or 3 channels");
    float mean[4] = {0, 0, 0, 0}, sd[4] = {1, 1, 1, 1};
    for (int k = 0; k < c->nmean; k++) {
        mean[k] = c->mean[k];
        sd[k] = c->std[k];
    }
    int hm = read_stats(L, 3, "mean", mean, C), hs = read_stats(L, 3, "std", sd, C);
    if (hm != hs)
        luaL_argerror(L, 3, "give both mean and std, or neither");

    int64_t shape[4] = {B, C, H, H};
    lua_createtable(L, 0, 6);                    /* res */
    l_tensor *in = l_tensor_push(L, 4, shape);   /* res in */
    lua_setfield(L, -2, "input");
    l_tensor *pr = l_tensor_push(L, 4, shape);
    lua_setfield(L, -2, "prediction");
    l_tensor *tg = l_tensor_push(L, 4, shape);
    lua_setfield(L, -2, "target");
    l_set_int(L, "prefix", S);
    aim_err e;
    double loss;
    if (l_recon_compute(m, x->data, B, S, mean, sd, in->data, pr->data, tg->data, &loss, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    l_set_num(L, "loss", loss);
    if (png) {
        size_t n3 = 3 * (size_t)B * img;
        uint8_t *pix = lua_newuserdatauv(L, n3, 0); /* res pix */
        for (int b = 0; b < B; b++) {
            const l_tensor *src[3] = {in, pr, tg};
            for (int k = 0; k < 3; k++) {
                const float *f = src[k]->data + (size_t)b * img;
                uint8_t *o = pix + ((size_t)b * 3 + k) * img;
                for (size_t q = 0; q < img; q++)
                    o[q] = (uint8_t)lrintf(f[q] * 255.0f);
            }
        }
        if (aim_png_write_grid(png, pix, 3 * B, C, H, H, 3, 1, scale, 128, &e) != 0)
            return l_fail(L, e.msg);
        lua_pop(L, 1);
        l_set_str(L, "png", png);
    }
    return 1;
}

static const luaL_Reg recon_funcs[] = {
    {"reconstruct", l_reconstruct},
    {NULL, NULL},
};

void l_open_recon(lua_State *L)
{
    luaL_setfuncs(L, recon_funcs, 0); /* into aim */
}
