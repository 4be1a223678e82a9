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
 * The computation itself is the library's (aim/recon.h), shared with the
 * TUI's reconstruction panel (l_board.c) and the pretraining loop's
 * TensorBoard images.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/recon.h"
#include "lua/l_aim.h"

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
    if (aim_model_reconstruct(m, x->data, B, S, mean, sd, in->data, pr->data, tg->data, &loss, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    l_set_num(L, "loss", loss);
    if (png) {
        size_t n3 = 3 * (size_t)B * img;
        uint8_t *pix = lua_newuserdatauv(L, n3, 0); /* res pix */
        aim_recon_cells(in->data, pr->data, tg->data, B, C, H, pix);
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
