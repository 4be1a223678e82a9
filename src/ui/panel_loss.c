/*
 * panel_loss.c - the training loss curve: braille dots (2x4 per cell), the
 * raw series faint (each point's min..max span, so spikes survive the
 * board's merging), TensorBoard's de-biased EMA bright on top, validation
 * points as markers, y axis with tick labels (linear or log10, autoscaled
 * to the 2..98% quantiles of both series, so the first steps and single
 * spikes do not flatten the rest), x axis in steps, and a strip of
 * the learning-rate schedule under it. Keys: log_scale, smooth_more,
 * smooth_less.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/plot.h"
#include "ui/screen.h"
#include "ui/ui.h"

#define YLAB 7 /* label columns, the axis included */

/* canvas series, higher wins a cell: the live raw curve, the compared
 * runs, the live EMA on top */
enum { SER_RAW = 1, SER_RUN0 = 2, SER_EMA = SER_RUN0 + AIM_COMPARE_RUNS };

typedef struct axes {
    double x0, x1, y0, y1; /* data ranges (y transformed) */
    int W, H;              /* dots */
    int log_y;
} axes;

static double tf(const axes *a, double v)
{
    if (a->log_y)
        return v > 0 ? log10(v) : NAN;
    return v;
}

static int xdot(const axes *a, double step)
{
    if (a->x1 <= a->x0)
        return 0;
    return (int)lround((step - a->x0) * (a->W - 1) / (a->x1 - a->x0));
}

/* dot row of a transformed value (may fall outside 0..H-1: the canvas clips) */
static int ydot(const axes *a, double t)
{
    if (!isfinite(t))
        return a->H - 1;
    double r = (a->y1 - t) * (a->H - 1) / (a->y1 - a->y0);
    if (r < -1)
        r = -1;
    if (r > a->H)
        r = a->H;
    return (int)lround(r);
}

/* the header: fields by priority (the value, the last validation, the
 * smoothed value with its weight, the axis scale, the minimum) */
static void header(const ui_view *v, ui_rect r, const float *ema, int n)
{
    const aim_board *b = v->board;
    enum { H_LOSS, H_EMA, H_SCALE, H_VAL, H_MIN, NH };
    char f[NH][96];
    memset(f, 0, sizeof f);
    if (n > 0) {
        snprintf(f[H_LOSS], sizeof f[0], "%.4f", v->snap.step.loss);
        snprintf(f[H_EMA], sizeof f[0], "ema(%.2f) %.4f", v->smoothing, ema[n - 1]);
        float mn = b->curve[n - 1].lo;
        int64_t at = b->curve[n - 1].step;
        for (int i = 0; i < n; i++)
            if (b->curve[i].lo < mn) {
                mn = b->curve[i].lo;
                at = b->curve[i].step;
            }
        char c[16];
        ui_fmt_count((double)at, c, sizeof c);
        snprintf(f[H_MIN], sizeof f[0], "min %.4f@%s", mn, c);
    } else {
        snprintf(f[H_EMA], sizeof f[0], "ema(%.2f)", v->smoothing);
    }
    if (b->nval > 0) /* "• next-patch 0.4123": the points' glyph is their legend */
        snprintf(f[H_VAL], sizeof f[0], "%s%s %.4f", screen_unicode() ? "\u2022 " : "o ",
                 b->val_label[0] ? b->val_label : "val", b->val[b->nval - 1].loss);
    snprintf(f[H_SCALE], sizeof f[0], "%s", v->log_y ? "log" : "linear");
    char title[48];
    snprintf(title, sizeof title, "%s%s", b->loss_label[0] ? "loss: " : "loss",
             b->loss_label);
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, title);
    int left = r.w - (x - r.x), used = 0, on[NH] = {0};
    if (b->nonfinite > 0)
        left -= 12;
    /* the validation points' legend before the smoothing: a job that names
     * them (LoRA's next-patch loss) has no other label for them */
    static const int prio[NH] = {H_LOSS, H_VAL, H_EMA, H_SCALE, H_MIN};
    for (int i = 0; i < NH; i++) {
        int k = prio[i];
        int fw = f[k][0] ? ui_text_width(f[k]) + 2 : 0;
        if (fw && used + fw <= left) {
            on[k] = 1;
            used += fw;
        }
    }
    for (int k = 0; k < NH; k++)
        if (on[k]) {
            x += screen_put(r.y, x, 2, UI_NORMAL, "  ");
            x += screen_put(r.y, x, r.w - (x - r.x),
                            k == H_EMA ? UI_EMA : k == H_VAL ? UI_VAL : UI_NORMAL, f[k]);
        }
    if (b->nonfinite > 0)
        x += screen_putf(r.y, x, r.w - (x - r.x), UI_ERROR, "  %d NaN/Inf", b->nonfinite);
    /* a script's figure waits behind the curve: say how to get it back */
    const char *hint = "f: figure";
    int hw = (int)strlen(hint);
    if (v->fig && r.x + r.w - hw - 1 >= x + 2)
        screen_put(r.y, r.x + r.w - hw - 1, hw, UI_DIM, hint);
}

/* the compared runs (NULL when none) */
static const aim_compare_view *compared(const ui_view *v)
{
    return v->cmp && v->cmp->n > 0 ? v->cmp : NULL;
}

/* runs are told apart by their mark instead of braille dots in their colour
 * where there is no colour or no braille */
static int use_marks(void)
{
    return !screen_unicode() || screen_color_mode() == SCREEN_MONO;
}

/* The legend row: each compared run's mark and label in its colour, then
 * the board's own curve when there is one (own: "live" while its job runs,
 * "last job" after). Labels that do not fit lose the prefix they all share
 * ("…" stands for it), then are cut alike; "+k" says how many runs are left
 * out when even that does not fit. */
static void legend(const aim_compare_view *cv, const char *own, int y, int x, int w)
{
    int marks = use_marks(), uni = screen_unicode();
    int n = cv->n, entries = n + (own ? 1 : 0);
    const char *text[AIM_COMPARE_RUNS + 1];
    int lw = 4;
    for (int k = 0; k < entries; k++) {
        text[k] = k < n ? cv->run[k].label : own;
        int tw = ui_text_width(text[k]);
        lw = tw > lw ? tw : lw;
    }
    int cut = 0; /* bytes of the shared prefix left out */
    if (n >= 2 && entries * (lw + 4) - 2 > w) {
        size_t cp = strlen(text[0]), shortest = cp;
        for (int k = 1; k < n; k++) {
            size_t j = 0;
            while (j < cp && text[k][j] == text[0][j])
                j++;
            cp = j;
            shortest = strlen(text[k]) < shortest ? strlen(text[k]) : shortest;
        }
        if (cp + 1 > shortest) /* every label keeps a character */
            cp = shortest ? shortest - 1 : 0;
        while (cp > 0 && ((unsigned char)text[0][cp] & 0xC0) == 0x80)
            cp--;
        if (cp > 1) {
            cut = (int)cp;
            lw = 4;
            for (int k = 0; k < entries; k++) {
                int tw = ui_text_width(k < n ? text[k] + cut : text[k]) + (k < n);
                lw = tw > lw ? tw : lw;
            }
        }
    }
    while (lw > 3 && entries * (lw + 4) - 2 > w)
        lw--;
    char lab[AIM_COMPARE_RUNS + 1][AIM_COMPARE_LABEL * 4];
    int need[AIM_COMPARE_RUNS + 1], total = -2;
    for (int k = 0; k < entries; k++) {
        if (cut && k < n) {
            int at = snprintf(lab[k], sizeof lab[k], "%s", uni ? "\u2026" : "~");
            ui_text_clip(text[k] + cut, lw - 1, lab[k] + at, sizeof lab[k] - (size_t)at);
        } else {
            ui_text_clip(text[k], lw, lab[k], sizeof lab[k]);
        }
        need[k] = 2 + ui_text_width(lab[k]); /* mark, space, label */
        total += need[k] + 2;
    }
    int shown = entries;
    if (total > w) { /* as many as fit with "+k" after them */
        int used = 0;
        shown = 0;
        while (shown < entries && used + need[shown] + 2 + 2 <= w)
            used += need[shown++] + 2;
    }
    int col = x;
    for (int k = 0; k < shown; k++) {
        ui_style st = k < n ? ui_run_style(k) : UI_EMA;
        uint32_t g = k < n ? (marks ? (uint32_t)ui_run_mark(k) : 0x25A0u)
                           : (uni ? 0x25A0u : '*');
        screen_glyph(y, col, g, st);
        screen_put(y, col + 2, x + w - col - 2, st, lab[k]);
        col += need[k] + 2;
    }
    if (shown < entries)
        screen_putf(y, col, x + w - col, UI_DIM, "+%d", entries - shown);
}

/* the y range (transformed): the 2..98% quantiles (all of them with few
 * points) of the raw and the smoothed series of the live curve and of every
 * compared run, widened to every validation point */
static void y_range(const axes *a, const float *const *raw, const float *const *sm,
                    const int *len, int nser, const aim_val_point *const *val,
                    const int *nval, double *lo_out, double *hi_out)
{
    int total = 0;
    for (int s = 0; s < nser; s++)
        total += len[s];
    float *x = calloc((size_t)total + 1, sizeof *x), *tmp = calloc((size_t)total + 1, sizeof *tmp);
    float qlo = total > 20 ? 0.02f : 0.0f, qhi = total > 20 ? 0.98f : 1.0f;
    double lo = NAN, hi = NAN;
    for (int pass = 0; pass < 2; pass++) {
        int k = 0;
        for (int s = 0; s < nser; s++)
            for (int i = 0; i < len[s]; i++)
                x[k++] = (float)tf(a, (pass ? sm : raw)[s][i]);
        double l = plot_quantile(x, k, qlo, tmp), h = plot_quantile(x, k, qhi, tmp);
        if (isfinite(l) && (!isfinite(lo) || l < lo))
            lo = l;
        if (isfinite(h) && (!isfinite(hi) || h > hi))
            hi = h;
    }
    for (int s = 0; s < nser; s++)
        for (int i = 0; i < nval[s]; i++) {
            double t = tf(a, val[s][i].loss);
            if (isfinite(t)) {
                lo = !isfinite(lo) || t < lo ? t : lo;
                hi = !isfinite(hi) || t > hi ? t : hi;
            }
        }
    free(x);
    free(tmp);
    *lo_out = lo;
    *hi_out = hi;
}

/* The series the plot draws: 0 the live job's curve, 1..n-1 the compared
 * runs'; each with its raw losses, their EMA and its validation points. */
typedef struct series_set {
    int n, points; /* series; curve points in all */
    const aim_curve_point *curve[1 + AIM_COMPARE_RUNS];
    float *raw[1 + AIM_COMPARE_RUNS], *sm[1 + AIM_COMPARE_RUNS];
    int len[1 + AIM_COMPARE_RUNS], nval[1 + AIM_COMPARE_RUNS];
    const aim_val_point *val[1 + AIM_COMPARE_RUNS];
} series_set;

static void series_open(series_set *ss, const ui_view *v, const aim_compare_view *cv)
{
    const aim_board *b = v->board;
    ss->n = 1 + (cv ? cv->n : 0);
    ss->points = 0;
    for (int s = 0; s < ss->n; s++) {
        const aim_compare_run *run = s ? &cv->run[s - 1] : NULL;
        ss->curve[s] = run ? run->curve : b->curve;
        ss->len[s] = run ? run->ncurve : b->ncurve;
        ss->val[s] = run ? run->val : b->val;
        ss->nval[s] = run ? run->nval : b->nval;
        ss->raw[s] = calloc((size_t)ss->len[s] + 1, sizeof *ss->raw[s]);
        for (int i = 0; i < ss->len[s]; i++)
            ss->raw[s][i] = ss->curve[s][i].loss;
        ss->sm[s] = calloc((size_t)ss->len[s] + 1, sizeof *ss->sm[s]);
        plot_ema(ss->raw[s], ss->len[s], v->smoothing, ss->sm[s]);
        ss->points += ss->len[s];
    }
}

static void series_close(series_set *ss)
{
    for (int s = 0; s < ss->n; s++) {
        free(ss->raw[s]);
        free(ss->sm[s]);
    }
}

/* the axes' data ranges: x over every curve and validation point, y robust
 * (so the first steps' high loss and single spikes do not flatten the rest:
 * they run off the edge) with 6% room */
static void set_ranges(axes *a, const series_set *ss)
{
    int have_x = 0;
    for (int s = 0; s < ss->n; s++) {
        const aim_curve_point *c = ss->curve[s];
        if (ss->len[s] == 0)
            continue;
        if (!have_x || c[0].step < a->x0)
            a->x0 = (double)c[0].step;
        if (!have_x || c[ss->len[s] - 1].step > a->x1)
            a->x1 = (double)c[ss->len[s] - 1].step;
        have_x = 1;
        for (int i = 0; i < ss->nval[s]; i++)
            a->x1 = ss->val[s][i].step > a->x1 ? (double)ss->val[s][i].step : a->x1;
    }
    if (a->x1 <= a->x0)
        a->x1 = a->x0 + 1;
    double lo, hi;
    y_range(a, (const float *const *)ss->raw, (const float *const *)ss->sm, ss->len, ss->n,
            ss->val, ss->nval, &lo, &hi);
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    double pad = (hi - lo) * 0.06;
    if (pad <= 0)
        pad = fabs(hi) * 0.05 + 1e-3;
    a->y0 = lo - pad;
    a->y1 = hi + pad;
    if (!a->log_y && lo >= 0 && a->y0 < 0)
        a->y0 = 0;
}

/* the canvas: the live raw spans and lines, the compared runs' smoothed
 * curves, then the live EMA over them; and the validation points (the live
 * job's, and the compared runs' where colours and braille tell them apart
 * from the runs' marks) */
static void draw_curves(const series_set *ss, const axes *a, int top, int left, int pw, int ph)
{
    plot_canvas c;
    plot_canvas_init(&c, pw, ph);
    int px = -1, py = 0;
    for (int i = 0; i < ss->len[0]; i++) {
        const aim_curve_point *p = &ss->curve[0][i];
        int x = xdot(a, (double)p->step);
        int y = ydot(a, tf(a, p->loss));
        plot_vspan(&c, x, ydot(a, tf(a, p->lo)), ydot(a, tf(a, p->hi)), SER_RAW);
        if (px >= 0)
            plot_line(&c, px, py, x, y, SER_RAW);
        px = x;
        py = y;
    }
    for (int s = ss->n - 1; s >= 0; s--) {
        int ser = s == 0 ? SER_EMA : SER_RUN0 + s - 1;
        px = -1;
        for (int i = 0; i < ss->len[s]; i++) {
            int x = xdot(a, (double)ss->curve[s][i].step), y = ydot(a, tf(a, ss->sm[s][i]));
            if (px >= 0)
                plot_line(&c, px, py, x, y, ser);
            else
                plot_dot(&c, x, y, ser);
            px = x;
            py = y;
        }
    }
    int uni = screen_unicode(), marks = use_marks();
    for (int row = 0; row < ph; row++)
        for (int col = 0; col < pw; col++) {
            int s = plot_series(&c, col, row);
            if (!s)
                continue;
            if (s >= SER_RUN0 && s < SER_EMA) {
                int k = s - SER_RUN0;
                uint32_t g = marks ? (uint32_t)ui_run_mark(k) : plot_glyph(&c, col, row);
                screen_glyph(top + row, left + col, g, ui_run_style(k));
                continue;
            }
            uint32_t g = uni ? plot_glyph(&c, col, row) : (s == SER_EMA ? '*' : '.');
            screen_glyph(top + row, left + col, g, s == SER_EMA ? UI_EMA : UI_RAW);
        }
    plot_canvas_free(&c);
    for (int s = 0; s < ss->n && !(s > 0 && marks); s++)
        for (int i = 0; i < ss->nval[s]; i++) {
            int x = xdot(a, (double)ss->val[s][i].step) / 2;
            int y = ydot(a, tf(a, ss->val[s][i].loss)) / 4;
            if (y >= 0 && y < ph && x >= 0 && x < pw)
                screen_glyph(top + y, left + x, uni ? 0x2022 : 'o',
                             s ? ui_run_style(s - 1) : UI_VAL);
        }
}

/* the y axis with its tick labels; the x axis' step labels in row xrow */
static void draw_axes(const axes *a, ui_rect r, int top, int left, int pw, int ph)
{
    int uni = screen_unicode();
    for (int row = 0; row < ph; row++)
        screen_glyph(top + row, left - 1, uni ? 0x2502 : '|', UI_AXIS);
    double ticks[16];
    int nt = plot_ticks(a->y0, a->y1, ph / 2 + 1 < 16 ? ph / 2 + 1 : 16, a->log_y, ticks);
    for (int i = 0; i < nt; i++) {
        int row = ydot(a, ticks[i]) / 4;
        if (row < 0 || row >= ph)
            continue;
        char lab[16];
        plot_label(a->log_y ? pow(10, ticks[i]) : ticks[i], lab, sizeof lab);
        screen_ytick(top + row, r.x, YLAB - 1, left - 1, lab);
    }
    int xrow = top + ph;
    nt = plot_ticks(a->x0, a->x1, pw / 10 > 1 ? pw / 10 : 1, 0, ticks);
    int free_from = left;
    for (int i = 0; i < nt; i++) {
        char lab[16];
        ui_fmt_count(ticks[i], lab, sizeof lab);
        screen_xtick(xrow, left + xdot(a, ticks[i]) / 2, r.x + r.w, &free_from, lab);
    }
    screen_put(xrow, r.x, YLAB - 1, UI_AXIS, "  step");
}

/* the live job's learning-rate schedule as a strip of block heights */
static void draw_lr_strip(const aim_board *b, const axes *a, int lrow, int x, int left, int pw)
{
    int n = b->ncurve, uni = screen_unicode();
    float lrmax = 0;
    for (int i = 0; i < n; i++)
        lrmax = b->curve[i].lr > lrmax ? b->curve[i].lr : lrmax;
    screen_put(lrow, x, YLAB - 1, UI_LR, "    lr");
    screen_glyph(lrow, left - 1, uni ? 0x2502 : '|', UI_AXIS);
    int j = 0;
    float cur = 0;
    for (int col = 0; col < pw && lrmax > 0; col++) {
        int any = 0;
        while (j < n && xdot(a, (double)b->curve[j].step) / 2 <= col) {
            cur = b->curve[j].lr;
            j++;
            any = 1;
        }
        if (!any && (j == 0 || j >= n))
            continue;
        int lev = (int)lroundf(cur / lrmax * 8);
        if (lev <= 0)
            continue;
        lev = lev > 8 ? 8 : lev;
        uint32_t g = uni ? 0x2580u + (uint32_t)lev : (uint32_t)" .:-=+*##"[lev];
        screen_glyph(lrow, left + col, g, UI_LR);
    }
}

static void loss_draw(const ui_view *v, ui_rect r)
{
    const aim_board *b = v->board;
    const aim_compare_view *cv = compared(v);
    series_set ss;
    series_open(&ss, v, cv);
    int n = b->ncurve;
    header(v, r, ss.sm[0], n);
    int top = r.y + 1;
    if (cv && r.h > 4) { /* the legend takes a row */
        int running = v->snap.state == AIM_JOB_RUNNING || v->snap.state == AIM_JOB_PAUSED;
        legend(cv, n > 0 ? (running ? "live" : "last job") : NULL, top, r.x + 1, r.w - 1);
        top++;
    }
    int ph = r.h - (top - r.y) - 2, pw = r.w - YLAB;
    int lr_strip = n > 0;
    if (!lr_strip || ph < 3) {
        ph += 1;
        lr_strip = 0;
    }
    if (ss.points == 0 || ph < 2 || pw < 8) {
        if (ss.points == 0 && r.h > 2)
            screen_put(r.y + r.h / 2, r.x + 2, r.w - 4, UI_DIM,
                       cv                                 ? "the compared runs logged no finite loss"
                       : v->snap.job[0]                   ? "waiting for the first step..."
                       : v->script == UI_SCRIPT_RUNNING ? "the script is getting its job ready..."
                                                        : "no training: the curve shows a job's");
        series_close(&ss);
        return;
    }
    axes a = {.W = 2 * pw, .H = 4 * ph, .log_y = v->log_y};
    set_ranges(&a, &ss);
    int left = r.x + YLAB;
    draw_curves(&ss, &a, top, left, pw, ph);
    draw_axes(&a, r, top, left, pw, ph);
    if (lr_strip)
        draw_lr_strip(b, &a, top + ph + 1, r.x, left, pw);
    series_close(&ss);
}

static int loss_action(ui_view *v, const char *action)
{
    if (!strcmp(action, "log_scale")) {
        v->log_y = !v->log_y;
        return UI_HANDLED | UI_REDRAW;
    }
    if (!strcmp(action, "smooth_more") || !strcmp(action, "smooth_less")) {
        float s = v->smoothing + (action[7] == 'm' ? 0.1f : -0.1f);
        s = roundf(s * 10) / 10;
        if (s > 0.95f)
            s = 0.99f;
        if (v->smoothing >= 0.99f && action[7] == 'l')
            s = 0.9f;
        v->smoothing = s < 0 ? 0 : s;
        return UI_HANDLED | UI_REDRAW;
    }
    return 0;
}

const ui_panel panel_loss = {
    .name = "loss",
    .draw = loss_draw,
    .action = loss_action,
};
