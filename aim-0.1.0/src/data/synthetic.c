/*
 * synthetic.c - a procedural labelled image set for quick experiments and
 * tests: ten visually distinct families (disc, ring, square outline, cross,
 * horizontal / vertical / diagonal stripes, gradient, checkerboard,
 * triangle), each drawn at a random position, scale, intensity and colour,
 * anti-aliased through a signed distance, plus mild Gaussian pixel noise.
 *
 * Image i has label i % nclasses (class k is family k) and depends only on
 * (seed, i): its own generator is seeded with aim_hash64(seed ^
 * aim_hash64(i)), so the first images of a set do not change with n and the
 * images can be drawn in parallel.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"

const char *const aim_synthetic_classes[10] = {
    "disc",     "ring",     "square",   "cross",   "hstripes",
    "vstripes", "dstripes", "gradient", "checker", "triangle",
};

enum {
    FAM_DISC,
    FAM_RING,
    FAM_SQUARE,
    FAM_CROSS,
    FAM_HSTRIPES,
    FAM_VSTRIPES,
    FAM_DSTRIPES,
    FAM_GRADIENT,
    FAM_CHECKER,
    FAM_TRIANGLE,
};

#define SYNTH_MAX_N 10000000
#define SYNTH_NOISE 0.04 /* pixel noise sigma, in units of full scale */
#define DEG (3.14159265358979323846 / 180.0)

/* Everything needed to evaluate one image's shape at any pixel. */
typedef struct shape {
    int family;
    double cx, cy;          /* centre (pixels, centres at +0.5) */
    double size;            /* radius / half size / arm length */
    double thick;           /* outline thickness */
    double cos_t, sin_t;    /* rotation */
    double period, phx, phy;
    int diag_sign;          /* dstripes: +1 "\" or -1 "/" */
    double x0, y0, x1, y1;  /* texture window */
    double gx, gy, gmin, gmax; /* gradient direction and range */
    double nx[3], ny[3];    /* triangle: outward edge normals */
} shape;

static double unif(aim_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * aim_rng_uniform(r);
}

/* Roughly standard normal noise from one draw: the sum of four 16-bit
 * uniforms (Irwin-Hall), centred and scaled to unit variance. Much cheaper
 * than Box-Muller, and noise need not be exactly Gaussian. */
static double noise(aim_rng *r)
{
    uint64_t u = aim_rng_u64(r);
    double sum = (double)(u & 0xffff) + (double)((u >> 16) & 0xffff) +
                 (double)((u >> 32) & 0xffff) + (double)(u >> 48);
    return (sum / 65536.0 - 2.0) * 1.7320508075688772;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Coverage of a pixel whose centre lies at signed distance d (pixels,
 * negative inside) from an edge: a one-pixel linear ramp. */
static double coverage(double d)
{
    return clamp01(0.5 - d);
}

/* Signed distance to an axis-aligned box of half sizes (ax, ay) at the
 * origin (exact outside the corners' diagonal, good enough for AA). */
static double box_sdf(double u, double v, double ax, double ay)
{
    double dx = fabs(u) - ax, dy = fabs(v) - ay;
    double ox = dx > 0 ? dx : 0, oy = dy > 0 ? dy : 0;
    double out = sqrt(ox * ox + oy * oy);
    double in = dx > dy ? dx : dy;
    return out > 0 ? out : (in < 0 ? in : 0);
}

/* A soft square wave: 1 on half of each period, 0 on the other half. */
static double square_wave(double t, double period)
{
    double u = fmod(t, period);
    if (u < 0)
        u += period;
    return coverage(fabs(u - period / 2) - period / 4);
}

/* Draw the family's parameters; all randomness of the shape happens here. */
static void shape_draw(shape *s, int family, int h, int w, aim_rng *r)
{
    double sz = h < w ? h : w;
    memset(s, 0, sizeof *s);
    s->family = family;
    s->cx = w / 2.0 + unif(r, -0.15, 0.15) * w;
    s->cy = h / 2.0 + unif(r, -0.15, 0.15) * h;
    double scale = unif(r, 0.6, 1.0);
    double theta = 0;
    s->thick = sz * unif(r, 0.08, 0.14);
    if (s->thick < 1.2)
        s->thick = 1.2;
    switch (family) {
    case FAM_DISC:
        s->size = 0.32 * sz * scale;
        break;
    case FAM_RING:
        s->size = 0.34 * sz * scale;
        break;
    case FAM_SQUARE:
        s->size = 0.32 * sz * scale;
        theta = unif(r, -15, 15) * DEG;
        break;
    case FAM_CROSS:
        s->size = 0.36 * sz * scale;
        theta = unif(r, -15, 15) * DEG;
        break;
    case FAM_TRIANGLE:
        s->size = 0.36 * sz * scale; /* circumradius */
        theta = unif(r, -20, 20) * DEG;
        break;
    case FAM_GRADIENT: {
        double a = unif(r, 0, 360) * DEG;
        s->gx = cos(a);
        s->gy = sin(a);
        /* range of the projection over the image corners */
        double p[4] = {0, s->gx * w, s->gy * h, s->gx * w + s->gy * h};
        s->gmin = s->gmax = p[0];
        for (int k = 1; k < 4; k++) {
            if (p[k] < s->gmin)
                s->gmin = p[k];
            if (p[k] > s->gmax)
                s->gmax = p[k];
        }
        break;
    }
    default: { /* textures: stripes and checkerboard inside a window */
        s->period = sz * unif(r, 0.15, 0.35);
        if (s->period < 2)
            s->period = 2;
        s->phx = unif(r, 0, s->period);
        s->phy = unif(r, 0, s->period);
        s->diag_sign = aim_rng_below(r, 2) ? 1 : -1;
        double ww = w * unif(r, 0.6, 1.0), wh = h * unif(r, 0.6, 1.0);
        s->x0 = unif(r, 0, w - ww);
        s->y0 = unif(r, 0, h - wh);
        s->x1 = s->x0 + ww;
        s->y1 = s->y0 + wh;
        break;
    }
    }
    s->cos_t = cos(theta);
    s->sin_t = sin(theta);
    for (int k = 0; k < 3; k++) {
        double a = (90.0 + 120.0 * k) * DEG; /* pointing up: a normal downwards */
        s->nx[k] = cos(a);
        s->ny[k] = sin(a);
    }
}

/* Foreground fraction in [0, 1] of the pixel whose centre is (x, y). */
static double shape_eval(const shape *s, double x, double y)
{
    double dx = x - s->cx, dy = y - s->cy;
    /* rotate into the shape's frame */
    double u = s->cos_t * dx + s->sin_t * dy;
    double v = -s->sin_t * dx + s->cos_t * dy;
    double t = s->thick;
    switch (s->family) {
    case FAM_DISC:
        return coverage(sqrt(u * u + v * v) - s->size);
    case FAM_RING:
        return coverage(fabs(sqrt(u * u + v * v) - s->size) - t / 2);
    case FAM_SQUARE:
        return coverage(fabs(box_sdf(u, v, s->size, s->size)) - t / 2);
    case FAM_CROSS: {
        double a = box_sdf(u, v, s->size, t / 2);
        double b = box_sdf(u, v, t / 2, s->size);
        return coverage(a < b ? a : b);
    }
    case FAM_TRIANGLE: {
        /* equilateral: the largest of the three edge distances */
        double inr = s->size / 2, d = -1e30;
        for (int k = 0; k < 3; k++) {
            double e = u * s->nx[k] + v * s->ny[k] - inr;
            if (e > d)
                d = e;
        }
        return coverage(d);
    }
    case FAM_GRADIENT:
        return clamp01((x * s->gx + y * s->gy - s->gmin) / (s->gmax - s->gmin));
    default:
        break;
    }
    /* textures */
    double win = coverage(box_sdf(x - (s->x0 + s->x1) / 2, y - (s->y0 + s->y1) / 2,
                                  (s->x1 - s->x0) / 2, (s->y1 - s->y0) / 2));
    if (win <= 0)
        return 0;
    double m;
    switch (s->family) {
    case FAM_HSTRIPES:
        m = square_wave(y + s->phy, s->period);
        break;
    case FAM_VSTRIPES:
        m = square_wave(x + s->phx, s->period);
        break;
    case FAM_DSTRIPES:
        m = square_wave((x + s->diag_sign * y) * 0.70710678118654752 + s->phx, s->period);
        break;
    default: { /* checker: cells of half a period */
        double sx = 2 * square_wave(x + s->phx, s->period) - 1;
        double sy = 2 * square_wave(y + s->phy, s->period) - 1;
        m = (1 + sx * sy) / 2;
        break;
    }
    }
    return m < win ? m : win;
}

/* Render image `index` of the set into img [c, h, w]. */
static void render(uint8_t *img, int c, int h, int w, int family, uint64_t seed,
                   uint64_t index)
{
    aim_rng r;
    aim_rng_seed(&r, aim_hash64(seed ^ aim_hash64(index)));
    shape s;
    shape_draw(&s, family, h, w, &r);
    double bg[AIM_MAX_CHANNELS], fg[AIM_MAX_CHANNELS];
    for (int k = 0; k < c; k++) {
        /* a background darker than the foreground by at least 0.25; with
         * c > 1 the channels are drawn independently, which gives colour */
        bg[k] = unif(&r, 0, 0.35);
        fg[k] = bg[k] + 0.25 + (0.75 - bg[k]) * aim_rng_uniform(&r);
    }
    size_t plane = (size_t)h * w;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            double m = shape_eval(&s, x + 0.5, y + 0.5);
            for (int k = 0; k < c; k++) {
                double v = bg[k] + (fg[k] - bg[k]) * m;
                img[k * plane + (size_t)y * w + x] = (uint8_t)lround(clamp01(v) * 255);
            }
        }
    }
    /* noise last, channel by channel: a fixed order of draws */
    for (size_t j = 0; j < (size_t)c * plane; j++) {
        double v = img[j] + 255 * SYNTH_NOISE * noise(&r);
        img[j] = (uint8_t)lround(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

aim_dataset *aim_data_synthetic(const aim_synth_opts *o, aim_err *e)
{
    aim_synth_opts d = {0};
    if (o)
        d = *o;
    if (d.n == 0)
        d.n = 1000;
    if (d.c == 0)
        d.c = 1;
    if (d.h == 0)
        d.h = 28;
    if (d.w == 0)
        d.w = 28;
    if (d.nclasses == 0)
        d.nclasses = 10;
    if (d.n < 1 || d.n > SYNTH_MAX_N) {
        aim_errf(e, "synthetic: n = %lld is out of range 1..%d", (long long)d.n, SYNTH_MAX_N);
        return NULL;
    }
    if (d.c < 1 || d.c > AIM_MAX_CHANNELS) {
        aim_errf(e, "synthetic: c = %d channels is out of range 1..%d", d.c, AIM_MAX_CHANNELS);
        return NULL;
    }
    if (d.h < 4 || d.h > 1024) {
        aim_errf(e, "synthetic: h = %d is out of range 4..1024", d.h);
        return NULL;
    }
    if (d.w < 4 || d.w > 1024) {
        aim_errf(e, "synthetic: w = %d is out of range 4..1024", d.w);
        return NULL;
    }
    if (d.nclasses < 2 || d.nclasses > 10) {
        aim_errf(e, "synthetic: nclasses = %d is out of range 2..10", d.nclasses);
        return NULL;
    }
    uint64_t per = (uint64_t)d.c * (uint64_t)d.h * (uint64_t)d.w;
    if ((uint64_t)d.n > AIM_MAX_ALLOC / per) {
        aim_errf(e, "synthetic: n = %lld images of %dx%dx%d need more than %llu GiB",
                 (long long)d.n, d.c, d.h, d.w, (unsigned long long)(AIM_MAX_ALLOC >> 30));
        return NULL;
    }

    aim_dataset *ds = aim_dataset_try_alloc("synthetic", d.n, d.c, d.h, d.w, e);
    if (!ds) {
        aim_err_prefix(e, "synthetic");
        return NULL;
    }
    ds->nclasses = d.nclasses;
    ds->class_names = aim_xcalloc((size_t)d.nclasses, sizeof(char *));
    for (int k = 0; k < d.nclasses; k++)
        ds->class_names[k] = aim_xstrdup(aim_synthetic_classes[k]);

    int64_t n = d.n;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; i++) {
        int label = (int)(i % d.nclasses);
        ds->labels[i] = label;
        render(ds->images + (size_t)i * per, d.c, d.h, d.w, label, d.seed, (uint64_t)i);
    }
    aim_dataset_compute_stats(ds);
    return ds;
}
