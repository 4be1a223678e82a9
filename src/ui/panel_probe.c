/*
 * panel_probe.c - the probe panel: one bar per trunk block with its test
 * top-1 (the live linear probe while pretraining; any job that publishes
 * an aim_probe_view: attentive sweeps, LoRA epochs), the best block
 * highlighted, and the raw-pixel linear baseline as a mark across the bars.
 * A job that improves on a frozen probe (LoRA) marks that probe's top-1 on
 * its blocks and states the gain below; blocks a job does not touch say so,
 * and the title names what is being trained ("b3 epoch 7/15").
 * The bars share one axis from a round number below the lowest value (and
 * the baseline) up to 100%, so differences between blocks are visible.
 * With compared runs (aim.compare) that logged probes, the bars are grouped
 * per block, one per run in the run's colour (its mark as the bar in mono
 * or ASCII), each with its value; when the groups do not fit, one row per
 * block holds a small level cell per run and the values. They take the
 * place of a live job's probe until aim.compare{} clears them.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ui/screen.h"
#include "ui/ui.h"

/* the axis from a round number below the lowest value up to 100% */
static float axis_low(float lowest)
{
    float lo = floorf((lowest - 5) / 10) * 10;
    return lo < 0 || !isfinite(lo) ? 0 : lo;
}

/* one horizontal bar of value x on [lo, 100] over bw cells */
static void bar(int y, int x, int bw, float value, float lo, ui_style st, uint32_t fill, int uni)
{
    double f = (value - lo) / (100 - lo) * bw;
    if (!(f > 0))
        return;
    int full = (int)floor(f), eighth = (int)floor((f - full) * 8);
    for (int c = 0; c < full && c < bw; c++)
        screen_glyph(y, x + c, fill, st);
    if (uni && fill == 0x2588 && eighth > 0 && full < bw)
        screen_glyph(y, x + full, 0x2590 - (uint32_t)eighth, st);
}

/* Compared runs' last probes: grouped bars, or one row per block. */
static void compare_draw(const aim_compare_view *cv, ui_rect r)
{
    int uni = screen_unicode(), marks = !uni || screen_color_mode() == SCREEN_MONO;
    int runs[AIM_COMPARE_RUNS], nr = 0, nb = 0;
    float lowest = 100;
    int64_t step = -1;
    int same_step = 1;
    for (int k = 0; k < cv->n; k++) {
        const aim_compare_run *run = &cv->run[k];
        if (run->nprobe <= 0)
            continue;
        runs[nr++] = k;
        nb = run->nprobe > nb ? run->nprobe : nb;
        for (int l = 0; l < run->nprobe; l++)
            if (isfinite(run->top1[l]) && run->top1[l] < lowest)
                lowest = run->top1[l];
        if (step >= 0 && run->probe_step != step)
            same_step = 0;
        step = run->probe_step;
    }
    char t[96];
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "probe top-1");
    if (same_step)
        snprintf(t, sizeof t, " %d run%s @%lld", nr, nr == 1 ? "" : "s", (long long)step);
    else
        snprintf(t, sizeof t, " %d runs, last probes", nr);
    screen_put(r.y, x, r.w - (x - r.x), UI_NORMAL, t);
    float lo = axis_low(lowest);
    int rows = r.h - 2 >= 1 ? r.h - 2 : r.h - 1; /* the title, the axis line if room */
    int lab = 4, val = 6; /* "b12 " and " 81.2" */
    if (rows <= 0 || r.w < lab + val + 2)
        return;
    int y = r.y + 1;
    if (nb * nr <= rows) { /* grouped: a row per run and block */
        int bw = r.w - lab - val - 1;
        for (int l = 0; l < nb; l++)
            for (int i = 0; i < nr; i++, y++) {
                const aim_compare_run *run = &cv->run[runs[i]];
                ui_style st = ui_run_style(runs[i]);
                if (i == 0)
                    screen_putf(y, r.x, lab, UI_AXIS, "b%-2d", l + 1);
                float v1 = l < run->nprobe ? run->top1[l] : NAN;
                if (!isfinite(v1)) {
                    screen_put(y, r.x + lab + bw + 1, val, UI_DIM, "   --");
                    continue;
                }
                if (bw >= 1)
                    bar(y, r.x + lab, bw, v1, lo, st,
                        marks ? (uint32_t)ui_run_mark(runs[i]) : 0x2588u, uni);
                screen_putf(y, r.x + lab + bw + 1, val, st, "%5.1f", v1);
            }
    } else { /* a row per block: a level cell per run, then the values */
        int shown = nb <= rows ? nb : rows - 1;
        for (int l = 0; l < shown; l++, y++) {
            int cx = r.x + screen_putf(y, r.x, lab, UI_AXIS, "b%-2d", l + 1);
            for (int i = 0; i < nr && cx < r.x + r.w; i++, cx++) {
                const aim_compare_run *run = &cv->run[runs[i]];
                float v1 = l < run->nprobe ? run->top1[l] : NAN;
                ui_style st = ui_run_style(runs[i]);
                if (!isfinite(v1)) {
                    screen_glyph(y, cx, '-', UI_DIM);
                    continue;
                }
                int lev = (int)lround((v1 - lo) / (100 - lo) * 8);
                lev = lev < 1 ? 1 : lev > 8 ? 8 : lev;
                screen_glyph(y, cx, marks ? (uint32_t)ui_run_mark(runs[i]) : 0x2580u + (uint32_t)lev,
                             st);
            }
            cx++;
            for (int i = 0; i < nr; i++) {
                const aim_compare_run *run = &cv->run[runs[i]];
                float v1 = l < run->nprobe ? run->top1[l] : NAN;
                char num[16];
                snprintf(num, sizeof num, isfinite(v1) ? "%.1f" : "--", v1);
                int nw = (int)strlen(num);
                if (cx + nw > r.x + r.w)
                    break;
                screen_put(y, cx, nw, isfinite(v1) ? ui_run_style(runs[i]) : UI_DIM, num);
                cx += nw + 1;
            }
        }
        if (shown < nb) {
            snprintf(t, sizeof t, "... %d more blocks", nb - shown);
            screen_put(y++, r.x + 1, r.w - 1, UI_DIM, t);
        }
    }
    if (y < r.y + r.h) {
        snprintf(t, sizeof t, "axis %.0f-100%%", lo);
        screen_put(y, r.x + 1, r.w - 1, UI_DIM, t);
    }
}

/* the view has a reference value (a frozen probe) for block l */
static int has_ref(const aim_probe_view *p, int l)
{
    return p->ref_kind[0] && isfinite(p->ref[l]);
}

#define BAR_LAB 4 /* "b12 " */
#define BAR_VAL 6 /* " 81.2%" */

/* block i's row at y: its label, its bar (eighths) and value, or why it
 * has none; the raw pixels' and the frozen probe's marks across it */
static void bar_row(const aim_probe_view *p, int i, int y, int x0, float lo, int best, int said,
                    int bw)
{
    int uni = screen_unicode();
    const int lab = BAR_LAB, val = BAR_VAL;
    float v1 = p->top1[i];
    ui_style st = i == best ? UI_BEST : UI_BAR;
    screen_putf(y, x0, lab, i == best ? UI_BEST : UI_AXIS, "b%-2d", i + 1);
    if (isfinite(v1)) {
        double f = (v1 - lo) / (100 - lo) * bw;
        int full = (int)floor(f), eighth = (int)floor((f - full) * 8);
        for (int c = 0; c < full && c < bw; c++)
            screen_glyph(y, x0 + lab + c, uni ? 0x2588 : '#', st);
        if (eighth > 0 && full < bw)
            screen_glyph(y, x0 + lab + full, uni ? 0x2590 - (uint32_t)eighth : '#', st);
        screen_putf(y, x0 + lab + bw + 1, val, st, "%5.1f", v1);
    } else if (said && !p->role[i]) { /* a block the job leaves alone */
        screen_put(y, x0 + lab, bw + 1 + val, UI_DIM, "frozen, not probed");
    } else if (said && !(p->role[i] & AIM_BLOCK_PROBED)) {
        screen_put(y, x0 + lab, bw + 1 + val, UI_DIM, "adapted, not probed");
    } else {
        screen_put(y, x0 + lab + bw + 1, val, UI_DIM, "    --");
    }
    if (isfinite(p->baseline)) {
        int c = (int)lround((p->baseline - lo) / (100 - lo) * bw);
        if (c >= 0 && c < bw)
            screen_glyph(y, x0 + lab + c, uni ? 0x2502 : '|', UI_BASE);
    }
    if (has_ref(p, i)) { /* the frozen probe the job improves on */
        int c = (int)lround((p->ref[i] - lo) / (100 - lo) * bw);
        if (c >= 0 && c < bw)
            screen_glyph(y, x0 + lab + c, uni ? 0x2503 : '!', UI_REF);
    }
}

/* under the bars from row y: the raw pixels' mark, the frozen probe's mark
 * and the gain over it, and the axis' range */
static void footer(const aim_probe_view *p, ui_rect r, int y, float lo, int said)
{
    int uni = screen_unicode();
    char t[160];
    int x = r.x + 1;
    if (isfinite(p->baseline)) {
        x += screen_put(y, x, r.w - 1, UI_BASE, uni ? "\u2502" : "|");
        snprintf(t, sizeof t, " raw pixels %.1f", p->baseline);
        x += screen_put(y, x, r.w - (x - r.x), UI_DIM, t);
    }
    float ref = NAN, now = NAN;
    for (int l = 0; l < p->n; l++)
        if (has_ref(p, l) && (p->role[l] & AIM_BLOCK_PROBED || !said)) {
            ref = p->ref[l];
            now = p->top1[l];
            break;
        }
    if (isfinite(ref)) { /* "┃ frozen attentive 89.6" then "gain +1.2 points" */
        if (x > r.x + 1 && y + 1 < r.y + r.h) { /* the raw pixels' line is taken */
            x = r.x + 1;
            y++;
        }
        x += screen_put(y, x, r.w - (x - r.x), UI_REF, uni ? "\u2503" : "!");
        snprintf(t, sizeof t, " %s %.1f", p->ref_kind, ref);
        x += screen_put(y, x, r.w - (x - r.x), UI_DIM, t);
        if (isfinite(now)) {
            snprintf(t, sizeof t, "gain %+.1f points", now - ref);
            if (y + 1 < r.y + r.h) {
                x = r.x + 3;
                y++;
            } else {
                x += screen_put(y, x, r.w - (x - r.x), UI_DIM, ", ");
            }
            x += screen_put(y, x, r.w - (x - r.x), now >= ref ? UI_BEST : UI_ERROR, t);
        }
    }
    snprintf(t, sizeof t, "  axis %.0f-100%%", lo);
    screen_put(y, x, r.w - (x - r.x), UI_DIM, t);
}

static void probe_draw(const ui_view *v, ui_rect r)
{
    const aim_probe_view *p = &v->board->probe;
    const aim_compare_view *cv = v->cmp;
    int with_probes = 0;
    for (int k = 0; cv && k < cv->n; k++)
        with_probes += cv->run[k].nprobe > 0;
    if (with_probes) {
        compare_draw(cv, r);
        return;
    }
    char t[160];
    if (!p->kind[0]) {
        screen_put(r.y, r.x, r.w, UI_TITLE, "probe top-1");
        screen_put(r.y + 2, r.x + 1, r.w - 1, UI_DIM,
                   cv && cv->n ? "the compared runs logged no probe" : "no probe yet");
        if (r.h > 4)
            screen_put(r.y + 3, r.x + 1, r.w - 1, UI_DIM, "p: a live linear probe now");
        return;
    }
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "probe top-1");
    if (p->running && p->progress[0])
        snprintf(t, sizeof t, " %s: %s", p->kind, p->progress);
    else if (p->running)
        snprintf(t, sizeof t, " %s: probing...", p->kind);
    else
        snprintf(t, sizeof t, " %s @%lld", p->kind, (long long)p->step);
    x += screen_put(r.y, x, r.w - (x - r.x), p->running ? UI_MSG : UI_NORMAL, t);
    /* the axis */
    float lo = 100, best_v = -1;
    int best = -1;
    for (int l = 0; l < p->n; l++)
        if (isfinite(p->top1[l])) {
            lo = p->top1[l] < lo ? p->top1[l] : lo;
            if (p->top1[l] > best_v) {
                best_v = p->top1[l];
                best = l;
            }
        }
    if (isfinite(p->baseline) && p->baseline < lo)
        lo = p->baseline;
    int said = 0; /* the job says which blocks it works on */
    for (int l = 0; l < p->n; l++) {
        said |= p->role[l];
        if (has_ref(p, l) && p->ref[l] < lo)
            lo = p->ref[l];
    }
    lo = floorf((lo - 5) / 10) * 10;
    if (lo < 0 || best < 0)
        lo = 0;
    int rows = r.h - 1;
    int bw = r.w - BAR_LAB - BAR_VAL - 1;
    if (rows <= 0 || bw < 4)
        return;
    int shown = p->n < rows ? p->n : rows;
    if (p->n > rows)
        shown = rows - 1;
    for (int i = 0; i < shown; i++)
        bar_row(p, i, r.y + 1 + i, r.x, lo, best, said, bw);
    int y = r.y + 1 + shown;
    if (p->n > rows) {
        snprintf(t, sizeof t, "... %d more blocks (best: b%d)", p->n - shown, best + 1);
        screen_put(y++, r.x + 1, r.w - 1, UI_DIM, t);
    }
    if (y < r.y + r.h)
        footer(p, r, y, lo, said);
}

const ui_panel panel_probe = {
    .name = "probe",
    .draw = probe_draw,
};
