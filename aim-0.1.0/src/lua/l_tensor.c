/*
 * l_tensor.c - the Lua tensor (userdata "aim.tensor"): float32, C order,
 * always contiguous. The type itself: storage, shape queries, 1-based
 * indexing along the first dimension (t[i] is a view, or a number for a 1-d
 * tensor), narrowing, reshaping, conversion to tables, t:save. Making
 * tensors (aim.tensor.new / zeros / cat / load) is in l_tensor_new.c,
 * arithmetic and reductions in l_tensor_ops.c.
 *
 * Storage is reference counted in C (l_storage.refs): a view made by t[i],
 * t:narrow(1, ...) or t:reshape() holds a reference, so closing a tensor
 * (`local t <close> = ...` or garbage collection) frees its floats exactly
 * when no view uses them any more.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "lua/l_aim.h"

/* ------------------------------------------------------------ storage */

static void storage_release(l_storage *s)
{
    if (s && --s->refs == 0) {
        l_mem_give(s->mem, s->n * sizeof(float));
        free(s->data);
        free(s);
    }
}

float *l_storage_new(lua_State *L, l_tensor *t, size_t n, int zero)
{
    l_mem *mem = l_mem_of(L);
    if (l_mem_take(mem, n * sizeof(float)) != 0)
        return NULL;
    l_storage *st = malloc(sizeof *st);
    float *data = !st ? NULL : zero ? calloc(n, sizeof(float)) : malloc(n * sizeof(float));
    if (!data) {
        free(st);
        l_mem_give(mem, n * sizeof(float));
        return NULL;
    }
    *st = (l_storage){.refs = 1, .n = n, .data = data, .mem = mem};
    t->st = st;
    t->data = data;
    return data;
}

size_t l_tensor_numel(const l_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (size_t)t->shape[i];
    return n;
}

void l_shape_str(const int64_t *shape, int ndim, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (at < len)
        snprintf(buf + at, len - at, "]");
}

l_tensor *l_tensor_push_empty(lua_State *L)
{
    l_tensor *t = lua_newuserdatauv(L, sizeof *t, 0); /* t */
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, L_TENSOR_MT);
    return t;
}

l_tensor *l_tensor_push(lua_State *L, int ndim, const int64_t *shape)
{
    uint64_t n;
    char s[160];
    l_shape_str(shape, ndim, s, sizeof s);
    if (ndim < 1 || ndim > AIM_MAX_DIMS)
        luaL_error(L, "a tensor has 1..%d dimensions (got %d)", AIM_MAX_DIMS, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1)
            luaL_error(L, "tensor shape %s: every size must be positive", s);
    if (aim_shape_numel(shape, ndim, AIM_MAX_ALLOC / sizeof(float), &n) != 0)
        luaL_error(L, "tensor shape %s is too large", s);
    l_tensor *t = l_tensor_push_empty(L); /* t */
    if (!l_storage_new(L, t, (size_t)n, 1)) {
        char st[160];
        l_mem_status(l_mem_of(L), st, sizeof st);
        luaL_error(L, "not enough memory for a tensor of shape %s (%s)", s, st);
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return t;
}

/* A view sharing src's storage: data at src->data + offset. */
static l_tensor *push_view(lua_State *L, const l_tensor *src, size_t offset, int ndim,
                           const int64_t *shape)
{
    l_tensor *t = l_tensor_push_empty(L);
    t->st = src->st;
    t->st->refs++;
    t->data = src->data + offset;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return t;
}

l_tensor *l_tensor_test(lua_State *L, int idx)
{
    l_tensor *t = luaL_testudata(L, idx, L_TENSOR_MT);
    return t && t->st ? t : NULL;
}

l_tensor *l_tensor_check(lua_State *L, int idx)
{
    l_tensor *t = luaL_checkudata(L, idx, L_TENSOR_MT);
    if (!t->st)
        luaL_argerror(L, idx, "the tensor is closed");
    return t;
}

int l_tensor_check_images(lua_State *L, int idx, const l_tensor *t, int c, int h, int w)
{
    if (t->ndim != 4 || t->shape[1] != c || t->shape[2] != h || t->shape[3] != w ||
        t->shape[0] > 1 << 24) {
        char s[160];
        l_shape_str(t->shape, t->ndim, s, sizeof s);
        luaL_argerror(L, idx,
                      lua_pushfstring(L, "expected images [B,%d,%d,%d], got a tensor %s", c, h,
                                      w, s));
    }
    return (int)t->shape[0];
}

/* ------------------------------------------------------------ metamethods */

static int t_gc(lua_State *L)
{
    l_tensor *t = luaL_checkudata(L, 1, L_TENSOR_MT);
    storage_release(t->st);
    t->st = NULL;
    t->data = NULL;
    return 0;
}

static int t_tostring(lua_State *L)
{
    l_tensor *t = luaL_checkudata(L, 1, L_TENSOR_MT);
    if (!t->st) {
        lua_pushstring(L, "aim.tensor (closed)");
        return 1;
    }
    char s[160];
    l_shape_str(t->shape, t->ndim, s, sizeof s);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "aim.tensor ");
    luaL_addstring(&b, s);
    luaL_addstring(&b, " float32");
    size_t n = l_tensor_numel(t);
    if (n <= 8) {
        char v[40];
        luaL_addstring(&b, " {");
        for (size_t i = 0; i < n; i++) {
            snprintf(v, sizeof v, "%s%.6g", i ? ", " : "", t->data[i]);
            luaL_addstring(&b, v);
        }
        luaL_addstring(&b, "}");
    }
    luaL_pushresult(&b);
    return 1;
}

static int t_len(lua_State *L)
{
    lua_pushinteger(L, l_tensor_check(L, 1)->shape[0]);
    return 1;
}

/* Push t[i] (0-based i along dim 1): a number for 1-d, else a view. */
static void push_row(lua_State *L, const l_tensor *t, int64_t i)
{
    if (t->ndim == 1) {
        lua_pushnumber(L, t->data[i]);
        return;
    }
    size_t row = l_tensor_numel(t) / (size_t)t->shape[0];
    push_view(L, t, (size_t)i * row, t->ndim - 1, t->shape + 1);
}

static int t_index(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (isint && lua_type(L, 2) == LUA_TNUMBER) {
        if (i < 1 || i > t->shape[0])
            lua_pushnil(L); /* like a table: ipairs stops here */
        else
            push_row(L, t, i - 1);
        return 1;
    }
    luaL_getmetafield(L, 1, "methods"); /* t k methods */
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int t_newindex(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > t->shape[0])
        luaL_argerror(L, 2, lua_pushfstring(L, "index %I is outside 1..%I", i,
                                            (lua_Integer)t->shape[0]));
    size_t row = l_tensor_numel(t) / (size_t)t->shape[0];
    float *dst = t->data + (size_t)(i - 1) * row;
    l_tensor *src = l_tensor_test(L, 3);
    if (src) {
        if (l_tensor_numel(src) != row)
            luaL_argerror(L, 3, "the tensor's size differs from the row's");
        memmove(dst, src->data, row * sizeof *dst);
        return 0;
    }
    float v = (float)luaL_checknumber(L, 3);
    for (size_t k = 0; k < row; k++)
        dst[k] = v;
    return 0;
}

/* ------------------------------------------------------------ methods */

static int t_shape(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer d = luaL_checkinteger(L, 2);
        luaL_argcheck(L, d >= 1 && d <= t->ndim, 2, "no such dimension");
        lua_pushinteger(L, t->shape[d - 1]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int t_dim(lua_State *L)
{
    lua_pushinteger(L, l_tensor_check(L, 1)->ndim);
    return 1;
}

static int t_numel(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)l_tensor_numel(l_tensor_check(L, 1)));
    return 1;
}

static void push_table(lua_State *L, const float *d, const int64_t *shape, int ndim)
{
    luaL_checkstack(L, 4, "tensor too deep");
    lua_createtable(L, shape[0] < INT_MAX ? (int)shape[0] : INT_MAX, 0);
    size_t row = 1;
    for (int i = 1; i < ndim; i++)
        row *= (size_t)shape[i];
    for (int64_t i = 0; i < shape[0]; i++) {
        if (ndim == 1)
            lua_pushnumber(L, d[i]);
        else
            push_table(L, d + (size_t)i * row, shape + 1, ndim - 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_totable(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    push_table(L, t->data, t->shape, t->ndim);
    return 1;
}

/* t:narrow(dim, start, n): items start..start+n-1 (1-based) along dim; a view
 * for dim 1, a copy otherwise */
static int t_narrow(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    lua_Integer d = luaL_checkinteger(L, 2);
    luaL_argcheck(L, d >= 1 && d <= t->ndim, 2, "no such dimension");
    int64_t size = t->shape[d - 1];
    lua_Integer s = luaL_checkinteger(L, 3);
    luaL_argcheck(L, s >= 1 && s <= size, 3, "start is outside the dimension");
    lua_Integer n = luaL_optinteger(L, 4, 1);
    luaL_argcheck(L, n >= 1 && s - 1 + n <= size, 4, "the slice goes past the end");
    int64_t shape[AIM_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d - 1] = n;
    size_t inner = 1, outer = 1;
    for (int i = (int)d; i < t->ndim; i++)
        inner *= (size_t)t->shape[i];
    for (int i = 0; i < d - 1; i++)
        outer *= (size_t)t->shape[i];
    if (d == 1) {
        push_view(L, t, (size_t)(s - 1) * inner, t->ndim, shape);
        return 1;
    }
    l_tensor *o = l_tensor_push(L, t->ndim, shape);
    for (size_t k = 0; k < outer; k++)
        memcpy(o->data + k * (size_t)n * inner,
               t->data + (k * (size_t)size + (size_t)(s - 1)) * inner,
               (size_t)n * inner * sizeof(float));
    return 1;
}

int l_shape_args(lua_State *L, int idx, int64_t *shape)
{
    int n = 0;
    if (lua_istable(L, idx)) {
        lua_Integer len = luaL_len(L, idx); /* __len may say anything */
        luaL_argcheck(L, len >= 1 && len <= AIM_MAX_DIMS, idx, "1..8 sizes expected");
        n = (int)len;
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, idx, i + 1);
            int isint;
            shape[i] = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            luaL_argcheck(L, isint, idx, "sizes must be integers");
        }
        return n;
    }
    int top = lua_gettop(L);
    luaL_argcheck(L, top >= idx && top - idx + 1 <= AIM_MAX_DIMS, idx, "1..8 sizes expected");
    for (int i = idx; i <= top; i++)
        shape[n++] = luaL_checkinteger(L, i);
    return n;
}

static int t_reshape(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    int64_t shape[AIM_MAX_DIMS];
    int n = l_shape_args(L, 2, shape), infer = -1;
    size_t known = 1, total = l_tensor_numel(t);
    for (int i = 0; i < n; i++) {
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            continue;
        }
        luaL_argcheck(L, shape[i] >= 1, 2, "sizes must be positive (one may be -1)");
        known *= (size_t)shape[i];
    }
    if (infer >= 0 && known && total % known == 0)
        shape[infer] = (int64_t)(total / known);
    else if (infer >= 0)
        known = 0;
    size_t want = 1;
    for (int i = 0; i < n; i++)
        want *= (size_t)shape[i];
    if (known == 0 || want != total) {
        char a[160], b[160];
        l_shape_str(t->shape, t->ndim, a, sizeof a);
        l_shape_str(shape, n, b, sizeof b);
        return luaL_argerror(L, 2, lua_pushfstring(L, "cannot reshape %s into %s", a, b));
    }
    push_view(L, t, 0, n, shape);
    return 1;
}

static int t_clone(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    l_tensor *o = l_tensor_push(L, t->ndim, t->shape);
    memcpy(o->data, t->data, l_tensor_numel(t) * sizeof(float));
    return 1;
}

/* flat offset of the indices at idx.. (one per dimension, 1-based) */
static size_t flat_index(lua_State *L, const l_tensor *t, int idx)
{
    size_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, idx + d);
        if (i < 1 || i > t->shape[d])
            luaL_argerror(L, idx + d, lua_pushfstring(L, "index %I is outside 1..%I", i,
                                                      (lua_Integer)t->shape[d]));
        off = off * (size_t)t->shape[d] + (size_t)(i - 1);
    }
    return off;
}

static int t_get(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    lua_pushnumber(L, t->data[flat_index(L, t, 2)]);
    return 1;
}

/* t:set(i, j, ..., value) */
static int t_set(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    size_t off = flat_index(L, t, 2);
    t->data[off] = (float)luaL_checknumber(L, 2 + t->ndim);
    lua_settop(L, 1);
    return 1;
}

static int t_save(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    const char *path = luaL_checkstring(L, 2);
    aim_array a = {.dtype = AIM_F32, .ndim = t->ndim, .data = t->data};
    memcpy(a.shape, t->shape, sizeof a.shape);
    aim_err e;
    if (aim_npy_write(path, &a, &e) != 0)
        return l_fail(L, e.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", t_shape},     {"size", t_shape},   {"dim", t_dim},   {"numel", t_numel},
    {"totable", t_totable}, {"narrow", t_narrow}, {"reshape", t_reshape}, {"clone", t_clone},
    {"get", t_get},         {"set", t_set},       {"save", t_save}, {NULL, NULL},
};

static const luaL_Reg tensor_meta[] = {
    {"__gc", t_gc},         {"__close", t_gc},         {"__tostring", t_tostring},
    {"__len", t_len},       {"__index", t_index},      {"__newindex", t_newindex},
    {NULL, NULL},
};

void l_open_tensor(lua_State *L)
{
    /* aim */
    luaL_newmetatable(L, L_TENSOR_MT); /* aim mt */
    luaL_setfuncs(L, tensor_meta, 0);
    luaL_newlib(L, tensor_methods); /* aim mt methods */
    l_tensor_ops_register(L);       /* adds arithmetic methods and metamethods */
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    l_tensor_push_funcs(L); /* aim tensor */
    lua_setfield(L, -2, "tensor");
}
