/*
 * l_inspect.c - looking inside a trunk from Lua (the numbers are
 * aim/inspect.h's), and what the TUI's Inspect view shows:
 *
 *   m:pca(x, {block=l, k=3})     -> [B,N,k] block l's tokens (raw output, no
 *                                   mask) projected on their first k principal
 *                                   components over all B*N tokens, and
 *                                   {block, variance = {..k}, explained =
 *                                   {..k}, total, mean = [D], components =
 *                                   [k,D]}; block defaults to the last
 *   m:stats(x)                   -> {{block, norm, cosine, erank}, ...} per
 *                                   block (definitions in aim/inspect.h)
 *   m:patch_loss(x, {prefix=S})  -> [B,N] the next-patch loss per patch (NaN
 *                                   where nothing is predicted: j < S), and
 *                                   the mean (the AIM loss)
 *   aim.inspect(m, x, {probe=, prefix=1, k=3, publish=true, source=})
 *                                -> {pca = [L,B,N,k] (r.pca[l] is block l),
 *                                   explained = {{..k} per block}, stats =
 *                                   m:stats, error = [B,N], loss, attention
 *                                   = [B,NH,N] (with an attentive probe: an
 *                                   aim.probe or an aim.probe result), grid,
 *                                   published}; with publish (the default) the
 *                                   first 8 images go to the Inspect view
 *                                   (the TUI's `i`) when they fit it
 *   aim.maps.rgb(p [, {size=}])  [M,N,k] (or [N,k]) -> [M,3,s,s] in [0,1]:
 *                                   PCA projections as colours (each component
 *                                   min-max scaled over all M*N rows), each
 *                                   patch a square of pixels (s = size,
 *                                   default sqrt(N))
 *   aim.maps.heat(t [, {size=, min=, max=}])  [..., N] -> [M,3,s,s]: heat
 *                                   maps (inferno), each of the M maps scaled
 *                                   from min (default 0) to its own maximum
 *                                   unless max is given; NaN is grey
 *   aim.maps.input(m, x)         -> [B,3,H,W] in [0,1]: the images as the
 *                                   eye sees them (the model's channel
 *                                   normalisation undone, grey made RGB)
 * so that any map is one aim.png.write away. The computing is the
 * library's (aim_inspect_maps in src/model/inspect.c, the view in
 * src/engine/views.c); l_inspect_publish() is the same for a pretraining
 * job's board (l_board.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/inspect.h"
#include "lua/l_aim.h"

/* ------------------------------------------------------------ m:pca, m:stats */

static const char *const pca_options[] = {"block", "k", NULL};

int l_model_pca(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    l_check_options(L, 3, pca_options);
    lua_settop(L, 3);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    int N = aim_config_tokens(c), D = c->width;
    int block = (int)l_opt_int(L, 3, "block", c->depth, 1, c->depth);
    int k = (int)l_opt_int(L, 3, "k", 3, 1, D);
    if ((int64_t)B * N < 2)
        return luaL_argerror(L, 2, "PCA needs at least 2 tokens");
    int64_t sp[3] = {B, N, k}, sm[1] = {D}, sc[2] = {k, D};
    l_tensor *proj = l_tensor_push(L, 3, sp);    /* proj */
    lua_createtable(L, 0, 6);                    /* proj info */
    l_tensor *mean = l_tensor_push(L, 1, sm);
    lua_setfield(L, -2, "mean");
    l_tensor *comps = l_tensor_push(L, 2, sc);
    lua_setfield(L, -2, "components");
    float *var = lua_newuserdatauv(L, (size_t)k * sizeof *var, 0); /* proj info var */
    double total = 0;
    aim_err e;
    if (aim_inspect_pca(m, x->data, B, block, k, proj->data, mean->data, comps->data, var,
                        &total, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    /* the variance tables while var (the userdata on top) is still anchored */
    for (int pass = 0; pass < 2; pass++) {
        lua_createtable(L, k, 0); /* proj info var t */
        for (int j = 0; j < k; j++) {
            lua_pushnumber(L, pass ? (total > 0 ? var[j] / total : 0) : var[j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -3, pass ? "explained" : "variance");
    }
    lua_pop(L, 1); /* proj info */
    l_set_int(L, "block", block);
    l_set_num(L, "total", total);
    return 2;
}

static void push_stats(lua_State *L, const aim_token_stats *st, int L_depth)
{
    lua_createtable(L, L_depth, 0);
    for (int l = 0; l < L_depth; l++) {
        lua_createtable(L, 0, 4);
        l_set_int(L, "block", l + 1);
        l_set_num(L, "norm", st[l].norm);
        l_set_num(L, "cosine", st[l].cosine);
        l_set_num(L, "erank", st[l].erank);
        lua_rawseti(L, -2, l + 1);
    }
}

int l_model_stats(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    aim_token_stats *st = lua_newuserdatauv(L, (size_t)c->depth * sizeof *st, 0); /* st */
    aim_err e;
    if (aim_inspect_stats(m, x->data, B, st, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    push_stats(L, st, c->depth);
    return 1;
}

static const char *const patch_loss_options[] = {"prefix", NULL};

int l_model_patch_loss(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    l_check_options(L, 3, patch_loss_options);
    lua_settop(L, 3);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    int N = aim_config_tokens(c);
    int32_t *pre = l_read_prefixes(L, 3, B, N); /* ... pre */
    int64_t shape[2] = {B, N};
    l_tensor *err = l_tensor_push(L, 2, shape); /* ... pre err */
    aim_err e;
    if (aim_inspect_patch_loss(m, x->data, B, pre, err->data, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_pushnumber(L, aim_nanmean(err->data, (size_t)B * N));
    return 2;
}

/* ------------------------------------------------------------ the inspection */

/* aim_inspect_maps with an l_probe (NULL: no attention) */
static int compute(aim_model *m, const float *x, int B, int k, int S, const l_probe *p,
                   float *pca, float *expl, aim_token_stats *stats, float *err, float *att,
                   aim_err *e)
{
    return aim_inspect_maps(m, x, B, k, S, p ? p->p : NULL, p ? p->blocks : NULL,
                            p ? p->nblocks : 0, pca, expl, stats, err, att, e);
}

int l_inspect_publish(aim_engine *eng, aim_model *m, const float *x, int B, const l_probe *p,
                      int S, const char *source, int64_t step, aim_err *e)
{
    char d[160] = "";
    int attentive = p && p->p && aim_probe_get_kind(p->p) == AIM_PROBE_ATTENTIVE;
    if (attentive)
        l_probe_describe(p, d, sizeof d);
    return aim_inspect_publish(eng, m, x, B, attentive ? p->p : NULL, attentive ? p->blocks : NULL,
                               attentive ? p->nblocks : 0, d, S, source, step, e);
}

static const char *const inspect_options[] = {"probe", "prefix", "k", "publish", "source", NULL};

static int l_inspect(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    l_check_options(L, 3, inspect_options);
    lua_settop(L, 3);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    int N = aim_config_tokens(c), Ld = c->depth, D = c->width;
    int S = (int)l_opt_int(L, 3, "prefix", 1, 1, N - 1);
    int k = (int)l_opt_int(L, 3, "k", 3, 1, D < 64 ? D : 64);
    int publish = l_opt_bool(L, 3, "publish", 1);
    const char *source = l_opt_str(L, 3, "source", "aim.inspect");
    l_opt_get(L, 3, "probe"); /* 4: probe|nil */
    l_probe *p = l_probe_opt(L, 4);
    int NH = 0;
    if (p) {
        if (aim_probe_get_kind(p->p) != AIM_PROBE_ATTENTIVE)
            return luaL_argerror(L, 3, "option 'probe': a linear probe has no attention maps");
        int pN, pD;
        aim_probe_shape(p->p, &pN, &pD, &NH);
        if (pN != N || pD != D)
            return luaL_argerror(L, 3, lua_pushfstring(L, "option 'probe': it takes %d tokens "
                                                          "of width %d, the model gives %d of "
                                                          "width %d", pN, pD, N, D));
        for (int i = 0; i < p->nblocks; i++)
            if (p->blocks[i] > Ld)
                return luaL_argerror(L, 3, "option 'probe': it reads a block the model lacks");
    }
    if ((int64_t)B * N < 2)
        return luaL_argerror(L, 2, "PCA needs at least 2 tokens");
    lua_createtable(L, 0, 8); /* 5: res */
    int64_t sp[4] = {Ld, B, N, k}, se[2] = {B, N}, sa[3] = {B, NH, N};
    l_tensor *pca = l_tensor_push(L, 4, sp);
    lua_setfield(L, 5, "pca");
    l_tensor *err = l_tensor_push(L, 2, se);
    lua_setfield(L, 5, "error");
    l_tensor *att = NULL;
    if (p) {
        att = l_tensor_push(L, 3, sa);
        lua_setfield(L, 5, "attention");
    }
    float *expl = lua_newuserdatauv(L, (size_t)Ld * k * sizeof *expl, 0);         /* 6 */
    aim_token_stats *st = lua_newuserdatauv(L, (size_t)Ld * sizeof *st, 0); /* 7 */
    aim_err e;
    if (compute(m, x->data, B, k, S, p, pca->data, expl, st, err->data, att ? att->data : NULL,
                &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_settop(L, 7);
    lua_pushvalue(L, 5); /* ... res */
    lua_createtable(L, Ld, 0);
    for (int l = 0; l < Ld; l++) {
        lua_createtable(L, k, 0);
        for (int j = 0; j < k; j++) {
            lua_pushnumber(L, expl[(size_t)l * k + j]);
            lua_rawseti(L, -2, j + 1);
        }
        lua_rawseti(L, -2, l + 1);
    }
    lua_setfield(L, -2, "explained");
    push_stats(L, st, Ld);
    lua_setfield(L, -2, "stats");
    l_set_num(L, "loss", aim_nanmean(err->data, (size_t)B * N));
    l_set_int(L, "grid", c->image / c->patch);
    l_set_int(L, "prefix", S);
    int published = 0;
    if (publish) {
        if (aim_inspect_view_fits(c, &e) == 0) {
            char d[160] = "";
            if (p)
                l_probe_describe(p, d, sizeof d);
            aim_inspect_view *v = aim_xmalloc(sizeof *v);
            aim_inspect_view_fill(v, c, x->data, B, k, S, pca->data, expl, st, err->data,
                                  att ? att->data : NULL, NH, d, source, 0);
            aim_engine_job_inspect(l_engine(L), v);
            free(v);
            published = 1;
        } else {
            l_set_str(L, "note", e.msg);
        }
    }
    l_set_bool(L, "published", published);
    return 1;
}

/* ------------------------------------------------------------ aim.maps */

static const char *const maps_options[] = {"size", "min", "max", NULL};

/* the side of a map of N patches (N a square), or raise */
static int map_side(lua_State *L, int idx, int64_t N)
{
    int64_t g = (int64_t)llround(sqrt((double)N));
    if (g * g != N)
        luaL_argerror(L, idx, lua_pushfstring(L, "%I patches do not make a square map",
                                              (lua_Integer)N));
    return (int)g;
}

/* rows of a tensor whose last dimensions are [N] (heat) or [N, k] (rgb): M */
static int64_t leading(const l_tensor *t, int tail)
{
    int64_t M = 1;
    for (int d = 0; d < t->ndim - tail; d++)
        M *= t->shape[d];
    return M;
}

static int maps_rgb(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    l_check_options(L, 2, maps_options);
    if (t->ndim != 2 && t->ndim != 3)
        return luaL_argerror(L, 1, "expected projections [M,N,k] or [N,k]");
    int64_t M = leading(t, 2), N = t->shape[t->ndim - 2];
    luaL_argcheck(L, t->shape[t->ndim - 1] <= 1 << 20, 1, "over 2^20 projections per patch");
    int k = (int)t->shape[t->ndim - 1];
    int g = map_side(L, 1, N);
    int s = (int)l_opt_int(L, 2, "size", g, 1, 4096);
    int64_t shape[4] = {M, 3, s, s};
    l_tensor *out = l_tensor_push(L, 4, shape);
    uint8_t *rgb = lua_newuserdatauv(L, (size_t)(M * N * 3), 0);
    aim_pca_rgb(t->data, M * N, k, rgb);
    for (int64_t i = 0; i < M; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++) {
                    int64_t cell = (int64_t)(y * g / s) * g + x * g / s;
                    out->data[((i * 3 + ch) * s + y) * s + x] = rgb[(i * N + cell) * 3 + ch] / 255.0f;
                }
    lua_pop(L, 1);
    return 1;
}

static int maps_heat(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    l_check_options(L, 2, maps_options);
    int64_t M = leading(t, 1), N = t->shape[t->ndim - 1];
    int g = map_side(L, 1, N);
    int s = (int)l_opt_int(L, 2, "size", g, 1, 4096);
    double lo = l_opt_num(L, 2, "min", 0, -HUGE_VAL, HUGE_VAL);
    int fixed = l_opt_get(L, 2, "max") != LUA_TNIL;
    lua_pop(L, 1);
    double hi_fixed = fixed ? l_opt_num(L, 2, "max", 1, -HUGE_VAL, HUGE_VAL) : 0;
    int64_t shape[4] = {M, 3, s, s};
    l_tensor *out = l_tensor_push(L, 4, shape);
    for (int64_t i = 0; i < M; i++) {
        const float *v = t->data + i * N;
        double hi = hi_fixed;
        if (!fixed) {
            hi = -HUGE_VAL;
            for (int64_t j = 0; j < N; j++)
                if (!isnan(v[j]) && v[j] > hi)
                    hi = v[j];
        }
        double span = hi > lo ? hi - lo : 1;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) {
                int64_t cell = (int64_t)(y * g / s) * g + x * g / s;
                uint32_t c = aim_heat_rgb(isnan(v[cell]) ? NAN : (float)((v[cell] - lo) / span));
                for (int ch = 0; ch < 3; ch++)
                    out->data[((i * 3 + ch) * s + y) * s + x] = (c >> (16 - 8 * ch) & 255) / 255.0f;
            }
    }
    return 1;
}

static int maps_input(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    const aim_config *c = aim_model_config(m);
    int C = c->channels, H = c->image;
    int B = l_tensor_check_images(L, 2, x, C, H, H);
    if (C != 1 && C != 3)
        return luaL_argerror(L, 2, "images of 1 or 3 channels");
    int64_t shape[4] = {B, 3, H, H};
    l_tensor *out = l_tensor_push(L, 4, shape);
    size_t plane = (size_t)H * H;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < 3; ch++) {
            int src = C == 1 ? 0 : ch;
            for (size_t q = 0; q < plane; q++)
                out->data[((size_t)b * 3 + ch) * plane + q] =
                    aim_pixel_unnorm(c, x->data[((size_t)b * C + src) * plane + q], src);
        }
    return 1;
}

static const luaL_Reg maps_funcs[] = {
    {"rgb", maps_rgb}, {"heat", maps_heat}, {"input", maps_input}, {NULL, NULL},
};

void l_open_inspect(lua_State *L)
{
    lua_pushcfunction(L, l_inspect);
    lua_setfield(L, -2, "inspect");
    luaL_newlib(L, maps_funcs);
    lua_setfield(L, -2, "maps");
}
