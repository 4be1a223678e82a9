/*
 * plot_png.c - line and scatter plots rasterised into RGB and written as PNG
 * (aim/plot.h). Everything is drawn by hand: a white canvas, light grid
 * lines at the ticks, the series (lines 2 px wide, filled round markers of
 * radius 3, clipped to the plot area), the black frame with ticks and
 * numeric labels, the legend in the inner corner that hides the fewest
 * points, the title (twice the font size when it fits) and the axis labels
 * (the y label rotated to read upwards). Text uses the 5x7 font below in
 * 6x8 cells. Not here: log axes, antialiasing, anything but RGB.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/plot.h"

/* ------------------------------------------------------------------ font */
/* Printable ASCII 32..126, 7 rows of 5 bits each, bit 4 = leftmost column
 * (the HD44780 LCD's 5x7 shapes; descenders squeezed into the 7 rows). */
#define FONT_W 5
#define FONT_H 7
#define CELL_W 6
#define CELL_H 8
static const uint8_t font5x7[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* ! */
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}, /* # */
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D}, /* & */
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 9 */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* : */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* < */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* ? */
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E}, /* @ */
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, /* A */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, /* B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, /* C */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, /* D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, /* E */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, /* F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, /* G */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, /* L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* O */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, /* P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, /* Q */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, /* R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, /* S */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, /* W */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, /* Y */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, /* Z */
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* backslash */
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}, /* ] */
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, /* _ */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}, /* b */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, /* c */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}, /* d */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, /* e */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}, /* f */
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* h */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* k */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* l */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* n */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, /* o */
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* r */
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, /* s */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, /* w */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* y */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* ~ */
};

/* a tab10-like palette */
static const int32_t palette[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e,
                                  0x9467bd, 0x8c564b, 0xe377c2, 0x17becf};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))

int32_t aim_plot_palette(int i)
{
    return palette[(i % NPALETTE + NPALETTE) % NPALETTE];
}

/* -------------------------------------------------------------- canvas */
typedef struct canvas {
    uint8_t *rgb; /* [h, w, 3] */
    int w, h;
    int cx0, cy0, cx1, cy1; /* clip box, inclusive */
} canvas;

static void put(canvas *c, int x, int y, int32_t color)
{
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1)
        return;
    uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    p[0] = (uint8_t)(color >> 16);
    p[1] = (uint8_t)(color >> 8);
    p[2] = (uint8_t)color;
}

static void clip_all(canvas *c)
{
    c->cx0 = c->cy0 = 0;
    c->cx1 = c->w - 1;
    c->cy1 = c->h - 1;
}

static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, int32_t color)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, color);
}

/* a line of width 2 (Bresenham, each pixel with its right and lower neighbours) */
static void line(canvas *c, int x0, int y0, int x1, int y1, int32_t color)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        put(c, x0, y0, color);
        put(c, x0 + 1, y0, color);
        put(c, x0, y0 + 1, color);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static void disc(canvas *c, int x0, int y0, int r, int32_t color)
{
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++)
            if (x * x + y * y <= r * r + r)
                put(c, x0 + x, y0 + y, color);
}

static int text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (n * CELL_W - 1) * scale : 0;
}

/* s with its top-left corner at (x, y); vertical: rotated a quarter turn
 * counter-clockwise, (x, y) then being its bottom-left corner */
static void text(canvas *c, int x, int y, const char *s, int scale, int vertical, int32_t color)
{
    for (int i = 0; s[i]; i++) {
        unsigned ch = (unsigned char)s[i];
        const uint8_t *g = font5x7[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        for (int r = 0; r < FONT_H; r++)
            for (int k = 0; k < FONT_W; k++) {
                if (!(g[r] >> (FONT_W - 1 - k) & 1))
                    continue;
                int tx = (i * CELL_W + k) * scale, ty = r * scale; /* along, down the text */
                for (int a = 0; a < scale; a++)
                    for (int b = 0; b < scale; b++) {
                        if (vertical)
                            put(c, x + ty + b, y - tx - a, color);
                        else
                            put(c, x + tx + a, y + ty + b, color);
                    }
            }
    }
}

/* --------------------------------------------------------------- ticks */
#define MAX_TICKS 24
typedef struct ticks {
    int n;
    double v[MAX_TICKS];
    char label[MAX_TICKS][32];
    int maxw; /* widest label, pixels */
} ticks;

double aim_plot_nice_step(double raw)
{
    double mag = pow(10, floor(log10(raw)));
    if (raw / mag > 5)
        return 10 * mag;
    if (raw / mag > 2)
        return 5 * mag;
    if (raw / mag > 1)
        return 2 * mag;
    return mag;
}

/* Ticks at multiples of 1, 2 or 5 x 10^k inside [lo, hi], about `want` of
 * them, labelled with as many decimals as the step needs. */
static void make_ticks(double lo, double hi, int want, ticks *t)
{
    if (want < 2)
        want = 2;
    double step = aim_plot_nice_step((hi - lo) / want);
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    int use_g = fabs(lo) >= 1e7 || fabs(hi) >= 1e7 || dec > 8;
    t->n = 0;
    t->maxw = 0;
    for (double k = ceil(lo / step - 1e-9); t->n < MAX_TICKS; k++) {
        double v = k * step;
        if (v > hi + step * 1e-9)
            break;
        if (fabs(v) < step * 1e-9)
            v = 0; /* never "-0.0" */
        t->v[t->n] = v;
        if (use_g)
            snprintf(t->label[t->n], sizeof t->label[0], "%.3g", v);
        else
            snprintf(t->label[t->n], sizeof t->label[0], "%.*f", dec, v);
        int w = text_width(t->label[t->n], 1);
        t->maxw = w > t->maxw ? w : t->maxw;
        t->n++;
    }
}

/* [lo, hi] of every series' values (x: which = 0, y: 1), padded by 6% each side */
static void data_range(const aim_plot_spec *p, int which, double *lo, double *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (int s = 0; s < p->nseries; s++) {
        const double *v = which ? p->series[s].y : p->series[s].x;
        for (int i = 0; i < p->series[s].n; i++) {
            a = v[i] < a ? v[i] : a;
            b = v[i] > b ? v[i] : b;
        }
    }
    double span = b - a;
    if (!(span > 0) || !isfinite(span))
        span = fabs(a) > 0 && isfinite(a) ? fabs(a) * 0.2 : 1.0;
    if (b - a > 0 && isfinite(b - a)) {
        *lo = a - 0.06 * span;
        *hi = b + 0.06 * span;
    } else {
        *lo = a - span / 2;
        *hi = a + span / 2;
    }
}

/* --------------------------------------------------------------- check */
static int check_text(const char *what, const char *s, aim_err *e)
{
    if (s && strlen(s) > AIM_PLOT_MAX_TEXT)
        return aim_errf(e, "plot: the %s is longer than %d bytes", what, AIM_PLOT_MAX_TEXT);
    return 0;
}

int aim_plot_check(const aim_plot_spec *p, aim_err *e)
{
    if (p->width < AIM_PLOT_MIN_SIDE || p->width > AIM_PLOT_MAX_SIDE)
        return aim_errf(e, "plot: width %d is not in %d..%d", p->width, AIM_PLOT_MIN_SIDE,
                        AIM_PLOT_MAX_SIDE);
    if (p->height < AIM_PLOT_MIN_SIDE || p->height > AIM_PLOT_MAX_SIDE)
        return aim_errf(e, "plot: height %d is not in %d..%d", p->height, AIM_PLOT_MIN_SIDE,
                        AIM_PLOT_MAX_SIDE);
    if (p->nseries < 1 || p->nseries > AIM_PLOT_MAX_SERIES || !p->series)
        return aim_errf(e, "plot: %d series (1..%d)", p->nseries, AIM_PLOT_MAX_SERIES);
    if (check_text("title", p->title, e) || check_text("x label", p->xlabel, e) ||
        check_text("y label", p->ylabel, e))
        return -1;
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *r = &p->series[s];
        const char *name = r->label ? r->label : "";
        if (r->n < 1 || r->n > AIM_PLOT_MAX_POINTS || !r->x || !r->y)
            return aim_errf(e, "plot: series %d ('%s') has %d points (1..%d)", s + 1, name, r->n,
                            AIM_PLOT_MAX_POINTS);
        if (check_text("legend label", r->label, e))
            return aim_err_prefix(e, "series %d", s + 1);
        if (r->color != AIM_PLOT_AUTO_COLOR && (r->color < 0 || r->color > 0xFFFFFF))
            return aim_errf(e, "plot: series %d ('%s'): colour %d is not 0xRRGGBB", s + 1, name,
                            (int)r->color);
        if (!r->points && !r->line)
            return aim_errf(e, "plot: series %d ('%s') draws neither points nor a line", s + 1,
                            name);
        for (int i = 0; i < r->n; i++) {
            if (!isfinite(r->x[i]) || !isfinite(r->y[i]))
                break; /* named below */
            if (fabs(r->x[i]) > AIM_PLOT_MAX_VALUE || fabs(r->y[i]) > AIM_PLOT_MAX_VALUE)
                return aim_errf(e, "plot: series %d ('%s'): point %d (%g, %g) is beyond +-%g",
                                s + 1, name, i + 1, r->x[i], r->y[i], AIM_PLOT_MAX_VALUE);
        }
        for (int i = 0; i < r->n; i++) {
            if (!isfinite(r->x[i]))
                return aim_errf(e, "plot: series %d ('%s'): x[%d] = %g is not finite", s + 1,
                                name, i + 1, r->x[i]);
            if (!isfinite(r->y[i]))
                return aim_errf(e, "plot: series %d ('%s'): y[%d] = %g is not finite", s + 1,
                                name, i + 1, r->y[i]);
        }
    }
    return 0;
}

/* -------------------------------------------------------------- render */
void aim_plot_to_pixel(const aim_plot_frame *f, double x, double y, double *px, double *py)
{
    *px = f->left + (x - f->xmin) / (f->xmax - f->xmin) * (f->right - f->left);
    *py = f->bottom - (y - f->ymin) / (f->ymax - f->ymin) * (f->bottom - f->top);
}

static int32_t series_color(const aim_plot_spec *p, int s)
{
    int32_t c = p->series[s].color;
    return c == AIM_PLOT_AUTO_COLOR ? aim_plot_palette(s) : c;
}

static int has(const char *s)
{
    return s && *s;
}

/* the legend's box in the inner corner that covers the fewest points
 * (top right, top left, bottom right, bottom left on ties); 0 if no
 * series has a label */
static int legend_box(const aim_plot_spec *p, const aim_plot_frame *f, int box[4])
{
    int n = 0, wmax = 0;
    for (int s = 0; s < p->nseries; s++)
        if (has(p->series[s].label)) {
            n++;
            int w = text_width(p->series[s].label, 1);
            wmax = w > wmax ? w : wmax;
        }
    if (!n)
        return 0;
    int bw = 6 + 20 + 6 + wmax + 6, bh = 4 + n * 12 + 2;
    int best = -1;
    for (int corner = 0; corner < 4; corner++) {
        int x0 = corner & 1 ? f->left + 6 : f->right - 6 - bw;
        int y0 = corner & 2 ? f->bottom - 6 - bh : f->top + 6;
        int hidden = 0;
        for (int s = 0; s < p->nseries; s++)
            for (int i = 0; i < p->series[s].n; i++) {
                double px, py;
                aim_plot_to_pixel(f, p->series[s].x[i], p->series[s].y[i], &px, &py);
                hidden += px >= x0 - 4 && px <= x0 + bw + 4 && py >= y0 - 4 && py <= y0 + bh + 4;
            }
        if (best < 0 || hidden < best) {
            best = hidden;
            box[0] = x0;
            box[1] = y0;
            box[2] = x0 + bw;
            box[3] = y0 + bh;
        }
    }
    return 1;
}

#define WHITE 0xFFFFFF
#define BLACK 0x000000
#define GRID 0xE6E6E6
#define LEGEND_BORDER 0x999999

int aim_plot_render(const aim_plot_spec *p, uint8_t *rgb, aim_plot_frame *frame, aim_err *e)
{
    if (aim_plot_check(p, e) != 0)
        return -1;
    canvas c = {rgb, p->width, p->height, 0, 0, 0, 0};
    clip_all(&c);
    memset(rgb, 0xFF, (size_t)p->width * p->height * 3);

    /* the layout: top and bottom first (they do not depend on the tick
     * labels' widths), then the y ticks, then the left margin */
    int title_scale = has(p->title) && text_width(p->title, 2) <= p->width - 16 ? 2 : 1;
    aim_plot_frame f;
    f.top = has(p->title) ? 8 + CELL_H * title_scale + 8 : 12;
    f.bottom = p->height - 1 - (6 + CELL_H + 4 + (has(p->xlabel) ? CELL_H + 6 : 0));
    data_range(p, 0, &f.xmin, &f.xmax);
    data_range(p, 1, &f.ymin, &f.ymax);
    ticks ty, tx;
    make_ticks(f.ymin, f.ymax, (f.bottom - f.top) / 45, &ty);
    f.left = 4 + (has(p->ylabel) ? CELL_H + 6 : 0) + ty.maxw + 8;
    f.right = p->width - 1 - 16;
    if (f.bottom - f.top < 16 || f.right - f.left < 16) {
        /* a tiny canvas: the labels take it all; keep a plot area anyway */
        f.top = 4;
        f.bottom = p->height - 5;
        f.left = 4;
        f.right = p->width - 5;
    }
    make_ticks(f.xmin, f.xmax, (f.right - f.left) / 90, &tx);

    /* grid */
    double px, py;
    for (int i = 0; i < tx.n; i++) {
        aim_plot_to_pixel(&f, tx.v[i], f.ymin, &px, &py);
        fill_rect(&c, (int)lround(px), f.top, (int)lround(px), f.bottom, GRID);
    }
    for (int i = 0; i < ty.n; i++) {
        aim_plot_to_pixel(&f, f.xmin, ty.v[i], &px, &py);
        fill_rect(&c, f.left, (int)lround(py), f.right, (int)lround(py), GRID);
    }

    /* the series, clipped to the plot area: every line, then every marker */
    c.cx0 = f.left + 1;
    c.cy0 = f.top + 1;
    c.cx1 = f.right - 1;
    c.cy1 = f.bottom - 1;
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *r = &p->series[s];
        if (!r->line)
            continue;
        for (int i = 1; i < r->n; i++) {
            double ax, ay, bx, by;
            aim_plot_to_pixel(&f, r->x[i - 1], r->y[i - 1], &ax, &ay);
            aim_plot_to_pixel(&f, r->x[i], r->y[i], &bx, &by);
            line(&c, (int)lround(ax), (int)lround(ay), (int)lround(bx), (int)lround(by),
                 series_color(p, s));
        }
    }
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *r = &p->series[s];
        if (!r->points)
            continue;
        for (int i = 0; i < r->n; i++) {
            aim_plot_to_pixel(&f, r->x[i], r->y[i], &px, &py);
            disc(&c, (int)lround(px), (int)lround(py), 3, series_color(p, s));
        }
    }
    clip_all(&c);

    /* the frame, ticks and their labels */
    fill_rect(&c, f.left, f.top, f.right, f.top, BLACK);
    fill_rect(&c, f.left, f.bottom, f.right, f.bottom, BLACK);
    fill_rect(&c, f.left, f.top, f.left, f.bottom, BLACK);
    fill_rect(&c, f.right, f.top, f.right, f.bottom, BLACK);
    for (int i = 0; i < tx.n; i++) {
        aim_plot_to_pixel(&f, tx.v[i], f.ymin, &px, &py);
        int x = (int)lround(px);
        fill_rect(&c, x, f.bottom + 1, x, f.bottom + 4, BLACK);
        text(&c, x - text_width(tx.label[i], 1) / 2, f.bottom + 6, tx.label[i], 1, 0, BLACK);
    }
    for (int i = 0; i < ty.n; i++) {
        aim_plot_to_pixel(&f, f.xmin, ty.v[i], &px, &py);
        int y = (int)lround(py);
        fill_rect(&c, f.left - 4, y, f.left - 1, y, BLACK);
        text(&c, f.left - 6 - text_width(ty.label[i], 1), y - FONT_H / 2, ty.label[i], 1, 0,
             BLACK);
    }

    /* legend */
    int box[4] = {0, 0, 0, 0};
    if (legend_box(p, &f, box)) {
        fill_rect(&c, box[0], box[1], box[2], box[3], LEGEND_BORDER);
        fill_rect(&c, box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1, WHITE);
        int y = box[1] + 4;
        for (int s = 0; s < p->nseries; s++) {
            const aim_plot_series *r = &p->series[s];
            if (!has(r->label))
                continue;
            int32_t col = series_color(p, s);
            int mid = y + FONT_H / 2, x = box[0] + 6;
            if (r->line)
                line(&c, x, mid, x + 19, mid, col);
            if (r->points)
                disc(&c, x + 10, mid, 3, col);
            text(&c, x + 26, y, r->label, 1, 0, BLACK);
            y += 12;
        }
    }

    /* title and axis labels, centred on the plot area */
    int cx = (f.left + f.right) / 2, cy = (f.top + f.bottom) / 2;
    if (has(p->title))
        text(&c, cx - text_width(p->title, title_scale) / 2, 8, p->title, title_scale, 0, BLACK);
    if (has(p->xlabel))
        text(&c, cx - text_width(p->xlabel, 1) / 2, f.bottom + 6 + CELL_H + 6, p->xlabel, 1, 0,
             BLACK);
    if (has(p->ylabel))
        text(&c, 4, cy + text_width(p->ylabel, 1) / 2, p->ylabel, 1, 1, BLACK);
    if (frame)
        *frame = f;
    return 0;
}

int aim_plot_write(const char *path, const aim_plot_spec *p, aim_plot_frame *frame, aim_err *e)
{
    if (aim_plot_check(p, e) != 0)
        return -1;
    /* bounded by AIM_PLOT_MAX_SIDE: 48 MiB at most */
    uint8_t *rgb = aim_xmalloc((size_t)p->width * p->height * 3);
    int rc = aim_plot_render(p, rgb, frame, e);
    if (rc == 0)
        rc = aim_png_write(path, rgb, p->width, p->height, 3, e);
    free(rgb);
    return rc;
}

/* ------------------------------------------------------------ figures */

static size_t text_size(const char *s)
{
    return s && *s ? strlen(s) + 1 : 0;
}

/* copy s into the block at *at (NULL for none) */
static const char *put_text(char **at, const char *s)
{
    size_t n = text_size(s);
    if (!n)
        return NULL;
    memcpy(*at, s, n);
    const char *r = *at;
    *at += n;
    return r;
}

aim_figure *aim_figure_copy(const aim_plot_spec *p, aim_err *e)
{
    if (aim_plot_check(p, e) != 0)
        return NULL;
    /* the layout of the block: the figure, its series, then the values
     * (doubles, aligned after the structs), then the texts */
    size_t head = sizeof(aim_figure) + (size_t)p->nseries * sizeof(aim_plot_series);
    head = (head + sizeof(double) - 1) / sizeof(double) * sizeof(double);
    size_t values = 0, texts = text_size(p->title) + text_size(p->xlabel) + text_size(p->ylabel);
    for (int s = 0; s < p->nseries; s++) {
        values += 2 * (size_t)p->series[s].n * sizeof(double);
        texts += text_size(p->series[s].label);
    }
    aim_figure *f = aim_xmalloc(head + values + texts);
    aim_plot_series *sv = (aim_plot_series *)(f + 1);
    double *v = (double *)((char *)f + head);
    char *t = (char *)f + head + values;
    f->spec = *p;
    f->spec.series = sv;
    f->spec.title = put_text(&t, p->title);
    f->spec.xlabel = put_text(&t, p->xlabel);
    f->spec.ylabel = put_text(&t, p->ylabel);
    for (int s = 0; s < p->nseries; s++) {
        const aim_plot_series *in = &p->series[s];
        sv[s] = *in;
        memcpy(v, in->x, (size_t)in->n * sizeof(double));
        sv[s].x = v;
        v += in->n;
        memcpy(v, in->y, (size_t)in->n * sizeof(double));
        sv[s].y = v;
        v += in->n;
        sv[s].label = put_text(&t, in->label);
    }
    return f;
}

void aim_figure_free(aim_figure *f)
{
    free(f);
}
