/*
 * resize.c - resizing of interleaved 8-bit images [h, w, c].
 *
 * AREA: every destination pixel is the exact area-weighted mean of the
 * source pixels it covers, with fractional coverage at its edges. It is
 * computed in integers: along y one source pixel is dh units long and one
 * destination pixel sh units, so every overlap is a whole number of units
 * and the mean is (sum of value * overlap_y * overlap_x) / (sh * sw),
 * rounded to nearest. Works for shrinking and enlarging alike.
 *
 * BILINEAR: sample position (d + 0.5) * s / d' - 0.5 (pixel centres,
 * align_corners = false as in torch and PIL), clamped to the image, linear
 * interpolation between the two neighbours on each axis, rounded.
 *
 * Both give an exact copy when the size does not change.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"

/* Overlap of source cell s ([s*dn, (s+1)*dn)) with destination cell d
 * ([d*sn, (d+1)*sn)), in units of 1 / (sn * dn) of the image length. */
static int64_t overlap(int64_t s, int64_t d, int64_t sn, int64_t dn)
{
    int64_t lo0 = s * dn, hi0 = lo0 + dn;
    int64_t lo1 = d * sn, hi1 = lo1 + sn;
    int64_t lo = lo0 > lo1 ? lo0 : lo1, hi = hi0 < hi1 ? hi0 : hi1;
    return hi > lo ? hi - lo : 0;
}

static void resize_area(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh,
                        int dw)
{
    uint64_t denom = (uint64_t)sh * (uint64_t)sw;
    uint64_t *acc = aim_xcalloc((size_t)c, sizeof *acc);
    for (int dy = 0; dy < dh; dy++) {
        /* source rows touching destination row dy: [y0, y1) */
        int y0 = (int)((int64_t)dy * sh / dh);
        int y1 = (int)(((int64_t)(dy + 1) * sh + dh - 1) / dh);
        for (int dx = 0; dx < dw; dx++) {
            int x0 = (int)((int64_t)dx * sw / dw);
            int x1 = (int)(((int64_t)(dx + 1) * sw + dw - 1) / dw);
            memset(acc, 0, (size_t)c * sizeof *acc);
            for (int y = y0; y < y1; y++) {
                uint64_t wy = (uint64_t)overlap(y, dy, sh, dh);
                const uint8_t *row = src + (size_t)y * sw * c;
                for (int x = x0; x < x1; x++) {
                    uint64_t wgt = wy * (uint64_t)overlap(x, dx, sw, dw);
                    for (int k = 0; k < c; k++)
                        acc[k] += wgt * row[(size_t)x * c + k];
                }
            }
            uint8_t *o = dst + ((size_t)dy * dw + dx) * c;
            for (int k = 0; k < c; k++)
                o[k] = (uint8_t)((2 * acc[k] + denom) / (2 * denom));
        }
    }
    free(acc);
}

/* Sample positions along one axis: lower index, upper index, weight of the
 * upper one. */
static void bilinear_axis(int sn, int dn, int *i0, int *i1, double *t)
{
    double scale = (double)sn / dn;
    for (int d = 0; d < dn; d++) {
        double f = (d + 0.5) * scale - 0.5;
        if (f < 0)
            f = 0;
        if (f > sn - 1)
            f = sn - 1;
        int a = (int)floor(f);
        i0[d] = a;
        i1[d] = a + 1 < sn ? a + 1 : a;
        t[d] = f - a;
    }
}

static void resize_bilinear(const uint8_t *src, int sh, int sw, int c, uint8_t *dst,
                            int dh, int dw)
{
    int *ys = aim_xmalloc(2 * (size_t)dh * sizeof *ys);
    int *xs = aim_xmalloc(2 * (size_t)dw * sizeof *xs);
    double *ty = aim_xmalloc((size_t)dh * sizeof *ty);
    double *tx = aim_xmalloc((size_t)dw * sizeof *tx);
    bilinear_axis(sh, dh, ys, ys + dh, ty);
    bilinear_axis(sw, dw, xs, xs + dw, tx);
    for (int dy = 0; dy < dh; dy++) {
        const uint8_t *r0 = src + (size_t)ys[dy] * sw * c;
        const uint8_t *r1 = src + (size_t)ys[dh + dy] * sw * c;
        double wy = ty[dy];
        for (int dx = 0; dx < dw; dx++) {
            size_t a = (size_t)xs[dx] * c, b = (size_t)xs[dw + dx] * c;
            double wx = tx[dx];
            uint8_t *o = dst + ((size_t)dy * dw + dx) * c;
            for (int k = 0; k < c; k++) {
                double top = r0[a + k] + (r0[b + k] - r0[a + k]) * wx;
                double bot = r1[a + k] + (r1[b + k] - r1[a + k]) * wx;
                double v = top + (bot - top) * wy;
                v = floor(v + 0.5);
                o[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(ys);
    free(xs);
    free(ty);
    free(tx);
}

void aim_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw,
                aim_resize_method method)
{
    if (!src || !dst || sh <= 0 || sw <= 0 || c <= 0 || dh <= 0 || dw <= 0)
        return;
    if (sh == dh && sw == dw) {
        memmove(dst, src, (size_t)sh * sw * c);
        return;
    }
    if (method == AIM_RESIZE_BILINEAR)
        resize_bilinear(src, sh, sw, c, dst, dh, dw);
    else
        resize_area(src, sh, sw, c, dst, dh, dw);
}
