/*
 * cmd.h - the command table of the `aim` binary: one command per file, each
 * exporting one const struct aim_cmd (tmux style), listed in main.c.
 * Commands may print; they return the process exit status.
 */
#ifndef AIM_CMD_H
#define AIM_CMD_H

#include <stddef.h>

struct aim_cmd {
    const char *name;
    const char *usage;   /* "PATH..." */
    const char *summary; /* one line for `aim --help` */
    const char *help;    /* full text for `aim CMD --help` */
    int (*exec)(int argc, char **argv); /* argv[0] is the command name */
};

extern const struct aim_cmd cmd_info_entry;
extern const struct aim_cmd cmd_train_entry;
extern const struct aim_cmd cmd_loss_entry;
extern const struct aim_cmd cmd_bench_entry;
extern const struct aim_cmd cmd_export_entry;
extern const struct aim_cmd cmd_probe_entry;
extern const struct aim_cmd cmd_lora_entry;
extern const struct aim_cmd cmd_finetune_entry;
extern const struct aim_cmd cmd_runs_entry;
extern const struct aim_cmd cmd_csv_entry;
extern const struct aim_cmd cmd_run_entry;
extern const struct aim_cmd cmd_repl_entry;
extern const struct aim_cmd cmd_tui_entry;
extern const struct aim_cmd cmd_options_entry;

/* Print "aim: <message>" on stderr and return 1. Control characters in the
 * message (but newline and tab) are shown escaped, as cmd_esc does. */
int cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* s for the terminal: control characters (C0, DEL, and C1 as UTF-8) shown
 * as \x1b, so a file's text cannot set the title or clear the screen; NULL
 * shows as "?". The result lives until 16 more calls (printf arguments). */
const char *cmd_esc(const char *s);
/* The same into out (cap bytes, truncated), keeping newline and tab when
 * keep_nl; returns out. */
char *cmd_escape(char *out, size_t cap, const char *s, int keep_nl);
/* 1 if argv holds -h or --help (before a "--") */
int cmd_wants_help(int argc, char **argv);
struct cmd_opt;
/* If argv asks for help: print usage, help text and the options (may be
 * NULL), return 1 (the command then returns 0). */
int cmd_help(const struct aim_cmd *c, int argc, char **argv, const struct cmd_opt *opts);
/* The same for a command whose options are a job's table (aim/job.h) */
struct aim_opt;
int cmd_help_job(const struct aim_cmd *c, int argc, char **argv, const struct aim_opt *t);

#endif
