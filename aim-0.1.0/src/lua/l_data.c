/*
 * l_data.c - aim.data: datasets in Lua (userdata "aim.dataset").
 *
 *   aim.data.fashion_mnist([split [, opts]])  split "train" (default) or "test"
 *   aim.data.open(path [, opts])              IDX file or folder, CIFAR-10 .bin
 *                                             or folder, PNG class folder
 *   aim.data.synthetic{n=1000, channels=1, size=28, classes=10, seed=0}
 * opts (fashion_mnist, open): channels, size (= height = width), height,
 * width, limit; open also takes split ("train" / "test"). Images are
 * converted to the channels and size asked for. A missing or bad file gives
 * nil, message; bad arguments raise.
 *
 * Methods: #ds; ds:batch(i, n [, {normalize=true}]) -> images [n,C,H,W],
 * labels (a Lua table of n integers, the class ids as stored: 0-based, so the
 * name is ds:classes()[label + 1]); i is the 1-based index of the first image
 * and n is clipped at the end of the set. Images are normalised per channel
 * with the dataset's mean/std (as aim.pretrain feeds the model) unless
 * normalize = false, which gives x/255 in [0,1]. ds:info() -> table;
 * ds:classes() -> names; ds:convert{channels=, size=, height=, width=}
 * (in place, returns ds); fields ds.n, ds.channels, ds.height, ds.width,
 * ds.kind, ds.split, ds.path, ds.classes_count.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "lua/l_aim.h"

l_dataset *l_dataset_check(lua_State *L, int idx)
{
    l_dataset *d = luaL_checkudata(L, idx, L_DATASET_MT);
    if (!d->ds)
        luaL_argerror(L, idx, "the dataset is closed");
    return d;
}

void l_dataset_fits(lua_State *L, int arg, const char *what, const aim_dataset *ds,
                    const aim_config *c)
{
    if (ds->c == c->channels && ds->h == c->image && ds->w == c->image)
        return;
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "%s%s%sthe data is %dx%dx%d but the model takes %dx%dx%d "
                                     "(open it with {channels=%d, size=%d} or use ds:convert)",
                                  what ? "option '" : "", what ? what : "", what ? "': " : "",
                                  ds->c, ds->h, ds->w, c->channels, c->image, c->image,
                                  c->channels, c->image));
}

l_dataset *l_dataset_push_empty(lua_State *L)
{
    l_dataset *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, L_DATASET_MT);
    return d;
}

/* shape options shared by open and fashion_mnist */
typedef struct shape_opts {
    int channels, height, width;
    int64_t limit;
} shape_opts;

static shape_opts read_shape_opts(lua_State *L, int idx)
{
    shape_opts s;
    s.channels = (int)l_opt_int(L, idx, "channels", 0, 1, 4);
    int size = (int)l_opt_int(L, idx, "size", 0, 2, 4096);
    s.height = (int)l_opt_int(L, idx, "height", size, 2, 4096);
    s.width = (int)l_opt_int(L, idx, "width", size, 2, 4096);
    s.limit = l_opt_int(L, idx, "limit", 0, 1, (lua_Integer)1 << 40);
    return s;
}

/* Charge n images of c x h x w (and their labels) for d to
 * aim.memory_limit: 0, or -1 with d's dataset (if any) freed and a message
 * naming `what` pushed. (The loaders allocate within aim_mem_limit(); the
 * account is settled as soon as the size is known, before the images are
 * made where the caller knows it.) */
static int charge(lua_State *L, l_dataset *d, const char *what, int64_t n, int c, int h, int w)
{
    size_t bytes = (size_t)n * ((size_t)c * h * w + sizeof(int32_t));
    l_mem *mem = l_mem_of(L);
    if (l_mem_take(mem, bytes) != 0) {
        char need[32], st[160];
        aim_fmt_bytes(need, sizeof need, bytes);
        l_mem_status(mem, st, sizeof st);
        lua_pushfstring(L, "%s: %I images of %dx%dx%d need %s (%s)", what, (lua_Integer)n, c,
                        h, w, need, st);
        aim_dataset_free(d->ds);
        d->ds = NULL;
        return -1;
    }
    d->charged = bytes;
    return 0;
}

int l_dataset_charge(lua_State *L, l_dataset *d)
{
    const aim_dataset *ds = d->ds;
    return charge(L, d, ds->path ? ds->path : ds->kind, ds->n, ds->c, ds->h, ds->w);
}

/* Adopt ds into the empty userdata on top; apply limit and conversion.
 * Returns 1 (the dataset) or 2 (nil, message). */
static int adopt(lua_State *L, l_dataset *d, aim_dataset *ds, const shape_opts *s, aim_err *e)
{
    d->ds = ds;
    if (s->limit > 0)
        aim_dataset_truncate(ds, s->limit);
    if (aim_dataset_convert(ds, s->channels, s->height, s->width, AIM_RESIZE_AREA, e) != 0)
        return luaL_error(L, "%s", e->msg); /* bad channel count etc.: an argument problem */
    if (l_dataset_charge(L, d) != 0)
        return l_fail(L, lua_tostring(L, -1));
    return 1;
}

static const char *const split_names[] = {"train", "test", NULL};
static const char *const fm_options[] = {"channels", "size", "height", "width", "limit", NULL};

static int data_fashion_mnist(lua_State *L)
{
    if (lua_istable(L, 1)) { /* aim.data.fashion_mnist{limit = 100} */
        lua_pushnil(L);
        lua_insert(L, 1);
    }
    int split = luaL_checkoption(L, 1, "train", split_names);
    l_check_options(L, 2, fm_options);
    shape_opts s = read_shape_opts(L, 2);
    l_dataset *d = l_dataset_push_empty(L);
    aim_err e;
    aim_dataset *ds = aim_data_fashion_mnist(split_names[split], NULL, &e);
    if (!ds)
        return l_fail(L, e.msg);
    return adopt(L, d, ds, &s, &e);
}

static const char *const open_options[] = {"channels", "size", "height", "width",
                                           "limit",    "split", NULL};

static int data_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    l_check_options(L, 2, open_options);
    shape_opts s = read_shape_opts(L, 2);
    const char *split = l_opt_str(L, 2, "split", NULL);
    if (split && strcmp(split, "train") && strcmp(split, "test"))
        luaL_argerror(L, 2, "option 'split' must be \"train\" or \"test\"");
    l_dataset *d = l_dataset_push_empty(L);
    aim_open_opts oo = {.channels = s.channels, .height = s.height, .width = s.width,
                        .split = split, .limit = s.limit, .resize = AIM_RESIZE_AREA};
    /* a PNG folder is sized before it is decoded: what aim.memory_limit has
     * left (the other loaders hold what their files hold) */
    l_mem *mem = l_mem_of(L);
    if (l_mem_limit(mem))
        oo.max_bytes = l_mem_used(mem) < l_mem_limit(mem) ? l_mem_limit(mem) - l_mem_used(mem)
                                                           : 1;
    aim_err e;
    aim_dataset *ds = aim_data_open(path, &oo, &e);
    if (!ds)
        return l_fail(L, e.msg);
    return adopt(L, d, ds, &s, &e);
}

static const char *const default_options[] = {"data", "channels", "size", "limit", "seed", NULL};

/* aim.data.default([split [, opts]]): the data as `aim train --data SPEC`
 * opens it (aim_job_open_data): opts.data (default "fashion-mnist", the
 * synthetic set with a notice when it is not installed), channels, size,
 * limit, seed (the synthetic set's) */
static int data_default(lua_State *L)
{
    if (lua_istable(L, 1)) { /* aim.data.default{limit = 100} */
        lua_pushnil(L);
        lua_insert(L, 1);
    }
    int split = luaL_checkoption(L, 1, "train", split_names);
    l_check_options(L, 2, default_options);
    const char *spec = l_opt_str(L, 2, "data", "fashion-mnist");
    int channels = (int)l_opt_int(L, 2, "channels", 0, 0, AIM_MAX_CHANNELS);
    int size = (int)l_opt_int(L, 2, "size", 0, 0, 4096);
    lua_Integer limit = l_opt_int(L, 2, "limit", 0, 0, LUA_MAXINTEGER);
    lua_Integer seed = l_opt_int(L, 2, "seed", 0, 0, LUA_MAXINTEGER);
    l_dataset *d = l_dataset_push_empty(L);
    char notice[400];
    aim_err e;
    d->ds = aim_job_open_data(spec, split_names[split], channels, size, limit, (uint64_t)seed,
                              notice, sizeof notice, &e);
    l_notice(L, notice);
    if (!d->ds)
        return l_fail(L, e.msg);
    if (l_dataset_charge(L, d) != 0)
        return l_fail(L, lua_tostring(L, -1));
    return 1;
}

static const char *const synth_options[] = {"n", "channels", "size", "classes", "seed", NULL};

static int data_synthetic(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_options(L, 1, synth_options);
    aim_synth_opts o = {
        .n = l_opt_int(L, 1, "n", 1000, 1, 10000000),
        .c = (int)l_opt_int(L, 1, "channels", 1, 1, 4),
        .nclasses = (int)l_opt_int(L, 1, "classes", 10, 2, 10),
        .seed = (uint64_t)l_opt_int(L, 1, "seed", 0, 0, LUA_MAXINTEGER),
    };
    o.h = o.w = (int)l_opt_int(L, 1, "size", 28, 4, 1024);
    l_dataset *d = l_dataset_push_empty(L);
    if (charge(L, d, "synthetic", o.n, o.c, o.h, o.w) != 0) /* before it is made */
        return lua_error(L);
    aim_err e;
    d->ds = aim_data_synthetic(&o, &e);
    if (!d->ds)
        return luaL_error(L, "%s", e.msg); /* __gc gives the charge back */
    return 1;
}

/* ------------------------------------------------------------ methods */

static int ds_gc(lua_State *L)
{
    l_dataset *d = luaL_checkudata(L, 1, L_DATASET_MT);
    if (d->busy)
        return luaL_error(L, "the dataset is in use by a running job");
    aim_dataset_free(d->ds);
    d->ds = NULL;
    l_mem_give(l_mem_of(L), d->charged);
    d->charged = 0;
    return 0;
}

static int ds_tostring(lua_State *L)
{
    l_dataset *d = luaL_checkudata(L, 1, L_DATASET_MT);
    if (!d->ds) {
        lua_pushstring(L, "aim.dataset (closed)");
        return 1;
    }
    const aim_dataset *ds = d->ds;
    lua_pushfstring(L, "aim.dataset %s%s%s: %I images %dx%dx%d, %d classes", ds->kind,
                    ds->split ? " " : "", ds->split ? ds->split : "", (lua_Integer)ds->n, ds->c,
                    ds->h, ds->w, ds->nclasses);
    return 1;
}

static int ds_len(lua_State *L)
{
    lua_pushinteger(L, l_dataset_check(L, 1)->ds->n);
    return 1;
}

static const char *const batch_options[] = {"normalize", NULL};

static int ds_batch(lua_State *L)
{
    const aim_dataset *ds = l_dataset_check(L, 1)->ds;
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= ds->n, 2,
                  lua_pushfstring(L, "index %I is outside 1..%I", i, (lua_Integer)ds->n));
    lua_Integer n = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, n >= 1 && n <= 1 << 20, 3, "the count must be in 1..1048576");
    l_check_options(L, 4, batch_options);
    int normalize = l_opt_bool(L, 4, "normalize", 1);
    if (n > ds->n - i + 1)
        n = ds->n - i + 1;
    int64_t shape[4] = {n, ds->c, ds->h, ds->w};
    l_tensor *x = l_tensor_push(L, 4, shape); /* x */
    int32_t *labels = lua_newuserdatauv(L, (size_t)n * sizeof *labels, 0); /* x lab */
    aim_dataset_get_batch(ds, i - 1, (int)n, normalize, x->data, labels);
    lua_createtable(L, (int)n, 0); /* x lab t */
    for (lua_Integer k = 0; k < n; k++) {
        lua_pushinteger(L, labels[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_remove(L, -2); /* x t */
    return 2;
}

static int ds_classes(lua_State *L)
{
    const aim_dataset *ds = l_dataset_check(L, 1)->ds;
    lua_createtable(L, ds->nclasses, 0);
    for (int k = 0; k < ds->nclasses; k++) {
        if (ds->class_names && ds->class_names[k])
            lua_pushstring(L, ds->class_names[k]);
        else
            lua_pushfstring(L, "%d", k);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

static void push_floats(lua_State *L, const float *v, int n)
{
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; k++) {
        lua_pushnumber(L, v[k]);
        lua_rawseti(L, -2, k + 1);
    }
}

static int ds_info(lua_State *L)
{
    const aim_dataset *ds = l_dataset_check(L, 1)->ds;
    lua_createtable(L, 0, 12);
    l_set_str(L, "kind", ds->kind);
    l_set_str(L, "path", ds->path);
    l_set_str(L, "split", ds->split);
    l_set_int(L, "n", ds->n);
    l_set_int(L, "channels", ds->c);
    l_set_int(L, "height", ds->h);
    l_set_int(L, "width", ds->w);
    l_set_int(L, "classes_count", ds->nclasses);
    ds_classes(L);
    lua_setfield(L, -2, "classes");
    int nc = ds->c < AIM_MAX_CHANNELS ? ds->c : AIM_MAX_CHANNELS;
    push_floats(L, ds->mean, nc);
    lua_setfield(L, -2, "mean");
    push_floats(L, ds->std, nc);
    lua_setfield(L, -2, "std");
    return 1;
}

static const char *const convert_options[] = {"channels", "size", "height", "width", NULL};

static int ds_convert(lua_State *L)
{
    l_dataset *d = l_dataset_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_options(L, 2, convert_options);
    if (d->busy)
        return luaL_error(L, "the dataset is in use by a running job");
    shape_opts s = read_shape_opts(L, 2);
    aim_err e;
    if (aim_dataset_convert(d->ds, s.channels, s.height, s.width, AIM_RESIZE_AREA, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_settop(L, 1);
    return 1;
}

/* methods first, then the info fields */
static int ds_index(lua_State *L)
{
    luaL_getmetafield(L, 1, "methods"); /* ds k methods */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL || lua_type(L, 2) != LUA_TSTRING)
        return 1;
    const char *k = lua_tostring(L, 2);
    static const char *const fields[] = {"n", "channels", "height", "width", "kind",
                                         "split", "path", "classes_count", NULL};
    for (int i = 0; fields[i]; i++) {
        if (strcmp(k, fields[i]))
            continue;
        lua_pushcfunction(L, ds_info);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1); /* ... info */
        lua_getfield(L, -1, k);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static const luaL_Reg ds_methods[] = {
    {"batch", ds_batch}, {"info", ds_info}, {"classes", ds_classes}, {"convert", ds_convert},
    {"close", ds_gc},    {NULL, NULL},
};

static const luaL_Reg ds_meta[] = {
    {"__gc", ds_gc},   {"__close", ds_gc}, {"__tostring", ds_tostring},
    {"__len", ds_len}, {"__index", ds_index}, {NULL, NULL},
};

static const luaL_Reg data_funcs[] = {
    {"fashion_mnist", data_fashion_mnist},
    {"open", data_open},
    {"synthetic", data_synthetic},
    {"default", data_default},
    {NULL, NULL},
};

void l_open_data(lua_State *L)
{
    luaL_newmetatable(L, L_DATASET_MT); /* aim mt */
    luaL_setfuncs(L, ds_meta, 0);
    luaL_newlib(L, ds_methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    luaL_newlib(L, data_funcs); /* aim data */
    lua_setfield(L, -2, "data");
}

