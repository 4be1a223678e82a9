/*
 * screen.c - the one owner of ncurses (screen.h). Everything that touches
 * the terminal is here: newterm on a dup of the terminal (so fds 1 and 2
 * can be redirected away from it), raw mode with our own Esc / Alt / Ctrl-C
 * handling, colour detection (direct colour from terminfo's RGB flag or
 * 2^24 colours, else 256, else 16, else monochrome; --colors forces one),
 * semantic styles as colour pairs, half-block pixels through alloc_pair(),
 * key decoding, suspend, and restoring the terminal on exit, at atexit and
 * from a fatal signal (saved termios and the terminfo strings that leave
 * the alternate screen, written with write(2)).
 *
 * ncurses is one global terminal, so this file keeps its state in one
 * static struct; no other file calls curses.
 */
#include "config.h"

#include <langinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include <curses.h>
#include <term.h>

#include "ui/screen.h"

static struct {
    int open;
    SCREEN *sp;
    FILE *out;
    int tty_fd;
    struct termios saved;
    int have_saved;
    char restore[256];   /* terminfo: leave keypad mode, show the cursor, normal attributes, leave the alternate screen */
    size_t restore_len;
    int unicode;
    screen_colors colors;
    attr_t attr[UI_NSTYLES];
    int pair[UI_NSTYLES];
    char desc[64];
} S;

/* ------------------------------------------------------------ colours */

/* the nearest xterm-256 colour: the 6x6x6 cube or the grey ramp */
static int rgb_to_256(uint32_t rgb)
{
    int r = (rgb >> 16) & 255, g = (rgb >> 8) & 255, b = rgb & 255;
    static const int lv[6] = {0, 95, 135, 175, 215, 255};
#define Q(v) ((v) < 48 ? 0 : (v) < 115 ? 1 : ((v) - 35) / 40)
    int qr = Q(r), qg = Q(g), qb = Q(b);
#undef Q
    int cr = lv[qr], cg = lv[qg], cb = lv[qb];
    int cube = 16 + 36 * qr + 6 * qg + qb;
    int dc = (cr - r) * (cr - r) + (cg - g) * (cg - g) + (cb - b) * (cb - b);
    int avg = (r + g + b) / 3;
    int gi = avg > 238 ? 23 : avg < 8 ? 0 : (avg - 8) / 10;
    int gv = 8 + 10 * gi;
    int dg = (gv - r) * (gv - r) + (gv - g) * (gv - g) + (gv - b) * (gv - b);
    return dg < dc ? 232 + gi : cube;
}

static int color_of(uint32_t rgb)
{
    if (S.colors == SCREEN_DIRECT) {
        /* direct-colour terminfo sends 0..7 to the ANSI palette: keep off them */
        return rgb < 8 ? 8 : (int)rgb;
    }
    return rgb_to_256(rgb);
}

typedef struct style_def {
    short fg256, fg16;   /* -1 = default */
    attr_t attr16, attr_mono;
} style_def;

static const style_def style_defs[UI_NSTYLES] = {
    [UI_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [UI_DIM] = {244, -1, A_DIM, A_DIM},
    [UI_BOLD] = {-1, -1, A_BOLD, A_BOLD},
    [UI_TITLE] = {110, COLOR_CYAN, A_BOLD, A_BOLD},
    [UI_STATUS] = {252, COLOR_WHITE, A_NORMAL, A_REVERSE},
    [UI_RUNNING] = {46, COLOR_GREEN, A_BOLD, A_BOLD | A_REVERSE},
    [UI_PAUSED] = {214, COLOR_YELLOW, A_BOLD, A_BOLD | A_REVERSE},
    [UI_IDLE] = {250, COLOR_WHITE, A_NORMAL, A_REVERSE},
    [UI_RAW] = {241, COLOR_BLUE, A_NORMAL, A_DIM},
    [UI_EMA] = {214, COLOR_YELLOW, A_BOLD, A_BOLD},
    [UI_VAL] = {51, COLOR_CYAN, A_BOLD, A_BOLD},
    [UI_LR] = {78, COLOR_GREEN, A_NORMAL, A_NORMAL},
    [UI_AXIS] = {246, -1, A_DIM, A_DIM},
    [UI_BAR] = {68, COLOR_BLUE, A_NORMAL, A_NORMAL},
    [UI_BEST] = {220, COLOR_YELLOW, A_BOLD, A_BOLD},
    [UI_BASE] = {203, COLOR_RED, A_BOLD, A_BOLD},
    [UI_REF] = {177, COLOR_MAGENTA, A_BOLD, A_BOLD},
    [UI_ERROR] = {203, COLOR_RED, A_BOLD, A_BOLD},
    [UI_MSG] = {187, COLOR_YELLOW, A_NORMAL, A_NORMAL},
    [UI_PROMPT] = {114, COLOR_GREEN, A_BOLD, A_BOLD},
    [UI_KEY] = {117, COLOR_CYAN, A_BOLD, A_BOLD},
    [UI_OVERLAY] = {255, COLOR_WHITE, A_NORMAL, A_NORMAL},
    /* compared runs: far apart in hue, none the live EMA's orange */
    [UI_RUN0 + 0] = {39, COLOR_CYAN, A_BOLD, A_BOLD},
    [UI_RUN0 + 1] = {203, COLOR_RED, A_BOLD, A_BOLD},
    [UI_RUN0 + 2] = {113, COLOR_GREEN, A_BOLD, A_BOLD},
    [UI_RUN0 + 3] = {177, COLOR_MAGENTA, A_BOLD, A_BOLD},
    [UI_RUN0 + 4] = {226, COLOR_YELLOW, A_NORMAL, A_NORMAL},
    [UI_RUN0 + 5] = {33, COLOR_BLUE, A_BOLD, A_BOLD},
    [UI_RUN0 + 6] = {250, COLOR_WHITE, A_NORMAL, A_NORMAL},
    [UI_RUN0 + 7] = {216, COLOR_CYAN, A_NORMAL, A_NORMAL},
};

static void setup_styles(void)
{
    for (int s = 0; s < UI_NSTYLES; s++) {
        const style_def *d = &style_defs[s];
        S.pair[s] = 0;
        S.attr[s] = S.colors == SCREEN_MONO ? d->attr_mono : d->attr16;
        if (S.colors == SCREEN_MONO)
            continue;
        int fg = S.colors == SCREEN_16 ? d->fg16 : d->fg256;
        int bg = -1;
        if (s == UI_STATUS || s == UI_OVERLAY)
            bg = S.colors == SCREEN_16 ? COLOR_BLUE : 236;
        if (s == UI_STATUS && S.colors == SCREEN_16)
            S.attr[s] = A_NORMAL;
        if (fg < 0 && bg < 0)
            continue;
        int p = alloc_pair(fg, bg);
        if (p > 0)
            S.pair[s] = p;
        if (S.colors != SCREEN_16 && s != UI_DIM && s != UI_RAW && s != UI_AXIS)
            S.attr[s] &= ~A_DIM;
    }
}

static screen_colors detect_colors(const char *want)
{
    int auto_ = !want || !strcmp(want, "auto");
    if (!has_colors() || (ui_no_color(getenv("NO_COLOR")) && auto_))
        return SCREEN_MONO;
    screen_colors have = SCREEN_16;
    if (tigetflag("RGB") > 0 || COLORS >= (1 << 24))
        have = SCREEN_DIRECT;
    else if (COLORS >= 256)
        have = SCREEN_256;
    if (!want || !strcmp(want, "auto"))
        return have;
    screen_colors w = !strcmp(want, "direct") ? SCREEN_DIRECT
                      : !strcmp(want, "256")  ? SCREEN_256
                      : !strcmp(want, "16")   ? SCREEN_16
                                              : SCREEN_MONO;
    return w < have ? w : have;
}

/* ------------------------------------------------------------ lifetime */

static void add_restore(const char *cap)
{
    char *s = tigetstr((char *)cap);
    if (!s || s == (char *)-1)
        return;
    size_t n = strlen(s);
    if (S.restore_len + n < sizeof S.restore) {
        memcpy(S.restore + S.restore_len, s, n);
        S.restore_len += n;
    }
}

int screen_open(const screen_opts *o, aim_err *e)
{
    if (S.open)
        return 0;
    memset(&S, 0, sizeof S);
    S.tty_fd = o->tty_fd;
    if (!isatty(S.tty_fd) || !isatty(0))
        return aim_errf(e, "tui: the terminal is not a terminal (stdin and stdout must be one)");
    if (tcgetattr(S.tty_fd, &S.saved) == 0)
        S.have_saved = 1;
    int fd = dup(S.tty_fd);
    S.out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!S.out)
        return aim_errf(e, "tui: cannot open the terminal for writing");
    const char *term = getenv("TERM");
    S.sp = newterm(NULL, S.out, stdin);
    if (!S.sp) {
        fclose(S.out);
        return aim_errf(e, "tui: cannot use terminal type '%s' (no terminfo entry?)",
                        term ? term : "(TERM is not set)");
    }
    S.open = 1;
    set_term(S.sp);
    add_restore("rmkx");
    add_restore("sgr0");
    add_restore("cnorm");
    add_restore("rmcup");
    raw();
    noecho();
    nonl();
    intrflush(stdscr, FALSE);
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    const char *cs = nl_langinfo(CODESET);
    S.unicode = !o->ascii && cs && (!strcasecmp(cs, "UTF-8") || !strcasecmp(cs, "utf8"));
    if (has_colors()) {
        start_color();
        use_default_colors();
    }
    S.colors = detect_colors(o->colors);
    setup_styles();
    snprintf(S.desc, sizeof S.desc, "%s, %s",
             S.colors == SCREEN_DIRECT ? "direct colour"
             : S.colors == SCREEN_256  ? "256 colours"
             : S.colors == SCREEN_16   ? "16 colours"
                                       : "no colours",
             S.unicode ? "UTF-8" : "ASCII");
    atexit(screen_close);
    return 0;
}

void screen_close(void)
{
    if (!S.open)
        return;
    S.open = 0;
    curs_set(1);
    endwin();
    fflush(S.out);
    delscreen(S.sp);
    fclose(S.out);
    S.sp = NULL;
    S.out = NULL;
    if (S.have_saved)
        tcsetattr(S.tty_fd, TCSADRAIN, &S.saved);
}

void screen_emergency_restore(void)
{
    if (!S.open)
        return;
    S.open = 0;
    if (S.restore_len && write(S.tty_fd, S.restore, S.restore_len) < 0)
        S.restore_len = 0;
    if (S.have_saved)
        tcsetattr(S.tty_fd, TCSANOW, &S.saved);
}

int screen_is_open(void)
{
    return S.open;
}

void screen_size(int *rows, int *cols)
{
    int r, c;
    getmaxyx(stdscr, r, c);
    *rows = r;
    *cols = c;
}

/* The terminal's size from the kernel, against the one curses drew for. A
 * resize is normally a SIGWINCH that curses turns into KEY_RESIZE, but a
 * signal can be lost (two resizes close together, or one landing while a
 * frame is being written under load), and then the screen stays laid out
 * for the old size until the next key. Asked on every wake-up: when they
 * differ, resizeterm() (which also queues KEY_RESIZE, so the front end's
 * usual resize path runs) and repaint every cell. 1: it was resized. */
int screen_check_size(void)
{
    struct winsize ws;
    if (!S.open || ioctl(S.tty_fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0)
        return 0;
    int rows, cols;
    screen_size(&rows, &cols);
    if (rows == ws.ws_row && cols == ws.ws_col)
        return 0;
    resizeterm(ws.ws_row, ws.ws_col);
    clearok(curscr, TRUE);
    return 1;
}

int screen_unicode(void)
{
    return S.unicode;
}

screen_colors screen_color_mode(void)
{
    return S.colors;
}

const char *screen_describe(void)
{
    return S.desc;
}

/* ------------------------------------------------------------ drawing */

void screen_erase(void)
{
    erase();
}

static void set_style(ui_style st)
{
    attr_set(S.attr[st], 0, &S.pair[st]);
}

int screen_put(int y, int x, int w, ui_style st, const char *s)
{
    int rows, cols;
    screen_size(&rows, &cols);
    if (y < 0 || y >= rows || x >= cols || w <= 0 || !s)
        return 0;
    if (x + w > cols)
        w = cols - x;
    set_style(st);
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    int used = 0;
    size_t len = strlen(s);
    while (len > 0 && used < w) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, s, len, &ps);
        if (n == (size_t)-1 || n == (size_t)-2) {
            memset(&ps, 0, sizeof ps);
            wc = L'?';
            n = 1;
        } else if (n == 0) {
            break;
        }
        int cw = wcwidth(wc);
        if (wc == L'\t')
            wc = L' ', cw = 1;
        if (cw < 0)
            wc = L'?', cw = 1;
        if (used + cw > w)
            break;
        if (cw > 0) {
            cchar_t cc;
            wchar_t str[2] = {wc, 0};
            setcchar(&cc, str, S.attr[st], 0, &S.pair[st]);
            mvadd_wch(y, x + used, &cc);
        }
        used += cw;
        s += n;
        len -= n;
    }
    attr_set(A_NORMAL, 0, NULL);
    return used;
}

int screen_putf(int y, int x, int w, ui_style st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return screen_put(y, x, w, st, buf);
}

void screen_fill(ui_rect r, ui_style st)
{
    set_style(st);
    for (int y = r.y; y < r.y + r.h; y++)
        mvhline(y, r.x, ' ', r.w);
    attr_set(A_NORMAL, 0, NULL);
}

void screen_glyph(int y, int x, uint32_t wc, ui_style st)
{
    if (wc > 127 && !S.unicode)
        wc = '?';
    cchar_t cc;
    wchar_t str[2] = {(wchar_t)wc, 0};
    setcchar(&cc, str, S.attr[st], 0, &S.pair[st]);
    mvadd_wch(y, x, &cc);
}

static int luma(uint32_t rgb)
{
    return (int)((((rgb >> 16) & 255) * 299 + ((rgb >> 8) & 255) * 587 + (rgb & 255) * 114) / 1000);
}

void screen_pixels(int y, int x, uint32_t top, uint32_t bottom)
{
    if (S.unicode && (S.colors == SCREEN_256 || S.colors == SCREEN_DIRECT)) {
        int pair = alloc_pair(color_of(top), color_of(bottom));
        if (pair > 0) {
            cchar_t cc;
            setcchar(&cc, L"\u2580", A_NORMAL, 0, &pair);
            mvadd_wch(y, x, &cc);
            return;
        }
    }
    int v = (luma(top) + luma(bottom)) / 2;
    if (S.unicode) {
        static const wchar_t shades[5] = {L' ', L'\u2591', L'\u2592', L'\u2593', L'\u2588'};
        cchar_t cc;
        wchar_t str[2] = {shades[v * 5 / 256], 0};
        setcchar(&cc, str, A_NORMAL, 0, NULL);
        mvadd_wch(y, x, &cc);
    } else {
        static const char ramp[] = " .:-=+*#%@";
        mvaddch(y, x, (chtype)ramp[v * 10 / 256]);
    }
}

void screen_cursor(int y, int x)
{
    if (y < 0) {
        curs_set(0);
        return;
    }
    move(y, x);
    curs_set(1);
}

void screen_flush(void)
{
    refresh();
}

void screen_invalidate(void)
{
    clearok(curscr, TRUE);
}

void screen_ytick(int y, int x0, int labw, int axis_x, const char *lab)
{
    int lw = (int)strlen(lab);
    screen_put(y, x0 + (labw - lw > 0 ? labw - lw : 0), labw, UI_AXIS, lab);
    screen_glyph(y, axis_x, S.unicode ? 0x2524 : '+', UI_AXIS);
}

void screen_xtick(int y, int col, int end, int *free_from, const char *lab)
{
    int lw = (int)strlen(lab), at = col - lw / 2;
    if (at < *free_from)
        at = *free_from;
    if (at + lw > end)
        at = end - lw;
    if (at < *free_from)
        return;
    screen_put(y, at, lw, UI_AXIS, lab);
    *free_from = at + lw + 2;
}

/* ------------------------------------------------------------ input */

static int map_key(int code)
{
    switch (code) {
    case KEY_UP: return UI_K_UP;
    case KEY_DOWN: return UI_K_DOWN;
    case KEY_LEFT: return UI_K_LEFT;
    case KEY_RIGHT: return UI_K_RIGHT;
    case KEY_HOME: return UI_K_HOME;
    case KEY_END: return UI_K_END;
    case KEY_PPAGE: return UI_K_PGUP;
    case KEY_NPAGE: return UI_K_PGDN;
    case KEY_DC: return UI_K_DELETE;
    case KEY_BACKSPACE: return UI_K_BACKSPACE;
    case KEY_ENTER: return UI_K_ENTER;
    case KEY_BTAB: return UI_K_BTAB;
    case KEY_IC: return UI_K_INSERT;
    }
    if (code >= KEY_F(1) && code <= KEY_F(12))
        return UI_K_F0 + (code - KEY_F(0));
    return 0;
}

int screen_read(ui_key *k)
{
    memset(k, 0, sizeof *k);
    for (;;) {
        wint_t wc;
        int rc = get_wch(&wc);
        if (rc == ERR)
            return 0;
        if (rc == KEY_CODE_YES) {
            if (wc == KEY_RESIZE) {
                k->kind = UI_KEY_RESIZE;
                return 1;
            }
            int fn = map_key((int)wc);
            if (!fn)
                continue; /* a key we have no use for */
            k->kind = UI_KEY_FN;
            k->fn = fn;
            return 1;
        }
        if (wc == 27) { /* Esc alone, or Alt + key */
            wint_t next;
            int r2 = get_wch(&next);
            if (r2 == OK && next != 27) {
                k->kind = UI_KEY_META;
                k->ch = (uint32_t)next;
                return 1;
            }
            if (r2 == KEY_CODE_YES)
                ungetch((int)next); /* Esc then a function key: both count */
            k->kind = UI_KEY_FN;
            k->fn = UI_K_ESC;
            return 1;
        }
        k->kind = UI_KEY_CHAR;
        k->ch = wc == '\n' ? '\r' : (uint32_t)wc;
        return 1;
    }
}

void screen_suspend(void)
{
    def_prog_mode();
    endwin();
    if (S.have_saved)
        tcsetattr(S.tty_fd, TCSADRAIN, &S.saved);
    kill(getpid(), SIGSTOP);
    reset_prog_mode();
    clearok(curscr, TRUE);
    refresh();
}
