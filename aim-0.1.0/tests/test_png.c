/*
 * test_png.c - PNG decoding of every colour type and bit depth (files made
 * here with libpng directly), conversion to 0/1/3/4 channels, write / read
 * round trips, the grid writer, peek, and hostile files (truncated, corrupt
 * CRC, absurd sizes, bad IHDR fields, garbage image data).
 */
#include "config.h"

#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "aim/core.h"
#include "aim/io.h"
#include "tap.h"

/* ------------------------------------------------------------ helpers */

/* A test image in "expanded" form (what the file means at 8 bits): rgba per
 * pixel plus the channel count it has with want_c = 0. */
typedef struct ref_img {
    int w, h, c0;
    uint8_t *rgba; /* [h, w, 4] */
} ref_img;

/* Raw PNG description for the libpng writer. */
typedef struct raw_png {
    int w, h, depth, ctype, interlace;
    uint8_t *rows;   /* h rows of rowbytes, in PNG byte order */
    size_t rowbytes;
    png_color pal[256];
    int npal;
    png_byte trans[256];
    int ntrans;
    png_color_16 trans_color;
    int has_trans_color;
} raw_png;

static int write_raw(const char *path, const raw_png *r)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc((size_t)r->h * sizeof *rows);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        free(rows);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, r->w, r->h, r->depth, r->ctype, r->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (r->npal)
        png_set_PLTE(png, info, r->pal, r->npal);
    if (r->ntrans)
        png_set_tRNS(png, info, r->trans, r->ntrans, NULL);
    if (r->has_trans_color)
        png_set_tRNS(png, info, NULL, 0, (png_color_16p)&r->trans_color);
    png_write_info(png, info);
    for (int y = 0; y < r->h; y++)
        rows[y] = r->rows + (size_t)y * r->rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(rows);
    return 0;
}

/* Put sample v (depth bits) at sample index i of a packed row. */
static void put_sample(uint8_t *row, int depth, size_t i, unsigned v)
{
    if (depth == 16) {
        row[2 * i] = (uint8_t)(v >> 8);
        row[2 * i + 1] = (uint8_t)v;
    } else if (depth == 8) {
        row[i] = (uint8_t)v;
    } else {
        size_t bit = i * depth;
        int shift = 8 - depth - (int)(bit % 8);
        row[bit / 8] |= (uint8_t)(v << shift);
    }
}

static uint8_t scale16(unsigned v) /* round(v * 255 / 65535) */
{
    return (uint8_t)((v * 255u + 32767u) / 65535u);
}

static uint8_t expand_bits(unsigned v, int depth)
{
    return (uint8_t)(v * 255 / ((1u << depth) - 1));
}

static unsigned rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Expected value for want_c (1, 3, 4) or 0 (the file's own c0 channels). */
static void expect_px(const ref_img *r, int x, int y, int want_c, uint8_t *out, int *nc)
{
    const uint8_t *p = r->rgba + ((size_t)y * r->w + x) * 4;
    unsigned R = p[0], G = p[1], B = p[2], A = p[3];
    int c = want_c ? want_c : r->c0;
    *nc = c;
    switch (c) {
    case 1: /* exact integer rounding of (0.299R + 0.587G + 0.114B) * A/255 */
        out[0] = (uint8_t)(((299 * R + 587 * G + 114 * B) * A + 127500) / 255000);
        break;
    case 2:
        out[0] = (uint8_t)R;
        out[1] = (uint8_t)A;
        break;
    case 3:
        if (want_c == 0) { /* own RGB: no alpha exists */
            out[0] = (uint8_t)R, out[1] = (uint8_t)G, out[2] = (uint8_t)B;
        } else {
            out[0] = (uint8_t)((R * A + 127) / 255);
            out[1] = (uint8_t)((G * A + 127) / 255);
            out[2] = (uint8_t)((B * A + 127) / 255);
        }
        break;
    default:
        out[0] = (uint8_t)R, out[1] = (uint8_t)G, out[2] = (uint8_t)B, out[3] = (uint8_t)A;
    }
}

/* Decode `path` with want_c 0/1/3/4 and compare every pixel with the ref. */
static void check_file(const char *label, const char *path, const ref_img *r)
{
    static const int wants[4] = {0, 1, 3, 4};
    for (int k = 0; k < 4; k++) {
        aim_err e = {{0}};
        aim_image im;
        int want = wants[k];
        if (aim_png_read(path, want, &im, &e) < 0) {
            tap_ok(0, "%s: want_c %d decodes: %s", label, want, e.msg);
            continue;
        }
        int exp_c = want ? want : r->c0;
        int good = im.w == r->w && im.h == r->h && im.c == exp_c;
        int bad_x = -1, bad_y = -1;
        for (int y = 0; good && y < r->h; y++)
            for (int x = 0; good && x < r->w; x++) {
                uint8_t ex[4];
                int nc;
                expect_px(r, x, y, want, ex, &nc);
                if (memcmp(ex, im.data + ((size_t)y * r->w + x) * nc, (size_t)nc) != 0) {
                    good = 0;
                    bad_x = x, bad_y = y;
                }
            }
        tap_ok(good, "%s: want_c %d gives %dx%dx%d with exact pixels%s", label, want, r->w,
               r->h, exp_c, good ? "" : " (mismatch)");
        if (!good && bad_x >= 0)
            tap_diag("first mismatch at x=%d y=%d", bad_x, bad_y);
        aim_image_free(&im);
    }
}

/* Build a file of a colour type / depth from random samples and its ref. */
static void make_case(const char *label, int ctype, int depth, int interlace, int trns,
                      int w, int h, uint32_t seed)
{
    raw_png r = {.w = w, .h = h, .depth = depth, .ctype = ctype, .interlace = interlace};
    int spp = ctype == 0 ? 1 : ctype == 2 ? 3 : ctype == 3 ? 1 : ctype == 4 ? 2 : 4;
    r.rowbytes = ((size_t)w * spp * depth + 7) / 8;
    r.rows = calloc((size_t)h, r.rowbytes);
    ref_img ref = {.w = w, .h = h};
    ref.rgba = malloc((size_t)w * h * 4);
    unsigned maxv = (1u << depth) - 1;
    uint32_t s = seed;
    unsigned tcol = 0;
    if (ctype == 3) {
        r.npal = 1 << (depth < 8 ? depth : 5); /* up to 32 entries */
        for (int i = 0; i < r.npal; i++) {
            r.pal[i].red = (png_byte)rnd(&s);
            r.pal[i].green = (png_byte)rnd(&s);
            r.pal[i].blue = (png_byte)rnd(&s);
            r.trans[i] = (png_byte)rnd(&s);
        }
        r.trans[0] = 0;
        r.trans[1] = 255;
        if (trns)
            r.ntrans = r.npal / 2; /* entries beyond are opaque */
    } else if (trns) {
        tcol = rnd(&s) & maxv;
        r.has_trans_color = 1;
        r.trans_color.gray = (png_uint_16)tcol;
        r.trans_color.red = (png_uint_16)tcol;
        r.trans_color.green = (png_uint_16)tcol;
        r.trans_color.blue = (png_uint_16)tcol;
    }
    for (int y = 0; y < h; y++) {
        uint8_t *row = r.rows + (size_t)y * r.rowbytes;
        for (int x = 0; x < w; x++) {
            unsigned v[4];
            for (int k = 0; k < spp; k++) {
                v[k] = rnd(&s) & maxv;
                if (depth == 16 && (x + k) % 5 == 0) /* exercise extremes */
                    v[k] = (x + y) % 2 ? 65535 : 0;
            }
            if (ctype == 3)
                v[0] %= (unsigned)r.npal;
            if (trns && ctype != 3 && x % 3 == 0) /* some pixels hit the key */
                for (int k = 0; k < spp; k++)
                    v[k] = tcol;
            for (int k = 0; k < spp; k++)
                put_sample(row, depth, (size_t)x * spp + k, v[k]);
            uint8_t e8[4];
            for (int k = 0; k < spp; k++)
                e8[k] = depth == 16 ? scale16(v[k]) : depth < 8 && ctype != 3
                                                         ? expand_bits(v[k], depth)
                                                         : (uint8_t)v[k];
            uint8_t *o = ref.rgba + ((size_t)y * w + x) * 4;
            switch (ctype) {
            case 0:
                o[0] = o[1] = o[2] = e8[0];
                o[3] = trns && v[0] == tcol ? 0 : 255;
                ref.c0 = trns ? 2 : 1;
                break;
            case 2:
                o[0] = e8[0], o[1] = e8[1], o[2] = e8[2];
                o[3] = trns && v[0] == tcol && v[1] == tcol && v[2] == tcol ? 0 : 255;
                ref.c0 = trns ? 4 : 3;
                break;
            case 3:
                o[0] = r.pal[v[0]].red, o[1] = r.pal[v[0]].green, o[2] = r.pal[v[0]].blue;
                o[3] = trns && (int)v[0] < r.ntrans ? r.trans[v[0]] : 255;
                ref.c0 = trns ? 4 : 3;
                break;
            case 4:
                o[0] = o[1] = o[2] = e8[0];
                o[3] = e8[1];
                ref.c0 = 2;
                break;
            default:
                o[0] = e8[0], o[1] = e8[1], o[2] = e8[2], o[3] = e8[3];
                ref.c0 = 4;
            }
        }
    }
    char name[64];
    snprintf(name, sizeof name, "case_%d_%d_%d_%d.png", ctype, depth, interlace, trns);
    const char *path = tap_path(name);
    if (!tap_ok(write_raw(path, &r) == 0, "%s: test file written", label))
        goto out;
    check_file(label, path, &ref);
    aim_err e = {{0}};
    aim_image hd;
    tap_ok(aim_png_peek(path, &hd, &e) == 0 && hd.w == w && hd.h == h && hd.c == ref.c0 &&
               hd.data == NULL,
           "%s: peek gives %dx%d, %d channels", label, w, h, ref.c0);
out:
    free(r.rows);
    free(ref.rgba);
}

/* ----------------------------------------------------------- hostile */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* fix the CRC of the chunk starting at off */
static void fix_crc(uint8_t *b, size_t off)
{
    uint32_t len = get32(b + off);
    put32(b + off + 8 + len, (uint32_t)crc32(0, b + off + 4, 4 + len));
}

/* Must fail from memory and from a file, with the name in the message and
 * (when given) `what` as well. */
static void expect_fail(const char *label, const uint8_t *buf, size_t len,
                        const char *what, int peek_too)
{
    aim_err e = {{0}};
    aim_image im = {0};
    int rc = aim_png_decode(buf, len, "mem.png", 3, &im, &e);
    tap_ok(rc == -1 && im.data == NULL && tap_contains(e.msg, "mem.png") &&
               (!what || tap_contains(e.msg, what)),
           "%s: decode fails: %s", label, e.msg);
    char name[80];
    snprintf(name, sizeof name, "hostile_%d.png", tap_n);
    const char *path = tap_path(name);
    tap_write(path, buf, len);
    memset(&e, 0, sizeof e);
    rc = aim_png_read(path, 0, &im, &e);
    tap_ok(rc == -1 && im.data == NULL && tap_contains(e.msg, path) &&
               (!what || tap_contains(e.msg, what)),
           "%s: read fails naming the file: %s", label, e.msg);
    if (peek_too) {
        memset(&e, 0, sizeof e);
        rc = aim_png_peek(path, &im, &e);
        tap_ok(rc == -1 && tap_contains(e.msg, path), "%s: peek fails too: %s", label, e.msg);
    }
}

static void hostile(void)
{
    aim_err e = {{0}};
    /* a valid 16x16 RGB file to mutilate */
    uint8_t pix[16 * 16 * 3];
    uint32_t s = 7;
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)rnd(&s);
    const char *base = tap_path("base.png");
    uint8_t *good;
    size_t len;
    if (!tap_ok(aim_png_write(base, pix, 16, 16, 3, &e) == 0 &&
                    aim_read_file(base, 1 << 20, &good, &len, &e) == 0,
                "hostile: base file written and loaded"))
        return;
    size_t idat = 8; /* find the first IDAT */
    while (idat + 8 <= len && memcmp(good + idat + 4, "IDAT", 4) != 0)
        idat += 12 + get32(good + idat);
    uint32_t idat_len = get32(good + idat);
    tap_ok(idat + 12 + idat_len <= len && idat_len > 8, "hostile: base file has an IDAT");
    uint8_t *b = malloc(len + 64);

    expect_fail("empty file", good, 0, "not a PNG", 1);
    expect_fail("wrong signature", (const uint8_t *)"GIF89a\x01\x00\x01\x00\x00\x00", 12,
                "not a PNG", 1);
    expect_fail("truncated inside the signature", good, 5, "not a PNG", 1);
    expect_fail("truncated inside IHDR", good, 20, NULL, 1);
    expect_fail("truncated after IHDR", good, 33, "truncated", 1);
    expect_fail("truncated in IDAT", good, idat + 8 + idat_len / 2, NULL, 0);

    memcpy(b, good, len);
    b[29] ^= 0x55;
    expect_fail("corrupted IHDR CRC", b, len, "CRC", 1);

    memcpy(b, good, len);
    put32(b + 16, 100000);
    put32(b + 20, 100000);
    fix_crc(b, 8);
    expect_fail("IHDR claiming 100000 x 100000 (valid CRC)", b, len,
                "100000 x 100000 pixels is larger than the limit", 1);

    memcpy(b, good, len);
    put32(b + 16, 16384);
    put32(b + 20, 16384);
    fix_crc(b, 8);
    expect_fail("IHDR claiming 16384 x 16384 (sides fine, too many pixels)", b, len,
                "larger than the limit", 1);

    memcpy(b, good, len);
    put32(b + 16, 0);
    fix_crc(b, 8);
    expect_fail("zero width", b, len, "empty", 1);

    memcpy(b, good, len);
    b[24] = 4; /* RGB at 4 bits */
    fix_crc(b, 8);
    expect_fail("bad bit depth / colour type", b, len, "bit depth", 1);

    memcpy(b, good, len);
    b[25] = 5; /* no colour type 5 */
    fix_crc(b, 8);
    expect_fail("unknown colour type", b, len, "colour type", 1);

    memcpy(b, good, len);
    memset(b + idat + 8, 0xab, idat_len);
    fix_crc(b, idat);
    expect_fail("garbage IDAT (zlib error)", b, len, "libpng", 0);

    memcpy(b, good, len);
    b[idat + 8 + idat_len / 2] ^= 0x10; /* CRC now wrong */
    expect_fail("IDAT with a flipped bit (CRC and zlib check)", b, len, NULL, 0);

    /* ancillary chunks claiming 2 GB right after IHDR: no 2 GB buffer */
    static const char *const big[4] = {"zTXt", "tEXt", "iCCP", "eXIf"};
    for (int i = 0; i < 4; i++) {
        char label[48];
        snprintf(label, sizeof label, "%s chunk claiming 2 GB", big[i]);
        memcpy(b, good, 33);
        put32(b + 33, 0x7ffffff0u);
        memcpy(b + 37, big[i], 4);
        memcpy(b + 41, "abc", 4);
        expect_fail(label, b, 45, "truncated", 1);
    }

    /* an IDAT that inflates to far more than the image needs is harmless;
     * an image whose data stops early still decodes (rows zero-filled) or
     * fails, but never crashes: a 1-byte zlib stream */
    memcpy(b, good, idat);
    static const uint8_t tiny[] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    put32(b + idat, sizeof tiny);
    memcpy(b + idat + 4, "IDAT", 4);
    memcpy(b + idat + 8, tiny, sizeof tiny);
    fix_crc(b, idat);
    size_t n2 = idat + 12 + sizeof tiny;
    memcpy(b + n2, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    aim_image im;
    int rc = aim_png_decode(b, n2 + 12, "short.png", 0, &im, &e);
    tap_ok(rc == -1 ? tap_contains(e.msg, "short.png") : im.w == 16 && im.h == 16,
           "IDAT with too little data: no crash (%s)", rc ? e.msg : "decoded");
    aim_image_free(&im);

    /* a zTXt bomb: 32 MB of zeros in 32 KB, before the image data. The
     * chunk allocation cap stops the inflation; the image still decodes. */
    size_t raw_n = (size_t)32 << 20;
    uint8_t *zeros = calloc(1, raw_n + 6);
    memcpy(zeros, "bomb\0\0", 6); /* keyword, NUL, method 0 */
    uLongf zn = compressBound(raw_n);
    uint8_t *bomb = malloc(len + zn + 64);
    memcpy(bomb, good, 33);
    int zok = compress2(bomb + 33 + 8 + 6, &zn, zeros + 6, raw_n, 9) == Z_OK;
    put32(bomb + 33, (uint32_t)(zn + 6));
    memcpy(bomb + 37, "zTXt", 4);
    memcpy(bomb + 41, zeros, 6);
    fix_crc(bomb, 33);
    size_t at = 33 + 12 + 6 + zn;
    memcpy(bomb + at, good + 33, len - 33);
    rc = aim_png_decode(bomb, at + len - 33, "bomb.png", 0, &im, &e);
    tap_ok(zok && rc == 0 && im.c == 3 && !memcmp(im.data, pix, sizeof pix),
           "zTXt bomb (%lu bytes -> 32 MB) is skipped, the image decodes: %s",
           (unsigned long)zn, rc ? e.msg : "ok");
    aim_image_free(&im);
    free(zeros);
    free(bomb);

    tap_ok(aim_png_decode(good, len, "good.png", 2, &im, &e) == -1 &&
               tap_contains(e.msg, "good.png"),
           "want_c = 2 is refused: %s", e.msg);
    tap_ok(aim_png_read(tap_path("missing.png"), 3, &im, &e) == -1 &&
               tap_contains(e.msg, "missing.png"),
           "missing file: %s", e.msg);
    tap_ok(aim_png_peek(tap_path("missing.png"), &im, &e) == -1 &&
               tap_contains(e.msg, "missing.png"),
           "peek of a missing file: %s", e.msg);
    tap_ok(aim_png_decode(good, len, "good.png", 0, &im, &e) == 0 && im.c == 3 &&
               !memcmp(im.data, pix, sizeof pix),
           "the unharmed base file still decodes");
    aim_image_free(&im);
    free(b);
    free(good);
}

/* ------------------------------------------------------------ writers */

static void round_trips(void)
{
    aim_err e = {{0}};
    int cs[3] = {1, 3, 4};
    for (int t = 0; t < 3; t++) {
        int c = cs[t], w = 37, h = 23;
        uint8_t *pix = malloc((size_t)w * h * c);
        uint32_t s = 100 + c;
        for (int i = 0; i < w * h * c; i++)
            pix[i] = (uint8_t)rnd(&s);
        char name[32];
        snprintf(name, sizeof name, "rt%d.png", c);
        const char *path = tap_path(name);
        aim_image im = {0};
        int ok = aim_png_write(path, pix, w, h, c, &e) == 0 &&
                 aim_png_read(path, 0, &im, &e) == 0;
        tap_ok(ok && im.w == w && im.h == h && im.c == c &&
                   !memcmp(im.data, pix, (size_t)w * h * c),
               "write + read round trip, %d channel%s %s", c, c > 1 ? "s" : "", e.msg);
        aim_image_free(&im);
        aim_image hd;
        tap_ok(aim_png_peek(path, &hd, &e) == 0 && hd.w == w && hd.h == h && hd.c == c,
               "peek of the written %d-channel file", c);
        free(pix);
    }
    uint8_t px[4] = {1, 2, 3, 4};
    tap_ok(aim_png_write(tap_path("bad.png"), px, 2, 2, 2, &e) == -1 &&
               tap_contains(e.msg, "bad.png"),
           "write refuses 2 channels: %s", e.msg);
    tap_ok(aim_png_write(tap_path("bad.png"), px, 0, 2, 1, &e) == -1, "write refuses width 0");
    tap_ok(aim_png_write(tap_path("bad.png"), px, 20000, 1, 1, &e) == -1 &&
               tap_contains(e.msg, "20000"),
           "write refuses a side above the limit: %s", e.msg);
    tap_ok(aim_png_write(tap_path("no/such/dir/x.png"), px, 2, 2, 1, &e) == -1 &&
               tap_contains(e.msg, "no/such/dir"),
           "write into a missing folder fails: %s", e.msg);
}

static void check_grid(int c)
{
    aim_err e = {{0}};
    int n = 5, h = 2, w = 3, cols = 2, border = 1, scale = 2;
    uint8_t bv = 7;
    size_t plane = (size_t)h * w;
    uint8_t *imgs = malloc((size_t)n * c * plane);
    for (size_t i = 0; i < (size_t)n * c * plane; i++)
        imgs[i] = (uint8_t)(100 + i); /* never equal to the border value */
    char name[32];
    snprintf(name, sizeof name, "grid%d.png", c);
    const char *path = tap_path(name);
    aim_image im = {0};
    int ok = aim_png_write_grid(path, imgs, n, c, h, w, cols, border, scale, bv, &e) == 0 &&
             aim_png_read(path, 0, &im, &e) == 0;
    int W = cols * w * scale + (cols + 1) * border; /* 15 */
    int H = 3 * h * scale + 4 * border;             /* 16 */
    tap_ok(ok && im.w == W && im.h == H && im.c == c, "grid c=%d is %dx%d: %s", c, W, H,
           ok ? "" : e.msg);
    if (!ok || im.w != W || im.h != H || im.c != c) {
        aim_image_free(&im);
        free(imgs);
        return;
    }
    int border_ok = 1, cells_ok = 1;
    int cw = w * scale, chh = h * scale;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = im.data + ((size_t)y * W + x) * c;
            int gx = x - border, gy = y - border;
            int in_x = gx >= 0 && gx % (cw + border) < cw;
            int in_y = gy >= 0 && gy % (chh + border) < chh;
            int col = in_x ? gx / (cw + border) : -1, row = in_y ? gy / (chh + border) : -1;
            int i = row * cols + col;
            if (!in_x || !in_y || col >= cols || i >= n) {
                for (int k = 0; k < c; k++)
                    border_ok &= p[k] == bv;
                continue;
            }
            int sy = (gy % (chh + border)) / scale, sx = (gx % (cw + border)) / scale;
            for (int k = 0; k < c; k++)
                cells_ok &= p[k] == imgs[((size_t)i * c + k) * plane + sy * w + sx];
        }
    tap_ok(border_ok, "grid c=%d: border and the empty cell hold the border value", c);
    tap_ok(cells_ok, "grid c=%d: cells hold the images scaled by nearest neighbour", c);
    /* spot checks with explicit numbers: image 0 pixel (0,0) covers 2x2 */
    const uint8_t *p11 = im.data + ((size_t)1 * W + 1) * c;
    const uint8_t *p22 = im.data + ((size_t)2 * W + 2) * c;
    tap_ok(p11[0] == 100 && p22[0] == 100 && im.data[0] == bv, "grid c=%d: spot values", c);
    /* in memory (aim_png_encode_grid): the same encoder, so the same bytes
     * as the file, and the grid's size */
    uint8_t *file = NULL, *mem = NULL;
    size_t flen = 0, mlen = 0;
    int mw = 0, mh = 0;
    int mrc = aim_png_encode_grid(imgs, n, c, h, w, cols, border, scale, bv, &mem, &mlen, &mw,
                                  &mh, &e);
    aim_read_file(path, 1 << 20, &file, &flen, &e);
    tap_ok(mrc == 0 && mw == W && mh == H && file && mlen == flen && !memcmp(mem, file, flen),
           "grid c=%d in memory: %dx%d, the file's %zu bytes exactly", c, mw, mh, mlen);
    free(file);
    free(mem);
    aim_image_free(&im);
    free(imgs);
}

static void grid_errors(void)
{
    aim_err e = {{0}};
    uint8_t px[64] = {0};
    const char *p = tap_path("g.png");
    tap_ok(aim_png_write_grid(p, px, 0, 1, 2, 2, 2, 1, 1, 0, &e) == -1 &&
               tap_contains(e.msg, "g.png"),
           "grid: n = 0 refused: %s", e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 0, 1, 1, 0, &e) == -1, "grid: cols = 0 refused: %s",
           e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 2, 1, 0, 0, &e) == -1, "grid: scale = 0 refused: %s",
           e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 2, 2, 2, 2, 1, 1, 0, &e) == -1, "grid: c = 2 refused: %s",
           e.msg);
    uint8_t *mem = (uint8_t *)1;
    size_t mlen = 1;
    tap_ok(aim_png_encode_grid(px, 2, 2, 2, 2, 2, 1, 1, 0, &mem, &mlen, NULL, NULL, &e) == -1 &&
               mem == NULL && mlen == 0 && tap_contains(e.msg, "<memory>"),
           "grid in memory: c = 2 refused, nothing returned: %s", e.msg);
    tap_ok(aim_png_encode(px, 2, 2, 2, &mem, &mlen, &e) == -1 && mem == NULL,
           "encode in memory refuses 2 channels: %s", e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 2, -1, 1, 0, &e) == -1,
           "grid: negative border refused: %s", e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 2, 1, 100000, 0, &e) == -1 &&
               tap_contains(e.msg, "limit"),
           "grid: output above the PNG limits refused: %s", e.msg);
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 2, 2000000000, 1, 0, &e) == -1,
           "grid: absurd border refused without overflow: %s", e.msg);
    /* more columns than images: one row of `cols` cells, the extra ones empty */
    aim_image im;
    tap_ok(aim_png_write_grid(p, px, 2, 1, 2, 2, 8, 1, 1, 9, &e) == 0 &&
               aim_png_read(p, 0, &im, &e) == 0 && im.w == 25 && im.h == 4 &&
               im.data[25 + 1] == 0 && im.data[25 + 7] == 9,
           "grid: cols > n gives one row of cols cells, empty ones in border colour");
    aim_image_free(&im);
}

/* ------------------------------------------------------ known values */

static void known_values(void)
{
    aim_err e = {{0}};
    /* pure red, green, blue, white; half-transparent white; 16-bit values */
    uint8_t rgba[5 * 4] = {255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255,
                           255, 255, 255, 255, 255, 255, 255, 128};
    const char *p = tap_path("known.png");
    aim_image im = {0};
    tap_ok(aim_png_write(p, rgba, 5, 1, 4, &e) == 0 && aim_png_read(p, 1, &im, &e) == 0 &&
               im.c == 1 && im.data[0] == 76 && im.data[1] == 150 && im.data[2] == 29 &&
               im.data[3] == 255 && im.data[4] == 128,
           "luminance: red 76, green 150, blue 29, white 255, half-alpha white 128");
    aim_image_free(&im);
    tap_ok(aim_png_read(p, 3, &im, &e) == 0 && im.c == 3 && im.data[12] == 128 &&
               im.data[13] == 128 && im.data[14] == 128 && im.data[0] == 255 && im.data[1] == 0,
           "alpha 128 over black halves white to 128");
    aim_image_free(&im);

    /* 16-bit gray: exact expectations */
    raw_png r = {.w = 6, .h = 1, .depth = 16, .ctype = 0};
    unsigned v16[6] = {0, 65535, 257 * 100, 0x1234, 0x80ff, 0x7f80};
    uint8_t exp8[6] = {0, 255, 100, 18, 128, 127};
    r.rowbytes = 12;
    r.rows = calloc(1, 12);
    for (int i = 0; i < 6; i++)
        put_sample(r.rows, 16, (size_t)i, v16[i]);
    p = tap_path("g16.png");
    int ok = write_raw(p, &r) == 0 && aim_png_read(p, 0, &im, &e) == 0 && im.c == 1;
    for (int i = 0; ok && i < 6; i++)
        ok &= im.data[i] == exp8[i];
    tap_ok(ok, "16-bit gray scales to 8 bits with rounding (0,255,100,18,128,127)");
    aim_image_free(&im);
    free(r.rows);

    /* 1-bit gray: 0 -> 0, 1 -> 255 */
    raw_png b = {.w = 10, .h = 1, .depth = 1, .ctype = 0, .rowbytes = 2};
    b.rows = calloc(1, 2);
    b.rows[0] = 0xa5; /* 1010 0101 */
    b.rows[1] = 0x40; /* 01 */
    p = tap_path("g1.png");
    uint8_t e1[10] = {255, 0, 255, 0, 0, 255, 0, 255, 0, 255};
    ok = write_raw(p, &b) == 0 && aim_png_read(p, 0, &im, &e) == 0 && im.c == 1 &&
         im.w == 10 && !memcmp(im.data, e1, 10);
    tap_ok(ok, "1-bit gray expands to 0 / 255");
    aim_image_free(&im);
    free(b.rows);
}

int main(void)
{
    make_case("gray 1-bit", 0, 1, 0, 0, 19, 5, 1);
    make_case("gray 2-bit", 0, 2, 0, 0, 13, 4, 2);
    make_case("gray 4-bit", 0, 4, 0, 0, 11, 3, 3);
    make_case("gray 8-bit", 0, 8, 0, 0, 9, 7, 4);
    make_case("gray 16-bit", 0, 16, 0, 0, 9, 7, 5);
    make_case("gray 8-bit + tRNS", 0, 8, 0, 1, 9, 7, 6);
    make_case("gray 2-bit + tRNS", 0, 2, 0, 1, 9, 7, 16);
    make_case("gray+alpha 8-bit", 4, 8, 0, 0, 8, 6, 7);
    make_case("gray+alpha 16-bit", 4, 16, 0, 0, 8, 6, 8);
    make_case("palette 8-bit", 3, 8, 0, 0, 10, 5, 9);
    make_case("palette 4-bit + tRNS", 3, 4, 0, 1, 10, 5, 10);
    make_case("palette 1-bit", 3, 1, 0, 0, 17, 3, 17);
    make_case("palette 8-bit + tRNS", 3, 8, 0, 1, 10, 5, 18);
    make_case("RGB 8-bit", 2, 8, 0, 0, 12, 5, 11);
    make_case("RGB 16-bit", 2, 16, 0, 0, 12, 5, 12);
    make_case("RGB 8-bit + tRNS", 2, 8, 0, 1, 12, 5, 19);
    make_case("RGBA 8-bit", 6, 8, 0, 0, 7, 9, 13);
    make_case("RGBA 16-bit", 6, 16, 0, 0, 7, 9, 14);
    make_case("RGBA 8-bit Adam7", 6, 8, 1, 0, 13, 11, 15);
    make_case("gray 1-bit Adam7", 0, 1, 1, 0, 13, 11, 20);
    make_case("RGB 16-bit Adam7", 2, 16, 1, 0, 9, 10, 21);
    known_values();
    round_trips();
    check_grid(1);
    check_grid(3);
    grid_errors();
    hostile();
    return tap_done();
}
