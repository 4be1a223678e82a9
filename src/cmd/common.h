/*
 * common.h - pieces several commands share: opening a dataset from a
 * command-line spec, building a model config from a preset plus overrides,
 * thread control and human-readable durations.
 */
#ifndef AIM_CMD_COMMON_H
#define AIM_CMD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "aim/data.h"
#include "aim/dist.h"
#include "aim/model.h"
#include "aim/runlog.h"

/* Model shape options: a preset and explicit overrides (0 = keep). */
typedef struct cmd_model_opts {
    const char *preset;
    int image, channels, patch, width, depth, heads, head_width, head_depth;
} cmd_model_opts;

/* --preset/--image/... entries for an option table (10 entries incl. none
 * terminator is NOT added: splice with CMD_MODEL_OPTS(m)). */
#define CMD_MODEL_OPTS(m)                                                                   \
    {"preset", OPT_STR, &(m).preset, "NAME", "model preset: micro, tiny, small (default tiny)"}, \
    {"image", OPT_INT, &(m).image, "H", "override: image side"},                             \
    {"channels", OPT_INT, &(m).channels, "C", "override: image channels"},                   \
    {"patch", OPT_INT, &(m).patch, "P", "override: patch side"},                             \
    {"width", OPT_INT, &(m).width, "D", "override: trunk width"},                            \
    {"depth", OPT_INT, &(m).depth, "L", "override: trunk depth"},                            \
    {"heads", OPT_INT, &(m).heads, "NH", "override: attention heads"},                       \
    {"head-width", OPT_INT, &(m).head_width, "DH", "override: pixel-head width"},            \
    {"head-depth", OPT_INT, &(m).head_depth, "LH", "override: pixel-head depth"}

/* Returns 0, or 1 after printing the error. */
int cmd_model_config(const cmd_model_opts *o, aim_config *c);

/* --threads: OpenMP and OpenBLAS together (0 = leave the default). */
void cmd_set_threads(int threads);
int cmd_threads(void);

/* Ctrl-C, SIGTERM, SIGHUP or SIGPIPE: remove the temporary files of the
 * atomic writes in progress (aim_write_atomic_abort), then end as the
 * signal would have (a signal that is ignored stays ignored). For commands
 * that only write files (export-csv). */
void cmd_remove_temps_on_signal(void);

/* Where the samples are (the default experiment pretrain.lua and the other
 * scripts), looked for in this order: $AIM_DATADIR; samples/ beside the
 * binary (the build tree); ../share/aim beside it (an installed tree moved
 * or installed with DESTDIR); the configured $(pkgdatadir). No path of the
 * build tree is compiled in. The malloc'd path of NAME there, or NULL;
 * tried (len bytes) lists the places looked at. */
char *cmd_sample_path(const char *name, char *tried, size_t len);

/* Take every `--NAME` out of argv (before a "--"), for a front-end flag of a
 * command whose other options are a job's table (`--json` of aim probe);
 * 1 when there was one. */
int cmd_take_flag(int *argc, char **argv, const char *name);

/* "1h02m", "3m12s", "45s" */
void cmd_duration(double s, char *buf, int len);

/* A job's --out DIR: rank 0 makes it a run folder (aim_runlog_open_dir) and
 * gets its log in *log, the other ranks NULL; when rank 0 cannot, every
 * rank fails. Returns 0, or 1 after printing the error. */
int cmd_open_runlog(const char *dir, const aim_dist *dist, aim_runlog **log);
/* Close it (NULL is fine): 0, or 1 after printing a failed write. */
int cmd_close_runlog(aim_runlog *log);

/* The console history file shared by `aim repl` and the TUI:
 * $XDG_STATE_HOME/aim/history (default ~/.local/state/aim/history); its
 * folder is created. malloc'd, or NULL without HOME. */
char *cmd_history_path(void);
/* $XDG_CONFIG_HOME/aim/NAME (default ~/.config/aim/NAME), malloc'd, or NULL. */
char *cmd_config_path(const char *name);

#endif
