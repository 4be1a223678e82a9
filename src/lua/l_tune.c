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

#include "aim/dist.h"
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

void l_tune_check_data(lua_State *L, const aim_config *c, int batch)
{
    const aim_dataset *dtr = l_dataset_check(L, TUNE_S_TRAIN)->ds;
    l_dataset_fits(L, TUNE_S_TRAIN, NULL, dtr, c);
    l_dataset_fits(L, TUNE_S_TEST, NULL, l_dataset_check(L, TUNE_S_TEST)->ds, c);
    if (dtr->n < batch)
        luaL_argerror(L, TUNE_S_TRAIN,
                      lua_pushfstring(L, "%d training images are fewer than one batch of %d "
                                         "(option 'batch')",
                                      (int)dtr->n, batch));
}

int l_tune_begin(l_tune *t, l_model *lm, l_dataset *tr, l_dataset *te, const char *job,
                 const char *desc, double lr, uint64_t seed, const char *out, aim_runlog **log,
                 aim_err *e)
{
    lua_State *L = t->L;
    lua_settop(L, TUNE_S_ERR);
    l_board_opts bo = {.recon_images = AIM_RECON_MAX, .seed = seed, .job = job,
                       .no_requests = 1};
    t->board = l_board_new(L, t->eng, TUNE_S_MODEL, TUNE_S_TRAIN, TUNE_S_TEST, TUNE_S_TEST, &bo);
    *log = NULL;
    if (out && aim_runlog_open_lead(out, aim_dist_world(), log, e) != 0)
        return -1;
    if (aim_engine_job_begin(t->eng, job, desc, lr, e) != 0) {
        aim_runlog_close(*log, NULL);
        *log = NULL;
        luaL_error(L, "%s", e->msg);
    }
    t->view.running = 1;
    aim_engine_job_probe(t->eng, &t->view);
    aim_engine_job_labels(t->eng, "cross-entropy", "next-patch");
    t->lm = lm;
    t->tr = tr;
    t->te = te;
    lm->busy = 1;
    tr->busy = te->busy = 1;
    aim_job_norm_as_model(lm->m, tr->ds, te->ds, &t->ns);
    return 0;
}

int l_tune_finish(l_tune *t, int rc, aim_runlog *log, aim_err *e)
{
    aim_err ce;
    if (aim_runlog_close(log, &ce) != 0 && rc == 0) {
        rc = -1;
        *e = ce;
    }
    aim_job_norm_restore(t->tr->ds, t->te->ds, &t->ns);
    t->lm->busy = 0;
    t->tr->busy = t->te->busy = 0;
    t->view.running = 0;
    t->view.progress[0] = 0;
    aim_engine_job_probe(t->eng, &t->view);
    l_board_end(t->board);
    return rc;
}

int l_tune_end(l_tune *t, int rc, const char *summary, const char *emsg, aim_probe *probe)
{
    aim_engine_job_end(t->eng, summary, t->last.step ? &t->last : NULL);
    if (t->failed || aim_engine_interrupted(t->eng) || rc != 0) {
        aim_probe_free(probe);
        return l_job_failure(t->L, t->eng, t->failed, TUNE_S_ERR, emsg);
    }
    return 0;
}
