/*
 * l_aim.h - internal to libaimengine.a: what the Lua bindings (src/lua/l_*.c), the
 * Lua host (host.c) and the engine (src/engine/engine.c) share. Not a public
 * header: front ends use aim/engine.h.
 *
 * Userdata types (metatable names): "aim.tensor", "aim.model",
 * "aim.dataset". Each is reached through one luaL_checkudata checker below,
 * is created empty (safe to collect) before it acquires anything, and has
 * __gc, __close, __tostring, __index (methods, plus __len where it means
 * something).
 */
#ifndef AIM_L_AIM_H
#define AIM_L_AIM_H

#include <lauxlib.h>
#include <lua.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/engine.h"
#include "aim/job.h"
#include "aim/model.h"
#include "aim/probe.h"

#define L_TENSOR_MT "aim.tensor"
#define L_MODEL_MT "aim.model"
#define L_DATASET_MT "aim.dataset"
#define L_PROBE_MT "aim.probe"

/* ------------------------------------------------------------ host.c */
/* A new Lua state bound to eng (stored in the registry): standard libraries,
 * print() through the engine, the aim modules in package.preload, the global
 * `aim` and the console globals. NULL with a message on failure. */
lua_State *l_host_open(aim_engine *eng, aim_err *e);
/* l_stdio.c: the standard streams when a front end owns the terminal
 * (aim_engine_detach_stdio): stdin empty, io.write / io.stdout / io.stderr
 * into the console, os.execute and io.popen without the terminal. */
int l_stdio_detach(lua_State *L, aim_engine *eng, aim_err *e);
/* before lua_close: close the console stream (nothing may write through it
 * once the engine is gone) */
void l_stdio_close(lua_State *L);
/* Close a state made by l_host_open (and free its memory account). */
void l_host_close(lua_State *L);
/* The state's memory account: everything Lua allocates plus tensor storage
 * is counted against a limit (default: half the machine's memory), so a
 * runaway script gets Lua's "not enough memory" error instead of the
 * machine's OOM killer taking the whole program (and its training run). */
typedef struct l_mem l_mem;
l_mem *l_mem_of(lua_State *L);
/* Count n more bytes; -1 (nothing counted) when that would pass the limit. */
int l_mem_take(l_mem *m, size_t n);
void l_mem_give(l_mem *m, size_t n);
size_t l_mem_used(const l_mem *m);
size_t l_mem_limit(const l_mem *m);
/* 0 = no limit */
void l_mem_set_limit(l_mem *m, size_t limit);
/* Replace the message of a memory error on top of the stack with one that
 * says what the limit is and how to change it. */
void l_mem_explain(lua_State *L);
/* "Lua values and tensors may use 12.0 GiB, 1.2 MiB in use; ..." */
void l_mem_status(const l_mem *m, char *buf, size_t len);
/* The engine a state belongs to (from the registry). */
aim_engine *l_engine(lua_State *L);
/* See aim_engine_eval / aim_engine_run_file. */
aim_eval_status l_host_eval(lua_State *L, const char *code, const char *name, int repl,
                            char **text);
aim_eval_status l_host_run_file(lua_State *L, const char *path, int argc, char *const *argv,
                                char **text);
/* See aim_engine_complete. */
int l_host_complete(lua_State *L, const char *word, char ***cands);
/* the embedded lua/aim/ files (generated lua_embed.c) */
typedef struct l_embedded {
    const char *module;   /* "aim", "aim.pretty", ... */
    const char *chunkname; /* "@aim/pretty.lua" */
    const unsigned char *src;
    size_t len;
} l_embedded;
extern const l_embedded l_embedded_modules[]; /* ends with a NULL module */

/* ---------------------------------------------------------- engine.c */
/* Lua's print() lands here (engine thread). */
void l_engine_output(aim_engine *eng, const char *text, size_t len);
/* Clear the interrupt flag and hook at the start of a top-level chunk. */
void l_engine_chunk_begin(aim_engine *eng);

/* ---------------------------------------------------------- l_util.c */
/* Raise "bad argument #idx to 'fn' (unknown option 'lrr'; did you mean 'lr'?)"
 * if the table at idx has a key that is not in known (NULL-terminated). */
void l_check_options(lua_State *L, int idx, const char *const *known);
/* Options from the table at idx (absent key or nil: the default). Values of
 * the wrong type or out of range raise a bad-argument error naming the
 * option. */
lua_Integer l_opt_int(lua_State *L, int idx, const char *key, lua_Integer def, lua_Integer lo,
                      lua_Integer hi);
lua_Number l_opt_num(lua_State *L, int idx, const char *key, lua_Number def, lua_Number lo,
                     lua_Number hi);
int l_opt_bool(lua_State *L, int idx, const char *key, int def);
const char *l_opt_str(lua_State *L, int idx, const char *key, const char *def);
/* A job's options (aim/job.h): check the table at idx (none or nil: all
 * defaults) against the option table t for the keys that apply `where`
 * (AIM_OPT_LUA for aim.pretrain and friends): an unknown key ("did you
 * mean"), a value of the wrong type or out of range raises a bad-argument
 * error naming the option. Values go into spec (which aim_opts_default has
 * filled); strings stay owned by the table at idx. Options the spec does
 * not hold (datasets, functions, probes) are only type-checked: the job
 * reads them itself. */
void l_job_opts(lua_State *L, int idx, const aim_opt *t, void *spec, int where);
/* Push spec's options that apply `where` as a table {name = value}; unset
 * strings and block lists as "" when empty_strings, else left out. */
void l_push_spec(lua_State *L, const aim_opt *t, const void *spec, int where,
                 int empty_strings);
/* Push the value of key in the table at idx (nil if idx is not a table). */
int l_opt_get(lua_State *L, int idx, const char *key);
/* Set t[key] = value in the table on top of the stack. */
void l_set_int(lua_State *L, const char *key, lua_Integer v);
void l_set_num(lua_State *L, const char *key, lua_Number v);
void l_set_str(lua_State *L, const char *key, const char *v);
void l_set_bool(lua_State *L, const char *key, int v);
/* "aim: note: TEXT" through io.stderr (where the script's own output
 * goes, whatever the front end); nothing for NULL or "" */
void l_notice(lua_State *L, const char *text);
/* Return nil, message (the I/O failure channel). */
int l_fail(lua_State *L, const char *msg);
/* A job's step as the table on_step callbacks get (l_jobs.c). */
void l_push_step_info(lua_State *L, const aim_step_info *s);
/* The end of a job that did not go well (l_jobs.c): raises the callback's
 * error kept at err_slot (failed), "interrupted!", or returns nil, msg. */
int l_job_failure(lua_State *L, aim_engine *eng, int failed, int err_slot, const char *msg);

/* --------------------------------------------------------- l_tensor.c */
/* Tensors are float32, C order and always contiguous; t[i] and t:narrow(1,
 * ...) share the storage (reference counted, so __close of one view never
 * frees what another still uses). */
typedef struct l_storage {
    int refs;
    size_t n;      /* floats */
    float *data;
    l_mem *mem;    /* the account n floats are counted in */
} l_storage;

typedef struct l_tensor {
    l_storage *st; /* NULL: empty or closed */
    float *data;   /* into st->data */
    int ndim;
    int64_t shape[AIM_MAX_DIMS];
} l_tensor;

l_tensor *l_tensor_check(lua_State *L, int idx);
l_tensor *l_tensor_test(lua_State *L, int idx); /* NULL if not a live tensor */
/* Push an empty tensor userdata with its metatable (safe to collect). */
l_tensor *l_tensor_push_empty(lua_State *L);
/* Give t (empty) a new storage of n floats (zeroed when zero != 0), counted
 * in the state's memory account; NULL (t unchanged) when over the limit or
 * out of memory. */
float *l_storage_new(lua_State *L, l_tensor *t, size_t n, int zero);
/* Push a new zeroed tensor; raises on a shape that is too large. */
l_tensor *l_tensor_push(lua_State *L, int ndim, const int64_t *shape);
size_t l_tensor_numel(const l_tensor *t);
/* Raise "bad argument #idx (expected a [B,C,H,W] tensor ..., got [..])" unless
 * t is 4-d with these C, H, W (B >= 1). Returns B. */
int l_tensor_check_images(lua_State *L, int idx, const l_tensor *t, int c, int h, int w);
/* "[2,1,28,28]" */
void l_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);
/* Sizes from the arguments at idx..top (integers) or one table; returns ndim. */
int l_shape_args(lua_State *L, int idx, int64_t *shape);
void l_open_tensor(lua_State *L); /* aim.tensor into the table on top */
/* l_tensor_new.c: push the aim.tensor table (load, new, zeros, cat) */
void l_tensor_push_funcs(lua_State *L);
/* l_tensor_ops.c: arithmetic and reductions; stack: ... mt methods */
void l_tensor_ops_register(lua_State *L);
/* l_png.c: aim.png into the table on top */
void l_open_png(lua_State *L);
/* l_plot.c: aim.plot into the table on top */
void l_open_plot(lua_State *L);
/* l_valloss.c: aim.validation_loss into the table on top */
void l_open_valloss(lua_State *L);

/* --------------------------------------------------------- l_data.c */
typedef struct l_dataset {
    aim_dataset *ds; /* NULL: closed */
    int busy;        /* a job is using it */
    size_t charged;  /* bytes taken from aim.memory_limit for its images */
} l_dataset;

l_dataset *l_dataset_check(lua_State *L, int idx);
/* a userdata in the closed state, to be filled (l_model.c, l_data.c) */
l_dataset *l_dataset_push_empty(lua_State *L);
/* Charge d's images to aim.memory_limit: 0, or -1 with d's dataset freed
 * and a message pushed */
int l_dataset_charge(lua_State *L, l_dataset *d);
/* Raise a bad-argument error at arg unless ds has the images config c takes
 * ("option 'what': the data is ..." when what is not NULL) */
void l_dataset_fits(lua_State *L, int arg, const char *what, const aim_dataset *ds,
                    const aim_config *c);
void l_open_data(lua_State *L); /* aim.data */

/* --------------------------------------------------------- l_model.c */
typedef struct l_model {
    aim_model *m; /* NULL: closed */
    int busy;
    size_t charged; /* bytes taken from aim.memory_limit for its slabs */
    /* its last aim.probe, per block as the probe panel showed it (NaN: not
     * probed; probe_kind "" = never): the mark LoRA's gain is measured from */
    float probe_top1[64];
    char probe_kind[32];
} l_model;

l_model *l_model_check(lua_State *L, int idx);
l_model *l_model_push_empty(lua_State *L);
/* Charge m's parameters and gradients to aim.memory_limit: 0, or -1 with a
 * message pushed (m keeps its model; it is freed by __gc) */
int l_model_charge(lua_State *L, l_model *m);
/* The per-image prefixes from opts.prefix (the option table at idx): a
 * number or a table of B numbers, each in 1..N-1 (default 1); pushed as a
 * userdata that holds them (the returned pointer), raising on a bad value. */
int32_t *l_read_prefixes(lua_State *L, int idx, int B, int N);
void l_open_model(lua_State *L); /* aim.model, aim.load, aim.preset */

/* The inspection methods (l_inspect.c) in the model's method table:
 * m:pca, m:stats, m:patch_loss. */
int l_model_pca(lua_State *L);
int l_model_stats(lua_State *L);
int l_model_patch_loss(lua_State *L);

/* --------------------------------------------------------- l_probe.c */
/* A trained probe head ("aim.probe"): aim.probe results carry the best one
 * as r.probe, aim.load_probe(path) reads one saved with its model. */
typedef struct l_probe {
    aim_probe *p;     /* NULL: empty or closed */
    int nblocks;
    int blocks[64];   /* the blocks whose averaged features it reads, 1-based */
    size_t charged;   /* bytes taken from aim.memory_limit (aim.load_probe) */
} l_probe;
l_probe *l_probe_check(lua_State *L, int idx);
/* the probe given at idx: an aim.probe, or a table with one as .probe (an
 * aim.probe result); NULL if nil; raises otherwise */
l_probe *l_probe_opt(lua_State *L, int idx);
/* "attentive probe on blocks 3,4" */
void l_probe_describe(const l_probe *p, char *buf, size_t len);

/* --------------------------------------------------------- l_inspect.c */
void l_open_inspect(lua_State *L); /* aim.inspect, aim.maps */
/* Compute what the Inspect view shows for B images x (normalised as m sees
 * them; the first AIM_INSPECT_IMAGES are shown, PCA over all of them) with
 * the error map at prefix S and, with an attentive probe p (may be NULL),
 * its attention; publish it (aim_engine_job_inspect). -1 with a message. */
int l_inspect_publish(aim_engine *eng, aim_model *m, const float *x, int B, const l_probe *p,
                      int S, const char *source, int64_t step, aim_err *e);

/* --------------------------------------------------------- l_jobs.c */
void l_open_jobs(lua_State *L); /* aim.pretrain, aim.pause, aim.stop, aim.lr, ... */
/* l_recon.c */
void l_open_recon(lua_State *L); /* aim.reconstruct */
void l_open_probe(lua_State *L); /* aim.probe */
void l_open_lora(lua_State *L);  /* aim.lora (l_lora.c) */
void l_open_follow(lua_State *L); /* aim.follow (l_follow.c) */
/* the registry key of the runs table aim.compare shows now (nil: another call's) */
#define L_COMPARE_SHOWN "aim.compare.shown"
void l_open_finetune(lua_State *L); /* aim.finetune (l_finetune.c) */
void l_open_compare(lua_State *L); /* aim.compare (l_compare.c) */

/* l_board.c: what a job publishes for the TUI (aim/engine.h "the board")
 * and the console's requests to it (aim.save_checkpoint, aim.probe_now,
 * aim.recon_now) */
typedef struct l_board l_board;
typedef struct l_board_opts {
    int recon_images;      /* images to reconstruct (<= AIM_RECON_MAX) */
    int64_t recon_every;   /* refresh every N steps (0: at the first and last step, on request) */
    int probe_images;      /* as aim_pretrain_opts.probe_images */
    uint64_t seed;
    int can_checkpoint;    /* the job has a checkpoint folder */
    const char *job;       /* the job's name for the views (NULL: "pretrain") */
    int no_requests;       /* the job takes no save/probe requests (probe, LoRA) */
} l_board_opts;
/* A new board for a job on the model at model_idx and the training data at
 * data_idx, with optional probe test data and reconstruction source (stack
 * indices, 0 = none). Pushes it and makes it the newest board. */
l_board *l_board_new(lua_State *L, aim_engine *eng, int model_idx, int data_idx, int probe_idx,
                     int recon_idx, const l_board_opts *o);
void l_board_end(l_board *b);                       /* the job has ended */
int l_board_requests(l_board *b);                   /* take the AIM_REQ_* bits */
/* OR bits into the running job's requests; 0 if no job runs */
int l_board_request(lua_State *L, int bits);
/* after each step: reconstructions when due (the first and last step,
 * every recon_every, on request) */
void l_board_step(l_board *b, aim_model *m, const aim_step_info *s);
/* reconstructions and the Inspect view's maps now, on m (with head's
 * attention when not NULL; events: the job's event file or NULL) */
void l_board_refresh(l_board *b, aim_model *m, int64_t step, struct aim_tfevents *events,
                     const l_probe *head);
/* aim_pretrain_opts.on_probe */
void l_board_probe(lua_State *L, l_board *b, int64_t step, const float *top1, int n);
void l_open_board(lua_State *L);

int luaopen_aim_core(lua_State *L);

#endif
