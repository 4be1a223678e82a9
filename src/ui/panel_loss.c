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

enum { SER_RAW = 1, SER_EMA = 2 };

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

/* the header: fields by priority (the value, the smoothed value with its
 * weight, the axis scale, the last validation, the minimum) */
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
        if (b->nval > 0)
            snprintf(f[H_VAL], sizeof f[0], "val %.4f", b->val[b->nval - 1].loss);
    } else {
        snprintf(f[H_EMA], sizeof f[0], "ema(%.2f)", v->smoothing);
    }
    snprintf(f[H_SCALE], sizeof f[0], "%s", v->log_y ? "log" : "linear");
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "loss");
    int left = r.w - (x - r.x), used = 0, on[NH] = {0};
    if (b->nonfinite > 0)
        left -= 12;
    for (int k = 0; k < NH; k++) {
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
        screen_putf(r.y, x, r.w - (x - r.x), UI_ERROR, "  %d NaN/Inf", b->nonfinite);
}

static void loss_draw(const ui_view *v, ui_rect r)
{
    const aim_board *b = v->board;
    int n = b->ncurve;
    float *mean = calloc((size_t)n + 1, sizeof *mean), *ema = calloc((size_t)n + 1, sizeof *ema);
    float *tmp = calloc((size_t)n + b->nval + 1, sizeof *tmp);
    for (int i = 0; i < n; i++)
        mean[i] = b->curve[i].loss;
    plot_ema(mean, n, v->smoothing, ema);
    header(v, r, ema, n);
    int ph = r.h - 3, pw = r.w - YLAB;
    int lr_strip = 1;
    if (ph < 3) {
        ph = r.h - 2;
        lr_strip = 0;
    }
    if (n == 0 || ph < 2 || pw < 8) {
        if (n == 0 && r.h > 2)
            screen_put(r.y + r.h / 2, r.x + 2, r.w - 4, UI_DIM,
                       v->snap.job[0]                     ? "waiting for the first step..."
                       : v->script == UI_SCRIPT_RUNNING ? "the script is getting its job ready..."
                                                        : "no training: the curve shows a job's");
        free(mean);
        free(ema);
        free(tmp);
        return;
    }

    axes a = {.W = 2 * pw, .H = 4 * ph, .log_y = v->log_y};
    a.x0 = b->curve[0].step;
    a.x1 = b->curve[n - 1].step;
    for (int i = 0; i < b->nval; i++)
        a.x1 = b->val[i].step > a.x1 ? b->val[i].step : a.x1;
    if (a.x1 <= a.x0)
        a.x1 = a.x0 + 1;
    /* y range: robust (the 2..98% quantiles of the raw and the smoothed
     * series once there are enough points, so the first steps' high loss and
     * single spikes do not flatten the rest; they run off the edge), and
     * every validation point */
    float qlo = n > 20 ? 0.02f : 0.0f, qhi = n > 20 ? 0.98f : 1.0f;
    for (int i = 0; i < n; i++)
        tmp[i] = (float)tf(&a, mean[i]);
    double lo = plot_quantile(tmp, n, qlo, tmp);
    for (int i = 0; i < n; i++)
        tmp[i] = (float)tf(&a, mean[i]);
    double hi = plot_quantile(tmp, n, qhi, tmp);
    for (int i = 0; i < n; i++)
        tmp[i] = (float)tf(&a, ema[i]);
    double elo = plot_quantile(tmp, n, qlo, tmp);
    for (int i = 0; i < n; i++)
        tmp[i] = (float)tf(&a, ema[i]);
    double ehi = plot_quantile(tmp, n, qhi, tmp);
    if (isfinite(elo) && (!isfinite(lo) || elo < lo))
        lo = elo;
    if (isfinite(ehi) && (!isfinite(hi) || ehi > hi))
        hi = ehi;
    for (int i = 0; i < b->nval; i++) {
        double t = tf(&a, b->val[i].loss);
        if (isfinite(t)) {
            lo = !isfinite(lo) || t < lo ? t : lo;
            hi = !isfinite(hi) || t > hi ? t : hi;
        }
    }
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    double pad = (hi - lo) * 0.06;
    if (pad <= 0)
        pad = fabs(hi) * 0.05 + 1e-3;
    a.y0 = lo - pad;
    a.y1 = hi + pad;
    if (!v->log_y && lo >= 0 && a.y0 < 0)
        a.y0 = 0;

    /* the canvas: raw spans and lines, then the EMA over them */
    plot_canvas c;
    plot_canvas_init(&c, pw, ph);
    int px = -1, py = 0;
    for (int i = 0; i < n; i++) {
        const aim_curve_point *p = &b->curve[i];
        int x = xdot(&a, (double)p->step);
        int y = ydot(&a, tf(&a, p->loss));
        plot_vspan(&c, x, ydot(&a, tf(&a, p->lo)), ydot(&a, tf(&a, p->hi)), SER_RAW);
        if (px >= 0)
            plot_line(&c, px, py, x, y, SER_RAW);
        px = x;
        py = y;
    }
    px = -1;
    for (int i = 0; i < n; i++) {
        int x = xdot(&a, (double)b->curve[i].step), y = ydot(&a, tf(&a, ema[i]));
        if (px >= 0)
            plot_line(&c, px, py, x, y, SER_EMA);
        else
            plot_dot(&c, x, y, SER_EMA);
        px = x;
        py = y;
    }
    int uni = screen_unicode();
    int top = r.y + 1, left = r.x + YLAB;
    for (int row = 0; row < ph; row++)
        for (int col = 0; col < pw; col++) {
            int s = plot_series(&c, col, row);
            if (!s)
                continue;
            uint32_t g = uni ? plot_glyph(&c, col, row) : (s == SER_EMA ? '*' : '.');
            screen_glyph(top + row, left + col, g, s == SER_EMA ? UI_EMA : UI_RAW);
        }
    for (int i = 0; i < b->nval; i++) {
        int x = xdot(&a, (double)b->val[i].step) / 2, y = ydot(&a, tf(&a, b->val[i].loss)) / 4;
        if (y >= 0 && y < ph && x >= 0 && x < pw)
            screen_glyph(top + y, left + x, uni ? 0x2022 : 'o', UI_VAL);
    }
    plot_canvas_free(&c);

    /* y axis */
    for (int row = 0; row < ph; row++)
        screen_glyph(top + row, left - 1, uni ? 0x2502 : '|', UI_AXIS);
    double ticks[16];
    int nt = plot_ticks(a.y0, a.y1, ph / 2 + 1 < 16 ? ph / 2 + 1 : 16, v->log_y, ticks);
    for (int i = 0; i < nt; i++) {
        int row = ydot(&a, ticks[i]) / 4;
        if (row < 0 || row >= ph)
            continue;
        char lab[16];
        plot_label(v->log_y ? pow(10, ticks[i]) : ticks[i], lab, sizeof lab);
        int lw = (int)strlen(lab);
        screen_put(top + row, r.x + (YLAB - 1 - lw > 0 ? YLAB - 1 - lw : 0), YLAB - 1, UI_AXIS,
                   lab);
        screen_glyph(top + row, left - 1, uni ? 0x2524 : '+', UI_AXIS);
    }
    /* x axis: step labels */
    int xrow = top + ph;
    nt = plot_ticks(a.x0, a.x1, pw / 10 > 1 ? pw / 10 : 1, 0, ticks);
    int free_from = left;
    for (int i = 0; i < nt; i++) {
        char lab[16];
        ui_fmt_count(ticks[i], lab, sizeof lab);
        int col = left + xdot(&a, ticks[i]) / 2, lw = (int)strlen(lab);
        int at = col - lw / 2;
        if (at < free_from)
            at = free_from;
        if (at + lw > r.x + r.w)
            at = r.x + r.w - lw;
        if (at < free_from)
            continue;
        screen_put(xrow, at, lw, UI_AXIS, lab);
        free_from = at + lw + 2;
    }
    screen_put(xrow, r.x, YLAB - 1, UI_AXIS, "  step");
    /* the learning-rate strip */
    if (lr_strip) {
        int lrow = xrow + 1;
        float lrmax = 0;
        for (int i = 0; i < n; i++)
            lrmax = b->curve[i].lr > lrmax ? b->curve[i].lr : lrmax;
        screen_put(lrow, r.x, YLAB - 1, UI_LR, "    lr");
        screen_glyph(lrow, left - 1, uni ? 0x2502 : '|', UI_AXIS);
        int j = 0;
        float cur = 0;
        for (int col = 0; col < pw && lrmax > 0; col++) {
            int any = 0;
            while (j < n && xdot(&a, (double)b->curve[j].step) / 2 <= col) {
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
    free(mean);
    free(ema);
    free(tmp);
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
