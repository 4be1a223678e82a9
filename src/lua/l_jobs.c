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
    if (d->ds->c != c->channels || d->ds->h != c->image || d->ds->w != c->image)
        luaL_argerror(L, opts,
                      lua_pushfstring(L, "option '%s': the data is %dx%dx%d but the model takes "
                                         "%dx%dx%d", key, d->ds->c, d->ds->h, d->ds->w,
                                      c->channels, c->image, c->image));
    return d->ds;
}

/* Under mpirun every rank must leave aim.pretrain the same way, or the ones
 * that go on would wait for the others in a collective: a failure on one
 * rank (a file only it could not read or write) fails them all. Returns 1
 * when some rank failed. */
static int any_rank_failed(const aim_dist *d, int failed)
{
    int v = failed;
    aim_dist_max(d, &v, 1);
    return v;
}

#define OTHER_RANK_FAILED "pretrain: another rank failed (its message says why)"

static const char *const pretrain_options[] = {
    "steps", "epochs",    "batch",     "lr",  "warmup",  "wd",    "clip", "seed", "crop",
    "flip",  "scale_min", "shift", "log_every", "out", "on_step", "every", "run",
    "val", "val_every", "val_images", "probe_test", "probe_every", "probe_images",
    "recon", "recon_every", "recon_images", "ckpt_every", "ckpt_minutes", "keep",
    "checkpoints", "on_nan", "resume", NULL,
};

/* opts.resume: a run folder (its newest checkpoint) or a checkpoint. The
 * checkpoint's tensors, AdamW moments and normalisation go into m (same
 * configuration), its recipe (steps, batch, schedule, optimiser, data seed
 * and augmentation) replaces the options, *state where it stood. Returns
 * the run folder to continue in (malloc'd) or NULL with a message. */
static char *resume_into(aim_model *m, const char *from, aim_pretrain_opts *po,
                         aim_train_state *state, aim_err *e)
{
    char *ck = aim_is_dir(from) ? aim_checkpoint_latest(from, e) : aim_xstrdup(from);
    if (!ck)
        return NULL;
    aim_pretrain_opts co;
    aim_st_file *meta = NULL;
    aim_model *mc = aim_checkpoint_load(ck, state, &co, &meta, e);
    if (!mc) {
        free(ck);
        return NULL;
    }
    const aim_config *a = aim_model_config(m), *b = aim_model_config(mc);
    char *dir = NULL;
    if (a->image != b->image || a->channels != b->channels || a->patch != b->patch ||
        a->width != b->width || a->depth != b->depth || a->heads != b->heads ||
        a->head_width != b->head_width || a->head_depth != b->head_depth) {
        aim_errf(e, "%s: the checkpoint is a D=%d L=%d heads=%d patch=%d model, not this one "
                    "(D=%d L=%d heads=%d patch=%d); resume into aim.load(checkpoint)",
                 ck, b->width, b->depth, b->heads, b->patch, a->width, a->depth, a->heads,
                 a->patch);
        goto done;
    }
    aim_params *pm = aim_model_params(m), *pc = aim_model_params(mc);
    if (aim_params_try_alloc_moments(pm, e) != 0) {
        aim_err_prefix(e, "%s", ck);
        goto done;
    }
    memcpy(pm->data, pc->data, pc->total * sizeof(float));
    memcpy(pm->m, pc->m, pc->total * sizeof(float));
    memcpy(pm->v, pc->v, pc->total * sizeof(float));
    aim_model_set_norm(m, b->nmean, b->mean, b->std, NULL);
    po->steps = co.steps;
    po->batch = co.batch;
    po->lr = co.lr;
    po->warmup = co.warmup;
    po->adamw = co.adamw;
    po->clip = co.clip;
    po->data = co.data;
    po->ckpt_every = co.ckpt_every;
    po->ckpt_minutes = co.ckpt_minutes;
    po->keep_last = co.keep_last;
    if (aim_is_dir(from)) {
        dir = aim_xstrdup(from);
    } else {
        const char *slash = strrchr(ck, '/');
        dir = slash ? aim_xasprintf("%.*s", (int)(slash - ck), ck) : aim_xstrdup(".");
    }
done:
    aim_model_free(mc);
    aim_st_close(meta);
    free(ck);
    return dir;
}

static int l_pretrain(lua_State *L)
{
    l_model *lm = l_model_check(L, S_MODEL);
    l_dataset *ld = l_dataset_check(L, S_DATA);
    if (!lua_isnoneornil(L, S_OPTS))
        luaL_checktype(L, S_OPTS, LUA_TTABLE);
    l_check_options(L, S_OPTS, pretrain_options);
    lua_settop(L, S_OPTS);
    aim_model *m = lm->m;
    const aim_dataset *ds = ld->ds;
    const aim_config *c = aim_model_config(m);
    if (ds->c != c->channels || ds->h != c->image || ds->w != c->image)
        return luaL_argerror(L, S_DATA,
                             lua_pushfstring(L,
                                             "the data is %dx%dx%d but the model takes %dx%dx%d "
                                             "(open it with {channels=%d, size=%d} or use "
                                             "ds:convert)",
                                             ds->c, ds->h, ds->w, c->channels, c->image,
                                             c->image, c->channels, c->image));
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.dist = aim_dist_world();
    const int lead = aim_dist_rank(po.dist) == 0;
    po.batch = (int)l_opt_int(L, S_OPTS, "batch", 64, 1, 65536);
    po.steps = l_opt_int(L, S_OPTS, "steps", 0, 1, (lua_Integer)1 << 40);
    lua_Number epochs = l_opt_num(L, S_OPTS, "epochs", 0, 0, 1e6);
    if (po.steps > 0 && epochs > 0)
        return luaL_argerror(L, S_OPTS, "give steps or epochs, not both");
    if (epochs > 0)
        po.steps = (int64_t)ceil(epochs * (double)ds->n / po.batch);
    if (po.steps <= 0)
        po.steps = (ds->n + po.batch - 1) / po.batch; /* one epoch */
    po.lr = (float)l_opt_num(L, S_OPTS, "lr", 1e-3, 1e-12, 10);
    po.warmup = l_opt_int(L, S_OPTS, "warmup", -1, -1, (lua_Integer)1 << 40);
    po.adamw.weight_decay = (float)l_opt_num(L, S_OPTS, "wd", 0.05, 0, 10);
    po.clip = (float)l_opt_num(L, S_OPTS, "clip", 1.0, 0, 1e9);
    po.data.seed = (uint64_t)l_opt_int(L, S_OPTS, "seed", 0, 0, LUA_MAXINTEGER);
    po.data.crop = l_opt_bool(L, S_OPTS, "crop", 1);
    po.data.flip = l_opt_bool(L, S_OPTS, "flip", 1);
    po.data.scale_min = (float)l_opt_num(L, S_OPTS, "scale_min", 0.4, 0.01, 1);
    po.data.shift = (int)l_opt_int(L, S_OPTS, "shift", 0, 0, 4096);
    po.log_every = (int)l_opt_int(L, S_OPTS, "log_every", 1, 1, 1 << 30);
    const char *on_nan = l_opt_str(L, S_OPTS, "on_nan", "skip");
    if (strcmp(on_nan, "skip") && strcmp(on_nan, "stop"))
        return luaL_argerror(L, S_OPTS, "option 'on_nan' must be \"skip\" or \"stop\"");
    po.nan_policy = strcmp(on_nan, "stop") ? AIM_NAN_SKIP : AIM_NAN_STOP;
    const char *out = l_opt_str(L, S_OPTS, "out", NULL);
    const char *resume = l_opt_str(L, S_OPTS, "resume", NULL);
    aim_train_state state;
    memset(&state, 0, sizeof state);
    char resume_dir[1024];
    if (resume) {
        aim_err re;
        char *dir = resume_into(m, resume, &po, &state, &re);
        if (any_rank_failed(po.dist, !dir)) {
            free(dir);
            return l_fail(L, dir ? OTHER_RANK_FAILED : re.msg);
        }
        snprintf(resume_dir, sizeof resume_dir, "%s", dir);
        free(dir);
        if (!out)
            out = resume_dir;
        po.resume = &state;
    }
    po.run_name = l_opt_str(L, S_OPTS, "run", out ? aim_basename(out) : "lua");
    step_ctx sc = {.L = L, .eng = l_engine(L)};
    sc.every = l_opt_int(L, S_OPTS, "every", 1, 1, LUA_MAXINTEGER);
    int t = l_opt_get(L, S_OPTS, "on_step"); /* opts on_step */
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        return luaL_argerror(L, S_OPTS, "option 'on_step' must be a function");
    lua_pushnil(L); /* opts on_step err */

    /* the run folder */
    aim_err e;
    const char *metrics = NULL, *weights = NULL;
    if (out) {
        metrics = lua_pushfstring(L, "%s/metrics.jsonl", out);
        weights = lua_pushfstring(L, "%s/model.safetensors", out);
        const char *runjson = lua_pushfstring(L, "%s/run.json", out); /* ... m w r */
        /* rank 0 alone makes and writes the run folder */
        int bad = lead && (aim_mkdir_p(out, &e) != 0 ||
                           (!resume &&
                            aim_pretrain_write_info(runjson, c, &po, ds->kind, ds->n, &e) != 0));
        if (any_rank_failed(po.dist, bad))
            return l_fail(L, bad ? e.msg : OTHER_RANK_FAILED);
        lua_pop(L, 1);
        po.metrics_path = metrics;
    }
    /* the normalisation the model is trained with goes into its weights */
    if (c->nmean == 0)
        aim_model_set_norm(m, ds->c, ds->mean, ds->std, NULL);

    /* validation, live probe, reconstructions, checkpoints */
    po.val = opt_images(L, S_OPTS, "val", c);
    int val_idx = lua_gettop(L);
    po.val_every = l_opt_int(L, S_OPTS, "val_every", po.val ? 100 : 0, 0, (lua_Integer)1 << 40);
    po.val_images = (int)l_opt_int(L, S_OPTS, "val_images", 512, 1, 1 << 30);
    po.probe_test = opt_images(L, S_OPTS, "probe_test", c);
    int probe_idx = po.probe_test ? lua_gettop(L) : 0;
    po.probe_every = l_opt_int(L, S_OPTS, "probe_every", 0, 0, (lua_Integer)1 << 40);
    po.probe_images = (int)l_opt_int(L, S_OPTS, "probe_images", 2000, 2, 1 << 30);
    const aim_dataset *recon = opt_images(L, S_OPTS, "recon", c);
    int recon_idx = recon && lead ? lua_gettop(L) : 0;
    /* recon_images: the first ones of val go to the event file as "recon/val"
     * at each validation; up to AIM_RECON_MAX of recon to the TUI's panel
     * (and the event file as "recon/board") */
    po.recon_images = (int)l_opt_int(L, S_OPTS, "recon_images", 4, 0, AIM_RECON_IMAGES_MAX);
    l_board_opts bo = {
        .recon_images = po.recon_images < AIM_RECON_MAX ? po.recon_images : AIM_RECON_MAX,
        .recon_every = l_opt_int(L, S_OPTS, "recon_every", 0, 0, (lua_Integer)1 << 40),
        .probe_images = po.probe_images,
        .seed = po.data.seed,
    };
    /* a resumed run keeps its checkpoint schedule unless told otherwise */
    po.ckpt_every = l_opt_int(L, S_OPTS, "ckpt_every", resume ? po.ckpt_every : 0, 0,
                              (lua_Integer)1 << 40);
    po.ckpt_minutes = l_opt_num(L, S_OPTS, "ckpt_minutes", resume ? po.ckpt_minutes : 0, 0, 1e9);
    po.keep_last = (int)l_opt_int(L, S_OPTS, "keep", resume ? po.keep_last : 3, 0, 1 << 30);
    int ckpt = l_opt_bool(L, S_OPTS, "checkpoints", po.ckpt_every > 0 || po.ckpt_minutes > 0);
    if (ckpt && !out)
        return luaL_argerror(L, S_OPTS, "checkpoints need a run folder (option 'out')");
    po.ckpt_dir = ckpt ? out : NULL;
    bo.can_checkpoint = ckpt;
    (void)val_idx;

    char desc[512];
    snprintf(desc, sizeof desc,
             "%s, %lld images %dx%dx%d | model D=%d L=%d heads=%d patch=%d (%.2fM trunk + "
             "%.2fM head params) | %lld steps x %d | %d threads%s%.200s",
             ds->kind, (long long)ds->n, ds->c, ds->h, ds->w, c->width, c->depth, c->heads,
             c->patch, aim_config_trunk_params(c) / 1e6, aim_config_head_params(c) / 1e6,
             (long long)po.steps, po.batch, omp_get_max_threads(), out ? " | " : "",
             out ? out : "");
    if (aim_engine_job_begin(sc.eng, "pretrain", desc, po.lr, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    aim_engine_job_folder(sc.eng, out, omp_get_max_threads(), ckpt);
    /* FLOPs per image of a step (backward is two GEMMs per forward one) for
     * the live MFU; not counted across ranks: img/s is then the world's,
     * the peak one process's */
    aim_engine_job_flops(sc.eng, c, po.batch,
                         aim_dist_size(po.dist) == 1
                             ? 3 * aim_config_flops_loss(c, AIM_LOSS_ROWS(c))
                             : 0);
    sc.board = l_board_new(L, sc.eng, S_MODEL, S_DATA, probe_idx, recon_idx, &bo);
    sc.m = m;
    po.live_lr = aim_engine_job_lr(sc.eng);
    po.on_step = job_on_step;
    po.on_message = job_on_message;
    po.on_val = job_on_val;
    po.on_probe = job_on_probe;
    po.requests = job_requests;
    po.ctx = &sc;
    lm->busy = ld->busy = 1;
    aim_pretrain_result res;
    int rc = aim_pretrain(m, ds, &po, &res, &e);
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
    float peak = *po.live_lr;
    aim_engine_job_end(sc.eng, summary, res.steps_done ? &sc.last : NULL);
    int bad = sc.failed || aim_engine_interrupted(sc.eng) || rc != 0, bad_save = 0;
    if (!bad && lead && weights && aim_model_save(m, weights, &e) != 0)
        bad = bad_save = 1;
    int others = any_rank_failed(po.dist, bad);
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
    lua_createtable(L, 0, 14);
    l_set_int(L, "steps", res.steps_done);
    l_set_int(L, "total", po.steps);
    l_set_num(L, "loss", res.final_loss);
    l_set_num(L, "mean_loss", res.mean_loss_last);
    l_set_num(L, "seconds", res.seconds);
    l_set_int(L, "images", res.steps_done * po.batch);
    l_set_num(L, "img_per_s", res.seconds > 0 ? res.steps_done * po.batch / res.seconds : 0);
    l_set_num(L, "epochs", (double)res.steps_done * po.batch / (double)ds->n);
    l_set_bool(L, "stopped", res.stopped);
    l_set_num(L, "lr", peak);
    l_set_str(L, "out", out);
    l_set_str(L, "metrics", metrics);
    l_set_str(L, "weights", weights);
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
        omp_set_num_threads((int)n);
        openblas_set_num_threads((int)n);
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
    {"pretrain", l_pretrain}, {"pause", l_pause}, {"resume", l_resume}, {"stop", l_stop},
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
