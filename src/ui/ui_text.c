/*
 * ui_text.c - text helpers the panels share (ui.h): key names as the
 * bindings spell them, counts and durations, the status line's fields
 * (which of them fit), and display widths of UTF-8 strings. No curses.
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

/* ------------------------------------------------------------ status line */

double ui_peak_percent(const aim_snapshot *s)
{
    if (!(s->train_flops > 0) || !(s->peak_flops > 0) || !(s->step.img_per_s > 0))
        return NAN;
    return 100.0 * s->step.img_per_s * s->train_flops / s->peak_flops;
}

enum { F_JOB, F_STEP, F_EPOCH, F_LOSS, F_LR, F_IPS, F_PEAK, F_ETA, F_THREADS, F_SYS, F_RUN, NF };

/* which fields are shown when not all fit: the most useful first (the run
 * folder gets what is left) */
static const int priority[NF] = {F_STEP, F_LOSS, F_ETA, F_LR, F_IPS, F_EPOCH, F_JOB, F_THREADS,
                                 F_PEAK, F_SYS, F_RUN};

void ui_status_fields(const aim_snapshot *s, const aim_board *b, int w, int uni, char *line,
                      size_t len)
{
    char f[NF][300];
    memset(f, 0, sizeof f);
    const aim_step_info *st = &s->step;
    snprintf(f[F_JOB], sizeof f[0], "%s%s", s->job, s->job[0] && s->bf16 ? " bf16" : "");
    if (st->step > 0) {
        snprintf(f[F_STEP], sizeof f[0], "step %lld/%lld", (long long)st->step,
                 (long long)st->total);
        snprintf(f[F_EPOCH], sizeof f[0], "ep %.2f", st->epoch);
        snprintf(f[F_LOSS], sizeof f[0], "loss %.4f", st->loss);
        snprintf(f[F_LR], sizeof f[0], "lr %.2e", st->lr);
        snprintf(f[F_IPS], sizeof f[0], "%.0f img/s", st->img_per_s);
        double pct = ui_peak_percent(s);
        if (isfinite(pct))
            snprintf(f[F_PEAK], sizeof f[0], "%.0f%% peak", pct);
        char d[32];
        int over = s->state == AIM_JOB_IDLE || s->follow >= AIM_FOLLOW_STOPPED;
        ui_fmt_duration(over ? st->elapsed_s : st->eta_s, d, sizeof d);
        snprintf(f[F_ETA], sizeof f[0], "%s %s", over ? "ran" : "ETA", d);
        if (s->state == AIM_JOB_IDLE)
            snprintf(f[F_ETA], sizeof f[0], "took %s", d);
    }
    if (b->threads > 0)
        snprintf(f[F_THREADS], sizeof f[0], "%d thr", b->threads);
    /* "cpu 1.9  412M  load 2.1" (a process has memory: none means not measured) */
    if (s->job[0] && isfinite(s->sys.cores) && s->sys.rss_mb > 0) {
        int at = snprintf(f[F_SYS], sizeof f[0], "cpu %.1f", s->sys.cores);
        if (isfinite(s->sys.rss_mb))
            at += snprintf(f[F_SYS] + at, sizeof f[0] - (size_t)at, "  %.0fM", s->sys.rss_mb);
        if (isfinite(s->sys.load1))
            snprintf(f[F_SYS] + at, sizeof f[0] - (size_t)at, "  load %.1f", s->sys.load1);
    }
    /* pick fields by priority, the run folder gets what is left */
    int on[NF] = {0}, used = 0;
    for (int i = 0; i < NF; i++) {
        int k = priority[i];
        if (k == F_RUN || !f[k][0])
            continue;
        int fw = ui_text_width(f[k]) + 2;
        if (used + fw <= w) {
            on[k] = 1;
            used += fw;
        }
    }
    if (b->run_dir[0] && w - used > 14) {
        int room = w - used - 3;
        const char *d = b->run_dir, *base = strrchr(d, '/');
        if (ui_text_width(d) > room && base && base[1] && ui_text_width(base + 1) <= room)
            d = base + 1; /* the folder's own name */
        if (ui_text_width(d) > room) { /* keep its end */
            while (*d && ui_text_width(d) > room - 1)
                d++;
            snprintf(f[F_RUN], sizeof f[0], "%s%s", uni ? "\u2026" : "~", d);
        } else {
            snprintf(f[F_RUN], sizeof f[0], "%s", d);
        }
        on[F_RUN] = 1;
    }
    size_t at = 0;
    if (len)
        line[0] = 0;
    for (int k = 0; k < NF && at < len; k++)
        if (on[k])
            at += (size_t)snprintf(line + at, len - at, "  %s", f[k]);
}

ui_style ui_run_style(int k)
{
    return (ui_style)(UI_RUN0 + (k & 7));
}

char ui_run_mark(int k)
{
    return "ox+#%@&="[k & 7];
}

int ui_no_color(const char *value)
{
    return value && *value;
}
