/*
 * cmd.h - the command table of the `aim` binary: one command per file, each
 * exporting one const struct aim_cmd (tmux style), listed in main.c.
 * Commands may print; they return the process exit status.
 */
#ifndef AIM_CMD_H
#define AIM_CMD_H

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
extern const struct aim_cmd cmd_runs_entry;
extern const struct aim_cmd cmd_csv_entry;
extern const struct aim_cmd cmd_run_entry;
extern const struct aim_cmd cmd_repl_entry;
extern const struct aim_cmd cmd_tui_entry;
extern const struct aim_cmd cmd_options_entry;

/* Print "aim: <message>" on stderr and return 1. */
int cmd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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
