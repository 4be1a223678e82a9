/*
 * l_model.c - aim.model, aim.load, aim.preset: AIM models in Lua (userdata
 * "aim.model").
 *
 *   aim.model "tiny"                           a preset: micro, tiny, small
 *   aim.model{preset=, image=, channels=, patch=, width=, depth=, heads=,
 *             head_width=, head_depth=, norm_eps=, mean=, std=, seed=}
 *                                              fields override the preset
 *                                              (default "tiny")
 *   aim.load(path)                             .safetensors weights, or
 *                                              nil, message
 *   aim.preset(name)                           the preset's config table
 * Methods: m:save(path) / m:export(path) (safetensors; true or nil, message),
 * m:loss(x, {prefix=S}) -> number, m:predict(x, {prefix=S}) -> [B,N,P]
 * tensor and the loss, m:features(x, {blocks={...}}) -> [B,N,D],
 * m:params() -> {{name=, shape=, trainable=, numel= [, lora=true]}, ...}
 * in table order, m:param(name) -> a copy as a tensor, m:config() -> table,
 * m:nparams() -> trunk, head, m:gemm_peak{batch=64, seconds=0.5} -> the
 * machine's sgemm peak on the model's GEMM shapes (aim/prof.h; `aim
 * bench`'s, with its rows) and the FLOPs per image of a training step. LoRA (shared/AIM.md): m:add_lora{rank=8, alpha=rank,
 * blocks={..} (default every block), seed=} adds adapters (B = 0, so the
 * model is unchanged) and returns m:lora(); m:lora() -> nil or {rank =,
 * alpha =, merged =, blocks = {..}, params = (adapter values)};
 * m:merge_lora() / m:unmerge_lora() fold the adapters into the weights and
 * back (both raise in the wrong state); m:save_lora(path) (the adapters
 * alone) and m:load_lora(path) (onto a model without adapters and with the
 * same trunk) return true or nil, message. m:params() lists the adapters
 * too, with their trainable flag. The methods that change the model refuse
 * while a job (aim.lora, aim.pretrain) uses it. m:pca, m:stats,
 * m:patch_loss: l_inspect.c. x is a [B,C,H,W] tensor
 * normalised as the model sees it; prefix is S in 1..N-1 (default 1) for
 * every image or a table of B values.
 * Large batches are processed in chunks of 64 images.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/prof.h"
#include "lua/l_aim.h"

#define CHUNK 64

l_model *l_model_check(lua_State *L, int idx)
{
    l_model *m = luaL_checkudata(L, idx, L_MODEL_MT);
    if (!m->m)
        luaL_argerror(L, idx, "the model is closed");
    return m;
}

l_model *l_model_push_empty(lua_State *L)
{
    l_model *m = lua_newuserdatauv(L, sizeof *m, 0);
    memset(m, 0, sizeof *m);
    for (int l = 0; l < 64; l++)
        m->probe_top1[l] = NAN;
    luaL_setmetatable(L, L_MODEL_MT);
    return m;
}

static void push_config(lua_State *L, const aim_config *c)
{
    lua_createtable(L, 0, 12);
    l_set_int(L, "image", c->image);
    l_set_int(L, "channels", c->channels);
    l_set_int(L, "patch", c->patch);
    l_set_int(L, "width", c->width);
    l_set_int(L, "depth", c->depth);
    l_set_int(L, "heads", c->heads);
    l_set_int(L, "head_width", c->head_width);
    l_set_int(L, "head_depth", c->head_depth);
    l_set_num(L, "norm_eps", c->norm_eps);
    if (c->nmean) {
        for (int pass = 0; pass < 2; pass++) {
            lua_createtable(L, c->nmean, 0);
            for (int i = 0; i < c->nmean; i++) {
                lua_pushnumber(L, pass ? c->std[i] : c->mean[i]);
                lua_rawseti(L, -2, i + 1);
            }
            lua_setfield(L, -2, pass ? "std" : "mean");
        }
    }
}

static const char *const preset_names[] = {"micro", "tiny", "small", NULL};

static int l_preset(lua_State *L)
{
    int k = luaL_checkoption(L, 1, NULL, preset_names);
    aim_config c;
    aim_config_preset(preset_names[k], &c, NULL);
    push_config(L, &c);
    return 1;
}

/* mean or std: a table of `channels` numbers */
static int read_floats(lua_State *L, int idx, const char *key, float *out, int want)
{
    if (l_opt_get(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1) || luaL_len(L, -1) != want)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a table of %d numbers",
                                              key, want));
    for (int i = 0; i < want; i++) {
        lua_rawgeti(L, -1, i + 1);
        int isnum;
        out[i] = (float)lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must hold numbers", key));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return want;
}

/* Take a model's parameter and gradient slabs from aim.memory_limit before
 * they are allocated: 0, or -1 with the message pushed */
static int charge(lua_State *L, l_model *m, const aim_config *c, const char *what)
{
    uint64_t bytes = 2 * (aim_config_trunk_params(c) + aim_config_head_params(c)) *
                     sizeof(float);
    l_mem *mem = l_mem_of(L);
    if (bytes > SIZE_MAX || l_mem_take(mem, (size_t)bytes) != 0) {
        char need[32], st[160];
        aim_fmt_bytes(need, sizeof need, bytes);
        l_mem_status(mem, st, sizeof st);
        lua_pushfstring(L, "%s: the model needs %s for its parameters and gradients (%s)",
                        what, need, st);
        return -1;
    }
    m->charged = (size_t)bytes;
    return 0;
}

int l_model_charge(lua_State *L, l_model *m)
{
    return charge(L, m, aim_model_config(m->m), "aim.model");
}

static void uncharge(lua_State *L, l_model *m)
{
    l_mem_give(l_mem_of(L), m->charged);
    m->charged = 0;
}

static const char *const model_options[] = {
    "preset", "image", "channels", "patch", "width", "depth", "heads", "head_width",
    "head_depth", "norm_eps", "mean", "std", "seed", NULL,
};

static int l_model_new(lua_State *L)
{
    aim_config c;
    aim_err e;
    uint64_t seed = 0;
    if (lua_type(L, 1) == LUA_TSTRING) {
        int k = luaL_checkoption(L, 1, NULL, preset_names);
        aim_config_preset(preset_names[k], &c, NULL);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        l_check_options(L, 1, model_options);
        const char *preset = l_opt_str(L, 1, "preset", "tiny");
        if (aim_config_preset(preset, &c, &e) != 0)
            return luaL_argerror(L, 1, e.msg);
        for (const aim_config_field *f = aim_config_fields; f->name; f++) {
            int *v = (int *)((char *)&c + f->offset);
            *v = (int)l_opt_int(L, 1, f->name, *v, f->lo, f->hi);
        }
        c.norm_eps = (float)l_opt_num(L, 1, "norm_eps", c.norm_eps, 1e-12, 0.5);
        int nm = read_floats(L, 1, "mean", c.mean, c.channels);
        int ns = read_floats(L, 1, "std", c.std, c.channels);
        if (nm != ns)
            return luaL_argerror(L, 1, "give both mean and std, or neither");
        c.nmean = nm;
        seed = (uint64_t)l_opt_int(L, 1, "seed", 0, 0, LUA_MAXINTEGER);
    }
    if (aim_config_validate(&c, &e) != 0)
        return luaL_argerror(L, 1, e.msg);
    l_model *m = l_model_push_empty(L);
    if (charge(L, m, &c, "aim.model") != 0)
        return lua_error(L);
    m->m = aim_model_new(&c, seed, &e);
    if (!m->m) {
        uncharge(L, m);
        return luaL_error(L, "aim.model: %s", e.msg);
    }
    return 1;
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    l_model *m = l_model_push_empty(L);
    aim_err e;
    /* the header first: the model's size is charged before its slabs exist */
    aim_st_file *f = aim_st_peek(path, &e);
    aim_config c;
    int bad = !f || aim_model_check_st(f, &c, &e) != 0;
    aim_st_close(f);
    if (bad)
        return l_fail(L, e.msg);
    if (charge(L, m, &c, path) != 0)
        return l_fail(L, lua_tostring(L, -1));
    m->m = aim_model_load(path, &e);
    if (!m->m) {
        uncharge(L, m);
        return l_fail(L, e.msg);
    }
    return 1;
}

/* ------------------------------------------------------------ methods */

static int m_gc(lua_State *L)
{
    l_model *m = luaL_checkudata(L, 1, L_MODEL_MT);
    if (m->busy)
        return luaL_error(L, "the model is in use by a running job");
    aim_model_free(m->m);
    m->m = NULL;
    uncharge(L, m);
    return 0;
}

static int m_tostring(lua_State *L)
{
    l_model *m = luaL_checkudata(L, 1, L_MODEL_MT);
    if (!m->m) {
        lua_pushstring(L, "aim.model (closed)");
        return 1;
    }
    const aim_config *c = aim_model_config(m->m);
    char buf[256];
    snprintf(buf, sizeof buf,
             "aim.model %dx%dx%d patch %d, D=%d L=%d heads=%d, head %dx%d "
             "(%.2fM trunk + %.2fM head params)",
             c->channels, c->image, c->image, c->patch, c->width, c->depth, c->heads,
             c->head_width, c->head_depth, aim_config_trunk_params(c) / 1e6,
             aim_config_head_params(c) / 1e6);
    lua_pushstring(L, buf);
    return 1;
}

static int m_save(lua_State *L)
{
    l_model *m = l_model_check(L, 1);
    const char *path = luaL_checkstring(L, 2);
    aim_err e;
    if (aim_model_save(m->m, path, &e) != 0)
        return l_fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_config(lua_State *L)
{
    push_config(L, aim_model_config(l_model_check(L, 1)->m));
    return 1;
}

static int m_nparams(lua_State *L)
{
    const aim_config *c = aim_model_config(l_model_check(L, 1)->m);
    lua_pushinteger(L, (lua_Integer)aim_config_trunk_params(c));
    lua_pushinteger(L, (lua_Integer)aim_config_head_params(c));
    return 2;
}

/* m:precision([p]) -> "fp32" | "bf16": the model's arithmetic (aim/bf16.h);
 * with p, set it first (a bad name raises; bf16 where it cannot run returns
 * nil, message). Jobs given their own `precision` set it for the job only. */
static int m_precision(lua_State *L)
{
    l_model *lm = l_model_check(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        aim_precision p;
        aim_err e;
        if (aim_precision_parse(luaL_checkstring(L, 2), &p, &e) != 0)
            return luaL_argerror(L, 2, e.msg);
        if (lm->busy)
            return luaL_error(L, "the model is in use by a running job");
        if (aim_model_set_precision(lm->m, p, &e) != 0)
            return l_fail(L, e.msg);
    }
    lua_pushstring(L, aim_precision_name(aim_model_precision(lm->m)));
    return 1;
}

static const char *const peak_options[] = {"batch", "seconds", NULL};

static int m_gemm_peak(lua_State *L)
{
    const aim_config *c = aim_model_config(l_model_check(L, 1)->m);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    l_check_options(L, 2, peak_options);
    int batch = (int)l_opt_int(L, 2, "batch", 64, 1, 4096);
    double seconds = l_opt_num(L, 2, "seconds", 0.5, 0.001, 600);
    aim_peak pk;
    aim_gemm_peak(c, batch, seconds, &pk);
    lua_createtable(L, 0, 6);
    l_set_num(L, "gflops", pk.flops_per_s / 1e9);
    l_set_num(L, "gflops_per_cpu", pk.flops_per_cpu_s / 1e9);
    l_set_num(L, "cores", pk.cores);
    l_set_num(L, "train_flops", 3 * aim_config_flops_loss(c, AIM_LOSS_ROWS(c)));
    l_set_int(L, "batch", batch);
    lua_createtable(L, pk.nrows, 0); /* r rows */
    for (int i = 0; i < pk.nrows; i++) {
        const aim_gemm_row *g = &pk.row[i];
        lua_createtable(L, 0, 6);
        l_set_str(L, "name", g->name);
        l_set_int(L, "M", g->M);
        l_set_int(L, "K", g->K);
        l_set_int(L, "N", g->N);
        l_set_int(L, "count", g->count);
        l_set_num(L, "gflops", g->flops_per_s / 1e9);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "rows");
    return 1;
}

static int m_params(lua_State *L)
{
    aim_params *p = aim_model_params(l_model_check(L, 1)->m);
    lua_createtable(L, p->n, 0);
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        lua_createtable(L, 0, 4);
        l_set_str(L, "name", t->name);
        lua_createtable(L, t->ndim, 0);
        for (int d = 0; d < t->ndim; d++) {
            lua_pushinteger(L, t->shape[d]);
            lua_rawseti(L, -2, d + 1);
        }
        lua_setfield(L, -2, "shape");
        l_set_bool(L, "trainable", !(t->flags & AIM_P_FROZEN));
        if (t->flags & AIM_P_LORA)
            l_set_bool(L, "lora", 1);
        l_set_int(L, "numel", (lua_Integer)t->numel);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_param(lua_State *L)
{
    aim_params *p = aim_model_params(l_model_check(L, 1)->m);
    const char *name = luaL_checkstring(L, 2);
    int i = aim_params_find(p, name);
    if (i < 0)
        return luaL_argerror(L, 2, lua_pushfstring(L, "no parameter named '%s'", name));
    const aim_param *t = &p->t[i];
    l_tensor *o = l_tensor_push(L, t->ndim, t->shape);
    memcpy(o->data, p->data + t->offset, t->numel * sizeof(float));
    return 1;
}

int32_t *l_read_prefixes(lua_State *L, int idx, int B, int N)
{
    int32_t *pre = lua_newuserdatauv(L, (size_t)B * sizeof *pre, 0); /* ... pre */
    int t = l_opt_get(L, idx, "prefix");                              /* ... pre v */
    if (t == LUA_TTABLE) {
        if (luaL_len(L, -1) != B)
            luaL_argerror(L, idx, lua_pushfstring(L, "option 'prefix' must hold %d values", B));
        for (int b = 0; b < B; b++) {
            lua_rawgeti(L, -1, b + 1);
            int isint;
            lua_Integer s = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || s < 1 || s > N - 1)
                luaL_argerror(L, idx, lua_pushfstring(L, "prefix values must be in 1..%d", N - 1));
            pre[b] = (int32_t)s;
        }
        lua_pop(L, 1);
        return pre;
    }
    lua_pop(L, 1);
    int s = (int)l_opt_int(L, idx, "prefix", 1, 1, N - 1);
    for (int b = 0; b < B; b++)
        pre[b] = s;
    return pre;
}

static const char *const loss_options[] = {"prefix", NULL};

/* m:loss and m:predict: forward in chunks; the loss is the mean over every
 * image's targets (N - S_b each), as one big batch would give */
static int forward(lua_State *L, int want_pred)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    l_check_options(L, 3, loss_options);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    int N = aim_config_tokens(c), P = aim_config_patch_dim(c);
    int32_t *pre = l_read_prefixes(L, 3, B, N); /* ... pre */
    l_tensor *out = NULL;
    if (want_pred) {
        int64_t shape[3] = {B, N, P};
        out = l_tensor_push(L, 3, shape); /* ... pre out */
    }
    aim_err e;
    if (aim_model_reserve(m, B < CHUNK ? B : CHUNK, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    size_t img = (size_t)c->channels * c->image * c->image;
    double sum = 0, count = 0;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        float l = aim_model_forward(m, x->data + (size_t)b0 * img, pre + b0, nb);
        double targets = 0;
        for (int b = 0; b < nb; b++)
            targets += N - pre[b0 + b];
        sum += (double)l * targets;
        count += targets;
        if (out)
            memcpy(out->data + (size_t)b0 * N * P, aim_model_predictions(m),
                   (size_t)nb * N * P * sizeof(float));
    }
    lua_pushnumber(L, sum / count);
    return want_pred ? 2 : 1;
}

static int m_loss(lua_State *L)
{
    return forward(L, 0);
}

static int m_predict(lua_State *L)
{
    return forward(L, 1);
}

static const char *const features_options[] = {"blocks", NULL};

static int m_features(lua_State *L)
{
    aim_model *m = l_model_check(L, 1)->m;
    l_tensor *x = l_tensor_check(L, 2);
    l_check_options(L, 3, features_options);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 2, x, c->channels, c->image, c->image);
    int blocks[512], nb = 0;
    if (l_opt_get(L, 3, "blocks") == LUA_TNIL) {
        blocks[nb++] = c->depth; /* the last block */
    } else {
        if (!lua_istable(L, -1))
            return luaL_argerror(L, 3, "option 'blocks' must be a table of block numbers");
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > 512)
            return luaL_argerror(L, 3, "option 'blocks' must list 1..512 blocks");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            int isint;
            lua_Integer k = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || k < 1 || k > c->depth)
                return luaL_argerror(L, 3, lua_pushfstring(L, "blocks are numbered 1..%d",
                                                           c->depth));
            blocks[nb++] = (int)k;
        }
    }
    lua_pop(L, 1);
    int N = aim_config_tokens(c), D = c->width;
    int64_t shape[3] = {B, N, D};
    l_tensor *out = l_tensor_push(L, 3, shape);
    size_t img = (size_t)c->channels * c->image * c->image;
    aim_err e;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int n = B - b0 < CHUNK ? B - b0 : CHUNK;
        if (aim_model_features(m, x->data + (size_t)b0 * img, n, blocks, nb,
                               out->data + (size_t)b0 * N * D, &e) != 0)
            return luaL_error(L, "%s", e.msg);
    }
    return 1;
}

/* ------------------------------------------------------------ LoRA */

/* the model of a method that changes it: refused while a job uses it */
static aim_model *model_idle(lua_State *L)
{
    l_model *m = l_model_check(L, 1);
    if (m->busy)
        luaL_error(L, "the model is in use by a running job");
    return m->m;
}

/* nil without adapters, else {rank =, alpha =, merged =, blocks = {..}, params =} */
static int push_lora(lua_State *L, aim_model *m)
{
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    if (!li.rank) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 5);
    l_set_int(L, "rank", li.rank);
    l_set_num(L, "alpha", li.alpha);
    l_set_bool(L, "merged", li.merged);
    int nb = li.nblocks < 64 ? li.nblocks : 64;
    lua_createtable(L, nb, 0);
    for (int k = 0; k < nb; k++) {
        lua_pushinteger(L, li.blocks[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "blocks");
    l_set_int(L, "params", (lua_Integer)li.params);
    return 1;
}

static int m_lora(lua_State *L)
{
    return push_lora(L, l_model_check(L, 1)->m);
}

static const char *const add_lora_options[] = {"rank", "alpha", "blocks", "seed", NULL};

static int m_add_lora(lua_State *L)
{
    aim_model *m = model_idle(L);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    l_check_options(L, 2, add_lora_options);
    const aim_config *c = aim_model_config(m);
    int def = AIM_LORA_DEFAULT_RANK < c->width ? AIM_LORA_DEFAULT_RANK : c->width;
    int rank = (int)l_opt_int(L, 2, "rank", def, 1, c->width);
    float alpha = (float)l_opt_num(L, 2, "alpha", rank, 1e-6, 1e6);
    uint64_t seed = (uint64_t)l_opt_int(L, 2, "seed", 0, 0, LUA_MAXINTEGER);
    int blocks[512], nb = 0;
    if (l_opt_get(L, 2, "blocks") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return luaL_argerror(L, 2, "option 'blocks' must be a list of block numbers");
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > c->depth || n > 512)
            return luaL_argerror(L, 2, lua_pushfstring(L, "option 'blocks' must list 1..%d "
                                                          "blocks", c->depth));
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            int isint;
            lua_Integer k = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || k < 1 || k > c->depth)
                return luaL_argerror(L, 2, lua_pushfstring(L, "option 'blocks': blocks are "
                                                              "numbered 1..%d", c->depth));
            blocks[nb++] = (int)k;
        }
    }
    lua_pop(L, 1);
    aim_err e;
    if (aim_model_lora_add(m, rank, alpha, blocks, nb, seed, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    return push_lora(L, m);
}

static int m_merge_lora(lua_State *L)
{
    aim_err e;
    if (aim_model_lora_merge(model_idle(L), &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_unmerge_lora(lua_State *L)
{
    aim_err e;
    if (aim_model_lora_unmerge(model_idle(L), &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_save_lora(lua_State *L)
{
    l_model *m = l_model_check(L, 1);
    const char *path = luaL_checkstring(L, 2);
    aim_err e;
    if (aim_model_save_lora(m->m, path, &e) != 0)
        return l_fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int m_load_lora(lua_State *L)
{
    aim_model *m = model_idle(L);
    const char *path = luaL_checkstring(L, 2);
    aim_err e;
    if (aim_model_load_lora(m, path, &e) != 0)
        return l_fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg model_methods[] = {
    {"save", m_save},         {"export", m_save},   {"loss", m_loss},
    {"predict", m_predict},   {"features", m_features}, {"params", m_params},
    {"param", m_param},       {"config", m_config}, {"nparams", m_nparams},
    {"precision", m_precision},
    {"gemm_peak", m_gemm_peak},
    {"add_lora", m_add_lora}, {"lora", m_lora},     {"merge_lora", m_merge_lora},
    {"unmerge_lora", m_unmerge_lora}, {"save_lora", m_save_lora},
    {"load_lora", m_load_lora},
    {"pca", l_model_pca},     {"stats", l_model_stats}, {"patch_loss", l_model_patch_loss},
    {"close", m_gc},          {NULL, NULL},
};

static const luaL_Reg model_meta[] = {
    {"__gc", m_gc}, {"__close", m_gc}, {"__tostring", m_tostring}, {NULL, NULL},
};

static const luaL_Reg model_funcs[] = {
    {"model", l_model_new}, {"load", l_load}, {"preset", l_preset}, {NULL, NULL},
};

void l_open_model(lua_State *L)
{
    luaL_newmetatable(L, L_MODEL_MT); /* aim mt */
    luaL_setfuncs(L, model_meta, 0);
    luaL_newlib(L, model_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_setfuncs(L, model_funcs, 0); /* into aim */
}
