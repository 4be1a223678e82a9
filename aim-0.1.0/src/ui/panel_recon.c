/*
 * panel_recon.c - the reconstruction panel: a few fixed test images, each
 * shown as input (patches from S on greyed out) | next-patch prediction
 * (each patch predicted from the ones before it, un-normalised with the
 * target patch's mean/std) | target, drawn with half blocks (two pixels
 * per cell) in 256 or direct colour, or shaded blocks / ASCII shades where
 * the terminal has fewer colours or no UTF-8 (screen_pixels decides). The
 * images are scaled (2x, 1x, or box-filtered down) and counted so that the
 * most pixels fit: fewer, larger images on a small terminal.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ui/plot.h"
#include "ui/screen.h"
#include "ui/ui.h"

#define GAP 1   /* between the three panes of an image */
#define SEP 3   /* between images */

typedef struct grid {
    int w;       /* pixels (= columns) per image side */
    int per_row; /* images per grid row */
    int n;       /* images shown */
} grid;

/* the largest image width at which n images fit in cols x rows cells
 * (2x, 1x, or smaller); 0 if none does */
static int fit_width(int n, int cols, int rows, int side, grid *g)
{
    for (int w = 2 * side; w >= 4; w = w == 2 * side ? side : w - 1) {
        int tw = 3 * w + 2 * GAP;
        int per = (cols + SEP) / (tw + SEP);
        if (per < 1)
            continue;
        int grows = (n + per - 1) / per, h = (w + 1) / 2;
        if (grows * h + (grows - 1) <= rows) {
            *g = (grid){w, per < n ? per : n, n};
            return w;
        }
    }
    return 0;
}

/* how many images at what size: the most pixels on screen (ties: more images) */
static int choose(int n, int cols, int rows, int side, grid *g)
{
    long best = 0;
    for (int k = n; k >= 1; k--) {
        grid c;
        int w = fit_width(k, cols, rows, side, &c);
        if (w > 0 && (long)k * w * w > best) {
            best = (long)k * w * w;
            *g = c;
        }
    }
    return best > 0;
}

static uint32_t rgb_at(const uint8_t *planes[3], int C, int i)
{
    if (C == 1)
        return (uint32_t)planes[0][i] * 0x010101u;
    return (uint32_t)planes[0][i] << 16 | (uint32_t)planes[1][i] << 8 | planes[2][i];
}

static void draw_image(int y, int x, const uint8_t *pix, int C, int side, int w)
{
    uint8_t scaled[3][2 * AIM_RECON_SIDE * 2 * AIM_RECON_SIDE];
    const uint8_t *planes[3];
    for (int c = 0; c < C; c++) {
        plot_resample(pix + (size_t)c * side * side, side, side, scaled[c], w, w);
        planes[c] = scaled[c];
    }
    for (int cy = 0; cy < (w + 1) / 2; cy++)
        for (int cx = 0; cx < w; cx++) {
            uint32_t top = rgb_at(planes, C, 2 * cy * w + cx);
            uint32_t bot = 2 * cy + 1 < w ? rgb_at(planes, C, (2 * cy + 1) * w + cx) : 0;
            screen_pixels(y + cy, x + cx, top, bot);
        }
}

static void recon_draw(const ui_view *v, ui_rect r)
{
    const aim_recon_view *rv = &v->board->recon;
    char t[160];
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "reconstruction");
    if (rv->n == 0) {
        screen_put(r.y + 1 + (r.h - 1) / 2, r.x + 2, r.w - 2, UI_DIM,
                   v->snap.job[0] ? "the first reconstructions come after the first step"
                                  : "none yet: a job with reconstruction images shows them here");
        return;
    }
    int N = rv->patch > 0 ? (rv->side / rv->patch) * (rv->side / rv->patch) : 0;
    snprintf(t, sizeof t, " @%lld  input | prediction | target  S=%d/%d  loss %.4f",
             (long long)rv->step, rv->prefix, N, rv->loss);
    screen_put(r.y, x, r.w - (x - r.x), UI_NORMAL, t);
    grid g = {0, 0, 0};
    if (!choose(rv->n, r.w, r.h - 1, rv->side, &g)) {
        screen_put(r.y + 1, r.x + 1, r.w - 1, UI_DIM, "(too small to show images)");
        return;
    }
    int tw = 3 * g.w + 2 * GAP;
    int used = g.per_row * tw + (g.per_row - 1) * SEP;
    int x0 = r.x + (r.w - used) / 2;
    for (int i = 0; i < g.n; i++) {
        int gr = i / g.per_row, gc = i % g.per_row;
        int y = r.y + 1 + gr * ((g.w + 1) / 2 + 1);
        int xi = x0 + gc * (tw + SEP);
        for (int k = 0; k < 3; k++)
            draw_image(y, xi + k * (g.w + GAP), rv->pix[i][k], rv->channels, rv->side, g.w);
    }
}

const ui_panel panel_recon = {
    .name = "recon",
    .draw = recon_draw,
};
