/*
 * test_pngdir.c - PNG class folders as datasets (class order, labels, the
 * default and explicit channel / size choices, limits, errors) and the
 * image resizer on its own (exact area averages, bilinear at pixel centres).
 */
#include "config.h"

#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aim/core.h"
#include "aim/data.h"
#include "aim/io.h"
#include "tap.h"

static unsigned rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void mkdir_or_bail(const char *path)
{
    if (mkdir(path, 0755) != 0) {
        printf("Bail out! cannot create %s\n", path);
        exit(1);
    }
}

/* A w x h image with c channels of pseudo-random pixels, written as a PNG
 * (c = 2 goes through libpng directly) and kept for the expectations. */
typedef struct img {
    int w, h, c;
    uint8_t *pix;
} img;

static int write_gray_alpha(const char *path, const img *m)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc((size_t)m->h * sizeof *rows);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        free(rows);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, m->w, m->h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < m->h; y++)
        rows[y] = m->pix + (size_t)y * m->w * 2;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    return 0;
}

static img make_png(const char *path, int w, int h, int c, uint32_t seed)
{
    img m = {w, h, c, malloc((size_t)w * h * c)};
    for (int i = 0; i < w * h * c; i++)
        m.pix[i] = (uint8_t)rnd(&seed);
    aim_err e = {{0}};
    int rc = c == 2 ? write_gray_alpha(path, &m) : aim_png_write(path, m.pix, w, h, c, &e);
    if (rc != 0) {
        printf("Bail out! cannot write %s: %s\n", path, e.msg);
        exit(1);
    }
    return m;
}

/* The dataset image i must equal `path` decoded to c channels, resized to
 * h x w with `method` and made planar. */
static int same_as_file(const aim_dataset *ds, int64_t i, const char *path,
                        aim_resize_method method)
{
    aim_err e = {{0}};
    aim_image im;
    if (aim_png_read(path, ds->c, &im, &e) < 0)
        return 0;
    size_t plane = (size_t)ds->h * ds->w;
    uint8_t *tmp = malloc(plane * ds->c);
    aim_resize(im.data, im.h, im.w, ds->c, tmp, ds->h, ds->w, method);
    const uint8_t *got = ds->images + (size_t)i * ds->c * plane;
    int ok = 1;
    for (int k = 0; k < ds->c; k++)
        for (size_t p = 0; p < plane; p++)
            ok &= got[k * plane + p] == tmp[p * ds->c + k];
    free(tmp);
    aim_image_free(&im);
    return ok;
}

/* ------------------------------------------------------------- resize */

static void test_resize(void)
{
    /* 4x4 -> 2x2 AREA: exact means of the 2x2 blocks */
    const uint8_t s44[16] = {10, 20, 0, 0,     /* */
                             30, 40, 0, 4,     /* */
                             100, 100, 7, 8,   /* */
                             100, 104, 9, 10};
    uint8_t d22[4];
    aim_resize(s44, 4, 4, 1, d22, 2, 2, AIM_RESIZE_AREA);
    tap_ok(d22[0] == 25 && d22[1] == 1 && d22[2] == 101 && d22[3] == 9,
           "area 4x4 -> 2x2 gives block means (25 1 101 9): %d %d %d %d", d22[0], d22[1],
           d22[2], d22[3]);

    /* 3x3 -> 2x2 AREA: fractional coverage (weights 1, 1/2, 1/2, 1/4 of 9/4) */
    uint8_t s33[9] = {225, 0, 0, 0, 0, 0, 0, 0, 0};
    aim_resize(s33, 3, 3, 1, d22, 2, 2, AIM_RESIZE_AREA);
    tap_ok(d22[0] == 100 && d22[1] == 0 && d22[2] == 0 && d22[3] == 0,
           "area 3x3 -> 2x2, corner pixel: 225 * 1 / 2.25 = 100");
    memset(s33, 0, sizeof s33);
    s33[4] = 225;
    aim_resize(s33, 3, 3, 1, d22, 2, 2, AIM_RESIZE_AREA);
    tap_ok(d22[0] == 25 && d22[1] == 25 && d22[2] == 25 && d22[3] == 25,
           "area 3x3 -> 2x2, centre pixel: a quarter in each (25)");

    /* AREA upscaling: 1x2 [0, 100] -> 1x3 [0, 50, 100] */
    const uint8_t s12[2] = {0, 100};
    uint8_t d13[3];
    aim_resize(s12, 1, 2, 1, d13, 1, 3, AIM_RESIZE_AREA);
    tap_ok(d13[0] == 0 && d13[1] == 50 && d13[2] == 100, "area 1x2 -> 1x3 gives 0 50 100");
    uint8_t d24[8];
    aim_resize(s12, 1, 2, 1, d24, 2, 4, AIM_RESIZE_AREA);
    tap_ok(d24[0] == 0 && d24[1] == 0 && d24[2] == 100 && d24[3] == 100 && d24[4] == 0 &&
               d24[7] == 100,
           "area 2x upscaling replicates pixels");

    /* BILINEAR: 1x2 ramp [0, 200] -> 1x4 samples at -0.25 (clamped), 0.25, 0.75,
     * 1.25 (clamped) */
    const uint8_t ramp[2] = {0, 200};
    uint8_t d14[4];
    aim_resize(ramp, 1, 2, 1, d14, 1, 4, AIM_RESIZE_BILINEAR);
    tap_ok(d14[0] == 0 && d14[1] == 50 && d14[2] == 150 && d14[3] == 200,
           "bilinear 2 -> 4 ramp gives 0 50 150 200: %d %d %d %d", d14[0], d14[1], d14[2],
           d14[3]);
    const uint8_t r4[4] = {0, 10, 20, 30};
    uint8_t d2[2];
    aim_resize(r4, 1, 4, 1, d2, 1, 2, AIM_RESIZE_BILINEAR);
    tap_ok(d2[0] == 5 && d2[1] == 25, "bilinear 4 -> 2 samples at 0.5 and 2.5 (5, 25)");
    /* 2-D bilinear on a 2x2 -> 4x4, interior point (0.25, 0.25) */
    const uint8_t q[4] = {0, 100, 100, 200};
    uint8_t d44[16];
    aim_resize(q, 2, 2, 1, d44, 4, 4, AIM_RESIZE_BILINEAR);
    tap_ok(d44[0] == 0 && d44[5] == 50 && d44[6] == 100 && d44[10] == 150 && d44[15] == 200,
           "bilinear 2x2 -> 4x4 interpolates both axes");

    /* constant images stay constant; same size is an exact copy */
    uint32_t s = 5;
    int ok_const = 1, ok_same = 1;
    for (int method = 0; method < 2; method++) {
        int sizes[4][4] = {{7, 5, 3, 11}, {3, 11, 7, 5}, {16, 16, 5, 3}, {1, 1, 9, 4}};
        for (int t = 0; t < 4; t++) {
            int sh = sizes[t][0], sw = sizes[t][1], dh = sizes[t][2], dw = sizes[t][3];
            uint8_t src[16 * 16 * 3], dst[16 * 16 * 3];
            for (int i = 0; i < sh * sw * 3; i++)
                src[i] = (uint8_t)(i % 3 == 0 ? 17 : i % 3 == 1 ? 200 : 255);
            aim_resize(src, sh, sw, 3, dst, dh, dw, (aim_resize_method)method);
            for (int i = 0; i < dh * dw * 3; i++)
                ok_const &= dst[i] == src[i % 3];
        }
        uint8_t a[9 * 7 * 4], b[9 * 7 * 4];
        for (size_t i = 0; i < sizeof a; i++)
            a[i] = (uint8_t)rnd(&s);
        aim_resize(a, 9, 7, 4, b, 9, 7, (aim_resize_method)method);
        ok_same &= !memcmp(a, b, sizeof a);
    }
    tap_ok(ok_const, "a constant image stays constant (area and bilinear, up and down)");
    tap_ok(ok_same, "same size is an exact copy (area and bilinear)");

    /* AREA keeps the mean when the factor is whole: 6x6 -> 3x3 of random data */
    uint8_t r66[36], r33[9];
    for (int i = 0; i < 36; i++)
        r66[i] = (uint8_t)rnd(&s);
    aim_resize(r66, 6, 6, 1, r33, 3, 3, AIM_RESIZE_AREA);
    int ok = 1;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            int sum = r66[(2 * y) * 6 + 2 * x] + r66[(2 * y) * 6 + 2 * x + 1] +
                      r66[(2 * y + 1) * 6 + 2 * x] + r66[(2 * y + 1) * 6 + 2 * x + 1];
            ok &= r33[y * 3 + x] == (sum + 2) / 4;
        }
    tap_ok(ok, "area 6x6 -> 3x3 equals rounded 2x2 means");
}

/* ------------------------------------------------------------- folders */

static void test_folder(void)
{
    aim_err e = {{0}};
    char *root = aim_xstrdup(tap_path("ds"));
    mkdir_or_bail(root);
    char p[600];
    /* created out of order on purpose */
    snprintf(p, sizeof p, "%s/cat", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/ant", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/bee", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/.hidden", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/cat/sub", root), mkdir_or_bail(p);

    /* files, in dataset order: ant/a.PNG ant/b.png bee/y.png bee/z.png
     * cat/c0.png cat/c1.png */
    const char *names[6] = {"ant/a.PNG", "ant/b.png", "bee/y.png", "bee/z.png", "cat/c0.png",
                            "cat/c1.png"};
    int sizes[6][3] = {{4, 4, 1}, {5, 3, 1}, {6, 8, 3}, {4, 4, 4}, {8, 6, 3}, {4, 4, 2}};
    char *paths[6];
    img imgs[6];
    int order[6] = {5, 2, 4, 0, 3, 1}; /* write order differs from sort order */
    for (int t = 0; t < 6; t++) {
        int i = order[t];
        paths[i] = aim_xasprintf("%s/%s", root, names[i]);
        imgs[i] = make_png(paths[i], sizes[i][0], sizes[i][1], sizes[i][2], 100u + i);
    }
    /* things to ignore */
    img junk = make_png(tap_path("ds/.hidden/x.png"), 4, 4, 3, 1);
    img junk2 = make_png(tap_path("ds/cat/sub/deep.png"), 4, 4, 3, 2);
    img junk3 = make_png(tap_path("ds/cat/.dot.png"), 4, 4, 3, 3);
    tap_write(tap_path("ds/cat/notes.txt"), "not an image", 12);
    tap_write(tap_path("ds/readme.txt"), "hello", 5);
    tap_write(tap_path("ds/bee/y.png.bak"), "junk", 4);

    aim_dataset *ds = aim_data_open_pngdir(root, NULL, &e);
    if (!tap_ok(ds != NULL, "open the class folder: %s", ds ? "" : e.msg))
        goto out;
    tap_ok(!strcmp(ds->kind, "pngdir") && ds->path && !strcmp(ds->path, root),
           "kind and path are set");
    tap_ok(ds->nclasses == 3 && !strcmp(ds->class_names[0], "ant") &&
               !strcmp(ds->class_names[1], "bee") && !strcmp(ds->class_names[2], "cat"),
           "classes sorted: ant bee cat (hidden folder skipped)");
    tap_ok(ds->n == 6, "6 images (hidden, non-PNG and nested files ignored): %lld",
           (long long)ds->n);
    int32_t exp_labels[6] = {0, 0, 1, 1, 2, 2};
    tap_ok(ds->n == 6 && !memcmp(ds->labels, exp_labels, sizeof exp_labels),
           "labels follow the class index");
    tap_ok(ds->h == 4 && ds->w == 4, "default size is the first image's (4x4): %dx%d", ds->h,
           ds->w);
    tap_ok(ds->c == 3, "default channels: 3 because some images are RGB");
    int all = 1;
    for (int i = 0; i < 6 && ds->n == 6; i++)
        all &= same_as_file(ds, i, paths[i], AIM_RESIZE_AREA);
    tap_ok(ds->n == 6 && all, "every image is decoded, area-resized and stored planar");
    /* explicit planar check of the gray first image: three equal planes */
    int gray_ok = ds->n == 6;
    for (int k = 0; gray_ok && k < 3; k++)
        for (int q = 0; q < 16; q++)
            gray_ok &= ds->images[k * 16 + q] == imgs[0].pix[q];
    tap_ok(gray_ok, "a gray image becomes three equal planes of its pixels");
    int st_ok = 1;
    for (int k = 0; k < 3; k++)
        st_ok &= ds->mean[k] > 0.2f && ds->mean[k] < 0.8f && ds->std[k] > 0.1f;
    tap_ok(st_ok, "statistics are computed (mean %.3f %.3f %.3f)", ds->mean[0], ds->mean[1],
           ds->mean[2]);
    aim_dataset_free(ds);

    /* explicit channels and size, both resize methods */
    for (int method = 0; method < 2; method++) {
        int chans[3] = {1, 3, 4};
        for (int t = 0; t < 3; t++) {
            aim_open_opts o = {.channels = chans[t], .height = 3, .width = 5,
                               .resize = (aim_resize_method)method};
            ds = aim_data_open_pngdir(root, &o, &e);
            int ok = ds && ds->n == 6 && ds->c == chans[t] && ds->h == 3 && ds->w == 5;
            for (int i = 0; ok && i < 6; i++)
                ok &= same_as_file(ds, i, paths[i], (aim_resize_method)method);
            tap_ok(ok, "channels %d, 3x5, %s: every image matches decode + resize: %s",
                   chans[t], method ? "bilinear" : "area", ds ? "" : e.msg);
            aim_dataset_free(ds);
        }
    }
    /* height only: width from the first image */
    aim_open_opts oh = {.height = 7};
    ds = aim_data_open_pngdir(root, &oh, &e);
    tap_ok(ds && ds->h == 7 && ds->w == 4 && ds->c == 3, "height 7 given, width from the file");
    aim_dataset_free(ds);

    /* limit */
    aim_open_opts ol = {.limit = 3};
    ds = aim_data_open_pngdir(root, &ol, &e);
    tap_ok(ds && ds->n == 3 && ds->labels[0] == 0 && ds->labels[1] == 0 &&
               ds->labels[2] == 1 && ds->nclasses == 3 && same_as_file(ds, 2, paths[2], 0),
           "limit 3 keeps the first three images, all classes named");
    aim_dataset_free(ds);

    /* bad options */
    aim_open_opts oc = {.channels = 2};
    tap_ok(aim_data_open_pngdir(root, &oc, &e) == NULL && tap_contains(e.msg, "2 channels"),
           "channels 2 is refused: %s", e.msg);
    aim_open_opts os = {.height = 100000};
    tap_ok(aim_data_open_pngdir(root, &os, &e) == NULL, "height 100000 is refused: %s", e.msg);

out:
    for (int i = 0; i < 6; i++) {
        free(paths[i]);
        free(imgs[i].pix);
    }
    free(junk.pix);
    free(junk2.pix);
    free(junk3.pix);
    free(root);
}

static void test_gray_folder(void)
{
    aim_err e = {{0}};
    char *root = aim_xstrdup(tap_path("grayds"));
    mkdir_or_bail(root);
    char p[600];
    snprintf(p, sizeof p, "%s/one", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/two", root), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/empty", root), mkdir_or_bail(p);
    img a = make_png(tap_path("grayds/one/1.png"), 6, 2, 1, 1);
    img b = make_png(tap_path("grayds/two/2.png"), 3, 3, 2, 2); /* gray + alpha */
    aim_dataset *ds = aim_data_open_pngdir(root, NULL, &e);
    tap_ok(ds && ds->c == 1 && ds->h == 2 && ds->w == 6 && ds->n == 2,
           "all-gray folder (gray+alpha counts as gray) gives 1 channel, 2x6: %s",
           ds ? "" : e.msg);
    tap_ok(ds && ds->nclasses == 3 && !strcmp(ds->class_names[0], "empty") &&
               ds->labels[0] == 1 && ds->labels[1] == 2,
           "a class folder without images keeps its label slot");
    tap_ok(ds && !memcmp(ds->images, a.pix, 12), "gray pixels are stored unchanged");
    tap_ok(ds && same_as_file(ds, 1, tap_path("grayds/two/2.png"), AIM_RESIZE_AREA),
           "gray+alpha is composited over black and resized");
    aim_dataset_free(ds);
    free(a.pix);
    free(b.pix);
    free(root);
}

static void test_errors(void)
{
    aim_err e = {{0}};
    const char *missing = tap_path("no_such_folder");
    tap_ok(aim_data_open_pngdir(missing, NULL, &e) == NULL && tap_contains(e.msg, missing),
           "missing folder: %s", e.msg);
    const char *file = tap_path("plain.txt");
    tap_write(file, "x", 1);
    tap_ok(aim_data_open_pngdir(file, NULL, &e) == NULL && tap_contains(e.msg, "not a folder"),
           "a file instead of a folder: %s", e.msg);

    const char *none = tap_path("noclasses");
    mkdir_or_bail(none);
    img loose = make_png(tap_path("noclasses/loose.png"), 2, 2, 1, 1);
    free(loose.pix);
    tap_ok(aim_data_open_pngdir(none, NULL, &e) == NULL && tap_contains(e.msg, none) &&
               tap_contains(e.msg, "no class folders"),
           "folder without class folders: %s", e.msg);

    const char *nopng = tap_path("nopng");
    mkdir_or_bail(nopng);
    char p[600];
    snprintf(p, sizeof p, "%s/a", nopng), mkdir_or_bail(p);
    snprintf(p, sizeof p, "%s/b", nopng), mkdir_or_bail(p);
    tap_write(tap_path("nopng/a/x.jpg"), "x", 1);
    tap_ok(aim_data_open_pngdir(nopng, NULL, &e) == NULL && tap_contains(e.msg, "no .png"),
           "class folders without PNG files: %s", e.msg);

    const char *bad = tap_path("corrupt");
    mkdir_or_bail(bad);
    snprintf(p, sizeof p, "%s/k", bad), mkdir_or_bail(p);
    img g1 = make_png(tap_path("corrupt/k/a.png"), 4, 4, 3, 1);
    img g2 = make_png(tap_path("corrupt/k/c.png"), 4, 4, 3, 2);
    /* b.png: a valid header and signature, then garbage */
    uint8_t *buf;
    size_t len;
    aim_read_file(tap_path("corrupt/k/a.png"), 1 << 20, &buf, &len, &e);
    for (size_t i = 41; i < len; i++)
        buf[i] = (uint8_t)(i * 7);
    tap_write(tap_path("corrupt/k/b.png"), buf, len);
    tap_write(tap_path("corrupt/k/d.png"), buf, len);
    free(buf);
    aim_open_opts o3 = {.channels = 3};
    tap_ok(aim_data_open_pngdir(bad, &o3, &e) == NULL &&
               tap_contains(e.msg, "corrupt/k/b.png"),
           "a corrupt PNG is named (the first of two, in dataset order): %s", e.msg);
    /* a non-PNG file with a .png name, found while peeking headers */
    tap_write(tap_path("corrupt/k/b.png"), "GIF89a", 6);
    tap_ok(aim_data_open_pngdir(bad, NULL, &e) == NULL &&
               tap_contains(e.msg, "corrupt/k/b.png") && tap_contains(e.msg, "not a PNG"),
           "a non-PNG .png file is named: %s", e.msg);
    free(g1.pix);
    free(g2.pix);
}

int main(void)
{
    test_resize();
    test_folder();
    test_gray_folder();
    test_errors();
    return tap_done();
}
