/*
 * panel_inspect.c - the Inspect view (key i): what the trunk computed for a
 * few images, drawn from the inspection the engine publishes (aim/engine.h
 * aim_inspect_view: a pretraining job's reconstruction images, aim.inspect
 * in the console, or `aim tui --inspect WEIGHTS`), never from a model.
 *
 * Left the input image, beside it one map at patch resolution, upscaled:
 *   PCA        block l's tokens on their first 3 principal components (over
 *              the published images' tokens) as red, green, blue;
 *   attention  the attentive probe's weights over the patches (the mean of
 *              its heads, or one head: h), a heat map over the image;
 *   error      the pixel head's next-patch loss per patch, a heat map
 *              (grey: patches before S, which nothing predicts);
 * and on the right the per-block statistics (mean token norm, mean cosine
 * similarity between tokens, effective rank), the shown block marked.
 * Keys: [ ] image, < > (or , .) block, m map, h head, i or Esc back. The
 * selection lives in the view (ui_view.insp_*); it survives new publishes.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "aim/inspect.h"
#include "ui/plot.h"
#include "ui/screen.h"
#include "ui/ui.h"

enum { MAP_PCA = 0, MAP_ATTN, MAP_ERROR, MAP_COUNT };
static const char *const map_names[MAP_COUNT] = {"PCA", "attention", "error"};

#define STATS_W 27
#define MAX_PX 64 /* map width in pixels, at most */

/* the selection, clamped to what is published */
static int sel_image(const ui_view *v)
{
    int n = v->insp->n;
    return v->insp_image < 0 ? 0 : v->insp_image >= n ? n - 1 : v->insp_image;
}

static int sel_block(const ui_view *v)
{
    int d = v->insp->depth;
    if (v->insp_block < 0) /* not chosen yet: the middle of the trunk */
        return (d - 1) / 2;
    return v->insp_block >= d ? d - 1 : v->insp_block;
}

static int sel_head(const ui_view *v)
{
    return v->insp_head > v->insp->heads ? 0 : v->insp_head; /* 0 = the mean */
}

static uint32_t blend(uint32_t a, uint32_t b, float wa)
{
    uint32_t out = 0;
    for (int sh = 16; sh >= 0; sh -= 8) {
        float c = wa * (a >> sh & 255) + (1 - wa) * (b >> sh & 255);
        out |= (uint32_t)lrintf(c) << sh;
    }
    return out;
}

/* the input image resampled to w x w, as 0xRRGGBB */
static void input_pixels(const aim_inspect_view *iv, int img, int w, uint32_t *out)
{
    uint8_t plane[3][MAX_PX * MAX_PX];
    int C = iv->channels, s = iv->side;
    for (int c = 0; c < C; c++)
        plot_resample(iv->input[img] + (size_t)c * s * s, s, s, plane[c], w, w);
    for (int i = 0; i < w * w; i++)
        out[i] = C == 1 ? (uint32_t)plane[0][i] * 0x010101u
                        : (uint32_t)plane[0][i] << 16 | (uint32_t)plane[1][i] << 8 | plane[2][i];
}

/* the value of a heat map per patch: attention (mean or one head) or error */
static void heat_values(const ui_view *v, int map, int img, float *val, float *hi)
{
    const aim_inspect_view *iv = v->insp;
    int N = iv->grid * iv->grid, h = sel_head(v);
    *hi = 0;
    for (int j = 0; j < N; j++) {
        float a;
        if (map == MAP_ERROR) {
            a = iv->error[img][j];
        } else if (h > 0) {
            a = iv->attn[img][h - 1][j];
        } else {
            a = 0;
            for (int k = 0; k < iv->heads; k++)
                a += iv->attn[img][k][j] / iv->heads;
        }
        val[j] = a;
        if (!isnan(a) && a > *hi)
            *hi = a;
    }
}

static void map_pixels(const ui_view *v, int map, int img, int blk, int w, const uint32_t *in,
                       uint32_t *out)
{
    const aim_inspect_view *iv = v->insp;
    int g = iv->grid;
    float val[AIM_INSPECT_CELLS], hi = 0;
    if (map != MAP_PCA)
        heat_values(v, map, img, val, &hi);
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++) {
            int cell = (y * g / w) * g + x * g / w;
            uint32_t c;
            if (map == MAP_PCA) {
                const uint8_t *p = iv->pca[blk][img][cell];
                c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
            } else {
                c = aim_heat_rgb(hi > 0 ? val[cell] / hi : val[cell]);
                if (map == MAP_ATTN) /* over the image */
                    c = blend(c, in[y * w + x], 0.7f);
            }
            out[y * w + x] = c;
        }
}

static void draw_pixels(int y, int x, const uint32_t *px, int w)
{
    for (int cy = 0; cy < (w + 1) / 2; cy++)
        for (int cx = 0; cx < w; cx++) {
            uint32_t top = px[2 * cy * w + cx];
            uint32_t bot = 2 * cy + 1 < w ? px[(2 * cy + 1) * w + cx] : 0;
            screen_pixels(y + cy, x + cx, top, bot);
        }
}

static void draw_stats(const ui_view *v, ui_rect r, int blk)
{
    const aim_inspect_view *iv = v->insp;
    screen_put(r.y, r.x, r.w, UI_AXIS, "block  norm   cos  erank");
    int rows = r.h - 1, first = 0;
    if (iv->depth > rows) /* keep the shown block in sight */
        first = blk - rows / 2 < 0 ? 0 : blk - rows / 2 > iv->depth - rows ? iv->depth - rows
                                                                          : blk - rows / 2;
    for (int i = 0; i < rows && first + i < iv->depth; i++) {
        int l = first + i;
        screen_putf(r.y + 1 + i, r.x, r.w, l == blk ? UI_BEST : UI_NORMAL, "%s%-3d %6.2f %5.2f %6.2f",
                    l == blk ? (screen_unicode() ? "\u25b6 " : "> ") : "  ", l + 1, iv->norm[l],
                    iv->cosine[l], iv->erank[l]);
    }
}

static void inspect_draw(const ui_view *v, ui_rect r)
{
    const aim_inspect_view *iv = v->insp;
    char t[256];
    int x = r.x + screen_put(r.y, r.x, r.w, UI_TITLE, "inspect");
    if (!iv || iv->seq == 0 || iv->n == 0) {
        screen_put(r.y, x, r.w - (x - r.x), UI_NORMAL, "  i or Esc: back");
        const char *lines[] = {
            "nothing to inspect yet:",
            "a pretraining job publishes maps of its reconstruction images,",
            "aim.inspect(m, x) in the console publishes those of any images,",
            "`aim tui --inspect WEIGHTS` those of a saved model.",
        };
        for (int i = 0; i < 4 && 2 + i < r.h; i++)
            screen_put(r.y + 2 + i, r.x + 2, r.w - 2, UI_DIM, lines[i]);
        return;
    }
    int img = sel_image(v), blk = sel_block(v), map = v->insp_map % MAP_COUNT;
    snprintf(t, sizeof t, "  image %d/%d  block %d/%d  map %s  \u00b7 %s", img + 1, iv->n,
             blk + 1, iv->depth, map_names[map], iv->source);
    if (!screen_unicode())
        snprintf(t, sizeof t, "  image %d/%d  block %d/%d  map %s  - %s", img + 1, iv->n,
                 blk + 1, iv->depth, map_names[map], iv->source);
    screen_put(r.y, x, r.w - (x - r.x), UI_NORMAL, t);

    /* sizes: two images and the statistics */
    int stats_w = r.w >= 64 ? STATS_W : 0;
    int gap = 2;
    int w = (r.w - stats_w - 3 * gap) / 2;
    int rows = r.h - 3; /* title, caption, key line */
    if (w > 2 * rows)
        w = 2 * rows;
    if (w > MAX_PX)
        w = MAX_PX;
    /* whole screen pixels per image pixel from 2x on, else per patch */
    int unit = w >= 2 * iv->side ? iv->side : iv->grid;
    if (w >= unit)
        w -= w % unit;
    if (w < 4 || rows < 2) {
        screen_put(r.y + 1, r.x + 1, r.w - 1, UI_DIM, "(too small to show the maps)");
        return;
    }
    uint32_t in[MAX_PX * MAX_PX], out[MAX_PX * MAX_PX];
    input_pixels(iv, img, w, in);
    int x0 = r.x + gap, x1 = x0 + w + gap, y0 = r.y + 1;
    draw_pixels(y0, x0, in, w);
    int yc = y0 + (w + 1) / 2;
    snprintf(t, sizeof t, "input %d", img + 1);
    screen_put(yc, x0, w, UI_AXIS, t);
    if (map == MAP_ATTN && iv->heads == 0) {
        const char *lines[] = {"no attentive probe:", "aim.inspect(m, x,", " {probe = r})",
                               "with r = aim.probe(...)", "or a file saved", "with a probe"};
        for (int i = 0; i < 6 && i < rows; i++)
            screen_put(y0 + i, x1, w + gap, UI_DIM, lines[i]);
    } else {
        map_pixels(v, map, img, blk, w, in, out);
        draw_pixels(y0, x1, out, w);
    }
    if (map == MAP_PCA) /* the share of the variance on each component */
        snprintf(t, sizeof t, "PC1-3 %.0f %.0f %.0f%%", 100 * iv->explained[blk][0],
                 100 * iv->explained[blk][1], 100 * iv->explained[blk][2]);
    else if (map == MAP_ATTN && iv->heads > 0 && sel_head(v) > 0)
        snprintf(t, sizeof t, "head %d of %d", sel_head(v), iv->heads);
    else if (map == MAP_ATTN)
        snprintf(t, sizeof t, "mean of %d heads", iv->heads);
    else
        snprintf(t, sizeof t, "S=%d loss %.3f", iv->prefix, iv->loss[img]);
    screen_put(yc, x1, stats_w ? w + gap : r.x + r.w - x1, UI_AXIS, t);
    if (stats_w) {
        ui_rect sr = {r.y + 1, x1 + w + gap + 1, r.h - 2, r.x + r.w - (x1 + w + gap + 1)};
        draw_stats(v, sr, blk);
        if (map == MAP_ATTN && iv->probe[0] && sr.h > iv->depth + 2)
            screen_put(sr.y + iv->depth + 2, sr.x, sr.w, UI_DIM, iv->probe);
    }
    screen_put(r.y + r.h - 1, r.x + gap, r.w - gap, UI_DIM,
               "[ ] image   < > block   m map (PCA, attention, error)   h head   i Esc back");
}

static void say(ui_view *v, const char *text)
{
    snprintf(v->message, sizeof v->message, "%s", text);
    v->message_error = 0;
    v->message_time = v->now;
}

static int inspect_action(ui_view *v, const char *a)
{
    if (!strcmp(a, "inspect")) {
        v->inspect = !v->inspect;
        return UI_HANDLED | UI_REDRAW;
    }
    if (!strcmp(a, "back") && v->inspect) {
        v->inspect = 0;
        return UI_HANDLED | UI_REDRAW;
    }
    if (strncmp(a, "inspect_", 8) != 0)
        return 0;
    if (!v->inspect) {
        say(v, "that key works in the Inspect view: press i");
        return UI_HANDLED | UI_REDRAW;
    }
    const aim_inspect_view *iv = v->insp;
    if (!iv || iv->seq == 0 || iv->n == 0)
        return UI_HANDLED;
    a += 8;
    if (!strcmp(a, "next_image") || !strcmp(a, "prev_image"))
        v->insp_image = (sel_image(v) + (a[0] == 'n' ? 1 : iv->n - 1)) % iv->n;
    else if (!strcmp(a, "next_block") || !strcmp(a, "prev_block"))
        v->insp_block = (sel_block(v) + (a[0] == 'n' ? 1 : iv->depth - 1)) % iv->depth;
    else if (!strcmp(a, "map"))
        v->insp_map = (v->insp_map + 1) % MAP_COUNT;
    else if (!strcmp(a, "head")) {
        if (v->insp_map % MAP_COUNT != MAP_ATTN || iv->heads == 0)
            say(v, "h picks a probe head in the attention map (m switches maps)");
        else
            v->insp_head = (sel_head(v) + 1) % (iv->heads + 1);
    } else
        return 0;
    return UI_HANDLED | UI_REDRAW;
}

const ui_panel panel_inspect = {
    .name = "inspect",
    .draw = inspect_draw,
    .action = inspect_action,
};
