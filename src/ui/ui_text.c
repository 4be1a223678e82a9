/*
 * ui_text.c - text helpers the panels share (ui.h): key names as the
 * bindings spell them, counts and durations for the status line, and
 * display widths of UTF-8 strings. No curses.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#include "ui/ui.h"

void ui_key_name(const ui_key *k, char *buf, size_t len)
{
    static const char *const fn_names[] = {
        [UI_K_UP] = "up", [UI_K_DOWN] = "down", [UI_K_LEFT] = "left", [UI_K_RIGHT] = "right",
        [UI_K_HOME] = "home", [UI_K_END] = "end", [UI_K_PGUP] = "pgup", [UI_K_PGDN] = "pgdn",
        [UI_K_DELETE] = "delete", [UI_K_BACKSPACE] = "backspace", [UI_K_ENTER] = "enter",
        [UI_K_ESC] = "esc", [UI_K_BTAB] = "btab", [UI_K_INSERT] = "insert",
    };
    buf[0] = 0;
    if (k->kind == UI_KEY_FN) {
        if (k->fn > UI_K_F0 && k->fn <= UI_K_F0 + 12)
            snprintf(buf, len, "f%d", k->fn - UI_K_F0);
        else if (k->fn > 0 && k->fn < (int)(sizeof fn_names / sizeof fn_names[0]) &&
                 fn_names[k->fn])
            snprintf(buf, len, "%s", fn_names[k->fn]);
        return;
    }
    if (k->kind != UI_KEY_CHAR)
        return;
    uint32_t c = k->ch;
    if (c == ' ')
        snprintf(buf, len, "space");
    else if (c == '\t')
        snprintf(buf, len, "tab");
    else if (c == '\r')
        snprintf(buf, len, "enter");
    else if (c == 27)
        snprintf(buf, len, "esc");
    else if (c == 127 || c == 8)
        snprintf(buf, len, "backspace");
    else if (c >= 1 && c <= 26)
        snprintf(buf, len, "C-%c", 'a' + (int)c - 1);
    else if (c >= 32) {
        mbstate_t ps;
        memset(&ps, 0, sizeof ps);
        char mb[MB_LEN_MAX + 1];
        size_t n = wcrtomb(mb, (wchar_t)c, &ps);
        if (n != (size_t)-1 && n < len) {
            memcpy(buf, mb, n);
            buf[n] = 0;
        }
    }
}

void ui_fmt_count(double v, char *buf, size_t len)
{
    double a = fabs(v);
    if (a >= 1e6)
        snprintf(buf, len, "%.3gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, len, "%.0fk", v / 1e3);
    else if (a >= 1e3)
        snprintf(buf, len, "%.3gk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
}

void ui_fmt_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%lds", t);
}

int ui_text_width(const char *s)
{
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    int w = 0;
    size_t len = strlen(s);
    while (len > 0) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, s, len, &ps);
        if (n == (size_t)-1 || n == (size_t)-2) {
            memset(&ps, 0, sizeof ps);
            n = 1;
            w++;
        } else if (n == 0) {
            break;
        } else {
            int cw = wcwidth(wc);
            w += cw < 0 ? 1 : cw;
        }
        s += n;
        len -= n;
    }
    return w;
}

void ui_text_clip(const char *s, int cols, char *buf, size_t len)
{
    mbstate_t ps;
    memset(&ps, 0, sizeof ps);
    int w = 0;
    size_t at = 0, slen = strlen(s);
    while (at < slen) {
        wchar_t wc;
        size_t n = mbrtowc(&wc, s + at, slen - at, &ps);
        int cw = 1;
        if (n == (size_t)-1 || n == (size_t)-2) {
            memset(&ps, 0, sizeof ps);
            n = 1;
        } else if (n == 0) {
            break;
        } else {
            cw = wcwidth(wc) < 0 ? 1 : wcwidth(wc);
        }
        if (w + cw > cols || at + n >= len)
            break;
        w += cw;
        at += n;
    }
    memcpy(buf, s, at);
    buf[at] = 0;
}

ui_style ui_run_style(int k)
{
    return (ui_style)(UI_RUN0 + (k & 7));
}

char ui_run_mark(int k)
{
    return "ox+#%@&="[k & 7];
}
