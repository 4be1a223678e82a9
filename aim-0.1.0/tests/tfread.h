/*
 * tfread.h - reading TensorBoard event files back in the tests, written
 * independently of src/io/tfevents.c: TFRecord un-framing with a bit-by-bit
 * CRC-32C, a hand protobuf field decoder, the image summaries
 * (Event.summary.value.image) of a file, and PNG decoding through libpng's
 * own simplified API (not aim_png_decode). Header-only, like tap.h.
 */
#ifndef AIM_TFREAD_H
#define AIM_TFREAD_H

#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* bit-by-bit CRC-32C, independent of the table-driven one */
__attribute__((unused))
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

__attribute__((unused))
static uint32_t crc_mask(uint32_t c)
{
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* a varint at *p (bounded by end: a truncated one reads as far as it goes) */
__attribute__((unused))
static uint64_t varint_to(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    int shift = 0;
    while (*p < end && shift < 64) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    return v;
}

__attribute__((unused))
static uint64_t varint(const uint8_t **p)
{
    return varint_to(p, *p + 10);
}

typedef struct field {
    int num, wire;
    uint64_t u;           /* varint */
    const uint8_t *data;  /* length-delimited / fixed */
    size_t len;
} field;

/* decode the fields of one message into f[] (max 8); -1 if malformed */
__attribute__((unused))
static int decode(const uint8_t *p, size_t n, field *f)
{
    const uint8_t *end = p + n;
    int k = 0;
    while (p < end && k < 8) {
        uint64_t key = varint_to(&p, end);
        f[k].num = (int)(key >> 3);
        f[k].wire = (int)(key & 7);
        if (f[k].wire == 0) {
            f[k].u = varint_to(&p, end);
        } else if (f[k].wire == 2) {
            f[k].len = varint_to(&p, end);
            if (f[k].len > (size_t)(end - p))
                return -1;
            f[k].data = p;
            p += f[k].len;
        } else if (f[k].wire == 1 && end - p >= 8) {
            f[k].data = p, f[k].len = 8, p += 8;
        } else if (f[k].wire == 5 && end - p >= 4) {
            f[k].data = p, f[k].len = 4, p += 4;
        } else {
            return -1;
        }
        k++;
    }
    return p == end ? k : -1;
}

/* the first field numbered num of a decoded message, or NULL */
__attribute__((unused))
static const field *field_get(const field *f, int k, int num)
{
    for (int i = 0; i < k; i++)
        if (f[i].num == num)
            return &f[i];
    return NULL;
}

typedef struct tf_image {
    int64_t step;
    char tag[64];
    int height, width, colorspace;
    const uint8_t *png;   /* points into the file's buffer */
    size_t len;
} tf_image;

/* The next record of an event file at *p (before end): its data in *rec,
 * *len; its length and masked CRCs are checked (*crc_ok = 0 on a mismatch).
 * 1 for a record, 0 at the end, -1 if the framing is malformed. */
__attribute__((unused))
static int tf_record(const uint8_t **p, const uint8_t *end, const uint8_t **rec, uint64_t *len,
                     int *crc_ok)
{
    if (*p == end)
        return 0;
    uint32_t c1, c2;
    if (end - *p < 16)
        return -1;
    memcpy(len, *p, 8);
    if (*len > (uint64_t)(end - *p) - 16)
        return -1;
    memcpy(&c1, *p + 8, 4);
    memcpy(&c2, *p + 12 + *len, 4);
    *crc_ok &= c1 == crc_mask(crc_bitwise(*p, 8)) && c2 == crc_mask(crc_bitwise(*p + 12, *len));
    *rec = *p + 12;
    *p += 16 + *len;
    return 1;
}

/* The summary values of one event record: val[k] = the fields of each
 * (at most 8 values), *step the event's step. Returns how many (0 for the
 * header, which has no summary), -1 if a protobuf is malformed. */
__attribute__((unused))
static int tf_values(const uint8_t *rec, uint64_t len, int64_t *step, field val[8][8],
                     int nval[8])
{
    field ev[8], sm[8];
    int ke = decode(rec, len, ev);
    if (ke < 0)
        return -1;
    const field *st = field_get(ev, ke, 2), *su = field_get(ev, ke, 5);
    *step = st ? (int64_t)st->u : 0;
    if (!su)
        return 0; /* the header: file_version */
    int ks = decode(su->data, su->len, sm), n = 0;
    if (ks < 0)
        return -1;
    for (int i = 0; i < ks; i++) {
        if (sm[i].num != 1 || sm[i].wire != 2)
            continue;
        if ((nval[n] = decode(sm[i].data, sm[i].len, val[n])) < 0)
            return -1;
        n++;
    }
    return n;
}

/* Every summary value of an event file (buf, n), in order: fn(ctx, step,
 * the value's fields, their count) returning -1 on a malformed one. Every
 * record's length and masked CRCs are checked (*crc_ok = 0 on a mismatch;
 * *records = their count). 0, or -1 if the framing or a protobuf is
 * malformed. */
typedef int (*tf_value_fn)(void *ctx, int64_t step, const field *val, int nval);

__attribute__((unused))
static int tf_each_value(const uint8_t *buf, size_t n, tf_value_fn fn, void *ctx, int *crc_ok,
                         int *records)
{
    const uint8_t *p = buf, *end = buf + n, *rec;
    uint64_t len;
    int r;
    *crc_ok = 1;
    *records = 0;
    while ((r = tf_record(&p, end, &rec, &len, crc_ok)) == 1) {
        ++*records;
        field val[8][8];
        int nv[8];
        int64_t step;
        int k = tf_values(rec, len, &step, val, nv);
        if (k < 0)
            return -1;
        for (int i = 0; i < k; i++)
            if (fn(ctx, step, val[i], nv[i]) != 0)
                return -1;
    }
    return r < 0 ? -1 : 0;
}

/* what tf_images and tf_scalars collect: out[max], n found */
typedef struct tf_found {
    void *out;
    int max, n;
} tf_found;

__attribute__((unused))
static int image_value(void *ctx, int64_t step, const field *val, int nval)
{
    tf_found *fd = ctx;
    field im[8];
    const field *tag = field_get(val, nval, 1), *img = field_get(val, nval, 4);
    if (!img)
        return 0;
    int ki = decode(img->data, img->len, im);
    if (ki < 0)
        return -1;
    if (fd->n < fd->max) {
        tf_image *t = (tf_image *)fd->out + fd->n;
        memset(t, 0, sizeof *t);
        t->step = step;
        if (tag)
            snprintf(t->tag, sizeof t->tag, "%.*s", (int)tag->len, (const char *)tag->data);
        const field *h = field_get(im, ki, 1), *w = field_get(im, ki, 2),
                    *cs = field_get(im, ki, 3), *enc = field_get(im, ki, 4);
        t->height = h ? (int)h->u : -1;
        t->width = w ? (int)w->u : -1;
        t->colorspace = cs ? (int)cs->u : -1;
        t->png = enc ? enc->data : NULL;
        t->len = enc ? enc->len : 0;
    }
    fd->n++;
    return 0;
}

/* The image summaries of an event file go to out[max] (every record's
 * length and CRCs checked, as tf_each_value). Returns how many images there
 * are (all of them, even past max), or -1 if the file is malformed. */
__attribute__((unused))
static int tf_images(const uint8_t *buf, size_t n, tf_image *out, int max, int *crc_ok,
                     int *records)
{
    tf_found fd = {out, max, 0};
    return tf_each_value(buf, n, image_value, &fd, crc_ok, records) < 0 ? -1 : fd.n;
}

typedef struct tf_scalar {
    int64_t step;
    char tag[64];
    float value;
} tf_scalar;

__attribute__((unused))
static int scalar_value(void *ctx, int64_t step, const field *val, int nval)
{
    tf_found *fd = ctx;
    const field *tag = field_get(val, nval, 1), *sv = field_get(val, nval, 2);
    if (!sv || sv->wire != 5)
        return 0;
    if (fd->n < fd->max) {
        tf_scalar *t = (tf_scalar *)fd->out + fd->n;
        t->step = step;
        snprintf(t->tag, sizeof t->tag, "%.*s", tag ? (int)tag->len : 0,
                 tag ? (const char *)tag->data : "");
        memcpy(&t->value, sv->data, 4);
    }
    fd->n++;
    return 0;
}

/* The scalar summaries (simple_value) of an event file, as tf_images does
 * the images: out[max], the count of all of them, or -1 if malformed. */
__attribute__((unused))
static int tf_scalars(const uint8_t *buf, size_t n, tf_scalar *out, int max, int *crc_ok)
{
    tf_found fd = {out, max, 0};
    int records;
    return tf_each_value(buf, n, scalar_value, &fd, crc_ok, &records) < 0 ? -1 : fd.n;
}

/* Decode a PNG with libpng's simplified API into 8-bit gray (channels 1) or
 * RGB (3): malloc'd pixels [h, w, channels], or NULL. *file_color = 1 if
 * the file itself is a colour PNG, 0 if grey. */
__attribute__((unused))
static uint8_t *tf_png_pixels(const uint8_t *png, size_t len, int channels, int *w, int *h,
                              int *file_color)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png || !png_image_begin_read_from_memory(&im, png, len))
        return NULL;
    *file_color = (im.format & PNG_FORMAT_FLAG_COLOR) != 0;
    im.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    uint8_t *pix = malloc(PNG_IMAGE_SIZE(im));
    if (!pix || !png_image_finish_read(&im, NULL, pix, 0, NULL)) {
        free(pix);
        png_image_free(&im);
        return NULL;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return pix;
}

#endif
