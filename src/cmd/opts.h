/*
 * opts.h - a table-driven `--name value` parser for the commands, so every
 * command validates its arguments the same way and its help lists them.
 */
#ifndef AIM_CMD_OPTS_H
#define AIM_CMD_OPTS_H

#include <stdint.h>

#include "aim/job.h"

enum { OPT_STR, OPT_INT, OPT_I64, OPT_FLOAT, OPT_FLAG, OPT_NOFLAG, OPT_LIST };

/* An option that may be given several times (OPT_LIST): each value in turn */
#define CMD_LIST_MAX 16
typedef struct cmd_list {
    const char *v[CMD_LIST_MAX];
    int n;
} cmd_list;

typedef struct cmd_opt {
    const char *name; /* without the leading "--" */
    int kind;
    void *dst;        /* char **, int *, int64_t *, float *, int * (flags set 1 / 0), cmd_list * */
    const char *arg;  /* "N", "PATH", ... (NULL for flags) */
    const char *help;
} cmd_opt;

/* Parse argv[1..]: options from the table (`--x v`, `--x=v`, flags), the
 * rest are positional (at most maxpos). "--" ends options. On error prints
 * "aim: CMD: ..." and returns 1. */
int cmd_parse(const char *cmd, int argc, char **argv, const cmd_opt *opts, char **pos,
              int *npos, int maxpos);
/* Print the option list (for --help texts) */
void cmd_print_opts(const cmd_opt *opts);

/* Parse argv[1..] against a job's option table (aim/job.h) into spec:
 * --name value, --name=value, a true/false option as --name or --no-name.
 * The rest is positional (at most maxpos). Prints "aim: CMD: ..." and returns
 * 1 on error. */
int cmd_parse_job(const char *cmd, int argc, char **argv, const aim_opt *t, void *spec,
                  char **pos, int *npos, int maxpos);
/* The command-line options of a job table, for --help */
void cmd_print_job_opts(const aim_opt *t);

#endif
