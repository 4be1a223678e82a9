/*
 * l_util.c - small helpers the Lua bindings share: strict option tables
 * (unknown keys are errors with a "did you mean" hint; each value is checked
 * and a bad one raises naming the option), setting fields of result tables,
 * the `nil, message` return of an I/O failure.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lua/l_aim.h"

void l_check_options(lua_State *L, int idx, const char *const *known)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* key value */
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            luaL_argerror(L, idx, "option names must be strings");
        }
        const char *k = lua_tostring(L, -1);
        const char *best = NULL;
        int bestd = 3, found = 0;
        for (int i = 0; known[i]; i++) {
            if (!strcmp(known[i], k)) {
                found = 1;
                break;
            }
            int d = aim_name_distance(known[i], k);
            if (d < bestd) {
                bestd = d;
                best = known[i];
            }
        }
        if (!found) {
            if (best)
                luaL_argerror(L, idx,
                              lua_pushfstring(L, "unknown option '%s' (did you mean '%s'?)", k,
                                              best));
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
        }
    }
}

int l_opt_get(lua_State *L, int idx, const char *key)
{
    if (!lua_istable(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

lua_Integer l_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer lo,
                      lua_Integer hi)
{
    idx = lua_absindex(L, idx);
    if (l_opt_get(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    lua_pop(L, 1);
    if (!isint)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be an integer", key));
    if (v < lo || v > hi)
        luaL_argerror(L, idx,
                      lua_pushfstring(L, "option '%s' must be in %I..%I (got %I)", key, lo, hi,
                                      v));
    return v;
}

lua_Number l_opt_num(lua_State *L, int idx, const char *key, lua_Number def, lua_Number lo,
                     lua_Number hi)
{
    idx = lua_absindex(L, idx);
    if (l_opt_get(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a number", key));
    if (!(v >= lo && v <= hi))
        luaL_argerror(L, idx,
                      lua_pushfstring(L, "option '%s' must be in [%f, %f] (got %f)", key, lo, hi,
                                      v));
    return v;
}

int l_opt_bool(lua_State *L, int idx, const char *key, int def)
{
    idx = lua_absindex(L, idx);
    int t = l_opt_get(L, idx, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (t == LUA_TNIL)
        return def;
    if (t != LUA_TBOOLEAN)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be true or false", key));
    return v;
}

const char *l_opt_str(lua_State *L, int idx, const char *key, const char *def)
{
    idx = lua_absindex(L, idx);
    int t = l_opt_get(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    if (t != LUA_TSTRING)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a string", key));
    /* the table keeps the string alive */
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

void l_set_int(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

void l_set_num(lua_State *L, const char *key, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

void l_set_str(lua_State *L, const char *key, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

void l_set_bool(lua_State *L, const char *key, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

int l_fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* ------------------------------------------------------------ job options */

static void opt_error(lua_State *L, int idx, const aim_opt *o, const char *what)
{
    luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' %s", o->name, what));
}

/* the value on top of the stack into spec, as option o */
static void opt_value(lua_State *L, int idx, const aim_opt *o, void *spec)
{
    aim_err e;
    int t = lua_type(L, -1), rc = 0;
    switch (o->type) {
    case AIM_OPT_INT:
    case AIM_OPT_NUM:
        if (t != LUA_TNUMBER)
            opt_error(L, idx, o, o->type == AIM_OPT_INT ? "must be an integer" : "must be a number");
        if (lua_isinteger(L, -1))
            rc = o->type == AIM_OPT_INT ? aim_opt_set_int(o, spec, lua_tointeger(L, -1), &e)
                                        : aim_opt_set_num(o, spec, (double)lua_tointeger(L, -1),
                                                          &e);
        else
            rc = aim_opt_set_num(o, spec, lua_tonumber(L, -1), &e);
        break;
    case AIM_OPT_BOOL:
        if (t != LUA_TBOOLEAN)
            opt_error(L, idx, o, "must be true or false");
        rc = aim_opt_set_bool(o, spec, lua_toboolean(L, -1), &e);
        break;
    case AIM_OPT_STR:
    case AIM_OPT_CHOICE:
        if (t != LUA_TSTRING)
            opt_error(L, idx, o, "must be a string");
        rc = aim_opt_set_str(o, spec, lua_tostring(L, -1), &e);
        break;
    case AIM_OPT_BLOCKS:
        if (t == LUA_TSTRING) { /* "3,4", as a script argument gives it */
            rc = *lua_tostring(L, -1) ? aim_opt_set_str(o, spec, lua_tostring(L, -1), &e) : 0;
            break;
        }
        if (t != LUA_TTABLE)
            opt_error(L, idx, o, "must be a list of block numbers");
        {
            lua_Integer n = luaL_len(L, -1);
            if (n < 1 || n > AIM_PROBE_MAX_BLOCKS)
                opt_error(L, idx, o, lua_pushfstring(L, "must list 1 to %d block numbers",
                                                     AIM_PROBE_MAX_BLOCKS));
            int b[AIM_PROBE_MAX_BLOCKS];
            for (lua_Integer k = 0; k < n; k++) {
                lua_geti(L, -1, k + 1);
                int isint;
                lua_Integer v = lua_tointegerx(L, -1, &isint);
                if (!isint || v < 1 || v > 1 << 20)
                    opt_error(L, idx, o, lua_pushfstring(L, "has %s, not a block number",
                                                         luaL_tolstring(L, -1, NULL)));
                b[k] = (int)v;
                lua_pop(L, 1);
            }
            rc = aim_opt_set_blocks(o, spec, b, (int)n, &e);
        }
        break;
    case AIM_OPT_DATA:
        if (!luaL_testudata(L, -1, L_DATASET_MT))
            opt_error(L, idx, o, "must be an open dataset");
        break;
    case AIM_OPT_FUNC:
        if (t != LUA_TFUNCTION)
            opt_error(L, idx, o, "must be a function");
        break;
    case AIM_OPT_PROBE:
        if (t != LUA_TTABLE && !luaL_testudata(L, -1, L_PROBE_MT))
            opt_error(L, idx, o, "must be an aim.probe or an aim.probe result");
        break;
    }
    if (rc != 0)
        opt_error(L, idx, o, lua_pushstring(L, e.msg));
}

void l_job_opts(lua_State *L, int idx, const aim_opt *t, void *spec, int where)
{
    if (lua_isnoneornil(L, idx))
        return;
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* key value */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, idx, "option names must be strings");
        const char *k = lua_tostring(L, -2);
        const aim_opt *o = NULL;
        for (const aim_opt *c = t; c->name; c++)
            if ((c->where & where) && !strcmp(c->name, k))
                o = c;
        if (!o) {
            const char *best = aim_opts_suggest(t, k, where);
            if (best)
                luaL_argerror(L, idx,
                              lua_pushfstring(L, "unknown option '%s' (did you mean '%s'?)", k,
                                              best));
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
        }
        opt_value(L, idx, o, spec);
        lua_pop(L, 1); /* key */
    }
}

void l_push_spec(lua_State *L, const aim_opt *t, const void *spec, int where, int empty_strings)
{
    lua_newtable(L);
    for (; t->name; t++) {
        if (!(t->where & where) || t->offset == AIM_OPT_NONE)
            continue;
        const void *f = (const char *)spec + t->offset;
        switch (t->type) {
        case AIM_OPT_INT: l_set_int(L, t->name, *(const int64_t *)f); break;
        case AIM_OPT_NUM: l_set_num(L, t->name, *(const double *)f); break;
        case AIM_OPT_BOOL: l_set_bool(L, t->name, *(const int *)f); break;
        case AIM_OPT_STR:
        case AIM_OPT_CHOICE: {
            const char *v = *(const char *const *)f;
            if (v || empty_strings)
                l_set_str(L, t->name, v ? v : "");
            break;
        }
        case AIM_OPT_BLOCKS: {
            const aim_blocks *b = f;
            if (b->n) {
                lua_createtable(L, b->n, 0);
                for (int k = 0; k < b->n; k++) {
                    lua_pushinteger(L, b->b[k]);
                    lua_rawseti(L, -2, k + 1);
                }
                lua_setfield(L, -2, t->name);
            } else if (empty_strings) {
                l_set_str(L, t->name, "");
            }
            break;
        }
        default: break;
        }
    }
}

void l_notice(lua_State *L, const char *text)
{
    if (!text || !*text)
        return;
    int top = lua_gettop(L);
    lua_getglobal(L, "io");
    if (lua_istable(L, -1) && lua_getfield(L, -1, "stderr") == LUA_TUSERDATA &&
        lua_getfield(L, -1, "write") == LUA_TFUNCTION) { /* io stderr write */
        lua_insert(L, -2);                              /* io write stderr */
        lua_pushfstring(L, "aim: note: %s\n", text);
        lua_pcall(L, 2, 0, 0);
    }
    lua_settop(L, top);
}
