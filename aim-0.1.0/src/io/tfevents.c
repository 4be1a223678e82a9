/*
 * tfevents.c - TensorBoard event files (see aim/tfevents.h). The protobuf
 * messages are encoded by hand; the field numbers are those of
 * tensorflow/core/util/event.proto and framework/summary.proto:
 *   Event    { double wall_time = 1; int64 step = 2;
 *              oneof what { string file_version = 3; Summary summary = 5; } }
 *   Summary  { repeated Value value = 1; }
 *   Value    { string tag = 1; oneof value { float simple_value = 2;
 *              Image image = 4; } }
 *   Image    { int32 height = 1; int32 width = 2; int32 colorspace = 3;
 *              bytes encoded_image_string = 4; }
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "aim/tfevents.h"

/* ------------------------------------------------------------ CRC-32C */

/* Castagnoli polynomial, reflected: 0x82F63B78. The table is computed by a
 * pure function each time it is needed for the first time in a call chain:
 * cheap (256 entries) and no global state. */
static void crc32c_table(uint32_t t[256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
}

uint32_t aim_crc32c(uint32_t crc, const void *data, size_t len)
{
    uint32_t t[256];
    crc32c_table(t);
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t aim_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* ------------------------------------------------------------ protobuf */

typedef struct pb {
    uint8_t *buf;
    size_t len, cap;
} pb;

static void pb_put(pb *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->buf = aim_xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, d, n);
    b->len += n;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    pb_put(b, tmp, (size_t)n);
}

static void pb_key(pb *b, int field, int wire)
{
    pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}

static void pb_bytes(pb *b, int field, const void *d, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_put(b, d, n);
}

static void pb_double(pb *b, int field, double v)
{
    pb_key(b, field, 1);
    pb_put(b, &v, 8); /* little endian host */
}

static void pb_float(pb *b, int field, float v)
{
    pb_key(b, field, 5);
    pb_put(b, &v, 4);
}

static void pb_int(pb *b, int field, int64_t v)
{
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

/* Event { wall_time, step, summary { value { tag, <payload> } } } */
static void event_with_value(pb *ev, int64_t step, double wall_time, const pb *value)
{
    pb summary = {0};
    pb_bytes(&summary, 1, value->buf, value->len);
    pb_double(ev, 1, wall_time);
    pb_int(ev, 2, step);
    pb_bytes(ev, 5, summary.buf, summary.len);
    free(summary.buf);
}

size_t aim_tfevent_encode_scalar(uint8_t *buf, const char *tag, int64_t step, double wall_time,
                                 float value)
{
    pb v = {0}, ev = {0};
    pb_bytes(&v, 1, tag, strlen(tag));
    pb_float(&v, 2, value);
    event_with_value(&ev, step, wall_time, &v);
    memcpy(buf, ev.buf, ev.len);
    size_t n = ev.len;
    free(v.buf);
    free(ev.buf);
    return n;
}

void aim_tfrecord_frame(uint8_t *out, const void *data, size_t len)
{
    uint64_t l = len;
    memcpy(out, &l, 8);
    uint32_t c = aim_crc32c_mask(aim_crc32c(0, out, 8));
    memcpy(out + 8, &c, 4);
    memcpy(out + 12, data, len);
    c = aim_crc32c_mask(aim_crc32c(0, data, len));
    memcpy(out + 12 + len, &c, 4);
}

/* ------------------------------------------------------------ the writer */

struct aim_tfevents {
    FILE *f;
    char *path;
    int failed;
    int borrowed; /* f is the caller's: close flushes it but does not close it */
};

static int write_record(aim_tfevents *w, const pb *ev)
{
    uint8_t *rec = aim_xmalloc(ev->len + 16);
    aim_tfrecord_frame(rec, ev->buf, ev->len);
    if (fwrite(rec, 1, ev->len + 16, w->f) != ev->len + 16)
        w->failed = 1;
    free(rec);
    return w->failed ? -1 : 0;
}

static double now_wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

static void write_header(aim_tfevents *w)
{
    pb ev = {0};
    pb_double(&ev, 1, now_wall());
    pb_bytes(&ev, 3, "brain.Event:2", 13);
    write_record(w, &ev);
    free(ev.buf);
    fflush(w->f);
}

aim_tfevents *aim_tfevents_open_path(const char *path, aim_err *e)
{
    int existed = aim_file_size(path, NULL) > 0;
    FILE *f = fopen(path, "ab");
    if (!f) {
        aim_errf(e, "%s: cannot open for writing: %s", path, strerror(errno));
        return NULL;
    }
    aim_tfevents *w = aim_xcalloc(1, sizeof *w);
    w->f = f;
    w->path = aim_xstrdup(path);
    if (!existed)
        write_header(w);
    return w;
}

aim_tfevents *aim_tfevents_open_stream(FILE *f, const char *name)
{
    aim_tfevents *w = aim_xcalloc(1, sizeof *w);
    w->f = f;
    w->path = aim_xstrdup(name);
    w->borrowed = 1;
    write_header(w);
    return w;
}

aim_tfevents *aim_tfevents_open(const char *dir, aim_err *e)
{
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    char *path = aim_xasprintf("%s/events.out.tfevents.%ld.%s", dir, (long)now_wall(), host);
    aim_tfevents *w = aim_tfevents_open_path(path, e);
    free(path);
    return w;
}

const char *aim_tfevents_path(const aim_tfevents *w)
{
    return w->path;
}

int aim_tfevents_scalar(aim_tfevents *w, const char *tag, int64_t step, double wall_time,
                        float value)
{
    pb v = {0}, ev = {0};
    pb_bytes(&v, 1, tag, strlen(tag));
    pb_float(&v, 2, value);
    event_with_value(&ev, step, wall_time, &v);
    int rc = write_record(w, &ev);
    free(v.buf);
    free(ev.buf);
    return rc;
}

int aim_tfevents_image(aim_tfevents *w, const char *tag, int64_t step, double wall_time,
                       int height, int width, int channels, const void *png, size_t png_len)
{
    pb img = {0}, v = {0}, ev = {0};
    pb_int(&img, 1, height);
    pb_int(&img, 2, width);
    pb_int(&img, 3, channels);
    pb_bytes(&img, 4, png, png_len);
    pb_bytes(&v, 1, tag, strlen(tag));
    pb_bytes(&v, 4, img.buf, img.len);
    event_with_value(&ev, step, wall_time, &v);
    int rc = write_record(w, &ev);
    free(img.buf);
    free(v.buf);
    free(ev.buf);
    return rc;
}

int aim_tfevents_flush(aim_tfevents *w)
{
    if (fflush(w->f) != 0)
        w->failed = 1;
    return w->failed ? -1 : 0;
}

int aim_tfevents_close(aim_tfevents *w)
{
    if (!w)
        return 0;
    int rc = aim_tfevents_flush(w);
    if (!w->borrowed && fclose(w->f) != 0)
        rc = -1;
    free(w->path);
    free(w);
    return rc;
}
