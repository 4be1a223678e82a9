/*
 * l_board.c - what a pretraining job publishes for the TUI's panels besides
 * its steps (aim/engine.h "the board"), and the console's requests to the
 * running job:
 *
 *   aim.save_checkpoint()  write a checkpoint after the current step
 *   aim.probe_now()        run the live linear probe after the current step
 *   aim.recon_now()        refresh the reconstructions now
 *
 * (the console's save(), probe() and recon()). Each returns a string saying
 * what will happen, or nil, message when it cannot (no job, no run folder,
 * no probe data). The Inspect view's maps of the reconstruction images
 * (l_inspect.c) are published with the reconstructions. After a job has
 * ended, probe_now() and recon_now() work on its model and data while they
 * are still open. The images are chosen by aim_recon_pick
 * (src/model/recon.c) and the views made by src/engine/views.c: what is
 * left here is the job's state and its Lua side.
 *
 * A board is a userdata ("aim.board") made when a job begins: it keeps the
 * job's model and datasets alive through its user values, the fixed
 * reconstruction images (normalised with the model's statistics), the
 * raw-pixel probe baseline and the console's pending requests. The newest
 * one is kept in the registry. Everything here runs on the engine thread.
 * During a job with a run folder its reconstructions also go to the job's
 * TensorBoard event file (aim_step_info.events, handed to l_board_step by
 * the training loop's on_step on this same thread) as "recon/board".
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/probe.h"
#include "aim/recon.h"
#include "lua/l_aim.h"

#define L_BOARD_MT "aim.board"

static const char board_key = 'b';

enum { UV_MODEL = 1, UV_DATA, UV_PROBE, UV_RECON, UV_COUNT = 4 };

struct l_board {
    aim_engine *eng;
    int running;          /* the job runs: requests go to it */
    int req;              /* AIM_REQ_* bits for the job */
    int recon_req;        /* refresh the reconstructions after this step */
    int64_t recon_every;
    int probe_images;
    uint64_t seed;
    int can_checkpoint;
    /* reconstructions: rn images [rn, C, H, W], normalised as the model sees them */
    float *rx;
    int rn;
    float baseline;       /* NaN until measured */
    int inspect_off;      /* the Inspect view cannot show this model (said once) */
    int events_off;       /* writing images to the event file failed (said once) */
    aim_probe_view pv;
};

static int board_gc(lua_State *L)
{
    l_board *b = luaL_checkudata(L, 1, L_BOARD_MT);
    free(b->rx);
    b->rx = NULL;
    return 0;
}

/* the user value i of the board at idx, pushed */
static void push_uv(lua_State *L, int idx, int i)
{
    lua_getiuservalue(L, idx, i);
}

/* the newest board (pushed, or nil) */
static l_board *push_last(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &board_key); /* board|nil */
    return luaL_testudata(L, -1, L_BOARD_MT);
}

l_board *l_board_new(lua_State *L, aim_engine *eng, int model_idx, int data_idx, int probe_idx,
                     int recon_idx, const l_board_opts *o)
{
    model_idx = lua_absindex(L, model_idx);
    data_idx = lua_absindex(L, data_idx);
    probe_idx = probe_idx ? lua_absindex(L, probe_idx) : 0;
    recon_idx = recon_idx ? lua_absindex(L, recon_idx) : 0;
    l_board *b = lua_newuserdatauv(L, sizeof *b, UV_COUNT); /* board */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, L_BOARD_MT);
    b->eng = eng;
    b->recon_every = o->recon_every;
    b->probe_images = o->probe_images > 0 ? o->probe_images : 2000;
    b->seed = o->seed;
    b->can_checkpoint = o->can_checkpoint;
    b->baseline = NAN;
    b->running = 1;
    int idx[UV_COUNT] = {model_idx, data_idx, probe_idx, recon_idx};
    for (int i = 0; i < UV_COUNT; i++) {
        if (idx[i])
            lua_pushvalue(L, idx[i]);
        else
            lua_pushnil(L);
        lua_setiuservalue(L, -2, i + 1);
    }
    if (recon_idx && o->recon_images > 0) {
        l_dataset *rd = l_dataset_check(L, recon_idx);
        b->rn = aim_recon_pick(rd->ds, aim_model_config(l_model_check(L, model_idx)->m),
                               o->recon_images < AIM_RECON_MAX ? o->recon_images : AIM_RECON_MAX,
                               &b->rx);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &board_key);
    return b;
}

void l_board_end(l_board *b)
{
    b->running = 0;
    b->req = 0;
    b->recon_req = 0;
}

int l_board_requests(l_board *b)
{
    int r = b->req;
    b->req = 0;
    return r;
}

int l_board_request(lua_State *L, int bits)
{
    l_board *b = push_last(L);
    lua_pop(L, 1);
    if (!b || !b->running)
        return 0;
    b->req |= bits;
    return 1;
}

/* ------------------------------------------------------ reconstructions */

/* Compute and publish the reconstructions of the board's images on m; with
 * the job's event file (events, NULL: none), also write them there at full
 * resolution as the image summary "recon/board" (a failed write is a
 * message, not a failure). */
static int publish_recon(l_board *b, aim_model *m, int64_t step, aim_tfevents *events,
                         aim_err *e)
{
    if (b->rn == 0)
        return aim_errf(e, "recon: this job has no reconstruction images (option recon)");
    const aim_config *c = aim_model_config(m);
    int C = c->channels, H = c->image, N = aim_config_tokens(c);
    if (C != 1 && C != 3)
        return aim_errf(e, "recon: %d channels cannot be shown", C);
    float mean[4] = {0, 0, 0, 0}, sd[4] = {1, 1, 1, 1};
    for (int k = 0; k < c->nmean && k < 4; k++) {
        mean[k] = c->mean[k];
        sd[k] = c->std[k];
    }
    int S = N / 2 > 0 ? N / 2 : 1;
    size_t img = (size_t)C * H * H;
    float *out = aim_xmalloc(3 * (size_t)b->rn * img * sizeof(float));
    double loss = 0;
    if (aim_model_reconstruct(m, b->rx, b->rn, S, mean, sd, out, out + b->rn * img,
                              out + 2 * b->rn * img, &loss, e) != 0) {
        free(out);
        return -1;
    }
    aim_err te = {{0}};
    if (events && !b->events_off &&
        aim_recon_summary(events, "recon/board", step, out, out + b->rn * img,
                          out + 2 * b->rn * img, b->rn, C, H, &te) != 0) {
        b->events_off = 1; /* the scalars' writer reports its own failures */
        aim_engine_job_message(b->eng, te.msg);
    }
    aim_recon_view *v = aim_xmalloc(sizeof *v);
    aim_recon_view_fill(v, c, out, b->rn, S, step, loss);
    aim_engine_job_recon(b->eng, v);
    free(v);
    free(out);
    return 0;
}

/* The Inspect view's maps of the same images (l_inspect.c): PCA per block,
 * statistics, the error map from S = 1. A model the view cannot show is
 * reported once. */
static void publish_inspect(l_board *b, aim_model *m, int64_t step)
{
    if (b->inspect_off || b->rn == 0)
        return;
    char source[64];
    snprintf(source, sizeof source, "pretrain step %lld", (long long)step);
    aim_err e = {{0}};
    if (l_inspect_publish(b->eng, m, b->rx, b->rn, NULL, 1, source, step, &e) != 0) {
        b->inspect_off = 1;
        aim_engine_job_message(b->eng, e.msg);
    }
}

void l_board_step(l_board *b, aim_model *m, const aim_step_info *s)
{
    int due = b->recon_req || s->step == 1 || s->step == s->total ||
              (b->recon_every > 0 && s->step % b->recon_every == 0);
    if (!due || b->rn == 0)
        return;
    b->recon_req = 0;
    aim_err e = {{0}};
    if (publish_recon(b, m, s->step, s->events, &e) != 0)
        aim_engine_job_message(b->eng, e.msg);
    else
        publish_inspect(b, m, s->step);
}

/* ------------------------------------------------------------ probes */

void l_board_probe(lua_State *L, l_board *b, int64_t step, const float *top1, int n)
{
    aim_probe_view *v = &b->pv;
    if (!top1 && n > 0) { /* a probe starts: measure the baseline once */
        if (isnan(b->baseline)) {
            lua_rawgetp(L, LUA_REGISTRYINDEX, &board_key); /* board */
            push_uv(L, -1, UV_DATA);
            push_uv(L, -2, UV_PROBE);   /* board data probe */
            l_dataset *tr = luaL_testudata(L, -2, L_DATASET_MT);
            l_dataset *te = luaL_testudata(L, -1, L_DATASET_MT);
            float t = NAN;
            aim_err e = {{0}};
            if (tr && te && tr->ds && te->ds &&
                aim_live_probe_raw(tr->ds, b->probe_images, te->ds, b->probe_images / 2,
                                   b->seed, &t, &e) == 0)
                b->baseline = t;
            lua_pop(L, 3);
        }
        if (!v->kind[0]) {
            for (int l = 0; l < AIM_PROBE_BLOCKS; l++)
                v->top1[l] = NAN;
        }
        snprintf(v->kind, sizeof v->kind, "live linear");
        v->n = n < AIM_PROBE_BLOCKS ? n : AIM_PROBE_BLOCKS;
        v->running = 1;
    } else if (!top1) { /* failed */
        v->running = 0;
    } else {
        v->n = n < AIM_PROBE_BLOCKS ? n : AIM_PROBE_BLOCKS;
        for (int l = 0; l < v->n; l++)
            v->top1[l] = top1[l];
        v->step = step;
        v->running = 0;
    }
    v->baseline = b->baseline;
    aim_engine_job_probe(b->eng, v);
}

/* ------------------------------------------------------------ Lua */

static int l_save_checkpoint(lua_State *L)
{
    l_board *b = push_last(L);
    if (!b || !b->running)
        return l_fail(L, "save: no job is running (m:save(path) saves a model)");
    if (!b->can_checkpoint)
        return l_fail(L, "save: this job writes no checkpoints (give it out= and ckpt_minutes=, "
                         "ckpt_every= or checkpoints=true)");
    b->req |= AIM_REQ_CHECKPOINT;
    lua_pushstring(L, "a checkpoint will be written after this step");
    return 1;
}

/* the board's model if it is open and free, else NULL (pushes nothing) */
static aim_model *idle_model(lua_State *L, int bidx)
{
    push_uv(L, bidx, UV_MODEL);
    l_model *lm = luaL_testudata(L, -1, L_MODEL_MT);
    lua_pop(L, 1);
    return lm && lm->m && !lm->busy ? lm->m : NULL;
}

static int l_recon_now(lua_State *L)
{
    l_board *b = push_last(L); /* board */
    if (!b)
        return l_fail(L, "recon: no job has run yet");
    if (b->rn == 0)
        return l_fail(L, "recon: this job has no reconstruction images (option recon)");
    if (b->running) {
        b->recon_req = 1;
        lua_pushstring(L, "reconstructions will be refreshed after this step");
        return 1;
    }
    aim_model *m = idle_model(L, lua_gettop(L));
    if (!m)
        return l_fail(L, "recon: the job's model is closed");
    aim_err e = {{0}};
    aim_snapshot s;
    aim_engine_snapshot(b->eng, &s);
    if (publish_recon(b, m, s.step.step, NULL, &e) != 0) /* the job's event file is closed */
        return l_fail(L, e.msg);
    publish_inspect(b, m, s.step.step);
    lua_pushstring(L, "reconstructions refreshed");
    return 1;
}

static int l_probe_now(lua_State *L)
{
    l_board *b = push_last(L); /* board */
    if (!b)
        return l_fail(L, "probe: no job has run yet");
    int bidx = lua_gettop(L);
    push_uv(L, bidx, UV_DATA);
    push_uv(L, bidx, UV_PROBE); /* board data probe */
    l_dataset *tr = luaL_testudata(L, -2, L_DATASET_MT);
    l_dataset *te = luaL_testudata(L, -1, L_DATASET_MT);
    if (!te)
        return l_fail(L, "probe: this job has no probe data (option probe_test)");
    if (b->running) {
        b->req |= AIM_REQ_PROBE;
        lua_pushstring(L, "a live probe will run after this step");
        return 1;
    }
    aim_model *m = idle_model(L, bidx);
    if (!m || !tr || !tr->ds || !te->ds)
        return l_fail(L, "probe: the job's model or data is closed");
    const aim_config *c = aim_model_config(m);
    aim_snapshot s;
    aim_engine_snapshot(b->eng, &s);
    l_board_probe(L, b, s.step.step, NULL, c->depth);
    float *top1 = aim_xcalloc((size_t)c->depth, sizeof *top1);
    aim_err e = {{0}};
    int rc = aim_live_probe(m, tr->ds, b->probe_images, te->ds, b->probe_images / 2, b->seed,
                            top1, &e);
    l_board_probe(L, b, s.step.step, rc == 0 ? top1 : NULL, rc == 0 ? c->depth : 0);
    int best = 0;
    for (int l = 1; l < c->depth; l++)
        best = top1[l] > top1[best] ? l : best;
    float bt = top1[best];
    free(top1);
    if (rc != 0)
        return l_fail(L, e.msg);
    lua_pushfstring(L, "live probe: best block %d, top-1 %f%%", best + 1, (lua_Number)bt);
    return 1;
}

static const luaL_Reg board_funcs[] = {
    {"save_checkpoint", l_save_checkpoint},
    {"recon_now", l_recon_now},
    {"probe_now", l_probe_now},
    {NULL, NULL},
};

void l_open_board(lua_State *L)
{
    if (luaL_newmetatable(L, L_BOARD_MT)) { /* aim mt */
        lua_pushcfunction(L, board_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, board_funcs, 0); /* into aim */
}
