/*
 * aim/engine.h - the engine (DESIGN.md layer 2): the one thread that owns
 * the Lua state and every model and dataset made from it. Front ends (the
 * headless runner, the REPL, the TUI, tests) hand it Lua to run and read
 * what it publishes; none of them touches Lua or a model directly.
 *
 * Two ways to drive it:
 *   - on the caller's thread (`aim run`, `aim repl`): aim_engine_eval() and
 *     aim_engine_run_file() run at once; the caller is the engine thread.
 *   - on its own thread (the TUI, tests): aim_engine_start(), then
 *     aim_engine_submit() from any thread and aim_engine_wait() (or
 *     aim_engine_poll()) for the reply.
 * Either way a long job (aim.pretrain) calls aim_engine_job_publish() and
 * aim_engine_job_step() between steps. They publish a snapshot (copied out
 * under a mutex by aim_engine_snapshot), emit a step event, run every chunk
 * queued meanwhile (so `pause()`, `stop()`, `lr(3e-4)` work while training)
 * and, while the job is paused, wait for more chunks, resume or stop. A Lua error in a queued
 * chunk becomes that chunk's reply, with a traceback; the job goes on.
 *
 * The engine never prints: Lua's print() goes to hooks.output, job progress
 * to hooks.event. Thread safety: the functions marked "any thread" may be
 * called from any thread; everything else belongs to the engine thread.
 */
#ifndef AIM_ENGINE_H
#define AIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"
#include "aim/inspect.h"
#include "aim/train.h"

struct lua_State;
typedef struct aim_engine aim_engine;

typedef enum aim_eval_status {
    AIM_EVAL_OK = 0,
    AIM_EVAL_ERROR,      /* text: the message and a traceback */
    AIM_EVAL_INCOMPLETE, /* the chunk ends early (`for i = 1, 3 do`): read more lines */
} aim_eval_status;

typedef struct aim_reply {
    int64_t ticket;
    aim_eval_status status;
    char *text; /* OK: the values, formatted (tables pretty-printed), tab separated,
                   "" when none; ERROR: message + traceback; INCOMPLETE: the syntax error */
} aim_reply;

typedef enum aim_job_state {
    AIM_JOB_IDLE = 0,
    AIM_JOB_RUNNING,
    AIM_JOB_PAUSED,
} aim_job_state;

/* What a UI shows, copied out under the engine's mutex. */
/* A job that follows a run another process writes (aim.follow): whether
 * that writer is at work (aim_snapshot.follow) */
typedef enum aim_follow_state {
    AIM_FOLLOW_NONE = 0, /* not following: the job is this process's */
    AIM_FOLLOW_WAITING,  /* no log yet (or it was deleted) */
    AIM_FOLLOW_LIVE,     /* the writer is writing */
    AIM_FOLLOW_STOPPED,  /* the writer has gone before the last step (killed, stopped) */
    AIM_FOLLOW_FINISHED, /* the writer has gone after the last step */
} aim_follow_state;

typedef struct aim_snapshot {
    uint64_t seq;        /* grows with every publish */
    aim_job_state state;
    char job[16];        /* "pretrain"; "" before the first job */
    aim_step_info step;  /* last step of the running (or last) job; step 0 = none yet */
    float lr_peak;       /* the job's peak learning rate (changed by lr(x)) */
    /* the live MFU: achieved FLOP/s = step.img_per_s * train_flops, out of
     * peak_flops (aim_engine_measure_peak) */
    double train_flops;  /* FLOPs per image of a training step (0: not counted for
                            this job: probes, LoRA, several ranks) */
    double peak_flops;   /* GEMM peak on the job's shapes (sgemm, or the bf16 GEMMs in a
                            bf16 job), FLOP/s (0: not measured) */
    int bf16;            /* the job's GEMMs run in bf16 (aim_engine_job_flops) */
    int64_t jobs_done;
    int follow;          /* aim_follow_state of the job (0: its own job) */
    aim_sys sys;         /* the job's process and machine (this process's, sampled as
                            it publishes; a followed run's from its "sys" lines); NaN:
                            not known */
    int64_t queued;      /* chunks waiting to run */
    int64_t chunks_begun; /* chunks that have begun to run (aim_engine_eval,
                             aim_engine_run_file, submitted lines); counted
                             once a chunk's interrupt state is set up, so an
                             aim_engine_interrupt after this count passes a
                             chunk reaches that chunk (tests wait on it) */
} aim_snapshot;

typedef enum aim_event_kind {
    AIM_EV_JOB_START, /* text: one line describing the job */
    AIM_EV_STEP,      /* step */
    AIM_EV_PAUSE,
    AIM_EV_RESUME,
    AIM_EV_JOB_END,   /* text: a summary; step: the last step (NULL if none) */
    AIM_EV_MESSAGE,   /* text: a message from the job (checkpoint saved, probe done, ...) */
} aim_event_kind;

typedef struct aim_event {
    aim_event_kind kind;
    const char *job;
    const char *text;
    const aim_step_info *step;
} aim_event;

/* ------------------------------------------------------------ the board */
/* What a UI's panels show beyond the snapshot, copied out under the same
 * mutex with aim_engine_board(): the training curve of the current job
 * (bounded: when AIM_CURVE_MAX points are full, neighbours are merged in
 * pairs and each point then covers twice as many steps), validation points,
 * the last probe per block, reconstructions as 8-bit pixels and the last
 * messages. A UI never reads a model: jobs publish copies here. */
#define AIM_CURVE_MAX 1024
#define AIM_VAL_MAX 256
#define AIM_PROBE_BLOCKS 64
#define AIM_RECON_MAX 4     /* images */
#define AIM_RECON_SIDE 32   /* larger images are reduced to this side */
#define AIM_MSG_MAX 16
#define AIM_MSG_LEN 240

typedef struct aim_curve_point {
    int64_t step;     /* the last step the point covers */
    float loss;       /* mean training loss over the steps it covers */
    float lo, hi;     /* their minimum and maximum */
    float lr;         /* the learning rate at `step` */
} aim_curve_point;

typedef struct aim_val_point {
    int64_t step;
    float loss;
} aim_val_point;

/* what a job does to a block (aim_probe_view.role; all 0: not said) */
enum { AIM_BLOCK_PROBED = 1, AIM_BLOCK_ADAPTED = 2 };

typedef struct aim_probe_view {
    char kind[32];    /* "live linear", ...; "" = no probe yet */
    int64_t step;     /* the pretraining step it was measured at */
    int n;            /* blocks */
    float top1[AIM_PROBE_BLOCKS]; /* percent; NaN = not measured */
    float baseline;   /* the raw-pixel linear probe on the same images; NaN = unknown */
    int running;      /* 1 while a probe is being computed */
    /* the reference a job improves on, per block (LoRA: the frozen probe it
     * started from; NaN = none), and its name ("frozen attentive") */
    float ref[AIM_PROBE_BLOCKS];
    char ref_kind[32];
    unsigned char role[AIM_PROBE_BLOCKS]; /* AIM_BLOCK_* bits; blocks without any are untouched */
    char progress[48];  /* what is being trained now ("b3 epoch 7/15"; "" = nothing said) */
} aim_probe_view;

/* An empty probe view of n blocks: no values (NaN), no baseline, no reference. */
void aim_probe_view_init(aim_probe_view *v, const char *kind, int n);

typedef struct aim_recon_view {
    int n;            /* images (0 = none yet) */
    int channels;     /* 1 or 3 */
    int side;         /* pixels per side, <= AIM_RECON_SIDE */
    int patch;        /* patch side in these pixels (may be fractional in the model: rounded) */
    int prefix;       /* S: patches before S are given, the others predicted */
    int64_t step;     /* training step they show (0: outside a job) */
    float loss;       /* the AIM loss of these images at this prefix */
    /* [image][0 input | 1 prediction | 2 target][channel][y][x], 0..255 */
    uint8_t pix[AIM_RECON_MAX][3][3 * AIM_RECON_SIDE * AIM_RECON_SIDE];
} aim_recon_view;

typedef struct aim_board {
    uint64_t seq;               /* grows with every change */
    char run_dir[256];          /* the job's run folder ("" = none) */
    int threads;                /* the job's thread count */
    int can_checkpoint;         /* the job writes checkpoints (save() works) */
    char loss_label[32];        /* what the curve is ("" = the job's training loss) */
    char val_label[32];         /* what the validation points are ("" = "val") */
    int64_t stride;             /* steps per curve point (1, 2, 4, ...) */
    int ncurve;
    aim_curve_point curve[AIM_CURVE_MAX]; /* the last one may still be filling */
    int nval;
    aim_val_point val[AIM_VAL_MAX];
    int nonfinite;              /* NaN / Inf training losses seen */
    aim_probe_view probe;
    aim_recon_view recon;
    int64_t nmsg;               /* messages ever posted; message k (k >= nmsg -
                                   AIM_MSG_MAX) is msg[k % AIM_MSG_MAX] */
    char msg[AIM_MSG_MAX][AIM_MSG_LEN];
} aim_board;

/* ------------------------------------------------------------ inspection */
/* What the Inspect view shows (computed with aim/inspect.h), published by a
 * pretraining job with its reconstructions, by aim.inspect() and by
 * `aim tui --inspect WEIGHTS`: for a few images, per block the PCA map (the
 * block's tokens projected on the first 3 principal components over these
 * images' tokens, as RGB), per-block statistics, the next-patch error map
 * and, with an attentive probe, its attention per head. Copied out apart
 * from the board (aim_engine_inspect): it is large and changes rarely. */
#define AIM_INSPECT_IMAGES 8
#define AIM_INSPECT_BLOCKS 32  /* deeper trunks: the first 32 blocks */
#define AIM_INSPECT_GRID 16    /* patches per side, at most */
#define AIM_INSPECT_HEADS 16   /* probe heads shown, at most */
#define AIM_INSPECT_CELLS (AIM_INSPECT_GRID * AIM_INSPECT_GRID)

typedef struct aim_inspect_view {
    uint64_t seq;          /* grows with every publish; 0 = nothing yet */
    int n;                 /* images */
    int channels, side;    /* input pixels, side <= AIM_RECON_SIDE */
    int grid;              /* patches per side: N = grid * grid */
    int depth;             /* blocks shown */
    int heads;             /* attention maps per image (0: no attentive probe) */
    int prefix;            /* S of the error map */
    int64_t step;          /* the training step (0: outside a job) */
    char source[96];       /* where the maps come from ("pretrain step 300", a file) */
    char probe[96];        /* the probe ("attentive probe on blocks 3,4"; "" = none) */
    /* the images, [image][channel][y][x], 0..255 */
    uint8_t input[AIM_INSPECT_IMAGES][3 * AIM_RECON_SIDE * AIM_RECON_SIDE];
    /* per block: patch colours [block][image][patch][r, g, b] */
    uint8_t pca[AIM_INSPECT_BLOCKS][AIM_INSPECT_IMAGES][AIM_INSPECT_CELLS][3];
    float explained[AIM_INSPECT_BLOCKS][3]; /* share of the variance on PC 1, 2, 3 */
    float norm[AIM_INSPECT_BLOCKS];         /* mean token norm */
    float cosine[AIM_INSPECT_BLOCKS];       /* mean cosine similarity between tokens */
    float erank[AIM_INSPECT_BLOCKS];        /* mean effective rank (aim/inspect.h) */
    /* per-patch next-patch loss (NaN: no prediction) and its mean per image */
    float error[AIM_INSPECT_IMAGES][AIM_INSPECT_CELLS];
    float loss[AIM_INSPECT_IMAGES];
    /* probe attention [image][head][patch], each head's row sums to 1 */
    float attn[AIM_INSPECT_IMAGES][AIM_INSPECT_HEADS][AIM_INSPECT_CELLS];
} aim_inspect_view;

/* ------------------------------------------------------------ comparison */
/* Finished runs side by side (aim.compare, `aim tui --compare RUN...`): per
 * run folder its label, its training curve reduced to at most
 * AIM_COMPARE_POINTS points (consecutive steps in equal buckets: mean loss,
 * min, max, the lr at the bucket's last step), its validation points and
 * its last probe per block. Read from the run's metrics.jsonl
 * (aim_compare_run_read), published as a whole with
 * aim_engine_compare_set and copied out apart from the board
 * (aim_engine_compare): it is large and changes rarely. */
#define AIM_COMPARE_RUNS 8
#define AIM_COMPARE_POINTS 512
#define AIM_COMPARE_VAL 128
#define AIM_COMPARE_LABEL 48

typedef struct aim_compare_run {
    char label[AIM_COMPARE_LABEL]; /* the run folder's name */
    int64_t steps;                 /* the last training step */
    int64_t train_lines;           /* training steps logged (finite loss or not) */
    int nonfinite;                 /* NaN / Inf training losses (left out of the curve) */
    float final_loss;              /* the last finite training loss */
    float best_val;                /* the lowest validation loss; NaN = none */
    int64_t best_val_step;
    int ncurve;
    aim_curve_point curve[AIM_COMPARE_POINTS];
    int nval;
    aim_val_point val[AIM_COMPARE_VAL]; /* evenly thinned, the last one kept */
    int nprobe;                    /* blocks of the last probe (0 = no probe logged) */
    int64_t probe_step;
    float top1[AIM_PROBE_BLOCKS];  /* percent; NaN = not measured */
} aim_compare_run;

typedef struct aim_compare_view {
    uint64_t seq;                  /* grows with every publish; 0 = nothing yet */
    int n;                         /* runs; 0 = no comparison */
    aim_compare_run run[AIM_COMPARE_RUNS];
} aim_compare_view;

/* Fill *out from a metrics log (aim/metrics.h) read from `path` (for the
 * messages) under `label`. -1 with a message naming path when it holds no
 * training step. */
struct aim_metrics;
int aim_compare_run_from_metrics(const struct aim_metrics *m, const char *path,
                                 const char *label, aim_compare_run *out, aim_err *e);

typedef struct aim_engine_hooks {
    /* what Lua prints (print(); io.write too after aim_engine_detach_stdio);
     * engine thread */
    void (*output)(void *ctx, const char *text, size_t len);
    /* job events; engine thread; keep it short (it runs between steps) */
    void (*event)(void *ctx, const aim_event *ev);
    /* a reply is ready or the snapshot changed; any thread (a UI writes to
     * its wake-up pipe here) */
    void (*wake)(void *ctx);
    /* aim.quit(code) (and os.exit, which a UI points at it): the UI asks
     * the user as its quit key does; engine thread. NULL: aim.quit falls
     * back to os.exit */
    void (*quit)(void *ctx, int code);
    void *ctx;
} aim_engine_hooks;

/* A new engine with a fresh Lua state: standard libraries, `aim` preloaded
 * and set as a global, and the console globals pause/resume/stop/lr. hooks
 * may be NULL (output and events are then dropped). */
aim_engine *aim_engine_new(const aim_engine_hooks *hooks, aim_err *e);
/* For a front end that owns the terminal (a full-screen UI), before the
 * engine thread starts: Lua's standard input reads as empty, io.write /
 * io.stdout / io.stderr go to the output hook like print(), and os.execute /
 * io.popen run commands without the terminal (os.execute's output goes to
 * the output hook, and aim_engine_interrupt kills it). Without this a
 * console line such as io.read() would block on the screen's terminal and
 * hold a running job forever. -1 with a message on failure. */
int aim_engine_detach_stdio(aim_engine *eng, aim_err *e);
/* Stops a running job and the engine thread (if started), closes Lua. */
void aim_engine_free(aim_engine *eng);

/* ------------------------------------------------ the Lua layer, any thread */
/* 1 when code is an unfinished Lua statement (more lines would complete it:
 * lua.c's test, "return <code>" first, then a syntax error at <eof>). It
 * compiles in a bare state of its own and never waits for the engine. */
int aim_lua_incomplete(const char *code);
const char *aim_lua_release(void); /* "Lua 5.4.6" */

/* ---------------------------------------------------- on the caller's thread */
/* Run a chunk of Lua. repl: try "return <code>" first, so an expression gives
 * its value, and report an incomplete chunk as AIM_EVAL_INCOMPLETE. *text
 * (malloc'd, never NULL) as in aim_reply. */
aim_eval_status aim_engine_eval(aim_engine *eng, const char *code, const char *name, int repl,
                                char **text);
/* Run a script file with arg[0] = path, arg[1..argc] = argv (also passed as
 * `...`). Returns AIM_EVAL_OK, or AIM_EVAL_ERROR with the message and a
 * traceback in *text (malloc'd; NULL on success). */
aim_eval_status aim_engine_run_file(aim_engine *eng, const char *path, int argc,
                                    char *const *argv, char **text);
/* Completions of word from the Lua module aim.complete: *cands (malloc'd,
 * NULL-terminated, each malloc'd; NULL when none) and their count. Like
 * aim_engine_eval, before aim_engine_start (afterwards: 0, none). */
int aim_engine_complete(aim_engine *eng, const char *word, char ***cands);

/* Turn on the live MFU (the TUI does): pretraining jobs then measure the
 * machine's sgemm peak for about `seconds` when they start (aim/prof.h
 * aim_gemm_peak; once per config, batch and thread count). Off (0) by
 * default: headless runs measure nothing. Before aim_engine_start or on the
 * engine thread. */
void aim_engine_measure_peak(aim_engine *eng, double seconds);

/* ---------------------------------------------------- on the engine's thread */
/* Start the engine thread: from now on only it touches Lua. */
int aim_engine_start(aim_engine *eng, aim_err *e);
/* Queue a chunk (any thread); returns its ticket (> 0). repl as in eval. */
int64_t aim_engine_submit(aim_engine *eng, const char *code, int repl);
/* Wait up to timeout_ms (< 0: forever) for the reply to `ticket` (any
 * thread). Returns 0 and fills *out (free with aim_reply_free), or 1 on
 * timeout. */
int aim_engine_wait(aim_engine *eng, int64_t ticket, int timeout_ms, aim_reply *out);
/* Take any ready reply without waiting: 0 and *out, or 1 if none. */
int aim_engine_poll(aim_engine *eng, aim_reply *out);
void aim_reply_free(aim_reply *r);

/* ------------------------------------------------------------ job control */
/* Any thread. Each returns 1 if it changed something (a job was running /
 * paused), else 0. Lua's pause(), resume() and stop() call these. */
int aim_engine_pause(aim_engine *eng);
int aim_engine_resume(aim_engine *eng);
int aim_engine_stop(aim_engine *eng);
/* Async-signal-safe (a SIGINT handler may call it): interrupt the running
 * Lua code with the error "interrupted!" (as lua.c does, through a debug
 * hook) and stop the running job, which then raises the same error. */
void aim_engine_interrupt(aim_engine *eng);
/* Hand a quit request to the UI's quit hook; 0 when there is none. */
int aim_engine_request_quit(aim_engine *eng, int code);
/* Any thread: copy the current snapshot out. */
void aim_engine_snapshot(aim_engine *eng, aim_snapshot *out);
/* Any thread: copy the board out unless out->seq is already current (start
 * with a zeroed board). Returns 1 if it copied. */
int aim_engine_board(aim_engine *eng, aim_board *out);

/* ------------------------------------------------- for job implementations */
/* Engine thread. Begin a job (fails if one is running: jobs do not nest);
 * desc is the JOB_START event's text; lr_peak the initial peak lr. */
int aim_engine_job_begin(aim_engine *eng, const char *name, const char *desc, float lr_peak,
                         aim_err *e);
/* Engine thread, before the first step: publish the job's training FLOPs per
 * image (0: not counted) for the model c at `batch` images per step. When
 * the engine measures the peak (aim_engine_measure_peak) it also publishes
 * the GEMM peak of the job's precision (sgemm, or the bf16 GEMMs) on c's
 * shapes at that batch with the threads in effect: measured here, on this
 * thread, the first time, and kept for the next jobs with the same shapes,
 * thread count and precision. */
struct aim_config;
void aim_engine_job_flops(aim_engine *eng, const struct aim_config *c, int batch,
                          aim_precision prec, double train_flops);
/* After each step: publish it (snapshot and a STEP event). */
void aim_engine_job_publish(aim_engine *eng, const aim_step_info *info);
/* Between two steps, after publishing (and after the job's own callbacks):
 * run the chunks queued meanwhile on L (the Lua thread running the job),
 * wait while paused. Returns 1 when the job must stop (stop(), interrupt,
 * engine shutting down). */
int aim_engine_job_step(aim_engine *eng, struct lua_State *L);
/* The job's live peak lr (for aim_pretrain_opts.live_lr); lr(x) writes it. */
const float *aim_engine_job_lr(aim_engine *eng);
/* Set the running job's peak lr; -1 with a message if no job is running. */
int aim_engine_set_lr(aim_engine *eng, float lr, aim_err *e);
void aim_engine_job_end(aim_engine *eng, const char *summary, const aim_step_info *last);
/* Publishing to the board (engine thread, while a job runs unless noted).
 * Messages also go out as AIM_EV_MESSAGE events; job start, pause, resume
 * and end are posted as messages by the engine itself. */
void aim_engine_job_message(aim_engine *eng, const char *text); /* any time */
void aim_engine_job_folder(aim_engine *eng, const char *run_dir, int threads,
                           int can_checkpoint);
void aim_engine_job_val(aim_engine *eng, int64_t step, float loss);
/* A following job (aim.follow): the writer's state, and a log read again
 * from its start (a resumed run cut it back): the curve and validation
 * points start anew. */
void aim_engine_job_follow(aim_engine *eng, aim_follow_state state);
void aim_engine_job_rewind(aim_engine *eng);
/* A followed run's CPU use, memory and load (from its "sys" lines). */
void aim_engine_job_sys(aim_engine *eng, const aim_sys *sys);
/* Name the curve and the validation points for the panels (NULL or "": the
 * defaults); reset when a job begins. */
void aim_engine_job_labels(aim_engine *eng, const char *loss_label, const char *val_label);
void aim_engine_job_probe(aim_engine *eng, const aim_probe_view *p); /* any time */
void aim_engine_job_recon(aim_engine *eng, const aim_recon_view *r); /* any time */
/* Replace the inspection (any time; seq is set here). */
void aim_engine_job_inspect(aim_engine *eng, const aim_inspect_view *v);

/* Making the views (src/engine/views.c; any thread, no engine needed but
 * for publishing). 0 when the Inspect view can show c's maps (at most
 * AIM_INSPECT_GRID patches a side, 1 or 3 channels), else -1 and why. */
int aim_inspect_view_fits(const aim_config *c, aim_err *e);
/* The view of B images x (normalised as the model sees them; the first
 * AIM_INSPECT_IMAGES shown, reduced to AIM_RECON_SIDE) from
 * aim_inspect_maps' pca [L,B,N,k], expl [L,k], stats [L], err [B,N] and att
 * [B,NH,N] (NULL: none); probe and source name them, step the job's. */
void aim_inspect_view_fill(aim_inspect_view *v, const aim_config *c, const float *x, int B,
                           int k, int S, const float *pca, const float *expl,
                           const aim_token_stats *stats, const float *err, const float *att,
                           int NH, const char *probe, const char *source, int64_t step);
/* Compute (aim_inspect_maps with k = 3 and the error map at prefix S) and
 * publish the Inspect view of B images x; with an attentive probe p (may be
 * NULL; blocks as aim_inspect_attention, probe_name for the view) also its
 * attention. -1 with a message (also when the view cannot show m). */
int aim_inspect_publish(aim_engine *eng, aim_model *m, const float *x, int B, aim_probe *p,
                        const int *blocks, int nblocks, const char *probe_name, int S,
                        const char *source, int64_t step, aim_err *e);
/* The reconstructions' view from aim_model_reconstruct's outputs out =
 * input | pred | target, each [n, C, H, W] in [0, 1], reduced to
 * AIM_RECON_SIDE (at most AIM_RECON_MAX images). */
void aim_recon_view_fill(aim_recon_view *v, const aim_config *c, const float *out, int n, int S,
                         int64_t step, double loss);
/* Any thread: copy the inspection out unless out->seq is already current
 * (start with out->seq = 0). Returns 1 if it copied. */
int aim_engine_inspect(aim_engine *eng, aim_inspect_view *out);
/* Replace the comparison (any time; v = NULL or v->n = 0 clears it; seq
 * is set here). */
void aim_engine_compare_set(aim_engine *eng, const aim_compare_view *v);
/* Any thread: copy the comparison out unless out->seq is already current
 * (start with out->seq = 0). Returns 1 if it copied. */
int aim_engine_compare(aim_engine *eng, aim_compare_view *out);
struct aim_figure; /* aim/plot.h */
/* Publish a figure for the workbench's figure view (aim.plot{show = true}):
 * the engine keeps its own copy (f is the caller's still). */
void aim_engine_figure_set(aim_engine *eng, const struct aim_figure *f);
/* Any thread: a new copy of the newest figure (the caller frees it with
 * aim_figure_free) when its number is not *seq, which is then updated
 * (start with *seq = 0); NULL when there is none or nothing new. */
struct aim_figure *aim_engine_figure(aim_engine *eng, uint64_t *seq);
/* 1 if aim_engine_interrupt was called since the current top-level chunk
 * began. */
int aim_engine_interrupted(aim_engine *eng);
/* 1 when chunks can arrive from another thread (the engine thread runs), so
 * a paused job can be resumed; pause() refuses otherwise. */
int aim_engine_threaded(aim_engine *eng);

#endif
