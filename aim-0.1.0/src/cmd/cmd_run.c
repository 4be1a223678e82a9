/*
 * cmd_run.c - `aim run SCRIPT.lua [-- ARGS...]`: run a Lua script headless.
 * The script sees arg[0] = SCRIPT, arg[1..] = ARGS (also as `...`), as with
 * lua.c; print() goes to stdout, job progress to stderr. An uncaught error
 * prints "aim: <message>" and the traceback on stderr and exits with 1.
 * Ctrl-C interrupts the script (a debug hook, as lua.c does) and stops a
 * running job; a second Ctrl-C kills the process.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/engine.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

/* for the SIGINT handler only (a handler has no context argument) */
static aim_engine *volatile sigint_engine;

static void on_sigint(int sig)
{
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process */
    aim_engine_interrupt(sigint_engine);
}

static int run_exec(int argc, char **argv);

const struct aim_cmd cmd_run_entry = {
    .name = "run",
    .usage = "[--threads T] [--quiet] SCRIPT.lua [--] [ARGS...]",
    .summary = "run a Lua script headless (progress on stderr)",
    .help = "Runs SCRIPT.lua with the `aim` module preloaded. The script's arguments are in\n"
            "`arg` (arg[0] = SCRIPT, arg[1..] = ARGS) and in `...`. print() writes to\n"
            "stdout; job progress goes to stderr. An uncaught error prints `aim: MESSAGE`\n"
            "and a traceback, and the exit status is 1.",
    .exec = run_exec,
};

static int run_exec(int argc, char **argv)
{
    int threads = 0, quiet = 0, i = 1;
    /* options stop at the script: everything after it belongs to the script */
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: aim run %s\n\n%s\n\noptions:\n"
                   "  --threads T            threads for OpenMP and OpenBLAS\n"
                   "  --quiet, -q            no progress lines\n",
                   cmd_run_entry.usage, cmd_run_entry.help);
            return 0;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strncmp(a, "--threads", 9)) {
            const char *v = a[9] == '=' ? a + 10 : (a[9] == 0 && i + 1 < argc ? argv[++i] : NULL);
            char *end;
            long t = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || t < 1 || t > 4096)
                return cmd_fail("run: --threads expects a count in 1..4096");
            threads = (int)t;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else {
            return cmd_fail("run: unknown option \"%s\" (try `aim run --help`)", a);
        }
    }
    if (i >= argc)
        return cmd_fail("run: give a SCRIPT.lua (try `aim run --help`)");
    const char *script = argv[i++];
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    cmd_set_threads(threads);

    cmd_progress pr = {.tty = isatty(2), .quiet = quiet};
    aim_engine_hooks hooks = {.output = cmd_progress_output, .event = cmd_progress_event,
                              .ctx = &pr};
    aim_err e = {{0}};
    aim_engine *eng = aim_engine_new(&hooks, &e);
    if (!eng)
        return cmd_fail("%s", e.msg);
    sigint_engine = eng;
    signal(SIGINT, on_sigint);
    char *text = NULL;
    aim_eval_status st = aim_engine_run_file(eng, script, argc - i, argv + i, &text);
    signal(SIGINT, SIG_DFL);
    int rc = 0;
    if (st != AIM_EVAL_OK) {
        fflush(stdout);
        if (pr.open_line)
            fputc('\n', stderr);
        rc = cmd_fail("%s", text ? text : "error");
    }
    free(text);
    aim_engine_free(eng);
    sigint_engine = NULL;
    return rc;
}
