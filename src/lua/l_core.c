/*
 * l_core.c - the C module "aim.core": one table holding every C binding
 * (aim.model, aim.data, aim.tensor, aim.png, jobs). The Lua module "aim"
 * (lua/aim/init.lua) starts from it and adds the pure-Lua helpers.
 */
#include "config.h"

#include <time.h>

#include "aim/dist.h"
#include "lua/l_aim.h"

/* aim.clock() -> seconds on a monotonic clock, for timing in scripts */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)aim_now());
    return 1;
}

/* aim.memory_limit([bytes]) -> limit, used: what Lua values, tensors, models
 * (parameters and gradients, charged before they are allocated) and datasets
 * may use together (bytes; 0 = no limit) and use now; with an argument, sets the
 * limit first (0 or false: none). A limit below what is in use is allowed:
 * new allocations fail until enough is collected. */
static int l_memory_limit(lua_State *L)
{
    l_mem *m = l_mem_of(L);
    if (!lua_isnoneornil(L, 1)) {
        if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
            l_mem_set_limit(m, 0);
        } else {
            lua_Number v = luaL_checknumber(L, 1);
            luaL_argcheck(L, v >= 0 && v <= 0x1p62, 1, "expected bytes >= 0 (0: no limit)");
            luaL_argcheck(L, v == 0 || v >= (1 << 20), 1,
                          "a limit under 1 MiB would leave Lua unable to run");
            l_mem_set_limit(m, (size_t)v);
        }
    }
    lua_pushinteger(L, (lua_Integer)l_mem_limit(m));
    lua_pushinteger(L, (lua_Integer)l_mem_used(m));
    return 2;
}

int luaopen_aim_core(lua_State *L)
{
    lua_createtable(L, 0, 24); /* aim */
    l_open_tensor(L);
    l_open_png(L);
    l_open_plot(L);
    l_open_valloss(L);
    l_open_data(L);
    l_open_model(L);
    l_open_jobs(L);
    l_open_recon(L);
    l_open_probe(L);
    l_open_lora(L);
    l_open_follow(L);
    l_open_finetune(L);
    l_open_board(L);
    l_open_inspect(L);
    l_open_compare(L);
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
    lua_pushcfunction(L, l_memory_limit);
    lua_setfield(L, -2, "memory_limit");
    lua_pushstring(L, PACKAGE_VERSION);
    lua_setfield(L, -2, "version");
    /* aim.dist = {rank =, size =, mpi =}: which process of an mpirun job
     * this is (rank 0 of 1 otherwise); mpi = the MPI library or false */
    const aim_dist *world = aim_dist_world();
    lua_createtable(L, 0, 3);
    l_set_int(L, "rank", aim_dist_rank(world));
    l_set_int(L, "size", aim_dist_size(world));
    if (aim_dist_library())
        l_set_str(L, "mpi", aim_dist_library());
    else
        l_set_bool(L, "mpi", 0);
    lua_setfield(L, -2, "dist");
    return 1;
}
