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
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

int luaopen_aim_core(lua_State *L)
{
    lua_createtable(L, 0, 24); /* aim */
    l_open_tensor(L);
    l_open_png(L);
    l_open_data(L);
    l_open_model(L);
    l_open_jobs(L);
    l_open_recon(L);
    l_open_probe(L);
    l_open_lora(L);
    l_open_board(L);
    l_open_inspect(L);
    l_open_compare(L);
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, -2, "clock");
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
