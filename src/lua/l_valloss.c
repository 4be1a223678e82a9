/*
 * l_valloss.c - aim.validation_loss(m, ds [, {images = 512, batch = 64,
 * seed = 0}]) -> loss: the number `aim train` logs as val_loss (AIM's
 * next-patch loss on the first `images` images of ds, normalised, without
 * augmentation, the prefix of image i drawn from (seed, i); the pretraining
 * run's seed gives the same prefixes as its log). aim_validation_loss in
 * src/train/pretrain.c computes it; this is only its binding.
 */
#include "config.h"

#include "aim/train.h"
#include "lua/l_aim.h"

static const char *const valloss_options[] = {"images", "batch", "seed", NULL};

static int l_validation_loss(lua_State *L)
{
    l_model *lm = l_model_check(L, 1);
    l_dataset *ld = l_dataset_check(L, 2);
    l_check_options(L, 3, valloss_options);
    if (lm->busy)
        return luaL_argerror(L, 1, "the model is in use by a running job");
    const aim_config *c = aim_model_config(lm->m);
    l_dataset_fits(L, 2, NULL, ld->ds, c);
    int images = (int)l_opt_int(L, 3, "images", 512, 1, 1 << 30);
    int batch = (int)l_opt_int(L, 3, "batch", 64, 1, 4096);
    lua_Integer seed = l_opt_int(L, 3, "seed", 0, 0, LUA_MAXINTEGER);
    if (images > ld->ds->n)
        images = (int)ld->ds->n;
    if (batch > images)
        batch = images;
    aim_err e;
    if (aim_model_reserve(lm->m, batch, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    size_t img = (size_t)c->channels * c->image * c->image;
    /* scratch as userdata: collected even if something below raises */
    float *x = lua_newuserdatauv(L, (size_t)batch * img * sizeof(float), 0);
    int32_t *prefix = lua_newuserdatauv(L, (size_t)batch * sizeof(int32_t), 0);
    lua_pushnumber(L, aim_validation_loss(lm->m, ld->ds, images, batch, (uint64_t)seed, x,
                                          prefix));
    return 1;
}

void l_open_valloss(lua_State *L)
{
    lua_pushcfunction(L, l_validation_loss); /* aim f */
    lua_setfield(L, -2, "validation_loss");
}
