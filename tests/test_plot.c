/*
 * test_plot.c - the PNG plot writer (src/io/plot_png.c): points and lines
 * land on the pixels the frame maps them to, in their colours; the frame's
 * lines and ticks; the legend hides no point; the title and axis labels
 * draw where they belong and nothing draws there without them; a constant
 * series; a PNG written and read back to the pixel; bad specs and an
 * unwritable path give messages naming the problem.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/io.h"
#include "aim/plot.h"
#include "tap.h"

#define W 320
#define H 240
#define RED 0xFF0000
#define GREEN 0x00C000

static int32_t pixel(const uint8_t *rgb, int x, int y)
{
    const uint8_t *p = rgb + ((size_t)y * W + x) * 3;
    return (int32_t)p[0] << 16 | p[1] << 8 | p[2];
}

/* the pixel of data point (x, y) */
static int32_t at(const uint8_t *rgb, const aim_plot_frame *f, double x, double y)
{
    double px, py;
    aim_plot_to_pixel(f, x, y, &px, &py);
    return pixel(rgb, (int)lround(px), (int)lround(py));
}

/* black pixels in the box [x0, x1] x [y0, y1] */
static int count_black(const uint8_t *rgb, int x0, int y0, int x1, int y1)
{
    int n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            n += pixel(rgb, x, y) == 0;
    return n;
}

static const double px4[] = {0, 1, 2, 3}, py4[] = {0, 1, 4, 9};

static void test_points_and_frame(uint8_t *rgb)
{
    aim_plot_series s = {px4, py4, 4, NULL, 1, 0, RED};
    aim_plot_spec p = {W, H, NULL, NULL, NULL, &s, 1};
    aim_plot_frame f;
    aim_err e = {{0}};
    tap_ok(aim_plot_render(&p, rgb, &f, &e) == 0, "renders 4 points: %s", e.msg);
    tap_ok(f.left > 0 && f.right < W - 1 && f.top > 0 && f.bottom < H - 1 && f.left < f.right &&
               f.top < f.bottom,
           "the frame lies inside the image: %d,%d .. %d,%d", f.left, f.top, f.right, f.bottom);
    tap_ok(f.xmin < 0 && f.xmax > 3 && f.ymin < 0 && f.ymax > 9 && f.xmax - f.xmin < 4 &&
               f.ymax - f.ymin < 12,
           "the data range is padded a little: x %g..%g, y %g..%g", f.xmin, f.xmax, f.ymin,
           f.ymax);
    int hit = 0;
    for (int i = 0; i < 4; i++)
        hit += at(rgb, &f, px4[i], py4[i]) == RED;
    tap_ok(hit == 4, "each point's pixel has the series colour (%d of 4)", hit);
    /* between the points, away from them: not red (no line asked for) */
    tap_ok(at(rgb, &f, 1.5, 2.5) != RED, "no line between the points when line = 0");
    int mid_x = (f.left + f.right) / 2, mid_y = (f.top + f.bottom) / 2;
    tap_ok(pixel(rgb, f.left, mid_y) == 0 && pixel(rgb, f.right, mid_y) == 0 &&
               pixel(rgb, mid_x, f.top) == 0 && pixel(rgb, mid_x, f.bottom) == 0,
           "the frame's four lines are black");
    tap_ok(pixel(rgb, 0, 0) == 0xFFFFFF && pixel(rgb, W - 1, H - 1) == 0xFFFFFF,
           "the canvas is white");
    /* the x tick at 0 and the y tick at 0: marks outside the frame */
    double x0, y0;
    aim_plot_to_pixel(&f, 0, 0, &x0, &y0);
    tap_ok(pixel(rgb, (int)lround(x0), f.bottom + 2) == 0 &&
               pixel(rgb, f.left - 2, (int)lround(y0)) == 0,
           "tick marks at x = 0 and y = 0");
    /* tick labels: black glyph pixels under the frame and left of it */
    tap_ok(count_black(rgb, f.left - 10, f.bottom + 6, f.right + 10, f.bottom + 13) > 20,
           "x tick labels under the frame");
    tap_ok(count_black(rgb, 0, f.top, f.left - 6, f.bottom) > 20, "y tick labels left of it");
}

static void test_line(uint8_t *rgb)
{
    const double x[] = {0, 10}, y[] = {0, 10};
    aim_plot_series s = {x, y, 2, NULL, 0, 1, GREEN};
    aim_plot_spec p = {W, H, NULL, NULL, NULL, &s, 1};
    aim_plot_frame f;
    aim_err e = {{0}};
    tap_ok(aim_plot_render(&p, rgb, &f, &e) == 0, "renders a line");
    /* Bresenham between rounded ends: within a pixel of the exact line */
    int hit = 0;
    for (int i = 1; i < 10; i++) {
        double px, py;
        aim_plot_to_pixel(&f, i, i, &px, &py);
        int near = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++)
                near |= pixel(rgb, (int)lround(px) + dx, (int)lround(py) + dy) == GREEN;
        hit += near;
    }
    tap_ok(hit == 9, "the line passes within a pixel of (i, i) for i = 1..9 (%d of 9)", hit);
    tap_ok(at(rgb, &f, 2, 8) != GREEN && at(rgb, &f, 8, 2) != GREEN,
           "and not through (2, 8) or (8, 2)");
}

static void test_labels_and_legend(uint8_t *rgb)
{
    /* two series rising from bottom left to top right: the legend must go
     * to the top-left or bottom-right corner and hide no point */
    const double x[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const double ya[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, yb[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 9.5};
    aim_plot_series s[2] = {{x, ya, 10, "first run", 1, 1, RED},
                            {x, yb, 10, "second", 1, 0, AIM_PLOT_AUTO_COLOR}};
    aim_plot_spec p = {W, H, NULL, NULL, NULL, s, 2};
    aim_plot_frame f;
    aim_err e = {{0}};
    uint8_t *bare = aim_xmalloc((size_t)W * H * 3);
    tap_ok(aim_plot_render(&p, bare, &f, &e) == 0, "renders without texts");
    p.title = "Loss vs top-1";
    p.xlabel = "validation loss";
    p.ylabel = "probe top-1 (%)";
    aim_plot_frame g;
    tap_ok(aim_plot_render(&p, rgb, &g, &e) == 0, "renders with title and axis labels");
    int hit = 0;
    for (int i = 0; i < 10; i++)
        hit += (at(rgb, &g, x[i], ya[i]) == RED) + (at(rgb, &g, x[i], yb[i]) == aim_plot_palette(1));
    tap_ok(hit == 20, "the legend hides no point; series 2 takes palette colour 2 (%d of 20)",
           hit);
    int border = 0;
    for (size_t i = 0; i < (size_t)W * H; i++)
        border += pixel(rgb, (int)(i % W), (int)(i / W)) == 0x999999;
    tap_ok(border > 100, "the legend's box is drawn (%d border pixels)", border);
    tap_ok(g.top > f.top && g.bottom < f.bottom && g.left > f.left,
           "the texts take room: top %d > %d, bottom %d < %d, left %d > %d", g.top, f.top,
           g.bottom, f.bottom, g.left, f.left);
    tap_ok(count_black(rgb, 0, 0, W - 1, g.top - 4) > 40 && count_black(bare, 0, 0, W - 1, 8) == 0,
           "the title draws above the frame (and nothing is there without it)");
    tap_ok(count_black(rgb, 0, g.bottom + 16, W - 1, H - 1) > 40 &&
               count_black(bare, 0, f.bottom + 16, W - 1, H - 1) == 0,
           "the x label draws under the tick labels");
    tap_ok(count_black(rgb, 0, g.top, 11, g.bottom) > 40 && count_black(bare, 0, f.top, 3, f.bottom) == 0,
           "the y label draws at the left edge");
    /* the y label reads upwards: it is taller than wide */
    int ymin = H, ymax = -1, xmax = -1;
    for (int y = g.top; y <= g.bottom; y++)
        for (int xx = 0; xx <= 11; xx++)
            if (pixel(rgb, xx, y) == 0) {
                ymin = y < ymin ? y : ymin;
                ymax = y > ymax ? y : ymax;
                xmax = xx > xmax ? xx : xmax;
            }
    tap_ok(ymax - ymin > 60 && xmax < 12, "the y label is vertical (%d px tall)", ymax - ymin + 1);
    free(bare);
}

static void test_constant(uint8_t *rgb)
{
    const double x[] = {5, 5, 5}, y[] = {-2, -2, -2};
    aim_plot_series s = {x, y, 3, "flat", 1, 1, RED};
    aim_plot_spec p = {W, H, "one point", NULL, NULL, &s, 1};
    aim_plot_frame f;
    aim_err e = {{0}};
    int rc = aim_plot_render(&p, rgb, &f, &e);
    tap_ok(rc == 0 && f.xmin < 5 && f.xmax > 5 && f.ymin < -2 &&
               f.ymax > -2 && at(rgb, &f, 5, -2) == RED,
           "a constant series: a range around it, the point drawn (x %g..%g, y %g..%g)", f.xmin,
           f.xmax, f.ymin, f.ymax);
    double px, py;
    aim_plot_to_pixel(&f, 5, -2, &px, &py);
    tap_ok(fabs(px - (f.left + f.right) / 2.0) < 1 && fabs(py - (f.top + f.bottom) / 2.0) < 1,
           "and in the middle of the frame");
}

static void test_png_roundtrip(void)
{
    aim_plot_series s = {px4, py4, 4, "squares", 1, 1, AIM_PLOT_AUTO_COLOR};
    aim_plot_spec p = {W, H, "squares", "x", "x^2", &s, 1};
    aim_plot_frame f, g;
    aim_err e = {{0}};
    const char *path = tap_path("plot.png");
    tap_ok(aim_plot_write(path, &p, &f, &e) == 0, "writes %s: %s", path, e.msg);
    aim_image im = {0};
    int rc = aim_png_read(path, 0, &im, &e);
    tap_ok(rc == 0 && im.w == W && im.h == H && im.c == 3,
           "read back: %dx%d, %d channels", im.w, im.h, im.c);
    uint8_t *rgb = aim_xmalloc((size_t)W * H * 3);
    aim_plot_render(&p, rgb, &g, &e);
    tap_ok(im.data && memcmp(im.data, rgb, (size_t)W * H * 3) == 0 &&
               memcmp(&f, &g, sizeof f) == 0,
           "the file holds the rendered pixels, and the same frame");
    tap_ok(im.data && at(im.data, &f, 3, 9) == aim_plot_palette(0),
           "the point (3, 9) in the file has palette colour 1");
    free(rgb);
    aim_image_free(&im);
    tap_ok(aim_plot_write(tap_path("no/such/dir/p.png"), &p, NULL, &e) != 0 &&
               tap_contains(e.msg, "no/such/dir"),
           "an unwritable path fails naming it: %s", e.msg);
}

static void test_errors(uint8_t *rgb)
{
    double x[3] = {0, 1, 2}, y[3] = {0, NAN, 2};
    aim_plot_series s = {x, y, 3, "bad", 1, 1, AIM_PLOT_AUTO_COLOR};
    aim_plot_spec p = {W, H, NULL, NULL, NULL, &s, 1};
    aim_err e;
    tap_ok(aim_plot_render(&p, rgb, NULL, &e) != 0 && tap_contains(e.msg, "series 1 ('bad')") &&
               tap_contains(e.msg, "y[2]") && tap_contains(e.msg, "not finite"),
           "NaN: %s", e.msg);
    y[1] = 1;
    x[2] = INFINITY;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "x[3]"), "Inf: %s", e.msg);
    x[2] = -1e308;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "point 3"),
           "a value whose range would overflow: %s", e.msg);
    x[2] = 2;
    tap_ok(aim_plot_check(&p, &e) == 0, "fixed, the spec passes");
    p.width = 10;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "width 10"), "%s", e.msg);
    p.width = W;
    p.height = 5000;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "height 5000"), "%s", e.msg);
    p.height = H;
    p.nseries = 0;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "0 series"), "%s", e.msg);
    p.nseries = 1;
    s.n = 0;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "0 points"), "%s", e.msg);
    s.n = 3;
    s.color = 0x1000000;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "colour"), "%s", e.msg);
    s.color = AIM_PLOT_AUTO_COLOR;
    s.points = s.line = 0;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "neither points nor a line"), "%s",
           e.msg);
    s.points = 1;
    char big[AIM_PLOT_MAX_TEXT + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    p.title = big;
    tap_ok(aim_plot_check(&p, &e) != 0 && tap_contains(e.msg, "title"), "%s", e.msg);
}

/* aim_figure_copy: a deep copy (the workbench keeps it after the caller's
 * buffers are gone) that renders exactly as the original */
static void test_figure_copy(uint8_t *rgb)
{
    double x[3] = {1, 2, 3}, y[3] = {4, 6, 5}, x2[1] = {2.5}, y2[1] = {5.5};
    char title[16] = "copied", lab[8] = "first";
    aim_plot_series s[2] = {
        {.x = x, .y = y, .n = 3, .label = lab, .points = 1, .line = 1,
         .color = AIM_PLOT_AUTO_COLOR},
        {.x = x2, .y = y2, .n = 1, .label = NULL, .points = 1, .line = 0, .color = 0x112233},
    };
    aim_plot_spec p = {.width = W, .height = H, .title = title, .xlabel = "x", .ylabel = "",
                       .series = s, .nseries = 2};
    aim_err e;
    aim_figure *f = aim_figure_copy(&p, &e);
    uint8_t *a = aim_xmalloc((size_t)W * H * 3);
    int same = f && aim_plot_render(&p, a, NULL, &e) == 0;
    /* the caller's buffers change: the copy must not */
    x[0] = 9;
    y[1] = -7;
    strcpy(title, "changed");
    strcpy(lab, "other");
    s[1].n = 0;
    same = same && aim_plot_render(&f->spec, rgb, NULL, &e) == 0 &&
           !memcmp(a, rgb, (size_t)W * H * 3);
    tap_ok(f && f->spec.series != s && f->spec.series[0].x[0] == 1 && f->spec.series[0].y[1] == 6 &&
               !strcmp(f->spec.title, "copied") && !strcmp(f->spec.series[0].label, "first") &&
               f->spec.series[1].label == NULL && f->spec.ylabel == NULL &&
               f->spec.series[1].color == 0x112233 && same,
           "aim_figure_copy: values, texts and options copied; renders as the original did");
    aim_figure_free(f);
    free(a);
    y[0] = NAN;
    aim_plot_spec bad = p;
    s[1].n = 1;
    tap_ok(aim_figure_copy(&bad, &e) == NULL && tap_contains(e.msg, "not finite"),
           "aim_figure_copy refuses a bad spec: %s", e.msg);
}

int main(void)
{
    uint8_t *rgb = aim_xmalloc((size_t)W * H * 3);
    test_points_and_frame(rgb);
    test_line(rgb);
    test_labels_and_legend(rgb);
    test_constant(rgb);
    test_png_roundtrip();
    test_errors(rgb);
    test_figure_copy(rgb);
    free(rgb);
    return tap_done();
}
