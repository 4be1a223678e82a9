/*
 * test_tfevents.c - the TensorBoard writer against values computed
 * independently here: published CRC-32C vectors (RFC 3720) and a bitwise
 * CRC, TFRecord framing, and the Event/Summary protobufs decoded by hand.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/tfevents.h"
#include "tap.h"

/* bit-by-bit CRC-32C, independent of the table-driven one */
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

static uint64_t varint(const uint8_t **p)
{
    uint64_t v = 0;
    int shift = 0;
    while (**p & 0x80) {
        v |= (uint64_t)(**p & 0x7f) << shift;
        shift += 7;
        (*p)++;
    }
    v |= (uint64_t)**p << shift;
    (*p)++;
    return v;
}

typedef struct field {
    int num, wire;
    uint64_t u;           /* varint */
    const uint8_t *data;  /* length-delimited / fixed */
    size_t len;
} field;

/* decode the fields of one message into f[] (max 8) */
static int decode(const uint8_t *p, size_t n, field *f)
{
    const uint8_t *end = p + n;
    int k = 0;
    while (p < end && k < 8) {
        uint64_t key = varint(&p);
        f[k].num = (int)(key >> 3);
        f[k].wire = (int)(key & 7);
        if (f[k].wire == 0) {
            f[k].u = varint(&p);
        } else if (f[k].wire == 2) {
            f[k].len = varint(&p);
            f[k].data = p;
            p += f[k].len;
        } else if (f[k].wire == 1) {
            f[k].data = p, f[k].len = 8, p += 8;
        } else if (f[k].wire == 5) {
            f[k].data = p, f[k].len = 4, p += 4;
        } else {
            return -1;
        }
        k++;
    }
    return p == end ? k : -1;
}

int main(void)
{
    /* RFC 3720 B.4 vectors and the classic check value */
    uint8_t z[32] = {0}, ff[32], inc[32];
    memset(ff, 0xff, 32);
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    tap_ok(aim_crc32c(0, "123456789", 9) == 0xE3069283u, "CRC-32C of \"123456789\"");
    tap_ok(aim_crc32c(0, z, 32) == 0x8A9136AAu, "CRC-32C of 32 zero bytes (RFC 3720)");
    tap_ok(aim_crc32c(0, ff, 32) == 0x62A8AB43u, "CRC-32C of 32 0xFF bytes (RFC 3720)");
    tap_ok(aim_crc32c(0, inc, 32) == 0x46DD794Eu, "CRC-32C of 0..31 (RFC 3720)");
    tap_ok(aim_crc32c(aim_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "CRC-32C in pieces");
    uint32_t c = crc_bitwise((const uint8_t *)"hello", 5);
    tap_ok(aim_crc32c(0, "hello", 5) == c, "table CRC equals a bitwise CRC");
    tap_ok(aim_crc32c_mask(c) == (((c >> 15) | (c << 17)) + 0xa282ead8u), "masked CRC");

    /* framing */
    uint8_t rec[32];
    aim_tfrecord_frame(rec, "abc", 3);
    uint64_t len;
    uint32_t c1, c2;
    memcpy(&len, rec, 8);
    memcpy(&c1, rec + 8, 4);
    memcpy(&c2, rec + 15, 4);
    tap_ok(len == 3 && c1 == aim_crc32c_mask(crc_bitwise(rec, 8)) && !memcmp(rec + 12, "abc", 3) &&
               c2 == aim_crc32c_mask(crc_bitwise((const uint8_t *)"abc", 3)),
           "TFRecord framing: length, masked CRC of the length, data, masked CRC of the data");

    /* a file: header event + scalar + image, decoded by hand */
    aim_err e = {{0}};
    aim_tfevents *w = aim_tfevents_open(tap_tmpdir(), &e);
    tap_ok(w && strstr(aim_tfevents_path(w), "/events.out.tfevents."), "event file named for TensorBoard");
    aim_tfevents_scalar(w, "train/loss", 42, 1700000000.5, 0.25f);
    const uint8_t png[5] = {0x89, 'P', 'N', 'G', 0};
    aim_tfevents_image(w, "recon", 7, 1700000001.0, 28, 84, 1, png, 5);
    char *path = aim_xstrdup(aim_tfevents_path(w));
    tap_ok(aim_tfevents_close(w) == 0, "close");
    uint8_t *buf;
    size_t n;
    aim_read_file(path, 1 << 20, &buf, &n, &e);
    const uint8_t *p = buf, *end = buf + n;
    const uint8_t *recs[3];
    size_t rlen[3];
    int nrec = 0, crc_ok = 1;
    while (p + 16 <= end && nrec < 3) {
        memcpy(&len, p, 8);
        memcpy(&c1, p + 8, 4);
        memcpy(&c2, p + 12 + len, 4);
        crc_ok &= c1 == aim_crc32c_mask(crc_bitwise(p, 8)) &&
                  c2 == aim_crc32c_mask(crc_bitwise(p + 12, len));
        recs[nrec] = p + 12;
        rlen[nrec++] = len;
        p += 16 + len;
    }
    tap_ok(nrec == 3 && p == end && crc_ok, "three records, every CRC verified independently");
    field f[8], s[8], v[8], im[8];
    int k = decode(recs[0], rlen[0], f);
    tap_ok(k == 2 && f[0].num == 1 && f[0].wire == 1 && f[1].num == 3 && f[1].len == 13 &&
               !memcmp(f[1].data, "brain.Event:2", 13),
           "first event: wall_time and file_version brain.Event:2");
    k = decode(recs[1], rlen[1], f);
    double wt;
    memcpy(&wt, f[0].data, 8);
    tap_ok(k == 3 && f[0].num == 1 && wt == 1700000000.5 && f[1].num == 2 && f[1].u == 42 &&
               f[2].num == 5 && f[2].wire == 2,
           "scalar event: wall_time, step 42, summary");
    int ks = decode(f[2].data, f[2].len, s);
    int kv = ks == 1 ? decode(s[0].data, s[0].len, v) : -1;
    float val = 0;
    if (kv == 2)
        memcpy(&val, v[1].data, 4);
    tap_ok(ks == 1 && s[0].num == 1 && kv == 2 && v[0].num == 1 && v[0].len == 10 &&
               !memcmp(v[0].data, "train/loss", 10) && v[1].num == 2 && v[1].wire == 5 &&
               val == 0.25f,
           "summary value: tag train/loss, simple_value 0.25");
    k = decode(recs[2], rlen[2], f);
    ks = decode(f[2].data, f[2].len, s);
    kv = decode(s[0].data, s[0].len, v);
    int ki = kv == 2 ? decode(v[1].data, v[1].len, im) : -1;
    tap_ok(f[1].u == 7 && kv == 2 && v[1].num == 4 && ki == 4 && im[0].u == 28 && im[1].u == 84 &&
               im[2].u == 1 && im[3].len == 5 && !memcmp(im[3].data, png, 5),
           "image event: height 28, width 84, colorspace 1, encoded PNG bytes");
    free(buf);

    /* reopening appends without a second header */
    w = aim_tfevents_open_path(path, &e);
    aim_tfevents_scalar(w, "x", 1, 1.0, 1.0f);
    aim_tfevents_close(w);
    aim_read_file(path, 1 << 20, &buf, &n, &e);
    int count = 0;
    for (p = buf; p + 16 <= buf + n; count++) {
        memcpy(&len, p, 8);
        p += 16 + len;
    }
    tap_ok(count == 4, "reopening appends (4 records, one header)");
    free(buf);
    free(path);
    tap_ok(aim_tfevents_open(tap_path("missing/dir"), &e) == NULL && tap_contains(e.msg, "missing/dir"),
           "an unwritable folder is an error: %s", e.msg);
    return tap_done();
}
