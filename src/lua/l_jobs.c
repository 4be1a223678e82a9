/*
 * l_jobs.c - long jobs and their control from Lua:
 *
 *   aim.pretrain(m, ds, opts) -> result table (or nil, message on an I/O
 *       failure). Options are the `aim train` flags: steps, epochs, batch,
 *       lr, warmup, wd, clip, seed, crop, flip, scale_min, shift, log_every,
 *       out (run folder: run.json, metrics.jsonl, model.safetensors), plus run
 *       (the metrics' run name), on_step = function(info) called every
 *       `every` steps (and at the last; return "stop" to end the job).
 *       For a UI and long runs: val (dataset), val_every, val_images;
 *       probe_test (dataset), probe_every, probe_images (the live linear
 *       probe); recon (dataset: a few fixed images to reconstruct),
 *       recon_every, recon_images; checkpoints in the run folder with
 *       ckpt_every, ckpt_minutes, keep, or checkpoints = true (only on
 *       stop, at the end and on request). What these produce also goes to
 *       the engine's board (l_board.c) for the TUI's panels. With out, the
 *       run folder's TensorBoard event file gets, besides the metrics as
 *       scalars, reconstruction grids: "recon/val" (the first recon_images
 *       images of val, 0..8, default 4, at each validation) and
 *       "recon/board" (those of recon, at most 4, when the panel's are
 *       refreshed); recon_images = 0 turns both off.
 *   aim.pause(), aim.resume(), aim.stop(): act on the running job; each
 *       returns true if it changed something. aim.stop{save = false}
 *       skips the checkpoint a job with a checkpoint folder writes on stop. aim.lr(x) sets the running
 *       job's peak learning rate; aim.lr() returns the current lr and peak.
 *   aim.threads([n]): OpenMP + OpenBLAS threads (returns the count).
 *
 * After each step the job publishes it to the engine, calls on_step, then
 * lets the engine run queued console chunks and wait while paused.
 * The per-step work runs under lua_pcall, so a Lua error never unwinds
 * through aim_pretrain: it stops the job and is raised once the C loop has
 * returned and cleaned up. Reconstruction lives in l_recon.c.
 *
 * Under mpirun (aim/dist.h) every rank runs the script and so this job; they
 * train data-parallel on shares of each batch, and only rank 0 writes the
 * run folder (run.json, metrics, checkpoints, weights) and makes
 * reconstructions and live probes. Every rank gets the same result table.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/job.h"
#include "aim/recon.h"
#include "aim/train.h"
#include "lua/l_aim.h"

/* stack slots of aim.pretrain */
enum { S_MODEL = 1, S_DATA, S_OPTS, S_ONSTEP, S_ERR };

typedef struct step_ctx {
    lua_State *L;
    aim_engine *eng;
    int64_t every;
    int failed;
    aim_step_info last;
    l_board *board;
    aim_model *m;
} step_ctx;

void l_push_step_info(lua_State *L, const aim_step_info *s)
{
    lua_createtable(L, 0, 10);
    l_set_int(L, "step", s->step);
    l_set_int(L, "total", s->total);
    l_set_int(L, "images", s->images);
    l_set_num(L, "epoch", s->epoch);
    l_set_num(L, "loss", s->loss);
    l_set_num(L, "lr", s->lr);
    l_set_num(L, "grad_norm", s->grad_norm);
    l_set_num(L, "img_per_s", s->img_per_s);
    l_set_num(L, "elapsed", s->elapsed_s);
    l_set_num(L, "eta", s->eta_s);
}

int l_job_failure(lua_State *L, aim_engine *eng, int failed, int err_slot, const char *msg)
{
    if (failed) {
        lua_pushvalue(L, err_slot);
        return lua_error(L);
    }
    if (aim_engine_interrupted(eng))
        return luaL_error(L, "interrupted!");
    return l_fail(L, msg);
}

/* (ctx, info, on_step|nil) -> stop? ; runs under lua_pcall */
static int step_protected(lua_State *L)
{
    step_ctx *s = lua_touserdata(L, 1);
    const aim_step_info *info = lua_touserdata(L, 2);
    int stop = 0;
    aim_engine_job_publish(s->eng, info);
    if (lua_isfunction(L, 3) && (info->step % s->every == 0 || info->step == info->total)) {
        lua_pushvalue(L, 3);
        l_push_step_info(L, info);
        lua_call(L, 1, 1); /* ... r */
        const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        stop = r && !strcmp(r, "stop");
        lua_pop(L, 1);
    }
    if (aim_engine_job_step(s->eng, L))
        stop = 1;
    lua_pushboolean(L, stop);
    return 1;
}

/* aim_pretrain's on_step: never raises */
static int job_on_step(void *ctx, const aim_step_info *info)
{
    step_ctx *s = ctx;
    lua_State *L = s->L;
    s->last = *info;
    s->last.events = NULL; /* kept after the job: the writer is closed by then */
    if (!lua_checkstack(L, 8))
        return 1;
    lua_pushcfunction(L, step_protected);
    lua_pushlightuserdata(L, s);
    lua_pushlightuserdata(L, (void *)info);
    lua_pushvalue(L, S_ONSTEP);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        lua_replace(L, S_ERR); /* keep the error for after the loop */
        s->failed = 1;
        return 1;
    }
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (s->board)
        l_board_step(s->board, s->m, info);
    return stop;
}

/* the other aim_pretrain callbacks: to the engine and its board */
static void job_on_message(void *ctx, const char *msg)
{
    step_ctx *s = ctx;
    aim_engine_job_message(s->eng, msg);
}

static void job_on_val(void *ctx, int64_t step, float loss)
{
    step_ctx *s = ctx;
    aim_engine_job_val(s->eng, step, loss);
}

static void job_on_probe(void *ctx, int64_t step, const float *top1, int nblocks)
{
    step_ctx *s = ctx;
    if (lua_checkstack(s->L, 8))
        l_board_probe(s->L, s->board, step, top1, nblocks);
}

static int job_requests(void *ctx)
{
    step_ctx *s = ctx;
    return l_board_requests(s->board);
}

/* an optional dataset option with the model's image shape; pushes it (or nil) */
static aim_dataset *opt_images(lua_State *L, int opts, const char *key, const aim_config *c)
{
    if (l_opt_get(L, opts, key) == LUA_TNIL)
        return NULL;
    l_dataset *d = luaL_testudata(L, -1, L_DATASET_MT);
    if (!d || !d->ds)
        luaL_argerror(L, opts, lua_pushfstring(L, "option '%s' must be an open dataset", key));
    l_dataset_fits(L, opts, key, d->ds, c);
    return d->ds;
}

/* OpenMP and OpenBLAS threads together (aim.threads, aim.experiment) */
static void set_threads(int n)
{
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

/* Under mpirun every rank must leave aim.pretrain the same way, or the ones
 * that go on would wait for the others in a collective: a failure on one
 * rank (a file only it could not write) fails them all. Returns 1 when
 * some rank failed. */
static int any_rank_failed(const aim_dist *d, int failed)
{
    int v = failed;
    aim_dist_max(d, &v, 1);
    return v;
}

#define OTHER_RANK_FAILED "pretrain: another rank failed (its message says why)"

/* aim.pretrain's result table, over the out, metrics and weights strings
 * at the top of the stack */
static void push_result(lua_State *L, const aim_pretrain_result *res, int64_t total,
                        int64_t batch, int64_t n, float peak)
{
    lua_createtable(L, 0, 14);
    l_set_int(L, "steps", res->steps_done);
    l_set_int(L, "total", total);
    l_set_num(L, "loss", res->final_loss);
    l_set_num(L, "mean_loss", res->mean_loss_last);
    l_set_num(L, "seconds", res->seconds);
    l_set_int(L, "images", res->steps_done * batch);
    l_set_num(L, "img_per_s", res->seconds > 0 ? res->steps_done * batch / res->seconds : 0);
    l_set_num(L, "epochs", (double)res->steps_done * batch / (double)n);
    l_set_bool(L, "stopped", res->stopped);
    l_set_num(L, "lr", peak);
    lua_pushvalue(L, -4);
    lua_setfield(L, -2, "out");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "metrics");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "weights");
}

/* aim.pretrain(m, ds [, opts]): the options are the job layer's
 * (aim_pretrain_options, `aim options pretrain`), set up by
 * aim_pretrain_job_init as `aim train` does */
static int l_pretrain(lua_State *L)
{
    l_model *lm = l_model_check(L, S_MODEL);
    l_dataset *ld = l_dataset_check(L, S_DATA);
    aim_pretrain_spec spec;
    aim_pretrain_spec_default(&spec);
    l_job_opts(L, S_OPTS, aim_pretrain_options, &spec, AIM_OPT_LUA);
    lua_settop(L, S_OPTS);
    aim_model *m = lm->m;
    const aim_dataset *ds = ld->ds;
    const aim_config *c = aim_model_config(m);
    l_dataset_fits(L, S_DATA, NULL, ds, c);
    if (spec.ckpt_every > 0 && !spec.out && !spec.resume)
        return luaL_argerror(L, S_OPTS, "checkpoints need a run folder (option 'out')");
    step_ctx sc = {.L = L, .eng = l_engine(L), .every = spec.every};
    l_opt_get(L, S_OPTS, "on_step"); /* S_ONSTEP */
    lua_pushnil(L);                  /* S_ERR */
    const aim_dataset *val = opt_images(L, S_OPTS, "val", c);
    const aim_dataset *probe_test = opt_images(L, S_OPTS, "probe_test", c);
    int probe_idx = probe_test ? lua_gettop(L) : 0;
    const aim_dataset *recon = opt_images(L, S_OPTS, "recon", c);
    int recon_idx = recon ? lua_gettop(L) : 0;

    aim_err e;
    aim_pretrain_job j;
    if (aim_pretrain_job_init(&j, &spec, m, ds, val, probe_test, NULL, aim_dist_world(), &e))
        return l_fail(L, e.msg);
    aim_pretrain_opts *po = &j.po;
    const int lead = aim_dist_rank(po->dist) == 0;
    if (!lead)
        recon_idx = 0; /* rank 0 alone makes reconstructions */
    /* recon_images: the first ones of val go to the event file as "recon/val"
     * at each validation; up to AIM_RECON_MAX of recon to the TUI's panel
     * (and the event file as "recon/board") */
    const int ckpt = po->ckpt_dir != NULL;
    l_board_opts bo = {
        .recon_images = spec.recon_images < AIM_RECON_MAX ? (int)spec.recon_images
                                                          : AIM_RECON_MAX,
        .recon_every = spec.recon_every,
        .probe_images = po->probe_images,
        .seed = po->data.seed,
        .can_checkpoint = ckpt,
    };
    if (aim_engine_job_begin(sc.eng, "pretrain", j.desc, po->lr, &e) != 0) {
        aim_pretrain_job_free(&j);
        return luaL_error(L, "%s", e.msg);
    }
    aim_engine_job_folder(sc.eng, j.out, omp_get_max_threads(), ckpt);
    /* FLOPs per image of a step (backward is two GEMMs per forward one) for
     * the live MFU; not counted across ranks: img/s is then the world's,
     * the peak one process's */
    aim_engine_job_flops(sc.eng, c, po->batch, aim_model_precision(m),
                         aim_dist_size(po->dist) == 1
                             ? 3 * aim_config_flops_loss(c, AIM_LOSS_ROWS(c))
                             : 0);
    sc.board = l_board_new(L, sc.eng, S_MODEL, S_DATA, probe_idx, recon_idx, &bo);
    sc.m = m;
    po->live_lr = aim_engine_job_lr(sc.eng);
    po->on_step = job_on_step;
    po->on_message = job_on_message;
    po->on_val = job_on_val;
    po->on_probe = job_on_probe;
    po->requests = job_requests;
    po->ctx = &sc;
    lm->busy = ld->busy = 1;
    aim_pretrain_result res;
    memset(&res, 0, sizeof res);
    int rc = j.state.step < po->steps ? aim_pretrain(m, ds, po, &res, &e) : 0;
    if (j.state.step >= po->steps)
        res.steps_done = j.state.step;
    lm->busy = ld->busy = 0;
    l_board_end(sc.board);
    char summary[256];
    if (rc != 0) /* not "0 steps, final loss 0" for a job that could not start */
        snprintf(summary, sizeof summary, "failed after %lld steps: %.200s",
                 (long long)res.steps_done, e.msg);
    else
        snprintf(summary, sizeof summary,
                 "%lld steps in %.1f s, final loss %.6f (mean of last %d: %.6f)%s",
                 (long long)res.steps_done, res.seconds, res.final_loss,
                 (int)(res.steps_done < 100 ? res.steps_done : 100), res.mean_loss_last,
                 res.stopped ? ", stopped" : "");
    float peak = *po->live_lr;
    aim_engine_job_end(sc.eng, summary, res.steps_done ? &sc.last : NULL);
    int bad = sc.failed || aim_engine_interrupted(sc.eng) || rc != 0, bad_save = 0;
    if (!bad && aim_pretrain_job_save(&j, m, &e) != 0)
        bad = bad_save = 1;
    int others = any_rank_failed(po->dist, bad);
    /* the results into Lua strings before the job's are freed */
    lua_pushstring(L, j.out);
    lua_pushstring(L, j.metrics);
    lua_pushstring(L, j.weights); /* ... out metrics weights */
    int64_t total = po->steps, batch = po->batch;
    aim_pretrain_job_free(&j);
    if (sc.failed) {
        lua_pushvalue(L, S_ERR);
        return lua_error(L);
    }
    if (aim_engine_interrupted(sc.eng))
        return luaL_error(L, "interrupted!");
    if (rc != 0 || bad_save)
        return l_fail(L, e.msg);
    if (others)
        return l_fail(L, OTHER_RANK_FAILED);
    push_result(L, &res, total, batch, ds->n, peak);
    return 1;
}

/* aim.experiment([opts]) -> m, train, test, pretrain_opts: what `aim train`
 * opens for the same options (every `aim options pretrain` key, command-line
 * ones included): the model (new, init = weights, or resume = a run's
 * checkpoint), the training split and the test split (test_limit images; nil
 * when validation, the live probe and reconstructions are all off), and the options for
 * aim.pretrain(m, train, pretrain_opts): the Lua ones of opts with the test
 * split as val, probe_test and recon, and out defaulting to
 * runs/DATE-TIME-pretrain-PRESET as `aim train`'s does. */
static int l_experiment(lua_State *L)
{
    aim_pretrain_spec spec;
    aim_pretrain_spec_default(&spec);
    l_job_opts(L, 1, aim_pretrain_options, &spec, AIM_OPT_BOTH);
    if (spec.threads > 0) /* as `aim train --threads` */
        set_threads((int)spec.threads);
    aim_experiment x;
    char notice[700];
    aim_err e;
    if (aim_experiment_open(&spec, &x, notice, sizeof notice, &e) != 0)
        return l_fail(L, e.msg);
    l_notice(L, notice);
    lua_settop(L, 1);
    /* into Lua's hands (each freed by its __gc from here), charged to
     * aim.memory_limit as aim.model and aim.data.* would be */
    l_model *lm = l_model_push_empty(L);
    lm->m = x.model;
    l_dataset *tr = l_dataset_push_empty(L);
    tr->ds = x.train;
    l_dataset *te = x.test ? l_dataset_push_empty(L) : NULL;
    if (te)
        te->ds = x.test;
    else
        lua_pushnil(L);
    free(x.strings[0]);
    free(x.strings[1]);
    if (l_model_charge(L, lm) != 0 || l_dataset_charge(L, tr) != 0 ||
        (te && l_dataset_charge(L, te) != 0))
        return l_fail(L, lua_tostring(L, -1));
    /* the options table holds copies: the spec's strings (out) die with x */
    l_push_spec(L, aim_pretrain_options, &spec, AIM_OPT_LUA, 0); /* m tr te opts */
    if (x.test) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "val");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "probe_test");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "recon");
    }
    return 4;
}

/* aim.options(job) -> list of {name =, type =, default =, help =, flag =
 * (the command line's, or nil), lua = (true when aim.<job> takes it)} */
static int l_options(lua_State *L)
{
    const char *job = luaL_checkstring(L, 1);
    const aim_opt *t = aim_job_options(job);
    if (!t)
        return luaL_argerror(L, 1, "a job is pretrain, probe, lora or finetune");
    static const char *const types[] = {"integer", "number", "boolean", "string", "string",
                                        "blocks", "dataset", "function", "probe"};
    lua_newtable(L);
    int n = 0;
    for (; t->name; t++) {
        char buf[256];
        lua_createtable(L, 0, 6);
        l_set_str(L, "name", t->name);
        l_set_str(L, "type", types[t->type]);
        if (t->type == AIM_OPT_CHOICE)
            l_set_str(L, "choices", t->arg);
        if (t->type == AIM_OPT_INT)
            l_set_int(L, "default", (lua_Integer)t->def);
        else if (t->type == AIM_OPT_NUM)
            l_set_num(L, "default", t->def);
        else if (t->type == AIM_OPT_BOOL)
            l_set_bool(L, "default", t->def != 0);
        else if (t->sdef)
            l_set_str(L, "default", t->sdef);
        aim_opt_describe(t, buf, sizeof buf);
        l_set_str(L, "help", buf);
        if (t->where & AIM_OPT_CLI) {
            aim_opt_flag(t, buf, sizeof buf);
            l_set_str(L, "flag", buf);
        }
        l_set_bool(L, "lua", (t->where & AIM_OPT_LUA) != 0);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

/* aim.defaults(job) -> {name = default} for every option with a plain
 * value, the command line's included; options without a default are ""
 * (so aim.args(arg, aim.defaults "pretrain") takes them as key=value) */
static int l_defaults(lua_State *L)
{
    const char *job = luaL_checkstring(L, 1);
    const aim_opt *t = aim_job_options(job);
    if (!t)
        return luaL_argerror(L, 1, "a job is pretrain, probe, lora or finetune");
    union {
        aim_pretrain_spec p;
        aim_probe_spec q;
        aim_lora_spec l;
        aim_finetune_spec f;
    } spec;
    aim_opts_default(t, &spec, sizeof spec);
    l_push_spec(L, t, &spec, AIM_OPT_BOTH, 1);
    return 1;
}

/* ------------------------------------------------------------ control */

static int l_pause(lua_State *L)
{
    aim_engine *eng = l_engine(L);
    aim_snapshot s;
    aim_engine_snapshot(eng, &s);
    if (s.state != AIM_JOB_IDLE && !aim_engine_threaded(eng))
        return luaL_error(L, "pause: nothing could resume the job in this front end "
                             "(no console thread); use stop()");
    lua_pushboolean(L, aim_engine_pause(eng));
    return 1;
}

static int l_resume(lua_State *L)
{
    lua_pushboolean(L, aim_engine_resume(l_engine(L)));
    return 1;
}

static int l_stop(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        static const char *const stop_options[] = {"save", NULL};
        l_check_options(L, 1, stop_options);
        if (!l_opt_bool(L, 1, "save", 1))
            l_board_request(L, AIM_REQ_NO_SAVE);
    }
    lua_pushboolean(L, aim_engine_stop(l_engine(L)));
    return 1;
}

static int l_lr(lua_State *L)
{
    aim_engine *eng = l_engine(L);
    if (lua_isnoneornil(L, 1)) {
        aim_snapshot s;
        aim_engine_snapshot(eng, &s);
        if (s.state == AIM_JOB_IDLE)
            return 0;
        lua_pushnumber(L, s.step.lr);
        lua_pushnumber(L, s.lr_peak);
        return 2;
    }
    lua_Number lr = luaL_checknumber(L, 1);
    luaL_argcheck(L, lr > 0 && lr <= 10, 1, "the learning rate must be in (0, 10]");
    aim_err e;
    if (aim_engine_set_lr(eng, (float)lr, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    lua_pushnumber(L, lr);
    return 1;
}

static int l_threads(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_argcheck(L, n >= 1 && n <= 4096, 1, "thread count must be in 1..4096");
        set_threads((int)n);
    }
    lua_pushinteger(L, omp_get_max_threads());
    return 1;
}

/* aim.quit([code]): in the workbench, its quit prompt (a running job can be
 * checkpointed first); elsewhere os.exit(code) */
static int l_quit(lua_State *L)
{
    int code = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? 0 : 1) : (int)luaL_optinteger(L, 1, 0);
    if (aim_engine_request_quit(l_engine(L), code)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    /* the os.exit there was when aim opened (a UI may point os.exit here) */
    lua_getfield(L, LUA_REGISTRYINDEX, "aim.os_exit");
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "quit: os.exit is not available");
    lua_pushinteger(L, code);
    lua_call(L, 1, 0);
    return 0;
}

static const luaL_Reg job_funcs[] = {
    {"pretrain", l_pretrain}, {"experiment", l_experiment}, {"options", l_options},
    {"defaults", l_defaults}, {"pause", l_pause}, {"resume", l_resume}, {"stop", l_stop},
    {"lr", l_lr},             {"threads", l_threads}, {"quit", l_quit}, {NULL, NULL},
};

void l_open_jobs(lua_State *L)
{
    luaL_setfuncs(L, job_funcs, 0); /* into aim */
    lua_getglobal(L, "os");
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "exit");
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "aim.os_exit");
    lua_pop(L, 1);
}
