/*
 * l_lora.c - aim.lora(m, train, test [, opts]) -> result: LoRA fine-tuning
 * from Lua, the same job as `aim lora` (include/aim/probe.h "LoRA job"):
 * adapters of rank r on q, v and proj of the adapted blocks, trained jointly
 * with a new attentive probe head on the average of the probe blocks, the
 * rest of the model frozen.
 *
 * opts (the `aim lora` flags): rank (default 8), alpha (default = rank),
 * blocks = {..} (adapted blocks; default the probe blocks) - these three
 * only for new adapters: when m has some, they go on training as they are -
 * probe_blocks = {..} (default the middle blocks, as aim.probe), epochs
 * (4), batch (64), lr (the adapters', 1e-3), head_lr (3e-3), wd (the
 * head's, 0.05), augment (flips and mild crops, false), flip (flips alone,
 * false), seed, head = an
 * aim.probe or aim.probe result to start the head from (LP-FT), save = path
 * (trunk + adapters + head), save_adapters = path (the adapters alone),
 * out = DIR (a run folder as `aim lora --out`: run.json, a lora_step line
 * every log_every (10) steps and a lora line per epoch in metrics.jsonl and
 * the event file),
 * on_epoch = function(e) with e = {epoch =, loss =, train_top1 =,
 * test_top1 =} after every epoch and on_step = function(info) after every
 * step (info as aim.pretrain's); either returning "stop" ends the job.
 * Console lines queued meanwhile run between steps (pause(), stop(), ...);
 * each epoch's result also goes to the engine as a message.
 * result = {test_top1 =, train_top1 =, loss =, epochs =, steps =, seconds =,
 * adapters = (adapter values), trainable = (adapters + head values), trunk
 * = (trunk values), share = (adapters in percent of the trunk), rank =,
 * alpha =, blocks = {..} (adapted), probe_blocks = {..}, label = "3,4",
 * stopped =}. m keeps the trained adapters (unmerged) and its trunk stays
 * frozen (m:params() shows it); a C failure returns nil, message.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "aim/dist.h"
#include "aim/probe.h"
#include "aim/runlog.h"
#include "lua/l_aim.h"

enum { S_MODEL = 1, S_TRAIN, S_TEST, S_OPTS, S_ONSTEP, S_ONEPOCH, S_ERR };

typedef struct lora_ctx {
    lua_State *L;
    aim_engine *eng;
    int failed;
    int epochs;
    aim_step_info last;
    aim_probe_view view;      /* the probe panel: test top-1 on the probe blocks */
    int nprobe, probe[AIM_PROBE_MAX_BLOCKS];
} lora_ctx;

static void push_ints(lua_State *L, const int *v, int n)
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
    lora_ctx *c = lua_touserdata(L, 1);
    int what = (int)lua_tointeger(L, 2);
    int stop = 0;
    if (what == 0) { /* a step: publish, on_step, console lines, pause / stop */
        const aim_step_info *s = lua_touserdata(L, 3);
        aim_engine_job_publish(c->eng, s);
        if (lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            l_push_step_info(L, s);
            lua_call(L, 1, 1);
            stop = is_stop(L);
            lua_pop(L, 1);
        }
        if (aim_engine_job_step(c->eng, L))
            stop = 1;
    } else { /* an epoch ended */
        const float *v = lua_touserdata(L, 3);
        char msg[160];
        snprintf(msg, sizeof msg, "epoch %d/%d: loss %.4f  train %.2f%%  test %.2f%%",
                 (int)v[3], c->epochs, v[0], v[1], v[2]);
        aim_engine_job_message(c->eng, msg);
        for (int k = 0; k < c->nprobe; k++)
            if (c->probe[k] >= 1 && c->probe[k] <= c->view.n)
                c->view.top1[c->probe[k] - 1] = v[2];
        c->view.step = (int64_t)v[3];
        aim_engine_job_probe(c->eng, &c->view);
        if (lua_isfunction(L, 4)) {
            lua_pushvalue(L, 4);
            lua_createtable(L, 0, 4);
            l_set_int(L, "epoch", (lua_Integer)v[3]);
            l_set_num(L, "loss", v[0]);
            l_set_num(L, "train_top1", v[1]);
            l_set_num(L, "test_top1", v[2]);
            lua_call(L, 1, 1);
            stop = is_stop(L);
            lua_pop(L, 1);
        }
    }
    lua_pushboolean(L, stop);
    return 1;
}

/* the callbacks of the C job: never raise; a Lua error stops the job and is
 * kept in S_ERR to be raised once the job has cleaned up */
static int callback(lora_ctx *c, int what, const void *payload)
{
    lua_State *L = c->L;
    if (c->failed)
        return 1;
    if (!lua_checkstack(L, 8))
        return 1;
    /* we run inside l_lora's frame (the C job calls back from within it),
     * so its slots S_* are valid absolute indices here */
    lua_pushcfunction(L, call_protected);
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, what);
    lua_pushlightuserdata(L, (void *)payload);
    lua_pushvalue(L, what == 0 ? S_ONSTEP : S_ONEPOCH);
    if (lua_pcall(L, 4, 1, 0) != LUA_OK) {
        lua_replace(L, S_ERR);
        c->failed = 1;
        return 1;
    }
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

static int on_step(void *ctx, const aim_step_info *s)
{
    lora_ctx *c = ctx;
    c->last = *s;
    return callback(c, 0, s);
}

static int on_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    float v[4] = {loss, train_top1, test_top1, (float)epoch};
    return callback(ctx, 1, v);
}

/* aim.lora(m, train, test [, opts]): the options are the job layer's
 * (aim_lora_options, `aim options lora`), made into the job by
 * aim_lora_spec_job as `aim lora` does */
static int l_lora(lua_State *L)
{
    l_model *lm = l_model_check(L, S_MODEL);
    l_dataset *tr = l_dataset_check(L, S_TRAIN), *te = l_dataset_check(L, S_TEST);
    aim_lora_spec spec;
    aim_lora_spec_default(&spec);
    l_job_opts(L, S_OPTS, aim_lora_options, &spec, AIM_OPT_LUA);
    lua_settop(L, S_OPTS);
    aim_model *m = lm->m;
    const aim_config *c = aim_model_config(m);
    aim_lora_job job;
    aim_err e;
    if (aim_lora_spec_job(&spec, c, &job, &e) != 0)
        return luaL_argerror(L, S_OPTS, e.msg);
    /* head = an aim.probe (or an aim.probe result): LoRA starts from it,
     * reading its blocks unless probe_blocks says otherwise (LP-FT) */
    l_probe *head = NULL;
    if (lua_istable(L, S_OPTS)) {
        lua_getfield(L, S_OPTS, "head");
        if (!lua_isnil(L, -1)) {
            int at = lua_gettop(L);
            if (!lua_istable(L, at) && !luaL_testudata(L, at, L_PROBE_MT))
                return luaL_argerror(L, S_OPTS, "option 'head' must be an aim.probe or an "
                                                "aim.probe result");
            head = l_probe_opt(L, at);
        }
        lua_pop(L, 1); /* the options table keeps it alive */
    }
    if (head) {
        job.init_head = head->p;
        if (job.nprobe == 0 && head->nblocks > 0) {
            job.nprobe = head->nblocks;
            memcpy(job.probe_blocks, head->blocks, (size_t)head->nblocks * sizeof(int));
        }
    }
    const char *save = spec.save;
    const char *save_adapters = spec.save_adapters;
    l_opt_get(L, S_OPTS, "on_step");  /* S_ONSTEP */
    l_opt_get(L, S_OPTS, "on_epoch"); /* S_ONEPOCH */
    lua_pushnil(L); /* S_ERR */
    const aim_dataset *dtr = tr->ds, *dte = te->ds;
    l_dataset_fits(L, S_TRAIN, NULL, dtr, c);
    l_dataset_fits(L, S_TEST, NULL, dte, c);
    if (dtr->n < job.batch)
        return luaL_argerror(L, S_TRAIN,
                             lua_pushfstring(L, "%d training images are fewer than one batch "
                                                "of %d (option 'batch')",
                                             (int)dtr->n, job.batch));

    /* what the job will train, known before it starts (as `aim lora`) */
    aim_lora_plan plan;
    if (aim_lora_plan_make(m, &job, job.init_head ? "the given" : "a new", dtr->n, dte->n, &plan,
                           &e) != 0)
        return luaL_argerror(L, S_OPTS, e.msg);
    const aim_lora_job *jr = &plan.resolved;
    double share = plan.share;
    lora_ctx lc = {.L = L, .eng = l_engine(L), .epochs = job.epochs, .nprobe = jr->nprobe};
    memcpy(lc.probe, jr->probe_blocks, sizeof lc.probe);
    snprintf(lc.view.kind, sizeof lc.view.kind, "lora r=%d test", plan.rank);
    lc.view.n = c->depth < AIM_PROBE_BLOCKS ? c->depth : AIM_PROBE_BLOCKS;
    for (int l = 0; l < AIM_PROBE_BLOCKS; l++)
        lc.view.top1[l] = NAN;
    lc.view.baseline = NAN;
    job.on_step = on_step;
    job.on_epoch = on_epoch;
    job.ctx = &lc;
    const char *desc = plan.desc;
    /* the run folder (not data-parallel yet: rank 0 writes it), before any work */
    const char *out = spec.out;
    if (out && aim_runlog_open_lead(out, aim_dist_world(), &job.log, &e) != 0)
        return l_fail(L, e.msg);
    if (aim_engine_job_begin(lc.eng, "lora", desc, job.lr, &e) != 0) {
        aim_runlog_close(job.log, NULL);
        return luaL_error(L, "%s", e.msg);
    }
    lc.view.running = 1;
    aim_engine_job_probe(lc.eng, &lc.view);
    lm->busy = 1;
    tr->busy = te->busy = 1;
    aim_lora_result res;
    aim_norm_saved ns; /* normalised as in pretraining, like `aim lora` */
    aim_job_norm_as_model(m, tr->ds, te->ds, &ns);
    int rc = aim_lora_run(m, dtr, dte, &job, &res, &e);
    aim_err ce;
    if (aim_runlog_close(job.log, &ce) != 0 && rc == 0) {
        rc = -1;
        e = ce;
    }
    aim_job_norm_restore(tr->ds, te->ds, &ns);
    lm->busy = 0;
    tr->busy = te->busy = 0;
    lc.view.running = 0;
    aim_engine_job_probe(lc.eng, &lc.view);
    aim_lora_info li;
    aim_model_lora_info(m, &li);
    if (rc == 0 && res.trunk)
        share = 100.0 * (double)res.adapters / (double)res.trunk;
    char summary[320];
    if (rc == 0)
        snprintf(summary, sizeof summary,
                 "test top-1 %.2f%% (train %.2f%%) after %d epoch(s); %llu adapter values = "
                 "%.3f%% of the trunk + %llu head values%s",
                 res.test_top1, res.train_top1, res.epochs_done,
                 (unsigned long long)res.adapters, share,
                 (unsigned long long)(res.trainable - res.adapters),
                 res.stopped ? ", stopped" : "");
    else
        snprintf(summary, sizeof summary, "failed: %.280s", e.msg);
    aim_engine_job_end(lc.eng, summary, res.steps ? &lc.last : NULL);
    if (lc.failed || aim_engine_interrupted(lc.eng) || rc != 0) {
        aim_probe_free(res.probe);
        return l_job_failure(L, lc.eng, lc.failed, S_ERR, e.msg);
    }
    /* not data-parallel yet: under mpirun every rank trains alike, rank 0 saves */
    if (aim_dist_rank(aim_dist_world()) > 0)
        save = save_adapters = NULL;
    if (save && aim_probe_save_with_model(save, m, res.probe, res.probe_label, &e) != 0) {
        aim_probe_free(res.probe);
        return l_fail(L, e.msg);
    }
    aim_probe_free(res.probe);
    if (save_adapters && aim_model_save_lora(m, save_adapters, &e) != 0)
        return l_fail(L, e.msg);
    lua_createtable(L, 0, 17);
    l_set_num(L, "test_top1", res.test_top1);
    l_set_num(L, "train_top1", res.train_top1);
    l_set_num(L, "loss", res.train_loss);
    l_set_int(L, "epochs", res.epochs_done);
    l_set_int(L, "steps", res.steps);
    l_set_num(L, "seconds", res.seconds);
    l_set_int(L, "adapters", (lua_Integer)res.adapters);
    l_set_int(L, "trainable", (lua_Integer)res.trainable);
    l_set_int(L, "trunk", (lua_Integer)res.trunk);
    l_set_num(L, "share", share);
    l_set_int(L, "rank", li.rank);
    l_set_num(L, "alpha", li.alpha);
    push_ints(L, li.blocks, li.nblocks < 64 ? li.nblocks : 64);
    lua_setfield(L, -2, "blocks");
    push_ints(L, jr->probe_blocks, jr->nprobe);
    lua_setfield(L, -2, "probe_blocks");
    l_set_str(L, "label", res.probe_label);
    l_set_bool(L, "stopped", res.stopped);
    return 1;
}

void l_open_lora(lua_State *L)
{
    lua_pushcfunction(L, l_lora);
    lua_setfield(L, -2, "lora");
}
