/*
 * l_probe.c - aim.probe(m, train, test [, opts]) -> result: probe a frozen
 * trunk from Lua, the same job as `aim probe` (include/aim/probe.h).
 *
 * opts (the `aim probe` flags): blocks = {3, 4} | sweep = true [window = k],
 * kind = "attentive" | "linear", raw = true (pixels; m may be nil), epochs
 * (30; 15 per set with sweep), batch, lr, wd, seed, save = path (trunk + best probe), out = DIR (a run
 * folder as `aim probe --out`: run.json, probe_epoch and probe_result lines
 * in metrics.jsonl and the event file), on_set = function(r) called as each
 * block set finishes (return "stop" to end), on_epoch = function(e).
 * Console lines queued meanwhile run between epochs.
 * result = {sets = {{blocks = {..}, label =, test_top1 =, train_top1 =,
 * loss =, seconds =}, ...}, best = <the best set>, kind =, stopped =,
 * probe = <the best set's trained probe>}.
 *
 * Probes as objects ("aim.probe"): r.probe, or aim.load_probe(path) for a
 * file written with save = path (or `aim probe --save`; nil, message when
 * it holds none). p:attention(m, x) -> [B,NH,N], the attention weights of
 * an attentive probe's query over the N patches of each image (features of
 * p:blocks() from m, BatchNorm with the running statistics); p:blocks(),
 * p:kind(), p:classes(), p:close().
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "aim/dist.h"
#include "aim/inspect.h"
#include "aim/probe.h"
#include "aim/runlog.h"
#include "lua/l_aim.h"

enum { S_MODEL = 1, S_TRAIN, S_TEST, S_OPTS, S_ONSET, S_ONEPOCH, S_ERR, S_PROBE, S_BOARD };

/* ------------------------------------------------------------ probe objects */

l_probe *l_probe_check(lua_State *L, int idx)
{
    l_probe *p = luaL_checkudata(L, idx, L_PROBE_MT);
    if (!p->p)
        luaL_argerror(L, idx, "the probe is closed");
    return p;
}

l_probe *l_probe_opt(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "probe"); /* ... p|nil (an aim.probe result) */
        l_probe *p = luaL_testudata(L, -1, L_PROBE_MT);
        lua_pop(L, 1); /* the result table keeps it alive */
        if (!p || !p->p)
            luaL_argerror(L, idx, "this table has no probe (an aim.probe result has r.probe)");
        return p;
    }
    return l_probe_check(L, idx);
}

void l_probe_describe(const l_probe *p, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "%s probe on block%s ",
                                 aim_probe_get_kind(p->p) == AIM_PROBE_ATTENTIVE ? "attentive"
                                                                                 : "linear",
                                 p->nblocks > 1 ? "s" : "");
    for (int i = 0; i < p->nblocks && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? "," : "", p->blocks[i]);
}

static l_probe *push_empty_probe(lua_State *L)
{
    l_probe *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, L_PROBE_MT);
    return p;
}

static int probe_gc(lua_State *L)
{
    l_probe *p = luaL_checkudata(L, 1, L_PROBE_MT);
    aim_probe_free(p->p);
    p->p = NULL;
    l_mem_give(l_mem_of(L), p->charged);
    p->charged = 0;
    return 0;
}

static int probe_tostring(lua_State *L)
{
    l_probe *p = luaL_checkudata(L, 1, L_PROBE_MT);
    if (!p->p) {
        lua_pushstring(L, "aim.probe (closed)");
        return 1;
    }
    char d[160];
    l_probe_describe(p, d, sizeof d);
    int N, D, NH;
    aim_probe_shape(p->p, &N, &D, &NH);
    lua_pushfstring(L, "aim.probe %s, %d classes, %d tokens of width %d, %d head(s)", d,
                    aim_probe_classes(p->p), N, D, NH);
    return 1;
}

static int probe_blocks(lua_State *L)
{
    l_probe *p = l_probe_check(L, 1);
    lua_createtable(L, p->nblocks, 0);
    for (int i = 0; i < p->nblocks; i++) {
        lua_pushinteger(L, p->blocks[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int probe_kind(lua_State *L)
{
    l_probe *p = l_probe_check(L, 1);
    lua_pushstring(L, aim_probe_get_kind(p->p) == AIM_PROBE_ATTENTIVE ? "attentive" : "linear");
    return 1;
}

static int probe_classes(lua_State *L)
{
    lua_pushinteger(L, aim_probe_classes(l_probe_check(L, 1)->p));
    return 1;
}

static int probe_attention(lua_State *L)
{
    l_probe *p = l_probe_check(L, 1);
    aim_model *m = l_model_check(L, 2)->m;
    l_tensor *x = l_tensor_check(L, 3);
    const aim_config *c = aim_model_config(m);
    int B = l_tensor_check_images(L, 3, x, c->channels, c->image, c->image);
    if (aim_probe_get_kind(p->p) != AIM_PROBE_ATTENTIVE)
        return luaL_argerror(L, 1, "a linear probe has no attention (an attentive one has)");
    int N, D, NH;
    aim_probe_shape(p->p, &N, &D, &NH);
    if (N != aim_config_tokens(c) || D != c->width)
        return luaL_argerror(L, 2, lua_pushfstring(L, "the probe takes %d tokens of width %d, "
                                                      "the model gives %d of width %d",
                                                   N, D, aim_config_tokens(c), c->width));
    for (int i = 0; i < p->nblocks; i++)
        if (p->blocks[i] > c->depth)
            return luaL_argerror(L, 2, lua_pushfstring(L, "the probe reads block %d; the model "
                                                          "has %d", p->blocks[i], c->depth));
    int64_t shape[3] = {B, NH, N};
    l_tensor *out = l_tensor_push(L, 3, shape);
    aim_err e;
    if (aim_inspect_attention(m, p->p, p->blocks, p->nblocks, x->data, B, out->data, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    return 1;
}

static int l_load_probe(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    l_probe *p = push_empty_probe(L);
    aim_err e;
    p->p = aim_probe_load(path, p->blocks, &p->nblocks, &e);
    if (!p->p)
        return l_fail(L, e.msg);
    /* its size is known once the head is checked against the file (which
     * holds every value): charged to aim.memory_limit then */
    size_t bytes = 2 * aim_probe_params(p->p)->total * sizeof(float);
    l_mem *mem = l_mem_of(L);
    if (l_mem_take(mem, bytes) != 0) {
        char need[32], st[160];
        aim_fmt_bytes(need, sizeof need, bytes);
        l_mem_status(mem, st, sizeof st);
        aim_probe_free(p->p);
        p->p = NULL;
        return l_fail(L, lua_pushfstring(L, "%s: the probe needs %s (%s)", path, need, st));
    }
    p->charged = bytes;
    return 1;
}

static const luaL_Reg probe_methods[] = {
    {"attention", probe_attention}, {"blocks", probe_blocks}, {"kind", probe_kind},
    {"classes", probe_classes},     {"close", probe_gc},      {NULL, NULL},
};

static const luaL_Reg probe_meta[] = {
    {"__gc", probe_gc}, {"__close", probe_gc}, {"__tostring", probe_tostring}, {NULL, NULL},
};

/* ------------------------------------------------------------ aim.probe */

typedef struct probe_ctx {
    lua_State *L;
    aim_engine *eng;
    int failed;
    int epochs;
    int64_t done;           /* epochs done over all sets, for the status line */
    int64_t total;
    aim_probe_view view;    /* the probe panel: one bar per block probed alone */
    const aim_probe_job *job;
    l_board *board;         /* reconstructions of the frozen trunk (NULL: raw pixels) */
    aim_model *m;
} probe_ctx;

/* "b3,4 epoch 7/15": the set in training, in the probe panel's title */
static void set_progress(probe_ctx *c, int epoch)
{
    const aim_probe_job *j = c->job;
    int k = c->epochs > 0 ? (int)((c->done - 1) / c->epochs) : 0;
    char bl[24] = "";
    if (j->nsets > 0 && k < j->nsets) {
        size_t at = 0;
        for (int i = 0; i < j->nblocks[k] && at + 8 < sizeof bl; i++)
            at += (size_t)snprintf(bl + at, sizeof bl - at, "%s%d", i ? "," : "b", j->blocks[k][i]);
    }
    snprintf(c->view.progress, sizeof c->view.progress, "%s%sepoch %d/%d", bl, bl[0] ? " " : "",
             epoch, c->epochs);
}

/* show a finished set on the board: single blocks get their own bar */
static void publish_set(probe_ctx *c, const aim_probe_set_result *r)
{
    c->view.progress[0] = 0; /* the next set names itself with its first epoch */
    if (r->nblocks == 1 && r->blocks[0] >= 1 && r->blocks[0] <= c->view.n)
        c->view.top1[r->blocks[0] - 1] = r->test_top1;
    else if (r->nblocks > 1)
        for (int k = 0; k < r->nblocks; k++) /* a window: every block it spans, at most */
            if (r->blocks[k] >= 1 && r->blocks[k] <= c->view.n &&
                !(c->view.top1[r->blocks[k] - 1] >= r->test_top1))
                c->view.top1[r->blocks[k] - 1] = r->test_top1;
    aim_engine_job_probe(c->eng, &c->view);
}

static void push_set(lua_State *L, const aim_probe_set_result *r)
{
    lua_createtable(L, 0, 6);
    lua_createtable(L, r->nblocks, 0);
    for (int k = 0; k < r->nblocks; k++) {
        lua_pushinteger(L, r->blocks[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "blocks");
    l_set_str(L, "label", r->label);
    l_set_num(L, "test_top1", r->test_top1);
    l_set_num(L, "train_top1", r->train_top1);
    l_set_num(L, "loss", r->train_loss);
    l_set_num(L, "seconds", r->seconds);
}

/* runs under lua_pcall: (ctx, what, payload, fn|nil) -> stop? */
static int call_protected(lua_State *L)
{
    probe_ctx *c = lua_touserdata(L, 1);
    int what = (int)lua_tointeger(L, 2);
    int stop = 0;
    if (what == 0) { /* an epoch ended */
        const float *v = lua_touserdata(L, 3);
        aim_step_info info = {.step = ++c->done, .total = c->total, .loss = v[0]};
        aim_engine_job_publish(c->eng, &info);
        if (!c->job->raw) {
            set_progress(c, (int)v[3]);
            aim_engine_job_probe(c->eng, &c->view);
        }
        if (c->board) /* r: the frozen trunk's reconstructions again */
            l_board_step(c->board, c->m, &info);
        if (lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            lua_createtable(L, 0, 4);
            l_set_int(L, "epoch", (lua_Integer)v[3]);
            l_set_num(L, "loss", v[0]);
            l_set_num(L, "train_top1", v[1]);
            l_set_num(L, "test_top1", v[2]);
            lua_call(L, 1, 0);
        }
    } else { /* a block set is done */
        publish_set(c, lua_touserdata(L, 3));
        if (lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            push_set(L, lua_touserdata(L, 3));
            lua_call(L, 1, 1);
            stop = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "stop");
            lua_pop(L, 1);
        }
    }
    if (aim_engine_job_step(c->eng, L))
        stop = 1;
    lua_pushboolean(L, stop);
    return 1;
}

/* the callbacks of the C job: never raise; a Lua error stops the job and is
 * kept in S_ERR to be raised once the job has cleaned up */
static int callback(probe_ctx *c, int what, void *payload)
{
    lua_State *L = c->L;
    if (c->failed)
        return 1;
    /* we run inside l_probe_run's frame (the C job calls back from within it),
     * so its slots S_* are valid absolute indices here */
    lua_pushcfunction(L, call_protected);
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, what);
    lua_pushlightuserdata(L, payload);
    lua_pushvalue(L, what == 0 ? S_ONEPOCH : S_ONSET);
    if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
        lua_replace(L, S_ERR);
        c->failed = 1;
        return 1;
    }
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

static int on_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    float v[4] = {loss, train_top1, test_top1, (float)epoch};
    return callback(ctx, 0, v);
}

static int on_set(void *ctx, int index, const aim_probe_set_result *r)
{
    return callback(ctx, 1, (void *)r);
}

/* aim.probe's result: {sets = {...}, best =, kind =, stopped =, probe =
 * (the S_PROBE userdata, when it holds the best probe)} */
static void push_result(lua_State *L, const aim_probe_job_result *res, const char *kind,
                        int with_probe)
{
    lua_createtable(L, 0, 5);
    lua_createtable(L, res->nsets, 0);
    for (int s = 0; s < res->nsets; s++) {
        push_set(L, &res->sets[s]);
        lua_rawseti(L, -2, s + 1);
    }
    lua_setfield(L, -2, "sets");
    if (res->best >= 0) {
        push_set(L, &res->sets[res->best]);
        lua_setfield(L, -2, "best");
    }
    l_set_str(L, "kind", kind);
    l_set_bool(L, "stopped", res->stopped);
    if (with_probe) {
        lua_pushvalue(L, S_PROBE);
        lua_setfield(L, -2, "probe");
    }
}

/* aim.probe(m, train, test [, opts]): the options are the job layer's
 * (aim_probe_options, `aim options probe`), made into the job by
 * aim_probe_spec_job as `aim probe` does */
static int l_probe_run(lua_State *L)
{
    l_model *lm = lua_isnil(L, S_MODEL) ? NULL : l_model_check(L, S_MODEL);
    l_dataset *tr = l_dataset_check(L, S_TRAIN), *te = l_dataset_check(L, S_TEST);
    aim_probe_spec spec;
    aim_probe_spec_default(&spec);
    l_job_opts(L, S_OPTS, aim_probe_options, &spec, AIM_OPT_LUA);
    lua_settop(L, S_OPTS);
    if (!lm && !spec.raw)
        return luaL_argerror(L, S_MODEL, "a model is needed (or raw = true)");
    int L_depth = lm ? aim_model_config(lm->m)->depth : 0;
    aim_probe_job job;
    aim_err e;
    if (aim_probe_spec_job(&spec, L_depth, &job, &e) != 0)
        return luaL_argerror(L, S_OPTS, e.msg);
    job.dist = aim_dist_world(); /* features data-parallel under mpirun */
    const char *kind = spec.kind;
    const char *save = spec.save;
    l_opt_get(L, S_OPTS, "on_set");   /* S_ONSET */
    l_opt_get(L, S_OPTS, "on_epoch"); /* S_ONEPOCH */
    lua_pushnil(L);       /* S_ERR */
    push_empty_probe(L);  /* S_PROBE: receives the best probe */
    const aim_dataset *dtr = tr->ds, *dte = te->ds;
    if (lm) {
        const aim_config *c = aim_model_config(lm->m);
        l_dataset_fits(L, S_TRAIN, NULL, dtr, c);
        l_dataset_fits(L, S_TEST, NULL, dte, c);
    }
    probe_ctx pc = {.L = L, .eng = l_engine(L), .epochs = job.train.epochs, .job = &job,
                    .m = lm ? lm->m : NULL};
    aim_probe_view_init(&pc.view, job.raw ? "raw linear" : kind, job.raw ? 0 : L_depth);
    for (int k = 0; k < job.nsets; k++)
        for (int i = 0; i < job.nblocks[k]; i++)
            if (job.blocks[k][i] >= 1 && job.blocks[k][i] <= pc.view.n)
                pc.view.role[job.blocks[k][i] - 1] |= AIM_BLOCK_PROBED;
    if (lm) { /* the frozen trunk's reconstructions, once (and on r) */
        l_board_opts bo = {.recon_images = AIM_RECON_MAX, .seed = job.train.seed, .job = "probe",
                           .no_requests = 1};
        pc.board = l_board_new(L, pc.eng, S_MODEL, S_TRAIN, S_TEST, S_TEST, &bo); /* S_BOARD */
    } else {
        lua_pushnil(L); /* S_BOARD */
    }
    pc.total = (int64_t)job.train.epochs * (job.raw ? 1 : (job.nsets ? job.nsets : 1));
    job.train.on_epoch = on_epoch;
    job.train.ctx = &pc;
    job.on_set = on_set;
    job.ctx = &pc;
    /* the run folder (rank 0 writes it), before any work */
    const char *out = spec.out;
    if (out && aim_runlog_open_lead(out, job.dist, &job.log, &e) != 0)
        return l_fail(L, e.msg);
    char desc[256];
    snprintf(desc, sizeof desc, "%s probe on %s, %lld + %lld images", job.raw ? "raw-pixel" : kind,
             job.raw ? "pixels" : (job.nsets > 1 ? "a block sweep" : "one block set"),
             (long long)dtr->n, (long long)dte->n);
    if (aim_engine_job_begin(pc.eng, "probe", desc, job.train.lr, &e) != 0) {
        aim_runlog_close(job.log, NULL);
        return luaL_error(L, "%s", e.msg);
    }
    pc.view.running = 1;
    if (!job.raw)
        aim_engine_job_probe(pc.eng, &pc.view);
    if (pc.board)
        l_board_refresh(pc.board, lm->m, 0, NULL, NULL);
    if (lm)
        lm->busy = 1;
    tr->busy = te->busy = 1;
    aim_probe_job_result res;
    aim_norm_saved ns; /* normalised as in pretraining, like `aim probe` */
    if (lm)
        aim_job_norm_as_model(lm->m, tr->ds, te->ds, &ns);
    int rc = aim_probe_job_run(lm ? lm->m : NULL, dtr, dte, &job, &res, &e);
    aim_err ce;
    if (aim_runlog_close(job.log, &ce) != 0 && rc == 0) {
        rc = -1;
        e = ce;
    }
    if (lm)
        aim_job_norm_restore(tr->ds, te->ds, &ns);
    if (lm)
        lm->busy = 0;
    tr->busy = te->busy = 0;
    char summary[200];
    snprintf(summary, sizeof summary, "%d block set(s) probed%s%s%s", res.nsets,
             res.best >= 0 ? ", best " : "", res.best >= 0 ? res.sets[res.best].label : "",
             res.stopped ? ", stopped" : "");
    pc.view.running = 0;
    pc.view.progress[0] = 0;
    if (!job.raw)
        aim_engine_job_probe(pc.eng, &pc.view);
    if (pc.board)
        l_board_end(pc.board);
    aim_engine_job_end(pc.eng, summary, NULL);
    if (lm && rc == 0 && !pc.failed && res.nsets > 0) { /* the model's last probe, for LoRA's mark */
        memcpy(lm->probe_top1, pc.view.top1, sizeof lm->probe_top1);
        snprintf(lm->probe_kind, sizeof lm->probe_kind, "frozen %s", kind);
    }
    if (pc.failed || aim_engine_interrupted(pc.eng) || rc != 0) {
        aim_probe_free(res.best_probe);
        return l_job_failure(L, pc.eng, pc.failed, S_ERR, e.msg);
    }
    if (save && res.best_probe && aim_dist_rank(job.dist) == 0) {
        int bad = !lm || aim_probe_save_with_model(save, lm->m, res.best_probe,
                                                   res.sets[res.best].label, &e) != 0;
        if (bad) {
            aim_probe_free(res.best_probe);
            return l_fail(L, lm ? e.msg : "save needs a model (not raw)");
        }
    }
    l_probe *bp = lua_touserdata(L, S_PROBE);
    if (res.best_probe && res.best >= 0 && !job.raw) {
        bp->p = res.best_probe;
        bp->nblocks = res.sets[res.best].nblocks;
        memcpy(bp->blocks, res.sets[res.best].blocks, sizeof bp->blocks);
    } else {
        aim_probe_free(res.best_probe); /* raw pixels: no blocks to read features from */
    }
    push_result(L, &res, job.raw ? "raw-linear" : kind, bp->p != NULL);
    return 1;
}

void l_open_probe(lua_State *L)
{
    luaL_newmetatable(L, L_PROBE_MT); /* aim mt */
    luaL_setfuncs(L, probe_meta, 0);
    luaL_newlib(L, probe_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_probe_run);
    lua_setfield(L, -2, "probe");
    lua_pushcfunction(L, l_load_probe);
    lua_setfield(L, -2, "load_probe");
}
