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

typedef struct cmd_progress {
    int tty;       /* stderr is a terminal: rewrite one line */
    int quiet;     /* no progress at all */
    int open_line; /* a progress line without its newline is on screen */
} cmd_progress;

/* The progress line of a training job on stderr: rewritten in place on a
 * terminal (no newline until the last step), otherwise every total/20 steps
 * with a newline. Returns 1 if it printed. */
int cmd_step_line(const aim_step_info *s, int tty);

/* aim_engine_hooks.output and .event, with a cmd_progress as ctx */
void cmd_progress_output(void *ctx, const char *text, size_t len);
void cmd_progress_event(void *ctx, const aim_event *ev);

#endif
