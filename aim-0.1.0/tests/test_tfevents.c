/*
 * test_tfevents.c - the TensorBoard writer against values computed
 * independently here: published CRC-32C vectors (RFC 3720) and a bitwise
 * CRC, TFRecord framing, and the Event/Summary protobufs decoded by hand;
 * reconstruction grids as image summaries, read back to the pixel
 * (tests/tfread.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/recon.h"
#include "aim/tfevents.h"
#include "tap.h"
#include "tfread.h"

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

    /* a real reconstruction grid: 2 images of 4 x 4 pixels with known
     * values, grey (through aim_recon_png + aim_tfevents_image, scale 3) and
     * RGB (through aim_recon_summary, scale aim_recon_scale(4) = 4), read
     * back: un-framed with the CRCs checked, the protobuf decoded down to
     * Summary.Value.image, the PNG decoded by libpng, every pixel compared */
    {
        const int B = 2, H = 4, bd = AIM_RECON_BORDER;
        float *cells[2][3]; /* [grey | rgb][input | prediction | target] */
        for (int g = 0; g < 2; g++) {
            int C = g ? 3 : 1;
            for (int j = 0; j < 3; j++) {
                cells[g][j] = malloc(sizeof(float) * B * C * H * H);
                for (int b = 0; b < B; b++)
                    for (int ch = 0; ch < C; ch++)
                        for (int q = 0; q < H * H; q++) {
                            int val8 = (37 * (b * 3 + j) + 71 * ch + 13 * q + 1) % 256;
                            cells[g][j][((size_t)b * C + ch) * H * H + q] = val8 / 255.0f;
                        }
            }
        }
        uint8_t *gpng;
        size_t plen;
        int pw = 0, ph = 0;
        int grc = aim_recon_png(cells[0][0], cells[0][1], cells[0][2], B, 1, H, 3, &gpng, &plen,
                                &pw, &ph, &e);
        tap_ok(grc == 0 &&
                   pw == 3 * H * 3 + 4 * bd && ph == B * H * 3 + (B + 1) * bd,
               "aim_recon_png: a %d x %d grid (3 cells of 4 px x 3 per row, %d px borders)", pw,
               ph, bd);
        char *ipath = aim_xstrdup(tap_path("images.tfevents"));
        aim_tfevents *iw = aim_tfevents_open_path(ipath, &e);
        int wrote = iw && aim_tfevents_image(iw, "recon/val", 5, 1700000002.0, ph, pw, 1, gpng,
                                             plen) == 0;
        wrote &= iw && aim_recon_summary(iw, "recon/board", 9, cells[1][0], cells[1][1],
                                         cells[1][2], B, 3, H, &e) == 0;
        wrote &= aim_tfevents_close(iw) == 0;
        tap_ok(wrote, "two image summaries written: %s", wrote ? "ok" : e.msg);
        free(gpng);
        uint8_t *ib = NULL;
        size_t in = 0;
        aim_read_file(ipath, 1 << 20, &ib, &in, &e);
        tf_image ti[4];
        int crc = 0, records = 0;
        int ni = ib ? tf_images(ib, in, ti, 4, &crc, &records) : -1;
        tap_ok(ni == 2 && records == 3 && crc, "the file: %d records (header + 2 images), %d "
                                               "images, every masked CRC right", records, ni);
        for (int g = 0; g < 2 && ni == 2; g++) {
            int C = g ? 3 : 1, sc = g ? 4 : 3;
            int W = 3 * H * sc + 4 * bd, Hh = B * H * sc + (B + 1) * bd;
            tap_ok(!strcmp(ti[g].tag, g ? "recon/board" : "recon/val") &&
                       ti[g].step == (g ? 9 : 5) && ti[g].height == Hh && ti[g].width == W &&
                       ti[g].colorspace == C && ti[g].png && ti[g].len > 8,
                   "image %d: tag %s, step %lld, height %d, width %d, colorspace %d, %zu PNG "
                   "bytes",
                   g + 1, ti[g].tag, (long long)ti[g].step, ti[g].height, ti[g].width,
                   ti[g].colorspace, ti[g].len);
            int dw = 0, dh = 0, color = -1;
            uint8_t *pix = tf_png_pixels(ti[g].png, ti[g].len, C, &dw, &dh, &color);
            int same = pix && dw == W && dh == Hh && color == (C == 3), bad_at = -1;
            for (int Y = 0; same && Y < Hh; Y++)
                for (int X = 0; same && X < W; X++)
                    for (int ch = 0; same && ch < C; ch++) {
                        /* which cell, if any: borders of bd pixels around cells of H*sc */
                        int cx = (X - bd) / (H * sc + bd), xx = (X - bd) % (H * sc + bd);
                        int cy = (Y - bd) / (H * sc + bd), yy = (Y - bd) % (H * sc + bd);
                        int want = 255;
                        if (X >= bd && Y >= bd && xx < H * sc && yy < H * sc) {
                            int q = (yy / sc) * H + xx / sc;
                            want = (37 * (cy * 3 + cx) + 71 * ch + 13 * q + 1) % 256;
                        }
                        if (pix[((size_t)Y * W + X) * C + ch] != want) {
                            same = 0;
                            bad_at = Y * W + X;
                        }
                    }
            tap_ok(same, "image %d: the decoded %s PNG (%d x %d) is the grid, pixel for pixel%s",
                   g + 1, C == 3 ? "RGB" : "grey", dw, dh, bad_at >= 0 ? " (a pixel differs)" : "");
            free(pix);
        }
        free(ib);
        free(ipath);
        tap_ok(aim_recon_png(cells[0][0], cells[0][1], cells[0][2], B, 2, H, 1, &gpng, &plen,
                             NULL, NULL, &e) == -1 && gpng == NULL &&
                   tap_contains(e.msg, "2 channels"),
               "a 2-channel grid is refused: %s", e.msg);
        for (int g = 0; g < 2; g++)
            for (int j = 0; j < 3; j++)
                free(cells[g][j]);
    }
    tap_ok(aim_tfevents_open(tap_path("missing/dir"), &e) == NULL && tap_contains(e.msg, "missing/dir"),
           "an unwritable folder is an error: %s", e.msg);
    return tap_done();
}
