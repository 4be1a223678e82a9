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
} l_tune;

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
