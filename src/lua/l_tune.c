/*
 * l_tune.c - the Lua side that aim.lora and aim.finetune share (l_tune.h):
 * the probe panel's view, each epoch published (message, panel, next-patch
 * validation point, reconstructions and the Inspect view with the head's
 * attention), and the C job's step / epoch callbacks run under lua_pcall.
 * The job functions themselves are l_lora.c and l_finetune.c.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "lua/l_tune.h"

void l_tune_view_init(lua_State *L, l_tune *t, const l_model *lm, const char *kind, int depth,
                      const int *trained, int ntrained)
{
    aim_probe_view_init(&t->view, kind, depth);
    aim_probe_view *v = &t->view;
    for (int k = 0; k < t->nprobe; k++)
        if (t->probe[k] >= 1 && t->probe[k] <= v->n)
            v->role[t->probe[k] - 1] |= AIM_BLOCK_PROBED;
    for (int k = 0; k < ntrained; k++)
        if (trained[k] >= 1 && trained[k] <= v->n)
            v->role[trained[k] - 1] |= AIM_BLOCK_ADAPTED;
    float head_top1 = NAN;
    char head_kind[24] = "probe";
    if (lua_istable(L, TUNE_S_OPTS)) {
        lua_getfield(L, TUNE_S_OPTS, "head");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "kind");
            if (lua_type(L, -1) == LUA_TSTRING)
                snprintf(head_kind, sizeof head_kind, "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
            lua_getfield(L, -1, "best");
            if (lua_istable(L, -1)) {
                lua_getfield(L, -1, "test_top1");
                head_top1 = lua_isnumber(L, -1) ? (float)lua_tonumber(L, -1) : NAN;
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (isfinite(head_top1)) {
        for (int k = 0; k < t->nprobe; k++)
            if (t->probe[k] >= 1 && t->probe[k] <= v->n)
                v->ref[t->probe[k] - 1] = head_top1;
        snprintf(v->ref_kind, sizeof v->ref_kind, "frozen %s", head_kind);
    } else if (lm->probe_kind[0]) {
        for (int l = 0; l < v->n && l < 64; l++)
            v->ref[l] = lm->probe_top1[l];
        snprintf(v->ref_kind, sizeof v->ref_kind, "%s", lm->probe_kind);
    }
}

/* an epoch ended (or, as epoch 0, the job is about to start): the probe
 * panel, the next-patch loss as a validation point, the reconstructions
 * and the Inspect view of the trained trunk with the head's attention */
static void publish_epoch(l_tune *c, const aim_lora_epoch *ep)
{
    if (ep->epoch > 0) {
        char msg[200];
        int at = snprintf(msg, sizeof msg, "epoch %d/%d: loss %.4f  train %.2f%%  test %.2f%%",
                          ep->epoch, c->epochs, ep->train_loss, ep->train_top1, ep->test_top1);
        if (isfinite(ep->val_loss))
            snprintf(msg + at, sizeof msg - (size_t)at, "  next-patch %.4f", ep->val_loss);
        aim_engine_job_message(c->eng, msg);
        for (int k = 0; k < c->nprobe; k++)
            if (c->probe[k] >= 1 && c->probe[k] <= c->view.n)
                c->view.top1[c->probe[k] - 1] = ep->test_top1;
        c->view.step = ep->step;
    }
    snprintf(c->view.progress, sizeof c->view.progress, "epoch %d/%d",
             ep->epoch < c->epochs ? ep->epoch + 1 : c->epochs, c->epochs);
    aim_engine_job_probe(c->eng, &c->view);
    if (isfinite(ep->val_loss))
        aim_engine_job_val(c->eng, ep->step, ep->val_loss);
    l_probe head = {.p = (aim_probe *)ep->head, .nblocks = ep->nprobe};
    memcpy(head.blocks, ep->probe_blocks, (size_t)ep->nprobe * sizeof *ep->probe_blocks);
    l_board_refresh(c->board, c->m, ep->step, NULL, &head);
}

void l_tune_push_ints(lua_State *L, const int *v, int n)
{
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; k++) {
        lua_pushinteger(L, v[k]);
        lua_rawseti(L, -2, k + 1);
    }
}

static int is_stop(lua_State *L)
{
    return lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "stop");
}

/* runs under lua_pcall: (ctx, what, payload, fn|nil) -> stop? */
static int call_protected(lua_State *L)
{
    l_tune *c = lua_touserdata(L, 1);
    int what = (int)lua_tointeger(L, 2);
    int stop = 0;
    if (what == 0) { /* a step: publish, on_step, console lines, pause / stop */
        const aim_step_info *s = lua_touserdata(L, 3);
        aim_engine_job_publish(c->eng, s);
        l_board_step(c->board, c->m, s); /* r: the reconstructions now */
        if (lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            l_push_step_info(L, s);
            lua_call(L, 1, 1);
            stop = is_stop(L);
            lua_pop(L, 1);
        }
        if (aim_engine_job_step(c->eng, L))
            stop = 1;
    } else { /* an epoch ended, or epoch 0: the job starts */
        const aim_lora_epoch *ep = lua_touserdata(L, 3);
        publish_epoch(c, ep);
        if (ep->epoch > 0 && lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            lua_createtable(L, 0, 5);
            l_set_int(L, "epoch", ep->epoch);
            l_set_num(L, "loss", ep->train_loss);
            l_set_num(L, "train_top1", ep->train_top1);
            l_set_num(L, "test_top1", ep->test_top1);
            if (isfinite(ep->val_loss))
                l_set_num(L, "val_loss", ep->val_loss);
            lua_call(L, 1, 1);
            stop = is_stop(L);
            lua_pop(L, 1);
        }
        if (ep->epoch == 0 && aim_engine_job_step(c->eng, L))
            stop = 1;
    }
    lua_pushboolean(L, stop);
    return 1;
}

/* a Lua error stops the job and is kept in TUNE_S_ERR to be raised once the
 * job has cleaned up */
static int callback(l_tune *c, int what, const void *payload)
{
    lua_State *L = c->L;
    if (c->failed)
        return 1;
    if (!lua_checkstack(L, 8))
        return 1;
    /* we run inside aim.lora's / aim.finetune's frame (the C job calls back
     * from within it), so the TUNE_S_* slots are valid absolute indices */
    lua_pushcfunction(L, call_protected);
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, what);
    lua_pushlightuserdata(L, (void *)payload);
    lua_pushvalue(L, what == 0 ? TUNE_S_ONSTEP : TUNE_S_ONEPOCH);
    if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
        lua_replace(L, TUNE_S_ERR);
        c->failed = 1;
        return 1;
    }
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

int l_tune_on_step(void *ctx, const aim_step_info *s)
{
    l_tune *c = ctx;
    c->last = *s;
    return callback(c, 0, s);
}

int l_tune_on_epoch(void *ctx, const aim_lora_epoch *ep)
{
    return callback(ctx, 1, ep);
}
