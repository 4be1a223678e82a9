/*
 * l_tune.h - what aim.lora (l_lora.c) and aim.finetune (l_finetune.c)
 * share: the jobs that train a head on a trunk, step by step, with the
 * engine's job lifecycle, the probe panel and the board. Both keep the same
 * stack slots (TUNE_S_*) in their frame, so the callbacks, which run inside
 * it, can reach the options, callbacks and the error slot.
 */
#ifndef AIM_L_TUNE_H
#define AIM_L_TUNE_H

#include "aim/engine.h"
#include "aim/job.h"
#include "aim/runlog.h"
#include "aim/probe.h"
#include "lua/l_aim.h"

/* the frame of aim.lora / aim.finetune: arguments, then what they push */
enum {
    TUNE_S_MODEL = 1,
    TUNE_S_TRAIN,
    TUNE_S_TEST,
    TUNE_S_OPTS,
    TUNE_S_ONSTEP,  /* opts.on_step or nil */
    TUNE_S_ONEPOCH, /* opts.on_epoch or nil */
    TUNE_S_ERR,     /* a Lua error of a callback, raised after the job */
    TUNE_S_BOARD,
};

typedef struct l_tune {
    lua_State *L;
    aim_engine *eng;
    aim_model *m;
    l_board *board;           /* reconstructions and the Inspect view of the trained trunk */
    int failed;
    int epochs;
    aim_step_info last;
    aim_probe_view view;      /* the probe panel: test top-1 on the probe blocks */
    int nprobe, probe[AIM_PROBE_MAX_BLOCKS];
    /* set by l_tune_begin */
    l_model *lm;
    l_dataset *tr, *te;
    aim_norm_saved ns;        /* the data's normalisation before the job */
} l_tune;

/* The train and test data (TUNE_S_TRAIN, TUNE_S_TEST) fit the model and
 * the training images fill one batch; raises a Lua error if not. */
void l_tune_check_data(lua_State *L, const aim_config *c, int batch);
/* The start both jobs share, in order: the board (TUNE_S_BOARD: the
 * reconstructions of the test images with the trained trunk, every epoch
 * and on r), the run folder `out` (rank 0 writes it) into *log, the
 * engine's job (raises a Lua error if one cannot begin), the probe panel,
 * the curve's labels, the model and data marked busy and the data
 * normalised as in pretraining. -1 with a message if the run folder cannot
 * be made (nothing begun: return l_fail). t->L, eng, m and the view must be
 * set. */
int l_tune_begin(l_tune *t, l_model *lm, l_dataset *tr, l_dataset *te, const char *job,
                 const char *desc, double lr, uint64_t seed, const char *out, aim_runlog **log,
                 aim_err *e);
/* After the C job returned rc: closes the run folder (its failure becomes
 * the job's if the job succeeded), restores the data, frees the model and
 * data, ends the board and the probe panel. Returns the job's status. */
int l_tune_finish(l_tune *t, int rc, aim_runlog *log, aim_err *e);
/* Ends the engine's job with summary; when the job failed, was stopped by
 * the engine or a callback raised, frees probe and returns what the Lua
 * function returns (l_job_failure), else 0. */
int l_tune_end(l_tune *t, int rc, const char *summary, const char *emsg, aim_probe *probe);

/* The probe panel's view: kind (its label), the probe blocks, the trained
 * blocks (marked adapted), and the frozen probe the job is measured
 * against: opts.head when it is an aim.probe result (its best set), else
 * this model's last aim.probe. */
void l_tune_view_init(lua_State *L, l_tune *t, const l_model *lm, const char *kind, int depth,
                      const int *trained, int ntrained);
/* the C job's callbacks (ctx = the l_tune): never raise; a Lua error stops
 * the job and waits in TUNE_S_ERR */
int l_tune_on_step(void *ctx, const aim_step_info *s);
int l_tune_on_epoch(void *ctx, const aim_lora_epoch *ep);
void l_tune_push_ints(lua_State *L, const int *v, int n);

#endif
