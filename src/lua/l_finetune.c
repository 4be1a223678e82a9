/*
 * l_finetune.c - aim.finetune(m, train, test [, opts]) -> result: full
 * fine-tuning from Lua, the same job as `aim finetune` (aim/finetune.h):
 * the whole trunk up to the deepest probe block, down to the patch
 * embedding, trained jointly with a new attentive head on the average of
 * the probe blocks, with layer-wise lr decay.
 *
 * opts (the `aim finetune` flags, aim_finetune_options): probe_blocks =
 * {..} (default the middle blocks), epochs (4), batch (64), lr (1e-3: block
 * i of the Lt trained gets lr * layer_decay^(Lt+1-i)), head_lr (3e-3),
 * layer_decay (0.75), wd (0.05), clip (1), label_smoothing (0), warmup (-1:
 * 5% of the steps), seed, save = path (trunk + head), out = DIR (a run
 * folder: run.json kind "finetune", finetune_step and finetune lines),
 * log_every, val_images (512), on_step = function(info), on_epoch =
 * function(e) with e = {epoch =, loss =, train_top1 =, test_top1 =,
 * val_loss =}; either returning "stop" ends the job. result = {test_top1 =
 * (the last epoch's), train_top1 =, loss =, epochs =, steps =, seconds =,
 * trained = (trunk values), head = (head values), top_block =, probe_blocks
 * = {..}, label = "3,4", val_loss_start =, val_loss =, stopped =}. On the
 * workbench it shows what aim.lora shows (l_tune.c): reconstructions, the
 * next-patch loss as validation points, the probe panel with the model's
 * last aim.probe as the mark. m keeps the fine-tuned trunk; a C failure
 * returns nil, message.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "aim/dist.h"
#include "aim/finetune.h"
#include "aim/job.h"
#include "aim/runlog.h"
#include "lua/l_tune.h"

static int l_finetune(lua_State *L)
{
    l_model *lm = l_model_check(L, TUNE_S_MODEL);
    l_dataset *tr = l_dataset_check(L, TUNE_S_TRAIN), *te = l_dataset_check(L, TUNE_S_TEST);
    aim_finetune_spec spec;
    aim_finetune_spec_default(&spec);
    l_job_opts(L, TUNE_S_OPTS, aim_finetune_options, &spec, AIM_OPT_LUA);
    lua_settop(L, TUNE_S_OPTS);
    aim_model *m = lm->m;
    const aim_config *c = aim_model_config(m);
    aim_finetune_job job;
    aim_err e;
    if (aim_finetune_spec_job(&spec, c, &job, &e) != 0)
        return luaL_argerror(L, TUNE_S_OPTS, e.msg);
    l_opt_get(L, TUNE_S_OPTS, "on_step");  /* TUNE_S_ONSTEP */
    l_opt_get(L, TUNE_S_OPTS, "on_epoch"); /* TUNE_S_ONEPOCH */
    lua_pushnil(L);                        /* TUNE_S_ERR */
    l_tune_check_data(L, c, job.batch);
    const aim_dataset *dtr = tr->ds, *dte = te->ds;
    l_tune lc = {.L = L, .eng = l_engine(L), .m = m, .epochs = job.epochs,
                 .nprobe = job.nprobe};
    memcpy(lc.probe, job.probe_blocks, sizeof lc.probe);
    int top = 0, trained[AIM_PROBE_MAX_BLOCKS];
    for (int k = 0; k < job.nprobe; k++)
        top = job.probe_blocks[k] > top ? job.probe_blocks[k] : top;
    for (int b = 0; b < top && b < AIM_PROBE_MAX_BLOCKS; b++)
        trained[b] = b + 1;
    l_tune_view_init(L, &lc, lm, "finetune test", c->depth, trained, top);
    job.on_step = l_tune_on_step;
    job.on_epoch = l_tune_on_epoch;
    job.ctx = &lc;
    char desc[512];
    aim_finetune_describe(m, &job, dtr->n, dte->n, desc, sizeof desc);
    if (l_tune_begin(&lc, lm, tr, te, "finetune", desc, job.lr, job.seed, spec.out, &job.log,
                     &e) != 0)
        return l_fail(L, e.msg);
    aim_finetune_result res;
    int rc = l_tune_finish(&lc, aim_finetune_run(m, dtr, dte, &job, &res, &e), job.log, &e);
    char summary[320];
    if (rc == 0)
        snprintf(summary, sizeof summary,
                 "test top-1 %.2f%% (train %.2f%%) after %d epoch(s); %llu trunk values + %llu "
                 "head values trained%s",
                 res.test_top1, res.train_top1, res.epochs_done, (unsigned long long)res.trained,
                 (unsigned long long)res.head, res.stopped ? ", stopped" : "");
    else
        snprintf(summary, sizeof summary, "failed: %.280s", e.msg);
    int nret = l_tune_end(&lc, rc, summary, e.msg, res.probe);
    if (nret)
        return nret;
    const char *save = aim_dist_rank(aim_dist_world()) == 0 ? spec.save : NULL;
    if (save && aim_probe_save_with_model(save, m, res.probe, res.probe_label, &e) != 0) {
        aim_probe_free(res.probe);
        return l_fail(L, e.msg);
    }
    aim_probe_free(res.probe);
    lua_createtable(L, 0, 16);
    l_set_num(L, "test_top1", res.test_top1);
    l_set_num(L, "train_top1", res.train_top1);
    l_set_num(L, "loss", res.train_loss);
    l_set_int(L, "epochs", res.epochs_done);
    l_set_int(L, "steps", res.steps);
    l_set_num(L, "seconds", res.seconds);
    l_set_int(L, "trained", (lua_Integer)res.trained);
    l_set_int(L, "head", (lua_Integer)res.head);
    l_set_int(L, "top_block", res.top_block);
    if (isfinite(res.val_loss_start) && isfinite(res.val_loss)) {
        l_set_num(L, "val_loss_start", res.val_loss_start);
        l_set_num(L, "val_loss", res.val_loss);
    }
    l_tune_push_ints(L, job.probe_blocks, job.nprobe);
    lua_setfield(L, -2, "probe_blocks");
    l_set_str(L, "label", res.probe_label);
    l_set_bool(L, "stopped", res.stopped);
    return 1;
}

void l_open_finetune(lua_State *L)
{
    lua_pushcfunction(L, l_finetune);
    lua_setfield(L, -2, "finetune");
}
