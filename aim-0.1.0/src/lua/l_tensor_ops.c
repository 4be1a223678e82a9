/*
 * l_tensor_ops.c - the little arithmetic tensors need in scripts and
 * samples: elementwise + - * / with a number or a tensor of the same shape
 * (new tensors; `t:fill(v)` and `t:clamp(lo, hi)` work in place), unary
 * minus, and the reductions sum, mean, min, max. Not a numeric library: the
 * heavy lifting is done by the model's C kernels.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lua/l_aim.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static float apply(int op, float a, float b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

static int binop(lua_State *L, int op)
{
    l_tensor *a = l_tensor_test(L, 1), *b = l_tensor_test(L, 2);
    if (!a && !b)
        return luaL_error(L, "tensor arithmetic: no live tensor among the operands");
    if (a && b) {
        if (a->ndim != b->ndim || memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(int64_t))) {
            char sa[160], sb[160];
            l_shape_str(a->shape, a->ndim, sa, sizeof sa);
            l_shape_str(b->shape, b->ndim, sb, sizeof sb);
            return luaL_error(L, "tensor arithmetic: shapes %s and %s differ", sa, sb);
        }
    }
    const l_tensor *t = a ? a : b;
    float sa = 0, sb = 0;
    if (!a)
        sa = (float)luaL_checknumber(L, 1);
    if (!b)
        sb = (float)luaL_checknumber(L, 2);
    l_tensor *o = l_tensor_push(L, t->ndim, t->shape);
    size_t n = l_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        o->data[i] = apply(op, a ? a->data[i] : sa, b ? b->data[i] : sb);
    return 1;
}

static int t_add(lua_State *L) { return binop(L, OP_ADD); }
static int t_sub(lua_State *L) { return binop(L, OP_SUB); }
static int t_mul(lua_State *L) { return binop(L, OP_MUL); }
static int t_div(lua_State *L) { return binop(L, OP_DIV); }

static int t_unm(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    l_tensor *o = l_tensor_push(L, t->ndim, t->shape);
    size_t n = l_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        o->data[i] = -t->data[i];
    return 1;
}

static int t_fill(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    float v = (float)luaL_checknumber(L, 2);
    size_t n = l_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = v;
    lua_settop(L, 1);
    return 1;
}

static int t_clamp(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    float lo = (float)luaL_checknumber(L, 2), hi = (float)luaL_checknumber(L, 3);
    luaL_argcheck(L, lo <= hi, 3, "the upper bound is below the lower one");
    size_t n = l_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        t->data[i] = t->data[i] < lo ? lo : t->data[i] > hi ? hi : t->data[i];
    lua_settop(L, 1);
    return 1;
}

static int t_sum(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    size_t n = l_tensor_numel(t);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += t->data[i];
    lua_pushnumber(L, s);
    return 1;
}

static int t_mean(lua_State *L)
{
    l_tensor *t = l_tensor_check(L, 1);
    size_t n = l_tensor_numel(t);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += t->data[i];
    lua_pushnumber(L, s / (double)n);
    return 1;
}

static int minmax(lua_State *L, int want_max)
{
    l_tensor *t = l_tensor_check(L, 1);
    size_t n = l_tensor_numel(t);
    float v = t->data[0];
    for (size_t i = 1; i < n; i++)
        if (want_max ? t->data[i] > v : t->data[i] < v)
            v = t->data[i];
    lua_pushnumber(L, v);
    return 1;
}

static int t_min(lua_State *L) { return minmax(L, 0); }
static int t_max(lua_State *L) { return minmax(L, 1); }

static const luaL_Reg ops_methods[] = {
    {"add", t_add}, {"sub", t_sub}, {"mul", t_mul},  {"div", t_div},   {"fill", t_fill},
    {"clamp", t_clamp}, {"sum", t_sum}, {"mean", t_mean}, {"min", t_min}, {"max", t_max},
    {NULL, NULL},
};

static const luaL_Reg ops_meta[] = {
    {"__add", t_add}, {"__sub", t_sub}, {"__mul", t_mul}, {"__div", t_div}, {"__unm", t_unm},
    {NULL, NULL},
};

/* stack: ... mt methods */
void l_tensor_ops_register(lua_State *L)
{
    luaL_setfuncs(L, ops_methods, 0);
    lua_pushvalue(L, -2); /* mt methods mt */
    luaL_setfuncs(L, ops_meta, 0);
    lua_pop(L, 1);
}
