/*
 * host.c - the Lua state the engine owns: standard libraries, print()
 * routed to the engine, the embedded lua/aim/ modules and the C module
 * "aim.core" in package.preload, and running chunks the way lua.c does
 * (a traceback message handler, `return <line>` first for the console,
 * incomplete input detected by the "<eof>" syntax error).
 *
 * The host's context (the engine pointer) lives in the registry under the
 * address of `engine_key`, never in a C global.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "lua/l_aim.h"

static const char engine_key = 'e';

aim_engine *l_engine(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &engine_key); /* eng */
    aim_engine *eng = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return eng;
}

/* print(...) as in lbaselib.c, but through the engine */
static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, i, NULL); /* ... s */
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b); /* ... line */
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    l_engine_output(l_engine(L), s, len);
    return 0;
}

/* package.preload loader for an embedded module: upvalue = its index */
static int load_embedded(lua_State *L)
{
    const l_embedded *m = &l_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
    if (luaL_loadbufferx(L, (const char *)m->src, m->len, m->chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->module); /* f name */
    lua_call(L, 1, 1);
    return 1;
}

/* message handler: the message plus a traceback (lua.c's msghandler) */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int open_state(lua_State *L)
{
    aim_engine *eng = lua_touserdata(L, 1);
    luaL_openlibs(L);
    lua_pushlightuserdata(L, eng);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
    lua_pushcfunction(L, luaopen_aim_core);
    lua_setfield(L, -2, "aim.core");
    for (int i = 0; l_embedded_modules[i].module; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, l_embedded_modules[i].module);
    }
    lua_pop(L, 1);
    /* the console: `aim` and pause/resume/stop/lr as globals */
    lua_getglobal(L, "require");
    lua_pushstring(L, "aim.console");
    lua_call(L, 1, 0);
    return 0;
}

lua_State *l_host_open(aim_engine *eng, aim_err *e)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        aim_errf(e, "lua: cannot create a state (out of memory)");
        return NULL;
    }
    lua_pushcfunction(L, open_state);
    lua_pushlightuserdata(L, eng);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        aim_errf(e, "lua: %s", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

/* Format the n values on top of the stack as the console shows them, with
 * aim.console.format (pretty tables) or tostring when that fails. Pops
 * them, pushes one string. */
static void format_values(lua_State *L, int n)
{
    int base = lua_gettop(L) - n;
    lua_getglobal(L, "require");
    lua_pushstring(L, "aim.console");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        lua_getfield(L, -1, "format"); /* vals console format */
        lua_remove(L, -2);
        for (int i = 1; i <= n; i++)
            lua_pushvalue(L, base + i);
        if (lua_pcall(L, n, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return;
        }
    }
    lua_settop(L, base + n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, base + i, NULL);
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b); /* vals s */
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

static char *dup_top(lua_State *L)
{
    size_t len = 0;
    const char *s = lua_tolstring(L, -1, &len);
    char *out = aim_xmalloc(len + 1);
    if (s)
        memcpy(out, s, len);
    out[len] = 0;
    return out;
}

static int incomplete(lua_State *L)
{
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char mark[] = "<eof>";
    return msg && len >= sizeof mark - 1 && !strcmp(msg + len - (sizeof mark - 1), mark);
}

/* Compile code; in repl mode try "return code" first. Pushes the function
 * or the error message. */
static int compile(lua_State *L, const char *code, const char *name, int repl)
{
    if (repl) {
        const char *ret = lua_pushfstring(L, "return %s;", code);
        int st = luaL_loadbuffer(L, ret, strlen(ret), name);
        lua_remove(L, -2);
        if (st == LUA_OK)
            return LUA_OK;
        lua_pop(L, 1);
    }
    return luaL_loadbuffer(L, code, strlen(code), name);
}

aim_eval_status l_host_eval(lua_State *L, const char *code, const char *name, int repl,
                            char **text)
{
    int top = lua_gettop(L);
    l_engine_chunk_begin(l_engine(L));
    aim_eval_status rc;
    if (!lua_checkstack(L, 8)) {
        *text = aim_xstrdup("lua: stack overflow");
        return AIM_EVAL_ERROR;
    }
    lua_pushcfunction(L, traceback); /* tb */
    int st = compile(L, code, name ? name : "=stdin", repl); /* tb f|msg */
    if (st != LUA_OK) {
        rc = repl && st == LUA_ERRSYNTAX && incomplete(L) ? AIM_EVAL_INCOMPLETE : AIM_EVAL_ERROR;
        *text = dup_top(L);
        lua_settop(L, top);
        return rc;
    }
    st = lua_pcall(L, 0, LUA_MULTRET, top + 1); /* tb results... | tb msg */
    if (st != LUA_OK) {
        *text = dup_top(L);
        lua_settop(L, top);
        return AIM_EVAL_ERROR;
    }
    int n = lua_gettop(L) - (top + 1);
    if (n == 0) {
        *text = aim_xstrdup("");
    } else {
        format_values(L, n); /* tb s */
        *text = dup_top(L);
    }
    lua_settop(L, top);
    return AIM_EVAL_OK;
}

aim_eval_status l_host_run_file(lua_State *L, const char *path, int argc, char *const *argv,
                                char **text)
{
    int top = lua_gettop(L);
    l_engine_chunk_begin(l_engine(L));
    *text = NULL;
    if (!lua_checkstack(L, argc + 8)) {
        *text = aim_xstrdup("lua: too many script arguments");
        return AIM_EVAL_ERROR;
    }
    /* arg = {[0] = path, argv...}, as lua.c builds it */
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback); /* tb */
    if (luaL_loadfile(L, path) != LUA_OK) {
        *text = dup_top(L);
        lua_settop(L, top);
        return AIM_EVAL_ERROR;
    }
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]); /* tb f args... */
    if (lua_pcall(L, argc, 0, top + 1) != LUA_OK) {
        *text = dup_top(L);
        lua_settop(L, top);
        return AIM_EVAL_ERROR;
    }
    lua_settop(L, top);
    return AIM_EVAL_OK;
}
