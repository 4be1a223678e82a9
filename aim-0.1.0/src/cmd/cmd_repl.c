/*
 * cmd_repl.c - `aim repl`: a Lua console with readline, no curses.
 *
 * As lua.c: a line is tried as `return <line>` first so expressions print
 * their value; an incomplete statement (the "<eof>" syntax error) continues
 * on the next line with a ">> " prompt; errors print a traceback and the
 * session goes on; Ctrl-C while a command runs interrupts it (a debug hook
 * set from the SIGINT handler) and stops a running job, Ctrl-C at the prompt
 * clears the line, Ctrl-D leaves. Tab completes `aim.` names, methods after
 * `:` and globals (lua/aim/complete.lua). History persists in
 * $XDG_STATE_HOME/aim/history (default ~/.local/state/aim/history).
 *
 * Readline is driven through its callback interface from a select() loop,
 * so SIGINT at the prompt is a plain flag (no longjmp, no readline signal
 * handling). When stdin is not a terminal the console reads lines plainly,
 * without prompts (for pipes and tests).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "aim/dist.h"
#include "aim/engine.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/progress.h"

#define HISTORY_MAX 1000

typedef struct repl {
    aim_engine *eng;
    char *chunk;   /* lines of an incomplete statement so far, or NULL */
    int done;
    int tty;
} repl;

/* readline's callbacks and the SIGINT handler take no context: this is it */
static repl *the_repl;
static volatile sig_atomic_t got_sigint;
static volatile sig_atomic_t evaluating;

static void on_sigint(int sig)
{
    (void)sig;
    got_sigint = 1;
    if (evaluating && the_repl)
        aim_engine_interrupt(the_repl->eng);
}

/* Feed one line: run the statement it completes, or keep it for more.
 * Returns 1 when more lines are needed. */
static int feed(repl *r, const char *line)
{
    char *code = r->chunk ? aim_xasprintf("%s\n%s", r->chunk, line) : aim_xstrdup(line);
    free(r->chunk);
    r->chunk = NULL;
    if (!code[strspn(code, " \t")]) {
        free(code);
        return 0;
    }
    char *text = NULL;
    got_sigint = 0;
    evaluating = 1;
    aim_eval_status st = aim_engine_eval(r->eng, code, "=stdin", 1, &text);
    evaluating = 0;
    got_sigint = 0;
    if (st == AIM_EVAL_INCOMPLETE) {
        r->chunk = code;
        free(text);
        return 1;
    }
    if (r->tty)
        add_history(code);
    if (st == AIM_EVAL_OK && *text)
        printf("%s\n", text);
    fflush(stdout);
    if (st == AIM_EVAL_ERROR)
        fprintf(stderr, "%s\n", text);
    free(text);
    free(code);
    return 0;
}

/* --------------------------------------------------------- completion */

static char **cands;
static int ncands, next_cand;

static void free_cands(void)
{
    for (int i = 0; i < ncands; i++)
        free(cands[i]);
    free(cands);
    cands = NULL;
    ncands = next_cand = 0;
}

/* candidates for text from aim.complete (Lua), kept in cands */
static void find_cands(const char *text)
{
    free_cands();
    ncands = aim_engine_complete(the_repl->eng, text, &cands);
}

static char *next_match(const char *text, int state)
{
    (void)text;
    if (next_cand < ncands)
        return strdup(cands[next_cand++]); /* readline frees it */
    return NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* no file names */
    rl_completion_append_character = '\0';
    find_cands(text);
    char **m = rl_completion_matches(text, next_match);
    free_cands();
    return m;
}

/* ------------------------------------------------------------ loops */

static void on_line(char *line)
{
    repl *r = the_repl;
    if (!line) { /* Ctrl-D */
        r->done = 1;
        printf("\n");
        rl_callback_handler_remove();
        return;
    }
    int more = feed(r, line);
    free(line);
    rl_set_prompt(more ? ">> " : "> ");
}

static void cancel_line(repl *r)
{
    free(r->chunk);
    r->chunk = NULL;
    rl_free_line_state();
    rl_callback_sigcleanup();
    rl_replace_line("", 0);
    rl_set_prompt("> ");
    printf("\n");
    rl_on_new_line();
    rl_redisplay();
}

static void tty_loop(repl *r)
{
    rl_readline_name = "aim";
    rl_catch_signals = 0;
    rl_attempted_completion_function = complete;
    rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";
    char *hist = cmd_history_path();
    using_history();
    stifle_history(HISTORY_MAX);
    if (hist)
        read_history(hist);
    printf("aim %s console (%s) - help() to begin, Ctrl-D to leave\n", PACKAGE_VERSION,
           aim_lua_release());
    rl_callback_handler_install("> ", on_line);
    while (!r->done) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(0, &fds);
        if (select(1, &fds, NULL, NULL, NULL) < 0) {
            if (errno == EINTR && got_sigint) {
                got_sigint = 0;
                cancel_line(r);
            } else if (errno != EINTR) {
                break;
            }
            continue;
        }
        rl_callback_read_char();
    }
    if (!r->done)
        rl_callback_handler_remove();
    if (hist) {
        write_history(hist);
        history_truncate_file(hist, HISTORY_MAX);
        free(hist);
    }
}

static void pipe_loop(repl *r)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = 0;
        feed(r, line);
    }
    free(line);
    if (r->chunk)
        fprintf(stderr, "aim: repl: input ended inside an unfinished statement\n");
}

static int repl_exec(int argc, char **argv);

const struct aim_cmd cmd_repl_entry = {
    .name = "repl",
    .usage = "",
    .summary = "Lua console with readline (no curses)",
    .help = "A Lua 5.4 console with the `aim` module loaded as the global `aim`.\n"
            "Expressions print their value; unfinished statements continue on the next\n"
            "line; Tab completes names and methods; Ctrl-C interrupts the running command\n"
            "(and stops a training job); Ctrl-D leaves. History is kept in\n"
            "$XDG_STATE_HOME/aim/history (default ~/.local/state/aim/history).\n"
            "When stdin is not a terminal, lines are read without prompts or editing.",
    .exec = repl_exec,
};

static int repl_exec(int argc, char **argv)
{
    if (cmd_help(&cmd_repl_entry, argc, argv, NULL))
        return 0;
    if (argc > 1)
        return cmd_fail("repl: unexpected argument \"%s\" (try `aim repl --help`)", argv[1]);
    if (aim_dist_world())
        return cmd_fail("repl: the console runs in one process (under mpirun only rank 0 "
                        "would read it); use `aim run SCRIPT.lua`");
    cmd_progress pr = {.tty = isatty(2)};
    aim_engine_hooks hooks = {.output = cmd_progress_output, .event = cmd_progress_event,
                              .ctx = &pr};
    aim_err e = {{0}};
    repl r = {.tty = isatty(0)};
    r.eng = aim_engine_new(&hooks, &e);
    if (!r.eng)
        return cmd_fail("%s", e.msg);
    the_repl = &r;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: select() must see EINTR */
    sigaction(SIGINT, &sa, &old);
    if (r.tty)
        tty_loop(&r);
    else
        pipe_loop(&r);
    sigaction(SIGINT, &old, NULL);
    free(r.chunk);
    aim_engine_free(r.eng);
    the_repl = NULL;
    return 0;
}
