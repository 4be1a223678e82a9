/*
 * l_png.c - aim.png.write(path, t [, opts]): a tensor as a PNG.
 *
 *   t [H,W]          one gray image
 *   t [C,H,W]        one image, C = 1 (gray), 3 (RGB) or 4 (RGBA)
 *   t [N,C,H,W]      a grid of N images (C = 1 or 3), opts.cols per row
 *                    (default ceil(sqrt(N))), opts.border pixels (default 1)
 *                    of opts.border_value (0..255, default 128) between them
 * Values: in [0,1] (scaled by 255) or in 0..255. opts.range = 1 or 255 says
 * which; by default a tensor whose maximum is above 1 is taken as 0..255.
 * Values are clamped and rounded. opts.scale (default 1) enlarges every
 * pixel (nearest neighbour). Returns true, or nil, message on an I/O failure.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "lua/l_aim.h"

static const char *const png_options[] = {"cols", "scale", "border", "border_value", "range",
                                          NULL};

static int png_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    l_tensor *t = l_tensor_check(L, 2);
    l_check_options(L, 3, png_options);
    if (t->ndim < 2 || t->ndim > 4)
        return luaL_argerror(L, 2, "expected [H,W], [C,H,W] or [N,C,H,W]");
    /* the sizes as they are (int64) first: each must fit the PNG limit
     * before it becomes an int */
    int o = t->ndim == 2 ? 0 : t->ndim - 3;
    int64_t n64 = t->ndim == 4 ? t->shape[0] : 1, c64 = t->ndim == 2 ? 1 : t->shape[o];
    int64_t h64 = t->shape[t->ndim - 2], w64 = t->shape[t->ndim - 1];
    if (t->ndim == 4 && c64 != 1 && c64 != 3)
        luaL_argerror(L, 2, "a grid [N,C,H,W] needs C = 1 or 3");
    if (c64 != 1 && c64 != 3 && c64 != 4)
        luaL_argerror(L, 2, "an image [C,H,W] needs C = 1, 3 or 4");
    if (n64 < 1 || h64 < 1 || w64 < 1)
        luaL_argerror(L, 2, "the image is empty");
    if (n64 > (int64_t)AIM_PNG_MAX_PIXELS || h64 > (int64_t)AIM_PNG_MAX_PIXELS ||
        w64 > (int64_t)AIM_PNG_MAX_PIXELS ||
        (double)n64 * (double)h64 * (double)w64 > (double)AIM_PNG_MAX_PIXELS) {
        char s[160];
        l_shape_str(t->shape, t->ndim, s, sizeof s);
        luaL_argerror(L, 2, lua_pushfstring(L, "the image %s would be too large (over %I pixels)",
                                            s, (lua_Integer)AIM_PNG_MAX_PIXELS));
    }
    int n = (int)n64, c = (int)c64, h = (int)h64, w = (int)w64;
    int grid = t->ndim == 4;
    int cols = (int)l_opt_int(L, 3, "cols", (lua_Integer)ceil(sqrt((double)n)), 1, 1 << 16);
    int scale = (int)l_opt_int(L, 3, "scale", 1, 1, 64);
    int border = (int)l_opt_int(L, 3, "border", grid ? 1 : 0, 0, 64);
    int bval = (int)l_opt_int(L, 3, "border_value", 128, 0, 255);
    lua_Integer range = l_opt_int(L, 3, "range", 0, 0, 255);
    if (range != 0 && range != 1 && range != 255)
        luaL_argerror(L, 3, "option 'range' must be 1 or 255");
    if (!grid && (scale != 1 || border != 0))
        luaL_argerror(L, 3, "scale and border apply to grids [N,C,H,W] only");
    if ((double)h * w * scale * scale * n > (double)AIM_PNG_MAX_PIXELS)
        luaL_argerror(L, 2, "the image would be too large");
    size_t numel = l_tensor_numel(t);
    float mult = 255.0f;
    if (range == 255) {
        mult = 1.0f;
    } else if (range == 0) {
        float mx = 0;
        for (size_t i = 0; i < numel; i++)
            mx = t->data[i] > mx ? t->data[i] : mx;
        if (mx > 1.0f)
            mult = 1.0f;
    }
    uint8_t *pix = lua_newuserdatauv(L, numel, 0); /* ... pix (collected with the state) */
    for (size_t i = 0; i < numel; i++) {
        float v = t->data[i] * mult;
        pix[i] = (uint8_t)(v >= 255.0f ? 255 : v > 0 ? lrintf(v) : 0);
    }
    aim_err e;
    int rc;
    if (grid) {
        rc = aim_png_write_grid(path, pix, n, c, h, w, cols, border, scale, (uint8_t)bval, &e);
    } else {
        /* planar [C,H,W] -> interleaved */
        uint8_t *il = lua_newuserdatauv(L, numel, 0);
        for (int k = 0; k < c; k++)
            for (size_t p = 0; p < (size_t)h * w; p++)
                il[p * c + k] = pix[(size_t)k * h * w + p];
        rc = aim_png_write(path, il, w, h, c, &e);
    }
    if (rc != 0)
        return l_fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg png_funcs[] = {
    {"write", png_write},
    {NULL, NULL},
};

void l_open_png(lua_State *L)
{
    luaL_newlib(L, png_funcs); /* aim png */
    lua_setfield(L, -2, "png");
}
