/*
 * console.c - the Lua console inside the TUI (console.h) and its panel.
 *
 * Readline runs in callback mode with no terminal of its own (the recipe of
 * shared/notes/tui-lua-ecosystem.md): no signal handlers, no terminal
 * preparation, no LINES/COLUMNS in the environment, output to /dev/null,
 * bracketed paste off. Characters from screen_read are converted to their
 * UTF-8 bytes, queued whole, and fed with rl_callback_read_char until the
 * queue is empty; editing keys call readline's bindable functions
 * directly; Tab, Esc, Ctrl-C, Ctrl-D and PgUp/PgDn are ours. The panel
 * draws the prompt and rl_line_buffer itself (cursor column from wcwidth,
 * scrolled sideways when long), so the redisplay hook does nothing.
 *
 * Whether a line finishes a statement the Lua layer says
 * (aim_lua_incomplete: it compiles in a state of its own and never waits for
 * the engine), so ">>" appears at once even while the engine is busy
 * between steps.
 *
 * Readline's callbacks take no context: `the_console` is it.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wchar.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "aim/core.h"
#include "aim/engine.h"
#include "ui/console.h"
#include "ui/screen.h"

#define SCROLLBACK 4000
#define HISTORY_MAX 1000
#define QUEUE 64

typedef struct line {
    char *text;
    ui_style st;
} line;

struct console {
    console_opts o;
    line lines[SCROLLBACK];   /* ring */
    int64_t nlines;           /* lines ever added */
    int scroll;               /* wrapped rows scrolled back */
    char *chunk;              /* an unfinished statement so far */
    int busy;
    int added;                /* history entries added this session */
    FILE *null_out;
    unsigned char q[QUEUE];   /* bytes for readline */
    int qhead, qlen;
};

static console *the_console;

/* ------------------------------------------------------------ scrollback */

/* a longer line keeps its start and says how much it lost (a runaway
 * print must not fill the screen or the memory) */
#define LINE_MAX_BYTES 2000

static void add_line(console *c, ui_style st, const char *s, size_t n)
{
    line *l = &c->lines[c->nlines % SCROLLBACK];
    free(l->text);
    if (n > LINE_MAX_BYTES) {
        size_t keep = LINE_MAX_BYTES;
        while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
            keep--; /* whole UTF-8 characters */
        l->text = aim_xasprintf("%.*s \u2026 (+%zu bytes)", (int)keep, s, n - keep);
    } else {
        l->text = aim_xmalloc(n + 1);
        memcpy(l->text, s, n);
        l->text[n] = 0;
    }
    l->st = st;
    c->nlines++;
    if (c->scroll > 0)
        c->scroll++; /* keep the view where the user scrolled it */
}

void console_print(console *c, ui_style st, const char *text)
{
    const char *s = text;
    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (nl || n > 0)
            add_line(c, st, s, n);
        if (!nl)
            break;
        s = nl + 1;
        if (!*s)
            break;
    }
}

void console_scroll(console *c, int lines)
{
    c->scroll += lines;
    if (c->scroll < 0)
        c->scroll = 0;
}

void console_set_busy(console *c, int busy)
{
    c->busy = busy;
}

int console_busy(const console *c)
{
    return c->busy;
}

/* ------------------------------------------------------------ readline */

static int q_getc(FILE *f)
{
    (void)f;
    console *c = the_console;
    if (!c || c->qlen == 0)
        return EOF;
    int ch = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % QUEUE;
    c->qlen--;
    return ch;
}

static int q_available(void)
{
    return the_console && the_console->qlen > 0;
}

static void no_redisplay(void)
{
}

static void feed_bytes(console *c, const char *b, size_t n)
{
    for (size_t i = 0; i < n && c->qlen < QUEUE; i++) {
        c->q[(c->qhead + c->qlen) % QUEUE] = (unsigned char)b[i];
        c->qlen++;
    }
    while (c->qlen > 0)
        rl_callback_read_char();
}

static void on_line(char *text)
{
    console *c = the_console;
    if (!text) { /* end of input: keep editing */
        rl_callback_handler_install(c->chunk ? ">> " : "> ", on_line);
        return;
    }
    char echo[64];
    snprintf(echo, sizeof echo, "%s", c->chunk ? ">> " : "> ");
    char *shown = aim_xasprintf("%s%s", echo, text);
    console_print(c, UI_PROMPT, shown);
    free(shown);
    char *code = c->chunk ? aim_xasprintf("%s\n%s", c->chunk, text) : aim_xstrdup(text);
    free(c->chunk);
    c->chunk = NULL;
    free(text);
    if (!code[strspn(code, " \t")]) {
        free(code);
        rl_set_prompt("> ");
        return;
    }
    if (aim_lua_incomplete(code)) {
        c->chunk = code;
        rl_set_prompt(">> ");
        return;
    }
    add_history(code);
    c->added++;
    c->scroll = 0;
    rl_set_prompt("> ");
    c->o.submit(c->o.ctx, code);
    free(code);
}

console *console_new(const console_opts *o)
{
    console *c = aim_xcalloc(1, sizeof *c);
    c->o = *o;
    c->null_out = fopen("/dev/null", "w");
    the_console = c;
    rl_readline_name = "aim";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_prep_term_function = NULL;
    rl_deprep_term_function = NULL;
    rl_getc_function = q_getc;
    rl_input_available_hook = q_available;
    rl_redisplay_function = no_redisplay;
    if (c->null_out)
        rl_outstream = c->null_out;
    rl_variable_bind("enable-bracketed-paste", "off");
    rl_variable_bind("bell-style", "none");
    using_history();
    stifle_history(HISTORY_MAX);
    if (o->history_path)
        read_history(o->history_path);
    rl_callback_handler_install("> ", on_line);
    return c;
}

void console_free(console *c)
{
    if (!c)
        return;
    rl_callback_handler_remove();
    if (c->o.history_path && c->added > 0) {
        struct stat sb;
        if (stat(c->o.history_path, &sb) == 0)
            append_history(c->added, c->o.history_path);
        else
            write_history(c->o.history_path);
        history_truncate_file(c->o.history_path, HISTORY_MAX);
    }
    for (int i = 0; i < SCROLLBACK; i++)
        free(c->lines[i].text);
    free(c->chunk);
    if (c->null_out) {
        rl_outstream = NULL;
        fclose(c->null_out);
    }
    the_console = NULL;
    free(c);
}

/* ------------------------------------------------------------ completion */

static const char word_breaks[] = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";

/* the start of the word before the cursor */
static int word_start(void)
{
    int s = rl_point;
    while (s > 0 && !strchr(word_breaks, rl_line_buffer[s - 1]))
        s--;
    return s;
}

void console_completions(console *c, const char *word, const char *cands)
{
    int s = word_start();
    size_t wl = strlen(word);
    if ((size_t)(rl_point - s) != wl || strncmp(rl_line_buffer + s, word, wl) != 0)
        return; /* the line changed meanwhile */
    char *list = aim_xstrdup(cands);
    char *v[512];
    int n = 0;
    for (char *tok = strtok(list, "\n"); tok && n < 512; tok = strtok(NULL, "\n"))
        v[n++] = tok;
    if (n == 0) {
        free(list);
        return;
    }
    size_t common = strlen(v[0]);
    for (int i = 1; i < n; i++) {
        size_t k = 0;
        while (k < common && v[i][k] == v[0][k])
            k++;
        common = k;
    }
    if (common > wl) {
        char *ins = aim_xmalloc(common - wl + 1);
        memcpy(ins, v[0] + wl, common - wl);
        ins[common - wl] = 0;
        rl_insert_text(ins);
        free(ins);
    } else if (n > 1) { /* nothing more to add: list them */
        char buf[1024] = "";
        size_t at = 0;
        for (int i = 0; i < n && at < sizeof buf - 80; i++)
            at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? "  " : "", v[i]);
        if (n > 0 && at >= sizeof buf - 80)
            snprintf(buf + at, sizeof buf - at, "  ... (%d)", n);
        console_print(c, UI_DIM, buf);
    }
    free(list);
}

/* ------------------------------------------------------------ keys */

static void clear_line(console *c)
{
    free(c->chunk);
    c->chunk = NULL;
    rl_replace_line("", 0);
    rl_point = rl_end = 0;
    rl_set_prompt("> ");
}

int console_key(console *c, const ui_key *k)
{
    if (k->kind == UI_KEY_FN) {
        switch (k->fn) {
        case UI_K_ESC: return UI_LEAVE | UI_REDRAW;
        case UI_K_LEFT: rl_backward_char(1, 0); break;
        case UI_K_RIGHT: rl_forward_char(1, 0); break;
        case UI_K_HOME: rl_beg_of_line(1, 0); break;
        case UI_K_END: rl_end_of_line(1, 0); break;
        case UI_K_DELETE: rl_delete(1, 0); break;
        case UI_K_BACKSPACE: rl_rubout(1, 0); break;
        case UI_K_UP: rl_get_previous_history(1, 0); break;
        case UI_K_DOWN: rl_get_next_history(1, 0); break;
        case UI_K_PGUP: console_scroll(c, 5); break;
        case UI_K_PGDN: console_scroll(c, -5); break;
        case UI_K_ENTER: feed_bytes(c, "\r", 1); break;
        default: return 0;
        }
        return UI_HANDLED | UI_REDRAW;
    }
    if (k->kind == UI_KEY_META) {
        char b[MB_LEN_MAX + 1] = {27};
        mbstate_t ps;
        memset(&ps, 0, sizeof ps);
        size_t n = wcrtomb(b + 1, (wchar_t)k->ch, &ps);
        if (n != (size_t)-1)
            feed_bytes(c, b, n + 1);
        return UI_HANDLED | UI_REDRAW;
    }
    if (k->kind != UI_KEY_CHAR)
        return 0;
    switch (k->ch) {
    case 3: /* Ctrl-C: clear the line, or interrupt what runs */
        if (rl_end > 0 || c->chunk)
            clear_line(c);
        else if (c->busy && c->o.interrupt)
            c->o.interrupt(c->o.ctx);
        return UI_HANDLED | UI_REDRAW;
    case 4: /* Ctrl-D: leave on an empty line, else delete */
        if (rl_end == 0 && !c->chunk)
            return UI_LEAVE | UI_REDRAW;
        rl_delete(1, 0);
        return UI_HANDLED | UI_REDRAW;
    case '\t': {
        int s = word_start();
        char *w = aim_xmalloc((size_t)(rl_point - s) + 1);
        memcpy(w, rl_line_buffer + s, (size_t)(rl_point - s));
        w[rl_point - s] = 0;
        c->o.complete(c->o.ctx, w);
        free(w);
        return UI_HANDLED;
    }
    case 12: /* Ctrl-L: the screen's redraw */
        return 0;
    }
    char b[MB_LEN_MAX];
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    size_t n = wcrtomb(b, (wchar_t)k->ch, &ps);
    if (n != (size_t)-1)
        feed_bytes(c, b, n);
    return UI_HANDLED | UI_REDRAW;
}

/* ------------------------------------------------------------ the panel */

/* how many rows s takes wrapped at w columns */
static int wrapped_rows(const char *s, int w)
{
    int tw = ui_text_width(s);
    return tw == 0 ? 1 : (tw + w - 1) / w;
}

/* draw row `skip` onwards of s wrapped at w, at most `rows` rows from y */
static void draw_wrapped(int y, int x, int w, ui_style st, const char *s, int skip, int rows)
{
    char buf[4096];
    int row = 0;
    const char *p = s;
    do {
        ui_text_clip(p, w, buf, sizeof buf);
        size_t n = strlen(buf);
        if (n == 0 && *p) { /* a character wider than the panel */
            n = 1;
            buf[0] = '?';
            buf[1] = 0;
        }
        if (row >= skip && row - skip < rows)
            screen_put(y + row - skip, x, w, st, buf);
        row++;
        p += n;
    } while (*p);
}

static void console_draw(const ui_view *v, ui_rect r)
{
    console *c = v->con;
    if (!c || r.h < 1 || r.w < 4)
        return;
    int out_rows = r.h - 1;
    /* the scrollback, newest at the bottom, `scroll` wrapped rows back */
    int64_t first = c->nlines > SCROLLBACK ? c->nlines - SCROLLBACK : 0;
    int need = out_rows + c->scroll;
    int64_t i = c->nlines;
    int rows = 0;
    while (i > first && rows < need) {
        i--;
        rows += wrapped_rows(c->lines[i % SCROLLBACK].text, r.w);
    }
    if (c->scroll > rows - out_rows && rows >= out_rows)
        c->scroll = rows - out_rows > 0 ? rows - out_rows : 0; /* no further back than there is */
    if (rows < out_rows)
        c->scroll = 0;
    /* rows from line i on; skip the ones above the view */
    int skip = rows - out_rows - c->scroll;
    if (skip < 0)
        skip = 0;
    int y = r.y + (rows < out_rows ? out_rows - rows : 0);
    int bottom = r.y + out_rows;
    for (int64_t j = i; j < c->nlines && y < bottom; j++) {
        const line *l = &c->lines[j % SCROLLBACK];
        int lr = wrapped_rows(l->text, r.w);
        if (skip >= lr) {
            skip -= lr;
            continue;
        }
        int show = lr - skip < bottom - y ? lr - skip : bottom - y;
        draw_wrapped(y, r.x, r.w, l->st, l->text, skip, show);
        y += show;
        skip = 0;
    }
    if (c->scroll > 0 && out_rows > 0) {
        char t[48];
        snprintf(t, sizeof t, " scrolled back %d rows (PgDn) ", c->scroll);
        screen_put(r.y, r.x + r.w - ui_text_width(t), ui_text_width(t), UI_MSG, t);
    }
    /* the input line */
    int iy = r.y + r.h - 1;
    /* rl_display_prompt: also readline's own prompts (Ctrl-R search) */
    const char *prompt = rl_display_prompt ? rl_display_prompt : rl_prompt ? rl_prompt : "> ";
    if (!v->focus_console) {
        if (rl_end == 0 && !c->chunk) {
            screen_put(iy, r.x, r.w, UI_DIM,
                       c->busy ? "(running...)  : or Tab types Lua   ? help   q quit"
                               : ": or Tab types Lua   ? help   q quit");
            return;
        }
    }
    int pw = screen_put(iy, r.x, r.w, v->focus_console ? UI_PROMPT : UI_DIM, prompt);
    int avail = r.w - pw - 1;
    const char *buf = rl_line_buffer ? rl_line_buffer : "";
    /* show from `start` so that the cursor stays visible */
    int start = 0;
    char tmp[8192];
    size_t upto = (size_t)rl_point < sizeof tmp ? (size_t)rl_point : sizeof tmp - 1;
    memcpy(tmp, buf, upto);
    tmp[upto] = 0;
    while (ui_text_width(tmp + start) > avail && tmp[start]) {
        start++;
        while (((unsigned char)tmp[start] & 0xC0) == 0x80)
            start++;
    }
    int curx = r.x + pw + ui_text_width(tmp + start);
    screen_put(iy, r.x + pw, avail + 1, v->focus_console ? UI_NORMAL : UI_DIM, buf + start);
    if (v->focus_console)
        screen_cursor(iy, curx < r.x + r.w ? curx : r.x + r.w - 1);
}

const ui_panel panel_console = {
    .name = "console",
    .draw = console_draw,
};
