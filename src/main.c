/*
 * main.c - the `aim` command line: parses the command name and hands over to
 * the command's exec function (`aim` alone on a terminal is `aim tui`). See
 * shared DESIGN.md for the contract.
 *
 * Under mpirun (an MPI build, aim/dist.h) every rank runs the same command;
 * ranks other than 0 send stdout and stderr to /dev/null (AIM_ALL_RANKS=1
 * keeps them) except for cmd_fail's message, and a rank that exits with a
 * failure ends all the others (MPI_Abort) instead of leaving them waiting.
 */
#include "config.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/bf16.h"
#include "aim/model.h"
#include "aim/dist.h"
#include "aim/prof.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

static const struct aim_cmd *const cmd_table[] = {
    &cmd_info_entry,
    &cmd_train_entry,
    &cmd_loss_entry,
    &cmd_bench_entry,
    &cmd_export_entry,
    &cmd_probe_entry,
    &cmd_lora_entry,
    &cmd_finetune_entry,
    &cmd_runs_entry,
    &cmd_csv_entry,
    &cmd_run_entry,
    &cmd_repl_entry,
    &cmd_tui_entry,
    &cmd_options_entry,
    NULL,
};

/* where cmd_fail writes: stderr, or the saved stderr of a silenced rank */
static int fail_fd = -1;

int cmd_fail(const char *fmt, ...)
{
    fflush(stdout);
    /* the whole line in one write: under mpirun two ranks' messages would
     * otherwise interleave piece by piece */
    char line[2048];
    int at = snprintf(line, sizeof line, "aim: ");
    const aim_dist *world = aim_dist_world();
    if (world)
        at += snprintf(line + at, sizeof line - (size_t)at, "rank %d: ", world->rank);
    char msg[sizeof line];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* messages quote file contents (metadata, names): no terminal escapes */
    cmd_escape(line + at, sizeof line - 1 - (size_t)at, msg, 1);
    at += (int)strlen(line + at);
    line[at++] = '\n';
    fflush(stderr);
    int fd = fail_fd >= 0 ? fail_fd : 2;
    for (int off = 0; off < at;) {
        ssize_t w = write(fd, line + off, (size_t)(at - off));
        if (w <= 0)
            break;
        off += (int)w;
    }
    return 1;
}

/* ranks > 0 of an MPI run stay silent: rank 0 speaks for the job */
static void silence_rank(void)
{
    const char *all = getenv("AIM_ALL_RANKS");
    if (all && *all && strcmp(all, "0"))
        return;
    int null = open("/dev/null", O_WRONLY);
    int keep = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (null < 0 || keep < 0) {
        if (null >= 0)
            close(null);
        if (keep >= 0)
            close(keep);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    fail_fd = keep;
}

/* at exit: a failed rank waits (up to 20 s) for the others. When they all
 * failed together (the jobs agree on failures each step), every rank has
 * printed its own message and MPI ends normally; otherwise this rank ends
 * the whole job (MPI_Abort) so nobody waits for it forever. (Aborting at
 * once lost the first rank's message on a loaded machine.) */
static void dist_exit(int status, void *arg)
{
    if (status != 0 && aim_dist_meet(20.0) != 0)
        aim_dist_abort(status);
    aim_dist_finalize();
}

int cmd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
    }
    return 0;
}

int cmd_help(const struct aim_cmd *c, int argc, char **argv, const cmd_opt *opts)
{
    if (!cmd_wants_help(argc, argv))
        return 0;
    printf("usage: aim %s %s\n\n%s\n", c->name, c->usage, c->help);
    if (opts) {
        printf("\noptions:\n");
        cmd_print_opts(opts);
    }
    return 1;
}

int cmd_help_job(const struct aim_cmd *c, int argc, char **argv, const aim_opt *t)
{
    if (!cmd_wants_help(argc, argv))
        return 0;
    printf("usage: aim %s %s\n\n%s\n\noptions:\n", c->name, c->usage, c->help);
    cmd_print_job_opts(t);
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f, "aim %s - a terminal workbench for autoregressive image models (AIM; not\n"
               "AimStack's experiment tracker, which installs an `aim` command too)\n\n"
               "usage: aim COMMAND [ARGS...]\n\ncommands:\n",
            PACKAGE_VERSION);
    for (int i = 0; cmd_table[i]; i++)
        fprintf(f, "  %-8s %s\n", cmd_table[i]->name, cmd_table[i]->summary);
    fprintf(f, "\n`aim COMMAND --help` describes one command; `aim --version` prints the version.\n");
}

int main(int argc, char **argv)
{
    aim_err de = {{0}};
    if (aim_dist_init(&argc, &argv, &de) != 0)
        return cmd_fail("%s", de.msg);
    const aim_dist *world = aim_dist_world();
    if (world) {
        on_exit(dist_exit, NULL);
        if (world->rank > 0)
            silence_rank();
    } else {
        atexit(aim_dist_finalize); /* mpirun -np 1 */
    }
    if (argc < 2) {
        /* on a terminal: the TUI on the default experiment; elsewhere (scripts,
         * CI) the usage, so nothing ever waits for a screen nobody sees */
        if (isatty(0) && isatty(1)) {
            char *tui_argv[] = {"tui", NULL};
            return cmd_tui_entry.exec(1, tui_argv);
        }
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        const char *mpi = aim_dist_library();
        char tried[2048];
        char *samples = cmd_sample_path("pretrain.lua", tried, sizeof tried);
        /* another program is called aim too (AimStack's experiment tracker,
         * Python): the first line says which one this is */
        printf("aim %s - autoregressive image models workbench (C), not AimStack\n"
               "OpenBLAS: %s threads, core %s; MPI: %s\nsamples: %s\n",
               PACKAGE_VERSION, AIM_OPENBLAS_THREADS, aim_blas_core(), mpi ? mpi : "no",
               samples ? samples : "not found (set AIM_DATADIR)");
        aim_err be = {{0}};
        if (aim_bf16_check("--precision", &be) == 0)
            printf("bf16: yes (oneDNN, CPU ISA %s)\n", aim_bf16_isa());
        else
            printf("bf16: no (%s)\n", be.msg);
        aim_gemm fg;
        const char *why;
        if (aim_gemm_resolve(AIM_GEMM_AUTO, &fg, &why, &be) == 0)
            printf("fp32 GEMMs: %s (%s)\n", aim_gemm_name(fg), why);
        else
            printf("fp32 GEMMs: %s\n", be.msg);
        free(samples);
        return 0;
    }
    for (int i = 0; cmd_table[i]; i++) {
        const struct aim_cmd *c = cmd_table[i];
        if (strcmp(c->name, name))
            continue;
        return c->exec(argc - 1, argv + 1);
    }
    return cmd_fail("unknown command '%s' (try `aim --help`)", name);
}
