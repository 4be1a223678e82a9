/* test_idx.c - IDX files plain and gzipped, images+labels datasets, hostile
 * files, and the real Fashion-MNIST when Debian's package is installed. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "aim/core.h"
#include "aim/data.h"
#include "tap.h"

/* an IDX image in memory: magic, big-endian dims, then dlen data bytes */
static uint8_t *mk_idx(int type, int ndim, const uint32_t *dims, const uint8_t *data,
                       size_t dlen, size_t *len)
{
    size_t hdr = 4 + 4 * (size_t)ndim;
    uint8_t *b = calloc(1, hdr + dlen + 1);
    b[2] = (uint8_t)type;
    b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (dlen)
        memcpy(b + hdr, data, dlen);
    *len = hdr + dlen;
    return b;
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    if (!gz || (len && gzwrite(gz, data, (unsigned)len) != (int)len) || gzclose(gz) != Z_OK) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
}

/* write an IDX file, gzipped when the name ends in .gz */
static const char *put_idx(const char *name, int type, int ndim, const uint32_t *dims,
                           const uint8_t *data, size_t dlen)
{
    size_t len;
    uint8_t *b = mk_idx(type, ndim, dims, data, dlen, &len);
    const char *path = tap_path(name);
    size_t n = strlen(name);
    if (n > 3 && !strcmp(name + n - 3, ".gz"))
        write_gz(path, b, len);
    else
        tap_write(path, b, len);
    free(b);
    return path;
}

static uint8_t pix[5 * 3 * 4];
static const uint8_t lab5[5] = {0, 3, 1, 3, 2};

/* a 5 x 3 x 4 images file and its labels under the given names */
static void put_pair(const char *images, const char *labels)
{
    uint32_t d3[3] = {5, 3, 4}, d1[1] = {5};
    put_idx(images, 8, 3, d3, pix, sizeof pix);
    if (labels)
        put_idx(labels, 8, 1, d1, lab5, sizeof lab5);
}

static int check_ds(const aim_dataset *ds, const char *split)
{
    if (!ds)
        return 0;
    int ok = ds->n == 5 && ds->c == 1 && ds->h == 3 && ds->w == 4 && ds->nclasses == 4 &&
             !strcmp(ds->kind, "idx") && ds->path &&
             !memcmp(ds->images, pix, sizeof pix);
    for (int i = 0; i < 5; i++)
        ok &= ds->labels[i] == lab5[i];
    if (split)
        ok &= ds->split && !strcmp(ds->split, split);
    else
        ok &= ds->split == NULL;
    double sum = 0;
    for (size_t i = 0; i < sizeof pix; i++)
        sum += pix[i] / 255.0;
    ok &= fabs(ds->mean[0] - sum / sizeof pix) < 1e-5;
    return ok;
}

static void expect_fail(const char *path, const char *phrase, const char *what)
{
    aim_err e = {{0}};
    aim_idx x;
    int rc = aim_idx_read(path, &x, &e);
    tap_ok(rc == -1 && x.data == NULL && tap_contains(e.msg, path) &&
               tap_contains(e.msg, phrase),
           "%s -> %s", what, e.msg);
}

/* both the plain and the gzipped file must fail with the phrase(s) */
static void expect_fail_both(const char *name, int type, int ndim, const uint32_t *dims,
                             const uint8_t *data, size_t dlen, const char *phrase,
                             const char *gz_phrase, const char *what)
{
    char gzname[128], msg[160];
    expect_fail(put_idx(name, type, ndim, dims, data, dlen), phrase, what);
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    snprintf(msg, sizeof msg, "%s (gzipped)", what);
    expect_fail(put_idx(gzname, type, ndim, dims, data, dlen), gz_phrase, msg);
}

int main(void)
{
    aim_err e = {{0}};
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)(i * 29 + 7);

    /* ---- raw IDX, plain and gzipped */
    {
        uint32_t d3[3] = {5, 3, 4};
        const char *names[2] = {"raw.idx", "raw.idx.gz"};
        for (int k = 0; k < 2; k++) {
            const char *p = put_idx(names[k], 8, 3, d3, pix, sizeof pix);
            aim_idx x;
            int rc = aim_idx_read(p, &x, &e);
            tap_ok(rc == 0 && x.ndim == 3 && x.dims[0] == 5 && x.dims[1] == 3 &&
                       x.dims[2] == 4 && x.type == 8 && !memcmp(x.data, pix, sizeof pix),
                   "%s reads back%s%s", names[k], rc ? ": " : "", rc ? e.msg : "");
            aim_idx_free(&x);
            tap_ok(x.data == NULL && x.ndim == 0, "aim_idx_free clears");
        }
        size_t len;
        uint8_t *b = mk_idx(8, 3, d3, pix, sizeof pix, &len);
        aim_idx x;
        int rc = aim_idx_parse(b, len, "mem.idx", &x, &e);
        tap_ok(rc == 0 && x.dims[2] == 4 && !memcmp(x.data, pix, sizeof pix),
               "aim_idx_parse reads a buffer");
        aim_idx_free(&x);
        tap_ok(aim_idx_parse(b, len - 1, "mem.idx", &x, &e) == -1 &&
                   tap_contains(e.msg, "mem.idx: truncated"),
               "aim_idx_parse: truncated buffer: %s", e.msg);
        tap_ok(aim_idx_parse(b, 6, "mem.idx", &x, &e) == -1 &&
                   tap_contains(e.msg, "truncated header"),
               "aim_idx_parse: header cut short: %s", e.msg);
        free(b);
        uint8_t gzmagic[8] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
        tap_ok(aim_idx_parse(gzmagic, sizeof gzmagic, "mem.gz", &x, &e) == -1 &&
                   tap_contains(e.msg, "gzip"),
               "aim_idx_parse refuses gzip data: %s", e.msg);
        uint32_t d0[1] = {0};
        const char *p = put_idx("empty1d.idx", 8, 1, d0, NULL, 0);
        tap_ok(aim_idx_read(p, &x, &e) == 0 && x.ndim == 1 && x.dims[0] == 0,
               "an IDX with a zero dimension is read");
        aim_idx_free(&x);
    }

    /* ---- datasets */
    {
        put_pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte");
        aim_dataset *ds = aim_data_open_idx(tap_path("train-images-idx3-ubyte"),
                                            tap_path("train-labels-idx1-ubyte"), &e);
        tap_ok(check_ds(ds, "train"), "plain images + labels dataset%s%s", ds ? "" : ": ",
               ds ? "" : e.msg);
        tap_ok(ds && ds->class_names == NULL, "no class names for a plain IDX folder");
        aim_dataset_free(ds);

        put_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
        ds = aim_data_open_idx(tap_path("t10k-images-idx3-ubyte.gz"), NULL, &e);
        tap_ok(check_ds(ds, "test"), "gzipped pair, labels found by name%s%s",
               ds ? "" : ": ", ds ? "" : e.msg);
        aim_dataset_free(ds);

        put_pair("a-images-idx3-ubyte.gz", "a-labels-idx1-ubyte");
        ds = aim_data_open_idx(tap_path("a-images-idx3-ubyte.gz"), NULL, &e);
        tap_ok(check_ds(ds, NULL), "gzipped images find plain labels%s%s", ds ? "" : ": ",
               ds ? "" : e.msg);
        aim_dataset_free(ds);

        put_pair("b-images-idx3-ubyte", "b-labels-idx1-ubyte.gz");
        ds = aim_data_open_idx(tap_path("b-images-idx3-ubyte"), NULL, &e);
        tap_ok(check_ds(ds, NULL), "plain images find gzipped labels%s%s", ds ? "" : ": ",
               ds ? "" : e.msg);
        aim_dataset_free(ds);

        put_pair("c-images-idx3-ubyte.gz", NULL);
        ds = aim_data_open_idx(tap_path("c-images-idx3-ubyte.gz"), NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "not found") &&
                   tap_contains(e.msg, "c-labels-idx1-ubyte.gz") &&
                   tap_contains(e.msg, "c-labels-idx1-ubyte)"),
               "missing labels file names what was looked for: %s", e.msg);

        put_pair("images.idx", NULL);
        ds = aim_data_open_idx(tap_path("images.idx"), NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "-images-idx3-"),
               "a name without -images-idx3- asks for the labels file: %s", e.msg);

        uint32_t d1[1] = {4}, d2[2] = {5, 1}, d3[3] = {5, 3, 4};
        put_idx("d-images-idx3-ubyte", 8, 3, d3, pix, sizeof pix);
        put_idx("d-labels-idx1-ubyte", 8, 1, d1, lab5, 4);
        ds = aim_data_open_idx(tap_path("d-images-idx3-ubyte"), NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "5 images") && tap_contains(e.msg, "4 labels"),
               "label/image count mismatch gives both counts: %s", e.msg);
        put_idx("d-labels-idx1-ubyte", 8, 2, d2, lab5, 5);
        ds = aim_data_open_idx(tap_path("d-images-idx3-ubyte"), NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "1-d"), "2-d labels are refused: %s", e.msg);
        uint32_t flat[1] = {60};
        const char *p = put_idx("flat-images-idx3-ubyte", 8, 1, flat, pix, 60);
        ds = aim_data_open_idx(p, tap_path("d-labels-idx1-ubyte"), &e);
        tap_ok(!ds && tap_contains(e.msg, "3-d") && tap_contains(e.msg, "flat-images"),
               "1-d images are refused: %s", e.msg);
        ds = aim_data_open_idx(tap_path("nothere-images-idx3-ubyte"), NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "nothere-images-idx3-ubyte"),
               "a missing images file is named: %s", e.msg);

        /* a folder named like Fashion-MNIST gets its class names */
        mkdir(tap_path("fashion-small"), 0755);
        put_pair("fashion-small/train-images-idx3-ubyte", "fashion-small/train-labels-idx1-ubyte");
        ds = aim_data_open_idx(tap_path("fashion-small/train-images-idx3-ubyte"), NULL, &e);
        tap_ok(ds && ds->nclasses == 10 && ds->class_names &&
                   !strcmp(ds->class_names[0], "T-shirt/top") &&
                   !strcmp(ds->class_names[9], "Ankle boot"),
               "a Fashion-MNIST folder gets the Fashion-MNIST class names");
        aim_dataset_free(ds);
    }

    /* ---- hostile files */
    {
        uint8_t data[256] = {0};
        uint32_t d2[2] = {6, 10}, d5[5] = {1, 1, 1, 1, 1};
        /* bad magic: a non-zero first byte, an unknown type, text */
        char p[512];
        snprintf(p, sizeof p, "%s", tap_path("magic1.idx"));
        size_t len;
        uint8_t *b = mk_idx(8, 2, d2, data, 60, &len);
        b[0] = 1;
        tap_write(p, b, len);
        expect_fail(p, "not an IDX file (bad magic", "non-zero first magic byte");
        b[0] = 0;
        b[2] = 0x07;
        tap_write(p, b, len);
        expect_fail(p, "not an IDX file (bad magic", "unknown type byte 0x07");
        free(b);
        tap_write(p, "hello, world\n", 13);
        expect_fail(p, "not an IDX file (bad magic", "a text file");
        expect_fail_both("float.idx", 0x0D, 2, d2, data, 240, "unsupported IDX type 0x0d",
                         "unsupported IDX type 0x0d", "float IDX");
        expect_fail_both("int.idx", 0x0C, 2, d2, data, 240, "unsupported IDX type 0x0c",
                         "unsupported IDX type 0x0c", "int IDX");
        expect_fail_both("ndim0.idx", 8, 0, d5, data, 0, "ndim 0 is not in 1..4",
                         "ndim 0 is not in 1..4", "ndim 0");
        expect_fail_both("ndim5.idx", 8, 5, d5, data, 1, "ndim 5 is not in 1..4",
                         "ndim 5 is not in 1..4", "ndim 5");
        uint32_t tera[2] = {1000000, 1000000};
        expect_fail_both("tera.idx", 8, 2, tera, data, 20, "truncated: dims 1000000 x 1000000",
                         "more than a", "dims claiming 10^12 bytes in a small file");
        uint32_t big4[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
        expect_fail_both("over.idx", 8, 4, big4, data, 20, "overflow", "overflow",
                         "dims overflowing 64 bits");
        expect_fail_both("trunc.idx", 8, 2, d2, data, 50, "truncated", "truncated: expected 60 "
                         "bytes of data, got 50", "truncated data");
        expect_fail_both("trail.idx", 8, 2, d2, data, 61, "1 trailing bytes", "trailing data",
                         "trailing bytes");
        uint32_t d3[3] = {5, 3, 4};
        b = mk_idx(8, 3, d3, NULL, 0, &len);
        tap_write(p, b, 10);
        expect_fail(p, "truncated header", "header cut inside the dims");
        const char *gzp = tap_path("hdr.idx.gz");
        write_gz(gzp, b, 10);
        expect_fail(gzp, "truncated header", "header cut inside the dims (gzipped)");
        free(b);
        tap_write(p, "\0\0", 2);
        expect_fail(p, "truncated header", "a 2-byte file");
        tap_write(p, "", 0);
        expect_fail(p, "truncated header", "an empty file");

        /* gzip stream damage: corrupt bytes, then a cut file */
        uint8_t rnd[4000];
        uint64_t s = 12345;
        for (size_t i = 0; i < sizeof rnd; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            rnd[i] = (uint8_t)(s >> 56);
        }
        uint32_t dz[2] = {40, 100};
        const char *gp = put_idx("corrupt.idx.gz", 8, 2, dz, rnd, sizeof rnd);
        uint8_t *g;
        size_t glen;
        aim_read_file(gp, 1 << 20, &g, &glen, &e);
        g[glen - 40] ^= 0x55;
        tap_write(gp, g, glen);
        expect_fail(gp, "gzip stream is corrupt", "a corrupt gzip stream");
        g[glen - 40] ^= 0x55;
        g[glen - 3] ^= 0x55; /* the length in the trailer */
        tap_write(gp, g, glen);
        expect_fail(gp, "gzip stream is corrupt", "a bad gzip trailer");
        g[glen - 3] ^= 0x55;
        tap_write(gp, g, glen / 2);
        expect_fail(gp, "truncated", "a gzip file cut in half");
        tap_write(gp, g, glen - 4);
        expect_fail(gp, "truncated gzip stream", "a gzip file missing its trailer");
        tap_write(gp, g, 12);
        expect_fail(gp, "truncated", "a gzip file cut in its header");
        free(g);
        expect_fail(tap_tmpdir(), "folder", "a folder");
    }

    /* ---- Fashion-MNIST */
    {
        setenv("AIM_FASHION_MNIST", "/some/where", 1);
        tap_ok(!strcmp(aim_fashion_mnist_dir(), "/some/where"), "AIM_FASHION_MNIST is honoured");
        setenv("AIM_FASHION_MNIST", "", 1);
        tap_ok(!strcmp(aim_fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist"),
               "an empty AIM_FASHION_MNIST means the Debian folder");
        unsetenv("AIM_FASHION_MNIST");
        tap_ok(!strcmp(aim_fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist"),
               "default folder");
        aim_dataset *ds = aim_data_fashion_mnist("val", NULL, &e);
        tap_ok(!ds && tap_contains(e.msg, "'val'"), "a bad split is named: %s", e.msg);
        ds = aim_data_fashion_mnist("train", tap_path("nowhere"), &e);
        tap_ok(!ds && tap_contains(e.msg, "Fashion-MNIST not found in") &&
                   tap_contains(e.msg, "nowhere") &&
                   tap_contains(e.msg, "dataset-fashion-mnist"),
               "a missing folder says how to get it: %s", e.msg);
        mkdir(tap_path("emptydir"), 0755);
        ds = aim_data_fashion_mnist("test", tap_path("emptydir"), &e);
        tap_ok(!ds && tap_contains(e.msg, "Fashion-MNIST not found in"),
               "a folder without the files: %s", e.msg);

        const char *dir = "/usr/share/datasets/fashion-mnist";
        if (aim_is_dir(dir)) {
            ds = aim_data_fashion_mnist("train", dir, &e);
            tap_ok(ds && ds->n == 60000 && ds->c == 1 && ds->h == 28 && ds->w == 28 &&
                       ds->nclasses == 10,
                   "Fashion-MNIST train: 60000 28x28 images, 10 classes%s%s", ds ? "" : ": ",
                   ds ? "" : e.msg);
            if (ds) {
                tap_ok(tap_close(ds->mean[0], 0.2860, 0, 0.002) &&
                           tap_close(ds->std[0], 0.3530, 0, 0.002),
                       "train mean %.4f std %.4f", ds->mean[0], ds->std[0]);
                int counts[10] = {0}, balanced = 1;
                for (int64_t i = 0; i < ds->n; i++)
                    counts[ds->labels[i]]++;
                for (int k = 0; k < 10; k++)
                    balanced &= counts[k] == 6000;
                tap_ok(balanced, "6000 images per class");
                tap_ok(ds->class_names && !strcmp(ds->class_names[9], "Ankle boot") &&
                           ds->split && !strcmp(ds->split, "train"),
                       "class names and split");
            }
            aim_dataset_free(ds);
            ds = aim_data_fashion_mnist("test", NULL, &e);
            tap_ok(ds && ds->n == 10000 && ds->h == 28 && ds->w == 28 && ds->nclasses == 10 &&
                       ds->split && !strcmp(ds->split, "test"),
                   "Fashion-MNIST test: 10000 images%s%s", ds ? "" : ": ", ds ? "" : e.msg);
            if (ds)
                tap_ok(tap_close(ds->mean[0], 0.2868, 0, 0.002) &&
                           tap_close(ds->std[0], 0.3524, 0, 0.002),
                       "test mean %.4f std %.4f", ds->mean[0], ds->std[0]);
            aim_dataset_free(ds);
        } else {
            tap_skip("Fashion-MNIST is not installed (dataset-fashion-mnist)");
        }
    }
    return tap_done();
}
