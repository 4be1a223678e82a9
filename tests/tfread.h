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

/* Un-frame a whole event file (buf, n): every record's length and masked
 * CRCs are checked (*crc_ok = 0 on any mismatch, *records = their count);
 * the image summaries found go to out[max]. Returns how many images there
 * are (all of them, even past max), or -1 if the framing or a protobuf is
 * malformed. */
__attribute__((unused))
static int tf_images(const uint8_t *buf, size_t n, tf_image *out, int max, int *crc_ok,
                     int *records)
{
    const uint8_t *p = buf, *end = buf + n;
    int nimg = 0;
    *crc_ok = 1;
    *records = 0;
    while (p < end) {
        uint64_t len;
        uint32_t c1, c2;
        if (end - p < 16)
            return -1;
        memcpy(&len, p, 8);
        if (len > (uint64_t)(end - p) - 16)
            return -1;
        memcpy(&c1, p + 8, 4);
        memcpy(&c2, p + 12 + len, 4);
        *crc_ok &= c1 == crc_mask(crc_bitwise(p, 8)) && c2 == crc_mask(crc_bitwise(p + 12, len));
        const uint8_t *rec = p + 12;
        p += 16 + len;
        ++*records;
        field ev[8], sm[8], val[8], im[8];
        int ke = decode(rec, len, ev);
        if (ke < 0)
            return -1;
        const field *st = field_get(ev, ke, 2), *su = field_get(ev, ke, 5);
        if (!su)
            continue; /* the header: file_version */
        int ks = decode(su->data, su->len, sm);
        if (ks < 0)
            return -1;
        for (int i = 0; i < ks; i++) {
            if (sm[i].num != 1 || sm[i].wire != 2)
                continue;
            int kv = decode(sm[i].data, sm[i].len, val);
            if (kv < 0)
                return -1;
            const field *tag = field_get(val, kv, 1), *img = field_get(val, kv, 4);
            if (!img)
                continue;
            int ki = decode(img->data, img->len, im);
            if (ki < 0)
                return -1;
            if (nimg < max) {
                tf_image *t = &out[nimg];
                memset(t, 0, sizeof *t);
                t->step = st ? (int64_t)st->u : 0;
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
            nimg++;
        }
    }
    return nimg;
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
