/*
 * tui.c - the TUI's main loop (tui.h). The main thread owns the terminal
 * and the console; the engine thread runs the script, its jobs and every
 * console line. The loop never waits for the engine: it poll()s the
 * keyboard, a wake-up pipe the engine writes to (hooks.wake), and a pipe
 * that stands in for fds 1 and 2 while the screen is up (so io.write, C
 * libraries and the script's stderr notices land in the console instead of
 * tearing the screen). Each turn it takes the engine's replies
 * (aim_engine_poll), copies the snapshot, the board and the inspection
 * when they changed, handles keys, and draws at most every 50 ms. The
 * Inspect view (i) takes the place of the loss, probe and reconstruction
 * panels while it is on. Runs compared with aim.compare (`aim tui --compare`
 * runs lua/aim/compare.lua instead of a script) are drawn over the loss and
 * probe panels.
 *
 * Key bindings come from Lua (lua/aim/keys.lua and the user's init.lua):
 * screen actions run here at once; Lua functions are sent to the engine as
 * `aim.ui.press(key)` and their answer shows on the message line.
 *
 * tui_run is tui_open (the engine with init.lua and the bindings, the
 * screen, fds 1 and 2 captured, signals, the console, the script), tui_loop,
 * and tui_close, which undoes any part of tui_open (it is also tui_open's
 * way back when the engine or the terminal cannot be had).
 *
 * Ways out, each restoring the terminal: q (asks while a job runs: save a
 * checkpoint and quit, quit without saving, or keep going), SIGTERM /
 * SIGHUP / SIGINT (stop the job as `aim train` does, with a checkpoint when
 * it has a run folder, then quit), a fatal signal (terminal restored from
 * the handler, then the default action), exit() anywhere (atexit).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aim/plot.h"
#include "aim/engine.h"
#include "ui/console.h"
#include "ui/screen.h"
#include "ui/tui.h"
#include "ui/ui.h"

#define MAX_KEYS 128
#define MAX_PENDING 256
#define FRAME_S 0.05

typedef struct binding {
    char key[24];
    char action[24]; /* a screen action, or "lua" */
    char note[160];
} binding;

typedef enum ticket_kind {
    T_SCRIPT, T_CONSOLE, T_KEY, T_COMPLETE, T_KEYS, T_QUIT, T_SETUP,
} ticket_kind;

typedef struct pending {
    int64_t ticket;
    ticket_kind kind;
    char word[256]; /* T_COMPLETE: the word; T_KEY: the key */
} pending;

enum { OV_NONE = 0, OV_HELP, OV_QUIT };

typedef struct tui {
    aim_engine *eng;
    ui_view v;
    binding keys[MAX_KEYS];
    int nkeys;
    long keys_version;
    pending pend[MAX_PENDING];
    int npend;
    int overlay;
    int help_top;
    int quitting;
    double quit_since;
    int interrupted_quit;
    int64_t msgs_seen;
    double sticky_until;   /* the user's own message holds the line until then */
    int dirty;
    double last_draw;
    /* the engine's print() output, from its thread */
    pthread_mutex_t mu;
    char *out;
    size_t outlen, outcap, out_dropped;
    atomic_int quit_asked;  /* aim.quit / os.exit from Lua (engine thread) */
    /* file descriptors (-1: not open) */
    int wake_r, wake_w, cap_r, tty_fd, saved_out, saved_err;
    int signals_on;         /* install_signals() ran */
} tui;

/* signals: flags and the wake-up pipe's write end (handlers take no context) */
static volatile sig_atomic_t got_stop_signal;
static volatile sig_atomic_t signal_wake_fd = -1;

/* ------------------------------------------------------------ signals */

static void on_stop_signal(int sig)
{
    (void)sig;
    got_stop_signal = 1;
    int fd = signal_wake_fd;
    if (fd >= 0 && write(fd, "s", 1) < 0)
        got_stop_signal = 1;
}

static void on_fatal_signal(int sig)
{
    screen_emergency_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(int wake_fd)
{
    signal_wake_fd = wake_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        sigaction(fatal[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void restore_signals(void)
{
    int all[] = {SIGTERM, SIGHUP, SIGINT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        signal(all[i], SIG_DFL);
    signal_wake_fd = -1;
}

/* ------------------------------------------------------------ engine hooks */

/* output waiting for the screen beyond this is dropped (and counted): a
 * loop printing faster than the screen draws cannot eat the memory */
#define OUT_PENDING_MAX (1u << 20)

static void hook_output(void *ctx, const char *text, size_t len)
{
    tui *t = ctx;
    pthread_mutex_lock(&t->mu);
    if (t->outlen + len > OUT_PENDING_MAX) {
        size_t room = t->outlen < OUT_PENDING_MAX ? OUT_PENDING_MAX - t->outlen : 0;
        t->out_dropped += len - room;
        len = room;
    }
    if (t->outlen + len + 1 > t->outcap) {
        t->outcap = (t->outlen + len + 1) * 2;
        t->out = aim_xrealloc(t->out, t->outcap);
    }
    memcpy(t->out + t->outlen, text, len);
    t->outlen += len;
    t->out[t->outlen] = 0;
    pthread_mutex_unlock(&t->mu);
}

static void hook_wake(void *ctx);

/* aim.quit / os.exit in the console or the script: the quit key's
 * question, asked by the main loop */
static void hook_quit(void *ctx, int code)
{
    tui *t = ctx;
    (void)code;
    atomic_store(&t->quit_asked, 1);
    hook_wake(ctx);
}

static void hook_wake(void *ctx)
{
    tui *t = ctx;
    /* a full pipe (EAGAIN) already holds a wake-up: nothing is lost */
    ssize_t n = write(t->wake_w, "w", 1);
    (void)n;
}

/* ------------------------------------------------------------ requests */

static void lua_quote(const char *s, char *out, size_t len)
{
    size_t o = 0;
    out[o++] = '"';
    for (; *s && o + 6 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, len - o, "\\%c", c);
        else if (c < 32 || c == 127)
            o += (size_t)snprintf(out + o, len - o, "\\%03d", c);
        else
            out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = 0;
}

static void track(tui *t, int64_t ticket, ticket_kind kind, const char *word)
{
    if (t->npend == MAX_PENDING)
        return; /* its reply is then shown as console output */
    pending *p = &t->pend[t->npend++];
    p->ticket = ticket;
    p->kind = kind;
    snprintf(p->word, sizeof p->word, "%s", word ? word : "");
}

static void submit(tui *t, const char *code, int repl, ticket_kind kind, const char *word)
{
    track(t, aim_engine_submit(t->eng, code, repl), kind, word);
}

static int pending_of(tui *t, ticket_kind kind)
{
    int n = 0;
    for (int i = 0; i < t->npend; i++)
        n += t->pend[i].kind == kind;
    return n;
}

/* the console's callbacks */
static void con_submit(void *ctx, const char *code)
{
    tui *t = ctx;
    submit(t, code, 1, T_CONSOLE, NULL);
    console_set_busy(t->v.con, 1);
}

static void con_complete(void *ctx, const char *word)
{
    tui *t = ctx;
    char q[600], code[800];
    lua_quote(word, q, sizeof q);
    snprintf(code, sizeof code, "return table.concat(require('aim.complete')(%s), '\\n')", q);
    submit(t, code, 0, T_COMPLETE, word);
}

static void con_interrupt(void *ctx)
{
    tui *t = ctx;
    aim_engine_interrupt(t->eng);
    console_print(t->v.con, UI_MSG, "(interrupting; a job that runs stops too)");
}

/* ------------------------------------------------------------ messages */

static void set_message(tui *t, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_message(tui *t, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->v.message, sizeof t->v.message, fmt, ap);
    va_end(ap);
    char *nl = strchr(t->v.message, '\n');
    if (nl)
        *nl = 0;
    t->v.message_error = error;
    t->v.message_time = aim_now();
    t->dirty = 1;
}

/* a message the user caused (a key's answer, an error in their line):
 * routine job messages do not replace it for a few seconds */
static void user_message(tui *t, int error, const char *text)
{
    set_message(t, error, "%s", text);
    t->sticky_until = aim_now() + 6;
}

static int looks_bad(const char *m)
{
    return strstr(m, "FAILED") || strstr(m, "failed") || strstr(m, "error") ||
           strstr(m, "cannot");
}

/* new board messages go to the message line and the console */
static void take_messages(tui *t)
{
    const aim_board *b = t->v.board;
    int64_t from = t->msgs_seen;
    if (from < b->nmsg - AIM_MSG_MAX)
        from = b->nmsg - AIM_MSG_MAX;
    for (int64_t k = from; k < b->nmsg; k++) {
        const char *m = b->msg[k % AIM_MSG_MAX];
        char line[AIM_MSG_LEN + 8];
        snprintf(line, sizeof line, "%s %s", screen_unicode() ? "\u00b7" : "*", m);
        /* periodic validation lines would flood the console: the message
         * line and the plot show them */
        if (!strstr(m, ": validation loss "))
            console_print(t->v.con, looks_bad(m) ? UI_ERROR : UI_DIM, line);
        if (aim_now() >= t->sticky_until)
            set_message(t, looks_bad(m), "%s", m);
    }
    t->msgs_seen = b->nmsg;
}

/* ------------------------------------------------------------ key bindings */

/* "version\nkey\taction\tnote\n..." from aim.ui.export() */
static void parse_bindings(tui *t, const char *text)
{
    if (!text || !*text)
        return;
    char *copy = aim_xstrdup(text), *save = NULL;
    char *ln = strtok_r(copy, "\n", &save);
    if (!ln) {
        free(copy);
        return;
    }
    t->keys_version = strtol(ln, NULL, 10);
    t->nkeys = 0;
    while ((ln = strtok_r(NULL, "\n", &save)) != NULL && t->nkeys < MAX_KEYS) {
        char *tab1 = strchr(ln, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab2)
            continue;
        *tab1 = *tab2 = 0;
        binding *b = &t->keys[t->nkeys++];
        snprintf(b->key, sizeof b->key, "%s", ln);
        snprintf(b->action, sizeof b->action, "%s", tab1 + 1);
        snprintf(b->note, sizeof b->note, "%s", tab2 + 1);
    }
    free(copy);
}

static const binding *find_binding(const tui *t, const char *key)
{
    for (int i = 0; i < t->nkeys; i++)
        if (!strcmp(t->keys[i].key, key))
            return &t->keys[i];
    return NULL;
}

/* how the help shows a key name: "Space", "PgUp", "Ctrl-L", "F1" */
static const char *key_label(const char *key, char *buf, size_t len)
{
    static const char *const names[][2] = {
        {"space", "Space"}, {"tab", "Tab"}, {"esc", "Esc"}, {"enter", "Enter"},
        {"pgup", "PgUp"}, {"pgdn", "PgDn"}, {"backspace", "Backspace"}, {"up", "Up"},
        {"down", "Down"}, {"left", "Left"}, {"right", "Right"}, {"home", "Home"}, {"end", "End"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(key, names[i][0]))
            return names[i][1];
    if (key[0] == 'C' && key[1] == '-' && key[2] && !key[3])
        snprintf(buf, len, "Ctrl-%c", key[2] - 'a' + 'A');
    else if (key[0] == 'f' && key[1] >= '1' && key[1] <= '9')
        snprintf(buf, len, "F%s", key + 1);
    else
        snprintf(buf, len, "%s", key);
    return buf;
}

/* ------------------------------------------------------------ replies */

static void handle_reply(tui *t, aim_reply *r)
{
    pending p = {.ticket = r->ticket, .kind = T_CONSOLE};
    for (int i = 0; i < t->npend; i++)
        if (t->pend[i].ticket == r->ticket) {
            p = t->pend[i];
            t->pend[i] = t->pend[--t->npend];
            break;
        }
    const char *text = r->text ? r->text : "";
    switch (p.kind) {
    case T_SCRIPT:
        if (r->status == AIM_EVAL_OK) {
            t->v.script = UI_SCRIPT_DONE;
            if (*text)
                console_print(t->v.con, UI_NORMAL, text);
            if (t->v.script_name[0] && !strncmp(t->v.script_name, "inspect ", 8))
                set_message(t, 0, "the maps are ready ([ ] < > m h: image, block, map, head; "
                                  "q quits)");
            else if (!strncmp(t->v.script_name, "compare ", 8))
                set_message(t, 0, "the runs are compared (l: log axis, + -: smoothing; "
                                  "aim.compare{...} shows others; q quits)");
            else
                set_message(t, 0, "the script has finished; the console stays (q quits)");
        } else {
            t->v.script = UI_SCRIPT_FAILED;
            char *cut = strstr(r->text, "\n\tconsole:"); /* the wrapper running it */
            if (cut)
                *cut = 0;
            console_print(t->v.con, UI_ERROR, "the script failed:");
            console_print(t->v.con, UI_ERROR, text);
            set_message(t, 1, "the script failed: %s (traceback in the console)", text);
        }
        break;
    case T_CONSOLE:
        if (r->status == AIM_EVAL_OK) {
            if (*text)
                console_print(t->v.con, UI_NORMAL, text);
        } else {
            /* the traceback down to the console line: what called it (a
             * job between two steps, the engine) is not the user's code */
            char *cut = strstr(r->text, "\n\t[C]: in ?");
            if (cut)
                *cut = 0;
            console_print(t->v.con, UI_ERROR, r->text);
            char m[AIM_MSG_LEN];
            snprintf(m, sizeof m, "error: %s", r->text);
            user_message(t, 1, m);
        }
        if (pending_of(t, T_CONSOLE) == 0)
            console_set_busy(t->v.con, 0);
        {
            /* bindings may have changed (aim.ui.bind in the console) */
            char code[96];
            snprintf(code, sizeof code, "return aim.ui.export(%ld)", t->keys_version);
            submit(t, code, 0, T_KEYS, NULL);
        }
        break;
    case T_KEY:
        if (r->status != AIM_EVAL_OK) {
            char m[AIM_MSG_LEN + 300];
            console_print(t->v.con, UI_ERROR, text);
            snprintf(m, sizeof m, "%s: %s", p.word, text);
            user_message(t, 1, m);
        } else if (!strncmp(text, "nil\t", 4)) {
            user_message(t, 1, text + 4);
        } else if (*text) {
            user_message(t, 0, text);
        }
        break;
    case T_COMPLETE:
        if (r->status == AIM_EVAL_OK)
            console_completions(t->v.con, p.word, text);
        break;
    case T_KEYS:
        if (r->status == AIM_EVAL_OK)
            parse_bindings(t, text);
        break;
    case T_QUIT:
    case T_SETUP:
        if (r->status != AIM_EVAL_OK)
            console_print(t->v.con, UI_ERROR, text);
        break;
    }
    t->dirty = 1;
}

/* ------------------------------------------------------------ panels */

/* where a panel goes; layout() gives each place its rectangle for the
 * frame (h = 0: not shown) */
typedef enum place {
    AT_TOP,     /* the status line */
    AT_MIDDLE,  /* all between the status and the message line (Inspect view) */
    AT_PLOT,    /* the middle's upper left */
    AT_FIGURE,  /* the same place, while the figure view is shown */
    AT_SIDE,    /* the middle's upper right, after a rule */
    AT_BELOW,   /* the middle's lower part */
    AT_MESSAGE, /* the message line */
    AT_CONSOLE, /* the bottom rows */
    N_PLACES
} place;

/* every panel, in the order they are drawn and offered screen actions */
static const struct {
    const ui_panel *panel;
    place at;
} panels[] = {
    {&panel_status, AT_TOP},   {&panel_inspect, AT_MIDDLE}, {&panel_loss, AT_PLOT},
    {&panel_figure, AT_FIGURE}, {&panel_probe, AT_SIDE},    {&panel_recon, AT_BELOW},
    {&panel_message, AT_MESSAGE}, {&panel_console, AT_CONSOLE},
};
#define N_PANELS (sizeof panels / sizeof panels[0])

/* ------------------------------------------------------------ actions */

static void begin_quit(tui *t, int save)
{
    t->overlay = OV_NONE;
    if (t->v.snap.state == AIM_JOB_IDLE) {
        t->quitting = 2; /* nothing to wait for */
        return;
    }
    submit(t, save ? "return aim.stop()" : "return aim.stop{save = false}", 0, T_QUIT, NULL);
    t->quitting = 1;
    t->quit_since = aim_now();
    set_message(t, 0, "%s", save && t->v.board->can_checkpoint
                                ? "stopping the job (saving a checkpoint), then quitting..."
                                : "stopping the job, then quitting...");
}

/* the screen actions tui.c handles itself (the panels' own come first:
 * run_action); "lua" is a key bound to a Lua function */
static int act_lua(tui *t, const binding *b)
{
    char q[64], code[160];
    lua_quote(b->key, q, sizeof q);
    snprintf(code, sizeof code, "return aim.ui.press(%s)", q);
    submit(t, code, 0, T_KEY, b->key);
    return UI_HANDLED;
}

static int act_quit(tui *t, const binding *b)
{
    (void)b;
    if (t->v.snap.state == AIM_JOB_IDLE)
        return UI_QUIT;
    if (t->v.snap.follow != AIM_FOLLOW_NONE) { /* another process's run: nothing to save */
        begin_quit(t, 0);
        return UI_HANDLED | UI_REDRAW;
    }
    t->overlay = OV_QUIT;
    return UI_HANDLED | UI_REDRAW;
}

static int act_help(tui *t, const binding *b)
{
    (void)b;
    t->overlay = t->overlay == OV_HELP ? OV_NONE : OV_HELP;
    t->help_top = 0;
    return UI_HANDLED | UI_REDRAW;
}

static int act_console(tui *t, const binding *b)
{
    (void)b;
    t->v.focus_console = 1;
    return UI_HANDLED | UI_REDRAW;
}

static int act_back(tui *t, const binding *b)
{
    (void)b;
    t->overlay = OV_NONE;
    t->v.focus_console = 0;
    return UI_HANDLED | UI_REDRAW;
}

static int act_pause(tui *t, const binding *b)
{
    (void)b;
    if (t->v.snap.state == AIM_JOB_IDLE)
        set_message(t, 0, "no job is running");
    else if (aim_engine_pause(t->eng))
        set_message(t, 0, "pausing at the end of this step...");
    else if (aim_engine_resume(t->eng))
        set_message(t, 0, "resuming...");
    return UI_HANDLED | UI_REDRAW;
}

static int act_redraw(tui *t, const binding *b)
{
    (void)t;
    (void)b;
    screen_invalidate();
    return UI_HANDLED | UI_REDRAW;
}

static int act_scroll_up(tui *t, const binding *b)
{
    (void)b;
    console_scroll(t->v.con, 5);
    return UI_HANDLED | UI_REDRAW;
}

static int act_scroll_down(tui *t, const binding *b)
{
    (void)b;
    console_scroll(t->v.con, -5);
    return UI_HANDLED | UI_REDRAW;
}

static int act_figure(tui *t, const binding *b)
{
    (void)b;
    if (!t->v.fig) {
        set_message(t, 0, "no figure yet: a script shows one with aim.plot{show = true, ...}");
        return UI_HANDLED | UI_REDRAW;
    }
    t->v.show_fig = !t->v.show_fig;
    return UI_HANDLED | UI_RELAYOUT | UI_REDRAW;
}

static const struct {
    const char *name;
    int (*run)(tui *t, const binding *b); /* returns UI_* bits */
} actions[] = {
    {"figure", act_figure},
    {"lua", act_lua},
    {"quit", act_quit},
    {"help", act_help},
    {"console", act_console},
    {"back", act_back},
    {"pause", act_pause},
    {"redraw", act_redraw},
    {"scroll_up", act_scroll_up},
    {"scroll_down", act_scroll_down},
};

/* the panels first (the Inspect view takes "back" while it is on; none
 * takes "lua"), then the table above */
static int run_action(tui *t, const binding *b)
{
    for (size_t i = 0; i < N_PANELS; i++)
        if (panels[i].panel->action) {
            int r = panels[i].panel->action(&t->v, b->action);
            if (r)
                return r;
        }
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(b->action, actions[i].name))
            return actions[i].run(t, b);
    set_message(t, 1, "%s: unknown screen action '%s'", b->key, b->action);
    return UI_HANDLED | UI_REDRAW;
}

static int handle_key(tui *t, const ui_key *k)
{
    if (k->kind == UI_KEY_RESIZE) {
        /* repaint every cell: a frame drawn between the terminal's resize
         * and this key was drawn at the old size (lines past the new right
         * edge may have wrapped or scrolled), so what curses believes is on
         * the screen is no longer what is there */
        screen_invalidate();
        return UI_RELAYOUT | UI_REDRAW;
    }
    if (k->kind == UI_KEY_CHAR && k->ch == 26) { /* Ctrl-Z */
        screen_suspend();
        return UI_REDRAW;
    }
    char name[32];
    ui_key_name(k, name, sizeof name);
    if (t->overlay == OV_HELP) {
        if (k->kind == UI_KEY_FN && (k->fn == UI_K_DOWN || k->fn == UI_K_PGDN))
            t->help_top += k->fn == UI_K_DOWN ? 1 : 10;
        else if (k->kind == UI_KEY_FN && (k->fn == UI_K_UP || k->fn == UI_K_PGUP))
            t->help_top -= k->fn == UI_K_UP ? 1 : 10;
        else
            t->overlay = OV_NONE;
        if (t->help_top < 0)
            t->help_top = 0;
        return UI_REDRAW;
    }
    if (t->overlay == OV_QUIT) {
        if (!strcmp(name, "y") || !strcmp(name, "Y"))
            begin_quit(t, 1);
        else if (!strcmp(name, "n") || !strcmp(name, "N"))
            begin_quit(t, 0);
        else
            t->overlay = OV_NONE;
        return UI_REDRAW;
    }
    if (t->quitting && !strcmp(name, "q")) /* q again: do not wait */
        return UI_QUIT;
    if (t->v.focus_console && !(k->kind == UI_KEY_FN && k->fn > UI_K_F0)) {
        int r = console_key(t->v.con, k);
        if (r & UI_LEAVE)
            t->v.focus_console = 0;
        if (r)
            return r | UI_REDRAW;
        if (!strcmp(name, "C-l")) {
            screen_invalidate();
            return UI_REDRAW;
        }
        return 0;
    }
    if (!name[0])
        return 0;
    if (!strcmp(name, "C-c")) {
        set_message(t, 0, "Ctrl-C: q quits; in the console Ctrl-C clears the line or "
                          "interrupts what runs");
        return UI_REDRAW;
    }
    const binding *b = find_binding(t, name);
    if (!b) {
        set_message(t, 0, "%s is not bound to anything (? lists the keys)", name);
        return UI_REDRAW;
    }
    return run_action(t, b) | UI_REDRAW;
}

/* ------------------------------------------------------------ drawing */

static void draw_box(ui_rect r, const char *title)
{
    screen_fill(r, UI_OVERLAY);
    int uni = screen_unicode();
    for (int x = r.x; x < r.x + r.w; x++) {
        screen_glyph(r.y, x, uni ? 0x2500 : '-', UI_OVERLAY);
        screen_glyph(r.y + r.h - 1, x, uni ? 0x2500 : '-', UI_OVERLAY);
    }
    for (int y = r.y; y < r.y + r.h; y++) {
        screen_glyph(y, r.x, uni ? 0x2502 : '|', UI_OVERLAY);
        screen_glyph(y, r.x + r.w - 1, uni ? 0x2502 : '|', UI_OVERLAY);
    }
    screen_glyph(r.y, r.x, uni ? 0x250c : '+', UI_OVERLAY);
    screen_glyph(r.y, r.x + r.w - 1, uni ? 0x2510 : '+', UI_OVERLAY);
    screen_glyph(r.y + r.h - 1, r.x, uni ? 0x2514 : '+', UI_OVERLAY);
    screen_glyph(r.y + r.h - 1, r.x + r.w - 1, uni ? 0x2518 : '+', UI_OVERLAY);
    screen_putf(r.y, r.x + 2, r.w - 4, UI_KEY, " %s ", title);
}

static const char *const console_help[] = {
    "Enter runs a line (>> continues it), Tab completes, Up/Down: history",
    "Ctrl-C clears the line or interrupts it; PgUp/PgDn scroll; Esc leaves",
    "Lua: pause() resume() stop() lr(x) save() probe() recon() aim.ui.bind()",
};
#define N_CONSOLE_HELP ((int)(sizeof console_help / sizeof console_help[0]))

/* help rows: bindings in table order, neighbours with the same screen
 * action on one row ("? F1"); into rows[] (indices of their first key) */
static int help_rows(const tui *t, int *first, int *count)
{
    int n = 0;
    for (int i = 0; i < t->nkeys; i++) {
        if (n > 0 && strcmp(t->keys[i].action, "lua") != 0 &&
            !strcmp(t->keys[i].action, t->keys[first[n - 1]].action)) {
            count[n - 1]++;
            continue;
        }
        first[n] = i;
        count[n] = 1;
        n++;
    }
    return n;
}

static void draw_help(tui *t, int rows, int cols)
{
    int first[MAX_KEYS], count[MAX_KEYS];
    int nb = help_rows(t, first, count);
    int nlines = nb + 2 + N_CONSOLE_HELP;
    int w = cols - 2 < 82 ? cols - 2 : 82, h = nlines + 2 < rows ? nlines + 2 : rows;
    if (w < 20 || h < 5)
        return;
    ui_rect r = {(rows - h) / 2, (cols - w) / 2, h, w};
    draw_box(r, "keys (any key closes, arrows scroll)");
    int inner = h - 2;
    if (t->help_top > nlines - inner)
        t->help_top = nlines - inner > 0 ? nlines - inner : 0;
    for (int i = t->help_top, row = 0; i < nlines && row < inner; i++, row++) {
        int y = r.y + 1 + row;
        if (i < nb) {
            char keys[64] = "";
            for (int j = 0; j < count[i]; j++) {
                size_t at = strlen(keys);
                char lb[32];
                snprintf(keys + at, sizeof keys - at, "%s%s", j ? " " : "",
                         key_label(t->keys[first[i] + j].key, lb, sizeof lb));
            }
            screen_put(y, r.x + 2, 9, UI_KEY, keys);
            screen_put(y, r.x + 12, w - 14, UI_OVERLAY, t->keys[first[i]].note);
        } else if (i == nb + 1) {
            screen_put(y, r.x + 2, w - 4, UI_KEY, "In the console");
        } else if (i > nb + 1) {
            screen_put(y, r.x + 2, w - 3, UI_OVERLAY, console_help[i - nb - 2]);
        }
    }
    if (t->help_top + inner < nlines)
        screen_put(r.y + h - 1, r.x + w - 10, 8, UI_KEY, " more ");
}

static void draw_quit(tui *t, int rows, int cols)
{
    int w = cols - 4 < 64 ? cols - 4 : 64, h = 6;
    ui_rect r = {(rows - h) / 2, (cols - w) / 2, h, w};
    draw_box(r, "quit?");
    char l[160];
    snprintf(l, sizeof l, "A job is running (step %lld of %lld).",
             (long long)t->v.snap.step.step, (long long)t->v.snap.step.total);
    screen_put(r.y + 1, r.x + 2, w - 4, UI_OVERLAY, l);
    if (t->v.board->can_checkpoint) {
        screen_put(r.y + 2, r.x + 2, w - 4, UI_OVERLAY, "y  save a checkpoint, then quit");
        screen_put(r.y + 3, r.x + 2, w - 4, UI_OVERLAY, "n  quit without saving");
    } else {
        screen_put(r.y + 2, r.x + 2, w - 4, UI_OVERLAY, "y  stop it and quit (it has no run folder to save to)");
        screen_put(r.y + 3, r.x + 2, w - 4, UI_OVERLAY, "n  the same");
    }
    screen_put(r.y + 4, r.x + 2, w - 4, UI_OVERLAY, "Esc  keep going");
}

/* the places of a rows x cols frame (at least 8 x 30): the status line on
 * top, the console at the bottom (taller while it has the focus), the
 * message line above it, and between them the Inspect view, or the loss
 * plot, the probe beside it (from 60 columns) and the reconstructions
 * below (from 12 rows; none while finished runs are compared) */
static void layout(const ui_view *v, int rows, int cols, ui_rect at[N_PLACES])
{
    for (int i = 0; i < N_PLACES; i++)
        at[i] = (ui_rect){0, 0, 0, 0};
    int con_h = rows <= 24 ? 5 : rows / 4 > 12 ? 12 : rows / 4;
    if (v->focus_console)
        con_h += rows > 30 ? 4 : 3;
    int msg_row = rows - con_h - 1;
    int mid_h = msg_row - 1;
    at[AT_TOP] = (ui_rect){0, 0, 1, cols};
    at[AT_MESSAGE] = (ui_rect){msg_row, 0, 1, cols};
    at[AT_CONSOLE] = (ui_rect){msg_row + 1, 0, con_h, cols};
    if (mid_h < 4)
        return;
    if (v->inspect) {
        at[AT_MIDDLE] = (ui_rect){1, 0, mid_h, cols};
        return;
    }
    int rec_h = mid_h >= 12 ? mid_h * 2 / 5 : 0;
    if (v->cmp->n > 0 && v->board->recon.n == 0)
        rec_h = 0; /* comparing finished runs: the curves take the room */
    int top_h = mid_h - rec_h;
    int probe_w = cols >= 60 ? (cols * 3 / 10 < 24 ? 24 : cols * 3 / 10 > 44 ? 44 : cols * 3 / 10)
                             : 0;
    int loss_w = probe_w ? cols - probe_w - 1 : cols;
    at[v->fig && v->show_fig ? AT_FIGURE : AT_PLOT] = (ui_rect){1, 0, top_h, loss_w};
    if (probe_w)
        at[AT_SIDE] = (ui_rect){1, loss_w + 1, top_h, probe_w};
    if (rec_h > 0)
        at[AT_BELOW] = (ui_rect){1 + top_h, 0, rec_h, cols};
}

static void draw(tui *t)
{
    int rows, cols;
    screen_size(&rows, &cols);
    screen_erase();
    screen_cursor(-1, 0);
    t->v.now = aim_now();
    if (rows < 8 || cols < 30) {
        screen_put(0, 0, cols, UI_ERROR, "aim: the terminal is too small");
        screen_flush();
        return;
    }
    ui_rect at[N_PLACES];
    layout(&t->v, rows, cols, at);
    /* the rule before the side panel (first: the console's drawing puts the
     * cursor where it types, and every glyph moves it) */
    const ui_rect side = at[AT_SIDE];
    for (int y = side.y; y < side.y + side.h; y++)
        screen_glyph(y, side.x - 1, screen_unicode() ? 0x2502 : '|', UI_AXIS);
    for (size_t i = 0; i < N_PANELS; i++)
        if (at[panels[i].at].h > 0)
            panels[i].panel->draw(&t->v, at[panels[i].at]);
    if (t->overlay == OV_HELP) {
        screen_cursor(-1, 0);
        draw_help(t, rows, cols);
    } else if (t->overlay == OV_QUIT) {
        screen_cursor(-1, 0);
        draw_quit(t, rows, cols);
    }
    screen_flush();
    t->last_draw = aim_now();
    t->dirty = 0;
}

/* ------------------------------------------------------------ I/O */

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

/* captured fds 1 and 2 -> console, whole lines (a partial one waits) */
static void take_captured(tui *t, char *part, size_t *plen, size_t cap)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(t->cap_r, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || *plen + 1 >= cap) {
                part[*plen] = 0;
                console_print(t->v.con, UI_DIM, part);
                if (!strncmp(part, "aim: ", 5)) /* a notice, e.g. the synthetic fallback */
                    user_message(t, 0, part + 5);
                *plen = 0;
                if (buf[i] == '\n')
                    continue;
            }
            part[(*plen)++] = buf[i];
        }
        t->dirty = 1;
    }
}

static void take_output(tui *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->outlen == 0) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    char *text = t->out;
    size_t dropped = t->out_dropped;
    t->out = NULL;
    t->outlen = t->outcap = t->out_dropped = 0;
    pthread_mutex_unlock(&t->mu);
    size_t n = strlen(text);
    if (n > 0 && text[n - 1] == '\n')
        text[n - 1] = 0;
    console_print(t->v.con, UI_NORMAL, text);
    /* a notice written by Lua (io.stderr:write("aim: note: ...")), e.g. the
     * synthetic-data fallback, also goes to the message line, as one from
     * the captured descriptors does */
    for (const char *ln = text; ln && *ln;) {
        const char *nl = strchr(ln, '\n');
        if (!strncmp(ln, "aim: ", 5)) {
            int len = (int)(nl ? (size_t)(nl - ln) : strlen(ln)) - 5;
            char m[512];
            snprintf(m, sizeof m, "%.*s", len, ln + 5);
            user_message(t, 0, m);
        }
        ln = nl ? nl + 1 : NULL;
    }
    free(text);
    if (dropped) {
        char note[96];
        snprintf(note, sizeof note, "\u2026 %zu more bytes of output dropped", dropped);
        console_print(t->v.con, UI_DIM, note);
    }
    t->dirty = 1;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ------------------------------------------------------------ the run */

static char *script_chunk(const tui_opts *o)
{
    if (o->ncompare > 0) { /* the comparison module, no script */
        size_t cap = 128;
        for (int i = 0; i < o->ncompare; i++)
            cap += 4 * strlen(o->compare[i]) + 8;
        char *code = aim_xmalloc(cap), *q = aim_xmalloc(cap);
        size_t at = (size_t)snprintf(code, cap, "local runs = {");
        for (int i = 0; i < o->ncompare; i++) {
            lua_quote(o->compare[i], q, cap);
            at += (size_t)snprintf(code + at, cap - at, "%s%s", i ? ", " : "", q);
        }
        /* compared runs are read again as they grow (aim.follow) */
        snprintf(code + at, cap - at, "}\n%s",
                 o->follow ? "aim.follow(runs)"
                           : "require('aim.compare').open(runs)\naim.follow(runs, {compare = true})");
        free(q);
        return code;
    }
    if (o->inspect) { /* the inspector module, no script */
        size_t cap = 8 * strlen(o->inspect) + 128;
        char *q = aim_xmalloc(cap), *code = aim_xmalloc(cap + 64);
        lua_quote(o->inspect, q, cap);
        snprintf(code, cap + 64, "require('aim.inspector').open(%s)", q);
        free(q);
        return code;
    }
    size_t cap = 4096;
    for (int i = 0; i < o->argc; i++)
        cap += 4 * strlen(o->argv[i]) + 8;
    cap += 8 * strlen(o->script);
    char *code = aim_xmalloc(cap), *q = aim_xmalloc(cap);
    lua_quote(o->script, q, cap);
    size_t at = (size_t)snprintf(code, cap, "arg = {[0] = %s", q);
    for (int i = 0; i < o->argc; i++) {
        lua_quote(o->argv[i], q, cap);
        at += (size_t)snprintf(code + at, cap - at, ", %s", q);
    }
    lua_quote(o->script, q, cap);
    snprintf(code + at, cap - at,
             "}\nlocal f, err = loadfile(%s)\nif not f then error(err, 0) end\n"
             "f(table.unpack(arg, 1, %d))",
             q, o->argc);
    free(q);
    return code;
}

/* the tui and its view, nothing opened yet: every descriptor -1 */
static tui *tui_new(const tui_opts *o)
{
    tui *t = aim_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->v.board = aim_xcalloc(1, sizeof *t->v.board);
    t->v.insp = aim_xcalloc(1, sizeof *t->v.insp);
    t->v.cmp = aim_xcalloc(1, sizeof *t->v.cmp);
    t->v.insp_block = -1;
    t->v.inspect = o->inspect != NULL;
    t->v.smoothing = 0.6f;
    t->wake_r = t->wake_w = t->cap_r = t->tty_fd = t->saved_out = t->saved_err = -1;
    snprintf(t->v.script_name, sizeof t->v.script_name, "%s%s", o->inspect ? "inspect " : "",
             o->inspect ? o->inspect : o->script);
    if (o->ncompare > 0) {
        size_t at = (size_t)snprintf(t->v.script_name, sizeof t->v.script_name, o->follow ? "follow" : "compare");
        for (int i = 0; i < o->ncompare && at < sizeof t->v.script_name; i++)
            at += (size_t)snprintf(t->v.script_name + at, sizeof t->v.script_name - at, " %s",
                                   o->compare[i]);
    }
    t->dirty = 1;
    return t;
}

/* the wake-up pipe and the engine (its thread not started yet), with the
 * user's init.lua and the bindings; an error in init.lua is not fatal: it
 * goes to *init_err (to show in the console) and the default keys stay */
static int open_engine(tui *t, const tui_opts *o, char **init_err)
{
    int wp[2];
    if (pipe(wp) != 0) {
        fprintf(stderr, "aim: tui: cannot make a pipe: %s\n", strerror(errno));
        return -1;
    }
    t->wake_r = wp[0];
    t->wake_w = wp[1];
    set_nonblock(t->wake_r);
    set_nonblock(t->wake_w);
    aim_engine_hooks hooks = {.output = hook_output, .wake = hook_wake, .quit = hook_quit,
                              .ctx = t};
    aim_err e = {{0}};
    t->eng = aim_engine_new(&hooks, &e);
    if (!t->eng) {
        fprintf(stderr, "aim: %s\n", e.msg);
        return -1;
    }
    /* pretraining jobs measure the sgemm peak when they start, for the
     * status line's "% peak" (about 0.4 s, once per model, batch and
     * thread count) */
    aim_engine_measure_peak(t->eng, 0.4);
    /* Lua runs on this thread until the engine's starts: os.exit, then the
     * user's init.lua (key bindings), then the bindings. os.exit must not
     * tear the screen down under a running job: it asks as the quit key
     * does (aim.quit, through the quit hook) */
    char *ex = NULL;
    aim_engine_eval(t->eng, "os.exit = aim.quit", "=tui", 0, &ex);
    free(ex);
    /* the terminal is the screen's: io.read() must not wait on it (and hold
     * the job), io.write must not draw over it, os.execute must not give it
     * to a child */
    if (aim_engine_detach_stdio(t->eng, &e) != 0)
        *init_err = aim_xstrdup(e.msg);
    struct stat sb;
    if (o->init && stat(o->init, &sb) == 0) {
        char *text = NULL;
        if (aim_engine_run_file(t->eng, o->init, 0, NULL, &text) != AIM_EVAL_OK) {
            free(*init_err);
            *init_err = text;
        } else {
            free(text);
        }
    }
    char *keys = NULL;
    aim_engine_eval(t->eng, "return aim.ui.export()", "=keys", 0, &keys);
    parse_bindings(t, keys);
    free(keys);
    return 0;
}

/* the screen, on a copy of fd 1 (which capture_output() then replaces) */
static int open_screen(tui *t, const tui_opts *o)
{
    aim_err e = {{0}};
    t->tty_fd = dup(1);
    screen_opts so = {.colors = o->colors, .ascii = o->ascii, .tty_fd = t->tty_fd};
    if (t->tty_fd < 0 || screen_open(&so, &e) != 0) {
        fprintf(stderr, "aim: %s\n", t->tty_fd < 0 ? "tui: no terminal" : e.msg);
        return -1;
    }
    return 0;
}

/* fds 1 and 2 -> a pipe shown in the console (without a pipe they stay:
 * output then tears the screen, which Ctrl-L redraws) */
static void capture_output(tui *t)
{
    int cp[2];
    if (pipe(cp) != 0)
        return;
    fflush(stdout);
    fflush(stderr);
    t->saved_out = dup(1);
    t->saved_err = dup(2);
    dup2(cp[1], 1);
    dup2(cp[1], 2);
    close(cp[1]);
    t->cap_r = cp[0];
    set_nonblock(t->cap_r);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* the console and its first lines: what it is, the terminal, what runs,
 * and init.lua's error (init_err, freed here) */
static void open_console(tui *t, const tui_opts *o, char *init_err)
{
    console_opts co = {.history_path = o->history, .submit = con_submit,
                       .complete = con_complete, .interrupt = con_interrupt, .ctx = t};
    t->v.con = console_new(&co);
    console_print(t->v.con, UI_DIM, "aim " PACKAGE_VERSION ": Lua console (: or Tab to type, "
                                    "Esc to leave, ? for keys, help() for the API)");
    char line[512];
    if (o->ncompare > 0)
        snprintf(line, sizeof line, "terminal: %s; %s", screen_describe(), t->v.script_name);
    else
        snprintf(line, sizeof line, "terminal: %s; %s %s", screen_describe(),
                 o->inspect ? "inspecting" : "running", o->inspect ? o->inspect : o->script);
    console_print(t->v.con, UI_DIM, line);
    if (init_err) {
        snprintf(line, sizeof line, "%s failed (default keys in use):", o->init);
        console_print(t->v.con, UI_ERROR, line);
        console_print(t->v.con, UI_ERROR, init_err);
        free(init_err);
    }
    take_output(t);
}

/* the engine thread, then the script (or the inspector, or the
 * comparison); an engine that cannot start says so in the console, which
 * stays */
static void start_script(tui *t, const tui_opts *o)
{
    aim_err e = {{0}};
    if (aim_engine_start(t->eng, &e) != 0) {
        console_print(t->v.con, UI_ERROR, e.msg);
        return;
    }
    if (o->threads > 0) {
        char line[64];
        snprintf(line, sizeof line, "aim.threads(%d)", o->threads);
        submit(t, line, 0, T_SETUP, NULL);
    }
    char *code = script_chunk(o);
    submit(t, code, 0, T_SCRIPT, NULL);
    free(code);
    t->v.script = UI_SCRIPT_RUNNING;
}

static void tui_close(tui *t);

/* everything up, the script sent; NULL (said on stderr, all undone) when
 * the engine or the terminal cannot be had */
static tui *tui_open(const tui_opts *o)
{
    tui *t = tui_new(o);
    char *init_err = NULL;
    if (open_engine(t, o, &init_err) != 0 || open_screen(t, o) != 0) {
        free(init_err);
        tui_close(t);
        return NULL;
    }
    capture_output(t);
    install_signals(t->wake_w);
    t->signals_on = 1;
    open_console(t, o, init_err);
    start_script(t, o);
    return t;
}

/* one turn's news from the engine: replies, snapshot, board, inspection,
 * comparison */
static void take_engine(tui *t)
{
    aim_reply r;
    while (aim_engine_poll(t->eng, &r) == 0) {
        handle_reply(t, &r);
        aim_reply_free(&r);
    }
    aim_snapshot snap;
    aim_engine_snapshot(t->eng, &snap);
    if (snap.seq != t->v.snap.seq || snap.queued != t->v.snap.queued)
        t->dirty = 1;
    t->v.snap = snap;
    if (aim_engine_board(t->eng, t->v.board)) {
        take_messages(t);
        t->dirty = 1;
    }
    if (aim_engine_inspect(t->eng, t->v.insp) && t->v.inspect)
        t->dirty = 1;
    if (aim_engine_compare(t->eng, t->v.cmp))
        t->dirty = 1;
    aim_figure *fig = aim_engine_figure(t->eng, &t->v.fig_seq);
    if (fig) { /* the first figure is shown; later ones keep what the user chose */
        if (!t->v.fig)
            t->v.show_fig = 1;
        aim_figure_free(t->v.fig);
        t->v.fig = fig;
        t->dirty = 1;
    }
}

/* the keys, then the other ways out: aim.quit / os.exit, a stop signal, a
 * quit that has waited for its job; 1: leave now */
static int take_keys_and_quits(tui *t)
{
    int quit = 0;
    ui_key k;
    while (screen_read(&k)) {
        int res = handle_key(t, &k);
        if (res & (UI_REDRAW | UI_RELAYOUT))
            t->dirty = 1;
        if (res & UI_QUIT)
            quit = 1;
    }
    if (atomic_exchange(&t->quit_asked, 0) && !t->quitting) {
        /* os.exit / aim.quit: as the quit key (a running job: ask) */
        if (t->v.snap.state == AIM_JOB_IDLE) {
            quit = 1;
        } else {
            t->overlay = OV_QUIT;
            t->dirty = 1;
        }
    }
    if (got_stop_signal) {
        got_stop_signal = 0;
        if (t->quitting)
            quit = 1;
        else
            begin_quit(t, 1);
    }
    if (t->quitting == 2 || (t->quitting == 1 && t->v.snap.state == AIM_JOB_IDLE))
        quit = 1;
    if (t->quitting == 1 && !t->interrupted_quit && aim_now() - t->quit_since > 5 &&
        pending_of(t, T_QUIT) > 0) {
        /* the stop request waits behind something long: interrupt it */
        aim_engine_interrupt(t->eng);
        t->interrupted_quit = 1;
    }
    return quit;
}

/* until the user (or a signal) quits: wait for a key, the engine or
 * output, take it all in, draw at most every FRAME_S */
static void tui_loop(tui *t)
{
    char part[1024]; /* a captured line still without its end */
    size_t plen = 0;
    for (;;) {
        double now = aim_now();
        int timeout = t->dirty ? (int)((FRAME_S - (now - t->last_draw)) * 1000) : 500;
        if (timeout < 0)
            timeout = 0;
        struct pollfd pf[3] = {{0, POLLIN, 0}, {t->wake_r, POLLIN, 0}, {t->cap_r, POLLIN, 0}};
        poll(pf, t->cap_r >= 0 ? 3 : 2, timeout);
        drain_fd(t->wake_r);
        if (t->cap_r >= 0)
            take_captured(t, part, &plen, sizeof part);
        take_output(t);
        take_engine(t);
        if (screen_check_size()) /* a resize whose signal was lost */
            t->dirty = 1;
        if (take_keys_and_quits(t))
            return;
        if (aim_now() - t->v.message_time > 20 && aim_now() - t->v.message_time < 21)
            t->dirty = 1; /* the message fades */
        if (t->dirty && aim_now() - t->last_draw >= FRAME_S)
            draw(t);
    }
}

/* undo whatever tui_open() did, in this order: the terminal (screen,
 * signals, fds 1 and 2), the console, the engine (which stops its job and
 * joins its thread: its hooks use the wake-up pipe and t->out until then),
 * then the descriptors and memory. Safe on a tui that opened only part of
 * the way. */
static void tui_close(tui *t)
{
    screen_close();
    if (t->signals_on)
        restore_signals();
    if (t->saved_out >= 0) {
        fflush(stdout);
        dup2(t->saved_out, 1);
        dup2(t->saved_err, 2);
        close(t->saved_out);
        close(t->saved_err);
    }
    console_free(t->v.con);
    if (t->eng) {
        aim_snapshot snap;
        aim_engine_snapshot(t->eng, &snap);
        if (snap.state != AIM_JOB_IDLE)
            fprintf(stderr, "aim: stopping the job...\n");
        else if (t->v.script == UI_SCRIPT_RUNNING)
            fprintf(stderr, "aim: stopping the script...\n");
        aim_engine_free(t->eng);
    }
    if (t->v.board->run_dir[0])
        fprintf(stderr, "aim: run folder: %s\n", t->v.board->run_dir);
    int fds[] = {t->cap_r, t->tty_fd, t->wake_r, t->wake_w};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(t->out);
    free(t->v.board);
    free(t->v.insp);
    free(t->v.cmp);
    aim_figure_free(t->v.fig);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int tui_run(const tui_opts *o)
{
    setlocale(LC_CTYPE, "");
    tui *t = tui_open(o);
    if (!t)
        return 1;
    tui_loop(t);
    int failed = t->v.script == UI_SCRIPT_FAILED;
    tui_close(t);
    return failed ? 1 : 0;
}
