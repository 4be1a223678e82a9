/*
 * test_layers.c - the layer rule, checked by the linker (Makefile.am):
 * tests/test_layers links every object of libaim.a (--whole-archive) with
 * BLAS, libpng, zlib and MPI only, so a numeric file that calls Lua, curses,
 * readline or the engine fails to build; tests/test_layers_engine
 * (LAYER_ENGINE) links every object of libaimengine.a with libaim.a and Lua
 * but no curses or readline, and asks the Lua layer what front ends ask it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#ifdef LAYER_ENGINE
#include "aim/engine.h"
#endif
#include "tap.h"

int main(void)
{
#ifdef LAYER_ENGINE
    /* the link is the check (a failed link is a failed build), not a TAP point */
    tap_diag("libaimengine.a links whole with libaim.a and Lua, without curses or readline");
    tap_ok(aim_lua_incomplete("for i = 1, 3 do") && aim_lua_incomplete("x = ") &&
               aim_lua_incomplete("f(") && aim_lua_incomplete("s = [[abc"),
           "unfinished statements are incomplete");
    tap_ok(!aim_lua_incomplete("x = 1") && !aim_lua_incomplete("1 + 2") &&
               !aim_lua_incomplete("for i = 1, 3 do end") && !aim_lua_incomplete("x = = 1") &&
               !aim_lua_incomplete(""),
           "complete statements, expressions and plain syntax errors are not");
    tap_ok(!strncmp(aim_lua_release(), "Lua 5.4", 7), "the Lua layer's release: %s",
           aim_lua_release());
    aim_err e = {{0}};
    aim_engine *eng = aim_engine_new(NULL, &e);
    char **c = NULL;
    int n = eng ? aim_engine_complete(eng, "aim.pre", &c) : -1;
    int found = 0;
    for (int i = 0; i < n; i++) {
        found |= !strncmp(c[i], "aim.pre", 7);
        free(c[i]);
    }
    free(c);
    tap_ok(eng && n >= 1 && found, "aim_engine_complete asks aim.complete (%d candidates) %s", n,
           e.msg);
    aim_engine_free(eng);
#else
    char *d = aim_dirname("a/b");
    tap_ok(!strcmp(d, "a"), "libaim.a links whole without Lua, curses, readline or the engine");
    free(d);
#endif
    return tap_done();
}
