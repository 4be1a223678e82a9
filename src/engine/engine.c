/*
 * engine.c - the engine (aim/engine.h): the thread that owns the Lua state,
 * the queue of chunks other threads send it, their replies, job control
 * (pause / resume / stop / lr / interrupt) and the snapshot a UI copies out.
 *
 * One mutex guards the queue, the replies, the job flags, the snapshot and
 * the board (what the TUI's panels show: curve, validation, probe,
 * reconstructions, messages), the inspection (the Inspect view's maps) and
 * the comparison of finished runs (aim.compare);
 * the sgemm peak a job's MFU is shown against is measured on the engine
 * thread and kept in the engine (peak_*) for the next job;
 * one condition variable (broadcast) signals every change. Lua runs with the
 * mutex released. Waits while paused are timed (100 ms) so that an
 * interrupt from a signal handler, which cannot take the mutex, is noticed.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "aim/plot.h"
#include "aim/prof.h"
#include "lua/l_aim.h"

typedef struct request {
    int64_t ticket;
    char *code;
    int repl;
    struct request *next;
} request;

typedef struct reply_node {
    aim_reply r;
    struct reply_node *next;
} reply_node;

struct aim_engine {
    lua_State *L;
    aim_engine_hooks hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    request *q_head, *q_tail;
    int64_t nqueued;
    reply_node *replies;
    int64_t next_ticket;
    int quit;
    int want_pause, want_stop;
    aim_snapshot snap;
    aim_board board;
    aim_inspect_view *inspect; /* NULL until the first publish */
    uint64_t inspect_seq;
    aim_compare_view *compare; /* NULL until the first publish */
    uint64_t compare_seq;
    aim_figure *figure;        /* aim.plot{show = true}'s newest; NULL: none */
    uint64_t figure_seq;
    int64_t curve_open;  /* steps in the last curve point so far (0: closed) */
    /* engine thread only */
    int started;
    pthread_t thread;
    int in_job;
    float lr_live;
    aim_sys_meter sysm;  /* the running job's CPU meter (engine thread) */
    double sys_last;
    /* the live MFU's sgemm peak: measured for this long (0: never), and
     * the last one measured with what it was measured on */
    double peak_seconds;
    double peak_flops;
    int peak_threads, peak_nrows;
    int peak_bf16;                  /* the kept peak is the bf16 GEMMs' */
    aim_gemm_row peak_rows[AIM_GEMM_SHAPES_MAX];
    /* any thread, signal handlers included */
    atomic_int interrupted;
    /* a console line runs between two steps of a job: an interrupt then
     * stops that line only (line_hit), and the job goes on */
    atomic_int line_running, line_hit;
};

/* ------------------------------------------------------------ helpers */

/* Append a message to the board (mu held). */
static void post_message(aim_engine *eng, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void post_message(aim_engine *eng, const char *fmt, ...)
{
    aim_board *b = &eng->board;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg[b->nmsg % AIM_MSG_MAX], AIM_MSG_LEN, fmt, ap);
    va_end(ap);
    b->nmsg++;
    b->seq++;
}

static void emit(aim_engine *eng, aim_event_kind kind, const char *text,
                 const aim_step_info *step)
{
    if (kind != AIM_EV_STEP) {
        pthread_mutex_lock(&eng->mu);
        const char *job = eng->snap.job;
        long long at = step ? (long long)step->step : 0;
        switch (kind) {
        case AIM_EV_JOB_START: post_message(eng, "%s started: %s", job, text ? text : ""); break;
        case AIM_EV_PAUSE: post_message(eng, "%s paused at step %lld", job, at); break;
        case AIM_EV_RESUME: post_message(eng, "%s resumed at step %lld", job, at); break;
        case AIM_EV_JOB_END: post_message(eng, "%s ended: %s", job, text ? text : "done"); break;
        case AIM_EV_MESSAGE: post_message(eng, "%s", text ? text : ""); break;
        case AIM_EV_STEP: break;
        }
        pthread_mutex_unlock(&eng->mu);
    }
    if (!eng->hooks.event)
        return;
    aim_event ev = {.kind = kind, .job = eng->snap.job, .text = text, .step = step};
    eng->hooks.event(eng->hooks.ctx, &ev);
}

static void wake(aim_engine *eng)
{
    if (eng->hooks.wake)
        eng->hooks.wake(eng->hooks.ctx);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void l_engine_output(aim_engine *eng, const char *text, size_t len)
{
    if (eng && eng->hooks.output)
        eng->hooks.output(eng->hooks.ctx, text, len);
}

void l_engine_chunk_begin(aim_engine *eng)
{
    /* a chunk run between two steps of a job must not swallow an interrupt
     * meant for the job; only top-level chunks start afresh */
    if (!eng)
        return;
    if (!eng->in_job) {
        atomic_store(&eng->interrupted, 0);
        lua_sethook(eng->L, NULL, 0, 0);
    }
    /* from here on an interrupt reaches this chunk (aim_snapshot.chunks_begun) */
    pthread_mutex_lock(&eng->mu);
    eng->snap.chunks_begun++;
    pthread_mutex_unlock(&eng->mu);
}

/* ------------------------------------------------------------ lifetime */

aim_engine *aim_engine_new(const aim_engine_hooks *hooks, aim_err *e)
{
    aim_engine *eng = aim_xcalloc(1, sizeof *eng);
    if (hooks)
        eng->hooks = *hooks;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&eng->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&eng->mu, NULL);
    atomic_init(&eng->interrupted, 0);
    atomic_init(&eng->line_running, 0);
    atomic_init(&eng->line_hit, 0);
    eng->L = l_host_open(eng, e);
    if (!eng->L) {
        pthread_cond_destroy(&eng->cv);
        pthread_mutex_destroy(&eng->mu);
        free(eng);
        return NULL;
    }
    return eng;
}

int aim_engine_detach_stdio(aim_engine *eng, aim_err *e)
{
    if (eng->started)
        return aim_errf(e, "engine: detach the standard streams before the thread starts");
    return l_stdio_detach(eng->L, eng, e);
}

void aim_engine_free(aim_engine *eng)
{
    if (!eng)
        return;
    if (eng->started) {
        pthread_mutex_lock(&eng->mu);
        eng->quit = 1;
        eng->want_stop = 1;
        pthread_cond_broadcast(&eng->cv);
        pthread_mutex_unlock(&eng->mu);
        aim_engine_interrupt(eng);
        pthread_join(eng->thread, NULL);
    }
    for (request *r = eng->q_head, *next; r; r = next) {
        next = r->next;
        free(r->code);
        free(r);
    }
    for (reply_node *n = eng->replies, *next; n; n = next) {
        next = n->next;
        free(n->r.text);
        free(n);
    }
    l_host_close(eng->L);
    pthread_cond_destroy(&eng->cv);
    pthread_mutex_destroy(&eng->mu);
    free(eng->inspect);
    free(eng->compare);
    aim_figure_free(eng->figure);
    free(eng);
}

int aim_engine_complete(aim_engine *eng, const char *word, char ***cands)
{
    *cands = NULL;
    if (eng->started)
        return 0;
    return l_host_complete(eng->L, word, cands);
}

/* ------------------------------------------------------ caller's thread */

aim_eval_status aim_engine_eval(aim_engine *eng, const char *code, const char *name, int repl,
                                char **text)
{
    if (eng->started) {
        *text = aim_xstrdup("engine: its thread runs; send chunks with aim_engine_submit");
        return AIM_EVAL_ERROR;
    }
    return l_host_eval(eng->L, code, name, repl, text);
}

aim_eval_status aim_engine_run_file(aim_engine *eng, const char *path, int argc,
                                    char *const *argv, char **text)
{
    if (eng->started) {
        *text = aim_xstrdup("engine: its thread runs; send chunks with aim_engine_submit");
        return AIM_EVAL_ERROR;
    }
    return l_host_run_file(eng->L, path, argc, argv, text);
}

/* --------------------------------------------------- queue and replies */

/* Pop the next request (mu held) or NULL. */
static request *pop_request(aim_engine *eng)
{
    request *r = eng->q_head;
    if (r) {
        eng->q_head = r->next;
        if (!eng->q_head)
            eng->q_tail = NULL;
        eng->nqueued--;
    }
    return r;
}

/* Run one request on L (mu not held) and post its reply. */
static void run_request(aim_engine *eng, lua_State *L, request *r)
{
    char *text = NULL;
    int inside = eng->in_job;
    if (inside) {
        atomic_store(&eng->line_hit, 0);
        atomic_store(&eng->line_running, 1);
    }
    aim_eval_status st = l_host_eval(L, r->code, "=console", r->repl, &text);
    if (inside) {
        atomic_store(&eng->line_running, 0);
        if (atomic_exchange(&eng->line_hit, 0)) {
            /* the interrupt was for this line: the job continues */
            atomic_store(&eng->interrupted, 0);
            lua_sethook(L, NULL, 0, 0);
            aim_engine_job_message(eng, "console line interrupted; the job goes on");
        }
    }
    reply_node *n = aim_xcalloc(1, sizeof *n);
    n->r.ticket = r->ticket;
    n->r.status = st;
    n->r.text = text;
    free(r->code);
    free(r);
    pthread_mutex_lock(&eng->mu);
    reply_node **tail = &eng->replies;
    while (*tail)
        tail = &(*tail)->next;
    *tail = n;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

static void *engine_main(void *arg)
{
    aim_engine *eng = arg;
    pthread_mutex_lock(&eng->mu);
    for (;;) {
        while (!eng->quit && !eng->q_head)
            pthread_cond_wait(&eng->cv, &eng->mu);
        if (eng->quit)
            break;
        request *r = pop_request(eng);
        pthread_mutex_unlock(&eng->mu);
        run_request(eng, eng->L, r);
        pthread_mutex_lock(&eng->mu);
    }
    pthread_mutex_unlock(&eng->mu);
    return NULL;
}

int aim_engine_start(aim_engine *eng, aim_err *e)
{
    if (eng->started)
        return aim_errf(e, "engine: already started");
    int rc = pthread_create(&eng->thread, NULL, engine_main, eng);
    if (rc != 0)
        return aim_errf(e, "engine: cannot start its thread: %s", strerror(rc));
    eng->started = 1;
    return 0;
}

int64_t aim_engine_submit(aim_engine *eng, const char *code, int repl)
{
    request *r = aim_xcalloc(1, sizeof *r);
    r->code = aim_xstrdup(code);
    r->repl = repl;
    pthread_mutex_lock(&eng->mu);
    r->ticket = ++eng->next_ticket;
    if (eng->q_tail)
        eng->q_tail->next = r;
    else
        eng->q_head = r;
    eng->q_tail = r;
    eng->nqueued++;
    int64_t t = r->ticket;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    return t;
}

/* Unlink the reply for ticket (0 = any) into *out (mu held); 0 if found. */
static int take_reply(aim_engine *eng, int64_t ticket, aim_reply *out)
{
    for (reply_node **p = &eng->replies; *p; p = &(*p)->next) {
        if (ticket && (*p)->r.ticket != ticket)
            continue;
        reply_node *n = *p;
        *p = n->next;
        *out = n->r;
        free(n);
        return 0;
    }
    return 1;
}

int aim_engine_wait(aim_engine *eng, int64_t ticket, int timeout_ms, aim_reply *out)
{
    struct timespec dl;
    if (timeout_ms >= 0)
        deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&eng->mu);
    int rc;
    while ((rc = take_reply(eng, ticket, out)) != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&eng->cv, &eng->mu);
        else if (pthread_cond_timedwait(&eng->cv, &eng->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (rc != 0)
        rc = take_reply(eng, ticket, out);
    pthread_mutex_unlock(&eng->mu);
    return rc;
}

int aim_engine_poll(aim_engine *eng, aim_reply *out)
{
    pthread_mutex_lock(&eng->mu);
    int rc = take_reply(eng, 0, out);
    pthread_mutex_unlock(&eng->mu);
    return rc;
}

void aim_reply_free(aim_reply *r)
{
    free(r->text);
    r->text = NULL;
}

/* ------------------------------------------------------------ job control */

static int job_active(const aim_engine *eng)
{
    return eng->snap.state != AIM_JOB_IDLE;
}

int aim_engine_pause(aim_engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    int changed = job_active(eng) && !eng->want_pause;
    if (changed)
        eng->want_pause = 1;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    return changed;
}

int aim_engine_resume(aim_engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    int changed = job_active(eng) && eng->want_pause;
    eng->want_pause = 0;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    return changed;
}

int aim_engine_stop(aim_engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    int changed = job_active(eng) && !eng->want_stop;
    if (job_active(eng))
        eng->want_stop = 1;
    pthread_cond_broadcast(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    return changed;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

void aim_engine_interrupt(aim_engine *eng)
{
    if (atomic_load(&eng->line_running))
        atomic_store(&eng->line_hit, 1);
    atomic_store(&eng->interrupted, 1);
    lua_sethook(eng->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

int aim_engine_request_quit(aim_engine *eng, int code)
{
    if (!eng || !eng->hooks.quit)
        return 0;
    eng->hooks.quit(eng->hooks.ctx, code);
    return 1;
}

int aim_engine_interrupted(aim_engine *eng)
{
    return atomic_load(&eng->interrupted);
}

int aim_engine_threaded(aim_engine *eng)
{
    return eng->started;
}

void aim_engine_snapshot(aim_engine *eng, aim_snapshot *out)
{
    pthread_mutex_lock(&eng->mu);
    *out = eng->snap;
    out->queued = eng->nqueued;
    pthread_mutex_unlock(&eng->mu);
}

/* ----------------------------------------------------------------- jobs */

int aim_engine_job_begin(aim_engine *eng, const char *name, const char *desc, float lr_peak,
                         aim_err *e)
{
    if (eng->in_job)
        return aim_errf(e, "%s: a job (%s) is already running; jobs do not nest", name,
                        eng->snap.job);
    pthread_mutex_lock(&eng->mu);
    eng->snap.state = AIM_JOB_RUNNING;
    snprintf(eng->snap.job, sizeof eng->snap.job, "%s", name);
    memset(&eng->snap.step, 0, sizeof eng->snap.step);
    eng->snap.follow = AIM_FOLLOW_NONE;
    eng->snap.sys = (aim_sys){NAN, NAN, NAN};
    aim_sys_start(&eng->sysm);
    eng->sys_last = 0;
    eng->snap.lr_peak = lr_peak;
    eng->snap.train_flops = eng->snap.peak_flops = 0;
    eng->snap.bf16 = 0;
    eng->snap.seq++;
    eng->want_pause = eng->want_stop = 0;
    /* a new job starts a new curve; probes, reconstructions and messages stay */
    aim_board *b = &eng->board;
    b->run_dir[0] = 0;
    b->threads = 0;
    b->can_checkpoint = 0;
    b->stride = 1;
    b->ncurve = b->nval = b->nonfinite = 0;
    b->loss_label[0] = b->val_label[0] = 0;
    b->seq++;
    eng->curve_open = 0;
    pthread_mutex_unlock(&eng->mu);
    eng->in_job = 1;
    eng->lr_live = lr_peak;
    emit(eng, AIM_EV_JOB_START, desc, NULL);
    wake(eng);
    return 0;
}

void aim_engine_measure_peak(aim_engine *eng, double seconds)
{
    eng->peak_seconds = seconds > 0 ? seconds : 0;
}

/* Whether the kept peak was measured on these shapes and threads. */
static int peak_cached(const aim_engine *eng, const aim_gemm_row *g, int n, int threads,
                       int bf16)
{
    if (eng->peak_flops <= 0 || eng->peak_threads != threads || eng->peak_nrows != n ||
        eng->peak_bf16 != bf16)
        return 0;
    for (int i = 0; i < n; i++) {
        const aim_gemm_row *a = &eng->peak_rows[i];
        if (a->M != g[i].M || a->K != g[i].K || a->N != g[i].N || a->count != g[i].count)
            return 0;
    }
    return 1;
}

void aim_engine_job_flops(aim_engine *eng, const aim_config *c, int batch, aim_precision prec,
                          double train_flops)
{
    const int bf16 = prec == AIM_PREC_BF16;
    double peak = 0;
    if (eng->peak_seconds > 0 && train_flops > 0) {
        aim_gemm_row g[AIM_GEMM_SHAPES_MAX];
        int n = aim_gemm_shapes(c, batch, g), threads = omp_get_max_threads();
        if (!peak_cached(eng, g, n, threads, bf16)) {
            aim_peak pk;
            eng->peak_flops = bf16 ? aim_gemm_peak_bf16(c, batch, eng->peak_seconds, &pk)
                                   : aim_gemm_peak(c, batch, eng->peak_seconds, &pk);
            eng->peak_threads = threads;
            eng->peak_bf16 = bf16;
            eng->peak_nrows = pk.nrows;
            memcpy(eng->peak_rows, pk.row, sizeof pk.row);
        }
        peak = eng->peak_flops;
    }
    pthread_mutex_lock(&eng->mu);
    eng->snap.train_flops = train_flops > 0 ? train_flops : 0;
    eng->snap.peak_flops = peak;
    eng->snap.bf16 = bf16;
    eng->snap.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

/* Add a training step to the board's curve (mu held). */
static void curve_add(aim_engine *eng, const aim_step_info *s)
{
    aim_board *b = &eng->board;
    if (b->stride < 1)
        b->stride = 1;
    if (!isfinite(s->loss)) {
        b->nonfinite++;
        return;
    }
    aim_curve_point *p;
    if (eng->curve_open == 0) {
        if (b->ncurve == AIM_CURVE_MAX) { /* full: merge neighbours, twice the stride */
            for (int i = 0; i < AIM_CURVE_MAX / 2; i++) {
                const aim_curve_point *a = &b->curve[2 * i], *c = &b->curve[2 * i + 1];
                aim_curve_point m = {c->step, 0.5f * (a->loss + c->loss),
                                     a->lo < c->lo ? a->lo : c->lo,
                                     a->hi > c->hi ? a->hi : c->hi, c->lr};
                b->curve[i] = m;
            }
            b->ncurve = AIM_CURVE_MAX / 2;
            b->stride *= 2;
        }
        p = &b->curve[b->ncurve++];
        *p = (aim_curve_point){s->step, s->loss, s->loss, s->loss, s->lr};
    } else {
        p = &b->curve[b->ncurve - 1];
        p->loss += (s->loss - p->loss) / (float)(eng->curve_open + 1);
        p->lo = s->loss < p->lo ? s->loss : p->lo;
        p->hi = s->loss > p->hi ? s->loss : p->hi;
        p->step = s->step;
        p->lr = s->lr;
    }
    if (++eng->curve_open >= b->stride)
        eng->curve_open = 0;
    b->seq++;
}

void aim_engine_job_publish(aim_engine *eng, const aim_step_info *info)
{
    /* this process's CPU use, memory and load, at most once a second (a
     * followed run brings its own) */
    aim_sys sys;
    int have_sys = 0;
    if (eng->snap.follow == AIM_FOLLOW_NONE) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double now = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
        if (now - eng->sys_last >= 1.0) {
            have_sys = aim_sys_sample(&eng->sysm, &sys) == 0;
            eng->sys_last = now;
        }
    }
    pthread_mutex_lock(&eng->mu);
    if (have_sys)
        eng->snap.sys = sys;
    eng->snap.step = *info;
    eng->snap.step.events = NULL; /* the job's writer: valid during its on_step only */
    eng->snap.seq++;
    curve_add(eng, info);
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
    emit(eng, AIM_EV_STEP, NULL, info);
}

int aim_engine_job_step(aim_engine *eng, struct lua_State *L)
{
    const aim_step_info *info = &eng->snap.step; /* only this thread writes it */
    for (;;) {
        pthread_mutex_lock(&eng->mu);
        request *r;
        while (!eng->quit && (r = pop_request(eng)) != NULL) {
            pthread_mutex_unlock(&eng->mu);
            run_request(eng, L, r);
            pthread_mutex_lock(&eng->mu);
        }
        if (eng->want_stop || eng->quit || atomic_load(&eng->interrupted)) {
            pthread_mutex_unlock(&eng->mu);
            return 1;
        }
        int was_paused = eng->snap.state == AIM_JOB_PAUSED;
        if (!eng->want_pause) {
            if (was_paused) {
                eng->snap.state = AIM_JOB_RUNNING;
                eng->snap.seq++;
            }
            pthread_mutex_unlock(&eng->mu);
            if (was_paused) {
                emit(eng, AIM_EV_RESUME, NULL, info);
                wake(eng);
            }
            return 0;
        }
        if (!was_paused) {
            eng->snap.state = AIM_JOB_PAUSED;
            eng->snap.seq++;
            pthread_mutex_unlock(&eng->mu);
            emit(eng, AIM_EV_PAUSE, NULL, info);
            wake(eng);
            continue;
        }
        struct timespec dl;
        deadline_in(&dl, 100);
        pthread_cond_timedwait(&eng->cv, &eng->mu, &dl);
        pthread_mutex_unlock(&eng->mu);
    }
}

const float *aim_engine_job_lr(aim_engine *eng)
{
    return &eng->lr_live;
}

int aim_engine_set_lr(aim_engine *eng, float lr, aim_err *e)
{
    if (!eng->in_job)
        return aim_errf(e, "lr: no job is running");
    eng->lr_live = lr;
    pthread_mutex_lock(&eng->mu);
    eng->snap.lr_peak = lr;
    eng->snap.seq++;
    pthread_mutex_unlock(&eng->mu);
    return 0;
}

void aim_engine_job_end(aim_engine *eng, const char *summary, const aim_step_info *last)
{
    pthread_mutex_lock(&eng->mu);
    eng->snap.state = AIM_JOB_IDLE;
    eng->snap.jobs_done++;
    eng->snap.seq++;
    eng->want_pause = eng->want_stop = 0;
    pthread_mutex_unlock(&eng->mu);
    eng->in_job = 0;
    emit(eng, AIM_EV_JOB_END, summary, last);
    wake(eng);
}

/* ------------------------------------------------------------ the board */

int aim_engine_board(aim_engine *eng, aim_board *out)
{
    pthread_mutex_lock(&eng->mu);
    int changed = out->seq != eng->board.seq || eng->board.seq == 0;
    if (changed) {
        /* copy only the parts in use: the arrays are large */
        aim_board *b = &eng->board;
        size_t head = offsetof(aim_board, curve);
        memcpy(out, b, head);
        memcpy(out->curve, b->curve, (size_t)b->ncurve * sizeof b->curve[0]);
        out->nval = b->nval;
        memcpy(out->val, b->val, (size_t)b->nval * sizeof b->val[0]);
        out->nonfinite = b->nonfinite;
        out->probe = b->probe;
        out->recon = b->recon;
        out->nmsg = b->nmsg;
        memcpy(out->msg, b->msg, sizeof b->msg);
    }
    pthread_mutex_unlock(&eng->mu);
    return changed;
}

void aim_engine_job_message(aim_engine *eng, const char *text)
{
    emit(eng, AIM_EV_MESSAGE, text, NULL);
    wake(eng);
}

void aim_engine_job_folder(aim_engine *eng, const char *run_dir, int threads, int can_checkpoint)
{
    pthread_mutex_lock(&eng->mu);
    snprintf(eng->board.run_dir, sizeof eng->board.run_dir, "%s", run_dir ? run_dir : "");
    eng->board.threads = threads;
    eng->board.can_checkpoint = can_checkpoint;
    eng->board.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_val(aim_engine *eng, int64_t step, float loss)
{
    pthread_mutex_lock(&eng->mu);
    aim_board *b = &eng->board;
    if (b->nval == AIM_VAL_MAX) { /* full: keep every other point, the newest included */
        int k = 0;
        for (int i = 1; i < AIM_VAL_MAX; i += 2)
            b->val[k++] = b->val[i];
        b->nval = k;
    }
    b->val[b->nval++] = (aim_val_point){step, loss};
    b->seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_follow(aim_engine *eng, aim_follow_state state)
{
    pthread_mutex_lock(&eng->mu);
    eng->snap.follow = state;
    eng->snap.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_sys(aim_engine *eng, const aim_sys *sys)
{
    pthread_mutex_lock(&eng->mu);
    eng->snap.sys = *sys;
    eng->snap.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_rewind(aim_engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    memset(&eng->snap.step, 0, sizeof eng->snap.step);
    eng->snap.seq++;
    aim_board *b = &eng->board;
    b->stride = 1;
    b->ncurve = b->nval = b->nonfinite = 0;
    b->seq++;
    eng->curve_open = 0;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_labels(aim_engine *eng, const char *loss_label, const char *val_label)
{
    pthread_mutex_lock(&eng->mu);
    snprintf(eng->board.loss_label, sizeof eng->board.loss_label, "%s",
             loss_label ? loss_label : "");
    snprintf(eng->board.val_label, sizeof eng->board.val_label, "%s", val_label ? val_label : "");
    eng->board.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_probe_view_init(aim_probe_view *v, const char *kind, int n)
{
    memset(v, 0, sizeof *v);
    snprintf(v->kind, sizeof v->kind, "%s", kind ? kind : "");
    v->n = n < 0 ? 0 : n > AIM_PROBE_BLOCKS ? AIM_PROBE_BLOCKS : n;
    for (int l = 0; l < AIM_PROBE_BLOCKS; l++)
        v->top1[l] = v->ref[l] = NAN;
    v->baseline = NAN;
}

void aim_engine_job_probe(aim_engine *eng, const aim_probe_view *p)
{
    pthread_mutex_lock(&eng->mu);
    eng->board.probe = *p;
    if (eng->board.probe.n > AIM_PROBE_BLOCKS)
        eng->board.probe.n = AIM_PROBE_BLOCKS;
    eng->board.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_job_inspect(aim_engine *eng, const aim_inspect_view *v)
{
    pthread_mutex_lock(&eng->mu);
    if (!eng->inspect)
        eng->inspect = aim_xmalloc(sizeof *eng->inspect);
    *eng->inspect = *v;
    eng->inspect->seq = ++eng->inspect_seq;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

int aim_engine_inspect(aim_engine *eng, aim_inspect_view *out)
{
    pthread_mutex_lock(&eng->mu);
    int changed = eng->inspect && out->seq != eng->inspect->seq;
    if (changed)
        *out = *eng->inspect;
    pthread_mutex_unlock(&eng->mu);
    return changed;
}

void aim_engine_job_recon(aim_engine *eng, const aim_recon_view *r)
{
    pthread_mutex_lock(&eng->mu);
    eng->board.recon = *r;
    eng->board.seq++;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_compare_set(aim_engine *eng, const aim_compare_view *v)
{
    pthread_mutex_lock(&eng->mu);
    if (!eng->compare)
        eng->compare = aim_xcalloc(1, sizeof *eng->compare);
    if (v && v->n > 0) {
        *eng->compare = *v;
        if (eng->compare->n > AIM_COMPARE_RUNS)
            eng->compare->n = AIM_COMPARE_RUNS;
    } else {
        eng->compare->n = 0;
    }
    eng->compare->seq = ++eng->compare_seq;
    pthread_mutex_unlock(&eng->mu);
    wake(eng);
}

void aim_engine_figure_set(aim_engine *eng, const aim_figure *f)
{
    aim_err e;
    aim_figure *copy = f ? aim_figure_copy(&f->spec, &e) : NULL; /* checked once already */
    pthread_mutex_lock(&eng->mu);
    aim_figure *old = eng->figure;
    eng->figure = copy;
    eng->figure_seq++;
    pthread_mutex_unlock(&eng->mu);
    aim_figure_free(old);
    wake(eng);
}

aim_figure *aim_engine_figure(aim_engine *eng, uint64_t *seq)
{
    aim_figure *out = NULL;
    pthread_mutex_lock(&eng->mu);
    if (*seq != eng->figure_seq) {
        aim_err e;
        out = eng->figure ? aim_figure_copy(&eng->figure->spec, &e) : NULL;
        *seq = eng->figure_seq;
    }
    pthread_mutex_unlock(&eng->mu);
    return out;
}

int aim_engine_compare(aim_engine *eng, aim_compare_view *out)
{
    pthread_mutex_lock(&eng->mu);
    int changed = eng->compare && out->seq != eng->compare->seq;
    if (changed) {
        /* only the runs in use: the view is large */
        const aim_compare_view *c = eng->compare;
        out->seq = c->seq;
        out->n = c->n;
        memcpy(out->run, c->run, (size_t)c->n * sizeof c->run[0]);
    }
    pthread_mutex_unlock(&eng->mu);
    return changed;
}
