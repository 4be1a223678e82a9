/*
 * plot.h - the arithmetic behind the loss plot and the images, with no
 * terminal in sight (so tests can check it): a braille dot canvas (2x4
 * dots per cell, one series colour per cell, highest priority wins),
 * TensorBoard's de-biased EMA, robust autoscaling, "nice" tick values,
 * and box / nearest resampling of small images.
 */
#ifndef AIM_UI_PLOT_H
#define AIM_UI_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ canvas */
typedef struct plot_canvas {
    int cols, rows;     /* cells */
    uint8_t *bits;      /* [rows*cols] braille dot bits */
    uint8_t *series;    /* [rows*cols] highest series drawn in the cell (0 = none) */
} plot_canvas;

void plot_canvas_init(plot_canvas *c, int cols, int rows);
void plot_canvas_free(plot_canvas *c);
/* Dot (x, y): x in 0..2*cols-1, y in 0..4*rows-1 from the top; out of
 * range is clipped. series >= 1 (higher wins the cell's colour). */
void plot_dot(plot_canvas *c, int x, int y, int series);
/* The dots from y0 to y1 (either order) in column x. */
void plot_vspan(plot_canvas *c, int x, int y0, int y1, int series);
/* A line from (x0, y0) to (x1, y1): for each column, the span the line
 * crosses (so steep lines stay connected). */
void plot_line(plot_canvas *c, int x0, int y0, int x1, int y1, int series);
/* The braille character of a cell: U+2800 + bits (U+2800 itself when empty). */
uint32_t plot_glyph(const plot_canvas *c, int col, int row);
int plot_series(const plot_canvas *c, int col, int row);

/* ------------------------------------------------------------ series */
/* TensorBoard's smoothing: last = last*w + (1-w)*x, out = last / (1 - w^n)
 * (de-biased, so early points do not sink towards 0). Non-finite inputs
 * are skipped (out repeats the previous value). w in [0, 1). */
void plot_ema(const float *x, int n, float w, float *out);
/* The q-quantile (0..1) of n values (copied and sorted in tmp[n]). */
float plot_quantile(const float *x, int n, float q, float *tmp);
/* Up to max "nice" tick values (1, 2, 5 x 10^k) covering [lo, hi]: returns
 * the count. logscale = 1: lo, hi are log10 values and ticks are put on
 * decades (and 2, 5 within them when there are few). */
int plot_ticks(double lo, double hi, int max, int logscale, double *ticks);
/* "0.412", "1.2e-03", "35" for a tick label (at most 7 characters) */
void plot_label(double v, char *buf, size_t len);

/* ------------------------------------------------------------ images */
/* Resample one channel plane src [sh, sw] to dst [dh, dw]: box averaging
 * when shrinking, nearest when growing. */
void plot_resample(const uint8_t *src, int sh, int sw, uint8_t *dst, int dh, int dw);

#endif
