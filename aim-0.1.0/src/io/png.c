/*
 * png.c - PNG reading and writing through libpng 1.6.
 *
 * Reading works from memory: aim_png_read() loads the file (bounded) and
 * aim_png_decode() feeds it to libpng through a reader that stops cleanly at
 * the end of the buffer. The IHDR chunk is checked by hand before libpng
 * sees the file, so an image that is too large, empty or has an impossible
 * bit depth / colour type is refused with a plain message and before any
 * pixel memory exists; libpng's own user limits back this up. Only IHDR,
 * PLTE, tRNS, IDAT and IEND are read; every other chunk (text, iCCP, ...)
 * is skipped without being buffered or inflated, so a chunk claiming 2 GB
 * or a zTXt bomb costs nothing (the chunk allocation cap is a second fence).
 *
 * libpng never prints: warnings are dropped and errors longjmp back to the
 * caller after being turned into an aim_err message naming the file
 * ("img/3.png: libpng: IDAT: incorrect header check"). The handlers get their
 * context through png_get_error_ptr(), so nothing here is global.
 *
 * Every image is decoded to 8 bits per channel: palette -> RGB, tRNS ->
 * alpha, gray below 8 bits -> 8 bits, 16 bits -> 8 bits (rounded), Adam7
 * deinterlaced. The result is then converted to the requested channels:
 *   1: luminance round((0.299 R + 0.587 G + 0.114 B) * A / 255), one rounding;
 *   3: RGB composited over black (gray replicated);
 *   4: RGBA (opaque alpha added when the file has none);
 *   0: the file's own channels after expansion (1, 2, 3 or 4).
 *
 * The grid writer lays out `cols` cells per row even when n < cols (cells
 * without an image are filled with the border value).
 *
 * Writing goes through aim_write_atomic(); libpng writes to the temporary
 * FILE and any libpng error becomes an aim_err and aborts the write.
 * aim_png_encode() and aim_png_encode_grid() run the same encoder into a
 * growing memory buffer instead (png_set_write_fn), for PNGs that go
 * somewhere other than a file of their own (TensorBoard image summaries).
 */
#include "config.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "aim/io.h"

#define PNG_MAX_FILE ((uint64_t)256 << 20)     /* aim_png_read: 256 MiB */
#define PNG_CHUNK_MALLOC_MAX ((png_alloc_size_t)16 << 20)

static const uint8_t sig_bytes[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------------ libpng glue */

/* What the error handler and the reader need; reached via png_get_*_ptr. */
typedef struct io_ctx {
    const char *name;
    aim_err *e;
    const uint8_t *buf; /* reading: the whole file */
    size_t len, pos;
} io_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    io_ctx *cx = png_get_error_ptr(png);
    aim_errf(cx->e, "%s: libpng: %s", cx->name, msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* the library never prints; a warning is not a failure */
}

static void mem_read(png_structp png, png_bytep out, png_size_t n)
{
    io_ctx *cx = png_get_io_ptr(png);
    if (n > cx->len - cx->pos)
        png_error(png, "unexpected end of file (truncated)");
    memcpy(out, cx->buf + cx->pos, n);
    cx->pos += n;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Channels a colour type has once expanded (tRNS adds alpha). */
static int ctype_channels(int ctype, int has_trns)
{
    switch (ctype) {
    case 0: return has_trns ? 2 : 1;
    case 2: return has_trns ? 4 : 3;
    case 3: return has_trns ? 4 : 3;
    case 4: return 2;
    case 6: return 4;
    default: return 0;
    }
}

static int size_ok(uint64_t w, uint64_t h, const char *name, aim_err *e)
{
    if (w == 0 || h == 0)
        return aim_errf(e, "%s: %llu x %llu pixels: the image is empty", name,
                        (unsigned long long)w, (unsigned long long)h);
    if (w > AIM_PNG_MAX_SIDE || h > AIM_PNG_MAX_SIDE || w * h > AIM_PNG_MAX_PIXELS)
        return aim_errf(e,
                        "%s: %llu x %llu pixels is larger than the limit (%d per side, "
                        "%llu pixels)",
                        name, (unsigned long long)w, (unsigned long long)h,
                        AIM_PNG_MAX_SIDE, (unsigned long long)AIM_PNG_MAX_PIXELS);
    return 0;
}

/* Check the IHDR chunk (p = its 25 bytes: length, type, 13 data bytes, CRC).
 * The CRC is verified too. Fills w, h, colour type and bit depth. */
static int check_ihdr(const uint8_t *p, const char *name, uint32_t *w, uint32_t *h,
                      int *ctype, int *depth, aim_err *e)
{
    if (be32(p) != 13 || memcmp(p + 4, "IHDR", 4) != 0)
        return aim_errf(e, "%s: corrupt PNG: the first chunk is not a valid IHDR", name);
    if ((uint32_t)crc32(0, p + 4, 17) != be32(p + 21))
        return aim_errf(e, "%s: corrupt PNG: IHDR: CRC error", name);
    const uint8_t *d = p + 8;
    *w = be32(d);
    *h = be32(d + 4);
    *depth = d[8];
    *ctype = d[9];
    if (size_ok(*w, *h, name, e) < 0)
        return -1;
    int ok;
    switch (*ctype) {
    case 0: ok = *depth == 1 || *depth == 2 || *depth == 4 || *depth == 8 || *depth == 16; break;
    case 3: ok = *depth == 1 || *depth == 2 || *depth == 4 || *depth == 8; break;
    case 2: case 4: case 6: ok = *depth == 8 || *depth == 16; break;
    default:
        return aim_errf(e, "%s: corrupt PNG: unknown colour type %d", name, *ctype);
    }
    if (!ok)
        return aim_errf(e, "%s: corrupt PNG: bit depth %d is not allowed with colour type %d",
                        name, *depth, *ctype);
    if (d[10] != 0 || d[11] != 0)
        return aim_errf(e, "%s: corrupt PNG: unknown compression or filter method", name);
    if (d[12] > 1)
        return aim_errf(e, "%s: corrupt PNG: unknown interlace method %d", name, d[12]);
    return 0;
}

/* ---------------------------------------------------------------- decode */

/* Decoder state kept in memory (not in locals) so a longjmp loses nothing. */
typedef struct dec_state {
    uint8_t *raw;    /* h rows of w * ch bytes */
    png_bytep *rows;
    int w, h, ch;
} dec_state;

/* Everything libpng does for a decode; returns -1 after a libpng error. */
static int decode_rows(png_structp png, png_infop info, dec_state *d, io_ctx *cx)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_read_fn(png, cx, mem_read);
    png_set_user_limits(png, AIM_PNG_MAX_SIDE, AIM_PNG_MAX_SIDE);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
    /* skip every chunk but IHDR, PLTE, tRNS, IDAT and IEND unread: text,
     * iCCP, ... are not needed, and libpng would allocate (and clear) a
     * buffer of a hostile chunk's claimed length before reading it */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (size_ok(w, h, cx->name, cx->e) < 0)
        return -1;
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (depth == 16)
        png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (ch < 1 || ch > 4 || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * ch)
        return aim_errf(cx->e, "%s: unsupported PNG layout after expansion", cx->name);
    d->w = (int)w;
    d->h = (int)h;
    d->ch = ch;
    /* zeroed: a benign "not enough image data" leaves rows unwritten */
    d->raw = calloc((size_t)h, rowbytes);
    d->rows = malloc((size_t)h * sizeof *d->rows);
    if (!d->raw || !d->rows)
        return aim_errf(cx->e, "%s: out of memory for %u x %u pixels", cx->name,
                        (unsigned)w, (unsigned)h);
    for (png_uint_32 y = 0; y < h; y++)
        d->rows[y] = d->raw + (size_t)y * rowbytes;
    png_read_image(png, d->rows);
    return 0;
}

static inline uint8_t over_black(unsigned v, unsigned a)
{
    return (uint8_t)((v * a + 127) / 255);
}

/* round((299 r + 587 g + 114 b) * a / (1000 * 255)) */
static inline uint8_t luma(unsigned r, unsigned g, unsigned b, unsigned a)
{
    unsigned num = (299 * r + 587 * g + 114 * b) * a;
    return (uint8_t)((num + 127500) / 255000);
}

/* Convert n interleaved pixels with sc channels (1..4) into dc (1, 3, 4). */
static void convert_pixels(const uint8_t *s, int sc, uint8_t *d, int dc, size_t n)
{
    for (size_t i = 0; i < n; i++, s += sc, d += dc) {
        unsigned r, g, b, a;
        switch (sc) {
        case 1: r = g = b = s[0]; a = 255; break;
        case 2: r = g = b = s[0]; a = s[1]; break;
        case 3: r = s[0]; g = s[1]; b = s[2]; a = 255; break;
        default: r = s[0]; g = s[1]; b = s[2]; a = s[3]; break;
        }
        if (dc == 1) {
            d[0] = sc <= 2 ? over_black(r, a) : luma(r, g, b, a);
        } else if (dc == 3) {
            d[0] = over_black(r, a);
            d[1] = over_black(g, a);
            d[2] = over_black(b, a);
        } else {
            d[0] = (uint8_t)r;
            d[1] = (uint8_t)g;
            d[2] = (uint8_t)b;
            d[3] = (uint8_t)a;
        }
    }
}

int aim_png_decode(const uint8_t *buf, size_t len, const char *name, int want_c,
                   aim_image *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (want_c != 0 && want_c != 1 && want_c != 3 && want_c != 4)
        return aim_errf(e, "%s: cannot decode to %d channels (use 0, 1, 3 or 4)", name,
                        want_c);
    if (!buf || len < 8 || memcmp(buf, sig_bytes, 8) != 0)
        return aim_errf(e, "%s: not a PNG file (bad signature)", name);
    /* IHDR must come first; when it is all there, check it before libpng */
    if (len >= 33 && !memcmp(buf + 12, "IHDR", 4)) {
        uint32_t w, h;
        int ctype, depth;
        if (check_ihdr(buf + 8, name, &w, &h, &ctype, &depth, e) < 0)
            return -1;
    }

    io_ctx cx = {.name = name, .e = e, .buf = buf, .len = len, .pos = 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &cx, on_error,
                                             on_warning);
    if (!png)
        return aim_errf(e, "%s: cannot create a libpng reader", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return aim_errf(e, "%s: cannot create a libpng reader", name);
    }
    dec_state d = {0};
    int rc = decode_rows(png, info, &d, &cx);
    png_destroy_read_struct(&png, &info, NULL);
    free(d.rows);
    if (rc < 0) {
        free(d.raw);
        return -1;
    }

    int dc = want_c ? want_c : d.ch;
    if (dc == d.ch) {
        out->data = d.raw;
    } else {
        size_t n = (size_t)d.w * (size_t)d.h;
        out->data = aim_try_malloc(n * (size_t)dc);
        if (!out->data) {
            free(d.raw);
            return aim_errf(e, "%s: out of memory for %d x %d pixels", name, d.w, d.h);
        }
        convert_pixels(d.raw, d.ch, out->data, dc, n);
        free(d.raw);
    }
    out->w = d.w;
    out->h = d.h;
    out->c = dc;
    return 0;
}

int aim_png_read(const char *path, int want_c, aim_image *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    if (aim_read_file(path, PNG_MAX_FILE, &buf, &len, e) < 0)
        return -1;
    int rc = aim_png_decode(buf, len, path, want_c, out, e);
    free(buf);
    return rc;
}

/* Header only: signature, IHDR, then chunk headers up to the first IDAT to
 * learn whether a tRNS chunk adds an alpha channel. No pixel data is read. */
int aim_png_peek(const char *path, aim_image *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    int64_t size = aim_file_size(path, e);
    if (size < 0)
        return -1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return aim_errf(e, "%s: %s", path, strerror(errno));
    uint8_t hd[33];
    size_t got = fread(hd, 1, sizeof hd, f);
    int rc = -1;
    uint32_t w, h;
    int ctype, depth, trns = 0;
    if (got < 8 || memcmp(hd, sig_bytes, 8) != 0) {
        aim_errf(e, "%s: not a PNG file (bad signature)", path);
        goto done;
    }
    if (got < sizeof hd) {
        aim_errf(e, "%s: truncated PNG (no complete IHDR chunk)", path);
        goto done;
    }
    if (check_ihdr(hd + 8, path, &w, &h, &ctype, &depth, e) < 0)
        goto done;
    /* walk chunk headers: at most the file's size in steps of >= 12 bytes */
    int64_t pos = 33;
    for (;;) {
        uint8_t ch[8];
        if (pos + 12 > size || fseek(f, (long)pos, SEEK_SET) != 0 ||
            fread(ch, 1, 8, f) != 8) {
            aim_errf(e, "%s: truncated PNG (no image data)", path);
            goto done;
        }
        uint32_t clen = be32(ch);
        if (clen > 0x7fffffffu) {
            aim_errf(e, "%s: corrupt PNG: chunk length %lu is invalid", path,
                     (unsigned long)clen);
            goto done;
        }
        if (!memcmp(ch + 4, "IDAT", 4) || !memcmp(ch + 4, "IEND", 4))
            break;
        if (!memcmp(ch + 4, "tRNS", 4))
            trns = 1;
        pos += 12 + (int64_t)clen;
    }
    out->w = (int)w;
    out->h = (int)h;
    out->c = ctype_channels(ctype, trns);
    rc = 0;
done:
    fclose(f);
    return rc;
}

void aim_image_free(aim_image *im)
{
    if (!im)
        return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

/* ----------------------------------------------------------------- write */

typedef struct wr_state {
    const char *path;   /* for messages ("<memory>" when encoding to memory) */
    const uint8_t *pix; /* interleaved [h, w, c] */
    int w, h, c;
    png_bytep *rows;
    /* encoding to memory: the file grows here (kept in memory, not in
     * locals, so a longjmp loses nothing) */
    uint8_t *buf;
    size_t len, cap;
} wr_state;

static void mem_write(png_structp png, png_bytep data, png_size_t n)
{
    wr_state *wr = png_get_io_ptr(png);
    if (n > wr->cap - wr->len) {
        size_t cap = wr->cap ? wr->cap : 4096;
        while (n > cap - wr->len) {
            if (cap > ((size_t)1 << 40))
                png_error(png, "the encoded image is too large");
            cap *= 2;
        }
        uint8_t *nb = realloc(wr->buf, cap);
        if (!nb)
            png_error(png, "out of memory for the encoded image");
        wr->buf = nb;
        wr->cap = cap;
    }
    memcpy(wr->buf + wr->len, data, n);
    wr->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* libpng calls for one write, to f or (f NULL) into wr->buf; returns -1
 * after a libpng error. */
static int write_rows(png_structp png, png_infop info, FILE *f, wr_state *wr)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    if (f)
        png_init_io(png, f);
    else
        png_set_write_fn(png, wr, mem_write, mem_flush);
    static const int ctypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                  PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)wr->w, (png_uint_32)wr->h, 8, ctypes[wr->c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, wr->rows);
    png_write_end(png, NULL);
    return 0;
}

/* One encode, to f or (f NULL) into memory. */
static int encode(FILE *f, wr_state *wr, aim_err *e)
{
    io_ctx cx = {.name = wr->path, .e = e};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &cx, on_error,
                                              on_warning);
    if (!png)
        return aim_errf(e, "%s: cannot create a libpng writer", wr->path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return aim_errf(e, "%s: cannot create a libpng writer", wr->path);
    }
    int rc = write_rows(png, info, f, wr);
    png_destroy_write_struct(&png, &info);
    return rc;
}

static int write_cb(FILE *f, void *ctx, aim_err *e)
{
    return encode(f, ctx, e);
}

static int check_out_size(const char *path, int64_t w, int64_t h, aim_err *e)
{
    if (w <= 0 || h <= 0 || w > AIM_PNG_MAX_SIDE || h > AIM_PNG_MAX_SIDE ||
        (uint64_t)w * (uint64_t)h > AIM_PNG_MAX_PIXELS)
        return aim_errf(e, "%s: cannot write a %lld x %lld image (limits: 1..%d per side, "
                        "%llu pixels)",
                        path, (long long)w, (long long)h, AIM_PNG_MAX_SIDE,
                        (unsigned long long)AIM_PNG_MAX_PIXELS);
    return 0;
}

/* Check the arguments of a write and point wr->rows at the pixel rows. */
static int write_begin(wr_state *wr, const char *path, const uint8_t *pix, int w, int h, int c,
                       aim_err *e)
{
    memset(wr, 0, sizeof *wr);
    if (c != 1 && c != 3 && c != 4)
        return aim_errf(e, "%s: cannot write %d channels (use 1, 3 or 4)", path, c);
    if (check_out_size(path, w, h, e) < 0)
        return -1;
    if (!pix)
        return aim_errf(e, "%s: no pixels to write", path);
    wr->path = path;
    wr->pix = pix;
    wr->w = w;
    wr->h = h;
    wr->c = c;
    wr->rows = aim_xmalloc((size_t)h * sizeof *wr->rows);
    for (int y = 0; y < h; y++)
        wr->rows[y] = (png_bytep)(pix + (size_t)y * w * c);
    return 0;
}

int aim_png_write(const char *path, const uint8_t *pix, int w, int h, int c, aim_err *e)
{
    wr_state wr;
    if (write_begin(&wr, path, pix, w, h, c, e) < 0)
        return -1;
    int rc = aim_write_atomic(path, write_cb, &wr, e);
    free(wr.rows);
    return rc;
}

int aim_png_encode(const uint8_t *pix, int w, int h, int c, uint8_t **out, size_t *len,
                   aim_err *e)
{
    *out = NULL;
    *len = 0;
    wr_state wr;
    if (write_begin(&wr, "<memory>", pix, w, h, c, e) < 0)
        return -1;
    int rc = encode(NULL, &wr, e);
    free(wr.rows);
    if (rc < 0) {
        free(wr.buf);
        return -1;
    }
    *out = wr.buf;
    *len = wr.len;
    return 0;
}

/* The pixels of a grid (see aim_png_write_grid): a malloc'd interleaved
 * [H, W, c] image, or NULL with a message naming `name`. */
static uint8_t *grid_pixels(const char *name, const uint8_t *imgs, int n, int c, int h, int w,
                            int cols, int border, int scale, uint8_t border_value, int *Wout,
                            int *Hout, aim_err *e)
{
    if (n <= 0) {
        aim_errf(e, "%s: a grid needs at least one image (n = %d)", name, n);
        return NULL;
    }
    if (c != 1 && c != 3) {
        aim_errf(e, "%s: grid images must have 1 or 3 channels, not %d", name, c);
        return NULL;
    }
    if (h <= 0 || w <= 0) {
        aim_errf(e, "%s: grid images of %d x %d pixels", name, h, w);
        return NULL;
    }
    if (cols <= 0) {
        aim_errf(e, "%s: a grid needs at least one column (cols = %d)", name, cols);
        return NULL;
    }
    if (border < 0) {
        aim_errf(e, "%s: negative grid border %d", name, border);
        return NULL;
    }
    if (scale <= 0) {
        aim_errf(e, "%s: grid scale must be positive, not %d", name, scale);
        return NULL;
    }
    if (!imgs) {
        aim_errf(e, "%s: no images to write", name);
        return NULL;
    }
    int64_t rows = ((int64_t)n + cols - 1) / cols;
    /* 64-bit sums of values below 2^31: no overflow; the limits check below */
    int64_t cw = (int64_t)w * scale, chh = (int64_t)h * scale;
    int64_t W = cols * cw + (int64_t)(cols + 1) * border;
    int64_t H = rows * chh + (rows + 1) * border;
    if (check_out_size(name, W, H, e) < 0)
        return NULL;

    size_t plane = (size_t)h * (size_t)w;
    uint8_t *out = aim_xmalloc((size_t)W * (size_t)H * (size_t)c);
    memset(out, border_value, (size_t)W * (size_t)H * (size_t)c);
    for (int i = 0; i < n; i++) {
        int64_t ox = border + (i % cols) * (cw + border);
        int64_t oy = border + (i / cols) * (chh + border);
        const uint8_t *img = imgs + (size_t)i * c * plane;
        for (int64_t y = 0; y < chh; y++) {
            uint8_t *row = out + ((size_t)(oy + y) * W + (size_t)ox) * c;
            size_t sy = (size_t)(y / scale);
            for (int64_t x = 0; x < cw; x++) {
                size_t sx = (size_t)(x / scale);
                for (int k = 0; k < c; k++)
                    row[x * c + k] = img[k * plane + sy * w + sx];
            }
        }
    }
    *Wout = (int)W;
    *Hout = (int)H;
    return out;
}

int aim_png_write_grid(const char *path, const uint8_t *imgs, int n, int c, int h,
                       int w, int cols, int border, int scale, uint8_t border_value,
                       aim_err *e)
{
    int W, H;
    uint8_t *pix = grid_pixels(path, imgs, n, c, h, w, cols, border, scale, border_value, &W,
                               &H, e);
    if (!pix)
        return -1;
    int rc = aim_png_write(path, pix, W, H, c, e);
    free(pix);
    return rc;
}

int aim_png_encode_grid(const uint8_t *imgs, int n, int c, int h, int w, int cols, int border,
                        int scale, uint8_t border_value, uint8_t **out, size_t *len,
                        int *width, int *height, aim_err *e)
{
    *out = NULL;
    *len = 0;
    int W, H;
    uint8_t *pix = grid_pixels("<memory>", imgs, n, c, h, w, cols, border, scale, border_value,
                               &W, &H, e);
    if (!pix)
        return -1;
    int rc = aim_png_encode(pix, W, H, c, out, len, e);
    free(pix);
    if (rc == 0) {
        if (width)
            *width = W;
        if (height)
            *height = H;
    }
    return rc;
}
