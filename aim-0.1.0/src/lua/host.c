/*
 * host.c - the Lua state the engine owns: standard libraries, print()
 * routed to the engine, the embedded lua/aim/ modules and the C module
 * "aim.core" in package.preload, and running chunks the way lua.c does
 * (a traceback message handler, `return <line>` first for the console,
 * incomplete input detected by the "<eof>" syntax error).
 *
 * The host's context (the engine pointer) lives in the registry under the
 * address of `engine_key`, never in a C global. The state allocates through
 * a memory account (l_mem, the allocator's user data): Lua's own memory and
 * tensor storage are counted against a limit, so a runaway allocation is a
 * Lua error ("not enough memory", catchable by pcall) and not the kernel's
 * OOM killer ending the program with its training run.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "lua/l_aim.h"

static const char engine_key = 'e';

/* ------------------------------------------------------------ memory */

struct l_mem {
    size_t used, limit; /* bytes; limit 0 = none */
    size_t grace;       /* allowed beyond the limit while the host itself
                           compiles a line or formats results, so that after
                           a script filled memory `big = nil` still runs */
};

#define HOST_GRACE ((size_t)4 << 20)

l_mem *l_mem_of(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

int l_mem_take(l_mem *m, size_t n)
{
    size_t limit = m->limit + m->grace;
    if (m->limit && (n > limit || m->used > limit - n))
        return -1;
    m->used += n;
    return 0;
}

void l_mem_give(l_mem *m, size_t n)
{
    m->used = n < m->used ? m->used - n : 0;
}

size_t l_mem_used(const l_mem *m)
{
    return m->used;
}

size_t l_mem_limit(const l_mem *m)
{
    return m->limit;
}

void l_mem_set_limit(l_mem *m, size_t limit)
{
    m->limit = limit;
}

/* lua_Alloc with the account: a block that would pass the limit is refused
 * (NULL), which Lua turns into a memory error after a full collection */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    l_mem *m = ud;
    if (!ptr)
        osize = 0; /* osize then codes the object's type */
    if (nsize == 0) {
        free(ptr);
        l_mem_give(m, osize);
        return NULL;
    }
    if (nsize > osize && l_mem_take(m, nsize - osize) != 0)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize > osize)
            l_mem_give(m, nsize - osize);
        return NULL;
    }
    if (nsize < osize)
        l_mem_give(m, osize - nsize);
    return p;
}

/* half the machine's memory: enough for any script, and a runaway one stops
 * before the machine runs out */
static size_t default_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return (size_t)4 << 30;
    return (size_t)pages / 2 * (size_t)size;
}

static void fmt_bytes(char *buf, size_t len, size_t n)
{
    if (n >= (size_t)1 << 30)
        snprintf(buf, len, "%.1f GiB", (double)n / (1 << 30));
    else
        snprintf(buf, len, "%.1f MiB", (double)n / (1 << 20));
}

void l_mem_status(const l_mem *m, char *buf, size_t len)
{
    char lim[32], used[32];
    fmt_bytes(lim, sizeof lim, m->limit);
    fmt_bytes(used, sizeof used, m->used);
    snprintf(buf, len, "Lua values and tensors may use %s, %s in use; aim.memory_limit(bytes) "
                       "changes the limit", lim, used);
}

void l_mem_explain(lua_State *L)
{
    char st[160];
    l_mem_status(l_mem_of(L), st, sizeof st);
    lua_pop(L, 1);
    lua_pushfstring(L, "not enough memory (%s)", st);
}

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

/* an error outside any protected call (lauxlib's panic): say what it was */
static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "aim: PANIC: unprotected error in a Lua call (%s)\n",
            msg ? msg : "error object is not a string");
    return 0; /* abort */
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

/* load, loadfile, dofile and require's searcher for Lua files with mode
 * "t" whatever the caller asks (the arguments after mode are passed on as
 * given: an explicit nil env is not the same as none) */
static const char text_only[] =
    "local load0, loadfile0 = load, loadfile\n"
    "function load(chunk, name, mode, ...)\n"
    "  return load0(chunk, name, 't', ...)\n"
    "end\n"
    "function loadfile(name, mode, ...)\n"
    "  return loadfile0(name, 't', ...)\n"
    "end\n"
    "function dofile(name)\n"
    "  local f, err = loadfile0(name, 't')\n"
    "  if not f then error(err, 2) end\n"
    "  return f()\n"
    "end\n"
    "package.searchers[2] = function(name)\n" /* require's Lua-file searcher */
    "  local path, err = package.searchpath(name, package.path)\n"
    "  if not path then return err end\n"
    "  local f, e = loadfile0(path, 't')\n"
    "  if not f then\n"
    "    error(string.format(\"error loading module '%s' from file '%s':\\n\\t%s\", name, path, e), 2)\n"
    "  end\n"
    "  return f, path\n"
    "end\n";

static int open_state(lua_State *L)
{
    aim_engine *eng = lua_touserdata(L, 1);
    luaL_openlibs(L);
    lua_pushlightuserdata(L, eng);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &engine_key);
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");
    /* text chunks only: Lua does not verify bytecode, so a crafted binary
     * chunk (load(evil)) could crash the program with its training run */
    if (luaL_loadbuffer(L, text_only, sizeof text_only - 1, "=text-only chunks") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
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
    l_mem *m = aim_xcalloc(1, sizeof *m);
    m->limit = default_limit();
    lua_State *L = lua_newstate(l_alloc, m);
    if (!L) {
        free(m);
        aim_errf(e, "lua: cannot create a state (out of memory)");
        return NULL;
    }
    lua_atpanic(L, panic);
    lua_pushcfunction(L, open_state);
    lua_pushlightuserdata(L, eng);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        aim_errf(e, "lua: %s", lua_tostring(L, -1));
        l_host_close(L);
        return NULL;
    }
    return L;
}

void l_host_close(lua_State *L)
{
    if (!L)
        return;
    l_mem *m = l_mem_of(L);
    l_stdio_close(L);
    lua_close(L);
    free(m);
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

/* What the protected bodies below get and give back. Everything that may
 * allocate in Lua runs inside them: near the memory limit even pushing a
 * string can fail, and that error must land in a pcall, not in Lua's panic
 * handler (which would end the program). */
typedef struct run_args {
    const char *code, *name, *path;
    int repl, argc;
    char *const *argv;
    char *text;          /* malloc'd result or message */
    aim_eval_status rc;
} run_args;

static void set_text(run_args *a, lua_State *L)
{
    free(a->text);
    a->text = dup_top(L);
}

/* (args) -> (): compile and run a->code */
static int eval_body(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    int top = lua_gettop(L);
    l_mem *m = l_mem_of(L);
    lua_pushcfunction(L, traceback); /* args tb */
    m->grace = HOST_GRACE;
    int st = compile(L, a->code, a->name ? a->name : "=stdin", a->repl); /* args tb f|msg */
    if (st != LUA_OK) {
        a->rc = a->repl && st == LUA_ERRSYNTAX && incomplete(L) ? AIM_EVAL_INCOMPLETE
                                                                 : AIM_EVAL_ERROR;
        if (st == LUA_ERRMEM)
            l_mem_explain(L);
        set_text(a, L);
        return 0;
    }
    m->grace = 0;
    st = lua_pcall(L, 0, LUA_MULTRET, top + 1); /* args tb results... | args tb msg */
    m->grace = HOST_GRACE;
    if (st != LUA_OK) {
        a->rc = AIM_EVAL_ERROR;
        if (st == LUA_ERRMEM)
            l_mem_explain(L);
        set_text(a, L);
        return 0;
    }
    int n = lua_gettop(L) - (top + 1);
    a->rc = AIM_EVAL_OK;
    if (n == 0) {
        free(a->text);
        a->text = aim_xstrdup("");
    } else {
        format_values(L, n); /* args tb s */
        set_text(a, L);
    }
    return 0;
}

/* (args) -> (): arg = {...}, load and run a->path */
static int run_file_body(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    int top = lua_gettop(L);
    a->rc = AIM_EVAL_ERROR;
    luaL_checkstack(L, a->argc + 8, "too many script arguments");
    /* arg = {[0] = path, argv...}, as lua.c builds it */
    lua_createtable(L, a->argc, 1);
    lua_pushstring(L, a->path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < a->argc; i++) {
        lua_pushstring(L, a->argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback); /* args tb */
    int st = luaL_loadfilex(L, a->path, "t"); /* a script is text (see text_only) */
    if (st == LUA_ERRSYNTAX) { /* "attempt to load a binary chunk" names no file */
        const char *msg = lua_tostring(L, -1);
        if (msg && !strstr(msg, a->path))
            lua_pushfstring(L, "%s: %s", a->path, msg);
    }
    if (st == LUA_OK) {
        for (int i = 0; i < a->argc; i++)
            lua_pushstring(L, a->argv[i]); /* args tb f args... */
        st = lua_pcall(L, a->argc, 0, top + 1);
    }
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM)
            l_mem_explain(L);
        set_text(a, L);
        return 0;
    }
    a->rc = AIM_EVAL_OK;
    return 0;
}

/* Run body(args) protected; an error that escaped it (a memory error while
 * building a message) becomes the text, made without Lua's help. */
static aim_eval_status run_protected(lua_State *L, lua_CFunction body, run_args *a)
{
    int top = lua_gettop(L);
    l_engine_chunk_begin(l_engine(L));
    a->rc = AIM_EVAL_ERROR;
    if (!lua_checkstack(L, 8)) {
        a->text = aim_xstrdup("lua: stack overflow");
        return a->rc;
    }
    lua_pushcfunction(L, body);
    lua_pushlightuserdata(L, a);
    int st = lua_pcall(L, 1, 0, 0);
    l_mem_of(L)->grace = 0;
    if (st != LUA_OK) {
        a->rc = AIM_EVAL_ERROR;
        free(a->text);
        if (st == LUA_ERRMEM) {
            char m[160];
            l_mem_status(l_mem_of(L), m, sizeof m);
            a->text = aim_xasprintf("not enough memory (%s)", m);
        } else {
            const char *msg = lua_tostring(L, -1);
            a->text = aim_xstrdup(msg ? msg : "lua: error");
        }
    }
    lua_settop(L, top);
    if (!a->text)
        a->text = aim_xstrdup("");
    return a->rc;
}

aim_eval_status l_host_eval(lua_State *L, const char *code, const char *name, int repl,
                            char **text)
{
    run_args a = {.code = code, .name = name, .repl = repl};
    aim_eval_status rc = run_protected(L, eval_body, &a);
    *text = a.text;
    return rc;
}

/* ------------------------------------------------ for the front ends */

int aim_lua_incomplete(const char *code)
{
    /* a bare state of its own that only compiles (as lua.c does: "return
     * <code>" first, then the code; a syntax error at <eof> means "more"),
     * so the answer never waits for the engine */
    lua_State *L = luaL_newstate();
    if (!L)
        return 0;
    char *ret = aim_xasprintf("return %s;", code);
    int st = luaL_loadbuffer(L, ret, strlen(ret), "=console");
    free(ret);
    lua_settop(L, 0);
    int more = 0;
    if (st != LUA_OK) {
        st = luaL_loadbuffer(L, code, strlen(code), "=console");
        more = st == LUA_ERRSYNTAX && incomplete(L);
    }
    lua_close(L);
    return more;
}

const char *aim_lua_release(void)
{
    return LUA_RELEASE;
}

typedef struct complete_args {
    const char *word;
    char **cands;
    int n;
} complete_args;

/* (args) -> (): require('aim.complete')(word) into a->cands */
static int complete_body(lua_State *L)
{
    complete_args *a = lua_touserdata(L, 1);
    lua_getglobal(L, "require");
    lua_pushstring(L, "aim.complete");
    lua_call(L, 1, 1);
    lua_pushstring(L, a->word);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1))
        return 0;
    lua_Unsigned n = lua_rawlen(L, -1);
    if (n > 100000)
        n = 100000;
    a->cands = aim_xcalloc((size_t)n + 1, sizeof *a->cands);
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        if (lua_type(L, -1) == LUA_TSTRING)
            a->cands[a->n++] = aim_xstrdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return 0;
}

int l_host_complete(lua_State *L, const char *word, char ***cands)
{
    complete_args a = {.word = word};
    int top = lua_gettop(L);
    if (lua_checkstack(L, 4)) {
        lua_pushcfunction(L, complete_body);
        lua_pushlightuserdata(L, &a);
        lua_pcall(L, 1, 0, 0); /* a failed completion offers what it found */
    }
    lua_settop(L, top);
    *cands = a.cands;
    return a.n;
}

aim_eval_status l_host_run_file(lua_State *L, const char *path, int argc, char *const *argv,
                                char **text)
{
    run_args a = {.path = path, .argc = argc, .argv = argv};
    aim_eval_status rc = run_protected(L, run_file_body, &a);
    if (rc == AIM_EVAL_OK) { /* as before: no text on success */
        free(a.text);
        a.text = NULL;
    }
    *text = a.text;
    return rc;
}
