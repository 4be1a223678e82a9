/*
 * aim/plot.h - line and scatter plots as RGB images and PNG files: axes with
 * numeric tick labels, axis labels, a title and a legend, drawn with a
 * built-in 5x7 bitmap font (printable ASCII). For figures such as "probe
 * top-1 against validation loss"; not a general plotting library (linear
 * axes only, no log scales, no error bars).
 */
#ifndef AIM_PLOT_H
#define AIM_PLOT_H

#include <stdint.h>

#include "aim/core.h"

#define AIM_PLOT_MIN_SIDE 64
#define AIM_PLOT_MAX_SIDE 4096
#define AIM_PLOT_MAX_SERIES 16
#define AIM_PLOT_MAX_POINTS 1000000 /* per series */
#define AIM_PLOT_MAX_TEXT 200       /* bytes of a title, axis label or legend label */
#define AIM_PLOT_AUTO_COLOR (-1)
#define AIM_PLOT_MAX_VALUE 1e300 /* |x|, |y| at most: every range stays finite */

typedef struct aim_plot_series {
    const double *x, *y; /* n values each, all finite */
    int n;
    const char *label;   /* legend text; NULL or "" keeps it out of the legend */
    int points, line;    /* a marker at each point; a line through them in order */
    int32_t color;       /* 0xRRGGBB, or AIM_PLOT_AUTO_COLOR: the palette's next */
} aim_plot_series;

typedef struct aim_plot_spec {
    int width, height;                   /* pixels */
    const char *title, *xlabel, *ylabel; /* NULL or "": none */
    const aim_plot_series *series;
    int nseries;
} aim_plot_spec;

/* Where the data went: the plot area's pixel box (inclusive; the frame
 * lines lie on it) and the data range it spans. */
typedef struct aim_plot_frame {
    int left, top, right, bottom;
    double xmin, xmax, ymin, ymax;
} aim_plot_frame;

/* The "nice" tick step for a raw step > 0: the smallest 1, 2, 5 or 10 x
 * 10^k at least as large (the PNG plots and the workbench's axes). */
double aim_plot_nice_step(double raw);
/* The palette's colour number i (0xRRGGBB), as series i gets it by default. */
int32_t aim_plot_palette(int i);
/* Check a spec: sizes in range, 1..AIM_PLOT_MAX_SERIES series of
 * 1..AIM_PLOT_MAX_POINTS finite points within +-AIM_PLOT_MAX_VALUE, texts
 * within AIM_PLOT_MAX_TEXT, colours in 0..0xFFFFFF or auto. -1 with a
 * message naming what is wrong ("series 2 ('run'): y[5] = nan is not
 * finite"). */
int aim_plot_check(const aim_plot_spec *p, aim_err *e);
/* Draw into rgb (width * height * 3 bytes, interleaved, row-major); the
 * frame (may be NULL) says where the data went. -1 only for a bad spec. */
int aim_plot_render(const aim_plot_spec *p, uint8_t *rgb, aim_plot_frame *frame, aim_err *e);
/* Render and write a PNG (RGB, atomically). */
int aim_plot_write(const char *path, const aim_plot_spec *p, aim_plot_frame *frame, aim_err *e);
/* The pixel (column, row; not rounded) of the data point (x, y). */
void aim_plot_to_pixel(const aim_plot_frame *f, double x, double y, double *px, double *py);

/* A spec that owns a copy of every text, series and value (one
 * allocation), to hand a plot from one thread to another: the workbench's
 * figure view (aim.plot{show = true}). */
typedef struct aim_figure {
    aim_plot_spec spec;
} aim_figure;
/* A copy of a spec that passed aim_plot_check; NULL with a message if not. */
aim_figure *aim_figure_copy(const aim_plot_spec *p, aim_err *e);
void aim_figure_free(aim_figure *f);

#endif
