/*
 * test_engine.c - the engine without any UI: chunks run on the caller's
 * thread (values, incomplete input, errors with tracebacks, print), then on
 * the engine thread while a short pretraining job on synthetic data runs:
 * queued lines run between steps, pause() stops the step counter and
 * resume() continues it, errors in queued lines never kill the job, lr()
 * changes the peak, stop() ends the job with a result, an interrupt stops
 * a runaway chunk and a job, and freeing the engine stops a running job.
 * The board (what the TUI draws): the curve follows the steps and stays
 * bounded, validation points, the live probe with its raw-pixel baseline,
 * reconstructions, messages, and the console's save() / probe() / recon()
 * requests to a running job. The live MFU: a pretraining job publishes its
 * FLOPs per image; the sgemm peak only when the engine is asked to measure
 * it, then once for the same shapes and threads.
 *
 * Each part is a named case (run_case) that reports its own checks; a case
 * that leaves a job behind is stopped before the next begins, so one failure
 * does not cascade. Nothing here waits on a clock: the checks wait (bounded,
 * generously) for what the engine publishes: a step, a state, a reply, a
 * board message, or aim_snapshot.chunks_begun (a chunk has begun, so an
 * interrupt now reaches it).
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/engine.h"
#include "aim/model.h"
#include "tap.h"

typedef struct seen {
    pthread_mutex_t mu;
    char out[4096];
    int events[8];
    int wakes;
    int64_t last_step;     /* the step of the last AIM_EV_STEP */
    int64_t step_at_msg;   /* last_step when "console line interrupted" was posted */
    int line_msgs;         /* how many times it was */
} seen;

static void on_output(void *ctx, const char *text, size_t len)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    size_t at = strlen(s->out);
    if (at + len < sizeof s->out) {
        memcpy(s->out + at, text, len);
        s->out[at + len] = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

/* events come on the engine thread, in the order the engine emits them */
static void on_event(void *ctx, const aim_event *ev)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->events[ev->kind]++;
    if (ev->kind == AIM_EV_STEP && ev->step)
        s->last_step = ev->step->step;
    if (ev->kind == AIM_EV_MESSAGE && tap_contains(ev->text, "console line interrupted")) {
        s->step_at_msg = s->last_step;
        s->line_msgs++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void on_wake(void *ctx)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->wakes++;
    pthread_mutex_unlock(&s->mu);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* the poll interval of the bounded waits below (never a synchronisation) */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to 60 s for the snapshot to satisfy cond; returns 1 if it did. */
static int wait_for(aim_engine *eng, int (*cond)(const aim_snapshot *, int64_t), int64_t arg,
                    aim_snapshot *s)
{
    for (int i = 0; i < 6000; i++) {
        aim_engine_snapshot(eng, s);
        if (cond(s, arg))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static int step_at_least(const aim_snapshot *s, int64_t n)
{
    return s->state == AIM_JOB_RUNNING && s->step.step >= n;
}

static int is_state(const aim_snapshot *s, int64_t st)
{
    return s->state == (aim_job_state)st;
}

static int begun_past(const aim_snapshot *s, int64_t n)
{
    return s->chunks_begun > n;
}

static int64_t chunks_begun(aim_engine *eng)
{
    aim_snapshot s;
    aim_engine_snapshot(eng, &s);
    return s.chunks_begun;
}

/* Submit a chunk and wait (60 s) until it has begun to run, so that an
 * interrupt sent now reaches it (no earlier chunk may be running). */
static int64_t submit_begun(aim_engine *eng, const char *code, int *begun)
{
    aim_snapshot s;
    int64_t before = chunks_begun(eng);
    int64_t t = aim_engine_submit(eng, code, 1);
    *begun = wait_for(eng, begun_past, before, &s);
    return t;
}

/* submit, wait (60 s), return the reply (text owned by the caller) */
static aim_reply ask(aim_engine *eng, const char *code)
{
    aim_reply r = {0};
    int64_t t = aim_engine_submit(eng, code, 1);
    if (aim_engine_wait(eng, t, 60000, &r) != 0) {
        r.status = AIM_EVAL_ERROR;
        r.text = strdup("(timeout)");
    }
    return r;
}

static void check(aim_engine *eng, const char *code, aim_eval_status want, const char *needle,
                  const char *what)
{
    aim_reply r = ask(eng, code);
    tap_ok(r.status == want && tap_contains(r.text, needle), "%s: [%s] -> %d \"%.60s\"", what,
           code, r.status, r.text);
    aim_reply_free(&r);
}

static void check_eval(aim_engine *eng, const char *code, aim_eval_status want,
                       const char *needle, const char *what)
{
    char *text = NULL;
    aim_eval_status st = aim_engine_eval(eng, code, "=test", 1, &text);
    tap_ok(st == want && tap_contains(text, needle), "%s: [%s] -> %d \"%.60s\"", what, code, st,
           text);
    free(text);
}

static int events_of(seen *s, aim_event_kind k)
{
    pthread_mutex_lock(&s->mu);
    int n = s->events[k];
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* a job that runs until it is stopped */
#define DATA "aim.data.synthetic{n = 64, channels = 3, size = 8}"
#define LONG_JOB "aim.pretrain(aim.model 'micro', " DATA ", {steps = 1000000, batch = 4})"

/* ------------------------------------------------------------ the cases */

static seen S = {.mu = PTHREAD_MUTEX_INITIALIZER};
static aim_engine *E;       /* the engine of the threaded cases */
static long long job1_steps; /* steps of case_job_control's job (0: it failed) */

/* the views a job publishes, made from a model's numbers (src/engine/views.c) */
static void test_views(void)
{
    aim_err e = {{0}};
    aim_config c;
    aim_config_preset("micro", &c, &e);
    tap_ok(aim_inspect_view_fits(&c, &e) == 0, "views: the micro model fits the Inspect view");
    aim_config big = c;
    big.image = 68;
    big.patch = 4;
    tap_ok(aim_inspect_view_fits(&big, &e) == -1 && tap_contains(e.msg, "17x17 patches"),
           "views: 17x17 patches do not: %s", e.msg);
    /* a 64-pixel gray image reduced to 32: each pixel the mean of a 2x2 box */
    aim_config r = c;
    r.channels = 1;
    r.image = 64;
    r.patch = 8;
    size_t img = 64 * 64;
    float *out = calloc(3 * 2 * img, sizeof *out);
    for (size_t q = 0; q < img; q++) {
        out[q] = (q % 2) ? 1.0f : 0.0f; /* image 0 input: columns alternate */
        out[2 * img + img + q] = 0.5f;   /* image 1 prediction */
    }
    aim_recon_view *v = malloc(sizeof *v);
    memset(v, 0xff, sizeof *v);
    aim_recon_view_fill(v, &r, out, 2, 3, 42, 0.125);
    tap_ok(v->n == 2 && v->side == 32 && v->patch == 4 && v->prefix == 3 && v->step == 42 &&
               v->loss == 0.125f && v->pix[0][0][0] == 128 && v->pix[0][0][32 * 32 - 1] == 128 &&
               v->pix[1][1][5] == 128 && v->pix[1][0][5] == 0 && v->pix[2][0][0] == 0,
           "views: reconstructions reduced to 32 pixels by 2x2 boxes, the rest zeroed");
    free(v);
    free(out);
}


/* ---- on the caller's thread */
static void case_caller_thread(void)
{
    aim_engine *eng = E;
    check_eval(eng, "1 + 1", AIM_EVAL_OK, "2", "an expression gives its value");
    check_eval(eng, "{a = 1, b = {2, 3}}", AIM_EVAL_OK, "{a = 1, b = {2, 3}}",
               "tables are pretty-printed");
    check_eval(eng, "x = 5", AIM_EVAL_OK, "", "a statement gives nothing");
    check_eval(eng, "x, 'y'", AIM_EVAL_OK, "5\ty", "several values are tab separated");
    check_eval(eng, "for i = 1, 3 do", AIM_EVAL_INCOMPLETE, "<eof>", "an open block is incomplete");
    check_eval(eng, "x = x +", AIM_EVAL_INCOMPLETE, "<eof>", "an open expression is incomplete");
    check_eval(eng, "x = = 1", AIM_EVAL_ERROR, "unexpected symbol", "a syntax error is an error");
    check_eval(eng, "error('boom')", AIM_EVAL_ERROR, "stack traceback", "errors carry a traceback");
    pthread_mutex_lock(&S.mu);
    S.out[0] = 0;
    pthread_mutex_unlock(&S.mu);
    check_eval(eng, "print('hi', 1)", AIM_EVAL_OK, "", "print runs");
    tap_ok(!strcmp(S.out, "hi\t1\n"), "print goes to the output hook: \"%s\"", S.out);
    check_eval(eng, "pause()", AIM_EVAL_OK, "false", "pause without a job does nothing");
    check_eval(eng, "lr(1e-3)", AIM_EVAL_ERROR, "no job is running", "lr without a job");
    check_eval(eng, "type(aim.pretrain), type(stop)", AIM_EVAL_OK, "function\tfunction",
               "aim and the console globals are there");
    /* text chunks only: Lua does not verify bytecode, so load() of a crafted
     * binary chunk could crash; load, loadfile and dofile refuse them */
    check_eval(eng, "load(string.dump(function() return 1 end))", AIM_EVAL_OK,
               "nil\tattempt to load a binary chunk",
               "load: a binary chunk is refused (even with mode 'b')");
    check_eval(eng, "load(string.dump(function() return 1 end), 'x', 'b')", AIM_EVAL_OK,
               "nil\tattempt to load a binary chunk", "load: mode 'b' does not let it in");
    check_eval(eng, "load('return 2')(), load('return x', 'n', 't', {x = 5})(), "
                    "pcall(load('return x', 'n', 't', nil))",
               AIM_EVAL_OK, "2\t5\tfalse", "load: text chunks and the env argument as before");
    check_eval(eng, "load('return x', 'n')()", AIM_EVAL_OK, "5",
               "load: without env, the globals (x = 5 above)");
    int64_t b0 = chunks_begun(eng);
    check_eval(eng, "1", AIM_EVAL_OK, "1", "one more chunk");
    tap_ok(chunks_begun(eng) == b0 + 1, "the snapshot counts the chunks begun (%lld -> %lld)",
           (long long)b0, (long long)chunks_begun(eng));

    char *text = NULL;
    char *argv[] = {"a"};
    aim_eval_status st = aim_engine_run_file(eng, "/nonexistent/x.lua", 1, argv, &text);
    tap_ok(st == AIM_EVAL_ERROR && tap_contains(text, "cannot open"), "a missing script: %s",
           text);
    free(text);
}

/* memory: a runaway allocation is an error and the state goes on, even when
 * the garbage is still referenced (so the next line's own strings cannot be
 * allocated either: that must be an error, not Lua's panic) */
static void case_memory(void)
{
    aim_engine *eng = E;
    check_eval(eng, "select(2, aim.memory_limit(24 * 2^20)) < 24 * 2^20", AIM_EVAL_OK, "true",
               "memory: the limit can be lowered");
    check_eval(eng, "hog = {} for i = 1, 1e9 do hog[i] = ('x'):rep(200) .. i end",
               AIM_EVAL_ERROR, "not enough memory (Lua values and tensors may use 24.0 MiB",
               "memory: a runaway loop stops at the limit with an explanation");
    check_eval(eng, "local s = {} for i = 1, 1e6 do s[i] = ('y'):rep(500) .. i end return #s",
               AIM_EVAL_ERROR, "not enough memory",
               "memory: still full (the hog is referenced): the next line fails cleanly too");
    check_eval(eng, "hog = nil collectgarbage() return select(2, aim.memory_limit()) < 8 * 2^20",
               AIM_EVAL_OK, "true", "memory: released when the garbage is collected");
    check_eval(eng, "aim.tensor.zeros{4096, 4096}", AIM_EVAL_ERROR,
               "not enough memory for a tensor of shape [4096,4096]",
               "memory: tensor storage counts against the limit");
    check_eval(eng, "local t = aim.tensor.zeros{1024, 1024} local a, b = aim.memory_limit() "
                    "return b > 4 * 2^20",
               AIM_EVAL_OK, "true", "memory: a live tensor is counted");
    check_eval(eng, "collectgarbage() collectgarbage() return select(2, aim.memory_limit()) < 4 * 2^20",
               AIM_EVAL_OK, "true", "memory: a collected tensor is given back");
    check_eval(eng, "aim.memory_limit(1000)", AIM_EVAL_ERROR, "under 1 MiB",
               "memory: a limit too small to run is refused");
    check_eval(eng, "aim.memory_limit(0) == 0", AIM_EVAL_OK, "true", "memory: 0 = no limit");
}

/* ---- on the engine thread (when it does not start, E is freed and the
 * threaded cases SKIP) */
static void case_thread_start(void)
{
    aim_err e = {{0}};
    check_eval(E, "shared = 21", AIM_EVAL_OK, "", "a global set on the caller's thread");
    if (!tap_ok(aim_engine_start(E, &e) == 0, "the engine thread starts (%s)", e.msg)) {
        aim_engine_free(E);
        E = NULL;
        return;
    }
    check_eval(E, "1", AIM_EVAL_ERROR, "aim_engine_submit",
               "eval on the caller's thread is refused once the thread runs");
    check(E, "shared * 2", AIM_EVAL_OK, "42", "a submitted chunk sees the same state");
}

/* pause / resume / lr / stop on a running job, lines queued between steps */
static void case_job_control(void)
{
    aim_engine *eng = E;
    aim_snapshot snap;
    aim_engine_snapshot(eng, &snap);
    int64_t done0 = snap.jobs_done;
    int ev0[8];
    for (int k = 0; k < 8; k++)
        ev0[k] = events_of(&S, (aim_event_kind)k);
    int64_t job = aim_engine_submit(
        eng,
        "m = aim.model 'micro'; ds = " DATA ";"
        "result = aim.pretrain(m, ds, {steps = 1000000, batch = 4}); return result.steps",
        1);
    int ok = wait_for(eng, step_at_least, 3, &snap);
    if (!tap_ok(ok && !strcmp(snap.job, "pretrain"), "the job runs: step %lld, job \"%s\"",
                (long long)snap.step.step, snap.job))
        return;
    check(eng, "pause()", AIM_EVAL_OK, "true", "pause() while training");
    ok = wait_for(eng, is_state, AIM_JOB_PAUSED, &snap);
    tap_ok(ok, "the job is paused at step %lld", (long long)snap.step.step);
    int64_t s1 = snap.step.step;
    int steps_ev = events_of(&S, AIM_EV_STEP);
    /* a line runs in the paused job's loop: around its reply, nothing stepped */
    check(eng, "6 * 7", AIM_EVAL_OK, "42", "lines run while paused");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.step.step == s1 && snap.state == AIM_JOB_PAUSED &&
               events_of(&S, AIM_EV_STEP) == steps_ev,
           "pause stops the step counter (%lld before a queued line's reply, %lld after; "
           "%d step events, then %d)",
           (long long)s1, (long long)snap.step.step, steps_ev, events_of(&S, AIM_EV_STEP));
    check(eng, "error('inside the job')", AIM_EVAL_ERROR, "inside the job",
          "an error in a queued line comes back to the sender");
    aim_reply r = ask(eng, "error('again')");
    tap_ok(tap_contains(r.text, "stack traceback"), "... with a traceback");
    aim_reply_free(&r);
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.state == AIM_JOB_PAUSED, "... and the job lives on");
    check(eng, "aim.pretrain(m, ds, {steps = 1})", AIM_EVAL_ERROR, "already running",
          "jobs do not nest");
    check(eng, "lr(3e-4)", AIM_EVAL_OK, "0.0003", "lr(x) while paused");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.lr_peak == 3e-4f, "the snapshot shows the new peak (%g)", snap.lr_peak);
    check(eng, "resume()", AIM_EVAL_OK, "true", "resume()");
    ok = wait_for(eng, step_at_least, s1 + 3, &snap);
    tap_ok(ok, "resume continues: step %lld", (long long)snap.step.step);
    tap_ok(snap.step.lr <= 3e-4f * 1.0001f, "steps after lr(3e-4) use the new peak (lr %g)",
           snap.step.lr);
    check(eng, "lr()", AIM_EVAL_OK, "0.0003", "lr() returns the current lr and the peak");
    tap_ok(aim_engine_pause(eng) == 1, "aim_engine_pause from another thread");
    tap_ok(wait_for(eng, is_state, AIM_JOB_PAUSED, &snap), "... pauses the job");
    tap_ok(aim_engine_resume(eng) == 1 && wait_for(eng, is_state, AIM_JOB_RUNNING, &snap),
           "aim_engine_resume continues it");
    check(eng, "stop()", AIM_EVAL_OK, "true", "stop()");
    r = (aim_reply){0};
    int got = aim_engine_wait(eng, job, 60000, &r);
    long long steps = got == 0 && r.text ? atoll(r.text) : -1;
    if (tap_ok(got == 0 && r.status == AIM_EVAL_OK && steps > s1 && steps < 1000000,
               "stop ends the job, which returns its result (%lld steps)", steps))
        job1_steps = steps;
    aim_reply_free(&r);
    check(eng, "result.stopped, result.total", AIM_EVAL_OK, "true\t1000000",
          "the result says it was stopped");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.state == AIM_JOB_IDLE && snap.jobs_done == done0 + 1,
           "the engine is idle, 1 more job done (%lld)", (long long)snap.jobs_done);
    pthread_mutex_lock(&S.mu);
    int d[8];
    for (int k = 0; k < 8; k++)
        d[k] = S.events[k] - ev0[k];
    tap_ok(d[AIM_EV_JOB_START] == 1 && d[AIM_EV_JOB_END] == 1 && d[AIM_EV_PAUSE] == 2 &&
               d[AIM_EV_RESUME] == 2 && d[AIM_EV_STEP] >= steps && S.wakes > 0,
           "events: start %d, end %d, pause %d, resume %d, steps %d", d[AIM_EV_JOB_START],
           d[AIM_EV_JOB_END], d[AIM_EV_PAUSE], d[AIM_EV_RESUME], d[AIM_EV_STEP]);
    pthread_mutex_unlock(&S.mu);
}

static int board_has(const aim_board *bd, const char *needle)
{
    int saw = 0;
    for (int64_t k = bd->nmsg > AIM_MSG_MAX ? bd->nmsg - AIM_MSG_MAX : 0; k < bd->nmsg; k++)
        saw |= tap_contains(bd->msg[k % AIM_MSG_MAX], needle);
    return saw;
}

/* the board after case_job_control's job */
static void case_board_after_job(void)
{
    if (!job1_steps) {
        tap_skip("the board after a job: the job of case job_control did not end");
        return;
    }
    long long steps = job1_steps;
    aim_board *bd = calloc(1, sizeof *bd);
    tap_ok(aim_engine_board(E, bd) == 1 && bd->ncurve > 0 && bd->stride == 1 &&
               bd->curve[bd->ncurve - 1].step == steps && bd->curve[0].step == 1,
           "the board's curve holds the job's steps (%d points, last %lld)", bd->ncurve,
           bd->ncurve ? (long long)bd->curve[bd->ncurve - 1].step : -1LL);
    int mono = 1;
    for (int i = 1; i < bd->ncurve; i++)
        mono &= bd->curve[i].step == bd->curve[i - 1].step + 1 &&
                bd->curve[i].lo <= bd->curve[i].loss && bd->curve[i].loss <= bd->curve[i].hi;
    tap_ok(mono, "... one point per step, lo <= loss <= hi");
    tap_ok(aim_engine_board(E, bd) == 0, "an unchanged board is not copied again");
    int saw_start = 0, saw_pause = 0, saw_end = 0;
    for (int64_t k = bd->nmsg > AIM_MSG_MAX ? bd->nmsg - AIM_MSG_MAX : 0; k < bd->nmsg; k++) {
        const char *m = bd->msg[k % AIM_MSG_MAX];
        saw_start |= !strncmp(m, "pretrain started: ", 18);
        saw_pause |= !strncmp(m, "pretrain paused at step", 23);
        saw_end |= !strncmp(m, "pretrain ended: ", 16);
    }
    tap_ok(saw_start && saw_pause && saw_end, "messages: job start, pause, end (%lld)",
           (long long)bd->nmsg);
    check(E, "save()", AIM_EVAL_OK, "nil	save: no job is running", "save() without a job");
    free(bd);
}

typedef int (*board_cond)(const aim_board *, int64_t);

/* Wait up to 60 s for the board to satisfy cond. */
static int wait_board(aim_board *bd, board_cond cond, int64_t arg)
{
    for (int i = 0; i < 6000; i++) {
        aim_engine_board(E, bd);
        if (cond(bd, arg))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static int probe_done(const aim_board *bd, int64_t unused)
{
    (void)unused;
    return bd->probe.step > 0 && !bd->probe.running;
}

static int recon_after(const aim_board *bd, int64_t step)
{
    return bd->recon.step > step;
}

static int saved_msg(const aim_board *bd, int64_t unused)
{
    (void)unused;
    return board_has(bd, "checkpoint saved:");
}

/* a job with everything the panels show; the console's requests */
static void case_board_requests(void)
{
    aim_engine *eng = E;
    aim_snapshot snap;
    char dir[] = "/tmp/aimengine.XXXXXX", code[1024];
    if (!tap_ok(mkdtemp(dir) != NULL, "a run folder: %s", dir))
        return;
    aim_board *bd = calloc(1, sizeof *bd);
    snprintf(code, sizeof code,
             "test = aim.data.synthetic{n = 40, channels = 3, size = 8, seed = 9};"
             "m2 = aim.model{preset = 'micro', seed = 2}; ds2 = " DATA ";"
             "job2 = aim.pretrain(m2, ds2, {steps = 1000000, batch = 4, out = '%s',"
             " val = test, val_every = 5, val_images = 8, probe_test = test, probe_images = 16,"
             " recon = test, recon_images = 3, checkpoints = true}); return job2.steps",
             dir);
    int64_t j2 = aim_engine_submit(eng, code, 1);
    if (!tap_ok(wait_for(eng, step_at_least, 12, &snap),
                "a job with validation, probe data and reconstructions runs"))
        goto out;
    aim_engine_board(eng, bd);
    tap_ok(bd->nval >= 2 && bd->val[0].step == 5 && bd->val[1].step == 10 && bd->val[0].loss > 0,
           "validation points reach the board (%d)", bd->nval);
    tap_ok(bd->recon.n == 3 && bd->recon.channels == 3 && bd->recon.side == 8 &&
               bd->recon.step >= 1 && bd->recon.prefix >= 1 && bd->recon.loss > 0,
           "reconstructions of 3 images reach the board (step %lld, S=%d)",
           (long long)bd->recon.step, bd->recon.prefix);
    tap_ok(bd->can_checkpoint && tap_contains(bd->run_dir, dir) && bd->threads >= 1,
           "the run folder and thread count are on the board");
    check(eng, "probe()", AIM_EVAL_OK, "live probe will run", "probe() while training");
    int probed = wait_board(bd, probe_done, 0);
    tap_ok(probed && bd->probe.n == 2 && bd->probe.top1[0] >= 0 && bd->probe.top1[1] <= 100 &&
               bd->probe.baseline >= 0 && !strcmp(bd->probe.kind, "live linear"),
           "... the probe's top-1 per block and the raw baseline reach the board (%.1f %.1f, "
           "raw %.1f)", bd->probe.top1[0], bd->probe.top1[1], bd->probe.baseline);
    int64_t rstep = bd->recon.step;
    check(eng, "recon()", AIM_EVAL_OK, "refreshed after this step", "recon() while training");
    tap_ok(wait_board(bd, recon_after, rstep), "... refreshes the reconstructions (step %lld)",
           (long long)bd->recon.step);
    check(eng, "save()", AIM_EVAL_OK, "checkpoint will be written", "save() while training");
    tap_ok(wait_board(bd, saved_msg, 0), "... writes a checkpoint and says so");
    check(eng, "stop{save = false}", AIM_EVAL_OK, "true", "stop{save = false}");
    aim_reply r = {0};
    int got = aim_engine_wait(eng, j2, 60000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_OK, "... ends the job: %.40s", r.text ? r.text : "");
    aim_reply_free(&r);
    snprintf(code, sizeof code, "n = 0; for f in io.popen('ls %s'):lines() do "
             "if f:match('^ckpt%%-') then n = n + 1 end end; return n", dir);
    check(eng, code, AIM_EVAL_OK, "1", "... without a stop checkpoint (one checkpoint in the folder)");
    check(eng, "recon()", AIM_EVAL_OK, "reconstructions refreshed", "recon() after the job");
    check(eng, "aim.stop{sav = 1}", AIM_EVAL_ERROR, "did you mean 'save'", "stop's options are checked");
out:
    snprintf(code, sizeof code, "rm -rf '%s'", dir);
    tap_ok(system(code) == 0, "the run folder is removed");
    free(bd);
}

/* past AIM_CURVE_MAX steps the curve merges neighbours */
static void case_curve_bounded(void)
{
    int64_t t = aim_engine_submit(E, "return aim.pretrain(aim.model 'micro', " DATA ", "
                                     "{steps = 1030, batch = 1}).steps", 1);
    aim_reply r = {0};
    /* a bound for a hung job, not a speed check: under ASan on a loaded
     * machine these 1030 steps took over a minute */
    int got = aim_engine_wait(E, t, 600000, &r);
    int ran = tap_ok(got == 0 && tap_contains(r.text, "1030"), "a job of 1030 steps: %.30s",
                     r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
    if (!ran)
        return;
    aim_board *bd = calloc(1, sizeof *bd);
    aim_engine_board(E, bd);
    int okc = bd->ncurve == AIM_CURVE_MAX / 2 + 3 && bd->stride == 2 &&
              bd->curve[bd->ncurve - 1].step == 1030 && bd->curve[0].step == 2;
    for (int i = 1; i < bd->ncurve; i++)
        okc &= bd->curve[i].step == bd->curve[i - 1].step + 2 &&
               bd->curve[i].lo <= bd->curve[i].loss && bd->curve[i].loss <= bd->curve[i].hi;
    tap_ok(okc, "... its curve stays bounded: %d points of %lld steps, last at %lld", bd->ncurve,
           (long long)bd->stride, bd->ncurve ? (long long)bd->curve[bd->ncurve - 1].step : -1LL);
    free(bd);
}

/* interrupts: a runaway chunk (once it has begun: an interrupt sent before
 * is meant for nothing, and the chunk starts afresh), then a job */
static void case_interrupt_chunk(void)
{
    int begun;
    int64_t t = submit_begun(E, "while true do end", &begun);
    tap_ok(begun, "a runaway chunk begins (chunks_begun moves)");
    aim_engine_interrupt(E);
    aim_reply r = {0};
    int got = aim_engine_wait(E, t, 60000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_ERROR && tap_contains(r.text, "interrupted!"),
           "an interrupt stops a runaway chunk: %.40s", r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
    check(E, "1 + 2", AIM_EVAL_OK, "3", "the next chunk runs normally");
}

static void case_interrupt_job(void)
{
    aim_snapshot snap;
    aim_engine_snapshot(E, &snap);
    int64_t done0 = snap.jobs_done;
    int64_t t = aim_engine_submit(E, LONG_JOB, 1);
    if (!tap_ok(wait_for(E, step_at_least, 2, &snap), "a second job runs"))
        return;
    aim_engine_interrupt(E);
    aim_reply r = {0};
    int got = aim_engine_wait(E, t, 60000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_ERROR && tap_contains(r.text, "interrupted!"),
           "an interrupt stops a job: %.40s", r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
    aim_engine_snapshot(E, &snap);
    tap_ok(snap.state == AIM_JOB_IDLE && snap.jobs_done == done0 + 1,
           "... which ends cleanly (%lld jobs done)", (long long)snap.jobs_done);
}

/* a runaway console line inside a job: the interrupt stops the line, the
 * job goes on; the next interrupt stops the job. The line runs on the job's
 * thread between two steps, so the step published when it began is the one
 * published when its end is posted ("console line interrupted"). */
static void case_interrupt_line_in_job(void)
{
    aim_snapshot snap;
    int64_t tj = aim_engine_submit(E, LONG_JOB, 1);
    if (!tap_ok(wait_for(E, step_at_least, 2, &snap), "a job runs"))
        return;
    pthread_mutex_lock(&S.mu);
    int msgs0 = S.line_msgs;
    pthread_mutex_unlock(&S.mu);
    int begun;
    int64_t t = submit_begun(E, "while true do end", &begun);
    aim_engine_snapshot(E, &snap);
    int64_t stuck = snap.step.step;
    tap_ok(begun && snap.state == AIM_JOB_RUNNING, "a runaway console line begins inside the job "
           "(step %lld)", (long long)stuck);
    aim_engine_interrupt(E);
    aim_reply r = {0};
    int got = aim_engine_wait(E, t, 60000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_ERROR && tap_contains(r.text, "interrupted!"),
           "the interrupt stops the console line: %.40s", r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
    pthread_mutex_lock(&S.mu);
    int msgs = S.line_msgs - msgs0;
    int64_t at_end = S.step_at_msg;
    pthread_mutex_unlock(&S.mu);
    tap_ok(msgs == 1 && at_end == stuck,
           "the line held the job between two steps (step %lld when it began, %lld when it "
           "ended; %d messages)", (long long)stuck, (long long)at_end, msgs);
    int went_on = wait_for(E, step_at_least, stuck + 3, &snap);
    tap_ok(went_on, "... and the job goes on (step %lld -> %lld)", (long long)stuck,
           (long long)snap.step.step);
    aim_engine_interrupt(E);
    r = (aim_reply){0};
    got = aim_engine_wait(E, tj, 60000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_ERROR && tap_contains(r.text, "interrupted!"),
           "a second interrupt stops the job: %.40s", r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
}

/* poll, then free with a job running */
static void case_poll_and_free(void)
{
    int64_t t = aim_engine_submit(E, "'polled'", 1);
    aim_reply r = {0};
    int polled = 1;
    for (int i = 0; i < 6000 && (polled = aim_engine_poll(E, &r)) != 0; i++)
        sleep_ms(10);
    tap_ok(polled == 0 && r.ticket == t && tap_contains(r.text, "polled"), "poll takes a reply");
    aim_reply_free(&r);
    aim_snapshot snap;
    aim_engine_submit(E, LONG_JOB, 1);
    int runs = tap_ok(wait_for(E, step_at_least, 2, &snap), "a third job runs");
    int starts = events_of(&S, AIM_EV_JOB_START), ends = events_of(&S, AIM_EV_JOB_END);
    /* a free that hangs (the thread never joins) ends the test by SIGALRM */
    alarm(120);
    aim_engine_free(E);
    alarm(0);
    E = NULL;
    if (runs)
        tap_ok(events_of(&S, AIM_EV_JOB_END) == ends + 1 && events_of(&S, AIM_EV_JOB_START) == starts
                   && ends + 1 == starts,
               "freeing the engine stops the running job (its end event came before free "
               "returned: %d started, %d ended) and joins the thread",
               events_of(&S, AIM_EV_JOB_START), events_of(&S, AIM_EV_JOB_END));
    else
        tap_skip("freeing the engine with a running job: the job did not run");
}

/* ---- the live MFU: FLOPs per image always, the peak only when asked */
static void case_mfu(void)
{
    aim_err e = {{0}};
    aim_snapshot snap;
    aim_config mc;
    aim_config_preset("micro", &mc, &e);
    double want = 3 * aim_config_flops_loss(&mc, AIM_LOSS_ROWS(&mc));
    aim_engine *eng = aim_engine_new(NULL, &e);
    if (!tap_ok(eng != NULL, "mfu: an engine: %s", eng ? "created" : e.msg))
        return;
    check_eval(eng,
               "m = aim.model 'micro'; ds = aim.data.synthetic{n = 16, channels = 3, size = 8};"
               "return aim.pretrain(m, ds, {steps = 2, batch = 4}).steps",
               AIM_EVAL_OK, "2", "a job on an engine that does not measure the peak");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.train_flops == want && snap.peak_flops == 0,
           "... publishes its training FLOPs per image (%g = 3 x forward), no peak",
           snap.train_flops);
    aim_engine_measure_peak(eng, 0.05);
    check_eval(eng, "return aim.pretrain(m, ds, {steps = 2, batch = 4}).steps", AIM_EVAL_OK, "2",
               "a job on an engine that measures the peak");
    aim_engine_snapshot(eng, &snap);
    double peak1 = snap.peak_flops;
    tap_ok(peak1 > 0 && snap.train_flops == want, "... publishes the peak (%.3g GFLOP/s)",
           peak1 / 1e9);
    check_eval(eng, "return aim.pretrain(m, ds, {steps = 2, batch = 4}).steps", AIM_EVAL_OK, "2",
               "a second job on the same shapes");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.peak_flops == peak1, "... gets the kept peak, not a new measurement");
    check_eval(eng, "return aim.pretrain(m, ds, {steps = 1, batch = 8}).steps", AIM_EVAL_OK, "1",
               "a job with another batch");
    aim_engine_snapshot(eng, &snap);
    tap_ok(snap.peak_flops > 0, "... has a peak for its own shapes (%.3g GFLOP/s)",
           snap.peak_flops / 1e9);
    aim_engine_free(eng);
}

static int out_has(seen *s, const char *needle)
{
    pthread_mutex_lock(&s->mu);
    int has = tap_contains(s->out, needle);
    pthread_mutex_unlock(&s->mu);
    return has;
}

/* ---- an engine whose front end owns the terminal (the workbench) */
static void case_stdio(void)
{
    aim_err e = {{0}};
    static seen s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    aim_engine_hooks h2 = {.output = on_output, .ctx = &s2};
    aim_engine *eng = aim_engine_new(&h2, &e);
    if (!tap_ok(eng && aim_engine_detach_stdio(eng, &e) == 0, "stdio: detached (%s)",
                eng ? e.msg : "no engine")) {
        aim_engine_free(eng);
        return;
    }
    check_eval(eng, "io.read(), io.read('a'), io.stdin:read('l')", AIM_EVAL_OK, "nil\t\tnil",
               "stdio: standard input reads as empty at once (no wait on the terminal)");
    check_eval(eng, "local n = 0 for _ in io.lines() do n = n + 1 end return n", AIM_EVAL_OK, "0",
               "stdio: io.lines() has no lines");
    check_eval(eng, "io.write('wr-', 1, '\\n') io.stdout:write('so ') io.stderr:write('se\\n') "
                    "print('pr')",
               AIM_EVAL_OK, "", "stdio: io.write, io.stdout and io.stderr run (no error)");
    pthread_mutex_lock(&s2.mu);
    tap_ok(!strcmp(s2.out, "wr-1\nso se\npr\n"),
           "... and land in the output hook in order with print: \"%s\"", s2.out);
    s2.out[0] = 0;
    pthread_mutex_unlock(&s2.mu);
    check_eval(eng, "io.stdout:close()", AIM_EVAL_OK, "cannot close standard file",
               "stdio: the console stream cannot be closed");
    check_eval(eng, "os.execute('echo sh-out; echo sh-err >&2; read x; echo read=$?; exit 3')",
               AIM_EVAL_OK, "nil\texit\t3", "stdio: os.execute gives its status");
    pthread_mutex_lock(&s2.mu);
    tap_ok(tap_contains(s2.out, "sh-out\n") && tap_contains(s2.out, "sh-err\n") &&
               tap_contains(s2.out, "read=1"),
           "... its output and errors in the output hook, no input: \"%s\"", s2.out);
    s2.out[0] = 0;
    pthread_mutex_unlock(&s2.mu);
    check_eval(eng, "os.execute('exit 0')", AIM_EVAL_OK, "true\texit\t0",
               "stdio: a command that succeeds");
    check_eval(eng, "'[' .. io.popen('cat'):read('a') .. ']'", AIM_EVAL_OK, "[]",
               "stdio: io.popen's command reads no terminal (cat ends at once, empty)");
    check_eval(eng, "local f = io.popen('echo po; echo pe >&2') local t = f:read('a') f:close() "
                    "return t",
               AIM_EVAL_OK, "po\npe", "stdio: io.popen reads the command's output and errors");
    tap_ok(aim_engine_start(eng, &e) == 0, "stdio: the engine thread starts");
    tap_ok(aim_engine_detach_stdio(eng, &e) != 0, "stdio: detaching after the start is refused");
    pthread_mutex_lock(&s2.mu);
    s2.out[0] = 0;
    pthread_mutex_unlock(&s2.mu);
    /* the command says when it runs: the interrupt must kill it, not
     * stop the chunk before it spawned */
    int64_t t = aim_engine_submit(eng, "os.execute('echo sleeping; exec sleep 30')", 1);
    int started = 0;
    for (int i = 0; i < 6000 && !(started = out_has(&s2, "sleeping\n")); i++)
        sleep_ms(10);
    tap_ok(started, "stdio: a long os.execute runs (its output came)");
    double t0 = now_ms();
    aim_engine_interrupt(eng);
    aim_reply r = {0};
    /* under the command's 30 s: it was killed, not waited for */
    int got = aim_engine_wait(eng, t, 20000, &r);
    tap_ok(got == 0 && r.status == AIM_EVAL_ERROR && tap_contains(r.text, "interrupted!"),
           "stdio: an interrupt kills a running os.execute (%.0f ms): %.40s", now_ms() - t0,
           r.text ? r.text : "(timeout)");
    aim_reply_free(&r);
    check(eng, "1 + 2", AIM_EVAL_OK, "3", "stdio: the next chunk runs normally");
    aim_engine_free(eng);
}

/* ------------------------------------------------------------ the runner */

/* Stop whatever job a failed case left running, so the next case starts on
 * an idle engine; returns 1 when it is idle. */
static int settle(void)
{
    aim_snapshot snap;
    if (!E)
        return 0;
    aim_engine_snapshot(E, &snap);
    if (snap.state == AIM_JOB_IDLE)
        return 1;
    aim_engine_stop(E);
    return wait_for(E, is_state, AIM_JOB_IDLE, &snap);
}

static void run_case(const char *name, void (*fn)(void), int threaded)
{
    int n0 = tap_n, f0 = tap_failed;
    tap_diag("case %s", name);
    if (threaded && !settle()) {
        char why[128];
        snprintf(why, sizeof why, "case %s: no idle engine thread", name);
        tap_skip(why);
        return;
    }
    fn();
    if (threaded && E && !settle())
        tap_ok(0, "case %s: left a job that does not stop", name);
    tap_diag("case %s: %d checks, %d failed", name, tap_n - n0, tap_failed - f0);
}

int main(void)
{
    aim_engine_hooks hooks = {.output = on_output, .event = on_event, .wake = on_wake, .ctx = &S};
    aim_err e = {{0}};
    run_case("views", test_views, 0);
    E = aim_engine_new(&hooks, &e);
    if (tap_ok(E != NULL, "engine: %s", E ? "created" : e.msg)) {
        run_case("caller_thread", case_caller_thread, 0);
        run_case("memory", case_memory, 0);
        run_case("thread_start", case_thread_start, 0);
        run_case("job_control", case_job_control, 1);
        run_case("board_after_job", case_board_after_job, 1);
        run_case("board_requests", case_board_requests, 1);
        run_case("curve_bounded", case_curve_bounded, 1);
        run_case("interrupt_chunk", case_interrupt_chunk, 1);
        run_case("interrupt_job", case_interrupt_job, 1);
        run_case("interrupt_line_in_job", case_interrupt_line_in_job, 1);
        run_case("poll_and_free", case_poll_and_free, 1);
    }
    aim_engine_free(E);
    run_case("mfu", case_mfu, 0);
    run_case("stdio", case_stdio, 0);
    return tap_done();
}
