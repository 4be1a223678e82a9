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
#include "lua/l_tune.h"

enum {
    S_MODEL = TUNE_S_MODEL,
    S_TRAIN = TUNE_S_TRAIN,
    S_TEST = TUNE_S_TEST,
    S_OPTS = TUNE_S_OPTS,
    S_ERR = TUNE_S_ERR,
};

/* head = an aim.probe (or an aim.probe result): LoRA starts from it,
 * reading its blocks unless probe_blocks says otherwise (LP-FT) */
static void lora_head_opt(lua_State *L, aim_lora_job *job)
{
    l_probe *head = NULL;
    if (!lua_istable(L, S_OPTS))
        return;
    lua_getfield(L, S_OPTS, "head");
    if (!lua_isnil(L, -1)) {
        int at = lua_gettop(L);
        if (!lua_istable(L, at) && !luaL_testudata(L, at, L_PROBE_MT))
            luaL_argerror(L, S_OPTS, "option 'head' must be an aim.probe or an "
                                     "aim.probe result");
        head = l_probe_opt(L, at);
    }
    lua_pop(L, 1); /* the options table keeps it alive */
    if (head) {
        job->init_head = head->p;
        if (job->nprobe == 0 && head->nblocks > 0) {
            job->nprobe = head->nblocks;
            memcpy(job->probe_blocks, head->blocks, (size_t)head->nblocks * sizeof(int));
        }
    }
}

/* the result table (see the top of this file); the adapters as the model
 * now holds them */
static void push_result(lua_State *L, const aim_lora_result *res, double share,
                        const aim_lora_job *jr)
{
    aim_lora_info li;
    aim_model_lora_info(l_model_check(L, S_MODEL)->m, &li);
    lua_createtable(L, 0, 17);
    l_set_num(L, "test_top1", res->test_top1);
    l_set_num(L, "train_top1", res->train_top1);
    l_set_num(L, "loss", res->train_loss);
    l_set_int(L, "epochs", res->epochs_done);
    l_set_int(L, "steps", res->steps);
    l_set_num(L, "seconds", res->seconds);
    l_set_int(L, "adapters", (lua_Integer)res->adapters);
    l_set_int(L, "trainable", (lua_Integer)res->trainable);
    l_set_int(L, "trunk", (lua_Integer)res->trunk);
    l_set_num(L, "share", share);
    if (isfinite(res->val_loss_start) && isfinite(res->val_loss)) {
        l_set_num(L, "val_loss_start", res->val_loss_start);
        l_set_num(L, "val_loss", res->val_loss);
    }
    l_set_int(L, "rank", li.rank);
    l_set_num(L, "alpha", li.alpha);
    l_tune_push_ints(L, li.blocks, li.nblocks < 64 ? li.nblocks : 64);
    lua_setfield(L, -2, "blocks");
    l_tune_push_ints(L, jr->probe_blocks, jr->nprobe);
    lua_setfield(L, -2, "probe_blocks");
    l_set_str(L, "label", res->probe_label);
    l_set_bool(L, "stopped", res->stopped);
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
    lora_head_opt(L, &job);
    const char *save = spec.save;
    const char *save_adapters = spec.save_adapters;
    l_opt_get(L, S_OPTS, "on_step");  /* TUNE_S_ONSTEP */
    l_opt_get(L, S_OPTS, "on_epoch"); /* TUNE_S_ONEPOCH */
    lua_pushnil(L); /* S_ERR */
    l_tune_check_data(L, c, job.batch);
    const aim_dataset *dtr = tr->ds, *dte = te->ds;

    /* what the job will train, known before it starts (as `aim lora`) */
    aim_lora_plan plan;
    if (aim_lora_plan_make(m, &job, job.init_head ? "the given" : "a new", dtr->n, dte->n, &plan,
                           &e) != 0)
        return luaL_argerror(L, S_OPTS, e.msg);
    const aim_lora_job *jr = &plan.resolved;
    double share = plan.share;
    l_tune lc = {.L = L, .eng = l_engine(L), .m = m, .epochs = job.epochs,
                 .nprobe = jr->nprobe};
    memcpy(lc.probe, jr->probe_blocks, sizeof lc.probe);
    {
        char kind[32];
        snprintf(kind, sizeof kind, "lora r=%d test", plan.rank);
        aim_lora_info ali;
        aim_model_lora_info(m, &ali);
        l_tune_view_init(L, &lc, lm, kind, c->depth, ali.rank ? ali.blocks : jr->blocks,
                         ali.rank ? ali.nblocks : jr->nblocks);
    }
    job.on_step = l_tune_on_step;
    job.on_epoch = l_tune_on_epoch;
    job.ctx = &lc;
    const char *desc = plan.desc;
    if (l_tune_begin(&lc, lm, tr, te, "lora", desc, job.lr, job.seed, spec.out, &job.log,
                     &e) != 0)
        return l_fail(L, e.msg);
    aim_lora_result res;
    int rc = l_tune_finish(&lc, aim_lora_run(m, dtr, dte, &job, &res, &e), job.log, &e);
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
    int nret = l_tune_end(&lc, rc, summary, e.msg, res.probe);
    if (nret)
        return nret;
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
    push_result(L, &res, share, jr);
    return 1;
}

void l_open_lora(lua_State *L)
{
    lua_pushcfunction(L, l_lora);
    lua_setfield(L, -2, "lora");
}
