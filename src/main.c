/*
 * main.c - the `aim` command line: parses the command name and hands over to
 * the command's exec function (`aim` alone on a terminal is `aim tui`). See
 * shared DESIGN.md for the contract.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/opts.h"

static const struct aim_cmd *const cmd_table[] = {
    &cmd_info_entry,
    &cmd_train_entry,
    &cmd_loss_entry,
    &cmd_bench_entry,
    &cmd_export_entry,
    &cmd_probe_entry,
    &cmd_lora_entry,
    &cmd_runs_entry,
    &cmd_csv_entry,
    &cmd_run_entry,
    &cmd_repl_entry,
    &cmd_tui_entry,
    NULL,
};

int cmd_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("aim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
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

static void usage(FILE *f)
{
    fprintf(f, "aim %s - a terminal workbench for autoregressive image models (AIM)\n\n"
               "usage: aim COMMAND [ARGS...]\n\ncommands:\n",
            PACKAGE_VERSION);
    for (int i = 0; cmd_table[i]; i++)
        fprintf(f, "  %-8s %s\n", cmd_table[i]->name, cmd_table[i]->summary);
    fprintf(f, "\n`aim COMMAND --help` describes one command; `aim --version` prints the version.\n");
}

int main(int argc, char **argv)
{
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
        printf("aim %s (OpenBLAS: %s threads)\n", PACKAGE_VERSION, AIM_OPENBLAS_THREADS);
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
