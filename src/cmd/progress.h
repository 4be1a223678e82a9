/*
 * progress.h - how the headless front ends (aim run, aim repl) show an
 * engine's output and job events: Lua's print() on stdout, job progress on
 * stderr (one line rewritten in place on a terminal, about 20 lines per job
 * otherwise).
 */
#ifndef AIM_CMD_PROGRESS_H
#define AIM_CMD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "aim/engine.h"
#include "aim/probe.h"

typedef struct cmd_progress {
    int tty;       /* stderr is a terminal: rewrite one line */
    int quiet;     /* no progress at all */
    int open_line; /* a progress line without its newline is on screen */
} cmd_progress;

/* The progress line of a training job on stderr: rewritten in place on a
 * terminal (no newline until the last step), otherwise every total/20 steps
 * with a newline. Returns 1 if it printed. */
int cmd_step_line(const aim_step_info *s, int tty);

/* The command line's LoRA and fine-tuning callbacks (ctx: a cmd_tune):
 * the step line, and a line per epoch on stdout (epoch 0, before the first
 * step: "before WHAT: next-patch X" when there is a next-patch loss). */
typedef struct cmd_tune {
    int tty, quiet;
    const char *what; /* "LoRA", "fine-tuning" */
} cmd_tune;
int cmd_tune_step(void *ctx, const aim_step_info *s);
int cmd_tune_epoch(void *ctx, const aim_lora_epoch *ep);
/* "next-patch loss on N test images: A -> B (+x%)" when both are finite */
void cmd_tune_next_patch(int images, float before, float after);

/* aim_engine_hooks.output and .event, with a cmd_progress as ctx */
void cmd_progress_output(void *ctx, const char *text, size_t len);
void cmd_progress_event(void *ctx, const aim_event *ev);

#endif
