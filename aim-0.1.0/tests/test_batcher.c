/* test_batcher.c - the batch stream: shuffling per epoch, determinism, seek,
 * exact values without augmentation, normalisation, flip, crop geometry,
 * prefix draws, thread-count independence, option errors, and
 * aim_dataset_get_batch. Datasets are built by hand so every image can be
 * recognised in a batch. Each part is a named case that reports its own
 * checks. `tests/test_batcher --bench` measures the throughput instead (a
 * benchmark: make check does not run it). */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/data.h"
#include "tap.h"

/* Image k is filled with k % 256 and labelled k. */
static aim_dataset *flat_ds(int64_t n, int c, int h, int w)
{
    aim_dataset *ds = aim_dataset_alloc("test", n, c, h, w);
    size_t img = (size_t)c * h * w;
    for (int64_t k = 0; k < n; k++) {
        memset(ds->images + k * img, (int)(k % 256), img);
        ds->labels[k] = (int32_t)k;
    }
    return ds;
}

/* Images with structure: pixel = a hash of (image, channel, y, x). */
static aim_dataset *busy_ds(int64_t n, int c, int h, int w)
{
    aim_dataset *ds = aim_dataset_alloc("test", n, c, h, w);
    size_t img = (size_t)c * h * w;
    for (int64_t k = 0; k < n; k++) {
        for (size_t j = 0; j < img; j++)
            ds->images[k * img + j] = (uint8_t)(aim_hash64((uint64_t)k * 1000003 + j) >> 56);
        ds->labels[k] = (int32_t)k;
    }
    aim_dataset_compute_stats(ds);
    return ds;
}

static aim_batcher_opts plain_opts(int batch)
{
    aim_batcher_opts o;
    aim_batcher_opts_default(&o);
    o.batch = batch;
    o.crop = 0;
    o.flip = 0;
    o.normalize = 0;
    return o;
}

static aim_batcher *must_new(const aim_dataset *ds, const aim_batcher_opts *o)
{
    aim_err e = {{0}};
    aim_batcher *b = aim_batcher_new(ds, o, &e);
    if (!b) {
        printf("Bail out! aim_batcher_new: %s\n", e.msg);
        exit(1);
    }
    return b;
}

/* Is labels[0..n) a permutation of 0..n-1? */
static int is_perm(const int32_t *labels, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (labels[i] < 0 || labels[i] >= n || seen[labels[i]])
            ok = 0;
        else
            seen[labels[i]] = 1;
    }
    free(seen);
    return ok;
}

/* Run `nb` batches, collecting labels into out[nb*batch]. */
static void run_labels(aim_batcher *b, int nb, int batch, size_t img, int32_t *out)
{
    float *x = malloc((size_t)batch * img * sizeof(float));
    for (int i = 0; i < nb; i++)
        aim_batcher_next(b, x, out + (size_t)i * batch, NULL);
    free(x);
}

/* Everything a run of nb batches produced. */
typedef struct run_out {
    float *x;
    int32_t *labels, *prefix;
} run_out;

static run_out run_all(aim_batcher *b, int nb, int batch, size_t img)
{
    run_out r;
    r.x = malloc((size_t)nb * batch * img * sizeof(float));
    r.labels = malloc((size_t)nb * batch * sizeof(int32_t));
    r.prefix = malloc((size_t)nb * batch * sizeof(int32_t));
    for (int i = 0; i < nb; i++)
        aim_batcher_next(b, r.x + (size_t)i * batch * img, r.labels + (size_t)i * batch,
                         r.prefix + (size_t)i * batch);
    return r;
}

static int run_eq(run_out a, run_out b, int nb, int batch, size_t img)
{
    size_t m = (size_t)nb * batch;
    return !memcmp(a.x, b.x, m * img * sizeof(float)) &&
           !memcmp(a.labels, b.labels, m * sizeof(int32_t)) &&
           !memcmp(a.prefix, b.prefix, m * sizeof(int32_t));
}

static void run_free(run_out r)
{
    free(r.x);
    free(r.labels);
    free(r.prefix);
}

static void check_invalid(const aim_dataset *ds, aim_batcher_opts o, const char *needle,
                          const char *what)
{
    aim_err e = {{0}};
    aim_batcher *b = aim_batcher_new(ds, &o, &e);
    tap_ok(!b && tap_contains(e.msg, needle), "%s is refused: %s", what, e.msg);
    aim_batcher_free(b);
}

/* Seek test: 7 batches, remember, 3 more; a fresh batcher seeked there
 * reproduces the 3. */
static void check_seek(const aim_dataset *ds, aim_batcher_opts o, const char *what)
{
    size_t img = (size_t)ds->c * ds->h * ds->w;
    aim_batcher *a = must_new(ds, &o);
    run_out first = run_all(a, 7, o.batch, img);
    uint64_t pos = aim_batcher_position(a);
    run_out rest = run_all(a, 3, o.batch, img);
    aim_batcher *b = must_new(ds, &o);
    aim_batcher_seek(b, pos);
    run_out again = run_all(b, 3, o.batch, img);
    tap_ok(pos == 7u * o.batch && run_eq(rest, again, 3, o.batch, img),
           "seek reproduces the batches after position %llu (%s)", (unsigned long long)pos,
           what);
    /* seeking back on the same batcher reproduces the start */
    aim_batcher_seek(a, 0);
    run_out start = run_all(a, 7, o.batch, img);
    tap_ok(run_eq(first, start, 7, o.batch, img), "seek(0) replays the first batches (%s)",
           what);
    run_free(first);
    run_free(rest);
    run_free(again);
    run_free(start);
    aim_batcher_free(a);
    aim_batcher_free(b);
}

/* Is q [3, 28, 28] the image src moved by some (dx, dy) with |dx|, |dy| <=
 * s, pad[k] coming in at the edges? The first such move is returned. */
static int find_move(const float *q, const float *src, const float *pad, int s, int *dx,
                     int *dy)
{
    for (int my = -s; my <= s; my++)
        for (int mx = -s; mx <= s; mx++) {
            int m = 1;
            for (int k = 0; k < 3 && m; k++)
                for (int y = 0; y < 28 && m; y++)
                    for (int x = 0; x < 28 && m; x++) {
                        int ys = y - my, xs = x - mx;
                        float want = ys < 0 || ys >= 28 || xs < 0 || xs >= 28
                                         ? pad[k]
                                         : src[(k * 28 + ys) * 28 + xs];
                        m = q[(k * 28 + y) * 28 + x] == want;
                    }
            if (m) {
                *dx = mx;
                *dy = my;
                return 1;
            }
        }
    return 0;
}

/* shuffling */
static void case_shuffling(aim_dataset *unused)
{
    (void)unused;
    aim_dataset *ds = flat_ds(10, 1, 4, 4);
    aim_batcher_opts o = plain_opts(5);
    o.seed = 7;
    aim_batcher *b = must_new(ds, &o);
    int32_t lab[40];
    float x[5 * 16];
    int values_ok = 1;
    for (int i = 0; i < 8; i++) {
        aim_batcher_next(b, x, lab + 5 * i, NULL);
        for (int j = 0; j < 5; j++)
            for (int t = 0; t < 16; t++)
                values_ok &= x[j * 16 + t] == (float)lab[5 * i + j] / 255.0f;
    }
    int perms = 1;
    for (int ep = 0; ep < 4; ep++)
        perms &= is_perm(lab + 10 * ep, 10);
    tap_ok(perms, "with shuffle every epoch is a permutation of 0..9");
    tap_ok(memcmp(lab, lab + 10, 40) != 0 && memcmp(lab + 10, lab + 20, 40) != 0,
           "successive epochs are ordered differently");
    int ident = 1;
    for (int i = 0; i < 10; i++)
        ident &= lab[i] == i;
    tap_ok(!ident, "the first epoch is shuffled");
    tap_ok(values_ok, "each row holds the pixels of the image its label names");
    tap_ok(aim_batcher_position(b) == 40 && aim_batcher_epoch(b) == 4,
           "position 40, epoch 4 after 8 batches of 5");
    aim_batcher_free(b);

    /* batches straddling epochs: n = 10, batch = 4 */
    o.batch = 4;
    b = must_new(ds, &o);
    int32_t lab4[40];
    run_labels(b, 10, 4, 16, lab4);
    perms = 1;
    for (int ep = 0; ep < 4; ep++)
        perms &= is_perm(lab4 + 10 * ep, 10);
    tap_ok(perms && !memcmp(lab4, lab, sizeof lab),
           "straddling batches of 4 give the same epoch permutations");
    aim_batcher_free(b);

    /* batch larger than the dataset */
    o.batch = 25;
    b = must_new(ds, &o);
    int32_t lab25[50];
    run_labels(b, 2, 25, 16, lab25);
    perms = !memcmp(lab25, lab, sizeof lab);
    tap_ok(perms, "a batch of 25 over 10 images spans three epochs correctly");
    aim_batcher_free(b);

    /* file order */
    o.shuffle = 0;
    o.batch = 4;
    b = must_new(ds, &o);
    run_labels(b, 10, 4, 16, lab4);
    int order = 1;
    for (int i = 0; i < 40; i++)
        order &= lab4[i] == i % 10;
    tap_ok(order, "shuffle off gives file order, epoch after epoch");
    aim_batcher_free(b);
    aim_dataset_free(ds);

    /* a larger set, batches not dividing n */
    ds = flat_ds(37, 1, 2, 2);
    o = plain_opts(8);
    o.seed = 3;
    b = must_new(ds, &o);
    int32_t big[37 * 8];
    run_labels(b, 37, 8, 4, big);
    perms = 1;
    for (int ep = 0; ep < 8; ep++)
        perms &= is_perm(big + 37 * ep, 37);
    tap_ok(perms, "n = 37, batch 8: eight epochs, each a permutation");
    aim_batcher_free(b);
    aim_dataset_free(ds);
}

/* determinism */
static void case_determinism(aim_dataset *busy)
{
    const size_t img = 3 * 28 * 28; /* one image of busy */
    aim_batcher_opts o;
    aim_batcher_opts_default(&o);
    o.batch = 16;
    o.patch = 7;
    o.seed = 11;
    aim_batcher *a = must_new(busy, &o);
    aim_batcher *b = must_new(busy, &o);
    run_out ra = run_all(a, 10, 16, img), rb = run_all(b, 10, 16, img);
    tap_ok(run_eq(ra, rb, 10, 16, img), "same seed: identical x, labels, prefix for 10 batches");
    o.seed = 12;
    aim_batcher *c = must_new(busy, &o);
    run_out rc = run_all(c, 10, 16, img);
    tap_ok(memcmp(ra.x, rc.x, 10 * 16 * img * sizeof(float)) != 0 &&
               memcmp(ra.labels, rc.labels, 160 * sizeof(int32_t)) != 0 &&
               memcmp(ra.prefix, rc.prefix, 160 * sizeof(int32_t)) != 0,
           "a different seed differs in x, labels and prefix");
    run_free(ra);
    run_free(rb);
    run_free(rc);
    aim_batcher_free(a);
    aim_batcher_free(b);
    aim_batcher_free(c);

    /* thread count */
    o.seed = 5;
    omp_set_num_threads(1);
    a = must_new(busy, &o);
    run_out r1 = run_all(a, 6, 16, img);
    omp_set_num_threads(2);
    b = must_new(busy, &o);
    run_out r2 = run_all(b, 6, 16, img);
    omp_set_num_threads(4);
    c = must_new(busy, &o);
    omp_set_num_threads(1); /* fewer threads than the scratch was sized for */
    run_out r4 = run_all(c, 6, 16, img);
    omp_set_num_threads(8); /* more threads than the scratch was sized for */
    aim_batcher_seek(a, 0);
    run_out r8 = run_all(a, 6, 16, img);
    tap_ok(run_eq(r1, r2, 6, 16, img) && run_eq(r1, r4, 6, 16, img) &&
               run_eq(r1, r8, 6, 16, img),
           "results are identical with 1, 2, 4 and 8 threads");
    omp_set_num_threads(2);
    run_free(r1);
    run_free(r2);
    run_free(r4);
    run_free(r8);
    aim_batcher_free(a);
    aim_batcher_free(b);
    aim_batcher_free(c);

    /* shares of a batch (data parallel): three batchers making rows
     * [0,5), [5,10), [10,16) of every batch give the whole stream */
    a = must_new(busy, &o);
    run_out whole = run_all(a, 6, 16, img);
    run_out part = {malloc(6 * 16 * img * sizeof(float)), malloc(6 * 16 * sizeof(int32_t)),
                    malloc(6 * 16 * sizeof(int32_t))};
    const int cut[4] = {0, 5, 10, 16};
    int pos_ok = 1;
    for (int r = 0; r < 3; r++) {
        aim_batcher *s = must_new(busy, &o);
        for (int i = 0; i < 6; i++) {
            size_t at = (size_t)i * 16 + cut[r];
            aim_batcher_next_rows(s, cut[r], cut[r + 1], part.x + at * img, part.labels + at,
                                  part.prefix + at);
        }
        pos_ok &= aim_batcher_position(s) == 6 * 16;
        aim_batcher_free(s);
    }
    tap_ok(run_eq(whole, part, 6, 16, img) && pos_ok,
           "rows [0,5) + [5,10) + [10,16) of every batch, made apart, are the whole stream "
           "and each share advances it by the whole batch");
    run_free(whole);
    run_free(part);
    aim_batcher_free(a);
}

/* seek */
static void case_seek(aim_dataset *busy)
{
    aim_batcher_opts o;
    aim_batcher_opts_default(&o);
    o.batch = 6;
    o.patch = 4;
    o.seed = 99;
    check_seek(busy, o, "50 images, batch 6, full augmentation");
    aim_dataset *ds10 = busy_ds(10, 1, 8, 8);
    o.batch = 4;
    check_seek(ds10, o, "n = 10, batch 4 straddling epochs");
    aim_batcher *b = must_new(ds10, &o);
    aim_batcher_seek(b, 25);
    tap_ok(aim_batcher_position(b) == 25 && aim_batcher_epoch(b) == 2,
           "seek(25) on 10 images: position 25, epoch 2");
    aim_batcher_free(b);
    aim_dataset_free(ds10);
}

/* exact values */
static void case_exact_values(aim_dataset *busy)
{
    const size_t img = 3 * 28 * 28; /* one image of busy */
    aim_batcher_opts o = plain_opts(50);
    o.shuffle = 0;
    aim_batcher *b = must_new(busy, &o);
    float *x = malloc(50 * img * sizeof(float));
    int32_t lab[50];
    aim_batcher_next(b, x, lab, NULL);
    int exact = 1;
    for (size_t t = 0; t < 50 * img; t++)
        exact &= x[t] == busy->images[t] / 255.0f;
    tap_ok(exact, "crop, flip and normalise off: exactly pixel / 255");
    aim_batcher_free(b);

    /* normalise with hand-set statistics */
    aim_dataset *ds = busy_ds(5, 3, 6, 5);
    float mean[3] = {0.3f, 0.5f, 0.7f}, sd[3] = {0.2f, 0.1f, 0.4f};
    for (int k = 0; k < 3; k++) {
        ds->mean[k] = mean[k];
        ds->std[k] = sd[k];
    }
    o = plain_opts(5);
    o.shuffle = 0;
    o.normalize = 1;
    b = must_new(ds, &o);
    aim_batcher_next(b, x, lab, NULL);
    int ok = 1;
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 3; k++)
            for (int t = 0; t < 30; t++) {
                size_t at = (size_t)i * 90 + k * 30 + t;
                float want = (ds->images[at] / 255.0f - mean[k]) / sd[k];
                ok &= tap_close(x[at], want, 1e-6, 1e-6);
            }
    tap_ok(ok, "normalise uses each channel's mean and std");
    aim_batcher_free(b);

    /* aim_dataset_get_batch */
    float *g = malloc(7 * 90 * sizeof(float));
    int32_t gl[7];
    aim_dataset_get_batch(ds, 1, 3, 1, g, gl);
    ok = gl[0] == 1 && gl[1] == 2 && gl[2] == 3;
    for (int t = 0; t < 3 * 90; t++)
        ok &= g[t] == x[90 + t];
    tap_ok(ok, "get_batch returns the normalised images 1..3 and their labels");
    aim_dataset_get_batch(ds, 0, 5, 0, g, NULL);
    ok = 1;
    for (int t = 0; t < 5 * 90; t++)
        ok &= g[t] == ds->images[t] / 255.0f;
    tap_ok(ok, "get_batch without normalise gives pixel / 255");
    for (int t = 0; t < 7 * 90; t++)
        g[t] = 42;
    aim_dataset_get_batch(ds, 3, 4, 0, g, gl);
    ok = gl[0] == 3 && gl[1] == 4 && gl[2] == -1 && gl[3] == -1 && g[4 * 90] == 42;
    for (int t = 2 * 90; t < 4 * 90; t++)
        ok &= g[t] == 0;
    tap_ok(ok, "get_batch past the end gives zero rows labelled -1");
    aim_dataset_get_batch(ds, -1, 1, 0, g, gl);
    tap_ok(gl[0] == -1 && g[0] == 0, "get_batch before the start gives a zero row");
    free(g);
    aim_dataset_free(ds);
    free(x);
}

/* flip */
static void case_flip(aim_dataset *busy)
{
    const size_t img = 3 * 28 * 28; /* one image of busy */
    aim_batcher_opts o = plain_opts(64);
    o.flip = 1;
    o.seed = 4;
    aim_batcher *b = must_new(busy, &o);
    float *x = malloc(64 * img * sizeof(float));
    int32_t lab[64];
    aim_batcher_next(b, x, lab, NULL);
    int same = 0, mirrored = 0, neither = 0;
    for (int j = 0; j < 64; j++) {
        const uint8_t *p = busy->images + (size_t)lab[j] * img;
        const float *q = x + (size_t)j * img;
        int s = 1, m = 1;
        for (int k = 0; k < 3; k++)
            for (int y = 0; y < 28; y++)
                for (int xx = 0; xx < 28; xx++) {
                    float v = q[(k * 28 + y) * 28 + xx];
                    s &= v == p[(k * 28 + y) * 28 + xx] / 255.0f;
                    m &= v == p[(k * 28 + y) * 28 + 27 - xx] / 255.0f;
                }
        same += s;
        mirrored += m;
        neither += !s && !m;
    }
    tap_ok(neither == 0 && same > 10 && mirrored > 10,
           "flip: every image unchanged or exactly mirrored (%d / %d)", same, mirrored);
    aim_batcher_free(b);
    free(x);
}

/* shift */
static void case_shift(aim_dataset *busy)
{
    const size_t img = 3 * 28 * 28; /* one image of busy */
    /* shift 2 on plain images: every output is its source moved by one
     * (dx, dy) in [-2, 2]^2 with black (0) coming in, and all 25 moves
     * occur */
    aim_batcher_opts o = plain_opts(64);
    o.shift = 2;
    o.seed = 5;
    o.patch = 7;
    aim_batcher *b = must_new(busy, &o);
    float *x = malloc(64 * img * sizeof(float));
    float *src = malloc(img * sizeof(float));
    const float black[3] = {0, 0, 0};
    int32_t lab[64], pre[64];
    int seen[5][5] = {{0}}, unexplained = 0;
    for (int it = 0; it < 8; it++) {
        aim_batcher_next(b, x, lab, pre);
        for (int j = 0; j < 64; j++) {
            for (size_t t = 0; t < img; t++)
                src[t] = busy->images[(size_t)lab[j] * img + t] / 255.0f;
            int dx, dy;
            if (find_move(x + (size_t)j * img, src, black, 2, &dx, &dy))
                seen[dy + 2][dx + 2]++;
            else
                unexplained++;
        }
    }
    int all = 1;
    for (int i = 0; i < 25; i++)
        all &= seen[i / 5][i % 5] > 0;
    tap_ok(unexplained == 0 && all,
           "shift 2: every image is its source moved by (dx, dy) in [-2,2]^2 with black "
           "edges, all 25 moves seen (%d unexplained)",
           unexplained);

    /* the shift is drawn after crop, flip and prefix: turning it on moves
     * the very images the same seed gives without it, and keeps their
     * prefixes */
    o = plain_opts(64);
    o.crop = 1;
    o.flip = 1;
    o.normalize = 1;
    o.patch = 7;
    o.seed = 9;
    aim_batcher *b0 = must_new(busy, &o);
    o.shift = 3;
    aim_batcher *b3 = must_new(busy, &o);
    float *x0 = malloc(64 * img * sizeof(float));
    int32_t lab0[64], pre0[64];
    aim_batcher_next(b0, x0, lab0, pre0);
    aim_batcher_next(b3, x, lab, pre);
    int same_draws = memcmp(lab, lab0, sizeof lab) == 0 && memcmp(pre, pre0, sizeof pre) == 0;
    float pad[3];
    for (int k = 0; k < 3; k++)
        pad[k] = (0.0f - busy->mean[k]) / busy->std[k];
    int moved = 0;
    for (int j = 0; j < 64; j++) {
        int dx, dy;
        moved += find_move(x + (size_t)j * img, x0 + (size_t)j * img, pad, 3, &dx, &dy);
    }
    tap_ok(same_draws && moved == 64,
           "shift 3 after crop + flip: the same images, crops and prefixes as shift 0, "
           "each moved, normalised black at the edges (%d / 64)",
           moved);
    aim_batcher_free(b0);
    aim_batcher_free(b3);
    aim_batcher_free(b);
    free(x0);
    free(x);
    free(src);

    o = plain_opts(6);
    o.crop = 1;
    o.flip = 1;
    o.shift = 2;
    o.patch = 7;
    check_seek(busy, o, "shift 2 with crop and flip");
}

/* crop */
static void case_crop(aim_dataset *unused)
{
    (void)unused;
    /* pixel (y, x) = 16 y + x: the output tells the crop it came from */
    aim_dataset *ramp = aim_dataset_alloc("test", 1, 1, 16, 16);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            ramp->images[y * 16 + x] = (uint8_t)(16 * y + x);
    ramp->labels[0] = 0;
    aim_batcher_opts o = plain_opts(64);
    o.crop = 1;
    o.scale_min = 1;
    o.scale_max = 1;
    o.ratio_min = 1;
    o.ratio_max = 1;
    aim_batcher *b = must_new(ramp, &o);
    float x[64 * 256];
    aim_batcher_next(b, x, NULL, NULL);
    int ident = 1;
    for (int t = 0; t < 64 * 256; t++)
        ident &= x[t] == ramp->images[t % 256] / 255.0f;
    tap_ok(ident, "crop with scale [1,1] and ratio [1,1] is the identity");
    aim_batcher_free(b);

    aim_batcher_opts_default(&o);
    o.batch = 64;
    o.flip = 0;
    o.normalize = 0;
    b = must_new(ramp, &o);
    int in_range = 1, monotone = 1, geometry = 1, distinct = 0, nb = 8;
    int seen_left[16] = {0}, seen_top[16] = {0};
    long prev_key = -1;
    double min_area = 1, max_area = 0;
    for (int i = 0; i < nb; i++) {
        aim_batcher_next(b, x, NULL, NULL);
        for (int j = 0; j < 64; j++) {
            const float *q = x + j * 256;
            for (int t = 0; t < 256; t++)
                in_range &= q[t] >= 0 && q[t] <= 1;
            for (int y = 0; y < 16; y++)
                for (int xx = 0; xx < 16; xx++) {
                    if (xx > 0)
                        monotone &= q[y * 16 + xx] >= q[y * 16 + xx - 1];
                    if (y > 0)
                        monotone &= q[y * 16 + xx] >= q[(y - 1) * 16 + xx];
                }
            /* the corner samples are clamped onto the crop's corners */
            int c00 = (int)lround(q[0] * 255), c01 = (int)lround(q[15] * 255);
            int c10 = (int)lround(q[15 * 16] * 255);
            int top = c00 / 16, left = c00 % 16;
            int cw = c01 - c00 + 1, ch = (c10 - c00) / 16 + 1;
            geometry &= cw >= 1 && ch >= 1 && left + cw <= 16 && top + ch <= 16;
            double area = cw * ch / 256.0, ratio = (double)cw / ch;
            geometry &= area >= 0.4 - 0.08 && area <= 1.0 && ratio >= 0.75 - 0.15 &&
                        ratio <= 4.0 / 3 + 0.2;
            min_area = area < min_area ? area : min_area;
            max_area = area > max_area ? area : max_area;
            seen_left[left] = 1;
            seen_top[top] = 1;
            long key = ((long)top * 16 + left) * 1000 + cw * 20 + ch;
            distinct += key != prev_key;
            prev_key = key;
        }
    }
    int nleft = 0, ntop = 0;
    for (int k = 0; k < 16; k++) {
        nleft += seen_left[k];
        ntop += seen_top[k];
    }
    tap_ok(in_range && monotone, "crops stay in the value range and keep the ramp's order");
    tap_ok(geometry, "every decoded crop lies inside the image with area in [0.4, 1] "
                     "and ratio in [3/4, 4/3] (up to rounding); area seen %.2f..%.2f",
           min_area, max_area);
    tap_ok(distinct > 300 && nleft >= 5 && ntop >= 5,
           "crops vary: %d changes in 512 draws, %d lefts, %d tops", distinct, nleft, ntop);
    aim_batcher_free(b);

    /* crop and flip together: each output runs right-to-left or
     * left-to-right along x, and both happen */
    o.flip = 1;
    b = must_new(ramp, &o);
    aim_batcher_next(b, x, NULL, NULL);
    int up = 0, down = 0, other = 0;
    for (int j = 0; j < 64; j++) {
        const float *q = x + j * 256;
        int inc = 1, dec = 1;
        for (int y = 0; y < 16; y++)
            for (int xx = 1; xx < 16; xx++) {
                inc &= q[y * 16 + xx] >= q[y * 16 + xx - 1];
                dec &= q[y * 16 + xx] <= q[y * 16 + xx - 1];
            }
        up += inc && !dec;
        down += dec && !inc;
        other += inc == dec;
    }
    tap_ok(other == 0 && up > 10 && down > 10,
           "crop + flip: outputs mirrored (%d) or not (%d), never mixed", down, up);
    aim_batcher_free(b);
    o.flip = 0;

    /* a ratio range that no crop of a square satisfies: centre fallback */
    o.scale_min = 0.9f;
    o.scale_max = 1.0f;
    o.ratio_min = 3.0f;
    o.ratio_max = 4.0f;
    b = must_new(ramp, &o);
    aim_batcher_next(b, x, NULL, NULL);
    /* in_ratio 1 < 3: w = 16, h = round(16 / 3) = 5, top = 5 */
    int c00 = (int)lround(x[0] * 255), c10 = (int)lround(x[15 * 16] * 255);
    int c01 = (int)lround(x[15] * 255);
    tap_ok(c00 == 5 * 16 && c01 == 5 * 16 + 15 && c10 == 9 * 16,
           "impossible ratios fall back to a centre crop (rows 5..9)");
    aim_batcher_free(b);
    aim_dataset_free(ramp);
}

/* prefix */
static void case_prefix(aim_dataset *busy)
{
    const size_t img = 3 * 28 * 28; /* one image of busy */
    aim_batcher_opts o = plain_opts(64);
    o.patch = 7; /* 28x28: N = 16 */
    aim_batcher *b = must_new(busy, &o);
    float *x = malloc(64 * img * sizeof(float));
    int32_t pre[64];
    int counts[17] = {0}, in_range = 1;
    for (int i = 0; i < 30; i++) {
        aim_batcher_next(b, x, NULL, pre);
        for (int j = 0; j < 64; j++) {
            in_range &= pre[j] >= 1 && pre[j] <= 15;
            if (pre[j] >= 0 && pre[j] <= 16)
                counts[pre[j]]++;
        }
    }
    int all = 1, lo = 1 << 30, hi = 0;
    for (int s = 1; s <= 15; s++) {
        all &= counts[s] > 0;
        lo = counts[s] < lo ? counts[s] : lo;
        hi = counts[s] > hi ? counts[s] : hi;
    }
    tap_ok(in_range, "prefix always in 1..N-1 (N = 16)");
    tap_ok(all && lo > 60, "every prefix value appears over 1920 draws (%d..%d each)", lo, hi);
    aim_batcher_free(b);

    o.patch = 0;
    b = must_new(busy, &o);
    for (int j = 0; j < 64; j++)
        pre[j] = -7;
    aim_batcher_next(b, x, NULL, pre);
    int untouched = 1;
    for (int j = 0; j < 64; j++)
        untouched &= pre[j] == -7;
    tap_ok(untouched, "patch 0 leaves the prefix array alone");
    aim_batcher_free(b);

    aim_dataset *rect = busy_ds(4, 1, 4, 8);
    o.patch = 4; /* N = 2: S is always 1 */
    o.batch = 4;
    b = must_new(rect, &o);
    aim_batcher_next(b, x, NULL, pre);
    tap_ok(pre[0] == 1 && pre[1] == 1 && pre[2] == 1 && pre[3] == 1,
           "two patches leave only S = 1");
    aim_batcher_free(b);
    aim_dataset_free(rect);
    free(x);
}

/* invalid options */
static void case_invalid_options(aim_dataset *busy)
{
    aim_batcher_opts o;
    aim_batcher_opts_default(&o);
    aim_batcher_opts t = o;
    t.batch = 0;
    check_invalid(busy, t, "batch 0", "batch 0");
    t = o;
    t.scale_min = 0;
    check_invalid(busy, t, "scale", "scale_min 0");
    t = o;
    t.scale_max = 1.5f;
    check_invalid(busy, t, "scale", "scale_max 1.5");
    t = o;
    t.scale_min = 0.8f;
    t.scale_max = 0.5f;
    check_invalid(busy, t, "scale", "scale_min > scale_max");
    t = o;
    t.scale_min = NAN;
    check_invalid(busy, t, "scale", "a NaN scale");
    t = o;
    t.ratio_min = 0;
    check_invalid(busy, t, "ratio", "ratio_min 0");
    t = o;
    t.ratio_min = 2;
    t.ratio_max = 1;
    check_invalid(busy, t, "ratio", "ratio_min > ratio_max");
    t = o;
    t.ratio_max = INFINITY;
    check_invalid(busy, t, "ratio", "an infinite ratio");
    t = o;
    t.patch = -1;
    check_invalid(busy, t, "patch -1", "patch -1");
    t = o;
    t.patch = 5;
    check_invalid(busy, t, "patch 5 does not divide the 28x28 image", "patch 5 on 28x28");
    t = o;
    t.patch = 28;
    check_invalid(busy, t, "at least 2", "one patch per image");
    t = o;
    t.shift = -1;
    check_invalid(busy, t, "shift -1", "shift -1");
    t = o;
    t.shift = 28;
    check_invalid(busy, t, "shift 28 must be in [0, 28)", "shift 28 on 28x28");
    aim_dataset *empty = flat_ds(0, 1, 4, 4);
    check_invalid(empty, o, "0 images", "an empty dataset");
    aim_dataset_free(empty);
    check_invalid(NULL, o, "no dataset", "a NULL dataset");
    tap_ok(aim_batcher_new(busy, &t, NULL) == NULL, "a NULL error is accepted");
    aim_batcher_free(NULL);
}

/* throughput: a benchmark, not a check; `tests/test_batcher --bench` runs it
 * (make check does not) */
static int bench_throughput(void)
{
    aim_dataset *ds = busy_ds(1000, 1, 28, 28);
    aim_batcher_opts o;
    aim_batcher_opts_default(&o);
    o.patch = 7;
    aim_batcher *b = must_new(ds, &o);
    float *x = malloc(64 * 784 * sizeof(float));
    int32_t lab[64], pre[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int nb = 100;
    for (int i = 0; i < nb; i++)
        aim_batcher_next(b, x, lab, pre);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("batcher: %.0f images/s (28x28, batch 64, crop+flip+normalise+prefix, %d threads)\n",
           nb * 64 / s, omp_get_max_threads());
    free(x);
    aim_batcher_free(b);
    aim_dataset_free(ds);
    return 0;
}

/* Each case reports its own checks: a failure in one does not end the rest. */
static void run_case(const char *name, void (*fn)(aim_dataset *), aim_dataset *busy)
{
    int n0 = tap_n, f0 = tap_failed;
    tap_diag("case %s", name);
    fn(busy);
    tap_diag("case %s: %d checks, %d failed", name, tap_n - n0, tap_failed - f0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bench"))
        return bench_throughput();
    /* defaults */
    aim_batcher_opts d;
    memset(&d, 0x5a, sizeof d);
    aim_batcher_opts_default(&d);
    tap_ok(d.batch == 64 && d.seed == 0 && d.shuffle == 1 && d.crop == 1 && d.flip == 1 &&
               d.patch == 0 && d.shift == 0 && d.normalize == 1 && d.scale_min == 0.4f && d.scale_max == 1.0f &&
               tap_close(d.ratio_min, 0.75, 1e-6, 0) && tap_close(d.ratio_max, 4.0 / 3, 1e-6, 0),
           "default options");

    run_case("shuffling", case_shuffling, NULL);
    aim_dataset *busy = busy_ds(50, 3, 28, 28);
    run_case("determinism", case_determinism, busy);
    run_case("seek", case_seek, busy);
    run_case("exact_values", case_exact_values, busy);
    run_case("flip", case_flip, busy);
    run_case("shift", case_shift, busy);
    run_case("crop", case_crop, busy);
    run_case("prefix", case_prefix, busy);
    run_case("invalid_options", case_invalid_options, busy);
    aim_dataset_free(busy);
    return tap_done();
}
