/*
 * panel_probe.c - the probe panel: one bar per trunk block with its test
 * top-1 (the live linear probe while pretraining; any job that publishes
 * an aim_probe_view: attentive sweeps, LoRA epochs), the best block
 * highlighted, and the raw-pixel linear baseline as a mark across the bars.
 * The bars share one axis from a round number below the lowest value (and
 * the baseline) up to 100%, so differences between blocks are visible.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ui/screen.h"
#include "ui/ui.h"

static void probe_draw(const ui_view *v, ui_rect r)
{
    const aim_probe_view *p = &v->board->probe;
    int uni = screen_unicode();
    char t[160];
    if (!p->kind[0]) {
        screen_put(r.y, r.x, r.w, UI_TITLE, "probe top-1");
        screen_put(r.y + 2, r.x + 1, r.w - 1, UI_DIM, "no probe yet");
        if (r.h > 4)
            screen_put(r.y + 3, r.x + 1, r.w - 1, UI_DIM, "p: a live linear probe now");
        return;
    }
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "probe top-1");
    if (p->running)
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
    lo = floorf((lo - 5) / 10) * 10;
    if (lo < 0 || best < 0)
        lo = 0;
    int rows = r.h - 1;
    int lab = 4, val = 6; /* "b12 " and " 81.2%" */
    int bw = r.w - lab - val - 1;
    if (rows <= 0 || bw < 4)
        return;
    int shown = p->n < rows ? p->n : rows;
    if (p->n > rows)
        shown = rows - 1;
    for (int i = 0; i < shown; i++) {
        int y = r.y + 1 + i;
        float v1 = p->top1[i];
        ui_style st = i == best ? UI_BEST : UI_BAR;
        screen_putf(y, r.x, lab, i == best ? UI_BEST : UI_AXIS, "b%-2d", i + 1);
        if (isfinite(v1)) {
            double f = (v1 - lo) / (100 - lo) * bw;
            int full = (int)floor(f), eighth = (int)floor((f - full) * 8);
            for (int c = 0; c < full && c < bw; c++)
                screen_glyph(y, r.x + lab + c, uni ? 0x2588 : '#', st);
            if (eighth > 0 && full < bw)
                screen_glyph(y, r.x + lab + full, uni ? 0x2590 - (uint32_t)eighth : '#', st);
            screen_putf(y, r.x + lab + bw + 1, val, st, "%5.1f", v1);
        } else {
            screen_put(y, r.x + lab + bw + 1, val, UI_DIM, "    --");
        }
        if (isfinite(p->baseline)) {
            int c = (int)lround((p->baseline - lo) / (100 - lo) * bw);
            if (c >= 0 && c < bw)
                screen_glyph(y, r.x + lab + c, uni ? 0x2502 : '|', UI_BASE);
        }
    }
    int y = r.y + 1 + shown;
    if (p->n > rows) {
        snprintf(t, sizeof t, "... %d more blocks (best: b%d)", p->n - shown, best + 1);
        screen_put(y++, r.x + 1, r.w - 1, UI_DIM, t);
    }
    if (y < r.y + r.h) {
        x = r.x + 1;
        if (isfinite(p->baseline)) {
            x += screen_put(y, x, r.w - 1, UI_BASE, uni ? "\u2502" : "|");
            snprintf(t, sizeof t, " raw pixels %.1f", p->baseline);
            x += screen_put(y, x, r.w - (x - r.x), UI_DIM, t);
        }
        snprintf(t, sizeof t, "  axis %.0f-100%%", lo);
        screen_put(y, x, r.w - (x - r.x), UI_DIM, t);
    }
}

const ui_panel panel_probe = {
    .name = "probe",
    .draw = probe_draw,
};
