/*
 * plot.c - see plot.h: braille canvas, EMA, autoscale helpers, ticks and
 * image resampling. Pure arithmetic; the panels turn it into cells.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/plot.h"
#include "ui/plot.h"

/* ------------------------------------------------------------ canvas */

void plot_canvas_init(plot_canvas *c, int cols, int rows)
{
    c->cols = cols > 0 ? cols : 0;
    c->rows = rows > 0 ? rows : 0;
    size_t n = (size_t)c->cols * c->rows;
    c->bits = aim_xcalloc(n ? n : 1, 1);
    c->series = aim_xcalloc(n ? n : 1, 1);
}

void plot_canvas_free(plot_canvas *c)
{
    free(c->bits);
    free(c->series);
    c->bits = c->series = NULL;
}

/* bit of dot (dx, dy) inside a cell, dx 0..1, dy 0..3 */
static const uint8_t dot_bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

void plot_dot(plot_canvas *c, int x, int y, int series)
{
    if (x < 0 || y < 0 || x >= 2 * c->cols || y >= 4 * c->rows)
        return;
    size_t at = (size_t)(y / 4) * c->cols + x / 2;
    c->bits[at] |= dot_bit[y % 4][x % 2];
    if (series > c->series[at])
        c->series[at] = (uint8_t)series;
}

void plot_vspan(plot_canvas *c, int x, int y0, int y1, int series)
{
    if (y0 > y1) {
        int t = y0;
        y0 = y1;
        y1 = t;
    }
    if (y0 < 0)
        y0 = 0;
    if (y1 >= 4 * c->rows)
        y1 = 4 * c->rows - 1;
    for (int y = y0; y <= y1; y++)
        plot_dot(c, x, y, series);
}

void plot_line(plot_canvas *c, int x0, int y0, int x1, int y1, int series)
{
    if (x1 < x0) {
        int t = x0;
        x0 = x1;
        x1 = t;
        t = y0;
        y0 = y1;
        y1 = t;
    }
    if (x0 == x1) {
        plot_vspan(c, x0, y0, y1, series);
        return;
    }
    /* each column gets the span between the line's y at its two edges */
    double slope = (double)(y1 - y0) / (x1 - x0);
    for (int x = x0; x <= x1; x++) {
        double a = y0 + slope * (x - x0 - 0.5), b = y0 + slope * (x - x0 + 0.5);
        double lo = a < b ? a : b, hi = a < b ? b : a;
        double ylo = y0 < y1 ? y0 : y1, yhi = y0 < y1 ? y1 : y0;
        lo = lo < ylo ? ylo : lo;
        hi = hi > yhi ? yhi : hi;
        plot_vspan(c, x, (int)lround(lo), (int)lround(hi), series);
    }
}

uint32_t plot_glyph(const plot_canvas *c, int col, int row)
{
    return 0x2800u + c->bits[(size_t)row * c->cols + col];
}

int plot_series(const plot_canvas *c, int col, int row)
{
    return c->series[(size_t)row * c->cols + col];
}

/* ------------------------------------------------------------ series */

void plot_ema(const float *x, int n, float w, float *out)
{
    double last = 0, wn = 1, prev = NAN;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            out[i] = (float)prev;
            continue;
        }
        last = last * w + (1.0 - w) * x[i];
        wn *= w;
        prev = w > 0 ? last / (1.0 - wn) : x[i];
        out[i] = (float)prev;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

float plot_quantile(const float *x, int n, float q, float *tmp)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]))
            tmp[k++] = x[i];
    if (k == 0)
        return NAN;
    qsort(tmp, (size_t)k, sizeof *tmp, cmp_float);
    double pos = q * (k - 1);
    int i = (int)floor(pos);
    if (i >= k - 1)
        return tmp[k - 1];
    return (float)(tmp[i] + (pos - i) * (tmp[i + 1] - tmp[i]));
}

int plot_ticks(double lo, double hi, int max, int logscale, double *ticks)
{
    if (!(hi > lo) || max < 1)
        return 0;
    int n = 0;
    if (logscale) {
        int d0 = (int)ceil(lo - 1e-9), d1 = (int)floor(hi + 1e-9);
        if (d1 - d0 + 1 >= 2) {
            int every = (d1 - d0) / max + 1;
            for (int d = d0; d <= d1 && n < max; d += every)
                ticks[n++] = d;
            return n;
        }
        /* less than two decades: 1, 2, 5 within them */
        static const double m[3] = {1, 2, 5};
        for (int d = (int)floor(lo) ; d <= (int)ceil(hi) && n < max; d++)
            for (int j = 0; j < 3 && n < max; j++) {
                double v = d + log10f((float)m[j]);
                if (v >= lo - 1e-9 && v <= hi + 1e-9)
                    ticks[n++] = v;
            }
        if (n >= 2)
            return n;
        /* a narrow range: round values, placed on the log axis */
        n = plot_ticks(pow(10, lo), pow(10, hi), max, 0, ticks);
        for (int i = 0; i < n; i++)
            ticks[i] = ticks[i] > 0 ? log10(ticks[i]) : lo;
        return n;
    }
    double step = aim_plot_nice_step((hi - lo) / max);
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < max; v += step)
        ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

void plot_label(double v, char *buf, size_t len)
{
    double a = fabs(v);
    if (a == 0)
        snprintf(buf, len, "0");
    else if (a >= 1e4 || a < 1e-3)
        snprintf(buf, len, "%.1e", v);
    else
        snprintf(buf, len, "%.3g", v);
}

/* ------------------------------------------------------------ images */

void plot_resample(const uint8_t *src, int sh, int sw, uint8_t *dst, int dh, int dw)
{
    for (int y = 0; y < dh; y++) {
        int y0 = y * sh / dh, y1 = (y + 1) * sh / dh;
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < dw; x++) {
            int x0 = x * sw / dw, x1 = (x + 1) * sw / dw;
            if (x1 <= x0)
                x1 = x0 + 1;
            unsigned s = 0, n = 0;
            for (int yy = y0; yy < y1 && yy < sh; yy++)
                for (int xx = x0; xx < x1 && xx < sw; xx++) {
                    s += src[yy * sw + xx];
                    n++;
                }
            dst[y * dw + x] = (uint8_t)(n ? (s + n / 2) / n : 0);
        }
    }
}
