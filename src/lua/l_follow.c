/*
 * l_follow.c - aim.follow(dir [, opts]): watch a run folder that another
 * process writes - `aim train` under nohup, `aim run`, rank 0 of `mpirun`,
 * a probe or LoRA run folder - as a job on the engine. Its metrics log is
 * read as it grows (aim_metrics_tail) and each line is published as the
 * writer's own job would publish it: training steps to the curve and the
 * status line, validation points, live probes and LoRA epochs to the probe
 * panel, and the reconstruction grid the writer leaves as recon.npy beside
 * its "recon" line. Nothing of the writer can be steered from here: the
 * job says so when it starts, pause() stops reading, stop() (or q) stops
 * following.
 *
 * The writer holds a lock on its log (aim_runlog_writer_active): when it is
 * released the writer has gone, and the status line says whether it
 * finished (its last step was the last) or stopped early (killed, or
 * stopped: `aim train --resume DIR` goes on). Where locks do not work the
 * writer counts as gone after `stale` seconds without a new line. A log
 * cut shorter (a resumed run truncates it to its checkpoint) is read again
 * from the start; a log that is not there yet, or was deleted, is waited
 * for. opts: poll (seconds between reads, 0.25), stale (60), quiet (no
 * message per epoch). Returns {lines =, steps =, writer = "live" |
 * "stopped" | "finished" | "waiting"} when stopped.
 *
 * aim.follow{dir1, dir2, ...} (or one with compare = true) follows runs as
 * aim.compare shows them, reading them again every `every` (2) seconds
 * while they are the comparison shown (aim.compare{...} from the console
 * shows others and ends it): `aim tui --follow
 * RUN...` and `aim tui --compare` use it.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "aim/io.h"
#include "aim/json.h"
#include "aim/metrics.h"
#include "aim/runlog.h"
#include "lua/l_aim.h"

#define FOLLOW_SETS 64

typedef struct follow {
    aim_engine *eng;
    const char *dir;
    char *metrics, *info, *recon;
    aim_metrics_tail tail;
    double poll, stale;
    int quiet;
    /* from run.json (read again when it changes) */
    struct timespec info_mtime;
    char kind[16];                     /* "pretrain", "lora", "probe" */
    aim_config c;
    int have_config;
    int64_t total, batch;
    int probe_blocks[AIM_PROBE_BLOCKS], nprobe;
    int nsets, set_n[FOLLOW_SETS], set_b[FOLLOW_SETS][4];
    /* what has been read */
    aim_step_info last;
    int64_t lines, probe_epochs;
    double last_new;                   /* monotonic time of the last new line */
    int state;                         /* aim_follow_state */
    aim_probe_view pv;
    struct timespec recon_mtime;
    double recon_loss;
    int recon_prefix, recon_due;
    int64_t recon_step, recon_shown;
} follow;

static int same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* ------------------------------------------------------------ run.json */

/* "sets": [[3, 4], [5]] of a probe run */
static void read_sets(follow *f, const uint8_t *buf, size_t len)
{
    aim_jr r;
    aim_sbuf tmp = {0};
    f->nsets = 0;
    aim_jr_init(&r, buf, len, NULL, NULL, NULL);
    r.raw_bytes = 1;
    if (aim_jr_check(&r, NULL) != 0 || aim_jr_member(&r, "sets", &tmp) != 1 ||
        aim_jr_peek(&r) != '[') {
        aim_sb_free(&tmp);
        return;
    }
    aim_sb_free(&tmp);
    int more = aim_jr_open(&r, '[') == 0;
    while (more && f->nsets < FOLLOW_SETS) {
        if (aim_jr_peek(&r) != '[')
            return;
        int s = f->nsets, k = 0, inner = aim_jr_open(&r, '[') == 0;
        while (inner) {
            int kind = 0;
            int64_t v = 0;
            if (aim_jr_number(&r, &kind, &v) != 0)
                return;
            if (k < 4)
                f->set_b[s][k++] = (int)v;
            if ((inner = aim_jr_next(&r, ']')) < 0)
                return;
        }
        f->set_n[f->nsets++] = k;
        if ((more = aim_jr_next(&r, ']')) < 0)
            return;
    }
}

static int64_t get_int(const uint8_t *buf, size_t len, const char *key, int64_t dflt)
{
    int64_t v;
    return aim_json_get_int(buf, len, key, &v) == 0 ? v : dflt;
}

/* (Re)read run.json when it is new or changed: the job's kind, its shape
 * and how many steps it will take. */
static void read_info(follow *f)
{
    struct stat st;
    if (stat(f->info, &st) != 0 || same_time(st.st_mtim, f->info_mtime))
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (aim_read_file(f->info, 1 << 20, &buf, &len, NULL) != 0)
        return;
    f->info_mtime = st.st_mtim;
    if (aim_json_get_string(buf, len, "kind", f->kind, sizeof f->kind) != 0)
        snprintf(f->kind, sizeof f->kind, "pretrain");
    aim_config c = {0};
    c.image = (int)get_int(buf, len, "image", 0);
    c.channels = (int)get_int(buf, len, "channels", 0);
    c.patch = (int)get_int(buf, len, "patch", 0);
    c.width = (int)get_int(buf, len, "width", 0);
    c.depth = (int)get_int(buf, len, "depth", 0);
    c.heads = (int)get_int(buf, len, "heads", 0);
    f->have_config = c.image > 0 && c.image <= 4096 && c.patch > 0 && c.image % c.patch == 0 &&
                     (c.channels == 1 || c.channels == 3) && c.depth > 0 &&
                     c.depth <= AIM_PROBE_BLOCKS;
    if (f->have_config)
        f->c = c;
    f->batch = get_int(buf, len, "batch", 0);
    char prec[8] = "";
    aim_json_get_string(buf, len, "precision", prec, sizeof prec);
    /* the status line says bf16 for a bf16 run (no FLOPs: not this process's job) */
    aim_engine_job_flops(f->eng, &c, 0, strcmp(prec, "bf16") ? AIM_PREC_FP32 : AIM_PREC_BF16, 0);
    if (!strcmp(f->kind, "lora") || !strcmp(f->kind, "finetune")) {
        int64_t ep = get_int(buf, len, "epochs", 0), n = get_int(buf, len, "train_images", 0);
        f->total = f->batch > 0 ? ep * (n / f->batch) : 0;
        int nb = aim_json_get_ints(buf, len, "probe_blocks", f->probe_blocks, AIM_PROBE_BLOCKS);
        f->nprobe = nb > 0 ? nb : 0;
        aim_engine_job_labels(f->eng, "cross-entropy", "next-patch");
    } else if (!strcmp(f->kind, "probe")) {
        read_sets(f, buf, len);
        f->total = get_int(buf, len, "epochs", 0) * (f->nsets > 0 ? f->nsets : 1);
    } else {
        f->total = get_int(buf, len, "steps", 0);
    }
    free(buf);
    if (f->have_config && f->pv.n != f->c.depth) {
        aim_probe_view_init(&f->pv, "", f->c.depth);
    }
}

/* ------------------------------------------------------------ lines */

static void publish_step(follow *f, const aim_metric *r, const char *prefix)
{
    char key[64];
#define GET(name) (snprintf(key, sizeof key, "%s%s", prefix, name), aim_metric_get(r, key))
    aim_step_info si = {.step = r->step, .total = f->total > r->step ? f->total : r->step};
    si.loss = (float)GET("loss");
    si.lr = (float)GET("lr");
    si.grad_norm = (float)GET("grad_norm");
    double ips = GET("img_per_s"), ep = GET("epoch"), t = GET("time");
#undef GET
    si.img_per_s = isfinite(ips) ? ips : 0;
    si.epoch = isfinite(ep) ? ep : 0;
    si.elapsed_s = isfinite(t) ? t : 0;
    si.images = f->batch > 0 ? r->step * f->batch : 0;
    si.eta_s = r->step > 0 && si.elapsed_s > 0
                   ? si.elapsed_s / (double)r->step * (double)(si.total - r->step)
                   : 0;
    f->last = si;
    aim_engine_job_publish(f->eng, &si);
}

/* the probe panel's bar of block b (1-based) */
static void set_bar(follow *f, int b, float v)
{
    if (b >= 1 && b <= f->pv.n)
        f->pv.top1[b - 1] = v;
}

static void live_probe(follow *f, const aim_metric *r)
{
    snprintf(f->pv.kind, sizeof f->pv.kind, "live linear");
    for (int l = 1; l <= f->pv.n; l++) {
        char key[48];
        snprintf(key, sizeof key, "probe_top1_block%d", l);
        set_bar(f, l, (float)aim_metric_get(r, key));
    }
    f->pv.step = r->step;
    aim_engine_job_probe(f->eng, &f->pv);
}

/* a LoRA or fine-tuning epoch (job "lora" or "finetune": its line's kind) */
static void tune_epoch(follow *f, const aim_metric *r)
{
    char key[48];
#define GET(name) (snprintf(key, sizeof key, "%s_%s", r->kind, name), aim_metric_get(r, key))
    float t = (float)GET("test_top1");
    snprintf(f->pv.kind, sizeof f->pv.kind, "%s test", r->kind);
    for (int k = 0; k < f->nprobe; k++) {
        set_bar(f, f->probe_blocks[k], t);
        if (f->probe_blocks[k] >= 1 && f->probe_blocks[k] <= f->pv.n)
            f->pv.role[f->probe_blocks[k] - 1] |= AIM_BLOCK_PROBED;
    }
    f->pv.step = r->step;
    aim_engine_job_probe(f->eng, &f->pv);
    if (!f->quiet) {
        char msg[160];
        snprintf(msg, sizeof msg, "epoch %.0f: loss %.4f  train %.2f%%  test %.2f%%",
                 GET("epoch"), GET("loss"), GET("train_top1"), t);
        aim_engine_job_message(f->eng, msg);
    }
#undef GET
}

/* a probe job's (or LoRA --compare's frozen probe's) result per set */
static void probe_result(follow *f, const aim_metric *r)
{
    snprintf(f->pv.kind, sizeof f->pv.kind, "%s", !strcmp(f->kind, "lora") ? "frozen probe"
                                                                             : "probe");
    for (int s = 0; s < FOLLOW_SETS; s++) {
        char key[48];
        snprintf(key, sizeof key, "probe_result_top1_block%d", s + 1);
        float v = (float)aim_metric_get(r, key);
        if (!isfinite(v))
            break;
        if (!strcmp(f->kind, "lora")) { /* the frozen probe LoRA starts from: the mark */
            snprintf(f->pv.ref_kind, sizeof f->pv.ref_kind, "frozen probe");
            for (int k = 0; k < f->nprobe; k++)
                if (f->probe_blocks[k] >= 1 && f->probe_blocks[k] <= f->pv.n)
                    f->pv.ref[f->probe_blocks[k] - 1] = v;
        } else if (s < f->nsets) {
            for (int k = 0; k < f->set_n[s] && k < 4; k++)
                set_bar(f, f->set_b[s][k], v);
        }
    }
    f->pv.step = r->step;
    aim_engine_job_probe(f->eng, &f->pv);
}

/* the grid the writer left beside its "recon" line */
static void read_recon(follow *f, int64_t step)
{
    struct stat st;
    if (!f->have_config || stat(f->recon, &st) != 0 ||
        (same_time(st.st_mtim, f->recon_mtime) && step == f->recon_shown))
        return;
    f->recon_shown = step;
    aim_array a = {0};
    aim_err e = {{0}};
    if (aim_npy_read(f->recon, &a, &e) != 0)
        return; /* being replaced: the next line brings it again */
    f->recon_mtime = st.st_mtim;
    const aim_config *c = &f->c;
    if (a.dtype == AIM_F32 && a.ndim == 5 && a.shape[0] == 3 && a.shape[1] >= 1 &&
        a.shape[2] == c->channels && a.shape[3] == c->image && a.shape[4] == c->image) {
        int n = (int)(a.shape[1] < AIM_RECON_MAX ? a.shape[1] : AIM_RECON_MAX);
        size_t all = (size_t)a.shape[1] * c->channels * c->image * c->image;
        /* the view takes input | pred | target of n images each */
        size_t one = (size_t)n * c->channels * c->image * c->image;
        float *out = aim_xmalloc(3 * one * sizeof(float));
        for (int k = 0; k < 3; k++)
            memcpy(out + k * one, (float *)a.data + k * all, one * sizeof(float));
        aim_recon_view *v = aim_xmalloc(sizeof *v);
        aim_recon_view_fill(v, c, out, n, f->recon_prefix, step, f->recon_loss);
        aim_engine_job_recon(f->eng, v);
        free(v);
        free(out);
    }
    aim_array_free(&a);
}

static void take_line(follow *f, const aim_metric *r)
{
    const char *k = r->kind;
    if (!strcmp(k, "train")) {
        publish_step(f, r, "");
    } else if (!strcmp(k, "lora_step")) {
        publish_step(f, r, "lora_step_");
    } else if (!strcmp(k, "finetune_step")) {
        publish_step(f, r, "finetune_step_");
    } else if (!strcmp(k, "probe_epoch")) { /* a probe job: one point per epoch */
        aim_step_info si = {.step = ++f->probe_epochs};
        si.total = f->total > si.step ? f->total : si.step;
        si.loss = (float)aim_metric_get(r, "probe_epoch_loss");
        si.lr = (float)aim_metric_get(r, "probe_epoch_lr");
        f->last = si;
        aim_engine_job_publish(f->eng, &si);
    } else if (!strcmp(k, "val")) {
        double v = aim_metric_get(r, "val_loss");
        if (isfinite(v))
            aim_engine_job_val(f->eng, r->step, (float)v);
    } else if (!strcmp(k, "probe")) {
        live_probe(f, r);
    } else if (!strcmp(k, "lora") || !strcmp(k, "finetune")) {
        tune_epoch(f, r);
    } else if (!strcmp(k, "probe_result")) {
        probe_result(f, r);
    } else if (!strcmp(k, "sys")) {
        aim_sys sys = {(float)aim_metric_get(r, "sys_cores"), (float)aim_metric_get(r, "sys_rss_mb"),
                       (float)aim_metric_get(r, "sys_load1")};
        aim_engine_job_sys(f->eng, &sys);
    } else if (!strcmp(k, "recon")) { /* the grid is read once the poll's lines are taken */
        f->recon_loss = aim_metric_get(r, "recon_loss");
        f->recon_prefix = (int)aim_metric_get(r, "recon_prefix");
        f->recon_step = r->step;
        f->recon_due = 1;
    }
    if (r->step > f->last.step && strcmp(k, "probe_epoch") && strcmp(k, "probe_result"))
        f->last.step = r->step; /* how far the writer got, whatever the line */
}

/* ------------------------------------------------------------ the writer */

static void set_state(follow *f, int state)
{
    if (state == f->state)
        return;
    char msg[AIM_MSG_LEN];
    msg[0] = 0;
    long long s = (long long)f->last.step, t = (long long)f->total;
    if (state == AIM_FOLLOW_LIVE && f->state >= AIM_FOLLOW_STOPPED)
        snprintf(msg, sizeof msg, "%s: a writer is back (resumed?)", f->dir);
    else if (state == AIM_FOLLOW_FINISHED)
        snprintf(msg, sizeof msg, "%s: the writer has finished (step %lld of %lld)", f->dir, s, t);
    else if (state == AIM_FOLLOW_STOPPED)
        snprintf(msg, sizeof msg,
                 "%s: the writer has stopped at step %lld of %lld without finishing (killed, or "
                 "stopped: `aim train --resume %s` goes on)", f->dir, s, t, f->dir);
    else if (state == AIM_FOLLOW_WAITING && f->state != AIM_FOLLOW_NONE)
        snprintf(msg, sizeof msg, "%s: the log is gone: waiting for it to come back", f->dir);
    f->state = state;
    aim_engine_job_follow(f->eng, (aim_follow_state)state);
    if (msg[0])
        aim_engine_job_message(f->eng, msg);
}

static void check_writer(follow *f, int got_lines)
{
    if (f->tail.missing) {
        set_state(f, AIM_FOLLOW_WAITING);
        return;
    }
    int active = aim_runlog_writer_active(f->metrics);
    if (active < 0) /* no locks here: time tells */
        active = aim_now() - f->last_new < f->stale;
    if (active || got_lines) {
        set_state(f, AIM_FOLLOW_LIVE);
        return;
    }
    int done = f->total > 0 && f->last.step >= f->total;
    set_state(f, done ? AIM_FOLLOW_FINISHED : AIM_FOLLOW_STOPPED);
}

/* ------------------------------------------------------------ the job */

static const char *live_name(int state)
{
    static const char *const names[] = {"none", "waiting", "live", "stopped", "finished"};
    return names[state >= 0 && state <= 4 ? state : 0];
}

static void follow_free(follow *f)
{
    aim_metrics_tail_free(&f->tail);
    free(f->metrics);
    free(f->info);
    free(f->recon);
}

/* One poll: run.json, the new lines, the writer. Returns the lines read. */
static int64_t follow_poll(follow *f)
{
    read_info(f);
    aim_metrics got;
    int rewound = 0;
    aim_err e = {{0}};
    if (aim_metrics_tail_poll(&f->tail, &got, &rewound, &e) != 0) {
        aim_engine_job_message(f->eng, e.msg);
        return 0;
    }
    if (rewound) {
        aim_engine_job_rewind(f->eng);
        memset(&f->last, 0, sizeof f->last);
        f->probe_epochs = 0;
        f->recon_shown = -1;
        aim_engine_job_message(f->eng, "the log was cut back (the run was resumed): read again "
                                       "from its start");
    }
    for (int i = 0; i < got.n; i++)
        take_line(f, &got.rows[i]);
    if (f->recon_due) {
        f->recon_due = 0;
        read_recon(f, f->recon_step);
    }
    f->lines += got.n;
    if (got.n > 0)
        f->last_new = aim_now();
    check_writer(f, got.n > 0);
    int64_t n = got.n;
    aim_metrics_free(&got);
    return n;
}

/* Several folders: aim.compare on them again every `every` seconds, so
 * the overlaid curves and grouped bars grow; the badge says whether any
 * writer is at work. */
static int follow_many(lua_State *L, int nruns, double every)
{
    aim_engine *eng = l_engine(L);
    char desc[AIM_MSG_LEN];
    snprintf(desc, sizeof desc, "the runs are compared, read again every %g s", every);
    aim_err e;
    if (aim_engine_job_begin(eng, "follow", desc, 0, &e) != 0)
        return luaL_error(L, "%s", e.msg);
    int state = -1, failed = 0, stop = 0;
    int64_t reads = 0;
    while (!stop) {
        if (reads > 0) { /* aim.compare{...} from the console shows others: leave them */
            lua_getfield(L, LUA_REGISTRYINDEX, L_COMPARE_SHOWN);
            int ours = lua_rawequal(L, -1, 1);
            lua_pop(L, 1);
            if (!ours) {
                aim_engine_job_message(eng, "another comparison is shown: these runs are no "
                                            "longer read again");
                break;
            }
        }
        lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
        lua_getfield(L, -1, "aim");
        lua_getfield(L, -1, "compare"); /* loaded aim compare */
        lua_pushvalue(L, 1);
        if (lua_pcall(L, 1, 2, 0) != LUA_OK || lua_isnil(L, -2)) {
            if (!failed) /* once, until it works again */
                aim_engine_job_message(eng, lua_tostring(L, -1));
            failed = 1;
        } else {
            failed = 0;
            reads++;
        }
        lua_settop(L, 1);
        int live = 0, any = 0;
        for (int i = 1; i <= nruns; i++) {
            lua_rawgeti(L, 1, i);
            const char *p = lua_tostring(L, -1);
            if (p) {
                struct stat st;
                char *mp = stat(p, &st) == 0 && S_ISDIR(st.st_mode)
                               ? aim_xasprintf("%s/metrics.jsonl", p)
                               : aim_xstrdup(p);
                int a = aim_runlog_writer_active(mp);
                live += a == 1;
                any += a >= 0;
                free(mp);
            }
            lua_pop(L, 1);
        }
        int now = live ? AIM_FOLLOW_LIVE : any ? AIM_FOLLOW_FINISHED : AIM_FOLLOW_STOPPED;
        if (now != state)
            aim_engine_job_follow(eng, (aim_follow_state)now);
        state = now;
        for (double waited = 0; !stop && waited < every; waited += 0.1) {
            stop = aim_engine_job_step(eng, L);
            struct timespec ts = {0, 100000000L};
            if (!stop)
                nanosleep(&ts, NULL);
        }
    }
    char summary[160];
    snprintf(summary, sizeof summary, "stopped following %d runs (read %lld times)", nruns,
             (long long)reads);
    aim_engine_job_end(eng, summary, NULL);
    lua_createtable(L, 0, 2);
    l_set_int(L, "reads", reads);
    l_set_str(L, "writer", live_name(state));
    return 1;
}

static int l_follow(lua_State *L)
{
    static const char *const keys[] = {"poll", "stale", "quiet", "every", "compare", NULL};
    l_check_options(L, 2, keys);
    if (lua_istable(L, 1)) {
        int n = (int)luaL_len(L, 1);
        if (n < 1 || n > AIM_COMPARE_RUNS)
            return luaL_argerror(L, 1, lua_pushfstring(L, "1 to %d run folders",
                                                       AIM_COMPARE_RUNS));
        double every = l_opt_num(L, 2, "every", 2, 0.05, 3600);
        if (n > 1 || l_opt_bool(L, 2, "compare", 0)) {
            lua_settop(L, 1);
            return follow_many(L, n, every);
        }
        lua_rawgeti(L, 1, 1);
        lua_replace(L, 1);
    }
    const char *dir = luaL_checkstring(L, 1);
    l_check_options(L, 2, keys);
    follow f = {.eng = l_engine(L), .dir = dir};
    f.poll = l_opt_num(L, 2, "poll", 0.25, 0.001, 60);
    f.stale = l_opt_num(L, 2, "stale", 60, 0.001, 1e9);
    f.quiet = l_opt_bool(L, 2, "quiet", 0);
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return luaL_argerror(L, 1, lua_pushfstring(L, "%s is not a run folder", dir));
    f.metrics = aim_xasprintf("%s/metrics.jsonl", dir);
    f.info = aim_xasprintf("%s/run.json", dir);
    f.recon = aim_xasprintf("%s/recon.npy", dir);
    aim_metrics_tail_init(&f.tail, f.metrics);
    aim_probe_view_init(&f.pv, "", 0);
    char desc[AIM_MSG_LEN];
    snprintf(desc, sizeof desc,
             "following %s, written by another process: the view only (pause stops reading, "
             "stop() or q stops following)", dir);
    aim_err e;
    if (aim_engine_job_begin(f.eng, "follow", desc, 0, &e) != 0) {
        follow_free(&f);
        return luaL_error(L, "%s", e.msg);
    }
    aim_engine_job_folder(f.eng, dir, 0, 0);
    f.last_new = aim_now();
    int stop = 0;
    while (!stop) {
        int64_t n = follow_poll(&f);
        stop = aim_engine_job_step(f.eng, L);
        if (!stop && !(n > 0 && f.tail.more)) { /* a long log is read in one go */
            struct timespec ts = {(time_t)f.poll, (long)((f.poll - (time_t)f.poll) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    const char *writer = live_name(f.state);
    char summary[AIM_MSG_LEN];
    snprintf(summary, sizeof summary, "stopped following %s: %lld lines, step %lld, writer %s",
             dir, (long long)f.lines, (long long)f.last.step, writer);
    aim_step_info last = f.last;
    aim_engine_job_end(f.eng, summary, last.step > 0 ? &last : NULL);
    lua_createtable(L, 0, 3);
    l_set_int(L, "lines", f.lines);
    l_set_int(L, "steps", f.last.step);
    l_set_str(L, "writer", writer);
    follow_free(&f);
    return 1;
}

void l_open_follow(lua_State *L)
{
    lua_pushcfunction(L, l_follow);
    lua_setfield(L, -2, "follow");
}
