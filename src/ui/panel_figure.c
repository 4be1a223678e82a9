/*
 * panel_figure.c - the figure view: the plot a script published with
 * aim.plot{show = true} (the same spec as the PNG: title, axis labels,
 * series of points and lines), drawn in the loss plot's place in braille,
 * each series in a compared run's colour (its mark without colour), with
 * tick labels on both axes and a legend. The first figure a script shows
 * comes up by itself; f switches between it and the loss curve. The data
 * range is the points' own, padded by 6% (as the PNG's).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aim/plot.h"
#include "ui/plot.h"
#include "ui/screen.h"
#include "ui/ui.h"

#define YLAB 8 /* label columns, the axis included */

typedef struct range {
    double lo, hi;
} range;

/* the points' range padded by 6%; a single value gets a window around it */
static range pad(double lo, double hi)
{
    double p = (hi - lo) * 0.06;
    if (!(p > 0))
        p = fabs(hi) * 0.05 > 0 ? fabs(hi) * 0.05 : 0.5;
    return (range){lo - p, hi + p};
}

static int to_dot(double v, range r, int n, int flip)
{
    double t = (v - r.lo) / (r.hi - r.lo) * (n - 1);
    int d = (int)lround(t);
    return flip ? n - 1 - d : d;
}

static int use_marks(void)
{
    return !screen_unicode() || screen_color_mode() == SCREEN_MONO;
}

/* the legend: each labelled series' mark and label in its style, from x on */
static void legend(const aim_plot_spec *p, int y, int x, int w)
{
    int end = x + w;
    for (int s = 0; s < p->nseries && x < end - 4; s++) {
        const char *lab = p->series[s].label;
        if (!lab || !*lab)
            continue;
        ui_style st = ui_run_style(s % AIM_COMPARE_RUNS);
        screen_glyph(y, x, use_marks() ? (uint32_t)ui_run_mark(s % AIM_COMPARE_RUNS) : 0x25CF,
                     st);
        char clip[AIM_PLOT_MAX_TEXT + 1];
        ui_text_clip(lab, end - x - 2, clip, sizeof clip);
        screen_put(y, x + 2, end - x - 2, st, clip);
        x += 2 + ui_text_width(clip) + 3;
    }
}

static void figure_draw(const ui_view *v, ui_rect r)
{
    const aim_figure *f = v->fig;
    if (!f || r.h < 3 || r.w < 20)
        return;
    const aim_plot_spec *p = &f->spec;
    char head[AIM_PLOT_MAX_TEXT + 64];
    snprintf(head, sizeof head, "%s", p->title && *p->title ? p->title : "figure");
    screen_put(r.y, r.x + 1, r.w - 1, UI_TITLE, head);
    const char *hint = "f: loss curve";
    int hw = (int)strlen(hint), tw = ui_text_width(head);
    if (r.w - 1 - tw > hw + 2)
        screen_put(r.y, r.x + r.w - hw - 1, hw, UI_DIM, hint);
    /* the y label, then the legend */
    int top = r.y + 1, x = r.x + 1;
    if (p->ylabel && *p->ylabel) {
        char clip[AIM_PLOT_MAX_TEXT + 1];
        ui_text_clip(p->ylabel, r.w / 2, clip, sizeof clip);
        screen_put(top, x, r.w - 1, UI_AXIS, clip);
        x += ui_text_width(clip) + 3;
    }
    legend(p, top, x, r.x + r.w - x);
    top++;
    int has_xlabel = p->xlabel && *p->xlabel;
    int ph = r.h - (top - r.y) - 1 - has_xlabel, pw = r.w - YLAB;
    if (ph < 2 || pw < 8)
        return;

    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double px = p->series[s].x[i], py = p->series[s].y[i];
            x0 = px < x0 ? px : x0;
            x1 = px > x1 ? px : x1;
            y0 = py < y0 ? py : y0;
            y1 = py > y1 ? py : y1;
        }
    range rx = pad(x0, x1), ry = pad(y0, y1);
    int W = 2 * pw, H = 4 * ph, left = r.x + YLAB;

    /* lines in braille (series s + 1: a later series wins a shared cell) */
    plot_canvas c;
    plot_canvas_init(&c, pw, ph);
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *se = &p->series[s];
        for (int i = 0; i < se->n; i++) {
            int dx = to_dot(se->x[i], rx, W, 0), dy = to_dot(se->y[i], ry, H, 1);
            if (se->line && i > 0)
                plot_line(&c, to_dot(se->x[i - 1], rx, W, 0), to_dot(se->y[i - 1], ry, H, 1), dx,
                          dy, s + 1);
            else
                plot_dot(&c, dx, dy, s + 1);
        }
    }
    int marks = use_marks();
    for (int row = 0; row < ph; row++)
        for (int col = 0; col < pw; col++) {
            int s = plot_series(&c, col, row);
            if (s)
                screen_glyph(top + row, left + col, marks ? '.' : plot_glyph(&c, col, row),
                             ui_run_style((s - 1) % AIM_COMPARE_RUNS));
        }
    plot_canvas_free(&c);
    /* the points as markers on top */
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *se = &p->series[s];
        if (!se->points)
            continue;
        uint32_t g = marks ? (uint32_t)ui_run_mark(s % AIM_COMPARE_RUNS) : 0x25CF;
        for (int i = 0; i < se->n; i++) {
            int col = to_dot(se->x[i], rx, W, 0) / 2, row = to_dot(se->y[i], ry, H, 1) / 4;
            if (row >= 0 && row < ph && col >= 0 && col < pw)
                screen_glyph(top + row, left + col, g, ui_run_style(s % AIM_COMPARE_RUNS));
        }
    }

    /* the y axis and its ticks */
    int uni = screen_unicode();
    for (int row = 0; row < ph; row++)
        screen_glyph(top + row, left - 1, uni ? 0x2502 : '|', UI_AXIS);
    double ticks[16];
    int nt = plot_ticks(ry.lo, ry.hi, ph / 2 + 1 < 16 ? ph / 2 + 1 : 16, 0, ticks);
    for (int i = 0; i < nt; i++) {
        int row = to_dot(ticks[i], ry, H, 1) / 4;
        if (row < 0 || row >= ph)
            continue;
        char lab[16];
        plot_label(ticks[i], lab, sizeof lab);
        screen_ytick(top + row, r.x, YLAB - 1, left - 1, lab);
    }
    /* the x axis: tick labels, then the x label */
    int xrow = top + ph;
    nt = plot_ticks(rx.lo, rx.hi, pw / 10 > 1 ? pw / 10 : 1, 0, ticks);
    int free_from = left;
    for (int i = 0; i < nt; i++) {
        char lab[16];
        plot_label(ticks[i], lab, sizeof lab);
        screen_xtick(xrow, left + to_dot(ticks[i], rx, W, 0) / 2, r.x + r.w, &free_from, lab);
    }
    if (has_xlabel) {
        char clip[AIM_PLOT_MAX_TEXT + 1];
        ui_text_clip(p->xlabel, pw, clip, sizeof clip);
        int lw = ui_text_width(clip);
        screen_put(xrow + 1, left + (pw - lw) / 2, lw, UI_AXIS, clip);
    }
}

const ui_panel panel_figure = {
    .name = "figure",
    .draw = figure_draw,
};
