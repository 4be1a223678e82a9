/*
 * l_tensor_new.c - the functions of aim.tensor that make tensors:
 * aim.tensor{...} / aim.tensor.new (nested tables of numbers),
 * aim.tensor.zeros(sizes...), aim.tensor.cat{...} (along the first
 * dimension) and aim.tensor.load(path) (.npy; float32, and uint8, float64,
 * int32, int64 converted to float32; nil, message on an I/O failure).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "lua/l_aim.h"


/* aim.tensor.load(path): float32 (uint8, float64, int32 and int64 converted) */
static int tensor_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    l_tensor *t = l_tensor_push_empty(L); /* t: made before the file is read, so nothing leaks */
    aim_array a = {0};
    aim_err e;
    if (aim_npy_read(path, &a, &e) != 0)
        return l_fail(L, e.msg);
    int64_t one = 1;
    const int64_t *shape = a.ndim ? a.shape : &one;
    size_t n = aim_array_numel(&a);
    const char *bad = NULL;
    if (n == 0)
        bad = "an empty array";
    else if (a.dtype != AIM_F32 && a.dtype != AIM_U8 && a.dtype != AIM_F64 &&
             a.dtype != AIM_I32 && a.dtype != AIM_I64)
        bad = "this dtype is not supported (float32, uint8, float64, int32, int64 are)";
    float *data = bad ? NULL : l_storage_new(L, t, n, 0);
    if (!data) {
        aim_array_free(&a);
        return l_fail(L, lua_pushfstring(L, "%s: %s", path,
                                         bad ? bad : "not enough memory for its values "
                                                     "(aim.memory_limit)"));
    }
    for (size_t i = 0; i < n; i++) {
        switch (a.dtype) {
        case AIM_F32: data[i] = ((const float *)a.data)[i]; break;
        case AIM_U8: data[i] = ((const uint8_t *)a.data)[i]; break;
        case AIM_F64: data[i] = (float)((const double *)a.data)[i]; break;
        case AIM_I32: data[i] = (float)((const int32_t *)a.data)[i]; break;
        default: data[i] = (float)((const int64_t *)a.data)[i]; break;
        }
    }
    t->ndim = a.ndim ? a.ndim : 1;
    memcpy(t->shape, shape, (size_t)t->ndim * sizeof *shape);
    aim_array_free(&a);
    return 1;
}

/* shape of a nested table of numbers; raises on ragged input */
static int nested_shape(lua_State *L, int idx, int64_t *shape)
{
    int nd = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        luaL_argcheck(L, nd < AIM_MAX_DIMS, 1, "more than 8 levels of nesting");
        shape[nd++] = (int64_t)luaL_len(L, -1);
        luaL_argcheck(L, shape[nd - 1] >= 1, 1, "an empty table has no shape");
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    luaL_argcheck(L, nd >= 1, 1, "a table of numbers expected");
    lua_pop(L, 1);
    return nd;
}

static void fill_nested(lua_State *L, float *d, const int64_t *shape, int ndim, int depth)
{
    luaL_checkstack(L, 3, "nesting too deep");
    size_t row = 1;
    for (int i = 1; i < ndim; i++)
        row *= (size_t)shape[i];
    if (!lua_istable(L, -1) || (int64_t)luaL_len(L, -1) != shape[0])
        luaL_argerror(L, 1, lua_pushfstring(L, "ragged table at depth %d", depth + 1));
    for (int64_t i = 0; i < shape[0]; i++) {
        lua_rawgeti(L, -1, i + 1);
        if (ndim == 1) {
            int isnum;
            d[i] = (float)lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, 1, "the table holds something that is not a number");
        } else {
            fill_nested(L, d + (size_t)i * row, shape + 1, ndim - 1, depth + 1);
        }
        lua_pop(L, 1);
    }
}

/* aim.tensor.new{{1,2},{3,4}} (also aim.tensor{...}) */
static int tensor_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[AIM_MAX_DIMS];
    int nd = nested_shape(L, 1, shape);
    l_tensor *t = l_tensor_push(L, nd, shape); /* t */
    lua_pushvalue(L, 1);
    fill_nested(L, t->data, shape, nd, 0);
    lua_pop(L, 1);
    return 1;
}

static int tensor_call(lua_State *L)
{
    lua_remove(L, 1); /* the aim.tensor table */
    return tensor_new(L);
}

/* aim.tensor.zeros(2, 3) or aim.tensor.zeros{2, 3} */
static int tensor_zeros(lua_State *L)
{
    int64_t shape[AIM_MAX_DIMS];
    int n = l_shape_args(L, 1, shape);
    l_tensor_push(L, n, shape);
    return 1;
}

/* aim.tensor.cat{t1, t2, ...}: along the first dimension */
static int tensor_cat(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1, 1, "an empty list");
    int64_t shape[AIM_MAX_DIMS];
    int ndim = 0;
    int64_t rows = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        l_tensor *t = l_tensor_test(L, -1);
        if (!t)
            luaL_argerror(L, 1, lua_pushfstring(L, "item %I is not a tensor", i));
        if (i == 1) {
            ndim = t->ndim;
            memcpy(shape, t->shape, sizeof shape);
        } else if (t->ndim != ndim ||
                   memcmp(t->shape + 1, shape + 1, (size_t)(ndim - 1) * sizeof *shape)) {
            luaL_argerror(L, 1, lua_pushfstring(L, "item %I's shape does not match item 1's",
                                                i));
        }
        rows += t->shape[0];
        lua_pop(L, 1);
    }
    shape[0] = rows;
    l_tensor *o = l_tensor_push(L, ndim, shape); /* o */
    float *d = o->data;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        l_tensor *t = l_tensor_test(L, -1);
        size_t k = l_tensor_numel(t);
        memcpy(d, t->data, k * sizeof *d);
        d += k;
        lua_pop(L, 1);
    }
    return 1;
}

static const luaL_Reg tensor_funcs[] = {
    {"load", tensor_load}, {"new", tensor_new}, {"zeros", tensor_zeros}, {"cat", tensor_cat},
    {NULL, NULL},
};

void l_tensor_push_funcs(lua_State *L)
{
    luaL_newlib(L, tensor_funcs); /* tensor */
    lua_createtable(L, 0, 1);     /* tensor mt: aim.tensor{...} = aim.tensor.new{...} */
    lua_pushcfunction(L, tensor_call);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
}
