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
 * test_top1 =, val_loss =} after every epoch (val_loss: the next-patch loss
 * on the first val_images test images, 512 by default; absent with
 * val_images = 0) and on_step = function(info) after every
 * step (info as aim.pretrain's); either returning "stop" ends the job.
 * Console lines queued meanwhile run between steps (pause(), stop(), ...);
 * each epoch's result also goes to the engine as a message.
 * result = {test_top1 =, train_top1 =, loss =, epochs =, steps =, seconds =,
 * adapters = (adapter values), trainable = (adapters + head values), trunk
 * = (trunk values), share = (adapters in percent of the trunk), rank =,
 * alpha =, blocks = {..} (adapted), probe_blocks = {..}, label = "3,4",
 * val_loss_start =, val_loss = (the next-patch loss before and after),
 * stopped =}. On the workbench the job shows the reconstructions of four
 * test images with the adapted trunk (at the start, every epoch, on r),
 * the next-patch loss as validation points beside the cross-entropy curve,
 * and on the probe panel the frozen probe it is measured against (the head's
 * aim.probe result, else the model's last aim.probe) with the gain. m keeps the trained adapters (unmerged) and its trunk stays
 * frozen (m:params() shows it); a C failure returns nil, message.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "aim/dist.h"
#include "aim/probe.h"
#include "aim/runlog.h"
#include "lua/l_aim.h"

enum { S_MODEL = 1, S_TRAIN, S_TEST, S_OPTS, S_ONSTEP, S_ONEPOCH, S_ERR, S_BOARD };

typedef struct lora_ctx {
    lua_State *L;
    aim_engine *eng;
    aim_model *m;
    l_board *board;           /* reconstructions and the Inspect view of the adapted trunk */
    int failed;
    int epochs;
    aim_step_info last;
    aim_probe_view view;      /* the probe panel: test top-1 on the probe blocks */
    int nprobe, probe[AIM_PROBE_MAX_BLOCKS];
} lora_ctx;

/* The probe panel's view of a LoRA job: its top-1 on the probe blocks, the
 * blocks it probes and adapts, and the frozen probe it is measured against:
 * the head it starts from when that is an aim.probe result (its best set),
 * else this model's last aim.probe. */
static void view_init(lua_State *L, lora_ctx *lc, const l_model *lm, const aim_lora_plan *plan,
                      int depth)
{
    const aim_lora_job *jr = &plan->resolved;
    char kind[32];
    snprintf(kind, sizeof kind, "lora r=%d test", plan->rank);
    aim_probe_view_init(&lc->view, kind, depth);
    aim_probe_view *v = &lc->view;
    for (int k = 0; k < jr->nprobe; k++)
        if (jr->probe_blocks[k] >= 1 && jr->probe_blocks[k] <= v->n)
            v->role[jr->probe_blocks[k] - 1] |= AIM_BLOCK_PROBED;
    aim_lora_info li;
    aim_model_lora_info(lm->m, &li);
    const int *ab = li.rank ? li.blocks : jr->blocks;
    int na = li.rank ? li.nblocks : jr->nblocks;
    for (int k = 0; k < na; k++)
        if (ab[k] >= 1 && ab[k] <= v->n)
            v->role[ab[k] - 1] |= AIM_BLOCK_ADAPTED;
    float head_top1 = NAN;
    char head_kind[24] = "probe";
    if (lua_istable(L, S_OPTS)) {
        lua_getfield(L, S_OPTS, "head");
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
        for (int k = 0; k < jr->nprobe; k++)
            if (jr->probe_blocks[k] >= 1 && jr->probe_blocks[k] <= v->n)
                v->ref[jr->probe_blocks[k] - 1] = head_top1;
        snprintf(v->ref_kind, sizeof v->ref_kind, "frozen %s", head_kind);
    } else if (lm->probe_kind[0]) {
        for (int l = 0; l < v->n && l < 64; l++)
            v->ref[l] = lm->probe_top1[l];
        snprintf(v->ref_kind, sizeof v->ref_kind, "%s", lm->probe_kind);
    }
}

/* an epoch ended (or, as epoch 0, the job is about to start): the probe
 * panel, the next-patch loss as a validation point, the reconstructions
 * and the Inspect view of the adapted trunk with the head's attention */
static void publish_epoch(lora_ctx *c, const aim_lora_epoch *ep)
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

static int on_epoch(void *ctx, const aim_lora_epoch *ep)
{
    return callback(ctx, 1, ep);
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
    lora_ctx lc = {.L = L, .eng = l_engine(L), .m = m, .epochs = job.epochs,
                   .nprobe = jr->nprobe};
    memcpy(lc.probe, jr->probe_blocks, sizeof lc.probe);
    view_init(L, &lc, lm, &plan, c->depth);
    /* S_BOARD: the reconstructions of the test images, refreshed with the
     * adapted trunk every epoch and on r */
    l_board_opts bo = {.recon_images = AIM_RECON_MAX, .seed = job.seed, .job = "lora",
                       .no_requests = 1};
    lc.board = l_board_new(L, lc.eng, S_MODEL, S_TRAIN, S_TEST, S_TEST, &bo);
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
    aim_engine_job_labels(lc.eng, "cross-entropy", "next-patch");
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
    lc.view.progress[0] = 0;
    aim_engine_job_probe(lc.eng, &lc.view);
    l_board_end(lc.board);
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
    if (isfinite(res.val_loss_start) && isfinite(res.val_loss)) {
        l_set_num(L, "val_loss_start", res.val_loss_start);
        l_set_num(L, "val_loss", res.val_loss);
    }
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
